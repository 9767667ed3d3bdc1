/* The file connector's private declarations, shared by the files of this folder only
 * (and by its unit tests). Split by concern, as Fluent Bit's in_tail is:
 *
 *   lines.c       newline framing, oversize lines, UTF-8 check, event metadata
 *   scan.c        glob/exclude discovery; rename, truncation and deletion decisions
 *   identity.c    fingerprints: the same file, new content on an inode, copies
 *   watch.c       how changes are noticed: inotify or polling, one ops table each
 *   rotation.c    files renamed out of the glob (late writes, restarts), files unseen
 *   checkpoint.c  per-file offsets in SQLite, through the database's pool
 *   source.c      the `file` source: reading, timers, lifetime   -> sl_stage_file_source
 *   acks.c        the `file` source's acks and checkpoint saves
 *   stdin.c       the `stdin` source                             -> sl_stage_stdin
 *   path.c        the sink's path template: strftime fields, safe field values
 *   encode.c      json / text / csv encodings into iovecs
 *   outputs.c     open output files: LRU of descriptors, rotation
 *   sink.c        the `file` sink: writes, retries, fsync         -> sl_stage_file_sink
 *   stdout.c      the `stdout` sink                               -> sl_stage_stdout
 *
 * The file source's own declarations are in file_source.h, included below. */
#ifndef SLUICE_CONNECTORS_FILE_INTERNAL_H
#define SLUICE_CONNECTORS_FILE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include <sluice/event.h>
#include <sluice/expr.h>
#include <sluice/stage.h>

/* ==== lines: framing shared by the file and stdin sources ============================ */

enum { SL__FILE_OVERSIZE_TRUNCATE = 0, SL__FILE_OVERSIZE_DROP };
enum { SL__FILE_ENC_BINARY = 0, SL__FILE_ENC_UTF8 };
enum { SL__FILE_UTF8_REPLACE = 0, SL__FILE_UTF8_PASS, SL__FILE_UTF8_DROP };

/* How lines become events. Filled by the stage from its options. */
struct sl__file_lines {
    struct sl_stage *stage; /* for counters */
    uint64_t max_line;      /* longest line kept whole, in bytes (without the newline) */
    int on_oversize;        /* SL__FILE_OVERSIZE_* */
    int encoding;           /* SL__FILE_ENC_* */
    int invalid_utf8;       /* SL__FILE_UTF8_*, when encoding is utf8 */
    const char *host;       /* host name (stage lifetime); NULL: no host field */
    const char *host_key;   /* field names; NULL: field not added */
    const char *file_key;   /* file path field */
    const char *offset_key; /* byte offset field */
    uint64_t oversize;      /* lines longer than max_line seen */
    uint64_t invalid;       /* lines with invalid UTF-8 seen */
    uint64_t lines;         /* events emitted */
};

/* Per-stream framing state. Zero-filled before the first call. */
struct sl__file_frame {
    bool skipping; /* discarding the rest of an oversize line up to its newline */
};

/* Where the bytes come from, stamped on each event. */
struct sl__file_origin {
    const char *path; /* origin (valid as long as the batch) */
    uint64_t base;    /* stream offset of buf[0] */
    int64_t time_ns;  /* event time */
};

/* Splits `buf` (`n` bytes; events point into it, so it must live as long as `b`) into
 * line events appended to `b` until the batch is full. A last line without a newline
 * is emitted only when `eof`; a partial line longer than max_line is cut (or dropped)
 * at once and the rest of it skipped. Returns the number of bytes consumed: the caller
 * reads again from there (an unconsumed partial line is read again with what follows
 * it). Returns 0 with n > 0 only when buf holds the start of one line without newline
 * and not longer than max_line: the caller needs a larger buffer or more data. */
size_t sl__file_lines_split(struct sl__file_lines *cfg, struct sl__file_frame *fr,
                            struct sl_batch *b, const char *buf, size_t n, bool eof,
                            const struct sl__file_origin *org);

/* The wall clock in nanoseconds since the epoch (event times). */
int64_t sl__file_now_ns(void);

/* ==== checkpoints ===================================================================== */

struct sl__file_ckpt; /* a source's checkpoint rows, on the pool of their database */

/* One file's checkpoint: identity and the acknowledged offset. */
struct sl__file_ckpt_row {
    uint64_t dev, ino; /* identity on disk */
    uint64_t fp;       /* hash of the first fp_len bytes */
    uint32_t fp_len;   /* bytes hashed (up to SL__FILE_FP_MAX) */
    uint64_t offset;   /* every byte before it is acknowledged */
    char *path;        /* last known path (owned by the row) */
    int64_t updated;   /* loaded rows: when last saved, seconds since the epoch */
    bool rotated;      /* renamed out of the glob, not done with: path is its new name */
    bool remove;       /* save: delete this row (the file is gone) */
};

