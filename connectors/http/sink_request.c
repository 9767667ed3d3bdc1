/* The `http` sink's requests on the wire: a sealed request is compressed on an executor
 * thread (compression: gzip), waits for one of max_in_flight permits, and goes out on a
 * keep-alive evhttp connection of the loop to its host and port (a free one is reused;
 * there are max_in_flight + 1 slots, so one is always free for a permit holder). Its
 * answer decides: 2xx settles its events; no answer (connection, timeout), 408, 429 and
 * 5xx send it again after a backoff (Retry-After seconds as the least wait); anything
 * else hands it to on_error. Host names that are not addresses are resolved by evdns on
 * the loop, never by a blocking getaddrinfo. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include "gzip.h"
#include "sink.h"

#define RETRY_AFTER_MAX_S 3600              /* a longer Retry-After is read as an hour */
#define MAX_HEADERS       (64 * 1024)       /* response header bytes at most */
#define MAX_ANSWER        (4 * 1024 * 1024) /* response body bytes at most (a longer one: no answer) */

void sl__http_req_free(struct sl__http_req *r)
{
    struct sl__http_sink *k = r->k;
    if (r->prev)
        r->prev->next = r->next;
    else
        k->rhead = r->next;
    if (r->next) r->next->prev = r->prev;
    sl_timer_free(r->timer);
    sl__http_uri_clear(&r->target);
    free(r->uri), free(r->body), free(r->parts);
    free(r);
}

void sl__http_conns_free(struct sl__http_sink *k)
{
    for (size_t i = 0; k->conns && i < k->nconns; i++) {
        if (k->conns[i].evcon) evhttp_connection_free(k->conns[i].evcon);
        k->conns[i].evcon = NULL;
    }
    if (k->dns) evdns_base_free(k->dns, 0);
    k->dns = NULL;
}

/* ---- connections ---------------------------------------------------------------------- */

/* True for an IPv4 or IPv6 address (no resolving needed). */
static bool is_address(const char *host)
{
    unsigned char buf[16];
    return evutil_inet_pton(AF_INET, host, buf) == 1 || evutil_inet_pton(AF_INET6, host, buf) == 1;
}

/* A free connection slot to `u`'s host and port: one that is there, else an empty slot,
 * else an idle one to another host, replaced. Returns the slot, or -1 (no memory). */
static long conn_get(struct sl__http_sink *k, const struct sl__http_uri *u)
{
    long empty = -1, other = -1;
    for (size_t i = 0; i < k->nconns; i++) {
        struct sl__http_conn *c = &k->conns[i];
        if (c->evcon && !c->busy && c->port == u->port && !strcmp(c->host, u->host)) return (long)i;
        if (!c->evcon && empty < 0) empty = (long)i;
        if (c->evcon && !c->busy && other < 0) other = (long)i;
    }
    long i = empty >= 0 ? empty : other;
    if (i < 0) return -1; /* cannot happen: more slots than permits */
    struct sl__http_conn *c = &k->conns[i];
    if (c->evcon) evhttp_connection_free(c->evcon);
    c->evcon = NULL;
    struct event_base *base = sl_stage_event_base(k->stage);
    if (!is_address(u->host) && !k->dns) return -1;
    c->evcon =
        evhttp_connection_base_new(base, is_address(u->host) ? NULL : k->dns, u->host, u->port);
    if (!c->evcon) return -1;
    struct timeval tv = {.tv_sec = k->timeout_ms / 1000, .tv_usec = k->timeout_ms % 1000 * 1000};
    evhttp_connection_set_timeout_tv(c->evcon, &tv);
    /* An answer is read whole into memory: bounded, so a peer cannot make it grow. */
    evhttp_connection_set_max_headers_size(c->evcon, MAX_HEADERS);
    evhttp_connection_set_max_body_size(c->evcon, MAX_ANSWER);
    snprintf(c->host, sizeof c->host, "%s", u->host);
    c->port = u->port;
    return i;
}

/* The resolver, made at start when some host may need one: it reads /etc/resolv.conf and
 * /etc/hosts once, there, rather than on the loop at the first request. */
