/* Config documents: YAML with positions, ${VAR} interpolation, errors, overrides,
 * durations and sizes, and the messages for broken YAML. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "helpers.h"

TestSuite(config, .timeout = 10);

static struct sl_config *parse(const char *text, struct sl_error *err)
{
    return sl_config_parse(text, strlen(text), "p.yaml", err);
}

static void assert_error(const char *text, int line, int col, const char *msg)
{
    struct sl_error err = {0};
    struct sl_config *c = parse(text, &err);
    cr_assert_null(c, "expected an error for: %s", text);
    cr_assert_eq(err.code, SL_ECONFIG);
    cr_assert_str_eq(err.file, "p.yaml");
    cr_assert_str_eq(err.msg, msg);
    cr_assert_eq(err.line, line, "line %d, want %d (%s)", err.line, line, err.msg);
    cr_assert_eq(err.col, col, "col %d, want %d (%s)", err.col, col, err.msg);
}

Test(config, nested_maps_lists_and_positions)
{
    struct sl_config *c =
        parse("sources:\n  app:\n    type: file\n    path: [a.log, \"b.log\"]\n", NULL);
    cr_assert_not_null(c);
    const struct sl_config *t = sl_config_get(c, "sources.app.type");
    cr_assert_str_eq(sl_config_str(t), "file");
    cr_assert_eq(sl_config_line(t), 3);
    cr_assert_eq(sl_config_col(t), 11);
    const struct sl_config *path = sl_config_get(c, "sources.app.path");
    cr_assert_eq(sl_config_kind(path), SL_CFG_LIST);
    cr_assert_eq(sl_config_len(path), 2);
    cr_assert_str_eq(sl_config_str(sl_config_at(path, 1, NULL)), "b.log");
    cr_assert(sl_config_quoted(sl_config_at(path, 1, NULL)));
    cr_assert_not(sl_config_quoted(sl_config_at(path, 0, NULL)));
    const char *key;
    sl_config_at(sl_config_get(c, "sources"), 0, &key);
    cr_assert_str_eq(key, "app");
    cr_assert_null(sl_config_get(c, "sources.nope"));
    sl_config_free(c);
}

Test(config, invalid_yaml_points_at_the_problem)
{
    assert_error(
        "a: [1, 2\nb: 3\n", 2, 2,
        "invalid YAML: did not find expected ',' or ']' while parsing a flow sequence that "
        "starts at 1:4");
    assert_error("a: 1\n  b: 2\n", 2, 4,
                 "invalid YAML: mapping values are not allowed in this context");
}

Test(config, duplicate_keys_and_second_documents_are_errors)
{
    assert_error("a: 1\nb: 2\na: 3\n", 3, 1, "duplicate key 'a' (first set at line 1)");
    assert_error("? [a]\n: 1\n", 1, 3, "a mapping key must be a plain name");
}

Test(config, empty_document_is_an_empty_mapping)
{
    struct sl_config *c = parse("", NULL);
    cr_assert_not_null(c);
    cr_assert_eq(sl_config_kind(c), SL_CFG_MAP);
    cr_assert_eq(sl_config_len(c), 0);
    sl_config_free(c);
    c = parse("# only a comment\n", NULL);
    cr_assert_eq(sl_config_len(c), 0);
    sl_config_free(c);
}

Test(config, anchors_aliases_and_merge_keys)
{
    struct sl_config *c = parse("base: &b {type: file, fsync: batch}\n"
                                "out: {<<: *b, fsync: always}\n"
                                "copy: *b\n",
                                NULL);
    cr_assert_not_null(c);
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "out.type")), "file");
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "out.fsync")), "always");
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "copy.fsync")), "batch");
    sl_config_free(c);
    assert_error("a: &x [1, *x]\n", 1, 11, "unknown alias '*x'");
}

Test(config, deep_nesting_is_refused)
{
    char text[400];
    memset(text, '[', 200);
    text[200] = '\0';
    struct sl_error err = {0};
    cr_assert_null(parse(text, &err));
    cr_assert_str_eq(err.msg, "nesting deeper than 64 levels");
}

Test(config, references_keep_the_document_alive)
{
    struct sl_config *c = parse("a: {b: hello}\n", NULL);
    const struct sl_config *b = sl_config_ref(sl_config_get(c, "a.b"));
    sl_config_free(c);
    cr_assert_str_eq(sl_config_str(b), "hello");
    sl_config_free(b);
}

Test(config, durations)
{
    long long ms;
    cr_assert_eq(sl_parse_duration("250ms", &ms), 0);
    cr_assert_eq(ms, 250);
    cr_assert_eq(sl_parse_duration("5s", &ms), 0);
    cr_assert_eq(ms, 5000);
    cr_assert_eq(sl_parse_duration("1h", &ms), 0);
    cr_assert_eq(ms, 3600000);
    cr_assert_eq(sl_parse_duration("1.5m", &ms), 0);
    cr_assert_eq(ms, 90000);
    cr_assert_eq(sl_parse_duration("2", &ms), 0);
    cr_assert_eq(ms, 2000);
    cr_assert_eq(sl_parse_duration("1d", &ms), 0);
    cr_assert_eq(ms, 86400000);
    cr_assert_eq(sl_parse_duration("5 parsecs", &ms), SL_ECONFIG);
    cr_assert_eq(sl_parse_duration("-1s", &ms), SL_ECONFIG);
    cr_assert_eq(sl_parse_duration("", &ms), SL_ECONFIG);
}

Test(config, sizes)
{
    unsigned long long b;
    cr_assert_eq(sl_parse_size("512", &b), 0);
    cr_assert_eq(b, 512);
    cr_assert_eq(sl_parse_size("64KiB", &b), 0);
    cr_assert_eq(b, 65536);
    cr_assert_eq(sl_parse_size("10MB", &b), 0);
    cr_assert_eq(b, 10000000);
    cr_assert_eq(sl_parse_size("1GiB", &b), 0);
    cr_assert_eq(b, 1073741824ULL);
    cr_assert_eq(sl_parse_size("2M", &b), 0);
    cr_assert_eq(b, 2097152);
    cr_assert_eq(sl_parse_size("12 bananas", &b), SL_ECONFIG);
}

static struct sl_config *parse_fail(const char *text, struct sl_error *err)
{
    memset(err, 0, sizeof *err);
    struct sl_config *c = sl_config_parse(text, strlen(text), "c.yaml", err);
    cr_assert_null(c, "parsed: %s", text);
    return c;
}

Test(config, interpolation_defaults_literals_and_unset)
{
    setenv("SL_TEST_SET", "value", 1);
    setenv("SL_TEST_EMPTY", "", 1);
    unsetenv("SL_TEST_UNSET");
    struct sl_config *c = t_config("a: ${SL_TEST_SET}\n"
                                   "b: x-${SL_TEST_UNSET:-dflt}-y\n"
                                   "c: ${SL_TEST_EMPTY:-used}\n"
                                   "d: $${SL_TEST_SET}\n"
                                   "e: '$${SL_TEST_UNSET}'\n"
                                   "f: cost $5\n"
                                   "g: '${SL_TEST_SET}'\n");
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "a")), "value");
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "b")), "x-dflt-y");
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "c")), "used");
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "d")), "${SL_TEST_SET}");
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "e")), "${SL_TEST_UNSET}");
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "f")), "cost $5");
    /* Expanded in the raw text: single quotes no longer keep ${...} ($${ does). */
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "g")), "value");
    sl_config_free(c);
    struct sl_error err;
    parse_fail("x:\n  y: ${SL_TEST_UNSET}\n", &err);
    cr_assert_str_eq(err.msg, "environment variable 'SL_TEST_UNSET' is not set (give a default: "
                              "${SL_TEST_UNSET:-value})");
    cr_assert_eq(err.line, 2);
    cr_assert_eq(err.col, 6);
    parse_fail("x: ${NOCLOSE\n", &err);
    cr_assert_str_eq(err.msg, "unclosed ${ in '${NOCLOSE': expected '}'");
}

