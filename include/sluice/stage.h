/* sluice: writing a stage.
 *
 * A stage type is a table (struct sl_stage_type) of callbacks the runtime drives. A
 * source is an async generator: poll() answers SL_READY with a batch, SL_PENDING after
 * arranging to call sl_stage_wake() when it can go on, or SL_DONE at its end. A
 * transform maps each event to zero or more events; a filter keeps or drops each event;
 * a sink takes batches with write() and acknowledges each with sl_ack() once durable.
 *
 * An asynchronous transform (map_async instead of map) starts work for each event and
 * finishes it later, from any thread, with sl_async_done(): a lookup in a database, a
 * call to a service.
 *
 * The runtime never calls a stage from two threads at once, except map()/keep() of a
 * type flagged SL_STAGE_PARALLEL when the config asks for `workers: N`.
 *
 * Besides a type's own options, the runtime reads a few keys of every stage's config
 * itself (sl_stage_runtime_options): `buffer` (input queues), `workers` (parallel types),
 * `retry` (sinks), `max_in_flight` and `ordered` (asynchronous transforms), `on_error`
 * (filters and asynchronous transforms). */
#ifndef SLUICE_STAGE_H
#define SLUICE_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/error.h>
#include <sluice/event.h>

struct event_base; /* libevent */
struct sl_config;  /* config node (config.h) */
struct sl_emit;    /* opaque: where a transform's output goes */
struct sl_async;   /* opaque: one event's work in flight (map_async) */
struct sl_expr;    /* compiled expression (expr.h) */

/* The version of struct sl_stage_type (and struct sl_option) this header describes. */
#define SL_STAGE_ABI 2

enum sl_kind {
    SL_SOURCE = 0, /* produces batches: poll() */
    SL_TRANSFORM,  /* event -> 0..n events: map() */
    SL_FILTER,     /* keeps or drops events: keep() */
    SL_SINK,       /* consumes batches: write(), acknowledges with sl_ack() */
};

/* What poll() and write() answer. */
enum sl_poll {
    SL_READY = 0,   /* poll: *out holds a batch (or NULL: nothing now, poll again);
                       write: the batch was taken, send the next one */
    SL_PENDING = 1, /* the stage will call sl_stage_wake() when it can go on; write: the
                       batch was taken, but send no more until then */
    SL_DONE = 2,    /* poll: the source has ended (end of stream); write: not used */
    SL_RETRY = 3,   /* write: the batch was not taken, for a reason that may pass (a full
                       disk, a broker down, a locked database; say which with sl_retry()).
                       The runtime offers the same batch again after a backoff from the
                       stage's `retry` options, before any other, while its queue fills
                       and the sources wait. The sink may keep how far it got. */
    SL_ERROR = -1,  /* the stage failed; it has said why with sl_stage_error(); write:
                       the batch goes back to the runtime, unacknowledged */
};

/* ---- option schemas -------------------------------------------------------------- */

/* Option types, and the C type each one fills in the stage state at `offset`. */
enum sl_opt_type {
    SL_OPT_STRING = 1, /* const char * (valid for the stage's lifetime; NULL if unset) */
    SL_OPT_INT,        /* int64_t */
    SL_OPT_FLOAT,      /* double */
    SL_OPT_BOOL,       /* bool ("true"/"false") */
    SL_OPT_DURATION,   /* int64_t milliseconds ("250ms", "5s", "1h", "1d"; bare number: s) */
    SL_OPT_SIZE,       /* uint64_t bytes ("512", "64KiB", "10MB", "1GiB") */
    SL_OPT_ENUM,       /* int: index of the value in `choices` */
    SL_OPT_LIST,       /* struct sl_list: a scalar or a list of scalars */
    SL_OPT_MAP,        /* const struct sl_config *: a mapping, for the stage to read */
    SL_OPT_EXPR,       /* struct sl_expr *: compiled expression (owned by the runtime) */
    SL_OPT_ANY,        /* const struct sl_config *: any node */
    SL_OPT_TEMPLATE,   /* struct sl_template *: compiled template, `{{ expr }}` holes
                          (owned by the runtime; NULL if unset) */
};

