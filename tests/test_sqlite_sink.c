/* The sqlite sink: what lands in the table (types, expressions, raw lines), the DDL of
 * create_table, insert / upsert / replace, rows the database refuses (dead letters,
 * drop, fail), and config mistakes. Real databases in a temporary directory, read back
 * with the sqlite3 CLI and compared whole. (Faults of the database itself: the tests of
 * test_sqlite_sink_faults.c; kill -9: test_sqlite_crash.c.) */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/builtins.h>

#include "helpers.h"
#include "helpers_file.h"
#include "helpers_sqlite_sink.h"

static char *dir, *db;
static struct sl_pipeline *p;

static void setup(void)
{
    dir = t_tmpdir();
    db = t_db(dir);
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.data_dir = dir;
    struct sl_error err = {0};
    p = sl_pipeline_new(NULL, &o, &err);
    cr_assert_not_null(p, "%s", err.msg);
}

static void teardown(void)
{
    sl_pipeline_free(p);
    t_rmtree(dir);
    free(dir);
    free(db);
}

TestSuite(sqlite_sink, .init = setup, .fini = teardown, .timeout = 60);

#define LINES(...)                                                                                 \
    do {                                                                                           \
        static const char *const lines_[] = {__VA_ARGS__};                                         \
        t_jsonl_lines = lines_;                                                                    \
        t_jsonl_count = sizeof lines_ / sizeof *lines_;                                            \
    } while (0)

/* Runs the lines into the sink; asserts success. Returns the sink's counters. */
static struct sl_stage_stats run_ok(const char *src_yaml, const char *sink_fmt)
{
    struct sl_error err = {0};
    struct sl_stage *k;
    int rc = t_sqlite_pipeline(p, dir, src_yaml, sink_fmt, NULL, &k, &err);
    cr_assert_eq(rc, 0, "run: %s (%s)", err.msg, err.stage);
    cr_assert_eq(sl_pipeline_live_batches(p), 0);
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(k, &st);
    return st;
}

/* Asserts that `sql` prints exactly `want` (list mode, '|' between values, NULL as "NULL"). */
static void assert_sql(const char *sql, const char *want)
{
    char full[2048];
    snprintf(full, sizeof full, ".nullvalue NULL\n%s", sql);
    char *got = t_sqlite(db, full);
    cr_assert_str_eq(got, want, "%s\ngot:\n%s\nexpected:\n%s", sql, got, want);
    free(got);
}

/* ---- what lands ---------------------------------------------------------------------------- */

Test(sqlite_sink, rows_land_with_their_types_and_expressions)
{
    LINES("{\"i\":42,\"f\":1.5,\"s\":\"he said \\\"hi\\\"\",\"n\":null,\"b\":true,"
          "\"o\":{\"a\":[1,2]},\"a\":[\"x\",null],\"ms\":1500,\"level\":\"warn\"}",
          "{\"i\":-7,\"f\":2e3,\"s\":\"caf\\u00e9\",\"b\":false,\"ms\":20,\"level\":\"info\"}");
    run_ok(NULL, "path: %1$s/t.db\ntable: t\ncreate_table: true\ncolumns:\n"
                 "  i: {type: INTEGER}\n  f: {value: f, type: REAL}\n  s: {type: TEXT}\n"
                 "  n: n\n  missing: nope\n  b: b\n  o: o\n  a: a\n"
                 "  secs: ms / 1000\n  up: upper(level)\n  both: concat(level, \"-\", i)\n"
                 "  const: '\"k\"'\n");
    assert_sql("SELECT typeof(i), i, typeof(f), f, typeof(s), s, typeof(n), typeof(missing),"
               " typeof(b), b, o, a, typeof(secs), secs, up, both, const FROM t ORDER BY rowid;",
               "integer|42|real|1.5|text|he said \"hi\"|null|null|integer|1|{\"a\":[1,2]}|"
               "[\"x\",null]|real|1.5|WARN|warn-42|k\n"
               "integer|-7|real|2000.0|text|café|null|null|integer|0|NULL|NULL|real|0.02|INFO|"
               "info--7|k\n");
}

