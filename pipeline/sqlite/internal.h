/* SQLite through a connection pool (include/sluice/sqlite.h): the pool that lends
 * connections to requests on the runtime's executor threads (pool.c), and what a
 * request does with its connection: prepared statements kept per connection, steps with
 * SQLITE_BUSY retried (conn.c). Depends on base/ and runtime/. */
#ifndef SLUICE_PIPELINE_SQLITE_INTERNAL_H
#define SLUICE_PIPELINE_SQLITE_INTERNAL_H

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <sluice/sqlite.h>
#include <sluice/stage.h>

#include "base/internal.h"
#include "runtime/internal.h"

/* Counters bumped by requests on executor threads. */
struct sl__sqlite_counters {
    atomic_uint_fast64_t statements; /* statements stepped to SQLITE_DONE */
    atomic_uint_fast64_t retries;    /* SQLITE_BUSY / SQLITE_LOCKED retried */
};

struct sl__stmt {
    char *sql;        /* the text (owned) */
    sqlite3_stmt *st; /* prepared */
    uint64_t used;    /* the conn's clock when last used (least recently used goes) */
};

struct sl_sqlite_conn {
    struct sl_sqlite_conn *next;          /* the pool's list */
    struct sl_sqlite_pool *pool;          /* owner */
    sqlite3 *db;                          /* NULL until opened by the first request's thread */
    int64_t opened_ns;                    /* for max_lifetime */
    int64_t idle_ns;                      /* since when it is idle */
    bool busy;                            /* lent to a request */
    bool doomed;                          /* to be closed when it comes back (lifetime, free) */
    struct sl__stmt *stmts;               /* statement cache: nstmts of cap */
    uint32_t nstmts, cap;                 /* in use / room (the pool's statement_cache) */
    uint64_t clock;                       /* statements handed out, for the cache's LRU */
    sqlite3_stmt *once;                   /* without a cache: the request's last statement */
    int64_t busy_ms;                      /* SQLITE_BUSY / SQLITE_LOCKED are retried this long */
    struct sl__sqlite_counters *counters; /* the pool's */
};

/* Opens `c` on the calling (executor) thread: WAL, foreign keys, the directory made.
 * Returns 0 or SL_EIO with `err`. */
int sl__sqlite_conn_open(struct sl_sqlite_conn *c, const char *path, struct sl_error *err);
/* Finalizes the statements and closes the database. Any thread (not while in use). */
void sl__sqlite_conn_close(struct sl_sqlite_conn *c);

#endif
