/* The `stdin` source: one event per line of standard input, for shell pipelines
 * (`cat x.log | sluice run pipe.yaml`); the run ends at end of input.
 *
 * A pipe or terminal is watched by the loop (EV_READ) and read once per readiness, so
 * the read never blocks and the descriptor's flags, shared with the shell, are left
 * alone. A regular file (`< x.log`) is read directly. Lines are framed in the batch
 * arena; the unframed rest of a read (a partial line, or lines beyond a full batch) is
 * carried to the next batch, and no read happens while a block's worth is carried, so
 * the carry stays under read_buffer + max_line_bytes. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include <sluice/builtins.h>
#include <sluice/config.h>

#include "internal.h"

struct stdin_src {
    int64_t fd;              /* option: descriptor to read */
    uint64_t max_line_bytes; /* option */
    int on_oversize;         /* option: SL__FILE_OVERSIZE_* */
    int encoding;            /* option: SL__FILE_ENC_* */
    int invalid_utf8;        /* option: SL__FILE_UTF8_* */
    uint64_t read_buffer;    /* option: bytes per read */
    const char *host_key;    /* option: "" disables */

    struct sl_stage *stage;      /* this stage */
    struct sl__file_lines lines; /* framing settings */
    struct sl__file_frame fr;    /* framing state */
    char host[256];              /* host name */
    char *carry;                 /* bytes read and not yet framed (owned) */
    size_t carry_len, carry_cap; /* used / allocated */
    uint64_t offset;             /* stream offset of carry[0] */
    struct event *ev;            /* readiness of a pipe or terminal; NULL: read directly */
    bool readable;               /* a read will not block */
    bool backlog;                /* the carry holds whole lines (the last batch filled) */
    bool eof;                    /* read() returned 0 */
};

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct stdin_src *s = arg;
    s->readable = true;
    sl_stage_wake(s->stage);
}

static int keep_carry(struct stdin_src *s, const char *p, size_t n)
{
    if (n > s->carry_cap) {
        char *nc = realloc(s->carry, n);
        if (!nc) return SL_ENOMEM;
        s->carry = nc;
        s->carry_cap = n;
    }
    if (n) memmove(s->carry, p, n);
    s->carry_len = n;
    return 0;
}

/* Reads into buf after the carried bytes. Returns the bytes read, 0 at end of input or
 * when nothing can be read now, or -errno. */
static ssize_t read_more(struct stdin_src *s, char *buf, size_t cap)
{
    if (s->eof || !s->readable || s->backlog) return 0; /* frame the backlog first */
    ssize_t n = read((int)s->fd, buf, cap);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) n = -EAGAIN;
    if (n < 0 && n != -EAGAIN) return -errno;
    if (n == 0) s->eof = true;
    if (s->ev && !s->eof) { /* one read per readiness */
        s->readable = false;
        event_add(s->ev, NULL);
    }
    return n < 0 ? 0 : n;
}

static enum sl_poll stdin_poll(struct sl_stage *stage, struct sl_batch **out)
{
    struct stdin_src *s = sl_stage_state(stage);
    if (s->eof && !s->carry_len) return SL_DONE;
    if (!s->eof && !s->readable && !s->backlog) return SL_PENDING;
    struct sl_batch *b = sl_batch_new(stage);
    char *buf = b ? sl_batch_alloc(b, s->carry_len + s->read_buffer) : NULL;
    if (!buf) {
        sl_batch_unref(b);
        return sl_stage_error(stage, SL_ENOMEM, "out of memory"), SL_ERROR;
    }
    if (s->carry_len) memcpy(buf, s->carry, s->carry_len);
    ssize_t n = read_more(s, buf + s->carry_len, s->read_buffer);
    if (n < 0) {
        sl_batch_unref(b);
        return sl_stage_error(stage, SL_EIO, "cannot read input: %s", strerror((int)-n)), SL_ERROR;
    }
    size_t len = s->carry_len + (size_t)n;
    struct sl__file_origin org = {.path = "stdin", .base = s->offset, .time_ns = sl__file_now_ns()};
    size_t used = sl__file_lines_split(&s->lines, &s->fr, b, buf, len, s->eof, &org);
    s->offset += used;
    if (keep_carry(s, buf + used, len - used)) {
        sl_batch_unref(b);
        return sl_stage_error(stage, SL_ENOMEM, "out of memory"), SL_ERROR;
    }
    s->backlog = sl_batch_full(b) && s->carry_len;
    if (sl_batch_count(b)) {
        *out = b;
        return SL_READY;
    }
    sl_batch_unref(b);
    return s->eof || s->readable ? SL_READY : SL_PENDING;
}

