/* The sqlite sink's config turned into SQL, once, at init: the columns and their
 * compiled expressions, the key, the indexes, and the statements the transaction runs
 * (the INSERT of one row, the DDL of create_table, the dead letters' table and INSERT).
 * Every mistake is reported at its place in the config. Identifiers are quoted ("a""b"),
 * so any table or column name works. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/json.h>

#include "sink.h"

#define MAX_COLUMNS 2000 /* SQLite's default SQLITE_MAX_COLUMN */

/* ---- a string builder ---------------------------------------------------------------------- */

struct sb {
    char *s;       /* NUL-terminated (owned) */
    size_t n, cap; /* length / room */
    bool oom;      /* an append failed: the text is incomplete */
};

static void sb_add(struct sb *b, const char *fmt, ...) SL_PRINTF(2, 3);

static void sb_add(struct sb *b, const char *fmt, ...)
{
    for (int tries = 0; !b->oom && tries < 2; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int len = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (len < 0) break;
        if (b->s && b->n + (size_t)len < b->cap) {
            b->n += (size_t)len;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 256) + (size_t)len;
        char *s = realloc(b->s, cap);
        if (!s) break;
        b->s = s;
        b->cap = cap;
    }
    b->oom = true;
}

/* Appends `name` as a quoted identifier: "name", with '"' doubled. */
static void sb_ident(struct sb *b, const char *name)
{
    sb_add(b, "\"");
    for (const char *p = name; *p; p++) {
        if (*p == '"')
            sb_add(b, "\"\"");
        else
            sb_add(b, "%c", *p);
    }
    sb_add(b, "\"");
}

/* The builder's text (owned by the caller), or NULL when an append failed. */
static char *sb_take(struct sb *b)
{
    if (b->oom) {
        free(b->s);
        b->s = NULL;
    }
    return b->s;
}

/* ---- columns ------------------------------------------------------------------------------- */

static int find_col(const struct sl__sqlite_sink *k, const char *name)
{
    for (size_t i = 0; i < k->ncols; i++)
        if (strcmp(k->cols[i].name, name) == 0) return (int)i;
    return -1;
}

/* The expression of a column given without one: the field of the column's name, quoted
 * as a top-level name (."name"), whatever characters it holds. */
static struct sl_expr *field_expr(const char *name, const struct sl_config *at,
                                  struct sl_error *err)
{
    size_t len = strlen(name), cap = len * 6 + 8;
    char *src = malloc(cap);
    if (!src) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    size_t n = 0;
    src[n++] = '.';
    src[n++] = '"';
    n += sl_json_escape(name, len, src + n);
    src[n++] = '"';
    struct sl_error e = {0};
    struct sl_expr *x = sl_expr_compile(src, n, &e);
    free(src);
    if (!x) sl_config_error(at, err, e.code, "column '%s': %s", name, e.msg);
    return x;
}

/* Compiles the value of column `c` from scalar `node` (NULL or empty: the field of the
 * column's name). */
static int col_value(struct sl__sqlite_col *c, const struct sl_config *node,
                     const struct sl_config *at, struct sl_error *err)
{
    const char *text = node ? sl_config_str(node) : NULL;
    if (node && !text)
        return sl_config_error(node, err, SL_ECONFIG,
                               "column '%s': the value is an expression (a scalar)", c->name);
    if (!text || !*text) {
        c->expr = field_expr(c->name, at, err);
        c->payload_fallback = strcmp(c->name, "message") == 0;
    } else {
        char what[300];
        snprintf(what, sizeof what, "column '%s'", c->name);
        c->expr = sl_expr_compile_config(node, what, err);
        c->payload_fallback = strcmp(text, "message") == 0 || strcmp(text, ".message") == 0;
    }
    return c->expr ? 0 : err->code;
}

/* Reads {value: expr, type: T} of column `c`. */
static int col_map(struct sl__sqlite_col *c, const struct sl_config *node, struct sl_error *err)
{
    const struct sl_config *value = NULL;
    for (size_t i = 0; i < sl_config_len(node); i++) {
        const char *key;
        const struct sl_config *v = sl_config_at(node, i, &key);
        if (strcmp(key, "value") == 0) {
            value = v;
        } else if (strcmp(key, "type") == 0) {
            const char *t = sl_config_str(v);
            if (!t || !*t || strchr(t, ';'))
                return sl_config_error(v, err, SL_ECONFIG,
                                       "column '%s': type is a SQL type such as INTEGER, TEXT, "
                                       "REAL or 'TEXT NOT NULL'",
                                       c->name);
            if (!(c->type = strdup(t))) return sl_error_set(err, SL_ENOMEM, "out of memory");
        } else {
            return sl_config_error(sl_config_key_at(node, i), err, SL_ECONFIG,
                                   "column '%s': unknown key '%s' (expected 'value' or 'type')",
                                   c->name, key);
        }
    }
    return col_value(c, value, node, err);
}

