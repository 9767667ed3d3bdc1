/* The crawler of the `http_client` source: a list of URLs (`urls`, or `urls_file`, one a
 * line) fetched with at most `max_in_flight` requests at once, each response one event
 * with fields url, status, headers (those `response_headers` names) and body (the
 * body's JSON with `decode: json` when it is JSON, else its text). Responses leave in
 * the order they complete; a URL is started only from poll(), which the runtime calls
 * only while the outputs have room, so a full pipeline holds the crawl back with at most
 * `max_in_flight` responses waiting. A URL that still fails after its retries goes to
 * on_error (dropped, passed on as an event with field `error`, or failing the run). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include <sluice/json.h>

#include "client.h"

static size_t url_count(const struct sl__hcli *c)
{
    return c->list ? c->nlist : c->urls.n;
}

static const char *url_at(const struct sl__hcli *c, size_t i)
{
    return c->list ? c->list[i] : c->urls.items[i];
}

/* Keeps one line of the file (trimmed; blank lines and # comments are not URLs). */
static int keep_line(struct sl__hcli *c, char *line, size_t *cap)
{
    line[strcspn(line, "\r\n")] = '\0';
    char *s = line + strspn(line, " \t"), *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) *--e = '\0';
    if (!*s || *s == '#') return 0;
    if (c->nlist == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        char **l = realloc(c->list, *cap * sizeof *l);
        if (!l) return SL_ENOMEM;
        c->list = l;
    }
    if (!(c->list[c->nlist] = strdup(s))) return SL_ENOMEM;
    c->nlist++;
    return 0;
}

int sl__hcli_crawl_load(struct sl__hcli *c, struct sl_error *err)
{
    if (!c->urls_file) return 0;
    FILE *f = fopen(c->urls_file, "r");
    if (!f) return sl_error_set(err, SL_EIO, "urls_file '%s': %s", c->urls_file, strerror(errno));
    char *line = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    while (!rc && getline(&line, &n, f) >= 0) rc = keep_line(c, line, &cap);
    free(line);
    fclose(f);
    if (rc) return sl_error_set(err, rc, "out of memory");
    if (!c->nlist) return sl_error_set(err, SL_ECONFIG, "urls_file '%s' has no URL", c->urls_file);
    return 0;
}

/* A new event in the crawler's batch, with field url and its origin. */
static struct sl_event *new_event(struct sl__hcli_slot *slot, int status)
{
    struct sl__hcli *c = slot->c;
    if (!c->out && !(c->out = sl_batch_new(c->stage))) return NULL;
    struct sl_event *ev = sl_batch_append(c->out);
    size_t len = strlen(slot->url);
    const char *url = ev ? sl_event_strdup(ev, slot->url, len) : NULL;
    if (!url) return NULL;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    sl_event_set_time(ev, ts.tv_sec * 1000000000LL + ts.tv_nsec);
    sl_event_set_origin(ev, url, slot->index, -1);
    struct sl_value v = sl_value_string(url, len), s = sl_value_int(status);
    if (sl_event_add_field(ev, "url", 3, &v) || sl_event_add_field(ev, "status", 6, &s))
        return NULL;
    return ev;
}

/* The response headers asked for, as a JSON object in the event's arena. */
static int headers_field(struct sl__hcli *c, struct sl_event *ev, struct evhttp_request *req)
{
    size_t need = 2;
    for (size_t i = 0; i < c->response_headers.n; i++) {
        const char *name = c->response_headers.items[i], *v = sl__hcli_header(req, name);
        if (v) need += SL_JSON_ESCAPE_MAX(strlen(name) + strlen(v)) + 6;
    }
    char *text = sl_event_alloc(ev, need), *o = text;
    if (!text) return SL_ENOMEM;
    *o++ = '{';
    for (size_t i = 0; i < c->response_headers.n; i++) {
        const char *name = c->response_headers.items[i], *v = sl__hcli_header(req, name);
        if (!v) continue;
        if (o > text + 1) *o++ = ',';
        *o++ = '"';
        o += sl_json_escape(name, strlen(name), o);
        memcpy(o, "\":\"", 3), o += 3;
        o += sl_json_escape(v, strlen(v), o);
        *o++ = '"';
    }
    *o++ = '}';
    struct sl_value h = sl_value_json(text, (size_t)(o - text));
    return sl_event_add_field(ev, "headers", 7, &h);
}

/* The URL is through: its slot is free, the next poll starts another. */
static void slot_over(struct sl__hcli_slot *slot)
{
    sl__hcli_slot_release(slot);
    slot->c->busy--;
    sl_stage_wake(slot->c->stage);
}

static void out_of_memory(struct sl__hcli_slot *slot)
{
    sl_stage_error(slot->c->stage, SL_ENOMEM, "out of memory");
    slot_over(slot);
}

void sl__hcli_crawl_done(struct sl__hcli_slot *slot, struct evhttp_request *req)
{
    struct sl__hcli *c = slot->c;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    struct sl_event *ev = new_event(slot, evhttp_request_get_response_code(req));
    char *body = ev ? sl_event_alloc(ev, len ? len : 1) : NULL;
    if (!body || headers_field(c, ev, req)) {
        out_of_memory(slot);
        return;
    }
    if (len) evbuffer_copyout(in, body, len);
    struct sl_value v = sl_value_string(body, len);
    if (c->decode == HCLI_JSON && len && !sl_json_validate(body, len, NULL))
        v = sl_value_json(body, len);
    if (sl_event_add_field(ev, "body", 4, &v)) {
        out_of_memory(slot);
        return;
    }
    slot_over(slot);
}

void sl__hcli_crawl_failed(struct sl__hcli_slot *slot, int status, const char *why)
{
    struct sl__hcli *c = slot->c;
    sl_stage_count_errors(c->stage, 1);
    if (c->on_error == HCLI_FAIL) {
        sl_stage_error(c->stage, SL_EIO, "%s: %s", slot->url, why);
    } else if (c->on_error == HCLI_EMIT) {
        struct sl_event *ev = new_event(slot, status);
        if (!ev || sl_event_set_error(ev, why, strlen(why))) {
            out_of_memory(slot);
            return;
        }
    } else {
        sl_stage_log(c->stage, SL_LOG_WARN, "%s: %s (dropped)", slot->url, why);
    }
    slot_over(slot);
}

enum sl_poll sl__hcli_crawl_poll(struct sl__hcli *c, struct sl_batch **out)
{
    struct sl__hcli_slot *slot;
    while (c->next_url < url_count(c) && (slot = sl__hcli_free_slot(c))) {
        size_t i = c->next_url++;
        c->busy++;
        if (sl__hcli_fetch(slot, strdup(url_at(c, i)), i)) {
            sl_stage_error(c->stage, SL_ENOMEM, "out of memory");
            return SL_ERROR;
        }
    }
    if (c->out) {
        *out = c->out;
        c->out = NULL;
        return SL_READY;
    }
    return c->next_url == url_count(c) && !c->busy ? SL_DONE : SL_PENDING;
}
