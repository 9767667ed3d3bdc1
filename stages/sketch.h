/* A quantile sketch for the aggregate stage's p50/p90/p99/quantile metrics (stages/
 * sketch.c): DDSketch's logarithmic buckets. Private to stages/, names sl__sketch_*.
 *
 * Guarantee: for 0 <= q <= 1, sl__sketch_quantile answers within SL__SKETCH_ALPHA (1 %)
 * relative error of the value of rank floor(q * (n - 1)) among the n values added
 * (sorted ascending), whatever their distribution, as long as no more than
 * SL__SKETCH_MAX_BINS buckets are needed on either side of zero: 2048 buckets span a
 * ratio of 10^17 between the smallest and the largest magnitude. Past that, the
 * smallest magnitudes share the lowest bucket (only low quantiles lose accuracy, as in
 * DDSketch). Memory: at most 2 x 2048 counts; two sketches merge by adding counts. */
#ifndef SLUICE_STAGES_SKETCH_H
#define SLUICE_STAGES_SKETCH_H

#include <stdbool.h>
#include <stdint.h>

#define SL__SKETCH_ALPHA    0.01
#define SL__SKETCH_MAX_BINS 2048

/* Counts of one side of zero, by bucket index: bucket i holds magnitudes in
 * (gamma^(i-1), gamma^i]. */
struct sl__sketch_store {
    uint64_t *bins; /* counts, bins[k] for index lo + k (owned) */
    int32_t lo;     /* index of bins[0] */
    uint32_t n;     /* bins in use */
};

struct sl__sketch {
    struct sl__sketch_store pos, neg; /* values > 0, and the magnitudes of values < 0 */
    uint64_t zeros;                   /* values too close to 0 for a bucket (|x| < 1e-9) */
    uint64_t count;                   /* values added */
};

/* Adds x (finite). Returns 0, or SL_ENOMEM (the sketch is unchanged). */
int sl__sketch_add(struct sl__sketch *s, double x);
/* Adds every value of `from` to `into`. Returns 0 or SL_ENOMEM. */
int sl__sketch_merge(struct sl__sketch *into, const struct sl__sketch *from);
/* The estimate of quantile q (clamped to 0..1); false when the sketch is empty. */
bool sl__sketch_quantile(const struct sl__sketch *s, double q, double *out);
void sl__sketch_free(struct sl__sketch *s);

#endif
