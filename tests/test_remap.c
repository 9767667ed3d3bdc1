/* remap: operations in config order, values kept in place, serialize, config errors. */
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

TestSuite(remap, .init = setup, .fini = teardown, .timeout = 30);

static struct t_capture *run(const char *yaml, const char *const *lines)
{
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, NULL);
    t_connect_port(p, src, NULL, json);
    return t_run_after(p, json, &sl_stage_remap, yaml, NULL);
}

Test(remap, the_w2_reshape)
{
    static const char *const lines[] = {
        "{\"ts\":\"2024-01-01T00:00:00Z\",\"level\":\"warn\",\"msg\":\"caf\\u00e9 \\\"x\\\"\","
        "\"user_id\":42,\"latency_ms\":1.50,\"http\":{\"status\":503}}",
        NULL};
    struct t_capture *c =
        run("set: {env: '\"prod\"'}\nrename: {msg: message}\nremove: [user_id]", lines);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->json[0], "{\"ts\":\"2024-01-01T00:00:00Z\",\"level\":\"warn\","
                                 "\"message\":\"caf\\u00e9 \\\"x\\\"\",\"latency_ms\":1.50,"
                                 "\"http\":{\"status\":503},\"env\":\"prod\"}");
    cr_assert_str_eq(c->payloads[0], lines[0], "without serialize the payload is unchanged");
}

Test(remap, operations_run_in_the_order_written)
{
    static const char *const lines[] = {"{\"a\":1,\"b\":2}", NULL};
    struct t_capture *c = run("rename: {a: x}\nset: {y: 'x + b', a: '\"new\"'}\ncopy: {y: z}\n"
                              "remove: [b]",
                              lines);
    cr_assert_str_eq(c->fields[0], "x=I:1 y=I:3 a=S:new z=I:3");
    sl_pipeline_free(p);
    p = t_pipeline();
    c = run("set: {y: 'x + b'}\nrename: {a: x}", lines);
    cr_assert_str_eq(c->fields[0], "x=I:1 b=I:2 y=N:", "x did not exist yet when y was set");
}

Test(remap, copy_from_a_path_and_keep_only)
{
    static const char *const lines[] = {
        "{\"http\":{\"status\":404,\"path\":\"/x\"},\"level\":\"info\",\"junk\":[1,2]}", NULL};
    struct t_capture *c =
        run("copy: {http.status: status, http.nope: gone}\nkeep_only: [level, status]", lines);
    cr_assert_str_eq(c->fields[0], "level=S:info status=I:404");
    cr_assert_str_eq(c->json[0], "{\"level\":\"info\",\"status\":404}");
}

Test(remap, set_with_functions_and_missing_renames)
{
    static const char *const lines[] = {"{\"svc\":\"Api\",\"ms\":250}", NULL};
    struct t_capture *c =
        run("set:\n  key: concat(lower(svc), \"-\", to_string(ms))\n  s: ms / 1000\n"
            "rename: {nope: other}\nremove: [nothing]",
            lines);
    cr_assert_str_eq(c->fields[0], "svc=S:Api ms=I:250 key=S:api-250 s=F:0.25");
}

Test(remap, serialize_rewrites_the_payload)
{
    static const char *const lines[] = {"{\"a\":1,\"b\":\"x\\ty\"}", "{\"c\":3}", NULL};
    struct t_capture *c = run("remove: [a]\nserialize: true", lines);
    cr_assert_eq(c->n, 2);
    cr_assert_str_eq(c->payloads[0], "{\"b\":\"x\\ty\"}");
    cr_assert_str_eq(c->json[0], "{\"b\":\"x\\ty\"}");
    cr_assert_str_eq(c->payloads[1], "{\"c\":3}", "an event nothing changed keeps its bytes");
}

static void expect_error(const char *yaml, const char *msg, int line, int col)
{
    struct sl_error err = {0};
    struct sl_config *cfg = sl_config_parse(yaml, strlen(yaml), "m.yaml", &err);
    cr_assert_null(sl_pipeline_add(p, "m", &sl_stage_remap, cfg, &err));
    sl_config_free(cfg);
    cr_assert_str_eq(err.msg, msg);
    cr_assert_eq(err.line, line, "line %d", err.line);
    cr_assert_eq(err.col, col, "col %d", err.col);
}

