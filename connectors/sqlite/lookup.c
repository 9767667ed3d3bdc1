/* sqlite_lookup: enriches each event with a row of a SQLite query whose parameters are
 * the event's fields (SELECT name, tier FROM users WHERE id = :user_id).
 *
 * An asynchronous transform (map_async): the runtime bounds the lookups open at once by
 * the stage's `max_in_flight`, passes events on in input order (`ordered: true`) and
 * sends failures to the stage's `on_error`. For each event, on the loop thread, the
 * values of the parameters make a key. A key in the cache answers at once; a key whose
 * lookup is in flight waits for it (with a cache only); any other goes to the pool of the
 * database file as a read request that carries a copy of the key: the work binds it,
 * steps once and copies the first row into plain memory (it never touches the event),
 * and the done, back on the loop, sets the row's columns on every event waiting for that
 * key, remembers the row, and finishes the calls.
 *
 * Errors. No row is a miss, handled by `on_miss` (keep, drop, or dead_letter through
 * sl_async_fail, hence on_error: dead_letter is required with it). An error of one
 * lookup (the database locked past pool.busy_timeout, no connection within
 * pool.acquire_timeout, a value SQLite cannot bind) fails that event alone: the runtime's
 * on_error. An error that every lookup would meet fails the stage at once: the statement
 * does not compile or no longer does (no such table or column, a table dropped during
 * the run), the database cannot be opened (but a lock met while opening is a lock), is
 * corrupt or not a database, the query writes, `fields` names a column the query does
 * not return. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/builtins.h>
#include <sluice/config.h>

#include "internal.h"
#include "lookup.h"

enum on_miss { MISS_KEEP = 0, MISS_DROP, MISS_DEAD_LETTER };

struct lookup {
    const char *path;                     /* option: the database file */
    const char *query;                    /* option: the SELECT, :field parameters */
    const struct sl_config *fields;       /* option: column -> field name; NULL: all, as named */
    const char *into;                     /* option: one object field for the columns; NULL */
    int64_t cache_size;                   /* option cache: entries; 0: none */
    int64_t cache_ttl_ms;                 /* option cache_ttl; 0: no expiry */
    bool cache_misses;                    /* option: remember keys without a row */
    int on_miss;                          /* option: enum on_miss */
    struct sl__sqlite_pool_opts pool;     /* options pool.* */
    struct sl__lookup_query q;            /* the query for SQLite, from init */
    struct sl_sqlite_pool *db;            /* the file's pool, from start */
    char **cols;                          /* the result's column names (owned), from the first
                                             answer; NULL until then */
    uint32_t ncols;                       /* entries of cols */
    const char **names;                   /* the field each column sets (NULL: none), ncols */
    struct sl__lookup_cache cache;        /* cache_size > 0 */
    struct sl__lookup_flights flights;    /* lookups in flight by key (cache_size > 0) */
    char *key;                            /* the key being made (loop thread) */
    size_t klen, kcap;                    /* used / allocated bytes of key */
    int failed;                           /* the code that failed the stage; 0 */
    uint64_t asked, hits, joined, missed; /* for the log line at the end */
};

/* An event waiting for a lookup. */
struct waiter {
    struct waiter *next;   /* the next one, in arrival order */
    struct sl_async *call; /* its call */
    struct sl_event *ev;   /* its event (touched on the loop only) */
};

/* One read request to the pool: its key, and on the way back its answer. */
struct request {
    const struct sl__lookup_query *q; /* the query (read-only: the work reads it) */
    struct sl__lookup_flight flight;  /* its entry among the lookups in flight */
    struct waiter first;              /* the event that asked, then those that joined */
    struct waiter **tail;             /* where the next one joins */
    bool want_names;                  /* copy the column names: not known yet */
    bool ran;                         /* the work ran (else no connection was lent) */
    bool fatal;                       /* the error is the statement's or the database's */
    struct sl__lookup_row *row;       /* the first row; NULL: none */
    char **names;                     /* want_names: the columns (owned) */
    uint32_t nnames;                  /* entries of names */
    size_t klen;                      /* bytes of key */
    char key[];                       /* the values bound (lookup.h, "keys") */
};

/* The clock the cache counts cache_ttl in (read only when there is a ttl: it costs a
 * system clock read). */
static int64_t cache_now(struct sl_stage *s, const struct lookup *lk)
{
    return lk->cache_ttl_ms ? sl_stage_now_ms(s) : 0;
}

