/* The `http_client` source: reads a JSON API page by page (or polls it), or crawls a
 * list of URLs, on libevent's evhttp client on the pipeline's loop.
 *
 * Pages (`uri`): one request at a time (page numbers: up to max_in_flight, read ahead,
 * client_ahead.c). Each poll() with no page in hand asks for the next one and answers
 * SL_PENDING; the page comes back as batches (client_page.c), which the next polls
 * return. Only poll() starts a request, and the runtime polls a source
 * only while its outputs have room, so no page is read while they are full
 * (backpressure). The next page is given by the response's Link header (rel="next"), a
 * cursor in the response sent back as a query parameter, or a page number; after the
 * last page the source ends, or with `interval` asks for the last page again after that
 * long (new records are delivered, those already delivered skipped). The position is
 * checkpointed once the pages before it are acknowledged (client_checkpoint.c), so a
 * restart resumes there.
 *
 * Crawler (`urls`, `urls_file`): client_crawl.c.
 *
 * Requests (client_request.c): evhttp connections, kept alive, a non-blocking resolver,
 * the rate limit, retries with backoff on connection errors, timeouts, 408, 429 and 5xx
 * (Retry-After honoured); a final failure goes to on_error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/builtins.h>
#include <sluice/config.h>
#include <sluice/sqlite.h>

#include "client.h"
#include "uri.h"

/* ---- lifetime ---------------------------------------------------------------------------- */

/* Checks that `url` is an http:// URL; the error points at `node`. */
static int check_url(const struct sl_config *node, const char *url, struct sl_error *err)
{
    struct sl__http_uri u;
    char why[256];
    int rc = sl__http_uri_parse(url, strlen(url), &u, why, sizeof why);
    sl__http_uri_clear(&u);
    if (rc == SL_EINVAL) return sl_config_error(node, err, SL_ECONFIG, "%s", why);
    return rc ? sl_error_set(err, rc, "out of memory") : 0;
}

/* The pagination options: which kind, and that they go together. */
static int check_paging(struct sl__hcli *c, const struct sl_config *cfg, struct sl_error *err)
{
    const struct sl_config *pg = sl_config_get(cfg, "pagination");
    bool any = c->paging_next || c->paging_field || c->paging_param;
    if (c->crawler && (any || c->interval_ms))
        return sl_config_error(pg ? pg : sl_config_get(cfg, "interval"), err, SL_ECONFIG,
                               "'pagination' and 'interval' go with 'uri', not with a URL list");
    if (c->paging_next && (c->paging_field || c->paging_param))
        return sl_config_error(pg, err, SL_ECONFIG,
                               "pagination: 'next: link_header' takes no 'field' or 'param'");
    if (c->paging_field && !c->paging_param)
        return sl_config_error(pg, err, SL_ECONFIG,
                               "pagination: 'field' needs 'param', the query parameter the "
                               "cursor is sent back as");
    if (c->paging_field && c->decode != HCLI_JSON)
        return sl_config_error(pg, err, SL_ECONFIG,
                               "pagination: a cursor 'field' is read from a JSON response "
                               "(decode: json)");
    if ((c->paging_field && !*c->paging_field) || (c->paging_param && !*c->paging_param))
        return sl_config_error(pg, err, SL_ECONFIG,
                               "pagination: 'field' and 'param' may not be "
                               "empty");
    c->paging = c->paging_next    ? HCLI_LINK
                : c->paging_field ? HCLI_CURSOR
                : c->paging_param ? HCLI_PAGE
                                  : HCLI_NONE;
    return 0;
}

/* `headers`: a mapping of names to text. */
static int check_headers(const struct sl__hcli *c, struct sl_error *err)
{
    for (size_t i = 0; c->headers && i < sl_config_len(c->headers); i++) {
        const char *key = NULL;
        const struct sl_config *v = sl_config_at(c->headers, i, &key);
        if (sl_config_kind(v) != SL_CFG_SCALAR || !key || !*key || strpbrk(key, ":\r\n") ||
            strpbrk(sl_config_str(v), "\r\n"))
            return sl_config_error(v, err, SL_ECONFIG,
                                   "headers: each entry is 'Name: text' on one line");
    }
    return 0;
}

