/* Create-style rotation and the writes a renamed file still gets: app.log is renamed to
 * app.log.1 (out of the glob), a new app.log is created, and the writer, not told yet,
 * goes on writing to app.log.1 for a while. Those late lines are read as they come, and a
 * stop or a crash before the renamed file is done with leaves it to the next run, which
 * finishes it; once with inotify and once with polling, the crash through the file_copy
 * program (kill -9). Then what a kill at other moments leaves the next run: the state the
 * checkpoints hold at the first delivery, a row saved before the rename (rotated or not),
 * a row saved while the file was short, a row of an empty file. */
#include <criterion/criterion.h>
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

#include <sluice/builtins.h>

#include "helpers.h"
#include "helpers_file.h"
#include "../connectors/file/internal.h"

static char *dir;
static struct sl_pipeline *p;
static int step; /* the script's position */

static struct sl_pipeline *new_pipeline(void)
{
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.data_dir = dir;
    o.log = t_log_capture;
    struct sl_error err = {0};
    struct sl_pipeline *np = sl_pipeline_new(NULL, &o, &err);
    cr_assert_not_null(np, "%s", err.msg);
    return np;
}

static void setup(void)
{
    dir = t_tmpdir();
    p = new_pipeline();
    step = 0;
}

static void teardown(void)
{
    sl_pipeline_free(p);
    t_rmtree(dir);
    free(dir);
    t_log_clear();
}

TestSuite(file_rotation, .init = setup, .fini = teardown, .timeout = 60);

static char *in_dir(const char *name)
{
    return t_path(dir, name);
}

/* Renames app.log to app.log.1 and writes a new app.log with first..last-1. */
static void rotate(int first, int last)
{
    char *a = in_dir("app.log"), *a1 = in_dir("app.log.1");
    cr_assert_eq(rename(a, a1), 0);
    t_write_numbers(a, first, last, false);
    free(a), free(a1);
}

/* Appends first..last-1 to the renamed app.log.1: the writer's late lines. */
static void late_lines(int first, int last)
{
    char *a1 = in_dir("app.log.1");
    t_write_numbers(a1, first, last, true);
    free(a1);
}

/* ---- late writes as they come --------------------------------------------------------------- */

static void late_step(struct sl_stage *s, struct t_lines *r)
{
    (void)s;
    if (step == 0 && r->n >= 100) {
        step++;
        rotate(100, 150);
    } else if (step == 1 && r->n >= 150) { /* the old file is drained: only late lines now */
        step++;
        late_lines(150, 160);
    } else if (step == 2 && r->n >= 160) {
        sl_pipeline_stop(p);
    }
}

/* rotate_wait is an hour: the late lines come because the renamed file is followed, not
 * because the wait is over. */
static void late_writes(int mode)
{
    char *a = in_dir("app.log");
    t_write_numbers(a, 0, 100, false);
    struct t_lines *r = t_follow(p, dir, mode, "path: %s/app.log\nrotate_wait: 1h", late_step);
    t_assert_numbers_once(r, 0, 160);
    struct sl__file_src *src = sl_stage_state(sl_pipeline_find(p, "src"));
    cr_assert_eq(src->rotations, 1);
    free(a);
}

Test(file_rotation, late_writes_to_a_renamed_file_are_read_as_they_come_inotify)
{
    late_writes(0);
}
Test(file_rotation, late_writes_to_a_renamed_file_are_read_as_they_come_poll)
{
    late_writes(1);
}

/* ---- a stop inside rotate_wait -------------------------------------------------------------- */

static int seen[160]; /* lines delivered by both runs */

static void count_lines(const struct t_lines *r)
{
    for (size_t i = 0; i < r->n; i++) {
        int v = atoi(r->lines[i]);
        cr_assert(v >= 0 && v < 160, "unexpected line %s", r->lines[i]);
        seen[v]++;
    }
}

