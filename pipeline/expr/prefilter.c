/* Byte prefilters: the bytes a condition implies in the JSON text its fields came from
 * (predicate pushdown, issue 14). See sl_expr_prefilter_new() in include/sluice/expr.h.
 *
 * Which nodes imply bytes, and why (`T` is the JSON object text the event's fields were
 * parsed from, with no other field beside them):
 *   - `f == "L"` (SL__OP_FIELD_EQ): true only when field f is a string whose decoded
 *     bytes are L. A string of T is written `"` raw `"`, and its raw bytes decode to L
 *     either because they are L, or through escapes. So T holds `"L"`, or T holds an
 *     escape that could spell a byte of L (below).
 *   - `f in ["L1", "L2"]` with string literals only: one of `"L1"`, `"L2"`.
 *   - `a && b && ...`: false as soon as one operand is false without meeting a limit
 *     (eval.c, decide()), so the bytes of any one operand that implies bytes are implied.
 *   - `a || b || ...`: the union, when every operand implies bytes.
 * Nothing else implies bytes (numbers have many spellings; `!=`, `!` and missing fields
 * are true on text without the bytes). Every node named above is false without meeting a
 * limit (no scratch, no regex) when its bytes are absent, so sl_expr_check() answers 0.
 *
 * Escapes: a short escape (\" \\ \/ \b \f \n \r \t) decodes to '"', '\\', '/' or a
 * control byte; \uXXXX to any character. A literal made of printable ASCII other than
 * '"', '\\' and '/' ("plain") can therefore be spelt through an escape only by a \uXXXX
 * of one of its own bytes (XXXX < 0x80): text without such an escape holds the literal
 * byte for byte. For any other literal, any backslash in the text may spell it. */
#define _GNU_SOURCE /* memmem */
#include <stdlib.h>
#include <string.h>

#include "expr/internal.h"

#define MAX_ALTS    16 /* alternatives of one prefilter; more: no prefilter */
#define ONEPASS_MAX 4  /* alternatives searched in one pass (below), at most */

struct needle {
    char *s;    /* `"L"`, owned */
    size_t len; /* bytes of s */
};

struct sl_expr_prefilter {
    uint32_t n;                  /* alternatives: the text holds one of them */
    bool onepass;                /* 1..ONEPASS_MAX of them, each of 4 bytes or more */
    size_t kmax;                 /* the longest one's bytes */
    enum sl__find find;          /* the search the CPU allows, chosen once */
    bool strict;                 /* a literal is not plain: any backslash may spell it */
    uint8_t ascii[16];           /* plain literals: the bytes a \u00XX escape may spell */
    struct needle alt[MAX_ALTS]; /* the alternatives */
};

/* The literals a node implies, at most MAX_ALTS (borrowed from the expression). */
struct alts {
    uint32_t n;
    const struct sl_value *lit[MAX_ALTS];
};

static bool is_string_lit(const struct sl_value *v)
{
    return v->type == SL_STRING && !(v->flags & SL_VALUE_ESCAPED);
}

static bool implied(const struct sl__node *n, struct alts *out);

/* &&: the operand with the fewest alternatives (any one will do). */
static bool implied_and(const struct sl__node *n, struct alts *out)
{
    bool any = false;
    for (uint32_t i = 0; i < n->n; i++) {
        struct alts k;
        if (implied(n->kids[i], &k) && (!any || k.n < out->n)) *out = k, any = true;
    }
    return any;
}

/* ||: every operand must imply bytes; their union. */
static bool implied_or(const struct sl__node *n, struct alts *out)
{
    out->n = 0;
    for (uint32_t i = 0; i < n->n; i++) {
        struct alts k;
        if (!implied(n->kids[i], &k) || out->n + k.n > MAX_ALTS) return false;
        for (uint32_t j = 0; j < k.n; j++) out->lit[out->n++] = k.lit[j];
    }
    return out->n > 0;
}

/* `field in [...]` of string literals only (a null or a number in the list may be true
 * on a missing field or a number). */
static bool implied_in(const struct sl__node *n, struct alts *out)
{
    if (!n->a || n->a->op != SL__OP_FIELD || n->n == 0 || n->n > MAX_ALTS) return false;
    out->n = 0;
    for (uint32_t i = 0; i < n->n; i++) {
        const struct sl__node *k = n->kids[i];
        if (k->op != SL__OP_LIT || !is_string_lit(&k->lit)) return false;
        out->lit[out->n++] = &k->lit;
    }
    return true;
}

