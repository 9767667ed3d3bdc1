/* The metrics and API server (--metrics-addr, pipeline.api.address): libevent's evhttp
 * on the pipeline's own loop, so a request reads the counters between two stage runs,
 * never concurrently. /metrics answers in the Prometheus text format; /health answers
 * 200 while the pipeline runs and 503 once it is shutting down; /api/graph and
 * /api/stats answer JSON (api.c), /api/tap streams events (api_tap.c, with api.tap).
 * With a bearer token (api.auth.bearer) every path with data wants it, compared in
 * constant time; the page's own files (page.c: / and the files under /ui) hold no data
 * and are served without it.
 *
 * The server must not hurt the run it watches, whatever its clients do: it serves at
 * most `max_conns` connections at once (the others wait in the listen backlog, costing
 * no descriptor); an accept() that fails (no descriptor left: EMFILE, ENFILE) pauses
 * the listener with a growing delay instead of failing again at once, forever;
 * requests are GET only, with 8 KiB of headers at most; a client silent for 5 s is
 * dropped. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "cli.h"

enum {
    MAX_HEADER_BYTES = 8192, /* request line and headers; a scrape sends a few hundred */
    LISTEN_BACKLOG = 128,    /* where clients past the cap wait */
    IDLE_TIMEOUT_S = 5,      /* a client that neither sends nor reads this long is dropped */
    PAUSE_MIN_MS = 10,       /* the first pause after an accept error... */
    PAUSE_MAX_MS = 1000,     /* ...doubles up to this */
};

struct cli_metrics {
    struct sl_pipeline *p;      /* borrowed */
    struct evhttp *http;        /* the server */
    struct evconnlistener *lev; /* its listening socket (owned by `http`), NULL when freed */
    struct event *resume;       /* re-enables the listener after a pause */
    struct event *adopt;        /* sets the close callback of new connections */
    struct bufferevent **fresh; /* their bufferevents until then, one reference each */
    size_t nfresh, fresh_size;  /* entries used and allocated */
    unsigned live, max_conns;   /* open connections; at max_conns, no more accepted */
    int64_t pause_ms;           /* the next pause after an accept error */
    unsigned accept_errors;     /* failed accepts since the last success */
    bool paused;                /* after an accept error, until `resume` fires */
    struct timespec started;    /* for uptime */
    bool shutting_down;         /* /health answers 503 */
    const char *bearer;         /* the token requests must bring, NULL: none (borrowed) */
    struct cli_taps *taps;      /* /api/tap streams, NULL when tapping is off */
    int port;                   /* bound port */
    struct cli_metrics *next;   /* in `servers` */
};

/* The servers, for the accept error callback: libevent gives it the argument of the
 * accept callback, which evhttp sets to the evhttp. Loop thread only. */
static struct cli_metrics *servers;

static double uptime(const struct cli_metrics *m)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - m->started.tv_sec) +
           (double)(now.tv_nsec - m->started.tv_nsec) / 1e9;
}

void cli_send(struct evhttp_request *req, int code, const char *reason, struct evbuffer *body)
{
    /* libevent 2.1 sends a HEAD reply's body too, and then no Content-Length: a client
     * that keeps the connection would read the body as the next reply. */
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        char len[24];
        snprintf(len, sizeof len, "%zu", body ? evbuffer_get_length(body) : (size_t)0);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Length", len);
        evhttp_send_reply(req, code, reason, NULL);
        return;
    }
    evhttp_send_reply(req, code, reason, body);
}

/* Replies `len` bytes of `text` with Content-Type `type`. */
static void reply_typed(struct evhttp_request *req, int code, const char *reason, const char *type,
                        const char *text, size_t len)
{
    struct evbuffer *body = evbuffer_new();
    if (!body || evbuffer_add(body, text, len)) {
        if (body) evbuffer_free(body);
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", type);
    cli_send(req, code, reason, body);
    evbuffer_free(body);
}

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *text,
                       size_t len)
{
    reply_typed(req, code, reason, "text/plain; charset=utf-8", text, len);
}

void cli_reply_json(struct evhttp_request *req, int code, const char *reason, const char *text,
                    size_t len)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
    reply_typed(req, code, reason, "application/json", text, len);
}

