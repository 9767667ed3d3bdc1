/* The registry of stage types: name -> type, filled by the CLI or a user's program. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/registry.h>

#include "config/internal.h"

struct sl_registry *sl_registry_new(void)
{
    return calloc(1, sizeof(struct sl_registry));
}

void sl_registry_free(struct sl_registry *reg)
{
    if (!reg) return;
    free(reg->types);
    sl__registry_release(reg);
    free(reg);
}

static bool has_callback(const struct sl_stage_type *t)
{
    switch (t->kind) {
    case SL_SOURCE: return t->poll != NULL;
    case SL_TRANSFORM: return (t->map != NULL) != (t->map_async != NULL); /* one of them */
    case SL_FILTER: return t->keep != NULL;
    case SL_SINK: return t->write != NULL;
    }
    return false;
}

int sl__type_check(const struct sl_stage_type *t, struct sl_error *err)
{
    if (t->abi >= 1 && t->abi < SL_STAGE_ABI) /* sl_pipeline_add without a registry */
        return sl_error_set(err, SL_EINVAL,
                            "stage type '%s' is of stage ABI %d: add it to a registry "
                            "(sl_registry_add), which reads older tables, and use its copy",
                            t->name ? t->name : "?", t->abi);
    if (t->abi != SL_STAGE_ABI)
        return sl_error_set(err, SL_EINVAL, "stage type '%s': abi %d, this library speaks %d",
                            t->name ? t->name : "?", t->abi, SL_STAGE_ABI);
    if (!t->name || !*t->name) return sl_error_set(err, SL_EINVAL, "stage type without a name");
    if (t->kind < SL_SOURCE || t->kind > SL_SINK)
        return sl_error_set(err, SL_EINVAL, "stage type '%s': unknown kind %d", t->name,
                            (int)t->kind);
    if (!has_callback(t))
        return sl_error_set(err, SL_EINVAL,
                            "stage type '%s' lacks the callback of its kind (a transform has "
                            "map or map_async, not both)",
                            t->name);
    char who[96];
    snprintf(who, sizeof who, "stage type '%.64s'", t->name);
    return sl__schema_check(t->options, t->state_size, t, who, err);
}

static int add(struct sl_registry *reg, const struct sl_stage_type *type, struct sl_error *err)
{
    int rc = sl__type_current(reg, type, &type, err);
    if (!rc) rc = sl__type_check(type, err);
    if (rc) return rc;
    if (sl_registry_find(reg, type->name, (int)type->kind))
        return sl_error_set(err, SL_EEXIST, "stage type '%s' is registered already", type->name);
    if (reg->n == reg->cap) {
        size_t cap = reg->cap ? reg->cap * 2 : 16;
        const struct sl_stage_type **nt = realloc(reg->types, cap * sizeof *nt);
        if (!nt) return sl_error_set(err, SL_ENOMEM, "out of memory");
        reg->types = nt;
        reg->cap = cap;
    }
    reg->types[reg->n++] = type;
    return 0;
}

/* While a plugin initialises (reg->loading), its first failure is kept for the loader,
 * which names the file. */
int sl_registry_add(struct sl_registry *reg, const struct sl_stage_type *type, struct sl_error *err)
{
    struct sl_error e = {0};
    int rc = add(reg, type, &e);
    if (rc) sl__error_copy(err, &e);
    if (rc && reg->loading && !reg->load_err.code) reg->load_err = e;
    return rc;
}

/* Sources and sinks are their own kinds; transforms and filters share the transforms
 * section of a config, so they match each other. */
static bool kind_matches(enum sl_kind have, int want)
{
    if (want < 0 || (int)have == want) return true;
    bool mid_have = have == SL_TRANSFORM || have == SL_FILTER;
    bool mid_want = want == SL_TRANSFORM || want == SL_FILTER;
    return mid_have && mid_want;
}

const struct sl_stage_type *sl_registry_find(const struct sl_registry *reg, const char *name,
                                             int kind)
{
    for (size_t i = 0; i < reg->n; i++)
        if (strcmp(reg->types[i]->name, name) == 0 && kind_matches(reg->types[i]->kind, kind))
            return reg->types[i];
    return NULL;
}

size_t sl_registry_count(const struct sl_registry *reg)
{
    return reg->n;
}

const struct sl_stage_type *sl_registry_at(const struct sl_registry *reg, size_t i)
{
    return i < reg->n ? reg->types[i] : NULL;
}

const char *sl_registry_suggest(const struct sl_registry *reg, const char *name)
{
    const char **names = malloc((reg->n ? reg->n : 1) * sizeof *names);
    if (!names) return NULL;
    for (size_t i = 0; i < reg->n; i++) names[i] = reg->types[i]->name;
    const char *best = sl__nearest(name, names, reg->n);
    free(names);
    return best;
}
