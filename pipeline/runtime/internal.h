/* The runtime: queues, stages, the scheduler on one libevent loop, workers, the
 * executor, and the pipeline that holds them. Depends on base/ and event/; knows no
 * config (config/ builds stages and calls in here) and no expression.
 *
 * The path of one batch, and of its acknowledgement back, is written down in
 * docs/design.md. */
#ifndef SLUICE_PIPELINE_RUNTIME_INTERNAL_H
#define SLUICE_PIPELINE_RUNTIME_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/event.h>
#include <sluice/pipeline.h>
#include <sluice/stage.h>

#include "base/internal.h"
#include "event/internal.h"

struct event;

/* 0.1's struct sl_pipeline_options ends with on_stage_done_arg: a smaller size is refused. */
#define SL__OPTIONS_SIZE_0                                                                         \
    (offsetof(struct sl_pipeline_options, on_stage_done_arg) + sizeof(void *))

/* ---- queues (one per edge) ----------------------------------------------------------- */

struct sl_queue {
    struct sl_batch **ring; /* ring_size slots */
    uint32_t ring_size;     /* slots in ring (grows past cap only for a final flush) */
    uint32_t cap;           /* capacity in batches */
    uint32_t head;          /* index of the oldest */
    uint32_t count;         /* batches queued */
    uint64_t bytes;         /* payload bytes queued */
    uint64_t max_bytes;     /* capacity in bytes */
    struct sl_stage *from;  /* producer */
    struct sl_stage *to;    /* consumer */
    int port;               /* producer's output port */
    bool closed;            /* producer has ended: no more pushes */
};

struct sl_queue *sl__queue_new(uint32_t max_batches, uint64_t max_bytes);
void sl__queue_free(struct sl_queue *q); /* releases queued batches */
bool sl__queue_has_room(const struct sl_queue *q);
int sl__queue_push(struct sl_queue *q, struct sl_batch *b); /* takes a reference */
struct sl_batch *sl__queue_pop(struct sl_queue *q);         /* gives the reference */

/* ---- stages -------------------------------------------------------------------------- */

struct sl__port {
    char *name;              /* "" for the default output */
    struct sl_queue **edges; /* consumers */
    uint32_t nedges;         /* number of edges */
};

struct sl__workers; /* runtime/workers.c */
struct sl__async;   /* runtime/async.c */
struct sl__cont;    /* runtime/slice.c */

/* The runtime's own options of a stage, written by the schemas of config/settings.c
 * (sl_stage_runtime_options) from the stage's config. */
struct sl__stage_conf {
    int64_t workers;        /* `workers`: threads for map/keep; 0: on the loop thread */
    int64_t buf_batches;    /* `buffer.max_batches` of input edges; 0: the pipeline's */
    uint64_t buf_bytes;     /* `buffer.max_bytes` of input edges; 0: the pipeline's */
    int64_t retry_initial;  /* `retry.initial`, ms (sinks) */
    int64_t retry_max;      /* `retry.max`, ms */
    int64_t retry_attempts; /* `retry.attempts`; 0: forever */
    int64_t max_in_flight;  /* `max_in_flight`: async calls at once */
    bool ordered;           /* `ordered`: async results in input order */
    int on_error;           /* `on_error`: enum sl__on_error (filters, async transforms) */
};

/* The values of the runtime's `on_error`. */
enum sl__on_error { SL__ON_ERROR_DROP = 0, SL__ON_ERROR_DEAD_LETTER, SL__ON_ERROR_FAIL };

struct sl__owned {
    void *ptr;          /* memory the stage's options point into */
    void (*fn)(void *); /* how to free it */
};

