/* The program's own messages: one line each on stderr, as text for people or as JSON
 * objects for log shippers (--log-format json), filtered by --log-level. */
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <event2/event.h>

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

/* ---- libevent's own messages -------------------------------------------------------------- */

/* libevent writes its warnings to stderr itself unless given a callback: they would
 * break --log-format json, and a failure in a loop (an accept() that keeps failing)
 * repeats one message millions of times a second. So a message identical to one shown
 * less than REPEAT_WINDOW_S ago is counted instead (the count is told when the window
 * has passed, or at exit), and no more than RATE_LINES lines of libevent's are shown
 * per window at all. libevent may log from any thread that runs a loop: one lock. */
enum { REPEAT_SLOTS = 8, REPEAT_WINDOW_S = 10, RATE_LINES = 20 };

struct repeat {
    char msg[256];           /* "" when the slot is free */
    enum sl_log_level level; /* of the message */
    double shown_at;         /* when it was last shown */
    unsigned hidden;         /* repeats since, not shown */
};

static struct {
    pthread_mutex_t lock;
    struct repeat slot[REPEAT_SLOTS]; /* the messages seen last */
    double window_at;                 /* start of the rate window */
    unsigned shown, dropped;          /* lines shown in it, and not shown past the rate */
} lev = {.lock = PTHREAD_MUTEX_INITIALIZER};

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void lev_tell_dropped(void)
{
    if (lev.dropped)
        cli_log(SL_LOG_WARN, NULL, "libevent: %u more messages not shown (over %d in %d s)",
                lev.dropped, RATE_LINES, REPEAT_WINDOW_S);
    lev.dropped = 0;
}

/* Shows one line within the rate; past it, returns false and counts `n` messages. */
static bool lev_show(enum sl_log_level level, double now, const char *line, unsigned n)
{
    if (now - lev.window_at >= REPEAT_WINDOW_S) {
        lev_tell_dropped();
        lev.window_at = now;
        lev.shown = 0;
    }
    if (lev.shown >= RATE_LINES) {
        lev.dropped += n;
        return false;
    }
    lev.shown++;
    cli_log(level, NULL, "libevent: %s", line);
    return true;
}

/* Tells how often the message of `r` was not shown, within the rate unless `at_exit`,
 * and forgets the count. */
static void lev_tell_hidden(struct repeat *r, double now, bool at_exit)
{
    char line[320];
    snprintf(line, sizeof line, "%s (repeated %u more times)", r->msg, r->hidden);
    if (r->hidden && !at_exit)
        lev_show(r->level, now, line, r->hidden);
    else if (r->hidden)
        cli_log(r->level, NULL, "libevent: %s", line);
    r->hidden = 0;
}

/* The slot holding `msg`, else the free or the oldest one (its count told first). */
static struct repeat *lev_slot(const char *msg, double now)
{
    struct repeat *oldest = &lev.slot[0];
    for (int i = 0; i < REPEAT_SLOTS; i++) {
        struct repeat *r = &lev.slot[i];
        if (r->msg[0] && strncmp(r->msg, msg, sizeof r->msg - 1) == 0) return r;
        if (!r->msg[0] || (oldest->msg[0] && r->shown_at < oldest->shown_at)) oldest = r;
    }
    lev_tell_hidden(oldest, now, false);
    oldest->msg[0] = '\0';
    return oldest;
}

static void on_libevent_log(int severity, const char *msg)
{
    enum sl_log_level level = severity >= EVENT_LOG_ERR    ? SL_LOG_ERROR
                              : severity == EVENT_LOG_WARN ? SL_LOG_WARN
                              : severity == EVENT_LOG_MSG  ? SL_LOG_INFO
                                                           : SL_LOG_DEBUG;
    if (!cli_log_enabled(level)) return;
    pthread_mutex_lock(&lev.lock);
    double now = mono_s();
    struct repeat *r = lev_slot(msg, now);
    if (r->msg[0] && now - r->shown_at < REPEAT_WINDOW_S) {
        r->hidden++;
    } else {
        lev_tell_hidden(r, now, false);
        if (lev_show(level, now, msg, 1)) {
            snprintf(r->msg, sizeof r->msg, "%s", msg);
            r->level = level;
            r->shown_at = now;
        }
    }
    pthread_mutex_unlock(&lev.lock);
}

void cli_log_libevent_start(void)
{
    event_set_log_callback(on_libevent_log);
}

void cli_log_libevent_flush(void)
{
    pthread_mutex_lock(&lev.lock);
    for (int i = 0; i < REPEAT_SLOTS; i++) lev_tell_hidden(&lev.slot[i], 0, true);
    lev_tell_dropped();
    pthread_mutex_unlock(&lev.lock);
}
