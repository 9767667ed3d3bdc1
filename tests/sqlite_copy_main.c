/* sqlite_copy: a file -> sqlite pipeline built with the C API, for the crash-restart test
 * of the sqlite sink (killed with SIGKILL at random points, then run again) and by hand.
 *
 *   sqlite_copy INPUT-GLOB DATABASE DATA-DIR [insert|upsert]
 *
 * Reads INPUT-GLOB from the beginning, to its end (follow: false; checkpoints in
 * DATA-DIR/checkpoints.db) and writes every line as a row of table `lines` (column
 * `line`, made with create_table) of DATABASE. With `upsert` the line is a unique key
 * and a line written again replaces itself; with `insert` (the default) a line replayed
 * after a crash is a second row. Exit status 0 on success. SQLITE_COPY_LOG=1 prints the
 * pipeline's log lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/builtins.h>
#include <sluice/sluice.h>

static struct sl_stage *add(struct sl_pipeline *p, const char *name,
                            const struct sl_stage_type *type, const char *yaml)
{
    struct sl_error err = {0};
    struct sl_config *cfg = sl_config_parse(yaml, strlen(yaml), "sqlite_copy", &err);
    struct sl_stage *s = cfg ? sl_pipeline_add(p, name, type, cfg, &err) : NULL;
    sl_config_free(cfg); /* the stage took its own reference */
    if (!s) fprintf(stderr, "sqlite_copy: %s: %s\n", name, err.msg);
    return s;
}

static void log_line(void *arg, enum sl_log_level level, const char *stage, const char *msg)
{
    (void)arg;
    fprintf(stderr, "sqlite_copy: %d %s: %s\n", (int)level, stage ? stage : "-", msg);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: sqlite_copy INPUT-GLOB DATABASE DATA-DIR [insert|upsert]\n");
        return 2;
    }
    bool upsert = argc > 4 && strcmp(argv[4], "upsert") == 0;
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.data_dir = argv[3];
    if (getenv("SQLITE_COPY_LOG")) o.log = log_line;
    struct sl_error err = {0};
    struct sl_pipeline *p = sl_pipeline_new(NULL, &o, &err); /* owned: sl_pipeline_free */
    if (!p) {
        fprintf(stderr, "sqlite_copy: %s\n", err.msg);
        return 1;
    }
    char yaml[8192];
    snprintf(yaml, sizeof yaml, "path: \"%s\"\nfollow: false\nhost_key: \"\"\n", argv[1]);
    struct sl_stage *src = add(p, "in", &sl_stage_file_source, yaml);
    snprintf(yaml, sizeof yaml,
             "path: \"%s\"\ntable: lines\ncreate_table: true\n"
             "columns: {line: {value: message, type: TEXT NOT NULL}}\n%s",
             argv[2], upsert ? "mode: upsert\nkey: [line]\n" : "");
    struct sl_stage *out = add(p, "out", &sl_stage_sqlite_sink, yaml);
    int rc = src && out ? sl_pipeline_connect(p, src, NULL, out, &err) : 1;
    if (!rc) rc = sl_pipeline_catch_signals(p, NULL, NULL);
    if (!rc) rc = sl_pipeline_run(p, &err);
    if (rc) {
        char buf[1024];
        fprintf(stderr, "sqlite_copy: %s\n", sl_error_format(&err, buf, sizeof buf));
    }
    sl_pipeline_free(p); /* saves the last checkpoints */
    return rc ? 1 : 0;
}
