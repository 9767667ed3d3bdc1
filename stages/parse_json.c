/* parse_json: indexes a JSON object (the payload, or a string field) into fields, in one
 * pass and without copying: each field's value is a span into the payload, numbers stay
 * text until someone asks for them, strings keep their escapes until someone compares
 * or rewrites them, nested objects and arrays stay raw JSON reachable by path
 * (`http.status`, `tags[0]`). Only member names holding escapes are decoded, into the
 * batch arena.
 *
 * An event that had no fields is indexed with sl_event_add_field and declared "in sync"
 * (event.h): a sink writing JSON writes its original bytes. Parsing a field, or a payload
 * into an event that has fields already, merges the members by name (sl_event_set) and
 * marks the event "parsed"; the text is validated first then, so that a malformed
 * document changes nothing.
 *
 * Predicate pushdown (issue 14): when a filter alone consumes the output and this stage
 * is its only input (sl_stage_downstream_condition), and its condition implies bytes
 * (`level == "error"`: the line holds `"error"`; sl_expr_prefilter_new), a payload parsed
 * into an event without fields that lacks them is pruned instead of indexed: emitted
 * without fields, marked, and dropped by the filter as its condition would have dropped
 * it. The events out are always the same as without the prefilter; a line that holds the
 * bytes, or an escape that could spell them, is parsed and filtered as always. What is
 * checked of a pruned line depends on on_error:
 * - `dead_letter` or `fail`: every malformed line must meet on_error, so a line is pruned
 *   only when parse_json would have indexed it without complaint: it is validated
 *   (sl_json_validate, its first byte '{', and short enough that it cannot hold more
 *   members than an event can: 5 * 65535 bytes), and every count is as without.
 * - `drop` (the default): a malformed line would be dropped either way, so a pruned line
 *   is checked for its framing only (first and last non-blank bytes '{' and '}'; short
 *   enough as above). A line that is not framed as an object (text, a truncated line, an
 *   array, an empty line) still counts as parse_json's error; one framed as an object but
 *   malformed inside reaches the filter, which drops it as it drops the lines it cannot
 *   keep. Validating the lines the filter drops was a third of W1's CPU (issue 14). */
#include <stddef.h>
#include <string.h>

#include <sluice/expr.h>
#include <sluice/json.h>

#include "internal.h"

struct parse_json {
    const char *field;              /* option: string field to parse; NULL: the payload */
    bool remove_field;              /* option: remove `field` once parsed */
    struct sl__stage_errors errors; /* option on_error, dead-letter port */
    struct sl_expr_prefilter *pf;   /* the next filter's bytes (start), or NULL */
};

/* The longest text that cannot hold more than SL_EVENT_MAX_FIELDS members: a member
 * takes at least 5 bytes (`"":0,`), so N members need at least 5N + 1. */
#define PRUNE_MAX_BYTES ((size_t)5 * SL_EVENT_MAX_FIELDS)

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* True when the next filter's condition cannot hold on `text`, and `text` is an object of
 * at most SL_EVENT_MAX_FIELDS members the full path would index without complaint (under
 * on_error: drop, one framed as an object: see the top of this file). */
static bool prunable(const struct parse_json *pj, const char *text, size_t len)
{
    if (len > PRUNE_MAX_BYTES || sl_expr_prefilter_may_match(pj->pf, text, len)) return false;
    size_t i = 0, j = len;
    while (i < len && blank(text[i])) i++;
    if (i == len || text[i] != '{') return false;
    if (pj->errors.mode != SL__STAGE_DROP) return sl_json_validate(text, len, NULL) == 0;
    while (j > i + 1 && blank(text[j - 1])) j--;
    return j > i + 1 && text[j - 1] == '}';
}

struct indexer {
    struct sl_event *ev; /* the event receiving the fields */
    bool merge;          /* set by name instead of appending */
};

static int add_member(void *arg, const char *name, size_t len, bool escaped,
                      const struct sl_value *v)
{
    struct indexer *ix = arg;
    if (escaped) { /* rare: a name with \" or \u00e9 in it is decoded once, here */
        struct sl_value raw = sl_value_string(name, len);
        raw.flags = SL_VALUE_ESCAPED;
        char *buf = sl_event_alloc(ix->ev, len);
        if (!buf) return SL_ENOMEM;
        int n = sl_value_unescape(&raw, buf, len);
        if (n < 0) return SL_EPARSE;
        name = buf;
        len = (size_t)n;
    }
    return sl__stage_put(ix->ev, name, len, v, ix->merge);
}

static int reject_text(struct sl_stage *s, struct parse_json *pj, struct sl_event *ev,
                       struct sl_emit *out, const char *text, size_t len, size_t off)
{
    size_t i = 0;
    while (i < len && blank(text[i])) i++;
    if (i == len) return sl__stage_reject(s, &pj->errors, ev, out, "empty input: no JSON object");
    if (text[i] != '{') return sl__stage_reject(s, &pj->errors, ev, out, "not a JSON object");
    return sl__stage_reject(s, &pj->errors, ev, out, "invalid JSON at byte %zu", off);
}

