/* The bottom layer of the runtime library: helpers every other layer may use. Includes
 * nothing of the project but the public error header. */
#ifndef SLUICE_PIPELINE_BASE_INTERNAL_H
#define SLUICE_PIPELINE_BASE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <sluice/error.h>

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

#endif
