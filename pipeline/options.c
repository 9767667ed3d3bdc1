/* The option schema is the only option parser: it checks a stage's config against its
 * type's sl_option table and writes typed values into the stage state. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/expr.h>

#include "internal.h"

static const char *const runtime_keys[] = {"type", "inputs", "workers", "buffer"};

bool sl__is_runtime_key(const char *key)
{
    for (size_t i = 0; i < sizeof runtime_keys / sizeof *runtime_keys; i++)
        if (strcmp(key, runtime_keys[i]) == 0) return true;
    return false;
}

static int own(struct sl_stage *s, void *ptr, void (*fn)(void *))
{
    struct sl__owned *no = realloc(s->owned, (s->nowned + 1) * sizeof *no);
    if (!no) {
        fn(ptr);
        return SL_ENOMEM;
    }
    s->owned = no;
    s->owned[s->nowned].ptr = ptr;
    s->owned[s->nowned].fn = fn;
    s->nowned++;
    return 0;
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
    case SL_OPT_LIST: return "a list";
    case SL_OPT_MAP: return "a mapping";
    case SL_OPT_EXPR: return "an expression";
    case SL_OPT_ANY: return "a value";
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

static int fill_list(struct sl_stage *s, const struct sl_config *node, const char *text,
                     struct sl_list *out, struct sl_error *err)
{
    size_t n = node && sl_config_kind(node) == SL_CFG_LIST ? sl_config_len(node) : 1;
    const char **items = calloc(n ? n : 1, sizeof *items);
    if (!items || own(s, items, free)) return sl_error_set(err, SL_ENOMEM, "out of memory");
    if (node && sl_config_kind(node) == SL_CFG_LIST) {
        for (size_t i = 0; i < n; i++) {
            const struct sl_config *it = sl_config_at(node, i, NULL);
            if (sl_config_kind(it) != SL_CFG_SCALAR)
                return sl_config_error(it, err, SL_ECONFIG, "expected a plain value in the list");
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

/* Compiles an expression option; errors point into the config file: the scalar's line
 * and column plus the position inside the expression (one more for an opening quote).
 * Past the first line of a multi-line scalar the indentation is not known, so the
 * column is the one inside the expression. */
static int fill_expr(struct sl_stage *s, const char *opt_name, const struct sl_config *node,
                     const char *text, struct sl_expr **out, struct sl_error *err)
{
    struct sl_error e = {0};
    struct sl_expr *x = sl_expr_compile(text, strlen(text), &e);
    if (!x) {
        int line = node ? sl_config_line(node) : 0;
        int col = e.col;
        if (node && e.line <= 1) /* block scalars ('|', '>') count as quoted: approximate */
            col = sl_config_col(node) + (sl_config_quoted(node) ? 1 : 0) +
                  (e.col > 0 ? e.col - 1 : 0);
        if (node && e.line > 1) line += e.line - 1;
        return sl_error_at(err, e.code == SL_ENOMEM ? SL_ENOMEM : SL_ECONFIG,
                           node ? sl_config_file(node) : "", line, col, "option '%s': %s", opt_name,
                           e.msg);
    }
    if (own(s, x, expr_free)) return sl_error_set(err, SL_ENOMEM, "out of memory");
    *out = x;
    return 0;
}

