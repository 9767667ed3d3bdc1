/* bench_latency: how long a line appended to a followed file takes to reach a file sink,
 * with the default settings a user gets, at several append rates; and what sluice costs
 * while nothing arrives.
 *
 *   bench_latency SLUICE [RATE...]     default rates 1000 10000 100000 (lines/s)
 *
 * For each rate, `SLUICE run` runs a config written into a temporary directory:
 *
 *   sources: {in: {type: file, path: in.log, read_from: beginning}}      (follow: true)
 *   sinks:   {out: {type: file, inputs: [in], path: out.log, encoding: text}}
 *
 * A writer thread appends lines `{"seq":N,"t":NS,"pad":"..."}` (about 100 bytes) to in.log
 * at the rate for DURATION_S seconds, in small appends every millisecond; NS is the
 * writer's CLOCK_MONOTONIC (shared by every process of the machine) just before the
 * append. A reader thread follows out.log with inotify and, for each complete line,
 * takes the latency now - NS. Reported per rate: lines sent and received (they must be
 * equal), p50 / p99 / max latency, and sluice's CPU time (from /proc) over IDLE_S seconds
 * after the last line arrived, when nothing is appended: a loop that polls or spins
 * shows there. Exit status 0 when every line arrived. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DURATION_S 4
#define IDLE_S     2

struct run {
    char dir[64], in[128], out[128];
    long rate;                /* lines per second */
    atomic_long sent;         /* lines appended */
    atomic_bool writing_done; /* the writer ended */
    int64_t *lat;             /* latencies (ns), by arrival */
    long nlat, cap;
    atomic_bool stop_reader;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_until(int64_t t)
{
    struct timespec ts = {.tv_sec = t / 1000000000, .tv_nsec = t % 1000000000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) continue;
}

/* Appends the lines due by each millisecond, DURATION_S seconds long. */
static void *writer(void *arg)
{
    struct run *r = arg;
    int fd = open(r->in, O_WRONLY | O_APPEND);
    char buf[1 << 16];
    int64_t start = now_ns();
    long total = r->rate * DURATION_S, seq = 0;
    for (int64_t tick = 1; seq < total; tick++) {
        sleep_until(start + tick * 1000000);
        long due = r->rate * tick / 1000, n = 0;
        if (due > total) due = total;
        while (seq < due) {
            n += snprintf(buf + n, sizeof buf - (size_t)n,
                          "{\"seq\":%ld,\"t\":%lld,\"pad\":\"%s\"}\n", seq, (long long)now_ns(),
                          "the rest of a log line of about a hundred bytes");
            seq++;
            if ((size_t)n > sizeof buf - 200) break;
        }
        if (n && write(fd, buf, (size_t)n) != n) perror("bench_latency: write");
        atomic_store(&r->sent, seq);
    }
    close(fd);
    atomic_store(&r->writing_done, true);
    return NULL;
}

static void take_line(struct run *r, const char *line, int64_t at)
{
    const char *t = strstr(line, "\"t\":");
    if (!t) return;
    if (r->nlat == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 65536;
        r->lat = realloc(r->lat, (size_t)r->cap * sizeof *r->lat);
    }
    r->lat[r->nlat++] = at - strtoll(t + 4, NULL, 10);
}

/* Reads out.log as it grows (woken by inotify; a modification between the read and the
 * wait is caught by the wait's 50 ms timeout at worst, as the watch is set before the
 * first read), taking each complete line's latency at the moment it was read. */
static void *reader(void *arg)
{
    struct run *r = arg;
    int in = inotify_init1(IN_NONBLOCK);
    int fd;
    while ((fd = open(r->out, O_RDONLY)) < 0 && !atomic_load(&r->stop_reader)) usleep(1000);
    inotify_add_watch(in, r->out, IN_MODIFY);
    static char buf[1 << 20];
    size_t have = 0;
    while (!atomic_load(&r->stop_reader)) {
        ssize_t n = read(fd, buf + have, sizeof buf - have - 1);
        if (n > 0) {
            int64_t at = now_ns();
            have += (size_t)n;
            buf[have] = '\0';
            char *p = buf, *nl;
            while ((nl = memchr(p, '\n', have - (size_t)(p - buf)))) {
                *nl = '\0';
                take_line(r, p, at);
                p = nl + 1;
            }
            have -= (size_t)(p - buf);
            memmove(buf, p, have);
            continue;
        }
        char ev[4096];
        struct pollfd pfd = {.fd = in, .events = POLLIN};
        if (poll(&pfd, 1, 50) > 0 && read(in, ev, sizeof ev) < 0) continue; /* woken: read */
    }
    close(fd);
    close(in);
    return NULL;
}

