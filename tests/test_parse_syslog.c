/* parse_syslog: RFC 5424 and RFC 3164 messages (the examples of the RFCs, checked by hand
 * against their grammar) into fields; malformed messages by on_error; the parser on
 * every prefix of its inputs ending at a guard page. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include <sluice/builtins.h>

#include "../connectors/socket/internal.h"
#include "stage_helpers.h"

static struct sl_pipeline *p;

static void setup(void)
{
    p = t_pipeline();
}

static void teardown(void)
{
    sl_pipeline_free(p);
    t_guard_free_all();
}

TestSuite(parse_syslog, .init = setup, .fini = teardown, .timeout = 30);

/* RFC 5424 section 6.5, examples 1 to 4 ("BOM" written as the UTF-8 bytes it stands for). */
static const char *const rfc5424[] = {
    "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xEF\xBB\xBF'su root' "
    "failed for lonvick on /dev/pts/8",
    "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make "
    "the do-nuts.",
    "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 "
    "iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] \xEF\xBB\xBF"
    "An application event log entry...",
    "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 "
    "iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 "
    "class=\"high\"]",
    NULL,
};

Test(parse_syslog, the_rfc_5424_examples_give_their_parts)
{
    struct sl_stage *st;
    struct t_capture *c = t_through(p, &sl_stage_parse_syslog, NULL, rfc5424, &st);
    cr_assert_eq(c->n, 4);
    cr_assert_str_eq(c->fields[0],
                     "pri=I:34 facility=I:4 severity=I:2 version=I:1 "
                     "timestamp=S:2003-10-11T22:14:15.003Z host=S:mymachine.example.com app=S:su "
                     "procid=N: msgid=S:ID47 structured_data=N: "
                     "message=S:'su root' failed for lonvick on /dev/pts/8");
    cr_assert_str_eq(c->fields[1], "pri=I:165 facility=I:20 severity=I:5 version=I:1 "
                                   "timestamp=S:2003-08-24T05:14:15.000003-07:00 host=S:192.0.2.1 "
                                   "app=S:myproc procid=S:8710 msgid=N: structured_data=N: "
                                   "message=S:%% It's time to make the do-nuts.");
    cr_assert_str_eq(c->fields[2],
                     "pri=I:165 facility=I:20 severity=I:5 version=I:1 "
                     "timestamp=S:2003-10-11T22:14:15.003Z host=S:mymachine.example.com "
                     "app=S:evntslog procid=N: msgid=S:ID47 "
                     "structured_data=J:{\"exampleSDID@32473\":{\"iut\":\"3\",\"eventSource\":"
                     "\"Application\",\"eventID\":\"1011\"}} "
                     "message=S:An application event log entry...");
    cr_assert_str_eq(c->fields[3],
                     "pri=I:165 facility=I:20 severity=I:5 version=I:1 "
                     "timestamp=S:2003-10-11T22:14:15.003Z host=S:mymachine.example.com "
                     "app=S:evntslog procid=N: msgid=S:ID47 "
                     "structured_data=J:{\"exampleSDID@32473\":{\"iut\":\"3\",\"eventSource\":"
                     "\"Application\",\"eventID\":\"1011\"},\"examplePriority@32473\":{\"class\":"
                     "\"high\"}} message=N:");
    cr_assert(c->in_payload[1], "the parts are spans of the payload");
    cr_assert_eq(t_stats(st).errors, 0);
}

Test(parse_syslog, structured_data_escapes_are_decoded_into_json)
{
    static const char *const lines[] = {
        "<14>1 2026-11-30T06:00:00Z h app 12 m [a@1 x=\"q\\\"b\\\\c\\]d\" e=\"\"][b@2] hi",
        "<14>1 2026-11-30T06:00:00Z h app 12 m [a@1 x=\"\xC3\xA9\t\"] tab", NULL};
    struct t_capture *c = t_through(p, &sl_stage_parse_syslog, NULL, lines, NULL);
    cr_assert_eq(c->n, 2);
    cr_assert(t_ends_with(c->fields[0], "structured_data=J:{\"a@1\":{\"x\":\"q\\\"b\\\\c]d\","
                                        "\"e\":\"\"},\"b@2\":{}} message=S:hi"),
              "%s", c->fields[0]);
    cr_assert(t_ends_with(c->fields[1], "structured_data=J:{\"a@1\":{\"x\":\"\xC3\xA9\\t\"}} "
                                        "message=S:tab"),
              "%s", c->fields[1]);
    cr_assert(strstr(c->json[0], "\"structured_data\":{\"a@1\":{\"x\":\"q\\\"b\\\\c]d\""), "%s",
              c->json[0]);
}

