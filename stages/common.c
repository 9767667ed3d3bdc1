/* Helpers shared by the stages: on_error handling, parser input, value typing, key
 * hashing. See internal.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sluice/expr.h>

#include "internal.h"

/* ---- on_error ------------------------------------------------------------------------------ */

int sl__stage_errors_init(struct sl_stage *stage, struct sl__stage_errors *e, struct sl_error *err)
{
    e->port = -1;
    if (e->mode != SL__STAGE_DEAD_LETTER) return 0;
    int port = sl_stage_add_output(stage, "dead_letter");
    if (port < 0) return sl_error_set(err, port, "cannot declare output 'dead_letter'");
    e->port = port;
    return 0;
}

/* Formats the reason into `msg` (cap bytes); returns its length. */
static size_t format_reason(char *msg, size_t cap, const char *fmt, va_list ap)
{
    int n = vsnprintf(msg, cap, fmt, ap);
    return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
}

static int send_dead(struct sl_stage *stage, const struct sl__stage_errors *e, struct sl_event *ev,
                     struct sl_emit *out, const char *msg, size_t len)
{
    if (e->mode == SL__STAGE_DROP || e->port < 0) {
        sl_stage_count_dropped(stage, 1);
        return 0;
    }
    if (sl_event_set_error(ev, msg, len) || sl_emit_to(out, e->port, ev))
        return sl_stage_error(stage, SL_ENOMEM, "out of memory");
    return 0;
}

/* The on_error of a failure whose code is `code`, the reason formatted from `fmt`/`ap`. */
static int reject(struct sl_stage *stage, const struct sl__stage_errors *e, struct sl_event *ev,
                  struct sl_emit *out, int code, const char *fmt, va_list ap)
{
    char msg[256];
    size_t len = format_reason(msg, sizeof msg, fmt, ap);
    if (e->mode == SL__STAGE_FAIL) return sl_stage_error(stage, code, "%s", msg);
    sl_stage_count_errors(stage, 1);
    return send_dead(stage, e, ev, out, msg, len);
}

int sl__stage_reject(struct sl_stage *stage, const struct sl__stage_errors *e, struct sl_event *ev,
                     struct sl_emit *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = reject(stage, e, ev, out, SL_EPARSE, fmt, ap);
    va_end(ap);
    return rc;
}

int sl__stage_fault(struct sl_stage *stage, const struct sl__stage_errors *e, struct sl_event *ev,
                    struct sl_emit *out, int code, const char *fmt, ...)
{
    /* Only a failed allocation is the process's; everything else belongs to this event. */
    if (code == SL_ENOMEM) return sl_stage_error(stage, SL_ENOMEM, "out of memory");
    va_list ap;
    va_start(ap, fmt);
    int rc = reject(stage, e, ev, out, code, fmt, ap);
    va_end(ap);
    return rc;
}

int sl__stage_too_many_fields(struct sl_stage *stage, const struct sl__stage_errors *e,
                              struct sl_event *ev, struct sl_emit *out)
{
    return sl__stage_fault(stage, e, ev, out, SL_ELIMIT, "more than %d fields",
                           SL_EVENT_MAX_FIELDS);
}

