/* Checkpoints in SQLite: one row per (source, file identity) with the acknowledged
 * offset. The rows of a source are loaded once at start; saves write changed rows in one
 * transaction, from an executor thread while the pipeline runs and from close() at the
 * end. WAL mode with synchronous=NORMAL: a save lost to a crash only means replaying
 * lines that were already delivered (duplicates, never loss), and the file cannot be
 * corrupted by a kill. */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "internal.h"

struct sl__file_ckpt {
    sqlite3 *db;                    /* the connection */
    char *source;                   /* the source's stage name: the rows' first key */
    struct sl__file_ckpt_row *rows; /* loaded at open */
    size_t nrows;                   /* entries in rows */
    sqlite3_stmt *upsert, *del;     /* prepared statements */
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

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS file_checkpoints ("
    " source TEXT NOT NULL, dev INTEGER NOT NULL, ino INTEGER NOT NULL,"
    " fp INTEGER NOT NULL, fp_len INTEGER NOT NULL, offset INTEGER NOT NULL,"
    " path TEXT, updated INTEGER NOT NULL, rotated INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (source, dev, ino));";

/* Databases made before the `rotated` column get it (0: an ordinary row). */
static int add_rotated_column(sqlite3 *db)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT rotated FROM file_checkpoints LIMIT 0", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_finalize(st);
        return SQLITE_OK;
    }
    return sqlite3_exec(db,
                        "ALTER TABLE file_checkpoints ADD COLUMN rotated INTEGER NOT NULL "
                        "DEFAULT 0",
                        NULL, NULL, NULL);
}

/* mkdir -p of the directory part of `path`. */
static void make_parent_dirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        mkdir(buf, 0755); /* EEXIST is fine; a real failure shows at sqlite3_open */
        *p = '/';
    }
}

static int load_rows(struct sl__file_ckpt *c, struct sl_error *err)
{
    sqlite3_stmt *st;
    const char *q = "SELECT dev, ino, fp, fp_len, offset, path, updated, rotated"
                    " FROM file_checkpoints WHERE source = ?1";
    if (sqlite3_prepare_v2(c->db, q, -1, &st, NULL) != SQLITE_OK)
        return sl_error_set(err, SL_EIO, "checkpoints: %s", sqlite3_errmsg(c->db));
    sqlite3_bind_text(st, 1, c->source, -1, SQLITE_STATIC);
    int rc = 0, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        struct sl__file_ckpt_row *nr = realloc(c->rows, (c->nrows + 1) * sizeof *nr);
        if (!nr) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
            break;
        }
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
    if (!rc && step != SQLITE_DONE) /* a damaged page is not the end of the rows */
        rc = sl_error_set(err, SL_EIO, "%s", sqlite3_errmsg(c->db));
    sqlite3_finalize(st);
    return rc;
}

/* SQLite's quick_check of the whole file: a damaged database must stop the run, not be
 * read as "no checkpoints" (every file read again) or fail each save in silence. Returns
 * 0, or SL_EIO with its first complaint in `err`. */
static int check_db(struct sl__file_ckpt *c, struct sl_error *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, "PRAGMA quick_check(1)", -1, &st, NULL) != SQLITE_OK)
        return sl_error_set(err, SL_EIO, "%s", sqlite3_errmsg(c->db));
    int step = sqlite3_step(st), rc = 0;
    const unsigned char *said = step == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    if (step != SQLITE_ROW)
        rc = sl_error_set(err, SL_EIO, "%s", sqlite3_errmsg(c->db));
    else if (!said || strcmp((const char *)said, "ok") != 0) {
        rc = sl_error_set(err, SL_EIO, "damaged: %s", said ? (const char *)said : "?");
        for (char *nl; err && (nl = strchr(err->msg, '\n'));) *nl = ' '; /* one line */
    }
    sqlite3_finalize(st);
    return rc;
}

