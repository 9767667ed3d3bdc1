/* multiline: joins lines into one event, e.g. a stack trace with the log line that
 * precedes it. A line matching `start_pattern` begins a new event and every other line
 * is appended to the current one; or, with `continuation_pattern`, a matching line is
 * appended and every other line begins a new event. Lines of different origins (files)
 * are joined separately. An event is emitted when the next one begins, when it would grow
 * past `max_bytes`, when no line came for it for `timeout`, and at the end of the input.
 *
 * Works on payloads, before parsing: the joined event has the payload and the metadata
 * (origin, offset, time, key) of its first line and no fields. The lines stay where they
 * are until the event is emitted: the stage holds a reference to their batches, and the
 * joined event holds them downstream (sl_emit_hold), so nothing is acknowledged upstream
 * before the event that carries it. A one-line event points at its line, unchanged; a
 * longer one is copied once into the output batch. */
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "internal.h"

struct span {
    const char *p; /* line bytes, in a held batch */
    uint32_t len;  /* bytes */
};

/* The lines waiting to become one event, for one origin. */
struct group {
    char *origin;             /* the origin's name (owned copy; "" for none) */
    struct span *lines;       /* the lines so far */
    size_t n, cap;            /* used / allocated */
    size_t bytes;             /* payload bytes the event will have */
    struct sl_batch **held;   /* batches the lines live in (one reference each) */
    size_t nheld, held_cap;   /* used / allocated */
    int64_t last_ms;          /* when the last line arrived */
    const char *first_origin; /* the first line's origin (in a held batch) */
    uint64_t offset;          /* the first line's offset */
    int64_t time;             /* the first line's time */
    int32_t partition;        /* the first line's partition */
    const char *key;          /* the first line's key (in a held batch), or NULL */
    size_t key_len;           /* bytes of key */
};

struct multiline {
    const char *start;      /* option start_pattern */
    const char *cont;       /* option continuation_pattern */
    const char *separator;  /* option: put between joined lines */
    int64_t timeout_ms;     /* option timeout */
    uint64_t max_bytes;     /* option */
    pcre2_code *re;         /* the compiled pattern */
    pcre2_match_data *md;   /* its match block (the stage runs on the loop only) */
    size_t sep_len;         /* bytes of separator */
    struct group *groups;   /* one per origin seen */
    size_t ngroups;         /* groups in use */
    struct sl_timer *timer; /* emits events that waited `timeout` */
    bool armed;             /* timer started */
    struct sl_stage *stage; /* for the timer */
};

/* ---- groups ---------------------------------------------------------------------------------- */

static struct group *group_of(struct multiline *m, const char *origin)
{
    if (!origin) origin = "";
    for (size_t i = 0; i < m->ngroups; i++)
        if (strcmp(m->groups[i].origin, origin) == 0) return &m->groups[i];
    struct group *ng = realloc(m->groups, (m->ngroups + 1) * sizeof *ng);
    if (!ng) return NULL;
    m->groups = ng;
    struct group *g = &ng[m->ngroups];
    memset(g, 0, sizeof *g);
    g->origin = strdup(origin);
    if (!g->origin) return NULL;
    m->ngroups++;
    return g;
}

static bool grow(void **arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    void *na = realloc(*arr, nc * size);
    if (!na) return false;
    *arr = na;
    *cap = nc;
    return true;
}

/* Adds a line of `ev` (from batch `in`) to `g`, holding `in` once. */
static int append(struct multiline *m, struct group *g, struct sl_event *ev, struct sl_batch *in)
{
    size_t len;
    const char *p = sl_event_payload(ev, &len);
    if (!grow((void **)&g->lines, &g->cap, g->n + 1, sizeof *g->lines)) return SL_ENOMEM;
    if (g->nheld == 0 || g->held[g->nheld - 1] != in) {
        if (!grow((void **)&g->held, &g->held_cap, g->nheld + 1, sizeof *g->held)) return SL_ENOMEM;
        sl_batch_ref(in);
        g->held[g->nheld++] = in;
    }
    if (g->n == 0) {
        g->first_origin = sl_event_origin(ev);
        g->offset = sl_event_offset(ev);
        g->partition = sl_event_partition(ev);
        g->time = sl_event_time(ev);
        g->key = sl_event_key(ev, &g->key_len);
    } else {
        g->bytes += m->sep_len;
    }
    g->lines[g->n++] = (struct span){p ? p : "", (uint32_t)len};
    g->bytes += len;
    g->last_ms = sl_stage_now_ms(m->stage);
    return 0;
}

