/* The limits of an event (issue 1), as a property of every stage: a file of good lines
 * around lines at and just past each limit (65535 and 65536 fields, nesting at and past
 * SL_JSON_MAX_DEPTH, a line of max_line_bytes and one byte more, a very long key and
 * value) runs through the file source, parse_json and the stage. The run goes on (0), the
 * good lines before and after come out, and every event past a limit is dead-lettered
 * once with its reason in field `error`, by parse_json or by the stage that would have
 * taken the event past it. Only on_error: fail stops the run. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sluice/builtins.h>
#include <sluice/json.h>

#include "stage_helpers.h"

#define MAX_LINE (1024 * 1024) /* the file source's default max_line_bytes */

static struct sl_pipeline *p;
static char dir[64], path[128];

enum { G1, FULL, OVER, DEEP, TOO_DEEP, LINE_AT, LINE_PAST, LONG_KEY, G2, NLINES };
static char *line[NLINES];

/* The members every line starts with, for the stages that read them. */
static char *head(int id)
{
    static char buf[NLINES][160];
    snprintf(buf[id], sizeof buf[id],
             "\"id\":%d,\"t\":\"2024-01-02T03:04:05Z\",\"msg\":\"a=1\",\"row\":\"1,2\","
             "\"level\":\"error\"",
             id);
    return buf[id];
}

/* {head(id), "deep": [[...]]} with `depth` containers open at the deepest point. */
static char *nested(int id, size_t depth)
{
    char *s = malloc(2 * depth + 200);
    int o = sprintf(s, "{%s,\"deep\":", head(id));
    memset(s + o, '[', depth - 1), o += (int)depth - 1;
    memset(s + o, ']', depth - 1), o += (int)depth - 1;
    strcpy(s + o, "}");
    return s;
}

/* {head(id), "pad": "xx..."} of exactly `len` bytes. */
static char *padded(int id, size_t len)
{
    char *s = malloc(len + 1);
    int o = sprintf(s, "{%s,\"pad\":\"", head(id));
    memset(s + o, 'x', len - (size_t)o - 2);
    strcpy(s + len - 2, "\"}");
    return s;
}

static char *long_key(int id)
{
    enum { K = 300000 };
    char *s = malloc(2 * K + 200);
    int o = sprintf(s, "{%s,\"", head(id));
    memset(s + o, 'k', K), o += K;
    o += sprintf(s + o, "\":\"");
    memset(s + o, 'v', K), o += K;
    strcpy(s + o, "\"}");
    return s;
}

static void setup(void)
{
    p = t_pipeline();
    strcpy(dir, "/tmp/sluice-limits-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/in.jsonl", dir);
    line[G1] = t_json_members(5, head(G1), 5);
    line[FULL] = t_json_members(65535, head(FULL), 5);
    line[OVER] = t_json_members(65536, head(OVER), 5);
    line[DEEP] = nested(DEEP, SL_JSON_MAX_DEPTH);
    line[TOO_DEEP] = nested(TOO_DEEP, SL_JSON_MAX_DEPTH + 1);
    line[LINE_AT] = padded(LINE_AT, MAX_LINE);
    line[LINE_PAST] = padded(LINE_PAST, MAX_LINE + 1);
    line[LONG_KEY] = long_key(LONG_KEY);
    line[G2] = t_json_members(5, head(G2), 5);
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < NLINES; i++) fprintf(f, "%s\n", line[i]);
    fclose(f);
}

static void teardown(void)
{
    sl_pipeline_free(p);
    for (int i = 0; i < NLINES; i++) free(line[i]);
    unlink(path);
    rmdir(dir);
}

TestSuite(limits, .init = setup, .fini = teardown, .timeout = 120);

/* What a stage does with the events that parse_json lets through. */
struct expect {
    bool full_dead;   /* the 65535-field event is the stage's dead letter (it adds a field) */
    const char *port; /* the output read, NULL: the default one */
};

