/* sqlite_lookup: rows merged into events in input order while lookups finish out of
 * order, the cache (one request per distinct key, LRU, expiry), misses (keep, drop,
 * dead_letter), max_in_flight as the bound of the pool's requests and backpressure,
 * database errors (a table dropped during the run, a missing table, locks), and the
 * checks of the config. Real database files made with the sqlite3 CLI. */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sluice/builtins.h>
#include <sluice/json.h>
#include <sluice/sqlite.h>

#include "helpers.h"
#include "helpers_file.h"

/* ---- t_delay(id): a SQL function that holds some lookups longer ---------------------------- */

/* Every connection the pool opens gets t_delay(id) (sqlite3_auto_extension): it sleeps
 * delay_us when id is a multiple of delay_every, records the order in which the calls
 * end, and returns 1 (WHERE id = :n AND t_delay(id)). */
static atomic_int delay_every, delay_us, nended;
static int ended[20000];

static void delay_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    int64_t id = sqlite3_value_int64(argv[0]);
    int every = atomic_load(&delay_every);
    if (every && id % every == 0) usleep((useconds_t)atomic_load(&delay_us));
    int k = atomic_fetch_add(&nended, 1);
    if (k < 20000) ended[k] = (int)id;
    sqlite3_result_int(ctx, 1);
}

static int delay_init(sqlite3 *db, char **msg, const sqlite3_api_routines *api)
{
    (void)msg, (void)api;
    return sqlite3_create_function(db, "t_delay", 1, SQLITE_UTF8, NULL, delay_fn, NULL, NULL);
}

/* ---- t_keyed: a source of events with a key, that can pause ------------------------------ */

/* Emits `count` events, `batch` at a time: payload and field n = 0, 1, ..., field k =
 * n % mod. With pause_at, it stops before event pause_at until every earlier event is
 * acknowledged, then waits pause_ms more (the cache's entries age meanwhile). */
struct t_keyed {
    int64_t count, batch, mod, pause_at, pause_ms; /* options */
    int64_t next, acked;                           /* produced / acknowledged */
    bool waiting, resumed;                         /* the pause's timer is running / ran */
    struct sl_timer *timer;                        /* the pause */
};

static void keyed_resume(struct sl_stage *s, void *arg)
{
    ((struct t_keyed *)arg)->resumed = true;
    sl_stage_wake(s);
}

static int keyed_start(struct sl_stage *s, struct sl_error *err)
{
    struct t_keyed *k = sl_stage_state(s);
    k->timer = sl_timer_new(s, keyed_resume, k);
    return k->timer ? 0 : sl_error_set(err, SL_ENOMEM, "no timer");
}

static void keyed_fill(struct t_keyed *k, struct sl_batch *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++, k->next++) {
        struct sl_event *ev = sl_batch_append(b);
        char *text = sl_batch_alloc(b, 24);
        int len = snprintf(text, 24, "%lld", (long long)k->next);
        sl_event_set_payload(ev, text, (size_t)len);
        struct sl_value v = sl_value_int(k->next), key = sl_value_int(k->next % k->mod);
        sl_event_add_field(ev, "n", 1, &v);
        sl_event_add_field(ev, "k", 1, &key);
    }
}

static enum sl_poll keyed_poll(struct sl_stage *s, struct sl_batch **out)
{
    struct t_keyed *k = sl_stage_state(s);
    if (k->next >= k->count) return SL_DONE;
    if (k->pause_at && k->next == k->pause_at && !k->resumed) {
        if (k->acked < k->next || k->waiting) return SL_PENDING; /* ack or timer wakes */
        k->waiting = true;
        sl_timer_start(k->timer, k->pause_ms, false);
        return SL_PENDING;
    }
    int64_t n = k->count - k->next < k->batch ? k->count - k->next : k->batch;
    if (k->pause_at && k->next < k->pause_at && k->next + n > k->pause_at)
        n = k->pause_at - k->next;
    struct sl_batch *b = sl_batch_new(s);
    keyed_fill(k, b, n);
    *out = b;
    return SL_READY;
}

