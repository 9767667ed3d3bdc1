/* Batch arenas: bump allocation in chunks, released all at once with the batch; and the
 * accounting of the memory they (and the event arrays) hold. */
#include <stdlib.h>

#include "event/internal.h"

#define ARENA_CHUNK (64 * 1024) /* default chunk; larger requests get a chunk of their own */

void sl__mem_count(struct sl__memstat *mem, int64_t delta)
{
    int64_t now = atomic_fetch_add(&mem->cur, delta) + delta;
    int64_t was = atomic_load(&mem->peak);
    while (now > was && !atomic_compare_exchange_weak(&mem->peak, &was, now)) continue;
}

static struct sl__chunk *chunk_new(size_t size)
{
    struct sl__chunk *c = malloc(sizeof *c + size);
    if (!c) return NULL;
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

void *sl__arena_alloc(struct sl__arena *a, size_t size)
{
    size = (size + 7) & ~(size_t)7;
    struct sl__chunk *c = a->head;
    if (c && c->size - c->used >= size) {
        void *p = c->data + c->used;
        c->used += size;
        return p;
    }
    /* Look for room in an older, emptied chunk (after a reset) before allocating. */
    for (struct sl__chunk **pp = c ? &c->next : NULL; pp && *pp; pp = &(*pp)->next) {
        struct sl__chunk *o = *pp;
        if (o->used == 0 && o->size >= size) {
            *pp = o->next;
            o->next = a->head;
            a->head = o;
            o->used = size;
            return o->data;
        }
    }
    struct sl__chunk *n = chunk_new(size > ARENA_CHUNK ? size : ARENA_CHUNK);
    if (!n) return NULL;
    n->next = a->head;
    a->head = n;
    a->total += n->size;
    if (a->mem) sl__mem_count(a->mem, (int64_t)n->size);
    n->used = size;
    return n->data;
}

#define SHARED_CHUNK (16 * 1024)

void *sl__arena_alloc_shared(struct sl__arena *a, size_t size)
{
    size = (size + 7) & ~(size_t)7;
    struct sl__shared_chunk *c = atomic_load_explicit(&a->shared, memory_order_acquire);
    for (;;) {
        if (c) {
            size_t off = atomic_fetch_add_explicit(&c->used, size, memory_order_relaxed);
            if (off <= c->size && c->size - off >= size) return c->data + off;
        }
        size_t cap = size > SHARED_CHUNK ? size : SHARED_CHUNK;
        struct sl__shared_chunk *n = malloc(sizeof *n + cap);
        if (!n) return NULL;
        n->next = c;
        atomic_init(&n->used, size);
        n->size = cap;
        /* Published whole (release); on a lost race, try the chunk that won. */
        if (atomic_compare_exchange_strong_explicit(&a->shared, &c, n, memory_order_acq_rel,
                                                    memory_order_acquire)) {
            if (a->mem) sl__mem_count(a->mem, (int64_t)cap);
            return n->data;
        }
        free(n);
    }
}

static void shared_free(struct sl__arena *a)
{
    struct sl__shared_chunk *c = atomic_exchange_explicit(&a->shared, NULL, memory_order_acquire);
    while (c) {
        struct sl__shared_chunk *next = c->next;
        if (a->mem) sl__mem_count(a->mem, -(int64_t)c->size);
        free(c);
        c = next;
    }
}

void sl__arena_reset(struct sl__arena *a, size_t keep)
{
    shared_free(a);
    struct sl__chunk **pp = &a->head;
    size_t kept = 0;
    while (*pp) {
        struct sl__chunk *c = *pp;
        if (kept + c->size <= keep) {
            c->used = 0;
            kept += c->size;
            pp = &c->next;
        } else {
            *pp = c->next;
            if (a->mem) sl__mem_count(a->mem, -(int64_t)c->size);
            free(c);
        }
    }
    a->total = kept;
}

void sl__arena_free(struct sl__arena *a)
{
    sl__arena_reset(a, 0);
    a->head = NULL;
}
