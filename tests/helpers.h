/* Test helpers: stage types that count, stall and fail, and small utilities. They live
 * here, in the tests, and register like any user's stage would. */
#ifndef SLUICE_TEST_HELPERS_H
#define SLUICE_TEST_HELPERS_H

#include <stdbool.h>
#include <stdint.h>

#include <sluice/sluice.h>

/* Source "t_counter": emits events whose payload is the decimal sequence number
 * 0..count-1 (count 0: forever), `batch` events per batch, with field "n" (int).
 * Options: count, batch, pending_every (answer PENDING and wake itself every N polls,
 * from a timer), wake_thread (true: a helper thread produces the numbers and wakes the
 * stage with sl_stage_wake). */
struct t_counter {
    int64_t count;            /* option: events to produce, 0 = forever */
    int64_t batch;            /* option: events per batch */
    int64_t pending_every;    /* option: PENDING every N polls (0: never) */
    bool wake_thread;         /* option: produce from another thread */
    int64_t next;             /* next number */
    int64_t polls;            /* poll() calls */
    int64_t polls_while_full; /* poll() calls while an output queue was full */
    int64_t acked_events;     /* events acknowledged back */
    int64_t acked_batches;    /* ack() calls */
    int64_t last_ack_first;   /* first number of the last acked batch (order check) */
    bool ack_out_of_order;    /* an ack arrived out of production order */
    void (*on_ack)(struct sl_stage *, struct sl_batch *); /* test hook */
    struct sl_timer *timer;                               /* pending_every */
    void *thread_state;                                   /* wake_thread */
};
extern const struct sl_stage_type t_counter;

/* Sink "t_collect": records every payload number it receives, in order. Options:
 * delay_ms (ack each batch after this long, from a timer, and answer PENDING meanwhile),
 * fail_at (fail when this number arrives; -1: never), stop_after (call raise(SIGTERM)
 * after this many events; 0: never). */
struct t_collect {
    int64_t delay_ms;        /* option */
    int64_t fail_at;         /* option */
    int64_t stop_after;      /* option */
    int64_t *seen;           /* numbers received, in order */
    char **origins;          /* the origin (source name) of each, same order */
    size_t nseen, cap;       /* used / allocated */
    int64_t batches;         /* write() calls */
    int64_t acked;           /* events acknowledged */
    int64_t max_outstanding; /* most batches held unacked at once */
    int64_t outstanding;     /* batches held unacked now */
    bool flushed;            /* flush(end) was called */
    struct sl_batch *held;   /* the batch waiting for the delay timer */
    struct sl_timer *timer;  /* delay */
    bool raised;             /* SIGTERM sent */
};
extern const struct sl_stage_type t_collect;

/* Transform "t_pass": passes every event through unchanged; flagged SL_STAGE_PARALLEL.
 * Option spin: busy-work iterations per event (CPU-heavy for the workers tests);
 * fail_at: fail on this number (-1 never); dup: emit each event this many times. */
struct t_pass {
    int64_t spin;    /* option */
    int64_t fail_at; /* option */
    int64_t dup;     /* option */
};
extern const struct sl_stage_type t_pass;

/* Filter "t_even": keeps events whose number is even; flagged SL_STAGE_PARALLEL. */
extern const struct sl_stage_type t_even;

/* Transform "t_window": holds events and emits one event per `size` inputs whose
 * payload is the sum of their numbers (holding their batches with sl_emit_hold); what
 * is left is emitted by flush at the end. Odd numbers also go to output "odd". */
struct t_window {
    int64_t size;           /* option */
    int64_t sum;            /* running sum */
    int64_t n;              /* events in the running window */
    struct sl_batch **held; /* input batches of the running window */
    size_t nheld, cap;      /* used / allocated */
    int odd_port;           /* output "odd" */
};
extern const struct sl_stage_type t_window;

/* A registry with every helper type. Owned by the caller (sl_registry_free). */
struct sl_registry *t_registry(void);

/* Parses YAML `text` (a literal in the test) into a config; aborts the test on error. */
struct sl_config *t_config(const char *text);

/* Adds stage `name` of `type` with YAML options `yaml` (may be NULL); asserts success. */
struct sl_stage *t_add(struct sl_pipeline *p, const char *name, const struct sl_stage_type *type,
                       const char *yaml);

/* A pipeline holding one t_counter source, and an empty batch of that source to put
 * events in (t_fx.b): what tests of events stand on, as a suite's .init and .fini;
 * t_fx_teardown checks that no batch outlives the test. */
struct t_batch_fixture {
    struct sl_pipeline *p;
    struct sl_batch *b;
};
extern struct t_batch_fixture t_fx;
void t_fx_setup(void);
void t_fx_teardown(void);

/* Connects from -> to on the default output; asserts success. */
void t_connect(struct sl_pipeline *p, struct sl_stage *from, struct sl_stage *to);

/* Reads the number in an event's payload. */
int64_t t_number(const struct sl_event *ev);

/* Resident set size of this process now and at its peak, in KiB. */
long t_rss_kib(void);
long t_peak_rss_kib(void);

#endif