/* Writes one option's value (from `node`, or the default `text` when node is NULL). */
static int fill_one(struct sl_stage *s, const struct sl_option *o, const struct sl_config *node,
                    const char *text, struct sl_error *err)
{
    char *dst = (char *)s->state + o->offset;
    bool structured = o->type == SL_OPT_LIST || o->type == SL_OPT_MAP || o->type == SL_OPT_ANY;
    if (node && !structured && sl_config_kind(node) != SL_CFG_SCALAR)
        return sl_config_error(node, err, SL_ECONFIG, "option '%s' expects %s", o->name,
                               type_word(o->type));
    char *end = NULL;
    errno = 0;
    switch (o->type) {
    case SL_OPT_STRING: *(const char **)dst = text; return 0;
    case SL_OPT_INT: {
        long long v = strtoll(text, &end, 0);
        if (!*text || *end || errno) break;
        *(int64_t *)dst = v;
        return 0;
    }
    case SL_OPT_FLOAT: {
        double v = strtod(text, &end);
        if (!*text || *end || errno) break;
        *(double *)dst = v;
        return 0;
    }
    case SL_OPT_BOOL:
        if (!strcmp(text, "true") || !strcmp(text, "yes") || !strcmp(text, "on")) {
            *(bool *)dst = true;
            return 0;
        }
        if (!strcmp(text, "false") || !strcmp(text, "no") || !strcmp(text, "off")) {
            *(bool *)dst = false;
            return 0;
        }
        break;
    case SL_OPT_DURATION: {
        long long ms;
        if (sl_parse_duration(text, &ms)) break;
        *(int64_t *)dst = ms;
        return 0;
    }
    case SL_OPT_SIZE: {
        unsigned long long b;
        if (sl_parse_size(text, &b)) break;
        *(uint64_t *)dst = b;
        return 0;
    }
    case SL_OPT_ENUM: {
        int i = enum_index(o->choices, text);
        if (i < 0)
            return sl_config_error(node, err, SL_ECONFIG,
                                   "option '%s' must be one of %s; found '%s'", o->name, o->choices,
                                   text);
        *(int *)dst = i;
        return 0;
    }
    case SL_OPT_LIST: return fill_list(s, node, text, (struct sl_list *)dst, err);
    case SL_OPT_MAP:
        if (node && sl_config_kind(node) != SL_CFG_MAP) break;
        *(const struct sl_config **)dst = node;
        return 0;
    case SL_OPT_ANY: *(const struct sl_config **)dst = node; return 0;
    case SL_OPT_EXPR: return fill_expr(s, o->name, node, text, (struct sl_expr **)dst, err);
    }
    if (node && sl_config_kind(node) != SL_CFG_SCALAR)
        return sl_config_error(node, err, SL_ECONFIG, "option '%s' expects %s; found a %s", o->name,
                               type_word(o->type),
                               sl_config_kind(node) == SL_CFG_LIST ? "list" : "mapping");
    return sl_config_error(node, err, SL_ECONFIG, "option '%s' expects %s; found '%s'", o->name,
                           type_word(o->type), text ? text : "");
}

/* Unknown keys are errors, with the nearest known option as a hint. */
static int check_keys(struct sl_stage *s, struct sl_error *err)
{
    const struct sl_option *opts = s->type->options;
    for (size_t i = 0; i < sl_config_len(s->cfg); i++) {
        const char *key;
        sl_config_at(s->cfg, i, &key);
        if (sl__is_runtime_key(key)) continue;
        bool known = false;
        const char *names[128];
        size_t n = 0;
        for (const struct sl_option *o = opts; o && o->name; o++) {
            if (!strcmp(o->name, key)) known = true;
            if (n < 128) names[n++] = o->name;
        }
        if (known) continue;
        const char *near = sl__nearest(key, names, n);
        const struct sl_config *kn = sl_config_key_at(s->cfg, i);
        if (near)
            return sl_config_error(kn, err, SL_ECONFIG,
                                   "unknown option '%s' for type '%s' (did you mean '%s'?)", key,
                                   s->type->name, near);
        return sl_config_error(kn, err, SL_ECONFIG, "unknown option '%s' for type '%s'", key,
                               s->type->name);
    }
    return 0;
}

int sl__options_fill(struct sl_stage *s, struct sl_error *err)
{
    if (s->cfg && sl_config_kind(s->cfg) != SL_CFG_MAP)
        return sl_config_error(s->cfg, err, SL_ECONFIG, "stage '%s' must be a mapping", s->name);
    int rc = s->cfg ? check_keys(s, err) : 0;
    for (const struct sl_option *o = s->type->options; !rc && o && o->name; o++) {
        const struct sl_config *node = s->cfg ? sl_config_get(s->cfg, o->name) : NULL;
        const char *text = node ? sl_config_str(node) : o->def;
        if (!node && !o->def) {
            if (o->flags & SL_REQUIRED)
                rc = sl_config_error(s->cfg, err, SL_ECONFIG,
                                     "stage '%s' (type '%s') needs option '%s': %s", s->name,
                                     s->type->name, o->name, o->doc);
            continue;
        }
        rc = fill_one(s, o, node, text, err);
    }
    return rc;
}
