/* sluice: version of the library these headers describe. */
#ifndef SLUICE_VERSION_H
#define SLUICE_VERSION_H

#include <sluice/error.h>

#define SL_VERSION_MAJOR  0
#define SL_VERSION_MINOR  1
#define SL_VERSION_PATCH  0
#define SL_VERSION_STRING "0.1.0"

/* The version of the library linked at run time, e.g. "0.1.0" (static string). */
SL_API const char *sl_version(void);

#endif