/* Option flags. */
enum {
    SL_REQUIRED = 1u << 0, /* a config without this option is an error */
};

/* One declared option. A type's options end with an all-zero entry. The registry checks
 * the table when the type is added (sl_registry_add): types, docs, defaults and ranges
 * that parse, unique names, and every value inside `state_size`. */
struct sl_option {
    const char *name;      /* the key in the config; a dotted name ("retry.max") is also
                              spelled as a nested mapping (retry: {max: 5s}) */
    enum sl_opt_type type; /* how the value is checked and stored */
    const char *def;       /* default as a config would spell it; NULL: none */
    unsigned flags;        /* SL_REQUIRED */
    size_t offset;         /* offsetof(state struct, field) receiving the value */
    const char *doc;       /* one line for `sluice describe`; never empty */
    const char *choices;   /* SL_OPT_ENUM: allowed values separated by '|'; SL_OPT_INT:
                              words that may stand for a number, separated by '|', the
                              i-th (from 0) read as -(i + 1) ("auto": -1) */
    const char *range;     /* INT, FLOAT, DURATION, SIZE: "min..max" spelled like the
                              values ("1..65536", "1ms..1h"); a side may be empty
                              ("1.." : at least 1); NULL: any value */
};

/* A list of strings (SL_OPT_LIST), valid for the stage's lifetime. */
struct sl_list {
    size_t n;                 /* number of items */
    const char *const *items; /* the items, NUL-terminated */
};

/* ---- the stage type -------------------------------------------------------------- */

/* Type flags. */
enum {
    SL_STAGE_PARALLEL = 1u << 0, /* map()/keep() are thread-safe: `workers: N` allowed */
};

/* A stage type. Fill it with designated initialisers; unused callbacks stay NULL. */
struct sl_stage_type {
    int abi;                         /* SL_STAGE_ABI */
    const char *name;                /* the `type:` in a config, e.g. "parse_json" */
    enum sl_kind kind;               /* which of poll/map/keep/write it implements */
    const char *doc;                 /* one line for `sluice list` */
    unsigned flags;                  /* SL_STAGE_* */
    size_t state_size;               /* bytes of zeroed state the runtime allocates */
    const struct sl_option *options; /* schema; values are written into the state */

    /* Checks the config and prepares the state; the schema's options are already in the
     * state. No side effects outside the process (no files opened, no connections): a
     * `sluice validate` runs it too. Returns 0 or an SL_E* code with `err` filled. */
    int (*init)(struct sl_stage *stage, const struct sl_config *cfg, struct sl_error *err);

    /* Optional: acquires resources (opens files, connects) when the run starts. */
    int (*start)(struct sl_stage *stage, struct sl_error *err);

    /* Source: produces the next batch into *out (owned, from sl_batch_new). */
    enum sl_poll (*poll)(struct sl_stage *stage, struct sl_batch **out);

    /* Transform: called once per input event. `ev` is the stage's own writable copy;
     * pass it on with sl_emit(out, ev), emit others, or emit nothing to drop it.
     * Returns 0, or an SL_E* code (after sl_stage_error) to fail the pipeline. */
    int (*map)(struct sl_stage *stage, struct sl_event *ev, struct sl_emit *out);

    /* Asynchronous transform, instead of map(): starts the work for one event and
     * returns 0; `ev` (the stage's own writable copy) and `call` stay valid until the
     * stage finishes the call with sl_async_done() (exactly once, from any thread). The
     * runtime starts at most `max_in_flight` calls at once (reaching it holds the
     * inputs back), passes results on in input order (`ordered: true`) or as they
     * finish, and ends the stage's input only when every call has finished. Returns 0,
     * or an SL_E* code (after sl_stage_error) to fail the pipeline. Loop thread. */
    int (*map_async)(struct sl_stage *stage, struct sl_event *ev, struct sl_async *call);

