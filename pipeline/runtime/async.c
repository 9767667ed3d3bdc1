/* Asynchronous transforms: the `await` inside a stage (Flink's async I/O, asyncio's
 * gather with a semaphore).
 *
 * An input batch becomes a `pend`: a batch of writable copies of its events (their arena
 * takes the values a stage sets; its parent is the input), and one struct sl_async per
 * event. The loop thread starts calls in input order while fewer than `max_in_flight`
 * are open (started and not yet passed on): reaching the bound stops the popping of
 * inputs, which is backpressure upstream. A call finishes from any thread with
 * sl_async_done()/sl_async_fail(): it is put on a locked list and the loop is woken;
 * the loop collects the list and passes results on, in input order (`ordered: true`:
 * only the oldest pend's finished prefix) or as they finish, through an ordinary
 * sl_emit whose outputs hold the pends' batches as parents. A pend is released once
 * all its events are passed on; only then can its input be acknowledged.
 *
 * The stage's input ends only when no pend is left (end_input in sched.c asks
 * sl__async_idle), so flush(end = true) never runs while a call is open. An abort
 * starts nothing more; what is open is released, unacknowledged, with the stage. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/internal.h"

enum call_state { CALL_IDLE = 0, CALL_RUNNING, CALL_FINISHED, CALL_PASSED };

struct sl_async {
    struct pend *pd;       /* the input batch the call belongs to */
    struct sl_async *next; /* finished list, then (unordered) the ready list */
    uint32_t i;            /* the event's index in pd */
    uint8_t state;         /* enum call_state; loop thread */
    uint8_t result;        /* enum sl_async_result, or RESULT_FAILED; the finisher's */
    int code;              /* failed: an SL_E* code */
    char *msg;             /* failed: the reason (owned), NULL: sl_strerror(code) */
};

#define RESULT_FAILED 0xff

struct pend {
    struct pend *next;     /* the next younger batch */
    struct sl_stage *s;    /* the stage */
    struct sl_batch *out;  /* the events, the arena of their new values; parent: input */
    struct sl_async *call; /* one per event */
    uint32_t n;            /* events */
    uint32_t started;      /* calls started, from 0 */
    uint32_t passed;       /* calls passed on (any order) */
    uint32_t first_open;   /* ordered: the first call not yet passed on */
    uint64_t held_round;   /* the pass_ready round that last held `out` for an emit */
};

struct sl__async {
    struct pend *head, *tail; /* batches being worked on, oldest first */
    uint32_t open;            /* calls started and not yet passed on */
    uint32_t running;         /* calls started and not yet finished */
    pthread_mutex_t lock;     /* guards `done` */
    struct sl_async *done;    /* finished calls not yet collected, newest first */
    struct sl_async *ready;   /* unordered: collected calls to pass on, oldest first */
    struct sl_async *ready_tail;
    uint64_t round; /* pass_ready rounds */
};

/* ---- what a stage calls ------------------------------------------------------------------- */

static void finished(struct sl_async *call, uint8_t result)
{
    struct sl_stage *s = call->pd->s;
    struct sl__async *a = s->async;
    call->result = result;
    pthread_mutex_lock(&a->lock);
    call->next = a->done;
    a->done = call;
    pthread_mutex_unlock(&a->lock);
    if (pthread_equal(pthread_self(), s->p->loop_thread))
        sl__schedule(s);
    else
        sl__wake_loop(s);
}

void sl_async_done(struct sl_async *call, enum sl_async_result result)
{
    finished(call, result == SL_ASYNC_DROP ? SL_ASYNC_DROP : SL_ASYNC_OK);
}

void sl_async_fail(struct sl_async *call, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    call->code = code < 0 ? code : SL_ESTAGE;
    call->msg = sl__strdup(msg); /* NULL when out of memory: the code's text will do */
    finished(call, RESULT_FAILED);
}

struct sl_stage *sl_async_stage(const struct sl_async *call)
{
    return call->pd->s;
}

/* ---- pends -------------------------------------------------------------------------------- */

