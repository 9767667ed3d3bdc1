/* Acknowledgements and checkpoint saves of the `file` source.
 *
 * Each batch the source emits is one entry of a ring of batches in flight (file,
 * generation, end offset); ack() takes entries in production order and moves each file's
 * acknowledged offset. Changed offsets are saved by write requests of the checkpoint
 * database's pool (checkpoint.c): every checkpoint_interval (a timer), sooner when
 * checkpoint_bytes of acknowledged data wait to be saved, right after the first
 * acknowledgement of the run, and once the source has ended, as its last acks come (the
 * run waits for those saves). What a kill -9 replays is thus bounded by the smaller of
 * the two (plus what was in flight). A file is read only once a row leads to it
 * (check_known): a file found without one waits for the next save, so that a run killed
 * after delivering any of its lines leaves the next run a row to find it by, even renamed
 * out of the glob. A record whose file is closed is freed once its batches are
 * acknowledged and its last state saved. At start the rows are loaded by a request
 * before the first scan, and rows of files long gone are purged. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* Records which file and offsets batch `b` covers, for ack(). */
int sl__file_track(struct sl__file_src *s, struct sl__file *f, struct sl_batch *b)
{
    if (s->fl_count == s->fl_cap) {
        size_t cap = s->fl_cap ? s->fl_cap * 2 : 16;
        struct sl__file_flight *nf = malloc(cap * sizeof *nf);
        if (!nf) return SL_ENOMEM;
        for (size_t i = 0; i < s->fl_count; i++) nf[i] = s->flights[(s->fl_head + i) % s->fl_cap];
        free(s->flights);
        s->flights = nf;
        s->fl_cap = cap;
        s->fl_head = 0;
    }
    uint64_t seq = s->next_seq++;
    s->flights[(s->fl_head + s->fl_count++) % s->fl_cap] =
        (struct sl__file_flight){.seq = seq, .f = f, .gen = f->gen, .end = f->pos};
    f->refs++;
    sl_batch_set_cookie(b, seq);
    return 0;
}

/* ---- acknowledgements and checkpoints ------------------------------------------------- */

static void start_save(struct sl__file_src *s);

/* Whether a quarter of checkpoint_bytes (when set) waits to be saved. */
static bool quarter_due(const struct sl__file_src *s)
{
    return s->checkpoint_bytes && s->unsaved >= (s->checkpoint_bytes + 3) / 4;
}

void sl__file_ack(struct sl_stage *stage, struct sl_batch *b)
{
    struct sl__file_src *s = sl_stage_state(stage);
    uint64_t seq = sl_batch_cookie(b);
    while (s->fl_count) {
        struct sl__file_flight *e = &s->flights[s->fl_head];
        if (e->seq > seq) break;
        struct sl__file *f = e->f;
        uint64_t was = f->acked;
        if (e->seq == seq && e->gen == f->gen && e->end > f->acked) f->acked = e->end;
        if (--f->refs == 0) f->acked = f->pos; /* nothing in flight: all before pos is done */
        if (f->acked > was) s->unsaved += f->acked - was;
        f->dirty = true;
        s->fl_head = (s->fl_head + 1) % s->fl_cap;
        s->fl_count--;
    }
    /* The first acknowledgement of the run is saved at once (a run killed within the
     * interval must not start over), then every quarter of checkpoint_bytes besides the
     * interval: with a save out and the next quarter waiting, reading waits (save_behind),
     * so what a kill replays stays within checkpoint_bytes plus what is in flight.
     * The save starts from poll(): ack() also runs from done callbacks while the pipeline
     * stops its executor, and a busy pipeline may not give timers a turn for long. */
    bool due = !s->acked_once || quarter_due(s);
    if (s->ckpt && s->ended) { /* no poll() any more, and the run may be failing: now (two
                                  saves out at most; the acks of a burst share one) */
        s->acked_once = true;
        start_save(s);
    } else if (s->ckpt && due) {
        s->acked_once = true;
        s->save_wanted = true;
        sl_stage_wake(stage);
    }
}

