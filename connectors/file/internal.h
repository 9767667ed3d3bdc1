/* The file connector's private declarations, shared by the files of this folder only
 * (and by its unit tests). Split by concern, as Fluent Bit's in_tail is:
 *
 *   lines.c       newline framing, oversize lines, UTF-8 check, event metadata
 *   scan.c        glob/exclude discovery; rename, truncation and deletion decisions
 *   identity.c    fingerprints: the same file, new content on an inode, copies
 *   watch.c       how changes are noticed: inotify or polling, one ops table each
 *   rotation.c    files that held a followed path between two looks, unseen
 *   checkpoint.c  per-file offsets in SQLite
 *   source.c      the `file` source: reading, timers, lifetime   -> sl_stage_file_source
 *   acks.c        the `file` source's acks and checkpoint saves
 *   stdin.c       the `stdin` source                             -> sl_stage_stdin
 *   path.c        the sink's path template: strftime fields, safe field values
 *   encode.c      json / text / csv encodings into iovecs
 *   outputs.c     open output files: LRU of descriptors, rotation
 *   sink.c        the `file` sink: writes, retries, fsync         -> sl_stage_file_sink
 *   stdout.c      the `stdout` sink                               -> sl_stage_stdout */
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

struct sl__file_ckpt; /* an open checkpoint database */

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

/* Opens (creating the file, its directory and the table) the database at `path`
 * (borrowed) and loads the rows of `source` (borrowed, copied). Blocking: start() only.
 * Returns 0 with *out owned (free: sl__file_ckpt_close), or SL_EIO with `err`. */
int sl__file_ckpt_open(const char *path, const char *source, struct sl__file_ckpt **out,
                       struct sl_error *err);

/* The loaded row of file dev/ino (borrowed; valid until close), or NULL. */
const struct sl__file_ckpt_row *sl__file_ckpt_find(const struct sl__file_ckpt *c, uint64_t dev,
                                                   uint64_t ino);

/* The loaded rows (borrowed; valid until the next apply, purge or close): the rows of the
 * source at open, kept as saves change them. Returns how many. */
size_t sl__file_ckpt_rows(const struct sl__file_ckpt *c, const struct sl__file_ckpt_row **rows);

/* After a successful save of `n` rows (borrowed): makes the loaded rows match what the
 * database now holds. Loop thread (never while a save of `c` runs elsewhere on them). */
void sl__file_ckpt_apply(struct sl__file_ckpt *c, const struct sl__file_ckpt_row *rows, size_t n);

/* Writes `n` rows (borrowed) in one transaction. Blocking: an executor thread, or
 * close(). Returns 0, or SL_EIO with the reason in `msg` (borrowed, `cap` bytes). */
int sl__file_ckpt_save(struct sl__file_ckpt *c, const struct sl__file_ckpt_row *rows, size_t n,
                       char *msg, size_t cap);

/* Deletes the loaded rows for which `gone(arg, row)` (row borrowed) is true, in one
 * transaction, and forgets them. Blocking: start() only. Returns 0 with *purged the number deleted,
 * or SL_EIO/SL_ENOMEM with the reason in `msg` (`cap` bytes); nothing is forgotten then. */
int sl__file_ckpt_purge(struct sl__file_ckpt *c,
                        bool (*gone)(void *arg, const struct sl__file_ckpt_row *r), void *arg,
                        size_t *purged, char *msg, size_t cap);

/* Closes the database. NULL is a no-op. */
void sl__file_ckpt_close(struct sl__file_ckpt *c);

/* FNV-1a over `n` bytes: the fingerprint hash. */
uint64_t sl__file_hash(const void *data, size_t n);

/* ==== the file source ================================================================= */

enum sl__file_state {
    SL__FILE_ACTIVE = 0, /* matched by the glob, followed */
    SL__FILE_ROTATED,    /* renamed out of the glob: drained, closed after rotate_wait */
    SL__FILE_DELETED,    /* unlinked: drained, then released */
    SL__FILE_CLOSED,     /* fd closed; kept until its batches are acknowledged */
};

