/* Taps (include/sluice/observe.h, issue 17): the events leaving a stage's output, as
 * JSON lines in a bounded ring: the same events the next stage receives, only those the
 * match keeps, drops counted exactly when the ring is full (in events or bytes), and a
 * `workers` chain that hands a batch to the next stage seen before that stage changes
 * it. Also the per-edge queue accessor and the outputs of a stage. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/builtins.h>
#include <sluice/sluice.h>

#include "runtime/internal.h"
#include "stage_helpers.h"

#define LINES 1000

static char *text[LINES + 1];
static struct sl_pipeline *p;

/* Line i: an error, an info or a broken line, with its number. */
static int kind_of(int i)
{
    return (i * 7 + i / 13) % 5;
}

static void setup(void)
{
    static const char *const shapes[] = {
        "{\"level\":\"error\",\"n\":%d,\"msg\":\"disk \\\"sda\\\" full\"}",
        "{\"level\":\"info\",\"n\":%d,\"msg\":\"ok\"}",
        "{\"level\":\"warn\",\"n\":%d,\"msg\":\"slow\",\"pad\":\"%*s\"}",
        "not json %d",
        "{\"level\":\"info\",\"n\":%d,\"msg\":\"two\\nlines\"}",
    };
    for (int i = 0; i < LINES; i++) {
        char buf[256];
        snprintf(buf, sizeof buf, shapes[kind_of(i)], i, i % 40, "");
        text[i] = strdup(buf);
    }
    text[LINES] = NULL;
    p = t_pipeline();
}

static void teardown(void)
{
    sl_pipeline_free(p);
    for (int i = 0; i < LINES; i++) free(text[i]);
}

TestSuite(tap, .init = setup, .fini = teardown, .timeout = 60);

/* What a tap holds, taken after the run. */
struct lines {
    char **v;
    size_t n;
};

static struct lines drain(struct sl_tap *t)
{
    struct lines l = {calloc(LINES + 1, sizeof(char *)), 0};
    const char *json;
    size_t len;
    while (sl_tap_next(t, &json, &len)) {
        cr_assert_lt(l.n, LINES);
        cr_assert_eq(strlen(json), len);
        cr_assert_null(memchr(json, '\n', len), "a tap line holds a newline: %s", json);
        l.v[l.n++] = strndup(json, len);
    }
    return l;
}

static void lines_free(struct lines *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
}

static struct sl_tap *tap(struct sl_stage *s, const char *port, const struct sl_tap_options *o)
{
    struct sl_error err = {0};
    struct sl_tap *t = sl_pipeline_tap_open(p, s, port, o, &err);
    cr_assert_not_null(t, "tap: %s", err.msg);
    return t;
}

/* src -> json (parse_json, dead letters to "dead") -> filter (errors and warnings) ->
 * remap (adds a field) -> out, with `workers` on each; the stages in *json etc. */
struct graph {
    struct sl_stage *src, *json, *filter, *remap, *out, *dead;
};

static struct graph build(const char *workers)
{
    char yaml[256];
    struct graph g = {.src = t_add_lines(p, (const char *const *)text)};
    snprintf(yaml, sizeof yaml, "{on_error: dead_letter%s}", workers);
    g.json = t_stage(p, "json", &sl_stage_parse_json, yaml);
    snprintf(yaml, sizeof yaml, "{condition: 'level != \"info\"'%s}", workers);
    g.filter = t_stage(p, "filter", &sl_stage_filter, yaml);
    snprintf(yaml, sizeof yaml, "{set: {env: '\"prod\"'}%s}", workers);
    g.remap = t_stage(p, "remap", &sl_stage_remap, yaml);
    g.out = t_stage(p, "out", &t_capture, NULL);
    g.dead = t_stage(p, "dead", &t_capture, NULL);
    t_connect_port(p, g.src, NULL, g.json);
    t_connect_port(p, g.json, NULL, g.filter);
    t_connect_port(p, g.json, "dead_letter", g.dead);
    t_connect_port(p, g.filter, NULL, g.remap);
    t_connect_port(p, g.remap, NULL, g.out);
    return g;
}

static const struct sl_tap_options roomy = {.size = sizeof roomy, .capacity_events = LINES};

