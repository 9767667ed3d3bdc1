/* Crash and restart: the file_copy program (file source -> file sink) is killed with
 * SIGKILL at random points and started again; once a run ends by itself, the output
 * must hold every input line at least once (`sort -u` compared with the input), and the
 * lines delivered twice must stay under one checkpoint's worth per kill on average.
 * 20 trials of 5 kills each: 100 kill points, in fresh directories.
 *
 * A kill point is drawn as an amount of output: the copy is killed once its output has
 * grown by a random number of bytes since it started (up to about a third of the input,
 * so that five kills leave a final run to end by itself; a draw of 0 or less kills it at
 * once, during its start or its recovery from the previous kill). Drawn that way, the
 * points do not depend on how fast a loaded machine runs the copies. The runs use the
 * source's default checkpoint_interval (1 s, longer than a whole run), so only
 * checkpoint_bytes and the save after the first acknowledgement bound the replays. */
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
#define CKPT_BYTES  (1 << 20) /* the copies' checkpoint_bytes */
#define CKPT_OPTION "checkpoint_bytes: 1MiB"

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

static pid_t spawn(const char *bin, const char *in, const char *out, const char *data)
{
    pid_t pid = t_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        execl(bin, bin, in, out, data, "once", CKPT_OPTION, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static long long size_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

/* Waits until the copy has appended `grow` bytes to `out` (then kills it with SIGKILL)
 * or has ended by itself. Returns true when the kill hit a running process. */
static bool kill_after_output(pid_t pid, const char *out, long long grow)
{
    long long target = size_of(out) + grow;
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    cr_assert_geq(pfd, 0, "pidfd_open");
    struct pollfd p = {.fd = pfd, .events = POLLIN};
    bool exited = false;
    while (!(exited = poll(&p, 1, 0) == 1) && size_of(out) < target)
        nanosleep(&(struct timespec){0, 1000000}, NULL); /* the test's own wait: 1 ms */
    close(pfd);
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

/* One trial in directory `td`: KILLS kills, then a run to the end. Adds the kills that
 * hit a running copy to *hits, the duplicates to *dups and the torn lines to *torn. */
static void trial(const char *bin, const char *in, const char *sorted, const char *td,
                  long long in_bytes, int *hits, long *dups, long *torn)
{
    char *out = t_path(td, "out.log");
    mkdir(td, 0755);
    long long span = 2 * in_bytes / (KILLS + 1) + in_bytes / 10;
    for (int k = 0; k < KILLS; k++) {
        long long grow = (long long)((double)rand() / RAND_MAX * (double)span) - in_bytes / 10;
        *hits += kill_after_output(spawn(bin, in, out, td), out, grow);
    }
    run_to_end(spawn(bin, in, out, td));
    long missing = shell_count("LC_ALL=C sort -u %s | LC_ALL=C comm -23 %s - | wc -l", out, sorted);
    cr_assert_eq(missing, 0, "%s: %ld input lines missing", td, missing);
    long extra = shell_count("LC_ALL=C sort -u %s | LC_ALL=C comm -13 %s - | wc -l", out, sorted);
    cr_assert_leq(extra, KILLS, "%s: %ld lines that are not input lines", td, extra);
    *torn += extra;
    *dups += shell_count("wc -l < %s%s", out, "") - INPUT_LINES - extra;
    free(out);
}

Test(file_crash, kill_9_at_100_random_points_loses_no_line_and_replays_little)
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
    long long in_bytes = size_of(in);

    unsigned seed =
        getenv("SLUICE_SEED") ? (unsigned)atoi(getenv("SLUICE_SEED")) : (unsigned)time(0);
    srand(seed);
    int hits = 0;
    long dups = 0, torn = 0;
    for (int t = 0; t < TRIALS; t++) {
        char name[32];
        snprintf(name, sizeof name, "trial-%d", t);
        char *td = t_path(dir, name);
        trial(bin, in, sorted, td, in_bytes, &hits, &dups, &torn);
        free(td);
    }
    long per_ckpt = (long)(CKPT_BYTES / (in_bytes / INPUT_LINES)); /* lines in checkpoint_bytes */
    cr_log_info("seed %u: %d of %d kills hit a running copy; %ld duplicate lines (%ld per hit, "
                "%ld lines in checkpoint_bytes), %ld torn lines, no line lost",
                seed, hits, TRIALS * KILLS, dups, hits ? dups / hits : 0, per_ckpt, torn);
    cr_assert_geq(hits, TRIALS * KILLS / 2, "only %d kills hit a running process", hits);
    cr_assert_leq(dups, (long)hits * per_ckpt,
                  "seed %u: %ld duplicates for %d kills: over one checkpoint (%ld lines) per kill",
                  seed, dups, hits, per_ckpt);
    free(in), free(sorted);
}