static void keyed_ack(struct sl_stage *s, struct sl_batch *b)
{
    struct t_keyed *k = sl_stage_state(s);
    k->acked += (int64_t)sl_batch_count(b);
    if (k->pause_at && k->acked == k->pause_at) sl_stage_wake(s);
}

static void keyed_close(struct sl_stage *s)
{
    sl_timer_free(((struct t_keyed *)sl_stage_state(s))->timer);
}

static const struct sl_option keyed_options[] = {
    {"count", SL_OPT_INT, "100", 0, offsetof(struct t_keyed, count), "events"},
    {"batch", SL_OPT_INT, "10", 0, offsetof(struct t_keyed, batch), "events per batch"},
    {"mod", SL_OPT_INT, "1000000000", 0, offsetof(struct t_keyed, mod), "k = n % mod"},
    {"pause_at", SL_OPT_INT, "0", 0, offsetof(struct t_keyed, pause_at), "pause before"},
    {"pause_ms", SL_OPT_INT, "0", 0, offsetof(struct t_keyed, pause_ms), "pause this long"},
    {0},
};

static const struct sl_stage_type t_keyed = {
    .abi = SL_STAGE_ABI,
    .name = "t_keyed",
    .kind = SL_SOURCE,
    .doc = "events with fields n and k, an optional pause",
    .state_size = sizeof(struct t_keyed),
    .options = keyed_options,
    .start = keyed_start,
    .poll = keyed_poll,
    .ack = keyed_ack,
    .close = keyed_close,
};

/* ---- t_json: a sink that keeps each event's JSON ------------------------------------------- */

struct t_json {
    char **json;   /* each event's JSON form, in arrival order */
    int64_t *num;  /* each event's payload number */
    size_t n, cap; /* used / allocated */
    void (*hook)(struct sl_stage *s, struct t_json *j); /* after each batch; may be NULL */
};

static enum sl_poll json_write(struct sl_stage *s, struct sl_batch *b)
{
    struct t_json *j = sl_stage_state(s);
    for (size_t i = 0; i < sl_batch_count(b); i++) {
        const struct sl_event *ev = sl_batch_event_const(b, i);
        if (j->n == j->cap) {
            j->cap = j->cap ? j->cap * 2 : 256;
            j->json = realloc(j->json, j->cap * sizeof *j->json);
            j->num = realloc(j->num, j->cap * sizeof *j->num);
        }
        size_t len = sl_event_write_json(ev, NULL, 0);
        j->json[j->n] = calloc(1, len + 1);
        sl_event_write_json(ev, j->json[j->n], len);
        j->num[j->n++] = t_number(ev);
    }
    sl_ack(b);
    if (j->hook) j->hook(s, j);
    return SL_READY;
}

static void json_close(struct sl_stage *s)
{
    struct t_json *j = sl_stage_state(s);
    for (size_t i = 0; i < j->n; i++) free(j->json[i]);
    free(j->json);
    free(j->num);
}

static const struct sl_stage_type t_json = {
    .abi = SL_STAGE_ABI,
    .name = "t_json",
    .kind = SL_SINK,
    .doc = "keeps the JSON of every event",
    .state_size = sizeof(struct t_json),
    .write = json_write,
    .close = json_close,
};

/* ---- the pipeline: source -> look (sqlite_lookup) -> out, look.dead_letter -> dead ------- */

static char *dir, db[512];
static struct sl_pipeline *p;
static struct sl_stage *src, *look, *out, *dead;

static void setup(void)
{
    sqlite3_auto_extension((void (*)(void))delay_init);
    atomic_store(&delay_every, 0), atomic_store(&delay_us, 0), atomic_store(&nended, 0);
    dir = t_tmpdir();
    snprintf(db, sizeof db, "%s/users.db", dir);
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.queue_max_batches = 2;
    p = sl_pipeline_new(NULL, &o, NULL);
}