static void stop_step(struct sl_stage *s, struct t_lines *r)
{
    (void)s;
    if (step == 0 && r->n >= 100) {
        step++;
        rotate(100, 150);
    } else if (step == 1 && r->n >= 150) {
        step++;
        late_lines(150, 160); /* written as sluice stops (SIGINT) */
        sl_pipeline_stop(p);
    }
}

static void resume_step(struct sl_stage *s, struct t_lines *r)
{
    (void)s;
    int total = 0;
    for (int i = 0; i < 160; i++) total += seen[i] > 0;
    if ((size_t)total + r->n >= 160) sl_pipeline_stop(p);
}

static void stop_inside_rotate_wait(int mode)
{
    char *a = in_dir("app.log");
    t_write_numbers(a, 0, 100, false);
    memset(seen, 0, sizeof seen);
    const char *opts = "path: %s/app.log\nrotate_wait: 1h";
    count_lines(t_follow(p, dir, mode, opts, stop_step));
    sl_pipeline_free(p); /* a graceful stop: what was acknowledged is saved */
    p = new_pipeline();
    count_lines(t_follow(p, dir, mode, opts, resume_step));
    for (int i = 0; i < 160; i++)
        cr_assert_eq(seen[i], 1, "line %d delivered %d times", i, seen[i]);
    free(a);
}

Test(file_rotation, a_stop_inside_rotate_wait_leaves_the_renamed_file_to_the_next_run_inotify)
{
    stop_inside_rotate_wait(0);
}
Test(file_rotation, a_stop_inside_rotate_wait_leaves_the_renamed_file_to_the_next_run_poll)
{
    stop_inside_rotate_wait(1);
}

/* ---- kill -9 inside rotate_wait -------------------------------------------------------------- */

static pid_t spawn_copy(const char *in, const char *out, const char *mode, const char *opts)
{
    const char *root = getenv("SLUICE_BUILD_ROOT");
    cr_assert_not_null(root, "SLUICE_BUILD_ROOT");
    char bin[1024];
    snprintf(bin, sizeof bin, "%s/tests/file_copy", root);
    pid_t pid = t_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        execl(bin, bin, in, out, dir, mode, opts, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Runs file_copy over app.log into out.log once (follow: false, source options `opts`),
 * which must succeed. */
static void copy_once(const char *opts)
{
    char *glob = in_dir("app.log"), *out = in_dir("out.log");
    int status;
    pid_t pid = spawn_copy(glob, out, "once", opts);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "file_copy once failed");
    free(glob), free(out);
}

/* Asserts that out.log holds every line first..last-1 (duplicates allowed, none lost) and
 * no other. */
static void assert_delivered(int first, int last)
{
    char *out = in_dir("out.log"), *text = t_read(out, NULL);
    cr_assert_not_null(text, "no output");
    int *count = calloc((size_t)(last - first), sizeof *count);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *end;
        long v = strtol(line, &end, 10);
        cr_assert(end != line && !*end && v >= first && v < last, "unexpected line %s", line);
        count[v - first]++;
    }
    for (int i = first; i < last; i++) cr_assert_geq(count[i - first], 1, "line %d lost", i);
    free(count), free(text), free(out);
}

static long lines_in(const char *path)
{
    size_t len = 0;
    char *text = t_read(path, &len);
    long n = 0;
    for (size_t i = 0; i < len; i++) n += text[i] == '\n';
    free(text);
    return n;
}

