/* The `sluice` program's own modules. Nothing here is part of libsluice: these names
 * are private to cli/ (and to the tests that link the built-ins). */
#ifndef SLUICE_CLI_H
#define SLUICE_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <sluice/sluice.h>

/* Exit codes, documented in `sluice --help` and docs/cli.md. */
enum {
    CLI_OK = 0,        /* success; also after a graceful stop (first SIGINT/SIGTERM) */
    CLI_ECONFIG = 1,   /* the config is invalid (validate found errors, or run refused it) */
    CLI_EUSAGE = 2,    /* bad command line: unknown command, flag or value */
    CLI_ERUN = 3,      /* the run failed: a stage failed, or the metrics server could not start */
    CLI_ESIGNAL = 128, /* + signal number: a second signal aborted the run (130, 143) */
};

/* ---- registry.c: the stage types the program knows ---------------------------------- */

struct cli_opts;
size_t cli_builtin_count(void);
const struct sl_stage_type *cli_builtin_at(size_t i); /* NULL past the end */
/* A registry with every built-in (owned: sl_registry_free), or NULL with `err`. */
struct sl_registry *cli_registry(struct sl_error *err);
/* The built-ins, then the plugins of --plugin, then those of `cfg`'s `plugins:` (`cfg`
 * may be NULL). Owned, or NULL with `err` naming the plugin (and the config position). */
struct sl_registry *cli_registry_plugins(const struct cli_opts *o, const struct sl_config *cfg,
                                         struct sl_error *err);

/* ---- log.c: the program's messages on stderr ---------------------------------------- */

enum cli_log_format { CLI_LOG_TEXT, CLI_LOG_JSON };

/* Parses "error", "warn", "info", "debug" (-1 when unknown) and "text", "json". */
int cli_log_level_parse(const char *s);
int cli_log_format_parse(const char *s);
void cli_log_setup(enum sl_log_level level, enum cli_log_format format);
bool cli_log_enabled(enum sl_log_level level);
bool cli_log_json(void); /* --log-format json */
/* Called before each line is written (the status line clears itself). NULL: none. */
void cli_log_set_hook(void (*before_write)(void));
/* One line: "sluice: LEVEL: [stage 'x': ]msg", or a JSON object. */
void cli_log(enum sl_log_level level, const char *stage, const char *fmt, ...) SL_PRINTF(3, 4);
/* A config problem: "file:line:col: LEVEL: [stage 'x': ]msg", or JSON with the position. */
void cli_log_problem(enum sl_log_level level, const struct sl_error *e);
/* Fits sl_report_fn: counts into `arg` (struct cli_counts) and logs. */
struct cli_counts {
    unsigned errors, warnings; /* problems told */
};
void cli_log_report(void *arg, enum sl_log_level level, const struct sl_error *e);
/* Fits sl_pipeline_options.log; counts into `arg` (struct cli_counts, may be NULL). */
void cli_log_pipeline(void *arg, enum sl_log_level level, const char *stage, const char *msg);
/* Routes libevent's own messages through this logger ("libevent: msg"): a message
 * repeated within 10 s is counted, not shown, and at most 20 lines of libevent's are
 * shown per 10 s. The flush tells the counts still untold (call it before exiting). */
void cli_log_libevent_start(void);
void cli_log_libevent_flush(void);

/* ---- describe.c: `sluice list` and `sluice describe` ------------------------------- */

const char *cli_kind_name(enum sl_kind kind);
const char *cli_opt_type_name(enum sl_opt_type t); /* "string", "int", ... */
void cli_list(const struct sl_registry *reg, FILE *out);
/* Returns CLI_OK, or CLI_EUSAGE with a message on stderr for an unknown type. */
int cli_describe(const struct sl_registry *reg, const char *type, FILE *out);

/* ---- graph.c: `sluice graph` --------------------------------------------------------- */

void cli_graph(struct sl_pipeline *p, FILE *out);

/* ---- status.c: the live status line and the summary ------------------------------- */

struct cli_status; /* opaque */
/* Redraws a one-line status on stderr every 500 ms when `tty`, else logs it as a plain
 * line every `interval_ms` (0: never). Returns NULL when there is nothing to do. */
struct cli_status *cli_status_start(struct sl_pipeline *p, bool tty, int64_t interval_ms);
void cli_status_stop(struct cli_status *st); /* clears the line; NULL is a no-op */
/* The ETA of a finite run: the progress rate smoothed over about 5 s (an exponentially
 * weighted average, whatever the tick), the ETA shown only once three estimates in a
 * row agree within a fifth (or 2 s), so that it does not jump about. */
