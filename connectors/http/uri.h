/* http:// URIs split into what a request needs, for the HTTP connectors (connectors/http).
 * Reusable by any part of the folder: the sink's `uri` and `dead_letter_uri`, a client's
 * endpoint. https:// is refused: TLS is left to a reverse proxy or a sidecar. */
#ifndef SLUICE_CONNECTORS_HTTP_URI_H
#define SLUICE_CONNECTORS_HTTP_URI_H

#include <stddef.h>
#include <stdint.h>

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

#endif
