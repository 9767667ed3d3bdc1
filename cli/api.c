/* The JSON of /api/graph and /api/stats (docs/observing.md): the stages with their
 * types, kinds, outputs and options (the schema `sluice describe` prints, with the value
 * each stage was configured with), the edges with their capacities, and the counters
 * and queue fill of /metrics, read at the moment of the request on the loop thread. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_json_string(FILE *out, const char *s, size_t len)
{
    char buf[1024];
    fputc('"', out);
    while (len) { /* escape a piece at a time: at most 6 bytes out per byte in */
        size_t n = len < sizeof buf / 6 ? len : sizeof buf / 6;
        while (n < len && n > 1 && ((unsigned char)s[n] & 0xC0) == 0x80) n--; /* whole chars */
        fwrite(buf, 1, sl_json_escape(s, n, buf), out);
        s += n, len -= n;
    }
    fputc('"', out);
}

static void str(FILE *out, const char *s)
{
    if (s)
        cli_json_string(out, s, strlen(s));
    else
        fputs("null", out);
}

/* ---- /api/graph ------------------------------------------------------------------------- */

/* Option names whose values are not shown (they may hold credentials). */
static bool secret(const char *name)
{
    static const char *const words[] = {"password",   "secret", "token",   "auth",
                                        "credential", "sasl",   "key_file"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (strstr(name, words[i])) return true;
    return false;
}

/* A config node as JSON: maps as objects, lists as arrays, scalars as strings but for
 * unquoted numbers and booleans of `numeric` options. */
static void node_json(FILE *out, const struct sl_config *n, bool numeric)
{
    const char *key, *s = sl_config_str(n);
    switch (sl_config_kind(n)) {
    case SL_CFG_MAP:
    case SL_CFG_LIST: {
        bool map = sl_config_kind(n) == SL_CFG_MAP;
        fputc(map ? '{' : '[', out);
        for (size_t i = 0; i < sl_config_len(n); i++) {
            const struct sl_config *v = sl_config_at(n, i, &key);
            if (i) fputc(',', out);
            if (map) str(out, key), fputc(':', out);
            node_json(out, v, false);
        }
        fputc(map ? '}' : ']', out);
        return;
    }
    default: break;
    }
    size_t ok = 0;
    if (numeric && s && !sl_config_quoted(n) && sl_json_validate(s, strlen(s), &ok) == 0 &&
        (isdigit((unsigned char)s[0]) || s[0] == '-' || !strcmp(s, "true") || !strcmp(s, "false")))
        fputs(s, out);
    else
        str(out, s);
}

/* The node of option `name` in stage config `cfg`: nested (retry: {max: 5s}) or dotted
 * as one key (retry.max: 5s); NULL when absent. */
static const struct sl_config *option_node(const struct sl_config *cfg, const char *name)
{
    if (!cfg) return NULL;
    const struct sl_config *n = sl_config_get(cfg, name);
    const char *key;
    for (size_t i = 0; !n && strchr(name, '.') && i < sl_config_len(cfg); i++) {
        const struct sl_config *v = sl_config_at(cfg, i, &key);
        if (key && !strcmp(key, name)) n = v;
    }
    return n;
}

static void option_json(FILE *out, const struct sl_option *o, const struct sl_config *cfg)
{
    fputs("{\"name\":", out);
    str(out, o->name);
    fputs(",\"type\":", out);
    str(out, cli_opt_type_name(o->type));
    fputs(",\"default\":", out);
    str(out, o->flags & SL_REQUIRED ? NULL : o->def);
    fprintf(out, ",\"required\":%s,\"doc\":", o->flags & SL_REQUIRED ? "true" : "false");
    str(out, o->doc);
    if (o->type == SL_OPT_ENUM) fputs(",\"choices\":", out), str(out, o->choices);
    fputs(",\"value\":", out);
    const struct sl_config *v = option_node(cfg, o->name);
    bool numeric = o->type == SL_OPT_INT || o->type == SL_OPT_FLOAT || o->type == SL_OPT_BOOL;
    if (!v)
        fputs("null", out);
    else if (secret(o->name))
        fputs("\"(hidden)\"", out);
    else
        node_json(out, v, numeric);
    fputc('}', out);
}

static void options_json(FILE *out, struct sl_stage *s)
{
    const struct sl_stage_type *t = sl_stage_get_type(s);
    const struct sl_option *tables[1 + SL_RUNTIME_OPTION_TABLES] = {t->options};
    size_t n = 1 + sl_stage_runtime_options(t, tables + 1);
    bool first = true;
    fputc('[', out);
    for (size_t k = 0; k < n; k++)
        for (const struct sl_option *o = tables[k]; o && o->name; o++) {
            if (!first) fputc(',', out);
            first = false;
            option_json(out, o, sl_stage_config(s));
        }
    fputc(']', out);
}

static void stage_json(FILE *out, struct sl_stage *s)
{
    const struct sl_stage_type *t = sl_stage_get_type(s);
    fputs("{\"name\":", out);
    str(out, sl_stage_name(s));
    fputs(",\"type\":", out);
    str(out, t->name);
    fputs(",\"kind\":", out);
    str(out, cli_kind_name(t->kind));
    fputs(",\"outputs\":[", out);
    for (size_t i = 0; i < sl_stage_output_count(s); i++) {
        if (i) fputc(',', out);
        str(out, sl_stage_output_name(s, i));
    }
    fputs("],\"options\":", out);
    options_json(out, s);
    fputc('}', out);
}

/* Each edge as {"from":..,"port":..,"to":.., then `more`}; stats: fill, else capacity. */
static void edges_json(FILE *out, struct sl_pipeline *p, bool stats)
{
    bool first = true;
    fputs("\"edges\":[", out);
    for (size_t i = 0; i < sl_pipeline_stage_count(p); i++) {
        struct sl_stage *to = sl_pipeline_stage_at(p, i);
        for (size_t k = 0; k < sl_stage_input_count(to); k++) {
            const char *port = "";
            struct sl_stage *from = sl_stage_input_at(to, k, &port);
            struct sl_edge_stats e = {.size = sizeof e};
            sl_stage_input_stats(to, k, &e);
            fputs(first ? "{\"from\":" : ",{\"from\":", out);
            first = false;
            str(out, sl_stage_name(from));
            fputs(",\"port\":", out);
            str(out, port);
            fputs(",\"to\":", out);
            str(out, sl_stage_name(to));
            if (stats)
                fprintf(out, ",\"queue_batches\":%u,\"queue_bytes\":%llu}", e.queue_batches,
                        (unsigned long long)e.queue_bytes);
            else
                fprintf(out, ",\"capacity_batches\":%u,\"capacity_bytes\":%llu}",
                        e.capacity_batches, (unsigned long long)e.capacity_bytes);
        }
    }
    fputc(']', out);
}

void cli_api_graph(struct sl_pipeline *p, FILE *out)
{
    fputs("{\"version\":1,\"stages\":[", out);
    for (size_t i = 0; i < sl_pipeline_stage_count(p); i++) {
        if (i) fputc(',', out);
        stage_json(out, sl_pipeline_stage_at(p, i));
    }
    fputs("],", out);
    edges_json(out, p, false);
    fputs("}\n", out);
}

/* ---- /api/stats ------------------------------------------------------------------------- */

static void stats_json(FILE *out, const struct sl_stage_stats *st)
{
    fprintf(out,
            "{\"events_in\":%llu,\"events_out\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu,"
            "\"errors\":%llu,\"dropped\":%llu,\"retries\":%llu,\"acked\":%llu,\"busy_ns\":%llu,"
            "\"queue_batches\":%u,\"queue_capacity\":%u,\"queue_bytes\":%llu,"
            "\"queue_max_bytes\":%llu,\"finished\":%s}",
            (unsigned long long)st->events_in, (unsigned long long)st->events_out,
            (unsigned long long)st->bytes_in, (unsigned long long)st->bytes_out,
            (unsigned long long)st->errors, (unsigned long long)st->dropped,
            (unsigned long long)st->retries, (unsigned long long)st->acked,
            (unsigned long long)st->busy_ns, st->queue_batches, st->queue_capacity,
            (unsigned long long)st->queue_bytes, (unsigned long long)st->queue_max_bytes,
            st->finished ? "true" : "false");
}

void cli_api_stats(struct sl_pipeline *p, double uptime, bool stopping, FILE *out)
{
    fprintf(out, "{\"version\":1,\"uptime_s\":%.3f,\"rss_bytes\":%ld,\"state\":\"%s\",", uptime,
            cli_rss_bytes(), stopping ? "stopping" : "running");
    fputs("\"stages\":{", out);
    for (size_t i = 0; i < sl_pipeline_stage_count(p); i++) {
        struct sl_stage *s = sl_pipeline_stage_at(p, i);
        struct sl_stage_stats st = {.size = sizeof st};
        sl_stage_stats(s, &st);
        if (i) fputc(',', out);
        str(out, sl_stage_name(s));
        fputc(':', out);
        stats_json(out, &st);
    }
    fputs("},", out);
    edges_json(out, p, true);
    fputs("}\n", out);
}
