/* The stages' timings for sl_stage_stats: the time each batch took in a stage, as a
 * histogram of fixed buckets (SL_STAGE_LATENCY_LE_NS), and, at sinks, the age of the
 * events received. Loop thread: the workers' jobs are counted when the loop emits them. */
#include <time.h>

#include "runtime/internal.h"

void sl__stage_time_batch(struct sl_stage *s, int64_t ns)
{
    static const long long le[] = SL_STAGE_LATENCY_LE_NS;
    if (ns < 0) ns = 0;
    uint32_t i = 0;
    while (i < SL_STAGE_LATENCY_BUCKETS - 1 && ns > le[i]) i++;
    s->st.batch_count[i]++;
    s->st.batch_ns += (uint64_t)ns;
}

/* The wall clock in ns since the epoch, the unit of sl_event_time(). */
static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void sl__sink_event_age(struct sl_stage *s, const struct sl_batch *v)
{
    if (v->n == 0) return;
    /* Two reads, not a pass over the batch: events mostly come in time order. */
    int64_t first = v->events[0].time, last = v->events[v->n - 1].time;
    int64_t newest = first > last ? first : last;
    if (newest <= 0) return; /* unknown */
    s->st.aged_batches++;
    s->st.event_age_ns = wall_ns() - newest;
}
