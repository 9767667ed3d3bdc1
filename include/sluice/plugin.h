/* sluice: stage types shipped as shared objects (plugins).
 *
 * A plugin is a shared object with one entry point, sl_plugin_init(), that registers its
 * stage types with sl_registry_add() exactly as the built-ins are registered, and one
 * constant, sl_plugin_abi, that says what it was built against. A config loads plugins
 * with a top-level `plugins: [path/to/libmystage.so]`, the command line with
 * `--plugin PATH`. A plugin:
 *
 *     #include <sluice/plugin.h>
 *
 *     SL_PLUGIN_ABI_DEFINE;
 *
 *     int sl_plugin_init(struct sl_registry *reg)
 *     {
 *         return sl_registry_add(reg, &my_stage, NULL);
 *     }
 *
 * built with `cc -shared -fPIC my_stage.c $(pkg-config --cflags --libs sluice)`.
 *
 * Before anything runs, the loader refuses, naming the file: a path that does not load
 * (with dlerror()), a missing sl_plugin_abi or sl_plugin_init, a plugin built for another
 * major version of libsluice or for a stage ABI newer than this library's, a stage type
 * whose name clashes with a registered one, and a malformed stage table. A plugin built
 * for an older SL_STAGE_ABI loads: its tables are read by the layout of their version. */
#ifndef SLUICE_PLUGIN_H
#define SLUICE_PLUGIN_H

#include <sluice/config.h>
#include <sluice/error.h>
#include <sluice/registry.h>
#include <sluice/stage.h>
#include <sluice/version.h>

/* What a plugin was built against. */
struct sl_plugin_abi {
    int major;     /* SL_VERSION_MAJOR: must be the library's */
    int stage_abi; /* SL_STAGE_ABI: at most the library's */
};

/* Defines the plugin's sl_plugin_abi from the headers it is compiled with. Write it once,
 * at file scope, in one source file of the plugin, followed by a semicolon. */
#define SL_PLUGIN_ABI_DEFINE                                                                       \
    SL_API extern const struct sl_plugin_abi sl_plugin_abi;                                        \
    const struct sl_plugin_abi sl_plugin_abi = {SL_VERSION_MAJOR, SL_STAGE_ABI}

/* The plugin's entry point, which the plugin defines: registers its stage types with
 * sl_registry_add(reg, ...) and returns 0, or the first failure's SL_E* code (the
 * loader reports what sl_registry_add said, naming the file). Called once per registry
 * that loads the plugin, on the loading thread. */
SL_API int sl_plugin_init(struct sl_registry *reg);

/* Loads the plugin at `path` (borrowed; a path with a '/', or a name dlopen() looks up
 * in the library path) into `reg` (borrowed): dlopen(), the checks above, then its
 * sl_plugin_init(). The registry keeps the shared object loaded until sl_registry_free
 * (pipelines built with its types must be freed first). Loading the same object twice
 * into one registry is a no-op. Returns 0, or with `err` naming the file: SL_ENOTFOUND
 * (it does not load: dlerror() says why), SL_EINVAL (no entry point, another ABI, a
 * malformed table; nothing of the plugin stays registered), or SL_EEXIST (a name
 * clash). */
SL_API int sl_registry_load_plugin(struct sl_registry *reg, const char *path, struct sl_error *err);

/* Loads the plugins listed by the top-level `plugins:` key of config `root` (borrowed;
 * a path or a list of paths; no key: nothing to do), in order. A relative path is taken
 * from the directory of the config file. Returns 0, or SL_ECONFIG for a malformed key,
 * or the code of sl_registry_load_plugin, with `err` at the entry's file:line:col. */
SL_API int sl_registry_load_plugins(struct sl_registry *reg, const struct sl_config *root,
                                    struct sl_error *err);

#endif
