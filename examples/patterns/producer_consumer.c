/* A bounded producer/consumer with several consumers: asyncio's Queue(maxsize) with N
 * worker tasks. A fast producer (the built-in `generate`), a CPU-bound transform run by
 * four workers (`workers: 4`, a type flagged SL_STAGE_PARALLEL), and a slow consumer
 * that acknowledges each batch a millisecond later. The queues between them hold two
 * batches: the producer is held back instead of filling memory, which the counters show:
 * every event arrives, and fewer batches are alive at once than the source makes.
 *
 *   ./producer_consumer */
#include <stdio.h>
#include <string.h>

#include <sluice/builtins.h>
#include <sluice/sluice.h>

/* ---- the consumers' work: a checksum of the payload, on any of the workers ------------- */

static int checksum_map(struct sl_stage *stage, struct sl_event *ev, struct sl_emit *out)
{
    (void)stage;
    size_t len;
    const char *p = sl_event_payload(ev, &len);
    uint64_t h = 1469598103934665603u;
    for (int round = 0; round < 200; round++)
        for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211u;
    struct sl_value sum = sl_value_int((int64_t)(h >> 40));
    int rc = sl_event_set(ev, "sum", 3, &sum);
    return rc ? rc : sl_emit(out, ev);
}

static const struct sl_stage_type checksum = {
    .abi = SL_STAGE_ABI,
    .name = "checksum",
    .kind = SL_TRANSFORM,
    .doc = "adds a checksum of the payload (CPU work)",
    .flags = SL_STAGE_PARALLEL, /* thread-safe: `workers: N` allowed */
    .map = checksum_map,
};

/* ---- the slow consumer: acknowledges each batch one millisecond later ------------------- */

struct slow {
    struct sl_batch *held;  /* the batch being "written" */
    struct sl_timer *timer; /* when it is done */
    int64_t events;         /* events acknowledged */
};

static void slow_done(struct sl_stage *stage, void *arg)
{
    (void)arg;
    struct slow *s = sl_stage_state(stage);
    s->events += (int64_t)sl_batch_count(s->held);
    sl_ack(s->held);
    s->held = NULL;
    sl_stage_wake(stage); /* ready for the next batch */
}

static int slow_start(struct sl_stage *stage, struct sl_error *err)
{
    struct slow *s = sl_stage_state(stage);
    s->timer = sl_timer_new(stage, slow_done, NULL);
    return s->timer ? 0 : sl_error_set(err, SL_ENOMEM, "out of memory");
}

static enum sl_poll slow_write(struct sl_stage *stage, struct sl_batch *b)
{
    struct slow *s = sl_stage_state(stage);
    s->held = b;
    sl_timer_start(s->timer, 1, false);
    return SL_PENDING; /* taken; send no more until sl_stage_wake() */
}

static void slow_close(struct sl_stage *stage)
{
    sl_timer_free(((struct slow *)sl_stage_state(stage))->timer);
}

static const struct sl_stage_type slow_sink = {
    .abi = SL_STAGE_ABI,
    .name = "slow",
    .kind = SL_SINK,
    .doc = "acknowledges each batch 1 ms after it came",
    .state_size = sizeof(struct slow),
    .start = slow_start,
    .write = slow_write,
    .close = slow_close,
};

static const char config[] =
    "pipeline: {batch: {max_events: 50}, queue: {max_batches: 2}}\n"
    "sources: {produce: {type: generate, count: 2000, format: json}}\n"
    "transforms: {consume: {type: checksum, workers: 4, inputs: [produce]}}\n"
    "sinks: {store: {type: slow, inputs: [consume]}}\n";

int main(void)
{
    struct sl_error err = {0};
    struct sl_registry *reg = sl_registry_new();
    struct sl_config *cfg = sl_config_parse(config, strlen(config), "producer_consumer", &err);
    struct sl_pipeline_options opts;
    sl_pipeline_options_init(&opts);
    struct sl_pipeline *p = NULL;
    if (!reg || !cfg || sl_registry_add_builtins(reg, &err) ||
        sl_registry_add(reg, &checksum, &err) || sl_registry_add(reg, &slow_sink, &err) ||
        sl_pipeline_options_from_config(&opts, cfg, &err) ||
        !(p = sl_pipeline_new(NULL, &opts, &err)) || sl_pipeline_load(p, reg, cfg, &err) ||
        sl_pipeline_run(p, &err)) {
        char msg[1024];
        fprintf(stderr, "producer_consumer: %s\n", sl_error_format(&err, msg, sizeof msg));
        return 1;
    }
    struct sl_stage_stats prod = {.size = sizeof prod}, cons = {.size = sizeof cons};
    sl_stage_stats(sl_pipeline_find(p, "produce"), &prod);
    sl_stage_stats(sl_pipeline_find(p, "consume"), &cons);
    struct slow *s = sl_stage_state(sl_pipeline_find(p, "store"));
    uint64_t peak = sl_pipeline_peak_batches(p);
    printf("produced %llu events in %llu batches\n", (unsigned long long)prod.events_out,
           (unsigned long long)prod.batches_out);
    printf("checksummed by %d threads: %llu events\n",
           sl_stage_threads(sl_pipeline_find(p, "consume")) - 1,
           (unsigned long long)cons.events_out);
    printf("stored and acknowledged: %lld events\n", (long long)s->events);
    /* Backpressure: without it the source would make all its 40 batches at once, and
     * each would be alive with what the transform made of it until the slow sink got to
     * it. With it, the queues' capacity bounds what is alive (inputs and outputs). */
    printf("batches alive at most: %s\n",
           peak < prod.batches_out ? "fewer than the source made" : "all of them");
    fprintf(stderr, "producer_consumer: peak %llu batches alive\n", (unsigned long long)peak);
    sl_pipeline_free(p);
    sl_config_free(cfg);
    sl_registry_free(reg);
    return 0;
}
