/* The `http_server` source's HTTP side: the evhttp server on the pipeline's loop, its
 * limits, and what each request is answered.
 *
 * A request for `path` with method POST, the right bearer token (when `auth.bearer` is
 * set) and a body that decodes (server_body.c) joins the source's list of requests
 * (server.c puts its events in batches); with acknowledgements it is answered 200 once
 * every sink acknowledged its events, without, 202 at once. The rest is answered here:
 * 404 (another path), 405 (another method), 401 (token), 400 (the body, with the
 * reason; also a gzip body that does not inflate), 413 (a gzip body inflating past
 * `max_body_bytes`), 415 (a Content-Encoding other than gzip), 429 with Retry-After (the events
 * accepted and not yet acknowledged are at `max_pending_events` / `max_pending_bytes`: the pipeline
 * is full, the client should come back), 503 with Retry-After (the source is stopping). evhttp
 * itself answers 413 (a body over `max_body_bytes`) and 400 or 413 (headers over
 * `max_header_bytes`), and cuts a client silent for `read_timeout`, between requests or
 * in the middle of one.
 *
 * Connections: at most `max_connections` at once; the listening socket stops accepting
 * at the cap (new clients wait in the kernel's backlog) and accepts again when one
 * closes. evhttp only tells of a connection's end through its close callback, and the
 * connection does not exist yet when evhttp asks for its bufferevent, so the bufferevent
 * is kept (one reference) until the loop runs `adopt`, which finds the connection as
 * the bufferevent's callback argument (as cli/metrics.c does).
 *
 * Accept errors (no descriptor left: EMFILE, ENFILE; no memory): the listening socket
 * stays readable, so accepting again at once would fail again at once, a busy loop.
 * The listener pauses instead, 10 ms then twice as long each time up to 1 s, and the
 * first failure of a series is logged, and the first success after it. libevent gives
 * the error callback the evhttp, not the server: the listening servers are in a list,
 * under a lock (several pipelines may run in one process). */
#include <arpa/inet.h>
#include <pthread.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "common.h"
#include "gzip.h"
#include "server.h"

/* ---- answers ------------------------------------------------------------------------- */

static const char *reason_of(int code)
{
    switch (code) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 413: return "Payload Too Large";
    case 405: return "Method Not Allowed";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

void sl__http_reply(struct sl__http_server *s, struct evhttp_request *req, int code,
                    const char *text)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/plain; charset=utf-8");
    if (code == 429 || code == 503) {
        char secs[24];
        int64_t ms = s->retry_after_ms;
        snprintf(secs, sizeof secs, "%lld", (long long)(ms < 1000 ? 1 : (ms + 999) / 1000));
        evhttp_add_header(h, "Retry-After", secs);
    }
    if (code == 401) evhttp_add_header(h, "WWW-Authenticate", "Bearer");
    if (code == 405) evhttp_add_header(h, "Allow", "POST");
    if (code >= 400 && code < 500) sl_counter_add(s->c_4xx, 1);
    if (code == 429) sl_counter_add(s->c_429, 1);
    if (code >= 500) sl_counter_add(s->c_5xx, 1);
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    evbuffer_add_printf(out, "%s\n", text);
    evhttp_send_reply(req, code, reason_of(code), NULL);
}

void sl__http_reply_req(struct sl__http_server *s, struct sl__http_req *r, int code,
                        const char *why, bool now)
{
    if (!r->req) return;
    struct evhttp_request *req = r->req;
    r->req = NULL;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    char text[256];
    if (code == 200)
        snprintf(text, sizeof text, "delivered %zu events", r->n);
    else
        snprintf(text, sizeof text, "%s (%zu events)", why, r->n);
    sl__http_reply(s, req, code, text);
    /* A non-blocking write of what is queued: close() frees the server next, and the
     * loop may not run again to send it. */
    if (now && bev) evbuffer_write(bufferevent_get_output(bev), bufferevent_getfd(bev));
}

/* ---- a request ------------------------------------------------------------------------- */

/* True when the request carries `Authorization: Bearer <auth.bearer>` (or none is set). */
static bool authorised(const struct sl__http_server *s, struct evhttp_request *req)
{
    if (!s->bearer) return true;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7)) return false;
    h += 7;
    while (*h == ' ') h++;
    return sl__http_secret_equal(h, strlen(h), s->bearer, strlen(s->bearer));
}

/* True when `more` events and `bytes` would take the pending ones past a bound. A lone
 * request is always let in, so that no body within the limits waits forever. */
