/* The file sink: byte-exact copies, path templates, encodings, the descriptor LRU,
 * rotation by size and time, fsync modes, torn-line repair and a full disk. Outputs
 * are real files in a temporary directory, read back and compared whole. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sluice/builtins.h>
#include <sluice/json.h>

#include "../connectors/file/internal.h"
#include "helpers.h"
#include "helpers_file.h"

static char *dir;
static struct sl_pipeline *p;

static void setup(void)
{
    dir = t_tmpdir();
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.data_dir = dir;
    struct sl_error err = {0};
    p = sl_pipeline_new(NULL, &o, &err);
    cr_assert_not_null(p, "%s", err.msg);
}

static void teardown(void)
{
    sl_pipeline_free(p);
    char *mnt = t_path(dir, "mnt");
    umount2(mnt, MNT_DETACH); /* the disk-full test's tmpfs, if any */
    free(mnt);
    t_rmtree(dir);
    free(dir);
}

TestSuite(file_sink, .init = setup, .fini = teardown, .timeout = 60);

/* ---- a source of made-up events -------------------------------------------------------------- */

/* Source "t_make": `count` events, `per_batch` a batch, `delay_ms` between batches;
 * each event is filled by the test's make_event(). */
struct t_make {
    int64_t count, per_batch, delay_ms; /* options */
    int64_t next;                       /* next event number */
    bool waiting;                       /* the delay runs */
    struct sl_timer *timer;             /* delay */
};

static void (*make_event)(struct sl_event *ev, int64_t i);

static const struct sl_option make_options[] = {
    {"count", SL_OPT_INT, "10", 0, offsetof(struct t_make, count), "events"},
    {"per_batch", SL_OPT_INT, "100", 0, offsetof(struct t_make, per_batch), "events a batch"},
    {"delay_ms", SL_OPT_INT, "0", 0, offsetof(struct t_make, delay_ms), "pause between batches"},
    {0},
};

static void make_wake(struct sl_stage *s, void *arg)
{
    struct t_make *m = arg;
    m->waiting = false;
    sl_stage_wake(s);
}

static int make_start(struct sl_stage *s, struct sl_error *err)
{
    (void)err;
    struct t_make *m = sl_stage_state(s);
    m->timer = sl_timer_new(s, make_wake, m);
    return 0;
}

static enum sl_poll make_poll(struct sl_stage *s, struct sl_batch **out)
{
    struct t_make *m = sl_stage_state(s);
    if (m->next >= m->count) return SL_DONE;
    if (m->waiting) return SL_PENDING;
    struct sl_batch *b = sl_batch_new(s);
    for (int64_t k = 0; k < m->per_batch && m->next < m->count; k++)
        make_event(sl_batch_append(b), m->next++);
    if (m->delay_ms) {
        m->waiting = true;
        sl_timer_start(m->timer, m->delay_ms, false);
    }
    *out = b;
    return SL_READY;
}

static void make_close(struct sl_stage *s)
{
    sl_timer_free(((struct t_make *)sl_stage_state(s))->timer);
}

static const struct sl_stage_type t_make = {
    .abi = SL_STAGE_ABI,
    .name = "t_make",
    .kind = SL_SOURCE,
    .doc = "test source of made-up events",
    .state_size = sizeof(struct t_make),
    .options = make_options,
    .start = make_start,
    .poll = make_poll,
    .close = make_close,
};

static void set_payload(struct sl_event *ev, const char *text)
{
    size_t n = strlen(text);
    char *d = sl_event_alloc(ev, n);
    memcpy(d, text, n);
    sl_event_set_payload(ev, d, n);
}

static void set_str(struct sl_event *ev, const char *name, const char *text)
{
    struct sl_value v = sl_value_string(sl_event_strdup(ev, text, strlen(text)), strlen(text));
    sl_event_set(ev, name, strlen(name), &v);
}

static int add_member(void *arg, const char *name, size_t len, bool escaped,
                      const struct sl_value *v)
{
    (void)escaped;
    return sl_event_add_field(arg, name, len, v);
}

