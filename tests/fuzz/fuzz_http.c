/* libFuzzer target for the parsers of connectors/http (issue 16). The first byte chooses
 * what the rest (an exact-size copy, so that ASan sees any read past its end) is fed to:
 *   0. sl__http_decode in each encoding (the http_server source's bodies): 0 or
 *      SL_EPARSE, every span inside the body, the spans in order and not overlapping,
 *      an ndjson span valid JSON, nothing kept on a refusal;
 *   1. sl__http_json_array_each (the http_client's records), on the text only when
 *      sl_json_validate accepts it (its contract): elements in order inside the text,
 *      each one valid JSON;
 *   2. sl__http_uri_parse (the sink's and the client's URIs): 0 with a host, a port and a
 *      target starting with '/', or an error with a reason;
 *   3. sl__http_link_next on the input as a Link header, resolved against a base URL,
 *      and sl__http_uri_with_param / sl__http_uri_resolve with the input as the value and
 *      the reference: any answer is a NUL-terminated string or NULL;
 *   4. sl__http_gunzip with a small limit: 0 with at most the limit, or an error, and
 *      nothing leaked.
 *
 *   CC=clang meson setup build-fuzz -Dfuzz=true -Db_lundef=false
 *   ninja -C build-fuzz tests/fuzz/fuzz_http
 *   build-fuzz/tests/fuzz/fuzz_http -max_total_time=60 new-corpus tests/fuzz/corpus/http */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h> /* TAILQ_INIT */

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sluice/error.h>
#include <sluice/json.h>

#include "../../connectors/http/gzip.h"
#include "../../connectors/http/json_array.h"
#include "../../connectors/http/server.h"
#include "../../connectors/http/uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_decode(const char *body, size_t len)
{
    for (int enc = SL__HTTP_NDJSON; enc <= SL__HTTP_TEXT; enc++) {
        struct sl__http_spans out = {0};
        char why[128];
        int rc = sl__http_decode((enum sl__http_encoding)enc, body, len, &out, why, sizeof why);
        if (rc != 0 && rc != SL_EPARSE && rc != SL_ENOMEM) __builtin_trap();
        if (rc && out.n) __builtin_trap(); /* a refused body keeps nothing */
        size_t end = 0;
        for (size_t i = 0; i < out.n; i++) {
            const struct sl__http_span *s = &out.v[i];
            if (s->off < end || (size_t)s->off + s->len > len) __builtin_trap();
            if (enc != SL__HTTP_TEXT && sl_json_validate(body + s->off, s->len, NULL))
                __builtin_trap(); /* a JSON event that is not JSON */
            end = (size_t)s->off + s->len;
        }
        free(out.v);
    }
}

struct walk {
    const char *json;
    size_t len, end;
};

static int take(void *arg, const char *el, size_t len)
{
    struct walk *w = arg;
    size_t off = (size_t)(el - w->json);
    if (el < w->json || off < w->end || off + len > w->len) __builtin_trap();
    if (sl_json_validate(el, len, NULL)) __builtin_trap();
    w->end = off + len;
    return 0;
}

static void check_array(const char *json, size_t len)
{
    if (sl_json_validate(json, len, NULL)) return;
    struct walk w = {json, len, 0};
    int rc = sl__http_json_array_each(json, len, take, &w);
    if (rc != 0 && rc != SL_EPARSE) __builtin_trap();
}

static void check_uri(const char *s, size_t len)
{
    struct sl__http_uri u;
    char why[128] = "";
    int rc = sl__http_uri_parse(s, len, &u, why, sizeof why);
    if (rc == 0 && (!u.host[0] || !u.port || !u.target || u.target[0] != '/')) __builtin_trap();
    if (rc != 0 && !why[0]) __builtin_trap(); /* every refusal says why */
    sl__http_uri_clear(&u);
}

static void check_links(const char *s, size_t len)
{
    char *z = malloc(len + 1);
    if (!z) return;
    memcpy(z, s, len);
    z[len] = '\0';
    struct evkeyvalq headers;
    TAILQ_INIT(&headers);
    if (evhttp_add_header(&headers, "Link", z) == 0) {
        free(sl__http_link_next(&headers, "http://api.example/v1/items?page=2"));
        evhttp_clear_headers(&headers);
    }
    free(sl__http_uri_with_param("http://h/p?a=1&cursor=x#f", "cursor", z));
    free(sl__http_uri_resolve("http://h:8080/a/b?c=d", z));
    free(z);
}

static void check_gunzip(const char *s, size_t len)
{
    char *out = NULL;
    size_t n = 0;
    if (sl__http_gunzip(s, len, 4096, &out, &n) == 0 && n > 4096) __builtin_trap();
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    size_t len = size - 1;
    char *in = malloc(len ? len : 1); /* exact size: a read past the end is ASan's */
    if (!in) return 0;
    memcpy(in, data + 1, len);
    switch (data[0] % 5) {
    case 0: check_decode(in, len); break;
    case 1: check_array(in, len); break;
    case 2: check_uri(in, len); break;
    case 3: check_links(in, len); break;
    default: check_gunzip(in, len); break;
    }
    free(in);
    return 0;
}
