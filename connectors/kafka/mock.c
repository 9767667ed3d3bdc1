/* librdkafka's in-process mock cluster (client.h, "the mock cluster"): made on a handle
 * of its own, one per pipeline and broker count, shared by the stages with
 * sl_stage_share and freed with the pipeline after every stage closed. `sluice
 * kafka-mock` hosts one in a process of its own. */
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
                 brokers == 1 ? "" : "s", m->bootstraps);
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
