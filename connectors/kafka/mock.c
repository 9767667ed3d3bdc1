/* librdkafka's in-process mock cluster (client.h, "the mock cluster") for the stages: one
 * per pipeline and broker count (made by mock_host.c), shared by the stages with
 * sl_stage_share and freed with the pipeline after every stage closed. `sluice
 * kafka-mock` hosts one in a process of its own. */
#include <stdio.h>

#include "client.h"

static void mock_free(void *ptr)
{
    sl__kafka_mock_free(ptr);
}

struct sl__kafka_mock *sl__kafka_stage_mock(struct sl_stage *stage, int brokers,
                                            struct sl_error *err)
{
    char key[32];
    snprintf(key, sizeof key, "kafka-mock:%d", brokers);
    struct sl__kafka_mock *m = sl_stage_shared(stage, key);
    if (m) return m;
    if (!(m = sl__kafka_mock_new(brokers, err))) return NULL;
    int rc = sl_stage_share(stage, key, m, NULL, mock_free);
    if (rc) {
        sl__kafka_mock_free(m);
        sl_error_set(err, rc, "out of memory");
        return NULL;
    }
    sl_stage_log(stage, SL_LOG_INFO, "mock Kafka cluster of %d broker%s at %s", brokers,
                 brokers == 1 ? "" : "s", sl__kafka_mock_bootstraps(m));
    return m;
}

int sl__kafka_mock_topic(struct sl_stage *stage, const char *brokers, const char *topic,
                         int partitions, struct sl_error *err)
{
    int n = sl__kafka_brokers_parse(brokers, NULL, err);
    if (n <= 0) return n;
    struct sl__kafka_mock *m = sl__kafka_stage_mock(stage, n, err);
    return m ? sl__kafka_mock_create_topic(m, topic, partitions, err) : err->code;
}
