/* The pipeline page: GET / and its files under /ui/, on the metrics server. The files
 * are compiled into the program (cli_assets), so the page works with no network and no
 * install step, and the version served is always the binary's. The page itself holds no
 * data: it reads /api/graph, /api/stats and /api/tap from the browser.
 *
 * Caching: every reply carries the file's entity tag and `Cache-Control: no-cache`, so a
 * browser asks again on each load and gets a bodiless 304 while the binary is the same.
 * The HTML sets a Content-Security-Policy that allows the page's own files and requests
 * only: no inline script, nothing from elsewhere, no framing. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "cli.h"

static const char csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
                          "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
                          "form-action 'none'; frame-ancestors 'none'";

/* Does the If-None-Match header `inm` (a list of tags, or "*") name `etag`? */
static bool etag_matches(const char *inm, const char *etag)
{
    if (strcmp(inm, "*") == 0) return true;
    size_t n = strlen(etag);
    for (const char *p = strstr(inm, etag); p; p = strstr(p + 1, etag)) {
        bool starts = p == inm || p[-1] == ' ' || p[-1] == ',' || p[-1] == '/';
        bool ends = p[n] == '\0' || p[n] == ',' || p[n] == ' ';
        if (starts && ends) return true; /* W/"x" is weak, and as good for a GET */
    }
    return false;
}

static void on_asset(struct evhttp_request *req, void *arg)
{
    const struct cli_asset *a = arg;
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    const char *inm = evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
    evhttp_add_header(out, "ETag", a->etag);
    evhttp_add_header(out, "Cache-Control", "no-cache");
    if (inm && etag_matches(inm, a->etag)) {
        evhttp_send_reply(req, 304, "Not Modified", NULL);
        return;
    }
    evhttp_add_header(out, "Content-Type", a->type);
    evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
    if (strncmp(a->type, "text/html", 9) == 0) {
        evhttp_add_header(out, "Content-Security-Policy", csp);
        evhttp_add_header(out, "X-Frame-Options", "DENY");
        evhttp_add_header(out, "Referrer-Policy", "no-referrer");
    }
    struct evbuffer *body = evbuffer_new();
    if (!body || evbuffer_add_reference(body, a->data, a->size, NULL, NULL)) {
        if (body) evbuffer_free(body);
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    cli_send(req, 200, "OK", body);
    evbuffer_free(body);
}

void cli_page_register(struct evhttp *http)
{
    for (const struct cli_asset *a = cli_assets; a->path; a++)
        evhttp_set_cb(http, a->path, on_asset, (void *)a);
}
