/* The `sqlite` source: streams the rows of a table or a query as events, one per row
 * (each column a typed field, the payload the row as a JSON object), page by page in the
 * order of a tracking column, and keeps the last acknowledged tracking value as its
 * checkpoint, so that a restart resumes after it.
 *
 * Pages use keyset pagination: `WHERE tracking_column > :last ORDER BY tracking_column
 * LIMIT :page_size`, never OFFSET, so that with an index on the column every page costs
 * the same however deep in the table it is, and rows inserted before the position are
 * not read again. This is exact only when the tracking column is unique and increasing
 * (an id, an insertion time with a tie-breaker): rows that share a value at a page
 * boundary would be skipped, and a row inserted later with a value below the position
 * is never read.
 *
 * Flow (all on the loop thread; SQLite only through the pool, on executor threads):
 * start() asks the checkpoint database for the last value (source_checkpoint.c); then
 * each poll() with no page in hand asks for one (source_page.c) and answers SL_PENDING;
 * the page comes back as a batch, which the next poll() returns. One page request is out
 * at a time, and only poll() starts one: the runtime polls a source only while its
 * outputs have room, so no page is read while they are full (backpressure). After a
 * short page, `snapshot` answers SL_DONE, `follow` waits poll_interval and asks again.
 * A lock held past busy_timeout is retried after a backoff; any other error fails the
 * run with SQLite's message. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sluice/builtins.h>
#include <sluice/config.h>

#include "source.h"

/* ---- the page queries ------------------------------------------------------------------ */

/* printf into a new string (owned), NULL when out of memory. */
static char *format(const char *fmt, ...) SL_PRINTF(1, 2);

static char *format(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *out = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!out) return NULL;
    va_start(ap, fmt);
    vsnprintf(out, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return out;
}

/* `name` as an SQL identifier (owned): in grave accents, which SQLite always reads as
 * an identifier, where a double-quoted name that matches no column would be taken for a
 * string literal (and a misspelt tracking column would silently order nothing). */
static char *quote(const char *name)
{
    char *out = malloc(2 * strlen(name) + 3), *o = out;
    if (!out) return NULL;
    *o++ = '`';
    for (const char *p = name; *p; p++) {
        if (*p == '`') *o++ = '`';
        *o++ = *p;
    }
    *o++ = '`';
    *o = '\0';
    return out;
}

/* The select list: `*`, or the columns asked for, with the tracking column last when it
 * is not among them (read for the position, not made a field). */
static char *select_list(struct sl__sqlsrc *s)
{
    if (!s->columns.n) return format("*");
    char *list = format("%s", ""), *tc = quote(s->tracking);
    bool has = false;
    for (size_t i = 0; list && tc && i < s->columns.n; i++) {
        char *q = quote(s->columns.items[i]), *more = NULL;
        if (q) more = format("%s%s%s", list, i ? ", " : "", q);
        has = has || strcmp(s->columns.items[i], s->tracking) == 0;
        free(q);
        free(list);
        list = more;
    }
    if (list && tc && !has) {
        char *more = format("%s, %s", list, tc);
        free(list);
        list = more;
        s->hidden_tracking = true;
    }
    free(tc);
    return list;
}

/* The FROM clause: the table, or the query in parentheses (without a trailing ';'). */
static char *from_clause(const struct sl__sqlsrc *s)
{
    if (s->table) {
        char *t = quote(s->table), *out = t ? format("%s", t) : NULL;
        free(t);
        return out;
    }
    size_t len = strlen(s->query);
    while (len && (s->query[len - 1] == ';' || strchr(" \t\r\n", s->query[len - 1]))) len--;
    return format("(%.*s)", (int)len, s->query);
}

/* sql_first (no lower bound; rows whose tracking value is NULL are never read, as `>`
 * would not read them) and sql_next (`> ?1`). Returns 0 or SL_ENOMEM. */
static int build_queries(struct sl__sqlsrc *s)
{
    char *cols = select_list(s), *from = from_clause(s), *tc = quote(s->tracking);
    int rc = SL_ENOMEM;
    if (cols && from && tc) {
        s->sql_first = format("SELECT %s FROM %s WHERE %s IS NOT NULL ORDER BY %s LIMIT ?2", cols,
                              from, tc, tc);
        s->sql_next =
            format("SELECT %s FROM %s WHERE %s > ?1 ORDER BY %s LIMIT ?2", cols, from, tc, tc);
        if (s->sql_first && s->sql_next) rc = 0;
    }
    free(cols), free(from), free(tc);
    return rc;
}

