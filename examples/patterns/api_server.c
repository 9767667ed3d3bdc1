/* A small HTTP API for the http_client examples (crawler.yaml, http_paginator.yaml): it
 * listens on 127.0.0.1 on a port the kernel picks, writes the port to the file named by
 * its argument, and serves until it is killed.
 *
 *   /books?after=K  a cursor-paged list of books, three a page:
 *                   {"books":[{"id":..,"title":".."},..],"next":"<last id>"}, "next": null
 *                   on the last page. Seven books at first; each time a client reaches the
 *                   last page, three more are published (a feed that grows).
 *   /page/N         {"title":"page N"}
 *   /flaky/N        503 the first time (Retry-After: 0), then {"title":"flaky N"}
 *   anything else   404
 *
 * Built against libevent alone; plain evhttp on one loop. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

static const char *const titles[] = {
    "The C Programming Language",
    "Structure and Interpretation of Computer Programs",
    "The Art of Computer Programming",
    "Programming Pearls",
    "The Mythical Man-Month",
    "Unix Network Programming",
    "Advanced Programming in the UNIX Environment",
    "The Practice of Programming",
    "Compilers: Principles, Techniques, and Tools",
    "Operating Systems: Three Easy Pieces",
    "Designing Data-Intensive Applications",
    "Computer Networks",
    "TCP/IP Illustrated",
};

#define PAGE 3

static int published = 7;  /* books visible now */
static int flaky_seen[16]; /* requests of /flaky/N so far */

static int after_param(struct evhttp_request *req)
{
    struct evkeyvalq q;
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    int after = 0;
    if (query && !evhttp_parse_query_str(query, &q)) {
        const char *v = evhttp_find_header(&q, "after");
        if (v) after = atoi(v);
        evhttp_clear_headers(&q);
    }
    return after;
}

/* One page of books after id `after`; the last one publishes three more. */
static void books(struct evhttp_request *req, struct evbuffer *b)
{
    int after = after_param(req), last = after;
    evbuffer_add_printf(b, "{\"books\":[");
    for (int id = after + 1; id <= after + PAGE && id <= published; id++, last++)
        evbuffer_add_printf(b, "%s{\"id\":%d,\"title\":\"%s\"}", id > after + 1 ? "," : "", id,
                            titles[id - 1]);
    if (last < published) {
        evbuffer_add_printf(b, "],\"next\":\"%d\"}", last);
        return;
    }
    evbuffer_add_printf(b, "],\"next\":null}");
    int total = (int)(sizeof titles / sizeof *titles);
    published = published + 3 < total ? published + 3 : total;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    (void)arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    struct evbuffer *b = evbuffer_new();
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    int code = 200, n = 0;
    if (path && !strcmp(path, "/books")) {
        books(req, b);
    } else if (path && sscanf(path, "/page/%d", &n) == 1) {
        evbuffer_add_printf(b, "{\"title\":\"page %d\"}", n);
    } else if (path && sscanf(path, "/flaky/%d", &n) == 1 && n >= 0 && n < 16) {
        if (flaky_seen[n]++ == 0) {
            code = 503;
            evhttp_add_header(out, "Retry-After", "0");
        } else {
            evbuffer_add_printf(b, "{\"title\":\"flaky %d\"}", n);
        }
    } else {
        code = 404;
    }
    evhttp_add_header(out, "Content-Type", "application/json");
    evhttp_send_reply(req, code, code == 200 ? "OK" : "Error", b);
    evbuffer_free(b);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: api_server PORT_FILE\n");
        return 2;
    }
    struct event_base *base = event_base_new();
    struct evhttp *http = base ? evhttp_new(base) : NULL;
    struct evhttp_bound_socket *s =
        http ? evhttp_bind_socket_with_handle(http, "127.0.0.1", 0) : NULL;
    if (!s) {
        fprintf(stderr, "api_server: cannot listen\n");
        return 1;
    }
    evhttp_set_gencb(http, on_request, NULL);
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&sin, &len);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%d\n", ntohs(sin.sin_port)) < 0 || fclose(f) || rename(tmp, argv[1])) {
        fprintf(stderr, "api_server: cannot write %s\n", argv[1]);
        return 1;
    }
    event_base_dispatch(base);
    evhttp_free(http);
    event_base_free(base);
    return 0;
}
