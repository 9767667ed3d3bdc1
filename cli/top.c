/* `sluice top [ADDR]`: a terminal view of a running sluice, from /api/graph (once) and
 * /api/stats (every second): per stage its kind, events/s in and out, errors, dropped
 * and the fill of its input queues, with the process's memory; sorted by the busiest
 * stage or, after `s`, by the fullest queue; `q` quits. Plain ANSI escapes on a
 * terminal; --once prints one frame without them (rates over one second) and exits. */
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

struct row {
    char name[128], kind[12];          /* from /api/graph */
    uint64_t in, out, errors, dropped; /* counters of the last sample */
    uint64_t qb, qcap, qbytes, qmax;   /* queue fill of the last sample */
    double in_rate, out_rate;          /* per second, between the last two samples; < 0: unknown */
    bool finished, seen;               /* the stage ended; the sample had it */
};

struct top {
    const char *addr; /* ADDR */
    struct row *rows; /* one per stage, in the graph's order */
    size_t n;         /* stages */
    double up;        /* uptime_s of the last sample; < 0: none yet */
    uint64_t rss;     /* rss_bytes */
    char state[16];   /* running, stopping */
    char error[300];  /* why the last sample failed, "" when it did not */
    bool by_queue;    /* sort by queue fill rather than by events/s */
};

static volatile sig_atomic_t quit;

static void on_signal(int signo)
{
    (void)signo;
    quit = 1;
}

/* ---- reading the JSON ---------------------------------------------------------------- */

static uint64_t num(const char *json, size_t len, const char *path)
{
    struct sl_value v;
    if (sl_json_get(json, len, path, strlen(path), &v) || sl_value_number(&v)) return 0;
    if (v.type == SL_BOOL) return v.b;
    return v.type == SL_INT ? (uint64_t)v.i : v.type == SL_FLOAT ? (uint64_t)v.f : 0;
}

static double real(const char *json, size_t len, const char *path)
{
    struct sl_value v;
    if (sl_json_get(json, len, path, strlen(path), &v) || sl_value_number(&v)) return 0;
    return v.type == SL_INT ? (double)v.i : v.type == SL_FLOAT ? v.f : 0;
}

/* The stages of /api/graph. */
static int load_graph(struct top *t, char *why, size_t why_size)
{
    size_t len;
    char *g = cli_client_fetch(t->addr, "/api/graph", &len, why, why_size);
    if (!g) return -1;
    char path[64];
    for (;; t->n++) {
        struct row r = {.in_rate = -1, .out_rate = -1};
        snprintf(path, sizeof path, "stages[%zu].name", t->n);
        if (!cli_json_text(g, len, path, r.name, sizeof r.name)) break;
        snprintf(path, sizeof path, "stages[%zu].kind", t->n);
        cli_json_text(g, len, path, r.kind, sizeof r.kind);
        struct row *nr = realloc(t->rows, (t->n + 1) * sizeof *nr);
        if (!nr) break;
        t->rows = nr;
        t->rows[t->n] = r;
    }
    free(g);
    return 0;
}

/* One stage of /api/stats' "stages" object into its row, rates from the last sample. */
static int take_stage(void *arg, const char *name, size_t name_len, bool escaped,
                      const struct sl_value *v)
{
    struct top *t = arg;
    char key[128];
    struct sl_value nv = sl_value_string(name, name_len);
    if (escaped) nv.flags |= SL_VALUE_ESCAPED;
    int kl = name_len < sizeof key ? sl_value_unescape(&nv, key, sizeof key - 1) : -1;
    if (kl < 0) return 0;
    key[kl] = '\0';
    for (size_t i = 0; i < t->n; i++) {
        struct row *r = &t->rows[i];
        if (strcmp(r->name, key)) continue;
        uint64_t in = num(v->s, v->len, "events_in"), out = num(v->s, v->len, "events_out");
        r->in_rate = r->seen ? (double)(in - r->in) : -1; /* per interval: scaled by caller */
        r->out_rate = r->seen ? (double)(out - r->out) : -1;
        r->in = in, r->out = out, r->seen = true;
        r->errors = num(v->s, v->len, "errors");
        r->dropped = num(v->s, v->len, "dropped");
        r->qb = num(v->s, v->len, "queue_batches");
        r->qcap = num(v->s, v->len, "queue_capacity");
        r->qbytes = num(v->s, v->len, "queue_bytes");
        r->qmax = num(v->s, v->len, "queue_max_bytes");
        r->finished = num(v->s, v->len, "finished");
    }
    return 0;
}

/* Takes a sample of /api/stats; on failure t->error says why. */
static void sample(struct top *t)
{
    size_t len;
    char *s = cli_client_fetch(t->addr, "/api/stats", &len, t->error, sizeof t->error);
    if (!s) return;
    t->error[0] = '\0';
    double up = real(s, len, "uptime_s"), dt = t->up >= 0 ? up - t->up : 0;
    t->rss = num(s, len, "rss_bytes");
    if (!cli_json_text(s, len, "state", t->state, sizeof t->state)) snprintf(t->state, 16, "?");
    struct sl_value st;
    if (!sl_json_get(s, len, "stages", 6, &st))
        sl_json_each_member(st.s, st.len, take_stage, t, NULL);
    for (size_t i = 0; i < t->n; i++) {
        struct row *r = &t->rows[i];
        if (r->in_rate >= 0) r->in_rate = dt > 0 ? r->in_rate / dt : 0;
        if (r->out_rate >= 0) r->out_rate = dt > 0 ? r->out_rate / dt : 0;
    }
    t->up = up;
    free(s);
}

/* ---- the frame --------------------------------------------------------------------- */