#define SL__FILE_FP_MAX 256 /* bytes of a file's head that identify it with its inode */

/* The end of a load or a save, on the loop thread: rc 0; SL_EAGAIN (a save failed for
 * a reason that may pass: a lock held too long, a full disk: try again later); SL_EIO
 * (it will fail every time: a damaged or read-only file); SL_ENOMEM; SL_ESTOPPED (the
 * pipeline stopped first). `err` (borrowed) says why. */
typedef void sl__file_ckpt_done_fn(struct sl_stage *stage, void *arg, int rc,
                                   const struct sl_error *err);

/* The checkpoints of source `stage` in the database at `path` (borrowed; created with
 * its directory and table when missing), through the pipeline's pool of that file: a
 * request loads the source's rows, then `loaded(stage, arg, rc, err)` runs (rc != 0: the
 * database cannot be used; err says where and what to do). Until then the rows are not
 * to be looked at. Loop thread, from start(). Returns 0 with *out owned (free:
 * sl__file_ckpt_close, after every request ended), or an SL_E* code with `err`. */
int sl__file_ckpt_open(struct sl_stage *stage, const char *path, sl__file_ckpt_done_fn *loaded,
                       void *arg, struct sl__file_ckpt **out, struct sl_error *err);

/* The loaded row of file dev/ino (borrowed; valid until close), or NULL. */
const struct sl__file_ckpt_row *sl__file_ckpt_find(const struct sl__file_ckpt *c, uint64_t dev,
                                                   uint64_t ino);

/* The loaded rows (borrowed; valid until the next apply or close): the rows of the
 * source at start, kept as saves change them. Returns how many. */
size_t sl__file_ckpt_rows(const struct sl__file_ckpt *c, const struct sl__file_ckpt_row **rows);

/* After a successful save of `n` rows (borrowed): makes the loaded rows match what the
 * database now holds. Loop thread. */
void sl__file_ckpt_apply(struct sl__file_ckpt *c, const struct sl__file_ckpt_row *rows, size_t n);

/* Writes `n` rows (borrowed until done runs: not to be changed meanwhile) in one
 * transaction, a write request of the pool; then `done(stage, arg, rc, err)`. Saves
 * are written in the order they were asked for. Returns 0, or SL_ENOMEM / SL_ESTOPPED
 * (then done does not run). Loop thread. */
int sl__file_ckpt_save(struct sl__file_ckpt *c, const struct sl__file_ckpt_row *rows, size_t n,
                       sl__file_ckpt_done_fn *done, void *arg);

/* Frees the loaded rows. NULL is a no-op. */
void sl__file_ckpt_close(struct sl__file_ckpt *c);

/* FNV-1a over `n` bytes: the fingerprint hash. */
uint64_t sl__file_hash(const void *data, size_t n);

#include "file_source.h" /* the file source: its state and records */

/* ==== paths: the file sink's path template ============================================ */

#define SL__FILE_PATH_MAX 4096 /* longest rendered path, NUL included */

struct sl__file_lit; /* one literal part of a path template (path.c) */

/* A path template: the compiled `path` option plus strftime fields and value rules. */
struct sl__file_path {
    const struct sl_template *t;  /* the template (borrowed: the runtime owns options) */
    bool local_time;              /* strftime in local time, else UTC */
    bool constant;                /* the same path for every event: render once */
    struct sl__file_lit *lits;    /* the literal parts, in rendering order (owned) */
    size_t nlits;                 /* entries in lits */
    int64_t cached_sec;           /* second the strftime caches are for; INT64_MIN: none */
    struct tm tm;                 /* that second, broken down */
    bool mask[SL__FILE_PATH_MAX]; /* render scratch: which bytes came from values */
};

/* Prepares `pt` for template `t` (borrowed; must outlive pt): finds the literal parts
 * with strftime fields and whether the path is constant. Returns 0 or SL_ENOMEM (free
 * with sl__file_path_free either way). Any thread; pt is used by one thread at a time. */
int sl__file_path_init(struct sl__file_path *pt, const struct sl_template *t, bool local_time);

/* Renders the path for `ev` (borrowed; NULL for a constant path) into `buf` (borrowed,
 * `cap` bytes, NUL-terminated): strftime fields of the literal text from the event time
 * (now when it has none), field values with '/' and NUL replaced by '_' and no "." or
 * ".." component made of their bytes (see path.c). Returns the length; SL_ENOTFOUND
 * when a `{{ }}` is null (a missing field), with `*hole` (may be NULL) its number,
 * counting from 1; SL_EINVAL when the path is longer than cap - 1 or than
 * SL__FILE_PATH_MAX - 1 bytes; SL_ENOMEM. */
int sl__file_path_render(struct sl__file_path *pt, const struct sl_event *ev, char *buf, size_t cap,
                         size_t *hole);

