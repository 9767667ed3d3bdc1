/* aggregate: tumbling windows of `window` length (aligned to multiples of it), one result
 * event per group of `group_by` values per window, with the `metrics` asked for: count,
 * sum(x), min(x), max(x), avg(x), distinct(x), p50(x), p90(x), p99(x), quantile(x, q)
 * (a sketch: within 1 % of the exact value, stages/sketch.h), where x is an expression
 * (a field path, or `bytes_in + bytes_out`). A result has the group's values, window_start and
 * window_end (RFC 3339 UTC) and the metrics as fields, its JSON as payload and the
 * window's start as time.
 *
 * Clocks: with `clock: processing` an event falls in the window of the wall-clock time it
 * arrives at, and a window closes when the wall clock passes its end (a timer). With
 * `clock: event` it falls in the window of its own time; a window closes when an event
 * more than `max_lateness` past its end arrives, or when no event came for one window
 * length, and an event for a window already closed is dropped (counted). Every window
 * closes at the end of the input.
 *
 * Acknowledgement: by default (`acknowledge: on_output`) the acknowledgements of a
 * window's events are held back (an ack set: their memory is freed at once) until the
 * window's results are emitted, and the results hold them downstream: nothing is
 * acknowledged upstream before the aggregate that counts it, so a crash loses nothing;
 * a source's checkpoint simply waits for the window. `acknowledge: on_receipt` lets them
 * go at once (a crash loses the open windows). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sluice/expr.h>
#include <sluice/json.h>

#include "agg.h"

struct metric {
    const char *name;         /* field name of the result */
    enum sl__stage_agg_op op; /* what to compute */
    double q;                 /* quantile(x, q)'s q */
    struct sl_expr *arg;      /* its argument (owned); NULL for a plain count */
};

struct chunk {
    struct chunk *next; /* older chunk */
    size_t used, cap;   /* bytes handed out / usable */
    char data[];        /* the memory */
};

struct group {
    struct sl__stage_key key;       /* hash of the group_by values */
    struct group *next;             /* insertion order */
    struct sl_value *vals;          /* group_by values (copies); type 0xff: absent */
    struct sl__stage_agg_acc acc[]; /* one per metric */
};

struct window {
    int64_t start;           /* ms on the clock */
    struct group **slots;    /* open addressing by key.h1 */
    uint32_t cap, n;         /* slots (a power of two) / groups */
    struct group *first;     /* groups in insertion order */
    struct group *last;      /* the newest */
    struct sl_ack_set *acks; /* acks of its events, held back (acknowledge: on_output) */
    struct chunk *mem;       /* memory of groups and copied values */
};

struct aggregate {
    int64_t window_ms;               /* option window */
    struct sl_list group_by;         /* option */
    const struct sl_config *metrics; /* option: name -> spec */
    int clock;                       /* option: enum sl__stage_clock */
    int64_t lateness_ms;             /* option max_lateness */
    int ack;                         /* option acknowledge: 0 on_output, 1 on_receipt */
    int64_t max_groups;              /* option: groups per window */
    struct metric *m;                /* compiled metrics */
    size_t nm;                       /* number of metrics */
    struct window *wins;             /* open windows, by start */
    size_t nwins, wins_cap;          /* used / allocated */
    int64_t closed_until;            /* event clock: windows ending at or before are closed */
    int64_t max_seen;                /* event clock: newest event time (ms) */
    int64_t last_arrival;            /* monotonic ms of the last event */
    struct sl_timer *timer;          /* closes windows on time */
    bool armed;                      /* timer started */
};

/* ---- window memory ------------------------------------------------------------------------ */

static void *wmem(struct window *w, size_t size)
{
    size = (size + 7) & ~(size_t)7;
    struct chunk *c = w->mem;
    if (!c || c->cap - c->used < size) {
        size_t cap = size > 65536 ? size : 65536;
        c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->next = w->mem;
        c->used = 0;
        c->cap = cap;
        w->mem = c;
    }
    void *p = c->data + c->used;
    c->used += size;
    return p;
}

