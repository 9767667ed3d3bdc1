/* Helpers for the sqlite source's tests: a table of typed rows made with the sqlite3
 * CLI, the check of one row's event, and a sink that records the rows it receives and
 * can be slow, hold its acknowledgements, and sample the pipeline from a timer. */
#ifndef SLUICE_TEST_HELPERS_SQLITE_H
#define SLUICE_TEST_HELPERS_SQLITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/sluice.h>
#include <sluice/sqlite.h>

/* Sink "t_rows": records field "id" of every event (-1 when it has none), in order, and
 * acknowledges each batch at once, or after `delay_ms` (answering SL_PENDING meanwhile:
 * one batch at a time). With `hold_after` N, the batches after the first N are kept
 * without an acknowledgement (SL_PENDING from the third kept one on, never woken). With
 * `sample_ms`, `on_sample` runs every sample_ms. `on_write` runs for each batch before it
 * is acknowledged. */
struct t_rows {
    int64_t delay_ms;      /* option */
    int64_t hold_after;    /* option */
    int64_t sample_ms;     /* option */
    bool nostore;          /* set by the test: keep no ids (the 1M-row run) */
    bool keep_payloads;    /* set by the test: keep each payload */
    int64_t *ids;          /* field "id" of each event */
    char **payloads;       /* with keep_payloads: each payload, NUL-terminated */
    size_t n, cap;         /* events received / room */
    int64_t batches;       /* write() calls */
    size_t max_batch;      /* the largest batch */
    int64_t acked_batches; /* batches acknowledged */
    void (*on_write)(struct sl_stage *, struct t_rows *, struct sl_batch *); /* hook */
    void (*on_sample)(struct sl_stage *, struct t_rows *);                   /* hook */
    void *arg;                                                               /* for hooks */
    struct sl_batch *held;                                                   /* delay_ms */
    struct sl_batch *kept[64];                                               /* hold_after */
    size_t nkept;
    struct sl_timer *timer, *sampler;
};
extern const struct sl_stage_type t_rows;

/* Creates table t (id INTEGER PRIMARY KEY, f REAL, s TEXT, n INTEGER) in `db` (the
 * sqlite3 CLI) and fills it with rows first..last: f = id * 1.5, s = 'row <id>', n =
 * NULL when id % 7 == 0, else id % 100. t_rows_insert adds rows the same way. */
void t_rows_table(const char *db, int64_t first, int64_t last);
void t_rows_insert(const char *db, int64_t first, int64_t last);

/* NULL when `ev` is row `id` of that table (fields id, f, s, n typed and in order, and
 * the payload their JSON object, in sync), else what differs (a static buffer). */
const char *t_rows_check(const struct sl_event *ev, int64_t id);

/* The checkpoint of source `name` in checkpoint database `ckdb` as the sqlite3 CLI
 * prints it ("" when there is none): "<last>|<typeof(last)>" (owned: free). */
char *t_checkpoint(const char *ckdb, const char *name);

/* The stats of the pool of database `path` in `p` (asserts that there is one). */
struct sl_sqlite_stats t_pool_stats(struct sl_pipeline *p, const char *path);

#endif
