/* Private to connectors/socket/ (names sl__socket_*): the syslog parser the `syslog`
 * source and the `parse_syslog` transform share, the framing of a byte stream into
 * messages (RFC 6587), and the socket source's state, which the `socket` and `syslog`
 * types share. Built on the public API alone. */
#ifndef SLUICE_CONNECTORS_SOCKET_INTERNAL_H
#define SLUICE_CONNECTORS_SOCKET_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/builtins.h>
#include <sluice/config.h>
#include <sluice/event.h>
#include <sluice/stage.h>

/* ---- the syslog parser (syslog_parse.c) ------------------------------------------------ */

/* Bytes of the message a part spans; `s` NULL: the part is absent or RFC 5424's nil "-". */
struct sl__socket_span {
    const char *s; /* first byte, inside the parsed text */
    size_t len;    /* bytes */
};

/* Which grammar a message is read with. */
enum sl__socket_syslog_format {
    SL__SOCKET_SYSLOG_AUTO = 0, /* RFC 5424 when "<PRI>" is followed by a version and a
                                   space, else RFC 3164 */
    SL__SOCKET_SYSLOG_5424 = 1, /* RFC 5424 only */
    SL__SOCKET_SYSLOG_3164 = 2, /* RFC 3164 (BSD) only */
};

#define SL__SOCKET_SYSLOG_FORMATS "auto|rfc5424|rfc3164"

/* A parsed message: spans into the text given to sl__socket_syslog_parse(). */
struct sl__socket_syslog {
    int pri;                          /* PRI 0..191 (facility * 8 + severity); -1: none
                                         (an RFC 3164 line from a file) */
    int version;                      /* RFC 5424's VERSION (>= 1); 0 for RFC 3164 */
    struct sl__socket_span timestamp; /* as written (RFC 3339, or "Mmm dd hh:mm:ss") */
    struct sl__socket_span host;      /* HOSTNAME */
    struct sl__socket_span app;       /* APP-NAME, or RFC 3164's TAG */
    struct sl__socket_span procid;    /* PROCID, or the pid in TAG[pid] */
    struct sl__socket_span msgid;     /* MSGID (RFC 5424 only) */
    struct sl__socket_span sd;        /* STRUCTURED-DATA as written, brackets included */
    struct sl__socket_span msg;       /* MSG (a UTF-8 BOM removed), possibly empty */
};

/* Parses the `len` bytes at `s` (borrowed; no NUL needed, nothing read past len) as
 * `format` into `out` (borrowed; its spans point into `s`). Never allocates. Returns 0,
 * or SL_EPARSE with `*why` (static text) saying what was wrong and `*at` the byte offset
 * where. */
int sl__socket_syslog_parse(const char *s, size_t len, int format, struct sl__socket_syslog *out,
                            const char **why, size_t *at);

/* How sl__socket_syslog_fields writes a message's structured data. */
enum sl__socket_sd_mode {
    SL__SOCKET_SD_OBJECT = 0, /* a JSON object {"id":{"name":"value",...},...} */
    SL__SOCKET_SD_RAW = 1,    /* the text as written, a string */
};

#define SL__SOCKET_SD_CHOICES "object|raw"

/* Adds the parts of `m` (its spans must live as long as the event's batch) to `ev` as
 * fields: pri, facility, severity (ints; absent without a PRI), version (RFC 5424),
 * timestamp, host, app, procid, msgid, structured_data, message (strings; null for the
 * nil value, absent when RFC 3164 has no such part). Appended when `merge` is false,
 * else set by name. Returns 0, SL_ELIMIT (SL_EVENT_MAX_FIELDS reached) or SL_ENOMEM. */
int sl__socket_syslog_fields(struct sl_event *ev, const struct sl__socket_syslog *m, int sd_mode,
                             bool merge);

/* The names sl__socket_syslog_fields may set, for sl_stage_declare_fields. */
extern const char *const sl__socket_syslog_names[];
extern const size_t sl__socket_syslog_nnames;

/* ---- framing a byte stream (frame.c) --------------------------------------------------- */

/* How messages are delimited in a TCP stream. */
enum sl__socket_framing {
    SL__SOCKET_FRAME_NEWLINE = 0, /* each message ends with '\n' (a '\r' before it goes) */
    SL__SOCKET_FRAME_OCTETS = 1,  /* RFC 6587 octet counting: "LEN SP MSG" */
    SL__SOCKET_FRAME_AUTO = 2,    /* per message: a digit first is octet counting, anything
                                     else a line (what rsyslog accepts) */
};

#define SL__SOCKET_FRAMING_CHOICES "newline|octet_counting|auto"

/* Where one connection's stream stands between frames. */
struct sl__socket_framer {
    int framing;    /* enum sl__socket_framing */
    size_t max;     /* longest message kept, in bytes */
    uint64_t skip;  /* bytes still to discard of an oversize message */
    bool skip_line; /* discarding an oversize line up to its newline */
};

