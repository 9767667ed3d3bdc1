/* The `http_client` source (client.c): what its files share. client_request.c sends
 * requests on evhttp connections (one per slot: `max_in_flight` slots), paced by the
 * rate limit and retried with backoff; client_page.c turns a page of an API into
 * batches and finds the next page; client_ahead.c asks for page numbers ahead; client_crawl.c turns
 * a crawler's responses into events; client_checkpoint.c tracks the pages in flight and loads and
 * saves the position in the checkpoint database.
 *
 * Threads: everything here runs on the loop thread, except the checkpoint database's
 * work, which runs on an executor thread with its own job. */
#ifndef SLUICE_CONNECTORS_HTTP_CLIENT_H
#define SLUICE_CONNECTORS_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/sluice.h>

struct evhttp_connection;
struct evhttp_request;
struct evdns_base;
struct evbuffer;
struct evkeyvalq;
struct sl_sqlite_pool;

enum sl__hcli_paging {
    HCLI_NONE = 0, /* one request to `uri` (each `interval`) */
    HCLI_CURSOR,   /* a cursor from the response, sent back as a query parameter */
    HCLI_PAGE,     /* page numbers counted up until an empty page */
    HCLI_LINK,     /* the Link header's rel="next" */
};
enum sl__hcli_decode {
    HCLI_JSON = 0, /* a JSON document: records at records_path */
    HCLI_NDJSON,   /* one JSON record a line */
};
enum sl__hcli_on_error {
    HCLI_DROP = 0, /* counted, logged, left out */
    HCLI_EMIT,     /* passed on as an event with field `error` */
    HCLI_FAIL,     /* the run stops */
};

enum sl__hcli_phase {
    HCLI_LOADING = 0, /* the checkpoint is being read */
    HCLI_IDLE,        /* the next poll asks for the next page */
    HCLI_FETCHING,    /* a page request is out, or waits for its retry or the rate */
    HCLI_WAITING,     /* `interval` after the last page */
    HCLI_END,         /* read to the end (interval 0) */
};

/* One request at a time: the pages' single slot, or one of the crawler's. */
struct sl__hcli_slot {
    struct sl__hcli *c;             /* the source */
    struct evhttp_connection *conn; /* to host:port (kept alive between requests) */
    char *host;                     /* what conn goes to (owned) */
    int port;                       /* ... */
    char *url;                      /* the URL being fetched (owned); NULL: the slot is free */
    size_t index;                   /* crawler: the URL's index in the list */
    struct evhttp_request *req;     /* the request out, NULL when none */
    struct sl_backoff backoff;      /* retries of this URL */
    struct sl_timer *timer;         /* retry backoff, or waiting for the rate limit */
    int error;                      /* evhttp's reason for a failure (enum evhttp_request_error) */
    int64_t page;                   /* page numbers: the page fetched */
    uint64_t gen;                   /* page numbers: the read it belongs to (c->gen) */
    struct evbuffer *held;          /* page numbers: a 2xx body waiting for its turn */
    bool failed;                    /* page numbers: a final failure waiting for its turn */
    int fail_status;                /* ... its status (0: none) */
    char fail_why[96];              /* ... and reason */
};

/* A page's batch between its decoding and poll(), or in flight after it: where the read
 * resumes once it is acknowledged. */
struct sl__hcli_pos {
    char *pos;    /* cursor, page number or URL of the page to ask for (owned); NULL: start */
    int64_t skip; /* records of that page already delivered */
};

struct sl__hcli_flight {
    uint64_t seq;           /* sl_batch_cookie of its batch */
    struct sl__hcli_pos at; /* the position once it is acknowledged (owned) */
};

struct sl__hcli_ready {
    struct sl_batch *b;     /* owned until poll() returns it */
    struct sl__hcli_pos at; /* owned */
};

struct sl__hcli {
    /* options (the schema in client.c) */
    const char *uri;                 /* the API (pages), or */
    struct sl_list urls;             /* the crawler's URLs, or */
    const char *urls_file;           /* a file of them, one a line */
    int64_t interval_ms;             /* 0: read to the end once */
    int paging_next;                 /* pagination.next: none | link_header */
    const char *paging_field;        /* pagination.field: the next cursor's path */
    const char *paging_param;        /* pagination.param: cursor or page parameter */
    int64_t page_start;              /* pagination.start: the first page number */
    int64_t max_in_flight;           /* crawler: requests at once */
    double rate_limit;               /* requests per second, 0: no limit */
    int decode;                      /* enum sl__hcli_decode */
    const char *records_path;        /* where the records are in a JSON response */
    const struct sl_config *headers; /* request headers */
    struct sl_list response_headers; /* crawler: the headers each event keeps */
    int64_t timeout_ms;              /* connection inactivity */
    uint64_t max_body;               /* response bodies at most (bytes) */
    int64_t retry_initial_ms;        /* backoff */
    int64_t retry_max_ms;            /* ... */
    int64_t retry_attempts;          /* retries before a final failure (0: no limit) */
    int on_error;                    /* enum sl__hcli_on_error */
    const char *checkpoint;          /* checkpoint database; "": none */

