/* Retries: the backoff's delays, and a sink that answers SL_RETRY, driven by the runtime
 * (the same batch offered again, before any other, counted once; backpressure meanwhile;
 * a limit on the attempts). */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "helpers.h"
#include "runtime/internal.h"

/* ---- the backoff ----------------------------------------------------------------------- */

/* Draws `n` delays for attempt `k` (from a backoff rewound to it each time) and checks
 * each lies in [0, ceiling]; returns how many distinct values came out. */
static int draws_within(struct sl_backoff *b, uint32_t k, int64_t ceiling, int n)
{
    int64_t first = -1;
    int distinct = 0;
    for (int i = 0; i < n; i++) {
        b->attempt = k;
        int64_t d = sl_backoff_next(b);
        cr_assert(d >= 0 && d <= ceiling, "attempt %u: %lld ms outside [0, %lld]", k, (long long)d,
                  (long long)ceiling);
        cr_assert_eq(b->attempt, k + 1, "a draw counts one attempt");
        if (i == 0) first = d;
        if (d != first) distinct = 2;
    }
    return distinct ? distinct : 1;
}

Test(backoff, is_spent_after_the_retries_asked_for_and_never_with_no_limit)
{
    struct sl_backoff b;
    sl_backoff_init(&b, 10, 1000);
    for (uint32_t k = 0; k < 3; k++) {
        cr_assert(!sl_backoff_spent(&b, 3), "spent after %u of 3 retries", k);
        sl_backoff_next(&b);
    }
    cr_assert(sl_backoff_spent(&b, 3));
    cr_assert(!sl_backoff_spent(&b, 0), "0 is no limit");
    sl_backoff_reset(&b);
    cr_assert(!sl_backoff_spent(&b, 3), "a reset starts the count again");
}

Test(backoff, each_attempt_draws_up_to_a_doubling_ceiling_capped_at_max)
{
    struct sl_backoff b;
    sl_backoff_init(&b, 10, 1000);
    cr_assert_eq(b.attempt, 0);
    const int64_t ceilings[] = {10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000};
    for (uint32_t k = 0; k < 10; k++)
        cr_assert_eq(draws_within(&b, k, ceilings[k], 1000), 2,
                     "attempt %u: 1000 draws, all equal (no jitter)", k);
}

Test(backoff, the_ceiling_reaches_max_and_stays_there_without_overflow)
{
    struct sl_backoff b;
    sl_backoff_init(&b, 100, 30000);
    int64_t most = 0;
    for (int i = 0; i < 200; i++) { /* 2^200 * 100 would overflow any integer */
        int64_t d = sl_backoff_next(&b);
        cr_assert(d >= 0 && d <= 30000, "draw %d: %lld ms", i, (long long)d);
        if (d > most) most = d;
    }
    cr_assert_eq(b.attempt, 200);
    cr_assert_gt(most, 15000, "200 draws capped at 30 s never passed 15 s: %lld", (long long)most);
    draws_within(&b, UINT32_MAX - 1, 30000, 100); /* the largest attempt numbers too */
    sl_backoff_init(&b, INT64_MAX / 2, INT64_MAX);
    draws_within(&b, 40, INT64_MAX, 100);
}

Test(backoff, reset_goes_back_to_the_first_ceiling)
{
    struct sl_backoff b;
    sl_backoff_init(&b, 4, 4096);
    for (int i = 0; i < 12; i++) sl_backoff_next(&b);
    cr_assert_eq(b.attempt, 12);
    sl_backoff_reset(&b);
    cr_assert_eq(b.attempt, 0);
    for (int i = 0; i < 1000; i++) {
        cr_assert_leq(sl_backoff_next(&b), 4);
        sl_backoff_reset(&b);
    }
}

Test(backoff, bounds_out_of_order_are_made_sane)
{
    struct sl_backoff b;
    sl_backoff_init(&b, 0, 0); /* at least 1 ms, and max never under initial */
    cr_assert_eq(b.initial_ms, 1);
    cr_assert_eq(b.max_ms, 1);
    sl_backoff_init(&b, 50, 10);
    cr_assert_eq(b.max_ms, 50);
    cr_assert_eq(draws_within(&b, 3, 50, 1000), 2);
}

