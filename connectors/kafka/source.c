/* The `kafka` source: consumes topics as a member of a consumer group, one event per
 * message, and commits the offsets of what every sink has acknowledged.
 *
 * Joined to the loop: the consumer queue (rd_kafka_poll_set_consumer: messages, the
 * group's rebalances, commit results and errors all come through it) has its io-event
 * descriptor watched by the loop (client.h). When it fires, the stage is woken, and
 * poll() drains the queue with rd_kafka_consume_batch_queue(q, 0, ...), never waiting,
 * into the batch being filled: a full batch is returned at once, a partial one once
 * batch.timeout has passed since its first message (a timer armed then). No thread of
 * ours, no timer that polls, no sleep: a message that arrives on an idle loop is in a
 * batch within batch.timeout.
 *
 * Backpressure: the runtime polls only while the outputs have room. When the queue has
 * something and poll() has not come for PAUSE_AFTER_MS, the partitions are paused
 * (librdkafka drops what it prefetched of them and fetches from the position again on
 * resume) and the queue is served for its callbacks alone (source_group.c); the next
 * poll() resumes them. librdkafka's own prefetch is bounded by
 * queued.max.messages.kbytes (16 MiB here unless the librdkafka map says otherwise).
 *
 * Offsets and rebalances: source_offsets.c and source_group.c; the end: source_end.c.
 * Brokers down: librdkafka
 * reconnects by itself; each error event is logged with its text (which names the
 * broker) and counted in the stage's errors, and the pipeline waits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/builtins.h>
#include <sluice/config.h>

#include "source.h"

#define DRAIN_CHUNK    256  /* messages per rd_kafka_consume_batch_queue() */
#define PAUSE_AFTER_MS 1000 /* messages wait this long without a poll: pause */
#define DRAIN_IDLE     64   /* calls in a row that return no message, at most */
#define CLOSE_WAIT_MS  5000 /* close(): a close under way is served this long */

/* ---- the queue ------------------------------------------------------------------------------- */

/* A message carrying an error instead of data: the end of a partition (until_end), or a
 * consumer error (an unknown topic...), logged and counted. */
static void message_error(struct sl__ksrc *s, const rd_kafka_message_t *m)
{
    const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        struct sl__kpart *p = sl__ksrc_part(s, topic, m->partition, false);
        if (p) p->eof = true;
        return;
    }
    s->broker_errors++;
    sl_counter_add(s->m_broker_errors, 1);
    sl_stage_count_errors(s->stage, 1);
    sl_stage_log(s->stage, SL_LOG_WARN, "kafka: %s [%d]: %s", topic, (int)m->partition,
                 rd_kafka_message_errstr(m));
}

/* One message into the batch being filled (started, and its timer armed, when needed). */
static int take(struct sl__ksrc *s, const rd_kafka_message_t *m)
{
    if (m->err) {
        message_error(s, m);
        return 0;
    }
    if (s->ended) return 0; /* read after the end: not delivered, so not committed */
    struct sl__kpart *p = sl__ksrc_part(s, rd_kafka_topic_name(m->rkt), m->partition, true);
    if (!p) return SL_ENOMEM;
    if (!p->owned || p->revoking) return 0; /* its next owner reads it from the commit */
    if (!s->cur) {
        if (!(s->cur = sl_batch_new(s->stage))) return SL_ENOMEM;
        s->batch_due = false;
        sl_timer_start(s->batch_timer, sl_stage_batch_timeout_ms(s->stage), false);
    }
    p->eof = false;
    int rc = sl__ksrc_append(s, s->cur, m, p);
    return rc ? rc : sl__ksrc_note(s, p, m->offset);
}

/* How many messages the batch being filled still takes (DRAIN_CHUNK at most). */
static size_t room(const struct sl__ksrc *s)
{
    int64_t max = sl_stage_batch_max_events(s->stage);
    int64_t left = max - (int64_t)(s->cur ? sl_batch_count(s->cur) : 0);
    if (s->cur && sl_batch_full(s->cur)) left = 0;
    return left <= 0 ? 0 : left < DRAIN_CHUNK ? (size_t)left : DRAIN_CHUNK;
}

