/* Running a transform or filter over one batch, and where its output goes.
 *
 * A transform's outputs are new batches, one per output port, that copy the events
 * (about 90 bytes each) but not the bytes they point to: each output holds its input as
 * a parent. A filter whose input nobody else holds compacts the batch in place. This
 * file runs on the loop thread, or on a worker for `workers: N` stages; linking and
 * pushing (sl__emit_finish) is loop-thread only. */
#include <stdlib.h>
#include <string.h>

#include "runtime/internal.h"

void sl__emit_init(struct sl_emit *e, struct sl_stage *s, struct sl_batch *in,
                   struct sl_batch **outs)
{
    memset(e, 0, sizeof *e);
    e->stage = s;
    e->in = in;
    e->in_n = in ? in->n : 0;
    e->in_bytes = in ? in->bytes : 0;
    e->out = outs;
    memset(outs, 0, s->nports * sizeof *outs);
}

static struct sl_batch *out_batch(struct sl_emit *e, int port)
{
    struct sl_batch *b = e->out[port];
    if (b) return b;
    b = sl__batch_get(&e->stage->p->batches);
    if (!b) return NULL;
    if (sl__batch_reserve(b, e->in ? e->in->n : 64)) {
        /* Not linked to anything yet: hand it back through the normal path later. */
        e->out[port] = b;
        return NULL;
    }
    e->out[port] = b;
    return b;
}

int sl__emit_arena(struct sl_emit *e)
{
    return out_batch(e, 0) ? 0 : SL_ENOMEM;
}

/* A map emitted more events than it has read: writing on in place would overwrite
 * events not read yet, so what was written moves to an output batch of its own. */
static int spill(struct sl_emit *e)
{
    struct sl_batch *in = e->in, *o = sl__batch_get(&e->stage->p->batches);
    if (!o) return SL_ENOMEM;
    if (sl__batch_reserve(o, in->n + 1)) {
        sl__batch_release(o);
        return SL_ENOMEM;
    }
    memcpy(o->events, in->events, e->w * sizeof *o->events);
    for (uint32_t i = 0; i < e->w; i++) o->events[i].batch = o;
    o->n = e->w;
    o->bytes = e->wbytes;
    e->out[0] = o;
    e->in_place = false; /* `in` becomes o's parent, and is released as an input */
    return 0;
}

/* Writes `ev` into the slot of `in` that was read already. */
static void emit_in_place(struct sl_emit *e, const struct sl_event *ev)
{
    struct sl_event *slot = &e->in->events[e->w++];
    if (slot != ev) *slot = *ev;
    slot->batch = e->in;
    e->wbytes += ev->payload_len;
    if (ev != slot && ev->fields_home == ev->batch) ((struct sl_event *)ev)->fields_home = NULL;
}

/* Appends a copy of `ev` to output `port` (not in place); the copy shares `ev`'s field
 * array until it changes a field (copy on write). Returns the copy, or NULL. */
static struct sl_event *copy_out(struct sl_emit *e, int port, const struct sl_event *ev)
{
    struct sl_batch *b = out_batch(e, port);
    if (!b || (b->n == b->cap && sl__batch_reserve(b, b->n + 1))) return NULL;
    struct sl_event *slot = &b->events[b->n++];
    *slot = *ev;
    slot->batch = b;
    b->bytes += ev->payload_len;
    return slot;
}

int sl_emit_to(struct sl_emit *e, int port, const struct sl_event *ev)
{
    if (port < 0 || (uint32_t)port >= e->stage->nports) return SL_EINVAL;
    if (port == 0 && e->in_place) {
        if (e->w <= e->r) {
            emit_in_place(e, ev);
            return 0;
        }
        if (spill(e)) return SL_ENOMEM;
    }
    if (!copy_out(e, port, ev)) return SL_ENOMEM;
    /* The copy now owns a field array the source event (the stage's own writable copy)
     * also points at: make the source copy on its next change, so that emitting one
     * event twice gives two independent events. */
    if (ev->fields_home == ev->batch) ((struct sl_event *)ev)->fields_home = NULL;
    return 0;
}

int sl_emit(struct sl_emit *e, const struct sl_event *ev)
{
    return sl_emit_to(e, 0, ev);
}

struct sl_event *sl_emit_new(struct sl_emit *e)
{
    if (sl__emit_arena(e)) return NULL;
    sl__event_init(&e->fresh, e->out[0]);
    return &e->fresh;
}

