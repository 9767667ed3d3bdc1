/* Expression evaluation: walks the typed tree over one event. Nothing here allocates on
 * the heap: field values are compared where they lie, strings built along the way go
 * to an on-stack scratch area (then, for sl_expr_eval, to the batch arena). */
#define _GNU_SOURCE /* memmem */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "event/internal.h"
#include "expr/internal.h"

char *sl__ctx_alloc(struct sl__ctx *c, size_t size)
{
    if (c->cap - c->used >= size) {
        char *m = c->buf + c->used;
        c->used += size;
        return m;
    }
    char *m = NULL;
    if (c->wev)
        m = sl_event_alloc(c->wev, size);
    else if (c->pool)
        m = sl__pool_alloc(c->pool, size);
    else {
        c->limit = "a string built by the expression exceeds its 8 KiB scratch";
        return NULL; /* sl_expr_test: the value becomes null, as documented */
    }
    if (!m) c->nomem = true;
    return m;
}

/* ---- JSON-escaped strings, decoded on the fly ---------------------------------------------- */

struct sdec {
    const char *s;   /* the bytes */
    size_t i, n;     /* position / length */
    bool esc;        /* s holds JSON escapes */
    char u[4];       /* bytes of the escape being returned */
    unsigned ul, ui; /* bytes in u / returned so far */
};

/* Decodes the escape at d->s[d->i] == '\\' into d->u, the way sl_value_unescape() does
 * (lone surrogates become U+FFFD); an invalid escape stands for itself. */
static void sdec_escape(struct sdec *d)
{
    const char *s = d->s;
    size_t i = d->i, n = d->n;
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *k = i + 1 < n ? memchr(from, s[i + 1], sizeof from - 1) : NULL;
    d->ui = 0;
    if (k) {
        d->u[0] = to[k - from];
        d->ul = 1, d->i = i + 2;
        return;
    }
    size_t j = i + 1;
    size_t ul = j < n && s[j] == 'u' ? sl__unescape_u(s, n, &j, d->u) : 0;
    if (!ul) {
        d->u[0] = '\\';
        d->ul = 1, d->i = i + 1;
        return;
    }
    d->ul = (unsigned)ul;
    d->i = j;
}

static int sdec_next(struct sdec *d)
{
    if (d->ui < d->ul) return (unsigned char)d->u[d->ui++];
    if (d->i >= d->n) return -1;
    if (!d->esc || d->s[d->i] != '\\') return (unsigned char)d->s[d->i++];
    sdec_escape(d);
    return (unsigned char)d->u[d->ui++];
}

static struct sdec sdec_of(const struct sl_value *v)
{
    return (struct sdec){.s = v->s, .n = v->len, .esc = (v->flags & SL_VALUE_ESCAPED) != 0};
}

/* Equality of n bytes; short ones (most constants in conditions) with overlapping word
 * loads instead of a call to memcmp. */
static inline bool same_bytes(const char *a, const char *b, size_t n)
{
    uint64_t x, y, u, w;
    uint32_t i, j, k, l;
    if (n >= 8 && n <= 16) {
        memcpy(&x, a, 8), memcpy(&y, b, 8), memcpy(&u, a + n - 8, 8), memcpy(&w, b + n - 8, 8);
        return ((x ^ y) | (u ^ w)) == 0;
    }
    if (n >= 4 && n < 8) {
        memcpy(&i, a, 4), memcpy(&j, b, 4), memcpy(&k, a + n - 4, 4), memcpy(&l, b + n - 4, 4);
        return ((i ^ j) | (k ^ l)) == 0;
    }
    if (n < 4) {
        for (size_t q = 0; q < n; q++)
            if (a[q] != b[q]) return false;
        return true;
    }
    return memcmp(a, b, n) == 0;
}

/* Orders two strings by their decoded bytes; plain ones with one memcmp. */
static int str_cmp(const struct sl_value *a, const struct sl_value *b)
{
    if (!((a->flags | b->flags) & SL_VALUE_ESCAPED)) {
        int c = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
        if (c) return c < 0 ? -1 : 1;
        return (a->len > b->len) - (a->len < b->len);
    }
    struct sdec x = sdec_of(a), y = sdec_of(b);
    for (;;) {
        int p = sdec_next(&x), q = sdec_next(&y);
        if (p != q) return p < q ? -1 : 1;
        if (p < 0) return 0;
    }
}

/* ---- the text of a value -------------------------------------------------------------------- */

