/* sluice: building and running a pipeline.
 *
 * A pipeline is a graph of stages joined by bounded queues, run on one libevent loop.
 * Build it with sl_pipeline_add() and sl_pipeline_connect() (or from a config with
 * sl_pipeline_load()), then sl_pipeline_run() until every source has ended and every
 * sink has acknowledged everything, or until sl_pipeline_stop(). */
#ifndef SLUICE_PIPELINE_H
#define SLUICE_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>

#include <sluice/error.h>
#include <sluice/stage.h>

struct event_base;
struct sl_pipeline; /* opaque */
struct sl_registry; /* registry.h */
struct sl_config;   /* config.h */

/* Pipeline-wide settings (the `pipeline:` section of a config). Fill with
 * sl_pipeline_options_init(), then change fields: the struct may grow at its end in a
 * later minor version, and `size` tells the library how much of it the caller has. */
struct sl_pipeline_options {
    size_t size;                 /* sizeof(struct sl_pipeline_options), set by
                                    sl_pipeline_options_init(); the library reads no field
                                    beyond it and refuses a size below 0.1's */
    int64_t batch_max_events;    /* events per batch a source fills (default 1024) */
    uint64_t batch_max_bytes;    /* payload bytes per batch (default 1 MiB) */
    int64_t batch_timeout_ms;    /* how long a source may hold a partial batch (default 100) */
    int64_t queue_max_batches;   /* capacity of each edge in batches (default 8) */
    uint64_t queue_max_bytes;    /* capacity of each edge in payload bytes (default 8 MiB) */
    const char *data_dir;        /* directory for state (borrowed, copied; default "."),
                                    e.g. checkpoints */
    int64_t executor_threads;    /* threads for sl_stage_submit() (default 0: twice the
                                    cores, at least 4) */
    int64_t shutdown_timeout_ms; /* after a graceful stop, how long what is in flight may
                                    take to drain before the run is aborted (nothing more
                                    is acknowledged; a restart replays it) (default 30000) */
    /* Receives the pipeline's log lines (stage may be NULL); NULL: discard. Loop thread. */
    void (*log)(void *arg, enum sl_log_level level, const char *stage, const char *msg);
    void *log_arg; /* passed to log */
    /* Told once when the run ends: rc 0 on success, else the failure's code. For
     * programs that run the loop themselves. NULL: not told. Loop thread. */
    void (*on_done)(void *arg, int rc);
    void *on_done_arg; /* passed to on_done */
    /* Told once per stage when it has ended and, for a source, every batch it produced
     * has been acknowledged end to end (a file read to its end and all of it durable).
     * `stage` is borrowed. Not told after an abort. NULL: not told. Loop thread. */
    void (*on_stage_done)(void *arg, struct sl_stage *stage);
    void *on_stage_done_arg; /* passed to on_stage_done */
    /* Added after 0.1: the `pipeline.api` settings. The library only reads them from a
     * config (strings point into it); the `sluice` program serves the API. */
    const char *api_address; /* `api.address`: HOST:PORT of the metrics and API server
                                (--metrics-addr wins); NULL: none */
    const char *api_bearer;  /* `api.auth.bearer`: the token every request must bring
                                (Authorization: Bearer TOKEN); NULL: no auth */
    bool api_insecure;       /* `api.insecure`: allows a non-loopback address without auth */
    bool api_tap;            /* `api.tap`: serves /api/tap (it shows the data) */
};

/* Fills `opts` (borrowed) with the defaults and its size. */
SL_API void sl_pipeline_options_init(struct sl_pipeline_options *opts);

/* Creates an empty pipeline on `base` (borrowed; must outlive the pipeline), or on a loop
 * of its own if `base` is NULL. `opts` (borrowed, copied; NULL: defaults; fields beyond
 * opts->size take their defaults). Returns an owned pipeline (free: sl_pipeline_free),
 * or NULL with `err` filled (SL_EINVAL for options out of range or of a size below
 * 0.1's). Loop thread. */
SL_API struct sl_pipeline *sl_pipeline_new(struct event_base *base,
                                           const struct sl_pipeline_options *opts,
                                           struct sl_error *err);

/* Stops the pipeline if running, closes every stage and frees everything, the loop too
 * if the pipeline made it. NULL is a no-op. Loop thread. */
SL_API void sl_pipeline_free(struct sl_pipeline *p);

/* Adds stage `name` (borrowed, copied; unique) of `type` (borrowed; must outlive the
 * pipeline) configured by `cfg` (a map node; a reference is taken; NULL: all defaults).
 * Fills the state from the type's schema, then calls init(). The runtime's own keys
 * (`type`, `inputs`, `workers`, `buffer`) are not passed to the schema; `buffer:
 * {max_batches: N, max_bytes: SIZE}` sets the capacity of the stage's input edges
 * (default: the pipeline's queue settings). Returns the
 * stage (valid until sl_pipeline_free), or NULL with `err` filled (stage name, and the
 * config position for option errors). */
