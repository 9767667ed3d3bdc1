/* parse_timestamp: reads a time from a field into the event time (sl_event_set_time,
 * nanoseconds since the epoch), trying `formats` in order: `rfc3339` (also ISO 8601 with
 * a space for the T), `unix` / `unix_ms` / `unix_us` / `unix_ns` (a number, or a string
 * holding one), or a strptime(3) format, with `%f` standing for a fraction of a second
 * (1 to 9 digits). A time without a zone is in `timezone` (UTC or a fixed offset); a
 * format without a year takes the current year (syslog). Optionally writes the time back
 * as an RFC 3339 UTC string into `target`.
 *
 * The conversion to the epoch is done here (days from the civil date), not by mktime or
 * timegm, so that no time zone database, environment or lock is involved per event. */
#define _GNU_SOURCE /* strptime, tm_gmtoff */
#include <limits.h>
#include <stdlib.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

enum kind { K_RFC3339, K_UNIX, K_UNIX_MS, K_UNIX_US, K_UNIX_NS, K_STRPTIME };

struct format {
    enum kind kind;  /* how to read */
    const char *fmt; /* K_STRPTIME: the format (the option's string) */
    bool has_zone;   /* K_STRPTIME: the format has %z */
    size_t frac_at;  /* K_STRPTIME: offset of "%f" in fmt, or SIZE_MAX */
};

struct parse_timestamp {
    const char *field;              /* option: the field holding the time */
    struct sl_list formats;         /* option: formats tried in order */
    const char *timezone;           /* option: zone of times without one */
    const char *target;             /* option: field receiving the RFC 3339 text, or NULL */
    struct sl__stage_errors errors; /* option on_error, dead-letter port */
    struct format *fmts;            /* compiled formats */
    int64_t offset_s;               /* `timezone` as seconds east of UTC */
};

#define NS 1000000000LL

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* The time in ns, or false when it does not fit int64 (years before 1678 or after 2262). */
static bool to_ns(int64_t y, unsigned mo, unsigned d, unsigned h, unsigned mi, unsigned s,
                  int64_t frac_ns, int64_t offset_s, int64_t *out)
{
    if (y < -100000 || y > 100000) return false; /* keeps the day count itself in range */
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset_s, ns;
    if (__builtin_mul_overflow(secs, NS, &ns) || __builtin_add_overflow(ns, frac_ns, out))
        return false;
    return true;
}

/* ---- readers ------------------------------------------------------------------------------ */

static bool num(const char *s, size_t len, size_t *i, size_t n, unsigned *out)
{
    if (*i + n > len) return false;
    unsigned v = 0;
    for (size_t k = 0; k < n; k++) {
        unsigned c = (unsigned)(s[*i + k] - '0');
        if (c > 9) return false;
        v = v * 10 + c;
    }
    *i += n;
    *out = v;
    return true;
}

static bool lit(const char *s, size_t len, size_t *i, char c)
{
    if (*i >= len || s[*i] != c) return false;
    (*i)++;
    return true;
}

/* ".123456789": up to 9 digits as nanoseconds (more are read and ignored). */
static bool fraction(const char *s, size_t len, size_t *i, int64_t *ns)
{
    size_t start = *i;
    int64_t v = 0, scale = NS;
    while (*i < len && (unsigned)(s[*i] - '0') < 10) {
        if (scale > 1) v = v * 10 + (s[*i] - '0'), scale /= 10;
        (*i)++;
    }
    *ns = v * scale;
    return *i > start;
}

static bool rfc3339(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    unsigned y, mo, d, h, mi, sec, oh = 0, om = 0;
    int64_t frac = 0, off = 0;
    if (!num(s, len, &i, 4, &y) || !lit(s, len, &i, '-') || !num(s, len, &i, 2, &mo) ||
        !lit(s, len, &i, '-') || !num(s, len, &i, 2, &d))
        return false;
    if (i >= len || (s[i] != 'T' && s[i] != 't' && s[i] != ' ')) return false;
    i++;
    if (!num(s, len, &i, 2, &h) || !lit(s, len, &i, ':') || !num(s, len, &i, 2, &mi) ||
        !lit(s, len, &i, ':') || !num(s, len, &i, 2, &sec))
        return false;
    if (i < len && (s[i] == '.' || s[i] == ',') && (++i, !fraction(s, len, &i, &frac)))
        return false;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        int sign = s[i++] == '-' ? -1 : 1;
        if (!num(s, len, &i, 2, &oh) || !lit(s, len, &i, ':') || !num(s, len, &i, 2, &om))
            return false;
        off = sign * (int64_t)(oh * 3600 + om * 60);
    } else {
        return false;
    }
    if (i != len || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 ||
        oh > 23 || om > 59)
        return false;
    return to_ns(y, mo, d, h, mi, sec, frac, off, out);
}