static bool fmt_number(struct sl__ctx *c, const struct sl_value *v, const char **s, size_t *len)
{
    char *o = sl__ctx_alloc(c, 32);
    if (!o) return false;
    int n;
    if (v->type == SL_INT) {
        n = snprintf(o, 32, "%lld", (long long)v->i);
    } else {
        n = snprintf(o, 32, "%.15g", v->f);
        if (strtod(o, NULL) != v->f) n = snprintf(o, 32, "%.17g", v->f);
        if (!strpbrk(o, ".eEn")) o[n++] = '.', o[n++] = '0'; /* 3.0 stays a float */
    }
    *s = o;
    *len = (size_t)n;
    return true;
}

size_t sl__text_decode(const struct sl_value *v, char *out)
{
    struct sdec d = sdec_of(v);
    size_t n = 0;
    for (int ch; (ch = sdec_next(&d)) >= 0;) out[n++] = (char)ch;
    return n;
}

bool sl__text_of(struct sl__ctx *c, const struct sl_value *v, const char **s, size_t *len)
{
    switch (v->type) {
    case SL_STRING:
        if (v->flags & SL_VALUE_ESCAPED) {
            char *o = v->len ? sl__ctx_alloc(c, v->len) : NULL; /* decoding never grows */
            if (!o) return false;
            *s = o, *len = sl__text_decode(v, o);
            return true;
        }
        *s = v->s ? v->s : "", *len = v->len;
        return true;
    case SL_INT:
    case SL_FLOAT:
        if (v->flags & SL_VALUE_TEXT) {
            *s = v->s, *len = v->len;
            return true;
        }
        return fmt_number(c, v, s, len);
    case SL_BOOL: *s = v->b ? "true" : "false", *len = v->b ? 4 : 5; return true;
    case SL_JSON: *s = v->s ? v->s : "", *len = v->len; return true;
    default: return false;
    }
}

/* ---- fields and comparisons -------------------------------------------------------------------
 */

static inline __attribute__((always_inline)) bool
get_field(const struct sl__ctx *c, const struct sl__node *n, struct sl_value *out)
{
    if (!c->ev) return false;
    if (!n->exact)
        return sl__event_get_hinted(c->ev, n->path, n->path_len, out, (uint32_t *)&n->hint) == 0;
    /* a top-level name with '.' or '[' in it: never a path into nested values; the last
     * field of a repeated name, as sl_event_get finds it */
    for (size_t i = sl_event_field_count(c->ev); i-- > 0;) {
        const char *name;
        size_t nl;
        if (sl_event_field_at(c->ev, i, &name, &nl, out) == 0 && nl == n->path_len &&
            memcmp(name, n->path, nl) == 0)
            return true;
    }
    return false;
}

static bool is_num(const struct sl_value *v)
{
    return v->type == SL_INT || v->type == SL_FLOAT;
}

/* Converts a number still in JSON text; text that is no number becomes null. */
static void number(struct sl_value *v)
{
    if ((v->flags & SL_VALUE_TEXT) && is_num(v) && sl_value_number(v)) *v = sl_value_null();
}

static double as_double(const struct sl_value *v)
{
    return v->type == SL_INT ? (double)v->i : v->f;
}

/* Orders two converted numbers into *r; false when one is NaN. */
static bool num_cmp(const struct sl_value *a, const struct sl_value *b, int *r)
{
    if (a->type == SL_INT && b->type == SL_INT) {
        *r = (a->i > b->i) - (a->i < b->i);
        return true;
    }
    double x = as_double(a), y = as_double(b);
    if (isnan(x) || isnan(y)) return false;
    *r = (x > y) - (x < y);
    return true;
}

static bool val_eq(struct sl_value *a, struct sl_value *b)
{
    number(a);
    number(b);
    int r;
    if (is_num(a) && is_num(b)) return num_cmp(a, b, &r) && r == 0;
    if (a->type != b->type) return false;
    switch (a->type) {
    case SL_NULL: return true;
    case SL_BOOL: return a->b == b->b;
    case SL_STRING:
        if (!((a->flags | b->flags) & SL_VALUE_ESCAPED))
            return a->len == b->len && same_bytes(a->s, b->s, a->len);
        return str_cmp(a, b) == 0;
    case SL_JSON: return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
    default: return false;
    }
}

