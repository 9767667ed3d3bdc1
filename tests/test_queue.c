/* Bounded queues: FIFO order, capacity in batches and in bytes. */
#include <criterion/criterion.h>

#include "helpers.h"
#include "runtime/internal.h"

static struct sl_pipeline *p;
static struct sl_stage *src;

static void setup(void)
{
    p = sl_pipeline_new(NULL, NULL, NULL);
    src = t_add(p, "src", &t_counter, NULL);
}

static void teardown(void)
{
    sl_pipeline_free(p);
}

TestSuite(queue, .init = setup, .fini = teardown, .timeout = 10);

static struct sl_batch *batch_of(size_t bytes)
{
    struct sl_batch *b = sl_batch_new(src);
    struct sl_event *ev = sl_batch_append(b);
    char *data = sl_batch_alloc(b, bytes);
    memset(data, 'x', bytes);
    sl_event_set_payload(ev, data, bytes);
    return b;
}

Test(queue, fifo_order)
{
    struct sl_queue *q = sl__queue_new(4, 0);
    struct sl_batch *b[4];
    for (int i = 0; i < 4; i++) {
        b[i] = batch_of(10);
        cr_assert(sl__queue_has_room(q));
        cr_assert_eq(sl__queue_push(q, b[i]), 0);
    }
    for (int i = 0; i < 4; i++) cr_assert_eq(sl__queue_pop(q), b[i]);
    cr_assert_null(sl__queue_pop(q));
    for (int i = 0; i < 4; i++) sl_batch_unref(b[i]);
    sl__queue_free(q);
    cr_assert_eq(sl_pipeline_live_batches(p), 0);
}

Test(queue, capacity_in_batches)
{
    struct sl_queue *q = sl__queue_new(3, 0);
    for (int i = 0; i < 3; i++) {
        cr_assert(sl__queue_has_room(q), "room before batch %d", i);
        sl__queue_push(q, batch_of(1));
    }
    cr_assert_not(sl__queue_has_room(q));
    cr_assert_eq(q->count, 3);
    sl_batch_unref(sl__queue_pop(q));
    cr_assert(sl__queue_has_room(q));
    sl__queue_free(q); /* releases what is left */
    cr_assert_eq(sl_pipeline_live_batches(p), 0);
}

Test(queue, capacity_in_bytes)
{
    struct sl_queue *q = sl__queue_new(100, 1000);
    sl__queue_push(q, batch_of(600));
    cr_assert(sl__queue_has_room(q)); /* 600 < 1000 */
    sl__queue_push(q, batch_of(600));
    cr_assert_eq(q->bytes, 1200);
    cr_assert_not(sl__queue_has_room(q)); /* full by bytes with 2 of 100 batches */
    sl_batch_unref(sl__queue_pop(q));
    cr_assert_eq(q->bytes, 600);
    cr_assert(sl__queue_has_room(q));
    sl__queue_free(q);
}

Test(queue, empty_queue_takes_a_batch_larger_than_its_byte_capacity)
{
    struct sl_queue *q = sl__queue_new(4, 100);
    cr_assert(sl__queue_has_room(q));
    sl__queue_push(q, batch_of(5000));
    cr_assert_not(sl__queue_has_room(q));
    sl__queue_free(q);
}

Test(queue, final_flush_may_exceed_capacity_without_loss)
{
    struct sl_queue *q = sl__queue_new(2, 0);
    struct sl_batch *b[5];
    for (int i = 0; i < 5; i++) {
        b[i] = batch_of(1);
        cr_assert_eq(sl__queue_push(q, b[i]), 0);
    }
    cr_assert_eq(q->count, 5);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(sl__queue_pop(q), b[i]);
        sl_batch_unref(b[i]);
    }
    sl__queue_free(q);
}
