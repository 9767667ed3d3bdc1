/* The http sink against a test HTTP server (helpers_http_sink.c: evhttp on its own thread
 * and event_base, 127.0.0.1, an ephemeral port): bodies by encoding, gzip, batching by
 * events and bytes, retries of 500, 429 (Retry-After), timeouts with backoff inside its
 * full-jitter bounds, 400 to on_error, max_in_flight, URI templates; every event
 * delivered once and acknowledged only after its request was answered 2xx. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <sluice/builtins.h>

#include "../connectors/http/gzip.h"
#include "../connectors/http/uri.h"
#include "helpers.h"
#include "helpers_file.h"
#include "helpers_http_sink.h"
#include "stage_helpers.h"

static struct sl_pipeline *p;
static struct t_hsrv *srv;

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN); /* a peer that hangs up must not kill the test */
    t_log_clear();
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.log = t_log_capture;
    struct sl_error err = {0};
    p = sl_pipeline_new(NULL, &o, &err);
    cr_assert_not_null(p, "%s", err.msg);
    srv = t_hsrv_start();
}

static void teardown(void)
{
    sl_pipeline_free(p);
    t_hsrv_stop(srv);
    t_log_clear();
}

TestSuite(http_sink, .init = setup, .fini = teardown, .timeout = 30);

/* The sink's options: uri http://127.0.0.1:<port><path> then `yaml`. */
static char *opts(const char *path, const char *yaml)
{
    static char buf[2048];
    snprintf(buf, sizeof buf, "uri: 'http://127.0.0.1:%d%s'\n%s", t_hsrv_port(srv), path, yaml);
    return buf;
}

/* counter(count, batch) -> out (http, yaml); returns the sink. */
static struct sl_stage *counter_to_http(int count, int batch, const char *path, const char *yaml)
{
    char o[64];
    snprintf(o, sizeof o, "count: %d\nbatch: %d", count, batch);
    struct sl_stage *src = t_add(p, "src", &t_counter, o);
    struct sl_stage *out = t_add(p, "out", &sl_stage_http_sink, opts(path, yaml));
    t_connect(p, src, out);
    return out;
}

static void run_ok(void)
{
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "%s (%s)\n%s", err.msg, err.stage, t_log_text);
    cr_assert_eq(sl_pipeline_live_batches(p), 0);
}

static struct t_hreq req_at(size_t i)
{
    struct t_hreq r;
    cr_assert_eq(t_hsrv_req(srv, i, &r), 0, "no request %zu", i);
    return r;
}

/* The number of the first "n": in a body (-1 when none). */
static int first_n(const struct t_hreq *r)
{
    const char *q = strstr(r->body, "\"n\":");
    return q ? atoi(q + 4) : -1;
}

static int by_first_n(const void *a, const void *b)
{
    return first_n(a) - first_n(b);
}

/* The n recorded requests ordered by their first event: with max_in_flight > 1 the
 * requests travel on several connections, and the server may read them in any order. */
static struct t_hreq *reqs_by_first_event(size_t n)
{
    cr_assert_eq(t_hsrv_count(srv), n);
    struct t_hreq *r = calloc(n, sizeof *r);
    for (size_t i = 0; i < n; i++) r[i] = req_at(i);
    qsort(r, n, sizeof *r, by_first_n);
    return r;
}

static void reqs_free(struct t_hreq *r, size_t n)
{
    for (size_t i = 0; i < n; i++) t_hreq_clear(&r[i]);
    free(r);
}

/* The ndjson lines of numbers [from, to) as the counter's events write them. */
static char *ndjson(int from, int to)
{
    size_t cap = (size_t)(to - from) * 40 + 1, len = 0;
    char *s = malloc(cap);
    s[0] = '\0';
    for (int i = from; i < to; i++)
        len += (size_t)snprintf(s + len, cap - len, "{\"message\":\"%d\",\"n\":%d}\n", i, i);
    return s;
}

