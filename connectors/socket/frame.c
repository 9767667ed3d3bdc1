/* Framing of a TCP byte stream into messages: newline-terminated lines, or RFC 6587's
 * octet counting ("LEN SP MSG"), or either per message. A message longer than the limit
 * is discarded as it arrives (to its newline, or its LEN bytes), so a connection never
 * needs more than the limit and a length prefix buffered. */
#include <string.h>

#include "internal.h"

/* The longest LEN prefix read: 20 digits (beyond any 64-bit length) and the space. */
#define MAX_PREFIX 21

/* Discards what is left of an oversize message. Returns true while more is to come. */
static bool discard(struct sl__socket_framer *f, size_t n, const char *buf, size_t *used)
{
    if (f->skip_line) {
        const char *nl = memchr(buf, '\n', n);
        *used = nl ? (size_t)(nl - buf) + 1 : n;
        f->skip_line = !nl;
    } else {
        *used = f->skip < n ? (size_t)f->skip : n;
        f->skip -= *used;
    }
    return f->skip_line || f->skip;
}

static int line(struct sl__socket_framer *f, const char *buf, size_t n, bool eof, const char **msg,
                size_t *len, size_t *used)
{
    const char *nl = memchr(buf, '\n', n);
    if (!nl) {
        if (n <= f->max + 1 && !eof) return SL__SOCKET_FRAME_NONE; /* may still end in time */
        if (n > f->max) { /* discard it, and the rest of it up to its newline */
            *used = n;
            f->skip_line = !eof;
            return SL__SOCKET_FRAME_OVERSIZE;
        }
        *msg = buf; /* the last line, at the end of the stream */
        *len = *used = n;
        return SL__SOCKET_FRAME_MESSAGE;
    }
    size_t l = (size_t)(nl - buf);
    size_t body = l && buf[l - 1] == '\r' ? l - 1 : l;
    *used = l + 1;
    if (body > f->max) return SL__SOCKET_FRAME_OVERSIZE;
    *msg = buf;
    *len = body;
    return SL__SOCKET_FRAME_MESSAGE;
}

static int octets(struct sl__socket_framer *f, const char *buf, size_t n, const char **msg,
                  size_t *len, size_t *used)
{
    uint64_t v = 0;
    size_t i = 0;
    while (i < n && i < MAX_PREFIX - 1 && buf[i] >= '0' && buf[i] <= '9')
        v = v * 10 + (uint64_t)(buf[i++] - '0');
    if (i == n) return i < MAX_PREFIX - 1 ? SL__SOCKET_FRAME_NONE : SL__SOCKET_FRAME_BAD;
    if (i == 0 || buf[i] != ' ' || buf[0] == '0') return SL__SOCKET_FRAME_BAD;
    i++;
    if (v > f->max) {
        f->skip = v;
        *used = i;
        return SL__SOCKET_FRAME_OVERSIZE;
    }
    if (n - i < v) return SL__SOCKET_FRAME_NONE;
    *msg = buf + i;
    *len = (size_t)v;
    *used = i + (size_t)v;
    return SL__SOCKET_FRAME_MESSAGE;
}

int sl__socket_frame_next(struct sl__socket_framer *f, const char *buf, size_t n, bool eof,
                          const char **msg, size_t *len, size_t *used)
{
    *used = 0;
    if ((f->skip_line || f->skip) && n) {
        if (discard(f, n, buf, used)) return SL__SOCKET_FRAME_NONE;
        buf += *used;
        n -= *used;
        size_t more;
        int rc = sl__socket_frame_next(f, buf, n, eof, msg, len, &more);
        *used += more;
        return rc;
    }
    if (!n) return SL__SOCKET_FRAME_NONE;
    bool counted = f->framing == SL__SOCKET_FRAME_OCTETS ||
                   (f->framing == SL__SOCKET_FRAME_AUTO && buf[0] >= '1' && buf[0] <= '9');
    return counted ? octets(f, buf, n, msg, len, used) : line(f, buf, n, eof, msg, len, used);
}
