/* The metrics server of `sluice run --metrics-addr` under abuse (issues 9 and 10): more
 * clients than file descriptors, more than the connection cap, a flood of header bytes,
 * a client that sends nothing; and libevent's own log lines, which go through sluice's
 * logger. The real `sluice` process on real sockets. Its stderr goes to a file, not a
 * pipe: a full pipe would block a process that floods its log, and hide that it spins. */
#define _GNU_SOURCE /* posix_spawn_file_actions_addchdir_np */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/util.h>

#include "cli.h"

extern char **environ;

TestSuite(metrics, .timeout = 90);

/* ---- the process ----------------------------------------------------------------------------- */

struct proc {
    pid_t pid;
    int err; /* the file the child's stderr goes to (unlinked) */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pause_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000};
    while (nanosleep(&ts, &ts) && errno == EINTR) continue;
}

/* Starts sluice with `args` (NULL-terminated) in tests/configs, `env` ("K=V") added to
 * the environment, and at most `nofile` file descriptors when `nofile` > 0 (the child
 * inherits the limit, which is lowered here around the spawn only). */
static struct proc start(const char *const *args, const char *const *env, rlim_t nofile)
{
    char exe[4096], dir[4096], path[] = "/tmp/sluice-test-metrics-XXXXXX";
    snprintf(exe, sizeof exe, "%s/cli/sluice", getenv("SLUICE_BUILD_ROOT"));
    snprintf(dir, sizeof dir, "%s/tests/configs", getenv("SLUICE_SOURCE_ROOT"));
    const char *argv[32] = {exe};
    for (size_t n = 1; args[n - 1] && n < 31; n++) argv[n] = args[n - 1];
    char *envp[512];
    size_t ne = 0;
    for (char **e = environ; *e && ne < 480; e++) envp[ne++] = *e;
    for (size_t i = 0; env && env[i]; i++) envp[ne++] = (char *)env[i];
    envp[ne] = NULL;
    struct proc p = {.err = mkstemp(path)};
    cr_assert_geq(p.err, 0);
    unlink(path);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, p.err, 2);
    posix_spawn_file_actions_addchdir_np(&fa, dir);
    struct rlimit old, low;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = (struct rlimit){.rlim_cur = nofile, .rlim_max = old.rlim_max};
    if (nofile) cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    int rc = posix_spawn(&p.pid, exe, &fa, NULL, (char **)argv, envp);
    if (nofile) cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    cr_assert_eq(rc, 0);
    posix_spawn_file_actions_destroy(&fa);
    return p;
}

/* The child's stderr so far, at most `size` - 1 bytes of it (the child writes through
 * the same file offset: pread leaves it alone). */
static size_t read_err(const struct proc *p, char *buf, size_t size)
{
    ssize_t n = pread(p->err, buf, size - 1, 0);
    cr_assert_geq(n, 0);
    buf[n] = '\0';
    return (size_t)n;
}

static off_t err_size(const struct proc *p)
{
    struct stat st;
    cr_assert_eq(fstat(p->err, &st), 0);
    return st.st_size;
}

/* Waits until stderr has a line containing `needle`; returns that line (static). */
static const char *wait_for(const struct proc *p, const char *needle)
{
    static char buf[1 << 20], line[1024];
    for (double deadline = now_s() + 30; now_s() < deadline; pause_ms(20)) {
        read_err(p, buf, sizeof buf);
        const char *at = strstr(buf, needle);
        const char *end = at ? strchr(at, '\n') : NULL;
        if (end) {
            while (at > buf && at[-1] != '\n') at--;
            snprintf(line, sizeof line, "%.*s", (int)(end - at), at);
            return line;
        }
        cr_assert_eq(waitpid(p->pid, NULL, WNOHANG), 0, "sluice ended without '%s':\n%s", needle,
                     buf);
    }
    cr_assert_fail("no line with '%s' in 30 s", needle);
    return NULL;
}

static int port_of(const struct proc *p)
{
    const char *l = wait_for(p, "serving /metrics and /health on http://127.0.0.1:");
    int port = 0;
    cr_assert_eq(sscanf(strstr(l, "127.0.0.1:") + 10, "%d", &port), 1);
    return port;
}

static int wait_exit(pid_t pid)
{
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* SIGTERM, then the exit code must be 0. */
static void stop(struct proc *p)
{
    kill(p->pid, SIGTERM);
    cr_expect_eq(wait_exit(p->pid), 0);
    close(p->err);
}

/* ---- what the test reads of the process ------------------------------------------------------ */

/* utime + stime of `pid`, in seconds (/proc/PID/stat fields 14 and 15). */
static double cpu_seconds(pid_t pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the name may hold spaces */
    unsigned long long ut = 0, st = 0;
    cr_assert_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st),
                 2);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* VmRSS of `pid` in KiB. */
