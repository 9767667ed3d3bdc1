/* The kafka sink's messages: the config turned into librdkafka settings and compiled
 * headers (init), one event made into a message and produced (topic from the template,
 * key, value by encoding, headers), and what becomes of a message Kafka will never take
 * (on_error: drop, dead_letter, fail). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include <sluice/json.h>

#include "sink.h"

#define DEAD_LETTER_CUT 1024 /* bytes of a too-large value its dead letter keeps */

/* ---- config -----------------------------------------------------------------------------------
 */

static const char *const compressions[] = {"none", "gzip", "snappy", "lz4", "zstd"};
static const char *const ackses[] = {"all", "1", "0"};

/* librdkafka's settings from the options; the user's librdkafka: map comes after them. */
static void fill_defaults(struct sl__kafka_sink *k)
{
    size_t n = 0;
    const char **d = k->defaults;
    d[n++] = "message.timeout.ms", d[n++] = "0"; /* a broker outage waits, never fails */
    d[n++] = "queue.buffering.max.kbytes", d[n++] = "65536";
    d[n++] = "compression.type", d[n++] = compressions[k->compression];
    d[n++] = "acks", d[n++] = ackses[k->acks];
    /* no duplicates nor reordering from librdkafka's own retries (needs acks all) */
    d[n++] = "enable.idempotence", d[n++] = k->acks == 0 ? "true" : "false";
    d[n] = NULL;
}

static int compile_headers(struct sl__kafka_sink *k, struct sl_error *err)
{
    size_t n = k->headers ? sl_config_len(k->headers) : 0;
    if (!n) return 0;
    if (!(k->hdrs = calloc(n, sizeof *k->hdrs)))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *name;
        const struct sl_config *v = sl_config_at(k->headers, i, &name);
        char what[300];
        snprintf(what, sizeof what, "header '%s'", name);
        k->hdrs[i].name = name;
        if (!(k->hdrs[i].expr = sl_expr_compile_config(v, what, err))) return err->code;
        k->nhdrs++;
    }
    return 0;
}

int sl__kafka_sink_config(struct sl__kafka_sink *k, const struct sl_config *cfg,
                          struct sl_error *err)
{
    const struct sl_config *at = sl_config_get(cfg, "brokers");
    if (sl__kafka_brokers_parse(k->brokers, at ? at : cfg, err) < 0) return err->code;
    if (k->encoding == SL__KAFKA_ENC_JSON && k->text)
        return sl_config_error(sl_config_get(cfg, "template"), err, SL_ECONFIG,
                               "template goes with encoding: text");
    fill_defaults(k);
    int rc = sl__kafka_conf_check(k->librdkafka, k->defaults, err);
    if (rc) return rc;
    if (compile_headers(k, err)) return err->code;
    const char *dl = k->dead_letter_topic;
    int n =
        dl ? snprintf(k->dl_topic, sizeof k->dl_topic, "%s", dl)
           : snprintf(k->dl_topic, sizeof k->dl_topic, "%s.dead_letter", sl_stage_name(k->stage));
    if (n <= 0 || n > 249)
        return sl_config_error(cfg, err, SL_ECONFIG, "dead_letter_topic: 1 to 249 characters");
    k->topic_constant = sl_template_is_constant(k->topic);
    if (k->topic_constant)
        k->const_len = sl_template_render(k->topic, NULL, k->const_topic, sizeof k->const_topic);
    return 0;
}

void sl__kafka_sink_config_free(struct sl__kafka_sink *k)
{
    for (size_t i = 0; i < k->nhdrs; i++) sl_expr_free(k->hdrs[i].expr);
    free(k->hdrs);
    k->hdrs = NULL;
    k->nhdrs = 0;
}

/* ---- one message ---------------------------------------------------------------------------- */

static int reserve(struct sl__kafka_buf *b, size_t need)
{
    if (b->cap >= need) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) return SL_ENOMEM;
    b->s = s;
    b->cap = cap;
    return 0;
}

/* The text of `v` (a string's decoded bytes, anything else as JSON) in s/len, in `b`
 * when it must be made. Returns 1 for null (no text), 0, or SL_ENOMEM. */
