/* Test helpers: stage types that count, stall and fail. See helpers.h. */
#include "helpers.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/internal.h"

/* ---- t_counter ---------------------------------------------------------------------------- */

/* Numbers made by a helper thread, handed over through a bounded buffer. */
struct producer {
    pthread_t thread;       /* the producer */
    pthread_mutex_t lock;   /* guards the rest */
    pthread_cond_t room;    /* the consumer took numbers */
    int64_t made;           /* numbers produced so far */
    int64_t taken;          /* numbers consumed so far */
    int64_t total;          /* numbers to produce */
    struct sl_stage *stage; /* to wake */
};

#define PRODUCER_WINDOW 700 /* numbers the producer may run ahead */

static void *producer_main(void *arg)
{
    struct producer *pr = arg;
    pthread_mutex_lock(&pr->lock);
    while (pr->made < pr->total) {
        while (pr->made - pr->taken >= PRODUCER_WINDOW) pthread_cond_wait(&pr->room, &pr->lock);
        int64_t step = pr->total - pr->made < 97 ? pr->total - pr->made : 97;
        pr->made += step;
        pthread_mutex_unlock(&pr->lock);
        sl_stage_wake(pr->stage); /* from this thread: the loop's eventfd */
        pthread_mutex_lock(&pr->lock);
    }
    pthread_mutex_unlock(&pr->lock);
    sl_stage_wake(pr->stage);
    return NULL;
}

static const struct sl_option counter_options[] = {
    {"count", SL_OPT_INT, "1000", 0, offsetof(struct t_counter, count), "events to produce"},
    {"batch", SL_OPT_INT, "100", 0, offsetof(struct t_counter, batch), "events per batch"},
    {"pending_every", SL_OPT_INT, "0", 0, offsetof(struct t_counter, pending_every),
     "answer PENDING every N polls"},
    {"wake_thread", SL_OPT_BOOL, "false", 0, offsetof(struct t_counter, wake_thread),
     "produce from a helper thread"},
    {0},
};

static void counter_timer(struct sl_stage *s, void *arg)
{
    (void)arg;
    sl_stage_wake(s);
}

static int counter_start(struct sl_stage *s, struct sl_error *err)
{
    struct t_counter *c = sl_stage_state(s);
    c->last_ack_first = -1;
    if (c->pending_every) c->timer = sl_timer_new(s, counter_timer, NULL);
    if (c->wake_thread) {
        struct producer *pr = calloc(1, sizeof *pr);
        pthread_mutex_init(&pr->lock, NULL);
        pthread_cond_init(&pr->room, NULL);
        pr->total = c->count;
        pr->stage = s;
        c->thread_state = pr;
        if (pthread_create(&pr->thread, NULL, producer_main, pr))
            return sl_error_set(err, SL_ENOMEM, "no thread");
    }
    return 0;
}

static int64_t available(struct t_counter *c)
{
    if (!c->thread_state) return c->count ? c->count - c->next : INT64_MAX;
    struct producer *pr = c->thread_state;
    pthread_mutex_lock(&pr->lock);
    int64_t n = pr->made - c->next;
    pthread_mutex_unlock(&pr->lock);
    return n;
}

static void consumed(struct t_counter *c)
{
    struct producer *pr = c->thread_state;
    if (!pr) return;
    pthread_mutex_lock(&pr->lock);
    pr->taken = c->next;
    pthread_cond_signal(&pr->room);
    pthread_mutex_unlock(&pr->lock);
}

static void fill(struct sl_stage *s, struct sl_batch *b, int64_t n)
{
    struct t_counter *c = sl_stage_state(s);
    for (int64_t i = 0; i < n; i++) {
        struct sl_event *ev = sl_batch_append(b);
        char *text = sl_batch_alloc(b, 24);
        int len = snprintf(text, 24, "%lld", (long long)c->next);
        sl_event_set_payload(ev, text, (size_t)len);
        sl_event_set_origin(ev, sl_stage_name(s), (uint64_t)c->next, -1);
        struct sl_value v = sl_value_int(c->next);
        sl_event_add_field(ev, "n", 1, &v);
        c->next++;
    }
}

