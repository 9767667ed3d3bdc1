/* sluice: the zero-copy JSON reader.
 *
 * Reads JSON text in place: values are spans into the caller's bytes, nothing is
 * allocated, strings keep their escapes until someone asks for the decoded bytes
 * (SL_VALUE_ESCAPED, sl_value_unescape). */
#ifndef SLUICE_JSON_H
#define SLUICE_JSON_H

#include <stddef.h>

#include <sluice/error.h>
#include <sluice/event.h>

/* Finds `path` (borrowed, `path_len` bytes: "a.b", "tags[0]", "a.b[2].c"; a leading '.'
 * is allowed) inside the JSON object or array text `json` (borrowed). Returns 0 with
 * `*out` filled (spans into `json`), SL_ENOTFOUND, or SL_EPARSE for malformed text. */
SL_API int sl_json_get(const char *json, size_t len, const char *path, size_t path_len,
                       struct sl_value *out);

#endif
