/* The scheduler: backpressure, fan-out, fan-in, end of stream, failures, signals,
 * cross-thread wakeups. Each test runs the loop to its end and then checks counts. */
#include <criterion/criterion.h>
#include <time.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "helpers.h"
#include "runtime/internal.h"

static struct sl_pipeline *p;

static void setup(void)
{
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.queue_max_batches = 4;
    o.queue_max_bytes = 1 << 20;
    struct sl_error err = {0};
    p = sl_pipeline_new(NULL, &o, &err);
    cr_assert_not_null(p, "%s", err.msg);
}

static void teardown(void)
{
    sl_pipeline_free(p);
}

TestSuite(sched, .init = setup, .fini = teardown, .timeout = 30);

static void run_ok(void)
{
    struct sl_error err = {0};
    int rc = sl_pipeline_run(p, &err);
    cr_assert_eq(rc, 0, "run: %s (stage %s)", err.msg, err.stage);
    cr_assert_eq(sl_pipeline_live_batches(p), 0, "batches leaked: %llu",
                 (unsigned long long)sl_pipeline_live_batches(p));
}

static void assert_sequence(const struct t_collect *c, int64_t n, int64_t step)
{
    cr_assert_eq((int64_t)c->nseen, n, "sink saw %zu events, expected %lld", c->nseen,
                 (long long)n);
    for (int64_t i = 0; i < n; i++)
        cr_assert_eq(c->seen[i], i * step, "event %lld is %lld", (long long)i,
                     (long long)c->seen[i]);
}

Test(sched, end_of_stream_delivers_every_event_once)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 10000\nbatch: 64");
    struct sl_stage *pass = t_add(p, "pass", &t_pass, NULL);
    struct sl_stage *even = t_add(p, "even", &t_even, NULL);
    struct sl_stage *out = t_add(p, "out", &t_collect, NULL);
    t_connect(p, src, pass);
    t_connect(p, pass, even);
    t_connect(p, even, out);
    run_ok();
    struct t_collect *c = sl_stage_state(out);
    assert_sequence(c, 5000, 2);
    cr_assert(c->flushed);
    struct t_counter *s = sl_stage_state(src);
    cr_assert_eq(s->acked_events, 10000);
    cr_assert_not(s->ack_out_of_order);
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(even, &st);
    cr_assert_eq(st.events_in, 10000);
    cr_assert_eq(st.events_out, 5000);
    sl_stage_stats(out, &st);
    cr_assert_eq(st.acked, 5000);
    cr_assert(st.finished);
}

Test(sched, fast_source_into_slow_sink_is_never_polled_while_full)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 2000\nbatch: 10");
    struct sl_stage *out = t_add(p, "out", &t_collect, "delay_ms: 1");
    t_connect(p, src, out);
    run_ok();
    struct t_counter *s = sl_stage_state(src);
    struct t_collect *c = sl_stage_state(out);
    assert_sequence(c, 2000, 1);
    cr_assert_eq(s->polls_while_full, 0, "polled %lld times while full",
                 (long long)s->polls_while_full);
    /* 200 batches went through a queue of 4: the source must have waited. Live batches
     * never exceeded the queue, the one the sink holds, and the one being made. */
    cr_assert_leq(sl_pipeline_peak_batches(p), 4 + 1 + 1, "peak %llu batches",
                  (unsigned long long)sl_pipeline_peak_batches(p));
    cr_assert_eq(c->max_outstanding, 1);
}

Test(sched, memory_stays_bounded_whatever_the_input_size)
{
    /* 200k events through a slow-ish chain: live batches bounded by queue capacities. */
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 200000\nbatch: 100");
    struct sl_stage *pass = t_add(p, "pass", &t_pass, "spin: 20");
    struct sl_stage *out = t_add(p, "out", &t_collect, NULL);
    t_connect(p, src, pass);
    t_connect(p, pass, out);
    run_ok();
    assert_sequence(sl_stage_state(out), 200000, 1);
    /* Two queues of 4, each transform output holding its input: at most 2 * (4 + 1)
     * source batches plus their derived batches. */
    cr_assert_leq(sl_pipeline_peak_batches(p), 24, "peak %llu batches",
                  (unsigned long long)sl_pipeline_peak_batches(p));
    int64_t peak;
    sl_pipeline_memory(p, NULL, &peak);
    cr_assert_lt(peak, 16 << 20, "batch memory peaked at %lld bytes", (long long)peak);
}

