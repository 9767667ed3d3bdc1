/* UTF-8 and JSON \u escapes, shared by the JSON reader, value decoding and the
 * expression lexer and evaluator. */
#include "base/internal.h"

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (c | 0x20) - 'a' + 10;
    return -1;
}

long sl__hex4(const char *s, size_t left)
{
    if (left < 4) return -1;
    long v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hex_digit(s[k]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

size_t sl__utf8_put(char *o, unsigned long cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t sl__unescape_u(const char *s, size_t len, size_t *i, char *o)
{
    long hi = *i + 1 <= len ? sl__hex4(s + *i + 1, len - *i - 1) : -1;
    if (hi < 0) return 0;
    *i += 5;
    if (hi >= 0xD800 && hi <= 0xDBFF) {
        long lo = *i + 1 < len && s[*i] == '\\' && s[*i + 1] == 'u'
                      ? sl__hex4(s + *i + 2, len - *i - 2)
                      : -1;
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
            *i += 6;
            hi = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
        }
    }
    if (hi >= 0xD800 && hi <= 0xDFFF) hi = 0xFFFD; /* a lone surrogate */
    return sl__utf8_put(o, (unsigned long)hi);
}
