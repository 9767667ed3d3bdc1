/* bench_file: file -> file copy of a JSON log with sluice, next to cat and cp of the
 * same file in the same run.
 *
 *   bench_file [--lines N] [--dir DIR] [--batch-events N] [--batch-bytes N]
 *
 * Generates N (default 2,000,000) JSON lines of about 200 bytes (~400 MB) under DIR
 * (default /tmp), reads it once so that every contender reads from the page cache, then
 * times `cat in > out`, `cp in out` and two sluice pipelines, each in a child process,
 * and prints MB/s, lines/s and the child's peak RSS:
 *   - sluice: file source (follow: false) -> file sink, `encoding: text`: the lines
 *     written as they came (iovecs into the read blocks, merged across lines);
 *   - sluice-json: the same with `encoding: json`: nobody parsed the lines, so each is
 *     written as {"message":"<line>"} (escaped into scratch memory).
 * Each output is checked (byte for byte against the input; for json, the line count and
 * the first line) and deleted; the input is deleted at the end. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sluice/builtins.h>
#include <sluice/json.h>
#include <sluice/sluice.h>

struct result {
    const char *name; /* contender */
    double seconds;   /* wall time */
    long rss_kib;     /* peak resident set of the child */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_file: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* ~200-byte JSON lines with varied fields. Returns the file size. */
static off_t generate(const char *path, long lines)
{
    static const char *const levels[] = {"info", "info", "info", "warn", "error", "debug"};
    static const char *const services[] = {"api", "auth", "billing", "search", "web"};
    FILE *f = fopen(path, "w");
    if (!f) die(path);
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    for (long i = 0; i < lines; i++)
        fprintf(f,
                "{\"ts\":\"2024-05-01T%02ld:%02ld:%02ld.%03ldZ\",\"level\":\"%s\",\"service\":"
                "\"%s\",\"host\":\"node-%03ld\",\"msg\":\"GET /api/v1/items/%ld returned %d\","
                "\"latency_ms\":%ld,\"bytes\":%ld,\"trace\":\"%016lx\",\"seq\":%ld}\n",
                i / 3600000 % 24, i / 60000 % 60, i / 1000 % 60, i % 1000, levels[i % 6],
                services[i % 5], i % 173, i * 7919 % 1000003, i % 17 ? 200 : 500, i % 997,
                i * 31 % 65536, (unsigned long)i * 0x9E3779B97F4A7C15ul, i);
    if (fclose(f)) die(path);
    struct stat st;
    stat(path, &st);
    return st.st_size;
}

/* Waits for `pid`; fills wall time since t0 and its peak RSS. */
static void reap(pid_t pid, double t0, struct result *r)
{
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid) die("wait4");
    r->seconds = now_s() - t0;
    r->rss_kib = ru.ru_maxrss;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench_file: %s failed\n", r->name);
        exit(1);
    }
}

static void run_tool(struct result *r, const char *in, const char *out, bool cat)
{
    sync(); /* nobody pays for the write-back of what ran before */
    double t0 = now_s();
    pid_t pid = fork();
    if (pid == 0) {
        if (cat) {
            int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0 || dup2(fd, 1) < 0) _exit(1);
            execlp("cat", "cat", in, (char *)NULL);
        } else {
            execlp("cp", "cp", in, out, (char *)NULL);
        }
        _exit(127);
    }
    reap(pid, t0, r);
}

static int sluice_copy(const char *in, const char *out, const char *data, long events, long bytes,
                       const char *encoding)
{
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.data_dir = data;
    if (events) o.batch_max_events = (uint32_t)events;
    if (bytes) o.batch_max_bytes = (uint64_t)bytes;
    struct sl_error err = {0};
    struct sl_pipeline *p = sl_pipeline_new(NULL, &o, &err);
    char yaml[8400];
    snprintf(yaml, sizeof yaml, "path: \"%s\"\nfollow: false", in);
    struct sl_config *c1 = sl_config_parse(yaml, strlen(yaml), "bench", &err);
    snprintf(yaml, sizeof yaml, "path: \"%s\"\nencoding: %s", out, encoding);
    struct sl_config *c2 = sl_config_parse(yaml, strlen(yaml), "bench", &err);
    struct sl_stage *src = p ? sl_pipeline_add(p, "in", &sl_stage_file_source, c1, &err) : NULL;
    struct sl_stage *dst = src ? sl_pipeline_add(p, "out", &sl_stage_file_sink, c2, &err) : NULL;
    int rc = dst ? sl_pipeline_connect(p, src, NULL, dst, &err) : -1;
    if (!rc) rc = sl_pipeline_run(p, &err);
    if (rc) fprintf(stderr, "bench_file: sluice: %s\n", err.msg);
    sl_config_free(c1);
    sl_config_free(c2);
    sl_pipeline_free(p);
    return rc ? 1 : 0;
}