    /* Filter: 1 keeps the event, 0 drops it. An event that cannot be evaluated (a
     * limit was reached) answers an SL_E* code with the reason in `why` (borrowed;
     * fill it with sl_error_set): the event then goes to the stage's `on_error`
     * (drop, dead_letter or fail), counted as an error. */
    int (*keep)(struct sl_stage *stage, const struct sl_event *ev, struct sl_error *why);

    /* Sink: takes one reference to `b`; the sink releases it with sl_ack() once the
     * events are durable (possibly later, from the loop thread). Answering SL_RETRY or
     * SL_ERROR, it takes nothing: the runtime keeps the reference. */
    enum sl_poll (*write)(struct sl_stage *stage, struct sl_batch *b);

    /* Source: every event of `b` (one of its own batches) has been delivered by every
     * sink that got it (or dropped on purpose). Called in the order the source produced
     * its batches: the place for checkpoints and offset commits. `b` is borrowed; its
     * cookie (sl_batch_cookie) and count (sl_batch_count) are valid, its events may not
     * be (a stage that deferred the acknowledgement with an ack set let the batch's
     * memory go): keep what a checkpoint needs in the cookie. */
    void (*ack)(struct sl_stage *stage, struct sl_batch *b);

    /* Transform/filter: emit what the stage holds (multiline, aggregate windows). Called
     * after sl_stage_wake() (e.g. from a timer) with `end` false, and once at the end of
     * the input with `end` true. Sink: `out` is NULL; called once at the end of the
     * input: write out buffers and ack everything. Source: `out` is NULL, `end` true;
     * called once when the source has ended (it answered SL_DONE, or the pipeline
     * stops): the place to start a last checkpoint save (its acks may still be coming).
     * For every kind, the run does not end while work the stage submitted (executor
     * tasks, database requests) is out. Returns 0 or an SL_E* code. */
    int (*flush)(struct sl_stage *stage, struct sl_emit *out, bool end);

    /* Releases everything the stage holds. Called once, also after a failed init. */
    void (*close)(struct sl_stage *stage);
};

/* ---- what a stage can ask of the runtime ------------------------------------------ */

/* The stage's state (state_size zeroed bytes, options filled in). Valid until close()
 * returns. Any thread. */
SL_API void *sl_stage_state(struct sl_stage *stage);

/* The stage's name in the pipeline (borrowed; valid for the stage's lifetime). */
SL_API const char *sl_stage_name(const struct sl_stage *stage);

/* The event loop the stage runs on (borrowed), for fds and timers of its own. */
SL_API struct event_base *sl_stage_event_base(struct sl_stage *stage);

/* ---- counters of a stage's own, in /metrics ------------------------------------------
 *
 * Beside the runtime's counters (events in and out, errors, dropped...), a stage may count
 * what only it knows (a Kafka client's broker errors, commits, rebalances). Each counter
 * is shown by `--metrics-addr` as `sluice_stage_<name>_total{stage="..."}`. */

struct sl_counter;

/* The stage's counter `name` (lower-case letters, digits and '_', at most 64 bytes;
 * copied), made at the first call with `help` (one line, copied), the same counter at
 * later calls. Returns it (valid for the stage's lifetime), or NULL for a bad name or
 * out of memory. Loop thread, from init() on. */
SL_API struct sl_counter *sl_stage_counter(struct sl_stage *stage, const char *name,
                                           const char *help);

/* Adds `n` to `c` (NULL: nothing). Any thread. */
SL_API void sl_counter_add(struct sl_counter *c, uint64_t n);

/* Calls `fn(arg, name, help, value)` for each counter of `stage`, in the order they were
 * made; the strings are valid during the call. Any thread. */
SL_API void sl_stage_counters(const struct sl_stage *stage,
                              void (*fn)(void *arg, const char *name, const char *help,
                                         uint64_t value),
                              void *arg);

/* ---- what the stages of a pipeline share ---------------------------------------------
 *
 * One object per pipeline that several stages use (a client, a cluster, a pool): the
 * first stage that needs it makes it and shares it under a key; the others find it. The
 * pipeline frees it after every stage closed. Loop thread, from init() on. */

/* The object shared under `key` (borrowed) in `stage`'s pipeline, or NULL. */
SL_API void *sl_stage_shared(struct sl_stage *stage, const char *key);

