/* /api/tap: not served yet. */
#include <stdlib.h>

#include "cli.h"

struct cli_taps {
    struct sl_pipeline *p; /* borrowed */
};

struct cli_taps *cli_taps_new(struct sl_pipeline *p)
{
    struct cli_taps *t = calloc(1, sizeof *t);
    if (t) t->p = p;
    return t;
}

void cli_taps_serve(struct cli_taps *t, struct evhttp_request *req)
{
    (void)t;
    cli_reply_error(req, 501, "Not Implemented", "tapping is not implemented yet");
}

void cli_taps_free(struct cli_taps *t)
{
    free(t);
}
