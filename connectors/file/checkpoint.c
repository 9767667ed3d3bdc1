/* Checkpoints in SQLite: one row per (source, file identity) with the acknowledged
 * offset, in a table of the database's pool (the pipeline's one way to SQLite: no call
 * here blocks the loop). The rows of a source are loaded once by a request at start;
 * each save writes the changed rows in one transaction, a write request of the pool.
 * WAL mode with synchronous=NORMAL (the pool's connections): a save lost to a crash only
 * means replaying lines that were already delivered (duplicates, never loss), and the
 * file cannot be corrupted by a kill. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sluice/sqlite.h>

#include "internal.h"

struct sl__file_ckpt {
    struct sl_sqlite_pool *pool;    /* the database's pool (the pipeline owns it) */
    struct sl_stage *stage;         /* the source */
    char *path;                     /* the database file, for messages */
    char *source;                   /* the source's stage name: the rows' first key */
    struct sl__file_ckpt_row *rows; /* loaded at start, kept as saves change them */
    size_t nrows;                   /* entries in rows */
    sl__file_ckpt_done_fn *loaded;  /* the load's end, on the loop */
    void *loaded_arg;               /* its argument */
    bool load_ran;                  /* the load's work ran (a connection opened) */
};

uint64_t sl__file_hash(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* ---- loading: an executor thread, with a connection of the pool ------------------------ */

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS file_checkpoints ("
    " source TEXT NOT NULL, dev INTEGER NOT NULL, ino INTEGER NOT NULL,"
    " fp INTEGER NOT NULL, fp_len INTEGER NOT NULL, offset INTEGER NOT NULL,"
    " path TEXT, updated INTEGER NOT NULL, rotated INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (source, dev, ino));";

/* Databases made before the `rotated` column get it (0: an ordinary row). */
static int add_rotated_column(struct sl_sqlite_conn *conn, struct sl_error *err)
{
    sqlite3_stmt *st = sl_sqlite_prepare(conn, "PRAGMA table_info(file_checkpoints)", err);
    if (!st) return err->code;
    int step;
    while ((step = sl_sqlite_step(conn, st, err)) == SQLITE_ROW) {
        const unsigned char *name = sqlite3_column_text(st, 1);
        if (name && strcmp((const char *)name, "rotated") == 0) {
            sqlite3_reset(st);
            return 0;
        }
    }
    if (step < 0) return err->code;
    return sl_sqlite_exec(conn,
                          "ALTER TABLE file_checkpoints ADD COLUMN rotated INTEGER NOT NULL "
                          "DEFAULT 0",
                          err);
}

/* SQLite's quick_check of the whole file: a damaged database must stop the run, not be
 * read as "no checkpoints" (every file read again) or fail each save in silence. Returns
 * 0, or SL_EIO with its first complaint in `err`. */
static int check_db(struct sl_sqlite_conn *conn, struct sl_error *err)
{
    sqlite3_stmt *st = sl_sqlite_prepare(conn, "PRAGMA quick_check(1)", err);
    if (!st) return err->code;
    int step = sl_sqlite_step(conn, st, err), rc = 0;
    if (step < 0) return err->code;
    const unsigned char *said = step == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    if (!said || strcmp((const char *)said, "ok") != 0) {
        rc = sl_error_set(err, SL_EIO, "damaged: %s", said ? (const char *)said : "?");
        for (char *nl; (nl = strchr(err->msg, '\n'));) *nl = ' '; /* one line */
    }
    sqlite3_reset(st);
    return rc;
}

static int load_rows(struct sl_sqlite_conn *conn, struct sl__file_ckpt *c, struct sl_error *err)
{
    const char *q = "SELECT dev, ino, fp, fp_len, offset, path, updated, rotated"
                    " FROM file_checkpoints WHERE source = ?1";
    sqlite3_stmt *st = sl_sqlite_prepare(conn, q, err);
    if (!st) return err->code;
    sqlite3_bind_text(st, 1, c->source, -1, SQLITE_STATIC);
    int step;
    while ((step = sl_sqlite_step(conn, st, err)) == SQLITE_ROW) {
        struct sl__file_ckpt_row *nr = realloc(c->rows, (c->nrows + 1) * sizeof *nr);
        if (!nr) return sl_error_set(err, SL_ENOMEM, "out of memory");
        c->rows = nr;
        struct sl__file_ckpt_row *r = &c->rows[c->nrows++];
        memset(r, 0, sizeof *r);
        r->dev = (uint64_t)sqlite3_column_int64(st, 0);
        r->ino = (uint64_t)sqlite3_column_int64(st, 1);
        r->fp = (uint64_t)sqlite3_column_int64(st, 2);
        r->fp_len = (uint32_t)sqlite3_column_int64(st, 3);
        r->offset = (uint64_t)sqlite3_column_int64(st, 4);
        const unsigned char *p = sqlite3_column_text(st, 5);
        r->path = p ? strdup((const char *)p) : NULL;
        r->updated = sqlite3_column_int64(st, 6);
        r->rotated = sqlite3_column_int64(st, 7) != 0;
    }
    return step < 0 ? err->code : 0; /* a damaged page is not the end of the rows */
}

static int load_work(struct sl_sqlite_conn *conn, void *arg, struct sl_error *err)
{
    struct sl__file_ckpt *c = arg; /* the loop leaves it alone until load_done */
    c->load_ran = true;
    int rc = sl_sqlite_exec(conn, schema, err);
    if (!rc) rc = check_db(conn, err);
    if (!rc) rc = add_rotated_column(conn, err);
    if (!rc) rc = load_rows(conn, c, err);
    return rc;
}

/* err holds SQLite's complaint: say where, and what the operator can do. */
static void load_done(struct sl_stage *stage, void *arg, int rc, const struct sl_error *err)
{
    struct sl__file_ckpt *c = arg;
    struct sl_error said = {0};
    if (rc == SL_ENOMEM || rc == SL_ESTOPPED)
        sl_error_set(&said, rc, "%s", err->msg);
    else if (rc && !c->load_ran) /* no connection: the pool's message names the file */
        sl_error_set(&said, SL_EIO, "checkpoints: %s", err->msg);
    else if (rc)
        sl_error_set(&said, SL_EIO,
                     "checkpoint database '%s' cannot be read: %.300s (`sluice checkpoints "
                     "--check %s` tells more; remove it to read every file again)",
                     c->path, err->msg, c->path);
    c->loaded(stage, c->loaded_arg, said.code, &said);
}

int sl__file_ckpt_open(struct sl_stage *stage, const char *path, sl__file_ckpt_done_fn *loaded,
                       void *arg, struct sl__file_ckpt **out, struct sl_error *err)
{
    struct sl__file_ckpt *c = calloc(1, sizeof *c);
    if (!c || !(c->source = strdup(sl_stage_name(stage))) || !(c->path = strdup(path))) {
        sl__file_ckpt_close(c);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    c->stage = stage;
    c->loaded = loaded;
    c->loaded_arg = arg;
    int rc = 0;
    if (!(c->pool = sl_sqlite_pool(stage, path, NULL, err)))
        rc = err->code;
    else if (sl_sqlite_submit(c->pool, stage, SL_SQLITE_WRITE, load_work, load_done, c))
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
    if (rc) {
        sl__file_ckpt_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* ---- the loaded rows: the loop thread ----------------------------------------------------- */

const struct sl__file_ckpt_row *sl__file_ckpt_find(const struct sl__file_ckpt *c, uint64_t dev,
                                                   uint64_t ino)
{
    for (size_t i = 0; c && i < c->nrows; i++)
        if (c->rows[i].dev == dev && c->rows[i].ino == ino) return &c->rows[i];
    return NULL;
}

size_t sl__file_ckpt_rows(const struct sl__file_ckpt *c, const struct sl__file_ckpt_row **rows)
{
    *rows = c ? c->rows : NULL;
    return c ? c->nrows : 0;
}

/* Makes loaded row `r` what `w` says (its path copied; the old one freed). */
static void set_row(struct sl__file_ckpt_row *r, const struct sl__file_ckpt_row *w, char *path)
{
    free(r->path);
    *r = *w;
    r->path = path;
    r->updated = (int64_t)time(NULL);
    r->remove = false;
}

void sl__file_ckpt_apply(struct sl__file_ckpt *c, const struct sl__file_ckpt_row *rows, size_t n)
{
    for (size_t i = 0; c && i < n; i++) {
        const struct sl__file_ckpt_row *w = &rows[i];
        size_t k = 0;
        while (k < c->nrows && (c->rows[k].dev != w->dev || c->rows[k].ino != w->ino)) k++;
        if (w->remove) {
            if (k == c->nrows) continue;
            free(c->rows[k].path);
            c->rows[k] = c->rows[--c->nrows];
            continue;
        }
        char *path = w->path ? strdup(w->path) : NULL;
        if (k == c->nrows) {
            struct sl__file_ckpt_row *nr = realloc(c->rows, (c->nrows + 1) * sizeof *nr);
            if (!nr) { /* the database has it; only this run's copy judgements miss it */
                free(path);
                continue;
            }
            c->rows = nr;
            c->rows[c->nrows++] = (struct sl__file_ckpt_row){0};
        }
        set_row(&c->rows[k], w, path);
    }
}

/* ---- saving: a write request of the pool ---------------------------------------------------- */

struct save_req {
    const struct sl__file_ckpt *c;        /* its source name only: immutable */
    const struct sl__file_ckpt_row *rows; /* borrowed from the caller until done */
    size_t n;                             /* rows */
    sl__file_ckpt_done_fn *done;          /* the caller's end */
    void *arg;                            /* its argument */
};

static int save_row(struct sl_sqlite_conn *conn, const char *source,
                    const struct sl__file_ckpt_row *r, struct sl_error *err)
{
    static const char up[] =
        "INSERT INTO file_checkpoints (source, dev, ino, fp, fp_len, offset, path,"
        " updated, rotated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, strftime('%s','now'), ?8)"
        " ON CONFLICT (source, dev, ino) DO UPDATE SET fp = ?4, fp_len = ?5,"
        " offset = ?6, path = ?7, updated = strftime('%s','now'), rotated = ?8";
    static const char del[] =
        "DELETE FROM file_checkpoints WHERE source = ?1 AND dev = ?2 AND ino = ?3";
    sqlite3_stmt *st = sl_sqlite_prepare(conn, r->remove ? del : up, err);
    if (!st) return err->code;
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)r->dev);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)r->ino);
    if (!r->remove) {
        sqlite3_bind_int64(st, 4, (sqlite3_int64)r->fp);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)r->fp_len);
        sqlite3_bind_int64(st, 6, (sqlite3_int64)r->offset);
        sqlite3_bind_text(st, 7, r->path, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 8, r->rotated);
    }
    return sl_sqlite_step(conn, st, err) < 0 ? err->code : 0;
}