Test(remap, config_errors)
{
    expect_error("set:\n  env: 'prod =='",
                 "set 'env': expected an operand after '==', found end of expression", 2, 16);
    expect_error("rename: {a: [x]}", "rename 'a': expected a field name", 1, 13);
    expect_error("inputs: [x]",
                 "remap needs at least one of set, rename, remove, copy, keep_only or serialize", 1,
                 1);
}

Test(remap, workers_build_strings_on_their_own_batches)
{
    enum { N = 3000 };
    static char text[N][64];
    static const char *lines[N + 1];
    for (int i = 0; i < N; i++) {
        snprintf(text[i], sizeof text[i], "{\"i\":%d,\"svc\":\"S%d\"}", i, i % 7);
        lines[i] = text[i];
    }
    struct t_capture *c = run("workers: 2\nset: {key: 'concat(lower(svc), \"-\", to_string(i))'}\n"
                              "serialize: true",
                              lines);
    cr_assert_eq(c->n, N);
    for (int i = 0; i < N; i++) {
        char want[96];
        snprintf(want, sizeof want, "{\"i\":%d,\"svc\":\"S%d\",\"key\":\"s%d-%d\"}", i, i % 7,
                 i % 7, i);
        cr_assert_str_eq(c->payloads[i], want);
    }
}

/* ---- the field limit (issue 1) ------------------------------------------------------- */

Test(remap, a_set_past_the_field_limit_is_dead_lettered_and_the_run_goes_on)
{
    char *over = t_json_members(65535, NULL, 0), *fits = t_json_members(65534, NULL, 0);
    const char *lines[] = {"{\"a\":1}", over, fits, "{\"a\":2}", NULL};
    struct sl_stage *dl;
    struct t_capture *c = t_run_dead_letter_after_json(
        p, &sl_stage_remap, "set: {added: 'k1 + 1'}\non_error: dead_letter", lines, &dl);
    struct t_capture *d = sl_stage_state(dl);
    cr_assert_eq(c->n, 3);
    cr_assert_str_eq(c->fields[0], "a=I:1 added=N:");
    cr_assert(t_ends_with(c->fields[1], " k65533=I:3 added=I:2"));
    cr_assert_str_eq(c->fields[2], "a=I:2 added=N:");
    cr_assert_eq(d->n, 1);
    cr_assert(t_ends_with(d->fields[0], " k65534=I:4 error=S:set 'added': more than 65535 fields"));
    cr_assert_eq(t_stats(sl_pipeline_find(p, "stage")).errors, 1);
    free(over);
    free(fits);
}

Test(remap, a_copy_past_the_field_limit_is_dropped_and_counted_by_default)
{
    char *over = t_json_members(65535, NULL, 0);
    const char *lines[] = {"{\"k1\":1}", over, "{\"k1\":2}", NULL};
    struct t_capture *c = run("copy: {k1: copied}", lines);
    cr_assert_eq(c->n, 2);
    cr_assert_str_eq(c->fields[0], "k1=I:1 copied=I:1");
    cr_assert_str_eq(c->fields[1], "k1=I:2 copied=I:2");
    struct sl_stage_stats s = t_stats(sl_pipeline_find(p, "stage"));
    cr_assert_eq(s.errors, 1);
    cr_assert_eq(s.dropped, 1);
    free(over);
}

/* ---- repeated names (issue 14) -------------------------------------------------------- */

Test(remap, remove_and_rename_take_every_field_of_a_repeated_name)
{
    static const char *const lines[] = {"{\"a\":1,\"b\":2,\"a\":3}", NULL};
    struct t_capture *c = run("remove: [a]", lines);
    cr_assert_str_eq(c->json[0], "{\"b\":2}");
}

Test(remap, rename_of_a_repeated_name_moves_its_last_value)
{
    static const char *const lines[] = {"{\"a\":1,\"x\":0,\"a\":3}", NULL};
    struct t_capture *c = run("rename: {a: x}", lines);
    cr_assert_str_eq(c->json[0], "{\"x\":3}");
}
