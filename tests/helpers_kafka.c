/* Helpers for the Kafka tests (helpers_kafka.h). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "../connectors/kafka/client.h"
#include "helpers_kafka.h"

char *t_run_cmd(const char *cmd)
{
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f, "popen %s", cmd);
    size_t len = 0, cap = 1 << 16;
    char *out = malloc(cap);
    size_t n;
    while ((n = fread(out + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) out = realloc(out, cap *= 2);
    }
    out[len] = '\0';
    int st = pclose(f);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: status %d", cmd, st);
    return out;
}

char *t_kcat(const char *brokers, const char *topic, const char *fmt)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "kcat -C -b '%s' -t '%s' -o beginning -e -q -f '%s'", brokers, topic,
             fmt);
    return t_run_cmd(cmd);
}

static int cmp_lines(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char *t_sorted_lines(const char *text)
{
    size_t len = strlen(text), n = 0;
    char *copy = strdup(text);
    char **lines = malloc((len + 1) * sizeof *lines);
    for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    qsort(lines, n, sizeof *lines, cmp_lines);
    char *out = malloc(len + 2), *o = out;
    for (size_t i = 0; i < n; i++) o += sprintf(o, "%s\n", lines[i]);
    *o = '\0';
    free(lines);
    free(copy);
    return out;
}

const char *t_mock_bootstraps(struct sl_stage *stage, int brokers)
{
    char key[32];
    snprintf(key, sizeof key, "kafka-mock:%d", brokers);
    struct sl__kafka_mock *m = sl_stage_shared(stage, key);
    return m ? sl__kafka_mock_bootstraps(m) : NULL;
}