int sl__http_conns_start(struct sl__http_sink *k, struct sl_error *err)
{
    k->nconns = (size_t)k->max_in_flight + 1;
    if (!(k->conns = calloc(k->nconns, sizeof *k->conns)))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    bool named = k->dead_letter_uri && !is_address(k->dl.host);
    if (k->uri_constant) {
        bool nomem;
        struct sl__http_uri u;
        char why[128];
        size_t n = sl__http_render_uri(k, NULL, &nomem);
        if (n == SIZE_MAX || sl__http_uri_parse(k->scratch, n, &u, why, sizeof why))
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        named |= !is_address(u.host);
        sl__http_uri_clear(&u);
    }
    if ((named || !k->uri_constant) &&
        !(k->dns =
              evdns_base_new(sl_stage_event_base(k->stage),
                             EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE)))
        return sl_error_set(err, SL_ENOMEM, "cannot make a DNS resolver");
    return 0;
}

/* ---- outcomes ------------------------------------------------------------------------- */

static void acquire(struct sl__http_req *r);

static const char *meth(const struct sl__http_sink *k)
{
    return k->method == SL__HTTP_PUT ? "PUT" : "POST";
}

static void retry_fired(struct sl_stage *stage, void *arg)
{
    (void)stage;
    struct sl__http_req *r = arg;
    r->k->backing_off--;
    r->state = SL__HTTP_SEALED;
    sl_counter_add(r->k->c_retries, 1);
    acquire(r);
}

/* `r` failed for a reason that may pass (r->why): sent again after a backoff, no sooner
 * than `least_ms`; or, after retry.attempts attempts, the run fails. */
static void failed_for_now(struct sl__http_req *r, int64_t least_ms)
{
    struct sl__http_sink *k = r->k;
    if (!r->attempts) sl_backoff_init(&r->backoff, k->retry_initial_ms, k->retry_max_ms);
    r->attempts++;
    if (k->retry_attempts > 0 && r->attempts >= (uint64_t)k->retry_attempts) {
        sl__http_broken(k, "gave up after %u attempt%s: %s; its %zu events are not acknowledged",
                        r->attempts, r->attempts == 1 ? "" : "s", r->why, r->events);
        return;
    }
    if (!r->timer && !(r->timer = sl_timer_new(k->stage, retry_fired, r))) {
        sl__http_broken(k, "out of memory");
        return;
    }
    int64_t delay = sl_backoff_next(&r->backoff);
    if (delay < least_ms) delay = least_ms;
    snprintf(k->why, sizeof k->why, "%s", r->why);
    sl_stage_log(k->stage, r->attempts == 1 ? SL_LOG_WARN : SL_LOG_INFO,
                 "%s; the request of %zu events is sent again in %lld ms (attempt %u)", r->why,
                 r->events, (long long)delay, r->attempts + 1);
    r->state = SL__HTTP_BACKOFF;
    k->backing_off++;
    sl_timer_start(r->timer, delay, false);
}

/* `r` was refused for good (r->why): on_error. */
static void refused(struct sl__http_req *r)
{
    struct sl__http_sink *k = r->k;
    if (r->dead) {
        sl__http_broken(k, "the dead letter to %s was refused: %s", k->dead_letter_uri, r->why);
        return;
    }
    sl_stage_count_errors(k->stage, r->events);
    switch (k->on_error) {
    case SL__HTTP_DROP:
        sl_stage_count_dropped(k->stage, r->events);
        sl_counter_add(k->c_dropped, r->events);
        sl_stage_log(k->stage, SL_LOG_WARN, "%s; %zu events dropped (on_error: drop)", r->why,
                     r->events);
        sl__http_req_done(r);
        return;
    case SL__HTTP_DEAD_LETTER:
        memcpy(r->reason, r->why, sizeof r->reason);
        r->dead = true;
        r->attempts = 0;
        r->state = SL__HTTP_SEALED;
        acquire(r);
        return;
    default:
        sl__http_broken(k, "%s; its %zu events are not acknowledged (on_error: fail)", r->why,
                        r->events);
    }
}

