/* Pages of the `http_client` source: a response's records as events, one batch per page
 * (more when a page is larger than a batch), and where the next request goes.
 *
 * Records: with `decode: json`, the array at `records_path` (the whole body when unset:
 * an array is its elements, an object is one record); with `ndjson`, each non-empty line.
 * Each record is one event whose payload is the record's JSON text, a raw record for
 * parse_json downstream (as the kafka source's messages are); its origin is the page's
 * URL and its offset the record's index in the page.
 *
 * The position: the page asked for (a cursor, a page number or a URL) and the records of
 * it already delivered (`skip`). A page with a next one moves the position there (skip
 * 0); the last page keeps its own with skip = its records, so that the next poll (after
 * `interval`) and a restart ask for it again and deliver only what was added to it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include <sluice/json.h>

#include "client.h"
#include "json_array.h"
#include "uri.h"

/* One page being turned into batches. */
struct page {
    struct sl__hcli *c; /* the source */
    const char *url;    /* the page's URL (the slot's) */
    struct sl_batch *b; /* the batch being filled, NULL before the first record */
    const char *origin; /* the URL in b's arena */
    int64_t index;      /* the record's index in the page */
    int64_t now_ns;     /* the events' time: when the page came */
    int rc;             /* SL_ENOMEM, or a record refused by on_error: fail */
};

char *sl__hcli_page_url(struct sl__hcli *c)
{
    char num[32];
    switch (c->paging) {
    case HCLI_LINK: return strdup(c->at.pos ? c->at.pos : c->uri);
    case HCLI_CURSOR:
        return c->at.pos ? sl__http_uri_with_param(c->uri, c->paging_param, c->at.pos)
                         : strdup(c->uri);
    case HCLI_PAGE:
        snprintf(num, sizeof num, "%lld", (long long)c->page_start);
        return sl__http_uri_with_param(c->uri, c->paging_param, c->at.pos ? c->at.pos : num);
    default: return strdup(c->uri);
    }
}

int sl__hcli_ready_push(struct sl__hcli *c, struct sl_batch *b, const struct sl__hcli_pos *at)
{
    if (c->nready == c->ready_cap) {
        size_t cap = c->ready_cap ? 2 * c->ready_cap : 4;
        struct sl__hcli_ready *r = realloc(c->ready, cap * sizeof *r);
        if (!r) return sl_batch_unref(b), SL_ENOMEM;
        c->ready = r;
        c->ready_cap = cap;
    }
    struct sl__hcli_ready *r = &c->ready[c->nready];
    *r = (struct sl__hcli_ready){.b = b};
    if (sl__hcli_pos_copy(&r->at, at)) return sl_batch_unref(b), SL_ENOMEM;
    c->nready++;
    return 0;
}

/* A new batch for the page, its URL copied into the arena. */
static int page_batch(struct page *pg)
{
    size_t len = strlen(pg->url);
    char *origin;
    if (!(pg->b = sl_batch_new(pg->c->stage)) || !(origin = sl_batch_alloc(pg->b, len + 1)))
        return SL_ENOMEM;
    memcpy(origin, pg->url, len + 1);
    pg->origin = origin;
    return 0;
}

/* One more event in the page's batch: the payload `text` (copied), or a dead letter of
 * it with `error`. A full batch goes to poll() with the position after this record. */
static int add_event(struct page *pg, const char *text, size_t len, const char *error)
{
    if (!pg->b && page_batch(pg)) return SL_ENOMEM;
    struct sl_event *ev = sl_batch_append(pg->b);
    char *copy = ev ? sl_event_alloc(ev, len ? len : 1) : NULL;
    if (!copy) return SL_ENOMEM;
    memcpy(copy, text, len);
    sl_event_set_payload(ev, copy, len);
    sl_event_set_origin(ev, pg->origin, (uint64_t)pg->index, -1);
    sl_event_set_time(ev, pg->now_ns);
    if (error && sl_event_set_error(ev, error, strlen(error))) return SL_ENOMEM;
    if (!sl_batch_full(pg->b)) return 0;
    struct sl__hcli_pos at = {.pos = pg->c->at.pos, .skip = pg->index + 1};
    int rc = sl__hcli_ready_push(pg->c, pg->b, &at);
    pg->b = NULL;
    return rc;
}

/* A record that is not JSON (an ndjson line), or a page that cannot be read: counted as
 * an error, then by on_error dropped, passed on with field `error`, or failing the run.
 * Returns 0, or SL_EPARSE for `fail`. */
static int bad(struct page *pg, const char *text, size_t len, const char *why)
{
    struct sl__hcli *c = pg->c;
    sl_counter_add(c->n_malformed, 1);
    sl_stage_count_errors(c->stage, 1);
    if (c->on_error == HCLI_FAIL) {
        sl_stage_error(c->stage, SL_EPARSE, "%s: %s", pg->url, why);
        sl_stage_wake(c->stage);
        return SL_EPARSE;
    }
    sl_stage_log(c->stage, SL_LOG_WARN, "%s: %s (%s)", pg->url, why,
                 c->on_error == HCLI_EMIT ? "passed on with field 'error'" : "dropped");
    if (c->on_error == HCLI_EMIT) return add_event(pg, text, len, why);
    return 0;
}