/* One tracked file. */
struct sl__file {
    struct sl__file *next;               /* all files of the source */
    struct sl__file *hnext;              /* path hash chain */
    char *path;                          /* current path (owned) */
    uint64_t hpath;                      /* hash of path */
    int fd;                              /* -1 once closed */
    uint64_t dev, ino;                   /* identity */
    uint64_t fp;                         /* fingerprint: hash of the first fp_len bytes */
    uint32_t fp_len;                     /* bytes fingerprinted (identity.c) */
    unsigned char head[SL__FILE_FP_MAX]; /* those bytes */
    int64_t mtime_ns;                    /* modification time at the last look */
    uint64_t pos;                        /* next byte to frame (start of a partial line) */
    uint64_t size;                       /* size at the last look */
    uint64_t acked;                      /* every byte before it is acknowledged downstream */
    uint32_t gen;                        /* truncation generation: older batches' acks ignored */
    uint32_t refs;                       /* batches in flight */
    enum sl__file_state state;
    struct sl__file *after;   /* the file this path held before: read this one only once
                                 that one has been read to its end (rotation order) */
    struct sl__file_frame fr; /* framing state */
    int64_t partial_since;    /* ms (loop clock) a partial last line was first seen; 0 */
    int64_t rotated_at;       /* ms when it left the glob */
    bool readable;            /* may have bytes beyond pos: read it */
    bool partial_due;         /* partial_line_timeout passed: emit the partial line */
    bool final;               /* rotate_wait passed: drain once more, then release */
    bool big_read;            /* the line at pos is longer than a block: read max_line */
    bool seen;                /* found by the current scan */
    bool dirty;               /* acked moved since the last checkpoint save */
    bool forget;              /* the file was deleted: drop its checkpoint row */
    bool stale;               /* superseded by a new file on the same inode: never saved */
    bool retired;             /* an earlier content of a truncated file, for its copy */
    bool renamed;             /* renamed out of the glob, not done with (saved as rotated) */
    char *now_at;             /* renamed: its path when last looked at (owned), or NULL */
    int wd;                   /* the watch backend's watch of this file alone, 0: none */
    bool undecided;           /* too short to tell whether it is a copy: not read yet */
    bool decide_now;          /* undecided for partial_line_timeout: read it as itself */
    int64_t undecided_since;  /* ms it was found undecided; 0 */
};

enum { SL__FILE_FROM_BEGINNING = 0, SL__FILE_FROM_END };
enum { SL__FILE_WATCH_AUTO = 0, SL__FILE_WATCH_INOTIFY, SL__FILE_WATCH_POLL };

/* A batch in flight: which file and how far it reaches. */
struct sl__file_flight {
    uint64_t seq;       /* the batch cookie */
    struct sl__file *f; /* the file it was read from (a reference) */
    uint32_t gen;       /* f->gen when read */
    uint64_t end;       /* offset just past its last line */
};

struct sl__file_watch_ops;

/* The state of a `file` source: options first (filled by the schema), then runtime. */
struct sl__file_src {
    struct sl_list path;          /* option: paths or globs */
    struct sl_list exclude;       /* option: globs to leave out */
    int read_from;                /* option: SL__FILE_FROM_* */
    bool follow;                  /* option: keep watching after EOF */
    uint64_t max_line_bytes;      /* option */
    int on_oversize;              /* option: SL__FILE_OVERSIZE_* */
    int encoding;                 /* option: SL__FILE_ENC_* */
    int invalid_utf8;             /* option: SL__FILE_UTF8_* */
    int64_t partial_line_timeout; /* option, ms */
    const char *checkpoint;       /* option: database path; NULL: data_dir/checkpoints.db */
    int64_t checkpoint_interval;  /* option, ms */
    uint64_t checkpoint_bytes;    /* option: save once this much is acknowledged, 0: off */
    int64_t checkpoint_retention; /* option, ms: rows of files gone this long are purged */
    int watch_mode;               /* option `watch`: SL__FILE_WATCH_* */
    int64_t poll_interval;        /* option, ms */
    int64_t rotate_wait;          /* option, ms */
    uint64_t read_buffer;         /* option: bytes per read */
    const char *host_key;         /* option: "" disables */
    const char *file_key;         /* option */
    const char *offset_key;       /* option */

