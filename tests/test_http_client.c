/* The http_client source against a test server on loopback (helpers_http_client.c): APIs paged
 * by cursor, by Link header and by page number (read ahead) read to the end in order, into
 * a file through parse_json too; `interval` asking the last page again; a stopped run, a run
 * holding acknowledgements and a run killed with SIGKILL resume at the right page (inside
 * a page larger than a batch too); the rate limit and max_in_flight measured at the
 * server; retries on 500 and 429 (Retry-After), timeouts; malformed pages and lines,
 * failed URLs and oversized bodies through on_error; configs refused; the URI and JSON
 * array helpers. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <sluice/builtins.h>
#include <sluice/json.h>

#include "helpers.h"
#include "helpers_file.h"
#include "helpers_http_client.h"
#include "helpers_sqlite.h"
#include "../connectors/http/json_array.h"
#include "../connectors/http/uri.h"

static char *dir;
static struct sl_pipeline *p;
static struct t_http *srv;
static int64_t batch_max; /* the pipelines' batch.max_events; 0: the default */

/* ---- a sink that keeps each event: its payload, or its JSON form when it has none ---- */

struct t_json {
    char *ev[256];  /* copies, NUL-terminated */
    size_t n;       /* events */
    size_t stop_at; /* sl_pipeline_stop once this many arrived (0: never) */
};

static enum sl_poll t_json_write(struct sl_stage *stage, struct sl_batch *b)
{
    struct t_json *t = sl_stage_state(stage);
    for (size_t i = 0; i < sl_batch_count(b) && t->n < 256; i++) {
        const struct sl_event *ev = sl_batch_event_const(b, i);
        size_t len;
        const char *payload = sl_event_payload(ev, &len);
        if (!payload) len = sl_event_write_json(ev, NULL, 0);
        char *copy = malloc(len + 1);
        if (payload)
            memcpy(copy, payload, len);
        else
            sl_event_write_json(ev, copy, len);
        copy[len] = '\0';
        t->ev[t->n++] = copy;
    }
    sl_ack(b);
    if (t->stop_at && t->n >= t->stop_at) sl_pipeline_stop(p);
    return SL_READY;
}

static void t_json_close(struct sl_stage *stage)
{
    struct t_json *t = sl_stage_state(stage);
    for (size_t i = 0; i < t->n; i++) free(t->ev[i]);
}

static const struct sl_stage_type t_json = {
    .abi = SL_STAGE_ABI,
    .name = "t_json",
    .kind = SL_SINK,
    .doc = "keeps each event",
    .state_size = sizeof(struct t_json),
    .write = t_json_write,
    .close = t_json_close,
};

/* ---- set-up ------------------------------------------------------------------------------ */

static struct sl_pipeline *new_pipeline(void)
{
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.data_dir = dir;
    o.log = t_log_capture;
    o.shutdown_timeout_ms = 300;
    if (batch_max) o.batch_max_events = batch_max;
    struct sl_error err = {0};
    struct sl_pipeline *np = sl_pipeline_new(NULL, &o, &err);
    cr_assert_not_null(np, "%s", err.msg);
    return np;
}

static void setup(void)
{
    dir = t_tmpdir();
    srv = t_http_start(20);
    p = new_pipeline();
}

static void teardown(void)
{
    sl_pipeline_free(p);
    t_http_stop(srv);
    t_rmtree(dir);
    free(dir);
    t_log_clear();
}

TestSuite(http_client, .init = setup, .fini = teardown, .timeout = 30);

/* The source `src` with `opts` ("%d": the server's port) into a t_json sink. */
static struct t_json *build(const char *opts)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml, opts, t_http_port(srv), t_http_port(srv), t_http_port(srv));
    struct sl_stage *src = t_add(p, "src", &sl_stage_http_client, yaml);
    struct sl_stage *out = t_add(p, "out", &t_json, NULL);
    t_connect(p, src, out);
    return sl_stage_state(out);
}

static int run(struct sl_error *err)
{
    int rc = sl_pipeline_run(p, err);
    cr_assert_eq(sl_pipeline_live_batches(p), 0);
    return rc;
}

static void run_ok(void)
{
    struct sl_error err = {0};
    cr_assert_eq(run(&err), 0, "run: %s (%s)\n%s", err.msg, err.stage,
                 t_log_text ? t_log_text : "");
}

/* The sink got {"id":first}..{"id":last} from index `from` on, in order, and nothing else. */
static void assert_ids(const struct t_json *t, size_t from, int first, int last)
{
    cr_assert_eq(t->n - from, (size_t)(last - first + 1), "%zu events, not %d..%d", t->n - from,
                 first, last);
    for (size_t i = from; i < t->n; i++) {
        char want[32];
        snprintf(want, sizeof want, "{\"id\":%d}", first + (int)(i - from));
        cr_assert_str_eq(t->ev[i], want, "event %zu", i);
    }
}