Test(parse_syslog, structured_data_raw_keeps_the_text)
{
    const char *const lines[] = {rfc5424[3], NULL};
    struct t_capture *c = t_through(p, &sl_stage_parse_syslog, "structured_data: raw", lines, NULL);
    cr_assert_eq(c->n, 1);
    cr_assert(strstr(c->fields[0], " structured_data=S:[exampleSDID@32473 iut=\"3\" "
                                   "eventSource=\"Application\" eventID=\"1011\"]"
                                   "[examplePriority@32473 class=\"high\"] message=N:"),
              "%s", c->fields[0]);
}

/* RFC 3164 section 5.4: examples 1, 2 (as a relay forwards it), 3 and 5; and lines as
 * syslog daemons write them to files (no PRI; no hostname). */
Test(parse_syslog, the_rfc_3164_examples_give_their_parts)
{
    static const char *const lines[] = {
        "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
        "<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!",
        "<165>Aug 24 05:34:00 CST 1987 mymachine myproc[10]: %% It's time to make the do-nuts.",
        "<0>Oct 22 10:52:12 scapegoat 1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org "
        "10.1.2.3 sched[0]: That's All Folks!",
        "Nov 30 06:00:00 db-2 CRON[991]: (root) CMD (run-parts /etc/cron.hourly)",
        "<13>Nov 30 06:00:01 sshd[42]: no hostname",
        "<13>2026-11-30T06:00:02+01:00 web-1 nginx: an RFC 3339 time",
        NULL};
    struct t_capture *c = t_through(p, &sl_stage_parse_syslog, NULL, lines, NULL);
    cr_assert_eq(c->n, 7);
    cr_assert_str_eq(c->fields[0], "pri=I:34 facility=I:4 severity=I:2 timestamp=S:Oct 11 22:14:15 "
                                   "host=S:mymachine app=S:su "
                                   "message=S:'su root' failed for lonvick on /dev/pts/8");
    cr_assert_str_eq(c->fields[1], "pri=I:13 facility=I:1 severity=I:5 timestamp=S:Feb  5 17:32:18 "
                                   "host=S:10.0.0.99 message=S:Use the BFG!");
    cr_assert_str_eq(c->fields[2], "pri=I:165 facility=I:20 severity=I:5 "
                                   "timestamp=S:Aug 24 05:34:00 host=S:CST "
                                   "message=S:1987 mymachine myproc[10]: %% It's time to make the "
                                   "do-nuts.");
    cr_assert_str_eq(c->fields[3],
                     "pri=I:0 facility=I:0 severity=I:0 timestamp=S:Oct 22 10:52:12 "
                     "host=S:scapegoat message=S:1990 Oct 22 10:52:01 TZ-6 "
                     "scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's All Folks!");
    cr_assert_str_eq(c->fields[4],
                     "timestamp=S:Nov 30 06:00:00 host=S:db-2 app=S:CRON "
                     "procid=S:991 message=S:(root) CMD (run-parts /etc/cron.hourly)");
    cr_assert_str_eq(c->fields[5], "pri=I:13 facility=I:1 severity=I:5 timestamp=S:Nov 30 06:00:01 "
                                   "app=S:sshd procid=S:42 message=S:no hostname");
    cr_assert_str_eq(c->fields[6], "pri=I:13 facility=I:1 severity=I:5 "
                                   "timestamp=S:2026-11-30T06:00:02+01:00 host=S:web-1 app=S:nginx "
                                   "message=S:an RFC 3339 time");
}

/* Malformed: RFC 3164's example 4 (a year before the month: no timestamp a receiver
 * knows), a PRI past 191, RFC 5424 with a bad timestamp, an unterminated element. */
static const char *const malformed[] = {
    "<0>1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's All Folks!",
    "<192>Oct 11 22:14:15 host app: pri too big",
    "<34>1 2003-10-11 22:14:15 host app - - - a space in the time",
    "<34>1 2003-10-11T22:14:15Z host app - - [x@1 a=\"b\"",
    "",
    NULL,
};