struct sl_stage {
    struct sl_pipeline *p;            /* owner */
    const struct sl_stage_type *type; /* callbacks and schema */
    char *name;                       /* unique in the pipeline */
    void *state;                      /* type->state_size bytes */
    const struct sl_config *cfg;      /* config node, or NULL (config/ holds a reference to
                                         its document in `owned`) */
    struct sl__owned *owned;          /* option memory to free (lists, expressions) */
    uint32_t nowned;                  /* entries in owned */
    struct sl__port *ports;           /* outputs; port 0 is the default */
    uint32_t nports;                  /* number of outputs */
    struct sl_queue **inputs;         /* input edges */
    uint32_t ninputs;                 /* number of input edges */
    uint32_t rr;                      /* round-robin position among inputs */
    uint32_t index;                   /* position in the pipeline */
    struct sl__stage_conf conf;       /* the runtime's options of the stage */
    int nworkers;                     /* threads for map/keep; 0: on the loop */
    struct sl_counter *counters;      /* the stage's own counters (counter.c), in order */
    bool workers_auto;                /* `workers: auto`: batches go to the workers only
                                         while one costs more than handing it over */
    int64_t batch_cost_ns;            /* map/keep time of a batch (moving average) */
    int dl_port;                      /* output "dead_letter" the runtime sends events to
                                         (filters, async transforms), or -1 */
    const struct sl_expr *keeps_only; /* filter: its condition (sl_stage_keeps_only) */
    int fields_mode;                  /* sl_stage_declare_fields: 0 (nothing declared),
                                         SL_FIELDS_ONLY or SL_FIELDS_ADD */
    char **fields;                    /* the declared names (owned, in `owned`) */
    size_t nfields;                   /* entries in fields */
    const struct sl_expr *down_cond;  /* the condition of the filter that alone consumes
                                         port 0 (sl_stage_downstream_condition) */
    bool done_told;                   /* on_stage_done was called */
    struct sl__workers *workers;      /* thread pool when nworkers > 0 (not in a chain's
                                         tail: its head's jobs run it) */
    struct sl_stage *chain_next;      /* operator chaining: the stage that alone consumes
                                         port 0 and runs in this stage's jobs, or NULL */
    struct sl_stage *chain_head;      /* the head whose jobs run this stage, or NULL */
    struct sl__async *async;          /* map_async stages: the calls being worked on */
    uint32_t submitted;               /* sl_stage_submit() tasks whose done has not run */
    struct sl__cont *cont;            /* a batch half processed by a paused slice */
    struct sl_tap *taps;              /* open taps (observe.c), NULL: none */
    atomic_int tap0;                  /* taps open on port 0: a `workers` chain then does
                                         not run the next stage over it in place */
    uint32_t slice_every;             /* events between two looks at the clock (adapted) */

    struct sl_stage *next_ready; /* ready list link */
    bool scheduled;              /* on the ready list */
    bool pending;                /* waiting for sl_stage_wake() */
    bool initialised;            /* init() succeeded: close() needed */
    bool started;                /* start() ran */
    bool input_ended;            /* all inputs closed and drained, flush(end) done */
    bool finished;               /* the stage has ended */
    bool flush_req;              /* transform: flush(end=false) owed after a wake */
    atomic_int wake_req;         /* sl_stage_wake() since the last run */
    atomic_int work_ready;       /* a worker finished a job */
    atomic_int err_set;          /* err holds a reason */

    uint32_t outstanding;           /* sink: batches written and not acked (a batch held
                                       for its retry counts until it is taken or failed) */
    struct sl_batch *retry_batch;   /* sink: the batch write() answered SL_RETRY for, the
                                       runtime's reference, offered again before any
                                       other; NULL: none (retry.c) */
    bool retry_armed;               /* sink: retry_timer runs; the sink is not run */
    uint32_t retry_failures;        /* sink: attempts of retry_batch that failed so far */
    struct sl_backoff backoff;      /* sink: delays between attempts (`retry` options) */
    struct sl_timer *retry_timer;   /* sink: offers retry_batch again; made on first use */
    char retry_why[512];            /* sink: sl_retry()'s reason for the last SL_RETRY */
    struct sl_batch *inflight_head; /* source: batches not yet acked, oldest first */
    struct sl_batch *inflight_tail; /* source: newest */
    uint64_t next_seq;              /* source: next batch number */

