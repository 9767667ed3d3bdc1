/* The scheduler: one libevent loop runs every stage.
 *
 * Stages that can make progress sit on a ready list; one loop callback runs them in
 * turn, each for a short burst, and yields back to libevent between rounds so that fds,
 * timers and signals are served. A stage is put on the list when something it waits for
 * happens: a batch arrived on an input, room appeared on an output, sl_stage_wake() was
 * called, an acknowledgement came back. Backpressure is the absence of a run: a stage
 * whose outputs are full is not run at all. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "runtime/internal.h"

#define ROUND_BUDGET 256     /* stage runs per loop callback before yielding to libevent */
#define ROUND_NS     5000000 /* and at most this long: fds, signals and /health wait no more */
#define STAGE_BURST  8       /* batches a stage handles per run */

static void finish_stage(struct sl_stage *s);
static void complete(struct sl_pipeline *p);
static void arm_deadline(struct sl_pipeline *p);

/* Tells the program a stage is through: ended, and for a source, fully acknowledged. */
static void tell_done(struct sl_stage *s)
{
    struct sl_pipeline *p = s->p;
    if (s->done_told || !s->finished || s->inflight_head || p->batches.aborted) return;
    s->done_told = true;
    if (p->opt.on_stage_done) p->opt.on_stage_done(p->opt.on_stage_done_arg, s);
}

/* ---- the ready list ---------------------------------------------------------------------- */

void sl__sched_arm(struct sl_pipeline *p)
{
    static const struct timeval zero = {0, 0};
    if (p->run_armed || !p->running || p->done || p->failed || !p->ready_head) return;
    p->run_armed = true;
    /* A zero timeout rather than event_active: libevent polls fds before timeouts fire,
     * so a busy pipeline still lets I/O and signals through every round. */
    evtimer_add(p->run_ev, &zero);
}

void sl__schedule(struct sl_stage *s)
{
    struct sl_pipeline *p = s->p;
    if (s->scheduled || s->finished) return;
    s->scheduled = true;
    s->next_ready = NULL;
    if (p->ready_tail)
        p->ready_tail->next_ready = s;
    else
        p->ready_head = s;
    p->ready_tail = s;
    sl__sched_arm(p);
}

static struct sl_stage *pop_ready(struct sl_pipeline *p)
{
    struct sl_stage *s = p->ready_head;
    if (!s) return NULL;
    p->ready_head = s->next_ready;
    if (!p->ready_head) p->ready_tail = NULL;
    s->scheduled = false;
    return s;
}

/* ---- failure ------------------------------------------------------------------------------ */

/* Records the run's failure: the first stage's error (or `code`), logged once. */
static void record_failure(struct sl_pipeline *p, struct sl_stage *s, int code)
{
    p->failed = true;
    if (s) {
        pthread_mutex_lock(&s->err_lock);
        p->err = s->err;
        pthread_mutex_unlock(&s->err_lock);
        snprintf(p->err.stage, sizeof p->err.stage, "%s", s->name);
    }
    if (!p->err.code) p->err.code = code < 0 ? code : SL_ESTAGE;
    if (!p->err.msg[0]) snprintf(p->err.msg, sizeof p->err.msg, "%s", sl_strerror(p->err.code));
    sl__log(p, s, SL_LOG_ERROR, "%s", p->err.msg);
}

/* A failed run winds down: nothing more is acknowledged and no stage runs again, but each
 * source is told it has ended (flush), so it can save what was acknowledged before the
 * failure (a file source's last checkpoints), and the run ends once the work stages
 * have out has come back (within shutdown_timeout). */
void sl__pipeline_fail(struct sl_pipeline *p, struct sl_stage *s, int code)
{
    if (p->failed || p->done) return;
    record_failure(p, s, code);
    p->batches.aborted = true;
    for (uint32_t i = 0; i < p->nstages && !p->done; i++)
        if (p->stages[i]->type->kind == SL_SOURCE) finish_stage(p->stages[i]);
    if (!p->done) arm_deadline(p);
    sl__sched_check_complete(p);
}

