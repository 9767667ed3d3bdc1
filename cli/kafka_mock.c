/* `sluice kafka-mock [--brokers N] [--topic NAME:PARTITIONS ...]`: hosts librdkafka's
 * mock cluster in a process of its own, so that several `sluice` processes and other
 * clients (kcat) share one cluster, and a `sluice run` can be killed and restarted
 * against the same data. Prints the bootstrap address on stdout (one line), then runs
 * until SIGINT or SIGTERM.
 *
 * For tests and demos it reads commands on its standard input, one per line, and
 * answers each with one line on stdout ("ok" or "error: why"):
 *   down ID          broker ID (1..N) stops answering (rd_kafka_mock_broker_set_down)
 *   up ID            it answers again
 *   topic NAME:P     creates a topic of P partitions */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "../connectors/kafka/client.h"
#include "cli.h"

/* Reads NAME:PARTITIONS into name (cap bytes) and *n. Returns 0 or -1. */
static int topic_arg(const char *arg, char *name, size_t cap, int *n)
{
    const char *colon = strrchr(arg, ':');
    char *end = NULL;
    long p = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || colon == arg || !colon[1] || *end || p < 1 || p > 100000 ||
        (size_t)(colon - arg) >= cap)
        return -1;
    memcpy(name, arg, (size_t)(colon - arg));
    name[colon - arg] = '\0';
    *n = (int)p;
    return 0;
}

static int make_topic(struct sl__kafka_mock *m, const char *arg, struct sl_error *err)
{
    char name[256];
    int n;
    if (topic_arg(arg, name, sizeof name, &n))
        return sl_error_set(err, SL_EINVAL, "a topic is NAME:PARTITIONS such as logs:6; found '%s'",
                            arg);
    return sl__kafka_mock_create_topic(m, name, n, err);
}

/* One command line of standard input; answers on stdout. */
static void command(struct sl__kafka_mock *m, char *line)
{
    line[strcspn(line, "\r\n")] = '\0';
    struct sl_error err = {0};
    char word[16] = "", arg[300] = "";
    if (sscanf(line, "%15s %299s", word, arg) < 1) return;
    if (!strcmp(word, "down") || !strcmp(word, "up")) {
        long id = strtol(arg, NULL, 10);
        rd_kafka_resp_err_t e =
            !strcmp(word, "down")
                ? rd_kafka_mock_broker_set_down(sl__kafka_mock_cluster(m), (int32_t)id)
                : rd_kafka_mock_broker_set_up(sl__kafka_mock_cluster(m), (int32_t)id);
        if (e) sl_error_set(&err, SL_EINVAL, "broker %ld: %s", id, rd_kafka_err2str(e));
    } else if (!strcmp(word, "topic")) {
        make_topic(m, arg, &err);
    } else {
        sl_error_set(&err, SL_EINVAL, "unknown command '%s' (down ID, up ID, topic NAME:P)", word);
    }
    if (err.code)
        printf("error: %s\n", err.msg);
    else
        printf("ok\n");
    fflush(stdout);
}

/* Serves commands until a signal comes. Returns the signal number. */
static int serve(struct sl__kafka_mock *m, int sfd)
{
    struct pollfd fds[2] = {{.fd = sfd, .events = POLLIN}, {.fd = STDIN_FILENO, .events = POLLIN}};
    char buf[4096];
    size_t used = 0;
    for (;;) {
        if (poll(fds, 2, -1) < 0 && errno != EINTR) return SIGTERM;
        if (fds[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) return (int)si.ssi_signo;
        }
        if (!(fds[1].revents & (POLLIN | POLLHUP))) continue;
        ssize_t r = read(STDIN_FILENO, buf + used, sizeof buf - 1 - used);
        if (r <= 0) { /* end of input: only a signal ends the cluster now */
            fds[1].fd = -1;
            continue;
        }
        used += (size_t)r;
        buf[used] = '\0';
        char *nl, *line = buf;
        while ((nl = strchr(line, '\n'))) {
            *nl = '\0';
            command(m, line);
            line = nl + 1;
        }
        used -= (size_t)(line - buf);
        memmove(buf, line, used);
        if (used == sizeof buf - 1) used = 0; /* a line too long: forgotten */
    }
}

int cli_cmd_kafka_mock(int brokers, const char *const *topics, int ntopics)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL); /* before librdkafka's threads: they inherit it */
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    struct sl_error err = {0};
    struct sl__kafka_mock *m = sfd < 0 ? NULL : sl__kafka_mock_new(brokers, &err);
    if (!m) {
        cli_log(SL_LOG_ERROR, NULL, "kafka-mock: %s", sfd < 0 ? strerror(errno) : err.msg);
        if (sfd >= 0) close(sfd);
        return CLI_ERUN;
    }
    for (int i = 0; i < ntopics; i++)
        if (make_topic(m, topics[i], &err)) {
            cli_log(SL_LOG_ERROR, NULL, "kafka-mock: %s", err.msg);
            sl__kafka_mock_free(m);
            close(sfd);
            return CLI_EUSAGE;
        }
    printf("%s\n", sl__kafka_mock_bootstraps(m));
    fflush(stdout);
    cli_log(SL_LOG_INFO, NULL,
            "mock Kafka cluster of %d broker%s at %s; SIGINT or SIGTERM stops it", brokers,
            brokers == 1 ? "" : "s", sl__kafka_mock_bootstraps(m));
    int sig = serve(m, sfd);
    cli_log(SL_LOG_INFO, NULL, "kafka-mock: %s: stopping", strsignal(sig));
    sl__kafka_mock_free(m);
    close(sfd);
    return CLI_OK;
}