static void teardown(void)
{
    sl_pipeline_free(p);
    t_rmtree(dir);
    free(dir);
}

TestSuite(lookup, .init = setup, .fini = teardown, .timeout = 60);

/* Table users: ids 0..n-1 that are multiples of `every`, name "user-ID", tier by id % 3. */
static void make_users(int n, int every)
{
    char sql[600];
    snprintf(sql, sizeof sql,
             "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, tier TEXT);"
             "WITH RECURSIVE i(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM i WHERE x < %d)"
             "INSERT INTO users SELECT x, 'user-' || x, CASE x %% 3 WHEN 0 THEN 'gold' "
             "WHEN 1 THEN 'silver' ELSE 'bronze' END FROM i WHERE x %% %d = 0;",
             n - 1, every);
    free(t_sqlite(db, sql));
}

static const char *tier(int64_t id)
{
    return id % 3 == 0 ? "gold" : id % 3 == 1 ? "silver" : "bronze";
}

/* Builds src (t_keyed with `src_yaml`) -> look (`look_yaml`, path = db) -> out, and
 * look.dead_letter -> dead when the stage has that output. */
static void build(const char *src_yaml, const char *look_yaml)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml, "path: %s\n%s", db, look_yaml);
    src = t_add(p, "src", &t_keyed, src_yaml);
    look = t_add(p, "look", &sl_stage_sqlite_lookup, yaml);
    out = t_add(p, "out", &t_json, NULL);
    t_connect(p, src, look);
    t_connect(p, look, out);
    dead = NULL;
    if (sl_stage_output(look, "dead_letter") > 0) {
        struct sl_error err = {0};
        dead = t_add(p, "dead", &t_json, NULL);
        cr_assert_eq(sl_pipeline_connect(p, look, "dead_letter", dead, &err), 0, "%s", err.msg);
    }
}

static struct t_json *rec(struct sl_stage *s)
{
    return sl_stage_state(s);
}

static void keep_stats(void *arg, const char *path, const struct sl_sqlite_stats *st)
{
    cr_assert_str_eq(path, db);
    *(struct sl_sqlite_stats *)arg = *st;
}

static struct sl_sqlite_stats pool_stats(void)
{
    struct sl_sqlite_stats st = {0};
    sl_sqlite_pools(p, keep_stats, &st);
    return st;
}

static struct sl_stage_stats stage_stats(struct sl_stage *s)
{
    struct sl_stage_stats st;
    sl_stage_stats(s, &st);
    return st;
}

static void run_ok(void)
{
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "%s: %s", err.stage, err.msg);
}

/* The JSON an event n of t_keyed gets with its row (or without: found false). */
static void expected(char *buf, size_t cap, int64_t n, int64_t k, bool found)
{
    int len = snprintf(buf, cap, "{\"message\":\"%lld\",\"n\":%lld,\"k\":%lld", (long long)n,
                       (long long)n, (long long)k);
    if (found)
        len += snprintf(buf + len, cap - (size_t)len, ",\"name\":\"user-%lld\",\"tier\":\"%s\"",
                        (long long)k, tier(k));
    snprintf(buf + len, cap - (size_t)len, "}");
}

/* ---- order ---------------------------------------------------------------------------------- */

Test(lookup, events_leave_in_input_order_each_with_its_row_while_lookups_finish_out_of_order)
{
    make_users(10000, 1);
    atomic_store(&delay_every, 7);
    atomic_store(&delay_us, 2000);
    build("count: 10000\nbatch: 50\n",
          "query: SELECT name, tier FROM users WHERE id = :n AND t_delay(id)\n");
    run_ok();
    struct t_json *j = rec(out);
    cr_assert_eq(j->n, 10000);
    char want[200];
    for (size_t i = 0; i < j->n; i++) {
        expected(want, sizeof want, (int64_t)i, (int64_t)i, true);
        cr_assert_str_eq(j->json[i], want, "event %zu", i);
    }
    int inversions = 0;
    for (int i = 1; i < 10000; i++) inversions += ended[i] < ended[i - 1];
    cr_assert_gt(inversions, 0, "the held lookups ended after later ones");
    struct sl_sqlite_stats st = pool_stats();
    cr_assert_eq(st.requests, 10000, "no cache: one request per event");
    cr_assert_eq(st.errors, 0);
    cr_assert_eq(st.open, 4, "pool.max_connections, reached");
}

