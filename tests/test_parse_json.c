/* parse_json: zero-copy indexing, paths into nested values, untouched bytes on output,
 * field mode, on_error (drop, dead_letter, fail), workers, and every JSONTestSuite file. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/builtins.h>

#include "stage_helpers.h"

static struct sl_pipeline *p;

static void setup(void)
{
    p = t_pipeline();
}

static void teardown(void)
{
    sl_pipeline_free(p);
}

TestSuite(parse_json, .init = setup, .fini = teardown, .timeout = 30);

Test(parse_json, indexes_every_member_as_spans_into_the_payload)
{
    static const char *const lines[] = {
        "{\"level\":\"error\",\"n\":12,\"f\":-1.5e3,\"ok\":true,\"no\":null,"
        "\"http\":{\"status\":503,\"path\":\"/x\"},\"tags\":[\"a\",\"b\"],\"msg\":\"a\\\"b\"}",
        NULL};
    struct t_capture *c = t_through(p, &sl_stage_parse_json, NULL, lines, NULL);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0], "level=S:error n=I:12 f=F:-1.5e3 ok=B:true no=N: "
                                   "http=J:{\"status\":503,\"path\":\"/x\"} tags=J:[\"a\",\"b\"] "
                                   "msg=S:a\"b");
    cr_assert(c->in_payload[0], "a field value was copied out of the payload");
}

Test(parse_json, untouched_event_serialises_as_its_original_bytes)
{
    static const char *const lines[] = {"{ \"b\" : 1 ,\t\"a\":[1, 2] }", "{}", NULL};
    struct t_capture *c = t_through(p, &sl_stage_parse_json, NULL, lines, NULL);
    cr_assert_eq(c->n, 2);
    cr_assert_str_eq(c->json[0], lines[0]);
    cr_assert_str_eq(c->fields[0], "b=I:1 a=J:[1, 2]");
    cr_assert_str_eq(c->json[1], "{}");
    cr_assert_str_eq(c->fields[1], "");
}

Test(parse_json, nested_values_are_reachable_by_path)
{
    static const char *const lines[] = {
        "{\"http\":{\"status\":404,\"hdr\":{\"x-id\":\"q1\"}},\"tags\":[\"a\",{\"k\":[7]}]}", NULL};
    static const char *const paths[] = {"http.status", "http.hdr.x-id", "tags[0]", "tags[1].k[0]",
                                        "tags[2]",     "http.nope",     NULL};
    struct sl_stage *src = t_add_lines(p, lines);
    (void)src;
    struct t_capture *c = t_run_paths(p, &sl_stage_parse_json, NULL, paths);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->lookups[0], "http.status=I:404 http.hdr.x-id=S:q1 tags[0]=S:a "
                                    "tags[1].k[0]=I:7 tags[2]=missing http.nope=missing");
}

Test(parse_json, escaped_member_names_are_decoded)
{
    static const char *const lines[] = {"{\"caf\\u00e9\":1,\"a\\\"b\":2}", NULL};
    struct t_capture *c = t_through(p, &sl_stage_parse_json, NULL, lines, NULL);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0], "caf\xc3\xa9=I:1 a\"b=I:2");
    cr_assert_str_eq(c->json[0], lines[0], "still in sync with the payload");
}

Test(parse_json, bad_lines_are_dropped_and_counted_by_default)
{
    static const char *const lines[] = {"{\"a\":1}", "{\"a\":",     "[1,2]",     "",
                                        "not json",  "{\"b\":2} x", "{\"c\":3}", NULL};
    struct sl_stage *st;
    struct t_capture *c = t_through(p, &sl_stage_parse_json, NULL, lines, &st);
    cr_assert_eq(c->n, 2);
    cr_assert_str_eq(c->fields[0], "a=I:1");
    cr_assert_str_eq(c->fields[1], "c=I:3");
    struct sl_stage_stats s = t_stats(st);
    cr_assert_eq(s.errors, 5);
    cr_assert_eq(s.dropped, 5);
    cr_assert_eq(s.events_in, 7);
    cr_assert_eq(s.events_out, 2);
}

Test(parse_json, dead_letter_carries_the_raw_line_and_the_reason)
{
    static const char *const lines[] = {"{\"a\":1}", "{\"a\":", "[1]", "", "{\"b\":2} x", NULL};
    struct sl_stage *dl = NULL;
    struct t_capture *c =
        t_run_dead_letter(p, &sl_stage_parse_json, "on_error: dead_letter", lines, &dl);
    struct t_capture *d = sl_stage_state(dl);
    cr_assert_eq(c->n, 1);
    cr_assert_eq(d->n, 4);
    cr_assert_str_eq(d->payloads[0], "{\"a\":");
    cr_assert_str_eq(d->fields[0], "message=S:{\"a\": error=S:invalid JSON at byte 5");
    cr_assert_str_eq(d->json[0],
                     "{\"message\":\"{\\\"a\\\":\",\"error\":\"invalid JSON at byte 5\"}");
    cr_assert_str_eq(d->fields[1], "message=S:[1] error=S:not a JSON object");
    cr_assert_str_eq(d->fields[2], "message=S: error=S:empty input: no JSON object");
    cr_assert_str_eq(d->fields[3], "message=S:{\"b\":2} x error=S:invalid JSON at byte 8");
}

Test(parse_json, a_dead_letter_of_a_line_with_invalid_utf8_can_be_replayed_byte_for_byte)
{
    /* JSON cannot carry 0xff: "message" shows U+FFFD, "message_base64" the exact bytes. */
    static const char *const lines[] = {"{\"a\":\"\xff\"}", "caf\xc3\xa9", NULL};
    struct sl_stage *dl = NULL;
    t_run_dead_letter(p, &sl_stage_parse_json, "on_error: dead_letter", lines, &dl);
    struct t_capture *d = sl_stage_state(dl);
    cr_assert_eq(d->n, 2);
    cr_assert_str_eq(d->json[0], "{\"message\":\"{\\\"a\\\":\\\"\xef\xbf\xbd\\\"}\","
                                 "\"message_base64\":\"eyJhIjoi/yJ9\","
                                 "\"error\":\"invalid JSON at byte 6\"}");
    cr_assert_str_eq(d->json[1], "{\"message\":\"caf\xc3\xa9\",\"error\":\"not a JSON object\"}",
                     "valid UTF-8 needs no copy");
}