    struct sl_stage_stats st;     /* counters (dropped/errors via atomics below) */
    atomic_uint_fast64_t dropped; /* events dropped on purpose */
    atomic_uint_fast64_t errors;  /* events that failed */
    pthread_mutex_t err_lock;     /* guards err (workers may fail) */
    struct sl_error err;          /* why the stage failed */
};

/* A new stage `name` (borrowed, copied) of `type` (borrowed): zeroed state, the default
 * output port; not yet in the pipeline. NULL when memory is exhausted. */
struct sl_stage *sl__stage_new(struct sl_pipeline *p, const char *name,
                               const struct sl_stage_type *type);
/* Puts `s` (taken) in the pipeline, after its stages. Returns 0 or SL_ENOMEM. */
int sl__pipeline_insert(struct sl_pipeline *p, struct sl_stage *s);
/* Frees `ptr` with `fn` when the stage is freed (after close()); on SL_ENOMEM it is freed
 * now. For what the stage's options point into. */
int sl__stage_own(struct sl_stage *s, void *ptr, void (*fn)(void *));
void sl__stage_free(struct sl_stage *s);
/* Hands each filter's declared condition to the stage before it, where that stage's
 * default output goes to the filter alone and the filter has no other input (predicate
 * pushdown). Before any start(). */
void sl__link_conditions(struct sl_pipeline *p);
/* Work the stage has out (executor tasks, database requests): its input does not end
 * while any is (end_input); the last one to go reschedules it. Loop thread. */
void sl__stage_hold(struct sl_stage *s);
void sl__stage_unhold(struct sl_stage *s);
bool sl__stage_outputs_have_room(const struct sl_stage *s);

/* ---- timings (timing.c) ------------------------------------------------------------------ */

/* Counts a batch that took `ns` in stage `s` in its histogram (st.batch_count). Loop
 * thread. */
void sl__stage_time_batch(struct sl_stage *s, int64_t ns);
/* Sink `s` received `v`: the age of its newest event (of the first and the last) whose
 * time is known, into st.event_age_ns. Loop thread. */
void sl__sink_event_age(struct sl_stage *s, const struct sl_batch *v);

/* ---- transform output ---------------------------------------------------------------- */

struct sl_emit {
    struct sl_stage *stage;   /* the transform */
    struct sl_batch *in;      /* input batch (the stage's reference), NULL in flush() */
    uint32_t in_n;            /* events in `in` before processing */
    uint64_t in_bytes;        /* payload bytes in `in` before processing */
    struct sl_batch **out;    /* one output batch per port, created on first use */
    struct sl_event scratch;  /* the writable copy map() receives */
    struct sl_event fresh;    /* the event sl_emit_new() hands out */
    struct sl_batch **held;   /* batches adopted with sl_emit_hold (loop thread) */
    uint32_t nheld, held_cap; /* entries in held */
    struct sl_ack_set *acks;  /* holds moved in with sl_emit_ack_set (loop thread) */
    bool in_place;            /* nobody else holds `in`: it is the default output too,
                                 compacted as events are emitted (out[0] == in) */
    uint32_t r;               /* in place: the input event being mapped */
    uint32_t w;               /* in place: the next slot of `in` to write */
    uint64_t wbytes;          /* in place: payload bytes written */
    uint32_t next;            /* the first input event not processed yet (slices) */
    struct sl_batch *arena;   /* where map() values go: the batch its events live in */
    bool failed;              /* a dependency could not be recorded */
    uint32_t handoff_n;       /* chained: port 0's events and bytes as this stage left */
    uint64_t handoff_bytes;   /* them, before the next stage ran over the batch */
    bool handoff_intact;      /* chained: the next stage did not run over it in place */
};

/* Prepares `e` for stage `s` over `in` (NULL for flush), writing to `outs` (nports
 * slots). */
void sl__emit_init(struct sl_emit *e, struct sl_stage *s, struct sl_batch *in,
                   struct sl_batch **outs);
