/* The `sqlite` sink's parts, private to connectors/sqlite: its state and options
 * (sink.c: the stage on the loop thread), its config turned into SQL (sink_config.c),
 * the rows of a batch evaluated on the loop (sink_rows.c) and the transaction that
 * writes them on an executor thread (sink_tx.c).
 *
 * One batch is one job: its rows are evaluated on the loop thread (the expressions may
 * allocate in the batch's arena, which only the loop may touch while other stages can
 * hold the batch) into an array of values, then one request on the pool
 * (SL_SQLITE_WRITE) writes them in one transaction, and the batch is acknowledged from
 * the request's done, on the loop, once COMMIT has succeeded. */
#ifndef SLUICE_CONNECTORS_SQLITE_SINK_H
#define SLUICE_CONNECTORS_SQLITE_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/config.h>
#include <sluice/expr.h>

#include "internal.h"

/* `mode`: how a row is written. */
enum sl__sqlite_sink_mode {
    SL__SQLITE_INSERT = 0,  /* INSERT INTO t (...) VALUES (...) */
    SL__SQLITE_UPSERT = 1,  /* ... ON CONFLICT (key) DO UPDATE SET c = excluded.c */
    SL__SQLITE_REPLACE = 2, /* INSERT OR REPLACE INTO ... */
};

/* `on_error`: what becomes of a row SQLite refuses (a constraint, a type mismatch). */
enum sl__sqlite_sink_on_error {
    SL__SQLITE_DROP = 0,        /* skipped, counted as an error and as dropped */
    SL__SQLITE_DEAD_LETTER = 1, /* a row of dead_letter_table, in the same transaction */
    SL__SQLITE_FAIL = 2,        /* the run fails; nothing of the batch is written */
};

/* One column: its name and the expression that gives its value. */
struct sl__sqlite_col {
    char *name;            /* owned */
    char *type;            /* SQL type for create_table (owned), NULL: none */
    struct sl_expr *expr;  /* owned, compiled once at init */
    bool payload_fallback; /* the value is the field `message`: an event without such a
                              field gives its payload (a raw line, as in its JSON form) */
};

/* The outcome of a job's request (set by the work, read by done). */
enum sl__sqlite_outcome {
    SL__SQLITE_UNSET = 0,  /* the work did not run (no connection, pipeline stopped) */
    SL__SQLITE_COMMITTED,  /* every row written or rejected by on_error, COMMIT done */
    SL__SQLITE_TRANSIENT,  /* rolled back; may pass (locked, disk full, I/O error) */
    SL__SQLITE_PERMANENT,  /* rolled back; would fail again (schema, read-only) */
    SL__SQLITE_ROW_FAILED, /* rolled back; a row was refused and on_error is fail */
};

/* A row the database refused, with SQLite's message. */
struct sl__sqlite_bad {
    size_t row; /* index in the batch */
    char *msg;  /* owned */
};

struct sl__sqlite_sink;

/* One batch on its way to the database. Filled on the loop (batch, vals), read by the
 * work on an executor thread, which writes the results; done reads them on the loop.
 * The pool's hand-over between the threads orders these accesses. */
struct sl__sqlite_job {
    struct sl__sqlite_job *next_job; /* the sink's queue (loop) */
    const struct sl__sqlite_sink *k; /* config (immutable after init) */
    struct sl_batch *batch;          /* taken from write(); acked after COMMIT */
    size_t nrows;                    /* events in the batch */
    size_t next;                     /* rows evaluated so far (loop) */
    struct sl_value *vals;           /* nrows x ncols values, row by row (owned) */
    size_t cap;                      /* values vals has room for */
    size_t scratch;                  /* longest escaped string: decode room for binding */
    bool setup;                      /* run the table's DDL first (not known to exist) */
    /* results of the work */
    enum sl__sqlite_outcome outcome;
    int64_t work_ns;             /* how long the work took (monotonic clock) */
    uint8_t *bad;                /* per row, 1 when refused (owned; NULL until one is) */
    struct sl__sqlite_bad *bads; /* the refused rows in the order found (owned) */
    size_t nbad, bad_cap;        /* entries / room */
};

/* Jobs one request writes, each in its own transaction, in order: the evaluated jobs at
 * the head of the queue when it was submitted, so that the executor goes from one
 * batch's COMMIT to the next batch's BEGIN without a round trip through the loop. */
#define SL__SQLITE_CHAIN 16

/* The request in flight (one at a time): filled on the loop before it is submitted, read
 * by the work, which writes `ran`; read back by done. */
struct sl__sqlite_req {
    struct sl__sqlite_job *jobs[SL__SQLITE_CHAIN]; /* queue order */
    size_t n;                                      /* entries */
    size_t ran;                                    /* jobs the work ran: all committed but
                                                      the last when it failed */
};

