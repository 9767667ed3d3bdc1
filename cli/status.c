/* The live status of a run: on a terminal, one line on stderr that redraws itself (events
 * per second in and out, dropped, errors, the fullest queue, progress and ETA of finite
 * inputs); elsewhere, with --stats-interval, the same as a plain log line. A timer on
 * the pipeline's own loop drives it: nothing here blocks or runs on another thread.
 * At the end, a table per stage. */
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <event2/event.h>

#include "cli.h"

#define TTY_MS 500 /* redraw period on a terminal */

struct totals {
    uint64_t in, out;                /* events produced by sources / acknowledged by sinks */
    uint64_t dropped, errors;        /* over all stages */
    uint64_t done, total;            /* progress of sources that know their size */
    double fullest;                  /* fill ratio of the fullest input queue */
    const char *fullest_name;        /* its stage */
    uint32_t fullest_n, fullest_cap; /* its batches / capacity */
};

struct cli_status {
    struct sl_pipeline *p;    /* borrowed */
    struct event *timer;      /* periodic */
    bool tty;                 /* redraw in place */
    bool drawn;               /* a status line is on the screen */
    int64_t period_ms;        /* timer period */
    struct totals last;       /* at the previous tick */
    double rate_in, rate_out; /* smoothed per second */
    bool have_rates;          /* at least one tick seen */
    struct cli_eta eta;       /* of the progress */
    long eta_s;               /* to show; -1: none yet */
};

static struct cli_status *visible; /* the status whose line is on the terminal */

void cli_human(double v, char *buf, size_t size)
{
    static const char units[] = {' ', 'k', 'M', 'G', 'T'};
    int u = 0;
    while (v >= 1000 && u < 4) v /= 1000, u++;
    if (u == 0)
        snprintf(buf, size, "%.0f", v);
    else
        snprintf(buf, size, v < 10 ? "%.2f%c" : v < 100 ? "%.1f%c" : "%.0f%c", v, units[u]);
}

static void collect(struct sl_pipeline *p, struct totals *t)
{
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < sl_pipeline_stage_count(p); i++) {
        struct sl_stage *s = sl_pipeline_stage_at(p, i);
        struct sl_stage_stats st = {.size = sizeof st};
        sl_stage_stats(s, &st);
        enum sl_kind kind = sl_stage_get_type(s)->kind;
        if (kind == SL_SOURCE) t->in += st.events_in;
        if (kind == SL_SINK) t->out += st.acked;
        t->dropped += st.dropped;
        t->errors += st.errors;
        if (st.progress_total) t->done += st.progress_done, t->total += st.progress_total;
        double fill = st.queue_capacity ? (double)st.queue_batches / st.queue_capacity : 0;
        if (st.queue_capacity && (!t->fullest_name || fill > t->fullest)) {
            t->fullest = fill;
            t->fullest_name = sl_stage_name(s);
            t->fullest_n = st.queue_batches;
            t->fullest_cap = st.queue_capacity;
        }
    }
}

/* "45.0% ETA 0:00:13  in 12.3k/s  out ...": progress first, so that a narrow terminal
 * cuts the least useful part. */
static void format_line(struct cli_status *st, const struct totals *t, char *buf, size_t size)
{
    char in[16], out[16], all[16];
    size_t n = 0;
    buf[0] = '\0';
    if (t->total) {
        double pct = 100.0 * (double)t->done / (double)t->total;
        n += (size_t)snprintf(buf, size, "%.1f%%  ", pct > 100 ? 100 : pct);
        if (st->eta_s >= 0 && t->done < t->total && n < size) {
            long eta = st->eta_s;
            n += (size_t)snprintf(buf + n, size - n, "ETA %ld:%02ld:%02ld  ", eta / 3600,
                                  eta / 60 % 60, eta % 60);
        }
    }
    cli_human(st->rate_in, in, sizeof in);
    cli_human(st->rate_out, out, sizeof out);
    cli_human((double)t->in, all, sizeof all);
    if (n < size)
        n += (size_t)snprintf(buf + n, size - n,
                              "in %s/s  out %s/s  events %s  dropped %llu  errors %llu", in, out,
                              all, (unsigned long long)t->dropped, (unsigned long long)t->errors);
    if (t->fullest_name && n < size)
        snprintf(buf + n, size - n, "  queue %s %u/%u", t->fullest_name, t->fullest_n,
                 t->fullest_cap);
}