/* Adds column `name` from `node` (a scalar expression, a map, or NULL: the field). */
static int add_col(struct sl__sqlite_sink *k, const char *name, const struct sl_config *node,
                   const struct sl_config *at, struct sl_error *err)
{
    if (!name || !*name) return sl_config_error(at, err, SL_ECONFIG, "a column needs a name");
    if (find_col(k, name) >= 0)
        return sl_config_error(at, err, SL_ECONFIG, "column '%s' is named twice", name);
    if (k->ncols == MAX_COLUMNS)
        return sl_config_error(at, err, SL_ECONFIG, "more than %d columns", MAX_COLUMNS);
    struct sl__sqlite_col *c = &k->cols[k->ncols];
    if (!(c->name = strdup(name))) return sl_error_set(err, SL_ENOMEM, "out of memory");
    k->ncols++;
    if (node && sl_config_kind(node) == SL_CFG_MAP) return col_map(c, node, err);
    if (node && sl_config_kind(node) == SL_CFG_LIST)
        return sl_config_error(node, err, SL_ECONFIG,
                               "column '%s': expected an expression or {value, type}", name);
    return col_value(c, node, at, err);
}

static int read_columns(struct sl__sqlite_sink *k, struct sl_error *err)
{
    const struct sl_config *node = k->columns;
    enum sl_config_kind kind = sl_config_kind(node);
    size_t n = sl_config_len(node);
    if (kind == SL_CFG_SCALAR || n == 0)
        return sl_config_error(node, err, SL_ECONFIG,
                               "option 'columns': expected a mapping (column: expression) or a "
                               "list of field names, with at least one column");
    if (!(k->cols = calloc(n < MAX_COLUMNS ? n : MAX_COLUMNS, sizeof *k->cols)))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *key = NULL;
        const struct sl_config *v = sl_config_at(node, i, &key);
        int rc = kind == SL_CFG_MAP ? add_col(k, key, v, sl_config_key_at(node, i), err)
                                    : add_col(k, sl_config_str(v), NULL, v, err);
        if (rc) return rc;
    }
    return 0;
}

/* ---- key and indexes ----------------------------------------------------------------------- */

static int check_key(struct sl__sqlite_sink *k, const struct sl_config *cfg, struct sl_error *err)
{
    const struct sl_config *at = sl_config_get(cfg, "key");
    for (size_t i = 0; i < k->key.n; i++)
        if (find_col(k, k->key.items[i]) < 0)
            return sl_config_error(at, err, SL_ECONFIG, "key column '%s' is not one of 'columns'",
                                   k->key.items[i]);
    if (k->mode == SL__SQLITE_UPSERT && k->key.n == 0)
        return sl_config_error(sl_config_get(cfg, "mode"), err, SL_ECONFIG,
                               "mode upsert needs 'key': the columns of a unique index");
    return 0;
}

/* Appends CREATE [UNIQUE] INDEX IF NOT EXISTS for the columns of `cols` (scalars). */
static int add_index(struct sl__sqlite_sink *k, struct sb *b, const struct sl_config *cols,
                     bool unique, struct sl_error *err)
{
    size_t n = sl_config_kind(cols) == SL_CFG_LIST ? sl_config_len(cols) : 1;
    struct sb name = {0};
    sb_add(&name, "%s_", k->table);
    for (size_t i = 0; i < n; i++) {
        const struct sl_config *c =
            sl_config_kind(cols) == SL_CFG_LIST ? sl_config_at(cols, i, NULL) : cols;
        const char *col = sl_config_str(c);
        if (!col || find_col(k, col) < 0) {
            free(name.s);
            return sl_config_error(c, err, SL_ECONFIG, "index column '%s' is not one of 'columns'",
                                   col ? col : "?");
        }
        sb_add(&name, "%s_", col);
    }
    sb_add(&name, "%s", unique ? "unique" : "idx");
    sb_add(b, "CREATE %sINDEX IF NOT EXISTS ", unique ? "UNIQUE " : "");
    sb_ident(b, name.oom ? "" : name.s);
    free(name.s);
    sb_add(b, " ON ");
    sb_ident(b, k->table);
    for (size_t i = 0; i < n; i++) {
        sb_add(b, i ? ", " : " (");
        sb_ident(b, sl_config_str(sl_config_kind(cols) == SL_CFG_LIST ? sl_config_at(cols, i, NULL)
                                                                      : cols));
    }
    sb_add(b, ");\n");
    return 0;
}

