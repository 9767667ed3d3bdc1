/* Helpers for the sqlite source's tests. See helpers_sqlite.h. */
#include "helpers_sqlite.h"
#include "helpers_file.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the table --------------------------------------------------------------------------- */

void t_rows_insert(const char *db, int64_t first, int64_t last)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "WITH RECURSIVE c(x) AS (SELECT %lld UNION ALL SELECT x + 1 FROM c WHERE x < %lld)"
             " INSERT INTO t SELECT x, x * 1.5, 'row ' || x,"
             " CASE WHEN x %% 7 = 0 THEN NULL ELSE x %% 100 END FROM c;",
             (long long)first, (long long)last);
    free(t_sqlite(db, sql));
}

void t_rows_table(const char *db, int64_t first, int64_t last)
{
    free(t_sqlite(db, "CREATE TABLE t (id INTEGER PRIMARY KEY, f REAL, s TEXT, n INTEGER);"));
    if (last >= first) t_rows_insert(db, first, last);
}

static const char *field_is(const struct sl_event *ev, size_t i, const char *name, int type,
                            struct sl_value *v)
{
    static char why[256];
    const char *got;
    size_t len;
    if (sl_event_field_at(ev, i, &got, &len, v) || len != strlen(name) || memcmp(got, name, len))
        return snprintf(why, sizeof why, "field %zu is not '%s'", i, name), why;
    if (v->type != type)
        return snprintf(why, sizeof why, "field %s has type %d, not %d", name, v->type, type), why;
    return NULL;
}

const char *t_rows_check(const struct sl_event *ev, int64_t id)
{
    static char why[512];
    struct sl_value v;
    const char *bad;
    char text[64], json[160];
    bool null = id % 7 == 0;
    snprintf(text, sizeof text, "row %lld", (long long)id);
    if (sl_event_field_count(ev) != 4) return "not 4 fields";
    if ((bad = field_is(ev, 0, "id", SL_INT, &v)) || v.i != id) return bad ? bad : "id differs";
    if ((bad = field_is(ev, 1, "f", SL_FLOAT, &v)) || v.f != (double)id * 1.5)
        return bad ? bad : "f differs";
    if ((bad = field_is(ev, 2, "s", SL_STRING, &v)) || v.len != strlen(text) ||
        memcmp(v.s, text, v.len))
        return bad ? bad : "s differs";
    if ((bad = field_is(ev, 3, "n", null ? SL_NULL : SL_INT, &v)) || (!null && v.i != id % 100))
        return bad ? bad : "n differs";
    char f[32];
    snprintf(f, sizeof f, "%.1f", (double)id * 1.5);
    if (null)
        snprintf(json, sizeof json, "{\"id\":%lld,\"f\":%s,\"s\":\"%s\",\"n\":null}", (long long)id,
                 f, text);
    else
        snprintf(json, sizeof json, "{\"id\":%lld,\"f\":%s,\"s\":\"%s\",\"n\":%lld}", (long long)id,
                 f, text, (long long)(id % 100));
    size_t len;
    const char *p = sl_event_payload(ev, &len);
    if (len != strlen(json) || memcmp(p, json, len))
        return snprintf(why, sizeof why, "payload %.*s, not %s", (int)len, p, json), why;
    if (sl_event_fields_changed(ev)) return "fields not in sync with the payload";
    return NULL;
}

char *t_checkpoint(const char *ckdb, const char *name)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT last || '|' || typeof(last) FROM query_checkpoints WHERE source = '%s';",
             name);
    char *out = t_sqlite(ckdb, sql);
    size_t n = strlen(out);
    if (n && out[n - 1] == '\n') out[n - 1] = '\0';
    return out;
}

struct find_pool {
    const char *path;
    struct sl_sqlite_stats st;
    bool found;
};

static void pool_seen(void *arg, const char *path, const struct sl_sqlite_stats *st)
{
    struct find_pool *f = arg;
    if (strcmp(path, f->path) != 0) return;
    f->st = *st;
    f->found = true;
}

