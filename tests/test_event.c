/* Events and fields: accessors, set/get/remove/rename, copy on write, nested paths. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "runtime/internal.h"

static struct sl_batch *b; /* where the events go */

static void setup(void)
{
    t_fx_setup();
    b = t_fx.b;
}

TestSuite(event, .init = setup, .fini = t_fx_teardown, .timeout = 10);

static struct sl_value get(const struct sl_event *ev, const char *path)
{
    struct sl_value v;
    cr_assert_eq(sl_event_get(ev, path, strlen(path), &v), 0, "no field %s", path);
    return v;
}

static void assert_str(struct sl_value v, const char *want)
{
    cr_assert_eq(v.type, SL_STRING);
    cr_assert_eq(v.len, strlen(want));
    cr_assert(memcmp(v.s, want, v.len) == 0, "got '%.*s', want '%s'", (int)v.len, v.s, want);
}

Test(event, metadata_accessors)
{
    struct sl_event *ev = sl_batch_append(b);
    cr_assert_eq(sl_event_partition(ev), -1);
    cr_assert_eq(sl_event_time(ev), 0);
    sl_event_set_payload(ev, "hello", 5);
    sl_event_set_key(ev, "k1", 2);
    sl_event_set_time(ev, 1700000000123456789LL);
    sl_event_set_origin(ev, "app.log", 4096, 3);
    size_t len;
    cr_assert_eq(memcmp(sl_event_payload(ev, &len), "hello", 5), 0);
    cr_assert_eq(len, 5);
    cr_assert_eq(memcmp(sl_event_key(ev, &len), "k1", 2), 0);
    cr_assert_eq(len, 2);
    cr_assert_eq(sl_event_time(ev), 1700000000123456789LL);
    cr_assert_str_eq(sl_event_origin(ev), "app.log");
    cr_assert_eq(sl_event_offset(ev), 4096);
    cr_assert_eq(sl_event_partition(ev), 3);
    cr_assert_eq(sl_batch_bytes(b), 5);
    sl_event_set_payload(ev, "hi", 2);
    cr_assert_eq(sl_batch_bytes(b), 2, "bytes follow payload changes");
}

Test(event, set_get_remove_rename)
{
    struct sl_event *ev = sl_batch_append(b);
    struct sl_value v = sl_value_string("error", 5);
    cr_assert_eq(sl_event_set(ev, "level", 5, &v), 0);
    v = sl_value_int(512);
    cr_assert_eq(sl_event_set(ev, "latency_ms", 10, &v), 0);
    assert_str(get(ev, "level"), "error");
    cr_assert_eq(get(ev, "latency_ms").i, 512);
    cr_assert_eq(sl_event_field_count(ev), 2);
    cr_assert(sl_event_fields_changed(ev));

    v = sl_value_string("warn", 4); /* replace keeps position */
    sl_event_set(ev, "level", 5, &v);
    const char *name;
    size_t nlen;
    struct sl_value fv;
    cr_assert_eq(sl_event_field_at(ev, 0, &name, &nlen, &fv), 0);
    cr_assert_eq(nlen, 5);
    cr_assert_eq(memcmp(name, "level", 5), 0);
    assert_str(fv, "warn");

    cr_assert_eq(sl_event_rename(ev, "latency_ms", 10, "latency", 7), 0);
    cr_assert_eq(sl_event_get(ev, "latency_ms", 10, &fv), SL_ENOTFOUND);
    cr_assert_eq(get(ev, "latency").i, 512);
    cr_assert_eq(sl_event_remove(ev, "level", 5), 0);
    cr_assert_eq(sl_event_remove(ev, "level", 5), SL_ENOTFOUND);
    cr_assert_eq(sl_event_field_count(ev), 1);
    cr_assert_eq(sl_event_rename(ev, "nope", 4, "x", 1), SL_ENOTFOUND);
}

Test(event, rename_onto_an_existing_name_replaces_it)
{
    struct sl_event *ev = sl_batch_append(b);
    struct sl_value a = sl_value_int(1), c = sl_value_int(2);
    sl_event_set(ev, "a", 1, &a);
    sl_event_set(ev, "c", 1, &c);
    cr_assert_eq(sl_event_rename(ev, "a", 1, "c", 1), 0);
    cr_assert_eq(sl_event_field_count(ev), 1);
    cr_assert_eq(get(ev, "c").i, 1);
}

Test(event, many_fields_grow_the_index)
{
    struct sl_event *ev = sl_batch_append(b);
    char name[16];
    for (int i = 0; i < 300; i++) {
        int n = snprintf(name, sizeof name, "f%d", i);
        struct sl_value v = sl_value_int(i);
        cr_assert_eq(sl_event_set(ev, name, (size_t)n, &v), 0);
    }
    cr_assert_eq(sl_event_field_count(ev), 300);
    cr_assert_eq(get(ev, "f0").i, 0);
    cr_assert_eq(get(ev, "f299").i, 299);
}

