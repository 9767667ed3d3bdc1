/* tests/plugins/v1.c: a plugin as it was built against SL_STAGE_ABI 1, the layout of
 * include/sluice/stage.h before ABI 2 (git show 680c0ad^:include/sluice/stage.h). Its
 * tables are frozen copies of that layout: struct sl_option without `range`, struct
 * sl_stage_type without map_async, and keep() answering bool. test_plugin.c loads it
 * into a library that speaks ABI 2 and runs its filter. Never edit the two structs. */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#include <sluice/plugin.h>

/* ---- frozen: include/sluice/stage.h at SL_STAGE_ABI 1 ----------------------------------- */

struct sl_option_v1 {
    const char *name;
    enum sl_opt_type type;
    const char *def;
    unsigned flags;
    size_t offset;
    const char *doc;
    const char *choices;
};

struct sl_stage_type_v1 {
    int abi;
    const char *name;
    enum sl_kind kind;
    const char *doc;
    unsigned flags;
    size_t state_size;
    const struct sl_option_v1 *options;
    int (*init)(struct sl_stage *stage, const struct sl_config *cfg, struct sl_error *err);
    int (*start)(struct sl_stage *stage, struct sl_error *err);
    enum sl_poll (*poll)(struct sl_stage *stage, struct sl_batch **out);
    int (*map)(struct sl_stage *stage, struct sl_event *ev, struct sl_emit *out);
    bool (*keep)(struct sl_stage *stage, const struct sl_event *ev);
    enum sl_poll (*write)(struct sl_stage *stage, struct sl_batch *b);
    void (*ack)(struct sl_stage *stage, struct sl_batch *b);
    int (*flush)(struct sl_stage *stage, struct sl_emit *out, bool end);
    void (*close)(struct sl_stage *stage);
};

/* ---- the plugin -------------------------------------------------------------------------- */

SL_API extern const struct sl_plugin_abi sl_plugin_abi;
const struct sl_plugin_abi sl_plugin_abi = {0, 1};

struct multiple_state {
    int64_t of;   /* option `of` */
    int64_t kept; /* events kept */
};

static const struct sl_option_v1 multiple_options[] = {
    {"of", SL_OPT_INT, "2", 0, offsetof(struct multiple_state, of), "keep multiples of this", NULL},
    {"mode", SL_OPT_ENUM, "keep", 0, offsetof(struct multiple_state, kept) /* unused */,
     "keep (the only mode)", "keep"},
    {0},
};

/* Keeps the events whose payload is a number divisible by `of`. */
static bool multiple_keep(struct sl_stage *stage, const struct sl_event *ev)
{
    struct multiple_state *st = sl_stage_state(stage);
    size_t len;
    const char *text = sl_event_payload(ev, &len);
    char buf[32];
    if (len == 0 || len >= sizeof buf) return false;
    for (size_t i = 0; i < len; i++) buf[i] = text[i];
    buf[len] = '\0';
    bool keep = strtoll(buf, NULL, 10) % st->of == 0;
    return keep;
}

static const struct sl_stage_type_v1 multiple_type = {
    .abi = 1,
    .name = "v1_multiple",
    .kind = SL_FILTER,
    .doc = "keeps numbers divisible by `of` (a plugin of stage ABI 1)",
    .state_size = sizeof(struct multiple_state),
    .options = multiple_options,
    .keep = multiple_keep,
};

int sl_plugin_init(struct sl_registry *reg)
{
    return sl_registry_add(reg, (const struct sl_stage_type *)(const void *)&multiple_type, NULL);
}
