/* The option schema is the only option parser: it checks a stage's config against its
 * type's sl_option table and writes typed values into the stage state. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/expr.h>

#include "config/internal.h"

static const char *const runtime_keys[] = {"type", "inputs", "workers", "buffer"};

bool sl__is_runtime_key(const char *key)
{
    for (size_t i = 0; i < sizeof runtime_keys / sizeof *runtime_keys; i++)
        if (strcmp(key, runtime_keys[i]) == 0) return true;
    return false;
}

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

/* Index of `text` among the '|'-separated `choices`, or -1. */
static int enum_index(const char *choices, const char *text)
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

/* "must be one of a, b, c; found 'x' (did you mean 'y'?)" */
static int enum_error(struct sl_stage *s, const struct sl_option *o, const struct sl_config *node,
                      const char *text, struct sl__report *r)
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
    return sl__report_at(r, SL_LOG_ERROR, SL_ECONFIG, s->name, node ? node : s->cfg,
                         "option '%s' must be one of %s; found '%s'%s%s%s", o->name, list, text,
                         near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
}

static int fill_list(struct sl_stage *s, const struct sl_config *node, const char *text,
                     struct sl_list *out, struct sl__report *r)
{
    size_t n = node && sl_config_kind(node) == SL_CFG_LIST ? sl_config_len(node) : 1;
    const char **items = calloc(n ? n : 1, sizeof *items);
    if (!items || sl__stage_own(s, items, free))
        return sl__report_at(r, SL_LOG_ERROR, SL_ENOMEM, s->name, NULL, "out of memory");
    if (node && sl_config_kind(node) == SL_CFG_LIST) {
        for (size_t i = 0; i < n; i++) {
            const struct sl_config *it = sl_config_at(node, i, NULL);
            if (sl_config_kind(it) != SL_CFG_SCALAR)
                return sl__report_at(r, SL_LOG_ERROR, SL_ECONFIG, s->name, it,
                                     "expected a plain value in the list");
            items[i] = sl_config_str(it);
        }
    } else {
        items[0] = text;
    }
    out->n = n;
    out->items = items;
    return 0;
}

/* Converts `text` for the plain scalar types (int, float, bool, duration, size) into
 * `dst`. Returns 0, or -1 when the text is not a value of that type. */
static int fill_scalar(enum sl_opt_type type, const char *text, void *dst)
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
        if (*end || errno) return -1;
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
static int fill_compiled(struct sl_stage *s, const char *opt_name, const struct sl_config *node,
                         const char *text, bool tpl, char *dst, struct sl__report *r)
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
        snprintf(e.stage, sizeof e.stage, "%s", s->name);
        if (!e.code) e.code = SL_ECONFIG;
        return sl__report(r, SL_LOG_ERROR, &e);
    }
    if (sl__stage_own(s, x, tpl ? template_free : expr_free))
        return sl__report_at(r, SL_LOG_ERROR, SL_ENOMEM, s->name, NULL, "out of memory");
    memcpy(dst, &x, sizeof x);
    return 0;
}