Test(parse_json, on_error_fail_stops_the_run_naming_the_stage)
{
    static const char *const lines[] = {"{\"a\":1}", "{\"a\":tru}", NULL};
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_error err = {0};
    struct sl_config *cfg = sl_config_parse("on_error: fail", 14, "t.yaml", &err);
    struct sl_stage *st = sl_pipeline_add(p, "parse", &sl_stage_parse_json, cfg, &err);
    sl_config_free(cfg);
    cr_assert_not_null(st, "%s", err.msg);
    struct sl_stage *out = sl_pipeline_add(p, "out", &t_capture, NULL, &err);
    t_connect_port(p, src, NULL, st);
    t_connect_port(p, st, NULL, out);
    cr_assert_eq(sl_pipeline_run(p, &err), SL_EPARSE);
    cr_assert_str_eq(err.stage, "parse");
    cr_assert_str_eq(err.msg, "invalid JSON at byte 8"); /* "tru" could still be "true" */
}

Test(parse_json, field_mode_merges_the_members_of_a_string_field)
{
    static const char *const lines[] = {
        "{\"ts\":1,\"log\":\"{\\\"level\\\":\\\"warn\\\",\\\"ts\\\":2}\"}", NULL};
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *first = t_stage(p, "first", &sl_stage_parse_json, NULL);
    t_connect_port(p, src, NULL, first);
    struct t_capture *c =
        t_run_after(p, first, &sl_stage_parse_json, "field: log\nremove_field: true", NULL);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0], "ts=I:2 level=S:warn");
    cr_assert_str_eq(c->json[0], "{\"ts\":2,\"level\":\"warn\"}");
}

Test(parse_json, field_mode_with_a_bad_field_changes_nothing)
{
    static const char *const lines[] = {"{\"log\":\"{\\\"a\\\":1,\"}", "{\"x\":1}", "{\"log\":5}",
                                        NULL};
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *first = t_stage(p, "first", &sl_stage_parse_json, NULL);
    t_connect_port(p, src, NULL, first);
    struct sl_stage *st =
        t_stage(p, "stage", &sl_stage_parse_json, "field: log\non_error: dead_letter");
    struct sl_stage *out = t_stage(p, "out", &t_capture, NULL);
    struct sl_stage *dl = t_stage(p, "dead", &t_capture, NULL);
    t_connect_port(p, first, NULL, st);
    t_connect_port(p, st, NULL, out);
    t_connect_port(p, st, "dead_letter", dl);
    t_run_ok(p);
    struct t_capture *c = sl_stage_state(out), *d = sl_stage_state(dl);
    cr_assert_eq(c->n, 0);
    cr_assert_eq(d->n, 3);
    cr_assert_str_eq(d->fields[0], "log=S:{\"a\":1, error=S:invalid JSON at byte 7");
    cr_assert_str_eq(d->fields[1], "x=I:1 error=S:the field to parse is missing");
    cr_assert_str_eq(d->fields[2], "log=I:5 error=S:the field to parse is not a string");
}

/* ---- the field limit (issue 1): one event's fault stays with that event ---------------- */

