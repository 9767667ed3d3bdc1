/* Source `push`: events the embedding program offers with sl_push(), held in a bounded
 * ring until the pipeline polls them (include/sluice/push.h). A full ring refuses
 * (SL_EAGAIN); when a poll makes room after a refusal, a zero-delay timer tells the
 * program's on_room callback on the next turn of the loop, never from inside a call of
 * the program's. */
#include <stdlib.h>
#include <string.h>

#include <sluice/pipeline.h>
#include <sluice/push.h>

struct item {
    char *data; /* malloc'd copy of the payload */
    size_t len; /* its bytes */
};

struct sl_push {
    int64_t capacity;       /* option: events queued at most */
    struct sl_stage *stage; /* the source */
    struct item *ring;      /* capacity slots */
    size_t head, count;     /* first queued slot, queued events */
    bool ended;             /* sl_push_end() was called */
    bool closed;            /* the source has ended: pushes refused for good */
    bool starved;           /* a refusal is waiting for room */
    bool polled_empty;      /* the last poll found nothing: wake it on a push */
    void (*on_room)(void *arg, struct sl_push *q); /* told of room after a refusal */
    void *on_room_arg;                             /* passed to on_room */
    struct sl_timer *room_timer;                   /* calls on_room from the loop */
    struct sl_push_counts counts;                  /* the program's side */
};

static const struct sl_option push_options[] = {
    {.name = "capacity",
     .type = SL_OPT_INT,
     .def = "1024",
     .offset = offsetof(struct sl_push, capacity),
     .doc = "events queued at most; sl_push() answers SL_EAGAIN beyond",
     .range = "1..1000000"},
    {0},
};

static void tell_room(struct sl_stage *stage, void *arg)
{
    (void)stage;
    struct sl_push *q = arg;
    if (!q->starved || q->closed || q->count == (size_t)q->capacity) return;
    q->starved = false;
    q->counts.woken++;
    if (q->on_room) q->on_room(q->on_room_arg, q);
}

static int push_init(struct sl_stage *stage, const struct sl_config *cfg, struct sl_error *err)
{
    (void)cfg;
    struct sl_push *q = sl_stage_state(stage);
    q->stage = stage;
    q->ring = calloc((size_t)q->capacity, sizeof *q->ring);
    q->room_timer = sl_timer_new(stage, tell_room, q);
    if (!q->ring || !q->room_timer) return sl_error_set(err, SL_ENOMEM, "out of memory");
    return 0;
}

/* Moves queued events into a batch; the ring's copies are freed as they go. */
static enum sl_poll push_poll(struct sl_stage *stage, struct sl_batch **out)
{
    struct sl_push *q = sl_stage_state(stage);
    if (q->count == 0) {
        if (q->ended) return SL_DONE;
        q->polled_empty = true;
        return SL_PENDING; /* sl_push() wakes the stage */
    }
    struct sl_batch *b = sl_batch_new(stage);
    if (!b) return SL_ERROR;
    while (q->count && !sl_batch_full(b)) {
        struct item *it = &q->ring[q->head];
        struct sl_event *ev = sl_batch_append(b);
        char *copy = ev ? sl_event_alloc(ev, it->len ? it->len : 1) : NULL;
        if (!copy) {
            sl_batch_unref(b);
            sl_stage_error(stage, SL_ENOMEM, "out of memory");
            return SL_ERROR;
        }
        memcpy(copy, it->data, it->len);
        sl_event_set_payload(ev, copy, it->len);
        free(it->data);
        it->data = NULL;
        q->head = (q->head + 1) % (size_t)q->capacity;
        q->count--;
    }
    if (q->starved) sl_timer_start(q->room_timer, 0, false);
    *out = b;
    return SL_READY;
}

static void drop_queued(struct sl_push *q)
{
    q->counts.dropped += q->count;
    if (q->count) sl_stage_count_dropped(q->stage, q->count);
    for (; q->count; q->count--) {
        free(q->ring[q->head].data);
        q->ring[q->head].data = NULL;
        q->head = (q->head + 1) % (size_t)q->capacity;
    }
}

/* The source has ended (its end, or a stop): refuse pushes from now on. */
static int push_flush(struct sl_stage *stage, struct sl_emit *out, bool end)
{
    (void)out;
    struct sl_push *q = sl_stage_state(stage);
    if (end) {
        q->closed = true;
        drop_queued(q);
    }
    return 0;
}

static void push_close(struct sl_stage *stage)
{
    struct sl_push *q = sl_stage_state(stage);
    if (q->ring) drop_queued(q);
    free(q->ring);
    sl_timer_free(q->room_timer);
}

const struct sl_stage_type sl_stage_push = {
    .abi = SL_STAGE_ABI,
    .name = "push",
    .kind = SL_SOURCE,
    .doc = "events the embedding program pushes (sl_push), with backpressure",
    .state_size = sizeof(struct sl_push),
    .options = push_options,
    .init = push_init,
    .poll = push_poll,
    .flush = push_flush,
    .close = push_close,
};

struct sl_push *sl_push_of(struct sl_stage *stage)
{
    return stage && sl_stage_get_type(stage) == &sl_stage_push ? sl_stage_state(stage) : NULL;
}

int sl_push(struct sl_push *q, const void *data, size_t len)
{
    if (q->closed || q->ended) return SL_ECLOSED;
    if (q->count == (size_t)q->capacity) {
        q->starved = true;
        q->counts.refused++;
        return SL_EAGAIN;
    }
    char *copy = malloc(len ? len : 1);
    if (!copy) return SL_ENOMEM;
    memcpy(copy, data, len);
    q->ring[(q->head + q->count) % (size_t)q->capacity] = (struct item){copy, len};
    q->count++;
    q->counts.pushed++;
    if (q->polled_empty) {
        q->polled_empty = false;
        sl_stage_wake(q->stage);
    }
    return 0;
}

void sl_push_on_room(struct sl_push *q, void (*fn)(void *arg, struct sl_push *q), void *arg)
{
    q->on_room = fn;
    q->on_room_arg = arg;
}

size_t sl_push_room(const struct sl_push *q)
{
    return q->closed || q->ended ? 0 : (size_t)q->capacity - q->count;
}

void sl_push_end(struct sl_push *q)
{
    if (q->ended) return;
    q->ended = true;
    if (q->polled_empty) {
        q->polled_empty = false;
        sl_stage_wake(q->stage);
    }
}

/* 0.1's struct sl_push_counts ends with `dropped`. */
#define COUNTS_SIZE_0 (offsetof(struct sl_push_counts, dropped) + sizeof(uint64_t))

int sl_push_counts(const struct sl_push *q, struct sl_push_counts *out)
{
    if (out->size < COUNTS_SIZE_0) return SL_EINVAL;
    size_t size = out->size < sizeof q->counts ? out->size : sizeof q->counts;
    memcpy((char *)out + sizeof out->size, (const char *)&q->counts + sizeof out->size,
           size - sizeof out->size);
    return 0;
}
