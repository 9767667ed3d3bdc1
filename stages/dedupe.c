/* dedupe: drops (or dead-letters) an event whose key was seen recently. The key is the
 * values of `fields`, or the whole payload. Recent keys are kept in an LRU table of
 * `cache_size` entries allocated once, and for at most `max_age` when it is set (a key
 * seen again later counts as new, and is remembered afresh). A key is its 128-bit hash:
 * two different keys are taken for each other with a probability of about 2^-128. */
#include <stddef.h>

#include "internal.h"

struct dedupe {
    struct sl_list fields;       /* option: key fields; none: the payload */
    int64_t cache_size;          /* option: keys remembered */
    int64_t max_age_ms;          /* option max_age; 0: no limit */
    int clock;                   /* option: enum sl__stage_clock */
    struct sl__stage_errors dup; /* option on_duplicate, dead-letter port */
    struct sl__stage_lru seen;   /* recent keys: time = first seen */
};

static int dedupe_map(struct sl_stage *s, struct sl_event *ev, struct sl_emit *out)
{
    struct dedupe *d = sl_stage_state(s);
    struct sl__stage_key k = sl__stage_key_of(ev, &d->fields);
    int64_t now = d->max_age_ms ? sl__stage_clock_ms(s, ev, d->clock) : 0;
    struct sl__stage_lru_entry *e = sl__stage_lru_find(&d->seen, k);
    if (e && (!d->max_age_ms || (now - e->time < d->max_age_ms && now >= e->time)))
        return sl__stage_divert(s, &d->dup, ev, out, "duplicate");
    if (!e) {
        bool evicted;
        e = sl__stage_lru_add(&d->seen, k, &evicted);
    }
    e->time = now;
    return sl_emit(out, ev) ? sl_stage_error(s, SL_ENOMEM, "out of memory") : 0;
}

static int dedupe_init(struct sl_stage *s, const struct sl_config *cfg, struct sl_error *err)
{
    struct dedupe *d = sl_stage_state(s);
    if (d->cache_size < 1 || d->cache_size > (1 << 26))
        return sl_config_error(sl_config_get(cfg, "cache_size"), err, SL_ECONFIG,
                               "option 'cache_size' must be from 1 to 67108864");
    if (d->max_age_ms < 0)
        return sl_config_error(sl_config_get(cfg, "max_age"), err, SL_ECONFIG,
                               "option 'max_age' must not be negative");
    if (sl__stage_lru_init(&d->seen, (uint32_t)d->cache_size))
        return sl_error_set(err, SL_ENOMEM, "out of memory for %lld keys",
                            (long long)d->cache_size);
    if (sl_stage_declare_fields(s, SL_FIELDS_ADD, NULL, 0)) /* passes events on as they are */
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    return sl__stage_errors_init(s, &d->dup, err);
}

static void dedupe_close(struct sl_stage *s)
{
    struct dedupe *d = sl_stage_state(s);
    sl__stage_lru_free(&d->seen);
}

static const struct sl_option dedupe_options[] = {
    {"fields", SL_OPT_LIST, NULL, 0, offsetof(struct dedupe, fields),
     "field or fields (paths) whose values make the key, e.g. [request_id]; unset: the whole "
     "payload"},
    {"cache_size", SL_OPT_INT, "10000", 0, offsetof(struct dedupe, cache_size),
     "recent keys remembered (about 48 bytes each, allocated at start); the least recently "
     "seen is forgotten first"},
    {"max_age", SL_OPT_DURATION, "0", 0, offsetof(struct dedupe, max_age_ms),
     "how long a key is remembered after it was first let through; 0: as long as it stays "
     "in the cache"},
    {"clock", SL_OPT_ENUM, "processing", 0, offsetof(struct dedupe, clock),
     "what max_age counts in: processing time, or the events' own times (event)",
     SL__STAGE_CLOCK_CHOICES},
    {"on_duplicate", SL_OPT_ENUM, "drop", 0, offsetof(struct dedupe, dup.mode),
     "what to do with a duplicate: drop (counted) or dead_letter (sent to output "
     "'dead_letter' with field error: \"duplicate\")",
     SL__STAGE_DIVERT_CHOICES},
    {0},
};

const struct sl_stage_type sl_stage_dedupe = {
    .abi = SL_STAGE_ABI,
    .name = "dedupe",
    .kind = SL_TRANSFORM,
    .doc = "drop events whose key was seen recently (LRU of keys, bounded by size and age)",
    .state_size = sizeof(struct dedupe),
    .options = dedupe_options,
    .init = dedupe_init,
    .map = dedupe_map,
    .close = dedupe_close,
};
