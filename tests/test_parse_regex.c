/* parse_regex: named groups, types, several patterns, errors. */
#include <criterion/criterion.h>
#include <stdio.h>
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

Test(parse_regex, patterns_are_tried_in_order_and_the_first_match_wins)
{
    static const char *const lines[] = {"k=v", "42 apples", "k2=v2 and more", "nothing", NULL};
    struct sl_stage *st;
    struct t_capture *c = t_through(p, &sl_stage_parse_regex,
                                    "patterns:\n"
                                    "  - '^(?<key>\\w+)=(?<value>\\w+)$'\n"
                                    "  - '^(?<n:int>\\d+) (?<what>\\w+)$'\n"
                                    "  - '^(?<key>\\w+)=(?<rest>.*)$'\n",
                                    lines, &st);
    cr_assert_eq(c->n, 3);
    cr_assert_str_eq(c->fields[0], "key=S:k value=S:v");
    cr_assert_str_eq(c->fields[1], "n=I:42 what=S:apples");
    cr_assert_str_eq(c->fields[2], "key=S:k2 rest=S:v2 and more");
    cr_assert_eq(t_stats(st).errors, 1);
    cr_assert_eq(t_stats(st).dropped, 1);
    cr_assert(c->in_payload[0] && c->in_payload[2], "string captures are spans of the payload");
}

Test(parse_regex, types_from_the_map_and_inline)
{
    static const char *const lines[] = {"a=-12 b=2.5 c=YES d=off e=007 f=1e3 g=x h=", NULL};
    struct t_capture *c = t_through(
        p, &sl_stage_parse_regex,
        "patterns: '^a=(?<a>\\S+) b=(?<b>\\S+) c=(?<c:bool>\\S+) d=(?<d>\\S+) e=(?<e:int>\\S+) "
        "f=(?<f:auto>\\S+) g=(?<g:auto>\\S+) h=(?<h:int>\\S*)$'\n"
        "types: {a: int, b: float, d: bool}",
        lines, NULL);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0], "a=I:-12 b=F:2.5 c=B:true d=B:false e=I:7 f=F:1e3 g=S:x h=N:");
    cr_assert_str_eq(c->json[0],
                     "{\"a\":-12,\"b\":2.5,\"c\":true,\"d\":false,\"e\":7,\"f\":1e3,\"g\":\"x\","
                     "\"h\":null}");
}

Test(parse_regex, a_capture_that_does_not_convert_is_an_error)
{
    static const char *const lines[] = {"n=12", "n=1x", "n=99999999999999999999", NULL};
    struct sl_stage *dl;
    struct t_capture *c = t_run_dead_letter(p, &sl_stage_parse_regex,
                                            "patterns: '^n=(?<n:int>\\w+)$'\n"
                                            "on_error: dead_letter",
                                            lines, &dl);
    struct t_capture *d = sl_stage_state(dl);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0], "n=I:12");
    cr_assert_eq(d->n, 2);
    cr_assert_str_eq(d->fields[0], "message=S:n=1x error=S:capture 'n' is not an int: '1x'");
    cr_assert_str_eq(d->fields[1], "message=S:n=99999999999999999999 error=S:capture 'n' is not "
                                   "an int: '99999999999999999999'");
}

Test(parse_regex, unset_groups_make_no_field)
{
    static const char *const lines[] = {"x 1", "y", NULL};
    struct t_capture *c = t_through(p, &sl_stage_parse_regex,
                                    "patterns: '^(?<name>\\w)(?: (?<num:int>\\d))?$'", lines, NULL);
    cr_assert_eq(c->n, 2);
    cr_assert_str_eq(c->fields[0], "name=S:x num=I:1");
    cr_assert_str_eq(c->fields[1], "name=S:y");
}

Test(parse_regex, field_mode_matches_a_field_and_merges)
{
    static const char *const lines[] = {"{\"msg\":\"took 15ms\",\"ms\":0}", NULL};
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, NULL);
    t_connect_port(p, src, NULL, json);
    struct t_capture *c = t_run_after(p, json, &sl_stage_parse_regex,
                                      "field: msg\npatterns: 'took (?<ms:int>\\d+)ms'", NULL);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0], "msg=S:took 15ms ms=I:15");
    cr_assert_str_eq(c->json[0], "{\"msg\":\"took 15ms\",\"ms\":15}");
}

