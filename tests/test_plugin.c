/* Plugins: the example plugin and one built for SL_STAGE_ABI 1 load and run; every way a
 * plugin is refused names the file and says why, and leaves nothing of it registered.
 * Built like a user's program: the shared library and the public headers only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <sluice/builtins.h>
#include <sluice/plugin.h>
#include <sluice/sluice.h>

static char path_buf[4096];

/* The path of a plugin built into build/<dir>/lib<name>.so. */
static const char *plugin(const char *dir, const char *name)
{
    const char *root = getenv("SLUICE_BUILD_ROOT");
    cr_assert(root, "SLUICE_BUILD_ROOT is not set");
    snprintf(path_buf, sizeof path_buf, "%s/%s/lib%s.so", root, dir, name);
    return path_buf;
}

static struct sl_registry *builtins(void)
{
    struct sl_registry *reg = sl_registry_new();
    cr_assert(reg);
    cr_assert_eq(sl_registry_add_builtins(reg, NULL), 0);
    cr_assert_eq(sl_registry_count(reg), sl_builtin_count());
    return reg;
}

/* ---- a sink that keeps the payloads it gets -------------------------------------------- */

struct kept {
    char text[256]; /* payloads, one per line */
};

static enum sl_poll keep_write(struct sl_stage *stage, struct sl_batch *b)
{
    struct kept *k = sl_stage_state(stage);
    for (size_t i = 0; i < sl_batch_count(b); i++) {
        size_t len, used = strlen(k->text);
        const char *p = sl_event_payload(sl_batch_event_const(b, i), &len);
        snprintf(k->text + used, sizeof k->text - used, "%.*s\n", (int)len, p);
    }
    sl_ack(b);
    return SL_READY;
}

static const struct sl_stage_type kept_sink = {
    .abi = SL_STAGE_ABI,
    .name = "t_kept",
    .kind = SL_SINK,
    .doc = "keeps payloads for the test",
    .state_size = sizeof(struct kept),
    .write = keep_write,
};

/* Runs `yaml` with the types of `reg`; returns what the sink kept (static). */
static const char *run(struct sl_registry *reg, const char *yaml)
{
    static char out[256];
    struct sl_error err = {0};
    struct sl_config *cfg = sl_config_parse(yaml, strlen(yaml), "test.yaml", &err);
    cr_assert(cfg, "%s", err.msg);
    cr_assert_eq(sl_registry_load_plugins(reg, cfg, &err), 0, "%s", err.msg);
    struct sl_pipeline *p = sl_pipeline_new(NULL, NULL, &err);
    cr_assert(p);
    cr_assert_eq(sl_pipeline_load(p, reg, cfg, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "%s", err.msg);
    snprintf(out, sizeof out, "%s",
             ((struct kept *)sl_stage_state(sl_pipeline_find(p, "out")))->text);
    sl_pipeline_free(p);
    sl_config_free(cfg);
    return out;
}

Test(plugin, example_mask_loads_and_runs)
{
    struct sl_registry *reg = builtins();
    cr_assert_eq(sl_registry_add(reg, &kept_sink, NULL), 0);
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "plugins: [%s]\n"
             "sources: {in: {type: generate, lines: ['pin 1234', 'no digits'], count: 2}}\n"
             "transforms: {m: {type: mask, inputs: [in]}}\n"
             "sinks: {out: {type: t_kept, inputs: [m]}}\n",
             plugin("examples/plugin", "mask"));
    cr_assert_str_eq(run(reg, yaml), "pin ####\nno digits\n");
    const struct sl_stage_type *t = sl_registry_find(reg, "mask", -1);
    cr_assert(t);
    cr_assert_eq(t->kind, SL_TRANSFORM);
    /* loading the same object again is a no-op, not a clash */
    cr_assert_eq(sl_registry_load_plugin(reg, plugin("examples/plugin", "mask"), NULL), 0);
    cr_assert_eq(sl_registry_count(reg), sl_builtin_count() + 2);
    sl_registry_free(reg);
}

Test(plugin, abi_1_plugin_loads_and_its_filter_runs)
{
    struct sl_registry *reg = builtins();
    cr_assert_eq(sl_registry_add(reg, &kept_sink, NULL), 0);
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "plugins: %s\n"
             "sources: {in: {type: generate, lines: ['1','2','3','4','5','6','7'], count: 7}}\n"
             "transforms: {three: {type: v1_multiple, inputs: [in], of: 3}}\n"
             "sinks: {out: {type: t_kept, inputs: [three]}}\n",
             plugin("tests/plugins", "v1"));
    cr_assert_str_eq(run(reg, yaml), "3\n6\n");
    const struct sl_stage_type *t = sl_registry_find(reg, "v1_multiple", -1);
    cr_assert_eq(t->abi, SL_STAGE_ABI); /* the registry's converted copy */
    cr_assert_str_eq(t->options[0].name, "of");
    cr_assert_str_eq(t->options[0].def, "2");
    cr_assert_null(t->options[0].range);
    cr_assert_str_eq(t->options[1].choices, "keep");
    cr_assert_null(t->options[2].name);
    sl_registry_free(reg);
}

