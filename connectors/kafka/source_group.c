/* The `kafka` source in its consumer group: rebalances, commit results, errors, logs,
 * and pausing while the pipeline is full.
 *
 * librdkafka serves these callbacks from the consumer queue, inside
 * rd_kafka_consume_batch_queue(), on the loop thread: from poll(), or, while the
 * pipeline does not poll (its outputs are full), from the queue's descriptor and the
 * stall timer, which pause the partitions first so that only callbacks come out.
 *
 * Rebalance. Assigned partitions are read from their committed offset (start_from for a
 * new group). Revoked ones stop being read at once (paused: what librdkafka prefetched of
 * them is dropped), and are released (rd_kafka_assign(NULL), or incremental_unassign
 * under the cooperative protocol) only once their batches in flight are acknowledged
 * and their offsets committed, or when rebalance_timeout has passed: the next owner then
 * reads again what was not committed (duplicates, never loss). A lost assignment is
 * released at once, without a commit. */
#include <string.h>

#include "source.h"

#define KEEPALIVE_MS 1000 /* while paused: how often the consumer is served anyway */

static char revoke_opaque; /* marks the commit of a revocation */

/* Counts the batches in flight (or being filled) with messages of the revoked partitions. */
static uint32_t revoked_inflight(struct sl__ksrc *s)
{
    uint32_t n = 0;
    for (int i = 0; i < s->revoked->cnt; i++) {
        const rd_kafka_topic_partition_t *e = &s->revoked->elems[i];
        struct sl__kpart *p = sl__ksrc_part(s, e->topic, e->partition, false);
        if (p) n += p->inflight + (p->mark == s->next_seq + 1 && s->cur);
    }
    return n;
}

/* Hands the revoked partitions back to librdkafka: the group goes on. */
static void release(struct sl__ksrc *s)
{
    rd_kafka_topic_partition_list_t *list = s->revoked;
    for (int i = 0; i < list->cnt; i++) {
        struct sl__kpart *p = sl__ksrc_part(s, list->elems[i].topic, list->elems[i].partition, 0);
        if (!p) continue;
        p->owned = p->revoking = false;
        p->epoch++; /* what is still in flight of it is no longer ours to commit */
    }
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t err = 0;
    if (s->revoke_cooperative)
        error = rd_kafka_incremental_unassign(s->rk, list);
    else
        err = rd_kafka_assign(s->rk, NULL);
    if (error || err)
        sl_stage_log(s->stage, SL_LOG_WARN, "cannot release the revoked partitions: %s",
                     error ? rd_kafka_error_string(error) : rd_kafka_err2str(err));
    if (error) rd_kafka_error_destroy(error);
    sl_stage_log(s->stage, SL_LOG_INFO, "released %d revoked partition(s)", list->cnt);
    rd_kafka_topic_partition_list_destroy(list);
    s->revoked = NULL;
    s->revoke_committing = false;
    sl_timer_stop(s->revoke_timer);
    if (s->ended && !s->fl_count) sl__ksrc_finish(s);
}

/* The revoked partitions are done with: their offsets are committed, then released. */
static void finish_revoke(struct sl__ksrc *s)
{
    if (sl__ksrc_commit(s, s->revoked, &revoke_opaque) > 0)
        s->revoke_committing = true; /* the commit callback releases them */
    else
        release(s);
}

void sl__ksrc_check_revoke(struct sl__ksrc *s)
{
    if (s->revoked && !s->revoke_committing && !s->closing && !revoked_inflight(s))
        finish_revoke(s);
}

void sl__ksrc_on_revoke_timer(struct sl_stage *stage, void *arg)
{
    struct sl__ksrc *s = arg;
    if (!s->revoked || s->closing) return;
    uint32_t n = revoked_inflight(s);
    sl_stage_log(stage, SL_LOG_WARN,
                 "rebalance_timeout passed with %u batch(es) of revoked partitions not "
                 "acknowledged%s: the partitions' next owner reads them again",
                 n, s->revoke_committing ? " or committed" : "");
    if (!s->revoke_committing) sl__ksrc_commit(s, s->revoked, NULL);
    release(s);
}