static int hcli_init(struct sl_stage *stage, const struct sl_config *cfg, struct sl_error *err)
{
    struct sl__hcli *c = sl_stage_state(stage);
    c->stage = stage;
    c->crawler = c->urls.n || c->urls_file;
    if ((c->uri != NULL) + (c->urls.n > 0) + (c->urls_file != NULL) != 1)
        return sl_config_error(cfg, err, SL_ECONFIG,
                               "give one of 'uri' (an API), 'urls' or 'urls_file' (a crawl)");
    int rc = check_paging(c, cfg, err);
    if (!rc && c->records_path && c->decode != HCLI_JSON)
        rc = sl_config_error(sl_config_get(cfg, "records_path"), err, SL_ECONFIG,
                             "'records_path' is a path in a JSON response (decode: json)");
    if (!rc) rc = check_headers(c, err);
    if (!rc && c->uri) rc = check_url(sl_config_get(cfg, "uri"), c->uri, err);
    for (size_t i = 0; !rc && i < c->urls.n; i++)
        rc = check_url(sl_config_get(cfg, "urls"), c->urls.items[i], err);
    if (rc) return rc;
    /* For `validate`: a crawl's fields; pages are raw records (a parser names fields). */
    static const char *const crawl_fields[] = {"url", "status", "headers", "body", "error"};
    if (sl_stage_declare_fields(stage, SL_FIELDS_ONLY, c->crawler ? crawl_fields : NULL,
                                c->crawler ? 5 : 0))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    c->n_requests =
        sl_stage_counter(stage, "http_requests", "HTTP requests sent, retries included");
    c->n_retries = sl_stage_counter(stage, "http_retries", "requests retried after a failure");
    c->n_failures = sl_stage_counter(stage, "http_failures", "URLs that failed after retries");
    c->n_pages = sl_stage_counter(stage, "http_pages", "2xx responses read");
    c->n_malformed =
        sl_stage_counter(stage, "http_malformed", "pages and records that could not be decoded");
    return 0;
}

/* interval is over: ask for the last page again. */
static void on_wait_timer(struct sl_stage *stage, void *arg)
{
    (void)stage;
    struct sl__hcli *c = arg;
    if (!c->ended) sl__hcli_pages_begin(c);
}

/* The checkpoint's pool: `checkpoint`, default <data_dir>/checkpoints.db, "" none. */
static int open_checkpoint(struct sl__hcli *c, struct sl_error *err)
{
    if (c->crawler || c->paging == HCLI_NONE || (c->checkpoint && !*c->checkpoint)) return 0;
    const char *dir = sl_stage_data_dir(c->stage);
    size_t n = strlen(dir) + sizeof "/checkpoints.db";
    if (c->checkpoint)
        c->ckpt_path = strdup(c->checkpoint);
    else if ((c->ckpt_path = malloc(n)))
        snprintf(c->ckpt_path, n, "%s/checkpoints.db", dir);
    if (!c->ckpt_path) return sl_error_set(err, SL_ENOMEM, "out of memory");
    if (!(c->ckdb = sl_sqlite_pool(c->stage, c->ckpt_path, NULL, err))) return err->code;
    return 0;
}

static int hcli_start(struct sl_stage *stage, struct sl_error *err)
{
    struct sl__hcli *c = sl_stage_state(stage);
    int rc = sl__hcli_crawl_load(c, err);
    if (!rc) rc = sl__hcli_slots_start(c, err);
    if (!rc && !(c->wait_timer = sl_timer_new(stage, on_wait_timer, c)))
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
    if (!rc) rc = open_checkpoint(c, err);
    if (!rc && !c->crawler && sl__hcli_load(c)) rc = sl_error_set(err, SL_ENOMEM, "out of memory");
    return rc;
}

