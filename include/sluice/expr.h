/* sluice: expressions and templates.
 *
 * One small language serves the `filter`, `route` and `remap` stages and the sinks'
 * templates. An expression is parsed and type-checked once, when the config loads, into
 * a tree of typed nodes; evaluating it per event allocates nothing: `level == "error"`
 * is a field lookup, a length check and a memcmp on the raw field span.
 *
 * ---- the language ------------------------------------------------------------------
 *
 * Fields      `level`, `http.status`, `tags[0]`, `a.b[2].c`; a leading dot is allowed
 *             (`.level`). Names are letters, digits, `_` and `@`, not starting with a
 *             digit; any other name is quoted after a dot: `."user-agent"`,
 *             `http."x-request-id"`. A field named like a keyword is quoted too:
 *             `."true"`. A name with '.' or '[' in it can only be quoted as a top-level
 *             name (`."a.b"` is the field called "a.b", never a -> b). As with
 *             sl_event_get(), a top-level field named exactly like a path wins
 *             (`http.status` is the field "http.status" when the event has one). A
 *             path is written without spaces; elsewhere spaces and newlines are free.
 * Literals    "double" or 'single' quoted strings with JSON escapes (\" \' \\ \/ \b \f
 *             \n \r \t \uXXXX), integers (64-bit), floats (1.5, 2e3), true, false, null.
 * Operators   by increasing precedence:
 *               ||
 *               &&
 *               == != < <= > >=  in [..]  =~ /re/  !~ /re/  contains  starts_with
 *               ends_with        (one per operand pair: `a < b < c` is an error)
 *               + -
 *               * / %
 *               ! -              (unary)
 *             `x in [lit, ...]` takes a list of constants. `=~` and `!~` take a regex
 *             literal `/.../flags` (a '/' inside is written `\/`; flags: i caseless,
 *             m multiline, s dot matches newline, x extended, u UTF-8 and Unicode
 *             properties) or a string literal; PCRE2, compiled once with JIT.
 *             contains, starts_with and ends_with are infix (`msg contains "timeout"`)
 *             and also functions (`contains(msg, "timeout")`). `in`, `contains`,
 *             `starts_with` and `ends_with` are words only where an operator is
 *             expected; `true`, `false` and `null` wherever a value is.
 * Functions   exists(field)        true when the field is present (even when null)
 *             lower(s), upper(s)   ASCII case mapping
 *             len(s)               bytes of a string; elements of an array or object
 *             concat(a, b, ...)    the texts joined (1 to 16 arguments; null adds "")
 *             substr(s, start[, n]) bytes from `start` (negative: from the end), at
 *                                  most `n`; clamped to the string, never an error
 *             now()                wall-clock time, integer nanoseconds since the epoch
 *                                  (the unit of sl_event_time())
 *             to_int(x), to_float(x), to_string(x)  conversions; null when impossible
 *                                  (to_int truncates toward zero: to_int(-4.9) = -4)
 *             floor(x), ceil(x), round(x)  the integer below, above, nearest (halves
 *                                  away from zero) of a number; an integer as it is;
 *                                  null outside 64 bits: `floor(status / 100)` is 2
 *                                  for 204, so `{{ floor(status / 100) }}xx` is "2xx"
 *             div(a, b)            a / b rounded down to an integer, like Python's
 *                                  `//`: div(7, 2) = 3, div(-7, 2) = -4, div(7.5, 2)
 *                                  = 3; null for a zero divisor. `a % b` is the
 *                                  integer remainder (its sign follows `a`, as in C)
 *
 * ---- semantics ---------------------------------------------------------------------
 *
 * - A missing field is null. `exists(f)` tells a missing field from one set to null.
 * - `==` is true for equal values of the same kind; integers and floats compare by
 *   value; strings compare by their decoded bytes (JSON escapes in a field are decoded);
 *   `null == null` (so a missing field equals null). Values of different kinds are never
 *   equal: `"200" == 200` is false. `!=` is exactly `!(a == b)`, so `status != 200` is
 *   true for an event without `status`.
 * - `< <= > >=` order numbers by value and strings by bytes; for anything else (null, a
 *   missing field, a string against a number, booleans) they are false.
 * - Arithmetic takes numbers: integers stay integers for + - * % (an overflow, or a
 *   modulo by zero, gives null); `/` always gives a float (division by zero: null); a
 *   float on either side gives a float. A non-number operand gives null.
 * - The text of a value, used by the string operators and functions: a string's
 *   decoded bytes; a number as written in the JSON (a computed one as to_string prints
 *   it); true/false; an object or array as its raw JSON. null has no text: string
 *   operators on it are false, string functions give null (concat skips it).
 * - A condition holds only when it evaluates to `true`. `&&`, `||` and `!` take
 *   booleans; anything else counts as false.
 * - Numbers in events may be JSON text (SL_VALUE_TEXT); they are converted when a
 *   comparison or arithmetic needs the value. Text that is not a number counts as null.
 * - What is known when compiling is checked then: unknown functions, arity, operands
 *   that can never be of the right type (`"a" * 2`, `!"x"`, `ok < true`), comparisons
 *   whose operands can never be of the same kind (`lower(x) == 1`), a bad regex,
 *   division by a constant zero. Constant subexpressions are folded.
 * - Nesting is limited to 128 levels; compiling never crashes or hangs on any input.
 *
 * Memory: evaluation uses an 8 KiB scratch area on the stack for strings built by
 * functions and for decoding escaped strings. sl_expr_eval() and sl_template_render()
 * continue in the event's batch arena when that is full; sl_expr_test() cannot (the
 * event is read-only and its batch may be shared), so there a string value that does
 * not fit the scratch becomes null (its comparisons are false). Only string operators,
 * regexes and functions are concerned, and only beyond 8 KiB per evaluation of decoded
 * escaped strings and function results: plain field values are used in place, and
 * comparisons (== != < ...) decode escaped strings as they go, without the scratch.
 *
 * Regexes: a match needs a PCRE2 match block; each thread creates one the first time it
 * matches a regex and keeps it until the thread exits (one small allocation per thread,
 * never per event). PCRE2's JIT stack is the default one, on the machine stack. A match
 * that exceeds PCRE2's match limit (set to 1,000,000) counts as no match, so a runaway
 * pattern costs a bounded time per event. */
