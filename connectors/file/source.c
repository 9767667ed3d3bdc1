/* The `file` source: reads files named by globs, follows them like `tail -F`, and keeps
 * per-file checkpoints of what every sink has acknowledged.
 *
 * Reading: pread() of read_buffer bytes straight into the batch arena at the file's
 * position; lines are events pointing into that block. A partial last line is not
 * carried over: the position stays at its start and the next read begins there, so no
 * per-file buffer exists and memory is bounded by the batches alone. A batch holds lines
 * of one file; its cookie names an entry of a ring of batches in flight, and acks.c moves
 * the file's acknowledged offset and saves checkpoints. Before reading on, the file's
 * first bytes are compared with its fingerprint (identity.c): new content on the same
 * inode is read from 0; and a file is read only once a saved checkpoint row leads to it
 * (acks.c), so that a crash never leaves delivered lines of a file the next run cannot
 * find.
 *
 * Following: scan.c decides what the files are, watch.c notices change, and a file is
 * read whenever it is marked readable. Nothing runs while nothing changes. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sluice/builtins.h>
#include <sluice/config.h>

#include "internal.h"

#define MAX_BLOCKS_PER_POLL 16          /* reads per poll before yielding to the loop */
#define MIN_READ            (16 * 1024) /* smallest read when sizing to fill a batch */

/* ---- marking files ----------------------------------------------------------------- */

void sl__file_mark_readable(struct sl__file_src *s, struct sl__file *f)
{
    if (f->fd < 0) return;
    f->readable = true;
    sl_stage_wake(s->stage);
}

void sl__file_arm(struct sl__file_src *s, struct sl_timer *t, int64_t *deadline, int64_t in_ms)
{
    int64_t when = sl_stage_now_ms(s->stage) + in_ms;
    if (*deadline && *deadline <= when) return; /* already due sooner: never postponed */
    *deadline = when;
    sl_timer_start(t, in_ms, false);
}

void sl__file_unblock(struct sl__file_src *s, struct sl__file *f)
{
    for (struct sl__file *g = s->files; g; g = g->next)
        if (g->after == f) {
            g->after = NULL;
            sl__file_mark_readable(s, g);
        }
}

void sl__file_free(struct sl__file *f)
{
    if (f->fd >= 0) close(f->fd);
    free(f->now_at);
    free(f->path);
    free(f);
}

void sl__file_release(struct sl__file_src *s, struct sl__file *f)
{
    sl__file_unwatch(s, f); /* a renamed file stays `renamed` until its batches are acked */
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
    f->state = SL__FILE_CLOSED;
    f->readable = false;
    f->dirty = true; /* its final offset (or its removal) goes to the next save */
    sl__file_unhash(s, f);
    sl__file_unblock(s, f);
}

static struct sl__file *next_readable(struct sl__file_src *s)
{
    struct sl__file *start = s->cursor && s->cursor->next ? s->cursor->next : s->files;
    struct sl__file *f = start;
    if (!f) return NULL;
    do {
        if (f->readable && f->fd >= 0 && !f->after) return s->cursor = f;
        f = f->next ? f->next : s->files;
    } while (f != start);
    return NULL;
}

static bool all_closed(const struct sl__file_src *s)
{
    for (const struct sl__file *f = s->files; f; f = f->next)
        if (f->state != SL__FILE_CLOSED) return false;
    return true;
}

/* ---- reading ----------------------------------------------------------------------- */

/* How much to read next: a block, or about what the batch still takes once the size of
 * a full batch is known, so that a batch does not leave most of a block to be read
 * again. */
static size_t read_size(const struct sl__file_src *s, uint64_t taken)
{
    size_t block = (size_t)s->read_buffer;
    if (!s->batch_bytes) return block;
    uint64_t want = s->batch_bytes + 4096; /* when short, one small read tops it up */
    uint64_t left = want > taken ? want - taken : 0;
    if (left < MIN_READ) left = MIN_READ;
    return left < block ? (size_t)left : block;
}

/* Emit a last line without newline at this end of file? */
static bool tail_due(const struct sl__file_src *s, const struct sl__file *f)
{
    return !s->follow || f->partial_due || f->final || f->state == SL__FILE_DELETED;
}

