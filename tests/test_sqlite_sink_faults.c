/* The sqlite sink against its database: a batch is acknowledged only once its rows are
 * committed (visible to another process), the event loop keeps its pace while big
 * transactions commit, a database locked by another process past busy_timeout is
 * retried (SL_RETRY) until everything lands once, and a missing table or column fails
 * the run with SQLite's message. Real databases, checked with the sqlite3 CLI. */
#define _GNU_SOURCE /* pipe2 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
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
#include "helpers_sqlite_sink.h"

/* The loop's longest stretch of CPU while a descriptor was ready: 1-2 ms here with two
 * busy processes beside it; a 20,000-row transaction committed on the loop would take
 * about 90 ms. */
#if defined(__SANITIZE_ADDRESS__)
#define CPU_BOUND_US 40000
#else
#define CPU_BOUND_US 20000
#endif

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

TestSuite(sqlite_sink_faults, .init = setup, .fini = teardown, .timeout = 90);

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* CPU time of the calling thread, in microseconds. */
static int64_t cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static long sql_long(const char *sql)
{
    char *out = t_sqlite(db, sql);
    long n = strtol(out, NULL, 10);
    free(out);
    return n;
}

/* Builds source `type` (options `src`) -> sqlite sink "db" (options `sink_fmt`, %1$s =
 * dir) in p. Returns the sink; *s gets the source. */
static struct sl_stage *build(const struct sl_stage_type *type, const char *src,
                              const char *sink_fmt, struct sl_stage **s)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml, sink_fmt, dir);
    *s = t_add(p, "src", type, src);
    struct sl_stage *k = t_add(p, "db", &sl_stage_sqlite_sink, yaml);
    t_connect(p, *s, k);
    return k;
}

/* ---- acknowledged after COMMIT ------------------------------------------------------------ */

static int64_t worst_margin; /* rows visible minus rows acknowledged, at its smallest */
static int checks;

static void check_visible(struct sl_stage *s, struct sl_batch *b)
{
    (void)b;
    struct t_counter *c = sl_stage_state(s);
    int64_t margin = sql_long("SELECT count(*) FROM t;") - c->acked_events;
    if (!checks++ || margin < worst_margin) worst_margin = margin;
}

Test(sqlite_sink_faults, a_batch_is_acknowledged_only_after_its_rows_are_visible)
{
    struct sl_stage *s;
    build(&t_counter, "count: 20000\nbatch: 500",
          "path: %1$s/t.db\ntable: t\ncreate_table: true\ncolumns: [n]", &s);
    ((struct t_counter *)sl_stage_state(s))->on_ack = check_visible;
    checks = 0;
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "%s", err.msg);
    cr_assert_eq(checks, 40, "every batch acknowledged: %d", checks);
    cr_assert_geq(worst_margin, 0, "a batch was acknowledged %lld rows before they were visible",
                  (long long)-worst_margin);
    cr_assert_eq(sql_long("SELECT count(DISTINCT n) FROM t;"), 20000);
}

/* ---- the loop keeps its pace ----------------------------------------------------------------- */

/* Source "t_bulk": `count` rows, `batch` a batch, fields n (int), s (string), f (float),
 * and two probes of the loop:
 * - a 1 ms repeating timer recording the longest gap between firings. libevent reads
 *   CLOCK_MONOTONIC_COARSE for its timers (the runtime does not ask for precise timers),
 *   4 ms a step on this kernel, so while the loop is busy the timer fires every 4-8 ms
 *   however short the callbacks between: the gaps are that coarse;
 * - a pipe a helper thread writes a byte to every millisecond, read by the loop (a
 *   descriptor is looked at on every turn of the loop). Before writing, the helper reads
 *   the loop thread's CPU clock; the loop thread's CPU time from there to the read is the
 *   work the loop did while a descriptor was ready and not served. A helper starved of a
 *   core by a loaded machine only writes later: it never stretches the measure.
 * A gap that holds one of the source's own polls (building 20,000 events takes tens of
 * ms under the sanitizers) is the test source's, not the sink's: it is left out. Batches
 * of 20,000 rows: transactions that take tens of ms on the executor, while what the
 * runtime does per batch on the loop (releasing it) stays small. */
