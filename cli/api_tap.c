/* GET /api/tap?stage=NAME[&port=PORT][&limit=N][&filter=EXPR] (api.tap: true): a chunked
 * application/x-ndjson stream of the events leaving a stage's output, one JSON object
 * per line, then every second and at the end a line {"_tap":{"sent":N,"dropped":M}}.
 *
 * Each stream owns a tap (sl_pipeline_tap_open): a ring of RING_EVENTS events that the
 * stage fills on the loop thread without ever waiting. The stream moves lines from the
 * ring to the connection's output only while less than OUT_MAX bytes wait there, so a
 * client that reads slowly leaves events in the ring until it is full, and the rest are
 * dropped and counted: nothing grows without bound, and the stage never slows. A client
 * that reads nothing for the server's idle timeout is dropped like any other. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "cli.h"

enum {
    RING_EVENTS = 4096,   /* events a stream's tap holds */
    RING_BYTES = 4 << 20, /* and their JSON bytes */
    OUT_MAX = 256 << 10,  /* bytes waiting in a connection before the ring is left alone */
    MAX_STREAMS = 16,     /* streams at once; more are answered 503 */
    TICK_MS = 1000,       /* the counts line */
};

struct stream {
    struct cli_taps *owner;     /* the server's streams */
    struct evhttp_request *req; /* the response being sent */
    struct sl_tap *tap;         /* the stage's copies */
    struct sl_expr *filter;     /* the condition, NULL: every event */
    struct event *drain;        /* moves lines to the connection (woken by the tap) */
    struct event *tick;         /* every TICK_MS: the counts line */
    uint64_t sent, limit;       /* events sent; the end after `limit` (0: none) */
    struct stream *next;        /* in owner->streams */
};

struct cli_taps {
    struct sl_pipeline *p;  /* borrowed */
    struct stream *streams; /* open streams */
    unsigned n;             /* how many */
};

struct cli_taps *cli_taps_new(struct sl_pipeline *p)
{
    struct cli_taps *t = calloc(1, sizeof *t);
    if (t) t->p = p;
    return t;
}

/* ---- one stream -------------------------------------------------------------------- */

static void counts_line(struct stream *s, struct evbuffer *buf)
{
    uint64_t dropped = 0;
    sl_tap_counts(s->tap, NULL, &dropped);
    evbuffer_add_printf(buf, "{\"_tap\":{\"sent\":%llu,\"dropped\":%llu}}\n",
                        (unsigned long long)s->sent, (unsigned long long)dropped);
}

/* Ends the response (when the client is still there, with the counts line) and frees
 * the stream. */
