/* The key=value reader behind parse_logfmt and parse_kv: one pass over the text, keys
 * and unquoted values as spans into it, quoted values ("...") with backslash escapes
 * decoded into the batch arena only when they hold one. See internal.h. */
#include <limits.h>
#include <string.h>

#include "internal.h"

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool at(const char *s, size_t len, size_t i, const char *sep, size_t sep_len)
{
    return sep_len && i + sep_len <= len && memcmp(s + i, sep, sep_len) == 0;
}

/* Whether a field separator starts at i ("whitespace" separators match any blank). */
static bool at_field_sep(const struct sl__stage_kv *o, const char *s, size_t len, size_t i)
{
    if (o->field_blank) return i < len && blank(s[i]);
    return at(s, len, i, o->field_sep, o->field_sep_len);
}

/* Decodes the escapes of a quoted value (\" \\ \/ \n \r \t; any other pair is kept as
 * it is) into `out`, which has room for `len` bytes. Returns the decoded length. */
static size_t unquote(const char *s, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '\\' || i + 1 == len) {
            out[o++] = s[i];
            continue;
        }
        char c = s[++i];
        switch (c) {
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case '"':
        case '\\':
        case '/': out[o++] = c; break;
        default: out[o++] = '\\', out[o++] = c;
        }
    }
    return o;
}

/* Reads a quoted value starting at s[*i] == '"'. Returns false when it is not closed. */
static bool quoted(const char *s, size_t len, size_t *i, size_t *start, size_t *end, bool *esc)
{
    size_t j = *i + 1;
    *esc = false;
    for (; j < len && s[j] != '"'; j++) {
        if (s[j] == '\\' && j + 1 < len) {
            *esc = true;
            j++;
        }
    }
    if (j >= len) return false;
    *start = *i + 1;
    *end = j;
    *i = j + 1;
    return true;
}

/* Adds one pair (in a real pass) after decoding a quoted value with escapes. */
static int put_pair(struct sl_event *ev, const char *s, size_t ks, size_t ke, struct sl_value v,
                    bool esc, bool merge)
{
    if (esc) {
        char *buf = sl_event_alloc(ev, v.len);
        if (!buf) return SL_ENOMEM;
        v = sl_value_string(buf, unquote(v.s, v.len, buf));
    }
    return sl__stage_put(ev, s + ks, ke - ks, &v, merge);
}

/* Reads the value after the key/value separator at s[*i]: quoted, or up to the next
 * field separator with blanks trimmed. */
static int read_value(const struct sl__stage_kv *o, const char *s, size_t len, size_t *i,
                      struct sl_value *v, bool *esc, struct sl__stage_kv_error *e)
{
    size_t vs, ve;
    while (*i < len && (s[*i] == ' ' || s[*i] == '\t') && !at_field_sep(o, s, len, *i)) (*i)++;
    *esc = false;
    if (*i < len && s[*i] == '"') {
        size_t q = *i;
        if (!quoted(s, len, i, &vs, &ve, esc)) {
            e->at = q, e->what = "unterminated quoted value";
            return SL_EPARSE;
        }
        if (*i < len && !blank(s[*i]) && !at_field_sep(o, s, len, *i)) {
            e->at = *i, e->what = "expected a separator after a quoted value";
            return SL_EPARSE;
        }
        *v = sl_value_string(s + vs, ve - vs);
        return 0;
    }
    vs = *i;
    while (*i < len && !at_field_sep(o, s, len, *i)) (*i)++;
    ve = *i;
    while (ve > vs && blank(s[ve - 1])) ve--;
    *v = o->infer ? sl__stage_infer(s + vs, ve - vs) : sl_value_string(s + vs, ve - vs);
    return 0;
}

int sl__stage_kv_parse(const struct sl__stage_kv *o, struct sl_event *ev, const char *s, size_t len,
                       bool merge, bool dry_run, struct sl__stage_kv_error *e)
{
    size_t i = 0;
    int pairs = 0;
    while (i < len) {
        for (;;) { /* separators and blanks before the key */
            if (at_field_sep(o, s, len, i))
                i += o->field_blank ? 1 : o->field_sep_len;
            else if (i < len && blank(s[i]))
                i++;
            else
                break;
        }
        if (i >= len) break;
        size_t ks = i;
        while (i < len && !at(s, len, i, o->kv_sep, o->kv_sep_len) && !at_field_sep(o, s, len, i))
            i++;
        size_t ke = i;
        while (ke > ks && blank(s[ke - 1])) ke--;
        if (ke == ks) { /* "=value": a value without a key */
            e->at = ks, e->what = "empty key";
            return SL_EPARSE;
        }
        struct sl_value v = sl_value_bool(true); /* a bare key is a flag */
        bool esc = false;
        if (at(s, len, i, o->kv_sep, o->kv_sep_len)) {
            i += o->kv_sep_len;
            int rc = read_value(o, s, len, &i, &v, &esc, e);
            if (rc) return rc;
        } else if (!o->bare_keys) {
            e->at = ks, e->what = "key without a value";
            return SL_EPARSE;
        }
        if (!dry_run) {
            int rc = put_pair(ev, s, ks, ke, v, esc, merge);
            if (rc) return rc;
        }
        if (pairs < INT_MAX) pairs++;
    }
    return pairs;
}

int sl__stage_kv_map(struct sl_stage *stage, const struct sl__stage_kv *o, const char *field,
                     const struct sl__stage_errors *errors, struct sl_event *ev,
                     struct sl_emit *out)
{
    const char *text;
    size_t len;
    int rc = sl__stage_input(ev, field, &text, &len);
    if (rc == SL_ENOMEM) return sl_stage_error(stage, rc, "out of memory");
    if (rc) return sl__stage_reject(stage, errors, ev, out, "%s", sl__stage_input_error(rc));
    size_t before = sl_event_field_count(ev);
    bool merge = field != NULL || before > 0;
    struct sl__stage_kv_error e = {0, NULL};
    /* Merging into existing fields cannot be undone: check the whole text, and count its
     * pairs (also those whose keys the event has), first. */
    rc = merge ? sl__stage_kv_parse(o, ev, text, len, merge, true, &e) : 0;
    if (rc > 0 && before + (size_t)rc > SL_EVENT_MAX_FIELDS) rc = SL_ELIMIT;
    if (rc >= 0) rc = sl__stage_kv_parse(o, ev, text, len, merge, false, &e);
    if (rc == SL_ENOMEM) return sl_stage_error(stage, rc, "out of memory");
    if (rc == 0 && !merge) {
        e.at = 0, e.what = "no key=value pairs";
        rc = SL_EPARSE;
    }
    if (rc < 0) {
        if (!merge) sl_event_clear_fields(ev); /* it had none: drop the pairs added */
        if (rc == SL_ELIMIT) return sl__stage_too_many_fields(stage, errors, ev, out);
        return sl__stage_reject(stage, errors, ev, out, "%s at byte %zu", e.what, e.at);
    }
    sl_event_fields_changed_mark(ev);
    return sl_emit(out, ev) ? sl_stage_error(stage, SL_ENOMEM, "out of memory") : 0;
}