/* Marks in `seen` every "n": of the bodies answered 2xx; returns how many. */
static int delivered(int *seen, int count)
{
    int total = 0;
    for (size_t i = 0; i < t_hsrv_count(srv); i++) {
        struct t_hreq r = req_at(i);
        for (const char *q = r.body; r.status == 200 && (q = strstr(q, "\"n\":")); q += 4) {
            int n = atoi(q + 4);
            cr_assert(n >= 0 && n < count, "number %d", n);
            seen[n]++;
            total++;
        }
        t_hreq_clear(&r);
    }
    return total;
}

static void each_once(int count)
{
    int *seen = calloc((size_t)count, sizeof *seen);
    cr_assert_eq(delivered(seen, count), count);
    for (int i = 0; i < count; i++)
        cr_assert_eq(seen[i], 1, "event %d delivered %d times", i, seen[i]);
    free(seen);
}

/* The sink's counter `name`. */
struct one_counter {
    const char *name;
    uint64_t v;
};

static void find_counter(void *arg, const char *name, const char *help, uint64_t v)
{
    (void)help;
    struct one_counter *q = arg;
    if (!strcmp(name, q->name)) q->v = v;
}

static uint64_t counter(struct sl_stage *s, const char *name)
{
    struct one_counter q = {name, UINT64_MAX};
    sl_stage_counters(s, find_counter, &q);
    cr_assert_neq(q.v, UINT64_MAX, "no counter %s", name);
    return q.v;
}

/* ---- bodies -------------------------------------------------------------------------- */

Test(http_sink, ndjson_body_is_each_events_json_form_on_a_line)
{
    struct sl_stage *out = counter_to_http(3, 3, "/in?x=1", "batch.max_events: 10\n");
    run_ok();
    cr_assert_eq(t_hsrv_count(srv), 1);
    struct t_hreq r = req_at(0);
    cr_assert_str_eq(r.method, "POST");
    cr_assert_str_eq(r.path, "/in?x=1");
    cr_assert_str_eq(r.ctype, "application/x-ndjson");
    cr_assert_str_eq(r.encoding, "");
    cr_assert_str_eq(r.body, "{\"message\":\"0\",\"n\":0}\n{\"message\":\"1\",\"n\":1}\n"
                             "{\"message\":\"2\",\"n\":2}\n");
    t_hreq_clear(&r);
    cr_assert_eq(t_stats(out).acked, 3);
    cr_assert_eq(counter(out, "http_requests"), 1);
    cr_assert_eq(counter(out, "http_responses_2xx"), 1);
    cr_assert_eq(counter(out, "http_bytes_sent"), 66);
}

Test(http_sink, json_array_body_is_one_array_and_put_is_the_method)
{
    counter_to_http(3, 3, "/arr", "encoding: json_array\nmethod: PUT\n");
    run_ok();
    cr_assert_eq(t_hsrv_count(srv), 1);
    struct t_hreq r = req_at(0);
    cr_assert_str_eq(r.method, "PUT");
    cr_assert_str_eq(r.ctype, "application/json");
    cr_assert_str_eq(r.body, "[{\"message\":\"0\",\"n\":0},{\"message\":\"1\",\"n\":1},"
                             "{\"message\":\"2\",\"n\":2}]");
    t_hreq_clear(&r);
}

Test(http_sink, text_body_is_the_payloads_a_line_each_with_the_users_headers)
{
    counter_to_http(4, 4, "/t", "encoding: text\nheaders: {Content-Type: text/x-log}\n");
    run_ok();
    cr_assert_eq(t_hsrv_count(srv), 1);
    struct t_hreq r = req_at(0);
    cr_assert_str_eq(r.ctype, "text/x-log");
    cr_assert_str_eq(r.body, "0\n1\n2\n3\n");
    t_hreq_clear(&r);
}

