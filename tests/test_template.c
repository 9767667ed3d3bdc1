/* Templates: text with {{ expression }} holes, rendered like snprintf. */
#include <criterion/criterion.h>
#include <string.h>

#include "helpers.h"

static struct sl_pipeline *p;
static struct sl_batch *b;
static struct sl_event *ev;
static struct sl_template *t;

static void add(const char *name, struct sl_value v)
{
    cr_assert_eq(sl_event_add_field(ev, name, strlen(name), &v), 0);
}

static void setup(void)
{
    p = sl_pipeline_new(NULL, NULL, NULL);
    cr_assert_not_null(p);
    b = sl_batch_new(t_add(p, "src", &t_counter, NULL));
    cr_assert_not_null(b);
    ev = sl_batch_append(b);
    add("service", sl_value_string("api", 3));
    add("level", sl_value_string("ERROR", 5));
    struct sl_value status = {.type = SL_INT, .flags = SL_VALUE_TEXT, .s = "503", .len = 3};
    add("status", status);
    struct sl_value quoted = {
        .type = SL_STRING, .flags = SL_VALUE_ESCAPED, .s = "a\\\"b", .len = 4};
    add("quoted", quoted);
    add("obj", sl_value_json("{\"k\": [1, 2]}", 13));
    add("ratio", sl_value_float(0.5));
    add("ok", sl_value_bool(false));
}

static void teardown(void)
{
    sl_template_free(t);
    t = NULL;
    sl_batch_unref(b);
    sl_pipeline_free(p);
}

TestSuite(template, .init = setup, .fini = teardown, .timeout = 10);

static void compile(const char *src)
{
    struct sl_error err = {0};
    sl_template_free(t);
    t = sl_template_compile(src, strlen(src), &err);
    cr_assert_not_null(t, "`%s`: %d:%d: %s", src, err.line, err.col, err.msg);
}

static void renders(const char *src, const char *want)
{
    compile(src);
    char buf[256];
    size_t n = sl_template_render(t, ev, buf, sizeof buf);
    cr_assert_eq(n, strlen(want), "`%s` needs %zu bytes, expected %zu", src, n, strlen(want));
    cr_assert_str_eq(buf, want, "`%s`", src);
}

static void bad(const char *src, int line, int col, const char *msg)
{
    struct sl_error err = {0};
    cr_assert_null(sl_template_compile(src, strlen(src), &err), "`%s` compiled", src);
    cr_assert_str_eq(err.msg, msg, "`%s`", src);
    cr_assert(err.line == line && err.col == col, "`%s` at %d:%d, expected %d:%d", src, err.line,
              err.col, line, col);
}

Test(template, fields_and_functions_fill_the_holes)
{
    renders("logs/{{ service }}/app-{{ lower(level) }}.log", "logs/api/app-error.log");
    renders("{{service}}{{service}}", "apiapi");
    renders("s={{ status }} r={{ ratio }} ok={{ ok }} n={{ status + 1 }}",
            "s=503 r=0.5 ok=false n=504");
    renders("{{ quoted }}", "a\"b");
    renders("{{ obj }}", "{\"k\": [1, 2]}");
    renders("{{ obj.k[1] }}", "2");
    renders("", "");
    renders("plain text", "plain text");
}

Test(template, missing_and_null_render_as_nothing)
{
    renders("a{{ missing }}b", "ab");
    renders("a{{ null }}b{{ missing.deep }}", "ab");
    renders("[{{ level == \"ERROR\" }}]", "[true]");
}

Test(template, braces_inside_and_outside_expressions)
{
    renders("{{ \"{{\" }} literal", "{{ literal");
    renders("{{ concat(\"}}\", service) }}", "}}api");
    renders("a } b }} c {", "a } b }} c {");
}

Test(template, output_is_truncated_like_snprintf)
{
    compile("logs/{{ service }}/x.log");
    char buf[8];
    memset(buf, '#', sizeof buf);
    cr_assert_eq(sl_template_render(t, ev, buf, sizeof buf), 14);
    cr_assert_str_eq(buf, "logs/ap");
    cr_assert_eq(sl_template_render(t, ev, NULL, 0), 14);
    char one[1] = {'#'};
    cr_assert_eq(sl_template_render(t, ev, one, 1), 14);
    cr_assert_eq(one[0], '\0');
    char exact[15];
    cr_assert_eq(sl_template_render(t, ev, exact, sizeof exact), 14);
    cr_assert_str_eq(exact, "logs/api/x.log");
}

Test(template, constant_templates_are_known)
{
    compile("logs/app.log");
    cr_assert(sl_template_is_constant(t));
    compile("logs/{{ upper(\"x\") }}-{{ 1 + 1 }}.log");
    cr_assert(sl_template_is_constant(t));
    char buf[32];
    cr_assert_eq(sl_template_render(t, NULL, buf, sizeof buf), 12);
    cr_assert_str_eq(buf, "logs/X-2.log");
    compile("logs/{{ service }}.log");
    cr_assert_not(sl_template_is_constant(t));
    cr_assert_eq(sl_template_render(t, NULL, buf, sizeof buf), 9); /* no event: missing */
    cr_assert_str_eq(buf, "logs/.log");
    compile("{{ now() }}");
    cr_assert_not(sl_template_is_constant(t));
}

Test(template, errors_point_into_the_template)
{
    bad("logs/{{ service", 1, 16,
        "expected '}}' to close the '{{' at line 1, column 6, found end of template");
    bad("a {{ level == }}", 1, 15, "expected an operand after '==', found '}}'");
    bad("x\n{{ }}", 2, 4, "expected an expression, found '}}'");
    bad("{{ level service }}", 1, 10, "expected an operator or '}}', found 'service'");
    bad("{{ \"abc }}", 1, 4, "expected a closing \" to end the string, found end of template");
}
