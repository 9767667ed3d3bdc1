/* The file source following files like `tail -F`: appends, partial lines, rotation by
 * rename and by truncation, new files and directories, deletion; once with inotify and
 * once with polling. Each test drives its next step from the recording sink's write
 * hook (the source has delivered what the step wrote), on the pipeline's own loop, and
 * stops the pipeline when everything expected has arrived: no sleeps decide anything. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <sluice/builtins.h>

#include "helpers.h"
#include "helpers_file.h"
#include "../connectors/file/internal.h"

static char *dir;
static struct sl_pipeline *p;
static int step; /* the script's position */

static void setup(void)
{
    dir = t_tmpdir();
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.data_dir = dir;
    o.log = t_log_capture;
    struct sl_error err = {0};
    p = sl_pipeline_new(NULL, &o, &err);
    cr_assert_not_null(p, "%s", err.msg);
    step = 0;
}

static void teardown(void)
{
    sl_pipeline_free(p);
    t_rmtree(dir);
    free(dir);
    t_log_clear();
}

TestSuite(file_follow, .init = setup, .fini = teardown, .timeout = 60);

/* file source (follow) with `opts` (`%s` = dir) -> t_lines with hook `fn`; runs to the
 * stop and returns the recorder (helpers_file.h). */
static struct t_lines *follow(int mode, const char *opts,
                              void (*fn)(struct sl_stage *, struct t_lines *))
{
    return t_follow(p, dir, mode, opts, fn);
}

static struct sl__file_src *src_state(void)
{
    return sl_stage_state(sl_pipeline_find(p, "src"));
}

static char *in_dir(const char *name)
{
    return t_path(dir, name);
}

/* ---- appends and partial lines ---------------------------------------------------------- */

static void appends_step(struct sl_stage *s, struct t_lines *r)
{
    (void)s;
    char *a = in_dir("a.log");
    if (step == 0 && r->n >= 100) {
        step++;
        t_write_numbers(a, 100, 200, true);
    } else if (step == 1 && r->n >= 200) {
        step++;
        t_writes(a, "200\n20", true); /* a line in two writes: never emitted half */
    } else if (step == 2 && r->n >= 201) {
        step++;
        t_writes(a, "1\n", true);
    } else if (step == 3 && r->n >= 202) {
        sl_pipeline_stop(p);
    }
    free(a);
}

static void appended_lines(int mode)
{
    char *a = in_dir("a.log");
    t_write_numbers(a, 0, 100, false);
    struct t_lines *r = follow(mode, "path: %s/*.log\npartial_line_timeout: 60s", appends_step);
    t_assert_numbers_once(r, 0, 202);
    free(a);
}

Test(file_follow, appended_lines_inotify)
{
    appended_lines(0);
}
Test(file_follow, appended_lines_poll)
{
    appended_lines(1);
}

/* The source's progress (sluice_source_lag_bytes = total - done) follows the file's
 * current size: once the appended lines are read, a checkpoint_interval tick makes it
 * the whole file's, read to its end. */
static void lag_step(struct sl_stage *s, struct t_lines *r)
{
    (void)s;
    char *a = in_dir("a.log");
    if (step == 0 && r->n >= 100) {
        step++;
        t_write_numbers(a, 100, 200, true);
    } else if (step == 1 && r->n >= 200) {
        struct stat st;
        struct sl_stage_stats x = {.size = sizeof x};
        cr_assert_eq(stat(a, &st), 0);
        cr_assert_eq(sl_stage_stats(sl_pipeline_find(p, "src"), &x), 0);
        if (x.progress_total == (uint64_t)st.st_size && x.progress_done == x.progress_total) {
            step++;
            sl_pipeline_stop(p);
        }
    }
    free(a);
}

static void lag_follows_growth(int mode)
{
    char *a = in_dir("a.log");
    t_write_numbers(a, 0, 100, false);
    struct t_lines *r = follow(mode, "path: %s/a.log\ncheckpoint_interval: 10ms", lag_step);
    t_assert_numbers_once(r, 0, 200);
    cr_assert_eq(step, 2, "the progress never reached the grown file's size");
    free(a);
}

Test(file_follow, lag_follows_growth_inotify)
{
    lag_follows_growth(0);
}
Test(file_follow, lag_follows_growth_poll)
{
    lag_follows_growth(1);
}

static void partial_step(struct sl_stage *s, struct t_lines *r)
{
    (void)s;
    char *a = in_dir("a.log");
    if (step == 0 && r->n >= 3) { /* "2" came alone, after partial_line_timeout */
        step++;
        t_writes(a, "3\n4\n", true);
    } else if (step == 1 && r->n >= 5) {
        sl_pipeline_stop(p);
    }
    free(a);
}

