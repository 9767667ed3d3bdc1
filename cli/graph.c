/* `sluice graph`: the pipeline's DAG as Graphviz DOT (`sluice graph p.yaml | dot -Tsvg`). */
#include "cli.h"

/* Writes `s` quoted for DOT. */
static void dot_id(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static const char *shape(enum sl_kind kind)
{
    switch (kind) {
    case SL_SOURCE: return "invhouse";
    case SL_SINK: return "house";
    case SL_FILTER: return "invtrapezium";
    default: return "box";
    }
}

void cli_graph(struct sl_pipeline *p, FILE *out)
{
    fputs("digraph sluice {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n", out);
    for (size_t i = 0; i < sl_pipeline_stage_count(p); i++) {
        struct sl_stage *s = sl_pipeline_stage_at(p, i);
        const struct sl_stage_type *t = sl_stage_get_type(s);
        fputs("  ", out);
        dot_id(out, sl_stage_name(s));
        fputs(" [label=", out);
        fputc('"', out);
        for (const char *c = sl_stage_name(s); *c; c++) {
            if (*c == '"' || *c == '\\') fputc('\\', out);
            fputc(*c, out);
        }
        fprintf(out, "\\n%s\", shape=%s];\n", t->name, shape(t->kind));
    }
    for (size_t i = 0; i < sl_pipeline_stage_count(p); i++) {
        struct sl_stage *to = sl_pipeline_stage_at(p, i);
        for (size_t k = 0; k < sl_stage_input_count(to); k++) {
            const char *port;
            struct sl_stage *from = sl_stage_input_at(to, k, &port);
            fputs("  ", out);
            dot_id(out, sl_stage_name(from));
            fputs(" -> ", out);
            dot_id(out, sl_stage_name(to));
            if (*port) {
                fputs(" [label=", out);
                dot_id(out, port);
                fputc(']', out);
            }
            fputs(";\n", out);
        }
    }
    fputs("}\n", out);
}
