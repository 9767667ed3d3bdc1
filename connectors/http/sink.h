/* The `http` sink's parts, private to connectors/http: its state, the requests it builds
 * (sink.c: the stage, batches taken as jobs, open requests filled by URI), their bodies
 * (sink_encode.c) and their trips over evhttp (sink_request.c: connections, retries,
 * responses, on_error).
 *
 * A batch the runtime hands over is a job. Its events are encoded into open requests,
 * one per rendered URI; a request is sealed when it reaches batch.max_events or
 * batch.max_bytes, when batch.timeout has passed since its first event, or at the end of
 * the input. A request remembers which jobs its events came from (parts); a job is
 * acknowledged once every one of its events is in a request that got a 2xx (or was
 * handled by on_error). Nothing is acknowledged on send. */
#ifndef SLUICE_CONNECTORS_HTTP_SINK_H
#define SLUICE_CONNECTORS_HTTP_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/sluice.h>

#include "uri.h"

struct evhttp_connection;
struct evdns_base;

/* `encoding`, `compression`, `on_error`, `method`: indexes in the option's choices. */
enum { SL__HTTP_NDJSON = 0, SL__HTTP_JSON_ARRAY = 1, SL__HTTP_TEXT = 2 };
enum { SL__HTTP_PLAIN = 0, SL__HTTP_GZIP = 1 };
enum { SL__HTTP_FAIL = 0, SL__HTTP_DROP = 1, SL__HTTP_DEAD_LETTER = 2 };
enum { SL__HTTP_POST = 0, SL__HTTP_PUT = 1 };

/* One batch taken from write(): acknowledged when `left` reaches 0. */
struct sl__http_job {
    struct sl__http_job *prev, *next; /* the sink's jobs, oldest first */
    struct sl_batch *batch;           /* taken from write(); sl_ack()ed at the end */
    size_t left;                      /* events not yet delivered or handled */
};

/* Events of one job inside a request. */
struct sl__http_part {
    struct sl__http_job *job; /* borrowed: lives while left > 0 */
    size_t n;                 /* how many of its events */
};

/* Where a request is. */
enum sl__http_state {
    SL__HTTP_OPEN = 0, /* taking events */
    SL__HTTP_SEALED,   /* complete: compressing, or waiting for a permit */
    SL__HTTP_SENT,     /* on a connection, its answer awaited */
    SL__HTTP_BACKOFF,  /* failed for a reason that may pass: its timer sends it again */
};

/* One request: an open bucket of events for one URI, then a body on its way. */
struct sl__http_req {
    struct sl__http_req *prev, *next; /* the sink's requests */
    struct sl__http_sink *k;          /* the sink */
    enum sl__http_state state;        /* see above */
    char *uri;                        /* owned: the rendered URI (the bucket's key) */
    size_t uri_len;                   /* its length */
    struct sl__http_uri target;       /* parsed from uri */
    char *body;                       /* owned: the encoded events (then compressed) */
    size_t len, cap;                  /* bytes in body, allocated */
    size_t raw_len;                   /* body bytes before compression */
    size_t events;                    /* events in it */
    struct sl__http_part *parts;      /* owned: nparts jobs, in order */
    size_t nparts, partcap;           /* used / allocated */
    int64_t opened_ms;                /* loop clock at its first event */
    struct sl_backoff backoff;        /* its own delays between attempts */
    uint32_t attempts;                /* failed attempts so far */
    struct sl_timer *timer;           /* owned: the next attempt (BACKOFF) */
    size_t conn;                      /* SENT: the connection slot it is on */
    bool dead;                        /* a dead letter: sent to dead_letter_uri */
    bool packed;                      /* compression done (or none asked) */
    int neterr;                       /* SENT: evhttp's error kind, -1: none */
    char why[512];                    /* the last failure */
    char reason[512];                 /* a dead letter's X-Sluice-Error: why it is one */
};

/* One keep-alive connection, reused by requests to the same host and port. */
struct sl__http_conn {
    struct evhttp_connection *evcon; /* owned; NULL: slot free */
    char host[256];                  /* what it connects to */
    uint16_t port;
    bool busy; /* a request is on it */
};

#define SL__HTTP_BUCKETS 64 /* open requests (distinct URIs) before the oldest is sealed */