struct cli_eta {
    double rate; /* smoothed progress per second */
    long last;   /* the previous estimate, s; -1: none */
    int agree;   /* estimates in a row that agreed with the one before */
    bool primed; /* rate holds a measurement */
};
#define CLI_ETA_INIT                                                                               \
    {                                                                                              \
        0, -1, 0, false                                                                            \
    }
/* Adds a tick: `progressed` units done in `secs` seconds, `left` units still to do.
 * Returns the ETA in whole seconds, or -1 while it is not to be shown. */
long cli_eta_update(struct cli_eta *e, double progressed, double secs, uint64_t left);
/* The per-stage table at the end of a run, and a total line. */
void cli_summary(struct sl_pipeline *p, double seconds, FILE *out);
/* "1.23k", "45.6M": a count in 6 characters or fewer. */
void cli_human(double v, char *buf, size_t size);

/* ---- server.c: /metrics, /health and /api/ over HTTP ----------------------------------- */

struct cli_metrics; /* opaque */
struct evhttp_request;
struct evbuffer;
/* Connections served at once by default (--metrics-max-connections). */
#define CLI_METRICS_MAX_CONNECTIONS 256
/* The address the tools (`sluice top`, `sluice tap`) ask when given none. */
#define CLI_DEFAULT_ADDR "127.0.0.1:9598"
struct cli_server_opts {
    const char *addr;   /* "host:port"; port 0 picks one */
    unsigned max_conns; /* connections at once (0: CLI_METRICS_MAX_CONNECTIONS) */
    const char *bearer; /* the token every request must bring (borrowed); NULL: none */
    bool tap;           /* serve /api/tap */
};
/* Serves on the pipeline's loop as `o` (borrowed) says. Returns the server (free:
 * cli_metrics_free), or NULL with `err`. */
struct cli_metrics *cli_metrics_start(struct sl_pipeline *p, const struct cli_server_opts *o,
                                      struct sl_error *err);
int cli_metrics_port(const struct cli_metrics *m);     /* the bound port */
void cli_metrics_shutting_down(struct cli_metrics *m); /* /health answers 503 from now on */
void cli_metrics_free(struct cli_metrics *m);          /* NULL is a no-op */
/* evhttp_send_reply, right for HEAD too: the headers and the body's Content-Length, and
 * no body (`body` borrowed, may be NULL). */
void cli_send(struct evhttp_request *req, int code, const char *reason, struct evbuffer *body);
/* Replies `text` (`len` bytes) as application/json, not cached; or {"error": msg}. */
void cli_reply_json(struct evhttp_request *req, int code, const char *reason, const char *text,
                    size_t len);
void cli_reply_error(struct evhttp_request *req, int code, const char *reason, const char *msg);

/* ---- metrics.c: the Prometheus text -------------------------------------------------- */

/* Writes `s` as a label value: backslash, quote and newline escaped. */
void cli_metrics_label(FILE *out, const char *s);
/* Writes the metrics of `p`'s SQLite pools (metrics_pools.c). */
void cli_metrics_render_pools(struct sl_pipeline *p, FILE *out);
/* Writes the Prometheus text for `p` into `out` (for tests and the server). */
void cli_metrics_render(struct sl_pipeline *p, double uptime, FILE *out);
long cli_rss_bytes(void); /* resident memory of the process, bytes (0: unknown) */

/* ---- api.c: the JSON of /api/graph and /api/stats ------------------------------------ */

/* Writes the `len` bytes at `s` as a JSON string, quotes included. */
void cli_json_string(FILE *out, const char *s, size_t len);
void cli_api_graph(struct sl_pipeline *p, FILE *out);
/* `stopping`: "state" is "stopping" rather than "running". */
void cli_api_stats(struct sl_pipeline *p, double uptime, bool stopping, FILE *out);

/* ---- api_tap.c: /api/tap streams --------------------------------------------------- */

struct cli_taps; /* opaque: the open streams of one server */
/* Streams for `p`; a client that takes nothing for `idle_s` s is dropped. NULL: no
 * memory. */
struct cli_taps *cli_taps_new(struct sl_pipeline *p, int idle_s);
/* Serves GET /api/tap?stage=S[&port=P][&limit=N][&filter=EXPR] on `req`. */
void cli_taps_serve(struct cli_taps *t, struct evhttp_request *req);
void cli_taps_free(struct cli_taps *t); /* ends every stream; NULL is a no-op */

/* ---- page.c: the pipeline page (GET / and its files) on the metrics server ------------ */

struct evhttp;
/* Serves the page's files (cli_assets) at their paths on `http` (borrowed). Loop thread
 * only. */
void cli_page_register(struct evhttp *http);
/* One file of the page, compiled into the program: tools/embed.c writes cli/ui/ into
 * page_assets.c at build time. */