struct t_bulk {
    int64_t count, batch; /* options */
    int64_t next;
    struct sl_timer *tick;
    int64_t last_us, max_gap_us;    /* timer: wall clock */
    int64_t ticks, max_poll_cpu_us; /* firings; the longest poll (the source's own part) */
    int fds[2];                     /* the pipe */
    pthread_t writer;               /* writes a byte every millisecond */
    atomic_bool stop;               /* tells it to end */
    struct event *reader;           /* the loop's side */
    clockid_t loop_clock;           /* the loop thread's CPU clock */
    atomic_bool pending;            /* a byte is written and not yet read */
    _Atomic int64_t written_cpu;    /* the loop's CPU time when it was written */
    bool polled;                    /* the source's poll ran while it was pending */
    int64_t max_cpu_us;             /* the longest loop CPU from a write to its read */
};

static const struct sl_option bulk_options[] = {
    {"count", SL_OPT_INT, "200000", 0, offsetof(struct t_bulk, count), "rows"},
    {"batch", SL_OPT_INT, "20000", 0, offsetof(struct t_bulk, batch), "rows a batch"},
    {0},
};

static void bulk_tick(struct sl_stage *s, void *arg)
{
    (void)s;
    struct t_bulk *b = arg;
    int64_t now = now_us();
    if (b->last_us && now - b->last_us > b->max_gap_us) b->max_gap_us = now - b->last_us;
    b->last_us = now;
    b->ticks++;
}