Test(http_sink, gzip_body_inflates_to_the_exact_ndjson)
{
    struct sl_stage *out = counter_to_http(1000, 100, "/gz",
                                           "compression: gzip\nbatch.max_events: 1000\n"
                                           "batch.timeout: 10s\n");
    run_ok();
    cr_assert_eq(t_hsrv_count(srv), 1);
    struct t_hreq r = req_at(0);
    cr_assert_str_eq(r.encoding, "gzip");
    char *plain;
    size_t n;
    cr_assert_eq(sl__http_gunzip(r.body, r.len, 1 << 24, &plain, &n), 0);
    char *want = ndjson(0, 1000);
    cr_assert_eq(n, strlen(want));
    cr_assert_str_eq(plain, want);
    cr_assert_lt(r.len, n / 3, "gzip made %zu bytes of %zu", r.len, n);
    cr_assert_eq(counter(out, "http_bytes_sent"), r.len);
    cr_assert_eq(counter(out, "http_bytes_uncompressed"), n);
    free(plain), free(want);
    t_hreq_clear(&r);
}

/* ---- batching ------------------------------------------------------------------------ */

Test(http_sink, batches_of_64_events_make_16_requests_of_1000_events_on_kept_connections)
{
    struct sl_stage *out =
        counter_to_http(1000, 100, "/b", "batch.max_events: 64\nbatch.timeout: 10s\n");
    run_ok();
    struct t_hreq *r = reqs_by_first_event(16);
    int ports[16],
        nports = 0; /* keep-alive: 16 requests on at most max_in_flight (4) connections */
    for (size_t i = 0; i < 16; i++) {
        char *want = ndjson(64 * (int)i, i == 15 ? 1000 : 64 * ((int)i + 1));
        cr_assert_str_eq(r[i].body, want, "request %zu", i);
        free(want);
        int k = 0;
        while (k < nports && ports[k] != r[i].peer_port) k++;
        if (k == nports) ports[nports++] = r[i].peer_port;
    }
    reqs_free(r, 16);
    cr_assert_eq(t_stats(out).acked, 1000);
    cr_assert_leq(nports, 4, "%d connections", nports);
    cr_assert_eq(t_stats(sl_pipeline_find(p, "src")).acked, 1000);
}

Test(http_sink, batches_of_95_bytes_hold_9_lines_of_10_bytes)
{
    const char *lines[101];
    for (int i = 0; i < 100; i++) lines[i] = "abcdefghi";
    lines[100] = NULL;
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *out = t_add(p, "out", &sl_stage_http_sink,
                                 opts("/bytes", "encoding: text\nbatch.max_bytes: 95\n"
                                                "batch.timeout: 10s\n"));
    t_connect(p, src, out);
    run_ok();
    cr_assert_eq(t_hsrv_count(srv), 12); /* 11 x 9 lines, then the last one (in any order) */
    size_t of_90 = 0, of_10 = 0;
    for (size_t i = 0; i < 12; i++) {
        struct t_hreq r = req_at(i);
        of_90 += r.len == 90, of_10 += r.len == 10;
        t_hreq_clear(&r);
    }
    cr_assert_eq(of_90, 11);
    cr_assert_eq(of_10, 1);
    cr_assert_eq(t_stats(out).acked, 100);
}

Test(http_sink, a_json_array_cut_by_bytes_is_a_whole_array_in_each_request)
{
    /* {"message":"N","n":N} is 21 bytes (one digit) or 23: a fifth event passes 100 bytes */
    counter_to_http(14, 14, "/a",
                    "encoding: json_array\nbatch.max_bytes: 100\nbatch.timeout: 10s\n");
    run_ok();
    struct t_hreq *r = reqs_by_first_event(4);
    const char *want[] = {
        "[{\"message\":\"0\",\"n\":0},{\"message\":\"1\",\"n\":1},{\"message\":\"2\",\"n\":2},"
        "{\"message\":\"3\",\"n\":3}]",
        "[{\"message\":\"4\",\"n\":4},{\"message\":\"5\",\"n\":5},{\"message\":\"6\",\"n\":6},"
        "{\"message\":\"7\",\"n\":7}]",
        "[{\"message\":\"8\",\"n\":8},{\"message\":\"9\",\"n\":9},{\"message\":\"10\",\"n\":10},"
        "{\"message\":\"11\",\"n\":11}]",
        "[{\"message\":\"12\",\"n\":12},{\"message\":\"13\",\"n\":13}]"};
    for (size_t i = 0; i < 4; i++) cr_assert_str_eq(r[i].body, want[i], "request %zu", i);
    reqs_free(r, 4);
}

