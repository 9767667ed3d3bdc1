/* The `sqlite` source (source.c): what its files share. source_page.c reads one page of
 * rows into a batch on an executor thread; source_checkpoint.c tracks the pages in flight,
 * moves the acknowledged position and loads and saves it in the checkpoint database.
 *
 * Threads: everything here runs on the loop thread, except the work of a request
 * (page_work, the checkpoint's load and save), which reads only what start() set and
 * never changes afterwards (the SQL text, the page size, the names) and its own job. */
#ifndef SLUICE_CONNECTORS_SQLITE_SOURCE_H
#define SLUICE_CONNECTORS_SQLITE_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* A tracking value: where a page starts (`WHERE tracking_column > ?1`) and what a
 * checkpoint holds. Plain data with owned bytes (sl__sqlsrc_value_free). */
struct sl__sqlsrc_value {
    int type;    /* SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB; 0: none yet */
    int64_t i;   /* SQLITE_INTEGER */
    double f;    /* SQLITE_FLOAT */
    char *bytes; /* SQLITE_TEXT / SQLITE_BLOB (owned, NUL-terminated) */
    size_t len;  /* bytes */
};

/* A page emitted and not yet acknowledged: its sequence number (the batch's cookie) and
 * the tracking value of its last row. */
struct sl__sqlsrc_flight {
    uint64_t seq;                 /* sl_batch_cookie of its batch */
    struct sl__sqlsrc_value last; /* owned */
};

enum sl__sqlsrc_phase {
    SQLSRC_LOADING = 0, /* the checkpoint is being read */
    SQLSRC_IDLE,        /* the next poll asks for a page */
    SQLSRC_FETCHING,    /* a page request is out (one at a time) */
    SQLSRC_WAITING,     /* follow: poll_interval after a short page; or a retry's backoff */
    SQLSRC_END,         /* snapshot: a short page was the last */
};

struct sl__sqlsrc {
    /* options (the schema in source.c) */
    const char *path;                 /* the database */
    const char *table;                /* a table, or */
    struct sl_list columns;           /* with table: the columns (default all) */
    const char *query;                /* a SELECT the source wraps */
    const char *tracking;             /* tracking_column */
    int64_t page_size;                /* rows per page, 0: batch.max_events */
    int mode;                         /* 0 snapshot, 1 follow */
    int64_t poll_interval_ms;         /* follow */
    const char *start_after;          /* without a checkpoint: the first lower bound */
    const char *checkpoint;           /* checkpoint database; "": none */
    int64_t checkpoint_interval_ms;   /* saves: this often */
    int64_t checkpoint_pages;         /* and after this many acknowledged pages (0: off) */
    struct sl__sqlite_pool_opts pool; /* the data pool's options */

    /* set by init()/start(), then read only (also by page requests) */
    struct sl_stage *stage;      /* this stage */
    char *sql_first;             /* the first page: no lower bound (owned) */
    char *sql_next;              /* the next pages: `> ?1` (owned) */
    bool hidden_tracking;        /* the tracking column is selected last, not a field */
    int64_t limit;               /* rows per page in effect */
    char *ckpt_path;             /* the checkpoint database (owned), NULL: none */
    struct sl_sqlite_pool *db;   /* the data's pool */
    struct sl_sqlite_pool *ckdb; /* the checkpoint's pool, NULL: none */

    /* reading (loop thread) */
    enum sl__sqlsrc_phase phase;  /* what the source waits for */
    struct sl__sqlsrc_value last; /* tracking value of the last row read (owned) */
    struct sl_batch *ready;       /* a page read, waiting to be returned by poll */
    bool ready_short;             /* ... and it was shorter than a page */
    bool ended;                   /* flush(end): SL_DONE answered or the pipeline stops */
    uint64_t pages;               /* page requests made */
    uint64_t busy_retries;        /* requests retried after busy_timeout */
    struct sl_backoff backoff;    /* for those retries */
    struct sl_timer *wait_timer;  /* poll_interval, or a retry's backoff */
    bool retry_load;              /* ... of the checkpoint's load */

    /* acknowledgements and checkpoints (source_checkpoint.c) */
    struct sl__sqlsrc_flight *flights; /* ring of fl_cap: fl_count from fl_head */
    size_t fl_head, fl_count, fl_cap;
    uint64_t next_seq;             /* the next page's cookie */
    struct sl__sqlsrc_value acked; /* the last acknowledged value (owned) */
    bool dirty;                    /* acked changed since the last save began */
    bool saving;                   /* a save request is out */
    bool acked_once;               /* the run's first acknowledgement was saved at once */
    int final_tries;               /* saves failed after the end */
    uint64_t pages_unsaved;        /* acknowledged pages since the last save began */
    struct sl_timer *save_timer;   /* checkpoint_interval */
};

/* ---- values (source_checkpoint.c) ------------------------------------------------------ */

void sl__sqlsrc_value_free(struct sl__sqlsrc_value *v);
/* Copies `from` into `to` (which it frees first). Returns 0 or SL_ENOMEM. */
int sl__sqlsrc_value_copy(struct sl__sqlsrc_value *to, const struct sl__sqlsrc_value *from);
/* Binds `v` to parameter `i` of `st`. Returns SQLite's code. */
int sl__sqlsrc_value_bind(sqlite3_stmt *st, int i, const struct sl__sqlsrc_value *v);
/* Reads column `i` of the current row of `st` into `v` (freed first). 0 or SL_ENOMEM. */
int sl__sqlsrc_value_read(sqlite3_stmt *st, int i, struct sl__sqlsrc_value *v);
/* Parses a `start_after` text: an integer when it reads as one, else text. */
int sl__sqlsrc_value_parse(const char *text, struct sl__sqlsrc_value *v);
/* The value as text for a log line, into `buf` (`cap` bytes); returns buf. */
const char *sl__sqlsrc_value_show(const struct sl__sqlsrc_value *v, char *buf, size_t cap);

/* ---- pages (source_page.c) ----------------------------------------------------------- */

/* Asks for the next page (after s->last). Returns 0 or SL_ENOMEM. */
int sl__sqlsrc_fetch(struct sl__sqlsrc *s);
/* A request failed with `rc`: a lock held past busy_timeout (or no connection within
 * acquire_timeout) is retried after a backoff, the rest fails the run, saying `what`
 * went wrong with database `path`.
 * Returns true when it will be retried. */
bool sl__sqlsrc_failed(struct sl__sqlsrc *s, const char *what, const char *path, int rc,
                       const struct sl_error *err);

/* ---- acknowledgements and checkpoints (source_checkpoint.c) --------------------------- */

/* Records the page in `b` (its last row's value: s->last) as in flight; sets b's cookie.
 * Returns 0 or SL_ENOMEM. */
int sl__sqlsrc_track(struct sl__sqlsrc *s, struct sl_batch *b);
/* The type's ack hook: moves the acknowledged value, in order, and saves when due. */
void sl__sqlsrc_ack(struct sl_stage *stage, struct sl_batch *b);
/* Reads the checkpoint (or start_after) into s->last, then lets the pages begin. */
int sl__sqlsrc_load(struct sl__sqlsrc *s);
/* Starts a save of s->acked when it changed and none is out. */
void sl__sqlsrc_save(struct sl__sqlsrc *s);
/* The save timer's callback. */
void sl__sqlsrc_on_save_timer(struct sl_stage *stage, void *arg);
/* Frees the flights. */
void sl__sqlsrc_flights_free(struct sl__sqlsrc *s);

#endif