/* ---- ${...} in the raw text, positions in the original (issue 15) --------------------- */

/* Parses `text` as c.yaml, expecting an error at `line`:`col` with `msg`. */
static void expect_error(const char *text, int line, int col, const char *msg)
{
    struct sl_error err;
    parse_fail(text, &err);
    cr_expect_str_eq(err.msg, msg, "%s", text);
    cr_expect_eq(err.line, line, "%s: %s", text, err.msg);
    cr_expect_eq(err.col, col, "%s: %s", text, err.msg);
}

Test(config, interpolation_inside_a_flow_mapping_needs_no_quotes)
{
    unsetenv("SL_TEST_N");
    struct sl_config *c = t_config("s: {count: ${SL_TEST_N:-100}}\n");
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "s.count")), "100");
    cr_assert_eq(sl_config_quoted(sl_config_get(c, "s.count")), 0);
    sl_config_free(c);
    setenv("SL_TEST_N", "7", 1);
    c = t_config("s: {count: ${SL_TEST_N:-100}}\n");
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "s.count")), "7");
    sl_config_free(c);
    unsetenv("SL_TEST_N");
}

Test(config, an_unset_variable_is_reported_where_its_dollar_is)
{
    setenv("SL_TEST_SET", "value", 1);
    unsetenv("SL_TEST_UNSET");
    expect_error("a: 1\nb: {x: ${SL_TEST_SET:-d}, y: ${SL_TEST_UNSET}}\n", 2, 30,
                 "environment variable 'SL_TEST_UNSET' is not set (give a default: "
                 "${SL_TEST_UNSET:-value})");
    /* the '}' must be on the same line */
    expect_error("a: ${SL_TEST_SET\nb: }\n", 1, 4, "unclosed ${ in '${SL_TEST_SET': expected '}'");
    expect_error("a: x ${:-d}\n", 1, 6, "invalid ${...}: expected a variable name");
}

