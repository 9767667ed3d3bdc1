/* Source `http_server`: events POSTed over HTTP, each request answered once every sink
 * has acknowledged its events (end-to-end acknowledgement), or at once with
 * `acknowledgements: false`.
 *
 * A request that passes its checks (server_req.c) and whose body decodes whole
 * (server_body.c) joins a list, in arrival order; poll() copies its events into
 * batches, several requests to a batch or one request over several, each batch's cookie
 * its number. The runtime calls ack() in the order batches were made, so the ack of
 * batch k settles every request whose last event is in a batch <= k: it is answered 200
 * and leaves the list. The list is the source's memory, bounded by `max_pending_events`
 * and `max_pending_bytes`: past them a request is answered 429 (the runtime stops
 * polling a source whose output is full, so a blocked sink shows here). A request still
 * waiting after `ack_timeout` is answered 503 (expire), its events left to finish.
 *
 * The end: a stop (or a failing stage) calls flush(end); the listening socket closes,
 * requests whose events are not all in batches are answered 503 (the run will not take
 * them), and those in batches keep waiting for their acks, which a graceful stop
 * delivers. Whatever is still unanswered at close() (a failed run acknowledges nothing
 * more) is answered 503 there, written to the socket at once: no client is left
 * waiting for an answer that cannot come. */
#include <stdlib.h>
#include <string.h>

#include <sluice/builtins.h>
#include <sluice/config.h>

#include "common.h"
#include "server.h"

#define OPT(f) offsetof(struct sl__http_server, f)

static const struct sl_option server_options[] = {
    {"address", SL_OPT_STRING, "127.0.0.1:8080", 0, OPT(address),
     "HOST:PORT to listen on ([v6]:PORT; port 0: any free port, see port_file)", NULL, NULL},
    {"path", SL_OPT_STRING, "/", 0, OPT(path),
     "the path that takes events (query strings ignored); other paths answer 404", NULL, NULL},
    {"encoding", SL_OPT_ENUM, "ndjson", 0, OPT(encoding),
     "ndjson: a JSON value per line; json: an object or an array of objects; text: a line each",
     "ndjson|json|text", NULL},
    {"max_body_bytes", SL_OPT_SIZE, "10MiB", 0, OPT(max_body_bytes),
     "larger bodies are answered 413 (gzip bodies: once inflated)", NULL, "1..1GiB"},
    {"max_header_bytes", SL_OPT_SIZE, "16KiB", 0, OPT(max_header_bytes),
     "request line and headers at most (more: the request is refused)", NULL, "256..1MiB"},
    {"max_connections", SL_OPT_INT, "1024", 0, OPT(max_connections),
     "connections served at once; more wait in the listen backlog", NULL, "1..1000000"},
    {"read_timeout", SL_OPT_DURATION, "30s", 0, OPT(read_timeout_ms),
     "a client silent this long (idle, or stalled inside a request) is disconnected", NULL,
     "1ms..1d"},
    {"auth.bearer", SL_OPT_STRING, NULL, 0, OPT(bearer),
     "when set, requests must send Authorization: Bearer <this> (else 401)", NULL, NULL},
    {"acknowledgements", SL_OPT_BOOL, "true", 0, OPT(acknowledgements),
     "true: answer 200 once every sink acknowledged the events; false: 202 on receipt", NULL, NULL},
    {"max_pending_events", SL_OPT_INT, "100000", 0, OPT(max_pending_events),
     "events accepted and not yet acknowledged at most; beyond, 429 with Retry-After", NULL, "1.."},
    {"max_pending_bytes", SL_OPT_SIZE, "64MiB", 0, OPT(max_pending_bytes),
     "body bytes accepted and not yet acknowledged at most; beyond, 429 with Retry-After", NULL,
     "1.."},
    {"retry_after", SL_OPT_DURATION, "1s", 0, OPT(retry_after_ms),
     "the Retry-After of a 429 or 503 answer (whole seconds, rounded up)", NULL, "1ms..1h"},
    {"ack_timeout", SL_OPT_DURATION, "60s", 0, OPT(ack_timeout_ms),
     "a request not acknowledged this long is answered 503 (its events may still be "
     "delivered: at least once); 0: wait as long as it takes",
     NULL, "0..1d"},
    {"port_file", SL_OPT_STRING, NULL, 0, OPT(port_file),
     "a file the bound port is written to once listening (for address port 0)", NULL, NULL},
    {0},
};

