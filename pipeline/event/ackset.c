/* Ack sets: a stage that consumes events now but answers for them later (an aggregate
 * window) defers their acknowledgement without keeping their memory. The set holds the
 * source batches the events came from; those batches free their memory as soon as
 * nothing reads them, but are acknowledged to their source only once every hold is gone:
 * when the set is freed, or, once handed to an output with sl_emit_ack_set(), when that
 * output is acknowledged downstream. Loop thread only. */
#include <stdlib.h>

#include "event/internal.h"

struct sl_ack_set {
    struct sl_batch **src; /* source batches held, each once per hold */
    size_t n, cap;         /* used / allocated */
};

struct sl_ack_set *sl_ack_set_new(void)
{
    return calloc(1, sizeof(struct sl_ack_set));
}

static int hold(struct sl_ack_set *set, struct sl_batch *src)
{
    /* Events of one batch arrive together: one hold per run of the same source batch.
     * Comparing with a held batch is safe: it cannot be recycled while held. */
    if (set->n && set->src[set->n - 1] == src) return 0;
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 16;
        struct sl_batch **ns = realloc(set->src, cap * sizeof *ns);
        if (!ns) return SL_ENOMEM;
        set->src = ns;
        set->cap = cap;
    }
    src->holds++;
    set->src[set->n++] = src;
    return 0;
}

/* Walks from `b` to the source batches its events come from. */
static int collect(struct sl_ack_set *set, struct sl_batch *b, int depth)
{
    if (depth > 64) return 0; /* chains are as long as pipelines; a bound keeps it safe */
    if (b->source) return hold(set, b);
    if (b->view_of) return collect(set, b->view_of, depth + 1);
    for (uint32_t i = 0; i < b->nparents; i++) {
        struct sl_batch *p =
            i < SL__INLINE_PARENTS ? b->parents[i] : b->more_parents[i - SL__INLINE_PARENTS];
        int rc = collect(set, p, depth + 1);
        if (rc) return rc;
    }
    for (uint32_t i = 0; i < b->nacks; i++) {
        int rc = hold(set, b->acks[i]);
        if (rc) return rc;
    }
    return 0;
}

int sl_ack_set_add(struct sl_ack_set *set, struct sl_batch *b)
{
    return collect(set, b, 0);
}

size_t sl__ack_set_count(const struct sl_ack_set *set)
{
    return set->n;
}

/* Makes `out` hold every acknowledgement of `set` too. */
int sl__ack_set_copy_to(const struct sl_ack_set *set, struct sl_batch *out)
{
    for (size_t i = 0; i < set->n; i++) {
        int rc = sl__batch_hold_ack(out, set->src[i]);
        if (rc) return rc;
    }
    return 0;
}

int sl__ack_set_move(struct sl_ack_set *to, struct sl_ack_set *from)
{
    if (to->cap - to->n < from->n) {
        size_t cap = to->cap ? to->cap : 16;
        while (cap - to->n < from->n) cap *= 2;
        struct sl_batch **ns = realloc(to->src, cap * sizeof *ns);
        if (!ns) return SL_ENOMEM;
        to->src = ns;
        to->cap = cap;
    }
    for (size_t i = 0; i < from->n; i++) to->src[to->n++] = from->src[i]; /* holds move */
    from->n = 0;
    return 0;
}

void sl__ack_set_clear(struct sl_ack_set *set)
{
    size_t n = set->n;
    set->n = 0;
    for (size_t i = 0; i < n; i++) sl__ack_drop(set->src[i]);
}

void sl_ack_set_free(struct sl_ack_set *set)
{
    if (!set) return;
    sl__ack_set_clear(set);
    free(set->src);
    free(set);
}