Test(config, yaml_errors_and_nodes_after_an_expansion_keep_original_columns)
{
    setenv("SL_TEST_LONG", "a-much-longer-value", 1);
    const char *why = "invalid YAML: did not find expected node content while parsing a flow "
                      "node that starts at 1:";
    char want[200];
    snprintf(want, sizeof want, "%s28", why);
    expect_error("a: {b: ${SL_TEST_LONG}, c: ]}\n", 1, 28, want);
    /* columns count characters, as libyaml's do: é is two bytes, one column */
    expect_error("a: {\xc3\xa9: ${SL_TEST_LONG}, c: ]}\n", 1, 28, want);
    struct sl_config *c = t_config("m: {x: ${SL_TEST_LONG}, y: 2}\n");
    const struct sl_config *x = sl_config_get(c, "m.x"), *y = sl_config_get(c, "m.y");
    cr_assert_str_eq(sl_config_str(x), "a-much-longer-value");
    cr_expect_eq(sl_config_col(x), 8); /* an expanded node starts at its ${ */
    cr_expect_eq(sl_config_line(y), 1);
    cr_expect_eq(sl_config_col(y), 28);
    sl_config_free(c);
    /* an error inside the inserted text points at the ${ it came from */
    setenv("SL_TEST_BAD", "]", 1);
    snprintf(want, sizeof want, "%s8", why);
    expect_error("a: {b: ${SL_TEST_BAD}}\n", 1, 8, want);
}

Test(config, an_expansion_spanning_lines_leaves_later_lines_numbered_as_written)
{
    setenv("SL_TEST_ML", "[1,\n  2]", 1);
    struct sl_config *c = t_config("a: ${SL_TEST_ML}\nb: x\n");
    cr_assert_eq(sl_config_len(sl_config_get(c, "a")), 2);
    cr_expect_eq(sl_config_line(sl_config_get(c, "a")), 1);
    cr_expect_eq(sl_config_col(sl_config_get(c, "a")), 4);
    cr_expect_eq(sl_config_line(sl_config_get(c, "b")), 2); /* line 3 of the expanded text */
    cr_expect_eq(sl_config_col(sl_config_get(c, "b")), 4);
    sl_config_free(c);
    /* \r\n ends a line once, as libyaml counts it */
    expect_error("a: ${SL_TEST_ML}\r\nb: x\r\nc: {d: ]}\r\n", 3, 8,
                 "invalid YAML: did not find expected node content while parsing a flow node "
                 "that starts at 3:8");
    expect_error("a: ${SL_TEST_ML}\nb: x\nc: {d: ]}\n", 3, 8,
                 "invalid YAML: did not find expected node content while parsing a flow node "
                 "that starts at 3:8");
}