static int count_member(void *arg, const char *name, size_t len, bool escaped,
                        const struct sl_value *v)
{
    (void)name, (void)len, (void)escaped, (void)v;
    ++*(size_t *)arg;
    return 0;
}

static int parse_json_map(struct sl_stage *s, struct sl_event *ev, struct sl_emit *out)
{
    struct parse_json *pj = sl_stage_state(s);
    const char *text;
    size_t len, off = 0, members = 0, before = sl_event_field_count(ev);
    int rc = sl__stage_input(ev, pj->field, &text, &len);
    if (rc == SL_ENOMEM) return sl_stage_error(s, rc, "out of memory");
    if (rc) return sl__stage_reject(s, &pj->errors, ev, out, "%s", sl__stage_input_error(rc));
    if (pj->pf && !pj->field && before == 0 && prunable(pj, text, len)) {
        sl_event_prune(ev); /* the filter drops it: counts as they would be */
        return sl_emit(out, ev) ? sl_stage_error(s, SL_ENOMEM, "out of memory") : 0;
    }
    struct indexer ix = {ev, pj->field != NULL || before > 0};
    /* A merge cannot be undone: the text is checked, and its members counted (also those
     * whose names the event has), before anything changes. */
    if (ix.merge && sl_json_each_member(text, len, count_member, &members, &off))
        return reject_text(s, pj, ev, out, text, len, off);
    if (before + members > SL_EVENT_MAX_FIELDS)
        return sl__stage_too_many_fields(s, &pj->errors, ev, out);
    rc = sl_json_each_member(text, len, add_member, &ix, &off);
    if (rc == SL_ENOMEM) return sl_stage_error(s, rc, "out of memory");
    if (rc) {
        if (!ix.merge) sl_event_clear_fields(ev); /* a half-built index: it had no fields */
        if (rc == SL_ELIMIT) return sl__stage_too_many_fields(s, &pj->errors, ev, out);
        return reject_text(s, pj, ev, out, text, len, off);
    }
    if (ix.merge)
        sl_event_fields_changed_mark(ev); /* the fields hold it, but are not its text */
    else
        sl_event_fields_synced(ev); /* the payload is their JSON text, even `{}` */
    if (pj->remove_field && pj->field) sl_event_remove(ev, pj->field, strlen(pj->field));
    return sl_emit(out, ev) ? sl_stage_error(s, SL_ENOMEM, "out of memory") : 0;
}

static int parse_json_init(struct sl_stage *s, const struct sl_config *cfg, struct sl_error *err)
{
    (void)cfg;
    struct parse_json *pj = sl_stage_state(s);
    return sl__stage_errors_init(s, &pj->errors, err);
}

/* The filter after this stage, if it alone reads our output, lends us its bytes. */
static int parse_json_start(struct sl_stage *s, struct sl_error *err)
{
    (void)err;
    struct parse_json *pj = sl_stage_state(s);
    const struct sl_expr *cond = sl_stage_downstream_condition(s);
    if (cond && !pj->field) pj->pf = sl_expr_prefilter_new(cond); /* NULL: no pushdown */
    return 0;
}

static void parse_json_close(struct sl_stage *s)
{
    struct parse_json *pj = sl_stage_state(s);
    sl_expr_prefilter_free(pj->pf);
    pj->pf = NULL;
}

static const struct sl_option parse_json_options[] = {
    {"field", SL_OPT_STRING, NULL, 0, offsetof(struct parse_json, field),
     "string field holding the JSON object to parse (its members are merged into the event); "
     "unset: the payload"},
    {"remove_field", SL_OPT_BOOL, "false", 0, offsetof(struct parse_json, remove_field),
     "remove `field` from the event once it has been parsed"},
    {"on_error", SL_OPT_ENUM, "drop", 0, offsetof(struct parse_json, errors.mode),
     SL__STAGE_ON_ERROR_DOC("when the text is not a JSON object, or has more members than an "
                            "event can hold (65535); under drop, a line the next filter cannot "
                            "keep is only checked to be framed as an object (docs/stages.md)"),
     SL__STAGE_ON_ERROR_CHOICES},
    {0},
};

const struct sl_stage_type sl_stage_parse_json = {
    .abi = SL_STAGE_ABI,
    .name = "parse_json",
    .kind = SL_TRANSFORM,
    .doc = "parse a JSON object into fields, zero-copy (nested values reachable by path)",
    .flags = SL_STAGE_PARALLEL,
    .state_size = sizeof(struct parse_json),
    .options = parse_json_options,
    .init = parse_json_init,
    .start = parse_json_start,
    .close = parse_json_close,
    .map = parse_json_map,
};