/* Runs `src_type` (options src) -> file sink (options sink); `%s` is the directory. */
static struct sl__file_sink *run_sink(const struct sl_stage_type *src_type, const char *src,
                                      const char *sink_fmt)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml, src, dir, dir);
    struct sl_stage *s = t_add(p, "src", src_type, yaml);
    snprintf(yaml, sizeof yaml, sink_fmt, dir, dir);
    struct sl_stage *k = t_add(p, "sink", &sl_stage_file_sink, yaml);
    t_connect(p, s, k);
    struct sl_error err = {0};
    int rc = sl_pipeline_run(p, &err);
    cr_assert_eq(rc, 0, "run: %s (%s)", err.msg, err.stage);
    cr_assert_eq(sl_pipeline_live_batches(p), 0);
    return sl_stage_state(k);
}

static void assert_file(const char *name, const char *want)
{
    char *path = t_path(dir, name);
    size_t len;
    char *got = t_read(path, &len);
    cr_assert_not_null(got, "%s missing", name);
    cr_assert_eq(len, strlen(want), "%s: %zu bytes, expected %zu:\n%s", name, len, strlen(want),
                 got);
    cr_assert(memcmp(got, want, len) == 0, "%s:\n%s\nexpected:\n%s", name, got, want);
    free(got);
    free(path);
}

/* ---- copies and templates ----------------------------------------------------------------------
 */

Test(file_sink, text_copies_lines_byte_for_byte)
{
    char *in = t_path(dir, "in.log");
    t_write_numbers(in, 0, 100000, false);
    t_writes(in, "{\"json\": \"line\"}\nlast without newline", true);
    run_sink(&sl_stage_file_source, "path: %s/in.log\nfollow: false",
             "path: %s/out/copy.log\nencoding: text");
    char *want = t_read(in, NULL);
    char *full = malloc(strlen(want) + 2);
    sprintf(full, "%s\n", want);
    assert_file("out/copy.log", full);
    free(full);
    free(want);
    free(in);
}

static void dated_event(struct sl_event *ev, int64_t i)
{
    static const char *const services[] = {"api", "db", "web/../../x"};
    char text[64];
    snprintf(text, sizeof text, "{\"n\":%lld}", (long long)i);
    set_payload(ev, text);
    /* 2024-05-01T23:59:59Z plus i seconds: the date changes at i = 1 */
    sl_event_set_time(ev, (1714607999LL + i) * 1000000000LL);
    if (i != 5) {
        struct sl_value v = sl_value_string(services[i % 3], strlen(services[i % 3]));
        sl_event_add_field(ev, "service", 7, &v); /* indexed, not a change */
    }
}

Test(file_sink, path_template_from_event_time_and_fields)
{
    make_event = dated_event;
    struct sl__file_sink *k =
        run_sink(&t_make, "count: 7\nper_batch: 3",
                 "path: \"%s/logs/%%Y-%%m-%%d/{{ service }}.log\"\nencoding: text");
    assert_file("logs/2024-05-01/api.log", "{\"n\":0}\n");
    assert_file("logs/2024-05-02/db.log", "{\"n\":1}\n{\"n\":4}\n");
    assert_file("logs/2024-05-02/api.log", "{\"n\":3}\n{\"n\":6}\n");
    assert_file("logs/2024-05-02/web_.._.._x.log", "{\"n\":2}\n"); /* no path escapes */
    cr_assert_eq(k->missing, 1); /* event 5 had no service: dropped, counted as an error */
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(sl_pipeline_find(p, "sink"), &st);
    cr_assert_eq(st.dropped, 1);
    cr_assert_eq(st.errors, 1);
    cr_assert_eq(st.acked, 7);
}

/* A template field no event has (a typo): every event is an error, and the run fails at
 * the end instead of ending well with nothing written. */
Test(file_sink, a_path_field_no_event_has_fails_the_run_having_written_nothing)
{
    make_event = dated_event;
    char yaml[512];
    struct sl_stage *s = t_add(p, "src", &t_make, "count: 7\nper_batch: 3");
    snprintf(yaml, sizeof yaml, "path: \"%s/{{ servcie }}.log\"\nencoding: text", dir);
    struct sl_stage *k = t_add(p, "sink", &sl_stage_file_sink, yaml);
    t_connect(p, s, k);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), SL_EINVAL);
    cr_assert_str_eq(err.stage, "sink");
    cr_assert_str_eq(err.msg, "no event was written: the path of each of the 7 events had a "
                              "null {{ }} (a field none of them has: a typo in the template?)");
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(k, &st);
    cr_assert_eq(st.errors, 7);
    cr_assert_eq(st.dropped, 7);
}