    struct sl_stage *stage;                /* this stage */
    struct sl__file_lines lines;           /* framing settings and counters */
    char host[256];                        /* host name */
    char **globs;                          /* the path patterns, "./" prefixes removed */
    size_t nglobs;                         /* entries in globs */
    struct sl__file *files;                /* every tracked file */
    struct sl__file **htab;                /* path hash table of ACTIVE/ROTATED files */
    size_t hcap;                           /* buckets (power of two) */
    size_t hcount;                         /* files in the table */
    struct sl__file *cursor;               /* round-robin position */
    bool rescan;                           /* a scan is due */
    bool scanned;                          /* the first scan ran */
    struct sl__file_flight *flights;       /* ring of batches in flight */
    size_t fl_head, fl_count, fl_cap;      /* ring position, entries, capacity */
    uint64_t next_seq;                     /* next batch cookie */
    uint64_t batch_bytes;                  /* file bytes a full batch took (read sizing) */
    struct sl__file_ckpt *ckpt;            /* checkpoint database */
    char *ckpt_real;                       /* its real path: never read as a log */
    atomic_bool saving;                    /* a save's work runs on the executor */
    unsigned save_jobs;                    /* saves whose done callback has not run */
    bool save_wanted;                      /* a save is due: the next poll starts it */
    bool acked_once;                       /* the first acknowledgement has come */
    uint64_t unsaved;                      /* bytes acknowledged since the last save began */
    struct sl_timer *ckpt_timer;           /* every checkpoint_interval */
    struct sl_timer *partial_timer;        /* partial_line_timeout */
    int64_t partial_deadline;              /* when partial_timer fires (ms), 0: idle */
    struct sl_timer *rotate_timer;         /* rotate_wait */
    int64_t rotate_deadline;               /* when rotate_timer fires (ms), 0: idle */
    const struct sl__file_watch_ops *wops; /* how changes are noticed (follow) */
    void *watch;                           /* the backend's state */
    uint64_t truncations;                  /* counters, for tests and metrics */
    uint64_t rotations;                    /* files that left the glob */
    uint64_t deletions;                    /* files released because deleted */
    uint64_t opened;                       /* files opened */
    uint64_t scans;                        /* scans run */
    uint64_t read_errors;                  /* failed reads */
    uint64_t purged;                       /* checkpoint rows purged at start */
    uint64_t missed;                       /* contents that may have been missed */
    uint64_t copies;                       /* files recognised as copies of known ones */
    struct sl__file_suspect *suspects;     /* this scan: paths other files may have held */
    size_t nsuspects, suspects_cap;        /* entries */
    unsigned found_new;                    /* this scan: new files at paths new to it */
    char **unreadable;                     /* matched paths that cannot be read (reported) */
    size_t nunreadable, unreadable_cap;    /* entries */
    char unreadable_why[1024];             /* why the first of them could not be read */
};

/* scan.c: discovers files, recognises renamed, truncated and deleted ones. `initial`:
 * the first scan of the run (read_from applies). Loop thread. */
void sl__file_scan(struct sl__file_src *s, bool initial);

/* scan.c: the tracked file now at `path` (borrowed), or NULL. */
struct sl__file *sl__file_by_path(struct sl__file_src *s, const char *path);

/* scan.c: takes `f` out of the path table (it left the glob or closed). */
void sl__file_unhash(struct sl__file_src *s, struct sl__file *f);

/* identity.c: takes the first bytes of f->fd as its fingerprint. */
void sl__file_fingerprint(struct sl__file *f);

/* identity.c: whether `fd` (`size` bytes now) holds the file of fingerprint fp/fp_len: a
 * full one matches its first bytes; a short one, exactly all of its bytes. */
bool sl__file_same(uint64_t fp, uint32_t fp_len, int fd, uint64_t size);

/* identity.c: whether the first bytes of open file `f` differ from its fingerprint (new
 * content on the same inode); a short fingerprint grows with the file meanwhile. */
bool sl__file_head_changed(struct sl__file *f);

/* identity.c: `f` holds new content (`shrunk`: found smaller than the position; else its
 * first bytes changed): keeps the old content's state aside for a copy, starts over at 0. */
void sl__file_new_content(struct sl__file_src *s, struct sl__file *f, bool shrunk);

enum sl__file_settled {
    SL__FILE_SETTLED_NEW = 0, /* a file of its own: f->pos untouched */
    SL__FILE_SETTLED_COPY,    /* a copy: f->pos/acked set where its content was read to */
    SL__FILE_UNDECIDED,       /* may be a copy being written: not to be read yet */
};