static void pend_free(struct pend *pd)
{
    for (uint32_t i = 0; i < pd->n; i++) free(pd->call[i].msg);
    free(pd->call);
    sl__batch_release(pd->out);
    free(pd);
}

/* Turns input batch `in` (the stage's reference, taken) into a pend at the tail. */
static int pend_new(struct sl_stage *s, struct sl_batch *in)
{
    struct sl__async *a = s->async;
    struct pend *pd = calloc(1, sizeof *pd);
    struct sl_batch *out = pd ? sl__batch_get(&s->p->batches) : NULL;
    if (pd) pd->call = calloc(in->n ? in->n : 1, sizeof *pd->call);
    if (!pd || !out || !pd->call || sl__batch_reserve(out, in->n) ||
        sl__batch_add_parent(out, in)) {
        sl__batch_release(out);
        sl__batch_release(in);
        if (pd) free(pd->call);
        free(pd);
        return sl_stage_error(s, SL_ENOMEM, "out of memory");
    }
    memcpy(out->events, in->events, in->n * sizeof *out->events);
    for (uint32_t i = 0; i < in->n; i++) {
        out->events[i].batch = out; /* new values go to the copy's arena */
        pd->call[i] = (struct sl_async){.pd = pd, .i = i};
    }
    out->n = in->n;
    out->bytes = in->bytes;
    s->st.events_in += in->n;
    s->st.bytes_in += in->bytes;
    s->st.batches_in++;
    sl__batch_release(in); /* `out` holds it now */
    *pd = (struct pend){.s = s, .out = out, .call = pd->call, .n = in->n};
    if (a->tail)
        a->tail->next = pd;
    else
        a->head = pd;
    a->tail = pd;
    return 0;
}

/* ---- collecting and passing on ------------------------------------------------------------ */

/* Takes the calls finished since the last look, in the order they finished; unordered,
 * they queue up to be passed on in that order. */
static void collect(struct sl__async *a, bool ordered)
{
    pthread_mutex_lock(&a->lock);
    struct sl_async *c = a->done, *fifo = NULL;
    a->done = NULL;
    pthread_mutex_unlock(&a->lock);
    while (c) { /* the list is newest first: turn it around */
        struct sl_async *next = c->next;
        c->next = fifo;
        fifo = c;
        c = next;
    }
    for (c = fifo; c; c = fifo) {
        fifo = c->next;
        c->state = CALL_FINISHED;
        a->running--;
        if (ordered) continue;
        c->next = NULL;
        if (a->ready_tail)
            a->ready_tail->next = c;
        else
            a->ready = c;
        a->ready_tail = c;
    }
}

/* Passes one finished call's event on: to the output, dropped, or to on_error. */
static int pass(struct sl_stage *s, struct sl_emit *e, struct sl_async *c)
{
    struct sl_event *ev = &c->pd->out->events[c->i];
    c->state = CALL_PASSED;
    c->pd->passed++;
    s->async->open--;
    if (c->result == SL_ASYNC_OK)
        return sl_emit(e, ev) ? sl_stage_error(s, SL_ENOMEM, "out of memory") : 0;
    if (c->result == SL_ASYNC_DROP) {
        sl_stage_count_dropped(s, 1);
        return 0;
    }
    const char *msg = c->msg ? c->msg : sl_strerror(c->code);
    if (s->conf.on_error == SL__ON_ERROR_FAIL) return sl_stage_error(s, c->code, "%s", msg);
    return sl__emit_dead_letter(e, ev, msg);
}

/* Passes `c` on within emit `e`, whose outputs then hold its pend's batch. */
static int pass_held(struct sl_stage *s, struct sl_emit *e, struct sl_async *c)
{
    struct pend *pd = c->pd;
    if (pd->held_round != s->async->round) { /* the outputs will point into pd->out */
        pd->held_round = s->async->round;
        sl_emit_hold(e, pd->out);
    }
    return pass(s, e, c);
}

/* Ordered: the finished prefix of the oldest pends, stopping at the first call still
 * running. Returns 0 or the error of an event that fails the stage. */