/* "[-]digits[.digits]" times `unit_ns`, exactly (a double would round 1704164645.25 s to
 * the nearest 256 ns). False when the text has another form. */
static bool decimal_time(const char *s, size_t len, int64_t unit_ns, int64_t *out)
{
    size_t i = 0;
    bool neg = len && s[0] == '-';
    i += neg;
    uint64_t whole = 0;
    size_t start = i;
    while (i < len && (unsigned)(s[i] - '0') < 10) {
        if (whole > (uint64_t)INT64_MAX / 10) return false;
        whole = whole * 10 + (uint64_t)(s[i++] - '0');
    }
    if (i == start || whole > (uint64_t)(INT64_MAX / unit_ns)) return false;
    int64_t frac = 0, scale = unit_ns;
    if (i < len && s[i] == '.') {
        for (i++; i < len && (unsigned)(s[i] - '0') < 10; i++)
            if (scale > 1) frac = frac * 10 + (s[i] - '0'), scale /= 10;
        frac *= scale;
    }
    if (i != len) return false;
    int64_t v;
    if (__builtin_add_overflow((int64_t)whole * unit_ns, frac, &v)) return false;
    *out = neg ? -v : v;
    return true;
}

/* A number of seconds (or ms, us, ns) since the epoch, integer or decimal, as a number
 * or as text. */
static bool unix_time(const struct sl_value *v0, int64_t unit_ns, int64_t *out)
{
    struct sl_value v = *v0;
    bool text = v.type == SL_STRING || (v.flags & SL_VALUE_TEXT);
    if (text && decimal_time(v.s, v.len, unit_ns, out)) return true;
    if (v.type == SL_STRING) { /* 1.7e9 and the like */
        int t = sl__stage_number_type(v.s, v.len);
        if (t == SL_STRING) return false;
        v = (struct sl_value){.type = (uint8_t)t, .flags = SL_VALUE_TEXT, .s = v.s, .len = v.len};
    }
    if ((v.type != SL_INT && v.type != SL_FLOAT) || sl_value_number(&v)) return false;
    if (v.type == SL_INT) {
        if (v.i > INT64_MAX / unit_ns || v.i < INT64_MIN / unit_ns) return false;
        *out = v.i * unit_ns;
        return true;
    }
    double ns = v.f * (double)unit_ns;
    if (!(ns > -9.2e18 && ns < 9.2e18)) return false;
    *out = (int64_t)ns;
    return true;
}

static int64_t current_year(void)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    return tm.tm_year + 1900;
}

static bool with_strptime(const struct parse_timestamp *pt, const struct format *f, const char *s,
                          size_t len, int64_t *out)
{
    char buf[256];
    if (len >= sizeof buf) return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    struct tm tm = {.tm_year = INT_MIN, .tm_mday = 1};
    int64_t frac = 0;
    const char *p;
    if (f->frac_at == SIZE_MAX) {
        p = strptime(buf, f->fmt, &tm);
    } else { /* "<before>%f<after>": strptime, the digits, strptime */
        char before[256];
        memcpy(before, f->fmt, f->frac_at);
        before[f->frac_at] = '\0';
        p = strptime(buf, before, &tm);
        size_t i = p ? (size_t)(p - buf) : 0;
        if (p && !fraction(buf, len, &i, &frac)) p = NULL;
        if (p) p = strptime(buf + i, f->fmt + f->frac_at + 2, &tm);
    }
    if (!p) return false;
    while (*p == ' ') p++;
    if (*p) return false; /* text left over: not this format */
    int64_t year = tm.tm_year == INT_MIN ? current_year() : (int64_t)tm.tm_year + 1900;
    int64_t off = f->has_zone ? tm.tm_gmtoff : pt->offset_s;
    return to_ns(year, (unsigned)tm.tm_mon + 1, (unsigned)tm.tm_mday, (unsigned)tm.tm_hour,
                 (unsigned)tm.tm_min, (unsigned)tm.tm_sec, frac, off, out);
}

