/* Batches: events plus one arena, reference-counted, recycled through a small pool.
 *
 * A transform's output batch points into its input's memory, so it holds a reference
 * to its input (a parent). A source batch is therefore released only when every batch
 * derived from it has been acknowledged or dropped, and that moment, told to the runtime
 * through the home's `completed` hook, is its acknowledgement. Reference counts are touched on the loop thread only; the pool is
 * locked because worker threads take output batches from it. */
#include <stdlib.h>
#include <string.h>

#include "event/internal.h"

#define POOL_MAX    32         /* free batches kept for reuse */
#define ARENA_KEEP  (1u << 20) /* arena bytes a pooled batch keeps */
#define EVENTS_KEEP 8192       /* event slots a pooled batch keeps */

static void note_live(struct sl__batch_home *h)
{
    uint64_t now = atomic_fetch_add(&h->live, 1) + 1;
    uint64_t peak = atomic_load(&h->peak_live);
    while (now > peak && !atomic_compare_exchange_weak(&h->peak_live, &peak, now)) continue;
}

static int64_t events_bytes(uint32_t cap)
{
    return (int64_t)cap * (int64_t)sizeof(struct sl_event);
}

void sl__batch_home_init(struct sl__batch_home *h, uint32_t max_events, uint64_t max_bytes)
{
    pthread_mutex_init(&h->pool_lock, NULL);
    h->max_events = max_events;
    h->max_bytes = max_bytes;
}

struct sl_batch *sl__batch_get(struct sl__batch_home *h)
{
    pthread_mutex_lock(&h->pool_lock);
    struct sl_batch *b = h->pool;
    if (b) {
        h->pool = b->next;
        h->pool_count--;
    }
    pthread_mutex_unlock(&h->pool_lock);
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b) return NULL;
    }
    b->home = h;
    b->arena.mem = &h->mem;
    b->n = 0;
    b->bytes = 0;
    b->refs = 1;
    b->nparents = 0;
    b->source = NULL;
    b->sink = NULL;
    b->view_of = NULL;
    b->next = NULL;
    b->seq = 0;
    b->cookie = 0;
    b->completed = false;
    b->released = false;
    b->holds = 0;
    b->nacks = 0;
    note_live(h);
    return b;
}

static void batch_destroy(struct sl_batch *b)
{
    sl__arena_free(&b->arena);
    if (b->events) sl__mem_count(&b->home->mem, -events_bytes(b->cap));
    free(b->events);
    free(b->more_parents);
    free(b->acks);
    free(b);
}

void sl__batch_recycle(struct sl_batch *b)
{
    struct sl__batch_home *h = b->home;
    atomic_fetch_sub(&h->live, 1);
    if (b->view_of) { /* views alias another batch's events: never pooled */
        free(b);
        return;
    }
    sl__arena_reset(&b->arena, ARENA_KEEP);
    if (b->cap > EVENTS_KEEP) {
        sl__mem_count(&h->mem, -events_bytes(b->cap));
        free(b->events);
        b->events = NULL;
        b->cap = 0;
    }
    pthread_mutex_lock(&h->pool_lock);
    if (h->pool_count < POOL_MAX) {
        b->next = h->pool;
        h->pool = b;
        h->pool_count++;
        b = NULL;
    }
    pthread_mutex_unlock(&h->pool_lock);
    if (b) batch_destroy(b);
}

void sl__batch_home_free(struct sl__batch_home *h)
{
    while (h->pool) {
        struct sl_batch *b = h->pool;
        h->pool = b->next;
        batch_destroy(b);
    }
    h->pool_count = 0;
    pthread_mutex_destroy(&h->pool_lock);
}

int sl__batch_reserve(struct sl_batch *b, uint32_t n)
{
    if (n <= b->cap) return 0;
    uint32_t cap = b->cap ? b->cap : 64;
    while (cap < n) cap *= 2;
    struct sl_event *ev = realloc(b->events, (size_t)cap * sizeof *ev);
    if (!ev) return SL_ENOMEM;
    sl__mem_count(&b->home->mem, events_bytes(cap) - events_bytes(b->cap));
    b->events = ev;
    b->cap = cap;
    return 0;
}

struct sl_event *sl_batch_append(struct sl_batch *b)
{
    if (b->n == b->cap && sl__batch_reserve(b, b->n + 1)) return NULL;
    struct sl_event *ev = &b->events[b->n++];
    sl__event_init(ev, b);
    return ev;
}

void *sl_batch_alloc(struct sl_batch *b, size_t size)
{
    return sl__arena_alloc(&b->arena, size ? size : 1);
}

