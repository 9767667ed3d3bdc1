/* What a stage can ask of the runtime: its state, wakeups, errors, retries, output
 * ports, counters, logging and timers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "runtime/internal.h"

void *sl_stage_state(struct sl_stage *stage)
{
    return stage->state;
}

const char *sl_stage_name(const struct sl_stage *stage)
{
    return stage->name;
}

const struct sl_stage_type *sl_stage_get_type(const struct sl_stage *stage)
{
    return stage->type;
}

struct event_base *sl_stage_event_base(struct sl_stage *stage)
{
    return stage->p->base;
}

void *sl_stage_shared(struct sl_stage *stage, const char *key)
{
    return sl__resource_find(stage->p, key);
}

int sl_stage_share(struct sl_stage *stage, const char *key, void *ptr, void (*stop)(void *),
                   void (*free_fn)(void *))
{
    if (!key) return SL_EINVAL;
    if (sl__resource_find(stage->p, key)) return SL_EEXIST;
    return sl__resource_add(stage->p, key, ptr, stop, free_fn);
}

int64_t sl_stage_batch_timeout_ms(const struct sl_stage *stage)
{
    return stage->p->opt.batch_timeout_ms;
}

int64_t sl_stage_batch_max_events(const struct sl_stage *stage)
{
    return stage->p->opt.batch_max_events;
}

const char *sl_stage_data_dir(const struct sl_stage *stage)
{
    stage->p->dir_wanted = true; /* the run will hold data_dir's lock (pipeline.c) */
    return stage->p->opt.data_dir;
}

void sl_stage_wake(struct sl_stage *stage)
{
    struct sl_pipeline *p = stage->p;
    atomic_store(&stage->wake_req, 1);
    if (pthread_equal(pthread_self(), p->loop_thread)) {
        sl__schedule(stage);
        return;
    }
    sl__wake_pipeline(p); /* another thread: one eventfd write until the loop drains it */
}

int sl_stage_error(struct sl_stage *stage, int code, const char *fmt, ...)
{
    struct sl_error *job = sl__job_error(stage);
    if (job) { /* in a job on a worker: the job's reason, the stage's when finished */
        if (!job->code) {
            va_list ap;
            va_start(ap, fmt);
            sl_error_setv(job, code, fmt, ap);
            va_end(ap);
        }
        return code;
    }
    pthread_mutex_lock(&stage->err_lock);
    if (!stage->err.code) { /* the first reason is the one worth reporting */
        va_list ap;
        va_start(ap, fmt);
        sl_error_setv(&stage->err, code, fmt, ap);
        va_end(ap);
        atomic_store(&stage->err_set, 1);
    }
    pthread_mutex_unlock(&stage->err_lock);
    return code;
}

enum sl_poll sl_retry(struct sl_stage *stage, const char *fmt, ...)
{
    /* Loop thread, inside write(): the runtime reads it as soon as write() returns. */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(stage->retry_why, sizeof stage->retry_why, fmt, ap);
    va_end(ap);
    return SL_RETRY;
}

int sl_stage_add_output(struct sl_stage *stage, const char *name)
{
    if (!name || !*name) return SL_EINVAL;
    if (sl_stage_output(stage, name) >= 0) return SL_EEXIST;
    struct sl__port *np = realloc(stage->ports, (stage->nports + 1) * sizeof *np);
    if (!np) return SL_ENOMEM;
    stage->ports = np;
    struct sl__port *port = &np[stage->nports];
    memset(port, 0, sizeof *port);
    port->name = sl__strdup(name);
    if (!port->name) return SL_ENOMEM;
    return (int)stage->nports++;
}

int sl_stage_output(const struct sl_stage *stage, const char *name)
{
    if (!name) name = "";
    for (uint32_t i = 0; i < stage->nports; i++)
        if (strcmp(stage->ports[i].name, name) == 0) return (int)i;
    return SL_ENOTFOUND;
}

