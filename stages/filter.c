/* filter: keeps the events for which `condition` holds. The condition is compiled once
 * when the config loads (errors point into the config); testing it allocates nothing and
 * compares raw spans (`level == "error"` is a length check and a memcmp). An event on
 * which it cannot be evaluated (a limit of the expression was reached) goes to the
 * runtime's `on_error`. Thread-safe: `workers: N` runs it on N threads. */
#include <stddef.h>

#include <sluice/expr.h>

#include "internal.h"

struct filter {
    struct sl_expr *cond; /* option condition (owned by the runtime) */
};

static int filter_keep(struct sl_stage *s, const struct sl_event *ev, struct sl_error *why)
{
    const struct filter *f = sl_stage_state(s);
    return sl_expr_check(f->cond, ev, why);
}

/* Declares the condition, so that the stage before may prune events it proves false
 * (predicate pushdown: stage.h, sl_stage_keeps_only). */
static int filter_init(struct sl_stage *s, const struct sl_config *cfg, struct sl_error *err)
{
    (void)cfg, (void)err;
    const struct filter *f = sl_stage_state(s);
    sl_stage_keeps_only(s, f->cond);
    return 0;
}

static const struct sl_option filter_options[] = {
    {"condition", SL_OPT_EXPR, NULL, SL_REQUIRED, offsetof(struct filter, cond),
     "expression; events for which it is true are kept, e.g. 'level == \"error\" && "
     "latency_ms > 500'"},
    {0},
};

const struct sl_stage_type sl_stage_filter = {
    .abi = SL_STAGE_ABI,
    .name = "filter",
    .kind = SL_FILTER,
    .doc = "keep the events for which an expression is true",
    .flags = SL_STAGE_PARALLEL,
    .state_size = sizeof(struct filter),
    .options = filter_options,
    .init = filter_init,
    .keep = filter_keep,
};
