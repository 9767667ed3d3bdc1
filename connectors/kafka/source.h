/* The `kafka` source (source.c): what its files share. source_msg.c turns messages into
 * events; source_offsets.c tracks the batches in flight per partition, moves the
 * acknowledged offsets and commits them; source_group.c follows the consumer group
 * (rebalances, errors, logs) and pauses the partitions while the pipeline does not poll.
 *
 * source_end.c makes the last commit and closes the consumer at a clean stop.
 *
 * Threads: everything runs on the loop thread: librdkafka's callbacks (rebalance, offset
 * commit, error) are served from the consumer queue by rd_kafka_consume_batch_queue() on
 * it, never from librdkafka's threads, and its log lines come through the client's log
 * queue (client.h). The one exception is the executor task that keeps the run alive
 * while the end is under way: it only waits on `end_mu`/`end_cv` for `end_done`. */
#ifndef SLUICE_CONNECTORS_KAFKA_SOURCE_H
#define SLUICE_CONNECTORS_KAFKA_SOURCE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include <sluice/sluice.h>

#include "client.h"

/* One partition the source has been assigned at least once. Records live until close():
 * events' origins point at their topic names. */
struct sl__kpart {
    char *topic;       /* owned, NUL-terminated */
    int32_t partition; /* partition number */
    uint32_t epoch;    /* bumped at each assignment: acks of an older one are not ours */
    bool owned;        /* assigned to this consumer now */
    bool revoking;     /* revoked: no longer read, waiting for its acks (rebalance) */
    bool eof;          /* until_end: the end of the partition was reached */
    uint32_t inflight; /* batches in flight holding messages of it */
    int64_t acked;     /* the offset to commit: last acknowledged + 1; -1: none yet */
    int64_t committed; /* the last offset a commit was sent for; -1: none */
    uint64_t mark;     /* the batch (seq + 1) its last range belongs to, 0: none */
    size_t range;      /* ... and that range's index in the batch being filled */
};

/* The messages of one partition in one batch: the highest offset of them. */
struct sl__krange {
    struct sl__kpart *part; /* the partition */
    uint32_t epoch;         /* its assignment when read */
    int64_t last;           /* the highest offset in the batch */
};

/* A batch in flight: its cookie and the ranges it holds (owned). */
struct sl__kflight {
    uint64_t seq;              /* sl_batch_cookie of the batch */
    struct sl__krange *ranges; /* owned */
    size_t n;                  /* ranges */
};

/* The state of a `kafka` source: options first (filled by the schema), then runtime. */
struct sl__ksrc {
    const char *brokers;            /* option: bootstrap servers, or mock / mock:N */
    const char *group;              /* option: consumer group id */
    struct sl_list topics;          /* option: names, or regexes starting with ^ */
    int start_from;                 /* option: 0 earliest, 1 latest (new group) */
    int64_t commit_interval_ms;     /* option */
    int64_t rebalance_timeout_ms;   /* option */
    const struct sl_config *rdconf; /* option `librdkafka`: passed through */
    const char *key_field;          /* option: copy the key into this field */
    const char *headers_field;      /* option: the headers as a JSON object field */
    const char *topic_field;        /* option */
    const char *partition_field;    /* option */
    const char *offset_field;       /* option */
    const char *timestamp_field;    /* option: milliseconds since the epoch */
    bool until_end;                 /* option: end once every partition is read */

    struct sl_stage *stage;         /* this stage */
    struct sl__kafka_client client; /* the consumer and its log lines */
    rd_kafka_t *rk;                 /* client.rk */
    rd_kafka_queue_t *q;            /* its consumer queue (owned reference) */
    struct sl__kafka_watch *watch;  /* q on the loop */
    struct sl_batch *cur;           /* the batch being filled, NULL: none */
    struct sl__krange *cur_ranges;  /* its ranges (owned) */
    size_t cur_n, cur_cap;          /* ranges used / room */
    uint64_t next_seq;              /* the next batch's cookie */
    bool batch_due;                 /* batch.timeout passed since cur's first message */
    struct sl_timer *batch_timer;   /* batch.timeout */
    struct sl_timer *stall_timer;   /* not polled for a while: pause; then keep-alive */
    struct sl_timer *commit_timer;  /* commit_interval */
    struct sl_timer *revoke_timer;  /* rebalance_timeout */
    struct sl_timer *alive_timer;   /* a third of max.poll.interval.ms: the consumer lives */
    int64_t alive_ms;               /* ... that third */
    bool stall_armed;               /* stall_timer is running */
    bool bp_paused;                 /* the partitions are paused: the pipeline is full */
    struct sl__kpart **parts;       /* every partition seen (owned records) */
    size_t nparts, parts_cap;       /* used / room */
    struct sl__kpart *last_part;    /* lookup cache */
    struct sl__kflight *flights;    /* ring of batches in flight */
    size_t fl_head, fl_count, fl_cap;
    rd_kafka_topic_partition_list_t *revoked; /* a revocation under way (owned), or NULL */
    bool revoke_cooperative;                  /* ... of the cooperative protocol: incremental */
    bool revoke_committing;                   /* ... its commit is out: release on its result */
    bool assigned_once;                       /* a partition was ever assigned (until_end) */
    bool ended;                               /* flush(end) was called */
    bool finishing;                           /* the last commit is under way (source_end.c) */
    bool closing;                             /* ... then the consumer's close: the rebalance
                                                 callback only hands partitions back */
    bool close_started;                       /* rd_kafka_consumer_close_queue() was called */
    bool closed;                              /* ... and done */
    int end_tries;                            /* commits of the end sent */
    struct sl_timer *end_timer;               /* the next try of the last commit */
    bool end_sync;                            /* end_mu and end_cv are initialised */
    pthread_mutex_t end_mu;                   /* guards end_done */
    pthread_cond_t end_cv;                    /* signalled when end_done is set */
    bool end_done;                            /* the end is over: the waiting task returns */
    bool end_timed_out;                       /* ... it stopped waiting first (executor thread) */
    uint64_t broker_errors;                   /* error events (broker down...): counters */
    uint64_t commits;                         /* commits sent */
    uint64_t commit_failures;                 /* commit results that failed */
    uint64_t pauses;                          /* times the pipeline's backpressure paused reading */
    uint64_t rebalances;                      /* rebalance events */
    uint64_t stale_acks; /* acknowledged ranges of partitions no longer owned */
    struct sl_counter *m_broker_errors, *m_commits, *m_commit_failures, *m_pauses,
        *m_rebalances; /* the same, in /metrics (sl_stage_counter) */
    uint64_t batches;  /* batches returned */
    uint64_t partial;  /* ... of them partial, after batch.timeout */
};