/* Shares `ptr` under `key` (copied; say what it is: "kafka-mock:3"). `stop(ptr)` (may be
 * NULL) runs when the pipeline is freed, before its executor stops and any stage closes
 * (it ends what waits); `free_fn(ptr)` after every stage closed. Returns 0, SL_EEXIST
 * when `key` is taken, or SL_ENOMEM (then `ptr` is not taken). */
SL_API int sl_stage_share(struct sl_stage *stage, const char *key, void *ptr,
                          void (*stop)(void *ptr), void (*free_fn)(void *ptr));

/* How long a source may hold a partial batch before it returns it (the pipeline's
 * `batch.timeout`, milliseconds): a source that accumulates (Kafka messages arriving
 * one by one) returns what it has when this has passed since the batch's first event.
 * Sources that return what a read gave them hold nothing and need not ask. */
SL_API int64_t sl_stage_batch_timeout_ms(const struct sl_stage *stage);

/* How many events a batch holds at most before sl_batch_full() says so (the pipeline's
 * `batch.max_events`): a source that asks a database for a page of rows sizes the page
 * with it. Any thread. */
SL_API int64_t sl_stage_batch_max_events(const struct sl_stage *stage);

/* The pipeline's directory for state files (checkpoints); never NULL. */
SL_API const char *sl_stage_data_dir(const struct sl_stage *stage);

/* Asks the runtime to run the stage again: poll a PENDING source, resume a PENDING sink,
 * call a transform's flush(). Any thread; cheap; several calls before the stage runs
 * count once. Never calls back synchronously. */
SL_API void sl_stage_wake(struct sl_stage *stage);

/* How many threads may run this stage's map()/keep() at once: 1, or N + 1 for a
 * `workers: N` stage (its N workers, and the loop thread for flush()). Known from init()
 * on, so a stage can size per-thread scratch state (a regex match block, a buffer) in
 * init() or start(). Any thread. */
SL_API int sl_stage_threads(const struct sl_stage *stage);

/* Which of those threads is calling, from 0 to sl_stage_threads() - 1: 1..N on the
 * stage's own workers, 0 on any other thread (the loop thread). A parallel stage indexes
 * its per-thread scratch state with it, without a lock: two threads running the stage at
 * once always get different numbers. Any thread; cheap (a thread-local read). */
SL_API int sl_stage_thread(const struct sl_stage *stage);

/* The options the runtime reads from a stage's config beside its type's own, for a stage
 * of `type` (borrowed): fills `out` with the tables that apply (each ends with an
 * all-zero entry) and returns how many (at most SL_RUNTIME_OPTION_TABLES). The values
 * are the runtime's; a type's own options may not reuse these names. For documentation
 * (`sluice describe`). Any thread. */
#define SL_RUNTIME_OPTION_TABLES 4
SL_API size_t sl_stage_runtime_options(const struct sl_stage_type *type,
                                       const struct sl_option *out[SL_RUNTIME_OPTION_TABLES]);

/* Records why the stage fails (the pipeline stops with this message, naming the stage),
 * then return SL_ERROR / the code from the callback. A stage that fails outside its
 * callbacks (a timer, a completion) calls this and then sl_stage_wake(): the runtime
 * fails the pipeline on its next run. Only the first reason is kept: on workers, the
 * first in the order of the batches (a later batch that fails first on another worker
 * does not give its reason to an earlier one's failure). Returns `code`. Any thread. */
SL_API int sl_stage_error(struct sl_stage *stage, int code, const char *fmt, ...) SL_PRINTF(3, 4);

/* Declares a named output port besides the default one (port 0), e.g. "dead_letter" or
 * a route's outputs; downstream stages take `inputs: [stage.name]`. Call from init().
 * Returns the port number (>= 1), or SL_EEXIST / SL_ENOMEM. */
SL_API int sl_stage_add_output(struct sl_stage *stage, const char *name);

/* The port number of output `name` (0 for "" or NULL), or SL_ENOTFOUND. */
SL_API int sl_stage_output(const struct sl_stage *stage, const char *name);

