/* The JSON reader's lookups: a path into a text (sl_json_get), and the members of an
 * object a parser validated already (sl__json_member, sl__json_members: the index of a
 * nested object), where the values passed over are skipped by their ends alone. */
#include <stdint.h>
#include <string.h>

#include <sluice/json.h>

#include "json/internal.h"
#include "json/lex.h"
#include "json/reader.h"
#include "json/scan.h"

/* ---- trusted text: values a parser has validated ------------------------------------ */

/* The first '"' or '\\' in [p, end), or `end`; 8 bytes at a time while 8 remain (the
 * lowest flagged byte of the zero-byte test is exact). */
static inline const uchar *quote_or_backslash(const uchar *p, const uchar *end)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t q = w ^ (SL__JSON_ONES * '"'), b = w ^ (SL__JSON_ONES * '\\');
        uint64_t m = (((q - SL__JSON_ONES) & ~q) | ((b - SL__JSON_ONES) & ~b)) & SL__JSON_HIGH;
        if (m) return p + (__builtin_ctzll(m) >> 3);
        p += 8;
    }
#endif
    while (p < end && *p != '"' && *p != '\\') p++;
    return p;
}

/* Past the string whose body starts at p, looking only for its closing quote; sets
 * *escaped when it holds a backslash. Returns `end` at the latest. */
static const uchar *trusted_string_end(const uchar *p, const uchar *end, bool *escaped)
{
    for (;;) {
        p = quote_or_backslash(p, end);
        if (p == end) return end;
        if (*p == '"') return p + 1;
        *escaped = true;
        if (end - p <= 2) return end;
        p += 2;
    }
}

/* Past the value at p (p < end) of valid text, by its end alone: a string's closing
 * quote, a container's matching bracket, a scalar's following ',', '}', ']' or blank.
 * Nothing is checked, but nothing at or past `end` is read, whatever the text. */
static const uchar *trusted_value_end(const uchar *p, const uchar *end)
{
    static const bool scalar_end[256] = {[','] = true,  ['}'] = true,  [']'] = true, [' '] = true,
                                         ['\t'] = true, ['\n'] = true, ['\r'] = true};
    bool esc;
    if (*p == '"') return trusted_string_end(p + 1, end, &esc);
    if (*p != '{' && *p != '[') {
        while (p < end && !scalar_end[*p]) p++;
        return p;
    }
    size_t depth = 0;
    while (p < end) {
        uchar c = *p++;
        if (c == '"')
            p = trusted_string_end(p, end, &esc);
        else if (c == '{' || c == '[')
            depth++;
        else if ((c == '}' || c == ']') && --depth == 0)
            return p;
    }
    return end;
}

/* member_name for trusted text: the name's closing quote by trusted_string_end. */
static const uchar *trusted_member_name(struct scan *s, const uchar *p, bool *escaped,
                                        const uchar **name_end)
{
    const uchar *end = s->end;
    if (p == end || *p != '"') return fail(s, p);
    p = trusted_string_end(p + 1, end, escaped);
    *name_end = p - 1;
    return expect(s, p, ':');
}

/* ---- path lookup ------------------------------------------------------------------- */

/* One step of a path: a member name, or an array index when `name` is NULL. */
struct seg {
    const uchar *name; /* member name bytes (in the path), or NULL */
    size_t len;        /* bytes of name */
    size_t index;      /* array index, saturated at SIZE_MAX */
};

/* Reads the segment at path[*pos] and the separator after it. Returns 1 with *seg, 0 at
 * the end of the path, or SL_EINVAL for a malformed path. */
static int next_seg(const uchar *path, size_t len, size_t *pos, struct seg *seg)
{
    size_t i = *pos;
    if (i == len) return 0;
    if (path[i] == '[') {
        size_t idx = 0, start = ++i;
        for (; i < len && is_digit(path[i]); i++) {
            unsigned d = path[i] - '0';
            idx = idx > (SIZE_MAX - d) / 10 ? SIZE_MAX : idx * 10 + d;
        }
        if (i == start || i == len || path[i] != ']') return SL_EINVAL;
        i++;
        if (i < len && path[i] != '.' && path[i] != '[') return SL_EINVAL;
        *seg = (struct seg){.name = NULL, .index = idx};
    } else {
        size_t start = i;
        while (i < len && path[i] != '.' && path[i] != '[') i++;
        if (i == start) return SL_EINVAL;
        *seg = (struct seg){.name = path + start, .len = i - start};
    }
    if (i < len && path[i] == '.' && (++i == len || path[i] == '.' || path[i] == '['))
        return SL_EINVAL;
    *pos = i;
    return 1;
}

