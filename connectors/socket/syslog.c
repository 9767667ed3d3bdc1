/* Source `syslog`: the socket source (socket.c) with each message parsed as RFC 5424 or
 * RFC 3164 (syslog_parse.c) into fields: pri, facility, severity, version, timestamp,
 * host, app, procid, msgid, structured_data, message. A message that is not syslog is
 * dropped (counted) or passed on with field "error", by on_error. See
 * connectors/socket/README.md. */
#include <stddef.h>

#include "internal.h"

static int syslog_init(struct sl_stage *stage, const struct sl_config *cfg, struct sl_error *err)
{
    return sl__socket_init(stage, cfg, true, err);
}

static const struct sl_option syslog_options[] = {
    SL__SOCKET_OPTIONS("auto"),
    {"format", SL_OPT_ENUM, "auto", 0, offsetof(struct sl__socket, format),
     "auto (RFC 5424 when a version follows <PRI>, else RFC 3164), rfc5424 or rfc3164",
     SL__SOCKET_SYSLOG_FORMATS},
    {"structured_data", SL_OPT_ENUM, "object", 0, offsetof(struct sl__socket, sd_mode),
     "RFC 5424 structured data as a JSON object {\"id\":{\"param\":\"value\"}} or raw text",
     SL__SOCKET_SD_CHOICES},
    {"on_error", SL_OPT_ENUM, "drop", 0, offsetof(struct sl__socket, on_error),
     "a message that is not syslog: drop it (counted as an error and dropped) or pass it on "
     "unparsed with the reason in field 'error' and the line in 'message'",
     "drop|pass"},
    {0},
};

const struct sl_stage_type sl_stage_syslog = {
    .abi = SL_STAGE_ABI,
    .name = "syslog",
    .kind = SL_SOURCE,
    .doc = "syslog (RFC 5424, RFC 3164) over TCP or UDP, parsed into fields",
    .state_size = sizeof(struct sl__socket),
    .options = syslog_options,
    .init = syslog_init,
    .start = sl__socket_start,
    .poll = sl__socket_poll,
    .flush = sl__socket_flush,
    .close = sl__socket_close,
};