/* identity.c: decides whether file `f` (found, no checkpoint of its own) is a copy of a
 * known content; `force`: never wait (too short to tell means its own file). */
enum sl__file_settled sl__file_settle(struct sl__file_src *s, struct sl__file *f, bool force);

/* identity.c: where file `f`, just opened, starts: its checkpoint, the offset of the
 * content it copies, read_from (`initial`: the first scan), or 0. */
void sl__file_place(struct sl__file_src *s, struct sl__file *f, bool initial);

/* source.c: frees record `f` (taken out of the list by the caller). */
void sl__file_free(struct sl__file *f);

/* source.c: closes `f`'s descriptor; the record stays until its batches are acked. */
void sl__file_release(struct sl__file_src *s, struct sl__file *f);

/* source.c: makes `t` fire within `in_ms` (earlier if it is already due sooner);
 * `*deadline` tracks when it fires (ms, 0: idle; the callback resets it). */
void sl__file_arm(struct sl__file_src *s, struct sl_timer *t, int64_t *deadline, int64_t in_ms);

/* source.c: files waiting for `f` (rotation order) may now be read. */
void sl__file_unblock(struct sl__file_src *s, struct sl__file *f);

/* source.c: `f` may have new bytes; wakes the source. */
void sl__file_mark_readable(struct sl__file_src *s, struct sl__file *f);

/* acks.c: records that batch `b` holds lines of `f` up to f->pos (its cookie names the
 * entry). Returns 0 or SL_ENOMEM. */
int sl__file_track(struct sl__file_src *s, struct sl__file *f, struct sl_batch *b);

/* acks.c: the type's ack(): moves acknowledged offsets in production order. */
void sl__file_ack(struct sl_stage *stage, struct sl_batch *b);

/* acks.c: the checkpoint_interval timer: saves changed offsets on an executor thread and
 * frees closed files that are done with. */
void sl__file_on_ckpt_timer(struct sl_stage *stage, void *arg);

/* acks.c: starts the save that ack() found due (first ack, checkpoint_bytes), unless one
 * is writing. Called by poll(). */
void sl__file_save_if_wanted(struct sl__file_src *s);

/* acks.c: saves what changed, blocking (close(), after the loop has stopped). */
void sl__file_save_final(struct sl__file_src *s);

/* acks.c: reports bytes read of the files' sizes (sl_stage_set_progress). */
void sl__file_progress(struct sl__file_src *s);

/* rotation.c: the scan found a new file at `path` (borrowed), replacing `old` (NULL: no
 * tracked file was there): notes whether other files may have held the path unseen. */
void sl__file_note_new(struct sl__file_src *s, const char *path, struct sl__file *old);

/* rotation.c: the scan is over: logs and counts (`missed`) the files that may have held a
 * followed path unseen, and forgets what the watch backend noted since the last scan. */
void sl__file_report_missed(struct sl__file_src *s);

/* rotation.c: at start, after the first scan: files renamed out of the glob and not done
 * with when the last run ended (their rows say rotated, or a crash came before a save
 * did: their inode is found under another name in their directory) are read on from
 * their checkpoint, as renamed files: to their end, then for rotate_wait. */
void sl__file_resume_renamed(struct sl__file_src *s);

/* rotation.c: `f` was renamed out of the glob: ROTATED, drained, followed for late
 * writes until rotate_wait has passed, and saved as such. */
void sl__file_renamed_away(struct sl__file_src *s, struct sl__file *f);

/* rotation.c: `f`, renamed away, is back under a path of the glob: an ordinary file. */
void sl__file_renamed_done(struct sl__file_src *s, struct sl__file *f);

/* rotation.c: stops following `f` alone (it is released). */
void sl__file_unwatch(struct sl__file_src *s, struct sl__file *f);

/* rotation.c: the path of open file `f` now (it may have been renamed again), into `buf`
 * (`cap` bytes); f->path when it cannot be told. Returns buf. */
const char *sl__file_current_path(const struct sl__file *f, char *buf, size_t cap);

/* acks.c: asks for a save at the next poll (a state worth saving at once). */
void sl__file_save_soon(struct sl__file_src *s);

