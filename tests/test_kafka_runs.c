/* The kafka source across processes: the real `sluice` binary on a topic of a mock cluster
 * hosted by a process of its own (`sluice kafka-mock`), fed by kcat.
 *
 * At-least-once: a kafka -> parse_json -> file run is killed with SIGKILL at random points
 * (drawn as growth of its output, so they do not depend on the machine's speed) and
 * started again, each run writing a file of its own; a last run reads to the end of the
 * topic. The union of the outputs holds every message; what is there twice is what a
 * killed run had read but not yet committed.
 *
 * Scale-out: two `sluice run` in one group on a 6-partition topic split its partitions;
 * one is killed mid-stream, and the other takes its partitions over from their committed
 * offsets: the union of the two outputs holds every message. Rebalance under load: a
 * third process joins two others mid-stream; nothing is lost. (Duplicates: the 2.0.2 mock refuses
 * commits while a rebalance is prepared, where Kafka takes those of the current generation, so what
 * was read since the last commit before a rebalance is read again by the next owner.) */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers_file.h"
#include "helpers_kafka_source.h"

#define GROUP_TIMEOUTS                                                                             \
    "{session.timeout.ms: 6000, max.poll.interval.ms: 6000, heartbeat.interval.ms: 300}"
/* The assignment strategy stays librdkafka's default (range,roundrobin: the eager
 * protocol). librdkafka 2.0.2's mock does not follow the cooperative one: with
 * `partition.assignment.strategy: cooperative-sticky` its members keep losing their
 * assignments (ILLEGAL_GENERATION) and their commits fail; nothing is lost, but nothing
 * can be said of what is committed. */

static char *dir;
static char boot[256];
static pid_t mock_pid;
static int mock_stdin = -1;

static const char *build_path(const char *rel)
{
    static char path[4200];
    const char *root = getenv("SLUICE_BUILD_ROOT");
    cr_assert_not_null(root, "SLUICE_BUILD_ROOT is not set (run through meson test)");
    snprintf(path, sizeof path, "%s/%s", root, rel);
    return path;
}

/* Starts `sluice kafka-mock` with `topic` (NAME:PARTITIONS) and reads its address. */
static void start_mock(const char *topic)
{
    int in[2], out[2];
    cr_assert_eq(pipe(in), 0);
    cr_assert_eq(pipe(out), 0);
    const char *bin = build_path("cli/sluice");
    mock_pid = t_fork();
    cr_assert_geq(mock_pid, 0);
    if (mock_pid == 0) {
        dup2(in[0], 0), dup2(out[1], 1);
        close(in[1]), close(out[0]);
        execl(bin, bin, "kafka-mock", "--topic", topic, "--log-level", "error", (char *)NULL);
        _exit(127);
    }
    close(in[0]), close(out[1]);
    mock_stdin = in[1];
    FILE *f = fdopen(out[0], "r");
    cr_assert_not_null(fgets(boot, sizeof boot, f), "kafka_mock printed no address");
    boot[strcspn(boot, "\n")] = '\0';
    fclose(f);
}

static void setup(void)
{
    dir = t_tmpdir();
    srand((unsigned)time(NULL));
}

static void teardown(void)
{
    if (mock_pid > 0) kill(mock_pid, SIGTERM);
    if (mock_pid > 0) waitpid(mock_pid, NULL, 0);
    if (mock_stdin >= 0) close(mock_stdin);
    mock_stdin = -1, mock_pid = 0;
    t_rmtree(dir);
    free(dir);
}

TestSuite(kafka_runs, .init = setup, .fini = teardown, .timeout = 300);

/* Writes config `name` in dir: kafka (topic, group, `extra` options) -> parse_json -> file
 * `out` (in dir). Returns its path (owned). */
static char *config(const char *name, const char *topic, const char *group, const char *out,
                    const char *extra)
{
    char *path = t_path(dir, name), text[2048];
    snprintf(text, sizeof text,
             "pipeline: {data_dir: %s}\n"
             "sources:\n  in:\n    type: kafka\n    brokers: \"%s\"\n    group: %s\n"
             "    topics: [%s]\n    commit_interval: 100ms\n    partition_field: p\n"
             "    librdkafka: " GROUP_TIMEOUTS "\n%s"
             "transforms:\n  parse: {type: parse_json, inputs: [in]}\n"
             "sinks:\n  out: {type: file, inputs: [parse], path: \"%s/%s\"}\n",
             dir, boot, group, topic, extra, dir, out);
    t_writes(path, text, false);
    return path;
}

