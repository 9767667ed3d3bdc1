/* The `file` source's private declarations: its state, one record per file, and what
 * its files (source.c, acks.c, scan.c, identity.c, rotation.c, watch.c) call in each
 * other. Included by internal.h, after the declarations it uses. */
#ifndef SLUICE_CONNECTORS_FILE_SOURCE_H
#define SLUICE_CONNECTORS_FILE_SOURCE_H

#ifndef SLUICE_CONNECTORS_FILE_INTERNAL_H
#error "include internal.h"
#endif

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
    bool known;               /* a saved checkpoint row leads to it: it may be read (acks.c) */
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
    struct sl__file_ckpt *ckpt;            /* checkpoint rows, on the database's pool */
    char *ckpt_path;                       /* the database file (owned) */
    char *ckpt_real;                       /* its real path: never read as a log */
    bool loaded;                           /* the rows are loaded: scanned and reading */
    bool ended;                            /* flush(end): acks now start saves at once */
    unsigned save_jobs;                    /* saves whose done callback has not run */
    unsigned end_retries;                  /* transient failures of saves after the end */
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

/* identity.c: whether `fd` begins with the bytes of fingerprint fp/fp_len (a short one:
 * the file may have grown since). */
bool sl__file_begins_with(uint64_t fp, uint32_t fp_len, int fd);

/* identity.c: whether fingerprint fp/fp_len (a checkpoint row's) is `f`'s first bytes, or
 * the start of them: the row leads the next run to `f` (rotation.c). */
bool sl__file_fits(const struct sl__file *f, uint64_t fp, uint32_t fp_len);

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

/* acks.c: the checkpoint_interval timer: saves changed offsets (a request of the
 * database's pool) and frees closed files that are done with. */
void sl__file_on_ckpt_timer(struct sl_stage *stage, void *arg);

/* acks.c: starts the save that ack() found due (first ack, checkpoint_bytes), unless two
 * are out already. Called by poll(). */
void sl__file_save_if_wanted(struct sl__file_src *s);

/* acks.c: whether poll() waits before reading on: a save is out and a quarter of
 * checkpoint_bytes of acknowledged data waits behind it (saved() wakes the stage). */
bool sl__file_save_behind(const struct sl__file_src *s);

/* acks.c: the source has ended (flush(end)): saves what changed; from now on the acks
 * still coming start their saves themselves, and the run waits for them. */
void sl__file_save_at_end(struct sl__file_src *s);

/* acks.c: at start: asks the pool of the checkpoint database at s->ckpt_path for the
 * source's rows; once loaded, the first scan runs (sl__file_first_scan). Returns 0 or an
 * SL_E* code with `err`. */
int sl__file_load_checkpoints(struct sl__file_src *s, struct sl_error *err);

/* source.c: the first scan, once the checkpoints are known: files are placed, renamed
 * ones resumed, rows of files long gone purged. */
void sl__file_first_scan(struct sl__file_src *s);

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

/* rotation.c: the rotate_wait timer: renamed files whose time is up are drained once
 * more and released. */
void sl__file_on_rotate_timer(struct sl_stage *stage, void *arg);

/* rotation.c: `f`, renamed away, is back under a path of the glob: an ordinary file. */
void sl__file_renamed_done(struct sl__file_src *s, struct sl__file *f);

/* rotation.c: stops following `f` alone (it is released). */
void sl__file_unwatch(struct sl__file_src *s, struct sl__file *f);

/* rotation.c: the path of open file `f` now (it may have been renamed again), into `buf`
 * (`cap` bytes); f->path when it cannot be told. Returns buf. */
const char *sl__file_current_path(const struct sl__file *f, char *buf, size_t cap);

/* acks.c: at start, after the first scan: deletes the rows of files gone for longer than
 * checkpoint_retention (a save of the pool). */
void sl__file_purge_checkpoints(struct sl__file_src *s);

/* acks.c: asks for a save at the next poll (a state worth saving at once). */
void sl__file_save_soon(struct sl__file_src *s);

/* acks.c: `f` was just opened, or holds new content: sets f->known, whether a saved row
 * leads to it (its inode, and first bytes it begins with), and if not asks for a save. */
void sl__file_check_known(struct sl__file_src *s, struct sl__file *f);

/* acks.c: whether `f` may be read now: a saved row leads to it, so that the next run can
 * find it whatever happens to it (renamed out of the glob, then a crash), or it has no byte
 * to identify it by yet, or there are no checkpoints. Otherwise asks for the save that
 * records it (which marks it readable again) and returns false. */
bool sl__file_may_read(struct sl__file_src *s, struct sl__file *f);

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

#endif