static int oom(struct sl_stage *s)
{
    sl_stage_error(s, SL_ENOMEM, "out of memory");
    sl_stage_wake(s); /* when outside map_async: the runtime fails the run on its next look */
    return SL_ENOMEM;
}

/* ---- the work, on an executor thread ------------------------------------------------------ */

/* SQLite's primary codes that every later lookup would meet too. */
static bool statement_error(int code)
{
    switch (code & 0xff) {
    case SQLITE_ERROR:
    case SQLITE_SCHEMA:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_AUTH:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN: return true;
    default: return false;
    }
}

static int run_statement(struct sl_sqlite_conn *c, struct request *r, sqlite3_stmt *st,
                         struct sl_error *err)
{
    if (!sqlite3_stmt_readonly(st) || sqlite3_column_count(st) == 0) {
        r->fatal = true;
        return sl_error_set(err, SL_ECONFIG, "the query must read rows: %.200s", r->q->sql);
    }
    if (r->want_names && !(r->names = sl__lookup_names_copy(st, &r->nnames))) return SL_ENOMEM;
    int rc = sl__lookup_key_bind(st, r->key, r->klen, r->q->nparams);
    if (rc != SQLITE_OK)
        return sl_error_set(err, SL_EINVAL, "cannot bind the values looked up: %s",
                            sqlite3_errstr(rc));
    rc = sl_sqlite_step(c, st, err);
    if (rc == SQLITE_DONE) return 0;
    if (rc == SQLITE_ROW) return (r->row = sl__lookup_row_copy(st)) ? 0 : SL_ENOMEM;
    r->fatal = err->code != SL_EBUSY && statement_error(sqlite3_errcode(sl_sqlite_db(c)));
    return err->code ? err->code : SL_EIO;
}

static int lookup_work(struct sl_sqlite_conn *c, void *arg, struct sl_error *err)
{
    struct request *r = arg;
    r->ran = true;
    sqlite3_stmt *st = sl_sqlite_prepare(c, r->q->sql, err);
    if (!st) {
        r->fatal = err->code != SL_EBUSY; /* it does not compile: no such table, column */
        return err->code ? err->code : SL_EIO;
    }
    int rc = run_statement(c, r, st, err);
    sqlite3_reset(st); /* ends the read transaction: the connection goes back idle */
    sqlite3_clear_bindings(st);
    return rc;
}

/* ---- answers, on the loop ----------------------------------------------------------------- */

/* No row for the event's key (`key` NULL: its field `missing` is absent): on_miss. */
static int miss(struct lookup *lk, struct sl_async *call, const char *key, size_t klen,
                const char *missing)
{
    lk->missed++;
    if (lk->on_miss != MISS_DEAD_LETTER) {
        sl_async_done(call, lk->on_miss == MISS_DROP ? SL_ASYNC_DROP : SL_ASYNC_OK);
        return 0;
    }
    char text[400];
    if (key) sl__lookup_key_text(key, klen, lk->q.params, lk->q.nparams, text, sizeof text);
    sl_async_fail(call, SL_ENOTFOUND, key ? "no row for %s" : "no field '%s' to look up",
                  key ? text : missing);
    return 0;
}

/* Finishes `call` with `row` (borrowed; NULL: a miss). Returns 0 or SL_ENOMEM. */
static int answer(struct sl_stage *s, struct lookup *lk, struct sl_async *call, struct sl_event *ev,
                  const struct sl__lookup_row *row, const char *key, size_t klen)
{
    if (!row) return miss(lk, call, key, klen, NULL);
    int rc = sl__lookup_row_apply(row, lk->names, lk->into, ev);
    if (rc == SL_ENOMEM) {
        sl_async_fail(call, rc, "out of memory");
        return oom(s);
    }
    if (rc) {
        sl_async_fail(call, rc, "%s",
                      rc == SL_ELIMIT ? "the row would take the event past 65535 fields"
                                      : sl_strerror(rc));
        return 0;
    }
    sl_async_done(call, SL_ASYNC_OK);
    return 0;
}

/* The first answer tells the columns: which field each one sets. Returns 0 or
 * SL_ECONFIG (`fields` names a column the query does not return) with `err`. */
