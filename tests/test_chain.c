/* Operator chaining (issue 14) with the real stages: parse_json -> filter -> remap run as
 * one unit on the workers, and deliver exactly what they deliver one by one on the loop
 * (`workers: 0`): the same events in the same order, the same dead letters, the same
 * counts per stage, every line acknowledged. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/builtins.h>

#include "helpers.h"
#include "runtime/internal.h"
#include "stage_helpers.h"

#define LINES 6000

static char *text[LINES + 1];
static struct sl_pipeline *p, *q;

/* Log lines of every kind a chain meets: kept and pruned levels, escapes that spell a
 * level, broken JSON, non-objects. */
static void make_lines(void)
{
    static const char *const shapes[] = {
        "{\"level\":\"error\",\"n\":%d,\"msg\":\"disk \\\"sda\\\" full\",\"user\":\"u%d\"}",
        "{\"level\":\"info\",\"n\":%d,\"msg\":\"ok\",\"user\":\"u%d\"}",
        "{\"level\":\"warn\",\"n\":%d,\"msg\":\"slow\",\"user\":\"u%d\"}",
        "{\"level\":\"err\\u006fr\",\"n\":%d,\"msg\":\"escaped\",\"user\":\"u%d\"}",
        "{\"level\":\"debug\",\"n\":%d,\"msg\":\"an error\",\"user\":\"u%d\"",
        "not json %d %d",
        "[\"error\", %d, %d]",
        "{\"level\":\"info\",\"n\":%d,\"msg\":\"x\",\"user\":\"u%d\",\"level\":\"error\"}",
    };
    for (int i = 0; i < LINES; i++) {
        char buf[256];
        int k = (i * 7 + i / 13) % 8;
        snprintf(buf, sizeof buf, shapes[k], i, i % 97);
        text[i] = strdup(buf);
    }
    text[LINES] = NULL;
}

static void setup(void)
{
    make_lines();
    p = t_pipeline();
    q = t_pipeline();
}

static void teardown(void)
{
    sl_pipeline_free(p);
    sl_pipeline_free(q);
    for (int i = 0; i < LINES; i++) free(text[i]);
    memset(text, 0, sizeof text);
}

TestSuite(chain, .init = setup, .fini = teardown, .timeout = 60);

struct run {
    struct sl_stage *src, *json, *filter, *remap;
    struct t_capture *out, *dead;
};

/* src -> json (parse_json, dead letters to "dead") -> filter -> remap -> out, each stage
 * with `workers` ("" for the default, auto). */
static struct run build_and_run(struct sl_pipeline *pl, const char *workers)
{
    char yaml[256];
    struct run r = {.src = t_add_lines(pl, (const char *const *)text)};
    snprintf(yaml, sizeof yaml, "{on_error: dead_letter%s}", workers);
    r.json = t_stage(pl, "json", &sl_stage_parse_json, yaml);
    snprintf(yaml, sizeof yaml, "{condition: 'level == \"error\" || n %% 5 == 0'%s}", workers);
    r.filter = t_stage(pl, "filter", &sl_stage_filter, yaml);
    snprintf(yaml, sizeof yaml,
             "{set: {env: '\"prod\"'}, rename: {msg: message}, remove: [user]%s}", workers);
    r.remap = t_stage(pl, "remap", &sl_stage_remap, yaml);
    struct sl_stage *out = t_stage(pl, "out", &t_capture, NULL);
    struct sl_stage *dead = t_stage(pl, "dead", &t_capture, NULL);
    t_connect_port(pl, r.src, NULL, r.json);
    t_connect_port(pl, r.json, NULL, r.filter);
    t_connect_port(pl, r.json, "dead_letter", dead);
    t_connect_port(pl, r.filter, NULL, r.remap);
    t_connect_port(pl, r.remap, NULL, out);
    t_run_ok(pl);
    r.out = sl_stage_state(out);
    r.dead = sl_stage_state(dead);
    return r;
}

static void same_stats(struct sl_stage *a, struct sl_stage *b)
{
    struct sl_stage_stats x = t_stats(a), y = t_stats(b);
    cr_assert_eq(x.events_in, y.events_in, "%s", sl_stage_name(a));
    cr_assert_eq(x.events_out, y.events_out, "%s", sl_stage_name(a));
    cr_assert_eq(x.bytes_in, y.bytes_in, "%s", sl_stage_name(a));
    cr_assert_eq(x.bytes_out, y.bytes_out, "%s", sl_stage_name(a));
    cr_assert_eq(x.errors, y.errors, "%s", sl_stage_name(a));
    cr_assert_eq(x.dropped, y.dropped, "%s", sl_stage_name(a));
}

