/* Taps (include/sluice/observe.h): copies, as JSON text, of the events leaving one
 * output of a stage, in a bounded ring that a reader on the loop thread drains.
 *
 * The copy is made where a batch leaves the stage (sl__push_port, and the hand-off of a
 * chain of `workers` stages), on the loop thread, so the ring needs no lock. The stage
 * never waits for a reader: an event that finds the ring full (in events or bytes) is
 * dropped and counted. A stage without taps pays the test of s->taps per batch. Events
 * that a `workers` chain passes from one stage to the next are tapped only when the next
 * stage did not run over them in place: while a tap is open on port 0 the chain does
 * not (s->tap0), and batches whose job ran before the tap opened are not seen. */
#include <stdlib.h>
#include <string.h>

#include <sluice/json.h>
#include <sluice/observe.h>

#include "runtime/internal.h"

enum {
    DEFAULT_EVENTS = 1024,   /* capacity_events 0 */
    DEFAULT_BYTES = 4 << 20, /* capacity_bytes 0 */
    STACK_LINE = 4096,       /* a line that fits is written without measuring first */
};

struct tap_line {
    char *json; /* owned */
    size_t len; /* bytes */
};

struct sl_tap {
    struct sl_stage *s;      /* the tapped stage */
    int port;                /* its output */
    struct sl_tap *next;     /* in s->taps */
    struct sl_tap_options o; /* as opened, defaults filled */
    struct tap_line *ring;   /* o.capacity_events slots */
    uint32_t head, count;    /* oldest slot, lines held */
    uint64_t bytes;          /* JSON bytes held */
    uint64_t matched, dropped;
    char *taken; /* the line sl_tap_next returned last (owned) */
};

/* Checks the arguments of sl_pipeline_tap_open; returns the port index or < 0. */
static int tap_port(struct sl_stage *s, const char *port, const struct sl_tap_options *opts,
                    struct sl_error *err)
{
    if (opts && opts->size < offsetof(struct sl_tap_options, wake_arg) + sizeof(void *))
        return sl_error_set(err, SL_EINVAL, "tap options: size too small (zero-fill, set size)");
    int i = s->type->kind == SL_SINK ? -1 : sl_stage_output(s, port ? port : "");
    if (i < 0)
        return sl_error_set(err, SL_ENOTFOUND, "stage '%s' has no output '%s'", s->name,
                            port ? port : "");
    return i;
}

struct sl_tap *sl_pipeline_tap_open(struct sl_pipeline *p, struct sl_stage *s, const char *port,
                                    const struct sl_tap_options *opts, struct sl_error *err)
{
    (void)p;
    int i = tap_port(s, port, opts, err);
    if (i < 0) return NULL;
    struct sl_tap *t = calloc(1, sizeof *t);
    if (t && opts) memcpy(&t->o, opts, sizeof t->o);
    if (t && !t->o.capacity_events) t->o.capacity_events = DEFAULT_EVENTS;
    if (t && !t->o.capacity_bytes) t->o.capacity_bytes = DEFAULT_BYTES;
    if (!t || !(t->ring = calloc(t->o.capacity_events, sizeof *t->ring))) {
        free(t);
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    t->s = s;
    t->port = i;
    t->next = s->taps;
    s->taps = t;
    if (i == 0) atomic_fetch_add(&s->tap0, 1);
    return t;
}

static void drop_lines(struct sl_tap *t)
{
    while (t->count) {
        free(t->ring[t->head].json);
        t->head = (t->head + 1) % t->o.capacity_events;
        t->count--;
    }
    free(t->taken);
    t->taken = NULL;
}

void sl_tap_close(struct sl_tap *t)
{
    if (!t) return;
    for (struct sl_tap **pp = &t->s->taps; *pp; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    if (t->port == 0) atomic_fetch_sub(&t->s->tap0, 1);
    drop_lines(t);
    free(t->ring);
    free(t);
}

void sl__taps_free(struct sl_stage *s)
{
    while (s->taps) sl_tap_close(s->taps);
}

bool sl_tap_next(struct sl_tap *t, const char **json, size_t *len)
{
    free(t->taken);
    t->taken = NULL;
    if (!t->count) return false;
    struct tap_line *l = &t->ring[t->head];
    t->head = (t->head + 1) % t->o.capacity_events;
    t->count--;
    t->bytes -= l->len;
    t->taken = l->json;
    *json = l->json;
    *len = l->len;
    return true;
}

void sl_tap_counts(const struct sl_tap *t, uint64_t *matched, uint64_t *dropped)
{
    if (matched) *matched = t->matched;
    if (dropped) *dropped = t->dropped;
}

size_t sl_tap_pending(const struct sl_tap *t)
{
    return t->count;
}

/* Copies `ev` into the ring as one line, or counts it dropped; true when it was kept. */
static bool keep(struct sl_tap *t, const struct sl_event *ev)
{
    char stack[STACK_LINE];
    if (t->count == t->o.capacity_events) return false;
    size_t n = sl_event_write_json(ev, stack, sizeof stack);
    if (t->count && t->bytes + n > t->o.capacity_bytes) return false;
    char *line = malloc(n + 1);
    if (!line) return false;
    if (n <= sizeof stack)
        memcpy(line, stack, n);
    else
        sl_event_write_json(ev, line, n);
    line[n] = '\0';
    /* Raw newlines can only be whitespace between tokens (a string holds them escaped):
     * a line of its own per event. */
    for (char *c = memchr(line, '\n', n); c; c = memchr(c, '\n', n - (size_t)(c - line))) *c = ' ';
    t->ring[(t->head + t->count) % t->o.capacity_events] = (struct tap_line){line, n};
    t->count++;
    t->bytes += n;
    return true;
}

void sl__tap_batch(struct sl_stage *s, int port, const struct sl_batch *b)
{
    for (struct sl_tap *t = s->taps; t; t = t->next) {
        if (t->port != port) continue;
        uint32_t kept = 0;
        for (uint32_t i = 0; i < b->n; i++) {
            const struct sl_event *ev = &b->events[i];
            if (t->o.match && !t->o.match(t->o.match_arg, ev)) continue;
            t->matched++;
            if (keep(t, ev))
                kept++;
            else
                t->dropped++;
        }
        if (kept && t->o.wake) t->o.wake(t->o.wake_arg, t);
    }
}
