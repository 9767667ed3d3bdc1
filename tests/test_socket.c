/* The socket source over real loopback sockets: framing (newline, RFC 6587 octet
 * counting) exact whatever the writes, oversize messages counted and skipped, many idle
 * connections, max_connections, idle timeouts, backpressure through the kernel's window
 * (TCP) and counted kernel drops (UDP). Clients are plain blocking sockets on threads. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sluice/builtins.h>

#include "../connectors/socket/internal.h"
#include "helpers.h"
#include "helpers_socket.h"
#include "stage_helpers.h"

static struct sl_pipeline *p;
static struct sl_stage *src, *gate;

static void setup(void)
{
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.batch_max_events = 16;
    o.queue_max_batches = 2;
    struct sl_error err = {0};
    p = sl_pipeline_new(NULL, &o, &err);
    cr_assert_not_null(p, "%s", err.msg);
}

static void teardown(void)
{
    sl_pipeline_free(p);
}

TestSuite(socket, .init = setup, .fini = teardown, .timeout = 60);

/* src (socket, `yaml`) -> gate; started: returns the bound port. */
static int start(const char *yaml)
{
    src = t_stage(p, "in", &sl_stage_socket, yaml);
    gate = t_stage(p, "out", &t_gate, NULL);
    t_connect_port(p, src, NULL, gate);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_start(p, &err), 0, "%s", err.msg);
    return ((struct sl__socket *)sl_stage_state(src))->port;
}

static struct t_gate *g(void)
{
    return sl_stage_state(gate);
}

static size_t want_n;

static bool got_n(void *arg)
{
    (void)arg;
    return g()->n >= want_n;
}

/* ---- the framer alone, on every split of a stream -------------------------------------- */

/* Frames `s` fed in pieces cut at `cuts` (ascending offsets) into "msg|msg|..." with
 * "!" for each oversize message. */
static void frame_all(int framing, size_t max, const char *s, size_t n, const size_t *cuts,
                      size_t ncuts, char *out, size_t cap)
{
    struct sl__socket_framer f = {.framing = framing, .max = max};
    char buf[4096];
    size_t len = 0, fed = 0, w = 0;
    out[0] = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t to = k < ncuts ? cuts[k] : n;
        memcpy(buf + len, s + fed, to - fed);
        len += to - fed;
        fed = to;
        for (;;) {
            const char *msg;
            size_t ml, used;
            int r = sl__socket_frame_next(&f, buf, len, k == ncuts, &msg, &ml, &used);
            if (r == SL__SOCKET_FRAME_MESSAGE)
                w += (size_t)snprintf(out + w, cap - w, "%.*s|", (int)ml, msg);
            if (r == SL__SOCKET_FRAME_OVERSIZE) w += (size_t)snprintf(out + w, cap - w, "!|");
            memmove(buf, buf + used, len - used);
            len -= used;
            cr_assert(r != SL__SOCKET_FRAME_BAD);
            if (r == SL__SOCKET_FRAME_NONE) break;
        }
    }
}

static void every_split(int framing, size_t max, const char *s, const char *expect)
{
    size_t n = strlen(s);
    char out[4096];
    frame_all(framing, max, s, n, NULL, 0, out, sizeof out);
    cr_assert_str_eq(out, expect, "in one piece");
    for (size_t a = 1; a < n; a++) {
        for (size_t b = a; b < n; b++) {
            size_t cuts[2] = {a, b};
            frame_all(framing, max, s, n, cuts, 2, out, sizeof out);
            cr_assert_str_eq(out, expect, "cut at %zu and %zu", a, b);
        }
    }
    size_t cuts[512];
    for (size_t i = 0; i + 1 < n; i++) cuts[i] = i + 1;
    frame_all(framing, max, s, n, cuts, n - 1, out, sizeof out);
    cr_assert_str_eq(out, expect, "byte by byte");
}

Test(socket, newline_framing_is_the_same_for_every_split_of_the_stream)
{
    every_split(SL__SOCKET_FRAME_NEWLINE, 8, "a\nbb\r\n\nccc\n0123456789abc\nok\nlast",
                "a|bb||ccc|!|ok|last|");
}

