/* Test helpers for the stages: see stage_helpers.h. */
#include "stage_helpers.h"

#include <sluice/builtins.h>

#include <criterion/criterion.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- t_text ------------------------------------------------------------------------------- */

static const struct sl_option lines_options[] = {
    {"lines", SL_OPT_LIST, NULL, 0, offsetof(struct t_text, lines), "lines to emit"},
    {"file", SL_OPT_STRING, NULL, 0, offsetof(struct t_text, file), "file whose lines to emit"},
    {"files", SL_OPT_LIST, NULL, 0, offsetof(struct t_text, files), "files, one event each"},
    {"batch", SL_OPT_INT, "100", 0, offsetof(struct t_text, batch), "events per batch"},
    {"pause_after", SL_OPT_INT, "0", 0, offsetof(struct t_text, pause_after),
     "pause after this many lines until resumed"},
    {"origin", SL_OPT_STRING, NULL, 0, offsetof(struct t_text, origin), "origin of the events"},
    {"borrow", SL_OPT_BOOL, "false", 0, offsetof(struct t_text, borrow),
     "payloads point at the lines themselves"},
    {0},
};

static void add_line(struct t_text *t, size_t off, size_t len)
{
    t->off = realloc(t->off, (t->n + 1) * sizeof *t->off);
    t->len = realloc(t->len, (t->n + 1) * sizeof *t->len);
    t->off[t->n] = off;
    t->len[t->n++] = len;
}

static int lines_start(struct sl_stage *s, struct sl_error *err)
{
    (void)err;
    struct t_text *t = sl_stage_state(s);
    size_t total = 0, flen = 0;
    char *fdata = t->file ? t_read_file(t->file, &flen) : NULL;
    if (t->borrow) { /* lines not terminated (guard pages): only their lengths */
        for (size_t i = 0; i < t->lines.n; i++) add_line(t, 0, t->lens[i]);
        t->text = malloc(1);
        return 0;
    }
    for (size_t i = 0; i < t->lines.n; i++) total += strlen(t->lines.items[i]) + 1;
    t->text = malloc(total + flen + 1);
    size_t pos = 0;
    for (size_t i = 0; i < t->lines.n; i++) {
        size_t l = strlen(t->lines.items[i]);
        memcpy(t->text + pos, t->lines.items[i], l);
        add_line(t, pos, l);
        pos += l;
        t->text[pos++] = '\n';
    }
    if (fdata) memcpy(t->text + pos, fdata, flen);
    for (size_t i = pos; i < pos + flen;) {
        char *nl = memchr(t->text + i, '\n', pos + flen - i);
        size_t end = nl ? (size_t)(nl - t->text) : pos + flen;
        add_line(t, i, end - i);
        i = end + 1;
    }
    free(fdata);
    for (size_t i = 0; i < t->files.n; i++) { /* whole files, appended one by one */
        size_t flen2;
        char *d = t_read_file(t->files.items[i], &flen2);
        size_t at = pos + flen;
        t->text = realloc(t->text, at + flen2 + 1);
        memcpy(t->text + at, d, flen2);
        add_line(t, at, flen2);
        flen += flen2;
        free(d);
    }
    return 0;
}

static enum sl_poll lines_poll(struct sl_stage *s, struct sl_batch **out)
{
    struct t_text *t = sl_stage_state(s);
    if (t->next >= t->n) return SL_DONE;
    if (t->pause_after && (int64_t)t->next >= t->pause_after && !t->resumed) {
        t->paused = true;
        return SL_PENDING;
    }
    struct sl_batch *b = sl_batch_new(s);
    int64_t limit = t->pause_after && !t->resumed ? t->pause_after : INT64_MAX;
    for (int64_t k = 0; k < t->batch && t->next < t->n && (int64_t)t->next < limit; k++) {
        struct sl_event *ev = sl_batch_append(b);
        if (t->borrow && t->next < t->lines.n) { /* the test's own memory, guard pages */
            sl_event_set_payload(ev, t->lines.items[t->next], t->len[t->next]);
        } else {
            char *p = sl_batch_alloc(b, t->len[t->next] + 1);
            memcpy(p, t->text + t->off[t->next], t->len[t->next]);
            sl_event_set_payload(ev, p, t->len[t->next]);
        }
        sl_event_set_origin(ev, t->origin ? t->origin : sl_stage_name(s), t->next, -1);
        t->next++;
    }
    *out = b;
    return SL_READY;
}

void t_text_resume(struct sl_stage *lines)
{
    struct t_text *t = sl_stage_state(lines);
    t->resumed = true;
    sl_stage_wake(lines);
}