static void hostile_event(struct sl_event *ev, int64_t i)
{
    static const char *const vs[] = {"..", ".", "%Y", "a/../../b", "...", NULL, NULL};
    static const char *const ws[] = {".", "x", "", "%m", "..", "x", "x"};
    char text[8];
    snprintf(text, sizeof text, "e%lld", (long long)i);
    set_payload(ev, text);
    sl_event_set_time(ev, 1714607999LL * 1000000000LL); /* 2024-05-01T23:59:59Z */
    if (vs[i]) set_str(ev, "v", vs[i]);
    if (i == 6) {
        struct sl_value n = sl_value_int(7);
        sl_event_set(ev, "v", 1, &n);
    }
    set_str(ev, "w", ws[i]);
}

Test(file_sink, path_values_cannot_climb_out_or_bring_strftime_fields)
{
    make_event = hostile_event;
    struct sl__file_sink *k =
        run_sink(&t_make, "count: 7", "path: \"%s/p/{{ v }}/.{{ w }}/%%Y.log\"\nencoding: text");
    assert_file("p/__/._/2024.log", "e0\n");         /* ".." and ".{{.}}" stay inside */
    assert_file("p/_/.x/2024.log", "e1\n");          /* "." is not a way to merge paths */
    assert_file("p/%Y/2024.log", "e2\n");            /* a value's % is not a strftime field */
    assert_file("p/a_.._.._b/.%m/2024.log", "e3\n"); /* its '/' cannot add directories */
    assert_file("p/.../.../2024.log", "e4\n");       /* three dots are a plain name */
    assert_file("p/7/.x/2024.log", "e6\n");          /* numbers are written as text */
    cr_assert_eq(k->missing, 1);                     /* e5 had no v: dropped, counted */
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(sl_pipeline_find(p, "sink"), &st);
    cr_assert_eq(st.dropped, 1);
    char *up = t_path(dir, "2024.log");
    cr_assert_neq(access(up, F_OK), 0, "a value climbed out of p/");
    free(up);
}

/* ---- encodings
 * ------------------------------------------------------------------------------------- */

/* Indexes `payload` the way a JSON parser does: its members as fields, then synced. */
static void parsed_payload(struct sl_event *ev, const char *payload)
{
    set_payload(ev, payload);
    size_t len;
    const char *doc = sl_event_payload(ev, &len);
    cr_assert_eq(sl_json_each_member(doc, len, add_member, ev, NULL), 0);
    sl_event_fields_synced(ev);
}

static void typed_event(struct sl_event *ev, int64_t i)
{
    if (i == 0) { /* parsed, then changed: serialised from its fields */
        parsed_payload(ev, "{\"a\":1}");
        set_str(ev, "msg", "say \"hi\"\n\tback\\slash \x01");
        struct sl_value v = sl_value_int(-42);
        sl_event_set(ev, "int", 3, &v);
        v = sl_value_float(2.5);
        sl_event_set(ev, "float", 5, &v);
        v = sl_value_bool(true);
        sl_event_set(ev, "ok", 2, &v);
        v = sl_value_null();
        sl_event_set(ev, "none", 4, &v);
        v = sl_value_json("[1,{\"b\":2}]", 11);
        sl_event_set(ev, "list", 4, &v);
        v = sl_value_string("caf\\u00e9", 9);
        v.flags = SL_VALUE_ESCAPED;
        sl_event_set(ev, "esc", 3, &v);
    } else if (i == 1) { /* parsed, untouched: its payload as it came */
        parsed_payload(ev, "{\"raw\": true}");
    } else if (i == 2) { /* a raw plain-text line with a field set: the line is "message" */
        set_payload(ev, "plain \"text\"");
        set_str(ev, "level", "warn");
    } else { /* a raw line that looks like JSON: nobody parsed it, so it is a string */
        set_payload(ev, "{\"raw\": true}");
    }
}