    /* set by init()/start() */
    struct sl_stage *stage;         /* this stage */
    enum sl__hcli_paging paging;    /* from the pagination options */
    bool crawler;                   /* urls or urls_file */
    char **list;                    /* the crawler's URLs (owned, with urls_file) */
    size_t nlist;                   /* ... */
    struct evdns_base *dns;         /* non-blocking name resolution */
    struct sl__hcli_slot *slots;    /* max_in_flight (1 for pages) */
    size_t nslots;                  /* ... */
    char *ckpt_path;                /* the checkpoint database (owned), NULL: none */
    struct sl_sqlite_pool *ckdb;    /* its pool */
    struct sl_counter *n_requests;  /* http_requests: requests sent, retries included */
    struct sl_counter *n_retries;   /* http_retries */
    struct sl_counter *n_failures;  /* http_failures: URLs failed for good */
    struct sl_counter *n_pages;     /* http_pages: 2xx responses of pages */
    struct sl_counter *n_malformed; /* http_malformed: pages and lines not decoded */

    /* reading (loop thread) */
    enum sl__hcli_phase phase;    /* pages: what the source waits for */
    bool ended;                   /* flush(end): SL_DONE answered or the pipeline stops */
    struct sl__hcli_pos at;       /* pages: the position the next request asks for */
    struct sl__hcli_ready *ready; /* pages decoded, waiting for poll() */
    size_t nready, ready_cap;     /* used / allocated */
    struct sl_batch *out;         /* crawler: responses waiting for poll() */
    size_t next_url;              /* crawler: the next URL of the list to start */
    size_t busy;                  /* crawler: slots holding a URL */
    int64_t issue_page;           /* page numbers: the next page to ask for */
    int64_t stop_page;            /* page numbers: none at or past this is asked for */
    uint64_t gen;                 /* page numbers: the read (after the checkpoint, after
                                     each interval); answers of an older one are dropped */
    double next_send_ms;          /* rate limit: no request before this (monotonic ms) */
    struct sl_timer *wait_timer;  /* interval */

    /* acknowledgements and checkpoints (client_checkpoint.c) */
    struct sl__hcli_flight *flights;  /* ring of fl_cap: fl_count from fl_head */
    size_t fl_head, fl_count, fl_cap; /* the ring's first entry, entries, room */
    uint64_t next_seq;                /* the next batch's cookie */
    struct sl__hcli_pos acked;        /* the last acknowledged position */
    bool have_acked;                  /* acked holds something to save */
    bool dirty;                       /* acked changed since the last save began */
    bool saving;                      /* a save request is out */
    int final_tries;                  /* saves failed after the end */
};

/* ---- positions (client_checkpoint.c) ----------------------------------------------------- */

void sl__hcli_pos_free(struct sl__hcli_pos *p);
/* Copies `from` into `to` (freed first). Returns 0 or SL_ENOMEM. */
int sl__hcli_pos_copy(struct sl__hcli_pos *to, const struct sl__hcli_pos *from);

/* ---- requests (client_request.c) --------------------------------------------------------- */

/* Prepares the slots and the resolver. Returns 0 or an SL_E* code with `err`. */
int sl__hcli_slots_start(struct sl__hcli *c, struct sl_error *err);
/* Frees the slots (their requests are dropped unanswered) and the resolver. */
void sl__hcli_slots_free(struct sl__hcli *c);
/* Starts fetching `url` (takes it, even on failure) on `slot`, as soon as the rate
 * limit allows. Returns 0 or SL_ENOMEM. Never calls back synchronously. */
int sl__hcli_fetch(struct sl__hcli_slot *slot, char *url, size_t index);
/* A free slot, or NULL. */
struct sl__hcli_slot *sl__hcli_free_slot(struct sl__hcli *c);
/* The slot is done with its URL (success or final failure): frees the URL. */
void sl__hcli_slot_release(struct sl__hcli_slot *slot);
/* A response's headers by name (case-insensitive), NULL when absent. */
const char *sl__hcli_header(struct evhttp_request *req, const char *name);

