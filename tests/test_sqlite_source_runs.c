/* The sqlite source across time: follow mode picks up rows the sqlite3 CLI inserts while
 * it runs and checkpoints at a stop; a stopped run and a killed one (its sink holding
 * acknowledgements) resume after the last acknowledged row, losing none and repeating
 * only unacknowledged ones; a database locked past busy_timeout is retried. Real
 * databases, made and checked with the sqlite3 CLI. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sluice/builtins.h>

#include "helpers.h"
#include "helpers_file.h"
#include "helpers_sqlite.h"
#include "../connectors/sqlite/source.h"

static char *dir, *db, *ckdb;
static struct sl_pipeline *p;

static struct sl_pipeline *new_pipeline(void)
{
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.data_dir = dir;
    o.log = t_log_capture;
    struct sl_error err = {0};
    struct sl_pipeline *np = sl_pipeline_new(NULL, &o, &err);
    cr_assert_not_null(np, "%s", err.msg);
    return np;
}

static void setup(void)
{
    dir = t_tmpdir();
    db = t_path(dir, "app.db");
    ckdb = t_path(dir, "checkpoints.db");
    p = new_pipeline();
}

static void teardown(void)
{
    sl_pipeline_free(p);
    t_rmtree(dir);
    free(dir), free(db), free(ckdb);
    t_log_clear();
}

TestSuite(sqlite_source_runs, .init = setup, .fini = teardown, .timeout = 60);

static void restart(void)
{
    sl_pipeline_free(p);
    p = new_pipeline();
}

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

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The recorder saw ids first..last, in order, each once. */
static void assert_ids(const struct t_rows *r, size_t from, int64_t first, int64_t last)
{
    cr_assert_eq(r->n - from, (size_t)(last - first + 1), "%zu rows, not %lld..%lld", r->n - from,
                 (long long)first, (long long)last);
    for (size_t i = from; i < r->n; i++)
        cr_assert_eq(r->ids[i], first + (int64_t)(i - from), "row %zu is %lld", i,
                     (long long)r->ids[i]);
}

/* ---- follow -------------------------------------------------------------------------------- */

static int64_t inserted[2], delivered[2];

/* All 100 rows in: insert 101..105; those in: insert 106..110; those in: stop. */
static void insert_more(struct sl_stage *s, struct t_rows *r, struct sl_batch *b)
{
    (void)s, (void)b;
    for (int k = 0; k < 2; k++) {
        if (r->n == (size_t)(100 + 5 * k) && !inserted[k]) {
            if (k) delivered[0] = now_ms();
            t_rows_insert(db, 101 + 5 * k, 105 + 5 * k);
            inserted[k] = now_ms();
        }
    }
    if (r->n == 110 && !delivered[1]) {
        delivered[1] = now_ms();
        sl_pipeline_stop(p);
    }
}

Test(sqlite_source_runs, follow_delivers_inserted_rows_within_poll_interval_and_checkpoints)
{
    t_rows_table(db, 1, 100);
    struct t_rows *r = build(
        "table: t\ntracking_column: id\nmode: follow\npoll_interval: 100ms\npage_size: 10", NULL);
    r->on_write = insert_more;
    run_ok();
    assert_ids(r, 0, 1, 110);
    for (int k = 0; k < 2; k++) {
        int64_t waited = delivered[k] - inserted[k];
        fprintf(stderr, "follow: rows inserted %d delivered %lld ms later (poll_interval 100ms)\n",
                k, (long long)waited);
        cr_assert_leq(waited, 100 + 250, "round %d took %lld ms", k, (long long)waited);
    }
    char *ck = t_checkpoint(ckdb, "src");
    cr_assert_str_eq(ck, "110|integer");
    free(ck);
}

/* ---- a stop, then a restart ------------------------------------------------------------------ */

static void stop_at_300(struct sl_stage *s, struct t_rows *r, struct sl_batch *b)
{
    (void)s, (void)b;
    if (r->n >= 300 && r->n - sl_batch_count(b) < 300) sl_pipeline_stop(p);
}

Test(sqlite_source_runs, a_stopped_run_resumes_after_the_last_acknowledged_row)
{
    t_rows_table(db, 1, 1000);
    struct t_rows *r = build("table: t\ntracking_column: id\npage_size: 10", NULL);
    r->on_write = stop_at_300;
    run_ok();
    size_t n1 = r->n; /* 300 and what was in flight at the stop, all acknowledged */
    cr_assert_geq(n1, 300);
    cr_assert_lt(n1, 1000);
    assert_ids(r, 0, 1, (int64_t)n1);
    char *ck = t_checkpoint(ckdb, "src"), want[64];
    snprintf(want, sizeof want, "%zu|integer", n1);
    cr_assert_str_eq(ck, want);
    free(ck);

    restart();
    r = build("table: t\ntracking_column: id\npage_size: 10", NULL);
    run_ok();
    assert_ids(r, 0, (int64_t)n1 + 1, 1000); /* nothing lost, nothing twice */
    ck = t_checkpoint(ckdb, "src");
    cr_assert_str_eq(ck, "1000|integer");
    free(ck);
}

/* ---- a kill, with acknowledgements held ------------------------------------------------------ */

