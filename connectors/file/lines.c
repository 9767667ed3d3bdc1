/* Newline framing: buffers of bytes become line events that point into the buffer.
 *
 * The scan is one memchr per line. A line longer than max_line is cut to max_line
 * bytes (flagged with field `truncated: true`) or dropped, and the rest of it is
 * skipped up to its newline, so memory never grows with the input. `\r\n` endings lose
 * the `\r`. With encoding utf8, lines are checked (ASCII lines by words of 8 bytes) and
 * invalid sequences replaced by U+FFFD, passed through or dropped, each counted. */
#include <string.h>
#include <time.h>

#include "internal.h"

int64_t sl__file_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- UTF-8 ------------------------------------------------------------------------- */

static bool ascii_only(const char *s, size_t n)
{
    size_t i = 0;
    uint64_t acc = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        acc |= w;
    }
    for (; i < n; i++) acc |= (unsigned char)s[i];
    return (acc & 0x8080808080808080ull) == 0;
}

/* Length of the valid sequence at s[0], or -k: the k bytes at s form no character (the
 * longest prefix of a sequence that could have been valid, at least 1 byte). */
static int utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    int need;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* no UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return -1;
    }
    for (int k = 1; k <= need; k++) {
        if ((size_t)k >= n) return -k;
        unsigned b = s[k];
        if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return -k;
    }
    return need + 1;
}

static bool utf8_valid(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        int k = utf8_seq((const unsigned char *)s + i, n - i);
        if (k < 0) return false;
        i += (size_t)k;
    }
    return true;
}

/* Copies `s` into the batch with each invalid sequence replaced by U+FFFD. */
static const char *utf8_replace(struct sl_batch *b, const char *s, size_t n, size_t *out_len)
{
    char *d = sl_batch_alloc(b, 3 * n);
    if (!d) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        int k = utf8_seq((const unsigned char *)s + i, n - i);
        if (k > 0) {
            memcpy(d + o, s + i, (size_t)k);
            o += (size_t)k;
            i += (size_t)k;
        } else {
            memcpy(d + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += (size_t)-k;
        }
    }
    *out_len = o;
    return d;
}

/* ---- events ------------------------------------------------------------------------ */

static int add_fields(struct sl__file_lines *cfg, struct sl_event *ev,
                      const struct sl__file_origin *org, uint64_t off, bool truncated)
{
    struct sl_value v;
    int rc = 0;
    sl_event_set_host(ev, cfg->host);
    if (cfg->host_key) {
        v = sl_value_string(cfg->host, strlen(cfg->host));
        rc |= sl_event_add_field(ev, cfg->host_key, strlen(cfg->host_key), &v);
    }
    if (cfg->file_key) {
        v = sl_value_string(org->path, strlen(org->path));
        rc |= sl_event_add_field(ev, cfg->file_key, strlen(cfg->file_key), &v);
    }
    if (cfg->offset_key) {
        v = sl_value_int((int64_t)off);
        rc |= sl_event_add_field(ev, cfg->offset_key, strlen(cfg->offset_key), &v);
    }
    if (truncated) {
        v = sl_value_bool(true);
        rc |= sl_event_add_field(ev, "truncated", 9, &v);
    }
    return rc ? SL_ENOMEM : 0;
}

/* Appends one event for the line `p`/`len` found at stream offset `off`. Returns 0 (also
 * when the line was dropped on purpose) or SL_ENOMEM. */
static int emit(struct sl__file_lines *cfg, struct sl_batch *b, const char *p, size_t len,
                const struct sl__file_origin *org, uint64_t off, bool truncated)
{
    if (cfg->encoding == SL__FILE_ENC_UTF8 && !ascii_only(p, len) && !utf8_valid(p, len)) {
        cfg->invalid++;
        if (cfg->invalid_utf8 == SL__FILE_UTF8_DROP) {
            sl_stage_count_dropped(cfg->stage, 1);
            return 0;
        }
        sl_stage_count_errors(cfg->stage, 1);
        if (cfg->invalid_utf8 == SL__FILE_UTF8_REPLACE && !(p = utf8_replace(b, p, len, &len)))
            return SL_ENOMEM;
    }
    struct sl_event *ev = sl_batch_append(b);
    if (!ev) return SL_ENOMEM;
    sl_event_set_payload(ev, p, len);
    sl_event_set_origin(ev, org->path, off, -1);
    sl_event_set_time(ev, org->time_ns);
    cfg->lines++;
    return add_fields(cfg, ev, org, off, truncated);
}

/* A line longer than max_line: cut or dropped, and counted either way. */
static int oversize(struct sl__file_lines *cfg, struct sl_batch *b, const char *p,
                    const struct sl__file_origin *org, uint64_t off)
{
    cfg->oversize++;
    if (cfg->on_oversize == SL__FILE_OVERSIZE_DROP) {
        sl_stage_count_dropped(cfg->stage, 1);
        return 0;
    }
    sl_stage_count_errors(cfg->stage, 1);
    return emit(cfg, b, p, cfg->max_line, org, off, true);
}

/* A complete line (without its newline). */
static int line(struct sl__file_lines *cfg, struct sl_batch *b, const char *p, size_t len,
                const struct sl__file_origin *org, uint64_t off)
{
    if (len && p[len - 1] == '\r') len--;
    if (len > cfg->max_line) return oversize(cfg, b, p, org, off);
    return emit(cfg, b, p, len, org, off, false);
}

size_t sl__file_lines_split(struct sl__file_lines *cfg, struct sl__file_frame *fr,
                            struct sl_batch *b, const char *buf, size_t n, bool eof,
                            const struct sl__file_origin *org)
{
    size_t start = 0;
    while (start < n && !sl_batch_full(b)) {
        const char *nl = memchr(buf + start, '\n', n - start);
        if (!nl) break;
        size_t end = (size_t)(nl - buf);
        if (fr->skipping) { /* the newline ending an oversize line */
            fr->skipping = false;
        } else if (line(cfg, b, buf + start, end - start, org, org->base + start)) {
            return start; /* out of memory: the caller stops here */
        }
        start = end + 1;
    }
    if (start == n || sl_batch_full(b)) return start;
    size_t rem = n - start;
    if (fr->skipping) return n; /* still inside an oversize line */
    if (rem > cfg->max_line) {
        if (oversize(cfg, b, buf + start, org, org->base + start)) return start;
        fr->skipping = true;
        return n;
    }
    if (eof) {
        if (line(cfg, b, buf + start, rem, org, org->base + start)) return start;
        return n;
    }
    return start;
}