Test(parse_regex, workers_match_on_their_own_match_blocks)
{
    enum { N = 6000 };
    static char text[N][48];
    static const char *lines[N + 1];
    for (int i = 0; i < N; i++) {
        snprintf(text[i], sizeof text[i], "id=%d user=u%d", i, i % 13);
        lines[i] = text[i];
    }
    struct t_capture *c =
        t_through(p, &sl_stage_parse_regex,
                  "workers: 3\npatterns: '^id=(?<id:int>\\d+) user=(?<user>\\w+)$'", lines, NULL);
    cr_assert_eq(c->n, N);
    for (int i = 0; i < N; i++) {
        char want[64];
        snprintf(want, sizeof want, "id=I:%d user=S:u%d", i, i % 13);
        cr_assert_str_eq(c->fields[i], want);
    }
}

static void expect_config_error(const char *yaml, const char *msg, int line, int col)
{
    struct sl_error err = {0};
    struct sl_config *cfg = sl_config_parse(yaml, strlen(yaml), "t.yaml", &err);
    cr_assert_not_null(cfg);
    cr_assert_null(sl_pipeline_add(p, "re", &sl_stage_parse_regex, cfg, &err));
    sl_config_free(cfg);
    cr_assert_eq(err.code, SL_ECONFIG);
    cr_assert_str_eq(err.msg, msg);
    cr_assert_eq(err.line, line, "line %d", err.line);
    cr_assert_eq(err.col, col, "col %d", err.col);
    cr_assert_str_eq(err.stage, "re");
}

Test(parse_regex, config_errors_point_at_the_pattern)
{
    expect_config_error("patterns:\n  - 'a'\n  - '(?<x>b'\n",
                        "bad pattern: missing closing parenthesis (near byte 6 of '(?<x>b')", 3, 5);
    expect_config_error("patterns: '(?<x:intt>b)'",
                        "unknown type 'intt' for group 'x' (expected int, float, bool, auto or "
                        "string)",
                        1, 11);
    expect_config_error("patterns: '(?<x>b)'\ntypes: {y: int}",
                        "types: no pattern has a group named 'y'", 2, 9);
    expect_config_error("patterns: '(?<x>b)'\ntypes: {x: long}",
                        "unknown type 'long' for group 'x' (expected int, float, bool, auto or "
                        "string)",
                        2, 12);
}

Test(parse_regex, a_class_or_escape_is_not_a_typed_group)
{
    static const char *const lines[] = {"(?<a:int>", "<int>?(", "x]:(?<b:int>", NULL};
    struct t_capture *c = t_through(p, &sl_stage_parse_regex,
                                    "patterns:\n  - '^(?<all>\\(\\?<a:int>)$'\n"
                                    "  - '^(?<cls>[(?<a:int>]+)$'\n"
                                    "  - '^(?<posix>[[:alpha:]]+[](?<b:int>:]+)$'\n",
                                    lines, NULL);
    cr_assert_eq(c->n, 3);
    cr_assert_str_eq(c->fields[0], "all=S:(?<a:int>");
    cr_assert_str_eq(c->fields[1], "cls=S:<int>?(");
    cr_assert_str_eq(c->fields[2], "posix=S:x]:(?<b:int>");
}

/* ---- the field limit (issue 1) ------------------------------------------------------- */

Test(parse_regex, field_mode_past_the_field_limit_dead_letters_the_event_unchanged)
{
    /* Indexed by parse_json: 65534 fields, one of them "row"; its two groups make 65536. */
    char *over = t_json_members(65534, "\"row\":\"1,2\"", 1);
    char *fits = t_json_members(65533, "\"row\":\"5,6\"", 1);
    const char *lines[] = {"{\"row\":\"3,4\"}", over, fits, "{\"row\":\"7,8\"}", NULL};
    struct sl_stage *dl;
    struct t_capture *c = t_run_dead_letter_after_json(
        p, &sl_stage_parse_regex,
        "patterns: ['^(?<x:int>\\d),(?<y>\\d)$']\nfield: row\non_error: dead_letter", lines, &dl);
    struct t_capture *d = sl_stage_state(dl);
    cr_assert_eq(c->n, 3);
    cr_assert_str_eq(c->fields[0], "row=S:3,4 x=I:3 y=S:4");
    cr_assert(t_ends_with(c->fields[1], " k65532=I:2 x=I:5 y=S:6"));
    cr_assert_str_eq(c->fields[2], "row=S:7,8 x=I:7 y=S:8");
    cr_assert_eq(d->n, 1);
    cr_assert(t_ends_with(d->fields[0], " k65533=I:3 error=S:more than 65535 fields"),
              "merged nothing before it was refused");
    free(over);
    free(fits);
}

