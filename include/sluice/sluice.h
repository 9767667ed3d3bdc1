/* sluice: the umbrella header. Include this one; it brings every public header. */
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

#endif