/* One item of `indexes`: a column, a list of columns, or {columns: ..., unique: bool}. */
static int index_item(struct sl__sqlite_sink *k, struct sb *b, const struct sl_config *it,
                      struct sl_error *err)
{
    if (sl_config_kind(it) != SL_CFG_MAP) {
        if (sl_config_kind(it) == SL_CFG_LIST && sl_config_len(it) == 0)
            return sl_config_error(it, err, SL_ECONFIG, "an index needs columns");
        return add_index(k, b, it, false, err);
    }
    const struct sl_config *cols = sl_config_get(it, "columns"), *u = sl_config_get(it, "unique");
    const char *us = u ? sl_config_str(u) : "false";
    for (size_t i = 0; i < sl_config_len(it); i++) {
        const char *key;
        sl_config_at(it, i, &key);
        if (strcmp(key, "columns") && strcmp(key, "unique"))
            return sl_config_error(sl_config_key_at(it, i), err, SL_ECONFIG,
                                   "unknown key '%s' in an index (expected 'columns', 'unique')",
                                   key);
    }
    if (!cols || sl_config_kind(cols) == SL_CFG_MAP ||
        (sl_config_kind(cols) == SL_CFG_LIST && sl_config_len(cols) == 0))
        return sl_config_error(it, err, SL_ECONFIG, "an index needs 'columns'");
    if (!us || (strcmp(us, "true") && strcmp(us, "false")))
        return sl_config_error(u, err, SL_ECONFIG, "'unique' is true or false");
    return add_index(k, b, cols, strcmp(us, "true") == 0, err);
}

/* ---- statements ---------------------------------------------------------------------------- */

static int build_setup(struct sl__sqlite_sink *k, struct sl_error *err)
{
    struct sb b = {0};
    sb_add(&b, "CREATE TABLE IF NOT EXISTS ");
    sb_ident(&b, k->table);
    for (size_t i = 0; i < k->ncols; i++) {
        sb_add(&b, i ? ", " : " (");
        sb_ident(&b, k->cols[i].name);
        if (k->cols[i].type) sb_add(&b, " %s", k->cols[i].type);
    }
    sb_add(&b, ");\n");
    if (k->key.n) {
        sb_add(&b, "CREATE UNIQUE INDEX IF NOT EXISTS ");
        char name[600];
        snprintf(name, sizeof name, "%s_key", k->table);
        sb_ident(&b, name);
        sb_add(&b, " ON ");
        sb_ident(&b, k->table);
        for (size_t i = 0; i < k->key.n; i++) {
            sb_add(&b, i ? ", " : " (");
            sb_ident(&b, k->key.items[i]);
        }
        sb_add(&b, ");\n");
    }
    for (size_t i = 0; k->indexes && i < sl_config_len(k->indexes); i++) {
        int rc = index_item(k, &b, sl_config_at(k->indexes, i, NULL), err);
        if (rc) {
            free(b.s);
            return rc;
        }
    }
    k->setup_sql = sb_take(&b);
    return k->setup_sql ? 0 : sl_error_set(err, SL_ENOMEM, "out of memory");
}

static bool is_key(const struct sl__sqlite_sink *k, const char *col)
{
    for (size_t i = 0; i < k->key.n; i++)
        if (strcmp(k->key.items[i], col) == 0) return true;
    return false;
}

static void build_upsert(const struct sl__sqlite_sink *k, struct sb *b)
{
    sb_add(b, " ON CONFLICT");
    for (size_t i = 0; i < k->key.n; i++) {
        sb_add(b, i ? ", " : " (");
        sb_ident(b, k->key.items[i]);
    }
    sb_add(b, ") DO ");
    size_t set = 0;
    for (size_t i = 0; i < k->ncols; i++) {
        if (is_key(k, k->cols[i].name)) continue;
        sb_add(b, set++ ? ", " : "UPDATE SET ");
        sb_ident(b, k->cols[i].name);
        sb_add(b, " = excluded.");
        sb_ident(b, k->cols[i].name);
    }
    if (!set) sb_add(b, "NOTHING");
}