Test(event, add_field_indexes_and_synced_declares_the_payload_parsed)
{
    struct sl_event *ev = sl_batch_append(b);
    sl_event_set_payload(ev, "{\"ok\":true}", 11);
    cr_assert(sl_event_fields_changed(ev), "a raw record is never in sync");
    struct sl_value v = sl_value_bool(true);
    cr_assert_eq(sl_event_add_field(ev, "ok", 2, &v), 0);
    cr_assert(sl_event_fields_changed(ev), "adding a field does not declare the payload parsed");
    sl_event_fields_synced(ev);
    cr_assert_not(sl_event_fields_changed(ev));
    cr_assert(get(ev, "ok").b);
    sl_event_clear_fields(ev);
    cr_assert_eq(sl_event_field_count(ev), 0);
    cr_assert(sl_event_fields_changed(ev));
    sl_event_fields_synced(ev);
    cr_assert_not(sl_event_fields_changed(ev));
    sl_event_set_payload(ev, "{}", 2);
    cr_assert(sl_event_fields_changed(ev), "a new payload is a raw record again");
}

Test(event, nested_paths_read_into_json_values)
{
    struct sl_event *ev = sl_batch_append(b);
    const char *http = "{\"status\": 503, \"path\": \"/api\", \"tags\": [\"a\", {\"x\": true}]}";
    struct sl_value v = sl_value_json(http, strlen(http));
    sl_event_add_field(ev, "http", 4, &v);
    struct sl_value st = get(ev, "http.status");
    cr_assert_eq(st.type, SL_INT);
    cr_assert_eq(sl_value_number(&st), 0);
    cr_assert_eq(st.i, 503);
    assert_str(get(ev, "http.path"), "/api");
    assert_str(get(ev, "http.tags[0]"), "a");
    cr_assert(get(ev, "http.tags[1].x").b);
    struct sl_value miss;
    cr_assert_eq(sl_event_get(ev, "http.nope", 9, &miss), SL_ENOTFOUND);
    cr_assert_eq(sl_event_get(ev, "http.tags[2]", 12, &miss), SL_ENOTFOUND);
    cr_assert_eq(sl_event_get(ev, "nothing.at.all", 14, &miss), SL_ENOTFOUND);
}

Test(event, literal_dotted_name_wins_over_a_path)
{
    struct sl_event *ev = sl_batch_append(b);
    struct sl_value v = sl_value_int(7);
    sl_event_set(ev, "a.b", 3, &v);
    cr_assert_eq(get(ev, "a.b").i, 7);
}

/* A transform's copy of an event shares the field array until it changes a field. */
static int set_level(struct sl_stage *s, struct sl_event *ev, struct sl_emit *out)
{
    (void)s;
    struct sl_value v = sl_value_string("changed", 7);
    sl_event_set(ev, "level", 5, &v);
    return sl_emit(out, ev);
}

static const struct sl_stage_type setter = {
    .abi = SL_STAGE_ABI,
    .name = "setter",
    .kind = SL_TRANSFORM,
    .doc = "sets level",
    .map = set_level,
};

Test(event, copy_on_write_leaves_the_input_batch_untouched)
{
    struct sl_stage *t = t_add(t_fx.p, "t", &setter, NULL);
    struct sl_event *ev = sl_batch_append(b);
    struct sl_value v = sl_value_string("original", 8);
    sl_event_add_field(ev, "level", 5, &v);
    sl_event_fields_synced(ev);
    struct sl_batch *outs[1];
    struct sl_emit e;
    sl__emit_init(&e, t, b, outs);
    cr_assert_eq(sl__stage_process(t, b, &e, NULL), 0);
    struct sl_batch *out = outs[0];
    cr_assert_eq(sl_batch_count(out), 1);
    assert_str(get(sl_batch_event(out, 0), "level"), "changed");
    assert_str(get(sl_batch_event(b, 0), "level"), "original");
    cr_assert_not(sl_event_fields_changed(sl_batch_event(b, 0)));
    sl__batch_add_parent(out, b); /* what the runtime does before pushing */
    sl_batch_unref(out);
}

Test(value, numbers_from_text_convert_lazily)
{
    struct sl_value v = {
        .type = SL_INT, .flags = SL_VALUE_TEXT, .s = "-9223372036854775808", .len = 20};
    cr_assert_eq(sl_value_number(&v), 0);
    cr_assert_eq(v.type, SL_INT);
    cr_assert_eq(v.i, INT64_MIN);
    struct sl_value big = {
        .type = SL_INT, .flags = SL_VALUE_TEXT, .s = "18446744073709551616", .len = 20};
    cr_assert_eq(sl_value_number(&big), 0);
    cr_assert_eq(big.type, SL_FLOAT, "too large for int64: a float");
    cr_assert_float_eq(big.f, 18446744073709551616.0, 1);
    struct sl_value f = {.type = SL_FLOAT, .flags = SL_VALUE_TEXT, .s = "2.5e3", .len = 5};
    cr_assert_eq(sl_value_number(&f), 0);
    cr_assert_float_eq(f.f, 2500.0, 1e-9);
    struct sl_value bad = {.type = SL_INT, .flags = SL_VALUE_TEXT, .s = "12x", .len = 3};
    cr_assert_eq(sl_value_number(&bad), SL_EPARSE);
}