Test(backoff, two_backoffs_made_together_draw_differently)
{
    struct sl_backoff a, b;
    sl_backoff_init(&a, 1000, 1000);
    sl_backoff_init(&b, 1000, 1000);
    int same = 0;
    for (int i = 0; i < 100; i++) same += sl_backoff_next(&a) == sl_backoff_next(&b);
    cr_assert_lt(same, 10, "%d of 100 draws equal: the two share their jitter", same);
}

/* ---- a sink that cannot write for a while ----------------------------------------------- */

#define MAX_OFFERS 64

/* Sink "flaky": refuses, with sl_retry(), the first `refuse` offers of the batch whose
 * first event is number `at`, then takes it; every other batch is taken at once, and
 * everything taken is acknowledged at once. It records each offer of that batch. */
struct flaky {
    int64_t at;                             /* option: first number of the refused batch */
    int64_t refuse;                         /* option: offers of it refused */
    bool stop;                              /* option: sl_pipeline_stop() at the first refusal */
    int64_t offers;                         /* offers of the refused batch */
    struct sl_batch *got[MAX_OFFERS];       /* the batch of each offer */
    const struct sl_event *ev0[MAX_OFFERS]; /* its first event, each offer */
    uint32_t queued[MAX_OFFERS];            /* batches in the sink's queue, each offer */
    uint64_t src_in[MAX_OFFERS];            /* events the source had produced, each offer */
    int64_t taken[4096];                    /* numbers taken, in order */
    size_t ntaken;                          /* entries */
    int64_t writes;                         /* write() calls */
    bool flushed_after_all;                 /* flush(end) came after the last batch was taken */
};

static struct sl_pipeline *p;
static struct sl_stage *src_stage; /* for the source's counters inside write() */

static const struct sl_option flaky_options[] = {
    {"at", SL_OPT_INT, "0", 0, offsetof(struct flaky, at), "first number of the refused batch"},
    {"refuse", SL_OPT_INT, "0", 0, offsetof(struct flaky, refuse), "offers refused"},
    {"stop", SL_OPT_BOOL, "false", 0, offsetof(struct flaky, stop), "stop at the first refusal"},
    {0},
};

static void note_offer(struct sl_stage *s, struct flaky *f, struct sl_batch *b)
{
    cr_assert_lt(f->offers, MAX_OFFERS);
    struct sl_stage_stats st = {.size = sizeof st}, src = {.size = sizeof src};
    sl_stage_stats(s, &st);
    sl_stage_stats(src_stage, &src);
    f->got[f->offers] = b;
    f->ev0[f->offers] = sl_batch_event_const(b, 0);
    f->queued[f->offers] = st.queue_batches;
    f->src_in[f->offers] = src.events_in;
    f->offers++;
}

static enum sl_poll flaky_write(struct sl_stage *s, struct sl_batch *b)
{
    struct flaky *f = sl_stage_state(s);
    f->writes++;
    int64_t first = t_number(sl_batch_event_const(b, 0));
    if (first == f->at) {
        note_offer(s, f, b);
        if (f->offers <= f->refuse) {
            if (f->stop && f->offers == 1) sl_pipeline_stop(p);
            return sl_retry(s, "cannot write batch %lld: device busy", (long long)first);
        }
    }
    for (size_t i = 0; i < sl_batch_count(b); i++) {
        cr_assert_lt(f->ntaken, 4096);
        f->taken[f->ntaken++] = t_number(sl_batch_event_const(b, i));
    }
    sl_ack(b);
    return SL_READY;
}

static int flaky_flush(struct sl_stage *s, struct sl_emit *out, bool end)
{
    (void)out;
    struct flaky *f = sl_stage_state(s);
    struct t_counter *c = sl_stage_state(src_stage);
    if (end) f->flushed_after_all = (int64_t)f->ntaken == c->next;
    return 0;
}

