/* Encodings: how an event becomes a line of bytes, gathered into iovecs for writev.
 *
 * json: an event's JSON form as sl_event_write_json() defines it (event.h, "fields and
 * the payload"). An event in sync (its payload is the JSON text of its fields: parsed
 * and untouched) is written as its payload bytes without a copy: its iovec points into
 * the batch, and when consecutive payloads were adjacent lines of one read block
 * (separated by their original '\n') they merge into one iovec, so a parse-and-forward
 * job writes whole blocks per iovec. Any other event is serialised by
 * sl_event_write_json into scratch memory: a raw line as {"message": ..., fields}, so
 * every line is valid JSON. text: the payload, or the `template` (sl_template_each).
 * csv: the listed fields, quoted per RFC 4180. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <sluice/json.h>

#include "internal.h"

static const char newline[1] = {'\n'};

void sl__file_iobuf_reset(struct sl__file_iobuf *io)
{
    io->n = 0;
    io->bytes = 0;
    io->used = 0;
}

/* Adds a span, extending the last iovec when the span continues it. */
static int push(struct sl__file_iobuf *io, const char *p, size_t len)
{
    if (len == 0) return 0;
    struct iovec *last = io->n ? &io->iov[io->n - 1] : NULL;
    if (last && last->iov_base != newline && (const char *)last->iov_base + last->iov_len == p) {
        last->iov_len += len;
    } else {
        if (io->n == SL__FILE_IOV_MAX) return SL_EAGAIN;
        io->iov[io->n++] = (struct iovec){.iov_base = (void *)p, .iov_len = len};
    }
    io->bytes += len;
    return 0;
}

/* Payload `p`/`len` plus a newline. When the previous line's bytes end just before `p`
 * with their original '\n', the run is extended over that '\n' and `p` instead. */
static int push_line(struct sl__file_iobuf *io, const char *p, size_t len)
{
    if (io->n >= 2 && io->iov[io->n - 1].iov_base == newline) {
        struct iovec *prev = &io->iov[io->n - 2];
        const char *end = (const char *)prev->iov_base + prev->iov_len;
        if (end + 1 == p && *end == '\n') { /* `end` lies between two spans of one block */
            prev->iov_len += 1 + len;
            io->bytes += 1 + len;
            return 0;
        }
    }
    if (io->n + 2 > SL__FILE_IOV_MAX) return SL_EAGAIN;
    push(io, p, len);
    io->iov[io->n++] = (struct iovec){.iov_base = (void *)newline, .iov_len = 1};
    io->bytes += 1;
    return 0;
}

/* Makes room for `need` bytes of scratch. Growing is safe only while no iovec points
 * into scratch (used == 0); otherwise the caller must write out first. */
static int reserve(struct sl__file_iobuf *io, size_t need)
{
    if (io->cap - io->used >= need) return 0;
    if (io->used) return SL_EAGAIN;
    size_t cap = io->cap ? io->cap : 64 * 1024;
    while (cap < need) cap *= 2;
    char *ns = realloc(io->scratch, cap);
    if (!ns) return SL_ENOMEM;
    io->scratch = ns;
    io->cap = cap;
    return 0;
}

/* Adds `len` bytes written at scratch + used as a span, skipping the first `skip`. */
static long commit(struct sl__file_iobuf *io, size_t len, size_t skip)
{
    char *p = io->scratch + io->used;
    if (io->n == SL__FILE_IOV_MAX) return SL_EAGAIN;
    io->used += len;
    if (skip < len) push(io, p + skip, len - skip);
    return (long)len;
}

int sl__file_iobuf_copy(struct sl__file_iobuf *io, const char *s, size_t len)
{
    int rc = reserve(io, len);
    if (rc) return rc;
    memcpy(io->scratch + io->used, s, len);
    long n = commit(io, len, 0);
    return n < 0 ? (int)n : 0;
}

/* ---- json ------------------------------------------------------------------------------ */

/* An event that is not in sync, serialised into scratch (its JSON form and a newline). */
static long encode_json(const struct sl_event *ev, struct sl__file_iobuf *io, size_t skip)
{
    size_t room = io->cap - io->used; /* one byte of it is kept for the newline */
    size_t n = sl_event_write_json(ev, room ? io->scratch + io->used : NULL, room ? room - 1 : 0);
    if (n + 1 > room) { /* measured only: make room, then write */
        int rc = reserve(io, n + 1);
        if (rc) return rc;
        sl_event_write_json(ev, io->scratch + io->used, n);
    }
    io->scratch[io->used + n] = '\n';
    return commit(io, n + 1, skip);
}

/* ---- csv ----------------------------------------------------------------------------------- */

static size_t csv_cell(const char *s, size_t len, char *d)
{
    bool quote = false;
    for (size_t i = 0; i < len && !quote; i++)
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
    if (!quote) {
        memcpy(d, s, len);
        return len;
    }
    size_t o = 0;
    d[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"') d[o++] = '"';
        d[o++] = s[i];
    }
    d[o++] = '"';
    return o;
}

/* Bytes a value's text takes before CSV quoting: a string's (decoded: never longer than
 * its escaped form) or the JSON text of anything else. */
static size_t value_bound(const struct sl_value *v)
{
    if (v->type == SL_STRING) return v->len;
    if (v->type == SL_NULL) return 0;
    return sl_json_write_value(v, NULL, 0);
}

