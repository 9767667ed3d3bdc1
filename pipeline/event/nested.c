/* The index of a nested object's members, built at the first lookup inside it.
 *
 * parse_json keeps a member whose value is an object as one field holding the object's
 * text (SL_JSON): the top level is indexed as the event's fields, the levels below are
 * read when asked. A lookup of `http.status` used to walk that text on every call; the
 * first one now walks it once (sl__json_members) and leaves the members' spans (name,
 * where the value starts) beside the event's field array, and every later lookup in that
 * object (a filter's `http.status`, then a remap's `http.path`) compares names in the
 * index and reads only the value it finds. An index says which text it indexes (its
 * address and length, and a value's text never changes while its batch lives): a field
 * set to another value simply finds none, so nothing has to be invalidated.
 *
 * Several threads may look up in one event at once (two branches reading one batch):
 * an index is built whole in memory any thread may allocate from the batch (the arena's
 * shared part), then published at the head of the array's list with a compare-and-swap;
 * two threads may both build one, and both are right. */
#include <string.h>

#include <sluice/json.h>

#include "event/internal.h"
#include "json/internal.h"

#define NOT_INDEXED UINT32_MAX /* sl__nested.n of an object read from its text */

struct sl__nested {
    struct sl__nested *next; /* the array's other indexes */
    const char *s;           /* the object's text ... */
    uint32_t len;            /* ... and its length: what the index is of */
    uint32_t n;              /* members, or NOT_INDEXED */
    struct sl__json_span m[];
};

/* Builds the index of object v and publishes it on the array's list (whose head was
 * `first` when looked at). An object that cannot be indexed (not an object; too many
 * members) gets an entry saying so, so that the walk is not tried again at every lookup. */
static const struct sl__nested *build(struct sl__fields_head *head, struct sl__nested *first,
                                      const struct sl_value *v)
{
    struct sl__json_span m[SL__NESTED_MAX];
    int n = sl__json_members(v->s, v->len, m, SL__NESTED_MAX);
    size_t k = n > 0 ? (size_t)n : 0;
    struct sl__nested *x = sl__arena_alloc_shared(&head->owner->arena, sizeof *x + k * sizeof m[0]);
    if (!x) return NULL;
    x->s = v->s;
    x->len = v->len;
    x->n = n >= 0 ? (uint32_t)n : NOT_INDEXED;
    for (size_t i = 0; i < k; i++) x->m[i] = m[i]; /* a few: no call */
    x->next = first;
    while (!atomic_compare_exchange_weak_explicit(&head->nested, &x->next, x, memory_order_release,
                                                  memory_order_acquire))
        continue;
    return n >= 0 ? x : NULL;
}

const struct sl__nested *sl__nested_index(const struct sl_event *ev, const struct sl_value *v)
{
    if (!ev->fields || v->type != SL_JSON) return NULL;
    struct sl__fields_head *head = sl__fields_head(ev->fields);
    struct sl__nested *first = atomic_load_explicit(&head->nested, memory_order_acquire);
    for (const struct sl__nested *x = first; x; x = x->next)
        if (x->s == v->s && x->len == v->len) return x->n == NOT_INDEXED ? NULL : x;
    return build(head, first, v);
}

int sl__nested_get(const struct sl__nested *x, const char *name, size_t len, struct sl_value *out)
{
    for (uint32_t i = x->n; i-- > 0;) { /* of a repeated name, the last one */
        const struct sl__json_span *m = &x->m[i];
        const char *mn = x->s + m->name_off;
        if (m->escaped ? sl__json_name_is(mn, m->name_len, name, len)
                       : m->name_len == len && memcmp(mn, name, len) == 0)
            return sl__json_value(x->s, x->len, m->value_off, out);
    }
    return SL_ENOTFOUND;
}

size_t sl__nested_count(const struct sl_event *ev)
{
    size_t n = 0;
    if (!ev->fields) return 0;
    for (const struct sl__nested *x =
             atomic_load_explicit(&sl__fields_head(ev->fields)->nested, memory_order_acquire);
         x; x = x->next)
        n++;
    return n;
}