static struct t_collect *slow_seen;

static void check_slow_saw_it(struct sl_stage *s, struct sl_batch *b)
{
    (void)s;
    int64_t last = (int64_t)sl_batch_cookie(b) + (int64_t)sl_batch_count(b) - 1;
    cr_assert_gt((int64_t)slow_seen->acked, last, "acked upstream before the slow sink");
}

Test(sched, fan_out_with_a_slow_branch_delivers_all_to_both)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 3000\nbatch: 50");
    struct sl_stage *fast = t_add(p, "fast", &t_collect, NULL);
    struct sl_stage *slow = t_add(p, "slow", &t_collect, "delay_ms: 1");
    t_connect(p, src, fast);
    t_connect(p, src, slow);
    struct t_counter *s = sl_stage_state(src);
    slow_seen = sl_stage_state(slow);
    s->on_ack = check_slow_saw_it;
    run_ok();
    assert_sequence(sl_stage_state(fast), 3000, 1);
    assert_sequence(sl_stage_state(slow), 3000, 1);
    cr_assert_eq(s->acked_events, 3000);
    cr_assert_eq(s->polls_while_full, 0);
}

Test(sched, fan_in_from_three_sources_is_fair_and_complete)
{
    struct sl_stage *a = t_add(p, "a", &t_counter, "count: 1000\nbatch: 10");
    struct sl_stage *b = t_add(p, "b", &t_counter, "count: 1000\nbatch: 10");
    struct sl_stage *c = t_add(p, "c", &t_counter, "count: 1000\nbatch: 10");
    struct sl_stage *out = t_add(p, "out", &t_collect, "delay_ms: 1");
    t_connect(p, a, out);
    t_connect(p, b, out);
    t_connect(p, c, out);
    run_ok();
    struct t_collect *col = sl_stage_state(out);
    cr_assert_eq(col->nseen, 3000);
    int64_t next[3] = {0, 0, 0};
    int first_batches[3] = {0, 0, 0};
    for (size_t i = 0; i < col->nseen; i++) {
        int k = col->origins[i][0] - 'a';
        cr_assert(k >= 0 && k < 3, "origin %s", col->origins[i]);
        cr_assert_eq(col->seen[i], next[k]++, "source %c out of order", 'a' + k);
        if (i < 60) first_batches[k]++;
    }
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(next[k], 1000);
        cr_assert_geq(first_batches[k], 10, "source %c starved in the first 6 batches", 'a' + k);
    }
}

Test(sched, failing_stage_stops_the_run_with_its_name)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 0\nbatch: 10");
    struct sl_stage *bad = t_add(p, "bad_parser", &t_pass, "fail_at: 777");
    struct sl_stage *out = t_add(p, "out", &t_collect, NULL);
    t_connect(p, src, bad);
    t_connect(p, bad, out);
    struct sl_error err = {0};
    int rc = sl_pipeline_run(p, &err);
    cr_assert_eq(rc, SL_EPARSE);
    cr_assert_str_eq(err.stage, "bad_parser");
    cr_assert_str_eq(err.msg, "bad event 777");
    char buf[256];
    cr_assert_str_eq(sl_error_format(&err, buf, sizeof buf), "stage 'bad_parser': bad event 777");
    /* Nothing after the failing batch was acknowledged upstream. */
    struct t_counter *s = sl_stage_state(src);
    cr_assert_leq(s->acked_events, 770);
}

Test(sched, failing_sink_stops_the_run)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 100\nbatch: 10");
    struct sl_stage *out = t_add(p, "disk", &t_collect, "fail_at: 42");
    t_connect(p, src, out);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), SL_EIO);
    cr_assert_str_eq(err.stage, "disk");
    cr_assert_str_eq(err.msg, "cannot write event 42");
    struct t_counter *s = sl_stage_state(src);
    cr_assert_eq(s->acked_events, 40, "acked %lld", (long long)s->acked_events);
}