/* The oldest decoded batch, recorded as in flight. */
static enum sl_poll pop_ready(struct sl__hcli *c, struct sl_batch **out)
{
    struct sl__hcli_ready r = c->ready[0];
    memmove(c->ready, c->ready + 1, --c->nready * sizeof *c->ready);
    if (sl__hcli_track(c, r.b, &r.at)) {
        sl__hcli_pos_free(&r.at);
        sl_batch_unref(r.b);
        sl_stage_error(c->stage, SL_ENOMEM, "out of memory");
        return SL_ERROR;
    }
    *out = r.b;
    return SL_READY;
}

static enum sl_poll hcli_poll(struct sl_stage *stage, struct sl_batch **out)
{
    struct sl__hcli *c = sl_stage_state(stage);
    if (c->crawler) return sl__hcli_crawl_poll(c, out);
    if (c->nready) return pop_ready(c, out);
    if (c->phase == HCLI_END) return SL_DONE;
    if (c->phase != HCLI_IDLE) return SL_PENDING;
    if (c->paging == HCLI_PAGE) return sl__hcli_ahead_poll(c);
    c->phase = HCLI_FETCHING;
    if (sl__hcli_fetch(&c->slots[0], sl__hcli_page_url(c), 0)) {
        sl_stage_error(stage, SL_ENOMEM, "out of memory");
        return SL_ERROR;
    }
    return SL_PENDING;
}

/* Drops the decoded batches poll() did not return (the next run reads them again). */
static void drop_ready(struct sl__hcli *c)
{
    for (size_t i = 0; i < c->nready; i++) {
        sl_batch_unref(c->ready[i].b);
        sl__hcli_pos_free(&c->ready[i].at);
    }
    c->nready = 0;
    sl_batch_unref(c->out);
    c->out = NULL;
}

/* The source has ended (it answered SL_DONE, or the pipeline stops): requests still out
 * are dropped unanswered (the next run asks again), and once the last batch in flight is
 * acknowledged (now, or in ack()) the checkpoint is saved; the run waits for that. */
static int hcli_flush(struct sl_stage *stage, struct sl_emit *out, bool end)
{
    (void)out;
    struct sl__hcli *c = sl_stage_state(stage);
    if (!end) return 0;
    c->ended = true;
    sl_timer_stop(c->wait_timer);
    for (size_t i = 0; i < c->nslots; i++) sl_timer_stop(c->slots[i].timer);
    drop_ready(c);
    sl__hcli_save(c);
    return 0;
}

static void hcli_close(struct sl_stage *stage)
{
    struct sl__hcli *c = sl_stage_state(stage);
    sl_timer_free(c->wait_timer);
    sl__hcli_slots_free(c);
    drop_ready(c);
    free(c->ready);
    sl__hcli_flights_free(c);
    sl__hcli_pos_free(&c->at);
    sl__hcli_pos_free(&c->acked);
    for (size_t i = 0; i < c->nlist; i++) free(c->list[i]);
    free(c->list);
    free(c->ckpt_path);
}

/* ---- the type ---------------------------------------------------------------------------- */

#define OPT(field) offsetof(struct sl__hcli, field)

