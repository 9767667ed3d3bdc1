/* The expression lexer: numbers, strings, field paths, regex literals and operators,
 * read one token at a time so that the parser can ask for a regex where one belongs
 * (after =~), and '/' means division everywhere else. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr/internal.h"

#define PATH_MAX_BYTES 1024 /* longest canonical field path */

void sl__lex_position(const char *src, size_t pos, int *line, int *col)
{
    int l = 1, c = 1;
    for (size_t i = 0; i < pos; i++) {
        unsigned char ch = (unsigned char)src[i];
        if (ch == '\n')
            l++, c = 1;
        else if ((ch & 0xC0) != 0x80) /* count characters, not UTF-8 continuation bytes */
            c++;
    }
    *line = l;
    *col = c;
}

int sl__lex_fail(struct sl__lexer *lx, int code, size_t pos, const char *fmt, ...)
{
    if (lx->failed) return SL__TK_ERROR;
    lx->failed = true;
    if (!lx->err) return SL__TK_ERROR;
    int line, col;
    sl__lex_position(lx->src, pos > lx->len ? lx->len : pos, &line, &col);
    lx->err->file[0] = '\0';
    lx->err->line = line;
    lx->err->col = col;
    va_list ap;
    va_start(ap, fmt);
    sl_error_setv(lx->err, code, fmt, ap);
    va_end(ap);
    return SL__TK_ERROR;
}

const char *sl__lex_describe(const struct sl__lexer *lx, const struct sl__tok *t, char *buf,
                             size_t cap)
{
    if (t->k == SL__TK_END) return lx->until_close ? "end of template" : "end of expression";
    if (t->k == SL__TK_CLOSE) return "'}}'";
    size_t n = t->end > t->pos ? t->end - t->pos : 1;
    if (t->pos >= lx->len) return lx->until_close ? "end of template" : "end of expression";
    if (n > 40) {
        snprintf(buf, cap, "'%.37s...'", lx->src + t->pos);
        return buf;
    }
    snprintf(buf, cap, "'%.*s'", (int)n, lx->src + t->pos);
    return buf;
}

/* ---- strings ------------------------------------------------------------------------- */

static char simple_escape(char c)
{
    switch (c) {
    case '"': return '"';
    case '\'': return '\'';
    case '\\': return '\\';
    case '/': return '/';
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    default: return 0;
    }
}

/* Decodes the quoted string at src[q] into `out` (room for the raw length). Sets *end
 * past the closing quote and *olen. Returns 0, or SL__TK_ERROR with the error set. */
static int decode_string(struct sl__lexer *lx, size_t q, char *out, size_t *olen, size_t *end)
{
    const char *s = lx->src;
    char quote = s[q];
    size_t o = 0;
    for (size_t i = q + 1; i < lx->len;) {
        char c = s[i];
        if (c == quote) {
            *olen = o;
            *end = i + 1;
            return 0;
        }
        if (c != '\\') {
            out[o++] = c;
            i++;
            continue;
        }
        if (i + 1 >= lx->len) break;
        char e = simple_escape(s[i + 1]);
        if (e) {
            out[o++] = e;
            i += 2;
            continue;
        }
        size_t at = i++;
        size_t n = s[i] == 'u' ? sl__unescape_u(s, lx->len, &i, out + o) : 0;
        if (!n)
            return sl__lex_fail(lx, SL_EPARSE, at,
                                "invalid escape '\\%c' in a string (expected \\\" \\' \\\\ \\/ "
                                "\\b \\f \\n \\r \\t or \\uXXXX)",
                                s[at + 1]);
        o += n;
    }
    return sl__lex_fail(lx, SL_EPARSE, q, "expected a closing %c to end the string, found %s",
                        quote, lx->until_close ? "end of template" : "end of expression");
}

/* Index just past the string or regex opened by src[q] (its closing delimiter), or
 * len when it is not closed. A backslash escapes the next byte. */
static size_t extent(const struct sl__lexer *lx, size_t q)
{
    const char *s = lx->src;
    for (size_t i = q + 1; i < lx->len; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == s[q])
            return i + 1;
    }
    return lx->len;
}

