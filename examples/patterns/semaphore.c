/* A semaphore limiting concurrent work inside a stage: asyncio's
 * `async with Semaphore(2): await upload(item)`.
 *
 * `upload` is a sink that sends each event of a batch as a request of its own, a blocking
 * call on the executor (sl_stage_submit), but never more than two at once: each request
 * first takes a permit of an sl_semaphore (sluice/stage.h) and gives it back when it
 * ends, which starts the next one waiting. The batch is acknowledged once all its
 * requests have ended. (For an asynchronous transform the runtime has the same limit
 * built in: `max_in_flight`, shown in blocking_calls.c.)
 *
 *   ./semaphore */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sluice/builtins.h>
#include <sluice/sluice.h>

struct upload {
    struct sl_semaphore *sem; /* two permits */
    struct sl_batch *b;       /* the batch being uploaded */
    struct request *reqs;     /* one per event of it */
    size_t left;              /* requests not ended */
    int running, peak;        /* requests running now, and the most at once */
    int64_t sent;             /* requests ended */
};

struct request {
    struct sl_stage *stage; /* the sink */
    size_t bytes;           /* what the "upload" sends */
};

/* Executor thread: the blocking call. */
static void request_work(void *arg)
{
    (void)arg;
    struct timespec t = {0, 1000000}; /* 1 ms on the wire */
    nanosleep(&t, NULL);
}

/* Loop thread: the request ended; give the permit back (the next one starts). */
static void request_done(struct sl_stage *stage, void *arg)
{
    (void)arg;
    struct upload *u = sl_stage_state(stage);
    u->running--;
    u->sent++;
    sl_semaphore_release(u->sem);
    if (--u->left == 0) {
        sl_ack(u->b); /* every request of the batch ended */
        u->b = NULL;
        free(u->reqs);
        u->reqs = NULL;
        sl_stage_wake(stage);
    }
}

/* Runs with a permit: start the request. */
static void request_start(void *arg)
{
    struct request *r = arg;
    struct upload *u = sl_stage_state(r->stage);
    if (++u->running > u->peak) u->peak = u->running;
    if (sl_stage_submit(r->stage, request_work, request_done, r))
        sl_stage_error(r->stage, SL_ENOMEM, "out of memory");
}

static int upload_start(struct sl_stage *stage, struct sl_error *err)
{
    struct upload *u = sl_stage_state(stage);
    u->sem = sl_semaphore_new(2);
    return u->sem ? 0 : sl_error_set(err, SL_ENOMEM, "out of memory");
}

static enum sl_poll upload_write(struct sl_stage *stage, struct sl_batch *b)
{
    struct upload *u = sl_stage_state(stage);
    size_t n = sl_batch_count(b);
    u->reqs = calloc(n ? n : 1, sizeof *u->reqs);
    if (!u->reqs) {
        sl_stage_error(stage, SL_ENOMEM, "out of memory");
        return SL_ERROR;
    }
    u->b = b;
    u->left = n;
    for (size_t i = 0; i < n; i++) {
        sl_event_payload(sl_batch_event_const(b, i), &u->reqs[i].bytes);
        u->reqs[i].stage = stage;
        sl_semaphore_acquire(u->sem, request_start, &u->reqs[i]); /* now, or when freed */
    }
    return SL_PENDING; /* taken; the next batch once this one is acknowledged */
}

static void upload_close(struct sl_stage *stage)
{
    struct upload *u = sl_stage_state(stage);
    sl_semaphore_free(u->sem);
    free(u->reqs);
}

static const struct sl_stage_type upload = {
    .abi = SL_STAGE_ABI,
    .name = "upload",
    .kind = SL_SINK,
    .doc = "sends each event as a request, two at a time",
    .state_size = sizeof(struct upload),
    .start = upload_start,
    .write = upload_write,
    .close = upload_close,
};

static const char config[] = "pipeline: {batch: {max_events: 6}, executor_threads: 8}\n"
                             "sources: {photos: {type: generate, count: 18, format: text}}\n"
                             "sinks: {up: {type: upload, inputs: [photos]}}\n";

int main(void)
{
    struct sl_error err = {0};
    struct sl_registry *reg = sl_registry_new();
    struct sl_config *cfg = sl_config_parse(config, strlen(config), "semaphore", &err);
    struct sl_pipeline_options opts;
    sl_pipeline_options_init(&opts);
    struct sl_pipeline *p = NULL;
    if (!reg || !cfg || sl_registry_add_builtins(reg, &err) ||
        sl_registry_add(reg, &upload, &err) || sl_pipeline_options_from_config(&opts, cfg, &err) ||
        !(p = sl_pipeline_new(NULL, &opts, &err)) || sl_pipeline_load(p, reg, cfg, &err) ||
        sl_pipeline_run(p, &err)) {
        char msg[1024];
        fprintf(stderr, "semaphore: %s\n", sl_error_format(&err, msg, sizeof msg));
        return 1;
    }
    struct upload *u = sl_stage_state(sl_pipeline_find(p, "up"));
    printf("requests sent: %lld, in batches of 6\n", (long long)u->sent);
    printf("requests at once, at most: %d (2 permits, 8 executor threads)\n", u->peak);
    sl_pipeline_free(p);
    sl_config_free(cfg);
    sl_registry_free(reg);
    return 0;
}
