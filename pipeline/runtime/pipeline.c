/* Building a pipeline: stages, edges, graph checks, start and teardown. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "runtime/internal.h"

void sl_pipeline_options_init(struct sl_pipeline_options *o)
{
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->batch_max_events = 1024;
    o->batch_max_bytes = 1u << 20;
    o->batch_timeout_ms = 100;
    o->queue_max_batches = 8;
    o->queue_max_bytes = 8u << 20;
    o->data_dir = ".";
    o->executor_threads = 0; /* twice the cores, at least 4 */
    o->shutdown_timeout_ms = 30000;
}

/* The limits a program's options must keep (a config's are checked by their schema,
 * with line:col, before they get here). Returns what is wrong, or NULL. */
static const char *check_options(const struct sl_pipeline_options *o)
{
    if (o->batch_max_events < 1 || o->batch_max_events > 1000000)
        return "batch_max_events must be from 1 to 1000000";
    if (o->queue_max_batches < 1 || o->queue_max_batches > 65536)
        return "queue_max_batches must be from 1 to 65536";
    if (!o->batch_max_bytes || !o->queue_max_bytes) return "byte limits must be at least 1";
    if (o->batch_timeout_ms < 0 || o->shutdown_timeout_ms < 0)
        return "durations cannot be negative";
    if (o->executor_threads < 0 || o->executor_threads > 1024)
        return "executor_threads must be from 0 to 1024";
    return NULL;
}

static const char *stage_name(void *arg, uint32_t i, size_t *len)
{
    const struct sl_pipeline *p = arg;
    *len = strlen(p->stages[i]->name);
    return p->stages[i]->name;
}

struct sl_pipeline *sl_pipeline_new(struct event_base *base, const struct sl_pipeline_options *opts,
                                    struct sl_error *err)
{
    struct sl_pipeline *p = calloc(1, sizeof *p);
    if (!p) goto fail_alloc;
    sl_pipeline_options_init(&p->opt);
    if (opts && opts->size >= SL__OPTIONS_SIZE_0) /* fields past opts->size: defaults */
        memcpy(&p->opt, opts, opts->size < sizeof p->opt ? opts->size : sizeof p->opt);
    p->opt.size = sizeof p->opt;
    const char *bad = opts && opts->size < SL__OPTIONS_SIZE_0
                          ? "size below libsluice 0.1's: fill them with sl_pipeline_options_init()"
                          : check_options(&p->opt);
    if (bad) {
        free(p);
        sl_error_set(err, SL_EINVAL, "pipeline options: %s", bad);
        return NULL;
    }
    p->opt.data_dir = sl__strdup(p->opt.data_dir ? p->opt.data_dir : ".");
    if (!p->opt.data_dir) goto fail_dir;
    sl__index_init(&p->names, stage_name, p);
    sl__batch_home_init(&p->batches, p->opt.batch_max_events, p->opt.batch_max_bytes);
    p->batches.completed = sl__source_batch_completed;
    p->batches.acked = sl__sink_acked;
    p->dir_lock = -1;
    p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->wake_fd < 0) goto fail_fd;
    p->base = base;
    if (!base) {
        p->base = event_base_new();
        p->own_base = true;
        if (!p->base) goto fail_base;
    }
    if (sl__sched_init(p)) goto fail_sched;
    p->loop_thread = pthread_self();
    return p;

fail_sched:
fail_base:
fail_fd:
    sl_pipeline_free(p);
    sl_error_set(err, SL_ENOMEM, "cannot create the pipeline: %s", strerror(errno));
    return NULL;
fail_dir:
    free(p);
fail_alloc:
    sl_error_set(err, SL_ENOMEM, "out of memory");
    return NULL;
}

/* Returns a source's batches that were never acknowledged (the run was aborted) to the
 * pool. */
static void free_inflight(struct sl_stage *s)
{
    while (s->inflight_head) {
        struct sl_batch *b = s->inflight_head;
        s->inflight_head = b->next;
        sl__batch_recycle(b);
    }
    s->inflight_tail = NULL;
}

