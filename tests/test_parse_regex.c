/* parse_regex: named groups, types, several patterns, errors. */
#include <criterion/criterion.h>
#include <stdio.h>
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

TestSuite(parse_regex, .init = setup, .fini = teardown, .timeout = 30);

Test(parse_regex, named_groups_become_fields)
{
    static const char *const lines[] = {"GET /a 200 12ms", NULL};
    struct t_capture *c = t_through(
        p, &sl_stage_parse_regex,
        "patterns: '^(?<method>\\S+) (?<path>\\S+) (?<status:int>\\d+) (?<ms:float>[\\d.]+)ms$'",
        lines, NULL);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0], "method=S:GET path=S:/a status=I:200 ms=F:12");
}

Test(parse_regex, patterns_are_tried_in_order_and_the_first_match_wins)
{
    static const char *const lines[] = {"k=v", "42 apples", "k2=v2 and more", "nothing", NULL};
    struct sl_stage *st;
    struct t_capture *c = t_through(p, &sl_stage_parse_regex,
                                    "patterns:\n"
                                    "  - '^(?<key>\\w+)=(?<value>\\w+)$'\n"
                                    "  - '^(?<n:int>\\d+) (?<what>\\w+)$'\n"
                                    "  - '^(?<key>\\w+)=(?<rest>.*)$'\n",
                                    lines, &st);
    cr_assert_eq(c->n, 3);
    cr_assert_str_eq(c->fields[0], "key=S:k value=S:v");
    cr_assert_str_eq(c->fields[1], "n=I:42 what=S:apples");
    cr_assert_str_eq(c->fields[2], "key=S:k2 rest=S:v2 and more");
    cr_assert_eq(t_stats(st).errors, 1);
    cr_assert_eq(t_stats(st).dropped, 1);
    cr_assert(c->in_payload[0] && c->in_payload[2], "string captures are spans of the payload");
}

Test(parse_regex, types_from_the_map_and_inline)
{
    static const char *const lines[] = {"a=-12 b=2.5 c=YES d=off e=007 f=1e3 g=x h=", NULL};
    struct t_capture *c = t_through(
        p, &sl_stage_parse_regex,
        "patterns: '^a=(?<a>\\S+) b=(?<b>\\S+) c=(?<c:bool>\\S+) d=(?<d>\\S+) e=(?<e:int>\\S+) "
        "f=(?<f:auto>\\S+) g=(?<g:auto>\\S+) h=(?<h:int>\\S*)$'\n"
        "types: {a: int, b: float, d: bool}",
        lines, NULL);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0], "a=I:-12 b=F:2.5 c=B:true d=B:false e=I:7 f=F:1e3 g=S:x h=N:");
    cr_assert_str_eq(c->json[0],
                     "{\"a\":-12,\"b\":2.5,\"c\":true,\"d\":false,\"e\":7,\"f\":1e3,\"g\":\"x\","
                     "\"h\":null}");
}

Test(parse_regex, a_capture_that_does_not_convert_is_an_error)
{
    static const char *const lines[] = {"n=12", "n=1x", "n=99999999999999999999", NULL};
    struct sl_stage *dl;
    struct t_capture *c = t_run_dead_letter(p, &sl_stage_parse_regex,
                                            "patterns: '^n=(?<n:int>\\w+)$'\n"
                                            "on_error: dead_letter",
                                            lines, &dl);
    struct t_capture *d = sl_stage_state(dl);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0], "n=I:12");
    cr_assert_eq(d->n, 2);
    cr_assert_str_eq(d->fields[0], "message=S:n=1x error=S:capture 'n' is not an int: '1x'");
    cr_assert_str_eq(d->fields[1], "message=S:n=99999999999999999999 error=S:capture 'n' is not "
                                   "an int: '99999999999999999999'");
}

Test(parse_regex, unset_groups_make_no_field)
{
    static const char *const lines[] = {"x 1", "y", NULL};
    struct t_capture *c = t_through(p, &sl_stage_parse_regex,
                                    "patterns: '^(?<name>\\w)(?: (?<num:int>\\d))?$'", lines, NULL);
    cr_assert_eq(c->n, 2);
    cr_assert_str_eq(c->fields[0], "name=S:x num=I:1");
    cr_assert_str_eq(c->fields[1], "name=S:y");
}

Test(parse_regex, field_mode_matches_a_field_and_merges)
{
    static const char *const lines[] = {"{\"msg\":\"took 15ms\",\"ms\":0}", NULL};
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, NULL);
    t_connect_port(p, src, NULL, json);
    struct t_capture *c = t_run_after(p, json, &sl_stage_parse_regex,
                                      "field: msg\npatterns: 'took (?<ms:int>\\d+)ms'", NULL);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0], "msg=S:took 15ms ms=I:15");
    cr_assert_str_eq(c->json[0], "{\"msg\":\"took 15ms\",\"ms\":15}");
}

