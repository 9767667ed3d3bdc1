/* `workers: N`: batches run on a thread pool and leave in the order they came. */
#define _GNU_SOURCE /* sched_getcpu, CPU_SET */
#include <criterion/criterion.h>
#include <sched.h>
#include <time.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <event2/event.h>

#include "helpers.h"
#include "runtime/internal.h"

static struct sl_pipeline *p;

static void setup(void)
{
    p = sl_pipeline_new(NULL, NULL, NULL);
    cr_assert_not_null(p);
}

static void teardown(void)
{
    sl_pipeline_free(p);
}

TestSuite(workers, .init = setup, .fini = teardown, .timeout = 60);

static void run_ok(void)
{
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "run: %s", err.msg);
    cr_assert_eq(sl_pipeline_live_batches(p), 0);
}

Test(workers, four_workers_keep_batch_order_and_lose_nothing)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 100000\nbatch: 37");
    struct sl_stage *pass = t_add(p, "pass", &t_pass, "workers: 4\nspin: 200");
    struct sl_stage *out = t_add(p, "out", &t_collect, NULL);
    t_connect(p, src, pass);
    t_connect(p, pass, out);
    run_ok();
    struct t_collect *c = sl_stage_state(out);
    cr_assert_eq(c->nseen, 100000);
    for (size_t i = 0; i < c->nseen; i++) cr_assert_eq(c->seen[i], (int64_t)i);
    struct t_counter *s = sl_stage_state(src);
    cr_assert_eq(s->acked_events, 100000);
    cr_assert_not(s->ack_out_of_order);
}

Test(workers, parallel_filter_keeps_order)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 20000\nbatch: 100");
    struct sl_stage *pass = t_add(p, "pass", &t_pass, NULL);
    struct sl_stage *even = t_add(p, "even", &t_even, "workers: 3");
    struct sl_stage *out = t_add(p, "out", &t_collect, "delay_ms: 0");
    t_connect(p, src, pass);
    t_connect(p, pass, even);
    t_connect(p, even, out);
    run_ok();
    struct t_collect *c = sl_stage_state(out);
    cr_assert_eq(c->nseen, 10000);
    for (size_t i = 0; i < c->nseen; i++) cr_assert_eq(c->seen[i], 2 * (int64_t)i);
}

Test(workers, stateful_type_refuses_workers)
{
    struct sl_error err = {0};
    struct sl_config *cfg = t_config("size: 3\nworkers: 2");
    cr_assert_null(sl_pipeline_add(p, "win", &t_window, cfg, &err));
    sl_config_free(cfg);
    cr_assert_eq(err.code, SL_ECONFIG);
    cr_assert_str_eq(err.msg,
                     "type 't_window' keeps state between events and cannot run on workers");
    cr_assert_eq(err.line, 2);
    cr_assert_eq(err.col, 10);
    cr_assert_str_eq(err.stage, "win");
}

Test(workers, failure_on_a_worker_stops_the_run)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 0\nbatch: 50");
    struct sl_stage *pass = t_add(p, "pass", &t_pass, "workers: 2\nfail_at: 12345");
    struct sl_stage *out = t_add(p, "out", &t_collect, NULL);
    t_connect(p, src, pass);
    t_connect(p, pass, out);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), SL_EPARSE);
    cr_assert_str_eq(err.stage, "pass");
    cr_assert_str_eq(err.msg, "bad event 12345");
    struct t_counter *s = sl_stage_state(src);
    cr_assert_leq(s->acked_events, 12300);
}

Test(workers, fan_out_after_workers_reaches_both_sinks)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 30000\nbatch: 64");
    struct sl_stage *pass = t_add(p, "pass", &t_pass, "workers: 2");
    struct sl_stage *a = t_add(p, "a", &t_collect, NULL);
    struct sl_stage *b = t_add(p, "b", &t_collect, "delay_ms: 0");
    t_connect(p, src, pass);
    t_connect(p, pass, a);
    t_connect(p, pass, b);
    run_ok();
    struct t_collect *ca = sl_stage_state(a), *cb = sl_stage_state(b);
    cr_assert_eq(ca->nseen, 30000);
    cr_assert_eq(cb->nseen, 30000);
    for (size_t i = 0; i < 30000; i++) {
        cr_assert_eq(ca->seen[i], (int64_t)i);
        cr_assert_eq(cb->seen[i], (int64_t)i);
    }
}

/* A parallel transform counting the events each thread number ran, with a slot per
 * thread as a real stage would keep its scratch state. */
struct probe {
    int64_t spin_ns;         /* option: CPU spent on each event */
    int threads;             /* sl_stage_threads() seen in init */
    _Atomic int64_t *counts; /* events per thread number */
    atomic_int out_of_range; /* numbers outside 0..threads-1 */
};

