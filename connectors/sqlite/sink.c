/* The `sqlite` sink: events to rows of a SQLite table, one transaction per batch, the
 * batch acknowledged only once its COMMIT succeeded.
 *
 * A batch is one job (sink.h). write() evaluates its rows on the loop thread, in slices
 * of SLICE_NS (sink_rows.c), and queues the job. One request at a time goes to the
 * database's pool (SL_SQLITE_WRITE) with the evaluated jobs at the head of the queue
 * (SL__SQLITE_CHAIN at most); its work, on an executor thread, writes each in its own
 * transaction, in order (sink_tx.c), and its done acknowledges the committed ones, on
 * the loop. Meanwhile write() takes and evaluates more batches, answering SL_READY
 * while the queue has room (MAX_QUEUED jobs, MAX_QUEUED_ROWS rows) and SL_PENDING when
 * it is full; the sink wakes the runtime when it has room again. So the loop's turns do
 * not pace the transactions: the executor goes from one batch to the next as long as
 * the loop keeps up. Nothing SQLite does runs on the loop.
 *
 * Faults:
 * - a row SQLite refuses goes to `on_error` inside the transaction (sink_tx.c);
 * - a transaction that failed for a reason that may pass (locked past busy_timeout, disk
 *   full, I/O error) was rolled back whole. The sink keeps its batch at the head of the
 *   queue and tries it again after a backoff (the stage's retry.initial / retry.max),
 *   and until it commits it answers every batch offered SL_RETRY with the reason
 *   (sl_retry): the runtime keeps that batch, logs, counts the retry and offers it again
 *   after its own backoff, and its retry.attempts bounds the episode. The batches are
 *   written in their order, each once: an attempt leaves nothing behind;
 * - any other failure (no such table or column, a read-only database, on_error: fail)
 *   fails the stage with SQLite's message and the statement; that batch and those after
 *   it stay unacknowledged (a restart writes them again). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/builtins.h>

#include "sink.h"

#define SLICE_NS        (1 * 1000000)    /* evaluation of rows per turn of the loop */
#define MAX_QUEUED      SL__SQLITE_CHAIN /* jobs taken and not yet committed */
#define MAX_QUEUED_ROWS 65536            /* rows of those (a bigger batch is taken alone) */

/* ---- the queue ----------------------------------------------------------------------------- */

/* Fails the stage for good with `msg`: the runtime stops the run at its next turn. */
static void broken(struct sl__sqlite_sink *k, int code, const char *msg)
{
    k->broken = true;
    sl_stage_error(k->stage, code < 0 ? code : SL_EIO, "%s", msg);
    sl_stage_wake(k->stage);
}

static bool evaluated(const struct sl__sqlite_job *j)
{
    return j->next == j->nrows;
}

/* Whether write() can take a batch now. */
static bool room(const struct sl__sqlite_sink *k)
{
    if (k->broken || k->retrying) return false;
    if (k->tail && !evaluated(k->tail)) return false;
    return k->queued < MAX_QUEUED && k->queued_rows < MAX_QUEUED_ROWS;
}

/* Wakes the runtime when the sink can take a batch, or should answer one SL_RETRY. */
static void offer(struct sl__sqlite_sink *k)
{
    if (room(k) || (k->retrying && !k->broken)) sl_stage_wake(k->stage);
}

static void push(struct sl__sqlite_sink *k, struct sl__sqlite_job *j)
{
    j->next_job = NULL;
    if (k->tail)
        k->tail->next_job = j;
    else
        k->head = j;
    k->tail = j;
    k->queued++;
    k->queued_rows += j->nrows;
}

/* Takes the head job out of the queue. */
static struct sl__sqlite_job *pop(struct sl__sqlite_sink *k)
{
    struct sl__sqlite_job *j = k->head;
    k->head = j->next_job;
    if (!k->head) k->tail = NULL;
    k->queued--;
    k->queued_rows -= j->nrows;
    return j;
}

static void job_done(struct sl_stage *stage, void *arg, int rc, const struct sl_error *err);

