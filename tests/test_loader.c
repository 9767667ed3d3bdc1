/* Loading configs (issue 3): every problem of a config is reported at once, with its
 * position, cycles are named stage by stage, unreachable stages are warned about,
 * `buffer:` sizes input edges, and on_stage_done tells when a source is through. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sluice/builtins.h>

#include "helpers.h"
#include "config/internal.h"

static struct sl_pipeline *p;
static struct sl_registry *reg;
static char got[4096]; /* every report, one "level line:col [stage] msg" per line */

static void setup(void)
{
    p = sl_pipeline_new(NULL, NULL, NULL);
    reg = t_registry();
    got[0] = '\0';
}

static void teardown(void)
{
    sl_pipeline_free(p);
    sl_registry_free(reg);
}

TestSuite(loader, .init = setup, .fini = teardown, .timeout = 10);

static void record(void *arg, enum sl_log_level level, const struct sl_error *e)
{
    (void)arg;
    size_t n = strlen(got);
    snprintf(got + n, sizeof got - n, "%s %d:%d [%s] %s\n", level == SL_LOG_WARN ? "W" : "E",
             e->line, e->col, e->stage, e->msg);
}

static int load(const char *yaml)
{
    struct sl_config *c = t_config(yaml);
    int rc = sl_pipeline_load_all(p, reg, c, record, NULL);
    sl_config_free(c);
    return rc;
}

Test(loader, every_error_is_reported_not_only_the_first)
{
    int rc = load("sources:\n"
                  "  src: {type: t_countr}\n"
                  "  src2: {type: t_counter, count: ten, cout: 5}\n"
                  "sinks:\n"
                  "  out: {type: t_collect, inputs: [src, nothing]}\n"
                  "  out2: {type: t_collect, inputs: [src2, sc]}\n");
    cr_assert_eq(rc, SL_ECONFIG);
    cr_assert_str_eq(got, "E 2:15 [src] unknown source type 't_countr' (did you mean "
                          "'t_counter'?)\n"
                          "E 3:39 [src2] unknown option 'cout' for type 't_counter' (did you "
                          "mean 'count'?)\n"
                          "E 3:34 [src2] option 'count' expects an integer; found 'ten'\n"
                          "E 5:40 [out] input 'nothing' names no stage\n"
                          "E 6:42 [out2] input 'sc' names no stage (did you mean 'src'?)\n");
}

/* An unknown key leaves every option filled: the type's init() still runs, so that its
 * own checks (aggregate's metric expressions) are told in the same pass; a bad value
 * stops init (its state would be half made). */
Test(loader, init_problems_come_with_unknown_keys_in_one_pass)
{
    cr_assert_eq(sl_registry_add(reg, &sl_stage_aggregate, NULL), 0);
    int rc = load("sources:\n  src: {type: t_counter}\n"
                  "transforms:\n"
                  "  a: {type: aggregate, inputs: [src], nope: 1, metrics: {n: 'sum(x +)'}}\n"
                  "  b: {type: aggregate, inputs: [src], window: soon, metrics: {n: 'sum(x +)'}}\n"
                  "sinks:\n  out: {type: t_collect, inputs: [a, b]}\n");
    cr_assert_eq(rc, SL_ECONFIG);
    cr_assert_str_eq(got, "E 4:39 [a] unknown option 'nope' for type 'aggregate' (did you mean "
                          "'type'?)\n"
                          "E 4:69 [a] metric 'n': expected an operand after '+', found end of "
                          "expression\n"
                          "E 5:47 [b] option 'window' expects a duration such as 250ms, 5s or "
                          "1h; found 'soon'\n");
}

/* Fields no stage before sets, where the stages before say what they set: warnings
 * (a typo in a template or a condition), not errors; after parse_json (any field) none. */
