/* The SQLite connection pool: limits, FIFO order, one writer at a time, idle expiry,
 * acquire timeouts, reuse and lifetime replacement, sharing between stages, a request
 * that fails half-way, SQLITE_BUSY retried, the statement cache. Real database files,
 * checked with the sqlite3 CLI where the result is on disk. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sluice/sqlite.h>

#include "helpers.h"
#include "helpers_file.h"

/* ---- "t_client": a source whose start() hands the test's requests to a pool ----------- */

struct job {
    int id;             /* order of submission */
    int flags;          /* SL_SQLITE_READ / WRITE */
    int hold_ms;        /* how long the work keeps its connection */
    int meet;           /* and first until this many works run at once (2 s at most) */
    const char *sql;    /* run by the work when not NULL */
    bool fail;          /* the work fails after running sql */
    int rc;             /* what done got */
    char msg[600];      /* and why */
    sqlite3 *db;        /* the connection's handle the work got */
    sqlite3_stmt *stmt; /* the statement sl_sqlite_prepare gave for sql */
    int marked;         /* the connection had a TEMP table "marker": made by an earlier
                           request on the same connection (TEMP tables are per connection) */
    int64_t done_ms;    /* when done ran */
    int start_pos;      /* the order in which the work began (0: first) */
};

static struct job jobs[16];
static int njobs, ndone, order[16];
static int linger_ms; /* the client ends this long after the last done */
static struct sl_timer *linger;
static atomic_int running, most_running, writers, most_writers, starts;
static char *dir, dbpath[512];
static struct sl_sqlite_options opts;
static struct sl_sqlite_pool *pool;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void raise_max(atomic_int *max, int v)
{
    int m = atomic_load(max);
    while (v > m && !atomic_compare_exchange_weak(max, &m, v)) continue;
}

static int work(struct sl_sqlite_conn *c, void *arg, struct sl_error *err)
{
    struct job *j = arg;
    bool w = j->flags & SL_SQLITE_WRITE;
    j->start_pos = atomic_fetch_add(&starts, 1);
    raise_max(&most_running, atomic_fetch_add(&running, 1) + 1);
    if (w) raise_max(&most_writers, atomic_fetch_add(&writers, 1) + 1);
    j->db = sl_sqlite_db(c);
    sqlite3_stmt *probe =
        sl_sqlite_prepare(c, "SELECT count(*) FROM sqlite_temp_master WHERE name = 'marker'", err);
    if (probe && sl_sqlite_step(c, probe, err) == SQLITE_ROW)
        j->marked = sqlite3_column_int(probe, 0);
    if (!j->marked) sl_sqlite_exec(c, "CREATE TEMP TABLE marker (x)", err);
    int rc = 0;
    if (j->sql) {
        j->stmt = sl_sqlite_prepare(c, j->sql, err);
        rc = sl_sqlite_exec(c, j->sql, err);
    }
    for (int waited = 0; j->meet && atomic_load(&running) < j->meet && waited < 2000; waited++)
        usleep(1000); /* the pool lent this many connections at once */
    if (j->hold_ms) usleep((useconds_t)j->hold_ms * 1000);
    if (w) atomic_fetch_sub(&writers, 1);
    atomic_fetch_sub(&running, 1);
    if (!rc && j->fail) rc = sl_error_set(err, SL_EPARSE, "job %d fails on purpose", j->id);
    return rc;
}

static void done(struct sl_stage *s, void *arg, int rc, const struct sl_error *err)
{
    struct job *j = arg;
    j->rc = rc;
    snprintf(j->msg, sizeof j->msg, "%s", rc ? err->msg : "");
    j->done_ms = now_ms();
    order[ndone++] = j->id;
    sl_stage_wake(s);
}

static int client_start(struct sl_stage *s, struct sl_error *err)
{
    pool = sl_sqlite_pool(s, dbpath, &opts, err);
    if (!pool) return err->code;
    for (int i = 0; i < njobs; i++)
        cr_assert_eq(sl_sqlite_submit(pool, s, jobs[i].flags, work, done, &jobs[i]), 0);
    return 0;
}