static int value_text(const struct sl_value *v, struct sl__kafka_buf *b, const char **s,
                      size_t *len)
{
    if (v->type == SL_NULL) return 1;
    if (v->type == SL_STRING && !(v->flags & SL_VALUE_ESCAPED)) {
        *s = v->s, *len = v->len;
        return 0;
    }
    size_t need = v->type == SL_STRING ? v->len : sl_json_write_value(v, NULL, 0);
    if (reserve(b, need + 1)) return SL_ENOMEM;
    int n = v->type == SL_STRING ? sl_value_unescape(v, b->s, b->cap)
                                 : (int)sl_json_write_value(v, b->s, b->cap);
    if (n < 0) { /* an escape that does not decode: the text as it came */
        *s = v->s, *len = v->len;
        return 0;
    }
    *s = b->s, *len = (size_t)n;
    return 0;
}

/* The value by `encoding`, in s/len. Returns 0 or SL_ENOMEM. */
static int encode(struct sl__kafka_sink *k, struct sl_event *ev, const char **s, size_t *len)
{
    struct sl__kafka_buf *b = &k->value;
    if (k->encoding == SL__KAFKA_ENC_TEXT && k->text) {
        size_t n = sl_template_render(k->text, ev, b->s, b->cap);
        if (n >= b->cap) {
            if (reserve(b, n + 1)) return SL_ENOMEM;
            sl_template_render(k->text, ev, b->s, b->cap);
        }
        *s = b->s, *len = n;
        return 0;
    }
    if (k->encoding == SL__KAFKA_ENC_TEXT || !sl_event_fields_changed(ev)) {
        *s = sl_event_payload(ev, len);
        if (!*s) *s = "", *len = 0;
        return 0;
    }
    size_t n = sl_event_write_json(ev, b->s, b->cap);
    if (n > b->cap) {
        if (reserve(b, n)) return SL_ENOMEM;
        sl_event_write_json(ev, b->s, b->cap);
    }
    *s = b->s, *len = n;
    return 0;
}

/* The handle of topic `name`, kept for the next messages (the first SL__KAFKA_TOPICS
 * topics; `*own` is set for a handle the caller destroys after use). NULL when out of
 * memory. */
static rd_kafka_topic_t *topic_handle(struct sl__kafka_sink *k, const char *name, bool *own)
{
    *own = false;
    for (size_t i = 0; i < k->ntopics; i++)
        if (strcmp(rd_kafka_topic_name(k->topics[i]), name) == 0) return k->topics[i];
    rd_kafka_topic_t *t = rd_kafka_topic_new(k->c.rk, name, NULL);
    if (t && k->ntopics < SL__KAFKA_TOPICS)
        k->topics[k->ntopics++] = t;
    else
        *own = t != NULL;
    return t;
}

/* The event's headers (owned; NULL when it has none). Returns 0 or SL_ENOMEM. */
static int make_headers(struct sl__kafka_sink *k, struct sl_event *ev, rd_kafka_headers_t **out)
{
    *out = NULL;
    if (!k->nhdrs) return 0;
    rd_kafka_headers_t *h = rd_kafka_headers_new(k->nhdrs);
    for (size_t i = 0; i < k->nhdrs; i++) {
        struct sl_value v;
        const char *s;
        size_t len;
        int rc = sl_expr_eval(k->hdrs[i].expr, ev, &v);
        if (!rc) rc = value_text(&v, &k->hbuf, &s, &len);
        if (rc < 0) {
            rd_kafka_headers_destroy(h);
            return rc;
        }
        if (rc == 0) rd_kafka_header_add(h, k->hdrs[i].name, -1, s, (ssize_t)len);
    }
    *out = h;
    return 0;
}

/* The key in s/len (NULL: none). Returns 0 or SL_ENOMEM. */
static int make_key(struct sl__kafka_sink *k, struct sl_event *ev, const char **s, size_t *len)
{
    *s = NULL, *len = 0;
    if (!k->key) {
        *s = sl_event_key(ev, len);
        return 0;
    }
    struct sl_value v;
    int rc = sl_expr_eval(k->key, ev, &v);
    if (!rc) rc = value_text(&v, &k->keybuf, s, len);
    if (rc == 1) *s = NULL, *len = 0;
    return rc < 0 ? rc : 0;
}