struct sl_sqlite_stats t_pool_stats(struct sl_pipeline *p, const char *path)
{
    struct find_pool f = {.path = path};
    sl_sqlite_pools(p, pool_seen, &f);
    cr_assert(f.found, "no pool for %s", path);
    return f.st;
}

/* ---- the sink ------------------------------------------------------------------------------ */

static const struct sl_option rows_options[] = {
    {"delay_ms", SL_OPT_INT, "0", 0, offsetof(struct t_rows, delay_ms), "ack after this long"},
    {"hold_after", SL_OPT_INT, "0", 0, offsetof(struct t_rows, hold_after),
     "ack this many batches, then none"},
    {"sample_ms", SL_OPT_INT, "0", 0, offsetof(struct t_rows, sample_ms),
     "call on_sample this often"},
    {0},
};

static void record(struct t_rows *r, const struct sl_event *ev)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 1024;
        r->ids = realloc(r->ids, r->cap * sizeof *r->ids);
        r->payloads = realloc(r->payloads, r->cap * sizeof *r->payloads);
    }
    struct sl_value v;
    r->ids[r->n] = sl_event_get(ev, "id", 2, &v) == 0 && v.type == SL_INT ? v.i : -1;
    size_t len;
    const char *p = sl_event_payload(ev, &len);
    r->payloads[r->n] = r->keep_payloads ? strndup(p ? p : "", len) : NULL;
    r->n++;
}

static void rows_timer(struct sl_stage *s, void *arg)
{
    struct t_rows *r = arg;
    struct sl_batch *b = r->held;
    r->held = NULL;
    r->acked_batches++;
    sl_ack(b);
    sl_stage_wake(s);
}

static void rows_sample(struct sl_stage *s, void *arg)
{
    struct t_rows *r = arg;
    if (r->on_sample) r->on_sample(s, r);
}

static int rows_start(struct sl_stage *s, struct sl_error *err)
{
    (void)err;
    struct t_rows *r = sl_stage_state(s);
    r->timer = sl_timer_new(s, rows_timer, r);
    r->sampler = sl_timer_new(s, rows_sample, r);
    if (r->sample_ms > 0) sl_timer_start(r->sampler, r->sample_ms, true);
    return 0;
}

static enum sl_poll rows_write(struct sl_stage *s, struct sl_batch *b)
{
    struct t_rows *r = sl_stage_state(s);
    r->batches++;
    size_t n = sl_batch_count(b);
    if (n > r->max_batch) r->max_batch = n;
    if (r->nostore)
        r->n += n;
    else
        for (size_t i = 0; i < n; i++) record(r, sl_batch_event_const(b, i));
    if (r->on_write) r->on_write(s, r, b);
    if (r->hold_after && r->acked_batches >= r->hold_after && r->nkept < 64) {
        r->kept[r->nkept++] = b;
        return r->nkept >= 3 ? SL_PENDING : SL_READY;
    }
    if (r->delay_ms <= 0) {
        r->acked_batches++;
        sl_ack(b);
        return SL_READY;
    }
    r->held = b;
    sl_timer_start(r->timer, r->delay_ms, false);
    return SL_PENDING;
}

static void rows_close(struct sl_stage *s)
{
    struct t_rows *r = sl_stage_state(s);
    sl_timer_free(r->timer);
    sl_timer_free(r->sampler);
    sl_batch_unref(r->held);
    for (size_t i = 0; i < r->nkept; i++) sl_batch_unref(r->kept[i]);
    for (size_t i = 0; i < r->n && !r->nostore; i++) free(r->payloads[i]);
    free(r->payloads);
    free(r->ids);
}

const struct sl_stage_type t_rows = {
    .abi = SL_STAGE_ABI,
    .name = "t_rows",
    .kind = SL_SINK,
    .doc = "test sink recording rows",
    .state_size = sizeof(struct t_rows),
    .options = rows_options,
    .start = rows_start,
    .write = rows_write,
    .close = rows_close,
};