#ifndef SLUICE_EXPR_H
#define SLUICE_EXPR_H

#include <stdbool.h>
#include <stddef.h>

#include <sluice/error.h>
#include <sluice/event.h>

struct sl_expr;     /* opaque: a compiled expression (immutable once compiled) */
struct sl_template; /* opaque: a compiled template */

/* Compiles expression `src` (borrowed, `len` bytes; not kept). Returns an owned
 * expression (free: sl_expr_free), or NULL with `err` (borrowed; may be NULL) filled:
 * code SL_EPARSE (SL_ENOMEM when memory ran out), line and col (1-based, in `src`; col
 * counts UTF-8 characters) and a message saying what was expected and what was found,
 * e.g. "expected an operand after '==', found end of expression". Any thread. */
SL_API struct sl_expr *sl_expr_compile(const char *src, size_t len, struct sl_error *err);

/* Frees `e` (owned). NULL is a no-op. No evaluation of `e` may be running. */
SL_API void sl_expr_free(struct sl_expr *e);

/* Evaluates `e` (borrowed) on `ev` (borrowed) as a condition: true only when the result
 * is the boolean true. Allocates nothing (see "Memory" above). Any thread; several
 * threads may evaluate the same expression at once. */
SL_API bool sl_expr_test(const struct sl_expr *e, const struct sl_event *ev);

/* As sl_expr_test, but tells a false condition from one that could not be evaluated:
 * returns 1 (true), 0 (false), or SL_ELIMIT with the reason in `why` (borrowed; may be
 * NULL) when a value became null for want of room or time (a string beyond the scratch,
 * a regex that reached its match limit) and the answer depends on it (`a || b` with b
 * true is 1 whatever a is), so that a filter can send the event to its `on_error`
 * rather than drop it as false. Any thread, as sl_expr_test(). */