static void partial_line(int mode)
{
    char *a = in_dir("a.log");
    t_writes(a, "0\n1\n2", false);
    struct t_lines *r = follow(mode, "path: %s/a.log\npartial_line_timeout: 50ms", partial_step);
    t_assert_numbers_once(r, 0, 5);
    cr_assert_str_eq(r->lines[2], "2");
    free(a);
}

Test(file_follow, partial_last_line_after_timeout_inotify)
{
    partial_line(0);
}
Test(file_follow, partial_last_line_after_timeout_poll)
{
    partial_line(1);
}

/* ---- another process appends while we tail ------------------------------------------------- */

#define CHILD_LINES 100000

static pid_t writer;

static void child_step(struct sl_stage *s, struct t_lines *r)
{
    (void)s;
    if (step == 0 && r->n >= 10) {
        step++;
        writer = t_fork();
        cr_assert_geq(writer, 0);
        if (writer == 0) { /* 1000 appends of 100 lines, as fast as it can */
            char *a = in_dir("a.log");
            for (int i = 0; i < 1000; i++)
                t_write_numbers(a, 10 + i * 100, 10 + (i + 1) * 100, true);
            _exit(0);
        }
    } else if (step == 1 && r->n >= 10 + CHILD_LINES) {
        sl_pipeline_stop(p);
    }
}

static void concurrent_writer(int mode)
{
    char *a = in_dir("a.log");
    t_write_numbers(a, 0, 10, false);
    struct t_lines *r = follow(mode, "path: %s/a.log", child_step);
    int status;
    cr_assert_eq(waitpid(writer, &status, 0), writer);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    t_assert_numbers_once(r, 0, 10 + CHILD_LINES);
    free(a);
}

Test(file_follow, tail_while_another_process_appends_inotify)
{
    concurrent_writer(0);
}
Test(file_follow, tail_while_another_process_appends_poll)
{
    concurrent_writer(1);
}

/* ---- rotation ------------------------------------------------------------------------------ */

static void rename_step(struct sl_stage *s, struct t_lines *r)
{
    (void)s;
    char *a = in_dir("app.log"), *a1 = in_dir("app.log.1");
    if (step == 0 && r->n >= 100) {
        step++;
        t_write_numbers(a, 100, 150, true);
        cr_assert_eq(rename(a, a1), 0);
        t_write_numbers(a, 150, 200, false); /* the new file */
        t_write_numbers(a1, 200, 210, true); /* a late write to the old one */
    } else if (step == 1 && r->n >= 210) {
        step++;
        t_write_numbers(a, 210, 220, true);
    } else if (step == 2 && r->n >= 220) {
        sl_pipeline_stop(p);
    }
    free(a);
    free(a1);
}

static void rotation_by_rename(int mode)
{
    char *a = in_dir("app.log");
    t_write_numbers(a, 0, 100, false);
    struct t_lines *r = follow(mode, "path: %s/app.log", rename_step);
    t_assert_numbers_once(r, 0, 220);
    cr_assert_eq(src_state()->rotations, 1);
    /* Like tail -F: the old file is finished before the new one is read. */
    size_t first_new = r->n;
    for (size_t i = 0; i < r->n; i++)
        if (atoi(r->lines[i]) >= 150 && atoi(r->lines[i]) < 200 && i < first_new) first_new = i;
    for (size_t i = first_new; i < r->n; i++) {
        int v = atoi(r->lines[i]);
        cr_assert(v >= 150, "line %d of the old file came after the new file's lines", v);
    }
    free(a);
}

Test(file_follow, rotation_by_rename_inotify)
{
    rotation_by_rename(0);
}
Test(file_follow, rotation_by_rename_poll)
{
    rotation_by_rename(1);
}

static void rename_in_glob_step(struct sl_stage *s, struct t_lines *r)
{
    (void)s;
    char *a = in_dir("app.log"), *a1 = in_dir("app.log.1");
    if (step == 0 && r->n >= 100) {
        step++;
        cr_assert_eq(rename(a, a1), 0);
        t_write_numbers(a, 100, 150, false);
        t_write_numbers(a1, 150, 160, true);
    } else if (step == 1 && r->n >= 160) {
        sl_pipeline_stop(p);
    }
    free(a);
    free(a1);
}

static void rotation_within_glob(int mode)
{
    char *a = in_dir("app.log");
    t_write_numbers(a, 0, 100, false);
    struct t_lines *r = follow(mode, "path: %s/app.log*", rename_in_glob_step);
    t_assert_numbers_once(r, 0, 160);
    cr_assert_eq(src_state()->rotations, 0); /* still in the glob: simply renamed */
    cr_assert_eq(src_state()->opened, 2);
    free(a);
}

