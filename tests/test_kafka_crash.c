/* Crash and restart of a file -> kafka run: `sluice run` is killed with SIGKILL at random
 * points and started again against one `sluice kafka-mock` process, whose broker is set
 * down before every other start (the messages then wait in librdkafka's memory when the
 * kill comes) and up before the next; once a run ends by itself, the topic holds every
 * input line (read back with kcat). The sink acknowledges a batch only once Kafka has
 * it, so a kill loses nothing: the file source replays from its last checkpoint, and
 * the topic may hold a line twice, never miss one.
 *
 * A kill point is a random time up to a quarter of what a whole run takes (measured by a
 * reference run first; half with the broker down, when nothing progresses), or at once. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers_file.h"
#include "helpers_kafka.h"

#define INPUT_LINES 300000
#define KILLS       8

static char *dir;
static char sluice[4200];
static pid_t mock_pid;
static FILE *mock_in, *mock_out; /* the mock's commands and answers */
static char boot[512];           /* its bootstrap address */

static void start_mock(void)
{
    int in[2], out[2];
    cr_assert_eq(pipe(in), 0);
    cr_assert_eq(pipe(out), 0);
    mock_pid = t_fork();
    cr_assert_geq(mock_pid, 0);
    if (mock_pid == 0) {
        dup2(in[0], 0), dup2(out[1], 1);
        close(in[1]), close(out[0]);
        execl(sluice, sluice, "kafka-mock", "--topic", "lines:16", "--log-level", "error",
              (char *)NULL);
        _exit(127);
    }
    close(in[0]), close(out[1]);
    mock_in = fdopen(in[1], "w");
    mock_out = fdopen(out[0], "r");
    cr_assert_not_null(fgets(boot, sizeof boot, mock_out), "kafka-mock printed no address");
    boot[strcspn(boot, "\n")] = '\0';
}

/* Sends a command to the mock and asserts its "ok". */
static void mock_command(const char *cmd)
{
    char answer[256] = "";
    fprintf(mock_in, "%s\n", cmd);
    fflush(mock_in);
    cr_assert_not_null(fgets(answer, sizeof answer, mock_out));
    cr_assert_str_eq(answer, "ok\n", "%s", cmd);
}

static void setup(void)
{
    const char *root = getenv("SLUICE_BUILD_ROOT");
    cr_assert_not_null(root, "SLUICE_BUILD_ROOT is not set (run through meson test)");
    snprintf(sluice, sizeof sluice, "%s/cli/sluice", root);
    dir = t_tmpdir();
    start_mock();
}

static void teardown(void)
{
    kill(mock_pid, SIGTERM);
    int status;
    waitpid(mock_pid, &status, 0);
    fclose(mock_in), fclose(mock_out);
    t_rmtree(dir);
    free(dir);
}

TestSuite(kafka_crash, .init = setup, .fini = teardown, .timeout = 300);

/* Writes the config of a run reading `in` into topic `topic`, state in `data`. */
static char *write_config(const char *in, const char *data, const char *topic)
{
    char *path = t_path(data, "run.yaml"), text[8192];
    snprintf(text, sizeof text,
             "pipeline: {data_dir: '%s'}\n"
             "sources:\n  in: {type: file, path: '%s', follow: false, host_key: ''}\n"
             "sinks:\n  out:\n    type: kafka\n    inputs: [in]\n    brokers: '%s'\n"
             "    topic: %s\n    encoding: text\n"
             "    librdkafka: {reconnect.backoff.max.ms: 100}\n",
             data, in, boot, topic);
    t_writes(path, text, false);
    return path;
}

static pid_t spawn(const char *config)
{
    pid_t pid = t_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        execl(sluice, sluice, "run", "-q", "--log-level", "error", config, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run_to_end(pid_t pid)
{
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "sluice run failed: %d", status);
}

/* Kills `pid` after `ms` (0: at once) unless it ended first. True when the kill hit. */
static bool kill_after(pid_t pid, long ms)
{
    int status;
    for (long waited = 0; waited < ms; waited++) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "sluice run failed");
            return false;
        }
        nanosleep(&(struct timespec){0, 1000000}, NULL); /* the kill point: 1 ms steps */
    }
    kill(pid, SIGKILL);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status)) cr_assert_eq(WEXITSTATUS(status), 0, "sluice run failed");
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

/* The distinct lines of topic `topic`, sorted numerically, as one text. */
static char *topic_lines(const char *topic)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "kcat -C -b '%s' -t %s -o beginning -e -q -f '%%s\\n' | sort -n -u",
             boot, topic);
    return t_run_cmd(cmd);
}

Test(kafka_crash, every_line_reaches_the_topic_after_kills_while_the_broker_is_down_or_up)
{
    srand((unsigned)time(NULL));
    char *in = t_path(dir, "in.log"), *want;
    t_write_numbers(in, 0, INPUT_LINES, false);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "sort -n -u '%s'", in);
    want = t_run_cmd(cmd);
    char *ref = t_path(dir, "ref"), *td = t_path(dir, "trial");
    mkdir(ref, 0755), mkdir(td, 0755);
    char *ref_cfg = write_config(in, ref, "reference"), *cfg = write_config(in, td, "lines");
    double t0 = now_s();
    run_to_end(spawn(ref_cfg));
    long whole_ms = (long)((now_s() - t0) * 1000) + 1;
    int hits = 0, downs = 0;
    for (int k = 0; k < KILLS; k++) {
        bool down = k % 2 == 0;
        if (down) mock_command("down 1");
        /* with the broker up a run makes progress: four of them get a quarter of a whole
         * run at most, so that the last run is the one that ends by itself */
        long span = down ? whole_ms / 2 : whole_ms / 4;
        long ms = (long)((double)rand() / RAND_MAX * (double)(span + 10)) - 10;
        bool hit = kill_after(spawn(cfg), ms > 0 ? ms : 0);
        hits += hit;
        downs += hit && down;
        if (down) mock_command("up 1");
    }
    run_to_end(spawn(cfg));
    char *got = topic_lines("lines");
    cr_assert(strcmp(got, want) == 0, "lines missing from the topic (%zu bytes of %zu)",
              strlen(got), strlen(want));
    cr_log_info("%d of %d kills hit a running sluice, %d of them with the broker down", hits, KILLS,
                downs);
    printf("kafka_crash: %d of %d kills hit a running sluice, %d with the broker down\n", hits,
           KILLS, downs);
    cr_assert_geq(hits, KILLS / 2, "too few kills landed while sluice ran: %d", hits);
    cr_assert_geq(downs, 1, "no kill landed while the broker was down");
    free(got), free(want), free(in), free(ref), free(td), free(ref_cfg), free(cfg);
}