int sl_emit_ack_set(struct sl_emit *e, struct sl_ack_set *set)
{
    if (!e->acks && !(e->acks = sl_ack_set_new())) return SL_ENOMEM;
    return sl__ack_set_move(e->acks, set);
}

struct sl_batch *sl_emit_input(struct sl_emit *e)
{
    return e->in;
}

void sl_emit_hold(struct sl_emit *e, struct sl_batch *b)
{
    if (e->nheld == e->held_cap) {
        uint32_t cap = e->held_cap ? e->held_cap * 2 : 8;
        struct sl_batch **nh = realloc(e->held, cap * sizeof *nh);
        if (!nh) {
            e->failed = true; /* reported by sl__emit_finish: never ack too early */
            return;
        }
        e->held = nh;
        e->held_cap = cap;
    }
    b->refs++;
    e->held[e->nheld++] = b;
}

/* ---- running map/keep ------------------------------------------------------------------ */

/* One slice of map() over `in`, from event e->next on (0 at the start of a batch), in
 * spans between two looks at the clock. Returns 0 when the batch is through,
 * SL__PAUSED when the slice was spent, or the stage's error. */
static int run_map(struct sl_stage *s, struct sl_batch *in, struct sl_emit *e,
                   struct sl__slice *slice)
{
    if (e->next == 0) {
        if (e->in_place)
            e->out[0] = in; /* new values go to its arena, events to its slots */
        else if (sl__emit_arena(e))
            return sl_stage_error(s, SL_ENOMEM, "out of memory");
        e->arena = e->out[0];
    }
    int (*map)(struct sl_stage *, struct sl_event *, struct sl_emit *) = s->type->map;
    struct sl_batch *arena = e->arena;
    uint32_t n = in->n, i = e->next;
    while (i < n) {
        for (uint32_t end = sl__slice_span(slice, i, n); i < end; i++) {
            e->r = i;
            e->scratch = in->events[i];
            e->scratch.batch = arena;
            int rc = map(s, &e->scratch, e);
            if (rc < 0) return rc;
        }
        if (i < n && sl__slice_check(slice)) return e->next = i, SL__PAUSED;
    }
    if (e->in_place) {
        in->n = e->w;
        in->bytes = e->wbytes;
    }
    return 0;
}

int sl__emit_dead_letter(struct sl_emit *e, const struct sl_event *ev, const char *msg)
{
    struct sl_stage *s = e->stage;
    sl_stage_count_errors(s, 1);
    if (s->dl_port < 0) { /* on_error: drop */
        sl_stage_count_dropped(s, 1);
        return 0;
    }
    /* A copy, and `ev` untouched: it may be an event of a batch other branches read. */
    struct sl_event *copy = copy_out(e, s->dl_port, ev);
    if (!copy || sl_event_set_error(copy, msg, strlen(msg)))
        return sl_stage_error(s, SL_ENOMEM, "out of memory");
    return 0;
}

/* A filter could not evaluate `ev` (keep() answered `rc` < 0): the stage's on_error. */
static int keep_failed(struct sl_emit *e, const struct sl_event *ev, int rc,
                       const struct sl_error *why)
{
    const char *msg = why->code && why->msg[0] ? why->msg : sl_strerror(rc);
    if (e->stage->conf.on_error == SL__ON_ERROR_FAIL)
        return sl_stage_error(e->stage, rc, "%s", msg);
    return sl__emit_dead_letter(e, ev, msg);
}

/* Tests event `r` of `in`: 1 keep, 0 drop, < 0 a failure of the stage. An event the
 * filter cannot evaluate goes to on_error here; `why` is left cleared for the next. */
static inline int test_one(struct sl_stage *s, struct sl_emit *e, struct sl_event *ev,
                           struct sl_error *why)
{
    int k = s->type->keep(s, ev, why);
    if (k >= 0) return k;
    k = keep_failed(e, ev, k, why);
    why->code = 0;
    why->msg[0] = '\0';
    return k;
}

