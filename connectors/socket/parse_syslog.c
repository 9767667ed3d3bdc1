/* Transform `parse_syslog`: an RFC 5424 or RFC 3164 message (a line of a file, or a field)
 * into fields, with the hand-written parser the `syslog` source uses (syslog_parse.c):
 * pri, facility, severity, version, timestamp, host, app, procid, msgid, structured_data,
 * message. Zero-copy: the fields point into the text, except structured data made into a
 * JSON object. It lives beside that parser because a stage of stages/ may not use a
 * connector's code, nor a connector a stage's (tests/check-layers). */
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* The values of on_error. */
enum { ON_ERROR_DROP = 0, ON_ERROR_DEAD_LETTER = 1, ON_ERROR_FAIL = 2 };

struct parse_syslog {
    const char *field; /* option: string field to parse; NULL: the payload */
    int format;        /* option: enum sl__socket_syslog_format */
    int sd_mode;       /* option structured_data: enum sl__socket_sd_mode */
    int on_error;      /* option: ON_ERROR_* */
    int dead_port;     /* output "dead_letter" (on_error: dead_letter), else -1 */
};

/* The event failed: by on_error, dropped (counted), sent to "dead_letter" with the reason
 * in field "error", or the pipeline fails. Returns what map() returns. */
static int reject(struct sl_stage *stage, struct sl_event *ev, struct sl_emit *out, int code,
                  const char *why)
{
    struct parse_syslog *ps = sl_stage_state(stage);
    if (code == SL_ENOMEM || ps->on_error == ON_ERROR_FAIL)
        return sl_stage_error(stage, code, "%s", code == SL_ENOMEM ? "out of memory" : why);
    sl_stage_count_errors(stage, 1);
    if (ps->on_error == ON_ERROR_DROP) {
        sl_stage_count_dropped(stage, 1);
        return 0;
    }
    if (sl_event_set_error(ev, why, strlen(why)) || sl_emit_to(out, ps->dead_port, ev))
        return sl_stage_error(stage, SL_ENOMEM, "out of memory");
    return 0;
}

/* The text to parse: the payload, or string field `field` (decoded into the arena when it
 * holds JSON escapes). Returns 0 or a reason in `why`. */
static int input(const struct parse_syslog *ps, struct sl_event *ev, const char **s, size_t *len,
                 char *why, size_t cap)
{
    if (!ps->field) {
        *s = sl_event_payload(ev, len);
        if (!*s) *s = "";
        return 0;
    }
    struct sl_value v;
    if (sl_event_get(ev, ps->field, strlen(ps->field), &v))
        return snprintf(why, cap, "no field %s", ps->field), SL_ENOTFOUND;
    if (v.type != SL_STRING)
        return snprintf(why, cap, "field %s is not a string", ps->field), SL_ETYPE;
    *s = v.s;
    *len = v.len;
    if (!(v.flags & SL_VALUE_ESCAPED)) return 0;
    char *buf = sl_event_alloc(ev, v.len ? v.len : 1);
    int n = buf ? sl_value_unescape(&v, buf, v.len) : SL_ENOMEM;
    if (n < 0) return snprintf(why, cap, "field %s: a bad escape", ps->field), n;
    *s = buf;
    *len = (size_t)n;
    return 0;
}

static int parse_syslog_map(struct sl_stage *stage, struct sl_event *ev, struct sl_emit *out)
{
    struct parse_syslog *ps = sl_stage_state(stage);
    char why[160];
    const char *s, *what;
    size_t len, at;
    int rc = input(ps, ev, &s, &len, why, sizeof why);
    if (rc) return reject(stage, ev, out, rc, why);
    struct sl__socket_syslog m;
    if (sl__socket_syslog_parse(s, len, ps->format, &m, &what, &at)) {
        snprintf(why, sizeof why, "not syslog: %s at byte %zu", what, at);
        return reject(stage, ev, out, SL_EPARSE, why);
    }
    bool merge = ps->field || sl_event_field_count(ev) > 0;
    rc = sl__socket_syslog_fields(ev, &m, ps->sd_mode, merge);
    if (rc == SL_ELIMIT) return reject(stage, ev, out, rc, "more than 65535 fields");
    if (rc) return reject(stage, ev, out, rc, "out of memory");
    return sl_emit(out, ev);
}

static int parse_syslog_init(struct sl_stage *stage, const struct sl_config *cfg,
                             struct sl_error *err)
{
    (void)cfg;
    struct parse_syslog *ps = sl_stage_state(stage);
    ps->dead_port = -1;
    if (ps->on_error == ON_ERROR_DEAD_LETTER) {
        ps->dead_port = sl_stage_add_output(stage, "dead_letter");
        if (ps->dead_port < 0)
            return sl_error_set(err, ps->dead_port, "cannot declare output 'dead_letter'");
    }
    return sl_stage_declare_fields(stage, SL_FIELDS_ADD, sl__socket_syslog_names,
                                   sl__socket_syslog_nnames);
}

static const struct sl_option parse_syslog_options[] = {
    {"field", SL_OPT_STRING, NULL, 0, offsetof(struct parse_syslog, field),
     "string field to parse (the parts are merged into the event); unset: the payload"},
    {"format", SL_OPT_ENUM, "auto", 0, offsetof(struct parse_syslog, format),
     "auto (RFC 5424 when a version follows <PRI>, else RFC 3164), rfc5424 or rfc3164",
     SL__SOCKET_SYSLOG_FORMATS},
    {"structured_data", SL_OPT_ENUM, "object", 0, offsetof(struct parse_syslog, sd_mode),
     "RFC 5424 structured data as a JSON object {\"id\":{\"param\":\"value\"}} or raw text",
     SL__SOCKET_SD_CHOICES},
    {"on_error", SL_OPT_ENUM, "drop", 0, offsetof(struct parse_syslog, on_error),
     "when the text is not syslog: drop the event (counted), dead_letter (send it unchanged "
     "to output 'dead_letter' with the reason in field 'error') or fail (stop the pipeline)",
     "drop|dead_letter|fail"},
    {0},
};

const struct sl_stage_type sl_stage_parse_syslog = {
    .abi = SL_STAGE_ABI,
    .name = "parse_syslog",
    .kind = SL_TRANSFORM,
    .doc = "parse RFC 5424 / RFC 3164 syslog messages into fields (hand-written, no regex)",
    .flags = SL_STAGE_PARALLEL,
    .state_size = sizeof(struct parse_syslog),
    .options = parse_syslog_options,
    .init = parse_syslog_init,
    .map = parse_syslog_map,
};
