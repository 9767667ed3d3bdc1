/* Built-in functions of the expression language. Each takes its evaluated arguments and
 * builds its result in the evaluation's scratch memory (see sl__ctx_alloc); a result
 * that cannot be made is null, never an error. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "expr/internal.h"

/* Converts a number still in JSON text; text that is no number becomes null. */
static void number(struct sl_value *v)
{
    if ((v->flags & SL_VALUE_TEXT) && (v->type == SL_INT || v->type == SL_FLOAT) &&
        sl_value_number(v))
        *v = sl_value_null();
}

static void fn_lower_upper(struct sl__ctx *c, struct sl_value *a, struct sl_value *out, bool up)
{
    const char *s;
    size_t len;
    *out = sl_value_null();
    if (!sl__text_of(c, a, &s, &len)) return;
    char *o = len ? sl__ctx_alloc(c, len) : (char *)"";
    if (!o) return;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (up && ch >= 'a' && ch <= 'z') ch = (char)(ch - 32);
        if (!up && ch >= 'A' && ch <= 'Z') ch = (char)(ch + 32);
        o[i] = ch;
    }
    *out = sl_value_string(o, len);
}

static void fn_lower(struct sl__ctx *c, struct sl_value *a, unsigned n, struct sl_value *out)
{
    (void)n;
    fn_lower_upper(c, a, out, false);
}

static void fn_upper(struct sl__ctx *c, struct sl_value *a, unsigned n, struct sl_value *out)
{
    (void)n;
    fn_lower_upper(c, a, out, true);
}

/* Elements of a JSON array or object: top-level commas, outside strings, plus one. */
static int64_t json_count(const char *s, size_t len)
{
    int depth = 0;
    int64_t commas = 0;
    bool any = false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '"') {
            for (i++; i < len && s[i] != '"'; i++)
                if (s[i] == '\\') i++;
            any = true;
        } else if (ch == '{' || ch == '[') {
            if (depth++ > 0) any = true;
        } else if (ch == '}' || ch == ']') {
            depth--;
        } else if (ch == ',' && depth == 1) {
            commas++;
        } else if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') {
            any = true;
        }
    }
    return any ? commas + 1 : 0;
}

static void fn_len(struct sl__ctx *c, struct sl_value *a, unsigned n, struct sl_value *out)
{
    (void)n;
    const char *s;
    size_t len;
    if (a->type == SL_JSON)
        *out = sl_value_int(json_count(a->s, a->len));
    else if (sl__text_of(c, a, &s, &len))
        *out = sl_value_int((int64_t)len);
    else
        *out = sl_value_null();
}

static void fn_concat(struct sl__ctx *c, struct sl_value *a, unsigned n, struct sl_value *out)
{
    const char *s[SL__EXPR_MAX_ARGS];
    size_t len[SL__EXPR_MAX_ARGS], total = 0;
    *out = sl_value_null();
    for (unsigned i = 0; i < n; i++) {
        if (!sl__text_of(c, &a[i], &s[i], &len[i])) {
            if (a[i].type != SL_NULL) return; /* a text that did not fit */
            s[i] = "", len[i] = 0;
        }
        total += len[i];
    }
    char *o = total ? sl__ctx_alloc(c, total) : (char *)"";
    if (!o) return;
    size_t at = 0;
    for (unsigned i = 0; i < n; i++) {
        if (len[i]) memcpy(o + at, s[i], len[i]);
        at += len[i];
    }
    *out = sl_value_string(o, total);
}

/* An integer argument (floats truncated); false for anything else. */
static bool int_arg(struct sl_value *v, int64_t *out)
{
    number(v);
    if (v->type == SL_INT) {
        *out = v->i;
        return true;
    }
    if (v->type != SL_FLOAT || !(v->f > -9.2e18 && v->f < 9.2e18)) return false;
    *out = (int64_t)v->f;
    return true;
}

static void fn_substr(struct sl__ctx *c, struct sl_value *a, unsigned n, struct sl_value *out)
{
    const char *s;
    size_t len;
    int64_t start, count = INT64_MAX;
    *out = sl_value_null();
    if (!sl__text_of(c, &a[0], &s, &len) || !int_arg(&a[1], &start)) return;
    if (n > 2 && !int_arg(&a[2], &count)) return;
    int64_t l = (int64_t)len;
    if (start < 0) start = start < -l ? 0 : start + l;
    if (start > l) start = l;
    if (count < 0) count = 0;
    if (count > l - start) count = l - start;
    *out = sl_value_string(s + start, (size_t)count);
}

