/* The test HTTP server (helpers_http_client.h). */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "helpers_http_client.h"

#define PAGE    5    /* records a page */
#define MAXREQ  4096 /* requests noted */
#define SLOW_MS 30   /* /item/N answers after this long */

struct t_http {
    int records;             /* ids 1..records */
    int port;                /* where it listens */
    struct event_base *base; /* the server's own loop */
    struct evhttp *http;     /* the server */
    struct event *stop_ev;   /* the stop pipe's read end */
    int stop_pipe[2];        /* written to stop */
    pthread_t thread;        /* runs the loop */
    pthread_mutex_t mu;      /* guards what follows */
    char *paths[MAXREQ];     /* each request's path and query */
    double times[MAXREQ];    /* ... and when it came */
    size_t n;                /* requests noted */
    int open, max_open;      /* requests open now, at most */
    uint16_t ports[MAXREQ];  /* each request's client port (a connection's) */
    struct later *laters;    /* slow answers not sent yet (freed at the stop) */
    int hits[64];            /* per page / item: requests seen (flaky, retry) */
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The ids served now: 1..this (the test's thread may change it). */
static int records_of(struct t_http *h)
{
    return __atomic_load_n(&h->records, __ATOMIC_RELAXED);
}

/* Appends records first..last (1-based, at most `records`) as JSON objects. */
static int add_records(struct t_http *h, struct evbuffer *b, int first, int last, const char *sep)
{
    int n = 0;
    for (int id = first; id <= last && id <= records_of(h); id++, n++)
        evbuffer_add_printf(b, "%s{\"id\":%d}", n ? sep : "", id);
    return n;
}

static int param(struct evhttp_request *req, const char *name, int def)
{
    struct evkeyvalq q;
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    int v = def;
    if (query && !evhttp_parse_query_str(query, &q)) {
        const char *s = evhttp_find_header(&q, name);
        if (s) v = atoi(s);
        evhttp_clear_headers(&q);
    }
    return v;
}

static void reply(struct t_http *h, struct evhttp_request *req, int code, struct evbuffer *body)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, code, code == 200 ? "OK" : "Error", body);
    pthread_mutex_lock(&h->mu);
    h->open--;
    pthread_mutex_unlock(&h->mu);
}

/* The number of requests seen for slot `k` before this one. */
static int hit(struct t_http *h, int k)
{
    pthread_mutex_lock(&h->mu);
    int n = k >= 0 && k < 64 ? h->hits[k]++ : 0;
    pthread_mutex_unlock(&h->mu);
    return n;
}

static void pages(struct t_http *h, struct evhttp_request *req, struct evbuffer *b, bool bad)
{
    int p = param(req, "page", 1);
    evbuffer_add_printf(b, "{\"items\":[");
    add_records(h, b, (p - 1) * PAGE + 1, p * PAGE, ",");
    if (bad && p == 2) return; /* cut short */
    evbuffer_add_printf(b, "]}");
}

static void cursor(struct t_http *h, struct evhttp_request *req, struct evbuffer *b)
{
    int k = param(req, "cursor", 0);
    evbuffer_add_printf(b, "{\"data\":[");
    add_records(h, b, k + 1, k + PAGE, ",");
    if (k + PAGE < records_of(h))
        evbuffer_add_printf(b, "],\"meta\":{\"next_cursor\":\"%d\"}}", k + PAGE);
    else
        evbuffer_add_printf(b, "],\"meta\":{\"next_cursor\":null}}");
}

static void link_page(struct t_http *h, struct evhttp_request *req, struct evbuffer *b)
{
    int p = param(req, "page", 1);
    char link[128];
    evbuffer_add_printf(b, "[");
    add_records(h, b, (p - 1) * PAGE + 1, p * PAGE, ",");
    evbuffer_add_printf(b, "]");
    if (p * PAGE < records_of(h)) {
        snprintf(link, sizeof link, "</link?page=1>; rel=\"first\", </link?page=%d>; rel=\"next\"",
                 p + 1);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Link", link);
    }
}

