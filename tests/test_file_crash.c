/* Crash and restart: the file_copy program (file source -> file sink) is killed with
 * SIGKILL at random points and started again; once a run ends by itself, the output
 * must hold every input line at least once (`sort -u` compared with the input).
 * Duplicates are allowed, loss is not. 20 trials of 5 kills each: 100 kill points, in
 * fresh directories, some of them during the recovery from the previous kill. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <poll.h>
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

#define INPUT_LINES 400000
#define TRIALS      20
#define KILLS       5

static char *dir;

static void setup(void)
{
    dir = t_tmpdir();
}

static void teardown(void)
{
    t_rmtree(dir);
    free(dir);
}

TestSuite(file_crash, .init = setup, .fini = teardown, .timeout = 180);

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static pid_t spawn(const char *bin, const char *in, const char *out, const char *data)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        execl(bin, bin, in, out, data, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Waits up to `ms` for the child to end by itself; kills it with SIGKILL otherwise.
 * Returns true when the kill hit a running process. */
static bool kill_after(pid_t pid, int ms)
{
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    bool exited = false;
    if (pfd >= 0) {
        struct pollfd p = {.fd = pfd, .events = POLLIN};
        exited = poll(&p, 1, ms) == 1;
        close(pfd);
    }
    if (!exited) kill(pid, SIGKILL);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status)) cr_assert_eq(WEXITSTATUS(status), 0, "file_copy failed");
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

static void run_to_end(pid_t pid)
{
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "file_copy failed");
}

static long shell_count(const char *fmt, const char *a, const char *b)
{
    char cmd[2048], body[1800];
    snprintf(body, sizeof body, fmt, a, b);
    /* meson's MALLOC_PERTURB_ makes sort fill its big buffers, tenfold slower */
    snprintf(cmd, sizeof cmd, "unset MALLOC_PERTURB_; %s", body);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    long n = -1;
    cr_assert_eq(fscanf(f, "%ld", &n), 1, "%s", cmd);
    pclose(f);
    return n;
}

Test(file_crash, kill_9_at_100_random_points_loses_no_line)
{
    const char *root = getenv("SLUICE_BUILD_ROOT");
    cr_assert_not_null(root, "SLUICE_BUILD_ROOT");
    char bin[1024];
    snprintf(bin, sizeof bin, "%s/tests/file_copy", root);
    char *in = t_path(dir, "in.log"), *sorted = t_path(dir, "in.sorted");
    FILE *f = fopen(in, "w");
    for (int i = 0; i < INPUT_LINES; i++)
        fprintf(f, "{\"seq\":%d,\"level\":\"info\",\"msg\":\"served in %d ms\"}\n", i, i % 997);
    fclose(f);
    cr_assert_eq(shell_count("LC_ALL=C sort -u %s > %s; echo 0", in, sorted), 0);

    /* How long one whole run takes: kill points are drawn from that span. */
    char *probe = t_path(dir, "probe");
    mkdir(probe, 0755);
    char *probe_out = t_path(probe, "out.log");
    double t0 = now_ms();
    run_to_end(spawn(bin, in, probe_out, probe));
    int span = (int)(now_ms() - t0) + 1;

    unsigned seed =
        getenv("SLUICE_SEED") ? (unsigned)atoi(getenv("SLUICE_SEED")) : (unsigned)time(0);
    srand(seed);
    int hits = 0;
    long dups = 0, torn = 0;
    for (int t = 0; t < TRIALS; t++) {
        char name[32];
        snprintf(name, sizeof name, "trial-%d", t);
        char *td = t_path(dir, name), *out = t_path(td, "out.log");
        mkdir(td, 0755);
        /* Kill points over about the first 5/6 of the work, so that most kills find a
         * copy still running; a final run then ends by itself. */
        for (int k = 0; k < KILLS; k++)
            hits += kill_after(spawn(bin, in, out, td), rand() % (2 * span / (KILLS + 1) + 1));
        run_to_end(spawn(bin, in, out, td));
        long missing =
            shell_count("LC_ALL=C sort -u %s | LC_ALL=C comm -23 %s - | wc -l", out, sorted);
        cr_assert_eq(missing, 0, "trial %d (seed %u): %ld input lines missing", t, seed, missing);
        long extra =
            shell_count("LC_ALL=C sort -u %s | LC_ALL=C comm -13 %s - | wc -l", out, sorted);
        cr_assert_leq(extra, KILLS, "trial %d: %ld lines that are not input lines", t, extra);
        torn += extra;
        dups += shell_count("wc -l < %s%s", out, "") - INPUT_LINES - extra;
        free(td);
        free(out);
    }
    cr_log_info("seed %u, run span %d ms: %d of %d kills hit a running copy; %ld duplicate "
                "lines, %ld torn lines, no line lost",
                seed, span, hits, TRIALS * KILLS, dups, torn);
    cr_assert_geq(hits, TRIALS * KILLS / 2, "only %d kills hit a running process", hits);
    free(in), free(sorted), free(probe), free(probe_out);
}