int sl__emit_arena(struct sl_emit *e); /* makes out[0] exist: the arena for new values */
/* Sends `ev` (a copy of it) to the stage's on_error, which is drop or dead_letter (with
 * `msg` in field "error"), counting it as an error. Returns 0 or SL_ENOMEM. */
int sl__emit_dead_letter(struct sl_emit *e, const struct sl_event *ev, const char *msg);
/* ---- slices of the loop thread (slice.c) ------------------------------------------------ */

/* A slice of the loop thread: map()/keep() over a batch stop when it is spent and go on
 * at the next turn, after libevent served fds, timers and signals, so that one slow
 * stage cannot hold the loop (signals, /health) for the length of a batch. */
struct sl__slice {
    int64_t deadline; /* ns: the slice ends */
    uint32_t *every;  /* look at the clock every this many events (the stage's, adapted) */
    int64_t last;     /* ns of the last look */
};

#define SL__PAUSED 1 /* sl__stage_process: the slice was spent; call again to go on */

/* The end of the next span of events from `i` (of `n`) to run before looking at the
 * clock: `every` events on (the stage's, adapted), all of them without a slice. */
static inline uint32_t sl__slice_span(const struct sl__slice *sl, uint32_t i, uint32_t n)
{
    return !sl || n - i <= *sl->every ? n : i + *sl->every;
}

/* Looks at the clock after a span; true when the slice is spent. Adapts `every` to the
 * stage's speed. NULL (workers: a whole batch) is never spent. */
bool sl__slice_check(struct sl__slice *sl);

/* Runs map()/keep() over `in` (NULL: goes on with the batch a slice paused) within the
 * round's time, then pushes the outputs. Returns false when it paused (the stage must
 * run again), true when the batch is through. Loop thread. */
bool sl__process_sliced(struct sl_stage *s, struct sl_batch *in);
bool sl__paused(const struct sl_stage *s); /* a batch is half processed */
void sl__slice_free(struct sl_stage *s);   /* releases a paused batch, unacknowledged */

/* Runs map()/keep() over `in` into e->out[] from event e->next; 0, SL__PAUSED (a
 * `slice`, NULL for whole batches, was spent) or the stage's error code. */
int sl__stage_process(struct sl_stage *s, struct sl_batch *in, struct sl_emit *e,
                      struct sl__slice *slice);
/* Links outputs to their inputs, pushes them downstream when `push` (else drops them)
 * and releases the input (loop thread). Returns 0 or SL_ENOMEM. */
int sl__emit_finish(struct sl_emit *e, bool push);
/* sl__emit_finish, except that with `handoff` the batch of port 0 is not pushed but
 * counted as the stage's output and handed to the caller (*handoff, the reference
 * included: the input of the next stage of a chain), or NULL when it was dropped. */
int sl__emit_finish_to(struct sl_emit *e, bool push, struct sl_batch **handoff);
/* Finishes a run that returned `rc`: pushes its outputs, or, when it failed, fails the
 * pipeline first, so that releasing the input acknowledges nothing. */
void sl__finish_or_fail(struct sl_stage *s, struct sl_emit *e, int rc);
/* The same, handing port 0 over as sl__emit_finish_to does. */
void sl__finish_or_fail_to(struct sl_stage *s, struct sl_emit *e, int rc,
                           struct sl_batch **handoff);

/* ---- sink retries (retry.c) ------------------------------------------------------------ */

/* write() answered SL_RETRY for `v` (the batch as the sink got it; the caller's reference
 * passes to the runtime): counts the failed attempt, then either arms the retry timer
 * (logging the sink's reason, the delay and the attempt) or, once `retry.attempts`
 * attempts have failed, fails the pipeline and releases `v` unacknowledged. Loop thread. */
void sl__retry_hold(struct sl_stage *s, struct sl_batch *v);
/* True while a held batch waits for its timer: the sink is not to be run. */
bool sl__retry_waiting(const struct sl_stage *s);
/* The held batch whose timer has fired (the reference passes to the caller, who offers
 * it to write() at once), or NULL. Counters are not touched: the batch was counted when
 * it was first taken from the queue. */
