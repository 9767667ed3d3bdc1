/* The Kafka connectors' client code (connectors/kafka/client.h): configs whose refused
 * entries name the key, the pipeline's shared mock cluster, and librdkafka queues joined
 * to the loop, which wake it through their descriptor with no timer armed. A real mock
 * cluster on loopback. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "../connectors/kafka/client.h"
#include "helpers.h"
#include "helpers_file.h"

static struct event_base *base;
static struct sl_pipeline *p;
static struct sl_stage *probe;
static pthread_t loop_thread;
static int logs_off_loop; /* log lines told on another thread than the loop's */

static void log_line(void *arg, enum sl_log_level level, const char *stage, const char *msg)
{
    if (!pthread_equal(pthread_self(), loop_thread)) logs_off_loop++;
    t_log_capture(arg, level, stage, msg);
}

/* A stage to hang clients on: it is never run, only added (init), so its pipeline gives
 * it a loop and a place to share objects. */
static enum sl_poll probe_write(struct sl_stage *s, struct sl_batch *b)
{
    (void)s;
    sl_ack(b);
    return SL_READY;
}

static const struct sl_stage_type t_probe = {.abi = SL_STAGE_ABI,
                                             .name = "t_probe",
                                             .kind = SL_SINK,
                                             .doc = "a stage",
                                             .write = probe_write};

static void setup(void)
{
    loop_thread = pthread_self();
    logs_off_loop = 0;
    t_log_clear();
    base = event_base_new();
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.log = log_line;
    struct sl_error err = {0};
    p = sl_pipeline_new(base, &o, &err);
    cr_assert_not_null(p, "%s", err.msg);
    probe = t_add(p, "probe", &t_probe, NULL);
}

static void teardown(void)
{
    sl_pipeline_free(p);
    event_base_free(base);
    t_log_clear();
}

TestSuite(kafka_client, .init = setup, .fini = teardown, .timeout = 60);

/* ---- configs ----------------------------------------------------------------------------- */

static int check(const char *yaml, struct sl_error *err)
{
    struct sl_config *cfg = t_config(yaml);
    int rc = sl__kafka_conf_check(sl_config_get(cfg, "librdkafka"), NULL, err);
    sl_config_free(cfg);
    return rc;
}

Test(kafka_client, an_unknown_property_is_a_config_error_naming_the_key_at_its_line)
{
    struct sl_error err = {0};
    cr_assert_eq(check("librdkafka:\n  linger.ms: 5\n  no.such.thing: 1\n", &err), SL_ECONFIG);
    cr_assert_eq(err.line, 3, "line %d", err.line);
    cr_assert_eq(err.col, 3, "col %d", err.col);
    cr_assert_str_eq(err.msg, "librdkafka: no.such.thing: '1' refused: No such configuration "
                              "property: \"no.such.thing\"");
}

Test(kafka_client, a_refused_value_names_the_key_and_the_value)
{
    struct sl_error err = {0};
    cr_assert_eq(check("librdkafka: {acks: sometimes}", &err), SL_ECONFIG);
    cr_assert(strstr(err.msg, "librdkafka: acks: 'sometimes' refused: Invalid value"), "%s",
              err.msg);
}

Test(kafka_client, nested_mappings_are_dotted_names_and_lists_are_refused)
{
    struct sl_error err = {0};
    cr_assert_eq(check("librdkafka: {socket: {timeout.ms: 1000}, linger: {ms: 2}}", &err), 0, "%s",
                 err.msg);
    cr_assert_eq(check("librdkafka: {socket: {timeout.ms: [1, 2]}}", &err), SL_ECONFIG);
    cr_assert(strstr(err.msg, "socket.timeout.ms: expected a value"), "%s", err.msg);
    cr_assert_eq(check("librdkafka: [a]", &err), SL_ECONFIG);
    cr_assert(strstr(err.msg, "expected a mapping"), "%s", err.msg);
}

