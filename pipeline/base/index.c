/* A hash index from names to entry numbers, over entries the caller keeps: the index
 * holds numbers only and asks the caller for an entry's name when it must compare or
 * rehash. Open addressing, linear probing, at most half full. Lookups of stages by name
 * and of keys in large config mappings go through it, so that a config of 100,000 stages
 * loads in linear time. */
#include <stdlib.h>
#include <string.h>

#include "base/internal.h"

static uint64_t hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 33);
}

static bool same(const struct sl__index *x, uint32_t entry, const char *key, size_t len)
{
    size_t el;
    const char *e = x->name_of(x->arg, entry, &el);
    return el == len && memcmp(e, key, len) == 0;
}

static void put(uint32_t *slots, uint32_t mask, uint64_t h, uint32_t entry)
{
    uint32_t i = (uint32_t)h & mask;
    while (slots[i]) i = (i + 1) & mask;
    slots[i] = entry + 1;
}

static int grow(struct sl__index *x)
{
    uint32_t cap = x->cap ? x->cap * 2 : 64;
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (!slots) return SL_ENOMEM;
    for (uint32_t i = 0; i < x->cap; i++) {
        if (!x->slots[i]) continue;
        size_t len;
        const char *name = x->name_of(x->arg, x->slots[i] - 1, &len);
        put(slots, cap - 1, hash(name, len), x->slots[i] - 1);
    }
    free(x->slots);
    x->slots = slots;
    x->cap = cap;
    return 0;
}

void sl__index_init(struct sl__index *x, sl__index_name_fn *name_of, void *arg)
{
    memset(x, 0, sizeof *x);
    x->name_of = name_of;
    x->arg = arg;
}

int sl__index_add(struct sl__index *x, uint32_t entry)
{
    if ((x->n + 1) * 2 > x->cap && grow(x)) return SL_ENOMEM;
    size_t len;
    const char *name = x->name_of(x->arg, entry, &len);
    put(x->slots, x->cap - 1, hash(name, len), entry);
    x->n++;
    return 0;
}

int64_t sl__index_find(const struct sl__index *x, const char *key, size_t len)
{
    if (!x->cap) return -1;
    uint32_t mask = x->cap - 1, i = (uint32_t)hash(key, len) & mask;
    for (; x->slots[i]; i = (i + 1) & mask)
        if (same(x, x->slots[i] - 1, key, len)) return x->slots[i] - 1;
    return -1;
}

void sl__index_free(struct sl__index *x)
{
    free(x->slots);
    x->slots = NULL;
    x->cap = x->n = 0;
}
