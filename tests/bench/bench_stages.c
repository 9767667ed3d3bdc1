/* Throughput of the log stages, in a real pipeline (batches, queues, scheduler) but
 * without I/O: a source hands out generated JSON log lines from memory (payloads point
 * into one buffer, nothing is copied) and a sink acknowledges them, optionally writing
 * each event's JSON form (sl_event_write_json) into a scratch buffer, as a file sink
 * would. Each case is timed over every line; the best of several passes is reported as
 * events/s, ns/event, and ns/event over the source -> sink baseline (the stages' own
 * cost).
 *
 *   bench_stages [lines] [passes] [case]  run the cases (default 2000000 lines, 3 passes),
 *                                      or only case number `case` (0 is the baseline;
 *                                      for a profiler: valgrind --tool=callgrind ...)
 *   bench_stages --generate N          print the N first lines of the benchmark log (the
 *                                      W1/W2 input of tests/bench/bench_logs)
 *
 * The lines: about 200 bytes of JSON, 5% "level":"error", 10% "warn", deterministic. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sluice/builtins.h>
#include <sluice/sluice.h>

#include "loglines.h"

/* ---- source and sink ---------------------------------------------------------------------- */

struct src {
    const struct lines *l; /* the lines (set before the run) */
    size_t next;           /* next line */
};

static enum sl_poll src_poll(struct sl_stage *s, struct sl_batch **out)
{
    struct src *st = sl_stage_state(s);
    if (st->next >= st->l->n) return SL_DONE;
    struct sl_batch *b = sl_batch_new(s);
    if (!b) return SL_ERROR;
    for (int k = 0; k < 1024 && st->next < st->l->n; k++, st->next++) {
        struct sl_event *ev = sl_batch_append(b);
        /* Static memory that outlives the pipeline: the payload points into it. */
        sl_event_set_payload(ev, st->l->buf + st->l->off[st->next], st->l->len[st->next]);
    }
    *out = b;
    return SL_READY;
}

static const struct sl_stage_type src_type = {.abi = SL_STAGE_ABI,
                                              .name = "bench_src",
                                              .kind = SL_SOURCE,
                                              .doc = "lines from memory",
                                              .state_size = sizeof(struct src),
                                              .poll = src_poll};

struct sink {
    bool write;    /* serialise every event */
    char *scratch; /* where to */
    size_t cap;    /* bytes of scratch */
    size_t events; /* received */
    size_t bytes;  /* serialised */
};

static enum sl_poll sink_write(struct sl_stage *s, struct sl_batch *b)
{
    struct sink *k = sl_stage_state(s);
    size_t n = sl_batch_count(b);
    k->events += n;
    for (size_t i = 0; k->write && i < n; i++) {
        const struct sl_event *ev = sl_batch_event_const(b, i);
        size_t need = sl_event_write_json(ev, k->scratch, k->cap);
        if (need > k->cap) {
            free(k->scratch);
            k->cap = need * 2;
            k->scratch = malloc(k->cap);
            need = sl_event_write_json(ev, k->scratch, k->cap);
        }
        k->bytes += need + 1;
    }
    sl_ack(b);
    return SL_READY;
}

static void sink_close(struct sl_stage *s)
{
    struct sink *k = sl_stage_state(s);
    free(k->scratch);
}

static const struct sl_stage_type sink_type = {.abi = SL_STAGE_ABI,
                                               .name = "bench_sink",
                                               .kind = SL_SINK,
                                               .doc = "acks, may serialise",
                                               .state_size = sizeof(struct sink),
                                               .write = sink_write,
                                               .close = sink_close};

/* ---- cases --------------------------------------------------------------------------------- */

struct step {
    const struct sl_stage_type *type; /* NULL ends the list */
    const char *yaml;                 /* options */
};

struct bench_case {
    const char *name;     /* what is measured */
    bool write;           /* the sink serialises */
    struct step steps[4]; /* the stages between source and sink */
};

#define W2_FILTER "condition: 'level == \"error\" || level == \"warn\"'"
#define W2_REMAP  "set: {env: '\"prod\"'}\nrename: {msg: message}\nremove: [user_id]"