static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
    fclose(f);
    cr_assert_gt(kib, 0);
    return kib;
}

static size_t count(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *at = s; (at = strstr(at, needle)); at += strlen(needle)) n++;
    return n;
}

/* ---- the client side ------------------------------------------------------------------------- */

/* A connection to 127.0.0.1:port whose reads and writes give up after `timeout_s`. The
 * kernel completes it from the listen backlog even while the server does not accept. */
static int connect_to(int port, int timeout_s)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct timeval tv = {.tv_sec = timeout_s};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "connect: %s", strerror(errno));
    return fd;
}

static void send_all(int fd, const char *s)
{
    size_t len = strlen(s);
    cr_assert_eq(send(fd, s, len, MSG_NOSIGNAL), (ssize_t)len, "send: %s", strerror(errno));
}

/* Reads one response of a keep-alive connection: up to the end of a body of
 * Content-Length bytes. Returns its length, 0 when the server closed first, -1 on a
 * timeout or an error. */
static ssize_t read_response(int fd, char *buf, size_t size)
{
    size_t len = 0;
    for (;;) {
        ssize_t got = recv(fd, buf + len, size - 1 - len, 0);
        if (got <= 0) return got < 0 ? -1 : (ssize_t)len;
        len += (size_t)got;
        buf[len] = '\0';
        const char *end = strstr(buf, "\r\n\r\n"), *cl = strstr(buf, "Content-Length: ");
        if (end && cl && len >= (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10))
            return (ssize_t)len;
    }
}

/* GET `path` on a new connection; returns the whole response (static). */
static const char *http_get(int port, const char *path)
{
    static char resp[65536];
    int fd = connect_to(port, 30);
    char req[256];
    snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
    send_all(fd, req);
    size_t len = 0;
    ssize_t got;
    while ((got = recv(fd, resp + len, sizeof resp - 1 - len, 0)) > 0) len += (size_t)got;
    resp[len] = '\0';
    close(fd);
    return resp;
}

static void expect_healthy(int port)
{
    const char *r = http_get(port, "/health");
    cr_expect(strncmp(r, "HTTP/1.0 200 OK\r\n", 17) == 0 ||
                  strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0,
              "/health answered: %s", r);
}

/* -q alone means errors only: the port is read from the info line. */
static const char *const run_metrics[] = {
    "run", "--quiet", "--log-level", "info", "--metrics-addr", "127.0.0.1:0", "metrics.yaml", NULL};

/* ---- issue 9: file descriptors and connections ----------------------------------------------- */

/* With more clients than file descriptors, accept() fails with EMFILE while the listener
 * stays readable: libevent logged each failure, millions a second at 100 % CPU. */
Test(metrics, more_clients_than_fds_neither_spins_nor_floods_stderr)
{
    struct proc p =
        start((const char *[]){"run", "--quiet", "--log-level", "info", "--metrics-addr",
                               "127.0.0.1:0", "metrics_fds.yaml", NULL},
              NULL, 64);
    int port = port_of(&p);
    enum { CLIENTS = 100 }; /* the backlog (128) holds those sluice cannot take */
    int fds[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) fds[i] = connect_to(port, 30);
    wait_for(&p, "Too many open files");
    double cpu0 = cpu_seconds(p.pid), t0 = now_s();
    pause_ms(1000);
    double cpu = cpu_seconds(p.pid) - cpu0, wall = now_s() - t0;
    off_t size = err_size(&p);
    static char err[1 << 16];
    read_err(&p, err, sizeof err);
    cr_expect_lt(cpu, 0.25 * wall, "%.2f s of CPU in %.2f s", cpu, wall);
    cr_expect_lt(size, 4096, "stderr grew to %lld bytes:\n%.2000s", (long long)size, err);
    cr_expect_eq(count(err, "Too many open files"), 1, "%.2000s", err);
    cr_expect_not_null(strstr(err, "sluice: warning: metrics: cannot accept a connection: Too "
                                   "many open files; pausing the listener (retrying 10 ms to "
                                   "1 s apart)\n"),
                       "%.2000s", err);
    for (int i = 0; i < CLIENTS; i++) close(fds[i]);
    expect_healthy(port);
    wait_for(&p, "sluice: info: metrics: accepting connections again after ");
    stop(&p);
}

