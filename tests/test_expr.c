/* Expressions: every operator and function on hits, misses and type mismatches, field
 * paths into JSON, escaped strings, JSON-text numbers, compile errors with positions,
 * config errors through a stage's schema, and concurrent evaluation. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "expr/internal.h"
#include "helpers.h"

static struct sl_pipeline *p;
static struct sl_batch *b;
static struct sl_event *ev;       /* the standard event, see setup() */
static struct sl_expr *live[256]; /* compiled in a test, freed by teardown */
static size_t nlive;

/* ---- events --------------------------------------------------------------------------- */

static void add(struct sl_event *e, const char *name, struct sl_value v)
{
    cr_assert_eq(sl_event_add_field(e, name, strlen(name), &v), 0);
}

static struct sl_value str(const char *s)
{
    return sl_value_string(s, strlen(s));
}

/* A string as a JSON parser indexes it: escapes still in the span. */
static struct sl_value esc(const char *raw)
{
    struct sl_value v = sl_value_string(raw, strlen(raw));
    v.flags = SL_VALUE_ESCAPED;
    return v;
}

/* A number as a JSON parser indexes it: text only. */
static struct sl_value num(const char *text)
{
    struct sl_value v = {.type = strpbrk(text, ".eE") ? SL_FLOAT : SL_INT,
                         .flags = SL_VALUE_TEXT,
                         .s = text,
                         .len = (uint32_t)strlen(text)};
    return v;
}

static struct sl_value json(const char *text)
{
    return sl_value_json(text, strlen(text));
}

static struct sl_event *new_event(void)
{
    struct sl_event *e = sl_batch_append(b);
    cr_assert_not_null(e);
    return e;
}

static void setup(void)
{
    struct sl_error err = {0};
    p = sl_pipeline_new(NULL, NULL, &err);
    cr_assert_not_null(p, "%s", err.msg);
    struct sl_stage *src = t_add(p, "src", &t_counter, NULL);
    b = sl_batch_new(src);
    cr_assert_not_null(b);
    ev = new_event();
    add(ev, "level", str("error"));
    add(ev, "latency_ms", num("750"));
    add(ev, "status", num("503"));
    add(ev, "ratio", num("0.25"));
    add(ev, "msg", str("upstream timeout after 30s"));
    add(ev, "path", str("/api/v1/users"));
    add(ev, "note", esc("line\\none \\\"quoted\\\" caf\\u00e9 \\ud83d\\ude00"));
    add(ev, "http",
        json("{\"status\": 404, \"method\": \"GET\", "
             "\"headers\": {\"user-agent\": \"curl/8\"}}"));
    add(ev, "tags", json("[\"a\", \"b\", \"c\"]"));
    add(ev, "user-agent", str("curl/8.1"));
    add(ev, "a.b", str("dotted"));
    add(ev, "ok", sl_value_bool(true));
    add(ev, "nothing", sl_value_null());
    add(ev, "zero", sl_value_int(0));
    add(ev, "bad", num("12x"));
    add(ev, "big", sl_value_int(INT64_MAX));
}

static void teardown(void)
{
    for (size_t i = 0; i < nlive; i++) sl_expr_free(live[i]);
    nlive = 0;
    sl_batch_unref(b);
    sl_pipeline_free(p);
}

TestSuite(expr, .init = setup, .fini = teardown, .timeout = 30);

/* ---- helpers ------------------------------------------------------------------------------ */

static struct sl_expr *cx(const char *src)
{
    struct sl_error err = {0};
    struct sl_expr *x = sl_expr_compile(src, strlen(src), &err);
    cr_assert_not_null(x, "compile `%s`: %d:%d: %s", src, err.line, err.col, err.msg);
    cr_assert_lt(nlive, sizeof live / sizeof *live);
    live[nlive++] = x;
    return x;
}

static struct sl_value ev_value(const char *src)
{
    struct sl_value v;
    cr_assert_eq(sl_expr_eval(cx(src), ev, &v), 0, "eval `%s`", src);
    return v;
}

/* A condition: sl_expr_test, sl_expr_check and sl_expr_eval must agree (no condition on
 * the standard event reaches a limit: check answers 1 or 0 and leaves `why` alone). */
static void is(const char *src, bool want)
{
    struct sl_expr *x = cx(src);
    bool got = sl_expr_test(x, ev);
    cr_assert_eq(got, want, "`%s` tested %d, expected %d", src, got, want);
    struct sl_error why = {0};
    int checked = sl_expr_check(x, ev, &why);
    cr_assert_eq(checked, want, "`%s` checked %d, expected %d (%s)", src, checked, want, why.msg);
    cr_assert_eq(why.code, 0, "`%s`: %s", src, why.msg);
    struct sl_value v = ev_value(src);
    cr_assert_eq(v.type, SL_BOOL, "`%s` gave type %d", src, v.type);
    cr_assert_eq(v.b, want, "`%s` evaluated to %d", src, v.b);
}

static void is_int(const char *src, int64_t want)
{
    struct sl_value v = ev_value(src);
    cr_assert_eq(v.type, SL_INT, "`%s` gave type %d", src, v.type);
    cr_assert_eq(v.i, want, "`%s` = %lld, expected %lld", src, (long long)v.i, (long long)want);
}

static void is_float(const char *src, double want)
{
    struct sl_value v = ev_value(src);
    cr_assert_eq(v.type, SL_FLOAT, "`%s` gave type %d", src, v.type);
    cr_assert_eq(v.f, want, "`%s` = %.17g, expected %.17g", src, v.f, want);
}