static const struct bench_case cases[] = {
    {"baseline: source -> sink", false, {{0}}},
    {"parse_json", false, {{&sl_stage_parse_json, NULL}}},
    {"parse_json + filter level == \"error\"",
     false,
     {{&sl_stage_parse_json, NULL}, {&sl_stage_filter, "condition: 'level == \"error\"'"}}},
    {"parse_json + filter error || warn",
     false,
     {{&sl_stage_parse_json, NULL}, {&sl_stage_filter, W2_FILTER}}},
    {"parse_json + remap (set, rename, remove)",
     false,
     {{&sl_stage_parse_json, NULL}, {&sl_stage_remap, W2_REMAP}}},
    {"W1 shape: parse_json + filter + write JSON",
     true,
     {{&sl_stage_parse_json, NULL}, {&sl_stage_filter, "condition: 'level == \"error\"'"}}},
    {"W2 shape: parse_json + filter + remap + write JSON",
     true,
     {{&sl_stage_parse_json, NULL}, {&sl_stage_filter, W2_FILTER}, {&sl_stage_remap, W2_REMAP}}},
    {"baseline + write JSON (raw lines)", true, {{0}}},
    {"parse_json, workers: 2", false, {{&sl_stage_parse_json, "workers: 2"}}},
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static struct sl_stage *add(struct sl_pipeline *p, const char *name,
                            const struct sl_stage_type *type, const char *yaml)
{
    struct sl_error err = {0};
    struct sl_config *cfg = yaml ? sl_config_parse(yaml, strlen(yaml), "bench", &err) : NULL;
    struct sl_stage *s = (!yaml || cfg) ? sl_pipeline_add(p, name, type, cfg, &err) : NULL;
    sl_config_free(cfg);
    if (!s) fprintf(stderr, "bench_stages: %s: %s\n", name, err.msg);
    return s;
}

/* One run of `c` over `l`: seconds, and the events that reached the sink. */
static double run_case(const struct bench_case *c, const struct lines *l, size_t *out)
{
    struct sl_pipeline *p = sl_pipeline_new(NULL, NULL, NULL);
    struct sl_stage *prev = add(p, "src", &src_type, NULL);
    ((struct src *)sl_stage_state(prev))->l = l;
    for (int i = 0; c->steps[i].type; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%d", i);
        struct sl_stage *s = add(p, name, c->steps[i].type, c->steps[i].yaml);
        if (!s) exit(1);
        sl_pipeline_connect(p, prev, NULL, s, NULL);
        prev = s;
    }
    struct sl_stage *sink = add(p, "sink", &sink_type, NULL);
    ((struct sink *)sl_stage_state(sink))->write = c->write;
    sl_pipeline_connect(p, prev, NULL, sink, NULL);
    struct sl_error err = {0};
    double t0 = now_s();
    int rc = sl_pipeline_run(p, &err);
    double t = now_s() - t0;
    if (rc) fprintf(stderr, "bench_stages: %s: %s\n", c->name, err.msg);
    *out = ((struct sink *)sl_stage_state(sink))->events;
    sl_pipeline_free(p);
    return t;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--generate")) {
        size_t n = strtoul(argv[2], NULL, 10);
        char line[256];
        for (size_t i = 0; i < n; i++) {
            int len = make_line(line, sizeof line, i);
            line[len] = '\n';
            fwrite(line, 1, (size_t)len + 1, stdout);
        }
        return 0;
    }
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000000;
    int passes = argc > 2 ? atoi(argv[2]) : 3;
    int only = argc > 3 ? atoi(argv[3]) : -1;
    struct lines l = generate(n);
    printf("%zu lines, %.1f MB, %.1f bytes/line\n\n", l.n, (double)l.bytes / 1e6,
           (double)l.bytes / (double)l.n);
    printf("%-52s %12s %9s %9s %8s\n", "case", "events/s", "ns/event", "net ns", "out");
    double base = 0;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        if (only >= 0 && (size_t)only != c) continue;
        double best = 1e30;
        size_t out = 0;
        for (int k = 0; k < passes; k++) {
            double t = run_case(&cases[c], &l, &out);
            if (t < best) best = t;
        }
        double ns = best * 1e9 / (double)l.n;
        if (c == 0) base = ns;
        printf("%-52s %12.0f %9.1f %9.1f %8zu\n", cases[c].name, (double)l.n / best, ns, ns - base,
               out);
    }
    free(l.buf);
    free(l.off);
    free(l.len);
    return 0;
}