static enum sl_poll counter_poll(struct sl_stage *s, struct sl_batch **out)
{
    struct t_counter *c = sl_stage_state(s);
    c->polls++;
    if (!sl__stage_outputs_have_room(s)) c->polls_while_full++;
    if (c->count && c->next >= c->count) return SL_DONE;
    if (c->pending_every && c->polls % c->pending_every == 0) {
        sl_timer_start(c->timer, 1, false);
        return SL_PENDING;
    }
    int64_t n = available(c);
    if (n <= 0) return SL_PENDING; /* the producer thread wakes us */
    if (n > c->batch) n = c->batch;
    struct sl_batch *b = sl_batch_new(s);
    sl_batch_set_cookie(b, (uint64_t)c->next); /* the first number, for counter_ack */
    fill(s, b, n);
    consumed(c);
    *out = b;
    return SL_READY;
}

static void counter_ack(struct sl_stage *s, struct sl_batch *b)
{
    struct t_counter *c = sl_stage_state(s);
    int64_t first = (int64_t)sl_batch_cookie(b);
    if (first <= c->last_ack_first) c->ack_out_of_order = true;
    c->last_ack_first = first;
    c->acked_events += (int64_t)sl_batch_count(b);
    c->acked_batches++;
    if (c->on_ack) c->on_ack(s, b);
}

static void counter_close(struct sl_stage *s)
{
    struct t_counter *c = sl_stage_state(s);
    sl_timer_free(c->timer);
    struct producer *pr = c->thread_state;
    if (pr) {
        pthread_mutex_lock(&pr->lock);
        pr->taken = pr->made = pr->total; /* let it finish */
        pthread_cond_signal(&pr->room);
        pthread_mutex_unlock(&pr->lock);
        pthread_join(pr->thread, NULL);
        pthread_mutex_destroy(&pr->lock);
        pthread_cond_destroy(&pr->room);
        free(pr);
    }
}

const struct sl_stage_type t_counter = {
    .abi = SL_STAGE_ABI,
    .name = "t_counter",
    .kind = SL_SOURCE,
    .doc = "test source counting from 0",
    .state_size = sizeof(struct t_counter),
    .options = counter_options,
    .start = counter_start,
    .poll = counter_poll,
    .ack = counter_ack,
    .close = counter_close,
};

/* ---- t_collect ------------------------------------------------------------------------------ */

static const struct sl_option collect_options[] = {
    {"delay_ms", SL_OPT_INT, "0", 0, offsetof(struct t_collect, delay_ms), "ack after this long"},
    {"fail_at", SL_OPT_INT, "-1", 0, offsetof(struct t_collect, fail_at), "fail on this number"},
    {"stop_after", SL_OPT_INT, "0", 0, offsetof(struct t_collect, stop_after),
     "raise SIGTERM after this many events"},
    {0},
};

static void record(struct t_collect *c, const struct sl_event *ev)
{
    if (c->nseen == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 1024;
        c->seen = realloc(c->seen, c->cap * sizeof *c->seen);
        c->origins = realloc(c->origins, c->cap * sizeof *c->origins);
    }
    const char *o = sl_event_origin(ev);
    c->origins[c->nseen] = strdup(o ? o : "");
    c->seen[c->nseen++] = t_number(ev);
}

static void collect_ack(struct t_collect *c, struct sl_batch *b)
{
    c->acked += (int64_t)sl_batch_count(b);
    c->outstanding--;
    sl_ack(b);
}

static void collect_timer(struct sl_stage *s, void *arg)
{
    (void)arg;
    struct t_collect *c = sl_stage_state(s);
    struct sl_batch *b = c->held;
    c->held = NULL;
    collect_ack(c, b);
    sl_stage_wake(s);
}

static int collect_start(struct sl_stage *s, struct sl_error *err)
{
    (void)err;
    struct t_collect *c = sl_stage_state(s);
    c->timer = sl_timer_new(s, collect_timer, NULL);
    return 0;
}