static bool implied(const struct sl__node *n, struct alts *out)
{
    switch (n->op) {
    case SL__OP_FIELD_EQ:
        if (!is_string_lit(&n->lit)) return false;
        out->n = 1;
        out->lit[0] = &n->lit;
        return true;
    case SL__OP_IN: return implied_in(n, out);
    case SL__OP_AND: return implied_and(n, out);
    case SL__OP_OR: return implied_or(n, out);
    default: return false;
    }
}

static bool plain_byte(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '/';
}

void sl_expr_prefilter_free(struct sl_expr_prefilter *pf)
{
    if (!pf) return;
    for (uint32_t i = 0; i < pf->n; i++) free(pf->alt[i].s);
    free(pf);
}

/* Adds `"L"` for literal `v`, noting its bytes. Returns false when memory ran out. */
static bool add_needle(struct sl_expr_prefilter *pf, const struct sl_value *v)
{
    char *s = malloc((size_t)v->len + 2);
    if (!s) return false;
    s[0] = '"';
    if (v->len) memcpy(s + 1, v->s, v->len);
    s[v->len + 1] = '"';
    pf->alt[pf->n].s = s;
    pf->alt[pf->n++].len = (size_t)v->len + 2;
    for (uint32_t i = 0; i < v->len; i++) {
        unsigned char c = (unsigned char)v->s[i];
        if (!plain_byte(c))
            pf->strict = true;
        else
            pf->ascii[c >> 3] |= (uint8_t)(1u << (c & 7));
    }
    return true;
}

/* The search this CPU allows. */
static enum sl__find best_find(void)
{
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx2") ? SL__FIND_AVX2 : SL__FIND_SSE2;
#else
    return SL__FIND_SCALAR;
#endif
}

struct sl_expr_prefilter *sl_expr_prefilter_new(const struct sl_expr *e)
{
    struct alts a;
    if (!e || !e->root || !implied(e->root, &a)) return NULL;
    struct sl_expr_prefilter *pf = calloc(1, sizeof *pf);
    if (!pf) return NULL;
    pf->find = best_find();
    pf->onepass = a.n <= ONEPASS_MAX;
    for (uint32_t i = 0; i < a.n; i++) {
        if (!add_needle(pf, a.lit[i])) {
            sl_expr_prefilter_free(pf);
            return NULL;
        }
        size_t k = pf->alt[i].len;
        pf->kmax = k > pf->kmax ? k : pf->kmax;
        pf->onepass &= k >= 4 && pf->alt[i].s[1] != '\\';
    }
    return pf;
}

/* ---- the byte search ----------------------------------------------------------------
 *
 * A needle is found by two of its bytes, 16 (SSE2) or 32 (AVX2) positions at a time: two
 * unaligned loads, two compares, and a memcmp of the whole needle where both match. The
 * two bytes are the second and the second last when the needle has four or more (the
 * first and last of `"error"` are quotes, which JSON is full of), else the first and
 * last; a text shorter than a vector is tried position by position. glibc's
 * memmem costs about 2.5 instructions a byte on a 217-byte log line (callgrind). */

#if defined(__x86_64__)
#include <immintrin.h>

/* The two bytes a needle of k bytes is found by: offsets into it. */
static void probes(size_t k, size_t *a, size_t *b)
{
    *a = k >= 4 ? 1 : 0;
    *b = k >= 4 ? k - 2 : k - 1;
}

/* The needle at positions [i, len - k] one by one. */
static const char *find_tail(const char *h, size_t len, const char *n, size_t k, size_t i)
{
    size_t a, b;
    probes(k, &a, &b);
    for (; i + k <= len; i++)
        if (h[i + a] == n[a] && h[i + b] == n[b] && memcmp(h + i, n, k) == 0) return h + i;
    return NULL;
}

/* The vector loop for one width: W positions a step, T the vector type, the rest
 * intrinsics. Positions [0, last) are tried; the last step ends at `last`, overlapping
 * the one before (whose positions held no match, so the first match is still the
 * first). A candidate at i + j is whole inside the text because i + W <= last. */
#define FIND_LOOP(W, T, LOAD, SET1, EQ, AND, MASK)                                                 \
    size_t a, b, last = len - k + 1;                                                               \
    if (last < (W)) return find_tail(h, len, n, k, 0);                                             \
    probes(k, &a, &b);                                                                             \
    const T pa = SET1((char)n[a]), pb = SET1((char)n[b]);                                          \
    for (size_t i = 0, more = 1; more; i += (W)) {                                                 \
        if (i + (W) >= last) i = last - (W), more = 0;                                             \
        T x = LOAD((const T *)(h + i + a)), y = LOAD((const T *)(h + i + b));                      \
        uint32_t m = (uint32_t)MASK(AND(EQ(x, pa), EQ(y, pb)));                                    \
        for (; m; m &= m - 1) {                                                                    \
            size_t at = i + (size_t)__builtin_ctz(m);                                              \
            if (memcmp(h + at, n, k) == 0) return h + at;                                          \
        }                                                                                          \
    }                                                                                              \
    return NULL;

