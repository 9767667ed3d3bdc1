/* Runtime benchmark: what the scheduler, queues and batches cost per event.
 *
 *   synthetic source -> pass-through transform -> filter -> counting sink   (50M events)
 *   synthetic source -> 8 pass-through transforms -> counting sink
 *   synthetic source -> CPU-heavy transform (workers: 1, then 2) -> counting sink
 *
 * Prints events/s, ns per event per stage and peak RSS. The per-stage figure divides
 * the wall time by events x stages, so it includes the source's and sink's own work
 * (which is next to nothing here): it is the runtime's cost. Not a test: run it with
 * `build/tests/bench/bench_runtime [events]`. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sluice/sluice.h>

static const char line[] = "{\"level\":\"info\",\"msg\":\"ok\"}";

struct synth {
    int64_t count; /* option */
    int64_t made;  /* events produced */
};

static enum sl_poll synth_poll(struct sl_stage *s, struct sl_batch **out)
{
    struct synth *st = sl_stage_state(s);
    if (st->made >= st->count) return SL_DONE;
    struct sl_batch *b = sl_batch_new(s);
    while (!sl_batch_full(b) && st->made < st->count) {
        struct sl_event *ev = sl_batch_append(b);
        sl_event_set_payload(ev, line, sizeof line - 1);
        st->made++;
    }
    *out = b;
    return SL_READY;
}

static const struct sl_option synth_options[] = {
    {"count", SL_OPT_INT, "1000000", 0, offsetof(struct synth, count), "events to make"},
    {0},
};

static const struct sl_stage_type synth = {
    .abi = SL_STAGE_ABI,
    .name = "synth",
    .kind = SL_SOURCE,
    .doc = "synthetic events",
    .state_size = sizeof(struct synth),
    .options = synth_options,
    .poll = synth_poll,
};

struct heavy {
    int64_t spin; /* option: work per event */
};

static int pass_map(struct sl_stage *s, struct sl_event *ev, struct sl_emit *out)
{
    struct heavy *h = sl_stage_state(s);
    if (h->spin) {
        volatile uint64_t x = 1;
        for (int64_t i = 0; i < h->spin; i++) x = x * 6364136223846793005u + 1442695040888963407u;
    }
    return sl_emit(out, ev);
}

static const struct sl_option heavy_options[] = {
    {"spin", SL_OPT_INT, "0", 0, offsetof(struct heavy, spin), "work per event"},
    {0},
};

static const struct sl_stage_type pass = {
    .abi = SL_STAGE_ABI,
    .name = "pass",
    .kind = SL_TRANSFORM,
    .doc = "pass-through",
    .flags = SL_STAGE_PARALLEL,
    .state_size = sizeof(struct heavy),
    .options = heavy_options,
    .map = pass_map,
};

static int keep_all(struct sl_stage *s, const struct sl_event *ev, struct sl_error *why)
{
    (void)s, (void)why;
    size_t len;
    return sl_event_payload(ev, &len) != NULL && len > 0;
}

static const struct sl_stage_type keep = {
    .abi = SL_STAGE_ABI,
    .name = "keep",
    .kind = SL_FILTER,
    .doc = "keeps non-empty events",
    .keep = keep_all,
};

static enum sl_poll count_write(struct sl_stage *s, struct sl_batch *b)
{
    int64_t *n = sl_stage_state(s);
    *n += (int64_t)sl_batch_count(b);
    sl_ack(b);
    return SL_READY;
}

static const struct sl_stage_type counter = {
    .abi = SL_STAGE_ABI,
    .name = "count",
    .kind = SL_SINK,
    .doc = "counts events",
    .state_size = sizeof(int64_t),
    .write = count_write,
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long peak_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char buf[256];
    long v = -1;
    while (f && fgets(buf, sizeof buf, f))
        if (!strncmp(buf, "VmHWM:", 6)) v = strtol(buf + 6, NULL, 10);
    if (f) fclose(f);
    return v;
}

