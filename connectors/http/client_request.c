/* Requests of the `http_client` source: evhttp connections on the pipeline's loop, one
 * per slot (the pages use one slot, the crawler `max_in_flight`), a resolver that never
 * blocks (evdns), the rate limit and the retries.
 *
 * The rate limit is a token bucket of one token refilled every 1/rate_limit seconds: a
 * request (a retry too) leaves at least that long after the one before, waiting on its
 * slot's timer meanwhile, so requests leave at most rate_limit a second however many
 * slots wait.
 *
 * A response is through when it is a 2xx; a connection error, a timeout, 408, 429 and
 * 5xx are retried after a backoff with full jitter (sl_backoff; a Retry-After of seconds
 * or an HTTP date is honoured instead, up to an hour), `retry.attempts` times (0: no
 * limit); any other status, and a body over max_body_size, is a final failure at once.
 *
 * A slot's connection is replaced (when the next URL goes to another host) only from
 * poll() or a timer, never inside evhttp's callback of that connection, which evhttp
 * still uses when the callback returns. */
#define _GNU_SOURCE /* timegm, strptime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <sluice/config.h>

#include "client.h"
#include "uri.h"

#define RETRY_AFTER_MAX_MS 3600000 /* a Retry-After further away is waited this long */

/* Monotonic milliseconds, as a double: the rate's instants are fractions of one. */
static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

const char *sl__hcli_header(struct evhttp_request *req, const char *name)
{
    return req ? evhttp_find_header(evhttp_request_get_input_headers(req), name) : NULL;
}

/* Retry-After of `req` in milliseconds (capped), or -1 when it has none that reads. */
static int64_t retry_after_ms(struct evhttp_request *req)
{
    const char *v = sl__hcli_header(req, "Retry-After");
    if (!v) return -1;
    char *end;
    long long s = strtoll(v, &end, 10);
    if (end != v && !*end && s >= 0)
        return s > RETRY_AFTER_MAX_MS / 1000 ? RETRY_AFTER_MAX_MS : s * 1000;
    struct tm tm = {0};
    const char *rest = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!rest || *rest) return -1;
    long long d = (long long)timegm(&tm) - (long long)time(NULL);
    if (d <= 0) return 0;
    return d > RETRY_AFTER_MAX_MS / 1000 ? RETRY_AFTER_MAX_MS : d * 1000;
}

/* What failed when there is no response. */
static const char *failure_text(int e)
{
    switch (e) {
    case EVREQ_HTTP_TIMEOUT:
        return "no response (connection refused or timed out)"; /* evhttp says timeout for both */
    case EVREQ_HTTP_EOF: return "connection closed or refused";
    case EVREQ_HTTP_INVALID_HEADER: return "invalid response";
    case EVREQ_HTTP_BUFFER_ERROR: return "connection error";
    case EVREQ_HTTP_DATA_TOO_LONG: return "response larger than max_body_size";
    default: return "connection failed";
    }
}

static void through(struct sl__hcli_slot *slot, struct evhttp_request *req)
{
    if (slot->c->crawler)
        sl__hcli_crawl_done(slot, req);
    else
        sl__hcli_page_done(slot, req);
}

static void failed(struct sl__hcli_slot *slot, int status, const char *why)
{
    sl_counter_add(slot->c->n_failures, 1);
    if (slot->c->crawler)
        sl__hcli_crawl_failed(slot, status, why);
    else
        sl__hcli_page_failed(slot, status, why);
}

static void on_request_error(enum evhttp_request_error e, void *arg)
{
    struct sl__hcli_slot *slot = arg;
    slot->error = (int)e;
}

