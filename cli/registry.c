/* The stage types the program knows: libsluice's built-ins, the plugins named by
 * `--plugin PATH` (in order), then those of the config's `plugins:` key. A plugin that
 * does not load is an error before anything runs. */
#include "cli.h"

#include <sluice/builtins.h>
#include <sluice/plugin.h>

size_t cli_builtin_count(void)
{
    return sl_builtin_count();
}

const struct sl_stage_type *cli_builtin_at(size_t i)
{
    return sl_builtin_at(i);
}

struct sl_registry *cli_registry(struct sl_error *err)
{
    struct sl_registry *reg = sl_registry_new();
    if (!reg) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    if (sl_registry_add_builtins(reg, err)) {
        sl_registry_free(reg);
        return NULL;
    }
    return reg;
}

struct sl_registry *cli_registry_plugins(const struct cli_opts *o, const struct sl_config *cfg,
                                         struct sl_error *err)
{
    struct sl_registry *reg = cli_registry(err);
    if (!reg) return NULL;
    int rc = 0;
    for (int i = 0; !rc && i < o->nplugins; i++)
        rc = sl_registry_load_plugin(reg, o->plugins[i], err);
    if (!rc && cfg) rc = sl_registry_load_plugins(reg, cfg, err);
    if (rc) {
        sl_registry_free(reg);
        return NULL;
    }
    return reg;
}