Test(file_sink, json_writes_parsed_payloads_as_they_came_and_everything_else_as_json)
{
    make_event = typed_event;
    run_sink(&t_make, "count: 4", "path: %s/out.json");
    assert_file("out.json",
                "{\"a\":1,\"msg\":\"say \\\"hi\\\"\\n\\tback\\\\slash \\u0001\",\"int\":-42,"
                "\"float\":2.5,\"ok\":true,\"none\":null,\"list\":[1,{\"b\":2}],"
                "\"esc\":\"caf\\u00e9\"}\n"
                "{\"raw\": true}\n"
                "{\"message\":\"plain \\\"text\\\"\",\"level\":\"warn\"}\n"
                "{\"message\":\"{\\\"raw\\\": true}\"}\n");
}

/* Lines as the file source reads them (raw, with the default `host` field), json-encoded
 * by the file sink and by the stdout sink alike: every line is one valid JSON object. */
Test(file_sink, json_of_raw_lines_from_the_file_source_is_valid_json)
{
    char *in = t_path(dir, "in.log");
    t_writes(in, "plain text\n{\"looks\": \"like json\"}\n\ttab \"q\" caf\xc3\xa9 \xff\n\n", false);
    run_sink(&sl_stage_file_source, "path: %s/in.log\nfollow: false", "path: %s/out.json");
    assert_file("out.json", "{\"message\":\"plain text\"}\n"
                            "{\"message\":\"{\\\"looks\\\": \\\"like json\\\"}\"}\n"
                            "{\"message\":\"\\ttab \\\"q\\\" caf\xc3\xa9 \xef\xbf\xbd\"}\n"
                            "{\"message\":\"\"}\n");
    /* With host_key the host metadata becomes a field, written after the message. */
    sl_pipeline_free(p);
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.data_dir = dir;
    p = sl_pipeline_new(NULL, &o, NULL);
    run_sink(&sl_stage_file_source,
             "path: %s/in.log\nfollow: false\nhost_key: host\ncheckpoint: \"\"",
             "path: %s/out2.json");
    char host[256] = "", want[1024];
    gethostname(host, sizeof host - 1);
    int wl =
        snprintf(want, sizeof want,
                 "{\"message\":\"plain text\",\"host\":\"%s\"}\n"
                 "{\"message\":\"{\\\"looks\\\": \\\"like json\\\"}\",\"host\":\"%s\"}\n"
                 "{\"message\":\"\\ttab \\\"q\\\" caf\xc3\xa9 \xef\xbf\xbd\",\"host\":\"%s\"}\n"
                 "{\"message\":\"\",\"host\":\"%s\"}\n",
                 host, host, host, host);
    cr_assert_lt(wl, (int)sizeof want);
    assert_file("out2.json", want);
    char *out = t_path(dir, "out2.json");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "jq -c . < %s > /dev/null 2>&1", out);
    cr_assert_eq(system(cmd), 0, "jq rejects %s", out);
    free(out);
    free(in);
}

static void csv_event(struct sl_event *ev, int64_t i)
{
    set_payload(ev, "ignored");
    set_str(ev, "name", i == 0 ? "plain" : "with, comma and \"quotes\"");
    struct sl_value v = sl_value_int(i);
    sl_event_set(ev, "n", 1, &v);
    if (i == 0) set_str(ev, "note", "line\nbreak");
}

Test(file_sink, csv_quotes_cells_and_writes_a_header_to_new_files)
{
    make_event = csv_event;
    struct sl__file_sink *k = run_sink(&t_make, "count: 2",
                                       "path: %s/out.csv\nencoding: csv\ncsv_header: true\n"
                                       "fields: [n, name, note]");
    assert_file("out.csv", "n,name,note\n0,plain,\"line\nbreak\"\n"
                           "1,\"with, comma and \"\"quotes\"\"\",\n");
    cr_assert_eq(k->enc.missing, 1);
}

static void text_event(struct sl_event *ev, int64_t i)
{
    char text[32];
    snprintf(text, sizeof text, "payload %lld", (long long)i);
    set_payload(ev, text);
    set_str(ev, "level", i ? "info" : "error");
}

Test(file_sink, text_writes_payloads_or_a_template)
{
    make_event = text_event;
    run_sink(&t_make, "count: 2", "path: %s/plain.txt\nencoding: text");
    assert_file("plain.txt", "payload 0\npayload 1\n");
    sl_pipeline_free(p);
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    p = sl_pipeline_new(NULL, &o, NULL);
    run_sink(&t_make, "count: 2",
             "path: %s/tpl.txt\nencoding: text\ntemplate: \"[{{level}}] {{nope}}.\"");
    assert_file("tpl.txt", "[error] .\n[info] .\n");
}