Test(lookup, unordered_events_leave_as_their_lookups_end_each_once_with_its_row)
{
    make_users(500, 1);
    atomic_store(&delay_every, 5);
    atomic_store(&delay_us, 3000);
    build("count: 500\n",
          "query: SELECT name, tier FROM users WHERE id = :n AND t_delay(id)\nordered: false\n");
    run_ok();
    struct t_json *j = rec(out);
    cr_assert_eq(j->n, 500);
    int *seen = calloc(500, sizeof *seen), inversions = 0;
    char want[200];
    for (size_t i = 0; i < j->n; i++) {
        expected(want, sizeof want, j->num[i], j->num[i], true);
        cr_assert_str_eq(j->json[i], want);
        seen[j->num[i]]++;
        inversions += i && j->num[i] < j->num[i - 1];
    }
    for (int i = 0; i < 500; i++) cr_assert_eq(seen[i], 1);
    free(seen);
    cr_assert_gt(inversions, 0);
}

/* ---- the cache --------------------------------------------------------------------------------
 */

Test(lookup, repeated_keys_ask_the_database_once_per_distinct_key)
{
    make_users(100, 1);
    build("count: 1000\nmod: 37\n", "query: SELECT name, tier FROM users WHERE id = :k\n"
                                    "cache: 100\n");
    run_ok();
    struct t_json *j = rec(out);
    cr_assert_eq(j->n, 1000);
    char want[200];
    for (size_t i = 0; i < j->n; i++) {
        expected(want, sizeof want, (int64_t)i, (int64_t)i % 37, true);
        cr_assert_str_eq(j->json[i], want);
    }
    cr_assert_eq(pool_stats().requests, 37, "the cache, and lookups in flight shared");
}

Test(lookup, the_least_recently_used_row_is_forgotten_first)
{
    make_users(10, 1);
    /* one lookup at a time: keys 0 1 2 0 1 2 ... never find theirs in a cache of 2 */
    build("count: 30\nmod: 3\n", "query: SELECT name, tier FROM users WHERE id = :k\n"
                                 "cache: 2\nmax_in_flight: 1\n");
    run_ok();
    cr_assert_eq(rec(out)->n, 30);
    cr_assert_eq(pool_stats().requests, 30);
}

Test(lookup, two_keys_stay_in_a_cache_of_two)
{
    make_users(10, 1);
    build("count: 30\nmod: 2\n", "query: SELECT name, tier FROM users WHERE id = :k\n"
                                 "cache: 2\nmax_in_flight: 1\n");
    run_ok();
    cr_assert_eq(rec(out)->n, 30);
    cr_assert_eq(pool_stats().requests, 2);
}

/* Keys 0..9, all acknowledged, a pause of 150 ms, keys 0..9 again. */
static void run_twice_with_a_pause(const char *ttl)
{
    make_users(10, 1);
    char yaml[300];
    snprintf(yaml, sizeof yaml,
             "query: SELECT name, tier FROM users WHERE id = :k\ncache: 100\ncache_ttl: %s\n", ttl);
    build("count: 20\nmod: 10\npause_at: 10\npause_ms: 150\n", yaml);
    run_ok();
    struct t_json *j = rec(out);
    cr_assert_eq(j->n, 20);
    char want[200];
    for (size_t i = 0; i < j->n; i++) {
        expected(want, sizeof want, (int64_t)i, (int64_t)i % 10, true);
        cr_assert_str_eq(j->json[i], want);
    }
}

