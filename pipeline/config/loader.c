/* Building a pipeline from a config document (the `pipeline:` settings are read before,
 * by sl_pipeline_options_from_config, as the pipeline is made with them): the stages
 * of `sources:`, `transforms:` and `sinks:`, then the edges their `inputs:` name, then
 * the checks on the whole graph. A load goes on after an error, so that `sluice
 * validate` can list every problem at once; a stage that failed is remembered by name,
 * so that the stages reading from it are not blamed for naming nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/registry.h>

#include "config/internal.h"

struct section {
    const char *key;  /* top-level key */
    int kind;         /* registry kind to look up (transforms: transform or filter) */
    const char *what; /* for messages */
};

static const struct section sections[] = {
    {"sources", SL_SOURCE, "source"},
    {"transforms", SL_TRANSFORM, "transform"},
    {"sinks", SL_SINK, "sink"},
};

static const char *const top_keys[] = {"pipeline", "sources", "transforms", "sinks", "plugins"};

/* ---- the state of one load ---------------------------------------------------------------------
 */

struct entry {
    const char *name;             /* the stage's name (the key in its section) */
    const struct sl_config *key;  /* the key node, for positions */
    const struct sl_config *node; /* the stage's mapping */
    const struct section *sec;    /* where it was declared */
    struct sl_stage *stage;       /* NULL when it did not load */
};

struct load {
    struct sl_pipeline *p;         /* being built */
    const struct sl_registry *reg; /* stage types */
    struct sl__report r;           /* where problems go */
    struct entry *e;               /* every declared stage, in config order */
    size_t n, cap;                 /* used / allocated */
    struct sl__index names;        /* stage name -> entry */
};

static const struct entry *find_entry(const struct load *l, const char *name, size_t len)
{
    int64_t i = sl__index_find(&l->names, name, len);
    return i < 0 ? NULL : &l->e[i];
}

static const char *entry_name(void *arg, uint32_t i, size_t *len)
{
    const struct load *l = arg;
    *len = strlen(l->e[i].name);
    return l->e[i].name;
}

static int push_entry(struct load *l, const struct entry *e)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct entry *ne = realloc(l->e, cap * sizeof *ne);
        if (!ne) return sl__report_at(&l->r, SL_LOG_ERROR, SL_ENOMEM, NULL, NULL, "out of memory");
        l->e = ne;
        l->cap = cap;
    }
    l->e[l->n] = *e;
    if (sl__index_add(&l->names, (uint32_t)l->n))
        return sl__report_at(&l->r, SL_LOG_ERROR, SL_ENOMEM, NULL, NULL, "out of memory");
    l->n++;
    return 0;
}

/* ---- stages ------------------------------------------------------------------------------------
 */

static const struct sl_stage_type *lookup_type(struct load *l, const struct entry *e)
{
    const struct sl_config *tn = sl_config_get(e->node, "type");
    const char *type = tn ? sl_config_str(tn) : NULL;
    const char *what = e->sec->what;
    if (!type || !*type) {
        sl__report_at(&l->r, SL_LOG_ERROR, SL_ECONFIG, e->name, tn ? tn : e->key,
                      "a %s needs a 'type'", what);
        return NULL;
    }
    const struct sl_stage_type *t = sl_registry_find(l->reg, type, e->sec->kind);
    if (t) return t;
    const struct sl_stage_type *other = sl_registry_find(l->reg, type, -1);
    const char *near = sl_registry_suggest(l->reg, type);
    if (other)
        sl__report_at(&l->r, SL_LOG_ERROR, SL_ECONFIG, e->name, tn,
                      "type '%s' is not a %s (it belongs in '%s')", type, what,
                      other->kind == SL_SOURCE ? "sources"
                      : other->kind == SL_SINK ? "sinks"
                                               : "transforms");
    else if (near)
        sl__report_at(&l->r, SL_LOG_ERROR, SL_ECONFIG, e->name, tn,
                      "unknown %s type '%s' (did you mean '%s'?)", what, type, near);
    else
        sl__report_at(&l->r, SL_LOG_ERROR, SL_ECONFIG, e->name, tn, "unknown %s type '%s'", what,
                      type);
    return NULL;
}

