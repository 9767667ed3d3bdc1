/* sluice: events, typed field values and batches.
 *
 * An event is one record: a payload, an optional key, a time, source metadata and a set
 * of named fields. Events live in batches; a batch owns one arena, and everything an
 * event points to (payload, field names and values) is valid until the batch is
 * released. Nothing here allocates per field: parsers record spans that point into the
 * payload, and a stage that sets a field writes the new bytes into the batch arena with
 * sl_event_alloc().
 *
 * Threads: an event or batch is used by one thread at a time (the loop thread, or the
 * worker that runs a `workers: N` stage over it). */
#ifndef SLUICE_EVENT_H
#define SLUICE_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/error.h>

struct sl_event; /* opaque: one record inside a batch */
struct sl_batch; /* opaque: events plus the arena they point into */
struct sl_stage; /* opaque: a stage in a pipeline (see stage.h) */

/* ---- typed values ---------------------------------------------------------------- */

enum sl_type {
    SL_NULL = 0, /* JSON null, or a field set to nothing */
    SL_BOOL,     /* b */
    SL_INT,      /* i (64-bit signed) */
    SL_FLOAT,    /* f (double) */
    SL_STRING,   /* s/len: bytes, not NUL-terminated */
    SL_JSON,     /* s/len: raw JSON text of an object or array */
};

/* Flags on a value (struct sl_value.flags). */
enum {
    SL_VALUE_ESCAPED = 1u << 0,   /* SL_STRING: s/len still holds JSON escapes (\n, \u00e9) */
    SL_VALUE_TEXT = 1u << 1,      /* SL_INT/SL_FLOAT: the number is only in s/len as text,
                                     i/f not filled in yet: use sl_value_number() */
    SL_VALUE_JSON_SAFE = 1u << 2, /* SL_STRING: the bytes need no JSON escaping (valid
                                     UTF-8 without '"', '\\' or control bytes): the JSON
                                     reader sets it on strings without escapes, and the
                                     writer copies them as they are. A stage that makes a
                                     value of other bytes from one (a cut, a copy with
                                     changes) clears it, as it would SL_VALUE_ESCAPED. */
};

/* A typed value. Plain data: copy it freely; the bytes at `s` belong to whoever made
 * the value (for values read from an event: valid until the batch is released). */
struct sl_value {
    uint8_t type;  /* enum sl_type */
    uint8_t flags; /* SL_VALUE_* */
    uint32_t len;  /* bytes at s */
    const char *s; /* SL_STRING / SL_JSON bytes, or a number's text (SL_VALUE_TEXT) */
    SL_ANONYMOUS union {
        bool b;    /* SL_BOOL */
        int64_t i; /* SL_INT */
        double f;  /* SL_FLOAT */
    };
};

/* Value makers; the string ones borrow `s` (it must outlive every use of the value). */
SL_API struct sl_value sl_value_null(void);
SL_API struct sl_value sl_value_bool(bool b);
SL_API struct sl_value sl_value_int(int64_t i);
SL_API struct sl_value sl_value_float(double f);
SL_API struct sl_value sl_value_string(const char *s, size_t len);
SL_API struct sl_value sl_value_json(const char *s, size_t len);

/* Converts an SL_VALUE_TEXT number in place to i (SL_INT) or f (SL_FLOAT) and clears the
 * flag. Returns 0, or SL_EPARSE when the text is not a number (`v` unchanged). A value
 * that is already converted, or not a number, is left as it is and 0 returned. */
SL_API int sl_value_number(struct sl_value *v);

/* Decodes an SL_VALUE_ESCAPED string into `buf` (borrowed, `cap` bytes; UTF-8 output is
 * never longer than the escaped input: cap must be >= v->len). Returns the decoded
 * length, SL_EINVAL when cap < v->len, or SL_EPARSE for an invalid escape. Unescaped
 * strings are copied as they are. */
SL_API int sl_value_unescape(const struct sl_value *v, char *buf, size_t cap);

