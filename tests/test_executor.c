/* sl_stage_submit: blocking work on executor threads, completions on the loop. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>

#include "helpers.h"
#include "runtime/internal.h"

/* A sink that "writes" each batch on an executor thread, then acks it in done(). */
struct offloop {
    int64_t sum;        /* sum of all numbers, computed off the loop */
    int64_t done_calls; /* done() callbacks run */
    int64_t off_loop;   /* work() calls that ran on another thread than the loop */
    pthread_t loop;     /* the loop thread */
    int inflight;       /* tasks not finished */
};

struct job {
    struct offloop *o;  /* the sink's state */
    struct sl_batch *b; /* the batch to ack */
    int64_t sum;        /* computed by work() */
    bool other_thread;  /* work() ran elsewhere */
};

static void work(void *arg)
{
    struct job *j = arg;
    for (size_t i = 0; i < sl_batch_count(j->b); i++)
        j->sum += t_number(sl_batch_event_const(j->b, i));
    j->other_thread = !pthread_equal(pthread_self(), j->o->loop);
}

static void done(struct sl_stage *s, void *arg)
{
    struct job *j = arg;
    cr_assert(pthread_equal(pthread_self(), j->o->loop), "done() off the loop");
    j->o->sum += j->sum;
    j->o->done_calls++;
    j->o->off_loop += j->other_thread;
    j->o->inflight--;
    sl_ack(j->b);
    free(j);
    sl_stage_wake(s);
}

static enum sl_poll offloop_write(struct sl_stage *s, struct sl_batch *b)
{
    struct offloop *o = sl_stage_state(s);
    o->loop = pthread_self();
    struct job *j = calloc(1, sizeof *j);
    j->o = o;
    j->b = b;
    cr_assert_eq(sl_stage_submit(s, work, done, j), 0);
    return ++o->inflight < 4 ? SL_READY : SL_PENDING;
}

static const struct sl_stage_type offloop = {
    .abi = SL_STAGE_ABI,
    .name = "offloop",
    .kind = SL_SINK,
    .doc = "sink working on executor threads",
    .state_size = sizeof(struct offloop),
    .write = offloop_write,
};

Test(executor, work_runs_off_the_loop_and_done_on_it)
{
    struct sl_pipeline *p = sl_pipeline_new(NULL, NULL, NULL);
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 100000\nbatch: 100");
    struct sl_stage *out = t_add(p, "out", &offloop, NULL);
    t_connect(p, src, out);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "%s", err.msg);
    struct offloop *o = sl_stage_state(out);
    cr_assert_eq(o->done_calls, 1000);
    cr_assert_eq(o->off_loop, 1000);
    cr_assert_eq(o->sum, (int64_t)100000 * 99999 / 2);
    struct t_counter *c = sl_stage_state(src);
    cr_assert_eq(c->acked_events, 100000);
    cr_assert_not(c->ack_out_of_order);
    cr_assert_eq(sl_pipeline_live_batches(p), 0);
    sl_pipeline_free(p);
}