/* ---- descriptors and rotation ------------------------------------------------------------------
 */

static void spread_event(struct sl_event *ev, int64_t i)
{
    char text[32], svc[8];
    snprintf(text, sizeof text, "%lld", (long long)i);
    set_payload(ev, text);
    snprintf(svc, sizeof svc, "s%lld", (long long)(i % 5));
    struct sl_value v = sl_value_string(sl_event_strdup(ev, svc, strlen(svc)), strlen(svc));
    sl_event_add_field(ev, "svc", 3, &v);
}

static void lru(int max_open)
{
    make_event = spread_event;
    char sink[128];
    snprintf(sink, sizeof sink, "path: \"%%s/{{svc}}.log\"\nmax_open_files: %d\nencoding: text",
             max_open);
    struct sl__file_sink *k = run_sink(&t_make, "count: 1000\nper_batch: 64", sink);
    for (int s = 0; s < 5; s++) {
        char name[16], want[8192] = "";
        size_t o = 0;
        snprintf(name, sizeof name, "s%d.log", s);
        for (int i = s; i < 1000; i += 5) o += (size_t)sprintf(want + o, "%d\n", i);
        assert_file(name, want);
    }
    cr_assert_eq(k->outs.opened, k->outs.evicted + k->outs.open);
    cr_assert_gt(k->outs.evicted, 100);
    cr_assert_leq(k->outs.open, (size_t)max_open);
}

Test(file_sink, lru_keeps_at_most_max_open_files)
{
    lru(2);
}
Test(file_sink, lru_of_one_file_switches_on_every_event)
{
    lru(1);
}

/* Concatenates path.1, path.2, ... then path. */
static char *rotated_concat(const char *name, int *files)
{
    size_t cap = 1 << 20, o = 0;
    char *all = calloc(cap, 1);
    *files = 0;
    for (int n = 1;; n++) {
        char rel[64];
        snprintf(rel, sizeof rel, "%s.%d", name, n);
        char *path = t_path(dir, rel);
        size_t len;
        char *part = t_read(path, &len);
        free(path);
        if (!part) break;
        memcpy(all + o, part, len);
        o += len;
        (*files)++;
        free(part);
    }
    char *path = t_path(dir, name);
    size_t len;
    char *part = t_read(path, &len);
    if (part) {
        memcpy(all + o, part, len);
        (*files)++;
    }
    free(part);
    free(path);
    return all;
}

static void number_event(struct sl_event *ev, int64_t i)
{
    char text[32];
    snprintf(text, sizeof text, "line %06lld", (long long)i); /* 11 bytes + newline */
    set_payload(ev, text);
}

Test(file_sink, rotation_by_size_keeps_every_line_in_order)
{
    make_event = number_event;
    struct sl__file_sink *k = run_sink(&t_make, "count: 1000\nper_batch: 37",
                                       "path: %s/out.log\nrotate_size: 1KiB\nencoding: text");
    int files;
    char *all = rotated_concat("out.log", &files);
    char want[16000];
    size_t o = 0;
    for (int i = 0; i < 1000; i++) o += (size_t)sprintf(want + o, "line %06d\n", i);
    cr_assert_str_eq(all, want);
    cr_assert_eq(files, 12, "%d files", files); /* 12000 bytes in files of 1032 bytes */
    cr_assert_eq(k->outs.rotations, 11);
    for (int n = 1; n <= 11; n++) {
        char rel[512];
        snprintf(rel, sizeof rel, "%s/out.log.%d", dir, n);
        struct stat st;
        cr_assert_eq(stat(rel, &st), 0);
        cr_assert_eq(st.st_size, 1032, "%s has %lld bytes", rel, (long long)st.st_size);
    }
    free(all);
}

Test(file_sink, rotation_by_time_keeps_every_line_in_order)
{
    make_event = number_event;
    struct sl__file_sink *k = run_sink(&t_make, "count: 12\nper_batch: 1\ndelay_ms: 25",
                                       "path: %s/out.log\nrotate_interval: 60ms\nencoding: text");
    int files;
    char *all = rotated_concat("out.log", &files);
    char want[512];
    size_t o = 0;
    for (int i = 0; i < 12; i++) o += (size_t)sprintf(want + o, "line %06d\n", i);
    cr_assert_str_eq(all, want);
    cr_assert_geq(files, 2); /* 300 ms of events in files of at most 60 ms */
    cr_assert_eq(k->outs.rotations, (uint64_t)files - 1);
    free(all);
}

