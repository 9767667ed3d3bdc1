/* Throughput of the JSON reader on typical log lines.
 *
 * Generates about 100 MB of JSON log lines in memory (200 bytes on average, like the
 * lines a parse_json stage sees), then times sl_json_validate and sl_json_each_member
 * over every line, and a few other calls for reference. Reports the best of several
 * passes in MB/s (10^6 bytes per second, line bytes only, newlines not counted).
 *
 * Usage: bench_json [megabytes] [passes]
 *
 * Profile (perf record, each_member/validate passes): about half of the reader's time is
 * string_end, the scan of string bytes 8 at a time (SWAR); the container state machine
 * is about a fifth, number_end and value_at most of the rest. A 16-byte SSE2 scan was
 * tried and gave nothing measurable: log-line strings are short, so the first word
 * usually holds the closing quote. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sluice/json.h>

struct lines {
    char *buf;     /* all lines, '\n'-separated */
    size_t *off;   /* start of each line */
    uint32_t *len; /* bytes of each line */
    size_t n;      /* lines */
    size_t bytes;  /* sum of len */
};

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint32_t next(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* Writes one log line at `o`; returns its length. */
static int make_line(char *o, size_t cap, size_t i)
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

static struct lines generate(size_t target)
{
    struct lines l = {.buf = malloc(target + 4096)};
    size_t cap = target / 64;
    l.off = malloc(cap * sizeof *l.off);
    l.len = malloc(cap * sizeof *l.len);
    size_t pos = 0;
    while (pos < target && l.n < cap) {
        int n = make_line(l.buf + pos, target + 4096 - pos, l.n);
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

int main(int argc, char **argv)
{
    size_t mb = argc > 1 ? strtoul(argv[1], NULL, 10) : 100;
    int passes = argc > 2 ? atoi(argv[2]) : 5;
    struct lines l = generate(mb * 1000000);
    printf("%zu lines, %.1f MB, %.1f bytes/line on average\n", l.n, (double)l.bytes / 1e6,
           (double)l.bytes / (double)l.n);
    char *out = malloc(SL_JSON_ESCAPE_MAX(4096) + 2);
    static const char *names[] = {"sl_json_validate", "sl_json_each_member",
                                  "sl_json_get http.status", "sl_json_write_value (string)"};
    for (int op = OP_VALIDATE; op <= OP_WRITE; op++) {
        double best = 1e9;
        size_t sum = 0;
        for (int p = 0; p < passes; p++) {
            double t0 = now();
            sum = run(&l, (enum op)op, out);
            double t = now() - t0;
            if (t < best) best = t;
        }
        printf("%-30s %8.1f MB/s  %6.1f ns/line  (checksum %zu)\n", names[op],
               (double)l.bytes / 1e6 / best, best * 1e9 / (double)l.n, sum);
    }
    free(out);
    free(l.buf);
    free(l.off);
    free(l.len);
    return 0;
}
