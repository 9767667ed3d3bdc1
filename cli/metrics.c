/* The Prometheus text of /metrics (cli_metrics_render): the stages' counters, timings
 * and own counters, the process, the batches' memory and the SQLite pools. The server
 * that answers it is server.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

long cli_rss_bytes(void)
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
            cli_rss_bytes(), cpu_seconds(), start_time(), sl_version());
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