SL_API int sl_expr_check(const struct sl_expr *e, const struct sl_event *ev, struct sl_error *why);

/* Evaluates `e` (borrowed) on `ev` (borrowed) into `*out` (borrowed). The spans of
 * `out` point into the event's batch (field values, strings built by functions, which
 * are allocated with sl_event_alloc) or into `e` (string constants): valid until the
 * batch is released or `e` is freed, whichever comes first. A missing field or a type
 * mismatch gives null, not an error. Returns 0, or SL_ENOMEM (then `out` is null) when
 * the batch arena could not grow. Any thread, as sl_expr_test(); `ev`'s batch must be
 * used by this thread alone (true of the event a transform's map() receives). */
SL_API int sl_expr_eval(const struct sl_expr *e, struct sl_event *ev, struct sl_value *out);

/* ---- byte prefilters (predicate pushdown) --------------------------------------------
 *
 * Some conditions imply bytes in the JSON text an event was parsed from: `level ==
 * "error"` is true only on text that holds `"error"` (or an escape that could spell it).
 * A parser that knows a filter comes next can then drop, without indexing it, a line that
 * lacks the bytes (stage.h, sl_stage_downstream_condition).
 *
 * The bytes are implied by `field == "string"`, `field in ["a", "b"]` (string literals
 * only), an `&&` with such an operand, and an `||` of such operands (at most 16 strings
 * in all); any other condition implies none (`status >= 500`, `level != "debug"`). */

struct sl_expr_prefilter; /* opaque: the bytes a condition implies; immutable */

/* The prefilter of condition `e` (borrowed; not referenced afterwards), or NULL when the
 * condition implies no bytes (or memory ran out: a prefilter is only an optimisation).
 * Owned: free with sl_expr_prefilter_free. Any thread. */
SL_API struct sl_expr_prefilter *sl_expr_prefilter_new(const struct sl_expr *e);
SL_API void sl_expr_prefilter_free(struct sl_expr_prefilter *pf);

/* False only when the condition cannot hold on an event whose fields are exactly the
 * members of the JSON object text `json` (borrowed, `len` bytes; an event without fields
 * indexed by sl_json_each_member, member names decoded): sl_expr_check() would answer 0
 * (false, without meeting a limit). The test is a byte search: the text holds none of the
 * implied strings with their quotes, and no escape that could spell one of them (for
 * literals of printable ASCII other than '"', '\\' and '/': a \u00XX escape of one of
 * their bytes; for other literals: any backslash). It does not validate `json`: a caller
 * must know the text is a valid object before it acts on `false`. True when `pf` is
 * NULL. Any thread. */
SL_API bool sl_expr_prefilter_may_match(const struct sl_expr_prefilter *pf, const char *json,
                                        size_t len);

/* ---- templates ---------------------------------------------------------------------- */

/* Compiles template `src` (borrowed, `len` bytes; not kept): text in which each
 * `{{ expression }}` is replaced by the text of the expression's value, e.g.
 * `logs/{{ service }}/app-{{ lower(level) }}.log`. Text outside `{{ }}` is copied as it
 * is; a literal "{{" is written `{{ "{{" }}`. Returns an owned template (free:
 * sl_template_free), or NULL with `err` filled as by sl_expr_compile (line:col in the
 * whole template). Any thread. */
SL_API struct sl_template *sl_template_compile(const char *src, size_t len, struct sl_error *err);

/* Frees `t` (owned). NULL is a no-op. */
SL_API void sl_template_free(struct sl_template *t);

/* Renders `t` (borrowed) for `ev` (borrowed) into `buf` (borrowed, `cap` bytes), like
 * snprintf: returns the length of the whole rendering (without the terminating NUL);
 * when cap > 0, writes as much as fits and a NUL, so the output is complete when the
 * result is < cap. A value renders as its text (see above); null and missing fields
 * render as nothing. Strings that do not fit the scratch area are built in the event's
 * batch arena; should that fail, they render as nothing. `ev` may be NULL (every field
 * is then missing, and nothing is built in an arena): enough for a constant template.
 * Any thread, as sl_expr_eval(). */
