/* The syslog parser: RFC 5424 and RFC 3164 (BSD) messages into spans, by hand (no regex,
 * no allocation, nothing read past the end), and the spans into an event's fields.
 *
 * RFC 5424: <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP
 * STRUCTURED-DATA [SP MSG]; "-" is the nil value. The header parts are printable US-ASCII
 * within the RFC's lengths; the timestamp is checked to be RFC 3339.
 *
 * RFC 3164 describes what was seen rather than a grammar: [<PRI>]TIMESTAMP SP HOSTNAME SP
 * TAG[PID]: MSG, where the timestamp is "Mmm dd hh:mm:ss" (or, as rsyslog and others
 * send it, RFC 3339). The hostname is taken to be missing when the word after the
 * timestamp is itself a tag ("sshd[42]:"); a word after the hostname that is no tag starts
 * the message. A line without a timestamp is an error. */
#include <string.h>

#include "internal.h"

/* A cursor over the text. */
struct rd {
    const char *s; /* the text */
    size_t n, i;   /* its length / the next byte */
    const char *why;
};

static bool digit(char c)
{
    return c >= '0' && c <= '9';
}

static int fail(struct rd *r, const char *why)
{
    r->why = why;
    return SL_EPARSE;
}

/* "<PRI>": 1 to 3 digits, at most 191. */
static int read_pri(struct rd *r, int *pri)
{
    size_t j = r->i + 1, v = 0;
    while (j < r->n && digit(r->s[j]) && j - r->i <= 3) v = v * 10 + (size_t)(r->s[j++] - '0');
    if (j == r->i + 1 || j - r->i > 4 || j >= r->n || r->s[j] != '>')
        return fail(r, "PRI is not <0> to <191>");
    if (v > 191) return fail(r, "PRI is not <0> to <191>");
    *pri = (int)v;
    r->i = j + 1;
    return 0;
}

/* A header word of printable US-ASCII (33..126), 1 to `max` bytes, then a space (or the
 * end when `last_ok`); "-" is nil. */
static int read_word(struct rd *r, size_t max, struct sl__socket_span *out, const char *what)
{
    size_t j = r->i;
    while (j < r->n && r->s[j] != ' ') {
        unsigned char c = (unsigned char)r->s[j];
        if (c < 33 || c > 126) return fail(r, what);
        j++;
    }
    if (j == r->i || j - r->i > max || j >= r->n) return fail(r, what);
    bool nil = j - r->i == 1 && r->s[r->i] == '-';
    *out = nil ? (struct sl__socket_span){0} : (struct sl__socket_span){r->s + r->i, j - r->i};
    r->i = j + 1;
    return 0;
}

/* `k` digits at `p`. */
static bool digits(const char *p, size_t k)
{
    for (size_t i = 0; i < k; i++)
        if (!digit(p[i])) return false;
    return true;
}

/* Length of an RFC 3339 date-time at `p` (`n` bytes available), 0 when there is none:
 * YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM). */
static size_t rfc3339_len(const char *p, size_t n)
{
    if (n < 20 || !digits(p, 4) || p[4] != '-' || !digits(p + 5, 2) || p[7] != '-' ||
        !digits(p + 8, 2) || (p[10] != 'T' && p[10] != 't') || !digits(p + 11, 2) || p[13] != ':' ||
        !digits(p + 14, 2) || p[16] != ':' || !digits(p + 17, 2))
        return 0;
    size_t i = 19;
    if (i < n && p[i] == '.') {
        size_t f = ++i;
        while (i < n && digit(p[i]) && i - f < 6) i++;
        if (i == f) return 0;
    }
    if (i < n && (p[i] == 'Z' || p[i] == 'z')) return i + 1;
    if (i + 6 <= n && (p[i] == '+' || p[i] == '-') && digits(p + i + 1, 2) && p[i + 3] == ':' &&
        digits(p + i + 4, 2))
        return i + 6;
    return 0;
}

