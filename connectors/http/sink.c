/* The `http` sink: events POSTed (or PUT) to an http:// URI in batches, ndjson,
 * json_array or text, optionally gzipped, each batch of the runtime acknowledged only
 * once every one of its events is in a request answered 2xx.
 *
 * write() renders each event's URI (a template), encodes the event into the open request
 * of that URI (sink_encode.c) and seals a request that is full (batch.max_events,
 * batch.max_bytes); a timer seals those older than batch.timeout, and the end of the
 * input seals the rest. A sealed request waits for one of max_in_flight permits
 * (sl_semaphore) and goes out on a keep-alive connection of the loop (sink_request.c).
 *
 * - Connection errors, timeouts, 408, 429 and 5xx: the request is sent again after a
 *   delay of exponential backoff with full jitter (sl_backoff, the stage's retry.initial
 *   and retry.max; a Retry-After in seconds is the least wait). Meanwhile write() answers
 *   every batch SL_RETRY (sl_retry): the runtime holds it, logs and counts the retry, and
 *   the sources wait; nothing is dropped. After retry.attempts failed attempts of one
 *   request (0: no limit) the run fails, its events unacknowledged.
 * - Any other status (4xx, 3xx): the request's events go to on_error: fail (the run
 *   stops with the status and the start of the answer), drop (counted), or dead_letter
 *   (the same body to dead_letter_uri with X-Sluice-Error and X-Sluice-Uri headers).
 * - An event whose URI cannot be made (a null {{ }}, not http://) goes to on_error too.
 * Backpressure: write() takes batches while fewer than 2 x max_in_flight requests are
 * sealed and unfinished, then answers SL_PENDING until one finishes. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/builtins.h>

#include "sink.h"

/* ---- jobs and requests --------------------------------------------------------------- */

static void job_unlink(struct sl__http_sink *k, struct sl__http_job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        k->jhead = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        k->jtail = j->prev;
}

/* Counts `n` events of `j` as handled; acknowledges the job when none is left. */
static void job_settle(struct sl__http_sink *k, struct sl__http_job *j, size_t n)
{
    j->left -= n;
    if (j->left) return;
    job_unlink(k, j);
    sl_ack(j->batch); /* every event answered 2xx, or handled by on_error */
    free(j);
}

void sl__http_req_done(struct sl__http_req *r)
{
    struct sl__http_sink *k = r->k;
    for (size_t i = 0; i < r->nparts; i++) job_settle(k, r->parts[i].job, r->parts[i].n);
    if (r->state != SL__HTTP_OPEN) k->sealed--;
    sl__http_req_free(r);
    sl__http_room(k);
}

void sl__http_room(struct sl__http_sink *k)
{
    if (!k->stalled || k->sealed >= 2 * (size_t)k->max_in_flight) return;
    k->stalled = false;
    sl_stage_wake(k->stage);
}

void sl__http_broken(struct sl__http_sink *k, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!k->broken) sl_stage_error(k->stage, SL_EIO, "%s", msg);
    k->broken = true;
    sl_stage_wake(k->stage);
}

/* A new open request for `uri` (a dead letter when `dead`), or NULL with `why` filled
 * (a URI that does not parse) or SL_ENOMEM in *rc. */
static struct sl__http_req *req_open(struct sl__http_sink *k, const char *uri, size_t len,
                                     bool dead, char *why, size_t cap, int *rc)
{
    struct sl__http_req *r = calloc(1, sizeof *r);
    *rc = SL_ENOMEM;
    if (!r || !(r->uri = malloc(len + 1))) {
        free(r);
        return NULL;
    }
    memcpy(r->uri, uri, len);
    r->uri[len] = '\0';
    r->uri_len = len;
    r->k = k;
    r->dead = dead;
    r->neterr = -1;
    if (!dead && (*rc = sl__http_uri_parse(uri, len, &r->target, why, cap))) {
        free(r->uri);
        free(r);
        return NULL;
    }
    r->next = k->rhead;
    if (k->rhead) k->rhead->prev = r;
    k->rhead = r;
    r->opened_ms = sl_stage_now_ms(k->stage);
    return r;
}