__attribute__((target("sse2"))) static const char *find_sse2(const char *h, size_t len,
                                                             const char *n, size_t k)
{
    FIND_LOOP(16, __m128i, _mm_loadu_si128, _mm_set1_epi8, _mm_cmpeq_epi8, _mm_and_si128,
              _mm_movemask_epi8)
}

__attribute__((target("avx2"))) static const char *find_avx2(const char *h, size_t len,
                                                             const char *n, size_t k)
{
    FIND_LOOP(32, __m256i, _mm256_loadu_si256, _mm256_set1_epi8, _mm256_cmpeq_epi8,
              _mm256_and_si256, _mm256_movemask_epi8)
}
#endif

const char *sl__find_needle(const char *h, size_t len, const char *n, size_t k, enum sl__find impl)
{
    if (k < 2 || len < k) return k == 0 ? h : k <= len ? memmem(h, len, n, k) : NULL;
#if defined(__x86_64__)
    if (impl == SL__FIND_BEST)
        impl = __builtin_cpu_supports("avx2") ? SL__FIND_AVX2 : SL__FIND_SSE2;
    if (impl == SL__FIND_AVX2) return find_avx2(h, len, n, k);
    if (impl == SL__FIND_SSE2) return find_sse2(h, len, n, k);
#endif
    return memmem(h, len, n, k);
}

