/* Asynchronous transforms (map_async): results in input order or as they finish,
 * max_in_flight as backpressure, calls finished from other threads, per-event failures
 * through on_error, and the end of input waiting for everything in flight. Also the
 * rule for every stage: work submitted with sl_stage_submit() holds the end of input. */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "helpers.h"

/* ---- t_lookup: an async transform whose calls finish later, in reverse order ------------- */

/* Calls are held and finished by a timer tick (every `tick_ms`), newest first, so that
 * finishing order is the reverse of starting order. `mode` says how each finishes:
 * 0 sets field "twice" = 2n and passes it on; 1 also drops multiples of 5 and fails
 * multiples of 7 (sl_async_fail); 2 never finishes (a stuck service); 3 finishes on an
 * executor thread (sl_stage_submit's work), without changing the event. */
struct t_lookup {
    int64_t tick_ms;         /* option */
    int64_t mode;            /* option */
    struct sl_async **held;  /* calls started, not finished yet */
    struct sl_event **evs;   /* their events */
    size_t nheld, cap;       /* used / allocated */
    int64_t open, peak_open; /* calls started and not finished; the most at once */
    int64_t started;         /* calls started */
    int64_t flushes;         /* flush(end) calls */
    int64_t open_at_flush;   /* calls open when flush(end) came (must be 0) */
    struct sl_timer *timer;  /* the tick */
};

static void finish_one(struct t_lookup *t, struct sl_async *c, struct sl_event *ev)
{
    int64_t n = t_number(ev);
    t->open--;
    if (t->mode == 1 && n % 7 == 0) {
        sl_async_fail(c, SL_ENOTFOUND, "no row for %lld", (long long)n);
        return;
    }
    if (t->mode == 1 && n % 5 == 0) {
        sl_async_done(c, SL_ASYNC_DROP);
        return;
    }
    struct sl_value v = sl_value_int(2 * n);
    cr_assert_eq(sl_event_set(ev, "twice", 5, &v), 0);
    sl_async_done(c, SL_ASYNC_OK);
}

static void tick(struct sl_stage *s, void *arg)
{
    struct t_lookup *t = arg;
    (void)s;
    while (t->nheld) { /* newest first */
        t->nheld--;
        finish_one(t, t->held[t->nheld], t->evs[t->nheld]);
    }
}

static void finish_on_thread(void *arg)
{
    sl_async_done(arg, SL_ASYNC_OK); /* any thread may finish a call */
}

static void thread_done(struct sl_stage *s, void *arg)
{
    (void)arg;
    ((struct t_lookup *)sl_stage_state(s))->open--;
}

static int lookup_call(struct sl_stage *s, struct sl_event *ev, struct sl_async *call)
{
    struct t_lookup *t = sl_stage_state(s);
    cr_assert_eq(sl_async_stage(call), s);
    t->started++;
    if (++t->open > t->peak_open) t->peak_open = t->open;
    if (t->mode == 3) return sl_stage_submit(s, finish_on_thread, thread_done, call);
    if (t->mode == 2) return 0; /* never finishes */
    if (t->nheld == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->held = realloc(t->held, t->cap * sizeof *t->held);
        t->evs = realloc(t->evs, t->cap * sizeof *t->evs);
    }
    t->held[t->nheld] = call;
    t->evs[t->nheld++] = ev;
    sl_timer_start(t->timer, t->tick_ms, false);
    return 0;
}

static int lookup_flush(struct sl_stage *s, struct sl_emit *emit, bool end)
{
    (void)emit;
    struct t_lookup *t = sl_stage_state(s);
    if (end) {
        t->flushes++;
        t->open_at_flush = t->open;
    }
    return 0;
}

static int lookup_start(struct sl_stage *s, struct sl_error *err)
{
    struct t_lookup *t = sl_stage_state(s);
    t->timer = sl_timer_new(s, tick, t);
    return t->timer ? 0 : sl_error_set(err, SL_ENOMEM, "no timer");
}

static void lookup_close(struct sl_stage *s)
{
    struct t_lookup *t = sl_stage_state(s);
    tick(s, t); /* a stage finishes its calls before close() returns */
    sl_timer_free(t->timer);
    free(t->held);
    free(t->evs);
}

static const struct sl_option lookup_options[] = {
    {"tick_ms", SL_OPT_INT, "1", 0, offsetof(struct t_lookup, tick_ms), "finish calls this often"},
    {"mode", SL_OPT_INT, "0", 0, offsetof(struct t_lookup, mode), "how calls finish"},
    {0},
};

