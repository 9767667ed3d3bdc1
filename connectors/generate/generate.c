/* The `generate` source: realistic synthetic log lines from a seeded generator, so that
 * the same config always produces the same bytes (timestamps included: they start at
 * 2024-01-01T00:00:00Z and advance by a random step per line). With `interval`, one
 * batch per interval from a timer (the source answers SL_PENDING meanwhile: it never
 * sleeps). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sluice/builtins.h>

#include <sluice/event.h>

enum format { FMT_JSON, FMT_TEXT, FMT_APACHE, FMT_SYSLOG };

#define EPOCH_2024_MS 1704067200000LL /* where synthetic time starts */
#define LINE_MAX      1024            /* longest synthetic line */

struct generate {
    int64_t count;          /* option: lines to emit, 0 = endless */
    int format;             /* option: enum format */
    int64_t interval_ms;    /* option: pause between batches */
    int64_t batch;          /* option: lines per batch, 0 = pipeline's batch.max_events */
    int64_t seed;           /* option: generator seed */
    struct sl_list lines;   /* option: literal lines instead of a format */
    uint64_t rng;           /* xorshift state */
    int64_t produced;       /* lines emitted so far */
    int64_t now_ms;         /* synthetic clock */
    bool waiting;           /* a batch went out; the timer has not fired yet */
    struct sl_timer *timer; /* interval */
};

/* ---- the generator --------------------------------------------------------------------- */

static uint64_t next(struct generate *g)
{
    g->rng ^= g->rng >> 12;
    g->rng ^= g->rng << 25;
    g->rng ^= g->rng >> 27;
    return g->rng * 2685821657736338717ULL;
}

#define PICK(g, arr) (arr)[next(g) % (sizeof(arr) / sizeof *(arr))]

static const char *const services[] = {"checkout", "search", "auth", "catalog", "payments"};
static const char *const hosts[] = {"web-1", "web-2", "web-3", "api-1", "api-2"};
static const char *const methods[] = {"GET", "GET", "GET", "POST", "PUT", "DELETE"};
static const char *const paths[] = {"/",           "/api/cart",      "/api/items/773", "/login",
                                    "/api/search", "/static/app.js", "/api/orders",    "/health"};
static const int statuses[] = {200, 200, 200, 200, 201, 204, 301, 304, 400, 404, 500, 503};
static const char *const agents[] = {"Mozilla/5.0 (X11; Linux x86_64)", "curl/8.5.0",
                                     "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2)",
                                     "python-requests/2.31"};

struct fields {
    const char *service, *host, *method, *path, *agent, *level, *msg;
    int status, latency, user, ip[4], bytes, severity;
};

static void pick(struct generate *g, struct fields *f)
{
    f->service = PICK(g, services);
    f->host = PICK(g, hosts);
    f->method = PICK(g, methods);
    f->path = PICK(g, paths);
    f->agent = PICK(g, agents);
    f->status = PICK(g, statuses);
    f->latency = (int)(next(g) % (f->status >= 500 ? 3000 : 250)) + 1;
    f->user = (int)(next(g) % 9000) + 1000;
    f->bytes = (int)(next(g) % 20000) + 120;
    for (int i = 0; i < 4; i++) f->ip[i] = (int)(next(g) % 254) + 1;
    bool error = f->status >= 500, warn = f->status >= 400 || f->latency > 200;
    f->level = error ? "error" : warn ? "warn" : "info";
    f->severity = error ? 3 : warn ? 4 : 6;
    f->msg = error ? "upstream request failed" : warn ? "slow or rejected request" : "request done";
    g->now_ms += (int64_t)(next(g) % 250);
}

static void iso_time(int64_t ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03dZ", (int)(ms % 1000));
}

static int format_line(struct generate *g, char *out, size_t size)
{
    struct fields f;
    pick(g, &f);
    char ts[40];
    iso_time(g->now_ms, ts, sizeof ts);
    switch (g->format) {
    case FMT_JSON:
        return snprintf(out, size,
                        "{\"time\":\"%s\",\"level\":\"%s\",\"service\":\"%s\",\"host\":\"%s\","
                        "\"method\":\"%s\",\"path\":\"%s\",\"status\":%d,\"latency_ms\":%d,"
                        "\"user_id\":%d,\"msg\":\"%s\"}",
                        ts, f.level, f.service, f.host, f.method, f.path, f.status, f.latency,
                        f.user, f.msg);
    case FMT_TEXT:
        return snprintf(out, size, "%s %-5s %s %s method=%s path=%s status=%d latency_ms=%d", ts,
                        f.level, f.service, f.msg, f.method, f.path, f.status, f.latency);
    case FMT_APACHE: {
        time_t t = (time_t)(g->now_ms / 1000);
        struct tm tm;
        char date[40];
        gmtime_r(&t, &tm);
        strftime(date, sizeof date, "%d/%b/%Y:%H:%M:%S +0000", &tm);
        return snprintf(out, size, "%d.%d.%d.%d - - [%s] \"%s %s HTTP/1.1\" %d %d \"-\" \"%s\"",
                        f.ip[0], f.ip[1], f.ip[2], f.ip[3], date, f.method, f.path, f.status,
                        f.bytes, f.agent);
    }
    default: /* RFC 5424, facility local4 */
        return snprintf(out, size, "<%d>1 %s %s %s %d - - %s %s %s -> %d", 160 + f.severity, ts,
                        f.host, f.service, f.user, f.msg, f.method, f.path, f.status);
    }
}