int sl__ksrc_drain(struct sl__ksrc *s, bool all)
{
    rd_kafka_message_t *msgs[DRAIN_CHUNK];
    int rc = 0;
    for (int idle = 0; idle < DRAIN_IDLE;) {
        size_t want = all ? DRAIN_CHUNK : room(s);
        if (!want) break;
        ssize_t n = rd_kafka_consume_batch_queue(s->q, 0, msgs, want);
        /* A call that served a callback may return before the queue is empty (a yield):
         * what is left would never be announced again (the descriptor fires only when
         * an empty queue gets something), so ask again while it holds anything. */
        if (n <= 0) {
            if (rd_kafka_queue_length(s->q) == 0) break;
            idle++;
            continue;
        }
        idle = 0;
        for (ssize_t i = 0; i < n; i++) {
            if (!rc) rc = take(s, msgs[i]);
            rd_kafka_message_destroy(msgs[i]);
        }
        if (rc) break;
    }
    if (s->revoked) sl__ksrc_check_revoke(s);
    return rc;
}

/* The queue's descriptor fired: wake poll(), or, while nothing may be read, serve the
 * callbacks here. */
static void on_queue(struct sl_stage *stage, void *arg)
{
    struct sl__ksrc *s = arg;
    if (s->bp_paused || s->ended) { /* and while closing: its callbacks and its end */
        if (sl__ksrc_drain(s, true)) {
            sl_stage_error(stage, SL_ENOMEM, "out of memory");
            sl_stage_wake(stage);
        }
        sl__ksrc_close_progress(s);
        return;
    }
    sl_stage_wake(stage);
    if (!s->stall_armed) {
        sl_timer_start(s->stall_timer, PAUSE_AFTER_MS, false);
        s->stall_armed = true;
    }
}

static void on_batch_timer(struct sl_stage *stage, void *arg)
{
    struct sl__ksrc *s = arg;
    s->batch_due = true;
    sl_stage_wake(stage);
}

/* until_end: every owned partition is read to its end, and no revocation is under way. */
static bool at_end(const struct sl__ksrc *s)
{
    if (!s->until_end || !s->assigned_once || s->revoked) return false;
    for (size_t i = 0; i < s->nparts; i++)
        if (s->parts[i]->owned && !s->parts[i]->eof) return false;
    return true;
}

/* ---- the stage ---------------------------------------------------------------------------------
 */

static enum sl_poll ksrc_poll(struct sl_stage *stage, struct sl_batch **out)
{
    struct sl__ksrc *s = sl_stage_state(stage);
    sl_timer_stop(s->stall_timer);
    s->stall_armed = false;
    sl__ksrc_resume(s);
    if (sl__ksrc_drain(s, false))
        return sl_stage_error(stage, SL_ENOMEM, "out of memory"), SL_ERROR;
    bool end = at_end(s);
    if (s->cur && (sl_batch_full(s->cur) || s->batch_due || end)) {
        sl_timer_stop(s->batch_timer);
        s->batches++;
        s->partial += !sl_batch_full(s->cur);
        s->batch_due = false;
        if (sl__ksrc_track(s, s->cur))
            return sl_stage_error(stage, SL_ENOMEM, "out of memory"), SL_ERROR;
        *out = s->cur;
        s->cur = NULL;
        sl_timer_start(s->stall_timer, PAUSE_AFTER_MS, false); /* stopped by the next poll */
        s->stall_armed = true;
        return SL_READY;
    }
    return end && !s->cur ? SL_DONE : SL_PENDING;
}

static const char *const FORCED[] = {"enable.auto.commit", "false", "enable.auto.offset.store",
                                     "false", NULL};

/* The settings of this source that the user's map may override (group.id aside). */
static void defaults(const struct sl__ksrc *s, const char *out[9])
{
    const char *d[] = {"group.id",
                       s->group && *s->group ? s->group : "sluice",
                       "auto.offset.reset",
                       s->start_from ? "latest" : "earliest",
                       "queued.max.messages.kbytes",
                       "16384",
                       "enable.partition.eof",
                       s->until_end ? "true" : "false",
                       NULL};
    memcpy(out, d, sizeof d);
}

