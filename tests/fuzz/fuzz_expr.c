/* libFuzzer target for the expression language: compiles arbitrary bytes as an
 * expression and as a template; whatever compiles is evaluated (as a condition and as a
 * value) and rendered on a few fixed events, one of them larger than the scratch area.
 * Build: CC=clang meson setup build-fuzz -Dfuzz=true -Db_lundef=false
 * Run:   build-fuzz/tests/fuzz/fuzz_expr -dict=tests/fuzz/expr.dict tests/fuzz/corpus/expr */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

static enum sl_poll no_poll(struct sl_stage *s, struct sl_batch **out)
{
    (void)s, (void)out;
    return SL_DONE;
}

static const struct sl_stage_type fuzz_source = {
    .abi = SL_STAGE_ABI,
    .name = "fuzz_source",
    .kind = SL_SOURCE,
    .doc = "makes batches for the fuzzer",
    .poll = no_poll,
};

static struct sl_stage *source(void)
{
    static struct sl_stage *src;
    if (src) return src;
    struct sl_pipeline *p = sl_pipeline_new(NULL, NULL, NULL);
    if (!p) abort();
    src = sl_pipeline_add(p, "src", &fuzz_source, NULL, NULL);
    if (!src) abort();
    return src; /* lives as long as the process */
}

static void add(struct sl_event *ev, const char *name, struct sl_value v)
{
    sl_event_add_field(ev, name, strlen(name), &v);
}

static struct sl_value text(int type, const char *s, uint8_t flags)
{
    struct sl_value v = {.type = (uint8_t)type, .flags = flags, .s = s, .len = (uint32_t)strlen(s)};
    return v;
}

static void fill(struct sl_batch *b)
{
    static char big[9000];
    if (!big[0]) memset(big, 'x', sizeof big - 1);
    struct sl_event *ev = sl_batch_append(b);
    add(ev, "level", text(SL_STRING, "error", 0));
    add(ev, "latency_ms", text(SL_INT, "750", SL_VALUE_TEXT));
    add(ev, "ratio", text(SL_FLOAT, "0.25", SL_VALUE_TEXT));
    add(ev, "badnum", text(SL_INT, "1x", SL_VALUE_TEXT));
    add(ev, "msg", text(SL_STRING, "a\\\"b\\n\\u00e9\\ud83d\\ude00\\ud800\\q\\", SL_VALUE_ESCAPED));
    add(ev, "http", text(SL_JSON, "{\"status\": 404, \"h\": {\"a-b\": [1, \"x\"]}}", 0));
    add(ev, "tags", text(SL_JSON, "[\"a\", {\"b\": null}, 3]", 0));
    add(ev, "ok", sl_value_bool(true));
    add(ev, "nothing", sl_value_null());
    add(ev, "min", sl_value_int(INT64_MIN));
    add(ev, "inf", sl_value_float(1e308 * 10));
    add(ev, "big", text(SL_STRING, big, 0));
    add(ev, "bigesc", text(SL_STRING, big, SL_VALUE_ESCAPED));
    sl_batch_append(b); /* an event with no fields at all */
}

volatile unsigned char fuzz_sink; /* keeps touch() from being optimised away */

/* Reads every byte of a value's span, so that ASan sees a span that points nowhere. */
static void touch(const struct sl_value *v)
{
    if (v->type != SL_STRING && v->type != SL_JSON && !(v->flags & SL_VALUE_TEXT)) return;
    for (uint32_t i = 0; i < v->len; i++) fuzz_sink ^= (unsigned char)v->s[i];
}

static void run_expr(const char *src, size_t len, struct sl_batch *b)
{
    struct sl_error err = {0};
    struct sl_expr *x = sl_expr_compile(src, len, &err);
    if (!x) {
        if (err.code == 0 || err.line < 1 || err.col < 1 || !err.msg[0]) abort();
        return;
    }
    for (size_t i = 0; i < sl_batch_count(b); i++) {
        struct sl_event *ev = sl_batch_event(b, i);
        struct sl_value v;
        (void)sl_expr_test(x, ev);
        if (sl_expr_eval(x, ev, &v) == 0) touch(&v);
    }
    sl_expr_free(x);
}

static void run_template(const char *src, size_t len, struct sl_batch *b)
{
    struct sl_template *t = sl_template_compile(src, len, NULL);
    if (!t) return;
    char small[16], large[4096];
    for (size_t i = 0; i < sl_batch_count(b); i++) {
        struct sl_event *ev = sl_batch_event(b, i);
        /* snprintf's contract: the same length whatever the room, a prefix that fits
         * and a NUL after it (the text itself may hold NULs: compare bytes) */
        size_t need = sl_template_render(t, ev, small, sizeof small);
        size_t need2 = sl_template_render(t, ev, large, sizeof large);
        size_t fit = need < sizeof small ? need : sizeof small - 1;
        if (need != need2 || small[fit] != '\0') abort();
        if (need < sizeof large && memcmp(small, large, fit) != 0) abort();
    }
    if (sl_template_is_constant(t)) (void)sl_template_render(t, NULL, large, sizeof large);
    sl_template_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sl_batch *b = sl_batch_new(source());
    if (!b) abort();
    fill(b);
    run_expr((const char *)data, size, b);
    run_template((const char *)data, size, b);
    sl_batch_unref(b);
    return 0;
}