SL_API size_t sl_template_render(const struct sl_template *t, struct sl_event *ev, char *buf,
                                 size_t cap);

/* What a piece of a rendering is (sl_template_each). */
enum sl_template_piece {
    SL_TEMPLATE_TEXT = 0, /* literal text of the template */
    SL_TEMPLATE_VALUE,    /* the text of one `{{ }}`'s value */
    SL_TEMPLATE_NULL,     /* one `{{ }}` whose value is null or a missing field: no text */
};

/* Receives one piece of a rendering: `s` (borrowed, valid during the call only) holds
 * `len` bytes (NULL and 0 for SL_TEMPLATE_NULL). Returns 0 to go on, anything else to
 * stop the walk. */
typedef int sl_template_piece_fn(void *arg, enum sl_template_piece kind, const char *s, size_t len);

/* Renders `t` (borrowed) for `ev` (borrowed; may be NULL: every field is missing) piece
 * by piece, for callers that treat values apart from literal text (a sink that keeps
 * field values from adding path separators, or refuses missing fields): calls `fn`
 * synchronously, in template order, with `arg` (passed through), once per literal part
 * (SL_TEMPLATE_TEXT) and once per `{{ }}` (SL_TEMPLATE_VALUE with the text of its value,
 * as sl_template_render writes it; SL_TEMPLATE_NULL when it is null). Empty literal
 * parts are skipped.
 *
 * Unlike sl_template_render(), it never writes to `ev` or its batch, so it may run on any
 * thread that may read the batch (an executor thread holding a reference to a batch other
 * stages read at the same time): strings built by functions are limited to the 8 KiB
 * scratch, per `{{ }}`, and one that does not fit renders as null; a field value needs
 * no scratch, and an escaped string field longer than the scratch is decoded into heap
 * memory freed before this returns.
 *
 * Returns 0 after the last piece; the first non-zero value `fn` returned (the walk
 * stops there); or SL_ENOMEM when that heap memory could not be had (`fn` is not called
 * for that piece). Any thread. */
SL_API int sl_template_each(const struct sl_template *t, const struct sl_event *ev,
                            sl_template_piece_fn *fn, void *arg);

/* True when `t` (borrowed) renders the same text for every event (no `{{ }}`, or only
 * constant expressions): a sink can then render it once with any event. */
SL_API bool sl_template_is_constant(const struct sl_template *t);

/* Calls `fn` with the path of every field the expression reads (as written: "http.status",
 * "tags[0]"), in source order, a path once per use; `exists(f)` reads none (it asks). A
 * non-zero return of `fn` stops the walk and is returned. For `validate` (fields no stage
 * before sets) and tools. */
SL_API int sl_expr_fields(const struct sl_expr *e,
                          int (*fn)(void *arg, const char *path, size_t len), void *arg);
/* The same for every expression of a template. */
SL_API int sl_template_fields(const struct sl_template *t,
                              int (*fn)(void *arg, const char *path, size_t len), void *arg);

struct sl_config;

/* Compiles the expression (or template) written in config scalar `node` (borrowed). On
 * an error, `err` (borrowed, may be NULL) gets SL_ECONFIG, the position in the config
 * file (the scalar's line:col moved by the error's place in the text) and the message
 * prefixed by `what` (borrowed, e.g. "route 'errors'"), and NULL is returned; a node
 * that is not a scalar is an error too. Returns an owned expression (free:
 * sl_expr_free) or template (free: sl_template_free). Any thread. */
SL_API struct sl_expr *sl_expr_compile_config(const struct sl_config *node, const char *what,
                                              struct sl_error *err);
SL_API struct sl_template *sl_template_compile_config(const struct sl_config *node,
                                                      const char *what, struct sl_error *err);

#endif
