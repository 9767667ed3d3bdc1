/* The `blackhole` sink: takes everything, keeps nothing. */
#ifndef SLUICE_CONNECTOR_BLACKHOLE_H
#define SLUICE_CONNECTOR_BLACKHOLE_H

#include <sluice/stage.h>

/* Acknowledges every batch at once, counting events and bytes; with `print_interval`
 * it logs the running totals. For benchmarks, dry runs and tests. Register it with
 * sl_registry_add(). */
SL_API extern const struct sl_stage_type sl_stage_blackhole;

#endif