/* Up to 18 digits are read without overflow checks: the bounds on either side of that
 * shortcut and of int64 itself. */
Test(value, integers_of_every_length_around_the_int64_limits)
{
    static const struct {
        const char *text;
        int type;
        int64_t i;
    } cases[] = {
        {"999999999999999999", SL_INT, 999999999999999999},   /* 18 digits */
        {"-999999999999999999", SL_INT, -999999999999999999}, /* 18 digits and a sign */
        {"+123", SL_INT, 123},
        {"1000000000000000000", SL_INT, 1000000000000000000}, /* 19 digits */
        {"9223372036854775807", SL_INT, INT64_MAX},
        {"-9223372036854775808", SL_INT, INT64_MIN},
        {"9223372036854775808", SL_FLOAT, 0}, /* INT64_MAX + 1 */
        {"-9223372036854775809", SL_FLOAT, 0},
        {"0000000000000000000000042", SL_INT, 42}, /* 25 digits, small value */
        {"99999999999999999999", SL_FLOAT, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct sl_value v = {.type = SL_INT,
                             .flags = SL_VALUE_TEXT,
                             .s = cases[k].text,
                             .len = (uint32_t)strlen(cases[k].text)};
        cr_assert_eq(sl_value_number(&v), 0, "%s", cases[k].text);
        cr_assert_eq(v.type, cases[k].type, "%s", cases[k].text);
        if (v.type == SL_INT) cr_assert_eq(v.i, cases[k].i, "%s", cases[k].text);
        if (v.type == SL_FLOAT)
            cr_assert_float_eq(v.f, strtod(cases[k].text, NULL), 1e3, "%s", cases[k].text);
    }
}

Test(value, unescape_json_strings)
{
    const char *raw = "a\\n\\\"b\\u00e9\\ud83d\\ude00\\/";
    struct sl_value v = {
        .type = SL_STRING, .flags = SL_VALUE_ESCAPED, .s = raw, .len = (uint32_t)strlen(raw)};
    char buf[64];
    int n = sl_value_unescape(&v, buf, sizeof buf);
    const char *want = "a\n\"b\xc3\xa9\xf0\x9f\x98\x80/";
    cr_assert_eq(n, (int)strlen(want));
    cr_assert_eq(memcmp(buf, want, (size_t)n), 0);
    struct sl_value bad = {.type = SL_STRING, .flags = SL_VALUE_ESCAPED, .s = "\\x", .len = 2};
    cr_assert_eq(sl_value_unescape(&bad, buf, sizeof buf), SL_EPARSE);
    cr_assert_eq(sl_value_unescape(&v, buf, 3), SL_EINVAL);
}

Test(value, compare_across_types)
{
    struct sl_value i = sl_value_int(3), f = sl_value_float(3.0), g = sl_value_float(3.5);
    bool cmp;
    cr_assert_eq(sl_value_compare(&i, &f, &cmp), 0);
    cr_assert(cmp);
    cr_assert_lt(sl_value_compare(&i, &g, &cmp), 0);
    struct sl_value s1 = sl_value_string("abc", 3);
    struct sl_value s2 = {.type = SL_STRING, .flags = SL_VALUE_ESCAPED, .s = "a\\u0062c", .len = 8};
    cr_assert_eq(sl_value_compare(&s1, &s2, &cmp), 0, "escaped and plain forms are equal");
    sl_value_compare(&s1, &i, &cmp);
    cr_assert_not(cmp, "strings and numbers do not compare");
    struct sl_value t = {.type = SL_INT, .flags = SL_VALUE_TEXT, .s = "3", .len = 1};
    cr_assert_eq(sl_value_compare(&t, &f, &cmp), 0);
    cr_assert(cmp);
}

static void assert_json(const struct sl_event *ev, const char *want)
{
    size_t need = sl_event_write_json(ev, NULL, 0);
    cr_assert_eq(need, strlen(want), "needs %zu bytes, want %zu", need, strlen(want));
    char buf[256];
    cr_assert_eq(sl_event_write_json(ev, buf, sizeof buf), need);
    cr_assert(memcmp(buf, want, need) == 0, "wrote %.*s", (int)need, buf);
    char small[4] = "xyz";
    sl_event_write_json(ev, small, 3);
    if (need > 3) cr_assert_str_eq(small, "xyz", "nothing written when it does not fit");
}

Test(event, json_form_reuses_untouched_payloads)
{
    const char *line = "{ \"level\" : \"info\", \"n\": 1 }";
    struct sl_event *ev = sl_batch_append(b);
    sl_event_set_payload(ev, line, strlen(line));
    assert_json(ev, "{\"message\":\"{ \\\"level\\\" : \\\"info\\\", \\\"n\\\": 1 }\"}");
    struct sl_value lv = sl_value_string(line + 13, 4),
                    nv = {.type = SL_INT, .flags = SL_VALUE_TEXT, .s = line + 25, .len = 1};
    sl_event_add_field(ev, "level", 5, &lv);
    sl_event_add_field(ev, "n", 1, &nv);
    sl_event_fields_synced(ev);
    assert_json(ev, line); /* parsed, untouched: the original bytes */
    struct sl_value env = sl_value_string("prod", 4);
    sl_event_set(ev, "env", 3, &env);
    sl_event_rename(ev, "level", 5, "severity", 8);
    assert_json(ev, "{\"severity\":\"info\",\"n\":1,\"env\":\"prod\"}");
    sl_event_fields_synced(ev);
    assert_json(ev, line);
    sl_event_fields_changed_mark(ev);
    assert_json(ev, "{\"severity\":\"info\",\"n\":1,\"env\":\"prod\"}");
}

/* A raw record (nobody parsed its payload) is written as valid JSON whatever it holds:
 * the payload as "message", then the fields a source or a stage added beside it. */
Test(event, json_form_of_a_raw_record_keeps_the_payload_as_message)
{
    const char *line = "GET /a \"q\"\t\x01 caf\xc3\xa9 \xff";
    struct sl_event *ev = sl_batch_append(b);
    sl_event_set_payload(ev, line, strlen(line));
    struct sl_value host = sl_value_string("web1", 4);
    sl_event_add_field(ev, "host", 4, &host); /* what the file source adds */
    assert_json(ev, "{\"message\":\"GET /a \\\"q\\\"\\t\\u0001 caf\xc3\xa9 \xef\xbf\xbd\","
                    "\"host\":\"web1\"}");
    struct sl_value lv = sl_value_string("warn", 4);
    sl_event_set(ev, "level", 5, &lv); /* a change keeps the line */
    assert_json(ev, "{\"message\":\"GET /a \\\"q\\\"\\t\\u0001 caf\xc3\xa9 \xef\xbf\xbd\","
                    "\"host\":\"web1\",\"level\":\"warn\"}");
    struct sl_value mv = sl_value_string("short", 5);
    sl_event_set(ev, "message", 7, &mv); /* a field called message wins */
    assert_json(ev, "{\"host\":\"web1\",\"level\":\"warn\",\"message\":\"short\"}");
}

Test(event, json_form_of_a_json_looking_raw_line_is_still_wrapped)
{
    const char *line = "{\"a\":1}";
    struct sl_event *ev = sl_batch_append(b);
    sl_event_set_payload(ev, line, strlen(line));
    struct sl_value host = sl_value_string("h", 1);
    sl_event_add_field(ev, "host", 4, &host);
    assert_json(ev, "{\"message\":\"{\\\"a\\\":1}\",\"host\":\"h\"}");
}

Test(event, json_form_of_fields_without_a_payload)
{
    struct sl_event *ev = sl_batch_append(b);
    assert_json(ev, "{}");
    struct sl_value n = sl_value_int(3);
    sl_event_set(ev, "count", 5, &n);
    assert_json(ev, "{\"count\":3}");
}

Test(event, json_form_after_a_parser_of_another_format)
{
    const char *line = "level=info n=2";
    struct sl_event *ev = sl_batch_append(b);
    sl_event_set_payload(ev, line, strlen(line));
    struct sl_value lv = sl_value_string(line + 6, 4), nv = sl_value_int(2);
    sl_event_add_field(ev, "level", 5, &lv);
    sl_event_add_field(ev, "n", 1, &nv);
    sl_event_fields_changed_mark(ev); /* logfmt parsed it: the fields are the record */
    cr_assert(sl_event_fields_changed(ev));
    assert_json(ev, "{\"level\":\"info\",\"n\":2}");
    sl_event_remove(ev, "level", 5);
    sl_event_remove(ev, "n", 1);
    assert_json(ev, "{}");
}

Test(event, json_form_of_a_new_payload_after_a_parse_is_raw_again)
{
    const char *doc = "{\"a\":1}";
    struct sl_event *ev = sl_batch_append(b);
    sl_event_set_payload(ev, doc, strlen(doc));
    struct sl_value v = {.type = SL_INT, .flags = SL_VALUE_TEXT, .s = doc + 5, .len = 1};
    sl_event_add_field(ev, "a", 1, &v);
    sl_event_fields_synced(ev);
    assert_json(ev, doc);
    sl_event_set_payload(ev, "not json", 8);
    assert_json(ev, "{\"message\":\"not json\",\"a\":1}");
}

Test(event, json_form_of_an_empty_parsed_object_is_its_bytes)
{
    struct sl_event *ev = sl_batch_append(b);
    sl_event_set_payload(ev, "{    }", 6);
    assert_json(ev, "{\"message\":\"{    }\"}"); /* a raw line */
    sl_event_fields_synced(ev);                  /* a parser indexed an empty object */
    assert_json(ev, "{    }");
}

/* ---- the field limit ------------------------------------------------------------------- */

/* Appends fields f0, f1, ... with add_field until the event has `n`; asserts each. */
static void fill_fields(struct sl_event *ev, int n)
{
    char name[16];
    for (int i = (int)sl_event_field_count(ev); i < n; i++) {
        int len = snprintf(name, sizeof name, "f%d", i);
        const char *kept = sl_event_strdup(ev, name, (size_t)len);
        struct sl_value v = sl_value_int(i);
        cr_assert_eq(sl_event_add_field(ev, kept, (size_t)len, &v), 0, "field %d", i);
    }
}

Test(event, the_65536th_field_is_a_per_event_limit_not_out_of_memory)
{
    struct sl_event *ev = sl_batch_append(b);
    fill_fields(ev, SL_EVENT_MAX_FIELDS);
    cr_assert_eq(sl_event_field_count(ev), 65535);
    struct sl_value v = sl_value_int(-1);
    cr_assert_eq(sl_event_add_field(ev, "one_more", 8, &v), SL_ELIMIT);
    cr_assert_eq(sl_event_set(ev, "one_more", 8, &v), SL_ELIMIT);
    cr_assert_eq(sl_event_field_count(ev), 65535, "a refused field leaves the event as it was");
    cr_assert_eq(sl_event_set(ev, "f7", 2, &v), 0, "replacing a field adds none");
    cr_assert_eq(get(ev, "f7").i, -1);
    cr_assert_eq(get(ev, "f65534").i, 65534);
}

Test(event, an_event_at_the_field_limit_can_still_be_dead_lettered)
{
    struct sl_event *ev = sl_batch_append(b);
    sl_event_set_payload(ev, "the line", 8);
    fill_fields(ev, SL_EVENT_MAX_FIELDS);
    cr_assert_eq(sl_event_set_error(ev, "too many fields", 15), 0);
    cr_assert_eq(sl_event_field_count(ev), 65536);
    assert_str(get(ev, "error"), "too many fields");
    cr_assert_eq(sl_event_set_error(ev, "again", 5), 0, "a second reason replaces the first");
    cr_assert_eq(sl_event_field_count(ev), 65536);
    assert_str(get(ev, "error"), "again");
}

/* ---- dead letters keep the original bytes --------------------------------------------- */

/* Decodes standard base64 (with padding) into `out`; returns the bytes, or -1. */
static long unbase64(const char *s, size_t len, unsigned char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (len % 4) return -1;
    long o = 0;
    for (size_t i = 0; i < len; i += 4) {
        unsigned v = 0;
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            const char *at = s[i + k] == '=' ? NULL : strchr(abc, s[i + k]);
            if (!at && s[i + k] != '=') return -1;
            pad += !at;
            v = v << 6 | (at ? (unsigned)(at - abc) : 0);
        }
        out[o++] = (unsigned char)(v >> 16);
        if (pad < 2) out[o++] = (unsigned char)(v >> 8);
        if (pad < 1) out[o++] = (unsigned char)v;
    }
    return o;
}

