/* The program's own messages: one line each on stderr, as text for people or as JSON
 * objects for log shippers (--log-format json), filtered by --log-level. */
#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "cli.h"

static struct {
    enum sl_log_level level;    /* most verbose level shown */
    enum cli_log_format format; /* text or json */
    void (*hook)(void);         /* before each line (the status line clears itself) */
} logger = {SL_LOG_INFO, CLI_LOG_TEXT, NULL};

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int cli_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0) return i;
    if (strcmp(s, "warning") == 0) return SL_LOG_WARN;
    return -1;
}

int cli_log_format_parse(const char *s)
{
    if (strcmp(s, "text") == 0) return CLI_LOG_TEXT;
    if (strcmp(s, "json") == 0) return CLI_LOG_JSON;
    return -1;
}

void cli_log_setup(enum sl_log_level level, enum cli_log_format format)
{
    logger.level = level;
    logger.format = format;
}

bool cli_log_json(void)
{
    return logger.format == CLI_LOG_JSON;
}

bool cli_log_enabled(enum sl_log_level level)
{
    return level <= logger.level;
}

void cli_log_set_hook(void (*before_write)(void))
{
    logger.hook = before_write;
}

/* Writes `s` as the body of a JSON string. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void json_head(FILE *f, enum sl_log_level level)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(f, "{\"time\":\"%s.%03dZ\",\"level\":\"%s\"", ts, (int)(tv.tv_usec / 1000),
            level_names[level]);
}

static void emit(enum sl_log_level level, const struct sl_error *where, const char *stage,
                 const char *msg)
{
    if (!cli_log_enabled(level)) return;
    if (logger.hook) logger.hook();
    FILE *f = stderr;
    if (logger.format == CLI_LOG_JSON) {
        json_head(f, level);
        if (where && where->file[0]) {
            fputs(",\"file\":", f);
            json_str(f, where->file);
            if (where->line > 0) fprintf(f, ",\"line\":%d,\"col\":%d", where->line, where->col);
        }
        if (stage && *stage) {
            fputs(",\"stage\":", f);
            json_str(f, stage);
        }
        fputs(",\"msg\":", f);
        json_str(f, msg);
        fputs("}\n", f);
    } else {
        if (where && where->file[0] && where->line > 0)
            fprintf(f, "%s:%d:%d: ", where->file, where->line, where->col);
        else if (where && where->file[0])
            fprintf(f, "%s: ", where->file);
        else
            fputs("sluice: ", f);
        fprintf(f, "%s: ", level == SL_LOG_WARN ? "warning" : level_names[level]);
        if (stage && *stage) fprintf(f, "stage '%s': ", stage);
        fprintf(f, "%s\n", msg);
    }
    fflush(f);
}

void cli_log(enum sl_log_level level, const char *stage, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    emit(level, NULL, stage, msg);
}

void cli_log_problem(enum sl_log_level level, const struct sl_error *e)
{
    emit(level, e, e->stage, e->msg[0] ? e->msg : sl_strerror(e->code));
}

void cli_log_report(void *arg, enum sl_log_level level, const struct sl_error *e)
{
    struct cli_counts *c = arg;
    if (level == SL_LOG_WARN)
        c->warnings++;
    else
        c->errors++;
    cli_log_problem(level, e);
}

void cli_log_pipeline(void *arg, enum sl_log_level level, const char *stage, const char *msg)
{
    struct cli_counts *c = arg;
    if (c && level == SL_LOG_ERROR) c->errors++;
    if (c && level == SL_LOG_WARN) c->warnings++;
    emit(level, NULL, stage, msg);
}