static int probe_init(struct sl_stage *s, const struct sl_config *cfg, struct sl_error *err)
{
    (void)cfg, (void)err;
    struct probe *pr = sl_stage_state(s);
    pr->threads = sl_stage_threads(s);
    pr->counts = calloc((size_t)pr->threads, sizeof *pr->counts);
    return pr->counts ? 0 : SL_ENOMEM;
}

static int64_t t_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int probe_map(struct sl_stage *s, struct sl_event *ev, struct sl_emit *out)
{
    struct probe *pr = sl_stage_state(s);
    int t = sl_stage_thread(s);
    if (t < 0 || t >= pr->threads)
        atomic_fetch_add(&pr->out_of_range, 1);
    else
        atomic_fetch_add(&pr->counts[t], 1);
    for (int64_t t0 = t_now_ns(); pr->spin_ns && t_now_ns() - t0 < pr->spin_ns;) continue;
    return sl_emit(out, ev);
}

static const struct sl_option probe_options[] = {
    {"spin_ns", SL_OPT_INT, "0", 0, offsetof(struct probe, spin_ns), "CPU spent on each event"},
    {0},
};

static void probe_close(struct sl_stage *s)
{
    struct probe *pr = sl_stage_state(s);
    free(pr->counts);
}

static const struct sl_stage_type probe_type = {
    .abi = SL_STAGE_ABI,
    .name = "probe",
    .kind = SL_TRANSFORM,
    .doc = "counts events per thread number",
    .flags = SL_STAGE_PARALLEL,
    .state_size = sizeof(struct probe),
    .options = probe_options,
    .init = probe_init,
    .map = probe_map,
    .close = probe_close,
};

Test(workers, thread_numbers_index_per_thread_state)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 20000\nbatch: 50");
    struct sl_stage *par = t_add(p, "par", &probe_type, "workers: 3");
    struct sl_stage *seq = t_add(p, "seq", &probe_type, "workers: 0");
    struct sl_stage *out = t_add(p, "out", &t_collect, NULL);
    t_connect(p, src, par);
    t_connect(p, par, seq);
    t_connect(p, seq, out);
    run_ok();
    struct probe *a = sl_stage_state(par), *b = sl_stage_state(seq);
    cr_assert_eq(a->threads, 4);
    cr_assert_eq(sl_stage_threads(par), 4);
    cr_assert_eq(atomic_load(&a->out_of_range), 0);
    cr_assert_eq(atomic_load(&a->counts[0]), 0, "the loop thread ran map() of a workers stage");
    cr_assert_eq(atomic_load(&a->counts[1]) + atomic_load(&a->counts[2]) +
                     atomic_load(&a->counts[3]),
                 20000);
    cr_assert_eq(b->threads, 1);
    cr_assert_eq(atomic_load(&b->counts[0]), 20000);
    cr_assert_eq(sl_stage_thread(par), 0, "the test's own thread is no worker");
}

/* A filter on one worker whose first call blocks until the run is aborted: meanwhile a
 * second batch, compacted in place when it runs, waits in the workers' queue, and is
 * dropped unrun when the pipeline is freed. Its input must be released then (the
 * sanitizer build finds the leak otherwise). */
static atomic_int release_worker;

static int blocking_keep(struct sl_stage *s, const struct sl_event *ev, struct sl_error *why)
{
    (void)s, (void)ev, (void)why;
    while (!atomic_load(&release_worker)) sched_yield();
    return 1;
}

static const struct sl_stage_type t_block = {
    .abi = SL_STAGE_ABI,
    .name = "t_block",
    .kind = SL_FILTER,
    .doc = "blocks until released",
    .flags = SL_STAGE_PARALLEL,
    .keep = blocking_keep,
};

static void abort_run(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    sl_pipeline_abort(arg);
    atomic_store(&release_worker, 1);
}

Test(workers, a_job_dropped_before_it_ran_releases_its_batch)
{
    atomic_store(&release_worker, 0);
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 40\nbatch: 10");
    struct sl_stage *pass = t_add(p, "pass", &t_pass, NULL); /* its output: no source's */
    struct sl_stage *block = t_add(p, "block", &t_block, "workers: 1");
    struct sl_stage *out = t_add(p, "out", &t_collect, NULL);
    t_connect(p, src, pass);
    t_connect(p, pass, block);
    t_connect(p, block, out);
    struct timeval after = {0, 30000};
    event_base_once(sl_pipeline_event_base(p), -1, EV_TIMEOUT, abort_run, p, &after);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), SL_ESTOPPED);
    cr_assert_gt(sl_pipeline_live_batches(p), 0, "batches were in the workers' hands");
    cr_assert_eq(((struct t_collect *)sl_stage_state(out))->nseen, 0);
}

