/* The `file` sink: events to files named by a template, acknowledged once written (and
 * synced, where configured).
 *
 * write() walks the batch in order. Consecutive events for the same file gather into
 * one iobuf (iovecs over the batch's own bytes where the encoding allows) that one
 * writev writes; a change of file, a full iobuf or a rotation writes the run out. The
 * committed position (event index + bytes of that event already written) only moves by
 * what the kernel took, so a short write or an error resumes exactly where it stopped:
 * after a disk-full episode the output holds every line once, whole.
 *
 * Errors (open, write, rename) answer SL_RETRY with the reason (sl_retry): the runtime
 * keeps the batch and offers the same one again after the stage's `retry` backoff, before
 * any other, while the queue fills and the sources stop. The committed position stays,
 * so the next offer resumes where the kernel stopped.
 * fsync: never (ack after write), batch (group commit: fsyncs on an executor thread
 * cover every batch written before they started; batches are acked after), always
 * (each batch synced before the next is written). An fsync failure fails the run:
 * the kernel may have dropped the pages, so nothing is acknowledged and a restart
 * replays. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sluice/builtins.h>
#include <sluice/config.h>

#include "internal.h"

#define MAX_UNACKED 16 /* fsync batch: batches written and awaiting their fsync */

/* ---- errors ------------------------------------------------------------------------------- */

/* True for errors that may pass with time: a full disk or quota, an I/O error, a file
 * size limit, descriptors or memory running short. Anything else (permission denied, a
 * read-only file system, a missing directory the sink may not create, a path component
 * that is not a directory) will fail the same way on every attempt. */
static bool transient(int err)
{
    switch (err) {
    case ENOSPC:
    case EDQUOT:
    case EIO:
    case EAGAIN:
    case EINTR:
    case EFBIG:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case ENOBUFS:
    case EBUSY:
    case ETXTBSY:
    case ESTALE:
    case ETIMEDOUT: return true;
    default: return false;
    }
}

/* Records a failed attempt and its reason. A transient error answers SL_RETRY through
 * write() (the runtime logs the reason with its delay): returns SL_EAGAIN. A permanent
 * one fails the stage at once, naming the path: returns SL_EIO. */
static int failed(struct sl__file_sink *k, const char *what, const char *path, int err)
{
    k->write_errors++;
    sl_stage_count_errors(k->stage, 1);
    if (!transient(err))
        return sl_stage_error(k->stage, SL_EIO,
                              "cannot %s %s: %s (not retried: it would fail "
                              "again)",
                              what, path, strerror(err));
    sl_retry(k->stage, "cannot %s %s: %s", what, path, strerror(err));
    return SL_EAGAIN;
}

/* ---- runs --------------------------------------------------------------------------------- */

static int note_len(struct sl__file_sink *k, size_t len)
{
    if (k->nlens == k->lens_cap) {
        size_t cap = k->lens_cap ? k->lens_cap * 2 : 256;
        size_t *nl = realloc(k->lens, cap * sizeof *nl);
        if (!nl) return SL_ENOMEM;
        k->lens = nl;
        k->lens_cap = cap;
    }
    k->lens[k->nlens++] = len;
    return 0;
}

/* Starts a run for `h` at the committed position, with the file's pending repairs. */
static int start_run(struct sl__file_sink *k, struct sl__file_out *h)
{
    k->h = h;
    k->next = k->idx;
    k->nlens = 0;
    k->run_nl = h->needs_newline;
    k->run_hdr = 0;
    int rc = k->run_nl ? sl__file_iobuf_copy(&k->io, "\n", 1) : 0;
    if (!rc && h->needs_header) {
        size_t before = k->io.bytes;
        rc = sl__file_encode_csv_header(&k->enc, &k->io);
        k->run_hdr = k->io.bytes - before;
    }
    return rc;
}

/* Moves the committed position over the `w` bytes the kernel took of the run. */
static void commit(struct sl__file_sink *k, size_t w, bool all)
{
    struct sl__file_out *h = k->h;
    if (k->run_nl && w) {
        h->needs_newline = false;
        w--;
    }
    size_t hdr = w < k->run_hdr ? w : k->run_hdr;
    w -= hdr;
    if (k->run_hdr && hdr == k->run_hdr) h->needs_header = false;
    if (all) {
        k->idx = k->next;
        k->skip = 0;
        return;
    }
    size_t i = 0;
    while (i < k->nlens && w >= k->lens[i]) w -= k->lens[i++];
    if (i > 0) k->skip = 0;
    k->idx += i;
    k->skip += w;
}