/* A topic being rendered: its bytes (cut at the buffer, counted whole) and whether a
 * {{ }} was null. */
struct topic_out {
    char *buf;
    size_t cap, len;
    bool null;
};

static int topic_piece(void *arg, enum sl_template_piece kind, const char *s, size_t len)
{
    struct topic_out *t = arg;
    if (kind == SL_TEMPLATE_NULL) {
        t->null = true; /* no text (s may be NULL) */
        return 0;
    }
    if (t->len < t->cap) memcpy(t->buf + t->len, s, len < t->cap - t->len ? len : t->cap - t->len);
    t->len += len;
    return 0;
}

/* Renders the topic template for `ev` into m->topic in one pass; returns its length,
 * or SIZE_MAX when a {{ }} is null. */
static size_t render_topic(struct sl__kafka_sink *k, struct sl_event *ev, struct sl__kafka_msg *m)
{
    struct topic_out t = {.buf = m->topic, .cap = sizeof m->topic - 1};
    if (sl_template_each(k->topic, ev, topic_piece, &t)) t.len = 0; /* no memory: refused */
    m->topic[t.len < t.cap ? t.len : t.cap] = '\0';
    return t.null ? SIZE_MAX : t.len;
}

/* Fills `m` from event `ev`. Returns 0, SL_ENOMEM, SL_EINVAL for a topic name that
 * Kafka cannot have (empty, or longer than 249), or SL_ENOTFOUND for a topic template
 * whose {{ }} is null (a missing field: the message would go to a wrong topic). */
static int make_msg(struct sl__kafka_sink *k, struct sl_event *ev, struct sl__kafka_msg *m)
{
    size_t n = k->const_len;
    if (k->topic_constant)
        memcpy(m->topic, k->const_topic, n < sizeof m->topic ? n + 1 : sizeof m->topic);
    else
        n = render_topic(k, ev, m);
    m->h = NULL;
    if (make_key(k, ev, &m->key, &m->klen) || encode(k, ev, &m->val, &m->vlen) ||
        make_headers(k, ev, &m->h))
        return SL_ENOMEM;
    if (n == SIZE_MAX) {
        k->null_topics++;
        return SL_ENOTFOUND; /* the message is whole: a dead letter carries it */
    }
    return n == 0 || n > 249 ? SL_EINVAL : 0;
}

/* Produces `m` (its headers are taken on success only). */
static rd_kafka_resp_err_t send_msg(struct sl__kafka_sink *k, const struct sl__kafka_msg *m,
                                    rd_kafka_headers_t *h, void *opaque)
{
    bool own;
    rd_kafka_topic_t *t = topic_handle(k, m->topic, &own);
    if (!t) return rd_kafka_last_error();
    rd_kafka_resp_err_t e = rd_kafka_producev(
        k->c.rk, RD_KAFKA_V_RKT(t), RD_KAFKA_V_VALUE((void *)m->val, m->vlen),
        RD_KAFKA_V_KEY(m->key, m->klen), RD_KAFKA_V_HEADERS(h),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (own) rd_kafka_topic_destroy(t); /* a queued message holds its own reference */
    return e;
}

enum sl__kafka_produced sl__kafka_produce(struct sl__kafka_sink *k, struct sl__kafka_job *j,
                                          size_t i)
{
    struct sl__kafka_msg m;
    int rc = make_msg(k, sl_batch_event(j->batch, i), &m);
    if (rc == SL_ENOMEM) {
        if (m.h) rd_kafka_headers_destroy(m.h);
        sl__kafka_sink_broken(k, "out of memory making a message");
        return SL__KAFKA_BROKEN;
    }
    if (rc)
        snprintf(m.topic, sizeof m.topic, "%s",
                 rc == SL_ENOTFOUND ? "(a {{ }} of the topic is null)" : "(empty or too long)");
    rd_kafka_resp_err_t e = rc ? RD_KAFKA_RESP_ERR__INVALID_ARG : send_msg(k, &m, m.h, j);
    if (!e) {
        j->unreported++;
        k->produced++;
        return SL__KAFKA_QUEUED;
    }
    enum sl__kafka_produced r = SL__KAFKA_FULL;
    if (sl__kafka_permanent(e)) {
        r = sl__kafka_refused(k, j, &m, e);
    } else if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) { /* __FATAL, __STATE: the client's */
        sl__kafka_sink_broken(k, "cannot produce to %s: %s (%s)", m.topic, rd_kafka_err2str(e),
                              rd_kafka_err2name(e));
        r = SL__KAFKA_BROKEN;
    }
    if (m.h) rd_kafka_headers_destroy(m.h);
    return r;
}