/* ---- lifetime ---------------------------------------------------------------------------- */

static int sqlsrc_init(struct sl_stage *stage, const struct sl_config *cfg, struct sl_error *err)
{
    struct sl__sqlsrc *s = sl_stage_state(stage);
    s->stage = stage;
    if (!*s->path) return sl_config_error(cfg, err, SL_ECONFIG, "option 'path' is empty");
    if (!s->table == !s->query)
        return sl_config_error(cfg, err, SL_ECONFIG,
                               "give either 'table' (and optionally 'columns') or 'query'");
    if (s->columns.n && !s->table)
        return sl_config_error(sl_config_get(cfg, "columns"), err, SL_ECONFIG,
                               "option 'columns' goes with 'table' (a query selects its own)");
    if (!*s->tracking || (s->table && !*s->table) || (s->query && !*s->query))
        return sl_config_error(cfg, err, SL_ECONFIG,
                               "options 'tracking_column', 'table' and 'query' may not be empty");
    if (s->start_after && !*s->start_after) s->start_after = NULL; /* "": from the first row */
    if (build_queries(s)) return sl_error_set(err, SL_ENOMEM, "out of memory");
    return 0;
}

/* The checkpoint's pool: `checkpoint`, default <data_dir>/checkpoints.db, "" none. */
static int open_checkpoint(struct sl__sqlsrc *s, struct sl_error *err)
{
    if (s->checkpoint && !*s->checkpoint) return 0;
    if (s->checkpoint)
        s->ckpt_path = format("%s", s->checkpoint);
    else
        s->ckpt_path = format("%s/checkpoints.db", sl_stage_data_dir(s->stage));
    if (!s->ckpt_path) return sl_error_set(err, SL_ENOMEM, "out of memory");
    if (!(s->ckdb = sl_sqlite_pool(s->stage, s->ckpt_path, NULL, err))) return err->code;
    if (!(s->save_timer = sl_timer_new(s->stage, sl__sqlsrc_on_save_timer, s)))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    sl_timer_start(s->save_timer, s->checkpoint_interval_ms, true);
    return 0;
}

/* poll_interval is over, or a retry's backoff. */
static void on_wait_timer(struct sl_stage *stage, void *arg)
{
    struct sl__sqlsrc *s = arg;
    if (s->ended) return;
    if (s->retry_load) {
        s->retry_load = false;
        if (sl__sqlsrc_load(s)) {
            sl_stage_error(stage, SL_ENOMEM, "out of memory");
            sl_stage_wake(stage);
        }
        return;
    }
    s->phase = SQLSRC_IDLE;
    sl_stage_wake(stage);
}

static int sqlsrc_start(struct sl_stage *stage, struct sl_error *err)
{
    struct sl__sqlsrc *s = sl_stage_state(stage);
    struct stat st;
    if (stat(s->path, &st)) /* the pool would create an empty one */
        return sl_error_set(err, SL_EIO, "database '%s': %s", s->path, strerror(errno));
    int64_t max = sl_stage_batch_max_events(stage);
    s->limit = s->page_size && s->page_size < max ? s->page_size : max;
    sl_backoff_init(&s->backoff, 100, 5000);
    if (!(s->wait_timer = sl_timer_new(stage, on_wait_timer, s)))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    if (!(s->db = sl__sqlite_stage_pool(stage, s->path, &s->pool, err))) return err->code;
    int rc = open_checkpoint(s, err);
    if (rc) return rc;
    sl_stage_log(stage, SL_LOG_DEBUG, "page query: %s", s->sql_next);
    sl_stage_log(stage, SL_LOG_DEBUG, "first page query: %s", s->sql_first);
    if (sl__sqlsrc_load(s)) return sl_error_set(err, SL_ENOMEM, "out of memory");
    return 0;
}

static enum sl_poll sqlsrc_poll(struct sl_stage *stage, struct sl_batch **out)
{
    struct sl__sqlsrc *s = sl_stage_state(stage);
    if (s->ready) {
        if (sl__sqlsrc_track(s, s->ready))
            return sl_stage_error(stage, SL_ENOMEM, "out of memory"), SL_ERROR;
        *out = s->ready;
        s->ready = NULL;
        return SL_READY;
    }
    if (s->phase == SQLSRC_END) return SL_DONE;
    if (s->phase != SQLSRC_IDLE) return SL_PENDING;
    if (sl__sqlsrc_fetch(s)) return sl_stage_error(stage, SL_ENOMEM, "out of memory"), SL_ERROR;
    return SL_PENDING;
}

