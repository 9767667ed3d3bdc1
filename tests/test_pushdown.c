/* Predicate pushdown (issue 14): the bytes a condition implies (sl_expr_prefilter_new,
 * sl_expr_prefilter_may_match), the runtime handing a filter's condition to the stage
 * before it (sl_stage_downstream_condition) only when they form a chain, and parse_json
 * pruning lines: the same events out, the same dead letters and the same counts of both
 * stages as a filter that declares nothing; the byte search's vector loops against memmem
 * on JSONTestSuite, the fuzz corpus and generated text. */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/builtins.h>

#include "expr/internal.h"
#include "helpers.h"
#include "stage_helpers.h"

/* ---- the bytes a condition implies ---------------------------------------------------- */

static struct sl_expr_prefilter *pf_of(const char *cond)
{
    struct sl_error err = {0};
    struct sl_expr *e = sl_expr_compile(cond, strlen(cond), &err);
    cr_assert(e, "%s: %s", cond, err.msg);
    struct sl_expr_prefilter *pf = sl_expr_prefilter_new(e);
    sl_expr_free(e); /* the prefilter keeps its own copy of the bytes */
    return pf;
}

static bool may(const struct sl_expr_prefilter *pf, const char *json)
{
    return sl_expr_prefilter_may_match(pf, json, strlen(json));
}

Test(prefilter, conditions_that_imply_no_bytes)
{
    static const char *const none[] = {"status >= 500",
                                       "level != \"debug\"",
                                       "!(level == \"error\")",
                                       "level in [\"a\", null]",
                                       "level == \"a\" || status == 1",
                                       "exists(level)",
                                       "msg contains \"x\"",
                                       "level =~ /err/",
                                       "lower(level) == \"error\"",
                                       "level in [\"a\", 1]",
                                       NULL};
    for (int i = 0; none[i]; i++) cr_assert_null(pf_of(none[i]), "%s", none[i]);
}

/* A condition, a JSON text, and whether the condition may hold on it. */
struct case_ {
    const char *cond, *json;
    bool may;
    const char *why;
};

static const struct case_ cases[] = {
    {"level == \"error\"", "{\"level\":\"error\"}", true, "the bytes"},
    {"level == \"error\"", "{\"level\":\"info\",\"msg\":\"errors\"}", false, "no quote after"},
    {"\"error\" == level", "{\"level\":\"info\",\"msg\":\"an error\"}", false, "either way round"},
    {"\"error\" == level", "{\"level\":\"info\",\"msg\":\"error\"}", true, "anywhere will do"},
    {"level in [\"error\", \"warn\"]", "{\"level\":\"warn\"}", true, "a list"},
    {"level in [\"error\", \"warn\"]", "{\"level\":\"error\"}", true, "a list"},
    {"level in [\"error\", \"warn\"]", "{\"level\":\"info\"}", false, "a list"},
    {"status >= 500 && level == \"error\"", "{\"status\":503,\"level\":\"warn\"}", false, "&&"},
    {"status >= 500 && level == \"error\"", "{\"status\":200,\"level\":\"error\"}", true, "&&"},
    {"level == \"error\" || level == \"warn\" || service in [\"auth\"]", "{\"service\":\"auth\"}",
     true, "||"},
    {"level == \"error\" || level == \"warn\"", "{\"level\":\"warn\"}", true, "||"},
    {"level == \"error\" || level == \"warn\"", "{\"level\":\"info\"}", false, "||"},
    {"level == \"error\"", "{\"level\":\"err\\u006fr\"}", true, "\\u006f is 'o'"},
    {"level == \"error\"", "{\"level\":\"\\u0065RROR\"}", true, "\\u0065 is 'e'"},
    {"level == \"error\"", "{\"level\":\"info\",\"msg\":\"caf\\u00e9\"}", false, "not ASCII"},
    {"level == \"error\"", "{\"level\":\"info\",\"msg\":\"\\u0045\"}", false, "'E' is not in it"},
    {"level == \"error\"", "{\"level\":\"info\",\"msg\":\"say \\\"hi\\\" \\n\"}", false,
     "short escapes spell no plain byte"},
    {"level == \"error\"", "{\"level\":\"info\",\"msg\":\"\\u00\"}", true, "malformed"},
    {"level == \"error\"", "{\"level\":\"info\",\"msg\":\"\\u00zz\"}", true, "malformed"},
    {"path == \"/api\"", "{\"path\":\"/healthz\"}", false, "'/' and no backslash"},
    {"path == \"/api\"", "{\"path\":\"\\/api\"}", true, "'/' may be \\/"},
    {"path == \"/api\"", "{\"path\":\"/x\",\"m\":\"\\n\"}", true, "'/': any backslash"},
    {"name == \"caf\\u00e9\"", "{\"name\":\"caf\\u00e9\"}", true, "not ASCII: any backslash"},
    {"name == \"caf\\u00e9\"", "{\"name\":\"caf\xc3\xa9\"}", true, "the bytes"},
    {"name == \"caf\\u00e9\"", "{\"name\":\"cafe\"}", false, "neither"},
};

