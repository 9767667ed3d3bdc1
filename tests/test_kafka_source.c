/* The kafka source against librdkafka's mock cluster (the real protocol on loopback), fed
 * by kcat (an independent client): messages read exactly once in partition order with
 * their keys, headers and metadata; committed offsets that never pass what the sink
 * acknowledged, and a restart that resumes right after them; a broker down mid-run that
 * the pipeline waits out; a payload parse_json rejects sent to its dead letter; config
 * errors at their place. (Processes killed and groups of processes: test_kafka_runs.c.) */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include <sluice/builtins.h>

#include "helpers.h"
#include "helpers_file.h"
#include "helpers_kafka_source.h"
#include "../connectors/kafka/source.h"

static struct sl__kafka_mock *mock;
static const char *boot;
static struct sl_pipeline *p;

static struct sl_pipeline *new_pipeline(int64_t batch_events, int64_t shutdown_ms)
{
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.log = t_log_capture;
    if (batch_events) o.batch_max_events = batch_events;
    if (shutdown_ms) o.shutdown_timeout_ms = shutdown_ms;
    struct sl_error err = {0};
    struct sl_pipeline *np = sl_pipeline_new(NULL, &o, &err);
    cr_assert_not_null(np, "%s", err.msg);
    return np;
}

static void setup(void)
{
    struct sl_error err = {0};
    mock = sl__kafka_mock_new(1, &err);
    cr_assert_not_null(mock, "%s", err.msg);
    boot = sl__kafka_mock_bootstraps(mock);
    cr_assert_eq(sl__kafka_mock_create_topic(mock, "t3", 3, &err), 0, "%s", err.msg);
    p = new_pipeline(0, 0);
}

static void teardown(void)
{
    sl_pipeline_free(p);
    sl__kafka_mock_free(mock);
    t_log_clear();
}

TestSuite(kafka_source, .init = setup, .fini = teardown, .timeout = 90);

/* kafka (options `opts`, group `group`) -> t_kmsgs (options `sink`); returns the sink. */
static struct t_kmsgs *build(const char *group, const char *opts, const char *sink,
                             struct sl_stage **src_out)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "brokers: \"%s\"\ngroup: %s\ntopics: [t3]\ncommit_interval: 20ms\n"
             "librdkafka: {session.timeout.ms: 6000, heartbeat.interval.ms: 500}\n%s",
             boot, group, opts);
    struct sl_stage *src = t_add(p, "src", &sl_stage_kafka_source, yaml);
    struct sl_stage *out = t_add(p, "out", &t_kmsgs, sink);
    t_connect(p, src, out);
    if (src_out) *src_out = src;
    struct t_kmsgs *r = sl_stage_state(out);
    r->p = p;
    return r;
}

