/* Micro-benchmark: nanoseconds per sl_expr_test() on events indexed the way parse_json
 * leaves them (spans into the payload, numbers as text), against a hand-written floor
 * (one sl_event_get and a memcmp).
 * Run: build/tests/bench/bench_expr [million evaluations [one expression to time]] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sluice/sluice.h>

#define NEVENTS 1024

static enum sl_poll no_poll(struct sl_stage *s, struct sl_batch **out)
{
    (void)s, (void)out;
    return SL_DONE;
}

static const struct sl_stage_type bench_source = {
    .abi = SL_STAGE_ABI,
    .name = "bench_source",
    .kind = SL_SOURCE,
    .doc = "holds the benchmark's batch",
    .poll = no_poll,
};

static void add(struct sl_event *ev, const char *name, const char *s, int type, uint8_t flags)
{
    struct sl_value v = {.type = (uint8_t)type, .flags = flags, .s = s, .len = (uint32_t)strlen(s)};
    sl_event_add_field(ev, name, strlen(name), &v);
}

/* Ten fields like a typical JSON log line; one event in eight is an error, latencies
 * spread over 0..999 ms. */
static void fill(struct sl_batch *b)
{
    static const char *levels[] = {"info", "info",  "debug", "warn",
                                   "info", "error", "info",  "info"};
    for (int i = 0; i < NEVENTS; i++) {
        struct sl_event *ev = sl_batch_append(b);
        char *lat = sl_batch_alloc(b, 8), *st = sl_batch_alloc(b, 8);
        snprintf(lat, 8, "%d", (i * 7919) % 1000);
        snprintf(st, 8, "%d", i % 13 ? 200 : 503);
        add(ev, "time", "2024-05-01T12:00:00.123Z", SL_STRING, SL_VALUE_JSON_SAFE);
        add(ev, "level", levels[i % 8], SL_STRING, SL_VALUE_JSON_SAFE);
        add(ev, "service", i % 3 ? "api" : "Billing", SL_STRING, SL_VALUE_JSON_SAFE);
        add(ev, "host", "web-17.eu-west-1", SL_STRING, SL_VALUE_JSON_SAFE);
        add(ev, "latency_ms", lat, SL_INT, SL_VALUE_TEXT);
        add(ev, "status", st, SL_INT, SL_VALUE_TEXT);
        add(ev, "method", "GET", SL_STRING, SL_VALUE_JSON_SAFE);
        add(ev, "path", "/api/v1/users/12345/orders", SL_STRING, SL_VALUE_JSON_SAFE);
        add(ev, "msg", i % 5 ? "request served" : "upstream timeout after 30s", SL_STRING,
            SL_VALUE_JSON_SAFE);
        add(ev, "http", "{\"status\": 503, \"bytes\": 1234}", SL_JSON, 0);
        sl_event_fields_synced(ev); /* as parse_json declares what it indexed */
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long floor_test(struct sl_batch *b, long reps)
{
    long hits = 0;
    for (long r = 0; r < reps; r++)
        for (size_t i = 0; i < NEVENTS; i++) {
            struct sl_value v;
            const struct sl_event *ev = sl_batch_event_const(b, i);
            hits += sl_event_get(ev, "level", 5, &v) == 0 && v.len == 5 && !memcmp(v.s, "error", 5);
        }
    return hits;
}

static void bench(struct sl_batch *b, const char *src, long reps)
{
    struct sl_error err = {0};
    struct sl_expr *x = src ? sl_expr_compile(src, strlen(src), &err) : NULL;
    if (src && !x) {
        fprintf(stderr, "%s: %s\n", src, err.msg);
        exit(1);
    }
    long hits = 0;
    double t0 = now_s();
    if (!x) hits = floor_test(b, reps);
    for (long r = 0; x && r < reps; r++)
        for (size_t i = 0; i < NEVENTS; i++) hits += sl_expr_test(x, sl_batch_event_const(b, i));
    double dt = now_s() - t0, n = (double)reps * NEVENTS;
    printf("%-58s %7.1f ns/event  (%ld of %.0f kept)\n", src ? src : "floor: sl_event_get + memcmp",
           dt * 1e9 / n, hits, n);
    sl_expr_free(x);
}

int main(int argc, char **argv)
{
    long reps = (long)((argc > 1 ? atof(argv[1]) : 2) * 1e6 / NEVENTS);
    if (reps < 1) reps = 1;
    struct sl_pipeline *p = sl_pipeline_new(NULL, NULL, NULL);
    struct sl_stage *src = p ? sl_pipeline_add(p, "src", &bench_source, NULL, NULL) : NULL;
    struct sl_batch *b = src ? sl_batch_new(src) : NULL;
    if (!b) return 1;
    fill(b);
    if (argc > 2) {
        bench(b, argv[2], reps);
        goto out;
    }
    bench(b, NULL, reps);
    bench(b, "level == \"error\"", reps);
    bench(b, "level == \"error\" && latency_ms > 500", reps);
    bench(b, "level in [\"warn\", \"error\"] || status >= 500", reps);
    bench(b, "msg contains \"timeout\"", reps);
    bench(b, "msg =~ /time(out)?/", reps);
    bench(b, "lower(service) == \"billing\"", reps);
    bench(b, "http.status >= 500", reps);
out:
    sl_batch_unref(b);
    sl_pipeline_free(p);
    return 0;
}