static int lex_string(struct sl__lexer *lx, struct sl__tok *t)
{
    char *out = sl__pool_alloc(lx->pool, extent(lx, t->pos) - t->pos);
    if (!out) return sl__lex_fail(lx, SL_ENOMEM, t->pos, "out of memory");
    if (decode_string(lx, t->pos, out, &t->slen, &t->end)) return SL__TK_ERROR;
    t->s = out;
    return t->k = SL__TK_STR;
}

/* ---- numbers ------------------------------------------------------------------------- */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static size_t digits(const char *s, size_t i, size_t len)
{
    while (i < len && is_digit(s[i])) i++;
    return i;
}

static int lex_number(struct sl__lexer *lx, struct sl__tok *t)
{
    const char *s = lx->src;
    size_t i = digits(s, t->pos, lx->len);
    bool is_float = false;
    if (i + 1 < lx->len && s[i] == '.' && is_digit(s[i + 1]))
        i = digits(s, i + 1, lx->len), is_float = true;
    if (i < lx->len && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < lx->len && (s[j] == '+' || s[j] == '-')) j++;
        if (j < lx->len && is_digit(s[j])) i = digits(s, j, lx->len), is_float = true;
    }
    t->end = i;
    char buf[64];
    size_t n = i - t->pos;
    if (n >= sizeof buf) return sl__lex_fail(lx, SL_EPARSE, t->pos, "number literal too long");
    memcpy(buf, s + t->pos, n);
    buf[n] = '\0';
    if (is_float) {
        t->f = strtod(buf, NULL);
        return t->k = SL__TK_FLOAT;
    }
    uint64_t v = 0;
    for (size_t k = 0; k < n; k++) {
        unsigned d = (unsigned)(buf[k] - '0');
        if (v > ((uint64_t)INT64_MAX - d) / 10)
            return sl__lex_fail(lx, SL_EPARSE, t->pos,
                                "integer %s is out of range (at most 9223372036854775807)", buf);
        v = v * 10 + d;
    }
    t->i = (int64_t)v;
    return t->k = SL__TK_INT;
}

/* ---- field paths --------------------------------------------------------------------- */

static bool name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '@';
}

static bool name_char(char c)
{
    return name_start(c) || is_digit(c);
}

struct path_buf {
    char b[PATH_MAX_BYTES]; /* canonical path */
    size_t n;               /* bytes used */
    unsigned segs;          /* segments read */
    bool quoted_odd;        /* a quoted segment holds '.', '[' or ']' */
};

static bool path_put(struct path_buf *pb, const char *s, size_t n)
{
    if (pb->n + n > sizeof pb->b) return false;
    memcpy(pb->b + pb->n, s, n);
    pb->n += n;
    return true;
}

/* One name segment at lx->pos: a bare name or a quoted one. */
static int path_segment(struct sl__lexer *lx, struct path_buf *pb, size_t at)
{
    const char *s = lx->src;
    size_t i = lx->pos;
    if (pb->segs && !path_put(pb, ".", 1)) goto too_long;
    if (i < lx->len && name_start(s[i])) {
        size_t j = i;
        while (j < lx->len && name_char(s[j])) j++;
        if (!path_put(pb, s + i, j - i)) goto too_long;
        lx->pos = j;
    } else if (i < lx->len && (s[i] == '"' || s[i] == '\'')) {
        char tmp[PATH_MAX_BYTES];
        size_t n, end;
        if (extent(lx, i) - i > sizeof tmp) { /* decoding needs room for the raw text */
            if (extent(lx, i) < lx->len) goto too_long;
            return sl__lex_fail(lx, SL_EPARSE, i,
                                "expected a closing %c to end the string, found %s", s[i],
                                lx->until_close ? "end of template" : "end of expression");
        }
        if (decode_string(lx, i, tmp, &n, &end)) return SL__TK_ERROR;
        if (n == 0) return sl__lex_fail(lx, SL_EPARSE, i, "empty field name");
        if (memchr(tmp, '.', n) || memchr(tmp, '[', n) || memchr(tmp, ']', n))
            pb->quoted_odd = true;
        if (!path_put(pb, tmp, n)) goto too_long;
        lx->pos = end;
    } else {
        struct sl__tok t = {.k = i < lx->len ? SL__TK_ERROR : SL__TK_END, .pos = i, .end = i + 1};
        char d[64];
        return sl__lex_fail(lx, SL_EPARSE, i, "expected a field name after '.', found %s",
                            sl__lex_describe(lx, &t, d, sizeof d));
    }
    pb->segs++;
    return 0;
too_long:
    return sl__lex_fail(lx, SL_EPARSE, at, "field path longer than %d bytes", PATH_MAX_BYTES);
}

