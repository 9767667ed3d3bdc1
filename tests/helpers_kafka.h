/* Helpers for the Kafka connectors' tests: reading a topic back with kcat, an
 * independent client, and finding the pipeline's mock cluster. */
#ifndef SLUICE_TEST_HELPERS_KAFKA_H
#define SLUICE_TEST_HELPERS_KAFKA_H

#include <stddef.h>

#include <sluice/sluice.h>

/* Everything topic `topic` holds on the cluster at `brokers`, from the beginning to its
 * end, one line per message formatted by kcat's `fmt` (e.g. "%k\t%h\t%s\n"), as kcat
 * prints them (partition by partition as they arrive). Owned (free); asserts that kcat
 * ran and exited 0. */
char *t_kcat(const char *brokers, const char *topic, const char *fmt);

/* The lines of `text` sorted (owned, NUL-terminated), so that messages read from several
 * partitions compare whole. */
char *t_sorted_lines(const char *text);

/* The bootstrap address of the mock cluster of `brokers` brokers that `stage`'s pipeline
 * runs (borrowed), or NULL when none runs. */
const char *t_mock_bootstraps(struct sl_stage *stage, int brokers);

/* Runs `cmd` (sh -c) and returns its stdout (owned), asserting exit status 0. */
char *t_run_cmd(const char *cmd);

#endif