/* One slice of keep() over `in`, from event e->next on; returns as run_map. */
static int run_keep(struct sl_stage *s, struct sl_batch *in, struct sl_emit *e,
                    struct sl__slice *slice)
{
    struct sl_error why; /* filled by keep() only when it fails */
    why.size = 0;
    why.code = 0;
    why.msg[0] = '\0';
    uint32_t n = in->n, r = e->next, w = e->w;
    uint64_t bytes = e->wbytes;
    if (e->in_place) e->out[0] = in; /* nobody else sees `in`: compact it */
    while (r < n) {
        for (uint32_t end = sl__slice_span(slice, r, n); r < end; r++) {
            /* pruned: the stage before proved the condition false (sl_event_prune) */
            int k = in->events[r].flags & SL__EV_PRUNED ? 0 : test_one(s, e, &in->events[r], &why);
            if (k <= 0) {
                if (k < 0) return k;
                continue;
            }
            if (!e->in_place) { /* `in` may be read by other branches: copy what is kept */
                if (!copy_out(e, 0, &in->events[r]))
                    return sl_stage_error(s, SL_ENOMEM, "out of memory");
                continue;
            }
            if (w != r) in->events[w] = in->events[r];
            bytes += in->events[w++].payload_len;
        }
        if (r < n && sl__slice_check(slice)) {
            e->next = r, e->w = w, e->wbytes = bytes;
            return SL__PAUSED;
        }
    }
    if (e->in_place) {
        in->n = w;
        in->bytes = bytes;
    }
    return 0;
}

int sl__stage_process(struct sl_stage *s, struct sl_batch *in, struct sl_emit *e,
                      struct sl__slice *slice)
{
    if (s->type->kind == SL_FILTER) return run_keep(s, in, e, slice);
    return run_map(s, in, e, slice);
}

/* ---- linking and pushing (loop thread) -------------------------------------------------- */

/* Makes `b` depend on everything its events may point into. */
static int link_output(struct sl_emit *e, int port, struct sl_batch *b)
{
    int rc = 0;
    if (e->in && b != e->in) rc |= sl__batch_add_parent(b, e->in);
    if (port > 0 && e->out[0]) rc |= sl__batch_add_parent(b, e->out[0]);
    for (uint32_t i = 0; i < e->nheld; i++) /* a batch is never its own parent */
        if (e->held[i] != b) rc |= sl__batch_add_parent(b, e->held[i]);
    if (e->acks) rc |= sl__ack_set_copy_to(e->acks, b);
    return rc;
}

/* Port 0's batch `b` goes to the next stage of a chain rather than to a queue, counted
 * as it was before that stage (which may have compacted it in place) ran over it. */
static void hand_off(struct sl_emit *e, struct sl_batch *b, struct sl_batch **handoff)
{
    struct sl_stage *s = e->stage;
    s->st.events_out += e->handoff_n;
    s->st.bytes_out += e->handoff_bytes;
    s->st.batches_out++;
    if (s->taps && e->handoff_intact) sl__tap_batch(s, 0, b);
    *handoff = b;
}

int sl__emit_finish(struct sl_emit *e, bool push)
{
    return sl__emit_finish_to(e, push, NULL);
}

int sl__emit_finish_to(struct sl_emit *e, bool push, struct sl_batch **handoff)
{
    struct sl_stage *s = e->stage;
    int rc = e->failed ? SL_ENOMEM : 0;
    uint32_t nports = s->nports;
    for (uint32_t port = 0; port < nports; port++)
        if (e->out[port] && link_output(e, (int)port, e->out[port])) rc = SL_ENOMEM;
    for (uint32_t i = 0; i < e->nheld; i++) sl__batch_release(e->held[i]);
    free(e->held);
    e->held = NULL;
    e->nheld = 0;
    /* The outputs hold the moved acks now (or there are none and the acks go ahead). */
    sl_ack_set_free(e->acks);
    e->acks = NULL;
    if (e->in) {
        s->st.events_in += e->in_n;
        s->st.bytes_in += e->in_bytes;
        s->st.batches_in++;
    }
    /* In place, the input is out[0] and goes with the outputs; unless the batch was never
     * run (a job dropped from the workers' queue): then it is only the input. */
    bool release_in = e->in && (!e->in_place || e->out[0] != e->in);
    /* Port 0 last: other ports may hold it as the arena of their values. */
    if (handoff) *handoff = NULL;
    for (uint32_t k = nports; k-- > 0;) {
        struct sl_batch *b = e->out[k];
        if (!b) continue;
        e->out[k] = NULL;
        if (k == 0 && handoff && push && !rc && e->handoff_n)
            hand_off(e, b, handoff);
        else if (!push || rc || b->n == 0)
            sl__batch_release(b);
        else
            sl__push_port(s, (int)k, b);
    }
    if (release_in) sl__batch_release(e->in);
    return rc;
}