/* ---- messages (source_msg.c) ----------------------------------------------------------- */

/* Appends message `m` (borrowed) of partition `p` to batch `b` as an event: payload =
 * value, key, time = timestamp, origin = topic/partition/offset, the asked fields.
 * Returns 0, or SL_ENOMEM. */
int sl__ksrc_append(struct sl__ksrc *s, struct sl_batch *b, const rd_kafka_message_t *m,
                    struct sl__kpart *p);

/* ---- offsets (source_offsets.c) --------------------------------------------------------- */

/* The record of `topic`/`partition` (borrowed), made when `add`; NULL when absent or out
 * of memory. */
struct sl__kpart *sl__ksrc_part(struct sl__ksrc *s, const char *topic, int32_t partition, bool add);

/* Notes that the batch being filled holds message `offset` of `p`. 0 or SL_ENOMEM. */
int sl__ksrc_note(struct sl__ksrc *s, struct sl__kpart *p, int64_t offset);

/* The batch being filled leaves as batch `b`: records its ranges in flight and sets its
 * cookie. 0 or SL_ENOMEM. */
int sl__ksrc_track(struct sl__ksrc *s, struct sl_batch *b);

/* The type's ack(): moves each partition's acknowledged offset, in production order. */
void sl__ksrc_ack(struct sl_stage *stage, struct sl_batch *b);

/* Sends an asynchronous commit of the acknowledged offsets of the partitions in `only`
 * (NULL: every owned one) that moved since the last; the result comes back as an offset
 * commit callback with `opaque`. Returns how many partitions it commits. */
int sl__ksrc_commit(struct sl__ksrc *s, const rd_kafka_topic_partition_list_t *only, void *opaque);

/* The commit_interval timer. */
void sl__ksrc_on_commit_timer(struct sl_stage *stage, void *arg);

/* Frees the flights and the partitions (close). */
void sl__ksrc_offsets_free(struct sl__ksrc *s);

/* ---- the group (source_group.c) ----------------------------------------------------------- */

/* librdkafka callbacks, with the source as opaque; installed on the configuration. */
void sl__ksrc_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t *parts, void *opaque);
void sl__ksrc_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                        rd_kafka_topic_partition_list_t *offsets, void *opaque);
void sl__ksrc_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque);

/* A revocation is under way: releases the partitions once their batches are all
 * acknowledged and their offsets committed (or rebalance_timeout passed). */
void sl__ksrc_check_revoke(struct sl__ksrc *s);

/* The alive timer: tells librdkafka that the application polls, also while nothing
 * comes (an idle topic) or the pipeline is full, so that the group keeps this member
 * (max.poll.interval.ms). */
void sl__ksrc_on_alive_timer(struct sl_stage *stage, void *arg);

/* The rebalance_timeout timer. */
void sl__ksrc_on_revoke_timer(struct sl_stage *stage, void *arg);

/* Backpressure: the stall timer (the pipeline has not polled for a while): pauses the
 * owned partitions and serves the queue's callbacks; then keeps the consumer alive. */
void sl__ksrc_on_stall_timer(struct sl_stage *stage, void *arg);

/* poll() came: resumes what backpressure paused. */
void sl__ksrc_resume(struct sl__ksrc *s);

/* ---- the end (source_end.c) ------------------------------------------------------------ */

/* Marks the commit of the end (the opaque of its offset commit callback). */
extern const char sl__ksrc_final_token;

/* The source has ended and nothing is in flight: the last commit, then the consumer's
 * close, both served on the loop; a task on the executor keeps the run waiting for them
 * (END_WAIT_MS at most). Idempotent. */
void sl__ksrc_finish(struct sl__ksrc *s);

/* The offset commit callback of the last commit: `err` is its error (0: every partition
 * committed). Retries what may pass (a rebalance, the coordinator moving), then closes. */
void sl__ksrc_final_committed(struct sl__ksrc *s, rd_kafka_resp_err_t err);

/* After a drain while closing: notices that the consumer is closed. */
void sl__ksrc_close_progress(struct sl__ksrc *s);

/* The end_timer's callback. */
void sl__ksrc_on_end_timer(struct sl_stage *stage, void *arg);

/* ---- the queue (source.c) ------------------------------------------------------------------ */

/* Takes what the consumer queue holds without waiting, serving librdkafka's callbacks on
 * the way: messages go into the batch being filled, until it is full, or, with `all`,
 * until the queue is empty (while paused: only callbacks come out). Returns 0 or
 * SL_ENOMEM. */
int sl__ksrc_drain(struct sl__ksrc *s, bool all);

#endif
