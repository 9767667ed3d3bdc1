/* `sluice run`, `sluice validate` and `sluice graph`: load a config (with --set
 * overrides), report every problem, then run it, check it or draw it.
 *
 * A run installs its own SIGINT/SIGTERM handlers (signals.c): the first signal turns
 * /health to 503, waits --shutdown-delay (so that load balancers and scrapers notice),
 * then stops the sources and drains; a second signal ends the process at once, from the
 * handler, with 128 + the signal number. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "cli.h"

/* One problem of a config, kept to be printed in file order. */
struct problem {
    enum sl_log_level level; /* error or warning */
    struct sl_error e;       /* message and position */
    size_t seq;              /* order found, to keep the sort stable */
};

/* What one load produced; everything owned. */
struct loaded {
    struct sl_config *cfg;           /* the document */
    struct sl_registry *reg;         /* the built-ins and the plugins */
    struct sl_pipeline *p;           /* stages and edges, not started */
    struct cli_counts n;             /* problems found */
    struct cli_counts logged;        /* errors and warnings the runtime logged */
    struct problem *probs;           /* problems of the load, until printed */
    size_t nprobs;                   /* entries in probs */
    struct sl_pipeline_options opts; /* the `pipeline:` settings (api.* for the server) */
};

static void keep_problem(void *arg, enum sl_log_level level, const struct sl_error *e)
{
    struct loaded *l = arg;
    struct problem *np = realloc(l->probs, (l->nprobs + 1) * sizeof *np);
    if (!np) {
        cli_log_report(&l->n, level, e); /* no memory to sort: print it now */
        return;
    }
    l->probs = np;
    np[l->nprobs] = (struct problem){.level = level, .e = *e, .seq = l->nprobs};
    l->nprobs++;
}

