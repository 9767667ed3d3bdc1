/* A test HTTP server for the http sink's tests: evhttp on a thread of its own with its own
 * event_base, on 127.0.0.1 and an ephemeral port. It records every request (method, path,
 * headers the sink sets, body, arrival time) and answers 200, or fails the first N
 * requests with a status (500, 429 with Retry-After, 400), or stalls them (no answer:
 * the client times out). It can delay its answers, and counts the most requests it held
 * at once. Everything may be called from the test's thread. */
#ifndef SLUICE_TEST_HELPERS_HTTP_SINK_H
#define SLUICE_TEST_HELPERS_HTTP_SINK_H

#include <stddef.h>
#include <stdint.h>

struct t_hsrv; /* opaque */

/* One recorded request; copied out by t_hsrv_req (free with t_hsrv_req_clear). */
struct t_hreq {
    char method[8];    /* "POST", "PUT" */
    char path[256];    /* the request target */
    char encoding[32]; /* Content-Encoding ("" when none) */
    char ctype[64];    /* Content-Type */
    char xerror[512];  /* X-Sluice-Error */
    char xuri[256];    /* X-Sluice-Uri */
    char *body;        /* owned, NUL-terminated */
    size_t len;        /* body bytes */
    int64_t at_ms;     /* arrival, CLOCK_MONOTONIC ms */
    int status;        /* what it was answered (0: stalled) */
    int peer_port;     /* the client's port: one per connection */
};

/* Starts a server; asserts success. */
struct t_hsrv *t_hsrv_start(void);

/* Its port. */
int t_hsrv_port(struct t_hsrv *s);

/* The next `n` requests are answered `status` (0: not answered at all), with
 * `Retry-After: retry_after` when retry_after >= 0; then 200 again. */
void t_hsrv_fail(struct t_hsrv *s, int n, int status, int retry_after);

/* The next requests are answered the `n` statuses of `statuses` (copied; at most 16), in
 * order, before anything t_hsrv_fail asked. */
void t_hsrv_script(struct t_hsrv *s, const int *statuses, int n);

/* Every answer waits `ms` first. */
void t_hsrv_delay(struct t_hsrv *s, int ms);

/* Requests recorded so far, and how many of them were answered 2xx. */
size_t t_hsrv_count(struct t_hsrv *s);
size_t t_hsrv_ok(struct t_hsrv *s);

/* The most requests the server held unanswered at once (delay, stall). */
int t_hsrv_max_concurrent(struct t_hsrv *s);

/* Copies request `i` into `out`. Returns 0, or -1 when there is no such request. */
int t_hsrv_req(struct t_hsrv *s, size_t i, struct t_hreq *out);
void t_hreq_clear(struct t_hreq *r);

/* Stops the thread and frees everything. NULL: no-op. */
void t_hsrv_stop(struct t_hsrv *s);

/* CLOCK_MONOTONIC in ms. */
int64_t t_mono_ms(void);

#endif
