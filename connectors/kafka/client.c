/* The Kafka connectors' shared client code (client.h): configs from a stage's options,
 * the client handle and its log lines, a librdkafka queue joined to the loop. The mock
 * cluster is in mock.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "client.h"

/* ---- brokers ------------------------------------------------------------------------------ */

int sl__kafka_brokers_parse(const char *brokers, const struct sl_config *at, struct sl_error *err)
{
    if (!brokers || !*brokers)
        return sl_config_error(at, err, SL_ECONFIG,
                               "brokers is empty: give host:port[,host:port...] or mock[:N]");
    if (strncmp(brokers, "mock", 4) != 0 || (brokers[4] && brokers[4] != ':')) return 0;
    if (!brokers[4]) return 1;
    char *end = NULL;
    long n = strtol(brokers + 5, &end, 10);
    if (!brokers[5] || *end || n < 1 || n > SL__KAFKA_MOCK_MAX)
        return sl_config_error(at, err, SL_ECONFIG,
                               "brokers '%s': mock:N takes a number of brokers from 1 to %d",
                               brokers, SL__KAFKA_MOCK_MAX);
    return (int)n;
}

/* ---- configuration ------------------------------------------------------------------------- */

/* Sets one property; a refusal is a config error at `at` (NULL: none). */
static int set_prop(rd_kafka_conf_t *conf, const char *key, const char *value,
                    const struct sl_config *at, struct sl_error *err)
{
    char why[512];
    if (rd_kafka_conf_set(conf, key, value, why, sizeof why) == RD_KAFKA_CONF_OK) return 0;
    return sl_config_error(at, err, SL_ECONFIG, "librdkafka: %s: '%s' refused: %s", key, value,
                           why);
}

/* Sets every scalar of mapping `map`, the keys prefixed with `prefix` (nested mappings
 * add their key and a dot). */
static int set_map(rd_kafka_conf_t *conf, const struct sl_config *map, const char *prefix,
                   struct sl_error *err)
{
    if (sl_config_kind(map) != SL_CFG_MAP)
        return sl_config_error(map, err, SL_ECONFIG,
                               "librdkafka: expected a mapping of librdkafka properties");
    for (size_t i = 0; i < sl_config_len(map); i++) {
        const char *key;
        const struct sl_config *v = sl_config_at(map, i, &key);
        char full[512];
        if ((size_t)snprintf(full, sizeof full, "%s%s", prefix, key) >= sizeof full)
            return sl_config_error(v, err, SL_ECONFIG, "librdkafka: key too long");
        int rc;
        if (sl_config_kind(v) == SL_CFG_MAP) {
            strcat(full, ".");
            rc = set_map(conf, v, full, err);
        } else if (sl_config_kind(v) == SL_CFG_LIST) {
            rc = sl_config_error(v, err, SL_ECONFIG,
                                 "librdkafka: %s: expected a value (a list is written as "
                                 "one string, \"a,b\")",
                                 full);
        } else {
            rc = set_prop(conf, full, sl_config_str(v), sl_config_key_at(map, i), err);
        }
        if (rc) return rc;
    }
    return 0;
}

static int set_pairs(rd_kafka_conf_t *conf, const char *const *pairs, struct sl_error *err)
{
    for (size_t i = 0; pairs && pairs[i]; i += 2) {
        int rc = set_prop(conf, pairs[i], pairs[i + 1], NULL, err);
        if (rc) return rc;
    }
    return 0;
}

/* The config: defaults, then the user's map. Owned, or NULL with `err`. */
static rd_kafka_conf_t *build(const struct sl_config *map, const char *const *defaults,
                              struct sl_error *err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!conf) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    if (set_pairs(conf, defaults, err) || (map && set_map(conf, map, "", err))) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

int sl__kafka_conf_check(const struct sl_config *map, const char *const *defaults,
                         struct sl_error *err)
{
    rd_kafka_conf_t *conf = build(map, defaults, err);
    if (!conf) return err->code;
    rd_kafka_conf_destroy(conf);
    return 0;
}