static void lingered(struct sl_stage *s, void *arg)
{
    (void)arg;
    linger_ms = 0;
    sl_stage_wake(s);
}

static enum sl_poll client_poll(struct sl_stage *s, struct sl_batch **out)
{
    (void)out;
    if (ndone < njobs) return SL_PENDING;
    if (!linger_ms) return SL_DONE;
    if (!linger) {
        linger = sl_timer_new(s, lingered, NULL);
        sl_timer_start(linger, linger_ms, false);
    }
    return SL_PENDING;
}

static void client_close(struct sl_stage *s)
{
    (void)s;
    sl_timer_free(linger);
    linger = NULL;
}

static const struct sl_stage_type t_client = {
    .abi = SL_STAGE_ABI,
    .name = "t_client",
    .kind = SL_SOURCE,
    .doc = "submits the test's jobs to a pool",
    .start = client_start,
    .poll = client_poll,
    .close = client_close,
};

static struct sl_pipeline *p;

static void setup(void)
{
    dir = t_tmpdir();
    snprintf(dbpath, sizeof dbpath, "%s/db/app.db", dir); /* its directory is made too */
    sl_sqlite_options_init(&opts);
    memset(jobs, 0, sizeof jobs);
    njobs = ndone = 0;
    linger_ms = 0;
    atomic_store(&running, 0), atomic_store(&most_running, 0);
    atomic_store(&writers, 0), atomic_store(&most_writers, 0);
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.executor_threads = 8;
    p = sl_pipeline_new(NULL, &o, NULL);
}

static void teardown(void)
{
    sl_pipeline_free(p);
    t_rmtree(dir);
    free(dir);
}

TestSuite(pool, .init = setup, .fini = teardown, .timeout = 30);

static void add(int flags, int hold_ms, const char *sql)
{
    jobs[njobs] = (struct job){.id = njobs, .flags = flags, .hold_ms = hold_ms, .sql = sql};
    njobs++;
}

static struct sl_stage *run_jobs(void)
{
    struct sl_stage *c = t_add(p, "client", &t_client, NULL);
    struct sl_stage *out = t_add(p, "out", &t_collect, NULL);
    t_connect(p, c, out);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "%s", err.msg);
    cr_assert_eq(ndone, njobs);
    return c;
}

static struct sl_sqlite_stats stats;

static void keep_stats(void *arg, const char *path, const struct sl_sqlite_stats *st)
{
    (void)arg;
    cr_assert_str_eq(path, dbpath);
    stats = *st;
}

/* ---- the tests ------------------------------------------------------------------------------ */

Test(pool, at_most_max_connections_work_at_once_and_the_rest_wait_in_order)
{
    opts.max_connections = 2;
    for (int i = 0; i < 6; i++) add(SL_SQLITE_READ, 30, NULL);
    run_jobs();
    cr_assert_eq(atomic_load(&most_running), 2, "%d at once", atomic_load(&most_running));
    for (int i = 0; i < 6; i++) cr_assert_eq(jobs[i].rc, 0, "%s", jobs[i].msg);
    /* FIFO: the pool lends connections to the requests in their order; two threads then
     * begin them side by side, so a request may begin one place early or late, no more
     * (when they end depends on how the machine schedules the threads: not asserted). */
    for (int i = 0; i < 6; i++)
        cr_assert_leq(abs(jobs[i].start_pos - i), 1, "job %d began %d", i, jobs[i].start_pos);
    sl_sqlite_pools(p, keep_stats, NULL);
    cr_assert_eq(stats.open, 2);
    cr_assert_eq(stats.requests, 6);
    cr_assert_eq(stats.waiting, 0);
    cr_assert_gt(stats.wait_ns, 0, "four of them waited for a connection");
}