static FILE *delivered_log;

static void log_ids(struct sl_stage *s, struct t_rows *r, struct sl_batch *b)
{
    (void)s;
    for (size_t i = r->n - sl_batch_count(b); i < r->n; i++)
        fprintf(delivered_log, "%lld\n", (long long)r->ids[i]);
    fflush(delivered_log);
}

/* The child: pages of 10, the first 5 batches acknowledged, the next ones held. */
static void run_child(const char *log)
{
    p = new_pipeline(); /* its own loop: the parent's shares this process's descriptors */
    delivered_log = fopen(log, "w");
    struct t_rows *r = build("table: t\ntracking_column: id\npage_size: 10\n"
                             "checkpoint_interval: 10ms",
                             "hold_after: 5");
    r->on_write = log_ids;
    sl_pipeline_run(p, NULL); /* never ends: the sink holds its acknowledgements */
    _exit(1);
}

static size_t read_ids(const char *path, int64_t *ids, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n = 0;
    long long v;
    while (f && n < cap && fscanf(f, "%lld", &v) == 1) ids[n++] = v;
    if (f) fclose(f);
    return n;
}

static void wait_for_kill_point(const char *log)
{
    int64_t ids[2000], deadline = now_ms() + 10000;
    while (read_ids(log, ids, 2000) < 70 && now_ms() < deadline) usleep(5000);
    char *ck = NULL;
    do {
        free(ck);
        usleep(10000);
        ck = t_checkpoint(ckdb, "src");
    } while (strcmp(ck, "50|integer") && now_ms() < deadline);
    cr_assert_str_eq(ck, "50|integer", "the held run's checkpoint");
    free(ck);
    usleep(100000); /* saves go on every 10 ms: none may pass row 50 */
}

Test(sqlite_source_runs, a_killed_run_holding_acks_resumes_after_the_last_acknowledged_row)
{
    t_rows_table(db, 1, 1000);
    char *log = t_path(dir, "delivered");
    pid_t pid = t_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) run_child(log);
    wait_for_kill_point(log);
    cr_assert_eq(kill(pid, SIGKILL), 0);
    cr_assert_eq(waitpid(pid, NULL, 0), pid);
    char *ck = t_checkpoint(ckdb, "src");
    cr_assert_str_eq(ck, "50|integer");
    free(ck);
    int64_t first[2000];
    size_t n1 = read_ids(log, first, 2000);
    cr_assert_geq(n1, 70, "the killed run delivered %zu rows", n1);
    for (size_t i = 0; i < n1; i++) cr_assert_eq(first[i], (int64_t)i + 1);

    struct t_rows *r = build("table: t\ntracking_column: id\npage_size: 10", NULL);
    run_ok();
    /* Rows 1..50 were acknowledged: not again. 51..n1 were delivered, never acknowledged:
     * again. The rest: for the first time. */
    assert_ids(r, 0, 51, 1000);
    fprintf(stderr,
            "kill: first run delivered 1..%zu, acknowledged 1..50; the next replayed "
            "51..%zu and went on\n",
            n1, n1);
    free(log);
}

/* ---- a locked database --------------------------------------------------------------------------
 */

/* The sqlite3 CLI holds an exclusive lock on `db` for `secs` from the background. */
static void lock_database(double secs)
{
    char *marker = t_path(dir, "locked"), cmd[2048];
    snprintf(cmd, sizeof cmd,
             "printf 'PRAGMA locking_mode=EXCLUSIVE;\\nBEGIN EXCLUSIVE;\\nSELECT count(*) FROM "
             "t;\\n.shell touch %s\\n.shell sleep %.1f\\nCOMMIT;\\n' | sqlite3 '%s' >/dev/null "
             "2>&1 &",
             marker, secs, db);
    cr_assert_eq(system(cmd), 0);
    struct stat st;
    for (int i = 0; i < 1000 && stat(marker, &st); i++) usleep(5000);
    cr_assert_eq(stat(marker, &st), 0, "the CLI never took the lock");
    free(marker);
}

Test(sqlite_source_runs, a_database_locked_past_busy_timeout_is_retried_and_the_run_goes_on)
{
    t_rows_table(db, 1, 200);
    free(t_sqlite(db, "PRAGMA journal_mode=WAL;"));
    lock_database(1.0);
    struct t_rows *r = build("table: t\ntracking_column: id\npage_size: 50\n"
                             "pool: {busy_timeout: 100ms}",
                             NULL);
    int64_t t0 = now_ms();
    run_ok();
    assert_ids(r, 0, 1, 200);
    struct sl__sqlsrc *s = sl_stage_state(sl_pipeline_find(p, "src"));
    cr_assert_geq(s->busy_retries, 1, "no retry in %lld ms", (long long)(now_ms() - t0));
    cr_assert_gt(t_pool_stats(p, db).retries, 0, "the pool did not retry SQLITE_BUSY");
    cr_assert_not_null(strstr(t_log_text, "database is locked"), "%s", t_log_text);
    cr_assert_not_null(strstr(t_log_text, "retrying in"), "%s", t_log_text);
    char *ck = t_checkpoint(ckdb, "src");
    cr_assert_str_eq(ck, "200|integer");
    free(ck);
}