static void window_free(struct aggregate *a, struct window *w)
{
    for (struct group *g = w->first; g; g = g->next)
        for (size_t i = 0; i < a->nm; i++) sl__stage_agg_free(&g->acc[i]);
    sl_ack_set_free(w->acks);
    for (struct chunk *c = w->mem, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    free(w->slots);
}

/* ---- groups ----------------------------------------------------------------------------- */

static bool grow_slots(struct window *w)
{
    uint32_t cap = w->cap ? w->cap * 2 : 64;
    struct group **ns = calloc(cap, sizeof *ns);
    if (!ns) return false;
    for (struct group *g = w->first; g; g = g->next) {
        uint32_t j = (uint32_t)g->key.h1 & (cap - 1);
        while (ns[j]) j = (j + 1) & (cap - 1);
        ns[j] = g;
    }
    free(w->slots);
    w->slots = ns;
    w->cap = cap;
    return true;
}

/* A copy of `v` whose bytes live in the window's memory. */
static int copy_value(struct window *w, const struct sl_value *v, struct sl_value *out)
{
    *out = *v;
    if (!v->s || !v->len) return 0;
    char *p = wmem(w, v->len);
    if (!p) return SL_ENOMEM;
    memcpy(p, v->s, v->len);
    out->s = p;
    return 0;
}

static struct group *new_group(struct aggregate *a, struct window *w, struct sl__stage_key k,
                               const struct sl_event *ev)
{
    struct group *g = wmem(w, sizeof *g + a->nm * sizeof g->acc[0]);
    if (!g) return NULL;
    memset(g, 0, sizeof *g + a->nm * sizeof g->acc[0]);
    g->key = k;
    g->vals = wmem(w, (a->group_by.n ? a->group_by.n : 1) * sizeof *g->vals);
    if (!g->vals) return NULL;
    for (size_t i = 0; i < a->group_by.n; i++) {
        const char *path = a->group_by.items[i];
        struct sl_value v;
        g->vals[i].type = 0xff;
        if (sl_event_get(ev, path, strlen(path), &v) == 0 && copy_value(w, &v, &g->vals[i]))
            return NULL;
    }
    if (w->last)
        w->last->next = g;
    else
        w->first = g;
    w->last = g;
    return g;
}

/* The group of `ev` in `w`, made when new; NULL when memory ran out or *full. */
static struct group *group_of(struct aggregate *a, struct window *w, const struct sl_event *ev,
                              bool *full)
{
    struct sl__stage_key k = {0, 0};
    if (a->group_by.n) k = sl__stage_key_of(ev, &a->group_by);
    *full = false;
    if ((w->n + 1) * 2 > w->cap && !grow_slots(w)) return NULL;
    uint32_t j = (uint32_t)k.h1 & (w->cap - 1);
    for (; w->slots[j]; j = (j + 1) & (w->cap - 1))
        if (w->slots[j]->key.h1 == k.h1 && w->slots[j]->key.h2 == k.h2) return w->slots[j];
    if ((int64_t)w->n >= a->max_groups) {
        *full = true;
        return NULL;
    }
    struct group *g = new_group(a, w, k, ev);
    if (!g) return NULL;
    w->slots[j] = g;
    w->n++;
    return g;
}

/* ---- windows ---------------------------------------------------------------------------- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The open window starting at `start`, made when new (kept sorted by start). */
static struct window *window_at(struct aggregate *a, int64_t start)
{
    size_t i = a->nwins;
    while (i > 0 && a->wins[i - 1].start > start) i--;
    if (i > 0 && a->wins[i - 1].start == start) return &a->wins[i - 1];
    if (a->nwins == a->wins_cap) {
        size_t cap = a->wins_cap ? a->wins_cap * 2 : 4;
        struct window *nw = realloc(a->wins, cap * sizeof *nw);
        if (!nw) return NULL;
        a->wins = nw;
        a->wins_cap = cap;
    }
    memmove(&a->wins[i + 1], &a->wins[i], (a->nwins - i) * sizeof *a->wins);
    a->nwins++;
    memset(&a->wins[i], 0, sizeof a->wins[i]);
    a->wins[i].start = start;
    return &a->wins[i];
}

/* "2024-01-02T03:04:05.123Z" for `ms` since the epoch. */
static size_t rfc3339_ms(int64_t ms, char *buf, size_t cap)
{
    time_t secs = (time_t)(ms / 1000 - (ms % 1000 < 0));
    int frac = (int)(ms - (int64_t)secs * 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    if (frac) n += (size_t)snprintf(buf + n, cap - n, ".%03d", frac);
    n += (size_t)snprintf(buf + n, cap - n, "Z");
    return n;
}

static int set_copy(struct sl_event *ev, const char *name, const struct sl_value *v)
{
    struct sl_value c = *v;
    if (v->s && v->len && !(c.s = sl_event_strdup(ev, v->s, v->len))) return SL_ENOMEM;
    return sl_event_set(ev, name, strlen(name), &c);
}

static int set_time_field(struct sl_event *ev, const char *name, int64_t ms)
{
    char buf[48];
    struct sl_value v = sl_value_string(buf, rfc3339_ms(ms, buf, sizeof buf));
    return set_copy(ev, name, &v);
}

/* One result event for group `g` of window `w`. */
static int emit_result(struct sl_stage *s, struct aggregate *a, struct window *w,
                       const struct group *g, struct sl_emit *out)
{
    struct sl_event *ev = sl_emit_new(out);
    if (!ev) return SL_ENOMEM;
    int rc = 0;
    for (size_t i = 0; !rc && i < a->group_by.n; i++) {
        struct sl_value v = g->vals[i].type == 0xff ? sl_value_null() : g->vals[i];
        rc = set_copy(ev, a->group_by.items[i], &v);
    }
    if (!rc) rc = set_time_field(ev, "window_start", w->start);
    if (!rc) rc = set_time_field(ev, "window_end", w->start + a->window_ms);
    for (size_t i = 0; !rc && i < a->nm; i++) {
        struct sl_value v = sl__stage_agg_result(&g->acc[i], a->m[i].op, a->m[i].q);
        rc = sl_event_set(ev, a->m[i].name, strlen(a->m[i].name), &v);
    }
    if (rc) return rc;
    size_t need = sl_event_write_json(ev, NULL, 0); /* the payload is the result's JSON */
    char *buf = sl_event_alloc(ev, need);
    if (!buf) return SL_ENOMEM;
    sl_event_write_json(ev, buf, need);
    sl_event_set_payload(ev, buf, need);
    sl_event_fields_synced(ev);
    sl_event_set_time(ev, w->start * 1000000);
    sl_event_set_origin(ev, sl_stage_name(s), 0, -1);
    return sl_emit(out, ev);
}

/* Emits the results of the oldest open window and forgets it. */
static int close_oldest(struct sl_stage *s, struct aggregate *a, struct sl_emit *out)
{
    struct window *w = &a->wins[0];
    int rc = 0;
    for (const struct group *g = w->first; g && !rc; g = g->next) rc = emit_result(s, a, w, g, out);
    if (w->acks && !rc) rc = sl_emit_ack_set(out, w->acks); /* acked with the results */
    if (w->start + a->window_ms > a->closed_until) a->closed_until = w->start + a->window_ms;
    window_free(a, w);
    a->nwins--;
    memmove(&a->wins[0], &a->wins[1], a->nwins * sizeof *a->wins);
    return rc;
}

/* Closes the windows that end at or before `until`. */
static int close_until(struct sl_stage *s, struct aggregate *a, int64_t until, struct sl_emit *out)
{
    while (a->nwins && a->wins[0].start + a->window_ms <= until) {
        int rc = close_oldest(s, a, out);
        if (rc) return rc;
    }
    return 0;
}

static void arm(struct sl_stage *s, struct aggregate *a)
{
    if (!a->nwins) {
        a->armed = false;
        return;
    }
    int64_t delay = a->clock == SL__STAGE_CLOCK_EVENT
                        ? a->last_arrival + a->window_ms - sl_stage_now_ms(s)
                        : a->wins[0].start + a->window_ms - wall_ms();
    sl_timer_start(a->timer, delay > 0 ? delay : 0, false);
    a->armed = true;
}

static void on_timer(struct sl_stage *s, void *arg)
{
    (void)arg;
    struct aggregate *a = sl_stage_state(s);
    a->armed = false;
    sl_stage_wake(s); /* the runtime calls flush(end = false) */
}

/* ---- the stage ------------------------------------------------------------------------------ */

static int hold(struct window *w, struct sl_batch *in)
{
    if (!w->acks && !(w->acks = sl_ack_set_new())) return SL_ENOMEM;
    return sl_ack_set_add(w->acks, in);
}

static int accumulate(struct aggregate *a, struct group *g, struct sl_event *ev)
{
    for (size_t i = 0; i < a->nm; i++) {
        struct sl_value v = sl_value_bool(true); /* a plain count counts the event */
        if (a->m[i].arg && sl_expr_eval(a->m[i].arg, ev, &v)) return SL_ENOMEM;
        if (sl__stage_agg_add(&g->acc[i], a->m[i].op, &v)) return SL_ENOMEM;
    }
    return 0;
}

static int aggregate_map(struct sl_stage *s, struct sl_event *ev, struct sl_emit *out)
{
    struct aggregate *a = sl_stage_state(s);
    bool event_clock = a->clock == SL__STAGE_CLOCK_EVENT;
    int64_t now = event_clock ? sl__stage_clock_ms(s, ev, a->clock) : wall_ms();
    int64_t start = now - (now % a->window_ms + a->window_ms) % a->window_ms;
    a->last_arrival = sl_stage_now_ms(s);
    if (event_clock && start + a->window_ms <= a->closed_until) {
        sl_stage_count_dropped(s, 1); /* its window has been emitted already */
        return 0;
    }
    struct window *w = window_at(a, start);
    bool full = false;
    struct group *g = w ? group_of(a, w, ev, &full) : NULL;
    if (full) {
        sl_stage_count_dropped(s, 1);
        return 0;
    }
    if (!g || accumulate(a, g, ev) || (a->ack == 0 && hold(w, sl_emit_input(out))))
        return sl_stage_error(s, SL_ENOMEM, "out of memory");
    if (event_clock && now > a->max_seen) {
        a->max_seen = now;
        if (close_until(s, a, now - a->lateness_ms, out))
            return sl_stage_error(s, SL_ENOMEM, "out of memory");
    }
    if (!a->armed) arm(s, a);
    return 0;
}

static int aggregate_flush(struct sl_stage *s, struct sl_emit *out, bool end)
{
    struct aggregate *a = sl_stage_state(s);
    int rc;
    if (end)
        rc = close_until(s, a, INT64_MAX, out);
    else if (a->clock == SL__STAGE_CLOCK_EVENT)
        rc = sl_stage_now_ms(s) - a->last_arrival >= a->window_ms
                 ? close_until(s, a, INT64_MAX, out)
                 : 0;
    else
        rc = close_until(s, a, wall_ms(), out);
    if (rc) return sl_stage_error(s, SL_ENOMEM, "out of memory");
    if (end)
        sl_timer_stop(a->timer);
    else
        arm(s, a);
    return 0;
}

static int compile_metric(struct metric *m, const char *name, const struct sl_config *node,
                          struct sl_error *err)
{
    const char *spec = sl_config_kind(node) == SL_CFG_SCALAR ? sl_config_str(node) : NULL;
    const char *arg = NULL, *why = NULL;
    size_t len = 0, col = 0;
    m->name = name;
    if (!spec || sl__stage_agg_parse(spec, &m->op, &m->q, &arg, &len, &col, &why))
        return sl_config_error(node, err, SL_ECONFIG, "metric '%s': %s", name,
                               why ? why : "expected a metric such as count or sum(latency_ms)");
    if (!len) return 0;
    struct sl_error e = {0};
    m->arg = sl_expr_compile(arg, len, &e);
    if (m->arg) return 0;
    int c = sl_config_col(node) + (sl_config_quoted(node) ? 1 : 0) + (int)col +
            (e.col > 0 ? e.col - 1 : 0);
    return sl_error_at(err, SL_ECONFIG, sl_config_file(node), sl_config_line(node), c,
                       "metric '%s': %s", name, e.msg);
}

/* A result has exactly the group's fields, the window's bounds and the metrics. */
static int declare(struct sl_stage *s, const struct aggregate *a, struct sl_error *err)
{
    size_t n = a->group_by.n + 2 + a->nm;
    const char **names = calloc(n, sizeof *names);
    if (!names) return sl_error_set(err, SL_ENOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < a->group_by.n; i++) names[k++] = a->group_by.items[i];
    names[k++] = "window_start";
    names[k++] = "window_end";
    for (size_t i = 0; i < a->nm; i++) names[k++] = a->m[i].name;
    int rc = sl_stage_declare_fields(s, SL_FIELDS_ONLY, names, k);
    free(names);
    return rc ? sl_error_set(err, rc, "out of memory") : 0;
}

static int aggregate_init(struct sl_stage *s, const struct sl_config *cfg, struct sl_error *err)
{
    (void)cfg;
    struct aggregate *a = sl_stage_state(s);
    if (a->window_ms < 1)
        return sl_config_error(sl_config_get(cfg, "window"), err, SL_ECONFIG,
                               "option 'window' must be at least 1ms");
    if (a->max_groups < 1)
        return sl_config_error(sl_config_get(cfg, "max_groups"), err, SL_ECONFIG,
                               "option 'max_groups' must be 1 or more");
    size_t n = sl_config_len(a->metrics);
    if (n == 0)
        return sl_config_error(a->metrics, err, SL_ECONFIG,
                               "metrics: expected at least one `name: count | sum(x) | ...`");
    a->m = calloc(n, sizeof *a->m);
    if (!a->m) return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *name;
        const struct sl_config *node = sl_config_at(a->metrics, i, &name);
        a->nm = i + 1;
        int rc = compile_metric(&a->m[i], name, node, err);
        if (rc) return rc;
    }
    a->closed_until = INT64_MIN;
    a->max_seen = INT64_MIN;
    return declare(s, a, err);
}

static int aggregate_start(struct sl_stage *s, struct sl_error *err)
{
    struct aggregate *a = sl_stage_state(s);
    a->timer = sl_timer_new(s, on_timer, NULL);
    return a->timer ? 0 : sl_error_set(err, SL_ENOMEM, "out of memory");
}

static void aggregate_close(struct sl_stage *s)
{
    struct aggregate *a = sl_stage_state(s);
    sl_timer_free(a->timer);
    for (size_t i = 0; i < a->nwins; i++) window_free(a, &a->wins[i]);
    free(a->wins);
    for (size_t i = 0; i < a->nm; i++) sl_expr_free(a->m[i].arg);
    free(a->m);
}

static const struct sl_option aggregate_options[] = {
    {"window", SL_OPT_DURATION, "1m", 0, offsetof(struct aggregate, window_ms),
     "length of the tumbling windows, aligned to multiples of it (1m: each minute)"},
    {"group_by", SL_OPT_LIST, NULL, 0, offsetof(struct aggregate, group_by),
     "fields (paths) whose values make a group; each result carries them; unset: one group"},
    {"metrics", SL_OPT_MAP, NULL, SL_REQUIRED, offsetof(struct aggregate, metrics),
     "result fields, each count, count(x) (events where x is neither null nor false), sum(x), "
     "min(x), max(x), avg(x), distinct(x), p50(x), p90(x), p99(x) or quantile(x, q) (within "
     "1 % of the exact value), x an expression, e.g. {n: count, errors: "
     "count(level == \"error\"), slowest: max(latency_ms), p99_ms: p99(latency_ms)}"},
    {"clock", SL_OPT_ENUM, "processing", 0, offsetof(struct aggregate, clock),
     "processing: windows of arrival (wall clock), closed by a timer; event: windows of the "
     "events' own times",
     SL__STAGE_CLOCK_CHOICES},
    {"max_lateness", SL_OPT_DURATION, "0", 0, offsetof(struct aggregate, lateness_ms),
     "clock event: how far past a window's end newer events may go before it closes"},
    {"acknowledge", SL_OPT_ENUM, "on_output", 0, offsetof(struct aggregate, ack),
     "on_output: events are acknowledged upstream with the results that count them (their "
     "memory is not kept); on_receipt: at once (a crash loses open windows)",
     "on_output|on_receipt"},
    {"max_groups", SL_OPT_INT, "100000", 0, offsetof(struct aggregate, max_groups),
     "groups per window; events of further groups are dropped (counted)"},
    {0},
};

const struct sl_stage_type sl_stage_aggregate = {
    .abi = SL_STAGE_ABI,
    .name = "aggregate",
    .kind = SL_TRANSFORM,
    .doc = "count, sum, min, max, avg, distinct per group over tumbling time windows",
    .state_size = sizeof(struct aggregate),
    .options = aggregate_options,
    .init = aggregate_init,
    .start = aggregate_start,
    .map = aggregate_map,
    .flush = aggregate_flush,
    .close = aggregate_close,
};
