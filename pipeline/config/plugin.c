/* Plugins: stage types in shared objects, loaded into a registry with dlopen() and
 * registered by their sl_plugin_init() (include/sluice/plugin.h). Every refusal names
 * the file; a plugin that fails leaves nothing registered. */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/plugin.h>

#include "config/internal.h"

typedef int init_fn(struct sl_registry *reg);

/* Checks what the plugin says it was built for. */
static int check_abi(void *h, const char *path, struct sl_error *err)
{
    dlerror();
    const struct sl_plugin_abi *abi = dlsym(h, "sl_plugin_abi");
    if (!abi) {
        const char *why = dlerror();
        return sl_error_set(err, SL_EINVAL,
                            "plugin '%s': no sl_plugin_abi (%s): define it with "
                            "SL_PLUGIN_ABI_DEFINE from <sluice/plugin.h>",
                            path, why ? why : "NULL");
    }
    if (abi->major != SL_VERSION_MAJOR)
        return sl_error_set(err, SL_EINVAL,
                            "plugin '%s' was built for libsluice %d.x; this is libsluice %s: "
                            "rebuild it against this version",
                            path, abi->major, sl_version());
    if (abi->stage_abi < 1 || abi->stage_abi > SL_STAGE_ABI)
        return sl_error_set(err, SL_EINVAL,
                            "plugin '%s' was built for stage ABI %d; libsluice %s reads ABI 1 "
                            "to %d%s",
                            path, abi->stage_abi, sl_version(), SL_STAGE_ABI,
                            abi->stage_abi > SL_STAGE_ABI ? ": use a newer libsluice" : "");
    return 0;
}

static bool loaded(const struct sl_registry *reg, void *h)
{
    for (size_t i = 0; i < reg->nhandles; i++)
        if (reg->handles[i] == h) return true;
    return false;
}

/* Runs the entry point; on failure the plugin's types are taken out again. */
static int run_init(struct sl_registry *reg, void *h, const char *path, struct sl_error *err)
{
    dlerror();
    init_fn *init;
    *(void **)&init = dlsym(h, "sl_plugin_init");
    if (!init) {
        const char *why = dlerror();
        return sl_error_set(err, SL_EINVAL, "plugin '%s': no entry point sl_plugin_init (%s)", path,
                            why ? why : "NULL");
    }
    size_t before = reg->n;
    reg->loading = path;
    memset(&reg->load_err, 0, sizeof reg->load_err);
    int rc = init(reg);
    reg->loading = NULL;
    if (!rc && !reg->load_err.code) return 0;
    reg->n = before;
    if (reg->load_err.code)
        return sl_error_set(err, reg->load_err.code, "plugin '%s': %s", path, reg->load_err.msg);
    return sl_error_set(err, rc < 0 ? rc : SL_EINVAL, "plugin '%s': sl_plugin_init failed (%d: %s)",
                        path, rc, sl_strerror(rc));
}

int sl_registry_load_plugin(struct sl_registry *reg, const char *path, struct sl_error *err)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        return sl_error_set(err, SL_ENOTFOUND, "plugin '%s' does not load: %s", path,
                            why ? why : "unknown reason");
    }
    if (loaded(reg, h)) {
        dlclose(h); /* one more reference of dlopen's, given back */
        return 0;
    }
    void **nh = realloc(reg->handles, (reg->nhandles + 1) * sizeof *nh);
    if (!nh) {
        dlclose(h);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    reg->handles = nh;
    int rc = check_abi(h, path, err);
    if (!rc) rc = run_init(reg, h, path, err);
    if (rc) {
        dlclose(h);
        return rc;
    }
    reg->handles[reg->nhandles++] = h;
    return 0;
}

/* `path` as seen from the directory of the config file `file`. */
static void resolve(const char *file, const char *path, char *out, size_t size)
{
    const char *slash = file ? strrchr(file, '/') : NULL;
    if (path[0] == '/' || !strchr(path, '/') || !slash)
        snprintf(out, size, "%s", path);
    else
        snprintf(out, size, "%.*s/%s", (int)(slash - file), file, path);
}

static int load_entry(struct sl_registry *reg, const struct sl_config *n, struct sl_error *err)
{
    if (sl_config_kind(n) != SL_CFG_SCALAR || !*sl_config_str(n))
        return sl_config_error(n, err, SL_ECONFIG, "'plugins' expects paths of shared objects");
    char path[PATH_MAX];
    resolve(sl_config_file(n), sl_config_str(n), path, sizeof path);
    struct sl_error e = {0};
    int rc = sl_registry_load_plugin(reg, path, &e);
    if (rc) sl_config_error(n, err, rc, "%s", e.msg);
    return rc;
}

int sl_registry_load_plugins(struct sl_registry *reg, const struct sl_config *root,
                             struct sl_error *err)
{
    const struct sl_config *list = sl_config_get(root, "plugins");
    if (!list) return 0;
    if (sl_config_kind(list) == SL_CFG_SCALAR) return load_entry(reg, list, err);
    if (sl_config_kind(list) != SL_CFG_LIST)
        return sl_config_error(list, err, SL_ECONFIG,
                               "'plugins' expects a list of paths of shared objects");
    for (size_t i = 0; i < sl_config_len(list); i++) {
        int rc = load_entry(reg, sl_config_at(list, i, NULL), err);
        if (rc) return rc;
    }
    return 0;
}

void sl__registry_release(struct sl_registry *reg)
{
    for (size_t i = 0; i < reg->nowned; i++) free(reg->owned[i]);
    free(reg->owned);
    for (size_t i = reg->nhandles; i-- > 0;) dlclose(reg->handles[i]);
    free(reg->handles);
}
