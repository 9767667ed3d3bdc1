/* The TCP side of the socket source: a listener, and connections read only from poll()
 * (source.c says why). A connection with bytes waiting joins the ready list (FIFO) with
 * its read event disarmed; each turn of poll() reads at most read_size bytes from it,
 * frames what it has (frame.c) and, when the read would block, arms its read event again
 * with the idle timeout. Its buffer grows to max_length + a length prefix at most, and is
 * freed while the connection waits with nothing pending: idle connections cost a few
 * hundred bytes each. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "internal.h"

/* The smallest buffer a connection starts with, and the size above which an emptied
 * buffer is freed (a connection that sent one large message does not keep its memory). */
#define BUF_MIN  4096
#define BUF_KEEP 65536

struct sl__socket_conn {
    struct sl__socket *s;            /* the source */
    int fd;                          /* the connection */
    struct event *ev;                /* read readiness, with the idle timeout */
    char peer[64];                   /* "host:port" of the client */
    char *buf;                       /* bytes read, not framed yet (owned) */
    size_t len, cap;                 /* used / allocated bytes of buf */
    uint64_t offset;                 /* stream offset of buf[0] */
    struct sl__socket_framer fr;     /* where the framing stands */
    bool ready;                      /* on the ready list */
    struct sl__socket_conn *prev;    /* all connections (doubly linked) */
    struct sl__socket_conn *next;    /* ... */
    struct sl__socket_conn *next_rd; /* the ready list */
};

static void conn_close(struct sl__socket_conn *c)
{
    struct sl__socket *s = c->s;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    event_free(c->ev);
    close(c->fd);
    free(c->buf);
    free(c);
    s->nconns--;
}

static void make_ready(struct sl__socket_conn *c)
{
    struct sl__socket *s = c->s;
    c->ready = true;
    c->next_rd = NULL;
    if (s->ready_tail)
        s->ready_tail->next_rd = c;
    else
        s->ready = c;
    s->ready_tail = c;
}

static struct sl__socket_conn *take_ready(struct sl__socket *s)
{
    struct sl__socket_conn *c = s->ready;
    s->ready = c->next_rd;
    if (!s->ready) s->ready_tail = NULL;
    c->ready = false;
    return c;
}

static void arm(struct sl__socket_conn *c)
{
    struct timeval tv = {c->s->idle_timeout_ms / 1000, (c->s->idle_timeout_ms % 1000) * 1000};
    event_add(c->ev, c->s->idle_timeout_ms ? &tv : NULL);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct sl__socket_conn *c = arg;
    if (what & EV_TIMEOUT) {
        sl_counter_add(c->s->c_closed_idle, 1);
        if (c->len) { /* a partial message the client never finished */
            sl_counter_add(c->s->c_truncated, 1);
            sl_stage_count_errors(c->s->stage, 1);
        }
        sl_stage_log(c->s->stage, SL_LOG_DEBUG, "closing %s: idle", c->peer);
        conn_close(c);
        return;
    }
    make_ready(c);
    sl_stage_wake(c->s->stage);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    (void)l, (void)salen;
    struct sl__socket *s = arg;
    if (s->nconns >= s->max_connections) {
        sl_counter_add(s->c_refused, 1);
        close(fd);
        return;
    }
    struct sl__socket_conn *c = calloc(1, sizeof *c);
    struct event *ev =
        c ? event_new(sl_stage_event_base(s->stage), fd, EV_READ, on_readable, c) : NULL;
    if (!ev) {
        free(c);
        close(fd);
        sl_stage_log(s->stage, SL_LOG_ERROR, "out of memory: a connection closed");
        return;
    }
    *c = (struct sl__socket_conn){.s = s, .fd = fd, .ev = ev, .next = s->conns};
    c->fr = (struct sl__socket_framer){.framing = s->framing, .max = (size_t)s->max_length};
    sl__socket_addr_text(sa, c->peer, sizeof c->peer);
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    sl_counter_add(s->c_accepted, 1);
    arm(c);
}

static void resume_accepting(struct sl_stage *stage, void *arg)
{
    (void)stage;
    struct sl__socket *s = arg;
    if (s->listener && !s->ended) evconnlistener_enable(s->listener);
}