static void stage_failed(struct sl_stage *s, int code)
{
    if (!atomic_load(&s->err_set)) sl_stage_error(s, code < 0 ? code : SL_ESTAGE, "stage failed");
    sl__pipeline_fail(s->p, s, code);
}

/* ---- moving batches ------------------------------------------------------------------------ */

void sl__push_port(struct sl_stage *s, int port, struct sl_batch *b)
{
    struct sl__port *pt = &s->ports[port];
    if (s->taps) sl__tap_batch(s, port, b);
    if (pt->nedges == 0) { /* nobody consumes this output: its events end here, counted */
        atomic_fetch_add(&s->dropped, b->n);
        sl__batch_release(b);
        return;
    }
    s->st.events_out += b->n;
    s->st.bytes_out += b->bytes;
    s->st.batches_out++;
    for (uint32_t i = 0; i < pt->nedges; i++) {
        struct sl_queue *q = pt->edges[i];
        b->refs++;
        if (sl__queue_push(q, b)) {
            b->refs--;
            sl_stage_error(s, SL_ENOMEM, "out of memory queueing a batch");
            stage_failed(s, SL_ENOMEM);
            break;
        }
        sl__schedule(q->to);
    }
    sl__batch_release(b);
}

/* Takes the next batch from the inputs, round-robin, and tells a producer that was held
 * back by a full queue that there is room again. */
static struct sl_batch *pop_input(struct sl_stage *s)
{
    for (uint32_t k = 0; k < s->ninputs; k++) {
        uint32_t i = (s->rr + k) % s->ninputs;
        struct sl_queue *q = s->inputs[i];
        if (!q->count) continue;
        bool was_full = !sl__queue_has_room(q);
        struct sl_batch *b = sl__queue_pop(q);
        s->rr = i + 1;
        if (was_full && !q->from->pending) sl__schedule(q->from);
        return b;
    }
    return NULL;
}

static bool inputs_drained(const struct sl_stage *s)
{
    for (uint32_t i = 0; i < s->ninputs; i++)
        if (!s->inputs[i]->closed || s->inputs[i]->count) return false;
    return true;
}

/* ---- sources ---------------------------------------------------------------------------- */

static void emit_source_batch(struct sl_stage *s, struct sl_batch *b)
{
    if (b->n == 0) {
        sl__batch_release(b);
        return;
    }
    b->source = s;
    b->seq = s->next_seq++;
    b->next = NULL;
    if (s->inflight_tail)
        s->inflight_tail->next = b;
    else
        s->inflight_head = b;
    s->inflight_tail = b;
    s->st.events_in += b->n;
    s->st.bytes_in += b->bytes;
    s->st.batches_in++;
    sl__push_port(s, 0, b);
}

static void run_source(struct sl_stage *s)
{
    struct sl_pipeline *p = s->p;
    for (int i = 0; i < STAGE_BURST; i++) {
        if (s->finished || p->stopping || p->done) return;
        if (!sl__stage_outputs_have_room(s)) return; /* a consumer's pop reschedules us */
        struct sl_batch *b = NULL;
        s->pending = false;
        int64_t t0 = sl__now_ns();
        enum sl_poll r = s->type->poll(s, &b);
        if (b && b->n) sl__stage_time_batch(s, sl__now_ns() - t0);
        if (b) emit_source_batch(s, b);
        if (p->done) return;
        if (r == SL_DONE) {
            finish_stage(s);
            return;
        }
        if (r == SL_PENDING) {
            if (atomic_exchange(&s->wake_req, 0)) continue; /* woken while polling */
            s->pending = true;
            return;
        }
        if (r != SL_READY) {
            stage_failed(s, SL_ESTAGE);
            return;
        }
        if (!b) break; /* nothing now: yield, poll again next round */
    }
    sl__schedule(s);
}

