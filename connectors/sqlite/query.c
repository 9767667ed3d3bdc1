/* The query of a sqlite_lookup, checked when the config loads: one SELECT with
 * :field.path parameters, each replaced by ?N for SQLite (N the parameter's number, a
 * path used twice being one parameter). A small scanner that knows SQL's string
 * literals, quoted identifiers and comments, so that a ':' inside them is left alone.
 * Whether the tables and columns exist is the database's to say, at the first lookup.
 * See lookup.h. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lookup.h"

/* The scan of one query. */
struct scan {
    const char *text;           /* the query (borrowed) */
    size_t i, n;                /* position / length */
    char *out;                  /* the SQL being written (owned) */
    size_t len, cap;            /* used / allocated bytes of out */
    struct sl__lookup_query *q; /* parameters found */
    bool first_word_seen;       /* the statement's first keyword was checked */
    bool ended;                 /* a ';' was seen */
    struct sl_error *err;       /* where an error goes */
};

/* Fills the error with the formatted message and the line:col (1-based) of byte `at`
 * in the text. Returns SL_ECONFIG. */
static int fail_at(struct scan *sc, size_t at, const char *fmt, ...) SL_PRINTF(3, 4);

static int fail_at(struct scan *sc, size_t at, const char *fmt, ...)
{
    int line = 1, col = 1;
    for (size_t k = 0; k < at && k < sc->n; k++) {
        if (sc->text[k] == '\n')
            line++, col = 1;
        else if (((unsigned char)sc->text[k] & 0xC0) != 0x80) /* count characters */
            col++;
    }
    va_list ap;
    va_start(ap, fmt);
    sl_error_setv(sc->err, SL_ECONFIG, fmt, ap);
    va_end(ap);
    if (sc->err) sc->err->line = line, sc->err->col = col;
    return SL_ECONFIG;
}

static int put(struct scan *sc, const char *s, size_t len)
{
    if (sc->len + len + 1 > sc->cap) {
        size_t cap = sc->cap ? sc->cap : 128;
        while (cap < sc->len + len + 1) cap *= 2;
        char *o = realloc(sc->out, cap);
        if (!o) return sl_error_set(sc->err, SL_ENOMEM, "out of memory");
        sc->out = o, sc->cap = cap;
    }
    memcpy(sc->out + sc->len, s, len);
    sc->len += len;
    sc->out[sc->len] = '\0';
    return 0;
}

/* Copies the quoted run from the opening `open` to its closing `close` (doubled closing
 * quotes inside are part of it). */
static int quoted(struct scan *sc, char close, const char *what)
{
    size_t start = sc->i, k = sc->i + 1;
    for (;;) {
        while (k < sc->n && sc->text[k] != close) k++;
        if (k >= sc->n) return fail_at(sc, start, "unterminated %s", what);
        if (close != ']' && k + 1 < sc->n && sc->text[k + 1] == close) {
            k += 2; /* '' inside '...' */
            continue;
        }
        break;
    }
    sc->i = k + 1;
    return put(sc, sc->text + start, sc->i - start);
}

/* Copies a comment: `--` to the end of the line, or a block. */
static int comment(struct scan *sc)
{
    size_t start = sc->i;
    if (sc->text[sc->i] == '-') {
        const char *nl = memchr(sc->text + sc->i, '\n', sc->n - sc->i);
        sc->i = nl ? (size_t)(nl - sc->text) : sc->n;
    } else {
        const char *end = strstr(sc->text + sc->i + 2, "*/");
        if (!end) return fail_at(sc, start, "unterminated comment");
        sc->i = (size_t)(end - sc->text) + 2;
    }
    return put(sc, sc->text + start, sc->i - start);
}

static bool ident_start(char c)
{
    return isalpha((unsigned char)c) || c == '_' || (unsigned char)c >= 0x80;
}

static bool ident_char(char c)
{
    return ident_start(c) || isdigit((unsigned char)c) || c == '$';
}

/* The number of parameter `path` (`len` bytes), added when new; <= 0: an error code. */
static int param_number(struct scan *sc, const char *path, size_t len)
{
    struct sl__lookup_query *q = sc->q;
    for (size_t k = 0; k < q->nparams; k++)
        if (strlen(q->params[k]) == len && memcmp(q->params[k], path, len) == 0) return (int)k + 1;
    char **ps = realloc(q->params, (q->nparams + 1) * sizeof *ps);
    if (!ps) return sl_error_set(sc->err, SL_ENOMEM, "out of memory");
    q->params = ps;
    if (!(ps[q->nparams] = strndup(path, len)))
        return sl_error_set(sc->err, SL_ENOMEM, "out of memory");
    return (int)++q->nparams;
}

