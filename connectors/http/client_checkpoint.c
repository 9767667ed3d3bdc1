/* Acknowledgements and checkpoints of the `http_client` source's pages.
 *
 * Each batch poll() returns is one entry of a ring of batches in flight: its sequence
 * number (the batch's cookie) and the position the read resumes at once it is
 * acknowledged (the next page, or the same page past the records delivered). ack() comes
 * in production order and moves the acknowledged position to the entry's, so the
 * checkpoint never passes a record that is not acknowledged. A page that gave no new
 * record (an empty page, a page already delivered) moves the position of the last entry
 * in flight, or the acknowledged one when none is.
 *
 * The position is saved in table http_checkpoints (source TEXT PRIMARY KEY, uri,
 * position, skip, updated) of the checkpoint database, through its pool (a write request
 * on an executor thread, never on the loop): after each acknowledgement that moved it,
 * one save at a time (what is acknowledged meanwhile goes with the next), and a last one
 * when the source has ended and its last batch is acknowledged (the run waits for that
 * save). A checkpoint saved for another `uri` is not used: the read starts over. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sluice/sqlite.h>

#include "client.h"

#define FINAL_TRIES 3 /* saves attempted after the end before giving up (with a log line) */

void sl__hcli_pos_free(struct sl__hcli_pos *p)
{
    free(p->pos);
    *p = (struct sl__hcli_pos){0};
}

int sl__hcli_pos_copy(struct sl__hcli_pos *to, const struct sl__hcli_pos *from)
{
    char *pos = from->pos ? strdup(from->pos) : NULL;
    if (from->pos && !pos) return SL_ENOMEM;
    int64_t skip = from->skip;
    sl__hcli_pos_free(to);
    *to = (struct sl__hcli_pos){.pos = pos, .skip = skip};
    return 0;
}

/* ---- batches in flight ------------------------------------------------------------------- */

int sl__hcli_track(struct sl__hcli *c, struct sl_batch *b, struct sl__hcli_pos *at)
{
    if (c->fl_count == c->fl_cap) {
        size_t cap = c->fl_cap ? c->fl_cap * 2 : 16;
        struct sl__hcli_flight *nf = calloc(cap, sizeof *nf);
        if (!nf) return SL_ENOMEM;
        for (size_t i = 0; i < c->fl_count; i++) nf[i] = c->flights[(c->fl_head + i) % c->fl_cap];
        free(c->flights);
        c->flights = nf;
        c->fl_cap = cap;
        c->fl_head = 0;
    }
    struct sl__hcli_flight *e = &c->flights[(c->fl_head + c->fl_count) % c->fl_cap];
    *e = (struct sl__hcli_flight){.seq = c->next_seq, .at = *at}; /* moved */
    *at = (struct sl__hcli_pos){0};
    c->fl_count++;
    sl_batch_set_cookie(b, c->next_seq++);
    return 0;
}

void sl__hcli_flights_free(struct sl__hcli *c)
{
    for (size_t i = 0; i < c->fl_count; i++)
        sl__hcli_pos_free(&c->flights[(c->fl_head + i) % c->fl_cap].at);
    free(c->flights);
    c->flights = NULL;
    c->fl_count = c->fl_cap = c->fl_head = 0;
}

int sl__hcli_advance(struct sl__hcli *c, const struct sl__hcli_pos *at)
{
    if (c->nready) return sl__hcli_pos_copy(&c->ready[c->nready - 1].at, at);
    if (c->fl_count)
        return sl__hcli_pos_copy(&c->flights[(c->fl_head + c->fl_count - 1) % c->fl_cap].at, at);
    int rc = sl__hcli_pos_copy(&c->acked, at);
    if (!rc) {
        c->have_acked = c->dirty = true;
        sl__hcli_save(c);
    }
    return rc;
}

void sl__hcli_ack(struct sl_stage *stage, struct sl_batch *b)
{
    struct sl__hcli *c = sl_stage_state(stage);
    uint64_t seq = sl_batch_cookie(b);
    while (c->fl_count && c->flights[c->fl_head].seq <= seq) {
        struct sl__hcli_flight *e = &c->flights[c->fl_head];
        sl__hcli_pos_free(&c->acked);
        c->acked = e->at; /* moved */
        e->at = (struct sl__hcli_pos){0};
        c->fl_head = (c->fl_head + 1) % c->fl_cap;
        c->fl_count--;
        c->have_acked = c->dirty = true;
    }
    sl__hcli_save(c);
}

/* ---- saving ------------------------------------------------------------------------------ */

struct save_job {
    struct sl__hcli *c;      /* the source (its stage's name: the row's key) */
    struct sl__hcli_pos pos; /* what to save (a copy) */
    int64_t updated;         /* unix seconds */
};

static int save_work(struct sl_sqlite_conn *conn, void *arg, struct sl_error *err)
{
    struct save_job *j = arg;
    sqlite3_stmt *st = sl_sqlite_prepare(
        conn,
        "INSERT INTO http_checkpoints (source, uri, position, skip, updated)"
        " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (source) DO UPDATE SET uri = excluded.uri,"
        " position = excluded.position, skip = excluded.skip, updated = excluded.updated",
        err);
    if (!st) return err->code ? err->code : SL_EIO;
    sqlite3_bind_text(st, 1, sl_stage_name(j->c->stage), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, j->c->uri, -1, SQLITE_STATIC);
    if (j->pos.pos)
        sqlite3_bind_text(st, 3, j->pos.pos, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 3);
    sqlite3_bind_int64(st, 4, j->pos.skip);
    sqlite3_bind_int64(st, 5, j->updated);
    return sl_sqlite_step(conn, st, err) == SQLITE_DONE ? 0 : (err->code ? err->code : SL_EIO);
}