static int by_position(const void *a, const void *b)
{
    const struct problem *x = a, *y = b;
    if (x->e.line != y->e.line) return x->e.line < y->e.line ? -1 : 1;
    if (x->e.col != y->e.col) return x->e.col < y->e.col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Prints the load's problems sorted by line and column. */
static void print_problems(struct loaded *l)
{
    if (l->nprobs) qsort(l->probs, l->nprobs, sizeof *l->probs, by_position);
    for (size_t i = 0; i < l->nprobs; i++) cli_log_report(&l->n, l->probs[i].level, &l->probs[i].e);
    free(l->probs);
    l->probs = NULL;
    l->nprobs = 0;
}

static void loaded_free(struct loaded *l)
{
    sl_pipeline_free(l->p);
    sl_registry_free(l->reg);
    sl_config_free(l->cfg);
    memset(l, 0, sizeof *l);
}

static void on_stage_done(void *arg, struct sl_stage *s)
{
    (void)arg;
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(s, &st);
    if (sl_stage_get_type(s)->kind == SL_SOURCE)
        cli_log(SL_LOG_INFO, sl_stage_name(s), "source done: %llu %s, all acknowledged",
                (unsigned long long)st.acked, st.acked == 1 ? "event" : "events");
    else
        cli_log(SL_LOG_DEBUG, sl_stage_name(s), "done: %llu events in, %llu out",
                (unsigned long long)st.events_in, (unsigned long long)st.events_out);
}

static int apply_sets(struct loaded *l, const struct cli_opts *o)
{
    for (int i = 0; i < o->nsets; i++) {
        const char *eq = strchr(o->sets[i], '=');
        char path[512];
        size_t len = (size_t)(eq - o->sets[i]);
        if (len >= sizeof path) len = sizeof path - 1;
        memcpy(path, o->sets[i], len);
        path[len] = '\0';
        struct sl_error err = {0};
        if (sl_config_set(l->cfg, path, eq + 1, &err)) {
            cli_log_report(&l->n, SL_LOG_ERROR, &err);
            return -1;
        }
    }
    return 0;
}

/* Parses, overrides and builds `path` into `l`; every problem is logged. Returns 0,
 * or CLI_ECONFIG. */
static int load(const char *path, const struct cli_opts *o, struct event_base *base,
                struct loaded *l)
{
    struct sl_error err = {0};
    memset(l, 0, sizeof *l);
    l->cfg = sl_config_load(path, &err);
    if (!l->cfg) {
        cli_log_report(&l->n, SL_LOG_ERROR, &err);
        return CLI_ECONFIG;
    }
    if (apply_sets(l, o)) return CLI_ECONFIG;
    struct sl_pipeline_options opts;
    sl_pipeline_options_init(&opts);
    if (sl_pipeline_options_from_config(&opts, l->cfg, &err)) {
        cli_log_report(&l->n, SL_LOG_ERROR, &err);
        sl_pipeline_options_init(&opts); /* go on with the defaults to find the rest */
    }
    opts.log = cli_log_pipeline;
    opts.log_arg = &l->logged;
    opts.on_stage_done = on_stage_done;
    l->opts = opts;
    l->reg = cli_registry_plugins(o, l->cfg, &err);
    l->p = l->reg ? sl_pipeline_new(base, &opts, &err) : NULL;
    if (!l->p) {
        cli_log_report(&l->n, SL_LOG_ERROR, &err);
        return CLI_ECONFIG;
    }
    sl_pipeline_load_all(l->p, l->reg, l->cfg, keep_problem, l);
    print_problems(l);
    return l->n.errors ? CLI_ECONFIG : CLI_OK;
}

static size_t edge_count(struct sl_pipeline *p)
{
    size_t n = 0;
    for (size_t i = 0; i < sl_pipeline_stage_count(p); i++)
        n += sl_stage_input_count(sl_pipeline_stage_at(p, i));
    return n;
}

static const char *plural(size_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

int cli_cmd_validate(const struct cli_opts *o)
{
    int rc = CLI_OK;
    for (int i = 0; i < o->nconfigs; i++) {
        struct loaded l;
        const char *name = strcmp(o->configs[i], "-") ? o->configs[i] : "<stdin>";
        if (load(o->configs[i], o, NULL, &l) == CLI_OK) {
            size_t ns = sl_pipeline_stage_count(l.p), ne = edge_count(l.p);
            printf("%s: valid: %zu %s, %zu %s", name, ns, plural(ns, "stage", "stages"), ne,
                   plural(ne, "edge", "edges"));
            if (l.n.warnings)
                printf(", %u %s", l.n.warnings, plural(l.n.warnings, "warning", "warnings"));
            printf("\n");
        } else {
            fprintf(stderr, "%s: invalid: %u %s", name, l.n.errors,
                    plural(l.n.errors, "error", "errors"));
            if (l.n.warnings)
                fprintf(stderr, ", %u %s", l.n.warnings,
                        plural(l.n.warnings, "warning", "warnings"));
            fprintf(stderr, "\n");
            rc = CLI_ECONFIG;
        }
        loaded_free(&l);
    }
    fflush(stdout);
    return rc;
}

int cli_cmd_graph(const struct cli_opts *o)
{
    struct loaded l;
    int rc = load(o->configs[0], o, NULL, &l);
    if (rc == CLI_OK) cli_graph(l.p, stdout);
    loaded_free(&l);
    fflush(stdout);
    return rc;
}

/* ---- run ------------------------------------------------------------------------------ */

struct run {
    struct loaded l;          /* the pipeline */
    const struct cli_opts *o; /* the command line */
    struct cli_metrics *m;    /* NULL without --metrics-addr */
    struct cli_signals *sig;  /* SIGINT, SIGTERM (a second one exits from its handler) */
    struct event *delay;      /* --shutdown-delay timer */
};

static void stop_now(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct run *r = arg;
    sl_pipeline_stop(r->l.p); /* the runtime logs that it drains */
}

/* The first SIGINT/SIGTERM, on the loop (signals.c handles the second). */
static void on_signal(void *arg, int signo)
{
    struct run *r = arg;
    const char *name = signo == SIGINT ? "SIGINT" : "SIGTERM";
    cli_metrics_shutting_down(r->m);
    if (r->o->shutdown_delay_ms > 0) {
        cli_log(SL_LOG_INFO, NULL, "received %s: health is 503, stopping in %lld ms", name,
                (long long)r->o->shutdown_delay_ms);
        struct timeval tv = {.tv_sec = r->o->shutdown_delay_ms / 1000,
                             .tv_usec = r->o->shutdown_delay_ms % 1000 * 1000};
        evtimer_add(r->delay, &tv);
        return;
    }
    cli_log(SL_LOG_INFO, NULL, "received %s: health is 503", name);
    stop_now(-1, 0, r);
}

static int setup_signals(struct run *r)
{
    struct event_base *base = sl_pipeline_event_base(r->l.p);
    r->delay = evtimer_new(base, stop_now, r);
    r->sig = r->delay ? cli_signals_start(base, on_signal, r) : NULL;
    return r->sig ? 0 : -1;
}

static void teardown(struct run *r)
{
    cli_signals_free(r->sig);
    if (r->delay) event_free(r->delay);
    cli_metrics_free(r->m);
    loaded_free(&r->l);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run_loop(struct run *r)
{
    const struct cli_opts *o = r->o;
    bool tty =
        !o->quiet && isatty(STDERR_FILENO) && getenv("TERM") && strcmp(getenv("TERM"), "dumb") != 0;
    struct cli_status *st = cli_status_start(r->l.p, tty, o->quiet ? 0 : o->stats_interval_ms);
    double t0 = now_s();
    struct sl_error err = {0};
    int rc = sl_pipeline_run(r->l.p, &err);
    cli_status_stop(st);
    if (!o->quiet) cli_summary(r->l.p, now_s() - t0, stderr);
    if (rc) { /* the runtime has logged a stage's failure; say what else failed */
        if (!r->l.logged.errors)
            cli_log(SL_LOG_ERROR, err.stage, "%s", err.msg[0] ? err.msg : sl_strerror(rc));
        return CLI_ERUN;
    }
    return CLI_OK;
}

/* Whether `addr` ("host:port") listens on loopback only: 127.0.0.0/8, ::1, localhost. */
static bool loopback(const char *addr)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon) return false;
    size_t n = (size_t)(colon - addr);
    if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']') addr++, n -= 2;
    if (n >= sizeof host) return false;
    memcpy(host, addr, n);
    host[n] = '\0';
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
    return strcmp(host, "localhost") == 0;
}

