/* Templates for output paths and text lines: literal text with strftime fields taken
 * from the event time, and `{{ name }}` replaced by the event's field `name`.
 *
 * This is a small stand-in for the shared expression templates (`sl_template_*`, being
 * written on another branch): only plain field paths inside the braces. It is kept
 * behind the sl__file_tpl_* interface so that it can be swapped whole.
 *
 * strftime is the costly part, so each literal's expansion is cached for the second it
 * was made for: a run of events within one second formats its path once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sluice/config.h>

#include "internal.h"

#define TIME_BUF 512 /* longest expansion of one literal part */

enum part_kind { PART_TEXT, PART_TIME, PART_FIELD };

struct part {
    enum part_kind kind; /* literal, literal with % fields, or field */
    char *text;          /* literal / strftime format / field path (owned) */
    size_t len;          /* bytes of text */
    char *cached;        /* PART_TIME: expansion for the template's cached second */
    size_t cached_len;   /* bytes of cached */
};

struct sl__file_tpl {
    struct part *parts; /* n parts in order */
    size_t n;           /* parts */
    unsigned flags;     /* SL__FILE_TPL_* */
    bool local_time;    /* strftime in local time, else UTC */
    int64_t cached_sec; /* second the PART_TIME caches are for; INT64_MIN: none */
};

static int add_part(struct sl__file_tpl *t, enum part_kind kind, const char *s, size_t len)
{
    if (len == 0 && kind != PART_FIELD) return 0;
    struct part *np = realloc(t->parts, (t->n + 1) * sizeof *np);
    if (!np) return SL_ENOMEM;
    t->parts = np;
    struct part *p = &np[t->n];
    memset(p, 0, sizeof *p);
    p->kind = kind;
    if (kind == PART_TEXT && (t->flags & SL__FILE_TPL_STRFTIME) && memchr(s, '%', len))
        p->kind = PART_TIME;
    p->text = malloc(len + 1);
    if (!p->text || (p->kind == PART_TIME && !(p->cached = malloc(TIME_BUF)))) {
        free(p->text);
        return SL_ENOMEM;
    }
    memcpy(p->text, s, len);
    p->text[len] = '\0';
    p->len = len;
    t->n++;
    return 0;
}

/* Parses the inside of `{{ ... }}` at s (after the braces' opening), up to `close`. */
static int add_field(struct sl__file_tpl *t, const char *s, const char *close, struct sl_error *err)
{
    while (s < close && (*s == ' ' || *s == '\t')) s++;
    while (close > s && (close[-1] == ' ' || close[-1] == '\t')) close--;
    for (const char *c = s; c < close; c++)
        if (*c == ' ' || *c == '{' || *c == '}')
            return sl_error_set(err, SL_ECONFIG,
                                "template field '%.*s': only plain field names are supported",
                                (int)(close - s), s);
    if (close == s) return sl_error_set(err, SL_ECONFIG, "empty {{ }} in template");
    return add_part(t, PART_FIELD, s, (size_t)(close - s));
}

int sl__file_tpl_compile(const char *text, unsigned flags, bool local_time,
                         struct sl__file_tpl **out, struct sl_error *err)
{
    struct sl__file_tpl *t = calloc(1, sizeof *t);
    if (!t) return sl_error_set(err, SL_ENOMEM, "out of memory");
    t->flags = flags;
    t->local_time = local_time;
    t->cached_sec = INT64_MIN;
    int rc = 0;
    const char *s = text;
    while (!rc && *s) {
        const char *open = strstr(s, "{{");
        if (!open) {
            rc = add_part(t, PART_TEXT, s, strlen(s));
            break;
        }
        const char *close = strstr(open + 2, "}}");
        if (!close) {
            rc = sl_error_set(err, SL_ECONFIG, "template '%s': '{{' without '}}'", text);
            break;
        }
        rc = add_part(t, PART_TEXT, s, (size_t)(open - s));
        if (!rc) rc = add_field(t, open + 2, close, err);
        s = close + 2;
    }
    if (rc) {
        if (rc == SL_ENOMEM) sl_error_set(err, rc, "out of memory");
        sl__file_tpl_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

bool sl__file_tpl_constant(const struct sl__file_tpl *t)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->parts[i].kind != PART_TEXT) return false;
    return true;
}