static void save_done(struct sl_stage *stage, void *arg, int rc, const struct sl_error *err)
{
    struct save_job *j = arg;
    struct sl__hcli *c = sl_stage_state(stage);
    c->saving = false;
    if (rc) {
        c->dirty = true; /* what it carried is still to be saved */
        if (c->ended) c->final_tries++;
        if (rc != SL_ESTOPPED && rc != SL_EBUSY && err->code != SL_EBUSY && !c->ended) {
            sl_stage_error(stage, rc, "cannot save the checkpoint in %s: %s", c->ckpt_path,
                           err->msg);
            sl_stage_wake(stage);
        } else if (rc != SL_ESTOPPED) {
            sl_stage_log(stage, SL_LOG_WARN, "checkpoint not saved in %s: %s", c->ckpt_path,
                         err->msg);
        }
    } else {
        sl_stage_log(stage, SL_LOG_DEBUG, "checkpoint saved: %s, skip %lld",
                     j->pos.pos ? j->pos.pos : "(the first page)", (long long)j->pos.skip);
    }
    sl__hcli_pos_free(&j->pos);
    free(j);
    if (c->dirty && rc != SL_ESTOPPED && c->final_tries < FINAL_TRIES) sl__hcli_save(c);
}

void sl__hcli_save(struct sl__hcli *c)
{
    if (!c->ckdb || !c->dirty || c->saving || !c->have_acked) return;
    struct save_job *j = calloc(1, sizeof *j);
    if (!j || sl__hcli_pos_copy(&j->pos, &c->acked)) {
        free(j);
        return; /* stays dirty: the next acknowledgement tries again */
    }
    j->c = c;
    j->updated = (int64_t)time(NULL);
    if (sl_sqlite_submit(c->ckdb, c->stage, SL_SQLITE_WRITE, save_work, save_done, j)) {
        sl__hcli_pos_free(&j->pos);
        free(j);
        return;
    }
    c->saving = true;
    c->dirty = false;
}

/* ---- loading ----------------------------------------------------------------------------- */

struct load_job {
    struct sl__hcli *c;      /* the source */
    struct sl__hcli_pos pos; /* the checkpoint */
    bool found;              /* there was one, for this uri */
    bool other_uri;          /* there was one, for another uri */
};

static int load_work(struct sl_sqlite_conn *conn, void *arg, struct sl_error *err)
{
    struct load_job *j = arg;
    if (sl_sqlite_exec(conn,
                       "CREATE TABLE IF NOT EXISTS http_checkpoints (source TEXT PRIMARY KEY,"
                       " uri TEXT, position TEXT, skip INTEGER NOT NULL, updated INTEGER)",
                       err))
        return err->code ? err->code : SL_EIO;
    sqlite3_stmt *st = sl_sqlite_prepare(
        conn, "SELECT uri, position, skip FROM http_checkpoints WHERE source = ?1", err);
    if (!st) return err->code ? err->code : SL_EIO;
    sqlite3_bind_text(st, 1, sl_stage_name(j->c->stage), -1, SQLITE_STATIC);
    int r = sl_sqlite_step(conn, st, err), rc = r < 0 ? (err->code ? err->code : SL_EIO) : 0;
    if (r == SQLITE_ROW) {
        const char *uri = (const char *)sqlite3_column_text(st, 0);
        const char *pos = (const char *)sqlite3_column_text(st, 1);
        j->other_uri = !uri || strcmp(uri, j->c->uri);
        j->found = !j->other_uri;
        j->pos.skip = sqlite3_column_int64(st, 2);
        if (j->found && pos && !(j->pos.pos = strdup(pos)))
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    sqlite3_reset(st);
    return rc;
}

/* The pages begin (at the checkpoint when there is one). */
static void begin(struct sl__hcli *c)
{
    sl__hcli_pages_begin(c);
}

static void load_done(struct sl_stage *stage, void *arg, int rc, const struct sl_error *err)
{
    struct load_job *j = arg;
    struct sl__hcli *c = sl_stage_state(stage);
    if (rc && rc != SL_ESTOPPED && !c->ended) {
        sl_stage_error(stage, rc, "cannot read the checkpoint in %s: %s", c->ckpt_path, err->msg);
        sl_stage_wake(stage);
    } else if (!rc && j->found) {
        sl__hcli_pos_free(&c->at);
        c->at = j->pos; /* moved */
        j->pos = (struct sl__hcli_pos){0};
        sl_stage_log(stage, SL_LOG_INFO,
                     "resuming at %s, after %lld records of it (checkpoint "
                     "in %s)",
                     c->at.pos ? c->at.pos : "the first page", (long long)c->at.skip, c->ckpt_path);
    } else if (!rc && j->other_uri) {
        sl_stage_log(stage, SL_LOG_WARN, "the checkpoint in %s is for another uri: starting over",
                     c->ckpt_path);
    }
    sl__hcli_pos_free(&j->pos);
    free(j);
    if (!rc) begin(c);
}

int sl__hcli_load(struct sl__hcli *c)
{
    c->phase = HCLI_LOADING;
    if (!c->ckdb) {
        begin(c);
        return 0;
    }
    struct load_job *j = calloc(1, sizeof *j);
    if (!j) return SL_ENOMEM;
    j->c = c;
    if (sl_sqlite_submit(c->ckdb, c->stage, SL_SQLITE_WRITE, load_work, load_done, j)) {
        free(j);
        return SL_ENOMEM;
    }
    return 0;
}
