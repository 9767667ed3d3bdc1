/* parse_regex: matches the payload (or a field) against PCRE2 patterns, tried in order,
 * and turns the named groups of the first that matches into fields. Patterns are
 * compiled once, with the JIT when the machine has one. A group may carry a type,
 * `(?<latency:int>\d+)`, or get one from the `types` option: int, float, bool, auto (a
 * number or boolean when the text is one) or string (the default). Field values are spans
 * into the payload; nothing is allocated per event.
 *
 * A `workers: N` stage runs on several threads; each thread has its own match block and
 * value buffer, indexed by sl_stage_thread().
 *
 * `format` picks a built-in pattern (regex_formats.c) instead of `patterns`; a capture whose
 * text is one of `null_values` ("-" by default) is null whatever its type. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "internal.h"
#include "regex_formats.h"

enum conv { CONV_STRING = 0, CONV_INT, CONV_FLOAT, CONV_BOOL, CONV_AUTO };

static const char *const conv_names[] = {"string", "int", "float", "bool", "auto"};

struct capture {
    const char *name; /* the group's name (in the compiled pattern's name table) */
    uint32_t len;     /* bytes of name */
    uint32_t group;   /* group number */
    uint8_t conv;     /* enum conv */
};

struct pattern {
    pcre2_code *code;     /* compiled pattern */
    bool jit;             /* JIT-compiled: match with pcre2_jit_match */
    struct capture *caps; /* its named groups */
    uint32_t ncaps;       /* number of named groups */
    uint32_t pri_cap;     /* syslog formats: the index in caps of int group pri; else ncaps */
    char *inline_types;   /* "name\0conv" pairs found as (?<name:conv>), for init */
    size_t inline_len;    /* bytes of inline_types */
};

struct slot {
    pcre2_match_data *md;  /* match block big enough for every pattern */
    struct sl_value *vals; /* converted values, one per named group */
};

struct parse_regex {
    struct sl_list patterns;        /* option: patterns, tried in order */
    const char *field;              /* option: field to match; NULL: the payload */
    const struct sl_config *types;  /* option: group name -> type */
    int format;                     /* option: index in sl__regex_formats, when set */
    struct sl_list null_values;     /* option: captured texts that become null */
    bool pri_parts;                 /* a syslog format: facility and severity after pri */
    struct sl__stage_errors errors; /* option on_error, dead-letter port */
    struct pattern *pats;           /* compiled patterns */
    size_t npats;                   /* number of patterns */
    uint32_t max_caps;              /* most named groups of one pattern */
    int nslots;                     /* sl_stage_threads() */
    struct slot *slots;             /* per-thread scratch */
    bool kv;                        /* format: logfmt: the key=value splitter, no regex */
    struct sl__stage_kv split;      /* its settings (parse_logfmt's) */
};

/* ---- matching ---------------------------------------------------------------------------------
 */