static void load_stage(struct load *l, struct entry *e)
{
    const struct entry *dup = find_entry(l, e->name, strlen(e->name));
    if (dup) {
        sl__report_at(&l->r, SL_LOG_ERROR, SL_ECONFIG, NULL, e->key,
                      "stage name '%s' is used twice (first at line %d)", e->name,
                      sl_config_line(dup->key));
        return;
    }
    if (sl_config_kind(e->node) != SL_CFG_MAP) {
        sl__report_at(&l->r, SL_LOG_ERROR, SL_ECONFIG, e->name, e->node,
                      "a %s is a mapping with a 'type'", e->sec->what);
    } else {
        const struct sl_stage_type *t = lookup_type(l, e);
        if (t) e->stage = sl__pipeline_add(l->p, e->name, t, e->node, &l->r);
    }
    push_entry(l, e);
}

/* True for `name:` with nothing after it, `name: ~` and `name: {}`. */
static bool blank(const struct sl_config *m)
{
    return sl_config_len(m) == 0 && (sl_config_kind(m) == SL_CFG_MAP ||
                                     (sl_config_kind(m) == SL_CFG_SCALAR && !*sl_config_str(m)));
}

static void load_section(struct load *l, const struct sl_config *root, const struct section *sec)
{
    const struct sl_config *m = sl_config_get(root, sec->key);
    if (!m || blank(m)) return; /* check_ends() wants sources and sinks */
    if (sl_config_kind(m) != SL_CFG_MAP) {
        sl__report_at(&l->r, SL_LOG_ERROR, SL_ECONFIG, NULL, m,
                      "'%s' expects a mapping of named stages: name: {type: ...}", sec->key);
        return;
    }
    for (size_t i = 0; i < sl_config_len(m); i++) {
        struct entry e = {.sec = sec, .key = sl_config_key_at(m, i)};
        e.node = sl_config_at(m, i, &e.name);
        load_stage(l, &e);
    }
}

/* ---- inputs ------------------------------------------------------------------------------------
 */

static void no_such_input(struct load *l, const struct entry *to, const struct sl_config *item,
                          const char *ref)
{
    const char **names = malloc((l->n ? l->n : 1) * sizeof *names);
    const char *near = NULL;
    if (names) {
        for (size_t i = 0; i < l->n; i++) names[i] = l->e[i].name;
        near = sl__nearest(ref, names, l->n);
    }
    if (near)
        sl__report_at(&l->r, SL_LOG_ERROR, SL_ECONFIG, to->name, item,
                      "input '%s' names no stage (did you mean '%s'?)", ref, near);
    else
        sl__report_at(&l->r, SL_LOG_ERROR, SL_ECONFIG, to->name, item, "input '%s' names no stage",
                      ref);
    free(names);
}

/* Resolves "stage" or "stage.port": the entry, and the port name after the dot. */
static const struct entry *resolve_input(const struct load *l, const char *ref, const char **port)
{
    const struct entry *e = find_entry(l, ref, strlen(ref));
    *port = "";
    if (e) return e;
    const char *dot = strrchr(ref, '.');
    if (!dot) return NULL;
    *port = dot + 1;
    return find_entry(l, ref, (size_t)(dot - ref));
}

static void connect_input(struct load *l, const struct entry *to, const struct sl_config *item)
{
    const char *ref = sl_config_str(item);
    if (!ref || !*ref) {
        sl__report_at(&l->r, SL_LOG_ERROR, SL_ECONFIG, to->name, item,
                      "an input is the name of a stage");
        return;
    }
    const char *port;
    const struct entry *from = resolve_input(l, ref, &port);
    if (!from) {
        no_such_input(l, to, item, ref);
    } else if (from == to) {
        sl__report_at(&l->r, SL_LOG_ERROR, SL_ECONFIG, to->name, item,
                      "a stage cannot take itself as input");
    } else if (from->sec->kind == SL_SINK) {
        sl__report_at(&l->r, SL_LOG_ERROR, SL_ECONFIG, to->name, item,
                      "input '%s' is a sink: sinks have no output", ref);
    } else if (from->stage && to->stage) { /* else: already reported */
        if (sl_stage_output(from->stage, port) < 0) {
            sl__report_at(&l->r, SL_LOG_ERROR, SL_ECONFIG, to->name, item,
                          "stage '%s' has no output '%s'", from->name, port);
            return;
        }
        struct sl_error e = {0};
        if (sl_pipeline_connect(l->p, from->stage, port, to->stage, &e))
            sl__report_at(&l->r, SL_LOG_ERROR, e.code, to->name, item, "%s", e.msg);
    }
}

