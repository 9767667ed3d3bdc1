/* The `http_server` source (server.c), its requests (server_req.c) and its body decoder
 * (server_body.c). Internal to connectors/http/. Loop thread only, all of it. */
#ifndef SLUICE_HTTP_SERVER_H
#define SLUICE_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/stage.h>

struct evhttp;
struct evhttp_bound_socket;
struct evhttp_request;
struct event;
struct bufferevent;

/* How a body becomes events (option `encoding`; the order of the enum's choices). */
enum sl__http_encoding {
    SL__HTTP_NDJSON = 0, /* one JSON value per line */
    SL__HTTP_JSON,       /* one object, or an array of objects */
    SL__HTTP_TEXT,       /* one event per line */
};

/* One event's bytes inside a body. */
struct sl__http_span {
    uint32_t off; /* first byte */
    uint32_t len; /* bytes */
};

/* The events of a body (sl__http_decode). */
struct sl__http_spans {
    struct sl__http_span *v; /* owned (free) */
    size_t n, cap;           /* used / allocated */
};

/* Splits `body` (borrowed, `len` bytes, len < 4 GiB) into events by `enc`, checking the
 * whole body first: on success `out` (borrowed, zeroed by the caller) holds every
 * event's span and 0 is returned; on a body that does not decode, SL_EPARSE with the
 * reason in `why` (borrowed, `size` bytes) and `out` emptied; SL_ENOMEM. */
int sl__http_decode(enum sl__http_encoding enc, const char *body, size_t len,
                    struct sl__http_spans *out, char *why, size_t size);

/* One accepted request, from its body to its answer. Requests wait in arrival order in
 * one list: those whose events are all in batches first, then the rest (`cursor`). */
struct sl__http_req {
    struct sl__http_req *next;   /* the next request in arrival order */
    struct evhttp_request *req;  /* to answer; NULL once answered (acknowledgements off,
                                    a stop) */
    char *body;                  /* owned copy of the body until its events are batched */
    struct sl__http_spans spans; /* its events, freed with the body */
    size_t next_ev;              /* the next event to put in a batch */
    size_t n;                    /* events */
    size_t bytes;                /* body bytes (what the pending bound counts) */
    uint64_t last_seq;           /* the batch holding its last event (0: none) */
    int64_t accepted_ms;         /* when it was accepted (the loop clock) */
    char peer[64];               /* the client's "ip:port", each event's origin */
};

/* The stage's state. Options first (filled from the schema), then the server's. */
struct sl__http_server {
    const char *address;        /* option: host:port to listen on */
    const char *path;           /* option: the path that takes events */
    int encoding;               /* option: enum sl__http_encoding */
    uint64_t max_body_bytes;    /* option: larger bodies are answered 413 */
    uint64_t max_header_bytes;  /* option: request line and headers */
    int64_t max_connections;    /* option: connections served at once */
    int64_t read_timeout_ms;    /* option: a silent client is cut after this */
    const char *bearer;         /* option auth.bearer: the token clients must send */
    bool acknowledgements;      /* option: answer only once every sink acknowledged */
    int64_t max_pending_events; /* option: events accepted and not yet acknowledged */
    uint64_t max_pending_bytes; /* option: body bytes accepted and not yet acknowledged */
    int64_t retry_after_ms;     /* option: the Retry-After of a 429 or 503 */
    int64_t ack_timeout_ms;     /* option: 503 after this long unacknowledged (0: never) */
    const char *port_file;      /* option: where the bound port is written */

    struct sl_stage *stage;                 /* this source */
    struct evhttp *http;                    /* the server, from start() */
    struct evhttp_bound_socket *bound;      /* its listening socket; NULL once closed */
    struct event *adopt;                    /* counts the connections accepted (server_req.c) */
    struct bufferevent **fresh;             /* their bufferevents until then, one ref each */
    size_t nfresh, fresh_size;              /* entries used and allocated */
    int64_t live;                           /* connections open */
    struct sl_timer *resume;                /* ends a pause after an accept error */
    int64_t pause_ms;                       /* the next pause (doubles up to a second) */
    unsigned accept_errors;                 /* failed accepts since the last success */
    bool paused;                            /* not accepting until `resume` fires */
    struct sl__http_server *next_listening; /* in the list the accept errors search */
    struct sl__http_req *head, *tail;       /* requests not yet answered, oldest first */
    struct sl__http_req *cursor;            /* the first with events not in a batch yet */
    struct sl_timer *expiry;                /* answers the requests past ack_timeout */
    uint64_t seq;                           /* batches made (each batch's cookie) */
    int64_t pending_events;                 /* events of the requests in the list */
    uint64_t pending_bytes;                 /* their body bytes */
    bool polled_empty;                      /* the last poll found nothing: wake it */
    bool ended;                             /* flush(end): new requests are answered 503 */
    struct sl_counter *c_requests;          /* requests received */
    struct sl_counter *c_accepted;          /* requests whose events entered the pipeline */
    struct sl_counter *c_events;            /* events they held */
    struct sl_counter *c_bytes;             /* body bytes received */
    struct sl_counter *c_4xx;               /* answered 4xx (a 429 included) */
    struct sl_counter *c_429;               /* answered 429: the pipeline was full */
    struct sl_counter *c_5xx;               /* answered 5xx */
};

/* Sets up the evhttp server of `s` on `base` (borrowed) and listens. Returns 0 or an
 * SL_E* code with `err` filled. */
int sl__http_server_listen(struct sl__http_server *s, struct event_base *base,
                           struct sl_error *err);

/* Stops accepting connections (a stop): the listening socket is closed. */
void sl__http_server_unlisten(struct sl__http_server *s);

/* Frees the evhttp server of `s` and what counts its connections. */
void sl__http_server_free(struct sl__http_server *s);

/* Answers `req` (takes it: evhttp frees it once sent) with `code` and a text body
 * `text` (borrowed, one line), counting the answer by its class. */
void sl__http_reply(struct sl__http_server *s, struct evhttp_request *req, int code,
                    const char *text);

/* Answers `r`'s request, if it is still to be answered, with `code`: 200 ("delivered N
 * events") or another with `why` (borrowed, one line); with `now`, the bytes are written
 * to the socket at once (for close(), after which the loop may not run again). */
void sl__http_reply_req(struct sl__http_server *s, struct sl__http_req *r, int code,
                        const char *why, bool now);

#endif