/* ---- built-in formats and null_values (issue 15) ------------------------------------- */

/* Runs `lines` through parse_regex with `yaml` and on_error: dead_letter; `*dead` receives
 * the dead letters. */
static struct t_capture *run_format(const char *yaml, const char *const *lines,
                                    struct t_capture **dead)
{
    char cfg[512];
    snprintf(cfg, sizeof cfg, "%s\non_error: dead_letter", yaml);
    struct sl_stage *dl;
    struct t_capture *c = t_run_dead_letter(p, &sl_stage_parse_regex, cfg, lines, &dl);
    *dead = sl_stage_state(dl);
    return c;
}

Test(parse_regex, format_apache_common)
{
    static const char *const lines[] = {
        "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" 200 2326",
        "10.0.0.7 - - [10/Oct/2000:13:55:40 -0700] \"POST /login?next=%2F HTTP/1.1\" 302 -",
        "192.168.1.20 - - [10/Oct/2000:13:56:02 -0700] \"-\" 400 0", "not an access log line",
        NULL};
    struct t_capture *d, *c = run_format("format: apache_common", lines, &d);
    cr_assert_eq(c->n, 3);
    cr_assert_str_eq(c->fields[0], "host=S:127.0.0.1 ident=N: user=S:frank "
                                   "time=S:10/Oct/2000:13:55:36 -0700 method=S:GET "
                                   "path=S:/apache_pb.gif protocol=S:HTTP/1.0 status=I:200 "
                                   "bytes=I:2326");
    cr_assert_str_eq(c->fields[1], "host=S:10.0.0.7 ident=N: user=N: "
                                   "time=S:10/Oct/2000:13:55:40 -0700 method=S:POST "
                                   "path=S:/login?next=%2F protocol=S:HTTP/1.1 status=I:302 "
                                   "bytes=N:");
    cr_assert_str_eq(c->fields[2], "host=S:192.168.1.20 ident=N: user=N: "
                                   "time=S:10/Oct/2000:13:56:02 -0700 status=I:400 bytes=I:0");
    cr_assert_eq(d->n, 1);
    cr_assert_str_eq(d->fields[0], "message=S:not an access log line error=S:no pattern matched");
}

Test(parse_regex, format_apache_combined)
{
    static const char *const lines[] = {
        "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" 200 2326 "
        "\"http://www.example.com/start.html\" \"Mozilla/4.08 [en] (Win98; I ;Nav)\"",
        "203.0.113.9 - - [11/Oct/2000:08:01:12 +0000] \"HEAD / HTTP/1.1\" 200 - \"-\" "
        "\"curl/8.5.0 \\\"quoted\\\"\"",
        "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 2326", NULL};
    struct t_capture *d, *c = run_format("format: apache_combined", lines, &d);
    cr_assert_eq(c->n, 2);
    cr_assert_str_eq(c->fields[0], "host=S:127.0.0.1 ident=N: user=S:frank "
                                   "time=S:10/Oct/2000:13:55:36 -0700 method=S:GET "
                                   "path=S:/apache_pb.gif protocol=S:HTTP/1.0 status=I:200 "
                                   "bytes=I:2326 referrer=S:http://www.example.com/start.html "
                                   "agent=S:Mozilla/4.08 [en] (Win98; I ;Nav)");
    cr_assert_str_eq(c->fields[1], "host=S:203.0.113.9 ident=N: user=N: "
                                   "time=S:11/Oct/2000:08:01:12 +0000 method=S:HEAD path=S:/ "
                                   "protocol=S:HTTP/1.1 status=I:200 bytes=N: referrer=N: "
                                   "agent=S:curl/8.5.0 \\\"quoted\\\"");
    cr_assert_eq(d->n, 1, "a common-format line lacks referrer and agent");
}

