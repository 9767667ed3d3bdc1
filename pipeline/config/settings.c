/* The schemas of what the runtime itself reads from a config: the `pipeline:` section,
 * and the keys every stage of a kind takes beside its type's own options (`buffer`,
 * `workers`, `retry`, `max_in_flight`, `ordered`, `on_error`). They are parsed by the
 * same schema code as a stage's options (options.c), and documented by it. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "config/internal.h"

#define PIPE(field) offsetof(struct sl_pipeline_options, field)

/* The defaults here are sl_pipeline_options_init()'s, spelled as a config would; a unit
 * test (test_options) checks that the two agree. */
static const struct sl_option pipeline_settings[] = {
    {"batch.max_events", SL_OPT_INT, "1024", 0, PIPE(batch_max_events),
     "events a source puts in one batch", NULL, "1..1000000"},
    {"batch.max_bytes", SL_OPT_SIZE, "1MiB", 0, PIPE(batch_max_bytes),
     "payload bytes a source puts in one batch", NULL, "1.."},
    {"batch.timeout", SL_OPT_DURATION, "100ms", 0, PIPE(batch_timeout_ms),
     "how long a source that accumulates (Kafka) may hold a partial batch", NULL, "0.."},
    {"queue.max_batches", SL_OPT_INT, "8", 0, PIPE(queue_max_batches),
     "capacity of each edge in batches (a stage's `buffer` overrides it)", NULL, "1..65536"},
    {"queue.max_bytes", SL_OPT_SIZE, "8MiB", 0, PIPE(queue_max_bytes),
     "capacity of each edge in payload bytes (a stage's `buffer` overrides it)", NULL, "1.."},
    {"data_dir", SL_OPT_STRING, ".", 0, PIPE(data_dir),
     "directory for state files (the file source's checkpoints.db)"},
    {"executor_threads", SL_OPT_INT, "0", 0, PIPE(executor_threads),
     "threads for blocking work (fsync, SQLite); 0: twice the cores, at least 4", NULL, "0..1024"},
    {"shutdown_timeout", SL_OPT_DURATION, "30s", 0, PIPE(shutdown_timeout_ms),
     "after SIGINT/SIGTERM, how long what is in flight may take to drain before the run "
     "is aborted (unacknowledged events are replayed by the next run); 0: no limit",
     NULL, "0.."},
    {"api.address", SL_OPT_STRING, NULL, 0, PIPE(api_address),
     "HOST:PORT serving the pipeline page at /, /metrics, /health and /api/ (sluice run; "
     "--metrics-addr wins); a "
     "non-loopback host needs api.auth.bearer or api.insecure"},
    {"api.auth.bearer", SL_OPT_STRING, NULL, 0, PIPE(api_bearer),
     "token every request for data (all but the page's own files) must bring as 'Authorization: "
     "Bearer TOKEN' (e.g. ${TOKEN})"},
    {"api.insecure", SL_OPT_BOOL, "false", 0, PIPE(api_insecure),
     "allow a non-loopback api.address without auth"},
    {"api.tap", SL_OPT_BOOL, "false", 0, PIPE(api_tap),
     "serve /api/tap (sluice tap): copies of the events leaving a stage"},
    {0},
};

const struct sl_option *sl_pipeline_settings(void)
{
    return pipeline_settings;
}

/* ---- what every stage of a kind takes ---------------------------------------------------- */

#define CONF(field) (offsetof(struct sl__stage_conf, field))

static const struct sl_option buffer_options[] = {
    {"buffer.max_batches", SL_OPT_INT, NULL, 0, CONF(buf_batches),
     "capacity of the stage's input queues in batches (default: pipeline queue.max_batches)", NULL,
     "1..65536"},
    {"buffer.max_bytes", SL_OPT_SIZE, NULL, 0, CONF(buf_bytes),
     "capacity of the stage's input queues in payload bytes (default: pipeline "
     "queue.max_bytes)",
     NULL, "1.."},
    {0},
};