Test(file_follow, rename_within_the_glob_inotify)
{
    rotation_within_glob(0);
}
Test(file_follow, rename_within_the_glob_poll)
{
    rotation_within_glob(1);
}

static void truncate_step(struct sl_stage *s, struct t_lines *r)
{
    (void)s;
    char *a = in_dir("a.log");
    if (step == 0 && r->n >= 100) {
        step++;
        t_write_numbers(a, 100, 150, false); /* O_TRUNC, then fewer bytes than before */
    } else if (step == 1 && r->n >= 150) {
        step++;
        t_write_numbers(a, 150, 160, true);
    } else if (step == 2 && r->n >= 160) {
        sl_pipeline_stop(p);
    }
    free(a);
}

static void rotation_by_truncation(int mode)
{
    char *a = in_dir("a.log");
    t_write_numbers(a, 0, 100, false);
    struct t_lines *r = follow(mode, "path: %s/a.log", truncate_step);
    t_assert_numbers_once(r, 0, 160);
    cr_assert_eq(src_state()->truncations, 1);
    free(a);
}

Test(file_follow, rotation_by_truncation_inotify)
{
    rotation_by_truncation(0);
}
Test(file_follow, rotation_by_truncation_poll)
{
    rotation_by_truncation(1);
}

/* ---- new files, new directories, deleted files ----------------------------------------------- */

static void new_file_step(struct sl_stage *s, struct t_lines *r)
{
    (void)s;
    if (step == 0 && r->n >= 50) {
        step++;
        char *b = in_dir("b.log"), *c = in_dir("c.txt");
        t_write_numbers(c, 1000, 1010, false); /* does not match */
        t_write_numbers(b, 50, 100, false);
        free(b);
        free(c);
    } else if (step == 1 && r->n >= 100) {
        sl_pipeline_stop(p);
    }
}

static void glob_new_file(int mode)
{
    char *a = in_dir("a.log");
    t_write_numbers(a, 0, 50, false);
    struct t_lines *r = follow(mode, "path: %s/*.log", new_file_step);
    t_assert_numbers_once(r, 0, 100);
    free(a);
}

Test(file_follow, glob_picks_up_a_new_file_inotify)
{
    glob_new_file(0);
}
Test(file_follow, glob_picks_up_a_new_file_poll)
{
    glob_new_file(1);
}

static void new_dir_step(struct sl_stage *s, struct t_lines *r)
{
    (void)s;
    char *d2 = in_dir("d2"), *f2 = in_dir("d2/app.log");
    if (step == 0 && r->n >= 10) {
        step++;
        cr_assert_eq(mkdir(d2, 0755), 0);
        t_write_numbers(f2, 10, 20, false);
    } else if (step == 1 && r->n >= 20) {
        step++;
        t_write_numbers(f2, 20, 30, true); /* needs the new directory to be watched */
    } else if (step == 2 && r->n >= 30) {
        sl_pipeline_stop(p);
    }
    free(d2);
    free(f2);
}

static void glob_new_directory(int mode)
{
    char *d1 = in_dir("d1"), *f1 = in_dir("d1/app.log");
    cr_assert_eq(mkdir(d1, 0755), 0);
    t_write_numbers(f1, 0, 10, false);
    struct t_lines *r = follow(mode, "path: %s/*/app.log", new_dir_step);
    t_assert_numbers_once(r, 0, 30);
    free(d1);
    free(f1);
}

Test(file_follow, glob_picks_up_a_new_directory_inotify)
{
    glob_new_directory(0);
}
Test(file_follow, glob_picks_up_a_new_directory_poll)
{
    glob_new_directory(1);
}

/* Descriptors of this process open on a deleted file called `name`. */
static int open_deleted(const char *name)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        char link[64], target[4096];
        snprintf(link, sizeof link, "/proc/self/fd/%.32s", e->d_name);
        ssize_t len = readlink(link, target, sizeof target - 1);
        if (len <= 0) continue;
        target[len] = '\0';
        if (strstr(target, name) && strstr(target, "(deleted)")) n++;
    }
    closedir(d);
    return n;
}

static void delete_step(struct sl_stage *s, struct t_lines *r)
{
    (void)s;
    if (step == 0 && r->n >= 50) {
        step++;
        char *a = in_dir("a.log"), *b = in_dir("b.log");
        t_write_numbers(a, 50, 60, true); /* written, then deleted before it is read */
        cr_assert_eq(unlink(a), 0);
        t_write_numbers(b, 60, 70, false);
        free(a);
        free(b);
    } else if (step == 1 && r->n >= 70) {
        sl_pipeline_stop(p);
    }
}

