/* The socket and syslog sources over loopback TCP (issue 16): a client thread writes N
 * lines of 100 bytes on one connection as fast as it can; the pipeline (socket or syslog
 * source -> a counting sink, default batches and queues) runs on this thread. Next to it,
 * in the same run, the peer: a plain reader that recv()s 64 KiB at a time and counts the
 * newlines with memchr, the floor of reading a TCP socket and splitting it into lines.
 *
 *   build-bench/tests/bench/bench_socket [lines]      (default 1,000,000) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sluice/sluice.h>

#include "../../connectors/socket/internal.h"

#define LINE 100

static size_t nlines;
static char *text; /* the lines to send */
static size_t text_len;
static int port;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void make_text(bool syslog)
{
    text_len = nlines * LINE;
    text = realloc(text, text_len);
    for (size_t i = 0; i < nlines; i++) {
        char *l = text + i * LINE;
        int n = syslog ? snprintf(l, LINE,
                                  "<165>1 2003-10-11T22:14:15.003Z host.example app 1234 "
                                  "ID47 [ex@1 a=\"%zu\"] message ",
                                  i % 1000)
                       : snprintf(l, LINE, "line %zu ", i);
        memset(l + n, 'x', (size_t)(LINE - 1 - n));
        l[LINE - 1] = '\n';
    }
}

static void *client(void *arg)
{
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) abort();
    for (size_t off = 0; off < text_len;) {
        ssize_t n = send(fd, text + off, text_len - off, MSG_NOSIGNAL);
        if (n <= 0) abort();
        off += (size_t)n;
    }
    close(fd);
    return NULL;
}

/* ---- the peer: recv + memchr ------------------------------------------------------------ */

static double peer(void)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 8) ||
        getsockname(ls, (struct sockaddr *)&a, &al))
        abort();
    port = ntohs(a.sin_port);
    double t0 = now_s();
    pthread_t th;
    pthread_create(&th, NULL, client, NULL);
    int fd = accept(ls, NULL, NULL);
    static char buf[65536];
    size_t lines = 0;
    for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;)
        for (char *p = buf; (p = memchr(p, '\n', (size_t)(buf + n - p))); p++) lines++;
    double t = now_s() - t0;
    pthread_join(th, NULL);
    close(fd);
    close(ls);
    if (lines != nlines) abort();
    return t;
}

/* ---- sluice ------------------------------------------------------------------------------ */

struct count {
    size_t n;
    struct sl_pipeline *p;
};

static enum sl_poll count_write(struct sl_stage *s, struct sl_batch *b)
{
    struct count *c = sl_stage_state(s);
    c->n += sl_batch_count(b);
    sl_ack(b);
    if (c->n >= nlines) sl_pipeline_stop(c->p);
    return SL_READY;
}

static const struct sl_stage_type count_type = {.abi = SL_STAGE_ABI,
                                                .name = "count",
                                                .kind = SL_SINK,
                                                .doc = "counts events",
                                                .state_size = sizeof(struct count),
                                                .write = count_write};

static double run(const struct sl_stage_type *type)
{
    struct sl_error err = {0};
    struct sl_pipeline *p = sl_pipeline_new(NULL, NULL, &err);
    struct sl_config *cfg = sl_config_parse("address: 127.0.0.1:0", 20, "bench", &err);
    struct sl_stage *src = p && cfg ? sl_pipeline_add(p, "in", type, cfg, &err) : NULL;
    struct sl_stage *out = src ? sl_pipeline_add(p, "out", &count_type, NULL, &err) : NULL;
    if (!out || sl_pipeline_connect(p, src, NULL, out, &err) || sl_pipeline_start(p, &err)) {
        fprintf(stderr, "bench_socket: %s\n", err.msg);
        exit(1);
    }
    ((struct count *)sl_stage_state(out))->p = p;
    port = ((struct sl__socket *)sl_stage_state(src))->port;
    double t0 = now_s();
    pthread_t th;
    pthread_create(&th, NULL, client, NULL);
    if (sl_pipeline_run(p, &err)) fprintf(stderr, "bench_socket: %s\n", err.msg);
    double t = now_s() - t0;
    pthread_join(th, NULL);
    if (((struct count *)sl_stage_state(out))->n != nlines) abort();
    sl_pipeline_free(p);
    sl_config_free(cfg);
    return t;
}

static void row(const char *what, double t)
{
    printf("%-36s %8.3f s %10.0f lines/s %8.1f MB/s\n", what, t, (double)nlines / t,
           (double)text_len / t / 1e6);
}

int main(int argc, char **argv)
{
    nlines = argc > 1 ? (size_t)atol(argv[1]) : 1000000;
    printf("%zu lines of %d bytes over loopback TCP, one connection\n", nlines, LINE);
    make_text(false);
    row("peer: recv 64 KiB + memchr", peer());
    row("sluice socket -> count", run(&sl_stage_socket));
    make_text(true);
    row("peer: recv + memchr (RFC 5424 lines)", peer());
    row("sluice syslog -> count (parsed)", run(&sl_stage_syslog));
    free(text);
    return 0;
}