Test(prefilter, the_bytes_and_the_escapes)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sl_expr_prefilter *pf = pf_of(cases[i].cond);
        cr_assert(pf, "%s", cases[i].cond);
        cr_assert_eq(may(pf, cases[i].json), cases[i].may, "%s on %s: %s", cases[i].cond,
                     cases[i].json, cases[i].why);
        sl_expr_prefilter_free(pf);
    }
    cr_assert(sl_expr_prefilter_may_match(NULL, "{}", 2), "no prefilter: anything may match");
}

/* Text from the bytes that matter to `needles`: their own, quotes, backslashes, \u
 * escapes' digits; a needle planted at a random place (the first and last positions
 * included) in half of them. Returns the length; the text is at buf[0..len). */
static size_t generated(char *buf, size_t cap, const char *const *needles, size_t n)
{
    static const char bytes[] = "\"\\u0065{}:,erowanx/ ";
    size_t len = (size_t)rand() % (cap + 1);
    for (size_t i = 0; i < len; i++) buf[i] = bytes[rand() % (int)(sizeof bytes - 1)];
    const char *nd = needles[rand() % (int)n];
    size_t k = strlen(nd);
    if (rand() % 2 && k <= len) {
        size_t at = rand() % 3 == 0   ? len - k
                    : rand() % 3 == 0 ? 0
                                      : (size_t)rand() % (len - k + 1);
        memcpy(buf + at, nd, k);
    }
    return len;
}

/* The one-pass search (a few needles of four bytes or more, and backslashes, in one
 * vector loop: the CPU's widest and SSE2) answers as the general one (each needle, then
 * each backslash) on every text; exact-size copies, so that a read past the end is caught
 * under ASan. */
Test(prefilter, the_one_pass_search_answers_as_the_general_one)
{
    static const struct {
        const char *cond;
        const char *needles[4];
    } conds[] = {
        {"level == \"error\"", {"\"error\""}},
        {"level == \"error\" || level == \"warn\"", {"\"error\"", "\"warn\""}},
        {"level in [\"warn\", \"error\", \"no\", \"e\"]", {"\"warn\"", "\"no\"", "\"e\""}},
        {"a in [\"ab\", \"rn\", \"wa\", \"error\"]", {"\"ab\"", "\"rn\"", "\"wa\"", "\"error\""}},
        {"p == \"a/b\" || q == \"row\"", {"\"a/b\"", "\"row\""}},
        {"x in [\"e\", \"er\", \"err\", \"erro\", \"error\"]", {"\"e\"", "\"erro\""}},
    };
    char buf[160];
    srand(14);
    for (size_t c = 0; c < sizeof conds / sizeof conds[0]; c++) {
        struct sl_expr_prefilter *pf = pf_of(conds[c].cond);
        cr_assert(pf, "%s", conds[c].cond);
        size_t nn = 0, yes = 0;
        while (nn < 4 && conds[c].needles[nn]) nn++;
        for (int t = 0; t < 20000; t++) {
            sl__prefilter_use(pf, t % 2 ? SL__FIND_SSE2 : SL__FIND_BEST);
            size_t len = generated(buf, sizeof buf, conds[c].needles, nn);
            char *text = malloc(len ? len : 1);
            memcpy(text, buf, len);
            bool got = sl_expr_prefilter_may_match(pf, text, len);
            bool want = sl__prefilter_searched(pf, text, len);
            cr_assert_eq(got, want, "%s on %.*s", conds[c].cond, (int)len, text);
            yes += got;
            free(text);
        }
        cr_assert(yes > 500 && yes < 19500, "%s: %zu of 20000 may match", conds[c].cond, yes);
        sl_expr_prefilter_free(pf);
    }
}