struct save_job {
    struct sl__file_src *s;         /* the source */
    struct sl__file_ckpt_row *rows; /* owned, with their paths */
    size_t n;                       /* rows */
    bool purge;                     /* the purge at start: rows of files long gone */
};

void sl__file_progress(struct sl__file_src *s)
{
    uint64_t done = 0, total = 0;
    for (const struct sl__file *f = s->files; f; f = f->next) {
        done += f->pos;
        total += f->size;
    }
    sl_stage_set_progress(s->stage, done, total);
}

/* Where a file renamed out of the glob is now (it may have been renamed again since). */
static const char *renamed_path(struct sl__file *f)
{
    char buf[4096];
    if (f->fd < 0 && f->now_at) return f->now_at;
    const char *now = sl__file_current_path(f, buf, sizeof buf);
    char *copy = strdup(now);
    if (!copy) return f->now_at ? f->now_at : f->path;
    free(f->now_at);
    return f->now_at = copy;
}

/* Snapshots the changed files as rows. Returns the number, 0 when nothing changed. */
static size_t collect_rows(struct sl__file_src *s, struct sl__file_ckpt_row **out)
{
    size_t n = 0, k = 0;
    for (struct sl__file *f = s->files; f; f = f->next) n += f->dirty && !f->stale;
    if (!n || !(*out = calloc(n, sizeof **out))) return 0;
    for (struct sl__file *f = s->files; f; f = f->next) {
        if (!f->dirty || f->stale) continue;
        bool done = f->state == SL__FILE_CLOSED && !f->refs;
        (*out)[k++] = (struct sl__file_ckpt_row){
            .dev = f->dev,
            .ino = f->ino,
            .fp = f->fp,
            .fp_len = f->fp_len,
            .offset = f->acked,
            .path = strdup(f->renamed ? renamed_path(f) : f->path),
            .rotated = f->renamed && !done, /* the next run finishes it */
            .remove = f->forget && done};
        f->dirty = false;
    }
    return k;
}

static void free_rows(struct sl__file_ckpt_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) free(rows[i].path);
    free(rows);
}

/* Frees closed files whose last state is saved and whose batches are all acknowledged;
 * the earlier content of a truncated file waits rotate_wait for a copy to take it over. */
static void collect_garbage(struct sl__file_src *s)
{
    int64_t now = sl_stage_now_ms(s->stage);
    for (struct sl__file **pp = &s->files; *pp;) {
        struct sl__file *f = *pp;
        bool waiting = f->retired && now - f->rotated_at < s->rotate_wait;
        if (f->state == SL__FILE_CLOSED && !f->refs && (!f->dirty || f->stale) && !waiting) {
            *pp = f->next;
            if (s->cursor == f) s->cursor = NULL;
            sl__file_free(f);
        } else {
            pp = &f->next;
        }
    }
}

/* ---- files are known before they are read ----------------------------------------------- */

/* Whether row `r` leads the next run to `f`: its inode, and first bytes (one at least: an
 * empty file's row would take any file on a reused inode for it) that f begins with. */
static bool leads_to(const struct sl__file_ckpt_row *r, const struct sl__file *f)
{
    return !r->remove && r->dev == f->dev && r->ino == f->ino && r->fp_len > 0 &&
           sl__file_fits(f, r->fp, r->fp_len);
}

/* After a save: the files its rows lead to may be read. */
static void now_known(struct sl__file_src *s, const struct sl__file_ckpt_row *rows, size_t n)
{
    for (struct sl__file *f = s->files; f; f = f->next) {
        if (f->known || f->stale) continue;
        for (size_t i = 0; i < n && !f->known; i++) f->known = leads_to(&rows[i], f);
        if (f->known) sl__file_mark_readable(s, f);
    }
}

void sl__file_check_known(struct sl__file_src *s, struct sl__file *f)
{
    const struct sl__file_ckpt_row *r = sl__file_ckpt_find(s->ckpt, f->dev, f->ino);
    f->known = !s->ckpt || (r && leads_to(r, f));
    if (!f->known && f->fp_len) { /* the save it will wait for: now */
        f->dirty = true;
        sl__file_save_soon(s);
    }
}