Test(event, a_dead_letter_of_invalid_utf8_keeps_the_bytes_in_message_base64)
{
    /* Bytes a JSON string cannot carry as they are (each becomes U+FFFD), a NUL, and
     * lengths that make base64 pad with one and with two '='. */
    static const char *const lines[] = {"ok \xff\xfe end", "\xc3\x28\x00x", "\xe2\x82", "\x80"};
    static const size_t lens[] = {9, 4, 2, 1};
    static const char *const want[] = {"b2sg//4gZW5k", "wygAeA==", "4oI=", "gA=="};
    for (size_t k = 0; k < 4; k++) {
        struct sl_event *ev = sl_batch_append(b);
        sl_event_set_payload(ev, lines[k], lens[k]);
        cr_assert_eq(sl_event_set_error(ev, "bad", 3), 0);
        struct sl_value m = get(ev, "message_base64");
        assert_str(m, want[k]);
        unsigned char back[16];
        long n = unbase64(m.s, m.len, back);
        cr_assert_eq(n, (long)lens[k], "line %zu: %.*s", k, (int)m.len, m.s);
        cr_assert(memcmp(back, lines[k], lens[k]) == 0, "line %zu", k);
        const char *name;
        sl_event_field_at(ev, 1, &name, NULL, NULL);
        cr_assert_str_eq(name, "message_base64", "between message and error");
    }
}