Test(parse_regex, workers_match_on_their_own_match_blocks)
{
    enum { N = 6000 };
    static char text[N][48];
    static const char *lines[N + 1];
    for (int i = 0; i < N; i++) {
        snprintf(text[i], sizeof text[i], "id=%d user=u%d", i, i % 13);
        lines[i] = text[i];
    }
    struct t_capture *c =
        t_through(p, &sl_stage_parse_regex,
                  "workers: 3\npatterns: '^id=(?<id:int>\\d+) user=(?<user>\\w+)$'", lines, NULL);
    cr_assert_eq(c->n, N);
    for (int i = 0; i < N; i++) {
        char want[64];
        snprintf(want, sizeof want, "id=I:%d user=S:u%d", i, i % 13);
        cr_assert_str_eq(c->fields[i], want);
    }
}

static void expect_config_error(const char *yaml, const char *msg, int line, int col)
{
    struct sl_error err = {0};
    struct sl_config *cfg = sl_config_parse(yaml, strlen(yaml), "t.yaml", &err);
    cr_assert_not_null(cfg);
    cr_assert_null(sl_pipeline_add(p, "re", &sl_stage_parse_regex, cfg, &err));
    sl_config_free(cfg);
    cr_assert_eq(err.code, SL_ECONFIG);
    cr_assert_str_eq(err.msg, msg);
    cr_assert_eq(err.line, line, "line %d", err.line);
    cr_assert_eq(err.col, col, "col %d", err.col);
    cr_assert_str_eq(err.stage, "re");
}

Test(parse_regex, config_errors_point_at_the_pattern)
{
    expect_config_error("patterns:\n  - 'a'\n  - '(?<x>b'\n",
                        "bad pattern: missing closing parenthesis (near byte 6 of '(?<x>b')", 3, 5);
    expect_config_error("patterns: '(?<x:intt>b)'",
                        "unknown type 'intt' for group 'x' (expected int, float, bool, auto or "
                        "string)",
                        1, 11);
    expect_config_error("patterns: '(?<x>b)'\ntypes: {y: int}",
                        "types: no pattern has a group named 'y'", 2, 9);
    expect_config_error("patterns: '(?<x>b)'\ntypes: {x: long}",
                        "unknown type 'long' for group 'x' (expected int, float, bool, auto or "
                        "string)",
                        2, 12);
}

Test(parse_regex, a_class_or_escape_is_not_a_typed_group)
{
    static const char *const lines[] = {"(?<a:int>", "<int>?(", "x]:(?<b:int>", NULL};
    struct t_capture *c = t_through(p, &sl_stage_parse_regex,
                                    "patterns:\n  - '^(?<all>\\(\\?<a:int>)$'\n"
                                    "  - '^(?<cls>[(?<a:int>]+)$'\n"
                                    "  - '^(?<posix>[[:alpha:]]+[](?<b:int>:]+)$'\n",
                                    lines, NULL);
    cr_assert_eq(c->n, 3);
    cr_assert_str_eq(c->fields[0], "all=S:(?<a:int>");
    cr_assert_str_eq(c->fields[1], "cls=S:<int>?(");
    cr_assert_str_eq(c->fields[2], "posix=S:x]:(?<b:int>");
}

/* ---- the field limit (issue 1) ------------------------------------------------------- */

Test(parse_regex, field_mode_past_the_field_limit_dead_letters_the_event_unchanged)
{
    /* Indexed by parse_json: 65534 fields, one of them "row"; its two groups make 65536. */
    char *over = t_json_members(65534, "\"row\":\"1,2\"", 1);
    char *fits = t_json_members(65533, "\"row\":\"5,6\"", 1);
    const char *lines[] = {"{\"row\":\"3,4\"}", over, fits, "{\"row\":\"7,8\"}", NULL};
    struct sl_stage *dl;
    struct t_capture *c = t_run_dead_letter_after_json(
        p, &sl_stage_parse_regex,
        "patterns: ['^(?<x:int>\\d),(?<y>\\d)$']\nfield: row\non_error: dead_letter", lines, &dl);
    struct t_capture *d = sl_stage_state(dl);
    cr_assert_eq(c->n, 3);
    cr_assert_str_eq(c->fields[0], "row=S:3,4 x=I:3 y=S:4");
    cr_assert(t_ends_with(c->fields[1], " k65532=I:2 x=I:5 y=S:6"));
    cr_assert_str_eq(c->fields[2], "row=S:7,8 x=I:7 y=S:8");
    cr_assert_eq(d->n, 1);
    cr_assert(t_ends_with(d->fields[0], " k65533=I:3 error=S:more than 65535 fields"),
              "merged nothing before it was refused");
    free(over);
    free(fits);
}