/* An array index "[digits]" at lx->pos (on the '['). */
static int path_index(struct sl__lexer *lx, struct path_buf *pb, size_t at)
{
    const char *s = lx->src;
    size_t i = lx->pos + 1, j = digits(s, i, lx->len);
    if (j == i || j - i > 9 || j >= lx->len || s[j] != ']') {
        struct sl__tok t = {.k = i < lx->len ? SL__TK_ERROR : SL__TK_END, .pos = i, .end = i + 1};
        char d[64];
        return sl__lex_fail(lx, SL_EPARSE, i,
                            "expected an array index (digits, then ']') after '[', found %s",
                            sl__lex_describe(lx, &t, d, sizeof d));
    }
    if (!path_put(pb, s + lx->pos, j + 1 - lx->pos))
        return sl__lex_fail(lx, SL_EPARSE, at, "field path longer than %d bytes", PATH_MAX_BYTES);
    lx->pos = j + 1;
    return 0;
}

static int lex_path(struct sl__lexer *lx, struct sl__tok *t)
{
    struct path_buf pb = {.n = 0};
    const char *s = lx->src;
    bool dot = s[t->pos] == '.';
    lx->pos = t->pos + (dot ? 1 : 0);
    if (path_segment(lx, &pb, t->pos)) return SL__TK_ERROR;
    bool bare = !dot && s[t->pos] != '"' && s[t->pos] != '\'';
    bool indexed = false;
    while (lx->pos < lx->len && (s[lx->pos] == '.' || s[lx->pos] == '[')) {
        int rc;
        if (s[lx->pos] == '[') {
            rc = path_index(lx, &pb, t->pos);
            indexed = true;
        } else {
            lx->pos++;
            rc = path_segment(lx, &pb, t->pos);
        }
        if (rc) return SL__TK_ERROR;
    }
    if (pb.quoted_odd && (pb.segs > 1 || indexed))
        return sl__lex_fail(lx, SL_EPARSE, t->pos,
                            "a field name containing '.', '[' or ']' can only be used alone, as a "
                            "top-level name");
    char *p = sl__pool_alloc(lx->pool, pb.n + 1);
    if (!p) return sl__lex_fail(lx, SL_ENOMEM, t->pos, "out of memory");
    memcpy(p, pb.b, pb.n);
    t->s = p;
    t->slen = pb.n;
    t->end = lx->pos;
    t->word = bare && pb.segs == 1 && !indexed;
    t->exact = pb.quoted_odd;
    return t->k = SL__TK_PATH;
}

/* ---- operators and the token loop ------------------------------------------------------ */

static int two(struct sl__tok *t, int k)
{
    t->end = t->pos + 2;
    return t->k = k;
}

static int one(struct sl__tok *t, int k)
{
    t->end = t->pos + 1;
    return t->k = k;
}

static int lex_operator(struct sl__lexer *lx, struct sl__tok *t)
{
    const char *s = lx->src + t->pos;
    char n = t->pos + 1 < lx->len ? s[1] : '\0';
    switch (s[0]) {
    case '(': return one(t, SL__TK_LPAREN);
    case ')': return one(t, SL__TK_RPAREN);
    case '[': return one(t, SL__TK_LBRACK);
    case ']': return one(t, SL__TK_RBRACK);
    case ',': return one(t, SL__TK_COMMA);
    case '+': return one(t, SL__TK_PLUS);
    case '-': return one(t, SL__TK_MINUS);
    case '*': return one(t, SL__TK_STAR);
    case '/': return one(t, SL__TK_SLASH);
    case '%': return one(t, SL__TK_PERCENT);
    case '=':
        if (n == '=') return two(t, SL__TK_EQ);
        if (n == '~') return two(t, SL__TK_MATCH);
        return sl__lex_fail(lx, SL_EPARSE, t->pos, "unexpected '=' (use '==' to compare)");
    case '!':
        if (n == '=') return two(t, SL__TK_NE);
        if (n == '~') return two(t, SL__TK_NMATCH);
        return one(t, SL__TK_NOT);
    case '<': return n == '=' ? two(t, SL__TK_LE) : one(t, SL__TK_LT);
    case '>': return n == '=' ? two(t, SL__TK_GE) : one(t, SL__TK_GT);
    case '&':
        if (n == '&') return two(t, SL__TK_AND);
        return sl__lex_fail(lx, SL_EPARSE, t->pos, "unexpected '&' (use '&&')");
    case '|':
        if (n == '|') return two(t, SL__TK_OR);
        return sl__lex_fail(lx, SL_EPARSE, t->pos, "unexpected '|' (use '||')");
    case '}':
        if (lx->until_close && n == '}') return two(t, SL__TK_CLOSE);
        break;
    default: break;
    }
    unsigned char c = (unsigned char)s[0];
    if (c >= 0x20 && c < 0x7f)
        return sl__lex_fail(lx, SL_EPARSE, t->pos, "unexpected character '%c'", c);
    return sl__lex_fail(lx, SL_EPARSE, t->pos, "unexpected byte 0x%02x", c);
}