/* ---- the stage --------------------------------------------------------------------------- */

static const struct sl_option generate_options[] = {
    {"count", SL_OPT_INT, "0", 0, offsetof(struct generate, count),
     "lines to emit, then the source ends; 0 = endless"},
    {"format", SL_OPT_ENUM, "json", 0, offsetof(struct generate, format),
     "what the lines look like: json, text, apache (combined log) or syslog (RFC 5424)",
     "json|text|apache|syslog"},
    {"interval", SL_OPT_DURATION, "0", 0, offsetof(struct generate, interval_ms),
     "pause between batches, e.g. 100ms; 0 = as fast as the pipeline takes them"},
    {"batch", SL_OPT_INT, "0", 0, offsetof(struct generate, batch),
     "lines per batch; 0 = the pipeline's batch.max_events"},
    {"seed", SL_OPT_INT, "1", 0, offsetof(struct generate, seed),
     "generator seed: the same seed gives the same lines"},
    {"lines", SL_OPT_LIST, NULL, 0, offsetof(struct generate, lines),
     "literal lines to emit round-robin instead of a format"},
    {0},
};

static int generate_init(struct sl_stage *s, const struct sl_config *cfg, struct sl_error *err)
{
    (void)cfg;
    struct generate *g = sl_stage_state(s);
    if (g->count < 0) return sl_error_set(err, SL_ECONFIG, "option 'count' must be 0 or more");
    if (g->batch < 0) return sl_error_set(err, SL_ECONFIG, "option 'batch' must be 0 or more");
    g->rng = (uint64_t)g->seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL;
    if (!g->rng) g->rng = 1;
    g->now_ms = EPOCH_2024_MS;
    return sl_stage_declare_fields(s, SL_FIELDS_ONLY, NULL, 0); /* payloads only */
}

static void interval_over(struct sl_stage *s, void *arg)
{
    (void)arg;
    struct generate *g = sl_stage_state(s);
    g->waiting = false;
    sl_stage_wake(s);
}

static int generate_start(struct sl_stage *s, struct sl_error *err)
{
    struct generate *g = sl_stage_state(s);
    if (g->interval_ms > 0 && !(g->timer = sl_timer_new(s, interval_over, NULL)))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    return 0;
}

static int add_line(struct sl_stage *s, struct generate *g, struct sl_batch *b)
{
    char tmp[LINE_MAX];
    const char *text = tmp;
    int len;
    if (g->lines.n) {
        text = g->lines.items[g->produced % (int64_t)g->lines.n];
        len = (int)strlen(text);
    } else {
        len = format_line(g, tmp, sizeof tmp);
        if (len >= (int)sizeof tmp) len = (int)sizeof tmp - 1;
    }
    struct sl_event *ev = sl_batch_append(b);
    char *payload = len ? sl_batch_alloc(b, (size_t)len) : NULL;
    if (!ev || (len && !payload)) return SL_ENOMEM;
    if (len) memcpy(payload, text, (size_t)len);
    sl_event_set_payload(ev, payload ? payload : "", (size_t)len);
    sl_event_set_time(ev, (g->lines.n ? EPOCH_2024_MS : g->now_ms) * 1000000);
    sl_event_set_origin(ev, sl_stage_name(s), (uint64_t)g->produced, -1);
    g->produced++;
    return 0;
}

static enum sl_poll generate_poll(struct sl_stage *s, struct sl_batch **out)
{
    struct generate *g = sl_stage_state(s);
    if (g->count && g->produced >= g->count) return SL_DONE;
    if (g->waiting) return SL_PENDING;
    struct sl_batch *b = sl_batch_new(s);
    if (!b) {
        sl_stage_error(s, SL_ENOMEM, "out of memory");
        return SL_ERROR;
    }
    for (int64_t i = 0; !g->batch || i < g->batch; i++) {
        if ((g->count && g->produced >= g->count) || sl_batch_full(b)) break;
        if (add_line(s, g, b)) {
            sl_batch_unref(b);
            sl_stage_error(s, SL_ENOMEM, "out of memory");
            return SL_ERROR;
        }
    }
    *out = b;
    if (g->count) sl_stage_set_progress(s, (uint64_t)g->produced, (uint64_t)g->count);
    if (g->timer && !(g->count && g->produced >= g->count)) {
        g->waiting = true;
        sl_timer_start(g->timer, g->interval_ms, false);
    }
    return SL_READY;
}

static void generate_close(struct sl_stage *s)
{
    struct generate *g = sl_stage_state(s);
    sl_timer_free(g->timer);
}

const struct sl_stage_type sl_stage_generate = {
    .abi = SL_STAGE_ABI,
    .name = "generate",
    .kind = SL_SOURCE,
    .doc = "synthetic log lines (json, text, apache, syslog) for demos and tests",
    .state_size = sizeof(struct generate),
    .options = generate_options,
    .init = generate_init,
    .start = generate_start,
    .poll = generate_poll,
    .close = generate_close,
};
