/* The JSON reader and writer: value typing, escapes, member walks, path lookups, error
 * offsets and writer round trips, each with exact expected values. The JSONTestSuite,
 * guard-page and partial-input tests are in test_json_suite.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/json.h>

#include "json/internal.h"
#include "json/lex.h"
#include "json/scan.h"

/* A string literal as (pointer, length), embedded NUL bytes included. */
#define LIT(s) (s), (sizeof(s) - 1)

static const char log_line[] =
    "{\"ts\":\"2024-01-01T00:00:00Z\",\"level\":\"info\",\"msg\":\"user login ok\","
    "\"user_id\":12345,\"latency_ms\":87,\"http\":{\"status\":200,\"path\":\"/api/v1/login\"},"
    "\"tags\":[\"a\",\"b\"]}";

/* ---- helpers ----------------------------------------------------------------------- */

struct member {
    char name[64];     /* name as in the text */
    size_t name_len;   /* bytes of name */
    bool escaped;      /* name had a backslash */
    struct sl_value v; /* the value */
};

struct members {
    struct member m[32]; /* collected members */
    size_t n;            /* members seen */
    size_t stop_at;      /* return 7 when this many were seen (0: never) */
};

static int collect(void *arg, const char *name, size_t name_len, bool escaped,
                   const struct sl_value *v)
{
    struct members *ms = arg;
    cr_assert_lt(ms->n, 32);
    cr_assert_lt(name_len, 64);
    struct member *m = &ms->m[ms->n++];
    memcpy(m->name, name, name_len);
    m->name[name_len] = '\0';
    m->name_len = name_len;
    m->escaped = escaped;
    m->v = *v;
    return ms->n == ms->stop_at ? 7 : 0;
}

static void expect_span(const struct sl_value *v, int type, int flags, const char *text)
{
    cr_assert_eq(v->type, type, "type %d, expected %d (%s)", v->type, type, text);
    cr_assert_eq(v->flags, flags, "flags %d, expected %d (%s)", v->flags, flags, text);
    cr_assert_eq(v->len, strlen(text), "len %u, expected %zu (%s)", v->len, strlen(text), text);
    cr_assert(memcmp(v->s, text, v->len) == 0, "span '%.*s', expected '%s'", (int)v->len, v->s,
              text);
}

/* Reads the single member value of `{"k":<text>}`. */
static struct sl_value one_value(const char *text)
{
    char doc[256];
    int n = snprintf(doc, sizeof doc, "{\"k\":%s}", text);
    struct members ms = {0};
    size_t off = 99;
    int rc = sl_json_each_member(doc, (size_t)n, collect, &ms, &off);
    cr_assert_eq(rc, 0, "%s: rc %d at %zu", doc, rc, off);
    cr_assert_eq(ms.n, 1);
    return ms.m[0].v;
}

static void expect_decoded(const struct sl_value *v, const char *want, size_t want_len)
{
    char buf[256];
    cr_assert_leq(v->len, sizeof buf);
    int n = sl_value_unescape(v, buf, sizeof buf);
    cr_assert_eq(n, (int)want_len, "decoded %d bytes, expected %zu", n, want_len);
    cr_assert(memcmp(buf, want, want_len) == 0);
}

TestSuite(json, .timeout = 30);

/* ---- member walks and value typing ------------------------------------------------- */

Test(json, each_member_log_line_names_types_spans_in_order)
{
    struct members ms = {0};
    cr_assert_eq(sl_json_each_member(log_line, strlen(log_line), collect, &ms, NULL), 0);
    cr_assert_eq(ms.n, 7);
    const char *names[] = {"ts", "level", "msg", "user_id", "latency_ms", "http", "tags"};
    for (size_t i = 0; i < 7; i++) {
        cr_assert_str_eq(ms.m[i].name, names[i]);
        cr_assert_not(ms.m[i].escaped);
    }
    expect_span(&ms.m[0].v, SL_STRING, SL_VALUE_JSON_SAFE, "2024-01-01T00:00:00Z");
    expect_span(&ms.m[1].v, SL_STRING, SL_VALUE_JSON_SAFE, "info");
    expect_span(&ms.m[2].v, SL_STRING, SL_VALUE_JSON_SAFE, "user login ok");
    expect_span(&ms.m[3].v, SL_INT, SL_VALUE_TEXT, "12345");
    expect_span(&ms.m[4].v, SL_INT, SL_VALUE_TEXT, "87");
    expect_span(&ms.m[5].v, SL_JSON, 0, "{\"status\":200,\"path\":\"/api/v1/login\"}");
    expect_span(&ms.m[6].v, SL_JSON, 0, "[\"a\",\"b\"]");
    /* Spans point into the input. */
    cr_assert_eq(ms.m[0].v.s, log_line + 7);
    cr_assert_eq(sl_value_number(&ms.m[3].v), 0);
    cr_assert_eq(ms.m[3].v.type, SL_INT);
    cr_assert_eq(ms.m[3].v.i, 12345);
    cr_assert_eq(ms.m[3].v.flags, 0);
}

/* Names and string values of every length around the 32-byte window a member is read
 * from at once, plain or with an escape, a control-free non-ASCII byte, or a blank after
 * the ':' (each of which the window leaves to the general path): the name, its escaped
 * flag, the value's span and flags are those of the text, and the member after it too. */