static int stdin_init(struct sl_stage *stage, const struct sl_config *cfg, struct sl_error *err)
{
    struct stdin_src *s = sl_stage_state(stage);
    s->stage = stage;
    if (s->fd < 0)
        return sl_config_error(sl_config_get(cfg, "fd"), err, SL_ECONFIG, "'fd' must be >= 0");
    if (s->read_buffer < 4096 || s->read_buffer > (64u << 20))
        return sl_config_error(sl_config_get(cfg, "read_buffer"), err, SL_ECONFIG,
                               "option 'read_buffer' must be between 4KiB and 64MiB");
    if (s->max_line_bytes < 1 || s->max_line_bytes > (1u << 30))
        return sl_config_error(sl_config_get(cfg, "max_line_bytes"), err, SL_ECONFIG,
                               "option 'max_line_bytes' must be between 1 and 1GiB");
    static const char *const flags[] = {"truncated"}; /* oversized lines (lines.c) */
    return sl_stage_declare_fields(stage, SL_FIELDS_ONLY, flags, 1);
}

/* Whether the loop can watch `fd`: not so for regular files and some devices
 * (/dev/null). Asked of a scratch epoll set, so that libevent never has to refuse. */
static bool pollable(int fd)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event e = {.events = EPOLLIN};
    bool ok = ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) == 0;
    if (ep >= 0) close(ep);
    return ok;
}

static int stdin_start(struct sl_stage *stage, struct sl_error *err)
{
    struct stdin_src *s = sl_stage_state(stage);
    gethostname(s->host, sizeof s->host - 1);
    s->lines = (struct sl__file_lines){
        .stage = stage,
        .max_line = s->max_line_bytes,
        .on_oversize = s->on_oversize,
        .encoding = s->encoding,
        .invalid_utf8 = s->invalid_utf8,
        .host = s->host,
        .host_key = s->host_key && *s->host_key ? s->host_key : NULL,
    };
    struct stat st;
    if (fstat((int)s->fd, &st))
        return sl_error_set(err, SL_EIO, "cannot read descriptor %lld: %s", (long long)s->fd,
                            strerror(errno));
    /* A regular file (or /dev/null) is always readable and cannot be watched; anything
     * else (a pipe, a terminal, a socket) is read only once the loop says it is readable:
     * a read() of an empty pipe would hold the loop until someone writes. */
    s->readable = S_ISREG(st.st_mode) || !pollable((int)s->fd);
    if (s->readable) return 0;
    s->ev = event_new(sl_stage_event_base(stage), (int)s->fd, EV_READ, on_readable, s);
    if (!s->ev || event_add(s->ev, NULL))
        return sl_error_set(err, SL_ENOMEM, "cannot watch descriptor %lld", (long long)s->fd);
    return 0;
}

static void stdin_close(struct sl_stage *stage)
{
    struct stdin_src *s = sl_stage_state(stage);
    if (s->ev) event_free(s->ev);
    free(s->carry);
}

#define OPT(field) offsetof(struct stdin_src, field)

static const struct sl_option stdin_options[] = {
    {"fd", SL_OPT_INT, "0", 0, OPT(fd), "descriptor to read (0: standard input)"},
    SL__FILE_LINE_OPTIONS(OPT),
    {"read_buffer", SL_OPT_SIZE, "256KiB", 0, OPT(read_buffer), "bytes per read"},
    SL__FILE_HOST_OPTION(OPT),
    {0},
};

const struct sl_stage_type sl_stage_stdin = {
    .abi = SL_STAGE_ABI,
    .name = "stdin",
    .kind = SL_SOURCE,
    .doc = "reads lines from standard input until it ends",
    .state_size = sizeof(struct stdin_src),
    .options = stdin_options,
    .init = stdin_init,
    .start = stdin_start,
    .poll = stdin_poll,
    .close = stdin_close,
};
