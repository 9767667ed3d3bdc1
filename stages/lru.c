/* A fixed-size LRU table of 128-bit keys (dedupe, throttle): open addressing with linear
 * probing over a power-of-two slot array at most half full, and a doubly linked recency
 * list through the entries. All memory is allocated once; a full table reuses the entry
 * of its least recently used key. See internal.h. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define NIL UINT32_MAX

int sl__stage_lru_init(struct sl__stage_lru *l, uint32_t cap)
{
    memset(l, 0, sizeof *l);
    if (cap == 0 || cap > (1u << 30)) return SL_EINVAL;
    uint32_t slots = 16;
    while (slots < 2 * cap) slots *= 2;
    l->e = malloc((size_t)cap * sizeof *l->e);
    l->slots = calloc(slots, sizeof *l->slots);
    if (!l->e || !l->slots) {
        sl__stage_lru_free(l);
        return SL_ENOMEM;
    }
    l->cap = cap;
    l->mask = slots - 1;
    l->head = l->tail = NIL;
    return 0;
}

void sl__stage_lru_free(struct sl__stage_lru *l)
{
    free(l->e);
    free(l->slots);
    memset(l, 0, sizeof *l);
}

static void unlink_entry(struct sl__stage_lru *l, uint32_t i)
{
    struct sl__stage_lru_entry *e = &l->e[i];
    if (e->prev != NIL)
        l->e[e->prev].next = e->next;
    else
        l->head = e->next;
    if (e->next != NIL)
        l->e[e->next].prev = e->prev;
    else
        l->tail = e->prev;
}

static void push_front(struct sl__stage_lru *l, uint32_t i)
{
    struct sl__stage_lru_entry *e = &l->e[i];
    e->prev = NIL;
    e->next = l->head;
    if (l->head != NIL) l->e[l->head].prev = i;
    l->head = i;
    if (l->tail == NIL) l->tail = i;
}

/* The slot holding `k`, or the empty slot where it would go. */
static uint32_t probe(const struct sl__stage_lru *l, struct sl__stage_key k)
{
    uint32_t s = (uint32_t)k.h1 & l->mask;
    for (;;) {
        uint32_t v = l->slots[s];
        if (v == 0) return s;
        const struct sl__stage_key *o = &l->e[v - 1].key;
        if (o->h1 == k.h1 && o->h2 == k.h2) return s;
        s = (s + 1) & l->mask;
    }
}

/* Empties slot `s` and moves later entries of its probe run back (no tombstones). */
static void remove_slot(struct sl__stage_lru *l, uint32_t s)
{
    uint32_t hole = s;
    for (uint32_t j = (s + 1) & l->mask; l->slots[j]; j = (j + 1) & l->mask) {
        uint32_t home = (uint32_t)l->e[l->slots[j] - 1].key.h1 & l->mask;
        /* The entry at j may fill the hole when its home is not inside (hole, j]. */
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (stays) continue;
        l->slots[hole] = l->slots[j];
        hole = j;
    }
    l->slots[hole] = 0;
}

struct sl__stage_lru_entry *sl__stage_lru_find(struct sl__stage_lru *l, struct sl__stage_key k)
{
    uint32_t v = l->slots[probe(l, k)];
    if (!v) return NULL;
    uint32_t i = v - 1;
    if (l->head != i) {
        unlink_entry(l, i);
        push_front(l, i);
    }
    return &l->e[i];
}

struct sl__stage_lru_entry *sl__stage_lru_add(struct sl__stage_lru *l, struct sl__stage_key k,
                                              bool *evicted)
{
    uint32_t i;
    *evicted = false;
    if (l->n < l->cap) {
        i = l->n++;
    } else {
        i = l->tail;
        unlink_entry(l, i);
        remove_slot(l, probe(l, l->e[i].key));
        *evicted = true;
    }
    struct sl__stage_lru_entry *e = &l->e[i];
    e->key = k;
    e->time = 0;
    e->count = 0;
    l->slots[probe(l, k)] = i + 1;
    push_front(l, i);
    return e;
}
