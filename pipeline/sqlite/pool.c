/* The connection pool of one database file (include/sluice/sqlite.h).
 *
 * Everything here but the request's work runs on the loop thread. A request waits in a
 * FIFO until the one before it has a connection: an idle one, or a new one while fewer
 * than max_connections are open (opened by the request's own executor thread: opening
 * touches the disk). A write waits while another write holds a connection, so that one
 * database is written by one connection at a time. The work runs through
 * sl_stage_submit(); when it is done the connection comes back (or is closed, past its
 * lifetime), the stage's done runs, and the next requests go.
 *
 * One timer serves the two deadlines: the oldest waiting request's acquire_timeout (the
 * FIFO makes it the first to expire) and the idle connections' idle_timeout. A pool is a
 * resource of its pipeline: stopped before the executor (what still waits gets
 * SL_ESTOPPED), freed after every stage closed. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "sqlite/internal.h"

struct request {
    struct request *next;        /* the FIFO */
    struct sl_sqlite_pool *pool; /* where it waits */
    struct sl_stage *stage;      /* whose it is */
    int flags;                   /* SL_SQLITE_READ / WRITE */
    sl_sqlite_work_fn *work;     /* on an executor thread */
    sl_sqlite_done_fn *done;     /* on the loop */
    void *arg;                   /* passed to both */
    int64_t queued_ns;           /* when it was submitted */
    struct sl_sqlite_conn *conn; /* lent to it */
    int rc;                      /* what happened */
    struct sl_error err;         /* why */
};

struct sl_sqlite_pool {
    struct sl_pipeline *p;               /* owner */
    struct sl_stage *stage;              /* the stage that made it: idle connections are
                                            closed through its executor submissions */
    char *path;                          /* the database file */
    struct sl_sqlite_options opt;        /* settings */
    struct sl_sqlite_conn *conns;        /* every connection, open or being opened */
    uint32_t open, busy;                 /* connections / of which lent */
    bool writing;                        /* a write holds a connection */
    bool stopped;                        /* the pipeline is being freed */
    struct request *head, *tail;         /* waiting requests, oldest first */
    uint32_t waiting;                    /* entries */
    struct event *timer;                 /* acquire and idle deadlines */
    struct sl__sqlite_counters counters; /* bumped by the work */
    uint64_t requests, wait_ns, errors;  /* loop-thread counters */
};

void sl_sqlite_options_init(struct sl_sqlite_options *o)
{
    *o = (struct sl_sqlite_options){.max_connections = 4,
                                    .idle_timeout_ms = 60000,
                                    .max_lifetime_ms = 1800000,
                                    .acquire_timeout_ms = 30000,
                                    .busy_timeout_ms = 5000,
                                    .statement_cache = 32};
}

/* ---- connections ------------------------------------------------------------------------ */

static struct sl_sqlite_conn *conn_new(struct sl_sqlite_pool *pool)
{
    struct sl_sqlite_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->stmts = calloc(pool->opt.statement_cache ? pool->opt.statement_cache : 1, sizeof *c->stmts);
    if (!c->stmts) {
        free(c);
        return NULL;
    }
    c->pool = pool;
    c->cap = pool->opt.statement_cache;
    c->busy_ms = pool->opt.busy_timeout_ms;
    c->counters = &pool->counters;
    c->next = pool->conns;
    pool->conns = c;
    pool->open++;
    return c;
}

static void conn_unlink(struct sl_sqlite_pool *pool, struct sl_sqlite_conn *c)
{
    struct sl_sqlite_conn **pp = &pool->conns;
    while (*pp != c) pp = &(*pp)->next;
    *pp = c->next;
    pool->open--;
}

static void close_work(void *arg)
{
    struct sl_sqlite_conn *c = arg;
    sl__sqlite_conn_close(c); /* a WAL checkpoint may write: off the loop */
    free(c->stmts);
    free(c);
}

/* Takes `c` out of the pool and closes it on an executor thread (on this one when no
 * stage can submit: the pipeline is being freed). */
static void conn_retire(struct sl_sqlite_pool *pool, struct sl_sqlite_conn *c,
                        struct sl_stage *stage)
{
    conn_unlink(pool, c);
    if (!c->db || !stage || sl_stage_submit(stage, close_work, NULL, c)) close_work(c);
}

/* An idle connection, or a new one when there is room; NULL when every one is busy. */
static struct sl_sqlite_conn *conn_take(struct sl_sqlite_pool *pool)
{
    struct sl_sqlite_conn *best = NULL;
    for (struct sl_sqlite_conn *c = pool->conns; c; c = c->next)
        if (!c->busy && (!best || c->idle_ns > best->idle_ns)) best = c; /* the warmest */
    if (!best && pool->open < pool->opt.max_connections) best = conn_new(pool);
    if (best) {
        best->busy = true;
        pool->busy++;
    }
    return best;
}