/* One field as CSV text at d (room: 2 * value_bound + 2); tmp: value_bound bytes. */
static size_t csv_value(const struct sl_value *v, char *d, char *tmp)
{
    switch (v->type) {
    case SL_STRING: {
        int n = sl_value_unescape(v, tmp, v->len);
        return n < 0 ? csv_cell(v->s, v->len, d) : csv_cell(tmp, (size_t)n, d);
    }
    case SL_NULL: return 0;
    default: {
        size_t n = sl_json_write_value(v, tmp, value_bound(v));
        return csv_cell(tmp, n, d);
    }
    }
}

static long encode_csv(struct sl__file_enc *e, const struct sl_event *ev, struct sl__file_iobuf *io,
                       size_t skip)
{
    size_t need = e->cols->n + 1, maxv = 1;
    struct sl_value vals[e->cols->n];
    bool have[e->cols->n];
    for (size_t i = 0; i < e->cols->n; i++) {
        const char *name = e->cols->items[i];
        have[i] = sl_event_get(ev, name, strlen(name), &vals[i]) == 0;
        if (!have[i]) {
            e->missing++;
            continue;
        }
        size_t b = value_bound(&vals[i]);
        need += 2 * b + 2;
        if (b > maxv) maxv = b;
    }
    int rc = reserve(io, need + maxv);
    if (rc) return rc;
    char *d = io->scratch + io->used, *tmp = d + need; /* tmp: one value, past the line */
    size_t o = 0;
    for (size_t i = 0; i < e->cols->n; i++) {
        if (i) d[o++] = ',';
        if (have[i]) o += csv_value(&vals[i], d + o, tmp);
    }
    d[o++] = '\n';
    return commit(io, o, skip);
}

int sl__file_encode_csv_header(struct sl__file_enc *e, struct sl__file_iobuf *io)
{
    size_t need = 1;
    for (size_t i = 0; i < e->cols->n; i++) need += 2 * strlen(e->cols->items[i]) + 3;
    int rc = reserve(io, need);
    if (rc) return rc;
    char *d = io->scratch + io->used;
    size_t o = 0;
    for (size_t i = 0; i < e->cols->n; i++) {
        if (i) d[o++] = ',';
        o += csv_cell(e->cols->items[i], strlen(e->cols->items[i]), d + o);
    }
    d[o++] = '\n';
    long n = commit(io, o, 0);
    return n < 0 ? (int)n : 0;
}

/* ---- text ---------------------------------------------------------------------------------- */

/* Where a text template is rendered: scratch memory, measured when it does not fit. */
struct text_out {
    char *d;      /* output */
    size_t room;  /* bytes at d */
    size_t n;     /* bytes the rendering needs */
    bool missing; /* a `{{ }}` was null */
};

static int text_piece(void *arg, enum sl_template_piece kind, const char *s, size_t len)
{
    struct text_out *o = arg;
    if (kind == SL_TEMPLATE_NULL) o->missing = true; /* renders as nothing, counted */
    if (len && o->n + len <= o->room) memcpy(o->d + o->n, s, len);
    o->n += len;
    return 0;
}

static long encode_text_template(struct sl__file_enc *e, const struct sl_event *ev,
                                 struct sl__file_iobuf *io, size_t skip)
{
    for (size_t want = 4096;;) {
        int rc = reserve(io, want);
        if (rc) return rc;
        struct text_out o = {io->scratch + io->used, io->cap - io->used - 1, 0, false};
        rc = sl_template_each(e->text, ev, text_piece, &o);
        if (rc) return rc;
        if (o.n <= o.room) {
            if (o.missing) e->missing++;
            io->scratch[io->used + o.n] = '\n';
            return commit(io, o.n + 1, skip);
        }
        want = o.n + 1;
        if (io->used) return SL_EAGAIN; /* write out, then grow the empty scratch */
    }
}

long sl__file_encode(struct sl__file_enc *e, const struct sl_event *ev, struct sl__file_iobuf *io,
                     size_t skip)
{
    size_t len;
    const char *p = sl_event_payload(ev, &len);
    bool raw = e->encoding == SL__FILE_ENCODE_TEXT
                   ? !e->text
                   : e->encoding == SL__FILE_ENCODE_JSON && !sl_event_fields_changed(ev);
    if (raw) {
        if (!p) len = 0;
        int rc = skip < len ? push_line(io, p + skip, len - skip) : 0;
        if (skip >= len) {
            if (io->n == SL__FILE_IOV_MAX) return SL_EAGAIN;
            rc = push(io, newline + (skip - len), 1 - (skip - len));
        }
        return rc ? rc : (long)len + 1;
    }
    switch (e->encoding) {
    case SL__FILE_ENCODE_CSV: return encode_csv(e, ev, io, skip);
    case SL__FILE_ENCODE_TEXT: return encode_text_template(e, ev, io, skip);
    default: return encode_json(ev, io, skip);
    }
}

size_t sl__file_writev_all(int fd, struct sl__file_iobuf *io, int *err_no)
{
    struct iovec *v = io->iov;
    int n = io->n;
    size_t done = 0;
    *err_no = 0;
    while (n > 0) {
        ssize_t w = writev(fd, v, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            *err_no = errno;
            return done;
        }
        done += (size_t)w;
        while (n > 0 && (size_t)w >= v->iov_len) { /* emptied: a second call skips it */
            w -= (ssize_t)v->iov_len;
            v->iov_len = 0;
            v++;
            n--;
        }
        if (n > 0 && w > 0) {
            v->iov_base = (char *)v->iov_base + w;
            v->iov_len -= (size_t)w;
        }
    }
    return done;
}