/* Emits the group's lines as one event and lets go of their batches. */
static int emit_group(struct multiline *m, struct group *g, struct sl_emit *out)
{
    if (g->n == 0) return 0;
    struct sl_event *ev = sl_emit_new(out);
    if (!ev) return SL_ENOMEM;
    if (g->n == 1) {
        sl_event_set_payload(ev, g->lines[0].p, g->lines[0].len); /* in a held batch */
    } else {
        char *buf = sl_event_alloc(ev, g->bytes);
        if (!buf) return SL_ENOMEM;
        size_t o = 0;
        for (size_t i = 0; i < g->n; i++) {
            if (i) memcpy(buf + o, m->separator, m->sep_len), o += m->sep_len;
            memcpy(buf + o, g->lines[i].p, g->lines[i].len), o += g->lines[i].len;
        }
        sl_event_set_payload(ev, buf, o);
    }
    sl_event_set_origin(ev, g->first_origin, g->offset, g->partition);
    sl_event_set_time(ev, g->time);
    sl_event_set_key(ev, g->key, g->key_len);
    for (size_t i = 0; i < g->nheld; i++) {
        sl_emit_hold(out, g->held[i]); /* acknowledged upstream with this event */
        sl_batch_unref(g->held[i]);
    }
    g->nheld = 0;
    g->n = 0;
    g->bytes = 0;
    return sl_emit(out, ev);
}

/* ---- the stage ------------------------------------------------------------------------------- */

static void arm(struct multiline *m, int64_t now)
{
    int64_t due = INT64_MAX;
    for (size_t i = 0; i < m->ngroups; i++)
        if (m->groups[i].n && m->groups[i].last_ms + m->timeout_ms < due)
            due = m->groups[i].last_ms + m->timeout_ms;
    m->armed = due != INT64_MAX;
    if (m->armed) sl_timer_start(m->timer, due > now ? due - now : 0, false);
}

static void on_timer(struct sl_stage *s, void *arg)
{
    (void)arg;
    struct multiline *m = sl_stage_state(s);
    m->armed = false;
    sl_stage_wake(s); /* the runtime calls flush(end = false) */
}

static bool starts_event(struct multiline *m, const char *p, size_t len)
{
    int rc = pcre2_match(m->re, (PCRE2_SPTR)(p ? p : ""), len, 0, 0, m->md, NULL);
    bool matched = rc >= 0; /* an error (match limit) counts as no match */
    return m->start ? matched : !matched;
}

static int multiline_map(struct sl_stage *s, struct sl_event *ev, struct sl_emit *out)
{
    struct multiline *m = sl_stage_state(s);
    struct group *g = group_of(m, sl_event_origin(ev));
    if (!g) return sl_stage_error(s, SL_ENOMEM, "out of memory");
    size_t len;
    const char *p = sl_event_payload(ev, &len);
    bool full = g->n && g->bytes + m->sep_len + len > m->max_bytes;
    if (g->n && (full || starts_event(m, p, len)) && emit_group(m, g, out))
        return sl_stage_error(s, SL_ENOMEM, "out of memory");
    if (append(m, g, ev, sl_emit_input(out))) return sl_stage_error(s, SL_ENOMEM, "out of memory");
    if (!m->armed) arm(m, g->last_ms);
    return 0;
}

static int multiline_flush(struct sl_stage *s, struct sl_emit *out, bool end)
{
    struct multiline *m = sl_stage_state(s);
    int64_t now = sl_stage_now_ms(s);
    for (size_t i = 0; i < m->ngroups; i++) {
        struct group *g = &m->groups[i];
        if (g->n && (end || now - g->last_ms >= m->timeout_ms) && emit_group(m, g, out))
            return sl_stage_error(s, SL_ENOMEM, "out of memory");
    }
    if (end)
        sl_timer_stop(m->timer);
    else
        arm(m, now);
    return 0;
}

