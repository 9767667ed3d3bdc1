/* The parts of the sqlite_lookup stage (lookup.c): its query, whose :field.path
 * parameters become ?N placeholders (query.c); the key of a lookup, made of the values
 * of those fields, and a row copied out of a statement into plain memory and set on an
 * event later (row.c); the LRU cache of rows by key and the table of lookups in flight
 * (cache.c). Private to connectors/sqlite. */
#ifndef SLUICE_CONNECTORS_SQLITE_LOOKUP_H
#define SLUICE_CONNECTORS_SQLITE_LOOKUP_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/error.h>
#include <sluice/event.h>

/* ---- the query (query.c) ------------------------------------------------------------------ */

/* A query as the config wrote it, ready for SQLite. */
struct sl__lookup_query {
    char *sql;      /* the text with each :path replaced by ?N (owned) */
    char **params;  /* the distinct field paths; parameter N is params[N - 1] (owned) */
    size_t nparams; /* entries of params, >= 1 */
};

/* Parses `text` (borrowed, NUL-terminated): one SELECT (or WITH ... SELECT) statement,
 * a `;` at the end allowed, with at least one parameter `:name` whose name is an event
 * field path (`:user_id`, `:http.status`, `:tags[0]`); string literals, quoted
 * identifiers and comments are skipped. A path used twice is one parameter. Other
 * parameter forms (`?`, `?1`, `@x`, `$x`) are refused. Returns 0 with `q` filled (free:
 * sl__lookup_query_free), or SL_ECONFIG with `err` holding the message and its line:col
 * inside `text` (1-based), or SL_ENOMEM. Any thread. */
int sl__lookup_query_parse(struct sl__lookup_query *q, const char *text, struct sl_error *err);

/* Frees what `q` holds and zeroes it. */
void sl__lookup_query_free(struct sl__lookup_query *q);

/* ---- keys (row.c) -------------------------------------------------------------------------- */

/* A key is the values of the query's parameters, in order, each encoded as a tag byte
 * and its data: 'n' null; 'b' + 1 byte; 'i' + int64; 'f' + double; 's' a string, 't' a
 * number kept as text, 'j' an object or array as JSON text, each + uint32 length + the
 * bytes (strings decoded). Equal keys bind equal values; the key is also what the work
 * binds from, so the request needs no event. */

/* Appends the key data of `v` (borrowed) to `*buf` (`*len` used of `*cap`; grown with
 * realloc). Returns 0, or SL_ENOMEM, or SL_EPARSE for a string with a bad escape. Loop
 * thread (reads the event's bytes). */
int sl__lookup_key_add(char **buf, size_t *len, size_t *cap, const struct sl_value *v);

/* Binds the `n` values of `key` (`len` bytes) to parameters 1..n of `st`. The key must
 * outlive the statement's step. Returns SQLITE_OK or SQLite's code. Any thread. */
int sl__lookup_key_bind(sqlite3_stmt *st, const char *key, size_t len, size_t n);

/* Writes "path=value, ..." for the key's values (JSON text: strings quoted) into `out`
 * (`cap` bytes, NUL-terminated, cut with "..." when longer). Any thread. */
void sl__lookup_key_text(const char *key, size_t len, char *const *paths, size_t n, char *out,
                         size_t cap);

/* ---- rows (row.c) -------------------------------------------------------------------------- */

/* One column of a row: a typed value whose bytes live in the row. */
struct sl__lookup_col {
    uint8_t type; /* enum sl_type: SL_NULL, SL_INT, SL_FLOAT or SL_STRING */
    uint32_t len; /* SL_STRING: bytes at s */
    union {
        int64_t i;     /* SL_INT */
        double f;      /* SL_FLOAT */
        const char *s; /* SL_STRING: inside the row's block */
    };
};

/* A row copied out of a statement: one malloc'd block (free: free()). */
struct sl__lookup_row {
    uint32_t ncols;              /* columns */
    struct sl__lookup_col col[]; /* then the text and blob bytes */
};

/* Copies the current row of `st`: INTEGER -> SL_INT, FLOAT -> SL_FLOAT, TEXT and BLOB ->
 * SL_STRING of its bytes, NULL -> SL_NULL. Returns the owned row, NULL when out of
 * memory. The executor thread that stepped `st`. */