static void is_str(const char *src, const char *want)
{
    struct sl_value v = ev_value(src);
    cr_assert_eq(v.type, SL_STRING, "`%s` gave type %d", src, v.type);
    char buf[256];
    int n = sl_value_unescape(&v, buf, sizeof buf);
    cr_assert_geq(n, 0);
    cr_assert(n == (int)strlen(want) && memcmp(buf, want, (size_t)n) == 0,
              "`%s` = \"%.*s\", expected \"%s\"", src, n, buf, want);
}

static void is_null(const char *src)
{
    struct sl_value v = ev_value(src);
    cr_assert_eq(v.type, SL_NULL, "`%s` gave type %d, expected null", src, v.type);
}

static void bad(const char *src, int line, int col, const char *msg)
{
    struct sl_error err = {0};
    struct sl_expr *x = sl_expr_compile(src, strlen(src), &err);
    cr_assert_null(x, "`%s` compiled", src);
    cr_assert_eq(err.code, SL_EPARSE, "`%s`: code %d", src, err.code);
    cr_assert_str_eq(err.msg, msg, "`%s`", src);
    cr_assert(err.line == line && err.col == col, "`%s`: at %d:%d, expected %d:%d", src, err.line,
              err.col, line, col);
}

/* ---- comparisons ------------------------------------------------------------------------------
 */

Test(expr, string_equality_hit_miss_and_mismatch)
{
    is("level == \"error\"", true);
    is("level == 'error'", true);
    is("\"error\" == level", true);
    is("level == \"warn\"", false);
    is("level == \"erro\"", false);
    is("level != \"error\"", false);
    is("level != \"warn\"", true);
    is("latency_ms == \"750\"", false); /* a number is not a string */
    is("level == 1", false);
    is("ok == true", true);
    is("ok == 1", false);
    is("ok != false", true);
}

Test(expr, field_against_string_uses_the_fast_path)
{
    struct sl_expr *x = cx("\"error\" == level");
    cr_assert_eq(x->root->op, SL__OP_FIELD_EQ);
    cr_assert_eq(cx("level != 'x'")->root->op, SL__OP_FIELD_NE);
}

Test(expr, numbers_from_json_text_compare_by_value)
{
    is("latency_ms > 500", true);
    is("latency_ms >= 750", true);
    is("latency_ms < 750", false);
    is("latency_ms <= 750", true);
    is("latency_ms == 750", true);
    is("latency_ms == 750.0", true);
    is("latency_ms != 750", false);
    is("ratio < 0.5", true);
    is("ratio == 0.25", true);
    is("ratio > 1", false);
    is("status >= 500 && status < 600", true);
    is("bad == null", true); /* text that is no number counts as null */
    is("bad > 1", false);
    is("big > 9223372036854775806", true);
}

Test(expr, ordering_of_strings_and_mismatched_kinds)
{
    is("level > \"debug\"", true);
    is("level < \"a\"", false);
    is("level >= \"error\"", true);
    is("\"abc\" < \"abd\"", true);
    is("level > 1", false);
    is("level < 1", false);
    is("ok < missing", false); /* booleans have no order */
    is("http > 1", false);
}

Test(expr, missing_fields_are_null)
{
    is("missing == null", true);
    is("missing == \"x\"", false);
    is("missing != \"x\"", true);
    is("missing > 1", false);
    is("missing < 1", false);
    is("missing <= 1", false);
    is("!missing", true);
    is("exists(missing)", false);
    is("exists(nothing)", true);
    is("nothing == null", true);
    is("exists(level)", true);
    is("missing == missing2", true);
    is_null("missing");
    is_null("missing + 1");
}

Test(expr, logic_and_precedence)
{
    is("false || true && false", false);
    is("(false || true) && false", false);
    is("true || false && false", true);
    is("!false && true", true);
    is("!(level == \"error\")", false);
    is("level == \"warn\" || level == \"error\" && latency_ms > 500", true);
    is("level == \"error\" && latency_ms > 500", true);
    is("level == \"error\" && latency_ms > 1000", false);
    is("level && true", false); /* a string is not true */
    is("ok && ok", true);
    is("ok || missing", true);
    is("missing || ok", true);
}

Test(expr, in_lists)
{
    is("level in [\"warn\", \"error\"]", true);
    is("level in [\"warn\", \"fatal\"]", false);
    is("level in []", false);
    is("status in [500, 503]", true);
    is("status in [500.0, 503.0]", true);
    is("status in [\"503\"]", false);
    is("missing in [null]", true);
    is("zero in [-1, 0, 1]", true);
    is("latency_ms in [1 + 749]", true);
}

/* ---- strings ------------------------------------------------------------------------------------
 */

Test(expr, regex_match)
{
    is("msg =~ /time(out)?/", true);
    is("msg =~ /TIMEOUT/", false);
    is("msg =~ /TIMEOUT/i", true);
    is("msg !~ /timeout/", false);
    is("msg !~ /nothing/", true);
    is("status =~ /^5\\d\\d$/", true); /* a JSON number matches its text */
    is("path =~ /^\\/api\\/v\\d+\\//", true);
    is("level =~ \"^err\"", true);
    is("missing =~ /.*/", false);
    is("missing !~ /x/", false); /* null has no text */
    is("note =~ /\"quoted\"/", true);
    is("note =~ /^line$/m", true);
    is("note =~ /line.one/", false);
    is("note =~ /line.one/s", true);
    is("level =~ / e r r /x", true);
    is("note =~ /caf\\x{e9}/u", true);
}