/* ---- retries ------------------------------------------------------------------------- */

/* At each source acknowledgement: every event of the batch is in a body answered 2xx. */
static void acked_after_2xx(struct sl_stage *s, struct sl_batch *b)
{
    (void)s;
    int first = (int)sl_batch_cookie(b), n = (int)sl_batch_count(b);
    int *seen = calloc(100000, sizeof *seen);
    delivered(seen, 100000);
    for (int i = first; i < first + n; i++)
        cr_assert_eq(seen[i], 1, "event %d acknowledged, %d times answered 2xx", i, seen[i]);
    free(seen);
}

Test(http_sink, three_500s_then_success_deliver_every_event_once_acked_after_2xx)
{
    t_hsrv_fail(srv, 3, 500, -1);
    struct sl_stage *out = counter_to_http(500, 100, "/r",
                                           "batch.max_events: 100\nbatch.timeout: 10s\n"
                                           "retry: {initial: 10ms, max: 40ms}\n");
    struct t_counter *c = sl_stage_state(sl_pipeline_find(p, "src"));
    c->on_ack = acked_after_2xx;
    run_ok();
    each_once(500);
    cr_assert_eq(c->acked_events, 500);
    cr_assert_eq(t_hsrv_count(srv), 8);
    cr_assert_eq(counter(out, "http_responses_5xx"), 3);
    cr_assert_eq(counter(out, "http_responses_2xx"), 5);
    cr_assert_eq(counter(out, "http_retries"), 3);
    cr_assert(strstr(t_log_text, "answered 500 Test Failure: status 500"), "%s", t_log_text);
}

Test(http_sink, a_429_with_retry_after_1_waits_at_least_a_second)
{
    t_hsrv_fail(srv, 1, 429, 1);
    counter_to_http(10, 10, "/ra", "retry: {initial: 10ms, max: 20ms}\n");
    run_ok();
    each_once(10);
    cr_assert_eq(t_hsrv_count(srv), 2);
    struct t_hreq a = req_at(0), b = req_at(1);
    cr_assert_eq(a.status, 429);
    cr_assert_geq(b.at_ms - a.at_ms, 990, "retried after %lld ms", (long long)(b.at_ms - a.at_ms));
    t_hreq_clear(&a), t_hreq_clear(&b);
}

Test(http_sink, requests_that_time_out_are_sent_again)
{
    t_hsrv_fail(srv, 2, 0, -1); /* no answer twice */
    struct sl_stage *out =
        counter_to_http(50, 50, "/slow", "timeout: 200ms\nretry: {initial: 10ms, max: 20ms}\n");
    run_ok();
    each_once(50);
    cr_assert_eq(t_hsrv_count(srv), 3);
    cr_assert_eq(counter(out, "http_request_errors"), 2);
    struct t_hreq a = req_at(0), b = req_at(1);
    cr_assert_geq(b.at_ms - a.at_ms, 190, "after %lld ms", (long long)(b.at_ms - a.at_ms));
    t_hreq_clear(&a), t_hreq_clear(&b);
    cr_assert(strstr(t_log_text, "timed out"), "%s", t_log_text);
}

Test(http_sink, backoff_delays_stay_within_full_jitter_bounds_and_grow)
{
    enum { FAILS = 8 };
    t_hsrv_fail(srv, FAILS, 503, -1);
    counter_to_http(5, 5, "/jit", "retry: {initial: 20ms, max: 160ms}\n");
    run_ok();
    each_once(5);
    cr_assert_eq(t_hsrv_count(srv), FAILS + 1);
    int64_t longest_late = 0;
    for (int i = 0; i < FAILS; i++) {
        struct t_hreq a = req_at((size_t)i), b = req_at((size_t)i + 1);
        int64_t gap = b.at_ms - a.at_ms, ceiling = 20 << i > 160 ? 160 : 20 << i;
        cr_assert_leq(gap, ceiling + 100, "attempt %d waited %lld ms (ceiling %lld)", i + 1,
                      (long long)gap, (long long)ceiling);
        if (i >= 3 && gap > longest_late) longest_late = gap;
        t_hreq_clear(&a), t_hreq_clear(&b);
    }
    /* Five draws in [0, 160]: all of them under 20 ms has odds of 3e-5. */
    cr_assert_gt(longest_late, 20, "the ceilings grew, the delays did not");
}