static void lines_ack(struct sl_stage *s, struct sl_batch *b)
{
    struct t_text *t = sl_stage_state(s);
    t->acked += (int64_t)sl_batch_count(b);
}

static void lines_close(struct sl_stage *s)
{
    struct t_text *t = sl_stage_state(s);
    free(t->text);
    free(t->off);
    free(t->len);
}

const struct sl_stage_type t_text = {
    .abi = SL_STAGE_ABI,
    .name = "t_text",
    .kind = SL_SOURCE,
    .doc = "test source of text lines",
    .state_size = sizeof(struct t_text),
    .options = lines_options,
    .start = lines_start,
    .poll = lines_poll,
    .ack = lines_ack,
    .close = lines_close,
};

/* ---- t_capture ----------------------------------------------------------------------------- */

static char *copy_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void t_describe_value(const struct sl_value *v0, char *buf, size_t cap)
{
    struct sl_value v = *v0;
    static const char letters[] = "NBIFSJ";
    char tl = v.type <= SL_JSON ? letters[v.type] : '?';
    if (v.type == SL_STRING) {
        char *d = malloc(v.len + 1);
        int n = sl_value_unescape(&v, d, v.len);
        snprintf(buf, cap, "S:%.*s", n < 0 ? 0 : n, d);
        free(d);
    } else if ((v.type == SL_INT || v.type == SL_FLOAT) && !(v.flags & SL_VALUE_TEXT)) {
        if (v.type == SL_INT)
            snprintf(buf, cap, "I:%lld", (long long)v.i);
        else
            snprintf(buf, cap, "F:%.17g", v.f);
    } else if (v.type == SL_BOOL) {
        snprintf(buf, cap, "B:%s", v.b ? "true" : "false");
    } else if (v.type == SL_NULL) {
        snprintf(buf, cap, "N:");
    } else {
        snprintf(buf, cap, "%c:%.*s", tl, (int)v.len, v.s);
    }
}

/* A string that grows by doubling: an event of 65535 fields is described in linear time,
 * also under ASan (whose realloc always copies). */
struct text {
    char *s;         /* NUL-terminated */
    size_t len, cap; /* bytes used / allocated */
};

/* Appends `s` to `t`, after a space unless `t` is empty. */
static void append(struct text *t, const char *s)
{
    size_t l = strlen(s);
    if (t->len + l + 2 > t->cap) {
        while (t->len + l + 2 > t->cap) t->cap = t->cap ? 2 * t->cap : 256;
        t->s = realloc(t->s, t->cap);
    }
    if (t->len) t->s[t->len++] = ' ';
    memcpy(t->s + t->len, s, l + 1);
    t->len += l;
}

static void describe_fields(struct t_capture *c, const struct sl_event *ev, size_t i)
{
    size_t plen;
    const char *p = sl_event_payload(ev, &plen);
    struct text desc = {calloc(1, 256), 0, 256}, look = {calloc(1, 256), 0, 256};
    bool inside = true;
    for (size_t f = 0; f < sl_event_field_count(ev); f++) {
        const char *name;
        size_t nlen;
        struct sl_value v;
        sl_event_field_at(ev, f, &name, &nlen, &v);
        char val[4096], item[4400];
        t_describe_value(&v, val, sizeof val);
        snprintf(item, sizeof item, "%.*s=%s", (int)nlen, name, val);
        append(&desc, item);
        bool spans = v.type == SL_STRING || v.type == SL_JSON || (v.flags & SL_VALUE_TEXT);
        if (spans && (!p || v.s < p || v.s + v.len > p + plen)) inside = false;
    }
    for (size_t k = 0; c->paths && c->paths[k]; k++) {
        struct sl_value v;
        char val[4096] = "missing", item[4400];
        if (sl_event_get(ev, c->paths[k], strlen(c->paths[k]), &v) == 0)
            t_describe_value(&v, val, sizeof val);
        snprintf(item, sizeof item, "%s=%s", c->paths[k], val);
        append(&look, item);
    }
    c->fields[i] = desc.s;
    c->lookups[i] = look.s;
    c->in_payload[i] = inside;
}