SL_API struct sl_stage *sl_pipeline_add(struct sl_pipeline *p, const char *name,
                                        const struct sl_stage_type *type,
                                        const struct sl_config *cfg, struct sl_error *err);

/* Adds an edge from output `port` (borrowed; NULL or "" is the default output) of `from`
 * to `to`. Returns 0, or SL_EINVAL (a sink as `from`, a source as `to`) / SL_ENOTFOUND
 * (no such port) with `err`. Before the run starts only. */
SL_API int sl_pipeline_connect(struct sl_pipeline *p, struct sl_stage *from, const char *port,
                               struct sl_stage *to, struct sl_error *err);

/* The stage called `name` (borrowed), or NULL. */
SL_API struct sl_stage *sl_pipeline_find(struct sl_pipeline *p, const char *name);

/* Number of stages, and the i-th in the order added (NULL when out of range). */
SL_API size_t sl_pipeline_stage_count(const struct sl_pipeline *p);
SL_API struct sl_stage *sl_pipeline_stage_at(struct sl_pipeline *p, size_t i);

/* Number of input edges of `stage`, and the producer of the i-th (borrowed), or NULL
 * when out of range. `*port` (borrowed; may be NULL) receives the producer's output
 * the edge reads from ("" for the default output). */
SL_API size_t sl_stage_input_count(const struct sl_stage *stage);
SL_API struct sl_stage *sl_stage_input_at(const struct sl_stage *stage, size_t i,
                                          const char **port);

/* Checks the graph (every non-source has an input, no cycles) and calls each stage's
 * start(). Returns 0 or an SL_E* code with `err`. Loop thread. */
SL_API int sl_pipeline_start(struct sl_pipeline *p, struct sl_error *err);

/* Starts the pipeline if needed and runs the loop until the pipeline has ended. Returns
 * 0 when every source ended (or a stop drained everything) and every sink acknowledged
 * everything; otherwise the failing stage's code with `err` filled (its name in
 * err->stage). Loop thread. */
SL_API int sl_pipeline_run(struct sl_pipeline *p, struct sl_error *err);

/* True once the pipeline has ended (success or failure). */
SL_API bool sl_pipeline_done(const struct sl_pipeline *p);

/* Graceful stop: sources are no longer polled and count as ended, what is in flight
 * drains, sinks flush and acknowledge, then the run ends with success. Any thread. */
SL_API void sl_pipeline_stop(struct sl_pipeline *p);

/* Immediate stop: the run ends now with SL_ESTOPPED; nothing more is acknowledged (a
 * restart replays from the last checkpoint). Loop thread. */
SL_API void sl_pipeline_abort(struct sl_pipeline *p);

/* Installs SIGINT/SIGTERM handlers on the loop for the run: the first signal stops
 * gracefully, a second aborts. `on_signal(arg, signo, count)` (may be NULL) is told of
 * each. Returns 0 or SL_ENOMEM. Loop thread. */
SL_API int sl_pipeline_catch_signals(struct sl_pipeline *p,
                                     void (*on_signal)(void *arg, int signo, int count), void *arg);

/* ---- counters --------------------------------------------------------------------- */

/* The buckets of sl_stage_stats.batch_count: their upper bounds in ns, an initializer
 * (`static const long long le[] = SL_STAGE_LATENCY_LE_NS;`): 100 us, 1 ms, 10 ms, 100 ms,
 * 1 s, 10 s, then a last bucket for the longer ones. */
#define SL_STAGE_LATENCY_BUCKETS 7
#define SL_STAGE_LATENCY_LE_NS                                                                     \
    {                                                                                              \
        100000LL, 1000000LL, 10000000LL, 100000000LL, 1000000000LL, 10000000000LL                  \
    }

/* A snapshot of one stage's counters. The struct may grow at its end in a later minor
 * version: the caller says how much of it it has, `struct sl_stage_stats st = {.size =
 * sizeof st};`, and the library fills no field beyond that. */
