/* Helpers of the sqlite_lookup tests; see helpers_lookup.h. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sluice/builtins.h>

#include "helpers.h"
#include "helpers_file.h"
#include "helpers_lookup.h"

/* ---- t_delay(id): a SQL function that holds some lookups longer ---------------------------- */

atomic_int lk_delay_every, lk_delay_us, lk_nended;
int lk_ended[20000];

static void delay_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    int64_t id = sqlite3_value_int64(argv[0]);
    int every = atomic_load(&lk_delay_every);
    if (every && id % every == 0) usleep((useconds_t)atomic_load(&lk_delay_us));
    int k = atomic_fetch_add(&lk_nended, 1);
    if (k < 20000) lk_ended[k] = (int)id;
    sqlite3_result_int(ctx, 1);
}

static int delay_init(sqlite3 *db, char **msg, const sqlite3_api_routines *api)
{
    (void)msg, (void)api;
    return sqlite3_create_function(db, "t_delay", 1, SQLITE_UTF8, NULL, delay_fn, NULL, NULL);
}

/* ---- t_keyed: a source of events with a key, that can pause ------------------------------ */

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

const struct sl_stage_type t_keyed = {
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

const struct sl_stage_type t_json = {
    .abi = SL_STAGE_ABI,
    .name = "t_json",
    .kind = SL_SINK,
    .doc = "keeps the JSON of every event",
    .state_size = sizeof(struct t_json),
    .write = json_write,
    .close = json_close,
};

/* ---- the pipeline: src -> look (sqlite_lookup) -> out, look.dead_letter -> dead --------- */

char *lk_dir, lk_db[512];
struct sl_pipeline *lk_p;
struct sl_stage *lk_src, *lk_look, *lk_out, *lk_dead;

void lk_setup(void)
{
    sqlite3_auto_extension((void (*)(void))delay_init);
    atomic_store(&lk_delay_every, 0), atomic_store(&lk_delay_us, 0), atomic_store(&lk_nended, 0);
    lk_dir = t_tmpdir();
    snprintf(lk_db, sizeof lk_db, "%s/users.db", lk_dir);
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.queue_max_batches = 2;
    lk_p = sl_pipeline_new(NULL, &o, NULL);
}

void lk_teardown(void)
{
    sl_pipeline_free(lk_p);
    t_rmtree(lk_dir);
    free(lk_dir);
}

/* Table users: ids 0..n-1 that are multiples of `every`, name "user-ID", tier by id % 3. */
void lk_make_users(int n, int every)
{
    char sql[600];
    snprintf(sql, sizeof sql,
             "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, tier TEXT);"
             "WITH RECURSIVE i(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM i WHERE x < %d)"
             "INSERT INTO users SELECT x, 'user-' || x, CASE x %% 3 WHEN 0 THEN 'gold' "
             "WHEN 1 THEN 'silver' ELSE 'bronze' END FROM i WHERE x %% %d = 0;",
             n - 1, every);
    free(t_sqlite(lk_db, sql));
}

const char *lk_tier(int64_t id)
{
    return id % 3 == 0 ? "gold" : id % 3 == 1 ? "silver" : "bronze";
}

/* Builds src (t_keyed with `src_yaml`) -> look (`look_yaml`, path = the database) -> out,
 * and look.dead_letter -> dead when the stage has that output. */
void lk_build(const char *src_yaml, const char *look_yaml)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml, "path: %s\n%s", lk_db, look_yaml);
    lk_src = t_add(lk_p, "src", &t_keyed, src_yaml);
    lk_look = t_add(lk_p, "look", &sl_stage_sqlite_lookup, yaml);
    lk_out = t_add(lk_p, "out", &t_json, NULL);
    t_connect(lk_p, lk_src, lk_look);
    t_connect(lk_p, lk_look, lk_out);
    lk_dead = NULL;
    if (sl_stage_output(lk_look, "dead_letter") > 0) {
        struct sl_error err = {0};
        lk_dead = t_add(lk_p, "dead", &t_json, NULL);
        cr_assert_eq(sl_pipeline_connect(lk_p, lk_look, "dead_letter", lk_dead, &err), 0, "%s",
                     err.msg);
    }
}

struct t_json *lk_rec(struct sl_stage *s)
{
    return sl_stage_state(s);
}

void lk_keep_stats(void *arg, const char *path, const struct sl_sqlite_stats *st)
{
    cr_assert_str_eq(path, lk_db);
    *(struct sl_sqlite_stats *)arg = *st;
}

struct sl_sqlite_stats lk_pool_stats(void)
{
    struct sl_sqlite_stats st = {0};
    sl_sqlite_pools(lk_p, lk_keep_stats, &st);
    return st;
}

struct sl_stage_stats lk_stage_stats(struct sl_stage *s)
{
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(s, &st);
    return st;
}

void lk_run_ok(void)
{
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(lk_p, &err), 0, "%s: %s", err.stage, err.msg);
}

/* The JSON an event n of t_keyed gets with its row (or without: found false). */
void lk_expected(char *buf, size_t cap, int64_t n, int64_t k, bool found)
{
    int len = snprintf(buf, cap, "{\"message\":\"%lld\",\"n\":%lld,\"k\":%lld", (long long)n,
                       (long long)n, (long long)k);
    if (found)
        len += snprintf(buf + len, cap - (size_t)len, ",\"name\":\"user-%lld\",\"tier\":\"%s\"",
                        (long long)k, lk_tier(k));
    snprintf(buf + len, cap - (size_t)len, "}");
}