Test(loader, a_field_no_stage_before_sets_is_a_warning)
{
    cr_assert_eq(sl_registry_add(reg, &sl_stage_generate, NULL), 0);
    cr_assert_eq(sl_registry_add(reg, &sl_stage_parse_csv, NULL), 0);
    cr_assert_eq(sl_registry_add(reg, &sl_stage_parse_json, NULL), 0);
    cr_assert_eq(sl_registry_add(reg, &sl_stage_aggregate, NULL), 0);
    cr_assert_eq(sl_registry_add(reg, &sl_stage_filter, NULL), 0);
    cr_assert_eq(sl_registry_add(reg, &sl_stage_file_sink, NULL), 0);
    int rc = load("sources:\n  src: {type: generate}\n"
                  "transforms:\n"
                  "  csv: {type: parse_csv, inputs: [src], columns: [host, status]}\n"
                  "  agg: {type: aggregate, inputs: [csv], group_by: [host], metrics: {n: count}}\n"
                  "  few: {type: filter, inputs: [agg], condition: 'n > 2 && hots != \"x\"'}\n"
                  "  json: {type: parse_json, inputs: [src]}\n"
                  "sinks:\n"
                  "  a: {type: file, inputs: [csv], path: 'out/{{ floor(statsu / 100) }}.log'}\n"
                  "  b: {type: file, inputs: [few], path: 'out/{{ host }}-{{ window_start }}'}\n"
                  "  c: {type: file, inputs: [json], path: 'out/{{ anything }}'}\n");
    cr_assert_eq(rc, 0, "warnings only: %s", got);
    cr_assert_str_eq(got, "W 6:49 [few] option 'condition': no stage before 'few' sets field "
                          "'hots' (they set: host, window_start, window_end, n)\n"
                          "W 9:40 [a] option 'path': no stage before 'a' sets field 'statsu' "
                          "(they set: host, status)\n");
}

/* Errors found after the parse point at the file as written, ${...} expanded or not
 * (issue 15): a node made by an expansion at its ${, later ones at their own column. */
Test(loader, errors_after_an_expansion_keep_the_original_columns)
{
    unsetenv("SL_TEST_T");
    unsetenv("SL_TEST_TEN");
    unsetenv("SL_TEST_IN");
    int rc = load("sources:\n"
                  "  src2: {type: ${SL_TEST_T:-t_counter}, count: ${SL_TEST_TEN:-ten}, cout: 5}\n"
                  "sinks:\n"
                  "  out: {type: t_collect, inputs: [${SL_TEST_IN:-src2}, nothing]}\n");
    cr_assert_eq(rc, SL_ECONFIG);
    cr_assert_str_eq(got, "E 2:69 [src2] unknown option 'cout' for type 't_counter' (did you "
                          "mean 'count'?)\n"
                          "E 2:48 [src2] option 'count' expects an integer; found 'ten'\n"
                          "E 4:56 [out] input 'nothing' names no stage\n");
}

Test(loader, cycle_names_the_stages_on_it_in_order)
{
    int rc = load("sources:\n  src: {type: t_counter}\n"
                  "transforms:\n"
                  "  a: {type: t_pass, inputs: [src, c]}\n"
                  "  b: {type: t_pass, inputs: [a]}\n"
                  "  c: {type: t_pass, inputs: [b]}\n"
                  "sinks:\n  out: {type: t_collect, inputs: [c]}\n");
    cr_assert_eq(rc, SL_ECONFIG);
    cr_assert_str_eq(got, "E 4:3 [] the stages form a cycle: a -> b -> c -> a\n");
}

Test(loader, stage_no_sink_reaches_is_a_warning)
{
    int rc = load("sources:\n  src: {type: t_counter}\n  lost: {type: t_counter}\n"
                  "transforms:\n  dead: {type: t_pass, inputs: [lost]}\n"
                  "sinks:\n  out: {type: t_collect, inputs: [src]}\n");
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(got, "W 3:3 [lost] no sink reads from this stage: its events are discarded\n"
                          "W 5:3 [dead] no sink reads from this stage: its events are discarded\n");
}

Test(loader, a_named_output_nothing_reads_is_a_warning)
{
    int rc = load("sources:\n  src: {type: t_counter}\n"
                  "transforms:\n  win: {type: t_window, inputs: [src]}\n"
                  "sinks:\n  out: {type: t_collect, inputs: [win]}\n");
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(got, "W 4:3 [win] nothing reads output 'win.odd': events sent there are "
                          "dropped (counted)\n");
}

