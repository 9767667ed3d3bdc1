/* What the `socket` and `syslog` source types share: the run (start, poll, flush,
 * close) and turning one received message into an event. The sockets themselves are
 * in tcp.c and udp.c.
 *
 * Backpressure: nothing is read except inside poll(). A TCP connection with bytes to
 * read waits on the ready list with its read event disarmed; a UDP socket likewise. So
 * when the runtime stops polling (the queue after the source is full), the source stops
 * reading: TCP clients are held by the kernel's window, and UDP datagrams queue in the
 * socket's receive buffer, where the kernel drops the excess and tells how many
 * (udp_dropped_total). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* Writes the bound port to port_file through a temporary file and a rename, so that a
 * reader never sees it half written. */
static int write_port_file(struct sl__socket *s, struct sl_error *err)
{
    if (!s->port_file || !*s->port_file) return 0;
    char tmp[4096], text[16];
    snprintf(tmp, sizeof tmp, "%s.tmp", s->port_file);
    int n = snprintf(text, sizeof text, "%d\n", s->port);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool ok = fd >= 0 && write(fd, text, (size_t)n) == n;
    int e = errno;
    if (fd >= 0 && close(fd) != 0 && ok) ok = false, e = errno;
    if (ok && rename(tmp, s->port_file) != 0) ok = false, e = errno;
    if (ok) return 0;
    if (fd >= 0) unlink(tmp);
    return sl_error_set(err, SL_EIO, "cannot write port_file %s: %s", s->port_file, strerror(e));
}

int sl__socket_start(struct sl_stage *stage, struct sl_error *err)
{
    struct sl__socket *s = sl_stage_state(stage);
    int rc = s->mode ? sl__socket_udp_start(s, err) : sl__socket_tcp_start(s, err);
    if (rc) return rc;
    sl_stage_log(stage, SL_LOG_INFO, "listening on %s (%s), port %d", s->address,
                 s->mode ? "udp" : "tcp", s->port);
    return write_port_file(s, err);
}

enum sl_poll sl__socket_poll(struct sl_stage *stage, struct sl_batch **out)
{
    struct sl__socket *s = sl_stage_state(stage);
    if (s->ended) return SL_DONE;
    if (!sl__socket_has_ready(s)) return SL_PENDING; /* a read event wakes the stage */
    struct sl_batch *b = sl_batch_new(stage);
    if (!b) return sl_stage_error(stage, SL_ENOMEM, "out of memory"), SL_ERROR;
    s->cur_b = b;
    s->cur_src = NULL;
    s->cur_peer = NULL;
    int rc = s->mode ? sl__socket_udp_fill(s, b) : sl__socket_tcp_fill(s, b);
    s->cur_b = NULL;
    if (rc) {
        sl_batch_unref(b);
        sl_stage_error(stage, rc, "out of memory");
        return SL_ERROR;
    }
    if (!sl_batch_count(b)) { /* bytes of partial messages only, or messages dropped */
        sl_batch_unref(b);
        *out = NULL;
        return sl__socket_has_ready(s) ? SL_READY : SL_PENDING;
    }
    *out = b;
    return SL_READY;
}

/* The source has ended (a stop): accept and read nothing more. */
int sl__socket_flush(struct sl_stage *stage, struct sl_emit *out, bool end)
{
    (void)out;
    struct sl__socket *s = sl_stage_state(stage);
    if (end && !s->ended) {
        s->ended = true;
        if (s->mode)
            sl__socket_udp_stop(s);
        else
            sl__socket_tcp_stop(s);
    }
    return 0;
}

void sl__socket_close(struct sl_stage *stage)
{
    struct sl__socket *s = sl_stage_state(stage);
    if (!s->stage) return;
    if (s->mode)
        sl__socket_udp_stop(s);
    else
        sl__socket_tcp_stop(s);
}

/* The peer's address in the batch arena, once per batch and connection. */
static const char *peer_copy(struct sl__socket *s, struct sl_batch *b, const void *src,
                             const char *peer)
{
    if (s->cur_b == b && s->cur_peer && (src ? s->cur_src == src : strcmp(s->cur_peer, peer) == 0))
        return s->cur_peer;
    size_t n = strlen(peer);
    char *p = sl_batch_alloc(b, n + 1);
    if (!p) return NULL;
    memcpy(p, peer, n + 1);
    s->cur_src = src;
    s->cur_peer = p;
    return p;
}

/* Parses a syslog message. Returns 1 to emit it with its fields, 0 to emit it with field
 * "error" (on_error: pass), -1 to drop it. */
static int parse(struct sl__socket *s, const char *msg, size_t len, struct sl__socket_syslog *m,
                 char *why, size_t cap)
{
    const char *what;
    size_t at;
    if (sl__socket_syslog_parse(msg, len, s->format, m, &what, &at) == 0) return 1;
    sl_counter_add(s->c_parse_errors, 1);
    sl_stage_count_errors(s->stage, 1);
    snprintf(why, cap, "not syslog: %s at byte %zu", what, at);
    if (s->on_error == 0) {
        sl_stage_count_dropped(s->stage, 1);
        return -1;
    }
    return 0;
}

/* Moves the spans of `m` from `from` to the same bytes at `to`. */
static void rebase(struct sl__socket_syslog *m, const char *from, const char *to)
{
    struct sl__socket_span *sp[] = {&m->timestamp, &m->host, &m->app, &m->procid,
                                    &m->msgid,     &m->sd,   &m->msg};
    for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++)
        if (sp[i]->s) sp[i]->s = to + (sp[i]->s - from);
}

int sl__socket_emit(struct sl__socket *s, struct sl_batch *b, const char *msg, size_t len,
                    const void *src, const char *peer, uint64_t offset)
{
    struct sl__socket_syslog m;
    char why[160];
    int parsed = s->syslog ? parse(s, msg, len, &m, why, sizeof why) : 1;
    if (parsed < 0) return 0;
    const char *org = peer_copy(s, b, src, peer);
    struct sl_event *ev = org ? sl_batch_append(b) : NULL;
    char *copy = ev ? sl_event_alloc(ev, len ? len : 1) : NULL;
    if (!copy) return SL_ENOMEM;
    memcpy(copy, msg, len);
    sl_event_set_payload(ev, copy, len);
    sl_event_set_origin(ev, org, offset, -1);
    int rc = 0;
    if (*s->peer_key) {
        struct sl_value v = sl_value_string(org, strlen(org));
        rc = sl_event_add_field(ev, s->peer_key, strlen(s->peer_key), &v);
    }
    if (!rc && s->syslog && parsed) {
        rebase(&m, msg, copy);
        rc = sl__socket_syslog_fields(ev, &m, s->sd_mode, *s->peer_key != 0);
    } else if (!rc && s->syslog) {
        rc = sl_event_set_error(ev, why, strlen(why));
    }
    return rc == SL_ENOMEM ? rc : 0; /* SL_ELIMIT cannot happen: a dozen fields */
}