Test(json, each_member_reads_members_of_every_length_around_its_window)
{
    static const char *const kinds[] = {"", "\\\"", "\xc3\xa9", " "};
    for (int kind = 0; kind < 4; kind++) {
        for (int n = 1; n <= 34; n++) {
            for (int m = 0; m <= 34; m++) {
                char name[64], value[64], doc[256];
                memset(name, 'n', (size_t)n), name[n] = '\0';
                memset(value, 'v', (size_t)m), value[m] = '\0';
                const char *k = kinds[kind];
                if (kind == 1 || kind == 2) { /* in the name when n is odd, else the value */
                    char *t = n % 2 ? name : value;
                    size_t len = strlen(t), at = len / 2, kl = strlen(k);
                    memmove(t + at + kl, t + at, len - at + 1);
                    memcpy(t + at, k, kl);
                }
                int dl = snprintf(doc, sizeof doc, "{\"%s\":%s\"%s\",\"z\":1}", name,
                                  kind == 3 ? " " : "", value);
                struct members ms = {0};
                size_t off = 99;
                char *exact = malloc((size_t)dl); /* a read past the end is ASan's */
                memcpy(exact, doc, (size_t)dl);
                int rc = sl_json_each_member(exact, (size_t)dl, collect, &ms, &off);
                cr_assert_eq(rc, 0, "%s: rc %d at %zu", doc, rc, off);
                cr_assert_eq(ms.n, 2, "%s", doc);
                cr_assert_str_eq(ms.m[0].name, name, "%s", doc);
                cr_assert_eq(ms.m[0].escaped, strchr(name, '\\') != NULL, "%s", doc);
                bool esc = strchr(value, '\\') != NULL;
                expect_span(&ms.m[0].v, SL_STRING, esc ? SL_VALUE_ESCAPED : SL_VALUE_JSON_SAFE,
                            value);
                cr_assert_str_eq(ms.m[1].name, "z");
                expect_span(&ms.m[1].v, SL_INT, SL_VALUE_TEXT, "1");
                free(exact);
            }
        }
    }
}

Test(json, each_member_whitespace_everywhere)
{
    const char doc[] = " \t\r\n{ \"a\" :\n1 , \"b\"\t:\r[ 1 , { } ] ,\"c\":\"\" } \n";
    struct members ms = {0};
    cr_assert_eq(sl_json_each_member(doc, strlen(doc), collect, &ms, NULL), 0);
    cr_assert_eq(ms.n, 3);
    cr_assert_str_eq(ms.m[0].name, "a");
    expect_span(&ms.m[0].v, SL_INT, SL_VALUE_TEXT, "1");
    cr_assert_str_eq(ms.m[1].name, "b");
    expect_span(&ms.m[1].v, SL_JSON, 0, "[ 1 , { } ]");
    cr_assert_str_eq(ms.m[2].name, "c");
    expect_span(&ms.m[2].v, SL_STRING, SL_VALUE_JSON_SAFE, "");
}

Test(json, each_member_empty_object_calls_nothing)
{
    struct members ms = {0};
    cr_assert_eq(sl_json_each_member(LIT(" { } "), collect, &ms, NULL), 0);
    cr_assert_eq(ms.n, 0);
}

Test(json, each_member_stops_on_callback_result)
{
    struct members ms = {.stop_at = 2};
    cr_assert_eq(sl_json_each_member(log_line, strlen(log_line), collect, &ms, NULL), 7);
    cr_assert_eq(ms.n, 2);
}

Test(json, each_member_reports_duplicates_and_escaped_names)
{
    struct members ms = {0};
    const char doc[] = "{\"a\":1,\"a\":2,\"caf\\u00e9\":3,\"x\\\"y\":4}";
    cr_assert_eq(sl_json_each_member(doc, strlen(doc), collect, &ms, NULL), 0);
    cr_assert_eq(ms.n, 4);
    cr_assert_str_eq(ms.m[0].name, "a");
    cr_assert_str_eq(ms.m[1].name, "a");
    expect_span(&ms.m[1].v, SL_INT, SL_VALUE_TEXT, "2");
    cr_assert_str_eq(ms.m[2].name, "caf\\u00e9");
    cr_assert(ms.m[2].escaped);
    cr_assert_str_eq(ms.m[3].name, "x\\\"y");
    cr_assert(ms.m[3].escaped);
    cr_assert_not(ms.m[0].escaped);
}

Test(json, literals_are_typed)
{
    struct sl_value v = one_value("true");
    cr_assert_eq(v.type, SL_BOOL);
    cr_assert(v.b);
    v = one_value("false");
    cr_assert_eq(v.type, SL_BOOL);
    cr_assert_not(v.b);
    v = one_value("null");
    cr_assert_eq(v.type, SL_NULL);
    cr_assert_eq(v.flags, 0);
}

