/* Metrics and health over HTTP (--metrics-addr): libevent's evhttp on the pipeline's own
 * loop, so a scrape reads the counters between two stage runs, never concurrently.
 * /metrics answers in the Prometheus text format; /health answers 200 while the
 * pipeline runs and 503 once it is shutting down.
 *
 * The server must not hurt the run it watches, whatever its clients do: it serves at
 * most `max_conns` connections at once (the others wait in the listen backlog, costing
 * no descriptor); an accept() that fails (no descriptor left: EMFILE, ENFILE) pauses
 * the listener with a growing delay instead of failing again at once, forever;
 * requests are GET only, with 8 KiB of headers at most; a client silent for 5 s is
 * dropped. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "cli.h"

enum {
    MAX_HEADER_BYTES = 8192, /* request line and headers; a scrape sends a few hundred */
    LISTEN_BACKLOG = 128,    /* where clients past the cap wait */
    IDLE_TIMEOUT_S = 5,      /* a client that neither sends nor reads this long is dropped */
    PAUSE_MIN_MS = 10,       /* the first pause after an accept error... */
    PAUSE_MAX_MS = 1000,     /* ...doubles up to this */
};

struct cli_metrics {
    struct sl_pipeline *p;      /* borrowed */
    struct evhttp *http;        /* the server */
    struct evconnlistener *lev; /* its listening socket (owned by `http`), NULL when freed */
    struct event *resume;       /* re-enables the listener after a pause */
    struct event *adopt;        /* sets the close callback of new connections */
    struct bufferevent **fresh; /* their bufferevents until then, one reference each */
    size_t nfresh, fresh_size;  /* entries used and allocated */
    unsigned live, max_conns;   /* open connections; at max_conns, no more accepted */
    int64_t pause_ms;           /* the next pause after an accept error */
    unsigned accept_errors;     /* failed accepts since the last success */
    bool paused;                /* after an accept error, until `resume` fires */
    struct timespec started;    /* for uptime */
    bool shutting_down;         /* /health answers 503 */
    int port;                   /* bound port */
    struct cli_metrics *next;   /* in `servers` */
};

/* The servers, for the accept error callback: libevent gives it the argument of the
 * accept callback, which evhttp sets to the evhttp. Loop thread only. */
static struct cli_metrics *servers;

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

/* CPU seconds (user + system) of the whole process, every thread. */
static double cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru)) return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* When the process started, in seconds since the epoch: its start in clock ticks after
 * boot (/proc/self/stat, field 22) plus the boot time (/proc/stat, btime); 0 when
 * unknown. */
static double start_time(void)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = '\0';
    const char *q = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long ticks = 0, btime = 0;
    for (int field = 2; q && *q && field < 22; q++)
        if (*q == ' ') field++;
    if (!q || sscanf(q, "%llu", &ticks) != 1) return 0;
    f = fopen("/proc/stat", "r");
    while (f && fgets(buf, sizeof buf, f))
        if (sscanf(buf, "btime %llu", &btime) == 1) break;
    if (f) fclose(f);
    long hz = sysconf(_SC_CLK_TCK);
    return btime && hz > 0 ? (double)btime + (double)ticks / (double)hz : 0;
}

