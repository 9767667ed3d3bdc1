/* URIs for the HTTP connectors (uri.h), on libevent's evhttp_uri_parse: an http:// URI
 * split into what a request needs (scheme, host with IPv6 brackets, port, path, query), a
 * query parameter set, and a Link header's next target resolved. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

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

/* printf into a new string (owned), NULL when out of memory. */
static char *format(const char *fmt, ...) SL_PRINTF(1, 2);

static char *format(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *out = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!out) return NULL;
    va_start(ap, fmt);
    vsnprintf(out, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return out;
}

/* True when the query item `item` (`len` bytes, "k=v" or "k") has key `name`. */
static bool item_is(const char *item, size_t len, const char *name)
{
    size_t n = strlen(name);
    return len >= n && !strncmp(item, name, n) && (len == n || item[n] == '=');
}

char *sl__http_uri_with_param(const char *url, const char *name, const char *value)
{
    size_t end = strcspn(url, "#"), q = strcspn(url, "?");
    char *enc = evhttp_uriencode(value, -1, 0);
    char *out = enc ? malloc(end + strlen(name) + strlen(enc) + 3) : NULL;
    if (!out) {
        free(enc);
        return NULL;
    }
    size_t o = q < end ? q : end;
    memcpy(out, url, o);
    char sep = '?';
    for (size_t i = q + 1; q < end && i <= end;) { /* keep the other items */
        size_t len = strcspn(url + i, "&#");
        if (i + len > end) len = end - i;
        if (len && !item_is(url + i, len, name)) {
            out[o++] = sep;
            memcpy(out + o, url + i, len);
            o += len;
            sep = '&';
        }
        i += len + 1;
    }
    o += (size_t)sprintf(out + o, "%c%s=%s", sep, name, enc);
    out[o] = '\0';
    free(enc);
    return out;
}

/* The end of "scheme://authority" in `url`, or 0 when it has no "://". */
static size_t authority_end(const char *url)
{
    const char *s = strstr(url, "://");
    if (!s || strcspn(url, "/?#") < (size_t)(s - url)) return 0;
    s += 3;
    return (size_t)(s - url) + strcspn(s, "/?#");
}

char *sl__http_uri_resolve(const char *base, const char *ref)
{
    size_t rlen = strcspn(ref, "#"), auth = authority_end(base);
    if (authority_end(ref)) return format("%.*s", (int)rlen, ref);
    if (!auth) return NULL;
    if (!strncmp(ref, "//", 2)) {
        size_t colon = strcspn(base, ":");
        return format("%.*s:%.*s", (int)colon, base, (int)rlen, ref);
    }
    if (ref[0] == '/') return format("%.*s%.*s", (int)auth, base, (int)rlen, ref);
    size_t path_end = auth + strcspn(base + auth, "?#");
    if (ref[0] == '?') return format("%.*s%.*s", (int)path_end, base, (int)rlen, ref);
    size_t dir = path_end;
    while (dir > auth && base[dir - 1] != '/') dir--;
    if (dir == auth) return format("%.*s/%.*s", (int)auth, base, (int)rlen, ref);
    return format("%.*s%.*s", (int)dir, base, (int)rlen, ref);
}

/* True when the rel parameter value `v` (`len` bytes, space-separated types) holds
 * "next" (case-insensitive). */
static bool rel_has_next(const char *v, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = 0;
        while (i + n < len && v[i + n] != ' ') n++;
        if (n == 4 && !strncasecmp(v + i, "next", 4)) return true;
        i += n + 1;
    }
    return false;
}

/* Reads the parameters after one link's "<target>" from `*p` up to the ',' that ends the
 * link (outside quotes); true when one is rel with "next" among its values. */
static bool params_say_next(const char **p)
{
    bool next = false;
    const char *s = *p;
    while (*s && *s != ',') {
        while (*s == ';' || *s == ' ' || *s == '\t') s++;
        size_t klen = strcspn(s, "=;,");
        bool rel = klen == 3 && !strncasecmp(s, "rel", 3);
        s += klen;
        if (*s != '=') continue;
        s++;
        const char *v = s;
        size_t vlen;
        if (*s == '"') {
            v = ++s;
            while (*s && *s != '"') s += (*s == '\\' && s[1]) ? 2 : 1;
            vlen = (size_t)(s - v);
            if (*s) s++;
        } else {
            vlen = strcspn(s, ";,");
            s += vlen;
        }
        next = next || (rel && rel_has_next(v, vlen));
    }
    *p = s;
    return next;
}

/* The rel="next" target in one Link header value, resolved; NULL when none. */
static char *next_in(const char *value, const char *base)
{
    const char *p = value;
    while (*p) {
        p += strspn(p, " \t,");
        if (*p != '<') {
            p += strcspn(p, ",");
            continue;
        }
        const char *target = ++p, *close = strchr(p, '>');
        if (!close) return NULL;
        p = close + 1;
        if (params_say_next(&p)) {
            char *ref = format("%.*s", (int)(close - target), target);
            char *url = ref ? sl__http_uri_resolve(base, ref) : NULL;
            free(ref);
            return url;
        }
    }
    return NULL;
}

char *sl__http_link_next(const struct evkeyvalq *headers, const char *base)
{
    for (const struct evkeyval *h = headers->tqh_first; h; h = h->next.tqe_next) {
        if (strcasecmp(h->key, "Link")) continue;
        char *url = next_in(h->value, base);
        if (url) return url;
    }
    return NULL;
}