struct later {
    struct t_http *h;           /* the server */
    struct evhttp_request *req; /* answered when ev fires */
    struct evbuffer *body;      /* with this */
    struct event *ev;           /* the timer */
    struct later *next;         /* the server's list of answers not sent yet */
};

static void answer_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct later *l = arg, **pp = &l->h->laters;
    while (*pp != l) pp = &(*pp)->next;
    *pp = l->next;
    reply(l->h, l->req, 200, l->body);
    evbuffer_free(l->body);
    event_free(l->ev);
    free(l);
}

/* Answers `req` with `b` (its bytes moved) SLOW_MS from now. */
static void answer_slowly(struct t_http *h, struct evhttp_request *req, struct evbuffer *b)
{
    struct later *l = calloc(1, sizeof *l);
    l->h = h, l->req = req, l->body = evbuffer_new();
    evbuffer_add_buffer(l->body, b);
    l->ev = evtimer_new(h->base, answer_later, l);
    l->next = h->laters; /* the server's thread alone touches the list */
    h->laters = l;
    struct timeval tv = {0, SLOW_MS * 1000};
    evtimer_add(l->ev, &tv);
}

static void crawl(struct t_http *h, struct evhttp_request *req, const char *path,
                  struct evbuffer *b, int *code)
{
    int n = atoi(strrchr(path, '/') + 1);
    if (!strncmp(path, "/retry/", 7) && hit(h, n) < 2) {
        *code = 500;
        return;
    }
    evbuffer_add_printf(b, "{\"n\":%d}", n);
    if (strncmp(path, "/item/", 6)) return;
    answer_slowly(h, req, b);
    *code = 0; /* answered later */
}

/* Notes the request and says how many are open. */
static void note(struct t_http *h, struct evhttp_request *req, const char *uri)
{
    char *peer = NULL;
    ev_uint16_t port = 0;
    evhttp_connection_get_peer(evhttp_request_get_connection(req), &peer, &port);
    pthread_mutex_lock(&h->mu);
    if (h->n < MAXREQ) {
        h->ports[h->n] = port;
        h->paths[h->n] = strdup(uri);
        h->times[h->n++] = now_ms();
    }
    if (++h->open > h->max_open) h->max_open = h->open;
    pthread_mutex_unlock(&h->mu);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct t_http *h = arg;
    const char *uri = evhttp_request_get_uri(req);
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    note(h, req, uri);
    struct evbuffer *b = evbuffer_new();
    int code = 200;
    if (!strcmp(path, "/cursor")) {
        cursor(h, req, b);
    } else if (!strcmp(path, "/link")) {
        link_page(h, req, b);
    } else if (!strcmp(path, "/pages") || !strcmp(path, "/bad")) {
        pages(h, req, b, !strcmp(path, "/bad"));
    } else if (!strcmp(path, "/slowpages")) {
        pages(h, req, b, false);
        answer_slowly(h, req, b);
        code = 0;
    } else if (!strcmp(path, "/flaky")) {
        int p = param(req, "page", 1);
        if (p <= 2 && hit(h, 60 + p) == 0) {
            code = p == 1 ? 500 : 429;
            if (p == 2)
                evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
        } else {
            pages(h, req, b, false);
        }
    } else if (!strcmp(path, "/whoami")) {
        struct evkeyvalq *in = evhttp_request_get_input_headers(req);
        const char *auth = evhttp_find_header(in, "Authorization");
        evbuffer_add_printf(b, "{\"auth\":\"%s\",\"ua\":\"%s\",\"host\":\"%s\"}", auth ? auth : "",
                            evhttp_find_header(in, "User-Agent"), evhttp_find_header(in, "Host"));
    } else if (!strcmp(path, "/stall")) {
        code = 0; /* never answered: the client's timeout */
        pthread_mutex_lock(&h->mu);
        h->open--;
        pthread_mutex_unlock(&h->mu);
    } else if (!strcmp(path, "/nd")) {
        evbuffer_add_printf(b, "{\"id\":1}\n{\"id\":2}\r\n\n{\"id\":3}\n{\"id\":4\n{\"id\":5}\n");
    } else if (!strncmp(path, "/item/", 6) || !strncmp(path, "/retry/", 7)) {
        crawl(h, req, path, b, &code);
    } else {
        code = 404;
    }
    if (code) reply(h, req, code, b);
    evbuffer_free(b);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    event_base_loopbreak(arg);
}

