/* examples/plugin/mask.c: a stage type shipped as a shared object (a plugin).
 *
 * Transform `mask` replaces every digit of the payload with a character (option `with`,
 * default "#"): card numbers and phone numbers out of a log. The plugin's one entry
 * point registers it exactly as the built-ins are registered; `sluice` loads it from a
 * config's `plugins:` (mask.yaml) or from `--plugin PATH`.
 *
 * Built against an installed libsluice:
 *   cc -shared -fPIC -o libmask.so mask.c $(pkg-config --cflags --libs sluice)
 * and by meson beside sluice (examples/meson.build). */
#include <stddef.h>
#include <string.h>

#include <sluice/plugin.h>

SL_PLUGIN_ABI_DEFINE; /* what this plugin was built against, for the loader's checks */

struct mask_state {
    const char *with; /* option `with`: the replacement, one character */
};

static const struct sl_option mask_options[] = {
    {.name = "with",
     .type = SL_OPT_STRING,
     .def = "#",
     .offset = offsetof(struct mask_state, with),
     .doc = "the character that replaces each digit"},
    {0},
};

static int mask_init(struct sl_stage *stage, const struct sl_config *cfg, struct sl_error *err)
{
    struct mask_state *st = sl_stage_state(stage);
    if (strlen(st->with) != 1)
        return sl_config_error(sl_config_get(cfg, "with"), err, SL_ECONFIG,
                               "'with' is one character; found '%s'", st->with);
    return 0;
}

static int mask_map(struct sl_stage *stage, struct sl_event *ev, struct sl_emit *out)
{
    const struct mask_state *st = sl_stage_state(stage);
    size_t len;
    const char *text = sl_event_payload(ev, &len);
    char *masked = sl_event_alloc(ev, len); /* lives as long as the batch */
    if (!masked) return SL_ENOMEM;
    for (size_t i = 0; i < len; i++)
        masked[i] = text[i] >= '0' && text[i] <= '9' ? st->with[0] : text[i];
    sl_event_set_payload(ev, masked, len);
    return sl_emit(out, ev);
}

static const struct sl_stage_type mask_type = {
    .abi = SL_STAGE_ABI,
    .name = "mask",
    .kind = SL_TRANSFORM,
    .doc = "replaces every digit of the payload with a character (a plugin)",
    .flags = SL_STAGE_PARALLEL,
    .state_size = sizeof(struct mask_state),
    .options = mask_options,
    .init = mask_init,
    .map = mask_map,
};

int sl_plugin_init(struct sl_registry *reg)
{
    return sl_registry_add(reg, &mask_type, NULL);
}