/* The batch home's `completed` hook: a source batch is delivered. */
void sl__source_batch_completed(struct sl_batch *b)
{
    struct sl_stage *s = b->source;
    struct sl_batch *h;
    /* Acks go back in production order, so a checkpoint never passes a gap. */
    while ((h = s->inflight_head) && h->completed) {
        s->inflight_head = h->next;
        if (!s->inflight_head) s->inflight_tail = NULL;
        s->st.acked += h->n;
        if (s->type->ack) s->type->ack(s, h);
        h->source = NULL;
        h->refs = 1;
        sl__batch_release(h);
    }
    if (!s->inflight_head) tell_done(s);
}

/* ---- transforms and filters ------------------------------------------------------------ */

/* Pushes what a run of map/keep/flush produced, or, when it failed (rc < 0), fails the
 * pipeline first: once it is aborted, releasing the input acknowledges nothing, so the
 * events of a failed batch are never taken for consumed. */
void sl__finish_or_fail_to(struct sl_stage *s, struct sl_emit *e, int rc, struct sl_batch **handoff)
{
    if (rc < 0) stage_failed(s, rc);
    if (sl__emit_finish_to(e, rc >= 0, handoff) && rc >= 0) stage_failed(s, SL_ENOMEM);
}

void sl__finish_or_fail(struct sl_stage *s, struct sl_emit *e, int rc)
{
    sl__finish_or_fail_to(s, e, rc, NULL);
}

static void flush_stage(struct sl_stage *s, bool end)
{
    if (!s->type->flush) return;
    struct sl_batch *outs[s->nports];
    struct sl_emit e;
    sl__emit_init(&e, s, NULL, outs);
    int rc = s->type->flush(s, &e, end);
    sl__finish_or_fail(s, &e, rc);
}

/* Ends a stage's input once it is all consumed and nothing the stage started is still
 * working: no job on its workers, no asynchronous call, no sl_stage_submit() task whose
 * done has not run (that done may emit, or wake the stage to). Then flush(end = true). */
static void end_input(struct sl_stage *s)
{
    if (s->input_ended || !inputs_drained(s) || sl__paused(s)) return;
    if (s->workers && !sl__workers_idle(s)) return;
    if (!sl__async_idle(s) || s->submitted) return;
    s->input_ended = true;
    if (s->type->kind == SL_SINK) {
        if (s->type->flush) {
            int rc = s->type->flush(s, NULL, true);
            if (rc < 0) {
                stage_failed(s, rc);
                return;
            }
        }
        if (s->outstanding == 0) finish_stage(s);
        return;
    }
    flush_stage(s, true);
    if (!s->p->done) finish_stage(s);
}

static void run_transform(struct sl_stage *s, bool woken)
{
    if (woken) s->flush_req = true;
    for (int i = 0; i < STAGE_BURST; i++) {
        if (s->p->done || !sl__stage_outputs_have_room(s)) return;
        if (sl__paused(s)) { /* a slice stopped mid-batch: go on with it first */
            if (!sl__process_sliced(s, NULL)) break;
            continue;
        }
        if (s->flush_req) {
            s->flush_req = false;
            flush_stage(s, false);
            continue;
        }
        if (s->workers && !sl__workers_inline(s)) break; /* worth the workers now */
        struct sl_batch *b = pop_input(s);
        if (!b) {
            end_input(s);
            return;
        }
        if (!sl__process_sliced(s, b)) break; /* the round is spent: after the loop's turn */
    }
    sl__schedule(s);
}

static void run_parallel(struct sl_stage *s, bool woken)
{
    if (woken) s->flush_req = true;
    sl__workers_run(s);
    if (s->p->done) return;
    if (sl__workers_inline(s)) { /* workers: auto, and batches became cheap: the loop */
        sl__schedule(s);
        return;
    }
    if (s->flush_req && sl__workers_idle(s) && sl__stage_outputs_have_room(s)) {
        s->flush_req = false;
        flush_stage(s, false);
    }
    if (sl__workers_idle(s)) end_input(s);
}

