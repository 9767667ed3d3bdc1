/* parse_kv: key/value text with configurable separators, e.g. `a=1&b=two` or
 * `user: bob; id: 7`, into fields. Blanks around keys and unquoted values are trimmed;
 * values may be double-quoted with backslash escapes. Zero-copy except for quoted values
 * holding escapes. */
#include <stddef.h>
#include <string.h>

#include "internal.h"

struct parse_kv {
    const char *field_sep;          /* option field_separator */
    const char *kv_sep;             /* option kv_separator */
    const char *field;              /* option: field to parse; NULL: the payload */
    bool infer;                     /* option infer_types */
    bool bare_keys;                 /* option bare_keys */
    struct sl__stage_errors errors; /* option on_error, dead-letter port */
    struct sl__stage_kv kv;         /* the split */
};

static int parse_kv_map(struct sl_stage *s, struct sl_event *ev, struct sl_emit *out)
{
    struct parse_kv *kv = sl_stage_state(s);
    return sl__stage_kv_map(s, &kv->kv, kv->field, &kv->errors, ev, out);
}

static bool all_blank(const char *s)
{
    return *s && strspn(s, " \t") == strlen(s);
}

static int parse_kv_init(struct sl_stage *s, const struct sl_config *cfg, struct sl_error *err)
{
    struct parse_kv *kv = sl_stage_state(s);
    if (!*kv->kv_sep || all_blank(kv->kv_sep))
        return sl_config_error(sl_config_get(cfg, "kv_separator"), err, SL_ECONFIG,
                               "kv_separator must hold a character other than a blank");
    if (!*kv->field_sep || strcmp(kv->field_sep, kv->kv_sep) == 0)
        return sl_config_error(sl_config_get(cfg, "field_separator"), err, SL_ECONFIG,
                               "field_separator must be non-empty and differ from kv_separator");
    kv->kv = (struct sl__stage_kv){.field_sep = kv->field_sep,
                                   .field_sep_len = strlen(kv->field_sep),
                                   .field_blank = all_blank(kv->field_sep),
                                   .kv_sep = kv->kv_sep,
                                   .kv_sep_len = strlen(kv->kv_sep),
                                   .infer = kv->infer,
                                   .bare_keys = kv->bare_keys};
    return sl__stage_errors_init(s, &kv->errors, err);
}

static const struct sl_option parse_kv_options[] = {
    {"field_separator", SL_OPT_STRING, " ", 0, offsetof(struct parse_kv, field_sep),
     "text between pairs; blanks only (the default) means any run of spaces and tabs"},
    {"kv_separator", SL_OPT_STRING, "=", 0, offsetof(struct parse_kv, kv_sep),
     "text between a key and its value (the first one counts: a=b=c gives a: \"b=c\")"},
    {"field", SL_OPT_STRING, NULL, 0, offsetof(struct parse_kv, field),
     "string field to parse (the pairs are merged into the event); unset: the payload"},
    {"infer_types", SL_OPT_BOOL, "true", 0, offsetof(struct parse_kv, infer),
     "unquoted numbers become numbers and true/false booleans; quoted values stay strings"},
    {"bare_keys", SL_OPT_BOOL, "false", 0, offsetof(struct parse_kv, bare_keys),
     "a key without a separator is the boolean true (false: it is an error)"},
    {"on_error", SL_OPT_ENUM, "drop", 0, offsetof(struct parse_kv, errors.mode),
     SL__STAGE_ON_ERROR_DOC("on an unterminated quote, an empty key or no pairs"),
     SL__STAGE_ON_ERROR_CHOICES},
    {0},
};

const struct sl_stage_type sl_stage_parse_kv = {
    .abi = SL_STAGE_ABI,
    .name = "parse_kv",
    .kind = SL_TRANSFORM,
    .doc = "parse key/value text with configurable separators into fields",
    .flags = SL_STAGE_PARALLEL,
    .state_size = sizeof(struct parse_kv),
    .options = parse_kv_options,
    .init = parse_kv_init,
    .map = parse_kv_map,
};