struct sl_batch *sl__retry_take(struct sl_stage *s);
/* write() took a batch: after failed attempts, logs that writing goes on and resets the
 * backoff. */
void sl__retry_succeeded(struct sl_stage *s);
/* Releases a held batch without acknowledging it (the pipeline is aborted or torn down)
 * and frees the timer. Before the sources' in-flight batches are recycled. */
void sl__retry_free(struct sl_stage *s);

/* ---- workers ------------------------------------------------------------------------- */

int sl__workers_start(struct sl_stage *s, struct sl_error *err);
/* Frees the stage's own counters (counter.c). */
void sl__counters_free(struct sl_stage *s);
/* The threads `workers: auto` gives a stage: the cores this process may run on, less
 * the loop's (0 on one core), at most 8. */
int sl__workers_auto(void);
/* Whether the stage's next batch runs on the loop rather than its workers: `workers:
 * auto`, and a batch is half processed there, or no job is out and batches cost less
 * than handing one over. */
bool sl__workers_inline(const struct sl_stage *s);
/* Adds a batch's map/keep time to the stage's moving average. Loop thread. */
void sl__workers_cost(struct sl_stage *s, int64_t ns);
void sl__workers_stop(struct sl_stage *s);
/* Operator chaining, before the workers start: links each stage that runs on workers to
 * the parallel, stateless stage that alone consumes its port 0 (and so on, up to
 * SL__CHAIN_MAX stages), so that a batch runs the whole chain in one job. */
void sl__workers_chain(struct sl_pipeline *p);
#define SL__CHAIN_MAX 8
/* Collects finished jobs, emits in order, dispatches new ones; true when idle. */
void sl__workers_run(struct sl_stage *s);
bool sl__workers_idle(const struct sl_stage *s);
/* Where sl_stage_error() keeps the reason of stage `s` while this thread runs one of its
 * jobs (the job's own, allocated at the first call; NULL when not in a job of `s`, or no
 * memory): the loop hands it to the stage when it finishes that job, in order. */
struct sl_error *sl__job_error(const struct sl_stage *s);
/* How many of the stage's jobs the loop thread ran itself (tests). */
uint64_t sl__workers_helped(const struct sl_stage *s);

/* ---- asynchronous transforms (async.c) -------------------------------------------------- */

int sl__async_start(struct sl_stage *s); /* 0 or SL_ENOMEM */
void sl__async_free(struct sl_stage *s); /* releases what is open, unacknowledged */
/* Collects finished calls, passes results on, starts new calls (loop thread). */
void sl__async_run(struct sl_stage *s);
bool sl__async_idle(const struct sl_stage *s); /* nothing is being worked on */

/* ---- the pipeline ---------------------------------------------------------------------- */

/* Something a pipeline owns for its stages and frees with them: a database pool. */
struct sl__resource {
    struct sl__resource *next; /* the next one made */
    char *key;                 /* what it is ("sqlite:/var/lib/x.db"), unique */
    void *ptr;                 /* the resource */
    void (*stop)(void *ptr);   /* before the executor stops and any stage closes: ends
                                  what waits (the done callbacks run); may be NULL */
    void (*free)(void *ptr);   /* after every stage closed */
};

/* The resource `key` of `p`, or NULL. */
void *sl__resource_find(struct sl_pipeline *p, const char *key);
/* Adds resource `key` (copied) -> `ptr`. Returns 0 or SL_ENOMEM (then `ptr` is not
 * taken). Loop thread. */
int sl__resource_add(struct sl_pipeline *p, const char *key, void *ptr, void (*stop)(void *),
                     void (*free_fn)(void *));
/* The first resource, for walks along ->next. */
struct sl__resource *sl__resources(struct sl_pipeline *p);