Test(expr, contains_starts_with_ends_with)
{
    is("msg contains \"timeout\"", true);
    is("msg contains \"Timeout\"", false);
    is("msg contains \"\"", true);
    is("contains(msg, \"after\")", true);
    is("msg starts_with \"upstream\"", true);
    is("starts_with(msg, \"timeout\")", false);
    is("msg ends_with \"30s\"", true);
    is("ends_with(msg, \"30\")", false);
    is("msg contains 30", true); /* a number's text */
    is("missing contains \"x\"", false);
    is("level contains missing", false);
    is("\"ab\" contains \"abc\"", false);
    is("note contains \"\\n\"", true);
    is("note ends_with \"\\ud83d\\ude00\"", true);
}

Test(expr, escaped_field_strings_compare_decoded)
{
    is("note == \"line\\none \\\"quoted\\\" café 😀\"", true);
    is("note == \"line\\\\none \\\"quoted\\\" café 😀\"", false);
    is("note != \"line\\none \\\"quoted\\\" caf\\u00e9 \\ud83d\\ude00\"", false);
    is("note > \"line\"", true);
    is("note < \"line\\no\"", false);
    is_int("len(note)", 28);
}

Test(expr, escaped_fields_in_a_fresh_event)
{
    struct sl_event *e = new_event();
    add(e, "s", esc("a\\tb"));
    add(e, "lone", esc("x\\ud800y"));
    add(e, "badesc", esc("a\\qb"));
    cr_assert(sl_expr_test(cx("s == \"a\\tb\""), e));
    cr_assert(sl_expr_test(cx("lone == \"x\\ufffdy\""), e));
    cr_assert(sl_expr_test(cx("badesc == \"a\\\\qb\""), e)); /* invalid escapes stay as they are */
    cr_assert_not(sl_expr_test(cx("s == \"a\\\\tb\""), e));
}

/* ---- paths
 * ----------------------------------------------------------------------------------------- */

Test(expr, nested_paths_and_quoted_names)
{
    is("http.status == 404", true);
    is("http.method == \"GET\"", true);
    is("http.headers.\"user-agent\" == \"curl/8\"", true);
    is("http.\"headers\".'user-agent' == \"curl/8\"", true);
    is("tags[1] == \"b\"", true);
    is("tags[5] == null", true);
    is("exists(tags[2])", true);
    is("exists(tags[3])", false);
    is(".level == \"error\"", true);
    is(".\"user-agent\" == \"curl/8.1\"", true);
    is(".\"a.b\" == \"dotted\"", true);
    is("http.missing == null", true);
    is("exists(http.status)", true);
    is("exists(http.nope)", false);
    is("level.x == null", true);
    is("http.status > 400 && http.status < 500", true);
    is_int("len(tags)", 3);
    is_int("len(http)", 3);
    is_int("len(http.headers)", 1);
}

/* ---- arithmetic
 * ------------------------------------------------------------------------------------- */

Test(expr, arithmetic)
{
    is_int("1 + 2 * 3", 7);
    is_int("(1 + 2) * 3", 9);
    is_int("10 - 2 - 3", 5);
    is_float("7 / 2", 3.5);
    is_float("8 / 2", 4.0);
    is_int("7 % 3", 1);
    is_int("-7 % 3", -1);
    is_float("7.5 % 2", 1.5);
    is_float("2.5 * 2", 5.0);
    is_float("latency_ms / 1000", 0.75);
    is_int("latency_ms + 1", 751);
    is_int("-latency_ms", -750);
    is_int("- -3", 3);
    is_int("-2 * 3", -6);
    is_float("ratio * 4", 1.0);
    is_null("9223372036854775807 + 1");
    is_null("big * 2");
    is_null("-big - 2");
    is_null("level + 1");
    is_null("latency_ms % zero");
    is_null("latency_ms / zero");
    is_null("-level");
    is("latency_ms * 2 > 1000", true);
}

/* ---- functions
 * -------------------------------------------------------------------------------------- */

Test(expr, case_and_length_functions)
{
    is_str("lower(\"AbC\")", "abc");
    is_str("upper(level)", "ERROR");
    is_str("lower(latency_ms)", "750");
    is_str("upper(note)", "LINE\nONE \"QUOTED\" CAFé 😀");
    is_null("lower(missing)");
    is_int("len(level)", 5);
    is_int("len(\"\")", 0);
    is_int("len(latency_ms)", 3);
    is_null("len(missing)");
    is("lower(level) == \"error\"", true);
    is("upper(level) == \"error\"", false);
}

Test(expr, concat_and_substr)
{
    is_str("concat(\"a\", 1, true, missing, 2.5)", "a1true2.5");
    is_str("concat(level)", "error");
    is_str("concat(level, \"-\", status)", "error-503");
    is_str("concat(tags)", "[\"a\", \"b\", \"c\"]");
    is_str("substr(\"abcdef\", 2)", "cdef");
    is_str("substr(\"abcdef\", -2)", "ef");
    is_str("substr(\"abcdef\", 1, 3)", "bcd");
    is_str("substr(\"abc\", 10)", "");
    is_str("substr(\"abc\", -10, 2)", "ab");
    is_str("substr(\"abc\", 1, -1)", "");
    is_str("substr(msg, 0, 8)", "upstream");
    is_str("substr(note, 5, 3)", "one");
    is_null("substr(missing, 1)");
    is_null("substr(level, missing)");
}