/* The stage's state: options (filled by the schema), config (init), run (loop thread). */
struct sl__sqlite_sink {
    /* options */
    const char *path;                   /* database file */
    const char *table;                  /* target table */
    const struct sl_config *columns;    /* map or list node */
    bool create_table;                  /* DDL at start */
    const struct sl_config *indexes;    /* list node or NULL */
    int mode;                           /* enum sl__sqlite_sink_mode */
    struct sl_list key;                 /* unique key columns */
    int on_error;                       /* enum sl__sqlite_sink_on_error */
    const char *dead_letter_table;      /* NULL: <table>_dead_letter */
    struct sl__sqlite_pool_opts pool_o; /* pool.* */
    /* config, from init (immutable afterwards: the work reads it on executor threads) */
    struct sl_stage *stage;
    const char *name;            /* the stage's name (dead letters say which sink) */
    struct sl__sqlite_col *cols; /* ncols columns (owned) */
    size_t ncols;                /* entries */
    char *insert_sql;            /* the one statement per row (owned) */
    char *setup_sql;             /* CREATE TABLE/INDEX IF NOT EXISTS; NULL without
                                    create_table (owned) */
    char *dl_setup_sql;          /* CREATE TABLE IF NOT EXISTS dead letters (owned) */
    char *dl_insert_sql;         /* one dead letter (owned) */
    int64_t retry_initial_ms;    /* the stage's retry.initial (runtime option) */
    int64_t retry_max_ms;        /* and retry.max: the failed batch's own backoff */
    /* run (loop thread) */
    struct sl_sqlite_pool *pool;  /* from start() */
    struct sl__sqlite_job *head;  /* the queue of taken batches, oldest first: evaluated
                                     but the last, which may be under evaluation */
    struct sl__sqlite_job *tail;  /* its last job */
    size_t queued, queued_rows;   /* jobs / rows in the queue */
    struct sl__sqlite_req req;    /* the request in flight */
    bool in_flight;               /* req is out */
    bool retrying;                /* head failed for a reason that may pass: offers are
                                     answered SL_RETRY until it commits */
    struct sl__sqlite_job *spare; /* the last finished job, its memory for the next one */
    bool broken;                  /* failed for good (the stage error is set) */
    bool ready;                   /* the table is known to exist (setup done) */
    bool warned;                  /* a refused row was logged (later ones only counted) */
    uint64_t rows, txns;          /* rows and transactions committed */
    int64_t tx_ns;                /* time the committed transactions took on the executor */
    struct sl_timer *retry_timer; /* the failed head's next attempt */
    struct sl_timer *slice_timer; /* evaluation goes on after the loop's turn */
    struct sl_backoff backoff;    /* delays of the failed job's attempts */
    char why[1024];               /* why head failed, for the answers SL_RETRY */
};

/* ---- sink_config.c ------------------------------------------------------------------- */

/* Reads columns, key, indexes, mode and on_error of `cfg` (borrowed) into `k` and builds
 * its SQL. Returns 0 or SL_ECONFIG (with the config position) / SL_ENOMEM in `err`.
 * What it allocated is freed by sl__sqlite_sink_config_free, also after a failure. */
int sl__sqlite_sink_config(struct sl__sqlite_sink *k, const struct sl_config *cfg,
                           struct sl_error *err);
void sl__sqlite_sink_config_free(struct sl__sqlite_sink *k);

/* ---- sink_rows.c --------------------------------------------------------------------- */

/* A job for batch `b` (borrowed: the job holds the reference write() was given), rows
 * not evaluated yet, made of `reuse` (a finished job, whose memory is taken over: owned;
 * NULL: a new one). NULL when out of memory (then `reuse` is freed). */
struct sl__sqlite_job *sl__sqlite_job_new(const struct sl__sqlite_sink *k, struct sl_batch *b,
                                          struct sl__sqlite_job *reuse);

/* Frees the job and its results; the batch is the caller's. NULL is a no-op. */
void sl__sqlite_job_free(struct sl__sqlite_job *j);

/* Forgets the results of an attempt (before the job's request is submitted again). */
void sl__sqlite_job_reset(struct sl__sqlite_job *j);

/* Evaluates the job's rows on the loop thread, from where it stopped, until they are
 * all done or `budget_ns` has passed. Returns 1 when every row is evaluated, 0 when
 * some are left (call again after the loop's turn), or SL_ENOMEM. */
int sl__sqlite_job_eval(struct sl__sqlite_job *j, int64_t budget_ns);

/* The row's values as a JSON object {"column": value, ...} (owned, NUL-terminated), for
 * its dead letter; NULL when out of memory. Any thread (reads the job only). */
char *sl__sqlite_row_json(const struct sl__sqlite_job *j, size_t row);

/* ---- sink_tx.c ----------------------------------------------------------------------- */

/* The work of a request (sl_sqlite_work_fn; `arg` a struct sl__sqlite_req): each job
 * in one transaction, in order, up to the first that fails (`ran` tells how far). */
int sl__sqlite_sink_work(struct sl_sqlite_conn *c, void *arg, struct sl_error *err);

/* The work of the request start() makes: the DDL (create_table) in a transaction, and
 * the row statement prepared, so that a missing table or column fails the run before
 * the first batch. `arg` is the sink. */
int sl__sqlite_sink_setup(struct sl_sqlite_conn *c, void *arg, struct sl_error *err);

/* True for SQLite result codes that may pass with time: busy or locked past
 * busy_timeout, a full disk, an I/O error. */
bool sl__sqlite_transient(int code);

#endif