static void run_sluice(struct result *r, const char *in, const char *out, const char *data,
                       long events, long bytes, const char *encoding)
{
    sync();
    double t0 = now_s();
    pid_t pid = fork();
    if (pid == 0) _exit(sluice_copy(in, out, data, events, bytes, encoding));
    reap(pid, t0, r);
}

/* Compares two files by mapping them; exits on a difference. */
static void check_same(const char *a, const char *b, off_t size)
{
    int fa = open(a, O_RDONLY), fb = open(b, O_RDONLY);
    struct stat sb;
    if (fa < 0 || fb < 0 || fstat(fb, &sb)) die("check");
    if (sb.st_size != size) {
        fprintf(stderr, "bench_file: %s has %lld bytes, expected %lld\n", b, (long long)sb.st_size,
                (long long)size);
        exit(1);
    }
    char *ma = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fa, 0);
    char *mb = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fb, 0);
    if (ma == MAP_FAILED || mb == MAP_FAILED || memcmp(ma, mb, (size_t)size)) {
        fprintf(stderr, "bench_file: %s differs from the input\n", b);
        exit(1);
    }
    munmap(ma, (size_t)size);
    munmap(mb, (size_t)size);
    close(fa);
    close(fb);
}

/* Removes the checkpoint database of a run from `dir`, so that the next run reads the
 * input again. */
static void remove_checkpoints(const char *dir)
{
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    char ck[4300];
    for (int i = 0; i < 3; i++) {
        snprintf(ck, sizeof ck, "%s/checkpoints.db%s", dir, suffixes[i]);
        unlink(ck);
    }
}

/* Checks the json output `b` of input `a`: `lines` lines, the first one the input's first
 * line as {"message": ...}. Exits on a difference. */
static void check_json(const char *a, const char *b, long lines)
{
    FILE *fa = fopen(a, "r"), *fb = fopen(b, "r");
    if (!fa || !fb) die("check");
    char line[1024], got[4096], want[4096];
    if (!fgets(line, sizeof line, fa) || !fgets(got, sizeof got, fb)) die("check: empty");
    size_t n = strlen(line) - 1, o = (size_t)snprintf(want, sizeof want, "{\"message\":\"");
    o += sl_json_escape(line, n, want + o);
    snprintf(want + o, sizeof want - o, "\"}\n");
    long count = 1;
    static char block[1 << 16];
    for (size_t got_n; (got_n = fread(block, 1, sizeof block, fb)) > 0;)
        for (char *q = block; (q = memchr(q, '\n', (size_t)(block + got_n - q))); q++) count++;
    if (strcmp(got, want) || count != lines) {
        fprintf(stderr, "bench_file: %s: %ld lines, first %s, expected %ld lines, first %s", b,
                count, got, lines, want);
        exit(1);
    }
    fclose(fa);
    fclose(fb);
}

static void print(const struct result *r, off_t size, long lines, const struct result *cat)
{
    double mb = (double)size / 1e6;
    printf("%-11s %8.3f s %9.1f MB/s %11.0f lines/s %9.1f MiB RSS %7.2fx cat\n", r->name,
           r->seconds, mb / r->seconds, (double)lines / r->seconds, (double)r->rss_kib / 1024,
           cat->seconds / r->seconds);
}

int main(int argc, char **argv)
{
    long lines = 2000000, events = 0, bytes = 0;
    const char *base = "/tmp";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--lines"))
            lines = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir"))
            base = argv[i + 1];
        else if (!strcmp(argv[i], "--batch-events"))
            events = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch-bytes"))
            bytes = atol(argv[i + 1]);
    }
    char dir[4096], in[4200], out[4200];
    snprintf(dir, sizeof dir, "%s/sluice-bench-XXXXXX", base);
    if (!mkdtemp(dir)) die("mkdtemp");
    snprintf(in, sizeof in, "%s/in.log", dir);
    snprintf(out, sizeof out, "%s/out.log", dir);
    off_t size = generate(in, lines);
    struct result warm = {"warm"}, cat = {"cat"}, cp = {"cp"}, sl = {"sluice"},
                  slj = {"sluice-json"};
    run_tool(&warm, in, "/dev/null", true); /* the input is in the page cache from here */
    printf("input: %ld lines, %.1f MB, %s (from the page cache)\n", lines, (double)size / 1e6, in);
    run_tool(&cat, in, out, true);
    check_same(in, out, size);
    unlink(out);
    run_tool(&cp, in, out, false);
    check_same(in, out, size);
    unlink(out);
    run_sluice(&sl, in, out, dir, events, bytes, "text");
    check_same(in, out, size);
    unlink(out);
    remove_checkpoints(dir);
    run_sluice(&slj, in, out, dir, events, bytes, "json");
    check_json(in, out, lines);
    unlink(out);
    remove_checkpoints(dir);
    print(&cat, size, lines, &cat);
    print(&cp, size, lines, &cat);
    print(&sl, size, lines, &cat);
    print(&slj, size, lines, &cat);
    unlink(in);
    rmdir(dir);
    return 0;
}
