/* tests/plugins/bad.c: plugins that the loader must refuse, one per BAD_* macro given by
 * tests/meson.build (test_plugin.c checks each message):
 *   BAD_MAJOR      built for libsluice 99.x
 *   BAD_NEWER      built for a stage ABI newer than the library's
 *   BAD_NO_ABI     no sl_plugin_abi
 *   BAD_NO_INIT    no sl_plugin_init
 *   BAD_CLASH      registers a type whose name a built-in has (filter)
 *   BAD_TABLE      a stage table of an ABI newer than the library's, the second of two
 *                  (the first must not stay registered)
 *   BAD_INIT_FAILS sl_plugin_init answers an error of its own */
#include <sluice/plugin.h>

static int pass_map(struct sl_stage *stage, struct sl_event *ev, struct sl_emit *out)
{
    (void)stage;
    return sl_emit(out, ev);
}

#if defined(BAD_CLASH)
#define TYPE_NAME "filter"
#else
#define TYPE_NAME "bad_first"
#endif

static const struct sl_stage_type first = {
    .abi = SL_STAGE_ABI,
    .name = TYPE_NAME,
    .kind = SL_TRANSFORM,
    .doc = "passes events on",
    .map = pass_map,
};

static const struct sl_stage_type newer = {
    .abi = SL_STAGE_ABI + 1,
    .name = "bad_newer",
    .kind = SL_TRANSFORM,
    .doc = "a table from the future",
    .map = pass_map,
};

#if !defined(BAD_NO_ABI)
SL_API extern const struct sl_plugin_abi sl_plugin_abi;
#if defined(BAD_MAJOR)
const struct sl_plugin_abi sl_plugin_abi = {99, SL_STAGE_ABI};
#elif defined(BAD_NEWER)
const struct sl_plugin_abi sl_plugin_abi = {SL_VERSION_MAJOR, SL_STAGE_ABI + 1};
#else
const struct sl_plugin_abi sl_plugin_abi = {SL_VERSION_MAJOR, SL_STAGE_ABI};
#endif
#endif

#if !defined(BAD_NO_INIT)
int sl_plugin_init(struct sl_registry *reg)
{
#if defined(BAD_INIT_FAILS)
    (void)reg;
    (void)&first;
    (void)&newer;
    return SL_EIO;
#else
    int rc = sl_registry_add(reg, &first, NULL);
    if (!rc) rc = sl_registry_add(reg, &newer, NULL);
    return rc;
#endif
}
#else
int bad_unused(void); /* something to export */
int bad_unused(void)
{
    return (int)sizeof newer + (int)sizeof first;
}
#endif