bool sl_stage_output_connected(const struct sl_stage *stage, int port)
{
    return port >= 0 && (uint32_t)port < stage->nports && stage->ports[port].nedges > 0;
}

void sl_stage_count_dropped(struct sl_stage *stage, uint64_t n)
{
    atomic_fetch_add(&stage->dropped, n);
}

void sl_stage_count_errors(struct sl_stage *stage, uint64_t n)
{
    atomic_fetch_add(&stage->errors, n);
}

int sl_stage_declare_fields(struct sl_stage *stage, enum sl_fields_mode mode,
                            const char *const *names, size_t n)
{
    char **f = calloc(n ? n : 1, sizeof *f);
    if (!f || sl__stage_own(stage, f, free)) return SL_ENOMEM; /* own() frees on failure */
    for (size_t i = 0; i < n; i++) {
        char *d = strdup(names[i]);
        if (!d || sl__stage_own(stage, d, free)) return SL_ENOMEM;
        f[i] = d;
    }
    stage->fields = f;
    stage->nfields = n;
    stage->fields_mode = mode;
    return 0;
}

void sl_stage_keeps_only(struct sl_stage *stage, const struct sl_expr *cond)
{
    stage->keeps_only = cond;
}

const struct sl_expr *sl_stage_downstream_condition(const struct sl_stage *stage)
{
    return stage->down_cond;
}

void sl__link_conditions(struct sl_pipeline *p)
{
    for (uint32_t i = 0; i < p->nstages; i++) {
        struct sl_stage *f = p->stages[i];
        if (!f->keeps_only || f->type->kind != SL_FILTER || f->ninputs != 1) continue;
        const struct sl_queue *q = f->inputs[0];
        struct sl_stage *up = q->from;
        if (q->port == 0 && up->nports > 0 && up->ports[0].nedges == 1)
            up->down_cond = f->keeps_only;
    }
}

void sl_stage_set_progress(struct sl_stage *stage, uint64_t done, uint64_t total)
{
    stage->st.progress_done = done;
    stage->st.progress_total = total;
}

void sl_stage_log(struct sl_stage *stage, enum sl_log_level level, const char *fmt, ...)
{
    struct sl_pipeline *p = stage->p;
    if (!p->opt.log) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->opt.log(p->opt.log_arg, level, stage->name, msg);
}

void sl__log(struct sl_pipeline *p, const struct sl_stage *s, enum sl_log_level level,
             const char *fmt, ...)
{
    if (!p->opt.log) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->opt.log(p->opt.log_arg, level, s ? s->name : NULL, msg);
}

/* 0.1's struct sl_stage_stats ends with `finished`. */
#define STATS_SIZE_0 (offsetof(struct sl_stage_stats, finished) + sizeof(bool))

static void stats_fill(const struct sl_stage *stage, struct sl_stage_stats *out)
{
    *out = stage->st;
    out->size = sizeof *out;
    out->dropped = atomic_load(&((struct sl_stage *)stage)->dropped);
    out->errors = atomic_load(&((struct sl_stage *)stage)->errors);
    out->queue_batches = 0;
    out->queue_capacity = 0;
    out->queue_bytes = 0;
    out->queue_max_bytes = 0;
    for (uint32_t i = 0; i < stage->ninputs; i++) {
        const struct sl_queue *q = stage->inputs[i];
        out->queue_batches += q->count;
        out->queue_capacity += q->cap;
        out->queue_bytes += q->bytes;
        out->queue_max_bytes += q->max_bytes;
    }
    out->finished = stage->finished;
}

int sl_stage_stats(const struct sl_stage *stage, struct sl_stage_stats *out)
{
    if (out->size < STATS_SIZE_0) return SL_EINVAL;
    struct sl_stage_stats all;
    stats_fill(stage, &all);
    size_t size = out->size < sizeof all ? out->size : sizeof all;
    memcpy((char *)out + sizeof out->size, (const char *)&all + sizeof all.size,
           size - sizeof out->size);
    return 0;
}