Test(loader, duplicate_names_across_sections)
{
    int rc = load("sources:\n  x: {type: t_counter}\n"
                  "sinks:\n  x: {type: t_collect, inputs: [x]}\n");
    cr_assert_eq(rc, SL_ECONFIG);
    cr_assert_str_eq(got, "E 4:3 [] stage name 'x' is used twice (first at line 2)\n");
}

Test(loader, sink_without_inputs_and_missing_sections)
{
    int rc = load("sinks:\n  out:\n    type: t_collect\n");
    cr_assert_eq(rc, SL_ECONFIG);
    cr_assert_str_eq(got, "E 1:1 [] no 'sources:' section: a pipeline needs at least one source\n"
                          "E 2:3 [out] a sink needs 'inputs': the stages it reads from\n");
}

Test(loader, empty_config)
{
    cr_assert_eq(load(""), SL_ECONFIG);
    cr_assert_str_eq(got, "E 1:1 [] the config is empty: expected the sections 'sources:' and "
                          "'sinks:' (and 'transforms:')\n");
}

Test(loader, enum_and_buffer_errors_suggest)
{
    int rc = load("sources:\n  src: {type: t_counter}\n"
                  "sinks:\n  out: {type: t_collect, inputs: src, buffer: {max_batchs: 2}}\n");
    cr_assert_eq(rc, SL_ECONFIG);
    cr_assert_str_eq(got, "E 4:48 [out] unknown option 'buffer.max_batchs' for type 't_collect' "
                          "(did you mean 'buffer.max_batches'?)\n");
}

Test(loader, first_error_through_sl_pipeline_load)
{
    struct sl_config *c = t_config("sources:\n  src: {type: t_counter, batch: x}\n");
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_load(p, reg, c, &err), SL_ECONFIG);
    cr_assert_str_eq(err.msg, "no 'sinks:' section: a pipeline needs at least one sink");
    sl_config_free(c);
}

static int done_calls;
static uint64_t acked_when_done;

static void on_done(void *arg, struct sl_stage *s)
{
    (void)arg;
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(s, &st);
    if (strcmp(sl_stage_name(s), "src") == 0) acked_when_done = st.acked;
    done_calls++;
}

Test(loader, buffer_sets_edge_capacity_and_stage_done_is_told_after_acks)
{
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.on_stage_done = on_done;
    sl_pipeline_free(p);
    p = sl_pipeline_new(NULL, &o, NULL);
    cr_assert_eq(load("sources:\n  src: {type: t_counter, count: 500, batch: 10}\n"
                      "sinks:\n  out:\n    type: t_collect\n    inputs: [src]\n    delay_ms: 1\n"
                      "    buffer: {max_batches: 2, max_bytes: 1MiB}\n"),
                 0, "%s", got);
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(sl_pipeline_find(p, "out"), &st);
    cr_assert_eq(st.queue_capacity, 2);
    cr_assert_eq(st.queue_max_bytes, 1u << 20);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "%s", err.msg);
    cr_assert_eq(done_calls, 2);
    cr_assert_eq(acked_when_done, 500);
    /* Two queued batches, one held by the sink, one being made, one being acked. */
    cr_assert_leq(sl_pipeline_peak_batches(p), 5);
}

Test(loader, input_accessors_walk_edges_back)
{
    cr_assert_eq(load("sources:\n  a: {type: t_counter}\n  b: {type: t_counter}\n"
                      "transforms:\n  w: {type: t_window, inputs: [a]}\n"
                      "sinks:\n  out: {type: t_collect, inputs: [b, w.odd]}\n"),
                 0, "%s", got);
    struct sl_stage *out = sl_pipeline_find(p, "out");
    const char *port = NULL;
    cr_assert_eq(sl_stage_input_count(out), 2);
    cr_assert_str_eq(sl_stage_name(sl_stage_input_at(out, 0, &port)), "b");
    cr_assert_str_eq(port, "");
    cr_assert_str_eq(sl_stage_name(sl_stage_input_at(out, 1, &port)), "w");
    cr_assert_str_eq(port, "odd");
    cr_assert_null(sl_stage_input_at(out, 2, NULL));
}

