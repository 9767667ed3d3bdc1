/* sluice: the umbrella header. Include this one; it brings every public header.
 *
 * Conventions of every header:
 * - Ownership. A pointer argument is *borrowed* (the callee neither keeps nor frees it)
 *   unless its comment says *takes* (the callee owns it from then on, also when the call
 *   fails). A returned pointer is *borrowed* and valid as its comment says ("valid until
 *   the batch is released"), unless the comment says *owned* and names the function that
 *   frees it. NULL is accepted where a comment says so, and by every *_free function.
 * - Errors. Functions that can fail return 0 (or a count) on success and a negative
 *   SL_E* code on failure, with the detail in a caller-owned struct sl_error when one is
 *   passed (it may be NULL). A call that fails never calls its callback.
 * - Threads. Everything runs on the pipeline's loop thread unless its comment says "any
 *   thread" (sl_stage_wake, sl_pipeline_stop, ...) or it is a stage's map/keep running
 *   on a worker of a `workers: N` stage. */
#ifndef SLUICE_SLUICE_H
#define SLUICE_SLUICE_H

#include <sluice/version.h>
#include <sluice/error.h>
#include <sluice/event.h>
#include <sluice/stage.h>
#include <sluice/config.h>
#include <sluice/pipeline.h>
#include <sluice/registry.h>
#include <sluice/json.h>
#include <sluice/expr.h>
#include <sluice/observe.h>

#endif
