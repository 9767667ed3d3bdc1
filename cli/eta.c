/* The status line's ETA (cli.h: struct cli_eta): a rate smoothed over a window of time
 * rather than of ticks, and an estimate shown only once it holds still. A file of its own
 * so that the tests link it. */
#include <math.h>
#include <stdlib.h>

#include "cli.h"

#define ETA_WINDOW_S 5.0

long cli_eta_update(struct cli_eta *e, double progressed, double secs, uint64_t left)
{
    double now = secs > 0 ? progressed / secs : 0;
    e->rate = e->primed ? e->rate + (1 - exp(-secs / ETA_WINDOW_S)) * (now - e->rate) : now;
    e->primed = true;
    if (e->rate <= 0 || left == 0) {
        e->agree = 0;
        e->last = -1;
        return -1;
    }
    long eta = (long)((double)left / e->rate + 0.5);
    long tol = e->last / 5 > 2 ? e->last / 5 : 2;
    e->agree = e->last >= 0 && labs(eta - e->last) <= tol ? e->agree + 1 : 0;
    e->last = eta;
    return e->agree >= 2 ? eta : -1;
}
