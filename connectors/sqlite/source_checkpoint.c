/* Acknowledgements and checkpoints of the `sqlite` source.
 *
 * Each page returned by poll() is one entry of a ring of pages in flight (its sequence
 * number is the batch's cookie, its value the tracking value of its last row). ack()
 * comes in production order and moves the acknowledged value to the entry's: the
 * checkpoint never passes a row that is not acknowledged. The value is saved in table
 * query_checkpoints (source TEXT PRIMARY KEY, last, updated) of the checkpoint database
 * (not `sqlite_checkpoints`: SQLite reserves names that begin with "sqlite_")
 * through its pool (a write request, never on the loop): right after the run's first
 * acknowledgement, every checkpoint_interval, every checkpoint_pages acknowledged pages,
 * and when the source has ended and its last page is acknowledged (the run waits for
 * that save). One save is out at a time; what is acknowledged meanwhile goes with the
 * next. `last` has no declared type, so a value keeps its SQLite type (an integer stays
 * an integer, text that looks like a number stays text). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "source.h"

#define FINAL_TRIES 3 /* saves attempted after the end before giving up (with a log line) */

/* ---- values ---------------------------------------------------------------------------- */

void sl__sqlsrc_value_free(struct sl__sqlsrc_value *v)
{
    free(v->bytes);
    *v = (struct sl__sqlsrc_value){0};
}

int sl__sqlsrc_value_copy(struct sl__sqlsrc_value *to, const struct sl__sqlsrc_value *from)
{
    sl__sqlsrc_value_free(to);
    *to = *from;
    if (!from->bytes) return 0;
    if (!(to->bytes = malloc(from->len + 1))) {
        *to = (struct sl__sqlsrc_value){0};
        return SL_ENOMEM;
    }
    memcpy(to->bytes, from->bytes, from->len + 1);
    return 0;
}

int sl__sqlsrc_value_bind(sqlite3_stmt *st, int i, const struct sl__sqlsrc_value *v)
{
    switch (v->type) {
    case SQLITE_INTEGER: return sqlite3_bind_int64(st, i, v->i);
    case SQLITE_FLOAT: return sqlite3_bind_double(st, i, v->f);
    case SQLITE_TEXT: return sqlite3_bind_text(st, i, v->bytes, (int)v->len, SQLITE_STATIC);
    case SQLITE_BLOB: return sqlite3_bind_blob(st, i, v->bytes, (int)v->len, SQLITE_STATIC);
    default: return sqlite3_bind_null(st, i);
    }
}

int sl__sqlsrc_value_read(sqlite3_stmt *st, int i, struct sl__sqlsrc_value *v)
{
    sl__sqlsrc_value_free(v);
    v->type = sqlite3_column_type(st, i);
    if (v->type == SQLITE_INTEGER) v->i = sqlite3_column_int64(st, i);
    if (v->type == SQLITE_FLOAT) v->f = sqlite3_column_double(st, i);
    if (v->type == SQLITE_NULL) v->type = 0;
    if (v->type != SQLITE_TEXT && v->type != SQLITE_BLOB) return 0;
    const void *p = v->type == SQLITE_TEXT ? (const void *)sqlite3_column_text(st, i)
                                           : sqlite3_column_blob(st, i);
    v->len = (size_t)sqlite3_column_bytes(st, i);
    if (!(v->bytes = malloc(v->len + 1))) return SL_ENOMEM;
    if (v->len) memcpy(v->bytes, p, v->len);
    v->bytes[v->len] = '\0';
    return 0;
}

int sl__sqlsrc_value_parse(const char *text, struct sl__sqlsrc_value *v)
{
    sl__sqlsrc_value_free(v);
    char *end;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    if (*text && !*end && !errno) {
        *v = (struct sl__sqlsrc_value){.type = SQLITE_INTEGER, .i = n};
        return 0;
    }
    v->len = strlen(text);
    if (!(v->bytes = strdup(text))) return SL_ENOMEM;
    v->type = SQLITE_TEXT;
    return 0;
}

const char *sl__sqlsrc_value_show(const struct sl__sqlsrc_value *v, char *buf, size_t cap)
{
    switch (v->type) {
    case SQLITE_INTEGER: snprintf(buf, cap, "%lld", (long long)v->i); break;
    case SQLITE_FLOAT: snprintf(buf, cap, "%.17g", v->f); break;
    case SQLITE_TEXT:
        snprintf(buf, cap, "'%.*s'", (int)(v->len < 64 ? v->len : 64), v->bytes);
        break;
    case SQLITE_BLOB: snprintf(buf, cap, "a blob of %zu bytes", v->len); break;
    default: snprintf(buf, cap, "the first row");
    }
    return buf;
}

/* ---- pages in flight --------------------------------------------------------------------- */