size_t sl_batch_count(const struct sl_batch *b)
{
    return b->n;
}

struct sl_event *sl_batch_event(struct sl_batch *b, size_t i)
{
    return i < b->n && b->events ? &b->events[i] : NULL;
}

const struct sl_event *sl_batch_event_const(const struct sl_batch *b, size_t i)
{
    return i < b->n && b->events ? &b->events[i] : NULL;
}

size_t sl_batch_bytes(const struct sl_batch *b)
{
    return b->bytes;
}

bool sl_batch_full(const struct sl_batch *b)
{
    return b->n >= b->home->max_events || b->bytes >= b->home->max_bytes;
}

void sl_batch_set_cookie(struct sl_batch *b, uint64_t cookie)
{
    b->cookie = cookie;
}

uint64_t sl_batch_cookie(const struct sl_batch *b)
{
    return b->cookie;
}

int sl__batch_add_parent(struct sl_batch *b, struct sl_batch *parent)
{
    if (b->nparents < SL__INLINE_PARENTS) {
        parent->refs++;
        b->parents[b->nparents++] = parent;
        return 0;
    }
    uint32_t extra = b->nparents - SL__INLINE_PARENTS;
    if (extra == b->parents_cap) {
        uint32_t cap = b->parents_cap ? b->parents_cap * 2 : 4;
        struct sl_batch **np = realloc(b->more_parents, cap * sizeof *np);
        if (!np) return SL_ENOMEM;
        b->more_parents = np;
        b->parents_cap = cap;
    }
    parent->refs++;
    b->more_parents[extra] = parent;
    b->nparents++;
    return 0;
}

static void release_parents(struct sl_batch *b)
{
    uint32_t n = b->nparents;
    b->nparents = 0;
    for (uint32_t i = 0; i < n; i++)
        sl__batch_release(i < SL__INLINE_PARENTS ? b->parents[i]
                                                 : b->more_parents[i - SL__INLINE_PARENTS]);
}

static void complete(struct sl_batch *b)
{
    b->released = false;
    b->completed = true; /* kept until the source has taken its acks in order */
    b->home->completed(b);
}

void sl__ack_drop(struct sl_batch *src)
{
    if (--src->holds == 0 && src->released && !src->home->aborted) complete(src);
}

int sl__batch_hold_ack(struct sl_batch *b, struct sl_batch *src)
{
    if (b->nacks == b->acks_cap) {
        uint32_t cap = b->acks_cap ? b->acks_cap * 2 : 8;
        struct sl_batch **na = realloc(b->acks, cap * sizeof *na);
        if (!na) return SL_ENOMEM;
        b->acks = na;
        b->acks_cap = cap;
    }
    src->holds++;
    b->acks[b->nacks++] = src;
    return 0;
}

static void release_acks(struct sl_batch *b)
{
    uint32_t n = b->nacks;
    b->nacks = 0;
    for (uint32_t i = 0; i < n; i++) sl__ack_drop(b->acks[i]);
}

void sl__batch_release(struct sl_batch *b)
{
    if (!b || --b->refs > 0) return;
    release_parents(b);
    release_acks(b);
    struct sl_batch *of = b->view_of;
    if (b->source && !b->home->aborted) {
        if (b->holds) { /* its memory can go; its acknowledgement waits for the holds */
            sl__arena_reset(&b->arena, 0);
            sl__mem_count(&b->home->mem, -events_bytes(b->cap));
            free(b->events);
            b->events = NULL; /* sl_batch_count() still answers; the events are gone */
            b->cap = 0;
            b->released = true;
            return;
        }
        complete(b);
        return;
    }
    if (!b->source) sl__batch_recycle(b); /* aborted source batches stay with their source */
    sl__batch_release(of);
}

struct sl_batch *sl__batch_view(struct sl_batch *b, struct sl_stage *sink)
{
    struct sl_batch *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->home = b->home;
    v->events = b->events;
    v->n = b->n;
    v->cap = b->n;
    v->bytes = b->bytes;
    v->refs = 1;
    v->sink = sink;
    v->view_of = b;
    v->cookie = b->cookie;
    b->refs++;
    note_live(b->home);
    return v;
}

void sl_batch_ref(struct sl_batch *b)
{
    b->refs++;
}

void sl_batch_unref(struct sl_batch *b)
{
    sl__batch_release(b);
}

void sl_ack(struct sl_batch *b)
{
    if (!b) return;
    struct sl_stage *sink = b->sink;
    b->sink = NULL;
    if (sink) b->home->acked(sink, b);
    sl__batch_release(b);
}
