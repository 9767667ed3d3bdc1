/* The JSON writer: string escaping with UTF-8 repair, numbers, values and members.
 *
 * Every writer returns the bytes it needs and writes only when they fit, so that a
 * serializer can size a buffer exactly, or try a buffer and grow it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/json.h>

#include "json/internal.h"
#include "json/scan.h"

typedef unsigned char uchar;

static const char hex_digits[16] = "0123456789abcdef";

/* Writes the escape of the ASCII byte c ('"', '\\' or a control character) to e. */
static size_t escape_char(uchar c, char *e)
{
    e[0] = '\\';
    switch (c) {
    case '"': e[1] = '"'; return 2;
    case '\\': e[1] = '\\'; return 2;
    case '\b': e[1] = 'b'; return 2;
    case '\f': e[1] = 'f'; return 2;
    case '\n': e[1] = 'n'; return 2;
    case '\r': e[1] = 'r'; return 2;
    case '\t': e[1] = 't'; return 2;
    default:
        memcpy(e + 1, "u00", 3);
        e[4] = hex_digits[c >> 4];
        e[5] = hex_digits[c & 15];
        return 6;
    }
}

/* Copies a short string (1 to 16 bytes) to out when every byte of it is plain, by two
 * overlapping loads (the first and the last 4 or 8 bytes, or the first, middle and last
 * byte of a shorter one; no byte outside [p, p + len) is read or written) checked
 * together in one vector: a member's name, a level, in a few
 * instructions instead of a scan and a memcpy call. Returns false, writing nothing, when
 * a byte is special or the length is not handled. The vector's bytes past the loads are
 * zero, special (< 0x20), and left out of the mask. */
static inline bool short_plain(const uchar *p, size_t len, char *out)
{
#if defined(__SSE2__)
    __m128i x;
    unsigned keep;
    if (len < 4) { /* 1 to 3 bytes: the first, the middle and the last are all of them */
        uint32_t a = p[0] | (uint32_t)p[len / 2] << 8 | (uint32_t)p[len - 1] << 16;
        x = _mm_set_epi64x(0, (long long)a), keep = 0x7;
    } else if (len >= 8) {
        uint64_t a, b;
        memcpy(&a, p, 8);
        memcpy(&b, p + len - 8, 8);
        x = _mm_set_epi64x((long long)b, (long long)a), keep = 0xffff;
    } else {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + len - 4, 4);
        x = _mm_set_epi64x(0, (long long)((uint64_t)b << 32 | a)), keep = 0xff;
    }
    if (sl__json_vec_special_mask(x) & keep) return false;
    if (len < 4) {
        out[0] = (char)p[0], out[len / 2] = (char)p[len / 2], out[len - 1] = (char)p[len - 1];
    } else if (len >= 8) {
        memcpy(out, p, 8);
        memcpy(out + len - 8, p + len - 8, 8);
    } else {
        memcpy(out, p, 4);
        memcpy(out + len - 4, p + len - 4, 4);
    }
    return true;
#else
    (void)p, (void)len, (void)out;
    return false;
#endif
}

/* Escapes `len` bytes at p into out, or only counts them when out is NULL. Runs of plain
 * bytes (the common case: all of a string) are found a word at a time and copied whole.
 * Out of line: the short strings' path before it needs none of its registers. */
__attribute__((noinline)) static size_t escape(const uchar *p, size_t len, char *out)
{
    const uchar *end = p + len;
    size_t n = 0;
    for (;;) {
        const uchar *q = sl__json_scan_plain(p, end);
        if (out) memcpy(out + n, p, (size_t)(q - p));
        n += (size_t)(q - p);
        if (q == end) return n;
        p = q;
        if (*p < 0x80) {
            char e[6];
            size_t k = escape_char(*p++, e);
            if (out) memcpy(out + n, e, k);
            n += k;
            continue;
        }
        bool ok;
        q = sl__json_utf8(p, end, &ok);
        if (ok) {
            if (out) memcpy(out + n, p, (size_t)(q - p));
            n += (size_t)(q - p);
        } else {
            /* One U+FFFD for the maximal ill-formed subpart [p, q), at least one byte. */
            if (out) memcpy(out + n, "\xEF\xBF\xBD", 3);
            n += 3;
            if (q == p) q++;
        }
        p = q;
    }
}

bool sl__utf8_valid(const char *s, size_t len)
{
    const uchar *p = (const uchar *)s, *end = p + len;
    for (;;) {
        p = sl__json_scan_plain(p, end);
        if (p == end) return true;
        if (*p < 0x80) { /* '"', '\\' or a control character: escaped, not lost */
            p++;
            continue;
        }
        bool ok;
        p = sl__json_utf8(p, end, &ok);
        if (!ok) return false;
    }
}

size_t sl_json_escape(const char *s, size_t len, char *out)
{
    if (len - 1 < 16 && short_plain((const uchar *)s, len, out)) return len;
    return len ? escape((const uchar *)s, len, out) : 0;
}

size_t sl_json_escaped_len(const char *s, size_t len)
{
    return len ? escape((const uchar *)s, len, NULL) : 0;
}

/* Copies n bytes to out when they fit in cap. Returns n. */
static size_t put(char *out, size_t cap, const void *src, size_t n)
{
    if (n && n <= cap) memcpy(out, src, n);
    return n;
}