static void fn_now(struct sl__ctx *c, struct sl_value *a, unsigned n, struct sl_value *out)
{
    (void)c, (void)a, (void)n;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    *out = sl_value_int((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
}

/* Parses a string argument as a number with the same rules as JSON field text. */
static bool parse_text_number(struct sl__ctx *c, struct sl_value *a, struct sl_value *out)
{
    const char *s;
    size_t len;
    if (!sl__text_of(c, a, &s, &len) || len == 0) return false;
    struct sl_value v = {.type = SL_INT, .flags = SL_VALUE_TEXT, .s = s, .len = (uint32_t)len};
    if (memchr(s, '.', len) || memchr(s, 'e', len) || memchr(s, 'E', len)) v.type = SL_FLOAT;
    if (sl_value_number(&v)) return false;
    *out = v;
    return true;
}

static void fn_to_int(struct sl__ctx *c, struct sl_value *a, unsigned n, struct sl_value *out)
{
    (void)n;
    struct sl_value v = *a;
    int64_t i;
    *out = sl_value_null();
    if (v.type == SL_BOOL) *out = sl_value_int(v.b);
    if (v.type == SL_STRING && !parse_text_number(c, a, &v)) return;
    if ((v.type == SL_INT || v.type == SL_FLOAT) && int_arg(&v, &i)) *out = sl_value_int(i);
}

static void fn_to_float(struct sl__ctx *c, struct sl_value *a, unsigned n, struct sl_value *out)
{
    (void)n;
    struct sl_value v = *a;
    *out = sl_value_null();
    if (v.type == SL_BOOL) *out = sl_value_float(v.b ? 1.0 : 0.0);
    if (v.type == SL_STRING && !parse_text_number(c, a, &v)) return;
    number(&v);
    if (v.type == SL_INT) *out = sl_value_float((double)v.i);
    if (v.type == SL_FLOAT) *out = sl_value_float(v.f);
}

/* floor/ceil/round: an integer stays; a float becomes the integer `f` makes of it, or
 * null outside the 64-bit range (and for NaN); anything else is null. */
static void rounded(struct sl_value *a, struct sl_value *out, double (*f)(double))
{
    struct sl_value v = *a;
    *out = sl_value_null();
    number(&v);
    if (v.type == SL_INT) *out = v;
    if (v.type != SL_FLOAT) return;
    double r = f(v.f);
    if (r >= -9223372036854775808.0 && r < 9223372036854775808.0) *out = sl_value_int((int64_t)r);
}

static void fn_floor(struct sl__ctx *c, struct sl_value *a, unsigned n, struct sl_value *out)
{
    (void)c, (void)n;
    rounded(a, out, floor);
}

static void fn_ceil(struct sl__ctx *c, struct sl_value *a, unsigned n, struct sl_value *out)
{
    (void)c, (void)n;
    rounded(a, out, ceil);
}

static void fn_round(struct sl__ctx *c, struct sl_value *a, unsigned n, struct sl_value *out)
{
    (void)c, (void)n;
    rounded(a, out, round);
}

/* div(a, b): a / b rounded down to an integer (Python's //): div(7, 2) = 3,
 * div(-7, 2) = -4; null for a zero divisor, an overflow or a non-number. */
static void fn_div(struct sl__ctx *c, struct sl_value *a, unsigned n, struct sl_value *out)
{
    (void)c, (void)n;
    struct sl_value x = a[0], y = a[1];
    *out = sl_value_null();
    number(&x);
    number(&y);
    if (x.type == SL_INT && y.type == SL_INT) {
        if (y.i == 0 || (x.i == INT64_MIN && y.i == -1)) return;
        int64_t q = x.i / y.i;
        if ((x.i % y.i != 0) && ((x.i < 0) != (y.i < 0))) q--;
        *out = sl_value_int(q);
        return;
    }
    if ((x.type != SL_INT && x.type != SL_FLOAT) || (y.type != SL_INT && y.type != SL_FLOAT))
        return;
    double d = y.type == SL_INT ? (double)y.i : y.f;
    if (d == 0) return;
    struct sl_value f = sl_value_float((x.type == SL_INT ? (double)x.i : x.f) / d);
    rounded(&f, out, floor);
}

static void fn_to_string(struct sl__ctx *c, struct sl_value *a, unsigned n, struct sl_value *out)
{
    (void)n;
    const char *s;
    size_t len;
    *out = sl__text_of(c, a, &s, &len) ? sl_value_string(s, len) : sl_value_null();
}

#define TEXT SL__TY_TEXT
#define NUM  SL__TY_NUM
#define STR  (SL__TY_STR | SL__TY_NULL)

/* The table: name, arity, result type, pure, argument types, implementation. */
static const struct sl__func funcs[] = {
    {"lower", 1, 1, STR, true, {TEXT}, fn_lower},
    {"upper", 1, 1, STR, true, {TEXT}, fn_upper},
    {"len", 1, 1, SL__TY_INT | SL__TY_NULL, true, {TEXT}, fn_len},
    {"concat", 1, SL__EXPR_MAX_ARGS, STR, true, {0}, fn_concat},
    {"substr", 2, 3, STR, true, {TEXT, NUM, NUM}, fn_substr},
    {"now", 0, 0, SL__TY_INT, false, {0}, fn_now},
    {"to_int", 1, 1, SL__TY_INT | SL__TY_NULL, true, {0}, fn_to_int},
    {"to_float", 1, 1, SL__TY_FLOAT | SL__TY_NULL, true, {0}, fn_to_float},
    {"to_string", 1, 1, STR, true, {0}, fn_to_string},
    {"floor", 1, 1, SL__TY_INT | SL__TY_NULL, true, {NUM}, fn_floor},
    {"ceil", 1, 1, SL__TY_INT | SL__TY_NULL, true, {NUM}, fn_ceil},
    {"round", 1, 1, SL__TY_INT | SL__TY_NULL, true, {NUM}, fn_round},
    {"div", 2, 2, SL__TY_INT | SL__TY_NULL, true, {NUM, NUM}, fn_div},
};

#define NFUNCS (sizeof funcs / sizeof *funcs)

const struct sl__func *sl__func_find(const char *name, size_t len)
{
    for (size_t i = 0; i < NFUNCS; i++)
        if (strlen(funcs[i].name) == len && memcmp(funcs[i].name, name, len) == 0) return &funcs[i];
    return NULL;
}

const char *sl__func_nearest(const char *name)
{
    const char *names[NFUNCS + 4];
    size_t n = 0;
    for (size_t i = 0; i < NFUNCS; i++) names[n++] = funcs[i].name;
    names[n++] = "exists";
    names[n++] = "contains";
    names[n++] = "starts_with";
    names[n++] = "ends_with";
    return sl__nearest(name, names, n);
}
