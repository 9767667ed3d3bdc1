/* examples/custom_stage.c: embed a pipeline in your own program, with stages of your own.
 *
 * Three stage types, written exactly as the built-ins are: a source that yields lines
 * from an array, a transform that upper-cases the payload, and a sink that prints
 * each event and acknowledges it. Built against the installed headers and the shared
 * library only:  cc custom_stage.c $(pkg-config --cflags --libs sluice)
 * Run it: ./custom_stage   (prints the three lines, shouted) */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <sluice/sluice.h>

/* ---- a source: an async generator over an array -------------------------------------- */

static const char *const lines[] = {"hello, sluice", "batches flow downstream", "acks flow back"};

struct lines_state {
    size_t next;  /* index of the next line */
    size_t acked; /* lines acknowledged by every sink */
};

static enum sl_poll lines_poll(struct sl_stage *stage, struct sl_batch **out)
{
    struct lines_state *st = sl_stage_state(stage);
    if (st->next == sizeof lines / sizeof *lines) return SL_DONE; /* end of stream */
    struct sl_batch *b = sl_batch_new(stage); /* owned by us until we return it */
    if (!b) return SL_ERROR;
    while (st->next < sizeof lines / sizeof *lines && !sl_batch_full(b)) {
        struct sl_event *ev = sl_batch_append(b);
        /* The payload is borrowed: static strings outlive the batch. */
        sl_event_set_payload(ev, lines[st->next], strlen(lines[st->next]));
        st->next++;
    }
    *out = b; /* the runtime takes the batch */
    return SL_READY;
}

/* Called once every sink has acknowledged a batch: the place for a checkpoint. */
static void lines_ack(struct sl_stage *stage, struct sl_batch *b)
{
    struct lines_state *st = sl_stage_state(stage);
    st->acked += sl_batch_count(b);
}

static const struct sl_stage_type lines_source = {
    .abi = SL_STAGE_ABI,
    .name = "lines",
    .kind = SL_SOURCE,
    .doc = "yields a few fixed lines",
    .state_size = sizeof(struct lines_state),
    .poll = lines_poll,
    .ack = lines_ack,
};

/* ---- a transform: one event in, one event out ------------------------------------------ */

static int shout_map(struct sl_stage *stage, struct sl_event *ev, struct sl_emit *out)
{
    (void)stage;
    size_t len;
    const char *text = sl_event_payload(ev, &len);
    char *loud = sl_event_alloc(ev, len); /* lives as long as the batch */
    if (!loud) return SL_ENOMEM;
    for (size_t i = 0; i < len; i++) loud[i] = (char)toupper((unsigned char)text[i]);
    sl_event_set_payload(ev, loud, len);
    return sl_emit(out, ev); /* pass it on; not emitting would drop it */
}

static const struct sl_stage_type shout_transform = {
    .abi = SL_STAGE_ABI,
    .name = "shout",
    .kind = SL_TRANSFORM,
    .doc = "upper-cases the payload",
    .flags = SL_STAGE_PARALLEL, /* no state: `workers: N` would be allowed */
    .map = shout_map,
};

/* ---- a sink: print, then acknowledge --------------------------------------------------- */

static enum sl_poll print_write(struct sl_stage *stage, struct sl_batch *b)
{
    (void)stage;
    for (size_t i = 0; i < sl_batch_count(b); i++) {
        size_t len;
        const char *text = sl_event_payload(sl_batch_event_const(b, i), &len);
        printf("%.*s\n", (int)len, text);
    }
    fflush(stdout);
    sl_ack(b); /* durable: gives our reference back and lets the source checkpoint */
    return SL_READY;
}

static const struct sl_stage_type print_sink = {
    .abi = SL_STAGE_ABI,
    .name = "print",
    .kind = SL_SINK,
    .doc = "prints payloads",
    .write = print_write,
};

int main(void)
{
    struct sl_error err = {0};
    /* NULL base: the pipeline makes (and later frees) its own libevent loop. */
    struct sl_pipeline *p = sl_pipeline_new(NULL, NULL, &err);
    if (!p) goto fail;
    /* NULL config: every option takes its default. */
    struct sl_stage *src = sl_pipeline_add(p, "src", &lines_source, NULL, &err);
    struct sl_stage *loud = src ? sl_pipeline_add(p, "loud", &shout_transform, NULL, &err) : NULL;
    struct sl_stage *out = loud ? sl_pipeline_add(p, "out", &print_sink, NULL, &err) : NULL;
    if (!out || sl_pipeline_connect(p, src, NULL, loud, &err) ||
        sl_pipeline_connect(p, loud, NULL, out, &err))
        goto fail;
    if (sl_pipeline_run(p, &err)) goto fail; /* returns once everything is acknowledged */
    struct lines_state *st = sl_stage_state(src);
    fprintf(stderr, "acknowledged %zu of %zu lines\n", st->acked, sizeof lines / sizeof *lines);
    sl_pipeline_free(p);
    return 0;
fail:;
    char msg[1024];
    fprintf(stderr, "custom_stage: %s\n", sl_error_format(&err, msg, sizeof msg));
    sl_pipeline_free(p);
    return 1;
}
