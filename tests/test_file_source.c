/* The file source in batch mode (follow: false) and the stdin source: framing, oversize
 * and binary lines, globs, metadata, checkpoints across runs. Every test reads real
 * files in a fresh temporary directory and runs the pipeline to its end. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sluice/builtins.h>

#include "helpers.h"
#include "helpers_file.h"
#include "../connectors/file/internal.h"

static char *dir;
static struct sl_pipeline *p;

static struct sl_pipeline *new_pipeline(uint32_t batch_events)
{
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.data_dir = dir;
    o.log = t_log_capture;
    if (batch_events) o.batch_max_events = batch_events;
    struct sl_error err = {0};
    struct sl_pipeline *np = sl_pipeline_new(NULL, &o, &err);
    cr_assert_not_null(np, "%s", err.msg);
    return np;
}

static void setup(void)
{
    dir = t_tmpdir();
    p = new_pipeline(0);
}

static void teardown(void)
{
    sl_pipeline_free(p);
    t_rmtree(dir);
    free(dir);
    t_log_clear();
}

TestSuite(file_source, .init = setup, .fini = teardown, .timeout = 30);

/* Builds file source (YAML options, `%s` replaced by the directory) -> t_lines, runs it
 * to the end, and returns the recorder. */
static struct t_lines *run_source(const char *opts_fmt)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml, opts_fmt, dir, dir);
    struct sl_stage *src = t_add(p, "src", &sl_stage_file_source, yaml);
    struct sl_stage *out = t_add(p, "out", &t_lines, NULL);
    t_connect(p, src, out);
    struct sl_error err = {0};
    int rc = sl_pipeline_run(p, &err);
    cr_assert_eq(rc, 0, "run: %s (%s)", err.msg, err.stage);
    cr_assert_eq(sl_pipeline_live_batches(p), 0);
    return sl_stage_state(out);
}

/* Frees the pipeline (saving checkpoints) and makes a new one. */
static void restart(uint32_t batch_events)
{
    sl_pipeline_free(p);
    p = new_pipeline(batch_events);
}

Test(file_source, reads_a_file_whole_with_offsets_origin_and_host)
{
    char *f = t_path(dir, "app.log");
    t_write_numbers(f, 0, 20000, false);
    struct t_lines *r = run_source("path: %s/app.log\nfollow: false");
    cr_assert_eq(r->n, 20000);
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    uint64_t off = 0;
    for (size_t i = 0; i < r->n; i++) {
        char want[24];
        snprintf(want, sizeof want, "%zu", i);
        cr_assert_str_eq(r->lines[i], want);
        cr_assert_eq(r->offsets[i], off, "offset of line %zu", i);
        cr_assert_str_eq(r->origins[i], f);
        cr_assert_str_eq(r->hosts[i], host);
        off += strlen(want) + 1;
    }
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(sl_pipeline_find(p, "src"), &st);
    cr_assert_eq(st.acked, 20000);
    cr_assert_eq(st.progress_done, off);
    free(f);
}

Test(file_source, small_batches_split_blocks_without_losing_a_line)
{
    restart(7);
    char *f = t_path(dir, "app.log");
    t_write_numbers(f, 0, 50000, false);
    struct t_lines *r = run_source("path: %s/app.log\nfollow: false\nread_buffer: 4KiB");
    cr_assert_eq(r->n, 50000);
    for (size_t i = 0; i < r->n; i++) cr_assert_eq(atol(r->lines[i]), (long)i);
    free(f);
}