/* Loads `name` from tests/plugins and expects `code` and the message `want` (with %s for
 * the path); nothing of it stays registered. */
static void refused(const char *name, int code, const char *want)
{
    struct sl_registry *reg = builtins();
    struct sl_error err = {0};
    const char *path = plugin("tests/plugins", name);
    char msg[1024];
    snprintf(msg, sizeof msg, want, path, path);
    cr_assert_eq(sl_registry_load_plugin(reg, path, &err), code, "%s", err.msg);
    cr_assert_str_eq(err.msg, msg);
    cr_assert_eq(sl_registry_count(reg), sl_builtin_count());
    cr_assert_null(sl_registry_find(reg, "bad_first", -1));
    sl_registry_free(reg);
}

Test(plugin, refused_built_for_another_major)
{
    refused("bad_major", SL_EINVAL,
            "plugin '%s' was built for libsluice 99.x; this is libsluice " SL_VERSION_STRING
            ": rebuild it against this version");
}

Test(plugin, refused_built_for_a_newer_stage_abi)
{
    refused("bad_newer", SL_EINVAL,
            "plugin '%s' was built for stage ABI 3; libsluice " SL_VERSION_STRING
            " reads ABI 1 to 2: use a newer libsluice");
}

Test(plugin, refused_without_abi)
{
    refused("bad_no_abi", SL_EINVAL,
            "plugin '%s': no sl_plugin_abi (%s: undefined symbol: sl_plugin_abi): define it "
            "with SL_PLUGIN_ABI_DEFINE from <sluice/plugin.h>");
}

Test(plugin, refused_without_entry_point)
{
    refused("bad_no_init", SL_EINVAL,
            "plugin '%s': no entry point sl_plugin_init (%s: undefined symbol: sl_plugin_init)");
}

Test(plugin, refused_on_a_name_clash)
{
    refused("bad_clash", SL_EEXIST, "plugin '%s': stage type 'filter' is registered already");
}

Test(plugin, refused_with_a_newer_table_and_the_first_taken_out)
{
    refused("bad_table", SL_EINVAL,
            "plugin '%s': stage type 'bad_newer' was built for stage ABI 3; "
            "libsluice " SL_VERSION_STRING " reads ABI 1 to 2: use a newer libsluice");
}

Test(plugin, refused_when_init_fails)
{
    refused("bad_init_fails", SL_EIO,
            "plugin '%s': sl_plugin_init failed (-3: input/output error)");
}

Test(plugin, refused_when_it_does_not_load_with_dlerror)
{
    struct sl_registry *reg = builtins();
    struct sl_error err = {0};
    cr_assert_eq(sl_registry_load_plugin(reg, "/nonexistent/libx.so", &err), SL_ENOTFOUND);
    cr_assert_str_eq(err.msg, "plugin '/nonexistent/libx.so' does not load: /nonexistent/libx.so: "
                              "cannot open shared object file: No such file or directory");
    sl_registry_free(reg);
}

Test(plugin, config_entry_error_at_its_position)
{
    struct sl_registry *reg = builtins();
    struct sl_error err = {0};
    const char *yaml = "plugins:\n  - missing/libnope.so\n  - {a: b}\nsources: {}\n";
    struct sl_config *cfg = sl_config_parse(yaml, strlen(yaml), "dir/p.yaml", &err);
    cr_assert(cfg);
    cr_assert_eq(sl_registry_load_plugins(reg, cfg, &err), SL_ENOTFOUND);
    cr_assert_str_eq(err.file, "dir/p.yaml");
    cr_assert_eq(err.line, 2);
    cr_assert_eq(err.col, 5);
    cr_assert_str_eq(err.msg, "plugin 'dir/missing/libnope.so' does not load: "
                              "dir/missing/libnope.so: cannot open shared object file: No such "
                              "file or directory");
    sl_config_free(cfg);
    yaml = "plugins: {a: b}\n";
    cfg = sl_config_parse(yaml, strlen(yaml), "p.yaml", &err);
    cr_assert_eq(sl_registry_load_plugins(reg, cfg, &err), SL_ECONFIG);
    cr_assert_str_eq(err.msg, "'plugins' expects a list of paths of shared objects");
    cr_assert_eq(err.line, 1);
    cr_assert_eq(err.col, 10);
    sl_config_free(cfg);
    sl_registry_free(reg);
}