/* Waits (10 s at most) until `path` holds `n` lines. */
static void wait_lines(const char *path, long n)
{
    for (int i = 0; i < 10000 && lines_in(path) < n; i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    cr_assert_geq(lines_in(path), n, "%s never got %ld lines", path, n);
}

/* The copy is stopped (SIGSTOP) once it has delivered the new file's lines, the writer's
 * late lines go to the renamed file, and the copy is killed: it cannot have read them.
 * The next run, reading what is there and ending, finishes the renamed file. */
static void kill_inside_rotate_wait(const char *watch)
{
    char *a = in_dir("app.log"), *out = in_dir("out.log"), *glob = in_dir("app.log");
    t_write_numbers(a, 0, 100, false);
    t_writes(out, "", false);
    char opts[256];
    snprintf(opts, sizeof opts, "rotate_wait: 1h\n%s", watch);
    pid_t pid = spawn_copy(glob, out, "follow", opts);
    wait_lines(out, 100);
    rotate(100, 200);
    wait_lines(out, 200);
    cr_assert_eq(kill(pid, SIGSTOP), 0);
    late_lines(200, 210);
    cr_assert_eq(kill(pid, SIGKILL), 0);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    copy_once("");
    assert_delivered(0, 210);
    free(a), free(out), free(glob);
}

Test(file_rotation, a_kill_inside_rotate_wait_leaves_the_renamed_file_to_the_next_run_inotify)
{
    kill_inside_rotate_wait("watch: inotify");
}
Test(file_rotation, a_kill_inside_rotate_wait_leaves_the_renamed_file_to_the_next_run_poll)
{
    kill_inside_rotate_wait("watch: poll\npoll_interval: 20ms");
}

/* ---- what a kill leaves the next run to find --------------------------------------------------
 */

/* What the renamed file's story leaves after a kill at any point: app.log renamed to
 * app.log.1 (out of the glob), a new app.log with 100..199, the writer's late lines
 * 200..209 in app.log.1. */
static void rotate_with_late_lines(void)
{
    rotate(100, 200);
    late_lines(200, 210);
}

/* The state a kill right after the rename leaves when the save of the rename never
 * happened: the row of the last save (here the end of a run that read app.log whole)
 * names app.log, not rotated. With `rotated`, the rename was saved (path app.log.1), and
 * the file was renamed again since (app.log.2). Either way the next run finds it by its
 * inode and reads the late lines from the row's offset. */
static void resume_from_row(bool rotated)
{
    char *a = in_dir("app.log"), *db = in_dir("checkpoints.db"), sql[4200];
    t_write_numbers(a, 0, 100, false);
    copy_once("");
    rotate_with_late_lines();
    if (rotated) {
        char *a1 = in_dir("app.log.1"), *a2 = in_dir("app.log.2");
        snprintf(sql, sizeof sql, "UPDATE file_checkpoints SET rotated = 1, path = '%s';", a1);
        free(t_sqlite(db, sql));
        cr_assert_eq(rename(a1, a2), 0);
        free(a1), free(a2);
    }
    char *rows = t_sqlite(db, "SELECT offset FROM file_checkpoints;");
    cr_assert_str_eq(rows, "290\n");
    copy_once("");
    assert_delivered(0, 210);
    char *text = in_dir("out.log"), *out = t_read(text, NULL);
    cr_assert_null(strstr(out, "\n0\n"), "app.log.1 was read again from its start");
    free(rows), free(text), free(out), free(a), free(db);
}

Test(file_rotation, a_row_saved_before_the_rename_leads_the_next_run_to_the_renamed_file)
{
    resume_from_row(false);
}
Test(file_rotation, a_rotated_row_leads_the_next_run_to_the_file_renamed_again)
{
    resume_from_row(true);
}

static uint64_t inode_of(const char *name)
{
    char *path = in_dir(name);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    free(path);
    return (uint64_t)st.st_ino;
}

static bool empty_first; /* the file is found empty, its lines written after */
static uint64_t app_ino; /* app.log's inode */

/* Ticks: once the source has the empty app.log open, its lines are written. */
static void write_when_open(void)
{
    struct sl__file_src *src = sl_stage_state(sl_pipeline_find(p, "src"));
    if (step != 0 || !src->opened) return;
    step++;
    char *a = in_dir("app.log");
    t_write_numbers(a, 0, 100, true);
    free(a);
}

/* At the first delivery, the checkpoints must already hold a row that leads to app.log
 * (its inode, and first bytes: an empty file's row identifies nothing), and what they
 * hold then is what a kill at that moment would leave: kept as snap.db. */
static void first_delivery_step(struct sl_stage *s, struct t_lines *r)
{
    if (!s && empty_first) write_when_open();
    if (!s || step == 2 || r->n == 0) return;
    step = 2;
    char *db = in_dir("checkpoints.db"), *snap = in_dir("snap.db"), sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM file_checkpoints WHERE ino = %llu AND fp_len > 0;",
             (unsigned long long)app_ino);
    char *rows = t_sqlite(db, sql); /* expected, not asserted: the run goes on to its loss */
    cr_expect_str_eq(rows, "1\n", "a line was delivered before the checkpoints knew its file");
    snprintf(sql, sizeof sql, "VACUUM INTO '%s';", snap);
    free(t_sqlite(db, sql));
    free(rows), free(db), free(snap);
    sl_pipeline_stop(p);
}

