/* What a sqlite_lookup remembers: an LRU cache of rows by key, each entry used for at
 * most cache_ttl, and the table of lookups in flight, which later events with the same
 * key join instead of asking the database again. Keys are compared byte for byte (the
 * hash only picks the chain). Both live on the loop thread. See lookup.h. */
#include <stdlib.h>
#include <string.h>

#include "lookup.h"

struct sl__lookup_entry {
    struct sl__lookup_entry *chain;       /* next in the bucket */
    struct sl__lookup_entry *prev, *next; /* recency list: prev is more recent */
    uint64_t hash;                        /* of key */
    int64_t expires_ms;                   /* INT64_MAX: never */
    struct sl__lookup_row *row;           /* owned; NULL: the key has no row */
    size_t len;                           /* bytes of key */
    char key[];                           /* the key */
};

uint64_t sl__lookup_hash(const void *p, size_t len)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    h ^= h >> 33, h *= 0xff51afd7ed558ccdull, h ^= h >> 33; /* spread into the low bits */
    return h;
}

/* ---- the cache ----------------------------------------------------------------------------- */

int sl__lookup_cache_init(struct sl__lookup_cache *c, uint32_t cap, int64_t ttl_ms)
{
    memset(c, 0, sizeof *c);
    uint32_t buckets = 16;
    while (buckets < cap && buckets < (1u << 30)) buckets *= 2;
    if (!(c->buckets = calloc(buckets, sizeof *c->buckets))) return SL_ENOMEM;
    c->mask = buckets - 1;
    c->cap = cap ? cap : 1;
    c->ttl_ms = ttl_ms;
    return 0;
}

void sl__lookup_cache_free(struct sl__lookup_cache *c)
{
    for (struct sl__lookup_entry *e = c->head, *next; e; e = next) {
        next = e->next;
        free(e->row);
        free(e);
    }
    free(c->buckets);
    memset(c, 0, sizeof *c);
}

static void unlink_recency(struct sl__lookup_cache *c, struct sl__lookup_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
}

static void push_front(struct sl__lookup_cache *c, struct sl__lookup_entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head) c->head->prev = e;
    c->head = e;
    if (!c->tail) c->tail = e;
}

/* The link that points at the entry of `key`, or at the end of its chain. */
static struct sl__lookup_entry **find(struct sl__lookup_cache *c, const char *key, size_t len,
                                      uint64_t h)
{
    struct sl__lookup_entry **pp = &c->buckets[h & c->mask];
    while (*pp && !((*pp)->hash == h && (*pp)->len == len && memcmp((*pp)->key, key, len) == 0))
        pp = &(*pp)->chain;
    return pp;
}

/* Forgets the entry `*pp` points at. */
static void forget(struct sl__lookup_cache *c, struct sl__lookup_entry **pp)
{
    struct sl__lookup_entry *e = *pp;
    *pp = e->chain;
    unlink_recency(c, e);
    c->n--;
    free(e->row);
    free(e);
}

bool sl__lookup_cache_get(struct sl__lookup_cache *c, const char *key, size_t len, uint64_t h,
                          int64_t now_ms, const struct sl__lookup_row **row)
{
    struct sl__lookup_entry **pp = find(c, key, len, h), *e = *pp;
    if (!e) return false;
    if (now_ms >= e->expires_ms) {
        forget(c, pp);
        return false;
    }
    if (c->head != e) {
        unlink_recency(c, e);
        push_front(c, e);
    }
    *row = e->row;
    return true;
}

int sl__lookup_cache_put(struct sl__lookup_cache *c, const char *key, size_t len, uint64_t h,
                         struct sl__lookup_row *row, int64_t now_ms)
{
    struct sl__lookup_entry **pp = find(c, key, len, h);
    if (*pp) forget(c, pp); /* a newer answer for the key */
    if (c->n >= c->cap) {   /* the least recently used goes */
        struct sl__lookup_entry *old = c->tail;
        forget(c, find(c, old->key, old->len, old->hash));
    }
    struct sl__lookup_entry *e = malloc(sizeof *e + len);
    if (!e) {
        free(row);
        return SL_ENOMEM;
    }
    *e = (struct sl__lookup_entry){.hash = h,
                                   .row = row,
                                   .len = len,
                                   .expires_ms = c->ttl_ms ? now_ms + c->ttl_ms : INT64_MAX};
    memcpy(e->key, key, len);
    pp = &c->buckets[h & c->mask];
    e->chain = *pp;
    *pp = e;
    push_front(c, e);
    c->n++;
    return 0;
}

/* ---- lookups in flight ------------------------------------------------------------------- */

static int flights_grow(struct sl__lookup_flights *t)
{
    uint32_t n = t->buckets ? (t->mask + 1) * 2 : 64;
    struct sl__lookup_flight **b = calloc(n, sizeof *b);
    if (!b) return SL_ENOMEM;
    for (uint32_t i = 0; t->buckets && i <= t->mask; i++)
        for (struct sl__lookup_flight *f = t->buckets[i], *next; f; f = next) {
            next = f->chain;
            f->chain = b[f->hash & (n - 1)];
            b[f->hash & (n - 1)] = f;
        }
    free(t->buckets);
    t->buckets = b;
    t->mask = n - 1;
    return 0;
}

int sl__lookup_flights_add(struct sl__lookup_flights *t, struct sl__lookup_flight *f)
{
    if ((!t->buckets || t->n >= t->mask + 1) && flights_grow(t)) return SL_ENOMEM;
    struct sl__lookup_flight **pp = &t->buckets[f->hash & t->mask];
    f->chain = *pp;
    *pp = f;
    t->n++;
    return 0;
}

struct sl__lookup_flight *sl__lookup_flights_find(const struct sl__lookup_flights *t,
                                                  const char *key, size_t len, uint64_t h)
{
    if (!t->buckets) return NULL;
    for (struct sl__lookup_flight *f = t->buckets[h & t->mask]; f; f = f->chain)
        if (f->hash == h && f->len == len && memcmp(f->key, key, len) == 0) return f;
    return NULL;
}

void sl__lookup_flights_remove(struct sl__lookup_flights *t, struct sl__lookup_flight *f)
{
    if (!t->buckets) return;
    for (struct sl__lookup_flight **pp = &t->buckets[f->hash & t->mask]; *pp; pp = &(*pp)->chain)
        if (*pp == f) {
            *pp = f->chain;
            t->n--;
            return;
        }
}

void sl__lookup_flights_free(struct sl__lookup_flights *t)
{
    free(t->buckets);
    memset(t, 0, sizeof *t);
}
