/* The runtime's private structures. Included only by pipeline/ files and by unit tests;
 * stages and connectors see the public headers alone. */
#ifndef SLUICE_PIPELINE_INTERNAL_H
#define SLUICE_PIPELINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/config.h>
#include <sluice/event.h>
#include <sluice/pipeline.h>
#include <sluice/stage.h>

struct event;

/* ---- arena: bump allocation in chunks, freed all at once ----------------------------- */

struct sl__chunk {
    struct sl__chunk *next; /* older chunk */
    size_t size;            /* usable bytes in data */
    size_t used;            /* bytes handed out */
    char data[];            /* the memory, 16-aligned by malloc */
};

struct sl__arena {
    struct sl__chunk *head;  /* chunk being filled; NULL before the first allocation */
    size_t total;            /* sum of chunk sizes, for pooling decisions */
    struct sl__memstat *mem; /* where chunk bytes are counted (the pipeline's), or NULL */
};

/* Bytes of batch memory (arena chunks, event arrays) in use, and the most ever. */
struct sl__memstat {
    atomic_int_fast64_t cur;  /* now */
    atomic_int_fast64_t peak; /* maximum of cur */
};

void *sl__arena_alloc(struct sl__arena *a, size_t size);
void sl__mem_count(struct sl__memstat *mem, int64_t delta); /* also raises the peak */
/* Keeps at most `keep` bytes of chunks for reuse, emptied; frees the rest. */
void sl__arena_reset(struct sl__arena *a, size_t keep);
void sl__arena_free(struct sl__arena *a);

/* ---- events and fields --------------------------------------------------------------- */

struct sl__field {
    const char *name;  /* not NUL-terminated */
    uint32_t name_len; /* bytes of name */
    struct sl_value v; /* the value; spans live in a batch arena or the payload */
};

/* The sync state of an event's fields with its payload (see sl_event_fields_changed()):
 * in sync when PARSED is set and CHANGED is not. */
enum {
    SL__EV_FIELDS_CHANGED = 1u << 0, /* a field was set, removed or renamed since the parse */
    SL__EV_PAYLOAD_PARSED = 1u << 1, /* the fields hold the payload's content (a parser or a
                                        serializer said so); unset: a raw record */
};

struct sl_event {
    const char *payload;          /* record bytes */
    const char *key;              /* optional key, NULL when none */
    const char *origin;           /* file path / topic, NULL when none */
    const char *host;             /* host the event was read on, NULL when unknown */
    struct sl__field *fields;     /* field index, nfields used of fields_cap */
    struct sl_batch *batch;       /* batch whose arena this event allocates from */
    struct sl_batch *fields_home; /* batch whose arena holds `fields`; copy on write if
                                     it is not `batch` */
    int64_t time;                 /* ns since the epoch, 0 = unknown */
    uint64_t offset;              /* source offset */
    uint32_t payload_len;         /* bytes of payload */
    uint32_t key_len;             /* bytes of key */
    int32_t partition;            /* Kafka partition, -1 = none */
    uint16_t nfields;             /* fields in use */
    uint16_t fields_cap;          /* fields allocated */
    uint32_t flags;               /* SL__EV_* */
};

/* ---- batches ------------------------------------------------------------------------- */

#define SL__INLINE_PARENTS 2

struct sl_batch {
    struct sl_pipeline *p;                        /* owner: pool, counters, ack delivery */
    struct sl_event *events;                      /* n used of cap (malloc'd; aliased by views) */
    uint32_t n, cap;                              /* events in use / allocated */
    uint64_t bytes;                               /* sum of payload_len */
    struct sl__arena arena;                       /* memory for payloads and fields */
    int refs;                                     /* references; loop thread only */
    uint32_t nparents;                            /* batches this one depends on */
    uint32_t parents_cap;                         /* allocated slots in more_parents */
    struct sl_batch *parents[SL__INLINE_PARENTS]; /* first parents */
    struct sl_batch **more_parents;               /* the rest */
    struct sl_stage *source;  /* the source that produced it; NULL for derived batches */
    struct sl_stage *sink;    /* the sink holding it, for sl_ack() */
    struct sl_batch *view_of; /* a view aliases this batch's events (sinks) */
    struct sl_batch *next;    /* source in-flight list, or the pool */
    uint64_t seq;             /* source batches: production order */
    uint64_t cookie;          /* source-private */
    bool completed;           /* source batch: delivered, awaiting in-order ack */
    bool released;            /* source batch: no references left, memory freed, but
                                 `holds` keep its acknowledgement back */
    uint32_t holds;           /* source batch: deferred acks (ack sets, batches' acks) */
    uint32_t nacks, acks_cap; /* entries in acks / allocated */
    struct sl_batch **acks;   /* source batches whose acks this batch holds back */
};

