/* Addresses: binding "host:port" (IPv4, or IPv6 in brackets, or a name) and writing a
 * peer's address back as text. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

void sl__socket_addr_text(const struct sockaddr *sa, char *buf, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        snprintf(buf, cap, "%s:%u", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        snprintf(buf, cap, "[%s]:%u", host, port);
    } else {
        snprintf(buf, cap, "unknown");
    }
}

/* Splits "host:port" / "[v6]:port" into `host` (`cap` bytes) and `port`. */
static int split(const char *address, char *host, size_t cap, const char **port)
{
    const char *colon = strrchr(address, ':');
    if (!colon) return -1;
    const char *h = address;
    size_t n = (size_t)(colon - address);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') h++, n -= 2;
    if (n >= cap) return -1;
    memcpy(host, h, n);
    host[n] = 0;
    *port = colon + 1;
    return 0;
}

static int bind_one(const struct addrinfo *ai, uint64_t rcvbuf, int *port)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rb = rcvbuf > INT_MAX / 2 ? INT_MAX / 2 : (int)rcvbuf; /* the kernel doubles it */
    if (rb) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rb, sizeof rb);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) || getsockname(fd, (struct sockaddr *)&ss, &sl)) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                           : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

int sl__socket_bind(const char *address, int type, uint64_t rcvbuf, int *port, struct sl_error *err)
{
    char host[256];
    const char *svc;
    if (split(address, host, sizeof host, &svc))
        return sl_error_set(err, SL_ECONFIG, "address %s is not host:port", address), -1;
    struct addrinfo hints = {.ai_socktype = type,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST};
    struct addrinfo *res = NULL;
    if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1"); /* no resolver: never blocks */
    bool any = !*host || strcmp(host, "*") == 0;
    int gai = getaddrinfo(any ? NULL : host, svc, &hints, &res);
    if (gai) return sl_error_set(err, SL_ECONFIG, "address %s: %s", address, gai_strerror(gai)), -1;
    int fd = -1, e = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = bind_one(ai, rcvbuf, port);
        e = errno;
    }
    freeaddrinfo(res);
    if (fd < 0) sl_error_set(err, SL_EIO, "cannot bind %s: %s", address, strerror(e));
    return fd;
}
