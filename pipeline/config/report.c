/* Problem reports: where the errors and warnings of a load or of a stage's options go,
 * with the config position they point at. */
#include <stdarg.h>
#include <stdio.h>

#include "config/internal.h"

int sl__report(struct sl__report *r, enum sl_log_level level, const struct sl_error *e)
{
    bool warning = level == SL_LOG_WARN;
    int code = warning ? 0 : (e->code ? e->code : SL_ECONFIG);
    if (warning) {
        r->warnings++;
    } else {
        if (!r->errors && r->first) {
            *r->first = *e;
            r->first->code = code;
        }
        r->errors++;
    }
    if (r->fn) r->fn(r->arg, level, e);
    return code;
}

int sl__report_at(struct sl__report *r, enum sl_log_level level, int code, const char *stage,
                  const struct sl_config *node, const char *fmt, ...)
{
    struct sl_error e = {.code = code};
    if (stage) snprintf(e.stage, sizeof e.stage, "%s", stage);
    if (node) {
        snprintf(e.file, sizeof e.file, "%s", sl_config_file(node));
        e.line = sl_config_line(node);
        e.col = sl_config_col(node);
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    return sl__report(r, level, &e);
}