/* Writes the gathered run. Returns 0 or SL_EAGAIN (failed: retry). */
static int write_run(struct sl__file_sink *k)
{
    if (!k->io.n) return 0;
    int err;
    size_t want = k->io.bytes;
    size_t w = sl__file_writev_all(k->h->fd, &k->io, &err);
    k->h->size += w;
    if (w && k->fsync != SL__FILE_FSYNC_NEVER) sl__file_outs_dirty(&k->outs, k->h);
    commit(k, w, w == want);
    sl__file_iobuf_reset(&k->io);
    k->nlens = 0;
    k->next = k->idx;
    return err ? failed(k, "write", k->h->path, err) : 0;
}

/* ---- targets ------------------------------------------------------------------------------ */

/* Logs the first dropped event of a kind; later ones are only counted. */
static void note_drop(struct sl__file_sink *k, int rc, size_t hole)
{
    if (k->missing++) return;
    if (rc == SL_ENOTFOUND)
        sl_stage_log(k->stage, SL_LOG_WARN,
                     "event dropped: {{ }} number %zu of the path is null (a missing field); "
                     "later drops are only counted",
                     hole);
    else
        sl_stage_log(k->stage, SL_LOG_WARN,
                     "event dropped: path longer than %d bytes; later drops are only counted",
                     SL__FILE_PATH_MAX - 1);
}

/* The open file for `ev`. Returns 0, 1 when the event is dropped (a path field is
 * missing: counted as an error and as dropped), SL_EAGAIN (failed: retry) or
 * SL_ENOMEM. */
static int target(struct sl__file_sink *k, const struct sl_event *ev, struct sl__file_out **out)
{
    const char *path = k->path_buf;
    if (!k->constant_path) {
        size_t hole;
        int n = sl__file_path_render(&k->pathr, ev, k->path_buf, sizeof k->path_buf, &hole);
        if (n == SL_ENOMEM) return n;
        if (n < 0) { /* the same event would fail again: drop it, counted */
            note_drop(k, n, hole);
            sl_stage_count_errors(k->stage, 1);
            sl_stage_count_dropped(k->stage, 1);
            return 1;
        }
    }
    k->routed++;
    if (k->cached && (k->constant_path || strcmp(path, k->cached_path) == 0)) {
        *out = k->cached;
        return 0;
    }
    /* Another file: the run (for the cached file) goes out first, as opening may evict
     * and close the file it is for. */
    int rc = write_run(k);
    if (rc) return rc;
    rc = sl__file_outs_get(&k->outs, path, out);
    if (rc < 0) {
        k->cached = NULL;
        return failed(k, "open", path, -rc);
    }
    if (!(*out)->opened_ms) (*out)->opened_ms = sl_stage_now_ms(k->stage);
    k->cached = *out;
    snprintf(k->cached_path, sizeof k->cached_path, "%s", path);
    return 0;
}

static bool rotation_due(struct sl__file_sink *k, struct sl__file_out *h, size_t pending)
{
    if (h->size + pending == 0) return false;
    if (k->rotate_size && h->size + pending >= k->rotate_size) return true;
    return k->rotate_interval && sl_stage_now_ms(k->stage) - h->opened_ms >= k->rotate_interval;
}

static int rotate(struct sl__file_sink *k, struct sl__file_out *h)
{
    int rc = write_run(k);
    if (rc) return rc;
    k->cached = NULL;
    k->h = NULL;
    rc = sl__file_outs_rotate(&k->outs, h);
    return rc < 0 ? failed(k, "rotate", h->path, -rc) : 0;
}

/* ---- the write loop ------------------------------------------------------------------------ */

/* Gathers event `k->next` into the run. Returns 0, SL_EAGAIN (failed: retry) or SL_ENOMEM. */
static int gather(struct sl__file_sink *k, const struct sl_event *ev)
{
    struct sl__file_out *h;
    int rc = target(k, ev, &h);
    if (rc == 1) { /* dropped: a zero-length member of the run keeps positions aligned */
        if (!k->io.n) {
            k->idx++;
            k->next = k->idx;
            return 0;
        }
        k->next++;
        return note_len(k, 0);
    }
    if (rc) return rc;
    if (k->io.n && h != k->h && (rc = write_run(k))) return rc;
    if (rotation_due(k, h, k->io.n ? k->io.bytes : 0)) return rotate(k, h);
    if (!k->io.n && (rc = start_run(k, h))) return rc;
    size_t skip = k->next == k->idx ? k->skip : 0;
    long len = sl__file_encode(&k->enc, ev, &k->io, skip);
    if (len == SL_EAGAIN) return write_run(k); /* full: write, then gather it again */
    if (len < 0) return (int)len;
    k->next++;
    return note_len(k, (size_t)len - skip);
}