Test(json, numbers_typed_int_or_float_by_text)
{
    static const struct {
        const char *text;
        int type;
    } cases[] = {
        {"0", SL_INT},
        {"-0", SL_INT},
        {"123", SL_INT},
        {"-9223372036854775808", SL_INT},
        {"1.5", SL_FLOAT},
        {"1e3", SL_FLOAT},
        {"1E+2", SL_FLOAT},
        {"-0.0", SL_FLOAT},
        {"1.5e-3", SL_FLOAT},
        {"0e0", SL_FLOAT},
        {"123456789012345678901234567890", SL_INT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sl_value v = one_value(cases[i].text);
        expect_span(&v, cases[i].type, SL_VALUE_TEXT, cases[i].text);
    }
}

Test(json, numbers_convert_lazily)
{
    struct sl_value v = one_value("-9223372036854775808");
    cr_assert_eq(sl_value_number(&v), 0);
    cr_assert_eq(v.i, INT64_MIN);
    v = one_value("1.5e-3");
    cr_assert_eq(sl_value_number(&v), 0);
    cr_assert_eq(v.f, 1.5e-3);
    /* Too large for int64: becomes a float. */
    v = one_value("123456789012345678901234567890");
    cr_assert_eq(sl_value_number(&v), 0);
    cr_assert_eq(v.type, SL_FLOAT);
    cr_assert_eq(v.f, 123456789012345678901234567890.0);
}

Test(json, strings_are_escaped_with_a_backslash_else_json_safe)
{
    struct sl_value v = one_value("\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");
    expect_span(&v, SL_STRING, SL_VALUE_JSON_SAFE, "caf\xc3\xa9 \xf0\x9f\x98\x80");
    v = one_value("\"a\\nb\"");
    expect_span(&v, SL_STRING, SL_VALUE_ESCAPED, "a\\nb");
    expect_decoded(&v, LIT("a\nb"));
}

Test(json, escapes_decode_with_sl_value_unescape)
{
    struct sl_value v = one_value("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"");
    expect_decoded(&v, LIT("\"\\/\b\f\n\r\t"));
    v = one_value("\"\\u0041\\u00e9\\u20AC\\u0000\"");
    expect_decoded(&v, LIT("A\xc3\xa9\xe2\x82\xac\0"));
    /* A surrogate pair is one code point: U+1F600. */
    v = one_value("\"\\ud83d\\ude00\"");
    expect_decoded(&v, LIT("\xf0\x9f\x98\x80"));
    /* Lone surrogates are accepted by the reader and decode to U+FFFD. */
    v = one_value("\"\\ud83dx\\ude00\"");
    expect_decoded(&v, LIT("\xef\xbf\xbdx\xef\xbf\xbd"));
}

Test(json, nested_values_are_raw_validated_spans)
{
    struct sl_value v = one_value("{\"b\":[1,{\"c\":[]},\"]\"]}");
    expect_span(&v, SL_JSON, 0, "{\"b\":[1,{\"c\":[]},\"]\"]}");
    v = one_value("[]");
    expect_span(&v, SL_JSON, 0, "[]");
}

/* ---- error offsets ----------------------------------------------------------------- */

static const struct {
    const char *text; /* the document */
    size_t len;       /* its bytes */
    size_t off;       /* expected error offset */
} bad_docs[] = {
    {LIT(""), 0},
    {LIT("   "), 3},
    {LIT("[1,]"), 3},
    {LIT("[1 2]"), 3},
    {LIT("{\"a\":1}}"), 7},
    {LIT("{\"a\" 1}"), 5},
    {LIT("{\"a\":1,}"), 7},
    {LIT("{,}"), 1},
    {LIT("{'a':1}"), 1},
    {LIT("\"abc"), 4},
    {LIT("\"a\\x\""), 3},
    {LIT("\"\\u12G4\""), 5},
    {LIT("\"a\x01\""), 2},
    {LIT("\"\xe0\x80\""), 2},
    {LIT("\"\xc0\xaf\""), 1},
    {LIT("\"\xed\xa0\x80\""), 2},
    {LIT("\"\xf4\x90\x80\x80\""), 2},
    {LIT("\"\xf0\x9f\x98\""), 4},
    {LIT("tru"), 3},
    {LIT("trUe"), 2},
    {LIT("nul"), 3},
    {LIT("01"), 1},
    {LIT("-"), 1},
    {LIT("-a"), 1},
    {LIT("1."), 2},
    {LIT("1.e5"), 2},
    {LIT("1e"), 2},
    {LIT("1e+"), 3},
    {LIT(".5"), 0},
    {LIT("+1"), 0},
    {LIT("[01]"), 2},
    {LIT("["), 1},
    {LIT("[1"), 2},
    {LIT("{\"a\":"), 5},
    {LIT("\xef\xbb\xbf{}"), 0},
    {LIT("{} x"), 3},
    {LIT("1 2"), 2},
    {LIT("[NaN]"), 1},
    {LIT("[\"a\"\0]"), 4},
};

Test(json, validate_error_offsets)
{
    for (size_t i = 0; i < sizeof bad_docs / sizeof bad_docs[0]; i++) {
        size_t off = 12345;
        int rc = sl_json_validate(bad_docs[i].text, bad_docs[i].len, &off);
        cr_assert_eq(rc, SL_EPARSE, "case %zu accepted", i);
        cr_assert_eq(off, bad_docs[i].off, "case %zu: offset %zu, expected %zu", i, off,
                     bad_docs[i].off);
        /* The offset marks the longest valid prefix: that prefix is valid or incomplete. */
        size_t off2 = 0;
        rc = sl_json_validate(bad_docs[i].text, off, &off2);
        cr_assert(rc == 0 || off2 == off, "case %zu: prefix failed at %zu", i, off2);
        /* NULL err_off is allowed. */
        cr_assert_eq(sl_json_validate(bad_docs[i].text, bad_docs[i].len, NULL), SL_EPARSE);
    }
}

Test(json, each_member_error_offsets)
{
    static const struct {
        const char *text;
        size_t off;
    } cases[] = {
        {"[1]", 0},        {"  1", 2},
        {"", 0},           {"{", 1},
        {"{\"a\":1,}", 7}, {"{\"a\" 1}", 5},
        {"{\"a\":01}", 6}, {"{} x", 3},
        {"{\"a\"}", 4},    {"{\"a\":[1,]}", 8},
        {"{\"a\":1", 6},   {"{\"a\":1 \"b\":2}", 7},
        {"\"s\"", 0},      {"{\"a\":{\"b\":}}", 10},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct members ms = {0};
        size_t off = 12345;
        int rc = sl_json_each_member(cases[i].text, strlen(cases[i].text), collect, &ms, &off);
        cr_assert_eq(rc, SL_EPARSE, "%s: rc %d", cases[i].text, rc);
        cr_assert_eq(off, cases[i].off, "%s: offset %zu, expected %zu", cases[i].text, off,
                     cases[i].off);
    }
}

/* Builds `depth` nested arrays around 1: "[[[1]]]". Returns an owned buffer. */
static char *nested(size_t depth, size_t *len)
{
    char *s = malloc(2 * depth + 1);
    memset(s, '[', depth);
    s[depth] = '1';
    memset(s + depth + 1, ']', depth);
    *len = 2 * depth + 1;
    return s;
}

Test(json, depth_limit_is_512)
{
    size_t len, off = 0;
    char *ok = nested(SL_JSON_MAX_DEPTH, &len);
    cr_assert_eq(sl_json_validate(ok, len, &off), 0);
    free(ok);
    char *deep = nested(SL_JSON_MAX_DEPTH + 1, &len);
    cr_assert_eq(sl_json_validate(deep, len, &off), SL_EPARSE);
    cr_assert_eq(off, SL_JSON_MAX_DEPTH);
    /* get walks the same limit: 512 steps down reach the 1, 513 hit the limit. */
    char path[3 * (SL_JSON_MAX_DEPTH + 1)];
    for (size_t i = 0; i <= SL_JSON_MAX_DEPTH; i++) memcpy(path + 3 * i, "[0]", 3);
    struct sl_value v;
    cr_assert_eq(sl_json_get(deep + 1, len - 2, path, 3 * SL_JSON_MAX_DEPTH, &v), 0);
    expect_span(&v, SL_INT, SL_VALUE_TEXT, "1");
    cr_assert_eq(sl_json_get(deep, len, path, 3 * (SL_JSON_MAX_DEPTH + 1), &v), SL_EPARSE);
    free(deep);
    /* A million open brackets: rejected without recursion. */
    char *huge = malloc(1000000);
    memset(huge, '[', 1000000);
    cr_assert_eq(sl_json_validate(huge, 1000000, &off), SL_EPARSE);
    cr_assert_eq(off, SL_JSON_MAX_DEPTH);
    free(huge);
}

Test(json, depth_limit_counts_the_member_object)
{
    /* {"a": + 511 arrays is 512 deep: fine; one more array is not. */
    for (size_t extra = 0; extra < 2; extra++) {
        size_t n = SL_JSON_MAX_DEPTH - 1 + extra, len;
        char *arr = nested(n, &len);
        char *doc = malloc(len + 6);
        memcpy(doc, "{\"a\":", 5);
        memcpy(doc + 5, arr, len);
        doc[len + 5] = '}';
        struct members ms = {0};
        size_t off = 0;
        int rc = sl_json_each_member(doc, len + 6, collect, &ms, &off);
        cr_assert_eq(rc, extra ? SL_EPARSE : 0);
        if (extra) cr_assert_eq(off, 5 + SL_JSON_MAX_DEPTH - 1);
        cr_assert_eq(sl_json_validate(doc, len + 6, NULL), rc);
        free(arr);
        free(doc);
    }
}

/* ---- path lookups ------------------------------------------------------------------ */

static struct sl_value get_ok(const char *doc, const char *path)
{
    struct sl_value v;
    int rc = sl_json_get(doc, strlen(doc), path, strlen(path), &v);
    cr_assert_eq(rc, 0, "get '%s': rc %d", path, rc);
    return v;
}

static void get_fails(const char *doc, const char *path, int want)
{
    struct sl_value v = {.type = 99, .len = 77};
    int rc = sl_json_get(doc, strlen(doc), path, strlen(path), &v);
    cr_assert_eq(rc, want, "get '%s' in %s: rc %d, expected %d", path, doc, rc, want);
    cr_assert(v.type == 99 && v.len == 77, "out written on failure");
}

Test(json, get_hits)
{
    struct sl_value v = get_ok(log_line, "level");
    expect_span(&v, SL_STRING, SL_VALUE_JSON_SAFE, "info");
    v = get_ok(log_line, ".level");
    expect_span(&v, SL_STRING, SL_VALUE_JSON_SAFE, "info");
    v = get_ok(log_line, "http.status");
    expect_span(&v, SL_INT, SL_VALUE_TEXT, "200");
    v = get_ok(log_line, "http.path");
    expect_span(&v, SL_STRING, SL_VALUE_JSON_SAFE, "/api/v1/login");
    v = get_ok(log_line, "http");
    expect_span(&v, SL_JSON, 0, "{\"status\":200,\"path\":\"/api/v1/login\"}");
    v = get_ok(log_line, "tags[0]");
    expect_span(&v, SL_STRING, SL_VALUE_JSON_SAFE, "a");
    v = get_ok(log_line, "tags[1]");
    expect_span(&v, SL_STRING, SL_VALUE_JSON_SAFE, "b");
    const char doc[] = "{\"a\":{\"b\":[0,1,{\"c\":true},[5,[6,7]]]}}";
    v = get_ok(doc, "a.b[2].c");
    cr_assert_eq(v.type, SL_BOOL);
    cr_assert(v.b);
    v = get_ok(doc, "a.b[3][1][0]");
    expect_span(&v, SL_INT, SL_VALUE_TEXT, "6");
    v = get_ok(" [10, {\"x\": -1.5e3 }] ", "[1].x");
    expect_span(&v, SL_FLOAT, SL_VALUE_TEXT, "-1.5e3");
    v = get_ok(" [10, {\"x\": null}] ", ".[0]");
    expect_span(&v, SL_INT, SL_VALUE_TEXT, "10");
    v = get_ok("{\"a\":1,\"a\":2}", "a"); /* a repeated name: the last member */
    expect_span(&v, SL_INT, SL_VALUE_TEXT, "2");
}

Test(json, get_empty_path_is_the_document)
{
    struct sl_value v = get_ok(" [1, 2] ", "");
    expect_span(&v, SL_JSON, 0, "[1, 2]");
    v = get_ok(" \"x\" ", ".");
    expect_span(&v, SL_STRING, SL_VALUE_JSON_SAFE, "x");
}

Test(json, get_matches_decoded_names)
{
    struct sl_value v = get_ok("{\"caf\\u00e9\":1}", "caf\xc3\xa9");
    expect_span(&v, SL_INT, SL_VALUE_TEXT, "1");
    v = get_ok("{\"a\\\"b\":2}", "a\"b");
    expect_span(&v, SL_INT, SL_VALUE_TEXT, "2");
    v = get_ok("{\"x\":0,\"\\ud83d\\ude00\":3}", "\xf0\x9f\x98\x80");
    expect_span(&v, SL_INT, SL_VALUE_TEXT, "3");
    v = get_ok("{\"a\\/b\":{\"\\n\":4}}", "a/b.\n");
    expect_span(&v, SL_INT, SL_VALUE_TEXT, "4");
    v = get_ok("{\"\\ud800\":5}", "\xef\xbf\xbd");
    expect_span(&v, SL_INT, SL_VALUE_TEXT, "5");
    v = get_ok("{\"\\u0041\":6}", "A");
    expect_span(&v, SL_INT, SL_VALUE_TEXT, "6");
    v = get_ok("{\"\\ud800\\u0041\":7}", "\xef\xbf\xbd"
                                         "A");
    expect_span(&v, SL_INT, SL_VALUE_TEXT, "7");
    get_fails("{\"caf\\u00e9\":1}", "caf\\u00e9", SL_ENOTFOUND);
    get_fails("{\"ab\\n\":1}", "ab", SL_ENOTFOUND);
    get_fails("{\"ab\\n\":1}", "ab\nc", SL_ENOTFOUND);
}

Test(json, get_misses)
{
    get_fails(log_line, "nope", SL_ENOTFOUND);
    get_fails(log_line, "tags[2]", SL_ENOTFOUND);
    get_fails(log_line, "tags[99999999999999999999999999]", SL_ENOTFOUND);
    get_fails(log_line, "http.status.x", SL_ENOTFOUND);
    get_fails(log_line, "level[0]", SL_ENOTFOUND);
    get_fails(log_line, "tags.x", SL_ENOTFOUND);
    get_fails(log_line, "http[0]", SL_ENOTFOUND);
    get_fails(log_line, "[0]", SL_ENOTFOUND);
    get_fails("{}", "a", SL_ENOTFOUND);
    get_fails("[]", "[0]", SL_ENOTFOUND);
    get_fails("1", "a", SL_ENOTFOUND);
}

Test(json, get_rejects_malformed_paths)
{
    const char *paths[] = {"a.", "a..b",  "..a",  "[x]",   "[1",
                           "[]", "a[0]b", "[-1]", "a.[0]", "[1x]"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        get_fails(log_line, paths[i], SL_EINVAL);
}

Test(json, get_validates_the_whole_text)
{
    get_fails("{\"a\":1,}", "a", SL_EPARSE);
    get_fails("{\"a\":1} x", "a", SL_EPARSE);
    get_fails("{\"a\":[1,2,]}", "a[0]", SL_EPARSE);
    get_fails("{\"a\":{\"b\":1},\"c\":[}", "a.b", SL_EPARSE);
    get_fails("{\"a\":1,\"b\":tru}", "nope", SL_EPARSE);
    get_fails("", "", SL_EPARSE);
    get_fails("[1,2", "[5]", SL_EPARSE);
    get_fails("[1,]", "[1]", SL_EPARSE);
}

/* ---- the writer -------------------------------------------------------------------- */

static void expect_escape(const char *in, size_t len, const char *want, size_t want_len)
{
    char out[256];
    cr_assert_leq(SL_JSON_ESCAPE_MAX(len), sizeof out);
    size_t n = sl_json_escape(in, len, out);
    cr_assert_eq(n, want_len, "escaped %zu bytes, expected %zu", n, want_len);
    cr_assert(memcmp(out, want, n) == 0, "escaped '%.*s', expected '%s'", (int)n, out, want);
    cr_assert_eq(sl_json_escaped_len(in, len), n);
}

Test(json, escape_specials_and_controls)
{
    expect_escape(LIT("plain / text \x7f"), LIT("plain / text \x7f"));
    expect_escape(LIT("a\"b\\c"), LIT("a\\\"b\\\\c"));
    expect_escape(LIT("\b\f\n\r\t"), LIT("\\b\\f\\n\\r\\t"));
    expect_escape(LIT("\x01\x1f\0"), LIT("\\u0001\\u001f\\u0000"));
    expect_escape(LIT("caf\xc3\xa9 \xf0\x9f\x98\x80"), LIT("caf\xc3\xa9 \xf0\x9f\x98\x80"));
    expect_escape(LIT(""), LIT(""));
}

Test(json, escape_replaces_invalid_utf8)
{
    expect_escape(LIT("\xff"), LIT("\xef\xbf\xbd"));
    expect_escape(LIT("a\xe0\x80z"), LIT("a\xef\xbf\xbd\xef\xbf\xbdz"));
    expect_escape(LIT("\xed\xa0\x80"), LIT("\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"));
    expect_escape(LIT("x\xf0\x9f\x98"), LIT("x\xef\xbf\xbd"));
    expect_escape(LIT("\xf0\x9f\x98x"), LIT("\xef\xbf\xbdx"));
    expect_escape(LIT("\xc0\xaf"), LIT("\xef\xbf\xbd\xef\xbf\xbd"));
    expect_escape(LIT("\xf4\x90\x80\x80"), LIT("\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"));
}

/* The escape of the test's specials, byte by byte: the reference for the test below. */
static size_t escape_ref(const char *in, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        const char *e = c == '"'    ? "\\\""
                        : c == '\\' ? "\\\\"
                        : c == '\n' ? "\\n"
                        : c == 1    ? "\\u0001"
                        : c == 0xff ? "\xef\xbf\xbd"
                                    : NULL;
        if (e) {
            memcpy(out + n, e, strlen(e));
            n += strlen(e);
        } else {
            out[n++] = (char)c; /* plain, or a byte of a valid sequence ("\xc3\xa9") */
        }
    }
    return n;
}

/* Every length from 0 to 24 (the short strings are copied by overlapping loads), plain
 * or with one special at every position; input and output of exact size, so that a byte
 * read or written outside them is caught under ASan. */
Test(json, escape_of_short_strings_at_every_length_and_position)
{
    static const char *const specials[] = {"\"", "\\", "\n", "\x01", "\xff", "\xc3\xa9"};
    char want[256];
    for (size_t len = 0; len <= 24; len++) {
        for (size_t sp = 0; sp <= sizeof specials / sizeof specials[0]; sp++) {
            for (size_t at = 0; at < (sp ? len : 1) || (len == 0 && at == 0); at++) {
                char *in = malloc(len ? len : 1);
                for (size_t i = 0; i < len; i++) in[i] = (char)('a' + i % 26);
                if (sp && len) {
                    const char *x = specials[sp - 1];
                    size_t k = strlen(x) <= len - at ? strlen(x) : 0;
                    memcpy(in + at, x, k ? k : 0);
                    if (!k) in[at] = '"'; /* no room for two bytes: a quote */
                }
                size_t wn = escape_ref(in, len, want);
                cr_assert_eq(sl_json_escaped_len(in, len), wn, "len %zu at %zu", len, at);
                char *out = malloc(wn ? wn : 1);
                cr_assert_eq(sl_json_escape(in, len, out), wn, "len %zu at %zu", len, at);
                cr_assert(memcmp(out, want, wn) == 0, "len %zu, special %zu at %zu: '%.*s'", len,
                          sp, at, (int)wn, out);
                free(in), free(out);
                if (len == 0) break;
            }
        }
    }
}

Test(json, escape_worst_case_is_six_times)
{
    char in[32], out[SL_JSON_ESCAPE_MAX(32)];
    memset(in, 0x01, sizeof in);
    cr_assert_eq(sl_json_escape(in, sizeof in, out), SL_JSON_ESCAPE_MAX(sizeof in));
}

static void expect_write(const struct sl_value *v, const char *want)
{
    char out[128];
    memset(out, '#', sizeof out);
    size_t n = sl_json_write_value(v, out, sizeof out);
    cr_assert_eq(n, strlen(want), "wrote '%.*s', expected '%s'", (int)n, out, want);
    cr_assert(memcmp(out, want, n) == 0, "wrote '%.*s', expected '%s'", (int)n, out, want);
    cr_assert_eq(out[n], '#');
    /* The size alone, and a buffer one byte short: nothing written. */
    cr_assert_eq(sl_json_write_value(v, NULL, 0), n);
    memset(out, '#', sizeof out);
    cr_assert_eq(sl_json_write_value(v, out, n - 1), n);
    for (size_t i = 0; i < sizeof out; i++) cr_assert_eq(out[i], '#');
}

Test(json, write_scalars)
{
    expect_write(&(struct sl_value){.type = SL_NULL}, "null");
    expect_write(&(struct sl_value){.type = SL_BOOL, .b = true}, "true");
    expect_write(&(struct sl_value){.type = SL_BOOL, .b = false}, "false");
    expect_write(&(struct sl_value){.type = 99}, "null");
    struct sl_value v = sl_value_int(0);
    expect_write(&v, "0");
    v = sl_value_int(-1);
    expect_write(&v, "-1");
    v = sl_value_int(INT64_MIN);
    expect_write(&v, "-9223372036854775808");
    v = sl_value_int(INT64_MAX);
    expect_write(&v, "9223372036854775807");
}

Test(json, write_floats_shortest_round_trip)
{
    static const struct {
        double d;
        const char *text;
    } cases[] = {
        {0.1, "0.1"},
        {1.0, "1.0"},
        {-0.0, "-0.0"},
        {1e300, "1e+300"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1.0 / 3, "0.3333333333333333"},
        {123456789.0, "123456789.0"},
        {1e21, "1e+21"},
        {2.5e-8, "2.5e-08"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sl_value v = sl_value_float(cases[i].d);
        expect_write(&v, cases[i].text);
    }
    struct sl_value v = sl_value_float(NAN);
    expect_write(&v, "null");
    v = sl_value_float(-INFINITY);
    expect_write(&v, "null");
}

Test(json, write_text_numbers)
{
    struct sl_value v = {.type = SL_FLOAT, .flags = SL_VALUE_TEXT, .s = "1.50", .len = 4};
    expect_write(&v, "1.50");
    v = (struct sl_value){.type = SL_INT, .flags = SL_VALUE_TEXT, .s = "-0", .len = 2};
    expect_write(&v, "-0");
    v = (struct sl_value){.type = SL_INT, .flags = SL_VALUE_TEXT, .s = "+17", .len = 3};
    expect_write(&v, "17");
    v = (struct sl_value){.type = SL_FLOAT, .flags = SL_VALUE_TEXT, .s = "2.", .len = 2};
    expect_write(&v, "2.0");
    v = (struct sl_value){.type = SL_INT, .flags = SL_VALUE_TEXT, .s = "1 ", .len = 2};
    expect_write(&v, "null");
    v = (struct sl_value){.type = SL_INT, .flags = SL_VALUE_TEXT, .s = "abc", .len = 3};
    expect_write(&v, "null");
}

Test(json, write_strings_and_raw)
{
    struct sl_value v = sl_value_string(LIT("he said \"hi\"\n"));
    expect_write(&v, "\"he said \\\"hi\\\"\\n\"");
    v = sl_value_string(NULL, 0);
    expect_write(&v, "\"\"");
    v = (struct sl_value){.type = SL_STRING, .flags = SL_VALUE_ESCAPED, .s = "a\\u00e9", .len = 7};
    expect_write(&v, "\"a\\u00e9\"");
    v = sl_value_json(LIT("{\"a\": [1]}"));
    expect_write(&v, "{\"a\": [1]}");
    v = sl_value_string(LIT("\x01\x02\x03"));
    expect_write(&v, "\"\\u0001\\u0002\\u0003\"");
    /* A buffer of exactly the size needed, smaller than the worst case. */
    char out[16];
    v = sl_value_string(LIT("a\tb\"c"));
    cr_assert_eq(sl_json_write_value(&v, out, 9), 9);
    cr_assert(memcmp(out, "\"a\\tb\\\"c\"", 9) == 0);
    v.flags = SL_VALUE_ESCAPED;
    cr_assert_eq(sl_json_write_value(&v, out, 7), 7);
    cr_assert(memcmp(out, "\"a\tb\"c\"", 7) == 0);
}

/* A string the reader marked JSON-safe is copied as it is; the same bytes unmarked are
 * checked (and an invalid byte repaired). */
Test(json, a_json_safe_string_is_copied_unchecked)
{
    struct sl_value v = one_value("\"caf\xc3\xa9 ok\"");
    char out[32];
    cr_assert_eq(sl_json_write_value(&v, out, sizeof out), 10);
    cr_assert(memcmp(out, "\"caf\xc3\xa9 ok\"", 10) == 0);
    v = sl_value_string(LIT("caf\xc3 ok"));
    cr_assert_eq(sl_json_write_value(&v, out, sizeof out), 11, "the stray byte becomes U+FFFD");
    v.flags = SL_VALUE_JSON_SAFE; /* a promise the writer keeps without looking */
    cr_assert_eq(sl_json_write_value(&v, out, sizeof out), 9);
}

Test(json, write_member)
{
    struct sl_value v = sl_value_int(42);
    char out[64];
    memset(out, '#', sizeof out);
    size_t n = sl_json_write_member(LIT("a\"b"), &v, out, sizeof out);
    cr_assert_eq(n, 9);
    cr_assert(memcmp(out, "\"a\\\"b\":42#", 10) == 0, "%.*s", (int)n, out);
    memset(out, '#', sizeof out);
    cr_assert_eq(sl_json_write_member(LIT("a\"b"), &v, out, 8), 9);
    cr_assert_eq(sl_json_write_member(LIT("a\"b"), &v, out, 2), 9);
    for (size_t i = 0; i < sizeof out; i++) cr_assert_eq(out[i], '#');
    cr_assert_eq(sl_json_write_member(LIT("a\"b"), &v, NULL, 0), 9);
}

/* An empty name needs 3 bytes ("":) before the value: with less room than that (none at
 * all, or a measuring call with no buffer), nothing is written, whatever the capacity
 * arithmetic gives (it once took 0 - 3 for room; found by fuzz_stages). Each buffer is of
 * the exact size (ASan). */
Test(json, a_member_with_an_empty_name_writes_nothing_without_room)
{
    struct sl_value v = sl_value_int(7);
    cr_assert_eq(sl_json_write_member("", 0, &v, NULL, 0), 4);
    for (size_t cap = 1; cap <= 4; cap++) {
        char *out = malloc(cap);
        memset(out, '#', cap);
        cr_assert_eq(sl_json_write_member("", 0, &v, out, cap), 4, "cap %zu", cap);
        if (cap == 4)
            cr_assert(memcmp(out, "\"\":7", 4) == 0);
        else
            for (size_t i = 0; i < cap; i++) cr_assert_eq(out[i], '#', "cap %zu, byte %zu", cap, i);
        free(out);
    }
}

/* The scan for plain string bytes stops at the first special byte ('"', '\\', a control
 * character, a byte >= 0x80) wherever it is, in a 16-byte block, an 8-byte word or the
 * tail, and reads nothing past the end: each text is an exact-size heap buffer (ASan). */
Test(json, the_plain_byte_scan_stops_at_the_first_special_byte_anywhere)
{
    static const unsigned char specials[] = {'"', '\\', 0x00, 0x1f, 0x0a, 0x80, 0xc3, 0xff};
    for (size_t len = 0; len <= 40; len++) {
        unsigned char *t = malloc(len ? len : 1);
        cr_assert_not_null(t);
        memset(t, 'a', len);
        cr_assert_eq(sl__json_scan_plain(t, t + len), t + len, "len %zu: none", len);
        for (size_t at = 0; at < len; at++)
            for (size_t k = 0; k < sizeof specials; k++) {
                memset(t, k % 2 ? ' ' : '~', len); /* the plain bytes around 0x20 and 0x7f */
                t[at] = specials[k];
                if (at + 1 < len) t[len - 1] = '"'; /* a later special does not matter */
                cr_assert_eq(sl__json_scan_plain(t, t + len), t + at, "len %zu at %zu: 0x%02x", len,
                             at, specials[k]);
                cr_assert_eq(sl__json_scan_plain_words(t, t + len), t + at);
            }
        free(t);
    }
}

/* The member lookup behind `a.b` on a parsed event's nested object gives what the general
 * path lookup gives, for every member name of objects with repeated, escaped and missing
 * names, nested values and blanks, and for texts that are not objects. */
Test(json, the_one_member_lookup_agrees_with_the_path_lookup)
{
    static const char *texts[] = {
        "{\"status\": 503, \"bytes\": 1234}",
        "{\"a\":1,\"b\":{\"a\":2},\"a\":\"last\"}",
        " { \"x\" : [1, {\"y\": 2}] , \"caf\\u00e9\" : true , \"q\\\"\" : null } ",
        "{}",
        "[1, 2]",
        "\"text\"",
        "{\"e\":\"a\\\"b\",\"f\":-1.5e3,\"g\":{}}",
    };
    static const char *names[] = {"status", "bytes", "a", "b", "x",       "caf\xc3\xa9", "q\"",
                                  "e",      "f",     "g", "y", "missing", "stat",        "statuss"};
    for (size_t t = 0; t < sizeof texts / sizeof *texts; t++)
        for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
            char path[32];
            snprintf(path, sizeof path, ".%s", names[k]);
            struct sl_value a = {0}, b = {0};
            int ra = sl__json_member(texts[t], strlen(texts[t]), names[k], strlen(names[k]), &a);
            int rb = sl__json_get(texts[t], strlen(texts[t]), path, strlen(path), &b, false);
            cr_assert_eq(ra, rb, "%s in %s: %d, path lookup %d", names[k], texts[t], ra, rb);
            cr_assert(a.type == b.type && a.flags == b.flags && a.len == b.len && a.s == b.s &&
                          a.i == b.i,
                      "%s in %s: another value", names[k], texts[t]);
        }
    struct sl_value v;
    const char *t = texts[1];
    cr_assert_eq(sl__json_member(t, strlen(t), "a", 1, &v), 0);
    cr_assert_eq(v.type, SL_STRING);
    cr_assert_eq(v.len, 4);
    cr_assert_eq(memcmp(v.s, "last", 4), 0, "the last member of a repeated name wins");
}

/* The digit scan of numbers stops at the first byte that is not '0'..'9' (every byte
 * value tried, at every place of a word and of the tail, digits of every value before it),
 * and reads nothing past the end. */
Test(json, the_digit_scan_stops_at_the_first_non_digit_anywhere)
{
    for (size_t len = 0; len <= 20; len++) {
        unsigned char *t = malloc(len ? len : 1);
        cr_assert_not_null(t);
        for (size_t i = 0; i < len; i++) t[i] = (unsigned char)('0' + i % 10);
        cr_assert_eq(digits_end(t, t + len), t + len, "len %zu: all digits", len);
        for (size_t at = 0; at < len; at++)
            for (unsigned b = 0; b < 256; b++) {
                if (b >= '0' && b <= '9') continue;
                for (size_t i = 0; i < len; i++) t[i] = (unsigned char)('9' - i % 10);
                t[at] = (unsigned char)b;
                cr_assert_eq(digits_end(t, t + len), t + at, "len %zu at %zu: 0x%02x", len, at, b);
            }
        free(t);
    }
}

/* Whatever the room, a member is written whole or not at all: below what it needs nothing
 * is touched, from there on (one pass, or measured first) the same bytes. */
Test(json, write_member_is_whole_or_nothing_at_every_capacity)
{
    struct sl_value v = sl_value_string(LIT("x\ny\"z"));
    const char want[] = "\"n\\u0001\\\"m\":\"x\\ny\\\"z\"";
    size_t need = sizeof want - 1;
    cr_assert_eq(sl_json_write_member(LIT("n\001\"m"), &v, NULL, 0), need);
    char out[128];
    for (size_t cap = 0; cap < sizeof out; cap++) {
        memset(out, '#', sizeof out);
        cr_assert_eq(sl_json_write_member(LIT("n\001\"m"), &v, out, cap), need, "cap %zu", cap);
        if (cap < need) {
            for (size_t i = 0; i < sizeof out; i++) cr_assert_eq(out[i], '#', "cap %zu", cap);
        } else {
            cr_assert(memcmp(out, want, need) == 0, "cap %zu: %.*s", cap, (int)need, out);
            cr_assert_eq(out[need], '#');
        }
    }
}

/* ---- writer round trips ------------------------------------------------------------ */

/* Writes `s` as a member value, reads it back and checks the decoded bytes. */
static void round_trip(const char *s, size_t len, const char *want, size_t want_len)
{
    char *doc = malloc(SL_JSON_ESCAPE_MAX(len) + 16), *dec = malloc(SL_JSON_ESCAPE_MAX(len) + 1);
    struct sl_value v = sl_value_string(s, len);
    memcpy(doc, "{\"k\":", 5);
    size_t n = 5 + sl_json_write_value(&v, doc + 5, SL_JSON_ESCAPE_MAX(len) + 2);
    doc[n++] = '}';
    struct members ms = {0};
    size_t off = 0;
    cr_assert_eq(sl_json_each_member(doc, n, collect, &ms, &off), 0, "at %zu", off);
    int m = sl_value_unescape(&ms.m[0].v, dec, SL_JSON_ESCAPE_MAX(len) + 1);
    cr_assert_eq(m, (int)want_len);
    cr_assert(memcmp(dec, want, want_len) == 0);
    free(doc);
    free(dec);
}

/* Appends code point cp as UTF-8. */
static size_t utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) return o[0] = (char)cp, 1;
    if (cp < 0x800) return o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 63)), 2;
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | (cp >> 6 & 63));
        return o[2] = (char)(0x80 | (cp & 63)), 3;
    }
    o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | (cp >> 12 & 63));
    return o[2] = (char)(0x80 | (cp >> 6 & 63)), o[3] = (char)(0x80 | (cp & 63)), 4;
}

