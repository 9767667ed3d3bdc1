/* The `blackhole` sink: acknowledges every batch as soon as it arrives, counting what
 * went through; with `print_interval` it logs the running totals from a timer. */
#include <stddef.h>

#include <sluice/builtins.h>

#include <sluice/event.h>

struct blackhole {
    int64_t print_ms;       /* option: log totals this often, 0 = never */
    uint64_t events;        /* events taken */
    uint64_t bytes;         /* payload bytes taken */
    uint64_t last_events;   /* events at the last report */
    struct sl_timer *timer; /* print_interval */
};

static const struct sl_option blackhole_options[] = {
    {"print_interval", SL_OPT_DURATION, "0", 0, offsetof(struct blackhole, print_ms),
     "log the events and bytes taken so far this often, e.g. 10s; 0 = never"},
    {0},
};

static void report(struct sl_stage *s, void *arg)
{
    (void)arg;
    struct blackhole *h = sl_stage_state(s);
    if (h->events == h->last_events) return; /* nothing new: stay quiet */
    h->last_events = h->events;
    sl_stage_log(s, SL_LOG_INFO, "taken %llu events (%llu bytes)", (unsigned long long)h->events,
                 (unsigned long long)h->bytes);
}

static int blackhole_start(struct sl_stage *s, struct sl_error *err)
{
    struct blackhole *h = sl_stage_state(s);
    if (h->print_ms <= 0) return 0;
    h->timer = sl_timer_new(s, report, NULL);
    if (!h->timer) return sl_error_set(err, SL_ENOMEM, "out of memory");
    sl_timer_start(h->timer, h->print_ms, true);
    return 0;
}

static enum sl_poll blackhole_write(struct sl_stage *s, struct sl_batch *b)
{
    struct blackhole *h = sl_stage_state(s);
    h->events += sl_batch_count(b);
    h->bytes += sl_batch_bytes(b);
    sl_ack(b);
    return SL_READY;
}

static int blackhole_flush(struct sl_stage *s, struct sl_emit *out, bool end)
{
    (void)out;
    struct blackhole *h = sl_stage_state(s);
    if (end && h->timer) {
        sl_timer_stop(h->timer);
        report(s, NULL);
    }
    return 0;
}

static void blackhole_close(struct sl_stage *s)
{
    struct blackhole *h = sl_stage_state(s);
    sl_timer_free(h->timer);
}

const struct sl_stage_type sl_stage_blackhole = {
    .abi = SL_STAGE_ABI,
    .name = "blackhole",
    .kind = SL_SINK,
    .doc = "acknowledges and discards everything, counting it (benchmarks, tests)",
    .state_size = sizeof(struct blackhole),
    .options = blackhole_options,
    .start = blackhole_start,
    .write = blackhole_write,
    .flush = blackhole_flush,
    .close = blackhole_close,
};