static const struct sl_stage_type flaky = {
    .abi = SL_STAGE_ABI,
    .name = "flaky",
    .kind = SL_SINK,
    .doc = "refuses one batch a few times",
    .state_size = sizeof(struct flaky),
    .options = flaky_options,
    .write = flaky_write,
    .flush = flaky_flush,
};

/* Log lines of the run, kept for the assertions. */
static char logged[64][600];
static enum sl_log_level logged_level[64];
static int nlogged;
static bool abort_on_warn; /* sl_pipeline_abort() at the first WARN line */

static void keep_log(void *arg, enum sl_log_level level, const char *stage, const char *msg)
{
    (void)arg;
    if (nlogged < 64) {
        snprintf(logged[nlogged], sizeof logged[nlogged], "%s: %s", stage ? stage : "-", msg);
        logged_level[nlogged++] = level;
    }
    if (abort_on_warn && level == SL_LOG_WARN) sl_pipeline_abort(p);
}

static void setup(void)
{
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.queue_max_batches = 4;
    o.log = keep_log;
    nlogged = 0;
    abort_on_warn = false;
    struct sl_error err = {0};
    p = sl_pipeline_new(NULL, &o, &err);
    cr_assert_not_null(p, "%s", err.msg);
}

static void teardown(void)
{
    sl_pipeline_free(p); /* also frees a batch still held for its retry (ASan checks) */
}

TestSuite(retry, .init = setup, .fini = teardown, .timeout = 30);

/* src (t_counter, `src_yaml`) -> out (flaky, `sink_yaml`). */
static struct flaky *build(const char *src_yaml, const char *sink_yaml)
{
    src_stage = t_add(p, "src", &t_counter, src_yaml);
    struct sl_stage *out = t_add(p, "out", &flaky, sink_yaml);
    t_connect(p, src_stage, out);
    return sl_stage_state(out);
}

static void run_ok(void)
{
    struct sl_error err = {0};
    int rc = sl_pipeline_run(p, &err);
    cr_assert_eq(rc, 0, "run: %s (stage %s)", err.msg, err.stage);
    cr_assert_eq(sl_pipeline_live_batches(p), 0, "batches leaked: %llu",
                 (unsigned long long)sl_pipeline_live_batches(p));
}

static struct sl_stage_stats stats_of(const char *name)
{
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(sl_pipeline_find(p, name), &st);
    return st;
}

static void assert_taken_once(const struct flaky *f, int64_t n)
{
    cr_assert_eq((int64_t)f->ntaken, n, "the sink took %zu events, expected %lld", f->ntaken,
                 (long long)n);
    for (int64_t i = 0; i < n; i++)
        cr_assert_eq(f->taken[i], i, "event %lld is %lld", (long long)i, (long long)f->taken[i]);
}

/* The log line starting with `prefix` (the first), or NULL. */
static const char *log_line(enum sl_log_level level, const char *prefix)
{
    for (int i = 0; i < nlogged; i++)
        if (logged_level[i] == level && strncmp(logged[i], prefix, strlen(prefix)) == 0)
            return logged[i];
    return NULL;
}

static int log_count(enum sl_log_level level)
{
    int n = 0;
    for (int i = 0; i < nlogged; i++) n += logged_level[i] == level;
    return n;
}

/* The delay of a WARN line "...; retrying in N ms (attempt K...)". */
static int64_t logged_delay(const char *line)
{
    const char *at = strstr(line, "; retrying in ");
    cr_assert_not_null(at, "not a retry line: %s", line);
    long long ms = -1;
    cr_assert_eq(sscanf(at, "; retrying in %lld ms", &ms), 1, "%s", line);
    return ms;
}

/* The batch is refused at 200 of 1000 (batch 21 of 100): the runtime holds it, the
 * source fills the sink's queue (4 batches) and stops, and after three delays the same
 * batch comes back before any other. */
