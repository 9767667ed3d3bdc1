/* Retry with exponential backoff and jitter, inside a sink of one's own, with the public
 * helper sl_backoff (stage.h): attempt k waits a random time in [0, min(cap, base * 2^k)]
 * (full jitter), and the sink gives up after a number of attempts.
 *
 * `flaky` stands for a remote service that fails a few times before it answers: each
 * batch is refused `failures` times. The sink holds the batch (answering SL_PENDING),
 * waits the backoff's delay on a timer, tries again, and acknowledges the batch once it
 * went through; after `attempts` tries it fails the pipeline. (For a sink whose write
 * can simply be offered again, answering SL_RETRY lets the runtime do the same from the
 * stage's `retry:` options.)
 *
 *   ./retry_backoff */
#include <stdio.h>
#include <string.h>

#include <sluice/builtins.h>
#include <sluice/sluice.h>

struct flaky {
    int64_t failures;       /* option: refusals per batch before it goes through */
    int64_t attempts;       /* option: tries per batch before giving up */
    struct sl_backoff bo;   /* the delays */
    struct sl_timer *timer; /* the next try */
    struct sl_batch *held;  /* the batch being sent */
    int64_t tries;          /* tries of the held batch */
};

static const struct sl_option flaky_options[] = {
    {.name = "failures",
     .type = SL_OPT_INT,
     .def = "3",
     .offset = offsetof(struct flaky, failures),
     .doc = "refusals per batch before it goes through"},
    {.name = "attempts",
     .type = SL_OPT_INT,
     .def = "5",
     .offset = offsetof(struct flaky, attempts),
     .doc = "tries per batch before giving up",
     .range = "1.."},
    {0},
};

/* The remote call: refused while the batch has been tried fewer than `failures` times. */
static bool send_batch(struct flaky *f)
{
    return f->tries > f->failures;
}

static void try_send(struct sl_stage *stage, void *arg)
{
    (void)arg;
    struct flaky *f = sl_stage_state(stage);
    f->tries++;
    if (send_batch(f)) {
        printf("try %lld: sent %zu events\n", (long long)f->tries, sl_batch_count(f->held));
        sl_ack(f->held);
        f->held = NULL;
        sl_backoff_reset(&f->bo); /* the next batch starts from the base again */
        sl_stage_wake(stage);     /* ready for the next batch */
        return;
    }
    if (f->tries == f->attempts) {
        sl_stage_error(stage, SL_EIO, "gave up after %lld attempts", (long long)f->tries);
        sl_stage_wake(stage); /* the runtime fails the pipeline on its next run */
        return;
    }
    int64_t ceiling = f->bo.initial_ms << (f->bo.attempt < 20 ? f->bo.attempt : 20);
    if (ceiling > f->bo.max_ms) ceiling = f->bo.max_ms;
    int64_t delay = sl_backoff_next(&f->bo);
    printf("try %lld: refused; next in [0, %lld] ms: %s\n", (long long)f->tries, (long long)ceiling,
           delay >= 0 && delay <= ceiling ? "yes" : "NO");
    sl_timer_start(f->timer, delay, false);
}

static int flaky_start(struct sl_stage *stage, struct sl_error *err)
{
    struct flaky *f = sl_stage_state(stage);
    sl_backoff_init(&f->bo, 2, 10); /* base 2 ms, cap 10 ms */
    f->timer = sl_timer_new(stage, try_send, NULL);
    return f->timer ? 0 : sl_error_set(err, SL_ENOMEM, "out of memory");
}

static enum sl_poll flaky_write(struct sl_stage *stage, struct sl_batch *b)
{
    struct flaky *f = sl_stage_state(stage);
    f->held = b;
    f->tries = 0;
    try_send(stage, NULL);
    return f->held ? SL_PENDING : SL_READY; /* taken either way; wait while it is held */
}

static void flaky_close(struct sl_stage *stage)
{
    struct flaky *f = sl_stage_state(stage);
    sl_timer_free(f->timer);
    if (f->held) sl_batch_unref(f->held); /* given up: not acknowledged */
}

static const struct sl_stage_type flaky = {
    .abi = SL_STAGE_ABI,
    .name = "flaky",
    .kind = SL_SINK,
    .doc = "a remote service that refuses each batch a few times",
    .state_size = sizeof(struct flaky),
    .options = flaky_options,
    .start = flaky_start,
    .write = flaky_write,
    .close = flaky_close,
};

static int run(struct sl_registry *reg, const char *yaml, struct sl_error *err)
{
    struct sl_config *cfg = sl_config_parse(yaml, strlen(yaml), "retry_backoff", err);
    struct sl_pipeline *p = cfg ? sl_pipeline_new(NULL, NULL, err) : NULL;
    int rc = !p ? -1 : sl_pipeline_load(p, reg, cfg, err);
    if (!rc) rc = sl_pipeline_run(p, err);
    sl_pipeline_free(p);
    sl_config_free(cfg);
    return rc;
}

int main(void)
{
    struct sl_error err = {0};
    struct sl_registry *reg = sl_registry_new();
    if (!reg || sl_registry_add_builtins(reg, &err) || sl_registry_add(reg, &flaky, &err)) return 1;
    printf("== three refusals, then through (attempts: 5)\n");
    int rc = run(reg,
                 "sources: {in: {type: generate, count: 3, lines: [a, b, c]}}\n"
                 "sinks: {out: {type: flaky, failures: 3, attempts: 5, inputs: [in]}}\n",
                 &err);
    printf("run: %s\n", rc ? err.msg : "ok, everything acknowledged");
    printf("== a service that never answers (attempts: 6; the ceiling stops at the cap)\n");
    sl_error_clear(&err);
    rc = run(reg,
             "sources: {in: {type: generate, count: 3, lines: [a, b, c]}}\n"
             "sinks: {out: {type: flaky, failures: 100, attempts: 6, inputs: [in]}}\n",
             &err);
    char msg[1024];
    printf("run: %s\n", rc ? sl_error_format(&err, msg, sizeof msg) : "ok");
    sl_registry_free(reg);
    return 0;
}