/* ---- faults --------------------------------------------------------------------------------- */

bool sl__kafka_permanent(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR__INVALID_ARG: return true;
    default: return false;
    }
}

void sl__kafka_sink_broken(struct sl__kafka_sink *k, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!k->broken) sl_stage_error(k->stage, SL_EIO, "%s", msg);
    k->broken = true;
    sl_stage_wake(k->stage);
}

/* Produces the dead letter of `m`: to the dead-letter topic, its key and headers, header
 * sluice.error with the reason and sluice.topic with the topic it was meant for; a value
 * refused for its size is cut to DEAD_LETTER_CUT bytes (header sluice.size: its size). */
static rd_kafka_resp_err_t dead_letter(struct sl__kafka_sink *k, struct sl__kafka_job *j,
                                       const struct sl__kafka_msg *m, const char *why, bool cut)
{
    rd_kafka_headers_t *h = m->h ? rd_kafka_headers_copy(m->h) : rd_kafka_headers_new(3);
    rd_kafka_header_add(h, "sluice.error", -1, why, -1);
    rd_kafka_header_add(h, "sluice.topic", -1, m->topic, -1);
    struct sl__kafka_msg dl = *m;
    snprintf(dl.topic, sizeof dl.topic, "%s", k->dl_topic);
    if (cut && dl.vlen > DEAD_LETTER_CUT) {
        char size[32];
        snprintf(size, sizeof size, "%zu", dl.vlen);
        rd_kafka_header_add(h, "sluice.size", -1, size, -1);
        dl.vlen = DEAD_LETTER_CUT;
    }
    rd_kafka_resp_err_t e = send_msg(k, &dl, h, (void *)((uintptr_t)j | 1));
    if (e) rd_kafka_headers_destroy(h);
    return e;
}

enum sl__kafka_produced sl__kafka_refused(struct sl__kafka_sink *k, struct sl__kafka_job *j,
                                          const struct sl__kafka_msg *m, rd_kafka_resp_err_t why)
{
    char reason[512];
    snprintf(reason, sizeof reason, "topic %s: %s (%s)", m->topic, rd_kafka_err2str(why),
             rd_kafka_err2name(why));
    if (k->on_error == SL__KAFKA_DEAD_LETTER) { /* first: a full queue is tried again */
        bool cut = why == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
                   why == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE;
        rd_kafka_resp_err_t e = dead_letter(k, j, m, reason, cut);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) return SL__KAFKA_FULL;
        if (e) {
            sl_stage_count_errors(k->stage, 1);
            sl__kafka_sink_broken(k, "cannot write the dead letter of a message to %s: %s (%s)",
                                  k->dl_topic, rd_kafka_err2str(e), reason);
            return SL__KAFKA_BROKEN;
        }
        j->unreported++;
    }
    sl_stage_count_errors(k->stage, 1);
    if (k->on_error == SL__KAFKA_FAIL) {
        sl__kafka_sink_broken(k, "a message Kafka will not take: %s (on_error: fail)", reason);
        return SL__KAFKA_BROKEN;
    }
    if (!k->warned)
        sl_stage_log(k->stage, SL_LOG_WARN,
                     "a message Kafka will not take: %s; %s%s (later ones only counted)", reason,
                     k->on_error == SL__KAFKA_DROP ? "dropped" : "dead letter to ",
                     k->on_error == SL__KAFKA_DROP ? "" : k->dl_topic);
    k->warned = true;
    if (k->on_error == SL__KAFKA_DROP) {
        k->dropped++;
        sl_stage_count_dropped(k->stage, 1);
    }
    return SL__KAFKA_HANDLED;
}