/* `cap` clients are served and keep their connection (HTTP/1.1 keep-alive); one more is
 * not served until one of them closes, then it is; a flood that comes and goes leaves
 * the server answering. */
static void check_cap(const char *const *args, int cap)
{
    struct proc p = start(args, NULL, 0);
    int port = port_of(&p);
    int *held = calloc((size_t)cap, sizeof *held);
    cr_assert_not_null(held);
    static char buf[4096];
    const char *get = "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n";
    for (int i = 0; i < cap; i++) {
        held[i] = connect_to(port, 30);
        send_all(held[i], get);
        cr_assert_gt(read_response(held[i], buf, sizeof buf), 0, "client %d not served", i);
        cr_assert_not_null(strstr(buf, " 200 OK\r\n"), "%s", buf);
    }
    int extra = connect_to(port, 30);
    send_all(extra, get);
    struct pollfd pf = {.fd = extra, .events = POLLIN};
    cr_assert_eq(poll(&pf, 1, 1000), 0, "served beyond the cap of %d", cap);
    close(held[0]);
    double closed = now_s();
    cr_assert_gt(read_response(extra, buf, sizeof buf), 0, "not served after a close");
    cr_assert_not_null(strstr(buf, " 200 OK\r\n"), "%s", buf);
    /* At once, not when the others' idle timeout (5 s) frees a place. */
    cr_expect_lt(now_s() - closed, 2.5);
    for (int i = 1; i < cap; i++) close(held[i]);
    close(extra);
    int flood[100]; /* fewer than the listen backlog holds (128) */
    for (int i = 0; i < 100; i++) flood[i] = connect_to(port, 30);
    for (int i = 0; i < 100; i++) close(flood[i]);
    expect_healthy(port);
    free(held);
    stop(&p);
}

Test(metrics, at_the_default_cap_of_256_connections_the_next_waits_for_a_close)
{
    check_cap(run_metrics, 256);
}

Test(metrics, max_connections_sets_the_cap)
{
    check_cap((const char *[]){"run", "--quiet", "--log-level", "info", "--metrics-max-connections",
                               "3", "--metrics-addr", "127.0.0.1:0", "metrics.yaml", NULL},
              3);
}

Test(metrics, max_connections_takes_a_number_from_1_to_65535)
{
    const char *bad[] = {"0", "65536", "many", ""};
    for (size_t i = 0; i < 4; i++) {
        struct proc p =
            start((const char *[]){"run", "--metrics-max-connections", bad[i], "--metrics-addr",
                                   "127.0.0.1:0", "metrics.yaml", NULL},
                  NULL, 0);
        cr_assert_eq(wait_exit(p.pid), 2);
        static char err[4096], want[256];
        read_err(&p, err, sizeof err);
        close(p.err);
        snprintf(want, sizeof want,
                 "sluice: error: --metrics-max-connections expects a number from 1 to 65535; "
                 "found '%s' (see sluice run --help)\n",
                 bad[i]);
        cr_expect_str_eq(err, want);
    }
}

/* ---- issue 10: headers, bodies, timeouts ----------------------------------------------------- */

/* Header lines that never end used to be kept, all of them: 200 MB took RSS to 198 MB. */
Test(metrics, a_flood_of_header_bytes_is_refused_and_memory_stays_small)
{
    struct proc p = start(run_metrics, NULL, 0);
    int port = port_of(&p);
    expect_healthy(port);
    long rss0 = rss_kib(p.pid);
    int fd = connect_to(port, 20);
    send_all(fd, "GET /health HTTP/1.1\r\nHost: localhost\r\n");
    static char line[1024];
    memset(line, 'a', sizeof line);
    size_t sent = 0;
    for (; sent < (64u << 20); sent += sizeof line) { /* 1 KiB lines, 64 MiB at most */
        snprintf(line, 16, "X-Pad-%08zu", sent / sizeof line);
        line[14] = ':';
        memcpy(line + sizeof line - 2, "\r\n", 2);
        if (send(fd, line, sizeof line, MSG_NOSIGNAL) != (ssize_t)sizeof line) break;
    }
    cr_expect_lt(sent, 16u << 20, "the server took %zu bytes of headers", sent);
    static char resp[4096];
    ssize_t got = recv(fd, resp, sizeof resp - 1, 0);
    resp[got > 0 ? got : 0] = '\0';
    /* A 4xx, or the connection reset (the server closed with our bytes unread). */
    cr_expect(got <= 0 || strncmp(resp, "HTTP/1.1 4", 10) == 0, "%s", resp);
    close(fd);
    long grown = rss_kib(p.pid) - rss0;
    cr_expect_lt(grown, 20 * 1024, "RSS grew by %ld KiB", grown);
    expect_healthy(port);
    stop(&p);
}

