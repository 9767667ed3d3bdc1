/* The kafka sink: what lands in the topics (values, keys, headers, topics from a
 * template), read back with kcat, an independent client; nothing acknowledged while the
 * brokers are down; messages Kafka will never take going to on_error; config mistakes.
 * The pipeline's own mock cluster, the Kafka protocol on loopback. (kill -9 of a run:
 * test_kafka_crash.c.) */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <sluice/builtins.h>

#include "../connectors/kafka/sink.h"
#include "helpers.h"
#include "helpers_file.h"
#include "helpers_kafka.h"
#include "stage_helpers.h"

static struct sl_pipeline *p;

static void setup(void)
{
    t_log_clear();
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.log = t_log_capture;
    struct sl_error err = {0};
    p = sl_pipeline_new(NULL, &o, &err);
    cr_assert_not_null(p, "%s", err.msg);
}

static void teardown(void)
{
    sl_pipeline_free(p);
    t_log_clear();
}

TestSuite(kafka_sink, .init = setup, .fini = teardown, .timeout = 90);

/* counter(count) -> out (kafka, yaml); returns the sink. */
static struct sl_stage *counter_to_kafka(int count, const char *yaml)
{
    char opts[64];
    snprintf(opts, sizeof opts, "count: %d\nbatch: 100", count);
    struct sl_stage *src = t_add(p, "src", &t_counter, opts);
    struct sl_stage *out = t_add(p, "out", &sl_stage_kafka_sink, yaml);
    t_connect(p, src, out);
    return out;
}

static void run_ok(void)
{
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "%s (%s)\n%s", err.msg, err.stage, t_log_text);
    cr_assert_eq(sl_pipeline_live_batches(p), 0);
}

/* ---- what lands ------------------------------------------------------------------------------ */

/* Checks the kcat lines of topic nums-<parity>: "partition\tkey\theaders\tvalue", the
 * value n of parity `parity`, key "k<n>", headers n and parity; within a partition the
 * numbers rise (produced in order). Marks each n in `seen`. Returns the line count. */
static int check_numbers(const char *boot, int parity, char *seen, int count)
{
    char topic[16];
    snprintf(topic, sizeof topic, "nums-%d", parity);
    char *text = t_kcat(boot, topic, "%p\\t%k\\t%h\\t%s\\n");
    int lines = 0, last[64];
    for (int i = 0; i < 64; i++) last[i] = -1;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        int part, n, hn, hp;
        char key[32], want[64];
        cr_assert_eq(sscanf(l, "%d\t%31s\tn=%d,parity=%d\t%d", &part, key, &hn, &hp, &n), 5,
                     "line '%s'", l);
        snprintf(want, sizeof want, "%d\tk%d\tn=%d,parity=%d\t%d", part, n, n, n % 2, n);
        cr_assert_str_eq(l, want);
        cr_assert_eq(n % 2, parity, "%d in topic %s", n, topic);
        cr_assert(n >= 0 && n < count && !seen[n], "%d out of range or twice", n);
        cr_assert(part >= 0 && part < 64 && n > last[part], "partition %d out of order", part);
        last[part] = n;
        seen[n] = 1;
        lines++;
    }
    free(text);
    return lines;
}

Test(kafka_sink, ten_thousand_events_reach_two_topics_by_template_with_keys_and_headers)
{
    enum { N = 10000 };
    struct sl_stage *out =
        counter_to_kafka(N, "brokers: mock\ntopic: 'nums-{{ n % 2 }}'\nkey: 'concat(\"k\", n)'\n"
                            "headers: {n: n, parity: 'n % 2'}\nencoding: text\n");
    run_ok();
    struct sl_stage_stats st = t_stats(out);
    cr_assert_eq(st.acked, N);
    cr_assert_eq(t_stats(sl_pipeline_find(p, "src")).acked, N);
    const char *boot = t_mock_bootstraps(out, 1);
    cr_assert_not_null(boot);
    char *seen = calloc(N, 1);
    cr_assert_eq(check_numbers(boot, 0, seen, N), N / 2);
    cr_assert_eq(check_numbers(boot, 1, seen, N), N / 2);
    free(seen);
    char want[200];
    snprintf(want, sizeof want, "info out: mock Kafka cluster of 1 broker at %s\n", boot);
    cr_assert(strstr(t_log_text, want), "%s", t_log_text);
}