/* Partitions assigned: read from their committed offsets. */
static void assigned(struct sl__ksrc *s, rd_kafka_topic_partition_list_t *parts, bool coop)
{
    for (int i = 0; i < parts->cnt; i++) {
        struct sl__kpart *p = sl__ksrc_part(s, parts->elems[i].topic, parts->elems[i].partition, 1);
        if (!p) continue; /* out of memory: its messages are read, never committed */
        p->owned = true;
        p->revoking = p->eof = false;
        p->epoch++;
        p->acked = p->committed = -1;
    }
    s->assigned_once = true;
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t err = 0;
    if (coop)
        error = rd_kafka_incremental_assign(s->rk, parts);
    else
        err = rd_kafka_assign(s->rk, parts);
    if (error || err)
        sl_stage_log(s->stage, SL_LOG_WARN, "cannot take the assigned partitions: %s",
                     error ? rd_kafka_error_string(error) : rd_kafka_err2str(err));
    if (error) rd_kafka_error_destroy(error);
    /* A partition this consumer paused (revoked, or the pipeline full) stays paused in
     * librdkafka across an unassign: an assignment says again what it should be. */
    if (s->bp_paused || s->ended)
        rd_kafka_pause_partitions(s->rk, parts);
    else
        rd_kafka_resume_partitions(s->rk, parts);
    sl_stage_log(s->stage, SL_LOG_INFO, "assigned %d partition(s)%s", parts->cnt,
                 coop ? " (cooperative)" : "");
}

/* Partitions revoked: no longer read; released once their batches are done with. */
static void revoked(struct sl__ksrc *s, rd_kafka_topic_partition_list_t *parts, bool coop)
{
    if (s->revoked) { /* a second revocation before the first ended: release now */
        sl__ksrc_commit(s, s->revoked, NULL);
        release(s);
    }
    s->revoked = rd_kafka_topic_partition_list_copy(parts);
    s->revoke_cooperative = coop;
    for (int i = 0; i < parts->cnt; i++) {
        struct sl__kpart *p = sl__ksrc_part(s, parts->elems[i].topic, parts->elems[i].partition, 0);
        if (p) p->revoking = true;
    }
    rd_kafka_pause_partitions(s->rk, parts);
    if (rd_kafka_assignment_lost(s->rk)) { /* the group went on without us: no commit */
        sl_stage_log(s->stage, SL_LOG_WARN,
                     "lost %d partition(s) (the group went on without this consumer): "
                     "their next owner reads again what was not committed",
                     parts->cnt);
        release(s);
        return;
    }
    sl_stage_log(s->stage, SL_LOG_INFO,
                 "%d partition(s) revoked: released once their %u batch(es) in flight are "
                 "acknowledged and committed (at most rebalance_timeout)",
                 parts->cnt, revoked_inflight(s));
    sl_timer_start(s->revoke_timer, s->rebalance_timeout_ms, false);
    /* checked after the drain that called us: messages it took may be of these */
}

void sl__ksrc_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct sl__ksrc *s = opaque;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    bool assign = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    if (s->closing) { /* rd_kafka_consumer_close_queue(): only hand the partitions back */
        rd_kafka_error_t *error = NULL;
        if (coop)
            error = assign ? rd_kafka_incremental_assign(rk, parts)
                           : rd_kafka_incremental_unassign(rk, parts);
        else
            rd_kafka_assign(rk, assign ? parts : NULL);
        if (error) rd_kafka_error_destroy(error);
        return;
    }
    s->rebalances++;
    sl_counter_add(s->m_rebalances, 1);
    if (assign) {
        assigned(s, parts, coop);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        revoked(s, parts, coop);
    } else {
        sl_stage_log(s->stage, SL_LOG_WARN, "rebalance failed: %s", rd_kafka_err2str(err));
        if (!coop) rd_kafka_assign(rk, NULL);
    }
}

