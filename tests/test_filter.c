/* filter: expressions over parsed events, untouched output bytes, workers, config errors
 * pointing into the file; events a condition cannot evaluate (a regex at its match limit)
 * and a keep() that fails, through on_error drop, dead_letter and fail, on the loop and on
 * workers, in place and on shared batches. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/builtins.h>

#include "helpers.h"
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

/* ---- events the condition cannot evaluate ------------------------------------------------ */

#define RUNAWAY_CONDITION "condition: 'level == \"error\" && msg =~ /(a+)+$/'\n"
#define LIMIT_REASON      "the condition cannot be evaluated: a regex reached its match limit"
#define RUNAWAY           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaab" /* (a+)+$ backtracks 2^30 ways */

enum { MIXED = 60, BATCH = 7 };
static char mixed_text[MIXED][128];
static const char *mixed[MIXED + 1];

/* The msg of event i of the mixed input (see mixed_lines). */
static const char *mixed_msg(int i, int from)
{
    if (i % 5 == 0) return "aaaa";
    if ((i % 5 == 2 && i >= from) || i % 5 == 4) return RUNAWAY;
    return "db down";
}

/* The mixed input, JSON lines: event i is, when i % 5 is
 *   0: an error whose msg is all 'a's: kept;
 *   2: an error whose msg sends the regex past its match limit (from i = `from` on; an
 *      ordinary error before): cannot be evaluated;
 *   4: an info event with that msg: dropped (&& stops at the level, the regex never runs);
 *   1, 3: an error with another msg: dropped. */
static const char *const *mixed_lines(int from)
{
    for (int i = 0; i < MIXED; i++) {
        snprintf(mixed_text[i], sizeof mixed_text[i], "{\"i\":%d,\"level\":\"%s\",\"msg\":\"%s\"}",
                 i, i % 5 == 4 ? "info" : "error", mixed_msg(i, from));
        mixed[i] = mixed_text[i];
    }
    mixed[MIXED] = NULL;
    return mixed;
}

struct filtered {
    struct sl_stage *src, *stage;
    struct t_capture *out, *dead, *other; /* dead: the dead letters; other: the fan-out */
};

/* src (mixed lines from `from`, BATCH per batch) -> json -> stage (filter, `yaml`) -> out,
 * and stage.dead_letter -> dead when the stage has that output; with `fan_out`, json ->
 * other too, so that the filter's input batches are shared. Does not run it. */
static struct filtered build(const char *yaml, int from, bool fan_out)
{
    struct filtered f = {.src = t_add_lines(p, mixed_lines(from))};
    ((struct t_text *)sl_stage_state(f.src))->batch = BATCH;
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, NULL);
    f.stage = t_stage(p, "stage", &sl_stage_filter, yaml);
    struct sl_stage *out = t_stage(p, "out", &t_capture, NULL);
    t_connect_port(p, f.src, NULL, json);
    t_connect_port(p, json, NULL, f.stage);
    t_connect_port(p, f.stage, NULL, out);
    f.out = sl_stage_state(out);
    if (sl_stage_output(f.stage, "dead_letter") > 0) {
        struct sl_stage *dead = t_stage(p, "dead", &t_capture, NULL);
        t_connect_port(p, f.stage, "dead_letter", dead);
        f.dead = sl_stage_state(dead);
    }
    if (fan_out) {
        struct sl_stage *other = t_stage(p, "other", &t_capture, NULL);
        t_connect_port(p, json, NULL, other);
        f.other = sl_stage_state(other);
    }
    return f;
}

static struct filtered run_mixed(const char *yaml, bool fan_out)
{
    struct filtered f = build(yaml, 0, fan_out);
    t_run_ok(p);
    if (fan_out) cr_assert_eq(f.other->n, MIXED, "the other branch gets every event");
    return f;
}

/* The condition kept i % 5 == 0, with their original bytes, in order. */
static void expect_kept(const struct t_capture *out)
{
    cr_assert_eq(out->n, MIXED / 5);
    for (size_t k = 0; k < out->n; k++) {
        cr_assert_str_eq(out->payloads[k], mixed[5 * k]);
        cr_assert_str_eq(out->json[k], mixed[5 * k]);
    }
}

/* The dead letters: i % 5 == 2, in order, once each, unchanged but for field "error". */
static void expect_dead_letters(const struct t_capture *dead)
{
    cr_assert_eq(dead->n, MIXED / 5);
    for (size_t k = 0; k < dead->n; k++) {
        char want[256];
        snprintf(want, sizeof want,
                 "{\"i\":%zu,\"level\":\"error\",\"msg\":\"" RUNAWAY "\",\"error\":\"" LIMIT_REASON
                 "\"}",
                 5 * k + 2);
        cr_assert_str_eq(dead->payloads[k], mixed[5 * k + 2]);
        cr_assert_str_eq(dead->json[k], want);
    }
}