Test(socket, octet_counting_is_the_same_for_every_split_of_the_stream)
{
    every_split(SL__SOCKET_FRAME_OCTETS, 8, "1 a5 b\ncd\n12 0123456789ab3 end8 12345678",
                "a|b\ncd\n|!|end|12345678|");
}

Test(socket, auto_framing_takes_each_message_as_it_comes)
{
    every_split(SL__SOCKET_FRAME_AUTO, 16, "<13>x y\n9 <13>a\nb c<14>z\n",
                "<13>x y|<13>a\nb c|<14>z|");
}

Test(socket, a_bad_octet_count_is_reported)
{
    struct sl__socket_framer f = {.framing = SL__SOCKET_FRAME_OCTETS, .max = 100};
    const char *msg;
    size_t ml, used;
    cr_assert_eq(sl__socket_frame_next(&f, "x5 hello", 8, false, &msg, &ml, &used),
                 SL__SOCKET_FRAME_BAD);
    cr_assert_eq(sl__socket_frame_next(&f, "05 hello", 8, false, &msg, &ml, &used),
                 SL__SOCKET_FRAME_BAD);
    cr_assert_eq(sl__socket_frame_next(&f, "12345678901234567890", 20, false, &msg, &ml, &used),
                 SL__SOCKET_FRAME_BAD);
}

/* ---- over TCP ----------------------------------------------------------------------------- */

struct client {
    int port;
    const char *const *pieces; /* written one by one, a pause between them */
};

static void *send_pieces(void *arg)
{
    struct client *c = arg;
    int fd = t_tcp_connect(c->port);
    for (size_t i = 0; c->pieces[i]; i++) {
        t_send_all(fd, c->pieces[i], strlen(c->pieces[i]));
        usleep(2000); /* separate segments, so that the source reads them apart */
    }
    close(fd);
    return NULL;
}

static void run_client(struct client *c, size_t n)
{
    pthread_t th;
    pthread_create(&th, NULL, send_pieces, c);
    want_n = n;
    cr_assert(t_run_until(p, got_n, NULL, 10000), "got %zu of %zu", g()->n, n);
    pthread_join(th, NULL);
}

Test(socket, tcp_lines_arrive_exactly_split_or_many_per_write)
{
    static const char *const pieces[] = {
        "one\ntw", "o\r\nthr", "ee", "\nfour\nfive\nsix\n", "seven without a newline", NULL};
    struct client c = {start("address: 127.0.0.1:0"), pieces};
    run_client(&c, 7);
    static const char *const want[] = {
        "one", "two", "three", "four", "five", "six", "seven without a newline"};
    cr_assert_eq(g()->n, 7);
    for (size_t i = 0; i < 7; i++) cr_assert_str_eq(g()->payloads[i], want[i]);
    cr_assert(strncmp(g()->origins[0], "127.0.0.1:", 10) == 0, "%s", g()->origins[0]);
}

Test(socket, tcp_octet_counted_frames_arrive_exactly)
{
    static const char *const pieces[] = {"5 hello11 hello",    " world", "1",
                                         "2 line1\nline2x3 e", "nd",     NULL};
    struct client c = {start("address: 127.0.0.1:0\nframing: octet_counting"), pieces};
    run_client(&c, 4);
    cr_assert_str_eq(g()->payloads[0], "hello");
    cr_assert_str_eq(g()->payloads[1], "hello world");
    cr_assert_str_eq(g()->payloads[2], "line1\nline2x");
    cr_assert_str_eq(g()->payloads[3], "end");
}

static char big[5000];

Test(socket, an_oversize_line_is_counted_and_the_next_line_still_read)
{
    memset(big, 'x', sizeof big - 2);
    big[sizeof big - 2] = '\n';
    static const char *pieces[] = {"first\n", big, "second\n", NULL};
    struct client c = {start("address: 127.0.0.1:0\nmax_length: 100"), pieces};
    run_client(&c, 2);
    cr_assert_eq(g()->n, 2);
    cr_assert_str_eq(g()->payloads[0], "first");
    cr_assert_str_eq(g()->payloads[1], "second");
    cr_assert_eq(t_counter_value(src, "oversize"), 1);
    cr_assert_eq(t_stats(src).dropped, 1);
}

