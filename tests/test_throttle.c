/* throttle: per-key budgets per window, event-time windows, dead letters, eviction. */
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

TestSuite(throttle, .init = setup, .fini = teardown, .timeout = 30);

enum { N = 600 };
static char text[N][96];
static const char *lines[N + 1];

/* {"i":..,"svc":"a|b|c","timestamp":...}: svc i % 3, one event per 10 ms of event time. */
static void make_lines(void)
{
    static const char *const svc[] = {"a", "b", "c"};
    for (int i = 0; i < N; i++) {
        snprintf(text[i], sizeof text[i], "{\"i\":%d,\"svc\":\"%s\",\"timestamp\":%d.%02d}", i,
                 svc[i % 3], 1700000000 + i / 100, i % 100);
        lines[i] = text[i];
    }
    lines[N] = NULL;
}

/* lines -> parse_json -> parse_timestamp (unix) -> throttle(yaml) -> out, dead */
static struct sl_stage *run(const char *yaml)
{
    make_lines();
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, NULL);
    struct sl_stage *ts = t_stage(p, "ts", &sl_stage_parse_timestamp, "formats: unix");
    struct sl_stage *th = t_stage(p, "th", &sl_stage_throttle, yaml);
    struct sl_stage *out = t_stage(p, "out", &t_capture, NULL);
    t_connect_port(p, src, NULL, json);
    t_connect_port(p, json, NULL, ts);
    t_connect_port(p, ts, NULL, th);
    t_connect_port(p, th, NULL, out);
    if (strstr(yaml, "dead_letter")) {
        struct sl_stage *dead = t_stage(p, "dead", &t_capture, NULL);
        t_connect_port(p, th, "dead_letter", dead);
    }
    t_run_ok(p);
    return th;
}

static int number(const char *payload)
{
    int i = -1;
    sscanf(payload, "{\"i\":%d", &i);
    return i;
}

Test(throttle, one_budget_without_a_key)
{
    struct sl_stage *th = run("rate: 25\nwindow: 1h\nclock: event");
    struct t_capture *c = sl_stage_state(sl_pipeline_find(p, "out"));
    cr_assert_eq(c->n, 25);
    for (int k = 0; k < 25; k++) cr_assert_eq(number(c->payloads[k]), k);
    cr_assert_eq(t_stats(th).dropped, N - 25);
    cr_assert_eq(t_stats(th).errors, 0);
}

Test(throttle, per_key_budgets)
{
    run("rate: 5\nwindow: 1h\nkey: svc\nclock: event");
    struct t_capture *c = sl_stage_state(sl_pipeline_find(p, "out"));
    cr_assert_eq(c->n, 15);
    for (int k = 0; k < 15; k++) cr_assert_eq(number(c->payloads[k]), k, "the first five of each");
}

Test(throttle, event_time_windows_start_afresh)
{
    /* Each second of event time holds 100 events, 33 or 34 per service: with 10 per
     * second and service, 6 seconds x 3 services x 10 pass. */
    run("rate: 10\nwindow: 1s\nkey: [svc]\nclock: event\non_excess: dead_letter");
    struct t_capture *c = sl_stage_state(sl_pipeline_find(p, "out"));
    struct t_capture *d = sl_stage_state(sl_pipeline_find(p, "dead"));
    cr_assert_eq(c->n, 180);
    cr_assert_eq(d->n, N - 180);
    for (int k = 0; k < 30; k++) cr_assert_eq(number(c->payloads[k]), k);
    cr_assert_eq(number(c->payloads[30]), 100, "second 2 starts at event 100");
    cr_assert(strstr(d->fields[0], " error=S:throttled: over 10 events in 1000 ms"), "%s",
              d->fields[0]);
}

Test(throttle, a_forgotten_key_starts_a_new_window)
{
    /* Two keys remembered, three in turn: each event evicts the key it needs next. */
    run("rate: 1\nwindow: 1h\nkey: svc\nmax_keys: 2\nclock: event");
    struct t_capture *c = sl_stage_state(sl_pipeline_find(p, "out"));
    cr_assert_eq(c->n, N);
}

Test(throttle, config_errors)
{
    struct sl_error err = {0};
    struct sl_config *cfg = sl_config_parse("rate: 0", 7, "t.yaml", &err);
    cr_assert_null(sl_pipeline_add(p, "th", &sl_stage_throttle, cfg, &err));
    sl_config_free(cfg);
    cr_assert_str_eq(err.msg, "option 'rate' must be 1 or more");
    cr_assert_eq(err.col, 7);
}
