/* Metrics and health over HTTP (--metrics-addr): libevent's evhttp on the pipeline's own
 * loop, so a scrape reads the counters between two stage runs, never concurrently.
 * /metrics answers in the Prometheus text format; /health answers 200 while the
 * pipeline runs and 503 once it is shutting down. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "cli.h"

struct cli_metrics {
    struct sl_pipeline *p;            /* borrowed */
    struct evhttp *http;              /* the server */
    struct evhttp_bound_socket *sock; /* its listening socket */
    struct timespec started;          /* for uptime */
    bool shutting_down;               /* /health answers 503 */
    int port;                         /* bound port */
};

static double uptime(const struct cli_metrics *m)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - m->started.tv_sec) +
           (double)(now.tv_nsec - m->started.tv_nsec) / 1e9;
}

static long rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

struct family {
    const char *name; /* metric name */
    const char *type; /* counter or gauge */
    const char *help; /* one line */
};

static const struct family families[] = {
    {"sluice_events_in_total", "counter", "Events received by the stage (sources: produced)."},
    {"sluice_events_out_total", "counter", "Events passed downstream (sinks: acknowledged)."},
    {"sluice_bytes_in_total", "counter", "Payload bytes received by the stage."},
    {"sluice_bytes_out_total", "counter", "Payload bytes passed downstream."},
    {"sluice_errors_total", "counter", "Events that failed in the stage."},
    {"sluice_retries_total", "counter", "Writes a sink answered SL_RETRY for and tried again."},
    {"sluice_dropped_total", "counter", "Events the stage dropped on purpose."},
    {"sluice_acknowledged_total", "counter",
     "Events acknowledged (sources: end to end; sinks: durable)."},
    {"sluice_queue_depth_batches", "gauge", "Batches waiting in the stage's input queues."},
    {"sluice_queue_capacity_batches", "gauge", "Capacity of the stage's input queues."},
    {"sluice_queue_depth_bytes", "gauge", "Payload bytes waiting in the stage's input queues."},
    {"sluice_queue_capacity_bytes", "gauge", "Byte capacity of the stage's input queues."},
    {"sluice_stage_finished", "gauge", "1 once the stage has ended."},
};

static uint64_t value(const struct sl_stage_stats *st, size_t k)
{
    switch (k) {
    case 0: return st->events_in;
    case 1: return st->events_out;
    case 2: return st->bytes_in;
    case 3: return st->bytes_out;
    case 4: return st->errors;
    case 5: return st->retries;
    case 6: return st->dropped;
    case 7: return st->acked;
    case 8: return st->queue_batches;
    case 9: return st->queue_capacity;
    case 10: return st->queue_bytes;
    case 11: return st->queue_max_bytes;
    default: return st->finished;
    }
}

/* Label values escape backslash, quote and newline (the exposition format's rules). */
static void label(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fprintf(out, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", out);
        else
            fputc(*s, out);
    }
}

void cli_metrics_render(struct sl_pipeline *p, double up, FILE *out)
{
    size_t n = sl_pipeline_stage_count(p);
    struct sl_stage_stats *st = calloc(n ? n : 1, sizeof *st);
    if (!st) return;
    for (size_t i = 0; i < n; i++) sl_stage_stats(sl_pipeline_stage_at(p, i), &st[i]);
    for (size_t k = 0; k < sizeof families / sizeof *families; k++) {
        const struct family *f = &families[k];
        fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, f->type);
        for (size_t i = 0; i < n; i++) {
            struct sl_stage *s = sl_pipeline_stage_at(p, i);
            const struct sl_stage_type *t = sl_stage_get_type(s);
            fprintf(out, "%s{stage=\"", f->name);
            label(out, sl_stage_name(s));
            fprintf(out, "\",type=\"%s\",kind=\"%s\"} %llu\n", t->name, cli_kind_name(t->kind),
                    (unsigned long long)value(&st[i], k));
        }
    }
    free(st);
    fprintf(out,
            "# HELP sluice_uptime_seconds Seconds since the run started.\n"
            "# TYPE sluice_uptime_seconds gauge\nsluice_uptime_seconds %.3f\n",
            up);
    fprintf(out,
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
            "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %ld\n",
            rss_bytes());
    fprintf(out,
            "# HELP sluice_live_batches Batches alive in the pipeline.\n"
            "# TYPE sluice_live_batches gauge\nsluice_live_batches %llu\n",
            (unsigned long long)sl_pipeline_live_batches(p));
    int64_t mem_now, mem_peak;
    sl_pipeline_memory(p, &mem_now, &mem_peak);
    fprintf(out,
            "# HELP sluice_batch_memory_bytes Memory held by batches (arenas, event arrays).\n"
            "# TYPE sluice_batch_memory_bytes gauge\nsluice_batch_memory_bytes %lld\n"
            "# HELP sluice_batch_memory_peak_bytes The most memory batches held at once.\n"
            "# TYPE sluice_batch_memory_peak_bytes gauge\nsluice_batch_memory_peak_bytes %lld\n",
            (long long)mem_now, (long long)mem_peak);
}

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *text,
                       size_t len)
{
    struct evbuffer *body = evbuffer_new();
    if (!body) return;
    evbuffer_add(body, text, len);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, code, reason, body);
    evbuffer_free(body);
}

static void on_metrics(struct evhttp_request *req, void *arg)
{
    struct cli_metrics *m = arg;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    cli_metrics_render(m->p, uptime(m), f);
    fclose(f);
    reply_text(req, 200, "OK", text, len);
    free(text);
}

static void on_health(struct evhttp_request *req, void *arg)
{
    struct cli_metrics *m = arg;
    if (m->shutting_down)
        reply_text(req, 503, "Service Unavailable", "shutting down\n", 14);
    else
        reply_text(req, 200, "OK", "ok\n", 3);
}

static void on_other(struct evhttp_request *req, void *arg)
{
    (void)arg;
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

static int bound_port(struct evhttp_bound_socket *sock)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &len)) return -1;
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

struct cli_metrics *cli_metrics_start(struct sl_pipeline *p, const char *addr, struct sl_error *err)
{
    char host[256];
    int port;
    if (split_addr(addr, host, sizeof host, &port)) {
        sl_error_set(err, SL_EINVAL, "--metrics-addr '%s': expected HOST:PORT", addr);
        return NULL;
    }
    struct cli_metrics *m = calloc(1, sizeof *m);
    if (!m || !(m->http = evhttp_new(sl_pipeline_event_base(p)))) {
        free(m);
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    m->p = p;
    clock_gettime(CLOCK_MONOTONIC, &m->started);
    evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_cb(m->http, "/metrics", on_metrics, m);
    evhttp_set_cb(m->http, "/health", on_health, m);
    evhttp_set_gencb(m->http, on_other, m);
    m->sock = evhttp_bind_socket_with_handle(m->http, host, (uint16_t)port);
    if (!m->sock) {
        sl_error_set(err, SL_EIO, "cannot listen on %s: %s", addr, strerror(errno));
        cli_metrics_free(m);
        return NULL;
    }
    m->port = bound_port(m->sock);
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
    evhttp_free(m->http);
    free(m);
}
