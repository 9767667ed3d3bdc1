/* A parsed syslog message (syslog_parse.c) into an event's fields; its structured data as
 * a JSON object (SD-IDs holding their parameters) or as written. */
#include <string.h>

#include <sluice/json.h>

#include "internal.h"

const char *const sl__socket_syslog_names[] = {
    "pri", "facility", "severity", "version",         "timestamp", "host",
    "app", "procid",   "msgid",    "structured_data", "message",
};
const size_t sl__socket_syslog_nnames =
    sizeof sl__socket_syslog_names / sizeof sl__socket_syslog_names[0];

static int put(struct sl_event *ev, const char *name, const struct sl_value *v, bool merge)
{
    size_t len = strlen(name);
    return merge ? sl_event_set(ev, name, len, v) : sl_event_add_field(ev, name, len, v);
}

/* A span as a string, or null for RFC 5424's nil. */
static int put_span(struct sl_event *ev, const char *name, struct sl__socket_span sp, bool merge)
{
    struct sl_value v = sp.s ? sl_value_string(sp.s, sp.len) : sl_value_null();
    return put(ev, name, &v, merge);
}

/* Writes `len` bytes at `p` as a JSON string (quotes included) at `o`, decoding the SD
 * escapes \" \\ \] first when `sd_escapes`. Returns the bytes written. `o` has room for
 * SL_JSON_ESCAPE_MAX(len) + 2. */
static size_t json_string(char *o, const char *p, size_t len, bool sd_escapes)
{
    size_t w = 0;
    o[w++] = '"';
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && !(sd_escapes && p[j] == '\\' && j + 1 < len &&
                            (p[j + 1] == '"' || p[j + 1] == '\\' || p[j + 1] == ']')))
            j++;
        w += sl_json_escape(p + i, j - i, o + w);
        if (j < len) { /* an escape: the character after the backslash */
            w += sl_json_escape(p + j + 1, 1, o + w);
            j += 2;
        }
        i = j;
    }
    o[w++] = '"';
    return w;
}

/* The end of a quoted SD value starting after its opening quote at `i`, or `n`. */
static size_t value_end(const char *p, size_t i, size_t n)
{
    while (i < n && p[i] != '"') i += p[i] == '\\' ? 2 : 1;
    return i < n ? i : n;
}

/* One element "[ID NAME="VALUE" ...]" at p[*i] into `o`. Returns the bytes written, or 0
 * when the element is not in that shape (then the caller keeps the text as written). */
static size_t sd_element(const char *p, size_t n, size_t *i, char *o)
{
    size_t k = *i + 1, id = k, w = 0;
    while (k < n && p[k] != ' ' && p[k] != ']') k++;
    if (k >= n || k == id) return 0;
    w += json_string(o + w, p + id, k - id, false);
    o[w++] = ':';
    o[w++] = '{';
    bool first = true;
    while (k < n && p[k] == ' ') {
        size_t name = ++k;
        while (k < n && p[k] != '=' && p[k] != ' ' && p[k] != ']') k++;
        if (k + 1 >= n || p[k] != '=' || p[k + 1] != '"' || k == name) return 0;
        size_t v = k + 2, e = value_end(p, v, n);
        if (e >= n) return 0;
        if (!first) o[w++] = ',';
        first = false;
        w += json_string(o + w, p + name, k - name, false);
        o[w++] = ':';
        w += json_string(o + w, p + v, e - v, true);
        k = e + 1;
    }
    if (k >= n || p[k] != ']') return 0;
    o[w++] = '}';
    *i = k + 1;
    return w;
}

/* The structured data as a JSON object in the arena, or as written when it is not in
 * the element shape. */
static int put_sd(struct sl_event *ev, struct sl__socket_span sd, int mode, bool merge)
{
    if (!sd.s || mode == SL__SOCKET_SD_RAW) return put_span(ev, "structured_data", sd, merge);
    char *o = sl_event_alloc(ev, SL_JSON_ESCAPE_MAX(sd.len) + 2);
    if (!o) return SL_ENOMEM;
    size_t w = 0, i = 0;
    o[w++] = '{';
    while (i < sd.len && sd.s[i] == '[') {
        if (w > 1) o[w++] = ',';
        size_t k = sd_element(sd.s, sd.len, &i, o + w);
        if (!k) return put_span(ev, "structured_data", sd, merge);
        w += k;
    }
    o[w++] = '}';
    struct sl_value v = sl_value_json(o, w);
    return put(ev, "structured_data", &v, merge);
}

int sl__socket_syslog_fields(struct sl_event *ev, const struct sl__socket_syslog *m, int sd_mode,
                             bool merge)
{
    int rc = 0;
    if (m->pri >= 0) {
        struct sl_value pri = sl_value_int(m->pri), fac = sl_value_int(m->pri / 8),
                        sev = sl_value_int(m->pri % 8);
        if ((rc = put(ev, "pri", &pri, merge)) || (rc = put(ev, "facility", &fac, merge)) ||
            (rc = put(ev, "severity", &sev, merge)))
            return rc;
    }
    bool v5424 = m->version > 0;
    if (v5424) {
        struct sl_value ver = sl_value_int(m->version);
        if ((rc = put(ev, "version", &ver, merge))) return rc;
    }
    /* RFC 5424 has every part (nil: null); RFC 3164 only those it found. */
    if ((v5424 || m->timestamp.s) && (rc = put_span(ev, "timestamp", m->timestamp, merge)))
        return rc;
    if ((v5424 || m->host.s) && (rc = put_span(ev, "host", m->host, merge))) return rc;
    if ((v5424 || m->app.s) && (rc = put_span(ev, "app", m->app, merge))) return rc;
    if ((v5424 || m->procid.s) && (rc = put_span(ev, "procid", m->procid, merge))) return rc;
    if (v5424 &&
        ((rc = put_span(ev, "msgid", m->msgid, merge)) || (rc = put_sd(ev, m->sd, sd_mode, merge))))
        return rc;
    if (v5424 && !m->msg.s) {
        struct sl_value nil = sl_value_null();
        rc = put(ev, "message", &nil, merge);
    } else {
        rc = put_span(ev, "message", m->msg.s ? m->msg : (struct sl__socket_span){"", 0}, merge);
    }
    if (!rc) sl_event_fields_changed_mark(ev);
    return rc;
}