Test(sched, sigterm_in_the_middle_drains_and_acks_what_was_written)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 0\nbatch: 10");
    struct sl_stage *pass = t_add(p, "pass", &t_pass, NULL);
    struct sl_stage *out = t_add(p, "out", &t_collect, "stop_after: 5000\ndelay_ms: 0");
    t_connect(p, src, pass);
    t_connect(p, pass, out);
    cr_assert_eq(sl_pipeline_catch_signals(p, NULL, NULL), 0);
    run_ok();
    struct t_counter *s = sl_stage_state(src);
    struct t_collect *c = sl_stage_state(out);
    cr_assert_geq((int64_t)c->nseen, 5000);
    /* Everything the source made reached the sink, once, and was acknowledged. */
    cr_assert_eq((int64_t)c->nseen, s->next);
    assert_sequence(c, s->next, 1);
    cr_assert_eq(s->acked_events, s->next);
    cr_assert(c->flushed);
}

Test(sched, wakeups_from_another_thread_deliver_everything)
{
    struct sl_stage *src =
        t_add(p, "src", &t_counter, "count: 50000\nbatch: 256\nwake_thread: true");
    struct sl_stage *out = t_add(p, "out", &t_collect, NULL);
    t_connect(p, src, out);
    run_ok();
    assert_sequence(sl_stage_state(out), 50000, 1);
}

Test(sched, pending_source_is_polled_again_after_its_timer_wakes_it)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 500\nbatch: 10\npending_every: 3");
    struct sl_stage *out = t_add(p, "out", &t_collect, NULL);
    t_connect(p, src, out);
    run_ok();
    assert_sequence(sl_stage_state(out), 500, 1);
    struct t_counter *s = sl_stage_state(src);
    cr_assert_geq(s->polls, 75); /* 50 batches + a PENDING every third poll + DONE */
}

Test(sched, transform_outputs_ports_and_flush_at_end)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 105\nbatch: 7");
    struct sl_stage *win = t_add(p, "win", &t_window, "size: 10");
    struct sl_stage *sums = t_add(p, "sums", &t_collect, NULL);
    struct sl_stage *odd = t_add(p, "odds", &t_collect, NULL);
    struct sl_error err = {0};
    t_connect(p, src, win);
    t_connect(p, win, sums);
    cr_assert_eq(sl_pipeline_connect(p, win, "odd", odd, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_pipeline_connect(p, win, "even", odd, &err), SL_ENOTFOUND);
    run_ok();
    struct t_collect *c = sl_stage_state(sums);
    cr_assert_eq(c->nseen, 11);
    for (int64_t w = 0; w < 10; w++) /* sum of 10w .. 10w+9 */
        cr_assert_eq(c->seen[w], 100 * w + 45);
    cr_assert_eq(c->seen[10], 100 + 101 + 102 + 103 + 104);
    struct t_collect *o = sl_stage_state(odd);
    cr_assert_eq(o->nseen, 52);
    for (size_t i = 0; i < o->nseen; i++) cr_assert_eq(o->seen[i], 2 * (int64_t)i + 1);
    struct t_counter *s = sl_stage_state(src);
    cr_assert_eq(s->acked_events, 105);
    cr_assert_not(s->ack_out_of_order);
}

Test(sched, duplicated_events_are_independent_copies)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 300\nbatch: 30");
    struct sl_stage *dup = t_add(p, "dup", &t_pass, "dup: 3");
    struct sl_stage *out = t_add(p, "out", &t_collect, NULL);
    t_connect(p, src, dup);
    t_connect(p, dup, out);
    run_ok();
    struct t_collect *c = sl_stage_state(out);
    cr_assert_eq(c->nseen, 900);
    for (size_t i = 0; i < 900; i++) cr_assert_eq(c->seen[i], (int64_t)i / 3);
}

