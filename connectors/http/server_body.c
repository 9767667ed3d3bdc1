/* The `http_server` source's bodies: a body becomes events here, checked whole before
 * any of it enters the pipeline, so that a bad body is refused (400) at no cost to the
 * events of good ones. Each event's payload is the bytes of one line or one object, as
 * the file source's events are lines: `http_server -> parse_json` reads them.
 *
 * - ndjson: one JSON value per line (`\n`, a `\r` before it dropped); blank lines are
 *   skipped; a line that is not valid JSON refuses the body, naming the line.
 * - json: one object (one event), or an array of objects (one event each, the element's
 *   text as payload); anything else refuses the body.
 * - text: one event per line (`\r\n` loses the `\r`); a last line without `\n` counts;
 *   an empty body has no events.
 *
 * A gzip body (Content-Encoding: gzip) is inflated before this (server_req.c, with
 * gzip.c's sl__http_gunzip), bounded by max_body_bytes after inflation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/json.h>

#include "json_array.h"
#include "server.h"

static int push_span(struct sl__http_spans *out, size_t off, size_t len)
{
    if (out->n == out->cap) {
        size_t cap = out->cap ? 2 * out->cap : 64;
        struct sl__http_span *v = realloc(out->v, cap * sizeof *v);
        if (!v) return SL_ENOMEM;
        out->v = v, out->cap = cap;
    }
    out->v[out->n++] = (struct sl__http_span){(uint32_t)off, (uint32_t)len};
    return 0;
}

static bool blank(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != ' ' && p[i] != '\t') return false;
    return true;
}

/* Calls the line decoder for each line; `json` checks each non-blank line. */
static int decode_lines(const char *body, size_t len, bool json, struct sl__http_spans *out,
                        char *why, size_t size)
{
    size_t line = 0;
    for (size_t off = 0; off < len; line++) {
        const char *nl = memchr(body + off, '\n', len - off);
        size_t end = nl ? (size_t)(nl - body) : len;
        size_t n = end - off;
        if (n && body[end - 1] == '\r') n--;
        size_t at;
        if (json && blank(body + off, n)) {
            /* skipped: agents often end a body with an empty line */
        } else if (json && sl_json_validate(body + off, n, &at)) {
            snprintf(why, size, "line %zu: invalid JSON at byte %zu of the line", line + 1, at + 1);
            return SL_EPARSE;
        } else if (push_span(out, off, n)) {
            return SL_ENOMEM;
        }
        off = end + 1;
    }
    return 0;
}

static size_t skip_ws(const char *p, size_t i, size_t len)
{
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')) i++;
    return i;
}

struct array_walk {
    const char *body;           /* the whole body */
    struct sl__http_spans *out; /* the events */
    char *why;                  /* the reason, when an element is not an object */
    size_t size;                /* its bytes */
};

static int take_element(void *arg, const char *el, size_t len)
{
    struct array_walk *w = arg;
    if (el[0] != '{') {
        snprintf(w->why, w->size, "element %zu of the array is not an object", w->out->n + 1);
        return SL_EPARSE;
    }
    return push_span(w->out, (size_t)(el - w->body), len);
}

static int decode_json(const char *body, size_t len, struct sl__http_spans *out, char *why,
                       size_t size)
{
    size_t at;
    if (sl_json_validate(body, len, &at)) {
        snprintf(why, size, "invalid JSON at byte %zu", at + 1);
        return SL_EPARSE;
    }
    size_t i = skip_ws(body, 0, len), end = len;
    if (body[i] == '[') {
        struct array_walk w = {body, out, why, size};
        return sl__http_json_array_each(body, len, take_element, &w);
    }
    if (body[i] != '{') {
        snprintf(why, size, "expected an object or an array of objects");
        return SL_EPARSE;
    }
    while (end > i && body[end - 1] != '}') end--; /* the whitespace after the object */
    return push_span(out, i, end - i);
}

int sl__http_decode(enum sl__http_encoding enc, const char *body, size_t len,
                    struct sl__http_spans *out, char *why, size_t size)
{
    int rc;
    if (enc == SL__HTTP_JSON)
        rc = decode_json(body, len, out, why, size);
    else
        rc = decode_lines(body, len, enc == SL__HTTP_NDJSON, out, why, size);
    if (rc) {
        free(out->v);
        *out = (struct sl__http_spans){0};
        if (rc == SL_ENOMEM) snprintf(why, size, "out of memory");
    }
    return rc;
}