/* Seconds of a Retry-After header as milliseconds (an HTTP date: 0). */
static int64_t retry_after_ms(struct evhttp_request *req)
{
    const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), "Retry-After");
    int64_t s = 0;
    for (; v && *v == ' '; v++) continue;
    for (; v && *v >= '0' && *v <= '9' && s <= RETRY_AFTER_MAX_S; v++) s = s * 10 + (*v - '0');
    return (s > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : s) * 1000;
}

static const char *neterr_text(int e)
{
    switch (e) {
    case EVREQ_HTTP_TIMEOUT: return "timed out or could not connect";
    case EVREQ_HTTP_EOF: return "the connection closed before a response";
    case EVREQ_HTTP_INVALID_HEADER: return "the response is not valid HTTP";
    case EVREQ_HTTP_BUFFER_ERROR: return "the connection failed";
    case EVREQ_HTTP_DATA_TOO_LONG: return "the response is too long";
    default: return "cannot connect, or no response";
    }
}

/* What status `code` of `req` makes of `r`. */
static void answered(struct sl__http_req *r, struct evhttp_request *req, int code)
{
    struct sl__http_sink *k = r->k;
    const char *m = meth(k);
    if (code >= 200 && code < 300) {
        sl_counter_add(k->c_2xx, 1);
        if (r->dead) sl_counter_add(k->c_dead, 1);
        sl__http_req_done(r);
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in) < 200 ? evbuffer_get_length(in) : 200;
    char text[201];
    evbuffer_copyout(in, text, n);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)text[i] < ' ') text[i] = ' ';
    text[n] = '\0';
    const char *reason = evhttp_request_get_response_code_line(req);
    int len = snprintf(r->why, sizeof r->why, "%s %.256s answered %d %.64s%s%s", m,
                       r->dead ? k->dead_letter_uri : r->uri, code, reason ? reason : "",
                       n ? ": " : "", text);
    (void)len; /* a reason longer than r->why is cut: it is for a log line */
    sl_counter_add(code < 300   ? k->c_3xx
                   : code < 400 ? k->c_3xx
                   : code < 500 ? k->c_4xx
                                : k->c_5xx,
                   1);
    if (code == 408 || code == 429 || (code >= 500 && code < 600))
        failed_for_now(r, code == 429 || code == 503 ? retry_after_ms(req) : 0);
    else
        refused(r);
}

static void on_response(struct evhttp_request *req, void *arg)
{
    struct sl__http_req *r = arg;
    struct sl__http_sink *k = r->k;
    k->conns[r->conn].busy = false;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    if (code <= 0) {
        sl_counter_add(k->c_neterr, 1);
        snprintf(r->why, sizeof r->why, "%s %.256s: %s", meth(k),
                 r->dead ? k->dead_letter_uri : r->uri, neterr_text(r->neterr));
        failed_for_now(r, 0);
    } else {
        answered(r, req, code);
    }
    sl_semaphore_release(k->sem); /* may send the next request now */
}

static void on_neterr(enum evhttp_request_error e, void *arg)
{
    struct sl__http_req *r = arg;
    r->neterr = (int)e;
}

/* ---- sending -------------------------------------------------------------------------- */

static const char *const content_types[] = {"application/x-ndjson", "application/json",
                                            "text/plain; charset=utf-8"};

/* The request's headers: the user's, then what the sink sets. Returns 0 or -1. */
static int add_headers(struct sl__http_req *r, struct evkeyvalq *h, const struct sl__http_uri *u)
{
    struct sl__http_sink *k = r->k;
    int rc = 0;
    for (size_t i = 0; i < k->nhdrs; i++)
        rc |= evhttp_add_header(h, k->hdr_names[i], k->hdr_values[i]);
    if (!evhttp_find_header(h, "Host")) rc |= evhttp_add_header(h, "Host", u->hostport);
    if (!evhttp_find_header(h, "Content-Type"))
        rc |= evhttp_add_header(h, "Content-Type", content_types[k->encoding]);
    if (!evhttp_find_header(h, "User-Agent")) rc |= evhttp_add_header(h, "User-Agent", "sluice");
    if (k->compression == SL__HTTP_GZIP) rc |= evhttp_add_header(h, "Content-Encoding", "gzip");
    if (r->dead) {
        rc |= evhttp_add_header(h, "X-Sluice-Error", r->reason);
        if (strcmp(r->uri, k->dead_letter_uri) != 0)
            rc |= evhttp_add_header(h, "X-Sluice-Uri", r->uri);
    }
    return rc ? -1 : 0;
}