/* Writes `len` bytes of s in quotes: escaped, or as they are when `raw`. */
static size_t write_string(const char *s, size_t len, bool raw, char *out, size_t cap)
{
    size_t n;
    if (raw) {
        n = len;
    } else if (cap >= 2 && (cap - 2) / 6 >= len) {
        /* Room for the worst case: escape in one pass. */
        n = sl_json_escape(s, len, out + 1);
        out[0] = out[n + 1] = '"';
        return n + 2;
    } else {
        n = sl_json_escaped_len(s, len);
    }
    if (n + 2 > cap) return n + 2;
    out[0] = out[n + 1] = '"';
    if (raw)
        put(out + 1, n, s, n);
    else
        sl_json_escape(s, len, out + 1);
    return n + 2;
}

/* Decimal form of i into buf (at least 20 bytes). */
static size_t format_int(int64_t i, char *buf)
{
    char tmp[20];
    uint64_t u = i < 0 ? 0 - (uint64_t)i : (uint64_t)i;
    size_t n = 0, k = 0;
    do tmp[k++] = (char)('0' + u % 10);
    while (u /= 10);
    if (i < 0) buf[n++] = '-';
    while (k) buf[n++] = tmp[--k];
    return n;
}

/* Shortest of %.15g, %.16g, %.17g that reads back as d, into buf (at least 40 bytes).
 * %g drops trailing zeros, so when d has a form of 15 digits or fewer, %.15g is it. The
 * locale's decimal point (what snprintf and strtod agree on) becomes '.'; integral values
 * get ".0" so that they read back as floats. */
static size_t format_double(double d, char *buf)
{
    char tmp[40];
    int len = 0;
    if (!isfinite(d)) {
        memcpy(buf, "null", 4);
        return 4;
    }
    for (int prec = 15; prec <= 17; prec++) {
        len = snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d) break;
    }
    size_t n = 0;
    bool point = false, exponent = false;
    for (int i = 0; i < len && (size_t)i < sizeof tmp - 1; i++) {
        char c = tmp[i];
        if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e') {
            exponent |= c == 'e';
            buf[n++] = c;
        } else if (!point) {
            /* The decimal point, which may be several bytes in some locales: one '.'. */
            point = true;
            buf[n++] = '.';
        }
    }
    bool integral = !point && !exponent;
    if (integral) {
        buf[n++] = '.';
        buf[n++] = '0';
    }
    return n;
}

/* True when s is exactly a JSON number: valid JSON starting like a number (so it is one)
 * and ending in a digit (so no whitespace around it). */
static bool is_json_number(const char *s, size_t len)
{
    return len && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) && s[len - 1] >= '0' &&
           s[len - 1] <= '9' && sl_json_validate(s, len, NULL) == 0;
}

static size_t write_number(const struct sl_value *v, char *out, size_t cap)
{
    struct sl_value c = *v;
    char buf[40];
    if (c.flags & SL_VALUE_TEXT) {
        if (is_json_number(c.s, c.len)) return put(out, cap, c.s, c.len);
        if (sl_value_number(&c) != 0) return put(out, cap, "null", 4);
    }
    size_t n = c.type == SL_INT ? format_int(c.i, buf) : format_double(c.f, buf);
    return put(out, cap, buf, n);
}

size_t sl_json_write_value(const struct sl_value *v, char *out, size_t cap)
{
    switch (v->type) {
    case SL_BOOL: return v->b ? put(out, cap, "true", 4) : put(out, cap, "false", 5);
    case SL_INT:
    case SL_FLOAT: return write_number(v, out, cap);
    case SL_STRING:
        return write_string(v->s, v->len, v->flags & (SL_VALUE_ESCAPED | SL_VALUE_JSON_SAFE), out,
                            cap);
    case SL_JSON: return put(out, cap, v->s, v->len);
    default: return put(out, cap, "null", 4);
    }
}

size_t sl__json_value_bound(const struct sl_value *v)
{
    switch (v->type) {
    case SL_STRING:
        return (v->flags & (SL_VALUE_ESCAPED | SL_VALUE_JSON_SAFE) ? v->len : 6 * (size_t)v->len) +
               2;
    case SL_JSON: return v->len;
    case SL_INT:
    case SL_FLOAT: return (v->flags & SL_VALUE_TEXT) && v->len > 40 ? v->len : 40;
    default: return 5;
    }
}

size_t sl_json_write_member(const char *name, size_t name_len, const struct sl_value *v, char *out,
                            size_t cap)
{
    size_t head;
    if (cap / 8 >= name_len && cap >= 6 * name_len + 3 &&
        cap - 6 * name_len - 3 >= sl__json_value_bound(v)) {
        /* Room for the worst case of both: one pass, nothing measured. */
        head = sl_json_escape(name, name_len, out + 1) + 3;
        out[0] = out[head - 2] = '"';
        out[head - 1] = ':';
        return head + sl_json_write_value(v, out + head, cap - head);
    }
    head = sl_json_escaped_len(name, name_len) + 3; /* "name": */
    if (head > cap) return head + sl_json_write_value(v, NULL, 0);
    size_t n = sl_json_write_value(v, out + head, cap - head);
    if (n > cap - head) return head + n;
    /* The value fitted and is written: the name goes in front of it. */
    out[0] = '"';
    sl_json_escape(name, name_len, out + 1);
    out[head - 2] = '"';
    out[head - 1] = ':';
    return head + n;
}
