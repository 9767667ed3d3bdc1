/* Accumulators of the aggregate stage: count, sum, min, max, avg, distinct count and
 * quantiles, and the parser of metric specs. See agg.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"

static bool is_number(struct sl_value *v)
{
    if (v->type != SL_INT && v->type != SL_FLOAT) return false;
    return sl_value_number(v) == 0;
}

static void add_number(struct sl__stage_agg_acc *a, const struct sl_value *v)
{
    double d = v->type == SL_INT ? (double)v->i : v->f;
    bool first = a->n == 0;
    if (first) a->all_int = true;
    if (v->type != SL_INT) a->all_int = false;
    if (a->all_int) {
        int64_t s;
        if (__builtin_add_overflow(a->isum, v->i, &s))
            a->all_int = false; /* the double sum takes over */
        else
            a->isum = s;
        if (first || v->i < a->imin) a->imin = v->i;
        if (first || v->i > a->imax) a->imax = v->i;
    }
    a->fsum += d;
    if (first || d < a->fmin) a->fmin = d;
    if (first || d > a->fmax) a->fmax = d;
    a->n++;
}

/* Inserts hash `h` (0 is stored as 1: slots use 0 for empty). */
static int set_add(struct sl__stage_agg_acc *a, uint64_t h)
{
    if (h == 0) h = 1;
    if ((a->set_n + 1) * 2 > a->set_cap) { /* keep it at most half full */
        uint32_t cap = a->set_cap ? a->set_cap * 2 : 16;
        uint64_t *ns = calloc(cap, sizeof *ns);
        if (!ns) return SL_ENOMEM;
        for (uint32_t i = 0; i < a->set_cap; i++) {
            if (!a->set[i]) continue;
            uint32_t j = (uint32_t)a->set[i] & (cap - 1);
            while (ns[j]) j = (j + 1) & (cap - 1);
            ns[j] = a->set[i];
        }
        free(a->set);
        a->set = ns;
        a->set_cap = cap;
    }
    uint32_t j = (uint32_t)h & (a->set_cap - 1);
    while (a->set[j]) {
        if (a->set[j] == h) return 0;
        j = (j + 1) & (a->set_cap - 1);
    }
    a->set[j] = h;
    a->set_n++;
    return 0;
}

int sl__stage_agg_add(struct sl__stage_agg_acc *a, enum sl__stage_agg_op op,
                      const struct sl_value *v0)
{
    struct sl_value v = *v0;
    switch (op) {
    case SL__AGG_COUNT: /* count(level == "error") counts the errors */
        if (v.type != SL_NULL && !(v.type == SL_BOOL && !v.b)) a->n++;
        return 0;
    case SL__AGG_DISTINCT: {
        if (v.type == SL_NULL) return 0;
        char buf[256];
        const char *s;
        size_t len;
        sl__stage_value_text(&v, buf, sizeof buf, &s, &len);
        uint8_t tag = v.type == SL_FLOAT ? (uint8_t)SL_INT : v.type; /* as keys do */
        return set_add(a, sl__stage_hash(s, len, tag));
    }
    case SL__AGG_P50:
    case SL__AGG_P90:
    case SL__AGG_P99:
    case SL__AGG_QUANTILE:
        if (!is_number(&v)) return 0;
        if (sl__sketch_add(&a->sk, v.type == SL_INT ? (double)v.i : v.f)) return SL_ENOMEM;
        a->n++;
        return 0;
    default:
        if (is_number(&v)) add_number(a, &v);
        return 0;
    }
}

static struct sl_value quantile(const struct sl__stage_agg_acc *a, double q)
{
    double x;
    return sl__sketch_quantile(&a->sk, q, &x) ? sl_value_float(x) : sl_value_null();
}