/* scan.c: opens `path` (borrowed) as a file found outside the globs: placed by its
 * checkpoint like any other, not in the path table. Returns the record or NULL. */
struct sl__file *sl__file_open_outside(struct sl__file_src *s, const char *path);

/* rotation.c: frees the suspects list (close). */
void sl__file_suspects_free(struct sl__file_src *s);

/* ==== watch backends: how a following source notices changes ======================== */

/* A backend reports through sl__file_mark_readable() and by setting s->rescan, then
 * wakes the stage. */
struct sl__file_watch_ops {
    const char *name; /* "inotify" or "poll" */
    /* Starts noticing changes for `s`. Returns 0 or an SL_E* code with `err`. */
    int (*start)(struct sl__file_src *s, struct sl_error *err);
    /* Makes sure directory `dir` (borrowed) is watched; idempotent. */
    void (*add_dir)(struct sl__file_src *s, const char *dir);
    /* Stops and frees the backend state. */
    void (*stop)(struct sl__file_src *s);
    /* How many times `path` (borrowed) was created since the last scan; 0 when the
     * backend cannot tell. May be NULL. */
    unsigned (*created)(struct sl__file_src *s, const char *path);
    /* The scan is over: forget what created() counted. May be NULL. */
    void (*scanned)(struct sl__file_src *s);
    /* Follows the writes to open file `f`, which left the watched paths (renamed away);
     * sets f->wd. May be NULL: the scans look at such files (fstat). */
    void (*watch_file)(struct sl__file_src *s, struct sl__file *f);
    /* Stops following `f` alone (released, or back in the glob); clears f->wd. */
    void (*unwatch_file)(struct sl__file_src *s, struct sl__file *f);
};

extern const struct sl__file_watch_ops sl__file_watch_inotify;
extern const struct sl__file_watch_ops sl__file_watch_poll;

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
    struct sl_template *path;  /* option: path template */
    int encoding;              /* option: SL__FILE_ENCODE_* */
    struct sl_template *text;  /* option `template`: text line template */
    struct sl_list fields;     /* option: csv columns */
    bool csv_header;           /* option */
    int64_t max_open_files;    /* option */
    uint64_t rotate_size;      /* option: bytes, 0: off */
    int64_t rotate_interval;   /* option: ms, 0: off */
    int fsync;                 /* option: SL__FILE_FSYNC_* */
    int64_t retry_backoff;     /* option: first retry delay, ms */
    int64_t retry_max_backoff; /* option: longest retry delay, ms */
    bool mkdir;                /* option: create directories */
    bool local_time;           /* option: strftime in local time */

    struct sl_stage *stage;              /* this stage */
    struct sl__file_path pathr;          /* the path's renderer */
    bool constant_path;                  /* the path is the same for every event: path_buf */
    struct sl__file_enc enc;             /* encoding */
    struct sl__file_outs outs;           /* open files */
    struct sl__file_iobuf io;            /* the run being gathered */
    char path_buf[SL__FILE_PATH_MAX];    /* rendered path */
    char cached_path[SL__FILE_PATH_MAX]; /* path of `cached` */
    struct sl__file_out *cached;         /* handle of the last path, NULL after a detach */
    struct sl_batch *cur;                /* batch being written (our reference) */
    size_t idx;                          /* committed: next event to write */
    size_t skip;                         /* committed: bytes of event idx already written */
    size_t next;                         /* next event to gather into the run */
    struct sl__file_out *h;              /* file of the run */
    size_t *lens;                        /* bytes of each event in the run */
    size_t nlens, lens_cap;              /* entries */
    bool run_nl;                         /* the run starts with a newline repair */
    size_t run_hdr;                      /* csv header bytes at the start of the run */
    struct sl_timer *retry_timer;        /* retry after an error */
    int64_t backoff;                     /* next retry delay, 0: not failing */
    bool pending;                        /* write() answered PENDING: wake when ready */
    struct sl_batch **waiting;           /* written, awaiting an fsync */
    size_t nwaiting, waiting_cap;        /* entries */
    size_t syncing;                      /* batches in the running fsync job */
    bool fsync_busy;                     /* an fsync job is running */
    uint64_t write_errors;               /* failed attempts (open, write, rename) */
    uint64_t missing;                    /* events dropped: a path field was absent */
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
