/* The SQLite pools' part of /metrics: connections by state, waiting requests, wait time,
 * statements, errors and retries, per database file. */
#include <stdio.h>
#include <stdlib.h>

#include <sluice/sqlite.h>

#include "cli.h"

struct pools {
    char path[16][512];            /* database files */
    struct sl_sqlite_stats st[16]; /* their snapshots */
    size_t n;                      /* entries (the first 16 pools) */
};

static void keep_pool(void *arg, const char *path, const struct sl_sqlite_stats *st)
{
    struct pools *ps = arg;
    if (ps->n == 16) return;
    snprintf(ps->path[ps->n], sizeof ps->path[0], "%s", path);
    ps->st[ps->n++] = *st;
}

struct family {
    const char *name; /* metric name */
    const char *type; /* counter or gauge */
    const char *help; /* one line */
};

static const struct family pool_families[] = {
    {"sluice_sqlite_connections", "gauge", "Connections of a SQLite pool, by state."},
    {"sluice_sqlite_waiting_requests", "gauge", "Requests waiting for a connection."},
    {"sluice_sqlite_wait_seconds_total", "counter", "Time requests waited for a connection."},
    {"sluice_sqlite_requests_total", "counter", "Requests finished."},
    {"sluice_sqlite_statements_total", "counter", "Statements stepped to their end."},
    {"sluice_sqlite_errors_total", "counter", "Requests that failed."},
    {"sluice_sqlite_retries_total", "counter", "SQLITE_BUSY / SQLITE_LOCKED retries."},
};

static void pool_sample(FILE *out, const char *name, const char *db, const char *state, double v)
{
    fprintf(out, "%s{db=\"", name);
    cli_metrics_label(out, db);
    if (state) fprintf(out, "\",state=\"%s", state);
    fprintf(out, "\"} %.17g\n", v);
}

/* The pools' metrics, one family at a time (the text format groups samples by name). */
void cli_metrics_render_pools(struct sl_pipeline *p, FILE *out)
{
    struct pools *ps = calloc(1, sizeof *ps);
    if (!ps) return;
    sl_sqlite_pools(p, keep_pool, ps);
    for (size_t k = 0; ps->n && k < sizeof pool_families / sizeof *pool_families; k++) {
        const struct family *f = &pool_families[k];
        fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, f->type);
        for (size_t i = 0; i < ps->n; i++) {
            const struct sl_sqlite_stats *st = &ps->st[i];
            const char *db = ps->path[i];
            if (k == 0) {
                pool_sample(out, f->name, db, "idle", st->idle);
                pool_sample(out, f->name, db, "busy", st->busy);
                continue;
            }
            double v[] = {0,
                          st->waiting,
                          (double)st->wait_ns / 1e9,
                          (double)st->requests,
                          (double)st->statements,
                          (double)st->errors,
                          (double)st->retries};
            pool_sample(out, f->name, db, NULL, v[k]);
        }
    }
    free(ps);
}