/* Orders numbers with numbers and strings with strings; false for anything else. */
static bool val_order(struct sl_value *a, struct sl_value *b, int *r)
{
    number(a);
    number(b);
    if (is_num(a) && is_num(b)) return num_cmp(a, b, r);
    if (a->type != SL_STRING || b->type != SL_STRING) return false;
    *r = str_cmp(a, b);
    return true;
}

/* `field == "constant"`: a lookup, a length check and a compare of the bytes. */
static inline __attribute__((always_inline)) bool field_eq(const struct sl__node *n,
                                                           struct sl__ctx *c)
{
    struct sl_value v;
    if (!get_field(c, n->a, &v) || v.type != SL_STRING) return false;
    if (!(v.flags & SL_VALUE_ESCAPED))
        return v.len == n->lit.len && same_bytes(v.s, n->lit.s, v.len);
    return v.len >= n->lit.len && str_cmp(&v, &n->lit) == 0; /* decoding never grows */
}

static bool compare(const struct sl__node *n, struct sl__ctx *c)
{
    struct sl_value a, b;
    sl__eval(n->a, c, &a);
    sl__eval(n->b, c, &b);
    if (n->op == SL__OP_EQ) return val_eq(&a, &b);
    if (n->op == SL__OP_NE) return !val_eq(&a, &b);
    int r;
    if (!val_order(&a, &b, &r)) return false;
    switch (n->op) {
    case SL__OP_LT: return r < 0;
    case SL__OP_LE: return r <= 0;
    case SL__OP_GT: return r > 0;
    default: return r >= 0;
    }
}

static bool in_list(const struct sl__node *n, struct sl__ctx *c)
{
    struct sl_value a;
    sl__eval(n->a, c, &a);
    number(&a);
    for (uint32_t i = 0; i < n->n; i++) {
        struct sl_value b = n->kids[i]->lit;
        if (val_eq(&a, &b)) return true;
    }
    return false;
}

/* ---- strings and regexes ----------------------------------------------------------------------
 */

static bool string_op(const struct sl__node *n, struct sl__ctx *c)
{
    struct sl_value a, b;
    const char *s, *t;
    size_t sl, tl;
    sl__eval(n->a, c, &a);
    sl__eval(n->b, c, &b);
    if (!sl__text_of(c, &a, &s, &sl) || !sl__text_of(c, &b, &t, &tl)) return false;
    if (tl > sl) return false;
    switch (n->op) {
    case SL__OP_CONTAINS: return tl == 0 || memmem(s, sl, t, tl) != NULL;
    case SL__OP_STARTS: return memcmp(s, t, tl) == 0;
    default: return memcmp(s + sl - tl, t, tl) == 0;
    }
}

/* One match block per thread, made on its first match and freed when it exits: PCRE2
 * needs one per concurrent match, and making one per event would be an allocation. */
static pthread_key_t md_key;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static bool md_ready;

static void md_destroy(void *md)
{
    pcre2_match_data_free(md);
}

static void md_init(void)
{
    md_ready = pthread_key_create(&md_key, md_destroy) == 0;
}

static pcre2_match_data *thread_match_data(void)
{
    pthread_once(&md_once, md_init);
    if (!md_ready) return NULL;
    pcre2_match_data *md = pthread_getspecific(md_key);
    if (md) return md;
    md = pcre2_match_data_create(1, NULL); /* only "did it match" is asked */
    if (md && pthread_setspecific(md_key, md)) {
        pcre2_match_data_free(md);
        md = NULL;
    }
    return md;
}

bool sl__regex_match(struct sl__ctx *c, const pcre2_code *re, const char *s, size_t len)
{
    pcre2_match_data *md = thread_match_data();
    if (!md) {
        c->limit = "no memory for a regex match";
        return false;
    }
    int rc = pcre2_match(re, (PCRE2_SPTR)(len ? s : ""), len, 0, 0, md, c->x ? c->x->mctx : NULL);
    if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
        rc == PCRE2_ERROR_HEAPLIMIT || rc == PCRE2_ERROR_JIT_STACKLIMIT)
        c->limit = "a regex reached its match limit";
    return rc >= 0; /* 0: matched, ovector too small for the groups */
}

static bool regex_op(const struct sl__node *n, struct sl__ctx *c)
{
    struct sl_value a;
    const char *s;
    size_t len;
    sl__eval(n->a, c, &a);
    if (!sl__text_of(c, &a, &s, &len)) return false;
    return sl__regex_match(c, n->re, s, len) == (n->op == SL__OP_MATCH);
}

/* ---- arithmetic --------------------------------------------------------------------------------
 */

