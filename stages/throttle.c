/* throttle: lets at most `rate` events per `window` through for each key (all events
 * when no key is given); the excess is dropped (counted) or sent to output
 * "dead_letter". Windows are fixed and aligned to multiples of `window` on the chosen
 * clock (with `clock: event` and `window: 1m`, minutes of event time). Keys are
 * remembered in a table of `max_keys` entries allocated once (least recently used keys
 * are forgotten first: such a key starts a fresh window); a key is its 128-bit hash, so
 * two keys share a budget only with a probability of about 2^-128. */
#include <stddef.h>

#include "internal.h"

struct throttle {
    int64_t rate;                   /* option: events per window and key */
    int64_t window_ms;              /* option window */
    struct sl_list key;             /* option: key fields */
    int64_t max_keys;               /* option: keys remembered */
    int clock;                      /* option: enum sl__stage_clock */
    struct sl__stage_errors excess; /* option on_excess, dead-letter port */
    struct sl__stage_lru keys;      /* per-key windows: time = start, count = events let in */
};

static int throttle_map(struct sl_stage *s, struct sl_event *ev, struct sl_emit *out)
{
    struct throttle *t = sl_stage_state(s);
    struct sl__stage_key k = {0, 0}; /* no key: one budget for every event */
    if (t->key.n) k = sl__stage_key_of(ev, &t->key);
    int64_t now = sl__stage_clock_ms(s, ev, t->clock);
    int64_t start = now - (now % t->window_ms + t->window_ms) % t->window_ms; /* floor */
    struct sl__stage_lru_entry *e = sl__stage_lru_find(&t->keys, k);
    if (!e) {
        bool evicted;
        e = sl__stage_lru_add(&t->keys, k, &evicted);
        e->time = start;
    }
    if (e->time != start) { /* another window (a late event's one too: it counts afresh) */
        e->time = start;
        e->count = 0;
    }
    if (e->count >= t->rate)
        return sl__stage_divert(s, &t->excess, ev, out, "throttled: over %lld events in %lld ms",
                                (long long)t->rate, (long long)t->window_ms);
    e->count++;
    return sl_emit(out, ev) ? sl_stage_error(s, SL_ENOMEM, "out of memory") : 0;
}

static int throttle_init(struct sl_stage *s, const struct sl_config *cfg, struct sl_error *err)
{
    struct throttle *t = sl_stage_state(s);
    if (t->rate < 1)
        return sl_config_error(sl_config_get(cfg, "rate"), err, SL_ECONFIG,
                               "option 'rate' must be 1 or more");
    if (t->window_ms < 1)
        return sl_config_error(sl_config_get(cfg, "window"), err, SL_ECONFIG,
                               "option 'window' must be at least 1ms");
    if (t->max_keys < 1 || t->max_keys > (1 << 26))
        return sl_config_error(sl_config_get(cfg, "max_keys"), err, SL_ECONFIG,
                               "option 'max_keys' must be from 1 to 67108864");
    if (sl__stage_lru_init(&t->keys, (uint32_t)(t->key.n ? t->max_keys : 1)))
        return sl_error_set(err, SL_ENOMEM, "out of memory for %lld keys", (long long)t->max_keys);
    if (sl_stage_declare_fields(s, SL_FIELDS_ADD, NULL, 0)) /* passes events on as they are */
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    return sl__stage_errors_init(s, &t->excess, err);
}

static void throttle_close(struct sl_stage *s)
{
    struct throttle *t = sl_stage_state(s);
    sl__stage_lru_free(&t->keys);
}

static const struct sl_option throttle_options[] = {
    {"rate", SL_OPT_INT, NULL, SL_REQUIRED, offsetof(struct throttle, rate),
     "events let through per window for each key"},
    {"window", SL_OPT_DURATION, "1s", 0, offsetof(struct throttle, window_ms),
     "length of a window; windows are aligned to multiples of it on the clock"},
    {"key", SL_OPT_LIST, NULL, 0, offsetof(struct throttle, key),
     "field or fields (paths) whose values make the key, e.g. [service, host]; unset: one "
     "budget for all events"},
    {"max_keys", SL_OPT_INT, "100000", 0, offsetof(struct throttle, max_keys),
     "keys remembered at once (about 48 bytes each, allocated at start); the least recently "
     "seen key is forgotten first"},
    {"clock", SL_OPT_ENUM, "processing", 0, offsetof(struct throttle, clock),
     "processing: windows in the time events arrive; event: in the events' own times",
     SL__STAGE_CLOCK_CHOICES},
    {"on_excess", SL_OPT_ENUM, "drop", 0, offsetof(struct throttle, excess.mode),
     "what to do with the excess: drop (counted) or dead_letter (sent to output 'dead_letter' "
     "with the reason in field 'error')",
     SL__STAGE_DIVERT_CHOICES},
    {0},
};

const struct sl_stage_type sl_stage_throttle = {
    .abi = SL_STAGE_ABI,
    .name = "throttle",
    .kind = SL_TRANSFORM,
    .doc = "let at most N events per window through, per key; drop or dead-letter the excess",
    .state_size = sizeof(struct throttle),
    .options = throttle_options,
    .init = throttle_init,
    .map = throttle_map,
    .close = throttle_close,
};
