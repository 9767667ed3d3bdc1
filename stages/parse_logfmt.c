/* parse_logfmt: `level=info msg="request done" status=200 cached` into fields. Pairs are
 * separated by blanks; values may be double-quoted with backslash escapes; a key alone is
 * the boolean true. Unquoted numbers and true/false are typed (lazily: a number stays
 * text until someone asks for it) unless `infer_types: false`. Zero-copy except for quoted
 * values holding escapes. */
#include <stddef.h>

#include "internal.h"

struct parse_logfmt {
    const char *field;              /* option: field to parse; NULL: the payload */
    bool infer;                     /* option infer_types */
    struct sl__stage_errors errors; /* option on_error, dead-letter port */
    struct sl__stage_kv kv;         /* the logfmt split */
};

static int parse_logfmt_map(struct sl_stage *s, struct sl_event *ev, struct sl_emit *out)
{
    struct parse_logfmt *lf = sl_stage_state(s);
    return sl__stage_kv_map(s, &lf->kv, lf->field, &lf->errors, ev, out);
}

static int parse_logfmt_init(struct sl_stage *s, const struct sl_config *cfg, struct sl_error *err)
{
    (void)cfg;
    struct parse_logfmt *lf = sl_stage_state(s);
    lf->kv = (struct sl__stage_kv){
        .field_blank = true, .kv_sep = "=", .kv_sep_len = 1, .infer = lf->infer, .bare_keys = true};
    return sl__stage_errors_init(s, &lf->errors, err);
}

static const struct sl_option parse_logfmt_options[] = {
    {"field", SL_OPT_STRING, NULL, 0, offsetof(struct parse_logfmt, field),
     "string field to parse (the pairs are merged into the event); unset: the payload"},
    {"infer_types", SL_OPT_BOOL, "true", 0, offsetof(struct parse_logfmt, infer),
     "unquoted numbers become numbers and true/false booleans; quoted values stay strings"},
    {"on_error", SL_OPT_ENUM, "drop", 0, offsetof(struct parse_logfmt, errors.mode),
     SL__STAGE_ON_ERROR_DOC("on an unterminated quote, an empty key or no pairs"),
     SL__STAGE_ON_ERROR_CHOICES},
    {0},
};

const struct sl_stage_type sl_stage_parse_logfmt = {
    .abi = SL_STAGE_ABI,
    .name = "parse_logfmt",
    .kind = SL_TRANSFORM,
    .doc = "parse logfmt (key=value \"quoted value\" flag) into fields",
    .flags = SL_STAGE_PARALLEL,
    .state_size = sizeof(struct parse_logfmt),
    .options = parse_logfmt_options,
    .init = parse_logfmt_init,
    .map = parse_logfmt_map,
};