static int server_init(struct sl_stage *stage, const struct sl_config *cfg, struct sl_error *err)
{
    (void)cfg;
    struct sl__http_server *s = sl_stage_state(stage);
    char host[256];
    int port;
    s->stage = stage;
    if (sl__http_split_addr(s->address, host, sizeof host, &port))
        return sl_error_set(err, SL_ECONFIG, "address '%s': expected HOST:PORT", s->address);
    if (s->path[0] != '/')
        return sl_error_set(err, SL_ECONFIG, "path '%s' must start with '/'", s->path);
    if (s->bearer && !s->bearer[0])
        return sl_error_set(err, SL_ECONFIG, "auth.bearer is empty (an unset variable?)");
    s->c_requests = sl_stage_counter(stage, "http_requests", "HTTP requests received.");
    s->c_accepted = sl_stage_counter(stage, "http_accepted",
                                     "HTTP requests whose events entered the pipeline.");
    s->c_events = sl_stage_counter(stage, "http_events", "Events in the accepted requests.");
    s->c_bytes = sl_stage_counter(stage, "http_bytes", "Body bytes received.");
    s->c_4xx = sl_stage_counter(stage, "http_rejected_4xx",
                                "Requests answered 4xx by the source (413 by evhttp not counted).");
    s->c_429 = sl_stage_counter(stage, "http_rejected_429",
                                "Requests answered 429: the pipeline was full.");
    s->c_5xx = sl_stage_counter(stage, "http_rejected_5xx", "Requests answered 5xx.");
    return sl_stage_declare_fields(stage, SL_FIELDS_ONLY, NULL, 0);
}

/* Answers 503 to the requests waiting longer than ack_timeout (oldest first: they were
 * accepted in the order of the list). Their events stay in the pipeline and in the
 * pending counts until acknowledged. */
static void expire(struct sl_stage *stage, void *arg)
{
    struct sl__http_server *s = arg;
    int64_t now = sl_stage_now_ms(stage);
    for (struct sl__http_req *r = s->head; r; r = r->next) {
        if (!r->req) continue;
        if (now - r->accepted_ms < s->ack_timeout_ms) break;
        sl__http_reply_req(s, r, 503,
                           "not acknowledged within ack_timeout: the events may still be "
                           "delivered; send again after Retry-After",
                           false);
    }
}

static int server_start(struct sl_stage *stage, struct sl_error *err)
{
    struct sl__http_server *s = sl_stage_state(stage);
    if (s->acknowledgements && s->ack_timeout_ms > 0) {
        int64_t every = s->ack_timeout_ms / 4;
        s->expiry = sl_timer_new(stage, expire, s);
        if (!s->expiry) return sl_error_set(err, SL_ENOMEM, "out of memory");
        sl_timer_start(s->expiry, every < 10 ? 10 : every > 1000 ? 1000 : every, true);
    }
    return sl__http_server_listen(s, sl_stage_event_base(stage), err);
}

/* Frees what a request holds once its events are all in batches. */
static void drop_body(struct sl__http_req *r)
{
    free(r->body);
    free(r->spans.v);
    r->body = NULL;
    r->spans = (struct sl__http_spans){0};
}