/* A record of the page: skipped when delivered before, else an event. */
static int on_record(void *arg, const char *text, size_t len)
{
    struct page *pg = arg;
    int rc = 0;
    if (pg->index >= pg->c->at.skip) {
        if (pg->c->decode == HCLI_NDJSON && sl_json_validate(text, len, NULL))
            rc = bad(pg, text, len, "a line that is not JSON");
        else
            rc = add_event(pg, text, len, NULL);
    }
    pg->index++;
    return rc;
}

static int count_record(void *arg, const char *text, size_t len)
{
    (void)text, (void)len;
    (*(int64_t *)arg)++;
    return 0;
}

/* Calls `fn` for each non-empty line of `body` (a trailing CR dropped). */
static int each_line(const char *body, size_t len, int (*fn)(void *, const char *, size_t),
                     void *arg)
{
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(body + i, '\n', len - i);
        size_t n = nl ? (size_t)(nl - body) - i : len - i, m = n;
        if (m && body[i + m - 1] == '\r') m--;
        int rc = m ? fn(arg, body + i, m) : 0;
        if (rc) return rc;
        i += n + 1;
    }
    return 0;
}

/* The records' text in `body`: `*span` the array (json) or the body (ndjson). Returns
 * NULL, or why the page cannot be read. */
static const char *find_records(struct sl__hcli *c, const char *body, size_t len,
                                struct sl_value *span)
{
    *span = sl_value_json(body, len);
    if (c->decode != HCLI_JSON) return NULL;
    const char *path = c->records_path ? c->records_path : "";
    int rc = sl_json_get(body, len, path, strlen(path), span);
    if (rc == SL_EPARSE) return "the response is not valid JSON";
    if (rc) return "records_path is not in the response";
    if (span->type != SL_JSON) return "records_path is not an array or an object";
    return NULL;
}

/* Where the page after this one is (`*next`, owned; NULL when this is the last). */
static int next_position(struct sl__hcli *c, const char *url, const struct evkeyvalq *headers,
                         const char *body, size_t len, int64_t records, char **next)
{
    struct sl_value v;
    *next = NULL;
    if (c->paging == HCLI_LINK && headers) {
        *next = sl__http_link_next(headers, url);
    } else if (c->paging == HCLI_PAGE && records > 0) {
        long long n = c->at.pos ? strtoll(c->at.pos, NULL, 10) : c->page_start;
        char num[32];
        snprintf(num, sizeof num, "%lld", n + 1);
        if (!(*next = strdup(num))) return SL_ENOMEM;
    } else if (c->paging == HCLI_CURSOR && c->decode == HCLI_JSON &&
               !sl_json_get(body, len, c->paging_field, strlen(c->paging_field), &v) &&
               (v.type == SL_STRING || v.type == SL_INT || v.type == SL_FLOAT) && v.len) {
        if (!(*next = malloc(v.len + 1))) return SL_ENOMEM;
        int n = v.type == SL_STRING ? sl_value_unescape(&v, *next, v.len) : (int)v.len;
        if (v.type != SL_STRING) memcpy(*next, v.s, v.len);
        (*next)[n > 0 ? n : 0] = '\0';
    }
    if (*next && (!**next || (c->at.pos && !strcmp(*next, c->at.pos)))) { /* no progress */
        free(*next);
        *next = NULL;
    }
    return 0;
}

/* After the page: the next one, or `interval`, or the end. */
void sl__hcli_page_over(struct sl__hcli *c, bool has_next)
{
    if (has_next) {
        c->phase = HCLI_IDLE;
    } else if (c->interval_ms > 0) {
        c->phase = HCLI_WAITING;
        sl_timer_start(c->wait_timer, c->interval_ms, false);
    } else {
        c->phase = HCLI_END;
    }
    sl_stage_wake(c->stage);
}

/* The page's last batch (or none) with the position after the page. */
static int page_finish(struct page *pg, char *next, int64_t records)
{
    struct sl__hcli *c = pg->c;
    struct sl__hcli_pos after = {.pos = next, .skip = 0};
    if (!next && c->paging != HCLI_NONE) after = (struct sl__hcli_pos){c->at.pos, records};
    int rc = 0;
    if (pg->b) {
        rc = sl__hcli_ready_push(c, pg->b, &after);
        pg->b = NULL;
    } else if (c->paging != HCLI_NONE) {
        rc = sl__hcli_advance(c, &after);
    }
    if (!rc && next) {
        free(c->at.pos);
        c->at = (struct sl__hcli_pos){.pos = next};
        next = NULL;
    } else if (!rc) {
        c->at.skip = c->paging == HCLI_NONE ? 0 : records;
    }
    free(next);
    return rc;
}