Test(sched, graph_without_inputs_or_with_a_cycle_does_not_start)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, NULL);
    struct sl_stage *a = t_add(p, "a", &t_pass, NULL);
    struct sl_stage *b = t_add(p, "b", &t_pass, NULL);
    struct sl_stage *out = t_add(p, "out", &t_collect, NULL);
    (void)out;
    t_connect(p, src, a);
    t_connect(p, a, b);
    t_connect(p, b, a);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_start(p, &err), SL_ECONFIG);
    cr_assert_str_eq(err.msg, "stage 'out' has no inputs");
    t_connect(p, b, out);
    memset(&err, 0, sizeof err);
    cr_assert_eq(sl_pipeline_start(p, &err), SL_ECONFIG);
    cr_assert_str_eq(err.msg, "the stages form a cycle: a -> b -> a");
}

static void stop_from_thread_ack(struct sl_stage *s, struct sl_batch *b)
{
    (void)b;
    struct t_counter *c = sl_stage_state(s);
    if (c->acked_batches == 20) sl_pipeline_stop(p); /* loop thread: immediate */
}

Test(sched, stop_ends_an_endless_source_with_success)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 0\nbatch: 5");
    struct sl_stage *out = t_add(p, "out", &t_collect, NULL);
    t_connect(p, src, out);
    ((struct t_counter *)sl_stage_state(src))->on_ack = stop_from_thread_ack;
    run_ok();
    struct t_counter *s = sl_stage_state(src);
    cr_assert_eq(s->acked_events, s->next);
    cr_assert_eq((int64_t)((struct t_collect *)sl_stage_state(out))->nseen, s->next);
}

Test(sched, waiting_stages_leave_the_loop_idle)
{
    /* 20 waits of 1 ms each: the loop must sleep through them, not spin. */
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 200\nbatch: 10\npending_every: 2");
    struct sl_stage *out = t_add(p, "out", &t_collect, "delay_ms: 1");
    t_connect(p, src, out);
    run_ok();
    assert_sequence(sl_stage_state(out), 200, 1);
    cr_assert_leq(p->rounds, 200, "%llu scheduler rounds for 20 batches",
                  (unsigned long long)p->rounds);
}

static void raise_again(void *arg, int signo, int count)
{
    (void)arg;
    if (count == 1) raise(signo); /* the impatient user presses ^C twice */
}

Test(sched, second_signal_aborts_at_once_without_acknowledging)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 0\nbatch: 10");
    struct sl_stage *out = t_add(p, "out", &t_collect, "stop_after: 100\ndelay_ms: 20");
    t_connect(p, src, out);
    cr_assert_eq(sl_pipeline_catch_signals(p, raise_again, NULL), 0);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), SL_ESTOPPED);
    cr_assert_str_eq(err.msg, "pipeline aborted");
    struct t_counter *s = sl_stage_state(src);
    struct t_collect *c = sl_stage_state(out);
    cr_assert_eq(s->acked_events, c->acked, "acked upstream only what the sink acked");
    cr_assert_lt(s->acked_events, s->next, "the abort left batches unacknowledged");
}

/* A sink that holds everything until its end-of-input flush, then acks from a timer:
 * the run must end once the last ack is in, and not before. */
struct holder {
    struct sl_batch *held[64]; /* batches not yet acked */
    int n;                     /* in held */
    struct sl_timer *timer;    /* acks after the flush */
    int64_t acked;             /* events acked */
};

static void holder_fire(struct sl_stage *s, void *arg)
{
    (void)arg;
    struct holder *h = sl_stage_state(s);
    for (int i = 0; i < h->n; i++) {
        h->acked += (int64_t)sl_batch_count(h->held[i]);
        sl_ack(h->held[i]);
    }
    h->n = 0;
}

static int holder_start(struct sl_stage *s, struct sl_error *err)
{
    (void)err;
    struct holder *h = sl_stage_state(s);
    h->timer = sl_timer_new(s, holder_fire, NULL);
    return 0;
}

static enum sl_poll holder_write(struct sl_stage *s, struct sl_batch *b)
{
    struct holder *h = sl_stage_state(s);
    h->held[h->n++] = b;
    return SL_READY; /* takes everything, acks nothing until its flush */
}

static int holder_flush(struct sl_stage *s, struct sl_emit *out, bool end)
{
    (void)out, (void)end;
    struct holder *h = sl_stage_state(s);
    sl_timer_start(h->timer, 5, false);
    return 0;
}