/* Submits a request with the evaluated jobs at the head of the queue. */
static void send(struct sl__sqlite_sink *k)
{
    struct sl__sqlite_req *r = &k->req;
    r->n = r->ran = 0;
    for (struct sl__sqlite_job *j = k->head; j && evaluated(j) && r->n < SL__SQLITE_CHAIN;
         j = j->next_job) {
        sl__sqlite_job_reset(j);
        j->setup = !k->ready;
        r->jobs[r->n++] = j;
    }
    if (!r->n) return;
    if (sl_sqlite_submit(k->pool, k->stage, SL_SQLITE_WRITE, sl__sqlite_sink_work, job_done, r)) {
        broken(k, SL_ENOMEM, "out of memory submitting a transaction");
        return;
    }
    k->in_flight = true;
}

/* Sends what is evaluated when no request is out and no failed batch waits. */
static void advance(struct sl__sqlite_sink *k)
{
    if (!k->in_flight && !k->retrying && !k->broken) send(k);
}

/* Evaluates a slice of the tail job; arms the slice timer when rows are left. Returns 0
 * or SL_ENOMEM. */
static int evaluate(struct sl__sqlite_sink *k)
{
    int rc = sl__sqlite_job_eval(k->tail, SLICE_NS);
    if (rc < 0) return rc;
    if (rc == 0)
        sl_timer_start(k->slice_timer, 0, false);
    else
        advance(k);
    return 0;
}

static void slice_more(struct sl_stage *stage, void *arg)
{
    (void)stage;
    struct sl__sqlite_sink *k = arg;
    if (!k->tail || evaluated(k->tail) || k->broken) return;
    if (evaluate(k)) {
        broken(k, SL_ENOMEM, "out of memory evaluating columns");
        return;
    }
    offer(k);
}

static void retry_fired(struct sl_stage *stage, void *arg)
{
    (void)stage;
    struct sl__sqlite_sink *k = arg;
    if (k->retrying && !k->in_flight && !k->broken) send(k);
}

/* ---- a request's end ---------------------------------------------------------------------------
 */

/* The head job committed: acknowledged, its memory kept for a next one. */
static void committed(struct sl__sqlite_sink *k)
{
    struct sl__sqlite_job *j = pop(k);
    if (j->nbad) {
        sl_stage_count_errors(k->stage, j->nbad);
        if (k->on_error == SL__SQLITE_DROP) sl_stage_count_dropped(k->stage, j->nbad);
        if (!k->warned)
            sl_stage_log(k->stage, SL_LOG_WARN, "row refused: %s; %s (later ones only counted)",
                         j->bads[0].msg,
                         k->on_error == SL__SQLITE_DROP ? "dropped" : "written as a dead letter");
        k->warned = true;
    }
    if (j->setup) k->ready = true;
    k->rows += j->nrows - j->nbad;
    k->txns++;
    k->tx_ns += j->work_ns;
    if (k->retrying) sl_backoff_reset(&k->backoff);
    k->retrying = false;
    sl_ack(j->batch); /* durable: COMMIT succeeded */
    j->batch = NULL;
    sl__sqlite_job_free(k->spare);
    k->spare = j;
}

/* The head job was rolled back for a reason that may pass: the same job again later. */
static void failed_for_now(struct sl__sqlite_sink *k, const char *msg)
{
    snprintf(k->why, sizeof k->why, "cannot write to %.400s: %.511s", k->path, msg);
    int64_t delay = sl_backoff_next(&k->backoff);
    sl_stage_log(k->stage, k->retrying ? SL_LOG_INFO : SL_LOG_WARN,
                 "%s; the batch of %zu rows is tried again in %lld ms", k->why, k->head->nrows,
                 (long long)delay);
    k->retrying = true;
    sl_timer_start(k->retry_timer, delay, false);
}