Test(expr, integer_maths)
{
    is_int("floor(status / 100)", 5); /* status 503 */
    is_int("floor(2.7)", 2);
    is_int("floor(-2.1)", -3);
    is_int("ceil(2.1)", 3);
    is_int("ceil(-2.7)", -2);
    is_int("round(2.5)", 3);
    is_int("round(-2.5)", -3);
    is_int("round(2.49)", 2);
    is_int("floor(latency_ms)", 750); /* an integer stays */
    is_int("round(ratio * 10)", 3);   /* 0.25 * 10 = 2.5 */
    is_null("floor(1e30)");
    is_null("floor(missing)");
    is_int("div(7, 2)", 3);
    is_int("div(-7, 2)", -4);
    is_int("div(7, -2)", -4);
    is_int("div(-8, 2)", -4);
    is_int("div(status, 100)", 5);
    is_int("div(7.5, 2)", 3);
    is_int("div(-7.5, 2)", -4);
    is_null("div(status, 0 * latency_ms)");
    is_null("div(-9223372036854775807 - 1, -1)");
    is_null("div(missing, 2)");
    is_int("status % 100", 3);
    is_int("-7 % 2", -1);
    bad("floor(\"a\")", 1, 7, "argument 1 of 'floor' must be a number, found a string");
}

Test(expr, conversions)
{
    is_int("to_int(\"42\")", 42);
    is_int("to_int(\"-4.9\")", -4);
    is_null("to_int(\"x\")");
    is_int("to_int(3.7)", 3);
    is_int("to_int(true)", 1);
    is_int("to_int(latency_ms)", 750);
    is_null("to_int(1e30)");
    is_null("to_int(missing)");
    is_float("to_float(\"2.5\")", 2.5);
    is_float("to_float(3)", 3.0);
    is_float("to_float(ratio)", 0.25);
    is_null("to_float(\"x\")");
    is_str("to_string(42)", "42");
    is_str("to_string(2.5)", "2.5");
    is_str("to_string(3.0)", "3.0");
    is_str("to_string(0.1)", "0.1");
    is_str("to_string(true)", "true");
    is_str("to_string(latency_ms)", "750");
    is_str("to_string(ratio)", "0.25");
    is_null("to_string(null)");
    is("to_int(\"750\") == latency_ms", true);
}

Test(expr, now_is_wall_clock_nanoseconds)
{
    struct timespec a, z;
    clock_gettime(CLOCK_REALTIME, &a);
    struct sl_value v = ev_value("now()");
    clock_gettime(CLOCK_REALTIME, &z);
    cr_assert_eq(v.type, SL_INT);
    cr_assert_geq(v.i, (int64_t)a.tv_sec * 1000000000 + a.tv_nsec);
    cr_assert_leq(v.i, (int64_t)z.tv_sec * 1000000000 + z.tv_nsec);
    cr_assert_neq(cx("now()")->root->op, SL__OP_LIT, "now() must not be folded");
}

Test(expr, constants_are_folded)
{
    struct sl_value v;
    cr_assert(sl__expr_constant(cx("1 + 2 * 3"), &v));
    cr_assert(v.type == SL_INT && v.i == 7);
    cr_assert(sl__expr_constant(cx("concat(\"a\", upper(\"b\"))"), &v));
    cr_assert(v.type == SL_STRING && v.len == 2 && memcmp(v.s, "aB", 2) == 0);
    cr_assert(sl__expr_constant(cx("\"abc\" =~ /B/i && 2 > 1"), &v));
    cr_assert(v.type == SL_BOOL && v.b);
    cr_assert_not(sl__expr_constant(cx("level == \"x\""), NULL));
    cr_assert_eq(cx("level == concat(\"er\", \"ror\")")->root->op, SL__OP_FIELD_EQ);
}

/* ---- memory
 * ------------------------------------------------------------------------------------------ */

Test(expr, eval_builds_strings_in_the_batch_arena)
{
    struct sl_value v = ev_value("concat(level, \"-\", status)");
    char probe; /* the result must not point into a dead stack frame */
    cr_assert(v.type == SL_STRING && v.len == 9 && memcmp(v.s, "error-503", 9) == 0);
    cr_assert((uintptr_t)v.s > (uintptr_t)&probe + 65536 || (uintptr_t)v.s < (uintptr_t)&probe,
              "result points into the stack");
    v = ev_value("level");
    cr_assert(v.type == SL_STRING && v.len == 5 && memcmp(v.s, "error", 5) == 0);
    v = ev_value("latency_ms");
    cr_assert(v.type == SL_INT && (v.flags & SL_VALUE_TEXT)); /* as the event holds it */
}

/* Beyond the 8 KiB scratch, sl_expr_test gives null (documented) and sl_expr_eval goes on
 * in the batch arena. */
