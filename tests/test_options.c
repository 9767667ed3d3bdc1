/* The option schema: typed values into the stage state, defaults, and errors that
 * point at the config. Also the registry that holds stage types. */
#include <criterion/criterion.h>
#include <stddef.h>
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

static void assert_add_fails(const char *yaml, int line, int col, const char *msg)
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
    cr_assert_eq(init_calls, 0, "init must not run after an option error");
}

Test(options, unknown_option_suggests_the_nearest)
{
    assert_add_fails("name: x\nfolow: true\n", 2, 1,
                     "unknown option 'folow' for type 'all' (did you mean 'follow'?)");
    assert_add_fails("name: x\nzzzzzz: 1\n", 2, 1, "unknown option 'zzzzzz' for type 'all'");
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
    cr_assert_str_eq(err.msg, "stage type 'x': abi 99, this library speaks 1");
    t.abi = SL_STAGE_ABI;
    t.poll = NULL;
    cr_assert_eq(sl_registry_add(reg, &t, &err), SL_EINVAL);
    cr_assert_str_eq(err.msg, "stage type 'x' lacks the callback of its kind");
    static const struct sl_option undocumented[] = {{"a", SL_OPT_INT, "1", 0, 0, ""}, {0}};
    t.poll = never;
    t.options = undocumented;
    cr_assert_eq(sl_registry_add(reg, &t, &err), SL_EINVAL);
    cr_assert_str_eq(err.msg, "stage type 'x': option 'a' needs a type and doc");
    sl_registry_free(reg);
}
