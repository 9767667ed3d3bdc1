/* What the two halves of the JSON reader share: read.c (validation, the member walk, the
 * container machine) and lookup.c (paths and the members of text a parser validated).
 * Private to pipeline/json. */
#ifndef SLUICE_PIPELINE_JSON_READER_H
#define SLUICE_PIPELINE_JSON_READER_H

#include <stdint.h>

#include "json/lex.h"

/* Open containers: bit d of `obj` is set when the container at depth d is an object. */
struct frames {
    uint64_t obj[SL_JSON_MAX_DEPTH / 64]; /* object/array bit per depth */
    unsigned depth;                       /* containers open */
};

static inline void frames_push(struct frames *f, bool obj)
{
    uint64_t bit = 1ull << (f->depth % 64);
    uint64_t *w = &f->obj[f->depth / 64];
    *w = obj ? (*w | bit) : (*w & ~bit);
    f->depth++;
}

static inline bool frames_top_is_obj(const struct frames *f)
{
    unsigned d = f->depth - 1;
    return (f->obj[d / 64] >> (d % 64)) & 1;
}

/* Opens the container at p ('{' or '['): checks the depth limit, pushes it, and returns
 * the first byte after the bracket and its whitespace. */
static inline const uchar *container_open(struct scan *s, const uchar *p, struct frames *f)
{
    if (f->depth >= SL_JSON_MAX_DEPTH) return fail(s, p);
    frames_push(f, *p == '{');
    return skip_ws(p + 1, s->end);
}

/* Past the `c` expected at p after optional whitespace, and the whitespace after it; NULL
 * (the error at s) when it is not there. Log lines have no blanks: the first test is the
 * common path. */
static inline const uchar *expect(struct scan *s, const uchar *p, uchar c)
{
    const uchar *end = s->end;
    if (p < end && *p != c) p = skip_ws(p, end);
    if (p == end || *p != c) return fail(s, p);
    return skip_ws(p + 1, end);
}

/* Scans a member name and the ':' after it; p is at the opening quote (checked here).
 * Sets *name_end to the closing quote and returns the first byte of the value. */
static inline const uchar *member_name(struct scan *s, const uchar *p, bool *escaped,
                                       const uchar **name_end)
{
    const uchar *end = s->end;
    if (p == end || *p != '"') return fail(s, p);
    if (!(p = string_end(s, p + 1, escaped))) return NULL;
    *name_end = p - 1;
    return expect(s, p, ':');
}

/* Checks that nothing but whitespace follows the document. */
static inline const uchar *document_end(struct scan *s, const uchar *p)
{
    p = skip_ws(p, s->end);
    return p == s->end ? p : fail(s, p);
}

static inline int scan_error(const struct scan *s, const char *json, size_t *err_off)
{
    if (err_off) *err_off = (size_t)((const char *)s->err - json);
    return s->code;
}

/* The container grammar as a state machine over f's bit stack (read.c). With `open`, p
 * is at a bracket to open; otherwise p is just after a complete value inside the
 * innermost open container. Runs until the container that brings the depth down to
 * `stop` closes, and returns the byte after its closing bracket. */
const uchar *sl__json_containers(struct scan *s, const uchar *p, struct frames *f, unsigned stop,
                                 bool open);

/* Reads the value at p (p < end, whitespace skipped) into *v; `depth` is the number of
 * containers around it (read.c). Containers are validated and become SL_JSON spans. With
 * `keep`, a value too long for sl_value.len is an error (SL_EINVAL). */
const uchar *sl__json_value_at(struct scan *s, const uchar *p, unsigned depth, struct sl_value *v,
                               bool keep);

#endif
