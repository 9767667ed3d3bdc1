/* parse_logfmt and parse_kv: pairs, quoting, escapes, typing, separators, errors. */
#include <criterion/criterion.h>
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

TestSuite(parse_kv, .init = setup, .fini = teardown, .timeout = 30);

Test(parse_kv, logfmt_pairs_quotes_flags_and_types)
{
    static const char *const lines[] = {
        "level=info msg=\"request done\" status=200 took=1.5 cached ok=true user=007 neg=-3",
        "  a=1\tb=  c=\"x \\\"y\\\" \\\\ \\n\" d=\"\"  ", NULL};
    struct sl_stage *st;
    struct t_capture *c = t_through(p, &sl_stage_parse_logfmt, NULL, lines, &st);
    cr_assert_eq(c->n, 2);
    cr_assert_str_eq(c->fields[0], "level=S:info msg=S:request done status=I:200 took=F:1.5 "
                                   "cached=B:true ok=B:true user=S:007 neg=I:-3");
    cr_assert_str_eq(c->json[0], "{\"level\":\"info\",\"msg\":\"request done\",\"status\":200,"
                                 "\"took\":1.5,\"cached\":true,\"ok\":true,\"user\":\"007\","
                                 "\"neg\":-3}");
    cr_assert(c->in_payload[0], "unquoted and plain quoted values are spans of the line");
    cr_assert_str_eq(c->fields[1], "a=I:1 b=S: c=S:x \"y\" \\ \n d=S:");
}

Test(parse_kv, logfmt_without_type_inference_keeps_strings)
{
    static const char *const lines[] = {"n=1 f=false", NULL};
    struct t_capture *c = t_through(p, &sl_stage_parse_logfmt, "infer_types: false", lines, NULL);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0], "n=S:1 f=S:false");
}

Test(parse_kv, logfmt_errors_are_rejected_with_their_position)
{
    static const char *const lines[] = {"a=\"open", "=x", "a=\"q\"b", "", "   ", "ok=1", NULL};
    struct sl_stage *dl;
    struct t_capture *c =
        t_run_dead_letter(p, &sl_stage_parse_logfmt, "on_error: dead_letter", lines, &dl);
    struct t_capture *d = sl_stage_state(dl);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0], "ok=I:1");
    cr_assert_eq(d->n, 5);
    cr_assert_str_eq(d->fields[0],
                     "message=S:a=\"open error=S:unterminated quoted value at byte 2");
    cr_assert_str_eq(d->fields[1], "message=S:=x error=S:empty key at byte 0");
    cr_assert_str_eq(
        d->fields[2],
        "message=S:a=\"q\"b error=S:expected a separator after a quoted value at byte 5");
    cr_assert_str_eq(d->fields[3], "message=S: error=S:no key=value pairs at byte 0");
    cr_assert_str_eq(d->fields[4], "message=S:    error=S:no key=value pairs at byte 0");
}

Test(parse_kv, custom_separators_and_trimming)
{
    static const char *const lines[] = {"user: bob ; id: 7;; note: \"a; b\" ; expr: x:y",
                                        "a=1&b=two&c=", NULL};
    struct t_capture *c =
        t_through(p, &sl_stage_parse_kv, "field_separator: ';'\nkv_separator: ':'", lines, NULL);
    cr_assert_eq(c->n, 1, "the second line has no ':' pairs");
    cr_assert_str_eq(c->fields[0], "user=S:bob id=I:7 note=S:a; b expr=S:x:y");
}

Test(parse_kv, ampersand_pairs)
{
    static const char *const lines[] = {"a=1&b=two&c=", NULL};
    struct t_capture *c = t_through(p, &sl_stage_parse_kv, "field_separator: '&'", lines, NULL);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0], "a=I:1 b=S:two c=S:");
}

Test(parse_kv, multi_byte_separators)
{
    static const char *const lines[] = {"x => 1 || y => two words || z =>", NULL};
    struct t_capture *c = t_through(p, &sl_stage_parse_kv,
                                    "field_separator: ' || '\nkv_separator: '=>'", lines, NULL);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0], "x=I:1 y=S:two words z=S:");
}

Test(parse_kv, bare_keys_are_errors_unless_allowed)
{
    static const char *const lines[] = {"a=1 flag", NULL};
    struct sl_stage *st;
    struct t_capture *c = t_through(p, &sl_stage_parse_kv, NULL, lines, &st);
    cr_assert_eq(c->n, 0);
    cr_assert_eq(t_stats(st).errors, 1);
    sl_pipeline_free(p);
    p = t_pipeline();
    c = t_through(p, &sl_stage_parse_kv, "bare_keys: true", lines, NULL);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0], "a=I:1 flag=B:true");
}