Test(pool, one_connection_serves_requests_strictly_first_come_first_served)
{
    opts.max_connections = 1;
    for (int i = 0; i < 8; i++) add(i % 2 ? SL_SQLITE_WRITE : SL_SQLITE_READ, 2, NULL);
    run_jobs();
    for (int i = 0; i < 8; i++) cr_assert_eq(order[i], i);
    cr_assert_eq(jobs[0].marked, 0);
    for (int i = 1; i < 8; i++) cr_assert_eq(jobs[i].marked, 1, "the connection is reused");
}

Test(pool, writes_go_one_at_a_time_reads_side_by_side)
{
    opts.max_connections = 4;
    add(SL_SQLITE_WRITE, 40, "CREATE TABLE IF NOT EXISTS t (x)");
    add(SL_SQLITE_WRITE, 40, "INSERT INTO t VALUES (1)");
    add(SL_SQLITE_WRITE, 40, "INSERT INTO t VALUES (2)");
    run_jobs();
    cr_assert_eq(atomic_load(&most_writers), 1);
    sl_pipeline_free(p);
    p = sl_pipeline_new(NULL, NULL, NULL);
    memset(jobs, 0, sizeof jobs);
    njobs = ndone = 0;
    atomic_store(&most_running, 0);
    for (int i = 0; i < 4; i++) add(SL_SQLITE_READ, 40, "SELECT count(*) FROM t");
    run_jobs();
    cr_assert_eq(atomic_load(&most_running), 4, "reads share the database");
    char *rows = t_sqlite(dbpath, "SELECT group_concat(x) FROM t");
    cr_assert_str_eq(rows, "1,2\n");
    free(rows);
}

Test(pool, a_request_waiting_past_acquire_timeout_fails_with_the_pool_state)
{
    opts.max_connections = 1;
    opts.acquire_timeout_ms = 30;
    add(SL_SQLITE_READ, 300, NULL); /* holds the only connection */
    add(SL_SQLITE_READ, 0, NULL);
    run_jobs();
    cr_assert_eq(jobs[0].rc, 0);
    cr_assert_eq(jobs[1].rc, SL_EBUSY);
    char want[700];
    snprintf(want, sizeof want,
             "no connection to '%s' within acquire_timeout (30 ms): 1 busy, 0 waiting", dbpath);
    cr_assert_str_eq(jobs[1].msg, want);
    cr_assert_eq(order[0], 1, "the timeout came before the long request ended");
}

Test(pool, idle_connections_beyond_min_idle_are_closed)
{
    opts.max_connections = 3;
    opts.min_idle = 1;
    opts.idle_timeout_ms = 20;
    linger_ms = 150; /* the run goes on after the last request, long enough to expire */
    for (int i = 0; i < 3; i++) {
        add(SL_SQLITE_READ, 0, NULL);
        jobs[i].meet = 3; /* three connections in use at once, however loaded the machine */
    }
    run_jobs();
    cr_assert_eq(atomic_load(&most_running), 3);
    sl_sqlite_pools(p, keep_stats, NULL);
    cr_assert_eq(stats.open, 1, "two closed after idle_timeout, min_idle kept");
    cr_assert_eq(stats.idle, 1);
}

Test(pool, a_connection_past_max_lifetime_is_replaced)
{
    opts.max_connections = 1;
    opts.max_lifetime_ms = 10;
    add(SL_SQLITE_READ, 20, NULL);
    add(SL_SQLITE_READ, 0, NULL);
    run_jobs();
    cr_assert_eq(jobs[0].marked, 0);
    cr_assert_eq(jobs[1].marked, 0, "a new connection: the first outlived its lifetime");
    sl_sqlite_pools(p, keep_stats, NULL);
    /* the first is closed; the second is too when its own 10 ms ran out before it was
     * given back (a loaded machine) */
    cr_assert_leq(stats.open, 1);
}

static int npools;

static void count_pool(void *arg, const char *path, const struct sl_sqlite_stats *st)
{
    (void)arg, (void)path, (void)st;
    npools++;
}