static void same_as_sink(const struct lines *l, const struct t_capture *c)
{
    cr_assert_eq(l->n, c->n);
    for (size_t i = 0; i < l->n; i++) cr_assert_str_eq(l->v[i], c->json[i], "event %zu", i);
}

Test(tap, a_tap_sees_the_events_the_next_stage_receives)
{
    struct graph g = build(", workers: 0");
    struct sl_tap *remap = tap(g.remap, NULL, &roomy), *dead = tap(g.json, "dead_letter", &roomy);
    t_run_ok(p);
    struct lines a = drain(remap), b = drain(dead);
    same_as_sink(&a, sl_stage_state(g.out));
    same_as_sink(&b, sl_stage_state(g.dead));
    size_t broken = 0;
    for (int i = 0; i < LINES; i++) broken += kind_of(i) == 3;
    cr_assert_eq(b.n, broken);
    cr_assert_gt(broken, 100);
    uint64_t matched, dropped;
    sl_tap_counts(remap, &matched, &dropped);
    cr_assert_eq(matched, a.n);
    cr_assert_eq(dropped, 0);
    lines_free(&a);
    lines_free(&b);
    sl_tap_close(remap);
    sl_tap_close(dead);
}

/* parse_json -> filter -> remap run as one chain on the workers: each passes its batch
 * to the next, which must not change it in place while a tap reads it. */
static void filter_output_is_the_kept_lines(const char *workers, bool chained)
{
    struct graph g = build(workers);
    struct sl_tap *t = tap(g.filter, "", &roomy);
    t_run_ok(p);
    cr_assert_eq(g.filter->chain_next, chained ? g.remap : NULL);
    struct lines l = drain(t);
    size_t k = 0;
    for (int i = 0; i < LINES; i++)
        if (kind_of(i) == 0 || kind_of(i) == 2) {
            cr_assert_lt(k, l.n, "line %d not tapped", i);
            cr_assert_str_eq(l.v[k], text[i], "line %d", i);
            k++;
        }
    cr_assert_eq(l.n, k);
    lines_free(&l);
    sl_tap_close(t);
}

Test(tap, a_chain_on_workers_shows_a_stage_output_before_the_next_stage_ran)
{
    filter_output_is_the_kept_lines(", workers: 2", true);
}

Test(tap, a_stage_on_the_loop_shows_its_output)
{
    filter_output_is_the_kept_lines(", workers: 0", false);
}

Test(tap, a_full_ring_drops_and_counts_every_event_that_finds_no_room)
{
    struct graph g = build("");
    struct sl_tap_options o = {.size = sizeof o, .capacity_events = 10};
    struct sl_tap *t = tap(g.src, NULL, &o);
    t_run_ok(p);
    uint64_t matched, dropped;
    sl_tap_counts(t, &matched, &dropped);
    cr_assert_eq(matched, LINES);
    cr_assert_eq(dropped, LINES - 10);
    cr_assert_eq(sl_tap_pending(t), 10);
    struct lines l = drain(t);
    cr_assert_eq(l.n, 10);
    for (size_t i = 0; i < 10; i++) /* raw lines: {"message": line} */
        cr_assert_not_null(strstr(l.v[i], "\"message\":"), "%s", l.v[i]);
    cr_assert_eq(sl_tap_pending(t), 0);
    lines_free(&l);
    sl_tap_close(t);
}

Test(tap, the_ring_holds_at_most_its_bytes)
{
    struct graph g = build("");
    struct sl_tap_options o = {.size = sizeof o, .capacity_events = LINES, .capacity_bytes = 1000};
    struct sl_tap *t = tap(g.filter, NULL, &o);
    t_run_ok(p);
    struct lines l = drain(t);
    size_t bytes = 0, want_n = 0, kept = 0;
    for (int i = 0; i < LINES; i++) {
        if (kind_of(i) != 0 && kind_of(i) != 2) continue;
        kept++;
        size_t n = strlen(text[i]);
        if (want_n && bytes + n > 1000) continue; /* no room: dropped */
        cr_assert_str_eq(l.v[want_n], text[i]);
        bytes += n, want_n++;
    }
    cr_assert_eq(l.n, want_n);
    cr_assert_leq(bytes, 1000);
    uint64_t matched, dropped;
    sl_tap_counts(t, &matched, &dropped);
    cr_assert_eq(matched, kept);
    cr_assert_eq(dropped, kept - want_n);
    lines_free(&l);
    sl_tap_close(t);
}

