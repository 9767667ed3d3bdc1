/* The `http` sink's configuration, checked when the config loads (init): the URI template
 * (a constant one parsed whole, a varying one's literal start), the dead-letter URI, the
 * headers, and the runtime's retry keys the sink's requests follow too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sink.h"

/* Header names are tokens; values may not break the header block. */
static bool header_ok(const char *name, const char *value)
{
    if (!*name) return false;
    for (const char *p = name; *p; p++)
        if (*p <= ' ' || *p >= 127 || strchr("()<>@,;:\\\"/[]?={}", *p)) return false;
    for (const char *p = value; *p; p++)
        if (*p == '\r' || *p == '\n') return false;
    return true;
}

static int read_headers(struct sl__http_sink *k, struct sl_error *err)
{
    size_t n = k->headers ? sl_config_len(k->headers) : 0;
    if (!n) return 0;
    k->hdr_names = calloc(n, sizeof *k->hdr_names);
    k->hdr_values = calloc(n, sizeof *k->hdr_values);
    if (!k->hdr_names || !k->hdr_values) return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *name = NULL;
        const struct sl_config *v = sl_config_at(k->headers, i, &name);
        const char *value = sl_config_str(v);
        if (!name || !value || !header_ok(name, value))
            return sl_config_error(v, err, SL_ECONFIG,
                                   "header '%s': a token name and a one-line text value",
                                   name ? name : "");
        if (!strcasecmp(name, "content-length") || !strcasecmp(name, "content-encoding") ||
            !strcasecmp(name, "transfer-encoding"))
            return sl_config_error(sl_config_key_at(k->headers, i), err, SL_ECONFIG,
                                   "header '%s' is set by the sink", name);
        k->hdr_names[k->nhdrs] = name;
        k->hdr_values[k->nhdrs++] = value;
    }
    return 0;
}

/* retry.initial, retry.max and retry.attempts as the runtime reads them (defaults 100ms,
 * 30s, 0): a failed request's own attempts follow the same policy. */
static void read_retry(struct sl__http_sink *k, const struct sl_config *cfg)
{
    long long ms;
    const struct sl_config *n = sl_config_get(cfg, "retry.initial");
    k->retry_initial_ms =
        n && sl_config_str(n) && !sl_parse_duration(sl_config_str(n), &ms) && ms > 0 ? ms : 100;
    n = sl_config_get(cfg, "retry.max");
    k->retry_max_ms =
        n && sl_config_str(n) && !sl_parse_duration(sl_config_str(n), &ms) ? ms : 30000;
    if (k->retry_max_ms < k->retry_initial_ms) k->retry_max_ms = k->retry_initial_ms;
    n = sl_config_get(cfg, "retry.attempts");
    const char *s = n ? sl_config_str(n) : NULL;
    k->retry_attempts = 0; /* the runtime checked it is a number >= 0 */
    for (; s && *s >= '0' && *s <= '9' && k->retry_attempts < 1000000000; s++)
        k->retry_attempts = k->retry_attempts * 10 + (*s - '0');
}

/* The first piece of a URI template: its literal start must begin an http:// URI. */
static int first_piece(void *arg, enum sl_template_piece kind, const char *s, size_t len)
{
    const char *want = "http://";
    size_t n = len < 7 ? len : 7;
    *(bool *)arg = kind != SL_TEMPLATE_TEXT || strncasecmp(s, want, n) == 0;
    return 1; /* one piece is enough */
}

static int check_uris(struct sl__http_sink *k, const struct sl_config *cfg, struct sl_error *err)
{
    char why[200];
    k->uri_constant = sl_template_is_constant(k->uri);
    bool starts_well = true;
    if (!k->uri_constant) sl_template_each(k->uri, NULL, first_piece, &starts_well);
    if (!starts_well)
        return sl_config_error(sl_config_get(cfg, "uri"), err, SL_ECONFIG,
                               "uri: expected an http:// URI (https: TLS is left to a proxy)");
    if (k->uri_constant) {
        bool nomem;
        size_t n = sl__http_render_uri(k, NULL, &nomem);
        struct sl__http_uri u;
        if (n == SIZE_MAX) return sl_error_set(err, SL_ENOMEM, "out of memory");
        k->const_len = n;
        if (sl__http_uri_parse(k->scratch, n, &u, why, sizeof why))
            return sl_config_error(sl_config_get(cfg, "uri"), err, SL_ECONFIG, "uri: %s", why);
        sl__http_uri_clear(&u);
    }
    if (k->on_error == SL__HTTP_DEAD_LETTER && !k->dead_letter_uri)
        return sl_config_error(sl_config_get(cfg, "on_error"), err, SL_ECONFIG,
                               "on_error: dead_letter needs dead_letter_uri");
    const char *dl = k->dead_letter_uri;
    if (dl && sl__http_uri_parse(dl, strlen(dl), &k->dl, why, sizeof why))
        return sl_config_error(sl_config_get(cfg, "dead_letter_uri"), err, SL_ECONFIG,
                               "dead_letter_uri: %s", why);
    return 0;
}

int sl__http_sink_config(struct sl__http_sink *k, const struct sl_config *cfg, struct sl_error *err)
{
    if (!sl_config_get(cfg, "batch.timeout")) k->timeout_batch_ms = -1; /* the pipeline's */
    read_retry(k, cfg);
    int rc = check_uris(k, cfg, err);
    if (!rc) rc = read_headers(k, err);
    return rc;
}