/* The run is killed as it delivers its first line; then the file is renamed away and
 * written to. The next run (file_copy, source "in") finds it by its inode. */
static void kill_at_the_first_delivery(bool empty)
{
    char *a = in_dir("app.log"), *snap = in_dir("snap.db"), sql[64], opts[4200];
    t_write_numbers(a, 0, empty ? 0 : 100, false);
    app_ino = inode_of("app.log");
    empty_first = empty;
    t_follow(p, dir, 0, "path: %s/app.log\nrotate_wait: 1h", first_delivery_step);
    cr_assert_eq(step, 2, "no line was delivered");
    snprintf(sql, sizeof sql, "UPDATE file_checkpoints SET source = 'in';");
    free(t_sqlite(snap, sql));
    rotate_with_late_lines();
    snprintf(opts, sizeof opts, "checkpoint: %s", snap);
    copy_once(opts);
    assert_delivered(0, 210);
    free(a), free(snap);
}

Test(file_rotation, a_file_is_known_to_the_checkpoints_before_its_first_line_is_delivered)
{
    kill_at_the_first_delivery(false);
}
Test(file_rotation, a_file_found_empty_is_known_by_its_first_bytes_before_they_are_delivered)
{
    kill_at_the_first_delivery(true);
}

/* A row saved while its file had fewer bytes than a fingerprint (20: lines 0..9) matches
 * that file only while it holds exactly those bytes. Renamed away after it grew, it is
 * still found by its inode and its first bytes, and read from its start rather than left
 * unread with the lines it got since. */
Test(file_rotation, a_renamed_file_saved_while_short_is_read_from_its_start)
{
    char *a = in_dir("app.log"), *db = in_dir("checkpoints.db");
    t_write_numbers(a, 0, 10, false);
    copy_once("");
    char *rows = t_sqlite(db, "SELECT fp_len, offset FROM file_checkpoints;");
    cr_assert_str_eq(rows, "20|20\n");
    t_write_numbers(a, 10, 100, true); /* grows, then is renamed away */
    rotate_with_late_lines();
    copy_once("");
    assert_delivered(0, 210);
    free(rows), free(a), free(db);
}

/* A row of a file that was empty when saved identifies nothing: the file now on its inode
 * under another name in its directory (a reused inode, here a compressed log) is not
 * read for it. */
Test(file_rotation, a_row_of_an_empty_file_does_not_take_another_file_on_its_inode)
{
    char *a = in_dir("app.log"), *gz = in_dir("app.log.2.gz"), *db = in_dir("checkpoints.db");
    t_write_numbers(a, 0, 10, false);
    t_writes(gz, "\x1f\x8b not lines of app.log\n", false);
    copy_once(""); /* makes the database */
    struct stat st;
    cr_assert_eq(stat(gz, &st), 0);
    char sql[4200];
    snprintf(sql, sizeof sql,
             "INSERT INTO file_checkpoints (source, dev, ino, fp, fp_len, offset, path, updated,"
             " rotated) VALUES ('in', %llu, %llu, %lld, 0, 0, '%s/gone.log', strftime('%%s','now'),"
             " 0);",
             (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
             (long long)sl__file_hash("", 0), dir);
    free(t_sqlite(db, sql));
    t_write_numbers(a, 10, 20, true);
    copy_once("");
    assert_delivered(0, 20);
    free(a), free(gz), free(db);
}