static bool full(const struct sl__http_server *s, int64_t more, uint64_t bytes)
{
    if (s->pending_events == 0) return false;
    return s->pending_events + more > s->max_pending_events ||
           s->pending_bytes + bytes > s->max_pending_bytes;
}

/* True when the body is gzip (Content-Encoding: gzip or x-gzip); `*bad` when it names
 * another encoding than these and identity. */
static bool gzipped(struct evhttp_request *req, bool *bad)
{
    const char *enc = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Encoding");
    bool gz = enc && (!strcasecmp(enc, "gzip") || !strcasecmp(enc, "x-gzip"));
    *bad = enc && !gz && strcasecmp(enc, "identity");
    return gz;
}

/* Refuses what cannot be taken before the body is looked at; true when answered. */
static bool refused(struct sl__http_server *s, struct evhttp_request *req, size_t len)
{
    bool bad_encoding;
    gzipped(req, &bad_encoding);
    if (s->ended)
        sl__http_reply(s, req, 503, "the source is stopping");
    else if (evhttp_request_get_command(req) != EVHTTP_REQ_POST)
        sl__http_reply(s, req, 405, "method not allowed: use POST");
    else if (!authorised(s, req))
        sl__http_reply(s, req, 401, "missing or wrong bearer token");
    else if (bad_encoding)
        sl__http_reply(s, req, 415, "Content-Encoding not supported: send gzip or identity");
    else if (full(s, 1, len))
        sl__http_reply(s, req, 429, "the pipeline is full: retry later");
    else
        return false;
    return true;
}

/* Queues `r` behind the others and wakes the source if it waits for events. */
static void enqueue(struct sl__http_server *s, struct sl__http_req *r)
{
    if (s->tail)
        s->tail->next = r;
    else
        s->head = r;
    s->tail = r;
    if (!s->cursor) s->cursor = r;
    s->pending_events += (int64_t)r->n;
    s->pending_bytes += r->bytes;
    sl_counter_add(s->c_accepted, 1);
    sl_counter_add(s->c_events, r->n);
    if (s->polled_empty) {
        s->polled_empty = false;
        sl_stage_wake(s->stage);
    }
}

/* The body of `req` (owned: free), inflated when it is gzip; NULL when answered. */
static char *read_body(struct sl__http_server *s, struct evhttp_request *req, struct evbuffer *in,
                       size_t *len)
{
    char *body = malloc(*len ? *len : 1), *plain, why[160];
    bool bad;
    if (!body) {
        sl__http_reply(s, req, 503, "out of memory");
        return NULL;
    }
    evbuffer_remove(in, body, *len);
    if (!gzipped(req, &bad)) return body;
    int rc = sl__http_gunzip(body, *len, s->max_body_bytes, &plain, len);
    free(body);
    if (!rc) return plain;
    if (rc == SL_ELIMIT)
        snprintf(why, sizeof why, "the body inflates to more than max_body_bytes (%llu)",
                 (unsigned long long)s->max_body_bytes);
    sl__http_reply(s, req,
                   rc == SL_EINVAL   ? 400
                   : rc == SL_ELIMIT ? 413
                                     : 503,
                   rc == SL_EINVAL   ? "the body is not valid gzip data"
                   : rc == SL_ELIMIT ? why
                                     : "out of memory");
    return NULL;
}

/* Decodes the body of `req` into a new request record; NULL when answered. */
static struct sl__http_req *take_body(struct sl__http_server *s, struct evhttp_request *req,
                                      struct evbuffer *in, size_t len)
{
    struct sl__http_req *r = calloc(1, sizeof *r);
    char *body = r ? read_body(s, req, in, &len) : NULL;
    if (!body) {
        if (!r) sl__http_reply(s, req, 503, "out of memory");
        free(r);
        return NULL;
    }
    char why[160];
    int rc = sl__http_decode(s->encoding, body, len, &r->spans, why, sizeof why);
    if (rc || full(s, (int64_t)r->spans.n, len)) {
        sl__http_reply(s, req,
                       rc == SL_EPARSE ? 400
                       : rc            ? 503
                                       : 429,
                       rc ? why : "the pipeline is full: retry later");
        free(r->spans.v);
        free(body);
        free(r);
        return NULL;
    }
    r->body = body;
    r->n = r->spans.n;
    r->bytes = len;
    return r;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct sl__http_server *s = arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    sl_counter_add(s->c_requests, 1);
    sl_counter_add(s->c_bytes, len);
    if (refused(s, req, len)) return;
    struct sl__http_req *r = take_body(s, req, in, len);
    if (!r) return;
    if (r->n == 0) { /* nothing to deliver: done */
        sl_counter_add(s->c_accepted, 1);
        sl__http_reply(s, req, s->acknowledgements ? 200 : 202, "delivered 0 events");
        free(r->body);
        free(r);
        return;
    }
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    char *peer = NULL;
    uint16_t port = 0;
    if (evcon) evhttp_connection_get_peer(evcon, &peer, &port);
    snprintf(r->peer, sizeof r->peer, "%s:%u", peer ? peer : "?", (unsigned)port);
    r->accepted_ms = sl_stage_now_ms(s->stage);
    if (s->acknowledgements) {
        r->req = req; /* answered by server.c once acknowledged */
    } else {
        char text[64];
        snprintf(text, sizeof text, "accepted %zu events", r->n);
        sl__http_reply(s, req, 202, text);
    }
    enqueue(s, r);
}