static void run_async(struct sl_stage *s, bool woken)
{
    if (woken) s->flush_req = true;
    sl__async_run(s);
    if (s->p->done) return;
    if (s->flush_req && sl__async_idle(s) && sl__stage_outputs_have_room(s)) {
        s->flush_req = false;
        flush_stage(s, false);
    }
    if (sl__async_idle(s)) end_input(s);
}

/* Called by workers.c on the loop thread. */
struct sl_batch *sl__pop_input(struct sl_stage *s)
{
    return pop_input(s);
}

/* ---- sinks ------------------------------------------------------------------------------ */

/* Takes the next input batch for sink `s` and counts it (once: a retried batch comes
 * from sl__retry_take instead). NULL when there is none now, after ending the input if
 * it is drained, or when the run failed. */
static struct sl_batch *sink_input(struct sl_stage *s)
{
    struct sl_batch *b = pop_input(s);
    if (!b) {
        end_input(s);
        if (s->input_ended && s->outstanding == 0) finish_stage(s);
        return NULL;
    }
    /* A batch shared with another branch goes to the sink as a view, so that each
     * sink's sl_ack() is told apart. */
    struct sl_batch *v = b->refs == 1 ? b : sl__batch_view(b, s);
    if (!v) {
        sl__batch_release(b);
        stage_failed(s, sl_stage_error(s, SL_ENOMEM, "out of memory"));
        return NULL;
    }
    if (v != b) sl__batch_release(b);
    v->sink = s;
    s->st.events_in += v->n;
    s->st.bytes_in += v->bytes;
    s->st.batches_in++;
    s->outstanding++;
    sl__sink_event_age(s, v);
    return v;
}

static void run_sink(struct sl_stage *s)
{
    /* While a batch waits for its retry, the sink is left alone: its timer runs it. */
    if (sl__retry_waiting(s)) return;
    if (s->input_ended) { /* flushed: done once the last acknowledgement is in */
        if (s->outstanding == 0) finish_stage(s);
        return;
    }
    for (int i = 0; i < STAGE_BURST; i++) {
        if (s->pending || s->p->done) return;
        struct sl_batch *v = sl__retry_take(s); /* before any other batch */
        if (!v && !(v = sink_input(s))) return;
        int64_t t0 = sl__now_ns();
        enum sl_poll r = s->type->write(s, v);
        sl__stage_time_batch(s, sl__now_ns() - t0);
        if (r == SL_RETRY) { /* not taken: the runtime keeps it for the next attempt */
            sl__retry_hold(s, v);
            return;
        }
        if (r != SL_ERROR) sl__retry_succeeded(s);
        if (r == SL_PENDING) {
            if (atomic_exchange(&s->wake_req, 0)) continue;
            s->pending = true;
            return;
        }
        if (r == SL_ERROR) { /* the batch comes back to us, unacknowledged */
            stage_failed(s, SL_ESTAGE);
            s->outstanding--;
            sl__batch_release(v);
            return;
        }
    }
    sl__schedule(s);
}

/* The batch home's `acked` hook: sink `s` acknowledged `v`. */
void sl__sink_acked(struct sl_stage *s, struct sl_batch *v)
{
    s->outstanding--;
    s->st.acked += v->n;
    s->st.events_out += v->n;
    s->st.bytes_out += v->bytes;
    s->st.batches_out++;
    if (s->input_ended && s->outstanding == 0) sl__schedule(s);
}

/* ---- ending ------------------------------------------------------------------------------ */

static void finish_stage(struct sl_stage *s)
{
    struct sl_pipeline *p = s->p;
    if (s->finished) return;
    s->finished = true;
    s->pending = false;
    tell_done(s);
    for (uint32_t i = 0; i < s->nports; i++)
        for (uint32_t j = 0; j < s->ports[i].nedges; j++) {
            struct sl_queue *q = s->ports[i].edges[j];
            q->closed = true;
            sl__schedule(q->to);
        }
    /* A source is told it has ended (SL_DONE or a stop): the place to start a last save,
     * which the run then waits for, like any work a stage has out. */
    if (s->type->kind == SL_SOURCE && s->type->flush && !p->done) {
        int rc = s->type->flush(s, NULL, true);
        if (rc < 0) stage_failed(s, rc);
    }
    sl__sched_check_complete(p);
}

