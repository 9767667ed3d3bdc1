/* The `stdout` sink: events to standard output, as json, text or csv.
 *
 * Standard output may be a pipe whose reader is slow, or a terminal: a write can block.
 * So each batch is encoded and written by an executor thread (the batch is ours until
 * acknowledged, so no other thread touches it meanwhile), one batch at a time, in
 * order; the loop only submits and acknowledges. SIGPIPE is blocked on that thread, so
 * a reader that went away (`| head`) fails the run with EPIPE instead of killing the
 * process. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sluice/builtins.h>
#include <sluice/config.h>

#include "internal.h"

struct stdout_sink {
    int encoding;             /* option: SL__FILE_ENCODE_* */
    struct sl_template *text; /* option `template` */
    struct sl_list fields;    /* option: csv columns */
    bool csv_header;          /* option */
    int64_t fd;               /* option: descriptor to write */

    struct sl_stage *stage;   /* this stage */
    struct sl__file_enc enc;  /* encoding (used by the job thread only while it runs) */
    struct sl__file_iobuf io; /* gathered bytes (same) */
    bool header_done;         /* csv header written */
    struct sl_batch *cur;     /* batch being written by the job, or failed */
    int err;                  /* errno of the job */
    uint64_t bytes;           /* bytes written */
};

/* Writes `io` whole, waiting for a non-blocking descriptor to take more. */
static int write_all(int fd, struct sl__file_iobuf *io)
{
    int err;
    for (;;) {
        sl__file_writev_all(fd, io, &err);
        if (err != EAGAIN) break;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        poll(&p, 1, -1);
    }
    sl__file_iobuf_reset(io);
    return err;
}

static int encode_and_write(struct stdout_sink *o)
{
    int fd = (int)o->fd, err = 0;
    if (o->encoding == SL__FILE_ENCODE_CSV && o->csv_header && !o->header_done) {
        if (sl__file_encode_csv_header(&o->enc, &o->io)) return ENOMEM;
        o->header_done = true;
    }
    size_t n = sl_batch_count(o->cur);
    for (size_t i = 0; i < n && !err;) {
        long len = sl__file_encode(&o->enc, sl_batch_event_const(o->cur, i), &o->io, 0);
        if (len == SL_EAGAIN) {
            o->bytes += o->io.bytes;
            err = write_all(fd, &o->io);
            continue;
        }
        if (len < 0) return ENOMEM;
        i++;
    }
    o->bytes += o->io.bytes;
    return err ? err : write_all(fd, &o->io);
}

static void job_work(void *arg)
{
    struct stdout_sink *o = arg;
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    o->err = encode_and_write(o);
    if (o->err == EPIPE) { /* take the SIGPIPE the write raised on this thread */
        struct timespec zero = {0, 0};
        sigtimedwait(&pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void job_done(struct sl_stage *stage, void *arg)
{
    struct stdout_sink *o = arg;
    if (o->err) { /* the batch stays held, unacknowledged, until close() */
        sl_stage_error(stage, SL_EIO, "cannot write to descriptor %lld: %s", (long long)o->fd,
                       strerror(o->err));
    } else {
        sl_ack(o->cur);
        o->cur = NULL;
    }
    sl_stage_wake(stage);
}

static enum sl_poll stdout_write(struct sl_stage *stage, struct sl_batch *b)
{
    struct stdout_sink *o = sl_stage_state(stage);
    o->cur = b;
    if (sl_stage_submit(stage, job_work, job_done, o)) {
        o->cur = NULL;
        sl_stage_error(stage, SL_ENOMEM, "out of memory");
        return SL_ERROR;
    }
    return SL_PENDING;
}

static int stdout_init(struct sl_stage *stage, const struct sl_config *cfg, struct sl_error *err)
{
    struct stdout_sink *o = sl_stage_state(stage);
    o->stage = stage;
    if (o->fd < 0)
        return sl_config_error(sl_config_get(cfg, "fd"), err, SL_ECONFIG, "'fd' must be >= 0");
    if (o->encoding == SL__FILE_ENCODE_CSV && (o->fields.n == 0 || !o->fields.items[0][0]))
        return sl_config_error(cfg, err, SL_ECONFIG, "encoding csv needs 'fields'");
    o->enc.encoding = o->encoding;
    o->enc.text = o->text;
    o->enc.cols = &o->fields;
    return 0;
}

static void stdout_close(struct sl_stage *stage)
{
    struct stdout_sink *o = sl_stage_state(stage);
    if (o->cur) sl_batch_unref(o->cur); /* only after a failure: the run was aborted */
    free(o->io.scratch);
}

#define OPT(field) offsetof(struct stdout_sink, field)

static const struct sl_option stdout_options[] = {
    {"encoding", SL_OPT_ENUM, "json", 0, OPT(encoding),
     "json: one JSON object a line (parsed, untouched events as they came; a raw line as "
     "{\"message\": line, fields}); text: the payload or `template`; csv: `fields`",
     "json|text|csv"},
    {"template", SL_OPT_TEMPLATE, NULL, 0, OPT(text),
     "encoding text: the line to write, with {{ expr }} (null: nothing); default: the payload"},
    {"fields", SL_OPT_LIST, NULL, 0, OPT(fields), "encoding csv: the fields to write, in order"},
    {"csv_header", SL_OPT_BOOL, "false", 0, OPT(csv_header),
     "encoding csv: write the field names first"},
    {"fd", SL_OPT_INT, "1", 0, OPT(fd), "descriptor to write (1: standard output)"},
    {0},
};

const struct sl_stage_type sl_stage_stdout = {
    .abi = SL_STAGE_ABI,
    .name = "stdout",
    .kind = SL_SINK,
    .doc = "writes events to standard output",
    .state_size = sizeof(struct stdout_sink),
    .options = stdout_options,
    .init = stdout_init,
    .write = stdout_write,
    .close = stdout_close,
};
