/* Building a pipeline from a config document: the `pipeline:` settings, then the stages
 * of `sources:`, `transforms:` and `sinks:`, then the edges their `inputs:` name. */
#include <stdlib.h>
#include <string.h>

#include <sluice/registry.h>

#include "internal.h"

struct section {
    const char *key;  /* top-level key */
    int kind;         /* registry kind to look up (-1: transform or filter) */
    const char *what; /* for messages */
};

static const struct section sections[] = {
    {"sources", SL_SOURCE, "source"},
    {"transforms", SL_TRANSFORM, "transform"},
    {"sinks", SL_SINK, "sink"},
};

static const char *const top_keys[] = {"pipeline", "sources", "transforms", "sinks"};

/* ---- pipeline-wide settings ------------------------------------------------------------------ */

static int opt_u64(const struct sl_config *root, const char *path, bool size, uint64_t *out,
                   struct sl_error *err)
{
    const struct sl_config *n = sl_config_get(root, path);
    if (!n) return 0;
    const char *t = sl_config_str(n);
    unsigned long long v;
    if (!t || sl_parse_size(t, &v) || v == 0)
        return sl_config_error(n, err, SL_ECONFIG, "'%s' expects %s", path,
                               size ? "a size such as 64KiB or 1MiB" : "a positive number");
    *out = v;
    return 0;
}

int sl_pipeline_options_from_config(struct sl_pipeline_options *o, const struct sl_config *root,
                                    struct sl_error *err)
{
    const struct sl_config *pc = sl_config_get(root, "pipeline");
    if (!pc) return 0;
    if (sl_config_kind(pc) != SL_CFG_MAP)
        return sl_config_error(pc, err, SL_ECONFIG, "'pipeline' must be a mapping");
    uint64_t v = o->batch_max_events;
    int rc = opt_u64(pc, "batch.max_events", false, &v, err);
    o->batch_max_events = (uint32_t)(v > 1000000 ? 1000000 : v);
    v = o->queue_max_batches;
    if (!rc) rc = opt_u64(pc, "queue.max_batches", false, &v, err);
    o->queue_max_batches = (uint32_t)(v > 65536 ? 65536 : v);
    if (!rc) rc = opt_u64(pc, "batch.max_bytes", true, &o->batch_max_bytes, err);
    if (!rc) rc = opt_u64(pc, "queue.max_bytes", true, &o->queue_max_bytes, err);
    const struct sl_config *t = sl_config_get(pc, "batch.timeout");
    long long ms;
    if (!rc && t) {
        if (!sl_config_str(t) || sl_parse_duration(sl_config_str(t), &ms))
            return sl_config_error(t, err, SL_ECONFIG,
                                   "'batch.timeout' expects a duration such as 100ms");
        o->batch_timeout_ms = ms;
    }
    const struct sl_config *d = sl_config_get(pc, "data_dir");
    if (!rc && d) {
        if (!sl_config_str(d) || !*sl_config_str(d))
            return sl_config_error(d, err, SL_ECONFIG, "'data_dir' expects a directory path");
        o->data_dir = sl_config_str(d);
    }
    return rc;
}

/* ---- stages ------------------------------------------------------------------------------------
 */

static int add_stage(struct sl_pipeline *p, const struct sl_registry *reg,
                     const struct section *sec, const char *name, const struct sl_config *node,
                     const struct sl_config *key, struct sl_error *err)
{
    if (sl_config_kind(node) != SL_CFG_MAP)
        return sl_config_error(node, err, SL_ECONFIG, "%s '%s' must be a mapping with a 'type'",
                               sec->what, name);
    const struct sl_config *tn = sl_config_get(node, "type");
    const char *type = tn ? sl_config_str(tn) : NULL;
    if (!type || !*type)
        return sl_config_error(tn ? tn : key, err, SL_ECONFIG, "%s '%s' needs a 'type'", sec->what,
                               name);
    const struct sl_stage_type *t = sl_registry_find(reg, type, sec->kind);
    if (!t) {
        const char *near = sl_registry_suggest(reg, type);
        const struct sl_stage_type *other = sl_registry_find(reg, type, -1);
        if (other)
            return sl_config_error(tn, err, SL_ECONFIG,
                                   "type '%s' is not a %s (it belongs in '%s')", type, sec->what,
                                   other->kind == SL_SOURCE ? "sources"
                                   : other->kind == SL_SINK ? "sinks"
                                                            : "transforms");
        if (near)
            return sl_config_error(tn, err, SL_ECONFIG, "unknown %s type '%s' (did you mean '%s'?)",
                                   sec->what, type, near);
        return sl_config_error(tn, err, SL_ECONFIG, "unknown %s type '%s'", sec->what, type);
    }
    if (sl_pipeline_find(p, name))
        return sl_config_error(key, err, SL_ECONFIG, "a stage called '%s' is defined twice", name);
    return sl_pipeline_add(p, name, t, node, err) ? 0 : (err && err->code ? err->code : SL_ECONFIG);
}