int sl__sqlsrc_track(struct sl__sqlsrc *s, struct sl_batch *b)
{
    if (s->fl_count == s->fl_cap) {
        size_t cap = s->fl_cap ? s->fl_cap * 2 : 16;
        struct sl__sqlsrc_flight *nf = calloc(cap, sizeof *nf);
        if (!nf) return SL_ENOMEM;
        for (size_t i = 0; i < s->fl_count; i++) nf[i] = s->flights[(s->fl_head + i) % s->fl_cap];
        free(s->flights);
        s->flights = nf;
        s->fl_cap = cap;
        s->fl_head = 0;
    }
    struct sl__sqlsrc_flight *e = &s->flights[(s->fl_head + s->fl_count) % s->fl_cap];
    *e = (struct sl__sqlsrc_flight){.seq = s->next_seq};
    if (sl__sqlsrc_value_copy(&e->last, &s->last)) return SL_ENOMEM;
    s->fl_count++;
    sl_batch_set_cookie(b, s->next_seq++);
    return 0;
}

void sl__sqlsrc_flights_free(struct sl__sqlsrc *s)
{
    for (size_t i = 0; i < s->fl_count; i++)
        sl__sqlsrc_value_free(&s->flights[(s->fl_head + i) % s->fl_cap].last);
    free(s->flights);
    s->flights = NULL;
    s->fl_count = s->fl_cap = s->fl_head = 0;
}

void sl__sqlsrc_ack(struct sl_stage *stage, struct sl_batch *b)
{
    struct sl__sqlsrc *s = sl_stage_state(stage);
    uint64_t seq = sl_batch_cookie(b);
    while (s->fl_count && s->flights[s->fl_head].seq <= seq) {
        struct sl__sqlsrc_flight *e = &s->flights[s->fl_head];
        sl__sqlsrc_value_free(&s->acked);
        s->acked = e->last; /* moved */
        e->last = (struct sl__sqlsrc_value){0};
        s->fl_head = (s->fl_head + 1) % s->fl_cap;
        s->fl_count--;
        s->dirty = true;
        s->pages_unsaved++;
    }
    bool last = s->ended && !s->fl_count;
    bool many = s->checkpoint_pages && s->pages_unsaved >= (uint64_t)s->checkpoint_pages;
    if (!s->acked_once || last || many) {
        s->acked_once = true;
        sl__sqlsrc_save(s);
    }
}

/* ---- saving -------------------------------------------------------------------------------- */

struct save_job {
    struct sl__sqlsrc *s;          /* the source (its stage's name: the row's key) */
    struct sl__sqlsrc_value value; /* what to save (a copy) */
    int64_t updated;               /* unix seconds */
};

static int save_work(struct sl_sqlite_conn *c, void *arg, struct sl_error *err)
{
    struct save_job *j = arg;
    sqlite3_stmt *st = sl_sqlite_prepare(
        c,
        "INSERT INTO query_checkpoints (source, last, updated) VALUES (?1, ?2, ?3)"
        " ON CONFLICT (source) DO UPDATE SET last = excluded.last, updated = excluded.updated",
        err);
    if (!st) return err->code ? err->code : SL_EIO;
    sqlite3_bind_text(st, 1, sl_stage_name(j->s->stage), -1, SQLITE_STATIC);
    sl__sqlsrc_value_bind(st, 2, &j->value);
    sqlite3_bind_int64(st, 3, j->updated);
    return sl_sqlite_step(c, st, err) == SQLITE_DONE ? 0 : (err->code ? err->code : SL_EIO);
}

static void save_failed(struct sl__sqlsrc *s, int rc, const struct sl_error *err)
{
    s->dirty = true; /* what it carried is still to be saved */
    if (s->ended) s->final_tries++;
    if (rc == SL_EBUSY || err->code == SL_EBUSY) { /* the next save tries again */
        sl_stage_log(s->stage, SL_LOG_WARN, "checkpoint not saved in %s: %s (retrying)",
                     s->ckpt_path, err->msg);
    } else if (!s->ended) { /* progress could no longer be kept */
        sl_stage_error(s->stage, rc, "cannot save the checkpoint in %s: %s", s->ckpt_path,
                       err->msg);
        sl_stage_wake(s->stage);
    }
    if (s->ended && s->final_tries >= FINAL_TRIES)
        sl_stage_log(s->stage, SL_LOG_ERROR,
                     "the last checkpoint was not saved in %s: %s; the next run replays "
                     "what was acknowledged since the one before",
                     s->ckpt_path, err->msg);
}