/* What sl__socket_frame_next found. */
enum sl__socket_frame_result {
    SL__SOCKET_FRAME_NONE = 0,     /* no complete message in the buffer: read more */
    SL__SOCKET_FRAME_MESSAGE = 1,  /* msg, len: one message */
    SL__SOCKET_FRAME_OVERSIZE = 2, /* a message longer than `max` began: it is being
                                      discarded (count it once) */
    SL__SOCKET_FRAME_BAD = 3,      /* octet counting: the length is not a number, or not
                                      followed by a space; the stream cannot be resynced
                                      (close the connection) */
};

/* Takes the next message out of the `n` bytes at `buf`; `*used` receives the bytes
 * consumed (the message, its framing, discarded bytes). With `eof`, a last line without
 * its newline is a message. Returns an enum sl__socket_frame_result; `*msg` points into
 * `buf`. Never needs more than `max` + 21 bytes buffered to make progress. */
int sl__socket_frame_next(struct sl__socket_framer *f, const char *buf, size_t n, bool eof,
                          const char **msg, size_t *len, size_t *used);

/* ---- the socket source (source.c, tcp.c, udp.c) ----------------------------------------- */

struct sl__socket_conn;
struct evconnlistener; /* libevent */
struct event;          /* libevent */

/* The state both the `socket` and the `syslog` types fill from their options. */
struct sl__socket {
    /* options */
    int mode;                /* 0 tcp, 1 udp */
    const char *address;     /* host:port to bind */
    int framing;             /* enum sl__socket_framing */
    uint64_t max_length;     /* longest message */
    int64_t max_connections; /* TCP connections at once */
    int64_t idle_timeout_ms; /* TCP: a connection silent this long is closed */
    const char *port_file;   /* write the bound port here once listening (tests) */
    const char *peer_key;    /* field receiving the peer's address ("": none) */
    uint64_t read_size;      /* bytes read per connection per turn */
    uint64_t rcvbuf;         /* SO_RCVBUF of the socket(s); 0: the system's */
    int on_error;            /* syslog: 0 drop, 1 pass (unparsed, with field error) */
    int format;              /* syslog: enum sl__socket_syslog_format */
    int sd_mode;             /* syslog: enum sl__socket_sd_mode */
    /* run state */
    bool syslog;                        /* the `syslog` type: parse each message */
    struct sl_stage *stage;             /* the source */
    int fd;                             /* the listening (TCP) or bound (UDP) socket, or -1 */
    int port;                           /* the bound port */
    struct evconnlistener *listener;    /* TCP: accepts connections */
    struct event *udp_ev;               /* UDP: datagram readiness */
    struct sl_timer *pause;             /* TCP: re-enables accepting after an accept error */
    bool udp_ready;                     /* UDP: datagrams may be waiting (read in poll) */
    char *dgram;                        /* UDP: receive buffer of max_length + 1 bytes */
    struct sl__socket_conn *conns;      /* TCP: open connections (a list) */
    struct sl__socket_conn *ready;      /* TCP: connections with bytes to read or frame (FIFO) */
    struct sl__socket_conn *ready_tail; /* its last */
    struct sl_batch *cur_b;             /* the batch being filled, for cur_peer */
    const void *cur_src;                /* the connection cur_peer was copied for */
    const char *cur_peer;               /* its address, copied into cur_b */
    int64_t nconns;                     /* open connections */
    bool ended;                         /* the source has ended: nothing accepted or read */
    /* counters of the source's own (sl_stage_counter) */
    struct sl_counter *c_accepted, *c_refused, *c_closed_idle, *c_oversize, *c_bad_frame;
    struct sl_counter *c_udp_dropped, *c_bytes, *c_parse_errors, *c_truncated;
    uint64_t udp_drops_seen; /* the kernel's drop count last read (SO_RXQ_OVFL) */
};

/* Binds and starts listening (start()). Returns 0 or an SL_E* code with `err` filled. */
int sl__socket_tcp_start(struct sl__socket *s, struct sl_error *err);
int sl__socket_udp_start(struct sl__socket *s, struct sl_error *err);

/* Fills `b` from the connections (TCP) or datagrams (UDP) that are ready, until the batch
 * is full or nothing is left to read. Returns 0, or SL_ENOMEM. */
int sl__socket_tcp_fill(struct sl__socket *s, struct sl_batch *b);
int sl__socket_udp_fill(struct sl__socket *s, struct sl_batch *b);

/* True while something is ready to read (poll() answers PENDING otherwise). */
bool sl__socket_has_ready(const struct sl__socket *s);

/* Closes every connection and the listening socket (idempotent). */
void sl__socket_tcp_stop(struct sl__socket *s);
void sl__socket_udp_stop(struct sl__socket *s);

/* Appends one message to `b`: its payload a copy of `msg`, its origin `peer` (copied once
 * per batch and `src`, the connection or datagram it came from) at `offset`, parsed into
 * fields when the source is `syslog` (a message that does not parse is dropped or passed
 * on with field "error", by on_error). Returns 0 or SL_ENOMEM. */