static char *build_insert(const struct sl__sqlite_sink *k)
{
    struct sb b = {0};
    sb_add(&b, "INSERT %sINTO ", k->mode == SL__SQLITE_REPLACE ? "OR REPLACE " : "");
    sb_ident(&b, k->table);
    for (size_t i = 0; i < k->ncols; i++) {
        sb_add(&b, i ? ", " : " (");
        sb_ident(&b, k->cols[i].name);
    }
    for (size_t i = 0; i < k->ncols; i++) sb_add(&b, i ? ", ?%zu" : ") VALUES (?%zu", i + 1);
    sb_add(&b, ")");
    if (k->mode == SL__SQLITE_UPSERT) build_upsert(k, &b);
    return sb_take(&b);
}

/* The dead letters' table and statement (on_error: dead_letter). */
static int build_dead_letters(struct sl__sqlite_sink *k, const struct sl_config *cfg,
                              struct sl_error *err)
{
    char def[600];
    const char *t = k->dead_letter_table;
    if (k->on_error != SL__SQLITE_DEAD_LETTER) {
        if (t)
            return sl_config_error(sl_config_get(cfg, "dead_letter_table"), err, SL_ECONFIG,
                                   "option 'dead_letter_table' needs on_error: dead_letter");
        return 0;
    }
    if (!t || !*t) {
        snprintf(def, sizeof def, "%s_dead_letter", k->table);
        t = def;
    }
    struct sb b = {0}, i = {0};
    sb_add(&b, "CREATE TABLE IF NOT EXISTS ");
    sb_ident(&b, t);
    sb_add(&b, " (time TEXT NOT NULL, stage TEXT NOT NULL, error TEXT NOT NULL, row TEXT)");
    sb_add(&i, "INSERT INTO ");
    sb_ident(&i, t);
    sb_add(&i, " (time, stage, error, row) VALUES (strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 'now'), "
               "?1, ?2, ?3)");
    k->dl_setup_sql = sb_take(&b);
    k->dl_insert_sql = sb_take(&i);
    return k->dl_setup_sql && k->dl_insert_sql ? 0 : sl_error_set(err, SL_ENOMEM, "out of memory");
}

/* retry.initial and retry.max as the runtime reads them (defaults 100ms and 30s): the
 * failed batch's own attempts follow the same backoff. */
static void read_retry(struct sl__sqlite_sink *k, const struct sl_config *cfg)
{
    long long ms;
    const struct sl_config *n = sl_config_get(cfg, "retry.initial");
    k->retry_initial_ms =
        n && sl_config_str(n) && !sl_parse_duration(sl_config_str(n), &ms) && ms > 0 ? ms : 100;
    n = sl_config_get(cfg, "retry.max");
    k->retry_max_ms =
        n && sl_config_str(n) && !sl_parse_duration(sl_config_str(n), &ms) ? ms : 30000;
    if (k->retry_max_ms < k->retry_initial_ms) k->retry_max_ms = k->retry_initial_ms;
}

int sl__sqlite_sink_config(struct sl__sqlite_sink *k, const struct sl_config *cfg,
                           struct sl_error *err)
{
    if (!*k->table)
        return sl_config_error(sl_config_get(cfg, "table"), err, SL_ECONFIG,
                               "option 'table' is empty");
    int rc = read_columns(k, err);
    if (!rc) rc = check_key(k, cfg, err);
    if (!rc && k->indexes && !k->create_table)
        rc = sl_config_error(k->indexes, err, SL_ECONFIG,
                             "option 'indexes' needs create_table: true");
    if (!rc && k->indexes && sl_config_kind(k->indexes) != SL_CFG_LIST)
        rc = sl_config_error(k->indexes, err, SL_ECONFIG,
                             "option 'indexes': expected a list of indexes");
    if (!rc && k->create_table) rc = build_setup(k, err);
    if (!rc && !(k->insert_sql = build_insert(k)))
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
    if (!rc) rc = build_dead_letters(k, cfg, err);
    read_retry(k, cfg);
    return rc;
}

void sl__sqlite_sink_config_free(struct sl__sqlite_sink *k)
{
    for (size_t i = 0; i < k->ncols; i++) {
        free(k->cols[i].name);
        free(k->cols[i].type);
        sl_expr_free(k->cols[i].expr);
    }
    free(k->cols);
    free(k->insert_sql);
    free(k->setup_sql);
    free(k->dl_setup_sql);
    free(k->dl_insert_sql);
    k->cols = NULL;
    k->ncols = 0;
}