/* True when the i-th name of the list `in` appears before it. */
static bool listed_before(const struct sl_config *in, size_t i)
{
    const char *ref = sl_config_str(sl_config_at(in, i, NULL));
    for (size_t k = 0; ref && k < i; k++) {
        const char *other = sl_config_str(sl_config_at(in, k, NULL));
        if (other && strcmp(other, ref) == 0) return true;
    }
    return false;
}

static void connect_inputs(struct load *l, const struct entry *e)
{
    if (sl_config_kind(e->node) != SL_CFG_MAP) return;
    const struct sl_config *in = sl_config_get(e->node, "inputs");
    if (e->sec->kind == SL_SOURCE) {
        if (in)
            sl__report_at(&l->r, SL_LOG_ERROR, SL_ECONFIG, e->name, in, "a source takes no inputs");
        return;
    }
    if (!in || (sl_config_kind(in) != SL_CFG_MAP && sl_config_len(in) == 0 &&
                (sl_config_kind(in) == SL_CFG_LIST || !*sl_config_str(in)))) {
        sl__report_at(&l->r, SL_LOG_ERROR, SL_ECONFIG, e->name, in ? in : e->key,
                      "a %s needs 'inputs': the stages it reads from", e->sec->what);
        return;
    }
    if (sl_config_kind(in) == SL_CFG_SCALAR) {
        connect_input(l, e, in);
        return;
    }
    if (sl_config_kind(in) != SL_CFG_LIST) {
        sl__report_at(&l->r, SL_LOG_ERROR, SL_ECONFIG, e->name, in,
                      "'inputs' expects a list of stage names");
        return;
    }
    for (size_t i = 0; i < sl_config_len(in); i++) {
        const struct sl_config *item = sl_config_at(in, i, NULL);
        if (listed_before(in, i))
            sl__report_at(&l->r, SL_LOG_ERROR, SL_ECONFIG, e->name, item,
                          "input '%s' is listed twice", sl_config_str(item));
        else
            connect_input(l, e, item);
    }
}

/* ---- the whole graph ---------------------------------------------------------------------------
 */

/* The config key of stage `s`, or NULL for a stage added in C before the load. */
static const struct sl_config *key_of(const struct load *l, const struct sl_stage *s)
{
    const struct entry *e = find_entry(l, sl_stage_name(s), strlen(sl_stage_name(s)));
    return e ? e->key : NULL;
}

static void check_cycle(struct load *l)
{
    struct sl_pipeline *p = l->p;
    struct sl_stage **path = malloc((p->nstages + 1) * sizeof *path);
    int n = path ? sl__find_cycle(p, path) : SL_ENOMEM;
    if (n < 0) {
        sl__report_at(&l->r, SL_LOG_ERROR, SL_ENOMEM, NULL, NULL, "out of memory");
    } else if (n > 0) {
        char text[400];
        size_t len = 0;
        for (int i = 0; i < n && len < sizeof text; i++)
            len += (size_t)snprintf(text + len, sizeof text - len, "%s%s", i ? " -> " : "",
                                    path[i]->name);
        sl__report_at(&l->r, SL_LOG_ERROR, SL_ECONFIG, NULL, key_of(l, path[0]),
                      "the stages form a cycle: %s", text);
    }
    free(path);
}

/* Warns about every stage from which no sink can be reached: a walk back from the sinks
 * along the input edges. */
static void check_reach(struct load *l)
{
    struct sl_pipeline *p = l->p;
    uint8_t *seen = calloc(p->nstages ? p->nstages : 1, 1);
    struct sl_stage **todo = malloc((p->nstages ? p->nstages : 1) * sizeof *todo);
    size_t n = 0;
    if (!seen || !todo) {
        sl__report_at(&l->r, SL_LOG_ERROR, SL_ENOMEM, NULL, NULL, "out of memory");
        goto done;
    }
    for (uint32_t i = 0; i < p->nstages; i++)
        if (p->stages[i]->type->kind == SL_SINK) seen[i] = 1, todo[n++] = p->stages[i];
    while (n) {
        struct sl_stage *s = todo[--n];
        for (uint32_t i = 0; i < s->ninputs; i++) {
            struct sl_stage *from = s->inputs[i]->from;
            if (!seen[from->index]) seen[from->index] = 1, todo[n++] = from;
        }
    }
    for (uint32_t i = 0; i < p->nstages; i++) {
        struct sl_stage *s = p->stages[i];
        if (!seen[i]) {
            sl__report_at(&l->r, SL_LOG_WARN, 0, s->name, key_of(l, s),
                          "no sink reads from this stage: its events are discarded");
            continue;
        }
        for (uint32_t k = 1; k < s->nports; k++) /* named outputs: dead_letter, routes */
            if (!s->ports[k].nedges)
                sl__report_at(&l->r, SL_LOG_WARN, 0, s->name, key_of(l, s),
                              "nothing reads output '%s.%s': events sent there are dropped "
                              "(counted)",
                              s->name, s->ports[k].name);
    }
done:
    free(seen);
    free(todo);
}

