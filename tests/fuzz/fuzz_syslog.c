/* libFuzzer target for the syslog parser and the stream framer of connectors/socket
 * (issue 16). Per input:
 *   1. sl__socket_syslog_parse on the whole input (an exact-size copy, so that ASan sees
 *      any read past the end) in each format: it answers 0 or SL_EPARSE, the error offset
 *      is within the input, every span lies inside it, PRI is -1..191;
 *   2. sl__socket_frame_next over the input in each framing, fed in pieces whose sizes
 *      come from the input: it always makes progress or asks for more, consumes no more
 *      than it was given, and every message lies inside the buffer and within max;
 *   3. a pipeline: the input's lines through parse_syslog (structured data as JSON, and
 *      raw, dead letters on): every event that comes out serialises to valid JSON.
 *
 *   CC=clang meson setup build-fuzz -Dfuzz=true -Db_lundef=false
 *   ninja -C build-fuzz tests/fuzz/fuzz_syslog
 *   build-fuzz/tests/fuzz/fuzz_syslog -max_total_time=60 new-corpus tests/fuzz/corpus/syslog */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/builtins.h>
#include <sluice/json.h>
#include <sluice/registry.h>

#include "../../connectors/socket/internal.h"
#include "fuzz_lines.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char config[] = "sources:\n"
                             "  in: {type: fuzz_lines}\n"
                             "transforms:\n"
                             "  a: {type: parse_syslog, inputs: [in], on_error: dead_letter}\n"
                             "  b: {type: parse_syslog, inputs: [in], structured_data: raw,\n"
                             "      format: rfc5424}\n"
                             "  c: {type: parse_syslog, inputs: [in], format: rfc3164}\n"
                             "sinks:\n"
                             "  out: {type: fuzz_check, inputs: [a, a.dead_letter, b, c]}\n";

static enum sl_poll check_write(struct sl_stage *s, struct sl_batch *b)
{
    (void)s;
    for (size_t i = 0; i < sl_batch_count(b); i++) {
        const struct sl_event *ev = sl_batch_event_const(b, i);
        size_t need = sl_event_write_json(ev, NULL, 0);
        char *buf = malloc(need ? need : 1);
        sl_event_write_json(ev, buf, need);
        if (sl_json_validate(buf, need, NULL) != 0) __builtin_trap(); /* not valid JSON */
        free(buf);
    }
    sl_ack(b);
    return SL_READY;
}

static const struct sl_stage_type check_type = {
    .abi = SL_STAGE_ABI,
    .name = "fuzz_check",
    .kind = SL_SINK,
    .doc = "checks that every event serialises to valid JSON",
    .write = check_write};

static void inside(const struct sl__socket_span *sp, const char *s, size_t n)
{
    if (sp->s && (sp->s < s || sp->s + sp->len > s + n)) __builtin_trap();
}

static void parse_all(const uint8_t *data, size_t size)
{
    char *s = malloc(size ? size : 1);
    memcpy(s, data, size);
    for (int f = 0; f < 3; f++) {
        struct sl__socket_syslog m;
        const char *why;
        size_t at;
        int rc = sl__socket_syslog_parse(s, size, f, &m, &why, &at);
        if (rc && (rc != SL_EPARSE || at > size || !why)) __builtin_trap();
        if (rc) continue;
        if (m.pri < -1 || m.pri > 191) __builtin_trap();
        const struct sl__socket_span *sp[] = {&m.timestamp, &m.host, &m.app, &m.procid,
                                              &m.msgid,     &m.sd,   &m.msg};
        for (size_t k = 0; k < sizeof sp / sizeof sp[0]; k++) inside(sp[k], s, size);
    }
    free(s);
}

/* Feeds the input to the framer in pieces of 1..16 bytes (sizes from the input itself). */
static void frame_all(const uint8_t *data, size_t size, int framing)
{
    struct sl__socket_framer f = {.framing = framing, .max = 1 + (size ? data[0] % 64 : 7)};
    char *buf = malloc(size + 1);
    size_t len = 0, fed = 0;
    while (fed < size || len) {
        size_t piece = 1 + (data[fed % size] & 15);
        if (piece > size - fed) piece = size - fed;
        memcpy(buf + len, data + fed, piece);
        len += piece;
        fed += piece;
        bool eof = fed == size;
        for (;;) {
            const char *msg;
            size_t ml, used;
            int r = sl__socket_frame_next(&f, buf, len, eof, &msg, &ml, &used);
            if (used > len) __builtin_trap();
            if (r == SL__SOCKET_FRAME_MESSAGE && (msg < buf || msg + ml > buf + len || ml > f.max))
                __builtin_trap();
            memmove(buf, buf + used, len - used);
            len -= used;
            if (r == SL__SOCKET_FRAME_BAD) len = fed = size; /* the connection would close */
            if (r == SL__SOCKET_FRAME_NONE || r == SL__SOCKET_FRAME_BAD) break;
            if (!used && r != SL__SOCKET_FRAME_MESSAGE) __builtin_trap(); /* no progress */
        }
        if (eof) break;
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sl_registry *reg;
    static struct sl_config *cfg;
    if (!reg) { /* kept for the process: built once */
        reg = sl_registry_new();
        if (!reg || sl_registry_add_builtins(reg, NULL)) abort();
        sl_registry_add(reg, &lines_type, NULL);
        sl_registry_add(reg, &check_type, NULL);
        cfg = sl_config_parse(config, sizeof config - 1, "fuzz_syslog.yaml", NULL);
        if (!reg || !cfg) abort();
    }
    parse_all(data, size);
    for (int f = 0; f < 3 && size; f++) frame_all(data, size, f);
    fuzz_input = (const char *)data;
    fuzz_input_len = size;
    struct sl_error err = {0};
    struct sl_pipeline *p = sl_pipeline_new(NULL, NULL, &err);
    if (!p || sl_pipeline_load(p, reg, cfg, &err)) abort(); /* the config is ours: valid */
    if (sl_pipeline_run(p, &err) != 0) abort();             /* no stage may fail */
    if (sl_pipeline_live_batches(p) != 0) abort();
    sl_pipeline_free(p);
    return 0;
}