static void holder_close(struct sl_stage *s)
{
    struct holder *h = sl_stage_state(s);
    for (int i = 0; i < h->n; i++) sl_batch_unref(h->held[i]);
    sl_timer_free(h->timer);
}

static const struct sl_stage_type holder = {
    .abi = SL_STAGE_ABI,
    .name = "holder",
    .kind = SL_SINK,
    .doc = "acks after its flush",
    .state_size = sizeof(struct holder),
    .start = holder_start,
    .write = holder_write,
    .flush = holder_flush,
    .close = holder_close,
};

Test(sched, sink_acking_after_its_flush_ends_the_run)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 3\nbatch: 1");
    struct sl_stage *out = t_add(p, "out", &holder, NULL);
    t_connect(p, src, out);
    run_ok();
    struct holder *h = sl_stage_state(out);
    cr_assert_eq(h->acked, 3);
    cr_assert_eq(((struct t_counter *)sl_stage_state(src))->acked_events, 3);
}

/* A transform that answers for its events only at the end (like an aggregate window):
 * it holds their acknowledgements in an ack set, not their memory. */
struct deferrer {
    struct sl_ack_set *acks; /* every input's acks */
    int64_t sum;             /* of the numbers seen */
    bool flushed;            /* flush(end) ran */
    bool emit;               /* option: emit a result at the end (else just free the set) */
};

static int deferrer_map(struct sl_stage *s, struct sl_event *ev, struct sl_emit *out)
{
    struct deferrer *d = sl_stage_state(s);
    if (!d->acks) d->acks = sl_ack_set_new();
    d->sum += t_number(ev);
    return sl_ack_set_add(d->acks, sl_emit_input(out));
}

static int deferrer_flush(struct sl_stage *s, struct sl_emit *out, bool end)
{
    struct deferrer *d = sl_stage_state(s);
    if (!end) return 0;
    d->flushed = true;
    if (!d->emit) {
        sl_ack_set_free(d->acks); /* consumed on purpose: the acks go ahead */
        d->acks = NULL;
        return 0;
    }
    struct sl_event *ev = sl_emit_new(out);
    char *text = sl_event_alloc(ev, 24);
    int len = snprintf(text, 24, "%lld", (long long)d->sum);
    sl_event_set_payload(ev, text, (size_t)len);
    int rc = sl_emit_ack_set(out, d->acks);
    return rc ? rc : sl_emit(out, ev);
}

static void deferrer_close(struct sl_stage *s)
{
    struct deferrer *d = sl_stage_state(s);
    sl_ack_set_free(d->acks);
}

static const struct sl_option deferrer_options[] = {
    {"emit", SL_OPT_BOOL, "true", 0, offsetof(struct deferrer, emit), "emit a result"},
    {0},
};

static const struct sl_stage_type deferrer = {
    .abi = SL_STAGE_ABI,
    .name = "deferrer",
    .kind = SL_TRANSFORM,
    .doc = "defers its acks",
    .state_size = sizeof(struct deferrer),
    .options = deferrer_options,
    .map = deferrer_map,
    .flush = deferrer_flush,
    .close = deferrer_close,
};

static struct t_collect *result_sink;

static void acked_only_after_the_result(struct sl_stage *s, struct sl_batch *b)
{
    (void)s, (void)b;
    cr_assert_eq(result_sink->acked, 1, "a source batch was acked before the result was");
}

Test(sched, ack_sets_defer_acknowledgements_without_keeping_memory)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 100000\nbatch: 100");
    struct sl_stage *d = t_add(p, "defer", &deferrer, NULL);
    struct sl_stage *out = t_add(p, "out", &t_collect, "delay_ms: 1");
    t_connect(p, src, d);
    t_connect(p, d, out);
    struct t_counter *c = sl_stage_state(src);
    result_sink = sl_stage_state(out);
    c->on_ack = acked_only_after_the_result;
    run_ok();
    cr_assert_eq(result_sink->nseen, 1);
    cr_assert_eq(result_sink->seen[0], (int64_t)100000 * 99999 / 2);
    cr_assert_eq(c->acked_events, 100000);
    cr_assert_eq(c->acked_batches, 1000);
    cr_assert_not(c->ack_out_of_order);
    /* 1000 source batches waited for their acks; their memory did not. Kept, it would be
     * over 100 MiB: each batch has a 64 KiB arena chunk and 1024 event slots. */
    cr_assert_geq(sl_pipeline_peak_batches(p), 1000);
    int64_t peak;
    sl_pipeline_memory(p, NULL, &peak);
    cr_assert_lt(peak, 8 << 20, "batch memory peaked at %lld bytes", (long long)peak);
}

