/* The bottom layer of the runtime library: helpers every other layer may use. Includes
 * nothing of the project but the public error header. */
#ifndef SLUICE_PIPELINE_BASE_INTERNAL_H
#define SLUICE_PIPELINE_BASE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/error.h>

/* True when the library may write `err`: not NULL, and of size 0 (0.1's layout) or at
 * least 0.1's (struct sl_error). */
bool sl__error_writable(const struct sl_error *err);

/* Copies the fields of `src` into `dst` that both have (NULL or a record too small:
 * nothing), keeping dst's size. Every copy into a caller's record goes through here. */
void sl__error_copy(struct sl_error *dst, const struct sl_error *src);

/* A malloc'd copy of `s` (NULL gives NULL), or NULL when memory is exhausted. */
char *sl__strdup(const char *s);

/* Levenshtein distance, capped at `max` + 1. */
unsigned sl__edit_distance(const char *a, const char *b, unsigned max);

/* The candidate closest to `name` (within a third of its length), or NULL. */
const char *sl__nearest(const char *name, const char *const *candidates, size_t n);

/* Nanoseconds of the monotonic clock. Any thread. */
int64_t sl__now_ns(void);

/* The value of 4 hex digits at `s` (`left` bytes readable), or -1. */
long sl__hex4(const char *s, size_t left);

/* Writes code point `cp` as UTF-8 into `o` (room for 4); returns the bytes. */
size_t sl__utf8_put(char *o, unsigned long cp);

/* Decodes the \uXXXX escape whose 'u' is at s[*i] (with its low surrogate when one
 * follows) into `o` (room for 4), advancing *i past it; a lone surrogate gives U+FFFD.
 * Returns the bytes written, or 0 when the hex digits are invalid (*i unchanged). */
size_t sl__unescape_u(const char *s, size_t len, size_t *i, char *o);

/* ---- a hash index of names (index.c) ------------------------------------------------- */

/* The name of entry `entry` of the caller's table, `*len` bytes (borrowed). */
typedef const char *sl__index_name_fn(void *arg, uint32_t entry, size_t *len);

/* Maps names to entry numbers of a table the caller keeps (the index holds numbers
 * only). Zero it with sl__index_init; free with sl__index_free. Not thread-safe. */
struct sl__index {
    uint32_t *slots;            /* entry + 1, 0: empty; cap slots */
    uint32_t cap, n;            /* slots (a power of two) / entries */
    sl__index_name_fn *name_of; /* the caller's names */
    void *arg;                  /* passed to name_of */
};

void sl__index_init(struct sl__index *x, sl__index_name_fn *name_of, void *arg);
/* Adds entry `entry` (its name from name_of). Returns 0 or SL_ENOMEM. */
int sl__index_add(struct sl__index *x, uint32_t entry);
/* The entry named `key` (`len` bytes), or -1. With several of one name, one of them. */
int64_t sl__index_find(const struct sl__index *x, const char *key, size_t len);
void sl__index_free(struct sl__index *x);

#endif