Test(file_source, crlf_empty_lines_and_a_last_line_without_newline)
{
    char *f = t_path(dir, "a.log");
    t_writes(f, "one\r\n\ntwo\n\r\nlast", false);
    struct t_lines *r = run_source("path: %s/a.log\nfollow: false");
    cr_assert_eq(r->n, 5);
    const char *want[] = {"one", "", "two", "", "last"};
    for (int i = 0; i < 5; i++) cr_assert_str_eq(r->lines[i], want[i]);
    cr_assert_eq(r->offsets[4], 12);
    free(f);
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

Test(file_source, oversize_lines_are_cut_and_flagged_in_bounded_memory)
{
    char *f = t_path(dir, "big.log");
    char *huge = repeat('x', 50000), *mid = repeat('m', 6000);
    t_writes(f, "short\n", false);
    t_writes(f, huge, true); /* longer than max_line and than a read */
    t_writes(f, "\n", true);
    t_writes(f, mid, true); /* longer than a read, within max_line */
    t_writes(f, "\nafter\n", true);
    t_writes(f, huge, true); /* oversize last line without newline */
    struct t_lines *r = run_source("path: %s/big.log\nfollow: false\nread_buffer: 4KiB\n"
                                   "max_line_bytes: 10000");
    cr_assert_eq(r->n, 5);
    cr_assert_str_eq(r->lines[0], "short");
    cr_assert_eq(r->lens[1], 10000);
    cr_assert(r->truncated[1]);
    cr_assert_eq(strspn(r->lines[1], "x"), 10000);
    cr_assert_str_eq(r->lines[2], mid);
    cr_assert_not(r->truncated[2]);
    cr_assert_str_eq(r->lines[3], "after");
    cr_assert_eq(r->lens[4], 10000);
    cr_assert(r->truncated[4]);
    cr_assert_eq(r->offsets[3], 6 + 50001 + 6001);
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(sl_pipeline_find(p, "src"), &st);
    cr_assert_eq(st.errors, 2);
    free(huge);
    free(mid);
    free(f);
}

Test(file_source, oversize_lines_can_be_dropped_and_counted)
{
    char *f = t_path(dir, "big.log");
    char *huge = repeat('y', 300);
    t_writes(f, "a\n", false);
    t_writes(f, huge, true);
    t_writes(f, "\nb\n", true);
    struct t_lines *r =
        run_source("path: %s/big.log\nfollow: false\nmax_line_bytes: 100\non_oversize: drop");
    cr_assert_eq(r->n, 2);
    cr_assert_str_eq(r->lines[0], "a");
    cr_assert_str_eq(r->lines[1], "b");
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(sl_pipeline_find(p, "src"), &st);
    cr_assert_eq(st.dropped, 1);
    free(huge);
    free(f);
}

static const char binary[] = "nul\0byte\n\xff\xfe bad\nok \xc3\xa9\n\xe2\x82 cut\n";

Test(file_source, binary_lines_pass_untouched_by_default)
{
    char *f = t_path(dir, "bin.log");
    t_write(f, binary, sizeof binary - 1, false);
    struct t_lines *r = run_source("path: %s/bin.log\nfollow: false");
    cr_assert_eq(r->n, 4);
    cr_assert_eq(r->lens[0], 8);
    cr_assert(memcmp(r->lines[0], "nul\0byte", 8) == 0);
    cr_assert_str_eq(r->lines[1], "\xff\xfe bad");
    cr_assert_str_eq(r->lines[2], "ok \xc3\xa9");
    cr_assert_str_eq(r->lines[3], "\xe2\x82 cut");
    free(f);
}

Test(file_source, utf8_check_replaces_invalid_sequences)
{
    char *f = t_path(dir, "bin.log");
    t_write(f, binary, sizeof binary - 1, false);
    struct t_lines *r = run_source("path: %s/bin.log\nfollow: false\nencoding: utf8");
    cr_assert_eq(r->n, 4);
    cr_assert_eq(r->lens[0], 8); /* NUL is valid UTF-8 */
    cr_assert_str_eq(r->lines[1], "\xef\xbf\xbd\xef\xbf\xbd bad");
    cr_assert_str_eq(r->lines[2], "ok \xc3\xa9");
    cr_assert_str_eq(r->lines[3], "\xef\xbf\xbd cut"); /* a cut sequence is one U+FFFD */
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(sl_pipeline_find(p, "src"), &st);
    cr_assert_eq(st.errors, 2);
    free(f);
}

Test(file_source, utf8_check_can_drop_invalid_lines)
{
    char *f = t_path(dir, "bin.log");
    t_write(f, binary, sizeof binary - 1, false);
    struct t_lines *r =
        run_source("path: %s/bin.log\nfollow: false\nencoding: utf8\ninvalid_utf8: drop");
    cr_assert_eq(r->n, 2);
    cr_assert_str_eq(r->lines[1], "ok \xc3\xa9");
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(sl_pipeline_find(p, "src"), &st);
    cr_assert_eq(st.dropped, 2);
    free(f);
}

Test(file_source, globs_lists_and_excludes)
{
    char *a = t_path(dir, "a.log"), *b = t_path(dir, "b.log"), *c = t_path(dir, "c.txt"),
         *d = t_path(dir, "skip.log");
    t_write_numbers(a, 0, 100, false);
    t_write_numbers(b, 100, 200, false);
    t_write_numbers(c, 200, 300, false);
    t_write_numbers(d, 900, 1000, false);
    struct t_lines *r = run_source("path: [\"%s/*.log\", \"%s/c.txt\"]\nexclude: skip.*\n"
                                   "follow: false");
    t_assert_numbers_once(r, 0, 300);
    free(a), free(b), free(c), free(d);
}

Test(file_source, no_matching_file_ends_at_once)
{
    struct t_lines *r = run_source("path: %s/none-*.log\nfollow: false");
    cr_assert_eq(r->n, 0);
}

Test(file_source, checkpoint_resumes_where_the_last_run_was_acknowledged)
{
    char *f = t_path(dir, "app.log");
    t_write_numbers(f, 0, 1000, false);
    struct t_lines *r = run_source("path: %s/app.log\nfollow: false");
    t_assert_numbers_once(r, 0, 1000);
    restart(0);
    t_write_numbers(f, 1000, 1500, true);
    r = run_source("path: %s/app.log\nfollow: false");
    t_assert_numbers_once(r, 1000, 1500);
    restart(0);
    r = run_source("path: %s/app.log\nfollow: false");
    cr_assert_eq(r->n, 0);
    char *db = t_path(dir, "checkpoints.db");
    cr_assert(access(db, F_OK) == 0, "checkpoints.db in the data directory");
    free(db);
    free(f);
}

Test(file_source, renamed_file_is_recognised_by_its_identity)
{
    char *a = t_path(dir, "a.log"), *b = t_path(dir, "b.log");
    t_write_numbers(a, 0, 300, false);
    struct t_lines *r = run_source("path: %s/*.log\nfollow: false");
    t_assert_numbers_once(r, 0, 300);
    restart(0);
    cr_assert_eq(rename(a, b), 0);
    t_write_numbers(b, 300, 350, true);
    r = run_source("path: %s/*.log\nfollow: false");
    t_assert_numbers_once(r, 300, 350);
    free(a), free(b);
}

/* Runs the sqlite3 CLI on the checkpoint database `db` with `sql`; returns its output
 * (owned) with every occurrence of the test directory removed. */
static char *sqlite(const char *db, const char *sql)
{
    char *script = t_path(dir, "q.sql"), *out = t_path(dir, "q.out");
    t_writes(script, sql, false);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "sqlite3 %s < %s > %s", db, script, out);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char *text = t_read(out, NULL), *res = calloc(1, strlen(text) + 1);
    size_t dl = strlen(dir), o = 0;
    for (const char *q = text; *q;)
        if (strncmp(q, dir, dl) == 0 && q[dl] == '/')
            q += dl + 1;
        else
            res[o++] = *q++;
    free(text), free(script), free(out);
    return res;
}