/* Closes open request `i` and sends it. */
static void seal(struct sl__http_sink *k, size_t i)
{
    struct sl__http_req *r = k->open[i];
    memmove(&k->open[i], &k->open[i + 1], (k->nopen - i - 1) * sizeof k->open[0]);
    k->nopen--;
    if (sl__http_encode_end(k, r)) {
        sl__http_broken(k, "out of memory");
        return;
    }
    r->state = SL__HTTP_SEALED;
    r->raw_len = r->len;
    k->sealed++;
    sl__http_send(r);
}

/* Seals the open requests opened at least batch.timeout ago (all with `all`), and arms
 * the timer for the next one. */
static void seal_due(struct sl__http_sink *k, bool all)
{
    int64_t now = sl_stage_now_ms(k->stage), next = INT64_MAX;
    for (size_t i = 0; i < k->nopen;) {
        int64_t due = k->open[i]->opened_ms + k->timeout_batch_ms;
        if (all || due <= now) {
            seal(k, i);
        } else {
            if (due < next) next = due;
            i++;
        }
    }
    if (next != INT64_MAX) sl_timer_start(k->batch_timer, next - now, false);
}

static void batch_due(struct sl_stage *stage, void *arg)
{
    (void)stage;
    seal_due(arg, false);
}

/* The open request for `uri`, made when there is none. */
static struct sl__http_req *bucket(struct sl__http_sink *k, const char *uri, size_t len, bool dead,
                                   char *why, size_t cap, int *rc)
{
    for (size_t i = 0; i < k->nopen; i++) {
        struct sl__http_req *r = k->open[i];
        if (r->dead == dead && r->uri_len == len && memcmp(r->uri, uri, len) == 0) return r;
    }
    if (k->nopen == SL__HTTP_BUCKETS) seal(k, 0); /* the oldest goes now */
    struct sl__http_req *r = req_open(k, uri, len, dead, why, cap, rc);
    if (r) k->open[k->nopen++] = r;
    if (r && k->nopen == 1) sl_timer_start(k->batch_timer, k->timeout_batch_ms, false);
    return r;
}

/* Seals `r` if it is still open. */
static void seal_req(struct sl__http_sink *k, struct sl__http_req *r)
{
    for (size_t i = 0; i < k->nopen; i++)
        if (k->open[i] == r) {
            seal(k, i);
            return;
        }
}

/* Counts one more event of job `j` in `r`. Returns 0 or SL_ENOMEM. */
static int add_part(struct sl__http_req *r, struct sl__http_job *j)
{
    if (!r->nparts || r->parts[r->nparts - 1].job != j) {
        if (r->nparts == r->partcap) {
            size_t cap = r->partcap ? 2 * r->partcap : 4;
            struct sl__http_part *p = realloc(r->parts, cap * sizeof *p);
            if (!p) return SL_ENOMEM;
            r->parts = p, r->partcap = cap;
        }
        r->parts[r->nparts++] = (struct sl__http_part){.job = j, .n = 0};
    }
    r->parts[r->nparts - 1].n++;
    return 0;
}

/* The last event of *rp (of job `j`, its bytes from `at` on) took the body past
 * batch.max_bytes: *rp is sealed without it and the event starts the next request of the
 * same URI, which replaces *rp. Encoding first and moving the bytes of the one event that
 * overflows costs less than sizing every event before encoding it. Returns 0 or
 * SL_ENOMEM. */