/* ---- workers: auto (the default) ----------------------------------------------------------- */

/* Runs src (count, batches of 50) -> probe (probe_yaml) -> collect; checks every event
 * came once, in order. Returns the probe's state. */
static struct sl_stage *probe_stage; /* the last run_probe's probe */

static struct probe *run_probe(int count, const char *probe_yaml)
{
    char yaml[64];
    snprintf(yaml, sizeof yaml, "count: %d\nbatch: 50", count);
    struct sl_stage *src = t_add(p, "src", &t_counter, yaml);
    struct sl_stage *par = t_add(p, "par", &probe_type, probe_yaml);
    struct sl_stage *out = t_add(p, "out", &t_collect, NULL);
    probe_stage = par;
    t_connect(p, src, par);
    t_connect(p, par, out);
    run_ok();
    struct t_collect *c = sl_stage_state(out);
    cr_assert_eq(c->nseen, (size_t)count);
    for (int i = 0; i < count; i++) cr_assert_eq(c->seen[i], (int64_t)i, "order at %d", i);
    return sl_stage_state(par);
}

static int64_t on_workers(const struct probe *pr)
{
    int64_t n = 0;
    for (int t = 1; t < pr->threads; t++) n += atomic_load(&pr->counts[t]);
    return n;
}

Test(workers, auto_moves_costly_batches_to_the_workers_after_the_first_and_keeps_order)
{
    struct probe *pr = run_probe(4000, "spin_ns: 20000"); /* 1 ms a batch of 50 */
    cr_assert_eq(pr->threads, sl__workers_auto() + 1);
    if (pr->threads == 1) { /* one core: everything on the loop, as workers: 0 */
        cr_assert_eq(atomic_load(&pr->counts[0]), 4000);
        return;
    }
    /* The first batch, whose cost was not known yet, and the jobs the loop took while
     * every worker was busy (help). */
    uint64_t helped = sl__workers_helped(probe_stage);
    cr_assert_eq(atomic_load(&pr->counts[0]), 50 + 50 * (int64_t)helped, "helped %llu",
                 (unsigned long long)helped);
    cr_assert_eq(on_workers(pr), 3950 - 50 * (int64_t)helped);
}

Test(workers, auto_keeps_cheap_batches_on_the_loop)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 20000\nbatch: 4");
    struct sl_stage *par = t_add(p, "par", &probe_type, NULL); /* 4 events: ~1 us a batch */
    struct sl_stage *out = t_add(p, "out", &t_collect, NULL);
    t_connect(p, src, par);
    t_connect(p, par, out);
    run_ok();
    struct t_collect *c = sl_stage_state(out);
    cr_assert_eq(c->nseen, 20000);
    for (int i = 0; i < 20000; i++) cr_assert_eq(c->seen[i], (int64_t)i, "order at %d", i);
    struct probe *pr = sl_stage_state(par);
    cr_assert_eq(pr->threads, sl__workers_auto() + 1);
    /* A batch that happened to be preempted may cost more than a hand-off and send a few
     * after it to the workers; the bulk stays on the loop (also under the sanitizers,
     * which make a batch several times slower: hence batches of 4). */
    cr_assert_geq(atomic_load(&pr->counts[0]), 15000, "%lld of 20000 on the loop",
                  (long long)atomic_load(&pr->counts[0]));
}

Test(workers, auto_on_one_core_runs_everything_on_the_loop)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    cr_assert_eq(sched_setaffinity(0, sizeof one, &one), 0); /* this test's process only */
    cr_assert_eq(sl__workers_auto(), 0);
    struct probe *pr = run_probe(2000, "spin_ns: 20000");
    cr_assert_eq(pr->threads, 1);
    cr_assert_eq(atomic_load(&pr->counts[0]), 2000);
}

Test(workers, workers_auto_or_a_number_and_nothing_else)
{
    struct sl_error err = {0};
    struct sl_config *cfg = sl_config_parse("workers: two", 12, "t.yaml", &err);
    cr_assert_null(sl_pipeline_add(p, "par", &probe_type, cfg, &err));
    cr_assert_str_eq(err.msg, "option 'workers' expects an integer or auto; found 'two'");
    sl_config_free(cfg);
}

/* ---- operator chaining ------------------------------------------------------------------- */