static void expect_stats(struct sl_stage *st, uint64_t out, uint64_t errors, uint64_t dropped)
{
    struct sl_stage_stats s = t_stats(st);
    cr_assert_eq(s.events_in, MIXED);
    cr_assert_eq(s.events_out, out, "events_out %llu", (unsigned long long)s.events_out);
    cr_assert_eq(s.errors, errors, "errors %llu", (unsigned long long)s.errors);
    cr_assert_eq(s.dropped, dropped, "dropped %llu", (unsigned long long)s.dropped);
}

Test(filter, an_event_the_condition_cannot_evaluate_is_dropped_and_counted_by_default)
{
    struct filtered f = run_mixed(RUNAWAY_CONDITION, false);
    cr_assert_null(f.dead, "no dead_letter output without on_error: dead_letter");
    expect_kept(f.out);
    expect_stats(f.stage, MIXED / 5, MIXED / 5, MIXED / 5);
}

Test(filter, on_error_drop_counts_the_errors_as_dropped_and_nothing_else)
{
    struct filtered f = run_mixed(RUNAWAY_CONDITION "on_error: drop", false);
    expect_kept(f.out);
    expect_stats(f.stage, MIXED / 5, MIXED / 5, MIXED / 5);
}

Test(filter, an_event_the_condition_cannot_evaluate_goes_to_the_dead_letter_output)
{
    struct filtered f = run_mixed(RUNAWAY_CONDITION "on_error: dead_letter", false);
    expect_kept(f.out);
    expect_dead_letters(f.dead);
    expect_stats(f.stage, 2 * (MIXED / 5), MIXED / 5, 0);
}

/* on_error: fail, with the first runaway event in the fourth batch (i = 22; batches of 7
 * from 0): the run stops with the reason, and nothing of that batch or after it reaches
 * the sink or is acknowledged. */
static void expect_the_run_fails(const char *yaml)
{
    struct filtered f = build(yaml, 20, false);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), SL_ELIMIT, "%s", err.msg);
    cr_assert_str_eq(err.stage, "stage");
    cr_assert_str_eq(err.msg, LIMIT_REASON);
    char buf[256];
    cr_assert_str_eq(sl_error_format(&err, buf, sizeof buf), "stage 'stage': " LIMIT_REASON);
    int64_t acked = ((struct t_text *)sl_stage_state(f.src))->acked;
    cr_assert_leq(acked, 21, "acked %lld: past the failed batch", (long long)acked);
    cr_assert_eq(acked % BATCH, 0, "acked %lld: part of a batch", (long long)acked);
    cr_assert_leq(f.out->n, 5, "the sink got %zu events: more than the batches before", f.out->n);
    for (size_t k = 0; k < f.out->n; k++) cr_assert_str_eq(f.out->payloads[k], mixed[5 * k]);
}

Test(filter, on_error_fail_stops_the_run_with_the_reason_and_acknowledges_nothing_of_the_batch)
{
    expect_the_run_fails(RUNAWAY_CONDITION "on_error: fail");
}

Test(filter, on_error_fail_on_workers_stops_the_run_the_same_way)
{
    expect_the_run_fails(RUNAWAY_CONDITION "on_error: fail\nworkers: 2");
}

Test(filter, on_workers_dead_letters_come_out_in_input_order_exactly_once)
{
    struct filtered f = run_mixed(RUNAWAY_CONDITION "on_error: dead_letter\nworkers: 2", false);
    expect_kept(f.out);
    expect_dead_letters(f.dead);
    expect_stats(f.stage, 2 * (MIXED / 5), MIXED / 5, 0);
}

Test(filter, on_workers_dropped_errors_are_counted_exactly)
{
    struct filtered f = run_mixed(RUNAWAY_CONDITION "workers: 2", false);
    expect_kept(f.out);
    expect_stats(f.stage, MIXED / 5, MIXED / 5, MIXED / 5);
}

/* Two sinks read json's batches: the filter cannot compact them in place and copies what
 * it keeps; the outputs are the same as in place. */
Test(filter, a_shared_input_batch_gives_the_same_outputs_as_in_place)
{
    struct filtered f = run_mixed(RUNAWAY_CONDITION "on_error: dead_letter", true);
    expect_kept(f.out);
    expect_dead_letters(f.dead);
    expect_stats(f.stage, 2 * (MIXED / 5), MIXED / 5, 0);
    for (size_t i = 0; i < MIXED; i++)
        cr_assert_str_eq(f.other->json[i], mixed[i], "the shared events are left as they were");
}

