/* Helpers for the sqlite sink's tests: a source of the test's JSON lines that tells
 * which batches came back acknowledged, and the pipeline source -> parse_json -> sqlite
 * sink. The tables are read back with the sqlite3 CLI (t_sqlite, helpers_file.h). */
#ifndef SLUICE_TEST_HELPERS_SQLITE_SINK_H
#define SLUICE_TEST_HELPERS_SQLITE_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/sluice.h>

/* Source "t_jsonl": the lines of `t_jsonl_lines` (t_jsonl_count of them, set by the test
 * before the run) as raw events, `per_batch` a batch (option, default 100), `delay_ms`
 * between batches (option, default 0). Each acknowledged batch adds its lines to
 * `acked` and is told to `on_ack` (test hook, may be NULL). The batch's cookie is the
 * index of its first line. */
struct t_jsonl {
    int64_t per_batch; /* option */
    int64_t delay_ms;  /* option */
    size_t next;       /* next line */
    int64_t acked;     /* lines acknowledged */
    int64_t batches;   /* batches acknowledged */
    bool waiting;      /* the delay runs */
    struct sl_timer *timer;
    void (*on_ack)(struct sl_stage *stage, struct sl_batch *b); /* test hook */
};
extern const struct sl_stage_type t_jsonl;
extern const char *const *t_jsonl_lines;
extern size_t t_jsonl_count;

/* Adds t_jsonl (options `src_yaml`, may be NULL) -> parse_json -> sqlite sink "db"
 * (options `sink_fmt`, where every `%1$s` is replaced by `dir`) to `p`, and runs it.
 * Returns what sl_pipeline_run returned, with `err` filled. `*src` and `*sink` (may be
 * NULL) receive the stages. */
int t_sqlite_pipeline(struct sl_pipeline *p, const char *dir, const char *src_yaml,
                      const char *sink_fmt, struct sl_stage **src, struct sl_stage **sink,
                      struct sl_error *err);

/* The database path of the sink tests, `dir`/t.db (owned). */
char *t_db(const char *dir);

#endif