/* Frees what init allocated. Safe on a zeroed or failed-init pt. */
void sl__file_path_free(struct sl__file_path *pt);

/* ==== encodings ======================================================================= */

enum { SL__FILE_ENCODE_JSON = 0, SL__FILE_ENCODE_TEXT, SL__FILE_ENCODE_CSV };

#define SL__FILE_IOV_MAX 1024

/* Bytes waiting to be written by one writev: spans of batch memory and of `scratch`. */
struct sl__file_iobuf {
    struct iovec iov[SL__FILE_IOV_MAX]; /* n used */
    int n;                              /* iovecs in use */
    size_t bytes;                       /* total bytes */
    char *scratch;                      /* encoded bytes (owned) */
    size_t used, cap;                   /* scratch in use / allocated */
};

/* How events become bytes (sink options). */
struct sl__file_enc {
    int encoding;                   /* SL__FILE_ENCODE_* */
    const struct sl_template *text; /* text: template (borrowed: an option), NULL: payload */
    const struct sl_list *cols;     /* csv: field names */
    uint64_t missing;               /* template/csv fields that were absent */
};

/* Appends the encoding of `ev` (bytes + newline) to `io`, skipping its first `skip`
 * bytes (resuming after a short write). Returns the full encoded length (before skip),
 * SL_EAGAIN when `io` has no room left (write it out and call again), or SL_ENOMEM. */
long sl__file_encode(struct sl__file_enc *e, const struct sl_event *ev, struct sl__file_iobuf *io,
                     size_t skip);

/* Appends `len` bytes of `s` to `io` through scratch (headers, newline repairs).
 * Returns 0, SL_EAGAIN or SL_ENOMEM. */
int sl__file_iobuf_copy(struct sl__file_iobuf *io, const char *s, size_t len);

/* Empties `io` (keeps scratch). */
void sl__file_iobuf_reset(struct sl__file_iobuf *io);

/* The CSV header line (column names + newline) for `e` into `io`. */
int sl__file_encode_csv_header(struct sl__file_enc *e, struct sl__file_iobuf *io);

/* Writes all of `io` to `fd`, retrying short writes. Returns the bytes written; on an
 * error, the bytes written before it, with *err_no set (0 when all was written). The
 * iovecs are advanced over what was written, so a second call writes the rest. */
size_t sl__file_writev_all(int fd, struct sl__file_iobuf *io, int *err_no);

/* ==== output files: the sink's descriptors ============================================ */

/* One open output file. */
struct sl__file_out {
    struct sl__file_out *hnext;               /* hash chain */
    struct sl__file_out *lru_prev, *lru_next; /* most recent first */
    struct sl__file_out *dnext;               /* dirty list (written, not yet fsync'd) */
    char *path;                               /* rendered path (owned) */
    uint64_t hpath;                           /* hash of path */
    int fd;                                   /* descriptor */
    uint64_t size;                            /* bytes in the file */
    int64_t opened_ms;                        /* loop clock at open (time rotation) */
    unsigned refs;                            /* fsync jobs holding the descriptor */
    unsigned next_rot;                        /* next rotation number, 0: not probed */
    bool dirty;                               /* on the dirty list */
    bool detached;                            /* rotated or evicted: close when unused */
    bool needs_newline;                       /* ends without '\n' (a torn write): fix first */
    bool needs_header;                        /* empty: write the csv header first */
    bool synced_once;                         /* its directory entry has been synced */
};

/* The set of open output files. */
struct sl__file_outs {
    struct sl__file_out **htab;          /* path hash table (attached files only) */
    size_t hcap;                         /* buckets */
    struct sl__file_out *lru_head;       /* most recently used */
    struct sl__file_out *lru_tail;       /* least recently used */
    struct sl__file_out *dirty;          /* written since their last fsync */
    struct sl__file_out *detached;       /* closed from the table, fd still open */
    size_t open;                         /* attached files */
    size_t max_open;                     /* LRU bound */
    bool mkdirs;                         /* create missing directories */
    bool csv_header;                     /* new files need a header */
    uint64_t opened, evicted, rotations; /* counters */
};

/* The attached output for `path` (borrowed), opening (and creating) it if needed and
 * evicting the least recently used beyond max_open. Returns 0 with *out (valid until
 * it is detached and released), or -errno. */
int sl__file_outs_get(struct sl__file_outs *o, const char *path, struct sl__file_out **out);

/* Renames `h`'s file to "<path>.<n>" (the next free number) and detaches it, so the
 * next get() opens a new file. Returns 0 or -errno. */
int sl__file_outs_rotate(struct sl__file_outs *o, struct sl__file_out *h);

/* Puts `h` on the dirty list (it needs an fsync). */
void sl__file_outs_dirty(struct sl__file_outs *o, struct sl__file_out *h);