static enum sl_poll collect_write(struct sl_stage *s, struct sl_batch *b)
{
    struct t_collect *c = sl_stage_state(s);
    c->batches++;
    for (size_t i = 0; i < sl_batch_count(b); i++) {
        const struct sl_event *ev = sl_batch_event_const(b, i);
        if (c->fail_at >= 0 && t_number(ev) == c->fail_at) {
            sl_stage_error(s, SL_EIO, "cannot write event %lld", (long long)c->fail_at);
            return SL_ERROR;
        }
        record(c, ev);
    }
    if (++c->outstanding > c->max_outstanding) c->max_outstanding = c->outstanding;
    if (c->stop_after && !c->raised && (int64_t)c->nseen >= c->stop_after) {
        c->raised = true;
        raise(SIGTERM);
    }
    if (c->delay_ms <= 0) {
        collect_ack(c, b);
        return SL_READY;
    }
    c->held = b;
    sl_timer_start(c->timer, c->delay_ms, false);
    return SL_PENDING;
}

static int collect_flush(struct sl_stage *s, struct sl_emit *out, bool end)
{
    (void)out;
    struct t_collect *c = sl_stage_state(s);
    if (end) c->flushed = true;
    return 0;
}

static void collect_close(struct sl_stage *s)
{
    struct t_collect *c = sl_stage_state(s);
    sl_timer_free(c->timer);
    if (c->held) sl_batch_unref(c->held);
    for (size_t i = 0; i < c->nseen; i++) free(c->origins[i]);
    free(c->origins);
    free(c->seen);
}

const struct sl_stage_type t_collect = {
    .abi = SL_STAGE_ABI,
    .name = "t_collect",
    .kind = SL_SINK,
    .doc = "test sink recording what it gets",
    .state_size = sizeof(struct t_collect),
    .options = collect_options,
    .start = collect_start,
    .write = collect_write,
    .flush = collect_flush,
    .close = collect_close,
};

/* ---- t_pass, t_even -----------------------------------------------------------------------------
 */

static const struct sl_option pass_options[] = {
    {"spin", SL_OPT_INT, "0", 0, offsetof(struct t_pass, spin), "busy-work per event"},
    {"fail_at", SL_OPT_INT, "-1", 0, offsetof(struct t_pass, fail_at), "fail on this number"},
    {"dup", SL_OPT_INT, "1", 0, offsetof(struct t_pass, dup), "copies of each event"},
    {0},
};

static int pass_map(struct sl_stage *s, struct sl_event *ev, struct sl_emit *out)
{
    struct t_pass *t = sl_stage_state(s);
    if (t->spin) {
        volatile uint64_t x = (uint64_t)t_number(ev);
        for (int64_t i = 0; i < t->spin; i++) x = x * 6364136223846793005u + 1442695040888963407u;
    }
    if (t->fail_at >= 0 && t_number(ev) == t->fail_at)
        return sl_stage_error(s, SL_EPARSE, "bad event %lld", (long long)t->fail_at);
    for (int64_t i = 0; i < t->dup; i++)
        if (sl_emit(out, ev)) return SL_ENOMEM;
    return 0;
}

const struct sl_stage_type t_pass = {
    .abi = SL_STAGE_ABI,
    .name = "t_pass",
    .kind = SL_TRANSFORM,
    .doc = "test transform passing events through",
    .flags = SL_STAGE_PARALLEL,
    .state_size = sizeof(struct t_pass),
    .options = pass_options,
    .map = pass_map,
};

static int even_keep(struct sl_stage *s, const struct sl_event *ev, struct sl_error *why)
{
    (void)s, (void)why;
    return t_number(ev) % 2 == 0;
}

const struct sl_stage_type t_even = {
    .abi = SL_STAGE_ABI,
    .name = "t_even",
    .kind = SL_FILTER,
    .doc = "test filter keeping even numbers",
    .flags = SL_STAGE_PARALLEL,
    .keep = even_keep,
};

/* ---- t_window
 * ------------------------------------------------------------------------------------ */

static const struct sl_option window_options[] = {
    {"size", SL_OPT_INT, "10", 0, offsetof(struct t_window, size), "events per window"},
    {0},
};

static int window_init(struct sl_stage *s, const struct sl_config *cfg, struct sl_error *err)
{
    (void)cfg, (void)err;
    struct t_window *w = sl_stage_state(s);
    w->odd_port = sl_stage_add_output(s, "odd");
    return w->odd_port > 0 ? 0 : w->odd_port;
}

