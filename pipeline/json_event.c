/* An event as JSON text: the original payload when the fields still say what it says,
 * the fields serialised when a stage changed them. */
#include <string.h>

#include <sluice/json.h>

#include "internal.h"

/* Copies `n` bytes at `*pos` when they fit; the position advances either way. */
static void put(char *out, size_t cap, size_t *pos, const char *s, size_t n)
{
    if (out && *pos + n <= cap) memcpy(out + *pos, s, n);
    *pos += n;
}

static size_t write_fields(const struct sl_event *ev, char *out, size_t cap)
{
    size_t pos = 0;
    put(out, cap, &pos, "{", 1);
    for (uint16_t i = 0; i < ev->nfields; i++) {
        const struct sl__field *f = &ev->fields[i];
        if (i) put(out, cap, &pos, ",", 1);
        size_t room = pos < cap ? cap - pos : 0;
        size_t need = sl_json_write_member(f->name, f->name_len, &f->v, out ? out + pos : NULL,
                                           out ? room : 0);
        pos += need;
    }
    put(out, cap, &pos, "}", 1);
    return pos;
}

static size_t write_any(const struct sl_event *ev, char *out, size_t cap)
{
    /* A raw line, never indexed: {"message": "..."}. An event whose fields were all removed
     * (changed) or that was an empty object (synced) is "{}". */
    if (ev->nfields == 0 && !(ev->flags & (SL__EV_FIELDS_CHANGED | SL__EV_FIELDS_SYNCED))) {
        struct sl_value v = sl_value_string(ev->payload, ev->payload_len);
        size_t pos = 0;
        put(out, cap, &pos, "{", 1);
        size_t room = pos < cap ? cap - pos : 0;
        pos += sl_json_write_member("message", 7, &v, out ? out + pos : NULL, out ? room : 0);
        put(out, cap, &pos, "}", 1);
        return pos;
    }
    if (!(ev->flags & SL__EV_FIELDS_CHANGED)) { /* untouched: the bytes as they came */
        size_t pos = 0;
        put(out, cap, &pos, ev->payload, ev->payload_len);
        return pos;
    }
    return write_fields(ev, out, cap);
}

size_t sl_event_write_json(const struct sl_event *ev, char *out, size_t cap)
{
    /* Nothing is written unless all of it fits: measure first when it might not. */
    size_t need = write_any(ev, NULL, 0);
    if (need <= cap) write_any(ev, out, cap);
    return need;
}