/* ---- pipelines with and without the pushdown ---------------------------------------------- */

static struct sl_pipeline *p, *first; /* first: the run with the pushdown, kept */

static void setup(void)
{
    p = t_pipeline();
    first = NULL;
}

static void teardown(void)
{
    sl_pipeline_free(p);
    sl_pipeline_free(first);
}

TestSuite(pushdown, .init = setup, .fini = teardown, .timeout = 60);

/* A filter that declares nothing: no pushdown. */
static struct sl_stage_type plain_filter;

static const struct sl_stage_type *filter_type(bool pushdown)
{
    plain_filter = sl_stage_filter;
    plain_filter.name = "plain_filter";
    plain_filter.init = NULL;
    return pushdown ? &sl_stage_filter : &plain_filter;
}

static const char *const lines[] = {"{\"level\":\"info\",\"msg\":\"ok\"}",
                                    "{\"level\":\"error\",\"msg\":\"up\\\"stream\"}",
                                    "{\"level\":\"err\\u006fr\",\"msg\":\"escaped\"}",
                                    "{\"level\":\"warn\",\"msg\":\"caf\\u00e9\"}",
                                    "{\"level\":\"info\",\"msg\":\"an error\"}",
                                    "{\"level\":\"info\",\"msg\":\"\\\"error\\\"\"}",
                                    "not json at all",
                                    "{\"level\":\"info\",\"msg\":\"truncated\"",
                                    "{\"level\":\"info\",\"msg\":\"bad \xff byte\"}",
                                    "[\"error\"]",
                                    "",
                                    "   {\"level\" : \"error\" }  ",
                                    "{\"level\":\"info\",\"level\":\"error\"}",
                                    "{\"level\":\"error\",\"level\":\"info\"}",
                                    "{\"msg\":{\"level\":\"error\"},\"level\":\"debug\"}",
                                    "{}",
                                    NULL};

struct outcome {
    struct t_capture *out, *dead;
    struct sl_stage_stats json, filter;
    bool linked; /* the filter's condition reached parse_json */
};

/* src -> json (parse_json, `json_yaml`) -> stage (filter, `yaml`) -> out, json.dead_letter
 * -> dead when parse_json sends dead letters. */
static struct outcome run(bool pushdown, const char *json_yaml, const char *yaml)
{
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, json_yaml);
    struct sl_stage *dead = NULL;
    t_connect_port(p, src, NULL, json);
    if (json_yaml && strstr(json_yaml, "dead_letter")) {
        dead = t_stage(p, "dead", &t_capture, NULL);
        t_connect_port(p, json, "dead_letter", dead);
    }
    struct outcome o = {.out = t_run_after(p, json, filter_type(pushdown), yaml, NULL)};
    o.dead = dead ? sl_stage_state(dead) : NULL;
    o.json = t_stats(json);
    o.filter = t_stats(sl_pipeline_find(p, "stage"));
    o.linked = sl_stage_downstream_condition(json) != NULL;
    return o;
}

static void same_stats(const struct sl_stage_stats *a, const struct sl_stage_stats *b)
{
    cr_assert_eq(a->events_in, b->events_in);
    cr_assert_eq(a->events_out, b->events_out);
    cr_assert_eq(a->bytes_in, b->bytes_in);
    cr_assert_eq(a->bytes_out, b->bytes_out);
    cr_assert_eq(a->dropped, b->dropped);
    cr_assert_eq(a->errors, b->errors);
}