void cli_reply_error(struct evhttp_request *req, int code, const char *reason, const char *msg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    fputs("{\"error\":", f);
    cli_json_string(f, msg, strlen(msg));
    fputs("}\n", f);
    fclose(f);
    cli_reply_json(req, code, reason, text, len);
    free(text);
}

/* Whether the request brings the token, compared in constant time (the time depends on
 * the token's length only); answers 401 when it does not. */
static bool authorized(const struct cli_metrics *m, struct evhttp_request *req)
{
    if (!m->bearer) return true;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    const char *got = h && !strncasecmp(h, "Bearer ", 7) ? h + 7 : "";
    size_t want_len = strlen(m->bearer), got_len = strlen(got);
    unsigned char diff = want_len != got_len;
    for (size_t i = 0; i < want_len; i++)
        diff |= (unsigned char)m->bearer[i] ^ (unsigned char)(i < got_len ? got[i] : 0);
    if (!diff) return true;
    evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                      "Bearer realm=\"sluice\"");
    cli_reply_error(req, 401, "Unauthorized", "a valid bearer token is required");
    return false;
}

/* Replies with what `render` writes. */
static void reply_rendered(struct evhttp_request *req, struct cli_metrics *m, bool json,
                           void (*render)(struct cli_metrics *, FILE *))
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    render(m, f);
    fclose(f);
    if (json)
        cli_reply_json(req, 200, "OK", text, len);
    else /* the Prometheus text format */
        reply_typed(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

static void render_metrics(struct cli_metrics *m, FILE *f)
{
    cli_metrics_render(m->p, uptime(m), f);
}

static void render_graph(struct cli_metrics *m, FILE *f)
{
    cli_api_graph(m->p, f);
}

static void render_stats(struct cli_metrics *m, FILE *f)
{
    cli_api_stats(m->p, uptime(m), m->shutting_down || sl_pipeline_done(m->p), f);
}

static void on_metrics(struct evhttp_request *req, void *arg)
{
    if (authorized(arg, req)) reply_rendered(req, arg, false, render_metrics);
}

static void on_graph(struct evhttp_request *req, void *arg)
{
    if (authorized(arg, req)) reply_rendered(req, arg, true, render_graph);
}

static void on_stats(struct evhttp_request *req, void *arg)
{
    if (authorized(arg, req)) reply_rendered(req, arg, true, render_stats);
}

static void on_tap(struct evhttp_request *req, void *arg)
{
    struct cli_metrics *m = arg;
    if (!authorized(m, req)) return;
    if (!m->taps) {
        cli_reply_error(req, 403, "Forbidden", "tapping is off (api.tap: true)");
    } else if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) { /* no tap for a HEAD */
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/x-ndjson");
        cli_send(req, 200, "OK", NULL);
    } else {
        cli_taps_serve(m->taps, req);
    }
}

static void on_health(struct evhttp_request *req, void *arg)
{
    struct cli_metrics *m = arg;
    if (!authorized(m, req)) return;
    if (m->shutting_down)
        reply_text(req, 503, "Service Unavailable", "shutting down\n", 14);
    else
        reply_text(req, 200, "OK", "ok\n", 3);
}

static void on_other(struct evhttp_request *req, void *arg)
{
    if (!authorized(arg, req)) return;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (path && !strncmp(path, "/api", 4) && (path[4] == '/' || !path[4]))
        cli_reply_error(req, 404, "Not Found", "not found: try /api/graph, /api/stats or /api/tap");
    else
        reply_text(req, 404, "Not Found", "not found: try /metrics or /health\n", 35);
}

/* Splits "host:port" or "[v6]:port". */
static int split_addr(const char *addr, char *host, size_t size, int *port)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr) return -1;
    const char *h = addr;
    size_t hl = (size_t)(colon - addr);
    if (*h == '[' && hl >= 2 && h[hl - 1] == ']') h++, hl -= 2;
    if (hl >= size) return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || p < 0 || p > 65535) return -1;
    *port = (int)p;
    return 0;
}

static int bound_port(struct evconnlistener *lev)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&ss, &len)) return -1;
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* ---- connections: the cap and accept errors ------------------------------------------ */

/* The listener accepts unless it pauses after an accept error or the cap is reached. */
static void update_listener(struct cli_metrics *m)
{
    if (!m->lev) return; /* the server is being freed */
    if (!m->paused && m->live < m->max_conns)
        evconnlistener_enable(m->lev);
    else
        evconnlistener_disable(m->lev);
}

