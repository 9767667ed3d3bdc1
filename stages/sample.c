/* sample: keeps a share of the events, counting the rest as dropped on purpose (so that
 * metrics show what was thinned out). `rate: N` keeps one event in N, `ratio: 0.05` keeps
 * that fraction; both are deterministic (the same input keeps the same events). With
 * `key`, the choice is made per key instead of per event, from a hash of the key's
 * values, so that all the events of one key (a trace, a user, a request) are kept or
 * dropped together. */
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

#define ONE (1ull << 32) /* fixed-point 1.0 of the ratio accumulator */

struct sample {
    int64_t rate;       /* option: keep one in rate; 0 when unset */
    double ratio;       /* option: fraction to keep */
    struct sl_list key; /* option: fields whose values make the key */
    bool by_ratio;      /* `ratio` given (else `rate`) */
    uint64_t seen;      /* events looked at (rate without key) */
    uint64_t acc;       /* ratio without key: fixed-point accumulator */
    uint64_t step;      /* ratio * ONE */
    uint64_t threshold; /* ratio with key: keep hashes below it */
};

static bool choose(struct sample *sm, const struct sl_event *ev)
{
    if (sm->key.n) {
        uint64_t h = sl__stage_key_of(ev, &sm->key).h1;
        return sm->by_ratio ? h < sm->threshold : h % (uint64_t)sm->rate == 0;
    }
    if (!sm->by_ratio) return sm->seen++ % (uint64_t)sm->rate == 0;
    sm->acc += sm->step; /* an even spread: one kept each time the sum passes 1.0 */
    if (sm->acc < ONE) return false;
    sm->acc -= ONE;
    return true;
}

static int sample_keep(struct sl_stage *s, const struct sl_event *ev, struct sl_error *why)
{
    (void)why;
    bool keep = choose(sl_stage_state(s), ev);
    if (!keep) sl_stage_count_dropped(s, 1);
    return keep;
}

static int sample_init(struct sl_stage *s, const struct sl_config *cfg, struct sl_error *err)
{
    struct sample *sm = sl_stage_state(s);
    const struct sl_config *rate = cfg ? sl_config_get(cfg, "rate") : NULL;
    const struct sl_config *ratio = cfg ? sl_config_get(cfg, "ratio") : NULL;
    if (!rate == !ratio)
        return sl_config_error(ratio ? ratio : cfg, err, SL_ECONFIG,
                               rate ? "give either 'rate' or 'ratio', not both"
                                    : "missing option 'rate' or 'ratio' (type 'sample' needs one: "
                                      "keep one event in N, or a fraction of the events)");
    if (rate && sm->rate < 1)
        return sl_error_set(err, SL_ECONFIG, "option 'rate' must be 1 or more");
    if (ratio && !(sm->ratio >= 0 && sm->ratio <= 1))
        return sl_config_error(ratio, err, SL_ECONFIG, "option 'ratio' must be from 0 to 1");
    sm->by_ratio = ratio != NULL;
    sm->step = (uint64_t)(sm->ratio * (double)ONE + 0.5);
    sm->acc = ONE - sm->step; /* so that the first event is kept, as with `rate` */
    sm->threshold = sm->ratio >= 1 ? UINT64_MAX : (uint64_t)(sm->ratio * 18446744073709551616.0);
    return 0;
}

static const struct sl_option sample_options[] = {
    {"rate", SL_OPT_INT, NULL, 0, offsetof(struct sample, rate),
     "keep one event in this many, e.g. 10 keeps 10% (the first of every 10, or one key in 10)"},
    {"ratio", SL_OPT_FLOAT, NULL, 0, offsetof(struct sample, ratio),
     "instead of rate: the fraction of events (or of keys) to keep, from 0 to 1"},
    {"key", SL_OPT_LIST, NULL, 0, offsetof(struct sample, key),
     "field or fields (paths) whose values choose together: all events of one key are kept or "
     "dropped alike; unset: each event on its own"},
    {0},
};

const struct sl_stage_type sl_stage_sample = {
    .abi = SL_STAGE_ABI,
    .name = "sample",
    .kind = SL_FILTER,
    .doc = "keeps one event in N, or a fraction, optionally by key; counts the rest as dropped",
    .state_size = sizeof(struct sample),
    .options = sample_options,
    .init = sample_init,
    .keep = sample_keep,
};