/* Rows of files that are gone for longer than checkpoint_retention are deleted at start;
 * the rows of files that are still there, of recent files and of other sources stay. */
Test(file_source, checkpoints_of_files_gone_for_long_are_purged_at_start)
{
    char *live = t_path(dir, "live.log"), *outside = t_path(dir, "outside.txt");
    char *db = t_path(dir, "ck.db");
    t_write_numbers(live, 0, 100, false);
    t_writes(outside, "not matched by the glob\n", false);
    struct t_lines *r = run_source("path: %s/*.log\nfollow: false\ncheckpoint: %s/ck.db");
    t_assert_numbers_once(r, 0, 100);
    restart(0);
    struct stat st;
    cr_assert_eq(stat(outside, &st), 0);
    char sql[2048];
    long long old = (long long)time(NULL) - 30 * 86400, recent = (long long)time(NULL) - 60;
    const char *cols = "INSERT INTO file_checkpoints (source, dev, ino, fp, fp_len, offset, path,"
                       " updated) VALUES";
    snprintf(sql, sizeof sql,
             "UPDATE file_checkpoints SET updated = %lld;\n"
             "%s ('src', 1, 1, 0, 0, 5, '%s/gone.log', %lld);\n"          /* gone, long ago */
             "%s ('src', 1, 2, 0, 0, 5, '%s/gone2.log', %lld);\n"         /* gone, recently */
             "%s ('src', %llu, %llu, 0, 0, 5, '%s/outside.txt', %lld);\n" /* still there */
             "%s ('src', 1, 3, 0, 0, 5, '%s/live.log', %lld);\n"          /* path reused */
             "%s ('other', 1, 4, 0, 0, 5, '%s/gone3.log', %lld);\n",      /* another source */
             old, cols, dir, old, cols, dir, recent, cols, (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino, dir, old, cols, dir, old, cols, dir, old);
    free(sqlite(db, sql));
    const char *list = "SELECT source, path FROM file_checkpoints ORDER BY 1, 2, ino;\n";
    char *before = sqlite(db, list);
    r = run_source("path: %s/*.log\nfollow: false\ncheckpoint: %s/ck.db\ncheckpoint_retention: 0");
    cr_assert_eq(r->n, 0, "the live file resumes at its end");
    restart(0);
    char *kept = sqlite(db, list);
    cr_assert_str_eq(kept, before, "retention 0 keeps every row");
    cr_assert_str_eq(kept, "other|gone3.log\nsrc|gone.log\nsrc|gone2.log\nsrc|live.log\n"
                           "src|live.log\nsrc|outside.txt\n");
    free(sqlite(db, "UPDATE file_checkpoints SET updated = updated - 30 * 86400"
                    " WHERE path LIKE '%live.log';\n"));
    t_write_numbers(live, 100, 150, true);
    r = run_source("path: %s/*.log\nfollow: false\ncheckpoint: %s/ck.db");
    t_assert_numbers_once(r, 100, 150); /* its row was kept: it resumed */
    char *after = sqlite(db, list);
    cr_assert_str_eq(after, "other|gone3.log\nsrc|gone2.log\nsrc|live.log\nsrc|outside.txt\n");
    free(before), free(kept), free(after);
    free(live), free(outside), free(db);
}

/* A database made before rows said whether a file was renamed away gets the column, and
 * its rows are used as they are. */
Test(file_source, a_checkpoint_database_without_the_rotated_column_is_upgraded)
{
    char *a = t_path(dir, "a.log"), *db = t_path(dir, "old.db");
    t_write_numbers(a, 0, 100, false);
    struct stat st;
    cr_assert_eq(stat(a, &st), 0);
    size_t len;
    char *text = t_read(a, &len);
    char sql[2048];
    snprintf(sql, sizeof sql,
             "CREATE TABLE file_checkpoints (source TEXT NOT NULL, dev INTEGER NOT NULL,"
             " ino INTEGER NOT NULL, fp INTEGER NOT NULL, fp_len INTEGER NOT NULL,"
             " offset INTEGER NOT NULL, path TEXT, updated INTEGER NOT NULL,"
             " PRIMARY KEY (source, dev, ino));\n"
             "INSERT INTO file_checkpoints VALUES ('src', %llu, %llu, %lld, 256, 140, '%s', 0);\n",
             (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
             (long long)sl__file_hash(text, 256), a);
    free(sqlite(db, sql));
    struct t_lines *r = run_source("path: %s/a.log\nfollow: false\ncheckpoint: %s/old.db");
    t_assert_numbers_once(r, 50, 100); /* byte 140 is where line 50 starts */
    restart(0);
    char *rows = sqlite(db, "SELECT offset, rotated FROM file_checkpoints;\n");
    cr_assert_str_eq(rows, "290|0\n");
    free(rows), free(text), free(a), free(db);
}

Test(file_source, recreated_file_is_read_from_its_start)
{
    char *a = t_path(dir, "a.log"), *ck = t_path(dir, "state/ck.db");
    t_write_numbers(a, 0, 300, false);
    struct t_lines *r = run_source("path: %s/a.log\nfollow: false\ncheckpoint: %s/state/ck.db");
    t_assert_numbers_once(r, 0, 300);
    restart(0);
    unlink(a);
    t_write_numbers(a, 5000, 5400, false); /* may well get the same inode */
    r = run_source("path: %s/a.log\nfollow: false\ncheckpoint: %s/state/ck.db");
    t_assert_numbers_once(r, 5000, 5400);
    cr_assert(access(ck, F_OK) == 0);
    free(a), free(ck);
}

/* A file shorter than a fingerprint (256 bytes) is identified by its inode and all of its
 * bytes: the file that takes its inode after it is deleted, starting with the same bytes
 * and longer, is a new file read whole, not the old one grown. */
Test(file_source, a_reused_inode_is_not_taken_for_the_short_file_it_held)
{
    char *a = t_path(dir, "a.log");
    t_writes(a, "start\n", false);
    struct t_lines *r = run_source("path: %s/a.log\nfollow: false");
    cr_assert_eq(r->n, 1);
    restart(0);
    struct stat before, after;
    cr_assert_eq(stat(a, &before), 0);
    cr_assert_eq(unlink(a), 0);
    t_writes(a, "start\nsecond\nthird\n", false);
    cr_assert_eq(stat(a, &after), 0);
    r = run_source("path: %s/a.log\nfollow: false");
    if (before.st_ino != after.st_ino) cr_skip_test("the filesystem gave a new inode");
    cr_assert_eq(r->n, 3, "a new file on the inode: read from its start");
    cr_assert_str_eq(r->lines[0], "start");
    cr_assert_str_eq(r->lines[2], "third");
    free(a);
}

/* copytruncate while sluice is stopped, with the copies in the glob: the copy holds the
 * first bytes the checkpoint of app.log has, and is read from that checkpoint's offset on
 * (the lines app.log got after the last run); app.log, whose first bytes changed, is read
 * from its start. */
Test(file_source, a_copy_made_while_stopped_is_read_from_where_its_original_was)
{
    char *a = t_path(dir, "app.log"), *a1 = t_path(dir, "app.log.1");
    t_write_numbers(a, 0, 100, false);
    t_assert_numbers_once(run_source("path: %s/app.log*\nfollow: false"), 0, 100);
    restart(0);
    t_write_numbers(a, 100, 150, true);
    t_copy(a, a1);
    t_write_numbers(a, 150, 400, false);
    t_assert_numbers_once(run_source("path: %s/app.log*\nfollow: false"), 100, 400);
    free(a), free(a1);
}

Test(file_source, read_from_end_skips_what_exists_at_the_first_start)
{
    char *a = t_path(dir, "a.log");
    t_write_numbers(a, 0, 100, false);
    struct t_lines *r = run_source("path: %s/a.log\nfollow: false\nread_from: end");
    cr_assert_eq(r->n, 0);
    restart(0);
    t_write_numbers(a, 100, 150, true);
    r = run_source("path: %s/a.log\nfollow: false\nread_from: end");
    t_assert_numbers_once(r, 100, 150);
    free(a);
}

Test(file_source, only_acknowledged_lines_are_checkpointed)
{
    char *a = t_path(dir, "a.log");
    t_write_numbers(a, 0, 5000, false);
    char yaml[512];
    snprintf(yaml, sizeof yaml, "path: %s/a.log\nfollow: false", dir);
    struct sl_stage *src = t_add(p, "src", &sl_stage_file_source, yaml);
    struct sl_stage *out = t_add(p, "out", &t_collect, "fail_at: 3210");
    t_connect(p, src, out);
    struct sl_error err = {0};
    cr_assert_eq(sl_pipeline_run(p, &err), SL_EIO);
    int64_t acked = ((struct t_collect *)sl_stage_state(out))->acked;
    cr_assert_leq(acked, 3210);
    cr_assert_gt(acked, 0);
    restart(0);
    struct t_lines *r = run_source("path: %s/a.log\nfollow: false");
    cr_assert_eq((int64_t)r->n, 5000 - acked, "resumed with %zu lines after %lld acked", r->n,
                 (long long)acked);
    for (size_t i = 0; i < r->n; i++) cr_assert_eq(atol(r->lines[i]), acked + (long)i);
    free(a);
}

Test(file_source, a_glob_over_the_data_directory_skips_the_checkpoint_database)
{
    char *a = t_path(dir, "a.log");
    t_write_numbers(a, 0, 100, false);
    struct t_lines *r = run_source("path: %s/*\nfollow: false");
    t_assert_numbers_once(r, 0, 100);
    restart(0); /* now checkpoints.db and its -wal exist before the scan too */
    t_write_numbers(a, 100, 110, true);
    r = run_source("path: %s/*\nfollow: false");
    t_assert_numbers_once(r, 100, 110);
    free(a);
}

/* ---- files that cannot be read ------------------------------------------------------- */

/* The tests run as root, and root reads a file whatever its mode or its directory's (a
 * file in a directory of mode 000 too), and opens a FIFO without error. What fails for
 * root as for anyone is a path that cannot be resolved: a symbolic link to itself
 * (ELOOP), which a glob still matches as a directory entry, and a path through a regular
 * file (ENOTDIR). They take the same road as EACCES: open() or stat() fails with errno. */

/* file source (opts, `%s` = dir) -> t_lines, run to its end; returns the run's code. */
static int run_failing(const char *opts_fmt, struct sl_error *err)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml, opts_fmt, dir, dir);
    struct sl_stage *src = t_add(p, "src", &sl_stage_file_source, yaml);
    t_connect(p, src, t_add(p, "out", &t_lines, NULL));
    return sl_pipeline_run(p, err);
}