static int spill(struct sl__http_sink *k, struct sl__http_req **rp, struct sl__http_job *j,
                 size_t at)
{
    struct sl__http_req *full = *rp, *r;
    size_t n = full->len - at;
    char *tail = malloc(n), why[8];
    if (!tail) return SL_ENOMEM;
    memcpy(tail, full->body + at, n);
    full->len = at;
    full->events--;
    if (--full->parts[full->nparts - 1].n == 0) full->nparts--;
    seal_req(k, full); /* sends it: nothing of it is freed before a later turn of the loop */
    int rc;
    r = bucket(k, full->uri, full->uri_len, full->dead, why, sizeof why, &rc);
    rc = r ? sl__http_encode_bytes(k, r, tail, n) : SL_ENOMEM;
    if (!rc) rc = add_part(r, j);
    if (!rc && r->dead) memcpy(r->reason, full->reason, sizeof r->reason);
    free(tail);
    *rp = r;
    return rc;
}

/* Adds event `ev` of job `j` to open request `r`, sealing what is full. Returns 0 or
 * SL_ENOMEM. */
static int put(struct sl__http_sink *k, struct sl__http_req *r, struct sl__http_job *j,
               const struct sl_event *ev)
{
    size_t at = r->len, had = r->events;
    if (add_part(r, j) || sl__http_encode(k, r, ev)) return SL_ENOMEM;
    if (had && r->len > k->max_bytes && spill(k, &r, j, at)) return SL_ENOMEM;
    if (r->events >= (size_t)k->max_events || r->len >= k->max_bytes) seal_req(k, r);
    return 0;
}

/* An event that cannot be sent (`why`): on_error. Returns 0, SL_ENOMEM or SL_EIO. */
static int refuse(struct sl__http_sink *k, struct sl__http_job *j, const struct sl_event *ev,
                  const char *why)
{
    sl_stage_count_errors(k->stage, 1);
    if (k->on_error == SL__HTTP_FAIL) {
        sl__http_broken(k, "%s (on_error: fail)", why);
        return SL_EIO;
    }
    if (k->on_error == SL__HTTP_DROP) {
        sl_stage_count_dropped(k->stage, 1);
        sl_counter_add(k->c_dropped, 1);
        j->left--;
        return 0;
    }
    int rc;
    char none[8];
    const char *dl = k->dead_letter_uri;
    struct sl__http_req *r = bucket(k, dl, strlen(dl), true, none, sizeof none, &rc);
    if (!r) return SL_ENOMEM;
    snprintf(r->reason, sizeof r->reason, "%s", why);
    return put(k, r, j, ev);
}

/* Routes event `ev` of job `j` to the open request of its URI. */
static int route(struct sl__http_sink *k, struct sl__http_job *j, struct sl_event *ev)
{
    bool nomem = false; /* a constant URI was rendered into the scratch at init, for good */
    size_t n = k->uri_constant ? k->const_len : sl__http_render_uri(k, ev, &nomem);
    if (nomem) return SL_ENOMEM;
    char why[600];
    if (n == SIZE_MAX) {
        k->null_uris++;
        return refuse(k, j, ev, "the uri template has a null {{ }} for this event");
    }
    int rc;
    char bad[128];
    struct sl__http_req *r = bucket(k, k->scratch, n, false, bad, sizeof bad, &rc);
    if (!r && rc == SL_ENOMEM) return rc;
    if (!r) {
        snprintf(why, sizeof why, "uri '%.256s': %s", k->scratch, bad);
        return refuse(k, j, ev, why);
    }
    k->routed++;
    return put(k, r, j, ev);
}

/* ---- the stage ----------------------------------------------------------------------- */

