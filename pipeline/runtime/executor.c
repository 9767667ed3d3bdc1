/* The executor: a small thread pool for blocking work (fsync, SQLite), started on first
 * use. Finished tasks wait on a list until the loop thread runs their `done` callbacks,
 * woken through the pipeline's eventfd. */
#include <stdlib.h>
#include <unistd.h>

#include "runtime/internal.h"

struct task {
    struct task *next;      /* queue / done list */
    struct sl_stage *stage; /* owner */
    sl_work_fn *work;       /* on a thread */
    sl_done_fn *done;       /* on the loop */
    void *arg;              /* passed to both */
};

struct sl__executor {
    pthread_t *threads;                 /* the pool */
    int n;                              /* threads started */
    pthread_mutex_t lock;               /* guards everything below */
    pthread_cond_t cond;                /* todo or quit */
    struct task *todo_head, *todo_tail; /* waiting tasks */
    struct task *done_head, *done_tail; /* finished tasks */
    uint64_t outstanding;               /* submitted, done callback not yet run */
    bool quit;                          /* threads exit */
};

static void *executor_main(void *arg)
{
    struct sl_pipeline *p = arg;
    struct sl__executor *x = p->executor;
    pthread_mutex_lock(&x->lock);
    for (;;) {
        while (!x->todo_head && !x->quit) pthread_cond_wait(&x->cond, &x->lock);
        if (!x->todo_head) break; /* quit, and nothing left to run */
        struct task *t = x->todo_head;
        x->todo_head = t->next;
        if (!x->todo_head) x->todo_tail = NULL;
        pthread_mutex_unlock(&x->lock);
        t->work(t->arg);
        pthread_mutex_lock(&x->lock);
        t->next = NULL;
        if (x->done_tail)
            x->done_tail->next = t;
        else
            x->done_head = t;
        x->done_tail = t;
        atomic_store(&p->executor_done, 1);
        sl__wake_pipeline(p);
    }
    pthread_mutex_unlock(&x->lock);
    return NULL;
}

static int executor_start(struct sl_pipeline *p)
{
    struct sl__executor *x = calloc(1, sizeof *x);
    int n = (int)p->opt.executor_threads;
    if (!n) { /* blocking work waits more than it computes: twice the cores */
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 2 ? (int)cores * 2 : 4;
    }
    if (!x || !(x->threads = calloc((size_t)n, sizeof *x->threads))) {
        free(x);
        return SL_ENOMEM;
    }
    pthread_mutex_init(&x->lock, NULL);
    pthread_cond_init(&x->cond, NULL);
    p->executor = x;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&x->threads[i], NULL, executor_main, p)) break;
        x->n++;
    }
    return x->n ? 0 : SL_ENOMEM;
}

int sl_stage_submit(struct sl_stage *stage, sl_work_fn *work, sl_done_fn *done, void *arg)
{
    struct sl_pipeline *p = stage->p;
    if (!p->executor && executor_start(p)) return SL_ENOMEM;
    struct task *t = malloc(sizeof *t);
    if (!t) return SL_ENOMEM;
    *t = (struct task){.stage = stage, .work = work, .done = done, .arg = arg};
    struct sl__executor *x = p->executor;
    pthread_mutex_lock(&x->lock);
    if (x->todo_tail)
        x->todo_tail->next = t;
    else
        x->todo_head = t;
    x->todo_tail = t;
    x->outstanding++;
    pthread_cond_signal(&x->cond);
    pthread_mutex_unlock(&x->lock);
    sl__stage_hold(stage);
    return 0;
}

void sl__executor_run_done(struct sl_pipeline *p)
{
    struct sl__executor *x = p->executor;
    if (!x) return;
    pthread_mutex_lock(&x->lock);
    struct task *t = x->done_head;
    x->done_head = x->done_tail = NULL;
    pthread_mutex_unlock(&x->lock);
    while (t) {
        struct task *next = t->next;
        if (t->done) t->done(t->stage, t->arg);
        sl__stage_unhold(t->stage);
        pthread_mutex_lock(&x->lock);
        x->outstanding--;
        pthread_mutex_unlock(&x->lock);
        free(t);
        t = next;
    }
}

void sl__executor_stop(struct sl_pipeline *p)
{
    struct sl__executor *x = p->executor;
    if (!x) return;
    pthread_mutex_lock(&x->lock);
    x->quit = true; /* threads finish what is queued, then exit */
    pthread_cond_broadcast(&x->cond);
    pthread_mutex_unlock(&x->lock);
    for (int i = 0; i < x->n; i++) pthread_join(x->threads[i], NULL);
    sl__executor_run_done(p);
    pthread_mutex_destroy(&x->lock);
    pthread_cond_destroy(&x->cond);
    free(x->threads);
    free(x);
    p->executor = NULL;
}