/* Compares two values: 0 when equal (numbers by value across int/float; strings by bytes
 * after unescaping), <0 or >0 by order for comparable types; `*comparable` (borrowed, may
 * be NULL) is set false for types that have no order (e.g. string vs number). */
SL_API int sl_value_compare(const struct sl_value *a, const struct sl_value *b, bool *comparable);

/* ---- events ---------------------------------------------------------------------- */

/* The payload (the raw bytes of the record). Valid until the batch is released. */
SL_API const char *sl_event_payload(const struct sl_event *ev, size_t *len);

/* Points the payload at `data` (borrowed: it must stay valid as long as the batch, so
 * it is either sl_event_alloc() memory, memory of a batch the event depends on, or
 * static). The event becomes a raw record again: whatever a parser had declared about
 * the old payload no longer holds (see "fields and the payload" below); a serializer
 * that writes the payload from the fields calls sl_event_fields_synced() after this. */
SL_API void sl_event_set_payload(struct sl_event *ev, const char *data, size_t len);

/* The key (Kafka message key, routing key), or NULL with *len = 0. */
SL_API const char *sl_event_key(const struct sl_event *ev, size_t *len);
SL_API void sl_event_set_key(struct sl_event *ev, const char *key, size_t len);

/* Event time in nanoseconds since the Unix epoch; 0 when unknown. */
SL_API int64_t sl_event_time(const struct sl_event *ev);
SL_API void sl_event_set_time(struct sl_event *ev, int64_t ns);

/* Source metadata: where the event came from. `origin` is a file path or Kafka topic
 * (borrowed; valid as long as the batch: sources keep it in the arena or in their
 * state), `offset` a byte offset or Kafka offset, `partition` a Kafka partition (-1
 * when none). */
SL_API const char *sl_event_origin(const struct sl_event *ev);
SL_API uint64_t sl_event_offset(const struct sl_event *ev);
SL_API int32_t sl_event_partition(const struct sl_event *ev);
SL_API void sl_event_set_origin(struct sl_event *ev, const char *origin, uint64_t offset,
                                int32_t partition);

/* The name of the host the event was read on (borrowed: sources keep it in their state;
 * valid as long as the batch), or NULL when the source did not say. Metadata, like the
 * origin: not a field, so it is not written with the event unless a stage copies it into
 * one. */
SL_API const char *sl_event_host(const struct sl_event *ev);
SL_API void sl_event_set_host(struct sl_event *ev, const char *host);

/* Allocates `size` bytes that live as long as the event's batch (the batch arena), for
 * new payloads and field values. Returns NULL only when memory is exhausted. */
SL_API char *sl_event_alloc(struct sl_event *ev, size_t size);

/* Copies `len` bytes into the batch arena and returns the copy (NULL: out of memory). */
SL_API const char *sl_event_strdup(struct sl_event *ev, const char *s, size_t len);

/* ---- fields ---------------------------------------------------------------------- */

/* The most fields an event holds: sl_event_set and sl_event_add_field refuse a field
 * beyond it with SL_ELIMIT. The limit belongs to one event, not to the process: a stage
 * sends such an event to its `on_error` as it would a parse error, and only SL_ENOMEM (a
 * failed allocation) is a failure of the run. A dead letter may hold a few more
 * (sl_event_set_error), so that an event at the limit still carries its reason. */
#define SL_EVENT_MAX_FIELDS 65535

/* Looks up a field by path: a name (`level`), a dotted path into JSON objects
 * (`http.status`) or an index into arrays (`tags[0]`). Of a repeated name — two fields of
 * one name (sl_event_add_field does not look), or two members of one name in a JSON value
 * — the last one counts, as jq, Python and JavaScript read a JSON object. Returns 0 with
 * `*out` filled (spans valid until the batch is released), or SL_ENOTFOUND. */
SL_API int sl_event_get(const struct sl_event *ev, const char *path, size_t len,
                        struct sl_value *out);

