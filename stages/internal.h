/* Helpers shared by the stages of this folder: the `on_error` machinery, reading the
 * bytes a parser works on, typing of unquoted values, hashing of keys, and a fixed-size
 * LRU table. Private to stages/ (names sl__stage_*); built on the public API alone. */
#ifndef SLUICE_STAGES_INTERNAL_H
#define SLUICE_STAGES_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/builtins.h>
#include <sluice/config.h>
#include <sluice/error.h>
#include <sluice/event.h>
#include <sluice/stage.h>

/* ---- on_error: drop | dead_letter | fail ----------------------------------------------- */

/* The values of an `on_error` option (SL_OPT_ENUM with SL__STAGE_ON_ERROR_CHOICES). */
enum sl__stage_on_error {
    SL__STAGE_DROP = 0,        /* count the event as an error and as dropped, go on */
    SL__STAGE_DEAD_LETTER = 1, /* emit it on output "dead_letter" with field "error" */
    SL__STAGE_FAIL = 2,        /* fail the pipeline with the reason */
};

#define SL__STAGE_ON_ERROR_CHOICES "drop|dead_letter|fail"
/* The doc line of an `on_error` option; `what` says when it applies ("when the line is not
 * JSON"). */
#define SL__STAGE_ON_ERROR_DOC(what)                                                               \
    what ": drop the event (counted), dead_letter (send it unchanged to output 'dead_letter' "     \
         "with the reason in field 'error') or fail (stop the pipeline)"

/* Error handling of one stage: the option's value and the dead-letter port. */
struct sl__stage_errors {
    int mode; /* enum sl__stage_on_error, filled by the schema */
    int port; /* output "dead_letter" (mode SL__STAGE_DEAD_LETTER), else -1 */
};

/* Declares output "dead_letter" when the mode asks for it. Call from init(). Returns 0 or
 * an SL_E* code with `err` filled. */
int sl__stage_errors_init(struct sl_stage *stage, struct sl__stage_errors *e, struct sl_error *err);

/* Handles an event that failed, by `e->mode`: counts it as an error; then drops it
 * (counted as dropped), or emits it on the dead-letter port with field "error" set to the
 * formatted reason (and field "message" holding the payload when it had no fields), or
 * fails the stage with the reason. The caller has removed what it half-added to `ev`.
 * Returns 0 to go on, or a negative SL_E* code that map() returns. */
int sl__stage_reject(struct sl_stage *stage, const struct sl__stage_errors *e, struct sl_event *ev,
                     struct sl_emit *out, const char *fmt, ...) SL_PRINTF(5, 6);

/* Handles a failure of `ev` that a call reported as `code` (an SL_E* code), by the rule
 * every stage follows: SL_ENOMEM, a failed allocation, is a failure of the process and
 * fails the stage with "out of memory", whatever `e->mode`; any other code (SL_ELIMIT: the
 * event reached a limit of its own) belongs to this event alone and goes to on_error as a
 * parse error does (failing with `code` under on_error: fail). Returns what map() returns. */
int sl__stage_fault(struct sl_stage *stage, const struct sl__stage_errors *e, struct sl_event *ev,
                    struct sl_emit *out, int code, const char *fmt, ...) SL_PRINTF(6, 7);

/* sl__stage_fault for an event that would get more than SL_EVENT_MAX_FIELDS fields: reason
 * "more than 65535 fields", code SL_ELIMIT. */
int sl__stage_too_many_fields(struct sl_stage *stage, const struct sl__stage_errors *e,
                              struct sl_event *ev, struct sl_emit *out);

/* Sends an event that a stage turns away on purpose (throttled, duplicate) by `e->mode`
 * (drop or dead_letter only): counted as dropped, or emitted on the dead-letter port with
 * field "error" set to the formatted reason. Not counted as an error. Returns 0 or a
 * negative SL_E* code that map() returns. */
int sl__stage_divert(struct sl_stage *stage, const struct sl__stage_errors *e, struct sl_event *ev,
                     struct sl_emit *out, const char *fmt, ...) SL_PRINTF(5, 6);

/* The choices of an `on_excess` / `on_duplicate` option (a subset of on_error). */
#define SL__STAGE_DIVERT_CHOICES "drop|dead_letter"

/* ---- clocks ---------------------------------------------------------------------------- */

/* The values of a `clock` option. */
enum sl__stage_clock {
    SL__STAGE_CLOCK_PROCESSING = 0, /* the loop's monotonic clock when the event is seen */
    SL__STAGE_CLOCK_EVENT = 1,      /* the event's time (the wall clock when it has none) */
};

#define SL__STAGE_CLOCK_CHOICES "processing|event"

/* Milliseconds by `clock` for `ev`: processing time is the loop's monotonic clock; event
 * time is the event's, since the epoch (the wall clock for an event without a time). A
 * stage compares times of one clock only. */
int64_t sl__stage_clock_ms(struct sl_stage *stage, const struct sl_event *ev, int clock);

/* ---- expressions in config maps and lists ----------------------------------------------- */

struct sl_expr;

/* ---- what a parser reads --------------------------------------------------------------- */

/* The bytes to parse: the payload when `field` is NULL, else the text of string field
 * `field` (JSON escapes decoded into the batch arena) or the raw text of an object or
 * array field. `*text` is valid until the batch
 * is released. Returns 0, SL_ENOTFOUND (no such field), SL_ETYPE (not a string),
 * SL_EPARSE (a bad escape) or SL_ENOMEM. */
int sl__stage_input(struct sl_event *ev, const char *field, const char **text, size_t *len);

/* A message for the codes of sl__stage_input(). */
const char *sl__stage_input_error(int rc);

