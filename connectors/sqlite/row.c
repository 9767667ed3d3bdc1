/* The values a lookup carries between threads, as plain memory: its key (the values of
 * the query's parameters, read from the event on the loop, bound on an executor thread)
 * and its row (copied out of the statement on the executor thread, set on the event
 * back on the loop). See lookup.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/json.h>

#include "internal.h"
#include "lookup.h"

/* ---- keys ---------------------------------------------------------------------------------- */

static int key_put(char **buf, size_t *len, size_t *cap, const void *p, size_t n)
{
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : 64;
        while (c < *len + n) c *= 2;
        char *b = realloc(*buf, c);
        if (!b) return SL_ENOMEM;
        *buf = b, *cap = c;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    return 0;
}

/* Appends tag, length and the `n` bytes at `p`. */
static int key_bytes(char **buf, size_t *len, size_t *cap, char tag, const void *p, size_t n)
{
    uint32_t n32 = (uint32_t)n;
    int rc = key_put(buf, len, cap, &tag, 1);
    if (!rc) rc = key_put(buf, len, cap, &n32, sizeof n32);
    return rc ? rc : key_put(buf, len, cap, p, n);
}

static int key_string(char **buf, size_t *len, size_t *cap, const struct sl_value *v)
{
    if (!(v->flags & SL_VALUE_ESCAPED)) return key_bytes(buf, len, cap, 's', v->s, v->len);
    char stack[256], *tmp = v->len <= sizeof stack ? stack : malloc(v->len);
    if (!tmp) return SL_ENOMEM;
    int n = sl_value_unescape(v, tmp, v->len);
    int rc = n < 0 ? SL_EPARSE : key_bytes(buf, len, cap, 's', tmp, (size_t)n);
    if (tmp != stack) free(tmp);
    return rc;
}

int sl__lookup_key_add(char **buf, size_t *len, size_t *cap, const struct sl_value *in)
{
    struct sl_value v = *in;
    char tag;
    switch (v.type) {
    case SL_NULL: tag = 'n'; return key_put(buf, len, cap, &tag, 1);
    case SL_BOOL: {
        char b[2] = {'b', v.b ? 1 : 0};
        return key_put(buf, len, cap, b, 2);
    }
    case SL_INT:
    case SL_FLOAT:
        if (sl_value_number(&v)) return key_bytes(buf, len, cap, 't', v.s, v.len);
        tag = v.type == SL_INT ? 'i' : 'f';
        int rc = key_put(buf, len, cap, &tag, 1);
        return rc ? rc : key_put(buf, len, cap, &v.i, 8); /* i and f share 8 bytes */
    case SL_STRING: return key_string(buf, len, cap, &v);
    default: return key_bytes(buf, len, cap, 'j', v.s, v.len);
    }
}

/* Reads the value at `*p` of the key into `v` (its bytes in the key); moves `*p` on. */
static void key_next(const char **p, struct sl_value *v)
{
    char tag = *(*p)++;
    uint32_t n = 0;
    switch (tag) {
    case 'n': *v = sl_value_null(); return;
    case 'b': *v = sl_value_bool(*(*p)++ != 0); return;
    case 'i':
    case 'f':
        *v = sl_value_int(0);
        memcpy(&v->i, *p, 8);
        if (tag == 'f') v->type = SL_FLOAT;
        *p += 8;
        return;
    default:
        memcpy(&n, *p, sizeof n);
        *p += sizeof n;
        *v = tag == 'j' ? sl_value_json(*p, n) : sl_value_string(*p, n);
        *p += n;
        return;
    }
}

int sl__lookup_key_bind(sqlite3_stmt *st, const char *key, size_t len, size_t n)
{
    const char *p = key, *end = key + len;
    for (size_t i = 0; i < n && p < end; i++) {
        struct sl_value v;
        key_next(&p, &v);
        int rc = sl__sqlite_bind(st, (int)i + 1, &v, NULL, 0); /* nothing escaped */
        if (rc != SQLITE_OK) return rc;
    }
    return SQLITE_OK;
}

/* The JSON text of `v` into `out` (`cap` >= 512 bytes, NUL-terminated), a long string or
 * object cut at 60 bytes and marked "...". */
static void value_text(const struct sl_value *v, char *out, size_t cap)
{
    struct sl_value s = *v;
    bool cut = (s.type == SL_STRING || s.type == SL_JSON) && s.len > 60;
    if (cut) s.len = 60, s.flags &= (uint8_t)~SL_VALUE_JSON_SAFE; /* a cut may split a character */
    size_t need = sl_json_write_value(&s, out, cap - 4);
    if (need > cap - 4) need = 0;
    memcpy(out + need, cut ? "..." : "", cut ? 4 : 1);
}

void sl__lookup_key_text(const char *key, size_t len, char *const *paths, size_t n, char *out,
                         size_t cap)
{
    const char *p = key, *end = key + len;
    size_t at = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && p < end && at < cap; i++) {
        struct sl_value v;
        key_next(&p, &v);
        char val[512];
        value_text(&v, val, sizeof val);
        int w = snprintf(out + at, cap - at, "%s%s=%s", i ? ", " : "", paths[i], val);
        at += w > 0 ? (size_t)w : 0;
    }
    if (at >= cap && cap > 4) memcpy(out + cap - 4, "...", 4);
}