Test(retry, a_refused_batch_comes_back_the_same_before_any_other_and_is_counted_once)
{
    struct flaky *f =
        build("count: 1000\nbatch: 10", "at: 200\nrefuse: 3\nretry: {initial: 5ms, max: 20ms}");
    run_ok();
    assert_taken_once(f, 1000);
    cr_assert_eq(f->offers, 4, "offered %lld times", (long long)f->offers);
    cr_assert_eq(f->writes, 100 + 3);
    for (int i = 1; i < 4; i++) {
        cr_assert_eq(f->got[i], f->got[0], "offer %d: another batch", i + 1);
        cr_assert_eq(f->ev0[i], f->ev0[0], "offer %d: other events", i + 1);
        cr_assert_eq(f->queued[i], 4, "offer %d: %u batches queued, expected a full queue", i + 1,
                     f->queued[i]);
        cr_assert_eq(f->src_in[i], f->src_in[1], "the source produced while the sink waited");
    }
    cr_assert_leq(f->src_in[3] - f->src_in[0], 40, "more than a queue's worth was produced");
    struct t_counter *c = sl_stage_state(src_stage);
    cr_assert_eq(c->polls_while_full, 0, "polled %lld times while full",
                 (long long)c->polls_while_full);
    cr_assert_eq(c->acked_events, 1000);
    cr_assert_not(c->ack_out_of_order);
    struct sl_stage_stats st = stats_of("out");
    cr_assert_eq(st.retries, 3);
    cr_assert_eq(st.events_in, 1000);
    cr_assert_eq(st.batches_in, 100);
    cr_assert_eq(st.bytes_in, stats_of("src").bytes_in);
    cr_assert_eq(st.acked, 1000);
    cr_assert_eq(st.errors, 0, "a retry is not an error of the runtime's");
}

Test(retry, each_failed_attempt_is_logged_with_the_reason_the_delay_and_the_attempt)
{
    build("count: 1000\nbatch: 10", "at: 200\nrefuse: 3\nretry: {initial: 5ms, max: 20ms}");
    run_ok();
    cr_assert_eq(log_count(SL_LOG_WARN), 3);
    const int64_t ceilings[] = {5, 10, 20};
    for (int k = 0; k < 3; k++) {
        char want[128];
        snprintf(want, sizeof want, "out: cannot write batch 200: device busy; retrying in ");
        const char *line = NULL;
        for (int i = 0, seen = 0; i < nlogged && !line; i++)
            if (logged_level[i] == SL_LOG_WARN && seen++ == k) line = logged[i];
        cr_assert_not_null(line);
        cr_assert(strncmp(line, want, strlen(want)) == 0, "%s", line);
        char tail[32];
        snprintf(tail, sizeof tail, " ms (attempt %d)", k + 2);
        cr_assert_str_eq(line + strlen(line) - strlen(tail), tail, "%s", line);
        int64_t d = logged_delay(line);
        cr_assert(d >= 0 && d <= ceilings[k], "%s: over %lld ms", line, (long long)ceilings[k]);
    }
    cr_assert_not_null(log_line(SL_LOG_INFO, "out: writing again after 3 failed attempts"));
}

Test(retry, a_sink_that_never_takes_the_batch_fails_the_run_after_retry_attempts)
{
    struct flaky *f =
        build("count: 10\nbatch: 10", "at: 0\nrefuse: 1000\nretry: {initial: 1ms, attempts: 3}");
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), SL_EIO);
    cr_assert_str_eq(err.stage, "out");
    cr_assert_str_eq(err.msg, "gave up after 3 attempts: cannot write batch 0: device busy");
    cr_assert_eq(f->offers, 3);
    cr_assert_eq(f->ntaken, 0);
    struct t_counter *c = sl_stage_state(src_stage);
    cr_assert_eq(c->acked_batches, 0, "the source was told the batch was delivered");
    cr_assert_eq(c->acked_events, 0);
    struct sl_stage_stats st = stats_of("out");
    cr_assert_eq(st.retries, 2, "three attempts, two of them retries");
    cr_assert_eq(st.events_in, 10);
    cr_assert_eq(st.batches_in, 1);
    cr_assert_eq(st.acked, 0);
    cr_assert_eq(log_count(SL_LOG_WARN), 2);
    cr_assert_not_null(strstr(log_line(SL_LOG_WARN, "out: "), "(attempt 2 of 3)"));
    cr_assert_not_null(
        log_line(SL_LOG_ERROR, "out: gave up after 3 attempts: cannot write batch 0: device busy"));
}