Test(lookup, a_row_older_than_cache_ttl_is_asked_again)
{
    run_twice_with_a_pause("50ms");
    cr_assert_eq(pool_stats().requests, 20);
}

Test(lookup, a_row_younger_than_cache_ttl_is_used)
{
    run_twice_with_a_pause("1m");
    cr_assert_eq(pool_stats().requests, 10);
}

Test(lookup, keys_without_a_row_are_remembered_with_cache_misses)
{
    make_users(5, 1); /* keys 5..9 have no row */
    build("count: 100\nmod: 10\n", "query: SELECT name, tier FROM users WHERE id = :k\n"
                                   "cache: 100\ncache_misses: true\nmax_in_flight: 1\n");
    run_ok();
    cr_assert_eq(rec(out)->n, 100);
    cr_assert_eq(pool_stats().requests, 10);
}

Test(lookup, keys_without_a_row_are_asked_again_without_cache_misses)
{
    make_users(5, 1);
    build("count: 100\nmod: 10\n", "query: SELECT name, tier FROM users WHERE id = :k\n"
                                   "cache: 100\nmax_in_flight: 1\n");
    run_ok();
    cr_assert_eq(rec(out)->n, 100);
    cr_assert_eq(pool_stats().requests, 5 + 50, "5 rows remembered, 50 misses asked");
}

/* ---- misses ---------------------------------------------------------------------------------- */

/* Rows for even ids only; 100 events, keys 0..99. */
static void run_misses(const char *more)
{
    make_users(100, 2);
    char yaml[300];
    snprintf(yaml, sizeof yaml, "query: SELECT name, tier FROM users WHERE id = :k\n%s", more);
    build("count: 100\n", yaml);
    run_ok();
}

Test(lookup, on_miss_keep_passes_the_event_on_unchanged)
{
    run_misses("on_miss: keep\n");
    struct t_json *j = rec(out);
    cr_assert_eq(j->n, 100);
    char want[200];
    for (size_t i = 0; i < j->n; i++) {
        expected(want, sizeof want, (int64_t)i, (int64_t)i, i % 2 == 0);
        cr_assert_str_eq(j->json[i], want);
    }
    struct sl_stage_stats st = stage_stats(look);
    cr_assert_eq(st.dropped, 0);
    cr_assert_eq(st.errors, 0);
}

Test(lookup, on_miss_drop_drops_them_counted)
{
    run_misses("on_miss: drop\n");
    struct t_json *j = rec(out);
    cr_assert_eq(j->n, 50);
    for (size_t i = 0; i < j->n; i++) cr_assert_eq(j->num[i], (int64_t)(2 * i));
    struct sl_stage_stats st = stage_stats(look);
    cr_assert_eq(st.dropped, 50);
    cr_assert_eq(st.errors, 0);
    cr_assert_eq(((struct t_keyed *)sl_stage_state(src))->acked, 100);
}

Test(lookup, on_miss_dead_letter_sends_them_with_the_key_in_error)
{
    run_misses("on_miss: dead_letter\non_error: dead_letter\n");
    cr_assert_not_null(dead);
    struct t_json *j = rec(out), *d = rec(dead);
    cr_assert_eq(j->n, 50);
    cr_assert_eq(d->n, 50);
    char want[200];
    for (size_t i = 0; i < d->n; i++) {
        int64_t n = (int64_t)(2 * i + 1);
        snprintf(want, sizeof want,
                 "{\"message\":\"%lld\",\"n\":%lld,\"k\":%lld,\"error\":\"no row for k=%lld\"}",
                 (long long)n, (long long)n, (long long)n, (long long)n);
        cr_assert_str_eq(d->json[i], want);
    }
    cr_assert_eq(stage_stats(look).errors, 50, "a dead-lettered miss went through on_error");
}