static int pass_in_order(struct sl_stage *s, struct sl_emit *e)
{
    for (struct pend *pd = s->async->head; pd; pd = pd->next) {
        while (pd->first_open < pd->started && pd->call[pd->first_open].state == CALL_FINISHED) {
            int rc = pass_held(s, e, &pd->call[pd->first_open++]);
            if (rc) return rc;
        }
        if (pd->passed < pd->n) return 0; /* younger ones wait their turn */
    }
    return 0;
}

/* Unordered: every collected call, in the order they finished. */
static int pass_as_finished(struct sl_stage *s, struct sl_emit *e)
{
    struct sl__async *a = s->async;
    while (a->ready) {
        struct sl_async *c = a->ready;
        a->ready = c->next;
        if (!a->ready) a->ready_tail = NULL;
        int rc = pass_held(s, e, c);
        if (rc) return rc;
    }
    return 0;
}

/* Frees the pends whose events have all been passed on (any of them when unordered). */
static void free_passed(struct sl__async *a)
{
    struct pend **pp = &a->head, *last = NULL;
    while (*pp) {
        struct pend *pd = *pp;
        if (pd->passed < pd->n || pd->started < pd->n) {
            last = pd;
            pp = &pd->next;
            continue;
        }
        *pp = pd->next;
        pend_free(pd);
    }
    a->tail = last;
}

/* Passes on everything that may go, in one emit. */
static void pass_ready(struct sl_stage *s)
{
    struct sl__async *a = s->async;
    struct sl_batch *outs[s->nports];
    struct sl_emit e;
    sl__emit_init(&e, s, NULL, outs);
    a->round++;
    int rc = s->conf.ordered ? pass_in_order(s, &e) : pass_as_finished(s, &e);
    sl__finish_or_fail(s, &e, rc);
    free_passed(a);
}

/* ---- starting ------------------------------------------------------------------------------ */

/* Starts calls in input order while fewer than max_in_flight are open. */
static void start_calls(struct sl_stage *s)
{
    struct sl__async *a = s->async;
    while (a->open < (uint32_t)s->conf.max_in_flight && !s->p->done) {
        struct pend *pd = a->tail;
        if (!pd || pd->started == pd->n) {
            struct sl_batch *in = sl__pop_input(s);
            if (!in) return;
            if (pend_new(s, in)) {
                sl__pipeline_fail(s->p, s, SL_ENOMEM);
                return;
            }
            continue; /* an empty batch makes a pend with nothing to start: passed below */
        }
        struct sl_async *c = &pd->call[pd->started++];
        c->state = CALL_RUNNING;
        a->open++;
        a->running++;
        int rc = s->type->map_async(s, &pd->out->events[c->i], c);
        if (rc < 0) {
            if (!atomic_load(&s->err_set)) sl_stage_error(s, rc, "map_async failed");
            sl__pipeline_fail(s->p, s, rc);
            return;
        }
    }
}

void sl__async_run(struct sl_stage *s)
{
    struct sl__async *a = s->async;
    collect(a, s->conf.ordered);
    if (sl__stage_outputs_have_room(s)) pass_ready(s);
    if (s->p->done) return;
    start_calls(s);
    collect(a, s->conf.ordered); /* calls that finished while they started */
    if (!s->p->done && sl__stage_outputs_have_room(s)) pass_ready(s);
    s->st.in_flight = a->running;
}

bool sl__async_idle(const struct sl_stage *s)
{
    return !s->async || !s->async->head;
}

/* ---- lifetime ------------------------------------------------------------------------------ */

int sl__async_start(struct sl_stage *s)
{
    s->async = calloc(1, sizeof *s->async);
    if (!s->async) return SL_ENOMEM;
    pthread_mutex_init(&s->async->lock, NULL);
    return 0;
}

void sl__async_free(struct sl_stage *s)
{
    struct sl__async *a = s->async;
    if (!a) return;
    while (a->head) {
        struct pend *pd = a->head;
        a->head = pd->next;
        pend_free(pd);
    }
    pthread_mutex_destroy(&a->lock);
    free(a);
    s->async = NULL;
}
