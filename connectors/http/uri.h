/* URIs for the HTTP connectors (connectors/http): an http:// URI split into what a request
 * needs (the sink's `uri` and `dead_letter_uri`, the client source's pages and URLs), a
 * query parameter set to a value, and the target of a Link header (RFC 8288) resolved
 * against the URL of the response that carried it. https:// is refused: TLS is left to a
 * reverse proxy or a sidecar. Plain string work, no I/O; any thread. */
#ifndef SLUICE_CONNECTORS_HTTP_URI_H
#define SLUICE_CONNECTORS_HTTP_URI_H

#include <stddef.h>
#include <stdint.h>

struct evkeyvalq; /* libevent: a list of headers */

/* One parsed URI. */
struct sl__http_uri {
    char host[256];     /* host name or address, without IPv6 brackets */
    uint16_t port;      /* the port, 80 when the URI names none */
    char *target;       /* owned: path and query ("/a/b?c=d"), "/" when empty */
    char hostport[264]; /* the Host header value: host[:port] as the URI spelled it */
};

/* Parses `s` (borrowed, `len` bytes, not NUL-terminated necessarily) into `u` (borrowed;
 * its target owned afterwards: free with sl__http_uri_clear). Returns 0, or SL_EINVAL with
 * the reason in `why` (borrowed, `cap` bytes): not http://, no host, a bad port, https.
 * Any thread. */
int sl__http_uri_parse(const char *s, size_t len, struct sl__http_uri *u, char *why, size_t cap);

/* Frees what `u` owns; NULL and cleared URIs are no-ops. */
void sl__http_uri_clear(struct sl__http_uri *u);

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