static void arith_int(int op, int64_t x, int64_t y, struct sl_value *out)
{
    int64_t r = 0;
    bool over = false;
    switch (op) {
    case SL__OP_ADD: over = __builtin_add_overflow(x, y, &r); break;
    case SL__OP_SUB: over = __builtin_sub_overflow(x, y, &r); break;
    case SL__OP_MUL: over = __builtin_mul_overflow(x, y, &r); break;
    default: /* MOD */
        if (y == 0)
            over = true;
        else
            r = y == -1 ? 0 : x % y; /* INT64_MIN % -1 traps */
        break;
    }
    *out = over ? sl_value_null() : sl_value_int(r);
}

static void arith(const struct sl__node *n, struct sl__ctx *c, struct sl_value *out)
{
    struct sl_value a, b;
    sl__eval(n->a, c, &a);
    sl__eval(n->b, c, &b);
    number(&a);
    number(&b);
    *out = sl_value_null();
    if (!is_num(&a) || !is_num(&b)) return;
    if (a.type == SL_INT && b.type == SL_INT && n->op != SL__OP_DIV) {
        arith_int(n->op, a.i, b.i, out);
        return;
    }
    double x = as_double(&a), y = as_double(&b);
    switch (n->op) {
    case SL__OP_ADD: *out = sl_value_float(x + y); break;
    case SL__OP_SUB: *out = sl_value_float(x - y); break;
    case SL__OP_MUL: *out = sl_value_float(x * y); break;
    case SL__OP_DIV:
        if (y != 0) *out = sl_value_float(x / y);
        break;
    default:
        if (y != 0) *out = sl_value_float(fmod(x, y));
        break;
    }
}

static void negate(const struct sl__node *n, struct sl__ctx *c, struct sl_value *out)
{
    struct sl_value a;
    sl__eval(n->a, c, &a);
    number(&a);
    if (a.type == SL_INT && a.i != INT64_MIN)
        *out = sl_value_int(-a.i);
    else if (a.type == SL_FLOAT)
        *out = sl_value_float(-a.f);
    else
        *out = sl_value_null();
}

/* ---- the walk
 * ------------------------------------------------------------------------------------ */

static bool test(const struct sl__node *n, struct sl__ctx *c);

/* An operand of && || !: `field == "constant"` without a trip through the switch. */
static inline bool test_kid(const struct sl__node *k, struct sl__ctx *c)
{
    return k->op == SL__OP_FIELD_EQ ? field_eq(k, c) : test(k, c);
}

/* && (`decides` false) and || (`decides` true): the first operand that answers `decides`
 * gives the answer. An operand that reached a limit (c->limit) may have answered wrongly,
 * which leaves the answer in doubt, unless another operand decides it without reaching
 * one: then the limit is moot (`a || b` with b true is true whatever a is).
 *
 * decide_in_doubt() goes on once a limit was met, before the node (`outer`) or by an
 * operand before kids[i] (`doubt`; `decided`: an operand so far answered `decides`): it
 * walks on past an answer in doubt to look for a sure one. The answer is the
 * short-circuit one either way, and the first limit met is the one reported. */
static __attribute__((noinline, cold)) bool decide_in_doubt(const struct sl__node *n,
                                                            struct sl__ctx *c, bool decides,
                                                            uint32_t i, const char *outer,
                                                            const char *doubt, bool decided)
{
    for (; i < n->n; i++) {
        c->limit = NULL;
        bool v = test_kid(n->kids[i], c);
        if (v == decides && !c->limit) {
            c->limit = outer;
            return decides;
        }
        if (!doubt) doubt = c->limit;
        decided |= v == decides;
    }
    c->limit = outer ? outer : doubt;
    return decided ? decides : !decides;
}

static inline __attribute__((always_inline)) bool decide(const struct sl__node *n,
                                                         struct sl__ctx *c, bool decides)
{
    if (c->limit) return decide_in_doubt(n, c, decides, 0, c->limit, NULL, false);
    for (uint32_t i = 0; i < n->n; i++) {
        const struct sl__node *k = n->kids[i];
        if (k->op == SL__OP_FIELD_EQ) { /* the hot path; it meets no limit */
            if (field_eq(k, c) == decides) return decides;
            continue;
        }
        bool v = test(k, c);
        if (c->limit) return decide_in_doubt(n, c, decides, i + 1, NULL, c->limit, v == decides);
        if (v == decides) return decides;
    }
    return !decides;
}