/* Writes one option's value (from `node`, or the default `text` when node is NULL). */
static int fill_one(struct sl_stage *s, const struct sl_option *o, const struct sl_config *node,
                    const char *text, struct sl__report *r)
{
    char *dst = (char *)s->state + o->offset;
    const struct sl_config *at = node ? node : s->cfg;
    bool structured = o->type == SL_OPT_LIST || o->type == SL_OPT_MAP || o->type == SL_OPT_ANY;
    bool scalar = !node || sl_config_kind(node) == SL_CFG_SCALAR;
    if (!scalar && !structured)
        return sl__report_at(r, SL_LOG_ERROR, SL_ECONFIG, s->name, at,
                             "option '%s' expects %s; found a %s", o->name, type_word(o->type),
                             sl_config_kind(node) == SL_CFG_LIST ? "list" : "mapping");
    switch (o->type) {
    case SL_OPT_STRING: *(const char **)dst = text; return 0;
    case SL_OPT_ENUM: {
        int i = enum_index(o->choices, text);
        if (i < 0) return enum_error(s, o, node, text, r);
        *(int *)dst = i;
        return 0;
    }
    case SL_OPT_LIST:
        if (node && sl_config_kind(node) == SL_CFG_MAP) break;
        return fill_list(s, node, text, (struct sl_list *)dst, r);
    case SL_OPT_MAP:
        if (node && sl_config_kind(node) != SL_CFG_MAP) break;
        *(const struct sl_config **)dst = node;
        return 0;
    case SL_OPT_ANY: *(const struct sl_config **)dst = node; return 0;
    case SL_OPT_EXPR:
    case SL_OPT_TEMPLATE:
        return fill_compiled(s, o->name, node, text, o->type == SL_OPT_TEMPLATE, dst, r);
    default:
        if (fill_scalar(o->type, text, dst) == 0) return 0;
    }
    if (!scalar)
        return sl__report_at(r, SL_LOG_ERROR, SL_ECONFIG, s->name, at,
                             "option '%s' expects %s; found a %s", o->name, type_word(o->type),
                             sl_config_kind(node) == SL_CFG_LIST ? "list" : "mapping");
    if (!text)
        return sl__report_at(r, SL_LOG_ERROR, SL_ECONFIG, s->name, at, "option '%s' expects %s",
                             o->name, type_word(o->type));
    return sl__report_at(r, SL_LOG_ERROR, SL_ECONFIG, s->name, at,
                         "option '%s' expects %s; found '%s'", o->name, type_word(o->type), text);
}

/* Unknown keys are errors, with the nearest known option as a hint. Every unknown key
 * is reported; returns the first error's code. */
static int check_keys(struct sl_stage *s, struct sl__report *r)
{
    const char *names[128];
    size_t n = 0;
    for (const struct sl_option *o = s->type->options; o && o->name && n < 124; o++)
        names[n++] = o->name;
    size_t nopts = n;
    for (size_t i = 0; i < sizeof runtime_keys / sizeof *runtime_keys; i++)
        names[n++] = runtime_keys[i]; /* `input:` means `inputs:` */
    int rc = 0;
    for (size_t i = 0; i < sl_config_len(s->cfg); i++) {
        const char *key;
        sl_config_at(s->cfg, i, &key);
        if (sl__is_runtime_key(key)) continue;
        bool known = false;
        for (size_t k = 0; k < nopts && !known; k++) known = strcmp(names[k], key) == 0;
        if (known) continue;
        const char *near = sl__nearest(key, names, n);
        const struct sl_config *kn = sl_config_key_at(s->cfg, i);
        int e = near ? sl__report_at(r, SL_LOG_ERROR, SL_ECONFIG, s->name, kn,
                                     "unknown option '%s' for type '%s' (did you mean '%s'?)", key,
                                     s->type->name, near)
                     : sl__report_at(r, SL_LOG_ERROR, SL_ECONFIG, s->name, kn,
                                     "unknown option '%s' for type '%s'", key, s->type->name);
        if (!rc) rc = e;
    }
    return rc;
}

int sl__options_fill(struct sl_stage *s, struct sl__report *r)
{
    if (s->cfg && sl_config_kind(s->cfg) != SL_CFG_MAP)
        return sl__report_at(r, SL_LOG_ERROR, SL_ECONFIG, s->name, s->cfg,
                             "a stage must be a mapping with a 'type'");
    int rc = s->cfg ? check_keys(s, r) : 0;
    for (const struct sl_option *o = s->type->options; o && o->name; o++) {
        const struct sl_config *node = s->cfg ? sl_config_get(s->cfg, o->name) : NULL;
        const char *text = node ? sl_config_str(node) : o->def;
        int e = 0;
        if (!node && !o->def) {
            if (o->flags & SL_REQUIRED)
                e = sl__report_at(r, SL_LOG_ERROR, SL_ECONFIG, s->name, s->cfg,
                                  "missing option '%s' (type '%s' needs it: %s)", o->name,
                                  s->type->name, o->doc);
        } else {
            e = fill_one(s, o, node, text, r);
        }
        if (!rc) rc = e;
    }
    return rc;
}