static void deleted_file(int mode)
{
    char *a = in_dir("a.log");
    t_write_numbers(a, 0, 50, false);
    struct t_lines *r = follow(mode, "path: %s/*.log", delete_step);
    t_assert_numbers_once(r, 0, 70);
    cr_assert_eq(src_state()->deletions, 1);
    cr_assert_eq(open_deleted("a.log"), 0, "the deleted file is still open");
    free(a);
}

Test(file_follow, deleted_file_is_drained_and_released_inotify)
{
    deleted_file(0);
}
Test(file_follow, deleted_file_is_drained_and_released_poll)
{
    deleted_file(1);
}

/* ---- a file that cannot be read ------------------------------------------------------------ */

static void unreadable_step(struct sl_stage *s, struct t_lines *r)
{
    (void)s;
    char *b = in_dir("b.log");
    if (step == 0 && r->n >= 10) {
        step++;
        t_write_numbers(b, 10, 20, false); /* found by a later scan */
    } else if (step == 1 && r->n >= 20) {
        sl_pipeline_stop(p);
    }
    free(b);
}

/* Root can read any file, so the unreadable one is a symbolic link to itself (ELOOP; see
 * test_file_source.c): reported with its reason once, not at every rescan. */
static void unreadable_once(int mode)
{
    char *a = in_dir("a.log"), *loop = in_dir("loop.log");
    t_write_numbers(a, 0, 10, false);
    cr_assert_eq(symlink("loop.log", loop), 0);
    struct t_lines *r = follow(mode, "path: %s/*.log", unreadable_step);
    t_assert_numbers_once(r, 0, 20);
    char want[1024];
    snprintf(want, sizeof want, "warn src: cannot open %s: Too many levels of symbolic links\n",
             loop);
    const char *at = strstr(t_log_text, want);
    cr_assert_not_null(at, "%s", t_log_text);
    cr_assert_null(strstr(at + 1, want), "reported twice:\n%s", t_log_text);
    cr_assert_geq(src_state()->scans, 2);
    free(a), free(loop);
}

Test(file_follow, an_unreadable_file_is_reported_once_inotify)
{
    unreadable_once(0);
}
Test(file_follow, an_unreadable_file_is_reported_once_poll)
{
    unreadable_once(1);
}

/* ---- idle costs nothing ---------------------------------------------------------------------- */

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

static void stop_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    sl_pipeline_stop(p);
}

static void idle_follow(int mode)
{
    char *a = in_dir("a.log");
    t_write_numbers(a, 0, 10, false);
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "path: %s/a.log\nfollow: true\n%s", dir, t_follow_modes[mode]);
    struct sl_stage *src = t_add(p, "src", &sl_stage_file_source, yaml);
    struct sl_stage *out = t_add(p, "out", &t_lines, NULL);
    t_connect(p, src, out);
    struct event *ev = evtimer_new(sl_pipeline_event_base(p), stop_timer, NULL);
    struct timeval tv = {0, 500000};
    evtimer_add(ev, &tv);
    double t0 = cpu_seconds();
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "%s", err.msg);
    double used = cpu_seconds() - t0;
    event_free(ev);
    cr_assert_eq(((struct t_lines *)sl_stage_state(out))->n, 10);
    cr_assert_lt(used, 0.05, "following an idle file for 0.5 s used %.3f s of CPU", used);
    free(a);
}

Test(file_follow, idle_following_uses_no_cpu_inotify)
{
    idle_follow(0);
}
Test(file_follow, idle_following_uses_no_cpu_poll)
{
    idle_follow(1);
}

/* ---- stop and start again ----------------------------------------------------------------------
 */

static int stop_at; /* lines after which restart_step stops the pipeline */

static void restart_step(struct sl_stage *s, struct t_lines *r)
{
    (void)s;
    if ((int)r->n >= stop_at) sl_pipeline_stop(p);
}

static void stop_and_restart(int mode)
{
    char *a = in_dir("a.log");
    t_write_numbers(a, 0, 100, false);
    stop_at = 100;
    t_assert_numbers_once(follow(mode, "path: %s/a.log", restart_step), 0, 100);
    sl_pipeline_free(p); /* a graceful stop: every acknowledged offset is saved */
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.data_dir = dir;
    p = sl_pipeline_new(NULL, &o, NULL);
    t_write_numbers(a, 100, 150, true);
    stop_at = 50;
    t_assert_numbers_once(follow(mode, "path: %s/a.log", restart_step), 100, 150);
    free(a);
}

Test(file_follow, stop_and_restart_resumes_exactly_inotify)
{
    stop_and_restart(0);
}
Test(file_follow, stop_and_restart_resumes_exactly_poll)
{
    stop_and_restart(1);
}