static void assert_paths(const char *const *want, size_t n)
{
    char buf[256];
    cr_assert_eq(t_http_requests(srv, NULL), n, "%zu requests", t_http_requests(srv, NULL));
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq(t_http_request_path(srv, i, buf, sizeof buf), want[i], "request %zu", i);
}

static uint64_t errors_of(const char *name)
{
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(sl_pipeline_find(p, name), &st);
    return st.errors;
}

/* ---- pages ------------------------------------------------------------------------------- */

Test(http_client, cursor_pages_are_read_once_in_order_through_parse_json_into_a_file)
{
    char yaml[512], *path = t_path(dir, "out.ndjson");
    snprintf(yaml, sizeof yaml,
             "uri: http://127.0.0.1:%d/cursor\nrecords_path: data\n"
             "pagination: {field: meta.next_cursor, param: cursor}",
             t_http_port(srv));
    struct sl_stage *src = t_add(p, "src", &sl_stage_http_client, yaml);
    struct sl_stage *parse = t_add(p, "parse", &sl_stage_parse_json, NULL);
    snprintf(yaml, sizeof yaml, "path: %s\nencoding: json", path);
    struct sl_stage *out = t_add(p, "out", &sl_stage_file_sink, yaml);
    t_connect(p, src, parse);
    t_connect(p, parse, out);
    run_ok();
    char want[512] = "", *got = t_read(path, NULL);
    for (int id = 1; id <= 20; id++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "{\"id\":%d}\n", id);
    cr_assert_str_eq(got, want);
    const char *paths[] = {"/cursor", "/cursor?cursor=5", "/cursor?cursor=10", "/cursor?cursor=15"};
    assert_paths(paths, 4);
    free(got), free(path);
}

Test(http_client, link_header_pages_are_followed_to_the_last_one)
{
    struct t_json *t = build("uri: http://127.0.0.1:%d/link\npagination: {next: link_header}");
    run_ok();
    assert_ids(t, 0, 1, 20);
    const char *paths[] = {"/link", "/link?page=2", "/link?page=3", "/link?page=4"};
    assert_paths(paths, 4);
}

Test(http_client, page_numbers_count_up_until_an_empty_page)
{
    struct t_json *t =
        build("uri: http://127.0.0.1:%d/pages\nrecords_path: items\npagination: {param: page}\n"
              "max_in_flight: 1");
    run_ok();
    assert_ids(t, 0, 1, 20);
    const char *paths[] = {"/pages?page=1", "/pages?page=2", "/pages?page=3", "/pages?page=4",
                           "/pages?page=5"};
    assert_paths(paths, 5);
}

Test(http_client, page_numbers_are_asked_max_in_flight_at_once_and_delivered_in_order)
{
    struct t_json *t = build("uri: http://127.0.0.1:%d/slowpages\nrecords_path: items\n"
                             "pagination: {param: page}\nmax_in_flight: 3");
    run_ok();
    assert_ids(t, 0, 1, 20);
    cr_assert_eq(t_http_max_open(srv), 3, "%d requests open at once", t_http_max_open(srv));
    size_t n = t_http_requests(srv, "/slowpages");
    cr_assert(n >= 5 && n <= 7, "%zu requests: pages 1..5, and at most 2 past the empty one", n);
    for (int page = 1; page <= 5; page++) {
        char path[64];
        snprintf(path, sizeof path, "/slowpages?page=%d", page);
        cr_assert_eq(t_http_requests(srv, path), 1, "page %d", page);
    }
    char *db = t_path(dir, "checkpoints.db");
    char *ck = t_sqlite(db, "SELECT position, skip FROM http_checkpoints WHERE source = 'src'");
    cr_assert_str_eq(ck, "5|0\n", "the empty page, asked first next time");
    free(ck), free(db);
}

Test(http_client, ndjson_lines_are_records_and_a_line_that_is_not_json_is_dropped_and_counted)
{
    struct t_json *t = build("uri: http://127.0.0.1:%d/nd\ndecode: ndjson");
    run_ok();
    cr_assert_eq(t->n, 4);
    const char *want[] = {"{\"id\":1}", "{\"id\":2}", "{\"id\":3}", "{\"id\":5}"};
    for (size_t i = 0; i < 4; i++) cr_assert_str_eq(t->ev[i], want[i]);
    cr_assert_eq(errors_of("src"), 1);
}