struct sl_stage_stats {
    size_t size;              /* set by the caller: sizeof(struct sl_stage_stats) */
    uint64_t events_in;       /* events received (sources: produced) */
    uint64_t events_out;      /* events passed downstream (sinks: acknowledged) */
    uint64_t bytes_in;        /* payload bytes received */
    uint64_t bytes_out;       /* payload bytes passed downstream */
    uint64_t batches_in;      /* batches received */
    uint64_t batches_out;     /* batches passed downstream */
    uint64_t dropped;         /* events dropped on purpose (on_error: drop, oversize...) */
    uint64_t errors;          /* events that failed */
    uint64_t retries;         /* sinks: writes answered SL_RETRY and scheduled again */
    uint32_t in_flight;       /* asynchronous transforms: calls started, not finished */
    uint64_t acked;           /* sources: events acknowledged end to end; sinks: events acked */
    uint32_t queue_batches;   /* batches waiting in the stage's input queues */
    uint32_t queue_capacity;  /* capacity of its input queues in batches */
    uint64_t queue_bytes;     /* payload bytes waiting in its input queues */
    uint64_t queue_max_bytes; /* capacity of its input queues in bytes */
    uint64_t progress_done;   /* sources: how far they are (sl_stage_set_progress; file:
                                 bytes read, updated every checkpoint_interval and at the
                                 end; generate: events made) */
    uint64_t progress_total;  /* sources: of that much (file: the sizes of its files), 0
                                 when unknown */
    uint64_t busy_ns;         /* time spent inside the stage's callbacks, on the loop and,
                                 for `workers`, on the workers (a chain's jobs count for
                                 its head, the stages after it are in its time) */
    bool finished;            /* the stage has ended */
    /* Added after 0.1 (fields past `finished`): filled for a caller whose size has them. */
    uint64_t batch_count[SL_STAGE_LATENCY_BUCKETS]; /* batches by the time the stage took
                                 over one (a source's poll() that produced it, a transform's
                                 map/keep over it, on the loop or in a job, a sink's write()):
                                 [i] counts those above bound i - 1 and at most bound i of
                                 SL_STAGE_LATENCY_LE_NS, the last any longer; not cumulative. Not
                                 for map_async stages. */
    uint64_t batch_ns;                              /* the sum of those times */
    uint64_t aged_batches; /* sinks: batches received whose newest event has a time */
    int64_t event_age_ns;  /* sinks: at the receipt of the last of them, the wall clock
                              less the time of its newest event (sl_event_time of the
                              first and last events, the later) */
};

/* Copies the counters of `stage` into `out` (borrowed; out->size set, see above), up to
 * out->size. Returns 0, or SL_EINVAL when out->size is below 0.1's struct (nothing is
 * written). Loop thread. */
SL_API int sl_stage_stats(const struct sl_stage *stage, struct sl_stage_stats *out);

/* The type of `stage` (borrowed). */
SL_API const struct sl_stage_type *sl_stage_get_type(const struct sl_stage *stage);

/* The pipeline's loop (borrowed). */
SL_API struct event_base *sl_pipeline_event_base(struct sl_pipeline *p);

/* Number of batches alive in the pipeline (queued, in stages, awaiting ack): 0 after a
 * clean end. For tests and leak checks. */
SL_API uint64_t sl_pipeline_live_batches(const struct sl_pipeline *p);

/* Bytes of memory the pipeline's batches hold now (arenas and event arrays), and the
 * most they ever held, into `now` and `peak` (borrowed; either may be NULL). Any
 * thread. */
SL_API void sl_pipeline_memory(const struct sl_pipeline *p, int64_t *now, int64_t *peak);

/* Peak of sl_pipeline_live_batches() during the run. */
SL_API uint64_t sl_pipeline_peak_batches(const struct sl_pipeline *p);

/* The schema of the `pipeline:` section (offsets into struct sl_pipeline_options), ending
 * with an all-zero entry: what sl_pipeline_options_from_config() reads, and what
 * `sluice describe pipeline` prints. */
SL_API const struct sl_option *sl_pipeline_settings(void);

/* Reads the `pipeline:` section of config `root` (borrowed) into `opts` (borrowed; from
 * sl_pipeline_options_init; fields not set in the config are left as they are) by the schema of
 * sl_pipeline_settings(): unknown settings and values of the wrong type or out of range are errors.
 * String fields point into `root`, valid while it is. Returns 0 or SL_ECONFIG with `err`
 * (file:line:col). */
SL_API int sl_pipeline_options_from_config(struct sl_pipeline_options *opts,
                                           const struct sl_config *root, struct sl_error *err);

/* Builds the stages and edges of config `root` (borrowed; references are taken) with the
 * types in `reg` (borrowed; must outlive the pipeline). Returns 0 or SL_ECONFIG with the
 * first error in `err`. Warnings are not reported. */
SL_API int sl_pipeline_load(struct sl_pipeline *p, const struct sl_registry *reg,
                            const struct sl_config *root, struct sl_error *err);

/* Receives one problem found in a config: `level` is SL_LOG_ERROR, or SL_LOG_WARN for
 * one that does not stop a run. `err` (borrowed; valid during the call) holds the
 * message, the config position (file:line:col) and, when the problem belongs to one
 * stage, its name in err->stage. */
typedef void sl_report_fn(void *arg, enum sl_log_level level, const struct sl_error *err);

/* As sl_pipeline_load, but carries on after an error to find every problem: unknown
 * sections, types and options, missing options, values of the wrong type, duplicate
 * stage names, inputs that name no stage, stages without inputs, cycles (naming the
 * stages on them in order), an empty config, and, as warnings, stages whose events
 * reach no sink. Each is told to `report(arg, ...)` (may be NULL) synchronously: stage by
 * stage in config order, then inputs, then the graph. Returns 0 when no error was found (warnings
 * allowed), SL_ECONFIG otherwise, or SL_ENOMEM. After an error the pipeline holds only the stages
 * that loaded: free it, never start it. Loop thread. */
SL_API int sl_pipeline_load_all(struct sl_pipeline *p, const struct sl_registry *reg,
                                const struct sl_config *root, sl_report_fn *report, void *arg);

#endif