/* A server off loopback needs a token or api.insecure: a config error at the address
 * (file:line:col when the config gave it). Returns CLI_OK or CLI_ECONFIG, told. */
static int check_api(struct loaded *l, const struct cli_opts *o, const char *addr)
{
    bool bad = !strrchr(addr, ':');
    if (!bad &&
        (loopback(addr) || (l->opts.api_bearer && *l->opts.api_bearer) || l->opts.api_insecure))
        return CLI_OK;
    static const char why[] = "listening on a non-loopback address needs pipeline.api.auth.bearer "
                              "(a token) or pipeline.api.insecure: true";
    if (o->metrics_addr) {
        cli_log(SL_LOG_ERROR, NULL, "--metrics-addr %s: %s", addr, why);
        return CLI_ECONFIG;
    }
    struct sl_error err = {0};
    const struct sl_config *at = sl_config_get(l->cfg, "pipeline.api.address");
    sl_config_error(at ? at : sl_config_get(l->cfg, "pipeline"), &err, SL_ECONFIG,
                    "api.address '%s': %s", addr,
                    bad ? "expected HOST:PORT such as 127.0.0.1:9598" : why);
    cli_log_problem(SL_LOG_ERROR, &err);
    return CLI_ECONFIG;
}

int cli_cmd_run(const struct cli_opts *o)
{
    struct run r = {.o = o};
    int rc = load(o->configs[0], o, NULL, &r.l);
    if (rc == CLI_OK && o->dry_run) {
        size_t ns = sl_pipeline_stage_count(r.l.p), ne = edge_count(r.l.p);
        printf("dry run: %zu %s, %zu %s built; nothing started\n", ns,
               plural(ns, "stage", "stages"), ne, plural(ne, "edge", "edges"));
        fflush(stdout);
    } else if (rc == CLI_OK) {
        struct sl_error err = {0};
        signal(SIGPIPE, SIG_IGN); /* a scraper that hangs up must not kill the run */
        const char *addr = o->metrics_addr ? o->metrics_addr : r.l.opts.api_address;
        struct cli_server_opts so = {addr, o->metrics_max_conns, r.l.opts.api_bearer,
                                     r.l.opts.api_tap};
        if (addr && (rc = check_api(&r.l, o, addr)) != CLI_OK) {
            /* told */
        } else if (addr && !(r.m = cli_metrics_start(r.l.p, &so, &err))) {
            cli_log(SL_LOG_ERROR, NULL, "%s", err.msg);
            rc = CLI_ERUN;
        } else if (setup_signals(&r)) {
            cli_log(SL_LOG_ERROR, NULL, "cannot watch signals");
            rc = CLI_ERUN;
        } else {
            if (r.m)
                cli_log(SL_LOG_INFO, NULL, "serving /metrics and /health on http://%.*s:%d%s",
                        (int)(strrchr(addr, ':') - addr), addr, cli_metrics_port(r.m),
                        r.l.opts.api_tap ? " (and /api/, tapping on)" : " (and /api/)");
            rc = run_loop(&r);
        }
    }
    teardown(&r);
    return rc;
}
