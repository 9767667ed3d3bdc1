/* sample: one in N, a ratio, by key; deterministic counts. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
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

TestSuite(sample, .init = setup, .fini = teardown, .timeout = 30);

enum { N = 1000, USERS = 40 };
static char text[N][64];
static const char *lines[N + 1];

/* {"i":0,"user":"u0"} ... with user i % 40. */
static void make_lines(void)
{
    for (int i = 0; i < N; i++) {
        snprintf(text[i], sizeof text[i], "{\"i\":%d,\"user\":\"u%d\"}", i, i % USERS);
        lines[i] = text[i];
    }
    lines[N] = NULL;
}

static struct t_capture *run(const char *yaml, struct sl_stage **st)
{
    make_lines();
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, NULL);
    t_connect_port(p, src, NULL, json);
    struct t_capture *c = t_run_after(p, json, &sl_stage_sample, yaml, NULL);
    *st = sl_pipeline_find(p, "stage");
    return c;
}

Test(sample, rate_keeps_the_first_of_every_n)
{
    struct sl_stage *st;
    struct t_capture *c = run("rate: 7", &st);
    cr_assert_eq(c->n, 143);
    for (size_t k = 0; k < c->n; k++) cr_assert_eq(strncmp(c->payloads[k], text[7 * k], 64), 0);
    cr_assert_eq(t_stats(st).dropped, 857);
}

Test(sample, ratio_keeps_that_share_evenly)
{
    struct sl_stage *st;
    struct t_capture *c = run("ratio: 0.25", &st);
    cr_assert_eq(c->n, 250);
    for (size_t k = 0; k < c->n; k++)
        cr_assert_str_eq(c->payloads[k], text[4 * k], "kept event %zu", k);
    cr_assert_eq(t_stats(st).dropped, 750);
}

/* Every user's events are all kept or all dropped; returns the users kept. */
static int users_kept(const struct t_capture *c)
{
    int kept[USERS] = {0};
    for (size_t k = 0; k < c->n; k++) {
        int i, u;
        cr_assert_eq(sscanf(c->payloads[k], "{\"i\":%d,\"user\":\"u%d\"}", &i, &u), 2);
        kept[u]++;
    }
    int users = 0;
    for (int u = 0; u < USERS; u++) {
        cr_assert(kept[u] == 0 || kept[u] == N / USERS, "user u%d: %d of %d kept", u, kept[u],
                  N / USERS);
        users += kept[u] > 0;
    }
    return users;
}

Test(sample, by_key_keeps_or_drops_all_events_of_a_key)
{
    struct sl_stage *st;
    struct t_capture *c = run("rate: 4\nkey: user", &st);
    int users = users_kept(c);
    cr_assert(users > 2 && users < 20, "%d users of 40 kept, expected about 10", users);
    cr_assert_eq(t_stats(st).dropped, (uint64_t)(N - c->n));
}

Test(sample, ratio_by_key)
{
    struct sl_stage *st;
    struct t_capture *c = run("ratio: 0.5\nkey: [user]", &st);
    int users = users_kept(c);
    cr_assert(users > 8 && users < 32, "%d users of 40 kept, expected about 20", users);
}

Test(sample, ratio_one_keeps_all_and_zero_none)
{
    struct sl_stage *st;
    struct t_capture *c = run("ratio: 1", &st);
    cr_assert_eq(c->n, N);
    sl_pipeline_free(p);
    p = t_pipeline();
    c = run("ratio: 0\nkey: user", &st);
    cr_assert_eq(c->n, 0);
}

static void expect_error(const char *yaml, const char *msg)
{
    struct sl_error err = {0};
    struct sl_config *cfg = sl_config_parse(yaml, strlen(yaml), "t.yaml", &err);
    cr_assert_null(sl_pipeline_add(p, "s", &sl_stage_sample, cfg, &err));
    sl_config_free(cfg);
    cr_assert_str_eq(err.msg, msg);
}

Test(sample, config_errors)
{
    expect_error("key: a", "missing option 'rate' or 'ratio' (type 'sample' needs one: keep one "
                           "event in N, or a fraction of the events)");
    expect_error("rate: 2\nratio: 0.5", "give either 'rate' or 'ratio', not both");
    expect_error("rate: 0", "option 'rate' must be 1 or more");
    expect_error("ratio: 1.5", "option 'ratio' must be from 0 to 1");
}
