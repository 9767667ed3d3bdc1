/* Throughput of sqlite_lookup in a real pipeline (batches, queues, scheduler, the pool's
 * executor threads) on a table of 100,000 rows: a source hands out events with an integer
 * field user_id from memory, the lookup merges name and tier, a sink acknowledges. Each
 * case is timed over every event; the best of several passes is reported as events/s,
 * ns/event, and the pool's requests (how many lookups reached SQLite).
 *
 *   bench_lookup [events] [passes] [case]   default 200000 events, 3 passes, every case
 *
 * Cases: the source -> sink baseline; a warm cache (keys drawn from 1,000 users, cache
 * 10,000: after the first 1,000 lookups every event is answered from the cache); no
 * cache (keys drawn from all 100,000 users: one query per event), with 4 and 8
 * connections and with max_in_flight 100 and 500. Then the peer: the same query on one
 * connection in a loop on one thread, without a pipeline (what SQLite itself costs). The
 * database is a temporary file, made once with the sqlite3 library and removed at the
 * end. */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sluice/builtins.h>
#include <sluice/sluice.h>
#include <sluice/sqlite.h>

#define ROWS 100000

static char dbpath[256];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The table: users(id 0..ROWS-1, name, tier). */
static void make_db(void)
{
    snprintf(dbpath, sizeof dbpath, "/tmp/bench-lookup-%d.db", (int)getpid());
    sqlite3 *db;
    if (sqlite3_open(dbpath, &db) != SQLITE_OK) exit(1);
    char *msg = NULL;
    int rc = sqlite3_exec(
        db,
        "PRAGMA journal_mode=WAL;"
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, tier TEXT);"
        "WITH RECURSIVE i(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM i WHERE x < 99999) "
        "INSERT INTO users SELECT x, 'user-' || x, CASE x % 3 WHEN 0 THEN 'gold' WHEN 1 "
        "THEN 'silver' ELSE 'bronze' END FROM i;",
        NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "bench_lookup: %s\n", msg);
        exit(1);
    }
    sqlite3_close(db);
}

/* The peer: the same query on one connection in a loop, on this thread, no pipeline.
 * Returns queries per second. */
static double sqlite_alone(const uint32_t *keys, size_t n)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    if (sqlite3_open(dbpath, &db) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT name, tier FROM users WHERE id = ?1", -1, &st, NULL))
        exit(1);
    double t0 = now_s();
    size_t found = 0;
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(st, 1, keys[i]);
        if (sqlite3_step(st) == SQLITE_ROW) found += sqlite3_column_bytes(st, 0) > 0;
        sqlite3_reset(st);
    }
    double t = now_s() - t0;
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (found != n) exit(1);
    return (double)n / t;
}

static void remove_db(void)
{
    char p[300];
    unlink(dbpath);
    snprintf(p, sizeof p, "%s-wal", dbpath), unlink(p);
    snprintf(p, sizeof p, "%s-shm", dbpath), unlink(p);
}

/* ---- source and sink ---------------------------------------------------------------------- */

struct src {
    const uint32_t *keys; /* one user_id per event (set before the run) */
    size_t n, next;       /* events / next one */
};

static enum sl_poll src_poll(struct sl_stage *s, struct sl_batch **out)
{
    static const char payload[] = "{\"msg\":\"request done\"}";
    struct src *st = sl_stage_state(s);
    if (st->next >= st->n) return SL_DONE;
    struct sl_batch *b = sl_batch_new(s);
    if (!b) return SL_ERROR;
    for (int k = 0; k < 1024 && st->next < st->n; k++, st->next++) {
        struct sl_event *ev = sl_batch_append(b);
        sl_event_set_payload(ev, payload, sizeof payload - 1);
        struct sl_value v = sl_value_int(st->keys[st->next]);
        sl_event_add_field(ev, "user_id", 7, &v);
    }
    *out = b;
    return SL_READY;
}

static const struct sl_stage_type src_type = {.abi = SL_STAGE_ABI,
                                              .name = "bench_src",
                                              .kind = SL_SOURCE,
                                              .doc = "events with user_id, from memory",
                                              .state_size = sizeof(struct src),
                                              .poll = src_poll};

static size_t sunk, warm; /* events received / after how many the clock starts */
static double warm_at;    /* when they had come */

static enum sl_poll sink_write(struct sl_stage *s, struct sl_batch *b)
{
    (void)s;
    sunk += sl_batch_count(b);
    if (sunk >= warm && !warm_at) warm_at = now_s();
    sl_ack(b);
    return SL_READY;
}

static const struct sl_stage_type sink_type = {
    .abi = SL_STAGE_ABI, .name = "bench_sink", .kind = SL_SINK, .doc = "acks", .write = sink_write};

/* ---- cases --------------------------------------------------------------------------------- */

struct bench_case {
    const char *name; /* what is measured */
    uint32_t users;   /* keys drawn from 0..users-1; 0: no lookup stage */
    const char *yaml; /* the lookup's options besides path and query */
};