Test(http_client, a_long_cursor_api_is_read_to_the_end_on_one_kept_alive_connection)
{
    t_http_set_records(srv, 5000); /* 1000 pages */
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "uri: http://127.0.0.1:%d/cursor\nrecords_path: data\n"
             "pagination: {field: meta.next_cursor, param: cursor}",
             t_http_port(srv));
    struct sl_stage *src = t_add(p, "src", &sl_stage_http_client, yaml);
    struct sl_stage *out = t_add(p, "out", &t_rows, NULL);
    t_connect(p, src, out);
    struct t_rows *r = sl_stage_state(out);
    r->nostore = true;
    run_ok();
    cr_assert_eq(r->n, 5000);
    cr_assert_eq(t_http_requests(srv, "/cursor"), 1000);
    double ms = t_http_request_time(srv, "/cursor", 999) - t_http_request_time(srv, "/cursor", 0);
    fprintf(stderr, "1000 pages of 5 records: %.0f ms at the server, %.0f pages/s\n", ms,
            ms > 0 ? 999 * 1000.0 / ms : 0);
    cr_assert_eq(t_http_connections(srv), 1);
}

/* ---- restarts ---------------------------------------------------------------------------- */

static const char *cursor_opts = "uri: http://127.0.0.1:%d/cursor\nrecords_path: data\n"
                                 "pagination: {field: meta.next_cursor, param: cursor}";

Test(http_client, a_stopped_run_resumes_at_the_next_page_without_loss_or_repeat)
{
    struct t_json *t = build(cursor_opts);
    t->stop_at = 10; /* after page 2 */
    run_ok();
    size_t n1 = t->n;
    cr_assert(n1 == 10 || n1 == 15, "the first run delivered %zu", n1);
    assert_ids(t, 0, 1, (int)n1);
    char *db = t_path(dir, "checkpoints.db");
    char *ck = t_sqlite(db, "SELECT position, skip FROM http_checkpoints WHERE source = 'src'");
    char want[32];
    snprintf(want, sizeof want, "%zu|0\n", n1);
    cr_assert_str_eq(ck, want);
    free(ck), free(db);

    size_t before = t_http_requests(srv, NULL);
    sl_pipeline_free(p);
    p = new_pipeline();
    t = build(cursor_opts);
    run_ok();
    assert_ids(t, 0, (int)n1 + 1, 20);
    char buf[64], first[64];
    snprintf(first, sizeof first, "/cursor?cursor=%zu", n1);
    cr_assert_str_eq(t_http_request_path(srv, before, buf, sizeof buf), first);
}

Test(http_client, a_page_larger_than_a_batch_resumes_after_its_last_acknowledged_batch)
{
    batch_max = 2; /* pages of 5: batches of 2, 2 and 1 */
    sl_pipeline_free(p);
    p = new_pipeline();
    struct t_json *t = build(cursor_opts);
    t->stop_at = 3; /* inside page 1 */
    run_ok();
    size_t n1 = t->n;
    assert_ids(t, 0, 1, (int)n1);
    char *db = t_path(dir, "checkpoints.db"), want[32];
    char *ck = t_sqlite(db, "SELECT position, skip FROM http_checkpoints WHERE source = 'src'");
    if (n1 / 5)
        snprintf(want, sizeof want, "%zu|%zu\n", n1 / 5 * 5, n1 % 5);
    else
        snprintf(want, sizeof want, "|%zu\n", n1 % 5);
    cr_assert_str_eq(ck, want, "after %zu records", n1);
    free(ck), free(db);

    sl_pipeline_free(p);
    p = new_pipeline();
    t = build(cursor_opts);
    run_ok();
    assert_ids(t, 0, (int)n1 + 1, 20);
    batch_max = 0;
}

Test(http_client, page_numbers_read_ahead_resume_after_the_last_acknowledged_page)
{
    static const char *opts = "uri: http://127.0.0.1:%d/slowpages\nrecords_path: items\n"
                              "pagination: {param: page}\nmax_in_flight: 3";
    struct t_json *t = build(opts);
    t->stop_at = 10;
    run_ok();
    size_t n1 = t->n;
    cr_assert(n1 % 5 == 0 && n1 >= 10 && n1 < 20, "the first run delivered %zu", n1);
    assert_ids(t, 0, 1, (int)n1);
    char *db = t_path(dir, "checkpoints.db"), want[32];
    char *ck = t_sqlite(db, "SELECT position, skip FROM http_checkpoints WHERE source = 'src'");
    snprintf(want, sizeof want, "%zu|0\n", n1 / 5 + 1);
    cr_assert_str_eq(ck, want);
    free(ck), free(db);

    sl_pipeline_free(p);
    p = new_pipeline();
    t = build(opts);
    run_ok();
    assert_ids(t, 0, (int)n1 + 1, 20);
}

static void stop_at_15(struct sl_stage *s, struct t_rows *r, struct sl_batch *b)
{
    (void)s, (void)b;
    if (r->n >= 15) sl_pipeline_stop(p);
}