int sl__socket_emit(struct sl__socket *s, struct sl_batch *b, const char *msg, size_t len,
                    const void *src, const char *peer, uint64_t offset);

/* Writes "host:port" of `sa` into `buf` (`cap` bytes; "[v6]:port" for IPv6). */
struct sockaddr;
void sl__socket_addr_text(const struct sockaddr *sa, char *buf, size_t cap);

/* Binds a socket of `type` (SOCK_STREAM or SOCK_DGRAM) to `address` ("host:port", port 0
 * for any), non-blocking and close-on-exec, with SO_RCVBUF `rcvbuf` when not 0 (accepted
 * connections inherit it), and reads back the bound port. Returns the
 * descriptor, or -1 with `err` filled. */
int sl__socket_bind(const char *address, int type, uint64_t rcvbuf, int *port,
                    struct sl_error *err);

/* The source types' shared callbacks (source.c). */
int sl__socket_start(struct sl_stage *stage, struct sl_error *err);
enum sl_poll sl__socket_poll(struct sl_stage *stage, struct sl_batch **out);
int sl__socket_flush(struct sl_stage *stage, struct sl_emit *out, bool end);
void sl__socket_close(struct sl_stage *stage);
int sl__socket_init(struct sl_stage *stage, const struct sl_config *cfg, bool syslog,
                    struct sl_error *err);

/* The options both source types take, one declaration for both; `framing` is the default
 * framing's name. */
#define SL__SOCKET_OPTIONS(framing_def)                                                            \
    {"mode",                                                                                       \
     SL_OPT_ENUM,                                                                                  \
     "tcp",                                                                                        \
     0,                                                                                            \
     offsetof(struct sl__socket, mode),                                                            \
     "tcp (a stream per connection) or udp (a message per datagram)",                              \
     "tcp|udp"},                                                                                   \
        {"address",                                                                                \
         SL_OPT_STRING,                                                                            \
         NULL,                                                                                     \
         SL_REQUIRED,                                                                              \
         offsetof(struct sl__socket, address),                                                     \
         "host:port to listen on, e.g. 127.0.0.1:5140, [::1]:514, 0.0.0.0:514 (port 0: any)"},     \
        {"framing",                                                                                \
         SL_OPT_ENUM,                                                                              \
         framing_def,                                                                              \
         0,                                                                                        \
         offsetof(struct sl__socket, framing),                                                     \
         "tcp: newline (a message per line), octet_counting (RFC 6587 \"LEN MSG\") or auto "       \
         "(per message: a digit first is octet counting)",                                         \
         SL__SOCKET_FRAMING_CHOICES},                                                              \
        {"max_length",                                                                             \
         SL_OPT_SIZE,                                                                              \
         "64KiB",                                                                                  \
         0,                                                                                        \
         offsetof(struct sl__socket, max_length),                                                  \
         "longest message; a longer one is discarded (counted in oversize_total and as dropped)",  \
         NULL,                                                                                     \
         "1..64MiB"},                                                                              \
        {"max_connections",                                                                        \
         SL_OPT_INT,                                                                               \
         "1024",                                                                                   \
         0,                                                                                        \
         offsetof(struct sl__socket, max_connections),                                             \
         "tcp: connections at once; one more is closed on accept (refused_total)",                 \
         NULL,                                                                                     \
         "1..1000000"},                                                                            \
        {"idle_timeout",                                                                           \
         SL_OPT_DURATION,                                                                          \
         "5m",                                                                                     \
         0,                                                                                        \
         offsetof(struct sl__socket, idle_timeout_ms),                                             \
         "tcp: a connection that sends nothing this long is closed (0: never)",                    \
         NULL,                                                                                     \
         "0.."},                                                                                   \
        {"read_size",                                                                              \
         SL_OPT_SIZE,                                                                              \
         "64KiB",                                                                                  \
         0,                                                                                        \
         offsetof(struct sl__socket, read_size),                                                   \
         "tcp: bytes read from one connection before the next ready one gets its turn",            \
         NULL,                                                                                     \
         "512..16MiB"},                                                                            \
        {"receive_buffer",                                                                         \
         SL_OPT_SIZE,                                                                              \
         "0",                                                                                      \
         0,                                                                                        \
         offsetof(struct sl__socket, rcvbuf),                                                      \
         "the kernel's receive buffer per socket (SO_RCVBUF; 0: the system's default): what UDP "  \
         "absorbs while the pipeline is full, a TCP connection's window",                          \
         NULL,                                                                                     \
         "0..1GiB"},                                                                               \
        {"peer_key",                                                                               \
         SL_OPT_STRING,                                                                            \
         "",                                                                                       \
         0,                                                                                        \
         offsetof(struct sl__socket, peer_key),                                                    \
         "field receiving the sender's address host:port (\"\": none; it is always the event's "   \
         "origin)"},                                                                               \
    {                                                                                              \
        "port_file", SL_OPT_STRING, NULL, 0, offsetof(struct sl__socket, port_file),               \
            "a file the bound port is written to once listening (for port 0)"                      \
    }

#endif