/* The records of the page in `body` into events, `pg->index` counting them. Returns 0,
 * SL_ENOMEM or SL_EPARSE (on_error: fail); `*records`: the records of the page. */
static int read_records(struct page *pg, const char *body, size_t len, int64_t *records)
{
    struct sl__hcli *c = pg->c;
    struct sl_value span;
    const char *why = find_records(c, body, len, &span);
    *records = 0;
    if (!len) return 0; /* an empty body (204, or a poll with nothing new): no record */
    if (why) {
        if (c->paging == HCLI_LINK || c->paging == HCLI_PAGE) *records = 1; /* passed over */
        return bad(pg, body, len, why);
    }
    if (c->decode == HCLI_JSON && span.s[0] == '{') {
        *records = 1;
        return on_record(pg, span.s, span.len);
    }
    if (c->decode == HCLI_JSON) {
        sl__http_json_array_each(span.s, span.len, count_record, records);
        return sl__http_json_array_each(span.s, span.len, on_record, pg);
    }
    each_line(body, len, count_record, records);
    return each_line(body, len, on_record, pg);
}

int sl__hcli_page_decode(struct sl__hcli *c, const char *url, const struct evkeyvalq *headers,
                         const char *body, size_t len, bool *has_next)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct page pg = {.c = c, .url = url, .now_ns = ts.tv_sec * 1000000000LL + ts.tv_nsec};
    int64_t records = 0;
    char *next = NULL;
    sl_counter_add(c->n_pages, 1);
    int rc = read_records(&pg, body, len, &records);
    if (!rc) rc = next_position(c, url, headers, body, len, records, &next);
    *has_next = next != NULL;
    if (!rc)
        rc = page_finish(&pg, next, records);
    else
        free(next);
    sl_batch_unref(pg.b);
    return rc;
}

void sl__hcli_page_end(struct sl__hcli *c, int rc, bool has_next)
{
    if (rc == SL_ENOMEM) {
        sl_stage_error(c->stage, rc, "out of memory");
        sl_stage_wake(c->stage);
    } else if (!rc) {
        sl__hcli_page_over(c, has_next);
    }
}

void sl__hcli_page_done(struct sl__hcli_slot *slot, struct evhttp_request *req)
{
    struct sl__hcli *c = slot->c;
    if (c->paging == HCLI_PAGE) {
        sl__hcli_ahead_done(slot, req);
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    bool has_next = false;
    int rc = sl__hcli_page_decode(c, slot->url, evhttp_request_get_input_headers(req),
                                  body ? body : "", len, &has_next);
    sl__hcli_slot_release(slot);
    sl__hcli_page_end(c, rc, has_next);
}

/* on_error: emit for a page that failed: one event with fields url, status and error,
 * passed on with the position unchanged. Returns 0 or SL_ENOMEM. */
static int failure_event(struct sl__hcli *c, const char *url, int status, const char *why)
{
    struct sl_batch *b = sl_batch_new(c->stage);
    struct sl_event *ev = b ? sl_batch_append(b) : NULL;
    size_t len = strlen(url);
    const char *u = ev ? sl_event_strdup(ev, url, len) : NULL;
    struct sl_value v = sl_value_string(u, len), s = sl_value_int(status);
    if (!u || sl_event_add_field(ev, "url", 3, &v) || sl_event_add_field(ev, "status", 6, &s) ||
        sl_event_set_error(ev, why, strlen(why))) {
        sl_batch_unref(b);
        return SL_ENOMEM;
    }
    sl_event_set_origin(ev, u, 0, -1);
    return sl__hcli_ready_push(c, b, &c->at);
}

void sl__hcli_page_fail(struct sl__hcli *c, const char *url, int status, const char *why)
{
    sl_stage_count_errors(c->stage, 1);
    if (c->on_error == HCLI_EMIT && failure_event(c, url, status, why)) {
        sl_stage_error(c->stage, SL_ENOMEM, "out of memory");
        sl_stage_wake(c->stage);
    } else if (c->on_error == HCLI_FAIL) {
        sl_stage_error(c->stage, SL_EIO, "%s: %s", url, why);
        sl_stage_wake(c->stage);
    } else {
        sl_stage_log(c->stage, SL_LOG_ERROR, "%s: %s (status %d); %s", url, why, status,
                     c->interval_ms > 0 ? "trying again after the interval"
                                        : "the read ends here; the next run resumes at this page");
        sl__hcli_page_over(c, false);
    }
}

void sl__hcli_page_failed(struct sl__hcli_slot *slot, int status, const char *why)
{
    if (slot->c->paging == HCLI_PAGE) {
        sl__hcli_ahead_failed(slot, status, why);
        return;
    }
    sl__hcli_page_fail(slot->c, slot->url, status, why);
    sl__hcli_slot_release(slot);
}