Test(parse_regex, format_nginx_combined)
{
    static const char *const lines[] = {
        "93.184.216.34 - alice [30/Nov/2026:05:59:01 +0000] \"GET /api/items?page=2 HTTP/2.0\" "
        "200 5120 \"https://example.org/\" \"Mozilla/5.0 (X11; Linux x86_64)\"",
        "10.1.2.3 - - [30/Nov/2026:05:59:02 +0000] \"GET /health HTTP/1.1\" 204 0 \"-\" "
        "\"kube-probe/1.29\" \"198.51.100.4, 10.0.0.1\"",
        "10.1.2.3 - - [30/Nov/2026:05:59:03 +0000] \"GET / HTTP/1.1\" 200 - \"-\" \"-\"",
        "10.1.2.3 - - [30/Nov/2026:05:59:04 +0000] \"GET / HTTP/1.1\" abc 12 \"-\" \"-\"", NULL};
    struct t_capture *d, *c = run_format("format: nginx_combined", lines, &d);
    cr_assert_eq(c->n, 3);
    cr_assert_str_eq(c->fields[0], "host=S:93.184.216.34 ident=N: user=S:alice "
                                   "time=S:30/Nov/2026:05:59:01 +0000 method=S:GET "
                                   "path=S:/api/items?page=2 protocol=S:HTTP/2.0 status=I:200 "
                                   "bytes=I:5120 referrer=S:https://example.org/ "
                                   "agent=S:Mozilla/5.0 (X11; Linux x86_64)");
    cr_assert_str_eq(c->fields[1], "host=S:10.1.2.3 ident=N: user=N: "
                                   "time=S:30/Nov/2026:05:59:02 +0000 method=S:GET path=S:/health "
                                   "protocol=S:HTTP/1.1 status=I:204 bytes=I:0 referrer=N: "
                                   "agent=S:kube-probe/1.29 forwarded_for=S:198.51.100.4, "
                                   "10.0.0.1");
    cr_assert_str_eq(c->fields[2], "host=S:10.1.2.3 ident=N: user=N: "
                                   "time=S:30/Nov/2026:05:59:03 +0000 method=S:GET path=S:/ "
                                   "protocol=S:HTTP/1.1 status=I:200 bytes=N: referrer=N: "
                                   "agent=N:");
    cr_assert_eq(d->n, 1);
    cr_assert(t_ends_with(d->fields[0], " error=S:no pattern matched"));
}

Test(parse_regex, format_syslog_rfc3164)
{
    static const char *const lines[] = {
        "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
        "<13>Feb  5 17:32:18 web-01 sshd[4721]: Accepted publickey for deploy from 10.0.0.5",
        "Nov 30 06:00:00 db-2 CRON[991]: (root) CMD (run-parts /etc/cron.hourly)",
        "<13>2026-11-30T06:00:00Z db-2 app: an RFC 5424 timestamp", NULL};
    struct t_capture *d, *c = run_format("format: syslog_rfc3164", lines, &d);
    cr_assert_eq(c->n, 3);
    cr_assert_str_eq(
        c->fields[0],
        "pri=I:34 facility=I:4 severity=I:2 timestamp=S:Oct 11 22:14:15 host=S:mymachine "
        "app=S:su message=S:'su root' failed for lonvick on /dev/pts/8");
    cr_assert_str_eq(c->fields[1],
                     "pri=I:13 facility=I:1 severity=I:5 timestamp=S:Feb  5 17:32:18 host=S:web-01 "
                     "app=S:sshd pid=I:4721 message=S:Accepted publickey for "
                     "deploy from 10.0.0.5");
    cr_assert_str_eq(c->fields[2], "timestamp=S:Nov 30 06:00:00 host=S:db-2 app=S:CRON pid=I:991 "
                                   "message=S:(root) CMD (run-parts /etc/cron.hourly)");
    cr_assert_eq(d->n, 1);
}

