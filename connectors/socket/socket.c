/* Source `socket`: messages received over TCP (newline or octet-counted framing) or UDP
 * (a datagram each), one event per message, its payload the message's bytes and its
 * origin the sender's address. See connectors/socket/README.md. */
#include <stddef.h>

#include "internal.h"

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