static bool parse_int64(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (len && (s[0] == '-' || s[0] == '+')) neg = s[i++] == '-';
    if (i == len) return false;
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < len; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9 || v > (limit - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

/* A float as JSON or C writes it ("2.5", "-1e3", "7"): converted as event numbers are. */
static bool parse_double(const char *s, size_t len, double *out)
{
    struct sl_value v = {.type = SL_FLOAT, .flags = SL_VALUE_TEXT, .s = s, .len = (uint32_t)len};
    if (len == 0 || sl_value_number(&v)) return false;
    *out = v.f;
    return true;
}

static bool word_is(const char *s, size_t len, const char *w)
{
    return strlen(w) == len && strncasecmp(s, w, len) == 0;
}

/* Converts a captured span by its group's type; false when the text does not fit. */
static bool convert(uint8_t conv, const char *s, size_t len, struct sl_value *v)
{
    if (len == 0 && conv != CONV_STRING) {
        *v = sl_value_null();
        return true;
    }
    switch (conv) {
    case CONV_INT:
        v->type = SL_INT, v->flags = 0, v->s = NULL, v->len = 0;
        return parse_int64(s, len, &v->i);
    case CONV_FLOAT:
        v->type = SL_FLOAT, v->flags = 0, v->s = NULL, v->len = 0;
        return parse_double(s, len, &v->f);
    case CONV_BOOL:
        if (word_is(s, len, "true") || word_is(s, len, "yes") || word_is(s, len, "on") ||
            word_is(s, len, "1")) {
            *v = sl_value_bool(true);
            return true;
        }
        *v = sl_value_bool(false);
        return word_is(s, len, "false") || word_is(s, len, "no") || word_is(s, len, "off") ||
               word_is(s, len, "0");
    case CONV_AUTO: *v = sl__stage_infer(s, len); return true;
    default: *v = sl_value_string(s, len); return true;
    }
}

/* True when the captured text is one of `null_values`. */
static bool is_null_value(const struct parse_regex *pr, const char *s, size_t len)
{
    for (size_t i = 0; i < pr->null_values.n; i++) {
        const char *nv = pr->null_values.items[i];
        if (strlen(nv) == len && memcmp(nv, s, len) == 0) return true;
    }
    return false;
}

/* Index of the first pattern that matches, -1 when none does, or a PCRE2 error (< -1). */
static int match_any(const struct parse_regex *pr, pcre2_match_data *md, const char *text,
                     size_t len)
{
    for (size_t i = 0; i < pr->npats; i++) {
        const struct pattern *p = &pr->pats[i];
        int rc = p->jit ? pcre2_jit_match(p->code, (PCRE2_SPTR)text, len, 0, 0, md, NULL)
                        : pcre2_match(p->code, (PCRE2_SPTR)text, len, 0, 0, md, NULL);
        if (rc >= 0) return (int)i;
        if (rc != PCRE2_ERROR_NOMATCH) return rc < -1 ? rc : -2;
    }
    return -1;
}

/* Adds the converted groups of pattern `p` to `ev` and emits it; an event that would pass
 * the field limit is refused whole, before anything is added. */
static int put_captures(struct sl_stage *s, const struct parse_regex *pr, const struct pattern *p,
                        const struct slot *slot, struct sl_event *ev, struct sl_emit *out)
{
    size_t before = sl_event_field_count(ev), set = 0;
    bool merge = pr->field != NULL || before > 0;
    for (uint32_t c = 0; c < p->ncaps; c++) /* pri: with facility and severity */
        set += slot->vals[c].type == 0xff                        ? 0
               : c == p->pri_cap && slot->vals[c].type == SL_INT ? 3
                                                                 : 1;
    if (before + set > SL_EVENT_MAX_FIELDS)
        return sl__stage_too_many_fields(s, &pr->errors, ev, out);
    for (uint32_t c = 0; c < p->ncaps; c++) {
        const struct sl_value *v = &slot->vals[c];
        if (v->type == 0xff) continue;
        int rc = sl__stage_put(ev, p->caps[c].name, p->caps[c].len, v, merge);
        if (!rc && c == p->pri_cap && v->type == SL_INT) { /* PRI: facility * 8 + severity */
            struct sl_value f = {.type = SL_INT, .i = v->i / 8},
                            sev = {.type = SL_INT, .i = v->i % 8};
            rc = sl__stage_put(ev, "facility", 8, &f, merge);
            if (!rc) rc = sl__stage_put(ev, "severity", 8, &sev, merge);
        }
        if (rc) return sl__stage_fault(s, &pr->errors, ev, out, rc, "%s", sl_strerror(rc));
    }
    sl_event_fields_changed_mark(ev);
    return sl_emit(out, ev) ? sl_stage_error(s, SL_ENOMEM, "out of memory") : 0;
}

static int parse_regex_map(struct sl_stage *s, struct sl_event *ev, struct sl_emit *out)
{
    struct parse_regex *pr = sl_stage_state(s);
    if (pr->kv) return sl__stage_kv_map(s, &pr->split, pr->field, &pr->errors, ev, out);
    struct slot *slot = &pr->slots[sl_stage_thread(s)];
    const char *text;
    size_t len;
    int rc = sl__stage_input(ev, pr->field, &text, &len);
    if (rc == SL_ENOMEM) return sl_stage_error(s, rc, "out of memory");
    if (rc) return sl__stage_reject(s, &pr->errors, ev, out, "%s", sl__stage_input_error(rc));
    int which = match_any(pr, slot->md, text, len);
    if (which == -1) return sl__stage_reject(s, &pr->errors, ev, out, "no pattern matched");
    if (which < 0) {
        char msg[128];
        pcre2_get_error_message(which, (PCRE2_UCHAR *)msg, sizeof msg);
        return sl__stage_reject(s, &pr->errors, ev, out, "regex match failed: %s", msg);
    }
    const struct pattern *p = &pr->pats[which];
    const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(slot->md);
    uint32_t nov = pcre2_get_ovector_count(slot->md);
    /* Convert everything first: a value that does not convert leaves the event as it was. */
    for (uint32_t c = 0; c < p->ncaps; c++) {
        const struct capture *cap = &p->caps[c];
        struct sl_value *v = &slot->vals[c];
        v->type = 0xff; /* unset group: no field */
        if (cap->group >= nov || ov[2 * cap->group] == PCRE2_UNSET) continue;
        size_t a = ov[2 * cap->group], b = ov[2 * cap->group + 1];
        if (is_null_value(pr, text + a, b - a)) {
            *v = sl_value_null();
            continue;
        }
        if (!convert(cap->conv, text + a, b - a, v))
            return sl__stage_reject(s, &pr->errors, ev, out, "capture '%.*s' is not %s: '%.*s'",
                                    (int)cap->len, cap->name,
                                    cap->conv == CONV_INT     ? "an int"
                                    : cap->conv == CONV_FLOAT ? "a float"
                                                              : "a bool",
                                    (int)(b - a > 64 ? 64 : b - a), text + a);
    }
    return put_captures(s, pr, p, slot, ev, out);
}

/* ---- compiling ---------------------------------------------------------------------------------
 */

static int conv_index(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof conv_names / sizeof *conv_names; i++)
        if (strlen(conv_names[i]) == len && memcmp(conv_names[i], s, len) == 0) return (int)i;
    return -1;
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Copies `src` into `dst` without the `:type` of each `(?<name:type>` / `(?P<name:type>`,
 * appending "name\0type\0" to `types`. Skips escapes and character classes. */
static void strip_types(const char *src, char *dst, char *types, size_t *types_len)
{
    size_t o = 0, t = 0;
    bool in_class = false;
    for (size_t i = 0; src[i];) {
        char c = src[i];
        if (c == '\\' && src[i + 1]) {
            dst[o++] = src[i++];
            dst[o++] = src[i++];
            continue;
        }
        if (in_class) {
            const char *end = c == '[' && src[i + 1] == ':' ? strstr(src + i + 2, ":]") : NULL;
            size_t n = end ? (size_t)(end + 2 - (src + i)) : 1; /* [:alpha:] as one piece */
            in_class = end || c != ']';
            memcpy(dst + o, src + i, n), o += n, i += n;
            continue;
        }
        if (c == '[') { /* a ']' right after '[' or '[^' is a member, not the end */
            dst[o++] = src[i++];
            if (src[i] == '^') dst[o++] = src[i++];
            if (src[i] == ']') dst[o++] = src[i++];
            in_class = true;
            continue;
        }
        size_t open = strncmp(src + i, "(?<", 3) == 0    ? 3
                      : strncmp(src + i, "(?P<", 4) == 0 ? 4
                                                         : 0;
        size_t n = open;
        while (open && name_char(src[i + n])) n++;
        if (open && n > open && src[i + n] == ':') {
            size_t ty = n + 1, e = ty;
            while (name_char(src[i + e])) e++;
            if (src[i + e] == '>') {
                memcpy(dst + o, src + i, n), o += n;
                memcpy(types + t, src + i + open, n - open), t += n - open;
                types[t++] = '\0';
                memcpy(types + t, src + i + ty, e - ty), t += e - ty;
                types[t++] = '\0';
                i += e;
                continue;
            }
        }
        dst[o++] = src[i++];
    }
    dst[o] = '\0';
    *types_len = t;
}

/* The type of group `name`: written in the pattern, else from `types`, else string. */
static int capture_conv(const struct parse_regex *pr, const struct pattern *p, const char *name,
                        const struct sl_config *node, struct sl_error *err)
{
    for (size_t t = 0; t < p->inline_len;) {
        const char *n = p->inline_types + t, *ty = n + strlen(n) + 1;
        t = (size_t)(ty - p->inline_types) + strlen(ty) + 1;
        if (strcmp(n, name) != 0) continue;
        int c = conv_index(ty, strlen(ty));
        if (c < 0)
            return sl_config_error(node, err, SL_ECONFIG,
                                   "unknown type '%s' for group '%s' (expected int, float, bool, "
                                   "auto or string)",
                                   ty, name);
        return c;
    }
    const struct sl_config *tn = pr->types ? sl_config_get(pr->types, name) : NULL;
    if (!tn) return CONV_STRING;
    const char *ty = sl_config_str(tn);
    int c = ty ? conv_index(ty, strlen(ty)) : -1;
    if (c < 0)
        return sl_config_error(tn, err, SL_ECONFIG,
                               "unknown type '%s' for group '%s' (expected int, float, bool, auto "
                               "or string)",
                               ty ? ty : "", name);
    return c;
}

static int by_group(const void *a, const void *b)
{
    const struct capture *x = a, *y = b;
    return (x->group > y->group) - (x->group < y->group);
}

/* Lists the named groups of a compiled pattern with their types. */
static int read_names(struct parse_regex *pr, struct pattern *p, const struct sl_config *node,
                      struct sl_error *err)
{
    uint32_t count = 0, entry = 0;
    PCRE2_SPTR table = NULL;
    pcre2_pattern_info(p->code, PCRE2_INFO_NAMECOUNT, &count);
    pcre2_pattern_info(p->code, PCRE2_INFO_NAMEENTRYSIZE, &entry);
    pcre2_pattern_info(p->code, PCRE2_INFO_NAMETABLE, &table);
    p->caps = calloc(count ? count : 1, sizeof *p->caps);
    if (!p->caps) return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < count; i++) {
        PCRE2_SPTR e = table + (size_t)i * entry;
        struct capture *c = &p->caps[i];
        c->group = (uint32_t)(e[0] << 8 | e[1]);
        c->name = (const char *)e + 2; /* lives as long as the compiled pattern */
        c->len = (uint32_t)strlen(c->name);
        int conv = capture_conv(pr, p, c->name, node, err);
        if (conv < 0) return conv;
        c->conv = (uint8_t)conv;
    }
    /* The name table is sorted by name; fields come in the order of the groups. */
    qsort(p->caps, count, sizeof *p->caps, by_group);
    p->ncaps = p->pri_cap = count;
    for (uint32_t i = 0; pr->pri_parts && i < count; i++)
        if (strcmp(p->caps[i].name, "pri") == 0 && p->caps[i].conv == CONV_INT) p->pri_cap = i;
    if (count > pr->max_caps) pr->max_caps = count;
    return 0;
}

static int compile_one(struct parse_regex *pr, struct pattern *p, const char *src,
                       const struct sl_config *node, struct sl_error *err)
{
    size_t n = strlen(src);
    char *clean = malloc(n + 1);
    p->inline_types = malloc(n + 2);
    if (!clean || !p->inline_types) {
        free(clean);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    strip_types(src, clean, p->inline_types, &p->inline_len);
    int code;
    PCRE2_SIZE off;
    p->code = pcre2_compile((PCRE2_SPTR)clean, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
    free(clean);
    if (!p->code) {
        char msg[160];
        pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof msg);
        return sl_config_error(node, err, SL_ECONFIG, "bad pattern: %s (near byte %zu of '%s')",
                               msg, (size_t)off, src);
    }
    p->jit = pcre2_jit_compile(p->code, PCRE2_JIT_COMPLETE) == 0;
    return read_names(pr, p, node, err);
}

/* Every name in `types` must be a group of some pattern: a typo would do nothing. */
static int check_types(const struct parse_regex *pr, struct sl_error *err)
{
    for (size_t i = 0; pr->types && i < sl_config_len(pr->types); i++) {
        const char *name;
        const struct sl_config *v = sl_config_at(pr->types, i, &name);
        bool found = false;
        for (size_t k = 0; k < pr->npats && !found; k++)
            for (uint32_t c = 0; c < pr->pats[k].ncaps && !found; c++)
                found = strcmp(pr->pats[k].caps[c].name, name) == 0;
        if (!found)
            return sl_config_error(sl_config_key_at(pr->types, i), err, SL_ECONFIG,
                                   "types: no pattern has a group named '%s'", name);
        if (sl_config_kind(v) != SL_CFG_SCALAR)
            return sl_config_error(v, err, SL_ECONFIG, "types: expected a type name for '%s'",
                                   name);
    }
    return 0;
}

static int make_slots(struct sl_stage *s, struct parse_regex *pr, struct sl_error *err)
{
    pr->nslots = sl_stage_threads(s);
    pr->slots = calloc((size_t)pr->nslots, sizeof *pr->slots);
    if (!pr->slots) return sl_error_set(err, SL_ENOMEM, "out of memory");
    uint32_t groups = 1;
    for (size_t i = 0; i < pr->npats; i++) {
        uint32_t g = 0;
        pcre2_pattern_info(pr->pats[i].code, PCRE2_INFO_CAPTURECOUNT, &g);
        if (g + 1 > groups) groups = g + 1;
    }
    for (int t = 0; t < pr->nslots; t++) {
        pr->slots[t].md = pcre2_match_data_create(groups, NULL);
        pr->slots[t].vals = calloc(pr->max_caps ? pr->max_caps : 1, sizeof *pr->slots[t].vals);
        if (!pr->slots[t].md || !pr->slots[t].vals)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    return 0;
}

/* The fields a match adds: every named group of every pattern (and a syslog format's
 * facility and severity), for validate's check of the names used downstream. */
static int declare(struct sl_stage *s, const struct parse_regex *pr, struct sl_error *err)
{
    size_t n = 2;
    for (size_t i = 0; i < pr->npats; i++) n += pr->pats[i].ncaps;
    char **names = calloc(n, sizeof *names);
    size_t k = 0;
    bool pri = false, ok = names != NULL;
    for (size_t i = 0; ok && i < pr->npats; i++) {
        const struct pattern *p = &pr->pats[i];
        pri |= p->pri_cap < p->ncaps;
        for (uint32_t c = 0; ok && c < p->ncaps; c++)
            ok = (names[k++] = strndup(p->caps[c].name, p->caps[c].len)) != NULL;
    }
    if (ok && pri) names[k++] = strdup("facility"), names[k++] = strdup("severity");
    for (size_t i = 0; ok && i < k; i++) ok = names[i] != NULL;
    int rc = ok ? sl_stage_declare_fields(s, SL_FIELDS_ADD, (const char *const *)names, k) : 1;
    for (size_t i = 0; names && i < k; i++) free(names[i]);
    free(names);
    return rc ? sl_error_set(err, SL_ENOMEM, "out of memory") : 0;
}

static int parse_regex_init(struct sl_stage *s, const struct sl_config *cfg, struct sl_error *err)
{
    struct parse_regex *pr = sl_stage_state(s);
    const struct sl_config *list;
    int rc = sl__regex_format_pick(cfg, pr->format, &pr->patterns, &list, err);
    if (rc == SL__REGEX_FORMAT_KV) { /* logfmt: as parse_logfmt reads it (any keys) */
        pr->kv = true;
        pr->split = (struct sl__stage_kv){
            .field_blank = true, .kv_sep = "=", .kv_sep_len = 1, .infer = true, .bare_keys = true};
        return sl__stage_errors_init(s, &pr->errors, err);
    }
    if (rc) return rc;
    pr->pri_parts = cfg && sl_config_get(cfg, "format") && sl__regex_formats[pr->format].pri_parts;
    pr->pats = calloc(pr->patterns.n, sizeof *pr->pats);
    if (!pr->pats) return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < pr->patterns.n; i++) {
        const struct sl_config *node =
            list && sl_config_kind(list) == SL_CFG_LIST ? sl_config_at(list, i, NULL) : list;
        pr->npats = i + 1;
        rc = compile_one(pr, &pr->pats[i], pr->patterns.items[i], node, err);
        if (rc) return rc;
    }
    rc = check_types(pr, err);
    if (!rc) rc = make_slots(s, pr, err);
    if (!rc) rc = sl__stage_errors_init(s, &pr->errors, err);
    if (!rc) rc = declare(s, pr, err);
    return rc;
}

static void parse_regex_close(struct sl_stage *s)
{
    struct parse_regex *pr = sl_stage_state(s);
    for (int t = 0; pr->slots && t < pr->nslots; t++) {
        pcre2_match_data_free(pr->slots[t].md);
        free(pr->slots[t].vals);
    }
    free(pr->slots);
    for (size_t i = 0; i < pr->npats; i++) {
        pcre2_code_free(pr->pats[i].code);
        free(pr->pats[i].caps);
        free(pr->pats[i].inline_types);
    }
    free(pr->pats);
}

static const struct sl_option parse_regex_options[] = {
    {"patterns", SL_OPT_LIST, NULL, 0, offsetof(struct parse_regex, patterns),
     "PCRE2 pattern, or list of patterns tried in order; named groups become fields, "
     "(?<name:type>...) converts to int, float, bool (true/false, yes/no, on/off, 1/0, any "
     "case), auto or string; an empty capture of a typed group is null; required unless "
     "`format` is given"},
    {"format", SL_OPT_ENUM, NULL, 0, offsetof(struct parse_regex, format),
     "a built-in pattern instead of `patterns`: apache_common, apache_combined, nginx_combined "
     "(Apache/nginx access logs), syslog_rfc3164, syslog_rfc5424, clf_error (Apache error log); "
     "logfmt is read as parse_logfmt reads it (any keys, numbers and booleans typed); fields "
     "in docs/stages.md",
     SL__REGEX_FORMAT_CHOICES},
    {"null_values", SL_OPT_LIST, "-", 0, offsetof(struct parse_regex, null_values),
     "captured texts that become null instead of being converted, whatever the type; default "
     "[\"-\"], the nil of access logs and syslog (bytes: -); [] for none"},
    {"field", SL_OPT_STRING, NULL, 0, offsetof(struct parse_regex, field),
     "string field to match (the captures are merged into the event); unset: the payload"},
    {"types", SL_OPT_MAP, NULL, 0, offsetof(struct parse_regex, types),
     "types of groups by name, e.g. {latency: int, ratio: float}; same as (?<name:type>...)"},
    {"on_error", SL_OPT_ENUM, "drop", 0, offsetof(struct parse_regex, errors.mode),
     SL__STAGE_ON_ERROR_DOC("when no pattern matches or a capture does not convert"),
     SL__STAGE_ON_ERROR_CHOICES},
    {0},
};

const struct sl_stage_type sl_stage_parse_regex = {
    .abi = SL_STAGE_ABI,
    .name = "parse_regex",
    .kind = SL_TRANSFORM,
    .doc = "parse text with PCRE2 patterns (JIT), named groups into typed fields",
    .flags = SL_STAGE_PARALLEL,
    .state_size = sizeof(struct parse_regex),
    .options = parse_regex_options,
    .init = parse_regex_init,
    .map = parse_regex_map,
    .close = parse_regex_close,
};