Test(file_sink, a_torn_last_line_is_closed_before_appending)
{
    char *out = t_path(dir, "out.log");
    t_writes(out, "whole\ntorn li", false);
    make_event = number_event;
    run_sink(&t_make, "count: 2", "path: %s/out.log\nencoding: text");
    assert_file("out.log", "whole\ntorn li\nline 000000\nline 000001\n");
    free(out);
}

/* ---- fsync -------------------------------------------------------------------------------------
 */

static void fsync_mode(const char *mode, int64_t *fsyncs)
{
    make_event = number_event;
    char sink[256];
    snprintf(sink, sizeof sink, "path: %%s/out.log\nfsync: %s\nencoding: text", mode);
    struct sl__file_sink *k = run_sink(&t_make, "count: 500\nper_batch: 10", sink);
    int files;
    char *all = rotated_concat("out.log", &files);
    char want[8000];
    size_t o = 0;
    for (int i = 0; i < 500; i++) o += (size_t)sprintf(want + o, "line %06d\n", i);
    cr_assert_str_eq(all, want);
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(sl_pipeline_find(p, "src"), &st);
    cr_assert_eq(st.acked, 500);
    *fsyncs = (int64_t)k->fsyncs;
    free(all);
}

Test(file_sink, fsync_always_syncs_every_batch_before_the_next)
{
    int64_t n;
    fsync_mode("always", &n);
    cr_assert_eq(n, 50);
}

Test(file_sink, fsync_batch_groups_batches_per_sync)
{
    int64_t n;
    fsync_mode("batch", &n);
    cr_assert_geq(n, 1);
    cr_assert_leq(n, 50);
}

/* ---- a full disk
 * ----------------------------------------------------------------------------------- */

static char *filler;      /* the file whose removal frees space (tmpfs) */
static bool use_rlimit;   /* no mount possible: RLIMIT_FSIZE makes writes fail */
static int failures_seen; /* "cannot write" log lines */
static uint64_t src_in_at_first_failure;

static void free_space(void)
{
    if (use_rlimit) {
        struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
        setrlimit(RLIMIT_FSIZE, &rl);
    } else {
        unlink(filler);
    }
}

static void disk_log(void *arg, enum sl_log_level level, const char *stage, const char *msg)
{
    (void)arg, (void)stage;
    if (level != SL_LOG_WARN || !strstr(msg, "cannot write")) return;
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(sl_pipeline_find(p, "src"), &st);
    if (++failures_seen == 1) {
        src_in_at_first_failure = st.events_in;
        return;
    }
    if (failures_seen == 3) {
        /* While the sink could not write, the source was held back by the full queue. */
        cr_assert_leq(st.events_in - src_in_at_first_failure, 9 * 1024,
                      "the source went on reading while the sink was stuck");
        free_space();
    }
}

Test(file_sink, disk_full_is_retried_with_backoff_and_loses_nothing)
{
    char *in = t_path(dir, "in.log");
    t_write_numbers(in, 0, 100000, false); /* 589 KiB */
    char *mnt = t_path(dir, "mnt");
    cr_assert_eq(mkdir(mnt, 0755), 0);
    /* SLUICE_TEST_NO_MOUNT forces the fallback, to test it where mounting works. */
    if (!getenv("SLUICE_TEST_NO_MOUNT") && mount("tmpfs", mnt, "tmpfs", 0, "size=1m") == 0) {
        filler = t_path(mnt, "filler");
        char *block = calloc(1, 700 * 1024);
        t_write(filler, block, 700 * 1024, false);
        free(block);
        cr_log_info("disk full: a 1 MiB tmpfs");
    } else {
        use_rlimit = true; /* writes past 300 KiB fail with EFBIG at the syscall */
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {300 * 1024, RLIM_INFINITY};
        cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
        cr_log_info("disk full: RLIMIT_FSIZE (no tmpfs mount)");
    }
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.data_dir = dir;
    o.log = disk_log;
    sl_pipeline_free(p);
    p = sl_pipeline_new(NULL, &o, NULL);
    struct sl__file_sink *k =
        run_sink(&sl_stage_file_source, "path: %s/in.log\nfollow: false",
                 "path: %s/mnt/out.log\nretry: {initial: 5ms}\nencoding: text");
    cr_assert_geq(k->write_errors, 3);
    cr_assert_eq(failures_seen, (int)k->write_errors);
    char *want = t_read(in, NULL);
    assert_file("mnt/out.log", want);
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(sl_pipeline_find(p, "sink"), &st);
    cr_assert_eq(st.errors, k->write_errors);
    cr_assert_eq(st.retries, k->write_errors, "each failed attempt went through SL_RETRY");
    cr_assert_eq(st.events_in, 100000, "a retried batch is counted once");
    free(want);
    free(in);
    free(mnt);
    free(filler);
}