/* A port nothing listens on: bound, then closed. */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd);
    return ntohs(sa.sin_port);
}

Test(http_sink, a_refused_connection_is_retried_until_retry_attempts_then_the_run_fails)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 10\nbatch: 10");
    char o[160];
    snprintf(o, sizeof o,
             "uri: http://127.0.0.1:%d/x\nretry: {initial: 5ms, max: 10ms, attempts: 3}\n",
             dead_port());
    struct sl_stage *out = t_add(p, "out", &sl_stage_http_sink, o);
    t_connect(p, src, out);
    struct sl_error err = {0};
    cr_assert_neq(sl_pipeline_run(p, &err), 0);
    cr_assert(strstr(err.msg, "gave up after 3 attempts: POST http://127.0.0.1:"), "%s", err.msg);
    cr_assert(strstr(err.msg, "/x: cannot connect, or no response; its 10 events are not "
                              "acknowledged"),
              "%s", err.msg);
    cr_assert_eq(counter(out, "http_request_errors"), 3);
    cr_assert_eq(t_stats(src).acked, 0);
}

/* ---- refusals ------------------------------------------------------------------------ */

Test(http_sink, a_400_sends_the_events_to_the_dead_letter_uri)
{
    t_hsrv_fail(srv, 1, 400, -1);
    char dl[128];
    snprintf(dl, sizeof dl,
             "on_error: dead_letter\ndead_letter_uri: http://127.0.0.1:%d/dead\n"
             "batch.max_events: 5\nbatch.timeout: 10s\n",
             t_hsrv_port(srv));
    struct sl_stage *out = counter_to_http(10, 10, "/in", dl);
    run_ok();
    cr_assert_eq(t_hsrv_count(srv), 3);
    struct t_hreq bad = req_at(0), dead = req_at(1), good = req_at(2);
    if (strcmp(dead.path, "/dead")) { /* the second /in request went before the dead letter */
        struct t_hreq t = dead;
        dead = good, good = t;
    }
    cr_assert_str_eq(bad.path, "/in");
    cr_assert_eq(bad.status, 400);
    cr_assert_str_eq(dead.path, "/dead");
    cr_assert_str_eq(dead.body, bad.body);
    char uri[64];
    snprintf(uri, sizeof uri, "http://127.0.0.1:%d/in", t_hsrv_port(srv));
    cr_assert_str_eq(dead.xuri, uri);
    cr_assert(strstr(dead.xerror, "answered 400"), "%s", dead.xerror);
    cr_assert_str_eq(good.path, "/in");
    t_hreq_clear(&bad), t_hreq_clear(&dead), t_hreq_clear(&good);
    each_once(10);
    cr_assert_eq(t_stats(sl_pipeline_find(p, "src")).acked, 10);
    cr_assert_eq(t_stats(out).errors, 5);
    cr_assert_eq(counter(out, "http_dead_letters"), 1);
}