Test(lookup, an_event_without_the_parameters_field_is_a_miss_without_a_request)
{
    make_users(10, 1);
    build("count: 20\n", "query: SELECT name FROM users WHERE id = :user.id\n"
                         "on_miss: dead_letter\non_error: dead_letter\n");
    run_ok();
    struct t_json *d = rec(dead);
    cr_assert_eq(d->n, 20);
    cr_assert_str_eq(d->json[3], "{\"message\":\"3\",\"n\":3,\"k\":3,\"error\":\"no field "
                                 "'user.id' to look up\"}");
    cr_assert_eq(pool_stats().requests, 0);
}

Test(lookup, a_string_key_names_the_row_of_its_value_and_into_nests_the_columns)
{
    free(t_sqlite(db, "CREATE TABLE s (key TEXT PRIMARY KEY, v INTEGER, f REAL, b BLOB, z);"
                      "INSERT INTO s VALUES ('7', 70, 0.5, x'414243', NULL);"));
    build("count: 10\n", "query: SELECT v, f, b, z, key FROM s WHERE key = CAST(:n AS TEXT)\n"
                         "into: row\nfields: {v: value, f: f, b: b, z: z}\n");
    run_ok();
    struct t_json *j = rec(out);
    cr_assert_eq(j->n, 10);
    cr_assert_str_eq(j->json[7], "{\"message\":\"7\",\"n\":7,\"k\":7,\"row\":{\"value\":70,"
                                 "\"f\":0.5,\"b\":\"ABC\",\"z\":null}}");
    cr_assert_str_eq(j->json[6], "{\"message\":\"6\",\"n\":6,\"k\":6}");
}

/* ---- max_in_flight ------------------------------------------------------------------------- */

static struct event *sampler;
static uint32_t most_open; /* the most requests the pool held (lent or waiting) */
static int64_t most_ahead; /* the most events the source was ahead of the lookup's output */

static void sample(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    struct sl_sqlite_stats st = {0};
    sl_sqlite_pools(p, keep_stats, &st);
    if (st.busy + st.waiting > most_open) most_open = st.busy + st.waiting;
    int64_t ahead = (int64_t)(stage_stats(src).events_out - stage_stats(look).events_out);
    if (ahead > most_ahead) most_ahead = ahead;
}

Test(lookup, the_pool_never_holds_more_than_max_in_flight_requests_and_the_source_waits)
{
    make_users(400, 1);
    atomic_store(&delay_every, 1);
    atomic_store(&delay_us, 1000);
    build("count: 400\nbatch: 10\n",
          "query: SELECT name, tier FROM users WHERE id = :n AND t_delay(id)\n"
          "max_in_flight: 8\n");
    sampler = event_new(sl_pipeline_event_base(p), -1, EV_PERSIST, sample, NULL);
    struct timeval every = {0, 200};
    event_add(sampler, &every);
    run_ok();
    event_free(sampler);
    cr_assert_eq(rec(out)->n, 400);
    cr_assert_eq(most_open, 8, "max_in_flight, reached and never passed");
    cr_assert_eq(pool_stats().requests, 400);
    /* 2 batches of 10 in the queue, up to 8 calls open and the rest of their batches:
     * without backpressure the source would run 400 ahead */
    cr_assert_leq(most_ahead, 2 * 10 + 8 + 10, "%lld", (long long)most_ahead);
}

/* ---- database errors ------------------------------------------------------------------------ */

static bool dropped;

static void drop_table(struct sl_stage *s, struct t_json *j)
{
    (void)s;
    if (dropped || j->n < 100) return;
    dropped = true;
    free(t_sqlite(db, "DROP TABLE users;"));
}

