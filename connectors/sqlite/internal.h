/* What the SQLite stages share (sink, source, lookup): typed values in and out of
 * statements, and reading a stage's pool options. Each stage keeps its own file. */
#ifndef SLUICE_CONNECTORS_SQLITE_INTERNAL_H
#define SLUICE_CONNECTORS_SQLITE_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/event.h>
#include <sluice/sqlite.h>
#include <sluice/stage.h>

/* Binds `v` (borrowed; its bytes must stay valid until the statement is stepped) to
 * parameter `i` of `st`: null, integer, real, text (JSON escapes decoded into `scratch`
 * when present: the caller gives `scratch` of `cap` bytes, at least v->len), a JSON
 * object or array as its text. Returns SQLITE_OK or SQLite's code (SQLITE_TOOBIG for an
 * escaped string longer than `cap`). Any thread. */
int sl__sqlite_bind(sqlite3_stmt *st, int i, const struct sl_value *v, char *scratch, size_t cap);

/* Column `i` of the current row of `st` as a value in `ev`'s batch (text and blobs are
 * copied into the batch: the row's memory goes with the next step): INTEGER -> int,
 * FLOAT -> float, TEXT -> string, BLOB -> string of its bytes, NULL -> null. Returns 0 or
 * SL_ENOMEM. On the thread that owns `ev`'s batch. */
int sl__sqlite_column(sqlite3_stmt *st, int i, struct sl_event *ev, struct sl_value *out);

/* Sets field `name` of `ev` to column `i` of the current row (sl__sqlite_column, then
 * sl_event_set). Returns 0, SL_ENOMEM, or SL_ELIMIT (the event's field limit). */
int sl__sqlite_set_field(sqlite3_stmt *st, int i, struct sl_event *ev, const char *name);

/* The options of a stage's pool (`pool: {max_connections, ...}` in its config, read
 * into `o` by the schema below): SL__SQLITE_POOL_OPTIONS(OPT) declares them in a
 * stage's option table, OPT(field) being offsetof(state, field) of a
 * struct sl__sqlite_pool_opts member. */
struct sl__sqlite_pool_opts {
    int64_t max_connections;    /* pool.max_connections */
    int64_t acquire_timeout_ms; /* pool.acquire_timeout */
    int64_t busy_timeout_ms;    /* pool.busy_timeout */
};

#define SL__SQLITE_POOL_OPTIONS(OPT)                                                               \
    {"pool.max_connections",                                                                       \
     SL_OPT_INT,                                                                                   \
     "4",                                                                                          \
     0,                                                                                            \
     OPT(max_connections),                                                                         \
     "connections to the database at most (shared by every stage naming the same path: the "       \
     "largest wins)",                                                                              \
     NULL,                                                                                         \
     "1..256"},                                                                                    \
        {"pool.acquire_timeout",                                                                   \
         SL_OPT_DURATION,                                                                          \
         "30s",                                                                                    \
         0,                                                                                        \
         OPT(acquire_timeout_ms),                                                                  \
         "a request that waits longer for a connection fails",                                     \
         NULL,                                                                                     \
         "1ms.."},                                                                                 \
    {                                                                                              \
        "pool.busy_timeout", SL_OPT_DURATION, "5s", 0, OPT(busy_timeout_ms),                       \
            "how long a locked database is waited for (retries with backoff)", NULL, "0.."         \
    }

/* The pool of `path` for `stage` with `o` (the stage's pool options). Returns the pool
 * or NULL with `err`. Loop thread; from init() on. */
struct sl_sqlite_pool *sl__sqlite_stage_pool(struct sl_stage *stage, const char *path,
                                             const struct sl__sqlite_pool_opts *o,
                                             struct sl_error *err);

#endif