static void same_capture(const struct t_capture *a, const struct t_capture *b)
{
    if (!a || !b) {
        cr_assert_eq(a, b);
        return;
    }
    cr_assert_eq(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        cr_assert_str_eq(a->json[i], b->json[i]);
        cr_assert_str_eq(a->fields[i], b->fields[i]);
    }
}

/* Runs the pipeline both ways (a fresh pipeline each); the same events come out. */
static void both_ways(const char *json_yaml, const char *yaml, struct outcome *with,
                      struct outcome *without)
{
    *with = run(true, json_yaml, yaml);
    first = p; /* its captures stay readable */
    p = t_pipeline();
    *without = run(false, json_yaml, yaml);
    cr_assert(with->linked);
    cr_assert_not(without->linked);
    same_capture(with->out, without->out);
    same_capture(with->dead, without->dead);
}

/* Both ways, and the same counts too. */
static struct outcome both(const char *json_yaml, const char *yaml)
{
    struct outcome with, without;
    both_ways(json_yaml, yaml, &with, &without);
    same_stats(&with.json, &without.json);
    same_stats(&with.filter, &without.filter);
    return without;
}

Test(pushdown, the_same_events_and_counts)
{
    struct outcome o = both("on_error: dead_letter", "condition: 'level == \"error\"'");
    cr_assert_eq(o.out->n, 4);
    cr_assert_str_eq(o.out->json[0], lines[1]);
    cr_assert_str_eq(o.out->json[1], lines[2]);
    cr_assert_str_eq(o.out->json[2], lines[11]);
    cr_assert_str_eq(o.out->json[3], lines[12]);
    cr_assert_eq(o.dead->n, 5, "not json, truncated, bad byte, an array, empty");
    cr_assert_eq(o.json.events_in, 16);
    cr_assert_eq(o.json.events_out, 16, "11 to the filter, 5 dead letters");
    cr_assert_eq(o.json.errors, 5);
    cr_assert_eq(o.filter.events_in, 11);
    cr_assert_eq(o.filter.events_out, 4);
}

/* on_error: drop (the default) does not validate a line the filter drops anyway beyond its
 * framing ('{' ... '}'): the one such malformed line (an invalid UTF-8 byte inside an
 * object) goes to the filter, which does not pass it on, instead of being parse_json's
 * error; the events out are
 * the same, and a line not framed as an object is still parse_json's error. */
Test(pushdown, on_error_drop_checks_only_the_framing_of_lines_the_filter_drops)
{
    struct outcome with, without;
    both_ways(NULL, "condition: 'level == \"warn\" || level in [\"debug\", \"x\"]'", &with,
              &without);
    cr_assert_eq(with.out->n, 2);
    cr_assert_str_eq(with.out->json[0], lines[3]);
    cr_assert_str_eq(with.out->json[1], lines[14]);
    cr_assert_eq(without.json.errors, 5, "not json, truncated, bad byte, an array, empty");
    cr_assert_eq(without.json.dropped, 5);
    cr_assert_eq(without.filter.events_in, 11);
    cr_assert_eq(with.json.errors, 4, "not json, truncated, an array, empty");
    cr_assert_eq(with.json.dropped, 4);
    cr_assert_eq(with.json.events_out, 12);
    cr_assert_eq(with.filter.events_in, 12);
    cr_assert_eq(with.filter.dropped, 0, "a filter drops by not passing on");
    cr_assert_eq(with.filter.events_out, 2);
    cr_assert_eq(with.json.events_in, without.json.events_in);
}

Test(pushdown, on_error_dead_letter_validates_every_line)
{
    struct outcome with, without;
    both_ways("on_error: dead_letter", "condition: 'level == \"warn\"'", &with, &without);
    cr_assert_eq(with.dead->n, 5, "the bad byte is a dead letter with the pushdown too");
}

