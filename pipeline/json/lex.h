/* The lexical layer of the JSON reader (read.c): scalars, strings, whitespace, and a
 * short member read from one vector window, each checked against `end` before every read
 * (the input is not NUL-terminated and may end at an unmapped page). Private to
 * pipeline/json; everything here is static inline, on the hottest path there is. */
#ifndef SLUICE_PIPELINE_JSON_LEX_H
#define SLUICE_PIPELINE_JSON_LEX_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <sluice/error.h>
#include <sluice/event.h>

#include "json/scan.h"

typedef unsigned char uchar;

/* The bounds of a scan, and how it failed. */
struct scan {
    const uchar *end; /* one past the last input byte */
    const uchar *err; /* where the text went wrong (set by fail) */
    int code;         /* SL_EPARSE, or SL_EINVAL for an oversized value */
};

/* Records the error position and returns NULL, so that a scanner can `return fail(..)`. */
static inline const uchar *fail(struct scan *s, const uchar *at)
{
    s->err = at;
    s->code = SL_EPARSE;
    return NULL;
}

static const bool ws_tab[256] = {[' '] = true, ['\t'] = true, ['\n'] = true, ['\r'] = true};

/* Skips whitespace. Log lines rarely have any, so the first test is the common exit:
 * a byte above ' ' is never whitespace, and that compare needs no table load. */
static inline const uchar *skip_ws(const uchar *p, const uchar *end)
{
    if (__builtin_expect(p == end || *p > ' ', 1)) return p;
    while (p < end && ws_tab[*p]) p++;
    return p;
}

/* Moves *pp past whitespace and reads the byte there into *c; false at the end of the
 * text (*pp is then `end`). The fast path is one bounds check and one compare: log lines
 * have no whitespace between tokens. */
static inline bool next_byte(const uchar **pp, const uchar *end, uchar *c)
{
    const uchar *p = *pp;
    bool token = p != end && *p > ' ';
    if (__builtin_expect(token, 1)) {
        *c = *p;
        return true;
    }
    while (p < end && ws_tab[*p]) p++;
    *pp = p;
    if (p == end) return false;
    *c = *p;
    return true;
}

static inline bool is_digit(uchar c)
{
    return (unsigned)(c - '0') < 10;
}

static inline int hex_val(uchar c)
{
    if (is_digit(c)) return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Checks the escape at p (*p == '\\') and returns the byte after it. */
static inline const uchar *escape_end(struct scan *s, const uchar *p)
{
    const uchar *end = s->end;
    if (++p == end) return fail(s, p);
    switch (*p) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't': return p + 1;
    case 'u':
        for (int i = 0; i < 4; i++) {
            if (++p == end || hex_val(*p) < 0) return fail(s, p);
        }
        return p + 1;
    default: return fail(s, p);
    }
}

/* Scans a string body; p is just after the opening quote. Returns the byte after the
 * closing quote, and sets *escaped when the body holds a backslash. */
static inline const uchar *string_end(struct scan *s, const uchar *p, bool *escaped)
{
    const uchar *end = s->end;
    for (;;) {
        p = sl__json_scan_plain(p, end);
        if (p == end) return fail(s, p);
        uchar c = *p;
        if (c == '"') return p + 1;
        if (c == '\\') {
            *escaped = true;
            if (!(p = escape_end(s, p))) return NULL;
        } else if (c < 0x20) {
            return fail(s, p);
        } else {
            bool ok;
            const uchar *q = sl__json_utf8(p, end, &ok);
            if (!ok) return fail(s, q);
            p = q;
        }
    }
}

/* The first byte in [p, end) that is not a digit, or `end`; 8 bytes at a time while 8
 * remain. A byte b is flagged when b - '0' borrows (b < '0') or b + 0x46 carries into the
 * high bit (b > '9', or b >= 0x80 already): borrows and carries only travel upwards, from
 * a flagged byte, so the lowest flagged byte is exact. */
static inline const uchar *digits_end(const uchar *p, const uchar *end)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t m = ((w - SL__JSON_ONES * '0') | (w + SL__JSON_ONES * 0x46)) & SL__JSON_HIGH;
        if (m) return p + (__builtin_ctzll(m) >> 3);
        p += 8;
    }
