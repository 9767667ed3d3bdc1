/* aggregate: metrics per group and window on the event clock (exact results), windows
 * closed by the watermark and at the end, late events, the processing clock's timer (a
 * paused source resumed by the sink: no sleeping), acknowledgement modes, config errors. */
#include <criterion/criterion.h>
#include <stdint.h>
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

TestSuite(aggregate, .init = setup, .fini = teardown, .timeout = 30);

/* lines -> parse_json -> parse_timestamp (unix, field t) -> aggregate(yaml) -> out */
static struct sl_stage *build(const char *yaml, const char *const *lines)
{
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, NULL);
    struct sl_stage *ts = t_stage(p, "ts", &sl_stage_parse_timestamp, "field: t\nformats: unix");
    struct sl_stage *agg = t_stage(p, "agg", &sl_stage_aggregate, yaml);
    struct sl_stage *out = t_stage(p, "out", &t_capture, NULL);
    t_connect_port(p, src, NULL, json);
    t_connect_port(p, json, NULL, ts);
    t_connect_port(p, ts, NULL, agg);
    t_connect_port(p, agg, NULL, out);
    return agg;
}

static const char *const lines[] = {
    "{\"t\":1700000000,\"level\":\"info\",\"ms\":10,\"user\":\"a\"}",
    "{\"t\":1700000010,\"level\":\"error\",\"ms\":300,\"user\":\"b\"}",
    "{\"t\":1700000020,\"level\":\"info\",\"ms\":20.5,\"user\":\"a\"}",
    "{\"t\":1700000030,\"level\":\"info\",\"ms\":5,\"user\":\"c\"}",
    "{\"t\":1700000050,\"level\":\"error\",\"ms\":100,\"user\":\"b\"}", /* closes 22:13 */
    "{\"t\":1700000035,\"level\":\"info\",\"ms\":1,\"user\":\"z\"}",    /* late: dropped */
    "{\"t\":1700000055,\"level\":\"info\",\"ms\":7,\"user\":\"\\u0061\"}",
    NULL};

#define METRICS                                                                                    \
    "metrics:\n  n: count\n  total: sum(ms)\n  lo: min(ms)\n  hi: max(ms)\n  mean: avg(ms)\n"      \
    "  users: distinct(user)\n"

Test(aggregate, event_time_windows_by_group)
{
    struct sl_stage *agg = build("window: 1m\nclock: event\ngroup_by: [level]\n" METRICS, lines);
    t_run_ok(p);
    struct t_capture *c = sl_stage_state(sl_pipeline_find(p, "out"));
    cr_assert_eq(c->n, 4);
    cr_assert_str_eq(c->payloads[0],
                     "{\"level\":\"info\",\"window_start\":\"2023-11-14T22:13:00Z\","
                     "\"window_end\":\"2023-11-14T22:14:00Z\",\"n\":3,\"total\":35.5,\"lo\":5.0,"
                     "\"hi\":20.5,\"mean\":11.833333333333334,\"users\":2}");
    cr_assert_str_eq(c->payloads[1],
                     "{\"level\":\"error\",\"window_start\":\"2023-11-14T22:13:00Z\","
                     "\"window_end\":\"2023-11-14T22:14:00Z\",\"n\":1,\"total\":300,\"lo\":300,"
                     "\"hi\":300,\"mean\":300.0,\"users\":1}");
    cr_assert_str_eq(c->payloads[2],
                     "{\"level\":\"error\",\"window_start\":\"2023-11-14T22:14:00Z\","
                     "\"window_end\":\"2023-11-14T22:15:00Z\",\"n\":1,\"total\":100,\"lo\":100,"
                     "\"hi\":100,\"mean\":100.0,\"users\":1}");
    cr_assert_str_eq(c->payloads[3],
                     "{\"level\":\"info\",\"window_start\":\"2023-11-14T22:14:00Z\","
                     "\"window_end\":\"2023-11-14T22:15:00Z\",\"n\":1,\"total\":7,\"lo\":7,"
                     "\"hi\":7,\"mean\":7.0,\"users\":1}");
    cr_assert_eq(c->times[0], 1699999980LL * 1000000000);
    cr_assert_eq(c->times[2], 1700000040LL * 1000000000);
    cr_assert_str_eq(c->json[0], c->payloads[0], "the payload is the result's JSON");
    cr_assert_eq(t_stats(agg).dropped, 1, "the late event is counted");
}

/* Records how many results had arrived when the end of input came: the first window
 * must have been emitted by the watermark, before the end. */
static void note_batches(struct sl_stage *sink, struct t_capture *c)
{
    (void)sink;
    if (c->batches == 1) c->hook_arg = (void *)(uintptr_t)c->n;
}

Test(aggregate, the_watermark_closes_a_window_before_the_end)
{
    build("window: 1m\nclock: event\n" METRICS, lines);
    struct t_capture *c = sl_stage_state(sl_pipeline_find(p, "out"));
    c->on_write = note_batches;
    t_run_ok(p);
    cr_assert_eq(c->n, 2, "one group: one result per window");
    cr_assert_eq(c->batches, 2, "two deliveries: by the watermark, then at the end");
    cr_assert_eq((uintptr_t)c->hook_arg, 1);
    cr_assert(strstr(c->payloads[0], "\"n\":4,"), "%s", c->payloads[0]);
}

Test(aggregate, lateness_keeps_a_window_open)
{
    build("window: 1m\nclock: event\nmax_lateness: 30s\nmetrics: {n: count}", lines);
    t_run_ok(p);
    struct t_capture *c = sl_stage_state(sl_pipeline_find(p, "out"));
    cr_assert_eq(c->n, 2);
    cr_assert(strstr(c->payloads[0], "\"n\":5}"), "the late event counts now: %s", c->payloads[0]);
    cr_assert(strstr(c->payloads[1], "\"n\":2}"), "%s", c->payloads[1]);
}

