/* The option schema is the only option parser: it checks a config mapping against
 * sl_option tables and writes typed values where the tables point. A stage's options
 * (its type's table, and the runtime's own keys: settings.c) and the `pipeline:`
 * section go through here alike, so every value is checked, ranged and reported at its
 * line:col the same way. Dotted names ("retry.max") are also written as nested
 * mappings (retry: {max: 5s}). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/expr.h>

#include "config/internal.h"

#define MAX_TABLES (1 + SL_RUNTIME_OPTION_TABLES)

/* One application of option tables to one config mapping. */
struct schema {
    const struct sl_option *tables[MAX_TABLES]; /* option tables, each ending all-zero */
    void *bases[MAX_TABLES];                    /* where each table's values are written */
    size_t n;                                   /* tables in use */
    const struct sl_config *cfg;                /* the mapping; NULL: nothing set */
    struct sl_stage *stage;                     /* owns compiled values and is named in
                                                   messages; NULL for `pipeline:` */
    const char *what;                           /* "option" or "pipeline setting" */
    bool defaults;                              /* write the defaults of absent options */
    struct sl__report *r;                       /* where problems go */
};

static const char *type_word(enum sl_opt_type t)
{
    switch (t) {
    case SL_OPT_STRING: return "a string";
    case SL_OPT_INT: return "an integer";
    case SL_OPT_FLOAT: return "a number";
    case SL_OPT_BOOL: return "true or false";
    case SL_OPT_DURATION: return "a duration such as 250ms, 5s or 1h";
    case SL_OPT_SIZE: return "a size such as 512, 64KiB or 10MB";
    case SL_OPT_ENUM: return "one of the listed values";
    case SL_OPT_LIST: return "a list such as [a, b]";
    case SL_OPT_MAP: return "a mapping";
    case SL_OPT_EXPR: return "an expression";
    case SL_OPT_ANY: return "a value";
    case SL_OPT_TEMPLATE: return "a template";
    }
    return "a value";
}

static int problem(const struct schema *sc, const struct sl_config *node, const char *fmt, ...)
    SL_PRINTF(3, 4);

static int problem(const struct schema *sc, const struct sl_config *node, const char *fmt, ...)
{
    char msg[480];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sl__report_at(sc->r, SL_LOG_ERROR, SL_ECONFIG, sc->stage ? sc->stage->name : NULL,
                         node ? node : sc->cfg, "%s", msg);
}

/* ---- scalar values ----------------------------------------------------------------------- */

int sl__enum_index(const char *choices, const char *text)
{
    size_t tl = strlen(text);
    int idx = 0;
    for (const char *c = choices; c && *c; idx++) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == tl && memcmp(c, text, len) == 0) return idx;
        if (!bar) break;
        c = bar + 1;
    }
    return -1;
}

int sl__option_scalar(enum sl_opt_type type, const char *text, void *dst)
{
    char *end = NULL;
    errno = 0;
    if (!text || !*text) return -1;
    switch (type) {
    case SL_OPT_INT: {
        long long v = strtoll(text, &end, 0);
        if (*end || errno) return -1;
        *(int64_t *)dst = v;
        return 0;
    }
    case SL_OPT_FLOAT: {
        double v = strtod(text, &end);
        if (*end || errno || !isfinite(v)) return -1;
        *(double *)dst = v;
        return 0;
    }
    case SL_OPT_BOOL: {
        bool yes = !strcmp(text, "true") || !strcmp(text, "yes") || !strcmp(text, "on");
        bool no = !strcmp(text, "false") || !strcmp(text, "no") || !strcmp(text, "off");
        if (!yes && !no) return -1;
        *(bool *)dst = yes;
        return 0;
    }
    case SL_OPT_DURATION: {
        long long ms;
        if (sl_parse_duration(text, &ms)) return -1;
        *(int64_t *)dst = ms;
        return 0;
    }
    case SL_OPT_SIZE: {
        unsigned long long b;
        if (sl_parse_size(text, &b)) return -1;
        *(uint64_t *)dst = b;
        return 0;
    }
    default: return -1;
    }
}

/* The scalar at `p` (of an INT, FLOAT, DURATION or SIZE option) as a double. */
static double as_double(enum sl_opt_type type, const void *p)
{
    switch (type) {
    case SL_OPT_FLOAT: return *(const double *)p;
    case SL_OPT_SIZE: return (double)*(const uint64_t *)p;
    default: return (double)*(const int64_t *)p;
    }
}