/* True when something downstream consumes output `port`. */
SL_API bool sl_stage_output_connected(const struct sl_stage *stage, int port);

/* Counts `n` events that the stage dropped on purpose (errors with on_error: drop,
 * oversize lines, throttling) or that failed (errors). Any thread. */
SL_API void sl_stage_count_dropped(struct sl_stage *stage, uint64_t n);
SL_API void sl_stage_count_errors(struct sl_stage *stage, uint64_t n);

/* ---- predicate pushdown ------------------------------------------------------------
 *
 * A filter declares the condition it keeps events by; when it is the only consumer of
 * the default output of the stage before it, and that stage its only input, the runtime
 * hands the condition to that stage, which may prune (sl_event_pruned in event.h) the
 * events it proves the condition false on: parse_json drops lines that lack the bytes the
 * condition implies (expr.h, sl_expr_prefilter_new) without indexing them. Every count
 * (events in, out and dropped of both stages) stays what it would be without it. */

/* Filter, from init(): events are kept only when `cond` (borrowed; it must live as long
 * as the stage) holds, with sl_expr_check()'s meaning: a pruned event is dropped as if
 * keep() had answered 0. Loop thread. */
SL_API void sl_stage_keeps_only(struct sl_stage *stage, const struct sl_expr *cond);

/* What fields the events a stage emits (on its default output) have, for `validate` to
 * warn about a template or expression downstream that names a field no stage before it
 * sets (a typo: `{{ status_clas }}`). SL_FIELDS_ONLY: exactly `names` (a source of raw
 * lines declares none; aggregate its group, window and metric names); SL_FIELDS_ADD: the
 * fields of its input plus `names` (a parser: its captures; a stage that passes events
 * on unchanged: none). A stage that declares nothing may set any field, and nothing
 * after it is checked. Names are copied. Call from init(). Returns 0 or SL_ENOMEM. */
enum sl_fields_mode { SL_FIELDS_ONLY = 1, SL_FIELDS_ADD = 2 };
SL_API int sl_stage_declare_fields(struct sl_stage *stage, enum sl_fields_mode mode,
                                   const char *const *names, size_t n);

/* The condition of the filter that is the only consumer of `stage`'s default output
 * when `stage` is that filter's only input, or NULL. Set by sl_pipeline_start() before
 * any start() runs (start() may read it and keep what it derives). Any thread. */
SL_API const struct sl_expr *sl_stage_downstream_condition(const struct sl_stage *stage);

/* Sources with a known total (files): bytes read so far of `total`, for progress. */
SL_API void sl_stage_set_progress(struct sl_stage *stage, uint64_t done, uint64_t total);

enum sl_log_level { SL_LOG_ERROR = 0, SL_LOG_WARN, SL_LOG_INFO, SL_LOG_DEBUG };

/* Logs a line through the pipeline's log callback (nothing is printed by default).
 * Loop thread only. */
SL_API void sl_stage_log(struct sl_stage *stage, enum sl_log_level level, const char *fmt, ...)
    SL_PRINTF(3, 4);

/* ---- transform output ------------------------------------------------------------- */

/* Emits a copy of `ev` on the default output. `ev` may be the event map() received or
 * one from sl_emit_new(). Returns 0 or SL_ENOMEM. */
SL_API int sl_emit(struct sl_emit *out, const struct sl_event *ev);

/* Emits a copy of `ev` on output `port` (from sl_stage_add_output). */
SL_API int sl_emit_to(struct sl_emit *out, int port, const struct sl_event *ev);

/* A new empty event, written in the output's own arena: fill it, then sl_emit() it.
 * Valid until the next sl_emit_new() on `out`. NULL when memory is exhausted. */
SL_API struct sl_event *sl_emit_new(struct sl_emit *out);

/* Makes the output depend on batch `b` (borrowed; a reference is taken): `b` is
 * acknowledged upstream only once the output is. For stages that emit events built
 * from earlier batches (multiline, aggregate) and released them with sl_batch_unref()
 * only after adopting. Loop thread only. */
SL_API void sl_emit_hold(struct sl_emit *out, struct sl_batch *b);

