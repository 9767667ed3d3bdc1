/* `sluice list` and `sluice describe TYPE`: the stage types documented from their
 * schema tables alone (name, kind, one line; options with type, default, doc). */
#include <string.h>

#include "cli.h"

const char *cli_kind_name(enum sl_kind kind)
{
    switch (kind) {
    case SL_SOURCE: return "source";
    case SL_TRANSFORM: return "transform";
    case SL_FILTER: return "filter";
    case SL_SINK: return "sink";
    }
    return "?";
}

const char *cli_opt_type_name(enum sl_opt_type t)
{
    static const char *const names[] = {
        [SL_OPT_STRING] = "string", [SL_OPT_INT] = "int",           [SL_OPT_FLOAT] = "float",
        [SL_OPT_BOOL] = "bool",     [SL_OPT_DURATION] = "duration", [SL_OPT_SIZE] = "size",
        [SL_OPT_ENUM] = "enum",     [SL_OPT_LIST] = "list",         [SL_OPT_MAP] = "map",
        [SL_OPT_EXPR] = "expr",     [SL_OPT_ANY] = "any",           [SL_OPT_TEMPLATE] = "template",
    };
    return t >= SL_OPT_STRING && t <= SL_OPT_TEMPLATE ? names[t] : "?";
}

void cli_list(const struct sl_registry *reg, FILE *out)
{
    size_t w = 4;
    for (size_t i = 0; i < sl_registry_count(reg); i++) {
        size_t l = strlen(sl_registry_at(reg, i)->name);
        if (l > w) w = l;
    }
    fprintf(out, "%-*s  %-9s  %s\n", (int)w, "TYPE", "KIND", "DESCRIPTION");
    for (size_t i = 0; i < sl_registry_count(reg); i++) {
        const struct sl_stage_type *t = sl_registry_at(reg, i);
        fprintf(out, "%-*s  %-9s  %s\n", (int)w, t->name, cli_kind_name(t->kind),
                t->doc ? t->doc : "");
    }
}

/* Prints option tables as one table: name, type, default, doc, and the choices or range
 * on a line of their own. */
static void print_options(const struct sl_option *const *tables, size_t n, FILE *out)
{
    size_t w = 6;
    for (size_t t = 0; t < n; t++)
        for (const struct sl_option *o = tables[t]; o && o->name; o++)
            if (strlen(o->name) > w) w = strlen(o->name);
    fprintf(out, "%-*s  %-8s  %-10s  %s\n", (int)w, "OPTION", "TYPE", "DEFAULT", "DESCRIPTION");
    for (size_t t = 0; t < n; t++)
        for (const struct sl_option *o = tables[t]; o && o->name; o++) {
            const char *def = o->flags & SL_REQUIRED ? "(required)" : o->def ? o->def : "-";
            fprintf(out, "%-*s  %-8s  %-10s  %s\n", (int)w, o->name, cli_opt_type_name(o->type),
                    *def ? def : "\"\"", o->doc);
            if (o->type == SL_OPT_ENUM) {
                fprintf(out, "%-*s  %-8s  %-10s  one of: ", (int)w, "", "", "");
                for (const char *c = o->choices; *c; c++)
                    fputs(*c == '|' ? ", " : (char[]){*c, 0}, out);
                fputc('\n', out);
            }
            if (o->range)
                fprintf(out, "%-*s  %-8s  %-10s  range: %s\n", (int)w, "", "", "", o->range);
        }
}

static void describe_one(const struct sl_stage_type *t, FILE *out)
{
    fprintf(out, "%s (%s): %s\n\n", t->name, cli_kind_name(t->kind), t->doc ? t->doc : "");
    if (!t->options || !t->options[0].name)
        fputs("no options of its own\n", out);
    else
        print_options(&t->options, 1, out);
    const struct sl_option *rt[SL_RUNTIME_OPTION_TABLES];
    size_t n = sl_stage_runtime_options(t, rt);
    fprintf(out, "\nread by the runtime for every %s%s: type%s\n", cli_kind_name(t->kind),
            t->map_async ? " (asynchronous)" : "",
            t->kind != SL_SOURCE ? ", inputs (stage names)" : "");
    if (n) print_options(rt, n, out);
}

/* `sluice describe pipeline`: the settings of the `pipeline:` section. */
static void describe_pipeline(FILE *out)
{
    const struct sl_option *settings = sl_pipeline_settings();
    fputs("pipeline: the settings of a config's `pipeline:` section (batch.max_events may also be "
          "written batch: {max_events: N})\n\n",
          out);
    print_options(&settings, 1, out);
}

int cli_describe(const struct sl_registry *reg, const char *type, FILE *out)
{
    int found = 0;
    for (size_t i = 0; i < sl_registry_count(reg); i++) {
        const struct sl_stage_type *t = sl_registry_at(reg, i);
        if (strcmp(t->name, type) != 0) continue;
        if (found++) fputs("\n", out); /* a source and a sink may share a name */
        describe_one(t, out);
    }
    if (found) return CLI_OK;
    if (strcmp(type, "pipeline") == 0) {
        describe_pipeline(out);
        return CLI_OK;
    }
    const char *near = sl_registry_suggest(reg, type);
    if (near)
        cli_log(SL_LOG_ERROR, NULL, "unknown stage type '%s' (did you mean '%s'?)", type, near);
    else
        cli_log(SL_LOG_ERROR, NULL, "unknown stage type '%s' (sluice list shows them all)", type);
    return CLI_EUSAGE;
}