Test(json, round_trip_every_ascii_byte_and_random_utf8)
{
    char s[1024];
    for (int c = 0; c < 128; c++) s[c] = (char)c;
    round_trip(s, 128, s, 128);
    unsigned seed = 12345;
    for (int iter = 0; iter < 2000; iter++) {
        size_t n = 0;
        while (n < sizeof s - 4) {
            seed = seed * 1103515245u + 12345u;
            uint32_t r = seed >> 8, cp;
            switch (r % 4) {
            case 0: cp = r % 0x80; break;
            case 1: cp = r % 0x800; break;
            case 2: cp = r % 0x10000; break;
            default: cp = 0x10000 + r % 0x100000; break;
            }
            if (cp >= 0xD800 && cp <= 0xDFFF) cp = '?';
            if (r % 97 == 0) break;
            n += utf8(s + n, cp);
        }
        round_trip(s, n, s, n);
    }
}

Test(json, round_trip_invalid_utf8_gets_replacements)
{
    round_trip(LIT("a\xff\"b"), LIT("a\xef\xbf\xbd\"b"));
    round_trip(LIT("\xe2\x82"), LIT("\xef\xbf\xbd"));
}

Test(json, round_trip_random_doubles)
{
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double d;
        memcpy(&d, &x, sizeof d);
        if (i % 2) d = (double)(x % 1000000) / 1000.0; /* log-like values too */
        struct sl_value v = sl_value_float(d);
        char doc[64];
        memcpy(doc, "{\"k\":", 5);
        size_t n = 5 + sl_json_write_value(&v, doc + 5, sizeof doc - 6);
        doc[n++] = '}';
        struct members ms = {0};
        cr_assert_eq(sl_json_each_member(doc, n, collect, &ms, NULL), 0, "%.*s", (int)n, doc);
        struct sl_value r = ms.m[0].v;
        if (!isfinite(d)) {
            cr_assert_eq(r.type, SL_NULL);
            continue;
        }
        cr_assert_eq(r.type, SL_FLOAT, "%.*s", (int)n, doc);
        cr_assert_eq(sl_value_number(&r), 0);
        cr_assert(memcmp(&r.f, &d, sizeof d) == 0, "%.*s: %.17g", (int)n, doc, d);
    }
}

