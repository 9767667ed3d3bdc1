/* The JSON reader: strict RFC 8259 validation and the zero-copy member walk (lookups are
 * lookup.c's, on the same scanner).
 *
 * One scanner serves every entry point. Scalars are read by small inline functions;
 * containers by a state machine with an explicit bit stack (one bit per open container:
 * object or array), so nesting costs 1 bit, not a C stack frame, and deep input can
 * never overflow the stack. Every read checks `end` first: the input is not
 * NUL-terminated and may end at an unmapped page. */
#include <stdint.h>
#include <string.h>

#include <sluice/json.h>

#include "json/internal.h"
#include "json/lex.h"
#include "json/reader.h"
#include "json/scan.h"

/* The container grammar as a state machine over f's bit stack; gotos name the states.
 * With `open`, p is at a bracket to open; otherwise p is just after a complete value
 * inside the innermost open container. Runs until the container that brings the depth
 * down to `stop` closes, and returns the byte after its closing bracket. Frames below
 * `stop` are never read, so a caller may start with f->depth = stop and no bits set. */
const uchar *sl__json_containers(struct scan *s, const uchar *p, struct frames *f, unsigned stop,
                                 bool open)
{
    const uchar *end = s->end, *w, *name_end;
    bool esc, flt, done, obj = false; /* obj: the innermost open container is an object */
    uchar c;
    if (!open) {
        obj = frames_top_is_obj(f);
        goto after_value;
    }
open_container:
    obj = *p == '{';
    if (f->depth >= SL_JSON_MAX_DEPTH) return fail(s, p);
    frames_push(f, obj);
    p++;
    if (!next_byte(&p, end, &c)) return fail(s, p);
    if (c == (obj ? '}' : ']')) goto close_container;
    if (!obj) goto value;
member:
    if (c == '"' && (w = member_window(p, end, &name_end, NULL, &done))) {
        p = w;
        if (done) goto after_value; /* the value, a string, was read too */
        goto value_ws;
    }
    if (c != '"') return fail(s, p);
    if (!(p = string_end(s, p + 1, &esc))) return NULL;
    if (!next_byte(&p, end, &c) || c != ':') return fail(s, p);
    p++;
value_ws:
    if (!next_byte(&p, end, &c)) return fail(s, p);
value:
    switch (c) {
    case '{':
    case '[': goto open_container;
    case '"': p = string_end(s, p + 1, &esc); break;
    case 't': p = literal_end(s, p, "true", 4); break;
    case 'f': p = literal_end(s, p, "false", 5); break;
    case 'n': p = literal_end(s, p, "null", 4); break;
    default: p = number_end(s, p, &flt); break;
    }
    if (!p) return NULL;
after_value:
    if (!next_byte(&p, end, &c)) return fail(s, p);
    if (c == ',') {
        p++;
        if (!next_byte(&p, end, &c)) return fail(s, p);
        if (obj) goto member;
        goto value;
    }
    if (c != (obj ? '}' : ']')) return fail(s, p);
close_container:
    p++;
    if (--f->depth == stop) return p;
    obj = frames_top_is_obj(f);
    goto after_value;
}

/* Reads the value at p (p < end, whitespace skipped) into *v; `depth` is the number of
 * containers around it. Containers are validated and become SL_JSON spans. With `keep`,
 * a value too long for sl_value.len is an error (SL_EINVAL); values only skipped over may
 * be of any size (v->len is then meaningless). */
const uchar *sl__json_value_at(struct scan *s, const uchar *p, unsigned depth, struct sl_value *v,
                               bool keep)
{
    const uchar *start = p, *first = p;
    bool esc = false, flt = false;
    *v = (struct sl_value){.type = SL_NULL};
    switch (*p) {
    case '"':
        if (!(p = string_end(s, p + 1, &esc))) return NULL;
        v->type = SL_STRING;
        v->flags = esc ? SL_VALUE_ESCAPED : SL_VALUE_JSON_SAFE; /* checked as read */
        start++;
        break;
    case '{':
    case '[': {
        struct frames f; /* the bits below `depth` are never read: not cleared */
        f.depth = depth;
        if (!(p = sl__json_containers(s, p, &f, depth, true))) return NULL;
        v->type = SL_JSON;
        break;
    }
    case 't':
    case 'f':
        v->type = SL_BOOL;
        v->b = *p == 't';
        p = v->b ? literal_end(s, p, "true", 4) : literal_end(s, p, "false", 5);
        return p;
    case 'n': return literal_end(s, p, "null", 4);
    default:
        if (!(p = number_end(s, p, &flt))) return NULL;
        v->type = flt ? SL_FLOAT : SL_INT;
        v->flags = SL_VALUE_TEXT;
        break;
    }
    size_t n = (size_t)(p - start) - (v->type == SL_STRING);
    if (keep && n > UINT32_MAX) {
        s->err = first;
        s->code = SL_EINVAL;
        return NULL;
    }
    v->s = (const char *)start;
    v->len = (uint32_t)n;
    return p;
}