static pid_t spawn_sluice(const char *cfg, const char *log)
{
    const char *bin = build_path("cli/sluice");
    pid_t pid = t_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        FILE *f = freopen(log, "a", stderr);
        (void)f;
        execl(bin, bin, "run", "--quiet", "--log-level", "info", cfg, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

#define RUN_WAIT_S 240 /* a run that should end, or grow its output: this long at most */

/* Fails the test with the end of the runs' log `log` (the process `pid` is killed). */
static void fail_with_log(pid_t pid, const char *log, const char *what)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    size_t len = 0;
    char *text = t_read(log, &len);
    cr_assert_fail("%s after %d s; the runs' log ends:\n%s", what, RUN_WAIT_S,
                   text ? text + (len > 4000 ? len - 4000 : 0) : "");
}

/* Waits until `path` has grown to `target` bytes, then kills `pid`, or until the process
 * ended by itself. Returns true when the kill hit a running process. */
static bool kill_at_size(pid_t pid, const char *path, long long target, const char *log)
{
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    cr_assert_geq(pfd, 0, "pidfd_open");
    struct pollfd pf = {.fd = pfd, .events = POLLIN};
    bool exited = false;
    time_t until = time(NULL) + RUN_WAIT_S;
    while (!(exited = poll(&pf, 1, 0) == 1) && file_size(path) < target) {
        if (time(NULL) > until)
            fail_with_log(pid, log, "the output did not grow to its kill point");
        nanosleep(&(struct timespec){0, 2000000}, NULL); /* the test's own wait: 2 ms */
    }
    close(pfd);
    if (!exited) kill(pid, SIGKILL);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status)) cr_assert_eq(WEXITSTATUS(status), 0, "sluice failed");
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

static void wait_ok(pid_t pid, const char *log)
{
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    cr_assert_geq(pfd, 0, "pidfd_open");
    struct pollfd pf = {.fd = pfd, .events = POLLIN};
    int ready = poll(&pf, 1, RUN_WAIT_S * 1000);
    close(pfd);
    if (ready != 1) fail_with_log(pid, log, "sluice did not end");
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    char *text = t_read(log, NULL);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "sluice failed (%d):\n%s", status,
              text ? text : "");
    free(text);
}

/* Adds the messages of output file `path` to counts[0..n-1] (by their "n"); the
 * partitions seen go to `parts` (a bit each) when not NULL. Returns the lines read. */
static long count_file(const char *path, int *counts, long n, unsigned *parts)
{
    size_t len = 0;
    char *text = t_read(path, &len);
    long lines = 0;
    for (char *line = text; line && *line; lines++) {
        char *end = strchr(line, '\n');
        if (!end) break; /* the last line a killed run was writing: not acknowledged */
        *end = '\0';     /* searches stay within the line (ASan's strstr measures it all) */
        const char *at = strstr(line, "\"n\":"), *pp = strstr(line, "\"p\":");
        cr_assert(at, "a line without a number in %s: %.80s", path, line);
        long k = strtol(at + 4, NULL, 10);
        cr_assert(k >= 0 && k < n, "number %ld out of range", k);
        counts[k]++;
        if (parts && pp) *parts |= 1u << strtol(pp + 4, NULL, 10);
        line = end + 1;
    }
    free(text);
    return lines;
}

/* ---- at-least-once through kill -9 ----------------------------------------------------------- */

#define AL_MESSAGES 100000
#define AL_KILLS    5

/* The output bytes within which run `k` is killed: up to a third of the topic, and never
 * more than half of what is left after the commits of the runs before (a run that does not
 * end by itself must reach its kill point: the runs before may have read it all). An output
 * line is longer than AL_LINE_MIN bytes. */
#define AL_LINE_MIN 90
static long long kill_span(int k)
{
    int64_t committed[4], hw[4], left = 0;
    if (k == 0) return (long long)AL_MESSAGES * AL_LINE_MIN / 3;
    cr_assert_eq(t_committed(boot, "crash", "logs", 4, committed), 0);
    t_watermarks(boot, "logs", 4, hw);
    for (int i = 0; i < 4; i++) left += hw[i] - (committed[i] > 0 ? committed[i] : 0);
    long long third = (long long)AL_MESSAGES * AL_LINE_MIN / 3, half = left * AL_LINE_MIN / 2;
    return half < third ? half : third;
}