Test(expr, results_larger_than_the_scratch)
{
    static char big[10001], bigesc[10003];
    memset(big, 'x', 10000);
    memcpy(bigesc, "\\n", 2);
    memset(bigesc + 2, 'y', 10000);
    struct sl_event *e = new_event();
    add(e, "big", str(big));
    add(e, "bigesc", esc(bigesc));
    struct sl_expr *x = cx("len(upper(big)) == 10000");
    cr_assert_not(sl_expr_test(x, e));
    struct sl_value v;
    cr_assert_eq(sl_expr_eval(x, e, &v), 0);
    cr_assert(v.type == SL_BOOL && v.b);
    cr_assert(sl_expr_test(cx("big contains \"xxx\""), e)); /* plain fields: in place */
    cr_assert(sl_expr_test(cx("bigesc starts_with \"\\nyyy\""), e) == false);
    cr_assert_eq(sl_expr_eval(cx("bigesc starts_with \"\\nyyy\""), e, &v), 0);
    cr_assert(v.type == SL_BOOL && v.b);
    cr_assert(sl_expr_test(cx("bigesc > \"\\nyyy\""), e)); /* comparisons decode as they go */
    cr_assert_eq(sl_expr_eval(cx("upper(big)"), e, &v), 0);
    cr_assert(v.type == SL_STRING && v.len == 10000 && v.s[9999] == 'X');
}

/* ---- conditions that cannot be evaluated (sl_expr_check)
 * ------------------------------------------------------------ */

#define REGEX_LIMIT "the condition cannot be evaluated: a regex reached its match limit"
#define SCRATCH_LIMIT                                                                              \
    "the condition cannot be evaluated: a string built by the expression exceeds its 8 KiB "       \
    "scratch"

/* `src` on `e`: sl_expr_test answers `tested`; sl_expr_check answers `checked` (1, 0 or
 * SL_ELIMIT), with `reason` in `why` for SL_ELIMIT and `why` untouched otherwise. */
static void checks(const char *src, const struct sl_event *e, bool tested, int checked,
                   const char *reason)
{
    struct sl_expr *x = cx(src);
    bool t = sl_expr_test(x, e);
    cr_assert_eq(t, tested, "`%s` tested %d, expected %d", src, t, tested);
    struct sl_error why = {0};
    int c = sl_expr_check(x, e, &why);
    cr_assert_eq(c, checked, "`%s` checked %d, expected %d (%s)", src, c, checked, why.msg);
    if (checked != SL_ELIMIT) {
        cr_assert_eq(why.code, 0, "`%s`: %s", src, why.msg);
        return;
    }
    cr_assert_eq(why.code, SL_ELIMIT, "`%s`", src);
    cr_assert_str_eq(why.msg, reason, "`%s`", src);
}

/* A run of `n` 'a's ending with 'b': `(a+)+$` tries every way of splitting the run
 * (2^n) before it fails. */
static const char *runaway(int n)
{
    static char s[4][128];
    static int next;
    char *r = s[next++ % 4];
    memset(r, 'a', (size_t)n);
    r[n] = 'b';
    r[n + 1] = '\0';
    return r;
}

Test(expr, check_treats_missing_fields_and_failed_functions_as_null_not_as_errors)
{
    struct sl_event *raw = new_event(); /* no fields at all */
    checks("level == \"error\"", raw, false, 0, NULL);
    checks("level != \"error\"", raw, true, 1, NULL);
    checks("missing =~ /(a+)+$/", ev, false, 0, NULL);
    checks("upper(missing) == \"X\"", ev, false, 0, NULL);
    checks("concat(missing, level) == \"error\"", ev, true, 1, NULL);
    checks("len(missing) == null", ev, true, 1, NULL);
    checks("http.nope[2] > 1 || !exists(tags[9])", ev, true, 1, NULL);
    checks("to_int(level) == null && substr(level, missing) == null", ev, true, 1, NULL);
    checks("latency_ms / zero == null", ev, true, 1, NULL);
}