struct sl_value sl__stage_agg_result(const struct sl__stage_agg_acc *a, enum sl__stage_agg_op op,
                                     double q)
{
    switch (op) {
    case SL__AGG_P50: return quantile(a, 0.5);
    case SL__AGG_P90: return quantile(a, 0.9);
    case SL__AGG_P99: return quantile(a, 0.99);
    case SL__AGG_QUANTILE: return quantile(a, q);
    case SL__AGG_COUNT: return sl_value_int((int64_t)a->n);
    case SL__AGG_DISTINCT: return sl_value_int(a->set_n);
    case SL__AGG_SUM:
        if (a->n == 0) return sl_value_int(0);
        return a->all_int ? sl_value_int(a->isum) : sl_value_float(a->fsum);
    case SL__AGG_MIN:
        if (a->n == 0) return sl_value_null();
        return a->all_int ? sl_value_int(a->imin) : sl_value_float(a->fmin);
    case SL__AGG_MAX:
        if (a->n == 0) return sl_value_null();
        return a->all_int ? sl_value_int(a->imax) : sl_value_float(a->fmax);
    default:
        if (a->n == 0) return sl_value_null();
        return sl_value_float(a->fsum / (double)a->n);
    }
}

void sl__stage_agg_free(struct sl__stage_agg_acc *a)
{
    free(a->set);
    a->set = NULL;
    sl__sketch_free(&a->sk);
}

/* quantile(x, q): splits q (after the last comma of the argument) off `*len`. */
static int quantile_q(const char *arg, size_t *len, double *q, const char **why)
{
    size_t c = *len;
    while (c > 0 && arg[c - 1] != ',') c--;
    char buf[32], *end;
    size_t n = *len - c;
    if (c == 0 || n == 0 || n >= sizeof buf) {
        *why = "expected quantile(argument, q) with 0 <= q <= 1, e.g. quantile(latency_ms, 0.95)";
        return SL_ECONFIG;
    }
    memcpy(buf, arg + c, n);
    buf[n] = '\0';
    *q = strtod(buf, &end);
    while (*end == ' ' || *end == '\t') end++;
    if (end == buf || *end || !(*q >= 0 && *q <= 1)) {
        *why = "the q of quantile(argument, q) is a number from 0 to 1, e.g. 0.95";
        return SL_ECONFIG;
    }
    *len = c - 1;
    return 0;
}

int sl__stage_agg_parse(const char *spec, enum sl__stage_agg_op *op, double *q, const char **arg,
                        size_t *arg_len, size_t *arg_col, const char **why)
{
    static const char *const names[] = {"count",    "sum", "min", "max", "avg",
                                        "distinct", "p50", "p90", "p99", "quantile"};
    size_t i = strspn(spec, " \t");
    size_t w = i;
    while ((spec[w] >= 'a' && spec[w] <= 'z') || (spec[w] >= '0' && spec[w] <= '9') ||
           spec[w] == '_')
        w++;
    int found = -1;
    for (int k = 0; k < (int)(sizeof names / sizeof *names); k++)
        if (strlen(names[k]) == w - i && memcmp(names[k], spec + i, w - i) == 0) found = k;
    if (found < 0) {
        *why = "expected count, sum(x), min(x), max(x), avg(x), distinct(x), p50(x), p90(x), "
               "p99(x) or quantile(x, q)";
        return SL_ECONFIG;
    }
    *q = 0;
    *op = (enum sl__stage_agg_op)found;
    *arg_len = 0;
    *arg_col = w;
    size_t j = w + strspn(spec + w, " \t");
    if (!spec[j]) {
        if (found == SL__AGG_COUNT) return 0;
        *why = "this metric needs an argument, e.g. sum(latency_ms)";
        return SL_ECONFIG;
    }
    size_t end = strlen(spec);
    while (end > j && (spec[end - 1] == ' ' || spec[end - 1] == '\t')) end--;
    if (spec[j] != '(' || spec[end - 1] != ')' || end - j < 3) {
        *why = "expected op(argument), e.g. sum(latency_ms)";
        return SL_ECONFIG;
    }
    *arg = spec + j + 1;
    *arg_len = end - j - 2;
    *arg_col = j + 1;
    return found == SL__AGG_QUANTILE ? quantile_q(*arg, arg_len, q, why) : 0;
}