/* STRUCTURED-DATA: "-" or one or more [SD-ID *(SP NAME="VALUE")]. */
static int read_sd(struct rd *r, struct sl__socket_span *out)
{
    size_t start = r->i;
    if (r->i < r->n && r->s[r->i] == '-') {
        r->i++;
        *out = (struct sl__socket_span){0};
        return 0;
    }
    if (r->i >= r->n || r->s[r->i] != '[') return fail(r, "no STRUCTURED-DATA");
    while (r->i < r->n && r->s[r->i] == '[') {
        r->i++;
        bool in_value = false;
        size_t name = r->i;
        for (;; r->i++) {
            if (r->i >= r->n) return fail(r, "unterminated STRUCTURED-DATA element");
            char c = r->s[r->i];
            if (in_value) {
                if (c == '\\' && r->i + 1 < r->n)
                    r->i++;
                else if (c == '"')
                    in_value = false;
            } else if (c == '"') {
                if (r->i == 0 || r->s[r->i - 1] != '=')
                    return fail(r, "a STRUCTURED-DATA value must follow NAME=");
                in_value = true;
            } else if (c == ']') {
                break;
            } else if ((unsigned char)c < 33 && c != ' ') {
                return fail(r, "a control character in STRUCTURED-DATA");
            }
        }
        if (r->i == name || r->s[name] == ' ') return fail(r, "an empty SD-ID");
        r->i++; /* ']' */
    }
    *out = (struct sl__socket_span){r->s + start, r->i - start};
    return 0;
}

/* MSG: the rest, without a leading UTF-8 BOM. */
static void read_msg(struct rd *r, struct sl__socket_span *out)
{
    if (r->n - r->i >= 3 && memcmp(r->s + r->i, "\xEF\xBB\xBF", 3) == 0) r->i += 3;
    *out = (struct sl__socket_span){r->s + r->i, r->n - r->i};
    r->i = r->n;
}

static int parse_5424(struct rd *r, struct sl__socket_syslog *m)
{
    if (r->i >= r->n || r->s[r->i] != '<') return fail(r, "no PRI");
    int rc = read_pri(r, &m->pri);
    if (rc) return rc;
    size_t v = r->i;
    while (r->i < r->n && digit(r->s[r->i]) && r->i - v < 3) r->i++;
    if (r->i == v || r->s[v] == '0' || r->i >= r->n || r->s[r->i] != ' ')
        return fail(r, "no VERSION");
    m->version = 0;
    for (size_t j = v; j < r->i; j++) m->version = m->version * 10 + (r->s[j] - '0');
    r->i++;
    size_t t = r->i;
    if ((rc = read_word(r, 64, &m->timestamp, "TIMESTAMP is not RFC 3339 or -"))) return rc;
    if (m->timestamp.s && rfc3339_len(m->timestamp.s, m->timestamp.len) != m->timestamp.len) {
        r->i = t;
        return fail(r, "TIMESTAMP is not RFC 3339 or -");
    }
    if ((rc = read_word(r, 255, &m->host, "HOSTNAME is not 1-255 printable characters")) ||
        (rc = read_word(r, 48, &m->app, "APP-NAME is not 1-48 printable characters")) ||
        (rc = read_word(r, 128, &m->procid, "PROCID is not 1-128 printable characters")) ||
        (rc = read_word(r, 32, &m->msgid, "MSGID is not 1-32 printable characters")) ||
        (rc = read_sd(r, &m->sd)))
        return rc;
    if (r->i == r->n) return 0; /* no MSG */
    if (r->s[r->i] != ' ') return fail(r, "no space after STRUCTURED-DATA");
    r->i++;
    read_msg(r, &m->msg);
    return 0;
}

static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";

/* "Mmm dd hh:mm:ss" (dd: " 5", "05" or "5 " padded... as senders write it). */
static size_t bsd_time_len(const char *p, size_t n)
{
    if (n < 15) return 0;
    bool month = false;
    for (size_t k = 0; k < 36 && !month; k += 3) month = memcmp(p, months + k, 3) == 0;
    if (!month || p[3] != ' ') return 0;
    if (!((p[4] == ' ' || digit(p[4])) && digit(p[5]) && p[6] == ' ')) return 0;
    if (!(digits(p + 7, 2) && p[9] == ':' && digits(p + 10, 2) && p[12] == ':' &&
          digits(p + 13, 2)))
        return 0;
    return 15;
}

