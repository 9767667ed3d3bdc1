/* The option schema: typed values into the stage state, defaults, and errors that
 * point at the config. Also the registry that holds stage types. */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

struct all {
    const char *name;
    int64_t count;
    double ratio;
    bool follow;
    int64_t interval_ms;
    uint64_t max_bytes;
    int on_error;
    struct sl_list paths;
    const struct sl_config *labels;
    const struct sl_config *anything;
    const char *unset;
};

static int init_calls;

static int all_init(struct sl_stage *s, const struct sl_config *cfg, struct sl_error *err)
{
    (void)s, (void)cfg, (void)err;
    init_calls++;
    return 0;
}

static enum sl_poll never(struct sl_stage *s, struct sl_batch **out)
{
    (void)s, (void)out;
    return SL_DONE;
}

static const struct sl_option all_options[] = {
    {"name", SL_OPT_STRING, NULL, SL_REQUIRED, offsetof(struct all, name), "a name"},
    {"count", SL_OPT_INT, "10", 0, offsetof(struct all, count), "a count"},
    {"ratio", SL_OPT_FLOAT, "0.5", 0, offsetof(struct all, ratio), "a ratio"},
    {"follow", SL_OPT_BOOL, "false", 0, offsetof(struct all, follow), "follow"},
    {"interval", SL_OPT_DURATION, "1s", 0, offsetof(struct all, interval_ms), "how often"},
    {"max_bytes", SL_OPT_SIZE, "1MiB", 0, offsetof(struct all, max_bytes), "how much"},
    {"on_error", SL_OPT_ENUM, "drop", 0, offsetof(struct all, on_error), "what to do",
     "drop|dead_letter|fail"},
    {"paths", SL_OPT_LIST, "default.log", 0, offsetof(struct all, paths), "files"},
    {"labels", SL_OPT_MAP, NULL, 0, offsetof(struct all, labels), "labels"},
    {"anything", SL_OPT_ANY, NULL, 0, offsetof(struct all, anything), "anything"},
    {"unset", SL_OPT_STRING, NULL, 0, offsetof(struct all, unset), "left NULL"},
    {0},
};

static const struct sl_stage_type all_type = {
    .abi = SL_STAGE_ABI,
    .name = "all",
    .kind = SL_SOURCE,
    .doc = "every option type",
    .state_size = sizeof(struct all),
    .options = all_options,
    .init = all_init,
    .poll = never,
};

static struct sl_pipeline *p;

static void setup(void)
{
    p = sl_pipeline_new(NULL, NULL, NULL);
    init_calls = 0;
}

static void teardown(void)
{
    sl_pipeline_free(p);
}

TestSuite(options, .init = setup, .fini = teardown, .timeout = 10);

Test(options, typed_values_and_defaults_fill_the_state)
{
    struct sl_stage *s = t_add(p, "s", &all_type,
                               "type: all\nname: app\ncount: 0x20\nfollow: true\ninterval: 250ms\n"
                               "max_bytes: 64KiB\non_error: fail\npaths: [a.log, b.log]\n"
                               "labels: {env: prod}\nanything: [1, {x: 2}]\n");
    struct all *a = sl_stage_state(s);
    cr_assert_str_eq(a->name, "app");
    cr_assert_eq(a->count, 32);
    cr_assert_float_eq(a->ratio, 0.5, 1e-12);
    cr_assert(a->follow);
    cr_assert_eq(a->interval_ms, 250);
    cr_assert_eq(a->max_bytes, 65536);
    cr_assert_eq(a->on_error, 2);
    cr_assert_eq(a->paths.n, 2);
    cr_assert_str_eq(a->paths.items[1], "b.log");
    cr_assert_str_eq(sl_config_str(sl_config_get(a->labels, "env")), "prod");
    cr_assert_eq(sl_config_kind(a->anything), SL_CFG_LIST);
    cr_assert_null(a->unset);
    cr_assert_eq(init_calls, 1);
}

