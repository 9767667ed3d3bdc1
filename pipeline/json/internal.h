/* JSON text and typed values: the reader (strict validation, zero-copy walks and
 * lookups), the writer, and sl_value. Depends on base/ only; knows nothing of events. */
#ifndef SLUICE_PIPELINE_JSON_INTERNAL_H
#define SLUICE_PIPELINE_JSON_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/event.h>
#include <sluice/json.h>

#include "base/internal.h"

/* sl_json_get, without validating the rest of the text once the value is found when
 * `validate` is false: for values a parser produced (memory-safe on any text). */
int sl__json_get(const char *json, size_t len, const char *path, size_t path_len,
                 struct sl_value *out, bool validate);

/* sl__json_get(json, len, ".name", ..., false) for a path of one member name (no '.',
 * no '['), without reading a path: the value of the last member `name` (decoded bytes)
 * of the object `json`, text a parser has validated. SL_ENOTFOUND when `json` is not an
 * object or has no such member. */
int sl__json_member(const char *json, size_t len, const char *name, size_t name_len,
                    struct sl_value *out);

/* A member of an object: its name's span (raw bytes, escapes kept, `escaped` when any)
 * and where its value starts, as offsets from the object's first byte. */
struct sl__json_span {
    uint32_t name_off, name_len, value_off;
    bool escaped;
};

/* The members of the object `json` (text a parser validated; `len` < 4 GiB), in order,
 * into out[]: returns how many, SL_ELIMIT when there are more than `max`, SL_ENOTFOUND
 * when `json` is not an object. Walks as sl__json_member does: no value is read. */
int sl__json_members(const char *json, size_t len, struct sl__json_span *out, size_t max);

/* The value that starts at json[off] (a span's value_off) into *out, as sl__json_member
 * returns it (a container is validated, as there). 0 or SL_EPARSE. */
int sl__json_value(const char *json, size_t len, size_t off, struct sl_value *out);

/* True when the member name `name` (its `n` raw bytes, JSON escapes kept) decodes to the
 * `seg_len` bytes at `seg`: the comparison sl__json_member makes. */
bool sl__json_name_is(const char *name, size_t n, const char *seg, size_t seg_len);

/* True when the `len` bytes at `s` are valid UTF-8, i.e. when sl_json_escape writes them
 * without a U+FFFD: the same check as the writer's. */
bool sl__utf8_valid(const char *s, size_t len);

/* The most bytes sl_json_write_value can write for `v` (a string escaped at worst: six
 * bytes a byte), cheap to compute: a writer with that much room writes in one pass. */
size_t sl__json_value_bound(const struct sl_value *v);

#endif