int sl_json_validate(const char *json, size_t len, size_t *err_off)
{
    const uchar *p = (const uchar *)json, *end = p + len;
    struct scan s = {.end = end};
    struct sl_value v;
    p = skip_ws(p, end);
    if (p == end)
        p = fail(&s, p);
    else if ((p = sl__json_value_at(&s, p, 0, &v, false)))
        p = document_end(&s, p);
    return p ? 0 : scan_error(&s, json, err_off);
}

/* A member's value at p (p < end, no whitespace) into *v: strings and numbers, the values
 * of most members of a log line, read inline; the rest by sl__json_value_at. */
static inline const uchar *member_value(struct scan *s, const uchar *p, struct sl_value *v)
{
    const uchar *q;
    bool esc = false, flt = false;
    if (*p == '"') {
        if (!(q = string_end(s, p + 1, &esc))) return NULL;
        if ((size_t)(q - p) - 2 > UINT32_MAX)
            return sl__json_value_at(s, p, 1, v, true); /* its error */
        *v = (struct sl_value){.type = SL_STRING,
                               .flags = esc ? SL_VALUE_ESCAPED : SL_VALUE_JSON_SAFE,
                               .s = (const char *)p + 1,
                               .len = (uint32_t)(q - p - 2)};
        return q;
    }
    if (*p == 't' || *p == 'f') {
        *v = (struct sl_value){.type = SL_BOOL, .b = *p == 't'};
        return v->b ? literal_end(s, p, "true", 4) : literal_end(s, p, "false", 5);
    }
    if (!is_digit(*p) && *p != '-') return sl__json_value_at(s, p, 1, v, true);
    if (!(q = number_end(s, p, &flt))) return NULL;
    if ((size_t)(q - p) > UINT32_MAX) return sl__json_value_at(s, p, 1, v, true);
    *v = (struct sl_value){.type = flt ? SL_FLOAT : SL_INT,
                           .flags = SL_VALUE_TEXT,
                           .s = (const char *)p,
                           .len = (uint32_t)(q - p)};
    return q;
}

int sl_json_each_member(const char *json, size_t len,
                        int (*fn)(void *arg, const char *name, size_t name_len, bool name_escaped,
                                  const struct sl_value *v),
                        void *arg, size_t *err_off)
{
    const uchar *p = (const uchar *)json, *end = p + len;
    struct scan s = {.end = end};
    struct sl_value v;
    p = skip_ws(p, end);
    if (p == end || *p != '{') goto failed;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}') goto done;
    for (;;) {
        bool esc = false;
        const uchar *name = p + 1, *name_end;
        uchar c;
        int rc;
        bool done;
        const uchar *w;
        if (p < end && *p == '"' && (w = member_window(p, end, &name_end, &v, &done))) {
            p = w;
            if (!done && (!next_byte(&p, end, &c) || !(p = member_value(&s, p, &v)))) goto failed;
            goto member;
        }
        if (p == end || *p != '"' || !(p = string_end(&s, name, &esc))) goto failed;
        name_end = p - 1;
        if (!next_byte(&p, end, &c) || c != ':') goto failed;
        p++;
        if (!next_byte(&p, end, &c) || !(p = member_value(&s, p, &v))) goto failed;
    member:
        if ((rc = fn(arg, (const char *)name, (size_t)(name_end - name), esc, &v))) return rc;
        if (!next_byte(&p, end, &c)) goto failed;
        if (c == '}') break;
        if (c != ',') goto failed;
        p = skip_ws(p + 1, end);
    }
done:
    if (!(p = document_end(&s, p + 1))) return scan_error(&s, json, err_off);
    return 0;
failed:
    if (!s.err) fail(&s, p);
    return scan_error(&s, json, err_off);
}