Test(event, a_dead_letter_of_valid_utf8_has_no_message_base64)
{
    struct sl_event *ev = sl_batch_append(b);
    sl_event_set_payload(ev, "caf\xc3\xa9 \x01 \xf0\x9f\x98\x80", 12);
    cr_assert_eq(sl_event_set_error(ev, "bad", 3), 0);
    struct sl_value v;
    cr_assert_eq(sl_event_get(ev, "message_base64", 14, &v), SL_ENOTFOUND);
    cr_assert_eq(sl_event_field_count(ev), 2);
}

/* ---- repeated names: the last one counts ------------------------------------------------ */

/* Appends fields name=int value, in order, with add_field (as a parser indexes a line). */
static void add_ints(struct sl_event *ev, const char *const *names, const int *vals, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct sl_value v = sl_value_int(vals[i]);
        cr_assert_eq(sl_event_add_field(ev, names[i], strlen(names[i]), &v), 0);
    }
}

/* The JSON form of `ev`, NUL-terminated, in `buf`. */
static const char *json_of(const struct sl_event *ev, char *buf, size_t cap)
{
    size_t n = sl_event_write_json(ev, buf, cap - 1);
    cr_assert_lt(n, cap);
    buf[n] = '\0';
    return buf;
}

Test(event, a_repeated_field_name_reads_as_its_last_value)
{
    struct sl_event *ev = sl_batch_append(b);
    add_ints(ev, (const char *[]){"a", "b", "a"}, (const int[]){1, 2, 3}, 3);
    const char *h1 = "{\"s\":1,\"s\":2}", *h2 = "{\"s\":9}";
    struct sl_value v = sl_value_json(h1, strlen(h1));
    sl_event_add_field(ev, "h", 1, &v);
    cr_assert_eq(get(ev, "a").i, 3);
    struct sl_value s = get(ev, "h.s");
    cr_assert_eq(sl_value_number(&s), 0);
    cr_assert_eq(s.i, 2, "the last member inside a JSON value too");
    v = sl_value_json(h2, strlen(h2));
    sl_event_add_field(ev, "h", 1, &v);
    s = get(ev, "h.s");
    cr_assert_eq(sl_value_number(&s), 0);
    cr_assert_eq(s.i, 9, "a path starts at the last field of its name");
}