Test(options, a_scalar_list_option_is_a_list_of_one)
{
    struct sl_stage *s = t_add(p, "s", &all_type, "name: x\npaths: only.log\n");
    struct all *a = sl_stage_state(s);
    cr_assert_eq(a->paths.n, 1);
    cr_assert_str_eq(a->paths.items[0], "only.log");
    s = t_add(p, "d", &all_type, "name: x\n");
    a = sl_stage_state(s);
    cr_assert_eq(a->paths.n, 1);
    cr_assert_str_eq(a->paths.items[0], "default.log");
}

/* Adding a stage with `yaml` fails with `msg` at line:col; init ran `inits` times. */
static void add_fails(const char *yaml, int line, int col, const char *msg, int inits)
{
    struct sl_error err = {0};
    struct sl_config *cfg = t_config(yaml);
    cr_assert_null(sl_pipeline_add(p, "bad", &all_type, cfg, &err));
    sl_config_free(cfg);
    cr_assert_eq(err.code, SL_ECONFIG);
    cr_assert_str_eq(err.msg, msg);
    cr_assert_str_eq(err.stage, "bad");
    cr_assert_str_eq(err.file, "test.yaml");
    cr_assert_eq(err.line, line, "line %d (%s)", err.line, err.msg);
    cr_assert_eq(err.col, col, "col %d (%s)", err.col, err.msg);
    cr_assert_eq(init_calls, inits, "init ran %d times, expected %d", init_calls, inits);
    init_calls = 0;
}

/* A bad value: init must not run (the state is half made). */
static void assert_add_fails(const char *yaml, int line, int col, const char *msg)
{
    add_fails(yaml, line, col, msg, 0);
}

/* Unknown keys only: every option is filled, and init runs so that its own checks are
 * told in the same pass. */
Test(options, unknown_option_suggests_the_nearest)
{
    add_fails("name: x\nfolow: true\n", 2, 1,
              "unknown option 'folow' for type 'all' (did you mean 'follow'?)", 1);
    add_fails("name: x\nzzzzzz: 1\n", 2, 1, "unknown option 'zzzzzz' for type 'all'", 1);
}

Test(options, missing_required_option)
{
    assert_add_fails("count: 1\n", 1, 1, "missing option 'name' (type 'all' needs it: a name)");
}

Test(options, wrong_types_say_what_was_expected)
{
    assert_add_fails("name: x\ncount: many\n", 2, 8,
                     "option 'count' expects an integer; found 'many'");
    assert_add_fails("name: x\nfollow: maybe\n", 2, 9,
                     "option 'follow' expects true or false; found 'maybe'");
    assert_add_fails("name: x\ninterval: soon\n", 2, 11,
                     "option 'interval' expects a duration such as 250ms, 5s or 1h; found 'soon'");
    assert_add_fails("name: x\nmax_bytes: lots\n", 2, 12,
                     "option 'max_bytes' expects a size such as 512, 64KiB or 10MB; found 'lots'");
    assert_add_fails("name: x\non_error: explode\n", 2, 11,
                     "option 'on_error' must be one of drop, dead_letter, fail; found 'explode'");
    assert_add_fails("name: [x]\n", 1, 7, "option 'name' expects a string; found a list");
    assert_add_fails("name: x\nlabels: [a]\n", 2, 9,
                     "option 'labels' expects a mapping; found a list");
}

Test(registry, add_find_and_suggest)
{
    struct sl_registry *reg = t_registry();
    cr_assert_eq(sl_registry_count(reg), 5);
    cr_assert_eq(sl_registry_find(reg, "t_counter", SL_SOURCE), &t_counter);
    cr_assert_null(sl_registry_find(reg, "t_counter", SL_SINK));
    cr_assert_eq(sl_registry_find(reg, "t_even", SL_TRANSFORM), &t_even, "filters are transforms");
    cr_assert_eq(sl_registry_find(reg, "t_pass", -1), &t_pass);
    cr_assert_str_eq(sl_registry_suggest(reg, "t_colect"), "t_collect");
    cr_assert_null(sl_registry_suggest(reg, "kafka"));
    struct sl_error err = {0};
    cr_assert_eq(sl_registry_add(reg, &t_pass, &err), SL_EEXIST);
    cr_assert_str_eq(err.msg, "stage type 't_pass' is registered already");
    sl_registry_free(reg);
}