Test(http_client, a_run_holding_acknowledgements_repeats_only_the_unacknowledged_pages)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml, cursor_opts, t_http_port(srv));
    struct sl_stage *src = t_add(p, "src", &sl_stage_http_client, yaml);
    struct sl_stage *parse = t_add(p, "parse", &sl_stage_parse_json, NULL);
    struct sl_stage *out = t_add(p, "out", &t_rows, "hold_after: 2"); /* pages 3.. held */
    t_connect(p, src, parse);
    t_connect(p, parse, out);
    struct t_rows *r = sl_stage_state(out);
    r->keep_payloads = true;
    r->on_write = stop_at_15;
    struct sl_error err = {0};
    /* The held pages never drain: shutdown_timeout ends the run, as a kill would. */
    sl_pipeline_run(p, &err);
    cr_assert_geq(r->n, 15);
    for (size_t i = 0; i < r->n; i++) {
        char want[32];
        snprintf(want, sizeof want, "{\"id\":%zu}", i + 1);
        cr_assert_str_eq(r->payloads[i], want);
    }
    char *db = t_path(dir, "checkpoints.db");
    char *ck = t_sqlite(db, "SELECT position, skip FROM http_checkpoints WHERE source = 'src'");
    cr_assert_str_eq(ck, "10|0\n", "pages 1 and 2 acknowledged, no more");
    free(ck), free(db);

    sl_pipeline_free(p);
    p = new_pipeline();
    struct t_json *t = build(cursor_opts);
    run_ok();
    assert_ids(t, 0, 11, 20); /* pages 3 and 4 again: delivered, never acknowledged */
}

/* ---- kill -9 --------------------------------------------------------------------------- */

static FILE *delivered_log;

static void log_payloads(struct sl_stage *s, struct t_rows *r, struct sl_batch *b)
{
    (void)s;
    for (size_t i = r->n - sl_batch_count(b); i < r->n; i++)
        fprintf(delivered_log, "%s\n", r->payloads[i]);
    fflush(delivered_log);
}

/* The child: its own pipeline, pages 1 and 2 acknowledged, the next ones held. */
static void run_child(const char *log)
{
    p = new_pipeline(); /* its own loop: the parent's shares this process's descriptors */
    delivered_log = fopen(log, "w");
    char yaml[512];
    snprintf(yaml, sizeof yaml, cursor_opts, t_http_port(srv));
    struct sl_stage *src = t_add(p, "src", &sl_stage_http_client, yaml);
    struct sl_stage *out = t_add(p, "out", &t_rows, "hold_after: 2");
    t_connect(p, src, out);
    struct t_rows *r = sl_stage_state(out);
    r->keep_payloads = true;
    r->on_write = log_payloads;
    sl_pipeline_run(p, NULL); /* never ends: the sink holds its acknowledgements */
    _exit(1);
}

static size_t lines_in(const char *path)
{
    char *text = t_read(path, NULL);
    size_t n = 0;
    for (const char *c = text; c && *c; c++) n += *c == '\n';
    free(text);
    return n;
}

/* The source's checkpoint row ("position|skip\n", owned), or NULL while there is none yet
 * (no database, no table, or busy). Never an assertion: the child must be killed whatever
 * happens. */
static char *checkpoint_row(const char *db)
{
    if (access(db, F_OK)) return NULL; /* the source creates it; the CLI must not */
    char cmd[1024], buf[128];
    snprintf(cmd, sizeof cmd,
             "sqlite3 -cmd '.timeout 1000' '%s' "
             "\"SELECT position, skip FROM http_checkpoints WHERE source = 'src'\" 2>/dev/null",
             db);
    FILE *f = popen(cmd, "r");
    if (!f) return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    return pclose(f) == 0 ? strdup(buf) : NULL;
}

Test(http_client, a_killed_run_resumes_after_the_last_acknowledged_page)
{
    char *log = t_path(dir, "delivered"), *db = t_path(dir, "checkpoints.db"), *ck = NULL;
    pid_t pid = t_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) run_child(log);
    struct timespec now, end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += 10;
    do { /* polled with a deadline: every page delivered (3 and 4 held) */
        usleep(10000);
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (lines_in(log) < 20 && now.tv_sec < end.tv_sec);
    end.tv_sec += 10; /* a slow (sanitizer) run saves its first checkpoint later */
    for (;;) {        /* pages 1 and 2 checkpointed */
        free(ck);
        ck = checkpoint_row(db);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((ck && !strcmp(ck, "10|0\n")) || now.tv_sec >= end.tv_sec) break;
        usleep(10000);
    }
    cr_assert_eq(kill(pid, SIGKILL), 0);
    cr_assert_eq(waitpid(pid, NULL, 0), pid);
    cr_assert_not_null(ck, "no checkpoint saved in %s", db);
    cr_assert_str_eq(ck, "10|0\n");
    free(ck);
    char *first = t_read(log, NULL), want[512] = "";
    for (int id = 1; id <= 20; id++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "{\"id\":%d}\n", id);
    cr_assert_str_eq(first, want, "the killed run delivered every record once, in order");
    free(first);

    struct t_json *t = build(cursor_opts);
    run_ok();
    assert_ids(t, 0, 11, 20); /* pages 3 and 4: delivered, never acknowledged */
    free(log), free(db);
}