/* The process_* metrics every Prometheus client exports, and the build. */
static void render_process(FILE *out)
{
    fprintf(out,
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
            "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %ld\n"
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
            "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.3f\n"
            "# HELP process_start_time_seconds Start time of the process since unix epoch in "
            "seconds.\n# TYPE process_start_time_seconds gauge\n"
            "process_start_time_seconds %.2f\n"
            "# HELP sluice_build_info The version of sluice (the value is 1).\n"
            "# TYPE sluice_build_info gauge\nsluice_build_info{version=\"%s\"} 1\n",
            rss_bytes(), cpu_seconds(), start_time(), sl_version());
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

void cli_metrics_label(FILE *out, const char *s)
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

/* ---- timings: busy time, the batch histogram, source lag, event age at sinks ---------- */

static void labels(FILE *out, struct sl_stage *s)
{
    const struct sl_stage_type *t = sl_stage_get_type(s);
    fputs("stage=\"", out);
    cli_metrics_label(out, sl_stage_name(s));
    fprintf(out, "\",type=\"%s\",kind=\"%s\"", t->name, cli_kind_name(t->kind));
}

static void family(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* sluice_stage_batch_seconds: the buckets are SL_STAGE_LATENCY_LE_NS, cumulated. */
static void render_histogram(struct sl_pipeline *p, const struct sl_stage_stats *st, FILE *out)
{
    static const char *const le[SL_STAGE_LATENCY_BUCKETS] = {"0.0001", "0.001", "0.01", "0.1",
                                                             "1",      "10",    "+Inf"};
    family(out, "sluice_stage_batch_seconds", "histogram",
           "Time the stage took over one batch (poll, map/keep, write).");
    for (size_t i = 0; i < sl_pipeline_stage_count(p); i++) {
        struct sl_stage *s = sl_pipeline_stage_at(p, i);
        uint64_t n = 0;
        for (int b = 0; b < SL_STAGE_LATENCY_BUCKETS; b++) {
            n += st[i].batch_count[b];
            fputs("sluice_stage_batch_seconds_bucket{", out);
            labels(out, s);
            fprintf(out, ",le=\"%s\"} %llu\n", le[b], (unsigned long long)n);
        }
        fputs("sluice_stage_batch_seconds_sum{", out);
        labels(out, s);
        fprintf(out, "} %.6f\nsluice_stage_batch_seconds_count{", (double)st[i].batch_ns / 1e9);
        labels(out, s);
        fprintf(out, "} %llu\n", (unsigned long long)n);
    }
}

static void render_timings(struct sl_pipeline *p, const struct sl_stage_stats *st, FILE *out)
{
    size_t n = sl_pipeline_stage_count(p);
    family(out, "sluice_stage_busy_seconds_total", "counter",
           "Time spent in the stage's callbacks, its workers' included.");
    for (size_t i = 0; i < n; i++) {
        fputs("sluice_stage_busy_seconds_total{", out);
        labels(out, sl_pipeline_stage_at(p, i));
        fprintf(out, "} %.6f\n", (double)st[i].busy_ns / 1e9);
    }
    render_histogram(p, st, out);
    family(out, "sluice_source_lag_bytes", "gauge",
           "Bytes of its files a file source has not read yet.");
    for (size_t i = 0; i < n; i++) {
        struct sl_stage *s = sl_pipeline_stage_at(p, i);
        /* Progress in bytes is the file source's (generate counts events); 0 of 0: no
         * file known, or those read to their end let go. */
        if (strcmp(sl_stage_get_type(s)->name, "file")) continue;
        uint64_t done = st[i].progress_done, total = st[i].progress_total;
        fputs("sluice_source_lag_bytes{", out);
        labels(out, s);
        fprintf(out, "} %llu\n", (unsigned long long)(total > done ? total - done : 0));
    }
    family(out, "sluice_sink_event_age_seconds", "gauge",
           "Wall clock less the time of the newest event of the last batch a sink received.");
    for (size_t i = 0; i < n; i++) {
        if (!st[i].aged_batches) continue; /* no event with a time yet */
        fputs("sluice_sink_event_age_seconds{", out);
        labels(out, sl_pipeline_stage_at(p, i));
        fprintf(out, "} %.3f\n", (double)st[i].event_age_ns / 1e9);
    }
}

/* ---- the stages' own counters: sluice_stage_<name>_total, one family per name ---------- */

struct own {
    char name[72];     /* the counter's name */
    char help[256];    /* its help line */
    const char *stage; /* the stage's name (borrowed) */
    uint64_t value;    /* its value */
    size_t order;      /* the order met: stages, then their counters */
};

struct owns {
    struct own *v;
    size_t n, cap;
    const char *stage; /* the stage being read */
};

static void take_own(void *arg, const char *name, const char *help, uint64_t value)
{
    struct owns *o = arg;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 16;
        struct own *v = realloc(o->v, cap * sizeof *v);
        if (!v) return;
        o->v = v, o->cap = cap;
    }
    struct own *e = &o->v[o->n];
    snprintf(e->name, sizeof e->name, "%s", name);
    snprintf(e->help, sizeof e->help, "%s", help);
    e->stage = o->stage, e->value = value, e->order = o->n++;
}

static int by_name(const void *a, const void *b)
{
    const struct own *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

/* Every stage's own counters (sl_stage_counter), grouped by name as the text format
 * wants a family's samples together. */
static void render_own(struct sl_pipeline *p, FILE *out)
{
    struct owns o = {0};
    for (size_t i = 0; i < sl_pipeline_stage_count(p); i++) {
        struct sl_stage *s = sl_pipeline_stage_at(p, i);
        o.stage = sl_stage_name(s);
        sl_stage_counters(s, take_own, &o);
    }
    qsort(o.v, o.n, sizeof *o.v, by_name);
    for (size_t i = 0; i < o.n; i++) {
        if (i == 0 || strcmp(o.v[i].name, o.v[i - 1].name))
            fprintf(out, "# HELP sluice_stage_%s_total %s\n# TYPE sluice_stage_%s_total counter\n",
                    o.v[i].name, o.v[i].help, o.v[i].name);
        fprintf(out, "sluice_stage_%s_total{stage=\"", o.v[i].name);
        cli_metrics_label(out, o.v[i].stage);
        fprintf(out, "\"} %llu\n", (unsigned long long)o.v[i].value);
    }
    free(o.v);
}

void cli_metrics_render(struct sl_pipeline *p, double up, FILE *out)
{
    size_t n = sl_pipeline_stage_count(p);
    struct sl_stage_stats *st = calloc(n ? n : 1, sizeof *st);
    if (!st) return;
    for (size_t i = 0; i < n; i++) {
        st[i].size = sizeof st[i];
        sl_stage_stats(sl_pipeline_stage_at(p, i), &st[i]);
    }
    for (size_t k = 0; k < sizeof families / sizeof *families; k++) {
        const struct family *f = &families[k];
        fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, f->type);
        for (size_t i = 0; i < n; i++) {
            struct sl_stage *s = sl_pipeline_stage_at(p, i);
            const struct sl_stage_type *t = sl_stage_get_type(s);
            fprintf(out, "%s{stage=\"", f->name);
            cli_metrics_label(out, sl_stage_name(s));
            fprintf(out, "\",type=\"%s\",kind=\"%s\"} %llu\n", t->name, cli_kind_name(t->kind),
                    (unsigned long long)value(&st[i], k));
        }
    }
    render_timings(p, st, out);
    free(st);
    render_own(p, out);
    fprintf(out,
            "# HELP sluice_uptime_seconds Seconds since the run started.\n"
            "# TYPE sluice_uptime_seconds gauge\nsluice_uptime_seconds %.3f\n",
            up);
    render_process(out);
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
    cli_metrics_render_pools(p, out);
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

static int bound_port(struct evconnlistener *lev)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&ss, &len)) return -1;
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* ---- connections: the cap and accept errors ------------------------------------------ */