/* ---- errors that pass and errors that do not ------------------------------------------------ */

static int write_failures; /* "cannot write" lines the runtime logged */
static bool writing_again; /* the runtime logged that writes go on */

/* Lifts the file size limit after the second failed write: the "disk" has room again. */
static void fsize_log(void *arg, enum sl_log_level level, const char *stage, const char *msg)
{
    (void)arg, (void)stage;
    if (level == SL_LOG_WARN && strstr(msg, "cannot write") && strstr(msg, "File too large") &&
        ++write_failures == 2) {
        struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
        cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    }
    if (level == SL_LOG_INFO && strcmp(msg, "writing again after 2 failed attempts") == 0)
        writing_again = true;
}

static void logging_pipeline(void (*log)(void *, enum sl_log_level, const char *, const char *))
{
    write_failures = 0;
    writing_again = false;
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.log = log;
    sl_pipeline_free(p);
    p = sl_pipeline_new(NULL, &o, NULL);
}

static void split_event(struct sl_event *ev, int64_t i)
{
    number_event(ev, i);
    set_str(ev, "d", i < 5 ? "early" : "late");
}

/* One batch: events 0..4 go to early/, 5..9 to late/, whose file is already at the
 * process's file size limit (RLIMIT_FSIZE: writes fail with EFBIG, a transient error
 * like a full disk) until two writes failed. The batch fails halfway; offered again, it
 * goes on from event 5 (not from 0), so each line is in its file once. */
Test(file_sink, a_batch_failing_halfway_resumes_where_it_stopped_when_offered_again)
{
    logging_pipeline(fsize_log);
    char *early = t_path(dir, "early"), *late = t_path(dir, "late");
    cr_assert_eq(mkdir(early, 0755), 0);
    cr_assert_eq(mkdir(late, 0755), 0);
    char *late_file = t_path(dir, "late/out.log");
    t_writes(late_file, "an old line of sixty bytes, already there before the run..\n", false);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {60, RLIM_INFINITY}; /* early/out.log gets exactly 60 bytes */
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    make_event = split_event;
    struct sl__file_sink *k =
        run_sink(&t_make, "count: 10\nper_batch: 10",
                 "path: \"%s/{{d}}/out.log\"\nretry: {initial: 2ms}\nencoding: text");
    cr_assert_eq(write_failures, 2);
    cr_assert_eq(k->write_errors, 2);
    assert_file("early/out.log",
                "line 000000\nline 000001\nline 000002\nline 000003\nline 000004\n");
    assert_file("late/out.log",
                "an old line of sixty bytes, already there before the run..\n"
                "line 000005\nline 000006\nline 000007\nline 000008\nline 000009\n");
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(sl_pipeline_find(p, "sink"), &st);
    cr_assert_eq(st.retries, 2);
    cr_assert_eq(st.batches_in, 1);
    cr_assert_eq(st.events_in, 10);
    cr_assert_eq(st.acked, 10);
    cr_assert(writing_again);
    free(early);
    free(late);
    free(late_file);
}

/* Runs t_make -> file sink (`sink_fmt`, %s the directory), which must fail at once;
 * returns the pipeline's error. */
static struct sl_error run_failing(const char *sink_fmt)
{
    char yaml[1024];
    make_event = number_event;
    struct sl_stage *s = t_add(p, "src", &t_make, "count: 3");
    snprintf(yaml, sizeof yaml, sink_fmt, dir);
    struct sl_stage *k = t_add(p, "sink", &sl_stage_file_sink, yaml);
    t_connect(p, s, k);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), SL_EIO, "%s", err.msg);
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(k, &st);
    cr_assert_eq(st.retries, 0, "a permanent error is not retried");
    cr_assert_eq(st.acked, 0);
    cr_assert_eq(st.errors, 1);
    return err;
}

