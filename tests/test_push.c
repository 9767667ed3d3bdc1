/* The push source (sluice/push.h): a full queue refuses and counts, the program is told
 * once when there is room, events arrive in the order pushed, the end of the stream ends
 * the source, and an ended source refuses. Built as a user's program. */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include <sluice/push.h>
#include <sluice/sluice.h>

struct got {
    char text[64]; /* payloads, space-separated */
};

static enum sl_poll got_write(struct sl_stage *stage, struct sl_batch *b)
{
    struct got *g = sl_stage_state(stage);
    for (size_t i = 0; i < sl_batch_count(b); i++) {
        size_t len, used = strlen(g->text);
        const char *p = sl_event_payload(sl_batch_event_const(b, i), &len);
        snprintf(g->text + used, sizeof g->text - used, "%s%.*s", used ? " " : "", (int)len, p);
    }
    sl_ack(b);
    return SL_READY;
}

static const struct sl_stage_type got_sink = {
    .abi = SL_STAGE_ABI,
    .name = "t_got",
    .kind = SL_SINK,
    .doc = "keeps payloads",
    .state_size = sizeof(struct got),
    .write = got_write,
};

struct room {
    int calls;         /* on_room calls */
    size_t room;       /* sl_push_room() when told */
    struct sl_push *q; /* the source */
};

/* Told once there is room: pushes the refused event and ends the stream. */
static void room_cb(void *arg, struct sl_push *q)
{
    struct room *r = arg;
    r->calls++;
    r->room = sl_push_room(q);
    cr_assert_eq(sl_push(q, "d", 1), 0);
    sl_push_end(q);
}

Test(push, full_refuses_room_is_told_end_ends)
{
    struct sl_error err = {0};
    struct sl_pipeline *p = sl_pipeline_new(NULL, NULL, &err);
    const char *yaml = "capacity: 3";
    struct sl_config *cfg = sl_config_parse(yaml, strlen(yaml), "t.yaml", &err);
    struct sl_stage *src = sl_pipeline_add(p, "in", &sl_stage_push, cfg, &err);
    struct sl_stage *out = sl_pipeline_add(p, "out", &got_sink, NULL, &err);
    cr_assert(src && out, "%s", err.msg);
    cr_assert_eq(sl_pipeline_connect(p, src, NULL, out, &err), 0);
    struct sl_push *q = sl_push_of(src);
    cr_assert(q);
    cr_assert_null(sl_push_of(out));

    cr_assert_eq(sl_push_room(q), 3);
    cr_assert_eq(sl_push(q, "a", 1), 0);
    cr_assert_eq(sl_push(q, "b", 1), 0);
    cr_assert_eq(sl_push(q, "c", 1), 0);
    cr_assert_eq(sl_push_room(q), 0);
    cr_assert_eq(sl_push(q, "d", 1), SL_EAGAIN);
    cr_assert_eq(sl_push(q, "d", 1), SL_EAGAIN);
    struct room r = {.q = q};
    sl_push_on_room(q, room_cb, &r);

    cr_assert_eq(sl_pipeline_run(p, &err), 0, "%s", err.msg);
    cr_assert_str_eq(((struct got *)sl_stage_state(out))->text, "a b c d");
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.room, 3);
    struct sl_push_counts c = {.size = sizeof c};
    cr_assert_eq(sl_push_counts(q, &c), 0);
    cr_assert_eq(c.pushed, 4);
    cr_assert_eq(c.refused, 2);
    cr_assert_eq(c.woken, 1);
    cr_assert_eq(c.dropped, 0);
    cr_assert_eq(sl_push(q, "e", 1), SL_ECLOSED);
    struct sl_push_counts small = {.size = 4};
    cr_assert_eq(sl_push_counts(q, &small), SL_EINVAL);
    sl_pipeline_free(p);
    sl_config_free(cfg);
}

/* Pushes one more, then stops: the source is not polled again, so it stays queued. */
static void stop_cb(void *arg, struct sl_push *q)
{
    cr_assert_eq(sl_push(q, "c", 1), 0);
    sl_pipeline_stop(arg);
}

Test(push, a_stop_ends_the_source_and_drops_what_is_queued)
{
    struct sl_error err = {0};
    const char *yaml = "capacity: 2";
    struct sl_config *cfg = sl_config_parse(yaml, strlen(yaml), "t.yaml", &err);
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.batch_max_events = 1; /* one event per poll: room after the first */
    struct sl_pipeline *p = sl_pipeline_new(NULL, &o, &err);
    struct sl_stage *src = sl_pipeline_add(p, "in", &sl_stage_push, cfg, &err);
    struct sl_stage *out = sl_pipeline_add(p, "out", &got_sink, NULL, &err);
    cr_assert_eq(sl_pipeline_connect(p, src, NULL, out, &err), 0);
    struct sl_push *q = sl_push_of(src);
    cr_assert_eq(sl_push(q, "a", 1), 0);
    cr_assert_eq(sl_push(q, "b", 1), 0);
    cr_assert_eq(sl_push(q, "c", 1), SL_EAGAIN);
    sl_push_on_room(q, stop_cb, p); /* the first room stops the pipeline */
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "%s", err.msg);
    struct sl_push_counts c = {.size = sizeof c};
    sl_push_counts(q, &c);
    const char *text = ((struct got *)sl_stage_state(out))->text;
    cr_assert_str_eq(text, "a b");
    cr_assert_eq(c.pushed, 3);
    cr_assert_eq(c.woken, 1);
    cr_assert_eq(c.dropped, 1);
    cr_assert_eq(sl_push(q, "x", 1), SL_ECLOSED);
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(src, &st);
    cr_assert_eq(st.dropped, c.dropped);
    sl_pipeline_free(p);
    sl_config_free(cfg);
}