static int learn_columns(struct lookup *lk, struct request *r, struct sl_error *err)
{
    lk->cols = r->names, lk->ncols = r->nnames;
    r->names = NULL;
    if (!(lk->names = calloc(lk->ncols ? lk->ncols : 1, sizeof *lk->names))) return SL_ENOMEM;
    for (uint32_t i = 0; i < lk->ncols && !lk->fields; i++) lk->names[i] = lk->cols[i];
    for (size_t k = 0; lk->fields && k < sl_config_len(lk->fields); k++) {
        const char *col;
        const char *field = sl_config_str(sl_config_at(lk->fields, k, &col));
        uint32_t i = 0;
        while (i < lk->ncols && strcmp(lk->cols[i], col) != 0) i++;
        if (i == lk->ncols)
            return sl_error_set(err, SL_ECONFIG, "fields: the query returns no column '%s'", col);
        lk->names[i] = field;
    }
    return 0;
}

static void request_free(struct request *r)
{
    for (struct waiter *w = r->first.next, *next; w; w = next) {
        next = w->next;
        free(w);
    }
    free(r->names);
    free(r->row);
    free(r);
}

/* A failed request: its events go to on_error, or the stage fails (see the top). */
static void request_failed(struct sl_stage *s, struct lookup *lk, struct request *r, int rc,
                           const struct sl_error *err)
{
    const char *msg = err && err->msg[0] ? err->msg : sl_strerror(rc);
    bool locked = err && err->code == SL_EBUSY; /* also when the pool opened a connection */
    bool fatal = r->fatal || rc == SL_ENOMEM || (!r->ran && rc == SL_EIO && !locked);
    if (fatal && !lk->failed) {
        lk->failed = rc;
        sl_stage_error(s, rc, "%s", msg);
        sl_stage_wake(s);
    }
    for (struct waiter *w = &r->first; w; w = w->next) sl_async_fail(w->call, rc, "%s", msg);
}

static void lookup_done(struct sl_stage *s, void *arg, int rc, const struct sl_error *err)
{
    struct lookup *lk = sl_stage_state(s);
    struct request *r = arg;
    struct sl_error e = {0};
    sl__lookup_flights_remove(&lk->flights, &r->flight);
    if (!rc && !lk->cols && r->names && (rc = learn_columns(lk, r, &e)) != 0)
        err = &e, r->fatal = true;
    if (!rc && lk->cols && r->row && r->row->ncols != lk->ncols)
        rc = sl_error_set(&e, SL_ECONFIG, "the query's columns changed"), err = &e, r->fatal = 1;
    if (rc) {
        request_failed(s, lk, r, rc, err);
        request_free(r);
        return;
    }
    for (struct waiter *w = &r->first; w; w = w->next)
        answer(s, lk, w->call, w->ev, r->row, r->key, r->klen);
    if (lk->cache_size && (r->row || lk->cache_misses)) {
        struct sl__lookup_row *row = r->row;
        r->row = NULL; /* the cache takes it */
        if (sl__lookup_cache_put(&lk->cache, r->key, r->klen, r->flight.hash, row,
                                 cache_now(s, lk)))
            oom(s);
    }
    request_free(r);
}

/* ---- each event ----------------------------------------------------------------------------- */

/* Asks the database for the key in lk->key, for `call`. Returns 0 or an SL_E* code. */
static int submit(struct sl_stage *s, struct lookup *lk, struct sl_async *call, struct sl_event *ev,
                  uint64_t h)
{
    struct request *r = calloc(1, sizeof *r + lk->klen);
    if (!r) return oom(s);
    memcpy(r->key, lk->key, lk->klen);
    r->klen = lk->klen;
    r->q = &lk->q;
    r->first = (struct waiter){.call = call, .ev = ev};
    r->tail = &r->first.next;
    r->want_names = !lk->cols;
    r->flight = (struct sl__lookup_flight){.hash = h, .key = r->key, .len = r->klen};
    if (lk->cache_size && sl__lookup_flights_add(&lk->flights, &r->flight)) {
        free(r);
        return oom(s);
    }
    int rc = sl_sqlite_submit(lk->db, s, SL_SQLITE_READ, lookup_work, lookup_done, r);
    if (rc) {
        sl__lookup_flights_remove(&lk->flights, &r->flight);
        free(r);
        if (rc == SL_ENOMEM) return oom(s);
        sl_async_fail(call, rc, "the database's pool is stopped");
        return 0;
    }
    lk->asked++;
    return 0;
}

