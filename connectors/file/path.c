/* Output paths: the sink's `path` template (SL_OPT_TEMPLATE) plus strftime fields.
 *
 * The template is rendered piece by piece (sl_template_each), so that literal text and
 * field values are treated apart:
 *   - strftime fields (%Y, %m, ...) are expanded in the literal text only, from the event
 *     time: a '%' that a field value brings in is written as it is, never interpreted;
 *   - a field value cannot leave the directory the template names: a '/' or a NUL in it
 *     becomes '_', and a path component that is "." or ".." and holds a byte of a value
 *     has those bytes replaced by '_' ("{{ a }}/x" with a = "..", or ".{{ a }}" with
 *     a = ".": neither climbs up);
 *   - a `{{ }}` that is null (a missing field) makes the render fail: the sink drops the
 *     event and counts it, rather than writing it where another path's events go.
 *
 * strftime is the costly part, so each literal part's expansion is cached for the second
 * it was made for: a run of events within one second formats its path once. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sluice/expr.h>

#include "internal.h"

#define TIME_BUF 1024 /* longest expansion of one literal part */

/* One literal part of the template, in rendering order. */
struct sl__file_lit {
    char *fmt;    /* holds a '%': the text, NUL-terminated, for strftime (owned); else NULL */
    char *cached; /* fmt: the expansion for the path's cached second (owned) */
    size_t len;   /* bytes of cached; SIZE_MAX: stale */
};

/* What one rendering writes to. */
struct render {
    struct sl__file_path *pt;  /* the path */
    const struct sl_event *ev; /* the event (for its time) */
    char *buf;                 /* output */
    size_t cap, o;             /* its size / bytes written */
    size_t lit;                /* literal parts seen so far */
    size_t holes;              /* `{{ }}` seen so far */
    bool over;                 /* the path did not fit */
};

/* Counts the literal parts and notes which hold a '%' (init: walked without an event). */
static int survey(void *arg, enum sl_template_piece kind, const char *s, size_t len)
{
    struct sl__file_path *pt = arg;
    if (kind != SL_TEMPLATE_TEXT) return 0;
    struct sl__file_lit *nl = realloc(pt->lits, (pt->nlits + 1) * sizeof *nl);
    if (!nl) return SL_ENOMEM;
    pt->lits = nl;
    struct sl__file_lit *l = &nl[pt->nlits++];
    *l = (struct sl__file_lit){.len = SIZE_MAX};
    if (!memchr(s, '%', len)) return 0;
    l->fmt = malloc(len + 1);
    l->cached = malloc(TIME_BUF);
    if (!l->fmt || !l->cached) return SL_ENOMEM;
    memcpy(l->fmt, s, len);
    l->fmt[len] = '\0';
    return 0;
}

static void expand_times(struct sl__file_path *pt, struct sl__file_lit *l, int64_t sec)
{
    if (sec != pt->cached_sec) { /* a new second: every cached expansion is stale */
        for (size_t i = 0; i < pt->nlits; i++) pt->lits[i].len = SIZE_MAX;
        pt->cached_sec = sec;
        time_t tt = (time_t)sec;
        if (pt->local_time)
            localtime_r(&tt, &pt->tm);
        else
            gmtime_r(&tt, &pt->tm);
    }
    if (l->len == SIZE_MAX) l->len = strftime(l->cached, TIME_BUF, l->fmt, &pt->tm);
}

static void append(struct render *r, const char *s, size_t len, bool value)
{
    if (r->o + len >= r->cap) {
        r->over = true;
        return;
    }
    memcpy(r->buf + r->o, s, len);
    memset(r->pt->mask + r->o, value, len);
    if (value)
        for (size_t i = r->o; i < r->o + len; i++)
            if (r->buf[i] == '/' || r->buf[i] == '\0') r->buf[i] = '_';
    r->o += len;
}

static int piece(void *arg, enum sl_template_piece kind, const char *s, size_t len)
{
    struct render *r = arg;
    if (kind == SL_TEMPLATE_NULL) {
        r->holes++;
        return SL_ENOTFOUND;
    }
    if (kind == SL_TEMPLATE_VALUE) {
        r->holes++;
        append(r, s, len, true);
        return 0;
    }
    if (r->lit >= r->pt->nlits) { /* cannot happen: a template's parts are fixed */
        append(r, s, len, false);
        return 0;
    }
    struct sl__file_lit *l = &r->pt->lits[r->lit++];
    if (l->fmt) {
        int64_t ns = r->ev ? sl_event_time(r->ev) : 0;
        expand_times(r->pt, l, (ns ? ns : sl__file_now_ns()) / 1000000000);
        s = l->cached;
        len = l->len;
    }
    append(r, s, len, false);
    return 0;
}

/* A component made only of one or two dots, one of them from a value, would stay in or
 * climb out of the directory: its value bytes become '_'. */
static void defuse_dots(struct sl__file_path *pt, char *buf, size_t n)
{
    for (size_t a = 0; a < n;) {
        size_t b = a;
        while (b < n && buf[b] != '/') b++;
        bool dots = b - a >= 1 && b - a <= 2, from_value = false;
        for (size_t i = a; i < b && dots; i++) {
            dots = buf[i] == '.';
            from_value |= pt->mask[i];
        }
        if (dots && from_value)
            for (size_t i = a; i < b; i++)
                if (pt->mask[i]) buf[i] = '_';
        a = b + 1;
    }
}

int sl__file_path_render(struct sl__file_path *pt, const struct sl_event *ev, char *buf, size_t cap,
                         size_t *hole)
{
    struct render r = {
        .pt = pt, .ev = ev, .buf = buf, .cap = cap < SL__FILE_PATH_MAX ? cap : SL__FILE_PATH_MAX};
    int rc = sl_template_each(pt->t, ev, piece, &r);
    if (hole) *hole = r.holes;
    if (rc) return rc;
    if (r.over) return SL_EINVAL;
    buf[r.o] = '\0';
    defuse_dots(pt, buf, r.o);
    return (int)r.o;
}

int sl__file_path_init(struct sl__file_path *pt, const struct sl_template *t, bool local_time)
{
    memset(pt, 0, sizeof *pt);
    pt->t = t;
    pt->local_time = local_time;
    pt->cached_sec = INT64_MIN;
    int rc = sl_template_each(t, NULL, survey, pt);
    if (rc) return rc;
    pt->constant = sl_template_is_constant(t);
    for (size_t i = 0; i < pt->nlits; i++)
        if (pt->lits[i].fmt) pt->constant = false;
    return 0;
}

void sl__file_path_free(struct sl__file_path *pt)
{
    for (size_t i = 0; i < pt->nlits; i++) {
        free(pt->lits[i].fmt);
        free(pt->lits[i].cached);
    }
    free(pt->lits);
    pt->lits = NULL;
    pt->nlits = 0;
}
