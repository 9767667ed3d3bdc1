/* sluice: the zero-copy JSON reader and writer.
 *
 * Reads JSON text in place: values are spans into the caller's bytes, nothing is
 * allocated, strings keep their escapes until someone asks for the decoded bytes
 * (SL_VALUE_ESCAPED, sl_value_unescape), numbers keep their text until someone asks for
 * the number (SL_VALUE_TEXT, sl_value_number).
 *
 * The reader is strict RFC 8259: one value, optionally surrounded by whitespace (space,
 * tab, LF, CR); no byte order mark, comments, trailing commas, single quotes, leading
 * zeros, `+1`, `.5`, `1.`, NaN or Infinity; strings are valid UTF-8 (no overlong forms,
 * no encoded surrogates, nothing above U+10FFFF) with no raw control characters and only
 * the escapes \" \\ \/ \b \f \n \r \t \uXXXX. A \uXXXX escape that is a lone UTF-16
 * surrogate is accepted (sl_value_unescape turns it into U+FFFD). Containers may nest
 * SL_JSON_MAX_DEPTH deep. Input is never read past `len` and need not be NUL-terminated.
 *
 * Error offsets: when text is rejected, `*err_off` is the offset of the first byte at
 * which it stops being the beginning of a valid document, or `len` when the text ends
 * too early. So json[0, *err_off) is always a valid document or a proper prefix of one.
 *
 * Every function here is reentrant, keeps no state and may be called from any thread. */
#ifndef SLUICE_JSON_H
#define SLUICE_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <sluice/error.h>
#include <sluice/event.h>

/* Deepest nesting of objects and arrays the reader accepts; deeper text is SL_EPARSE
 * (at the bracket that goes one level too deep). The reader does not recurse, so the
 * limit protects callers, not the reader's stack. */
#define SL_JSON_MAX_DEPTH 512

/* ---- reading ---------------------------------------------------------------------- */

/* Checks that `json` (borrowed, `len` bytes) is one valid JSON value. Returns 0, or
 * SL_EPARSE with `*err_off` (borrowed, may be NULL) set to the offset of the error (see
 * the top of this file). */
SL_API int sl_json_validate(const char *json, size_t len, size_t *err_off);

/* Walks the members of the object `json` (borrowed, `len` bytes) in one pass, in text
 * order, validating as it goes, and calls `fn` synchronously for each member with `arg`
 * (passed through). `name` (valid until `json` is freed) holds `name_len` bytes of the
 * member name without its quotes, still escaped when `name_escaped` (decode it with
 * sl_value_unescape on an SL_STRING value); `v` (borrowed: copy the struct to keep it) is
 * the value, its spans into `json`. `fn` returns 0 to go on, anything else to stop.
 * Values are typed as follows:
 *   - strings: SL_STRING, the bytes between the quotes, SL_VALUE_ESCAPED when they hold
 *     a backslash, else SL_VALUE_JSON_SAFE (they need no escaping: checked as read);
 *   - numbers: SL_INT when the text has no '.', 'e' or 'E', else SL_FLOAT; both carry
 *     SL_VALUE_TEXT with the text in s/len (convert with sl_value_number; an integer out
 *     of int64 range then becomes SL_FLOAT);
 *   - true/false: SL_BOOL; null: SL_NULL;
 *   - objects and arrays: SL_JSON, the raw text including the brackets (validated).
 * Duplicate names are reported as often as they occur.
 *
 * Returns 0 after the last member; the first non-zero value `fn` returns (the walk
 * stops there); SL_EPARSE with `*err_off` (borrowed, may be NULL) when the text is not
 * one valid object (a top-level value of another kind is rejected at its first byte); or
 * SL_EINVAL with `*err_off` at the first byte of a value longer than UINT32_MAX bytes
 * (struct sl_value.len cannot hold it). Because the walk is a single pass, `fn` may have
 * been called for the members before an error: a caller that builds an index must drop
 * it when the result is not 0. `fn` must not be NULL. */
SL_API int sl_json_each_member(const char *json, size_t len,
                               int (*fn)(void *arg, const char *name, size_t name_len,
                                         bool name_escaped, const struct sl_value *v),
                               void *arg, size_t *err_off);

/* Finds `path` (borrowed, `path_len` bytes: "a.b", "tags[0]", "a.b[2].c"; a leading '.'
 * is allowed) inside the JSON object or array text `json` (borrowed). Returns 0 with
 * `*out` filled (spans into `json`), SL_ENOTFOUND, or SL_EPARSE for malformed text.
 *
 * Path syntax: segments are member names separated by '.', and array indexes in
 * brackets ("[0]", decimal). A leading '.' is skipped; an empty path ("" or ".") names the
 * whole document. Names are compared with the decoded member names, byte for byte (a
 * member written "caf\u00e9" matches the path "café"); a name cannot contain '.' or '['.
 * When an object repeats a name, the last member of that name is used (as jq, Python and
 * JavaScript read it), so the object is read to its end. Values are typed
 * as by sl_json_each_member. The whole text is validated, whatever the path:
 * SL_ENOTFOUND is only returned for valid text, and `*out` (borrowed) is written only on
 * success. Also returns SL_EINVAL for a malformed path (empty segment, index that is not
 * digits, unclosed bracket) or a found value longer than UINT32_MAX bytes. Looking into a
 * value that is not a container, a missing member, or an index past the end of the
 * array, is SL_ENOTFOUND. */