Test(kafka_client, brokers_name_a_list_or_a_mock_cluster_of_n_brokers)
{
    struct sl_error err = {0};
    cr_assert_eq(sl__kafka_brokers_parse("a:9092,b:9092", NULL, &err), 0);
    cr_assert_eq(sl__kafka_brokers_parse("mock", NULL, &err), 1);
    cr_assert_eq(sl__kafka_brokers_parse("mock:3", NULL, &err), 3);
    cr_assert_eq(sl__kafka_brokers_parse("mockingbird:9092", NULL, &err), 0);
    cr_assert_eq(sl__kafka_brokers_parse("mock:0", NULL, &err), SL_ECONFIG);
    cr_assert_eq(sl__kafka_brokers_parse("mock:x", NULL, &err), SL_ECONFIG);
    cr_assert_eq(sl__kafka_brokers_parse("mock:65", NULL, &err), SL_ECONFIG);
    cr_assert_str_eq(err.msg, "brokers 'mock:65': mock:N takes a number of brokers from 1 to 64");
    cr_assert_eq(sl__kafka_brokers_parse("", NULL, &err), SL_ECONFIG);
}

/* ---- the mock cluster ------------------------------------------------------------------------ */

static int count_char(const char *s, char c)
{
    int n = 0;
    for (; *s; s++) n += *s == c;
    return n;
}

Test(kafka_client, one_mock_cluster_per_pipeline_and_broker_count_its_address_logged)
{
    struct sl_error err = {0};
    struct sl__kafka_mock *a = sl__kafka_stage_mock(probe, 2, &err);
    cr_assert_not_null(a, "%s", err.msg);
    struct sl_stage *other = t_add(p, "other", &t_probe, NULL);
    cr_assert_eq(sl__kafka_stage_mock(other, 2, &err), a, "the second stage shares the cluster");
    struct sl__kafka_mock *one = sl__kafka_stage_mock(other, 1, &err);
    cr_assert(one && one != a);
    const char *boot = sl__kafka_mock_bootstraps(a);
    cr_assert_eq(count_char(boot, ','), 1, "two brokers: %s", boot);
    char want[300];
    snprintf(want, sizeof want, "info probe: mock Kafka cluster of 2 brokers at %s\n", boot);
    cr_assert(strstr(t_log_text, want), "%s", t_log_text);
    cr_assert_eq(count_char(t_log_text, '\n'), 2, "each cluster logged once: %s", t_log_text);
}

/* ---- a queue on the loop ------------------------------------------------------------------------
 */

struct drained {
    struct sl__kafka_client *c;
    rd_kafka_queue_t *q;
    int runs;       /* ready() calls */
    int reports;    /* delivery reports */
    int report_err; /* the last one's error */
    char value[32]; /* the last one's value */
};

static void drain(struct sl_stage *stage, void *arg)
{
    (void)stage;
    struct drained *d = arg;
    d->runs++;
    rd_kafka_event_t *ev;
    while ((ev = rd_kafka_queue_poll(d->q, 0))) {
        const rd_kafka_message_t *m;
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_DR) {
            while ((m = rd_kafka_event_message_next(ev))) {
                d->reports++;
                d->report_err = m->err;
                snprintf(d->value, sizeof d->value, "%.*s", (int)m->len, (const char *)m->payload);
            }
        } else {
            sl__kafka_client_event(d->c, ev);
        }
        rd_kafka_event_destroy(ev);
    }
}

static int timers_armed(const struct event_base *b, const struct event *ev, void *arg)
{
    (void)b;
    if (event_pending(ev, EV_TIMEOUT, NULL)) (*(int *)arg)++;
    return 0;
}

/* Runs the loop one wake-up at a time, until `*what` reaches `want`: every turn the loop
 * sleeps in the kernel with no timer armed, so only a descriptor can wake it. The
 * suite's timeout ends a test whose descriptor never fires. */