/* How the request's last job ended, when it did not commit (or did not run). */
static void not_committed(struct sl__sqlite_sink *k, struct sl__sqlite_job *j, int rc,
                          const struct sl_error *err)
{
    enum sl__sqlite_outcome o = j->outcome;
    if (o == SL__SQLITE_UNSET) /* the work did not run */
        o = rc == SL_EBUSY ? SL__SQLITE_TRANSIENT : SL__SQLITE_PERMANENT;
    char msg[1024];
    switch (o) {
    case SL__SQLITE_TRANSIENT: failed_for_now(k, err->msg); break;
    case SL__SQLITE_ROW_FAILED: broken(k, rc, err->msg); break;
    default:
        snprintf(msg, sizeof msg, "cannot write to %.400s: %.511s", k->path, err->msg);
        broken(k, rc, msg);
    }
}

static void job_done(struct sl_stage *stage, void *arg, int rc, const struct sl_error *err)
{
    struct sl__sqlite_sink *k = sl_stage_state(stage);
    struct sl__sqlite_req *r = arg;
    k->in_flight = false;
    if (rc == SL_ESTOPPED && r->ran == 0) return; /* the pipeline is going: close() */
    for (size_t i = 0; i < r->ran; i++) {
        if (r->jobs[i]->outcome != SL__SQLITE_COMMITTED) break;
        committed(k);
    }
    if (rc) not_committed(k, k->head, rc, err);
    advance(k);
    offer(k);
}

/* The end of start()'s check: the table exists (made, or there) and the row statement
 * prepares. */
static void setup_done(struct sl_stage *stage, void *arg, int rc, const struct sl_error *err)
{
    (void)arg;
    struct sl__sqlite_sink *k = sl_stage_state(stage);
    if (rc == 0) {
        k->ready = true;
    } else if (rc == SL_EAGAIN || rc == SL_EBUSY) { /* the first transaction does it */
        sl_stage_log(stage, SL_LOG_INFO, "table '%s' not checked at start: %s", k->table, err->msg);
    } else if (rc != SL_ESTOPPED) {
        char msg[1024];
        snprintf(msg, sizeof msg, "cannot write to %.400s: %.511s", k->path, err->msg);
        broken(k, rc, msg);
    }
}

/* ---- the stage ------------------------------------------------------------------------------- */

static enum sl_poll sink_write(struct sl_stage *stage, struct sl_batch *b)
{
    struct sl__sqlite_sink *k = sl_stage_state(stage);
    if (k->broken) return SL_ERROR; /* the reason is set; the runtime keeps the batch */
    if (k->retrying) return sl_retry(stage, "%s", k->why);
    if (!room(k)) return sl_retry(stage, "the sink's queue is full");
    if (sl_batch_count(b) == 0) {
        sl_ack(b);
        return SL_READY;
    }
    struct sl__sqlite_job *j = sl__sqlite_job_new(k, b, k->spare);
    k->spare = NULL;
    if (!j) {
        sl_stage_error(stage, SL_ENOMEM, "out of memory evaluating columns");
        return SL_ERROR;
    }
    push(k, j); /* taken: from here on the sink holds it (close() releases it) */
    if (evaluate(k)) {
        broken(k, SL_ENOMEM, "out of memory evaluating columns");
        return SL_PENDING;
    }
    return room(k) ? SL_READY : SL_PENDING;
}

/* The end of the input: every batch is committed (or the last one waits for its retry). */
static int sink_flush(struct sl_stage *stage, struct sl_emit *out, bool end)
{
    (void)out, (void)end;
    struct sl__sqlite_sink *k = sl_stage_state(stage);
    sl_stage_log(stage, SL_LOG_INFO,
                 "%llu rows written to %s in %llu transactions, %.3f s of them on the executor",
                 (unsigned long long)k->rows, k->table, (unsigned long long)k->txns,
                 (double)k->tx_ns / 1e9);
    return 0;
}

static int sink_init(struct sl_stage *stage, const struct sl_config *cfg, struct sl_error *err)
{
    struct sl__sqlite_sink *k = sl_stage_state(stage);
    k->stage = stage;
    k->name = sl_stage_name(stage);
    return sl__sqlite_sink_config(k, cfg, err);
}