static void skip_space(struct sl__lexer *lx)
{
    while (lx->pos < lx->len) {
        char c = lx->src[lx->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        lx->pos++;
    }
}

int sl__lex_next(struct sl__lexer *lx, struct sl__tok *t)
{
    if (lx->failed) return t->k = SL__TK_ERROR;
    size_t before = lx->pos;
    skip_space(lx);
    memset(t, 0, sizeof *t);
    t->pos = t->end = lx->pos;
    if (lx->pos >= lx->len) { /* "found end of expression" points just past the last token */
        t->pos = t->end = before;
        return t->k = SL__TK_END;
    }
    char c = lx->src[lx->pos];
    int k;
    if (is_digit(c))
        k = lex_number(lx, t);
    else if (c == '"' || c == '\'')
        k = lex_string(lx, t);
    else if (name_start(c) || c == '.')
        k = lex_path(lx, t);
    else
        k = lex_operator(lx, t);
    if (k == SL__TK_ERROR) return t->k = SL__TK_ERROR;
    lx->pos = t->end;
    return k;
}

/* Regex flags and the PCRE2 options they stand for. */
static int regex_flags(struct sl__lexer *lx, size_t i, uint32_t *flags)
{
    const char *s = lx->src;
    for (; i < lx->len && name_char(s[i]); i++) {
        switch (s[i]) {
        case 'i': *flags |= PCRE2_CASELESS; break;
        case 'm': *flags |= PCRE2_MULTILINE; break;
        case 's': *flags |= PCRE2_DOTALL; break;
        case 'x': *flags |= PCRE2_EXTENDED; break;
        case 'u': *flags |= PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF; break;
        default:
            return sl__lex_fail(lx, SL_EPARSE, i,
                                "unknown regex flag '%c' (expected i, m, s, x or u)", s[i]);
        }
    }
    lx->pos = i;
    return 0;
}

int sl__lex_regex(struct sl__lexer *lx, struct sl__tok *t)
{
    if (lx->failed) return t->k = SL__TK_ERROR;
    skip_space(lx);
    if (lx->pos >= lx->len || lx->src[lx->pos] != '/') return sl__lex_next(lx, t);
    memset(t, 0, sizeof *t);
    t->pos = lx->pos;
    const char *s = lx->src;
    char *out = sl__pool_alloc(lx->pool, extent(lx, t->pos) - t->pos);
    if (!out) return sl__lex_fail(lx, SL_ENOMEM, t->pos, "out of memory");
    size_t o = 0, i = t->pos + 1;
    while (i < lx->len && s[i] != '/') {
        if (s[i] == '\\' && i + 1 < lx->len) {
            if (s[i + 1] != '/') out[o++] = '\\'; /* "\/" is a '/'; other escapes are PCRE2's */
            out[o++] = s[i + 1];
            i += 2;
        } else {
            out[o++] = s[i++];
        }
    }
    if (i >= lx->len)
        return sl__lex_fail(lx, SL_EPARSE, t->pos,
                            "expected a closing '/' to end the regex, found %s",
                            lx->until_close ? "end of template" : "end of expression");
    if (regex_flags(lx, i + 1, &t->flags)) return t->k = SL__TK_ERROR;
    t->s = out;
    t->slen = o;
    t->end = lx->pos;
    return t->k = SL__TK_REGEX;
}
