/* The `sample` filter: keeps one event in `rate`. */
#ifndef SLUICE_STAGE_SAMPLE_H
#define SLUICE_STAGE_SAMPLE_H

#include <sluice/stage.h>

/* Keeps the first of every `rate` events (deterministic: the same input always keeps
 * the same events) and counts the others as dropped. Register it with sl_registry_add(). */
SL_API extern const struct sl_stage_type sl_stage_sample;

#endif