Test(event, a_change_keeps_only_the_last_field_of_a_repeated_name)
{
    char buf[256];
    struct sl_event *ev = sl_batch_append(b);
    sl_event_set_payload(ev, "{\"a\":1,\"b\":2,\"a\":3}", 19);
    add_ints(ev, (const char *[]){"a", "b", "a"}, (const int[]){1, 2, 3}, 3);
    sl_event_fields_synced(ev);
    cr_assert_str_eq(json_of(ev, buf, sizeof buf), "{\"a\":1,\"b\":2,\"a\":3}", "untouched");
    struct sl_value v = sl_value_int(4);
    cr_assert_eq(sl_event_set(ev, "c", 1, &v), 0);
    cr_assert_str_eq(json_of(ev, buf, sizeof buf), "{\"b\":2,\"a\":3,\"c\":4}");
    cr_assert_eq(sl_event_field_count(ev), 3);

    struct sl_event *rm = sl_batch_append(b);
    add_ints(rm, (const char *[]){"a", "b", "a"}, (const int[]){1, 2, 3}, 3);
    cr_assert_eq(sl_event_remove(rm, "a", 1), 0);
    struct sl_value gone;
    cr_assert_eq(sl_event_get(rm, "a", 1, &gone), SL_ENOTFOUND, "no earlier 'a' comes back");
    cr_assert_eq(sl_event_field_count(rm), 1);

    struct sl_event *rn = sl_batch_append(b);
    add_ints(rn, (const char *[]){"a", "x", "a", "x"}, (const int[]){1, 2, 3, 4}, 4);
    cr_assert_eq(sl_event_rename(rn, "a", 1, "x", 1), 0);
    cr_assert_eq(sl_event_field_count(rn), 1);
    cr_assert_eq(get(rn, "x").i, 3);
}

Test(event, the_json_of_fields_parsed_from_another_format_has_each_name_once)
{
    char buf[256];
    struct sl_event *ev = sl_batch_append(b); /* as parse_logfmt leaves "a=1 b=2 a=3" */
    sl_event_set_payload(ev, "a=1 b=2 a=3", 11);
    add_ints(ev, (const char *[]){"a", "b", "a"}, (const int[]){1, 2, 3}, 3);
    sl_event_fields_changed_mark(ev);
    cr_assert_str_eq(json_of(ev, buf, sizeof buf), "{\"b\":2,\"a\":3}");

    struct sl_event *raw = sl_batch_append(b); /* a raw line with a repeated source field */
    sl_event_set_payload(raw, "line", 4);
    add_ints(raw, (const char *[]){"n", "n"}, (const int[]){1, 2}, 2);
    cr_assert_str_eq(json_of(raw, buf, sizeof buf), "{\"message\":\"line\",\"n\":2}");
}