void sl__ksrc_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                        rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    struct sl__ksrc *s = rd_kafka_opaque(rk);
    int failed = 0;
    for (int i = 0; offsets && i < offsets->cnt; i++) {
        rd_kafka_topic_partition_t *e = &offsets->elems[i];
        if (!err && !e->err) continue;
        failed++;
        struct sl__kpart *p = sl__ksrc_part(s, e->topic, e->partition, false);
        if (p && p->committed == e->offset) p->committed = -1; /* sent again next time */
    }
    if (failed || err) {
        s->commit_failures++;
        sl_counter_add(s->m_commit_failures, 1);
        sl_stage_log(s->stage, SL_LOG_WARN, "offset commit failed for %d partition(s): %s", failed,
                     rd_kafka_err2str(err ? err : offsets->elems[0].err));
    }
    if (opaque == &revoke_opaque && s->revoke_committing && s->revoked) release(s);
    if (opaque == &sl__ksrc_final_token)
        sl__ksrc_final_committed(s, err ? err : failed ? offsets->elems[0].err : 0);
}

void sl__ksrc_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct sl__ksrc *s = opaque;
    if (s->closing) return; /* leaving the group: errors of the close are not news */
    s->broker_errors++;
    sl_counter_add(s->m_broker_errors, 1);
    sl_stage_count_errors(s->stage, 1);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_fatal_error(rk, why, sizeof why);
        sl_stage_error(s->stage, SL_EIO, "kafka consumer failed: %s", why);
        sl_stage_wake(s->stage);
        return;
    }
    sl_stage_log(s->stage, SL_LOG_WARN, "kafka: %s (%s); waiting for the brokers", reason,
                 rd_kafka_err2name(err));
}

void sl__ksrc_on_alive_timer(struct sl_stage *stage, void *arg)
{
    (void)stage;
    struct sl__ksrc *s = arg;
    rd_kafka_message_t *none[1];
    if (!s->closing) rd_kafka_consume_batch_queue(s->q, 0, none, 0); /* takes nothing */
}

/* ---- backpressure -------------------------------------------------------------------------- */

/* The owned partitions that are read (not being revoked), or NULL (owned). */
static rd_kafka_topic_partition_list_t *reading(struct sl__ksrc *s)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; list && i < s->nparts; i++)
        if (s->parts[i]->owned && !s->parts[i]->revoking)
            rd_kafka_topic_partition_list_add(list, s->parts[i]->topic, s->parts[i]->partition);
    return list;
}

void sl__ksrc_on_stall_timer(struct sl_stage *stage, void *arg)
{
    struct sl__ksrc *s = arg;
    s->stall_armed = false;
    if (s->closing) return;
    if (!s->bp_paused) {
        rd_kafka_topic_partition_list_t *list = reading(s);
        if (list) rd_kafka_pause_partitions(s->rk, list);
        if (list) rd_kafka_topic_partition_list_destroy(list);
        s->bp_paused = true;
        s->pauses++;
        sl_counter_add(s->m_pauses, 1);
        sl_stage_log(stage, SL_LOG_DEBUG, "the pipeline is full: partitions paused");
    }
    sl__ksrc_drain(s, true);
    sl_timer_start(s->stall_timer, KEEPALIVE_MS, false); /* max.poll.interval.ms */
    s->stall_armed = true;
}

void sl__ksrc_resume(struct sl__ksrc *s)
{
    if (!s->bp_paused || s->ended) return;
    rd_kafka_topic_partition_list_t *list = reading(s);
    if (list) rd_kafka_resume_partitions(s->rk, list);
    if (list) rd_kafka_topic_partition_list_destroy(list);
    s->bp_paused = false;
}
