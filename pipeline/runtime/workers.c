/* `workers: N`: a transform's or filter's batches run on a pool of N threads (the
 * run_in_executor of this world), and leave in the order they came.
 *
 * The loop thread pops input batches and queues them as jobs, numbered; workers run
 * map()/keep() over a job into output batches taken from the (locked) batch pool; the
 * loop thread then emits finished jobs strictly by number. At most 2N jobs are in flight,
 * so memory stays bounded. Only the loop thread touches reference counts and queues.
 *
 * `workers: auto` (the default) starts the cores less one, and sends a batch to them
 * only while batches cost more than the hand-off (WORTH_NS: a wake of a worker and one
 * of the loop): a cheap filter stays on the loop, a JSON parse moves off it. The switch
 * keeps the order: to the loop only when no job is out, to the workers only when no
 * batch is half processed on the loop. */
#define _GNU_SOURCE /* sched_getaffinity */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/internal.h"

#define WORTH_NS 50000 /* a batch costing less stays on the loop (workers: auto) */
#define AUTO_MAX 8

struct job {
    struct job *next;        /* todo list */
    uint64_t seq;            /* order of arrival */
    int rc;                  /* map/keep result */
    int64_t ns;              /* how long map/keep took */
    bool done;               /* set by the worker under the lock */
    struct sl_emit e;        /* input and outputs */
    struct sl_batch *outs[]; /* one per port */
};

struct sl__workers {
    struct sl_stage *s;    /* the stage */
    int n;                 /* threads */
    pthread_t *threads;    /* the pool */
    pthread_mutex_t lock;  /* guards todo, quit and job->done */
    pthread_cond_t cond;   /* signals todo or quit */
    struct job *todo_head; /* jobs waiting for a worker */
    struct job *todo_tail;
    bool quit;           /* threads exit */
    struct job **window; /* in-flight jobs by seq % size */
    uint32_t size;       /* window slots: 2n */
    uint32_t inflight;   /* jobs dispatched and not emitted */
    uint64_t next_seq;   /* number of the next dispatched job */
    uint64_t next_emit;  /* number of the next job to emit */
    atomic_int started;  /* threads that have taken their number */
};

/* The stage whose worker this thread is, and the worker's number (1..N), for
 * sl_stage_thread(). The only thread-local of the library: a worker serves one stage for
 * its whole life, so the pair is written once, when the thread starts. */
static _Thread_local const struct sl_stage *worker_stage;
static _Thread_local int worker_number;

static void *worker_main(void *arg)
{
    struct sl__workers *w = arg;
    worker_stage = w->s;
    worker_number = atomic_fetch_add(&w->started, 1) + 1;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->todo_head && !w->quit) pthread_cond_wait(&w->cond, &w->lock);
        if (w->quit) break;
        struct job *j = w->todo_head;
        w->todo_head = j->next;
        if (!w->todo_head) w->todo_tail = NULL;
        pthread_mutex_unlock(&w->lock);
        int64_t t0 = sl__now_ns();
        int rc = sl__stage_process(w->s, j->e.in, &j->e, NULL); /* off the loop: whole */
        int64_t ns = sl__now_ns() - t0;
        pthread_mutex_lock(&w->lock);
        j->rc = rc;
        j->ns = ns;
        j->done = true;
        sl__wake_loop(w->s);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int sl__workers_start(struct sl_stage *s, struct sl_error *err)
{
    struct sl__workers *w = calloc(1, sizeof *w);
    if (!w) return sl_error_set(err, SL_ENOMEM, "out of memory");
    w->s = s;
    w->size = 2 * (uint32_t)s->nworkers;
    w->window = calloc(w->size, sizeof *w->window);
    w->threads = calloc((size_t)s->nworkers, sizeof *w->threads);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    s->workers = w;
    if (!w->window || !w->threads) return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (int i = 0; i < s->nworkers; i++) {
        if (pthread_create(&w->threads[i], NULL, worker_main, w))
            return sl_error_set(err, SL_ENOMEM, "cannot start worker thread %d", i);
        w->n++;
    }
    return 0;
}

static void drop_job(struct job *j)
{
    sl__emit_finish(&j->e, false);
    free(j);
}

void sl__workers_stop(struct sl_stage *s)
{
    struct sl__workers *w = s->workers;
    if (!w) return;
    pthread_mutex_lock(&w->lock);
    w->quit = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    for (int i = 0; i < w->n; i++) pthread_join(w->threads[i], NULL);
    for (uint32_t i = 0; w->window && i < w->size; i++)
        if (w->window[i]) drop_job(w->window[i]);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w->window);
    free(w->threads);
    free(w);
    s->workers = NULL;
}

bool sl__workers_idle(const struct sl_stage *s)
{
    return s->workers->inflight == 0;
}

static bool job_done(struct sl__workers *w, struct job *j)
{
    pthread_mutex_lock(&w->lock);
    bool done = j->done;
    pthread_mutex_unlock(&w->lock);
    return done;
}

/* Emits finished jobs in order while the outputs have room. */
static void emit_ready(struct sl_stage *s, struct sl__workers *w)
{
    while (w->inflight && !s->p->done) {
        struct job *j = w->window[w->next_emit % w->size];
        if (!j || !job_done(w, j) || !sl__stage_outputs_have_room(s)) return;
        w->window[w->next_emit % w->size] = NULL;
        w->next_emit++;
        w->inflight--;
        sl__workers_cost(s, j->ns);
        sl__finish_or_fail(s, &j->e, j->rc);
        free(j);
    }
}

static void dispatch(struct sl_stage *s, struct sl__workers *w)
{
    if (s->workers_auto && s->batch_cost_ns < WORTH_NS)
        return; /* back to the loop once
                    the jobs out are in */
    while (w->inflight < w->size && !s->p->done) {
        struct job *j = malloc(sizeof *j + s->nports * sizeof j->outs[0]);
        if (!j) return;
        struct sl_batch *in = sl__pop_input(s);
        if (!in) {
            free(j);
            return;
        }
        j->next = NULL;
        j->seq = w->next_seq++;
        j->rc = 0;
        j->done = false;
        sl__emit_init(&j->e, s, in, j->outs);
        j->e.in_place = in->refs == 1 && !in->source && !in->view_of;
        w->window[j->seq % w->size] = j;
        w->inflight++;
        pthread_mutex_lock(&w->lock);
        if (w->todo_tail)
            w->todo_tail->next = j;
        else
            w->todo_head = j;
        w->todo_tail = j;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
    }
}

int sl__workers_auto(void)
{
    cpu_set_t set;
    long cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set)
                                                             : sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 2) return 0;
    return cores - 1 > AUTO_MAX ? AUTO_MAX : (int)cores - 1;
}

bool sl__workers_inline(const struct sl_stage *s)
{
    if (!s->workers_auto) return false;
    if (sl__paused(s)) return true;
    return s->workers->inflight == 0 && s->batch_cost_ns < WORTH_NS;
}

void sl__workers_cost(struct sl_stage *s, int64_t ns)
{
    s->batch_cost_ns = s->batch_cost_ns ? (3 * s->batch_cost_ns + ns) / 4 : ns;
}

int sl_stage_threads(const struct sl_stage *stage)
{
    return stage->nworkers + 1;
}

int sl_stage_thread(const struct sl_stage *stage)
{
    return worker_stage == stage ? worker_number : 0;
}

void sl__workers_run(struct sl_stage *s)
{
    struct sl__workers *w = s->workers;
    emit_ready(s, w);
    if (!s->p->done) dispatch(s, w);
}
