/* Sink retries: what the runtime does when write() answers SL_RETRY.
 *
 * The batch was not taken, so the runtime keeps it (s->retry_batch) and offers that same
 * batch again, before any other, once a delay drawn from the stage's backoff (`retry:
 * {initial, max}`) has passed. Meanwhile the sink is not run at all: its queue fills and
 * the sources stop, by the same backpressure as a slow sink, with no polling and no
 * sleep. The batch stays counted in the sink's `outstanding`, so the stage cannot end
 * while it waits. After `retry.attempts` failed attempts (0: no limit) the pipeline fails
 * with the sink's last reason, and the batch is released unacknowledged: the source
 * replays it on the next run. */
#include <stdio.h>

#include "runtime/internal.h"

static void retry_fired(struct sl_stage *s, void *arg)
{
    (void)arg;
    s->retry_armed = false;
    sl__schedule(s); /* run_sink offers retry_batch first */
}

/* Fails the pipeline (the stage's error says why), then lets the held batch go: the
 * pipeline is aborted by then, so releasing it acknowledges nothing. */
static void fail_held(struct sl_stage *s, int code)
{
    struct sl_batch *v = s->retry_batch;
    s->retry_batch = NULL;
    sl__pipeline_fail(s->p, s, code);
    s->outstanding--;
    sl__batch_release(v);
}

void sl__retry_hold(struct sl_stage *s, struct sl_batch *v)
{
    const char *why = s->retry_why[0] ? s->retry_why : "the sink asked to try again later";
    s->retry_batch = v;
    s->retry_failures++;
    uint32_t n = s->retry_failures;
    if (s->conf.retry_attempts > 0 && n >= (uint64_t)s->conf.retry_attempts) {
        sl_stage_error(s, SL_EIO, "gave up after %u attempt%s: %s", n, n == 1 ? "" : "s", why);
        fail_held(s, SL_EIO);
        return;
    }
    if (!s->retry_timer) { /* the first retry of the run */
        if (!(s->retry_timer = sl_timer_new(s, retry_fired, NULL))) {
            sl_stage_error(s, SL_ENOMEM, "out of memory arming a retry after: %s", why);
            fail_held(s, SL_ENOMEM);
            return;
        }
        sl_backoff_init(&s->backoff, s->conf.retry_initial, s->conf.retry_max);
    }
    int64_t delay = sl_backoff_next(&s->backoff);
    s->st.retries++;
    char of[32] = "";
    if (s->conf.retry_attempts > 0)
        snprintf(of, sizeof of, " of %lld", (long long)s->conf.retry_attempts);
    sl__log(s->p, s, SL_LOG_WARN, "%s; retrying in %lld ms (attempt %u%s)", why, (long long)delay,
            n + 1, of);
    s->retry_why[0] = '\0'; /* a later SL_RETRY without sl_retry() must not repeat it */
    s->retry_armed = true;
    sl_timer_start(s->retry_timer, delay, false);
}

bool sl__retry_waiting(const struct sl_stage *s)
{
    return s->retry_batch && s->retry_armed;
}

struct sl_batch *sl__retry_take(struct sl_stage *s)
{
    struct sl_batch *v = s->retry_armed ? NULL : s->retry_batch;
    if (v) s->retry_batch = NULL;
    return v;
}

void sl__retry_succeeded(struct sl_stage *s)
{
    if (!s->retry_failures) return;
    sl__log(s->p, s, SL_LOG_INFO, "writing again after %u failed attempts", s->retry_failures);
    s->retry_failures = 0;
    sl_backoff_reset(&s->backoff);
}

void sl__retry_free(struct sl_stage *s)
{
    if (s->retry_batch) { /* only once the run was aborted or failed: nothing is acked */
        s->outstanding--;
        sl__batch_release(s->retry_batch);
        s->retry_batch = NULL;
    }
    sl_timer_free(s->retry_timer);
    s->retry_timer = NULL;
    s->retry_armed = false;
}