Test(http_sink, a_dead_letter_answered_500_is_retried_and_keeps_its_reason)
{
    const int script[] = {400, 500};
    t_hsrv_script(srv, script, 2);
    char dl[160];
    snprintf(dl, sizeof dl,
             "on_error: dead_letter\ndead_letter_uri: http://127.0.0.1:%d/dead\n"
             "retry: {initial: 10ms, max: 20ms}\n",
             t_hsrv_port(srv));
    counter_to_http(5, 5, "/in", dl);
    run_ok();
    cr_assert_eq(t_hsrv_count(srv), 3);
    struct t_hreq a = req_at(1), b = req_at(2);
    cr_assert_str_eq(a.path, "/dead");
    cr_assert_eq(a.status, 500);
    cr_assert_str_eq(b.path, "/dead");
    cr_assert_eq(b.status, 200);
    cr_assert_str_eq(b.xerror, a.xerror);
    cr_assert(strstr(b.xerror, "/in answered 400 Test Failure: status 400"), "%s", b.xerror);
    t_hreq_clear(&a), t_hreq_clear(&b);
    cr_assert_eq(t_stats(sl_pipeline_find(p, "src")).acked, 5);
}

Test(http_sink, a_400_with_on_error_fail_fails_the_run_naming_the_status)
{
    t_hsrv_fail(srv, 1, 400, -1);
    counter_to_http(10, 10, "/in", "");
    struct sl_error err = {0};
    cr_assert_neq(sl_pipeline_run(p, &err), 0);
    cr_assert_str_eq(err.stage, "out");
    cr_assert(strstr(err.msg, "answered 400 Test Failure: status 400; its 10 events are not "
                              "acknowledged (on_error: fail)"),
              "%s", err.msg);
    cr_assert_eq(t_stats(sl_pipeline_find(p, "src")).acked, 0);
}

Test(http_sink, a_400_with_on_error_drop_counts_the_events_dropped)
{
    t_hsrv_fail(srv, 1, 400, -1);
    struct sl_stage *out = counter_to_http(10, 10, "/in", "on_error: drop\n");
    run_ok();
    cr_assert_eq(t_stats(out).dropped, 10);
    cr_assert_eq(counter(out, "http_events_dropped"), 10);
    cr_assert_eq(t_stats(sl_pipeline_find(p, "src")).acked, 10);
}

/* ---- concurrency and routing --------------------------------------------------------- */

Test(http_sink, max_in_flight_3_keeps_at_most_3_requests_at_the_server)
{
    t_hsrv_delay(srv, 30);
    counter_to_http(2000, 100, "/c",
                    "max_in_flight: 3\nbatch.max_events: 50\nbatch.timeout: 10s\n");
    run_ok();
    each_once(2000);
    cr_assert_eq(t_hsrv_count(srv), 40);
    cr_assert_eq(t_hsrv_max_concurrent(srv), 3);
}

Test(http_sink, a_uri_template_sends_events_of_different_uris_in_different_requests)
{
    counter_to_http(100, 100, "/p{{ n % 2 }}?n={{ n % 2 }}", "batch.timeout: 10s\n");
    run_ok();
    cr_assert_eq(t_hsrv_count(srv), 2);
    for (size_t i = 0; i < 2; i++) {
        struct t_hreq r = req_at(i);
        int parity = !strcmp(r.path, "/p1?n=1");
        cr_assert(parity || !strcmp(r.path, "/p0?n=0"), "%s", r.path);
        int lines = 0;
        for (const char *q = r.body; (q = strstr(q, "\"n\":")); q += 4, lines++)
            cr_assert_eq(atoi(q + 4) % 2, parity, "%s got %d", r.path, atoi(q + 4));
        cr_assert_eq(lines, 50);
        t_hreq_clear(&r);
    }
    each_once(100);
}

Test(http_sink, a_host_name_is_resolved_on_the_loop)
{
    struct sl_stage *src = t_add(p, "src", &t_counter, "count: 20\nbatch: 10");
    char o[128];
    snprintf(o, sizeof o, "uri: http://localhost:%d/named\n", t_hsrv_port(srv));
    struct sl_stage *out = t_add(p, "out", &sl_stage_http_sink, o);
    t_connect(p, src, out);
    run_ok();
    each_once(20);
}