static const struct sl_option http_client_options[] = {
    {"uri", SL_OPT_STRING, NULL, 0, OPT(uri),
     "the http:// URL of the API to read (or give 'urls' / 'urls_file' to crawl)"},
    {"urls", SL_OPT_LIST, NULL, 0, OPT(urls),
     "crawler: the URLs to fetch, each response one event (url, status, headers, body)"},
    {"urls_file", SL_OPT_STRING, NULL, 0, OPT(urls_file),
     "crawler: a file of URLs, one a line (blank lines and # comments skipped)"},
    {"interval", SL_OPT_DURATION, "0", 0, OPT(interval_ms),
     "uri: after the last page, ask for it again after this long (0: read to the end and "
     "finish)",
     NULL, "0.."},
    {"pagination.next", SL_OPT_ENUM, "none", 0, OPT(paging_next),
     "link_header: the next page is the Link header's rel=\"next\" URL (RFC 8288)",
     "none|link_header"},
    {"pagination.field", SL_OPT_STRING, NULL, 0, OPT(paging_field),
     "the dotted path of the next cursor in a JSON response (with 'param'); none, null or "
     "\"\": the last page"},
    {"pagination.param", SL_OPT_STRING, NULL, 0, OPT(paging_param),
     "the query parameter the cursor is sent as; without 'field', a page number counted up "
     "from 'start' until an empty page"},
    {"pagination.start", SL_OPT_INT, "1", 0, OPT(page_start),
     "the first page number (pagination by 'param' alone)"},
    {"max_in_flight", SL_OPT_INT, "4", 0, OPT(max_in_flight),
     "requests out at once: a crawl's URLs, or page numbers read ahead (pages by cursor or Link "
     "header are read one after the other)",
     NULL, "1..1024"},
    {"rate_limit", SL_OPT_FLOAT, "0", 0, OPT(rate_limit),
     "requests per second at most, retries included (0: no limit)", NULL, "0.."},
    {"decode", SL_OPT_ENUM, "json", 0, OPT(decode),
     "json: the response is JSON (records at 'records_path'); ndjson: one record a line",
     "json|ndjson"},
    {"records_path", SL_OPT_STRING, NULL, 0, OPT(records_path),
     "the dotted path of the array of records in a JSON response (default: the response, an "
     "array of records or one object)"},
    {"headers", SL_OPT_MAP, NULL, 0, OPT(headers),
     "request headers, name: text (Authorization: \"Bearer ${TOKEN}\")"},
    {"response_headers", SL_OPT_LIST, "content-type", 0, OPT(response_headers),
     "crawler: the response headers each event keeps in field 'headers'"},
    {"timeout", SL_OPT_DURATION, "30s", 0, OPT(timeout_ms),
     "a request fails (and is retried) when its connection is idle this long", NULL, "1ms.."},
    {"max_body_size", SL_OPT_SIZE, "16MiB", 0, OPT(max_body),
     "a larger response body is a failure (not retried)", NULL, "1.."},
    {"retry.initial", SL_OPT_DURATION, "100ms", 0, OPT(retry_initial_ms),
     "the first retry's delay ceiling (full jitter)", NULL, "1ms.."},
    {"retry.max", SL_OPT_DURATION, "30s", 0, OPT(retry_max_ms),
     "the cap of a retry's delay ceiling", NULL, "1ms.."},
    {"retry.attempts", SL_OPT_INT, "5", 0, OPT(retry_attempts),
     "retries of a request before it fails for good (0: no limit)", NULL, "0.."},
    {"on_error", SL_OPT_ENUM, "drop", 0, OPT(on_error),
     "a URL that fails for good, a page or line that is not JSON: drop (counted as errors), "
     "emit (an event with field 'error') or fail (stop the run)",
     "drop|emit|fail"},
    {"checkpoint", SL_OPT_STRING, NULL, 0, OPT(checkpoint),
     "pages: the checkpoint database (default <data_dir>/checkpoints.db; \"\": none)"},
    {0},
};

const struct sl_stage_type sl_stage_http_client = {
    .abi = SL_STAGE_ABI,
    .name = "http_client",
    .kind = SL_SOURCE,
    .doc = "reads a JSON API page by page (link header, cursor or page number), or crawls URLs",
    .state_size = sizeof(struct sl__hcli),
    .options = http_client_options,
    .init = hcli_init,
    .start = hcli_start,
    .poll = hcli_poll,
    .ack = sl__hcli_ack,
    .flush = hcli_flush,
    .close = hcli_close,
};
