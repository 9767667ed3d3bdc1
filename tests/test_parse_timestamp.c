/* parse_timestamp: RFC 3339, unix times, strptime formats with %z and %f, time zones,
 * the RFC 3339 target field, errors. Expected epochs computed with Python's
 * calendar.timegm. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

TestSuite(parse_timestamp, .init = setup, .fini = teardown, .timeout = 30);

#define NS 1000000000LL

/* lines (JSON) -> parse_json -> parse_timestamp(yaml, on_error: dead_letter) -> out, and
 * the dead letters into *dead. */
static struct t_capture *run(const char *yaml, const char *const *lines, struct t_capture **dead)
{
    char cfg[512];
    snprintf(cfg, sizeof cfg, "on_error: dead_letter\n%s", yaml);
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, NULL);
    struct sl_stage *ts = t_stage(p, "ts", &sl_stage_parse_timestamp, cfg);
    struct sl_stage *out = t_stage(p, "out", &t_capture, NULL);
    struct sl_stage *dl = t_stage(p, "dead", &t_capture, NULL);
    t_connect_port(p, src, NULL, json);
    t_connect_port(p, json, NULL, ts);
    t_connect_port(p, ts, NULL, out);
    t_connect_port(p, ts, "dead_letter", dl);
    t_run_ok(p);
    *dead = sl_stage_state(dl);
    return sl_stage_state(out);
}

Test(parse_timestamp, rfc3339_forms)
{
    static const char *const lines[] = {"{\"timestamp\":\"2024-01-02T03:04:05Z\"}",
                                        "{\"timestamp\":\"2024-01-02T03:04:05.123456789+02:00\"}",
                                        "{\"timestamp\":\"2024-01-02 03:04:05.5z\"}",
                                        "{\"timestamp\":\"1969-12-31T23:59:59.25Z\"}",
                                        "{\"timestamp\":\"2024-13-02T03:04:05Z\"}",
                                        "{\"timestamp\":\"2024-01-02T03:04:05\"}",
                                        "{\"other\":1}",
                                        NULL};
    struct t_capture *dead;
    struct t_capture *c = run("target: '@timestamp'", lines, &dead);
    cr_assert_eq(c->n, 4);
    cr_assert_eq(c->times[0], 1704164645 * NS);
    cr_assert_eq(c->times[1], 1704157445 * NS + 123456789);
    cr_assert_eq(c->times[2], 1704164645 * NS + 500000000);
    cr_assert_eq(c->times[3], -1 * NS + 250000000);
    cr_assert_str_eq(c->fields[1], "timestamp=S:2024-01-02T03:04:05.123456789+02:00 "
                                   "@timestamp=S:2024-01-02T01:04:05.123456789Z");
    cr_assert_str_eq(c->fields[2], "timestamp=S:2024-01-02 03:04:05.5z "
                                   "@timestamp=S:2024-01-02T03:04:05.5Z");
    cr_assert_str_eq(c->fields[3], "timestamp=S:1969-12-31T23:59:59.25Z "
                                   "@timestamp=S:1969-12-31T23:59:59.25Z");
    cr_assert_eq(dead->n, 3);
    cr_assert_str_eq(dead->fields[0], "timestamp=S:2024-13-02T03:04:05Z "
                                      "error=S:'2024-13-02T03:04:05Z' matches none of the formats");
    cr_assert_str_eq(dead->fields[1], "timestamp=S:2024-01-02T03:04:05 "
                                      "error=S:'2024-01-02T03:04:05' matches none of the formats");
    cr_assert_str_eq(dead->fields[2], "other=I:1 error=S:field 'timestamp' is missing");
}

Test(parse_timestamp, unix_times_as_numbers_and_strings)
{
    static const char *const lines[] = {"{\"t\":1704164645}", "{\"t\":\"1704164645.25\"}",
                                        "{\"t\":-1.5}", "{\"t\":\"x1\"}", NULL};
    struct t_capture *dead;
    struct t_capture *c = run("field: t\nformats: unix", lines, &dead);
    cr_assert_eq(c->n, 3);
    cr_assert_eq(c->times[0], 1704164645 * NS);
    cr_assert_eq(c->times[1], 1704164645 * NS + 250000000);
    cr_assert_eq(c->times[2], -1500000000);
    sl_pipeline_free(p);
    p = t_pipeline();
    static const char *const ms[] = {"{\"t\":1704164645123}", NULL};
    c = run("field: t\nformats: [unix_ms]", ms, &dead);
    cr_assert_eq(c->n, 1);
    cr_assert_eq(c->times[0], 1704164645123 * 1000000LL);
}

Test(parse_timestamp, strptime_formats_in_order_with_zone_and_fraction)
{
    static const char *const lines[] = {
        "{\"time\":\"Sun Dec 04 04:47:44 2005\"}",   /* Apache */
        "{\"time\":\"04/Dec/2005:04:47:44 +0100\"}", /* common log format */
        "{\"time\":\"2024-01-02 03:04:05,123\"}",    /* log4j */
        "{\"time\":\"2024-01-02T03:04:05Z\"}",       /* falls through to rfc3339 */
        NULL};
    struct t_capture *dead;
    struct t_capture *c = run("field: time\n"
                              "formats:\n"
                              "  - '%a %b %d %H:%M:%S %Y'\n"
                              "  - '%d/%b/%Y:%H:%M:%S %z'\n"
                              "  - '%Y-%m-%d %H:%M:%S,%f'\n"
                              "  - rfc3339\n",
                              lines, &dead);
    cr_assert_eq(dead->n, 0, "%s", dead->n ? dead->fields[0] : "");
    cr_assert_eq(c->n, 4);
    cr_assert_eq(c->times[0], 1133671664 * NS);
    cr_assert_eq(c->times[1], 1133668064 * NS);
    cr_assert_eq(c->times[2], 1704164645 * NS + 123000000);
    cr_assert_eq(c->times[3], 1704164645 * NS);
}