Test(config, comments_are_not_interpolated)
{
    setenv("SL_TEST_SET", "value", 1);
    unsetenv("SL_TEST_UNSET");
    struct sl_config *c = t_config("# ${SL_TEST_UNSET}\n"
                                   "a: x # ${SL_TEST_UNSET}\n"
                                   "b: x#${SL_TEST_SET}\n"
                                   "c: '#${SL_TEST_SET}'\n"
                                   "d: \"it's # ${SL_TEST_SET}\"\n"
                                   "  # ${SL_TEST_UNSET}\n"
                                   "e: 'a''b # ${SL_TEST_SET}'\n");
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "a")), "x");
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "b")), "x#value");
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "c")), "#value");
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "d")), "it's # value");
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "e")), "a'b # value");
    sl_config_free(c);
}

/* --set: a plain value is taken as written (as before); a flow value is parsed like a
 * file, ${...} expanded first. */
Test(config, set_expands_inside_flow_values_only)
{
    setenv("SL_TEST_SET", "value", 1);
    struct sl_config *c = t_config("a: 1\n");
    struct sl_error err = {0};
    cr_assert_eq(sl_config_set(c, "b", "x-${SL_TEST_SET}", &err), 0, "%s", err.msg);
    cr_assert_eq(sl_config_set(c, "c", "[${SL_TEST_SET}, '$${SL_TEST_SET}']", &err), 0, "%s",
                 err.msg);
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "b")), "x-${SL_TEST_SET}");
    const struct sl_config *l = sl_config_get(c, "c");
    cr_assert_str_eq(sl_config_str(sl_config_at(l, 0, NULL)), "value");
    cr_assert_str_eq(sl_config_str(sl_config_at(l, 1, NULL)), "${SL_TEST_SET}");
    sl_config_free(c);
}

/* The documented risk: values are inserted as text, so YAML in a value is YAML. */
Test(config, a_value_is_inserted_as_text)
{
    setenv("SL_TEST_YAML", "1, x: 2", 1);
    struct sl_config *c = t_config("s: {count: ${SL_TEST_YAML}}\n");
    cr_assert_eq(sl_config_len(sl_config_get(c, "s")), 2);
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "s.count")), "1");
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "s.x")), "2");
    sl_config_free(c);
}

Test(config, broken_yaml_says_where_the_construct_started)
{
    struct sl_error err;
    parse_fail("a: {b: 1\nc: 2\n", &err);
    cr_assert_str_eq(err.file, "c.yaml");
    cr_assert_eq(err.line, 2);
    cr_assert_str_eq(err.msg, "invalid YAML: did not find expected ',' or '}' while parsing a "
                              "flow mapping that starts at 1:4");
    parse_fail("a: 1\na: 2\n", &err);
    cr_assert_str_eq(err.msg, "duplicate key 'a' (first set at line 1)");
    parse_fail("a: 1\n---\nb: 2\n", &err);
    cr_assert_str_eq(err.msg, "expected one YAML document, found a second");
    parse_fail("a: *nowhere\n", &err);
    cr_assert_str_eq(err.msg, "unknown alias '*nowhere'");
}