/* Decodes the escape at *e (validated by the scanner) into o, as sl_value_unescape does:
 * a surrogate pair makes one code point, a lone surrogate U+FFFD. Returns the bytes. */
static size_t unescape_one(const uchar **e, const uchar *end, uchar *o)
{
    const uchar *p = *e;
    static const uchar simple[128] = {['"'] = '"',  ['\\'] = '\\', ['/'] = '/',  ['b'] = '\b',
                                      ['f'] = '\f', ['n'] = '\n',  ['r'] = '\r', ['t'] = '\t'};
    if (p[1] != 'u') {
        *e = p + 2;
        o[0] = simple[p[1] & 0x7F];
        return 1;
    }
    size_t i = 1; /* at the 'u' */
    size_t n = sl__unescape_u((const char *)p, (size_t)(end - p), &i, (char *)o);
    *e = p + i;
    return n;
}

/* Compares a member name as it is in the text (`n` bytes, escaped or not) with the
 * decoded bytes of a path segment, decoding escapes on the fly (no buffer). */
static bool name_eq(const uchar *name, size_t n, bool escaped, const struct seg *seg)
{
    if (!escaped) return n == seg->len && memcmp(name, seg->name, n) == 0;
    const uchar *e = name, *end = name + n;
    size_t j = 0;
    while (e < end) {
        uchar buf[4];
        size_t k = 1;
        if (*e == '\\')
            k = unescape_one(&e, end, buf);
        else
            buf[0] = *e++;
        if (seg->len - j < k || memcmp(seg->name + j, buf, k) != 0) return false;
        j += k;
    }
    return j == seg->len;
}

/* Steps from the value at p (p < end) into the member or element that `seg` names; of a
 * repeated member name, the last member (as jq, Python and JavaScript read it), so an
 * object is read to its end. With `trusted` (text a parser validated), the values passed
 * over are skipped by their ends alone. On a hit, returns the first byte of that value
 * (< end) with its container pushed on f. On a miss (p is not the right kind of
 * container, or it has no such member or element), clears *found and returns the byte
 * after the value consumed, that container popped. */
static const uchar *descend(struct scan *s, const uchar *p, struct frames *f, const struct seg *seg,
                            bool trusted, bool *found)
{
    const uchar *end = s->end, *name_end, *last = NULL;
    bool obj = seg->name != NULL;
    struct sl_value v;
    if (*p != (obj ? '{' : '[')) {
        *found = false;
        return trusted ? trusted_value_end(p, end) : sl__json_value_at(s, p, f->depth, &v, false);
    }
    if (!(p = container_open(s, p, f))) return NULL;
    if (p < end && *p == (obj ? '}' : ']')) goto miss;
    for (size_t i = 0;; i++) {
        bool esc = false;
        const uchar *name = p + 1;
        if (obj && !(p = trusted ? trusted_member_name(s, p, &esc, &name_end)
                                 : member_name(s, p, &esc, &name_end)))
            return NULL;
        if (p == end) return fail(s, p);
        if (obj ? name_eq(name, (size_t)(name_end - name), esc, seg) : i == seg->index) {
            if (!obj) return p;
            last = p; /* a later member of that name would hide it */
        }
        p = trusted ? trusted_value_end(p, end) : sl__json_value_at(s, p, f->depth, &v, false);
        if (!p) return NULL;
        p = skip_ws(p, end);
        if (p == end) return fail(s, p);
        if (*p == ',') {
            p = skip_ws(p + 1, end);
            continue;
        }
        if (*p != (obj ? '}' : ']')) return fail(s, p);
        if (last) return last; /* the object stays pushed: its end is read again after */
        goto miss;
    }
miss:
    f->depth--;
    *found = false;
    return p + 1;
}

bool sl__json_name_is(const char *name, size_t n, const char *seg, size_t seg_len)
{
    const struct seg sg = {.name = (const uchar *)seg, .len = seg_len};
    return name_eq((const uchar *)name, n, true, &sg);
}