/* file -> parse_json (dead_letter) -> stage (`yaml`) -> out; both dead letters kept. */
static struct t_capture *run(const struct sl_stage_type *type, const char *yaml, const char *port,
                             struct t_capture **jdead, struct t_capture **sdead)
{
    char src_yaml[256];
    snprintf(src_yaml, sizeof src_yaml, "path: %s\nfollow: false\ncheckpoint: ''", path);
    struct sl_stage *src = t_stage(p, "src", &sl_stage_file_source, src_yaml);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, "on_error: dead_letter");
    struct sl_stage *st = t_stage(p, "stage", type, yaml);
    struct sl_stage *out = t_stage(p, "out", &t_capture, NULL);
    struct sl_stage *jd = t_stage(p, "jdead", &t_capture, NULL);
    t_connect_port(p, src, NULL, json);
    t_connect_port(p, json, NULL, st);
    t_connect_port(p, json, "dead_letter", jd);
    t_connect_port(p, st, port, out);
    *jdead = sl_stage_state(jd);
    *sdead = NULL;
    if (sl_stage_output(st, "dead_letter") > 0) {
        struct sl_stage *sd = t_stage(p, "sdead", &t_capture, NULL);
        t_connect_port(p, st, "dead_letter", sd);
        *sdead = sl_stage_state(sd);
    }
    t_run_ok(p);
    return sl_stage_state(out);
}

/* parse_json's own dead letters: the lines past its limits, each with its reason. */
static void assert_parse_json_dead(const struct t_capture *d)
{
    char want[64];
    cr_assert_eq(d->n, 3);
    cr_assert_str_eq(d->payloads[0], line[OVER]);
    cr_assert(t_ends_with(d->fields[0], " error=S:more than 65535 fields"));
    size_t bracket = strlen(head(TOO_DEEP)) + 9 + SL_JSON_MAX_DEPTH - 1; /* the 513th */
    snprintf(want, sizeof want, " error=S:invalid JSON at byte %zu", bracket);
    cr_assert_str_eq(d->payloads[1], line[TOO_DEEP]);
    cr_assert(t_ends_with(d->fields[1], want), "%s", d->fields[1] + strlen(d->fields[1]) - 60);
    cr_assert_eq(strlen(d->payloads[2]), MAX_LINE, "cut by the source at max_line_bytes");
    cr_assert(strncmp(d->payloads[2], line[LINE_PAST], MAX_LINE) == 0);
    snprintf(want, sizeof want, "truncated=B:true error=S:invalid JSON at byte %d", MAX_LINE);
    cr_assert_str_eq(d->fields[2], want);
}

static void check(const struct sl_stage_type *type, const char *yaml, struct expect e)
{
    struct t_capture *jdead, *sdead;
    struct t_capture *c = run(type, yaml, e.port, &jdead, &sdead);
    assert_parse_json_dead(jdead);
    /* The good lines before and after, and those at a limit, in order. */
    static const int adds[] = {G1, DEEP, LINE_AT, LONG_KEY, G2};
    static const int passes[] = {G1, FULL, DEEP, LINE_AT, LONG_KEY, G2};
    const int *want = e.full_dead ? adds : passes;
    cr_assert_eq(c->n, e.full_dead ? 5 : 6, "%zu out", c->n);
    for (size_t i = 0; i < c->n; i++)
        cr_assert_str_eq(c->payloads[i], line[want[i]], "event %zu is line %d", i, want[i]);
    struct sl_stage_stats s = t_stats(sl_pipeline_find(p, "stage"));
    cr_assert_eq(s.errors, e.full_dead ? 1 : 0);
    if (!e.full_dead) return;
    cr_assert_not_null(sdead);
    cr_assert_eq(sdead->n, 1);
    cr_assert_str_eq(sdead->payloads[0], line[FULL]);
    cr_assert(t_ends_with(sdead->fields[0], "more than 65535 fields"), "%s",
              sdead->fields[0] + strlen(sdead->fields[0]) - 60);
}

#define ADDS_A_FIELD                                                                               \
    (struct expect)                                                                                \
    {                                                                                              \
        .full_dead = true                                                                          \
    }
