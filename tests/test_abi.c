/* The public structs that may grow carry their size: sl_error (0: 0.1's layout),
 * sl_pipeline_options (set by sl_pipeline_options_init) and sl_stage_stats (set by the
 * caller). A record smaller than 0.1's is refused and left as it was; a caller built
 * with a larger struct (a later header) gets the fields this library knows and nothing
 * written past them. Built as a user's program: shared library, public headers. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

#include <sluice/builtins.h>
#include <sluice/sluice.h>

Test(abi, error_of_size_zero_is_the_first_layout)
{
    struct sl_error e = {0};
    cr_assert_eq(sl_error_at(&e, SL_EIO, "f.yaml", 3, 4, "disk %d", 7), SL_EIO);
    cr_assert_eq(e.code, SL_EIO);
    cr_assert_str_eq(e.msg, "disk 7");
    cr_assert_str_eq(e.file, "f.yaml");
    cr_assert_eq(e.line, 3);
    cr_assert_eq(e.size, 0);
    sl_error_clear(&e);
    cr_assert_eq(e.code, 0);
    cr_assert_str_eq(e.msg, "");
}

Test(abi, error_init_keeps_its_size)
{
    struct sl_error e = SL_ERROR_INIT;
    cr_assert_eq(e.size, sizeof e);
    sl_error_set(&e, SL_EINVAL, "x");
    sl_error_clear(&e);
    cr_assert_eq(e.size, sizeof e);
    cr_assert_eq(e.code, 0);
}

Test(abi, error_too_small_is_not_written)
{
    struct sl_error e = {.size = 8};
    cr_assert_eq(sl_error_set(&e, SL_EIO, "disk"), SL_EIO);
    cr_assert_eq(e.code, 0);
    cr_assert_str_eq(e.msg, "");
    struct sl_config *cfg = sl_config_parse("a: [", 4, "bad.yaml", &e);
    cr_assert_null(cfg);
    cr_assert_eq(e.code, 0);
    cr_assert_str_eq(e.file, "");
}

/* A caller built with a later header: one more field after 0.1's. */
struct stats_later {
    struct sl_stage_stats s;
    uint64_t later;
};

Test(abi, stats_fill_up_to_the_callers_size)
{
    struct sl_pipeline *p = sl_pipeline_new(NULL, NULL, NULL);
    struct sl_registry *reg = sl_registry_new();
    cr_assert_eq(sl_registry_add_builtins(reg, NULL), 0);
    const char *yaml = "sources: {in: {type: generate, lines: [a, b, c], count: 3}}\n"
                       "sinks: {out: {type: blackhole, inputs: [in]}}\n";
    struct sl_config *cfg = sl_config_parse(yaml, strlen(yaml), "t.yaml", NULL);
    cr_assert_eq(sl_pipeline_load(p, reg, cfg, NULL), 0);
    cr_assert_eq(sl_pipeline_run(p, NULL), 0);
    struct sl_stage *out = sl_pipeline_find(p, "out");

    struct sl_stage_stats none = {0};
    none.events_in = 99;
    cr_assert_eq(sl_stage_stats(out, &none), SL_EINVAL);
    cr_assert_eq(none.events_in, 99); /* untouched */

    struct sl_stage_stats st = {.size = sizeof st};
    cr_assert_eq(sl_stage_stats(out, &st), 0);
    cr_assert_eq(st.events_in, 3);
    cr_assert_eq(st.size, sizeof st);
    cr_assert(st.finished);

    /* A caller built with 0.1's header: the struct ended with `finished`. */
    struct sl_stage_stats old;
    memset(&old, 0xab, sizeof old);
    old.size = offsetof(struct sl_stage_stats, finished) + sizeof(bool);
    cr_assert_eq(sl_stage_stats(out, &old), 0);
    cr_assert_eq(old.events_in, 3);
    cr_assert(old.finished);
    cr_assert_eq(old.batch_count[0], 0xababababababababULL); /* past its size: not written */
    cr_assert_eq(old.event_age_ns, (int64_t)0xababababababababULL);
    uint64_t timed = 0;
    for (int i = 0; i < SL_STAGE_LATENCY_BUCKETS; i++) timed += st.batch_count[i];
    cr_assert_eq(timed, st.batches_in); /* fields added after 0.1, for a caller of today's */
    cr_assert_eq(st.aged_batches, st.batches_in);

    struct stats_later later = {.s.size = sizeof later, .later = 0xfeed};
    cr_assert_eq(sl_stage_stats(out, &later.s), 0);
    cr_assert_eq(later.s.events_in, 3);
    cr_assert_eq(later.s.acked, 3);
    cr_assert_eq(later.later, 0xfeed); /* a field this library does not know: not written */
    cr_assert_eq(later.s.size, sizeof later);

    sl_pipeline_free(p);
    sl_config_free(cfg);
    sl_registry_free(reg);
}

struct options_later {
    struct sl_pipeline_options o;
    uint64_t later;
};

Test(abi, pipeline_options_by_size)
{
    struct sl_pipeline_options o;
    memset(&o, 0, sizeof o);
    o.batch_max_events = 5;
    struct sl_error e = {0};
    cr_assert_null(sl_pipeline_new(NULL, &o, &e));
    cr_assert_eq(e.code, SL_EINVAL);
    cr_assert_str_eq(e.msg, "pipeline options: size below libsluice 0.1's: fill them with "
                            "sl_pipeline_options_init()");
    cr_assert_eq(sl_pipeline_options_from_config(&o, NULL, &e), SL_EINVAL);

    struct options_later later;
    sl_pipeline_options_init(&later.o);
    cr_assert_eq(later.o.size, sizeof later.o);
    later.o.size = sizeof later;
    later.o.batch_max_events = 2;
    later.later = 1;
    struct sl_pipeline *p = sl_pipeline_new(NULL, &later.o, &e);
    cr_assert(p, "%s", e.msg);
    sl_pipeline_free(p);
}

static enum sl_poll never_poll(struct sl_stage *stage, struct sl_batch **out)
{
    (void)stage, (void)out;
    return SL_DONE;
}

/* A table of an older ABI is read by a registry only: sl_pipeline_add says so. Only the
 * first two fields (abi, name) are read before the refusal, as for any version. */
Test(abi, older_table_given_to_pipeline_add_is_sent_to_a_registry)
{
    struct sl_stage_type t = {.abi = 1, .name = "old", .kind = SL_SOURCE, .poll = never_poll};
    struct sl_error e = {0};
    struct sl_pipeline *p = sl_pipeline_new(NULL, NULL, &e);
    cr_assert_null(sl_pipeline_add(p, "s", &t, NULL, &e));
    cr_assert_eq(e.code, SL_EINVAL);
    cr_assert_str_eq(e.msg, "stage type 'old' is of stage ABI 1: add it to a registry "
                            "(sl_registry_add), which reads older tables, and use its copy");
    sl_pipeline_free(p);
}