Test(file_source, an_unreadable_file_fails_a_run_that_does_not_follow)
{
    char *loop = t_path(dir, "loop.log");
    cr_assert_eq(symlink("loop.log", loop), 0);
    struct sl_error err = {0};
    cr_assert_eq(run_failing("path: %s/*.log\nfollow: false", &err), SL_EIO);
    char want[1024];
    snprintf(want, sizeof want, "cannot open %s: Too many levels of symbolic links", loop);
    cr_assert_str_eq(err.msg, want);
    cr_assert_str_eq(err.stage, "src");
    cr_assert_null(strstr(t_log_text ? t_log_text : "", "no file matches"), "%s", t_log_text);
    free(loop);
}

Test(file_source, a_path_through_a_regular_file_fails_with_its_reason)
{
    char *f = t_path(dir, "file");
    t_writes(f, "not a directory\n", false);
    struct sl_error err = {0};
    cr_assert_eq(run_failing("path: %s/file/app.log\nfollow: false", &err), SL_EIO);
    char want[1024];
    snprintf(want, sizeof want, "cannot open %s/app.log: Not a directory", f);
    cr_assert_str_eq(err.msg, want);
    free(f);
}

Test(file_source, an_unreadable_file_beside_readable_ones_is_reported_and_the_others_read)
{
    char *loop = t_path(dir, "loop.log"), *a = t_path(dir, "a.log");
    cr_assert_eq(symlink("loop.log", loop), 0);
    t_write_numbers(a, 0, 100, false);
    struct t_lines *r = run_source("path: %s/*.log\nfollow: false");
    t_assert_numbers_once(r, 0, 100);
    char want[1024];
    snprintf(want, sizeof want, "warn src: cannot open %s: Too many levels of symbolic links\n",
             loop);
    cr_assert_not_null(strstr(t_log_text, want), "%s", t_log_text);
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(sl_pipeline_find(p, "src"), &st);
    cr_assert_eq(st.errors, 1);
    free(loop), free(a);
}
