/* The `kafka` source: one message, one event. The value is copied into the batch arena
 * as the payload (a raw record, for a parser downstream), the key as the key; the topic,
 * partition and offset are the event's origin and the message timestamp its time. The
 * fields the config asks for (key, headers, topic, partition, offset, timestamp) are
 * added beside the payload. */
#include <string.h>

#include "source.h"

/* Copies `len` bytes into the batch; NULL when out of memory (an empty copy is ""). */
static const char *copy(struct sl_batch *b, const void *data, size_t len)
{
    char *out = sl_batch_alloc(b, len ? len : 1);
    if (out && len) memcpy(out, data, len);
    return out;
}

/* The headers of `m` as the text of a JSON object (in the batch's arena), into `*out`.
 * A header without a value is null. Returns 0 or SL_ENOMEM. */
static int headers_json(struct sl_batch *b, const rd_kafka_message_t *m, struct sl_value *out)
{
    rd_kafka_headers_t *hdrs = NULL;
    size_t need = 2, n = 0;
    const char *name;
    const void *val;
    size_t vlen;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR)
        for (; !rd_kafka_header_get_all(hdrs, n, &name, &val, &vlen); n++)
            need += sl_json_escaped_len(name, strlen(name)) +
                    (val ? sl_json_escaped_len(val, vlen) + 2 : 4) + 4;
    char *text = sl_batch_alloc(b, need), *o = text;
    if (!text) return SL_ENOMEM;
    *o++ = '{';
    for (size_t i = 0; i < n && !rd_kafka_header_get_all(hdrs, i, &name, &val, &vlen); i++) {
        if (i) *o++ = ',';
        *o++ = '"';
        o += sl_json_escape(name, strlen(name), o);
        *o++ = '"';
        *o++ = ':';
        if (!val) {
            memcpy(o, "null", 4), o += 4;
            continue;
        }
        *o++ = '"';
        o += sl_json_escape(val, vlen, o);
        *o++ = '"';
    }
    *o++ = '}';
    *out = sl_value_json(text, (size_t)(o - text));
    return 0;
}

/* Adds field `name` (an option's text: lives as long as the stage) when it is set. */
static int add(struct sl_event *ev, const char *name, struct sl_value v)
{
    if (!name || !*name) return 0;
    return sl_event_add_field(ev, name, strlen(name), &v);
}

static int add_fields(struct sl__ksrc *s, struct sl_batch *b, struct sl_event *ev,
                      const rd_kafka_message_t *m, int64_t ts_ms)
{
    size_t klen = 0;
    const char *key = sl_event_key(ev, &klen);
    int rc = 0;
    if (s->key_field && *s->key_field)
        rc = add(ev, s->key_field, key ? sl_value_string(key, klen) : sl_value_null());
    if (!rc && s->headers_field && *s->headers_field) {
        struct sl_value h;
        rc = headers_json(b, m, &h);
        if (!rc) rc = add(ev, s->headers_field, h);
    }
    if (!rc)
        rc = add(ev, s->topic_field,
                 sl_value_string(sl_event_origin(ev), strlen(sl_event_origin(ev))));
    if (!rc) rc = add(ev, s->partition_field, sl_value_int(m->partition));
    if (!rc) rc = add(ev, s->offset_field, sl_value_int(m->offset));
    if (!rc) rc = add(ev, s->timestamp_field, ts_ms >= 0 ? sl_value_int(ts_ms) : sl_value_null());
    return rc;
}

int sl__ksrc_append(struct sl__ksrc *s, struct sl_batch *b, const rd_kafka_message_t *m,
                    struct sl__kpart *p)
{
    struct sl_event *ev = sl_batch_append(b);
    const char *payload = ev ? copy(b, m->payload, m->len) : NULL;
    if (!payload) return SL_ENOMEM;
    sl_event_set_payload(ev, payload, m->len);
    if (m->key) {
        const char *key = copy(b, m->key, m->key_len);
        if (!key) return SL_ENOMEM;
        sl_event_set_key(ev, key, m->key_len);
    }
    int64_t ts = rd_kafka_message_timestamp(m, NULL);
    sl_event_set_time(ev, ts >= 0 ? ts * 1000000 : 0);
    sl_event_set_origin(ev, p->topic, (uint64_t)m->offset, m->partition);
    return add_fields(s, b, ev, m, ts);
}
