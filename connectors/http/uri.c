/* http:// URIs (uri.h), parsed by libevent's evhttp_uri_parse: scheme, host (IPv6 in
 * brackets), port, path, query. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/http.h>
#include <sluice/error.h>

#include "uri.h"

/* Fills `u` from the parsed `e`. Returns 0 or SL_EINVAL/SL_ENOMEM with `why`. */
static int fill(struct sl__http_uri *u, const struct evhttp_uri *e, char *why, size_t cap)
{
    const char *scheme = evhttp_uri_get_scheme(e);
    const char *host = evhttp_uri_get_host(e);
    if (scheme && strcasecmp(scheme, "https") == 0) {
        snprintf(why, cap, "https is not supported: TLS is left to a proxy (use http://)");
        return SL_EINVAL;
    }
    if (!scheme || strcasecmp(scheme, "http") != 0) {
        snprintf(why, cap, "expected an http:// URI");
        return SL_EINVAL;
    }
    if (!host || !*host || strlen(host) >= sizeof u->host) {
        snprintf(why, cap, "the URI has no host (or one over 255 bytes)");
        return SL_EINVAL;
    }
    int port = evhttp_uri_get_port(e);
    if (port == 0 || port > 65535) {
        snprintf(why, cap, "the URI's port is not in 1..65535");
        return SL_EINVAL;
    }
    size_t hl = strlen(host);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') /* IPv6: without brackets */
        snprintf(u->host, sizeof u->host, "%.*s", (int)(hl - 2), host + 1);
    else
        snprintf(u->host, sizeof u->host, "%s", host);
    u->port = port < 0 ? 80 : (uint16_t)port;
    bool v6 = strchr(u->host, ':') != NULL;
    if (port < 0)
        snprintf(u->hostport, sizeof u->hostport, v6 ? "[%s]" : "%s", u->host);
    else
        snprintf(u->hostport, sizeof u->hostport, v6 ? "[%s]:%d" : "%s:%d", u->host, port);
    const char *path = evhttp_uri_get_path(e), *query = evhttp_uri_get_query(e);
    if (!path || !*path) path = "/";
    size_t n = strlen(path) + (query ? strlen(query) + 1 : 0) + 1;
    if (!(u->target = malloc(n))) {
        snprintf(why, cap, "out of memory");
        return SL_ENOMEM;
    }
    snprintf(u->target, n, "%s%s%s", path, query ? "?" : "", query ? query : "");
    return 0;
}

int sl__http_uri_parse(const char *s, size_t len, struct sl__http_uri *u, char *why, size_t cap)
{
    *u = (struct sl__http_uri){0};
    char *z = malloc(len + 1);
    if (!z) {
        snprintf(why, cap, "out of memory");
        return SL_ENOMEM;
    }
    memcpy(z, s, len);
    z[len] = '\0';
    struct evhttp_uri *e = memchr(z, '\0', len) ? NULL : evhttp_uri_parse_with_flags(z, 0);
    free(z);
    if (!e) {
        snprintf(why, cap, "not a valid URI");
        return SL_EINVAL;
    }
    int rc = fill(u, e, why, cap);
    evhttp_uri_free(e);
    if (rc) sl__http_uri_clear(u);
    return rc;
}

void sl__http_uri_clear(struct sl__http_uri *u)
{
    if (!u) return;
    free(u->target);
    u->target = NULL;
}