/* evhttp's callback: a response, or NULL when the request failed. */
static void on_response(struct evhttp_request *req, void *arg)
{
    struct sl__hcli_slot *slot = arg;
    struct sl__hcli *c = slot->c;
    slot->req = NULL;
    if (c->ended) { /* nobody polls any more: the next run asks again */
        sl__hcli_slot_release(slot);
        return;
    }
    int status = req ? evhttp_request_get_response_code(req) : 0;
    if (status >= 200 && status < 300) {
        through(slot, req);
        return;
    }
    char why[96];
    bool retry = status ? status == 408 || status == 429 || status >= 500
                        : slot->error != EVREQ_HTTP_DATA_TOO_LONG;
    if (status)
        snprintf(why, sizeof why, "HTTP %d", status);
    else
        snprintf(why, sizeof why, "%s", failure_text(slot->error));
    if (!retry || sl_backoff_spent(&slot->backoff, (uint32_t)c->retry_attempts)) {
        failed(slot, status, why);
        return;
    }
    int64_t ms = sl_backoff_next(&slot->backoff), ra = retry_after_ms(req);
    if (ra >= 0) ms = ra;
    sl_counter_add(c->n_retries, 1);
    sl_stage_log(c->stage, SL_LOG_WARN, "%s: %s; retrying in %lld ms", slot->url, why,
                 (long long)ms);
    sl_timer_start(slot->timer, ms, false);
}

/* The slot's connection to host:port (a new one when it went elsewhere). */
static int connect_to(struct sl__hcli_slot *slot, const struct sl__http_uri *t)
{
    struct sl__hcli *c = slot->c;
    if (slot->conn && slot->port == t->port && !strcmp(slot->host, t->host)) return 0;
    if (slot->conn) evhttp_connection_free(slot->conn);
    free(slot->host);
    slot->host = strdup(t->host);
    slot->port = t->port;
    slot->conn = slot->host ? evhttp_connection_base_new(sl_stage_event_base(c->stage), c->dns,
                                                         t->host, (ev_uint16_t)t->port)
                            : NULL;
    if (!slot->conn) return SL_ENOMEM;
    struct timeval tv = {c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000};
    evhttp_connection_set_timeout_tv(slot->conn, &tv);
    evhttp_connection_set_retries(slot->conn, 0); /* ours, with backoff */
    evhttp_connection_set_max_body_size(slot->conn, (ev_ssize_t)c->max_body);
    evhttp_connection_set_max_headers_size(slot->conn, 64 * 1024);
    return 0;
}

/* The request's headers: Host, defaults, then the `headers` option (which may replace
 * the defaults). */
static int add_headers(struct sl__hcli *c, struct evhttp_request *req, const char *host)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    int rc = evhttp_add_header(h, "Host", host);
    for (size_t i = 0; c->headers && i < sl_config_len(c->headers); i++) {
        const char *key = NULL;
        const char *v = sl_config_str(sl_config_at(c->headers, i, &key));
        evhttp_remove_header(h, key);
        rc |= evhttp_add_header(h, key, v);
    }
    if (!evhttp_find_header(h, "User-Agent")) rc |= evhttp_add_header(h, "User-Agent", "sluice");
    if (!evhttp_find_header(h, "Accept"))
        rc |= evhttp_add_header(h, "Accept", c->decode == HCLI_JSON ? "application/json" : "*/*");
    return rc ? SL_ENOMEM : 0;
}

/* Sends the slot's URL now. */
static void send_now(struct sl__hcli_slot *slot)
{
    struct sl__hcli *c = slot->c;
    struct sl__http_uri t;
    char why[256];
    int rc = sl__http_uri_parse(slot->url, strlen(slot->url), &t, why, sizeof why);
    if (rc == SL_EINVAL) {
        failed(slot, 0, why);
        return;
    }
    struct evhttp_request *req = NULL;
    if (!rc) rc = connect_to(slot, &t);
    if (!rc && !(req = evhttp_request_new(on_response, slot))) rc = SL_ENOMEM;
    if (!rc) {
        evhttp_request_set_error_cb(req, on_request_error);
        rc = add_headers(c, req, t.hostport);
    }
    if (rc) {
        if (req) evhttp_request_free(req);
        sl__http_uri_clear(&t);
        sl_stage_error(c->stage, SL_ENOMEM, "out of memory");
        sl_stage_wake(c->stage);
        return;
    }
    slot->error = 0;
    slot->req = req;
    sl_counter_add(c->n_requests, 1);
    sl_stage_log(c->stage, SL_LOG_DEBUG, "GET %s", slot->url);
    if (evhttp_make_request(slot->conn, req, EVHTTP_REQ_GET, t.target)) {
        slot->req = NULL; /* it could not start (no socket): a connection failure, retried */
        slot->error = EVREQ_HTTP_EOF;
        on_response(NULL, slot);
    }
    sl__http_uri_clear(&t);
}

