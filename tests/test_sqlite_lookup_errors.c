/* sqlite_lookup when the database fails: a table dropped during the run, a missing
 * table, a column `fields` names that the query lacks, locks waited out or held past
 * busy_timeout, no connection within acquire_timeout; and the checks of the config. */
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

TestSuite(lookup_errors, .init = lk_setup, .fini = lk_teardown, .timeout = 60);

/* ---- database errors ------------------------------------------------------------------------ */

static bool dropped;

static void drop_table(struct sl_stage *s, struct t_json *j)
{
    (void)s;
    if (dropped || j->n < 100) return;
    dropped = true;
    free(t_sqlite(lk_db, "DROP TABLE users;"));
}

Test(lookup_errors, a_table_dropped_during_the_run_fails_the_stage_with_sqlites_message)
{
    lk_make_users(2000, 1);
    lk_build("count: 2000\n", "query: SELECT name, tier FROM users WHERE id = :n\n"
                              "on_error: dead_letter\n");
    lk_rec(lk_out)->hook = drop_table;
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(lk_p, &err), SL_EIO);
    cr_assert_str_eq(err.stage, "look");
    cr_assert(strstr(err.msg, "no such table: users"), "%s", err.msg);
    struct t_json *j = lk_rec(lk_out);
    cr_assert(j->n >= 100 && j->n < 2000, "%zu", j->n);
    cr_assert_eq(lk_rec(lk_dead)->n, 0, "a statement error is the stage's, not an event's");
    cr_assert_leq(((struct t_keyed *)sl_stage_state(lk_src))->acked, (int64_t)j->n);
}

Test(lookup_errors, a_missing_table_fails_the_stage_at_the_first_lookup)
{
    lk_make_users(10, 1);
    lk_build("count: 10\n", "query: SELECT name FROM nope WHERE id = :n\n");
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(lk_p, &err), SL_EIO);
    cr_assert_str_eq(err.stage, "look");
    cr_assert_str_eq(err.msg, "no such table: nope (in: SELECT name FROM nope WHERE id = ?1)");
    cr_assert_eq(lk_rec(lk_out)->n, 0);
}

Test(lookup_errors, fields_naming_a_column_the_query_lacks_fail_the_stage)
{
    lk_make_users(10, 1);
    lk_build("count: 10\n", "query: SELECT name FROM users WHERE id = :n\nfields: {tier: t}\n");
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(lk_p, &err), SL_ECONFIG);
    cr_assert_str_eq(err.msg, "fields: the query returns no column 'tier'");
}

/* sqlite3 (another process) holds an exclusive lock for `secs` on the database, still in
 * rollback-journal mode, where a reader waits for it (the pool opens the file in WAL mode
 * at the first request, which needs the lock too). Returns once the lock is held. */
static void lock_for(const char *secs)
{
    char cmd[1400], marker[600];
    snprintf(marker, sizeof marker, "%s/locked", lk_dir);
    snprintf(cmd, sizeof cmd,
             "(printf 'BEGIN EXCLUSIVE;\\nSELECT count(*) FROM users;\\n.shell touch %s\\n"
             ".shell sleep %s\\nCOMMIT;\\n' | sqlite3 '%s' > /dev/null) &",
             marker, secs, lk_db);
    cr_assert_eq(system(cmd), 0);
    for (int i = 0; i < 1000 && access(marker, F_OK) != 0; i++) usleep(5000);
    cr_assert_eq(access(marker, F_OK), 0, "the lock was never taken");
}

Test(lookup_errors, a_locked_database_is_waited_out_by_the_pool)
{
    lk_make_users(50, 1);
    lock_for("0.3");
    lk_build("count: 50\n", "query: SELECT name, tier FROM users WHERE id = :k\n");
    lk_run_ok();
    struct t_json *j = lk_rec(lk_out);
    cr_assert_eq(j->n, 50);
    char want[200];
    lk_expected(want, sizeof want, 49, 49, true);
    cr_assert_str_eq(j->json[49], want);
    struct sl_sqlite_stats st = lk_pool_stats();
    cr_assert_gt(st.retries, 0, "the lookups met the lock and tried again");
    cr_assert_eq(st.errors, 0);
}

Test(lookup_errors, a_lock_held_past_busy_timeout_fails_those_lookups_alone)
{
    lk_make_users(30, 1);
    lock_for("1");
    lk_build("count: 30\nbatch: 1\n", "query: SELECT name, tier FROM users WHERE id = :k\n"
                                      "pool: {busy_timeout: 100ms, max_connections: 1}\n"
                                      "max_in_flight: 1\non_error: dead_letter\n");
    lk_run_ok();
    struct t_json *j = lk_rec(lk_out), *d = lk_rec(lk_dead);
    cr_assert_eq(j->n + d->n, 30);
    cr_assert_gt(d->n, 0);
    cr_assert_gt(j->n, 0, "once the lock is gone, lookups work again");
    for (size_t i = 0; i < d->n; i++)
        cr_assert(strstr(d->json[i], "database is locked"), "%s", d->json[i]);
    cr_assert_eq(lk_stage_stats(lk_look).errors, d->n);
}

Test(lookup_errors, no_connection_within_acquire_timeout_fails_that_lookup_alone)
{
    lk_make_users(40, 1);
    atomic_store(&lk_delay_every, 1);
    atomic_store(&lk_delay_us, 50000);
    lk_build("count: 40\n", "query: SELECT name FROM users WHERE id = :k AND t_delay(id)\n"
                            "pool: {acquire_timeout: 10ms, max_connections: 1}\n"
                            "max_in_flight: 4\non_error: dead_letter\n");
    lk_run_ok();
    struct t_json *j = lk_rec(lk_out), *d = lk_rec(lk_dead);
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
    cr_assert_null(sl_pipeline_add(lk_p, "look", &sl_stage_sqlite_lookup, cfg, &err));
    sl_config_free(cfg);
    return err;
}

Test(lookup_errors, the_query_is_checked_when_the_config_loads)
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

Test(lookup_errors, options_that_need_another_are_refused)
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

Test(lookup_errors, parameters_are_field_paths_bound_in_order_and_named_once)
{
    lk_make_users(10, 1);
    lk_build("count: 10\n", "query: |\n  SELECT name, -- the :name is a comment\n"
                            "    ':k' AS quoted, :n + 0 AS again\n"
                            "  FROM users WHERE id = :k AND :n = :k\n");
    lk_run_ok();
    struct t_json *j = lk_rec(lk_out);
    cr_assert_eq(j->n, 10);
    cr_assert_str_eq(j->json[4], "{\"message\":\"4\",\"n\":4,\"k\":4,\"name\":\"user-4\","
                                 "\"quoted\":\":k\",\"again\":4}");
}