Test(sched, freeing_an_ack_set_lets_the_acks_go)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 5000\nbatch: 50");
    struct sl_stage *d = t_add(p, "defer", &deferrer, "emit: false");
    struct sl_stage *out = t_add(p, "out", &t_collect, NULL);
    t_connect(p, src, d);
    t_connect(p, d, out);
    run_ok();
    struct t_counter *c = sl_stage_state(src);
    cr_assert_eq(((struct t_collect *)sl_stage_state(out))->nseen, 0);
    cr_assert_eq(c->acked_events, 5000);
    cr_assert_not(c->ack_out_of_order);
}

/* Behind a transform, a batch belongs to the next stage alone, which then writes its
 * output into it (in place). These repeat earlier cases on such batches. */
Test(sched, in_place_map_spills_when_it_emits_more_than_it_reads)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 3000\nbatch: 100");
    struct sl_stage *pass = t_add(p, "pass", &t_pass, NULL);
    struct sl_stage *dup = t_add(p, "dup", &t_pass, "dup: 3");
    struct sl_stage *out = t_add(p, "out", &t_collect, NULL);
    t_connect(p, src, pass);
    t_connect(p, pass, dup);
    t_connect(p, dup, out);
    run_ok();
    struct t_collect *c = sl_stage_state(out);
    cr_assert_eq(c->nseen, 9000);
    for (size_t i = 0; i < 9000; i++) cr_assert_eq(c->seen[i], (int64_t)i / 3);
    cr_assert_eq(((struct t_counter *)sl_stage_state(src))->acked_events, 3000);
}

Test(sched, in_place_transform_with_ports_and_held_batches)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 105\nbatch: 7");
    struct sl_stage *pass = t_add(p, "pass", &t_pass, NULL);
    struct sl_stage *win = t_add(p, "win", &t_window, "size: 10");
    struct sl_stage *sums = t_add(p, "sums", &t_collect, NULL);
    struct sl_stage *odd = t_add(p, "odds", &t_collect, NULL);
    struct sl_error err = {0};
    t_connect(p, src, pass);
    t_connect(p, pass, win);
    t_connect(p, win, sums);
    cr_assert_eq(sl_pipeline_connect(p, win, "odd", odd, &err), 0, "%s", err.msg);
    run_ok();
    struct t_collect *c = sl_stage_state(sums);
    cr_assert_eq(c->nseen, 11);
    for (int64_t w = 0; w < 10; w++) cr_assert_eq(c->seen[w], 100 * w + 45);
    cr_assert_eq(c->seen[10], 100 + 101 + 102 + 103 + 104);
    struct t_collect *o = sl_stage_state(odd);
    cr_assert_eq(o->nseen, 52);
    for (size_t i = 0; i < o->nseen; i++) cr_assert_eq(o->seen[i], 2 * (int64_t)i + 1);
    cr_assert_eq(((struct t_counter *)sl_stage_state(src))->acked_events, 105);
}

Test(sched, in_place_map_on_workers_keeps_order)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 20000\nbatch: 50");
    struct sl_stage *pass = t_add(p, "pass", &t_pass, NULL);
    struct sl_stage *dup = t_add(p, "dup", &t_pass, "dup: 2\nworkers: 3");
    struct sl_stage *out = t_add(p, "out", &t_collect, NULL);
    t_connect(p, src, pass);
    t_connect(p, pass, dup);
    t_connect(p, dup, out);
    run_ok();
    struct t_collect *c = sl_stage_state(out);
    cr_assert_eq(c->nseen, 40000);
    for (size_t i = 0; i < 40000; i++) cr_assert_eq(c->seen[i], (int64_t)i / 2);
}

/* One batch: a failure at event 500 must not let the batch be acknowledged as consumed
 * (a checkpoint past a failed event would lose it on restart). */