Test(sqlite_sink, a_raw_line_is_its_message_and_a_list_of_names_takes_fields)
{
    LINES("not json at all", "{\"message\":\"a field\",\"x\":1}");
    /* no parse_json here: the sink sees the first line raw; parse_json passes a line it
     * cannot parse unchanged (on_error drop would drop it, so the pipeline is built by
     * hand) */
    struct sl_stage *s = t_add(p, "src", &t_jsonl, NULL);
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "path: %s/t.db\ntable: t\ncreate_table: true\ncolumns: [message, x]", dir);
    struct sl_stage *k = t_add(p, "db", &sl_stage_sqlite_sink, yaml);
    t_connect(p, s, k);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "%s", err.msg);
    assert_sql("SELECT message, x FROM t ORDER BY rowid;",
               "not json at all|NULL\n{\"message\":\"a field\",\"x\":1}|NULL\n");
}

Test(sqlite_sink, create_table_makes_the_table_the_key_index_and_indexes_once)
{
    LINES("{\"k\":1,\"svc\":\"api\",\"lvl\":\"info\"}");
    const char *sink = "path: %1$s/t.db\ntable: t\ncreate_table: true\nkey: [k]\n"
                       "columns: {k: {type: INTEGER NOT NULL}, svc: {type: TEXT}, lvl: lvl}\n"
                       "indexes: [svc, [svc, lvl], {columns: lvl, unique: false}]\n"
                       "mode: upsert\n";
    run_ok(NULL, sink);
    const char *want =
        "index|t_key|CREATE UNIQUE INDEX \"t_key\" ON \"t\" (\"k\")\n"
        "index|t_lvl_idx|CREATE INDEX \"t_lvl_idx\" ON \"t\" (\"lvl\")\n"
        "index|t_svc_idx|CREATE INDEX \"t_svc_idx\" ON \"t\" (\"svc\")\n"
        "index|t_svc_lvl_idx|CREATE INDEX \"t_svc_lvl_idx\" ON \"t\" (\"svc\", "
        "\"lvl\")\n"
        "table|t|CREATE TABLE \"t\" (\"k\" INTEGER NOT NULL, \"svc\" TEXT, \"lvl\")\n";
    const char *q = "SELECT type, name, replace(sql, 'IF NOT EXISTS ', '') FROM sqlite_master "
                    "ORDER BY type, name;";
    assert_sql(q, want);
    /* a second run finds them and adds nothing */
    sl_pipeline_free(p);
    struct sl_error err = {0};
    p = sl_pipeline_new(NULL, NULL, &err);
    run_ok(NULL, sink);
    assert_sql(q, want);
    assert_sql("SELECT count(*) FROM t;", "1\n");
}

/* ---- insert, upsert, replace ---------------------------------------------------------------- */

/* Per-minute counts of two services, the second batch correcting the first minute. */
static void minute_counts(void)
{
    LINES("{\"minute\":\"00:01\",\"svc\":\"api\",\"n\":3}",
          "{\"minute\":\"00:01\",\"svc\":\"db\",\"n\":1}",
          "{\"minute\":\"00:01\",\"svc\":\"api\",\"n\":5}",
          "{\"minute\":\"00:02\",\"svc\":\"api\",\"n\":2}");
}

#define COUNTS_SINK                                                                                \
    "path: %1$s/t.db\ntable: counts\ncreate_table: true\nkey: [minute, svc]\n"                     \
    "columns: {minute: {type: TEXT}, svc: {type: TEXT}, n: {type: INTEGER}}\n"

Test(sqlite_sink, upsert_updates_per_minute_counts_in_place)
{
    minute_counts();
    struct sl_stage_stats st = run_ok("per_batch: 2", COUNTS_SINK "mode: upsert\n");
    cr_assert_eq(st.acked, 4);
    assert_sql("SELECT rowid, minute, svc, n FROM counts ORDER BY rowid;",
               "1|00:01|api|5\n2|00:01|db|1\n3|00:02|api|2\n");
}

Test(sqlite_sink, replace_deletes_the_old_row_and_inserts_a_new_one)
{
    minute_counts();
    run_ok("per_batch: 2", COUNTS_SINK "mode: replace\n");
    assert_sql("SELECT rowid, minute, svc, n FROM counts ORDER BY rowid;",
               "2|00:01|db|1\n3|00:01|api|5\n4|00:02|api|2\n");
}

