/* filter: expressions over parsed events, untouched output bytes, workers, config errors
 * pointing into the file. */
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

TestSuite(filter, .init = setup, .fini = teardown, .timeout = 30);

static const char *const lines[] = {
    "{\"level\":\"info\",\"latency_ms\":12,\"http\":{\"status\":200},\"msg\":\"ok\"}",
    "{\"level\":\"error\",\"latency_ms\":750,\"http\":{\"status\":503},\"msg\":\"up\\\"stream\"}",
    "{\"level\":\"error\",\"latency_ms\":20,\"http\":{\"status\":500},\"msg\":\"db\"}",
    "{\"level\":\"err\\u006fr\",\"latency_ms\":900.5,\"msg\":\"esc\"}",
    "{\"level\":\"warn\",\"latency_ms\":\"900\",\"msg\":\"text number\"}",
    "not json at all",
    NULL};

static struct t_capture *run(const char *yaml, struct sl_stage **st)
{
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, NULL);
    t_connect_port(p, src, NULL, json);
    struct t_capture *c = t_run_after(p, json, &sl_stage_filter, yaml, NULL);
    if (st) *st = sl_pipeline_find(p, "stage");
    return c;
}

Test(filter, keeps_matching_events_with_their_original_bytes)
{
    struct sl_stage *st;
    struct t_capture *c = run("condition: 'level == \"error\"'", &st);
    cr_assert_eq(c->n, 3, "the escaped \"err\\u006fr\" equals \"error\" too");
    cr_assert_str_eq(c->json[0], lines[1]);
    cr_assert_str_eq(c->json[1], lines[2]);
    cr_assert_str_eq(c->json[2], lines[3]);
    struct sl_stage_stats s = t_stats(st);
    cr_assert_eq(s.events_in, 5);
    cr_assert_eq(s.events_out, 3);
}

Test(filter, numbers_paths_and_logic)
{
    struct t_capture *c =
        run("condition: 'level == \"error\" && latency_ms > 500 || http.status == 200'", NULL);
    cr_assert_eq(c->n, 3);
    cr_assert_str_eq(c->payloads[0], lines[0]);
    cr_assert_str_eq(c->payloads[1], lines[1]);
    cr_assert_str_eq(c->payloads[2], lines[3]);
}

Test(filter, strings_are_not_numbers_and_missing_fields_are_null)
{
    struct t_capture *c = run("condition: 'latency_ms > 500 || !exists(http)'", NULL);
    cr_assert_eq(c->n, 3, "\"900\" is a string: not > 500, but warn has no http");
    cr_assert_str_eq(c->payloads[0], lines[1]);
    cr_assert_str_eq(c->payloads[1], lines[3]);
    cr_assert_str_eq(c->payloads[2], lines[4]);
}

Test(filter, regex_and_string_operators)
{
    struct t_capture *c =
        run("condition: 'msg =~ /^up.str/ || msg starts_with \"text\" || msg in [\"db\"]'", NULL);
    cr_assert_eq(c->n, 3);
    cr_assert_str_eq(c->payloads[0], lines[1]);
    cr_assert_str_eq(c->payloads[1], lines[2]);
    cr_assert_str_eq(c->payloads[2], lines[4]);
}

Test(filter, workers_keep_order)
{
    enum { N = 4000 };
    static char text[N][64];
    static const char *many[N + 1];
    for (int i = 0; i < N; i++) {
        snprintf(text[i], sizeof text[i], "{\"i\":%d,\"level\":\"%s\"}", i,
                 i % 20 ? "info" : "error");
        many[i] = text[i];
    }
    struct sl_stage *src = t_add_lines(p, many);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, "workers: 2");
    t_connect_port(p, src, NULL, json);
    struct t_capture *c =
        t_run_after(p, json, &sl_stage_filter, "workers: 2\ncondition: level == \"error\"", NULL);
    cr_assert_eq(c->n, N / 20);
    for (size_t k = 0; k < c->n; k++) cr_assert_str_eq(c->payloads[k], text[20 * k]);
}

Test(filter, a_bad_condition_points_into_the_config)
{
    const char *y = "inputs: [x]\ncondition: 'level == \"error\" &&'\n";
    struct sl_error err = {0};
    struct sl_config *cfg = sl_config_parse(y, strlen(y), "f.yaml", &err);
    cr_assert_null(sl_pipeline_add(p, "f", &sl_stage_filter, cfg, &err));
    sl_config_free(cfg);
    cr_assert_eq(err.code, SL_ECONFIG);
    cr_assert_str_eq(err.file, "f.yaml");
    cr_assert_eq(err.line, 2);
    cr_assert_eq(err.col, 32, "col %d: at the end of the expression", err.col);
    cr_assert(strstr(err.msg, "condition"), "%s", err.msg);
}

Test(filter, a_repeated_name_compares_its_last_value)
{
    static const char *const dup[] = {"{\"a.b\":1,\"k\":\"x\",\"a.b\":2,\"k\":\"y\"}", NULL};
    struct sl_stage *src = t_add_lines(p, dup);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, NULL);
    t_connect_port(p, src, NULL, json);
    struct t_capture *c =
        t_run_after(p, json, &sl_stage_filter, "condition: '.\"a.b\" == 2 && k == \"y\"'", NULL);
    cr_assert_eq(c->n, 1, "a quoted name and a plain one both read the last member");
}