static int sink_start(struct sl_stage *stage, struct sl_error *err)
{
    struct sl__sqlite_sink *k = sl_stage_state(stage);
    if (!(k->pool = sl__sqlite_stage_pool(stage, k->path, &k->pool_o, err))) return err->code;
    k->retry_timer = sl_timer_new(stage, retry_fired, k);
    k->slice_timer = sl_timer_new(stage, slice_more, k);
    if (!k->retry_timer || !k->slice_timer) return sl_error_set(err, SL_ENOMEM, "out of memory");
    sl_backoff_init(&k->backoff, k->retry_initial_ms, k->retry_max_ms);
    int flags = k->setup_sql ? SL_SQLITE_WRITE : SL_SQLITE_READ;
    if (sl_sqlite_submit(k->pool, stage, flags, sl__sqlite_sink_setup, setup_done, k))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    return 0;
}

static void sink_close(struct sl_stage *stage)
{
    struct sl__sqlite_sink *k = sl_stage_state(stage);
    sl_timer_free(k->retry_timer);
    sl_timer_free(k->slice_timer);
    /* Held only when the run failed or was aborted: released unacknowledged. */
    while (k->head) {
        struct sl__sqlite_job *j = pop(k);
        sl_batch_unref(j->batch);
        sl__sqlite_job_free(j);
    }
    sl__sqlite_job_free(k->spare);
    k->spare = NULL;
    sl__sqlite_sink_config_free(k);
}

/* ---- the type -------------------------------------------------------------------------------- */

#define OPT(field)  offsetof(struct sl__sqlite_sink, field)
#define POOL(field) offsetof(struct sl__sqlite_sink, pool_o.field)

static const struct sl_option sqlite_sink_options[] = {
    {"path", SL_OPT_STRING, NULL, SL_REQUIRED, OPT(path),
     "database file (made with its directory when missing; WAL mode)"},
    {"table", SL_OPT_STRING, NULL, SL_REQUIRED, OPT(table), "the table rows are written to"},
    {"columns", SL_OPT_ANY, NULL, SL_REQUIRED, OPT(columns),
     "column: expression (a field name is one; `message` of a raw line is its text), or "
     "column: {value: expression, type: SQL type}; a list of names takes the fields of "
     "those names"},
    {"create_table", SL_OPT_BOOL, "false", 0, OPT(create_table),
     "create the table (the columns with their types), a unique index on `key` and "
     "`indexes` when missing"},
    {"indexes", SL_OPT_ANY, NULL, 0, OPT(indexes),
     "with create_table: indexes to create, each a column, a list of columns or "
     "{columns: [...], unique: true}"},
    {"mode", SL_OPT_ENUM, "insert", 0, OPT(mode),
     "insert: INSERT; upsert: INSERT ... ON CONFLICT (key) DO UPDATE the other columns; "
     "replace: INSERT OR REPLACE",
     "insert|upsert|replace"},
    {"key", SL_OPT_LIST, NULL, 0, OPT(key),
     "columns of a unique index: upsert's conflict target (made by create_table)"},
    {"on_error", SL_OPT_ENUM, "fail", 0, OPT(on_error),
     "a row the database refuses (a constraint, a type mismatch): drop it (counted), "
     "dead_letter (a row of dead_letter_table, in the same transaction) or fail (stop the "
     "run; nothing of its batch is written)",
     "drop|dead_letter|fail"},
    {"dead_letter_table", SL_OPT_STRING, NULL, 0, OPT(dead_letter_table),
     "on_error dead_letter: the table of refused rows (time, stage, error, row as JSON), "
     "made when missing; default <table>_dead_letter"},
    SL__SQLITE_POOL_OPTIONS(POOL),
    {0},
};

const struct sl_stage_type sl_stage_sqlite_sink = {
    .abi = SL_STAGE_ABI,
    .name = "sqlite",
    .kind = SL_SINK,
    .doc = "writes rows to a SQLite table, a transaction per batch (insert, upsert, replace)",
    .state_size = sizeof(struct sl__sqlite_sink),
    .options = sqlite_sink_options,
    .init = sink_init,
    .start = sink_start,
    .write = sink_write,
    .flush = sink_flush,
    .close = sink_close,
};