/* src -> head (probe, head_yaml) -> tail (probe, tail_yaml) -> out, 4000 events in order. */
static void run_pair(const char *head_yaml, const char *tail_yaml, struct sl_stage **head,
                     struct sl_stage **tail)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 4000\nbatch: 50");
    *head = t_add(p, "head", &probe_type, head_yaml);
    *tail = t_add(p, "tail", &probe_type, tail_yaml);
    struct sl_stage *out = t_add(p, "out", &t_collect, NULL);
    t_connect(p, src, *head);
    t_connect(p, *head, *tail);
    t_connect(p, *tail, out);
    run_ok();
    struct t_collect *c = sl_stage_state(out);
    cr_assert_eq(c->nseen, 4000);
    for (int i = 0; i < 4000; i++) cr_assert_eq(c->seen[i], (int64_t)i, "order at %d", i);
}

Test(workers, a_chain_runs_each_batch_through_both_stages_on_one_thread)
{
    struct sl_stage *head, *tail;
    run_pair("spin_ns: 20000", NULL, &head, &tail); /* both workers: auto */
    if (sl__workers_auto() == 0) {                  /* one core: no workers, nothing to chain */
        cr_assert_null(head->chain_next);
        return;
    }
    cr_assert_eq(head->chain_next, tail);
    cr_assert_eq(tail->chain_head, head);
    cr_assert_null(tail->workers, "the tail starts no threads of its own");
    struct probe *h = sl_stage_state(head), *t = sl_stage_state(tail);
    cr_assert_eq(h->threads, t->threads);
    for (int i = 0; i < h->threads; i++) /* every batch ran on the same thread twice */
        cr_assert_eq(atomic_load(&t->counts[i]), atomic_load(&h->counts[i]), "thread %d", i);
    cr_assert_gt(on_workers(t), 0);
    cr_assert_eq(atomic_load(&t->out_of_range), 0);
    struct sl_stage_stats hs = {.size = sizeof hs}, ts = {.size = sizeof ts};
    cr_assert_eq(sl_stage_stats(head, &hs), 0);
    cr_assert_eq(sl_stage_stats(tail, &ts), 0);
    cr_assert_eq(hs.events_out, 4000);
    cr_assert_eq(ts.events_in, 4000);
    cr_assert_eq(ts.events_out, 4000);
}

Test(workers, explicit_workers_chain_when_the_counts_allow_it)
{
    struct sl_stage *head, *tail;
    run_pair("workers: 2", "workers: 2", &head, &tail);
    cr_assert_eq(head->chain_next, tail);
    struct probe *h = sl_stage_state(head), *t = sl_stage_state(tail);
    for (int i = 0; i < h->threads; i++)
        cr_assert_eq(atomic_load(&t->counts[i]), atomic_load(&h->counts[i]), "thread %d", i);
    cr_assert_eq(atomic_load(&h->counts[0]), 0, "explicit workers: the loop runs none");
}

Test(workers, fewer_threads_or_workers_0_after_the_head_ends_the_chain)
{
    struct sl_stage *head, *tail;
    run_pair("workers: 2", "workers: 1", &head, &tail);
    cr_assert_null(head->chain_next, "the tail's thread numbers could not index its state");
    cr_assert_null(tail->chain_head);
    sl_pipeline_free(p);
    setup();
    run_pair("workers: 2", "workers: 0", &head, &tail);
    cr_assert_null(head->chain_next);
    struct probe *t = sl_stage_state(tail);
    cr_assert_eq(atomic_load(&t->counts[0]), 4000, "workers: 0 keeps it on the loop");
}

Test(workers, a_second_consumer_or_a_second_input_ends_the_chain)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 1000\nbatch: 50");
    struct sl_stage *a = t_add(p, "a", &probe_type, "workers: 1");
    struct sl_stage *b = t_add(p, "b", &probe_type, "workers: 1");
    struct sl_stage *c = t_add(p, "c", &probe_type, "workers: 1");
    struct sl_stage *d = t_add(p, "d", &probe_type, "workers: 1");
    struct sl_stage *out1 = t_add(p, "out1", &t_collect, NULL);
    struct sl_stage *out2 = t_add(p, "out2", &t_collect, NULL);
    t_connect(p, src, a);
    t_connect(p, a, b); /* a: two consumers */
    t_connect(p, a, c);
    t_connect(p, b, d); /* d: two inputs */
    t_connect(p, c, d);
    t_connect(p, d, out1);
    t_connect(p, c, out2);
    run_ok();
    cr_assert_null(a->chain_next);
    cr_assert_null(b->chain_next);
    cr_assert_null(c->chain_next);
    cr_assert_null(d->chain_head);
    cr_assert_eq(((struct t_collect *)sl_stage_state(out1))->nseen, 2000);
    cr_assert_eq(((struct t_collect *)sl_stage_state(out2))->nseen, 1000);
}
