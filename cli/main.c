/* The `sluice` program: argument parsing per command, help texts and exit codes. The
 * work is done in run.c (run, validate, graph) and describe.c (list, describe). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char exit_codes[] =
    "Exit codes:\n"
    "  0    success (also after a graceful stop by a first SIGINT or SIGTERM)\n"
    "  1    invalid config: every problem is printed as file:line:col\n"
    "  2    usage error: unknown command, option or value\n"
    "  3    the run failed: a stage failed, or the metrics server could not start\n"
    "  130  aborted by a second SIGINT (143: by a second SIGTERM; 128 + signal)\n";

static const char common_opts[] =
    "  -s, --set KEY.PATH=VALUE  override a config value, e.g. --set sinks.out.path=x.log\n"
    "                            (repeatable; VALUE may be YAML: --set 'sources.a.lines=[x, y]')\n"
    "      --plugin PATH         load stage types from the shared object PATH before the\n"
    "                            config's own `plugins:` (repeatable)\n"
    "      --log-level LEVEL     error, warn, info (default; error with run -q) or debug\n"
    "      --log-format FORMAT   text (default) or json: one JSON object per line\n"
    "  -h, --help                this help\n";

struct command {
    const char *name;       /* as typed */
    const char *args;       /* usage line after the name */
    const char *summary;    /* one line for `sluice --help` */
    const char *options;    /* its own options, "" when none */
    int min_args, max_args; /* positional arguments (-1: any number) */
    bool config_opts;       /* takes --set */
};

static const struct command commands[] = {
    {"run", "[OPTIONS] CONFIG", "run a pipeline until its sources end or a signal stops it",
     "  -n, --dry-run             build the graph, start nothing\n"
     "  -q, --quiet               no status line, no summary, and only error log lines\n"
     "                            (an explicit --log-level wins, in any order)\n"
     "      --stats-interval DUR  print the status as a log line every DUR when stderr is\n"
     "                            not a terminal (e.g. 10s)\n"
     "      --metrics-addr H:P    serve /metrics (Prometheus) and /health on H:P, e.g.\n"
     "                            127.0.0.1:9598 (port 0: any free port; off by default)\n"
     "      --metrics-max-connections N\n"
     "                            serve at most N connections at once; more wait for one\n"
     "                            to close (default 256)\n"
     "      --shutdown-delay DUR  on SIGINT/SIGTERM, answer /health 503 for DUR before\n"
     "                            stopping the sources (default 0)\n",
     1, 1, true},
    {"validate", "[OPTIONS] CONFIG...", "check configs and print every problem", "", 1, -1, true},
    {"graph", "[OPTIONS] CONFIG", "print the pipeline as Graphviz DOT (| dot -Tsvg > p.svg)", "", 1,
     1, true},
    {"list", "[OPTIONS]", "list the stage types",
     "      --plugin PATH         list the stage types of the shared object PATH too\n", 0, 0,
     false},
    {"describe", "[OPTIONS] TYPE",
     "show a stage type's options (or the pipeline settings: describe pipeline)",
     "      --plugin PATH         load stage types from the shared object PATH first\n", 1, 1,
     false},
    {"checkpoints", "[OPTIONS] DB", "list, check or reset a file source's checkpoint database",
     "      --check               check the database with SQLite's integrity_check\n"
     "      --reset SOURCE        forget the checkpoints of source SOURCE: its files are\n"
     "                            read again from read_from at the next run\n"
     "      --file PATH           with --reset: forget only the file PATH\n",
     1, 1, false},
    {"top", "[OPTIONS] [ADDR]",
     "watch a running sluice: events/s, errors and queue fill per stage (q quits)",
     "      --once                print one frame (rates over one second) and exit\n"
     "  ADDR is the --metrics-addr of the run (default " CLI_DEFAULT_ADDR "); with\n"
     "  api.auth, the token is read from SLUICE_API_TOKEN. Keys: s sorts by events/s or\n"
     "  by queue fill, q quits.\n",
     0, 1, false},
    {"tap", "[OPTIONS] [ADDR] STAGE[.PORT]",
     "print the events leaving a stage of a running sluice as JSON lines (api.tap)",
     "      --limit N             end after N events\n"
     "      --filter EXPR         only the events for which EXPR holds (as the filter stage)\n"
     "  ADDR as for top. Events dropped because they came faster than they were read are\n"
     "  told on stderr; the stage never waits for the tap.\n",
     1, 2, false},
    {"kafka-mock", "[OPTIONS]",
     "host a mock Kafka cluster, print its bootstrap address, serve until SIGINT/SIGTERM",
     "      --brokers N           brokers of the cluster (1 to 64, default 1)\n"
     "      --topic NAME:PARTITIONS\n"
     "                            create a topic of that many partitions (repeatable;\n"
     "                            unknown topics are made with 4 on first use)\n"
     "  Standard input takes commands, one a line, each answered 'ok' or 'error: ...':\n"
     "  down ID, up ID (broker ID stops / resumes answering), topic NAME:PARTITIONS\n",
     0, 0, false},
};

