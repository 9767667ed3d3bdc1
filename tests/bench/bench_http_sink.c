/* The http sink posting events to a local counting server, next to curl posting the same
 * bodies in the same run (issue 16).
 *
 *   generate (json, N events) -> http sink (ndjson, batch.max_events B, max_in_flight M)
 *   curl --parallel --parallel-max M, the sink's first body POSTed as many times as the
 *   sink made requests, over keep-alive connections of one curl process
 *
 * The server (evhttp on a thread of its own, 127.0.0.1, an ephemeral port) answers 200 and
 * counts requests, body bytes and lines (events). Prints events/s, MB/s and wall time for
 * both. Not a test: `build-bench/tests/bench/bench_http_sink [events] [batch] [in_flight]
 * [ndjson|text|json_array] [gzip]`. Defaults: 2,000,000 events, 1000 per request, 4 in flight,
 * ndjson, no gzip. (text posts the generated lines as they are; ndjson wraps each raw line
 * in {"message": ...}, escaping it. BENCH_LITERAL=1: generate repeats one literal line
 * instead of formatting each event, so that the sink's own cost shows.) */
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <sluice/builtins.h>
#include <sluice/sluice.h>

struct server {
    struct event_base *base;
    struct evhttp *http;
    struct event *tick;
    pthread_t thread;
    int port;
    atomic_bool stop;
    atomic_ullong requests, bytes, lines;
    char first_path[256];   /* where the sink's first body was saved */
    atomic_bool keep_first; /* save the next body there */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Counts the '\n' of a body without copying it. */
static unsigned long long count_lines(struct evbuffer *b)
{
    unsigned long long n = 0;
    int k = evbuffer_peek(b, -1, NULL, NULL, 0);
    struct evbuffer_iovec *v = malloc((size_t)(k > 0 ? k : 1) * sizeof *v);
    k = v ? evbuffer_peek(b, -1, NULL, v, k) : 0;
    for (int i = 0; i < k; i++)
        for (const char *p = v[i].iov_base, *e = p + v[i].iov_len;
             (p = memchr(p, '\n', (size_t)(e - p))); p++)
            n++;
    free(v);
    return n;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct server *s = arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    if (atomic_exchange(&s->keep_first, false)) {
        FILE *f = fopen(s->first_path, "wb");
        size_t n = evbuffer_get_length(in);
        if (f) fwrite(evbuffer_pullup(in, -1), 1, n, f), fclose(f);
    }
    s->requests++;
    s->bytes += evbuffer_get_length(in);
    const char *enc = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Encoding");
    if (!enc) s->lines += count_lines(in); /* gzip: the caller knows its events */
    evhttp_send_reply(req, 200, "OK", NULL);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct server *s = arg;
    if (s->stop) event_base_loopbreak(s->base);
}

static void *serve(void *arg)
{
    struct server *s = arg;
    event_base_dispatch(s->base);
    return NULL;
}

static int server_start(struct server *s)
{
    s->base = event_base_new();
    s->http = evhttp_new(s->base);
    if (!s->base || !s->http) return -1;
    evhttp_set_gencb(s->http, on_request, s);
    evhttp_set_max_body_size(s->http, 256 * 1024 * 1024);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(s->http, "127.0.0.1", 0);
    if (!bs) return -1;
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &sl);
    s->port = ntohs(sa.sin_port);
    struct timeval tv = {0, 20000};
    s->tick = event_new(s->base, -1, EV_PERSIST, tick, s);
    event_add(s->tick, &tv);
    return pthread_create(&s->thread, NULL, serve, s);
}

static void server_stop(struct server *s)
{
    s->stop = true;
    pthread_join(s->thread, NULL);
    event_free(s->tick);
    evhttp_free(s->http);
    event_base_free(s->base);
}

static void reset(struct server *s)
{
    s->requests = s->bytes = s->lines = 0;
}

/* CPU seconds (user + system) of this process (the sink, the server) and of its waited-for
 * children (curl). */
static double cpu_s(void)
{
    struct rusage a, b;
    getrusage(RUSAGE_SELF, &a);
    getrusage(RUSAGE_CHILDREN, &b);
    return (double)(a.ru_utime.tv_sec + a.ru_stime.tv_sec + b.ru_utime.tv_sec + b.ru_stime.tv_sec) +
           (double)(a.ru_utime.tv_usec + a.ru_stime.tv_usec + b.ru_utime.tv_usec +
                    b.ru_stime.tv_usec) /
               1e6;
}

static void report(const char *who, struct server *s, double wall, double cpu,
                   unsigned long long events)
{
    if (s->lines) events = s->lines;
    printf("%-34s %9llu events %6llu requests %8.1f MB %7.3f s %5.2f cpu-s %10.0f events/s %6.1f "
           "MB/s\n",
           who, events, (unsigned long long)s->requests, (double)s->bytes / 1e6, wall, cpu,
           (double)events / wall, (double)s->bytes / 1e6 / wall);
}