int sl__option_range(const struct sl_option *o, struct sl__range *out)
{
    memset(out, 0, sizeof *out);
    if (!o->range) return 0;
    const char *dots = strstr(o->range, "..");
    size_t ll = dots ? (size_t)(dots - o->range) : 0;
    if (!dots || ll >= sizeof out->lo_text || strlen(dots + 2) >= sizeof out->hi_text) return -1;
    memcpy(out->lo_text, o->range, ll);
    snprintf(out->hi_text, sizeof out->hi_text, "%s", dots + 2);
    union {
        int64_t i;
        uint64_t u;
        double f;
    } v;
    if (ll) {
        if (sl__option_scalar(o->type, out->lo_text, &v)) return -1;
        out->has_lo = true;
        out->lo = as_double(o->type, &v);
    }
    if (out->hi_text[0]) {
        if (sl__option_scalar(o->type, out->hi_text, &v)) return -1;
        out->has_hi = true;
        out->hi = as_double(o->type, &v);
    }
    return out->has_lo && out->has_hi && out->lo > out->hi ? -1 : 0;
}

/* Checks the value just written at `dst` against the option's range. */
static int check_range(const struct schema *sc, const struct sl_option *o,
                       const struct sl_config *node, const char *text, const void *dst)
{
    struct sl__range rg;
    if (!o->range || sl__option_range(o, &rg)) return 0; /* tables are checked when added */
    double v = as_double(o->type, dst);
    if ((!rg.has_lo || v >= rg.lo) && (!rg.has_hi || v <= rg.hi)) return 0;
    if (rg.has_lo && rg.has_hi)
        return problem(sc, node, "%s '%s' must be from %s to %s; found '%s'", sc->what, o->name,
                       rg.lo_text, rg.hi_text, text);
    return problem(sc, node, "%s '%s' must be %s or %s; found '%s'", sc->what, o->name,
                   rg.has_lo ? rg.lo_text : rg.hi_text, rg.has_lo ? "more" : "less", text);
}

/* ---- structured values ------------------------------------------------------------------- */