#define NCOMMANDS (sizeof commands / sizeof *commands)

static void usage(FILE *out)
{
    fprintf(out,
            "sluice %s: asynchronous stream processing, pipelines in YAML\n\n"
            "Usage: sluice COMMAND [OPTIONS] [ARGS]\n\nCommands:\n",
            sl_version());
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\nCONFIG is a YAML file, or - for standard input. `sluice COMMAND --help` "
            "tells more.\n  -h, --help     this help\n  -V, --version  print the version\n\n"
            "%s",
            exit_codes);
}

static void command_help(const struct command *c, FILE *out)
{
    fprintf(out, "Usage: sluice %s %s\n\n%c%s.\n", c->name, c->args, c->summary[0] - 32,
            c->summary + 1);
    fprintf(out, "\nOptions:\n%s", c->options);
    if (c->config_opts)
        fputs(common_opts, out);
    else
        fputs("      --log-level LEVEL     error, warn, info (default) or debug\n"
              "      --log-format FORMAT   text (default) or json\n"
              "  -h, --help                this help\n",
              out);
    fprintf(out, "\n%s", exit_codes);
}

static int bad_usage(const struct command *c, const char *fmt, const char *arg)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, arg);
    cli_log(SL_LOG_ERROR, NULL, "%s (see sluice %s --help)", msg, c ? c->name : "");
    return CLI_EUSAGE;
}

enum {
    OPT_LOG_LEVEL = 256,
    OPT_LOG_FORMAT,
    OPT_STATS,
    OPT_METRICS,
    OPT_MAX_CONNS,
    OPT_DELAY,
    OPT_CHECK,
    OPT_RESET,
    OPT_FILE,
    OPT_BROKERS,
    OPT_TOPIC,
    OPT_PLUGIN,
};

static const struct option long_opts[] = {
    {"set", required_argument, NULL, 's'},
    {"help", no_argument, NULL, 'h'},
    {"dry-run", no_argument, NULL, 'n'},
    {"quiet", no_argument, NULL, 'q'},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"stats-interval", required_argument, NULL, OPT_STATS},
    {"metrics-addr", required_argument, NULL, OPT_METRICS},
    {"metrics-max-connections", required_argument, NULL, OPT_MAX_CONNS},
    {"shutdown-delay", required_argument, NULL, OPT_DELAY},
    {"check", no_argument, NULL, OPT_CHECK},
    {"reset", required_argument, NULL, OPT_RESET},
    {"file", required_argument, NULL, OPT_FILE},
    {"brokers", required_argument, NULL, OPT_BROKERS},
    {"topic", required_argument, NULL, OPT_TOPIC},
    {"plugin", required_argument, NULL, OPT_PLUGIN},
    {0},
};

struct parsed {
    struct cli_opts o;    /* for run.c */
    const char **sets;    /* --set values (owned array) */
    const char **plugins; /* --plugin values (owned array) */
    bool help;            /* --help */
    int level, format;    /* --log-level (-1: not given), --log-format */
};

static int duration_arg(const struct command *c, const char *flag, const char *v, int64_t *ms)
{
    long long x;
    if (sl_parse_duration(v, &x)) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s expects a duration such as 500ms or 10s; found '%%s'", flag);
        return bad_usage(c, msg, v);
    }
    *ms = x;
    return 0;
}

static bool run_only(int opt)
{
    return opt == 'n' || opt == 'q' || opt == OPT_STATS || opt == OPT_METRICS ||
           opt == OPT_MAX_CONNS || opt == OPT_DELAY;
}

static const char *opt_name(int opt)
{
    for (const struct option *lo = long_opts; lo->name; lo++)
        if (lo->val == opt) return lo->name;
    return "?";
}

static bool checkpoints_only(int opt)
{
    return opt == OPT_CHECK || opt == OPT_RESET || opt == OPT_FILE;
}

static bool kafka_mock_only(int opt)
{
    return opt == OPT_BROKERS || opt == OPT_TOPIC;
}

/* One option of `c`; returns 0 or CLI_EUSAGE. */
static int metrics_addr_arg(const struct command *c, const char *arg, struct cli_opts *o)
{
    const char *colon = strrchr(arg, ':');
    char *end = NULL;
    long port = colon && colon != arg ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || colon == arg || !colon[1] || *end || port < 0 || port > 65535)
        return bad_usage(c, "--metrics-addr expects HOST:PORT such as 127.0.0.1:9598; found '%s'",
                         arg);
    o->metrics_addr = arg;
    return 0;
}

