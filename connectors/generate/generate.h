/* The `generate` source: synthetic log lines for first pipelines, demos and tests (the
 * demo_logs of other tools). */
#ifndef SLUICE_CONNECTOR_GENERATE_H
#define SLUICE_CONNECTOR_GENERATE_H

#include <sluice/stage.h>

/* Emits `count` lines (0: endlessly) in a realistic format (json, text, apache, syslog)
 * from a seeded generator, or the literal `lines` round-robin, a batch every `interval`
 * (0: as fast as the pipeline takes them). Register it with sl_registry_add(). */
SL_API extern const struct sl_stage_type sl_stage_generate;

#endif
