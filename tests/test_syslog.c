/* The syslog source over loopback: messages sent by logger (bsdutils) over TCP (newline
 * and octet-counted framing) and UDP, and by a C client (the RFC examples), parsed into
 * fields; what is not syslog dropped or passed on with its reason, by on_error. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sluice/builtins.h>

#include "../connectors/socket/internal.h"
#include "helpers_socket.h"
#include "stage_helpers.h"

static struct sl_pipeline *p;
static struct sl_stage *src, *out;
static char host[256];

static void setup(void)
{
    p = t_pipeline();
    gethostname(host, sizeof host);
    host[sizeof host - 1] = 0;
}

static void teardown(void)
{
    sl_pipeline_free(p);
}

TestSuite(syslog, .init = setup, .fini = teardown, .timeout = 60);

static int start(const char *yaml)
{
    src = t_stage(p, "in", &sl_stage_syslog, yaml);
    out = t_stage(p, "out", &t_capture, NULL);
    t_connect_port(p, src, NULL, out);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_start(p, &err), 0, "%s", err.msg);
    return ((struct sl__socket *)sl_stage_state(src))->port;
}

static struct t_capture *cap(void)
{
    return sl_stage_state(out);
}

static size_t want_n;

static bool got_n(void *arg)
{
    (void)arg;
    return cap()->n >= want_n;
}

/* Runs each shell command in turn (on a thread: the pipeline runs on this one). */
static void *run_commands(void *arg)
{
    for (char **c = arg; *c; c++) cr_assert_eq(system(*c), 0, "%s", *c);
    return NULL;
}

static void run_with(char **commands, size_t n)
{
    pthread_t th;
    pthread_create(&th, NULL, run_commands, commands);
    want_n = n;
    bool ok = t_run_until(p, got_n, NULL, 20000);
    pthread_join(th, NULL);
    cr_assert(ok, "got %zu of %zu", cap()->n, n);
}

/* The fields of an RFC 5424 message from logger, its time (which logger picks) cut out. */
static void expect_5424(size_t i, const char *mode, const char *msg)
{
    const char *f = cap()->fields[i];
    const char *head = "pri=I:131 facility=I:16 severity=I:3 version=I:1 timestamp=S:";
    cr_assert(strncmp(f, head, strlen(head)) == 0, "%s: %s", mode, f);
    char tail[1024];
    snprintf(tail, sizeof tail,
             " host=S:%s app=S:myapp procid=S:4242 msgid=S:M1 "
             "structured_data=J:{\"timeQuality\":{\"tzKnown\":\"1\",\"isSynced\":\"%%s\"},"
             "\"x@1\":{\"a\":\"b \\\"q\\\"\"}} message=S:%s",
             host, msg);
    const char *sp = strstr(f + strlen(head), " host=S:");
    cr_assert_not_null(sp, "%s", f);
    char sync[2] = {0};
    const char *s = strstr(sp, "\"isSynced\":\"");
    cr_assert_not_null(s, "%s", f);
    sync[0] = s[12];
    char want[1024];
    snprintf(want, sizeof want, tail, sync);
    cr_assert_str_eq(sp, want, "%s", mode);
}

Test(syslog, logger_rfc5424_over_tcp_newline_and_octet_counting_and_udp)
{
    int port = start("address: 127.0.0.1:0\nmode: tcp");
    char a[512], b[512];
    const char *common = "logger --server 127.0.0.1 --port %d --rfc5424 -p local0.err -t myapp "
                         "--id=4242 --msgid M1 --sd-id x@1 --sd-param 'a=\"b \\\"q\\\"\"' %s '%s'";
    snprintf(a, sizeof a, common, port, "--tcp", "over tcp, a line");
    snprintf(b, sizeof b, common, port, "--tcp --octet-count", "over tcp, counted");
    char *cmds[] = {a, b, NULL};
    run_with(cmds, 2);
    expect_5424(0, "tcp", "over tcp, a line");
    expect_5424(1, "octet counting", "over tcp, counted");
    cr_assert(strncmp(cap()->json[0], "{", 1) == 0);
}