/* ---- interval ---------------------------------------------------------------------------- */

static void grow_then_stop(struct sl_stage *s, struct t_rows *r, struct sl_batch *b)
{
    (void)s, (void)b;
    if (r->n == 12) t_http_set_records(srv, 20);
    if (r->n == 20) sl_pipeline_stop(p);
}

Test(http_client, with_an_interval_the_last_page_is_asked_again_and_only_new_records_delivered)
{
    t_http_set_records(srv, 12); /* pages 0..5, 5..10, then 11 and 12 with no next cursor */
    char yaml[512];
    snprintf(yaml, sizeof yaml, "%s\ninterval: 30ms", cursor_opts);
    char opts[512];
    snprintf(opts, sizeof opts, yaml, t_http_port(srv));
    struct sl_stage *src = t_add(p, "src", &sl_stage_http_client, opts);
    struct sl_stage *parse = t_add(p, "parse", &sl_stage_parse_json, NULL);
    struct sl_stage *out = t_add(p, "out", &t_rows, NULL);
    t_connect(p, src, parse);
    t_connect(p, parse, out);
    struct t_rows *r = sl_stage_state(out);
    r->keep_payloads = true;
    r->on_write = grow_then_stop;
    run_ok();
    cr_assert_eq(r->n, 20);
    for (size_t i = 0; i < r->n; i++) {
        char want[32];
        snprintf(want, sizeof want, "{\"id\":%zu}", i + 1);
        cr_assert_str_eq(r->payloads[i], want);
    }
    /* 12 records: the page after cursor 10 is the last; asked again until it grows. */
    cr_assert_geq(t_http_requests(srv, "/cursor?cursor=10"), 2);
    cr_assert_eq(t_http_requests(srv, "/cursor?cursor=15"), 1);
    char *db = t_path(dir, "checkpoints.db");
    char *ck = t_sqlite(db, "SELECT position, skip FROM http_checkpoints WHERE source = 'src'");
    cr_assert_str_eq(ck, "15|5\n", "the last page, its 5 records delivered");
    free(ck), free(db);
}

/* ---- pace and concurrency ---------------------------------------------------------------- */

Test(http_client, rate_limit_spaces_the_requests_at_the_server)
{
    struct t_json *t = build("uri: http://127.0.0.1:%d/pages\nrecords_path: items\n"
                             "pagination: {param: page}\nrate_limit: 10\nmax_in_flight: 1");
    run_ok();
    assert_ids(t, 0, 1, 20);
    cr_assert_eq(t_http_requests(srv, "/pages"), 5);
    for (size_t i = 1; i < 5; i++) {
        double gap =
            t_http_request_time(srv, "/pages", i) - t_http_request_time(srv, "/pages", i - 1);
        fprintf(stderr, "rate_limit 10/s: request %zu came %.1f ms after the one before\n", i, gap);
        cr_assert_geq(gap, 95.0, "request %zu came %.1f ms after the one before", i, gap);
    }
}

Test(http_client, rate_limit_holds_across_a_crawls_parallel_requests)
{
    char yaml[2048] = "max_in_flight: 3\nrate_limit: 20\nurls:\n";
    for (int i = 1; i <= 6; i++)
        snprintf(yaml + strlen(yaml), sizeof yaml - strlen(yaml),
                 "  - http://127.0.0.1:%d/item/%d\n", t_http_port(srv), i);
    struct sl_stage *src = t_add(p, "src", &sl_stage_http_client, yaml);
    struct sl_stage *out = t_add(p, "out", &t_json, NULL);
    t_connect(p, src, out);
    run_ok();
    cr_assert_eq(t_http_requests(srv, "/item/"), 6);
    /* Requests i and j leave (j - i) * 50 ms apart at least. The first three each open a
     * connection first, the next ones reuse them: what the server sees is that, give or
     * take one connection's set-up (15 ms), which does not add up over the window. */
    for (size_t i = 0; i < 6; i++)
        for (size_t j = i + 1; j < 6; j++) {
            double span =
                t_http_request_time(srv, "/item/", j) - t_http_request_time(srv, "/item/", i);
            cr_assert_geq(span, (double)(j - i) * 50.0 - 15.0,
                          "requests %zu and %zu came %.1f ms apart", i, j, span);
        }
}