/* A parameter: ':' then a field path (names joined by '.', array indexes [N]). */
static int parameter(struct scan *sc)
{
    size_t start = ++sc->i, k = start;
    if (k >= sc->n || !ident_start(sc->text[k]))
        return fail_at(sc, start - 1, "':' starts a parameter, a field path: ':user_id'");
    const char *t = sc->text;
    for (;;) {
        while (k < sc->n && (ident_start(t[k]) || isdigit((unsigned char)t[k]))) k++;
        if (k + 1 < sc->n && t[k] == '.' && ident_start(t[k + 1])) {
            k++; /* a member: user.name */
            continue;
        }
        if (k < sc->n && t[k] == '[') { /* an index: tags[0] */
            size_t d = k + 1;
            while (d < sc->n && isdigit((unsigned char)t[d])) d++;
            if (d > k + 1 && d < sc->n && t[d] == ']') {
                k = d + 1;
                continue;
            }
        }
        break;
    }
    int num = param_number(sc, sc->text + start, k - start);
    if (num < 0) return num;
    char buf[16];
    int len = snprintf(buf, sizeof buf, "?%d", num);
    sc->i = k;
    return put(sc, buf, (size_t)len);
}

/* A word: the first one must be SELECT or WITH. */
static int word(struct scan *sc)
{
    size_t start = sc->i;
    while (sc->i < sc->n && ident_char(sc->text[sc->i])) sc->i++;
    size_t len = sc->i - start;
    if (!sc->first_word_seen) {
        sc->first_word_seen = true;
        bool ok = (len == 6 && strncasecmp(sc->text + start, "select", 6) == 0) ||
                  (len == 4 && strncasecmp(sc->text + start, "with", 4) == 0);
        if (!ok) {
            char found[40];
            snprintf(found, sizeof found, "%.*s", (int)(len < 32 ? len : 32), sc->text + start);
            return fail_at(sc, start, "a lookup is one SELECT; found '%s'", found);
        }
    }
    return put(sc, sc->text + start, len);
}

/* One token (or a run of blanks) from sc->i. */
static int token(struct scan *sc)
{
    const char *t = sc->text + sc->i;
    char c = t[0], d = sc->i + 1 < sc->n ? t[1] : '\0';
    if (isspace((unsigned char)c) || (c == '-' && d == '-') || (c == '/' && d == '*')) {
        if (!isspace((unsigned char)c)) return comment(sc);
        sc->i++;
        return put(sc, t, 1);
    }
    if (sc->ended) return fail_at(sc, sc->i, "a lookup is one statement: text after ';'");
    if (!sc->first_word_seen && !ident_start(c))
        return fail_at(sc, sc->i, "a lookup is one SELECT; found '%c'", c);
    switch (c) {
    case '\'': return quoted(sc, '\'', "string literal");
    case '"': return quoted(sc, '"', "quoted name");
    case '`': return quoted(sc, '`', "quoted name");
    case '[': return quoted(sc, ']', "[quoted name]");
    case ';': sc->ended = true, sc->i++; return 0;
    case ':': return parameter(sc);
    case '?':
    case '@':
    case '$':
        return fail_at(sc, sc->i, "parameters are field paths written ':field' ('%c' found)", c);
    default:
        if (ident_start(c) || isdigit((unsigned char)c)) return word(sc);
        sc->i++;
        return put(sc, t, 1);
    }
}

int sl__lookup_query_parse(struct sl__lookup_query *q, const char *text, struct sl_error *err)
{
    memset(q, 0, sizeof *q);
    struct scan sc = {.text = text, .n = strlen(text), .q = q, .err = err};
    int rc = put(&sc, "", 0);
    while (!rc && sc.i < sc.n) rc = token(&sc);
    if (!rc && !sc.first_word_seen) rc = fail_at(&sc, 0, "the query is empty");
    if (!rc && q->nparams == 0)
        rc = fail_at(&sc, 0,
                     "the query has no parameter: name the event's fields it looks up with "
                     "':field' (WHERE id = :user_id)");
    q->sql = sc.out;
    if (rc) sl__lookup_query_free(q);
    return rc;
}

void sl__lookup_query_free(struct sl__lookup_query *q)
{
    for (size_t k = 0; k < q->nparams; k++) free(q->params[k]);
    free(q->params);
    free(q->sql);
    memset(q, 0, sizeof *q);
}
