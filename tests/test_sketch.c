/* The quantile sketch of the aggregate stage (stages/sketch.h): every quantile within
 * 1 % of the exact value of its rank on several distributions, merges equal to one
 * sketch of everything, bounded size over a huge range, and the stage's p50 / p90 / p99 /
 * quantile(x, q) metrics on a real pipeline. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/builtins.h>

#include "../stages/sketch.h"
#include "stage_helpers.h"

#define N 100000

static double values[N], sorted[N];
static uint64_t seed = 88172645463325252ull;

static double unit(void) /* xorshift64: (0, 1] */
{
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
    return (double)((seed >> 11) + 1) / 9007199254740992.0;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Adds values[0..n) to a sketch and checks every quantile against the sorted values. */
static void check_all(const char *what, size_t n)
{
    struct sl__sketch s = {0};
    for (size_t i = 0; i < n; i++) cr_assert_eq(sl__sketch_add(&s, values[i]), 0);
    memcpy(sorted, values, n * sizeof *values);
    qsort(sorted, n, sizeof *sorted, cmp);
    static const double qs[] = {0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1};
    for (size_t k = 0; k < sizeof qs / sizeof *qs; k++) {
        double exact = sorted[(size_t)(qs[k] * (double)(n - 1))], est;
        cr_assert(sl__sketch_quantile(&s, qs[k], &est));
        if (fabs(exact) < 1e-9)
            cr_assert_eq(est, 0, "%s q %g: %g for 0", what, qs[k], est);
        else
            cr_assert_leq(fabs(est - exact), 0.01 * fabs(exact) * (1 + 1e-12),
                          "%s q %g: %.17g for %.17g", what, qs[k], est, exact);
    }
    cr_assert_leq(s.pos.n, SL__SKETCH_MAX_BINS);
    cr_assert_leq(s.neg.n, SL__SKETCH_MAX_BINS);
    sl__sketch_free(&s);
}

Test(sketch, quantiles_within_one_percent_of_the_exact_value_of_their_rank)
{
    for (size_t i = 0; i < N; i++) values[i] = (double)(1 + (int)(unit() * 1000)); /* 1..1000 */
    check_all("uniform integers", N);
    for (size_t i = 0; i < N; i++) values[i] = -log(unit()) * 250; /* latencies, long tail */
    check_all("exponential", N);
    for (size_t i = 0; i < N; i++) values[i] = (unit() - 0.5) * 2e6; /* both signs */
    check_all("signed", N);
    for (size_t i = 0; i < N; i++) values[i] = i % 10 == 0 ? 0 : exp(unit() * 40 - 20); /* 0s */
    check_all("zeros and 17 decades", N);
    values[0] = 42;
    check_all("one value", 1);
}

Test(sketch, merging_two_halves_answers_as_one_sketch_of_all)
{
    struct sl__sketch a = {0}, b = {0}, all = {0};
    for (size_t i = 0; i < N; i++) {
        double x = i % 3 ? -log(unit()) * 100 : -(unit() * 50);
        cr_assert_eq(sl__sketch_add(i < N / 2 ? &a : &b, x), 0);
        cr_assert_eq(sl__sketch_add(&all, x), 0);
    }
    cr_assert_eq(sl__sketch_merge(&a, &b), 0);
    cr_assert_eq(a.count, (uint64_t)N);
    for (double q = 0; q <= 1; q += 0.05) {
        double x, y;
        cr_assert(sl__sketch_quantile(&a, q, &x) && sl__sketch_quantile(&all, q, &y));
        cr_assert_eq(x, y, "q %g: merged %.17g, whole %.17g", q, x, y);
    }
    sl__sketch_free(&a);
    sl__sketch_free(&b);
    sl__sketch_free(&all);
}

Test(sketch, size_stays_bounded_over_a_huge_range_and_high_quantiles_stay_exact)
{
    struct sl__sketch s = {0};
    for (size_t i = 0; i < N; i++) values[i] = exp(unit() * 690 - 18); /* 1e-8 .. 1e292 */
    for (size_t i = 0; i < N; i++) cr_assert_eq(sl__sketch_add(&s, values[i]), 0);
    cr_assert_eq(s.pos.n, SL__SKETCH_MAX_BINS, "the lowest buckets were folded");
    memcpy(sorted, values, sizeof values);
    qsort(sorted, N, sizeof *sorted, cmp);
    double est, exact = sorted[(size_t)(0.99 * (N - 1))];
    cr_assert(sl__sketch_quantile(&s, 0.99, &est));
    cr_assert_leq(fabs(est - exact), 0.01 * exact, "p99 %.17g for %.17g", est, exact);
    sl__sketch_free(&s);
    cr_assert_not(sl__sketch_quantile(&s, 0.5, &est), "an empty sketch has no quantile");
}

/* ---- the aggregate stage's quantile metrics ------------------------------------------------ */

static char *text[202];

Test(sketch, aggregate_p50_p90_p99_and_quantile)
{
    struct sl_pipeline *p = t_pipeline();
    for (int i = 0; i < 200; i++) { /* ms 1..100 twice over, one window, two services */
        char buf[96];
        snprintf(buf, sizeof buf, "{\"svc\":\"%s\",\"ms\":%d}", i < 100 ? "a" : "b", i % 100 + 1);
        text[i] = strdup(buf);
    }
    text[200] = strdup("{\"svc\":\"a\",\"ms\":\"n/a\"}"); /* not a number: not counted */
    text[201] = NULL;
    struct sl_stage *src = t_add_lines(p, (const char *const *)text);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, NULL);
    struct sl_stage *agg = t_stage(p, "agg", &sl_stage_aggregate,
                                   "window: 1h\nclock: processing\ngroup_by: [svc]\nmetrics:\n"
                                   "  med: p50(ms)\n  p90: p90(ms)\n  p99: p99(ms)\n"
                                   "  q75: 'quantile(ms * 2, 0.75)'\n");
    struct sl_stage *out = t_stage(p, "out", &t_capture, NULL);
    t_connect_port(p, src, NULL, json);
    t_connect_port(p, json, NULL, agg);
    t_connect_port(p, agg, NULL, out);
    t_run_ok(p);
    struct t_capture *c = sl_stage_state(out);
    cr_assert_eq(c->n, 2, "one result per service");
    for (size_t i = 0; i < 2; i++) { /* exact: ranks 49, 89, 98 and 74 of 1..100 */
        double med, p90, p99, q75;
        const char *f = c->fields[i];
        cr_assert_eq(sscanf(strstr(f, "med=F:"), "med=F:%lf", &med), 1, "%s", f);
        cr_assert_eq(sscanf(strstr(f, "p90=F:"), "p90=F:%lf", &p90), 1, "%s", f);
        cr_assert_eq(sscanf(strstr(f, "p99=F:"), "p99=F:%lf", &p99), 1, "%s", f);
        cr_assert_eq(sscanf(strstr(f, "q75=F:"), "q75=F:%lf", &q75), 1, "%s", f);
        cr_assert_leq(fabs(med - 50), 0.5, "%s", f);
        cr_assert_leq(fabs(p90 - 90), 0.9, "%s", f);
        cr_assert_leq(fabs(p99 - 99), 0.99, "%s", f);
        cr_assert_leq(fabs(q75 - 150), 1.5, "%s", f);
    }
    sl_pipeline_free(p);
    for (int i = 0; i < 201; i++) free(text[i]);
}
