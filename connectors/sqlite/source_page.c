/* One page of the `sqlite` source: `SELECT ... WHERE tracking_column > ?1 ORDER BY
 * tracking_column LIMIT ?2` (keyset pagination: the index finds the first row of the
 * page, however far in; never OFFSET), read into one batch.
 *
 * Where the rows become events: on the executor thread that runs the query. The loop
 * makes a fresh batch (sl_batch_new is the loop's) and hands it to the request; the work
 * appends the events, copies the columns into the batch's arena and writes each row's
 * JSON payload there; done gives the batch back to the loop, which returns it from
 * poll(). Nobody else holds the batch meanwhile (it is in no queue, and the loop does
 * not look at it until done), so the arena is used by one thread at a time, as event.h
 * asks, and the loop does none of the per-row work: no copy of the rows into a buffer
 * and no second pass over them on the loop thread, which stays free for the stages
 * downstream while the next page is read. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sluice/json.h>

#include "source.h"

/* A page request: its job, owned by the request until done. */
struct page {
    struct sl__sqlsrc *s;          /* read only here (see source.h) */
    struct sl_batch *b;            /* filled by the work, returned in done */
    struct sl__sqlsrc_value after; /* ?1 (type 0: the first page, no lower bound) */
    struct sl__sqlsrc_value last;  /* the last row's tracking value */
    size_t rows;                   /* rows read */
    bool short_page;               /* the query ended before `limit` rows */
    int64_t now_ns;                /* the events' time: when the page was read */
    char *json;                    /* scratch for a row's JSON text */
    size_t cap;                    /* its size */
    struct sl_value tv;            /* the last row's tracking value, in the arena */
    int ttype;                     /* ... and its SQLite type */
};

/* The result columns: their names in the batch arena, which one is the tracking one. */
struct cols {
    int n;              /* result columns */
    int nfields;        /* of which fields (all but a tracking column selected last) */
    int track;          /* index of the tracking column */
    const char **names; /* field names (arena) */
    size_t *lens;       /* their lengths (arena) */
};

static void page_free(struct page *pg)
{
    sl__sqlsrc_value_free(&pg->after);
    sl__sqlsrc_value_free(&pg->last);
    free(pg->json);
    free(pg);
}

/* Names of the columns of `st` copied into the batch, and the tracking column found. */
static int find_columns(struct page *pg, sqlite3_stmt *st, struct cols *c, struct sl_error *err)
{
    c->n = sqlite3_column_count(st);
    c->nfields = pg->s->hidden_tracking ? c->n - 1 : c->n;
    c->track = pg->s->hidden_tracking ? c->n - 1 : -1;
    c->names = sl_batch_alloc(pg->b, (size_t)c->n * sizeof *c->names + 1);
    c->lens = sl_batch_alloc(pg->b, (size_t)c->n * sizeof *c->lens + 1);
    if (!c->names || !c->lens) return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (int i = 0; i < c->nfields; i++) {
        const char *name = sqlite3_column_name(st, i);
        if (!name) return sl_error_set(err, SL_ENOMEM, "out of memory");
        size_t len = strlen(name);
        char *copy = sl_batch_alloc(pg->b, len + 1);
        if (!copy) return sl_error_set(err, SL_ENOMEM, "out of memory");
        memcpy(copy, name, len + 1);
        c->names[i] = copy;
        c->lens[i] = len;
        if (c->track < 0 && sqlite3_stricmp(name, pg->s->tracking) == 0) c->track = i;
    }
    if (c->track < 0)
        return sl_error_set(err, SL_ECONFIG, "tracking column '%s' is not among the columns read",
                            pg->s->tracking);
    return 0;
}

/* The event's payload: its fields as one JSON object, written into the arena; the event
 * is then "in sync" (event.h): a JSON sink writes the payload as it is. */
static int set_payload(struct page *pg, struct sl_event *ev)
{
    size_t need = sl_event_write_json(ev, pg->json, pg->cap);
    if (need > pg->cap) {
        size_t cap = need > 2 * pg->cap ? need : 2 * pg->cap;
        char *grown = realloc(pg->json, cap);
        if (!grown) return SL_ENOMEM;
        pg->json = grown;
        pg->cap = cap;
        need = sl_event_write_json(ev, pg->json, pg->cap);
    }
    const char *payload = sl_event_strdup(ev, pg->json, need);
    if (!payload) return SL_ENOMEM;
    sl_event_set_payload(ev, payload, need);
    sl_event_fields_synced(ev);
    return 0;
}

/* The current row of `st` as one more event of the page's batch. */
static int add_row(struct page *pg, sqlite3_stmt *st, const struct cols *c, struct sl_error *err)
{
    struct sl_event *ev = sl_batch_append(pg->b);
    if (!ev) return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (int i = 0; i < c->n; i++) {
        struct sl_value v;
        int type = sqlite3_column_type(st, i), rc = sl__sqlite_column(st, i, ev, &v);
        if (!rc && i < c->nfields) rc = sl_event_add_field(ev, c->names[i], c->lens[i], &v);
        if (rc == SL_ELIMIT)
            return sl_error_set(err, rc, "a row of more than %d columns", SL_EVENT_MAX_FIELDS);
        if (rc) return sl_error_set(err, SL_ENOMEM, "out of memory");
        if (i == c->track) {
            pg->tv = v;
            pg->ttype = type;
        }
    }
    if (set_payload(pg, ev)) return sl_error_set(err, SL_ENOMEM, "out of memory");
    uint64_t offset = pg->ttype == SQLITE_INTEGER && pg->tv.i > 0 ? (uint64_t)pg->tv.i : 0;
    sl_event_set_origin(ev, pg->s->path, offset, -1);
    sl_event_set_time(ev, pg->now_ns);
    return 0;
}