static void *bulk_writer(void *arg)
{
    struct t_bulk *b = arg;
    while (!atomic_load(&b->stop)) {
        char c = 1;
        struct timespec ts;
        if (!atomic_load(&b->pending) && clock_gettime(b->loop_clock, &ts) == 0) {
            atomic_store(&b->written_cpu, (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
            atomic_store(&b->pending, true);
            cr_assert_eq(write(b->fds[1], &c, 1), 1);
        }
        usleep(1000);
    }
    return NULL;
}

static void bulk_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct t_bulk *b = arg;
    char buf[256];
    while (read(fd, buf, sizeof buf) > 0) continue;
    int64_t cpu = cpu_us() - atomic_load(&b->written_cpu);
    if (!b->polled && cpu > b->max_cpu_us) b->max_cpu_us = cpu;
    b->polled = false;
    atomic_store(&b->pending, false);
}

static int bulk_start(struct sl_stage *s, struct sl_error *err)
{
    (void)err;
    struct t_bulk *b = sl_stage_state(s);
    b->tick = sl_timer_new(s, bulk_tick, b);
    sl_timer_start(b->tick, 1, true);
    cr_assert_eq(pipe2(b->fds, O_NONBLOCK | O_CLOEXEC), 0);
    cr_assert_eq(pthread_getcpuclockid(pthread_self(), &b->loop_clock), 0);
    b->reader = event_new(sl_stage_event_base(s), b->fds[0], EV_READ | EV_PERSIST, bulk_read, b);
    event_add(b->reader, NULL);
    cr_assert_eq(pthread_create(&b->writer, NULL, bulk_writer, b), 0);
    return 0;
}

static enum sl_poll bulk_poll(struct sl_stage *s, struct sl_batch **out)
{
    static const char text[] = "a row of some forty bytes of plain text";
    struct t_bulk *b = sl_stage_state(s);
    if (b->next >= b->count) return SL_DONE;
    int64_t t0 = cpu_us();
    struct sl_batch *batch = sl_batch_new(s);
    for (int64_t i = 0; i < b->batch && b->next < b->count; i++, b->next++) {
        struct sl_event *ev = sl_batch_append(batch);
        struct sl_value n = sl_value_int(b->next), str = sl_value_string(text, sizeof text - 1),
                        f = sl_value_float((double)b->next / 8);
        sl_event_add_field(ev, "n", 1, &n);
        sl_event_add_field(ev, "s", 1, &str);
        sl_event_add_field(ev, "f", 1, &f);
    }
    if (cpu_us() - t0 > b->max_poll_cpu_us) b->max_poll_cpu_us = cpu_us() - t0;
    b->last_us = 0; /* the gaps holding this poll are the source's, not counted */
    b->polled = true;
    *out = batch;
    return SL_READY;
}

static void bulk_close(struct sl_stage *s)
{
    struct t_bulk *b = sl_stage_state(s);
    sl_timer_free(b->tick);
    if (!b->reader) return;
    atomic_store(&b->stop, true);
    pthread_join(b->writer, NULL);
    event_free(b->reader);
    close(b->fds[0]);
    close(b->fds[1]);
}

static const struct sl_stage_type t_bulk = {
    .abi = SL_STAGE_ABI,
    .name = "t_bulk",
    .kind = SL_SOURCE,
    .doc = "test source of many rows, with a loop-lag timer",
    .state_size = sizeof(struct t_bulk),
    .options = bulk_options,
    .start = bulk_start,
    .poll = bulk_poll,
    .close = bulk_close,
};

Test(sqlite_sink_faults, the_loop_is_never_held_while_big_transactions_commit)
{
    struct sl_stage *s;
    build(&t_bulk, "count: 200000\nbatch: 20000",
          "path: %1$s/t.db\ntable: t\ncreate_table: true\nkey: [n]\n"
          "columns: {n: {type: INTEGER}, s: {type: TEXT}, f: {type: REAL}, s2: upper(s)}",
          &s);
    struct sl_error err = {0};
    int64_t t0 = now_us();
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "%s", err.msg);
    int64_t took = now_us() - t0;
    struct t_bulk *b = sl_stage_state(s);
    cr_assert_eq(sql_long("SELECT count(*) FROM t;"), 200000);
    printf("loop lag: longest gap of a 1 ms timer %.1f ms wall (%lld firings); longest loop "
           "CPU while a pipe was ready %.1f ms; longest poll %.1f ms CPU; %.0f ms "
           "for 200,000 rows\n",
           b->max_gap_us / 1000.0, (long long)b->ticks, b->max_cpu_us / 1000.0,
           b->max_poll_cpu_us / 1000.0, took / 1000.0);
    /* The loop's own work without serving a ready descriptor (its CPU time: what the sink
     * controls) stays under 20 ms (40 ms under the sanitizers, which make it 3-5 times
     * slower), well below the ~90 ms of a transaction of one batch. The timer's wall-clock gap adds
     * the time the loop thread waited for a core on this shared machine (15-130 ms seen at loads of
     * 5-7 on 2 cores): printed, not asserted, as it measures the machine rather than the sink. */
    cr_assert_lt(b->max_cpu_us, CPU_BOUND_US, "the loop worked %.1f ms without a break",
                 b->max_cpu_us / 1000.0);
}

/* ---- a locked database ----------------------------------------------------------------------- */

/* Starts the sqlite3 CLI holding the write lock of the database for `secs`; returns once
 * it holds it. */
static pid_t lock_database(const char *secs)
{
    char *marker = t_path(dir, "locked");
    char touch[600], sleep_cmd[64];
    snprintf(touch, sizeof touch, ".shell touch %s", marker);
    snprintf(sleep_cmd, sizeof sleep_cmd, ".shell sleep %s", secs);
    pid_t pid = t_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        execlp("sqlite3", "sqlite3", db, "BEGIN IMMEDIATE;", touch, sleep_cmd, "ROLLBACK;",
               (char *)NULL);
        _exit(127);
    }
    struct stat st;
    for (int i = 0; i < 5000 && stat(marker, &st) != 0; i++) usleep(1000);
    cr_assert_eq(stat(marker, &st), 0, "the sqlite3 CLI did not take the lock");
    free(marker);
    return pid;
}