Test(pushdown, a_condition_without_bytes_changes_nothing)
{
    struct outcome o = both(NULL, "condition: 'level != \"info\" && !exists(msg)'");
    cr_assert_eq(o.out->n, 3, "objects without msg whose last level is not info");
    cr_assert_str_eq(o.out->json[0], lines[11]);
    cr_assert_str_eq(o.out->json[1], lines[12]);
    cr_assert_str_eq(o.out->json[2], lines[15]);
}

Test(pushdown, on_workers)
{
    struct outcome o = both("{workers: 2, on_error: dead_letter}",
                            "{condition: 'level == \"error\"', workers: 2}");
    cr_assert_eq(o.out->n, 4);
    cr_assert_eq(o.filter.events_in, 11);
}

/* A filter that counts the events it is asked about. */
static int asked;
static int counting_keep(struct sl_stage *s, const struct sl_event *ev, struct sl_error *why)
{
    __atomic_add_fetch(&asked, 1, __ATOMIC_RELAXED);
    return sl_stage_filter.keep(s, ev, why);
}

Test(pushdown, pruned_lines_are_not_evaluated)
{
    static struct sl_stage_type counting;
    counting = sl_stage_filter;
    counting.name = "counting_filter";
    counting.keep = counting_keep;
    asked = 0;
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, NULL);
    t_connect_port(p, src, NULL, json);
    struct t_capture *c = t_run_after(p, json, &counting, "condition: 'level == \"error\"'", NULL);
    cr_assert_eq(c->n, 4);
    /* asked: the lines holding `"error"` (1, 11, 12, 13, 14) or an escape of one of its
     * bytes (2); pruned: 0, 3 (\u00e9 spells no ASCII), 4 (`an error"`), 5 (`\"error\"`:
     * a backslash before the closing quote), 15; the rest are not valid objects */
    cr_assert_eq(asked, 6);
}

/* ---- which graphs are chains -------------------------------------------------------------- */

Test(pushdown, only_a_filter_that_alone_reads_the_stage_before)
{
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, "on_error: dead_letter");
    struct sl_stage *other = t_stage(p, "other", &sl_stage_parse_json, NULL);
    struct sl_stage *f1 = t_stage(p, "f1", &sl_stage_filter, "condition: 'level == \"a\"'");
    struct sl_stage *f2 = t_stage(p, "f2", &sl_stage_filter, "condition: 'level == \"b\"'");
    struct sl_stage *f3 = t_stage(p, "f3", &sl_stage_filter, "condition: 'level == \"c\"'");
    struct sl_stage *sink = t_stage(p, "sink", &t_capture, NULL);
    t_connect_port(p, src, NULL, json);
    t_connect_port(p, src, NULL, other);
    t_connect_port(p, json, NULL, f1); /* json feeds two filters: neither is alone */
    t_connect_port(p, json, NULL, f2);
    t_connect_port(p, other, NULL, f3); /* f3 reads other and json's dead letters */
    t_connect_port(p, json, "dead_letter", f3);
    t_connect_port(p, f1, NULL, sink);
    t_connect_port(p, f2, NULL, sink);
    t_connect_port(p, f3, NULL, sink);
    t_run_ok(p);
    cr_assert_null(sl_stage_downstream_condition(json));
    cr_assert_null(sl_stage_downstream_condition(other));
    cr_assert_null(sl_stage_downstream_condition(src));
}

Test(pushdown, not_from_a_port_other_than_the_default)
{
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, "on_error: dead_letter");
    struct sl_stage *f = t_stage(p, "f", &sl_stage_filter, "condition: 'message == \"x\"'");
    struct sl_stage *sink = t_stage(p, "sink", &t_capture, NULL);
    t_connect_port(p, src, NULL, json);
    t_connect_port(p, json, "dead_letter", f);
    t_connect_port(p, json, NULL, sink);
    t_connect_port(p, f, NULL, sink);
    t_run_ok(p);
    cr_assert_null(sl_stage_downstream_condition(json));
}