Test(registry, malformed_types_are_refused)
{
    struct sl_registry *reg = sl_registry_new();
    struct sl_error err = {0};
    struct sl_stage_type t = {.abi = 99, .name = "x", .kind = SL_SOURCE, .poll = never};
    cr_assert_eq(sl_registry_add(reg, &t, &err), SL_EINVAL);
    cr_assert_str_eq(err.msg,
                     "stage type 'x' was built for stage ABI 99; libsluice " SL_VERSION_STRING
                     " reads ABI 1 to 2: use a newer libsluice");
    t.abi = SL_STAGE_ABI;
    t.poll = NULL;
    cr_assert_eq(sl_registry_add(reg, &t, &err), SL_EINVAL);
    cr_assert_str_eq(err.msg, "stage type 'x' lacks the callback of its kind (a transform has "
                              "map or map_async, not both)");
    static const struct sl_option undocumented[] = {{"a", SL_OPT_INT, "1", 0, 0, ""}, {0}};
    t.poll = never;
    t.options = undocumented;
    cr_assert_eq(sl_registry_add(reg, &t, &err), SL_EINVAL);
    cr_assert_str_eq(err.msg, "stage type 'x': option 'a' needs a doc line");
    sl_registry_free(reg);
}

/* ---- tables are checked when a type is registered ---------------------------------- */

struct small {
    int64_t n;
    bool flag;
};

/* Registers a source type with `opts` over a `struct small` state; returns the error. */
static const char *refusal(const struct sl_option *opts, size_t state_size)
{
    static struct sl_error err;
    memset(&err, 0, sizeof err);
    struct sl_registry *reg = sl_registry_new();
    struct sl_stage_type t = {.abi = SL_STAGE_ABI,
                              .name = "x",
                              .kind = SL_SOURCE,
                              .poll = never,
                              .state_size = state_size,
                              .options = opts};
    int rc = sl_registry_add(reg, &t, &err);
    sl_registry_free(reg);
    return rc == SL_EINVAL ? err.msg : "accepted";
}

Test(registry, an_option_written_outside_the_state_is_refused)
{
    static const struct sl_option past_end[] = {
        {"n", SL_OPT_INT, "1", 0, sizeof(struct small), "beyond the state"}, {0}};
    cr_assert_str_eq(refusal(past_end, sizeof(struct small)),
                     "stage type 'x': option 'n' is written at offset 16 (8 bytes), outside the "
                     "16-byte state or misaligned");
    static const struct sl_option straddles[] = {
        {"n", SL_OPT_INT, "1", 0, 8, "the last 8 bytes hold a bool and padding"}, {0}};
    cr_assert_str_eq(refusal(straddles, 12), "stage type 'x': option 'n' is written at offset 8 "
                                             "(8 bytes), outside the 12-byte state or misaligned");
    static const struct sl_option misaligned[] = {
        {"n", SL_OPT_INT, "1", 0, 4, "not on an 8-byte boundary"}, {0}};
    cr_assert_str_eq(refusal(misaligned, 16), "stage type 'x': option 'n' is written at offset 4 "
                                              "(8 bytes), outside the 16-byte state or misaligned");
    static const struct sl_option fits[] = {
        {"n", SL_OPT_INT, "1", 0, offsetof(struct small, n), "a number"},
        {"flag", SL_OPT_BOOL, "true", 0, offsetof(struct small, flag), "a flag"},
        {0}};
    cr_assert_str_eq(refusal(fits, sizeof(struct small)), "accepted");
}

