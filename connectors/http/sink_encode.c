/* The `http` sink's bodies and URIs: events encoded into a request's body, and the URI
 * template rendered for each event.
 *
 * ndjson: each event's JSON form (sl_event_write_json: a parsed, unchanged event is its
 * payload bytes; a raw line becomes {"message": ...}) and a '\n'. json_array: the same
 * forms between '[' and ']', separated by ','. text: each payload and a '\n'. */
#include <stdlib.h>
#include <string.h>

#include <sluice/json.h>

#include "sink.h"

#define URI_MAX 8192 /* a rendered URI longer than this is refused */

/* Makes room for `need` more bytes in r->body. */
static int reserve(struct sl__http_req *r, size_t need)
{
    if (r->cap - r->len >= need) return 0;
    size_t cap = r->cap ? r->cap : 16384;
    while (cap - r->len < need) cap *= 2;
    char *b = realloc(r->body, cap);
    if (!b) return SL_ENOMEM;
    r->body = b;
    r->cap = cap;
    return 0;
}

static int add(struct sl__http_req *r, const char *s, size_t n)
{
    if (reserve(r, n)) return SL_ENOMEM;
    if (n) memcpy(r->body + r->len, s, n);
    r->len += n;
    return 0;
}

/* Appends the JSON form of `ev`. */
static int add_json(struct sl__http_req *r, const struct sl_event *ev)
{
    size_t room = r->cap - r->len;
    size_t n = sl_event_write_json(ev, r->body ? r->body + r->len : NULL, room);
    if (n > room) {
        if (reserve(r, n)) return SL_ENOMEM;
        sl_event_write_json(ev, r->body + r->len, r->cap - r->len);
    }
    r->len += n;
    return 0;
}

int sl__http_encode(struct sl__http_sink *k, struct sl__http_req *r, const struct sl_event *ev)
{
    int rc;
    switch (k->encoding) {
    case SL__HTTP_TEXT: {
        size_t n;
        const char *p = sl_event_payload(ev, &n);
        rc = add(r, p ? p : "", p ? n : 0);
        if (!rc) rc = add(r, "\n", 1);
        break;
    }
    case SL__HTTP_JSON_ARRAY:
        rc = add(r, r->events ? "," : "[", 1);
        if (!rc) rc = add_json(r, ev);
        break;
    default:
        rc = add_json(r, ev);
        if (!rc) rc = add(r, "\n", 1);
    }
    if (!rc) r->events++;
    return rc;
}

int sl__http_encode_end(struct sl__http_sink *k, struct sl__http_req *r)
{
    if (k->encoding != SL__HTTP_JSON_ARRAY) return 0;
    return add(r, r->events ? "]" : "[]", r->events ? 1 : 2);
}

int sl__http_encode_bytes(struct sl__http_sink *k, struct sl__http_req *r, const char *s, size_t n)
{
    int rc = 0;
    if (k->encoding == SL__HTTP_JSON_ARRAY && n) {
        rc = add(r, r->events ? "," : "[", 1);
        s++, n--;
    }
    if (!rc) rc = add(r, s, n);
    if (!rc) r->events++;
    return rc;
}

/* ---- URIs ---------------------------------------------------------------------------- */

/* A URI being rendered into the sink's scratch. */
struct uri_out {
    struct sl__http_sink *k;
    size_t len; /* bytes so far */
    bool null;  /* a {{ }} was null */
    bool nomem; /* the scratch could not grow */
};

static int uri_piece(void *arg, enum sl_template_piece kind, const char *s, size_t len)
{
    struct uri_out *u = arg;
    struct sl__http_sink *k = u->k;
    if (kind == SL_TEMPLATE_NULL) {
        u->null = true; /* no text (s may be NULL) */
        return 0;
    }
    if (u->len + len + 1 > URI_MAX) return 1; /* too long: refused like a null */
    if (u->len + len + 1 > k->scratch_cap) {
        size_t cap = k->scratch_cap ? k->scratch_cap : 256;
        while (cap < u->len + len + 1) cap *= 2;
        char *s2 = realloc(k->scratch, cap);
        if (!s2) {
            u->nomem = true;
            return 1;
        }
        k->scratch = s2;
        k->scratch_cap = cap;
    }
    memcpy(k->scratch + u->len, s, len);
    u->len += len;
    return 0;
}

size_t sl__http_render_uri(struct sl__http_sink *k, struct sl_event *ev, bool *nomem)
{
    struct uri_out u = {.k = k};
    int rc = sl_template_each(k->uri, ev, uri_piece, &u);
    *nomem = u.nomem || rc == SL_ENOMEM;
    if (rc || u.null || !k->scratch) return SIZE_MAX;
    k->scratch[u.len] = '\0';
    return u.len;
}