/* The read reached the end of what the file holds now. */
static void at_end(struct sl__file_src *s, struct sl__file *f, bool partial)
{
    f->readable = false;
    if (partial && !f->partial_since) {
        f->partial_since = sl_stage_now_ms(s->stage);
        sl__file_arm(s, s->partial_timer, &s->partial_deadline, s->partial_line_timeout);
    } else if (!partial) {
        f->partial_since = 0;
        f->partial_due = false;
    }
    if (!s->follow || f->state == SL__FILE_DELETED || f->final)
        sl__file_release(s, f);
    else
        sl__file_unblock(s, f);
}

/* pread() found nothing at pos: a followed file may have been truncated. */
static bool check_truncated(struct sl__file_src *s, struct sl__file *f)
{
    struct stat st;
    if (!s->follow || f->state != SL__FILE_ACTIVE || fstat(f->fd, &st)) return false;
    f->size = (uint64_t)st.st_size;
    if (f->size >= f->pos) return false;
    sl__file_new_content(s, f, true);
    return true;
}

static void read_failed(struct sl__file_src *s, struct sl__file *f)
{
    s->read_errors++;
    sl_stage_count_errors(s->stage, 1);
    sl_stage_log(s->stage, SL_LOG_ERROR, "%s: read failed at offset %llu: %s", f->path,
                 (unsigned long long)f->pos, strerror(errno));
    sl__file_release(s, f);
}

