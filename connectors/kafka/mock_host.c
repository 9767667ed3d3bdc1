/* A mock cluster on a handle of its own (client.h, "the mock cluster"): made, asked for
 * its address, given topics, freed. Uses nothing but librdkafka and sl_error_set, so that
 * `sluice kafka-mock` (cli/kafka_mock.c) builds it into the program too: the library
 * exports only its public API. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

struct sl__kafka_mock {
    rd_kafka_t *rk;             /* the handle hosting the cluster (owned) */
    rd_kafka_mock_cluster_t *c; /* the cluster (owned) */
    char *bootstraps;           /* its address (owned) */
};

/* The hosting handle logs nothing: it is no client of anything, and its threads must not
 * write to stderr. */
static void quiet(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk, (void)level, (void)fac, (void)buf;
}

struct sl__kafka_mock *sl__kafka_mock_new(int brokers, struct sl_error *err)
{
    struct sl__kafka_mock *m = calloc(1, sizeof *m);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char why[512];
    if (!m || !conf) {
        free(m);
        if (conf) rd_kafka_conf_destroy(conf);
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, quiet);
    if (!(m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why))) {
        rd_kafka_conf_destroy(conf);
        free(m);
        sl_error_set(err, SL_EIO, "cannot host a mock Kafka cluster: %s", why);
        return NULL;
    }
    m->c = rd_kafka_mock_cluster_new(m->rk, brokers);
    if (!m->c || !(m->bootstraps = strdup(rd_kafka_mock_cluster_bootstraps(m->c)))) {
        sl__kafka_mock_free(m);
        sl_error_set(err, SL_EIO, "cannot start a mock Kafka cluster of %d brokers", brokers);
        return NULL;
    }
    return m;
}

void sl__kafka_mock_free(struct sl__kafka_mock *m)
{
    if (!m) return;
    if (m->c) rd_kafka_mock_cluster_destroy(m->c);
    rd_kafka_destroy(m->rk);
    free(m->bootstraps);
    free(m);
}

const char *sl__kafka_mock_bootstraps(const struct sl__kafka_mock *m)
{
    return m->bootstraps;
}

rd_kafka_mock_cluster_t *sl__kafka_mock_cluster(const struct sl__kafka_mock *m)
{
    return m->c;
}

int sl__kafka_mock_create_topic(struct sl__kafka_mock *m, const char *topic, int partitions,
                                struct sl_error *err)
{
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(m->c, topic, partitions, 1);
    if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        return sl_error_set(err, SL_EIO,
                            "mock cluster: cannot create topic '%s' of %d partitions: %s", topic,
                            partitions, rd_kafka_err2str(e));
    return 0;
}