/* The last row's tracking value, out of the arena into the job's own memory. */
static int keep_last(struct page *pg)
{
    struct sl__sqlsrc_value *v = &pg->last;
    v->type = pg->ttype;
    if (v->type == SQLITE_INTEGER) v->i = pg->tv.i;
    if (v->type == SQLITE_FLOAT) v->f = pg->tv.f;
    if (v->type != SQLITE_TEXT && v->type != SQLITE_BLOB) return 0;
    v->len = pg->tv.len;
    if (!(v->bytes = malloc(v->len + 1))) return SL_ENOMEM;
    if (v->len) memcpy(v->bytes, pg->tv.s, v->len);
    v->bytes[v->len] = '\0';
    return 0;
}

/* Steps through the page: until `limit` rows, the end of the query, or a full batch
 * (batch.max_bytes: the next page starts after the last row read). */
static int read_rows(struct page *pg, struct sl_sqlite_conn *conn, sqlite3_stmt *st,
                     struct sl_error *err)
{
    struct cols c;
    int rc = find_columns(pg, st, &c, err);
    while (!rc && pg->rows < (size_t)pg->s->limit && !sl_batch_full(pg->b)) {
        int r = sl_sqlite_step(conn, st, err);
        if (r < 0) return err->code ? err->code : SL_EIO;
        if (r == SQLITE_DONE) {
            pg->short_page = true;
            break;
        }
        if (!(rc = add_row(pg, st, &c, err))) pg->rows++;
    }
    if (!rc && pg->rows && keep_last(pg)) rc = sl_error_set(err, SL_ENOMEM, "out of memory");
    return rc;
}

/* The work, on an executor thread with a connection of the data's pool. */
static int page_work(struct sl_sqlite_conn *conn, void *arg, struct sl_error *err)
{
    struct page *pg = arg;
    const struct sl__sqlsrc *s = pg->s;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    pg->now_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    sqlite3_stmt *st = sl_sqlite_prepare(conn, pg->after.type ? s->sql_next : s->sql_first, err);
    if (!st) return err->code ? err->code : SL_EIO;
    if ((pg->after.type && sl__sqlsrc_value_bind(st, 1, &pg->after) != SQLITE_OK) ||
        sqlite3_bind_int64(st, 2, s->limit) != SQLITE_OK)
        return sl_error_set(err, SL_EIO, "%s", sqlite3_errmsg(sl_sqlite_db(conn)));
    int rc = read_rows(pg, conn, st, err);
    sqlite3_reset(st); /* ends the read: no snapshot held between pages */
    return rc;
}

/* The page is back, on the loop: it waits for poll() in s->ready. */
static void page_done(struct sl_stage *stage, void *arg, int rc, const struct sl_error *err)
{
    struct page *pg = arg;
    struct sl__sqlsrc *s = sl_stage_state(stage);
    s->phase = SQLSRC_IDLE;
    if (rc || s->ended) { /* after the end, nobody would poll for it */
        sl_batch_unref(pg->b);
        if (rc && rc != SL_ESTOPPED && !s->ended) sl__sqlsrc_failed(s, "reading", s->path, rc, err);
        page_free(pg);
        return;
    }
    sl_backoff_reset(&s->backoff);
    if (pg->rows) {
        sl__sqlsrc_value_free(&s->last);
        s->last = pg->last; /* moved */
        pg->last = (struct sl__sqlsrc_value){0};
        s->ready = pg->b;
    } else {
        sl_batch_unref(pg->b);
    }
    if (pg->short_page && s->mode == 1) { /* follow: ask again after poll_interval */
        s->phase = SQLSRC_WAITING;
        sl_timer_start(s->wait_timer, s->poll_interval_ms, false);
    } else if (pg->short_page) {
        s->phase = SQLSRC_END;
    }
    page_free(pg);
    sl_stage_wake(stage);
}

int sl__sqlsrc_fetch(struct sl__sqlsrc *s)
{
    struct page *pg = calloc(1, sizeof *pg);
    if (!pg || !(pg->b = sl_batch_new(s->stage)) || sl__sqlsrc_value_copy(&pg->after, &s->last)) {
        if (pg) sl_batch_unref(pg->b);
        if (pg) page_free(pg);
        return SL_ENOMEM;
    }
    pg->s = s;
    if (sl_sqlite_submit(s->db, s->stage, SL_SQLITE_READ, page_work, page_done, pg)) {
        sl_batch_unref(pg->b);
        page_free(pg);
        return SL_ENOMEM;
    }
    s->phase = SQLSRC_FETCHING;
    s->pages++;
    return 0;
}

bool sl__sqlsrc_failed(struct sl__sqlsrc *s, const char *what, const char *path, int rc,
                       const struct sl_error *err)
{
    if (rc == SL_EBUSY || err->code == SL_EBUSY) { /* locked past busy_timeout: it may pass */
        int64_t ms = sl_backoff_next(&s->backoff);
        s->busy_retries++;
        sl_stage_log(s->stage, SL_LOG_WARN, "%s %s: %s; retrying in %lld ms", what, path, err->msg,
                     (long long)ms);
        s->phase = SQLSRC_WAITING;
        sl_timer_start(s->wait_timer, ms, false);
        return true;
    }
    sl_stage_error(s->stage, rc, "%s %s: %s", what, path, err->msg);
    sl_stage_wake(s->stage);
    return false;
}