/* ---- the timer ----------------------------------------------------------------------------- */

static void on_timer(evutil_socket_t fd, short what, void *arg);

/* Arms the timer for the nearest deadline: the oldest request's acquire_timeout, or the
 * first idle connection beyond min_idle to expire. */
static void arm(struct sl_sqlite_pool *pool)
{
    int64_t next = INT64_MAX, now = sl__now_ns();
    if (pool->head) next = pool->head->queued_ns + pool->opt.acquire_timeout_ms * 1000000;
    uint32_t idle = pool->open - pool->busy;
    if (pool->opt.idle_timeout_ms > 0 && idle > pool->opt.min_idle)
        for (struct sl_sqlite_conn *c = pool->conns; c; c = c->next)
            if (!c->busy && c->idle_ns + pool->opt.idle_timeout_ms * 1000000 < next)
                next = c->idle_ns + pool->opt.idle_timeout_ms * 1000000;
    if (next == INT64_MAX) {
        evtimer_del(pool->timer);
        return;
    }
    int64_t us = next > now ? (next - now + 999) / 1000 : 0;
    struct timeval tv = {.tv_sec = us / 1000000, .tv_usec = us % 1000000};
    evtimer_add(pool->timer, &tv);
}

/* ---- requests ------------------------------------------------------------------------------- */

static void finish(struct request *r)
{
    struct sl_sqlite_pool *pool = r->pool;
    pool->requests++;
    if (r->rc) pool->errors++;
    if (r->rc && !r->err.msg[0]) sl_error_set(&r->err, r->rc, "%s", sl_strerror(r->rc));
    if (r->done) r->done(r->stage, r->arg, r->rc, &r->err);
    sl__stage_unhold(r->stage);
    free(r);
}

static void pump(struct sl_sqlite_pool *pool);

