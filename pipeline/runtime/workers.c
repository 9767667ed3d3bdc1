/* `workers: N`: a transform's or filter's batches run on a pool of N threads (the
 * run_in_executor of this world), and leave in the order they came.
 *
 * The loop thread pops input batches and queues them as jobs, numbered; workers run
 * map()/keep() over a job into output batches taken from the (locked) batch pool; the
 * loop thread then emits finished jobs strictly by number. At most 2N jobs are in flight,
 * so memory stays bounded. Only the loop thread touches reference counts and queues.
 * With `workers: auto` the loop thread also runs a waiting job when every worker is busy
 * (help()), in two more window slots.
 *
 * Operator chaining (chain.c links the stages): a job of a chain's head runs the head,
 * then each next stage over the batch of port 0 the one before made, on the same thread;
 * the loop then finishes them in turn, handing that batch from one to the next instead
 * of queueing it. A batch crosses threads once per chain. A chain's head always goes
 * through jobs; `workers: auto` runs a job on the loop at once while jobs are cheap
 * (never sliced: only known costs below WORTH_NS).
 *
 * `workers: auto` (the default) starts the cores less one, and sends a batch to them
 * only while batches cost more than the hand-off (WORTH_NS: a wake of a worker and one
 * of the loop): a cheap filter stays on the loop, a JSON parse moves off it. The switch
 * keeps the order: to the loop only when no job is out, to the workers only when no
 * batch is half processed on the loop.
 *
 * Timings: a job's time (the whole chain's) is counted for the head when the loop emits
 * it, in its batch histogram and, when a worker ran it, in its busy_ns (a job the loop
 * ran is in the head's run already). */
#define _GNU_SOURCE /* sched_getaffinity */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/internal.h"

#define WORTH_NS    50000 /* a batch costing less stays on the loop (workers: auto) */
#define AUTO_MAX    8
#define HELP_MAX_NS 2000000 /* the loop helps only with batches cheaper than this */
#define HELP_JOBS   2       /* window slots for the jobs the loop helps with */

/* One stage of a job: the head, or a stage of its chain. */
struct link {
    struct sl_stage *s;    /* the stage */
    int rc;                /* map/keep result */
    bool ran;              /* it ran (a chain stops at an empty batch or an error) */
    struct sl_emit e;      /* input and outputs */
    struct sl_batch **out; /* one per port (in the job's allocation) */
    struct sl_error *err;  /* sl_stage_error()'s reason while it ran, or NULL */
};

struct job {
    struct job *next;    /* todo list */
    uint64_t seq;        /* order of arrival */
    int64_t ns;          /* how long the chain took */
    bool on_loop;        /* the loop thread ran it: its time is in the head's run */
    bool done;           /* set by the worker under the lock */
    uint32_t nlinks;     /* the head and its chain */
    struct link links[]; /* then the output slots of every link */
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
    uint64_t helped;     /* jobs the loop thread ran (help(), chains run here) */
};

/* The stage whose worker this thread is, and the worker's number (1..N), for
 * sl_stage_thread(): a worker serves one stage for its whole life, so the pair is written
 * once, when the thread starts. */
static _Thread_local const struct sl_stage *worker_stage;
static _Thread_local int worker_number;
/* The link this thread runs (a worker, or the loop helping): a reason a stage gives with
 * sl_stage_error() stays with its job, and reaches the stage when the loop finishes the
 * jobs in order, so that a failure reports its own reason, not that of a later batch
 * another worker failed first. */
static _Thread_local struct link *running_link;

struct sl_error *sl__job_error(const struct sl_stage *s)
{
    struct link *l = running_link;
    if (!l || l->s != s) return NULL;
    if (!l->err) l->err = calloc(1, sizeof *l->err);
    return l->err;
}

/* Hands a link's reason to its stage (the first one the stage had stays), in job order;
 * loop thread. */
static void pass_reason(struct link *l)
{
    if (!l->err) return;
    if (l->err->code) sl_stage_error(l->s, l->err->code, "%s", l->err->msg);
    free(l->err);
    l->err = NULL;
}