static void on_other(struct evhttp_request *req, void *arg)
{
    struct sl__http_server *s = arg;
    sl_counter_add(s->c_requests, 1);
    sl__http_reply(s, req, 404, "not found");
}

/* ---- connections ------------------------------------------------------------------------ */

#define PAUSE_MIN_MS 10
#define PAUSE_MAX_MS 1000

static pthread_mutex_t listening_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sl__http_server *listening; /* servers with a listener (next_listening) */

/* The listener accepts while below the cap and not paused. */
static void update_listener(struct sl__http_server *s)
{
    if (!s->bound) return;
    struct evconnlistener *lev = evhttp_bound_socket_get_listener(s->bound);
    if (s->live < s->max_connections && !s->paused)
        evconnlistener_enable(lev);
    else
        evconnlistener_disable(lev);
}

static void resume(struct sl_stage *stage, void *arg)
{
    (void)stage;
    struct sl__http_server *s = arg;
    s->paused = false;
    update_listener(s);
}

/* accept() failed for another reason than "nothing to accept": pause (see the top). */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    (void)arg; /* the evhttp */
    int err = EVUTIL_SOCKET_ERROR();
    pthread_mutex_lock(&listening_lock);
    struct sl__http_server *s = listening;
    while (s && !(s->bound && evhttp_bound_socket_get_listener(s->bound) == lev))
        s = s->next_listening;
    pthread_mutex_unlock(&listening_lock); /* s is this loop's: it cannot go meanwhile */
    if (!s) return;
    if (s->accept_errors++ == 0)
        sl_stage_log(s->stage, SL_LOG_WARN,
                     "cannot accept a connection: %s; pausing the listener (retrying %d ms to "
                     "%d s apart)",
                     evutil_socket_error_to_string(err), PAUSE_MIN_MS, PAUSE_MAX_MS / 1000);
    s->paused = true;
    update_listener(s);
    sl_timer_start(s->resume, s->pause_ms, false);
    s->pause_ms = s->pause_ms * 2 < PAUSE_MAX_MS ? s->pause_ms * 2 : PAUSE_MAX_MS;
}

static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    struct sl__http_server *s = arg;
    s->live--;
    update_listener(s);
}

/* The connections accepted since the last run: a bufferevent without callbacks was
 * dropped by evhttp at once; the others get the close callback that counts them off. */
static void adopt(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct sl__http_server *s = arg;
    for (size_t i = 0; i < s->nfresh; i++) {
        bufferevent_data_cb rd, wr;
        bufferevent_event_cb ev;
        void *evcon;
        bufferevent_getcb(s->fresh[i], &rd, &wr, &ev, &evcon);
        if (ev && evcon)
            evhttp_connection_set_closecb(evcon, conn_closed, s);
        else
            conn_closed(NULL, s);
        bufferevent_decref(s->fresh[i]);
    }
    s->nfresh = 0;
}

