/* The stdin source and the stdout sink, on pipes, regular files and /dev/null (through
 * their `fd` option, so that the test process keeps its own standard streams). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sluice/builtins.h>

#include "helpers.h"
#include "helpers_file.h"

static char *dir;
static struct sl_pipeline *p;

static void setup(void)
{
    dir = t_tmpdir();
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.data_dir = dir;
    o.batch_max_events = 7; /* many small batches: lines carried across reads */
    p = sl_pipeline_new(NULL, &o, NULL);
    cr_assert_not_null(p);
}

static void teardown(void)
{
    sl_pipeline_free(p);
    t_rmtree(dir);
    free(dir);
}

TestSuite(file_stdio, .init = setup, .fini = teardown, .timeout = 60);

static struct t_lines *read_fd(int fd, const char *extra)
{
    char yaml[256];
    snprintf(yaml, sizeof yaml, "fd: %d\n%s", fd, extra ? extra : "");
    struct sl_stage *src = t_add(p, "in", &sl_stage_stdin, yaml);
    struct sl_stage *out = t_add(p, "out", &t_lines, NULL);
    t_connect(p, src, out);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), 0, "run: %s", err.msg);
    cr_assert_eq(sl_pipeline_live_batches(p), 0);
    return sl_stage_state(out);
}

/* Writes lines 0..N-1 into a pipe in odd-sized pieces that cut lines, then closes it. */
#define PIPE_LINES 100000

static void *pipe_writer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    size_t cap = PIPE_LINES * 8, o = 0;
    char *all = malloc(cap);
    for (int i = 0; i < PIPE_LINES; i++) o += (size_t)sprintf(all + o, "%d\n", i);
    for (size_t at = 0, piece = 1; at < o; at += piece, piece = piece * 7 % 5003 + 1) {
        if (piece > o - at) piece = o - at;
        cr_assert_eq(write(fd, all + at, piece), (ssize_t)piece);
    }
    close(fd);
    free(all);
    return NULL;
}

Test(file_stdio, stdin_reads_a_pipe_to_its_end)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pthread_t t;
    pthread_create(&t, NULL, pipe_writer, (void *)(intptr_t)fds[1]);
    struct t_lines *r = read_fd(fds[0], "read_buffer: 4KiB");
    pthread_join(t, NULL);
    close(fds[0]);
    cr_assert_eq(r->n, PIPE_LINES);
    for (size_t i = 0; i < r->n; i++) cr_assert_eq(atol(r->lines[i]), (long)i);
    cr_assert_str_eq(r->origins[0], "stdin");
    cr_assert_eq(r->offsets[10], 20); /* "0\n".."9\n" then "10\n" */
    cr_assert_eq(r->offsets[11], 23);
}

Test(file_stdio, stdin_reads_a_regular_file_and_its_last_line)
{
    char *f = t_path(dir, "in.log");
    t_write_numbers(f, 0, 30000, false);
    t_writes(f, "tail", true);
    int fd = open(f, O_RDONLY);
    struct t_lines *r = read_fd(fd, "read_buffer: 4KiB");
    close(fd);
    cr_assert_eq(r->n, 30001);
    for (size_t i = 0; i < 30000; i++) cr_assert_eq(atol(r->lines[i]), (long)i);
    cr_assert_str_eq(r->lines[30000], "tail");
    free(f);
}

Test(file_stdio, stdin_cuts_oversize_lines)
{
    char *f = t_path(dir, "in.log");
    char big[9000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    t_writes(f, "a\n", false);
    t_writes(f, big, true);
    t_writes(f, "\nb\n", true);
    int fd = open(f, O_RDONLY);
    struct t_lines *r = read_fd(fd, "read_buffer: 4KiB\nmax_line_bytes: 5000");
    close(fd);
    cr_assert_eq(r->n, 3);
    cr_assert_str_eq(r->lines[0], "a");
    cr_assert_eq(r->lens[1], 5000);
    cr_assert(r->truncated[1]);
    cr_assert_str_eq(r->lines[2], "b");
    free(f);
}

/* Stops the pipeline after 200 ms, then closes the pipe's write end 3 s later: a loop
 * blocked in read() would see the stop only then. */
static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct quiet_pipe {
    struct sl_pipeline *p;
    int wfd;
    atomic_bool ended; /* the run returned */
};

static void *stop_then_close(void *arg)
{
    struct quiet_pipe *q = arg;
    usleep(200 * 1000);
    sl_pipeline_stop(q->p);
    for (int i = 0; i < 300 && !atomic_load(&q->ended); i++) usleep(10 * 1000);
    close(q->wfd);
    return NULL;
}

Test(file_stdio, stdin_on_an_empty_pipe_never_blocks_the_loop)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    struct quiet_pipe q = {p, fds[1], false};
    pthread_t t;
    pthread_create(&t, NULL, stop_then_close, &q);
    int64_t t0 = now_ms();
    struct t_lines *r = read_fd(fds[0], NULL);
    int64_t took = now_ms() - t0;
    atomic_store(&q.ended, true);
    pthread_join(t, NULL);
    close(fds[0]);
    cr_assert_eq(r->n, 0);
    cr_assert_lt(took, 2500, "the stop was served after %lld ms: the loop waited in read()",
                 (long long)took);
}