/* The listener accepts unless it pauses after an accept error or the cap is reached. */
static void update_listener(struct cli_metrics *m)
{
    if (!m->lev) return; /* the server is being freed */
    if (!m->paused && m->live < m->max_conns)
        evconnlistener_enable(m->lev);
    else
        evconnlistener_disable(m->lev);
}

static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    struct cli_metrics *m = arg;
    m->live--;
    update_listener(m); /* below the cap again */
}

/* Counting connections: evhttp tells that it drops a connection only through the
 * connection's close callback, and the connection does not exist yet when evhttp asks
 * for its bufferevent (new_conn). So the bufferevent is kept, with a reference in case
 * evhttp drops it at once, until the loop runs this, which finds the connection as the
 * bufferevent's callback argument. A bufferevent without callbacks was dropped. (A
 * filter bufferevent's free callback would tell too, but evhttp 2.1 then closes the
 * socket as soon as the filter has passed the reply on, before it is sent.) */
static void adopt(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct cli_metrics *m = arg;
    for (size_t i = 0; i < m->nfresh; i++) {
        bufferevent_data_cb rd, wr;
        bufferevent_event_cb ev;
        void *evcon;
        bufferevent_getcb(m->fresh[i], &rd, &wr, &ev, &evcon);
        if (ev && evcon)
            evhttp_connection_set_closecb(evcon, conn_closed, m);
        else
            conn_closed(NULL, m);
        bufferevent_decref(m->fresh[i]);
    }
    m->nfresh = 0;
}

/* evhttp's bufferevent for each accepted connection: the one evhttp would make, counted
 * (see adopt). */
static struct bufferevent *new_conn(struct event_base *base, void *arg)
{
    struct cli_metrics *m = arg;
    if (m->nfresh == m->fresh_size) {
        size_t size = m->fresh_size ? 2 * m->fresh_size : 16;
        struct bufferevent **f = realloc(m->fresh, size * sizeof *f);
        if (!f) return NULL; /* evhttp makes one, uncounted: no memory is the worse problem */
        m->fresh = f;
        m->fresh_size = size;
    }
    struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);
    if (!bev) return NULL;
    bufferevent_incref(bev);
    m->fresh[m->nfresh++] = bev;
    event_active(m->adopt, 0, 0);
    m->live++;
    if (m->accept_errors) {
        cli_log(SL_LOG_INFO, NULL, "metrics: accepting connections again after %u failed %s",
                m->accept_errors, m->accept_errors == 1 ? "attempt" : "attempts");
        m->accept_errors = 0;
        m->pause_ms = PAUSE_MIN_MS;
    }
    update_listener(m);
    return bev;
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct cli_metrics *m = arg;
    m->paused = false;
    update_listener(m);
}