/* On workers, a batch the other sink is done with by then is compacted in place: both
 * ways mix, with the same outputs. */
Test(filter, a_shared_input_batch_on_workers_gives_the_same_outputs)
{
    struct filtered f = run_mixed(RUNAWAY_CONDITION "on_error: dead_letter\nworkers: 2", true);
    expect_kept(f.out);
    expect_dead_letters(f.dead);
    expect_stats(f.stage, 2 * (MIXED / 5), MIXED / 5, 0);
}

Test(filter, a_shared_input_batch_with_on_error_drop_gives_the_same_outputs)
{
    struct filtered f = run_mixed(RUNAWAY_CONDITION, true);
    expect_kept(f.out);
    expect_stats(f.stage, MIXED / 5, MIXED / 5, MIXED / 5);
}

/* ---- a filter type of the test's own that fails on some events --------------------------- */

/* Filter "t_sevens" on lines holding numbers: keeps the even ones; cannot judge multiples
 * of 7: SL_EPARSE with the reason in `why`, except, with option `silent`, for the odd
 * ones (7, 21...), which answer the bare code and leave `why` as they found it. */
struct sevens {
    bool silent; /* option */
};

static int sevens_keep(struct sl_stage *s, const struct sl_event *ev, struct sl_error *why)
{
    const struct sevens *t = sl_stage_state(s);
    int64_t n = t_number(ev);
    if (n % 7 == 0 && t->silent && n % 2) return SL_EPARSE;
    if (n % 7 == 0) return sl_error_set(why, SL_EPARSE, "%lld is a multiple of 7", (long long)n);
    return n % 2 == 0;
}

static const struct sl_option sevens_options[] = {
    {"silent", SL_OPT_BOOL, "false", 0, offsetof(struct sevens, silent),
     "odd multiples of 7 fail without a reason"},
    {0},
};

static const struct sl_stage_type t_sevens = {
    .abi = SL_STAGE_ABI,
    .name = "t_sevens",
    .kind = SL_FILTER,
    .doc = "test filter failing on multiples of 7",
    .flags = SL_STAGE_PARALLEL,
    .state_size = sizeof(struct sevens),
    .options = sevens_options,
    .keep = sevens_keep,
};

enum { NUMBERS = 50 };
static char number_text[NUMBERS][8];
static const char *numbers[NUMBERS + 1];

/* Lines "1" to "50", raw (no fields), 5 per batch. */
static struct sl_stage *add_numbers(void)
{
    for (int i = 0; i < NUMBERS; i++) {
        snprintf(number_text[i], sizeof number_text[i], "%d", i + 1);
        numbers[i] = number_text[i];
    }
    struct sl_stage *src = t_add_lines(p, numbers);
    ((struct t_text *)sl_stage_state(src))->batch = 5;
    return src;
}

/* src -> stage (t_sevens, `yaml`) -> out, stage.dead_letter -> dead; runs it. */
static struct filtered run_sevens(const char *yaml)
{
    struct filtered f = {.src = add_numbers()};
    f.stage = t_stage(p, "stage", &t_sevens, yaml);
    struct sl_stage *out = t_stage(p, "out", &t_capture, NULL);
    struct sl_stage *dead = t_stage(p, "dead", &t_capture, NULL);
    t_connect_port(p, f.src, NULL, f.stage);
    t_connect_port(p, f.stage, NULL, out);
    t_connect_port(p, f.stage, "dead_letter", dead);
    t_run_ok(p);
    f.out = sl_stage_state(out);
    f.dead = sl_stage_state(dead);
    return f;
}

/* Kept: the even numbers but 14, 28, 42; dead: the seven multiples of 7, in order, the
 * raw line kept whole in field `message` beside the reason. */
