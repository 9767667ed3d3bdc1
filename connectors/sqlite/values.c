/* Typed values in and out of SQLite statements, and the pool a stage asks for: what the
 * sqlite sink, source and lookup share. */
#include <string.h>

#include "internal.h"

int sl__sqlite_bind(sqlite3_stmt *st, int i, const struct sl_value *v, char *scratch, size_t cap)
{
    struct sl_value n = *v;
    switch (v->type) {
    case SL_NULL: return sqlite3_bind_null(st, i);
    case SL_BOOL: return sqlite3_bind_int(st, i, v->b);
    case SL_INT:
    case SL_FLOAT:
        if (sl_value_number(&n)) return sqlite3_bind_text(st, i, v->s, (int)v->len, SQLITE_STATIC);
        return n.type == SL_INT ? sqlite3_bind_int64(st, i, n.i) : sqlite3_bind_double(st, i, n.f);
    case SL_STRING:
        if (v->flags & SL_VALUE_ESCAPED) {
            int len = sl_value_unescape(v, scratch, cap);
            if (len < 0) return SQLITE_TOOBIG;
            return sqlite3_bind_text(st, i, scratch, len, SQLITE_TRANSIENT);
        }
        return sqlite3_bind_text(st, i, v->len ? v->s : "", (int)v->len, SQLITE_STATIC);
    default: /* SL_JSON: an object or array as its JSON text */
        return sqlite3_bind_text(st, i, v->s, (int)v->len, SQLITE_STATIC);
    }
}

int sl__sqlite_column(sqlite3_stmt *st, int i, struct sl_event *ev, struct sl_value *out)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER: *out = sl_value_int(sqlite3_column_int64(st, i)); return 0;
    case SQLITE_FLOAT: *out = sl_value_float(sqlite3_column_double(st, i)); return 0;
    case SQLITE_NULL: *out = sl_value_null(); return 0;
    default: {
        const void *p = sqlite3_column_type(st, i) == SQLITE_BLOB ? sqlite3_column_blob(st, i)
                                                                  : sqlite3_column_text(st, i);
        size_t len = (size_t)sqlite3_column_bytes(st, i);
        const char *copy = sl_event_strdup(ev, p ? p : "", p ? len : 0);
        if (!copy) return SL_ENOMEM;
        *out = sl_value_string(copy, p ? len : 0);
        return 0;
    }
    }
}

int sl__sqlite_set_field(sqlite3_stmt *st, int i, struct sl_event *ev, const char *name)
{
    struct sl_value v;
    int rc = sl__sqlite_column(st, i, ev, &v);
    return rc ? rc : sl_event_set(ev, name, strlen(name), &v);
}

struct sl_sqlite_pool *sl__sqlite_stage_pool(struct sl_stage *stage, const char *path,
                                             const struct sl__sqlite_pool_opts *o,
                                             struct sl_error *err)
{
    struct sl_sqlite_options opts;
    sl_sqlite_options_init(&opts);
    opts.max_connections = (uint32_t)o->max_connections;
    opts.acquire_timeout_ms = o->acquire_timeout_ms;
    opts.busy_timeout_ms = o->busy_timeout_ms;
    return sl_sqlite_pool(stage, path, &opts, err);
}