bool sl__stage_outputs_have_room(const struct sl_stage *s)
{
    for (uint32_t i = 0; i < s->nports; i++)
        for (uint32_t j = 0; j < s->ports[i].nedges; j++)
            if (!sl__queue_has_room(s->ports[i].edges[j])) return false;
    return true;
}

int64_t sl_stage_now_ms(struct sl_stage *stage)
{
    (void)stage;
    return sl__now_ns() / 1000000;
}

/* ---- timers ---------------------------------------------------------------------------- */

struct sl_timer {
    struct event *ev;       /* libevent timer */
    struct sl_stage *stage; /* passed to fn */
    sl_timer_fn *fn;        /* callback */
    void *arg;              /* passed to fn */
    int64_t ms;             /* period */
    bool repeat;            /* re-arm after firing */
};

static void timer_fired(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct sl_timer *t = arg;
    if (t->repeat) sl_timer_start(t, t->ms, true); /* before fn: fn may stop or free it */
    t->fn(t->stage, t->arg);
}

struct sl_timer *sl_timer_new(struct sl_stage *stage, sl_timer_fn *fn, void *arg)
{
    struct sl_timer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->ev = evtimer_new(stage->p->base, timer_fired, t);
    if (!t->ev) {
        free(t);
        return NULL;
    }
    t->stage = stage;
    t->fn = fn;
    t->arg = arg;
    return t;
}

void sl_timer_start(struct sl_timer *t, int64_t ms, bool repeat)
{
    if (ms < 0) ms = 0;
    t->ms = ms;
    t->repeat = repeat;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(t->ev, &tv);
}

void sl_timer_stop(struct sl_timer *t)
{
    t->repeat = false;
    evtimer_del(t->ev);
}

void sl_timer_free(struct sl_timer *t)
{
    if (!t) return;
    event_free(t->ev);
    free(t);
}

/* ---- work the stage has out ----------------------------------------------------------- */

void sl__stage_hold(struct sl_stage *s)
{
    s->submitted++;
}

void sl__stage_unhold(struct sl_stage *s)
{
    if (--s->submitted) return;
    if (s->finished || s->p->failed) /* the run may have been waiting for this work to end */
        sl__sched_check_complete(s->p);
    else if (s->type->kind != SL_SOURCE) /* its input may have been waiting (end_input) */
        sl__schedule(s);
}

/* ---- stage lifetime ------------------------------------------------------------------------ */

int sl__stage_own(struct sl_stage *s, void *ptr, void (*fn)(void *))
{
    struct sl__owned *no = realloc(s->owned, (s->nowned + 1) * sizeof *no);
    if (!no) {
        fn(ptr);
        return SL_ENOMEM;
    }
    s->owned = no;
    s->owned[s->nowned].ptr = ptr;
    s->owned[s->nowned].fn = fn;
    s->nowned++;
    return 0;
}

void sl__stage_free(struct sl_stage *s)
{
    if (!s) return;
    if (s->workers) sl__workers_stop(s);
    if (s->initialised && s->type->close) s->type->close(s);
    sl__async_free(s);
    sl__slice_free(s);
    sl__retry_free(s);
    sl__taps_free(s);
    for (uint32_t i = 0; i < s->nowned; i++) s->owned[i].fn(s->owned[i].ptr);
    free(s->owned);
    sl__counters_free(s);
    for (uint32_t i = 0; i < s->nports; i++) {
        free(s->ports[i].name);
        free(s->ports[i].edges);
    }
    free(s->ports);
    free(s->inputs);
    pthread_mutex_destroy(&s->err_lock);
    free(s->state);
    free(s->name);
    free(s);
}

struct sl_batch *sl_batch_new(struct sl_stage *stage)
{
    struct sl_batch *b = sl__batch_get(&stage->p->batches);
    if (b && sl__batch_reserve(b, stage->p->opt.batch_max_events)) {
        sl__batch_release(b);
        return NULL;
    }
    return b;
}
