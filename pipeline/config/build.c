/* Adding a configured stage to a pipeline: its options by the schemas (the type's own
 * and the runtime's: options.c), then the type's init(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/internal.h"

static void config_unref(void *node)
{
    sl_config_free(node);
}

/* Runs the type's init(); a failure is reported at the stage's place in the config. */
static int init_stage(struct sl_stage *s, const char *name, const struct sl_config *cfg,
                      struct sl__report *r)
{
    struct sl_error e = {0};
    s->initialised = true; /* close() runs after init(), failed or not */
    int rc = s->type->init(s, cfg, &e);
    if (rc) {
        snprintf(e.stage, sizeof e.stage, "%s", name);
        if (!e.code) e.code = rc;
        if (!e.file[0] && cfg) {
            snprintf(e.file, sizeof e.file, "%s", sl_config_file(cfg));
            e.line = sl_config_line(cfg);
            e.col = sl_config_col(cfg);
        }
        sl__report(r, SL_LOG_ERROR, &e);
    }
    return rc;
}

struct sl_stage *sl__pipeline_add(struct sl_pipeline *p, const char *name,
                                  const struct sl_stage_type *type, const struct sl_config *cfg,
                                  struct sl__report *r)
{
    if (!name || !*name || !type) {
        sl__report_at(r, SL_LOG_ERROR, SL_EINVAL, NULL, cfg, "a stage needs a name and a type");
        return NULL;
    }
    if (p->started) {
        sl__report_at(r, SL_LOG_ERROR, SL_EINVAL, name, NULL,
                      "stage added after the pipeline started");
        return NULL;
    }
    if (sl_pipeline_find(p, name)) {
        sl__report_at(r, SL_LOG_ERROR, SL_EEXIST, name, cfg, "a stage called '%s' exists already",
                      name);
        return NULL;
    }
    struct sl_error te = {0};
    if (sl__type_check(type, &te)) {
        sl__report_at(r, SL_LOG_ERROR, te.code, name, cfg, "%s", te.msg);
        return NULL;
    }
    struct sl_stage *s = sl__stage_new(p, name, type);
    if (s && cfg && sl__stage_own(s, (void *)sl_config_ref(cfg), config_unref)) {
        sl__stage_free(s);
        s = NULL;
    }
    if (!s) {
        sl__report_at(r, SL_LOG_ERROR, SL_ENOMEM, name, NULL, "out of memory");
        return NULL;
    }
    s->cfg = cfg;
    bool values_ok = false;
    int rc = sl__options_fill(s, r, &values_ok);
    s->workers_auto = s->conf.workers < 0; /* `auto` */
    s->nworkers = s->workers_auto ? sl__workers_auto() : (int)s->conf.workers;
    if (!rc && s->conf.on_error == SL__ON_ERROR_DEAD_LETTER &&
        (type->kind == SL_FILTER || type->map_async)) { /* the runtime sends them there */
        s->dl_port = sl_stage_add_output(s, "dead_letter");
        if (s->dl_port < 0)
            rc = sl__report_at(r, SL_LOG_ERROR, SL_ENOMEM, name, NULL, "out of memory");
    }
    if (!rc && type->init)
        rc = init_stage(s, name, cfg, r);
    else if (rc && values_ok && type->init) /* unknown keys only: init's own problems */
        init_stage(s, name, cfg, r);        /* are told in the same pass (validate) */
    if (!rc && !type->init) s->initialised = true;
    if (!rc && (rc = sl__pipeline_insert(p, s)) != 0)
        sl__report_at(r, SL_LOG_ERROR, rc, name, NULL, "out of memory");
    if (rc) {
        sl__stage_free(s);
        return NULL;
    }
    return s;
}

struct sl_stage *sl_pipeline_add(struct sl_pipeline *p, const char *name,
                                 const struct sl_stage_type *type, const struct sl_config *cfg,
                                 struct sl_error *err)
{
    struct sl_error first = {0};
    struct sl__report r = {.first = &first};
    struct sl_stage *s = sl__pipeline_add(p, name, type, cfg, &r);
    if (!s) sl__error_copy(err, &first);
    return s;
}