Test(http_client, a_crawl_keeps_at_most_max_in_flight_requests_open)
{
    char yaml[2048] = "max_in_flight: 3\nurls:\n";
    for (int i = 1; i <= 12; i++)
        snprintf(yaml + strlen(yaml), sizeof yaml - strlen(yaml),
                 "  - http://127.0.0.1:%d/item/%d\n", t_http_port(srv), i);
    struct sl_stage *src = t_add(p, "src", &sl_stage_http_client, yaml);
    struct sl_stage *out = t_add(p, "out", &t_json, NULL);
    t_connect(p, src, out);
    struct t_json *t = sl_stage_state(out);
    run_ok();
    cr_assert_eq(t->n, 12);
    cr_assert_eq(t_http_max_open(srv), 3, "%d requests open at once", t_http_max_open(srv));
    bool seen[13] = {0};
    for (size_t i = 0; i < t->n; i++) {
        int n = 0, port = 0, m = 0;
        cr_assert_eq(sscanf(t->ev[i], "{\"url\":\"http://127.0.0.1:%d/item/%d\",", &port, &n), 2,
                     "%s", t->ev[i]);
        char want[256];
        snprintf(want, sizeof want,
                 "{\"url\":\"http://127.0.0.1:%d/item/%d\",\"status\":200,\"headers\":"
                 "{\"content-type\":\"application/json\"},\"body\":{\"n\":%d}}",
                 port, n, n);
        cr_assert_str_eq(t->ev[i], want);
        cr_assert(n >= 1 && n <= 12 && !seen[n], "%d twice", n);
        seen[n] = true;
        (void)m;
    }
}

Test(http_client, a_crawl_reads_its_urls_from_a_file)
{
    char *list = t_path(dir, "urls.txt"), text[512], yaml[600];
    snprintf(text, sizeof text,
             "# pages\nhttp://127.0.0.1:%d/item/1\n\n  http://127.0.0.1:%d/item/2  \r\n"
             "http://127.0.0.1:%d/item/3\n",
             t_http_port(srv), t_http_port(srv), t_http_port(srv));
    t_writes(list, text, false);
    snprintf(yaml, sizeof yaml, "urls_file: %s\nresponse_headers: [content-length, x-none]", list);
    struct sl_stage *src = t_add(p, "src", &sl_stage_http_client, yaml);
    struct sl_stage *out = t_add(p, "out", &t_json, NULL);
    t_connect(p, src, out);
    struct t_json *t = sl_stage_state(out);
    run_ok();
    cr_assert_eq(t->n, 3);
    cr_assert_eq(t_http_requests(srv, "/item/"), 3);
    for (size_t i = 0; i < t->n; i++)
        cr_assert(strstr(t->ev[i], "\"headers\":{\"content-length\":\"7\"},\"body\":{\"n\":"), "%s",
                  t->ev[i]);
    free(list);
}

/* ---- failures ---------------------------------------------------------------------------- */

Test(http_client, pages_are_retried_after_500_and_after_429_as_retry_after_says)
{
    struct t_json *t = build("uri: http://127.0.0.1:%d/flaky\nrecords_path: items\n"
                             "pagination: {param: page}\nretry: {initial: 10ms, max: 20ms}");
    run_ok();
    assert_ids(t, 0, 1, 20);
    cr_assert_eq(t_http_requests(srv, "/flaky?page=1"), 2);
    cr_assert_eq(t_http_requests(srv, "/flaky?page=2"), 2);
    double waited =
        t_http_request_time(srv, "/flaky?page=2", 1) - t_http_request_time(srv, "/flaky?page=2", 0);
    fprintf(stderr, "429 with Retry-After: 1: retried %.0f ms later\n", waited);
    cr_assert_geq(waited, 990.0);
    cr_assert_leq(waited, 1500.0);
    cr_assert_eq(errors_of("src"), 0);
}

static const char *crawl_opts = "urls:\n  - http://127.0.0.1:%d/retry/1\n"
                                "  - http://127.0.0.1:%d/missing\n"
                                "  - http://127.0.0.1:%d/retry/2\n"
                                "retry: {initial: 5ms, max: 10ms}\n";

Test(http_client, a_crawl_retries_500s_and_passes_a_404_on_with_its_error)
{
    char opts[512];
    snprintf(opts, sizeof opts, "%son_error: emit\nmax_in_flight: 1", crawl_opts);
    struct t_json *t = build(opts);
    run_ok();
    cr_assert_eq(t->n, 3);
    cr_assert_eq(t_http_requests(srv, "/retry/1"), 3);
    cr_assert_eq(t_http_requests(srv, "/retry/2"), 3);
    cr_assert_eq(t_http_requests(srv, "/missing"), 1, "a 404 is not retried");
    char want[256];
    snprintf(want, sizeof want,
             "{\"url\":\"http://127.0.0.1:%d/missing\",\"status\":404,\"error\":\"HTTP 404\"}",
             t_http_port(srv));
    cr_assert_str_eq(t->ev[1], want);
    cr_assert(strstr(t->ev[0], "\"body\":{\"n\":1}"), "%s", t->ev[0]);
    cr_assert(strstr(t->ev[2], "\"body\":{\"n\":2}"), "%s", t->ev[2]);
    cr_assert_eq(errors_of("src"), 1);
}

