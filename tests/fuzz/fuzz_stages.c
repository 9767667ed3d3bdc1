/* libFuzzer target for the log stages (issue 5): the input's lines run through every
 * parser (parse_json, parse_logfmt, parse_kv, parse_csv, parse_regex with typed groups,
 * multiline), then parse_timestamp, aggregate, dedupe, throttle, remap and route, in one
 * pipeline. Nothing may crash, hang or leak, and every event that reaches the sink must
 * serialise to valid JSON (sl_event_write_json checked with sl_json_validate): whatever
 * a parser indexed or a transform set stays representable.
 *
 *   CC=clang meson setup build-fuzz -Dfuzz=true -Db_lundef=false \
 *       -Db_sanitize=address,undefined
 *   ninja -C build-fuzz tests/fuzz/fuzz_stages
 *   build-fuzz/tests/fuzz/fuzz_stages -max_total_time=180 tests/fuzz/corpus/stages */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/json.h>

#include "cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char config[] =
    "sources:\n"
    "  in: {type: fuzz_lines}\n"
    "transforms:\n"
    "  json: {type: parse_json, inputs: [in], on_error: dead_letter}\n"
    "  logfmt: {type: parse_logfmt, inputs: [in], on_error: dead_letter}\n"
    "  kv: {type: parse_kv, inputs: [in], field_separator: ';', kv_separator: ':',\n"
    "       bare_keys: true}\n"
    "  csv: {type: parse_csv, inputs: [in], columns: [a, b, c], strict: false}\n"
    "  regex:\n"
    "    type: parse_regex\n"
    "    inputs: [in]\n"
    "    patterns: ['^(?<a:int>-?\\d+) (?<b:float>\\S+) (?<c:bool>\\w+)', '(?<w:auto>\\w+)']\n"
    "  ml: {type: multiline, inputs: [in], start_pattern: '^\\S', max_bytes: 300}\n"
    "  ts:\n"
    "    type: parse_timestamp\n"
    "    inputs: [json, logfmt]\n"
    "    field: t\n"
    "    formats: [rfc3339, unix_ms, '%d/%b/%Y:%H:%M:%S %z', '%Y-%m-%d %H:%M:%S.%f']\n"
    "    target: t2\n"
    "    on_error: dead_letter\n"
    "  agg:\n"
    "    type: aggregate\n"
    "    inputs: [ts]\n"
    "    clock: event\n"
    "    window: 1s\n"
    "    group_by: [a, x.y]\n"
    "    metrics: {n: count, s: sum(b), d: distinct(c), m: max(a), v: avg(a * 2)}\n"
    "  dd: {type: dedupe, inputs: [kv], fields: [a], cache_size: 4}\n"
    "  th: {type: throttle, inputs: [csv], rate: 2, key: a, max_keys: 3}\n"
    "  rm:\n"
    "    type: remap\n"
    "    inputs: [regex, ml]\n"
    "    set: {x: 'concat(a, \"-\", b)', n: 'len(w) + a'}\n"
    "    rename: {w: word}\n"
    "    copy: {x: y}\n"
    "    serialize: true\n"
    "  sm: {type: sample, inputs: [kv], ratio: 0.5, key: [a, b]}\n"
    "  rt: {type: route, inputs: [json.dead_letter, ts.dead_letter],\n"
    "       routes: {e: 'exists(error) && message =~ /^{/'}}\n"
    "sinks:\n"
    "  out:\n"
    "    type: fuzz_check\n"
    "    inputs: [agg, dd, th, rm, sm, rt.e, rt._unmatched, logfmt.dead_letter]\n";

/* The current input, split into lines by the source. */
static const char *input;
static size_t input_len;

static enum sl_poll lines_poll(struct sl_stage *s, struct sl_batch **out)
{
    size_t *pos = sl_stage_state(s);
    if (*pos >= input_len) return SL_DONE;
    struct sl_batch *b = sl_batch_new(s);
    for (int k = 0; k < 7 && *pos < input_len; k++) { /* small batches: more boundaries */
        const char *nl = memchr(input + *pos, '\n', input_len - *pos);
        size_t end = nl ? (size_t)(nl - input) : input_len;
        struct sl_event *ev = sl_batch_append(b);
        char *p = sl_batch_alloc(b, end - *pos + 1);
        memcpy(p, input + *pos, end - *pos);
        sl_event_set_payload(ev, p, end - *pos);
        sl_event_set_origin(ev, k % 2 ? "a" : "b", *pos, -1);
        *pos = end + 1;
    }
    *out = b;
    return SL_READY;
}

static const struct sl_stage_type lines_type = {.abi = SL_STAGE_ABI,
                                                .name = "fuzz_lines",
                                                .kind = SL_SOURCE,
                                                .doc = "the fuzz input's lines",
                                                .state_size = sizeof(size_t),
                                                .poll = lines_poll};

static enum sl_poll check_write(struct sl_stage *s, struct sl_batch *b)
{
    (void)s;
    for (size_t i = 0; i < sl_batch_count(b); i++) {
        const struct sl_event *ev = sl_batch_event_const(b, i);
        size_t need = sl_event_write_json(ev, NULL, 0);
        char *buf = malloc(need ? need : 1);
        sl_event_write_json(ev, buf, need);
        if (sl_json_validate(buf, need, NULL) != 0) __builtin_trap(); /* not valid JSON */
        struct sl_value v;
        sl_event_get(ev, "x.y[0]", 6, &v);
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sl_registry *reg;
    static struct sl_config *cfg;
    if (!reg) { /* kept for the process: built once */
        reg = cli_registry(NULL);
        sl_registry_add(reg, &lines_type, NULL);
        sl_registry_add(reg, &check_type, NULL);
        cfg = sl_config_parse(config, sizeof config - 1, "fuzz_stages.yaml", NULL);
        if (!reg || !cfg) abort();
    }
    input = (const char *)data;
    input_len = size;
    struct sl_error err = {0};
    struct sl_pipeline *p = sl_pipeline_new(NULL, NULL, &err);
    if (!p || sl_pipeline_load(p, reg, cfg, &err)) abort(); /* the config is ours: valid */
    if (sl_pipeline_run(p, &err) != 0) abort();             /* no stage may fail */
    if (sl_pipeline_live_batches(p) != 0) abort();
    sl_pipeline_free(p);
    return 0;
}