static int run(void)
{
    struct sl_error err = {0};
    int rc = sl_pipeline_run(p, &err);
    if (rc) fprintf(stderr, "run: %s (%s)\n", err.msg, err.stage);
    return rc;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Asserts that `r` holds, for each partition i of 3, exactly the offsets from[i]..hw[i]-1
 * in order, each message the one kcat produced there (numbers rising per partition). */
static void assert_partitions(const struct t_kmsgs *r, const int64_t *from, const int64_t *hw)
{
    int64_t next[3] = {from[0], from[1], from[2]}, last_n[3] = {-1, -1, -1};
    size_t want = 0;
    for (int i = 0; i < 3; i++) want += (size_t)(hw[i] - from[i]);
    cr_assert_eq(r->n, want, "%zu messages, want %zu", r->n, want);
    for (size_t i = 0; i < r->n; i++) {
        const struct t_kmsg *m = &r->m[i];
        cr_assert(m->partition >= 0 && m->partition < 3, "partition %d", m->partition);
        cr_assert_eq(m->offset, next[m->partition], "partition %d: offset %lld, want %lld",
                     m->partition, (long long)m->offset, (long long)next[m->partition]);
        next[m->partition]++;
        cr_assert_gt(m->n, last_n[m->partition], "partition %d: %lld after %lld", m->partition,
                     (long long)m->n, (long long)last_n[m->partition]);
        last_n[m->partition] = m->n;
    }
}

/* Asserts that `r` holds, for each partition i of 3, every offset from[i]..hw[i]-1 in
 * order, allowing what at-least-once allows: a partition may go back to an earlier offset
 * (a group that lost its coordinator rejoins and fetches again from the committed offset,
 * behind what was delivered) and repeat from there, never skip one. Returns the repeats. */
static size_t assert_partitions_at_least_once(const struct t_kmsgs *r, const int64_t *from,
                                              const int64_t *hw)
{
    int64_t next[3] = {from[0], from[1], from[2]};
    size_t repeats = 0;
    for (size_t i = 0; i < r->n; i++) {
        const struct t_kmsg *m = &r->m[i];
        int k = m->partition;
        cr_assert(k >= 0 && k < 3, "partition %d", k);
        cr_assert_leq(m->offset, next[k], "partition %d: offset %lld after %lld: one was lost", k,
                      (long long)m->offset, (long long)next[k] - 1);
        cr_assert_geq(m->offset, from[k]);
        if (m->offset < next[k]) repeats++;
        if (m->offset == next[k]) next[k]++;
    }
    for (int k = 0; k < 3; k++)
        cr_assert_eq(next[k], hw[k], "partition %d ends at %lld, want %lld", k, (long long)next[k],
                     (long long)hw[k]);
    return repeats;
}

/* ---- every message, once, in order -------------------------------------------------------- */

Test(kafka_source, kcat_messages_are_read_once_in_partition_order_with_keys_headers_metadata)
{
    int64_t t0 = now_ms();
    t_kcat_produce(boot, "t3", 0, 10000, 0);
    int64_t t1 = now_ms();
    struct sl_stage *src;
    struct t_kmsgs *r = build("g1",
                              "until_end: true\nkey_field: k\nheaders_field: h\ntopic_field: t\n"
                              "partition_field: p\noffset_field: o\ntimestamp_field: ts\n",
                              NULL, &src);
    cr_assert_eq(run(), 0);
    cr_assert_eq(sl_pipeline_live_batches(p), 0);
    int64_t hw[3], from[3] = {0, 0, 0}, committed[3];
    t_watermarks(boot, "t3", 3, hw);
    cr_assert_eq(hw[0] + hw[1] + hw[2], 10000);
    cr_assert(hw[0] && hw[1] && hw[2], "keys spread over the 3 partitions");
    assert_partitions(r, from, hw);
    bool seen[10000] = {0};
    for (size_t i = 0; i < r->n; i++) {
        const struct t_kmsg *m = &r->m[i];
        cr_assert(m->n >= 0 && m->n < 10000 && !seen[m->n], "message %lld twice", (long long)m->n);
        seen[m->n] = true;
        char want[512];
        snprintf(want, sizeof want, "{\"n\":%lld,\"msg\":\"message %lld\"}", (long long)m->n,
                 (long long)m->n);
        cr_assert_str_eq(m->payload, want);
        snprintf(want, sizeof want, "key-%lld", (long long)m->n);
        cr_assert_str_eq(m->key, want);
        cr_assert_str_eq(m->origin, "t3");
        int64_t ts = m->time_ns / 1000000;
        cr_assert(ts >= t0 - 1 && ts <= t1 + 1, "time %lld not within [%lld, %lld]", (long long)ts,
                  (long long)t0, (long long)t1);
        snprintf(want, sizeof want,
                 "{\"k\":\"key-%lld\",\"h\":{\"trace\":\"abc\",\"env\":\"test\"},\"t\":\"t3\","
                 "\"p\":%d,\"o\":%lld,\"ts\":%lld}",
                 (long long)m->n, m->partition, (long long)m->offset, (long long)ts);
        cr_assert_str_eq(m->fields, want);
    }
    /* The clean stop committed everything. */
    cr_assert_eq(t_committed(boot, "g1", "t3", 3, committed), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(committed[i], hw[i], "partition %d committed %lld of %lld", i,
                     (long long)committed[i], (long long)hw[i]);
}

/* ---- offsets: never past the acknowledged, and a restart resumes after them --------------- */

static atomic_llong expect[3]; /* per partition: last acknowledged offset + 1 */

/* t_kmsgs hook: the batches it acknowledges (the first hold_after) move `expect`. */
static void note_acked(struct sl_stage *s, struct t_kmsgs *r, struct sl_batch *b)
{
    (void)s;
    if (r->acked_batches >= r->hold_after) return;
    for (size_t i = 0; i < sl_batch_count(b); i++) {
        const struct sl_event *ev = sl_batch_event_const(b, i);
        int32_t part = sl_event_partition(ev);
        if ((int64_t)sl_event_offset(ev) + 1 > expect[part])
            expect[part] = (int64_t)sl_event_offset(ev) + 1;
    }
}

struct checker {
    struct t_kmsgs *r; /* the sink (its atomics only) */
    bool reached;      /* the committed offsets reached what was acknowledged */
    char ahead[256];   /* a committed offset ahead of the acknowledged one, if any */
    int64_t final[3];  /* the committed offsets it saw last */
};

/* Another thread: reads the committed offsets (a handle of its own) until they equal the
 * acknowledged ones, then 30 more times (past the 1 s after which a source that is not
 * polled pauses its partitions), then stops the pipeline. */
static void *check_commits(void *arg)
{
    struct checker *c = arg;
    for (int i = 0; i < 400 && c->r->acked_batches < c->r->hold_after; i++) usleep(25000);
    int after = 0;
    for (int i = 0; i < 300 && after < 30 && !c->ahead[0]; i++) {
        int64_t got[3];
        if (t_committed(boot, "g2", "t3", 3, got)) continue;
        bool equal = true;
        for (int k = 0; k < 3; k++) {
            if (got[k] >= 0 && got[k] > expect[k])
                snprintf(c->ahead, sizeof c->ahead, "partition %d committed %lld > acked %lld", k,
                         (long long)got[k], (long long)expect[k]);
            equal = equal && (got[k] == expect[k] || (got[k] < 0 && expect[k] == 0));
            c->final[k] = got[k];
        }
        c->reached = c->reached || equal;
        after += c->reached;
        usleep(50000);
    }
    sl_pipeline_stop(p);
    return NULL;
}

Test(kafka_source, committed_offsets_never_pass_the_acknowledged_and_a_restart_resumes_after)
{
    t_kcat_produce(boot, "t3", 0, 10000, 0);
    sl_pipeline_free(p);
    p = new_pipeline(100, 300); /* batches of 100; a stop drains for 300 ms at most */
    struct sl_stage *src;
    struct t_kmsgs *r = build("g2", "", "hold_after: 20", &src);
    r->on_write = note_acked;
    struct checker c = {.r = r};
    pthread_t th;
    pthread_create(&th, NULL, check_commits, &c);
    int rc = run(); /* the held batches never drain: the stop gives up on them */
    pthread_join(th, NULL);
    cr_assert_eq(rc, SL_ESTOPPED, "rc %d", rc);
    cr_assert_eq(c.ahead[0], '\0', "%s", c.ahead);
    cr_assert(c.reached, "committed %lld %lld %lld, acknowledged %lld %lld %lld",
              (long long)c.final[0], (long long)c.final[1], (long long)c.final[2],
              (long long)expect[0], (long long)expect[1], (long long)expect[2]);
    cr_assert_eq(expect[0] + expect[1] + expect[2], 20 * 100);
    struct sl__ksrc *ks = sl_stage_state(src);
    cr_assert_gt(ks->pauses, 0, "the full pipeline paused the partitions");

    /* The same group again: exactly the messages after the committed offsets. */
    sl_pipeline_free(p);
    p = new_pipeline(0, 0);
    r = build("g2", "until_end: true", NULL, NULL);
    cr_assert_eq(run(), 0);
    int64_t hw[3], from[3] = {expect[0], expect[1], expect[2]};
    t_watermarks(boot, "t3", 3, hw);
    assert_partitions(r, from, hw);
}

/* ---- a broker down mid-run ------------------------------------------------------------------ */

struct outage {
    bool down, up;       /* steps taken */
    struct event *timer; /* brings the broker back */
    pthread_t producer;  /* produces the second half once it is back */
};
static struct outage out;

static void *produce_second_half(void *arg)
{
    (void)arg;
    t_kcat_produce(boot, "t3", 1000, 2000, 0);
    return NULL;
}

static void broker_up(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    rd_kafka_mock_broker_set_up(sl__kafka_mock_cluster(mock), 1);
    out.up = true;
    pthread_create(&out.producer, NULL, produce_second_half, NULL);
}

/* t_kmsgs hook: once the first half is in, the broker goes down for 2 s. */
static void outage_step(struct sl_stage *s, struct t_kmsgs *r, struct sl_batch *b)
{
    (void)s, (void)b;
    if (out.down || r->n < 1000) return;
    out.down = true;
    rd_kafka_mock_broker_set_down(sl__kafka_mock_cluster(mock), 1);
    out.timer = evtimer_new(sl_pipeline_event_base(p), broker_up, NULL);
    struct timeval tv = {2, 0};
    evtimer_add(out.timer, &tv);
}

Test(kafka_source, a_broker_down_mid_run_is_logged_by_name_and_waited_out_nothing_lost)
{
    t_kcat_produce(boot, "t3", 0, 1000, 0);
    struct sl_stage *src;
    struct t_kmsgs *r = build("g3", "", "stop_at: 2000", &src);
    r->on_write = outage_step;
    cr_assert_eq(run(), 0);
    pthread_join(out.producer, NULL);
    event_free(out.timer);
    cr_assert(out.down && out.up);
    int64_t hw[3], from[3] = {0, 0, 0};
    t_watermarks(boot, "t3", 3, hw);
    /* Nothing lost; a repeat is allowed (at least once): when the outage outlasts the
     * group's session on a slow run, the group rejoins from the committed offsets. */
    size_t repeats = assert_partitions_at_least_once(r, from, hw);
    cr_assert_eq(r->n, 2000 + repeats);
    struct sl__ksrc *ks = sl_stage_state(src);
    cr_assert_gt(ks->broker_errors, 0);
    char addr[64];
    snprintf(addr, sizeof addr, "warn src: kafka: %.*s", (int)strcspn(boot, ","), boot);
    cr_assert_not_null(strstr(t_log_text, addr), "no warning naming %s in:\n%s", boot, t_log_text);
}

/* ---- a payload parse_json rejects ------------------------------------------------------------ */

Test(kafka_source, a_payload_parse_json_rejects_goes_to_its_dead_letter)
{
    t_kcat_lines(boot, "t3", "{\"n\":0}\nnot json\n{\"n\":2}\n");
    char yaml[512];
    snprintf(yaml, sizeof yaml, "brokers: \"%s\"\ngroup: g4\ntopics: [t3]\nuntil_end: true\n",
             boot);
    struct sl_stage *src = t_add(p, "src", &sl_stage_kafka_source, yaml);
    struct sl_stage *parse = t_add(p, "parse", &sl_stage_parse_json, "on_error: dead_letter");
    struct sl_stage *good = t_add(p, "good", &t_kmsgs, NULL);
    struct sl_stage *bad = t_add(p, "bad", &t_kmsgs, NULL);
    t_connect(p, src, parse);
    t_connect(p, parse, good);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_connect(p, parse, "dead_letter", bad, &err), 0, "%s", err.msg);
    cr_assert_eq(run(), 0);
    struct t_kmsgs *g = sl_stage_state(good), *d = sl_stage_state(bad);
    cr_assert_eq(g->n, 2);
    cr_assert_eq(g->m[0].n + g->m[1].n, 2);
    cr_assert_eq(d->n, 1);
    cr_assert_str_eq(d->m[0].payload, "not json");
    cr_assert_not_null(strstr(d->m[0].fields, "\"message\":\"not json\""), "%s", d->m[0].fields);
    cr_assert_not_null(strstr(d->m[0].fields, "\"error\":"), "%s", d->m[0].fields);
    cr_assert_str_eq(d->m[0].origin, "t3");
}

/* ---- config errors ------------------------------------------------------------------------------
 */

static const char *add_error(const char *yaml)
{
    static struct sl_error err;
    memset(&err, 0, sizeof err);
    struct sl_config *cfg = t_config(yaml);
    struct sl_stage *s = sl_pipeline_add(p, "src", &sl_stage_kafka_source, cfg, &err);
    sl_config_free(cfg);
    cr_assert_null(s, "accepted: %s", yaml);
    return err.msg;
}

Test(kafka_source, an_empty_group_a_bad_mock_count_and_a_refused_property_are_config_errors)
{
    cr_assert_not_null(strstr(add_error("brokers: mock\ngroup: \"\"\ntopics: [t]"), "'group'"));
    cr_assert_not_null(strstr(add_error("brokers: mock:0\ngroup: g\ntopics: [t]"), "mock:N"));
    const char *m = add_error("brokers: mock\ngroup: g\ntopics: [t]\n"
                              "librdkafka: {fetch.max.bytes: lots}");
    cr_assert_not_null(strstr(m, "fetch.max.bytes"), "%s", m);
    cr_assert_not_null(strstr(add_error("brokers: mock\ngroup: g\ntopics: []"), "'topics'"));
}