Test(http_client, a_crawl_with_on_error_fail_stops_the_run_naming_the_url)
{
    char opts[512];
    snprintf(opts, sizeof opts, "%son_error: fail", crawl_opts);
    build(opts);
    struct sl_error err = {0};
    cr_assert_neq(run(&err), 0);
    cr_assert(strstr(err.msg, "/missing: HTTP 404"), "%s", err.msg);
    cr_assert_str_eq(err.stage, "src");
}

Test(http_client, a_malformed_page_is_counted_and_dropped_and_the_pages_go_on)
{
    struct t_json *t = build("uri: http://127.0.0.1:%d/bad\nrecords_path: items\n"
                             "pagination: {param: page}");
    run_ok();
    cr_assert_eq(t->n, 15);
    assert_ids(t, 5, 11, 20);
    cr_assert_eq(errors_of("src"), 1);
    cr_assert(strstr(t_log_text, "the response is not valid JSON"), "%s", t_log_text);
}

Test(http_client, a_malformed_page_with_on_error_emit_is_an_event_with_its_error)
{
    struct t_json *t = build("uri: http://127.0.0.1:%d/bad\nrecords_path: items\n"
                             "pagination: {param: page}\non_error: emit");
    run_ok();
    cr_assert_eq(t->n, 16);
    cr_assert_str_eq(t->ev[5],
                     "{\"items\":[{\"id\":6},{\"id\":7},{\"id\":8},{\"id\":9},{\"id\":10}");
    assert_ids(t, 6, 11, 20);
}

Test(http_client, a_malformed_page_with_on_error_fail_stops_the_run)
{
    build("uri: http://127.0.0.1:%d/bad\nrecords_path: items\npagination: {param: page}\n"
          "on_error: fail");
    struct sl_error err = {0};
    cr_assert_neq(run(&err), 0);
    cr_assert(strstr(err.msg, "/bad?page=2: the response is not valid JSON"), "%s", err.msg);
}

Test(http_client, a_server_that_is_not_there_fails_after_the_retries)
{
    build("uri: http://127.0.0.1:1/x\nretry: {initial: 1ms, max: 2ms, attempts: 2}\n"
          "on_error: fail");
    struct sl_error err = {0};
    cr_assert_neq(run(&err), 0);
    cr_assert(strstr(err.msg, "http://127.0.0.1:1/x: no response"), "%s", err.msg);
}

Test(http_client, a_page_that_fails_for_good_with_on_error_emit_is_an_event_and_the_read_ends)
{
    struct t_json *t = build("uri: http://127.0.0.1:%d/missing\npagination: {param: page}\n"
                             "on_error: emit\nmax_in_flight: 1");
    run_ok();
    cr_assert_eq(t->n, 1);
    char want[256];
    snprintf(want, sizeof want,
             "{\"url\":\"http://127.0.0.1:%d/missing?page=1\",\"status\":404,\"error\":\"HTTP "
             "404\"}",
             t_http_port(srv));
    cr_assert_str_eq(t->ev[0], want);
    cr_assert_eq(errors_of("src"), 1);
    cr_assert_eq(t_http_requests(srv, NULL), 1);
}

Test(http_client, the_headers_option_is_sent_with_host_and_user_agent)
{
    struct t_json *t = build("uri: http://127.0.0.1:%d/whoami\n"
                             "headers: {Authorization: 'Bearer t0k', User-Agent: probe/1}");
    run_ok();
    cr_assert_eq(t->n, 1);
    char want[256];
    snprintf(want, sizeof want,
             "{\"auth\":\"Bearer t0k\",\"ua\":\"probe/1\",\"host\":\"127.0.0.1:%d\"}",
             t_http_port(srv));
    cr_assert_str_eq(t->ev[0], want);
}

Test(http_client, a_server_that_never_answers_times_out_and_is_retried)
{
    build("uri: http://127.0.0.1:%d/stall\ntimeout: 100ms\n"
          "retry: {initial: 1ms, max: 2ms, attempts: 1}\non_error: fail");
    struct sl_error err = {0};
    cr_assert_neq(run(&err), 0);
    cr_assert(strstr(err.msg, "/stall: no response"), "%s", err.msg);
    cr_assert_eq(t_http_requests(srv, "/stall"), 2, "the first try and one retry");
}