/* Copies the events of the request at the cursor into `b` until it is full. */
static int fill(struct sl__http_server *s, struct sl_batch *b, uint64_t seq)
{
    struct sl__http_req *r = s->cursor;
    size_t plen = strlen(r->peer);
    char *origin = sl_batch_alloc(b, plen + 1);
    if (!origin) return SL_ENOMEM;
    memcpy(origin, r->peer, plen + 1);
    for (; r->next_ev < r->n && !sl_batch_full(b); r->next_ev++) {
        const struct sl__http_span *sp = &r->spans.v[r->next_ev];
        struct sl_event *ev = sl_batch_append(b);
        char *copy = ev ? sl_event_alloc(ev, sp->len ? sp->len : 1) : NULL;
        if (!copy) return SL_ENOMEM;
        memcpy(copy, r->body + sp->off, sp->len);
        sl_event_set_payload(ev, copy, sp->len);
        sl_event_set_origin(ev, origin, r->next_ev, -1);
    }
    if (r->next_ev == r->n) {
        r->last_seq = seq;
        drop_body(r);
        s->cursor = r->next;
    }
    return 0;
}

static enum sl_poll server_poll(struct sl_stage *stage, struct sl_batch **out)
{
    struct sl__http_server *s = sl_stage_state(stage);
    if (!s->cursor) {
        s->polled_empty = true;
        return SL_PENDING; /* a new request wakes the stage */
    }
    struct sl_batch *b = sl_batch_new(stage);
    if (!b) return SL_ERROR;
    uint64_t seq = ++s->seq;
    sl_batch_set_cookie(b, seq);
    while (s->cursor && !sl_batch_full(b)) {
        if (fill(s, b, seq)) {
            sl_batch_unref(b);
            sl_stage_error(stage, SL_ENOMEM, "out of memory");
            return SL_ERROR;
        }
    }
    *out = b;
    return SL_READY;
}

/* Takes the oldest request off the list. */
static void pop(struct sl__http_server *s)
{
    struct sl__http_req *r = s->head;
    s->head = r->next;
    if (!s->head) s->tail = NULL;
    s->pending_events -= (int64_t)r->n;
    s->pending_bytes -= r->bytes;
    drop_body(r);
    free(r);
}

/* Every batch up to the cookie of `b` is acknowledged: so is every request whose events
 * are all in them. */
static void server_ack(struct sl_stage *stage, struct sl_batch *b)
{
    struct sl__http_server *s = sl_stage_state(stage);
    uint64_t seq = sl_batch_cookie(b);
    while (s->head && s->head != s->cursor && s->head->last_seq <= seq) {
        sl__http_reply_req(s, s->head, 200, NULL, false);
        pop(s);
    }
}

/* The source has ended: no more connections; what will not be batched is answered 503
 * (and counts as batched up to where it got, so that the acks to come settle it). */
static int server_flush(struct sl_stage *stage, struct sl_emit *out, bool end)
{
    (void)out;
    struct sl__http_server *s = sl_stage_state(stage);
    if (!end || s->ended) return 0;
    s->ended = true;
    sl__http_server_unlisten(s);
    for (struct sl__http_req *r = s->cursor; r; r = r->next) {
        sl__http_reply_req(s, r, 503, "the source is stopping: nothing was delivered", false);
        r->last_seq = r->next_ev ? s->seq : 0;
        drop_body(r);
    }
    s->cursor = NULL;
    return 0;
}

static void server_close(struct sl_stage *stage)
{
    struct sl__http_server *s = sl_stage_state(stage);
    while (s->head) {
        sl__http_reply_req(s, s->head, 503, "the source stopped before every sink acknowledged",
                           true);
        pop(s);
    }
    sl_timer_free(s->expiry);
    sl__http_server_free(s);
}

const struct sl_stage_type sl_stage_http_server = {
    .abi = SL_STAGE_ABI,
    .name = "http_server",
    .kind = SL_SOURCE,
    .doc = "events POSTed over HTTP (ndjson, json, text), answered once acknowledged",
    .state_size = sizeof(struct sl__http_server),
    .options = server_options,
    .init = server_init,
    .start = server_start,
    .poll = server_poll,
    .ack = server_ack,
    .flush = server_flush,
    .close = server_close,
};
