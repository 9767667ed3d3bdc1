/* libFuzzer target for the log stages (issue 5): the input's lines run through every
 * parser (parse_json, parse_logfmt, parse_kv, parse_csv, parse_regex with typed groups,
 * multiline), then parse_timestamp, aggregate, dedupe, throttle, remap and route, in one
 * pipeline. Nothing may crash, hang or leak, and every event that reaches the sink must
 * serialise to valid JSON (sl_event_write_json checked with sl_json_validate): whatever
 * a parser indexed or a transform set stays representable.
 *
 * The limits of an event (event limits, issue 1): an input that starts with byte 0x01 is
 * not lines but the choice of a line that random bytes would never make: an object or a
 * key=value line of 65533..65537 fields (names repeated or not), nesting around
 * SL_JSON_MAX_DEPTH, a key and a value of up to 1 MiB, raw bytes (invalid UTF-8), between
 * two good "sentinel" lines. Then both sentinels must come out, no event may hold more
 * than SL_EVENT_MAX_FIELDS fields unless it is a dead letter, and every dead letter must
 * carry its reason in `error` (and, for a line that is not UTF-8, the exact bytes in
 * `message_base64`). No stage may fail: on_error is never `fail` here.
 *
 *   CC=clang meson setup build-fuzz -Dfuzz=true -Db_lundef=false \
 *       -Db_sanitize=address,undefined
 *   ninja -C build-fuzz tests/fuzz/fuzz_stages
 *   build-fuzz/tests/fuzz/fuzz_stages -max_total_time=180 tests/fuzz/corpus/stages */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/json.h>

#include "cli.h"
#include "fuzz_lines.h"
#include "json/internal.h"

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
    "  rj:\n"
    "    type: remap\n"
    "    inputs: [json]\n"
    "    set: {added: 'len(msg)', k1: 'k2'}\n"
    "    rename: {k3: k4}\n"
    "    remove: [k5]\n"
    "    on_error: dead_letter\n"
    "  lf2: {type: parse_logfmt, inputs: [json], field: msg, on_error: dead_letter}\n"
    "  cj: {type: parse_csv, inputs: [json], field: row, columns: [x, y], strict: false,\n"
    "       on_error: dead_letter}\n"
    "sinks:\n"
    "  out:\n"
    "    type: fuzz_check\n"
    "    inputs: [agg, dd, th, rm, sm, rt.e, rt._unmatched, logfmt.dead_letter, lf2, cj]\n"
    "  seen: {type: fuzz_seen, inputs: [rj]}\n"
    "  dead:\n"
    "    type: fuzz_dead\n"
    "    inputs: [json.dead_letter, ts.dead_letter, rj.dead_letter, lf2.dead_letter,\n"
    "             cj.dead_letter]\n";

/* A string field of `ev`, or NULL. */
static const struct sl_value *string_field(const struct sl_event *ev, const char *name,
                                           struct sl_value *v)
{
    return sl_event_get(ev, name, strlen(name), v) == 0 && v->type == SL_STRING ? v : NULL;
}

