/* file_copy: a file -> file pipeline built with the C API, for the crash-restart test
 * (killed with SIGKILL at random points, then run again) and by hand.
 *
 *   file_copy INPUT-GLOB OUTPUT-PATH DATA-DIR [follow|once [SOURCE-OPTIONS]]
 *
 * Reads INPUT-GLOB from the beginning (checkpoints in DATA-DIR/checkpoints.db, saved as
 * the source's options say: the defaults, or SOURCE-OPTIONS, YAML lines such as
 * "checkpoint_bytes: 1MiB") and appends every line to OUTPUT-PATH. Without `follow` it
 * ends when the input is read; exit status 0 on success. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/builtins.h>
#include <sluice/sluice.h>

static struct sl_stage *add(struct sl_pipeline *p, const char *name,
                            const struct sl_stage_type *type, const char *yaml)
{
    struct sl_error err = {0};
    struct sl_config *cfg = sl_config_parse(yaml, strlen(yaml), "file_copy", &err);
    struct sl_stage *s = cfg ? sl_pipeline_add(p, name, type, cfg, &err) : NULL;
    sl_config_free(cfg); /* the stage took its own reference */
    if (!s) fprintf(stderr, "file_copy: %s: %s\n", name, err.msg);
    return s;
}

/* With FILE_COPY_LOG set, the pipeline's log lines go to stderr (for a look by hand). */
static void log_line(void *arg, enum sl_log_level level, const char *stage, const char *msg)
{
    (void)arg;
    fprintf(stderr, "file_copy: %d %s: %s\n", (int)level, stage ? stage : "-", msg);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: file_copy INPUT-GLOB OUTPUT-PATH DATA-DIR [follow|once "
                        "[SOURCE-OPTIONS]]\n");
        return 2;
    }
    bool follow = argc > 4 && strcmp(argv[4], "follow") == 0;
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.data_dir = argv[3];
    if (getenv("FILE_COPY_LOG")) o.log = log_line;
    struct sl_error err = {0};
    struct sl_pipeline *p = sl_pipeline_new(NULL, &o, &err); /* owned: sl_pipeline_free */
    if (!p) {
        fprintf(stderr, "file_copy: %s\n", err.msg);
        return 1;
    }
    char yaml[8192];
    snprintf(yaml, sizeof yaml, "path: \"%s\"\nfollow: %s\nhost_key: \"\"\n%s", argv[1],
             follow ? "true" : "false", argc > 5 ? argv[5] : "");
    struct sl_stage *src = add(p, "in", &sl_stage_file_source, yaml);
    snprintf(yaml, sizeof yaml, "path: \"%s\"\nencoding: text", argv[2]);
    struct sl_stage *out = add(p, "out", &sl_stage_file_sink, yaml);
    int rc = src && out ? sl_pipeline_connect(p, src, NULL, out, &err) : 1;
    if (!rc) rc = sl_pipeline_catch_signals(p, NULL, NULL);
    if (!rc) rc = sl_pipeline_run(p, &err);
    if (rc) {
        char buf[1024];
        fprintf(stderr, "file_copy: %s\n", sl_error_format(&err, buf, sizeof buf));
    }
    sl_pipeline_free(p); /* saves the last checkpoints */
    return rc ? 1 : 0;
}