static int multiline_init(struct sl_stage *s, const struct sl_config *cfg, struct sl_error *err)
{
    struct multiline *m = sl_stage_state(s);
    if (!m->start == !m->cont)
        return sl_config_error(cfg, err, SL_ECONFIG,
                               "multiline needs one of 'start_pattern' and 'continuation_pattern'");
    if (m->timeout_ms < 1)
        return sl_config_error(sl_config_get(cfg, "timeout"), err, SL_ECONFIG,
                               "option 'timeout' must be at least 1ms");
    if (m->max_bytes < 1 || m->max_bytes > UINT32_MAX)
        return sl_config_error(sl_config_get(cfg, "max_bytes"), err, SL_ECONFIG,
                               "option 'max_bytes' must be from 1 byte to 4GiB");
    const char *src = m->start ? m->start : m->cont;
    int code;
    PCRE2_SIZE off;
    m->re = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
    if (!m->re) {
        char msg[160];
        pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof msg);
        return sl_config_error(
            sl_config_get(cfg, m->start ? "start_pattern" : "continuation_pattern"), err,
            SL_ECONFIG, "bad pattern: %s (near byte %zu)", msg, (size_t)off);
    }
    pcre2_jit_compile(m->re, PCRE2_JIT_COMPLETE); /* pcre2_match uses it when it worked */
    m->md = pcre2_match_data_create_from_pattern(m->re, NULL);
    if (!m->md) return sl_error_set(err, SL_ENOMEM, "out of memory");
    if (!m->separator) m->separator = "\n";
    m->sep_len = strlen(m->separator);
    m->stage = s;
    return 0;
}

static int multiline_start(struct sl_stage *s, struct sl_error *err)
{
    struct multiline *m = sl_stage_state(s);
    m->timer = sl_timer_new(s, on_timer, NULL);
    return m->timer ? 0 : sl_error_set(err, SL_ENOMEM, "out of memory");
}

static void multiline_close(struct sl_stage *s)
{
    struct multiline *m = sl_stage_state(s);
    sl_timer_free(m->timer);
    for (size_t i = 0; i < m->ngroups; i++) {
        struct group *g = &m->groups[i];
        for (size_t k = 0; k < g->nheld; k++) sl_batch_unref(g->held[k]); /* a failed run */
        free(g->held);
        free(g->lines);
        free(g->origin);
    }
    free(m->groups);
    pcre2_match_data_free(m->md);
    pcre2_code_free(m->re);
}

static const struct sl_option multiline_options[] = {
    {"start_pattern", SL_OPT_STRING, NULL, 0, offsetof(struct multiline, start),
     "PCRE2 pattern of the first line of an event; other lines are appended to the current one"},
    {"continuation_pattern", SL_OPT_STRING, NULL, 0, offsetof(struct multiline, cont),
     "instead of start_pattern: pattern of lines that continue the previous event (e.g. "
     "'^\\s' for indented stack frames); other lines begin a new one"},
    {"separator", SL_OPT_STRING, NULL, 0, offsetof(struct multiline, separator),
     "text put between the joined lines; unset: a line feed"},
    {"timeout", SL_OPT_DURATION, "1s", 0, offsetof(struct multiline, timeout_ms),
     "emit an event when no line came for it for this long"},
    {"max_bytes", SL_OPT_SIZE, "1MiB", 0, offsetof(struct multiline, max_bytes),
     "emit an event before it grows past this size (a longer single line stays whole)"},
    {0},
};

const struct sl_stage_type sl_stage_multiline = {
    .abi = SL_STAGE_ABI,
    .name = "multiline",
    .kind = SL_TRANSFORM,
    .doc = "join lines into one event by a start or continuation pattern (per origin)",
    .state_size = sizeof(struct multiline),
    .options = multiline_options,
    .init = multiline_init,
    .start = multiline_start,
    .map = multiline_map,
    .flush = multiline_flush,
    .close = multiline_close,
};
