/* Test helpers for the socket and syslog sources (helpers_socket.h). */
#include "helpers_socket.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char *copy_n(const char *s, size_t n)
{
    char *c = malloc(n + 1);
    cr_assert_not_null(c);
    memcpy(c, s, n);
    c[n] = 0;
    return c;
}

static void record(struct t_gate *g, struct sl_batch *b)
{
    for (size_t i = 0; i < sl_batch_count(b); i++) {
        const struct sl_event *ev = sl_batch_event_const(b, i);
        if (g->n == g->cap) {
            g->cap = g->cap ? 2 * g->cap : 1024;
            g->payloads = realloc(g->payloads, g->cap * sizeof *g->payloads);
            g->origins = realloc(g->origins, g->cap * sizeof *g->origins);
            cr_assert(g->payloads && g->origins);
        }
        size_t len;
        const char *p = sl_event_payload(ev, &len);
        const char *o = sl_event_origin(ev);
        g->payloads[g->n] = copy_n(p ? p : "", p ? len : 0);
        g->origins[g->n] = copy_n(o ? o : "", o ? strlen(o) : 0);
        g->n++;
    }
}

static enum sl_poll gate_write(struct sl_stage *s, struct sl_batch *b)
{
    struct t_gate *g = sl_stage_state(s);
    if (!g->shut) {
        record(g, b);
        sl_ack(b);
        return SL_READY;
    }
    if (g->nheld == g->held_cap) {
        g->held_cap = g->held_cap ? 2 * g->held_cap : 16;
        g->held = realloc(g->held, g->held_cap * sizeof *g->held);
        cr_assert_not_null(g->held);
    }
    g->held[g->nheld++] = b;
    return SL_PENDING;
}

void t_gate_open(struct sl_stage *s)
{
    struct t_gate *g = sl_stage_state(s);
    g->shut = false;
    for (size_t i = 0; i < g->nheld; i++) {
        record(g, g->held[i]);
        sl_ack(g->held[i]);
    }
    g->nheld = 0;
    sl_stage_wake(s);
}

static int gate_flush(struct sl_stage *s, struct sl_emit *out, bool end)
{
    (void)out, (void)end;
    t_gate_open(s);
    return 0;
}

static void gate_close(struct sl_stage *s)
{
    struct t_gate *g = sl_stage_state(s);
    for (size_t i = 0; i < g->n; i++) {
        free(g->payloads[i]);
        free(g->origins[i]);
    }
    free(g->payloads);
    free(g->origins);
    free(g->held);
}

const struct sl_stage_type t_gate = {
    .abi = SL_STAGE_ABI,
    .name = "t_gate",
    .kind = SL_SINK,
    .doc = "test sink that can be held shut",
    .state_size = sizeof(struct t_gate),
    .write = gate_write,
    .flush = gate_flush,
    .close = gate_close,
};

struct watch {
    struct sl_pipeline *p;
    bool (*done)(void *);
    void *arg;
    int64_t deadline;
    bool met, stopped;
};

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct watch *w = arg;
    if (w->stopped) return;
    w->met = w->done(w->arg);
    if (w->met || t_now_ms() > w->deadline) {
        w->stopped = true;
        sl_pipeline_stop(w->p);
    }
}

bool t_run_until(struct sl_pipeline *p, bool (*done)(void *arg), void *arg, int64_t deadline_ms)
{
    struct watch w = {p, done, arg, t_now_ms() + deadline_ms, false, false};
    struct event *tick = event_new(sl_pipeline_event_base(p), -1, EV_PERSIST, on_tick, &w);
    struct timeval tv = {0, 2000};
    event_add(tick, &tv);
    struct sl_error err = {0};
    int rc = sl_pipeline_run(p, &err);
    event_free(tick);
    cr_assert_eq(rc, 0, "run: %s (stage %s)", err.msg, err.stage);
    return w.met;
}

struct find {
    const char *name;
    uint64_t value;
};

static void find_counter(void *arg, const char *name, const char *help, uint64_t value)
{
    (void)help;
    struct find *f = arg;
    if (strcmp(name, f->name) == 0) f->value = value;
}

uint64_t t_counter_value(const struct sl_stage *stage, const char *name)
{
    struct find f = {name, 0};
    sl_stage_counters(stage, find_counter, &f);
    return f.value;
}

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

int t_tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = loopback(port);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect to %d", port);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

void t_send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        cr_assert(n > 0, "send");
        p += n;
        len -= (size_t)n;
    }
}

int t_udp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = loopback(port);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

int64_t t_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
