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

/* Fills s->state from s->cfg by the type's schema, telling every problem to `r`.
 * Returns 0 or the first error's code. */
int sl__options_fill(struct sl_stage *s, struct sl__report *r);

/* Adds a stage as sl_pipeline_add does, telling each problem to `r`. */
struct sl_stage *sl__pipeline_add(struct sl_pipeline *p, const char *name,
                                  const struct sl_stage_type *type, const struct sl_config *cfg,
                                  struct sl__report *r);

/* True for the runtime's own per-stage keys (type, inputs, workers, buffer). */
bool sl__is_runtime_key(const char *key);

#endif