Test(aggregate, expressions_as_arguments_and_missing_values)
{
    static const char *const l[] = {"{\"t\":1,\"a\":1,\"b\":2}", "{\"t\":2,\"a\":3}",
                                    "{\"t\":3,\"b\":\"x\"}", NULL};
    build("clock: event\ngroup_by: [nope]\nmetrics:\n  s: sum(a + b)\n  has_b: count(b)\n"
          "  m: max(a)\n  none: min(zzz)\n  all: count",
          l);
    t_run_ok(p);
    struct t_capture *c = sl_stage_state(sl_pipeline_find(p, "out"));
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0], "nope=N: window_start=S:1970-01-01T00:00:00Z "
                                   "window_end=S:1970-01-01T00:01:00Z s=I:3 has_b=I:2 m=I:3 "
                                   "none=N: all=I:3");
}

/* The sink resumes the paused source after the first result: on the processing clock it
 * can only come from the timer closing the window. */
static void resume(struct sl_stage *sink, struct t_capture *c)
{
    (void)sink;
    if (c->n >= 1) t_text_resume(c->hook_arg);
}

Test(aggregate, the_processing_clock_closes_windows_on_time)
{
    static const char *const l[] = {"{\"t\":1}", "{\"t\":2}", "{\"t\":3}",
                                    "{\"t\":4}", "{\"t\":5}", NULL};
    build("window: 50ms\nmetrics: {n: count}", l);
    struct sl_stage *src = sl_pipeline_find(p, "src");
    ((struct t_text *)sl_stage_state(src))->pause_after = 3;
    struct t_capture *c = sl_stage_state(sl_pipeline_find(p, "out"));
    c->on_write = resume;
    c->hook_arg = src;
    t_run_ok(p);
    int64_t total = 0;
    for (size_t i = 0; i < c->n; i++) {
        const char *n = strstr(c->payloads[i], "\"n\":");
        cr_assert_not_null(n);
        total += atoi(n + 4);
    }
    cr_assert_eq(total, 5);
    cr_assert_geq(c->n, 2, "the paused part and the rest are in different windows");
}

static int64_t acked_at_first_result;

static void note_acks(struct sl_stage *sink, struct t_capture *c)
{
    (void)sink;
    if (c->batches == 1) acked_at_first_result = ((struct t_text *)c->hook_arg)->acked;
}

Test(aggregate, events_are_acknowledged_with_their_results)
{
    static const char *const l[] = {"{\"t\":1}", "{\"t\":2}", "{\"t\":3}", "{\"t\":4}", NULL};
    build("clock: event\nmetrics: {n: count}", l);
    struct sl_stage *src = sl_pipeline_find(p, "src");
    ((struct t_text *)sl_stage_state(src))->batch = 1;
    struct t_capture *c = sl_stage_state(sl_pipeline_find(p, "out"));
    c->on_write = note_acks;
    c->hook_arg = sl_stage_state(src);
    acked_at_first_result = -1;
    t_run_ok(p);
    cr_assert_eq(acked_at_first_result, 0, "nothing acknowledged before the result is");
    cr_assert_eq(((struct t_text *)sl_stage_state(src))->acked, 4);
}

Test(aggregate, on_receipt_acknowledges_at_once)
{
    static const char *const l[] = {"{\"t\":1}", "{\"t\":2}", "{\"t\":3}", "{\"t\":4}", NULL};
    build("clock: event\nacknowledge: on_receipt\nmetrics: {n: count}", l);
    struct sl_stage *src = sl_pipeline_find(p, "src");
    ((struct t_text *)sl_stage_state(src))->batch = 1;
    struct t_capture *c = sl_stage_state(sl_pipeline_find(p, "out"));
    c->on_write = note_acks;
    c->hook_arg = sl_stage_state(src);
    acked_at_first_result = -1;
    t_run_ok(p);
    cr_assert_eq(acked_at_first_result, 4);
}

static void expect_error(const char *yaml, const char *msg, int line, int col)
{
    struct sl_error err = {0};
    struct sl_config *cfg = sl_config_parse(yaml, strlen(yaml), "a.yaml", &err);
    cr_assert_null(sl_pipeline_add(p, "a", &sl_stage_aggregate, cfg, &err));
    sl_config_free(cfg);
    cr_assert_str_eq(err.msg, msg);
    cr_assert_eq(err.line, line, "line %d", err.line);
    cr_assert_eq(err.col, col, "col %d", err.col);
}

Test(aggregate, config_errors)
{
    expect_error("metrics:\n  x: median(ms)",
                 "metric 'x': expected count, sum(x), min(x), max(x), avg(x), distinct(x), p50(x), "
                 "p90(x), p99(x) or quantile(x, q)",
                 2, 6);
    expect_error("metrics:\n  x: 'quantile(ms, 1.5)'",
                 "metric 'x': the q of quantile(argument, q) is a number from 0 to 1, e.g. 0.95", 2,
                 6);
    expect_error("metrics:\n  x: quantile(ms)",
                 "metric 'x': expected quantile(argument, q) with 0 <= q <= 1, e.g. "
                 "quantile(latency_ms, 0.95)",
                 2, 6);
    expect_error("metrics:\n  x: sum",
                 "metric 'x': this metric needs an argument, e.g. "
                 "sum(latency_ms)",
                 2, 6);
    expect_error("metrics:\n  x: 'sum(a +)'",
                 "metric 'x': expected an operand after '+', found end of expression", 2, 14);
    expect_error("metrics: {}", "metrics: expected at least one `name: count | sum(x) | ...`", 1,
                 10);
}