/* ---- repeated names: the last one counts, as in jq, Python and JavaScript ------------- */

Test(json, get_takes_the_last_member_of_a_repeated_name)
{
    const char doc[] = "{\"a\":1,\"b\":{\"c\":1,\"d\":0,\"c\":[5,6]},\"a\":{\"x\":true},\"e\":[]}";
    struct sl_value v;
    cr_assert_eq(sl_json_get(doc, strlen(doc), "a", 1, &v), 0);
    expect_span(&v, SL_JSON, 0, "{\"x\":true}");
    cr_assert_eq(sl_json_get(doc, strlen(doc), "a.x", 3, &v), 0);
    cr_assert(v.type == SL_BOOL && v.b);
    cr_assert_eq(sl_json_get(doc, strlen(doc), "b.c[1]", 6, &v), 0);
    expect_span(&v, SL_INT, SL_VALUE_TEXT, "6");
    cr_assert_eq(sl_json_get(doc, strlen(doc), "b.d", 3, &v), 0);
    expect_span(&v, SL_INT, SL_VALUE_TEXT, "0");
    cr_assert_eq(sl_json_get(doc, strlen(doc), "a.y", 3, &v), SL_ENOTFOUND,
                 "the earlier \"a\" is not looked into");
    const char bad[] = "{\"a\":1,\"a\":2,}";
    cr_assert_eq(sl_json_get(bad, strlen(bad), "a", 1, &v), SL_EPARSE, "still validated");
}
