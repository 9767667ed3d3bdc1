/* Templates: text with {{ expression }} holes, rendered like snprintf. */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
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

Test(template, status_classes_by_integer_maths)
{
    renders("{{ status / 100 }}xx", "5.03xx"); /* `/` gives a float */
    renders("{{ floor(status / 100) }}xx", "5xx");
    renders("{{ div(status, 100) }}xx", "5xx");
    renders("{{ to_int(status / 100) }}xx", "5xx");
    renders("{{ status % 100 }}", "3");
    renders("{{ round(ratio) }} {{ ceil(ratio) }} {{ floor(ratio) }}", "1 1 0");
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

/* ---- sl_template_each: the rendering piece by piece ------------------------------------- */

struct pieces {
    char log[512];    /* "T[text]V[value]N" per piece */
    size_t n;         /* bytes in log */
    int stop_at;      /* piece number at which to return 7, or -1 */
    int count;        /* pieces seen */
    size_t value_len; /* length of the last value */
};

static int record(void *arg, enum sl_template_piece kind, const char *s, size_t len)
{
    struct pieces *pc = arg;
    static const char tag[] = {'T', 'V', 'N'};
    pc->n += (size_t)snprintf(pc->log + pc->n, sizeof pc->log - pc->n, "%c[%.*s]", tag[kind],
                              (int)(len < 64 ? len : 64), s ? s : "");
    if (kind == SL_TEMPLATE_VALUE) pc->value_len = len;
    return pc->count++ == pc->stop_at ? 7 : 0;
}

static void each(const struct sl_event *e, const char *src, const char *want)
{
    compile(src);
    struct pieces pc = {.stop_at = -1};
    cr_assert_eq(sl_template_each(t, e, record, &pc), 0);
    cr_assert_str_eq(pc.log, want, "`%s`", src);
}

Test(template, each_tells_literal_text_values_and_nulls_apart)
{
    each(ev, "a/{{ service }}/{{ nope }}-{{ lower(level) }}.log",
         "T[a/]V[api]T[/]N[]T[-]V[error]T[.log]");
    each(ev, "{{ quoted }}{{ status }}{{ obj.k[0] }}{{ null }}", "V[a\"b]V[503]V[1]N[]");
    each(NULL, "x{{ service }}{{ upper(\"k\") }}", "T[x]N[]V[K]");
    each(ev, "", "");
}

Test(template, each_stops_when_the_callback_says_so)
{
    compile("a{{ service }}b{{ level }}");
    struct pieces pc = {.stop_at = 1};
    cr_assert_eq(sl_template_each(t, ev, record, &pc), 7);
    cr_assert_str_eq(pc.log, "T[a]V[api]");
}

Test(template, each_decodes_long_escaped_fields_whole_and_never_uses_the_arena)
{
    /* 6,000 escaped quotes: 12,000 bytes of JSON text (decoding is given room for that
     * much, more than the 8 KiB scratch), 6,000 once decoded. */
    size_t n = 6000;
    char *esc = sl_event_alloc(ev, 2 * n);
    for (size_t i = 0; i < n; i++) esc[2 * i] = '\\', esc[2 * i + 1] = '"';
    struct sl_value v = {.type = SL_STRING, .flags = SL_VALUE_ESCAPED, .s = esc, .len = 2 * n};
    add("big", v);
    compile("{{ big }}");
    struct pieces pc = {.stop_at = -1};
    cr_assert_eq(sl_template_each(t, ev, record, &pc), 0);
    cr_assert_eq(pc.value_len, n);
    char *buf = malloc(3 * n);
    cr_assert_eq(sl_template_render(t, ev, buf, 3 * n), n);
    cr_assert_eq(buf[0], '"');
    cr_assert_eq(buf[n - 1], '"');
    /* A string built by a function beyond the scratch: null here, whole from render. */
    compile("{{ concat(big, big) }}");
    pc = (struct pieces){.stop_at = -1};
    cr_assert_eq(sl_template_each(t, ev, record, &pc), 0);
    cr_assert_str_eq(pc.log, "N[]");
    cr_assert_eq(sl_template_render(t, ev, buf, 3 * n), 2 * n, "render builds it in the arena");
    free(buf);
}

/* ---- SL_OPT_TEMPLATE: templates compiled by the option schema ---------------------------- */

struct tpl_opts {
    struct sl_template *path;  /* required */
    struct sl_template *line;  /* with a default */
    struct sl_template *unset; /* NULL */
};

static int tpl_keep(struct sl_stage *s, const struct sl_event *e, struct sl_error *why)
{
    (void)s, (void)e, (void)why;
    return true;
}

static const struct sl_option tpl_options[] = {
    {"path", SL_OPT_TEMPLATE, NULL, SL_REQUIRED, offsetof(struct tpl_opts, path), "a path"},
    {"line", SL_OPT_TEMPLATE, "[{{ level }}]", 0, offsetof(struct tpl_opts, line), "a line"},
    {"unset", SL_OPT_TEMPLATE, NULL, 0, offsetof(struct tpl_opts, unset), "left NULL"},
    {0},
};

static const struct sl_stage_type t_tpl = {
    .abi = SL_STAGE_ABI,
    .name = "t_tpl",
    .kind = SL_FILTER,
    .doc = "test stage with template options",
    .state_size = sizeof(struct tpl_opts),
    .options = tpl_options,
    .keep = tpl_keep,
};

Test(template, template_options_are_compiled_by_the_schema)
{
    struct sl_stage *s = t_add(p, "tpl", &t_tpl, "path: \"logs/{{ service }}.log\"");
    struct tpl_opts *o = sl_stage_state(s);
    char buf[64];
    cr_assert_not_null(o->path);
    cr_assert_eq(sl_template_render(o->path, ev, buf, sizeof buf), 12);
    cr_assert_str_eq(buf, "logs/api.log");
    cr_assert_eq(sl_template_render(o->line, ev, buf, sizeof buf), 7);
    cr_assert_str_eq(buf, "[ERROR]");
    cr_assert_null(o->unset);
}

Test(template, template_option_errors_point_into_the_file)
{
    struct sl_config *cfg = t_config("# sink\npath: \"logs/{{ service\"");
    struct sl_error err = {0};
    cr_assert_null(sl_pipeline_add(p, "bad", &t_tpl, cfg, &err));
    sl_config_free(cfg);
    cr_assert_eq(err.code, SL_ECONFIG);
    cr_assert_str_eq(err.stage, "bad");
    cr_assert_str_eq(err.msg, "option 'path': expected '}}' to close the '{{' at line 1, column "
                              "6, found end of template");
    cr_assert(err.line == 2 && err.col == 23, "at %d:%d", err.line, err.col);
}
