/* Test helpers for the stages of stages/: a source of text lines and a sink that keeps
 * what it receives (payloads, JSON form, times, which output they came from), plus a
 * way to run a pipeline and read the results. */
#ifndef SLUICE_TEST_STAGE_HELPERS_H
#define SLUICE_TEST_STAGE_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/sluice.h>

/* Source "t_text": one event per line, the payload being the line without its '\n'.
 * Options: lines (a list of strings), file (a path: its lines follow those of `lines`),
 * files (a list of paths: each whole file is one more event, after the lines),
 * batch (events per batch, default 100), pause_after (after this many lines, answer
 * PENDING until t_text_resume(); 0: never), borrow (payloads point at the `lines` items
 * themselves, which must outlive the run: for guard-page tests). Each event's origin is
 * the stage's name, or option `origin`, and its offset the line number (0-based). */
struct t_text {
    struct sl_list lines; /* option */
    const char *file;     /* option */
    struct sl_list files; /* option */
    int64_t batch;        /* option */
    int64_t pause_after;  /* option */
    const char *origin;   /* option */
    bool borrow;          /* option: payloads point at the `lines` items, not copies */
    const size_t *lens;   /* with borrow: the items' lengths (set by the test) */
    char *text;           /* all lines, '\n'-separated (owned) */
    size_t *off, *len;    /* each line */
    size_t n, next;       /* lines / next to emit */
    int64_t acked;        /* events acknowledged back (ack hook) */
    bool paused;          /* waiting for t_text_resume */
    bool resumed;         /* pause over */
};
extern const struct sl_stage_type t_text;

/* Lets a paused t_text go on (it is woken). Loop thread. */
void t_text_resume(struct sl_stage *lines);

/* Sink "t_capture": keeps a copy of everything it receives. `on_write` (test hook, may be
 * NULL) runs after each batch is recorded, before it is acknowledged. fields[i] describes event i's
 * fields as "name=T:text name=T:text", T being the type (N null, B bool, I int, F float, S string,
 * J raw JSON), text a string's decoded bytes, a number's text as written (or %lld / %.17g
 * once converted), a JSON value's raw text. When `paths` (NULL-terminated, set by the
 * test) is given, lookups[i] holds "path=T:text" (or "path=missing") for each. */
struct t_capture {
    char **payloads;          /* payloads, NUL-terminated copies */
    char **json;              /* sl_event_write_json of each event */
    char **fields;            /* field descriptions */
    char **lookups;           /* sl_event_get of each of `paths` */
    bool *in_payload;         /* every field span of the event points into its payload */
    int64_t *times;           /* sl_event_time of each */
    const char *const *paths; /* set by the test before the run */
    size_t n, cap;            /* used / allocated */
    int64_t batches;          /* write() calls */
    void (*on_write)(struct sl_stage *, struct t_capture *); /* hook */
    void *hook_arg;                                          /* for the hook */
};
extern const struct sl_stage_type t_capture;

/* A pipeline with small batches and queues for stage tests. Owned (sl_pipeline_free). */
struct sl_pipeline *t_pipeline(void);

/* Runs `p` and asserts success and no leaked batch. */
void t_run_ok(struct sl_pipeline *p);

/* Builds source -> stage(type, yaml) -> capture sink over `lines` (NULL-terminated) and
 * runs it; returns the capture (valid until `p` is freed). `*stage` receives the stage
 * under test when not NULL. */
struct t_capture *t_through(struct sl_pipeline *p, const struct sl_stage_type *type,
                            const char *yaml, const char *const *lines, struct sl_stage **stage);

/* Adds source "src" (t_text) emitting `lines` (NULL-terminated; borrowed, must outlive
 * the run). */
struct sl_stage *t_add_lines(struct sl_pipeline *p, const char *const *lines);

/* With "src" added: as t_run_after(p, src, ...). */
struct t_capture *t_run_paths(struct sl_pipeline *p, const struct sl_stage_type *type,
                              const char *yaml, const char *const *paths);

/* from -> "stage" (type, yaml) -> "out" (t_capture with `paths`, may be NULL); runs it
 * and returns out's capture. */
struct t_capture *t_run_after(struct sl_pipeline *p, struct sl_stage *from,
                              const struct sl_stage_type *type, const char *yaml,
                              const char *const *paths);

/* src(lines) -> "stage" (type, yaml) -> "out", and stage.dead_letter -> "dead"; runs it.
 * Returns out's capture; `*dead` receives the dead-letter sink. */
struct t_capture *t_run_dead_letter(struct sl_pipeline *p, const struct sl_stage_type *type,
                                    const char *yaml, const char *const *lines,
                                    struct sl_stage **dead);

/* As t_run_dead_letter, with a parse_json stage "json" (on_error: drop) before "stage":
 * for stages that read the fields of JSON lines. */
struct t_capture *t_run_dead_letter_after_json(struct sl_pipeline *p,
                                               const struct sl_stage_type *type, const char *yaml,
                                               const char *const *lines, struct sl_stage **dead);

/* Adds stage `name` of `type` with YAML options (may be NULL); asserts success. */
struct sl_stage *t_stage(struct sl_pipeline *p, const char *name, const struct sl_stage_type *type,
                         const char *yaml);

/* Connects output `port` of `from` to `to`; asserts success. */
void t_connect_port(struct sl_pipeline *p, struct sl_stage *from, const char *port,
                    struct sl_stage *to);

/* Writes "T:text" for `v` (see t_capture) into `buf` (`cap` bytes). */
void t_describe_value(const struct sl_value *v, char *buf, size_t cap);

/* The stage's counters. */
struct sl_stage_stats t_stats(struct sl_stage *s);

/* Reads the whole file at `path` into an owned NUL-terminated buffer (free); asserts. */
char *t_read_file(const char *path, size_t *len);

/* A copy of `len` bytes of `s` placed so that its last byte is the last one before a
 * PROT_NONE page: reading past it crashes. Valid until t_guard_free_all(). */
const char *t_guard_copy(const char *s, size_t len);
void t_guard_free_all(void);

/* Lines made to reach the limits (owned, NUL-terminated: free them). */

/* A JSON object of `n` members: the `head_n` members written in `head` (raw member text,
 * e.g. "\"t\":1"; NULL when head_n is 0) first, then "k<i>":<i % 10> for the rest. */
char *t_json_members(size_t n, const char *head, size_t head_n);

/* `n` pairs k<i><kv_sep><i % 10>, joined by `pair_sep`. */
char *t_kv_pairs(size_t n, const char *kv_sep, const char *pair_sep);

/* {"a":[[...]]} with `depth` containers open at the deepest point (the object counts). */
char *t_json_nested(size_t depth);

/* True when `s` ends with `suffix`. */
bool t_ends_with(const char *s, const char *suffix);

/* `$SLUICE_TESTDATA/rel` into `buf` (borrowed, `cap` bytes); returns buf. */
const char *t_testdata(char *buf, size_t cap, const char *rel);

#endif
