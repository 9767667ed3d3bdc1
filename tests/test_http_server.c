/* The `http_server` source on real sockets (127.0.0.1, ephemeral ports): bodies posted
 * with curl (and a small socket client for what curl cannot do: stall, hold a request
 * open, stay idle) through a pipeline running on a thread of its own, into a file sink
 * or a sink whose acknowledgements the test holds back ("gate"). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sluice/builtins.h>
#include <sluice/sluice.h>

#include "../connectors/http/common.h"
#include "../connectors/http/server.h"
#include "helpers.h"
#include "stage_helpers.h"

TestSuite(http_server, .timeout = 30);

/* ---- the body decoder and the helpers, alone ---------------------------------------------- */

/* Decodes `body` (copied to end at a guard page) by `enc`; returns the events joined by
 * '|', or "ERR:<why>". Owned (free). */
static char *decode(enum sl__http_encoding enc, const char *body)
{
    size_t len = strlen(body);
    const char *g = t_guard_copy(body, len);
    struct sl__http_spans sp = {0};
    char why[160], *out = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&out, &size);
    if (sl__http_decode(enc, g, len, &sp, why, sizeof why)) {
        cr_assert_null(sp.v);
        fprintf(f, "ERR:%s", why);
    }
    for (size_t i = 0; i < sp.n; i++)
        fprintf(f, "%s%.*s", i ? "|" : "", (int)sp.v[i].len, g + sp.v[i].off);
    fclose(f);
    free(sp.v);
    return out;
}

static void expect_decode(enum sl__http_encoding enc, const char *body, const char *want)
{
    char *got = decode(enc, body);
    cr_assert_str_eq(got, want, "%s: got %s", body, got);
    free(got);
}

Test(http_server, bodies_decode_into_events_or_a_reason)
{
    expect_decode(SL__HTTP_NDJSON, "{\"a\":1}\r\n \n[2]\n\"s\"", "{\"a\":1}|[2]|\"s\"");
    expect_decode(SL__HTTP_NDJSON, "", "");
    expect_decode(SL__HTTP_NDJSON, "{}\n{\"a\":}\n",
                  "ERR:line 2: invalid JSON at byte 6 of the line");
    expect_decode(SL__HTTP_JSON, "{\"a\":\"}\\\"]\"}", "{\"a\":\"}\\\"]\"}");
    expect_decode(SL__HTTP_JSON, "[{\"a\":[{}]},\n{\"b\":\"[\"}]", "{\"a\":[{}]}|{\"b\":\"[\"}");
    expect_decode(SL__HTTP_JSON, "[ ]", "");
    expect_decode(SL__HTTP_JSON, "[{},[]]", "ERR:element 2 of the array is not an object");
    expect_decode(SL__HTTP_JSON, "[{},]", "ERR:invalid JSON at byte 5");
    expect_decode(SL__HTTP_JSON, "", "ERR:invalid JSON at byte 1");
    expect_decode(SL__HTTP_JSON, "12", "ERR:expected an object or an array of objects");
    expect_decode(SL__HTTP_TEXT, "a\r\n\nb", "a||b");
    expect_decode(SL__HTTP_TEXT, "a\n", "a");
    t_guard_free_all();
}

/* Every prefix of a body decodes or is refused, never read past its end (guard page). */
Test(http_server, every_prefix_of_a_body_decodes_or_is_refused)
{
    const char *body = "[{\"a\":\"x\\\"y\",\"b\":[1,{\"c\":null}]}, {\"d\":true}]";
    for (size_t n = 0; n <= strlen(body); n++) {
        char *part = strndup(body, n);
        for (int enc = SL__HTTP_NDJSON; enc <= SL__HTTP_TEXT; enc++) free(decode(enc, part));
        free(part);
    }
    char *whole = decode(SL__HTTP_JSON, body);
    cr_assert_str_eq(whole, "{\"a\":\"x\\\"y\",\"b\":[1,{\"c\":null}]}|{\"d\":true}");
    free(whole);
    t_guard_free_all();
}