static const struct sl_stage_type t_lookup = {
    .abi = SL_STAGE_ABI,
    .name = "t_lookup",
    .kind = SL_TRANSFORM,
    .doc = "test async transform: finishes its calls later, newest first",
    .state_size = sizeof(struct t_lookup),
    .options = lookup_options,
    .start = lookup_start,
    .map_async = lookup_call,
    .flush = lookup_flush,
    .close = lookup_close,
};

/* ---- a pipeline counter -> t_lookup -> t_collect ------------------------------------------ */

static struct sl_pipeline *p;
static struct sl_stage *src, *look, *out, *dead;

static void build(int64_t count, const char *lookup_yaml)
{
    struct sl_error err = {0};
    p = sl_pipeline_new(NULL, NULL, &err);
    cr_assert_not_null(p, "%s", err.msg);
    char yaml[128];
    snprintf(yaml, sizeof yaml, "count: %lld\nbatch: 10\n", (long long)count);
    src = t_add(p, "src", &t_counter, yaml);
    look = t_add(p, "look", &t_lookup, lookup_yaml);
    out = t_add(p, "out", &t_collect, NULL);
    t_connect(p, src, look);
    t_connect(p, look, out);
    dead = NULL;
    if (sl_stage_output(look, "dead_letter") > 0) {
        dead = t_add(p, "dead", &t_collect, NULL);
        cr_assert_eq(sl_pipeline_connect(p, look, "dead_letter", dead, &err), 0, "%s", err.msg);
    }
}

static void teardown(void)
{
    sl_pipeline_free(p);
    p = NULL;
}

TestSuite(async, .fini = teardown, .timeout = 30);

static struct t_collect *collected(struct sl_stage *s)
{
    return sl_stage_state(s);
}

Test(async, results_leave_in_input_order_although_calls_finish_in_reverse)
{
    build(1000, "tick_ms: 1\n");
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "%s", err.msg);
    struct t_collect *c = collected(out);
    cr_assert_eq(c->nseen, 1000);
    for (size_t i = 0; i < 1000; i++) cr_assert_eq(c->seen[i], (int64_t)i, "at %zu", i);
    struct t_counter *k = sl_stage_state(src);
    cr_assert_eq(k->acked_events, 1000);
    cr_assert_not(k->ack_out_of_order);
    struct t_lookup *t = sl_stage_state(look);
    cr_assert_eq(t->started, 1000);
    cr_assert_eq(t->peak_open, 100, "max_in_flight defaults to 100, and is reached");
}

Test(async, unordered_results_leave_as_they_finish_each_exactly_once)
{
    build(1000, "ordered: false\nmax_in_flight: 16\n");
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "%s", err.msg);
    struct t_collect *c = collected(out);
    cr_assert_eq(c->nseen, 1000);
    int *seen = calloc(1000, sizeof *seen);
    size_t inversions = 0;
    for (size_t i = 0; i < 1000; i++) {
        cr_assert(c->seen[i] >= 0 && c->seen[i] < 1000);
        seen[c->seen[i]]++;
        if (i && c->seen[i] < c->seen[i - 1]) inversions++;
    }
    for (size_t i = 0; i < 1000; i++) cr_assert_eq(seen[i], 1, "%zu seen %d times", i, seen[i]);
    free(seen);
    cr_assert_gt(inversions, 0, "calls finishing newest first come out of input order");
}

Test(async, max_in_flight_bounds_the_open_calls_and_holds_the_source_back)
{
    build(700, "max_in_flight: 7\n");
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "%s", err.msg);
    struct t_lookup *t = sl_stage_state(look);
    cr_assert_eq(t->peak_open, 7);
    cr_assert_eq(collected(out)->nseen, 700);
    struct t_counter *k = sl_stage_state(src);
    cr_assert_eq(k->polls_while_full, 0, "a source is never polled into a full queue");
}

/* A sink that checks field "twice" of every event and acknowledges at once. */
static int64_t twice_ok, twice_bad;

static enum sl_poll twice_write(struct sl_stage *s, struct sl_batch *b)
{
    (void)s;
    for (size_t i = 0; i < sl_batch_count(b); i++) {
        const struct sl_event *ev = sl_batch_event_const(b, i);
        struct sl_value v;
        bool ok = sl_event_get(ev, "twice", 5, &v) == 0 && sl_value_number(&v) == 0 &&
                  v.type == SL_INT && v.i == 2 * t_number(ev);
        ok ? twice_ok++ : twice_bad++;
    }
    sl_ack(b);
    return SL_READY;
}

