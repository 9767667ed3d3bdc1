/* The `sluice` program (issue 3), run as a real process on the configs under
 * tests/configs/: exact outputs and exit codes for every bad-config case, validate,
 * graph, env interpolation, --set, stdin, usage errors, the built-in registry, and
 * /metrics and /health scraped during a run. No test sleeps: they wait for the lines
 * the program logs, or for it to exit. */
#define _GNU_SOURCE /* posix_spawn_file_actions_addchdir_np */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sluice/version.h>

#include "cli.h"

extern char **environ;

TestSuite(cli, .timeout = 60);

/* ---- running the program ------------------------------------------------------------- */

struct proc {
    pid_t pid;
    int in, out, err; /* our ends of the child's stdin, stdout, stderr */
    FILE *err_lines;  /* `err` for reading line by line */
};

static const char *configs_dir(void)
{
    static char dir[1024];
    snprintf(dir, sizeof dir, "%.1000s/tests/configs", getenv("SLUICE_SOURCE_ROOT"));
    return dir;
}

/* Starts sluice with `args` (NULL-terminated) in tests/configs, with `env` entries
 * ("K=V", NULL-terminated, may be NULL) added to the environment. */
static struct proc start(const char *const *args, const char *const *env)
{
    char exe[4096];
    snprintf(exe, sizeof exe, "%s/cli/sluice", getenv("SLUICE_BUILD_ROOT"));
    const char *argv[32] = {exe};
    size_t n = 1;
    for (; args[n - 1] && n < 31; n++) argv[n] = args[n - 1];
    argv[n] = NULL;
    char *envp[512];
    size_t ne = 0;
    for (char **e = environ; *e && ne < 480; e++) envp[ne++] = *e;
    for (size_t i = 0; env && env[i]; i++) envp[ne++] = (char *)env[i];
    envp[ne] = NULL;
    int pin[2], pout[2], perr[2];
    cr_assert(!pipe(pin) && !pipe(pout) && !pipe(perr));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
    posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
    posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
    int fds[] = {pin[0], pin[1], pout[0], pout[1], perr[0], perr[1]};
    for (int i = 0; i < 6; i++) posix_spawn_file_actions_addclose(&fa, fds[i]);
    posix_spawn_file_actions_addchdir_np(&fa, configs_dir());
    struct proc p = {0};
    cr_assert_eq(posix_spawn(&p.pid, exe, &fa, NULL, (char **)argv, envp), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    p.in = pin[1];
    p.out = pout[0];
    p.err = perr[0];
    return p;
}

static int wait_exit(pid_t pid)
{
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct result {
    int rc;          /* exit code */
    char out[65536]; /* stdout */
    char err[65536]; /* stderr */
};

/* Runs sluice to its end, feeding `input` (may be NULL) on stdin. */
static void run(struct result *r, const char *const *args, const char *const *env,
                const char *input)
{
    struct proc p = start(args, env);
    if (input) cr_assert_eq(write(p.in, input, strlen(input)), (ssize_t)strlen(input));
    close(p.in);
    size_t no = 0, ne = 0;
    struct pollfd pf[2] = {{.fd = p.out, .events = POLLIN}, {.fd = p.err, .events = POLLIN}};
    int open_fds = 2;
    while (open_fds) {
        cr_assert_gt(poll(pf, 2, -1), 0);
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || !pf[i].revents) continue;
            char *buf = i ? r->err : r->out;
            size_t *len = i ? &ne : &no;
            ssize_t got = read(pf[i].fd, buf + *len, sizeof r->out - 1 - *len);
            if (got > 0) {
                *len += (size_t)got;
                continue;
            }
            close(pf[i].fd);
            pf[i].fd = -1;
            open_fds--;
        }
    }
    r->out[no] = r->err[ne] = '\0';
    r->rc = wait_exit(p.pid);
}

static char *slurp(const char *rel)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", configs_dir(), rel);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* ---- configs that are wrong ---------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

Test(cli, every_bad_config_gives_its_exact_message_and_exit_1)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/bad", configs_dir());
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *de;
    int cases = 0;
    static struct result r;
    while ((de = readdir(d))) {
        if (!ends_with(de->d_name, ".yaml")) continue;
        char yaml[512], expected[512];
        snprintf(yaml, sizeof yaml, "bad/%s", de->d_name);
        snprintf(expected, sizeof expected, "bad/%.*s.expected", (int)strlen(de->d_name) - 5,
                 de->d_name);
        run(&r, (const char *[]){"validate", yaml, NULL}, NULL, NULL);
        cr_expect_eq(r.rc, 1, "%s: exit %d", yaml, r.rc);
        cr_expect_str_empty(r.out, "%s: stdout %s", yaml, r.out);
        cr_expect_str_eq(r.err, slurp(expected), "%s", yaml);
        cases++;
    }
    closedir(d);
    cr_assert_geq(cases, 20, "only %d bad configs", cases);
}

/* The regression corpus, fuzz finds included: loaded in this process with the built-in
 * registry; each must fail cleanly (ASan watches the rest). */