Test(http_server, addresses_split_and_secrets_compare)
{
    char host[64];
    int port = -1;
    cr_assert_eq(sl__http_split_addr("127.0.0.1:8080", host, sizeof host, &port), 0);
    cr_assert_str_eq(host, "127.0.0.1");
    cr_assert_eq(port, 8080);
    cr_assert_eq(sl__http_split_addr("[::1]:0", host, sizeof host, &port), 0);
    cr_assert_str_eq(host, "::1");
    cr_assert_eq(port, 0);
    cr_assert_eq(sl__http_split_addr(":9", host, sizeof host, &port), 0);
    cr_assert_str_eq(host, "");
    const char *bad[] = {"host", "host:", "host:65536", "host:8x", "::1:80", "[::1:80", "h:-1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(sl__http_split_addr(bad[i], host, sizeof host, &port), -1, "%s", bad[i]);
    cr_assert(sl__http_secret_equal("abc", 3, "abc", 3));
    cr_assert_not(sl__http_secret_equal("abc", 3, "abd", 3));
    cr_assert_not(sl__http_secret_equal("abc", 3, "abcd", 4));
    cr_assert_not(sl__http_secret_equal("", 0, "a", 1));
    cr_assert(sl__http_secret_equal("", 0, "", 0));
}

/* ---- the gate: a sink that acknowledges only while the test lets it ---------------------- */

static atomic_bool gate_open;   /* acknowledge (held batches and new ones) */
static atomic_long gate_events; /* events received */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static char gate_text[1 << 20]; /* payloads received, one a line */
static size_t gate_len;         /* bytes in gate_text */
static char gate_origin[64];    /* the origin of the first event */

struct gate {
    struct sl_batch *held[4096]; /* batches not acknowledged yet */
    size_t n;                    /* how many */
    struct sl_timer *timer;      /* looks at gate_open */
};

static void gate_release(struct gate *g)
{
    if (!atomic_load(&gate_open)) return;
    for (size_t i = 0; i < g->n; i++) sl_ack(g->held[i]);
    g->n = 0;
}

static void gate_tick(struct sl_stage *stage, void *arg)
{
    (void)stage;
    gate_release(arg);
}

static int gate_start(struct sl_stage *stage, struct sl_error *err)
{
    struct gate *g = sl_stage_state(stage);
    g->timer = sl_timer_new(stage, gate_tick, g);
    if (!g->timer) return sl_error_set(err, SL_ENOMEM, "out of memory");
    sl_timer_start(g->timer, 2, true);
    return 0;
}

static enum sl_poll gate_write(struct sl_stage *stage, struct sl_batch *b)
{
    struct gate *g = sl_stage_state(stage);
    pthread_mutex_lock(&gate_mu);
    for (size_t i = 0; i < sl_batch_count(b); i++) {
        size_t len;
        const char *p = sl_event_payload(sl_batch_event(b, i), &len);
        if (!gate_origin[0])
            snprintf(gate_origin, sizeof gate_origin, "%s", sl_event_origin(sl_batch_event(b, i)));
        if (gate_len + len + 1 < sizeof gate_text) {
            memcpy(gate_text + gate_len, p, len);
            gate_text[gate_len + len] = '\n';
            gate_len += len + 1;
            gate_text[gate_len] = '\0';
        }
    }
    pthread_mutex_unlock(&gate_mu);
    atomic_fetch_add(&gate_events, (long)sl_batch_count(b));
    cr_assert_lt(g->n, sizeof g->held / sizeof *g->held);
    g->held[g->n++] = b;
    gate_release(g);
    return SL_READY;
}

static void gate_close(struct sl_stage *stage)
{
    struct gate *g = sl_stage_state(stage);
    for (size_t i = 0; i < g->n; i++) sl_batch_unref(g->held[i]);
    sl_timer_free(g->timer);
}

static const struct sl_stage_type gate_type = {
    .abi = SL_STAGE_ABI,
    .name = "t_gate",
    .kind = SL_SINK,
    .doc = "acknowledges while the test lets it",
    .state_size = sizeof(struct gate),
    .start = gate_start,
    .write = gate_write,
    .close = gate_close,
};

static void gate_reset(bool open)
{
    atomic_store(&gate_open, open);
    atomic_store(&gate_events, 0);
    gate_len = 0;
    gate_origin[0] = '\0';
}

/* ---- the server under test, its pipeline on a thread ------------------------------------- */

struct srv {
    struct sl_pipeline *p; /* in -> out */
    struct sl_stage *in;   /* the http_server */
    pthread_t thread;      /* runs the pipeline */
    bool joined;           /* the thread has been joined */
    int rc;                /* sl_pipeline_run's */
    int port;              /* bound port */
    char dir[64];          /* temporary directory: port, out.txt, curl's files */
};

static void *run_pipeline(void *arg)
{
    struct srv *s = arg;
    struct sl_error err = {0};
    s->rc = sl_pipeline_run(s->p, &err);
    return NULL;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void pause_ms(int ms)
{
    poll(NULL, 0, ms); /* the test's own wait between two looks */
}

/* Starts `in` (http_server with `yaml` options) -> `out` (the gate, or with `file` a file
 * sink writing payloads to dir/out.txt), batches of `batch` events at most. */
static void srv_start(struct srv *s, const char *yaml, bool file, int64_t batch,
                      int64_t shutdown_ms)
{
    s->joined = false;
    snprintf(s->dir, sizeof s->dir, "/tmp/sl_http_XXXXXX");
    cr_assert_not_null(mkdtemp(s->dir));
    struct sl_pipeline_options opts;
    sl_pipeline_options_init(&opts);
    opts.batch_max_events = batch;
    opts.shutdown_timeout_ms = shutdown_ms;
    struct sl_error err = {0};
    s->p = sl_pipeline_new(NULL, &opts, &err);
    cr_assert_not_null(s->p, "%s", err.msg);
    char text[1024], out[256];
    snprintf(text, sizeof text, "address: 127.0.0.1:0\nport_file: %s/port\n%s", s->dir,
             yaml ? yaml : "");
    s->in = t_add(s->p, "in", &sl_stage_http_server, text);
    snprintf(out, sizeof out, "path: %s/out.txt\nencoding: text\n", s->dir);
    struct sl_stage *o =
        file ? t_add(s->p, "out", &sl_stage_file_sink, out) : t_add(s->p, "out", &gate_type, NULL);
    t_connect(s->p, s->in, o);
    /* The run thread starts the pipeline (its loop thread is the one that starts it). */
    cr_assert_eq(pthread_create(&s->thread, NULL, run_pipeline, s), 0);
    char path[128];
    snprintf(path, sizeof path, "%s/port", s->dir);
    FILE *f = NULL;
    for (double end = now_s() + 10; !(f = fopen(path, "r")) && now_s() < end;) pause_ms(2);
    cr_assert_not_null(f, "no port file");
    cr_assert_eq(fscanf(f, "%d", &s->port), 1);
    fclose(f);
    cr_assert_gt(s->port, 0);
}

/* Stops the run gracefully and waits for its end; returns sl_pipeline_run's code. */
static int srv_stop(struct srv *s)
{
    sl_pipeline_stop(s->p);
    if (!s->joined) pthread_join(s->thread, NULL);
    sl_pipeline_free(s->p);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s->dir);
    cr_assert_eq(system(cmd), 0);
    return s->rc;
}

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(text, 1, len, f), len);
    fclose(f);
}