static const struct sl_stage_type t_twice = {
    .abi = SL_STAGE_ABI,
    .name = "t_twice",
    .kind = SL_SINK,
    .doc = "checks field twice",
    .write = twice_write,
};

Test(async, fields_the_stage_sets_on_the_loop_travel_downstream)
{
    struct sl_error err = {0};
    p = sl_pipeline_new(NULL, NULL, &err);
    src = t_add(p, "src", &t_counter, "count: 500\nbatch: 64\n");
    look = t_add(p, "look", &t_lookup, NULL);
    struct sl_stage *chk = t_add(p, "chk", &t_twice, NULL);
    t_connect(p, src, look);
    t_connect(p, look, chk);
    twice_ok = twice_bad = 0;
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "%s", err.msg);
    cr_assert_eq(twice_ok, 500);
    cr_assert_eq(twice_bad, 0);
}

Test(async, calls_finished_on_other_threads_arrive_once_and_in_order)
{
    build(500, "mode: 3\nmax_in_flight: 32\n");
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "%s", err.msg);
    struct t_collect *c = collected(out);
    cr_assert_eq(c->nseen, 500);
    for (size_t i = 0; i < 500; i++) cr_assert_eq(c->seen[i], (int64_t)i);
    cr_assert_eq(((struct t_lookup *)sl_stage_state(look))->open, 0);
}

Test(async, dropped_and_failed_events_are_counted_and_failures_dead_lettered)
{
    build(100, "mode: 1\non_error: dead_letter\n");
    cr_assert_not_null(dead, "on_error: dead_letter declares the output");
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "%s", err.msg);
    /* 0..99: multiples of 7 fail (15 of them), other multiples of 5 are dropped (17). */
    struct t_collect *c = collected(out), *d = collected(dead);
    cr_assert_eq(d->nseen, 15);
    for (size_t i = 0; i < d->nseen; i++) cr_assert_eq(d->seen[i], (int64_t)(7 * i));
    cr_assert_eq(c->nseen, 100 - 15 - 17);
    for (size_t i = 0; i < c->nseen; i++)
        cr_assert(c->seen[i] % 7 != 0 && c->seen[i] % 5 != 0, "%lld", (long long)c->seen[i]);
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(look, &st);
    cr_assert_eq(st.errors, 15);
    cr_assert_eq(st.dropped, 17);
    cr_assert_eq(((struct t_counter *)sl_stage_state(src))->acked_events, 100);
}

Test(async, a_failure_with_on_error_fail_stops_the_run_and_acknowledges_nothing_after)
{
    build(100, "mode: 1\non_error: fail\n");
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), SL_ENOTFOUND);
    cr_assert_str_eq(err.stage, "look");
    cr_assert_str_eq(err.msg, "no row for 0");
    cr_assert_eq(((struct t_counter *)sl_stage_state(src))->acked_events, 0);
}

Test(async, the_end_of_input_waits_for_every_call_and_flush_comes_after)
{
    build(300, "tick_ms: 20\nmax_in_flight: 1000\n");
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "%s", err.msg);
    struct t_lookup *t = sl_stage_state(look);
    cr_assert_eq(t->flushes, 1);
    cr_assert_eq(t->open_at_flush, 0, "flush(end) came with calls open");
    cr_assert_eq(collected(out)->nseen, 300);
}

Test(async, a_stop_drains_what_is_in_flight)
{
    build(0, "tick_ms: 5\n"); /* an endless source */
    struct t_collect *c = collected(out);
    c->stop_after = 0;
    struct sl_stage_stats st = {.size = sizeof st};
    /* stop from the sink's side once 500 events went through: t_collect raises SIGTERM */
    sl_pipeline_catch_signals(p, NULL, NULL);
    c->stop_after = 500;
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "%s", err.msg);
    sl_stage_stats(src, &st);
    cr_assert_eq(c->nseen, st.events_in, "everything produced was delivered");
    cr_assert_eq(((struct t_counter *)sl_stage_state(src))->acked_events, (int64_t)st.events_in);
}

static void stop_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    sl_pipeline_stop(arg);
}