Test(http_sink, events_whose_uri_has_a_null_field_go_to_the_dead_letter_uri)
{
    char dl[160];
    snprintf(dl, sizeof dl,
             "on_error: dead_letter\ndead_letter_uri: http://127.0.0.1:%d/dead\n"
             "batch.timeout: 10s\n",
             t_hsrv_port(srv));
    struct sl_stage *out = counter_to_http(10, 10, "/{{ nope }}", dl);
    run_ok();
    cr_assert_eq(t_hsrv_count(srv), 1);
    struct t_hreq r = req_at(0);
    cr_assert_str_eq(r.path, "/dead");
    cr_assert_str_eq(r.xerror, "the uri template has a null {{ }} for this event");
    cr_assert_str_eq(r.xuri, "");
    t_hreq_clear(&r);
    each_once(10);
    cr_assert_eq(t_stats(out).errors, 10);
}

Test(http_sink, a_run_in_which_no_event_has_a_uri_fails_rather_than_drop_them_all)
{
    counter_to_http(10, 10, "/{{ nope }}", "on_error: drop\n");
    struct sl_error err = {0};
    cr_assert_neq(sl_pipeline_run(p, &err), 0);
    cr_assert(strstr(err.msg, "no event was sent: the uri of each of the 10 events had a null"),
              "%s", err.msg);
    cr_assert_eq(t_hsrv_count(srv), 0);
}

/* ---- configuration ------------------------------------------------------------------- */

static void init_fails(const char *yaml, const char *msg)
{
    struct sl_error err = {0};
    struct sl_config *cfg = t_config(yaml);
    cr_assert_null(sl_pipeline_add(p, "out", &sl_stage_http_sink, cfg, &err), "%s", yaml);
    cr_assert(strstr(err.msg, msg), "'%s' lacks '%s'", err.msg, msg);
    sl_config_free(cfg);
}

Test(http_sink, config_mistakes_are_named)
{
    init_fails("uri: https://example.com/\n", "https is not supported: TLS is left to a proxy");
    init_fails("uri: ftp://example.com/\n", "expected an http:// URI");
    init_fails("uri: 'https://h/{{ service }}'\n", "expected an http:// URI (https: TLS is left");
    init_fails("uri: http://h/\non_error: dead_letter\n", "dead_letter needs dead_letter_uri");
    init_fails("uri: http://h/\nheaders: {Content-Length: 5}\n", "is set by the sink");
}

/* ---- stops --------------------------------------------------------------------------- */

static void abort_now(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    sl_pipeline_abort(arg);
}

Test(http_sink, an_abort_with_requests_unanswered_acknowledges_nothing_and_frees_them)
{
    t_hsrv_fail(srv, 1000, 0, -1); /* nothing is answered */
    counter_to_http(1000, 100, "/stuck", "batch.max_events: 100\nmax_in_flight: 3\n");
    struct event *ev = evtimer_new(sl_pipeline_event_base(p), abort_now, p);
    struct timeval tv = {0, 300000};
    evtimer_add(ev, &tv);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), SL_ESTOPPED, "%s", err.msg);
    event_free(ev);
    cr_assert_eq(t_hsrv_count(srv), 3, "max_in_flight requests at the server");
    cr_assert_eq(t_stats(sl_pipeline_find(p, "src")).acked, 0);
}

/* ---- backpressure -------------------------------------------------------------------- */

/* Looks at the run during an outage (at 600 and 900 ms), then ends the outage. */
struct outage {
    struct event *ev;
    int ticks;
    uint64_t made[2];  /* events the source had produced */
    uint64_t acked[2]; /* events acknowledged to it */
};

static void outage_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct outage *o = arg;
    struct sl_stage_stats st = t_stats(sl_pipeline_find(p, "src"));
    o->made[o->ticks] = st.events_out;
    o->acked[o->ticks] = st.acked;
    if (++o->ticks == 2) {
        t_hsrv_fail(srv, 0, 200, -1); /* the server is back */
        return;
    }
    struct timeval tv = {0, 300000};
    evtimer_add(o->ev, &tv);
}