/* accept() failed for another reason than "nothing to accept". The listening socket
 * stays readable: accepting again at once would fail again at once, so the listener
 * pauses, 10 ms then twice as long each time up to 1 s, and the first failure of a
 * series is logged, not every one. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    (void)arg; /* the evhttp */
    int err = EVUTIL_SOCKET_ERROR();
    struct cli_metrics *m = servers;
    while (m && m->lev != lev) m = m->next;
    if (!m) return;
    if (m->accept_errors++ == 0)
        cli_log(SL_LOG_WARN, NULL,
                "metrics: cannot accept a connection: %s; pausing the listener (retrying %d ms "
                "to %d s apart)",
                evutil_socket_error_to_string(err), PAUSE_MIN_MS, PAUSE_MAX_MS / 1000);
    m->paused = true;
    update_listener(m);
    struct timeval tv = {.tv_sec = m->pause_ms / 1000, .tv_usec = m->pause_ms % 1000 * 1000};
    evtimer_add(m->resume, &tv);
    m->pause_ms = m->pause_ms * 2 < PAUSE_MAX_MS ? m->pause_ms * 2 : PAUSE_MAX_MS;
}

/* ---- the server ------------------------------------------------------------------------ */

/* A listening socket on `host`:`port` made here rather than by evhttp, to have its
 * listener (for the cap and the accept errors); close-on-exec like evhttp's. */
static struct evconnlistener *listen_on(struct event_base *base, const char *addr, const char *host,
                                        int port, struct sl_error *err)
{
    struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC,
                                    .ai_socktype = SOCK_STREAM,
                                    .ai_protocol = IPPROTO_TCP,
                                    .ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_ADDRCONFIG};
    struct evutil_addrinfo *ai = NULL;
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    int rc = evutil_getaddrinfo(*host ? host : NULL, service, &hints, &ai);
    if (rc) {
        sl_error_set(err, SL_EIO, "cannot listen on %s: %s", addr, evutil_gai_strerror(rc));
        return NULL;
    }
    struct evconnlistener *lev = evconnlistener_new_bind(
        base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        LISTEN_BACKLOG, ai->ai_addr, (int)ai->ai_addrlen);
    int e = errno;
    evutil_freeaddrinfo(ai);
    if (!lev) sl_error_set(err, SL_EIO, "cannot listen on %s: %s", addr, strerror(e));
    return lev;
}

/* The limits and the handlers of a new server. */
static void configure(struct cli_metrics *m)
{
    struct timeval idle = {.tv_sec = IDLE_TIMEOUT_S};
    evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_max_headers_size(m->http, MAX_HEADER_BYTES);
    evhttp_set_max_body_size(m->http, 0); /* GET and HEAD have none */
    evhttp_set_timeout_tv(m->http, &idle);
    evhttp_set_bevcb(m->http, new_conn, m);
    evhttp_set_cb(m->http, "/metrics", on_metrics, m);
    evhttp_set_cb(m->http, "/health", on_health, m);
    cli_page_register(m->http); /* GET / and its files: the pipeline page (page.c) */
    evhttp_set_gencb(m->http, on_other, m);
}

struct cli_metrics *cli_metrics_start(struct sl_pipeline *p, const char *addr, unsigned max_conns,
                                      struct sl_error *err)
{
    char host[256];
    int port;
    if (split_addr(addr, host, sizeof host, &port)) {
        sl_error_set(err, SL_EINVAL, "--metrics-addr '%s': expected HOST:PORT", addr);
        return NULL;
    }
    struct event_base *base = sl_pipeline_event_base(p);
    struct cli_metrics *m = calloc(1, sizeof *m);
    if (!m || !(m->http = evhttp_new(base)) || !(m->resume = evtimer_new(base, on_resume, m)) ||
        !(m->adopt = event_new(base, -1, 0, adopt, m))) {
        cli_metrics_free(m);
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    m->p = p;
    m->max_conns = max_conns ? max_conns : CLI_METRICS_MAX_CONNECTIONS;
    m->pause_ms = PAUSE_MIN_MS;
    clock_gettime(CLOCK_MONOTONIC, &m->started);
    configure(m);
    m->lev = listen_on(base, addr, host, port, err);
    if (m->lev && !evhttp_bind_listener(m->http, m->lev)) {
        evconnlistener_free(m->lev); /* not the evhttp's yet */
        m->lev = NULL;
        sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    if (!m->lev) {
        cli_metrics_free(m);
        return NULL;
    }
    evconnlistener_set_error_cb(m->lev, on_accept_error);
    m->next = servers;
    servers = m;
    m->port = bound_port(m->lev);
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
    for (struct cli_metrics **pp = &servers; *pp; pp = &(*pp)->next)
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    if (m->resume) event_free(m->resume);
    if (m->adopt) event_free(m->adopt);
    m->lev = NULL;                     /* evhttp_free() frees it first */
    if (m->http) evhttp_free(m->http); /* and closes the connections (conn_closed) */
    for (size_t i = 0; i < m->nfresh; i++) bufferevent_decref(m->fresh[i]);
    free(m->fresh);
    free(m);
}