Test(retry, one_attempt_allowed_fails_at_the_first_refusal_without_retrying)
{
    struct flaky *f = build("count: 10\nbatch: 10", "at: 0\nrefuse: 1\nretry: {attempts: 1}");
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), SL_EIO);
    cr_assert_str_eq(err.msg, "gave up after 1 attempt: cannot write batch 0: device busy");
    cr_assert_eq(f->offers, 1);
    cr_assert_eq(stats_of("out").retries, 0);
    cr_assert_eq(log_count(SL_LOG_WARN), 0);
    cr_assert_eq(((struct t_counter *)sl_stage_state(src_stage))->acked_batches, 0);
}

Test(retry, twenty_retries_capped_at_4ms_end_quickly_and_leave_the_loop_idle)
{
    struct flaky *f =
        build("count: 50\nbatch: 10", "at: 0\nrefuse: 20\nretry: {initial: 1ms, max: 4ms}");
    int64_t t0 = sl__now_ns();
    run_ok();
    int64_t ms = (sl__now_ns() - t0) / 1000000;
    assert_taken_once(f, 50);
    cr_assert_eq(f->offers, 21);
    cr_assert_eq(stats_of("out").retries, 20);
    cr_assert_eq(log_count(SL_LOG_WARN), 20);
    for (int i = 0; i < nlogged; i++)
        if (logged_level[i] == SL_LOG_WARN)
            cr_assert_leq(logged_delay(logged[i]), 4, "%s", logged[i]);
    /* The delays add up to at most 1 + 2 + 18 * 4 = 75 ms. */
    cr_assert_lt(ms, 1000, "the run took %lld ms", (long long)ms);
    /* Waiting is sleeping in libevent: a round per timer, no spinning between them. */
    cr_assert_lt(p->rounds, 100, "%llu scheduler rounds", (unsigned long long)p->rounds);
}

Test(retry, a_refused_last_batch_holds_the_end_of_input_back)
{
    struct flaky *f = build("count: 30\nbatch: 10", "at: 20\nrefuse: 2\nretry: {initial: 2ms}");
    run_ok();
    assert_taken_once(f, 30);
    cr_assert(f->flushed_after_all, "flush(end) ran while the last batch waited for its retry");
    struct sl_stage_stats st = stats_of("out");
    cr_assert(st.finished);
    cr_assert_eq(st.retries, 2);
    cr_assert_eq(((struct t_counter *)sl_stage_state(src_stage))->acked_events, 30);
}

Test(retry, a_graceful_stop_keeps_retrying_until_the_batch_is_taken)
{
    struct flaky *f =
        build("count: 0\nbatch: 10", "at: 50\nrefuse: 3\nstop: true\nretry: {initial: 2ms}");
    run_ok();
    struct t_counter *c = sl_stage_state(src_stage);
    cr_assert_geq(c->next, 60);
    assert_taken_once(f, c->next);
    cr_assert_eq(c->acked_events, c->next, "the stop left events unacknowledged");
    cr_assert_eq(stats_of("out").retries, 3);
}

static int acks_seen;

static void count_ack(struct sl_stage *s, struct sl_batch *b)
{
    (void)s, (void)b;
    acks_seen++;
}

/* Aborts the run at the first retry line (the batch is held, its timer armed), then
 * frees the pipeline: nothing leaks (ASan), nothing is acknowledged. With `shared`, a
 * second sink reads the same batches, so the held batch is a view of its own. */
