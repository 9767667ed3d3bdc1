/* The http sink's test server (helpers_http_sink.h). */
#include "helpers_http_sink.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

struct t_hsrv {
    struct event_base *base;
    struct evhttp *http;
    struct event *tick; /* checks `stop` every 10 ms */
    pthread_t thread;
    atomic_bool stop;
    int port;
    pthread_mutex_t mu; /* guards what follows */
    struct t_hreq *reqs;
    size_t n, cap, ok;
    int fail_n, fail_status, retry_after, delay_ms;
    int script[16], nscript, next_script;
    int current, max_current;
};

/* An answer waiting for its delay. */
struct later {
    struct t_hsrv *s;
    struct evhttp_request *req;
    int status;
    int retry_after;
};

int64_t t_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void answer(struct t_hsrv *s, struct evhttp_request *req, int status, int retry_after)
{
    if (retry_after >= 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", retry_after);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", v);
    }
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "status %d", status);
    evhttp_send_reply(req, status, status < 300 ? "OK" : "Test Failure", b);
    evbuffer_free(b);
    pthread_mutex_lock(&s->mu);
    s->current--;
    pthread_mutex_unlock(&s->mu);
}

static void later_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct later *l = arg;
    answer(l->s, l->req, l->status, l->retry_after);
    free(l);
}

static void copy_header(struct evhttp_request *req, const char *name, char *out, size_t cap)
{
    const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), name);
    snprintf(out, cap, "%s", v ? v : "");
}

/* Records `req`; returns the status to answer (0: none) and the Retry-After. */
static int record(struct t_hsrv *s, struct evhttp_request *req, int *retry_after)
{
    struct t_hreq r = {.at_ms = t_mono_ms()};
    snprintf(r.method, sizeof r.method, "%s",
             evhttp_request_get_command(req) == EVHTTP_REQ_PUT ? "PUT" : "POST");
    snprintf(r.path, sizeof r.path, "%s", evhttp_request_get_uri(req));
    copy_header(req, "Content-Encoding", r.encoding, sizeof r.encoding);
    copy_header(req, "Content-Type", r.ctype, sizeof r.ctype);
    copy_header(req, "X-Sluice-Error", r.xerror, sizeof r.xerror);
    copy_header(req, "X-Sluice-Uri", r.xuri, sizeof r.xuri);
    char *peer;
    ev_uint16_t pport = 0;
    evhttp_connection_get_peer(evhttp_request_get_connection(req), &peer, &pport);
    r.peer_port = pport;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    r.len = evbuffer_get_length(in);
    r.body = malloc(r.len + 1);
    cr_assert_not_null(r.body);
    evbuffer_copyout(in, r.body, r.len);
    r.body[r.len] = '\0';
    pthread_mutex_lock(&s->mu);
    r.status = 200;
    *retry_after = -1;
    if (s->next_script < s->nscript) {
        r.status = s->script[s->next_script++];
    } else if (s->fail_n > 0) {
        s->fail_n--;
        r.status = s->fail_status;
        *retry_after = s->retry_after;
    }
    if (r.status >= 200 && r.status < 300) s->ok++;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->reqs = realloc(s->reqs, s->cap * sizeof *s->reqs);
        cr_assert_not_null(s->reqs);
    }
    s->reqs[s->n++] = r;
    if (++s->current > s->max_current) s->max_current = s->current;
    pthread_mutex_unlock(&s->mu);
    return r.status;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct t_hsrv *s = arg;
    int retry_after;
    int status = record(s, req, &retry_after);
    if (status == 0) return; /* stalled: the client's timeout ends it */
    pthread_mutex_lock(&s->mu);
    int delay = s->delay_ms;
    pthread_mutex_unlock(&s->mu);
    if (delay <= 0) {
        answer(s, req, status, retry_after);
        return;
    }
    struct later *l = malloc(sizeof *l);
    cr_assert_not_null(l);
    *l = (struct later){s, req, status, retry_after};
    struct timeval tv = {.tv_sec = delay / 1000, .tv_usec = delay % 1000 * 1000};
    event_base_once(s->base, -1, EV_TIMEOUT, later_cb, l, &tv);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct t_hsrv *s = arg;
    if (atomic_load(&s->stop)) event_base_loopbreak(s->base);
}

static void *run(void *arg)
{
    struct t_hsrv *s = arg;
    event_base_dispatch(s->base);
    return NULL;
}

struct t_hsrv *t_hsrv_start(void)
{
    struct t_hsrv *s = calloc(1, sizeof *s);
    cr_assert_not_null(s);
    pthread_mutex_init(&s->mu, NULL);
    s->base = event_base_new();
    s->http = evhttp_new(s->base);
    cr_assert(s->base && s->http);
    evhttp_set_gencb(s->http, on_request, s);
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_GET);
    evhttp_set_max_body_size(s->http, 64 * 1024 * 1024);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(s->http, "127.0.0.1", 0);
    cr_assert_not_null(bs);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl);
    s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    struct timeval tv = {0, 10000};
    s->tick = event_new(s->base, -1, EV_PERSIST, tick, s);
    event_add(s->tick, &tv);
    cr_assert_eq(pthread_create(&s->thread, NULL, run, s), 0);
    return s;
}

int t_hsrv_port(struct t_hsrv *s)
{
    return s->port;
}

void t_hsrv_fail(struct t_hsrv *s, int n, int status, int retry_after)
{
    pthread_mutex_lock(&s->mu);
    s->fail_n = n, s->fail_status = status, s->retry_after = retry_after;
    pthread_mutex_unlock(&s->mu);
}

void t_hsrv_script(struct t_hsrv *s, const int *statuses, int n)
{
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < n && i < 16; i++) s->script[i] = statuses[i];
    s->nscript = n < 16 ? n : 16;
    s->next_script = 0;
    pthread_mutex_unlock(&s->mu);
}

void t_hsrv_delay(struct t_hsrv *s, int ms)
{
    pthread_mutex_lock(&s->mu);
    s->delay_ms = ms;
    pthread_mutex_unlock(&s->mu);
}

size_t t_hsrv_count(struct t_hsrv *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

size_t t_hsrv_ok(struct t_hsrv *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->ok;
    pthread_mutex_unlock(&s->mu);
    return n;
}

int t_hsrv_max_concurrent(struct t_hsrv *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->max_current;
    pthread_mutex_unlock(&s->mu);
    return n;
}

int t_hsrv_req(struct t_hsrv *s, size_t i, struct t_hreq *out)
{
    pthread_mutex_lock(&s->mu);
    int rc = -1;
    if (i < s->n) {
        *out = s->reqs[i];
        out->body = malloc(out->len + 1);
        memcpy(out->body, s->reqs[i].body, out->len + 1);
        rc = 0;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void t_hreq_clear(struct t_hreq *r)
{
    free(r->body);
    r->body = NULL;
}

void t_hsrv_stop(struct t_hsrv *s)
{
    if (!s) return;
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    event_free(s->tick);
    evhttp_free(s->http);
    event_base_free(s->base);
    for (size_t i = 0; i < s->n; i++) free(s->reqs[i].body);
    free(s->reqs);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