/* ---- deferred acknowledgements --------------------------------------------------- */

struct sl_ack_set; /* opaque: acknowledgements a stage holds back */

/* An empty ack set. A stage that consumes events now and answers for them later (an
 * aggregate window) adds each input batch to a set: the source batches those events
 * came from are then not acknowledged to their source while the set holds them, but
 * their memory is freed as soon as nothing reads it (unlike sl_emit_hold, which keeps
 * the batch). Returns an owned set (free: sl_ack_set_free), NULL when out of memory.
 * Loop thread only, like everything about ack sets. */
SL_API struct sl_ack_set *sl_ack_set_new(void);

/* Holds back the acknowledgement of every source batch `b` (borrowed) derives from.
 * Cheap when called for every event: the events of one batch count once. Returns 0 or
 * SL_ENOMEM. */
SL_API int sl_ack_set_add(struct sl_ack_set *set, struct sl_batch *b);

/* Moves what `set` holds to the batches this emit produces (they keep the acks back
 * until they are acknowledged downstream); `set` (borrowed: the caller still frees it)
 * is left empty, ready for reuse. When the emit produces nothing, the acks go ahead.
 * Returns 0 or SL_ENOMEM. */
SL_API int sl_emit_ack_set(struct sl_emit *out, struct sl_ack_set *set);

/* Frees the set; what it still holds is acknowledged (consumed on purpose). NULL is a
 * no-op. */
SL_API void sl_ack_set_free(struct sl_ack_set *set);

/* The batch map() is reading from (borrowed; valid during the map() call). */
SL_API struct sl_batch *sl_emit_input(struct sl_emit *out);

/* ---- asynchronous transforms ------------------------------------------------------ */

/* How an asynchronous call ended (sl_async_done). */
enum sl_async_result {
    SL_ASYNC_OK = 0,   /* the event goes on, as the stage left it */
    SL_ASYNC_DROP = 1, /* the event is dropped on purpose (counted as dropped) */
};

/* Finishes `call` (from map_async): its event goes on or is dropped, by `result`.
 * Change the event (sl_event_set...) before this, on the loop thread (a completion of
 * sl_stage_submit runs there); after it, neither `call` nor the event may be touched.
 * Any thread. */
SL_API void sl_async_done(struct sl_async *call, enum sl_async_result result);

/* Finishes `call` as failed for this event alone (the service said no, the lookup key
 * is malformed): the event goes to the stage's `on_error` (drop, dead_letter with the
 * formatted reason in field `error`, or fail the pipeline), counted as an error. Any
 * thread. */
SL_API void sl_async_fail(struct sl_async *call, int code, const char *fmt, ...) SL_PRINTF(3, 4);

/* The stage `call` belongs to. Any thread. */
SL_API struct sl_stage *sl_async_stage(const struct sl_async *call);

/* ---- retries ------------------------------------------------------------------------- */

/* Says why a sink cannot take a batch now, for the log line the runtime writes with
 * the delay before the next attempt, and returns SL_RETRY: `return sl_retry(stage,
 * "cannot write %s: %s", path, strerror(errno));`. Loop thread. */
SL_API enum sl_poll sl_retry(struct sl_stage *stage, const char *fmt, ...) SL_PRINTF(2, 3);

/* Exponential backoff with full jitter, for the runtime's retries and for stages that
 * retry inside themselves: attempt k (from 0) waits a uniformly random time in
 * [0, min(max_ms, initial_ms * 2^k)]. Fill with sl_backoff_init(); not thread-safe
 * (one per retrying thing). */
struct sl_backoff {
    int64_t initial_ms; /* the first attempt's ceiling */
    int64_t max_ms;     /* the cap of every ceiling */
    uint32_t attempt;   /* attempts made since the last reset */
    uint64_t rng;       /* jitter state */
};

/* Prepares `b` (borrowed) with these bounds (initial_ms >= 1; max_ms >= initial_ms). */
SL_API void sl_backoff_init(struct sl_backoff *b, int64_t initial_ms, int64_t max_ms);