static int64_t cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(buf, sizeof buf, f)) return f ? fclose(f), -1 : -1;
    fclose(f);
    const char *p = strrchr(buf, ')');
    long long utime = 0, stime = 0;
    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld", &utime, &stime);
    return utime + stime;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static pid_t start_sluice(const char *sluice, struct run *r)
{
    char cfg[256];
    snprintf(cfg, sizeof cfg, "%s/p.yaml", r->dir);
    FILE *f = fopen(cfg, "w");
    fprintf(f,
            "pipeline: {data_dir: %s}\n"
            "sources: {in: {type: file, path: %s, read_from: beginning}}\n"
            "sinks: {out: {type: file, inputs: [in], path: %s, encoding: text}}\n",
            r->dir, r->in, r->out);
    fclose(f);
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1), dup2(null, 2);
        execl(sluice, sluice, "run", "-q", cfg, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* One rate. Returns 0 when every line arrived. */
static int measure(const char *sluice, long rate)
{
    struct run r = {.rate = rate};
    snprintf(r.dir, sizeof r.dir, "/tmp/sluice-latency.XXXXXX");
    if (!mkdtemp(r.dir)) return perror("mkdtemp"), 1;
    snprintf(r.in, sizeof r.in, "%s/in.log", r.dir);
    snprintf(r.out, sizeof r.out, "%s/out.log", r.dir);
    close(open(r.in, O_CREAT | O_WRONLY, 0644));
    pid_t pid = start_sluice(sluice, &r);
    char lock[160];
    snprintf(lock, sizeof lock, "%s/.sluice.lock", r.dir);
    while (access(lock, F_OK) != 0) usleep(1000); /* it holds its data_dir: running */
    usleep(200000);                               /* and has started its stages */
    pthread_t w, rd;
    pthread_create(&rd, NULL, reader, &r);
    pthread_create(&w, NULL, writer, &r);
    pthread_join(w, NULL);
    int64_t deadline = now_ns() + 10LL * 1000000000;
    while (r.nlat < atomic_load(&r.sent) && now_ns() < deadline) usleep(1000);
    int64_t cpu0 = cpu_ticks(pid);
    sleep(IDLE_S);
    int64_t idle = cpu_ticks(pid) - cpu0;
    atomic_store(&r.stop_reader, true);
    pthread_join(rd, NULL);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    long sent = atomic_load(&r.sent);
    qsort(r.lat, (size_t)r.nlat, sizeof *r.lat, cmp64);
    double p50 = r.nlat ? r.lat[r.nlat / 2] / 1e6 : 0,
           p99 = r.nlat ? r.lat[r.nlat * 99 / 100] / 1e6 : 0,
           max = r.nlat ? r.lat[r.nlat - 1] / 1e6 : 0;
    printf("%8ld lines/s  sent %8ld  received %8ld  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms  "
           "idle CPU %.2f s in %d s\n",
           rate, sent, r.nlat, p50, p99, max, (double)idle / (double)sysconf(_SC_CLK_TCK), IDLE_S);
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf %s", r.dir);
    if (system(rm) != 0) fprintf(stderr, "bench_latency: could not remove %s\n", r.dir);
    free(r.lat);
    return r.nlat == sent ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_latency SLUICE [RATE...]\n");
        return 2;
    }
    static const long rates[] = {1000, 10000, 100000};
    int rc = 0;
    printf("bench_latency: %s, follow a file -> file sink, default settings, %d s a rate\n",
           argv[1], DURATION_S);
    if (argc == 2)
        for (size_t i = 0; i < sizeof rates / sizeof *rates; i++) rc |= measure(argv[1], rates[i]);
    for (int i = 2; i < argc; i++) rc |= measure(argv[1], atol(argv[i]));
    return rc;
}