/* accept() failed (out of descriptors): pause for a second rather than spin. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    struct sl__socket *s = arg;
    sl_stage_log(s->stage, SL_LOG_WARN, "cannot accept: %s; pausing 1s", strerror(errno));
    evconnlistener_disable(l);
    sl_timer_start(s->pause, 1000, false);
}

int sl__socket_tcp_start(struct sl__socket *s, struct sl_error *err)
{
    int fd = sl__socket_bind(s->address, SOCK_STREAM, s->rcvbuf, &s->port, err);
    if (fd < 0) return err ? err->code : SL_EIO;
    s->pause = sl_timer_new(s->stage, resume_accepting, s);
    s->listener = s->pause
                      ? evconnlistener_new(sl_stage_event_base(s->stage), on_accept, s,
                                           LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 128, fd)
                      : NULL;
    if (!s->listener) {
        close(fd);
        return sl_error_set(err, SL_EIO, "cannot listen on %s: %s", s->address, strerror(errno));
    }
    evconnlistener_set_error_cb(s->listener, on_accept_error);
    return 0;
}

/* Room for the next read: the buffer grows by doubling up to max_length + 32. */
static int make_room(struct sl__socket_conn *c, size_t *room)
{
    size_t most = (size_t)c->s->max_length + 32;
    if (c->cap - c->len < (size_t)c->s->read_size && c->cap < most) {
        size_t cap = c->cap ? c->cap : BUF_MIN;
        while (cap - c->len < (size_t)c->s->read_size && cap < most) cap *= 2;
        if (cap > most) cap = most;
        char *nb = realloc(c->buf, cap);
        if (!nb) return SL_ENOMEM;
        c->buf = nb;
        c->cap = cap;
    }
    *room = c->cap - c->len;
    if (*room > (size_t)c->s->read_size) *room = (size_t)c->s->read_size;
    return 0;
}

/* Frames what the buffer holds into `b`. Returns 0, 1 when the stream is broken (close
 * the connection), or SL_ENOMEM. */
static int frame(struct sl__socket_conn *c, struct sl_batch *b, bool eof)
{
    struct sl__socket *s = c->s;
    size_t pos = 0;
    int rc = 0;
    if (!c->len) return 0; /* (and buf may be NULL) */
    while (!sl_batch_full(b)) {
        const char *msg;
        size_t len, used;
        int r = sl__socket_frame_next(&c->fr, c->buf + pos, c->len - pos, eof, &msg, &len, &used);
        if (r == SL__SOCKET_FRAME_MESSAGE && (len || !s->syslog))
            rc = sl__socket_emit(s, b, msg, len, c, c->peer, c->offset + (uint64_t)(msg - c->buf));
        if (r == SL__SOCKET_FRAME_OVERSIZE) {
            sl_counter_add(s->c_oversize, 1);
            sl_stage_count_dropped(s->stage, 1);
        }
        if (r == SL__SOCKET_FRAME_BAD) {
            sl_counter_add(s->c_bad_frame, 1);
            sl_stage_count_errors(s->stage, 1);
            sl_stage_log(s->stage, SL_LOG_WARN, "closing %s: bad octet-count prefix", c->peer);
            rc = 1;
        }
        pos += used;
        if (rc || r == SL__SOCKET_FRAME_NONE || r == SL__SOCKET_FRAME_BAD) break;
    }
    if (pos) memmove(c->buf, c->buf + pos, c->len - pos);
    c->len -= pos;
    c->offset += pos;
    if (!c->len && c->cap > BUF_KEEP) {
        free(c->buf);
        c->buf = NULL;
        c->cap = 0;
    }
    return rc;
}

/* One turn of a ready connection: frame what is buffered, then read once. Returns 0 or
 * SL_ENOMEM; the connection is back on the ready list, armed, or closed. */
static int serve(struct sl__socket_conn *c, struct sl_batch *b)
{
    int rc = frame(c, b, false);
    if (rc == 1) return conn_close(c), 0;
    if (rc || sl_batch_full(b)) return make_ready(c), rc;
    size_t room;
    if (make_room(c, &room)) return make_ready(c), SL_ENOMEM;
    ssize_t n = read(c->fd, c->buf + c->len, room);
    if (n > 0) {
        c->len += (size_t)n;
        sl_counter_add(c->s->c_bytes, (uint64_t)n);
        make_ready(c); /* frame it on its next turn, after the others had theirs */
        return 0;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (!c->len) { /* nothing pending: a waiting connection holds no buffer */
            free(c->buf);
            c->buf = NULL;
            c->cap = 0;
        }
        arm(c);
        return 0;
    }
    rc = n == 0 ? frame(c, b, true) : 0; /* end of stream: a last line without '\n' */
    if (rc == SL_ENOMEM || (rc == 0 && c->len && n == 0 && sl_batch_full(b)))
        return make_ready(c), rc; /* finish it on the next poll */
    if (rc == 0 && c->len) {      /* the stream ended (or broke) inside a message */
        sl_counter_add(c->s->c_truncated, 1);
        sl_stage_count_errors(c->s->stage, 1);
    }
    conn_close(c);
    return 0;
}

int sl__socket_tcp_fill(struct sl__socket *s, struct sl_batch *b)
{
    /* Each connection ready now gets one turn; those that read go to the back. */
    struct sl__socket_conn *last = s->ready_tail;
    while (s->ready && !sl_batch_full(b)) {
        struct sl__socket_conn *c = take_ready(s);
        bool was_last = c == last;
        int rc = serve(c, b);
        if (rc) return rc;
        if (was_last) break;
    }
    return 0;
}

bool sl__socket_has_ready(const struct sl__socket *s)
{
    return s->ready != NULL || s->udp_ready;
}

void sl__socket_tcp_stop(struct sl__socket *s)
{
    while (s->conns) conn_close(s->conns);
    s->ready = s->ready_tail = NULL;
    if (s->listener) evconnlistener_free(s->listener);
    s->listener = NULL;
    sl_timer_free(s->pause);
    s->pause = NULL;
}
