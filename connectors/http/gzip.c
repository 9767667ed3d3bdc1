/* gzip bodies (gzip.h): zlib's deflate with windowBits 15 + 16, which writes the gzip
 * header and trailer (CRC-32, length) around the raw deflate stream. */
#include <stdlib.h>

#include <sluice/error.h>
#include <zlib.h>

#include "gzip.h"

int sl__http_gzip(const char *in, size_t len, int level, char **out, size_t *out_len)
{
    z_stream z = {0};
    if (level < 1 || level > 9) level = Z_DEFAULT_COMPRESSION;
    if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return SL_ENOMEM;
    /* deflateBound covers the zlib wrapper; the gzip one is 18 bytes, 12 more. */
    size_t cap = deflateBound(&z, (uLong)len) + 32;
    char *buf = malloc(cap);
    if (!buf) {
        deflateEnd(&z);
        return SL_ENOMEM;
    }
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)buf;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH); /* the output has room for all of it: one call */
    size_t n = cap - z.avail_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(buf);
        return SL_EIO;
    }
    *out = buf;
    *out_len = n;
    return 0;
}

/* Grows *buf to hold at least `need` bytes plus a NUL, within `max`. */
static int grow(char **buf, size_t *cap, size_t need, size_t max)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 4096;
    while (c < need) c *= 2;
    if (c > max + 1) c = max + 1;
    char *nb = realloc(*buf, c + 1);
    if (!nb) return SL_ENOMEM;
    *buf = nb;
    *cap = c;
    return 0;
}

int sl__http_gunzip(const char *in, size_t len, size_t max, char **out, size_t *out_len)
{
    z_stream z = {0};
    if (inflateInit2(&z, 15 + 16) != Z_OK) return SL_ENOMEM;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    int rc = Z_OK, err = 0;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    while (rc != Z_STREAM_END && !err) {
        if (n == cap && n > max)
            err = SL_ELIMIT;
        else if (grow(&buf, &cap, n + 65536 > max + 1 ? max + 1 : n + 65536, max))
            err = SL_ENOMEM;
        if (err) break;
        z.next_out = (Bytef *)buf + n;
        z.avail_out = (uInt)(cap - n);
        rc = inflate(&z, Z_NO_FLUSH);
        n = cap - z.avail_out;
        if (rc != Z_OK && rc != Z_STREAM_END)
            err = rc == Z_MEM_ERROR ? SL_ENOMEM : SL_EINVAL;
        else if (rc == Z_OK && z.avail_in == 0 && z.avail_out > 0)
            err = SL_EINVAL; /* cut */
        if (n > max) err = SL_ELIMIT;
    }
    inflateEnd(&z);
    if (err) {
        free(buf);
        return err;
    }
    if (!buf && !(buf = malloc(1))) return SL_ENOMEM;
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return 0;
}
