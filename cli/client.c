/* The HTTP client of `sluice top` and `sluice tap`: a plain blocking socket in the
 * tool's own process (not a pipeline's loop), HTTP/1.0 so that the server sends the body
 * as it is and closes the connection at its end, with a deadline on connecting and on
 * each read. The token of SLUICE_API_TOKEN, when set, goes in every request. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"

enum { HEAD_MAX = 16384 }; /* status line and headers */

/* Splits "host:port" or "[v6]:port" into `host` (`size` bytes) and `port`. */
static int split(const char *addr, char *host, size_t size, char port[8])
{
    const char *colon = strrchr(addr, ':');
    if (!colon || !colon[1] || strlen(colon + 1) >= 8) return -1;
    const char *h = addr;
    size_t hl = (size_t)(colon - addr);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') h++, hl -= 2;
    if (hl >= size) return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (!hl) snprintf(host, size, "127.0.0.1");
    snprintf(port, 8, "%s", colon + 1);
    return 0;
}

/* Connects to `addr` within `timeout_ms`; returns the socket or -1 with `why`. */
static int dial(const char *addr, int timeout_ms, char *why, size_t why_size)
{
    char host[256], port[8];
    if (split(addr, host, sizeof host, port)) {
        snprintf(why, why_size, "'%s' is not HOST:PORT", addr);
        return -1;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc) {
        snprintf(why, why_size, "%s", gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    rc = fd < 0 ? -1 : connect(fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (rc && fd >= 0 && errno == EINPROGRESS) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t len = sizeof err;
        rc = poll(&pfd, 1, timeout_ms) == 1 ? 0 : -1;
        if (rc) errno = ETIMEDOUT;
        if (!rc && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err)
            errno = err, rc = -1;
    }
    if (rc) {
        snprintf(why, why_size, "%s", strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

ssize_t cli_client_read(struct cli_client *c, char *buf, size_t size, int timeout_ms)
{
    if (c->pending_len) { /* body bytes that came with the headers */
        size_t n = c->pending_len < size ? c->pending_len : size;
        memcpy(buf, c->pending + c->pending_off, n);
        c->pending_off += n, c->pending_len -= n;
        return (ssize_t)n;
    }
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    int r = poll(&pfd, 1, timeout_ms);
    if (r == 0) return -2;
    if (r < 0) return errno == EINTR ? -2 : -1;
    ssize_t n = recv(c->fd, buf, size, 0);
    return n < 0 && (errno == EAGAIN || errno == EINTR) ? -2 : n;
}

static int send_all(int fd, const char *s, size_t len)
{
    while (len) {
        ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            if (poll(&pfd, 1, 5000) != 1) return -1;
            continue;
        }
        if (n <= 0) return -1;
        s += n, len -= (size_t)n;
    }
    return 0;
}

/* Reads the status line and headers; keeps what follows them in c->pending. */
static int read_head(struct cli_client *c, int timeout_ms, char *why, size_t why_size)
{
    size_t got = 0;
    char *end = NULL;
    while (!end) {
        ssize_t n =
            got < HEAD_MAX ? cli_client_read(c, c->pending + got, HEAD_MAX - got, timeout_ms) : -1;
        if (n <= 0) {
            snprintf(why, why_size, "%s", n == -2 ? "no answer in time" : "connection closed");
            return -1;
        }
        got += (size_t)n;
        c->pending[got] = '\0';
        end = strstr(c->pending, "\r\n\r\n");
    }
    if (sscanf(c->pending, "HTTP/%*d.%*d %d", &c->status) != 1) {
        snprintf(why, why_size, "not an HTTP answer");
        return -1;
    }
    c->pending_off = (size_t)(end + 4 - c->pending);
    c->pending_len = got - c->pending_off;
    return 0;
}

int cli_client_get(struct cli_client *c, const char *addr, const char *target, int timeout_ms,
                   char *why, size_t why_size)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    if (!(c->pending = malloc(HEAD_MAX + 1))) {
        snprintf(why, why_size, "out of memory");
        return -1;
    }
    if ((c->fd = dial(addr, timeout_ms, why, why_size)) < 0) return -1;
    const char *token = getenv("SLUICE_API_TOKEN");
    char req[8192];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\n%s%s%sAccept: */*\r\n\r\n",
                     target, addr, token ? "Authorization: Bearer " : "", token ? token : "",
                     token ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof req || send_all(c->fd, req, (size_t)n)) {
        snprintf(why, why_size, "cannot send the request");
        return -1;
    }
    return read_head(c, timeout_ms, why, why_size);
}

char *cli_client_body(struct cli_client *c, size_t *len, int timeout_ms)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    for (ssize_t r; buf; n += (size_t)r) {
        if (n == cap) {
            char *nb = realloc(buf, 2 * cap + 1);
            if (!nb) break;
            buf = nb, cap *= 2;
        }
        r = cli_client_read(c, buf + n, cap - n, timeout_ms);
        if (r == 0) { /* the end */
            buf[n] = '\0';
            *len = n;
            return buf;
        }
        if (r < 0) break;
    }
    free(buf);
    return NULL;
}

void cli_client_close(struct cli_client *c)
{
    if (c->fd >= 0) close(c->fd);
    free(c->pending);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

char *cli_client_fetch(const char *addr, const char *target, size_t *len, char *why,
                       size_t why_size)
{
    struct cli_client c;
    char *body = NULL;
    if (cli_client_get(&c, addr, target, 5000, why, why_size) == 0) {
        body = cli_client_body(&c, len, 5000);
        if (!body)
            snprintf(why, why_size, "the answer did not come whole");
        else if (c.status != 200) {
            snprintf(why, why_size, "%s answered %d: %.200s", target, c.status, body);
            free(body);
            body = NULL;
        }
    }
    cli_client_close(&c);
    return body;
}

bool cli_json_text(const char *json, size_t len, const char *path, char *buf, size_t size)
{
    struct sl_value v;
    if (sl_json_get(json, len, path, strlen(path), &v) || v.type != SL_STRING || v.len >= size)
        return false;
    int n = sl_value_unescape(&v, buf, size - 1);
    if (n < 0) return false;
    buf[n] = '\0';
    return true;
}