static bool test(const struct sl__node *n, struct sl__ctx *c)
{
    switch (n->op) {
    case SL__OP_FIELD_EQ: return field_eq(n, c);
    case SL__OP_FIELD_NE: return !field_eq(n, c);
    case SL__OP_AND: return decide(n, c, false);
    case SL__OP_OR: return decide(n, c, true);
    case SL__OP_NOT: return !test_kid(n->a, c);
    case SL__OP_EXISTS: {
        struct sl_value v;
        return get_field(c, n, &v);
    }
    case SL__OP_EQ:
    case SL__OP_NE:
    case SL__OP_LT:
    case SL__OP_LE:
    case SL__OP_GT:
    case SL__OP_GE: return compare(n, c);
    case SL__OP_IN: return in_list(n, c);
    case SL__OP_MATCH:
    case SL__OP_NMATCH: return regex_op(n, c);
    case SL__OP_CONTAINS:
    case SL__OP_STARTS:
    case SL__OP_ENDS: return string_op(n, c);
    default: {
        struct sl_value v;
        sl__eval(n, c, &v);
        return v.type == SL_BOOL && v.b;
    }
    }
}

static void call(const struct sl__node *n, struct sl__ctx *c, struct sl_value *out)
{
    struct sl_value args[SL__EXPR_MAX_ARGS];
    for (uint32_t i = 0; i < n->n; i++) sl__eval(n->kids[i], c, &args[i]);
    n->fn->fn(c, args, n->n, out);
}

void sl__eval(const struct sl__node *n, struct sl__ctx *c, struct sl_value *out)
{
    switch (n->op) {
    case SL__OP_LIT: *out = n->lit; return;
    case SL__OP_FIELD:
        if (!get_field(c, n, out)) *out = sl_value_null();
        return;
    case SL__OP_NEG: negate(n, c, out); return;
    case SL__OP_ADD:
    case SL__OP_SUB:
    case SL__OP_MUL:
    case SL__OP_DIV:
    case SL__OP_MOD: arith(n, c, out); return;
    case SL__OP_CALL: call(n, c, out); return;
    default: *out = sl_value_bool(test(n, c)); return;
    }
}

/* ---- the API
 * -------------------------------------------------------------------------------------- */

/* Kept out of line: its 8 KiB frame costs stack probes that most conditions (field
 * comparisons, logic, arithmetic) never need. */
static __attribute__((noinline)) bool test_with_scratch(const struct sl_expr *e,
                                                        const struct sl_event *ev)
{
    char scratch[SL__EXPR_SCRATCH];
    struct sl__ctx c = {.ev = ev, .x = e, .buf = scratch, .cap = sizeof scratch};
    return test(e->root, &c);
}

int sl_expr_check(const struct sl_expr *e, const struct sl_event *ev, struct sl_error *why)
{
    char scratch[SL__EXPR_SCRATCH];
    struct sl__ctx c = {.ev = ev, .x = e, .buf = scratch, .cap = sizeof scratch};
    bool yes = e->root->op == SL__OP_FIELD_EQ ? field_eq(e->root, &c) : test(e->root, &c);
    if (c.limit)
        return sl_error_set(why, SL_ELIMIT, "the condition cannot be evaluated: %s", c.limit);
    return yes;
}

bool sl_expr_test(const struct sl_expr *e, const struct sl_event *ev)
{
    if (e->scratch) return test_with_scratch(e, ev);
    struct sl__ctx c = {.ev = ev, .x = e};
    if (e->root->op == SL__OP_FIELD_EQ) return field_eq(e->root, &c); /* the common filter */
    return test(e->root, &c);
}

int sl_expr_eval(const struct sl_expr *e, struct sl_event *ev, struct sl_value *out)
{
    char scratch[SL__EXPR_SCRATCH];
    struct sl__ctx c = {.ev = ev, .wev = ev, .x = e, .buf = scratch, .cap = sizeof scratch};
    sl__eval(e->root, &c, out);
    /* A string built in the scratch must outlive this frame: move it to the arena. */
    uintptr_t at = (uintptr_t)out->s, lo = (uintptr_t)scratch;
    if (!c.nomem && out->s && at >= lo && at < lo + sizeof scratch) {
        char *m = sl_event_alloc(ev, out->len);
        if (m) memcpy(m, out->s, out->len);
        out->s = m;
        c.nomem = !m;
    }
    if (c.nomem) {
        *out = sl_value_null();
        return SL_ENOMEM;
    }
    return 0;
}
