/* An event as JSON text, by its state (event.h, "fields and the payload"): the original
 * payload when it is the JSON text of the fields, the fields serialised when they were
 * parsed and changed, and a raw record as its payload under "message" beside its fields. */
#include <string.h>

#include <sluice/json.h>

#include "event/internal.h"

/* Copies `n` bytes at `*pos` when they fit; the position advances either way. */
static void put(char *out, size_t cap, size_t *pos, const char *s, size_t n)
{
    if (out && *pos + n <= cap) memcpy(out + *pos, s, n);
    *pos += n;
}

/* Writes the fields as members, each preceded by a ',' unless it is the first member
 * (`*first`). */
static void write_members(const struct sl_event *ev, char *out, size_t cap, size_t *pos,
                          bool *first)
{
    for (uint32_t i = 0; i < ev->nfields; i++) {
        const struct sl__field *f = &ev->fields[i];
        if (!*first) put(out, cap, pos, ",", 1);
        *first = false;
        size_t room = *pos < cap ? cap - *pos : 0;
        *pos += sl_json_write_member(f->name, f->name_len, &f->v, out ? out + *pos : NULL,
                                     out ? room : 0);
    }
}

static bool has_field(const struct sl_event *ev, const char *name, size_t len)
{
    for (uint32_t i = 0; i < ev->nfields; i++)
        if (ev->fields[i].name_len == len && memcmp(ev->fields[i].name, name, len) == 0)
            return true;
    return false;
}

static size_t write_any(const struct sl_event *ev, char *out, size_t cap)
{
    size_t pos = 0;
    bool first = true;
    if (!sl_event_fields_changed(ev)) { /* in sync: the bytes as they came */
        put(out, cap, &pos, ev->payload, ev->payload_len);
        return pos;
    }
    put(out, cap, &pos, "{", 1);
    /* A raw record: its payload is the "message", unless a stage set a field of that name
     * (the field wins) or there is no payload at all (an event made of fields only). */
    if (!(ev->flags & SL__EV_PAYLOAD_PARSED) && ev->payload && !has_field(ev, "message", 7)) {
        struct sl_value v = sl_value_string(ev->payload, ev->payload_len);
        size_t room = pos < cap ? cap - pos : 0;
        pos += sl_json_write_member("message", 7, &v, out ? out + pos : NULL, out ? room : 0);
        first = false;
    }
    write_members(ev, out, cap, &pos, &first);
    put(out, cap, &pos, "}", 1);
    return pos;
}

/* The most bytes sl_json_write_value can need for `v` (escaping at most sextuples). */
static size_t value_bound(const struct sl_value *v)
{
    switch (v->type) {
    case SL_STRING: return (v->flags & SL_VALUE_ESCAPED ? v->len : 6 * (size_t)v->len) + 2;
    case SL_JSON: return v->len;
    case SL_INT:
    case SL_FLOAT: return (v->flags & SL_VALUE_TEXT) && v->len > 40 ? v->len : 40;
    default: return 5;
    }
}

/* An upper bound of write_any's length, cheap to compute: when `cap` reaches it, the
 * text is written in one pass instead of being measured first. */
static size_t bound(const struct sl_event *ev)
{
    if (!sl_event_fields_changed(ev)) return ev->payload_len;
    size_t n = 2 + 11 + 6 * (size_t)ev->payload_len; /* {} and "message":"..." */
    for (uint32_t i = 0; i < ev->nfields; i++)
        n += 4 + 6 * (size_t)ev->fields[i].name_len + value_bound(&ev->fields[i].v);
    return n;
}

size_t sl_event_write_json(const struct sl_event *ev, char *out, size_t cap)
{
    if (out && cap >= bound(ev)) return write_any(ev, out, cap); /* it fits, whatever it is */
    /* Nothing is written unless all of it fits: measure first when it might not. */
    size_t need = write_any(ev, NULL, 0);
    if (need <= cap) write_any(ev, out, cap);
    return need;
}
