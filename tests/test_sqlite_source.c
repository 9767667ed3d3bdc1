/* The sqlite source in one run: a million rows paged in snapshot mode (every row once, in
 * order, typed, in pages of page_size, in memory bounded by the queues), keyset pages
 * that use the index (EXPLAIN QUERY PLAN of the query the source logs), rows inserted
 * behind and ahead of the position, no page read while the output is full, text tracking
 * values and a column list, and the errors of a bad config or a bad table. Databases are
 * real files made and checked with the sqlite3 CLI. (Runs across time: follow, restarts,
 * kills and locks are in test_sqlite_source_runs.c.) */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sluice/builtins.h>

#include "helpers.h"
#include "helpers_file.h"
#include "helpers_sqlite.h"
#include "../connectors/sqlite/source.h"

static char *dir, *db;
static struct sl_pipeline *p;

static struct sl_pipeline *new_pipeline(int64_t queue_batches, uint64_t batch_bytes)
{
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.data_dir = dir;
    o.log = t_log_capture;
    if (queue_batches) o.queue_max_batches = queue_batches;
    if (batch_bytes) o.batch_max_bytes = batch_bytes;
    struct sl_error err = {0};
    struct sl_pipeline *np = sl_pipeline_new(NULL, &o, &err);
    cr_assert_not_null(np, "%s", err.msg);
    return np;
}

static void setup(void)
{
    dir = t_tmpdir();
    db = t_path(dir, "app.db");
    p = new_pipeline(0, 0);
}

static void teardown(void)
{
    sl_pipeline_free(p);
    t_rmtree(dir);
    free(dir);
    free(db);
    t_log_clear();
}

TestSuite(sqlite_source, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(sqlite_source_1m, .init = setup, .fini = teardown, .timeout = 300); /* ASan: ~40 s */

static void restart(int64_t queue_batches)
{
    sl_pipeline_free(p);
    p = new_pipeline(queue_batches, 0);
}

/* src (the sqlite source on `db`, YAML options `opts`) -> out (t_rows, options `sink`). */
static struct t_rows *build(const char *opts, const char *sink)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml, "path: %s\n%s", db, opts);
    struct sl_stage *src = t_add(p, "src", &sl_stage_sqlite_source, yaml);
    struct sl_stage *out = t_add(p, "out", &t_rows, sink);
    t_connect(p, src, out);
    return sl_stage_state(out);
}