static enum sl_poll check_write(struct sl_stage *s, struct sl_batch *b)
{
    (void)s;
    for (size_t i = 0; i < sl_batch_count(b); i++) {
        const struct sl_event *ev = sl_batch_event_const(b, i);
        struct sl_value e;
        if (sl_event_field_count(ev) > SL_EVENT_MAX_FIELDS && !string_field(ev, "error", &e))
            __builtin_trap(); /* past the limit, and not a dead letter */
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

/* ---- dead letters and sentinels ------------------------------------------------------ */

static long sentinels; /* events with field "sentinel" that came out of remap `rj` */

static enum sl_poll seen_write(struct sl_stage *s, struct sl_batch *b)
{
    (void)s;
    for (size_t i = 0; i < sl_batch_count(b); i++) {
        struct sl_value v;
        if (sl_event_get(sl_batch_event_const(b, i), "sentinel", 8, &v) == 0) sentinels++;
    }
    sl_ack(b);
    return SL_READY;
}

static const struct sl_stage_type seen_type = {.abi = SL_STAGE_ABI,
                                               .name = "fuzz_seen",
                                               .kind = SL_SINK,
                                               .doc = "counts the sentinel lines",
                                               .write = seen_write};

static int b64(char c)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *at = c ? strchr(abc, c) : NULL;
    return at ? (int)(at - abc) : -1;
}

/* Whether the base64 text `v` decodes to exactly the `len` bytes at `p`. */
static bool base64_is(const struct sl_value *v, const char *p, size_t len)
{
    if (v->len != (len + 2) / 3 * 4) return false;
    size_t o = 0;
    for (size_t i = 0; i < v->len; i += 4) {
        unsigned w = 0;
        for (int k = 0; k < 4; k++)
            w = w << 6 | (v->s[i + k] == '=' ? 0 : (unsigned)b64(v->s[i + k]));
        unsigned char got[3] = {(unsigned char)(w >> 16), (unsigned char)(w >> 8),
                                (unsigned char)w};
        for (int k = 0; k < 3 && o < len; k++, o++)
            if (got[k] != (unsigned char)p[o]) return false;
    }
    return o == len;
}

static enum sl_poll dead_write(struct sl_stage *s, struct sl_batch *b)
{
    (void)s;
    for (size_t i = 0; i < sl_batch_count(b); i++) {
        const struct sl_event *ev = sl_batch_event_const(b, i);
        struct sl_value e, m;
        if (!string_field(ev, "error", &e) || e.len == 0) __builtin_trap(); /* no reason */
        size_t len;
        const char *p = sl_event_payload(ev, &len);
        if (p && !sl__utf8_valid(p, len) &&
            (!string_field(ev, "message_base64", &m) || !base64_is(&m, p, len)))
            __builtin_trap(); /* the line cannot be replayed byte for byte */
    }
    sl_ack(b);
    return SL_READY;
}

static const struct sl_stage_type dead_type = {.abi = SL_STAGE_ABI,
                                               .name = "fuzz_dead",
                                               .kind = SL_SINK,
                                               .doc = "checks every dead letter",
                                               .write = dead_write};

/* ---- lines at the limits ------------------------------------------------------------- */

static void putf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct text *t, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    put(t, buf, (size_t)n);
}

/* The generators' choices, from the input's bytes (0 once they run out). */
struct gen {
    const uint8_t *d;
    size_t n, i;
};

static unsigned take(struct gen *g)
{
    return g->i < g->n ? g->d[g->i++] : 0;
}

#define HEAD "\"t\":\"2024-01-02T03:04:05Z\",\"msg\":\"a=1 b=2\",\"row\":\"1,2\""

/* A JSON object of 65533..65537 members (the limit is 65535), named k<i % mod>: with a
 * small mod, names repeat. */
static void gen_members(struct text *t, struct gen *g)
{
    unsigned n = 65533 + take(g) % 5, mod = take(g) % 2 ? 1 + take(g) * 64 : n;
    put(t, "{" HEAD, 1 + sizeof HEAD - 1);
    for (unsigned i = 3; i < n; i++) {
        putf(t, ",\"k%u\":", i % mod);
        switch ((i + take(g)) & 3) {
        case 0: putf(t, "%u", i); break;
        case 1: put(t, "\"s\\u00e9\"", 10); break;
        case 2: put(t, "[1,{\"a\":2,\"a\":3}]", 17); break;
        default: put(t, "null", 4);
        }
    }
    put(t, "}\n", 2);
}

/* A logfmt line (' ', '=') or a kv line (';', ':') of 65533..65537 pairs. */
static void gen_pairs(struct text *t, struct gen *g)
{
    unsigned n = 65533 + take(g) % 5, mod = take(g) % 2 ? 1 + take(g) : n;
    bool kv = take(g) & 1;
    for (unsigned i = 0; i < n; i++)
        putf(t, "%sk%u%c%u", i ? (kv ? ";" : " ") : "", i % mod, kv ? ':' : '=', i);
    put(t, "\n", 1);
}

