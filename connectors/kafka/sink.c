/* The `kafka` sink: events to Kafka messages through librdkafka, each batch
 * acknowledged only once every message of it has a successful delivery report.
 *
 * write() produces a batch's events into librdkafka's queue, in order, on the loop
 * thread (sink_msg.c makes each message), and answers SL_READY: the batch stays with the
 * sink as a job until its reports are in. The reports come on the producer's main
 * queue, joined to the loop (client.h): each counts its message off its job, and a job
 * whose messages are all reported is acknowledged. Nothing is acknowledged on enqueue,
 * so a kill -9 while messages wait in librdkafka's memory loses nothing: the source
 * replays them.
 *
 * - librdkafka's queue full (queue.buffering.max.messages / .kbytes): the job keeps its
 *   place and write() answers SL_PENDING; reports make room, the job goes on, and the
 *   sink wakes the runtime once it is produced whole.
 * - Brokers down: message.timeout.ms is 0 (infinite) by default, so messages wait in
 *   the queue and librdkafka retries; the queue fills, the sink answers SL_PENDING, the
 *   sources wait. librdkafka's errors are logged naming the broker (client.c).
 * - A message Kafka will never take (too large, no such topic, not authorised) goes to
 *   on_error (sink_msg.c): dropped, a dead letter, or the run fails.
 * - Any other failed report (message.timeout.ms set and passed) fails the run: its batch
 *   is not acknowledged, a restart sends it again. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/builtins.h>

#include "sink.h"

/* ---- jobs ------------------------------------------------------------------------------------ */

static void unlink_job(struct sl__kafka_sink *k, struct sl__kafka_job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        k->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        k->tail = j->prev;
}

/* Acknowledges `j` when it is produced whole and every report is in. */
static void settle(struct sl__kafka_sink *k, struct sl__kafka_job *j)
{
    if (k->broken || j->next_ev < j->n || j->unreported > 0 || j == k->stalled) return;
    unlink_job(k, j);
    sl_ack(j->batch); /* every message delivered (or handled by on_error) */
    free(j);
}

/* Produces the job's events from where it stopped. Returns SL__KAFKA_QUEUED when all
 * are produced, SL__KAFKA_FULL or SL__KAFKA_BROKEN when it stopped. */
static enum sl__kafka_produced produce_job(struct sl__kafka_sink *k, struct sl__kafka_job *j)
{
    for (; j->next_ev < j->n; j->next_ev++) {
        enum sl__kafka_produced r = sl__kafka_produce(k, j, j->next_ev);
        if (r == SL__KAFKA_FULL || r == SL__KAFKA_BROKEN) return r;
    }
    return SL__KAFKA_QUEUED;
}

/* ---- delivery reports --------------------------------------------------------------------------
 */

static void report(struct sl__kafka_sink *k, const rd_kafka_message_t *m)
{
    uintptr_t op = (uintptr_t)m->_private;
    struct sl__kafka_job *j = (struct sl__kafka_job *)(op & ~(uintptr_t)1);
    bool dead = op & 1;
    const char *topic = rd_kafka_topic_name(m->rkt);
    j->unreported--;
    if (!m->err) {
        if (dead)
            k->dead_letters++;
        else
            k->delivered++;
    } else if (dead) {
        sl__kafka_sink_broken(k, "cannot write a dead letter to %s: %s", topic,
                              rd_kafka_err2str(m->err));
    } else if (sl__kafka_permanent(m->err)) {
        struct sl__kafka_msg msg = {
            .key = m->key, .klen = m->key_len, .val = m->payload, .vlen = m->len};
        snprintf(msg.topic, sizeof msg.topic, "%s", topic);
        rd_kafka_message_headers(m, &msg.h); /* borrowed: refused() copies what it keeps */
        if (sl__kafka_refused(k, j, &msg, m->err) == SL__KAFKA_FULL) /* no write to retry it */
            sl__kafka_sink_broken(k,
                                  "cannot write the dead letter of a message to %s: the "
                                  "queue is full",
                                  k->dl_topic);
    } else {
        sl__kafka_sink_broken(k,
                              "delivery to %s failed: %s (%s); its batch is not acknowledged "
                              "(a restart sends it again)",
                              topic, rd_kafka_err2str(m->err), rd_kafka_err2name(m->err));
    }
    settle(k, j);
}