Test(kafka_sink, values_are_the_events_json_form_and_a_null_header_is_left_out)
{
    const char *lines[] = {"{\"a\":1}", "plain \"line\"", NULL};
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, "on_error: drop");
    struct sl_stage *out = t_stage(p, "out", &sl_stage_kafka_sink,
                                   "brokers: mock\ntopic: j\nheaders: {missing: nope, a: a}\n");
    struct sl_stage *raw = t_stage(p, "raw", &sl_stage_kafka_sink, "brokers: mock\ntopic: r\n");
    t_connect(p, src, json);
    t_connect(p, json, out);
    t_connect(p, src, raw);
    run_ok();
    const char *boot = t_mock_bootstraps(out, 1);
    char *j = t_kcat(boot, "j", "[%k][%h][%s]\\n");
    cr_assert_str_eq(j, "[][a=1][{\"a\":1}]\n");
    free(j);
    char *r = t_kcat(boot, "r", "[%k][%h][%s]\\n"), *sorted = t_sorted_lines(r);
    cr_assert_str_eq(sorted, "[][][{\"message\":\"plain \\\"line\\\"\"}]\n"
                             "[][][{\"message\":\"{\\\"a\\\":1}\"}]\n");
    free(r), free(sorted);
}

Test(kafka_sink, a_full_librdkafka_queue_holds_the_batch_until_reports_make_room)
{
    enum { N = 3000 };
    struct sl_stage *out =
        counter_to_kafka(N, "brokers: mock\ntopic: 'nums-{{ n % 2 }}'\nkey: 'concat(\"k\", n)'\n"
                            "headers: {n: n, parity: 'n % 2'}\nencoding: text\n"
                            "librdkafka: {queue.buffering.max.messages: 30}\n");
    run_ok();
    struct sl__kafka_sink *k = sl_stage_state(out);
    cr_assert_gt(k->stalls, 0, "the queue was never full");
    cr_assert_eq(t_stats(out).acked, N);
    const char *boot = t_mock_bootstraps(out, 1);
    char *seen = calloc(N, 1);
    cr_assert_eq(check_numbers(boot, 0, seen, N), N / 2);
    cr_assert_eq(check_numbers(boot, 1, seen, N), N / 2);
    free(seen);
}

/* ---- nothing acknowledged on enqueue ----------------------------------------------------------
 */

struct outage {
    struct sl_stage *src, *out;
    rd_kafka_mock_cluster_t *mc;
    struct event *tick;
    int count;
    bool down_seen;            /* every message waited in librdkafka's queue, brokers down */
    uint64_t acked_while_down; /* sink and source acks seen then */
};

/* Every 10 ms while the broker is down: once the sink has taken every event and they all
 * wait in librdkafka's queue, the acks are looked at, and the broker comes back. */
static void outage_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct outage *o = arg;
    struct sl__kafka_sink *k = sl_stage_state(o->out);
    if (o->down_seen) return;
    if (t_stats(o->out).events_in < (uint64_t)o->count || rd_kafka_outq_len(k->c.rk) < o->count) {
        struct timeval tv = {0, 10000};
        event_add(o->tick, &tv);
        return;
    }
    o->down_seen = true;
    o->acked_while_down = t_stats(o->out).acked + t_stats(o->src).acked;
    rd_kafka_mock_broker_set_up(o->mc, 1);
}

/* sl_stage_counters: the value of counter kafka_broker_errors into *arg. */
static void own_counter(void *arg, const char *name, const char *help, uint64_t value)
{
    (void)help;
    if (!strcmp(name, "kafka_broker_errors")) *(uint64_t *)arg = value;
}

