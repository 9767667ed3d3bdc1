/* Blocking calls off the loop, at most three at a time: asyncio's run_in_executor and
 * an asyncio.Semaphore(3).
 *
 * `lookup` is an asynchronous transform (map_async): for each event it hands a blocking
 * call (here a slow "directory lookup", standing for a DNS query or a C library without
 * an async API) to the pipeline's executor threads with sl_stage_submit(); the result
 * comes back on the loop thread, which finishes the event with sl_async_done(). The
 * runtime starts at most `max_in_flight` calls at once (the semaphore; more inputs wait)
 * and, with `ordered: true`, passes the events on in input order whatever order the
 * calls end in. The stage counts its calls in flight to show the limit holds.
 *
 *   ./blocking_calls */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sluice/builtins.h>
#include <sluice/sluice.h>

struct lookup {
    int in_flight; /* calls started, not finished (loop thread) */
    int peak;      /* the most at once */
};

/* One call: the event's user name, and the answer the blocking work finds. */
struct call {
    struct sl_async *async; /* the runtime's handle of the event in flight */
    struct sl_event *ev;    /* the event (valid until sl_async_done) */
    char user[32];          /* input, copied for the executor thread */
    int uid;                /* output */
};

/* On an executor thread: may block as long as it likes without stalling the loop. */
static void lookup_work(void *arg)
{
    struct call *c = arg;
    struct timespec slow = {0, 2000000}; /* 2 ms: the blocking library call */
    nanosleep(&slow, NULL);
    c->uid = 1000;
    for (const char *p = c->user; *p; p++) c->uid += *p - 'a';
}

/* Back on the loop thread: write the answer into the event and let it go on. */
static void lookup_done(struct sl_stage *stage, void *arg)
{
    struct lookup *st = sl_stage_state(stage);
    struct call *c = arg;
    struct sl_value uid = sl_value_int(c->uid);
    sl_event_set(c->ev, "uid", 3, &uid);
    st->in_flight--;
    sl_async_done(c->async, SL_ASYNC_OK);
}

static int lookup_start(struct sl_stage *stage, struct sl_event *ev, struct sl_async *async)
{
    struct lookup *st = sl_stage_state(stage);
    struct call *c = (struct call *)sl_event_alloc(ev, sizeof *c); /* lives with the event */
    if (!c) return SL_ENOMEM;
    struct sl_value user;
    memset(c, 0, sizeof *c);
    c->async = async;
    c->ev = ev;
    if (sl_event_get(ev, "user", 4, &user) == 0 && user.type == SL_STRING)
        snprintf(c->user, sizeof c->user, "%.*s", (int)user.len, user.s);
    if (++st->in_flight > st->peak) st->peak = st->in_flight;
    return sl_stage_submit(stage, lookup_work, lookup_done, c);
}

static const struct sl_stage_type lookup = {
    .abi = SL_STAGE_ABI,
    .name = "lookup",
    .kind = SL_TRANSFORM,
    .doc = "finds a user's id with a blocking call, on the executor",
    .state_size = sizeof(struct lookup),
    .map_async = lookup_start,
};

static const char config[] =
    "pipeline: {executor_threads: 8}\n"
    "sources:\n"
    "  users: {type: generate, count: 10, lines: ['user=ada', 'user=bob', 'user=cy', "
    "'user=dee', 'user=eve']}\n"
    "transforms:\n"
    "  parse: {type: parse_logfmt, inputs: [users]}\n"
    "  lookup: {type: lookup, max_in_flight: 3, ordered: true, inputs: [parse]}\n"
    "sinks:\n"
    "  out: {type: stdout, encoding: text, template: '{{ user }} {{ uid }}', inputs: [lookup]}\n";

int main(void)
{
    struct sl_error err = {0};
    struct sl_registry *reg = sl_registry_new();
    struct sl_config *cfg = sl_config_parse(config, strlen(config), "blocking_calls", &err);
    struct sl_pipeline_options opts;
    sl_pipeline_options_init(&opts);
    struct sl_pipeline *p = NULL;
    if (!reg || !cfg || sl_registry_add_builtins(reg, &err) ||
        sl_registry_add(reg, &lookup, &err) || sl_pipeline_options_from_config(&opts, cfg, &err) ||
        !(p = sl_pipeline_new(NULL, &opts, &err)) || sl_pipeline_load(p, reg, cfg, &err) ||
        sl_pipeline_run(p, &err)) {
        char msg[1024];
        fprintf(stderr, "blocking_calls: %s\n", sl_error_format(&err, msg, sizeof msg));
        return 1;
    }
    fflush(stdout);
    struct lookup *st = sl_stage_state(sl_pipeline_find(p, "lookup"));
    printf("calls at once, at most: %d (max_in_flight: 3, executor threads: 8)\n", st->peak);
    sl_pipeline_free(p);
    sl_config_free(cfg);
    sl_registry_free(reg);
    return 0;
}