Test(lookup, a_table_dropped_during_the_run_fails_the_stage_with_sqlites_message)
{
    make_users(2000, 1);
    build("count: 2000\n", "query: SELECT name, tier FROM users WHERE id = :n\n"
                           "on_error: dead_letter\n");
    rec(out)->hook = drop_table;
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), SL_EIO);
    cr_assert_str_eq(err.stage, "look");
    cr_assert(strstr(err.msg, "no such table: users"), "%s", err.msg);
    struct t_json *j = rec(out);
    cr_assert(j->n >= 100 && j->n < 2000, "%zu", j->n);
    cr_assert_eq(rec(dead)->n, 0, "a statement error is the stage's, not an event's");
    cr_assert_leq(((struct t_keyed *)sl_stage_state(src))->acked, (int64_t)j->n);
}

Test(lookup, a_missing_table_fails_the_stage_at_the_first_lookup)
{
    make_users(10, 1);
    build("count: 10\n", "query: SELECT name FROM nope WHERE id = :n\n");
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), SL_EIO);
    cr_assert_str_eq(err.stage, "look");
    cr_assert_str_eq(err.msg, "no such table: nope (in: SELECT name FROM nope WHERE id = ?1)");
    cr_assert_eq(rec(out)->n, 0);
}

Test(lookup, fields_naming_a_column_the_query_lacks_fail_the_stage)
{
    make_users(10, 1);
    build("count: 10\n", "query: SELECT name FROM users WHERE id = :n\nfields: {tier: t}\n");
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), SL_ECONFIG);
    cr_assert_str_eq(err.msg, "fields: the query returns no column 'tier'");
}

/* sqlite3 (another process) holds an exclusive lock for `secs` on the database, still in
 * rollback-journal mode, where a reader waits for it (the pool opens the file in WAL mode
 * at the first request, which needs the lock too). Returns once the lock is held. */
static void lock_for(const char *secs)
{
    char cmd[1400], marker[600];
    snprintf(marker, sizeof marker, "%s/locked", dir);
    snprintf(cmd, sizeof cmd,
             "(printf 'BEGIN EXCLUSIVE;\\nSELECT count(*) FROM users;\\n.shell touch %s\\n"
             ".shell sleep %s\\nCOMMIT;\\n' | sqlite3 '%s' > /dev/null) &",
             marker, secs, db);
    cr_assert_eq(system(cmd), 0);
    for (int i = 0; i < 1000 && access(marker, F_OK) != 0; i++) usleep(5000);
    cr_assert_eq(access(marker, F_OK), 0, "the lock was never taken");
}

Test(lookup, a_locked_database_is_waited_out_by_the_pool)
{
    make_users(50, 1);
    lock_for("0.3");
    build("count: 50\n", "query: SELECT name, tier FROM users WHERE id = :k\n");
    run_ok();
    struct t_json *j = rec(out);
    cr_assert_eq(j->n, 50);
    char want[200];
    expected(want, sizeof want, 49, 49, true);
    cr_assert_str_eq(j->json[49], want);
    struct sl_sqlite_stats st = pool_stats();
    cr_assert_gt(st.retries, 0, "the lookups met the lock and tried again");
    cr_assert_eq(st.errors, 0);
}

Test(lookup, a_lock_held_past_busy_timeout_fails_those_lookups_alone)
{
    make_users(30, 1);
    lock_for("1");
    build("count: 30\nbatch: 1\n", "query: SELECT name, tier FROM users WHERE id = :k\n"
                                   "pool: {busy_timeout: 100ms, max_connections: 1}\n"
                                   "max_in_flight: 1\non_error: dead_letter\n");
    run_ok();
    struct t_json *j = rec(out), *d = rec(dead);
    cr_assert_eq(j->n + d->n, 30);
    cr_assert_gt(d->n, 0);
    cr_assert_gt(j->n, 0, "once the lock is gone, lookups work again");
    for (size_t i = 0; i < d->n; i++)
        cr_assert(strstr(d->json[i], "database is locked"), "%s", d->json[i]);
    cr_assert_eq(stage_stats(look).errors, d->n);
}