static enum sl_poll sink_write(struct sl_stage *stage, struct sl_batch *b)
{
    struct sl__http_sink *k = sl_stage_state(stage);
    if (k->broken) return SL_ERROR; /* the reason is set; the runtime keeps the batch */
    if (k->backing_off) return sl_retry(stage, "%s", k->why);
    struct sl__http_job *j = calloc(1, sizeof *j);
    if (!j) return sl_stage_error(stage, SL_ENOMEM, "out of memory"), SL_ERROR;
    j->batch = b;
    j->left = sl_batch_count(b) + 1; /* + 1: not acknowledged while being routed */
    j->prev = k->jtail; /* taken: from here on the sink holds it (close() releases it) */
    if (k->jtail)
        k->jtail->next = j;
    else
        k->jhead = j;
    k->jtail = j;
    for (size_t i = 0; i < sl_batch_count(b) && !k->broken; i++) {
        int rc = route(k, j, sl_batch_event(b, i));
        if (rc == SL_ENOMEM) sl__http_broken(k, "out of memory");
    }
    job_settle(k, j, 1);
    if (k->broken) return SL_PENDING; /* the runtime fails the run next */
    if (k->timeout_batch_ms == 0) seal_due(k, true);
    if (k->sealed < 2 * (size_t)k->max_in_flight) return SL_READY;
    k->stalled = true;
    return SL_PENDING;
}

/* The end of the input: what is open goes now; the run ends once every request is
 * answered (the runtime waits for the acknowledgements). */
static int sink_flush(struct sl_stage *stage, struct sl_emit *out, bool end)
{
    (void)out, (void)end;
    struct sl__http_sink *k = sl_stage_state(stage);
    seal_due(k, true);
    if (k->null_uris && !k->routed && k->on_error == SL__HTTP_DROP)
        return sl_stage_error(stage, SL_EINVAL,
                              "no event was sent: the uri of each of the %llu events had a null "
                              "{{ }} (a field none of them has: a typo in the template?)",
                              (unsigned long long)k->null_uris);
    return 0;
}

/* ---- configuration ------------------------------------------------------------------- */

static int sink_init(struct sl_stage *stage, const struct sl_config *cfg, struct sl_error *err)
{
    struct sl__http_sink *k = sl_stage_state(stage);
    k->stage = stage;
    int rc = sl__http_sink_config(k, cfg, err);
    struct {
        struct sl_counter **c;
        const char *name, *help;
    } cs[] = {
        {&k->c_requests, "http_requests", "http sink: requests sent (retries included)"},
        {&k->c_2xx, "http_responses_2xx",
         "http sink: responses 200-299 (the events are acknowledged)"},
        {&k->c_3xx, "http_responses_3xx", "http sink: responses 100-199 and 300-399 (on_error)"},
        {&k->c_4xx, "http_responses_4xx",
         "http sink: responses 400-499 (408 and 429 retried, others on_error)"},
        {&k->c_5xx, "http_responses_5xx", "http sink: responses 500-599 (retried)"},
        {&k->c_neterr, "http_request_errors",
         "http sink: requests without a response: connection, timeout"},
        {&k->c_retries, "http_retries", "http sink: requests sent again after a backoff"},
        {&k->c_bytes, "http_bytes_sent",
         "http sink: request body bytes sent (compressed when gzip)"},
        {&k->c_raw, "http_bytes_uncompressed", "http sink: request body bytes before compression"},
        {&k->c_dropped, "http_events_dropped", "http sink: events dropped by on_error: drop"},
        {&k->c_dead, "http_dead_letters", "http sink: dead-letter requests answered 2xx"},
    };
    for (size_t i = 0; !rc && i < sizeof cs / sizeof cs[0]; i++)
        if (!(*cs[i].c = sl_stage_counter(stage, cs[i].name, cs[i].help)))
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
    return rc;
}

static int sink_start(struct sl_stage *stage, struct sl_error *err)
{
    struct sl__http_sink *k = sl_stage_state(stage);
    if (!k->max_events) k->max_events = sl_stage_batch_max_events(stage);
    if (k->timeout_batch_ms < 0) k->timeout_batch_ms = sl_stage_batch_timeout_ms(stage);
    k->sem = sl_semaphore_new((unsigned)k->max_in_flight);
    k->batch_timer = sl_timer_new(stage, batch_due, k);
    if (!k->sem || !k->batch_timer) return sl_error_set(err, SL_ENOMEM, "out of memory");
    return sl__http_conns_start(k, err);
}