Test(parse_syslog, malformed_messages_go_to_the_dead_letter_output_with_the_reason)
{
    struct sl_stage *dl;
    struct t_capture *c =
        t_run_dead_letter(p, &sl_stage_parse_syslog, "on_error: dead_letter", malformed, &dl);
    struct t_capture *d = sl_stage_state(dl);
    cr_assert_eq(c->n, 0);
    cr_assert_eq(d->n, 5);
    cr_assert(t_ends_with(d->fields[0], "error=S:not syslog: no timestamp (Mmm dd hh:mm:ss or "
                                        "RFC 3339) at byte 3"),
              "%s", d->fields[0]);
    cr_assert(t_ends_with(d->fields[1], "error=S:not syslog: PRI is not <0> to <191> at byte 0"),
              "%s", d->fields[1]);
    cr_assert(t_ends_with(d->fields[2], "error=S:not syslog: TIMESTAMP is not RFC 3339 or - at "
                                        "byte 6"),
              "%s", d->fields[2]);
    cr_assert(t_ends_with(d->fields[3], "error=S:not syslog: unterminated STRUCTURED-DATA "
                                        "element at byte 50"),
              "%s", d->fields[3]);
    cr_assert_str_eq(d->payloads[1], malformed[1]);
}

Test(parse_syslog, malformed_messages_are_dropped_and_counted_by_default)
{
    struct sl_stage *st;
    struct t_capture *c = t_through(p, &sl_stage_parse_syslog, NULL, malformed, &st);
    cr_assert_eq(c->n, 0);
    cr_assert_eq(t_stats(st).errors, 5);
    cr_assert_eq(t_stats(st).dropped, 5);
}

Test(parse_syslog, on_error_fail_stops_the_pipeline_naming_the_reason)
{
    static const char *const lines[] = {"not syslog at all", NULL};
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *st = t_stage(p, "sys", &sl_stage_parse_syslog, "on_error: fail");
    struct sl_stage *out = t_stage(p, "out", &t_capture, NULL);
    t_connect_port(p, src, NULL, st);
    t_connect_port(p, st, NULL, out);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), SL_EPARSE);
    cr_assert_str_eq(err.stage, "sys");
    cr_assert(strstr(err.msg, "no timestamp"), "%s", err.msg);
}

Test(parse_syslog, a_field_is_parsed_and_its_parts_merged)
{
    static const char *const lines[] = {
        "{\"from\":\"relay\",\"line\":\"<13>Nov 30 06:00:01 h app: hi \\\"q\\\"\"}", NULL};
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *json = t_stage(p, "json", &sl_stage_parse_json, NULL);
    t_connect_port(p, src, NULL, json);
    struct t_capture *c = t_run_after(p, json, &sl_stage_parse_syslog, "field: line", NULL);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->fields[0], "from=S:relay line=S:<13>Nov 30 06:00:01 h app: hi \"q\" "
                                   "pri=I:13 facility=I:1 severity=I:5 timestamp=S:Nov 30 06:00:01 "
                                   "host=S:h app=S:app message=S:hi \"q\"");
}

Test(parse_syslog, format_rfc5424_refuses_bsd_messages)
{
    static const char *const lines[] = {"<34>Oct 11 22:14:15 mymachine su: hi", NULL};
    struct sl_stage *st;
    struct t_capture *c = t_through(p, &sl_stage_parse_syslog, "format: rfc5424", lines, &st);
    cr_assert_eq(c->n, 0);
    cr_assert_eq(t_stats(st).errors, 1);
}

/* Every prefix of every input, placed to end at a PROT_NONE page: the parser never reads
 * past the end, and answers 0 or SL_EPARSE. */
Test(parse_syslog, the_parser_reads_no_byte_past_the_end_of_any_prefix)
{
    const char *const *sets[] = {rfc5424, malformed};
    for (size_t k = 0; k < 2; k++) {
        for (size_t i = 0; sets[k][i]; i++) {
            size_t n = strlen(sets[k][i]);
            for (size_t len = 0; len <= n; len++) {
                const char *s = t_guard_copy(sets[k][i], len);
                struct sl__socket_syslog m;
                const char *why;
                size_t at;
                for (int f = 0; f < 3; f++) {
                    int rc = sl__socket_syslog_parse(s, len, f, &m, &why, &at);
                    cr_assert(rc == 0 || (rc == SL_EPARSE && at <= len), "%zu/%zu", i, len);
                }
            }
        }
    }
}