static void *serve(void *arg)
{
    struct t_http *h = arg;
    event_base_dispatch(h->base);
    return NULL;
}

struct t_http *t_http_start(int records)
{
    struct t_http *h = calloc(1, sizeof *h);
    cr_assert_not_null(h);
    h->records = records;
    pthread_mutex_init(&h->mu, NULL);
    cr_assert_eq(pipe(h->stop_pipe), 0);
    h->base = event_base_new();
    h->http = evhttp_new(h->base);
    evhttp_set_gencb(h->http, on_request, h);
    struct evhttp_bound_socket *s = evhttp_bind_socket_with_handle(h->http, "127.0.0.1", 0);
    cr_assert_not_null(s, "the test server cannot listen");
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&sin, &len);
    h->port = ntohs(sin.sin_port);
    h->stop_ev = event_new(h->base, h->stop_pipe[0], EV_READ, on_stop, h->base);
    event_add(h->stop_ev, NULL);
    cr_assert_eq(pthread_create(&h->thread, NULL, serve, h), 0);
    return h;
}

void t_http_stop(struct t_http *h)
{
    if (!h) return;
    cr_assert_eq(write(h->stop_pipe[1], "x", 1), 1);
    pthread_join(h->thread, NULL);
    for (struct later *l = h->laters, *next; l; l = next) { /* the client went away */
        next = l->next;
        evbuffer_free(l->body);
        event_free(l->ev);
        free(l);
    }
    evhttp_free(h->http);
    event_free(h->stop_ev);
    event_base_free(h->base);
    close(h->stop_pipe[0]);
    close(h->stop_pipe[1]);
    for (size_t i = 0; i < h->n; i++) free(h->paths[i]);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

void t_http_set_records(struct t_http *h, int records)
{
    __atomic_store_n(&h->records, records, __ATOMIC_RELAXED);
}

int t_http_port(const struct t_http *h)
{
    return h->port;
}

size_t t_http_requests(struct t_http *h, const char *prefix)
{
    size_t n = 0;
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < h->n; i++) n += !prefix || !strncmp(h->paths[i], prefix, strlen(prefix));
    pthread_mutex_unlock(&h->mu);
    return n;
}

double t_http_request_time(struct t_http *h, const char *prefix, size_t k)
{
    double t = -1;
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < h->n && t < 0; i++)
        if (!strncmp(h->paths[i], prefix, strlen(prefix)) && k-- == 0) t = h->times[i];
    pthread_mutex_unlock(&h->mu);
    return t;
}

const char *t_http_request_path(struct t_http *h, size_t i, char *buf, size_t cap)
{
    pthread_mutex_lock(&h->mu);
    snprintf(buf, cap, "%s", i < h->n ? h->paths[i] : "");
    pthread_mutex_unlock(&h->mu);
    return buf;
}

size_t t_http_connections(struct t_http *h)
{
    size_t n = 0;
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < h->n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++) seen = h->ports[j] == h->ports[i];
        n += !seen;
    }
    pthread_mutex_unlock(&h->mu);
    return n;
}

int t_http_max_open(struct t_http *h)
{
    pthread_mutex_lock(&h->mu);
    int n = h->max_open;
    pthread_mutex_unlock(&h->mu);
    return n;
}