/* Waits for the lookup in flight `f` of the same key. */
static int join(struct sl_stage *s, struct sl__lookup_flight *f, struct sl_async *call,
                struct sl_event *ev)
{
    struct request *r = (struct request *)((char *)f - offsetof(struct request, flight));
    struct waiter *w = malloc(sizeof *w);
    if (!w) return oom(s);
    *w = (struct waiter){.call = call, .ev = ev};
    *r->tail = w;
    r->tail = &w->next;
    ((struct lookup *)sl_stage_state(s))->joined++;
    return 0;
}

/* Makes lk->key of the event's values; `*missing` names an absent (or unreadable) field. */
static int make_key(struct lookup *lk, const struct sl_event *ev, const char **missing)
{
    lk->klen = 0;
    for (size_t i = 0; i < lk->q.nparams; i++) {
        const char *path = lk->q.params[i];
        struct sl_value v;
        if (sl_event_get(ev, path, strlen(path), &v)) {
            *missing = path;
            return 0;
        }
        int rc = sl__lookup_key_add(&lk->key, &lk->klen, &lk->kcap, &v);
        if (rc) return *missing = path, rc;
    }
    return 0;
}

static int lookup_call(struct sl_stage *s, struct sl_event *ev, struct sl_async *call)
{
    struct lookup *lk = sl_stage_state(s);
    if (lk->failed) return lk->failed;
    const char *missing = NULL;
    int rc = make_key(lk, ev, &missing);
    if (rc == SL_ENOMEM) return oom(s);
    if (rc) {
        sl_async_fail(call, rc, "field '%s': a string with a bad escape", missing);
        return 0;
    }
    if (missing) return miss(lk, call, NULL, 0, missing);
    if (!lk->cache_size) return submit(s, lk, call, ev, 0);
    uint64_t h = sl__lookup_hash(lk->key, lk->klen);
    const struct sl__lookup_row *row;
    if (sl__lookup_cache_get(&lk->cache, lk->key, lk->klen, h, cache_now(s, lk), &row)) {
        lk->hits++;
        return answer(s, lk, call, ev, row, lk->key, lk->klen);
    }
    struct sl__lookup_flight *f = sl__lookup_flights_find(&lk->flights, lk->key, lk->klen, h);
    return f ? join(s, f, call, ev) : submit(s, lk, call, ev, h);
}

/* ---- lifetime ----------------------------------------------------------------------------- */

/* Moves query error `qe` (line:col inside the text) to the config file, as expressions'
 * errors are: the scalar's position plus the place in the text (the column inside the
 * text past its first line). */
static int locate(const struct sl_config *node, const struct sl_error *qe, struct sl_error *err)
{
    if (qe->code == SL_ENOMEM) return sl_error_set(err, SL_ENOMEM, "out of memory");
    int line = sl_config_line(node) + (qe->line > 1 ? qe->line - 1 : 0);
    int col = qe->line > 1 ? qe->col
                           : sl_config_col(node) + (sl_config_quoted(node) ? 1 : 0) + qe->col - 1;
    return sl_error_at(err, SL_ECONFIG, sl_config_file(node), line, col, "query: %s", qe->msg);
}

static int check_options(struct sl_stage *s, const struct sl_config *cfg, struct sl_error *err)
{
    struct lookup *lk = sl_stage_state(s);
    for (size_t k = 0; lk->fields && k < sl_config_len(lk->fields); k++) {
        const struct sl_config *v = sl_config_at(lk->fields, k, NULL);
        const char *name = sl_config_str(v);
        if (!name || !*name)
            return sl_config_error(v, err, SL_ECONFIG, "fields: each column maps to a field name");
    }
    if (lk->into && !*lk->into)
        return sl_config_error(sl_config_get(cfg, "into"), err, SL_ECONFIG, "into: a field name");
    const char *needs_cache = lk->cache_ttl_ms   ? "cache_ttl"
                              : lk->cache_misses ? "cache_misses"
                                                 : 0;
    if (!lk->cache_size && needs_cache)
        return sl_config_error(sl_config_get(cfg, needs_cache), err, SL_ECONFIG,
                               "'%s' applies to the cache: set cache to its entries", needs_cache);
    if (lk->on_miss == MISS_DEAD_LETTER && sl_stage_output(s, "dead_letter") < 0)
        return sl_config_error(sl_config_get(cfg, "on_miss"), err, SL_ECONFIG,
                               "on_miss: dead_letter sends misses through the stage's on_error: "
                               "set on_error: dead_letter too");
    return 0;
}