static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    struct cli_metrics *m = arg;
    m->live--;
    update_listener(m); /* below the cap again */
}

/* Counting connections: evhttp tells that it drops a connection only through the
 * connection's close callback, and the connection does not exist yet when evhttp asks
 * for its bufferevent (new_conn). So the bufferevent is kept, with a reference in case
 * evhttp drops it at once, until the loop runs this, which finds the connection as the
 * bufferevent's callback argument. A bufferevent without callbacks was dropped. (A
 * filter bufferevent's free callback would tell too, but evhttp 2.1 then closes the
 * socket as soon as the filter has passed the reply on, before it is sent.) */
static void adopt(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct cli_metrics *m = arg;
    for (size_t i = 0; i < m->nfresh; i++) {
        bufferevent_data_cb rd, wr;
        bufferevent_event_cb ev;
        void *evcon;
        bufferevent_getcb(m->fresh[i], &rd, &wr, &ev, &evcon);
        if (ev && evcon)
            evhttp_connection_set_closecb(evcon, conn_closed, m);
        else
            conn_closed(NULL, m);
        bufferevent_decref(m->fresh[i]);
    }
    m->nfresh = 0;
}

/* evhttp's bufferevent for each accepted connection: the one evhttp would make, counted
 * (see adopt). */
static struct bufferevent *new_conn(struct event_base *base, void *arg)
{
    struct cli_metrics *m = arg;
    if (m->nfresh == m->fresh_size) {
        size_t size = m->fresh_size ? 2 * m->fresh_size : 16;
        struct bufferevent **f = realloc(m->fresh, size * sizeof *f);
        if (!f) return NULL; /* evhttp makes one, uncounted: no memory is the worse problem */
        m->fresh = f;
        m->fresh_size = size;
    }
    struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);
    if (!bev) return NULL;
    bufferevent_incref(bev);
    m->fresh[m->nfresh++] = bev;
    event_active(m->adopt, 0, 0);
    m->live++;
    if (m->accept_errors) {
        cli_log(SL_LOG_INFO, NULL, "metrics: accepting connections again after %u failed %s",
                m->accept_errors, m->accept_errors == 1 ? "attempt" : "attempts");
        m->accept_errors = 0;
        m->pause_ms = PAUSE_MIN_MS;
    }
    update_listener(m);
    return bev;
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct cli_metrics *m = arg;
    m->paused = false;
    update_listener(m);
}

/* accept() failed for another reason than "nothing to accept". The listening socket
 * stays readable: accepting again at once would fail again at once, so the listener
 * pauses, 10 ms then twice as long each time up to 1 s, and the first failure of a
 * series is logged, not every one. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    (void)arg; /* the evhttp */
    int err = EVUTIL_SOCKET_ERROR();
    struct cli_metrics *m = servers;
    while (m && m->lev != lev) m = m->next;
    if (!m) return;
    if (m->accept_errors++ == 0)
        cli_log(SL_LOG_WARN, NULL,
                "metrics: cannot accept a connection: %s; pausing the listener (retrying %d ms "
                "to %d s apart)",
                evutil_socket_error_to_string(err), PAUSE_MIN_MS, PAUSE_MAX_MS / 1000);
    m->paused = true;
    update_listener(m);
    struct timeval tv = {.tv_sec = m->pause_ms / 1000, .tv_usec = m->pause_ms % 1000 * 1000};
    evtimer_add(m->resume, &tv);
    m->pause_ms = m->pause_ms * 2 < PAUSE_MAX_MS ? m->pause_ms * 2 : PAUSE_MAX_MS;
}

/* ---- the server ------------------------------------------------------------------------ */

/* A listening socket on `host`:`port` made here rather than by evhttp, to have its
 * listener (for the cap and the accept errors); close-on-exec like evhttp's. */