Test(expr, a_regex_that_reaches_the_match_limit_cannot_be_evaluated)
{
    struct sl_event *e = new_event();
    add(e, "msg", str(runaway(30)));
    add(e, "level", str("error"));
    /* The limit must hold with the JIT too, which keeps its own count of the same limit:
     * this regex is JIT-compiled whenever the library has a JIT. */
    struct sl_expr *x = cx("msg =~ /(a+)+$/");
    uint32_t has_jit = 0;
    size_t jit_size = 0;
    pcre2_config(PCRE2_CONFIG_JIT, &has_jit);
    cr_assert_eq(pcre2_pattern_info(x->root->re, PCRE2_INFO_JITSIZE, &jit_size), 0);
    cr_assert_eq(jit_size > 0, has_jit != 0, "JIT available %u, used %zu", has_jit, jit_size);
    checks("msg =~ /(a+)+$/", e, false, SL_ELIMIT, REGEX_LIMIT);
    checks("msg !~ /(a+)+$/", e, true, SL_ELIMIT, REGEX_LIMIT);
    checks("level == \"error\" && msg =~ /(a+)+$/", e, false, SL_ELIMIT, REGEX_LIMIT);
    checks("!(msg =~ /(a+)+$/)", e, true, SL_ELIMIT, REGEX_LIMIT);
    checks("upper(msg) =~ /(A+)+$/", e, false, SL_ELIMIT, REGEX_LIMIT);
    /* The same regex on inputs it settles within the limit. */
    struct sl_event *short_run = new_event();
    add(short_run, "msg", str(runaway(8)));
    checks("msg =~ /(a+)+$/", short_run, false, 0, NULL);
    struct sl_event *all_a = new_event();
    add(all_a, "msg", str("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    checks("msg =~ /(a+)+$/", all_a, true, 1, NULL);
}

Test(expr, a_string_beyond_the_scratch_cannot_be_evaluated)
{
    static char big[10001], half[5001], bigesc[10003];
    memset(big, 'x', 10000);
    memset(half, 'x', 5000);
    memcpy(bigesc, "\\n", 2);
    memset(bigesc + 2, 'y', 10000);
    struct sl_event *e = new_event();
    add(e, "big", str(big));
    add(e, "half", str(half));
    add(e, "bigesc", esc(bigesc));
    checks("upper(big) == \"X\"", e, false, SL_ELIMIT, SCRATCH_LIMIT);
    checks("lower(big) != \"x\"", e, true, SL_ELIMIT, SCRATCH_LIMIT); /* null != "x" */
    checks("concat(big, \"!\") ends_with \"!\"", e, false, SL_ELIMIT, SCRATCH_LIMIT);
    checks("len(upper(big)) == 10000", e, false, SL_ELIMIT, SCRATCH_LIMIT);
    checks("bigesc starts_with \"\\nyyy\"", e, false, SL_ELIMIT, SCRATCH_LIMIT);
    /* The scratch serves the whole evaluation: two 5000-byte results do not both fit. */
    checks("upper(half) == \"x\" || lower(half) == \"x\"", e, false, SL_ELIMIT, SCRATCH_LIMIT);
    /* What needs no scratch: plain fields in place, comparisons decoding as they go. */
    checks("big contains \"xxx\" && len(big) == 10000", e, true, 1, NULL);
    checks("bigesc > \"\\nyyy\"", e, true, 1, NULL);
    checks("upper(substr(big, 0, 4)) == \"XXXX\"", e, true, 1, NULL);
    checks("upper(half) == \"x\"", e, false, 0, NULL);
    /* sl_expr_eval has the batch arena, and gets the answers right. */
    struct sl_value v;
    cr_assert_eq(sl_expr_eval(cx("len(upper(big)) == 10000"), e, &v), 0);
    cr_assert(v.type == SL_BOOL && v.b);
}

/* A limit reached in one operand of && or || is moot when another operand decides the
 * answer without reaching one: `a || b` with b true is true whatever a would have been.
 * sl_expr_test's answers stay as they were; only the doubt is dropped. */
Test(expr, a_limit_that_cannot_change_the_answer_is_not_an_error)
{
    static char big[10001];
    memset(big, 'x', 10000);
    struct sl_event *e = new_event();
    add(e, "msg", str(runaway(30)));
    add(e, "level", str("error"));
    add(e, "big", str(big));
    checks("msg =~ /(a+)+$/ || level == \"error\"", e, true, 1, NULL);
    checks("upper(big) == \"X\" || level == \"error\"", e, true, 1, NULL);
    checks("msg =~ /(a+)+$/ && level == \"warn\"", e, false, 0, NULL);
    checks("!(msg =~ /(a+)+$/) && level == \"warn\"", e, false, 0, NULL);
    checks("!(msg =~ /(a+)+$/ || level == \"error\")", e, false, 0, NULL);
    checks("(msg =~ /(a+)+$/ || level == \"error\") == true", e, true, 1, NULL);
    /* ... but not when the other operands leave the answer open. */
    checks("msg =~ /(a+)+$/ || level == \"warn\"", e, false, SL_ELIMIT, REGEX_LIMIT);
    checks("!(msg =~ /(a+)+$/) || level == \"warn\"", e, true, SL_ELIMIT, REGEX_LIMIT);
    checks("msg =~ /(a+)+$/ && level == \"error\"", e, false, SL_ELIMIT, REGEX_LIMIT);
    checks("(msg =~ /(a+)+$/ || level == \"warn\") && level == \"error\"", e, false, SL_ELIMIT,
           REGEX_LIMIT);
    checks("level == \"error\" && (upper(big) == \"X\" || msg =~ /(a+)+$/)", e, false, SL_ELIMIT,
           SCRATCH_LIMIT);
}

/* A constant is folded when the expression compiles, but not one whose value a limit
 * decided: each evaluation meets the limit again and says so. */
Test(expr, a_constant_that_reaches_a_limit_is_not_folded_into_an_answer)
{
    char src[128];
    snprintf(src, sizeof src, "\"%s\" =~ /(a+)+$/", runaway(30));
    checks(src, ev, false, SL_ELIMIT, REGEX_LIMIT);
    cr_assert_not(sl__expr_constant(cx(src), NULL));
    snprintf(src, sizeof src, "\"%s\" =~ /(a+)+$/", runaway(8));
    checks(src, ev, false, 0, NULL);
    cr_assert(sl__expr_constant(cx(src), NULL));
}

/* ---- compile errors
 * --------------------------------------------------------------------------------- */

Test(expr, compile_errors_say_what_was_expected_and_where)
{
    bad("level ==", 1, 9, "expected an operand after '==', found end of expression");
    bad("level ==   ", 1, 9, "expected an operand after '==', found end of expression");
    bad("", 1, 1, "expected an expression, found end of expression");
    bad("level == \"error", 1, 10,
        "expected a closing \" to end the string, found end of expression");
    bad("(a == 1", 1, 8, "expected ')' to close the '(' at column 1, found end of expression");
    bad("a == 1 b", 1, 8, "expected an operator or end of expression, found 'b'");
    bad("a and b", 1, 3, "expected an operator, found 'and' (write &&, || or !)");
    bad("a == 1 ||", 1, 10, "expected an operand after '||', found end of expression");
    bad("a = 1", 1, 3, "unexpected '=' (use '==' to compare)");
    bad("a & b", 1, 3, "unexpected '&' (use '&&')");
    bad("a # b", 1, 3, "unexpected character '#'");
    bad("a < b < c", 1, 7,
        "expected '&&', '||' or ')' after a comparison (comparisons do not chain), found '<'");
    bad("a.", 1, 3, "expected a field name after '.', found end of expression");
    bad("tags[x]", 1, 6, "expected an array index (digits, then ']') after '[', found 'x'");
    bad("http.\"a.b\"", 1, 1,
        "a field name containing '.', '[' or ']' can only be used alone, as a top-level name");
    bad(".\"\"", 1, 2, "empty field name");
    bad("99999999999999999999", 1, 1,
        "integer 99999999999999999999 is out of range (at most 9223372036854775807)");
    bad("'abc\\q'", 1, 5,
        "invalid escape '\\q' in a string (expected \\\" \\' \\\\ \\/ \\b \\f \\n \\r \\t or "
        "\\uXXXX)");
    bad("x in 1", 1, 6, "expected a list '[...]' after 'in', found '1'");
    bad("x in [1, y]", 1, 10,
        "expected a constant in the list after 'in', found an expression that depends on the "
        "event");
    bad("x in [1 2]", 1, 9, "expected ',' or ']' in the list after 'in', found '2'");
}

Test(expr, compile_errors_on_types_functions_and_regexes)
{
    bad("\"a\" * 2", 1, 1, "operator '*' needs numbers, found a string");
    bad("1 + true", 1, 5, "operator '+' needs numbers, found a boolean");
    bad("!\"x\"", 1, 2, "operator '!' needs a boolean, found a string");
    bad("-\"x\"", 1, 2, "operator '-' needs a number, found a string");
    bad("1 && a", 1, 1, "operator '&&' needs booleans, found an integer");
    bad("\"a\" == 1", 1, 5, "'==' between a string and an integer is always false");
    bad("lower(x) != 1.5", 1, 10, "'!=' between a string and a float is always true");
    bad("null < 1", 1, 1, "operator '<' needs a number or a string, found null");
    bad("ok < true", 1, 6, "operator '<' needs a number or a string, found a boolean");
    bad("\"a\" >= 1", 1, 5, "'>=' between a string and an integer is always false");
    bad("null contains \"a\"", 1, 1, "operator 'contains' needs a string, found null");
    bad("1/0", 1, 3, "division by zero");
    bad("x % 0.0", 1, 5, "division by zero");
    bad("len(1, 2)", 1, 1, "function 'len' takes 1 argument, found 2");
    bad("substr(x)", 1, 1, "function 'substr' takes 2 to 3 arguments, found 1");
    bad("concat()", 1, 1, "function 'concat' takes at least 1 argument, found 0");
    bad("now(1)", 1, 1, "function 'now' takes 0 arguments, found 1");
    bad("contains(a)", 1, 1, "function 'contains' takes 2 arguments, found 1");
    bad("substr(\"abc\", \"x\")", 1, 15, "argument 2 of 'substr' must be a number, found a string");
    bad("lenn(x)", 1, 1, "unknown function 'lenn' (did you mean 'len'?)");
    bad("frobnicate(x)", 1, 1, "unknown function 'frobnicate'");
    bad("exists(1)", 1, 8, "expected a field path in exists(), found '1'");
    bad("exists(a b)", 1, 10, "expected ')' after the field path in exists(), found 'b'");
    bad("len(a b)", 1, 7, "expected ',' or ')' in the call of 'len', found 'b'");
    bad("a =~ /[/", 1, 8, "invalid regex: missing terminating ] for character class");
    bad("a =~ /x/q", 1, 9, "unknown regex flag 'q' (expected i, m, s, x or u)");
    bad("a =~ /abc", 1, 6, "expected a closing '/' to end the regex, found end of expression");
    bad("a =~ 1", 1, 6, "expected a regex /.../ or a string after '=~', found '1'");
    bad("a =~ b", 1, 6, "expected a regex /.../ or a string after '=~', found 'b'");
    bad("concat(1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17)", 1, 47,
        "function 'concat' takes at most 16 arguments");
}

Test(expr, error_positions_count_lines_and_characters)
{
    bad("level == \"é\" &&\n  status >", 2, 11,
        "expected an operand after '>', found end of expression");
    bad("\"ééé\" == x &&\n\n   y ==== 1", 3, 8, "expected an operand after '==', found '=='");
    bad("a\n+\n\"s\"", 3, 1, "operator '+' needs numbers, found a string");
}

Test(expr, nesting_is_limited_and_long_chains_are_not_nesting)
{
    char src[4096];
    size_t n = 0;
    for (int i = 0; i < 100; i++) src[n++] = '(';
    src[n++] = '1';
    for (int i = 0; i < 100; i++) src[n++] = ')';
    src[n] = '\0';
    is_int(src, 1);
    n = 0;
    for (int i = 0; i < 200; i++) src[n++] = '(';
    src[n++] = '1';
    for (int i = 0; i < 200; i++) src[n++] = ')';
    src[n] = '\0';
    struct sl_error err = {0};
    cr_assert_null(sl_expr_compile(src, n, &err));
    cr_assert_str_eq(err.msg, "expression nested too deeply (more than 128 levels)");
    n = 0;
    for (int i = 0; i < 300; i++) src[n++] = '!';
    src[n++] = 'a';
    cr_assert_null(sl_expr_compile(src, n, &err));
    n = 0; /* 300 terms of x + x + ...: a left-deep tree too tall to walk */
    for (int i = 0; i < 300; i++) n += (size_t)snprintf(src + n, sizeof src - n, "x + ");
    n += (size_t)snprintf(src + n, sizeof src - n, "x");
    cr_assert_null(sl_expr_compile(src, n, &err));
    cr_assert_str_eq(err.msg, "expression nested too deeply (more than 128 levels)");
    static char chain[64 * 1024]; /* 2000 terms of || stay one node */
    n = 0;
    for (int i = 0; i < 2000; i++)
        n += (size_t)snprintf(chain + n, sizeof chain - n, "%sstatus == %d", i ? " || " : "", i);
    is(chain, true);
}

/* ---- config wiring
 * ---------------------------------------------------------------------------------- */

struct cond {
    struct sl_expr *cond; /* option */
    struct sl_expr *also; /* option with a default */
};

static int cond_keep(struct sl_stage *s, const struct sl_event *e, struct sl_error *why)
{
    (void)why;
    struct cond *c = sl_stage_state(s);
    return sl_expr_test(c->cond, e) && sl_expr_test(c->also, e);
}

static const struct sl_option cond_options[] = {
    {"condition", SL_OPT_EXPR, NULL, SL_REQUIRED, offsetof(struct cond, cond),
     "keep events where true"},
    {"also", SL_OPT_EXPR, "n != 99", 0, offsetof(struct cond, also), "and where this is true too"},
    {0},
};

static const struct sl_stage_type t_cond = {
    .abi = SL_STAGE_ABI,
    .name = "t_cond",
    .kind = SL_FILTER,
    .doc = "test filter on an expression",
    .flags = SL_STAGE_PARALLEL,
    .state_size = sizeof(struct cond),
    .options = cond_options,
    .keep = cond_keep,
};

static void config_error(const char *yaml, int line, int col, const char *msg)
{
    struct sl_config *cfg = t_config(yaml);
    struct sl_error err = {0};
    struct sl_stage *s = sl_pipeline_add(p, "f", &t_cond, cfg, &err);
    sl_config_free(cfg);
    cr_assert_null(s);
    cr_assert_eq(err.code, SL_ECONFIG);
    cr_assert_str_eq(err.file, "test.yaml");
    cr_assert_str_eq(err.msg, msg);
    cr_assert(err.line == line && err.col == col, "at %d:%d, expected %d:%d", err.line, err.col,
              line, col);
}

Test(expr, bad_condition_in_a_config_points_into_the_file)
{
    config_error("condition: 'n % 3 =='", 1, 21,
                 "option 'condition': expected an operand after '==', found end of expression");
    config_error("condition: n % 3 == nope(1)", 1, 21,
                 "option 'condition': unknown function 'nope' (did you mean 'now'?)");
    config_error("# filter\ncondition: \"n > 1 && n ! 2\"", 2, 24,
                 "option 'condition': expected an operator or end of expression, found '!'");
}

Test(expr, filter_stage_with_a_compiled_condition_runs)
{
    struct sl_stage *src = sl_pipeline_find(p, "src");
    struct sl_stage *keep = t_add(p, "keep", &t_cond, "condition: 'n % 3 == 0 && n >= 30'");
    struct sl_stage *par = t_add(p, "par", &t_cond, "workers: 2\ncondition: n < 600");
    struct sl_stage *out = t_add(p, "out", &t_collect, NULL);
    t_connect(p, src, keep);
    t_connect(p, keep, par);
    t_connect(p, par, out);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "%s", err.msg);
    struct t_collect *c = sl_stage_state(out);
    cr_assert_eq(c->nseen, 189); /* 30, 33, ..., 597 but 99 (the default of `also`) */
    for (size_t i = 0; i < c->nseen; i++)
        cr_assert_eq(c->seen[i], 30 + 3 * (int64_t)(i < 23 ? i : i + 1));
}

/* ---- threads
 * --------------------------------------------------------------------------------------- */

struct worker {
    const struct sl_expr *x; /* shared */
    struct sl_event *ev;     /* this thread's own */
    bool want;               /* expected result */
    int wrong;               /* results that differed */
};

static void *work(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 20000; i++) w->wrong += sl_expr_test(w->x, w->ev) != w->want;
    return NULL;
}

Test(expr, one_expression_evaluated_from_four_threads)
{
    struct sl_expr *x = cx("lower(level) =~ /^err/ && msg contains \"timeout\" && "
                           "substr(concat(level, \"-\", id), 0, 7) == \"ERROR-1\"");
    struct worker w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        struct sl_event *e = new_event();
        add(e, "level", str(i % 2 ? "ERROR" : "WARN"));
        add(e, "msg", esc("upstream \\\"timeout\\\""));
        add(e, "id", num(i % 2 ? "17" : "18"));
        w[i] = (struct worker){.x = x, .ev = e, .want = i % 2 == 1};
    }
    for (int i = 0; i < 4; i++) cr_assert_eq(pthread_create(&th[i], NULL, work, &w[i]), 0);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) cr_assert_eq(w[i].wrong, 0, "thread %d: %d wrong", i, w[i].wrong);
}
