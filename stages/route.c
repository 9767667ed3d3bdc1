/* route: sends each event to the named outputs whose conditions hold, and to output
 * "_unmatched" when none does; a downstream stage takes `inputs: [route.errors]`. An
 * event matching several routes goes to each (or only to the first with
 * `first_match: true`). Conditions are compiled once; testing them allocates nothing.
 * Thread-safe: `workers: N` is allowed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/expr.h>

#include "internal.h"

struct route_out {
    struct sl_expr *cond; /* compiled condition (owned) */
    int port;             /* output port */
};

struct route {
    const struct sl_config *routes; /* option: name -> condition */
    bool first_match;               /* option */
    struct route_out *outs;         /* one per route, in config order */
    size_t n;                       /* routes */
    int unmatched;                  /* port "_unmatched" */
};

static int route_map(struct sl_stage *s, struct sl_event *ev, struct sl_emit *out)
{
    const struct route *r = sl_stage_state(s);
    bool matched = false;
    for (size_t i = 0; i < r->n; i++) {
        if (!sl_expr_test(r->outs[i].cond, ev)) continue;
        if (sl_emit_to(out, r->outs[i].port, ev))
            return sl_stage_error(s, SL_ENOMEM, "out of memory");
        matched = true;
        if (r->first_match) break;
    }
    if (!matched && sl_emit_to(out, r->unmatched, ev))
        return sl_stage_error(s, SL_ENOMEM, "out of memory");
    return 0;
}

static int check_name(const struct sl_config *key, const char *name, struct sl_error *err)
{
    if (!*name || strchr(name, '.') || !strcmp(name, "_unmatched"))
        return sl_config_error(key, err, SL_ECONFIG,
                               "route name '%s' must be non-empty, without '.', and not "
                               "'_unmatched'",
                               name);
    return 0;
}

static int route_init(struct sl_stage *s, const struct sl_config *cfg, struct sl_error *err)
{
    (void)cfg;
    struct route *r = sl_stage_state(s);
    size_t n = sl_config_len(r->routes);
    if (n == 0)
        return sl_config_error(r->routes, err, SL_ECONFIG,
                               "routes: expected at least one `name: condition`");
    r->outs = calloc(n, sizeof *r->outs);
    if (!r->outs) return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *name;
        const struct sl_config *cond = sl_config_at(r->routes, i, &name);
        const struct sl_config *key = sl_config_key_at(r->routes, i);
        if (check_name(key, name, err)) return SL_ECONFIG;
        char what[128];
        snprintf(what, sizeof what, "route '%.100s'", name);
        r->outs[i].cond = sl_expr_compile_config(cond, what, err);
        if (!r->outs[i].cond) return err ? err->code : SL_ECONFIG;
        r->n = i + 1;
        r->outs[i].port = sl_stage_add_output(s, name);
        if (r->outs[i].port < 0)
            return sl_config_error(key, err, SL_ECONFIG, "route '%s' is given twice", name);
    }
    r->unmatched = sl_stage_add_output(s, "_unmatched");
    if (r->unmatched < 0 || sl_stage_declare_fields(s, SL_FIELDS_ADD, NULL, 0))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    return 0;
}

static void route_close(struct sl_stage *s)
{
    struct route *r = sl_stage_state(s);
    for (size_t i = 0; i < r->n; i++) sl_expr_free(r->outs[i].cond);
    free(r->outs);
}

static const struct sl_option route_options[] = {
    {"routes", SL_OPT_MAP, NULL, SL_REQUIRED, offsetof(struct route, routes),
     "outputs by name, each with its condition, e.g. {errors: 'level == \"error\"'}; events "
     "matching none go to output '_unmatched'"},
    {"first_match", SL_OPT_BOOL, "false", 0, offsetof(struct route, first_match),
     "send an event only to the first route (in config order) whose condition holds"},
    {0},
};

const struct sl_stage_type sl_stage_route = {
    .abi = SL_STAGE_ABI,
    .name = "route",
    .kind = SL_TRANSFORM,
    .doc = "send events to named outputs by condition (route.<name>, route._unmatched)",
    .flags = SL_STAGE_PARALLEL,
    .state_size = sizeof(struct route),
    .options = route_options,
    .init = route_init,
    .map = route_map,
    .close = route_close,
};