#endif
    while (p < end && is_digit(*p)) p++;
    return p;
}

/* Scans a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. Sets *is_float when
 * it has a fraction or an exponent. What follows is the caller's business: "01" is the
 * number "0" followed by a stray "1". */
static inline const uchar *number_end(struct scan *s, const uchar *p, bool *is_float)
{
    const uchar *end = s->end;
    if (*p == '-' && ++p == end) return fail(s, p);
    if (*p == '0')
        p++;
    else if (is_digit(*p))
        p = digits_end(p + 1, end);
    else
        return fail(s, p);
    if (p < end && *p == '.') {
        *is_float = true;
        if (++p == end || !is_digit(*p)) return fail(s, p);
        p = digits_end(p + 1, end);
    }
    if (p < end && (*p | 0x20) == 'e') {
        *is_float = true;
        if (++p < end && (*p == '+' || *p == '-')) p++;
        if (p == end || !is_digit(*p)) return fail(s, p);
        p = digits_end(p + 1, end);
    }
    return p;
}

/* Matches the literal `word` (true, false, null) at p, failing at the first wrong byte. */
static inline const uchar *literal_end(struct scan *s, const uchar *p, const char *word, size_t n)
{
    if ((size_t)(s->end - p) >= n && memcmp(p, word, n) == 0) return p + n;
    for (size_t i = 0;; i++) {
        if (p + i == s->end || p[i] != (uchar)word[i]) return fail(s, p + i);
    }
}

#if defined(__SSE2__)
/* The member whose name's opening quote is at p read from one 32-byte window (when 32
 * bytes remain before `end`), when its name is short and plain and the ':' follows it at
 * once: the quotes and the special bytes (backslash, control, >= 0x80) of the window,
 * found by vector compares, give the name's end and, for a short plain string value, the
 * value too. Sets *name_end (the closing quote); returns the byte after the ':' with
 * *done false (the value is the caller's), or the byte after a string value read into *v
 * (when `v` is not NULL) with *done true; NULL when the window does not decide (the caller reads
 * the member the general way from p, which also gives every error). */
static inline const uchar *member_window(const uchar *p, const uchar *end, const uchar **name_end,
                                         struct sl_value *v, bool *done)
{
    if (end - p < 32) return NULL;
    __m128i a = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(p + 16));
    const __m128i quote = _mm_set1_epi8('"');
    uint32_t q = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(a, quote)) |
                 (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(b, quote)) << 16;
    uint32_t sp = (uint32_t)_mm_movemask_epi8(sl__json_vec_escapes(a)) |
                  (uint32_t)_mm_movemask_epi8(sl__json_vec_escapes(b)) << 16;
    q &= ~1u; /* bit 0 is the name's opening quote */
    if (!q) return NULL;
    unsigned c1 = (unsigned)__builtin_ctz(q); /* the name's closing quote */
    if (c1 >= 30 || (sp & ((1u << c1) - 1)) || p[c1 + 1] != ':') return NULL;
    *name_end = p + c1;
    *done = false;
    unsigned v0 = c1 + 2; /* the value's first byte: at most 31 */
    if (p[v0] != '"') return p + v0;
    uint32_t after = q & ~((2u << v0) - 1); /* quotes after the value's opening one */
    if (!after) return p + v0;
    unsigned c3 = (unsigned)__builtin_ctz(after);
    if (sp & ~((2u << v0) - 1) & ((1u << c3) - 1)) return p + v0; /* an escape, a control... */
    if (v)
        *v = (struct sl_value){.type = SL_STRING,
                               .flags = SL_VALUE_JSON_SAFE,
                               .s = (const char *)p + v0 + 1,
                               .len = c3 - v0 - 1};
    *done = true;
    return p + c3 + 1;
}
#else
static inline const uchar *member_window(const uchar *p, const uchar *end, const uchar **name_end,
                                         struct sl_value *v, bool *done)
{
    (void)p, (void)end, (void)name_end, (void)v, (void)done;
    return NULL; /* the general path alone */
}
#endif

#endif
