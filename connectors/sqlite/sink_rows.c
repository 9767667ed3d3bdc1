/* The rows of a batch, evaluated on the loop thread: one value per column and event,
 * from the column's expression, into an array the transaction binds from on an executor
 * thread.
 *
 * Why on the loop: sl_expr_eval may allocate in the event's batch arena (strings built
 * by functions), and while this sink holds the batch another branch may hold it too
 * (the sink gets a view) and allocate in the same arena from the loop thread; so only
 * the loop thread evaluates. The values are spans: into the batch (field values,
 * strings a function built), into the compiled expression (constants) or into the
 * event's payload. All of them stay valid and unchanged while the job holds the batch,
 * and the executor thread only reads them (an arena only grows; its chunks never move).
 *
 * A batch of many rows is evaluated in slices of a time budget, so that the loop serves
 * its other events between them. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sluice/json.h>

#include "sink.h"

struct sl__sqlite_job *sl__sqlite_job_new(const struct sl__sqlite_sink *k, struct sl_batch *b,
                                          struct sl__sqlite_job *reuse)
{
    struct sl__sqlite_job *j = reuse ? reuse : calloc(1, sizeof *j);
    if (!j) return NULL;
    sl__sqlite_job_reset(j);
    free(j->bad); /* sized for the rows of the job before */
    size_t need = sl_batch_count(b) * k->ncols;
    if (need > j->cap) { /* no realloc: the old values need no copy */
        free(j->vals);
        j->cap = 0;
        if (!(j->vals = malloc(need * sizeof *j->vals))) {
            sl__sqlite_job_free(j);
            return NULL;
        }
        j->cap = need;
    }
    j->k = k;
    j->batch = b;
    j->nrows = sl_batch_count(b);
    j->next = j->scratch = 0;
    j->setup = false;
    j->bad = NULL;
    return j;
}

void sl__sqlite_job_reset(struct sl__sqlite_job *j)
{
    for (size_t i = 0; i < j->nbad; i++) free(j->bads[i].msg);
    j->nbad = 0;
    if (j->bad) memset(j->bad, 0, j->nrows);
    j->outcome = SL__SQLITE_UNSET;
}

void sl__sqlite_job_free(struct sl__sqlite_job *j)
{
    if (!j) return;
    sl__sqlite_job_reset(j);
    free(j->bads);
    free(j->bad);
    free(j->vals);
    free(j);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The value of column `c` for `ev` into `*v`. Returns 0 or SL_ENOMEM. */
static int eval_col(const struct sl__sqlite_col *c, struct sl_event *ev, struct sl_value *v)
{
    int rc = sl_expr_eval(c->expr, ev, v);
    if (rc) return rc;
    if (c->payload_fallback && v->type == SL_NULL) {
        struct sl_value f;
        size_t len;
        const char *p = sl_event_payload(ev, &len);
        if (p && sl_event_get(ev, "message", 7, &f) == SL_ENOTFOUND) *v = sl_value_string(p, len);
    }
    return 0;
}

int sl__sqlite_job_eval(struct sl__sqlite_job *j, int64_t budget_ns)
{
    const struct sl__sqlite_sink *k = j->k;
    int64_t deadline = now_ns() + budget_ns;
    while (j->next < j->nrows) {
        struct sl_event *ev = sl_batch_event(j->batch, j->next);
        struct sl_value *row = j->vals + j->next * k->ncols;
        for (size_t c = 0; c < k->ncols; c++) {
            if (eval_col(&k->cols[c], ev, &row[c])) return SL_ENOMEM;
            if (row[c].type == SL_STRING && (row[c].flags & SL_VALUE_ESCAPED) &&
                row[c].len > j->scratch)
                j->scratch = row[c].len;
        }
        j->next++;
        if ((j->next & 63) == 0 && j->next < j->nrows && now_ns() >= deadline) return 0;
    }
    return 1;
}

char *sl__sqlite_row_json(const struct sl__sqlite_job *j, size_t row)
{
    const struct sl__sqlite_sink *k = j->k;
    const struct sl_value *v = j->vals + row * k->ncols;
    size_t need = 2;
    for (size_t c = 0; c < k->ncols; c++)
        need += 1 + sl_json_write_member(k->cols[c].name, strlen(k->cols[c].name), &v[c], NULL, 0);
    char *out = malloc(need + 1);
    if (!out) return NULL;
    size_t n = 0;
    out[n++] = '{';
    for (size_t c = 0; c < k->ncols; c++) {
        if (c) out[n++] = ',';
        n += sl_json_write_member(k->cols[c].name, strlen(k->cols[c].name), &v[c], out + n,
                                  need - n);
    }
    out[n++] = '}';
    out[n] = '\0';
    return out;
}