static void save_done(struct sl_stage *stage, void *arg, int rc, const struct sl_error *err)
{
    struct save_job *j = arg;
    struct sl__sqlsrc *s = sl_stage_state(stage);
    s->saving = false;
    if (rc == SL_ESTOPPED) {
        s->dirty = true;
    } else if (rc) {
        save_failed(s, rc, err);
    } else {
        char buf[96];
        sl_stage_log(stage, SL_LOG_DEBUG, "checkpoint saved: after %s",
                     sl__sqlsrc_value_show(&j->value, buf, sizeof buf));
    }
    sl__sqlsrc_value_free(&j->value);
    free(j);
    if (s->dirty && s->ended && !s->fl_count && s->final_tries < FINAL_TRIES) sl__sqlsrc_save(s);
}

void sl__sqlsrc_save(struct sl__sqlsrc *s)
{
    if (!s->ckdb || !s->dirty || s->saving || !s->acked.type) return;
    struct save_job *j = calloc(1, sizeof *j);
    if (!j || sl__sqlsrc_value_copy(&j->value, &s->acked)) {
        free(j);
        return; /* stays dirty: the next tick tries again */
    }
    j->s = s;
    j->updated = (int64_t)time(NULL);
    if (sl_sqlite_submit(s->ckdb, s->stage, SL_SQLITE_WRITE, save_work, save_done, j)) {
        sl__sqlsrc_value_free(&j->value);
        free(j);
        return;
    }
    s->saving = true;
    s->dirty = false;
    s->pages_unsaved = 0;
}

void sl__sqlsrc_on_save_timer(struct sl_stage *stage, void *arg)
{
    (void)stage;
    sl__sqlsrc_save(arg);
}

/* ---- loading ------------------------------------------------------------------------------- */

struct load_job {
    struct sl__sqlsrc *s;          /* the source */
    struct sl__sqlsrc_value value; /* the checkpoint, type 0: none */
};

static int load_work(struct sl_sqlite_conn *c, void *arg, struct sl_error *err)
{
    struct load_job *j = arg;
    if (sl_sqlite_exec(c,
                       "CREATE TABLE IF NOT EXISTS query_checkpoints"
                       " (source TEXT PRIMARY KEY, last, updated INTEGER NOT NULL)",
                       err))
        return err->code ? err->code : SL_EIO;
    sqlite3_stmt *st =
        sl_sqlite_prepare(c, "SELECT last FROM query_checkpoints WHERE source = ?1", err);
    if (!st) return err->code ? err->code : SL_EIO;
    sqlite3_bind_text(st, 1, sl_stage_name(j->s->stage), -1, SQLITE_STATIC);
    int r = sl_sqlite_step(c, st, err);
    int rc = r < 0 ? (err->code ? err->code : SL_EIO) : 0;
    if (r == SQLITE_ROW && sl__sqlsrc_value_read(st, 0, &j->value))
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
    sqlite3_reset(st);
    return rc;
}

/* Where the first page starts: after the checkpoint, else after start_after. */
static int begin(struct sl__sqlsrc *s, struct sl__sqlsrc_value *ckpt)
{
    char buf[96];
    if (ckpt && ckpt->type) {
        sl__sqlsrc_value_free(&s->last);
        s->last = *ckpt; /* moved */
        *ckpt = (struct sl__sqlsrc_value){0};
        if (sl__sqlsrc_value_copy(&s->acked, &s->last)) return SL_ENOMEM;
        sl_stage_log(s->stage, SL_LOG_INFO, "resuming after %s (checkpoint in %s)",
                     sl__sqlsrc_value_show(&s->last, buf, sizeof buf), s->ckpt_path);
    } else if (s->start_after) {
        if (sl__sqlsrc_value_parse(s->start_after, &s->last)) return SL_ENOMEM;
        sl_stage_log(s->stage, SL_LOG_INFO, "starting after %s (start_after)",
                     sl__sqlsrc_value_show(&s->last, buf, sizeof buf));
    }
    s->phase = SQLSRC_IDLE;
    sl_stage_wake(s->stage);
    return 0;
}

static void load_done(struct sl_stage *stage, void *arg, int rc, const struct sl_error *err)
{
    struct load_job *j = arg;
    struct sl__sqlsrc *s = sl_stage_state(stage);
    if (rc && rc != SL_ESTOPPED && !s->ended) {
        s->retry_load = sl__sqlsrc_failed(s, "reading the checkpoint in", s->ckpt_path, rc, err);
    } else if (!rc && begin(s, &j->value)) {
        sl_stage_error(stage, SL_ENOMEM, "out of memory");
        sl_stage_wake(stage);
    }
    sl__sqlsrc_value_free(&j->value);
    free(j);
}

int sl__sqlsrc_load(struct sl__sqlsrc *s)
{
    s->phase = SQLSRC_LOADING;
    if (!s->ckdb) return begin(s, NULL);
    struct load_job *j = calloc(1, sizeof *j);
    if (!j) return SL_ENOMEM;
    j->s = s;
    if (sl_sqlite_submit(s->ckdb, s->stage, SL_SQLITE_WRITE, load_work, load_done, j)) {
        free(j);
        return SL_ENOMEM;
    }
    return 0;
}
