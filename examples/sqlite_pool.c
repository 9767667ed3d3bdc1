/* examples/sqlite_pool.c: a sink of your own that writes to SQLite through the pool.
 *
 * SQLite calls block, so a stage never makes them itself: it hands the pool a request,
 * whose work runs on an executor thread with a connection lent to it, and whose done
 * comes back on the loop thread. This sink writes each batch in one transaction and
 * acknowledges the batch only once COMMIT succeeded: until then the source may not
 * advance its checkpoint, so a crash loses nothing.
 *
 *   cc sqlite_pool.c $(pkg-config --cflags --libs sluice sqlite3)
 *   ./sqlite_pool words.db     (writes 5 words, then counts them) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>
#include <sluice/sqlite.h>

/* ---- the source: five words --------------------------------------------------------- */

static const char *const words[] = {"pool", "lends", "connections", "to", "requests"};

static enum sl_poll words_poll(struct sl_stage *stage, struct sl_batch **out)
{
    size_t *next = sl_stage_state(stage);
    if (*next == sizeof words / sizeof *words) return SL_DONE;
    struct sl_batch *b = sl_batch_new(stage);
    if (!b) return SL_ERROR;
    for (; *next < sizeof words / sizeof *words; ++*next)
        sl_event_set_payload(sl_batch_append(b), words[*next], strlen(words[*next]));
    *out = b;
    return SL_READY;
}

static const struct sl_stage_type words_source = {
    .abi = SL_STAGE_ABI,
    .name = "words",
    .kind = SL_SOURCE,
    .doc = "five words",
    .state_size = sizeof(size_t),
    .poll = words_poll,
};

/* ---- the sink: one transaction a batch, acknowledged after COMMIT -------------------- */

struct table_sink {
    const char *path;            /* option: the database */
    struct sl_sqlite_pool *pool; /* its pool, shared with any stage naming the file */
};

struct write_job {
    struct sl_batch *batch; /* held until COMMIT, then acknowledged */
};

/* An executor thread: the batch is read only, nobody changes it while we hold it. */
static int write_rows(struct sl_sqlite_conn *c, void *arg, struct sl_error *err)
{
    struct write_job *j = arg;
    if (sl_sqlite_exec(c, "CREATE TABLE IF NOT EXISTS words (word TEXT); BEGIN IMMEDIATE", err))
        return err->code;
    sqlite3_stmt *st = sl_sqlite_prepare(c, "INSERT INTO words VALUES (?1)", err);
    for (size_t i = 0; st && i < sl_batch_count(j->batch); i++) {
        size_t len;
        const char *w = sl_event_payload(sl_batch_event_const(j->batch, i), &len);
        sqlite3_bind_text(st, 1, w, (int)len, SQLITE_STATIC);
        if (sl_sqlite_step(c, st, err) != SQLITE_DONE) return err->code; /* pool rolls back */
        sqlite3_reset(st);
    }
    return st ? sl_sqlite_exec(c, "COMMIT", err) : err->code;
}

/* The loop thread: durable now (or failed: then nothing is acknowledged). */
static void written(struct sl_stage *stage, void *arg, int rc, const struct sl_error *err)
{
    struct write_job *j = arg;
    if (rc) {
        sl_stage_error(stage, rc, "cannot write: %s", err->msg);
        sl_batch_unref(j->batch);
    } else {
        sl_ack(j->batch);
    }
    free(j);
    sl_stage_wake(stage); /* ready for the next batch */
}

static int table_init(struct sl_stage *stage, const struct sl_config *cfg, struct sl_error *err)
{
    (void)cfg;
    struct table_sink *t = sl_stage_state(stage);
    t->pool = sl_sqlite_pool(stage, t->path, NULL, err);
    return t->pool ? 0 : err->code;
}

static enum sl_poll table_write(struct sl_stage *stage, struct sl_batch *b)
{
    struct table_sink *t = sl_stage_state(stage);
    struct write_job *j = malloc(sizeof *j);
    if (!j) return SL_ERROR;
    j->batch = b;
    if (sl_sqlite_submit(t->pool, stage, SL_SQLITE_WRITE, write_rows, written, j)) {
        free(j);
        return SL_ERROR;
    }
    return SL_PENDING; /* one transaction at a time: written() wakes us */
}

static const struct sl_option table_options[] = {
    {"path", SL_OPT_STRING, NULL, SL_REQUIRED, offsetof(struct table_sink, path), "database file"},
    {0},
};

static const struct sl_stage_type table_sink = {
    .abi = SL_STAGE_ABI,
    .name = "words_table",
    .kind = SL_SINK,
    .doc = "writes payloads to a SQLite table",
    .state_size = sizeof(struct table_sink),
    .options = table_options,
    .init = table_init,
    .write = table_write,
};

/* ---- main: build, run, and read the count back -------------------------------------- */

int main(int argc, char **argv)
{
    const char *db = argc > 1 ? argv[1] : "words.db";
    struct sl_error err = {0};
    struct sl_pipeline *p = sl_pipeline_new(NULL, NULL, &err);
    char yaml[512];
    snprintf(yaml, sizeof yaml, "path: \"%s\"", db);
    struct sl_config *cfg = sl_config_parse(yaml, strlen(yaml), "main", &err);
    struct sl_stage *src = sl_pipeline_add(p, "words", &words_source, NULL, &err);
    struct sl_stage *out = cfg ? sl_pipeline_add(p, "table", &table_sink, cfg, &err) : NULL;
    sl_config_free(cfg);
    if (!src || !out || sl_pipeline_connect(p, src, NULL, out, &err) || sl_pipeline_run(p, &err)) {
        fprintf(stderr, "sqlite_pool: %s\n", err.msg);
        return 1;
    }
    sl_pipeline_free(p);
    /* Outside any pipeline, a plain connection reads what the sink committed. */
    sqlite3 *h;
    sqlite3_stmt *st;
    long long n = -1;
    if (sqlite3_open(db, &h) == SQLITE_OK &&
        sqlite3_prepare_v2(h, "SELECT count(*) FROM words", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    printf("%lld words in the table\n", n);
    return n == 5 ? 0 : 1;
}