static struct sl_stage *add(struct sl_pipeline *p, const char *name, const struct sl_stage_type *t,
                            const char *yaml)
{
    struct sl_error err = {0};
    struct sl_config *cfg = yaml ? sl_config_parse(yaml, strlen(yaml), "bench", &err) : NULL;
    struct sl_stage *s = sl_pipeline_add(p, name, t, cfg, &err);
    sl_config_free(cfg);
    if (!s) {
        fprintf(stderr, "bench: %s\n", err.msg);
        exit(1);
    }
    return s;
}

/* Runs source -> n transforms (of `mid`, options `mid_yaml`) [-> filter] -> sink. */
static double run_chain(const char *label, long long events, int ntransforms, const char *mid_yaml,
                        bool filter)
{
    struct sl_pipeline *p = sl_pipeline_new(NULL, NULL, NULL);
    char yaml[64];
    snprintf(yaml, sizeof yaml, "count: %lld", events);
    struct sl_stage *prev = add(p, "src", &synth, yaml);
    for (int i = 0; i < ntransforms; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        struct sl_stage *t = add(p, name, &pass, mid_yaml);
        sl_pipeline_connect(p, prev, NULL, t, NULL);
        prev = t;
    }
    if (filter) {
        struct sl_stage *f = add(p, "filter", &keep, NULL);
        sl_pipeline_connect(p, prev, NULL, f, NULL);
        prev = f;
    }
    struct sl_stage *sink = add(p, "sink", &counter, NULL);
    sl_pipeline_connect(p, prev, NULL, sink, NULL);
    double t0 = now_s();
    struct sl_error err = {0};
    if (sl_pipeline_run(p, &err)) {
        fprintf(stderr, "bench: run failed: %s\n", err.msg);
        exit(1);
    }
    double dt = now_s() - t0;
    int64_t got = *(int64_t *)sl_stage_state(sink);
    int stages = 2 + ntransforms + (filter ? 1 : 0);
    int64_t mem_peak;
    sl_pipeline_memory(p, NULL, &mem_peak);
    printf("%-34s %11lld events %7.2f s %12.0f events/s %6.2f ns/event/stage  peak RSS %ld MiB"
           "  batches %llu (%lld KiB)\n",
           label, (long long)got, dt, (double)got / dt, dt * 1e9 / (double)got / stages,
           peak_rss_kib() / 1024, (unsigned long long)sl_pipeline_peak_batches(p),
           (long long)(mem_peak / 1024));
    if (got != events) {
        fprintf(stderr, "bench: lost events: %lld of %lld\n", (long long)got, events);
        exit(1);
    }
    sl_pipeline_free(p);
    return dt * 1e9 / (double)got / stages;
}

int main(int argc, char **argv)
{
    long long n = argc > 1 ? atoll(argv[1]) : 50000000;
    bool only_workers = argc > 2 && !strcmp(argv[2], "workers");
    printf("sluice runtime benchmark (default batch 1024 events, queues of 8 batches)\n");
    if (!only_workers) {
        double a = run_chain("source->pass->filter->sink", n, 1, NULL, true);
        double b = run_chain("source->8 x pass->sink", n, 8, NULL, false);
        printf("runtime cost: %.1f and %.1f ns/event/stage (target: at most 20)\n", a, b);
    }
    long long heavy = n / 20;
    double w1 =
        run_chain("source->heavy(workers: 1)->sink", heavy, 1, "spin: 2000\nworkers: 1", false);
    double w2 =
        run_chain("source->heavy(workers: 2)->sink", heavy, 1, "spin: 2000\nworkers: 2", false);
    printf("workers: 2 runs the CPU-heavy transform %.2fx as fast as workers: 1\n", w1 / w2);
    run_chain("source->heavy(no workers)->sink", heavy, 1, "spin: 2000", false);
    return 0;
}
