/* Timeouts and cancelling: asyncio.wait_for(call, timeout) and task.cancel().
 *
 * Part 1, a timeout on a slow stage. `fetch` is an asynchronous transform: a "fast" event
 * is answered at once; a "slow" one is a blocking call on the executor that would never
 * end by itself. Each call has a timer (option `timeout`): when it fires, the call is
 * cancelled (the blocked work is told to give up, as a CancelledError would) and the
 * event fails with the reason, to the stage's `on_error: dead_letter` output.
 *
 * Part 2, cancelling a running pipeline. A sink that holds its third batch forever; the
 * first SIGINT stops the pipeline gracefully (sources stop, what is in flight drains),
 * which cannot finish while the batch is held; the second SIGINT aborts the run: it ends
 * at once with SL_ESTOPPED, and what was not acknowledged will be read again by a
 * restart. The program raises the signals itself, so the example runs unattended.
 *
 *   ./timeout_cancel */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <sluice/builtins.h>
#include <sluice/sluice.h>

/* ---- part 1: `fetch`, with a timeout per call ---------------------------------------------- */

struct fetch {
    int64_t timeout_ms;   /* option */
    pthread_mutex_t lock; /* guards the calls' `cancelled` */
    pthread_cond_t cond;  /* signalled when a call is cancelled */
};

struct call {
    struct sl_async *async; /* the event in flight */
    struct fetch *st;       /* the stage's state */
    struct sl_timer *timer; /* the timeout */
    bool cancelled;         /* set by the timeout, read by the work */
};

static const struct sl_option fetch_options[] = {
    {.name = "timeout",
     .type = SL_OPT_DURATION,
     .def = "50ms",
     .offset = offsetof(struct fetch, timeout_ms),
     .doc = "how long a call may take"},
    {0},
};

/* Executor thread: blocks until cancelled (a call that would never answer). */
static void fetch_work(void *arg)
{
    struct call *c = arg;
    pthread_mutex_lock(&c->st->lock);
    while (!c->cancelled) pthread_cond_wait(&c->st->cond, &c->st->lock);
    pthread_mutex_unlock(&c->st->lock);
}

/* Loop thread: the timeout fired; cancel the work, whose done() then fails the event. */
static void fetch_timeout(struct sl_stage *stage, void *arg)
{
    (void)stage;
    struct call *c = arg;
    pthread_mutex_lock(&c->st->lock);
    c->cancelled = true;
    pthread_cond_broadcast(&c->st->cond);
    pthread_mutex_unlock(&c->st->lock);
}

static void fetch_done(struct sl_stage *stage, void *arg)
{
    (void)stage;
    struct call *c = arg;
    sl_timer_free(c->timer);
    sl_async_fail(c->async, SL_EAGAIN, "timed out after %lld ms", (long long)c->st->timeout_ms);
}

static int fetch_init(struct sl_stage *stage, const struct sl_config *cfg, struct sl_error *err)
{
    (void)cfg, (void)err;
    struct fetch *st = sl_stage_state(stage);
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->cond, NULL);
    return 0;
}

static int fetch_start(struct sl_stage *stage, struct sl_event *ev, struct sl_async *async)
{
    size_t len;
    const char *text = sl_event_payload(ev, &len);
    if (len >= 4 && memcmp(text, "fast", 4) == 0) {
        sl_async_done(async, SL_ASYNC_OK); /* answered at once */
        return 0;
    }
    struct call *c = (struct call *)sl_event_alloc(ev, sizeof *c);
    if (!c) return SL_ENOMEM;
    *c = (struct call){.async = async, .st = sl_stage_state(stage)};
    c->timer = sl_timer_new(stage, fetch_timeout, c);
    if (!c->timer) return SL_ENOMEM;
    sl_timer_start(c->timer, c->st->timeout_ms, false);
    return sl_stage_submit(stage, fetch_work, fetch_done, c);
}

static void fetch_close(struct sl_stage *stage)
{
    struct fetch *st = sl_stage_state(stage);
    pthread_mutex_destroy(&st->lock);
    pthread_cond_destroy(&st->cond);
}

static const struct sl_stage_type fetch = {
    .abi = SL_STAGE_ABI,
    .name = "fetch",
    .kind = SL_TRANSFORM,
    .doc = "answers fast events, times out slow ones",
    .state_size = sizeof(struct fetch),
    .options = fetch_options,
    .init = fetch_init,
    .map_async = fetch_start,
    .close = fetch_close,
};

/* ---- a sink for both parts: keeps what it gets; `hold_at` holds that batch forever ---- */

struct show {
    int64_t hold_at;       /* option: the batch number held (0: none) */
    int64_t batches;       /* batches received */
    int64_t acked;         /* events acknowledged */
    char text[512];        /* what it got, a line each, printed by main() */
    struct sl_batch *held; /* the batch never acknowledged */
};

static const struct sl_option show_options[] = {
    {.name = "hold_at",
     .type = SL_OPT_INT,
     .def = "0",
     .offset = offsetof(struct show, hold_at),
     .doc = "never acknowledge this batch (1 is the first; 0: none)"},
    {0},
};