Test(parse_kv, field_mode_merges_and_a_bad_field_changes_nothing)
{
    static const char *const lines[] = {"{\"kv\":\"a=1 b=x\",\"a\":0}", "{\"kv\":\"a=1 =\"}", NULL};
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, NULL);
    struct sl_stage *kv =
        t_stage(p, "kv", &sl_stage_parse_logfmt, "field: kv\non_error: dead_letter");
    struct sl_stage *out = t_stage(p, "out", &t_capture, NULL);
    struct sl_stage *dl = t_stage(p, "dead", &t_capture, NULL);
    t_connect_port(p, src, NULL, json);
    t_connect_port(p, json, NULL, kv);
    t_connect_port(p, kv, NULL, out);
    t_connect_port(p, kv, "dead_letter", dl);
    t_run_ok(p);
    struct t_capture *c = sl_stage_state(out), *d = sl_stage_state(dl);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0], "kv=S:a=1 b=x a=I:1 b=S:x");
    cr_assert_eq(d->n, 1);
    cr_assert_str_eq(d->fields[0], "kv=S:a=1 = error=S:empty key at byte 4");
}

Test(parse_kv, separator_config_errors)
{
    struct sl_error err = {0};
    struct sl_config *cfg = sl_config_parse("kv_separator: ' '", 17, "t.yaml", &err);
    cr_assert_null(sl_pipeline_add(p, "kv", &sl_stage_parse_kv, cfg, &err));
    sl_config_free(cfg);
    cr_assert_str_eq(err.msg, "kv_separator must hold a character other than a blank");
    cr_assert_eq(err.line, 1);
    cr_assert_eq(err.col, 15);
    cfg = sl_config_parse("field_separator: '='", 20, "t.yaml", &err);
    cr_assert_null(sl_pipeline_add(p, "kv", &sl_stage_parse_kv, cfg, &err));
    sl_config_free(cfg);
    cr_assert_str_eq(err.msg, "field_separator must be non-empty and differ from kv_separator");
}

/* ---- the field limit (issue 1) ------------------------------------------------------- */

/* `poison` and `full` (65536 and 65535 pairs) between two good lines through `type`. */
static void limit_is_per_event(const struct sl_stage_type *type, const char *yaml, char *poison,
                               char *full)
{
    const char *lines[] = {"a=1", poison, full, "b=2", NULL};
    struct sl_stage *dl = NULL;
    struct t_capture *c = t_run_dead_letter(p, type, yaml, lines, &dl);
    struct t_capture *d = sl_stage_state(dl);
    cr_assert_eq(c->n, 3);
    cr_assert_str_eq(c->fields[0], "a=I:1");
    cr_assert(t_ends_with(c->fields[1], " k65534=I:4"), "65535 pairs are the limit, not past it");
    cr_assert_str_eq(c->fields[2], "b=I:2");
    cr_assert_eq(d->n, 1);
    cr_assert_str_eq(d->payloads[0], poison);
    cr_assert(t_ends_with(d->json[0], "\",\"error\":\"more than 65535 fields\"}"));
    cr_assert_eq(t_stats(sl_pipeline_find(p, "stage")).errors, 1);
    free(poison);
    free(full);
}

Test(parse_kv, a_logfmt_line_with_65536_pairs_is_dead_lettered_and_the_run_goes_on)
{
    limit_is_per_event(&sl_stage_parse_logfmt, "on_error: dead_letter", t_kv_pairs(65536, "=", " "),
                       t_kv_pairs(65535, "=", " "));
}

Test(parse_kv, a_kv_line_with_65536_pairs_is_dead_lettered_and_the_run_goes_on)
{
    limit_is_per_event(&sl_stage_parse_kv, "field_separator: '&'\non_error: dead_letter",
                       t_kv_pairs(65536, "=", "&"), t_kv_pairs(65535, "=", "&"));
}

Test(parse_kv, field_mode_past_the_field_limit_dead_letters_the_event_unchanged)
{
    /* 65534 fields, one of them "kv" holding two pairs: 65536 once merged. */
    char *line = t_json_members(65534, "\"kv\":\"x=1 y=2\"", 1);
    const char *lines[] = {line, NULL};
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, NULL);
    struct sl_stage *kv =
        t_stage(p, "kv", &sl_stage_parse_logfmt, "field: kv\non_error: dead_letter");
    struct sl_stage *out = t_stage(p, "out", &t_capture, NULL);
    struct sl_stage *dl = t_stage(p, "dead", &t_capture, NULL);
    t_connect_port(p, src, NULL, json);
    t_connect_port(p, json, NULL, kv);
    t_connect_port(p, kv, NULL, out);
    t_connect_port(p, kv, "dead_letter", dl);
    t_run_ok(p);
    struct t_capture *c = sl_stage_state(out), *d = sl_stage_state(dl);
    cr_assert_eq(c->n, 0);
    cr_assert_eq(d->n, 1);
    cr_assert(t_ends_with(d->fields[0], " k65533=I:3 error=S:more than 65535 fields"),
              "merged nothing before it was refused");
    free(line);
}

Test(parse_kv, a_repeated_key_is_its_last_value)
{
    static const char *const lines[] = {"a=1 b=2 a=3", NULL};
    struct t_capture *c = t_through(p, &sl_stage_parse_logfmt, NULL, lines, NULL);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0], "b=I:2 a=I:3");
    cr_assert_str_eq(c->json[0], "{\"b\":2,\"a\":3}");
}
