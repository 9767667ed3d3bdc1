/* Source `socket`: messages received over TCP (newline or octet-counted framing) or UDP
 * (a datagram each), one event per message, its payload the message's bytes and its
 * origin the sender's address. See connectors/socket/README.md. sl__socket_init, which
 * the syslog type shares, is here too. */
#include <stddef.h>
#include <string.h>

#include "internal.h"

static void make_counters(struct sl__socket *s)
{
    struct sl_stage *st = s->stage;
    s->c_accepted = sl_stage_counter(st, "accepted", "TCP connections accepted");
    s->c_refused =
        sl_stage_counter(st, "refused", "TCP connections closed at once: max_connections");
    s->c_closed_idle = sl_stage_counter(st, "closed_idle", "TCP connections closed: idle_timeout");
    s->c_oversize = sl_stage_counter(st, "oversize", "messages over max_length, discarded");
    s->c_bad_frame =
        sl_stage_counter(st, "bad_frame", "TCP connections closed for a bad octet-count prefix");
    s->c_udp_dropped =
        sl_stage_counter(st, "udp_dropped", "datagrams the kernel dropped: the source was full");
    s->c_bytes = sl_stage_counter(st, "received_bytes", "bytes received");
    s->c_truncated = sl_stage_counter(
        st, "truncated", "TCP connections that ended inside a message (its bytes dropped)");
    if (s->syslog)
        s->c_parse_errors = sl_stage_counter(st, "parse_errors", "messages that are not syslog");
}

int sl__socket_init(struct sl_stage *stage, const struct sl_config *cfg, bool syslog,
                    struct sl_error *err)
{
    struct sl__socket *s = sl_stage_state(stage);
    s->stage = stage;
    s->syslog = syslog;
    s->fd = -1;
    if (!strchr(s->address, ':'))
        return sl_config_error(sl_config_get(cfg, "address"), err, SL_ECONFIG,
                               "address must be host:port, e.g. 127.0.0.1:5140");
    make_counters(s);
    const char *names[16] = {s->peer_key};
    size_t n = *s->peer_key ? 1 : 0;
    for (size_t i = 0; syslog && i < sl__socket_syslog_nnames; i++)
        names[n++] = sl__socket_syslog_names[i];
    if (syslog && s->on_error == 1) names[n++] = "error"; /* pass: the reason */
    return sl_stage_declare_fields(stage, SL_FIELDS_ONLY, names, n);
}

static int socket_init(struct sl_stage *stage, const struct sl_config *cfg, struct sl_error *err)
{
    return sl__socket_init(stage, cfg, false, err);
}

static const struct sl_option socket_options[] = {
    SL__SOCKET_OPTIONS("newline"),
    {0},
};

const struct sl_stage_type sl_stage_socket = {
    .abi = SL_STAGE_ABI,
    .name = "socket",
    .kind = SL_SOURCE,
    .doc = "messages received over TCP (lines or RFC 6587 octet counting) or UDP",
    .state_size = sizeof(struct sl__socket),
    .options = socket_options,
    .init = socket_init,
    .start = sl__socket_start,
    .poll = sl__socket_poll,
    .flush = sl__socket_flush,
    .close = sl__socket_close,
};