bool sl__file_may_read(struct sl__file_src *s, struct sl__file *f)
{
    if (f->known || !f->fp_len) return true;
    f->dirty = true;
    f->readable = false; /* now_known marks it again */
    sl__file_save_soon(s);
    return false;
}

/* A save failed for a reason that may pass: every file is saved again by the next one
 * (the timer's; at once after the end, a few times: the pool already waited out locks). */
static void save_failed_for_now(struct sl__file_src *s, const struct sl_error *err)
{
    for (struct sl__file *f = s->files; f; f = f->next) f->dirty = !f->stale;
    bool again = s->ended && ++s->end_retries <= 3;
    sl_stage_log(s->stage, again || !s->ended ? SL_LOG_WARN : SL_LOG_ERROR, "%s (%s)", err->msg,
                 !s->ended ? "retrying"
                 : again   ? "trying again"
                           : "gave up: the next run reads again what was acknowledged since "
                             "the last save");
    if (again) s->save_wanted = true;
}

static void saved(struct sl_stage *stage, void *arg, int rc, const struct sl_error *err);
static void purged(struct sl__file_src *s, const struct sl__file_ckpt_row *rows, size_t n, int rc,
                   const struct sl_error *err);

/* Writes `n` rows (owned) by a request of the pool: returns false when it could not be
 * asked (the rows are freed; the files stay dirty for a later save). */
static bool submit_rows(struct sl__file_src *s, struct sl__file_ckpt_row *rows, size_t n,
                        bool purge)
{
    struct save_job *j = calloc(1, sizeof *j);
    if (j) *j = (struct save_job){.s = s, .rows = rows, .n = n, .purge = purge};
    if (j && sl__file_ckpt_save(s->ckpt, rows, n, saved, j) == 0) {
        s->save_jobs++;
        return true;
    }
    free_rows(rows, n);
    free(j);
    return false;
}

static void saved(struct sl_stage *stage, void *arg, int rc, const struct sl_error *err)
{
    struct save_job *j = arg;
    struct sl__file_src *s = j->s;
    s->save_jobs--;
    if (j->purge) {
        purged(s, j->rows, j->n, rc, err);
    } else if (rc == SL_EAGAIN) {
        save_failed_for_now(s, err);
    } else if (rc == SL_ESTOPPED) { /* the pipeline is being freed: nothing to wait for */
    } else if (rc) {                /* every save would fail: progress could no longer be kept */
        sl_stage_error(stage, rc, "%s", err->msg);
        sl_stage_wake(stage);
    } else {
        sl__file_ckpt_apply(s->ckpt, j->rows, j->n);
        now_known(s, j->rows, j->n);
        if (!s->save_jobs) collect_garbage(s); /* a later job may fail and need the records */
    }
    free_rows(j->rows, j->n);
    free(j);
    if (s->ended) { /* the run waits for this request: the next one starts before it ends */
        if (s->save_wanted) start_save(s);
    } else if (s->save_wanted || s->unsaved) { /* asked for meanwhile; or reading waits */
        sl_stage_wake(stage);
    }
}

/* Starts a save of what changed. The pool writes saves one at a time, in order; two at
 * most are out (one writing, one waiting), a later one is asked for when one ends. */
static void start_save(struct sl__file_src *s)
{
    if (!s->loaded) return;
    if (s->save_jobs >= 2) {
        s->save_wanted = true;
        return;
    }
    s->save_wanted = false;
    struct sl__file_ckpt_row *rows = NULL;
    size_t n = collect_rows(s, &rows);
    if (!n) {
        if (!s->save_jobs) collect_garbage(s);
        return;
    }
    s->unsaved = 0;
    if (!submit_rows(s, rows, n, false)) /* try again next tick */
        for (struct sl__file *f = s->files; f; f = f->next) f->dirty = !f->stale;
}

void sl__file_save_soon(struct sl__file_src *s)
{
    if (!s->ckpt) return;
    s->save_wanted = true;
    sl_stage_wake(s->stage);
}

/* Whether reading waits for a save: one is out and the next quarter of checkpoint_bytes
 * already waits behind it (a disk slower to commit than the pipeline is to copy would
 * otherwise let what a kill replays grow without bound). */