static void abort_while_held(bool shared)
{
    abort_on_warn = true;
    struct flaky *f = build("count: 100\nbatch: 10", "at: 30\nrefuse: 1000\nretry: {initial: 1s}");
    if (shared) t_connect(p, src_stage, t_add(p, "fast", &t_collect, NULL));
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), SL_ESTOPPED);
    cr_assert_str_eq(err.msg, "pipeline aborted");
    cr_assert_eq(f->offers, 1);
    assert_taken_once(f, 30);
    struct t_counter *c = sl_stage_state(src_stage);
    if (shared) /* as far as the other sink had come too */
        cr_assert_leq(c->acked_events, 30, "acked %lld", (long long)c->acked_events);
    else
        cr_assert_eq(c->acked_events, 30, "acked %lld", (long long)c->acked_events);
    cr_assert_gt(sl_pipeline_live_batches(p), 0);
    c->on_ack = count_ack;
    acks_seen = 0;
    sl_pipeline_free(p);
    p = NULL;
    cr_assert_eq(acks_seen, 0, "freeing the pipeline acknowledged the held batch");
}

Test(retry, an_abort_while_a_batch_waits_releases_it_unacknowledged)
{
    abort_while_held(false);
}

Test(retry, an_abort_while_a_shared_batch_waits_releases_its_view_unacknowledged)
{
    abort_while_held(true);
}

static struct flaky *slow_branch;

static void taken_before_acked(struct sl_stage *s, struct sl_batch *b)
{
    (void)s;
    int64_t last = (int64_t)sl_batch_cookie(b) + (int64_t)sl_batch_count(b) - 1;
    cr_assert_gt((int64_t)slow_branch->ntaken, last, "acked upstream before the retrying sink");
}

Test(retry, a_batch_shared_with_another_sink_is_retried_alone_and_acked_after_both)
{
    src_stage = t_add(p, "src", &t_counter, "count: 200\nbatch: 10");
    struct sl_stage *fast = t_add(p, "fast", &t_collect, NULL);
    struct sl_stage *out = t_add(p, "out", &flaky, "at: 40\nrefuse: 2\nretry: {initial: 2ms}");
    t_connect(p, src_stage, fast);
    t_connect(p, src_stage, out);
    struct t_counter *c = sl_stage_state(src_stage);
    slow_branch = sl_stage_state(out);
    c->on_ack = taken_before_acked;
    run_ok();
    assert_taken_once(slow_branch, 200);
    cr_assert_eq(((struct t_collect *)sl_stage_state(fast))->nseen, 200);
    cr_assert_eq(slow_branch->offers, 3);
    cr_assert_eq(slow_branch->got[1], slow_branch->got[0]);
    cr_assert_eq(slow_branch->got[2], slow_branch->got[0]);
    cr_assert_eq(c->acked_events, 200);
    cr_assert_not(c->ack_out_of_order);
    cr_assert_eq(c->polls_while_full, 0);
    cr_assert_eq(stats_of("out").retries, 2);
    cr_assert_eq(stats_of("fast").retries, 0);
}

/* A sink that never recovers cannot hold a stop forever: after shutdown_timeout the run
 * fails, naming how many events were left unacknowledged, and acknowledges none of them. */
Test(retry, a_stop_outlasting_shutdown_timeout_fails_and_names_what_is_left)
{
    sl_pipeline_free(p);
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.queue_max_batches = 4;
    o.shutdown_timeout_ms = 50;
    struct sl_error err = {0};
    p = sl_pipeline_new(NULL, &o, &err);
    struct flaky *f = build("count: 0\nbatch: 10", "at: 50\nrefuse: 100000\nstop: true\n"
                                                   "retry: {initial: 5ms, max: 5ms}");
    cr_assert_eq(sl_pipeline_run(p, &err), SL_ESTOPPED);
    struct sl_stage_stats src = stats_of("src");
    cr_assert_gt(src.events_in, src.acked);
    char want[300];
    snprintf(want, sizeof want,
             "stopping took longer than shutdown_timeout (50 ms): aborted with %llu events "
             "unacknowledged (the next run replays them)",
             (unsigned long long)(src.events_in - src.acked));
    cr_assert_str_eq(err.msg, want);
    cr_assert_eq(src.acked, 50, "everything before the refused batch, nothing after");
    cr_assert_geq(f->offers, 2, "it was retried while the stop waited");
}