Test(socket, an_oversize_octet_counted_frame_is_skipped_whole)
{
    memcpy(big, "4990 ", 5);
    memset(big + 5, 'y', 4990);
    big[4995] = 0;
    static const char *pieces[] = {"5 first", big, "6 second", NULL};
    struct client c = {start("address: 127.0.0.1:0\nmax_length: 100\nframing: octet_counting"),
                       pieces};
    run_client(&c, 2);
    cr_assert_str_eq(g()->payloads[0], "first");
    cr_assert_str_eq(g()->payloads[1], "second");
    cr_assert_eq(t_counter_value(src, "oversize"), 1);
}

static bool closed_bad(void *arg)
{
    (void)arg;
    return t_counter_value(src, "bad_frame") == 1 && g()->n == 1;
}

Test(socket, a_bad_octet_count_closes_the_connection_after_the_good_frames)
{
    static const char *pieces[] = {"2 ok", "x3 bad", NULL};
    struct client c = {start("address: 127.0.0.1:0\nframing: octet_counting"), pieces};
    pthread_t th;
    pthread_create(&th, NULL, send_pieces, &c);
    cr_assert(t_run_until(p, closed_bad, NULL, 10000));
    pthread_join(th, NULL);
    cr_assert_str_eq(g()->payloads[0], "ok");
    cr_assert_eq(t_stats(src).errors, 1);
}

static bool truncated(void *arg)
{
    (void)arg;
    return t_counter_value(src, "truncated") == 1;
}

Test(socket, a_stream_that_ends_inside_a_frame_is_counted_as_truncated)
{
    static const char *pieces[] = {"2 ok10 cut sh", NULL};
    struct client c = {start("address: 127.0.0.1:0\nframing: octet_counting"), pieces};
    pthread_t th;
    pthread_create(&th, NULL, send_pieces, &c);
    cr_assert(t_run_until(p, truncated, NULL, 10000));
    pthread_join(th, NULL);
    cr_assert_eq(g()->n, 1);
    cr_assert_str_eq(g()->payloads[0], "ok");
    cr_assert_eq(t_stats(src).errors, 1);
}

static void *v6_client(void *arg)
{
    int *port = arg;
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)*port)};
    a.sin6_addr = in6addr_loopback;
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    t_send_all(fd, "over v6\n", 8);
    close(fd);
    return NULL;
}

Test(socket, ipv6_addresses_are_bound_and_shown_in_brackets)
{
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 lo = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool v6 = probe >= 0 && bind(probe, (struct sockaddr *)&lo, sizeof lo) == 0;
    if (probe >= 0) close(probe);
    if (!v6) cr_skip_test("no IPv6 loopback here");
    int port = start("address: '[::1]:0'");
    pthread_t th;
    pthread_create(&th, NULL, v6_client, &port);
    want_n = 1;
    cr_assert(t_run_until(p, got_n, NULL, 10000));
    pthread_join(th, NULL);
    cr_assert_str_eq(g()->payloads[0], "over v6");
    cr_assert(strncmp(g()->origins[0], "[::1]:", 6) == 0, "%s", g()->origins[0]);
}

/* 200 connections that say nothing, and one that sends 1000 lines. */
struct idle_run {
    int port;
    int fds[200];
};

static void *idle_then_send(void *arg)
{
    struct idle_run *r = arg;
    for (int i = 0; i < 200; i++) r->fds[i] = t_tcp_connect(r->port);
    int fd = t_tcp_connect(r->port);
    char line[32];
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(line, sizeof line, "line %d\n", i);
        t_send_all(fd, line, (size_t)n);
    }
    close(fd);
    return NULL;
}

Test(socket, lines_arrive_while_200_idle_connections_are_open)
{
    struct idle_run r = {.port = start("address: 127.0.0.1:0")};
    pthread_t th;
    pthread_create(&th, NULL, idle_then_send, &r);
    want_n = 1000;
    cr_assert(t_run_until(p, got_n, NULL, 20000), "got %zu", g()->n);
    pthread_join(th, NULL);
    for (int i = 0; i < 1000; i++) {
        char line[32];
        snprintf(line, sizeof line, "line %d", i);
        cr_assert_str_eq(g()->payloads[i], line);
    }
    cr_assert_eq(t_counter_value(src, "accepted"), 201);
    for (int i = 0; i < 200; i++) close(r.fds[i]);
}

