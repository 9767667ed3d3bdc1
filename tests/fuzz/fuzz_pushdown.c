/* libFuzzer target for predicate pushdown (issue 14): the input's lines go through
 * parse_json -> filter twice, once with the filter that hands its condition to parse_json
 * (which then prunes the lines that lack the implied bytes, stages/parse_json.c) and once
 * with a copy of the filter that declares nothing. Both runs must give the same events
 * out (JSON form, byte for byte), the same dead letters, and the same counts (events and
 * bytes in and out, dropped, errors) for both stages — under on_error: drop, but for the
 * malformed lines framed as objects that the filter drops anyway, which reach it instead
 * of counting as parse_json's errors (same_stats_but_moved); otherwise it traps.
 *
 * The first byte chooses the condition (of the list below) and parse_json's on_error
 * (dead_letter or drop); the rest are the lines. The byte search's vector loops
 * (sl__find_needle) must also find what memmem finds, for needles cut from the input, and
 * the one-pass search answer as the general one on every line.
 *
 *   CC=clang meson setup build-fuzz -Dfuzz=true && ninja -C build-fuzz
 *   build-fuzz/tests/fuzz/fuzz_pushdown -max_total_time=180 new-corpus tests/fuzz/corpus/pushdown
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/builtins.h>
#include <sluice/sluice.h>

#include "cli.h"
#include "expr/internal.h"
#include "fuzz_lines.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Conditions that imply bytes of every kind (plain, strict, non-ASCII, alternatives),
 * and one that implies none. */
static const char *const conditions[] = {
    "level == \"error\"",
    "level == \"error\" || level == \"warn\"",
    "level in [\"e\", \"ab\"] && n > 1",
    "a.b == \"x/y\"",
    "msg == \"caf\\u00e9\"",
    "level == \"\"",
    "k == \"q\\\"t\" || level == \"warn\" && exists(x)",
    "n >= 500",
};
#define NCONDS (sizeof conditions / sizeof conditions[0])

/* What the sinks received: [0] out, [1] dead letters; one run's worth. */
static struct text got[2];

static enum sl_poll record_write(struct sl_stage *s, struct sl_batch *b)
{
    struct text *t = &got[sl_stage_name(s)[0] == 'd'];
    for (size_t i = 0; i < sl_batch_count(b); i++) {
        const struct sl_event *ev = sl_batch_event_const(b, i);
        size_t need = sl_event_write_json(ev, NULL, 0);
        char *buf = malloc(need + 1);
        if (!buf) abort();
        sl_event_write_json(ev, buf, need);
        buf[need] = '\n';
        put(t, buf, need + 1);
        free(buf);
    }
    sl_ack(b);
    return SL_READY;
}

static const struct sl_stage_type record_type = {.abi = SL_STAGE_ABI,
                                                 .name = "fuzz_record",
                                                 .kind = SL_SINK,
                                                 .doc = "keeps the JSON of every event",
                                                 .write = record_write};

/* One run's results. */
struct result {
    struct text out, dead;
    struct sl_stage_stats json, filter;
};

static void run(const struct sl_registry *reg, const char *filter_type, unsigned sel,
                struct result *r)
{
    char yaml[1024];
    bool dead = sel / NCONDS % 2 == 0; /* on_error: dead_letter, to a sink; else drop */
    snprintf(yaml, sizeof yaml,
             "sources: {in: {type: fuzz_lines}}\n"
             "transforms:\n"
             "  json: {type: parse_json, inputs: [in], on_error: %s}\n"
             "  f: {type: %s, inputs: [json], condition: '%s'}\n"
             "sinks:\n"
             "  out: {type: fuzz_record, inputs: [f]}\n%s",
             dead ? "dead_letter" : "drop", filter_type, conditions[sel % NCONDS],
             dead ? "  dead: {type: fuzz_record, inputs: [json.dead_letter]}\n" : "");
    struct sl_error err = {0};
    struct sl_config *cfg = sl_config_parse(yaml, strlen(yaml), "fuzz_pushdown.yaml", &err);
    struct sl_pipeline *p = sl_pipeline_new(NULL, NULL, &err);
    memset(got, 0, sizeof got);
    if (!cfg || !p || sl_pipeline_load(p, reg, cfg, &err) || sl_pipeline_run(p, &err)) {
        fprintf(stderr, "fuzz_pushdown: %s\n", err.msg); /* the config is ours: valid */
        abort();
    }
    r->json = (struct sl_stage_stats){.size = sizeof r->json};
    r->filter = (struct sl_stage_stats){.size = sizeof r->filter};
    if (sl_stage_stats(sl_pipeline_find(p, "json"), &r->json) ||
        sl_stage_stats(sl_pipeline_find(p, "f"), &r->filter))
        abort();
    r->out = got[0];
    r->dead = got[1];
    sl_pipeline_free(p);
    sl_config_free(cfg);
}

static bool same_text(const struct text *a, const struct text *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->s, b->s, a->len) == 0);
}