static bool read_time(const struct parse_timestamp *pt, const struct format *f,
                      const struct sl_value *v, const char *text, size_t len, int64_t *out)
{
    switch (f->kind) {
    case K_RFC3339: return rfc3339(text, len, out);
    case K_UNIX: return unix_time(v, NS, out);
    case K_UNIX_MS: return unix_time(v, 1000000, out);
    case K_UNIX_US: return unix_time(v, 1000, out);
    case K_UNIX_NS: return unix_time(v, 1, out);
    default: return with_strptime(pt, f, text, len, out);
    }
}

/* ---- the stage ----------------------------------------------------------------------------- */

/* "2005-12-04T04:47:44.5Z": seconds, then the fraction without trailing zeros. */
static size_t format_rfc3339(int64_t ns, char *buf, size_t cap)
{
    int64_t secs = ns / NS, frac = ns % NS;
    if (frac < 0) frac += NS, secs--;
    int64_t days = secs / 86400, rem = secs % 86400;
    if (rem < 0) rem += 86400, days--;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    int n = snprintf(buf, cap, "%04lld-%02u-%02uT%02u:%02u:%02u", (long long)y, m, d,
                     (unsigned)(rem / 3600), (unsigned)(rem / 60 % 60), (unsigned)(rem % 60));
    if (frac) {
        int digits = 9;
        while (frac % 10 == 0) frac /= 10, digits--;
        n += snprintf(buf + n, cap - (size_t)n, ".%0*lld", digits, (long long)frac);
    }
    n += snprintf(buf + n, cap - (size_t)n, "Z");
    return (size_t)n;
}

static int set_target(struct sl_event *ev, const char *target, int64_t ns)
{
    char tmp[64];
    size_t n = format_rfc3339(ns, tmp, sizeof tmp);
    const char *copy = sl_event_strdup(ev, tmp, n);
    if (!copy) return SL_ENOMEM;
    struct sl_value v = sl_value_string(copy, n);
    return sl_event_set(ev, target, strlen(target), &v);
}

static int parse_timestamp_map(struct sl_stage *s, struct sl_event *ev, struct sl_emit *out)
{
    struct parse_timestamp *pt = sl_stage_state(s);
    struct sl_value v;
    if (sl_event_get(ev, pt->field, strlen(pt->field), &v))
        return sl__stage_reject(s, &pt->errors, ev, out, "field '%s' is missing", pt->field);
    char buf[256];
    const char *text;
    size_t len;
    sl__stage_value_text(&v, buf, sizeof buf, &text, &len);
    int64_t ns = 0;
    size_t i = 0;
    int rc;
    while (i < pt->formats.n && !read_time(pt, &pt->fmts[i], &v, text, len, &ns)) i++;
    if (i == pt->formats.n)
        return sl__stage_reject(s, &pt->errors, ev, out, "'%.*s' matches none of the formats",
                                (int)(len > 64 ? 64 : len), text);
    /* The target first: an event refused for it (the field limit) keeps its time. */
    rc = pt->target ? set_target(ev, pt->target, ns) : 0;
    if (rc)
        return sl__stage_fault(s, &pt->errors, ev, out, rc, "target '%s': more than %d fields",
                               pt->target, SL_EVENT_MAX_FIELDS);
    sl_event_set_time(ev, ns);
    return sl_emit(out, ev) ? sl_stage_error(s, SL_ENOMEM, "out of memory") : 0;
}

/* "UTC", "Z", "+02:00", "-0530": seconds east of UTC; false for anything else. */
static bool parse_zone(const char *z, int64_t *out)
{
    if (!strcmp(z, "UTC") || !strcmp(z, "utc") || !strcmp(z, "Z")) {
        *out = 0;
        return true;
    }
    size_t len = strlen(z), i = 1;
    unsigned h, m;
    if (len < 5 || (z[0] != '+' && z[0] != '-') || !num(z, len, &i, 2, &h)) return false;
    lit(z, len, &i, ':');
    if (!num(z, len, &i, 2, &m) || i != len || h > 23 || m > 59) return false;
    *out = (z[0] == '-' ? -1 : 1) * (int64_t)(h * 3600 + m * 60);
    return true;
}

