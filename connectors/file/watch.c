/* How a following source notices change: two backends behind one ops table.
 *
 * inotify: the directories the globs can match in are watched, and the inotify fd is
 * one more fd on the stage's libevent loop. A write to a known file marks it readable;
 * a create, rename or delete of a path that matches a glob asks for a rescan. A file
 * renamed out of the glob is watched alone (through /proc/self/fd: wherever it went)
 * until it is released. When a directory cannot be watched yet (it does not exist), a
 * timer rescans every poll_interval until it can.
 *
 * poll: a timer rescans every poll_interval; the scan's stat() of every file (fstat() of
 * the renamed ones) finds growth and truncation. Neither backend ever spins: without events,
 * nothing runs. */
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <event2/event.h>

#include "internal.h"

/* ---- inotify ------------------------------------------------------------------------- */

struct watched_dir {
    int wd;    /* watch descriptor */
    char *dir; /* the path it was added as (owned) */
};

struct creation {
    char *path; /* a path the globs match (owned) */
    unsigned n; /* times it was created since the last scan */
};

struct inotify_watch {
    int fd;                   /* inotify instance */
    struct event *ev;         /* read event on fd */
    struct watched_dir *dirs; /* n used of cap */
    size_t n, cap;            /* entries */
    struct creation *made;    /* paths created since the last scan */
    size_t nmade, made_cap;   /* entries */
    struct sl_timer *retry;   /* rescans while a directory could not be watched */
    bool missing;             /* a directory could not be watched at the last scan */
};

#define DIR_MASK                                                                                   \
    (IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE |            \
     IN_DELETE_SELF | IN_MOVE_SELF)

static const char *dir_of(struct inotify_watch *w, int wd)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->dirs[i].wd == wd) return w->dirs[i].dir;
    return NULL;
}

static void forget_wd(struct inotify_watch *w, int wd)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->dirs[i].wd == wd) {
            free(w->dirs[i].dir);
            w->dirs[i] = w->dirs[--w->n];
            return;
        }
}

static bool matches_glob(const struct sl__file_src *s, const char *path)
{
    for (size_t i = 0; i < s->nglobs; i++)
        if (fnmatch(s->globs[i], path, FNM_PATHNAME) == 0) return true;
    return false;
}

static void count_creation(struct inotify_watch *w, const char *path)
{
    for (size_t i = 0; i < w->nmade; i++)
        if (strcmp(w->made[i].path, path) == 0) {
            w->made[i].n++;
            return;
        }
    if (w->nmade == w->made_cap) {
        size_t cap = w->made_cap ? w->made_cap * 2 : 8;
        struct creation *nm = realloc(w->made, cap * sizeof *nm);
        if (!nm) return;
        w->made = nm;
        w->made_cap = cap;
    }
    char *copy = strdup(path);
    if (copy) w->made[w->nmade++] = (struct creation){.path = copy, .n = 1};
}

static unsigned inotify_created(struct sl__file_src *s, const char *path)
{
    struct inotify_watch *w = s->watch;
    for (size_t i = 0; w && i < w->nmade; i++)
        if (strcmp(w->made[i].path, path) == 0) return w->made[i].n;
    return 0;
}

static void inotify_scanned(struct sl__file_src *s)
{
    struct inotify_watch *w = s->watch;
    for (size_t i = 0; w && i < w->nmade; i++) free(w->made[i].path);
    if (w) w->nmade = 0;
}

/* An event on the watch of a file alone (renamed out of the glob): it was written to. */
static bool on_file_event(struct sl__file_src *s, const struct inotify_event *ev)
{
    for (struct sl__file *f = s->files; f; f = f->next)
        if (f->wd == ev->wd) {
            if (ev->mask & IN_IGNORED)
                f->wd = 0; /* the file is gone: its watch with it */
            else
                sl__file_mark_readable(s, f);
            return true;
        }
    return false;
}

/* One event: which file may have grown, or whether the set of files may have changed. */
static void on_event(struct sl__file_src *s, struct inotify_watch *w,
                     const struct inotify_event *ev)
{
    if (ev->mask & IN_Q_OVERFLOW) { /* events were lost: look at everything */
        s->rescan = true;
        for (struct sl__file *f = s->files; f; f = f->next) sl__file_mark_readable(s, f);
        return;
    }
    if (!dir_of(w, ev->wd)) { /* a file's own watch, or one removed already */
        on_file_event(s, ev);
        return;
    }
    if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
        forget_wd(w, ev->wd);
        w->missing = true; /* it may come back: keep rescanning */
        sl_timer_start(w->retry, s->poll_interval, true);
        s->rescan = true;
        return;
    }
    const char *dir = dir_of(w, ev->wd);
    if (!dir || !ev->len) return;
    char path[4096];
    if (strcmp(dir, ".") == 0) /* patterns are kept without "./", and so are paths */
        snprintf(path, sizeof path, "%s", ev->name);
    else
        snprintf(path, sizeof path, "%s/%s", strcmp(dir, "/") ? dir : "", ev->name);
    if (ev->mask & (IN_MODIFY | IN_CLOSE_WRITE)) {
        struct sl__file *f = sl__file_by_path(s, path);
        if (f) sl__file_mark_readable(s, f);
    }
    if ((ev->mask & (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE)) &&
        (matches_glob(s, path) || sl__file_by_path(s, path) || (ev->mask & IN_ISDIR)))
        s->rescan = true;
    /* Created more than once before the next scan: files unseen (a file renamed to it may
     * be one the glob follows, so only creations count; rotation.c) */
    if ((ev->mask & IN_CREATE) && !(ev->mask & IN_ISDIR) && matches_glob(s, path))
        count_creation(w, path);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct sl__file_src *s = arg;
    struct inotify_watch *w = s->watch;
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            on_event(s, w, ev);
            p += sizeof *ev + ev->len;
        }
    }
    sl_stage_wake(s->stage);
}

