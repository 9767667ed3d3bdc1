/* Helpers for the file connector's tests: temporary directories, whole-file reads and
 * writes, and a sink that records every line it receives. */
#ifndef SLUICE_TEST_HELPERS_FILE_H
#define SLUICE_TEST_HELPERS_FILE_H

#include <sys/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/sluice.h>

/* Sink "t_lines": keeps a copy of every payload (and its origin, offset and fields
 * host/truncated) in arrival order, acks at once, and calls `on_write` (test hook, may
 * be NULL) after each batch: follow tests drive their next step from there. */
struct t_lines {
    char **lines;      /* payloads, NUL-terminated copies */
    size_t *lens;      /* payload lengths (payloads may hold NULs) */
    char **origins;    /* sl_event_origin copies */
    uint64_t *offsets; /* sl_event_offset */
    bool *truncated;   /* field truncated == true */
    char **hosts;      /* field host, or NULL */
    size_t n, cap;     /* used / allocated */
    int64_t batches;   /* write() calls */
    void (*on_write)(struct sl_stage *stage, struct t_lines *rec); /* test hook */
    void *arg;                                                     /* for the hook */
};
extern const struct sl_stage_type t_lines;

/* A fresh directory under /tmp (owned string; remove with t_rmtree, then free). */
char *t_tmpdir(void);

/* Removes `path` and everything under it. */
void t_rmtree(const char *path);

/* Writes (or appends) `len` bytes to `path`; asserts success. */
void t_write(const char *path, const void *data, size_t len, bool append);
void t_writes(const char *path, const char *text, bool append);

/* Reads a whole file (owned, NUL-terminated; *len may be NULL), or NULL if absent. */
char *t_read(const char *path, size_t *len);

/* Copies file `from` to `to` (created or truncated), as `cp` does; asserts success. */
void t_copy(const char *from, const char *to);

/* A path joined from `dir` and `name` (owned). */
char *t_path(const char *dir, const char *name);

/* Writes numbered lines first..last-1 ("<n>\n") to path. */
void t_write_numbers(const char *path, int first, int last, bool append);

/* How the follow tests watch: [0] inotify, [1] poll every 20 ms (YAML lines). */
extern const char *const t_follow_modes[2];

/* Builds file source (follow, rotate_wait 100ms unless `opts` says, watch by `mode`, options `opts`
 * with `%s` = dir) -> t_lines in `p`, with `fn` as the sink's write hook, and runs it to
 * its stop. `fn` is also called every 5 ms with a NULL stage, for steps that wait on the
 * source itself rather than on lines delivered; after 10 s the pipeline is stopped, so
 * that a test whose lines never all come fails on its assertions instead of hanging.
 * Returns the recorder. */
struct t_lines *t_follow(struct sl_pipeline *p, const char *dir, int mode, const char *opts,
                         void (*fn)(struct sl_stage *, struct t_lines *));

/* A pipeline log callback (sl_pipeline_options.log) that appends "level stage: msg\n"
 * to t_log_text (owned by the helpers; t_log_clear empties it). */
extern char *t_log_text;
void t_log_capture(void *arg, enum sl_log_level level, const char *stage, const char *msg);
void t_log_clear(void);

/* Asserts that the recorder saw exactly the numbers first..last-1, each once, in any
 * order. */
void t_assert_numbers_once(const struct t_lines *rec, int first, int last);

/* Runs the sqlite3 CLI on database `db` with `sql` (one or more statements); returns
 * what it printed (owned: free), e.g. "1,2\n" for SELECT group_concat(x) FROM t. */
char *t_sqlite(const char *db, const char *sql);

/* fork(), the child killed with the thread that called it: a test that times out (its
 * process killed by criterion) leaves no child behind to hold the test's output open. */
pid_t t_fork(void);

#endif