Test(config, set_creates_paths_parses_flow_values_and_has_no_position)
{
    struct sl_config *c = t_config("sinks:\n  out: {type: x}\n");
    struct sl_error err = {0};
    cr_assert_eq(sl_config_set(c, "sinks.out.path", "x.log", &err), 0);
    cr_assert_eq(sl_config_set(c, "sinks.out.inputs", "[a, b]", &err), 0);
    cr_assert_eq(sl_config_set(c, "sources.new.type", "generate", &err), 0);
    const struct sl_config *in = sl_config_get(c, "sinks.out.inputs");
    cr_assert_eq(sl_config_kind(in), SL_CFG_LIST);
    cr_assert_eq(sl_config_len(in), 2);
    cr_assert_str_eq(sl_config_str(sl_config_at(in, 1, NULL)), "b");
    const struct sl_config *path = sl_config_get(c, "sinks.out.path");
    cr_assert_str_eq(sl_config_str(path), "x.log");
    cr_assert_eq(sl_config_line(path), 0);
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "sources.new.type")), "generate");
    cr_assert_eq(sl_config_set(c, "sinks.out.type.deeper", "v", &err), SL_ECONFIG);
    cr_assert_str_eq(err.msg, "--set sinks.out.type.deeper: 'sinks.out.type' is not a mapping");
    sl_config_free(c);
}

/* Copies `text` to the very end of a readable page followed by a PROT_NONE page, so that
 * any read past the input crashes (picohttpparser's guard-page trick). */
static void parse_at_guard_page(const char *text, size_t len)
{
    long page = sysconf(_SC_PAGESIZE);
    char *mem =
        mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(mem, MAP_FAILED);
    cr_assert_eq(mprotect(mem + page, (size_t)page, PROT_NONE), 0);
    char *at = mem + page - len;
    memcpy(at, text, len);
    struct sl_error err = {0};
    sl_config_free(sl_config_parse(at, len, "g.yaml", &err));
    munmap(mem, (size_t)page * 2);
}

Test(config, inputs_ending_at_a_guard_page_are_never_overread)
{
    setenv("SL_TEST_SET", "v", 1);
    const char *cases[] = {
        "a: ${SL_TEST_SET}",
        "a: ${SL_TEST_SET",
        "a: $",
        "a: $$",
        "a: $${",
        "a: ${",
        "a: ${X:-",
        "a: ${X:-d}",
        "a: [x, y",
        "a: {b: ",
        "a: &x [1]\nb: *x",
        "a: *",
        "- ",
        "\"a",
        "'",
        "sources:\n  g: {type: generate}\nsinks:\n  o: {type: blackhole, inputs: [g]}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t len = strlen(cases[i]);
        for (size_t cut = 0; cut <= len; cut++) parse_at_guard_page(cases[i], cut);
    }
}

/* A mapping of thousands of keys is indexed as it is parsed: lookups find every key,
 * dotted paths walk through it, and a duplicate far down is still reported. */
Test(config, large_mappings_find_every_key_and_report_duplicates)
{
    size_t cap = 5000 * 24 + 64, len = 0;
    char *text = malloc(cap);
    len += (size_t)snprintf(text + len, cap - len, "big:\n");
    for (int i = 0; i < 5000; i++)
        len += (size_t)snprintf(text + len, cap - len, "  key%d: {v: %d}\n", i, i * 7);
    struct sl_error err = {0};
    struct sl_config *c = sl_config_parse(text, len, "big.yaml", &err);
    cr_assert_not_null(c, "%s", err.msg);
    const struct sl_config *big = sl_config_get(c, "big");
    cr_assert_eq(sl_config_len(big), 5000);
    for (int i = 0; i < 5000; i += 499) {
        char path[64];
        snprintf(path, sizeof path, "big.key%d.v", i);
        const struct sl_config *v = sl_config_get(c, path);
        cr_assert_not_null(v, "%s", path);
        cr_assert_eq(atoi(sl_config_str(v)), i * 7);
    }
    cr_assert_null(sl_config_get(big, "key5000"));
    cr_assert_null(sl_config_get(big, "key"));
    sl_config_free(c);
    len += (size_t)snprintf(text + len, cap - len, "  key4321: again\n");
    cr_assert_null(sl_config_parse(text, len, "big.yaml", &err));
    cr_assert_str_eq(err.msg, "duplicate key 'key4321' (first set at line 4323)");
    cr_assert_eq(err.line, 5002);
    free(text);
}