static void on_retry(struct sl_stage *stage, void *arg)
{
    struct sl__file_src *s = arg;
    struct inotify_watch *w = s->watch;
    if (!w->missing) { /* every directory is watched since the last scan */
        sl_timer_stop(w->retry);
        return;
    }
    w->missing = false;
    s->rescan = true;
    sl_stage_wake(stage);
}

static void inotify_stop(struct sl__file_src *s)
{
    struct inotify_watch *w = s->watch;
    if (!w) return;
    if (w->ev) event_free(w->ev);
    sl_timer_free(w->retry);
    if (w->fd >= 0) close(w->fd);
    for (size_t i = 0; i < w->n; i++) free(w->dirs[i].dir);
    free(w->dirs);
    inotify_scanned(s);
    free(w->made);
    free(w);
    s->watch = NULL;
}

static int inotify_start(struct sl__file_src *s, struct sl_error *err)
{
    struct inotify_watch *w = calloc(1, sizeof *w);
    if (!w) return sl_error_set(err, SL_ENOMEM, "out of memory");
    s->watch = w;
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        int e = errno;
        inotify_stop(s);
        return sl_error_set(err, SL_EIO, "inotify: %s", strerror(e));
    }
    w->ev = event_new(sl_stage_event_base(s->stage), w->fd, EV_READ | EV_PERSIST, on_readable, s);
    w->retry = sl_timer_new(s->stage, on_retry, s);
    if (!w->ev || !w->retry || event_add(w->ev, NULL)) {
        inotify_stop(s);
        return sl_error_set(err, SL_ENOMEM, "cannot watch the inotify descriptor");
    }
    return 0;
}

static void inotify_add_dir(struct sl__file_src *s, const char *dir)
{
    struct inotify_watch *w = s->watch;
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->dirs[i].dir, dir) == 0) return;
    int wd = inotify_add_watch(w->fd, dir, DIR_MASK);
    if (wd < 0) {
        if (!w->missing)
            sl_stage_log(s->stage, SL_LOG_DEBUG, "cannot watch %s yet: %s", dir, strerror(errno));
        w->missing = true;
        sl_timer_start(w->retry, s->poll_interval, true);
        return;
    }
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 8;
        struct watched_dir *nd = realloc(w->dirs, cap * sizeof *nd);
        if (!nd) return;
        w->dirs = nd;
        w->cap = cap;
    }
    char *copy = strdup(dir);
    if (!copy) return;
    w->dirs[w->n++] = (struct watched_dir){.wd = wd, .dir = copy};
}

/* Watches the file itself through its descriptor: it is wherever it was renamed to. */
static void inotify_watch_file(struct sl__file_src *s, struct sl__file *f)
{
    struct inotify_watch *w = s->watch;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", f->fd);
    int wd = f->fd >= 0 ? inotify_add_watch(w->fd, path, IN_MODIFY) : -1;
    if (wd < 0) {
        sl_stage_log(s->stage, SL_LOG_DEBUG, "cannot watch %s alone: %s (read at rotate_wait)",
                     f->path, strerror(errno));
        return;
    }
    if (dir_of(w, wd)) return; /* the very directory inode? never for a regular file */
    f->wd = wd;
}

static void inotify_unwatch_file(struct sl__file_src *s, struct sl__file *f)
{
    struct inotify_watch *w = s->watch;
    if (w && f->wd > 0) inotify_rm_watch(w->fd, f->wd); /* its IN_IGNORED finds no file */
    f->wd = 0;
}

const struct sl__file_watch_ops sl__file_watch_inotify = {
    .name = "inotify",
    .start = inotify_start,
    .add_dir = inotify_add_dir,
    .stop = inotify_stop,
    .created = inotify_created,
    .scanned = inotify_scanned,
    .watch_file = inotify_watch_file,
    .unwatch_file = inotify_unwatch_file,
};

/* ---- polling ------------------------------------------------------------------------- */

static void on_tick(struct sl_stage *stage, void *arg)
{
    struct sl__file_src *s = arg;
    s->rescan = true;
    sl_stage_wake(stage);
}

static int poll_start(struct sl__file_src *s, struct sl_error *err)
{
    struct sl_timer *t = sl_timer_new(s->stage, on_tick, s);
    if (!t) return sl_error_set(err, SL_ENOMEM, "out of memory");
    sl_timer_start(t, s->poll_interval, true);
    s->watch = t;
    return 0;
}

static void poll_add_dir(struct sl__file_src *s, const char *dir)
{
    (void)s, (void)dir; /* every tick rescans every glob */
}

static void poll_stop(struct sl__file_src *s)
{
    sl_timer_free(s->watch);
    s->watch = NULL;
}

const struct sl__file_watch_ops sl__file_watch_poll = {
    .name = "poll",
    .start = poll_start,
    .add_dir = poll_add_dir,
    .stop = poll_stop,
};