/* --brokers N and --topic NAME:PARTITIONS of `sluice kafka-mock`. */
static int mock_arg(const struct command *c, int opt, const char *arg, struct cli_opts *o)
{
    if (opt == OPT_TOPIC) {
        if (!strchr(arg, ':'))
            return bad_usage(c, "--topic expects NAME:PARTITIONS such as logs:6; found '%s'", arg);
        o->mock_topics[o->nmock_topics++] = arg;
        return 0;
    }
    char *end = NULL;
    long n = strtol(arg, &end, 10);
    if (!*arg || *end || n < 1 || n > 64)
        return bad_usage(c, "--brokers expects a number from 1 to 64; found '%s'", arg);
    o->mock_brokers = (int)n;
    return 0;
}

static int take_option(const struct command *c, int opt, const char *arg, struct parsed *ps)
{
    struct cli_opts *o = &ps->o;
    if ((run_only(opt) && strcmp(c->name, "run") != 0) || (opt == 's' && !c->config_opts) ||
        (checkpoints_only(opt) && strcmp(c->name, "checkpoints") != 0) ||
        (kafka_mock_only(opt) && strcmp(c->name, "kafka-mock") != 0) ||
        (opt == OPT_PLUGIN && !strcmp(c->name, "checkpoints")))
        return bad_usage(c, "option '--%s' does not apply to this command", opt_name(opt));
    switch (opt) {
    case 's':
        if (!strchr(arg, '=') || arg[0] == '=')
            return bad_usage(c, "--set expects KEY.PATH=VALUE; found '%s'", arg);
        ps->sets[o->nsets++] = arg;
        return 0;
    case 'h': ps->help = true; return 0;
    case 'n': o->dry_run = true; return 0;
    case 'q': o->quiet = true; return 0;
    case OPT_LOG_LEVEL:
        if ((ps->level = cli_log_level_parse(arg)) < 0)
            return bad_usage(c, "--log-level expects error, warn, info or debug; found '%s'", arg);
        return 0;
    case OPT_LOG_FORMAT:
        if ((ps->format = cli_log_format_parse(arg)) < 0)
            return bad_usage(c, "--log-format expects text or json; found '%s'", arg);
        return 0;
    case OPT_STATS: return duration_arg(c, "--stats-interval", arg, &o->stats_interval_ms);
    case OPT_METRICS: return metrics_addr_arg(c, arg, o);
    case OPT_MAX_CONNS: {
        char *end = NULL;
        long n = strtol(arg, &end, 10);
        if (!*arg || *end || n < 1 || n > 65535)
            return bad_usage(
                c, "--metrics-max-connections expects a number from 1 to 65535; found '%s'", arg);
        o->metrics_max_conns = (unsigned)n;
        return 0;
    }
    case OPT_DELAY: return duration_arg(c, "--shutdown-delay", arg, &o->shutdown_delay_ms);
    case OPT_CHECK: o->check = true; return 0;
    case OPT_RESET: o->reset_source = arg; return 0;
    case OPT_FILE: o->reset_file = arg; return 0;
    case OPT_BROKERS:
    case OPT_TOPIC: return mock_arg(c, opt, arg, o);
    case OPT_PLUGIN: ps->plugins[o->nplugins++] = arg; return 0;
    default: return CLI_EUSAGE; /* getopt has said what was wrong */
    }
}

static int parse(const struct command *c, int argc, char **argv, struct parsed *ps)
{
    optind = 1;
    opterr = 0;
    int opt, rc = 0;
    while (!rc && (opt = getopt_long(argc, argv, "s:hnq", long_opts, NULL)) != -1) {
        if (opt == '?' || opt == ':') {
            const char *bad = argv[optind - 1];
            bool needs_value =
                optind - 1 < argc && strncmp(bad, "--", 2) == 0 && strchr(bad, '=') == NULL;
            for (const struct option *lo = long_opts; needs_value && lo->name; lo++)
                if (!strcmp(bad + 2, lo->name))
                    return bad_usage(c, "option '%s' needs a value", bad);
            if (optopt == 's') return bad_usage(c, "option '%s' needs a value", "-s");
            return bad_usage(c, "unknown option '%s'", bad);
        }
        rc = take_option(c, opt, optarg, ps);
    }
    if (!rc && ps->o.reset_file && !ps->o.reset_source)
        return bad_usage(c, "option '--file' goes with --reset SOURCE%s", "");
    if (!rc && ps->o.check && ps->o.reset_source)
        return bad_usage(c, "--check and --reset are separate commands%s", "");
    if (rc || ps->help) return rc;
    int npos = argc - optind;
    if (npos < c->min_args)
        return bad_usage(c, "missing argument: %s",
                         c->args[0] == '[' ? strchr(c->args, ' ') + 1 : c->args);
    if (c->max_args >= 0 && npos > c->max_args)
        return bad_usage(c, "unexpected argument '%s'", argv[optind + c->max_args]);
    ps->o.configs = (const char *const *)argv + optind;
    ps->o.nconfigs = npos;
    ps->o.sets = ps->sets;
    ps->o.plugins = ps->plugins;
    return 0;
}