bool sl__file_save_behind(const struct sl__file_src *s)
{
    return s->ckpt && s->save_jobs && quarter_due(s);
}

void sl__file_save_if_wanted(struct sl__file_src *s)
{
    if (s->save_wanted) start_save(s);
}

void sl__file_on_ckpt_timer(struct sl_stage *stage, void *arg)
{
    (void)stage;
    struct sl__file_src *s = arg;
    sl__file_progress(s);
    if (!s->ckpt) { /* no database: only closed files to free */
        for (struct sl__file *f = s->files; f; f = f->next) f->dirty = false;
        collect_garbage(s);
        return;
    }
    start_save(s);
}

void sl__file_save_at_end(struct sl__file_src *s)
{
    s->ended = true;
    if (s->ckpt) start_save(s);
}

/* ---- at start ---------------------------------------------------------------------- */

static void loaded(struct sl_stage *stage, void *arg, int rc, const struct sl_error *err)
{
    struct sl__file_src *s = arg;
    if (rc == SL_ESTOPPED) return;
    if (rc) {
        sl_stage_error(stage, rc, "%s", err->msg);
        sl_stage_wake(stage);
        return;
    }
    s->loaded = true;
    s->ckpt_real = realpath(s->ckpt_path, NULL); /* a glob may well match it: "*" */
    if (s->ended) return; /* stopped before it could start: nothing was read */
    sl__file_first_scan(s);
    sl_stage_wake(stage);
}

int sl__file_load_checkpoints(struct sl__file_src *s, struct sl_error *err)
{
    return sl__file_ckpt_open(s->stage, s->ckpt_path, loaded, s, &s->ckpt, err);
}

/* A checkpoint row whose file is gone: saved more than checkpoint_retention ago, no
 * tracked file has its identity (the initial scan found none), and its last known path
 * is gone or holds another file. A file that was only unreachable for a while (a mount
 * that came back late) is read again from its start if its row was purged: duplicates,
 * never loss; hence a retention of days, not seconds. */
static bool row_gone(struct sl__file_src *s, const struct sl__file_ckpt_row *r)
{
    if ((int64_t)time(NULL) * 1000 - r->updated * 1000 < s->checkpoint_retention) return false;
    for (struct sl__file *f = s->files; f; f = f->next)
        if (f->dev == r->dev && f->ino == r->ino) return false;
    struct stat st;
    return !r->path || stat(r->path, &st) != 0 || (uint64_t)st.st_dev != r->dev ||
           (uint64_t)st.st_ino != r->ino;
}

/* The purge's save ended: the deleted rows leave the loaded ones too. */
static void purged(struct sl__file_src *s, const struct sl__file_ckpt_row *rows, size_t n, int rc,
                   const struct sl_error *err)
{
    if (rc) { /* they stay; no harm done */
        if (rc != SL_ESTOPPED) sl_stage_log(s->stage, SL_LOG_WARN, "%s", err->msg);
        return;
    }
    sl__file_ckpt_apply(s->ckpt, rows, n);
    s->purged = n;
    sl_stage_log(s->stage, SL_LOG_INFO, "forgot the checkpoints of %zu files gone for over %lld s",
                 n, (long long)(s->checkpoint_retention / 1000));
}

/* Start, after the initial scan: rows of files gone for long are deleted (a file
 * deleted while the source runs loses its row at once). */
void sl__file_purge_checkpoints(struct sl__file_src *s)
{
    if (!s->ckpt || s->checkpoint_retention <= 0) return;
    const struct sl__file_ckpt_row *rows;
    size_t nrows = sl__file_ckpt_rows(s->ckpt, &rows), n = 0;
    struct sl__file_ckpt_row *del = calloc(nrows + 1, sizeof *del);
    for (size_t i = 0; del && i < nrows; i++) {
        if (!row_gone(s, &rows[i])) continue;
        del[n] = rows[i];
        del[n].path = NULL; /* a delete needs the identity alone */
        del[n++].remove = true;
    }
    if (n)
        submit_rows(s, del, n, true);
    else
        free(del);
}