/* Writes the rest of the current batch. Returns 0 when it is all written, SL_EAGAIN
 * when a write failed (the position stays for the retry), or SL_ENOMEM. */
static int pump(struct sl__file_sink *k)
{
    size_t n = sl_batch_count(k->cur);
    while (k->next < n) {
        int rc = gather(k, sl_batch_event_const(k->cur, k->next));
        if (rc) return rc;
    }
    return write_run(k);
}

/* ---- fsync and acknowledgement -----------------------------------------------------------------
 */

struct fsync_job {
    struct sl__file_sink *k;  /* the sink */
    struct sl__file_out **hs; /* files to sync (references taken) */
    int *fds;                 /* their descriptors */
    char **dirs;              /* parent directories of new files (owned) */
    size_t nh, nd;            /* entries */
    struct sl_batch **bs;     /* batches acknowledged when done (owned array) */
    size_t nb;                /* entries */
    int err;                  /* first errno */
};

static void fsync_work(void *arg)
{
    struct fsync_job *j = arg;
    for (size_t i = 0; i < j->nh; i++)
        if (fdatasync(j->fds[i]) && !j->err) j->err = errno;
    for (size_t i = 0; i < j->nd; i++) {
        int fd = open(j->dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
    }
}

static void maybe_wake(struct sl__file_sink *k)
{
    if (!k->pending) return;
    if (k->fsync == SL__FILE_FSYNC_ALWAYS && (k->fsync_busy || k->nwaiting)) return;
    if (k->nwaiting + k->syncing >= MAX_UNACKED) return;
    k->pending = false;
    sl_stage_wake(k->stage);
}

static void start_fsync(struct sl__file_sink *k);

static void free_job(struct fsync_job *j)
{
    for (size_t i = 0; i < j->nd; i++) free(j->dirs[i]);
    free(j->dirs);
    free(j->hs);
    free(j->fds);
    free(j->bs);
    free(j);
}

static void fsync_done(struct sl_stage *stage, void *arg)
{
    struct fsync_job *j = arg;
    struct sl__file_sink *k = j->k;
    for (size_t i = 0; i < j->nh; i++) sl__file_outs_unref(&k->outs, j->hs[i]);
    k->fsync_busy = false;
    k->syncing = 0;
    k->fsyncs++;
    if (j->err) { /* the pages may be gone: acknowledge nothing, fail the run */
        sl_stage_error(stage, SL_EIO, "fsync failed: %s", strerror(j->err));
        /* The batches stay held, unacknowledged, until close() runs after the abort. */
        struct sl_batch **all = realloc(j->bs, (j->nb + k->nwaiting + 1) * sizeof *all);
        if (all) {
            memcpy(all + j->nb, k->waiting, k->nwaiting * sizeof *all);
            free(k->waiting);
            k->waiting = all;
            k->nwaiting = k->waiting_cap = j->nb + k->nwaiting;
            j->bs = NULL;
        }
        free_job(j);
        sl_stage_wake(stage);
        return;
    }
    for (size_t i = 0; i < j->nb; i++) sl_ack(j->bs[i]);
    free_job(j);
    if (k->nwaiting) start_fsync(k);
    maybe_wake(k);
}

static struct fsync_job *make_job(struct sl__file_sink *k)
{
    size_t nh = 0;
    for (struct sl__file_out *h = k->outs.dirty; h; h = h->dnext) nh++;
    struct fsync_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->k = k;
    j->hs = calloc(nh + 1, sizeof *j->hs);
    j->fds = calloc(nh + 1, sizeof *j->fds);
    j->dirs = calloc(nh + 1, sizeof *j->dirs);
    if (!j->hs || !j->fds || !j->dirs) {
        free_job(j);
        return NULL;
    }
    for (struct sl__file_out *h = k->outs.dirty; h; h = h->dnext) {
        h->dirty = false;
        h->refs++;
        j->hs[j->nh] = h;
        j->fds[j->nh++] = h->fd;
        if (h->opened_ms && !h->synced_once) { /* a new directory entry to make durable */
            char *copy = strdup(h->path);
            if (copy) j->dirs[j->nd++] = strdup(dirname(copy));
            free(copy);
            h->synced_once = true;
        }
    }
    k->outs.dirty = NULL;
    return j;
}

static void start_fsync(struct sl__file_sink *k)
{
    struct fsync_job *j = make_job(k);
    if (j) {
        j->bs = k->waiting;
        j->nb = k->nwaiting;
    }
    if (!j || sl_stage_submit(k->stage, fsync_work, fsync_done, j)) {
        if (j) {
            j->bs = NULL;
            for (size_t i = 0; i < j->nh; i++) sl__file_outs_dirty(&k->outs, j->hs[i]);
            for (size_t i = 0; i < j->nh; i++) j->hs[i]->refs--;
            free_job(j);
        }
        sl_stage_error(k->stage, SL_ENOMEM, "out of memory starting an fsync");
        sl_stage_wake(k->stage);
        return;
    }
    k->waiting = NULL;
    k->nwaiting = k->waiting_cap = 0;
    k->syncing = j->nb;
    k->fsync_busy = true;
}

/* The current batch is written: acknowledge it now, or after its fsync. */
static enum sl_poll finish_batch(struct sl__file_sink *k)
{
    struct sl_batch *b = k->cur;
    k->cur = NULL;
    if (k->fsync == SL__FILE_FSYNC_NEVER) {
        sl_ack(b);
        return SL_READY;
    }
    if (k->nwaiting == k->waiting_cap) {
        size_t cap = k->waiting_cap ? k->waiting_cap * 2 : 8;
        struct sl_batch **nw = realloc(k->waiting, cap * sizeof *nw);
        if (!nw) { /* the runtime takes the batch back */
            sl_stage_error(k->stage, SL_ENOMEM, "out of memory");
            return SL_ERROR;
        }
        k->waiting = nw;
        k->waiting_cap = cap;
    }
    k->waiting[k->nwaiting++] = b;
    if (!k->fsync_busy) start_fsync(k);
    if (k->fsync == SL__FILE_FSYNC_ALWAYS || k->nwaiting + k->syncing >= MAX_UNACKED)
        return SL_PENDING;
    return SL_READY;
}

static enum sl_poll sink_write(struct sl_stage *stage, struct sl_batch *b)
{
    struct sl__file_sink *k = sl_stage_state(stage);
    if (k->resume && b == k->cur) {
        /* The batch of our last SL_RETRY, offered again (the runtime sends it before any
         * other): go on from the committed position. The failed run was written out or
         * dropped, so gathering starts there too. */
        k->next = k->idx;
    } else {
        k->cur = b;
        k->idx = k->next = k->skip = 0;
    }
    k->resume = false;
    int rc = pump(k);
    if (rc == SL_EAGAIN) { /* the runtime keeps the batch; we keep only where we were */
        k->resume = true;
        return SL_RETRY;
    }
    if (rc < 0) {
        k->cur = NULL; /* the runtime takes the batch back */
        sl_stage_error(stage, rc, "cannot write: %s", sl_strerror(rc));
        return SL_ERROR;
    }
    enum sl_poll r = finish_batch(k);
    if (r == SL_PENDING) k->pending = true;
    return r;
}

/* ---- lifetime -------------------------------------------------------------------------------- */

static int sink_init(struct sl_stage *stage, const struct sl_config *cfg, struct sl_error *err)
{
    struct sl__file_sink *k = sl_stage_state(stage);
    k->stage = stage;
    if (k->encoding == SL__FILE_ENCODE_CSV && (k->fields.n == 0 || !k->fields.items[0][0]))
        return sl_config_error(cfg, err, SL_ECONFIG, "encoding csv needs 'fields'");
    if (k->max_open_files < 1)
        return sl_config_error(sl_config_get(cfg, "max_open_files"), err, SL_ECONFIG,
                               "option 'max_open_files' must be at least 1");
    /* The path renderer last: a failed init leaves nothing allocated behind. */
    int rc = sl__file_path_init(&k->pathr, k->path, k->local_time);
    k->constant_path = k->pathr.constant;
    if (!rc && k->constant_path) { /* rendered once, here: no event needed */
        rc = sl__file_path_render(&k->pathr, NULL, k->path_buf, sizeof k->path_buf, NULL);
        rc = rc == SL_ENOTFOUND ? sl_config_error(sl_config_get(cfg, "path"), err, SL_ECONFIG,
                                                  "option 'path': a {{ }} is null")
             : rc == SL_EINVAL
                 ? sl_config_error(sl_config_get(cfg, "path"), err, SL_ECONFIG,
                                   "option 'path': longer than %d bytes", SL__FILE_PATH_MAX - 1)
             : rc < 0 ? sl_error_set(err, rc, "out of memory")
                      : 0;
    } else if (rc) {
        rc = sl_error_set(err, rc, "out of memory");
    }
    if (rc) {
        sl__file_path_free(&k->pathr);
        return rc;
    }
    k->enc.encoding = k->encoding;
    k->enc.text = k->text;
    k->enc.cols = &k->fields;
    k->outs.max_open = (size_t)k->max_open_files;
    k->outs.mkdirs = k->mkdir;
    k->outs.csv_header = k->csv_header && k->encoding == SL__FILE_ENCODE_CSV;
    return 0;
}

/* At the end of the input: a run in which no event could be given a path (a template
 * naming a field no event has: a typo) fails, rather than end well having written
 * nothing. */
static int sink_flush(struct sl_stage *stage, struct sl_emit *out, bool end)
{
    (void)out;
    struct sl__file_sink *k = sl_stage_state(stage);
    if (!end || !k->missing || k->routed) return 0;
    return sl_stage_error(stage, SL_EINVAL,
                          "no event was written: the path of each of the %llu events had a null "
                          "{{ }} (a field none of them has: a typo in the template?)",
                          (unsigned long long)k->missing);
}

static void sink_close(struct sl_stage *stage)
{
    struct sl__file_sink *k = sl_stage_state(stage);
    for (size_t i = 0; i < k->nwaiting; i++) sl_batch_unref(k->waiting[i]);
    free(k->waiting);
    sl__file_outs_close(&k->outs);
    free(k->io.scratch);
    free(k->lens);
    sl__file_path_free(&k->pathr);
}

/* ---- the type -------------------------------------------------------------------------------- */

#define OPT(field) offsetof(struct sl__file_sink, field)

static const struct sl_option file_sink_options[] = {
    {"path", SL_OPT_TEMPLATE, NULL, SL_REQUIRED, OPT(path),
     "output path: strftime fields (%Y-%m-%d) from the event time in its text, {{ expr }} "
     "from the event; a value's '/' becomes '_' and it cannot form a '.' or '..' component; "
     "an event whose {{ }} is null (missing field) is dropped and counted"},
    {"encoding", SL_OPT_ENUM, "json", 0, OPT(encoding),
     "json: one JSON object a line (parsed, untouched events as they came; a raw line as "
     "{\"message\": line, fields}); text: the payload or `template`; csv: `fields`",
     "json|text|csv"},
    {"template", SL_OPT_TEMPLATE, NULL, 0, OPT(text),
     "encoding text: the line to write, with {{ expr }} (null: nothing); default: the payload"},
    {"fields", SL_OPT_LIST, NULL, 0, OPT(fields), "encoding csv: the fields to write, in order"},
    {"csv_header", SL_OPT_BOOL, "false", 0, OPT(csv_header),
     "encoding csv: write the field names as the first line of a new file"},
    {"max_open_files", SL_OPT_INT, "256", 0, OPT(max_open_files),
     "descriptors kept open; the least recently used file is closed beyond this"},
    {"rotate_size", SL_OPT_SIZE, "0", 0, OPT(rotate_size),
     "rename a file to <path>.<n> once it reaches this size (0: never)"},
    {"rotate_interval", SL_OPT_DURATION, "0", 0, OPT(rotate_interval),
     "rename a file to <path>.<n> once it has been open this long (0: never)"},
    {"fsync", SL_OPT_ENUM, "never", 0, OPT(fsync),
     "never: ack after write; batch: group fsyncs, ack after; always: fsync every batch",
     "never|batch|always"},
    {"mkdir", SL_OPT_BOOL, "true", 0, OPT(mkdir), "create missing directories"},
    {"local_time", SL_OPT_BOOL, "false", 0, OPT(local_time),
     "strftime fields in local time instead of UTC"},
    {0},
};

const struct sl_stage_type sl_stage_file_sink = {
    .abi = SL_STAGE_ABI,
    .name = "file",
    .kind = SL_SINK,
    .doc = "writes events to templated file paths, with rotation and fsync",
    .state_size = sizeof(struct sl__file_sink),
    .options = file_sink_options,
    .init = sink_init,
    .write = sink_write,
    .flush = sink_flush,
    .close = sink_close,
};