int sl__json_members(const char *json, size_t len, struct sl__json_span *out, size_t max)
{
    const uchar *base = (const uchar *)json, *p = base, *end = p + len;
    struct scan s = {.end = end};
    size_t n = 0;
    p = skip_ws(p, end);
    if (p == end || *p != '{') return p == end ? SL_EPARSE : SL_ENOTFOUND;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}') return 0;
    for (;; n++) {
        bool esc = false;
        const uchar *name = p + 1, *name_end;
        if (!(p = trusted_member_name(&s, p, &esc, &name_end))) return s.code;
        if (p == end) return SL_EPARSE;
        if (n == max) return SL_ELIMIT;
        out[n] = (struct sl__json_span){.name_off = (uint32_t)(name - base),
                                        .name_len = (uint32_t)(name_end - name),
                                        .value_off = (uint32_t)(p - base),
                                        .escaped = esc};
        p = skip_ws(trusted_value_end(p, end), end);
        if (p == end) return SL_EPARSE;
        if (*p == '}') return (int)n + 1;
        if (*p != ',') return SL_EPARSE;
        p = skip_ws(p + 1, end);
    }
}

int sl__json_value(const char *json, size_t len, size_t off, struct sl_value *out)
{
    const uchar *p = (const uchar *)json + off;
    struct scan s = {.end = (const uchar *)json + len};
    struct sl_value v;
    if (off >= len || !sl__json_value_at(&s, p, 1, &v, true))
        return off >= len ? SL_EPARSE : s.code;
    *out = v;
    return 0;
}

int sl__json_member(const char *json, size_t len, const char *name, size_t name_len,
                    struct sl_value *out)
{
    const uchar *p = (const uchar *)json, *end = p + len, *last = NULL;
    struct scan s = {.end = end};
    const struct seg seg = {.name = (const uchar *)name, .len = name_len};
    p = skip_ws(p, end);
    if (p == end || *p != '{') return p == end ? SL_EPARSE : SL_ENOTFOUND;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}') return SL_ENOTFOUND;
    for (;;) {
        bool esc = false;
        const uchar *n = p + 1, *name_end;
        if (!(p = trusted_member_name(&s, p, &esc, &name_end))) return s.code;
        if (p == end) return SL_EPARSE;
        if (name_eq(n, (size_t)(name_end - n), esc, &seg)) last = p; /* the last one wins */
        p = skip_ws(trusted_value_end(p, end), end);
        if (p == end) return SL_EPARSE;
        if (*p == '}') break;
        if (*p != ',') return SL_EPARSE;
        p = skip_ws(p + 1, end);
    }
    if (!last) return SL_ENOTFOUND;
    return sl__json_value(json, len, (size_t)(last - (const uchar *)json), out);
}

int sl__json_get(const char *json, size_t len, const char *path, size_t path_len,
                 struct sl_value *out, bool validate)
{
    const uchar *pp = (const uchar *)path;
    size_t first = path_len && pp[0] == '.' ? 1 : 0, pos = first;
    struct seg seg;
    int rc;
    while ((rc = next_seg(pp, path_len, &pos, &seg)) == 1) continue;
    if (rc < 0) return rc;

    const uchar *p = (const uchar *)json, *end = p + len;
    struct scan s = {.end = end};
    struct frames f = {.depth = 0};
    struct sl_value v;
    bool found = true;
    p = skip_ws(p, end);
    if (p == end) return SL_EPARSE;
    for (pos = first; found && next_seg(pp, path_len, &pos, &seg) == 1;) {
        if (!(p = descend(&s, p, &f, &seg, !validate, &found))) return s.code;
    }
    if (found) p = sl__json_value_at(&s, p, f.depth, &v, true);
    if (p && !validate) { /* text a parser has checked already: done */
        if (!found) return SL_ENOTFOUND;
        *out = v;
        return 0;
    }
    /* Whatever the outcome, finish the enclosing containers so that the whole text is
     * validated, then the document's end. */
    if (p && f.depth > 0) p = sl__json_containers(&s, p, &f, 0, false);
    if (p) p = document_end(&s, p);
    if (!p) return s.code;
    if (!found) return SL_ENOTFOUND;
    *out = v;
    return 0;
}

int sl_json_get(const char *json, size_t len, const char *path, size_t path_len,
                struct sl_value *out)
{
    return sl__json_get(json, len, path, path_len, out, true);
}
