/* The `kafka` sink's parts, private to connectors/kafka: its state (sink.c: the stage,
 * its batches and their delivery reports on the loop thread) and the making of one
 * message from an event (sink_msg.c: topic, key, value, headers; faults by on_error).
 *
 * A batch is one job. write() produces its events, in order, into librdkafka's queue
 * (copied: the job keeps the batch only for its acknowledgement). Each message carries
 * its job as opaque; its delivery report, on the loop, counts it off. The batch is
 * acknowledged once every message of it has been reported delivered (or handled by
 * on_error): nothing is acknowledged on enqueue. */
#ifndef SLUICE_CONNECTORS_KAFKA_SINK_H
#define SLUICE_CONNECTORS_KAFKA_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/expr.h>

#include "client.h"

/* `encoding`: the message value. */
enum { SL__KAFKA_ENC_JSON = 0, SL__KAFKA_ENC_TEXT = 1 };

/* `on_error`: a message Kafka will never take (too large, no such topic, not allowed). */
enum { SL__KAFKA_FAIL = 0, SL__KAFKA_DROP = 1, SL__KAFKA_DEAD_LETTER = 2 };

/* One batch on its way: produced from event `next` on; acknowledged when every event is
 * produced and none awaits its report. */
struct sl__kafka_job {
    struct sl__kafka_job *prev, *next; /* the sink's jobs, oldest first */
    struct sl_batch *batch;            /* taken from write(); acked when all delivered */
    size_t n;                          /* events in the batch */
    size_t next_ev;                    /* the next event to produce */
    size_t unreported;                 /* messages produced, report not yet in */
};

/* One header: its name and the expression of its value. */
struct sl__kafka_header {
    const char *name;     /* borrowed from the config */
    struct sl_expr *expr; /* owned */
};

/* A growable byte buffer. */
struct sl__kafka_buf {
    char *s;    /* owned */
    size_t cap; /* bytes at s */
};

#define SL__KAFKA_TOPICS 32 /* topic handles kept (templates naming more make new ones) */

/* The stage's state: options (filled by the schema), config (init), run (loop thread). */
struct sl__kafka_sink {
    /* options */
    const char *brokers;                /* host:port,... or mock[:N] */
    struct sl_template *topic;          /* the topic of each event */
    struct sl_expr *key;                /* the message key; NULL: the event's own key */
    const struct sl_config *headers;    /* name: expression */
    int encoding;                       /* SL__KAFKA_ENC_* */
    struct sl_template *text;           /* encoding text: the value; NULL: the payload */
    int compression;                    /* index in "none|gzip|snappy|lz4|zstd" */
    int acks;                           /* index in "all|1|0" */
    const struct sl_config *librdkafka; /* passed through */
    int on_error;                       /* SL__KAFKA_FAIL / _DROP / _DEAD_LETTER */
    const char *dead_letter_topic;      /* NULL: <stage>.dead_letter */
    /* config, from init */
    struct sl_stage *stage;
    struct sl__kafka_header *hdrs; /* nhdrs headers (owned) */
    size_t nhdrs;
    const char *defaults[16]; /* librdkafka settings the options make, NULL-ended */
    char dl_topic[256];       /* the dead-letter topic */
    bool topic_constant;      /* the topic template has no {{ }} that varies */
    size_t const_len;         /* topic_constant: the length of its rendering */
    char const_topic[256];    /* and the rendering, made once */
    /* run */
    struct sl__kafka_client c;                  /* the producer */
    rd_kafka_queue_t *dr_q;                     /* its main queue: delivery reports, errors */
    struct sl__kafka_watch *dr_watch;           /* dr_q on the loop */
    struct sl__kafka_job *head, *tail;          /* jobs taken, not yet acknowledged */
    struct sl__kafka_job *stalled;              /* a job stopped by a full queue (SL_PENDING) */
    bool broken;                                /* failed for good (the stage error is set) */
    bool warned;                                /* a fault was logged (later ones only counted) */
    struct sl__kafka_buf value, keybuf, hbuf;   /* scratch for one message */
    rd_kafka_topic_t *topics[SL__KAFKA_TOPICS]; /* topic handles by name (owned) */
    size_t ntopics;
    uint64_t produced, delivered, dropped, dead_letters; /* messages */
    uint64_t null_topics; /* messages whose topic template had a null {{ }} */
    uint64_t stalls;      /* writes answered SL_PENDING for a full queue */
};

/* ---- sink_msg.c ------------------------------------------------------------------------ */

/* Compiles option `headers` into k->hdrs and fills k->defaults and k->dl_topic from the
 * options. Returns 0, or SL_ECONFIG / SL_ENOMEM with `err`. */
int sl__kafka_sink_config(struct sl__kafka_sink *k, const struct sl_config *cfg,
                          struct sl_error *err);
void sl__kafka_sink_config_free(struct sl__kafka_sink *k);

/* One message: what produce() makes of an event, or what a delivery report holds. */
struct sl__kafka_msg {
    char topic[256];       /* its topic */
    const char *key, *val; /* key (NULL: none) and value, borrowed */
    size_t klen, vlen;     /* their lengths */
    rd_kafka_headers_t *h; /* headers (NULL: none); produce() owns them until sent */
};

/* What producing one event ended with. */
enum sl__kafka_produced {
    SL__KAFKA_QUEUED = 0, /* in librdkafka's queue: a report will come */
    SL__KAFKA_HANDLED,    /* refused for good, handled by on_error (dropped, or a dead letter
                             queued: a report will come for it, counted in the job) */
    SL__KAFKA_FULL,       /* librdkafka's queue is full: try again after reports */
    SL__KAFKA_BROKEN,     /* the stage failed (its error is set) */
};

/* Produces event `i` of job `j` (topic, key, value and headers of the options). Loop
 * thread. */
enum sl__kafka_produced sl__kafka_produce(struct sl__kafka_sink *k, struct sl__kafka_job *j,
                                          size_t i);

/* A message of job `j` Kafka refused for good (`why`; `m` borrowed, as produced or as
 * its delivery report holds it): handled by on_error (counted as an error; dropped and
 * counted, or a dead letter produced under `j`, or the stage fails). Returns
 * SL__KAFKA_HANDLED, SL__KAFKA_BROKEN, or SL__KAFKA_FULL when the dead letter met a full
 * queue (nothing counted: the message is refused again and its dead letter produced when
 * the queue has room). */
enum sl__kafka_produced sl__kafka_refused(struct sl__kafka_sink *k, struct sl__kafka_job *j,
                                          const struct sl__kafka_msg *m, rd_kafka_resp_err_t why);

/* True for errors that producing the message again cannot cure. */
bool sl__kafka_permanent(rd_kafka_resp_err_t e);

/* Fails the stage for good with the formatted reason: the runtime stops the run at its
 * next turn, with what is not acknowledged left for a restart. */
void sl__kafka_sink_broken(struct sl__kafka_sink *k, const char *fmt, ...) SL_PRINTF(2, 3);

#endif
