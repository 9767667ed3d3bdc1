/* What the Kafka source and sink share (connectors/kafka only): a librdkafka config
 * built from a stage's options, librdkafka's in-process mock cluster as one object per
 * pipeline, a client handle whose logs and errors reach the stage's log on the loop, and
 * the join of a librdkafka queue to the stage's libevent loop.
 *
 * ---- how a stage uses it --------------------------------------------------------------
 *
 *   init():   sl__kafka_brokers_parse() and sl__kafka_conf_check() on the options: every
 *             mistake is a config error at its place, and nothing is started.
 *   start():  conf = sl__kafka_conf(stage, brokers, map, defaults, err);
 *             rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR ...);
 *             sl__kafka_client_open(&c, stage, RD_KAFKA_PRODUCER, conf, err)  (takes conf)
 *             q = rd_kafka_queue_get_main(c.rk)    (a consumer: rd_kafka_poll_set_consumer,
 *                                                   then rd_kafka_queue_get_consumer)
 *             w = sl__kafka_watch_new(stage, q, ready, arg, err)
 *   ready():  runs on the loop thread whenever the queue went from empty to non-empty.
 *             Drain without blocking: `while ((ev = rd_kafka_queue_poll(q, 0)))`, or
 *             rd_kafka_consume_batch_queue(q, 0, ...) until it returns 0. Each event the
 *             stage does not handle itself goes to sl__kafka_client_event() (errors,
 *             logs), then rd_kafka_event_destroy(). A ready() that stops before the
 *             queue is empty (a full batch, a slice of the loop spent) calls
 *             sl__kafka_watch_again(w): librdkafka signals the descriptor only when a
 *             new message arrives after a poll, never for what is already queued.
 *   close():  sl__kafka_watch_free(w); rd_kafka_queue_destroy(q);
 *             sl__kafka_client_close(&c)  (after purging or flushing what it holds).
 *
 * No thread of ours polls, no timer polls, nothing sleeps: librdkafka writes to an
 * eventfd the loop watches (rd_kafka_queue_io_event_enable), and the loop calls ready().
 *
 * ---- brokers -------------------------------------------------------------------------
 *
 * `brokers` is "host:port,host:port" (bootstrap.servers), or `mock` / `mock:N`: the
 * pipeline's in-process mock cluster of N brokers (1 by default), made at the first
 * start() that asks and shared by every stage of the pipeline naming the same N (key
 * "kafka-mock:N"), freed with the pipeline after every stage closed. Its bootstrap
 * address is logged when it starts. librdkafka 2.0's mock keeps about 5 MiB per
 * partition (older data is dropped) and creates an unknown topic with 4 partitions on
 * the first metadata request: sl__kafka_mock_topic() makes one with the count wanted. */
#ifndef SLUICE_CONNECTORS_KAFKA_CLIENT_H
#define SLUICE_CONNECTORS_KAFKA_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <sluice/config.h>
#include <sluice/error.h>
#include <sluice/stage.h>

#define SL__KAFKA_MOCK_MAX 64 /* most brokers `mock:N` asks for */

/* ---- configuration ------------------------------------------------------------------- */

/* Reads option `brokers` (borrowed; NULL or "" is an error): returns 0 for a list of
 * real brokers, N (1..SL__KAFKA_MOCK_MAX) for `mock` / `mock:N`, or SL_ECONFIG with
 * `err` pointing at `at` (the stage's config node, may be NULL). */
int sl__kafka_brokers_parse(const char *brokers, const struct sl_config *at, struct sl_error *err);

/* Checks that every entry of `map` (borrowed: the `librdkafka:` option, a mapping; NULL:
 * none) and of `defaults` (borrowed: "key", "value" pairs ending with NULL; NULL: none)
 * is a property librdkafka accepts with that value, by building a config and throwing it
 * away. A refused entry is SL_ECONFIG in `err` at the entry's place in the config,
 * naming the key, the value and librdkafka's reason. Nested mappings are flattened
 * with dots ({ssl: {ca.location: x}} is ssl.ca.location). Any thread; starts nothing. */
int sl__kafka_conf_check(const struct sl_config *map, const char *const *defaults,
                         struct sl_error *err);

/* A config for a client of `stage`: client.id "sluice-<stage>", bootstrap.servers from
 * `brokers` (for `mock:N` the address of the pipeline's mock cluster, which this starts
 * when it is not running yet), then `defaults` (as above: the stage's own settings), then
 * the user's `map`, which may override any of them, and last log.queue=true (the logs go
 * through sl__kafka_client_open's log queue, never from librdkafka's threads). Returns
 * an owned config (give it to sl__kafka_client_open, or rd_kafka_conf_destroy), or NULL
 * with `err`. Loop thread, from start(). */
rd_kafka_conf_t *sl__kafka_conf(struct sl_stage *stage, const char *brokers,
                                const struct sl_config *map, const char *const *defaults,
                                struct sl_error *err);

/* ---- the mock cluster ------------------------------------------------------------------ */

struct sl__kafka_mock; /* a mock cluster and the handle that hosts it */