/* Drops a reference taken by an fsync job; closes detached files nobody uses. */
void sl__file_outs_unref(struct sl__file_outs *o, struct sl__file_out *h);

/* Closes every file. */
void sl__file_outs_close(struct sl__file_outs *o);

/* ==== the file sink ================================================================== */

enum { SL__FILE_FSYNC_NEVER = 0, SL__FILE_FSYNC_BATCH, SL__FILE_FSYNC_ALWAYS };

/* The state of a `file` sink: options first (filled by the schema), then runtime. */
struct sl__file_sink {
    struct sl_template *path; /* option: path template */
    int encoding;             /* option: SL__FILE_ENCODE_* */
    struct sl_template *text; /* option `template`: text line template */
    struct sl_list fields;    /* option: csv columns */
    bool csv_header;          /* option */
    int64_t max_open_files;   /* option */
    uint64_t rotate_size;     /* option: bytes, 0: off */
    int64_t rotate_interval;  /* option: ms, 0: off */
    int fsync;                /* option: SL__FILE_FSYNC_* */
    bool mkdir;               /* option: create directories */
    bool local_time;          /* option: strftime in local time */

    struct sl_stage *stage;              /* this stage */
    struct sl__file_path pathr;          /* the path's renderer */
    bool constant_path;                  /* the path is the same for every event: path_buf */
    struct sl__file_enc enc;             /* encoding */
    struct sl__file_outs outs;           /* open files */
    struct sl__file_iobuf io;            /* the run being gathered */
    char path_buf[SL__FILE_PATH_MAX];    /* rendered path */
    char cached_path[SL__FILE_PATH_MAX]; /* path of `cached` */
    struct sl__file_out *cached;         /* handle of the last path, NULL after a detach */
    struct sl_batch *cur;                /* batch being written (borrowed in write(); after
                                            an SL_RETRY only compared: the runtime holds
                                            it and offers it again) */
    bool resume;                         /* write() answered SL_RETRY for `cur`: its next
                                            offer goes on from idx/skip */
    size_t idx;                          /* committed: next event to write */
    size_t skip;                         /* committed: bytes of event idx already written */
    size_t next;                         /* next event to gather into the run */
    struct sl__file_out *h;              /* file of the run */
    size_t *lens;                        /* bytes of each event in the run */
    size_t nlens, lens_cap;              /* entries */
    bool run_nl;                         /* the run starts with a newline repair */
    size_t run_hdr;                      /* csv header bytes at the start of the run */
    bool pending;                        /* write() answered PENDING: wake when ready */
    struct sl_batch **waiting;           /* written, awaiting an fsync */
    size_t nwaiting, waiting_cap;        /* entries */
    size_t syncing;                      /* batches in the running fsync job */
    bool fsync_busy;                     /* an fsync job is running */
    uint64_t write_errors;               /* failed attempts (open, write, rename) */
    uint64_t missing;                    /* events dropped: a path field was absent */
    uint64_t routed;                     /* events a path was rendered for */
    uint64_t fsyncs;                     /* fsync jobs completed */
};

/* The options both line sources (file, stdin) take, one declaration for both; `OPT(f)`
 * is the source's offsetof(state, f). */
#define SL__FILE_LINE_OPTIONS(OPT)                                                                 \
    {"max_line_bytes",                                                                             \
     SL_OPT_SIZE,                                                                                  \
     "1MiB",                                                                                       \
     0,                                                                                            \
     OPT(max_line_bytes),                                                                          \
     "longest line kept whole; longer lines are cut or dropped (on_oversize)"},                    \
        {"on_oversize",                                                                            \
         SL_OPT_ENUM,                                                                              \
         "truncate",                                                                               \
         0,                                                                                        \
         OPT(on_oversize),                                                                         \
         "a longer line is cut to max_line_bytes and flagged 'truncated', or dropped",             \
         "truncate|drop"},                                                                         \
        {"encoding",    SL_OPT_ENUM,                                                               \
         "binary",      0,                                                                         \
         OPT(encoding), "binary: bytes as they are; utf8: check lines (invalid_utf8)",             \
         "binary|utf8"},                                                                           \
    {                                                                                              \
        "invalid_utf8", SL_OPT_ENUM, "replace", 0, OPT(invalid_utf8),                              \
            "with encoding utf8: replace bad sequences by U+FFFD, pass the line, or drop it",      \
            "replace|pass|drop"                                                                    \
    }

#define SL__FILE_HOST_OPTION(OPT)                                                                  \
    {                                                                                              \
        "host_key", SL_OPT_STRING, "", 0, OPT(host_key),                                           \
            "field receiving the host name, e.g. host (\"\": none; the host is always the "        \
            "event's "                                                                             \
            "host metadata)"                                                                       \
    }

#endif
