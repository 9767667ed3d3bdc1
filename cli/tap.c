/* `sluice tap [ADDR] STAGE[.PORT] [--limit N] [--filter EXPR]`: the events leaving a
 * stage of a running sluice (GET /api/tap, api.tap: true), one JSON object a line on
 * stdout. The server's counts lines ({"_tap": ...}) are not printed: when they tell of
 * new drops (the events came faster than they were read), a warning goes to stderr, and
 * the totals at the end. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct tap {
    uint64_t sent, dropped, told; /* the server's counts; drops already warned of */
    uint64_t lines;               /* events printed */
    char *line;                   /* the line being read (owned) */
    size_t len, cap;              /* its bytes, allocated */
};

/* Percent-encodes `s` into `out` (`size` bytes) for a query. */
static void encode(const char *s, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *s && n + 4 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-_.~", c))
            out[n++] = (char)c;
        else
            out[n++] = '%', out[n++] = hex[c >> 4], out[n++] = hex[c & 15];
    }
    out[n] = '\0';
}

/* One line of the stream: an event to print, or the counts. Returns -1 when stdout is
 * gone. */
static int take_line(struct tap *t)
{
    static const char counts[] = "{\"_tap\":";
    if (t->len >= sizeof counts - 1 && !memcmp(t->line, counts, sizeof counts - 1)) {
        struct sl_value v;
        if (!sl_json_get(t->line, t->len, "_tap.sent", 9, &v) && !sl_value_number(&v))
            t->sent = (uint64_t)v.i;
        if (!sl_json_get(t->line, t->len, "_tap.dropped", 12, &v) && !sl_value_number(&v))
            t->dropped = (uint64_t)v.i;
        if (t->dropped > t->told) {
            cli_log(SL_LOG_WARN, NULL,
                    "tap: %llu events dropped (%llu in all): they came faster "
                    "than they were read",
                    (unsigned long long)(t->dropped - t->told), (unsigned long long)t->dropped);
            t->told = t->dropped;
        }
        return 0;
    }
    t->lines++;
    if (fwrite(t->line, 1, t->len, stdout) != t->len || fputc('\n', stdout) == EOF) return -1;
    return 0;
}

/* Splits the received bytes into lines. Returns -1 when stdout is gone. */
static int take(struct tap *t, const char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            if (take_line(t)) return -1;
            t->len = 0;
            continue;
        }
        if (t->len == t->cap) {
            size_t cap = t->cap ? 2 * t->cap : 4096;
            char *l = realloc(t->line, cap);
            if (!l) return -1;
            t->line = l, t->cap = cap;
        }
        t->line[t->len++] = buf[i];
    }
    return fflush(stdout) == EOF ? -1 : 0;
}

/* Whether the running pipeline has a stage called `name` (/api/graph). */
static bool has_stage(const char *addr, const char *name)
{
    size_t len;
    char why[300], path[64], got[512];
    char *g = cli_client_fetch(addr, "/api/graph", &len, why, sizeof why);
    bool found = false;
    for (size_t i = 0; g && !found; i++) {
        snprintf(path, sizeof path, "stages[%zu].name", i);
        if (!cli_json_text(g, len, path, got, sizeof got)) break;
        found = strcmp(got, name) == 0;
    }
    free(g);
    return found;
}

/* The query of STAGE[.PORT]: a stage of that whole name, else the part before the last
 * dot with its port. */
static int target(const char *addr, const char *what, const char *limit, const char *filter,
                  char *out, size_t size)
{
    char stage[512], port[512] = "", e1[1600], e2[1600];
    snprintf(stage, sizeof stage, "%s", what);
    char *dot = strrchr(stage, '.');
    if (dot && !has_stage(addr, stage)) *dot = '\0', snprintf(port, sizeof port, "%s", dot + 1);
    encode(stage, e1, sizeof e1);
    encode(port, e2, sizeof e2);
    int n = snprintf(out, size, "/api/tap?stage=%s%s%s", e1, *port ? "&port=" : "", e2);
    if (limit) n += snprintf(out + n, size - (size_t)n, "&limit=%s", limit);
    encode(filter ? filter : "", e1, sizeof e1);
    if (filter) n += snprintf(out + n, size - (size_t)n, "&filter=%s", e1);
    return n < (int)size ? 0 : -1;
}

static int stream(const char *addr, const char *path)
{
    struct cli_client c;
    char why[300], buf[65536];
    if (cli_client_get(&c, addr, path, 5000, why, sizeof why)) {
        cli_log(SL_LOG_ERROR, NULL, "cannot tap %s: %s", addr, why);
        cli_client_close(&c);
        return CLI_ERUN;
    }
    if (c.status != 200) {
        size_t len;
        char *body = cli_client_body(&c, &len, 5000);
        char msg[300];
        if (!body || !cli_json_text(body, len, "error", msg, sizeof msg))
            snprintf(msg, sizeof msg, "HTTP %d", c.status);
        cli_log(SL_LOG_ERROR, NULL, "tap: %s", msg);
        free(body);
        int st = c.status;
        cli_client_close(&c);
        return st == 404 || st == 400 ? CLI_EUSAGE : CLI_ERUN;
    }
    cli_log(SL_LOG_INFO, NULL, "tap: reading %s at %s", path, addr); /* the tap is open */
    struct tap t = {0};
    int rc = CLI_OK;
    for (ssize_t n; rc == CLI_OK;) {
        n = cli_client_read(&c, buf, sizeof buf, 1000);
        if (n == 0) break;
        if (n == -2) continue; /* nothing this second (a counts line comes every second) */
        if (n < 0 || take(&t, buf, (size_t)n)) rc = n < 0 ? CLI_ERUN : CLI_OK;
        if (n < 0) cli_log(SL_LOG_ERROR, NULL, "tap: the connection failed");
        if (n > 0 && rc == CLI_OK && ferror(stdout)) break;
    }
    cli_log(SL_LOG_INFO, NULL, "tap: %llu events, %llu dropped", (unsigned long long)t.lines,
            (unsigned long long)t.dropped);
    free(t.line);
    cli_client_close(&c);
    return rc;
}

int cli_cmd_tap(int argc, char **argv)
{
    static const struct option opts[] = {
        {"limit", required_argument, NULL, 'l'}, {"filter", required_argument, NULL, 'f'}, {0}};
    const char *limit = NULL, *filter = NULL;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 'l') {
            char *end;
            if (strtol(optarg, &end, 10) < 1 || *end) {
                cli_log(SL_LOG_ERROR, NULL, "--limit expects a positive number; found '%s'",
                        optarg);
                return CLI_EUSAGE;
            }
            limit = optarg;
        } else if (opt == 'f') {
            filter = optarg;
        } else {
            cli_log(SL_LOG_ERROR, NULL,
                    "unknown option or missing value '%s' (see sluice tap "
                    "--help)",
                    argv[optind - 1]);
            return CLI_EUSAGE;
        }
    }
    int npos = argc - optind;
    if (npos < 1 || npos > 2) {
        cli_log(SL_LOG_ERROR, NULL, "expected [ADDR] STAGE[.PORT] (see sluice tap --help)");
        return CLI_EUSAGE;
    }
    const char *addr = npos == 2 ? argv[optind] : CLI_DEFAULT_ADDR, *what = argv[argc - 1];
    char path[8192];
    if (target(addr, what, limit, filter, path, sizeof path)) {
        cli_log(SL_LOG_ERROR, NULL, "tap: the stage or the filter is too long");
        return CLI_EUSAGE;
    }
    signal(SIGPIPE, SIG_IGN); /* `| head`: stdout's end is an ordinary end */
    return stream(addr, path);
}