/* evhttp's bufferevent for each accepted connection, counted (see adopt). */
static struct bufferevent *new_conn(struct event_base *base, void *arg)
{
    struct sl__http_server *s = arg;
    if (s->nfresh == s->fresh_size) {
        size_t size = s->fresh_size ? 2 * s->fresh_size : 16;
        struct bufferevent **f = realloc(s->fresh, size * sizeof *f);
        if (!f) return NULL; /* evhttp makes one, uncounted */
        s->fresh = f;
        s->fresh_size = size;
    }
    struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);
    if (!bev) return NULL;
    bufferevent_incref(bev);
    s->fresh[s->nfresh++] = bev;
    if (s->accept_errors) {
        sl_stage_log(s->stage, SL_LOG_INFO, "accepting connections again after %u failed %s",
                     s->accept_errors, s->accept_errors == 1 ? "attempt" : "attempts");
        s->accept_errors = 0;
    }
    s->pause_ms = PAUSE_MIN_MS;
    event_active(s->adopt, 0, 0);
    s->live++;
    update_listener(s);
    return bev;
}

/* ---- the server --------------------------------------------------------------------------- */

static int write_port(struct sl__http_server *s, int port, struct sl_error *err)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", s->port_file);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) || rename(tmp, s->port_file)) {
        if (f) remove(tmp);
        return sl_error_set(err, SL_EIO, "cannot write port_file '%s'", s->port_file);
    }
    return 0;
}

static void configure(struct sl__http_server *s)
{
    struct timeval tv = {.tv_sec = s->read_timeout_ms / 1000,
                         .tv_usec = s->read_timeout_ms % 1000 * 1000};
    /* Every method is let in, so that the answer to another one is 405, not 501. */
    evhttp_set_allowed_methods(s->http, 0xffff);
    evhttp_set_max_headers_size(s->http, (ev_ssize_t)s->max_header_bytes);
    evhttp_set_max_body_size(s->http, (ev_ssize_t)s->max_body_bytes);
    evhttp_set_timeout_tv(s->http, &tv);
    evhttp_set_bevcb(s->http, new_conn, s);
    evhttp_set_cb(s->http, s->path, on_request, s);
    evhttp_set_gencb(s->http, on_other, s);
}

int sl__http_server_listen(struct sl__http_server *s, struct event_base *base, struct sl_error *err)
{
    char host[256];
    int port;
    if (sl__http_split_addr(s->address, host, sizeof host, &port))
        return sl_error_set(err, SL_ECONFIG, "address '%s': expected HOST:PORT", s->address);
    s->http = evhttp_new(base);
    s->adopt = event_new(base, -1, 0, adopt, s);
    s->resume = sl_timer_new(s->stage, resume, s);
    s->pause_ms = PAUSE_MIN_MS;
    if (!s->http || !s->adopt || !s->resume) return sl_error_set(err, SL_ENOMEM, "out of memory");
    configure(s);
    s->bound = evhttp_bind_socket_with_handle(s->http, *host ? host : "0.0.0.0", (uint16_t)port);
    if (!s->bound) return sl_error_set(err, SL_EIO, "cannot listen on %s", s->address);
    evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(s->bound), on_accept_error);
    pthread_mutex_lock(&listening_lock);
    s->next_listening = listening;
    listening = s;
    pthread_mutex_unlock(&listening_lock);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char name[96];
    if (getsockname(evhttp_bound_socket_get_fd(s->bound), (struct sockaddr *)&ss, &sl))
        return sl_error_set(err, SL_EIO, "cannot listen on %s", s->address);
    sl__http_format_addr((struct sockaddr *)&ss, name, sizeof name);
    sl_stage_log(s->stage, SL_LOG_INFO, "listening on %s (POST %s)", name, s->path);
    int bound = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return s->port_file ? write_port(s, bound, err) : 0;
}

/* Takes `s` out of the list of listening servers (if it is there). */
static void forget(struct sl__http_server *s)
{
    pthread_mutex_lock(&listening_lock);
    for (struct sl__http_server **at = &listening; *at; at = &(*at)->next_listening)
        if (*at == s) {
            *at = s->next_listening;
            break;
        }
    pthread_mutex_unlock(&listening_lock);
}

void sl__http_server_unlisten(struct sl__http_server *s)
{
    forget(s);
    if (s->resume) sl_timer_stop(s->resume);
    if (!s->bound) return;
    evhttp_del_accept_socket(s->http, s->bound);
    s->bound = NULL;
}

void sl__http_server_free(struct sl__http_server *s)
{
    forget(s);
    sl_timer_free(s->resume);
    s->resume = NULL;
    s->bound = NULL;               /* freed with the server */
    if (s->adopt) adopt(-1, 0, s); /* drops the references still held */
    if (s->http) evhttp_free(s->http);
    if (s->adopt) event_free(s->adopt);
    free(s->fresh);
    s->http = NULL, s->adopt = NULL, s->fresh = NULL;
}
