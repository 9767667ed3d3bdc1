/* SIGINT and SIGTERM for `sluice run`. The first one is handed to the loop (through a
 * pipe the loop watches), which stops the sources and drains. The second one ends the
 * process from the signal handler itself, whatever the loop is doing: a stage stuck in
 * a long computation, a sink blocked in the kernel. Only async-signal-safe calls are
 * made there (write, _exit); the line it prints is prepared beforehand. Nothing
 * unacknowledged is lost by exiting: the next run replays it from the checkpoints. */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "cli.h"

struct cli_signals {
    struct event *ev;              /* the pipe's read end, on the loop */
    void (*on_first)(void *, int); /* told of the first signal, on the loop */
    void *arg;                     /* passed to on_first */
    struct sigaction old[2];       /* what was installed before */
};

/* Process-wide, as signal dispositions are. */
static int pipe_w = -1;         /* the handler writes the signal number here */
static atomic_int seen;         /* signals received */
static char last_words[2][200]; /* the second SIGINT's / SIGTERM's line */
static size_t last_len[2];

static void handler(int signo)
{
    int saved = errno;
    if (atomic_fetch_add(&seen, 1) == 0) {
        unsigned char b = (unsigned char)signo;
        ssize_t n = write(pipe_w, &b, 1); /* full pipe: a signal is pending already */
        (void)n;
        errno = saved;
        return;
    }
    int i = signo == SIGINT ? 0 : 1;
    ssize_t n = write(STDERR_FILENO, last_words[i], last_len[i]);
    (void)n;
    _exit(128 + signo);
}

static void on_pipe(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct cli_signals *s = arg;
    unsigned char b;
    while (read(fd, &b, 1) == 1) s->on_first(s->arg, b);
}

/* The line the handler writes, in the log's format (JSON without a time: the handler
 * may not read the clock into a date). */
static void prepare(int i, const char *name)
{
    const char *what = "aborting without draining";
    int n = cli_log_json()
                ? snprintf(last_words[i], sizeof last_words[i],
                           "{\"level\":\"warn\",\"msg\":\"second %s: %s\"}\n", name, what)
                : snprintf(last_words[i], sizeof last_words[i], "sluice: warning: second %s: %s\n",
                           name, what);
    last_len[i] = n > 0 ? (size_t)n : 0;
}

struct cli_signals *cli_signals_start(struct event_base *base, void (*on_first)(void *, int),
                                      void *arg)
{
    int fds[2];
    struct cli_signals *s = calloc(1, sizeof *s);
    if (!s || pipe2(fds, O_CLOEXEC | O_NONBLOCK)) {
        free(s);
        return NULL;
    }
    s->on_first = on_first;
    s->arg = arg;
    if (!(s->ev = event_new(base, fds[0], EV_READ | EV_PERSIST, on_pipe, s)) ||
        event_add(s->ev, NULL)) {
        if (s->ev) event_free(s->ev);
        close(fds[0]), close(fds[1]);
        free(s);
        return NULL;
    }
    pipe_w = fds[1];
    atomic_store(&seen, 0);
    prepare(0, "SIGINT");
    prepare(1, "SIGTERM");
    struct sigaction sa = {.sa_handler = handler, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &s->old[0]);
    sigaction(SIGTERM, &sa, &s->old[1]);
    return s;
}

void cli_signals_free(struct cli_signals *s)
{
    if (!s) return;
    sigaction(SIGINT, &s->old[0], NULL);
    sigaction(SIGTERM, &s->old[1], NULL);
    close(event_get_fd(s->ev));
    event_free(s->ev);
    close(pipe_w);
    pipe_w = -1;
    free(s);
}
