/* What a program watching a running pipeline reads (include/sluice/observe.h): a stage's
 * outputs and config, and the fill of each edge's queue. Loop thread, like the
 * counters they sit beside. */
#include <stddef.h>
#include <string.h>

#include <sluice/observe.h>

#include "runtime/internal.h"

size_t sl_stage_output_count(const struct sl_stage *stage)
{
    return stage->type->kind == SL_SINK ? 0 : stage->nports;
}

const char *sl_stage_output_name(const struct sl_stage *stage, size_t i)
{
    return i < sl_stage_output_count(stage) ? stage->ports[i].name : NULL;
}

const struct sl_config *sl_stage_config(const struct sl_stage *stage)
{
    return stage->cfg;
}

int sl_stage_input_stats(const struct sl_stage *stage, size_t i, struct sl_edge_stats *out)
{
    if (out->size < offsetof(struct sl_edge_stats, capacity_bytes) + sizeof(uint64_t))
        return SL_EINVAL;
    if (i >= stage->ninputs) return SL_ENOTFOUND;
    const struct sl_queue *q = stage->inputs[i];
    out->queue_batches = q->count;
    out->capacity_batches = q->cap;
    out->queue_bytes = q->bytes;
    out->capacity_bytes = q->max_bytes;
    return 0;
}
