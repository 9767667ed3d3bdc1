/* DDSketch's logarithmic buckets (see sketch.h): a magnitude x > 0 goes to bucket
 * ceil(log(x) / log(gamma)), gamma = (1 + alpha) / (1 - alpha), and a bucket answers
 * 2 gamma^i / (gamma + 1), which is within alpha of every magnitude in it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

#include "sketch.h"

#define GAMMA     ((1 + SL__SKETCH_ALPHA) / (1 - SL__SKETCH_ALPHA))
#define MIN_VALUE 1e-9 /* smaller magnitudes count as zero */

static int32_t index_of(double x)
{
    return (int32_t)ceil(log(x) / log(GAMMA));
}

static double value_of(int32_t i)
{
    return 2 * pow(GAMMA, i) / (GAMMA + 1);
}

/* Makes room for index i in st (a window of at most MAX_BINS buckets; past it the
 * lowest buckets fold into the lowest kept). Returns the slot for i. */
static uint64_t *slot(struct sl__sketch_store *st, int32_t i)
{
    if (st->n == 0) {
        if (!(st->bins = calloc(1, sizeof *st->bins))) return NULL;
        st->lo = i, st->n = 1;
        return &st->bins[0];
    }
    int32_t lo = i < st->lo ? i : st->lo, hi = st->lo + (int32_t)st->n - 1;
    if (i > hi) hi = i;
    if (hi - lo + 1 > SL__SKETCH_MAX_BINS) lo = hi - SL__SKETCH_MAX_BINS + 1; /* fold low */
    uint32_t n = (uint32_t)(hi - lo + 1);
    if (lo != st->lo || n != st->n) {
        uint64_t *nb = calloc(n, sizeof *nb);
        if (!nb) return NULL;
        for (uint32_t k = 0; k < st->n; k++) {
            int32_t j = st->lo + (int32_t)k;
            nb[j < lo ? 0 : j - lo] += st->bins[k];
        }
        free(st->bins);
        st->bins = nb, st->lo = lo, st->n = n;
    }
    return &st->bins[(i < lo ? lo : i) - lo];
}

static int store_add(struct sl__sketch_store *st, int32_t i, uint64_t c)
{
    uint64_t *b = slot(st, i);
    if (!b) return SL_ENOMEM;
    *b += c;
    return 0;
}

int sl__sketch_add(struct sl__sketch *s, double x)
{
    int rc = 0;
    if (fabs(x) < MIN_VALUE)
        s->zeros++;
    else
        rc = store_add(x > 0 ? &s->pos : &s->neg, index_of(fabs(x)), 1);
    if (!rc) s->count++;
    return rc;
}

int sl__sketch_merge(struct sl__sketch *into, const struct sl__sketch *from)
{
    for (uint32_t k = 0; k < from->pos.n; k++)
        if (from->pos.bins[k] &&
            store_add(&into->pos, from->pos.lo + (int32_t)k, from->pos.bins[k]))
            return SL_ENOMEM;
    for (uint32_t k = 0; k < from->neg.n; k++)
        if (from->neg.bins[k] &&
            store_add(&into->neg, from->neg.lo + (int32_t)k, from->neg.bins[k]))
            return SL_ENOMEM;
    into->zeros += from->zeros;
    into->count += from->count;
    return 0;
}

bool sl__sketch_quantile(const struct sl__sketch *s, double q, double *out)
{
    if (s->count == 0) return false;
    q = q < 0 ? 0 : q > 1 ? 1 : q;
    uint64_t rank = (uint64_t)(q * (double)(s->count - 1)), seen = 0;
    for (uint32_t k = s->neg.n; k-- > 0;) { /* the most negative first */
        seen += s->neg.bins[k];
        if (seen > rank) return *out = -value_of(s->neg.lo + (int32_t)k), true;
    }
    seen += s->zeros;
    if (seen > rank) return *out = 0, true;
    for (uint32_t k = 0; k < s->pos.n; k++) {
        seen += s->pos.bins[k];
        if (seen > rank) return *out = value_of(s->pos.lo + (int32_t)k), true;
    }
    *out = value_of(s->pos.lo + (int32_t)s->pos.n - 1); /* not reached: counts add up */
    return true;
}

void sl__sketch_free(struct sl__sketch *s)
{
    free(s->pos.bins);
    free(s->neg.bins);
    memset(s, 0, sizeof *s);
}