static void sink_close(struct sl_stage *stage)
{
    struct sl__http_sink *k = sl_stage_state(stage);
    sl__http_conns_free(k); /* first: their requests reference the bodies */
    while (k->rhead) sl__http_req_free(k->rhead);
    k->nopen = 0;
    while (k->jhead) { /* released unacknowledged: a restart sends them again */
        struct sl__http_job *j = k->jhead;
        job_unlink(k, j);
        sl_batch_unref(j->batch);
        free(j);
    }
    sl_timer_free(k->batch_timer);
    sl_semaphore_free(k->sem);
    free(k->conns);
    free(k->hdr_names), free(k->hdr_values);
    free(k->scratch);
    sl__http_uri_clear(&k->dl);
}

/* ---- the type ------------------------------------------------------------------------ */

#define OPT(field) offsetof(struct sl__http_sink, field)

static const struct sl_option http_sink_options[] = {
    {"uri", SL_OPT_TEMPLATE, NULL, SL_REQUIRED, OPT(uri),
     "where to send, http:// only (TLS: a proxy), a template: http://host/{{ service }}"},
    {"method", SL_OPT_ENUM, "POST", 0, OPT(method), "the request method", "POST|PUT"},
    {"headers", SL_OPT_MAP, NULL, 0, OPT(headers), "extra request headers, name: value"},
    {"encoding", SL_OPT_ENUM, "ndjson", 0, OPT(encoding),
     "the body: ndjson (a JSON object per line), json_array ([obj,...]) or text (payloads, "
     "a line each)",
     "ndjson|json_array|text"},
    {"batch.max_events", SL_OPT_INT, NULL, 0, OPT(max_events),
     "events per request at most (default: the pipeline's batch.max_events)", NULL, "1..10000000"},
    {"batch.max_bytes", SL_OPT_SIZE, "1MiB", 0, OPT(max_bytes),
     "body bytes (before compression) per request at most; a bigger event goes alone", NULL, "1.."},
    {"batch.timeout", SL_OPT_DURATION, NULL, 0, OPT(timeout_batch_ms),
     "how long a request may wait for more events after its first (default: the pipeline's "
     "batch.timeout; 0: each write sends what it got)",
     NULL, "0.."},
    {"compression", SL_OPT_ENUM, "none", 0, OPT(compression),
     "none, or gzip (Content-Encoding: gzip; compressed on an executor thread)", "none|gzip"},
    {"compression_level", SL_OPT_INT, "6", 0, OPT(level), "gzip level, 1 (fast) to 9 (small)", NULL,
     "1..9"},
    {"max_in_flight", SL_OPT_INT, "4", 0, OPT(max_in_flight),
     "requests on the wire at once (each on its own keep-alive connection)", NULL, "1..1024"},
    {"timeout", SL_OPT_DURATION, "30s", 0, OPT(timeout_ms),
     "a request without progress this long fails (and is retried)", NULL, "1ms.."},
    {"on_error", SL_OPT_ENUM, "fail", 0, OPT(on_error),
     "a request refused for good (4xx but 408/429, 3xx) or an event without a URI: fail (stop "
     "the run), drop (counted) or dead_letter (to dead_letter_uri)",
     "fail|drop|dead_letter"},
    {"dead_letter_uri", SL_OPT_STRING, NULL, 0, OPT(dead_letter_uri),
     "on_error dead_letter: where refused bodies go, with headers X-Sluice-Error and "
     "X-Sluice-Uri"},
    {0},
};

const struct sl_stage_type sl_stage_http_sink = {
    .abi = SL_STAGE_ABI,
    .name = "http",
    .kind = SL_SINK,
    .doc = "sends events in batched HTTP requests, retried with backoff, acked after a 2xx",
    .state_size = sizeof(struct sl__http_sink),
    .options = http_sink_options,
    .init = sink_init,
    .start = sink_start,
    .write = sink_write,
    .flush = sink_flush,
    .close = sink_close,
};