void sl__file_tpl_free(struct sl__file_tpl *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->parts[i].text);
        free(t->parts[i].cached);
    }
    free(t->parts);
    free(t);
}

/* ---- rendering ------------------------------------------------------------------------ */

static void expand_times(struct sl__file_tpl *t, int64_t sec)
{
    time_t tt = (time_t)sec;
    struct tm tm;
    if (t->local_time)
        localtime_r(&tt, &tm);
    else
        gmtime_r(&tt, &tm);
    for (size_t i = 0; i < t->n; i++) {
        struct part *p = &t->parts[i];
        if (p->kind == PART_TIME) p->cached_len = strftime(p->cached, TIME_BUF, p->text, &tm);
    }
    t->cached_sec = sec;
}

/* A value as text into dst (cap bytes). Returns the length, or -1 when it does not fit. */
static long value_text(const struct sl_value *v0, char *dst, size_t cap)
{
    struct sl_value v = *v0;
    int n;
    switch (v.type) {
    case SL_STRING:
        if (v.len > cap) return -1;
        n = sl_value_unescape(&v, dst, cap);
        return n < 0 ? -1 : n;
    case SL_JSON:
        if (v.len > cap) return -1;
        memcpy(dst, v.s, v.len);
        return v.len;
    case SL_INT:
    case SL_FLOAT:
        if (v.flags & SL_VALUE_TEXT) {
            if (v.len > cap) return -1;
            memcpy(dst, v.s, v.len);
            return v.len;
        }
        n = v.type == SL_INT ? snprintf(dst, cap, "%lld", (long long)v.i)
                             : snprintf(dst, cap, "%.17g", v.f);
        return n < 0 || (size_t)n >= cap ? -1 : n;
    case SL_BOOL: n = snprintf(dst, cap, "%s", v.b ? "true" : "false"); break;
    default: n = snprintf(dst, cap, "null"); break;
    }
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

/* In paths a field value stays one file name: no '/', no NUL, not "." or "..". */
static void sanitize(char *s, size_t n)
{
    bool dots = true;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '/' || s[i] == '\0') s[i] = '_';
        if (s[i] != '.') dots = false;
    }
    if (dots)
        for (size_t i = 0; i < n; i++) s[i] = '_';
}

int sl__file_tpl_render(struct sl__file_tpl *t, const struct sl_event *ev, char *buf, size_t cap,
                        const char **missing)
{
    size_t o = 0;
    if (missing) *missing = NULL;
    for (size_t i = 0; i < t->n; i++) {
        struct part *p = &t->parts[i];
        const char *src = p->text;
        size_t len = p->len;
        if (p->kind == PART_TIME) {
            int64_t ns = sl_event_time(ev);
            int64_t sec = (ns ? ns : sl__file_now_ns()) / 1000000000;
            if (sec != t->cached_sec) expand_times(t, sec);
            src = p->cached;
            len = p->cached_len;
        } else if (p->kind == PART_FIELD) {
            struct sl_value v;
            if (sl_event_get(ev, p->text, p->len, &v)) {
                if (missing && !*missing) *missing = p->text;
                if (t->flags & SL__FILE_TPL_LENIENT) continue;
                return SL_ENOTFOUND;
            }
            long n = value_text(&v, buf + o, cap - o);
            if (n < 0) return SL_EINVAL;
            if (t->flags & SL__FILE_TPL_PATH) sanitize(buf + o, (size_t)n);
            o += (size_t)n;
            continue;
        }
        if (len >= cap - o) return SL_EINVAL;
        memcpy(buf + o, src, len);
        o += len;
    }
    if (o >= cap) return SL_EINVAL;
    buf[o] = '\0';
    return (int)o;
}