/* The run is complete when every stage has ended and no work a stage sent off (executor
 * tasks, database requests) is still out: its done runs before the run ends. A stage
 * that ended, then failed in such a done (sl_stage_error: a last checkpoint save that
 * cannot be written), fails the run; nothing would run it again to notice. */
void sl__sched_check_complete(struct sl_pipeline *p)
{
    if (p->done) return;
    for (uint32_t i = 0; i < p->nstages && !p->failed; i++) {
        struct sl_stage *s = p->stages[i];
        if (s->finished && atomic_load(&s->err_set)) return stage_failed(s, s->err.code);
    }
    for (uint32_t i = 0; i < p->nstages; i++) {
        struct sl_stage *s = p->stages[i];
        if ((!s->finished && !p->failed) || s->submitted) return;
    }
    complete(p);
}

static void complete(struct sl_pipeline *p)
{
    if (p->done) return;
    p->done = true;
    if (p->stop_ev) event_del(p->stop_ev); /* an embedding loop must not wait for it */
    if (p->looping) event_base_loopbreak(p->base);
    if (p->opt.on_done) p->opt.on_done(p->opt.on_done_arg, p->failed ? p->err.code : 0);
}

void sl_pipeline_abort(struct sl_pipeline *p)
{
    if (p->done) return;
    p->batches.aborted = true;
    complete(p);
}

/* A graceful stop, or a failed run's wind-down, took longer than shutdown_timeout: what
 * is still in flight is not acknowledged (the next run replays it), and the run ends. */
static void stop_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct sl_pipeline *p = arg;
    if (p->done) return;
    if (!p->failed) {
        uint64_t unacked = 0;
        for (uint32_t i = 0; i < p->nstages; i++)
            if (p->stages[i]->type->kind == SL_SOURCE)
                unacked += p->stages[i]->st.events_in - p->stages[i]->st.acked;
        snprintf(p->err.msg, sizeof p->err.msg,
                 "stopping took longer than shutdown_timeout (%lld ms): aborted with %llu "
                 "events unacknowledged (the next run replays them)",
                 (long long)p->opt.shutdown_timeout_ms, (unsigned long long)unacked);
        record_failure(p, NULL, SL_ESTOPPED);
    } else {
        sl__log(p, NULL, SL_LOG_WARN,
                "winding down took longer than shutdown_timeout (%lld ms): ended without "
                "waiting for the work still out",
                (long long)p->opt.shutdown_timeout_ms);
    }
    sl_pipeline_abort(p);
}

/* Bounds a stop or a wind-down by shutdown_timeout (0: no bound). */
static void arm_deadline(struct sl_pipeline *p)
{
    int64_t ms = p->opt.shutdown_timeout_ms;
    if (p->stop_ev || ms <= 0 || !(p->stop_ev = evtimer_new(p->base, stop_deadline, p))) return;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = ms % 1000 * 1000};
    evtimer_add(p->stop_ev, &tv);
}

static void stop_now(struct sl_pipeline *p)
{
    if (p->stopping || p->done || p->failed) return;
    p->stopping = true;
    sl__log(p, NULL, SL_LOG_INFO, "stopping: draining what is in flight");
    arm_deadline(p);
    for (uint32_t i = 0; i < p->nstages; i++) {
        struct sl_stage *s = p->stages[i];
        if (s->type->kind == SL_SOURCE) finish_stage(s);
    }
}

void sl_pipeline_stop(struct sl_pipeline *p)
{
    if (p->running && pthread_equal(pthread_self(), p->loop_thread)) {
        stop_now(p);
        return;
    }
    atomic_store(&p->stop_req, 1);
    sl__wake_pipeline(p);
}

