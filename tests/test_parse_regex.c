/* parse_regex: named groups, types, several patterns, errors. */
#include <criterion/criterion.h>

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

TestSuite(parse_regex, .init = setup, .fini = teardown, .timeout = 30);

Test(parse_regex, named_groups_become_fields)
{
    static const char *const lines[] = {"GET /a 200 12ms", NULL};
    struct t_capture *c = t_through(
        p, &sl_stage_parse_regex,
        "patterns: '^(?<method>\\S+) (?<path>\\S+) (?<status:int>\\d+) (?<ms:float>[\\d.]+)ms$'",
        lines, NULL);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0], "method=S:GET path=S:/a status=I:200 ms=F:12");
}
