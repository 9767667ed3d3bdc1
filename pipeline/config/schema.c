/* Checking an option table before it is trusted. A stage type's table comes from a
 * plugin as often as from this tree: every offset it names is written to, every default
 * parsed, so a table is checked once, when its type is registered, and refused with a
 * message that names the type and the option. */
#include <stdalign.h>
#include <stdio.h>
#include <string.h>

#include "config/internal.h"

/* Bytes and alignment of the C value an option of `type` fills in; 0 for no such type. */
static size_t value_size(enum sl_opt_type type, size_t *align)
{
    switch (type) {
    case SL_OPT_STRING:
    case SL_OPT_MAP:
    case SL_OPT_ANY:
    case SL_OPT_EXPR:
    case SL_OPT_TEMPLATE: *align = alignof(void *); return sizeof(void *);
    case SL_OPT_INT:
    case SL_OPT_DURATION: *align = alignof(int64_t); return sizeof(int64_t);
    case SL_OPT_SIZE: *align = alignof(uint64_t); return sizeof(uint64_t);
    case SL_OPT_FLOAT: *align = alignof(double); return sizeof(double);
    case SL_OPT_BOOL: *align = alignof(bool); return sizeof(bool);
    case SL_OPT_ENUM: *align = alignof(int); return sizeof(int);
    case SL_OPT_LIST: *align = alignof(struct sl_list); return sizeof(struct sl_list);
    }
    return 0;
}

static bool numeric(enum sl_opt_type t)
{
    return t == SL_OPT_INT || t == SL_OPT_FLOAT || t == SL_OPT_DURATION || t == SL_OPT_SIZE;
}

/* A default must be a value of its option: checked by parsing it. */
static bool default_parses(const struct sl_option *o)
{
    union {
        int64_t i;
        uint64_t u;
        double f;
        bool b;
    } v;
    if (o->type == SL_OPT_INT && o->choices && sl__enum_index(o->choices, o->def) >= 0) return true;
    switch (o->type) {
    case SL_OPT_INT:
    case SL_OPT_FLOAT:
    case SL_OPT_BOOL:
    case SL_OPT_DURATION:
    case SL_OPT_SIZE: return sl__option_scalar(o->type, o->def, &v) == 0;
    case SL_OPT_ENUM: return sl__enum_index(o->choices, o->def) >= 0;
    default: return true; /* strings, lists; expressions compile when a stage is added */
    }
}

/* True when `name` is one of the runtime's keys for stages of `type`. */
static bool runtime_name(const struct sl_stage_type *type, const char *name)
{
    if (!strcmp(name, "type") || !strcmp(name, "inputs")) return true;
    if (!type) return false;
    const struct sl_option *rt[SL_RUNTIME_OPTION_TABLES];
    size_t n = sl_stage_runtime_options(type, rt);
    for (size_t t = 0; t < n; t++)
        for (const struct sl_option *o = rt[t]; o->name; o++)
            if (!strcmp(o->name, name)) return true;
    return false;
}

static int check_one(const struct sl_option *o, size_t state_size, const struct sl_stage_type *type,
                     const char *who, struct sl_error *err)
{
    size_t align = 1, size = value_size(o->type, &align);
    struct sl__range rg;
    if (!*o->name) return sl_error_set(err, SL_EINVAL, "%s: an option without a name", who);
    if (!size)
        return sl_error_set(err, SL_EINVAL, "%s: option '%s' has no known type (%d)", who, o->name,
                            (int)o->type);
    if (!o->doc || !*o->doc)
        return sl_error_set(err, SL_EINVAL, "%s: option '%s' needs a doc line", who, o->name);
    if (o->offset > state_size || size > state_size - o->offset || o->offset % align)
        return sl_error_set(err, SL_EINVAL,
                            "%s: option '%s' is written at offset %zu (%zu bytes), outside "
                            "the %zu-byte state or misaligned",
                            who, o->name, o->offset, size, state_size);
    if (o->type == SL_OPT_ENUM && (!o->choices || !*o->choices))
        return sl_error_set(err, SL_EINVAL, "%s: enum option '%s' has no choices", who, o->name);
    if ((o->flags & SL_REQUIRED) && o->def)
        return sl_error_set(err, SL_EINVAL, "%s: option '%s' is required and has a default", who,
                            o->name);
    if (o->def && !default_parses(o))
        return sl_error_set(err, SL_EINVAL, "%s: option '%s': default '%s' is not %s", who, o->name,
                            o->def,
                            o->type == SL_OPT_ENUM ? "one of its choices" : "a value of its type");
    if (o->range && (!numeric(o->type) || sl__option_range(o, &rg)))
        return sl_error_set(err, SL_EINVAL, "%s: option '%s': range '%s' is not min..max of %s",
                            who, o->name, o->range, "a numeric option");
    if (runtime_name(type, o->name))
        return sl_error_set(err, SL_EINVAL, "%s: option '%s' is a key the runtime reads itself",
                            who, o->name);
    return 0;
}

int sl__schema_check(const struct sl_option *opts, size_t state_size,
                     const struct sl_stage_type *type, const char *owner, struct sl_error *err)
{
    char who[96];
    snprintf(who, sizeof who, "%s", owner);
    for (const struct sl_option *o = opts; o && o->name; o++) {
        int rc = check_one(o, state_size, type, who, err);
        if (rc) return rc;
        for (const struct sl_option *q = opts; q != o; q++)
            if (!strcmp(q->name, o->name))
                return sl_error_set(err, SL_EINVAL, "%s: option '%s' is declared twice", who,
                                    o->name);
    }
    return 0;
}