Test(http_sink, an_outage_holds_the_sources_and_loses_nothing)
{
    enum { N = 200000 };
    t_hsrv_fail(srv, 1000000, 503, -1);
    struct sl_stage *out = counter_to_http(N, 100, "/o",
                                           "batch.max_events: 100\nbatch.timeout: 10s\n"
                                           "retry: {initial: 20ms, max: 50ms}\n");
    struct outage o = {0};
    o.ev = evtimer_new(sl_pipeline_event_base(p), outage_tick, &o);
    struct timeval tv = {0, 600000};
    evtimer_add(o.ev, &tv);
    run_ok();
    event_free(o.ev);
    cr_assert_eq(o.acked[0], 0);
    cr_assert_eq(o.acked[1], 0);
    cr_assert_eq(o.made[1], o.made[0], "the source went on: %llu then %llu events",
                 (unsigned long long)o.made[0], (unsigned long long)o.made[1]);
    cr_assert_lt(o.made[1], 5000, "%llu events taken during the outage",
                 (unsigned long long)o.made[1]);
    each_once(N);
    cr_assert_eq(t_stats(sl_pipeline_find(p, "src")).acked, N);
    cr_assert_gt(t_stats(out).retries, 0, "the runtime held batches (SL_RETRY)");
}

/* ---- the folder's helpers (uri.c, gzip.c) -------------------------------------------- */

static void uri_is(const char *s, const char *host, int port, const char *target,
                   const char *hostport)
{
    struct sl__http_uri u;
    char why[128];
    cr_assert_eq(sl__http_uri_parse(s, strlen(s), &u, why, sizeof why), 0, "%s: %s", s, why);
    cr_assert_str_eq(u.host, host, "%s", s);
    cr_assert_eq(u.port, port, "%s", s);
    cr_assert_str_eq(u.target, target, "%s", s);
    cr_assert_str_eq(u.hostport, hostport, "%s", s);
    sl__http_uri_clear(&u);
}

static void uri_fails(const char *s, const char *msg)
{
    struct sl__http_uri u;
    char why[128];
    cr_assert_eq(sl__http_uri_parse(s, strlen(s), &u, why, sizeof why), SL_EINVAL, "%s", s);
    cr_assert(strstr(why, msg), "%s: '%s' lacks '%s'", s, why, msg);
}

Test(http_sink, uris_split_into_host_port_target_and_host_header)
{
    uri_is("http://example.com", "example.com", 80, "/", "example.com");
    uri_is("http://example.com:8080/a/b?c=d&e", "example.com", 8080, "/a/b?c=d&e",
           "example.com:8080");
    uri_is("HTTP://[::1]:9000/x", "::1", 9000, "/x", "[::1]:9000");
    uri_fails("https://example.com/", "https is not supported");
    uri_fails("ftp://example.com/", "expected an http:// URI");
    uri_fails("http:///path", "no host");
    uri_fails("http://h:70000/", "not a valid URI");
    uri_fails("http://h:0/", "port");
    uri_fails("http://exa mple.com/", "not a valid URI");
}

Test(http_sink, gunzip_refuses_what_is_not_gzip_and_what_passes_its_limit)
{
    char *z, *out;
    size_t zn, n;
    char text[10000];
    memset(text, 'x', sizeof text);
    cr_assert_eq(sl__http_gzip(text, sizeof text, 9, &z, &zn), 0);
    cr_assert_eq(sl__http_gunzip(z, zn, sizeof text, &out, &n), 0);
    cr_assert_eq(n, sizeof text);
    cr_assert_eq(memcmp(out, text, n), 0);
    free(out);
    cr_assert_eq(sl__http_gunzip(z, zn, sizeof text - 1, &out, &n), SL_ELIMIT);
    cr_assert_eq(sl__http_gunzip(z, zn / 2, sizeof text, &out, &n), SL_EINVAL, "cut short");
    cr_assert_eq(sl__http_gunzip("not gzip", 8, 100, &out, &n), SL_EINVAL);
    free(z);
    cr_assert_eq(sl__http_gzip("", 0, 6, &z, &zn), 0);
    cr_assert_eq(sl__http_gunzip(z, zn, 0, &out, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_str_eq(out, "");
    free(out), free(z);
}
