/* Bounded queues, one per edge: a ring of batches with a capacity in batches and bytes.
 * The scheduler runs a producer only while every queue it feeds has room, so a queue
 * holds at most its capacity in batches, but for the final flush of a stage at the end
 * of its input, which may add one batch more; the byte bound may be passed by the one
 * batch that found it just under, and an empty queue always accepts (no deadlock on a
 * batch bigger than the bound). */
#include <stdlib.h>

#include "runtime/internal.h"

struct sl_queue *sl__queue_new(uint32_t max_batches, uint64_t max_bytes)
{
    struct sl_queue *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->cap = max_batches ? max_batches : 1;
    q->ring_size = q->cap + 1;
    q->max_bytes = max_bytes;
    q->ring = calloc(q->ring_size, sizeof *q->ring);
    if (!q->ring) {
        free(q);
        return NULL;
    }
    return q;
}

void sl__queue_free(struct sl_queue *q)
{
    if (!q) return;
    struct sl_batch *b;
    while ((b = sl__queue_pop(q))) sl__batch_release(b);
    free(q->ring);
    free(q);
}

bool sl__queue_has_room(const struct sl_queue *q)
{
    if (q->count == 0) return true;
    return q->count < q->cap && (q->max_bytes == 0 || q->bytes < q->max_bytes);
}

int sl__queue_push(struct sl_queue *q, struct sl_batch *b)
{
    if (q->count == q->ring_size) {
        uint32_t size = q->ring_size * 2;
        struct sl_batch **r = malloc((size_t)size * sizeof *r);
        if (!r) return SL_ENOMEM;
        for (uint32_t i = 0; i < q->count; i++) r[i] = q->ring[(q->head + i) % q->ring_size];
        free(q->ring);
        q->ring = r;
        q->head = 0;
        q->ring_size = size;
    }
    q->ring[(q->head + q->count) % q->ring_size] = b;
    q->count++;
    q->bytes += b->bytes;
    return 0;
}

struct sl_batch *sl__queue_pop(struct sl_queue *q)
{
    if (q->count == 0) return NULL;
    struct sl_batch *b = q->ring[q->head];
    q->head = (q->head + 1) % q->ring_size;
    q->count--;
    q->bytes -= b->bytes;
    return b;
}
