/* Throughput of the JSON reader on log lines.
 *
 * Two sets of lines, each about `megabytes` MB in memory: first the benchmark log (the
 * lines of tests/bench/bench_logs, tests/bench/loglines.h: about 217 bytes, strings and
 * integers, one nested object; the figure for parse_json is on these), then a
 * harder mix (about 200 bytes: a float, an array, a boolean, a non-ASCII string besides).
 * For each, times sl_json_validate and sl_json_each_member (the walk of parse_json) over
 * every line, and a lookup and a write for reference. Reports the best of several passes
 * in MB/s (10^6 bytes per second, line bytes only, newlines not counted).
 *
 * Usage: bench_json [megabytes] [passes]    default 100 MB and 5 passes
 *
 * The stage itself (the walk plus the event's fields) is bench_stages' `parse_json`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sluice/json.h>

#include "loglines.h"

/* Writes line i of the mix at `o`; returns its length. */
static int make_mixed_line(char *o, size_t cap, size_t i)
{
    static const char *levels[] = {"debug", "info", "info", "info", "warn", "error"};
    static const char *msgs[] = {"user login ok",
                                 "cache miss",
                                 "request finished",
                                 "upstream timeout after retry",
                                 "payment \\\"declined\\\" by issuer",
                                 "caf\xc3\xa9 order accepted",
                                 "connection reset by peer",
                                 "GET /healthz"};
    static const char *paths[] = {"/api/v1/login", "/api/v1/orders", "/healthz",
                                  "/api/v2/users/search"};
    unsigned r = next();
    return snprintf(o, cap,
                    "{\"ts\":\"2024-01-%02uT%02u:%02u:%02u.%03uZ\",\"level\":\"%s\",\"msg\":\"%s\","
                    "\"user_id\":%u,\"latency_ms\":%u,\"ratio\":%u.%02u,"
                    "\"http\":{\"status\":%u,\"path\":\"%s\"},\"tags\":[\"a\",\"b\"],\"ok\":%s}",
                    1 + (unsigned)(i / 86400000) % 28, r % 24, r / 24 % 60, r / 1440 % 60, r % 1000,
                    levels[r % 6], msgs[r / 7 % 8], next() % 1000000, next() % 2000, r % 10,
                    r / 10 % 100, r % 5 ? 200 : 503, paths[r / 3 % 4], r & 1 ? "true" : "false");
}

/* About `target` bytes of lines made by `make` (the log's or the mix's). */
static struct lines generate_bytes(size_t target, int (*make)(char *, size_t, size_t))
{
    struct lines l = {.buf = malloc(target + 4096)};
    size_t cap = target / 64;
    l.off = malloc(cap * sizeof *l.off);
    l.len = malloc(cap * sizeof *l.len);
    size_t pos = 0;
    while (pos < target && l.n < cap) {
        int n = make(l.buf + pos, target + 4096 - pos, l.n);
        l.off[l.n] = pos;
        l.len[l.n++] = (uint32_t)n;
        l.bytes += (size_t)n;
        pos += (size_t)n;
        l.buf[pos++] = '\n';
    }
    return l;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int count_member(void *arg, const char *name, size_t name_len, bool escaped,
                        const struct sl_value *v)
{
    (void)name, (void)escaped;
    *(size_t *)arg += name_len + v->len;
    return 0;
}

enum op { OP_VALIDATE, OP_EACH_MEMBER, OP_GET, OP_WRITE };

/* One pass of `op` over every line; returns a checksum so the work is not dropped. */
static size_t run(const struct lines *l, enum op op, char *out)
{
    size_t sum = 0;
    for (size_t i = 0; i < l->n; i++) {
        const char *s = l->buf + l->off[i];
        struct sl_value v;
        switch (op) {
        case OP_VALIDATE: sum += sl_json_validate(s, l->len[i], NULL) == 0; break;
        case OP_EACH_MEMBER: sl_json_each_member(s, l->len[i], count_member, &sum, NULL); break;
        case OP_GET:
            if (sl_json_get(s, l->len[i], "http.status", 11, &v) == 0) sum += v.len;
            break;
        case OP_WRITE:
            v = sl_value_string(s, l->len[i]);
            sum += sl_json_write_value(&v, out, SL_JSON_ESCAPE_MAX(4096) + 2);
            break;
        }
    }
    return sum;
}

static void bench(const char *title, const struct lines *l, int passes, char *out)
{
    static const char *names[] = {"sl_json_validate", "sl_json_each_member",
                                  "sl_json_get http.status", "sl_json_write_value (string)"};
    printf("%s: %zu lines, %.1f MB, %.1f bytes/line on average\n", title, l->n,
           (double)l->bytes / 1e6, (double)l->bytes / (double)l->n);
    for (int op = OP_VALIDATE; op <= OP_WRITE; op++) {
        double best = 1e9;
        size_t sum = 0;
        for (int p = 0; p < passes; p++) {
            double t0 = now();
            sum = run(l, (enum op)op, out);
            double t = now() - t0;
            if (t < best) best = t;
        }
        printf("  %-30s %8.1f MB/s  %6.1f ns/line  (checksum %zu)\n", names[op],
               (double)l->bytes / 1e6 / best, best * 1e9 / (double)l->n, sum);
    }
}

int main(int argc, char **argv)
{
    size_t mb = argc > 1 ? strtoul(argv[1], NULL, 10) : 100;
    int passes = argc > 2 ? atoi(argv[2]) : 5;
    char *out = malloc(SL_JSON_ESCAPE_MAX(4096) + 2);
    struct lines sets[2] = {generate_bytes(mb * 1000000, make_line),
                            generate_bytes(mb * 1000000, make_mixed_line)};
    bench("the benchmark log (bench_logs' lines)", &sets[0], passes, out);
    bench("the mix (floats, arrays, booleans)", &sets[1], passes, out);
    for (int i = 0; i < 2; i++) {
        free(sets[i].buf);
        free(sets[i].off);
        free(sets[i].len);
    }
    free(out);
    return 0;
}