static double fill(const struct row *r)
{
    double b = r->qcap ? (double)r->qb / (double)r->qcap : 0;
    double y = r->qmax ? (double)r->qbytes / (double)r->qmax : 0;
    return b > y ? b : y;
}

static int sort_mode; /* for the comparator: 1 by queue fill */

static int by_order(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    double kx = sort_mode ? fill(x) : fmax(x->in_rate, x->out_rate);
    double ky = sort_mode ? fill(y) : fmax(y->in_rate, y->out_rate);
    return (kx < ky) - (kx > ky);
}

static void rate(char *buf, size_t size, double v)
{
    if (v < 0)
        snprintf(buf, size, "-");
    else
        cli_human(v, buf, size);
}

/* Writes a frame; `ansi`: each line clears its rest (a redraw in place). */
static void frame(struct top *t, FILE *out, bool ansi)
{
    const char *eol = ansi ? "\033[K\n" : "\n";
    char rss[16], a[16], b[16], c[16], d[16], q[40];
    cli_human((double)t->rss, rss, sizeof rss);
    fprintf(out, "sluice top  %s  %s  up %.0fs  memory %sB  sorted by %s (s: switch, q: quit)%s",
            t->addr, t->error[0] ? "unreachable" : t->state, t->up > 0 ? t->up : 0, rss,
            t->by_queue ? "queue fill" : "events/s", eol);
    if (t->error[0]) fprintf(out, "error: %s%s", t->error, eol);
    fprintf(out, "%-24s %-9s %8s %8s %8s %8s %16s %5s%s", "STAGE", "KIND", "IN/s", "OUT/s",
            "ERRORS", "DROPPED", "QUEUE", "FILL", eol);
    struct row *rows = malloc((t->n ? t->n : 1) * sizeof *rows);
    if (!rows) return;
    memcpy(rows, t->rows, t->n * sizeof *rows);
    sort_mode = t->by_queue;
    qsort(rows, t->n, sizeof *rows, by_order);
    for (size_t i = 0; i < t->n; i++) {
        const struct row *r = &rows[i];
        rate(a, sizeof a, r->in_rate);
        rate(b, sizeof b, r->out_rate);
        cli_human((double)r->errors, c, sizeof c);
        cli_human((double)r->dropped, d, sizeof d);
        char qb[16];
        cli_human((double)r->qbytes, qb, sizeof qb);
        if (r->qcap)
            snprintf(q, sizeof q, "%llu/%llu %sB", (unsigned long long)r->qb,
                     (unsigned long long)r->qcap, qb);
        else
            snprintf(q, sizeof q, "-");
        fprintf(out, "%-24.24s %-9s %8s %8s %8s %8s %16s %4.0f%%%s%s", r->name, r->kind, a, b, c, d,
                q, 100 * fill(r), r->finished ? " done" : "", eol);
    }
    free(rows);
    if (ansi) fputs("\033[J", out);
    fflush(out);
}

/* ---- the loop ------------------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Redraws every second until `q` (or a signal); keys are read when stdin is a terminal. */
static void live(struct top *t, bool ansi)
{
    struct termios old, raw;
    bool keys = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    if (keys) {
        raw = old;
        raw.c_lflag &= (tcflag_t) ~(ICANON | ECHO);
        raw.c_cc[VMIN] = 0, raw.c_cc[VTIME] = 0;
        tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    }
    if (ansi) fputs("\033[?1049h\033[?25l\033[H\033[2J", stdout);
    for (double next = now_s(); !quit;) {
        if (now_s() >= next) {
            sample(t);
            next = now_s() + 1;
            if (ansi) fputs("\033[H", stdout);
            frame(t, stdout, ansi);
            if (!ansi) fputc('\n', stdout);
        }
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        int wait_ms = (int)((next - now_s()) * 1000) + 1;
        char key = 0;
        if (keys && poll(&pfd, 1, wait_ms) == 1 && read(STDIN_FILENO, &key, 1) == 1) {
            if (key == 'q' || key == 'Q') break;
            if (key == 's' || key == 'S') t->by_queue = !t->by_queue, next = 0;
        } else if (!keys) {
            poll(NULL, 0, wait_ms);
        }
    }
    if (ansi) fputs("\033[?25h\033[?1049l", stdout);
    fflush(stdout);
    if (keys) tcsetattr(STDIN_FILENO, TCSANOW, &old);
}

int cli_cmd_top(int argc, char **argv)
{
    static const struct option opts[] = {{"once", no_argument, NULL, 'o'}, {0}};
    bool once = false;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt != 'o') {
            cli_log(SL_LOG_ERROR, NULL, "unknown option '%s' (see sluice top --help)",
                    argv[optind - 1]);
            return CLI_EUSAGE;
        }
        once = true;
    }
    if (argc - optind > 1) {
        cli_log(SL_LOG_ERROR, NULL, "unexpected argument '%s' (see sluice top --help)",
                argv[optind + 1]);
        return CLI_EUSAGE;
    }
    struct top t = {.addr = optind < argc ? argv[optind] : CLI_DEFAULT_ADDR, .up = -1};
    char why[300];
    if (load_graph(&t, why, sizeof why)) {
        cli_log(SL_LOG_ERROR, NULL, "cannot read %s/api/graph: %s", t.addr, why);
        return CLI_ERUN;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (once) { /* two samples a second apart: rates */
        sample(&t);
        poll(NULL, 0, 1000);
        sample(&t);
        frame(&t, stdout, false);
    } else {
        live(&t, isatty(STDOUT_FILENO));
    }
    int rc = once && t.error[0] ? CLI_ERUN : CLI_OK;
    if (rc) cli_log(SL_LOG_ERROR, NULL, "%s", t.error);
    free(t.rows);
    return rc;
}