static double smooth(double old, double now, bool first)
{
    return first ? now : 0.5 * old + 0.5 * now;
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct cli_status *st = arg;
    struct totals t;
    collect(st->p, &t);
    double secs = (double)st->period_ms / 1000.0;
    bool first = !st->have_rates;
    st->rate_in = smooth(st->rate_in, (double)(t.in - st->last.in) / secs, first);
    st->rate_out = smooth(st->rate_out, (double)(t.out - st->last.out) / secs, first);
    st->eta_s = cli_eta_update(&st->eta, (double)(t.done - st->last.done), secs,
                               t.total > t.done ? t.total - t.done : 0);
    st->have_rates = true;
    st->last = t;
    char line[512];
    format_line(st, &t, line, sizeof line);
    if (st->tty) {
        struct winsize ws;
        if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && ws.ws_col < sizeof line)
            line[ws.ws_col - 1] = '\0'; /* a wrapped line could not be redrawn in place */
        fprintf(stderr, "\r\033[K%s", line);
        fflush(stderr);
        st->drawn = true;
        visible = st;
    } else {
        cli_log(SL_LOG_INFO, NULL, "stats: %s", line);
    }
}

/* Log lines first wipe the status line; the next tick draws it again. */
static void clear_line(void)
{
    if (!visible || !visible->drawn) return;
    fputs("\r\033[K", stderr);
    visible->drawn = false;
}

struct cli_status *cli_status_start(struct sl_pipeline *p, bool tty, int64_t interval_ms)
{
    if (!tty && interval_ms <= 0) return NULL;
    struct cli_status *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->p = p;
    st->tty = tty;
    st->period_ms = tty ? TTY_MS : interval_ms;
    st->eta = (struct cli_eta)CLI_ETA_INIT;
    st->eta_s = -1;
    st->timer = event_new(sl_pipeline_event_base(p), -1, EV_PERSIST, tick, st);
    struct timeval tv = {.tv_sec = st->period_ms / 1000, .tv_usec = st->period_ms % 1000 * 1000};
    if (!st->timer || event_add(st->timer, &tv)) {
        if (st->timer) event_free(st->timer);
        free(st);
        return NULL;
    }
    if (tty) cli_log_set_hook(clear_line);
    return st;
}

void cli_status_stop(struct cli_status *st)
{
    if (!st) return;
    if (visible == st) {
        clear_line();
        visible = NULL;
        cli_log_set_hook(NULL);
    }
    fflush(stderr);
    event_free(st->timer);
    free(st);
}

/* With --log-format json, the summary is one log line per stage. */
static void summary_lines(struct sl_pipeline *p, double seconds)
{
    for (size_t i = 0; i < sl_pipeline_stage_count(p); i++) {
        struct sl_stage *s = sl_pipeline_stage_at(p, i);
        const struct sl_stage_type *t = sl_stage_get_type(s);
        struct sl_stage_stats st = {.size = sizeof st};
        sl_stage_stats(s, &st);
        cli_log(SL_LOG_INFO, sl_stage_name(s),
                "summary: type=%s kind=%s events_in=%llu events_out=%llu dropped=%llu "
                "errors=%llu time=%.3fs",
                t->name, cli_kind_name(t->kind), (unsigned long long)st.events_in,
                (unsigned long long)st.events_out, (unsigned long long)st.dropped,
                (unsigned long long)st.errors, (double)st.busy_ns / 1e9);
    }
    cli_log(SL_LOG_INFO, NULL, "run took %.3fs", seconds);
}

void cli_summary(struct sl_pipeline *p, double seconds, FILE *out)
{
    if (cli_log_json()) {
        summary_lines(p, seconds);
        return;
    }
    size_t w = 5, tw = 4;
    for (size_t i = 0; i < sl_pipeline_stage_count(p); i++) {
        struct sl_stage *s = sl_pipeline_stage_at(p, i);
        if (strlen(sl_stage_name(s)) > w) w = strlen(sl_stage_name(s));
        if (strlen(sl_stage_get_type(s)->name) > tw) tw = strlen(sl_stage_get_type(s)->name);
    }
    fprintf(out, "%-*s  %-*s  %-9s  %10s  %10s  %8s  %8s  %8s\n", (int)w, "STAGE", (int)tw, "TYPE",
            "KIND", "EVENTS IN", "EVENTS OUT", "DROPPED", "ERRORS", "TIME");
    uint64_t in = 0;
    for (size_t i = 0; i < sl_pipeline_stage_count(p); i++) {
        struct sl_stage *s = sl_pipeline_stage_at(p, i);
        const struct sl_stage_type *t = sl_stage_get_type(s);
        struct sl_stage_stats st = {.size = sizeof st};
        sl_stage_stats(s, &st);
        if (t->kind == SL_SOURCE) in += st.events_in;
        fprintf(out, "%-*s  %-*s  %-9s  %10llu  %10llu  %8llu  %8llu  %7.3fs\n", (int)w,
                sl_stage_name(s), (int)tw, t->name, cli_kind_name(t->kind),
                (unsigned long long)st.events_in, (unsigned long long)st.events_out,
                (unsigned long long)st.dropped, (unsigned long long)st.errors,
                (double)st.busy_ns / 1e9);
    }
    char rate[16];
    cli_human(seconds > 0 ? (double)in / seconds : 0, rate, sizeof rate);
    fprintf(out, "%llu events in %.2fs (%s events/s)\n", (unsigned long long)in, seconds, rate);
}
