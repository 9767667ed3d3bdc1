/* dedupe: by payload, by fields, LRU size bound, age bound, dead letters. */
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

TestSuite(dedupe, .init = setup, .fini = teardown, .timeout = 30);

static struct t_capture *run(const char *yaml, const char *const *lines, struct sl_stage **st)
{
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, NULL);
    struct sl_stage *ts = t_stage(p, "ts", &sl_stage_parse_timestamp,
                                  "formats: unix\nfield: t\non_error: dead_letter");
    t_connect_port(p, src, NULL, json);
    t_connect_port(p, json, NULL, ts);
    struct t_capture *c = t_run_after(p, ts, &sl_stage_dedupe, yaml, NULL);
    *st = sl_pipeline_find(p, "stage");
    return c;
}

Test(dedupe, identical_payloads_pass_once)
{
    static const char *const lines[] = {"{\"t\":1,\"a\":1}", "{\"t\":1,\"a\":2}",
                                        "{\"t\":1,\"a\":1}", "{\"t\":1, \"a\":1}",
                                        "{\"t\":1,\"a\":2}", NULL};
    struct sl_stage *st;
    struct t_capture *c = run("{}", lines, &st);
    cr_assert_eq(c->n, 3);
    cr_assert_str_eq(c->payloads[0], lines[0]);
    cr_assert_str_eq(c->payloads[1], lines[1]);
    cr_assert_str_eq(c->payloads[2], lines[3], "a different payload, same fields");
    cr_assert_eq(t_stats(st).dropped, 2);
}

Test(dedupe, by_fields_with_types_and_escapes)
{
    static const char *const lines[] = {"{\"t\":1,\"id\":\"x\",\"n\":1}",
                                        "{\"t\":2,\"id\":\"\\u0078\",\"n\":1}", /* same */
                                        "{\"t\":3,\"id\":\"x\",\"n\":\"1\"}",   /* string 1 */
                                        "{\"t\":4,\"n\":1}",                    /* no id */
                                        "{\"t\":5,\"n\":1,\"other\":true}",     /* same */
                                        NULL};
    struct sl_stage *st;
    struct t_capture *c = run("fields: [id, n]", lines, &st);
    cr_assert_eq(c->n, 3);
    cr_assert_str_eq(c->payloads[0], lines[0]);
    cr_assert_str_eq(c->payloads[1], lines[2]);
    cr_assert_str_eq(c->payloads[2], lines[3]);
}

Test(dedupe, a_small_cache_forgets_the_least_recent_key)
{
    static const char *const lines[] = {"{\"t\":1,\"k\":1}",
                                        "{\"t\":1,\"k\":2}",
                                        "{\"t\":1,\"k\":1}",
                                        "{\"t\":1,\"k\":3}",
                                        "{\"t\":1,\"k\":2}",
                                        "{\"t\":1,\"k\":1}",
                                        NULL};
    struct sl_stage *st;
    /* cache 2: 1 in; 2 in; 1 dup (1 most recent); 3 in, evicts 2; 2 in again, evicts 1;
     * 1 in again. */
    struct t_capture *c = run("fields: k\ncache_size: 2", lines, &st);
    cr_assert_eq(c->n, 5);
    cr_assert_str_eq(c->payloads[2], lines[3]);
    cr_assert_str_eq(c->payloads[3], lines[4]);
    cr_assert_str_eq(c->payloads[4], lines[5]);
}

Test(dedupe, max_age_in_event_time_with_dead_letters)
{
    static const char *const lines[] = {"{\"t\":100,\"k\":1}", "{\"t\":105,\"k\":1}",
                                        "{\"t\":110,\"k\":1}", "{\"t\":119,\"k\":1}",
                                        "{\"t\":120,\"k\":1}", NULL};
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, NULL);
    struct sl_stage *ts = t_stage(p, "ts", &sl_stage_parse_timestamp, "formats: unix\nfield: t");
    struct sl_stage *dd =
        t_stage(p, "dd", &sl_stage_dedupe,
                "fields: k\nmax_age: 10s\nclock: event\non_duplicate: dead_letter");
    struct sl_stage *out = t_stage(p, "out", &t_capture, NULL);
    struct sl_stage *dead = t_stage(p, "dead", &t_capture, NULL);
    t_connect_port(p, src, NULL, json);
    t_connect_port(p, json, NULL, ts);
    t_connect_port(p, ts, NULL, dd);
    t_connect_port(p, dd, NULL, out);
    t_connect_port(p, dd, "dead_letter", dead);
    t_run_ok(p);
    struct t_capture *c = sl_stage_state(out), *d = sl_stage_state(dead);
    cr_assert_eq(c->n, 3); /* 100 in; 105 dup; 110 in (10 s later); 119 dup; 120 in */
    cr_assert_str_eq(c->payloads[1], lines[2]);
    cr_assert_str_eq(c->payloads[2], lines[4]);
    cr_assert_eq(d->n, 2);
    cr_assert_str_eq(d->fields[0], "t=I:105 k=I:1 error=S:duplicate");
    cr_assert_eq(t_stats(dd).dropped, 0);
    cr_assert_eq(t_stats(dd).errors, 0);
}