static const char *batch_strdup(struct sl_batch *b, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = sl_batch_alloc(b, n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Before reading on from f->pos: is it still the content read so far? A file too short to
 * tell whether it is a copy is decided first, with what it holds now. Returns false when
 * it is not to be read yet. */
static bool ready_to_read(struct sl__file_src *s, struct sl__file *f)
{
    if (f->undecided) {
        struct stat st;
        if (fstat(f->fd, &st) == 0) f->size = (uint64_t)st.st_size;
        sl__file_fingerprint(f);
        if (sl__file_settle(s, f, f->decide_now) == SL__FILE_UNDECIDED) {
            f->readable = false;
            return false;
        }
        sl_stage_log(s->stage, SL_LOG_INFO, "reading %s from offset %llu", f->path,
                     (unsigned long long)f->pos);
    } else if (sl__file_head_changed(f)) {
        sl__file_new_content(s, f, false);
    }
    return sl__file_may_read(s, f);
}

/* `f` was empty when checked (no byte to identify it by: read without a row) and has bytes
 * now: they wait until a row leads to it. Returns true when the read must wait. */
static bool written_since_check(struct sl__file_src *s, struct sl__file *f)
{
    if (f->known || f->fp_len) return false;
    sl__file_fingerprint(f);
    return f->fp_len && !sl__file_may_read(s, f); /* no head read: the read says why */
}

/* Reads lines of `f` into `b` until the batch is full or the file has no more now. */
static void read_file(struct sl__file_src *s, struct sl__file *f, struct sl_batch *b)
{
    struct sl__file_origin org = {.path = batch_strdup(b, f->path), .time_ns = sl__file_now_ns()};
    uint64_t first = f->pos;
    if (!org.path || !ready_to_read(s, f)) return;
    for (int blocks = 0; blocks < MAX_BLOCKS_PER_POLL; blocks++) {
        size_t cap = f->big_read ? (size_t)s->max_line_bytes + 1 : read_size(s, f->pos - first);
        char *buf = sl_batch_alloc(b, cap);
        if (!buf) return;
        ssize_t n = pread(f->fd, buf, cap, (off_t)f->pos);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            read_failed(s, f);
            return;
        }
        if (n == 0) {
            if (check_truncated(s, f)) {
                if (!sl__file_may_read(s, f)) return;
                continue;
            }
            at_end(s, f, false);
            return;
        }
        if (written_since_check(s, f)) return;
        bool eof = (size_t)n < cap;
        org.base = f->pos;
        size_t used =
            sl__file_lines_split(&s->lines, &f->fr, b, buf, (size_t)n, eof && tail_due(s, f), &org);
        f->pos += used;
        if (f->pos > f->size) f->size = f->pos;
        if (used) f->big_read = false;
        if (sl_batch_full(b)) {
            s->batch_bytes = f->pos - first;
            return;
        }
        if (eof) {
            at_end(s, f, used < (size_t)n);
            return;
        }
        if (!used) f->big_read = true; /* one line longer than the block */
    }
}

static enum sl_poll file_poll(struct sl_stage *stage, struct sl_batch **out)
{
    struct sl__file_src *s = sl_stage_state(stage);
    if (!s->loaded) return SL_PENDING; /* the checkpoints come first: loaded() wakes it */
    sl__file_save_if_wanted(s);
    if (sl__file_save_behind(s)) return SL_PENDING; /* saved() wakes it */
    if (s->rescan) {
        s->rescan = false;
        sl__file_scan(s, false);
    }
    struct sl__file *f;
    while ((f = next_readable(s))) {
        struct sl_batch *b = sl_batch_new(stage);
        if (!b) return sl_stage_error(stage, SL_ENOMEM, "out of memory"), SL_ERROR;
        read_file(s, f, b);
        if (sl_batch_count(b)) {
            if (sl__file_track(s, f, b)) {
                sl_batch_unref(b);
                return sl_stage_error(stage, SL_ENOMEM, "out of memory"), SL_ERROR;
            }
            *out = b;
            return SL_READY;
        }
        sl_batch_unref(b);
        if (!f->refs && f->acked != f->pos) { /* only dropped lines: nothing to wait for */
            f->acked = f->pos;
            f->dirty = true;
        }
        if (f->readable) return SL_READY; /* skipped a lot without an event: yield */
    }
    if (!s->follow && all_closed(s)) {
        sl__file_progress(s);
        if (!s->opened && s->unreadable_why[0]) /* files matched, none could be read */
            return sl_stage_error(stage, SL_EIO, "%s", s->unreadable_why), SL_ERROR;
        return SL_DONE;
    }
    return SL_PENDING;
}

/* ---- timers ----------------------------------------------------------------------------- */

/* Files whose partial last line has waited partial_line_timeout emit it. */
static void on_partial_timer(struct sl_stage *stage, void *arg)
{
    struct sl__file_src *s = arg;
    int64_t now = sl_stage_now_ms(stage), next = -1;
    s->partial_deadline = 0;
    for (struct sl__file *f = s->files; f; f = f->next) {
        bool undecided = f->undecided && !f->decide_now;
        if ((!f->partial_since || f->partial_due) && !undecided) continue;
        int64_t since = undecided ? f->undecided_since : f->partial_since;
        int64_t left = since + s->partial_line_timeout - now;
        if (left <= 0) {
            *(undecided ? &f->decide_now : &f->partial_due) = true;
            sl__file_mark_readable(s, f);
        } else if (next < 0 || left < next) {
            next = left;
        }
    }
    if (next >= 0) sl__file_arm(s, s->partial_timer, &s->partial_deadline, next);
}

/* ---- lifetime ----------------------------------------------------------------------------- */

static int file_init(struct sl_stage *stage, const struct sl_config *cfg, struct sl_error *err)
{
    struct sl__file_src *s = sl_stage_state(stage);
    s->stage = stage;
    if (s->path.n == 0 || !s->path.items[0][0])
        return sl_config_error(cfg, err, SL_ECONFIG, "option 'path' needs at least one path");
    if (s->read_buffer < 4096 || s->read_buffer > (64u << 20))
        return sl_config_error(sl_config_get(cfg, "read_buffer"), err, SL_ECONFIG,
                               "option 'read_buffer' must be between 4KiB and 64MiB");
    if (s->max_line_bytes < 1 || s->max_line_bytes > (1u << 30))
        return sl_config_error(sl_config_get(cfg, "max_line_bytes"), err, SL_ECONFIG,
                               "option 'max_line_bytes' must be between 1 and 1GiB");
    if (s->poll_interval < 1 || s->checkpoint_interval < 1)
        return sl_config_error(cfg, err, SL_ECONFIG,
                               "poll_interval and checkpoint_interval must be at least 1ms");
    static const char *const flags[] = {"truncated"}; /* oversized lines (lines.c) */
    return sl_stage_declare_fields(stage, SL_FIELDS_ONLY, flags, 1);
}

static int make_globs(struct sl__file_src *s)
{
    s->globs = calloc(s->path.n, sizeof *s->globs);
    if (!s->globs) return SL_ENOMEM;
    for (size_t i = 0; i < s->path.n; i++) {
        const char *p = s->path.items[i];
        while (p[0] == '.' && p[1] == '/') p += 2;
        if (!(s->globs[i] = strdup(p))) return SL_ENOMEM;
        s->nglobs++;
    }
    return 0;
}

static void setup_lines(struct sl__file_src *s)
{
    gethostname(s->host, sizeof s->host - 1);
    s->lines = (struct sl__file_lines){
        .stage = s->stage,
        .max_line = s->max_line_bytes,
        .on_oversize = s->on_oversize,
        .encoding = s->encoding,
        .invalid_utf8 = s->invalid_utf8,
        .host = s->host,
        .host_key = s->host_key && *s->host_key ? s->host_key : NULL,
        .file_key = s->file_key && *s->file_key ? s->file_key : NULL,
        .offset_key = s->offset_key && *s->offset_key ? s->offset_key : NULL,
    };
}

static int open_checkpoints(struct sl__file_src *s, struct sl_error *err)
{
    if (!(s->ckpt_timer = sl_timer_new(s->stage, sl__file_on_ckpt_timer, s)))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    sl_timer_start(s->ckpt_timer, s->checkpoint_interval, true);
    if (s->checkpoint && !*s->checkpoint) { /* checkpoint: "" turns them off */
        s->loaded = true;
        return 0;
    }
    char path[4096];
    if (s->checkpoint)
        snprintf(path, sizeof path, "%s", s->checkpoint);
    else
        snprintf(path, sizeof path, "%s/checkpoints.db", sl_stage_data_dir(s->stage));
    if (!(s->ckpt_path = strdup(path))) return sl_error_set(err, SL_ENOMEM, "out of memory");
    return sl__file_load_checkpoints(s, err);
}

static int start_watch(struct sl__file_src *s, struct sl_error *err)
{
    if (!s->follow) return 0;
    s->wops = s->watch_mode == SL__FILE_WATCH_POLL ? &sl__file_watch_poll : &sl__file_watch_inotify;
    int rc = s->wops->start(s, err);
    if (rc && s->watch_mode == SL__FILE_WATCH_AUTO) { /* no inotify here: poll instead */
        sl_stage_log(s->stage, SL_LOG_WARN, "%s; polling every %lld ms instead", err->msg,
                     (long long)s->poll_interval);
        sl_error_clear(err);
        s->wops = &sl__file_watch_poll;
        rc = s->wops->start(s, err);
    }
    if (rc) s->wops = NULL;
    return rc;
}

static int file_start(struct sl_stage *stage, struct sl_error *err)
{
    struct sl__file_src *s = sl_stage_state(stage);
    struct sl_error local = {0};
    if (!err) err = &local;
    if (make_globs(s)) return sl_error_set(err, SL_ENOMEM, "out of memory");
    setup_lines(s);
    s->partial_timer = sl_timer_new(stage, on_partial_timer, s);
    s->rotate_timer = sl_timer_new(stage, sl__file_on_rotate_timer, s);
    if (!s->partial_timer || !s->rotate_timer) return sl_error_set(err, SL_ENOMEM, "out of memory");
    int rc = open_checkpoints(s, err);
    if (!rc) rc = start_watch(s, err);
    if (rc) return rc;
    if (s->loaded) sl__file_first_scan(s); /* else once the checkpoints are loaded */
    return 0;
}

void sl__file_first_scan(struct sl__file_src *s)
{
    sl__file_scan(s, true);
    s->scanned = true;
    sl__file_resume_renamed(s);
    sl__file_purge_checkpoints(s);
    if (!s->files && !s->nunreadable) /* unreadable ones were reported with their reason */
        sl_stage_log(s->stage, SL_LOG_WARN, "no file matches '%s'%s", s->path.items[0],
                     s->follow ? " yet" : "");
}

/* The source has ended: a last save, and the acks still coming save as they come. */
static int file_flush(struct sl_stage *stage, struct sl_emit *out, bool end)
{
    (void)out, (void)end;
    sl__file_save_at_end(sl_stage_state(stage));
    return 0;
}

static void file_close(struct sl_stage *stage)
{
    struct sl__file_src *s = sl_stage_state(stage);
    if (s->wops) s->wops->stop(s);
    sl_timer_free(s->ckpt_timer);
    sl_timer_free(s->partial_timer);
    sl_timer_free(s->rotate_timer);
    sl__file_ckpt_close(s->ckpt); /* its requests ended before close() */
    free(s->ckpt_path);
    while (s->files) {
        struct sl__file *f = s->files;
        s->files = f->next;
        sl__file_free(f);
    }
    free(s->ckpt_real);
    sl__file_suspects_free(s);
    for (size_t i = 0; i < s->nunreadable; i++) free(s->unreadable[i]);
    free(s->unreadable);
    for (size_t i = 0; i < s->nglobs; i++) free(s->globs[i]);
    free(s->globs);
    free(s->flights);
    free(s->htab);
}

/* ---- the type ------------------------------------------------------------------------------ */

#define OPT(field) offsetof(struct sl__file_src, field)

static const struct sl_option file_source_options[] = {
    {"path", SL_OPT_LIST, NULL, SL_REQUIRED, OPT(path), "file path or glob, or a list of them"},
    {"exclude", SL_OPT_LIST, NULL, 0, OPT(exclude),
     "globs of files to leave out (without '/': matched against the file name)"},
    {"read_from", SL_OPT_ENUM, "beginning", 0, OPT(read_from),
     "where to start a file found at start without a checkpoint", "beginning|end"},
    {"follow", SL_OPT_BOOL, "true", 0, OPT(follow),
     "keep following files like tail -F; false: read what is there and end"},
    SL__FILE_LINE_OPTIONS(OPT),
    {"partial_line_timeout", SL_OPT_DURATION, "1s", 0, OPT(partial_line_timeout),
     "following: emit a last line without newline after it has waited this long"},
    {"checkpoint", SL_OPT_STRING, NULL, 0, OPT(checkpoint),
     "checkpoint database (default <data_dir>/checkpoints.db; \"\": no checkpoints)"},
    {"checkpoint_retention", SL_OPT_DURATION, "7d", 0, OPT(checkpoint_retention),
     "at start, forget the checkpoints of files gone (not found, path gone or reused) and "
     "not saved for this long (0: keep them forever)"},
    {"checkpoint_interval", SL_OPT_DURATION, "1s", 0, OPT(checkpoint_interval),
     "how often acknowledged offsets are saved (the first one is saved at once)"},
    {"checkpoint_bytes", SL_OPT_SIZE, "8MiB", 0, OPT(checkpoint_bytes),
     "also save once this much has been acknowledged since the last save: bounds what a "
     "crash replays (0: the interval alone)"},
    {"watch", SL_OPT_ENUM, "auto", 0, OPT(watch_mode),
     "how changes are noticed when following: inotify, poll, or auto (inotify if it works)",
     "auto|inotify|poll"},
    {"poll_interval", SL_OPT_DURATION, "1s", 0, OPT(poll_interval),
     "rescan period with watch: poll (and for directories inotify cannot watch yet)"},
    {"rotate_wait", SL_OPT_DURATION, "5s", 0, OPT(rotate_wait),
     "how long a file renamed out of the glob is still followed (late writes read as they "
     "come) before it is closed; a run ending sooner leaves it to the next"},
    {"read_buffer", SL_OPT_SIZE, "256KiB", 0, OPT(read_buffer), "bytes per read"},
    SL__FILE_HOST_OPTION(OPT),
    {"file_key", SL_OPT_STRING, "", 0, OPT(file_key),
     "field receiving the file path (\"\": none; the path is always the event origin)"},
    {"offset_key", SL_OPT_STRING, "", 0, OPT(offset_key),
     "field receiving the line's byte offset (\"\": none; it is always the event offset)"},
    {0},
};

const struct sl_stage_type sl_stage_file_source = {
    .abi = SL_STAGE_ABI,
    .name = "file",
    .kind = SL_SOURCE,
    .doc = "reads and follows files by glob, with checkpoints of acknowledged offsets",
    .state_size = sizeof(struct sl__file_src),
    .options = file_source_options,
    .init = file_init,
    .start = file_start,
    .poll = file_poll,
    .ack = sl__file_ack,
    .flush = file_flush,
    .close = file_close,
};