/* Resolves "stage" or "stage.port" to a stage and output name. */
static struct sl_stage *resolve_input(struct sl_pipeline *p, const char *ref, const char **port)
{
    struct sl_stage *s = sl_pipeline_find(p, ref);
    *port = "";
    if (s) return s;
    const char *dot = strrchr(ref, '.');
    if (!dot) return NULL;
    char name[256];
    size_t len = (size_t)(dot - ref);
    if (len >= sizeof name) return NULL;
    memcpy(name, ref, len);
    name[len] = '\0';
    *port = dot + 1;
    return sl_pipeline_find(p, name);
}

static int connect_input(struct sl_pipeline *p, struct sl_stage *to, const struct sl_config *item,
                         struct sl_error *err)
{
    const char *ref = sl_config_str(item);
    if (!ref || !*ref)
        return sl_config_error(item, err, SL_ECONFIG, "an input is the name of a stage");
    const char *port;
    struct sl_stage *from = resolve_input(p, ref, &port);
    if (!from) {
        const char *names[256];
        size_t n = 0;
        for (uint32_t i = 0; i < p->nstages && n < 256; i++) names[n++] = p->stages[i]->name;
        const char *near = sl__nearest(ref, names, n);
        if (near)
            return sl_config_error(item, err, SL_ECONFIG,
                                   "input '%s' of '%s' names no stage (did you mean '%s'?)", ref,
                                   to->name, near);
        return sl_config_error(item, err, SL_ECONFIG, "input '%s' of '%s' names no stage", ref,
                               to->name);
    }
    if (from == to)
        return sl_config_error(item, err, SL_ECONFIG, "stage '%s' cannot take itself as input",
                               to->name);
    if (from->type->kind == SL_SINK)
        return sl_config_error(item, err, SL_ECONFIG, "input '%s' is a sink: sinks have no output",
                               ref);
    if (sl_stage_output(from, port) < 0)
        return sl_config_error(item, err, SL_ECONFIG, "stage '%s' has no output '%s'", from->name,
                               port);
    struct sl_error e = {0};
    if (sl_pipeline_connect(p, from, port, to, &e))
        return sl_config_error(item, err, e.code, "%s", e.msg);
    return 0;
}

static int connect_inputs(struct sl_pipeline *p, struct sl_stage *s, struct sl_error *err)
{
    const struct sl_config *in = sl_config_get(s->cfg, "inputs");
    if (s->type->kind == SL_SOURCE) {
        if (in) return sl_config_error(in, err, SL_ECONFIG, "source '%s' takes no inputs", s->name);
        return 0;
    }
    if (!in || (sl_config_kind(in) == SL_CFG_LIST && sl_config_len(in) == 0))
        return sl_config_error(in ? in : s->cfg, err, SL_ECONFIG,
                               "'%s' needs 'inputs': the stages it reads from", s->name);
    if (sl_config_kind(in) == SL_CFG_SCALAR) return connect_input(p, s, in, err);
    if (sl_config_kind(in) != SL_CFG_LIST)
        return sl_config_error(in, err, SL_ECONFIG, "'inputs' expects a list of stage names");
    for (size_t i = 0; i < sl_config_len(in); i++) {
        int rc = connect_input(p, s, sl_config_at(in, i, NULL), err);
        if (rc) return rc;
    }
    return 0;
}

static int check_top(const struct sl_config *root, struct sl_error *err)
{
    if (sl_config_kind(root) != SL_CFG_MAP)
        return sl_config_error(root, err, SL_ECONFIG,
                               "a pipeline config is a mapping with sources, transforms and sinks");
    for (size_t i = 0; i < sl_config_len(root); i++) {
        const char *key;
        sl_config_at(root, i, &key);
        bool known = false;
        for (size_t k = 0; k < 4; k++) known |= strcmp(key, top_keys[k]) == 0;
        if (known) continue;
        const char *near = sl__nearest(key, top_keys, 4);
        return sl_config_error(
            sl_config_key_at(root, i), err, SL_ECONFIG,
            "unknown section '%s'%s%s%s (expected pipeline, sources, transforms or sinks)", key,
            near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
    }
    return 0;
}

int sl_pipeline_load(struct sl_pipeline *p, const struct sl_registry *reg,
                     const struct sl_config *root, struct sl_error *err)
{
    int rc = check_top(root, err);
    for (size_t s = 0; !rc && s < 3; s++) {
        const struct sl_config *sec = sl_config_get(root, sections[s].key);
        if (!sec) continue;
        if (sl_config_kind(sec) != SL_CFG_MAP)
            return sl_config_error(sec, err, SL_ECONFIG, "'%s' must be a mapping of named stages",
                                   sections[s].key);
        for (size_t i = 0; !rc && i < sl_config_len(sec); i++) {
            const char *name;
            const struct sl_config *node = sl_config_at(sec, i, &name);
            rc = add_stage(p, reg, &sections[s], name, node, sl_config_key_at(sec, i), err);
        }
    }
    for (uint32_t i = 0; !rc && i < p->nstages; i++) rc = connect_inputs(p, p->stages[i], err);
    return rc;
}