/* Runs the stages of job j over its batch, each over the port 0 output of the one
 * before, until one fails or leaves nothing; any thread. */
static void run_links(struct job *j)
{
    for (uint32_t k = 0; k < j->nlinks; k++) {
        struct link *l = &j->links[k];
        if (k > 0) {
            struct link *prev = &j->links[k - 1];
            struct sl_batch *x = prev->e.out[0];
            if (prev->rc < 0 || !x || x->n == 0) return;
            prev->e.handoff_n = x->n;
            prev->e.handoff_bytes = x->bytes;
            sl__emit_init(&l->e, l->s, x, l->out);
            /* In place when only this job holds it, and no tap reads it as it was. */
            l->e.in_place = x->refs == 1 && !x->source && !x->view_of &&
                            !atomic_load_explicit(&prev->s->tap0, memory_order_relaxed);
            prev->e.handoff_intact = !l->e.in_place;
        }
        running_link = l;
        l->rc = sl__stage_process(l->s, l->e.in, &l->e, NULL); /* whole: no slices */
        running_link = NULL;
        l->ran = true;
    }
}

/* Runs job j (taken off the todo list) and marks it done; any thread. */
static void run_job(struct sl__workers *w, struct job *j)
{
    int64_t t0 = sl__now_ns();
    run_links(j);
    int64_t ns = sl__now_ns() - t0;
    pthread_mutex_lock(&w->lock);
    j->ns = ns;
    j->done = true;
    pthread_mutex_unlock(&w->lock);
}

/* The oldest job no worker has taken yet, or NULL. Called with the lock held. */
static struct job *take_job(struct sl__workers *w)
{
    struct job *j = w->todo_head;
    if (!j) return NULL;
    w->todo_head = j->next;
    if (!w->todo_head) w->todo_tail = NULL;
    return j;
}

static void *worker_main(void *arg)
{
    struct sl__workers *w = arg;
    worker_stage = w->s;
    worker_number = atomic_fetch_add(&w->started, 1) + 1;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->todo_head && !w->quit) pthread_cond_wait(&w->cond, &w->lock);
        if (w->quit) break;
        struct job *j = take_job(w);
        pthread_mutex_unlock(&w->lock);
        run_job(w, j);
        sl__wake_loop(w->s);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int sl__workers_start(struct sl_stage *s, struct sl_error *err)
{
    struct sl__workers *w = calloc(1, sizeof *w);
    if (!w) return sl_error_set(err, SL_ENOMEM, "out of memory");
    w->s = s;
    w->size = 2 * (uint32_t)s->nworkers + (s->workers_auto ? HELP_JOBS : 0);
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

/* Drops link l of a job whose batch for it (`in`, the output of the link before) is
 * gone: its outputs are released, not `in` again. */
static void drop_link(struct link *l)
{
    free(l->err);
    l->err = NULL;
    if (l->e.out[0] == l->e.in) l->e.out[0] = NULL;
    l->e.in = NULL;
    sl__emit_finish(&l->e, false);
}

static void drop_job(struct job *j)
{
    free(j->links[0].err);
    sl__emit_finish(&j->links[0].e, false);
    for (uint32_t k = 1; k < j->nlinks && j->links[k].ran; k++) drop_link(&j->links[k]);
    free(j);
}

/* Finishes a done job on the loop thread: each stage in turn pushes its outputs, port 0
 * going to the next stage of the chain, which ran over that very batch. */
static void finish_job(struct job *j)
{
    struct sl_batch *x = NULL;
    for (uint32_t k = 0; k < j->nlinks; k++) {
        struct link *l = &j->links[k];
        if (k > 0 && !l->ran) break;
        if (k > 0 && !x) { /* the stage before failed: its batch was released */
            drop_link(l);
            continue;
        }
        bool more = k + 1 < j->nlinks && j->links[k + 1].ran;
        pass_reason(l);
        sl__finish_or_fail_to(l->s, &l->e, l->rc, more ? &x : NULL);
    }
}

/* True when every stage of the job's chain has room downstream. */
static bool chain_has_room(const struct sl_stage *s)
{
    for (; s; s = s->chain_next)
        if (!sl__stage_outputs_have_room(s)) return false;
    return true;
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
        if (!j || !job_done(w, j) || !chain_has_room(s)) return;
        w->window[w->next_emit % w->size] = NULL;
        w->next_emit++;
        w->inflight--;
        sl__workers_cost(s, j->ns);
        sl__stage_time_batch(s, j->ns); /* the whole chain's, for its head */
        if (!j->on_loop) s->st.busy_ns += (uint64_t)j->ns;
        finish_job(j);
        free(j);
    }
}