/* "must be one of a, b, c; found 'x' (did you mean 'y'?)" */
static int enum_error(const struct schema *sc, const struct sl_option *o,
                      const struct sl_config *node, const char *text)
{
    char list[256] = "", names[256];
    const char *cand[32];
    size_t n = 0;
    snprintf(names, sizeof names, "%s", o->choices);
    for (char *c = names, *bar; c && n < 32; c = bar ? bar + 1 : NULL) {
        bar = strchr(c, '|');
        if (bar) *bar = '\0';
        cand[n++] = c;
        size_t l = strlen(list), cl = strlen(c);
        if (l + cl + 3 >= sizeof list) continue;
        if (n > 1) memcpy(list + l, ", ", 2), l += 2;
        memcpy(list + l, c, cl + 1);
    }
    const char *near = sl__nearest(text, cand, n);
    return problem(sc, node, "%s '%s' must be one of %s; found '%s'%s%s%s", sc->what, o->name, list,
                   text, near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
}

static int fill_list(const struct schema *sc, const struct sl_config *node, const char *text,
                     struct sl_list *out)
{
    size_t n = node && sl_config_kind(node) == SL_CFG_LIST ? sl_config_len(node) : 1;
    const char **items = calloc(n ? n : 1, sizeof *items);
    if (!items || sl__stage_own(sc->stage, items, free))
        return sl__report_at(sc->r, SL_LOG_ERROR, SL_ENOMEM, sc->stage->name, NULL,
                             "out of memory");
    if (node && sl_config_kind(node) == SL_CFG_LIST) {
        for (size_t i = 0; i < n; i++) {
            const struct sl_config *it = sl_config_at(node, i, NULL);
            if (sl_config_kind(it) != SL_CFG_SCALAR)
                return problem(sc, it, "expected a plain value in the list");
            items[i] = sl_config_str(it);
        }
    } else {
        items[0] = text;
    }
    out->n = n;
    out->items = items;
    return 0;
}

static void expr_free(void *e)
{
    sl_expr_free(e);
}

static void template_free(void *t)
{
    sl_template_free(t);
}

/* Compiles an expression or template option (`tpl`) into the pointer at `dst` (a
 * struct sl_expr * or struct sl_template * field), owned by the stage. A default (no
 * node) has no position. */
static int fill_compiled(const struct schema *sc, const char *opt_name,
                         const struct sl_config *node, const char *text, bool tpl, char *dst)
{
    struct sl_error e = {0};
    char what[96];
    snprintf(what, sizeof what, "option '%.64s'", opt_name);
    void *x;
    if (node)
        x = tpl ? (void *)sl_template_compile_config(node, what, &e)
                : (void *)sl_expr_compile_config(node, what, &e);
    else
        x = tpl ? (void *)sl_template_compile(text, strlen(text), &e)
                : (void *)sl_expr_compile(text, strlen(text), &e);
    if (!x) {
        snprintf(e.stage, sizeof e.stage, "%s", sc->stage->name);
        if (!e.code) e.code = SL_ECONFIG;
        return sl__report(sc->r, SL_LOG_ERROR, &e);
    }
    if (sl__stage_own(sc->stage, x, tpl ? template_free : expr_free))
        return sl__report_at(sc->r, SL_LOG_ERROR, SL_ENOMEM, sc->stage->name, NULL,
                             "out of memory");
    memcpy(dst, &x, sizeof x);
    return 0;
}

/* ---- one option -------------------------------------------------------------------------- */

static int not_scalar(const struct schema *sc, const struct sl_option *o,
                      const struct sl_config *node)
{
    return problem(sc, node, "%s '%s' expects %s; found a %s", sc->what, o->name,
                   type_word(o->type), sl_config_kind(node) == SL_CFG_LIST ? "list" : "mapping");
}

/* Writes one option's value (from `node`, or the default `text` when node is NULL) at
 * `base` + its offset. */
static int fill_one(const struct schema *sc, void *base, const struct sl_option *o,
                    const struct sl_config *node, const char *text)
{
    char *dst = (char *)base + o->offset;
    bool structured = o->type == SL_OPT_LIST || o->type == SL_OPT_MAP || o->type == SL_OPT_ANY;
    bool scalar = !node || sl_config_kind(node) == SL_CFG_SCALAR;
    if (!scalar && !structured) return not_scalar(sc, o, node);
    switch (o->type) {
    case SL_OPT_STRING: *(const char **)dst = text; return 0;
    case SL_OPT_ENUM: {
        int i = sl__enum_index(o->choices, text);
        if (i < 0) return enum_error(sc, o, node, text);
        *(int *)dst = i;
        return 0;
    }
    case SL_OPT_LIST:
        if (node && sl_config_kind(node) == SL_CFG_MAP) return not_scalar(sc, o, node);
        return fill_list(sc, node, text, (struct sl_list *)dst);
    case SL_OPT_MAP:
        if (node && sl_config_kind(node) == SL_CFG_LIST) return not_scalar(sc, o, node);
        if (node && sl_config_kind(node) == SL_CFG_SCALAR)
            return problem(sc, node, "%s '%s' expects a mapping; found '%s'", sc->what, o->name,
                           text);
        *(const struct sl_config **)dst = node;
        return 0;
    case SL_OPT_ANY: *(const struct sl_config **)dst = node; return 0;
    case SL_OPT_EXPR:
    case SL_OPT_TEMPLATE:
        return fill_compiled(sc, o->name, node, text, o->type == SL_OPT_TEMPLATE, dst);
    default:
        if (o->type == SL_OPT_INT && o->choices && text && sl__enum_index(o->choices, text) >= 0) {
            *(int64_t *)dst = -(sl__enum_index(o->choices, text) + 1); /* a word: no range */
            return 0;
        }
        if (sl__option_scalar(o->type, text, dst) == 0) return check_range(sc, o, node, text, dst);
    }
    bool words = o->type == SL_OPT_INT && o->choices; /* "an integer or auto" */
    if (!text)
        return problem(sc, node, "%s '%s' expects %s%s%s", sc->what, o->name, type_word(o->type),
                       words ? " or " : "", words ? o->choices : "");
    return problem(sc, node, "%s '%s' expects %s%s%s; found '%s'", sc->what, o->name,
                   type_word(o->type), words ? " or " : "", words ? o->choices : "", text);
}

/* ---- keys -------------------------------------------------------------------------------- */

/* The option called `path`, or NULL; `*prefix` tells whether some option name continues
 * `path` with a dot (so that `path` may be a mapping of them). */
static const struct sl_option *find_option(const struct schema *sc, const char *path, bool *prefix)
{
    size_t pl = strlen(path);
    *prefix = false;
    for (size_t t = 0; t < sc->n; t++)
        for (const struct sl_option *o = sc->tables[t]; o->name; o++) {
            if (strcmp(o->name, path) == 0) return o;
            *prefix |= strncmp(o->name, path, pl) == 0 && o->name[pl] == '.';
        }
    return NULL;
}

static int unknown_key(const struct schema *sc, const struct sl_config *key,
                       const struct sl_config *value, const char *path)
{
    char why[200];
    if (sc->stage && sl__runtime_key_misuse(sc->stage->type, path, why, sizeof why))
        return problem(sc, value, "%s", why);
    size_t n = 2;
    for (size_t t = 0; t < sc->n; t++)
        for (const struct sl_option *o = sc->tables[t]; o->name; o++) n++;
    const char **names = malloc(n * sizeof *names);
    const char *near = NULL;
    if (names) {
        size_t k = 0;
        for (size_t t = 0; t < sc->n; t++)
            for (const struct sl_option *o = sc->tables[t]; o->name; o++) names[k++] = o->name;
        if (sc->stage) names[k++] = "inputs", names[k++] = "type"; /* `input:` means inputs */
        near = sl__nearest(path, names, k);
        free(names);
    }
    char type[96] = "";
    if (sc->stage) snprintf(type, sizeof type, " for type '%s'", sc->stage->type->name);
    return problem(sc, key, "unknown %s '%s'%s%s%s%s", sc->what, path, type,
                   near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
}

/* Every key of `map` (under `prefix`) must name an option, or be a mapping of options
 * whose names continue it. Every unknown key is reported; returns the first error. */
static int check_keys(const struct schema *sc, const struct sl_config *map, const char *prefix)
{
    int rc = 0;
    for (size_t i = 0; i < sl_config_len(map); i++) {
        const char *key;
        const struct sl_config *v = sl_config_at(map, i, &key);
        if (!*prefix && sc->stage && (!strcmp(key, "type") || !strcmp(key, "inputs"))) continue;
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", key);
        bool more;
        int e = 0;
        if (find_option(sc, path, &more)) continue;
        if (more && sl_config_kind(v) == SL_CFG_MAP)
            e = check_keys(sc, v, path);
        else if (more)
            e = problem(sc, v, "%s '%s' expects a mapping of its settings", sc->what, path);
        else
            e = unknown_key(sc, sl_config_key_at(map, i), v, path);
        if (!rc) rc = e;
    }
    return rc;
}

static int fill(const struct schema *sc, bool *values_ok)
{
    if (sc->cfg && sl_config_kind(sc->cfg) != SL_CFG_MAP)
        return problem(sc, sc->cfg,
                       sc->stage ? "a stage must be a mapping with a 'type'"
                                 : "'pipeline' must be a mapping");
    int rc = sc->cfg ? check_keys(sc, sc->cfg, "") : 0, vrc = 0;
    for (size_t t = 0; t < sc->n; t++)
        for (const struct sl_option *o = sc->tables[t]; o->name; o++) {
            const struct sl_config *node = sc->cfg ? sl_config_get(sc->cfg, o->name) : NULL;
            const char *text = node ? sl_config_str(node) : o->def;
            int e = 0;
            if (!node && (o->flags & SL_REQUIRED))
                e = problem(sc, NULL, "missing %s '%s' (type '%s' needs it: %s)", sc->what, o->name,
                            sc->stage ? sc->stage->type->name : "?", o->doc);
            else if (node || (sc->defaults && o->def))
                e = fill_one(sc, sc->bases[t], o, node, text);
            if (!vrc) vrc = e;
        }
    if (values_ok) *values_ok = vrc == 0;
    return rc ? rc : vrc;
}

int sl__options_fill(struct sl_stage *s, struct sl__report *r, bool *values_ok)
{
    struct schema sc = {.cfg = s->cfg, .stage = s, .what = "option", .defaults = true, .r = r};
    sc.tables[0] = s->type->options ? s->type->options : (const struct sl_option[]){{0}};
    sc.bases[0] = s->state;
    const struct sl_option *rt[SL_RUNTIME_OPTION_TABLES];
    size_t n = sl_stage_runtime_options(s->type, rt);
    for (size_t i = 0; i < n; i++) {
        sc.tables[1 + i] = rt[i];
        sc.bases[1 + i] = &s->conf;
    }
    sc.n = 1 + n;
    return fill(&sc, values_ok);
}

int sl_pipeline_options_from_config(struct sl_pipeline_options *o, const struct sl_config *root,
                                    struct sl_error *err)
{
    if (o->size < SL__OPTIONS_SIZE_0)
        return sl_error_set(err, SL_EINVAL,
                            "pipeline options of size %zu, below libsluice 0.1's: fill them with "
                            "sl_pipeline_options_init()",
                            o->size);
    const struct sl_config *pc = sl_config_get(root, "pipeline");
    if (!pc) return 0;
    struct sl_error first = {0};
    struct sl__report r = {.first = &first};
    struct schema sc = {.cfg = pc, .what = "pipeline setting", .r = &r, .n = 1};
    sc.tables[0] = sl_pipeline_settings();
    sc.bases[0] = o;
    int rc = fill(&sc, NULL);
    if (rc) sl__error_copy(err, &first);
    return rc;
}