/* A new mock cluster of `brokers` brokers on loopback (random ports). Returns an owned
 * cluster (free: sl__kafka_mock_free), or NULL with `err`. Any thread. */
struct sl__kafka_mock *sl__kafka_mock_new(int brokers, struct sl_error *err);

/* Stops the cluster (its data goes with it). NULL is a no-op. */
void sl__kafka_mock_free(struct sl__kafka_mock *m);

/* The bootstrap address, "127.0.0.1:P1,127.0.0.1:P2" (borrowed; valid with `m`). */
const char *sl__kafka_mock_bootstraps(const struct sl__kafka_mock *m);

/* librdkafka's cluster (borrowed), for rd_kafka_mock_* calls: a broker set down or up. */
rd_kafka_mock_cluster_t *sl__kafka_mock_cluster(const struct sl__kafka_mock *m);

/* Makes `topic` with `partitions` partitions on `m` (replication 1). Returns 0 (also when
 * it exists), or SL_EIO with `err`. Any thread. */
int sl__kafka_mock_create_topic(struct sl__kafka_mock *m, const char *topic, int partitions,
                                struct sl_error *err);

/* The mock cluster of `brokers` brokers of `stage`'s pipeline (borrowed; freed with the
 * pipeline), started and its address logged when it is the first ask. NULL with `err`
 * when it cannot start. Loop thread, from start(). */
struct sl__kafka_mock *sl__kafka_stage_mock(struct sl_stage *stage, int brokers,
                                            struct sl_error *err);

/* When `brokers` names a mock cluster: makes `topic` with `partitions` partitions on the
 * pipeline's cluster (started if needed). Real brokers: nothing (topics are created by
 * the cluster's own rules). Returns 0 or an SL_E* code with `err`. Loop thread, from
 * start(). */
int sl__kafka_mock_topic(struct sl_stage *stage, const char *brokers, const char *topic,
                         int partitions, struct sl_error *err);

/* ---- a client ----------------------------------------------------------------------------- */

/* A librdkafka handle of a stage, its log queue joined to the loop. Fields are read-only
 * for the stage. */
struct sl__kafka_client {
    struct sl_stage *stage;            /* the owner */
    rd_kafka_t *rk;                    /* the handle (owned) */
    rd_kafka_queue_t *logq;            /* its log lines (owned) */
    struct sl__kafka_watch *log_watch; /* logq on the loop */
    uint64_t errors;                   /* error events told (brokers down, ...) */
    struct sl_counter *m_errors;       /* the same in /metrics: kafka_broker_errors */
    bool fatal;                        /* librdkafka raised a fatal error */
    char last_error[512];              /* the last error event's text */
};

/* Makes the handle of `type` from `conf` (taken in every case: owned by the handle, or
 * destroyed on failure) into `c` (borrowed, zeroed by this), its log lines forwarded to
 * sl_stage_log on the loop thread (librdkafka's syslog levels: 0-2 error, 3-4 warn, 5-6
 * info, 7 debug). Returns 0, or an SL_E* code with `err`. Loop thread. */
int sl__kafka_client_open(struct sl__kafka_client *c, struct sl_stage *stage, rd_kafka_type_t type,
                          rd_kafka_conf_t *conf, struct sl_error *err);

/* Handles an event the stage's own code does not: RD_KAFKA_EVENT_ERROR (logged with
 * librdkafka's text, which names the broker, and counted in c->errors; a fatal error
 * fails the stage, sl_stage_error + sl_stage_wake) and RD_KAFKA_EVENT_LOG. Returns true
 * when the event was one of these. `ev` stays the caller's (destroy it). Loop thread. */
bool sl__kafka_client_event(struct sl__kafka_client *c, rd_kafka_event_t *ev);

/* Destroys the handle (librdkafka's threads end; queued messages are not waited for:
 * purge or flush first) and the log queue. A zeroed `c` is a no-op. Loop thread. */
void sl__kafka_client_close(struct sl__kafka_client *c);

/* ---- a queue on the loop -------------------------------------------------------------------- */

struct sl__kafka_watch; /* a librdkafka queue's eventfd, watched by the loop */

/* Joins `q` (borrowed; must outlive the watch) to `stage`'s loop: from now on, each time
 * something is enqueued on `q` after the last poll of it, `ready(stage, arg)` runs on the
 * loop thread (once for any number of enqueues before it runs). Events already queued
 * when this is called are announced too. Returns an owned watch (free:
 * sl__kafka_watch_free), or NULL with `err`. Loop thread. */
struct sl__kafka_watch *sl__kafka_watch_new(struct sl_stage *stage, rd_kafka_queue_t *q,
                                            void (*ready)(struct sl_stage *stage, void *arg),
                                            void *arg, struct sl_error *err);

/* Runs ready() again at the loop's next turn (a drain that stopped early). Loop thread. */
void sl__kafka_watch_again(struct sl__kafka_watch *w);

/* Disables the queue's descriptor and frees the watch: ready() is not called after this.
 * NULL is a no-op. Loop thread. */
void sl__kafka_watch_free(struct sl__kafka_watch *w);

#endif