rd_kafka_conf_t *sl__kafka_conf(struct sl_stage *stage, const char *brokers,
                                const struct sl_config *map, const char *const *defaults,
                                struct sl_error *err)
{
    int mock = sl__kafka_brokers_parse(brokers, NULL, err);
    if (mock < 0) return NULL;
    const char *boot = brokers;
    if (mock) {
        struct sl__kafka_mock *m = sl__kafka_stage_mock(stage, mock, err);
        if (!m) return NULL;
        boot = sl__kafka_mock_bootstraps(m);
    }
    char id[128];
    snprintf(id, sizeof id, "sluice-%s", sl_stage_name(stage));
    const char *base[] = {"client.id", id, "bootstrap.servers", boot, NULL};
    rd_kafka_conf_t *conf = build(NULL, base, err);
    if (!conf) return NULL;
    const char *last[] = {"log.queue", "true", NULL};
    if (set_pairs(conf, defaults, err) || (map && set_map(conf, map, "", err)) ||
        set_pairs(conf, last, err)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

/* ---- the client ------------------------------------------------------------------------------ */

static enum sl_log_level log_level(int syslog_level)
{
    if (syslog_level <= 2) return SL_LOG_ERROR;
    if (syslog_level <= 4) return SL_LOG_WARN; /* 3: a broker refused; its error event says so */
    return syslog_level <= 6 ? SL_LOG_INFO : SL_LOG_DEBUG;
}

static void drain_logs(struct sl_stage *stage, void *arg)
{
    (void)stage;
    struct sl__kafka_client *c = arg;
    rd_kafka_event_t *ev;
    while ((ev = rd_kafka_queue_poll(c->logq, 0))) {
        sl__kafka_client_event(c, ev);
        rd_kafka_event_destroy(ev);
    }
}

int sl__kafka_client_open(struct sl__kafka_client *c, struct sl_stage *stage, rd_kafka_type_t type,
                          rd_kafka_conf_t *conf, struct sl_error *err)
{
    memset(c, 0, sizeof *c);
    c->stage = stage;
    c->m_errors = sl_stage_counter(stage, "kafka_broker_errors",
                                   "Errors the Kafka client reported (a broker down or "
                                   "unreachable, an unknown topic).");
    char why[512];
    if (!(c->rk = rd_kafka_new(type, conf, why, sizeof why))) {
        rd_kafka_conf_destroy(conf);
        return sl_error_set(err, SL_EIO, "cannot make a Kafka client: %s", why);
    }
    if (!(c->logq = rd_kafka_queue_new(c->rk))) {
        sl__kafka_client_close(c);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    rd_kafka_resp_err_t e = rd_kafka_set_log_queue(c->rk, c->logq);
    if (e) {
        sl__kafka_client_close(c);
        return sl_error_set(err, SL_EIO, "librdkafka log queue: %s", rd_kafka_err2str(e));
    }
    if (!(c->log_watch = sl__kafka_watch_new(stage, c->logq, drain_logs, c, err))) {
        sl__kafka_client_close(c);
        return err->code;
    }
    return 0;
}

static void told_error(struct sl__kafka_client *c, rd_kafka_event_t *ev)
{
    rd_kafka_resp_err_t code = rd_kafka_event_error(ev);
    c->errors++;
    sl_counter_add(c->m_errors, 1);
    if (rd_kafka_event_error_is_fatal(ev)) {
        char why[512];
        rd_kafka_fatal_error(c->rk, why, sizeof why);
        snprintf(c->last_error, sizeof c->last_error, "%s", why);
        c->fatal = true;
        sl_stage_error(c->stage, SL_EIO, "Kafka client failed: %s", why);
        sl_stage_wake(c->stage);
        return;
    }
    snprintf(c->last_error, sizeof c->last_error, "%s", rd_kafka_event_error_string(ev));
    sl_stage_log(c->stage, code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ? SL_LOG_WARN : SL_LOG_INFO,
                 "kafka: %s (%s)", c->last_error, rd_kafka_err2name(code));
}

bool sl__kafka_client_event(struct sl__kafka_client *c, rd_kafka_event_t *ev)
{
    switch (rd_kafka_event_type(ev)) {
    case RD_KAFKA_EVENT_ERROR: told_error(c, ev); return true;
    case RD_KAFKA_EVENT_LOG: {
        const char *fac = "", *text = "";
        int level = 6;
        rd_kafka_event_log(ev, &fac, &text, &level);
        sl_stage_log(c->stage, log_level(level), "librdkafka %s: %s", fac, text);
        return true;
    }
    default: return false;
    }
}

void sl__kafka_client_close(struct sl__kafka_client *c)
{
    sl__kafka_watch_free(c->log_watch);
    c->log_watch = NULL;
    if (c->rk) rd_kafka_set_log_queue(c->rk, NULL);
    if (c->logq) rd_kafka_queue_destroy(c->logq);
    c->logq = NULL;
    if (c->rk) rd_kafka_destroy(c->rk);
    c->rk = NULL;
}

/* ---- a queue on the loop ------------------------------------------------------------------------
 */

struct sl__kafka_watch {
    struct sl_stage *stage;                   /* passed to ready */
    rd_kafka_queue_t *q;                      /* the queue (borrowed) */
    int fd;                                   /* the eventfd librdkafka writes to */
    struct event *ev;                         /* fd readable, on the loop */
    void (*ready)(struct sl_stage *, void *); /* the stage's drain */
    void *arg;                                /* passed to ready */
};

static void on_fd(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct sl__kafka_watch *w = arg;
    uint64_t n;
    /* First empty the counter, then drain: an enqueue after the drain's last poll
     * writes again, so nothing is left unannounced. */
    while (read(fd, &n, sizeof n) < 0 && errno == EINTR) continue;
    w->ready(w->stage, w->arg);
}

struct sl__kafka_watch *sl__kafka_watch_new(struct sl_stage *stage, rd_kafka_queue_t *q,
                                            void (*ready)(struct sl_stage *stage, void *arg),
                                            void *arg, struct sl_error *err)
{
    struct sl__kafka_watch *w = calloc(1, sizeof *w);
    if (!w) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    *w = (struct sl__kafka_watch){.stage = stage, .q = q, .ready = ready, .arg = arg};
    w->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->fd < 0) {
        sl_error_set(err, SL_EIO, "eventfd: %s", strerror(errno));
        free(w);
        return NULL;
    }
    w->ev = event_new(sl_stage_event_base(stage), w->fd, EV_READ | EV_PERSIST, on_fd, w);
    if (!w->ev || event_add(w->ev, NULL)) {
        sl_error_set(err, SL_ENOMEM, "cannot watch a Kafka queue on the loop");
        if (w->ev) event_free(w->ev);
        close(w->fd);
        free(w);
        return NULL;
    }
    static const uint64_t one = 1; /* an eventfd takes 8-byte writes */
    rd_kafka_queue_io_event_enable(q, w->fd, &one, sizeof one);
    sl__kafka_watch_again(w); /* what was queued before is announced too */
    return w;
}

void sl__kafka_watch_again(struct sl__kafka_watch *w)
{
    event_active(w->ev, EV_READ, 0);
}

void sl__kafka_watch_free(struct sl__kafka_watch *w)
{
    if (!w) return;
    rd_kafka_queue_io_event_enable(w->q, -1, NULL, 0);
    event_free(w->ev);
    close(w->fd);
    free(w);
}