Test(parse_regex, format_syslog_rfc5424)
{
    static const char *const lines[] = {
        "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed for "
        "lonvick on /dev/pts/8",
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
        "[exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] An "
        "application event log entry...",
        "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make "
        "the do-nuts.",
        "<14>1 2026-11-30T06:00:00Z h app 12 m [a@1 x=\"]\"][b@2]",
        "<34>Oct 11 22:14:15 mymachine su: an RFC 3164 line",
        NULL};
    struct t_capture *d, *c = run_format("format: syslog_rfc5424", lines, &d);
    cr_assert_eq(c->n, 4);
    cr_assert_str_eq(
        c->fields[0],
        "pri=I:34 facility=I:4 severity=I:2 version=I:1 timestamp=S:2003-10-11T22:14:15.003Z "
        "host=S:mymachine.example.com app=S:su procid=N: msgid=S:ID47 "
        "structured_data=N: message=S:'su root' failed for lonvick on "
        "/dev/pts/8");
    cr_assert_str_eq(
        c->fields[1],
        "pri=I:165 facility=I:20 severity=I:5 version=I:1 timestamp=S:2003-10-11T22:14:15.003Z "
        "host=S:mymachine.example.com app=S:evntslog procid=N: "
        "msgid=S:ID47 structured_data=S:[exampleSDID@32473 iut=\"3\" "
        "eventSource=\"Application\" eventID=\"1011\"] message=S:An "
        "application event log entry...");
    cr_assert_str_eq(c->fields[2], "pri=I:165 facility=I:20 severity=I:5 version=I:1 "
                                   "timestamp=S:2003-08-24T05:14:15.000003-07:00 host=S:192.0.2.1 "
                                   "app=S:myproc procid=S:8710 msgid=N: structured_data=N: "
                                   "message=S:%% It's time to make the do-nuts.");
    cr_assert_str_eq(
        c->fields[3],
        "pri=I:14 facility=I:1 severity=I:6 version=I:1 timestamp=S:2026-11-30T06:00:00Z "
        "host=S:h app=S:app procid=S:12 msgid=S:m "
        "structured_data=S:[a@1 x=\"]\"][b@2]");
    cr_assert_eq(d->n, 1);
}

Test(parse_regex, format_clf_error)
{
    static const char *const lines[] = {
        "[Wed Oct 11 14:32:52 2000] [error] [client 127.0.0.1] client denied by server "
        "configuration: /export/home/live/ap/htdocs/test",
        "[Wed Oct 11 14:32:52.123456 2000] [core:error] [pid 123] [client 1.2.3.4:5678] AH00126: "
        "Invalid URI in request GET /../x HTTP/1.1",
        "[Sun Nov 29 23:59:59.000001 2026] [mpm_event:notice] [pid 7:tid 140] AH00489: "
        "Apache/2.4.58 (Unix) configured -- resuming normal operations",
        "[Sun Nov 29 23:59:59 2026] [ssl:warn] [pid 7] [client ::1:443] AH01909: no cert",
        "Wed Oct 11 14:32:52 2000 error no brackets",
        NULL};
    struct t_capture *d, *c = run_format("format: clf_error", lines, &d);
    cr_assert_eq(c->n, 4);
    cr_assert_str_eq(c->fields[0], "time=S:Wed Oct 11 14:32:52 2000 level=S:error "
                                   "client=S:127.0.0.1 message=S:client denied by server "
                                   "configuration: /export/home/live/ap/htdocs/test");
    cr_assert_str_eq(c->fields[1], "time=S:Wed Oct 11 14:32:52.123456 2000 module=S:core "
                                   "level=S:error pid=I:123 client=S:1.2.3.4 port=I:5678 "
                                   "message=S:AH00126: Invalid URI in request GET /../x HTTP/1.1");
    cr_assert_str_eq(c->fields[2], "time=S:Sun Nov 29 23:59:59.000001 2026 module=S:mpm_event "
                                   "level=S:notice pid=I:7 tid=I:140 message=S:AH00489: "
                                   "Apache/2.4.58 (Unix) configured -- resuming normal "
                                   "operations");
    cr_assert_str_eq(c->fields[3], "time=S:Sun Nov 29 23:59:59 2026 module=S:ssl level=S:warn "
                                   "pid=I:7 client=S:::1 port=I:443 message=S:AH01909: no cert");
    cr_assert_eq(d->n, 1);
}

