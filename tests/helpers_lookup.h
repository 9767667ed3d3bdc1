/* Helpers of the sqlite_lookup tests (test_sqlite_lookup*.c): a SQL function that holds
 * lookups, a source of keyed events, a sink that keeps each event's JSON, and the
 * pipeline they share, src -> look (sqlite_lookup) -> out, look.dead_letter -> dead, on
 * a database made with the sqlite3 CLI in a temporary directory. */
#ifndef SLUICE_TEST_HELPERS_LOOKUP_H
#define SLUICE_TEST_HELPERS_LOOKUP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <sluice/sluice.h>
#include <sluice/sqlite.h>

/* t_delay(id), a SQL function of every connection opened after lk_setup(): sleeps
 * lk_delay_us microseconds when id is a multiple of lk_delay_every (0: never), records in
 * lk_ended[] the ids in the order the calls end (lk_nended of them), and returns 1, for
 * queries like "WHERE id = :n AND t_delay(id)". */
extern atomic_int lk_delay_every, lk_delay_us, lk_nended;
extern int lk_ended[20000];

/* Source "t_keyed". */
/* Emits `count` events, `batch` at a time: payload and field n = 0, 1, ..., field k =
 * n % mod. With pause_at, it stops before event pause_at until every earlier event is
 * acknowledged, then waits pause_ms more (the cache's entries age meanwhile). */
struct t_keyed {
    int64_t count, batch, mod, pause_at, pause_ms; /* options */
    int64_t next, acked;                           /* produced / acknowledged */
    bool waiting, resumed;                         /* the pause's timer is running / ran */
    struct sl_timer *timer;                        /* the pause */
};
extern const struct sl_stage_type t_keyed;

/* Sink "t_json": keeps the JSON form (sl_event_write_json) and payload number of each
 * event in arrival order, acknowledges at once, then calls `hook`. */
struct t_json {
    char **json;   /* each event's JSON form, in arrival order */
    int64_t *num;  /* each event's payload number */
    size_t n, cap; /* used / allocated */
    void (*hook)(struct sl_stage *s, struct t_json *j); /* after each batch; may be NULL */
};
extern const struct sl_stage_type t_json;

/* The fixture: a temporary directory with the database path lk_db, and a pipeline lk_p
 * (queues of 2 batches). lk_setup / lk_teardown are the suites' init and fini. */
extern char *lk_dir, lk_db[512];
extern struct sl_pipeline *lk_p;
extern struct sl_stage *lk_src, *lk_look, *lk_out, *lk_dead;
void lk_setup(void);
void lk_teardown(void);

/* Table users in lk_db: ids 0..n-1 that are multiples of `every`, name "user-ID", tier
 * lk_tier(id). */
void lk_make_users(int n, int every);
const char *lk_tier(int64_t id);

/* Builds lk_src (t_keyed with options `src_yaml`) -> lk_look (sqlite_lookup on lk_db with
 * options `look_yaml`) -> lk_out (t_json), and lk_look.dead_letter -> lk_dead (t_json)
 * when the stage declares that output (else lk_dead is NULL). */
void lk_build(const char *src_yaml, const char *look_yaml);

/* A t_json sink's record. */
struct t_json *lk_rec(struct sl_stage *s);

/* The stats of lk_db's pool, and of a stage. */
struct sl_sqlite_stats lk_pool_stats(void);
void lk_keep_stats(void *arg, const char *path, const struct sl_sqlite_stats *st);
struct sl_stage_stats lk_stage_stats(struct sl_stage *s);

/* Runs lk_p and asserts success. */
void lk_run_ok(void);

/* Into `buf`: the JSON of t_keyed's event n (key k), with the row of user k when `found`. */
void lk_expected(char *buf, size_t cap, int64_t n, int64_t k, bool found);

#endif
