/* The stages' timings in sl_stage_stats (issue 15): every batch a stage handled is in
 * its histogram once, a workers stage's time is in its busy time, a sink knows the age
 * of the events it received, and a file source that read everything is 0 bytes behind. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sluice/builtins.h>
#include <sluice/sluice.h>

#include "runtime/internal.h"

#define EPOCH_2024_S 1704067200LL /* where the generate source's time starts */

static struct sl_stage_stats stats_of(struct sl_pipeline *p, const char *name)
{
    struct sl_stage_stats st = {.size = sizeof st};
    cr_assert_eq(sl_stage_stats(sl_pipeline_find(p, name), &st), 0);
    return st;
}

static uint64_t batches_timed(const struct sl_stage_stats *st)
{
    uint64_t n = 0;
    for (int i = 0; i < SL_STAGE_LATENCY_BUCKETS; i++) n += st->batch_count[i];
    return n;
}

/* Runs `yaml` to its end; the pipeline, to free with its registry and config. */
static struct sl_pipeline *run(const char *yaml, struct sl_registry **reg, struct sl_config **cfg)
{
    struct sl_error e = SL_ERROR_INIT;
    *cfg = sl_config_parse(yaml, strlen(yaml), "t.yaml", &e);
    cr_assert_not_null(*cfg, "%s", e.msg);
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    cr_assert_eq(sl_pipeline_options_from_config(&o, *cfg, &e), 0, "%s", e.msg);
    struct sl_pipeline *p = sl_pipeline_new(NULL, &o, &e);
    cr_assert_not_null(p, "%s", e.msg);
    *reg = sl_registry_new();
    cr_assert_eq(sl_registry_add_builtins(*reg, NULL), 0);
    cr_assert_eq(sl_pipeline_load(p, *reg, *cfg, &e), 0, "%s", e.msg);
    cr_assert_eq(sl_pipeline_run(p, &e), 0, "%s", e.msg);
    return p;
}

static void check_run(const char *workers)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "sources: {in: {type: generate, lines: ['{\"a\": 1}'], count: 1000, batch: 100}}\n"
             "transforms: {json: {type: parse_json, inputs: [in], workers: %s}}\n"
             "sinks: {out: {type: blackhole, inputs: [json]}}\n",
             workers);
    struct sl_registry *reg;
    struct sl_config *cfg;
    struct sl_pipeline *p = run(yaml, &reg, &cfg);
    const char *names[] = {"in", "json", "out"};
    for (int i = 0; i < 3; i++) {
        struct sl_stage_stats st = stats_of(p, names[i]);
        cr_expect_eq(batches_timed(&st), 10, "%s: %llu batches timed", names[i],
                     (unsigned long long)batches_timed(&st));
        cr_expect_gt(st.batch_ns, 0, "%s", names[i]);
        cr_expect_geq(st.busy_ns, st.batch_ns, "%s: busy %llu < batches %llu", names[i],
                      (unsigned long long)st.busy_ns, (unsigned long long)st.batch_ns);
    }
    struct sl_stage_stats out = stats_of(p, "out"), in = stats_of(p, "in");
    cr_expect_eq(out.aged_batches, 10);
    cr_expect_eq(in.aged_batches, 0); /* sinks only */
    int64_t since_2024 = ((int64_t)time(NULL) - EPOCH_2024_S) * 1000000000LL;
    cr_expect(out.event_age_ns > since_2024 - 2000000000LL &&
                  out.event_age_ns < since_2024 + 2000000000LL,
              "age %lld ns, since 2024 %lld ns", (long long)out.event_age_ns,
              (long long)since_2024);
    sl_pipeline_free(p);
    sl_config_free(cfg);
    sl_registry_free(reg);
}

Test(stats, every_batch_is_timed_once_on_the_loop)
{
    check_run("0");
}

Test(stats, every_batch_is_timed_once_on_workers_and_counts_as_busy)
{
    check_run("2");
}

Test(stats, a_file_read_to_its_end_is_no_byte_behind)
{
    char dir[] = "/tmp/sl_stats_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256], yaml[1024];
    snprintf(path, sizeof path, "%s/in.log", dir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 5000; i++) fprintf(f, "line %d\n", i);
    long size = ftell(f);
    fclose(f);
    snprintf(yaml, sizeof yaml,
             "pipeline: {data_dir: %s}\n"
             "sources: {in: {type: file, path: %s, follow: false}}\n"
             "sinks: {out: {type: blackhole, inputs: [in]}}\n",
             dir, path);
    struct sl_registry *reg;
    struct sl_config *cfg;
    struct sl_pipeline *p = run(yaml, &reg, &cfg);
    struct sl_stage_stats in = stats_of(p, "in");
    cr_expect_eq(in.progress_total, (uint64_t)size);
    cr_expect_eq(in.progress_total - in.progress_done, 0); /* sluice_source_lag_bytes */
    cr_expect_eq(batches_timed(&in), in.batches_in);
    sl_pipeline_free(p);
    sl_config_free(cfg);
    sl_registry_free(reg);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

/* parse_json -> filter on workers run as one chain: its jobs are timed for the head. */
Test(stats, a_chains_jobs_are_timed_for_its_head)
{
    struct sl_registry *reg;
    struct sl_config *cfg;
    struct sl_pipeline *p =
        run("sources: {in: {type: generate, lines: ['{\"a\": 1}'], count: 1000, batch: 100}}\n"
            "transforms:\n"
            "  json: {type: parse_json, inputs: [in], workers: 2}\n"
            "  keep: {type: filter, inputs: [json], condition: 'a == 1', workers: 2}\n"
            "sinks: {out: {type: blackhole, inputs: [keep]}}\n",
            &reg, &cfg);
    struct sl_stage_stats json = stats_of(p, "json"), keep = stats_of(p, "keep");
    cr_assert_eq(sl_pipeline_find(p, "keep")->chain_head, sl_pipeline_find(p, "json"));
    cr_expect_eq(keep.events_out, 1000);
    cr_expect_eq(batches_timed(&json), 10);
    cr_expect_eq(batches_timed(&keep), 0);
    cr_expect_geq(json.busy_ns, json.batch_ns);
    sl_pipeline_free(p);
    sl_config_free(cfg);
    sl_registry_free(reg);
}