/* True for SQLite errors that may pass: a lock held too long, a full disk, an I/O error,
 * memory. A damaged file, a read-only one or one that is not a database will fail every
 * save the same way. */
static bool transient(int code)
{
    switch (code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_NOMEM:
    case SQLITE_INTERRUPT: return true;
    default: return false;
    }
}

static int save_work(struct sl_sqlite_conn *conn, void *arg, struct sl_error *err)
{
    struct save_req *q = arg;
    int rc = sl_sqlite_exec(conn, "BEGIN IMMEDIATE", err);
    for (size_t i = 0; !rc && i < q->n; i++) rc = save_row(conn, q->c->source, &q->rows[i], err);
    if (!rc) rc = sl_sqlite_exec(conn, "COMMIT", err);
    if (!rc) return 0; /* a transaction left open is rolled back by the pool */
    return rc == SL_EBUSY || transient(sqlite3_extended_errcode(sl_sqlite_db(conn))) ? SL_EAGAIN
                                                                                     : SL_EIO;
}

static void save_done(struct sl_stage *stage, void *arg, int rc, const struct sl_error *err)
{
    struct save_req *q = arg;
    struct sl_error said = {0};
    if (rc == SL_EBUSY) rc = SL_EAGAIN; /* no connection within acquire_timeout */
    if (rc) sl_error_set(&said, rc, "checkpoint save failed: %.400s", err->msg);
    q->done(stage, q->arg, rc, &said);
    free(q);
}

int sl__file_ckpt_save(struct sl__file_ckpt *c, const struct sl__file_ckpt_row *rows, size_t n,
                       sl__file_ckpt_done_fn *done, void *arg)
{
    struct save_req *q = malloc(sizeof *q);
    if (!q) return SL_ENOMEM;
    *q = (struct save_req){.c = c, .rows = rows, .n = n, .done = done, .arg = arg};
    int rc = sl_sqlite_submit(c->pool, c->stage, SL_SQLITE_WRITE, save_work, save_done, q);
    if (rc) free(q);
    return rc;
}

void sl__file_ckpt_close(struct sl__file_ckpt *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->nrows; i++) free(c->rows[i].path);
    free(c->rows);
    free(c->source);
    free(c->path);
    free(c);
}
