/* Helpers for the sqlite sink's tests. See helpers_sqlite_sink.h. */
#include "helpers_sqlite_sink.h"
#include "helpers.h"
#include "helpers_file.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/builtins.h>

const char *const *t_jsonl_lines;
size_t t_jsonl_count;

static const struct sl_option json_options[] = {
    {"per_batch", SL_OPT_INT, "100", 0, offsetof(struct t_jsonl, per_batch), "lines a batch"},
    {"delay_ms", SL_OPT_INT, "0", 0, offsetof(struct t_jsonl, delay_ms), "pause between batches"},
    {0},
};

static void json_wake(struct sl_stage *s, void *arg)
{
    ((struct t_jsonl *)arg)->waiting = false;
    sl_stage_wake(s);
}

static int json_start(struct sl_stage *s, struct sl_error *err)
{
    (void)err;
    struct t_jsonl *j = sl_stage_state(s);
    j->timer = sl_timer_new(s, json_wake, j);
    return 0;
}

static enum sl_poll json_poll(struct sl_stage *s, struct sl_batch **out)
{
    struct t_jsonl *j = sl_stage_state(s);
    if (j->next >= t_jsonl_count) return SL_DONE;
    if (j->waiting) return SL_PENDING;
    struct sl_batch *b = sl_batch_new(s);
    sl_batch_set_cookie(b, j->next);
    for (int64_t k = 0; k < j->per_batch && j->next < t_jsonl_count; k++) {
        const char *line = t_jsonl_lines[j->next++];
        struct sl_event *ev = sl_batch_append(b);
        size_t n = strlen(line);
        char *d = sl_event_alloc(ev, n ? n : 1);
        memcpy(d, line, n);
        sl_event_set_payload(ev, d, n);
    }
    if (j->delay_ms) {
        j->waiting = true;
        sl_timer_start(j->timer, j->delay_ms, false);
    }
    *out = b;
    return SL_READY;
}

static void json_ack(struct sl_stage *s, struct sl_batch *b)
{
    struct t_jsonl *j = sl_stage_state(s);
    j->acked += (int64_t)sl_batch_count(b);
    j->batches++;
    if (j->on_ack) j->on_ack(s, b);
}

static void json_close(struct sl_stage *s)
{
    sl_timer_free(((struct t_jsonl *)sl_stage_state(s))->timer);
}

const struct sl_stage_type t_jsonl = {
    .abi = SL_STAGE_ABI,
    .name = "t_jsonl",
    .kind = SL_SOURCE,
    .doc = "test source of the test's JSON lines",
    .state_size = sizeof(struct t_jsonl),
    .options = json_options,
    .start = json_start,
    .poll = json_poll,
    .ack = json_ack,
    .close = json_close,
};

int t_sqlite_pipeline(struct sl_pipeline *p, const char *dir, const char *src_yaml,
                      const char *sink_fmt, struct sl_stage **src, struct sl_stage **sink,
                      struct sl_error *err)
{
    char yaml[4096];
    snprintf(yaml, sizeof yaml, sink_fmt, dir);
    struct sl_stage *s = t_add(p, "src", &t_jsonl, src_yaml);
    struct sl_stage *parse = t_add(p, "parse", &sl_stage_parse_json, NULL);
    struct sl_stage *k = t_add(p, "db", &sl_stage_sqlite_sink, yaml);
    t_connect(p, s, parse);
    t_connect(p, parse, k);
    if (src) *src = s;
    if (sink) *sink = k;
    return sl_pipeline_run(p, err);
}

char *t_db(const char *dir)
{
    return t_path(dir, "t.db");
}
