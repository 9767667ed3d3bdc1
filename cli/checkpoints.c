/* `sluice checkpoints DB`: what a file source's checkpoint database holds, whether it is
 * sound, and forgetting a source (or one of its files) so that it is read again. An
 * operator's tool over the table the file source keeps (connectors/file/README.md):
 *
 *   sluice checkpoints state/checkpoints.db                  the rows, per source
 *   sluice checkpoints --check state/checkpoints.db          SQLite's integrity_check
 *   sluice checkpoints --reset app state/checkpoints.db      forget source `app`
 *   sluice checkpoints --reset app --file /x/a.log ...       forget one file of it
 *
 * A reset is refused while a run holds the directory's lock (.sluice.lock). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static sqlite3 *open_db(const char *path, bool write)
{
    sqlite3 *db = NULL;
    int flags = write ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY;
    if (access(path, F_OK) != 0) {
        cli_log(SL_LOG_ERROR, NULL, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        cli_log(SL_LOG_ERROR, NULL, "%s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static int list(sqlite3 *db, const char *path)
{
    sqlite3_stmt *st;
    const char *q = "SELECT source, offset, updated, path FROM file_checkpoints"
                    " ORDER BY source, path";
    if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK) {
        cli_log(SL_LOG_ERROR, NULL, "%s: %s", path, sqlite3_errmsg(db));
        return CLI_ERUN;
    }
    printf("%-16s %14s  %-20s  %s\n", "SOURCE", "OFFSET", "SAVED (UTC)", "FILE");
    int step, rows = 0;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        time_t when = (time_t)sqlite3_column_int64(st, 2);
        char at[32];
        strftime(at, sizeof at, "%Y-%m-%d %H:%M:%S", gmtime(&when));
        const unsigned char *src = sqlite3_column_text(st, 0), *file = sqlite3_column_text(st, 3);
        printf("%-16s %14lld  %-20s  %s\n", src ? (const char *)src : "",
               (long long)sqlite3_column_int64(st, 1), at, file ? (const char *)file : "-");
        rows++;
    }
    int rc = CLI_OK;
    if (step != SQLITE_DONE) {
        cli_log(SL_LOG_ERROR, NULL, "%s: %s (try --check)", path, sqlite3_errmsg(db));
        rc = CLI_ERUN;
    }
    sqlite3_finalize(st);
    fprintf(stderr, "%d checkpoint%s\n", rows, rows == 1 ? "" : "s");
    return rc;
}

static int check(sqlite3 *db, const char *path)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK) {
        cli_log(SL_LOG_ERROR, NULL, "%s: %s", path, sqlite3_errmsg(db));
        return CLI_ERUN;
    }
    int step, bad = 0;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *said = (const char *)sqlite3_column_text(st, 0);
        if (said && strcmp(said, "ok") == 0) continue;
        printf("%s\n", said ? said : "?");
        bad++;
    }
    if (step != SQLITE_DONE) {
        printf("%s\n", sqlite3_errmsg(db));
        bad++;
    }
    sqlite3_finalize(st);
    if (!bad) {
        printf("%s: ok\n", path);
        return CLI_OK;
    }
    cli_log(SL_LOG_ERROR, NULL,
            "%s is damaged; remove it (and its -wal and -shm files) to start over: every file "
            "is then read again from its start (duplicates, never loss)",
            path);
    return CLI_ERUN;
}

/* True when a run holds the lock of the directory `path` is in (the pid into `pid`). */
static bool held_by_a_run(const char *path, char *pid, size_t cap)
{
    char copy[4096], lock[4200];
    snprintf(copy, sizeof copy, "%s", path);
    snprintf(lock, sizeof lock, "%s/.sluice.lock", dirname(copy));
    int fd = open(lock, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    ssize_t n = held ? pread(fd, pid, cap - 1, 0) : 0;
    pid[n > 0 ? n : 0] = '\0';
    pid[strcspn(pid, "\n")] = '\0';
    close(fd);
    return held;
}

static int reset(sqlite3 *db, const char *path, const char *source, const char *file)
{
    char pid[32];
    if (held_by_a_run(path, pid, sizeof pid)) {
        cli_log(SL_LOG_ERROR, NULL, "%s is in use by a run (pid %s): stop it first", path,
                *pid ? pid : "unknown");
        return CLI_ERUN;
    }
    sqlite3_stmt *st;
    const char *q = file ? "DELETE FROM file_checkpoints WHERE source = ?1 AND path = ?2"
                         : "DELETE FROM file_checkpoints WHERE source = ?1";
    if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK) {
        cli_log(SL_LOG_ERROR, NULL, "%s: %s", path, sqlite3_errmsg(db));
        return CLI_ERUN;
    }
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    if (file) sqlite3_bind_text(st, 2, file, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    if (step != SQLITE_DONE) {
        cli_log(SL_LOG_ERROR, NULL, "%s: %s", path, sqlite3_errmsg(db));
        return CLI_ERUN;
    }
    int n = sqlite3_changes(db);
    printf("forgot %d checkpoint%s of source '%s'%s%s: read again from read_from at the next "
           "run\n",
           n, n == 1 ? "" : "s", source, file ? " for " : "", file ? file : "");
    return CLI_OK;
}

int cli_cmd_checkpoints(const struct cli_opts *o)
{
    const char *path = o->configs[0];
    sqlite3 *db = open_db(path, o->reset_source != NULL);
    if (!db) return CLI_ERUN;
    int rc = o->check          ? check(db, path)
             : o->reset_source ? reset(db, path, o->reset_source, o->reset_file)
                               : list(db, path);
    sqlite3_close(db);
    return rc;
}
