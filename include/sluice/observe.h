/* sluice: watching a running pipeline from its own loop: the outputs of a stage, the
 * fill of each edge's queue, a stage's config, and taps (copies of the events leaving a
 * stage's output, as JSON text, for a program that shows them: `sluice tap`).
 *
 * Everything here is loop thread only, like the pipeline itself. */
#ifndef SLUICE_OBSERVE_H
#define SLUICE_OBSERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/error.h>
#include <sluice/event.h>
#include <sluice/pipeline.h>

struct sl_config; /* config.h */

/* ---- outputs and edges ------------------------------------------------------------- */

/* Number of output ports of `stage` (a sink has none; every other stage has at least the
 * default output, port 0), and the name of port `i` (borrowed, valid while the pipeline
 * is; "" for the default output), or NULL when out of range. */
SL_API size_t sl_stage_output_count(const struct sl_stage *stage);
SL_API const char *sl_stage_output_name(const struct sl_stage *stage, size_t i);

/* The config node `stage` was built from (borrowed, valid while the pipeline is), or
 * NULL for a stage added without one. */
SL_API const struct sl_config *sl_stage_config(const struct sl_stage *stage);

/* The fill of one edge's queue. Like sl_stage_stats the struct may grow at its end: set
 * `size` (`struct sl_edge_stats e = {.size = sizeof e};`) and nothing beyond it is
 * written. */
struct sl_edge_stats {
    size_t size;               /* set by the caller: sizeof(struct sl_edge_stats) */
    uint32_t queue_batches;    /* batches waiting in the queue */
    uint32_t capacity_batches; /* its capacity in batches */
    uint64_t queue_bytes;      /* payload bytes waiting */
    uint64_t capacity_bytes;   /* its capacity in payload bytes */
};

/* Copies the fill of the i-th input edge of `stage` (the edge sl_stage_input_at(stage,
 * i, ...) names) into `out` (borrowed; out->size set). Returns 0, SL_ENOTFOUND when `i`
 * is out of range, or SL_EINVAL when out->size is too small (nothing is written). */
SL_API int sl_stage_input_stats(const struct sl_stage *stage, size_t i, struct sl_edge_stats *out);

/* ---- taps ---------------------------------------------------------------------------- */

struct sl_tap; /* opaque */

/* Whether the tap keeps `ev` (borrowed, valid during the call; read it, never change
 * it). Loop thread, as a batch leaves the stage: keep it cheap. */
typedef bool sl_tap_match_fn(void *arg, const struct sl_event *ev);

/* Told on the loop thread, after a batch leaving the stage put events into the tap's
 * ring (at most once per batch): the reader has something to take. It must not close
 * the tap nor read it there; schedule the read (event_active) instead. */
typedef void sl_tap_wake_fn(void *arg, struct sl_tap *tap);

/* How a tap is opened. Zero-fill it, then set what you need: the struct may grow. */
struct sl_tap_options {
    size_t size;              /* sizeof(struct sl_tap_options) */
    uint32_t capacity_events; /* events the ring holds (0: 1024) */
    uint64_t capacity_bytes;  /* JSON bytes the ring holds (0: 4 MiB) */
    sl_tap_match_fn *match;   /* NULL: every event */
    void *match_arg;          /* passed to match */
    sl_tap_wake_fn *wake;     /* NULL: not told (poll with sl_tap_next) */
    void *wake_arg;           /* passed to wake */
};

/* Opens a tap on output `port` (borrowed; NULL or "" is the default output) of `stage`:
 * from now on, on the loop thread, each event of each batch that leaves that port (to
 * its queues, or nowhere when nothing consumes it) and that `opts->match` keeps is
 * written as JSON text (sl_event_write_json) into the tap's ring. When the ring is full
 * (in events or bytes) the event is dropped and counted instead: the stage never waits
 * for a reader. A stage without an open tap pays one test of a pointer per batch.
 * Batches a `workers` stage had handed to the next stage of its chain before the tap
 * opened are not seen. Returns the tap (owned: sl_tap_close), or NULL with `err`:
 * SL_ENOTFOUND (no such port; a sink has none), SL_EINVAL (opts->size too small),
 * SL_ENOMEM. Loop thread. */
SL_API struct sl_tap *sl_pipeline_tap_open(struct sl_pipeline *p, struct sl_stage *stage,
                                           const char *port, const struct sl_tap_options *opts,
                                           struct sl_error *err);

/* Takes the oldest event of the ring: `*json` (borrowed; valid until the next call on
 * the tap) and `*len` receive its text (one line: no newline in it). Returns true, or
 * false when the ring is empty. Loop thread. */
SL_API bool sl_tap_next(struct sl_tap *tap, const char **json, size_t *len);

/* The tap's counts since it opened: events the match kept (`matched`), of which the
 * ring had no room for (`dropped`); either pointer may be NULL. Events in the ring or
 * taken are matched - dropped. Loop thread. */
SL_API void sl_tap_counts(const struct sl_tap *tap, uint64_t *matched, uint64_t *dropped);

/* Events waiting in the ring. Loop thread. */
SL_API size_t sl_tap_pending(const struct sl_tap *tap);

/* Closes the tap and frees it with what its ring holds; NULL is a no-op. A tap still open
 * when its pipeline is freed is freed with it (the pointer is then dangling: close taps
 * first). Loop thread. */
SL_API void sl_tap_close(struct sl_tap *tap);

#endif