void sl_pipeline_free(struct sl_pipeline *p)
{
    if (!p) return;
    if (!p->done && p->started) {
        p->batches.aborted = true; /* nothing more is acknowledged while tearing down */
        p->done = true;
    }
    p->batches.aborted = p->batches.aborted || !p->done || p->failed;
    for (uint32_t i = 0; i < p->nstages; i++)
        if (p->stages[i]->workers) sl__workers_stop(p->stages[i]);
    for (struct sl__resource *r = p->resources; r; r = r->next) /* what waits: its done() */
        if (r->stop) r->stop(r->ptr);
    sl__executor_stop(p); /* every pending done() runs before any close() */
    for (uint32_t i = 0; i < p->nqueues; i++) sl__queue_free(p->queues[i]);
    for (uint32_t i = 0; i < p->nstages; i++) {
        struct sl_stage *s = p->stages[i];
        if (s->initialised && s->type->close) s->type->close(s);
        s->initialised = false;
        sl__retry_free(s); /* a batch held for its retry may be a source's: before free_inflight */
    }
    for (uint32_t i = 0; i < p->nstages; i++) { /* before the batches their calls read */
        sl__async_free(p->stages[i]);
        sl__slice_free(p->stages[i]);
    }
    for (uint32_t i = 0; i < p->nstages; i++) {
        free_inflight(p->stages[i]);
        sl__stage_free(p->stages[i]);
    }
    while (p->resources) { /* after every close(): stages may use them until then */
        struct sl__resource *r = p->resources;
        p->resources = r->next;
        r->free(r->ptr);
        free(r->key);
        free(r);
    }
    free(p->stages);
    sl__index_free(&p->names);
    free(p->queues);
    for (int i = 0; i < 2; i++)
        if (p->sig_ev[i]) event_free(p->sig_ev[i]);
    if (p->run_ev) event_free(p->run_ev);
    if (p->stop_ev) event_free(p->stop_ev);
    if (p->wake_ev) event_free(p->wake_ev);
    if (p->wake_fd >= 0) close(p->wake_fd);
    if (p->dir_lock >= 0) close(p->dir_lock); /* releases the lock */
    if (p->own_base && p->base) event_base_free(p->base);
    sl__batch_home_free(&p->batches);
    free((char *)p->opt.data_dir);
    free(p);
}

/* ---- stages ---------------------------------------------------------------------------- */

int sl__pipeline_insert(struct sl_pipeline *p, struct sl_stage *s)
{
    if (p->nstages == p->stages_cap) {
        uint32_t cap = p->stages_cap ? p->stages_cap * 2 : 8;
        struct sl_stage **ns = realloc(p->stages, cap * sizeof *ns);
        if (!ns) return SL_ENOMEM;
        p->stages = ns;
        p->stages_cap = cap;
    }
    if (sl__index_find(&p->names, s->name, strlen(s->name)) >= 0) return SL_EEXIST;
    s->index = p->nstages;
    p->stages[p->nstages] = s;
    if (sl__index_add(&p->names, p->nstages)) return SL_ENOMEM;
    p->nstages++;
    return 0;
}

struct sl_stage *sl__stage_new(struct sl_pipeline *p, const char *name,
                               const struct sl_stage_type *type)
{
    struct sl_stage *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->p = p;
    s->type = type;
    s->dl_port = -1;
    pthread_mutex_init(&s->err_lock, NULL);
    s->name = sl__strdup(name);
    s->state = calloc(1, type->state_size ? type->state_size : 1);
    s->ports = calloc(1, sizeof *s->ports);
    if (s->ports) {
        s->nports = 1;
        s->ports[0].name = sl__strdup("");
    }
    if (!s->name || !s->state || !s->ports || !s->ports[0].name) {
        sl__stage_free(s);
        return NULL;
    }
    return s;
}

