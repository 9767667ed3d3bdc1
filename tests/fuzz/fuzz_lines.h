/* Shared by the libFuzzer targets that run pipelines over the input's lines
 * (fuzz_stages.c, fuzz_pushdown.c): a growing text buffer, and source type "fuzz_lines",
 * which hands out the lines of fuzz_input (without their '\n') in small batches, so that
 * batch boundaries fall everywhere. Header-only: each target is one translation unit. */
#ifndef SLUICE_FUZZ_LINES_H
#define SLUICE_FUZZ_LINES_H

#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

/* Bytes appended with fuzz_put (owned: free s). */
struct text {
    char *s;         /* the bytes */
    size_t len, cap; /* bytes used / allocated */
};

static inline void put(struct text *t, const char *s, size_t n)
{
    if (t->len + n > t->cap) {
        while (t->len + n > t->cap) t->cap = t->cap ? 2 * t->cap : 1 << 16;
        t->s = realloc(t->s, t->cap);
        if (!t->s) abort();
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
}

/* The current input, split into lines by the source; set before each run. */
static const char *fuzz_input;
static size_t fuzz_input_len;

/* Up to 7 lines a batch; events alternate between origins "a" and "b". */
static enum sl_poll lines_poll(struct sl_stage *s, struct sl_batch **out)
{
    size_t *pos = sl_stage_state(s);
    if (*pos >= fuzz_input_len) return SL_DONE;
    struct sl_batch *b = sl_batch_new(s);
    for (int k = 0; k < 7 && *pos < fuzz_input_len; k++) {
        const char *nl = memchr(fuzz_input + *pos, '\n', fuzz_input_len - *pos);
        size_t end = nl ? (size_t)(nl - fuzz_input) : fuzz_input_len;
        struct sl_event *ev = sl_batch_append(b);
        char *p = sl_batch_alloc(b, end - *pos + 1);
        memcpy(p, fuzz_input + *pos, end - *pos);
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

#endif