Test(parse_regex, null_values_apply_to_patterns_and_can_be_emptied)
{
    static const char *const lines[] = {"a=- b=n/a c=-", "a=1 b=2 c=x", NULL};
    struct t_capture *d, *c = run_format("patterns: '^a=(?<a:int>\\S+) b=(?<b:float>\\S+) "
                                         "c=(?<c>\\S+)$'\nnull_values: ['-', n/a]",
                                         lines, &d);
    cr_assert_eq(c->n, 2);
    cr_assert_str_eq(c->fields[0], "a=N: b=N: c=N:");
    cr_assert_str_eq(c->fields[1], "a=I:1 b=F:2 c=S:x");
    cr_assert_eq(d->n, 0);
}

Test(parse_regex, empty_null_values_make_a_dash_a_conversion_error)
{
    static const char *const lines[] = {
        "10.0.0.7 - - [10/Oct/2000:13:55:40 -0700] \"GET / HTTP/1.1\" 304 -",
        "10.0.0.7 - - [10/Oct/2000:13:55:41 -0700] \"GET / HTTP/1.1\" 200 17", NULL};
    struct t_capture *d, *c = run_format("format: apache_common\nnull_values: []", lines, &d);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0], "host=S:10.0.0.7 ident=S:- user=S:- "
                                   "time=S:10/Oct/2000:13:55:41 -0700 method=S:GET path=S:/ "
                                   "protocol=S:HTTP/1.1 status=I:200 bytes=I:17");
    cr_assert_eq(d->n, 1);
    cr_assert(t_ends_with(d->fields[0], " error=S:capture 'bytes' is not an int: '-'"));
}

/* logfmt has open-ended keys: read as parse_logfmt reads it, on_error alike. */
Test(parse_regex, format_logfmt_reads_as_parse_logfmt)
{
    static const char *const lines[] = {"level=info msg=\"request done\" status=200 cached",
                                        "level=warn msg=\"unterminated", NULL};
    struct t_capture *d, *c = run_format("format: logfmt", lines, &d);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0], "level=S:info msg=S:request done status=I:200 cached=B:true");
    cr_assert_eq(d->n, 1);
    cr_assert(t_ends_with(d->fields[0], "error=S:unterminated quoted value at byte 15"), "%s",
              d->fields[0]);
}

Test(parse_regex, format_config_errors)
{
    expect_config_error("patterns: '(?<x>b)'\nformat: apache_common",
                        "format and patterns cannot both be given: use one of them", 2, 9);
    expect_config_error("format: apache\n",
                        "option 'format' must be one of apache_common, apache_combined, "
                        "nginx_combined, syslog_rfc3164, syslog_rfc5424, logfmt, clf_error; "
                        "found 'apache'",
                        1, 9);
    expect_config_error("on_error: drop", "parse_regex needs at least one pattern, or a format", 1,
                        1);
    expect_config_error("format: syslog_rfc3164\ntypes: {status: int}",
                        "types: no pattern has a group named 'status'", 2, 9);
}

Test(parse_regex, types_may_retype_a_format_field)
{
    static const char *const lines[] = {"<14>1 2026-11-30T06:00:00Z h app 12 m - hi", NULL};
    struct t_capture *c = t_through(p, &sl_stage_parse_regex,
                                    "format: syslog_rfc5424\ntypes: {procid: int}", lines, NULL);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(
        c->fields[0],
        "pri=I:14 facility=I:1 severity=I:6 version=I:1 timestamp=S:2026-11-30T06:00:00Z host=S:h "
        "app=S:app procid=I:12 msgid=S:m structured_data=N: "
        "message=S:hi");
}

Test(parse_regex, only_the_syslog_formats_split_pri)
{
    static const char *const lines[] = {"<191>x", NULL};
    struct t_capture *c = t_through(p, &sl_stage_parse_regex,
                                    "patterns: '^<(?<pri:int>\\d+)>(?<m>.*)$'", lines, NULL);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0], "pri=I:191 m=S:x");
    sl_pipeline_free(p);
    p = t_pipeline();
    static const char *const nil_pri[] = {"<34>Oct 11 22:14:15 h su: m", NULL};
    c = t_through(p, &sl_stage_parse_regex, "format: syslog_rfc3164\nnull_values: ['34']", nil_pri,
                  NULL);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0],
                     "pri=N: timestamp=S:Oct 11 22:14:15 host=S:h app=S:su "
                     "message=S:m",
                     "a null pri has no facility nor severity");
}