static bool match_expr(void *arg, const struct sl_event *ev)
{
    return sl_expr_test(arg, ev);
}

Test(tap, the_match_keeps_only_the_events_the_condition_holds_for)
{
    struct graph g = build("");
    struct sl_error err = {0};
    const char cond[] = "n % 3 == 0 && level == \"error\"";
    struct sl_expr *e = sl_expr_compile(cond, strlen(cond), &err);
    cr_assert_not_null(e, "%s", err.msg);
    struct sl_tap_options o = {
        .size = sizeof o, .capacity_events = LINES, .match = match_expr, .match_arg = e};
    struct sl_tap *t = tap(g.json, NULL, &o);
    t_run_ok(p);
    struct lines l = drain(t);
    size_t k = 0;
    for (int i = 0; i < LINES; i++)
        if (kind_of(i) == 0 && i % 3 == 0) cr_assert_str_eq(l.v[k++], text[i], "line %d", i);
    cr_assert_eq(l.n, k);
    cr_assert_gt(k, 10);
    lines_free(&l);
    sl_tap_close(t);
    sl_expr_free(e);
}

static void count_wake(void *arg, struct sl_tap *t)
{
    (void)t;
    (*(int *)arg)++;
}

Test(tap, the_reader_is_woken_once_per_batch_that_brought_events)
{
    struct graph g = build("");
    int wakes = 0;
    struct sl_tap_options o = {
        .size = sizeof o, .capacity_events = LINES, .wake = count_wake, .wake_arg = &wakes};
    struct sl_tap *t = tap(g.src, NULL, &o);
    t_run_ok(p);
    cr_assert_eq(wakes, LINES / 100); /* t_text: batches of 100 */
    sl_tap_close(t);
}

Test(tap, only_existing_outputs_can_be_tapped)
{
    struct graph g = build("");
    struct sl_error err = {0};
    cr_assert_null(sl_pipeline_tap_open(p, g.json, "nope", NULL, &err));
    cr_assert_eq(err.code, SL_ENOTFOUND);
    cr_assert_str_eq(err.msg, "stage 'json' has no output 'nope'");
    cr_assert_null(sl_pipeline_tap_open(p, g.out, NULL, NULL, &err));
    cr_assert_eq(err.code, SL_ENOTFOUND);
    struct sl_tap_options small = {.size = 8};
    cr_assert_null(sl_pipeline_tap_open(p, g.json, NULL, &small, &err));
    cr_assert_eq(err.code, SL_EINVAL);
    /* A tap left open goes with the pipeline (the sanitizer run checks for leaks). */
    cr_assert_not_null(sl_pipeline_tap_open(p, g.json, "dead_letter", NULL, &err));
    t_run_ok(p);
}

Test(tap, outputs_and_edges_are_listed_with_their_queues)
{
    struct graph g = build("");
    cr_assert_eq(sl_stage_output_count(g.json), 2);
    cr_assert_str_eq(sl_stage_output_name(g.json, 0), "");
    cr_assert_str_eq(sl_stage_output_name(g.json, 1), "dead_letter");
    cr_assert_null(sl_stage_output_name(g.json, 2));
    cr_assert_eq(sl_stage_output_count(g.out), 0);
    struct sl_edge_stats e = {.size = sizeof e};
    cr_assert_eq(sl_stage_input_stats(g.filter, 0, &e), 0);
    cr_assert_eq(e.capacity_batches, 4); /* t_pipeline's queues */
    cr_assert_eq(e.capacity_bytes, 8u << 20);
    cr_assert_eq(e.queue_batches, 0);
    cr_assert_eq(sl_stage_input_stats(g.filter, 1, &e), SL_ENOTFOUND);
    struct sl_edge_stats tiny = {.size = 4};
    cr_assert_eq(sl_stage_input_stats(g.filter, 0, &tiny), SL_EINVAL);
    cr_assert_null(sl_stage_config(g.out));
    cr_assert_not_null(sl_stage_config(g.json));
    t_run_ok(p);
}
