/* Helpers the HTTP connectors share (connectors/http/): "host:port" addresses and a
 * comparison of secrets in constant time. Internal to the folder (sl__http_ prefix). */
#ifndef SLUICE_HTTP_COMMON_H
#define SLUICE_HTTP_COMMON_H

#include <stdbool.h>
#include <stddef.h>

struct sockaddr;

/* Splits `addr` (borrowed: "host:port", "[v6]:port" or ":port" for every interface) into
 * `host` (borrowed, `size` bytes, NUL-terminated; "" for ":port") and `*port` (0..65535).
 * Returns 0, or -1 when `addr` is not of that form or the host does not fit. */
int sl__http_split_addr(const char *addr, char *host, size_t size, int *port);

/* True when the `alen` bytes at `a` equal the `blen` bytes at `b` (both borrowed). The
 * time taken depends on `alen` and `blen` only, never on where the bytes differ: for
 * tokens, so that a client cannot find a secret byte by byte from the answer times. */
bool sl__http_secret_equal(const char *a, size_t alen, const char *b, size_t blen);

/* Writes "ip:port" ("[v6]:port") of `sa` (borrowed) into `out` (borrowed, `size`
 * bytes, NUL-terminated; "?" for an unknown family). Returns `out`. */
const char *sl__http_format_addr(const struct sockaddr *sa, char *out, size_t size);

#endif