/* The source has ended (it answered SL_DONE, or the pipeline stops): a page read but
 * not returned is let go (the next run reads it), and once the last page in flight is
 * acknowledged (now, or in ack()), the checkpoint is saved; the run waits for that. */
static int sqlsrc_flush(struct sl_stage *stage, struct sl_emit *out, bool end)
{
    (void)out;
    struct sl__sqlsrc *s = sl_stage_state(stage);
    if (!end) return 0;
    s->ended = true;
    sl_timer_stop(s->wait_timer);
    sl_batch_unref(s->ready);
    s->ready = NULL;
    if (!s->fl_count) sl__sqlsrc_save(s);
    return 0;
}

static void sqlsrc_close(struct sl_stage *stage)
{
    struct sl__sqlsrc *s = sl_stage_state(stage);
    sl_timer_free(s->wait_timer);
    sl_timer_free(s->save_timer);
    sl_batch_unref(s->ready);
    sl__sqlsrc_flights_free(s);
    sl__sqlsrc_value_free(&s->last);
    sl__sqlsrc_value_free(&s->acked);
    free(s->sql_first);
    free(s->sql_next);
    free(s->ckpt_path);
}

/* ---- the type ------------------------------------------------------------------------------ */

#define OPT(field)  offsetof(struct sl__sqlsrc, field)
#define POOL(field) offsetof(struct sl__sqlsrc, pool.field)

static const struct sl_option sqlite_source_options[] = {
    {"path", SL_OPT_STRING, NULL, SL_REQUIRED, OPT(path), "the SQLite database file (must exist)"},
    {"table", SL_OPT_STRING, NULL, 0, OPT(table), "the table to read (or give 'query')"},
    {"columns", SL_OPT_LIST, NULL, 0, OPT(columns),
     "with 'table': the columns to read, each a field (default: all)"},
    {"query", SL_OPT_STRING, NULL, 0, OPT(query),
     "a SELECT to read instead of a table; it is wrapped: SELECT * FROM (query) WHERE "
     "tracking_column > ? ORDER BY tracking_column LIMIT page_size"},
    {"tracking_column", SL_OPT_STRING, NULL, SL_REQUIRED, OPT(tracking),
     "the column that orders the rows and marks the position (integer or text, compared with "
     ">): it must be unique and increasing, or rows that tie at a page boundary are skipped"},
    {"page_size", SL_OPT_INT, "0", 0, OPT(page_size),
     "rows per page, each page a batch (0: the pipeline's batch.max_events, also the most)", NULL,
     "0.."},
    {"mode", SL_OPT_ENUM, "snapshot", 0, OPT(mode),
     "snapshot: read to the end and finish; follow: then ask for new rows every poll_interval",
     "snapshot|follow"},
    {"poll_interval", SL_OPT_DURATION, "1s", 0, OPT(poll_interval_ms),
     "follow: how long to wait after a short page before asking again", NULL, "1ms.."},
    {"start_after", SL_OPT_STRING, NULL, 0, OPT(start_after),
     "without a checkpoint, read the rows after this value (an integer when it reads as one, "
     "else text); default: from the first row"},
    {"checkpoint", SL_OPT_STRING, NULL, 0, OPT(checkpoint),
     "checkpoint database (default <data_dir>/checkpoints.db; \"\": none, every run starts "
     "over)"},
    {"checkpoint_interval", SL_OPT_DURATION, "1s", 0, OPT(checkpoint_interval_ms),
     "how often the last acknowledged value is saved (the first one of a run at once)", NULL,
     "1ms.."},
    {"checkpoint_pages", SL_OPT_INT, "100", 0, OPT(checkpoint_pages),
     "also save once this many pages were acknowledged since the last save (0: the interval "
     "alone): bounds what a crash replays",
     NULL, "0.."},
    SL__SQLITE_POOL_OPTIONS(POOL),
    {0},
};

const struct sl_stage_type sl_stage_sqlite_source = {
    .abi = SL_STAGE_ABI,
    .name = "sqlite",
    .kind = SL_SOURCE,
    .doc = "reads a table or query page by page in key order (snapshot or follow), "
           "checkpointed",
    .state_size = sizeof(struct sl__sqlsrc),
    .options = sqlite_source_options,
    .init = sqlsrc_init,
    .start = sqlsrc_start,
    .poll = sqlsrc_poll,
    .ack = sl__sqlsrc_ack,
    .flush = sqlsrc_flush,
    .close = sqlsrc_close,
};
