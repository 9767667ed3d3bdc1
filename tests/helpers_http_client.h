/* A test HTTP server for the http_client source's tests: evhttp on a thread of its own,
 * on 127.0.0.1 and a port the kernel picks, serving records with ids 1..records (five a
 * page) in the shapes APIs page them, and URLs for a crawl. It notes the time and path
 * of every request and how many were open at once.
 *
 *   /cursor?cursor=K   {"data":[{"id":K+1},..],"meta":{"next_cursor":"K+5"}} (null at the end)
 *   /link?page=P       [{"id":..},..] with Link: </link?page=P+1>; rel="next" (a relative
 *                      reference) but on the last page
 *   /pages?page=P      {"items":[..]} from page 1, {"items":[]} after the end
 *   /slowpages?page=P  as /pages, answered after 30 ms
 *   /bad?page=P        as /pages, but page 2 is cut short (not JSON)
 *   /flaky?page=P      as /pages, but the first request of page 1 answers 500 and the
 *                      first of page 2 answers 429 with Retry-After: 1
 *   /whoami            {"auth":"<Authorization>","ua":"<User-Agent>","host":"<Host>"}
 *   /stall             never answered
 *   /nd                ndjson: {"id":1}..{"id":3}, a line that is not JSON, {"id":5}
 *   /item/N            {"n":N} after 30 ms (the crawl's concurrency is measured)
 *   /retry/N           500 for the first two requests of each N, then {"n":N}
 *   /missing           404 */
#ifndef SLUICE_TEST_HELPERS_HTTP_CLIENT_H
#define SLUICE_TEST_HELPERS_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct t_http; /* opaque */

/* Starts a server serving `records` records. Asserts success. */
struct t_http *t_http_start(int records);
/* Publishes ids 1..records from now on (a feed that grows). Any thread. */
void t_http_set_records(struct t_http *h, int records);
/* Stops and frees it (NULL: no-op). */
void t_http_stop(struct t_http *h);
/* Its port. */
int t_http_port(const struct t_http *h);
/* Requests received so far (all paths), and how many of those began with `prefix`. */
size_t t_http_requests(struct t_http *h, const char *prefix);
/* The monotonic time, in ms, of the i-th request whose path begins with `prefix`, or -1. */
double t_http_request_time(struct t_http *h, const char *prefix, size_t i);
/* The path (with query) of the i-th request (copied into `buf`, `cap` bytes); "" when none. */
const char *t_http_request_path(struct t_http *h, size_t i, char *buf, size_t cap);
/* Connections the requests came on (distinct client ports). */
size_t t_http_connections(struct t_http *h);
/* The most requests open at once. */
int t_http_max_open(struct t_http *h);

#endif
