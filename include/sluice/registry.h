/* sluice: the registry of stage types.
 *
 * A registry maps `type:` names to stage types. The `sluice` program fills one with its
 * built-ins; a program embedding libsluice adds its own types the same way. */
#ifndef SLUICE_REGISTRY_H
#define SLUICE_REGISTRY_H

#include <stddef.h>

#include <sluice/error.h>
#include <sluice/stage.h>

struct sl_registry; /* opaque */

/* An empty registry. Returns an owned registry (free: sl_registry_free), or NULL when
 * memory is exhausted. */
SL_API struct sl_registry *sl_registry_new(void);

/* Frees the registry (not the types). NULL is a no-op. */
SL_API void sl_registry_free(struct sl_registry *reg);

/* Adds `type` (borrowed; must outlive the registry). Returns 0, SL_EEXIST when the name
 * is taken, or SL_EINVAL when the table is malformed (wrong abi, no name, no callback
 * for its kind, an option without type or doc), with `err` filled. */
SL_API int sl_registry_add(struct sl_registry *reg, const struct sl_stage_type *type,
                           struct sl_error *err);

/* The type called `name` (borrowed), or NULL. `kind` < 0 matches any kind; otherwise
 * only types of that kind match (a `file` source and a `file` sink share a name). */
SL_API const struct sl_stage_type *sl_registry_find(const struct sl_registry *reg, const char *name,
                                                    int kind);

/* Number of types, and the i-th in the order added (NULL when out of range). */
SL_API size_t sl_registry_count(const struct sl_registry *reg);
SL_API const struct sl_stage_type *sl_registry_at(const struct sl_registry *reg, size_t i);

/* The registered name closest to `name` for "did you mean" hints (borrowed), or NULL when
 * none is close. */
SL_API const char *sl_registry_suggest(const struct sl_registry *reg, const char *name);

#endif