Test(kafka_sink, nothing_is_acknowledged_while_the_messages_wait_for_a_broker)
{
    struct outage o = {.count = 3000};
    o.out = counter_to_kafka(o.count, "brokers: mock\ntopic: t\nencoding: text\n"
                                      "librdkafka: {reconnect.backoff.max.ms: 200}\n");
    o.src = sl_pipeline_find(p, "src");
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_start(p, &err), 0, "%s", err.msg);
    struct sl__kafka_mock *m = sl_stage_shared(o.out, "kafka-mock:1");
    cr_assert_not_null(m);
    o.mc = sl__kafka_mock_cluster(m);
    cr_assert_eq(rd_kafka_mock_broker_set_down(o.mc, 1), 0);
    o.tick = event_new(sl_pipeline_event_base(p), -1, 0, outage_tick, &o);
    struct timeval tv = {0, 10000};
    event_add(o.tick, &tv);
    run_ok();
    event_free(o.tick);
    cr_assert(o.down_seen, "the messages never all waited in the queue");
    cr_assert_eq(o.acked_while_down, 0, "acknowledged before delivery");
    cr_assert_eq(t_stats(o.out).acked, (uint64_t)o.count);
    cr_assert_eq(t_stats(o.src).acked, (uint64_t)o.count);
    uint64_t broker_errors = 0;
    sl_stage_counters(o.out, own_counter, &broker_errors);
    cr_assert_gt(broker_errors, 0, "the outage is counted in /metrics (kafka_broker_errors)");
    char *text = t_kcat(t_mock_bootstraps(o.out, 1), "t", "%s\\n");
    char *got = t_sorted_lines(text);
    char *wtext = malloc((size_t)o.count * 8);
    for (int i = 0, n = 0; i < o.count; i++) n += sprintf(wtext + n, "%d\n", i);
    char *sorted = t_sorted_lines(wtext);
    cr_assert_str_eq(got, sorted, "every number once");
    free(wtext), free(sorted), free(got), free(text);
}

/* ---- messages Kafka will never take ------------------------------------------------------------
 */

static char big[20001];

/* small-1, a 20000-byte line, small-2 -> out (kafka, message.max.bytes 10000, `extra`).
 * Returns the run's code; `err` says why it failed. */
static int run_big(const char *extra, struct sl_error *err)
{
    memset(big, 'x', 20000);
    static const char *lines[4];
    lines[0] = "small-1", lines[1] = big, lines[2] = "small-2", lines[3] = NULL;
    struct sl_stage *src = t_add_lines(p, lines);
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "brokers: mock\ntopic: t\nencoding: text\nlibrdkafka: {message.max.bytes: 10000}\n%s",
             extra);
    struct sl_stage *out = t_stage(p, "out", &sl_stage_kafka_sink, yaml);
    t_connect(p, src, out);
    return sl_pipeline_run(p, err);
}

Test(kafka_sink, a_message_over_message_max_bytes_is_dropped_and_counted)
{
    struct sl_error err = {0};
    cr_assert_eq(run_big("on_error: drop\n", &err), 0, "%s", err.msg);
    struct sl_stage *out = sl_pipeline_find(p, "out");
    struct sl_stage_stats st = t_stats(out);
    cr_assert_eq(st.dropped, 1);
    cr_assert_eq(st.errors, 1);
    cr_assert_eq(st.acked, 3, "the batch is acknowledged, the refused message handled");
    char *text = t_kcat(t_mock_bootstraps(out, 1), "t", "%s\\n"), *sorted = t_sorted_lines(text);
    cr_assert_str_eq(sorted, "small-1\nsmall-2\n");
    free(text), free(sorted);
    cr_assert(strstr(t_log_text, "warn out: a message Kafka will not take: topic t: Broker: "
                                 "Message size too large (MSG_SIZE_TOO_LARGE); dropped"),
              "%s", t_log_text);
}

/* A topic template whose {{ }} is null (a field the event lacks) would send the message
 * to a wrong topic ("logs-"): it is refused like a topic Kafka cannot have. */