Test(loader, unknown_pipeline_setting_suggests)
{
    struct sl_config *c = t_config("pipeline:\n  batch:\n    max_event: 10\n");
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_options_from_config(&o, c, &err), SL_ECONFIG);
    cr_assert_str_eq(
        err.msg, "unknown pipeline setting 'batch.max_event' (did you mean 'batch.max_events'?)");
    cr_assert_eq(err.line, 3);
    sl_config_free(c);
}

Test(loader, pipeline_settings_reach_the_stages)
{
    struct sl_config *c = t_config("pipeline:\n  batch: {max_events: 64, max_bytes: 4KiB, "
                                   "timeout: 250ms}\n  queue: {max_batches: 3, max_bytes: "
                                   "1MiB}\n  data_dir: /var/lib/x\n");
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_options_from_config(&o, c, &err), 0, "%s", err.msg);
    cr_assert_eq(o.batch_max_events, 64);
    cr_assert_eq(o.batch_max_bytes, 4096);
    cr_assert_eq(o.queue_max_batches, 3);
    cr_assert_eq(o.queue_max_bytes, 1 << 20);
    struct sl_pipeline *q = sl_pipeline_new(NULL, &o, &err);
    sl_config_free(c); /* the pipeline copied what it keeps */
    struct sl_stage *s = t_add(q, "src", &t_counter, NULL);
    cr_assert_eq(sl_stage_batch_timeout_ms(s), 250);
    cr_assert_eq(sl_stage_batch_max_events(s), 64);
    cr_assert_str_eq(sl_stage_data_dir(s), "/var/lib/x");
    struct sl_batch *b = sl_batch_new(s);
    for (int i = 0; i < 63; i++) sl_batch_append(b);
    cr_assert_not(sl_batch_full(b));
    sl_batch_append(b);
    cr_assert(sl_batch_full(b), "64 events fill a batch");
    sl_batch_unref(b);
    sl_pipeline_free(q);
}

/* ---- data_dir is held by one run ------------------------------------------------------ */

/* t_collect, asking for data_dir when it starts. */
static struct sl_stage_type t_stateful;

static int keeps_state_start(struct sl_stage *s, struct sl_error *err)
{
    cr_assert_not_null(sl_stage_data_dir(s)); /* where its state would go */
    return t_collect.start ? t_collect.start(s, err) : 0;
}

static struct sl_pipeline *stateful(const char *data_dir, bool with_state)
{
    t_stateful = t_collect;
    t_stateful.name = "t_stateful";
    t_stateful.start = keeps_state_start;
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.data_dir = data_dir;
    struct sl_error err = {0};
    struct sl_pipeline *q = sl_pipeline_new(NULL, &o, &err);
    struct sl_stage *src = t_add(q, "src", &t_counter, "count: 1");
    struct sl_stage *out = t_add(q, "out", with_state ? &t_stateful : &t_collect, NULL);
    t_connect(q, src, out);
    return q;
}

Test(loader, a_second_run_on_one_data_dir_is_refused_naming_the_first)
{
    char dir[] = "/tmp/sluice-lock-XXXXXX", lock[64];
    cr_assert_not_null(mkdtemp(dir));
    struct sl_pipeline *first = stateful(dir, true), *second = stateful(dir, true);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_start(first, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_pipeline_start(second, &err), SL_EBUSY);
    char want[400];
    snprintf(want, sizeof want,
             "data_dir '%s' is in use by another run (pid %ld, %s/.sluice.lock): two runs on one "
             "data_dir would both deliver everything; give each its own",
             dir, (long)getpid(), dir);
    cr_assert_str_eq(err.msg, want);
    struct sl_pipeline *stateless = stateful(dir, false); /* keeps nothing there: runs */
    cr_assert_eq(sl_pipeline_run(stateless, &err), 0, "%s", err.msg);
    sl_pipeline_free(stateless);
    sl_pipeline_free(second);
    sl_pipeline_free(first); /* the lock goes with the run */
    struct sl_pipeline *third = stateful(dir, true);
    cr_assert_eq(sl_pipeline_run(third, &err), 0, "third: %s", err.msg);
    sl_pipeline_free(third);
    snprintf(lock, sizeof lock, "%s/.sluice.lock", dir);
    unlink(lock);
    rmdir(dir);
}
