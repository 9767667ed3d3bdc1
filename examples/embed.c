/* examples/embed.c: a program with a libevent loop of its own, running a pipeline on it.
 *
 * The program's own work is a "sensor" that produces readings as fast as it is allowed
 * to. It pushes them into the pipeline through a push source (sluice/push.h), the C form
 * of asyncio's `await queue.put(x)` on a `Queue(maxsize)`: when the source's queue is
 * full, sl_push() says so (SL_EAGAIN) and the sensor pauses until the pipeline tells it
 * there is room (on_room). The pipeline is built from YAML with the built-in types
 * (parse_json, filter) plus two of the program's (the push source and a `tally` sink),
 * all in one registry. When the sensor has sent its 1000 readings it ends the stream;
 * the pipeline drains, tells the program (on_done), and the program leaves its loop and
 * prints the counters. A first SIGINT or SIGTERM stops the pipeline gracefully the same
 * way (sl_pipeline_stop), a second one aborts it.
 *
 *   cc embed.c $(pkg-config --cflags --libs sluice libevent_core) -o embed && ./embed */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include <sluice/builtins.h>
#include <sluice/push.h>
#include <sluice/sluice.h>

#define READINGS 1000

/* ---- the program's own sink: counts and sums what reaches it ---------------------------- */

struct tally {
    int64_t events; /* readings received */
    int64_t sum;    /* sum of their celsius */
};

static enum sl_poll tally_write(struct sl_stage *stage, struct sl_batch *b)
{
    struct tally *t = sl_stage_state(stage);
    for (size_t i = 0; i < sl_batch_count(b); i++) {
        struct sl_value v;
        if (sl_event_get(sl_batch_event_const(b, i), "celsius", 7, &v) == 0 &&
            sl_value_number(&v) == 0 && v.type == SL_INT)
            t->sum += v.i;
        t->events++;
    }
    sl_ack(b);
    return SL_READY;
}

static const struct sl_stage_type tally_sink = {
    .abi = SL_STAGE_ABI,
    .name = "tally",
    .kind = SL_SINK,
    .doc = "counts readings and sums their celsius",
    .state_size = sizeof(struct tally),
    .write = tally_write,
};

/* ---- the program ------------------------------------------------------------------------ */

static const char config[] = "pipeline: {batch: {max_events: 16}, queue: {max_batches: 2}}\n"
                             "sources:\n"
                             "  readings: {type: push, capacity: 64}\n"
                             "transforms:\n"
                             "  parse: {type: parse_json, inputs: [readings]}\n"
                             "  hot: {type: filter, inputs: [parse], condition: 'celsius >= 30'}\n"
                             "sinks:\n"
                             "  tally: {type: tally, inputs: [hot]}\n";

struct app {
    struct event_base *base;        /* the program's loop, shared with the pipeline */
    struct sl_pipeline *p;          /* the pipeline */
    struct sl_push *in;             /* its push source */
    struct event *sensor;           /* the program's own producer, run when there is room */
    struct event *sigint, *sigterm; /* stop, then abort */
    int next;                       /* readings produced */
    int waits;                      /* times the sensor paused on a full queue */
    int signals;                    /* signals seen */
    int rc;                         /* the run's result */
};

/* Pushes readings until the queue is full (then waits for on_room) or all are sent. */
static void sensor_run(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct app *a = arg;
    while (a->next < READINGS) {
        char reading[64];
        int n = snprintf(reading, sizeof reading, "{\"sensor\":\"s%d\",\"celsius\":%d}",
                         a->next % 4, a->next * 7 % 40);
        int rc = sl_push(a->in, reading, (size_t)n);
        if (rc == SL_EAGAIN) {
            a->waits++;
            return; /* on_room runs this again */
        }
        if (rc) return; /* closed: the pipeline stopped */
        a->next++;
    }
    sl_push_end(a->in); /* end of stream: the pipeline drains and ends */
}

static void on_room(void *arg, struct sl_push *q)
{
    (void)q;
    struct app *a = arg;
    event_active(a->sensor, 0, 0);
}

static void on_done(void *arg, int rc)
{
    struct app *a = arg;
    a->rc = rc;
    event_base_loopexit(a->base, NULL);
}

