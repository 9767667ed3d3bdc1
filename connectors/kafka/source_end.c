/* The `kafka` source's end: the last commit and the consumer's close, at a clean stop.
 *
 * Once the source has ended (a stop, or until_end) and its last batch is acknowledged,
 * the offsets that moved since the last commit are committed, and the consumer closes:
 * rd_kafka_consumer_close_queue(), which leaves the group at once (the other members
 * take the partitions over without waiting for a session timeout). Both are served on
 * the loop like everything else, so that a rebalance that comes meanwhile (the other
 * members stopping at the same time) is answered: a commit refused because the group is
 * rebalancing, or because this member's generation is gone, is sent again once it has
 * rejoined, for the partitions it still owns (those it lost are their new owner's to
 * read again). The runtime does not know about librdkafka's events, so a task on the
 * executor keeps the run alive meanwhile: it waits for `end_done`, END_WAIT_MS at most. */
#include <errno.h>
#include <time.h>

#include "source.h"

#define END_WAIT_MS  15000 /* the last commit and the close, at most */
#define END_RETRY_MS 200   /* between two tries of the last commit */
#define END_TRIES    25    /* tries of the last commit */

const char sl__ksrc_final_token = 0;

/* ---- the waiting task ----------------------------------------------------------------- */

/* Executor thread: waits until the loop says the end is over (or END_WAIT_MS passed). */
static void wait_work(void *arg)
{
    struct sl__ksrc *s = arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += END_WAIT_MS / 1000;
    pthread_mutex_lock(&s->end_mu);
    int rc = 0;
    while (!s->end_done && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&s->end_cv, &s->end_mu, &until);
    s->end_timed_out = !s->end_done;
    pthread_mutex_unlock(&s->end_mu);
}

static void wait_done(struct sl_stage *stage, void *arg)
{
    struct sl__ksrc *s = arg;
    if (s->end_timed_out)
        sl_stage_log(stage, SL_LOG_WARN,
                     "the last commit and the consumer's close took more than %d s: given up "
                     "(the group notices by its session timeout)",
                     END_WAIT_MS / 1000);
}

static void end_over(struct sl__ksrc *s)
{
    if (!s->end_sync) return;
    pthread_mutex_lock(&s->end_mu);
    s->end_done = true;
    pthread_cond_signal(&s->end_cv);
    pthread_mutex_unlock(&s->end_mu);
}

/* ---- commit, then close ------------------------------------------------------------------ */

void sl__ksrc_close_progress(struct sl__ksrc *s)
{
    if (s->closing && !s->closed && rd_kafka_consumer_closed(s->rk)) {
        s->closed = true;
        sl_stage_log(s->stage, SL_LOG_DEBUG, "left the group");
        end_over(s);
    }
}

static void start_close(struct sl__ksrc *s)
{
    s->closing = true;
    sl_timer_stop(s->end_timer);
    rd_kafka_error_t *error = rd_kafka_consumer_close_queue(s->rk, s->q);
    s->close_started = !error;
    if (error) {
        sl_stage_log(s->stage, SL_LOG_WARN, "cannot leave the group: %s",
                     rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
        end_over(s);
        return;
    }
    sl__ksrc_close_progress(s);
}

/* Sends the last commit; without anything to commit, closes at once. */
static void final_commit(struct sl__ksrc *s)
{
    s->end_tries++;
    if (sl__ksrc_commit(s, NULL, (void *)&sl__ksrc_final_token) == 0) start_close(s);
}

void sl__ksrc_on_end_timer(struct sl_stage *stage, void *arg)
{
    (void)stage;
    struct sl__ksrc *s = arg;
    if (!s->closing) final_commit(s);
}

/* Errors a commit may get while the group rebalances or its coordinator moves. */
static bool passes(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__WAIT_COORD: return true;
    default: return false;
    }
}

void sl__ksrc_final_committed(struct sl__ksrc *s, rd_kafka_resp_err_t err)
{
    if (s->closing) return;
    if (err && passes(err) && s->end_tries < END_TRIES) {
        sl_timer_start(s->end_timer, END_RETRY_MS, false); /* after the rejoin, if any */
        return;
    }
    if (err)
        sl_stage_log(s->stage, SL_LOG_WARN,
                     "the last commit failed (%s): the next run reads again what was "
                     "acknowledged since the one before",
                     rd_kafka_err2str(err));
    else
        sl_stage_log(s->stage, SL_LOG_DEBUG, "the last commit is done");
    start_close(s);
}

void sl__ksrc_finish(struct sl__ksrc *s)
{
    if (s->finishing || !s->rk) return;
    s->finishing = true;
    sl_timer_stop(s->commit_timer);
    sl_timer_stop(s->stall_timer);
    s->stall_armed = false;
    if (!s->end_sync || sl_stage_submit(s->stage, wait_work, wait_done, s))
        end_over(s); /* nothing keeps the run: the end is done as far as it gets */
    final_commit(s);
}