Test(cli, bad_corpus_loads_to_an_error_without_crashing)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/bad", configs_dir());
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *de;
    struct sl_registry *reg = cli_registry(NULL);
    int cases = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || ends_with(de->d_name, ".expected")) continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct sl_error err = {0};
        struct sl_config *cfg = sl_config_load(path, &err);
        int rc = cfg ? 0 : err.code;
        struct sl_pipeline_options o;
        sl_pipeline_options_init(&o);
        if (cfg) rc = sl_pipeline_options_from_config(&o, cfg, &err);
        if (cfg && !rc) {
            struct sl_pipeline *p = sl_pipeline_new(NULL, NULL, NULL);
            rc = sl_pipeline_load_all(p, reg, cfg, NULL, NULL);
            sl_pipeline_free(p);
        }
        sl_config_free(cfg);
        cr_expect_neq(rc, 0, "%s loaded without an error", de->d_name);
        cases++;
    }
    closedir(d);
    sl_registry_free(reg);
    cr_assert_geq(cases, 20);
}

Test(cli, warning_is_printed_and_the_config_is_valid)
{
    static struct result r;
    run(&r, (const char *[]){"validate", "warn/unreachable.yaml", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 0);
    cr_assert_str_eq(r.err, slurp("warn/unreachable.expected"));
    cr_assert_str_eq(r.out, slurp("warn/unreachable.stdout"));
}

Test(cli, json_log_format_gives_one_object_per_problem)
{
    static struct result r;
    run(&r, (const char *[]){"validate", "--log-format", "json", "bad/unknown_type.yaml", NULL},
        NULL, NULL);
    cr_assert_eq(r.rc, 1);
    const char *want = "\",\"level\":\"error\",\"file\":\"bad/unknown_type.yaml\",\"line\":2,"
                       "\"col\":15,\"stage\":\"gen\",\"msg\":\"unknown source type 'generat' "
                       "(did you mean 'generate'?)\"}\n";
    cr_assert(strncmp(r.err, "{\"time\":\"", 9) == 0, "%s", r.err);
    char *end = strchr(r.err, '\n');
    cr_assert_not_null(end);
    size_t line_len = (size_t)(end - r.err) + 1;
    cr_assert(line_len > strlen(want) &&
                  strncmp(r.err + line_len - strlen(want), want, strlen(want)) == 0,
              "%s", r.err);
}

Test(cli, json_log_format_makes_every_stderr_line_an_object)
{
    static struct result r;
    run(&r, (const char *[]){"run", "--log-format", "json", "first.yaml", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 0);
    int lines = 0;
    for (char *line = r.err, *nl; (nl = strchr(line, '\n')); line = nl + 1, lines++) {
        cr_assert(strncmp(line, "{\"time\":\"", 9) == 0 && nl[-1] == '}', "%.*s", (int)(nl - line),
                  line);
    }
    cr_assert_eq(lines, 5, "%s", r.err); /* source done, three stages, the total */
    cr_assert_not_null(strstr(r.err, "\"stage\":\"some\",\"msg\":\"summary: type=sample "
                                     "kind=filter events_in=1000 events_out=100 dropped=900 "
                                     "errors=0 time="));
}

/* ---- configs that are right ------------------------------------------------------------ */

Test(cli, validate_and_graph_good_configs)
{
    static struct result r;
    run(&r, (const char *[]){"validate", "first.yaml", "dag.yaml", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "first.yaml: valid: 3 stages, 2 edges\n"
                            "dag.yaml: valid: 5 stages, 5 edges\n");
    cr_assert_str_empty(r.err);
    run(&r, (const char *[]){"graph", "dag.yaml", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 0);
    cr_assert_str_eq(r.out, slurp("dag.dot"));
    run(&r, (const char *[]){"graph", "first.yaml", NULL}, NULL, NULL);
    cr_assert_str_eq(r.out, slurp("first.dot"));
}

/* The summary table without its TIME column (the last) and without the rate line. */
static void table_of(const char *err, char *out, size_t size)
{
    const char *t = strstr(err, "STAGE ");
    cr_assert_not_null(t, "no summary in: %s", err);
    out[0] = '\0';
    size_t n = 0;
    for (const char *line = t, *nl; *line && (nl = strchr(line, '\n'));) {
        const char *mark = strstr(line, " events in ");
        if (mark && mark < nl) break; /* the rate line ends the table */
        const char *last = nl;
        while (last > line && last[-1] != ' ') last--; /* start of the last column */
        while (last > line && last[-1] == ' ') last--;
        n += (size_t)snprintf(out + n, size - n, "%.*s\n", (int)(last - line), line);
        line = nl + 1;
    }
}

Test(cli, env_interpolation_sets_the_count)
{
    static struct result r;
    char table[2048];
    run(&r, (const char *[]){"run", "first.yaml", NULL}, (const char *[]){"COUNT=250", NULL}, NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_empty(r.out);
    cr_assert(strncmp(r.err,
                      "sluice: info: stage 'web': source done: 250 events, all acknowledged\n",
                      69) == 0,
              "%s", r.err);
    table_of(r.err, table, sizeof table);
    cr_assert_str_eq(table,
                     "STAGE  TYPE       KIND        EVENTS IN  EVENTS OUT   DROPPED    ERRORS\n"
                     "web    generate   source            250         250         0         0\n"
                     "some   sample     filter            250          25       225         0\n"
                     "out    blackhole  sink               25          25         0         0\n");
}

Test(cli, set_overrides_values_and_stdin_reads_the_config)
{
    static struct result r;
    char table[2048];
    run(&r,
        (const char *[]){"run", "--set", "sources.web.count=40", "-s", "transforms.some.rate=4",
                         "--log-level", "warn", "-", NULL},
        NULL, slurp("first.yaml"));
    cr_assert_eq(r.rc, 0, "%s", r.err);
    table_of(r.err, table, sizeof table);
    cr_assert_str_eq(table,
                     "STAGE  TYPE       KIND        EVENTS IN  EVENTS OUT   DROPPED    ERRORS\n"
                     "web    generate   source             40          40         0         0\n"
                     "some   sample     filter             40          10        30         0\n"
                     "out    blackhole  sink               10          10         0         0\n");
    run(&r, (const char *[]){"validate", "--set", "sources.web.count=many", "-", NULL}, NULL,
        slurp("first.yaml"));
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.err, "<stdin>: error: stage 'web': option 'count' expects an "
                            "integer; found 'many'\n<stdin>: invalid: 1 error\n");
}

Test(cli, dry_run_builds_and_starts_nothing)
{
    static struct result r;
    run(&r, (const char *[]){"run", "dag.yaml", "--dry-run", NULL}, NULL, NULL); /* flags last */
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "dry run: 5 stages, 5 edges built; nothing started\n");
    cr_assert_str_empty(r.err);
    run(&r, (const char *[]){"run", "-n", "bad/cycle.yaml", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.err,
                     "bad/cycle.yaml:4:3: error: the stages form a cycle: a -> b -> c -> a\n");
}

/* ---- the command line --------------------------------------------------------------------- */

Test(cli, usage_errors_exit_2_with_a_hint)
{
    static struct result r;
    run(&r, (const char *[]){"rnu", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 2);
    cr_assert_str_eq(r.err, "sluice: error: unknown command 'rnu' (did you mean 'run'?) (sluice "
                            "--help lists them)\n");
    run(&r, (const char *[]){"run", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 2);
    cr_assert_str_eq(r.err, "sluice: error: missing argument: CONFIG (see sluice run --help)\n");
    run(&r, (const char *[]){"validate", "--dry-run", "first.yaml", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 2);
    cr_assert_str_eq(r.err, "sluice: error: option '--dry-run' does not apply to this command "
                            "(see sluice validate --help)\n");
    run(&r, (const char *[]){"run", "--log-level", "loud", "first.yaml", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 2);
    run(&r, (const char *[]){"run", "--set", "novalue", "first.yaml", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 2);
    cr_assert_str_eq(r.err, "sluice: error: --set expects KEY.PATH=VALUE; found 'novalue' (see "
                            "sluice run --help)\n");
    run(&r, (const char *[]){"run", "--bogus", "first.yaml", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 2);
    cr_assert_str_eq(r.err, "sluice: error: unknown option '--bogus' (see sluice run --help)\n");
    run(&r, (const char *[]){"describe", "blackhol", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 2);
    cr_assert_str_eq(r.err, "sluice: error: unknown stage type 'blackhol' (did you mean "
                            "'blackhole'?)\n");
    run(&r, (const char *[]){"run", "missing.yaml", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.err, "missing.yaml: error: cannot open: No such file or directory\n");
}

Test(cli, kafka_mock_usage_errors_exit_2)
{
    static struct result r;
    run(&r, (const char *[]){"kafka-mock", "--brokers", "0", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 2);
    cr_assert_str_eq(r.err, "sluice: error: --brokers expects a number from 1 to 64; found '0' "
                            "(see sluice kafka-mock --help)\n");
    run(&r, (const char *[]){"kafka-mock", "--topic", "logs", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 2);
    cr_assert_str_eq(r.err, "sluice: error: --topic expects NAME:PARTITIONS such as logs:6; found "
                            "'logs' (see sluice kafka-mock --help)\n");
    run(&r, (const char *[]){"kafka-mock", "--topic", "logs:0", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 2);
    cr_assert_str_eq(r.err, "sluice: error: kafka-mock: a topic is NAME:PARTITIONS such as logs:6; "
                            "found 'logs:0'\n");
    run(&r, (const char *[]){"run", "--brokers", "2", "first.yaml", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 2);
    cr_assert_str_eq(r.err, "sluice: error: option '--brokers' does not apply to this command "
                            "(see sluice run --help)\n");
}

Test(cli, help_and_version)
{
    static struct result r;
    run(&r, (const char *[]){"--version", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 0);
    cr_assert_str_eq(r.out, "sluice " SL_VERSION_STRING "\n");
    run(&r, (const char *[]){"--help", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 0);
    cr_assert_not_null(strstr(r.out, "Exit codes:\n  0    success"));
    const char *cmds[] = {"run", "validate", "graph", "list", "describe"};
    for (size_t i = 0; i < 5; i++) {
        run(&r, (const char *[]){cmds[i], "--help", NULL}, NULL, NULL);
        cr_assert_eq(r.rc, 0, "%s --help", cmds[i]);
        cr_assert(strncmp(r.out, "Usage: sluice ", 14) == 0, "%s", r.out);
        cr_assert_not_null(strstr(r.out, "  3    the run failed"), "%s --help", cmds[i]);
    }
}

Test(cli, list_shows_exactly_the_registered_set_and_every_option_has_a_doc)
{
    static struct result r;
    run(&r, (const char *[]){"list", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 0);
    char *line = strchr(r.out, '\n') + 1; /* past the header */
    size_t i = 0;
    for (; *line; i++) {
        const struct sl_stage_type *t = cli_builtin_at(i);
        cr_assert_not_null(t, "sluice list shows more than the %zu built-ins", i);
        cr_assert(strncmp(line, t->name, strlen(t->name)) == 0 && line[strlen(t->name)] == ' ',
                  "line %zu: %s", i, line);
        cr_assert(t->doc && *t->doc, "type %s has no doc", t->name);
        for (const struct sl_option *o = t->options; o && o->name; o++)
            cr_expect(o->doc && *o->doc, "option %s.%s has no doc", t->name, o->name);
        line = strchr(line, '\n') + 1;
    }
    cr_assert_eq(i, cli_builtin_count());
    for (i = 0; i < cli_builtin_count(); i++) {
        const struct sl_stage_type *t = cli_builtin_at(i);
        run(&r, (const char *[]){"describe", t->name, NULL}, NULL, NULL);
        cr_assert_eq(r.rc, 0);
        for (const struct sl_option *o = t->options; o && o->name; o++)
            cr_expect_not_null(strstr(r.out, o->doc), "describe misses %s", o->name);
        const struct sl_option *rt[SL_RUNTIME_OPTION_TABLES];
        size_t nt = sl_stage_runtime_options(t, rt);
        for (size_t k = 0; k < nt; k++)
            for (const struct sl_option *o = rt[k]; o->name; o++)
                cr_expect_not_null(strstr(r.out, o->doc), "describe %s misses %s", t->name,
                                   o->name);
    }
}

Test(cli, describe_filter_lists_on_error_with_its_choices)
{
    static struct result r;
    run(&r, (const char *[]){"describe", "filter", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 0);
    const char *line = strstr(r.out, "\non_error ");
    cr_assert_not_null(line, "%s", r.out);
    char option[512], choices[256];
    cr_assert_eq(sscanf(line + 1, "%511[^\n]\n%255[^\n]", option, choices), 2, "%s", line);
    cr_assert(strstr(option, " enum ") && strstr(option, " drop "), "type, default: %s", option);
    cr_assert_str_eq(choices + strspn(choices, " "), "one of: drop, dead_letter, fail");
}

/* ---- a live run: metrics, health, signals ------------------------------------------------ */

/* Reads stderr lines until one contains `needle`; returns it (static buffer). */
static const char *wait_line(struct proc *p, const char *needle)
{
    static char line[1024];
    if (!p->err_lines) p->err_lines = fdopen(p->err, "r");
    while (fgets(line, sizeof line, p->err_lines))
        if (strstr(line, needle)) return line;
    cr_assert_fail("sluice ended without printing '%s'", needle);
    return NULL;
}

/* GET `path` from 127.0.0.1:port; returns the whole response (static buffer). */
static const char *http_get(int port, const char *path)
{
    static char resp[65536];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "connect: %s", strerror(errno));
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    size_t len = 0;
    ssize_t got;
    while ((got = read(fd, resp + len, sizeof resp - 1 - len)) > 0) len += (size_t)got;
    resp[len] = '\0';
    close(fd);
    return resp;
}

static void expect_metric(const char *body, const char *line)
{
    char want[512];
    snprintf(want, sizeof want, "\n%s\n", line);
    cr_expect_not_null(strstr(body, want), "missing metric line: %s", line);
}

/* Waits for both lines, in either order. */
static void wait_both(struct proc *p, const char *a, const char *b)
{
    static char line[1024];
    bool seen_a = false, seen_b = false;
    if (!p->err_lines) p->err_lines = fdopen(p->err, "r");
    while (!(seen_a && seen_b) && fgets(line, sizeof line, p->err_lines)) {
        seen_a = seen_a || strstr(line, a);
        seen_b = seen_b || strstr(line, b);
    }
    cr_assert(seen_a && seen_b, "sluice ended without printing '%s' and '%s'", a, b);
}

/* The value of the sample `name{labels}` (the line's start), or -1 when missing. */
static double metric_value(const char *body, const char *sample)
{
    char want[512];
    snprintf(want, sizeof want, "\n%s ", sample);
    const char *at = strstr(body, want);
    cr_expect_not_null(at, "missing metric: %s", sample);
    return at ? strtod(at + strlen(want), NULL) : -1;
}

/* The stage's batch histogram: buckets never decrease, +Inf is _count, which is `n`. */
static void expect_histogram(const char *body, const char *labels, double n)
{
    static const char *const le[] = {"0.0001", "0.001", "0.01", "0.1", "1", "10", "+Inf"};
    char sample[512];
    double last = 0;
    for (size_t i = 0; i < sizeof le / sizeof *le; i++) {
        snprintf(sample, sizeof sample, "sluice_stage_batch_seconds_bucket{%s,le=\"%s\"}", labels,
                 le[i]);
        double v = metric_value(body, sample);
        cr_expect_geq(v, last, "%s: %f after %f", sample, v, last);
        last = v;
    }
    cr_expect_eq(last, n, "%s: +Inf %f", labels, last);
    snprintf(sample, sizeof sample, "sluice_stage_batch_seconds_count{%s}", labels);
    cr_expect_eq(metric_value(body, sample), n, "%s", sample);
    snprintf(sample, sizeof sample, "sluice_stage_batch_seconds_sum{%s}", labels);
    double sum = metric_value(body, sample);
    cr_expect(sum > 0 && sum < 10, "%s: %f", sample, sum);
}

/* Busy time, batch histograms, a file source's lag, the age of events at sinks. */
static void expect_timings(const char *m)
{
    const char *gen = "stage=\"gen\",type=\"generate\",kind=\"source\"";
    const char *out = "stage=\"out\",type=\"blackhole\",kind=\"sink\"";
    cr_expect_not_null(strstr(m, "\n# TYPE sluice_stage_batch_seconds histogram\n"));
    expect_histogram(m, gen, 10); /* 1000 events in batches of 100 */
    expect_histogram(m, out, 11); /* and idle's first */
    double busy = metric_value(
        m, "sluice_stage_busy_seconds_total{stage=\"gen\",type=\"generate\",kind=\"source\"}");
    cr_expect(busy > 0 && busy < 10, "busy %f", busy);
    expect_metric(m, "sluice_source_lag_bytes{stage=\"lines\",type=\"file\",kind=\"source\"} 0");
    cr_expect_null(strstr(m, "\nsluice_source_lag_bytes{stage=\"gen\""), "generate counts events");
    /* generate's events start at 2024-01-01T00:00:00Z and advance by seconds at most */
    double since_2024 = (double)time(NULL) - 1704067200.0;
    double age = metric_value(
        m, "sluice_sink_event_age_seconds{stage=\"out\",type=\"blackhole\",kind=\"sink\"}");
    cr_expect(age > since_2024 - 86400 && age < since_2024 + 60, "age %f, since 2024 %f", age,
              since_2024);
}

Test(cli, metrics_are_exact_during_a_run_and_health_turns_503_on_sigterm)
{
    struct proc p =
        start((const char *[]){"run", "--quiet", "--log-level", "info", "--metrics-addr",
                               "127.0.0.1:0", "--shutdown-delay", "3s", "metrics.yaml", NULL},
              NULL);
    close(p.in);
    int port = 0;
    const char *l = wait_line(&p, "serving /metrics and /health on http://127.0.0.1:");
    cr_assert_eq(sscanf(strstr(l, "127.0.0.1:") + 10, "%d", &port), 1);
    wait_both(&p, "stage 'gen': source done: 1000 events, all acknowledged",
              "stage 'lines': source done");
    const char *m = http_get(port, "/metrics");
    cr_assert(strncmp(m, "HTTP/1.0 200 OK\r\n", 17) == 0 || strncmp(m, "HTTP/1.1 200 OK", 15) == 0,
              "%s", m);
    cr_assert_not_null(strstr(m, "Content-Type: text/plain; version=0.0.4"));
    expect_metric(m,
                  "sluice_events_out_total{stage=\"gen\",type=\"generate\",kind=\"source\"} 1000");
    expect_metric(
        m, "sluice_acknowledged_total{stage=\"gen\",type=\"generate\",kind=\"source\"} 1000");
    expect_metric(m, "sluice_events_out_total{stage=\"idle\",type=\"generate\",kind=\"source\"} 1");
    expect_metric(m, "sluice_events_in_total{stage=\"out\",type=\"blackhole\",kind=\"sink\"} 1001");
    expect_metric(m,
                  "sluice_acknowledged_total{stage=\"out\",type=\"blackhole\",kind=\"sink\"} 1001");
    expect_metric(m,
                  "sluice_bytes_in_total{stage=\"out\",type=\"blackhole\",kind=\"sink\"} 190896");
    expect_metric(m, "sluice_errors_total{stage=\"out\",type=\"blackhole\",kind=\"sink\"} 0");
    expect_metric(m, "sluice_retries_total{stage=\"out\",type=\"blackhole\",kind=\"sink\"} 0");
    cr_expect_not_null(strstr(m, "\n# HELP sluice_retries_total Writes a sink answered SL_RETRY "
                                 "for and tried again.\n# TYPE sluice_retries_total counter\n"));
    expect_metric(m, "sluice_dropped_total{stage=\"out\",type=\"blackhole\",kind=\"sink\"} 0");
    expect_metric(m,
                  "sluice_queue_depth_batches{stage=\"out\",type=\"blackhole\",kind=\"sink\"} 0");
    expect_metric(
        m, "sluice_queue_capacity_batches{stage=\"out\",type=\"blackhole\",kind=\"sink\"} 16");
    expect_metric(m, "sluice_stage_finished{stage=\"gen\",type=\"generate\",kind=\"source\"} 1");
    expect_metric(m, "sluice_stage_finished{stage=\"idle\",type=\"generate\",kind=\"source\"} 0");
    cr_expect_not_null(strstr(m, "\n# HELP sluice_stage_kafka_broker_errors_total Errors the Kafka "
                                 "client reported (a broker down or unreachable, an unknown "
                                 "topic).\n# TYPE sluice_stage_kafka_broker_errors_total "
                                 "counter\n"));
    expect_metric(m, "sluice_stage_kafka_broker_errors_total{stage=\"kafka\"} 0");
    cr_expect_not_null(strstr(m, "\nprocess_resident_memory_bytes "));
    cr_expect_not_null(strstr(m, "\nsluice_uptime_seconds "));
    const char *cpu =
        strstr(m, "\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total ");
    cr_assert_not_null(cpu, "%s", m);
    double cpu_s = strtod(
        cpu + strlen("\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total "),
        NULL);
    cr_expect(cpu_s > 0 && cpu_s < 60, "process_cpu_seconds_total %f", cpu_s);
    const char *start = strstr(m, "\nprocess_start_time_seconds ");
    cr_assert_not_null(start, "%s", m);
    double started = strtod(start + 28, NULL), now = (double)time(NULL);
    cr_expect(started > now - 120 && started <= now + 1, "started %f, now %f", started, now);
    char build[96];
    snprintf(build, sizeof build, "sluice_build_info{version=\"%d.%d.%d\"} 1", SL_VERSION_MAJOR,
             SL_VERSION_MINOR, SL_VERSION_PATCH);
    expect_metric(m, build);
    expect_timings(m);
    cr_assert_not_null(strstr(http_get(port, "/health"), " 200 OK"));
    cr_assert_not_null(strstr(http_get(port, "/nowhere"), " 404 "));
    kill(p.pid, SIGTERM);
    wait_line(&p, "received SIGTERM: health is 503, stopping in 3000 ms");
    cr_assert_not_null(strstr(http_get(port, "/health"), " 503 "));
    wait_line(&p, "stage 'idle': source done: 1 event, all acknowledged");
    cr_assert_eq(wait_exit(p.pid), 0);
    fclose(p.err_lines);
    close(p.out);
}

Test(cli, a_stage_failing_during_the_run_exits_3_naming_it)
{
    static struct result r;
    run(&r, (const char *[]){"run", "--quiet", "fail_run.yaml", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 3, "%s", r.err);
    /* Nothing claims the source was acknowledged: the failed batch was not. */
    cr_assert_str_eq(r.err, "sluice: error: stage 'parse': not a JSON object\n");
}

/* ---- -q: errors only (issue 15) ------------------------------------------------------- */

Test(cli, quiet_prints_nothing_on_a_good_run)
{
    static struct result r;
    run(&r, (const char *[]){"run", "-q", "warn/unreachable.yaml", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.err, "");
    cr_assert_str_eq(r.out, "");
}

Test(cli, quiet_still_prints_the_error_of_a_failing_run)
{
    static struct result r;
    run(&r, (const char *[]){"run", "-q", "fail_run.yaml", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 3, "%s", r.err);
    cr_assert_str_eq(r.err, "sluice: error: stage 'parse': not a JSON object\n");
}

static const char unreachable_warnings[] =
    "warn/unreachable.yaml:3:3: warning: stage 'lost': no sink reads from this stage: its "
    "events are discarded\n"
    "warn/unreachable.yaml:5:3: warning: stage 'nowhere': no sink reads from this stage: its "
    "events are discarded\n";

Test(cli, quiet_with_log_level_warn_shows_warnings_only)
{
    static struct result r;
    run(&r, (const char *[]){"run", "-q", "--log-level", "warn", "warn/unreachable.yaml", NULL},
        NULL, NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.err, unreachable_warnings);
}

/* An explicit --log-level wins over -q whichever comes first; -q still drops the summary. */
Test(cli, log_level_info_before_quiet_shows_info_lines)
{
    static struct result r;
    run(&r, (const char *[]){"run", "--log-level", "info", "-q", "warn/unreachable.yaml", NULL},
        NULL, NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strncmp(r.err, unreachable_warnings, strlen(unreachable_warnings)) == 0, "%s", r.err);
    cr_assert_not_null(
        strstr(r.err, "sluice: info: stage 'gen': source done: 5 events, all acknowledged\n"), "%s",
        r.err);
    cr_assert_not_null(
        strstr(r.err, "sluice: info: stage 'lost': source done: 5 events, all acknowledged\n"),
        "%s", r.err);
    cr_assert_null(strstr(r.err, "EVENTS IN"), "%s", r.err);
    cr_assert_str_eq(r.out, "");
}

Test(cli, a_sink_out_of_retry_attempts_exits_3_with_its_last_reason)
{
    static struct result r;
    char dir[] = "/tmp/sluice-cli-XXXXXX", env[64], why[160], want[256];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(env, sizeof env, "OUT=%s", dir);
    /* sluice inherits a file size limit of 0 and the ignored SIGXFSZ: writes fail, EFBIG */
    struct rlimit old, zero = {0, RLIM_INFINITY};
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_IGN);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &zero), 0);
    run(&r, (const char *[]){"run", "--quiet", "--log-level", "warn", "retry_give_up.yaml", NULL},
        (const char *[]){env, NULL}, NULL);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    cr_assert_eq(r.rc, 3, "%s", r.err);
    snprintf(why, sizeof why, "cannot write %s/out.log: File too large", dir);
    for (int k = 2; k <= 3; k++) { /* the delay between is drawn: not compared */
        snprintf(want, sizeof want, "sluice: warning: stage 'out': %s; retrying in ", why);
        const char *line = strstr(r.err, want);
        for (int i = 2; line && i < k; i++) line = strstr(line + 1, want);
        cr_assert_not_null(line, "no warning for attempt %d:\n%s", k, r.err);
        snprintf(want, sizeof want, " ms (attempt %d of 3)\n", k);
        cr_assert_not_null(strstr(line, want), "%s", r.err);
    }
    snprintf(want, sizeof want, "sluice: error: stage 'out': gave up after 3 attempts: %s\n", why);
    size_t n = strlen(r.err), w = strlen(want);
    cr_assert(n >= w && strcmp(r.err + n - w, want) == 0, "%s", r.err);
    snprintf(want, sizeof want, "%s/out.log", dir);
    unlink(want);
    rmdir(dir);
}

Test(cli, a_file_source_with_nothing_readable_exits_3_with_the_reason)
{
    static struct result r;
    run(&r, (const char *[]){"run", "--quiet", "--log-level", "warn", "unreadable_file.yaml", NULL},
        NULL, NULL);
    cr_assert_eq(r.rc, 3, "%s", r.err);
    /* each unreadable path is warned about as it is found; the first fails the run */
    cr_assert_str_eq(r.err, "sluice: warning: stage 'logs': cannot open "
                            "unreadable_file.yaml/app.log: Not a directory\n"
                            "sluice: error: stage 'logs': cannot open "
                            "unreadable_file.yaml/app.log: Not a directory\n");
}

/* Reads the file `dir`/`name` into an owned string (free). */
static char *read_in(const char *dir, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

Test(cli, a_line_with_65536_members_is_dead_lettered_and_the_run_exits_0)
{
    char dir[] = "/tmp/sluice-poison-XXXXXX", env[4200], path[4200];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/in.jsonl", dir);
    FILE *f = fopen(path, "wb");
    fputs("{\"n\":1}\n{", f); /* 65536 members, 585 KB: under the 1 MiB line limit */
    for (int i = 0; i < 65536; i++) fprintf(f, "%s\"k%d\":%d", i ? "," : "", i, i % 10);
    fputs("}\n{\"n\":3}\n", f);
    fclose(f);
    snprintf(env, sizeof env, "DIR=%s", dir);
    static struct result r;
    for (int run_no = 0; run_no < 2; run_no++) { /* a restart finds nothing left to do */
        run(&r, (const char *[]){"run", "--quiet", "poison_line.yaml", NULL},
            (const char *[]){env, NULL}, NULL);
        cr_assert_eq(r.rc, 0, "run %d: %s", run_no, r.err);
    }
    char *out = read_in(dir, "out.jsonl"), *dead = read_in(dir, "dead.jsonl");
    cr_assert_str_eq(out, "{\"n\":1}\n{\"n\":3}\n");
    cr_assert(strncmp(dead, "{\"message\":\"{\\\"k0\\\":0,", 19) == 0, "%.40s", dead);
    cr_assert(ends_with(dead, "\",\"error\":\"more than 65535 fields\"}\n"));
    free(out);
    free(dead);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(cli, metrics_port_in_use_fails_the_run_with_exit_3)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(fd, 1), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    char addr[64], want[160];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sa.sin_port));
    static struct result r;
    run(&r, (const char *[]){"run", "--metrics-addr", addr, "first.yaml", NULL}, NULL, NULL);
    close(fd);
    cr_assert_eq(r.rc, 3);
    snprintf(want, sizeof want, "sluice: error: cannot listen on %s: Address already in use\n",
             addr);
    cr_assert_str_eq(r.err, want);
    run(&r, (const char *[]){"run", "--metrics-addr", "9598", "first.yaml", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 2);
    cr_assert_str_eq(r.err, "sluice: error: --metrics-addr expects HOST:PORT such as "
                            "127.0.0.1:9598; found '9598' (see sluice run --help)\n");
}

Test(cli, second_signal_aborts_with_128_plus_signo)
{
    struct proc p = start((const char *[]){"run", "--stats-interval", "20ms", "--shutdown-delay",
                                           "1h", "metrics.yaml", NULL},
                          NULL);
    close(p.in);
    wait_line(&p, "stage 'gen': source done: 1000 events");
    /* Not a terminal: the status comes as plain log lines at the interval. */
    wait_line(&p, "dropped 0  errors 0  queue out 0/16\n");
    kill(p.pid, SIGTERM);
    wait_line(&p, "received SIGTERM");
    kill(p.pid, SIGTERM);
    wait_line(&p, "sluice: warning: second SIGTERM: aborting without draining");
    cr_assert_eq(wait_exit(p.pid), 143);
    fclose(p.err_lines);
    close(p.out);
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A regex at its match limit costs ~35 ms an event: a batch of them is seconds of work.
 * The loop still turns between slices, so /health answers at once (before slices, it
 * waited for the batch: over 10 s), and a second SIGINT ends the process from its
 * handler while the stage works (before, signals waited for the batch too). The bound
 * is generous for a shared machine; the figure is in the closing note. */
Test(cli, a_slow_stage_leaves_health_answering_and_a_second_signal_ends_it)
{
    struct proc p =
        start((const char *[]){"run", "--quiet", "--log-level", "info", "--metrics-addr",
                               "127.0.0.1:0", "slow_regex.yaml", NULL},
              NULL);
    close(p.in);
    int port = 0;
    const char *l = wait_line(&p, "serving /metrics and /health on http://127.0.0.1:");
    cr_assert_eq(sscanf(strstr(l, "127.0.0.1:") + 10, "%d", &port), 1);
    double worst = 0;
    for (int i = 0; i < 10; i++) {
        double t0 = mono_s();
        cr_assert_not_null(strstr(http_get(port, "/health"), " 200 OK"));
        double took = mono_s() - t0;
        if (took > worst) worst = took;
    }
    cr_assert_lt(worst, 1.0, "/health took %.3f s under a slow stage", worst);
    kill(p.pid, SIGINT);
    wait_line(&p, "received SIGINT");
    double t0 = mono_s();
    kill(p.pid, SIGINT);
    wait_line(&p, "sluice: warning: second SIGINT: aborting without draining");
    cr_assert_eq(wait_exit(p.pid), 130);
    cr_assert_lt(mono_s() - t0, 2.0, "the second SIGINT took %.3f s", mono_s() - t0);
    fclose(p.err_lines);
    close(p.out);
}

/* ---- the checkpoint database ---------------------------------------------------------- */

static int lines_in(const char *dir, const char *name)
{
    char *text = read_in(dir, name);
    int n = 0;
    for (const char *c = text; *c; c++) n += *c == '\n';
    free(text);
    return n;
}

/* Runs `args` (NULL-terminated, in tests/configs) with DIR=`dir` in the environment. */
static void run_in(struct result *r, const char *dir, const char *const *args)
{
    char env[4200];
    snprintf(env, sizeof env, "DIR=%s", dir);
    run(r, args, (const char *[]){env, NULL}, NULL);
}

static char *checkpointed_dir(void)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/sluice-ckpt-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char path[4200];
    snprintf(path, sizeof path, "%s/in.log", dir);
    FILE *f = fopen(path, "w");
    fputs("one\ntwo\nthree\n", f);
    fclose(f);
    static struct result r;
    run_in(&r, dir, (const char *[]){"run", "--quiet", "checkpointed.yaml", NULL});
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_eq(lines_in(dir, "out.log"), 3);
    return dir;
}

Test(cli, checkpoints_lists_and_resets_a_source)
{
    char *dir = checkpointed_dir(), db[4200], want[4300];
    snprintf(db, sizeof db, "%s/state/checkpoints.db", dir);
    static struct result r;
    run(&r, (const char *[]){"checkpoints", db, NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    snprintf(want, sizeof want, "%s/in.log\n", dir);
    cr_assert(strstr(r.out, "\nsrc ") && strstr(r.out, " 14  ") && strstr(r.out, want), "%s",
              r.out);
    cr_assert_str_eq(r.err, "1 checkpoint\n");
    run(&r, (const char *[]){"checkpoints", "--check", db, NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 0);
    snprintf(want, sizeof want, "%s: ok\n", db);
    cr_assert_str_eq(r.out, want);
    run_in(&r, dir, (const char *[]){"run", "--quiet", "checkpointed.yaml", NULL});
    cr_assert_eq(lines_in(dir, "out.log"), 3, "a second run reads nothing new");
    run(&r, (const char *[]){"checkpoints", "--reset", "src", db, NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "forgot 1 checkpoint of source 'src': read again from read_from at "
                            "the next run\n");
    run_in(&r, dir, (const char *[]){"run", "--quiet", "checkpointed.yaml", NULL});
    cr_assert_eq(lines_in(dir, "out.log"), 6, "reset: the file is read again");
}

/* A data page of the database overwritten: the run fails at start, naming the file and
 * SQLite's complaint, instead of reading every file again from offset 0 each run. */
Test(cli, a_damaged_checkpoint_database_fails_the_run_at_start)
{
    char *dir = checkpointed_dir(), db[4200], want[4400];
    snprintf(db, sizeof db, "%s/state/checkpoints.db", dir);
    FILE *f = fopen(db, "r+b");
    cr_assert_not_null(f);
    char junk[4096];
    memset(junk, 0x5a, sizeof junk);
    fseek(f, 4096, SEEK_SET); /* page 2: the table's rows */
    cr_assert_eq(fwrite(junk, 1, sizeof junk, f), sizeof junk);
    fclose(f);
    static struct result r;
    run_in(&r, dir, (const char *[]){"run", "--quiet", "checkpointed.yaml", NULL});
    cr_assert_eq(r.rc, 3, "%s", r.err);
    snprintf(want, sizeof want,
             "sluice: error: stage 'src': checkpoint database '%s' cannot be "
             "read: ",
             db);
    cr_assert(strncmp(r.err, want, strlen(want)) == 0, "%s", r.err);
    cr_assert_eq(lines_in(dir, "out.log"), 3, "nothing was read again");
    run(&r, (const char *[]){"checkpoints", "--check", db, NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 3);
    cr_assert(strstr(r.err, "is damaged; remove it"), "%s", r.err);
}

Test(cli, checkpoints_options_go_together_or_not_at_all)
{
    static struct result r;
    run(&r, (const char *[]){"checkpoints", "--file", "a.log", "x.db", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 2);
    cr_assert_str_eq(r.err, "sluice: error: option '--file' goes with --reset SOURCE (see "
                            "sluice checkpoints --help)\n");
    run(&r, (const char *[]){"run", "--check", "first.yaml", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 2);
    run(&r, (const char *[]){"checkpoints", "/nonexistent/x.db", NULL}, NULL, NULL);
    cr_assert_eq(r.rc, 3);
    cr_assert_str_eq(r.err, "sluice: error: /nonexistent/x.db: No such file or directory\n");
}

/* ---- the status line's ETA ------------------------------------------------------------------ */

Test(cli, eta_is_shown_once_three_estimates_agree_and_then_holds_still)
{
    struct cli_eta e = CLI_ETA_INIT;
    uint64_t left = 100000;
    /* 1000 units a second, ticks of 1 s: the third estimate is the first shown. */
    cr_assert_eq(cli_eta_update(&e, 1000, 1.0, left -= 1000), -1);
    cr_assert_eq(cli_eta_update(&e, 1000, 1.0, left -= 1000), -1);
    cr_assert_eq(cli_eta_update(&e, 1000, 1.0, left -= 1000), 97);
    cr_assert_eq(cli_eta_update(&e, 1000, 1.0, left -= 1000), 96);
    /* Bursty progress (500, 1500, 500, ...; 1000 a second on average): the shown ETA
     * stays within 12 % of the time left at the average rate, where each tick's rate
     * alone would make it twice or two thirds of it. */
    for (int i = 0; i < 40; i++) {
        double step = i % 2 ? 1500 : 500;
        long eta = cli_eta_update(&e, step, 1.0, left -= (uint64_t)step);
        double truth = (double)left / 1000;
        cr_assert_geq(eta, 0, "tick %d: hidden", i);
        cr_assert_leq(fabs((double)eta - truth), 0.12 * truth, "tick %d: %ld for %.0f", i, eta,
                      truth);
    }
    /* A stall: the estimate grows past a fifth at once, and is hidden until it settles. */
    cr_assert_eq(cli_eta_update(&e, 0, 1.0, left), -1);
    cr_assert_eq(cli_eta_update(&e, 0, 1.0, left), -1);
    /* Done: nothing left, nothing shown. */
    cr_assert_eq(cli_eta_update(&e, 1000, 1.0, 0), -1);
}