static int hex(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Whether the backslash at `p` (before `end`) may spell a byte of a literal: any may when
 * a literal is not plain; else only a \u00XX of one of the plain literals' bytes. */
static bool escape_may_spell(const struct sl_expr_prefilter *pf, const char *p, const char *end)
{
    if (pf->strict) return true;
    if (end - p < 2 || p[1] != 'u') return false; /* a short escape spells no plain byte */
    if (end - p < 6) return true;                 /* malformed: let the parser say */
    int cp = 0;
    for (int i = 2; i < 6; i++) {
        int h = hex((unsigned char)p[i]);
        if (h < 0) return true;
        cp = cp << 4 | h;
    }
    return cp < 0x80 && (pf->ascii[cp >> 3] >> (cp & 7) & 1);
}

/* ---- every needle in one pass -----------------------------------------------------------
 *
 * With a few needles of four bytes or more (`"warn"`, `"error"`), one pass over the text
 * looks for all of them and for the backslashes at once: their first probe is at the same
 * offset (1), so one load serves every needle's first compare and the backslash compare.
 * Positions [0, last) are tried with last = len - kmax + 1 (every load stays inside the
 * text); the positions a shorter needle still has past them, and the bytes the backslash
 * compare does not see (byte 0 and those past `last`), are tried one by one. The answer
 * is the general search's (sl__prefilter_searched): a needle anywhere, or a backslash
 * that may spell a byte of one, in whatever order they come. */
#if defined(__x86_64__)
/* Candidate position `at` (the vector loop flagged it): 1 when a needle is there or the
 * byte after it is a backslash that may spell a literal's byte. */
static int onepass_hit(const struct sl_expr_prefilter *pf, const char *h, size_t len, size_t at)
{
    if (h[at + 1] == '\\') return escape_may_spell(pf, h + at + 1, h + len);
    for (uint32_t i = 0; i < pf->n; i++)
        if (at + pf->alt[i].len <= len && memcmp(h + at, pf->alt[i].s, pf->alt[i].len) == 0)
            return 1;
    return 0;
}

/* What the vector loop does not see: the backslashes at byte 0 and past `last`, and the
 * positions past `last` where a shorter needle still fits. */
static inline int onepass_edges(const struct sl_expr_prefilter *pf, const char *h, size_t len,
                                size_t last)
{
    const char *end = h + len; /* a few bytes each: byte by byte */
    if (h[0] == '\\' && escape_may_spell(pf, h, end)) return 1;
    for (size_t j = last + 1; j < len; j++)
        if (h[j] == '\\' && escape_may_spell(pf, h + j, end)) return 1;
    for (uint32_t i = 0; i < pf->n; i++) {
        const struct needle *nd = &pf->alt[i];
        for (size_t at = last; at + nd->len <= len; at++)
            if (h[at + 1] == nd->s[1] && memcmp(h + at, nd->s, nd->len) == 0) return 1;
    }
    return 0;
}

/* The loop for one width and N needles (N a constant, so that the compiler unrolls the
 * needles' loop; N = pf->n when it is not): 1 may match, 0 cannot, -1 a text too short
 * for a vector. */
#define ONEPASS_LOOP(W, N, T, LOAD, SET1, EQ, AND, OR, MASK)                                       \
    size_t last = len - pf->kmax + 1;                                                              \
    if (len < pf->kmax || last < (W)) return -1;                                                   \
    T pa[ONEPASS_MAX], pb[ONEPASS_MAX];                                                            \
    const T bs = SET1('\\');                                                                       \
    for (uint32_t k = 0; k < (N); k++)                                                             \
        pa[k] = SET1(pf->alt[k].s[1]), pb[k] = SET1(pf->alt[k].s[pf->alt[k].len - 2]);             \
    for (size_t i = 0, more = 1; more; i += (W)) {                                                 \
        if (i + (W) >= last) i = last - (W), more = 0;                                             \
        T x = LOAD((const T *)(h + i + 1)), hit = EQ(x, bs);                                       \
        for (uint32_t k = 0; k < (N); k++) {                                                       \
            T y = LOAD((const T *)(h + i + pf->alt[k].len - 2));                                   \
            hit = OR(hit, AND(EQ(x, pa[k]), EQ(y, pb[k])));                                        \
        }                                                                                          \
        for (uint32_t m = (uint32_t)MASK(hit); m; m &= m - 1)                                      \
            if (onepass_hit(pf, h, len, i + (size_t)__builtin_ctz(m))) return 1;                   \
    }                                                                                              \
    return onepass_edges(pf, h, len, last);

#define SSE2_OPS                                                                                   \
    __m128i, _mm_loadu_si128, _mm_set1_epi8, _mm_cmpeq_epi8, _mm_and_si128, _mm_or_si128,          \
        _mm_movemask_epi8
#define AVX2_OPS                                                                                   \
    __m256i, _mm256_loadu_si256, _mm256_set1_epi8, _mm256_cmpeq_epi8, _mm256_and_si256,            \
        _mm256_or_si256, _mm256_movemask_epi8
#define ONEPASS_FN(NAME, TARGET, W, N, OPS)                                                        \
    __attribute__((target(TARGET))) static int NAME(const struct sl_expr_prefilter *pf,            \
                                                    const char *h, size_t len)                     \
    {                                                                                              \
        ONEPASS_LOOP(W, N, OPS)                                                                    \
    }
ONEPASS_FN(onepass_sse2_1, "sse2", 16, 1, SSE2_OPS)
ONEPASS_FN(onepass_sse2_2, "sse2", 16, 2, SSE2_OPS)
ONEPASS_FN(onepass_sse2_n, "sse2", 16, pf->n, SSE2_OPS)
ONEPASS_FN(onepass_avx2_1, "avx2", 32, 1, AVX2_OPS)
ONEPASS_FN(onepass_avx2_2, "avx2", 32, 2, AVX2_OPS)
ONEPASS_FN(onepass_avx2_n, "avx2", 32, pf->n, AVX2_OPS)

static int onepass(const struct sl_expr_prefilter *pf, const char *h, size_t len)
{
    bool avx2 = pf->find == SL__FIND_AVX2;
    switch (pf->n) {
    case 1: return avx2 ? onepass_avx2_1(pf, h, len) : onepass_sse2_1(pf, h, len);
    case 2: return avx2 ? onepass_avx2_2(pf, h, len) : onepass_sse2_2(pf, h, len);
    default: return avx2 ? onepass_avx2_n(pf, h, len) : onepass_sse2_n(pf, h, len);
    }
}
#endif

bool sl_expr_prefilter_may_match(const struct sl_expr_prefilter *pf, const char *json, size_t len)
{
    if (!pf) return true;
#if defined(__x86_64__)
    if (pf->onepass && pf->find != SL__FIND_SCALAR) {
        int r = onepass(pf, json, len);
        if (r >= 0) return r;
    }
#endif
    return sl__prefilter_searched(pf, json, len);
}

void sl__prefilter_use(struct sl_expr_prefilter *pf, enum sl__find impl)
{
    pf->find = impl == SL__FIND_BEST ? best_find() : impl;
}

bool sl__prefilter_searched(const struct sl_expr_prefilter *pf, const char *json, size_t len)
{
    if (!pf) return true;
    for (uint32_t i = 0; i < pf->n; i++)
        if (sl__find_needle(json, len, pf->alt[i].s, pf->alt[i].len, pf->find)) return true;
    const char *end = json + len;
    for (const char *p = memchr(json, '\\', len); p; p = memchr(p + 1, '\\', (size_t)(end - p - 1)))
        if (escape_may_spell(pf, p, end)) return true;
    return false;
}
