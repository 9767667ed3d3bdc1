/* The `sample` filter: keeps the first of every `rate` events, counting the rest as
 * dropped on purpose, so that metrics show what was thinned out. */
#include <stddef.h>

#include "sample.h"

struct sample {
    int64_t rate; /* option: keep 1 in rate */
    int64_t seen; /* events looked at */
};

static const struct sl_option sample_options[] = {
    {"rate", SL_OPT_INT, NULL, SL_REQUIRED, offsetof(struct sample, rate),
     "keep one event in this many, e.g. 10 keeps 10%"},
    {0},
};

static int sample_init(struct sl_stage *s, const struct sl_config *cfg, struct sl_error *err)
{
    (void)cfg;
    struct sample *sm = sl_stage_state(s);
    if (sm->rate < 1) return sl_error_set(err, SL_ECONFIG, "option 'rate' must be 1 or more");
    return 0;
}

static bool sample_keep(struct sl_stage *s, const struct sl_event *ev)
{
    (void)ev;
    struct sample *sm = sl_stage_state(s);
    bool keep = sm->seen++ % sm->rate == 0;
    if (!keep) sl_stage_count_dropped(s, 1);
    return keep;
}

const struct sl_stage_type sl_stage_sample = {
    .abi = SL_STAGE_ABI,
    .name = "sample",
    .kind = SL_FILTER,
    .doc = "keeps one event in N (rate), counting the rest as dropped",
    .state_size = sizeof(struct sample),
    .options = sample_options,
    .init = sample_init,
    .keep = sample_keep,
};