Test(registry, defaults_ranges_and_names_must_hold)
{
    static const struct sl_option bad_default[] = {{"n", SL_OPT_INT, "ten", 0, 0, "a number"}, {0}};
    cr_assert_str_eq(refusal(bad_default, 16),
                     "stage type 'x': option 'n': default 'ten' is not a value of its type");
    static const struct sl_option bad_choice[] = {{"n", SL_OPT_ENUM, "c", 0, 0, "a choice", "a|b"},
                                                  {0}};
    cr_assert_str_eq(refusal(bad_choice, 16),
                     "stage type 'x': option 'n': default 'c' is not one of its choices");
    static const struct sl_option bad_range[] = {
        {"n", SL_OPT_INT, "1", 0, 0, "a number", NULL, "9..1"}, {0}};
    cr_assert_str_eq(refusal(bad_range, 16), "stage type 'x': option 'n': range '9..1' is not "
                                             "min..max of a numeric option");
    static const struct sl_option twice[] = {
        {"n", SL_OPT_INT, "1", 0, 0, "a number"}, {"n", SL_OPT_INT, "2", 0, 0, "again"}, {0}};
    cr_assert_str_eq(refusal(twice, 16), "stage type 'x': option 'n' is declared twice");
    static const struct sl_option runtime_key[] = {
        {"inputs", SL_OPT_STRING, NULL, 0, 0, "the runtime's"}, {0}};
    cr_assert_str_eq(refusal(runtime_key, 16),
                     "stage type 'x': option 'inputs' is a key the runtime reads itself");
    static const struct sl_option no_type[] = {{"n", 0, NULL, 0, 0, "untyped"}, {0}};
    cr_assert_str_eq(refusal(no_type, 16), "stage type 'x': option 'n' has no known type (0)");
}

/* A sink's table may not reuse the runtime's `retry` keys. */
Test(registry, a_sink_option_may_not_shadow_retry)
{
    static const struct sl_option shadow[] = {{"retry.max", SL_OPT_DURATION, "1s", 0, 0, "mine"},
                                              {0}};
    struct sl_registry *reg = sl_registry_new();
    struct sl_error err = {0};
    struct sl_stage_type t = {.abi = SL_STAGE_ABI,
                              .name = "s",
                              .kind = SL_SINK,
                              .write = t_collect.write,
                              .state_size = 16,
                              .options = shadow};
    cr_assert_eq(sl_registry_add(reg, &t, &err), SL_EINVAL);
    cr_assert_str_eq(err.msg,
                     "stage type 's': option 'retry.max' is a key the runtime reads itself");
    sl_registry_free(reg);
}

/* No limit on the number of options: the 200th is filled and suggested like the first. */
struct many {
    int64_t v[200];
};

Test(options, a_table_of_200_options_is_read_whole)
{
    static struct sl_option opts[201];
    static char names[200][8];
    for (int i = 0; i < 200; i++) {
        snprintf(names[i], sizeof names[i], "opt%03d", i);
        opts[i] = (struct sl_option){names[i],
                                     SL_OPT_INT,
                                     "0",
                                     0,
                                     offsetof(struct many, v) + (size_t)i * sizeof(int64_t),
                                     "one of many"};
    }
    static struct sl_stage_type t = {.abi = SL_STAGE_ABI, /* outlives the test: teardown */
                                     .name = "many",
                                     .kind = SL_SOURCE,
                                     .poll = never,
                                     .state_size = sizeof(struct many),
                                     .options = opts};
    struct sl_stage *s = t_add(p, "m", &t, "opt199: 7\nopt000: 3\n");
    struct many *m = sl_stage_state(s);
    cr_assert_eq(m->v[199], 7);
    cr_assert_eq(m->v[0], 3);
    struct sl_error err = {0};
    struct sl_config *cfg = t_config("opt1999: 1\n");
    cr_assert_null(sl_pipeline_add(p, "m2", &t, cfg, &err));
    sl_config_free(cfg);
    cr_assert_str_eq(err.msg, "unknown option 'opt1999' for type 'many' (did you mean 'opt199'?)");
}

/* ---- the pipeline: section is a schema too ------------------------------------------ */

/* Parses every default of sl_pipeline_settings() into a struct and compares it with
 * sl_pipeline_options_init(): `sluice describe pipeline` tells the truth. */
