/* Config documents: positions, ${VAR} interpolation, --set overrides, typed scalars and
 * the messages for broken YAML (issue 3). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "helpers.h"

TestSuite(config, .timeout = 10);

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
                                   "e: '${SL_TEST_UNSET}'\n"
                                   "f: cost $5\n");
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "a")), "value");
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "b")), "x-dflt-y");
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "c")), "used");
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "d")), "${SL_TEST_SET}");
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "e")), "${SL_TEST_UNSET}");
    cr_assert_str_eq(sl_config_str(sl_config_get(c, "f")), "cost $5");
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

Test(config, durations_and_sizes)
{
    long long ms;
    unsigned long long b;
    cr_assert_eq(sl_parse_duration("250ms", &ms), 0);
    cr_assert_eq(ms, 250);
    cr_assert_eq(sl_parse_duration("5s", &ms), 0);
    cr_assert_eq(ms, 5000);
    cr_assert_eq(sl_parse_duration("1h", &ms), 0);
    cr_assert_eq(ms, 3600000);
    cr_assert_eq(sl_parse_duration("2", &ms), 0);
    cr_assert_eq(ms, 2000);
    cr_assert_eq(sl_parse_duration("5 parsecs", &ms), SL_ECONFIG);
    cr_assert_eq(sl_parse_duration("-1s", &ms), SL_ECONFIG);
    cr_assert_eq(sl_parse_size("64KiB", &b), 0);
    cr_assert_eq(b, 65536);
    cr_assert_eq(sl_parse_size("10MB", &b), 0);
    cr_assert_eq(b, 10000000);
    cr_assert_eq(sl_parse_size("1GiB", &b), 0);
    cr_assert_eq(b, 1073741824ull);
    cr_assert_eq(sl_parse_size("lots", &b), SL_ECONFIG);
}

Test(config, empty_document_is_an_empty_mapping)
{
    struct sl_config *c = t_config("");
    cr_assert_eq(sl_config_kind(c), SL_CFG_MAP);
    cr_assert_eq(sl_config_len(c), 0);
    cr_assert_eq(sl_config_line(c), 1);
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
