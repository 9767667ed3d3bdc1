/* The sqlite sink's transaction, on an executor thread with a connection of the pool
 * (SL_SQLITE_WRITE: the only writer of the database meanwhile):
 *
 *   BEGIN IMMEDIATE; [the DDL of create_table;]
 *   per chunk of rows: SAVEPOINT; one INSERT per row (the one cached statement,
 *   rebound); RELEASE;
 *   COMMIT
 *
 * A row SQLite refuses (a constraint, a type mismatch: the row's own fault) is marked
 * bad and the work goes back to the chunk's savepoint and writes the chunk again, now
 * handling that row by on_error: skipped (drop), or a row of the dead-letter table with
 * SQLite's message (dead_letter), in the same transaction. So the rest of the batch
 * commits, and nothing a refused row did half-way (a trigger's writes) stays. Should
 * SQLite have rolled back the whole transaction (a table declared ON CONFLICT ROLLBACK),
 * the work begins it again, with the rows already known to be bad. With on_error: fail
 * the first refused row rolls everything back.
 *
 * Any other error rolls the transaction back: nothing of the batch stays, so the next
 * attempt writes it whole, once. The job says whether it may pass (transient: busy or
 * locked past busy_timeout, disk full, I/O error) or not (permanent: no such table or
 * column, a read-only database, a damaged file). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sink.h"

#define CHUNK 256 /* rows per savepoint: what a refused row costs to write again */

/* One attempt's context. */
struct tx {
    struct sl_sqlite_conn *c;        /* the lent connection */
    sqlite3 *db;                     /* its handle */
    struct sl__sqlite_job *j;        /* the batch */
    const struct sl__sqlite_sink *k; /* config */
    struct sl_error *err;            /* why it failed */
    sqlite3_stmt *ins;               /* the row statement */
    char *scratch;                   /* room to decode escaped strings */
    bool dl_ready;                   /* the dead-letter table exists (this attempt) */
    bool bind_fault;                 /* the last row failed binding (its message is in
                                        err), not stepping */
};

enum { RESTART = 1 }; /* SQLite rolled the transaction back under a refused row */

bool sl__sqlite_transient(int code)
{
    switch (code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_PROTOCOL: return true;
    default: return false;
    }
}

/* The row's own fault: it goes to on_error, the batch goes on. */
static bool row_error(int code)
{
    int p = code & 0xff;
    return p == SQLITE_CONSTRAINT || p == SQLITE_MISMATCH || p == SQLITE_TOOBIG;
}

/* Ends an attempt that failed with `err` filled: rolls back, says whether it may pass.
 * Returns the error code for the work to return. */
static int fail(struct tx *t)
{
    int code = sqlite3_extended_errcode(t->db);
    bool transient = t->err->code == SL_EBUSY || sl__sqlite_transient(code);
    if (t->err->code == SL_ENOMEM) transient = false;
    t->j->outcome = transient ? SL__SQLITE_TRANSIENT : SL__SQLITE_PERMANENT;
    if (!sqlite3_get_autocommit(t->db)) sqlite3_exec(t->db, "ROLLBACK", NULL, NULL, NULL);
    return t->err->code ? t->err->code : sl_error_set(t->err, SL_EIO, "SQLite failed");
}

/* Runs one statement without rows through the connection's cache (BEGIN, SAVEPOINT...).
 * Returns 0 or -1 with err filled. */
static int run1(struct tx *t, const char *sql)
{
    sqlite3_stmt *st = sl_sqlite_prepare(t->c, sql, t->err);
    return st && sl_sqlite_step(t->c, st, t->err) == SQLITE_DONE ? 0 : -1;
}