#define QUERY "query: SELECT name, tier FROM users WHERE id = :user_id\n"

static const struct bench_case cases[] = {
    {"baseline: source -> sink", 0, NULL},
    {"warm cache (1,000 keys, cache 10,000)", 1000, QUERY "cache: 10000\n"},
    {"no cache, 4 connections, max_in_flight 100", ROWS, QUERY},
    {"no cache, 8 connections, max_in_flight 100", ROWS, QUERY "pool.max_connections: 8\n"},
    {"no cache, 4 connections, max_in_flight 500", ROWS, QUERY "max_in_flight: 500\n"},
};

#define NCASES (sizeof cases / sizeof *cases)

static struct sl_stage *add(struct sl_pipeline *p, const char *name, const struct sl_stage_type *t,
                            const char *yaml)
{
    struct sl_error err = {0};
    struct sl_config *cfg = yaml ? sl_config_parse(yaml, strlen(yaml), "bench", &err) : NULL;
    struct sl_stage *s = yaml && !cfg ? NULL : sl_pipeline_add(p, name, t, cfg, &err);
    sl_config_free(cfg);
    if (!s) {
        fprintf(stderr, "bench_lookup: %s: %s\n", name, err.msg);
        exit(1);
    }
    return s;
}

static void count_requests(void *arg, const char *path, const struct sl_sqlite_stats *st)
{
    (void)path;
    *(uint64_t *)arg += st->requests;
}

/* One pass of case `c` over `keys`; returns the seconds the events after the first 10%
 * took (`*timed` of them), `*requests` the pool's. */
static double run_case(const struct bench_case *c, const uint32_t *keys, size_t n,
                       uint64_t *requests, size_t *timed)
{
    struct sl_error err = {0};
    struct sl_pipeline *p = sl_pipeline_new(NULL, NULL, &err);
    struct sl_stage *src = add(p, "src", &src_type, NULL), *last = src;
    *(struct src *)sl_stage_state(src) = (struct src){.keys = keys, .n = n};
    if (c->users) {
        char yaml[600];
        snprintf(yaml, sizeof yaml, "path: %s\n%s", dbpath, c->yaml);
        struct sl_stage *look = add(p, "look", &sl_stage_sqlite_lookup, yaml);
        sl_pipeline_connect(p, last, NULL, look, &err);
        last = look;
    }
    struct sl_stage *sink = add(p, "sink", &sink_type, NULL);
    sl_pipeline_connect(p, last, NULL, sink, &err);
    sunk = 0, warm = n / 10, warm_at = 0;
    if (sl_pipeline_run(p, &err) || sunk != n) {
        fprintf(stderr, "bench_lookup: %s: %s (%zu of %zu events)\n", c->name, err.msg, sunk, n);
        exit(1);
    }
    double t = now_s() - warm_at;
    *timed = n - warm;
    *requests = 0;
    sl_sqlite_pools(p, count_requests, requests);
    sl_pipeline_free(p);
    return t;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
    int passes = argc > 2 ? atoi(argv[2]) : 3, only = argc > 3 ? atoi(argv[3]) : -1;
    make_db();
    uint32_t *keys = malloc(n * sizeof *keys);
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    printf("%zu events, %d rows, best of %d\n\n", n, ROWS, passes);
    printf("| case | events/s | ns/event | pool requests |\n|---|---:|---:|---:|\n");
    for (size_t i = 0; i < NCASES; i++) {
        if (only >= 0 && (size_t)only != i) continue;
        for (size_t k = 0; k < n; k++) { /* xorshift: the same keys for every pass */
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            keys[k] = cases[i].users ? (uint32_t)(rng >> 20) % cases[i].users : 0;
        }
        double best = 1e30; /* seconds per event */
        uint64_t requests = 0;
        for (int pass = 0; pass < passes; pass++) {
            size_t timed;
            double t = run_case(&cases[i], keys, n, &requests, &timed) / (double)timed;
            if (t < best) best = t;
        }
        double rate = 1 / best;
        printf("| %s | %.*f %s | %.0f | %llu |\n", cases[i].name, rate >= 1e6 ? 2 : 1,
               rate >= 1e6 ? rate / 1e6 : rate / 1e3, rate >= 1e6 ? "M" : "k", best * 1e9,
               (unsigned long long)requests);
        fflush(stdout);
    }
    for (size_t k = 0; k < n; k++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        keys[k] = (uint32_t)(rng >> 20) % ROWS;
    }
    double q = 0;
    for (int pass = 0; pass < passes; pass++) {
        double r = sqlite_alone(keys, n);
        if (r > q) q = r;
    }
    printf("\npeer: the same query on one connection in a loop, no pipeline: %.1f k/s (%.0f ns)\n",
           q / 1e3, 1e9 / q);
    free(keys);
    remove_db();
    return 0;
}
