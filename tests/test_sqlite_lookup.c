/* sqlite_lookup: rows merged into events in input order while lookups finish out of
 * order, the cache (one request per distinct key, LRU, expiry, misses remembered),
 * misses (keep, drop, dead_letter), values and nested columns, and max_in_flight as the
 * bound of the pool's requests and backpressure. Real database files made with the
 * sqlite3 CLI (helpers_lookup.h); database errors and the config: test_sqlite_lookup_errors. */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sluice/builtins.h>

#include "helpers.h"
#include "helpers_file.h"
#include "helpers_lookup.h"

TestSuite(lookup, .init = lk_setup, .fini = lk_teardown, .timeout = 60);

/* ---- order ---------------------------------------------------------------------------------- */

Test(lookup, events_leave_in_input_order_each_with_its_row_while_lookups_finish_out_of_order)
{
    lk_make_users(10000, 1);
    atomic_store(&lk_delay_every, 7);
    atomic_store(&lk_delay_us, 2000);
    lk_build("count: 10000\nbatch: 50\n",
             "query: SELECT name, tier FROM users WHERE id = :n AND t_delay(id)\n");
    lk_run_ok();
    struct t_json *j = lk_rec(lk_out);
    cr_assert_eq(j->n, 10000);
    char want[200];
    for (size_t i = 0; i < j->n; i++) {
        lk_expected(want, sizeof want, (int64_t)i, (int64_t)i, true);
        cr_assert_str_eq(j->json[i], want, "event %zu", i);
    }
    int inversions = 0;
    for (int i = 1; i < 10000; i++) inversions += lk_ended[i] < lk_ended[i - 1];
    cr_assert_gt(inversions, 0, "the held lookups ended after later ones");
    struct sl_sqlite_stats st = lk_pool_stats();
    cr_assert_eq(st.requests, 10000, "no cache: one request per event");
    cr_assert_eq(st.errors, 0);
    cr_assert_eq(st.open, 4, "pool.max_connections, reached");
}