static void run_ok(void)
{
    struct sl_error err = {0};
    int rc = sl_pipeline_run(p, &err);
    cr_assert_eq(rc, 0, "run: %s (%s)", err.msg, err.stage);
    cr_assert_eq(sl_pipeline_live_batches(p), 0);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- a million rows ---------------------------------------------------------------------- */

static int64_t next_id;
static char bad_row[600];

static void check_rows(struct sl_stage *s, struct t_rows *r, struct sl_batch *b)
{
    (void)s, (void)r;
    for (size_t i = 0; i < sl_batch_count(b) && !bad_row[0]; i++, next_id++) {
        const struct sl_event *ev = sl_batch_event_const(b, i);
        const char *why = t_rows_check(ev, next_id);
        if (!why && sl_event_offset(ev) != (uint64_t)next_id) why = "offset is not the id";
        if (!why && strcmp(sl_event_origin(ev), db)) why = "origin is not the database";
        if (!why && sl_event_time(ev) <= 0) why = "no time";
        if (why) snprintf(bad_row, sizeof bad_row, "row %lld: %s", (long long)next_id, why);
    }
}

Test(sqlite_source_1m, a_million_rows_in_snapshot_pages_once_in_order_typed_in_bounded_memory)
{
    t_rows_table(db, 1, 1000000);
    struct t_rows *r =
        build("table: t\ntracking_column: id\npage_size: 1000\ncheckpoint: \"\"", NULL);
    r->nostore = true;
    r->on_write = check_rows;
    next_id = 1;
    double t0 = now_s();
    run_ok();
    double secs = now_s() - t0;
    cr_assert_eq(bad_row[0], '\0', "%s", bad_row);
    cr_assert_eq(next_id, 1000001);
    cr_assert_eq(r->n, 1000000);
    cr_assert_eq(r->max_batch, 1000, "a batch of %zu rows", r->max_batch);
    cr_assert_eq(r->batches, 1000);
    /* Alive at most: the sink's queue (8), the batch the sink holds, the page the
     * executor fills, the page waiting for poll: bounded by the queues, not the rows. */
    uint64_t peak = sl_pipeline_peak_batches(p);
    cr_assert_leq(peak, 8 + 3, "%llu batches alive at once", (unsigned long long)peak);
    int64_t mem_peak = 0;
    sl_pipeline_memory(p, NULL, &mem_peak);
    fprintf(stderr,
            "sqlite source, 1M rows snapshot, page_size 1000: %.2f s, %.0f rows/s, peak %llu "
            "batches (%lld KiB), peak RSS %ld KiB\n",
            secs, 1e6 / secs, (unsigned long long)peak, (long long)(mem_peak / 1024),
            t_peak_rss_kib());
}

/* ---- keyset pages -------------------------------------------------------------------------- */

/* The page query the source logged at start (owned). */
static char *logged_query(void)
{
    const char *at = t_log_text ? strstr(t_log_text, "debug src: page query: ") : NULL;
    cr_assert_not_null(at, "no page query in the log:\n%s", t_log_text ? t_log_text : "");
    at += strlen("debug src: page query: ");
    return strndup(at, strcspn(at, "\n"));
}

/* EXPLAIN QUERY PLAN of the logged query: a SEARCH by `want`, no scan, no sort. */
static void assert_keyset_plan(const char *want)
{
    char *q = logged_query(), sql[1200];
    cr_assert_null(strstr(q, "OFFSET"), "%s", q);
    snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s;", q);
    char *plan = t_sqlite(db, sql);
    cr_assert_not_null(strstr(plan, want), "query %s\nplan %s", q, plan);
    cr_assert_null(strstr(plan, "SCAN"), "query %s\nplan %s", q, plan);
    cr_assert_null(strstr(plan, "TEMP B-TREE"), "query %s\nplan %s", q, plan);
    free(plan);
    free(q);
}

Test(sqlite_source, pages_are_keyset_queries_that_use_the_index)
{
    t_rows_table(db, 1, 1000);
    free(t_sqlite(db, "CREATE TABLE ev (ts TEXT, msg TEXT); CREATE INDEX ev_ts ON ev (ts);"
                      " INSERT INTO ev SELECT printf('2024-01-01T00:%02d:%02d', id / 60, id % 60),"
                      " s FROM t ORDER BY random();"));
    struct t_rows *r =
        build("table: t\ntracking_column: id\npage_size: 100\ncheckpoint: \"\"", NULL);
    run_ok();
    cr_assert_eq(r->n, 1000);
    assert_keyset_plan("SEARCH t USING INTEGER PRIMARY KEY (rowid>?)");

    restart(0);
    t_log_clear();
    r = build("query: SELECT ts, msg FROM ev\ntracking_column: ts\npage_size: 64\ncheckpoint: \"\"",
              NULL);
    r->keep_payloads = true;
    run_ok();
    cr_assert_eq(r->n, 1000);
    cr_assert_str_eq(r->payloads[0], "{\"ts\":\"2024-01-01T00:00:01\",\"msg\":\"row 1\"}");
    cr_assert_str_eq(r->payloads[999], "{\"ts\":\"2024-01-01T00:16:40\",\"msg\":\"row 1000\"}");
    for (size_t i = 1; i < r->n; i++)
        cr_assert_lt(strcmp(r->payloads[i - 1], r->payloads[i]), 0, "row %zu out of order", i);
    assert_keyset_plan("SEARCH ev USING INDEX ev_ts (ts>?)");
}

/* While the first page is written, rows are inserted behind the position (5) and ahead
 * of it (1001, 2001): the first are not read (keyset, no OFFSET), the others are. */
static void insert_around(struct sl_stage *s, struct t_rows *r, struct sl_batch *b)
{
    (void)s, (void)b;
    if (r->batches == 1)
        free(t_sqlite(db, "INSERT INTO t VALUES (5, 7.5, 'row 5', 5), (1001, 1501.5, 'row 1001', "
                          "1), (2001, 3001.5, 'row 2001', 1);"));
}

Test(sqlite_source, rows_inserted_behind_the_position_are_not_read_those_ahead_are)
{
    t_rows_table(db, 1, 2000);
    free(t_sqlite(db, "DELETE FROM t WHERE id % 2 = 1;"));
    struct t_rows *r =
        build("table: t\ntracking_column: id\npage_size: 10\ncheckpoint: \"\"", NULL);
    r->on_write = insert_around;
    run_ok();
    cr_assert_eq(r->n, 1000 + 2);
    cr_assert_eq(r->ids[0], 2);
    size_t k = 0;
    for (int64_t id = 2; id <= 2001; id++) {
        if (id % 2 && id != 1001 && id != 2001) continue;
        cr_assert_eq(r->ids[k], id, "row %zu is %lld, not %lld", k, (long long)r->ids[k],
                     (long long)id);
        k++;
    }
    cr_assert_eq(k, r->n);
}

/* ---- backpressure ---------------------------------------------------------------------------- */

static int full_samples, frozen_samples, frozen_breaks, busy_while_full, read_ahead;
static uint64_t started_then;
static int64_t writes_then = -1;
static bool was_full;

/* Every 2 ms, when the sink's queue (the source's output) is full: no page request is out,
 * every page requested was emitted (none read ahead, held for later), and when the queue
 * stayed full since the last sample (the sink took nothing from it meanwhile: only the
 * sink empties it), no request started in between. */
static void sample(struct sl_stage *s, struct t_rows *r)
{
    struct sl_stage_stats st = {.size = sizeof st}, src = {.size = sizeof src};
    sl_stage_stats(s, &st);
    sl_stage_stats(sl_pipeline_find(p, "src"), &src);
    struct sl__sqlsrc *ss = sl_stage_state(sl_pipeline_find(p, "src"));
    struct sl_sqlite_stats ps = t_pool_stats(p, db);
    uint64_t started = ps.requests + ps.busy + ps.waiting;
    bool full = st.queue_batches >= st.queue_capacity;
    if (full) {
        full_samples++;
        if (ps.busy || ps.waiting || ss->phase == SQLSRC_FETCHING) busy_while_full++;
        if (started != src.batches_out || ss->ready) read_ahead++;
    }
    if (full && was_full && r->batches == writes_then) {
        frozen_samples++;
        if (started != started_then) frozen_breaks++;
    }
    was_full = full;
    writes_then = r->batches;
    started_then = started;
}

Test(sqlite_source, no_page_is_read_while_the_output_is_full)
{
    restart(2);
    t_rows_table(db, 1, 300);
    struct t_rows *r = build("table: t\ntracking_column: id\npage_size: 10\ncheckpoint: \"\"",
                             "delay_ms: 20\nsample_ms: 2");
    r->on_sample = sample;
    run_ok();
    cr_assert_eq(r->n, 300);
    cr_assert_gt(frozen_samples, 50, "the output stayed full over %d samples only (of %d full)",
                 frozen_samples, full_samples);
    cr_assert_eq(frozen_breaks, 0, "%d page requests began while the output was full",
                 frozen_breaks);
    cr_assert_eq(busy_while_full, 0, "a page request was out while the output was full");
    cr_assert_eq(read_ahead, 0, "a page was read ahead while the output was full");
    /* 30 pages of 10 rows and the empty one that ends the snapshot: nothing read ahead. */
    cr_assert_eq(t_pool_stats(p, db).requests, 31);
    /* in memory: the queue's 2, the one the sink holds, one page being read */
    cr_assert_leq(sl_pipeline_peak_batches(p), 2 + 2);
}

/* ---- text tracking values, a column list -------------------------------------------------- */

Test(sqlite_source, text_tracking_value_read_but_not_a_field_start_after_and_checkpoint)
{
    free(t_sqlite(db, "CREATE TABLE ev (id INTEGER PRIMARY KEY, ts TEXT UNIQUE, msg TEXT);"
                      " WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x <"
                      " 100) INSERT INTO ev SELECT x, printf('2024-05-%02d', x % 28 + 1) || '/' ||"
                      " x, 'm' || x FROM c;"));
    struct t_rows *r = build("table: ev\ncolumns: [msg]\ntracking_column: ts\npage_size: 7\n"
                             "start_after: 2024-05-27/99",
                             NULL);
    r->keep_payloads = true;
    run_ok();
    /* after '2024-05-27/99' in text order: '2024-05-28/27', '2024-05-28/55', '2024-05-28/83' */
    cr_assert_eq(r->n, 3);
    cr_assert_str_eq(r->payloads[0], "{\"msg\":\"m27\"}");
    cr_assert_str_eq(r->payloads[1], "{\"msg\":\"m55\"}");
    cr_assert_str_eq(r->payloads[2], "{\"msg\":\"m83\"}");
    char *ckdb = t_path(dir, "checkpoints.db"), *ck = t_checkpoint(ckdb, "src");
    cr_assert_str_eq(ck, "2024-05-28/83|text");
    free(ck);

    restart(0); /* the checkpoint wins over start_after */
    r = build("table: ev\ncolumns: [msg]\ntracking_column: ts\nstart_after: \"2024-01\"", NULL);
    run_ok();
    cr_assert_eq(r->n, 0);
    cr_assert_not_null(strstr(t_log_text, "resuming after '2024-05-28/83'"), "%s", t_log_text);
    free(ckdb);
}

/* ---- pages cut by bytes, a shared checkpoint database ----------------------------------- */

Test(sqlite_source, a_page_cut_by_batch_max_bytes_goes_on_after_its_last_row)
{
    sl_pipeline_free(p);
    p = new_pipeline(0, 32 * 1024);
    free(t_sqlite(db, "CREATE TABLE t (id INTEGER PRIMARY KEY, blob TEXT);"
                      " WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x <"
                      " 100) INSERT INTO t SELECT x, printf('%.10000c', 'x') FROM c;"));
    struct t_rows *r = build("table: t\ntracking_column: id\npage_size: 50", NULL);
    run_ok();
    cr_assert_eq(r->n, 100);
    for (size_t i = 0; i < r->n; i++) cr_assert_eq(r->ids[i], (int64_t)i + 1);
    cr_assert_leq(r->max_batch, 4, "a batch of %zu rows of 10 KB", r->max_batch);
    char *ckdb = t_path(dir, "checkpoints.db"), *ck = t_checkpoint(ckdb, "src");
    cr_assert_str_eq(ck, "100|integer");
    free(ck), free(ckdb);
}

static int ckpt_pools;

static void count_ckpt_pools(void *arg, const char *path, const struct sl_sqlite_stats *st)
{
    (void)st;
    ckpt_pools += strcmp(path, arg) == 0;
}

Test(sqlite_source, sources_share_the_pool_of_the_checkpoint_database)
{
    t_rows_table(db, 1, 30);
    char yaml[1024], *ckdb = t_path(dir, "checkpoints.db");
    snprintf(yaml, sizeof yaml, "path: %s\ntable: t\ntracking_column: id\nstart_after: 10", db);
    struct sl_stage *second = t_add(p, "second", &sl_stage_sqlite_source, yaml);
    struct t_rows *r = build("table: t\ntracking_column: id\npage_size: 7", NULL);
    t_connect(p, second, sl_pipeline_find(p, "out"));
    run_ok();
    cr_assert_eq(r->n, 30 + 20);
    sl_sqlite_pools(p, count_ckpt_pools, ckdb);
    cr_assert_eq(ckpt_pools, 1);
    char *a = t_checkpoint(ckdb, "src"), *b = t_checkpoint(ckdb, "second");
    cr_assert_str_eq(a, "30|integer");
    cr_assert_str_eq(b, "30|integer");
    free(a), free(b), free(ckdb);
}

/* ---- errors -----------------------------------------------------------------------------------
 */

static void run_fails(const char *opts, const char *want)
{
    struct t_rows *r = build(opts, NULL);
    struct sl_error err = {0};
    cr_assert_neq(sl_pipeline_run(p, &err), 0, "the run of '%s' succeeded", opts);
    cr_assert_str_eq(err.stage, "src");
    cr_assert_not_null(strstr(err.msg, want), "'%s' not in: %s", want, err.msg);
    cr_assert_eq(r->n, 0);
}

Test(sqlite_source, a_bad_table_or_tracking_column_fails_at_start_with_sqlites_message)
{
    t_rows_table(db, 1, 10);
    run_fails("table: nope\ntracking_column: id", "no such table: nope");
    restart(0);
    run_fails("table: t\ntracking_column: idd", "no such column: idd");
    restart(0);
    run_fails("table: t\ncolumns: [s, nope]\ntracking_column: id", "no such column: nope");
    restart(0);
    run_fails("query: SELECT id, s FROM t\ntracking_column: f", "no such column: f");
    restart(0);
    run_fails("query: SELECT id, s FROM t WHERE\ntracking_column: id", "syntax error");
}

static void add_fails(const char *yaml, const char *want)
{
    struct sl_config *cfg = t_config(yaml);
    struct sl_error err = {0};
    cr_assert_null(sl_pipeline_add(p, "src", &sl_stage_sqlite_source, cfg, &err), "%s", yaml);
    cr_assert_not_null(strstr(err.msg, want), "'%s' not in: %s", want, err.msg);
    sl_config_free(cfg);
}

Test(sqlite_source, config_errors_are_reported_before_the_run)
{
    add_fails("path: x.db\ntracking_column: id", "either 'table'");
    add_fails("path: x.db\ntable: t\nquery: SELECT 1\ntracking_column: id", "either 'table'");
    add_fails("path: x.db\nquery: SELECT 1\ncolumns: [a]\ntracking_column: id", "'columns'");
    add_fails("path: x.db\ntable: t", "tracking_column");
    add_fails("path: x.db\ntable: t\ntracking_column: id\nmode: tail", "mode");
    struct t_rows *r = build("table: t\ntracking_column: id", NULL); /* app.db does not exist */
    struct sl_error err = {0};
    cr_assert_neq(sl_pipeline_run(p, &err), 0);
    cr_assert_str_eq(err.stage, "src");
    cr_assert_not_null(strstr(err.msg, "No such file"), "%s", err.msg);
    cr_assert_eq(r->n, 0);
}