struct sl_stage *sl_pipeline_find(struct sl_pipeline *p, const char *name)
{
    int64_t i = sl__index_find(&p->names, name, strlen(name));
    return i < 0 ? NULL : p->stages[i];
}

size_t sl_pipeline_stage_count(const struct sl_pipeline *p)
{
    return p->nstages;
}

struct sl_stage *sl_pipeline_stage_at(struct sl_pipeline *p, size_t i)
{
    return i < p->nstages ? p->stages[i] : NULL;
}

struct event_base *sl_pipeline_event_base(struct sl_pipeline *p)
{
    return p->base;
}

bool sl_pipeline_done(const struct sl_pipeline *p)
{
    return p->done;
}

uint64_t sl_pipeline_live_batches(const struct sl_pipeline *p)
{
    return atomic_load(&((struct sl_pipeline *)p)->batches.live);
}

void sl_pipeline_memory(const struct sl_pipeline *p, int64_t *now, int64_t *peak)
{
    struct sl_pipeline *q = (struct sl_pipeline *)p; /* atomics are read, not changed */
    if (now) *now = atomic_load(&q->batches.mem.cur);
    if (peak) *peak = atomic_load(&q->batches.mem.peak);
}

uint64_t sl_pipeline_peak_batches(const struct sl_pipeline *p)
{
    return atomic_load(&((struct sl_pipeline *)p)->batches.peak_live);
}

/* ---- resources ------------------------------------------------------------------------ */

void *sl__resource_find(struct sl_pipeline *p, const char *key)
{
    for (struct sl__resource *r = p->resources; r; r = r->next)
        if (strcmp(r->key, key) == 0) return r->ptr;
    return NULL;
}

int sl__resource_add(struct sl_pipeline *p, const char *key, void *ptr, void (*stop)(void *),
                     void (*free_fn)(void *))
{
    struct sl__resource *r = calloc(1, sizeof *r), **end = &p->resources;
    if (!r || !(r->key = sl__strdup(key))) {
        free(r);
        return SL_ENOMEM;
    }
    r->ptr = ptr;
    r->stop = stop;
    r->free = free_fn;
    while (*end) end = &(*end)->next;
    *end = r;
    return 0;
}

struct sl__resource *sl__resources(struct sl_pipeline *p)
{
    return p->resources;
}

/* ---- edges ----------------------------------------------------------------------------- */

/* Makes room for entry `n` of an array whose capacity is its count rounded up to a power
 * of two (at least 4): it doubles when the count reaches one, so n adds cost O(n). */
static int grow(void **arr, uint32_t n, size_t elem)
{
    if (n % 4 || (n >= 4 && (n & (n - 1)))) return 0; /* room remains */
    size_t cap = n < 4 ? 4 : (size_t)n * 2;
    void *na = realloc(*arr, cap * elem);
    if (!na) return SL_ENOMEM;
    *arr = na;
    return 0;
}

