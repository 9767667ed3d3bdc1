/* Crash and restart of the sqlite sink: the sqlite_copy program (file source -> sqlite
 * sink) is killed with SIGKILL at random points and started again; once a run ends by
 * itself, the table holds every input line: `SELECT count(DISTINCT line)` is the input's
 * line count. With `mode: insert` a line replayed after a kill (acknowledged to the
 * source's checkpoint only after its COMMIT, so a kill between the two replays it) may
 * be there twice; with `mode: upsert` on the line as a unique key it is there exactly
 * once. Two trials (insert, upsert) of 8 kills each, in fresh directories.
 *
 * A kill point is drawn as growth of the database (its file and its WAL) since the copy
 * started, up to about a quarter of what a whole copy writes (measured by a reference
 * copy first), so that eight kills leave a final run to end by itself; a draw of 0 or
 * less kills the copy at once, during its start or its recovery from the previous kill.
 * Drawn that way, the points do not depend on how fast a loaded machine runs. */
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

#define INPUT_LINES 200000
#define KILLS       8

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

TestSuite(sqlite_crash, .init = setup, .fini = teardown, .timeout = 240);

static pid_t spawn(const char *bin, const char *in, const char *db, const char *data,
                   const char *mode)
{
    pid_t pid = t_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        execl(bin, bin, in, db, data, mode, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Bytes of the database and its WAL. */
static long long db_size(const char *db)
{
    char wal[4200];
    snprintf(wal, sizeof wal, "%s-wal", db);
    struct stat a, b;
    return (stat(db, &a) == 0 ? (long long)a.st_size : 0) +
           (stat(wal, &b) == 0 ? (long long)b.st_size : 0);
}

/* Waits until the database has grown by `grow` bytes (then kills the copy with SIGKILL)
 * or the copy has ended by itself. Returns true when the kill hit a running process. */
static bool kill_after_growth(pid_t pid, const char *db, long long grow)
{
    long long target = db_size(db) + grow;
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    cr_assert_geq(pfd, 0, "pidfd_open");
    struct pollfd pf = {.fd = pfd, .events = POLLIN};
    bool exited = false;
    while (!(exited = poll(&pf, 1, 0) == 1) && db_size(db) < target)
        nanosleep(&(struct timespec){0, 1000000}, NULL); /* the test's own wait: 1 ms */
    close(pfd);
    if (!exited) kill(pid, SIGKILL);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status)) cr_assert_eq(WEXITSTATUS(status), 0, "sqlite_copy failed");
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

static void run_to_end(pid_t pid)
{
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "sqlite_copy failed");
}

static long sql_long(const char *db, const char *sql)
{
    char *out = t_sqlite(db, sql);
    long n = strtol(out, NULL, 10);
    free(out);
    return n;
}

/* One trial of `mode` in directory `td`: a reference copy, KILLS kills, a run to the
 * end. Returns the kills that hit a running copy; *rows gets the table's rows. */
static int trial(const char *bin, const char *in, const char *mode, long *rows)
{
    char name[64];
    snprintf(name, sizeof name, "ref-%s", mode);
    char *ref = t_path(dir, name), *refdb = t_path(ref, "out.db");
    mkdir(ref, 0755);
    run_to_end(spawn(bin, in, refdb, ref, mode));
    long long whole = db_size(refdb), span = 2 * whole / (KILLS + 1) + whole / 10;
    snprintf(name, sizeof name, "trial-%s", mode);
    char *td = t_path(dir, name), *db = t_path(td, "out.db");
    mkdir(td, 0755);
    int hits = 0;
    for (int k = 0; k < KILLS; k++) {
        long long grow = (long long)((double)rand() / RAND_MAX * (double)span) - whole / 10;
        hits += kill_after_growth(spawn(bin, in, db, td, mode), db, grow);
    }
    run_to_end(spawn(bin, in, db, td, mode));
    cr_assert_eq(sql_long(db, "SELECT count(DISTINCT line) FROM lines;"), INPUT_LINES,
                 "%s: lines missing", mode);
    *rows = sql_long(db, "SELECT count(*) FROM lines;");
    free(ref), free(refdb), free(td), free(db);
    return hits;
}

Test(sqlite_crash, every_line_is_in_the_table_after_kills_and_a_restart)
{
    srand((unsigned)time(NULL));
    const char *root = getenv("SLUICE_BUILD_ROOT");
    cr_assert_not_null(root, "SLUICE_BUILD_ROOT is not set (run through meson test)");
    char bin[4200];
    snprintf(bin, sizeof bin, "%s/tests/sqlite_copy", root);
    char *in = t_path(dir, "in.log");
    t_write_numbers(in, 0, INPUT_LINES, false);
    long inserted, upserted;
    int hits = trial(bin, in, "insert", &inserted);
    hits += trial(bin, in, "upsert", &upserted);
    cr_assert_eq(upserted, INPUT_LINES, "upsert on the line: each line exactly once");
    cr_assert_geq(inserted, INPUT_LINES);
    cr_log_info("%d of %d kills hit a running copy; insert: %ld rows for %d lines (%ld replayed)",
                hits, 2 * KILLS, inserted, INPUT_LINES, inserted - INPUT_LINES);
    printf("sqlite_crash: %d of %d kills hit a running copy; insert: %ld replayed rows\n", hits,
           2 * KILLS, inserted - INPUT_LINES);
    cr_assert_geq(hits, KILLS, "too few kills landed while a copy ran: %d", hits);
    free(in);
}
