/* The accumulators and windows behind the aggregate stage (stages/agg.c): private to
 * stages/, names sl__stage_agg_*. */
#ifndef SLUICE_STAGES_AGG_H
#define SLUICE_STAGES_AGG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "sketch.h"

enum sl__stage_agg_op {
    SL__AGG_COUNT = 0, /* events (with an argument: events where it is neither null nor
                          false, so count(level == "error") counts errors) */
    SL__AGG_SUM,       /* sum of the numbers */
    SL__AGG_MIN,       /* smallest number */
    SL__AGG_MAX,       /* largest number */
    SL__AGG_AVG,       /* mean of the numbers */
    SL__AGG_DISTINCT,  /* number of distinct values (exact but for 64-bit hash collisions) */
    SL__AGG_P50,       /* median, p90, p99 and quantile(x, q): estimates within 1 % */
    SL__AGG_P90,       /* relative error (sketch.h) */
    SL__AGG_P99,
    SL__AGG_QUANTILE,
};

/* One metric's running state for one group. */
struct sl__stage_agg_acc {
    uint64_t n;           /* values counted (events for a plain count) */
    bool all_int;         /* every number so far was an integer */
    int64_t isum;         /* sum while all_int (falls back to fsum on overflow) */
    double fsum;          /* sum as a double */
    int64_t imin, imax;   /* extremes while all_int */
    double fmin, fmax;    /* extremes as doubles */
    uint64_t *set;        /* distinct: open-addressing set of value hashes (owned) */
    uint32_t set_cap;     /* slots in set (a power of two) */
    uint32_t set_n;       /* hashes in set */
    struct sl__sketch sk; /* quantiles: the numbers' sketch */
};

/* Adds `v` (borrowed) to `a` by `op`. Numbers may be SL_VALUE_TEXT. Returns 0 or
 * SL_ENOMEM (a distinct set could not grow). */
int sl__stage_agg_add(struct sl__stage_agg_acc *a, enum sl__stage_agg_op op,
                      const struct sl_value *v);

/* The metric's value: an int or float, or null when no number was seen (min/max/avg,
 * quantiles). `q` is quantile(x, q)'s. */
struct sl_value sl__stage_agg_result(const struct sl__stage_agg_acc *a, enum sl__stage_agg_op op,
                                     double q);

/* Frees what `a` owns. */
void sl__stage_agg_free(struct sl__stage_agg_acc *a);

/* Parses a metric spec "op" or "op(argument)" (op: count, sum, min, max, avg, distinct,
 * p50, p90, p99) or "quantile(argument, q)" (0 <= q <= 1, into *q); `*arg`/`*arg_len`
 * receive the argument text (len 0: none) and `*arg_col` its 0-based offset in `spec`.
 * Returns 0, or SL_ECONFIG with `*why` (static text). */
int sl__stage_agg_parse(const char *spec, enum sl__stage_agg_op *op, double *q, const char **arg,
                        size_t *arg_len, size_t *arg_col, const char **why);

#endif