static struct evconnlistener *listen_on(struct event_base *base, const char *addr, const char *host,
                                        int port, struct sl_error *err)
{
    struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC,
                                    .ai_socktype = SOCK_STREAM,
                                    .ai_protocol = IPPROTO_TCP,
                                    .ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_ADDRCONFIG};
    struct evutil_addrinfo *ai = NULL;
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    int rc = evutil_getaddrinfo(*host ? host : NULL, service, &hints, &ai);
    if (rc) {
        sl_error_set(err, SL_EIO, "cannot listen on %s: %s", addr, evutil_gai_strerror(rc));
        return NULL;
    }
    struct evconnlistener *lev = evconnlistener_new_bind(
        base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        LISTEN_BACKLOG, ai->ai_addr, (int)ai->ai_addrlen);
    int e = errno;
    evutil_freeaddrinfo(ai);
    if (!lev) sl_error_set(err, SL_EIO, "cannot listen on %s: %s", addr, strerror(e));
    return lev;
}

/* The limits and the handlers of a new server. */
static void configure(struct cli_metrics *m)
{
    struct timeval idle = {.tv_sec = IDLE_TIMEOUT_S};
    evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_max_headers_size(m->http, MAX_HEADER_BYTES);
    evhttp_set_max_body_size(m->http, 0); /* GET and HEAD have none */
    evhttp_set_timeout_tv(m->http, &idle);
    evhttp_set_bevcb(m->http, new_conn, m);
    evhttp_set_cb(m->http, "/metrics", on_metrics, m);
    evhttp_set_cb(m->http, "/health", on_health, m);
    evhttp_set_cb(m->http, "/api/graph", on_graph, m);
    evhttp_set_cb(m->http, "/api/stats", on_stats, m);
    evhttp_set_cb(m->http, "/api/tap", on_tap, m);
    cli_page_register(m->http); /* GET / and its files: the pipeline page (page.c) */
    evhttp_set_gencb(m->http, on_other, m);
}

struct cli_metrics *cli_metrics_start(struct sl_pipeline *p, const struct cli_server_opts *o,
                                      struct sl_error *err)
{
    const char *addr = o->addr;
    char host[256];
    int port;
    if (split_addr(addr, host, sizeof host, &port)) {
        sl_error_set(err, SL_EINVAL, "--metrics-addr '%s': expected HOST:PORT", addr);
        return NULL;
    }
    struct event_base *base = sl_pipeline_event_base(p);
    struct cli_metrics *m = calloc(1, sizeof *m);
    if (!m || !(m->http = evhttp_new(base)) || !(m->resume = evtimer_new(base, on_resume, m)) ||
        !(m->adopt = event_new(base, -1, 0, adopt, m))) {
        cli_metrics_free(m);
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    m->p = p;
    m->max_conns = o->max_conns ? o->max_conns : CLI_METRICS_MAX_CONNECTIONS;
    m->bearer = o->bearer && *o->bearer ? o->bearer : NULL;
    if (o->tap && !(m->taps = cli_taps_new(p, IDLE_TIMEOUT_S))) {
        cli_metrics_free(m);
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    m->pause_ms = PAUSE_MIN_MS;
    clock_gettime(CLOCK_MONOTONIC, &m->started);
    configure(m);
    m->lev = listen_on(base, addr, host, port, err);
    if (m->lev && !evhttp_bind_listener(m->http, m->lev)) {
        evconnlistener_free(m->lev); /* not the evhttp's yet */
        m->lev = NULL;
        sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    if (!m->lev) {
        cli_metrics_free(m);
        return NULL;
    }
    evconnlistener_set_error_cb(m->lev, on_accept_error);
    m->next = servers;
    servers = m;
    m->port = bound_port(m->lev);
    return m;
}

int cli_metrics_port(const struct cli_metrics *m)
{
    return m->port;
}

void cli_metrics_shutting_down(struct cli_metrics *m)
{
    if (m) m->shutting_down = true;
}

void cli_metrics_free(struct cli_metrics *m)
{
    if (!m) return;
    for (struct cli_metrics **pp = &servers; *pp; pp = &(*pp)->next)
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    cli_taps_free(m->taps); /* ends the streams while their connections exist */
    if (m->resume) event_free(m->resume);
    if (m->adopt) event_free(m->adopt);
    m->lev = NULL;                     /* evhttp_free() frees it first */
    if (m->http) evhttp_free(m->http); /* and closes the connections (conn_closed) */
    for (size_t i = 0; i < m->nfresh; i++) bufferevent_decref(m->fresh[i]);
    free(m->fresh);
    free(m);
}
