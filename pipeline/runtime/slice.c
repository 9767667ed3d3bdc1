/* Slices of the loop thread. The loop runs stages in rounds of at most ROUND_NS; a
 * transform or filter working through a batch on the loop looks at the clock every few
 * events, and when the round is spent it stops where it is, keeping the half-processed
 * batch and its outputs (a `cont`), and goes on at its next run, after libevent has
 * served fds, timers and signals. A stage that takes 30 ms an event (a regex at its
 * match limit) then holds the loop about one event at a time, not one batch.
 *
 * Looking at the clock costs ~20 ns, too much for every event of a fast stage: each
 * stage keeps how many events go between two looks (`slice_every`), halved while the
 * gaps are long and doubled while they are short, so a fast stage looks every few
 * hundred events and a slow one after each. */
#include <stdlib.h>

#include "runtime/internal.h"

#define EVERY_MAX    256    /* events between looks for the fastest stages */
#define GAP_LONG_NS  500000 /* a gap between looks longer than this: look more often */
#define GAP_SHORT_NS 50000  /* shorter than this: look less often */

struct sl__cont {
    bool active;             /* `e` holds a batch paused mid-way */
    int64_t ns;              /* its map/keep time so far */
    struct sl_emit e;        /* its input, outputs and position */
    struct sl_batch *outs[]; /* one per output port */
};

bool sl__slice_check(struct sl__slice *sl)
{
    if (!sl) return false;
    int64_t now = sl__now_ns(), gap = now - sl->last;
    uint32_t every = *sl->every;
    if (gap > GAP_LONG_NS && every > 1)
        every /= 2;
    else if (gap < GAP_SHORT_NS && every < EVERY_MAX)
        every *= 2;
    *sl->every = every;
    sl->last = now;
    return now >= sl->deadline;
}

bool sl__paused(const struct sl_stage *s)
{
    return s->cont && s->cont->active;
}

static struct sl__cont *cont_of(struct sl_stage *s)
{
    if (!s->cont) s->cont = calloc(1, sizeof *s->cont + s->nports * sizeof s->cont->outs[0]);
    return s->cont;
}

bool sl__process_sliced(struct sl_stage *s, struct sl_batch *in)
{
    struct sl__cont *c = cont_of(s);
    if (!c) { /* no memory to keep a pause: fail like any allocation on the path */
        if (in) sl__batch_release(in);
        sl__pipeline_fail(s->p, s, sl_stage_error(s, SL_ENOMEM, "out of memory"));
        return true;
    }
    if (in) {
        sl__emit_init(&c->e, s, in, c->outs);
        /* Writing the output into the input is safe only when no one else reads this
         * batch; a source batch keeps its events for the source. */
        c->e.in_place = in->refs == 1 && !in->source && !in->view_of;
    }
    if (!s->slice_every) s->slice_every = 1;
    struct sl__slice slice = {
        .deadline = s->p->round_deadline, .every = &s->slice_every, .last = sl__now_ns()};
    int64_t t0 = slice.last;
    int rc = sl__stage_process(s, c->e.in, &c->e, &slice);
    c->ns += sl__now_ns() - t0;
    c->active = rc == SL__PAUSED;
    if (c->active) return false;
    if (s->workers_auto) sl__workers_cost(s, c->ns);
    sl__stage_time_batch(s, c->ns); /* the whole batch, its pauses left out */
    c->ns = 0;
    sl__finish_or_fail(s, &c->e, rc);
    return true;
}

void sl__slice_free(struct sl_stage *s)
{
    if (s->cont && s->cont->active) sl__emit_finish(&s->cont->e, false); /* nothing pushed */
    free(s->cont);
    s->cont = NULL;
}