Test(kafka_runs, every_message_is_in_the_outputs_after_kills_and_a_restart)
{
    start_mock("logs:4");
    t_kcat_produce(boot, "logs", 0, AL_MESSAGES, 100);
    char *log = t_path(dir, "sluice.log"), out[64], name[64];
    int hits = 0;
    for (int k = 0; k < AL_KILLS; k++) {
        snprintf(out, sizeof out, "out-%d.json", k);
        snprintf(name, sizeof name, "run-%d.yaml", k);
        char *cfg = config(name, "logs", "crash", out, ""), *outp = t_path(dir, out);
        long long at = (long long)((double)rand() / RAND_MAX * (double)kill_span(k));
        hits += kill_at_size(spawn_sluice(cfg, log), outp, at, log);
        free(cfg), free(outp);
    }
    char *cfg = config("last.yaml", "logs", "crash", "out-last.json", "    until_end: true\n");
    wait_ok(spawn_sluice(cfg, log), log);
    int *counts = calloc(AL_MESSAGES, sizeof *counts);
    long lines = 0;
    for (int k = 0; k <= AL_KILLS; k++) {
        snprintf(out, sizeof out, k < AL_KILLS ? "out-%d.json" : "out-last.json", k);
        char *outp = t_path(dir, out);
        lines += count_file(outp, counts, AL_MESSAGES, NULL);
        free(outp);
    }
    for (long i = 0; i < AL_MESSAGES; i++) cr_assert_geq(counts[i], 1, "message %ld lost", i);
    int64_t committed[4], hw[4];
    cr_assert_eq(t_committed(boot, "crash", "logs", 4, committed), 0);
    t_watermarks(boot, "logs", 4, hw);
    for (int i = 0; i < 4; i++) cr_assert_eq(committed[i], hw[i], "partition %d", i);
    long dup = lines - AL_MESSAGES;
    cr_log_info("kafka kill -9: %d of %d kills hit a running sluice; %ld duplicates", hits,
                AL_KILLS, dup);
    printf("kafka_runs: %d of %d kills hit a running sluice; %ld messages read twice\n", hits,
           AL_KILLS, dup);
    /* A kill replays at most what was read since the last commit (100 ms) and was in
     * flight: the queues (8 batches of 1024 per edge, 2 edges) and the batch being read. */
    cr_assert_leq(dup, (long)AL_KILLS * 3 * 8 * 1024 + AL_KILLS * 20000, "%ld duplicates", dup);
    cr_assert_geq(hits, AL_KILLS / 2, "too few kills landed while sluice ran: %d", hits);
    free(counts), free(cfg), free(log);
}

/* ---- two processes in one group ------------------------------------------------------------ */

#define SO_CHUNKS 12
#define SO_CHUNK  5000

static atomic_int chunks_done;
static atomic_bool consuming; /* every first member has written something */

/* Produces the chunks, the first one at once, the others once `consuming` (so that the
 * stream is still running whatever the time the group took to form). */
static void *produce(void *arg)
{
    (void)arg;
    for (int c = 0; c < SO_CHUNKS; c++) {
        while (c == 1 && !consuming) nanosleep(&(struct timespec){0, 20000000}, NULL);
        t_kcat_produce(boot, "six", (int64_t)c * SO_CHUNK, (int64_t)(c + 1) * SO_CHUNK, 0);
        chunks_done = c + 1;
        nanosleep(&(struct timespec){0, 400000000}, NULL); /* a stream: a chunk every 0.4 s */
    }
    return NULL;
}

/* Waits (at most `secs`) until `path` exists and is not empty. */
static bool wait_output(const char *path, int secs)
{
    for (int i = 0; i < secs * 50 && file_size(path) == 0; i++)
        nanosleep(&(struct timespec){0, 20000000}, NULL);
    return file_size(path) > 0;
}

Test(kafka_runs, two_processes_in_a_group_split_the_partitions_and_one_takes_over_from_a_kill)
{
    start_mock("six:6");
    char *log = t_path(dir, "sluice.log");
    char *cfg_a = config("a.yaml", "six", "pair", "a.json", "");
    char *cfg_b = config("b.yaml", "six", "pair", "b.json", "");
    char *out_a = t_path(dir, "a.json"), *out_b = t_path(dir, "b.json");
    pid_t a = spawn_sluice(cfg_a, log), b = spawn_sluice(cfg_b, log);
    pthread_t th;
    pthread_create(&th, NULL, produce, NULL);
    cr_assert(wait_output(out_a, 60) && wait_output(out_b, 60), "both consume");
    consuming = true;
    while (chunks_done < SO_CHUNKS / 2) nanosleep(&(struct timespec){0, 20000000}, NULL);
    unsigned parts_a = 0, parts_b = 0;
    int *counts = calloc(SO_CHUNKS * SO_CHUNK, sizeof *counts);
    count_file(out_b, counts, SO_CHUNKS * SO_CHUNK, &parts_b);
    kill(a, SIGKILL);
    waitpid(a, NULL, 0);
    pthread_join(th, NULL);
    long total = SO_CHUNKS * SO_CHUNK, missing = total;
    for (int i = 0; i < 600 && missing; i++) { /* B takes A's partitions over: 60 s at most */
        nanosleep(&(struct timespec){0, 100000000}, NULL);
        memset(counts, 0, (size_t)total * sizeof *counts);
        parts_a = parts_b = 0;
        count_file(out_a, counts, total, &parts_a);
        count_file(out_b, counts, total, &parts_b);
        missing = 0;
        for (long k = 0; k < total; k++) missing += counts[k] == 0;
    }
    kill(b, SIGTERM);
    wait_ok(b, log);
    cr_assert_eq(missing, 0, "%ld messages missing", missing);
    cr_assert_eq(parts_b, 0x3f, "B read every partition in the end (%#x)", parts_b);
    cr_assert_neq(parts_a, 0, "A read some before it was killed");
    cr_log_info("scale-out: A read partitions %#x before the kill", parts_a);
    free(counts), free(log), free(cfg_a), free(cfg_b), free(out_a), free(out_b);
}

