/* The benchmark log: the JSON lines tests/bench/bench_logs runs W1 and W2 over (made by
 * `bench_stages --generate N`), also read by bench_stages and bench_json. Header-only
 * (static functions): each benchmark is one program.
 *
 * About 217 bytes a line, 5% "level":"error", 10% "warn", deterministic: ts, level,
 * service, msg (a sixth with an escape), user_id, latency_ms, http {method, path,
 * status}, trace. */
#ifndef SLUICE_BENCH_LOGLINES_H
#define SLUICE_BENCH_LOGLINES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct lines {
    char *buf;     /* all lines, '\n'-terminated */
    size_t *off;   /* start of each */
    uint32_t *len; /* bytes of each, without the '\n' */
    size_t n;      /* lines */
    size_t bytes;  /* sum of len */
};

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint32_t next(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* Line i: level by i (5% error, 10% warn, spread evenly), the rest pseudo-random. */
static int make_line(char *o, size_t cap, size_t i)
{
    static const char *const services[] = {"checkout", "search", "auth", "catalog", "payments"};
    static const char *const msgs[] = {"request done",
                                       "cache miss",
                                       "upstream timeout",
                                       "user \\\"bob\\\" logged in",
                                       "caf\\u00e9 order accepted",
                                       "connection reset by peer"};
    static const char *const paths[] = {"/api/v1/orders", "/api/v1/login", "/healthz",
                                        "/api/v2/users/search"};
    static const char *const methods[] = {"GET", "GET", "POST", "PUT"};
    const char *level = i % 20 == 7 ? "error" : i % 10 == 3 ? "warn" : i % 3 ? "info" : "debug";
    unsigned r = next(), q = next();
    return snprintf(
        o, cap,
        "{\"ts\":\"2024-01-%02uT%02u:%02u:%02u.%03uZ\",\"level\":\"%s\",\"service\":\"%s\","
        "\"msg\":\"%s\",\"user_id\":%u,\"latency_ms\":%u,\"http\":{\"method\":\"%s\","
        "\"path\":\"%s\",\"status\":%u},\"trace\":\"%08x%08x\"}",
        1 + (unsigned)(i / 86400000) % 28, (unsigned)(i / 3600000) % 24, (unsigned)(i / 60000) % 60,
        (unsigned)(i / 1000) % 60, (unsigned)(i % 1000), level, services[r % 5], msgs[r / 5 % 6],
        q % 1000000, r / 30 % 2000, methods[q / 7 % 4], paths[q / 28 % 4], r % 7 ? 200 : 503, r, q);
}

static inline struct lines generate(size_t n)
{
    struct lines l = {.buf = malloc(n * 256),
                      .off = malloc(n * sizeof(size_t)),
                      .len = malloc(n * sizeof(uint32_t))};
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        int len = make_line(l.buf + pos, 255, i);
        l.off[i] = pos;
        l.len[i] = (uint32_t)len;
        l.bytes += (size_t)len;
        pos += (size_t)len;
        l.buf[pos++] = '\n';
    }
    l.n = n;
    return l;
}

#endif