Test(parse_timestamp, a_fixed_timezone_applies_to_times_without_one)
{
    static const char *const lines[] = {"{\"t\":\"2024-01-02 03:04:05\"}", NULL};
    struct t_capture *dead;
    struct t_capture *c =
        run("field: t\nformats: '%Y-%m-%d %H:%M:%S'\ntimezone: '+05:30'", lines, &dead);
    cr_assert_eq(c->n, 1);
    cr_assert_eq(c->times[0], 1704144845 * NS);
}

Test(parse_timestamp, a_format_without_a_year_takes_the_current_one)
{
    static const char *const lines[] = {"{\"t\":\"Dec 10 06:55:46\"}", NULL};
    struct t_capture *dead;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    struct t_capture *c = run("field: t\nformats: '%b %d %H:%M:%S'", lines, &dead);
    cr_assert_eq(c->n, 1);
    struct tm want = {.tm_year = tm.tm_year,
                      .tm_mon = 11,
                      .tm_mday = 10,
                      .tm_hour = 6,
                      .tm_min = 55,
                      .tm_sec = 46};
    cr_assert_eq(c->times[0], (int64_t)timegm(&want) * NS);
}

Test(parse_timestamp, config_errors)
{
    struct sl_error err = {0};
    const char *y = "timezone: Europe/Paris";
    struct sl_config *cfg = sl_config_parse(y, strlen(y), "t.yaml", &err);
    cr_assert_null(sl_pipeline_add(p, "ts", &sl_stage_parse_timestamp, cfg, &err));
    sl_config_free(cfg);
    cr_assert_str_eq(err.msg, "timezone must be UTC or a fixed offset such as +02:00 or -0530 "
                              "(zone names are not supported); found 'Europe/Paris'");
    cr_assert_eq(err.col, 11);
    y = "formats: [rfc3339, iso]";
    cfg = sl_config_parse(y, strlen(y), "t.yaml", &err);
    cr_assert_null(sl_pipeline_add(p, "ts", &sl_stage_parse_timestamp, cfg, &err));
    sl_config_free(cfg);
    cr_assert_str_eq(err.msg, "format 'iso' is neither rfc3339, unix, unix_ms, unix_us, unix_ns "
                              "nor a strptime format (with at most one %f)");
}

Test(parse_timestamp, issue5_times_outside_the_nanosecond_range_are_rejected)
{
    /* Found by fuzz_stages: a year past 2262 overflowed the nanoseconds. */
    static const char *const lines[] = {"{\"t\":\"4048-01-02T03:04:05Z\"}",
                                        "{\"t\":\"9223372036.999999999\"}",
                                        "{\"t\":\"2262-04-11T23:47:16Z\"}", NULL};
    struct t_capture *dead;
    struct t_capture *c = run("field: t\nformats: [rfc3339, unix]", lines, &dead);
    cr_assert_eq(c->n, 1);
    cr_assert_eq(c->times[0], 9223372036000000000LL);
    cr_assert_eq(dead->n, 2);
}

/* ---- the field limit (issue 1) ------------------------------------------------------- */

Test(parse_timestamp, a_target_past_the_field_limit_is_dead_lettered_and_the_run_goes_on)
{
    /* 65535 fields: `target` would be the 65536th. */
    char *over = t_json_members(65535, "\"t\":\"2024-01-02T03:04:05Z\"", 1);
    char *fits = t_json_members(65534, "\"t\":\"2024-01-02T03:04:06Z\"", 1);
    const char *lines[] = {"{\"t\":1}", over, fits, "{\"t\":2}", NULL};
    struct sl_stage *dl;
    struct t_capture *c = t_run_dead_letter_after_json(
        p, &sl_stage_parse_timestamp,
        "field: t\nformats: [unix, rfc3339]\ntarget: at\non_error: dead_letter", lines, &dl);
    struct t_capture *d = sl_stage_state(dl);
    cr_assert_eq(c->n, 3);
    cr_assert_str_eq(c->fields[0], "t=I:1 at=S:1970-01-01T00:00:01Z");
    cr_assert(t_ends_with(c->fields[1], " k65533=I:3 at=S:2024-01-02T03:04:06Z"));
    cr_assert_eq(c->times[1], 1704164646000000000LL);
    cr_assert_str_eq(c->fields[2], "t=I:2 at=S:1970-01-01T00:00:02Z");
    cr_assert_eq(d->n, 1);
    cr_assert(t_ends_with(d->fields[0], " k65534=I:4 error=S:target 'at': more than 65535 fields"));
    cr_assert_eq(t_stats(sl_pipeline_find(p, "stage")).errors, 1);
    free(over);
    free(fits);
}
