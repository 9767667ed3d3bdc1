/* Helpers for the file connector's tests. See helpers_file.h. */
#define _XOPEN_SOURCE 700
#include "helpers_file.h"
#include "helpers.h"

#include <criterion/criterion.h>
#include <event2/event.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <sluice/builtins.h>

static char *copy(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static void grow(struct t_lines *r)
{
    if (r->n < r->cap) return;
    r->cap = r->cap ? r->cap * 2 : 256;
    r->lines = realloc(r->lines, r->cap * sizeof *r->lines);
    r->lens = realloc(r->lens, r->cap * sizeof *r->lens);
    r->origins = realloc(r->origins, r->cap * sizeof *r->origins);
    r->offsets = realloc(r->offsets, r->cap * sizeof *r->offsets);
    r->truncated = realloc(r->truncated, r->cap * sizeof *r->truncated);
    r->hosts = realloc(r->hosts, r->cap * sizeof *r->hosts);
}

static enum sl_poll lines_write(struct sl_stage *s, struct sl_batch *b)
{
    struct t_lines *r = sl_stage_state(s);
    for (size_t i = 0; i < sl_batch_count(b); i++) {
        const struct sl_event *ev = sl_batch_event_const(b, i);
        size_t len;
        const char *p = sl_event_payload(ev, &len);
        grow(r);
        r->lines[r->n] = copy(p ? p : "", p ? len : 0);
        r->lens[r->n] = len;
        const char *o = sl_event_origin(ev);
        r->origins[r->n] = o ? copy(o, strlen(o)) : NULL;
        r->offsets[r->n] = sl_event_offset(ev);
        struct sl_value v;
        r->truncated[r->n] = sl_event_get(ev, "truncated", 9, &v) == 0 && v.type == SL_BOOL && v.b;
        const char *h = sl_event_host(ev);
        r->hosts[r->n] = h ? copy(h, strlen(h)) : NULL;
        r->n++;
    }
    r->batches++;
    sl_ack(b);
    if (r->on_write) r->on_write(s, r);
    return SL_READY;
}

static void lines_close(struct sl_stage *s)
{
    struct t_lines *r = sl_stage_state(s);
    for (size_t i = 0; i < r->n; i++) {
        free(r->lines[i]);
        free(r->origins[i]);
        free(r->hosts[i]);
    }
    free(r->lines);
    free(r->lens);
    free(r->origins);
    free(r->offsets);
    free(r->truncated);
    free(r->hosts);
}

const struct sl_stage_type t_lines = {
    .abi = SL_STAGE_ABI,
    .name = "t_lines",
    .kind = SL_SINK,
    .doc = "test sink recording payloads",
    .state_size = sizeof(struct t_lines),
    .write = lines_write,
    .close = lines_close,
};

char *t_tmpdir(void)
{
    char tmpl[] = "/tmp/sluice-file-XXXXXX";
    char *d = mkdtemp(tmpl);
    cr_assert_not_null(d, "mkdtemp");
    return copy(d, strlen(d));
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(p);
    return 0;
}

void t_rmtree(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void t_write(const char *path, const void *data, size_t len, bool append)
{
    int fd = open(path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0644);
    cr_assert_geq(fd, 0, "open %s", path);
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

void t_writes(const char *path, const char *text, bool append)
{
    t_write(path, text, strlen(text), append);
}

char *t_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *d = malloc((size_t)n + 1);
    cr_assert_eq(fread(d, 1, (size_t)n, f), (size_t)n);
    d[n] = '\0';
    fclose(f);
    if (len) *len = (size_t)n;
    return d;
}

void t_copy(const char *from, const char *to)
{
    size_t len;
    char *data = t_read(from, &len);
    cr_assert_not_null(data, "read %s", from);
    t_write(to, data, len, false);
    free(data);
}

char *t_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

void t_write_numbers(const char *path, int first, int last, bool append)
{
    size_t cap = (size_t)(last - first) * 12 + 1, o = 0;
    char *buf = malloc(cap);
    for (int i = first; i < last; i++) o += (size_t)snprintf(buf + o, cap - o, "%d\n", i);
    t_write(path, buf, o, append);
    free(buf);
}

void t_assert_numbers_once(const struct t_lines *rec, int first, int last)
{
    size_t n = (size_t)(last - first);
    int *count = calloc(n, sizeof *count);
    for (size_t i = 0; i < rec->n; i++) {
        char *end;
        long v = strtol(rec->lines[i], &end, 10);
        cr_assert(*end == '\0' && v >= first && v < last, "unexpected line '%s'", rec->lines[i]);
        count[v - first]++;
    }
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(count[i], 1, "line %d seen %d times", first + (int)i, count[i]);
    cr_assert_eq(rec->n, n, "saw %zu lines, expected %zu", rec->n, n);
    free(count);
}

char *t_log_text;
static size_t log_len;

void t_log_capture(void *arg, enum sl_log_level level, const char *stage, const char *msg)
{
    (void)arg;
    static const char *const names[] = {"error", "warn", "info", "debug"};
    char line[4096];
    int n = snprintf(line, sizeof line, "%s %s: %s\n", names[level], stage ? stage : "-", msg);
    if (n < 0) return;
    if ((size_t)n >= sizeof line) n = sizeof line - 1;
    t_log_text = realloc(t_log_text, log_len + (size_t)n + 1);
    memcpy(t_log_text + log_len, line, (size_t)n + 1);
    log_len += (size_t)n;
}

void t_log_clear(void)
{
    free(t_log_text);
    t_log_text = NULL;
    log_len = 0;
}

const char *const t_follow_modes[2] = {"watch: inotify", "watch: poll\npoll_interval: 20ms"};

#define WATCHDOG_S 10

static struct t_lines *follow_rec;

static void follow_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    if (follow_rec->on_write) follow_rec->on_write(NULL, follow_rec);
}

static void follow_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    sl_pipeline_stop(arg);
}

