/* Test helpers for the socket and syslog sources: a sink that can be held shut, a run
 * that stops when a condition holds (or at a deadline), and plain blocking clients that
 * run on threads of their own while the pipeline runs on the test's thread. */
#ifndef SLUICE_TEST_HELPERS_SOCKET_H
#define SLUICE_TEST_HELPERS_SOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/sluice.h>

/* Sink "t_gate": records the payload and origin of every event (in order); while `shut`,
 * it holds the batches it is given unacknowledged (answering PENDING), which stops the
 * pipeline behind it. t_gate_open() lets them through. */
struct t_gate {
    bool shut;              /* set by the test before the run */
    struct sl_batch **held; /* batches held while shut */
    size_t nheld, held_cap; /* used / allocated */
    char **payloads;        /* NUL-terminated copies */
    char **origins;         /* the events' origins (copies) */
    size_t n, cap;          /* events recorded / allocated */
};
extern const struct sl_stage_type t_gate;

/* Records and acknowledges what the gate holds, and lets everything through from now on.
 * Loop thread. */
void t_gate_open(struct sl_stage *gate);

/* Runs `p` until `done(arg)` (called on the loop thread every 2 ms) answers true, then
 * stops it gracefully; or until `deadline_ms` has passed (then stops it too). Asserts the
 * run succeeded. Returns whether `done` answered true. */
bool t_run_until(struct sl_pipeline *p, bool (*done)(void *arg), void *arg, int64_t deadline_ms);

/* The value of `stage`'s own counter `name` (0 when it has none). Any thread. */
uint64_t t_counter_value(const struct sl_stage *stage, const char *name);

/* A blocking TCP connection to 127.0.0.1:port (asserts), with TCP_NODELAY. */
int t_tcp_connect(int port);

/* Writes all `len` bytes (asserts). */
void t_send_all(int fd, const void *buf, size_t len);

/* A UDP socket connected to 127.0.0.1:port (asserts). */
int t_udp_connect(int port);

/* Monotonic milliseconds. */
int64_t t_now_ms(void);

#endif