/* Sets top-level field `name` (borrowed; copied into the arena when it is not already
 * there) to `v`, replacing an existing field of that name in place or appending a new
 * one. The bytes `v` points at must live as long as the batch (see sl_event_alloc).
 * Marks the fields as changed. Returns 0, SL_ELIMIT (a new field, and the event has
 * SL_EVENT_MAX_FIELDS already: nothing changed) or SL_ENOMEM. */
SL_API int sl_event_set(struct sl_event *ev, const char *name, size_t len,
                        const struct sl_value *v);

/* Removes field `name` (all of it, when the name was repeated). Returns 0, SL_ENOTFOUND
 * when there was no such field, or SL_ENOMEM. */
SL_API int sl_event_remove(struct sl_event *ev, const char *name, size_t len);

/* Renames field `from` to `to`, keeping its position (a field `to` is replaced). Returns
 * 0, SL_ENOTFOUND or SL_ENOMEM. */
SL_API int sl_event_rename(struct sl_event *ev, const char *from, size_t from_len, const char *to,
                           size_t to_len);

/* Appends a field without looking for an existing one of that name: for parsers that
 * index a payload once, and for sources adding their metadata fields (host, file) to a
 * new event. `name` must live as long as the batch. A name appended twice is one field,
 * the last one (it hides the earlier, for lookups and in the JSON form); the first change
 * to the event (sl_event_set, _remove, _rename, sl_event_fields_changed_mark) drops the
 * hidden ones. Leaves the sync state as it is (a
 * JSON parser calls sl_event_fields_synced() once it has indexed the payload). Returns 0,
 * SL_ELIMIT (the event has SL_EVENT_MAX_FIELDS already: nothing changed) or SL_ENOMEM. */
SL_API int sl_event_add_field(struct sl_event *ev, const char *name, size_t len,
                              const struct sl_value *v);

/* Number of top-level fields, and the i-th (0-based, in insertion order), as the event
 * holds them: fields hidden by a later one of the same name (sl_event_add_field) are
 * counted until the first change drops them. `*name` and the value spans are valid until
 * the batch is released. Returns 0 or SL_ENOTFOUND. */
SL_API size_t sl_event_field_count(const struct sl_event *ev);
SL_API int sl_event_field_at(const struct sl_event *ev, size_t i, const char **name,
                             size_t *name_len, struct sl_value *value);

/* Drops every field (the payload stays). */
SL_API void sl_event_clear_fields(struct sl_event *ev);

/* Makes `ev` a dead letter: sets field "error" to `msg` (borrowed, `len` bytes; copied)
 * and, when the event has no fields (a raw record), field "message" to its payload, so
 * that the line is kept whole beside the reason. When the payload is not valid UTF-8, its
 * JSON form would show U+FFFD for the bad bytes (sl_json_escape), so field
 * "message_base64" gets the payload in base64 (RFC 4648, padded): the dead letter can be
 * replayed byte for byte. These fields may take the event past SL_EVENT_MAX_FIELDS: a dead
 * letter is never refused for its size. Returns 0 or SL_ENOMEM. */
SL_API int sl_event_set_error(struct sl_event *ev, const char *msg, size_t len);

/* Marks `ev` as pruned: the stage holding it proved that the condition of the filter it
 * sends its default output to cannot hold on it (predicate pushdown: stage.h,
 * sl_stage_downstream_condition). That filter then drops the event as its condition
 * would have, counted as one of its drops, without evaluating it. Only a stage that was
 * given a downstream condition may prune, and only events it emits to its default
 * output. */
SL_API void sl_event_prune(struct sl_event *ev);

/* True when `ev` was pruned (sl_event_prune). */
SL_API bool sl_event_pruned(const struct sl_event *ev);

