/* bench_loop_lag: runs a pipeline config as `sluice run` would (the same built-in types),
 * with two probes on its event loop, and reports how long the loop went without serving
 * them:
 * - a 1 ms repeating timer: the longest gap between two firings (wall clock: with the
 *   time the loop thread waited for a core on a shared machine) and the loop thread's
 *   longest stretch of CPU time between two firings. libevent reads a coarse clock for
 *   its timers (4 ms a step here), so this one overstates a stall by up to that much;
 * - a pipe a helper thread writes to every millisecond (descriptors are looked at on
 *   every turn of the loop): the loop thread's longest stretch of CPU time between two
 *   reads, exact to a turn. This is the stall figure.
 *
 *   bench_loop_lag CONFIG   prints: wall_ms= max_gap_ms= max_cpu_ms= ticks= max_fd_cpu_ms=
 *
 * Used by tests/bench/bench_sqlite for "the largest event-loop stall while the sink
 * writes". Exit status 0 when the run succeeded. */
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <sluice/sluice.h>

#include "cli.h"

struct lag {
    int64_t last_ns, last_cpu_ns; /* the previous firing */
    int64_t max_gap_ns, max_cpu_ns;
    long ticks;
    int fds[2];                       /* the pipe: read end on the loop */
    atomic_bool stop;                 /* ends the writer */
    int64_t fd_cpu_ns, max_fd_cpu_ns; /* the loop's CPU at the last read; longest between */
};

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct lag *l = arg;
    int64_t now = clock_ns(CLOCK_MONOTONIC), cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    if (l->ticks && now - l->last_ns > l->max_gap_ns) l->max_gap_ns = now - l->last_ns;
    if (l->ticks && cpu - l->last_cpu_ns > l->max_cpu_ns) l->max_cpu_ns = cpu - l->last_cpu_ns;
    l->last_ns = now;
    l->last_cpu_ns = cpu;
    l->ticks++;
}

/* The helper thread: a byte every millisecond, whatever the loop does. */
static void *writer(void *arg)
{
    struct lag *l = arg;
    struct timespec ms = {0, 1000000};
    while (!atomic_load(&l->stop)) {
        ssize_t n = write(l->fds[1], "x", 1);
        (void)n; /* a full pipe: the loop is behind, which is what is measured */
        nanosleep(&ms, NULL);
    }
    return NULL;
}

static void readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct lag *l = arg;
    char buf[256];
    while (read(fd, buf, sizeof buf) > 0) {
    }
    int64_t cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    if (l->fd_cpu_ns && cpu - l->fd_cpu_ns > l->max_fd_cpu_ns)
        l->max_fd_cpu_ns = cpu - l->fd_cpu_ns;
    l->fd_cpu_ns = cpu;
}

static int fail(const char *what, const struct sl_error *err)
{
    char buf[1024];
    fprintf(stderr, "bench_loop_lag: %s: %s\n", what, sl_error_format(err, buf, sizeof buf));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: bench_loop_lag CONFIG\n");
        return 2;
    }
    struct sl_error err = {0};
    struct sl_config *root = sl_config_load(argv[1], &err);
    struct sl_registry *reg = root ? cli_registry(&err) : NULL;
    if (!reg) return fail("config", &err);
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    struct sl_pipeline *p = NULL;
    if (sl_pipeline_options_from_config(&o, root, &err) || !(p = sl_pipeline_new(NULL, &o, &err)) ||
        sl_pipeline_load(p, reg, root, &err))
        return fail("config", &err);
    struct lag l = {0};
    struct event *ev = event_new(sl_pipeline_event_base(p), -1, EV_PERSIST, tick, &l);
    struct timeval ms = {0, 1000};
    event_add(ev, &ms);
    pthread_t th;
    if (pipe(l.fds) || fcntl(l.fds[0], F_SETFL, O_NONBLOCK) ||
        fcntl(l.fds[1], F_SETFL, O_NONBLOCK) || pthread_create(&th, NULL, writer, &l)) {
        perror("bench_loop_lag: pipe");
        return 1;
    }
    struct event *fev =
        event_new(sl_pipeline_event_base(p), l.fds[0], EV_READ | EV_PERSIST, readable, &l);
    event_add(fev, NULL);
    int64_t t0 = clock_ns(CLOCK_MONOTONIC);
    int rc = sl_pipeline_run(p, &err);
    int64_t wall = clock_ns(CLOCK_MONOTONIC) - t0;
    atomic_store(&l.stop, true);
    pthread_join(th, NULL);
    event_free(ev);
    event_free(fev);
    close(l.fds[0]), close(l.fds[1]);
    if (rc) return fail("run", &err);
    printf("wall_ms=%.1f max_gap_ms=%.1f max_cpu_ms=%.1f ticks=%ld max_fd_cpu_ms=%.1f\n",
           wall / 1e6, l.max_gap_ns / 1e6, l.max_cpu_ns / 1e6, l.ticks, l.max_fd_cpu_ns / 1e6);
    sl_pipeline_free(p);
    sl_registry_free(reg);
    sl_config_free(root);
    return 0;
}