/* A client that connects and sends nothing, or half a request, must not hold its
 * connection (and its place under the cap) forever. */
Test(metrics, a_client_that_stalls_is_closed_after_the_timeout)
{
    struct proc p = start(run_metrics, NULL, 0);
    int port = port_of(&p);
    int silent = connect_to(port, 30), half = connect_to(port, 30);
    send_all(half, "GET /health HTTP/1.1\r\nHost: local");
    double t0 = now_s();
    char c;
    for (int i = 0; i < 2; i++) {
        ssize_t got = recv(i ? half : silent, &c, 1, 0);
        double waited = now_s() - t0;
        cr_expect_eq(got, 0, "client %d: recv %zd (%s) after %.1f s", i, got, strerror(errno),
                     waited);
        cr_expect(waited > 2 && waited < 20, "client %d closed after %.1f s", i, waited);
    }
    close(silent);
    close(half);
    expect_healthy(port);
    stop(&p);
}

/* ---- libevent's own log lines ---------------------------------------------------------------- */

/* EVENT_SHOW_METHOD makes libevent log a line when the loop is made: it must come through
 * sluice's logger, a JSON object with --log-format json. */
Test(metrics, libevent_lines_come_through_the_logger)
{
    const char *const env[] = {"EVENT_SHOW_METHOD=1", NULL};
    struct proc p = start((const char *[]){"run", "--quiet", "--log-level", "info", "--log-format",
                                           "json", "first.yaml", NULL},
                          env, 0);
    cr_assert_eq(wait_exit(p.pid), 0);
    static char err[65536];
    read_err(&p, err, sizeof err);
    close(p.err);
    int lines = 0;
    for (char *line = err, *nl; (nl = strchr(line, '\n')); line = nl + 1, lines++)
        cr_expect(strncmp(line, "{\"time\":\"", 9) == 0 && nl[-1] == '}', "%.*s", (int)(nl - line),
                  line);
    cr_expect_eq(lines, 2, "%s", err); /* libevent's, and "source done" */
    cr_expect_not_null(strstr(err, "\",\"level\":\"info\",\"msg\":\"libevent: libevent using: "),
                       "%s", err);
    p = start((const char *[]){"run", "--log-level", "info", "--quiet", "first.yaml", NULL}, env,
              0);
    cr_assert_eq(wait_exit(p.pid), 0);
    read_err(&p, err, sizeof err);
    close(p.err);
    cr_expect(strncmp(err, "sluice: info: libevent: libevent using: ", 40) == 0, "%s", err);
}

/* In this process: the logger's libevent callback, fed by libevent itself. */
Test(metrics, a_repeated_libevent_message_is_shown_once_then_counted, .init = cr_redirect_stderr)
{
    cli_log_setup(SL_LOG_INFO, CLI_LOG_TEXT);
    cli_log_libevent_start();
    for (int i = 0; i < 1000; i++) cr_assert_eq(evutil_make_socket_nonblocking(-1), -1);
    cr_assert_eq(evutil_make_socket_closeonexec(-1), -1);
    cli_log_libevent_flush();
    fflush(stderr);
    cr_assert_stderr_eq_str("sluice: warning: libevent: fcntl(-1, F_GETFL): Bad file descriptor\n"
                            "sluice: warning: libevent: fcntl(-1, F_GETFD): Bad file descriptor\n"
                            "sluice: warning: libevent: fcntl(-1, F_GETFL): Bad file descriptor "
                            "(repeated 999 more times)\n");
}

Test(metrics, at_most_20_libevent_lines_are_shown_in_10_s, .init = cr_redirect_stderr)
{
    cli_log_setup(SL_LOG_INFO, CLI_LOG_TEXT);
    cli_log_libevent_start();
    for (int fd = -1; fd >= -50; fd--) evutil_make_socket_nonblocking(fd); /* 50 distinct */
    cli_log_libevent_flush();
    fflush(stderr);
    char want[4096];
    size_t n = 0;
    for (int fd = -1; fd >= -20; fd--)
        n += (size_t)snprintf(want + n, sizeof want - n,
                              "sluice: warning: libevent: fcntl(%d, F_GETFL): Bad file "
                              "descriptor\n",
                              fd);
    snprintf(want + n, sizeof want - n,
             "sluice: warning: libevent: 30 more messages not shown (over 20 in 10 s)\n");
    cr_assert_stderr_eq_str(want);
}