static void request_work(void *arg)
{
    struct request *r = arg;
    struct sl_sqlite_conn *c = r->conn;
    if (!c->db && (r->rc = sl__sqlite_conn_open(c, r->pool->path, &r->err)) != 0) return;
    r->rc = r->work(c, r->arg, &r->err);
    if (r->rc && !sqlite3_get_autocommit(c->db)) /* the work left a transaction open */
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

static void request_done(struct sl_stage *stage, void *arg)
{
    struct request *r = arg;
    struct sl_sqlite_pool *pool = r->pool;
    struct sl_sqlite_conn *c = r->conn;
    int64_t now = sl__now_ns();
    c->busy = false;
    pool->busy--;
    if (r->flags & SL_SQLITE_WRITE) pool->writing = false;
    bool old =
        pool->opt.max_lifetime_ms > 0 && now - c->opened_ns > pool->opt.max_lifetime_ms * 1000000;
    if (!c->db || old || pool->stopped)
        conn_retire(pool, c, pool->stopped ? NULL : stage);
    else
        c->idle_ns = now;
    finish(r);
    pump(pool);
}

/* Fails request `r` (taken out of the FIFO) without running it. */
static void refuse(struct request *r, int rc, const char *fmt, ...) SL_PRINTF(3, 4);

static void refuse(struct request *r, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl_error_setv(&r->err, rc, fmt, ap);
    va_end(ap);
    r->rc = rc;
    finish(r);
}

static struct request *pop_head(struct sl_sqlite_pool *pool)
{
    struct request *r = pool->head;
    pool->head = r->next;
    if (!pool->head) pool->tail = NULL;
    pool->waiting--;
    return r;
}

/* Lends connections to the oldest requests, in order, while there are any to lend. */
static void pump(struct sl_sqlite_pool *pool)
{
    while (pool->head && !pool->stopped) {
        struct request *r = pool->head;
        bool write = r->flags & SL_SQLITE_WRITE;
        if (write && pool->writing) break; /* one writer; the FIFO keeps its turn */
        struct sl_sqlite_conn *c = conn_take(pool);
        if (!c) break;
        pop_head(pool);
        r->conn = c;
        if (write) pool->writing = true;
        pool->wait_ns += (uint64_t)(sl__now_ns() - r->queued_ns);
        if (sl_stage_submit(r->stage, request_work, request_done, r)) {
            r->rc = SL_ENOMEM;
            request_done(r->stage, r); /* gives the connection back, tells the stage */
            return;
        }
    }
    arm(pool);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct sl_sqlite_pool *pool = arg;
    int64_t now = sl__now_ns(), wait = pool->opt.acquire_timeout_ms * 1000000;
    while (pool->head && now - pool->head->queued_ns >= wait) {
        struct request *r = pop_head(pool);
        refuse(r, SL_EBUSY,
               "no connection to '%s' within acquire_timeout (%lld ms): %u busy, %u waiting",
               pool->path, (long long)pool->opt.acquire_timeout_ms, pool->busy, pool->waiting);
    }
    uint32_t idle = pool->open - pool->busy;
    for (struct sl_sqlite_conn *c = pool->conns, *next; c && idle > pool->opt.min_idle; c = next) {
        next = c->next;
        if (c->busy || now - c->idle_ns < pool->opt.idle_timeout_ms * 1000000) continue;
        conn_retire(pool, c, pool->stage);
        idle--;
    }
    arm(pool);
}

int sl_sqlite_submit(struct sl_sqlite_pool *pool, struct sl_stage *stage, int flags,
                     sl_sqlite_work_fn *work, sl_sqlite_done_fn *done, void *arg)
{
    if (pool->stopped) return SL_ESTOPPED;
    struct request *r = calloc(1, sizeof *r);
    if (!r) return SL_ENOMEM;
    *r = (struct request){.pool = pool,
                          .stage = stage,
                          .flags = flags,
                          .work = work,
                          .done = done,
                          .arg = arg,
                          .queued_ns = sl__now_ns()};
    if (pool->tail)
        pool->tail->next = r;
    else
        pool->head = r;
    pool->tail = r;
    pool->waiting++;
    sl__stage_hold(stage); /* its input does not end while the request is out */
    pump(pool);
    return 0;
}

/* ---- the pool as a resource of its pipeline ------------------------------------------------ */

/* Before the executor stops: what still waits is told SL_ESTOPPED (its done runs now,
 * before any stage closes); connections lent out come back through request_done. */
static void pool_stop(void *arg)
{
    struct sl_sqlite_pool *pool = arg;
    pool->stopped = true;
    while (pool->head) refuse(pop_head(pool), SL_ESTOPPED, "the pipeline stopped");
    evtimer_del(pool->timer);
}

/* After every stage closed: nothing is lent any more. */
static void pool_free(void *arg)
{
    struct sl_sqlite_pool *pool = arg;
    while (pool->conns) conn_retire(pool, pool->conns, NULL);
    if (pool->timer) event_free(pool->timer);
    free(pool->path);
    free(pool);
}

static struct sl_sqlite_pool *pool_new(struct sl_stage *stage, const char *path,
                                       const struct sl_sqlite_options *opts)
{
    struct sl_sqlite_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return NULL;
    pool->p = stage->p;
    pool->stage = stage;
    if (opts)
        pool->opt = *opts;
    else
        sl_sqlite_options_init(&pool->opt);
    if (!pool->opt.max_connections) pool->opt.max_connections = 1;
    pool->path = sl__strdup(path);
    pool->timer = evtimer_new(stage->p->base, on_timer, pool);
    if (!pool->path || !pool->timer) {
        pool_free(pool);
        return NULL;
    }
    return pool;
}

struct sl_sqlite_pool *sl_sqlite_pool(struct sl_stage *stage, const char *path,
                                      const struct sl_sqlite_options *opts, struct sl_error *err)
{
    if (!path || !*path) {
        sl_error_set(err, SL_EINVAL, "a SQLite pool needs a database path");
        return NULL;
    }
    char key[4200];
    snprintf(key, sizeof key, "sqlite:%s", path);
    struct sl_sqlite_pool *pool = sl__resource_find(stage->p, key);
    if (pool) { /* a stage that needs more connections than the first asked for gets them */
        if (opts && opts->max_connections > pool->opt.max_connections)
            pool->opt.max_connections = opts->max_connections;
        return pool;
    }
    if (!(pool = pool_new(stage, path, opts)) ||
        sl__resource_add(stage->p, key, pool, pool_stop, pool_free)) {
        if (pool) pool_free(pool);
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    return pool;
}

void sl_sqlite_pools(struct sl_pipeline *p,
                     void (*fn)(void *arg, const char *path, const struct sl_sqlite_stats *stats),
                     void *arg)
{
    for (struct sl__resource *r = sl__resources(p); r; r = r->next) {
        if (strncmp(r->key, "sqlite:", 7) != 0) continue;
        struct sl_sqlite_pool *pool = r->ptr;
        struct sl_sqlite_stats st = {
            .open = pool->open,
            .idle = pool->open - pool->busy,
            .busy = pool->busy,
            .waiting = pool->waiting,
            .requests = pool->requests,
            .wait_ns = pool->wait_ns,
            .statements = atomic_load(&pool->counters.statements),
            .errors = pool->errors,
            .retries = atomic_load(&pool->counters.retries),
        };
        fn(arg, pool->path, &st);
    }
}