/* The stalled job goes on with the room reports made; once whole, the runtime may send
 * the next batch. */
static void resume(struct sl__kafka_sink *k)
{
    struct sl__kafka_job *j = k->stalled;
    if (!j || k->broken) return;
    if (produce_job(k, j) != SL__KAFKA_QUEUED) return;
    k->stalled = NULL;
    settle(k, j);
    sl_stage_wake(k->stage);
}

static void drain_reports(struct sl_stage *stage, void *arg)
{
    (void)stage;
    struct sl__kafka_sink *k = arg;
    rd_kafka_event_t *ev;
    while ((ev = rd_kafka_queue_poll(k->dr_q, 0))) {
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_DR) {
            const rd_kafka_message_t *m;
            while ((m = rd_kafka_event_message_next(ev))) report(k, m);
        } else {
            sl__kafka_client_event(&k->c, ev);
        }
        rd_kafka_event_destroy(ev);
    }
    resume(k);
}

/* ---- the stage
 * ----------------------------------------------------------------------------------- */

static enum sl_poll sink_write(struct sl_stage *stage, struct sl_batch *b)
{
    struct sl__kafka_sink *k = sl_stage_state(stage);
    if (k->broken) return SL_ERROR; /* the reason is set; the runtime keeps the batch */
    struct sl__kafka_job *j = calloc(1, sizeof *j);
    if (!j) {
        sl_stage_error(stage, SL_ENOMEM, "out of memory");
        return SL_ERROR;
    }
    j->batch = b;
    j->n = sl_batch_count(b);
    j->prev = k->tail; /* taken: from here on the sink holds it (close() releases it) */
    if (k->tail)
        k->tail->next = j;
    else
        k->head = j;
    k->tail = j;
    enum sl__kafka_produced r = produce_job(k, j);
    if (r == SL__KAFKA_BROKEN) return SL_PENDING; /* the runtime fails the run next */
    if (r == SL__KAFKA_FULL) {
        k->stalled = j; /* reports make room: resume() */
        k->stalls++;
        return SL_PENDING;
    }
    settle(k, j);
    return SL_READY;
}

/* The end of the input: every batch is produced; the run ends once their reports are in
 * (the runtime waits for the acknowledgements). A run in which no message got a topic
 * (a template field none of the events has: a typo) and all were dropped fails rather
 * than end well (dead letters keep them: then it ends well). */
static int sink_flush(struct sl_stage *stage, struct sl_emit *out, bool end)
{
    (void)out, (void)end;
    struct sl__kafka_sink *k = sl_stage_state(stage);
    if (k->null_topics && !k->produced && k->on_error == SL__KAFKA_DROP)
        return sl_stage_error(stage, SL_EINVAL,
                              "no message was produced: the topic of each of the %llu events had "
                              "a null {{ }} (a field none of them has: a typo in the template?)",
                              (unsigned long long)k->null_topics);
    sl_stage_log(stage, SL_LOG_INFO,
                 "%llu messages produced, %llu delivered so far, %llu dropped, %llu dead "
                 "letters, %llu client errors",
                 (unsigned long long)k->produced, (unsigned long long)k->delivered,
                 (unsigned long long)k->dropped, (unsigned long long)k->dead_letters,
                 (unsigned long long)k->c.errors);
    return 0;
}

static int sink_init(struct sl_stage *stage, const struct sl_config *cfg, struct sl_error *err)
{
    struct sl__kafka_sink *k = sl_stage_state(stage);
    k->stage = stage;
    return sl__kafka_sink_config(k, cfg, err);
}

static int sink_start(struct sl_stage *stage, struct sl_error *err)
{
    struct sl__kafka_sink *k = sl_stage_state(stage);
    rd_kafka_conf_t *conf = sl__kafka_conf(stage, k->brokers, k->librdkafka, k->defaults, err);
    if (!conf) return err->code;
    rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR);
    int rc = sl__kafka_client_open(&k->c, stage, RD_KAFKA_PRODUCER, conf, err);
    if (rc) return rc;
    k->dr_q = rd_kafka_queue_get_main(k->c.rk);
    if (!(k->dr_watch = sl__kafka_watch_new(stage, k->dr_q, drain_reports, k, err)))
        return err->code;
    return 0;
}