static void expect_sevens(const struct filtered *f, bool silent)
{
    size_t k = 0;
    for (int n = 2; n <= NUMBERS; n += 2) {
        if (n % 7 == 0) continue;
        cr_assert_lt(k, f->out->n);
        cr_assert_eq(atoi(f->out->payloads[k++]), n);
    }
    cr_assert_eq(f->out->n, k);
    cr_assert_eq(f->dead->n, NUMBERS / 7);
    for (k = 0; k < f->dead->n; k++) {
        int n = 7 * (int)(k + 1);
        char reason[64], fields[128], json[160];
        if (silent && n % 2)
            snprintf(reason, sizeof reason, "%s", sl_strerror(SL_EPARSE));
        else
            snprintf(reason, sizeof reason, "%d is a multiple of 7", n);
        snprintf(fields, sizeof fields, "message=S:%d error=S:%s", n, reason);
        snprintf(json, sizeof json, "{\"message\":\"%d\",\"error\":\"%s\"}", n, reason);
        cr_assert_str_eq(f->dead->payloads[k], numbers[n - 1]);
        cr_assert_str_eq(f->dead->fields[k], fields);
        cr_assert_str_eq(f->dead->json[k], json);
    }
    struct sl_stage_stats s = t_stats(f->stage);
    cr_assert_eq(s.events_in, NUMBERS);
    cr_assert_eq(s.errors, NUMBERS / 7);
    cr_assert_eq(s.dropped, 0);
}

Test(filter, a_keep_that_fails_sends_the_raw_line_and_its_reason_to_the_dead_letter_output)
{
    struct filtered f = run_sevens("on_error: dead_letter");
    expect_sevens(&f, false);
}

Test(filter, a_keep_that_fails_without_a_reason_gets_the_text_of_its_code)
{
    struct filtered f = run_sevens("on_error: dead_letter\nsilent: true");
    expect_sevens(&f, true); /* 21 gets "malformed data", not what 14 said before it */
}

Test(filter, a_keep_that_fails_on_workers_sends_its_dead_letters_in_order)
{
    struct filtered f = run_sevens("on_error: dead_letter\nsilent: true\nworkers: 2");
    expect_sevens(&f, true);
}

/* on_error: fail on the first multiple of 7, in the second batch (6 to 10). */
static void expect_sevens_fail(const char *yaml, const char *reason)
{
    struct sl_stage *src = add_numbers();
    struct sl_stage *st = t_stage(p, "sevens", &t_sevens, yaml);
    struct sl_stage *out = t_stage(p, "out", &t_capture, NULL);
    t_connect_port(p, src, NULL, st);
    t_connect_port(p, st, NULL, out);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), SL_EPARSE, "%s", err.msg);
    cr_assert_str_eq(err.stage, "sevens");
    cr_assert_str_eq(err.msg, reason);
    int64_t acked = ((struct t_text *)sl_stage_state(src))->acked;
    cr_assert(acked == 0 || acked == 5, "acked %lld: past the failed batch", (long long)acked);
    struct t_capture *c = sl_stage_state(out);
    cr_assert_leq(c->n, 2, "the sink got %zu events: more than the first batch", c->n);
}

Test(filter, a_keep_that_fails_with_on_error_fail_stops_the_run_with_its_reason)
{
    expect_sevens_fail("on_error: fail", "7 is a multiple of 7");
}

Test(filter, a_keep_that_fails_silently_on_workers_stops_the_run_with_the_code_text)
{
    expect_sevens_fail("on_error: fail\nsilent: true\nworkers: 2", "malformed data");
}

/* The other limit: a string a function builds beyond the 8 KiB scratch. */
Test(filter, a_string_beyond_the_scratch_sends_the_event_to_the_dead_letter_output)
{
    static char big[10100];
    int n = snprintf(big, sizeof big, "{\"msg\":\"");
    memset(big + n, 't', 10000);
    snprintf(big + n + 10000, sizeof big - (size_t)n - 10000, "\"}");
    static const char *const wide[] = {"{\"msg\":\"timeout\"}", big, "{\"msg\":\"ok\"}", NULL};
    static const char *const paths[] = {"error", NULL};
    struct sl_stage *src = t_add_lines(p, wide);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, NULL);
    struct sl_stage *dead = t_stage(p, "dead", &t_capture, NULL);
    struct t_capture *d = sl_stage_state(dead);
    d->paths = paths;
    t_connect_port(p, src, NULL, json);
    struct sl_stage *st = t_stage(p, "stage", &sl_stage_filter,
                                  "condition: upper(msg) == \"TIMEOUT\"\non_error: dead_letter");
    t_connect_port(p, json, NULL, st);
    t_connect_port(p, st, "dead_letter", dead);
    struct sl_stage *out = t_stage(p, "out", &t_capture, NULL);
    t_connect_port(p, st, NULL, out);
    t_run_ok(p);
    struct t_capture *c = sl_stage_state(out);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->payloads[0], wide[0]);
    cr_assert_eq(d->n, 1);
    cr_assert_str_eq(d->payloads[0], big);
    cr_assert_str_eq(d->lookups[0], "error=S:the condition cannot be evaluated: a string built by "
                                    "the expression exceeds its 8 KiB scratch");
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