/* Turns Nagle off on the connection's socket, once it has one (a numeric host gets it in
 * evhttp_make_request; a resolved one at a later request): a body leaves in several
 * writes, and Nagle held back the last of them until the server's delayed ACK, some
 * 40 ms per request on loopback. */
static void nodelay(struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    int one = 1;
    if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (bev) bufferevent_set_max_single_write(bev, 1 << 20);
}

/* Sends `r` now: the permit is held. */
static void go(void *arg)
{
    struct sl__http_req *r = arg;
    struct sl__http_sink *k = r->k;
    const struct sl__http_uri *u = r->dead ? &k->dl : &r->target;
    long ci = k->broken ? -1 : conn_get(k, u);
    struct evhttp_request *req = ci < 0 ? NULL : evhttp_request_new(on_response, r);
    if (!req || add_headers(r, evhttp_request_get_output_headers(req), u) ||
        evbuffer_add_reference(evhttp_request_get_output_buffer(req), r->body, r->len, NULL,
                               NULL)) {
        if (req) evhttp_request_free(req);
        if (!k->broken) sl__http_broken(k, "out of memory making a request");
        sl_semaphore_release(k->sem);
        return;
    }
    evhttp_request_set_error_cb(req, on_neterr);
    r->state = SL__HTTP_SENT;
    r->conn = (size_t)ci;
    r->neterr = -1;
    k->conns[ci].busy = true;
    sl_counter_add(k->c_requests, 1);
    sl_counter_add(k->c_bytes, r->len);
    sl_counter_add(k->c_raw, r->raw_len);
    enum evhttp_cmd_type t = k->method == SL__HTTP_PUT ? EVHTTP_REQ_PUT : EVHTTP_REQ_POST;
    if (evhttp_make_request(k->conns[ci].evcon, req, t, u->target)) {
        /* Not queued (no socket): libevent dropped it without calling back. */
        k->conns[ci].busy = false;
        snprintf(r->why, sizeof r->why, "%s %.256s: cannot open a connection", meth(k), r->uri);
        failed_for_now(r, 0);
        sl_semaphore_release(k->sem);
        return;
    }
    nodelay(k->conns[ci].evcon);
}

static void acquire(struct sl__http_req *r)
{
    if (sl_semaphore_acquire(r->k->sem, go, r)) sl__http_broken(r->k, "out of memory");
}

/* Compression on an executor thread: the body is the request's own memory, no batch is
 * read. */
struct pack {
    struct sl__http_req *r; /* the request (the loop does not touch its body meanwhile) */
    int level;              /* gzip level */
    char *out;              /* owned: the compressed body */
    size_t out_len;
    int rc;
};

static void pack_work(void *arg)
{
    struct pack *p = arg;
    p->rc = sl__http_gzip(p->r->body, p->r->len, p->level, &p->out, &p->out_len);
}

static void pack_done(struct sl_stage *stage, void *arg)
{
    (void)stage;
    struct pack *p = arg;
    struct sl__http_req *r = p->r;
    if (p->rc) {
        sl__http_broken(r->k, "cannot compress a request body: %s", sl_strerror(p->rc));
    } else {
        free(r->body);
        r->body = p->out;
        r->len = r->cap = p->out_len;
        r->packed = true;
        acquire(r);
    }
    free(p);
}

void sl__http_send(struct sl__http_req *r)
{
    struct sl__http_sink *k = r->k;
    if (k->compression != SL__HTTP_GZIP || r->packed) {
        acquire(r);
        return;
    }
    struct pack *p = calloc(1, sizeof *p);
    if (p) p->r = r, p->level = (int)k->level;
    if (!p || sl_stage_submit(k->stage, pack_work, pack_done, p)) {
        free(p);
        sl__http_broken(k, "out of memory");
    }
}