struct sl_pipeline {
    struct event_base *base;        /* the loop */
    bool own_base;                  /* free it with the pipeline */
    struct sl_pipeline_options opt; /* settings (data_dir copied) */
    struct sl_stage **stages;       /* all stages, in the order added */
    struct sl__index names;         /* stage name -> position in stages */
    uint32_t nstages, stages_cap;   /* used / allocated */
    struct sl_queue **queues;       /* all edges */
    uint32_t nqueues, queues_cap;   /* used / allocated */

    struct sl_stage *ready_head; /* stages to run, FIFO */
    struct sl_stage *ready_tail;
    struct event *run_ev;                /* activated when the ready list is non-empty */
    bool run_armed;                      /* run_ev is active */
    uint64_t rounds;                     /* on_run callbacks so far (tests check idling) */
    struct event *wake_ev;               /* eventfd watcher for cross-thread wakeups */
    int wake_fd;                         /* eventfd */
    atomic_int wake_signalled;           /* a write to wake_fd is pending */
    pthread_t loop_thread;               /* where the loop runs */
    struct event *sig_ev[2];             /* SIGINT, SIGTERM watchers */
    struct event *stop_ev;               /* shutdown_timeout after a graceful stop */
    int signals_seen;                    /* count of stop signals */
    void (*on_signal)(void *, int, int); /* CLI hook */
    void *on_signal_arg;

    atomic_int stop_req; /* sl_pipeline_stop() from another thread */
    bool started, running, looping, stopping, done, failed;
    struct sl_error err; /* first failure */

    struct sl__executor *executor;  /* sl_stage_submit threads, started on first use */
    atomic_int executor_done;       /* a task finished: run done callbacks */
    struct sl__batch_home batches;  /* pool, counters, memory; `aborted`: nothing more is
                                       acknowledged */
    int64_t start_ms;               /* when the run began */
    int64_t round_deadline;         /* ns: when the current round of stage runs yields */
    struct sl__resource *resources; /* database pools..., in the order made */
    bool dir_wanted;                /* a stage asked for data_dir: lock it to run */
    int dir_lock;                   /* fd holding the lock on data_dir, -1: none */
};

void sl__schedule(struct sl_stage *s);
void sl__sched_arm(struct sl_pipeline *p); /* runs the ready list at the loop's next turn */
void sl__sched_check_complete(struct sl_pipeline *p); /* ends the run when all is through */
void sl__source_batch_completed(struct sl_batch *b);  /* the batch home's hooks */
void sl__sink_acked(struct sl_stage *s, struct sl_batch *v);
void sl__pipeline_fail(struct sl_pipeline *p, struct sl_stage *s, int code);
void sl__push_port(struct sl_stage *s, int port, struct sl_batch *b); /* takes b's ref */
/* Copies the events of `b` leaving output `port` of `s` into the taps open there (observe.c);
 * call only when s->taps. Loop thread. */
void sl__tap_batch(struct sl_stage *s, int port, const struct sl_batch *b);
void sl__taps_free(struct sl_stage *s);             /* closes the taps left open */
void sl__wake_loop(struct sl_stage *s);             /* any thread: run s (work_ready) */
void sl__wake_pipeline(struct sl_pipeline *p);      /* any thread: poke the loop */
void sl__executor_run_done(struct sl_pipeline *p);  /* loop: run finished tasks' done */
void sl__executor_stop(struct sl_pipeline *p);      /* finish all tasks, join threads */
struct sl_batch *sl__pop_input(struct sl_stage *s); /* next input batch, round-robin */
/* Finds a cycle: fills `path` (room for nstages + 1) with the stages on it, the first
 * repeated at the end, and returns their number (0: no cycle, < 0: SL_ENOMEM). */
int sl__find_cycle(struct sl_pipeline *p, struct sl_stage **path);
int sl__sched_init(struct sl_pipeline *p);
void sl__log(struct sl_pipeline *p, const struct sl_stage *s, enum sl_log_level level,
             const char *fmt, ...) SL_PRINTF(4, 5);

#endif