/* Remembers that `row` was refused with SQLite's message `msg`. Returns 0 or SL_ENOMEM. */
static int mark_bad(struct tx *t, size_t row, const char *msg)
{
    struct sl__sqlite_job *j = t->j;
    if (!j->bad && !(j->bad = calloc(j->nrows, 1))) return SL_ENOMEM;
    if (j->nbad == j->bad_cap) {
        size_t cap = j->bad_cap ? j->bad_cap * 2 : 8;
        struct sl__sqlite_bad *nb = realloc(j->bads, cap * sizeof *nb);
        if (!nb) return SL_ENOMEM;
        j->bads = nb;
        j->bad_cap = cap;
    }
    char *copy = strdup(msg);
    if (!copy) return SL_ENOMEM;
    j->bads[j->nbad++] = (struct sl__sqlite_bad){.row = row, .msg = copy};
    j->bad[row] = 1;
    return 0;
}

static const char *bad_msg(const struct sl__sqlite_job *j, size_t row)
{
    for (size_t i = 0; i < j->nbad; i++)
        if (j->bads[i].row == row) return j->bads[i].msg;
    return "?";
}

/* Writes the dead letter of bad row `row` (on_error: dead_letter; drop writes nothing).
 * Returns 0 or -1 with err filled. */
static int reject(struct tx *t, size_t row)
{
    if (t->k->on_error != SL__SQLITE_DEAD_LETTER) return 0;
    if (!t->dl_ready && sl_sqlite_exec(t->c, t->k->dl_setup_sql, t->err)) return -1;
    t->dl_ready = true;
    sqlite3_stmt *st = sl_sqlite_prepare(t->c, t->k->dl_insert_sql, t->err);
    if (!st) return -1;
    char *json = sl__sqlite_row_json(t->j, row);
    if (!json) return sl_error_set(t->err, SL_ENOMEM, "out of memory"), -1;
    sqlite3_bind_text(st, 1, t->k->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, bad_msg(t->j, row), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, json, -1, free);
    return sl_sqlite_step(t->c, st, t->err) == SQLITE_DONE ? 0 : -1;
}

/* Binds and steps row `row`. Returns 0, or -1 with err filled and the SQLite code in
 * *code (0 when the failure is not SQLite's). */
static int insert_row(struct tx *t, size_t row, int *code)
{
    const struct sl_value *v = t->j->vals + row * t->k->ncols;
    sqlite3_reset(t->ins);
    *code = 0;
    t->bind_fault = false;
    for (size_t c = 0; c < t->k->ncols; c++) {
        int rc = sl__sqlite_bind(t->ins, (int)c + 1, &v[c], t->scratch, t->j->scratch);
        if (rc == SQLITE_TOOBIG) { /* a string escape that does not decode: the row's */
            *code = rc;
            t->bind_fault = true;
            sl_error_set(t->err, SL_EIO, "column '%s': an invalid escape in a string",
                         t->k->cols[c].name);
            return -1;
        }
        if (rc != SQLITE_OK) {
            sl_error_set(t->err, SL_EIO, "cannot bind column '%s': %s", t->k->cols[c].name,
                         sqlite3_errstr(rc));
            return -1;
        }
    }
    if (sl_sqlite_step(t->c, t->ins, t->err) == SQLITE_DONE) return 0;
    *code = sqlite3_extended_errcode(t->db);
    return -1;
}

/* A refused row: remembered; on_error fail ends the attempt (rolled back), otherwise
 * the work goes back (to the chunk's savepoint, or to the beginning when SQLite rolled
 * the transaction back itself). Returns 0 (resume the chunk), RESTART or an error. */
static int refused(struct tx *t, size_t row)
{
    const char *msg = t->bind_fault ? t->err->msg : sqlite3_errmsg(t->db);
    if (mark_bad(t, row, msg)) return sl_error_set(t->err, SL_ENOMEM, "out of memory"), fail(t);
    if (t->k->on_error == SL__SQLITE_FAIL) {
        sl_error_set(t->err, SL_EIO, "row %zu of %zu refused: %s (in: %.200s)", row + 1,
                     t->j->nrows, t->j->bads[t->j->nbad - 1].msg, t->k->insert_sql);
        t->j->outcome = SL__SQLITE_ROW_FAILED;
        if (!sqlite3_get_autocommit(t->db)) sqlite3_exec(t->db, "ROLLBACK", NULL, NULL, NULL);
        return SL_EIO;
    }
    if (sqlite3_get_autocommit(t->db)) return RESTART;
    t->dl_ready = false; /* a dead-letter table made in the chunk goes back with it */
    return run1(t, "ROLLBACK TO sl_rows") ? fail(t) : 0;
}

