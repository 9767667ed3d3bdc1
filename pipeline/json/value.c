/* Typed values: makers, lazy number conversion, JSON string unescaping, comparison. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/event.h>

#include "json/internal.h"

struct sl_value sl_value_null(void)
{
    return (struct sl_value){.type = SL_NULL};
}

struct sl_value sl_value_bool(bool b)
{
    return (struct sl_value){.type = SL_BOOL, .b = b};
}

struct sl_value sl_value_int(int64_t i)
{
    return (struct sl_value){.type = SL_INT, .i = i};
}

struct sl_value sl_value_float(double f)
{
    return (struct sl_value){.type = SL_FLOAT, .f = f};
}

struct sl_value sl_value_string(const char *s, size_t len)
{
    return (struct sl_value){.type = SL_STRING, .s = s, .len = (uint32_t)len};
}

struct sl_value sl_value_json(const char *s, size_t len)
{
    return (struct sl_value){.type = SL_JSON, .s = s, .len = (uint32_t)len};
}

/* Parses a decimal integer with an optional sign; false on overflow or other bytes. */
static bool parse_int(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < len && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
    if (i == len) return false;
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    /* 18 digits never overflow: no division a digit for the numbers of log lines. */
    bool safe = len - i <= 18;
    for (; i < len; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9) return false;
        if (!safe && v > (limit - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static bool parse_float(const char *s, size_t len, double *out)
{
    char buf[128];
    if (len == 0 || len >= sizeof buf) return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    double d = strtod(buf, &end);
    if (end != buf + len) return false;
    *out = d;
    return true;
}

int sl_value_number(struct sl_value *v)
{
    if (!(v->flags & SL_VALUE_TEXT) || (v->type != SL_INT && v->type != SL_FLOAT)) return 0;
    int64_t i;
    double f;
    if (v->type == SL_INT && parse_int(v->s, v->len, &i)) {
        v->i = i;
    } else if (parse_float(v->s, v->len, &f)) {
        v->type = SL_FLOAT; /* an integer too large for int64 becomes a float */
        v->f = f;
    } else {
        return SL_EPARSE;
    }
    v->flags &= (uint8_t)~SL_VALUE_TEXT;
    return 0;
}

int sl_value_unescape(const struct sl_value *v, char *buf, size_t cap)
{
    const char *s = v->s;
    size_t len = v->len, o = 0;
    /* Decoding never lengthens the text, so `len` bytes of room always suffice. */
    if (len > cap) return SL_EINVAL;
    if (!(v->flags & SL_VALUE_ESCAPED)) {
        memcpy(buf, s, len);
        return (int)len;
    }
    for (size_t i = 0; i < len;) {
        if (s[i] != '\\') {
            buf[o++] = s[i++];
            continue;
        }
        if (i + 1 >= len) return SL_EPARSE;
        char c = s[++i];
        size_t n;
        switch (c) {
        case '"':
            buf[o++] = '"';
            i++;
            break;
        case '\\':
            buf[o++] = '\\';
            i++;
            break;
        case '/':
            buf[o++] = '/';
            i++;
            break;
        case 'b':
            buf[o++] = '\b';
            i++;
            break;
        case 'f':
            buf[o++] = '\f';
            i++;
            break;
        case 'n':
            buf[o++] = '\n';
            i++;
            break;
        case 'r':
            buf[o++] = '\r';
            i++;
            break;
        case 't':
            buf[o++] = '\t';
            i++;
            break;
        case 'u':
            if (!(n = sl__unescape_u(s, len, &i, buf + o))) return SL_EPARSE;
            o += n;
            break;
        default: return SL_EPARSE;
        }
    }
    return (int)o;
}

static int cmp_num(const struct sl_value *a, const struct sl_value *b)
{
    if (a->type == SL_INT && b->type == SL_INT) return (a->i > b->i) - (a->i < b->i);
    double x = a->type == SL_INT ? (double)a->i : a->f;
    double y = b->type == SL_INT ? (double)b->i : b->f;
    if (isnan(x) || isnan(y)) return isnan(x) - isnan(y);
    return (x > y) - (x < y);
}

static int cmp_bytes(const char *a, size_t la, const char *b, size_t lb)
{
    int c = memcmp(a, b, la < lb ? la : lb);
    if (c) return c < 0 ? -1 : 1;
    return (la > lb) - (la < lb);
}

/* Strings compare by their decoded bytes; escapes are rare, so decode only then. */
static int cmp_str(const struct sl_value *a, const struct sl_value *b)
{
    if (!((a->flags | b->flags) & SL_VALUE_ESCAPED)) return cmp_bytes(a->s, a->len, b->s, b->len);
    char sa[512], sb[512];
    char *ba = a->len <= sizeof sa ? sa : malloc(a->len ? a->len : 1);
    char *bb = b->len <= sizeof sb ? sb : malloc(b->len ? b->len : 1);
    int r;
    if (!ba || !bb) {
        r = cmp_bytes(a->s, a->len, b->s, b->len);
    } else {
        int la = sl_value_unescape(a, ba, a->len), lb = sl_value_unescape(b, bb, b->len);
        r = (la < 0 || lb < 0) ? cmp_bytes(a->s, a->len, b->s, b->len)
                               : cmp_bytes(ba, (size_t)la, bb, (size_t)lb);
    }
    if (ba != sa) free(ba);
    if (bb != sb) free(bb);
    return r;
}

int sl_value_compare(const struct sl_value *a0, const struct sl_value *b0, bool *comparable)
{
    struct sl_value a = *a0, b = *b0;
    sl_value_number(&a);
    sl_value_number(&b);
    bool num_a = a.type == SL_INT || a.type == SL_FLOAT;
    bool num_b = b.type == SL_INT || b.type == SL_FLOAT;
    if (comparable) *comparable = true;
    if (num_a && num_b && !((a.flags | b.flags) & SL_VALUE_TEXT)) return cmp_num(&a, &b);
    if (a.type != b.type) {
        if (comparable) *comparable = false;
        return a.type < b.type ? -1 : 1;
    }
    switch (a.type) {
    case SL_NULL: return 0;
    case SL_BOOL: return (a.b > b.b) - (a.b < b.b);
    case SL_STRING: return cmp_str(&a, &b);
    case SL_JSON: return cmp_bytes(a.s, a.len, b.s, b.len);
    default: /* numbers whose text did not convert */
        if (comparable) *comparable = false;
        return cmp_bytes(a.s, a.len, b.s, b.len);
    }
}
