/* The elements of a JSON array, one by one, for the HTTP connectors: the records of a
 * response (`records_path`) become one event each, their text copied as it is. Any
 * thread; no allocation. */
#ifndef SLUICE_CONNECTORS_HTTP_JSON_ARRAY_H
#define SLUICE_CONNECTORS_HTTP_JSON_ARRAY_H

#include <stddef.h>

/* Calls `fn(arg, el, el_len)` for each element of the JSON array text `json` (borrowed,
 * `len` bytes, already validated: sl_json_validate or sl_json_get), in order; `el` spans
 * the element's text inside `json`, without surrounding whitespace. `fn` returns 0 to go
 * on, anything else to stop. Returns 0 after the last element, `fn`'s value when it
 * stopped, or SL_EPARSE when `json` is not an array. */
int sl__http_json_array_each(const char *json, size_t len,
                             int (*fn)(void *arg, const char *el, size_t el_len), void *arg);

#endif
