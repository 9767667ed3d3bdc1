/* What a request does with the connection it was lent, on an executor thread: prepared
 * statements cached per connection, steps with SQLITE_BUSY / SQLITE_LOCKED retried with
 * exponential backoff and jitter (the thread may wait: it is not the loop), errors with
 * SQLite's message and the statement's text. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "sqlite/internal.h"

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

int sl__sqlite_conn_open(struct sl_sqlite_conn *c, const char *path, struct sl_error *err)
{
    static const char setup[] = "PRAGMA journal_mode=WAL;"
                                "PRAGMA synchronous=NORMAL;"
                                "PRAGMA foreign_keys=ON;";
    make_parent_dirs(path);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &c->db, flags, NULL) == SQLITE_OK) {
        sqlite3_extended_result_codes(c->db, 1);
        if (sl_sqlite_exec(c, setup, err) == 0) {
            c->opened_ns = sl__now_ns();
            return 0;
        }
    } else {
        sl_error_set(err, SL_EIO, "cannot open SQLite database '%s': %s", path,
                     c->db ? sqlite3_errmsg(c->db) : strerror(errno));
    }
    sqlite3_close(c->db);
    c->db = NULL;
    return SL_EIO;
}

void sl__sqlite_conn_close(struct sl_sqlite_conn *c)
{
    sqlite3_finalize(c->once);
    c->once = NULL;
    for (uint32_t i = 0; i < c->nstmts; i++) {
        sqlite3_finalize(c->stmts[i].st);
        free(c->stmts[i].sql);
    }
    c->nstmts = 0;
    sqlite3_close(c->db);
    c->db = NULL;
}

sqlite3 *sl_sqlite_db(struct sl_sqlite_conn *c)
{
    return c->db;
}

/* Sleeps `ms` on this executor thread (never the loop). */
static void pause_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) && errno == EINTR) continue;
}

static bool is_busy(int rc)
{
    return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
}

/* sqlite3_prepare_v3 with SQLITE_BUSY retried: preparing reads the schema, which a
 * writer (another connection setting up WAL, say) may hold locked. */
static int prepare(struct sl_sqlite_conn *c, const char *sql, unsigned flags, sqlite3_stmt **st,
                   const char **tail, struct sl_error *err)
{
    int64_t deadline = sl__now_ns() + c->busy_ms * 1000000;
    struct sl_backoff b;
    sl_backoff_init(&b, 1, 100);
    for (;;) {
        int rc = sqlite3_prepare_v3(c->db, sql, -1, flags, st, tail);
        if (rc == SQLITE_OK) return 0;
        if (!is_busy(rc) || sl__now_ns() >= deadline)
            return sl_error_set(err, is_busy(rc) ? SL_EBUSY : SL_EIO, "%s (in: %.200s)",
                                sqlite3_errmsg(c->db), sql);
        atomic_fetch_add(&c->counters->retries, 1);
        pause_ms(sl_backoff_next(&b));
    }
}

/* A cache slot for a new statement: a free one, else the least recently used. */
static struct sl__stmt *slot(struct sl_sqlite_conn *c)
{
    if (c->nstmts < c->cap) return &c->stmts[c->nstmts++];
    struct sl__stmt *old = &c->stmts[0];
    for (uint32_t i = 1; i < c->nstmts; i++)
        if (c->stmts[i].used < old->used) old = &c->stmts[i];
    sqlite3_finalize(old->st);
    free(old->sql);
    return old;
}

sqlite3_stmt *sl_sqlite_prepare(struct sl_sqlite_conn *c, const char *sql, struct sl_error *err)
{
    for (uint32_t i = 0; i < c->nstmts; i++) {
        struct sl__stmt *s = &c->stmts[i];
        if (s->sql != sql && strcmp(s->sql, sql) != 0) continue;
        sqlite3_reset(s->st);
        sqlite3_clear_bindings(s->st);
        s->used = ++c->clock;
        return s->st;
    }
    sqlite3_stmt *st;
    if (prepare(c, sql, SQLITE_PREPARE_PERSISTENT, &st, NULL, err)) return NULL;
    char *copy = c->cap ? sl__strdup(sql) : NULL;
    if (!copy) { /* no cache (or no memory for it): the statement lives for this request */
        if (c->cap) {
            sqlite3_finalize(st);
            sl_error_set(err, SL_ENOMEM, "out of memory");
            return NULL;
        }
        sqlite3_finalize(c->once);
        return c->once = st;
    }
    struct sl__stmt *s = slot(c);
    *s = (struct sl__stmt){.sql = copy, .st = st, .used = ++c->clock};
    return st;
}

int sl_sqlite_step(struct sl_sqlite_conn *c, sqlite3_stmt *st, struct sl_error *err)
{
    int64_t deadline = sl__now_ns() + c->busy_ms * 1000000;
    struct sl_backoff b;
    sl_backoff_init(&b, 1, 100);
    for (;;) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) return rc;
        if (rc == SQLITE_DONE) {
            atomic_fetch_add(&c->counters->statements, 1);
            return rc;
        }
        bool busy = is_busy(rc);
        if (busy && sl__now_ns() < deadline) {
            atomic_fetch_add(&c->counters->retries, 1);
            sqlite3_reset(st); /* keeps the bindings */
            pause_ms(sl_backoff_next(&b));
            continue;
        }
        const char *sql = sqlite3_sql(st);
        sl_error_set(err, busy ? SL_EBUSY : SL_EIO, "%s%s (in: %.200s)", sqlite3_errmsg(c->db),
                     busy ? ", for longer than busy_timeout" : "", sql ? sql : "?");
        return -1;
    }
}

int sl_sqlite_exec(struct sl_sqlite_conn *c, const char *sql, struct sl_error *err)
{
    const char *rest = sql;
    while (rest && *rest) {
        sqlite3_stmt *st = NULL;
        const char *next = NULL;
        int rc = prepare(c, rest, 0, &st, &next, err);
        if (rc) return rc;
        while (st && (rc = sl_sqlite_step(c, st, err)) == SQLITE_ROW) continue;
        sqlite3_finalize(st);
        if (rc < 0) return err && err->code ? err->code : SL_EIO;
        rest = next;
    }
    return 0;
}