Test(event, many_repeated_names_keep_the_last_of_each)
{
    /* More fields than are compared pair by pair: the names go through a hash table. */
    static char names[80][8];
    const char *np[80];
    int vals[80];
    for (int i = 0; i < 80; i++) {
        snprintf(names[i], sizeof names[i], "k%d", i % 40);
        np[i] = names[i];
        vals[i] = i;
    }
    struct sl_event *ev = sl_batch_append(b);
    add_ints(ev, np, vals, 80);
    struct sl_value v = sl_value_int(-1);
    cr_assert_eq(sl_event_set(ev, "z", 1, &v), 0);
    cr_assert_eq(sl_event_field_count(ev), 41);
    for (int i = 0; i < 40; i++) {
        const char *name;
        struct sl_value fv;
        sl_event_field_at(ev, (size_t)i, &name, NULL, &fv);
        cr_assert_str_eq(name, names[i]);
        cr_assert_eq(fv.i, 40 + i);
    }
}

Test(event, a_change_keeps_every_distinct_name_and_lookups_stop_at_the_first_match)
{
    /* 64 distinct names share a 64-bit summary: many share a bit and are compared, none
     * is taken for a repeat. After the change the event is known to repeat no name. */
    static char names[64][8];
    struct sl_event *ev = sl_batch_append(b);
    for (int i = 0; i < 64; i++) {
        int n = snprintf(names[i], sizeof names[i], "f%d", i);
        struct sl_value v = sl_value_int(i);
        cr_assert_eq(sl_event_add_field(ev, names[i], (size_t)n, &v), 0);
    }
    cr_assert(ev->flags & SL__EV_MAYBE_DUPS, "appended without looking");
    struct sl_value v = sl_value_int(-1);
    cr_assert_eq(sl_event_set(ev, "f3", 2, &v), 0);
    cr_assert_eq(sl_event_field_count(ev), 64);
    cr_assert_not(ev->flags & SL__EV_MAYBE_DUPS);
    cr_assert_eq(get(ev, "f3").i, -1);
    cr_assert_eq(get(ev, "f63").i, 63);
}

/* A parser's names, appended without looking, are checked once when it declares the event
 * in sync: none repeated, lookups may stop at the first match; a repeat keeps the flag. */
Test(event, a_parsed_event_without_repeats_is_known_to_have_none)
{
    struct sl_event *ev = sl_batch_append(b), *dup = sl_batch_append(b);
    struct sl_value v = sl_value_int(1);
    static const char *const names[] = {"ts", "level", "msg", "host", "path", "status"};
    for (size_t i = 0; i < 6; i++) {
        cr_assert_eq(sl_event_add_field(ev, names[i], strlen(names[i]), &v), 0);
        cr_assert_eq(sl_event_add_field(dup, names[i], strlen(names[i]), &v), 0);
    }
    cr_assert_eq(sl_event_add_field(dup, "level", 5, &v), 0);
    sl_event_fields_synced(ev);
    sl_event_fields_synced(dup);
    cr_assert_not(ev->flags & SL__EV_MAYBE_DUPS);
    cr_assert(dup->flags & SL__EV_MAYBE_DUPS);
}

/* Whatever the hint says, a hinted lookup finds what sl_event_get finds (the last field of
 * a repeated name too), and leaves the hint at the field it found. */
Test(event, a_hinted_lookup_answers_as_sl_event_get_whatever_the_hint)
{
    struct sl_event *ev = sl_batch_append(b), *dup = sl_batch_append(b);
    static const char *const names[] = {"ts", "level", "msg", "level", "path"};
    for (int i = 0; i < 5; i++) {
        struct sl_value v = sl_value_int(i);
        if (i != 3) cr_assert_eq(sl_event_add_field(ev, names[i], strlen(names[i]), &v), 0);
        cr_assert_eq(sl_event_add_field(dup, names[i], strlen(names[i]), &v), 0);
    }
    sl_event_fields_synced(ev);
    sl_event_fields_synced(dup);
    for (uint32_t h = 0; h < 7; h++) {
        struct sl_value got;
        uint32_t hint = h;
        cr_assert_eq(sl__event_get_hinted(ev, "level", 5, &got, &hint), 0);
        cr_assert_eq(got.i, 1, "hint %u", h);
        cr_assert_eq(hint, 1);
        hint = h;
        cr_assert_eq(sl__event_get_hinted(dup, "level", 5, &got, &hint), 0);
        cr_assert_eq(got.i, 3, "hint %u: the last of a repeated name", h);
        hint = h;
        cr_assert_eq(sl__event_get_hinted(ev, "nope", 4, &got, &hint), SL_ENOTFOUND);
        cr_assert_eq(hint, h, "a name not found leaves the hint");
    }
}

/* A dotted path keeps in its hint the field of its first segment; whatever the hint says
 * (a top-level index, a nested one, one past the fields), a hinted lookup answers as
 * sl_event_get: a field literally named the whole path wins when there is one (added
 * after the hint was learnt, too), the last of a repeated first segment counts, a first
 * segment that is not an object finds nothing. */