Test(kafka_sink, a_topic_whose_field_is_missing_goes_to_on_error)
{
    const char *lines[] = {"{\"svc\":\"api\",\"n\":1}", "{\"n\":2}", "{\"svc\":\"db\",\"n\":3}",
                           NULL};
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, NULL);
    struct sl_stage *out = t_stage(p, "out", &sl_stage_kafka_sink,
                                   "brokers: mock\ntopic: 'logs-{{ svc }}'\nencoding: text\n"
                                   "on_error: dead_letter\ndead_letter_topic: refused\n");
    t_connect(p, src, json);
    t_connect(p, json, out);
    run_ok();
    const char *boot = t_mock_bootstraps(out, 1);
    char *api = t_kcat(boot, "logs-api", "%s\\n"), *db = t_kcat(boot, "logs-db", "%s\\n");
    cr_assert_str_eq(api, "{\"svc\":\"api\",\"n\":1}\n");
    cr_assert_str_eq(db, "{\"svc\":\"db\",\"n\":3}\n");
    char *dead = t_kcat(boot, "refused", "%h|%s\\n");
    cr_assert_str_eq(dead, "sluice.error=topic (a {{ }} of the topic is null): Local: Invalid "
                           "argument or configuration (_INVALID_ARG),sluice.topic=(a {{ }} of "
                           "the topic is null)|{\"n\":2}\n");
    free(api), free(db), free(dead);
    cr_assert_eq(t_stats(out).errors, 1);
    cr_assert_eq(t_stats(out).acked, 3);
}

/* The same field missing from every event, with on_error: drop: nothing was produced,
 * and the run fails at the end rather than exit 0 (a typo in the template). */
Test(kafka_sink, a_run_whose_every_topic_is_null_fails)
{
    const char *lines[] = {"{\"n\":1}", "{\"n\":2}", NULL};
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, NULL);
    struct sl_stage *out = t_stage(p, "out", &sl_stage_kafka_sink,
                                   "brokers: mock\ntopic: 'logs-{{ svc }}'\non_error: drop\n");
    t_connect(p, src, json);
    t_connect(p, json, out);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), SL_EINVAL);
    cr_assert_str_eq(err.stage, "out");
    cr_assert_str_eq(err.msg, "no message was produced: the topic of each of the 2 events had a "
                              "null {{ }} (a field none of them has: a typo in the template?)");
    cr_assert_eq(t_stats(out).errors, 2);
}

Test(kafka_sink, a_message_over_message_max_bytes_fails_the_run_with_on_error_fail)
{
    struct sl_error err = {0};
    cr_assert_eq(run_big("", &err), SL_EIO, "%s", err.msg);
    cr_assert_str_eq(err.stage, "out");
    cr_assert_str_eq(err.msg, "a message Kafka will not take: topic t: Broker: Message size too "
                              "large (MSG_SIZE_TOO_LARGE) (on_error: fail)");
    cr_assert_eq(t_stats(sl_pipeline_find(p, "src")).acked, 0, "nothing of the batch acked");
}

Test(kafka_sink, a_dead_letter_keeps_the_reason_and_the_head_of_a_too_large_value)
{
    struct sl_error err = {0};
    cr_assert_eq(run_big("on_error: dead_letter\ndead_letter_topic: refused\n", &err), 0, "%s",
                 err.msg);
    struct sl_stage *out = sl_pipeline_find(p, "out");
    const char *boot = t_mock_bootstraps(out, 1);
    char *text = t_kcat(boot, "t", "%s\\n"), *sorted = t_sorted_lines(text);
    cr_assert_str_eq(sorted, "small-1\nsmall-2\n");
    free(text), free(sorted);
    char *dead = t_kcat(boot, "refused", "%h|%S\\n");
    cr_assert_str_eq(dead, "sluice.error=topic t: Broker: Message size too large "
                           "(MSG_SIZE_TOO_LARGE),sluice.topic=t,sluice.size=20000|1024\n");
    free(dead);
    cr_assert_eq(t_stats(out).errors, 1);
    cr_assert_eq(t_stats(out).dropped, 0);
}

