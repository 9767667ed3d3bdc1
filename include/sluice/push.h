/* sluice: a source the program feeds (the seed's `asyncio.Queue(maxsize)` made C).
 *
 * A stage of type sl_stage_push is a source whose events come from the program that
 * embeds the pipeline: sl_push() offers one event; when the stage's queue holds
 * `capacity` events the call says so (SL_EAGAIN, nothing taken), and the program is told
 * by its on_room callback once there is room again. The queue fills when the pipeline
 * is slower than the program: the pipeline's own backpressure (full queues between
 * stages stop the source from being polled) reaches the program this way.
 *
 * It is not one of the `sluice` program's built-ins (nothing would feed it): a program
 * registers it (sl_registry_add(reg, &sl_stage_push, err)) to use `type: push` in a
 * config, or adds it with sl_pipeline_add(), then finds its handle with sl_push_of().
 * Everything here runs on the pipeline's loop thread. examples/embed.c uses it. */
#ifndef SLUICE_PUSH_H
#define SLUICE_PUSH_H

#include <stddef.h>
#include <stdint.h>

#include <sluice/error.h>
#include <sluice/stage.h>

struct sl_push; /* opaque: the program's end of a push source */

/* Source `push`. Option `capacity` (events queued at most, default 1024). Its events
 * carry the pushed bytes as their payload. The source ends after sl_push_end() once its
 * queue is empty; a stop of the pipeline ends it at once (what is queued is dropped,
 * counted as dropped). */
SL_API extern const struct sl_stage_type sl_stage_push;

/* The push handle of `stage` (borrowed; valid as long as the stage), or NULL when the
 * stage is not of type sl_stage_push. */
SL_API struct sl_push *sl_push_of(struct sl_stage *stage);

/* Offers one event whose payload is a copy of `len` bytes at `data` (borrowed). Returns
 * 0 (queued), SL_EAGAIN when the queue is full (nothing taken: try again when on_room
 * is called), SL_ECLOSED after sl_push_end() or once the source has ended, or
 * SL_ENOMEM. */
SL_API int sl_push(struct sl_push *q, const void *data, size_t len);

/* Sets the callback told, from the loop, each time the queue has room again after a
 * call answered SL_EAGAIN (once per refusal streak, never from inside sl_push). `fn` may
 * be NULL (then the program polls sl_push_room()). */
SL_API void sl_push_on_room(struct sl_push *q, void (*fn)(void *arg, struct sl_push *q), void *arg);

/* Events the queue can take now (0: full, or closed). */
SL_API size_t sl_push_room(const struct sl_push *q);

/* End of stream: no more pushes; the source ends once the pipeline took what is queued.
 * Idempotent. */
SL_API void sl_push_end(struct sl_push *q);

/* The counters of the program's side, for the program to print. May grow at its end:
 * the caller sets `size` (`struct sl_push_counts c = {.size = sizeof c};`). */
struct sl_push_counts {
    size_t size;      /* set by the caller: sizeof(struct sl_push_counts) */
    uint64_t pushed;  /* events accepted */
    uint64_t refused; /* calls answered SL_EAGAIN (the queue was full) */
    uint64_t woken;   /* on_room calls */
    uint64_t dropped; /* events queued when a stop ended the source */
};

/* Copies the counters into `out` (borrowed), up to out->size. Returns 0, or SL_EINVAL
 * when out->size is below this version's struct (nothing written). */
SL_API int sl_push_counts(const struct sl_push *q, struct sl_push_counts *out);

#endif