/* Containers 510..514 deep (the limit is SL_JSON_MAX_DEPTH, 512), arrays or objects. */
static void gen_nested(struct text *t, struct gen *g)
{
    unsigned depth = SL_JSON_MAX_DEPTH - 2 + take(g) % 5;
    bool objects = take(g) & 1;
    put(t, "{" HEAD ",\"d\":", 1 + sizeof HEAD - 1 + 5);
    for (unsigned i = 1; i < depth; i++) put(t, objects ? "{\"a\":" : "[", objects ? 5 : 1);
    put(t, "0", 1);
    for (unsigned i = 1; i < depth; i++) put(t, objects ? "}" : "]", 1);
    put(t, "}\n", 2);
}

/* A key and a value of up to 1 MiB each, made of the input's bytes (newlines aside):
 * escapes, quotes and invalid UTF-8 included, so the line may or may not be JSON. */
static void gen_long(struct text *t, struct gen *g)
{
    size_t klen = (size_t)take(g) << 12, vlen = (size_t)take(g) << 12, from = g->i;
    put(t, "{" HEAD ",\"", 1 + sizeof HEAD - 1 + 2);
    for (size_t k = 0; k < klen + vlen + 3; k++) {
        char c = g->n > from ? (char)g->d[from + k % (g->n - from)] : 'x';
        if (k == klen) c = '"';
        if (k == klen + 1) c = ':';
        if (k == klen + 2) c = '"';
        put(t, c == '\n' ? " " : &c, 1);
    }
    put(t, "\"}\n", 3);
}

/* The input's next bytes as one line, as they are (invalid UTF-8 for the dead letters). */
static void gen_raw(struct text *t, struct gen *g)
{
    unsigned n = take(g);
    for (unsigned k = 0; k < n && g->i < g->n; k++) {
        char c = (char)g->d[g->i++];
        put(t, c == '\n' ? " " : &c, 1);
    }
    put(t, "\n", 1);
}

#define SENTINEL "{\"sentinel\":1," HEAD "}\n"

/* The lines an input that starts with 0x01 stands for: one generated line (at most two
 * of the cheap ones: a line of 65535 fields costs a thousand raw inputs) between two
 * sentinels. */
static void generate(struct text *t, const uint8_t *data, size_t size)
{
    static void (*const gens[])(struct text *, struct gen *) = {gen_members, gen_pairs, gen_nested,
                                                                gen_long, gen_raw};
    struct gen g = {data + 1, size - 1, 0};
    put(t, SENTINEL, sizeof SENTINEL - 1);
    for (int k = 0; k < 2 && g.i < g.n; k++) {
        unsigned which = take(&g) % 5;
        gens[which](t, &g);
        if (which < 2) break; /* members or pairs: enough for one input */
    }
    put(t, SENTINEL, sizeof SENTINEL - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sl_registry *reg;
    static struct sl_config *cfg;
    if (!reg) { /* kept for the process: built once */
        reg = cli_registry(NULL);
        sl_registry_add(reg, &lines_type, NULL);
        sl_registry_add(reg, &check_type, NULL);
        sl_registry_add(reg, &seen_type, NULL);
        sl_registry_add(reg, &dead_type, NULL);
        cfg = sl_config_parse(config, sizeof config - 1, "fuzz_stages.yaml", NULL);
        if (!reg || !cfg) abort();
    }
    struct text gen = {0};
    bool generated = size > 0 && data[0] == 0x01;
    if (generated) generate(&gen, data, size);
    fuzz_input = generated ? gen.s : (const char *)data;
    fuzz_input_len = generated ? gen.len : size;
    sentinels = 0;
    struct sl_error err = {0};
    struct sl_pipeline *p = sl_pipeline_new(NULL, NULL, &err);
    if (!p || sl_pipeline_load(p, reg, cfg, &err)) abort(); /* the config is ours: valid */
    if (sl_pipeline_run(p, &err) != 0) abort();             /* no stage may fail */
    if (sl_pipeline_live_batches(p) != 0) abort();
    sl_pipeline_free(p);
    if (generated && sentinels != 2) abort(); /* a good line around the others was lost */
    free(gen.s);
    return 0;
}
