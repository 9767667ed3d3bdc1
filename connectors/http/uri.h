/* URIs for the HTTP connectors: the pieces of an http:// URL, a query parameter set to a
 * value, and the target of a Link header (RFC 8288, formerly RFC 5988) resolved against
 * the URL of the response that carried it. Plain string work on evhttp's URI parser;
 * no I/O. Any thread. */
#ifndef SLUICE_CONNECTORS_HTTP_URI_H
#define SLUICE_CONNECTORS_HTTP_URI_H

#include <stdbool.h>

struct evkeyvalq; /* libevent: a list of headers */

/* Where a request for an http:// URL goes. */
struct sl__http_target {
    char *host;        /* the host, without brackets (owned) */
    int port;          /* the port (80 when the URL gives none) */
    char *path_query;  /* the path and query the request line carries, "/" at least (owned) */
    char *host_header; /* "host" or "host:port" for the Host header (owned) */
};

/* Splits `url` (borrowed) into `t` (filled; free with sl__http_target_free). Returns 0,
 * SL_EINVAL for a URL that does not parse, is not http:// or has no host (with the
 * reason in `why`, borrowed, `cap` bytes), or SL_ENOMEM. */
int sl__http_target_parse(const char *url, struct sl__http_target *t, char *why, unsigned cap);

/* Frees what `t` (borrowed) holds and zeroes it; a zeroed target is a no-op. */
void sl__http_target_free(struct sl__http_target *t);

/* A copy of `url` (borrowed) with query parameter `name` set to `value` (both borrowed;
 * `value` is percent-encoded): an existing `name=...` is replaced, else `name=value` is
 * appended. Returns the new URL (owned: free), or NULL when out of memory or when `url`
 * does not parse. */
char *sl__http_uri_with_param(const char *url, const char *name, const char *value);

/* The target of the first link with rel="next" among the `Link` headers of `headers`
 * (borrowed), resolved against `base` (borrowed: the URL of the response). Returns it
 * (owned: free), or NULL when there is none (or out of memory). */
char *sl__http_link_next(const struct evkeyvalq *headers, const char *base);

/* `ref` (borrowed: absolute, scheme-relative "//host/p", absolute-path "/p" or relative
 * "p?q") resolved against `base` (borrowed, an absolute URL), without a fragment. Returns
 * the URL (owned: free), or NULL when out of memory or `base` does not parse. */
char *sl__http_uri_resolve(const char *base, const char *ref);

#endif