static void same_capture(const struct t_capture *a, const struct t_capture *b)
{
    cr_assert_eq(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        cr_assert_str_eq(a->json[i], b->json[i], "event %zu", i);
        cr_assert_str_eq(a->fields[i], b->fields[i], "event %zu", i);
    }
}

/* The events the filter keeps, and the lines parse_json refuses, counted from the
 * lines themselves. */
static size_t expected_kept(void)
{
    size_t n = 0;
    for (int i = 0; i < LINES; i++) {
        int k = (i * 7 + i / 13) % 8;
        n += k == 0 || k == 3 || k == 7 || (k <= 3 && i % 5 == 0);
    }
    return n;
}

static size_t expected_dead(void)
{
    size_t n = 0;
    for (int i = 0; i < LINES; i++) {
        int k = (i * 7 + i / 13) % 8;
        n += k >= 4 && k <= 6;
    }
    return n;
}

Test(chain, parse_filter_remap_deliver_what_they_deliver_unchained)
{
    struct run c = build_and_run(p, "");
    struct run u = build_and_run(q, ", workers: 0");
    if (sl__workers_auto() > 0) {
        cr_assert_eq(c.json->chain_next, c.filter);
        cr_assert_eq(c.filter->chain_next, c.remap);
        cr_assert_eq(c.remap->chain_head, c.json);
    }
    cr_assert_null(u.json->chain_next);
    cr_assert_eq(c.out->n, expected_kept());
    same_capture(c.out, u.out);
    same_capture(c.dead, u.dead);
    cr_assert_eq(c.dead->n, expected_dead(), "truncated, not json, an array");
    same_stats(c.json, u.json);
    same_stats(c.filter, u.filter);
    same_stats(c.remap, u.remap);
    cr_assert_eq(((struct t_text *)sl_stage_state(c.src))->acked, LINES, "every line acked");
    cr_assert_eq(((struct t_text *)sl_stage_state(u.src))->acked, LINES);
}

/* A filter in a chain whose condition cannot be evaluated on line 250 (a regex that
 * backtracks past its match limit), with on_error: fail: the run fails naming the filter,
 * and only whole batches (of 100 lines) before the failing one are delivered (their even
 * lines, whose msg matches) and acknowledged. */
Test(chain, a_failing_stage_in_the_chain_fails_the_run_and_acknowledges_only_what_was_delivered)
{
    for (int i = 0; i < 300; i++) {
        char buf[128];
        snprintf(buf, sizeof buf, "{\"n\":%d,\"msg\":\"%s\"}", i,
                 i == 250 ? "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaab"
                 : i % 2  ? "ok"
                          : "aaaa");
        free(text[i]);
        text[i] = strdup(buf);
    }
    free(text[300]);
    text[300] = NULL;
    struct sl_stage *src = t_add_lines(p, (const char *const *)text);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, "workers: 1");
    struct sl_stage *filter = t_stage(p, "filter", &sl_stage_filter,
                                      "{condition: 'n >= 0 && msg =~ /(a+)+$/', on_error: fail, "
                                      "workers: 1}");
    struct sl_stage *out = t_stage(p, "out", &t_capture, NULL);
    t_connect_port(p, src, NULL, json);
    t_connect_port(p, json, NULL, filter);
    t_connect_port(p, filter, NULL, out);
    struct sl_error err = {0};
    cr_assert_lt(sl_pipeline_run(p, &err), 0);
    cr_assert_eq(json->chain_next, filter);
    cr_assert_str_eq(err.stage, "filter", "%s", err.msg);
    size_t n = ((struct t_capture *)sl_stage_state(out))->n;
    int64_t acked = ((struct t_text *)sl_stage_state(src))->acked;
    cr_assert_leq(acked, 200, "the batch of line 250 (200..299) is not acknowledged");
    cr_assert_eq(acked % 100, 0, "whole batches");
    cr_assert_eq(n, (size_t)acked / 2, "the even lines of the batches acknowledged");
}