/* ---- the byte search: every implementation gives memmem's answer ---------------------- */

/* Compares the searches the CPU has with memmem for needle `n` (k bytes) in `h`. */
static void same_find(const char *h, size_t len, const char *n, size_t k, const char *what)
{
    const char *want = memmem(h, len, n, k);
    cr_assert_eq(sl__find_needle(h, len, n, k, SL__FIND_SCALAR), want, "%s", what);
    cr_assert_eq(sl__find_needle(h, len, n, k, SL__FIND_BEST), want, "%s", what);
#if defined(__x86_64__)
    cr_assert_eq(sl__find_needle(h, len, n, k, SL__FIND_SSE2), want, "%s k=%zu", what, k);
    if (__builtin_cpu_supports("avx2"))
        cr_assert_eq(sl__find_needle(h, len, n, k, SL__FIND_AVX2), want, "%s k=%zu", what, k);
#endif
}

/* Needles of 2 to 40 bytes taken from `h` at a few places (so found), the same with the
 * last byte changed (mostly not), and fixed ones. */
static void find_all(const char *h, size_t len, const char *what)
{
    static const char *const fixed[] = {"\"error\"", "\"a\"", "[]", "\\u", "\"\"", "xyzzy!"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        same_find(h, len, fixed[i], strlen(fixed[i]), what);
    char n[41];
    for (size_t k = 2; k <= 40 && k <= len; k++) {
        size_t at[] = {0, len / 3, len / 2, len - k, len > k + 31 ? len - k - 31 : 0};
        for (size_t j = 0; j < sizeof at / sizeof at[0]; j++) {
            size_t from = at[j] < len - k ? at[j] : len - k;
            memcpy(n, h + from, k);
            same_find(h, len, n, k, what);
            n[k - 1] ^= 0x5a;
            same_find(h, len, n, k, what);
        }
    }
}

/* Each file of `dir` (relative to `root`); returns how many. */
static size_t find_in_dir(const char *root, const char *rel)
{
    char dir[1024], path[1400];
    snprintf(dir, sizeof dir, "%s/%s", root, rel);
    DIR *d = opendir(dir);
    cr_assert(d, "cannot open %s", dir);
    size_t files = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len;
        char *data = t_read_file(path, &len);
        /* at the end of a buffer of its own size, so a read past it would show (ASan) */
        char *copy = malloc(len ? len : 1);
        memcpy(copy, data, len);
        find_all(copy, len, e->d_name);
        free(copy);
        free(data);
        files++;
    }
    closedir(d);
    return files;
}

Test(find, the_same_on_the_json_test_suite_and_the_fuzz_corpus)
{
    const char *data = getenv("SLUICE_TESTDATA"), *src = getenv("SLUICE_SOURCE_ROOT");
    cr_assert(data && src, "run the tests with `meson test`");
    cr_assert_eq(find_in_dir(data, "JSONTestSuite/test_parsing"), 318);
    /* the corpora grow as fuzzing finds new inputs: at least the seeds of today */
    cr_assert_geq(find_in_dir(src, "tests/fuzz/corpus/json"), 14);
    cr_assert_geq(find_in_dir(src, "tests/fuzz/corpus/stages"), 14);
    cr_assert_geq(find_in_dir(src, "tests/fuzz/corpus/pushdown"), 16);
}

Test(find, the_same_at_every_length_and_place)
{
    /* a small alphabet, so that first and last bytes match often and the middle decides */
    char h[200];
    uint32_t r = 12345;
    for (size_t len = 0; len <= sizeof h; len++) {
        for (size_t i = 0; i < len; i++) {
            r = r * 1103515245u + 12345u;
            h[i] = "ab\"e"[r >> 16 & 3];
        }
        char *copy = malloc(len ? len : 1);
        memcpy(copy, h, len);
        find_all(copy, len, "generated");
        same_find(copy, len, "ab", 2, "generated");
        same_find(copy, len, "\"e\"", 3, "generated");
        free(copy);
    }
}