Test(http_client, a_body_larger_than_max_body_size_fails_at_once_without_retries)
{
    struct t_json *t = build("urls: [http://127.0.0.1:%d/retry/9, http://127.0.0.1:%d/item/1]\n"
                             "max_body_size: 4\non_error: emit\nretry: {initial: 1ms, max: 2ms}");
    run_ok();
    cr_assert_eq(t->n, 2);
    for (size_t i = 0; i < 2; i++)
        cr_assert(strstr(t->ev[i], "\"error\":\"response larger than max_body_size\""), "%s",
                  t->ev[i]);
    cr_assert_eq(t_http_requests(srv, "/item/1"), 1);
    cr_assert_eq(t_http_requests(srv, "/retry/9"), 3, "two 500s retried, the 200 too large");
    cr_assert_eq(errors_of("src"), 2);
}

/* ---- configs ----------------------------------------------------------------------------- */

static void refused(const char *yaml, const char *why)
{
    struct sl_error err = {0};
    struct sl_config *cfg = t_config(yaml);
    cr_assert_null(sl_pipeline_add(p, "src", &sl_stage_http_client, cfg, &err), "%s", yaml);
    cr_assert(strstr(err.msg, why), "%s", err.msg);
    sl_config_free(cfg);
}

Test(http_client, configs_that_cannot_work_are_refused_with_the_reason)
{
    refused("{uri: 'http://h/', urls: ['http://h/a']}", "give one of 'uri'");
    refused("{uri: 'https://h/'}", "https is not supported: TLS is left to a proxy");
    refused("{uri: 'http://h/', pagination: {field: next}}", "needs 'param'");
    refused("{uri: 'http://h/', pagination: {next: link_header, param: p}}", "takes no 'field'");
    refused("{urls: ['http://h/a'], interval: 5s}", "go with 'uri'");
    refused("{uri: 'http://h/', decode: ndjson, records_path: data}", "decode: json");
}

/* ---- the JSON array walk (json_array.c) ---------------------------------------------------- */

static int keep_element(void *arg, const char *el, size_t len)
{
    char *out = arg;
    snprintf(out + strlen(out), 512 - strlen(out), "<%.*s>", (int)len, el);
    return 0;
}

Test(http_client, json_array_elements_are_cut_at_top_level_commas_only)
{
    char got[512] = "";
    const char *json = " [ {\"a\":[1,2],\"s\":\"x,]\\\"}\"} , 3,\"q\",[[]],null ] ";
    cr_assert_eq(sl__http_json_array_each(json, strlen(json), keep_element, got), 0);
    cr_assert_str_eq(got, "<{\"a\":[1,2],\"s\":\"x,]\\\"}\"}><3><\"q\"><[[]]><null>");
    got[0] = '\0';
    cr_assert_eq(sl__http_json_array_each("[]", 2, keep_element, got), 0);
    cr_assert_str_eq(got, "");
    cr_assert_eq(sl__http_json_array_each("{}", 2, keep_element, got), SL_EPARSE);
}

/* ---- the URI helpers (uri.c) ------------------------------------------------------------- */

static void resolves(const char *base, const char *ref, const char *want)
{
    char *got = sl__http_uri_resolve(base, ref);
    cr_assert_str_eq(got, want, "%s + %s", base, ref);
    free(got);
}

Test(http_client, uri_helpers_set_parameters_and_resolve_link_targets)
{
    char *u = sl__http_uri_with_param("http://h/p?a=1&cursor=x&b=2#f", "cursor", "a b/c");
    cr_assert_str_eq(u, "http://h/p?a=1&b=2&cursor=a%20b%2Fc");
    free(u);
    u = sl__http_uri_with_param("http://h/p", "page", "3");
    cr_assert_str_eq(u, "http://h/p?page=3");
    free(u);
    resolves("http://h:81/a/b?q=1", "c?page=2", "http://h:81/a/c?page=2");
    resolves("http://h:81/a/b?q=1", "/x", "http://h:81/x");
    resolves("http://h:81/a/b?q=1", "?page=2", "http://h:81/a/b?page=2");
    resolves("http://h:81/a/b", "//other/y#frag", "http://other/y");
    resolves("http://h", "z", "http://h/z");
    resolves("http://h/a", "http://k/b", "http://k/b");

    struct evkeyvalq hs;
    hs.tqh_first = NULL;
    hs.tqh_last = &hs.tqh_first;
    evhttp_add_header(&hs, "Link", "<http://h/last>; rel=\"last\"");
    evhttp_add_header(&hs, "link",
                      "</p?page=2>; title=\"a, b\"; rel=\"prev next\", </x>; rel=last");
    char *next = sl__http_link_next(&hs, "http://h/p?page=1");
    cr_assert_str_eq(next, "http://h/p?page=2");
    free(next);
    evhttp_clear_headers(&hs);
}