/* What the request layer calls when a URL is through: a 2xx response (`req`), or a final
 * failure (`req` the response when there was one, else NULL; `why` says what failed).
 * On the loop, inside evhttp's callback: they must not start requests themselves. */
void sl__hcli_page_done(struct sl__hcli_slot *slot, struct evhttp_request *req);
void sl__hcli_page_failed(struct sl__hcli_slot *slot, int status, const char *why);
void sl__hcli_crawl_done(struct sl__hcli_slot *slot, struct evhttp_request *req);
void sl__hcli_crawl_failed(struct sl__hcli_slot *slot, int status, const char *why);

/* ---- pages (client_page.c) --------------------------------------------------------------- */

/* The URL of the page at c->at (owned), NULL when out of memory. */
char *sl__hcli_page_url(struct sl__hcli *c);
/* Queues `b` (taken) for poll() with position `at` (copied). Returns 0 or SL_ENOMEM. */
int sl__hcli_ready_push(struct sl__hcli *c, struct sl_batch *b, const struct sl__hcli_pos *at);

/* Decodes one page: its records (`body`, borrowed) into batches for poll(), the position
 * moved past them; `headers` (borrowed; NULL but for link_header) and `url` say where the
 * next page is (`*has_next`). Returns 0, SL_ENOMEM, or SL_EPARSE (on_error: fail, said). */
int sl__hcli_page_decode(struct sl__hcli *c, const char *url, const struct evkeyvalq *headers,
                         const char *body, size_t len, bool *has_next);
/* After a page decoded with `rc`: out of memory fails the run; else the next page,
 * `interval`, or the end (sl__hcli_page_over). */
void sl__hcli_page_end(struct sl__hcli *c, int rc, bool has_next);
void sl__hcli_page_over(struct sl__hcli *c, bool has_next);
/* A page of `url` failed for good: counted, then by on_error (emit, fail, drop); the read
 * ends there (or waits for `interval`). */
void sl__hcli_page_fail(struct sl__hcli *c, const char *url, int status, const char *why);

/* ---- page numbers read ahead (client_ahead.c) -------------------------------------------- */

/* The read begins (after the checkpoint's load, after each `interval`): phase IDLE, a new
 * generation, page numbers from the position on. Wakes the stage. */
void sl__hcli_pages_begin(struct sl__hcli *c);
/* Page numbers: asks for the pages not yet asked for, up to max_in_flight ahead of the
 * position. Returns SL_PENDING, or SL_ERROR (out of memory, said). */
enum sl_poll sl__hcli_ahead_poll(struct sl__hcli *c);
/* Page numbers: a page's answer, kept until the pages before it are decoded. */
void sl__hcli_ahead_done(struct sl__hcli_slot *slot, struct evhttp_request *req);
void sl__hcli_ahead_failed(struct sl__hcli_slot *slot, int status, const char *why);

/* ---- crawler (client_crawl.c) ------------------------------------------------------------ */

/* Reads urls_file into c->list. Returns 0 or an SL_E* code with `err`. */
int sl__hcli_crawl_load(struct sl__hcli *c, struct sl_error *err);
/* The crawler's poll: starts URLs on free slots, returns the responses so far. */
enum sl_poll sl__hcli_crawl_poll(struct sl__hcli *c, struct sl_batch **out);

/* ---- acknowledgements and checkpoints (client_checkpoint.c) ------------------------------ */

/* Records `b` (returned by poll) as in flight with position `at` (taken); sets its
 * cookie. Returns 0 or SL_ENOMEM. */
int sl__hcli_track(struct sl__hcli *c, struct sl_batch *b, struct sl__hcli_pos *at);
/* A page that gave no new record moved the position to `at` (copied): it takes effect
 * with the last page in flight, or now. Returns 0 or SL_ENOMEM. */
int sl__hcli_advance(struct sl__hcli *c, const struct sl__hcli_pos *at);
/* The type's ack hook. */
void sl__hcli_ack(struct sl_stage *stage, struct sl_batch *b);
/* Reads the checkpoint into c->at, then lets the pages begin. Returns 0 or SL_ENOMEM. */
int sl__hcli_load(struct sl__hcli *c);
/* Starts a save of c->acked when it changed and none is out. */
void sl__hcli_save(struct sl__hcli *c);
/* Frees the flights. */
void sl__hcli_flights_free(struct sl__hcli *c);

#endif