int sl_pipeline_connect(struct sl_pipeline *p, struct sl_stage *from, const char *port,
                        struct sl_stage *to, struct sl_error *err)
{
    if (p->started) return sl_error_set(err, SL_EINVAL, "edges are fixed once the run starts");
    if (from->type->kind == SL_SINK)
        return sl_error_set(err, SL_EINVAL, "'%s' is a sink and has no output", from->name);
    if (to->type->kind == SL_SOURCE)
        return sl_error_set(err, SL_EINVAL, "'%s' is a source and takes no input", to->name);
    int pi = sl_stage_output(from, port);
    if (pi < 0)
        return sl_error_set(err, SL_ENOTFOUND, "stage '%s' has no output '%s'", from->name,
                            port ? port : "");
    struct sl__port *pt = &from->ports[pi];
    int64_t batches = to->conf.buf_batches ? to->conf.buf_batches : p->opt.queue_max_batches;
    uint64_t bytes = to->conf.buf_bytes ? to->conf.buf_bytes : p->opt.queue_max_bytes;
    struct sl_queue *q = sl__queue_new((uint32_t)batches, bytes);
    if (!q || grow((void **)&pt->edges, pt->nedges, sizeof *pt->edges) ||
        grow((void **)&to->inputs, to->ninputs, sizeof *to->inputs) ||
        grow((void **)&p->queues, p->nqueues, sizeof *p->queues)) {
        sl__queue_free(q);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    q->from = from;
    q->to = to;
    q->port = pi;
    pt->edges[pt->nedges++] = q;
    to->inputs[to->ninputs++] = q;
    p->queues[p->nqueues++] = q;
    return 0;
}

/* ---- start ----------------------------------------------------------------------------- */

size_t sl_stage_input_count(const struct sl_stage *stage)
{
    return stage->ninputs;
}

struct sl_stage *sl_stage_input_at(const struct sl_stage *stage, size_t i, const char **port)
{
    if (i >= stage->ninputs) return NULL;
    const struct sl_queue *q = stage->inputs[i];
    if (port) *port = q->from->ports[q->port].name;
    return q->from;
}

/* The stage at the end of the k-th outgoing edge of `s`, counting over all ports, or
 * NULL past the last. */
static struct sl_stage *out_edge(const struct sl_stage *s, uint32_t k)
{
    for (uint32_t i = 0; i < s->nports; i++) {
        if (k < s->ports[i].nedges) return s->ports[i].edges[k]->to;
        k -= s->ports[i].nedges;
    }
    return NULL;
}

/* Iterative depth-first search (a config may have more stages than a stack has
 * frames). mark: 0 unseen, 1 on the current path, 2 done. */
int sl__find_cycle(struct sl_pipeline *p, struct sl_stage **path)
{
    uint32_t n = p->nstages;
    uint8_t *mark = calloc(n ? n : 1, 1);
    uint32_t *cursor = calloc(n ? n : 1, sizeof *cursor);
    struct sl_stage **stack = calloc(n ? n : 1, sizeof *stack);
    int found = 0;
    if (!mark || !cursor || !stack) found = SL_ENOMEM;
    for (uint32_t root = 0; !found && root < n; root++) {
        if (mark[root]) continue;
        uint32_t depth = 0;
        stack[depth++] = p->stages[root];
        mark[root] = 1;
        while (depth && !found) {
            struct sl_stage *s = stack[depth - 1];
            struct sl_stage *t = out_edge(s, cursor[s->index]++);
            if (!t) {
                mark[s->index] = 2;
                depth--;
            } else if (mark[t->index] == 0) {
                mark[t->index] = 1;
                stack[depth++] = t;
            } else if (mark[t->index] == 1) {
                uint32_t from = 0;
                while (stack[from] != t) from++;
                for (uint32_t i = from; i < depth; i++) path[found++] = stack[i];
                path[found++] = t;
            }
        }
    }
    free(mark);
    free(cursor);
    free(stack);
    return found;
}

/* Writes "a -> b -> a" for a cycle of `n` entries into `buf`. */
static void cycle_text(struct sl_stage **path, int n, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? " -> " : "", path[i]->name);
}

static int check_graph(struct sl_pipeline *p, struct sl_error *err)
{
    for (uint32_t i = 0; i < p->nstages; i++) {
        struct sl_stage *s = p->stages[i];
        if (s->type->kind != SL_SOURCE && s->ninputs == 0) {
            if (sl__error_writable(err)) snprintf(err->stage, sizeof err->stage, "%s", s->name);
            return sl_error_set(err, SL_ECONFIG, "stage '%s' has no inputs", s->name);
        }
    }
    struct sl_stage **path = malloc((p->nstages + 1) * sizeof *path);
    if (!path) return sl_error_set(err, SL_ENOMEM, "out of memory");
    int n = sl__find_cycle(p, path);
    char text[400];
    if (n > 0) cycle_text(path, n, text, sizeof text);
    free(path);
    if (n < 0) return sl_error_set(err, SL_ENOMEM, "out of memory");
    if (n > 0) return sl_error_set(err, SL_ECONFIG, "the stages form a cycle: %s", text);
    return 0;
}