static void loop_until(const int *what, int want)
{
    while (*what < want) {
        int timers = 0;
        event_base_foreach_event(base, timers_armed, &timers);
        cr_assert_eq(timers, 0, "a timer is armed");
        cr_assert_eq(event_base_loop(base, EVLOOP_ONCE), 0);
    }
}

static void open_producer(struct sl__kafka_client *c, const char *brokers, struct drained *d)
{
    struct sl_error err = {0};
    const char *defaults[] = {"linger.ms", "0", NULL};
    rd_kafka_conf_t *conf = sl__kafka_conf(probe, brokers, NULL, defaults, &err);
    cr_assert_not_null(conf, "%s", err.msg);
    rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR);
    cr_assert_eq(sl__kafka_client_open(c, probe, RD_KAFKA_PRODUCER, conf, &err), 0, "%s", err.msg);
    *d = (struct drained){.c = c, .q = rd_kafka_queue_get_main(c->rk)};
}

Test(kafka_client, a_delivery_report_wakes_the_loop_through_the_queue_descriptor)
{
    struct sl__kafka_client c;
    struct drained d;
    open_producer(&c, "mock", &d);
    struct sl_error err = {0};
    struct sl__kafka_watch *w = sl__kafka_watch_new(probe, d.q, drain, &d, &err);
    cr_assert_not_null(w, "%s", err.msg);
    cr_assert_eq(rd_kafka_producev(c.rk, RD_KAFKA_V_TOPIC("t"), RD_KAFKA_V_VALUE("hello", 5),
                                   RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                 0);
    loop_until(&d.reports, 1);
    cr_assert_eq(d.report_err, 0, "%s", rd_kafka_err2str(d.report_err));
    cr_assert_str_eq(d.value, "hello");
    cr_assert_eq(rd_kafka_outq_len(c.rk), 0);
    sl__kafka_watch_free(w);
    rd_kafka_queue_destroy(d.q);
    sl__kafka_client_close(&c);
    cr_assert_eq(logs_off_loop, 0, "log lines told off the loop thread");
}

Test(kafka_client, a_broker_that_refuses_is_logged_by_name_and_counted_on_the_loop)
{
    struct sl__kafka_client c;
    struct drained d;
    open_producer(&c, "127.0.0.1:1", &d); /* nothing listens on port 1 */
    struct sl_error err = {0};
    struct sl__kafka_watch *w = sl__kafka_watch_new(probe, d.q, drain, &d, &err);
    cr_assert_not_null(w, "%s", err.msg);
    const char *want = "probe: kafka: 127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed";
    while (!t_log_text || !strstr(t_log_text, want)) loop_until(&d.runs, d.runs + 1);
    cr_assert_geq(c.errors, 1);
    cr_assert_eq(d.reports, 0);
    sl__kafka_watch_free(w);
    rd_kafka_queue_destroy(d.q);
    sl__kafka_client_close(&c);
    cr_assert_eq(logs_off_loop, 0, "log lines told off the loop thread");
}

Test(kafka_client, a_watch_announces_what_was_queued_before_it)
{
    struct sl__kafka_client c;
    struct drained d;
    open_producer(&c, "mock", &d);
    cr_assert_eq(rd_kafka_producev(c.rk, RD_KAFKA_V_TOPIC("t"), RD_KAFKA_V_VALUE("early", 5),
                                   RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                 0);
    /* the report waits in the queue, no one watching it yet */
    for (int i = 0; i < 10000 && rd_kafka_queue_length(d.q) == 0; i++) usleep(1000);
    cr_assert_eq(rd_kafka_queue_length(d.q), 1, "the report is queued");
    struct sl_error err = {0};
    struct sl__kafka_watch *w = sl__kafka_watch_new(probe, d.q, drain, &d, &err);
    cr_assert_not_null(w);
    loop_until(&d.reports, 1);
    cr_assert_str_eq(d.value, "early");
    sl__kafka_watch_free(w);
    rd_kafka_queue_destroy(d.q);
    sl__kafka_client_close(&c);
}