static void sink_close(struct sl_stage *stage)
{
    struct sl__kafka_sink *k = sl_stage_state(stage);
    sl__kafka_watch_free(k->dr_watch);
    k->dr_watch = NULL;
    if (k->c.rk) /* held only when the run failed or was aborted: nothing waits for them */
        rd_kafka_purge(k->c.rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (size_t i = 0; i < k->ntopics; i++) rd_kafka_topic_destroy(k->topics[i]);
    k->ntopics = 0;
    if (k->dr_q) rd_kafka_queue_destroy(k->dr_q);
    k->dr_q = NULL;
    sl__kafka_client_close(&k->c);
    while (k->head) { /* released unacknowledged: a restart sends them again */
        struct sl__kafka_job *j = k->head;
        unlink_job(k, j);
        sl_batch_unref(j->batch);
        free(j);
    }
    free(k->value.s), free(k->keybuf.s), free(k->hbuf.s);
    k->value = k->keybuf = k->hbuf = (struct sl__kafka_buf){0};
    sl__kafka_sink_config_free(k);
}

/* ---- the type
 * -------------------------------------------------------------------------------------- */

#define OPT(field) offsetof(struct sl__kafka_sink, field)

static const struct sl_option kafka_sink_options[] = {
    {"brokers", SL_OPT_STRING, NULL, SL_REQUIRED, OPT(brokers),
     "bootstrap brokers host:port[,host:port...], or mock / mock:N: the pipeline's "
     "in-process mock cluster of N brokers (tests, demos)"},
    {"topic", SL_OPT_TEMPLATE, NULL, SL_REQUIRED, OPT(topic),
     "the topic of each event, a template: logs-{{ service }}"},
    {"key", SL_OPT_EXPR, NULL, 0, OPT(key),
     "the message key, an expression (null: no key); default: the event's own key"},
    {"headers", SL_OPT_MAP, NULL, 0, OPT(headers),
     "message headers, name: expression (null: the header is left out)"},
    {"encoding", SL_OPT_ENUM, "json", 0, OPT(encoding),
     "the message value: json (the event's JSON form) or text (the payload, or template)",
     "json|text"},
    {"template", SL_OPT_TEMPLATE, NULL, 0, OPT(text),
     "encoding text: the value, with {{ expr }}; default: the payload"},
    {"compression", SL_OPT_ENUM, "none", 0, OPT(compression),
     "compression of message batches (librdkafka's compression.type)", "none|gzip|snappy|lz4|zstd"},
    {"acks", SL_OPT_ENUM, "all", 0, OPT(acks),
     "replicas that must have a message before it counts as delivered: all (with idempotence: "
     "no duplicates from retries), 1 (the leader) or 0 (none: acked on send)",
     "all|1|0"},
    {"librdkafka", SL_OPT_MAP, NULL, 0, OPT(librdkafka),
     "librdkafka properties passed as they are (TLS, SASL, tuning), after the sink's own"},
    {"on_error", SL_OPT_ENUM, "fail", 0, OPT(on_error),
     "a message Kafka will never take (too large, no such topic, not authorised): fail (stop "
     "the run), drop (counted) or dead_letter (to dead_letter_topic)",
     "fail|drop|dead_letter"},
    {"dead_letter_topic", SL_OPT_STRING, NULL, 0, OPT(dead_letter_topic),
     "on_error dead_letter: the topic, with headers sluice.error and sluice.topic; default "
     "<stage>.dead_letter"},
    {0},
};

const struct sl_stage_type sl_stage_kafka_sink = {
    .abi = SL_STAGE_ABI,
    .name = "kafka",
    .kind = SL_SINK,
    .doc = "produces events to Kafka topics, each batch acked once all its messages are delivered",
    .state_size = sizeof(struct sl__kafka_sink),
    .options = kafka_sink_options,
    .init = sink_init,
    .start = sink_start,
    .write = sink_write,
    .flush = sink_flush,
    .close = sink_close,
};
