/* sluice: the built-in stage types. A program registers the ones it wants with
 * sl_registry_add(), exactly as it would its own types. Each is a constant table
 * (borrowed; lives as long as the program). */
#ifndef SLUICE_BUILTINS_H
#define SLUICE_BUILTINS_H

#include <sluice/stage.h>

/* ---- stages/: transforms and filters ---------------------------------------------------- */
SL_API extern const struct sl_stage_type sl_stage_parse_json;  /* JSON object into fields */
SL_API extern const struct sl_stage_type sl_stage_parse_regex; /* PCRE2 named groups */
SL_API extern const struct sl_stage_type sl_stage_parse_logfmt; /* key=value "quoted" flag */
SL_API extern const struct sl_stage_type sl_stage_parse_kv; /* key/value, own separators */
SL_API extern const struct sl_stage_type sl_stage_parse_csv; /* one CSV record, named columns */
SL_API extern const struct sl_stage_type sl_stage_parse_timestamp; /* a field into the time */
SL_API extern const struct sl_stage_type sl_stage_sample; /* keep 1 in N / a ratio, by key */
SL_API extern const struct sl_stage_type sl_stage_throttle; /* N events per window and key */
SL_API extern const struct sl_stage_type sl_stage_dedupe;   /* drop recently seen keys */
SL_API extern const struct sl_stage_type sl_stage_multiline; /* join lines into events */
SL_API extern const struct sl_stage_type sl_stage_filter;    /* keep where a condition holds */
SL_API extern const struct sl_stage_type sl_stage_route;     /* named outputs by condition */
SL_API extern const struct sl_stage_type sl_stage_remap;     /* set/rename/remove/copy fields */
SL_API extern const struct sl_stage_type sl_stage_aggregate; /* metrics per group and window */

#endif