struct sl__lookup_row *sl__lookup_row_copy(sqlite3_stmt *st);

/* The names of `st`'s columns, as one owned block (free: free()) of `*n` pointers followed
 * by the strings. NULL when out of memory. Any thread holding `st`. */
char **sl__lookup_names_copy(sqlite3_stmt *st, uint32_t *n);

/* Sets the columns of `row` (borrowed) on `ev`: column i as field `names[i]` (NULL:
 * skipped), or, when `into` is not NULL, all of them as the members of one object field
 * `into`. Text is copied into the event's batch. Returns 0, SL_ELIMIT (the event's field
 * limit; nothing set past it) or SL_ENOMEM. The thread that owns `ev` (the loop). */
int sl__lookup_row_apply(const struct sl__lookup_row *row, const char *const *names,
                         const char *into, struct sl_event *ev);

/* ---- the cache and the lookups in flight (cache.c) ------------------------------------------ */

/* 64-bit hash of `len` bytes (FNV-1a, then mixed). */
uint64_t sl__lookup_hash(const void *p, size_t len);

struct sl__lookup_entry; /* one remembered key and its row */

/* At most `cap` keys with their rows, the least recently used forgotten first, each used
 * for `ttl_ms` after it was stored (0: while it stays). Not thread-safe: the loop. */
struct sl__lookup_cache {
    struct sl__lookup_entry **buckets; /* chains by hash */
    uint32_t mask;                     /* buckets - 1 (a power of two, >= cap) */
    uint32_t n, cap;                   /* entries / most entries */
    int64_t ttl_ms;                    /* 0: no expiry */
    struct sl__lookup_entry *head;     /* most recently used */
    struct sl__lookup_entry *tail;     /* least recently used */
};

/* Prepares `c` for `cap` (>= 1) entries. Returns 0 or SL_ENOMEM. */
int sl__lookup_cache_init(struct sl__lookup_cache *c, uint32_t cap, int64_t ttl_ms);

/* Frees every entry and its row; `c` is zeroed. */
void sl__lookup_cache_free(struct sl__lookup_cache *c);

/* Looks `key` (`len` bytes, hash `h`) up at time `now_ms`: true when it is there and
 * fresh, with `*row` its row (borrowed: valid until the next put or free; NULL: a key
 * remembered as having no row), made the most recently used. An expired entry is
 * forgotten (false). */
bool sl__lookup_cache_get(struct sl__lookup_cache *c, const char *key, size_t len, uint64_t h,
                          int64_t now_ms, const struct sl__lookup_row **row);

/* Remembers `row` (taken; NULL: no row) for `key` at time `now_ms`, replacing what the
 * key had, evicting the least recently used entry when full. Returns 0, or SL_ENOMEM
 * (`row` is freed, nothing remembered). */
int sl__lookup_cache_put(struct sl__lookup_cache *c, const char *key, size_t len, uint64_t h,
                         struct sl__lookup_row *row, int64_t now_ms);

/* A lookup in flight, embedded in its request: later events with the same key wait for
 * it instead of asking the database again. */
struct sl__lookup_flight {
    struct sl__lookup_flight *chain; /* bucket chain */
    uint64_t hash;                   /* of key */
    const char *key;                 /* borrowed from the request */
    size_t len;                      /* bytes of key */
};

/* The lookups in flight by key (a chained table that grows). Loop thread. */
struct sl__lookup_flights {
    struct sl__lookup_flight **buckets; /* NULL until the first add */
    uint32_t mask, n;                   /* buckets - 1 / entries */
};

/* Adds `f` (borrowed until removed; its key must be absent). Returns 0 or SL_ENOMEM. */
int sl__lookup_flights_add(struct sl__lookup_flights *t, struct sl__lookup_flight *f);

/* The flight of `key` (`len` bytes, hash `h`), or NULL. */
struct sl__lookup_flight *sl__lookup_flights_find(const struct sl__lookup_flights *t,
                                                  const char *key, size_t len, uint64_t h);

/* Takes `f` out of the table (a no-op when it is not in it). */
void sl__lookup_flights_remove(struct sl__lookup_flights *t, struct sl__lookup_flight *f);

/* Frees the table (not the flights). */
void sl__lookup_flights_free(struct sl__lookup_flights *t);

#endif