static int lookup_init(struct sl_stage *s, const struct sl_config *cfg, struct sl_error *err)
{
    struct lookup *lk = sl_stage_state(s);
    struct sl_error qe = {0};
    if (sl__lookup_query_parse(&lk->q, lk->query, &qe))
        return locate(sl_config_get(cfg, "query"), &qe, err);
    int rc = check_options(s, cfg, err);
    if (rc) return rc;
    if (lk->cache_size &&
        sl__lookup_cache_init(&lk->cache, (uint32_t)lk->cache_size, lk->cache_ttl_ms))
        return sl_error_set(err, SL_ENOMEM, "out of memory for a cache of %lld rows",
                            (long long)lk->cache_size);
    return 0;
}

static int lookup_start(struct sl_stage *s, struct sl_error *err)
{
    struct lookup *lk = sl_stage_state(s);
    lk->db = sl__sqlite_stage_pool(s, lk->path, &lk->pool, err);
    return lk->db ? 0 : err->code;
}

static int lookup_flush(struct sl_stage *s, struct sl_emit *out, bool end)
{
    (void)out;
    struct lookup *lk = sl_stage_state(s);
    if (end)
        sl_stage_log(s, SL_LOG_DEBUG,
                     "%llu lookups asked the database, %llu cache hits, %llu joined one in "
                     "flight, %llu without a row",
                     (unsigned long long)lk->asked, (unsigned long long)lk->hits,
                     (unsigned long long)lk->joined, (unsigned long long)lk->missed);
    return 0;
}

static void lookup_close(struct sl_stage *s)
{
    struct lookup *lk = sl_stage_state(s);
    sl__lookup_query_free(&lk->q);
    sl__lookup_cache_free(&lk->cache);
    sl__lookup_flights_free(&lk->flights);
    free(lk->cols);
    free(lk->names);
    free(lk->key);
}

#define OPT(f)  offsetof(struct lookup, f)
#define POOL(f) offsetof(struct lookup, pool.f)

static const struct sl_option lookup_options[] = {
    {"path", SL_OPT_STRING, NULL, SL_REQUIRED, OPT(path),
     "the SQLite database file, read through the pipeline's pool of that file"},
    {"query", SL_OPT_STRING, NULL, SL_REQUIRED, OPT(query),
     "one SELECT whose :field parameters are the event's fields (paths), e.g. 'SELECT name, "
     "tier FROM users WHERE id = :user_id'; its first row is set on the event"},
    {"fields", SL_OPT_MAP, NULL, 0, OPT(fields),
     "column: field, the columns to set and their field names, e.g. {name: user_name}; "
     "unset: every column, under its own name"},
    {"into", SL_OPT_STRING, NULL, 0, OPT(into),
     "set the columns as the members of one object field of this name (user: {name, tier})"},
    {"cache", SL_OPT_INT, "0", 0, OPT(cache_size),
     "rows remembered by key, the least recently used forgotten first; lookups of a key "
     "in flight are shared; 0: every event asks the database",
     NULL, "0..16777216"},
    {"cache_ttl", SL_OPT_DURATION, "0", 0, OPT(cache_ttl_ms),
     "how long a remembered row is used; 0: as long as it stays in the cache", NULL, "0.."},
    {"cache_misses", SL_OPT_BOOL, "false", 0, OPT(cache_misses),
     "remember keys without a row too (else each asks again)"},
    {"on_miss", SL_OPT_ENUM, "keep", 0, OPT(on_miss),
     "an event whose key has no row (or lacks a parameter's field): keep it unchanged, drop "
     "it (counted), or dead_letter (with on_error: dead_letter; field error: \"no row for "
     "user_id=7\")",
     "keep|drop|dead_letter"},
    SL__SQLITE_POOL_OPTIONS(POOL),
    {0},
};

const struct sl_stage_type sl_stage_sqlite_lookup = {
    .abi = SL_STAGE_ABI,
    .name = "sqlite_lookup",
    .kind = SL_TRANSFORM,
    .doc = "enriches events with a row of a SQLite query on their fields (pooled, cached, "
           "order kept)",
    .state_size = sizeof(struct lookup),
    .options = lookup_options,
    .init = lookup_init,
    .start = lookup_start,
    .map_async = lookup_call,
    .flush = lookup_flush,
    .close = lookup_close,
};