/* The delay before the next attempt, in milliseconds, and counts the attempt. */
SL_API int64_t sl_backoff_next(struct sl_backoff *b);

/* Forgets the attempts (after a success): the next delay is drawn from initial_ms. */
SL_API void sl_backoff_reset(struct sl_backoff *b);

/* Whether `retries` delays (0: no limit) have been drawn since the last reset: a stage
 * that gives up after a number of retries asks this before sl_backoff_next(). */
SL_API bool sl_backoff_spent(const struct sl_backoff *b, uint32_t retries);

/* ---- a semaphore: at most N things at once ---------------------------------------- */

/* asyncio.Semaphore(n) for a stage's own work: a sink that sends each event of a batch
 * as its own request, a source that reads several files, at most `n` at a time. The
 * runtime's `max_in_flight` is the same limit for an asynchronous transform's calls.
 * One thread (the loop): not thread-safe. */
struct sl_semaphore; /* opaque */

/* A semaphore with `permits` (>= 1) free permits. Returns it owned (free:
 * sl_semaphore_free), or NULL when memory is exhausted or `permits` is 0. */
SL_API struct sl_semaphore *sl_semaphore_new(unsigned permits);

/* Runs `fn(arg)` once a permit is the caller's: inside this call when one is free, else
 * inside the sl_semaphore_release() that frees one, in the order asked (FIFO). The
 * permit is given back with sl_semaphore_release(). Returns 0, or SL_ENOMEM (then `fn`
 * is not called). */
SL_API int sl_semaphore_acquire(struct sl_semaphore *sem, void (*fn)(void *arg), void *arg);

/* Gives one permit back: the oldest waiter, if any, gets it and runs now. */
SL_API void sl_semaphore_release(struct sl_semaphore *sem);

/* Free permits now, and callers waiting for one. */
SL_API unsigned sl_semaphore_available(const struct sl_semaphore *sem);
SL_API size_t sl_semaphore_waiting(const struct sl_semaphore *sem);

/* Frees the semaphore; waiters still queued are forgotten (never called). NULL is a
 * no-op. */
SL_API void sl_semaphore_free(struct sl_semaphore *sem);

/* ---- blocking work off the loop -------------------------------------------------- */

typedef void sl_work_fn(void *arg);                         /* runs on an executor thread */
typedef void sl_done_fn(struct sl_stage *stage, void *arg); /* runs on the loop thread */

/* Runs `work(arg)` on one of the pipeline's executor threads (fsync, SQLite, anything
 * that blocks), then `done(stage, arg)` on the loop thread: asyncio's run_in_executor.
 * Tasks may finish in any order. `done` may be NULL. A stage's input does not end (no
 * flush(end = true)) while a task it submitted has not run its `done`; the runtime runs
 * every pending `done` before it calls close(), also when the run failed. The pool has
 * the pipeline's `executor_threads`. Returns 0, or SL_ENOMEM (then neither callback is
 * called). Loop thread only. */
SL_API int sl_stage_submit(struct sl_stage *stage, sl_work_fn *work, sl_done_fn *done, void *arg);

/* ---- timers ----------------------------------------------------------------------- */

struct sl_timer; /* opaque */

typedef void sl_timer_fn(struct sl_stage *stage, void *arg);

/* A timer that calls `fn(stage, arg)` on the loop thread. Returns an owned timer (free:
 * sl_timer_free), or NULL when memory is exhausted. Loop thread only. */
SL_API struct sl_timer *sl_timer_new(struct sl_stage *stage, sl_timer_fn *fn, void *arg);

/* (Re)arms the timer to fire after `ms` milliseconds, then every `ms` if `repeat`. */
SL_API void sl_timer_start(struct sl_timer *t, int64_t ms, bool repeat);

/* Disarms the timer; it will not fire until started again. */
SL_API void sl_timer_stop(struct sl_timer *t);

/* Stops and frees the timer. NULL is a no-op. */
SL_API void sl_timer_free(struct sl_timer *t);

/* Milliseconds of the loop's cached clock (monotonic), cheap. */
SL_API int64_t sl_stage_now_ms(struct sl_stage *stage);

#endif
