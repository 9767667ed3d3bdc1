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

static const char *opt_type_name(enum sl_opt_type t)
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

static void describe_one(const struct sl_stage_type *t, FILE *out)
{
    fprintf(out, "%s (%s): %s\n", t->name, cli_kind_name(t->kind), t->doc ? t->doc : "");
    size_t w = 6;
    for (const struct sl_option *o = t->options; o && o->name; o++)
        if (strlen(o->name) > w) w = strlen(o->name);
    if (!t->options || !t->options[0].name) {
        fputs("\nno options\n", out);
    } else {
        fprintf(out, "\n%-*s  %-8s  %-10s  %s\n", (int)w, "OPTION", "TYPE", "DEFAULT",
                "DESCRIPTION");
        for (const struct sl_option *o = t->options; o && o->name; o++) {
            const char *def = o->flags & SL_REQUIRED ? "(required)" : o->def ? o->def : "-";
            fprintf(out, "%-*s  %-8s  %-10s  %s\n", (int)w, o->name, opt_type_name(o->type),
                    *def ? def : "\"\"", o->doc);
            if (o->type == SL_OPT_ENUM) {
                fprintf(out, "%-*s  %-8s  %-10s  one of: ", (int)w, "", "", "");
                for (const char *c = o->choices; *c; c++)
                    fputs(*c == '|' ? ", " : (char[]){*c, 0}, out);
                fputc('\n', out);
            }
        }
    }
    fputs("\nevery stage also takes: type", out);
    if (t->kind != SL_SOURCE)
        fputs(", inputs (list of stage names), buffer {max_batches, max_bytes}", out);
    if (t->flags & SL_STAGE_PARALLEL) fputs(", workers (threads)", out);
    fputs("\n", out);
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
    const char *near = sl_registry_suggest(reg, type);
    if (near)
        cli_log(SL_LOG_ERROR, NULL, "unknown stage type '%s' (did you mean '%s'?)", type, near);
    else
        cli_log(SL_LOG_ERROR, NULL, "unknown stage type '%s' (sluice list shows them all)", type);
    return CLI_EUSAGE;
}
