/* The UDP side of the socket source: one bound socket, each datagram one message (a
 * trailing newline removed), read only from poll() (source.c). While the source is not
 * polled, datagrams wait in the socket's receive buffer; what the kernel drops when it
 * is full is read back with SO_MEMINFO (Linux) each time the socket is drained, and counted in
 * udp_dropped_total. */
#include <errno.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "internal.h"

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct sl__socket *s = arg;
    s->udp_ready = true;
    sl_stage_wake(s->stage);
}

int sl__socket_udp_start(struct sl__socket *s, struct sl_error *err)
{
    s->fd = sl__socket_bind(s->address, SOCK_DGRAM, s->rcvbuf, &s->port, err);
    if (s->fd < 0) return err ? err->code : SL_EIO;
    s->dgram = malloc((size_t)s->max_length + 1);
    s->udp_ev =
        s->dgram ? event_new(sl_stage_event_base(s->stage), s->fd, EV_READ, on_readable, s) : NULL;
    if (!s->udp_ev) return sl_error_set(err, SL_ENOMEM, "out of memory");
    event_add(s->udp_ev, NULL);
    return 0;
}

/* Counts the datagrams the kernel dropped on the socket since the last look (its
 * receive buffer was full: the source was not polled), from SO_MEMINFO (Linux). */
static void count_drops(struct sl__socket *s)
{
#if defined(SO_MEMINFO)
    uint32_t mem[SK_MEMINFO_VARS];
    socklen_t len = sizeof mem;
    if (getsockopt(s->fd, SOL_SOCKET, SO_MEMINFO, mem, &len) || len <= SK_MEMINFO_DROPS * 4) return;
    uint32_t total = mem[SK_MEMINFO_DROPS];
    if (total > s->udp_drops_seen) {
        sl_counter_add(s->c_udp_dropped, total - s->udp_drops_seen);
        sl_stage_count_dropped(s->stage, total - s->udp_drops_seen);
        s->udp_drops_seen = total;
    }
#else
    (void)s;
#endif
}

/* One datagram into `b`. Returns 1 when one was read, 0 when none is waiting, or
 * SL_ENOMEM. */
static int read_one(struct sl__socket *s, struct sl_batch *b)
{
    struct sockaddr_storage from;
    struct iovec iov = {s->dgram, (size_t)s->max_length + 1};
    struct msghdr mh = {
        .msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n = recvmsg(s->fd, &mh, MSG_TRUNC);
    if (n < 0) { /* nothing waiting; another error is logged and waited out the same way */
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            sl_stage_log(s->stage, SL_LOG_WARN, "udp receive: %s", strerror(errno));
        return 0;
    }
    sl_counter_add(s->c_bytes, (uint64_t)n);
    if ((uint64_t)n > s->max_length || (mh.msg_flags & MSG_TRUNC)) {
        sl_counter_add(s->c_oversize, 1);
        sl_stage_count_dropped(s->stage, 1);
        return 1;
    }
    size_t len = (size_t)n;
    if (len && s->dgram[len - 1] == '\n') len--;
    if (len && s->dgram[len - 1] == '\r') len--;
    if (!len && s->syslog) return 1;
    char peer[64];
    sl__socket_addr_text((struct sockaddr *)&from, peer, sizeof peer);
    int rc = sl__socket_emit(s, b, s->dgram, len, NULL, peer, 0);
    return rc ? rc : 1;
}

/* Datagrams read in one poll at most: a flood of oversize or unparsable ones (which do
 * not fill the batch) must not hold the loop. */
#define MAX_READS 4096

int sl__socket_udp_fill(struct sl__socket *s, struct sl_batch *b)
{
    for (int k = 0; k < MAX_READS && !sl_batch_full(b); k++) {
        int rc = read_one(s, b);
        if (rc < 0) return rc;
        if (rc == 0) { /* drained: wait for the next datagram */
            s->udp_ready = false;
            count_drops(s);
            event_add(s->udp_ev, NULL);
            return 0;
        }
    }
    return 0;
}

void sl__socket_udp_stop(struct sl__socket *s)
{
    if (s->udp_ev) event_free(s->udp_ev);
    s->udp_ev = NULL;
    s->udp_ready = false;
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    free(s->dgram);
    s->dgram = NULL;
}