/* Adds field `name` (valid as long as the batch) to `ev`: appended without a lookup when
 * `merge` is false (a parser indexing an event that had no fields), else set by name
 * (replacing a field of that name). Returns 0, SL_ELIMIT (SL_EVENT_MAX_FIELDS reached) or
 * SL_ENOMEM. */
int sl__stage_put(struct sl_event *ev, const char *name, size_t len, const struct sl_value *v,
                  bool merge);

/* The value of an unquoted word in a text format (logfmt, key=value, CSV): a JSON number
 * becomes SL_INT/SL_FLOAT carrying SL_VALUE_TEXT (converted only when asked for),
 * `true`/`false` a boolean, anything else a string. `s` must live as long as the batch. */
struct sl_value sl__stage_infer(const char *s, size_t len);

/* SL_INT or SL_FLOAT when `s` is a JSON number (RFC 8259 grammar), else SL_STRING. */
int sl__stage_number_type(const char *s, size_t len);

/* ---- key=value text (parse_logfmt, parse_kv) -------------------------------------------- */

/* How a key=value text is split. */
struct sl__stage_kv {
    const char *field_sep; /* between pairs (ignored when field_blank) */
    size_t field_sep_len;  /* bytes of field_sep */
    bool field_blank;      /* pairs are separated by runs of blanks (space, tab) */
    const char *kv_sep;    /* between a key and its value */
    size_t kv_sep_len;     /* bytes of kv_sep (>= 1) */
    bool infer;            /* type unquoted values (sl__stage_infer) */
    bool bare_keys;        /* a key without a separator is `true` (else an error) */
};

/* Where and why a key=value text was rejected. */
struct sl__stage_kv_error {
    size_t at;        /* byte offset */
    const char *what; /* static text */
};

/* Splits `s` into pairs and adds them to `ev` (sl__stage_put with `merge`), or only
 * checks the text when `dry_run`. Keys and unquoted values (blanks around them trimmed)
 * are spans of `s`, which must live as long as the batch; quoted values ("...") holding
 * backslash escapes are decoded into the arena. Returns the number of pairs (>= 0, capped
 * at INT_MAX), SL_EPARSE with `e` filled (pairs before the error were added), SL_ELIMIT
 * (the event reached SL_EVENT_MAX_FIELDS; pairs before were added) or SL_ENOMEM. */
int sl__stage_kv_parse(const struct sl__stage_kv *o, struct sl_event *ev, const char *s, size_t len,
                       bool merge, bool dry_run, struct sl__stage_kv_error *e);

/* The map() of parse_logfmt and parse_kv: parses the payload or `field` with `o` and
 * emits the event, or rejects it by `errors`. Returns what map() returns. */
int sl__stage_kv_map(struct sl_stage *stage, const struct sl__stage_kv *o, const char *field,
                     const struct sl__stage_errors *errors, struct sl_event *ev,
                     struct sl_emit *out);

/* ---- keys ------------------------------------------------------------------------------- */

/* A 128-bit digest of an event's key fields: two 64-bit hashes with different seeds, so
 * that two different keys collide with a probability of about 2^-128 per pair. */
struct sl__stage_key {
    uint64_t h1; /* first hash (also the table slot) */
    uint64_t h2; /* second hash */
};

/* 64-bit hash of `len` bytes at `p` (not cryptographic; well mixed). */
uint64_t sl__stage_hash(const void *p, size_t len, uint64_t seed);

/* The key of `ev` made of the values of `fields` (paths, as sl_event_get takes them): each
 * value hashed as its type and its text (strings decoded), a missing field as "absent".
 * With no fields, the key is the payload. */
struct sl__stage_key sl__stage_key_of(const struct sl_event *ev, const struct sl_list *fields);

/* The text of a value, for keys and for output: a string's bytes (decoded into `buf` when
 * escaped and it fits `cap`), a number's text, "true"/"false", "" for null, an object's
 * or array's raw JSON. Points `*s` at `buf` or at the value's own bytes. */
void sl__stage_value_text(const struct sl_value *v, char *buf, size_t cap, const char **s,
                          size_t *len);

/* ---- a fixed-size LRU table of keys ---------------------------------------------------- */

/* One remembered key, with two numbers for the stage that owns the table. */
struct sl__stage_lru_entry {
    struct sl__stage_key key; /* the key */
    int64_t time;             /* owner's: when the key was first seen (ms) */
    int64_t count;            /* owner's: events counted for the key */
    uint32_t prev, next;      /* recency list (indexes; UINT32_MAX ends it) */
};

/* At most `cap` keys; when full, inserting evicts the least recently used. Everything is
 * allocated once by sl__stage_lru_init, nothing per event. Not thread-safe. */
struct sl__stage_lru {
    struct sl__stage_lru_entry *e; /* cap entries, n in use */
    uint32_t *slots;               /* open addressing: entry index + 1, 0 = empty */
    uint32_t cap, n;               /* capacity / entries in use */
    uint32_t mask;                 /* slots - 1 (slots is a power of two >= 2 cap) */
    uint32_t head, tail;           /* most / least recently used entry */
};

/* Allocates a table for `cap` (>= 1) keys. Returns 0 or SL_ENOMEM. */
int sl__stage_lru_init(struct sl__stage_lru *l, uint32_t cap);
void sl__stage_lru_free(struct sl__stage_lru *l);

/* The entry of `k`, made the most recently used; NULL when absent. */
struct sl__stage_lru_entry *sl__stage_lru_find(struct sl__stage_lru *l, struct sl__stage_key k);

/* Adds `k` (which must be absent) as the most recently used entry, evicting the least
 * recently used one when the table is full (`*evicted` tells). time and count are 0. */
struct sl__stage_lru_entry *sl__stage_lru_add(struct sl__stage_lru *l, struct sl__stage_key k,
                                              bool *evicted);

#endif
