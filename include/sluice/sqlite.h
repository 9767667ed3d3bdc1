/* sluice: SQLite through an asynchronous connection pool.
 *
 * SQLite calls block, so they never run on the event loop. A stage asks the pool of a
 * database file for a connection by submitting a request: `work` runs on one of the
 * pipeline's executor threads with a connection lent to it, then `done` runs on the
 * loop thread with the result, like sl_stage_submit(). Requests beyond the pool's
 * connections wait in FIFO order, at most `acquire_timeout`; writes go through one
 * connection at a time (SQLite has one writer), reads run side by side.
 *
 * A pipeline has one pool per database file, shared by every stage that names it (the
 * sqlite sink, source and lookup, the file source's checkpoints). Each connection opens
 * in WAL mode with foreign keys on and keeps a cache of prepared statements; SQLITE_BUSY
 * and SQLITE_LOCKED are retried with exponential backoff and jitter for `busy_timeout`.
 *
 *   struct sl_sqlite_pool *db = sl_sqlite_pool(stage, "app.db", NULL, &err);
 *   sl_sqlite_submit(db, stage, SL_SQLITE_READ, count_rows, counted, job);
 *
 *   static int count_rows(struct sl_sqlite_conn *c, void *arg, struct sl_error *err)
 *   {   // an executor thread
 *       sqlite3_stmt *st = sl_sqlite_prepare(c, "SELECT count(*) FROM logs", err);
 *       if (!st || sl_sqlite_step(c, st, err) != SQLITE_ROW) return err->code;
 *       ((struct job *)arg)->n = sqlite3_column_int64(st, 0);
 *       return 0;
 *   }
 *   static void counted(struct sl_stage *s, void *arg, int rc, const struct sl_error *err)
 *   {   // the loop thread: use the result, or err->msg
 *   } */
#ifndef SLUICE_SQLITE_H
#define SLUICE_SQLITE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include <sluice/error.h>

struct sl_stage;
struct sl_pipeline;
struct sl_sqlite_pool; /* opaque: the connections to one database file */
struct sl_sqlite_conn; /* opaque: a connection lent to one request */

/* The settings of a pool. */
struct sl_sqlite_options {
    uint32_t max_connections;   /* connections open at most (default 4) */
    uint32_t min_idle;          /* idle connections kept open past idle_timeout (default 0) */
    int64_t idle_timeout_ms;    /* an idle connection beyond min_idle is closed after this
                                   (default 60000) */
    int64_t max_lifetime_ms;    /* a connection older than this is replaced when it comes
                                   back (default 1800000; 0: never) */
    int64_t acquire_timeout_ms; /* a request waiting longer for a connection fails with
                                   SL_EBUSY (default 30000) */
    int64_t busy_timeout_ms;    /* SQLITE_BUSY / SQLITE_LOCKED are retried this long
                                   (default 5000) */
    uint32_t statement_cache;   /* prepared statements kept per connection (default 32) */
};

/* Fills `o` (borrowed) with the defaults. */
SL_API void sl_sqlite_options_init(struct sl_sqlite_options *o);

/* The pool of database file `path` (borrowed) in `stage`'s pipeline: made at the first
 * call with `opts` (borrowed, copied; NULL: defaults), the same pool for every later
 * call naming the same file (the options of the first call hold; a later call's
 * max_connections is taken when larger). The file and its directory are created when
 * missing, at the first request. Returns the pool (borrowed; valid until the pipeline
 * is freed), or NULL with `err` filled. Loop thread; from init() on. */
SL_API struct sl_sqlite_pool *sl_sqlite_pool(struct sl_stage *stage, const char *path,
                                             const struct sl_sqlite_options *opts,
                                             struct sl_error *err);

/* What a request does. */
enum {
    SL_SQLITE_READ = 0,  /* reads: may run beside other reads */
    SL_SQLITE_WRITE = 1, /* writes: one at a time per database */
};

/* The work of a request, on an executor thread, with connection `c` (borrowed; valid
 * during the call): returns 0, or an SL_E* code with `err` (borrowed) filled. */
typedef int sl_sqlite_work_fn(struct sl_sqlite_conn *c, void *arg, struct sl_error *err);

/* The end of a request, on the loop thread: `rc` is what work returned, SL_EBUSY when no
 * connection came within acquire_timeout, SL_EIO when the database could not be opened,
 * or SL_ESTOPPED when the pipeline was freed first (then work never ran). `err`
 * (borrowed; valid during the call) says why when rc != 0. */
typedef void sl_sqlite_done_fn(struct sl_stage *stage, void *arg, int rc,
                               const struct sl_error *err);

/* Queues a request of `stage` (borrowed) to `pool`: `work(conn, arg, err)` when a
 * connection is free (`flags`: SL_SQLITE_READ or SL_SQLITE_WRITE), then `done(stage,
 * arg, rc, err)`. Requests start in the order they were queued. As with
 * sl_stage_submit(), the stage's input does not end while a request is out, and `done`
 * runs before the stage's close(). Returns 0 or SL_ENOMEM (then no callback runs).
 * Loop thread. */
SL_API int sl_sqlite_submit(struct sl_sqlite_pool *pool, struct sl_stage *stage, int flags,
                            sl_sqlite_work_fn *work, sl_sqlite_done_fn *done, void *arg);

/* ---- inside work(), on the executor thread ------------------------------------------- */

/* The connection's database handle (borrowed). Do not close it. */
SL_API sqlite3 *sl_sqlite_db(struct sl_sqlite_conn *c);

/* The prepared statement for `sql` (borrowed, NUL-terminated), from the connection's
 * cache (prepared and cached on first use), reset with its bindings cleared. Valid until
 * work() returns. NULL with `err` (SQLite's message and the statement) when it does not
 * prepare. */
SL_API sqlite3_stmt *sl_sqlite_prepare(struct sl_sqlite_conn *c, const char *sql,
                                       struct sl_error *err);

/* sqlite3_step() with SQLITE_BUSY / SQLITE_LOCKED retried (backoff with jitter, at most
 * busy_timeout): returns SQLITE_ROW or SQLITE_DONE, or -1 with `err` (SL_EIO, or SL_EBUSY
 * when the lock never came; SQLite's message and the statement's text). */
SL_API int sl_sqlite_step(struct sl_sqlite_conn *c, sqlite3_stmt *st, struct sl_error *err);

/* Runs `sql` (one or more statements, no rows expected), with the retries of
 * sl_sqlite_step. Returns 0 or SL_EIO / SL_EBUSY with `err`. */
SL_API int sl_sqlite_exec(struct sl_sqlite_conn *c, const char *sql, struct sl_error *err);

/* ---- observing ------------------------------------------------------------------------ */

/* A snapshot of a pool. */
struct sl_sqlite_stats {
    uint32_t open;       /* connections open */
    uint32_t idle;       /* of which idle */
    uint32_t busy;       /* of which lent to a request */
    uint32_t waiting;    /* requests waiting for a connection */
    uint64_t requests;   /* requests finished */
    uint64_t wait_ns;    /* total time requests waited for a connection */
    uint64_t statements; /* statements stepped to their end */
    uint64_t errors;     /* requests that failed */
    uint64_t retries;    /* SQLITE_BUSY / SQLITE_LOCKED retries */
};

/* Calls `fn(arg, path, stats)` for every pool of pipeline `p` (borrowed), in the order
 * they were made; `path` and `stats` are valid during the call. Loop thread. */
SL_API void sl_sqlite_pools(struct sl_pipeline *p,
                            void (*fn)(void *arg, const char *path,
                                       const struct sl_sqlite_stats *stats),
                            void *arg);

#endif