/* Two runs on one data_dir would both read from the same checkpoints and deliver
 * everything twice: the first run that keeps state there holds an advisory lock on
 * `<data_dir>/.sluice.lock` (hidden, so that a glob `*` over data_dir does not read it;
 * the holder's pid inside) until the pipeline is freed; a second is refused, naming the
 * holder. Returns 0 or SL_EBUSY / SL_EIO with `err`. */
static int lock_data_dir(struct sl_pipeline *p, struct sl_error *err)
{
    if (!p->dir_wanted || p->dir_lock >= 0) return 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/.sluice.lock", p->opt.data_dir);
    mkdir(p->opt.data_dir, 0755); /* a real failure shows at open */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return sl_error_set(err, SL_EIO, "cannot lock data_dir '%s': %s: %s", p->opt.data_dir, path,
                            strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        close(fd);
        if (e != EWOULDBLOCK)
            return sl_error_set(err, SL_EIO, "cannot lock %s: %s", path, strerror(e));
        return sl_error_set(err, SL_EBUSY,
                            "data_dir '%s' is in use by another run (pid %s, %s): two runs on "
                            "one data_dir would both deliver everything; give each its own",
                            p->opt.data_dir, *pid ? pid : "unknown", path);
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    ssize_t w = ftruncate(fd, 0) == 0 ? pwrite(fd, pid, (size_t)len, 0) : -1;
    (void)w; /* the pid is only informative */
    p->dir_lock = fd;
    return 0;
}

int sl_pipeline_start(struct sl_pipeline *p, struct sl_error *err)
{
    if (p->started) return 0;
    int rc = check_graph(p, err);
    if (rc) return rc;
    sl__link_conditions(p);
    sl__workers_chain(p);
    p->loop_thread = pthread_self();
    p->start_ms = sl__now_ns() / 1000000;
    for (uint32_t i = 0; i < p->nstages; i++) {
        struct sl_stage *s = p->stages[i];
        if ((rc = lock_data_dir(p, err)) != 0) return rc; /* wanted by an init() */
        if (s->type->start && (rc = s->type->start(s, err)) != 0) goto fail_stage;
        s->started = true;
        if ((rc = lock_data_dir(p, err)) != 0) return rc; /* wanted by that start() */
        if (s->nworkers && !s->chain_head && (rc = sl__workers_start(s, err)) != 0) goto fail_stage;
        if (s->type->map_async && (rc = sl__async_start(s)) != 0) {
            sl_error_set(err, rc, "out of memory");
            goto fail_stage;
        }
        continue;
    fail_stage:
        if (sl__error_writable(err)) {
            snprintf(err->stage, sizeof err->stage, "%s", s->name);
            if (!err->code) err->code = rc;
        }
        return rc;
    }
    p->started = true;
    p->running = true;
    for (uint32_t i = 0; i < p->nstages; i++) sl__schedule(p->stages[i]);
    return 0;
}

int sl_pipeline_run(struct sl_pipeline *p, struct sl_error *err)
{
    int rc = p->started ? 0 : sl_pipeline_start(p, err);
    if (rc) return rc;
    p->looping = true;
    sl__sched_arm(p); /* what start() scheduled */
    while (!p->done) {
        if (event_base_loop(p->base, EVLOOP_ONCE) < 0) {
            p->looping = false;
            return sl_error_set(err, SL_EIO, "event loop failed: %s", strerror(errno));
        }
    }
    p->looping = false;
    for (int i = 0; i < 2; i++) {
        if (p->sig_ev[i]) event_free(p->sig_ev[i]);
        p->sig_ev[i] = NULL;
    }
    if (p->failed) {
        sl__error_copy(err, &p->err);
        return p->err.code;
    }
    if (p->batches.aborted) return sl_error_set(err, SL_ESTOPPED, "pipeline aborted");
    return 0;
}