/* A TAG at `p`: up to 48 characters other than space, '[' and ':', then ":" or "[PID]:";
 * returns the bytes up to and including the ':' (0: not a tag) and the spans. */
static size_t tag_len(const char *p, size_t n, struct sl__socket_span *app,
                      struct sl__socket_span *pid)
{
    size_t i = 0;
    while (i < n && i < 48 && p[i] != ' ' && p[i] != '[' && p[i] != ':') i++;
    if (i == 0 || i == n) return 0;
    *app = (struct sl__socket_span){p, i};
    *pid = (struct sl__socket_span){0};
    if (p[i] == '[') {
        size_t b = ++i;
        while (i < n && p[i] != ']' && p[i] != ' ') i++;
        if (i == n || p[i] != ']' || i == b) return 0;
        *pid = (struct sl__socket_span){p + b, i - b};
        i++;
    }
    return i < n && p[i] == ':' ? i + 1 : 0;
}

/* The word at r->i, up to a space or the end. */
static size_t word_len(const struct rd *r)
{
    const char *sp = memchr(r->s + r->i, ' ', r->n - r->i);
    return sp ? (size_t)(sp - (r->s + r->i)) : r->n - r->i;
}

static int parse_3164(struct rd *r, struct sl__socket_syslog *m)
{
    m->pri = -1;
    if (r->i < r->n && r->s[r->i] == '<') {
        int rc = read_pri(r, &m->pri);
        if (rc) return rc;
    }
    const char *p = r->s + r->i;
    size_t n = r->n - r->i, t = bsd_time_len(p, n);
    if (!t) t = rfc3339_len(p, n);
    if (!t || t == n || p[t] != ' ') return fail(r, "no timestamp (Mmm dd hh:mm:ss or RFC 3339)");
    m->timestamp = (struct sl__socket_span){p, t};
    r->i += t + 1;
    struct sl__socket_span app, pid;
    size_t w = word_len(r), k = tag_len(r->s + r->i, r->n - r->i, &app, &pid);
    if (!k && w) { /* a hostname, then maybe a tag */
        m->host = (struct sl__socket_span){r->s + r->i, w};
        r->i += w;
        if (r->i < r->n) r->i++;
        k = tag_len(r->s + r->i, r->n - r->i, &app, &pid);
    }
    if (k) {
        m->app = app;
        m->procid = pid;
        r->i += k;
        if (r->i < r->n && r->s[r->i] == ' ') r->i++;
    }
    read_msg(r, &m->msg);
    return 0;
}

/* RFC 5424 begins "<PRI>" then a version digit and a space (a BSD timestamp never starts
 * with a digit). */
static bool looks_5424(const char *s, size_t n)
{
    size_t i = 1;
    if (n < 4 || s[0] != '<') return false;
    while (i < n && i < 5 && digit(s[i])) i++;
    if (i >= n || s[i] != '>') return false;
    i++;
    size_t v = i;
    while (i < n && digit(s[i]) && i - v < 3) i++;
    return i > v && i < n && s[i] == ' ';
}

int sl__socket_syslog_parse(const char *s, size_t len, int format, struct sl__socket_syslog *out,
                            const char **why, size_t *at)
{
    struct rd r = {.s = s, .n = len};
    *out = (struct sl__socket_syslog){.pri = -1};
    if (format == SL__SOCKET_SYSLOG_AUTO)
        format = looks_5424(s, len) ? SL__SOCKET_SYSLOG_5424 : SL__SOCKET_SYSLOG_3164;
    int rc = format == SL__SOCKET_SYSLOG_5424 ? parse_5424(&r, out) : parse_3164(&r, out);
    if (rc) {
        *why = r.why;
        *at = r.i;
    }
    return rc;
}
