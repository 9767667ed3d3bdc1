/* Helpers for the Kafka source's tests: a mock cluster in the test process (or in a
 * process of its own, tests/kafka_mock_main.c), messages produced by kcat (an
 * independent client), committed offsets read by a separate consumer handle, and a sink
 * that records every message it receives and can hold its acknowledgements. */
#ifndef SLUICE_TEST_HELPERS_KAFKA_SOURCE_H
#define SLUICE_TEST_HELPERS_KAFKA_SOURCE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/sluice.h>

/* One message as the sink saw it (strings owned, NUL-terminated). */
struct t_kmsg {
    int64_t n;         /* the number in the payload ({"n":N,...}), -1 when none */
    char *payload;     /* the payload */
    char *key;         /* sl_event_key, NULL when none */
    char *origin;      /* sl_event_origin */
    int32_t partition; /* sl_event_partition */
    int64_t offset;    /* sl_event_offset */
    int64_t time_ns;   /* sl_event_time */
    char *fields;      /* the event's fields as JSON ({"k":...,"h":{...}}), "{}" if none */
};

/* Sink "t_kmsgs": records every event, acknowledges each batch at once; with
 * `hold_after` N, keeps the batches after the first N unacknowledged (SL_PENDING from
 * the fourth kept one, never woken). With `stop_at` N, stops the pipeline (`p`, set by
 * the test) once N events were received. */
struct t_kmsgs {
    int64_t hold_after;         /* option */
    int64_t stop_at;            /* option */
    struct sl_pipeline *p;      /* set by the test, for stop_at */
    struct t_kmsg *m;           /* received, in order */
    size_t n, cap;              /* used / room */
    size_t distinct;            /* messages past every earlier offset of their partition
                                   (a repeat after a rejoin does not count): for stop_at */
    int64_t next_offset[64];    /* per partition (< 64): the offset after the highest */
    atomic_llong acked_events;  /* events acknowledged (read by other threads) */
    atomic_llong acked_batches; /* batches acknowledged */
    struct sl_batch *kept[64];  /* held batches */
    size_t nkept;
    void (*on_write)(struct sl_stage *, struct t_kmsgs *, struct sl_batch *); /* hook */
    void *arg;                                                                /* for it */
};
extern const struct sl_stage_type t_kmsgs;

/* Frees what `r` recorded. */
void t_kmsgs_clear(struct t_kmsgs *r);

/* kcat produces messages first..last-1 to `topic` at `boot`: key "key-N", value
 * {"n":N,"msg":"message N"} padded to about `size` bytes (0: no padding), headers
 * trace=abc and env=test. Asserts kcat succeeded. */
void t_kcat_produce(const char *boot, const char *topic, int64_t first, int64_t last, size_t size);

/* kcat produces the lines of `text` (one message each, no key) to `topic`. */
void t_kcat_lines(const char *boot, const char *topic, const char *text);

/* The committed offsets of `group` for partitions 0..nparts-1 of `topic`, read by a
 * consumer handle of its own (not a member): out[i] = offset, -1001 when none. Returns
 * 0 or the librdkafka error. */
int t_committed(const char *boot, const char *group, const char *topic, int nparts, int64_t *out);

/* The high watermarks of partitions 0..nparts-1 of `topic` (messages per partition). */
void t_watermarks(const char *boot, const char *topic, int nparts, int64_t *out);

#endif