Test(lookup, no_connection_within_acquire_timeout_fails_that_lookup_alone)
{
    make_users(40, 1);
    atomic_store(&delay_every, 1);
    atomic_store(&delay_us, 50000);
    build("count: 40\n", "query: SELECT name FROM users WHERE id = :k AND t_delay(id)\n"
                         "pool: {acquire_timeout: 10ms, max_connections: 1}\n"
                         "max_in_flight: 4\non_error: dead_letter\n");
    run_ok();
    struct t_json *j = rec(out), *d = rec(dead);
    cr_assert_eq(j->n + d->n, 40);
    cr_assert_gt(j->n, 0);
    cr_assert_gt(d->n, 0);
    for (size_t i = 0; i < d->n; i++)
        cr_assert(strstr(d->json[i], "within acquire_timeout (10 ms)"), "%s", d->json[i]);
}

/* ---- the config ------------------------------------------------------------------------------ */

/* Adds a lookup with options `yaml`; returns the error of the refusal. */
static struct sl_error refused(const char *yaml)
{
    struct sl_error err = {0};
    struct sl_config *cfg = t_config(yaml);
    cr_assert_null(sl_pipeline_add(p, "look", &sl_stage_sqlite_lookup, cfg, &err));
    sl_config_free(cfg);
    return err;
}

Test(lookup, the_query_is_checked_when_the_config_loads)
{
    struct sl_error e = refused("path: x.db\nquery: DELETE FROM users WHERE id = :n\n");
    cr_assert_str_eq(e.msg, "query: a lookup is one SELECT; found 'DELETE'");
    cr_assert_eq(e.line, 2);
    cr_assert_eq(e.col, 8);
    e = refused("path: x.db\nquery: \"SELECT name FROM users WHERE id = ?\"\n");
    cr_assert_str_eq(e.msg, "query: parameters are field paths written ':field' ('?' found)");
    cr_assert_eq(e.line, 2);
    cr_assert_eq(e.col, 43, "%d", e.col);
    e = refused("path: x.db\nquery: SELECT name FROM users WHERE id = :n; DROP TABLE users\n");
    cr_assert_str_eq(e.msg, "query: a lookup is one statement: text after ';'");
    cr_assert_eq(e.col, 46, "%d", e.col);
    e = refused("path: x.db\nquery: SELECT name FROM users WHERE id = 'a:b\n");
    cr_assert_str_eq(e.msg, "query: unterminated string literal");
    e = refused("path: x.db\nquery: SELECT name FROM users WHERE id = ':n'\n");
    cr_assert_str_eq(e.msg, "query: the query has no parameter: name the event's fields it "
                            "looks up with ':field' (WHERE id = :user_id)");
}

Test(lookup, options_that_need_another_are_refused)
{
    struct sl_error e = refused("path: x.db\nquery: SELECT 1 WHERE :n\non_miss: dead_letter\n");
    cr_assert_str_eq(e.msg, "on_miss: dead_letter sends misses through the stage's on_error: "
                            "set on_error: dead_letter too");
    cr_assert_eq(e.line, 3);
    e = refused("path: x.db\nquery: SELECT 1 WHERE :n\ncache_ttl: 5s\n");
    cr_assert_str_eq(e.msg, "'cache_ttl' applies to the cache: set cache to its entries");
    e = refused("path: x.db\nquery: SELECT 1 WHERE :n\nfields: {a: ''}\n");
    cr_assert_str_eq(e.msg, "fields: each column maps to a field name");
}

Test(lookup, parameters_are_field_paths_bound_in_order_and_named_once)
{
    make_users(10, 1);
    build("count: 10\n", "query: |\n  SELECT name, -- the :name is a comment\n"
                         "    ':k' AS quoted, :n + 0 AS again\n"
                         "  FROM users WHERE id = :k AND :n = :k\n");
    run_ok();
    struct t_json *j = rec(out);
    cr_assert_eq(j->n, 10);
    cr_assert_str_eq(j->json[4], "{\"message\":\"4\",\"n\":4,\"k\":4,\"name\":\"user-4\","
                                 "\"quoted\":\":k\",\"again\":4}");
}