struct cli_asset {
    const char *path;          /* URL path: "/", "/ui/app.js"; NULL ends the table */
    const char *type;          /* its Content-Type */
    const char *etag;          /* a quoted hash of its bytes, for revalidation */
    const unsigned char *data; /* its bytes */
    size_t size;               /* how many */
};
extern const struct cli_asset cli_assets[]; /* the page's files, then {NULL} */

/* ---- client.c: the HTTP client of `top` and `tap` (blocking: a tool's own process) -- */

struct cli_client {
    int fd;                          /* the socket, -1: none */
    int status;                      /* the answer's status code */
    char *pending;                   /* the head, then body bytes read with it (owned) */
    size_t pending_off, pending_len; /* where those body bytes are */
};
/* Sends GET `target` (path and query) to `addr` (HOST:PORT) with the token of
 * SLUICE_API_TOKEN, and reads the answer's head within `timeout_ms` per step. Returns 0,
 * or -1 with `why`; close `c` either way (cli_client_close). */
int cli_client_get(struct cli_client *c, const char *addr, const char *target, int timeout_ms,
                   char *why, size_t why_size);
/* Reads body bytes: > 0 bytes, 0 at the end, -2 when none came in `timeout_ms`, -1 on
 * an error. */
ssize_t cli_client_read(struct cli_client *c, char *buf, size_t size, int timeout_ms);
/* The rest of the body, NUL-terminated (owned: free), or NULL. */
char *cli_client_body(struct cli_client *c, size_t *len, int timeout_ms);
void cli_client_close(struct cli_client *c);
/* The body of a 200 answer to GET `target` (owned: free), or NULL with `why`. */
char *cli_client_fetch(const char *addr, const char *target, size_t *len, char *why,
                       size_t why_size);

/* The string at `path` of the JSON text `json` (`len` bytes), decoded into `buf` (`size`
 * bytes, NUL-terminated); false when there is none or it does not fit. */
bool cli_json_text(const char *json, size_t len, const char *path, char *buf, size_t size);

/* `sluice top` (top.c) and `sluice tap` (tap.c): argv[0] is the command's name. */
int cli_cmd_top(int argc, char **argv);
int cli_cmd_tap(int argc, char **argv);

/* ---- run.c: `sluice run`, `validate`, `graph` --------------------------------------------- */

struct cli_opts {
    const char *const *configs; /* paths ("-": stdin) */
    int nconfigs;               /* number of paths */
    const char *const *sets;    /* --set key.path=value, in order */
    int nsets;                  /* number of --set */
    const char *const *plugins; /* --plugin paths, in order */
    int nplugins;               /* number of --plugin */
    bool dry_run;               /* --dry-run */
    bool quiet;                 /* --quiet */
    int64_t stats_interval_ms;  /* --stats-interval, 0: none */
    const char *metrics_addr;   /* --metrics-addr, NULL: off */
    unsigned metrics_max_conns; /* --metrics-max-connections, 0: the default */
    int64_t shutdown_delay_ms;  /* --shutdown-delay */
    bool check;                 /* checkpoints --check */
    const char *reset_source;   /* checkpoints --reset SOURCE, NULL: none */
    const char *reset_file;     /* checkpoints --file PATH (with --reset), NULL: all */
    int mock_brokers;           /* kafka-mock --brokers N (default 1) */
    const char **mock_topics;   /* kafka-mock --topic NAME:PARTITIONS, in order */
    int nmock_topics;           /* number of --topic */
};

int cli_cmd_run(const struct cli_opts *o);
int cli_cmd_validate(const struct cli_opts *o);
int cli_cmd_graph(const struct cli_opts *o);
/* `sluice checkpoints [--check | --reset SOURCE [--file PATH]] DB` (checkpoints.c). */
int cli_cmd_checkpoints(const struct cli_opts *o);

/* `sluice kafka-mock`: hosts a mock Kafka cluster of `brokers` brokers with `topics`
 * ("NAME:PARTITIONS") until SIGINT/SIGTERM (kafka_mock.c). */
int cli_cmd_kafka_mock(int brokers, const char *const *topics, int ntopics);

/* ---- signals (signals.c) ------------------------------------------------------------ */

struct event_base;
struct cli_signals;

/* Catches SIGINT and SIGTERM: the first is told to `on_first(arg, signo)` on the loop of
 * `base`; a second one writes a warning and exits with 128 + signo from the handler,
 * whatever the loop is doing. NULL when the pipe or the event cannot be made. */
struct cli_signals *cli_signals_start(struct event_base *base, void (*on_first)(void *, int),
                                      void *arg);
/* Puts the previous handlers back and frees `s` (NULL is a no-op). */
void cli_signals_free(struct cli_signals *s);

#endif