/* POSTs the file `bodyf` to `path` with curl and `args` (extra options); returns the
 * status. The answer's body is left in dir/resp, its headers in dir/hdrs. */
static int curl_post_file(struct srv *s, const char *path, const char *args, const char *bodyf)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "curl -s -o %s/resp -D %s/hdrs -w '%%{http_code}' --max-time 10 %s "
             "--data-binary @%s http://127.0.0.1:%d%s",
             s->dir, s->dir, args ? args : "", bodyf, s->port, path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    int code = -1;
    cr_assert_eq(fscanf(p, "%d", &code), 1);
    pclose(p);
    return code;
}

/* POSTs `body` as curl_post_file does. */
static int curl_post(struct srv *s, const char *path, const char *args, const char *body)
{
    char bodyf[128];
    snprintf(bodyf, sizeof bodyf, "%s/body", s->dir);
    write_file(bodyf, body, strlen(body));
    return curl_post_file(s, path, args, bodyf);
}

/* The contents of dir/name (owned). */
static char *dir_file(struct srv *s, const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", s->dir, name);
    return t_read_file(path, NULL);
}

/* ---- a socket client, for what curl cannot do -------------------------------------------- */

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void send_text(int fd, const char *text)
{
    size_t len = strlen(text);
    cr_assert_eq(send(fd, text, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Sends a POST of `body` on `fd`. */
static void send_post(int fd, const char *body)
{
    char head[256];
    snprintf(head, sizeof head, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n",
             strlen(body));
    send_text(fd, head);
    send_text(fd, body);
}

/* Waits up to `ms` for an answer on `fd`: its status, 0 when the server closed the
 * connection without one, -1 when nothing came in time. */
static int read_status(int fd, int ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, ms) != 1) return -1;
    char buf[512];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return 0;
    buf[n] = '\0';
    int code = 0;
    return sscanf(buf, "HTTP/1.1 %d", &code) == 1 ? code : 0;
}

/* ---- tests --------------------------------------------------------------------------------- */

/* The answer comes after the file sink's acknowledgement: the lines are in the file by
 * then. Batches of 4 events: the 10-event body spans three. */
Test(http_server, ndjson_bodies_reach_the_file_before_the_answer)
{
    struct srv s;
    srv_start(&s, NULL, true, 4, 5000);
    const char *one = "{\"n\":1}\n{\"n\":2}\r\n\n{\"n\":3}";
    cr_assert_eq(curl_post(&s, "/", NULL, one), 200);
    char *out = dir_file(&s, "out.txt");
    cr_assert_str_eq(out, "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
    free(out);
    out = dir_file(&s, "resp");
    cr_assert_str_eq(out, "delivered 3 events\n");
    free(out);
    char body[256] = "";
    for (int i = 4; i < 14; i++) sprintf(body + strlen(body), "{\"n\":%d}\n", i);
    cr_assert_eq(curl_post(&s, "/", NULL, body), 200);
    out = dir_file(&s, "out.txt");
    cr_assert_eq(strlen(out), 3 * 8 + 6 * 8 + 4 * 9);
    cr_assert(t_ends_with(out, "{\"n\":12}\n{\"n\":13}\n"));
    free(out);
    cr_assert_eq(srv_stop(&s), 0);
}

Test(http_server, json_bodies_are_an_object_or_an_array_of_objects)
{
    struct srv s;
    srv_start(&s, "encoding: json\n", true, 1024, 5000);
    cr_assert_eq(curl_post(&s, "/", NULL, " [ {\"a\":[1,\"]\"]} ,{\"b\":\"x\\\"}\"},{} ] "), 200);
    cr_assert_eq(curl_post(&s, "/", NULL, "{\"c\":{\"d\":1}}\n"), 200);
    cr_assert_eq(curl_post(&s, "/", NULL, "[]"), 200);
    cr_assert_eq(curl_post(&s, "/", NULL, "[{\"a\":1},2]"), 400);
    char *resp = dir_file(&s, "resp");
    cr_assert_str_eq(resp, "element 2 of the array is not an object\n");
    free(resp);
    cr_assert_eq(curl_post(&s, "/", NULL, "\"text\""), 400);
    char *out = dir_file(&s, "out.txt");
    cr_assert_str_eq(out, "{\"a\":[1,\"]\"]}\n{\"b\":\"x\\\"}\"}\n{}\n{\"c\":{\"d\":1}}\n");
    free(out);
    cr_assert_eq(srv_stop(&s), 0);
}

Test(http_server, text_bodies_are_one_event_per_line)
{
    struct srv s;
    srv_start(&s, "encoding: text\n", true, 1024, 5000);
    cr_assert_eq(curl_post(&s, "/", NULL, "first\r\nsecond\n\nlast"), 200);
    char *out = dir_file(&s, "out.txt");
    cr_assert_str_eq(out, "first\nsecond\n\nlast\n");
    free(out);
    cr_assert_eq(srv_stop(&s), 0);
}

/* The whole body is checked first: a bad third line keeps the first two out too. */
Test(http_server, a_bad_body_is_answered_400_and_none_of_it_enters)
{
    gate_reset(true);
    struct srv s;
    srv_start(&s, NULL, false, 1024, 5000);
    cr_assert_eq(curl_post(&s, "/", NULL, "{\"n\":1}\n{\"n\":2}\n{\"n\":\n"), 400);
    char *resp = dir_file(&s, "resp");
    cr_assert_str_eq(resp, "line 3: invalid JSON at byte 6 of the line\n");
    free(resp);
    cr_assert_eq(curl_post(&s, "/", NULL, "{\"n\":3}\n"), 200);
    cr_assert_eq(srv_stop(&s), 0);
    cr_assert_str_eq(gate_text, "{\"n\":3}\n");
    cr_assert_eq(atomic_load(&gate_events), 1);
    cr_assert_eq(strncmp(gate_origin, "127.0.0.1:", 10), 0, "origin %s", gate_origin);
}

Test(http_server, limits_paths_and_methods_are_answered_by_status)
{
    gate_reset(true);
    struct srv s;
    srv_start(&s, "path: /ingest\nmax_body_bytes: 100\n", false, 1024, 5000);
    char big[201];
    memset(big, 'x', 200);
    big[200] = '\0';
    cr_assert_eq(curl_post(&s, "/ingest", "-H 'Content-Type: text/plain'", big), 413);
    cr_assert_eq(curl_post(&s, "/", NULL, "{}"), 404);
    cr_assert_eq(curl_post(&s, "/ingest", "-X PUT", "{}"), 405);
    char *hdrs = dir_file(&s, "hdrs");
    cr_assert_not_null(strstr(hdrs, "Allow: POST\r\n"));
    free(hdrs);
    cr_assert_eq(curl_post(&s, "/ingest", "-H 'Content-Encoding: br'", "{}"), 415);
    cr_assert_eq(curl_post(&s, "/ingest?agent=7", NULL, "{}"), 200);
    struct sl_stage_stats st = t_stats(s.in);
    cr_assert_eq(srv_stop(&s), 0);
    cr_assert_eq(st.events_out, 1);
    cr_assert_eq(atomic_load(&gate_events), 1);
}

static void take_counter(void *arg, const char *name, const char *help, uint64_t value)
{
    (void)help;
    char *out = arg;
    sprintf(out + strlen(out), "%s=%llu ", name, (unsigned long long)value);
}

Test(http_server, the_bearer_token_is_required_when_set)
{
    gate_reset(true);
    setenv("T_HTTP_TOKEN", "s3cret-token", 1);
    struct srv s;
    srv_start(&s, "auth: {bearer: s3cret-token}\n", false, 1024, 5000);
    cr_assert_eq(curl_post(&s, "/", NULL, "{\"n\":1}"), 401);
    char *hdrs = dir_file(&s, "hdrs");
    cr_assert_not_null(strstr(hdrs, "WWW-Authenticate: Bearer\r\n"));
    free(hdrs);
    cr_assert_eq(curl_post(&s, "/", "-H 'Authorization: Bearer s3cret-tokeN'", "{\"n\":2}"), 401);
    cr_assert_eq(curl_post(&s, "/", "-H 'Authorization: Bearer s3cret'", "{\"n\":3}"), 401);
    cr_assert_eq(curl_post(&s, "/", "-H 'Authorization: Basic s3cret-token'", "{\"n\":4}"), 401);
    cr_assert_eq(curl_post(&s, "/", "-H 'Authorization: Bearer s3cret-token'", "{\"n\":5}"), 200);
    char counters[512] = "";
    sl_stage_counters(s.in, take_counter, counters);
    cr_assert_eq(srv_stop(&s), 0);
    cr_assert_str_eq(gate_text, "{\"n\":5}\n");
    cr_assert_str_eq(counters, "http_requests=5 http_accepted=1 http_events=1 http_bytes=35 "
                               "http_rejected_4xx=4 http_rejected_429=0 http_rejected_5xx=0 ");
}

/* While the sink holds its acknowledgement, the client has no answer. */
Test(http_server, the_answer_waits_for_the_sinks_acknowledgement)
{
    gate_reset(false);
    struct srv s;
    srv_start(&s, NULL, false, 1024, 5000);
    int fd = tcp_connect(s.port);
    send_post(fd, "{\"n\":1}\n{\"n\":2}\n");
    for (double end = now_s() + 5; atomic_load(&gate_events) < 2 && now_s() < end;) pause_ms(2);
    cr_assert_eq(atomic_load(&gate_events), 2);
    cr_assert_eq(read_status(fd, 300), -1, "answered before the acknowledgement");
    atomic_store(&gate_open, true);
    cr_assert_eq(read_status(fd, 5000), 200);
    close(fd);
    cr_assert_eq(srv_stop(&s), 0);
}

/* acknowledgements: false answers 202 on receipt, the sink holding everything. */
Test(http_server, without_acknowledgements_the_answer_is_202_on_receipt)
{
    gate_reset(false);
    struct srv s;
    srv_start(&s, "acknowledgements: false\n", false, 1024, 5000);
    cr_assert_eq(curl_post(&s, "/", NULL, "{\"n\":1}\n"), 202);
    cr_assert_eq(curl_post(&s, "/", NULL, "{\"n\":2}\n"), 202);
    atomic_store(&gate_open, true);
    cr_assert_eq(srv_stop(&s), 0);
    cr_assert_str_eq(gate_text, "{\"n\":1}\n{\"n\":2}\n");
}

/* Ten events per body, 30 pending at most: the fourth body waits for room (429 with
 * Retry-After); once the sink acknowledges, it is taken. Nothing is lost or doubled. */
Test(http_server, a_blocked_sink_makes_the_source_answer_429_then_accept_again)
{
    gate_reset(false);
    struct srv s;
    srv_start(&s, "max_pending_events: 30\nretry_after: 2s\n", false, 1024, 5000);
    char body[4][256];
    int fd[3];
    for (int b = 0; b < 4; b++) {
        body[b][0] = '\0';
        for (int i = 0; i < 10; i++) sprintf(body[b] + strlen(body[b]), "{\"n\":%d}\n", b * 10 + i);
    }
    for (int b = 0; b < 3; b++) {
        fd[b] = tcp_connect(s.port);
        send_post(fd[b], body[b]);
    }
    for (double end = now_s() + 5; atomic_load(&gate_events) < 30 && now_s() < end;) pause_ms(2);
    cr_assert_eq(atomic_load(&gate_events), 30);
    cr_assert_eq(curl_post(&s, "/", NULL, body[3]), 429);
    char *hdrs = dir_file(&s, "hdrs");
    cr_assert_not_null(strstr(hdrs, "Retry-After: 2\r\n"), "%s", hdrs);
    free(hdrs);
    atomic_store(&gate_open, true);
    for (int b = 0; b < 3; b++) {
        cr_assert_eq(read_status(fd[b], 5000), 200);
        close(fd[b]);
    }
    cr_assert_eq(curl_post(&s, "/", NULL, body[3]), 200);
    cr_assert_eq(srv_stop(&s), 0);
    cr_assert_eq(atomic_load(&gate_events), 40);
    char want[1024] = "";
    for (int b = 0; b < 4; b++) strcat(want, body[b]);
    cr_assert_str_eq(gate_text, want);
}

/* A client that sends half a body and stalls is cut after read_timeout; another is
 * served meanwhile. */
Test(http_server, a_stalled_client_is_cut_by_the_read_timeout)
{
    gate_reset(true);
    struct srv s;
    srv_start(&s, "read_timeout: 300ms\n", false, 1024, 5000);
    int slow = tcp_connect(s.port);
    send_text(slow, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{\"n\":");
    cr_assert_eq(curl_post(&s, "/", NULL, "{\"n\":1}\n"), 200);
    double t0 = now_s();
    int st = read_status(slow, 5000);
    cr_assert(st == 0 || st == 408, "status %d", st);
    cr_assert_lt(now_s() - t0, 3.0);
    close(slow);
    cr_assert_eq(srv_stop(&s), 0);
    cr_assert_str_eq(gate_text, "{\"n\":1}\n");
}

Test(http_server, two_hundred_idle_connections_do_not_stop_service)
{
    gate_reset(true);
    struct srv s;
    srv_start(&s, NULL, false, 1024, 5000);
    int fd[200];
    for (int i = 0; i < 200; i++) fd[i] = tcp_connect(s.port);
    cr_assert_eq(curl_post(&s, "/", NULL, "{\"n\":1}\n"), 200);
    send_post(fd[199], "{\"n\":2}\n");
    cr_assert_eq(read_status(fd[199], 5000), 200);
    for (int i = 0; i < 200; i++) close(fd[i]);
    cr_assert_eq(srv_stop(&s), 0);
    cr_assert_eq(atomic_load(&gate_events), 2);
}

/* max_connections: the third client waits in the backlog until one of two closes. */
Test(http_server, connections_past_the_cap_wait_for_one_to_close)
{
    gate_reset(true);
    struct srv s;
    srv_start(&s, "max_connections: 2\n", false, 1024, 5000);
    int a = tcp_connect(s.port), b = tcp_connect(s.port);
    send_post(a, "{\"n\":1}\n"); /* answered: both are the server's (kept alive) */
    send_post(b, "{\"n\":2}\n");
    cr_assert_eq(read_status(a, 5000), 200);
    cr_assert_eq(read_status(b, 5000), 200);
    int c = tcp_connect(s.port); /* the kernel completes it; the server does not take it */
    send_post(c, "{\"n\":3}\n");
    cr_assert_eq(read_status(c, 300), -1);
    close(a);
    cr_assert_eq(read_status(c, 5000), 200);
    close(b), close(c);
    cr_assert_eq(srv_stop(&s), 0);
    cr_assert_eq(atomic_load(&gate_events), 3);
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* No descriptor left for accept() (EMFILE): the listening socket stays readable, and
 * accepting again at once would spin. The listener pauses instead (10 ms, doubling to
 * 1 s), and takes the waiting client once descriptors are back. */
Test(http_server, no_descriptor_left_pauses_the_listener_instead_of_spinning)
{
    gate_reset(true);
    struct srv s;
    srv_start(&s, NULL, false, 1024, 5000);
    int c = socket(AF_INET, SOCK_STREAM, 0); /* before the limit: connect needs no new one */
    cr_assert_geq(c, 0);
    int lowest = dup(0); /* the lowest free descriptor: a limit there leaves none free */
    cr_assert_geq(lowest, 0);
    close(lowest);
    struct rlimit old, low;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)lowest;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(c, (struct sockaddr *)&a, sizeof a), 0); /* in the backlog */
    double cpu0 = cpu_s();
    pause_ms(600);
    double spent = cpu_s() - cpu0;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    cr_assert_lt(spent, 0.2, "%.3f s of CPU in 0.6 s: the listener spun on EMFILE", spent);
    send_post(c, "{\"n\":1}\n");
    cr_assert_eq(read_status(c, 5000), 200, "served once descriptors are back");
    close(c);
    cr_assert_eq(srv_stop(&s), 0);
    cr_assert_eq(atomic_load(&gate_events), 1);
}

/* A stop while the sink never acknowledges: the run gives up after shutdown_timeout, and
 * when the source closes the waiting client is answered 503, not left hanging. */
Test(http_server, a_stop_answers_503_to_requests_that_cannot_be_acknowledged)
{
    gate_reset(false);
    struct srv s;
    srv_start(&s, NULL, false, 1024, 300);
    int fd = tcp_connect(s.port);
    send_post(fd, "{\"n\":1}\n");
    for (double end = now_s() + 5; atomic_load(&gate_events) < 1 && now_s() < end;) pause_ms(2);
    cr_assert_eq(atomic_load(&gate_events), 1);
    cr_assert_neq(srv_stop(&s), 0); /* the drain timed out; the stages are closed */
    cr_assert_eq(read_status(fd, 5000), 503);
    close(fd);
}

/* The read timeout is for clients that stall, not for a request waiting for its
 * acknowledgement: it is answered 200 long after read_timeout. */
Test(http_server, a_request_waiting_for_acks_outlives_the_read_timeout)
{
    gate_reset(false);
    struct srv s;
    srv_start(&s, "read_timeout: 200ms\n", false, 1024, 5000);
    int fd = tcp_connect(s.port);
    send_post(fd, "{\"n\":1}\n");
    cr_assert_eq(read_status(fd, 700), -1); /* three read timeouts: neither cut nor answered */
    atomic_store(&gate_open, true);
    cr_assert_eq(read_status(fd, 5000), 200);
    close(fd);
    cr_assert_eq(srv_stop(&s), 0);
}

/* A client that goes away while its request waits: the events are still delivered, the
 * answer goes nowhere, and the server goes on. */
Test(http_server, a_client_gone_while_waiting_costs_nothing)
{
    gate_reset(false);
    struct srv s;
    srv_start(&s, NULL, false, 1024, 5000);
    int fd = tcp_connect(s.port);
    send_post(fd, "{\"n\":1}\n");
    for (double end = now_s() + 5; atomic_load(&gate_events) < 1 && now_s() < end;) pause_ms(2);
    close(fd);
    atomic_store(&gate_open, true);
    cr_assert_eq(curl_post(&s, "/", NULL, "{\"n\":2}\n"), 200);
    cr_assert_eq(srv_stop(&s), 0);
    cr_assert_str_eq(gate_text, "{\"n\":1}\n{\"n\":2}\n");
}

/* A graceful stop drains: a request whose events are in the pipeline is answered 200
 * once they are acknowledged, even by the last acknowledgement of the run. */
Test(http_server, a_stop_drains_and_answers_the_requests_in_flight)
{
    gate_reset(false);
    struct srv s;
    srv_start(&s, NULL, false, 1024, 10000);
    int fd = tcp_connect(s.port);
    send_post(fd, "{\"n\":1}\n");
    for (double end = now_s() + 5; atomic_load(&gate_events) < 1 && now_s() < end;) pause_ms(2);
    sl_pipeline_stop(s.p);
    cr_assert_eq(read_status(fd, 200), -1); /* still waiting for the sink */
    atomic_store(&gate_open, true);
    pthread_join(s.thread, NULL); /* the run ends with the last acknowledgement */
    s.joined = true;
    cr_assert_eq(s.rc, 0);
    cr_assert_eq(read_status(fd, 2000), 200);
    close(fd);
    cr_assert_eq(srv_stop(&s), 0); /* stopped already: frees */
}

/* A gzip body is inflated before it is decoded; one that does not inflate is a bad
 * body (400), one that inflates past max_body_bytes too large (413). */
Test(http_server, gzip_bodies_are_inflated_within_the_body_limit)
{
    gate_reset(true);
    struct srv s;
    srv_start(&s, "max_body_bytes: 4KiB\n", false, 1024, 5000);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "cd %s && printf '{\"n\":1}\\n{\"n\":2}\\n' | gzip -c >small.gz && "
             "head -c 100000 /dev/zero | gzip -c >bomb.gz && printf 'nope' >bad.gz",
             s.dir);
    cr_assert_eq(system(cmd), 0);
    char f[128];
    const char *gz = "-H 'Content-Encoding: gzip'";
    snprintf(f, sizeof f, "%s/small.gz", s.dir);
    cr_assert_eq(curl_post_file(&s, "/", gz, f), 200);
    snprintf(f, sizeof f, "%s/bomb.gz", s.dir); /* 100 KB of zeros in about 130 bytes */
    cr_assert_eq(curl_post_file(&s, "/", gz, f), 413);
    char *resp = dir_file(&s, "resp");
    cr_assert_str_eq(resp, "the body inflates to more than max_body_bytes (4096)\n");
    free(resp);
    snprintf(f, sizeof f, "%s/bad.gz", s.dir);
    cr_assert_eq(curl_post_file(&s, "/", gz, f), 400);
    cr_assert_eq(srv_stop(&s), 0);
    cr_assert_str_eq(gate_text, "{\"n\":1}\n{\"n\":2}\n");
}

/* ack_timeout: a request the sink does not acknowledge in time is answered 503; its
 * events still count as pending until they are acknowledged, then nothing is left. */
Test(http_server, a_request_not_acknowledged_within_ack_timeout_gets_503)
{
    gate_reset(false);
    struct srv s;
    srv_start(&s, "ack_timeout: 300ms\nmax_pending_events: 1\n", false, 1024, 5000);
    int fd = tcp_connect(s.port);
    send_post(fd, "{\"n\":1}\n");
    double t0 = now_s();
    cr_assert_eq(read_status(fd, 5000), 503);
    cr_assert_geq(now_s() - t0, 0.25);
    close(fd);
    cr_assert_eq(curl_post(&s, "/", NULL, "{\"n\":2}\n"), 429); /* still pending */
    atomic_store(&gate_open, true);
    int code = 0;
    for (double end = now_s() + 5;
         (code = curl_post(&s, "/", NULL, "{\"n\":2}\n")) == 429 && now_s() < end;)
        pause_ms(10);
    cr_assert_eq(code, 200);
    cr_assert_eq(srv_stop(&s), 0);
    cr_assert_str_eq(gate_text, "{\"n\":1}\n{\"n\":2}\n");
}