Test(lookup, unordered_events_leave_as_their_lookups_end_each_once_with_its_row)
{
    lk_make_users(500, 1);
    atomic_store(&lk_delay_every, 5);
    atomic_store(&lk_delay_us, 3000);
    lk_build("count: 500\n",
             "query: SELECT name, tier FROM users WHERE id = :n AND t_delay(id)\nordered: false\n");
    lk_run_ok();
    struct t_json *j = lk_rec(lk_out);
    cr_assert_eq(j->n, 500);
    int *seen = calloc(500, sizeof *seen), inversions = 0;
    char want[200];
    for (size_t i = 0; i < j->n; i++) {
        lk_expected(want, sizeof want, j->num[i], j->num[i], true);
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
    lk_make_users(100, 1);
    lk_build("count: 1000\nmod: 37\n", "query: SELECT name, tier FROM users WHERE id = :k\n"
                                       "cache: 100\n");
    lk_run_ok();
    struct t_json *j = lk_rec(lk_out);
    cr_assert_eq(j->n, 1000);
    char want[200];
    for (size_t i = 0; i < j->n; i++) {
        lk_expected(want, sizeof want, (int64_t)i, (int64_t)i % 37, true);
        cr_assert_str_eq(j->json[i], want);
    }
    cr_assert_eq(lk_pool_stats().requests, 37, "the cache, and lookups in flight shared");
}

Test(lookup, the_least_recently_used_row_is_forgotten_first)
{
    lk_make_users(10, 1);
    /* one lookup at a time: keys 0 1 2 0 1 2 ... never find theirs in a cache of 2 */
    lk_build("count: 30\nmod: 3\n", "query: SELECT name, tier FROM users WHERE id = :k\n"
                                    "cache: 2\nmax_in_flight: 1\n");
    lk_run_ok();
    cr_assert_eq(lk_rec(lk_out)->n, 30);
    cr_assert_eq(lk_pool_stats().requests, 30);
}

Test(lookup, two_keys_stay_in_a_cache_of_two)
{
    lk_make_users(10, 1);
    lk_build("count: 30\nmod: 2\n", "query: SELECT name, tier FROM users WHERE id = :k\n"
                                    "cache: 2\nmax_in_flight: 1\n");
    lk_run_ok();
    cr_assert_eq(lk_rec(lk_out)->n, 30);
    cr_assert_eq(lk_pool_stats().requests, 2);
}

/* Keys 0..9, all acknowledged, a pause of 150 ms, keys 0..9 again. */
static void run_twice_with_a_pause(const char *ttl)
{
    lk_make_users(10, 1);
    char yaml[300];
    snprintf(yaml, sizeof yaml,
             "query: SELECT name, tier FROM users WHERE id = :k\ncache: 100\ncache_ttl: %s\n", ttl);
    lk_build("count: 20\nmod: 10\npause_at: 10\npause_ms: 150\n", yaml);
    lk_run_ok();
    struct t_json *j = lk_rec(lk_out);
    cr_assert_eq(j->n, 20);
    char want[200];
    for (size_t i = 0; i < j->n; i++) {
        lk_expected(want, sizeof want, (int64_t)i, (int64_t)i % 10, true);
        cr_assert_str_eq(j->json[i], want);
    }
}

Test(lookup, a_row_older_than_cache_ttl_is_asked_again)
{
    run_twice_with_a_pause("50ms");
    cr_assert_eq(lk_pool_stats().requests, 20);
}

Test(lookup, a_row_younger_than_cache_ttl_is_used)
{
    run_twice_with_a_pause("1m");
    cr_assert_eq(lk_pool_stats().requests, 10);
}

Test(lookup, keys_without_a_row_are_remembered_with_cache_misses)
{
    lk_make_users(5, 1); /* keys 5..9 have no row */
    lk_build("count: 100\nmod: 10\n", "query: SELECT name, tier FROM users WHERE id = :k\n"
                                      "cache: 100\ncache_misses: true\nmax_in_flight: 1\n");
    lk_run_ok();
    cr_assert_eq(lk_rec(lk_out)->n, 100);
    cr_assert_eq(lk_pool_stats().requests, 10);
}

Test(lookup, keys_without_a_row_are_asked_again_without_cache_misses)
{
    lk_make_users(5, 1);
    lk_build("count: 100\nmod: 10\n", "query: SELECT name, tier FROM users WHERE id = :k\n"
                                      "cache: 100\nmax_in_flight: 1\n");
    lk_run_ok();
    cr_assert_eq(lk_rec(lk_out)->n, 100);
    cr_assert_eq(lk_pool_stats().requests, 5 + 50, "5 rows remembered, 50 misses asked");
}

/* ---- misses ---------------------------------------------------------------------------------- */

/* Rows for even ids only; 100 events, keys 0..99. */
static void run_misses(const char *more)
{
    lk_make_users(100, 2);
    char yaml[300];
    snprintf(yaml, sizeof yaml, "query: SELECT name, tier FROM users WHERE id = :k\n%s", more);
    lk_build("count: 100\n", yaml);
    lk_run_ok();
}

Test(lookup, on_miss_keep_passes_the_event_on_unchanged)
{
    run_misses("on_miss: keep\n");
    struct t_json *j = lk_rec(lk_out);
    cr_assert_eq(j->n, 100);
    char want[200];
    for (size_t i = 0; i < j->n; i++) {
        lk_expected(want, sizeof want, (int64_t)i, (int64_t)i, i % 2 == 0);
        cr_assert_str_eq(j->json[i], want);
    }
    struct sl_stage_stats st = lk_stage_stats(lk_look);
    cr_assert_eq(st.dropped, 0);
    cr_assert_eq(st.errors, 0);
}

Test(lookup, on_miss_drop_drops_them_counted)
{
    run_misses("on_miss: drop\n");
    struct t_json *j = lk_rec(lk_out);
    cr_assert_eq(j->n, 50);
    for (size_t i = 0; i < j->n; i++) cr_assert_eq(j->num[i], (int64_t)(2 * i));
    struct sl_stage_stats st = lk_stage_stats(lk_look);
    cr_assert_eq(st.dropped, 50);
    cr_assert_eq(st.errors, 0);
    cr_assert_eq(((struct t_keyed *)sl_stage_state(lk_src))->acked, 100);
}

Test(lookup, on_miss_dead_letter_sends_them_with_the_key_in_error)
{
    run_misses("on_miss: dead_letter\non_error: dead_letter\n");
    cr_assert_not_null(lk_dead);
    struct t_json *j = lk_rec(lk_out), *d = lk_rec(lk_dead);
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
    cr_assert_eq(lk_stage_stats(lk_look).errors, 50, "a dead-lettered miss went through on_error");
}

Test(lookup, an_event_without_the_parameters_field_is_a_miss_without_a_request)
{
    lk_make_users(10, 1);
    lk_build("count: 20\n", "query: SELECT name FROM users WHERE id = :user.id\n"
                            "on_miss: dead_letter\non_error: dead_letter\n");
    lk_run_ok();
    struct t_json *d = lk_rec(lk_dead);
    cr_assert_eq(d->n, 20);
    cr_assert_str_eq(d->json[3], "{\"message\":\"3\",\"n\":3,\"k\":3,\"error\":\"no field "
                                 "'user.id' to look up\"}");
    cr_assert_eq(lk_pool_stats().requests, 0);
}

Test(lookup, a_string_key_names_the_row_of_its_value_and_into_nests_the_columns)
{
    free(t_sqlite(lk_db, "CREATE TABLE s (key TEXT PRIMARY KEY, v INTEGER, f REAL, b BLOB, z);"
                         "INSERT INTO s VALUES ('7', 70, 0.5, x'414243', NULL);"));
    lk_build("count: 10\n", "query: SELECT v, f, b, z, key FROM s WHERE key = CAST(:n AS TEXT)\n"
                            "into: row\nfields: {v: value, f: f, b: b, z: z}\n");
    lk_run_ok();
    struct t_json *j = lk_rec(lk_out);
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
    sl_sqlite_pools(lk_p, lk_keep_stats, &st);
    if (st.busy + st.waiting > most_open) most_open = st.busy + st.waiting;
    int64_t ahead =
        (int64_t)(lk_stage_stats(lk_src).events_out - lk_stage_stats(lk_look).events_out);
    if (ahead > most_ahead) most_ahead = ahead;
}

Test(lookup, the_pool_never_holds_more_than_max_in_flight_requests_and_the_source_waits)
{
    lk_make_users(400, 1);
    atomic_store(&lk_delay_every, 1);
    atomic_store(&lk_delay_us, 1000);
    lk_build("count: 400\nbatch: 10\n",
             "query: SELECT name, tier FROM users WHERE id = :n AND t_delay(id)\n"
             "max_in_flight: 8\n");
    sampler = event_new(sl_pipeline_event_base(lk_p), -1, EV_PERSIST, sample, NULL);
    struct timeval every = {0, 200};
    event_add(sampler, &every);
    lk_run_ok();
    event_free(sampler);
    cr_assert_eq(lk_rec(lk_out)->n, 400);
    cr_assert_eq(most_open, 8, "max_in_flight, reached and never passed");
    cr_assert_eq(lk_pool_stats().requests, 400);
    /* At most 2 batches of 10 in the queue, 8 calls open, and 9 events of the last batch
     * taken not started yet (a batch is taken to start one): the source is held 37 ahead
     * at most, where without backpressure it would run 400 ahead. */
    cr_assert_leq(most_ahead, 2 * 10 + 8 + 9, "%lld", (long long)most_ahead);
    cr_assert_gt(most_ahead, 20, "the bound is reached: the queue and the open calls filled");
}
