/* Create-style rotation and the writes a renamed file still gets: app.log is renamed to
 * app.log.1 (out of the glob), a new app.log is created, and the writer, not told yet,
 * goes on writing to app.log.1 for a while. Those late lines are read as they come, and a
 * stop or a crash before the renamed file is done with leaves it to the next run, which
 * finishes it; once with inotify and once with polling, the crash through the file_copy
 * program (kill -9). */
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
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        execl(bin, bin, in, out, dir, mode, opts, (char *)NULL);
        _exit(127);
    }
    return pid;
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
    pid = spawn_copy(glob, out, "once", "");
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the second run failed");
    char *text = t_read(out, NULL);
    int count[210] = {0};
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        int v = atoi(line);
        cr_assert(v >= 0 && v < 210, "unexpected line %s", line);
        count[v]++;
    }
    for (int i = 0; i < 210; i++) cr_assert_geq(count[i], 1, "line %d lost", i);
    free(text), free(a), free(out), free(glob);
}

Test(file_rotation, a_kill_inside_rotate_wait_leaves_the_renamed_file_to_the_next_run_inotify)
{
    kill_inside_rotate_wait("watch: inotify");
}
Test(file_rotation, a_kill_inside_rotate_wait_leaves_the_renamed_file_to_the_next_run_poll)
{
    kill_inside_rotate_wait("watch: poll\npoll_interval: 20ms");
}