Test(file_stdio, stdin_from_dev_null_ends_at_once)
{
    int fd = open("/dev/null", O_RDONLY);
    struct t_lines *r = read_fd(fd, NULL);
    close(fd);
    cr_assert_eq(r->n, 0);
}

/* ---- stdout ------------------------------------------------------------------------------ */

static int write_fd(int fd, const char *input, const char *extra, struct sl_error *err)
{
    char *in = t_path(dir, "in.log");
    t_writes(in, input, false);
    char yaml[512];
    snprintf(yaml, sizeof yaml, "path: %s\nfollow: false\nhost_key: \"\"", in);
    struct sl_stage *src = t_add(p, "src", &sl_stage_file_source, yaml);
    snprintf(yaml, sizeof yaml, "fd: %d\n%s", fd, extra ? extra : "");
    struct sl_stage *out = t_add(p, "out", &sl_stage_stdout, yaml);
    t_connect(p, src, out);
    free(in);
    return sl_pipeline_run(p, err);
}

Test(file_stdio, stdout_writes_every_encoding)
{
    char *o = t_path(dir, "out.txt");
    int fd = open(o, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    struct sl_error err = {0};
    char input[64000];
    size_t n = 0;
    for (int i = 0; i < 5000; i++) n += (size_t)sprintf(input + n, "%d\n", i);
    cr_assert_eq(write_fd(fd, input, "encoding: text", &err), 0, "%s", err.msg);
    close(fd);
    char *got = t_read(o, NULL);
    cr_assert_str_eq(got, input);
    free(got);
    free(o);
}

/* The same rule as the file sink's: a raw line is {"message": line, fields}. */
Test(file_stdio, stdout_json_of_raw_lines_is_valid_json)
{
    char *o = t_path(dir, "out.json");
    int fd = open(o, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    struct sl_error err = {0};
    cr_assert_eq(write_fd(fd, "plain \"q\"\n{\"a\":1}\n", NULL, &err), 0, "%s", err.msg);
    close(fd);
    char *got = t_read(o, NULL);
    cr_assert_str_eq(got, "{\"message\":\"plain \\\"q\\\"\"}\n{\"message\":\"{\\\"a\\\":1}\"}\n");
    free(got);
    free(o);
}

Test(file_stdio, stdout_text_template_renders_expressions)
{
    char *o = t_path(dir, "out.txt");
    int fd = open(o, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    struct sl_error err = {0};
    cr_assert_eq(
        write_fd(fd, "a\nb\n",
                 "encoding: text\ntemplate: \"<{{ upper(\\\"x\\\") }}|{{ nope }}|{{ 1 + 1 }}>\"",
                 &err),
        0, "%s", err.msg);
    close(fd);
    char *got = t_read(o, NULL);
    cr_assert_str_eq(got, "<X||2>\n<X||2>\n");
    free(got);
    free(o);
}

Test(file_stdio, stdout_csv_with_header)
{
    char *o = t_path(dir, "out.csv");
    int fd = open(o, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    struct sl_error err = {0};
    cr_assert_eq(write_fd(fd, "x\ny\n", "encoding: csv\nfields: [missing]\ncsv_header: true", &err),
                 0, "%s", err.msg);
    close(fd);
    char *got = t_read(o, NULL);
    cr_assert_str_eq(got, "missing\n\n\n");
    free(got);
    free(o);
}

Test(file_stdio, stdout_to_a_closed_pipe_fails_the_run_without_a_signal)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    close(fds[0]);
    struct sl_error err = {0};
    cr_assert_eq(write_fd(fds[1], "a\nb\n", NULL, &err), SL_EIO);
    cr_assert_str_eq(err.stage, "out");
    cr_assert(strstr(err.msg, "Broken pipe"), "%s", err.msg);
    close(fds[1]);
}
