/* Helpers for the Kafka source's tests (helpers_kafka_source.h). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "helpers_file.h"
#include "helpers_kafka_source.h"

/* ---- the recording sink ------------------------------------------------------------------ */

static const struct sl_option kmsgs_options[] = {
    {"hold_after", SL_OPT_INT, "0", 0, offsetof(struct t_kmsgs, hold_after),
     "ack this many batches, then none"},
    {"stop_at", SL_OPT_INT, "0", 0, offsetof(struct t_kmsgs, stop_at),
     "stop the pipeline after this many distinct messages (a repeat does not count)"},
    {0},
};

static char *dup_n(const char *s, size_t len)
{
    char *out = malloc(len + 1);
    cr_assert_not_null(out);
    if (len) memcpy(out, s, len);
    out[len] = '\0';
    return out;
}

/* The event's fields as a JSON object (owned). */
static char *fields_json(const struct sl_event *ev)
{
    size_t cap = 2;
    for (size_t i = 0; i < sl_event_field_count(ev); i++) {
        const char *name;
        size_t nlen;
        struct sl_value v;
        sl_event_field_at(ev, i, &name, &nlen, &v);
        cap += sl_json_write_member(name, nlen, &v, NULL, 0) + 1;
    }
    char *out = malloc(cap + 1), *o = out;
    *o++ = '{';
    for (size_t i = 0; i < sl_event_field_count(ev); i++) {
        const char *name;
        size_t nlen;
        struct sl_value v;
        sl_event_field_at(ev, i, &name, &nlen, &v);
        if (i) *o++ = ',';
        o += sl_json_write_member(name, nlen, &v, o, cap - (size_t)(o - out));
    }
    *o++ = '}';
    *o = '\0';
    return out;
}

static void record(struct t_kmsgs *r, const struct sl_event *ev)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 1024;
        r->m = realloc(r->m, r->cap * sizeof *r->m);
        cr_assert_not_null(r->m);
    }
    size_t len, klen;
    const char *payload = sl_event_payload(ev, &len), *key = sl_event_key(ev, &klen);
    struct t_kmsg *m = &r->m[r->n++];
    m->payload = dup_n(payload, len);
    const char *at = strstr(m->payload, "\"n\":");
    m->n = at ? strtoll(at + 4, NULL, 10) : -1;
    m->key = key ? dup_n(key, klen) : NULL;
    m->origin = strdup(sl_event_origin(ev) ? sl_event_origin(ev) : "");
    m->partition = sl_event_partition(ev);
    m->offset = (int64_t)sl_event_offset(ev);
    if (m->partition >= 0 && m->partition < 64 && m->offset >= r->next_offset[m->partition]) {
        r->next_offset[m->partition] = m->offset + 1;
        r->distinct++;
    }
    m->time_ns = sl_event_time(ev);
    m->fields = fields_json(ev);
}

static enum sl_poll kmsgs_write(struct sl_stage *s, struct sl_batch *b)
{
    struct t_kmsgs *r = sl_stage_state(s);
    for (size_t i = 0; i < sl_batch_count(b); i++) record(r, sl_batch_event_const(b, i));
    if (r->on_write) r->on_write(s, r, b);
    if (r->stop_at && (int64_t)r->distinct >= r->stop_at && r->p) sl_pipeline_stop(r->p);
    if (r->hold_after && r->acked_batches >= r->hold_after && r->nkept < 64) {
        r->kept[r->nkept++] = b;
        return r->nkept >= 4 ? SL_PENDING : SL_READY;
    }
    r->acked_events += (long long)sl_batch_count(b);
    r->acked_batches++;
    sl_ack(b);
    return SL_READY;
}

void t_kmsgs_clear(struct t_kmsgs *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->m[i].payload);
        free(r->m[i].key);
        free(r->m[i].origin);
        free(r->m[i].fields);
    }
    free(r->m);
    r->m = NULL;
    r->n = r->cap = r->distinct = 0;
    memset(r->next_offset, 0, sizeof r->next_offset);
}

static void kmsgs_close(struct sl_stage *s)
{
    struct t_kmsgs *r = sl_stage_state(s);
    for (size_t i = 0; i < r->nkept; i++) sl_batch_unref(r->kept[i]);
    t_kmsgs_clear(r);
}

const struct sl_stage_type t_kmsgs = {
    .abi = SL_STAGE_ABI,
    .name = "t_kmsgs",
    .kind = SL_SINK,
    .doc = "test sink recording Kafka messages",
    .state_size = sizeof(struct t_kmsgs),
    .options = kmsgs_options,
    .write = kmsgs_write,
    .close = kmsgs_close,
};

/* ---- kcat ------------------------------------------------------------------------------- */

static void kcat_file(const char *boot, const char *topic, const char *path, bool keyed)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "kcat -P -b %s -t %s %s -H trace=abc -H env=test -X linger.ms=5 -l %s 2>&1", boot,
             topic, keyed ? "-K '\t'" : "", path);
    int rc = system(cmd);
    cr_assert_eq(rc, 0, "kcat failed (%d): %s", rc, cmd);
}

void t_kcat_produce(const char *boot, const char *topic, int64_t first, int64_t last, size_t size)
{
    char *dir = t_tmpdir(), *path = t_path(dir, "msgs");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int64_t n = first; n < last; n++) {
        int len = fprintf(f, "key-%lld\t{\"n\":%lld,\"msg\":\"message %lld", (long long)n,
                          (long long)n, (long long)n);
        for (size_t i = (size_t)len; i + 2 < size; i++) fputc('x', f);
        fputs("\"}\n", f);
    }
    fclose(f);
    kcat_file(boot, topic, path, true);
    t_rmtree(dir);
    free(dir);
    free(path);
}

void t_kcat_lines(const char *boot, const char *topic, const char *text)
{
    char *dir = t_tmpdir(), *path = t_path(dir, "lines");
    t_writes(path, text, false);
    kcat_file(boot, topic, path, false);
    t_rmtree(dir);
    free(dir);
    free(path);
}

/* ---- offsets ------------------------------------------------------------------------------ */

static rd_kafka_t *handle(const char *boot, const char *group)
{
    char why[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", boot, why, sizeof why);
    if (group) rd_kafka_conf_set(conf, "group.id", group, why, sizeof why);
    rd_kafka_conf_set(conf, "log_level", "0", why, sizeof why);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
    cr_assert_not_null(rk, "%s", why);
    return rk;
}

int t_committed(const char *boot, const char *group, const char *topic, int nparts, int64_t *out)
{
    rd_kafka_t *rk = handle(boot, group);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(nparts);
    for (int i = 0; i < nparts; i++) rd_kafka_topic_partition_list_add(list, topic, i);
    rd_kafka_resp_err_t err = rd_kafka_committed(rk, list, 10000);
    for (int i = 0; i < nparts; i++) out[i] = list->elems[i].offset;
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_destroy(rk);
    return err;
}

void t_watermarks(const char *boot, const char *topic, int nparts, int64_t *out)
{
    rd_kafka_t *rk = handle(boot, NULL);
    for (int i = 0; i < nparts; i++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk, topic, i, &lo, &hi, 10000);
        cr_assert_eq(err, 0, "watermarks: %s", rd_kafka_err2str(err));
        out[i] = hi;
    }
    rd_kafka_destroy(rk);
}