int sl__stage_divert(struct sl_stage *stage, const struct sl__stage_errors *e, struct sl_event *ev,
                     struct sl_emit *out, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    size_t len = format_reason(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return send_dead(stage, e, ev, out, msg, len);
}

int64_t sl__stage_clock_ms(struct sl_stage *stage, const struct sl_event *ev, int clock)
{
    if (clock != SL__STAGE_CLOCK_EVENT) return sl_stage_now_ms(stage);
    int64_t t = sl_event_time(ev);
    if (t) return t / 1000000 - (t % 1000000 < 0); /* floor, also before 1970 */
    struct timespec ts; /* no event time: the wall clock, on the same scale */
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- expressions in configs ------------------------------------------------------------------ */

/* ---- parser input ------------------------------------------------------------------------- */

int sl__stage_input(struct sl_event *ev, const char *field, const char **text, size_t *len)
{
    if (!field) {
        *text = sl_event_payload(ev, len);
        if (!*text) *text = "";
        return 0;
    }
    struct sl_value v;
    if (sl_event_get(ev, field, strlen(field), &v)) return SL_ENOTFOUND;
    if (v.type != SL_STRING && v.type != SL_JSON) return SL_ETYPE;
    if (!(v.flags & SL_VALUE_ESCAPED)) { /* plain strings and raw JSON are read in place */
        *text = v.s;
        *len = v.len;
        return 0;
    }
    char *buf = sl_event_alloc(ev, v.len);
    if (!buf) return SL_ENOMEM;
    int n = sl_value_unescape(&v, buf, v.len);
    if (n < 0) return SL_EPARSE;
    *text = buf;
    *len = (size_t)n;
    return 0;
}

const char *sl__stage_input_error(int rc)
{
    switch (rc) {
    case SL_ENOTFOUND: return "the field to parse is missing";
    case SL_ETYPE: return "the field to parse is not a string";
    case SL_EPARSE: return "the field to parse holds a bad escape";
    default: return "out of memory";
    }
}

int sl__stage_put(struct sl_event *ev, const char *name, size_t len, const struct sl_value *v,
                  bool merge)
{
    return merge ? sl_event_set(ev, name, len, v) : sl_event_add_field(ev, name, len, v);
}

/* ---- typing unquoted words --------------------------------------------------------------------
 */

static size_t digits(const char *s, size_t i, size_t len)
{
    while (i < len && (unsigned)(s[i] - '0') < 10) i++;
    return i;
}

int sl__stage_number_type(const char *s, size_t len)
{
    size_t i = 0;
    bool is_float = false;
    if (i < len && s[i] == '-') i++;
    if (i == len) return SL_STRING;
    if (s[i] == '0') {
        i++;
    } else {
        size_t j = digits(s, i, len);
        if (j == i) return SL_STRING;
        i = j;
    }
    if (i < len && s[i] == '.') {
        size_t j = digits(s, i + 1, len);
        if (j == i + 1) return SL_STRING;
        i = j;
        is_float = true;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-')) i++;
        size_t j = digits(s, i, len);
        if (j == i) return SL_STRING;
        i = j;
        is_float = true;
    }
    if (i != len) return SL_STRING;
    return is_float ? SL_FLOAT : SL_INT;
}

struct sl_value sl__stage_infer(const char *s, size_t len)
{
    if (len && ((unsigned)(s[0] - '0') < 10 || s[0] == '-')) {
        int t = sl__stage_number_type(s, len);
        if (t != SL_STRING)
            return (struct sl_value){
                .type = (uint8_t)t, .flags = SL_VALUE_TEXT, .s = s, .len = (uint32_t)len};
    }
    if (len == 4 && memcmp(s, "true", 4) == 0) return sl_value_bool(true);
    if (len == 5 && memcmp(s, "false", 5) == 0) return sl_value_bool(false);
    return sl_value_string(s, len);
}

/* ---- hashing -------------------------------------------------------------------------------- */

static inline uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

uint64_t sl__stage_hash(const void *p, size_t len, uint64_t seed)
{
    const unsigned char *s = p;
    uint64_t h = seed ^ (len * 0x9E3779B97F4A7C15ull);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ mix(w)) * 0x9E3779B97F4A7C15ull;
        h = (h << 29) | (h >> 35);
        s += 8;
        len -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, len); /* the tail, zero-padded; the length is already in h */
    h ^= mix(w ^ 0x2545F4914F6CDD1Dull);
    return mix(h);
}

void sl__stage_value_text(const struct sl_value *v, char *buf, size_t cap, const char **s,
                          size_t *len)
{
    int n;
    switch (v->type) {
    case SL_NULL: *s = "", *len = 0; return;
    case SL_BOOL: *s = v->b ? "true" : "false", *len = v->b ? 4 : 5; return;
    case SL_INT:
    case SL_FLOAT:
        if (v->flags & SL_VALUE_TEXT) break;
        n = v->type == SL_INT ? snprintf(buf, cap, "%lld", (long long)v->i)
                              : snprintf(buf, cap, "%.17g", v->f);
        *s = buf;
        *len = n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
        return;
    case SL_STRING:
        if (!(v->flags & SL_VALUE_ESCAPED) || v->len > cap) break;
        n = sl_value_unescape(v, buf, cap);
        if (n < 0) break;
        *s = buf;
        *len = (size_t)n;
        return;
    default: break;
    }
    *s = v->s ? v->s : "";
    *len = v->len;
}

struct sl__stage_key sl__stage_key_of(const struct sl_event *ev, const struct sl_list *fields)
{
    struct sl__stage_key k = {0x5bd1e9955bd1e995ull, 0x27d4eb2f165667c5ull};
    if (!fields || fields->n == 0) {
        size_t len;
        const char *p = sl_event_payload(ev, &len);
        k.h1 = sl__stage_hash(p ? p : "", p ? len : 0, k.h1);
        k.h2 = sl__stage_hash(p ? p : "", p ? len : 0, k.h2);
        return k;
    }
    for (size_t i = 0; i < fields->n; i++) {
        const char *path = fields->items[i];
        struct sl_value v;
        char buf[256];
        const char *s = "";
        size_t len = 0;
        uint8_t tag = 0xff; /* absent */
        if (sl_event_get(ev, path, strlen(path), &v) == 0) {
            /* ints and floats share a tag: 2 and 2.0 differ by text, as written */
            tag = v.type == SL_FLOAT ? (uint8_t)SL_INT : v.type;
            sl__stage_value_text(&v, buf, sizeof buf, &s, &len);
        }
        k.h1 = sl__stage_hash(s, len, k.h1 ^ tag);
        k.h2 = sl__stage_hash(s, len, k.h2 + tag);
    }
    return k;
}