Test(syslog, logger_rfc5424_over_udp)
{
    int port = start("address: 127.0.0.1:0\nmode: udp");
    char a[512];
    snprintf(a, sizeof a,
             "logger --server 127.0.0.1 --port %d --udp --rfc5424 -p local0.err -t myapp "
             "--id=4242 --msgid M1 --sd-id x@1 --sd-param 'a=\"b \\\"q\\\"\"' 'over udp'",
             port);
    char *cmds[] = {a, NULL};
    run_with(cmds, 1);
    expect_5424(0, "udp", "over udp");
}

Test(syslog, logger_rfc3164_over_udp_and_tcp)
{
    int port = start("address: 127.0.0.1:0\nmode: udp");
    char a[512];
    snprintf(a, sizeof a,
             "logger --server 127.0.0.1 --port %d --udp --rfc3164 -p mail.warning -t myapp "
             "--id=77 'bsd over udp'",
             port);
    char *cmds[] = {a, NULL};
    run_with(cmds, 1);
    const char *f = cap()->fields[0];
    cr_assert(strncmp(f, "pri=I:20 facility=I:2 severity=I:4 timestamp=S:", 47) == 0, "%s", f);
    char tail[512];
    snprintf(tail, sizeof tail, " host=S:%s app=S:myapp procid=S:77 message=S:bsd over udp", host);
    cr_assert(t_ends_with(f, tail), "%s", f);
}

/* A C client: the RFC 5424 examples, octet-counted, then one message that is not syslog. */
struct client {
    int port;
    const char *stream;
};

static void *send_stream(void *arg)
{
    struct client *c = arg;
    int fd = t_tcp_connect(c->port);
    t_send_all(fd, c->stream, strlen(c->stream));
    close(fd);
    return NULL;
}

static const char stream[] =
    "93 <34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed for "
    "lonvick"
    "\n<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make "
    "the do-nuts.\n"
    "14 not syslog, no"
    "<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!\n";

Test(syslog, mixed_framing_from_one_client_and_a_bad_message_passed_on_with_its_reason)
{
    struct client c = {start("address: 127.0.0.1:0\non_error: pass\npeer_key: peer"), stream};
    pthread_t th;
    pthread_create(&th, NULL, send_stream, &c);
    want_n = 4;
    cr_assert(t_run_until(p, got_n, NULL, 10000), "got %zu", cap()->n);
    pthread_join(th, NULL);
    struct t_capture *k = cap();
    cr_assert(strncmp(k->fields[0], "peer=S:127.0.0.1:", 17) == 0, "%s", k->fields[0]);
    cr_assert(strstr(k->fields[0],
                     " pri=I:34 facility=I:4 severity=I:2 version=I:1 "
                     "timestamp=S:2003-10-11T22:14:15.003Z host=S:mymachine.example.com "
                     "app=S:su procid=N: msgid=S:ID47 structured_data=N: "
                     "message=S:'su root' failed for lonvick"),
              "%s", k->fields[0]);
    cr_assert(t_ends_with(k->fields[1], "procid=S:8710 msgid=N: structured_data=N: "
                                        "message=S:%% It's time to make the do-nuts."),
              "%s", k->fields[1]);
    cr_assert(t_ends_with(k->fields[2], " error=S:not syslog: no timestamp (Mmm dd hh:mm:ss or "
                                        "RFC 3339) at byte 0"),
              "%s", k->fields[2]);
    cr_assert(strncmp(k->json[2], "{\"message\":\"not syslog, no\",\"peer\":", 35) == 0, "%s",
              k->json[2]);
    cr_assert(t_ends_with(k->fields[3], "host=S:10.0.0.99 message=S:Use the BFG!"), "%s",
              k->fields[3]);
    cr_assert_eq(t_counter_value(src, "parse_errors"), 1);
    cr_assert_eq(t_stats(src).errors, 1);
}

Test(syslog, a_message_that_is_not_syslog_is_dropped_and_counted_by_default)
{
    struct client c = {start("address: 127.0.0.1:0"), stream};
    pthread_t th;
    pthread_create(&th, NULL, send_stream, &c);
    want_n = 3;
    cr_assert(t_run_until(p, got_n, NULL, 10000), "got %zu", cap()->n);
    pthread_join(th, NULL);
    cr_assert(t_ends_with(cap()->fields[2], "message=S:Use the BFG!"), "%s", cap()->fields[2]);
    cr_assert_eq(t_counter_value(src, "parse_errors"), 1);
    cr_assert_eq(t_stats(src).dropped, 1);
}