static void failed_batch_is_not_acked(const char *bad_yaml)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 1000\nbatch: 1000");
    struct sl_stage *bad = t_add(p, "bad", &t_pass, bad_yaml);
    struct sl_stage *out = t_add(p, "out", &t_collect, NULL);
    t_connect(p, src, bad);
    t_connect(p, bad, out);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), SL_EPARSE);
    cr_assert_eq(((struct t_counter *)sl_stage_state(src))->acked_events, 0);
}

Test(sched, a_batch_whose_processing_failed_is_never_acknowledged)
{
    failed_batch_is_not_acked("fail_at: 500");
}

Test(sched, a_batch_whose_processing_failed_on_a_worker_is_never_acknowledged)
{
    failed_batch_is_not_acked("fail_at: 500\nworkers: 2");
}

Test(sched, events_sent_to_an_output_nobody_reads_are_counted_as_dropped)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 100\nbatch: 10");
    struct sl_stage *win = t_add(p, "win", &t_window, "size: 10");
    struct sl_stage *sums = t_add(p, "sums", &t_collect, NULL);
    t_connect(p, src, win);
    t_connect(p, win, sums); /* "odd" stays unconnected */
    run_ok();
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(win, &st);
    cr_assert_eq(st.dropped, 50, "the 50 odd numbers went nowhere");
    cr_assert_eq(((struct t_counter *)sl_stage_state(src))->acked_events, 100);
}

/* ---- a slow stage does not hold the loop ---------------------------------------------- */

/* "t_slow": a transform (or, as t_slow_filter, a filter) that takes 3 ms an event, and
 * notes for each event how often the loop's 1 ms timer had fired by then. */
static int64_t ticks;           /* the loop's timer fires */
static int64_t seen_ticks[256]; /* ticks when event i was processed */
static int nslow;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void spin_3ms(const struct sl_event *ev)
{
    int64_t end = mono_ms() + 3;
    while (mono_ms() < end) continue;
    if (nslow < 256) seen_ticks[nslow++] = ticks;
    (void)ev;
}

static int slow_map(struct sl_stage *s, struct sl_event *ev, struct sl_emit *out)
{
    (void)s;
    spin_3ms(ev);
    return sl_emit(out, ev);
}

static int slow_keep(struct sl_stage *s, const struct sl_event *ev, struct sl_error *why)
{
    (void)s, (void)why;
    spin_3ms(ev);
    return t_number(ev) % 2 == 0;
}

static const struct sl_stage_type t_slow = {.abi = SL_STAGE_ABI,
                                            .name = "t_slow",
                                            .kind = SL_TRANSFORM,
                                            .doc = "3 ms an event",
                                            .map = slow_map};
static const struct sl_stage_type t_slow_filter = {.abi = SL_STAGE_ABI,
                                                   .name = "t_slow_filter",
                                                   .kind = SL_FILTER,
                                                   .doc = "3 ms an event",
                                                   .keep = slow_keep};

static void tick(struct sl_stage *s, void *arg)
{
    (void)s, (void)arg;
    ticks++;
}

/* One batch of 60 events, 180 ms of work: without slices the loop would not turn once
 * in it (every event would see the same tick count); with 5 ms slices it turns every
 * one or two events. Every event still arrives once, in order. */
static void assert_sliced(const struct sl_stage_type *slow, int64_t want_out)
{
    ticks = 0, nslow = 0;
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 60\nbatch: 60");
    struct sl_stage *mid = t_add(p, "slow", slow, NULL);
    struct sl_stage *out = t_add(p, "out", &t_collect, NULL);
    t_connect(p, src, mid);
    t_connect(p, mid, out);
    cr_assert_eq(sl_pipeline_start(p, NULL), 0);
    struct sl_timer *t = sl_timer_new(src, tick, NULL);
    sl_timer_start(t, 1, true);
    run_ok();
    sl_timer_free(t);
    cr_assert_eq(nslow, 60);
    int turns = 0;
    for (int i = 1; i < nslow; i++) turns += seen_ticks[i] != seen_ticks[i - 1];
    cr_assert_geq(turns, 20, "the loop turned %d times in a 180 ms batch", turns);
    struct t_collect *c = sl_stage_state(out);
    cr_assert_eq((int64_t)c->nseen, want_out);
    for (size_t i = 0; i < c->nseen; i++)
        cr_assert_eq(c->seen[i], want_out == 60 ? (int64_t)i : (int64_t)(2 * i));
}