Test(parse_json, a_line_with_65536_members_is_dead_lettered_and_the_run_goes_on)
{
    char *poison = t_json_members(65536, NULL, 0), *full = t_json_members(65535, NULL, 0);
    const char *lines[] = {"{\"n\":1}", poison, full, "{\"n\":3}", NULL};
    struct sl_stage *dl = NULL;
    struct t_capture *c =
        t_run_dead_letter(p, &sl_stage_parse_json, "on_error: dead_letter", lines, &dl);
    struct t_capture *d = sl_stage_state(dl);
    cr_assert_eq(c->n, 3);
    cr_assert_str_eq(c->fields[0], "n=I:1");
    cr_assert_str_eq(c->json[1], full, "65535 members are the limit, not past it");
    cr_assert_str_eq(c->fields[2], "n=I:3");
    cr_assert_eq(d->n, 1);
    cr_assert_str_eq(d->payloads[0], poison);
    cr_assert(t_ends_with(d->json[0], "\",\"error\":\"more than 65535 fields\"}"), "%.80s",
              d->json[0] + strlen(d->json[0]) - 80);
    cr_assert(strncmp(d->json[0], "{\"message\":\"{\\\"k0\\\":0,", 19) == 0);
    struct sl_stage_stats s = t_stats(sl_pipeline_find(p, "stage"));
    cr_assert_eq(s.errors, 1);
    cr_assert_eq(s.dropped, 0);
    free(poison);
    free(full);
}

Test(parse_json, a_line_with_65536_members_is_dropped_and_counted_by_default)
{
    char *poison = t_json_members(65536, NULL, 0);
    const char *lines[] = {"{\"n\":1}", poison, "{\"n\":3}", NULL};
    struct sl_stage *st;
    struct t_capture *c = t_through(p, &sl_stage_parse_json, NULL, lines, &st);
    cr_assert_eq(c->n, 2);
    cr_assert_str_eq(c->fields[1], "n=I:3");
    cr_assert_eq(t_stats(st).errors, 1);
    cr_assert_eq(t_stats(st).dropped, 1);
    free(poison);
}

Test(parse_json, a_line_with_65536_members_fails_the_run_only_with_on_error_fail)
{
    char *poison = t_json_members(65536, NULL, 0);
    const char *lines[] = {"{\"n\":1}", poison, NULL};
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *st = t_stage(p, "parse", &sl_stage_parse_json, "on_error: fail");
    struct sl_stage *out = t_stage(p, "out", &t_capture, NULL);
    t_connect_port(p, src, NULL, st);
    t_connect_port(p, st, NULL, out);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), SL_ELIMIT);
    cr_assert_str_eq(err.stage, "parse");
    cr_assert_str_eq(err.msg, "more than 65535 fields");
    free(poison);
}

Test(parse_json, field_mode_past_the_field_limit_dead_letters_the_event_unchanged)
{
    /* 65534 fields and a string field holding an object of two members: 65536 once merged. */
    char *inner = t_json_members(65534, "\"log\":\"{\\\"x\\\":1,\\\"y\\\":2}\"", 1);
    char *fits = t_json_members(65533, "\"log\":\"{\\\"x\\\":1,\\\"y\\\":2}\"", 1);
    const char *lines[] = {inner, fits, NULL};
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *first = t_stage(p, "first", &sl_stage_parse_json, NULL);
    struct sl_stage *st =
        t_stage(p, "stage", &sl_stage_parse_json, "field: log\non_error: dead_letter");
    struct sl_stage *out = t_stage(p, "out", &t_capture, NULL);
    struct sl_stage *dl = t_stage(p, "dead", &t_capture, NULL);
    t_connect_port(p, src, NULL, first);
    t_connect_port(p, first, NULL, st);
    t_connect_port(p, st, NULL, out);
    t_connect_port(p, st, "dead_letter", dl);
    t_run_ok(p);
    struct t_capture *c = sl_stage_state(out), *d = sl_stage_state(dl);
    cr_assert_eq(c->n, 1, "65533 + 2 members fit");
    cr_assert(t_ends_with(c->fields[0], "k65532=I:2 x=I:1 y=I:2"));
    cr_assert_eq(d->n, 1);
    const char *head = "log=S:{\"x\":1,\"y\":2} k1=I:1 ";
    cr_assert(strncmp(d->fields[0], head, strlen(head)) == 0, "%.40s", d->fields[0]);
    cr_assert(t_ends_with(d->fields[0], "k65533=I:3 error=S:more than 65535 fields"),
              "merged nothing before it was refused");
    free(inner);
    free(fits);
}