Test(settings, the_schema_defaults_are_the_runtime_defaults)
{
    struct sl_pipeline_options want, got;
    sl_pipeline_options_init(&want);
    memset(&got, 0, sizeof got);
    size_t n = 0;
    for (const struct sl_option *o = sl_pipeline_settings(); o->name; o++, n++) {
        char *dst = (char *)&got + o->offset;
        if (o->type == SL_OPT_STRING) {
            memcpy(dst, &o->def, sizeof o->def);
            continue;
        }
        if (o->type == SL_OPT_BOOL) {
            *(bool *)dst = strcmp(o->def, "true") == 0;
            continue;
        }
        long long ll;
        unsigned long long ull;
        if (o->type == SL_OPT_DURATION) {
            cr_assert_eq(sl_parse_duration(o->def, &ll), 0);
            *(int64_t *)dst = ll;
        } else if (o->type == SL_OPT_SIZE) {
            cr_assert_eq(sl_parse_size(o->def, &ull), 0);
            *(uint64_t *)dst = ull;
        } else {
            cr_assert_eq(o->type, SL_OPT_INT, "%s", o->name);
            *(int64_t *)dst = strtoll(o->def, NULL, 10);
        }
    }
    cr_assert_eq(n, 12);
    cr_assert_eq(got.batch_max_events, want.batch_max_events);
    cr_assert_eq(got.batch_max_bytes, want.batch_max_bytes);
    cr_assert_eq(got.batch_timeout_ms, want.batch_timeout_ms);
    cr_assert_eq(got.queue_max_batches, want.queue_max_batches);
    cr_assert_eq(got.queue_max_bytes, want.queue_max_bytes);
    cr_assert_str_eq(got.data_dir, want.data_dir);
    cr_assert_eq(got.executor_threads, want.executor_threads);
    cr_assert_eq(got.shutdown_timeout_ms, want.shutdown_timeout_ms);
    cr_assert_eq(got.api_address, want.api_address);
    cr_assert_eq(got.api_bearer, want.api_bearer);
    cr_assert_eq(got.api_insecure, want.api_insecure);
    cr_assert_eq(got.api_tap, want.api_tap);
}

static struct sl_error settings_error(const char *yaml)
{
    struct sl_config *c = t_config(yaml);
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_options_from_config(&o, c, &err), SL_ECONFIG, "%s", yaml);
    sl_config_free(c);
    return err;
}

Test(settings, a_value_out_of_range_is_an_error_not_a_clamp)
{
    struct sl_error e = settings_error("pipeline:\n  batch: {max_events: 2000000}\n");
    cr_assert_str_eq(e.msg, "pipeline setting 'batch.max_events' must be from 1 to 1000000; "
                            "found '2000000'");
    cr_assert_eq(e.line, 2);
    cr_assert_eq(e.col, 23);
    e = settings_error("pipeline:\n  queue.max_batches: 0\n");
    cr_assert_str_eq(e.msg,
                     "pipeline setting 'queue.max_batches' must be from 1 to 65536; found '0'");
    cr_assert_eq(e.col, 22);
    e = settings_error("pipeline:\n  shutdown_timeout: later\n");
    cr_assert_str_eq(e.msg, "pipeline setting 'shutdown_timeout' expects a duration such as "
                            "250ms, 5s or 1h; found 'later'");
    e = settings_error("pipeline:\n  batch: 5\n");
    cr_assert_str_eq(e.msg, "pipeline setting 'batch' expects a mapping of its settings");
}

Test(settings, dotted_and_nested_spellings_are_one_setting)
{
    struct sl_config *c = t_config(
        "pipeline:\n  executor_threads: 3\n  shutdown_timeout: 2s\n  batch.timeout: 5ms\n");
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_options_from_config(&o, c, &err), 0, "%s", err.msg);
    cr_assert_eq(o.executor_threads, 3);
    cr_assert_eq(o.shutdown_timeout_ms, 2000);
    cr_assert_eq(o.batch_timeout_ms, 5);
    cr_assert_eq(o.batch_max_events, 1024, "unset settings keep their values");
    sl_config_free(c);
}

Test(settings, a_program_cannot_pass_values_the_config_would_refuse)
{
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.queue_max_batches = 0;
    struct sl_error err = {0};
    cr_assert_null(sl_pipeline_new(NULL, &o, &err));
    cr_assert_str_eq(err.msg, "pipeline options: queue_max_batches must be from 1 to 65536");
}