static enum sl_poll capture_write(struct sl_stage *s, struct sl_batch *b)
{
    struct t_capture *c = sl_stage_state(s);
    c->batches++;
    for (size_t i = 0; i < sl_batch_count(b); i++) {
        const struct sl_event *ev = sl_batch_event_const(b, i);
        if (c->n == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 256;
            c->payloads = realloc(c->payloads, c->cap * sizeof *c->payloads);
            c->json = realloc(c->json, c->cap * sizeof *c->json);
            c->times = realloc(c->times, c->cap * sizeof *c->times);
            c->fields = realloc(c->fields, c->cap * sizeof *c->fields);
            c->lookups = realloc(c->lookups, c->cap * sizeof *c->lookups);
            c->in_payload = realloc(c->in_payload, c->cap * sizeof *c->in_payload);
        }
        describe_fields(c, ev, c->n);
        size_t len;
        const char *p = sl_event_payload(ev, &len);
        c->payloads[c->n] = copy_n(p ? p : "", p ? len : 0);
        size_t need = sl_event_write_json(ev, NULL, 0);
        char *j = malloc(need + 1);
        cr_assert_eq(sl_event_write_json(ev, j, need), need);
        j[need] = '\0';
        c->json[c->n] = j;
        c->times[c->n] = sl_event_time(ev);
        c->n++;
    }
    if (c->on_write) c->on_write(s, c);
    sl_ack(b);
    return SL_READY;
}

static void capture_close(struct sl_stage *s)
{
    struct t_capture *c = sl_stage_state(s);
    for (size_t i = 0; i < c->n; i++) {
        free(c->payloads[i]);
        free(c->json[i]);
        free(c->fields[i]);
        free(c->lookups[i]);
    }
    free(c->fields);
    free(c->lookups);
    free(c->in_payload);
    free(c->payloads);
    free(c->json);
    free(c->times);
}

const struct sl_stage_type t_capture = {
    .abi = SL_STAGE_ABI,
    .name = "t_capture",
    .kind = SL_SINK,
    .doc = "test sink keeping payloads and JSON",
    .state_size = sizeof(struct t_capture),
    .write = capture_write,
    .close = capture_close,
};

/* ---- running ----------------------------------------------------------------------------------
 */

struct sl_pipeline *t_pipeline(void)
{
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.queue_max_batches = 4;
    struct sl_error err = {0};
    struct sl_pipeline *p = sl_pipeline_new(NULL, &o, &err);
    cr_assert_not_null(p, "%s", err.msg);
    return p;
}

void t_run_ok(struct sl_pipeline *p)
{
    struct sl_error err = {0};
    int rc = sl_pipeline_run(p, &err);
    cr_assert_eq(rc, 0, "run: %s (stage %s)", err.msg, err.stage);
    cr_assert_eq(sl_pipeline_live_batches(p), 0, "batches leaked: %llu",
                 (unsigned long long)sl_pipeline_live_batches(p));
}

static struct sl_stage *add(struct sl_pipeline *p, const char *name,
                            const struct sl_stage_type *type, const char *yaml)
{
    struct sl_error err = {0};
    struct sl_config *cfg = NULL;
    if (yaml) {
        cfg = sl_config_parse(yaml, strlen(yaml), "test.yaml", &err);
        cr_assert_not_null(cfg, "config: %s", err.msg);
    }
    struct sl_stage *s = sl_pipeline_add(p, name, type, cfg, &err);
    sl_config_free(cfg);
    cr_assert_not_null(s, "add %s: %s", name, err.msg);
    return s;
}

void t_connect_port(struct sl_pipeline *p, struct sl_stage *from, const char *port,
                    struct sl_stage *to)
{
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_connect(p, from, port, to, &err), 0, "connect: %s", err.msg);
}

struct sl_stage *t_stage(struct sl_pipeline *p, const char *name, const struct sl_stage_type *type,
                         const char *yaml)
{
    return add(p, name, type, yaml);
}

struct sl_stage *t_add_lines(struct sl_pipeline *p, const char *const *lines)
{
    struct sl_stage *src = add(p, "src", &t_text, NULL);
    struct t_text *t = sl_stage_state(src);
    size_t n = 0;
    while (lines[n]) n++;
    t->lines.n = n;
    t->lines.items = lines; /* borrowed: the test's array outlives the run */
    return src;
}

struct t_capture *t_run_paths(struct sl_pipeline *p, const struct sl_stage_type *type,
                              const char *yaml, const char *const *paths)
{
    return t_run_after(p, sl_pipeline_find(p, "src"), type, yaml, paths);
}

struct t_capture *t_run_after(struct sl_pipeline *p, struct sl_stage *src,
                              const struct sl_stage_type *type, const char *yaml,
                              const char *const *paths)
{
    struct sl_stage *st = add(p, "stage", type, yaml);
    struct sl_stage *out = add(p, "out", &t_capture, NULL);
    struct t_capture *c = sl_stage_state(out);
    c->paths = paths;
    t_connect_port(p, src, NULL, st);
    t_connect_port(p, st, NULL, out);
    t_run_ok(p);
    return c;
}