Test(sqlite_sink_faults, a_database_locked_past_busy_timeout_is_retried_and_everything_lands_once)
{
    char *out = t_sqlite(db, "PRAGMA journal_mode=WAL; CREATE TABLE t (n INTEGER);");
    free(out);
    pid_t cli = lock_database("1.5");
    struct sl_stage *s;
    struct sl_stage *k = build(&t_counter, "count: 3000\nbatch: 100",
                               "path: %1$s/t.db\ntable: t\ncolumns: [n]\n"
                               "pool: {busy_timeout: 100ms}\nretry: {initial: 20ms, max: 200ms}",
                               &s);
    struct sl_error err = {0};
    int64_t t0 = now_us();
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "%s", err.msg);
    int64_t took = now_us() - t0;
    int status;
    cr_assert_eq(waitpid(cli, &status, 0), cli);
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(k, &st);
    cr_assert_gt(st.retries, 0, "no SL_RETRY while the database was locked");
    cr_assert_gt(took, 1000000, "the run ended while the lock was held (%lld us)", (long long)took);
    cr_assert_eq(st.acked, 3000);
    cr_assert_eq(sql_long("SELECT count(*) FROM t;"), 3000, "each row once");
    cr_assert_eq(sql_long("SELECT count(DISTINCT n) FROM t;"), 3000);
    cr_log_info("locked 1.5 s: %llu retries, run %.2f s", (unsigned long long)st.retries,
                took / 1e6);
}

/* ---- failures that would not pass ------------------------------------------------------------ */

static void assert_fails(const char *sink_fmt, const char *want)
{
    struct sl_stage *s;
    t_jsonl_count = 0; /* no rows at all: the check at start fails the run */
    build(&t_jsonl, NULL, sink_fmt, &s);
    struct sl_error err = {0};
    cr_assert_neq(sl_pipeline_run(p, &err), 0, "the run succeeded");
    cr_assert_str_eq(err.stage, "db");
    char full[1024];
    snprintf(full, sizeof full, want, db);
    cr_assert_str_eq(err.msg, full);
}

Test(sqlite_sink_faults, a_missing_table_fails_the_run_at_start_with_sqlites_message)
{
    assert_fails("path: %1$s/t.db\ntable: logs\ncolumns: [a, b]",
                 "cannot write to %s: no such table: logs (in: INSERT INTO \"logs\" (\"a\", "
                 "\"b\") VALUES (?1, ?2))");
}

Test(sqlite_sink_faults, a_missing_column_fails_the_run_with_sqlites_message)
{
    char *out = t_sqlite(db, "CREATE TABLE logs (a TEXT);");
    free(out);
    assert_fails("path: %1$s/t.db\ntable: logs\ncolumns: [a, b]",
                 "cannot write to %s: table logs has no column named b (in: INSERT INTO "
                 "\"logs\" (\"a\", \"b\") VALUES (?1, ?2))");
}

Test(sqlite_sink_faults, an_upsert_key_without_a_unique_index_fails_the_run)
{
    char *out = t_sqlite(db, "CREATE TABLE logs (a TEXT, b TEXT);");
    free(out);
    assert_fails("path: %1$s/t.db\ntable: logs\ncolumns: [a, b]\nmode: upsert\nkey: a",
                 "cannot write to %s: ON CONFLICT clause does not match any PRIMARY KEY or "
                 "UNIQUE constraint (in: INSERT INTO \"logs\" (\"a\", \"b\") VALUES (?1, ?2) ON "
                 "CONFLICT (\"a\") DO UPDATE SET \"b\" = excluded.\"b\")");
}