/* ---- a third process joins ----------------------------------------------
 */

/* Counts what the outputs `outs` hold of the SO_CHUNKS * SO_CHUNK messages; returns how
 * many are missing. */
static long missing_from(char *const *outs, int n, int *counts, unsigned *parts)
{
    long total = SO_CHUNKS * SO_CHUNK, missing = 0;
    memset(counts, 0, (size_t)total * sizeof *counts);
    for (int i = 0; i < n; i++) count_file(outs[i], counts, total, &parts[i]);
    for (long k = 0; k < total; k++) missing += counts[k] == 0;
    return missing;
}

Test(kafka_runs, a_third_process_joins_mid_stream_and_nothing_is_lost)
{
    start_mock("six:6");
    char *log = t_path(dir, "sluice.log"), *cfg[3], *outs[3], name[32];
    pid_t pid[3];
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "%c.yaml", 'a' + i);
        char out[32];
        snprintf(out, sizeof out, "%c.json", 'a' + i);
        cfg[i] = config(name, "six", "trio", out, "");
        outs[i] = t_path(dir, out);
    }
    pid[0] = spawn_sluice(cfg[0], log), pid[1] = spawn_sluice(cfg[1], log);
    pthread_t th;
    pthread_create(&th, NULL, produce, NULL);
    cr_assert(wait_output(outs[0], 60) && wait_output(outs[1], 60), "both consume");
    consuming = true;
    while (chunks_done < SO_CHUNKS / 3) nanosleep(&(struct timespec){0, 20000000}, NULL);
    pid[2] = spawn_sluice(cfg[2], log);
    cr_assert(wait_output(outs[2], 60), "the third one gets partitions");
    pthread_join(th, NULL);
    int *counts = calloc(SO_CHUNKS * SO_CHUNK, sizeof *counts);
    unsigned parts[3] = {0};
    long missing = SO_CHUNKS * SO_CHUNK;
    for (int i = 0; i < 600 && missing; i++) {
        nanosleep(&(struct timespec){0, 100000000}, NULL);
        memset(parts, 0, sizeof parts);
        missing = missing_from(outs, 3, counts, parts);
    }
    for (int i = 0; i < 3; i++) kill(pid[i], SIGTERM);
    for (int i = 0; i < 3; i++) wait_ok(pid[i], log);
    cr_assert_eq(missing, 0, "%ld messages missing", missing);
    cr_assert_eq(parts[0] | parts[1] | parts[2], 0x3f);
    long dup = 0;
    for (long k = 0; k < SO_CHUNKS * SO_CHUNK; k++) dup += counts[k] - 1;
    int64_t committed[6], hw[6];
    cr_assert_eq(t_committed(boot, "trio", "six", 6, committed), 0);
    t_watermarks(boot, "six", 6, hw);
    char *text = t_read(log, NULL);
    /* Never past the end; not always at it: when the three leave at once, the ones that
     * stay a little longer are revoked, and the mock refuses commits while it rebalances. */
    for (int i = 0; i < 6; i++)
        cr_assert(committed[i] > 0 && committed[i] <= hw[i],
                  "partition %d: committed %lld of %lld; log:\n%s", i, (long long)committed[i],
                  (long long)hw[i], text);
    free(text);
    cr_log_info("third member: partitions %#x %#x %#x, %ld read twice", parts[0], parts[1],
                parts[2], dup);
    printf("kafka_runs: a third member joined: partitions %#x %#x %#x, %ld messages read twice\n",
           parts[0], parts[1], parts[2], dup);
    for (int i = 0; i < 3; i++) free(cfg[i]), free(outs[i]);
    free(counts), free(log);
}
