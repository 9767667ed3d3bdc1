/* Helpers the HTTP connectors share: addresses and constant-time comparison. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common.h"

int sl__http_split_addr(const char *addr, char *host, size_t size, int *port)
{
    const char *colon = strrchr(addr, ':');
    if (!colon) return -1;
    const char *h = addr;
    size_t hl = (size_t)(colon - addr);
    if (hl && *h == '[') {
        if (hl < 2 || h[hl - 1] != ']') return -1;
        h++, hl -= 2;
    } else if (memchr(h, ':', hl)) {
        return -1; /* a bare v6 address: which colon ends it is ambiguous */
    }
    if (hl >= size) return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    const char *d = colon + 1;
    long p = 0;
    if (!*d) return -1;
    for (; *d; d++) {
        if (*d < '0' || *d > '9' || p > 65535) return -1;
        p = p * 10 + (*d - '0');
    }
    if (p > 65535) return -1;
    *port = (int)p;
    return 0;
}

bool sl__http_secret_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    /* Every byte of the longer side is read whatever the contents, and the lengths are
     * folded into the same accumulator: no early exit, no branch on secret data. */
    size_t n = alen > blen ? alen : blen;
    volatile unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < alen ? (unsigned char)a[i] : 0;
        unsigned char y = i < blen ? (unsigned char)b[i] : 0;
        diff |= (unsigned char)(x ^ y);
    }
    return diff == 0;
}

const char *sl__http_format_addr(const struct sockaddr *sa, char *out, size_t size)
{
    char ip[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(out, size, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(out, size, "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
    } else {
        snprintf(out, size, "?");
    }
    return out;
}