struct limit_run {
    int port;
    atomic_int third_closed; /* 1: EOF seen on the third connection */
    atomic_int done;
};

static void *three_clients(void *arg)
{
    struct limit_run *r = arg;
    int a = t_tcp_connect(r->port), b = t_tcp_connect(r->port), c = t_tcp_connect(r->port);
    struct timeval tv = {10, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char x;
    if (recv(c, &x, 1, 0) <= 0) atomic_store(&r->third_closed, 1);
    t_send_all(a, "from a\n", 7);
    t_send_all(b, "from b\n", 7);
    close(a), close(b), close(c);
    return NULL;
}

Test(socket, connections_beyond_max_connections_are_closed_and_counted)
{
    struct limit_run r = {.port = start("address: 127.0.0.1:0\nmax_connections: 2")};
    pthread_t th;
    pthread_create(&th, NULL, three_clients, &r);
    want_n = 2;
    cr_assert(t_run_until(p, got_n, NULL, 10000));
    pthread_join(th, NULL);
    cr_assert_eq(atomic_load(&r.third_closed), 1);
    cr_assert_eq(t_counter_value(src, "refused"), 1);
    cr_assert_eq(t_counter_value(src, "accepted"), 2);
}

static void *idle_client(void *arg)
{
    int fd = t_tcp_connect(*(int *)arg);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char x;
    *(int *)arg = (int)recv(fd, &x, 1, 0); /* 0: closed by the source */
    close(fd);
    return NULL;
}

static bool idle_closed(void *arg)
{
    (void)arg;
    return t_counter_value(src, "closed_idle") == 1;
}

Test(socket, an_idle_connection_is_closed_after_idle_timeout)
{
    int port = start("address: 127.0.0.1:0\nidle_timeout: 100ms");
    pthread_t th;
    pthread_create(&th, NULL, idle_client, &port);
    cr_assert(t_run_until(p, idle_closed, NULL, 10000));
    pthread_join(th, NULL);
    cr_assert_eq(port, 0, "the client saw the connection end");
}

/* A client that sends half a line and stalls, beside one that sends whole lines. */
struct stall_run {
    int port;
    atomic_int staller_closed; /* the stalled client saw the connection end */
};

static void *stall_and_talk(void *arg)
{
    struct stall_run *r = arg;
    int stalled = t_tcp_connect(r->port), talker = t_tcp_connect(r->port);
    t_send_all(stalled, "half a li", 9);
    for (int i = 0; i < 100; i++) t_send_all(talker, "whole line\n", 11);
    close(talker);
    struct timeval tv = {10, 0};
    setsockopt(stalled, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char x;
    if (recv(stalled, &x, 1, 0) == 0) atomic_store(&r->staller_closed, 1);
    close(stalled);
    return NULL;
}

static bool stall_done(void *arg)
{
    struct stall_run *r = arg;
    return g()->n == 100 && atomic_load(&r->staller_closed) &&
           t_counter_value(src, "truncated") == 1;
}

Test(socket, a_client_stalled_inside_a_line_holds_up_no_one_and_is_closed_when_idle)
{
    struct stall_run r = {.port = start("address: 127.0.0.1:0\nidle_timeout: 300ms")};
    pthread_t th;
    pthread_create(&th, NULL, stall_and_talk, &r);
    bool ok = t_run_until(p, stall_done, &r, 10000);
    pthread_join(th, NULL);
    cr_assert(ok, "got %zu lines", g()->n);
    for (size_t i = 0; i < 100; i++) cr_assert_str_eq(g()->payloads[i], "whole line");
    cr_assert_eq(t_counter_value(src, "closed_idle"), 1);
    cr_assert_eq(t_stats(src).errors, 1);
}

/* ---- backpressure ------------------------------------------------------------------------ */

#define PUSH_LINES 40000
#define LINE_LEN   100

struct push_run {
    int port;
    atomic_int stalled;     /* a send has waited 300 ms: the window is closed */
    atomic_size_t at_stall; /* bytes the client had sent then */
};

static void *push_client(void *arg)
{
    struct push_run *r = arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 32768;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    struct timeval tv = {0, 300000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    close(fd);
    fd = t_tcp_connect(r->port);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    size_t total = (size_t)PUSH_LINES * LINE_LEN, sent = 0;
    char *all = malloc(total);
    for (size_t i = 0; i < PUSH_LINES; i++) {
        char *l = all + i * LINE_LEN;
        memset(l, '.', LINE_LEN);
        memcpy(l, "n", 1);
        char num[16];
        snprintf(num, sizeof num, "%08zu", i);
        memcpy(l + 1, num, 8);
        l[LINE_LEN - 1] = '\n';
    }
    while (sent < total) {
        ssize_t n = send(fd, all + sent, total - sent, MSG_NOSIGNAL);
        if (n > 0)
            sent += (size_t)n;
        else if (errno == EAGAIN && !atomic_load(&r->stalled)) {
            atomic_store(&r->at_stall, sent);
            atomic_store(&r->stalled, 1);
        } else if (errno != EAGAIN && errno != EINTR) {
            break;
        }
    }
    close(fd);
    free(all);
    return NULL;
}

struct push_watch {
    struct push_run *r;
    int phase;
    int64_t t1;
    uint64_t read1, read2;
};

static bool push_done(void *arg)
{
    struct push_watch *w = arg;
    if (w->phase == 0 && atomic_load(&w->r->stalled)) {
        w->read1 = t_counter_value(src, "received_bytes");
        w->t1 = t_now_ms();
        w->phase = 1;
    } else if (w->phase == 1 && t_now_ms() - w->t1 >= 200) {
        w->read2 = t_counter_value(src, "received_bytes");
        t_gate_open(gate);
        w->phase = 2;
    }
    return w->phase == 2 && g()->n >= PUSH_LINES;
}

Test(socket, a_client_is_held_back_while_the_sink_is_shut_and_nothing_is_lost)
{
    struct push_run r = {.port = start("address: 127.0.0.1:0\nmax_length: 1KiB\nread_size: 4KiB")};
    g()->shut = true;
    pthread_t th;
    pthread_create(&th, NULL, push_client, &r);
    struct push_watch w = {.r = &r};
    cr_assert(t_run_until(p, push_done, &w, 40000), "phase %d, got %zu", w.phase, g()->n);
    pthread_join(th, NULL);
    size_t total = (size_t)PUSH_LINES * LINE_LEN;
    cr_assert_lt(atomic_load(&r.at_stall), total, "the client was held back");
    cr_assert_eq(w.read1, w.read2, "the source read nothing while its output was full");
    cr_assert_lt(w.read1, total / 4, "the source had read %llu bytes", (unsigned long long)w.read1);
    cr_log_info("client held back after %zu of %zu bytes; the source had read %llu",
                (size_t)atomic_load(&r.at_stall), total, (unsigned long long)w.read1);
    cr_assert_eq(g()->n, PUSH_LINES);
    for (size_t i = 0; i < PUSH_LINES; i++) {
        char num[16];
        snprintf(num, sizeof num, "n%08zu", i);
        cr_assert(strncmp(g()->payloads[i], num, 9) == 0, "line %zu: %.9s", i, g()->payloads[i]);
    }
    cr_assert_eq(t_counter_value(src, "received_bytes"), total);
}

/* ---- over UDP ----------------------------------------------------------------------------- */

struct udp_run {
    int port, n, size;
    atomic_int sent;
    char local[64];
};

static void *udp_client(void *arg)
{
    struct udp_run *r = arg;
    int fd = t_udp_connect(r->port);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    sl__socket_addr_text((struct sockaddr *)&ss, r->local, sizeof r->local);
    char *buf = malloc((size_t)r->size + 32);
    for (int i = 0; i < r->n; i++) {
        int n = snprintf(buf, 32, "dgram %d", i);
        memset(buf + n, '.', (size_t)(r->size > n ? r->size - n : 0));
        size_t len = (size_t)(r->size > n ? r->size : n);
        buf[len] = '\n';
        send(fd, buf, len + 1, 0);
    }
    atomic_store(&r->sent, 1);
    free(buf);
    close(fd);
    return NULL;
}

Test(socket, udp_datagrams_arrive_one_event_each_from_their_sender)
{
    struct udp_run r = {.port = start("address: 127.0.0.1:0\nmode: udp"), .n = 200, .size = 0};
    pthread_t th;
    pthread_create(&th, NULL, udp_client, &r);
    want_n = 200;
    cr_assert(t_run_until(p, got_n, NULL, 10000), "got %zu", g()->n);
    pthread_join(th, NULL);
    for (int i = 0; i < 200; i++) {
        char want[32];
        snprintf(want, sizeof want, "dgram %d", i);
        cr_assert_str_eq(g()->payloads[i], want);
        cr_assert_str_eq(g()->origins[i], r.local);
    }
}

static struct udp_run *udp_r;

static bool udp_accounted(void *arg)
{
    (void)arg;
    if (atomic_load(&udp_r->sent) && g()->shut) t_gate_open(gate);
    return !g()->shut && g()->n + t_counter_value(src, "udp_dropped") == (size_t)udp_r->n;
}

Test(socket, udp_datagrams_the_kernel_dropped_while_the_sink_was_shut_are_counted)
{
    struct udp_run r = {.port = start("address: 127.0.0.1:0\nmode: udp\nreceive_buffer: 64KiB"),
                        .n = 3000,
                        .size = 1000};
    g()->shut = true;
    udp_r = &r;
    pthread_t th;
    pthread_create(&th, NULL, udp_client, &r);
    bool ok = t_run_until(p, udp_accounted, NULL, 20000);
    pthread_join(th, NULL);
    uint64_t dropped = t_counter_value(src, "udp_dropped");
    cr_assert(ok, "got %zu, dropped %llu", g()->n, (unsigned long long)dropped);
    cr_assert_gt(dropped, 0);
    cr_assert_eq(t_stats(src).dropped, dropped);
    cr_assert_eq(g()->n + dropped, 3000);
}

static bool three_oversize(void *arg)
{
    (void)arg;
    return t_counter_value(src, "oversize") == 3;
}

Test(socket, an_oversize_datagram_is_counted_and_dropped)
{
    struct udp_run r = {
        .port = start("address: 127.0.0.1:0\nmode: udp\nmax_length: 100"), .n = 3, .size = 150};
    pthread_t th;
    pthread_create(&th, NULL, udp_client, &r);
    cr_assert(t_run_until(p, three_oversize, NULL, 10000));
    pthread_join(th, NULL);
    cr_assert_eq(g()->n, 0);
    cr_assert_eq(t_counter_value(src, "oversize"), 3);
}

Test(socket, the_bound_port_is_written_to_port_file)
{
    char path[] = "/tmp/sluice-port-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    char yaml[256];
    snprintf(yaml, sizeof yaml, "address: 127.0.0.1:0\nport_file: %s", path);
    int port = start(yaml);
    size_t len;
    char *text = t_read_file(path, &len);
    cr_assert_gt(port, 0);
    cr_assert_eq(atoi(text), port);
    free(text);
    unlink(path);
}

Test(socket, an_address_without_a_port_is_refused)
{
    struct sl_error err = {0};
    struct sl_config *cfg = t_config("address: 127.0.0.1");
    cr_assert_null(sl_pipeline_add(p, "in", &sl_stage_socket, cfg, &err));
    cr_assert(strstr(err.msg, "address must be host:port"), "%s", err.msg);
    cr_assert_eq(err.line, 1);
    sl_config_free(cfg);
    cr_assert_null(sl_pipeline_add(p, "in2", &sl_stage_socket, NULL, &err));
    cr_assert(strstr(err.msg, "address"), "a missing address: %s", err.msg);
}

Test(socket, a_host_name_is_refused_at_start_nothing_resolves_on_the_loop)
{
    src = t_stage(p, "in", &sl_stage_socket, "address: 'example.invalid:0'");
    gate = t_stage(p, "out", &t_gate, NULL);
    t_connect_port(p, src, NULL, gate);
    struct sl_error err = {0};
    cr_assert_neq(sl_pipeline_start(p, &err), 0);
    cr_assert(strstr(err.msg, "example.invalid"), "%s", err.msg);
}