static int compile_formats(struct parse_timestamp *pt, const struct sl_config *cfg,
                           struct sl_error *err)
{
    static const char *const names[] = {"rfc3339", "unix", "unix_ms", "unix_us", "unix_ns"};
    pt->fmts = calloc(pt->formats.n, sizeof *pt->fmts);
    if (!pt->fmts) return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < pt->formats.n; i++) {
        struct format *f = &pt->fmts[i];
        const char *t = pt->formats.items[i];
        f->kind = K_STRPTIME;
        for (int k = 0; k < 5; k++)
            if (!strcmp(t, names[k])) f->kind = (enum kind)k;
        if (f->kind != K_STRPTIME) continue;
        const char *pct = strchr(t, '%');
        const char *fr = strstr(t, "%f");
        if (!pct || strlen(t) >= 200 || (fr && strstr(fr + 2, "%f")))
            return sl_config_error(sl_config_get(cfg, "formats"), err, SL_ECONFIG,
                                   "format '%s' is neither rfc3339, unix, unix_ms, unix_us, "
                                   "unix_ns nor a strptime format (with at most one %%f)",
                                   t);
        f->fmt = t;
        f->has_zone = strstr(t, "%z") != NULL;
        f->frac_at = fr ? (size_t)(fr - t) : SIZE_MAX;
    }
    return 0;
}

static int parse_timestamp_init(struct sl_stage *s, const struct sl_config *cfg,
                                struct sl_error *err)
{
    struct parse_timestamp *pt = sl_stage_state(s);
    if (!parse_zone(pt->timezone, &pt->offset_s))
        return sl_config_error(sl_config_get(cfg, "timezone"), err, SL_ECONFIG,
                               "timezone must be UTC or a fixed offset such as +02:00 or -0530 "
                               "(zone names are not supported); found '%s'",
                               pt->timezone);
    int rc = compile_formats(pt, cfg, err);
    const char *const target[] = {pt->target};
    if (!rc && sl_stage_declare_fields(s, SL_FIELDS_ADD, target, pt->target ? 1 : 0))
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
    return rc ? rc : sl__stage_errors_init(s, &pt->errors, err);
}

static void parse_timestamp_close(struct sl_stage *s)
{
    struct parse_timestamp *pt = sl_stage_state(s);
    free(pt->fmts);
}

static const struct sl_option parse_timestamp_options[] = {
    {"field", SL_OPT_STRING, "timestamp", 0, offsetof(struct parse_timestamp, field),
     "field (path) holding the time"},
    {"formats", SL_OPT_LIST, "rfc3339", 0, offsetof(struct parse_timestamp, formats),
     "formats tried in order: rfc3339, unix, unix_ms, unix_us, unix_ns, or a strptime format "
     "(%f: fraction of a second; a format without %z is in `timezone`, without a year in the "
     "current year)"},
    {"timezone", SL_OPT_STRING, "UTC", 0, offsetof(struct parse_timestamp, timezone),
     "zone of times that carry none: UTC or a fixed offset such as +02:00"},
    {"target", SL_OPT_STRING, NULL, 0, offsetof(struct parse_timestamp, target),
     "field to receive the time as RFC 3339 UTC text (e.g. 2005-12-04T04:47:44.5Z); unset: none"},
    {"on_error", SL_OPT_ENUM, "drop", 0, offsetof(struct parse_timestamp, errors.mode),
     SL__STAGE_ON_ERROR_DOC("when the field is missing or no format matches"),
     SL__STAGE_ON_ERROR_CHOICES},
    {0},
};

const struct sl_stage_type sl_stage_parse_timestamp = {
    .abi = SL_STAGE_ABI,
    .name = "parse_timestamp",
    .kind = SL_TRANSFORM,
    .doc = "set the event time from a field (RFC 3339, unix time or strptime formats)",
    .flags = SL_STAGE_PARALLEL,
    .state_size = sizeof(struct parse_timestamp),
    .options = parse_timestamp_options,
    .init = parse_timestamp_init,
    .map = parse_timestamp_map,
    .close = parse_timestamp_close,
};
