/* Adding a configured stage to a pipeline: the runtime's own keys (`workers`, `buffer`),
 * the type's options by its schema, then the type's init(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/internal.h"

static void config_unref(void *node)
{
    sl_config_free(node);
}

static int read_workers(struct sl_stage *s, struct sl__report *r)
{
    const struct sl_config *w = s->cfg ? sl_config_get(s->cfg, "workers") : NULL;
    if (!w) return 0;
    const char *t = sl_config_str(w);
    char *end;
    long n = t ? strtol(t, &end, 10) : -1;
    if (!t || *end || n < 1 || n > 256)
        return sl__report_at(r, SL_LOG_ERROR, SL_ECONFIG, s->name, w,
                             "'workers' must be a number from 1 to 256");
    if (s->type->kind != SL_TRANSFORM && s->type->kind != SL_FILTER)
        return sl__report_at(r, SL_LOG_ERROR, SL_ECONFIG, s->name, w,
                             "'workers' applies to transforms and filters");
    if (!(s->type->flags & SL_STAGE_PARALLEL))
        return sl__report_at(r, SL_LOG_ERROR, SL_ECONFIG, s->name, w,
                             "type '%s' keeps state between events and cannot run on workers",
                             s->type->name);
    s->nworkers = (int)n;
    return 0;
}

/* `buffer: {max_batches: N, max_bytes: SIZE}`: the capacity of the stage's input edges. */
static int read_buffer(struct sl_stage *s, struct sl__report *r)
{
    static const char *const keys[] = {"max_batches", "max_bytes"};
    const struct sl_config *b = s->cfg ? sl_config_get(s->cfg, "buffer") : NULL;
    if (!b) return 0;
    if (s->type->kind == SL_SOURCE)
        return sl__report_at(r, SL_LOG_ERROR, SL_ECONFIG, s->name, b,
                             "'buffer' sizes input queues; a source has none");
    if (sl_config_kind(b) != SL_CFG_MAP)
        return sl__report_at(r, SL_LOG_ERROR, SL_ECONFIG, s->name, b,
                             "'buffer' expects a mapping: {max_batches: N, max_bytes: SIZE}");
    int rc = 0;
    for (size_t i = 0; i < sl_config_len(b); i++) {
        const char *key, *near;
        const struct sl_config *v = sl_config_at(b, i, &key);
        const char *t = sl_config_str(v);
        unsigned long long n = 0;
        bool batches = strcmp(key, "max_batches") == 0, bytes = strcmp(key, "max_bytes") == 0;
        int e = 0;
        if (!batches && !bytes)
            e = (near = sl__nearest(key, keys, 2))
                    ? sl__report_at(r, SL_LOG_ERROR, SL_ECONFIG, s->name, sl_config_key_at(b, i),
                                    "unknown 'buffer' key '%s' (did you mean '%s'?)", key, near)
                    : sl__report_at(r, SL_LOG_ERROR, SL_ECONFIG, s->name, sl_config_key_at(b, i),
                                    "unknown 'buffer' key '%s' (expected max_batches or max_bytes)",
                                    key);
        else if (!t || sl_parse_size(t, &n) || n == 0 || (batches && n > 65536))
            e = sl__report_at(r, SL_LOG_ERROR, SL_ECONFIG, s->name, v, "'buffer.%s' expects %s",
                              key, batches ? "a number from 1 to 65536" : "a size such as 4MiB");
        else if (batches)
            s->buf_batches = (uint32_t)n;
        else
            s->buf_bytes = n;
        if (!rc) rc = e;
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
    int rc = sl__options_fill(s, r);
    int rw = read_workers(s, r), rb = read_buffer(s, r);
    if (!rc) rc = rw ? rw : rb;
    if (!rc && type->init) {
        struct sl_error e = {0};
        s->initialised = true; /* close() runs after init(), failed or not */
        rc = type->init(s, cfg, &e);
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
    }
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
    if (!s && err) *err = first;
    return s;
}