static void on_signal(evutil_socket_t signo, short what, void *arg)
{
    (void)what;
    struct app *a = arg;
    if (a->signals++ == 0) {
        fprintf(stderr, "embed: signal %d: stopping (again to abort)\n", (int)signo);
        sl_pipeline_stop(a->p);
    } else {
        sl_pipeline_abort(a->p);
    }
}

/* Loads the config into a pipeline on `a->base` with the built-ins and our two types. */
static int build(struct app *a, struct sl_registry *reg, struct sl_config **cfg,
                 struct sl_error *err)
{
    if (sl_registry_add_builtins(reg, err) || sl_registry_add(reg, &sl_stage_push, err) ||
        sl_registry_add(reg, &tally_sink, err))
        return -1;
    *cfg = sl_config_parse(config, strlen(config), "embed.c", err);
    if (!*cfg) return -1;
    struct sl_pipeline_options opts;
    sl_pipeline_options_init(&opts);
    if (sl_pipeline_options_from_config(&opts, *cfg, err)) return -1;
    opts.on_done = on_done;
    opts.on_done_arg = a;
    a->p = sl_pipeline_new(a->base, &opts, err);
    if (!a->p || sl_pipeline_load(a->p, reg, *cfg, err)) return -1;
    a->in = sl_push_of(sl_pipeline_find(a->p, "readings"));
    sl_push_on_room(a->in, on_room, a);
    return sl_pipeline_start(a->p, err);
}

static void print_counters(struct app *a)
{
    struct sl_push_counts pc = {.size = sizeof pc};
    sl_push_counts(a->in, &pc);
    struct tally *t = sl_stage_state(sl_pipeline_find(a->p, "tally"));
    printf("readings pushed: %llu\n", (unsigned long long)pc.pushed);
    printf("readings kept (celsius >= 30): %lld, sum %lld\n", (long long)t->events,
           (long long)t->sum);
    printf("%-10s %6s %6s\n", "stage", "in", "out");
    for (size_t i = 0; i < sl_pipeline_stage_count(a->p); i++) {
        struct sl_stage *s = sl_pipeline_stage_at(a->p, i);
        struct sl_stage_stats st = {.size = sizeof st};
        sl_stage_stats(s, &st);
        printf("%-10s %6llu %6llu\n", sl_stage_name(s), (unsigned long long)st.events_in,
               (unsigned long long)st.events_out);
    }
    printf("the sensor waited for room: %s\n", a->waits ? "yes" : "no");
    /* How often depends on how the loop interleaves: not part of the checked output. */
    fprintf(stderr, "embed: waited %d times; %llu refused, %llu woken\n", a->waits,
            (unsigned long long)pc.refused, (unsigned long long)pc.woken);
}

int main(void)
{
    struct app a = {.base = event_base_new()};
    struct sl_registry *reg = sl_registry_new();
    struct sl_config *cfg = NULL;
    struct sl_error err = {0};
    if (!a.base || !reg || build(&a, reg, &cfg, &err)) goto fail;
    a.sensor = event_new(a.base, -1, 0, sensor_run, &a);
    a.sigint = evsignal_new(a.base, SIGINT, on_signal, &a);
    a.sigterm = evsignal_new(a.base, SIGTERM, on_signal, &a);
    if (!a.sensor || !a.sigint || !a.sigterm) goto fail;
    evsignal_add(a.sigint, NULL);
    evsignal_add(a.sigterm, NULL);
    event_active(a.sensor, 0, 0); /* first turn of the sensor */
    event_base_dispatch(a.base);  /* until on_done */
    print_counters(&a);
    if (a.rc) sl_error_set(&err, a.rc, "the run failed: %s", sl_strerror(a.rc));
fail:
    if (err.code) {
        char msg[1024];
        fprintf(stderr, "embed: %s\n", sl_error_format(&err, msg, sizeof msg));
    }
    if (a.sensor) event_free(a.sensor);
    if (a.sigint) event_free(a.sigint);
    if (a.sigterm) event_free(a.sigterm);
    sl_pipeline_free(a.p);
    sl_config_free(cfg);
    sl_registry_free(reg);
    if (a.base) event_base_free(a.base);
    return err.code ? 1 : 0;
}