static int dispatch(const struct command *c, struct parsed *ps)
{
    if (!strcmp(c->name, "run")) return cli_cmd_run(&ps->o);
    if (!strcmp(c->name, "validate")) return cli_cmd_validate(&ps->o);
    if (!strcmp(c->name, "graph")) return cli_cmd_graph(&ps->o);
    if (!strcmp(c->name, "checkpoints")) return cli_cmd_checkpoints(&ps->o);
    if (!strcmp(c->name, "kafka-mock"))
        return cli_cmd_kafka_mock(ps->o.mock_brokers ? ps->o.mock_brokers : 1, ps->o.mock_topics,
                                  ps->o.nmock_topics);
    struct sl_error err = {0};
    struct sl_registry *reg = cli_registry_plugins(&ps->o, NULL, &err);
    if (!reg) {
        cli_log(SL_LOG_ERROR, NULL, "%s", err.msg);
        return err.code == SL_ENOMEM ? CLI_ERUN : CLI_ECONFIG; /* a plugin refused */
    }
    int rc = CLI_OK;
    if (!strcmp(c->name, "list"))
        cli_list(reg, stdout);
    else
        rc = cli_describe(reg, ps->o.configs[0], stdout);
    sl_registry_free(reg);
    return rc;
}

/* Levenshtein distance of two short words (longer ones count as far apart). */
static unsigned distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned row[32];
    if (la >= 32 || lb >= 32) return 99;
    for (size_t j = 0; j <= lb; j++) row[j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        unsigned diag = row[0];
        row[0] = (unsigned)i;
        for (size_t j = 1; j <= lb; j++) {
            unsigned up = row[j], v = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < v) v = up + 1;
            if (row[j - 1] + 1 < v) v = row[j - 1] + 1;
            row[j] = v;
            diag = up;
        }
    }
    return row[lb];
}

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

/* `sluice top` and `sluice tap`: clients with options of their own. */
static int tool(const struct command *c, int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            command_help(c, stdout);
            return CLI_OK;
        }
    cli_log_setup(SL_LOG_INFO, CLI_LOG_TEXT);
    return !strcmp(c->name, "top") ? cli_cmd_top(argc, argv) : cli_cmd_tap(argc, argv);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_EUSAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "-h") || !strcmp(name, "--help") || !strcmp(name, "help")) {
        const struct command *c = argc > 2 ? find_command(argv[2]) : NULL;
        if (c)
            command_help(c, stdout);
        else
            usage(stdout);
        return CLI_OK;
    }
    if (!strcmp(name, "-V") || !strcmp(name, "--version")) {
        printf("sluice %s\n", sl_version());
        return CLI_OK;
    }
    const struct command *c = find_command(name);
    if (!c) {
        const char *near = NULL;
        unsigned best = 3; /* at most two edits away */
        for (size_t i = 0; i < NCOMMANDS; i++) {
            unsigned d = distance(name, commands[i].name);
            if (d < best) best = d, near = commands[i].name;
        }
        cli_log(SL_LOG_ERROR, NULL, "unknown command '%s'%s%s%s (sluice --help lists them)", name,
                near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
        return CLI_EUSAGE;
    }
    if (!strcmp(c->name, "top") || !strcmp(c->name, "tap")) return tool(c, argc - 1, argv + 1);
    struct parsed ps = {.level = -1, .format = CLI_LOG_TEXT};
    ps.sets = calloc((size_t)argc, sizeof *ps.sets);
    ps.o.mock_topics = calloc((size_t)argc, sizeof *ps.o.mock_topics);
    ps.plugins = calloc((size_t)argc, sizeof *ps.plugins);
    if (!ps.sets || !ps.plugins || !ps.o.mock_topics) {
        free(ps.sets);
        free(ps.plugins);
        free(ps.o.mock_topics);
        return CLI_ERUN;
    }
    int rc = parse(c, argc - 1, argv + 1, &ps);
    /* -q means errors only unless --log-level says otherwise, before or after it. */
    if (ps.level < 0) ps.level = ps.o.quiet ? SL_LOG_ERROR : SL_LOG_INFO;
    cli_log_setup((enum sl_log_level)ps.level, (enum cli_log_format)ps.format);
    cli_log_libevent_start(); /* before any loop is made: libevent logs from then on */
    if (!rc && ps.help) command_help(c, stdout);
    if (!rc && !ps.help) rc = dispatch(c, &ps);
    cli_log_libevent_flush();
    free(ps.sets);
    free(ps.o.mock_topics);
    free(ps.plugins);
    return rc;
}