Test(sched, a_slow_transform_gives_the_loop_back_between_slices_of_a_batch)
{
    assert_sliced(&t_slow, 60);
}

Test(sched, a_slow_filter_gives_the_loop_back_between_slices_of_a_batch)
{
    assert_sliced(&t_slow_filter, 30);
}

/* ---- a source's end, and work out at the end of a run ------------------------------------ */

/* "t_saver": a counter that, told it has ended (flush), sends off a last "save" to an
 * executor thread; the run must not end before the save's done ran. */
static int saves_started, saves_done;

static void save_work(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 20000000}; /* 20 ms: the rest of the run is long over */
    nanosleep(&ts, NULL);
}

static void save_done(struct sl_stage *s, void *arg)
{
    (void)s, (void)arg;
    saves_done++;
}

static int saver_flush(struct sl_stage *s, struct sl_emit *out, bool end)
{
    cr_assert_null(out);
    cr_assert(end);
    saves_started++;
    return sl_stage_submit(s, save_work, save_done, NULL);
}

Test(sched, a_source_is_told_its_end_and_the_run_waits_for_its_last_work)
{
    static struct sl_stage_type saver;
    saver = t_counter;
    saver.name = "t_saver";
    saver.flush = saver_flush;
    saves_started = saves_done = 0;
    struct sl_stage *src = t_add(p, "src", &saver, "count: 30\nbatch: 10");
    struct sl_stage *out = t_add(p, "out", &t_collect, NULL);
    t_connect(p, src, out);
    run_ok();
    cr_assert_eq(saves_started, 1);
    cr_assert_eq(saves_done, 1, "the run ended before the source's last work came back");
    cr_assert_eq(((struct t_collect *)sl_stage_state(out))->nseen, 30);
}

Test(sched, a_failed_run_still_tells_the_sources_their_end_and_waits_for_their_last_work)
{
    static struct sl_stage_type saver;
    saver = t_counter;
    saver.name = "t_saver";
    saver.flush = saver_flush;
    saves_started = saves_done = 0;
    struct sl_stage *src = t_add(p, "src", &saver, "count: 100\nbatch: 10");
    struct sl_stage *out = t_add(p, "disk", &t_collect, "fail_at: 42");
    t_connect(p, src, out);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), SL_EIO);
    cr_assert_str_eq(err.stage, "disk");
    cr_assert_eq(saves_started, 1);
    cr_assert_eq(saves_done, 1, "the failed run ended before the source's last work came back");
    struct t_counter *s = sl_stage_state(src);
    cr_assert_eq(s->acked_events, 40, "what failed, and what followed it, is never acknowledged");
}

/* ---- a stage's own counters ------------------------------------------------------------------ */

static void take_counter(void *arg, const char *name, const char *help, uint64_t value)
{
    char *out = arg;
    size_t n = strlen(out);
    snprintf(out + n, 256 - n, "%s|%s|%llu;", name, help, (unsigned long long)value);
}

Test(sched, a_stage_counts_what_only_it_knows_under_names_it_chooses)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 10\nbatch: 10");
    struct sl_counter *a = sl_stage_counter(src, "commits", "Commits sent.");
    struct sl_counter *b = sl_stage_counter(src, "broker_errors", "Errors.");
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    cr_assert_eq(sl_stage_counter(src, "commits", "ignored"), a, "one name, one counter");
    cr_assert_null(sl_stage_counter(src, "Bad-Name", "x"));
    cr_assert_null(sl_stage_counter(src, "", "x"));
    sl_counter_add(a, 2);
    sl_counter_add(a, 3);
    sl_counter_add(NULL, 1); /* a counter that could not be made: nothing */
    char seen[256] = "";
    sl_stage_counters(src, take_counter, seen);
    cr_assert_str_eq(seen, "commits|Commits sent.|5;broker_errors|Errors.|0;");
}