/* A job for the stage and the stages of its chain, its input not set yet. */
static struct job *new_job(struct sl_stage *s)
{
    uint32_t n = 0, ports = 0;
    for (const struct sl_stage *t = s; t; t = t->chain_next) n++, ports += t->nports;
    struct job *j = calloc(1, sizeof *j + n * sizeof j->links[0] + ports * sizeof(void *));
    if (!j) return NULL;
    j->nlinks = n;
    struct sl_batch **slots = (struct sl_batch **)&j->links[n];
    uint32_t k = 0;
    for (struct sl_stage *t = s; t; t = t->chain_next, k++) {
        j->links[k].s = t;
        j->links[k].out = slots;
        slots += t->nports;
    }
    return j;
}

/* A chain's head with `workers: auto` whose jobs are known to be cheap: the loop runs
 * them itself (whole, which a cost below WORTH_NS allows). */
static bool run_here(const struct sl_stage *s)
{
    return s->chain_next && s->workers_auto && s->batch_cost_ns > 0 && s->batch_cost_ns < WORTH_NS;
}

static void dispatch(struct sl_stage *s, struct sl__workers *w)
{
    if (!s->chain_next && s->workers_auto && s->batch_cost_ns < WORTH_NS)
        return; /* back to the loop once the jobs out are in */
    while (w->inflight < w->size && !s->p->done) {
        struct job *j = new_job(s);
        if (!j) return; /* tried again at the next run */
        struct sl_batch *in = sl__pop_input(s);
        if (!in) {
            free(j);
            return;
        }
        sl__emit_init(&j->links[0].e, s, in, j->links[0].out);
        j->links[0].e.in_place = in->refs == 1 && !in->source && !in->view_of;
        j->seq = w->next_seq++;
        w->window[j->seq % w->size] = j;
        w->inflight++;
        if (run_here(s)) {
            j->on_loop = true;
            run_job(w, j);
            w->helped++;
            emit_ready(s, w);
            continue;
        }
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
    if (!s->workers_auto || s->chain_next) return false; /* a chain's head: jobs only */
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
    if (!worker_stage) return 0;
    return worker_stage == stage || worker_stage == stage->chain_head ? worker_number : 0;
}

/* workers: auto, every worker busy and a job waiting: the loop thread runs that job
 * itself rather than wait, so that the cores less one plus the loop share the work (a
 * file source's reading leaves the loop idle for half of a parse's time). Only jobs that
 * cost less than HELP_MAX_NS, so the loop stays responsive. Order holds: jobs leave by
 * number whoever ran them. */
static bool help(struct sl_stage *s, struct sl__workers *w)
{
    if (!s->workers_auto || s->batch_cost_ns > HELP_MAX_NS || s->p->done) return false;
    pthread_mutex_lock(&w->lock);
    struct job *j = take_job(w);
    pthread_mutex_unlock(&w->lock);
    if (!j) return false;
    j->on_loop = true;
    run_job(w, j);
    w->helped++;
    return true;
}

uint64_t sl__workers_helped(const struct sl_stage *s)
{
    return s->workers ? s->workers->helped : 0;
}

void sl__workers_run(struct sl_stage *s)
{
    struct sl__workers *w = s->workers;
    emit_ready(s, w);
    if (!s->p->done) dispatch(s, w);
    if (!help(s, w)) return;
    emit_ready(s, w);
    if (!s->p->done) dispatch(s, w);
}