/* ---- the document ------------------------------------------------------------------------------
 */

static bool check_top(struct load *l, const struct sl_config *root)
{
    const char *what = "expected the sections 'sources:' and 'sinks:' (and 'transforms:')";
    bool blank = sl_config_kind(root) == SL_CFG_SCALAR && !*sl_config_str(root); /* `~` */
    if (blank || (sl_config_kind(root) == SL_CFG_MAP && sl_config_len(root) == 0)) {
        sl__report_at(&l->r, SL_LOG_ERROR, SL_ECONFIG, NULL, root, "the config is empty: %s", what);
        return false;
    }
    if (sl_config_kind(root) != SL_CFG_MAP) {
        sl__report_at(&l->r, SL_LOG_ERROR, SL_ECONFIG, NULL, root,
                      "a pipeline config is a mapping: %s", what);
        return false;
    }
    for (size_t i = 0; i < sl_config_len(root); i++) {
        const char *key;
        sl_config_at(root, i, &key);
        bool known = false;
        for (size_t k = 0; k < 5; k++) known |= strcmp(key, top_keys[k]) == 0;
        if (known) continue;
        const char *near = sl__nearest(key, top_keys, 5);
        if (near)
            sl__report_at(&l->r, SL_LOG_ERROR, SL_ECONFIG, NULL, sl_config_key_at(root, i),
                          "unknown section '%s' (did you mean '%s'?)", key, near);
        else
            sl__report_at(
                &l->r, SL_LOG_ERROR, SL_ECONFIG, NULL, sl_config_key_at(root, i),
                "unknown section '%s': expected plugins, pipeline, sources, transforms or sinks",
                key);
    }
    return true;
}

/* A pipeline needs a source and a sink; say so once per missing section. */
static void check_ends(struct load *l, const struct sl_config *root)
{
    for (size_t s = 0; s < 3; s += 2) {
        const struct sl_config *m = sl_config_get(root, sections[s].key);
        if (!m)
            sl__report_at(&l->r, SL_LOG_ERROR, SL_ECONFIG, NULL, root,
                          "no '%s:' section: a pipeline needs at least one %s", sections[s].key,
                          sections[s].what);
        else if (blank(m))
            sl__report_at(&l->r, SL_LOG_ERROR, SL_ECONFIG, NULL, m,
                          "'%s' is empty: a pipeline needs at least one %s", sections[s].key,
                          sections[s].what);
    }
}

int sl_pipeline_load_all(struct sl_pipeline *p, const struct sl_registry *reg,
                         const struct sl_config *root, sl_report_fn *report, void *arg)
{
    struct load l = {.p = p, .reg = reg, .r = {.fn = report, .arg = arg}};
    struct sl_error first = {0};
    l.r.first = &first;
    sl__index_init(&l.names, entry_name, &l);
    if (check_top(&l, root)) {
        check_ends(&l, root);
        for (size_t s = 0; s < 3; s++) load_section(&l, root, &sections[s]);
        for (size_t i = 0; i < l.n; i++) connect_inputs(&l, &l.e[i]);
        check_cycle(&l);
        if (!l.r.errors) check_reach(&l);
        if (!l.r.errors) sl__check_fields(p, &l.r);
    }
    free(l.e);
    sl__index_free(&l.names);
    return l.r.errors ? first.code : 0;
}

static void keep_first(void *arg, enum sl_log_level level, const struct sl_error *e)
{
    struct sl_error *first = arg;
    if (level == SL_LOG_ERROR && !first->code) {
        *first = *e;
        if (!first->code) first->code = SL_ECONFIG;
    }
}

int sl_pipeline_load(struct sl_pipeline *p, const struct sl_registry *reg,
                     const struct sl_config *root, struct sl_error *err)
{
    struct sl_error first = {0};
    int rc = sl_pipeline_load_all(p, reg, root, keep_first, &first);
    if (rc) sl__error_copy(err, &first);
    return rc;
}