#define PASSES                                                                                     \
    (struct expect)                                                                                \
    {                                                                                              \
        .full_dead = false                                                                         \
    }

Test(limits, parse_json_again_refuses_a_merge_past_the_field_limit)
{
    check(&sl_stage_parse_json, "on_error: dead_letter", ADDS_A_FIELD);
}

Test(limits, parse_regex_on_a_field_refuses_groups_past_the_field_limit)
{
    check(&sl_stage_parse_regex,
          "field: msg\npatterns: ['^(?<k>\\w+)=(?<v>\\w+)$']\non_error: dead_letter", ADDS_A_FIELD);
}

Test(limits, parse_logfmt_on_a_field_refuses_pairs_past_the_field_limit)
{
    check(&sl_stage_parse_logfmt, "field: msg\non_error: dead_letter", ADDS_A_FIELD);
}

Test(limits, parse_kv_on_a_field_refuses_pairs_past_the_field_limit)
{
    check(&sl_stage_parse_kv, "field: msg\non_error: dead_letter", ADDS_A_FIELD);
}

Test(limits, parse_csv_on_a_field_refuses_columns_past_the_field_limit)
{
    check(&sl_stage_parse_csv, "field: row\ncolumns: [x, y]\non_error: dead_letter", ADDS_A_FIELD);
}

Test(limits, parse_timestamp_refuses_a_target_past_the_field_limit)
{
    check(&sl_stage_parse_timestamp,
          "field: t\nformats: [rfc3339]\ntarget: at\non_error: dead_letter", ADDS_A_FIELD);
}

Test(limits, remap_refuses_a_set_past_the_field_limit)
{
    check(&sl_stage_remap, "set: {added: 'id + 1'}\non_error: dead_letter", ADDS_A_FIELD);
}

Test(limits, route_passes_every_event_on)
{
    check(&sl_stage_route, "routes: {all: 'exists(id)'}", (struct expect){.port = "all"});
}

Test(limits, filter_passes_every_event_on)
{
    check(&sl_stage_filter, "condition: 'exists(id) && level == \"error\"'", PASSES);
}

Test(limits, sample_passes_every_event_on)
{
    check(&sl_stage_sample, "rate: 1", PASSES);
}

Test(limits, dedupe_passes_every_event_on)
{
    check(&sl_stage_dedupe, "fields: [id]", PASSES);
}

Test(limits, throttle_passes_every_event_on)
{
    check(&sl_stage_throttle, "rate: 1000\nkey: [id]", PASSES);
}

Test(limits, multiline_passes_every_line_on_whole)
{
    check(&sl_stage_multiline, "start_pattern: '^\\{'", PASSES);
}

Test(limits, aggregate_counts_every_event)
{
    struct t_capture *jdead, *sdead;
    struct t_capture *c =
        run(&sl_stage_aggregate, "window: 1h\ngroup_by: [level]\nmetrics: {n: count}", NULL, &jdead,
            &sdead);
    assert_parse_json_dead(jdead);
    long n = 0;
    for (size_t i = 0; i < c->n; i++) n += strtol(strstr(c->fields[i], "n=I:") + 4, NULL, 10);
    cr_assert_eq(n, 6);
}

Test(limits, only_on_error_fail_stops_the_run)
{
    char src_yaml[256];
    snprintf(src_yaml, sizeof src_yaml, "path: %s\nfollow: false\ncheckpoint: ''", path);
    struct sl_stage *src = t_stage(p, "src", &sl_stage_file_source, src_yaml);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, "on_error: drop");
    struct sl_stage *st = t_stage(p, "stage", &sl_stage_remap, "set: {a: '1'}\non_error: fail");
    struct sl_stage *out = t_stage(p, "out", &t_capture, NULL);
    t_connect_port(p, src, NULL, json);
    t_connect_port(p, json, NULL, st);
    t_connect_port(p, st, NULL, out);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), SL_ELIMIT);
    cr_assert_str_eq(err.stage, "stage");
    cr_assert_str_eq(err.msg, "set 'a': more than 65535 fields");
}