/* Writes rows [*next, *next + CHUNK) under one savepoint, and moves *next past them.
 * Returns 0, RESTART or an error (the attempt has ended). */
static int chunk(struct tx *t, size_t *next)
{
    size_t start = *next, end = start + CHUNK < t->j->nrows ? start + CHUNK : t->j->nrows;
    if (run1(t, "SAVEPOINT sl_rows")) return fail(t);
    for (size_t i = start; i < end;) {
        if (t->j->bad && t->j->bad[i]) {
            if (reject(t, i++)) return fail(t);
            continue;
        }
        int code;
        if (!insert_row(t, i, &code)) {
            i++;
            continue;
        }
        if (!row_error(code)) return fail(t);
        int rc = refused(t, i);
        if (rc) return rc;
        i = start; /* again from the savepoint, the refused row known */
    }
    if (run1(t, "RELEASE sl_rows")) return fail(t);
    *next = end;
    return 0;
}

static int attempt(struct tx *t)
{
    if (run1(t, "BEGIN IMMEDIATE")) return fail(t);
    t->dl_ready = false;
    if (t->j->setup && t->k->setup_sql && sl_sqlite_exec(t->c, t->k->setup_sql, t->err))
        return fail(t);
    if (!(t->ins = sl_sqlite_prepare(t->c, t->k->insert_sql, t->err))) return fail(t);
    for (size_t next = 0; next < t->j->nrows;) {
        int rc = chunk(t, &next);
        if (rc) return rc;
    }
    if (run1(t, "COMMIT")) return fail(t);
    t->j->outcome = SL__SQLITE_COMMITTED;
    return 0;
}

/* One job, one transaction. Returns 0 when it committed. */
static int job_work(struct sl_sqlite_conn *c, struct sl__sqlite_job *j, struct sl_error *err)
{
    struct tx t = {.c = c, .db = sl_sqlite_db(c), .j = j, .k = j->k, .err = err};
    if (j->scratch && !(t.scratch = malloc(j->scratch))) {
        j->outcome = SL__SQLITE_PERMANENT;
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc;
    while ((rc = attempt(&t)) == RESTART) continue; /* each time one more row is known bad */
    free(t.scratch);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    j->work_ns = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    return rc;
}

int sl__sqlite_sink_work(struct sl_sqlite_conn *c, void *arg, struct sl_error *err)
{
    struct sl__sqlite_req *r = arg;
    for (r->ran = 0; r->ran < r->n;) {
        int rc = job_work(c, r->jobs[r->ran++], err);
        if (rc) return rc; /* the jobs after it wait for the next request */
    }
    return 0;
}

int sl__sqlite_sink_setup(struct sl_sqlite_conn *c, void *arg, struct sl_error *err)
{
    const struct sl__sqlite_sink *k = arg;
    struct sl__sqlite_job j = {.k = k};
    struct tx t = {.c = c, .db = sl_sqlite_db(c), .j = &j, .k = k, .err = err};
    int rc = 0;
    if (k->setup_sql &&
        (run1(&t, "BEGIN IMMEDIATE") || sl_sqlite_exec(c, k->setup_sql, err) || run1(&t, "COMMIT")))
        rc = fail(&t);
    else if (!sl_sqlite_prepare(c, k->insert_sql, err))
        rc = fail(&t);
    if (rc && j.outcome == SL__SQLITE_TRANSIENT) return SL_EAGAIN;
    return rc;
}