struct t_lines *t_follow(struct sl_pipeline *p, const char *dir, int mode, const char *opts,
                         void (*fn)(struct sl_stage *, struct t_lines *))
{
    char yaml[2048], body[1024];
    snprintf(body, sizeof body, opts, dir, dir);
    snprintf(yaml, sizeof yaml, "%s\nfollow: true\n%s%s", body,
             strstr(opts, "rotate_wait:") ? "" : "rotate_wait: 100ms\n", t_follow_modes[mode]);
    struct sl_stage *src = t_add(p, "src", &sl_stage_file_source, yaml);
    struct sl_stage *out = t_add(p, "out", &t_lines, NULL);
    t_connect(p, src, out);
    struct t_lines *r = follow_rec = sl_stage_state(out);
    r->on_write = fn;
    struct event_base *base = sl_pipeline_event_base(p);
    struct event *ticker = event_new(base, -1, EV_PERSIST, follow_tick, NULL);
    struct event *dog = evtimer_new(base, follow_watchdog, p);
    struct timeval every = {0, 5000}, limit = {WATCHDOG_S, 0};
    event_add(ticker, &every);
    evtimer_add(dog, &limit);
    struct sl_error err = {0};
    int rc = sl_pipeline_run(p, &err);
    event_free(ticker);
    event_free(dog);
    cr_assert_eq(rc, 0, "run: %s", err.msg);
    cr_assert_eq(sl_pipeline_live_batches(p), 0);
    return r;
}

char *t_sqlite(const char *db, const char *sql)
{
    char script[] = "/tmp/sluice-sql-XXXXXX", out[] = "/tmp/sluice-out-XXXXXX";
    int fs = mkstemp(script), fo = mkstemp(out);
    cr_assert(fs >= 0 && fo >= 0);
    cr_assert_eq(write(fs, sql, strlen(sql)), (ssize_t)strlen(sql));
    close(fs), close(fo);
    char cmd[4096];
    /* a writer may hold the lock for a moment: wait for it as a reader would */
    snprintf(cmd, sizeof cmd, "sqlite3 -cmd '.timeout 5000' '%s' < %s > %s", db, script, out);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char *text = t_read(out, NULL);
    unlink(script), unlink(out);
    return text;
}

pid_t t_fork(void)
{
    pid_t pid = fork();
    if (pid == 0) prctl(PR_SET_PDEATHSIG, SIGKILL);
    return pid;
}