static void end_stream(struct stream *s)
{
    if (evhttp_request_get_connection(s->req)) {
        struct evbuffer *buf = evbuffer_new();
        if (buf) {
            counts_line(s, buf);
            evhttp_send_reply_chunk(s->req, buf);
            evbuffer_free(buf);
        }
    }
    evhttp_send_reply_end(s->req); /* also frees a request whose client left */
    for (struct stream **pp = &s->owner->streams; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    s->owner->n--;
    sl_tap_close(s->tap);
    sl_expr_free(s->filter);
    if (s->drain) event_free(s->drain);
    if (s->tick) event_free(s->tick);
    free(s);
}

/* Bytes waiting in the connection's output; SIZE_MAX when the client has left. */
static size_t queued(struct stream *s)
{
    struct evhttp_connection *c = evhttp_request_get_connection(s->req);
    if (!c) return SIZE_MAX;
    return evbuffer_get_length(bufferevent_get_output(evhttp_connection_get_bufferevent(c)));
}

/* Moves lines from the ring to the connection while it has room; ends the stream when
 * the client has left or the limit is reached. Returns false when it ended it. */
static bool pump(struct stream *s)
{
    size_t q = queued(s);
    if (q == SIZE_MAX) {
        end_stream(s);
        return false;
    }
    struct evbuffer *buf = evbuffer_new();
    const char *json;
    size_t len, added = 0;
    while (buf && q + added < OUT_MAX && (!s->limit || s->sent < s->limit) &&
           sl_tap_next(s->tap, &json, &len)) {
        evbuffer_add(buf, json, len);
        evbuffer_add(buf, "\n", 1);
        added += len + 1;
        s->sent++;
    }
    if (added) evhttp_send_reply_chunk(s->req, buf);
    if (buf) evbuffer_free(buf);
    if (s->limit && s->sent >= s->limit) {
        end_stream(s);
        return false;
    }
    return true;
}

static void on_drain(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    pump(arg);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct stream *s = arg;
    if (!pump(s)) return;
    struct evbuffer *buf = evbuffer_new();
    if (!buf) return;
    counts_line(s, buf);
    evhttp_send_reply_chunk(s->req, buf);
    evbuffer_free(buf);
}

/* The tap put events in the ring: pump at the loop's next turn (not from inside the
 * stage's push). */
static void on_wake(void *arg, struct sl_tap *tap)
{
    (void)tap;
    struct stream *s = arg;
    event_active(s->drain, EV_TIMEOUT, 0);
}

static bool match_filter(void *arg, const struct sl_event *ev)
{
    return sl_expr_test(arg, ev);
}

/* ---- the request ------------------------------------------------------------------- */

struct query {
    const char *stage, *port, *limit, *filter; /* borrowed from `kv`; NULL when absent */
    struct evkeyvalq kv;                       /* the decoded parameters */
};

/* Opens the stream's tap and filter as the query says; answers the error itself and
 * returns false when it cannot. */
static bool open_tap(struct cli_taps *t, struct stream *s, struct query *q)
{
    char msg[600];
    struct sl_error err = {0};
    struct sl_stage *stage = q->stage ? sl_pipeline_find(t->p, q->stage) : NULL;
    char *end = NULL;
    long long limit = q->limit ? strtoll(q->limit, &end, 10) : 0;
    if (!q->stage) {
        cli_reply_error(s->req, 400, "Bad Request", "parameter 'stage' is required");
        return false;
    }
    if (!stage) {
        snprintf(msg, sizeof msg, "unknown stage '%s'", q->stage);
        cli_reply_error(s->req, 404, "Not Found", msg);
        return false;
    }
    if (q->limit && (!*q->limit || *end || limit < 1)) {
        cli_reply_error(s->req, 400, "Bad Request", "'limit' must be a positive integer");
        return false;
    }
    s->limit = (uint64_t)limit;
    if (q->filter && !(s->filter = sl_expr_compile(q->filter, strlen(q->filter), &err))) {
        snprintf(msg, sizeof msg, "filter: %s", err.msg);
        cli_reply_error(s->req, 400, "Bad Request", msg);
        return false;
    }
    struct sl_tap_options o = {.size = sizeof o,
                               .capacity_events = RING_EVENTS,
                               .capacity_bytes = RING_BYTES,
                               .match = s->filter ? match_filter : NULL,
                               .match_arg = s->filter,
                               .wake = on_wake,
                               .wake_arg = s};
    if (!(s->tap = sl_pipeline_tap_open(t->p, stage, q->port, &o, &err))) {
        cli_reply_error(s->req, err.code == SL_ENOTFOUND ? 404 : 500,
                        err.code == SL_ENOTFOUND ? "Not Found" : "Internal Server Error", err.msg);
        return false;
    }
    return true;
}

/* Starts the response of an opened stream: headers, the timers. */
static bool start_stream(struct cli_taps *t, struct stream *s)
{
    struct event_base *base = sl_pipeline_event_base(t->p);
    struct timeval tick = {.tv_sec = TICK_MS / 1000, .tv_usec = TICK_MS % 1000 * 1000};
    if (!(s->drain = event_new(base, -1, 0, on_drain, s)) ||
        !(s->tick = event_new(base, -1, EV_PERSIST, on_tick, s)) || event_add(s->tick, &tick)) {
        cli_reply_error(s->req, 500, "Internal Server Error", "out of memory");
        return false;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(s->req);
    evhttp_add_header(h, "Content-Type", "application/x-ndjson");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply_start(s->req, 200, "OK");
    s->next = t->streams;
    t->streams = s;
    t->n++;
    return true;
}

void cli_taps_serve(struct cli_taps *t, struct evhttp_request *req)
{
    if (t->n >= MAX_STREAMS) {
        cli_reply_error(req, 503, "Service Unavailable", "too many taps open");
        return;
    }
    struct query q = {0};
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    TAILQ_INIT(&q.kv);
    if (query && evhttp_parse_query_str(query, &q.kv)) {
        cli_reply_error(req, 400, "Bad Request", "malformed query");
        return;
    }
    q.stage = evhttp_find_header(&q.kv, "stage");
    q.port = evhttp_find_header(&q.kv, "port");
    q.limit = evhttp_find_header(&q.kv, "limit");
    q.filter = evhttp_find_header(&q.kv, "filter");
    struct stream *s = calloc(1, sizeof *s);
    if (!s) {
        evhttp_clear_headers(&q.kv);
        cli_reply_error(req, 500, "Internal Server Error", "out of memory");
        return;
    }
    s->owner = t;
    s->req = req;
    if (!open_tap(t, s, &q) || !start_stream(t, s)) {
        sl_tap_close(s->tap);
        sl_expr_free(s->filter);
        if (s->drain) event_free(s->drain);
        if (s->tick) event_free(s->tick);
        free(s);
    }
    evhttp_clear_headers(&q.kv);
}

void cli_taps_free(struct cli_taps *t)
{
    if (!t) return;
    while (t->streams) end_stream(t->streams);
    free(t);
}