/* ---- fields and the payload ------------------------------------------------------------
 *
 * An event is in one of three states, which decide its JSON form (sl_event_write_json):
 *
 *   raw      the payload is a record nobody parsed (a line as a source read it); the
 *            fields, if any, are beside it (a source's host or file name, fields a
 *            stage set). JSON form: {"message":"<payload>", <fields>}. This is the state
 *            of every new event and of any event after sl_event_set_payload().
 *   in sync  the payload is the JSON text of exactly these fields: a JSON parser indexed
 *            it (sl_event_add_field, then sl_event_fields_synced()) and nobody changed a
 *            field since. JSON form: the payload bytes, untouched (zero copy), a repeated
 *            member name included as it came (readers take its last value, as lookups do).
 *   parsed   the fields hold the payload's content but are no longer its JSON text: a
 *            field was set, removed or renamed after the parse, or a parser of another
 *            format (regex, logfmt, CSV), or a JSON parser merging into fields the event
 *            already had, called sl_event_fields_changed_mark(). JSON form: the fields.
 *
 * sl_event_set/remove/rename/clear_fields move "in sync" to "parsed" and leave the other
 * states as they are. */

/* True unless the event is "in sync" (above): its payload is the JSON text of its
 * fields, so that a JSON writer may write the payload as it is. A raw record is
 * "changed" in this sense even when no field was ever set. */
SL_API bool sl_event_fields_changed(const struct sl_event *ev);

/* Declares that the fields hold the payload's content but are not its JSON text (state
 * "parsed", above): parsers of formats other than JSON call it once they have added
 * their fields, and so does a JSON parser that merged members into existing fields. */
SL_API void sl_event_fields_changed_mark(struct sl_event *ev);

/* Declares the payload to be the JSON text of the fields (state "in sync", above): a JSON
 * parser calls it after indexing the payload into an event without fields (an empty
 * object included), a serializer after writing the payload from the fields. */
SL_API void sl_event_fields_synced(struct sl_event *ev);

/* ---- batches --------------------------------------------------------------------- */

/* A new, empty batch for source `stage` (borrowed) to fill. Returns an owned batch: the
 * source hands it to the runtime by returning it from poll(), or releases it with
 * sl_batch_unref(). NULL when memory is exhausted. Loop thread only. */
SL_API struct sl_batch *sl_batch_new(struct sl_stage *stage);

/* Appends an empty event (time 0, no payload, no fields) and returns it; valid until the
 * next append to this batch. NULL when memory is exhausted. */
SL_API struct sl_event *sl_batch_append(struct sl_batch *b);

/* Allocates `size` bytes in the batch arena (alignment 8), valid until the batch is
 * released. NULL when memory is exhausted. */
SL_API void *sl_batch_alloc(struct sl_batch *b, size_t size);

/* Number of events, and the i-th event (NULL when i is out of range). */
SL_API size_t sl_batch_count(const struct sl_batch *b);
SL_API struct sl_event *sl_batch_event(struct sl_batch *b, size_t i);
SL_API const struct sl_event *sl_batch_event_const(const struct sl_batch *b, size_t i);

/* Sum of the payload sizes of the events in the batch. */
SL_API size_t sl_batch_bytes(const struct sl_batch *b);

/* True when the batch has reached the pipeline's batch.max_events or batch.max_bytes:
 * a source should return it now. */
SL_API bool sl_batch_full(const struct sl_batch *b);

/* Takes one more reference to `b` (a stage that keeps a batch beyond the call that
 * handed it over, e.g. multiline holding lines). Loop thread only. */
SL_API void sl_batch_ref(struct sl_batch *b);

/* Drops one reference; the last one frees the batch. NULL is a no-op. A batch dropped
 * this way counts as delivered (its events were consumed on purpose); a sink must use
 * sl_ack() instead. Loop thread only. */
SL_API void sl_batch_unref(struct sl_batch *b);

/* A sink acknowledges `b` (takes the reference write() handed over): every event in it
 * is durable. When all batches derived from a source batch are acknowledged, the
 * source's ack() hook receives it, in the order the source produced its batches.
 * Loop thread only. */
SL_API void sl_ack(struct sl_batch *b);

/* Source-private cookie carried by a batch (for checkpoints: a file id, a Kafka
 * partition). Set by the source; read back in its ack() hook. */
SL_API void sl_batch_set_cookie(struct sl_batch *b, uint64_t cookie);
SL_API uint64_t sl_batch_cookie(const struct sl_batch *b);

#endif