/* BENCH_LITERAL=1: generate repeats this line instead of formatting one per event. */
static const char literal[] =
    "{\"time\":\"2024-01-01T00:00:00.000Z\",\"level\":\"info\",\"service\":\"checkout\","
    "\"host\":\"web-1\",\"method\":\"GET\",\"path\":\"/api/cart\",\"status\":200,"
    "\"latency_ms\":12,\"bytes\":5120,\"msg\":\"request served\"}";

/* generate -> http; returns the wall time, or -1. */
static double run_sink(struct server *s, long events, long batch, long in_flight, const char *enc,
                       bool gzip)
{
    struct sl_error err = {0};
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    struct sl_pipeline *p = sl_pipeline_new(NULL, &o, &err);
    char gen[512], out[512];
    if (getenv("BENCH_LITERAL")) /* a literal line: the source costs next to nothing */
        snprintf(gen, sizeof gen, "count: %ld\nlines: ['%s']\n", events, literal);
    else
        snprintf(gen, sizeof gen, "count: %ld\nformat: json\n", events);
    snprintf(out, sizeof out,
             "uri: http://127.0.0.1:%d/ingest\nbatch.max_events: %ld\nbatch.max_bytes: 64MiB\n"
             "max_in_flight: %ld\ncompression: %s\nencoding: %s\n",
             s->port, batch, in_flight, gzip ? "gzip" : "none", enc);
    struct sl_config *cg = sl_config_parse(gen, strlen(gen), "gen", &err);
    struct sl_config *co = sl_config_parse(out, strlen(out), "out", &err);
    struct sl_stage *g = p && cg ? sl_pipeline_add(p, "gen", &sl_stage_generate, cg, &err) : NULL;
    struct sl_stage *h = g && co ? sl_pipeline_add(p, "out", &sl_stage_http_sink, co, &err) : NULL;
    double t0 = now_s(), wall = -1;
    if (h && !sl_pipeline_connect(p, g, NULL, h, &err) && !sl_pipeline_run(p, &err))
        wall = now_s() - t0;
    if (wall < 0) fprintf(stderr, "bench_http_sink: %s (%s)\n", err.msg, err.stage);
    sl_config_free(cg), sl_config_free(co);
    sl_pipeline_free(p);
    return wall;
}

/* curl posting `body` `n` times, `par` at once; returns the wall time, or -1. */
static double run_curl(struct server *s, const char *body, unsigned long long n, long par,
                       bool gzip)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "curl -sS -o /dev/null --parallel --parallel-max %ld -H 'Content-Type: "
             "application/x-ndjson' %s --data-binary @%s 'http://127.0.0.1:%d/ingest?[1-%llu]'",
             par, gzip ? "-H 'Content-Encoding: gzip'" : "", body, s->port, n);
    double t0 = now_s();
    int rc = system(cmd);
    double wall = now_s() - t0;
    return rc == 0 ? wall : -1;
}

int main(int argc, char **argv)
{
    long events = argc > 1 ? atol(argv[1]) : 2000000;
    long batch = argc > 2 ? atol(argv[2]) : 1000;
    long in_flight = argc > 3 ? atol(argv[3]) : 4;
    const char *enc = argc > 4 ? argv[4] : "ndjson";
    bool gzip = argc > 5 && !strcmp(argv[5], "gzip");
    signal(SIGPIPE, SIG_IGN);
    struct server s = {0};
    snprintf(s.first_path, sizeof s.first_path, "/tmp/bench_http_sink.%d.body", (int)getpid());
    if (server_start(&s)) {
        fprintf(stderr, "bench_http_sink: cannot start the server\n");
        return 1;
    }
    printf("%ld events, %ld per request, max_in_flight %ld, %s, %s, 127.0.0.1:%d\n", events, batch,
           in_flight, enc, gzip ? "gzip" : "no compression", s.port);
    s.keep_first = true;
    double cpu0 = cpu_s();
    double w = run_sink(&s, events, batch, in_flight, enc, gzip);
    if (w < 0) return 1;
    double cpu1 = cpu_s();
    report("sluice generate -> http sink", &s, w, cpu1 - cpu0, (unsigned long long)events);
    unsigned long long reqs = s.requests;
    reset(&s);
    double c = run_curl(&s, s.first_path, reqs, in_flight, gzip);
    if (c < 0) {
        fprintf(stderr, "bench_http_sink: curl failed\n");
        return 1;
    }
    char who[64];
    snprintf(who, sizeof who, "curl --parallel-max %ld (same body)", in_flight);
    report(who, &s, c, cpu_s() - cpu1, reqs ? (unsigned long long)events / reqs * reqs : 0);
    unlink(s.first_path);
    server_stop(&s);
    return 0;
}