struct sl_batch *sl__batch_get(struct sl_pipeline *p); /* from the pool; any thread */
int sl__batch_add_parent(struct sl_batch *b, struct sl_batch *parent); /* refs parent */
void sl__batch_release(struct sl_batch *b); /* drop one ref (loop thread) */
void sl__ack_drop(struct sl_batch *src);    /* one deferred ack of a source batch goes */
int sl__ack_set_copy_to(const struct sl_ack_set *set, struct sl_batch *out);
int sl__ack_set_move(struct sl_ack_set *to, struct sl_ack_set *from); /* from ends empty */
void sl__ack_set_clear(struct sl_ack_set *set); /* drops every hold of the set */
size_t sl__ack_set_count(const struct sl_ack_set *set);
int sl__batch_hold_ack(struct sl_batch *b, struct sl_batch *src); /* b holds src's ack */
struct sl_batch *sl__batch_view(struct sl_batch *b, struct sl_stage *sink);
int sl__batch_reserve(struct sl_batch *b, uint32_t n);
void sl__batch_pool_free(struct sl_pipeline *p);
void sl__event_init(struct sl_event *ev, struct sl_batch *b);

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

struct sl__workers; /* pipeline/workers.c */

struct sl__owned {
    void *ptr;          /* memory the stage's options point into */
    void (*fn)(void *); /* how to free it */
};

struct sl_stage {
    struct sl_pipeline *p;            /* owner */
    const struct sl_stage_type *type; /* callbacks and schema */
    char *name;                       /* unique in the pipeline */
    void *state;                      /* type->state_size bytes */
    const struct sl_config *cfg;      /* config node (a document reference), or NULL */
    struct sl__owned *owned;          /* option memory to free (lists, expressions) */
    uint32_t nowned;                  /* entries in owned */
    struct sl__port *ports;           /* outputs; port 0 is the default */
    uint32_t nports;                  /* number of outputs */
    struct sl_queue **inputs;         /* input edges */
    uint32_t ninputs;                 /* number of input edges */
    uint32_t rr;                      /* round-robin position among inputs */
    uint32_t index;                   /* position in the pipeline */
    int nworkers;                     /* 0: map/keep on the loop */
    uint32_t buf_batches;             /* `buffer.max_batches` of input edges, 0: default */
    uint64_t buf_bytes;               /* `buffer.max_bytes` of input edges, 0: default */
    bool done_told;                   /* on_stage_done was called */
    struct sl__workers *workers;      /* thread pool when nworkers > 0 */

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

    uint32_t outstanding;           /* sink: batches written and not acked */
    struct sl_batch *inflight_head; /* source: batches not yet acked, oldest first */
    struct sl_batch *inflight_tail; /* source: newest */
    uint64_t next_seq;              /* source: next batch number */

    struct sl_stage_stats st;     /* counters (dropped/errors via atomics below) */
    atomic_uint_fast64_t dropped; /* events dropped on purpose */
    atomic_uint_fast64_t errors;  /* events that failed */
    pthread_mutex_t err_lock;     /* guards err (workers may fail) */
    struct sl_error err;          /* why the stage failed */
};

void sl__stage_free(struct sl_stage *s);
bool sl__stage_outputs_have_room(const struct sl_stage *s);

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
    bool failed;              /* a dependency could not be recorded */
};

/* Prepares `e` for stage `s` over `in` (NULL for flush), writing to `outs` (nports
 * slots). */
void sl__emit_init(struct sl_emit *e, struct sl_stage *s, struct sl_batch *in,
                   struct sl_batch **outs);
int sl__emit_arena(struct sl_emit *e); /* makes out[0] exist: the arena for new values */
/* Runs map()/keep() over `in` into e->out[]; 0 or the stage's error code. */
int sl__stage_process(struct sl_stage *s, struct sl_batch *in, struct sl_emit *e);
/* Links outputs to their inputs, pushes them downstream when `push` (else drops them)
 * and releases the input (loop thread). Returns 0 or SL_ENOMEM. */
int sl__emit_finish(struct sl_emit *e, bool push);
/* Finishes a run that returned `rc`: pushes its outputs, or, when it failed, fails the
 * pipeline first, so that releasing the input acknowledges nothing. */
void sl__finish_or_fail(struct sl_stage *s, struct sl_emit *e, int rc);

/* ---- workers ------------------------------------------------------------------------- */

int sl__workers_start(struct sl_stage *s, struct sl_error *err);
void sl__workers_stop(struct sl_stage *s);
/* Collects finished jobs, emits in order, dispatches new ones; true when idle. */
void sl__workers_run(struct sl_stage *s);
bool sl__workers_idle(const struct sl_stage *s);

/* ---- the pipeline ---------------------------------------------------------------------- */

struct sl_pipeline {
    struct event_base *base;        /* the loop */
    bool own_base;                  /* free it with the pipeline */
    struct sl_pipeline_options opt; /* settings (data_dir copied) */
    struct sl_stage **stages;       /* all stages, in the order added */
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
    int signals_seen;                    /* count of stop signals */
    void (*on_signal)(void *, int, int); /* CLI hook */
    void *on_signal_arg;

    atomic_int stop_req; /* sl_pipeline_stop() from another thread */
    bool started, running, looping, stopping, done, failed, aborted;
    struct sl_error err; /* first failure */