static bool same_stats(const struct sl_stage_stats *a, const struct sl_stage_stats *b)
{
    return a->events_in == b->events_in && a->events_out == b->events_out &&
           a->bytes_in == b->bytes_in && a->bytes_out == b->bytes_out && a->dropped == b->dropped &&
           a->errors == b->errors;
}

/* Under on_error: drop, a malformed line framed as an object ('{' ... '}') that the filter
 * would drop anyway is pruned unchecked (stages/parse_json.c): `moved` lines then go to the
 * filter (which does not pass them on) instead of counting as parse_json's errors and
 * drops; every other count is the same. */
static bool same_stats_but_moved(const struct result *w, const struct result *wo)
{
    if (w->json.events_out < wo->json.events_out) return false;
    uint64_t moved = w->json.events_out - wo->json.events_out;
    struct sl_stage_stats json = w->json, filter = w->filter;
    json.events_out -= moved;
    json.errors += moved;
    json.dropped += moved;
    filter.events_in -= moved;
    if (moved && w->json.bytes_out <= wo->json.bytes_out) return false;
    json.bytes_out = wo->json.bytes_out;   /* the moved lines' bytes, */
    filter.bytes_in = wo->filter.bytes_in; /* whatever their lengths */
    return same_stats(&json, &wo->json) && same_stats(&filter, &wo->filter);
}

/* Every search the CPU has against memmem, for needles cut from the text at a few places
 * (found) and the same with the last byte flipped. */
static void check_find(const char *h, size_t len, unsigned sel)
{
    for (size_t k = 2 + sel % 7; k <= len && k < 48; k += 9) {
        for (size_t at = 0; at + k <= len; at += len / 3 + 1) {
            char n[48];
            memcpy(n, h + at, k);
            for (int flip = 0; flip < 2; flip++, n[k - 1] ^= 0x21) {
                const char *want = memmem(h, len, n, k);
                if (sl__find_needle(h, len, n, k, SL__FIND_BEST) != want) __builtin_trap();
#if defined(__x86_64__)
                if (sl__find_needle(h, len, n, k, SL__FIND_SSE2) != want) __builtin_trap();
#endif
            }
        }
    }
}

/* The one-pass search against the general one, for every condition, on the text and on
 * each of its lines (exact ends: the line is not followed by its newline for the search). */
static void check_onepass(const char *h, size_t len)
{
    static struct sl_expr_prefilter *pf[NCONDS];
    static bool made;
    if (!made) {
        made = true;
        for (size_t i = 0; i < NCONDS; i++) {
            struct sl_error err = {0};
            struct sl_expr *e = sl_expr_compile(conditions[i], strlen(conditions[i]), &err);
            pf[i] = sl_expr_prefilter_new(e);
            sl_expr_free(e);
        }
    }
    for (size_t i = 0; i < NCONDS * 2; i++) {
        if (!pf[i / 2]) continue;
        sl__prefilter_use(pf[i / 2], i % 2 ? SL__FIND_SSE2 : SL__FIND_BEST);
        const struct sl_expr_prefilter *f = pf[i / 2];
        for (const char *line = h, *end = h + len; line <= end;) {
            const char *nl = memchr(line, '\n', (size_t)(end - line));
            size_t n = nl ? (size_t)(nl - line) : (size_t)(end - line);
            if (sl_expr_prefilter_may_match(f, line, n) != sl__prefilter_searched(f, line, n))
                __builtin_trap();
            line += n + 1;
        }
        if (sl_expr_prefilter_may_match(f, h, len) != sl__prefilter_searched(f, h, len))
            __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sl_registry *reg;
    static struct sl_stage_type plain_filter;
    if (!reg) { /* kept for the process: built once */
        plain_filter = sl_stage_filter;
        plain_filter.name = "plain_filter";
        plain_filter.init = NULL; /* declares no condition: no pushdown */
        reg = cli_registry(NULL);
        if (!reg || sl_registry_add(reg, &lines_type, NULL) ||
            sl_registry_add(reg, &record_type, NULL) || sl_registry_add(reg, &plain_filter, NULL))
            abort();
    }
    if (size == 0) return 0;
    fuzz_input = (const char *)data + 1;
    fuzz_input_len = size - 1;
    check_find(fuzz_input, fuzz_input_len, data[0]);
    check_onepass(fuzz_input, fuzz_input_len);
    struct result with, without;
    run(reg, "filter", data[0], &with);
    run(reg, "plain_filter", data[0], &without);
    bool dead = data[0] / NCONDS % 2 == 0;
    if (!same_text(&with.out, &without.out) || !same_text(&with.dead, &without.dead))
        __builtin_trap(); /* the prefilter changed what comes out */
    if (dead ? !same_stats(&with.json, &without.json) || !same_stats(&with.filter, &without.filter)
             : !same_stats_but_moved(&with, &without))
        __builtin_trap(); /* or a count */
    free(with.out.s), free(with.dead.s), free(without.out.s), free(without.dead.s);
    return 0;
}
