/* sluice: config documents.
 *
 * A config is a parsed YAML document: a tree of mappings, lists and scalars, each node
 * knowing the file, line and column it came from, so that every error can point at it.
 * `${VAR}` and `${VAR:-default}` in scalars are replaced from the environment while
 * parsing. Nodes are read-only; the whole document is reference-counted, and a node
 * stays valid as long as one reference to its document is held. */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stddef.h>

#include <sluice/error.h>

struct sl_config; /* opaque: one node of a config document */

enum sl_config_kind {
    SL_CFG_SCALAR = 0, /* text (sl_config_str) */
    SL_CFG_MAP,        /* ordered key -> node */
    SL_CFG_LIST,       /* ordered nodes */
};

/* Parses YAML `text` (borrowed, `len` bytes) whose origin is named `file` (borrowed,
 * copied; used in error positions). Returns the owned root (free: sl_config_free), or
 * NULL with `err` filled (file:line:col and what was expected). An empty document gives
 * an empty mapping. */
SL_API struct sl_config *sl_config_parse(const char *text, size_t len, const char *file,
                                         struct sl_error *err);

/* Reads and parses the file at `path` ("-" is standard input). As sl_config_parse. */
SL_API struct sl_config *sl_config_load(const char *path, struct sl_error *err);

/* Takes one more reference to the document `node` belongs to; returns `node`. */
SL_API const struct sl_config *sl_config_ref(const struct sl_config *node);

/* Drops one reference to the document `node` belongs to; the last frees it. NULL is a
 * no-op. */
SL_API void sl_config_free(const struct sl_config *node);

/* What `node` (borrowed) is: a scalar, a mapping or a list. */
SL_API enum sl_config_kind sl_config_kind(const struct sl_config *node);

/* Scalar text, NUL-terminated (borrowed; valid with the document). NULL for maps and
 * lists. */
SL_API const char *sl_config_str(const struct sl_config *node);

/* True when the scalar was written in quotes ("5" is a string, 5 may be a number). */
SL_API int sl_config_quoted(const struct sl_config *node);

/* Number of entries of a map or list (0 for scalars). */
SL_API size_t sl_config_len(const struct sl_config *node);

/* The i-th entry of a map or list, or NULL when out of range. For maps, `*key`
 * (borrowed; may be NULL) receives the key text. */
SL_API const struct sl_config *sl_config_at(const struct sl_config *node, size_t i,
                                            const char **key);

/* The key node of the i-th map entry (for error positions), or NULL. */
SL_API const struct sl_config *sl_config_key_at(const struct sl_config *node, size_t i);

/* The value for `key` in a map; a dotted key ("batch.max_events") walks nested maps.
 * NULL when absent or `node` is not a map. */
SL_API const struct sl_config *sl_config_get(const struct sl_config *node, const char *key);

/* Where the node starts: file (borrowed), 1-based line and column. */
SL_API const char *sl_config_file(const struct sl_config *node);
SL_API int sl_config_line(const struct sl_config *node);
SL_API int sl_config_col(const struct sl_config *node);

/* Fills `err` with `code`, the node's file:line:col and the formatted message. Returns
 * `code`. `node` may be NULL (no position). */
SL_API int sl_config_error(const struct sl_config *node, struct sl_error *err, int code,
                           const char *fmt, ...) SL_PRINTF(4, 5);

/* Sets `path` (dotted, e.g. "sinks.out.path") to the scalar `value`, creating maps on the
 * way: the `--set` of the command line. The node gets the position "<file>:0:0" of the
 * override. Returns 0 or SL_ECONFIG (a path through a scalar or list) with `err`. */
SL_API int sl_config_set(struct sl_config *root, const char *path, const char *value,
                         struct sl_error *err);

/* Parses a duration ("250ms", "5s", "1m", "1h", "1d"; a bare number means seconds) into
 * milliseconds. Returns 0 or SL_ECONFIG. */
SL_API int sl_parse_duration(const char *text, long long *ms);

/* Parses a size ("512", "64KiB", "64KB", "10MB", "1GiB", "1G") into bytes; KB/MB/GB are
 * powers of 1000, KiB/MiB/GiB and K/M/G powers of 1024. Returns 0 or SL_ECONFIG. */
SL_API int sl_parse_size(const char *text, unsigned long long *bytes);

#endif