    struct sl__executor *executor;  /* sl_stage_submit threads, started on first use */
    atomic_int executor_done;       /* a task finished: run done callbacks */
    pthread_mutex_t pool_lock;      /* guards the batch pool (workers take batches) */
    struct sl_batch *pool;          /* free batches */
    uint32_t pool_count;            /* batches in pool */
    atomic_uint_fast64_t live;      /* batches alive (not in the pool) */
    atomic_uint_fast64_t peak_live; /* maximum of live */
    struct sl__memstat mem;         /* bytes of batch memory (arenas, event arrays) */
    int64_t start_ms;               /* when the run began */
};

void sl__schedule(struct sl_stage *s);
void sl__pipeline_fail(struct sl_pipeline *p, struct sl_stage *s, int code);
void sl__push_port(struct sl_stage *s, int port, struct sl_batch *b); /* takes b's ref */
void sl__source_batch_completed(struct sl_batch *b);
void sl__sink_acked(struct sl_stage *s, struct sl_batch *view);
void sl__wake_loop(struct sl_stage *s);             /* any thread: run s (work_ready) */
void sl__wake_pipeline(struct sl_pipeline *p);      /* any thread: poke the loop */
void sl__executor_run_done(struct sl_pipeline *p);  /* loop: run finished tasks' done */
void sl__executor_stop(struct sl_pipeline *p);      /* finish all tasks, join threads */
struct sl_batch *sl__pop_input(struct sl_stage *s); /* next input batch, round-robin */
int sl__sched_init(struct sl_pipeline *p);
void sl__batch_free_inflight(struct sl_stage *s); /* frees a source's unacked batches */
void sl__log(struct sl_pipeline *p, const struct sl_stage *s, enum sl_log_level level,
             const char *fmt, ...) SL_PRINTF(4, 5);
int64_t sl__now_ns(void);

/* ---- problem reports ------------------------------------------------------------------- */

/* Where the problems of a load or a stage's options go: every one is told to `fn`, the
 * first error is kept. */
struct sl__report {
    sl_report_fn *fn;       /* told of each problem; NULL: only counted */
    void *arg;              /* passed to fn */
    unsigned errors;        /* errors told */
    unsigned warnings;      /* warnings told */
    struct sl_error *first; /* receives the first error when not NULL */
};

/* Tells `e` (borrowed) to `r`. Returns e->code (SL_ECONFIG when e->code is 0), or 0
 * for a warning. */
int sl__report(struct sl__report *r, enum sl_log_level level, const struct sl_error *e);

/* Builds an error of `code` for `stage` (borrowed, may be NULL) at `node` (may be NULL),
 * tells it to `r` at `level`, and returns the code (0 for a warning). */
int sl__report_at(struct sl__report *r, enum sl_log_level level, int code, const char *stage,
                  const struct sl_config *node, const char *fmt, ...) SL_PRINTF(6, 7);

/* ---- options ------------------------------------------------------------------------- */

/* Fills s->state from s->cfg by the type's schema, telling every problem to `r`.
 * Returns 0 or the first error's code. */
int sl__options_fill(struct sl_stage *s, struct sl__report *r);

/* Adds a stage as sl_pipeline_add does, telling each problem to `r`. */
struct sl_stage *sl__pipeline_add(struct sl_pipeline *p, const char *name,
                                  const struct sl_stage_type *type, const struct sl_config *cfg,
                                  struct sl__report *r);

/* Finds a cycle: fills `path` (room for nstages + 1) with the stages on it, the first
 * repeated at the end, and returns their number (0: no cycle, < 0: SL_ENOMEM). */
int sl__find_cycle(struct sl_pipeline *p, struct sl_stage **path);
/* True for the runtime's own per-stage keys (type, inputs, workers, buffer). */
bool sl__is_runtime_key(const char *key);

/* ---- small helpers ------------------------------------------------------------------- */

/* Levenshtein distance, capped at `max` + 1. */
unsigned sl__edit_distance(const char *a, const char *b, unsigned max);
/* The candidate closest to `name` (within a third of its length), or NULL. */
const char *sl__nearest(const char *name, const char *const *candidates, size_t n);
char *sl__strdup(const char *s);

/* sl_json_get, without validating the rest of the text once the value is found when
 * `validate` is false: for values a parser produced (memory-safe on any text). */
int sl__json_get(const char *json, size_t len, const char *path, size_t path_len,
                 struct sl_value *out, bool validate);

/* The value of 4 hex digits at `s` (`left` bytes readable), or -1. */
long sl__hex4(const char *s, size_t left);
/* Writes code point `cp` as UTF-8 into `o` (room for 4); returns the bytes. */
size_t sl__utf8_put(char *o, unsigned long cp);
/* Decodes the \uXXXX escape whose 'u' is at s[*i] (with its low surrogate when one
 * follows) into `o` (room for 4), advancing *i past it; a lone surrogate gives U+FFFD.
 * Returns the bytes written, or 0 when the hex digits are invalid (*i unchanged). */
size_t sl__unescape_u(const char *s, size_t len, size_t *i, char *o);

#endif