static enum sl_poll show_write(struct sl_stage *stage, struct sl_batch *b)
{
    struct show *s = sl_stage_state(stage);
    if (++s->batches == s->hold_at) {
        printf("%s: holds batch %lld and raises SIGINT\n", sl_stage_name(stage),
               (long long)s->batches);
        raise(SIGINT);     /* told on the loop, after this call */
        return SL_PENDING; /* taken, never acknowledged: the drain cannot end */
    }
    for (size_t i = 0; s->hold_at == 0 && i < sl_batch_count(b); i++) {
        const struct sl_event *ev = sl_batch_event_const(b, i);
        size_t len;
        const char *text = sl_event_payload(ev, &len);
        struct sl_value why;
        size_t used = strlen(s->text);
        if (sl_event_get(ev, "error", 5, &why) == 0)
            snprintf(s->text + used, sizeof s->text - used, "%s: %.*s (%.*s)\n",
                     sl_stage_name(stage), (int)len, text, (int)why.len, why.s);
        else
            snprintf(s->text + used, sizeof s->text - used, "%s: %.*s\n", sl_stage_name(stage),
                     (int)len, text);
    }
    s->acked += (int64_t)sl_batch_count(b);
    sl_ack(b);
    return SL_READY;
}

/* After an abort: the held batch is given back unacknowledged (a restart replays it). */
static void show_close(struct sl_stage *stage)
{
    struct show *s = sl_stage_state(stage);
    if (s->held) sl_batch_unref(s->held);
}

static const struct sl_stage_type show = {
    .abi = SL_STAGE_ABI,
    .name = "show",
    .kind = SL_SINK,
    .doc = "prints events (or holds one batch)",
    .state_size = sizeof(struct show),
    .options = show_options,
    .write = show_write,
    .close = show_close,
};

/* ---- the program ---------------------------------------------------------------------------- */

static const char part1[] =
    "sources: {calls: {type: generate, count: 4, lines: [fast 1, slow 2, fast 3, slow 4]}}\n"
    "transforms:\n"
    "  fetch: {type: fetch, timeout: 50ms, max_in_flight: 4, ordered: true,\n"
    "          on_error: dead_letter, inputs: [calls]}\n"
    "sinks:\n"
    "  answered: {type: show, inputs: [fetch]}\n"
    "  timed_out: {type: show, inputs: [fetch.dead_letter]}\n";

static const char part2[] = "pipeline: {batch: {max_events: 10}, shutdown_timeout: 1h}\n"
                            "sources: {endless: {type: generate, count: 0, lines: [tick]}}\n"
                            "sinks: {stuck: {type: show, hold_at: 3, inputs: [endless]}}\n";

static void on_signal(void *arg, int signo, int count)
{
    (void)arg;
    if (count == 1) {
        printf("signal %d, the first: stop gracefully (sources stop, in-flight drains)\n", signo);
        raise(SIGINT); /* a user losing patience */
    } else {
        printf("signal %d, the second: abort\n", signo);
    }
}

/* Loads and runs `yaml`; returns the run's code, the pipeline in *out (owned). */
static int run(struct sl_registry *reg, const char *yaml, struct sl_config **cfg,
               struct sl_pipeline **out, struct sl_error *err)
{
    struct sl_pipeline_options opts;
    sl_pipeline_options_init(&opts);
    *cfg = sl_config_parse(yaml, strlen(yaml), "timeout_cancel", err);
    if (!*cfg || sl_pipeline_options_from_config(&opts, *cfg, err)) return -1;
    if (!(*out = sl_pipeline_new(NULL, &opts, err)) || sl_pipeline_load(*out, reg, *cfg, err) ||
        sl_pipeline_catch_signals(*out, on_signal, NULL))
        return -1;
    return sl_pipeline_run(*out, err);
}

int main(void)
{
    struct sl_error err = {0};
    struct sl_registry *reg = sl_registry_new();
    struct sl_config *cfg = NULL;
    struct sl_pipeline *p = NULL;
    if (!reg || sl_registry_add_builtins(reg, &err) || sl_registry_add(reg, &fetch, &err) ||
        sl_registry_add(reg, &show, &err) || run(reg, part1, &cfg, &p, &err))
        goto fail;
    printf("== part 1: a timeout per call\n%s%s",
           ((struct show *)sl_stage_state(sl_pipeline_find(p, "answered")))->text,
           ((struct show *)sl_stage_state(sl_pipeline_find(p, "timed_out")))->text);
    sl_pipeline_free(p);
    sl_config_free(cfg);
    printf("== part 2: cancelling a running pipeline\n");
    fflush(stdout);
    int rc = run(reg, part2, &cfg, &p, &err);
    struct show *s = sl_stage_state(sl_pipeline_find(p, "stuck"));
    printf("the run ended: %s; %lld events acknowledged before the held batch\n",
           rc == SL_ESTOPPED ? "aborted (SL_ESTOPPED)" : sl_strerror(rc), (long long)s->acked);
    sl_pipeline_free(p);
    sl_config_free(cfg);
    sl_registry_free(reg);
    return rc == SL_ESTOPPED ? 0 : 1;
fail:;
    char msg[1024];
    fprintf(stderr, "timeout_cancel: %s\n", sl_error_format(&err, msg, sizeof msg));
    return 1;
}