Test(parse_json, workers_give_the_same_events_in_order)
{
    enum { N = 5000 };
    static char text[N][64];
    static const char *lines[N + 1];
    for (int i = 0; i < N; i++) {
        snprintf(text[i], sizeof text[i], i % 7 ? "{\"i\":%d,\"s\":\"x%d\"}" : "{\"i\":%d", i, i);
        lines[i] = text[i];
    }
    lines[N] = NULL;
    struct sl_stage *st;
    struct t_capture *c = t_through(p, &sl_stage_parse_json, "workers: 2", lines, &st);
    cr_assert_eq(c->n, N - (N + 6) / 7);
    size_t k = 0;
    for (int i = 0; i < N; i++) {
        if (i % 7 == 0) continue;
        char want[64];
        snprintf(want, sizeof want, "i=I:%d s=S:x%d", i, i);
        cr_assert_str_eq(c->fields[k], want);
        k++;
    }
    cr_assert_eq(t_stats(st).errors, (N + 6) / 7);
}

/* Every JSONTestSuite document as one payload: y_ objects are indexed (and written back
 * byte for byte), y_ scalars and arrays are "not a JSON object", every n_ document is
 * rejected, and i_ documents go either way without a crash. */
Test(parse_json, json_test_suite_files)
{
    char dir[1024];
    t_testdata(dir, sizeof dir, "JSONTestSuite/test_parsing");
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cannot open %s", dir);
    static char names[400][300];
    static char paths[400][1400];
    static const char *files[401];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 400) {
        if (e->d_name[0] == '.') continue;
        snprintf(names[n], sizeof names[n], "%s", e->d_name);
        snprintf(paths[n], sizeof paths[n], "%s/%s", dir, e->d_name);
        files[n] = paths[n];
        n++;
    }
    closedir(d);
    files[n] = NULL;
    cr_assert_geq(n, 300);
    static const char *const none[] = {NULL};
    struct sl_stage *src = t_add_lines(p, none);
    struct t_text *tl = sl_stage_state(src);
    tl->files.n = n;
    tl->files.items = files;
    struct sl_stage *st = t_stage(p, "stage", &sl_stage_parse_json, "on_error: dead_letter");
    struct sl_stage *out = t_stage(p, "out", &t_capture, NULL);
    struct sl_stage *dl = t_stage(p, "dead", &t_capture, NULL);
    t_connect_port(p, src, NULL, st);
    t_connect_port(p, st, NULL, out);
    t_connect_port(p, st, "dead_letter", dl);
    t_run_ok(p);
    struct t_capture *c = sl_stage_state(out);
    struct t_capture *dead = sl_stage_state(dl);
    cr_assert_eq(c->n + dead->n, n, "every document comes out once");
    size_t ok = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        char *doc = t_read_file(files[i], &len);
        bool accepted = false;
        for (size_t k = 0; k < c->n && !accepted; k++)
            accepted = strlen(c->payloads[k]) == len && memcmp(c->payloads[k], doc, len) == 0 &&
                       strlen(doc) == len;
        size_t lead = strspn(doc, " \t\r\n");
        bool object = lead < len && doc[lead] == '{';
        if (names[i][0] == 'y' && object) {
            cr_expect(accepted, "%s was rejected", names[i]);
            ok++;
        }
        if (names[i][0] == 'n' || (names[i][0] == 'y' && !object)) {
            cr_expect(!accepted, "%s was accepted", names[i]);
            bad++;
        }
        free(doc);
    }
    cr_assert_geq(ok, 5);
    cr_assert_geq(bad, 180);
    for (size_t k = 0; k < c->n; k++)
        cr_expect_str_eq(c->json[k], c->payloads[k],
                         "accepted documents are written back as they are");
}

/* ---- repeated member names (issue 14): the last one counts -------------------------------- */

Test(parse_json, a_repeated_member_name_is_its_last_value_as_jq_reads_it)
{
    static const char *const lines[] = {"{\"a\":1,\"b\":{\"c\":1,\"c\":2},\"a\":3}", NULL};
    static const char *const paths[] = {"a", "b.c", NULL};
    t_add_lines(p, lines);
    struct t_capture *c = t_run_paths(p, &sl_stage_parse_json, NULL, paths);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->lookups[0], "a=I:3 b.c=I:2");
    cr_assert_str_eq(c->json[0], lines[0], "untouched: the original bytes, as documented");
}

Test(parse_json, a_changed_event_is_written_with_each_repeated_name_once)
{
    static const char *const lines[] = {"{\"a\":1,\"b\":2,\"a\":3}", NULL};
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, NULL);
    t_connect_port(p, src, NULL, json);
    struct t_capture *c = t_run_after(p, json, &sl_stage_remap, "set: {n: 'a * 10'}", NULL);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->json[0], "{\"b\":2,\"a\":3,\"n\":30}");
}