Test(file_sink, a_missing_directory_it_may_not_create_fails_the_stage_at_once)
{
    struct sl_error err = run_failing("path: %s/missing/out.log\nmkdir: false\nencoding: text");
    char want[600];
    snprintf(want, sizeof want,
             "cannot open %s/missing/out.log: No such file or directory (not retried: it would "
             "fail again)",
             dir);
    cr_assert_str_eq(err.msg, want);
    cr_assert_str_eq(err.stage, "sink");
}

/* A directory the sink cannot create says why ("permission denied"), not what the open
 * then found ("no such file"). Root creates directories anywhere, so the run happens in
 * a child process that drops to nobody; it sends back the run's code and message. */
Test(file_sink, a_directory_it_cannot_create_reports_permission_denied)
{
    char *ro = t_path(dir, "readonly");
    cr_assert_eq(mkdir(ro, 0555), 0);
    cr_assert_eq(chmod(dir, 0755), 0);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = t_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        if (geteuid() == 0 && setuid(65534) != 0) _exit(2);
        make_event = number_event;
        struct sl_stage *s = t_add(p, "src", &t_make, "count: 3");
        char yaml[1024];
        snprintf(yaml, sizeof yaml, "path: %s/readonly/sub/out.log\nencoding: text", dir);
        struct sl_stage *k = t_add(p, "sink", &sl_stage_file_sink, yaml);
        t_connect(p, s, k);
        struct sl_error err = {0};
        int rc = sl_pipeline_run(p, &err);
        struct sl_stage_stats st = {.size = sizeof st};
        sl_stage_stats(k, &st);
        dprintf(fds[1], "%d %llu %s", rc, (unsigned long long)st.retries, err.msg);
        _exit(0);
    }
    close(fds[1]);
    char got[700] = "";
    ssize_t n = read(fds[0], got, sizeof got - 1);
    close(fds[0]);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    cr_assert_gt(n, 0);
    char want[700];
    snprintf(want, sizeof want,
             "%d 0 cannot open %s/readonly/sub/out.log: Permission denied (not retried: it would "
             "fail again)",
             SL_EIO, dir);
    cr_assert_str_eq(got, want);
    free(ro);
}

static void config_error(const struct sl_stage_type *type, const char *yaml, const char *want,
                         int line, int col)
{
    struct sl_error err = {0};
    struct sl_config *cfg = t_config(yaml);
    cr_assert_null(sl_pipeline_add(p, "bad", type, cfg, &err));
    sl_config_free(cfg);
    cr_assert_eq(err.code, SL_ECONFIG);
    cr_assert_str_eq(err.stage, "bad");
    cr_assert(strstr(err.msg, want), "message: %s", err.msg);
    cr_assert_eq(err.line, line, "%s", err.msg);
    cr_assert_eq(err.col, col, "%s", err.msg);
}

Test(file_sink, configuration_errors_name_the_stage_and_the_position)
{
    config_error(&sl_stage_file_sink, "path: out.csv\nencoding: csv", "needs 'fields'", 1, 1);
    config_error(&sl_stage_file_sink, "encoding: json\npath: \"{{svc\"",
                 "option 'path': expected '}}' to close the '{{' at line 1, column 1, found end of "
                 "template",
                 2, 13);
    config_error(&sl_stage_file_sink, "path: x\nfsync: sometimes",
                 "must be one of never, batch, always; found 'sometimes'", 2, 8);
    config_error(&sl_stage_file_source, "path: x\nread_buffer: 10", "between 4KiB", 2, 14);
    config_error(&sl_stage_file_source, "paht: x", "did you mean 'path'", 1, 1);
    config_error(&sl_stage_file_sink, "path: \"{{a}}\"\nencoding: text\ntemplate: \"{{\"",
                 "option 'template': expected an expression, found end of template", 3, 14);
    config_error(&sl_stage_file_sink, "path: \"x/{{ null }}.log\"",
                 "option 'path': a {{ }} is null", 1, 7);
    config_error(&sl_stage_stdout, "encoding: csv\ntemplate: \"{{x}}\"", "needs 'fields'", 1, 1);
}