/* ---- rows ---------------------------------------------------------------------------------- */

struct sl__lookup_row *sl__lookup_row_copy(sqlite3_stmt *st)
{
    uint32_t n = (uint32_t)sqlite3_column_count(st);
    size_t head = sizeof(struct sl__lookup_row) + n * sizeof(struct sl__lookup_col), bytes = 0;
    for (uint32_t i = 0; i < n; i++) {
        int t = sqlite3_column_type(st, (int)i);
        if (t == SQLITE_TEXT) sqlite3_column_text(st, (int)i); /* bytes of the UTF-8 form */
        if (t == SQLITE_TEXT || t == SQLITE_BLOB) bytes += (size_t)sqlite3_column_bytes(st, (int)i);
    }
    struct sl__lookup_row *row = malloc(head + bytes + 1);
    if (!row) return NULL;
    char *at = (char *)row + head;
    row->ncols = n;
    for (uint32_t i = 0; i < n; i++) {
        struct sl__lookup_col *c = &row->col[i];
        int t = sqlite3_column_type(st, (int)i);
        *c = (struct sl__lookup_col){.type = SL_NULL};
        if (t == SQLITE_INTEGER) c->type = SL_INT, c->i = sqlite3_column_int64(st, (int)i);
        if (t == SQLITE_FLOAT) c->type = SL_FLOAT, c->f = sqlite3_column_double(st, (int)i);
        if (t != SQLITE_TEXT && t != SQLITE_BLOB) continue;
        const void *p = t == SQLITE_TEXT ? (const void *)sqlite3_column_text(st, (int)i)
                                         : sqlite3_column_blob(st, (int)i);
        c->type = SL_STRING;
        c->len = (uint32_t)sqlite3_column_bytes(st, (int)i);
        if (c->len) memcpy(at, p, c->len);
        c->s = at;
        at += c->len;
    }
    return row;
}

char **sl__lookup_names_copy(sqlite3_stmt *st, uint32_t *n)
{
    *n = (uint32_t)sqlite3_column_count(st);
    size_t bytes = (*n + 1) * sizeof(char *);
    for (uint32_t i = 0; i < *n; i++) {
        const char *name = sqlite3_column_name(st, (int)i);
        bytes += (name ? strlen(name) : 0) + 1;
    }
    char **names = malloc(bytes);
    if (!names) return NULL;
    char *at = (char *)(names + *n + 1);
    for (uint32_t i = 0; i < *n; i++) {
        const char *name = sqlite3_column_name(st, (int)i);
        size_t len = name ? strlen(name) : 0;
        memcpy(at, name ? name : "", len + 1);
        names[i] = at;
        at += len + 1;
    }
    names[*n] = NULL;
    return names;
}

/* Column `c` as a value pointing into the row. */
static struct sl_value col_plain(const struct sl__lookup_col *c)
{
    switch (c->type) {
    case SL_INT: return sl_value_int(c->i);
    case SL_FLOAT: return sl_value_float(c->f);
    case SL_STRING: return sl_value_string(c->len ? c->s : "", c->len);
    default: return sl_value_null();
    }
}

/* Column `c` as a value in `ev`'s batch (text copied there). */
static int col_value(const struct sl__lookup_col *c, struct sl_event *ev, struct sl_value *v)
{
    *v = col_plain(c);
    if (c->type != SL_STRING || !c->len) return 0;
    if (!(v->s = sl_event_strdup(ev, c->s, c->len))) return SL_ENOMEM;
    return 0;
}

/* Writes the columns as one JSON object into `out` (`cap` bytes; NULL with 0 to measure);
 * returns the bytes it takes (written only when they fit). */
static size_t object_text(const struct sl__lookup_row *row, const char *const *names, char *out,
                          size_t cap)
{
    size_t at = 1;
    bool first = true;
    for (uint32_t i = 0; i < row->ncols; i++) {
        if (!names[i]) continue;
        if (!first && at < cap) out[at] = ',';
        at += !first;
        first = false;
        struct sl_value v = col_plain(&row->col[i]);
        at += sl_json_write_member(names[i], strlen(names[i]), &v, at < cap ? out + at : NULL,
                                   at < cap ? cap - at : 0);
    }
    if (at < cap) out[0] = '{', out[at] = '}';
    return at + 1;
}

/* The columns as one JSON object in `ev`'s batch: `*v` an SL_JSON value. */
static int row_object(const struct sl__lookup_row *row, const char *const *names,
                      struct sl_event *ev, struct sl_value *v)
{
    size_t need = object_text(row, names, NULL, 0);
    char *out = sl_event_alloc(ev, need);
    if (!out) return SL_ENOMEM;
    object_text(row, names, out, need);
    *v = sl_value_json(out, need);
    return 0;
}

int sl__lookup_row_apply(const struct sl__lookup_row *row, const char *const *names,
                         const char *into, struct sl_event *ev)
{
    struct sl_value v;
    if (into) {
        int rc = row_object(row, names, ev, &v);
        return rc ? rc : sl_event_set(ev, into, strlen(into), &v);
    }
    for (uint32_t i = 0; i < row->ncols; i++) {
        if (!names[i]) continue;
        int rc = col_value(&row->col[i], ev, &v);
        if (!rc) rc = sl_event_set(ev, names[i], strlen(names[i]), &v);
        if (rc) return rc;
    }
    return 0;
}