static int ksrc_init(struct sl_stage *stage, const struct sl_config *cfg, struct sl_error *err)
{
    struct sl__ksrc *s = sl_stage_state(stage);
    s->stage = stage;
    if (sl__kafka_brokers_parse(s->brokers, sl_config_get(cfg, "brokers"), err) < 0)
        return err->code;
    if (!*s->group) return sl_config_error(cfg, err, SL_ECONFIG, "option 'group' is empty");
    for (size_t i = 0; i < s->topics.n; i++)
        if (!*s->topics.items[i])
            return sl_config_error(sl_config_get(cfg, "topics"), err, SL_ECONFIG,
                                   "option 'topics' holds an empty name");
    if (!s->topics.n) return sl_config_error(cfg, err, SL_ECONFIG, "option 'topics' is empty");
    const char *d[9];
    defaults(s, d);
    if (sl__kafka_conf_check(s->rdconf, d, err)) return err->code;
    return sl__kafka_conf_check(NULL, FORCED, err);
}

/* The configuration: defaults, the user's map, then what at-least-once needs. */
static rd_kafka_conf_t *make_conf(struct sl__ksrc *s, struct sl_error *err)
{
    const char *d[9];
    defaults(s, d);
    rd_kafka_conf_t *conf = sl__kafka_conf(s->stage, s->brokers, s->rdconf, d, err);
    char why[256];
    for (size_t i = 0; conf && FORCED[i]; i += 2)
        if (rd_kafka_conf_set(conf, FORCED[i], FORCED[i + 1], why, sizeof why)) {
            sl_error_set(err, SL_ECONFIG, "librdkafka: %s: %s", FORCED[i], why);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    if (!conf) return NULL;
    rd_kafka_conf_set_rebalance_cb(conf, sl__ksrc_rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, sl__ksrc_error_cb);
    rd_kafka_conf_set_opaque(conf, s);
    return conf;
}

static int subscribe(struct sl__ksrc *s, struct sl_error *err)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)s->topics.n);
    if (!list) return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < s->topics.n; i++)
        rd_kafka_topic_partition_list_add(list, s->topics.items[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(s->rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e) return sl_error_set(err, SL_EIO, "cannot subscribe: %s", rd_kafka_err2str(e));
    return 0;
}

static int timers(struct sl__ksrc *s)
{
    s->batch_timer = sl_timer_new(s->stage, on_batch_timer, s);
    s->stall_timer = sl_timer_new(s->stage, sl__ksrc_on_stall_timer, s);
    s->commit_timer = sl_timer_new(s->stage, sl__ksrc_on_commit_timer, s);
    s->revoke_timer = sl_timer_new(s->stage, sl__ksrc_on_revoke_timer, s);
    s->end_timer = sl_timer_new(s->stage, sl__ksrc_on_end_timer, s);
    s->alive_timer = sl_timer_new(s->stage, sl__ksrc_on_alive_timer, s);
    if (!s->batch_timer || !s->stall_timer || !s->commit_timer || !s->revoke_timer ||
        !s->end_timer || !s->alive_timer)
        return SL_ENOMEM;
    if (pthread_mutex_init(&s->end_mu, NULL)) return SL_ENOMEM;
    if (pthread_cond_init(&s->end_cv, NULL)) {
        pthread_mutex_destroy(&s->end_mu);
        return SL_ENOMEM;
    }
    s->end_sync = true;
    return 0;
}

/* The source's counters in /metrics: sluice_stage_kafka_<name>_total. */
static void counters(struct sl__ksrc *s)
{
    s->m_broker_errors = sl_stage_counter(s->stage, "kafka_broker_errors",
                                          "Errors the Kafka client reported (a broker down or "
                                          "unreachable, an unknown topic).");
    s->m_commits = sl_stage_counter(s->stage, "kafka_commits", "Offset commits sent.");
    s->m_commit_failures =
        sl_stage_counter(s->stage, "kafka_commit_failures", "Offset commits that failed.");
    s->m_pauses =
        sl_stage_counter(s->stage, "kafka_pauses", "Times backpressure paused the partitions.");
    s->m_rebalances = sl_stage_counter(s->stage, "kafka_rebalances", "Rebalance events.");
}

static int ksrc_start(struct sl_stage *stage, struct sl_error *err)
{
    struct sl__ksrc *s = sl_stage_state(stage);
    if (timers(s)) return sl_error_set(err, SL_ENOMEM, "out of memory");
    counters(s);
    rd_kafka_conf_t *conf = make_conf(s, err);
    if (!conf) return err->code;
    char poll_ms[32];
    size_t len = sizeof poll_ms;
    s->alive_ms = 100000; /* librdkafka's default max.poll.interval.ms is 300 s */
    if (rd_kafka_conf_get(conf, "max.poll.interval.ms", poll_ms, &len) == RD_KAFKA_CONF_OK)
        s->alive_ms = strtoll(poll_ms, NULL, 10) / 3;
    int rc = sl__kafka_client_open(&s->client, stage, RD_KAFKA_CONSUMER, conf, err);
    if (rc) return rc;
    s->rk = s->client.rk;
    rd_kafka_poll_set_consumer(s->rk);
    if (!(s->q = rd_kafka_queue_get_consumer(s->rk)))
        return sl_error_set(err, SL_EIO, "no consumer queue");
    if ((rc = subscribe(s, err))) return rc;
    if (!(s->watch = sl__kafka_watch_new(stage, s->q, on_queue, s, err))) return err->code;
    sl_timer_start(s->commit_timer, s->commit_interval_ms, true);
    sl_timer_start(s->alive_timer, s->alive_ms > 0 ? s->alive_ms : 1, true);
    sl_stage_log(stage, SL_LOG_INFO, "consuming %s%s as group '%s'", s->topics.items[0],
                 s->topics.n > 1 ? " and more" : "", s->group);
    return 0;
}

/* The source has ended: nothing more is read (the partitions are paused, what the batch
 * being filled holds is let go: the next run reads it), and once the last batch in
 * flight is acknowledged the offsets are committed and the consumer closed. */
static int ksrc_flush(struct sl_stage *stage, struct sl_emit *out, bool end)
{
    (void)out;
    struct sl__ksrc *s = sl_stage_state(stage);
    if (!end || s->ended) return 0;
    s->ended = true;
    sl_timer_stop(s->batch_timer);
    sl_timer_stop(s->stall_timer);
    s->stall_armed = false;
    sl_batch_unref(s->cur);
    s->cur = NULL;
    s->cur_n = 0;
    if (s->rk) {
        rd_kafka_topic_partition_list_t *list = NULL;
        if (!rd_kafka_assignment(s->rk, &list) && list) rd_kafka_pause_partitions(s->rk, list);
        if (list) rd_kafka_topic_partition_list_destroy(list);
    }
    sl_stage_log(stage, SL_LOG_DEBUG,
                 "%llu batches, %llu of them partial; %llu pauses, %llu rebalances, %llu broker "
                 "errors, %llu commits (%llu failed)",
                 (unsigned long long)s->batches, (unsigned long long)s->partial,
                 (unsigned long long)s->pauses, (unsigned long long)s->rebalances,
                 (unsigned long long)s->broker_errors, (unsigned long long)s->commits,
                 (unsigned long long)s->commit_failures);
    if (!s->fl_count && !s->revoked) sl__ksrc_finish(s);
    return 0;
}

/* Destroys a consumer the run did not close (it failed or was aborted) without leaving
 * the group (which could wait for the brokers): the group notices by its session
 * timeout. A close already under way (its wait ran out) is served for CLOSE_WAIT_MS
 * first: librdkafka's end waits for the application's answer to its last rebalance. */
static void destroy_unclosed(struct sl__ksrc *s)
{
    struct sl__kafka_client *c = &s->client;
    rd_kafka_message_t *msgs[DRAIN_CHUNK];
    for (int t = 0; s->close_started && t < CLOSE_WAIT_MS / 100 && !rd_kafka_consumer_closed(c->rk);
         t++) {
        ssize_t n = rd_kafka_consume_batch_queue(s->q, 100, msgs, DRAIN_CHUNK);
        for (ssize_t i = 0; i < n; i++) rd_kafka_message_destroy(msgs[i]);
    }
    sl__kafka_watch_free(c->log_watch);
    c->log_watch = NULL;
    rd_kafka_set_log_queue(c->rk, NULL);
    if (c->logq) rd_kafka_queue_destroy(c->logq);
    c->logq = NULL;
    rd_kafka_destroy_flags(c->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    c->rk = NULL;
}

static void ksrc_close(struct sl_stage *stage)
{
    struct sl__ksrc *s = sl_stage_state(stage);
    s->closing = true; /* callbacks that still come (destroy) touch nothing */
    sl_timer_free(s->batch_timer);
    sl_timer_free(s->stall_timer);
    sl_timer_free(s->commit_timer);
    sl_timer_free(s->revoke_timer);
    sl_timer_free(s->end_timer);
    sl_timer_free(s->alive_timer);
    if (s->end_sync) pthread_cond_destroy(&s->end_cv), pthread_mutex_destroy(&s->end_mu);
    sl__kafka_watch_free(s->watch);
    sl_batch_unref(s->cur);
    if (s->client.rk && !s->closed) destroy_unclosed(s);
    if (s->q) rd_kafka_queue_destroy(s->q);
    sl__kafka_client_close(&s->client);
    sl__ksrc_offsets_free(s);
}

/* ---- the type
 * ------------------------------------------------------------------------------------ */

#define OPT(field) offsetof(struct sl__ksrc, field)

static const struct sl_option kafka_source_options[] = {
    {"brokers", SL_OPT_STRING, NULL, SL_REQUIRED, OPT(brokers),
     "bootstrap brokers host:port[,host:port...], or mock / mock:N (the pipeline's in-process "
     "mock cluster)"},
    {"group", SL_OPT_STRING, NULL, SL_REQUIRED, OPT(group),
     "consumer group id: processes with the same group split the partitions"},
    {"topics", SL_OPT_LIST, NULL, SL_REQUIRED, OPT(topics),
     "topics to consume: names, or regular expressions starting with ^"},
    {"start_from", SL_OPT_ENUM, "earliest", 0, OPT(start_from),
     "where a group without a committed offset starts a partition (auto.offset.reset)",
     "earliest|latest"},
    {"commit_interval", SL_OPT_DURATION, "5s", 0, OPT(commit_interval_ms),
     "how often the offsets of acknowledged events are committed (and at a clean stop)", NULL,
     "10ms.."},
    {"rebalance_timeout", SL_OPT_DURATION, "10s", 0, OPT(rebalance_timeout_ms),
     "how long revoked partitions wait for their events in flight to be acknowledged and "
     "committed before they are released",
     NULL, "0ms.."},
    {"librdkafka", SL_OPT_MAP, NULL, 0, OPT(rdconf),
     "librdkafka properties passed through (security.protocol, sasl.*, ssl.*, tuning)"},
    {"key_field", SL_OPT_STRING, NULL, 0, OPT(key_field),
     "copy the message key into this field (a string; null without a key)"},
    {"headers_field", SL_OPT_STRING, NULL, 0, OPT(headers_field),
     "copy the message headers into this field, as a JSON object of strings"},
    {"topic_field", SL_OPT_STRING, NULL, 0, OPT(topic_field),
     "copy the topic into this field (it is always the event's origin)"},
    {"partition_field", SL_OPT_STRING, NULL, 0, OPT(partition_field),
     "copy the partition into this field (an integer)"},
    {"offset_field", SL_OPT_STRING, NULL, 0, OPT(offset_field),
     "copy the offset into this field (it is always the event's offset)"},
    {"timestamp_field", SL_OPT_STRING, NULL, 0, OPT(timestamp_field),
     "copy the message timestamp into this field (milliseconds since the epoch; it is always "
     "the event's time)"},
    {"until_end", SL_OPT_BOOL, "false", 0, OPT(until_end),
     "end once every assigned partition is read to its end (batch jobs and tests)"},
    {0},
};

const struct sl_stage_type sl_stage_kafka_source = {
    .abi = SL_STAGE_ABI,
    .name = "kafka",
    .kind = SL_SOURCE,
    .doc = "consumes topics in a consumer group, committing the offsets of acknowledged "
           "events",
    .state_size = sizeof(struct sl__ksrc),
    .options = kafka_source_options,
    .init = ksrc_init,
    .start = ksrc_start,
    .poll = ksrc_poll,
    .ack = sl__ksrc_ack,
    .flush = ksrc_flush,
    .close = ksrc_close,
};
