/* route: named outputs, several matches, first_match, _unmatched, config errors. */
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

TestSuite(route, .init = setup, .fini = teardown, .timeout = 30);

static const char *const lines[] = {
    "{\"level\":\"error\",\"ms\":900}", "{\"level\":\"info\",\"ms\":5}",
    "{\"level\":\"error\",\"ms\":1}", "{\"level\":\"warn\",\"ms\":800}", NULL};

/* lines -> parse_json -> route(yaml) -> one capture per output. */
static void run(const char *yaml, struct t_capture **errors, struct t_capture **slow,
                struct t_capture **rest)
{
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, NULL);
    struct sl_stage *r = t_stage(p, "r", &sl_stage_route, yaml);
    struct sl_stage *e = t_stage(p, "e", &t_capture, NULL);
    struct sl_stage *s = t_stage(p, "s", &t_capture, NULL);
    struct sl_stage *u = t_stage(p, "u", &t_capture, NULL);
    t_connect_port(p, src, NULL, json);
    t_connect_port(p, json, NULL, r);
    t_connect_port(p, r, "errors", e);
    t_connect_port(p, r, "slow", s);
    t_connect_port(p, r, "_unmatched", u);
    t_run_ok(p);
    *errors = sl_stage_state(e);
    *slow = sl_stage_state(s);
    *rest = sl_stage_state(u);
}

Test(route, each_event_goes_to_every_matching_output)
{
    struct t_capture *e, *s, *u;
    run("routes:\n  errors: 'level == \"error\"'\n  slow: ms > 500", &e, &s, &u);
    cr_assert_eq(e->n, 2);
    cr_assert_str_eq(e->payloads[0], lines[0]);
    cr_assert_str_eq(e->payloads[1], lines[2]);
    cr_assert_eq(s->n, 2);
    cr_assert_str_eq(s->payloads[0], lines[0]);
    cr_assert_str_eq(s->payloads[1], lines[3]);
    cr_assert_eq(u->n, 1);
    cr_assert_str_eq(u->payloads[0], lines[1]);
    cr_assert_str_eq(e->json[0], lines[0], "routed events are untouched");
}

Test(route, first_match_stops_at_the_first_route)
{
    struct t_capture *e, *s, *u;
    run("first_match: true\nroutes:\n  errors: 'level == \"error\"'\n  slow: ms > 500", &e, &s, &u);
    cr_assert_eq(e->n, 2);
    cr_assert_eq(s->n, 1);
    cr_assert_str_eq(s->payloads[0], lines[3]);
    cr_assert_eq(u->n, 1);
}

static void expect_error(const char *yaml, const char *msg, int line, int col)
{
    struct sl_error err = {0};
    struct sl_config *cfg = sl_config_parse(yaml, strlen(yaml), "r.yaml", &err);
    cr_assert_null(sl_pipeline_add(p, "r", &sl_stage_route, cfg, &err));
    sl_config_free(cfg);
    cr_assert_str_eq(err.msg, msg);
    cr_assert_eq(err.line, line, "line %d", err.line);
    cr_assert_eq(err.col, col, "col %d", err.col);
}

Test(route, config_errors)
{
    expect_error("routes:\n  _unmatched: 'true'",
                 "route name '_unmatched' must be non-empty, without '.', and not '_unmatched'", 2,
                 3);
    expect_error("routes:\n  a: 'x =='",
                 "route 'a': expected an operand after '==', found end of expression", 2, 11);
    expect_error("routes: {}", "routes: expected at least one `name: condition`", 1, 9);
}

Test(route, workers_keep_each_output_in_order)
{
    enum { N = 3000 };
    static char text[N][48];
    static const char *many[N + 1];
    for (int i = 0; i < N; i++) {
        snprintf(text[i], sizeof text[i], "{\"i\":%d,\"level\":\"%s\",\"ms\":%d}", i,
                 i % 3 ? "info" : "error", i % 1000);
        many[i] = text[i];
    }
    struct sl_stage *src = t_add_lines(p, many);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, NULL);
    struct sl_stage *r = t_stage(p, "r", &sl_stage_route,
                                 "workers: 2\nroutes:\n  errors: 'level == \"error\"'\n"
                                 "  slow: ms > 500");
    struct sl_stage *e = t_stage(p, "e", &t_capture, NULL);
    struct sl_stage *s = t_stage(p, "s", &t_capture, NULL);
    struct sl_stage *u = t_stage(p, "u", &t_capture, NULL);
    t_connect_port(p, src, NULL, json);
    t_connect_port(p, json, NULL, r);
    t_connect_port(p, r, "errors", e);
    t_connect_port(p, r, "slow", s);
    t_connect_port(p, r, "_unmatched", u);
    t_run_ok(p);
    struct t_capture *ce = sl_stage_state(e), *cs = sl_stage_state(s), *cu = sl_stage_state(u);
    cr_assert_eq(ce->n, N / 3);
    for (size_t k = 0; k < ce->n; k++) cr_assert_str_eq(ce->payloads[k], text[3 * k]);
    size_t slow = 0, rest = 0;
    for (int i = 0; i < N; i++) {
        bool is_slow = i % 1000 > 500, is_err = i % 3 == 0;
        if (is_slow) cr_assert_str_eq(cs->payloads[slow++], text[i]);
        if (!is_slow && !is_err) cr_assert_str_eq(cu->payloads[rest++], text[i]);
    }
    cr_assert_eq(cs->n, slow);
    cr_assert_eq(cu->n, rest);
}