/* ---- the loop callbacks ------------------------------------------------------------------- */

static void run_stage(struct sl_stage *s)
{
    bool woken = atomic_exchange(&s->wake_req, 0);
    if (woken) s->pending = false;
    if (atomic_load(&s->err_set)) { /* failed asynchronously (sl_stage_error + wake) */
        stage_failed(s, s->err.code);
        return;
    }
    /* A chain's tail is run by its head's jobs: room in its outputs is the head's cue. */
    if (s->chain_head) sl__schedule(s->chain_head);
    int64_t t0 = sl__now_ns();
    switch (s->type->kind) {
    case SL_SOURCE: run_source(s); break;
    case SL_SINK: run_sink(s); break;
    default:
        if (s->workers && !sl__workers_inline(s))
            run_parallel(s, woken);
        else if (s->async)
            run_async(s, woken);
        else
            run_transform(s, woken);
    }
    s->st.busy_ns += (uint64_t)(sl__now_ns() - t0);
}

static void on_run(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct sl_pipeline *p = arg;
    p->run_armed = false;
    p->rounds++;
    p->round_deadline = sl__now_ns() + ROUND_NS;
    struct sl_stage *s;
    for (int budget = ROUND_BUDGET; budget > 0 && !p->done && !p->failed && (s = pop_ready(p));
         budget--) {
        run_stage(s);
        if (sl__now_ns() >= p->round_deadline) break;
    }
    if (p->ready_head) sl__sched_arm(p);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct sl_pipeline *p = arg;
    uint64_t n;
    while (read(fd, &n, sizeof n) > 0) {
    }
    atomic_store(&p->wake_signalled, 0); /* before the scan: a later wake writes again */
    if (atomic_exchange(&p->stop_req, 0)) stop_now(p);
    if (atomic_exchange(&p->executor_done, 0)) sl__executor_run_done(p);
    for (uint32_t i = 0; i < p->nstages; i++) {
        struct sl_stage *s = p->stages[i];
        if (atomic_exchange(&s->work_ready, 0) || atomic_load(&s->wake_req)) sl__schedule(s);
    }
}

void sl__wake_pipeline(struct sl_pipeline *p)
{
    if (!atomic_exchange(&p->wake_signalled, 1)) {
        uint64_t one = 1;
        ssize_t n = write(p->wake_fd, &one, sizeof one);
        (void)n; /* EAGAIN: the counter is already non-zero, the loop will wake */
    }
}

void sl__wake_loop(struct sl_stage *s)
{
    atomic_store(&s->work_ready, 1);
    sl__wake_pipeline(s->p);
}

static void on_signal(evutil_socket_t signo, short what, void *arg)
{
    (void)what;
    struct sl_pipeline *p = arg;
    int count = ++p->signals_seen;
    if (p->on_signal) p->on_signal(p->on_signal_arg, (int)signo, count);
    if (count == 1)
        stop_now(p);
    else
        sl_pipeline_abort(p);
}

int sl_pipeline_catch_signals(struct sl_pipeline *p, void (*fn)(void *, int, int), void *arg)
{
    static const int signals[2] = {SIGINT, SIGTERM};
    p->on_signal = fn;
    p->on_signal_arg = arg;
    for (int i = 0; i < 2; i++) {
        if (p->sig_ev[i]) continue;
        p->sig_ev[i] = evsignal_new(p->base, signals[i], on_signal, p);
        if (!p->sig_ev[i] || evsignal_add(p->sig_ev[i], NULL)) return SL_ENOMEM;
    }
    return 0;
}

int sl__sched_init(struct sl_pipeline *p)
{
    p->run_ev = evtimer_new(p->base, on_run, p);
    p->wake_ev = event_new(p->base, p->wake_fd, EV_READ | EV_PERSIST, on_wake, p);
    if (!p->run_ev || !p->wake_ev || event_add(p->wake_ev, NULL)) return SL_ENOMEM;
    return 0;
}
