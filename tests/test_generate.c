/* The built-ins of issue 3 through the C API: `generate` (deterministic lines, count,
 * batch, literal lines, interval from a timer), `sample` and `blackhole`. */
#include <criterion/criterion.h>
#include <string.h>

#include <sluice/builtins.h>

#include "helpers.h"

static struct sl_pipeline *p;

static void setup(void)
{
    p = sl_pipeline_new(NULL, NULL, NULL);
    cr_assert_not_null(p);
}

static void teardown(void)
{
    sl_pipeline_free(p);
}

TestSuite(generate, .init = setup, .fini = teardown, .timeout = 20);

static void run_ok(void)
{
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "run: %s", err.msg);
    cr_assert_eq(sl_pipeline_live_batches(p), 0);
}

/* A sink that keeps a copy of every payload, joined by newlines. */
struct grab {
    char *text;     /* everything received */
    size_t len;     /* bytes in text */
    int64_t writes; /* write() calls */
};

static enum sl_poll grab_write(struct sl_stage *s, struct sl_batch *b)
{
    struct grab *g = sl_stage_state(s);
    g->writes++;
    for (size_t i = 0; i < sl_batch_count(b); i++) {
        size_t n;
        const char *pl = sl_event_payload(sl_batch_event_const(b, i), &n);
        g->text = realloc(g->text, g->len + n + 2);
        memcpy(g->text + g->len, pl, n);
        g->len += n;
        g->text[g->len++] = '\n';
        g->text[g->len] = '\0';
    }
    sl_ack(b);
    return SL_READY;
}

static void grab_close(struct sl_stage *s)
{
    free(((struct grab *)sl_stage_state(s))->text);
}

static const struct sl_stage_type grab = {
    .abi = SL_STAGE_ABI,
    .name = "grab",
    .kind = SL_SINK,
    .doc = "test sink keeping payloads",
    .state_size = sizeof(struct grab),
    .write = grab_write,
    .close = grab_close,
};

static struct grab *generate_into_grab(const char *yaml)
{
    struct sl_stage *src = t_add(p, "gen", &sl_stage_generate, yaml);
    struct sl_stage *out = t_add(p, "out", &grab, NULL);
    t_connect(p, src, out);
    run_ok();
    return sl_stage_state(out);
}

Test(generate, same_seed_gives_the_same_lines)
{
    struct grab *g = generate_into_grab("count: 3\nformat: json\nseed: 42");
    char *first = strdup(g->text);
    sl_pipeline_free(p);
    p = sl_pipeline_new(NULL, NULL, NULL);
    g = generate_into_grab("count: 3\nformat: json\nseed: 42");
    cr_assert_str_eq(g->text, first);
    cr_assert_eq(strncmp(first, "{\"time\":\"2024-01-01T00:00:00.", 29), 0, "%s", first);
    size_t lines = 0;
    for (char *c = first; *c; c++) lines += *c == '\n';
    cr_assert_eq(lines, 3);
    free(first);
}

Test(generate, formats_look_like_their_names)
{
    struct grab *g = generate_into_grab("count: 1\nformat: apache");
    cr_assert(strstr(g->text, " - - [01/Jan/2024:00:00:") && strstr(g->text, " HTTP/1.1\" "), "%s",
              g->text);
    sl_pipeline_free(p);
    p = sl_pipeline_new(NULL, NULL, NULL);
    g = generate_into_grab("count: 1\nformat: syslog");
    cr_assert(g->text[0] == '<' && strstr(g->text, ">1 2024-01-01T00:00:"), "%s", g->text);
}

Test(generate, literal_lines_round_robin_in_batches_of_two)
{
    struct grab *g = generate_into_grab("count: 5\nbatch: 2\nlines: [a, bb, '']");
    cr_assert_str_eq(g->text, "a\nbb\n\na\nbb\n");
    cr_assert_eq(g->writes, 3);
}

static int64_t started_ms;

Test(generate, interval_spaces_batches_with_a_timer)
{
    struct grab *g;
    struct sl_stage *src =
        t_add(p, "gen", &sl_stage_generate, "count: 4\nbatch: 1\ninterval: 30ms\nlines: [x]");
    struct sl_stage *out = t_add(p, "out", &grab, NULL);
    t_connect(p, src, out);
    started_ms = sl_stage_now_ms(src);
    run_ok();
    g = sl_stage_state(out);
    cr_assert_eq(g->writes, 4);
    /* Three pauses of 30 ms between four batches: the run cannot be shorter. */
    cr_assert_geq(sl_stage_now_ms(src) - started_ms, 90);
}

Test(generate, sample_keeps_one_in_rate_and_blackhole_acks_all)
{
    struct sl_stage *src = t_add(p, "gen", &sl_stage_generate, "count: 1000\nbatch: 64");
    struct sl_stage *smp = t_add(p, "smp", &sl_stage_sample, "rate: 7");
    struct sl_stage *out = t_add(p, "out", &sl_stage_blackhole, "print_interval: 1h");
    t_connect(p, src, smp);
    t_connect(p, smp, out);
    run_ok();
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(smp, &st);
    cr_assert_eq(st.events_out, 143); /* 0, 7, ..., 994 */
    cr_assert_eq(st.dropped, 857);
    sl_stage_stats(out, &st);
    cr_assert_eq(st.acked, 143);
    sl_stage_stats(src, &st);
    cr_assert_eq(st.acked, 1000);
    cr_assert_eq(st.progress_done, 1000);
    cr_assert_eq(st.progress_total, 1000);
}

Test(generate, bad_options_are_refused_at_init)
{
    struct sl_error err = {0};
    struct sl_config *c = t_config("count: -3");
    cr_assert_null(sl_pipeline_add(p, "gen", &sl_stage_generate, c, &err));
    cr_assert_str_eq(err.msg, "option 'count' must be 0 or more");
    cr_assert_str_eq(err.stage, "gen");
    sl_config_free(c);
    c = t_config("{}");
    memset(&err, 0, sizeof err);
    cr_assert_null(sl_pipeline_add(p, "s", &sl_stage_sample, c, &err));
    cr_assert_str_eq(err.msg, "missing option 'rate' or 'ratio' (type 'sample' needs one: keep "
                              "one event in N, or a fraction of the events)");
    sl_config_free(c);
}
