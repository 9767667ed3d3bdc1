/* Operator chaining: which stages run together in one job (workers.c runs them).
 *
 * A stage on workers and the stage that alone consumes its port 0 form a chain when that
 * next stage could run on workers too (a parallel transform or filter, not asynchronous)
 * and neither keeps state for a flush(): parse_json -> filter -> remap become one unit, so
 * that a batch goes to a worker once for the three rather than three times, and a
 * filter's events pruned by the parse before it are dropped on the same thread. The next
 * stage must have as many threads as the head (sl_stage_thread() gives it the head
 * worker's number) and only that one input, so that its input order is the head's. */
#include "runtime/internal.h"

/* Whether `t` may run in the jobs of `head` after `s`. */
static bool chainable(const struct sl_stage *head, const struct sl_stage *s,
                      const struct sl_stage *t)
{
    if (s->nports == 0 || s->ports[0].nedges != 1 || t->ninputs != 1) return false;
    if (t->type->kind != SL_TRANSFORM && t->type->kind != SL_FILTER) return false;
    if (!(t->type->flags & SL_STAGE_PARALLEL) || t->type->map_async || t->type->flush) return false;
    return t->nworkers >= head->nworkers && t->workers_auto == head->workers_auto;
}

/* A transform or filter on workers, with no state for flush(). */
static bool on_workers(const struct sl_stage *s)
{
    return s->nworkers > 0 && !s->type->map_async && !s->type->flush &&
           (s->type->kind == SL_TRANSFORM || s->type->kind == SL_FILTER);
}

/* Whether the stage before `s` would take it into its chain: then `s` heads none. */
static bool follows(const struct sl_stage *s)
{
    if (s->ninputs != 1 || s->inputs[0]->port != 0) return false;
    const struct sl_stage *u = s->inputs[0]->from;
    return on_workers(u) && chainable(u, u, s);
}

void sl__workers_chain(struct sl_pipeline *p)
{
    for (uint32_t i = 0; i < p->nstages; i++) {
        struct sl_stage *head = p->stages[i];
        if (!on_workers(head) || head->chain_head || head->chain_next || follows(head)) continue;
        struct sl_stage *s = head;
        for (int n = 1; n < SL__CHAIN_MAX; n++) {
            if (s->nports == 0 || s->ports[0].nedges != 1) break;
            struct sl_stage *t = s->ports[0].edges[0]->to;
            if (t->chain_next || t == head || !chainable(head, s, t)) break;
            s->chain_next = t;
            t->chain_head = head;
            s = t;
        }
    }
}