Test(async, a_stop_that_outlasts_shutdown_timeout_aborts_unacknowledged)
{
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.shutdown_timeout_ms = 50;
    struct sl_error err = {0};
    p = sl_pipeline_new(NULL, &o, &err);
    src = t_add(p, "src", &t_counter, "count: 20\nbatch: 10\n");
    look = t_add(p, "look", &t_lookup, "mode: 2\n"); /* calls never finish */
    out = t_add(p, "out", &t_collect, NULL);
    t_connect(p, src, look);
    t_connect(p, look, out);
    struct timeval after = {0, 20000}; /* once the calls are open */
    event_base_once(sl_pipeline_event_base(p), -1, EV_TIMEOUT, stop_later, p, &after);
    cr_assert_eq(sl_pipeline_run(p, &err), SL_ESTOPPED);
    cr_assert_str_eq(err.msg, "stopping took longer than shutdown_timeout (50 ms): aborted with "
                              "20 events unacknowledged (the next run replays them)");
    cr_assert_eq(((struct t_counter *)sl_stage_state(src))->acked_events, 0);
    cr_assert_eq(collected(out)->nseen, 0);
}

/* ---- submitted work holds the end of input, for any transform ---------------------------- */

/* A map() transform that looks each event up on an executor thread and emits the
 * results from flush() when the lookups come back: the pattern a user writes by hand. */
struct t_byhand {
    struct sl_event **ready; /* events whose lookup came back */
    size_t nready, cap;
    int64_t submitted, returned;
};

struct byhand_job {
    struct sl_stage *s;
    int64_t n;
    int64_t result;
};

static void byhand_work(void *arg)
{
    struct byhand_job *j = arg;
    j->result = j->n * 3;
}

static void byhand_done(struct sl_stage *s, void *arg)
{
    struct t_byhand *h = sl_stage_state(s);
    h->returned++;
    free(arg);
    sl_stage_wake(s); /* flush(end = false) emits what came back */
}

static int byhand_map(struct sl_stage *s, struct sl_event *ev, struct sl_emit *emit)
{
    struct t_byhand *h = sl_stage_state(s);
    struct byhand_job *j = malloc(sizeof *j);
    *j = (struct byhand_job){.s = s, .n = t_number(ev)};
    h->submitted++;
    cr_assert_eq(sl_stage_submit(s, byhand_work, byhand_done, j), 0);
    return sl_emit(emit, ev); /* passes the event on; the lookup result is counted */
}

static int byhand_flush(struct sl_stage *s, struct sl_emit *emit, bool end)
{
    (void)emit;
    struct t_byhand *h = sl_stage_state(s);
    if (end) cr_assert_eq(h->returned, h->submitted, "flush(end) with lookups in flight");
    return 0;
}

static const struct sl_stage_type t_byhand = {
    .abi = SL_STAGE_ABI,
    .name = "t_byhand",
    .kind = SL_TRANSFORM,
    .doc = "submits a lookup per event",
    .state_size = sizeof(struct t_byhand),
    .map = byhand_map,
    .flush = byhand_flush,
};

Test(async, submitted_work_delays_the_end_of_input_of_any_transform)
{
    struct sl_error err = {0};
    p = sl_pipeline_new(NULL, NULL, &err);
    src = t_add(p, "src", &t_counter, "count: 2000\nbatch: 100\n");
    struct sl_stage *h = t_add(p, "byhand", &t_byhand, NULL);
    out = t_add(p, "out", &t_collect, NULL);
    t_connect(p, src, h);
    t_connect(p, h, out);
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "%s", err.msg);
    struct t_byhand *b = sl_stage_state(h);
    cr_assert_eq(b->submitted, 2000);
    cr_assert_eq(b->returned, 2000);
    cr_assert_eq(collected(out)->nseen, 2000);
}

/* ---- config --------------------------------------------------------------------------------- */

Test(async, max_in_flight_and_ordered_belong_to_async_transforms)
{
    struct sl_error err = {0};
    p = sl_pipeline_new(NULL, NULL, &err);
    struct sl_config *cfg = t_config("max_in_flight: 4\n");
    cr_assert_null(sl_pipeline_add(p, "pass", &t_pass, cfg, &err));
    sl_config_free(cfg);
    cr_assert_str_eq(err.msg, "'max_in_flight' applies to asynchronous transforms; 't_pass' is "
                              "not one");
    cfg = t_config("workers: 2\n");
    cr_assert_null(sl_pipeline_add(p, "look", &t_lookup, cfg, &err));
    sl_config_free(cfg);
    cr_assert_str_eq(err.msg,
                     "type 't_lookup' is asynchronous: it takes max_in_flight, not workers");
    cfg = t_config("max_in_flight: 0\n");
    cr_assert_null(sl_pipeline_add(p, "look", &t_lookup, cfg, &err));
    sl_config_free(cfg);
    cr_assert_str_eq(err.msg, "option 'max_in_flight' must be from 1 to 65536; found '0'");
}