static const struct sl_option workers_options[] = {
    {"workers", SL_OPT_INT, "auto", 0, CONF(workers),
     "threads running this stage's batches, order kept: auto (the cores less one, used "
     "while a batch costs more than handing it over), a number, or 0 (on the loop thread)",
     "auto", "0..256"},
    {0},
};

static const struct sl_option retry_options[] = {
    {"retry.initial", SL_OPT_DURATION, "100ms", 0, CONF(retry_initial),
     "ceiling of the first delay before a write is tried again (doubles each attempt, full "
     "jitter)",
     NULL, "1ms.."},
    {"retry.max", SL_OPT_DURATION, "30s", 0, CONF(retry_max), "cap of the delay between attempts",
     NULL, "1ms.."},
    {"retry.attempts", SL_OPT_INT, "0", 0, CONF(retry_attempts),
     "attempts before the run fails (0: retry until it works; nothing is dropped)", NULL, "0.."},
    {0},
};

static const struct sl_option async_options[] = {
    {"max_in_flight", SL_OPT_INT, "100", 0, CONF(max_in_flight),
     "events being worked on at once; reaching it holds the inputs back", NULL, "1..65536"},
    {"ordered", SL_OPT_BOOL, "true", 0, CONF(ordered),
     "results leave in input order (false: as they finish)"},
    {0},
};

static const struct sl_option on_error_options[] = {
    {"on_error", SL_OPT_ENUM, "drop", 0, CONF(on_error),
     "an event that cannot be handled: drop it (counted), dead_letter (to output "
     "'dead_letter' with the reason in field 'error') or fail (stop the pipeline)",
     "drop|dead_letter|fail"},
    {0},
};

static bool is_async(const struct sl_stage_type *t)
{
    return t->kind == SL_TRANSFORM && t->map_async;
}

size_t sl_stage_runtime_options(const struct sl_stage_type *t,
                                const struct sl_option *out[SL_RUNTIME_OPTION_TABLES])
{
    size_t n = 0;
    if (t->kind != SL_SOURCE) out[n++] = buffer_options;
    if (t->flags & SL_STAGE_PARALLEL && (t->kind == SL_TRANSFORM || t->kind == SL_FILTER) &&
        !is_async(t))
        out[n++] = workers_options;
    if (t->kind == SL_SINK) out[n++] = retry_options;
    if (is_async(t)) out[n++] = async_options;
    if (t->kind == SL_FILTER || is_async(t)) out[n++] = on_error_options;
    return n;
}

/* The first word of a runtime key ("retry" of "retry.max"), for the tables below. */
static bool key_is(const char *key, const char *word)
{
    size_t n = strlen(word);
    return strncmp(key, word, n) == 0 && (key[n] == '\0' || key[n] == '.');
}

bool sl__runtime_key_misuse(const struct sl_stage_type *t, const char *key, char *msg, size_t cap)
{
    const char *n = t->name;
    if (key_is(key, "buffer") && t->kind == SL_SOURCE)
        snprintf(msg, cap, "'buffer' sizes input queues; a source has none");
    else if (key_is(key, "workers") && t->kind != SL_TRANSFORM && t->kind != SL_FILTER)
        snprintf(msg, cap, "'workers' applies to transforms and filters");
    else if (key_is(key, "workers") && is_async(t))
        snprintf(msg, cap, "type '%s' is asynchronous: it takes max_in_flight, not workers", n);
    else if (key_is(key, "workers") && !(t->flags & SL_STAGE_PARALLEL))
        snprintf(msg, cap, "type '%s' keeps state between events and cannot run on workers", n);
    else if (key_is(key, "retry") && t->kind != SL_SINK)
        snprintf(msg, cap, "'retry' applies to sinks; '%s' is not one", n);
    else if ((key_is(key, "max_in_flight") || key_is(key, "ordered")) && !is_async(t))
        snprintf(msg, cap, "'%s' applies to asynchronous transforms; '%s' is not one", key, n);
    else
        return false;
    return true;
}
