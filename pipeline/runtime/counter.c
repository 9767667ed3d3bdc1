/* Counters of a stage's own (sl_stage_counter, declared in <sluice/stage.h>): a list
 * made on the loop thread while the stage starts, read by /metrics and added to from any
 * thread (atomics). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/internal.h"

struct sl_counter {
    struct sl_counter *next; /* the next one made */
    char *name;              /* [a-z0-9_]+ */
    char *help;              /* one line */
    _Atomic uint64_t value;
};

static bool good_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
              name[i] == '_'))
            return false;
    return true;
}

struct sl_counter *sl_stage_counter(struct sl_stage *stage, const char *name, const char *help)
{
    if (!name || !good_name(name)) return NULL;
    struct sl_counter **pp = &stage->counters;
    for (; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->name, name)) return *pp;
    struct sl_counter *c = calloc(1, sizeof *c);
    if (!c || !(c->name = strdup(name)) || !(c->help = strdup(help ? help : name))) {
        if (c) free(c->name);
        free(c);
        return NULL;
    }
    return *pp = c; /* published before any thread that adds to it is told of it */
}

void sl_counter_add(struct sl_counter *c, uint64_t n)
{
    if (c) atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

void sl_stage_counters(const struct sl_stage *stage,
                       void (*fn)(void *arg, const char *name, const char *help, uint64_t value),
                       void *arg)
{
    for (const struct sl_counter *c = stage->counters; c; c = c->next)
        fn(arg, c->name, c->help, atomic_load_explicit(&c->value, memory_order_relaxed));
}

void sl__counters_free(struct sl_stage *s)
{
    while (s->counters) {
        struct sl_counter *c = s->counters;
        s->counters = c->next;
        free(c->name);
        free(c->help);
        free(c);
    }
}