Test(event, a_hinted_dotted_lookup_answers_as_sl_event_get_whatever_the_hint)
{
    struct sl_event *ev[5];
    const char *http = "{\"status\":503,\"path\":\"/x\"}", *other = "{\"status\":200}";
    struct sl_value one = sl_value_int(1), js = sl_value_json(http, strlen(http)),
                    js2 = sl_value_json(other, strlen(other));
    for (int k = 0; k < 5; k++) {
        ev[k] = sl_batch_append(b);
        cr_assert_eq(sl_event_add_field(ev[k], "ts", 2, &one), 0);
        cr_assert_eq(sl_event_add_field(ev[k], k == 3 ? "http" : "level", k == 3 ? 4 : 5,
                                        k == 3 ? &js2 : &one),
                     0);
        cr_assert_eq(sl_event_add_field(ev[k], "http", 4, k == 4 ? &one : &js), 0);
        sl_event_fields_synced(ev[k]);
    }
    /* ev[1]: a field literally named "http.status"; ev[2]: a name as long modulo 16 */
    struct sl_value seven = sl_value_int(7);
    cr_assert_eq(sl_event_set(ev[1], "http.status", 11, &seven), 0);
    cr_assert_eq(sl_event_set(ev[2], "a-name-of-27-bytes-11-mod16", 27, &seven), 0);
    /* ev[3]: "http" twice (the second, 503, counts); ev[4]: "http" is not an object */
    static const uint32_t hints[] = {0,
                                     1,
                                     2,
                                     3,
                                     9,
                                     UINT32_MAX,
                                     SL__HINT_NESTED | 0,
                                     SL__HINT_NESTED | 1,
                                     SL__HINT_NESTED | 2,
                                     SL__HINT_NESTED | 7};
    for (size_t k = 0; k < 5; k++) {
        struct sl_value want, got;
        int want_rc = sl_event_get(ev[k], "http.status", 11, &want);
        cr_assert_eq(want_rc, k == 4 ? SL_ENOTFOUND : 0, "event %zu", k);
        if (k < 4) cr_assert_eq(want.len, k == 1 ? 0 : 3, "event %zu", k);
        for (size_t h = 0; h < sizeof hints / sizeof hints[0]; h++) {
            uint32_t hint = hints[h];
            int rc = sl__event_get_hinted(ev[k], "http.status", 11, &got, &hint);
            cr_assert_eq(rc, want_rc, "event %zu, hint %#x", k, hints[h]);
            if (rc) continue;
            cr_assert_eq(got.type, want.type, "event %zu, hint %#x", k, hints[h]);
            if (k == 1) {
                cr_assert_eq(got.i, 7, "the literal name wins (hint %#x)", hints[h]);
            } else {
                cr_assert_eq(got.len, 3);
                cr_assert(memcmp(got.s, "503", 3) == 0, "event %zu, hint %#x: %.*s", k, hints[h],
                          (int)got.len, got.s);
            }
        }
    }
    /* The nested hint learnt on ev[0], then a literal field of that name: the literal. */
    uint32_t hint = UINT32_MAX;
    struct sl_value got;
    cr_assert_eq(sl__event_get_hinted(ev[0], "http.status", 11, &got, &hint), 0);
    cr_assert_eq(hint, SL__HINT_NESTED | 2, "the hint holds the field of \"http\"");
    cr_assert_eq(sl_event_set(ev[0], "http.status", 11, &seven), 0);
    cr_assert_eq(sl__event_get_hinted(ev[0], "http.status", 11, &got, &hint), 0);
    cr_assert_eq(got.type, SL_INT);
    cr_assert_eq(got.i, 7);
}

Test(event, nested_lookups_skip_strings_and_brackets_to_the_last_member)
{
    /* Field values come from a parser: lookups skip what they pass over by its end alone
     * (a string's quote, a container's bracket) and must not be fooled by either. */
    struct sl_event *ev = sl_batch_append(b);
    const char *h = "{\"x\":\"a}\\\"],\\\\\",\"s\":[1,{\"s\":2},\"]}\"],\"t\" : true ,"
                    "\"s\":{\"s\":[\"\\u00e9\",{\"k\":\"v\"}]}}";
    struct sl_value v = sl_value_json(h, strlen(h));
    sl_event_add_field(ev, "h", 1, &v);
    assert_str(get(ev, "h.s.s[1].k"), "v");
    cr_assert(get(ev, "h.t").b);
    struct sl_value x = get(ev, "h.x");
    cr_assert_eq(x.flags, SL_VALUE_ESCAPED);
    cr_assert_eq(x.len, 8);
    struct sl_value miss;
    cr_assert_eq(sl_event_get(ev, "h.s[0]", 6, &miss), SL_ENOTFOUND, "the last 's' is an object");
    cr_assert_eq(sl_event_get(ev, "h.y", 3, &miss), SL_ENOTFOUND);
}