static int window_emit(struct sl_stage *s, struct sl_emit *out)
{
    struct t_window *w = sl_stage_state(s);
    struct sl_event *ev = sl_emit_new(out);
    char *text = sl_event_alloc(ev, 24);
    int len = snprintf(text, 24, "%lld", (long long)w->sum);
    sl_event_set_payload(ev, text, (size_t)len);
    for (size_t i = 0; i < w->nheld; i++) {
        sl_emit_hold(out, w->held[i]); /* acked upstream only when this sum is */
        sl_batch_unref(w->held[i]);
    }
    w->nheld = 0;
    w->sum = 0;
    w->n = 0;
    return sl_emit(out, ev);
}

static int window_map(struct sl_stage *s, struct sl_event *ev, struct sl_emit *out)
{
    struct t_window *w = sl_stage_state(s);
    struct sl_batch *in = sl_emit_input(out);
    if (w->nheld == 0 || w->held[w->nheld - 1] != in) {
        if (w->nheld == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 8;
            w->held = realloc(w->held, w->cap * sizeof *w->held);
        }
        sl_batch_ref(in);
        w->held[w->nheld++] = in;
    }
    int64_t n = t_number(ev);
    if (n % 2 && sl_emit_to(out, w->odd_port, ev)) return SL_ENOMEM;
    w->sum += n;
    if (++w->n == w->size) return window_emit(s, out);
    return 0;
}

static int window_flush(struct sl_stage *s, struct sl_emit *out, bool end)
{
    struct t_window *w = sl_stage_state(s);
    if (end && w->n) return window_emit(s, out);
    return 0;
}

static void window_close(struct sl_stage *s)
{
    struct t_window *w = sl_stage_state(s);
    for (size_t i = 0; i < w->nheld; i++) sl_batch_unref(w->held[i]);
    free(w->held);
}

const struct sl_stage_type t_window = {
    .abi = SL_STAGE_ABI,
    .name = "t_window",
    .kind = SL_TRANSFORM,
    .doc = "test transform summing windows of events",
    .state_size = sizeof(struct t_window),
    .options = window_options,
    .init = window_init,
    .map = window_map,
    .flush = window_flush,
    .close = window_close,
};

/* ---- utilities
 * ------------------------------------------------------------------------------------ */

struct sl_registry *t_registry(void)
{
    struct sl_registry *reg = sl_registry_new();
    const struct sl_stage_type *types[] = {&t_counter, &t_collect, &t_pass, &t_even, &t_window};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        cr_assert_eq(sl_registry_add(reg, types[i], NULL), 0);
    return reg;
}

struct sl_config *t_config(const char *text)
{
    struct sl_error err = {0};
    struct sl_config *c = sl_config_parse(text, strlen(text), "test.yaml", &err);
    cr_assert_not_null(c, "config: %s", err.msg);
    return c;
}

struct sl_stage *t_add(struct sl_pipeline *p, const char *name, const struct sl_stage_type *type,
                       const char *yaml)
{
    struct sl_error err = {0};
    struct sl_config *cfg = yaml ? t_config(yaml) : NULL;
    struct sl_stage *s = sl_pipeline_add(p, name, type, cfg, &err);
    sl_config_free(cfg);
    cr_assert_not_null(s, "add %s: %s", name, err.msg);
    return s;
}

void t_connect(struct sl_pipeline *p, struct sl_stage *from, struct sl_stage *to)
{
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_connect(p, from, NULL, to, &err), 0, "connect: %s", err.msg);
}

int64_t t_number(const struct sl_event *ev)
{
    size_t len;
    const char *p = sl_event_payload(ev, &len);
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) v = v * 10 + (p[i] - '0');
    return v;
}

static long status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0) v = strtol(line + kl, NULL, 10);
    if (f) fclose(f);
    return v;
}

long t_rss_kib(void)
{
    return status_kib("VmRSS:");
}

long t_peak_rss_kib(void)
{
    return status_kib("VmHWM:");
}

struct t_batch_fixture t_fx;

void t_fx_setup(void)
{
    struct sl_error err = {0};
    t_fx.p = sl_pipeline_new(NULL, NULL, &err);
    cr_assert_not_null(t_fx.p, "%s", err.msg);
    t_fx.b = sl_batch_new(t_add(t_fx.p, "src", &t_counter, NULL));
    cr_assert_not_null(t_fx.b);
}

void t_fx_teardown(void)
{
    sl_batch_unref(t_fx.b);
    cr_assert_eq(sl_pipeline_live_batches(t_fx.p), 0);
    sl_pipeline_free(t_fx.p);
}
