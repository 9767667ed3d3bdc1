/* kafka_mock TOPIC:PARTITIONS...: hosts librdkafka's mock cluster (one broker) in a process
 * of its own, so that several `sluice` processes and kcat can share it: makes the topics,
 * prints the bootstrap address on a line, and serves until its standard input ends (the
 * test closes the pipe, or dies). For the Kafka source's process tests (test_kafka_runs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../connectors/kafka/client.h"

int main(int argc, char **argv)
{
    struct sl_error err = {0};
    struct sl__kafka_mock *m = sl__kafka_mock_new(1, &err);
    if (!m) {
        fprintf(stderr, "kafka_mock: %s\n", err.msg);
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        char name[256];
        const char *colon = strchr(argv[i], ':');
        int parts = colon ? atoi(colon + 1) : 1;
        snprintf(name, sizeof name, "%.*s", colon ? (int)(colon - argv[i]) : 255, argv[i]);
        if (sl__kafka_mock_create_topic(m, name, parts, &err)) {
            fprintf(stderr, "kafka_mock: %s\n", err.msg);
            return 1;
        }
    }
    printf("%s\n", sl__kafka_mock_bootstraps(m));
    fflush(stdout);
    char buf[256];
    while (read(0, buf, sizeof buf) > 0) continue;
    sl__kafka_mock_free(m);
    return 0;
}
