/* Exponential backoff with full jitter (sl_backoff, declared in <sluice/stage.h>).
 *
 * Full jitter (a uniform draw in [0, ceiling]) rather than a delay around the ceiling:
 * many sinks that failed together (one broker down for all) spread their retries over
 * the whole window instead of arriving in waves. Each backoff has its own generator
 * (splitmix64), so that no two retrying things share state or lock, and rand() of a
 * program that embeds the library is left alone. */
#include <stdint.h>

#include <sluice/stage.h>

#include "base/internal.h"

/* splitmix64: one 64-bit word of state, full period, good enough for jitter. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

void sl_backoff_init(struct sl_backoff *b, int64_t initial_ms, int64_t max_ms)
{
    if (initial_ms < 1) initial_ms = 1;
    if (max_ms < initial_ms) max_ms = initial_ms; /* `retry: {initial: 5s, max: 1s}`: 5 s */
    b->initial_ms = initial_ms;
    b->max_ms = max_ms;
    b->attempt = 0;
    /* The address tells apart backoffs made at the same instant (sinks started together),
     * the clock tells apart runs of the same program. */
    b->rng = ((uint64_t)(uintptr_t)b * 0x9e3779b97f4a7c15u) ^ (uint64_t)sl__now_ns();
}

/* min(max_ms, initial_ms * 2^attempt), without overflowing the shift: initial << k stays
 * within max exactly when initial <= max >> k. */
static int64_t ceiling(const struct sl_backoff *b)
{
    if (b->attempt >= 62 || b->initial_ms > (b->max_ms >> b->attempt)) return b->max_ms;
    return b->initial_ms << b->attempt;
}

int64_t sl_backoff_next(struct sl_backoff *b)
{
    uint64_t span = (uint64_t)ceiling(b) + 1;
    if (b->attempt < UINT32_MAX) b->attempt++;
    /* The modulo's bias is below span / 2^64: invisible for any delay a config can ask. */
    return (int64_t)(next_random(&b->rng) % span);
}

void sl_backoff_reset(struct sl_backoff *b)
{
    b->attempt = 0;
}

bool sl_backoff_spent(const struct sl_backoff *b, uint32_t retries)
{
    return retries && b->attempt >= retries;
}