/* The stage's state: options (filled by the schema), config (init), run (loop thread). */
struct sl__http_sink {
    /* options */
    struct sl_template *uri;         /* the URI of each event */
    int method;                      /* SL__HTTP_POST / _PUT */
    const struct sl_config *headers; /* name: value */
    int encoding;                    /* SL__HTTP_NDJSON ... */
    int64_t max_events;              /* batch.max_events; 0: the pipeline's */
    uint64_t max_bytes;              /* batch.max_bytes */
    int64_t timeout_batch_ms;        /* batch.timeout; -1: the pipeline's */
    int compression;                 /* SL__HTTP_PLAIN / _GZIP */
    int64_t level;                   /* gzip level */
    int64_t max_in_flight;           /* requests on the wire at once */
    int64_t timeout_ms;              /* per request */
    int on_error;                    /* SL__HTTP_FAIL / _DROP / _DEAD_LETTER */
    const char *dead_letter_uri;     /* on_error dead_letter: where */
    /* config, from init */
    struct sl_stage *stage;
    const char **hdr_names, **hdr_values; /* nhdrs user headers (arrays owned) */
    size_t nhdrs;
    struct sl__http_uri dl;   /* dead_letter_uri parsed */
    bool uri_constant;        /* the template renders the same for every event */
    size_t const_len;         /* uri_constant: its length (the rendering stays in scratch) */
    int64_t retry_initial_ms; /* the stage's retry.initial (runtime option) */
    int64_t retry_max_ms;     /* retry.max */
    int64_t retry_attempts;   /* retry.attempts; 0: forever */
    /* run */
    struct sl__http_job *jhead, *jtail;          /* jobs taken, not yet acknowledged */
    struct sl__http_req *rhead;                  /* every request (open or not) */
    struct sl__http_req *open[SL__HTTP_BUCKETS]; /* open requests, by age */
    size_t nopen;
    size_t sealed;               /* requests sealed and not finished */
    size_t backing_off;          /* of those, waiting for a retry timer */
    struct sl_semaphore *sem;    /* max_in_flight permits */
    struct sl__http_conn *conns; /* max_in_flight + 1 slots (owned) */
    size_t nconns;
    struct evdns_base *dns;       /* made at the first host name that is not an address */
    struct sl_timer *batch_timer; /* seals requests older than batch.timeout */
    char *scratch;                /* one event's rendering (owned) */
    size_t scratch_cap;
    bool broken;        /* failed for good (the stage error is set) */
    bool stalled;       /* write() answered SL_PENDING: wake when room */
    char why[512];      /* the reason requests are retrying */
    uint64_t null_uris; /* events whose URI had a null {{ }} */
    uint64_t routed;    /* events put in a request to their own URI */
    struct sl_counter *c_requests, *c_2xx, *c_3xx, *c_4xx, *c_5xx, *c_neterr, *c_retries, *c_bytes,
        *c_raw, *c_dropped, *c_dead;
};

/* ---- sink_config.c ------------------------------------------------------------------ */

/* Checks the options the schema filled and reads the rest (headers, dead_letter_uri, the
 * retry keys, whether the URI varies). Returns 0, or SL_ECONFIG / SL_ENOMEM with `err`
 * (the config position of the option). */
int sl__http_sink_config(struct sl__http_sink *k, const struct sl_config *cfg,
                         struct sl_error *err);

/* ---- sink_encode.c ------------------------------------------------------------------ */

/* Appends event `ev` (borrowed) to open request `r` in the sink's encoding. Returns 0 or
 * SL_ENOMEM. */
int sl__http_encode(struct sl__http_sink *k, struct sl__http_req *r, const struct sl_event *ev);

/* Closes the body of `r` (the ']' of json_array). Returns 0 or SL_ENOMEM. */
int sl__http_encode_end(struct sl__http_sink *k, struct sl__http_req *r);

/* Appends to `r` one event encoded for another request: `n` bytes at `s` (borrowed) as
 * sl__http_encode wrote them there (json_array: its leading '[' or ',' is replaced by
 * r's own). Returns 0 or SL_ENOMEM. */
int sl__http_encode_bytes(struct sl__http_sink *k, struct sl__http_req *r, const char *s, size_t n);

/* Renders the URI of `ev` into k->scratch; returns its length, or SIZE_MAX when a {{ }} was
 * null (a missing field) or memory ran out (`*nomem` set). */
size_t sl__http_render_uri(struct sl__http_sink *k, struct sl_event *ev, bool *nomem);

/* ---- sink_request.c ----------------------------------------------------------------- */

/* Sends sealed request `r` (compressing it first when asked): a permit, a connection,
 * the request. Its end settles its parts, retries it, or hands it to on_error. */
void sl__http_send(struct sl__http_req *r);

/* Frees `r` and what it owns (unlinked from the sink; its parts are not settled). */
void sl__http_req_free(struct sl__http_req *r);

/* Makes the connection slots (max_in_flight + 1) and, when a host may be a name, the
 * resolver. Returns 0 or SL_ENOMEM with `err`. At start. */
int sl__http_conns_start(struct sl__http_sink *k, struct sl_error *err);

/* Frees every connection and the resolver. Loop thread; at close. */
void sl__http_conns_free(struct sl__http_sink *k);

/* Settles request `r`'s parts (its events are delivered or handled), acknowledging the
 * jobs that are complete, and frees it (sink.c). */
void sl__http_req_done(struct sl__http_req *r);

/* Fails the stage for good with the formatted reason: the runtime stops the run at its
 * next turn; what is not acknowledged is left for a restart (sink.c). */
void sl__http_broken(struct sl__http_sink *k, const char *fmt, ...) SL_PRINTF(2, 3);

/* The runtime may send more (a request finished or stopped retrying): wakes it when
 * write() had answered SL_PENDING (sink.c). */
void sl__http_room(struct sl__http_sink *k);

#endif
