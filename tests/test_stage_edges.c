/* Every parser on the edges of its input: each prefix of tricky lines, placed so that its
 * last byte is the last before a PROT_NONE page (a read past the end crashes), as payload
 * and, through parse_json, as a field. Nothing may crash, and every event comes out once:
 * parsed, or rejected to the dead-letter output. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include <sluice/builtins.h>

#include "stage_helpers.h"

static struct sl_pipeline *p;

static void setup(void)
{
    p = t_pipeline();
}

static void teardown(void)
{
    sl_pipeline_free(p);
    t_guard_free_all();
}

TestSuite(stage_edges, .init = setup, .fini = teardown, .timeout = 60);

static const char *const tricky[] = {
    "{\"a\":\"x\\u00e9\\\"\",\"b\":[1,{\"c\":-1.5e3}],\"t\":\"2024-01-02T03:04:05.123+02:00\"}",
    "level=info msg=\"a \\\"q\\\" b\" n=12 flag t=1700000000",
    "user: bob; note: \"x;y\"; n: 1e3",
    "1,\"a,\"\"b\"\"\",,2.5,true\r",
    "12 3.5 yes rest of line",
    "04/Dec/2005:04:47:44 +0100",
    "2024-01-02 03:04:05,123456789",
    "10.0.0.1 - - [30/Nov/2026:10:00:01 +0000] \"GET /a HTTP/1.1\" 304 - \"-\" \"x \\\"y\\\"\" "
    "\"1.2.3.4\"",
    "<165>1 2003-10-11T22:14:15.003Z h app - ID47 [a@1 b=\"\\\"]\"][c@2] msg",
    "<34>Oct 11 22:14:15 mymachine su[12]: 'su root' failed",
    "[Wed Oct 11 14:32:52.1 2000] [core:error] [pid 1:tid 2] [client ::1:80] AH1: m",
    NULL};

enum { MAXN = 1024 };
static const char *items[MAXN];
static size_t lens[MAXN];

/* Every prefix of every tricky line, each at a guard page. */
static size_t prefixes(void)
{
    size_t n = 0;
    for (size_t k = 0; tricky[k]; k++)
        for (size_t len = 0; len <= strlen(tricky[k]) && n < MAXN; len++) {
            items[n] = t_guard_copy(tricky[k], len);
            lens[n++] = len;
        }
    return n;
}

static void run_parser(const struct sl_stage_type *type, const char *yaml)
{
    size_t n = prefixes();
    static const char *const none[] = {NULL};
    struct sl_stage *src = t_add_lines(p, none);
    struct t_text *t = sl_stage_state(src);
    t->lines.n = n;
    t->lines.items = items;
    t->lens = lens;
    t->borrow = true;
    char cfg[512];
    snprintf(cfg, sizeof cfg, "on_error: dead_letter\n%s", yaml);
    struct sl_stage *st = t_stage(p, "stage", type, cfg);
    struct sl_stage *out = t_stage(p, "out", &t_capture, NULL);
    struct sl_stage *dead = t_stage(p, "dead", &t_capture, NULL);
    t_connect_port(p, src, NULL, st);
    t_connect_port(p, st, NULL, out);
    t_connect_port(p, st, "dead_letter", dead);
    t_run_ok(p);
    struct t_capture *c = sl_stage_state(out), *d = sl_stage_state(dead);
    cr_assert_eq(c->n + d->n, n, "%zu in, %zu out, %zu dead", n, c->n, d->n);
    cr_assert_gt(c->n, 0);
    cr_assert_gt(d->n, 0);
}

Test(stage_edges, parse_json)
{
    run_parser(&sl_stage_parse_json, "");
}

Test(stage_edges, parse_logfmt)
{
    run_parser(&sl_stage_parse_logfmt, "");
}

Test(stage_edges, parse_kv)
{
    run_parser(&sl_stage_parse_kv, "field_separator: ';'\nkv_separator: ':'");
}

Test(stage_edges, parse_csv)
{
    run_parser(&sl_stage_parse_csv, "columns: [a, b, c, d, e]");
}

Test(stage_edges, parse_regex)
{
    run_parser(
        &sl_stage_parse_regex,
        "patterns: ['^(?<a:int>\\d+) (?<b:float>\\S+) (?<c:bool>\\w+)', '^(?<w:auto>\\w+)$']");
}

Test(stage_edges, parse_regex_formats)
{
    static const char *const formats[] = {"nginx_combined", "syslog_rfc5424", "syslog_rfc3164",
                                          "clf_error", NULL};
    for (size_t i = 0; formats[i]; i++) {
        char yaml[64];
        snprintf(yaml, sizeof yaml, "format: %s", formats[i]);
        sl_pipeline_free(p);
        p = t_pipeline();
        run_parser(&sl_stage_parse_regex, yaml);
    }
}

Test(stage_edges, parse_timestamp_on_a_json_field)
{
    /* The time text comes from a field that parse_json indexed from a guarded payload. */
    size_t n = 0;
    static char json[MAXN][128];
    const char *times[] = {"2024-01-02T03:04:05.123456789+02:00", "1700000000.25",
                           "04/Dec/2005:04:47:44 +0100", NULL};
    for (size_t k = 0; times[k]; k++)
        for (size_t len = 0; len <= strlen(times[k]); len++) {
            int l = snprintf(json[n], sizeof json[n], "{\"t\":\"%.*s\"}", (int)len, times[k]);
            items[n] = t_guard_copy(json[n], (size_t)l);
            lens[n++] = (size_t)l;
        }
    static const char *const none[] = {NULL};
    struct sl_stage *src = t_add_lines(p, none);
    struct t_text *t = sl_stage_state(src);
    t->lines.n = n;
    t->lines.items = items;
    t->lens = lens;
    t->borrow = true;
    struct sl_stage *js = t_stage(p, "json", &sl_stage_parse_json, NULL);
    t_connect_port(p, src, NULL, js);
    struct sl_stage *ts = t_stage(p, "ts", &sl_stage_parse_timestamp,
                                  "field: t\nformats: [rfc3339, unix, '%d/%b/%Y:%H:%M:%S %z']\n"
                                  "on_error: dead_letter");
    struct sl_stage *out = t_stage(p, "out", &t_capture, NULL);
    struct sl_stage *dead = t_stage(p, "dead", &t_capture, NULL);
    t_connect_port(p, js, NULL, ts);
    t_connect_port(p, ts, NULL, out);
    t_connect_port(p, ts, "dead_letter", dead);
    t_run_ok(p);
    struct t_capture *c = sl_stage_state(out), *d = sl_stage_state(dead);
    cr_assert_eq(c->n + d->n, n);
    cr_assert_geq(c->n, 3, "the whole times parse");
}