Test(sqlite_sink, upsert_with_only_key_columns_keeps_the_first_row)
{
    LINES("{\"k\":\"a\"}", "{\"k\":\"b\"}", "{\"k\":\"a\"}");
    run_ok(NULL, "path: %1$s/t.db\ntable: t\ncreate_table: true\nkey: k\ncolumns: [k]\n"
                 "mode: upsert\n");
    assert_sql("SELECT rowid, k FROM t ORDER BY rowid;", "1|a\n2|b\n");
}

/* ---- rows the database refuses ------------------------------------------------------------- */

#define UNIQUE_SINK                                                                                \
    "path: %1$s/t.db\ntable: t\ncreate_table: true\n"                                              \
    "columns: {id: {type: INTEGER PRIMARY KEY}, v: {type: TEXT NOT NULL}}\n"

Test(sqlite_sink, a_refused_row_in_mid_batch_is_a_dead_letter_and_the_rest_commits)
{
    LINES("{\"id\":1,\"v\":\"a\"}", "{\"id\":2,\"v\":\"b\"}", "{\"id\":1,\"v\":\"dup\"}",
          "{\"id\":3}", "{\"id\":4,\"v\":\"d\"}");
    struct sl_stage_stats st = run_ok("per_batch: 5", UNIQUE_SINK "on_error: dead_letter\n");
    cr_assert_eq(st.acked, 5, "the whole batch is acknowledged: %llu",
                 (unsigned long long)st.acked);
    cr_assert_eq(st.errors, 2);
    cr_assert_eq(st.dropped, 0);
    assert_sql("SELECT id, v FROM t ORDER BY id;", "1|a\n2|b\n4|d\n");
    assert_sql("SELECT stage, error, row, time LIKE '____-__-__T__:__:__.___Z' "
               "FROM t_dead_letter ORDER BY rowid;",
               "db|UNIQUE constraint failed: t.id|{\"id\":1,\"v\":\"dup\"}|1\n"
               "db|NOT NULL constraint failed: t.v|{\"id\":3,\"v\":null}|1\n");
}

Test(sqlite_sink, dead_letters_go_to_the_named_table_across_chunks)
{
    /* 600 rows in one batch (three savepoint chunks), every 100th a duplicate of row 0 */
    static char text[600][48];
    static const char *lines[600];
    for (int i = 0; i < 600; i++) {
        snprintf(text[i], sizeof text[i], "{\"id\":%d,\"v\":\"r%d\"}", i % 100 == 99 ? 0 : i, i);
        lines[i] = text[i];
    }
    t_jsonl_lines = lines;
    t_jsonl_count = 600;
    struct sl_stage_stats st =
        run_ok("per_batch: 600", UNIQUE_SINK "on_error: dead_letter\ndead_letter_table: rejects\n");
    cr_assert_eq(st.errors, 6);
    assert_sql("SELECT count(*), sum(id) FROM t;", "594|177606\n");
    assert_sql("SELECT group_concat(json_extract(row, '$.v')) FROM rejects;",
               "r99,r199,r299,r399,r499,r599\n");
}

Test(sqlite_sink, on_error_drop_counts_the_refused_rows)
{
    LINES("{\"id\":1,\"v\":\"a\"}", "{\"id\":1,\"v\":\"b\"}", "{\"id\":2}");
    struct sl_stage_stats st = run_ok(NULL, UNIQUE_SINK "on_error: drop\n");
    cr_assert_eq(st.errors, 2);
    cr_assert_eq(st.dropped, 2);
    cr_assert_eq(st.acked, 3);
    assert_sql("SELECT id, v FROM t;", "1|a\n");
    assert_sql("SELECT count(*) FROM sqlite_master WHERE name LIKE '%dead%';", "0\n");
}

Test(sqlite_sink, on_error_fail_stops_the_run_and_acknowledges_nothing_of_the_batch)
{
    LINES("{\"id\":1,\"v\":\"a\"}", "{\"id\":2,\"v\":\"b\"}", "{\"id\":3,\"v\":\"c\"}",
          "{\"id\":1,\"v\":\"dup\"}", "{\"id\":5,\"v\":\"e\"}", "{\"id\":6,\"v\":\"f\"}");
    struct sl_error err = {0};
    struct sl_stage *src;
    int rc = t_sqlite_pipeline(p, dir, "per_batch: 3\ndelay_ms: 50", UNIQUE_SINK, &src, NULL, &err);
    cr_assert_neq(rc, 0);
    cr_assert_str_eq(err.stage, "db");
    cr_assert_str_eq(err.msg, "row 1 of 3 refused: UNIQUE constraint failed: t.id (in: INSERT "
                              "INTO \"t\" (\"id\", \"v\") VALUES (?1, ?2))");
    struct t_jsonl *j = sl_stage_state(src);
    cr_assert_eq(j->acked, 3, "only the first batch is acknowledged: %lld", (long long)j->acked);
    assert_sql("SELECT group_concat(id) FROM t;", "1,2,3\n");
}