/* Sends the slot's URL when the rate limit allows: now, or when the slot's timer fires
 * (and asks again: another slot may have sent meanwhile). The instant is counted from
 * the last request actually sent, so a late timer never lets two requests closer. */
static void send_paced(struct sl__hcli_slot *slot)
{
    struct sl__hcli *c = slot->c;
    double now = now_ms();
    if (c->rate_limit <= 0 || now >= c->next_send_ms) {
        if (c->rate_limit > 0) c->next_send_ms = now + 1000.0 / c->rate_limit;
        send_now(slot);
        return;
    }
    int64_t wait = (int64_t)(c->next_send_ms - now + 0.999);
    sl_timer_start(slot->timer, wait > 0 ? wait : 1, false);
}

/* A retry's backoff is over, or the rate's instant has come. */
static void on_slot_timer(struct sl_stage *stage, void *arg)
{
    (void)stage;
    struct sl__hcli_slot *slot = arg;
    if (!slot->c->ended && slot->url) send_paced(slot);
}

int sl__hcli_fetch(struct sl__hcli_slot *slot, char *url, size_t index)
{
    if (!url) return SL_ENOMEM;
    free(slot->url);
    slot->url = url;
    slot->index = index;
    sl_backoff_reset(&slot->backoff);
    send_paced(slot);
    return 0;
}

struct sl__hcli_slot *sl__hcli_free_slot(struct sl__hcli *c)
{
    for (size_t i = 0; i < c->nslots; i++)
        if (!c->slots[i].url) return &c->slots[i];
    return NULL;
}

void sl__hcli_slot_release(struct sl__hcli_slot *slot)
{
    free(slot->url);
    slot->url = NULL;
    sl_timer_stop(slot->timer);
    if (slot->held) evbuffer_free(slot->held);
    slot->held = NULL;
    slot->failed = false;
}

int sl__hcli_slots_start(struct sl__hcli *c, struct sl_error *err)
{
    struct event_base *base = sl_stage_event_base(c->stage);
    c->dns =
        evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (!c->dns) c->dns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    c->nslots = c->crawler || c->paging == HCLI_PAGE ? (size_t)c->max_in_flight : 1;
    c->slots = calloc(c->nslots, sizeof *c->slots);
    if (!c->dns || !c->slots) return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < c->nslots; i++) {
        struct sl__hcli_slot *s = &c->slots[i];
        s->c = c;
        sl_backoff_init(&s->backoff, c->retry_initial_ms, c->retry_max_ms);
        if (!(s->timer = sl_timer_new(c->stage, on_slot_timer, s)))
            return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    return 0;
}

void sl__hcli_slots_free(struct sl__hcli *c)
{
    for (size_t i = 0; c->slots && i < c->nslots; i++) {
        struct sl__hcli_slot *s = &c->slots[i];
        sl_timer_free(s->timer);
        if (s->conn) evhttp_connection_free(s->conn); /* drops its request unanswered */
        free(s->host);
        free(s->url);
        if (s->held) evbuffer_free(s->held);
    }
    free(c->slots);
    c->slots = NULL;
    if (c->dns) evdns_base_free(c->dns, 0);
    c->dns = NULL;
}