struct t_capture *t_run_dead_letter(struct sl_pipeline *p, const struct sl_stage_type *type,
                                    const char *yaml, const char *const *lines,
                                    struct sl_stage **dead)
{
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *st = add(p, "stage", type, yaml);
    struct sl_stage *out = add(p, "out", &t_capture, NULL);
    *dead = add(p, "dead", &t_capture, NULL);
    t_connect_port(p, src, NULL, st);
    t_connect_port(p, st, NULL, out);
    t_connect_port(p, st, "dead_letter", *dead);
    t_run_ok(p);
    return sl_stage_state(out);
}

struct t_capture *t_run_dead_letter_after_json(struct sl_pipeline *p,
                                               const struct sl_stage_type *type, const char *yaml,
                                               const char *const *lines, struct sl_stage **dead)
{
    struct sl_stage *src = t_add_lines(p, lines);
    struct sl_stage *json = add(p, "json", &sl_stage_parse_json, NULL);
    struct sl_stage *st = add(p, "stage", type, yaml);
    struct sl_stage *out = add(p, "out", &t_capture, NULL);
    *dead = add(p, "dead", &t_capture, NULL);
    t_connect_port(p, src, NULL, json);
    t_connect_port(p, json, NULL, st);
    t_connect_port(p, st, NULL, out);
    t_connect_port(p, st, "dead_letter", *dead);
    t_run_ok(p);
    return sl_stage_state(out);
}

struct t_capture *t_through(struct sl_pipeline *p, const struct sl_stage_type *type,
                            const char *yaml, const char *const *lines, struct sl_stage **stage)
{
    struct sl_stage *src = add(p, "src", &t_text, NULL);
    struct t_text *t = sl_stage_state(src);
    size_t n = 0;
    while (lines[n]) n++;
    t->lines.n = n;
    t->lines.items = lines; /* borrowed: the test's literal array outlives the run */
    struct sl_stage *st = add(p, "stage", type, yaml);
    struct sl_stage *out = add(p, "out", &t_capture, NULL);
    t_connect_port(p, src, NULL, st);
    t_connect_port(p, st, NULL, out);
    t_run_ok(p);
    if (stage) *stage = st;
    return sl_stage_state(out);
}

struct sl_stage_stats t_stats(struct sl_stage *s)
{
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(s, &st);
    return st;
}

char *t_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = '\0';
    if (len) *len = (size_t)n;
    return buf;
}

static void *guards[4096];
static size_t guard_sizes[4096], nguards;

const char *t_guard_copy(const char *s, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data = (len + page - 1) / page * page;
    char *m = mmap(NULL, data + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(m, MAP_FAILED);
    cr_assert_eq(mprotect(m + data, page, PROT_NONE), 0);
    cr_assert_lt(nguards, 4096);
    guards[nguards] = m;
    guard_sizes[nguards++] = data + page;
    memcpy(m + data - len, s, len);
    return m + data - len;
}

void t_guard_free_all(void)
{
    for (size_t i = 0; i < nguards; i++) munmap(guards[i], guard_sizes[i]);
    nguards = 0;
}

const char *t_testdata(char *buf, size_t cap, const char *rel)
{
    const char *dir = getenv("SLUICE_TESTDATA");
    cr_assert_not_null(dir, "SLUICE_TESTDATA is not set");
    snprintf(buf, cap, "%s/%s", dir, rel);
    return buf;
}

/* ---- lines at the limits ------------------------------------------------------------------- */

char *t_json_members(size_t n, const char *head, size_t head_n)
{
    size_t cap = (head ? strlen(head) : 0) + 16 * n + 3, o = 0;
    char *s = malloc(cap);
    s[o++] = '{';
    if (head_n) o += (size_t)snprintf(s + o, cap - o, "%s", head);
    for (size_t i = head_n; i < n; i++)
        o += (size_t)snprintf(s + o, cap - o, "%s\"k%zu\":%zu", i ? "," : "", i, i % 10);
    s[o++] = '}';
    s[o] = '\0';
    return s;
}

char *t_kv_pairs(size_t n, const char *kv_sep, const char *pair_sep)
{
    size_t cap = (16 + strlen(kv_sep) + strlen(pair_sep)) * n + 1, o = 0;
    char *s = malloc(cap);
    s[0] = '\0';
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(s + o, cap - o, "%sk%zu%s%zu", i ? pair_sep : "", i, kv_sep, i % 10);
    return s;
}

char *t_json_nested(size_t depth)
{
    size_t arrays = depth - 1, o = 0;
    char *s = malloc(2 * arrays + 8);
    memcpy(s, "{\"a\":", 5), o = 5;
    memset(s + o, '[', arrays), o += arrays;
    memset(s + o, ']', arrays), o += arrays;
    s[o++] = '}';
    s[o] = '\0';
    return s;
}

bool t_ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}