Test(kafka_sink, dead_letters_that_meet_a_full_queue_wait_for_room_and_are_counted_once)
{
    enum { N = 40 }; /* small-0, big, small-2, big, ...: 20 of each */
    memset(big, 'x', 20000);
    static const char *lines[N + 1];
    static char small[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(small[i], sizeof small[i], "small-%02d", i);
        lines[i] = i % 2 ? big : small[i];
    }
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *out = t_stage(p, "out", &sl_stage_kafka_sink,
                                   "brokers: mock\ntopic: t\nencoding: text\n"
                                   "on_error: dead_letter\ndead_letter_topic: refused\n"
                                   "librdkafka: {message.max.bytes: 10000, "
                                   "queue.buffering.max.messages: 2}\n");
    t_connect(p, src, out);
    run_ok();
    struct sl_stage_stats st = t_stats(out);
    cr_assert_eq(st.acked, N);
    cr_assert_eq(st.errors, N / 2, "each refused message counted once, not once a try");
    const char *boot = t_mock_bootstraps(out, 1);
    char *text = t_kcat(boot, "t", "%s\\n"), *sorted = t_sorted_lines(text);
    char want[N * 16] = "";
    for (int i = 0; i < N; i += 2) strcat(strcat(want, small[i]), "\n");
    cr_assert_str_eq(sorted, want);
    char *dead = t_kcat(boot, "refused", "%S\\n");
    size_t n = 0;
    for (const char *c = dead; *c; c++) n += *c == '\n';
    cr_assert_eq(n, N / 2, "%zu dead letters", n);
    free(text), free(sorted), free(dead);
}

Test(kafka_sink, messages_the_broker_refuses_go_to_the_dead_letter_topic_from_their_report)
{
    enum { N = 200 };
    struct sl_stage *out = counter_to_kafka(N, "brokers: mock\ntopic: t\nencoding: text\n"
                                               "on_error: dead_letter\n");
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_start(p, &err), 0, "%s", err.msg);
    struct sl__kafka_mock *m = sl_stage_shared(out, "kafka-mock:1");
    rd_kafka_mock_push_request_errors(sl__kafka_mock_cluster(m), 0 /* Produce */, 1,
                                      RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
    run_ok();
    struct sl_stage_stats st = t_stats(out);
    cr_assert_eq(st.acked, N);
    const char *boot = t_mock_bootstraps(out, 1);
    char *text = t_kcat(boot, "t", "%s\\n"), *dead = t_kcat(boot, "out.dead_letter", "%s\\n");
    size_t cap = strlen(text) + strlen(dead) + 1;
    char *both = malloc(cap), *wtext = malloc(N * 8);
    snprintf(both, cap, "%s%s", text, dead);
    for (int i = 0, n = 0; i < N; i++) n += sprintf(wtext + n, "%d\n", i);
    char *got = t_sorted_lines(both), *want = t_sorted_lines(wtext);
    cr_assert_str_eq(got, want, "every message once, in the topic or as a dead letter");
    size_t ndead = 0;
    for (const char *c = dead; *c; c++) ndead += *c == '\n';
    cr_assert_gt(ndead, 0, "the refused request's messages are dead letters");
    cr_assert_eq(st.errors, ndead);
    free(text), free(dead), free(both), free(wtext), free(got), free(want);
}

/* ---- config ---------------------------------------------------------------------------------- */

static const char *add_error(const char *yaml)
{
    static struct sl_error err;
    memset(&err, 0, sizeof err);
    struct sl_config *cfg = t_config(yaml);
    struct sl_stage *s = sl_pipeline_add(p, "out", &sl_stage_kafka_sink, cfg, &err);
    sl_config_free(cfg);
    cr_assert_null(s, "accepted: %s", yaml);
    return err.msg;
}

Test(kafka_sink, config_mistakes_are_told_at_init)
{
    cr_assert_str_eq(add_error("brokers: a:1\ntopic: t\nlibrdkafka: {no.such.key: 1}"),
                     "librdkafka: no.such.key: '1' refused: No such configuration property: "
                     "\"no.such.key\"");
    cr_assert_str_eq(add_error("brokers: mock:0\ntopic: t"),
                     "brokers 'mock:0': mock:N takes a number of brokers from 1 to 64");
    cr_assert_str_eq(add_error("brokers: mock\ntopic: t\ntemplate: x"),
                     "template goes with encoding: text");
    cr_assert(strstr(add_error("brokers: mock\ntopic: t\nheaders: {h: 'a =='}"), "header 'h'"));
}