int sl__file_ckpt_open(const char *path, const char *source, struct sl__file_ckpt **out,
                       struct sl_error *err)
{
    struct sl__file_ckpt *c = calloc(1, sizeof *c);
    if (!c || !(c->source = strdup(source))) {
        free(c);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    make_parent_dirs(path);
    int rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) goto fail_db;
    sqlite3_busy_timeout(c->db, 5000);
    if (sqlite3_exec(c->db, schema, NULL, NULL, NULL) != SQLITE_OK) goto fail_db;
    if ((rc = check_db(c, err)) != 0) goto fail_said;
    if (add_rotated_column(c->db) != SQLITE_OK) goto fail_db;
    const char *up = "INSERT INTO file_checkpoints (source, dev, ino, fp, fp_len, offset, path,"
                     " updated, rotated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,"
                     " strftime('%s','now'), ?8)"
                     " ON CONFLICT (source, dev, ino) DO UPDATE SET fp = ?4, fp_len = ?5,"
                     " offset = ?6, path = ?7, updated = strftime('%s','now'), rotated = ?8";
    const char *del = "DELETE FROM file_checkpoints WHERE source = ?1 AND dev = ?2 AND ino = ?3";
    if (sqlite3_prepare_v2(c->db, up, -1, &c->upsert, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db, del, -1, &c->del, NULL) != SQLITE_OK)
        goto fail_db;
    if ((rc = load_rows(c, err)) != 0) goto fail_said;
    *out = c;
    return 0;

fail_said: /* err holds SQLite's complaint: say where, and what the operator can do */
    if (rc != SL_ENOMEM) {
        char said[400];
        snprintf(said, sizeof said, "%.300s", err ? err->msg : "");
        rc = sl_error_set(err, SL_EIO,
                          "checkpoint database '%s' cannot be read: %s (`sluice checkpoints "
                          "--check %s` tells more; remove it to read every file again)",
                          path, said, path);
    }
    sl__file_ckpt_close(c);
    return rc;

fail_db:
    rc = sl_error_set(err, SL_EIO, "cannot open checkpoint database '%s': %s", path,
                      c->db ? sqlite3_errmsg(c->db) : strerror(errno));
    sl__file_ckpt_close(c);
    return rc;
}

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

static int save_row(struct sl__file_ckpt *c, const struct sl__file_ckpt_row *r)
{
    sqlite3_stmt *st = r->remove ? c->del : c->upsert;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, c->source, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)r->dev);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)r->ino);
    if (!r->remove) {
        sqlite3_bind_int64(st, 4, (sqlite3_int64)r->fp);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)r->fp_len);
        sqlite3_bind_int64(st, 6, (sqlite3_int64)r->offset);
        sqlite3_bind_text(st, 7, r->path, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 8, r->rotated);
    }
    int rc = sqlite3_step(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : SL_EIO;
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

int sl__file_ckpt_save(struct sl__file_ckpt *c, const struct sl__file_ckpt_row *rows, size_t n,
                       char *msg, size_t cap)
{
    if (n == 0) return 0;
    int rc = sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK ? 0 : SL_EIO;
    for (size_t i = 0; !rc && i < n; i++) rc = save_row(c, &rows[i]);
    if (!rc && sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) rc = SL_EIO;
    if (rc) {
        int code = sqlite3_extended_errcode(c->db);
        snprintf(msg, cap, "checkpoint save failed: %s", sqlite3_errmsg(c->db));
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        rc = transient(code) ? SL_EAGAIN : SL_EIO;
    }
    return rc;
}

int sl__file_ckpt_purge(struct sl__file_ckpt *c,
                        bool (*gone)(void *arg, const struct sl__file_ckpt_row *r), void *arg,
                        size_t *purged, char *msg, size_t cap)
{
    *purged = 0;
    struct sl__file_ckpt_row *del = calloc(c->nrows + 1, sizeof *del);
    bool *drop = calloc(c->nrows + 1, sizeof *drop);
    if (!del || !drop) {
        free(del);
        free(drop);
        snprintf(msg, cap, "checkpoint purge: out of memory");
        return SL_ENOMEM;
    }
    size_t n = 0;
    for (size_t i = 0; i < c->nrows; i++) {
        if (!(drop[i] = gone(arg, &c->rows[i]))) continue;
        del[n] = c->rows[i]; /* the path stays owned by c->rows */
        del[n++].remove = true;
    }
    int rc = sl__file_ckpt_save(c, del, n, msg, cap);
    free(del);
    if (!rc) { /* the deleted rows leave the loaded ones too */
        size_t k = 0;
        for (size_t i = 0; i < c->nrows; i++) {
            if (drop[i])
                free(c->rows[i].path);
            else
                c->rows[k++] = c->rows[i];
        }
        c->nrows = k;
        *purged = n;
    }
    free(drop);
    return rc;
}

void sl__file_ckpt_close(struct sl__file_ckpt *c)
{
    if (!c) return;
    sqlite3_finalize(c->upsert);
    sqlite3_finalize(c->del);
    sqlite3_close(c->db);
    for (size_t i = 0; i < c->nrows; i++) free(c->rows[i].path);
    free(c->rows);
    free(c->source);
    free(c);
}
