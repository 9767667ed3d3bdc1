/* Configs: YAML documents, option schemas, the registry of stage types, and building a
 * pipeline from a config (stages with their options, edges, the `pipeline:` settings).
 * The top layer of the library: it may use every other one. */
#ifndef SLUICE_PIPELINE_CONFIG_INTERNAL_H
#define SLUICE_PIPELINE_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <sluice/config.h>
#include <sluice/pipeline.h>
#include <sluice/registry.h>
#include <sluice/stage.h>

#include "base/internal.h"
#include "runtime/internal.h"

/* ---- problem reports ------------------------------------------------------------------- */

/* Where the problems of a load or a stage's options go: every one is told to `fn`, the
 * first error is kept. */
struct sl__report {
    sl_report_fn *fn;       /* told of each problem; NULL: only counted */
    void *arg;              /* passed to fn */
    unsigned errors;        /* errors told */
    unsigned warnings;      /* warnings told */
    struct sl_error *first; /* receives the first error when not NULL */
};

/* Tells `e` (borrowed) to `r`. Returns e->code (SL_ECONFIG when e->code is 0), or 0
 * for a warning. */
int sl__report(struct sl__report *r, enum sl_log_level level, const struct sl_error *e);

/* Builds an error of `code` for `stage` (borrowed, may be NULL) at `node` (may be NULL),
 * tells it to `r` at `level`, and returns the code (0 for a warning). */
int sl__report_at(struct sl__report *r, enum sl_log_level level, int code, const char *stage,
                  const struct sl_config *node, const char *fmt, ...) SL_PRINTF(6, 7);

/* ---- options ------------------------------------------------------------------------- */

/* Fills s->state from s->cfg by the type's schema, and s->conf by the runtime's tables
 * that apply to the type (settings.c), telling every problem to `r`. Returns 0 or the
 * first error's code; *values_ok tells whether every option's value was filled (the only
 * problems were unknown keys: the state is whole, and init() may check the rest). */
int sl__options_fill(struct sl_stage *s, struct sl__report *r, bool *values_ok);

/* Warns, through `r`, about each template or expression option that names a field no
 * stage before sets, where the stages before declare their fields (fields.c). */
void sl__check_fields(struct sl_pipeline *p, struct sl__report *r);

/* Adds a stage as sl_pipeline_add does, telling each problem to `r`. */
struct sl_stage *sl__pipeline_add(struct sl_pipeline *p, const char *name,
                                  const struct sl_stage_type *type, const struct sl_config *cfg,
                                  struct sl__report *r);

/* ---- the registry (registry.c, compat.c, plugin.c) ------------------------------------ */

struct sl_registry {
    const struct sl_stage_type **types; /* registered types, in order */
    size_t n, cap;                      /* used / allocated */
    void **owned;                       /* copies of older tables (compat.c), freed with it */
    size_t nowned;                      /* entries of owned */
    void **handles;                     /* dlopen() handles of loaded plugins, in order */
    size_t nhandles;                    /* entries of handles */
    const char *loading;                /* path of the plugin being initialised, or NULL */
    struct sl_error load_err;           /* the first failure of sl_registry_add during it */
};

/* The table `t` (borrowed) as this library's SL_STAGE_ABI lays it out: `t` itself when
 * it is current, else a converted copy owned by `reg` (SL_STAGE_ABI 1: options without
 * ranges, keep() answering bool), into *out. Returns 0, or SL_EINVAL for an ABI this
 * library does not know (a newer one, or below 1), or SL_ENOMEM, with `err`. */
int sl__type_current(struct sl_registry *reg, const struct sl_stage_type *t,
                     const struct sl_stage_type **out, struct sl_error *err);

/* Frees the copies made by sl__type_current and closes the plugins' shared objects. */
void sl__registry_release(struct sl_registry *reg);

/* Checks a stage type before it is used: its ABI, name, kind, the callback of its kind,
 * and its option table (sl__schema_check). Returns 0 or SL_EINVAL with `err`. */
int sl__type_check(const struct sl_stage_type *t, struct sl_error *err);

/* Index of `text` among the '|'-separated `choices`, or -1. */
int sl__enum_index(const char *choices, const char *text);

/* Converts `text` for the plain scalar types (int, float, bool, duration, size) into
 * `dst` (the option's C type). Returns 0, or -1 when the text is not a value of it. */
int sl__option_scalar(enum sl_opt_type type, const char *text, void *dst);

/* An option's range, parsed. */
struct sl__range {
    bool has_lo, has_hi;           /* which sides are bounded */
    double lo, hi;                 /* the bounds, in the option's units */
    char lo_text[32], hi_text[32]; /* as spelled, for messages */
};

/* Parses o->range into `out` (unbounded when NULL). Returns 0, or -1 when it is not
 * "min..max" in the option's spelling with min <= max. */
int sl__option_range(const struct sl_option *o, struct sl__range *out);

/* Checks an option table given by a stage type (or the runtime) before it is used:
 * names unique and not the runtime's own keys of `type` (may be NULL), known types,
 * docs, choices, defaults and ranges that parse, and every value inside `state_size`
 * bytes at its alignment. `owner` names the table in the message. Returns 0 or
 * SL_EINVAL with `err`. */
int sl__schema_check(const struct sl_option *opts, size_t state_size,
                     const struct sl_stage_type *type, const char *owner, struct sl_error *err);

/* When `key` (a path: "retry.max") is one of the runtime's keys that does not apply to
 * a stage of type `t`, writes why into `msg` and returns true. */
bool sl__runtime_key_misuse(const struct sl_stage_type *t, const char *key, char *msg, size_t cap);

#endif
