/* An event as JSON text, by its state (event.h, "fields and the payload"): the original
 * payload when it is the JSON text of the fields, the fields serialised when they were
 * parsed and changed, and a raw record as its payload under "message" beside its fields. */
#include <stdlib.h>
#include <string.h>

#include <sluice/json.h>

#include "event/internal.h"

/* Copies `n` bytes at `*pos` when they fit; the position advances either way. */
static void put(char *out, size_t cap, size_t *pos, const char *s, size_t n)
{
    if (out && *pos + n <= cap) memcpy(out + *pos, s, n);
    *pos += n;
}

/* Whether a later field has the name of field i: the slow way, when memory for the
 * marks of sl__event_mark_hidden could not be had. */
static bool hidden_at(const struct sl_event *ev, uint32_t i)
{
    const struct sl__field *f = &ev->fields[i];
    for (uint32_t j = i + 1; j < ev->nfields; j++)
        if (ev->fields[j].name_len == f->name_len &&
            memcmp(ev->fields[j].name, f->name, f->name_len) == 0)
            return true;
    return false;
}

static bool has_field(const struct sl_event *ev, const char *name, size_t len)
{
    for (uint32_t i = 0; i < ev->nfields; i++)
        if (ev->fields[i].name_len == len && memcmp(ev->fields[i].name, name, len) == 0)
            return true;
    return false;
}

/* Writes the fields as members, each preceded by a ',' unless it is the first member
 * (`*first`). Of a repeated name (fields a parser appended without looking), only the
 * last field is written: the one lookups find. */
static void write_members(const struct sl_event *ev, char *out, size_t cap, size_t *pos,
                          bool *first)
{
    uint8_t small[256], *hidden = NULL;
    if (ev->flags & SL__EV_MAYBE_DUPS) {
        hidden = ev->nfields <= sizeof small ? small : malloc(ev->nfields);
        if (hidden) sl__event_mark_hidden(ev, hidden);
    }
    for (uint32_t i = 0; i < ev->nfields; i++) {
        const struct sl__field *f = &ev->fields[i];
        if (hidden ? hidden[i] : (ev->flags & SL__EV_MAYBE_DUPS) && hidden_at(ev, i)) continue;
        if (!*first) put(out, cap, pos, ",", 1);
        *first = false;
        size_t room = *pos < cap ? cap - *pos : 0;
        *pos += sl_json_write_member(f->name, f->name_len, &f->v, out ? out + *pos : NULL,
                                     out ? room : 0);
    }
    if (hidden != small) free(hidden);
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

/* An upper bound of write_any's length, cheap to compute: when `cap` reaches it, the
 * text is written in one pass instead of being measured first. */
static size_t bound(const struct sl_event *ev)
{
    if (!sl_event_fields_changed(ev)) return ev->payload_len;
    size_t n = 2 + 11 + 6 * (size_t)ev->payload_len; /* {} and "message":"..." */
    for (uint32_t i = 0; i < ev->nfields; i++)
        n += 4 + 6 * (size_t)ev->fields[i].name_len + sl__json_value_bound(&ev->fields[i].v);
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
