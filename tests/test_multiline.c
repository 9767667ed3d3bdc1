/* multiline: start and continuation patterns, separators, size bound, per-origin groups,
 * the timeout (driven by a paused source that the sink resumes: no sleeping), and the
 * end of the input. */
#include <criterion/criterion.h>
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
}

TestSuite(multiline, .init = setup, .fini = teardown, .timeout = 30);

static const char *const trace[] = {"2024-01-02 10:00:00 INFO start",
                                    "2024-01-02 10:00:01 ERROR boom",
                                    "java.lang.IllegalStateException: bad",
                                    "\tat a.B.c(B.java:10)",
                                    "\tat a.B.main(B.java:3)",
                                    "2024-01-02 10:00:02 INFO done",
                                    NULL};

Test(multiline, start_pattern_joins_until_the_next_start)
{
    struct sl_stage *st;
    struct t_capture *c =
        t_through(p, &sl_stage_multiline, "start_pattern: '^\\d{4}-\\d\\d-\\d\\d '", trace, &st);
    cr_assert_eq(c->n, 3);
    cr_assert_str_eq(c->payloads[0], trace[0]);
    cr_assert_str_eq(c->payloads[1], "2024-01-02 10:00:01 ERROR boom\n"
                                     "java.lang.IllegalStateException: bad\n"
                                     "\tat a.B.c(B.java:10)\n"
                                     "\tat a.B.main(B.java:3)");
    cr_assert_str_eq(c->payloads[2], trace[5]);
    cr_assert_str_eq(c->fields[1], "", "joined events carry no fields");
    struct sl_stage_stats s = t_stats(st);
    cr_assert_eq(s.events_in, 6);
    cr_assert_eq(s.events_out, 3);
}

Test(multiline, continuation_pattern_and_separator)
{
    struct t_capture *c =
        t_through(p, &sl_stage_multiline,
                  "continuation_pattern: '^(\\s|java\\.)'\nseparator: ' | '", trace, NULL);
    cr_assert_eq(c->n, 3);
    cr_assert_str_eq(c->payloads[1], "2024-01-02 10:00:01 ERROR boom | "
                                     "java.lang.IllegalStateException: bad | "
                                     "\tat a.B.c(B.java:10) | \tat a.B.main(B.java:3)");
}

Test(multiline, max_bytes_cuts_before_an_event_grows_too_big)
{
    static const char *const lines[] = {
        "S 1", " aaaa", " bbbb", " cccc", "S 2", " this one is long", NULL};
    struct t_capture *c =
        t_through(p, &sl_stage_multiline, "start_pattern: '^S'\nmax_bytes: 16", lines, NULL);
    cr_assert_eq(c->n, 4);
    cr_assert_str_eq(c->payloads[0], "S 1\n aaaa\n bbbb"); /* 15 bytes; " cccc" would make 21 */
    cr_assert_str_eq(c->payloads[1], " cccc");
    cr_assert_str_eq(c->payloads[2], "S 2");
    cr_assert_str_eq(c->payloads[3], " this one is long", "a long line stays whole");
}

Test(multiline, origins_are_joined_separately)
{
    static const char *const a[] = {"S a1", " a2", " a3", "S a4", NULL};
    static const char *const b[] = {"S b1", " b2", "S b3", " b4", NULL};
    struct sl_stage *sa = t_add_lines(p, a);
    struct sl_stage *sb = t_stage(p, "src_b", &t_text, "batch: 1\norigin: b.log");
    struct t_text *tb = sl_stage_state(sb);
    tb->lines.n = 4;
    tb->lines.items = b;
    ((struct t_text *)sl_stage_state(sa))->batch = 1;
    struct sl_stage *ml = t_stage(p, "ml", &sl_stage_multiline, "start_pattern: '^S'");
    struct sl_stage *out = t_stage(p, "out", &t_capture, NULL);
    t_connect_port(p, sa, NULL, ml);
    t_connect_port(p, sb, NULL, ml);
    t_connect_port(p, ml, NULL, out);
    t_run_ok(p);
    struct t_capture *c = sl_stage_state(out);
    cr_assert_eq(c->n, 4);
    int seen = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (!strcmp(c->payloads[i], "S a1\n a2\n a3")) seen |= 1;
        if (!strcmp(c->payloads[i], "S a4")) seen |= 2;
        if (!strcmp(c->payloads[i], "S b1\n b2")) seen |= 4;
        if (!strcmp(c->payloads[i], "S b3\n b4")) seen |= 8;
    }
    cr_assert_eq(seen, 15);
}

/* The sink resumes the paused source once the first event has arrived: it can only
 * arrive by the timeout, since the next start line is held back by the pause. */
static void resume_source(struct sl_stage *sink, struct t_capture *c)
{
    (void)sink;
    if (c->n >= 1) t_text_resume(c->hook_arg);
}

Test(multiline, a_pending_event_leaves_on_timeout)
{
    static const char *const lines[] = {"S 1", " a", " b", "S 2", " c", NULL};
    struct sl_stage *src = t_add_lines(p, lines);
    ((struct t_text *)sl_stage_state(src))->pause_after = 3;
    struct sl_stage *ml =
        t_stage(p, "ml", &sl_stage_multiline, "start_pattern: '^S'\ntimeout: 20ms");
    struct sl_stage *out = t_stage(p, "out", &t_capture, NULL);
    struct t_capture *c = sl_stage_state(out);
    c->on_write = resume_source;
    c->hook_arg = src;
    t_connect_port(p, src, NULL, ml);
    t_connect_port(p, ml, NULL, out);
    t_run_ok(p);
    cr_assert(((struct t_text *)sl_stage_state(src))->paused, "the source did pause");
    cr_assert_eq(c->n, 2);
    cr_assert_str_eq(c->payloads[0], "S 1\n a\n b");
    cr_assert_str_eq(c->payloads[1], "S 2\n c", "the last event leaves at the end of input");
}

Test(multiline, config_errors)
{
    struct sl_error err = {0};
    struct sl_config *cfg = sl_config_parse("timeout: 1s", 11, "t.yaml", &err);
    cr_assert_null(sl_pipeline_add(p, "ml", &sl_stage_multiline, cfg, &err));
    sl_config_free(cfg);
    cr_assert_str_eq(err.msg, "multiline needs one of 'start_pattern' and 'continuation_pattern'");
    const char *y = "start_pattern: '(x'";
    cfg = sl_config_parse(y, strlen(y), "t.yaml", &err);
    cr_assert_null(sl_pipeline_add(p, "ml", &sl_stage_multiline, cfg, &err));
    sl_config_free(cfg);
    cr_assert_str_eq(err.msg, "bad pattern: missing closing parenthesis (near byte 2)");
    cr_assert_eq(err.col, 16);
}
