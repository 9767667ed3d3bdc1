/* gzip bodies (RFC 1952) with zlib, for the HTTP connectors (connectors/http): a sink's
 * `compression: gzip`, a server's Content-Encoding: gzip. */
#ifndef SLUICE_CONNECTORS_HTTP_GZIP_H
#define SLUICE_CONNECTORS_HTTP_GZIP_H

#include <stddef.h>

/* Compresses `len` bytes at `in` (borrowed) into one gzip member at level `level` (1..9;
 * out of range: zlib's default, 6). Returns 0 with *out (owned: free()) holding *out_len
 * bytes, or SL_ENOMEM / SL_EIO. Any thread: no shared state. */
int sl__http_gzip(const char *in, size_t len, int level, char **out, size_t *out_len);

/* Inflates one gzip member `in` (borrowed, `len` bytes) into at most `max` bytes. Returns
 * 0 with *out (owned: free(); NUL-terminated, not counted) and *out_len, SL_ELIMIT when the
 * result exceeds `max`, SL_EINVAL for data that is not gzip, or SL_ENOMEM. Any thread. */
int sl__http_gunzip(const char *in, size_t len, size_t max, char **out, size_t *out_len);

#endif