Test(pool, stages_naming_one_file_share_one_pool)
{
    struct sl_stage *a = t_add(p, "a", &t_counter, "count: 1");
    struct sl_stage *b = t_add(p, "b", &t_counter, "count: 1");
    struct sl_error err = {0};
    struct sl_sqlite_options small;
    sl_sqlite_options_init(&small);
    small.max_connections = 2;
    struct sl_sqlite_pool *pa = sl_sqlite_pool(a, dbpath, &small, &err);
    small.max_connections = 5;
    struct sl_sqlite_pool *pb = sl_sqlite_pool(b, dbpath, &small, &err);
    cr_assert_not_null(pa);
    cr_assert_eq(pa, pb);
    char other[600];
    snprintf(other, sizeof other, "%s/other.db", dir);
    cr_assert_neq(sl_sqlite_pool(a, other, NULL, &err), pa);
    npools = 0;
    sl_sqlite_pools(p, count_pool, NULL);
    cr_assert_eq(npools, 2);
}

Test(pool, a_request_failing_half_way_leaves_nothing_behind)
{
    add(SL_SQLITE_WRITE, 0, "CREATE TABLE t (x); INSERT INTO t VALUES (1)");
    add(SL_SQLITE_WRITE, 0, "BEGIN; INSERT INTO t VALUES (2); INSERT INTO t VALUES (3)");
    jobs[1].fail = true; /* fails with its transaction open: the pool rolls it back */
    add(SL_SQLITE_WRITE, 0, "INSERT INTO t VALUES (4)");
    add(SL_SQLITE_WRITE, 0, "INSERT INTO nowhere VALUES (5)");
    run_jobs();
    cr_assert_eq(jobs[0].rc, 0, "%s", jobs[0].msg);
    cr_assert_eq(jobs[1].rc, SL_EPARSE);
    cr_assert_str_eq(jobs[1].msg, "job 1 fails on purpose");
    cr_assert_eq(jobs[2].rc, 0, "%s", jobs[2].msg);
    cr_assert_eq(jobs[3].rc, SL_EIO);
    cr_assert_str_eq(jobs[3].msg, "no such table: nowhere (in: INSERT INTO nowhere VALUES (5))");
    char *rows = t_sqlite(dbpath, "SELECT group_concat(x) FROM t");
    cr_assert_str_eq(rows, "1,4\n");
    free(rows);
    sl_sqlite_pools(p, keep_stats, NULL);
    cr_assert_eq(stats.errors, 2);
}

Test(pool, a_lock_held_by_another_process_is_waited_out)
{
    add(SL_SQLITE_WRITE, 0, "CREATE TABLE t (x)");
    run_jobs();
    /* sqlite3 (another process) holds the write lock for 300 ms */
    char cmd[1200];
    snprintf(
        cmd, sizeof cmd,
        "(printf 'BEGIN IMMEDIATE;\\nINSERT INTO t VALUES (0);\\n.shell sleep 0.3\\nCOMMIT;\\n'"
        " | sqlite3 '%s') & sleep 0.1",
        dbpath);
    cr_assert_eq(system(cmd), 0);
    sl_pipeline_free(p);
    p = sl_pipeline_new(NULL, NULL, NULL);
    memset(jobs, 0, sizeof jobs);
    njobs = ndone = 0;
    add(SL_SQLITE_WRITE, 0, "INSERT INTO t VALUES (1)");
    run_jobs();
    cr_assert_eq(jobs[0].rc, 0, "%s", jobs[0].msg);
    sl_sqlite_pools(p, keep_stats, NULL);
    cr_assert_gt(stats.retries, 0, "the write met the lock and tried again");
    char *rows = t_sqlite(dbpath, "SELECT group_concat(x) FROM t");
    cr_assert_str_eq(rows, "0,1\n");
    free(rows);
}

Test(pool, a_statement_is_prepared_once_per_connection)
{
    opts.max_connections = 1;
    for (int i = 0; i < 3; i++) add(SL_SQLITE_READ, 0, "SELECT 1");
    run_jobs();
    cr_assert_not_null(jobs[0].stmt);
    cr_assert_eq(jobs[1].stmt, jobs[0].stmt);
    cr_assert_eq(jobs[2].stmt, jobs[0].stmt);
}
