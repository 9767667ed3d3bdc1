/* parse_csv: columns, quoting, doubled quotes, delimiters, strictness, errors. */
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

TestSuite(parse_csv, .init = setup, .fini = teardown, .timeout = 30);

Test(parse_csv, columns_quotes_and_types)
{
    static const char *const lines[] = {"1,\"a, \"\"b\"\"\",,2.5,true,007\r",
                                        "\"\",\"x\ny\",\"3\",-0,false,x", NULL};
    struct t_capture *c =
        t_through(p, &sl_stage_parse_csv, "columns: [n, s, e, f, b, z]", lines, NULL);
    cr_assert_eq(c->n, 2);
    cr_assert_str_eq(c->fields[0], "n=I:1 s=S:a, \"b\" e=S: f=F:2.5 b=B:true z=S:007");
    cr_assert_str_eq(c->fields[1], "n=S: s=S:x\ny e=S:3 f=I:-0 b=B:false z=S:x");
    cr_assert_str_eq(
        c->json[0],
        "{\"n\":1,\"s\":\"a, \\\"b\\\"\",\"e\":\"\",\"f\":2.5,\"b\":true,\"z\":\"007\"}");
}

Test(parse_csv, tabs_and_another_quote_without_types)
{
    static const char *const lines[] = {"1\t'a\tb'\t'it''s'", NULL};
    struct t_capture *c = t_through(
        p, &sl_stage_parse_csv,
        "columns: [a, b, c]\ndelimiter: \"\\t\"\nquote: \"'\"\ninfer_types: false", lines, NULL);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0], "a=S:1 b=S:a\tb c=S:it's");
}

Test(parse_csv, wrong_counts_and_bad_quotes_are_errors)
{
    static const char *const lines[] = {"1,2",        "1,2,3,4", "\"open,2,3",
                                        "\"a\"x,2,3", "1,2,3",   NULL};
    struct sl_stage *dl;
    struct t_capture *c = t_run_dead_letter(
        p, &sl_stage_parse_csv, "columns: [a, b, c]\non_error: dead_letter", lines, &dl);
    struct t_capture *d = sl_stage_state(dl);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0], "a=I:1 b=I:2 c=I:3");
    cr_assert_eq(d->n, 4);
    cr_assert_str_eq(d->fields[0], "message=S:1,2 error=S:fewer values than columns at byte 3");
    cr_assert_str_eq(d->fields[1], "message=S:1,2,3,4 error=S:more values than columns at byte 6");
    cr_assert_str_eq(d->fields[2],
                     "message=S:\"open,2,3 error=S:unterminated quoted value at byte 0");
    cr_assert_str_eq(
        d->fields[3],
        "message=S:\"a\"x,2,3 error=S:expected a delimiter after a quoted value at byte 0");
}

Test(parse_csv, lenient_records_leave_missing_columns_out)
{
    static const char *const lines[] = {"1", "1,2,3,4", NULL};
    struct t_capture *c =
        t_through(p, &sl_stage_parse_csv, "columns: [a, b, c]\nstrict: false", lines, NULL);
    cr_assert_eq(c->n, 2);
    cr_assert_str_eq(c->fields[0], "a=I:1");
    cr_assert_str_eq(c->fields[1], "a=I:1 b=I:2 c=I:3");
}

Test(parse_csv, config_errors)
{
    struct sl_error err = {0};
    const char *y = "columns: [a]\ndelimiter: ';;'";
    struct sl_config *cfg = sl_config_parse(y, strlen(y), "t.yaml", &err);
    cr_assert_null(sl_pipeline_add(p, "csv", &sl_stage_parse_csv, cfg, &err));
    sl_config_free(cfg);
    cr_assert_str_eq(err.msg, "delimiter must be one character (a byte)");
    cr_assert_eq(err.line, 2);
    y = "delimiter: ';'";
    cfg = sl_config_parse(y, strlen(y), "t.yaml", &err);
    cr_assert_null(sl_pipeline_add(p, "csv", &sl_stage_parse_csv, cfg, &err));
    sl_config_free(cfg);
    cr_assert_eq(err.code, SL_ECONFIG);
    cr_assert_str_eq(err.msg, "missing option 'columns' (type 'parse_csv' needs it: field names of "
                              "the columns, in order)");
}

/* ---- the field limit (issue 1) ------------------------------------------------------- */

Test(parse_csv, field_mode_past_the_field_limit_dead_letters_the_event_unchanged)
{
    /* Indexed by parse_json: 65534 fields, one of them "row"; its two columns make 65536. */
    char *over = t_json_members(65534, "\"row\":\"1,2\"", 1);
    char *fits = t_json_members(65533, "\"row\":\"5,6\"", 1);
    const char *lines[] = {"{\"row\":\"3,4\"}", over, fits, "{\"row\":\"7,8\"}", NULL};
    struct sl_stage *dl;
    struct t_capture *c = t_run_dead_letter_after_json(
        p, &sl_stage_parse_csv, "columns: [x, y]\nfield: row\non_error: dead_letter", lines, &dl);
    struct t_capture *d = sl_stage_state(dl);
    cr_assert_eq(c->n, 3);
    cr_assert_str_eq(c->fields[0], "row=S:3,4 x=I:3 y=I:4");
    cr_assert(t_ends_with(c->fields[1], " k65532=I:2 x=I:5 y=I:6"));
    cr_assert_str_eq(c->fields[2], "row=S:7,8 x=I:7 y=I:8");
    cr_assert_eq(d->n, 1);
    cr_assert(t_ends_with(d->fields[0], " k65533=I:3 error=S:more than 65535 fields"),
              "merged nothing before it was refused");
    free(over);
    free(fits);
}