SL_API int sl_json_get(const char *json, size_t len, const char *path, size_t path_len,
                       struct sl_value *out);

/* ---- writing ---------------------------------------------------------------------- */

/* The most bytes sl_json_escape can write for `len` input bytes: a control character
 * becomes six ("\u001f"). Note that it can overflow for len > SIZE_MAX / 6. */
#define SL_JSON_ESCAPE_MAX(len) ((len)*6)

/* Writes the JSON string form of the bytes `s` (borrowed, `len` bytes) without the
 * surrounding quotes into `out` (borrowed, at least SL_JSON_ESCAPE_MAX(len) bytes, or
 * exactly sl_json_escaped_len(s, len)). Escapes '"' and '\\' with a backslash, the
 * control characters U+0000..U+001F as \b \f \n \r \t or \u00XX; copies everything else,
 * '/' and DEL included. Bytes that are not valid UTF-8 are replaced with U+FFFD (EF BF
 * BD), one replacement per maximal ill-formed subsequence (the Unicode recommendation),
 * so the output is always valid JSON string content. Does not NUL-terminate. Returns the
 * bytes written. */
SL_API size_t sl_json_escape(const char *s, size_t len, char *out);

/* The bytes sl_json_escape(s, len, ...) would write, for sizing a buffer exactly. */
SL_API size_t sl_json_escaped_len(const char *s, size_t len);

/* Writes `v` (borrowed) as JSON text into `out` (borrowed, `cap` bytes; may be NULL when
 * cap is 0). Returns the bytes the text needs; writes them only when that is <= cap, and
 * writes nothing otherwise, so a caller can ask for the size with cap 0, or try a buffer
 * and grow it. Does not NUL-terminate. Per type:
 *   - SL_NULL, SL_BOOL: null, true, false;
 *   - SL_INT: decimal; SL_FLOAT: the shortest of %.15g/%.16g/%.17g that reads back as the
 *     same double, with ".0" added to integral values so that they read back as SL_FLOAT;
 *     NaN and infinities are written as null;
 *   - SL_VALUE_TEXT numbers: the text as it is when it is a JSON number, otherwise the
 *     number it converts to (sl_value_number), or null when it does not convert;
 *   - SL_STRING: in quotes, escaped as by sl_json_escape; an SL_VALUE_ESCAPED or
 *     SL_VALUE_JSON_SAFE string is taken to be JSON string content already (as the reader
 *     returns it) and copied;
 *   - SL_JSON: the raw text, copied unchecked;
 *   - any other type: null. */
SL_API size_t sl_json_write_value(const struct sl_value *v, char *out, size_t cap);

/* Writes one object member, `"name":value`, with `name` (borrowed, `name_len` decoded
 * bytes) escaped as by sl_json_escape and `v` (borrowed) as by sl_json_write_value, into
 * `out` (borrowed, `cap` bytes). Returns the bytes needed; writes only when they fit. A
 * serializer writes '{', the members separated by ',', then '}'. */
SL_API size_t sl_json_write_member(const char *name, size_t name_len, const struct sl_value *v,
                                   char *out, size_t cap);

/* Writes event `ev` (borrowed) as one JSON object into `out` (borrowed, `cap` bytes; NULL
 * allowed with cap 0). Returns the bytes needed; writes only when they fit (as
 * sl_json_write_value). What it writes depends on the event's state (event.h, "fields
 * and the payload"):
 *   - in sync (a JSON parser indexed the payload and nobody changed a field since;
 *     sl_event_fields_changed() false): the payload bytes, untouched;
 *   - parsed, then changed, or parsed from another format: the fields in order,
 *     {"name":value,...} ({} when there are none), a repeated name once: its last field,
 *     in its place (JSON values inside fields are written as they came);
 *   - raw (nobody parsed the payload: a line as read, with a source's host field, say):
 *     {"message":"<payload>","name":value,...}: the payload as a JSON string first, then
 *     the fields. "message" is left out when a field of that name exists (the field is
 *     written in its place) or when the event has no payload (NULL: made of fields).
 * So the result is always one valid JSON object, whatever the payload holds, except in
 * the first case, where the payload is trusted to be the JSON text its parser validated.
 * Does not NUL-terminate. Thread: whoever holds the event; reads it only. */
SL_API size_t sl_event_write_json(const struct sl_event *ev, char *out, size_t cap);

#endif