Test(sqlite_sink, on_error_fail_in_a_later_batch_keeps_the_batches_before_it)
{
    /* twelve batches of two, taken as fast as they come (several to a request): the
     * seventh holds a duplicate; the six before it are committed and acknowledged, in
     * order, and nothing after it is */
    static char text[24][40];
    static const char *lines[24];
    for (int i = 0; i < 24; i++) {
        snprintf(text[i], sizeof text[i], "{\"id\":%d,\"v\":\"r%d\"}", i == 13 ? 0 : i, i);
        lines[i] = text[i];
    }
    t_jsonl_lines = lines;
    t_jsonl_count = 24;
    struct sl_error err = {0};
    struct sl_stage *src;
    int rc = t_sqlite_pipeline(p, dir, "per_batch: 2", UNIQUE_SINK, &src, NULL, &err);
    cr_assert_neq(rc, 0);
    cr_assert(strstr(err.msg, "row 2 of 2 refused: UNIQUE constraint failed: t.id"), "%s", err.msg);
    struct t_jsonl *j = sl_stage_state(src);
    cr_assert_eq(j->acked, 12, "the six batches before it: %lld", (long long)j->acked);
    assert_sql("SELECT count(*), min(id), max(id) FROM t;", "12|0|11\n");
}

/* ---- mistakes ------------------------------------------------------------------------------ */

static void assert_config_error(const char *yaml, const char *want)
{
    struct sl_config *cfg = t_config(yaml);
    struct sl_error err = {0};
    struct sl_stage *s = sl_pipeline_add(p, "db", &sl_stage_sqlite_sink, cfg, &err);
    sl_config_free(cfg);
    cr_assert_null(s, "accepted: %s", yaml);
    char buf[1024];
    sl_error_format(&err, buf, sizeof buf);
    cr_assert(strstr(buf, want), "%s\ngot: %s\nexpected: %s", yaml, buf, want);
}

Test(sqlite_sink, config_mistakes_are_reported_at_their_place)
{
    assert_config_error("path: x.db\ntable: t\ncolumns: {a: 'b =='}",
                        "3:19: stage 'db': column 'a': expected an operand after '=='");
    assert_config_error("path: x.db\ntable: t\ncolumns: {a: {value: b, typ: TEXT}}",
                        "3:25: stage 'db': column 'a': unknown key 'typ'");
    assert_config_error("path: x.db\ntable: t\ncolumns: [a]\nmode: upsert",
                        "4:7: stage 'db': mode upsert needs 'key'");
    assert_config_error("path: x.db\ntable: t\ncolumns: [a]\nkey: [b]",
                        "stage 'db': key column 'b' is not one of 'columns'");
    assert_config_error("path: x.db\ntable: t\ncolumns: [a]\nindexes: [a]",
                        "4:10: stage 'db': option 'indexes' needs create_table: true");
    assert_config_error("path: x.db\ntable: t\ncolumns: [a]\ncreate_table: true\nindexes: [c]",
                        "5:11: stage 'db': index column 'c' is not one of 'columns'");
    assert_config_error("path: x.db\ntable: t\ncolumns: [a, a]",
                        "stage 'db': column 'a' is named twice");
    assert_config_error("path: x.db\ntable: t\ncolumns: [a]\ndead_letter_table: d",
                        "stage 'db': option 'dead_letter_table' needs on_error: dead_letter");
    assert_config_error("path: x.db\ntable: t\ncolumns: {a: {type: 'INT; DROP TABLE x'}}",
                        "stage 'db': column 'a': type is a SQL type");
    assert_config_error("path: x.db\ntable: t\ncolumns: a", "option 'columns': expected a mapping");
}
