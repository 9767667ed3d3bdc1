/* What a followed file is (connectors/file/identity.c): new content on the same inode,
 * copies under the glob, files too short to fingerprint, inodes reused; once with inotify
 * and once with polling. Each test drives its steps from the recording sink's write hook,
 * or from the helper's 5 ms tick when a step waits on the source itself (a file found,
 * released), and stops the pipeline when everything expected has arrived. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sluice/builtins.h>

#include "helpers.h"
#include "helpers_file.h"
#include "../connectors/file/internal.h"

static char *dir;
static struct sl_pipeline *p;
static int step; /* the script's position */

static void setup(void)
{
    dir = t_tmpdir();
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.data_dir = dir;
    o.log = t_log_capture;
    struct sl_error err = {0};
    p = sl_pipeline_new(NULL, &o, &err);
    cr_assert_not_null(p, "%s", err.msg);
    step = 0;
}

static void teardown(void)
{
    sl_pipeline_free(p);
    t_rmtree(dir);
    free(dir);
    t_log_clear();
}

TestSuite(file_identity, .init = setup, .fini = teardown, .timeout = 60);

static struct t_lines *follow(int mode, const char *opts,
                              void (*fn)(struct sl_stage *, struct t_lines *))
{
    return t_follow(p, dir, mode, opts, fn);
}

static struct sl__file_src *src_state(void)
{
    return sl_stage_state(sl_pipeline_find(p, "src"));
}

static char *in_dir(const char *name)
{
    return t_path(dir, name);
}

/* ---- the same path, new content -------------------------------------------------------------- */

/* While the source cannot look (the loop is busy running this hook, as a stopped reader
 * would be), the file is truncated and written again past the offset the source had
 * reached: its size says nothing happened, its first bytes say it is new content. */
static void refill_step(struct sl_stage *s, struct t_lines *r)
{
    (void)s;
    char *a = in_dir("a.log");
    if (step == 0 && r->n >= 100) {
        step++;
        t_write_numbers(a, 100, 300, false); /* O_TRUNC, then 200 lines: past byte 290 */
    } else if (step == 1 && r->n >= 300) {
        sl_pipeline_stop(p);
    }
    free(a);
}

static void truncated_and_refilled(int mode)
{
    char *a = in_dir("a.log");
    t_write_numbers(a, 0, 100, false);
    struct t_lines *r = follow(mode, "path: %s/a.log", refill_step);
    t_assert_numbers_once(r, 0, 300);
    cr_assert_eq(src_state()->truncations, 1);
    cr_assert_eq(src_state()->missed, 1, "what the old content got after 290 may be missed");
    char want[1024];
    snprintf(want, sizeof want,
             "warn src: %s: truncated and written again since it was read (its first bytes "
             "changed): reading it from the start; what it held after offset 290 may be missed\n",
             a);
    cr_assert_not_null(strstr(t_log_text, want), "%s", t_log_text);
    free(a);
}

Test(file_identity, truncated_and_refilled_past_the_offset_inotify)
{
    truncated_and_refilled(0);
}
Test(file_identity, truncated_and_refilled_past_the_offset_poll)
{
    truncated_and_refilled(1);
}

/* The checkpoint row of a file that holds new content names the old one: the new lines
 * are read only once a row with the new first bytes is saved, so that a kill after they
 * were delivered leaves the next run a row that finds the file (renamed away meanwhile). */
static void new_content_known_step(struct sl_stage *s, struct t_lines *r)
{
    if (!s) return;
    char *a = in_dir("a.log"), *db = in_dir("checkpoints.db");
    if (step == 0 && r->n >= 100) {
        step++;
        t_write_numbers(a, 100, 300, false);
    } else if (step == 1 && r->n > 100) { /* the first lines of the new content */
        step++;
        struct stat st;
        cr_assert_eq(stat(a, &st), 0);
        char *text = t_read(a, NULL), sql[256], want[64];
        snprintf(sql, sizeof sql, "SELECT fp, fp_len FROM file_checkpoints WHERE ino = %llu;",
                 (unsigned long long)st.st_ino);
        snprintf(want, sizeof want, "%lld|256\n", (long long)sl__file_hash(text, 256));
        char *rows = t_sqlite(db, sql);
        cr_assert_str_eq(rows, want, "new content delivered before a row named it");
        free(rows), free(text);
    } else if (step == 2 && r->n >= 300) {
        sl_pipeline_stop(p);
    }
    free(a), free(db);
}

static void new_content_known(int mode)
{
    char *a = in_dir("a.log");
    t_write_numbers(a, 0, 100, false);
    struct t_lines *r = follow(mode, "path: %s/a.log", new_content_known_step);
    t_assert_numbers_once(r, 0, 300);
    free(a);
}

Test(file_identity, new_content_is_known_to_the_checkpoints_before_it_is_delivered_inotify)
{
    new_content_known(0);
}
Test(file_identity, new_content_is_known_to_the_checkpoints_before_it_is_delivered_poll)
{
    new_content_known(1);
}

/* ---- copies under the glob ---------------------------------------------------------------------
 */

/* copytruncate with the copies in the glob, as logrotate does it: lines the source has not
 * read yet go to the copy (app.log.1) too, then the file is emptied and written again past
 * the old offset. Every line once: the copy is read from where the source was in the
 * original, the original from its start. */
static void copytruncate_step(struct sl_stage *s, struct t_lines *r)
{
    (void)s;
    char *a = in_dir("app.log"), *a1 = in_dir("app.log.1");
    if (step == 0 && r->n >= 100) {
        step++;
        t_write_numbers(a, 100, 150, true); /* not read yet when the copy is made */
        t_copy(a, a1);
        t_write_numbers(a, 150, 400, false);
    } else if (step == 1 && r->n >= 400) {
        sl_pipeline_stop(p);
    }
    free(a), free(a1);
}

static void copytruncate_in_glob(int mode)
{
    char *a = in_dir("app.log");
    t_write_numbers(a, 0, 100, false);
    struct t_lines *r = follow(mode, "path: %s/app.log*", copytruncate_step);
    t_assert_numbers_once(r, 0, 400);
    cr_assert_eq(src_state()->copies, 1);
    free(a);
}

Test(file_identity, copytruncate_with_copies_in_the_glob_inotify)
{
    copytruncate_in_glob(0);
}
Test(file_identity, copytruncate_with_copies_in_the_glob_poll)
{
    copytruncate_in_glob(1);
}

/* A copy of what was read (cp app.log app.log.bak) is recognised by its first 256 bytes
 * and skipped: it holds nothing the source has not delivered. */
static void copy_step(struct sl_stage *s, struct t_lines *r)
{
    (void)s;
    char *a = in_dir("app.log"), *bak = in_dir("app.log.bak");
    if (step == 0 && r->n >= 100) {
        step++;
        t_copy(a, bak);
        t_write_numbers(a, 100, 110, true);
    } else if (step == 1 && r->n >= 110) {
        sl_pipeline_stop(p);
    }
    free(a), free(bak);
}

static void copy_of_what_was_read(int mode)
{
    char *a = in_dir("app.log");
    t_write_numbers(a, 0, 100, false);
    struct t_lines *r = follow(mode, "path: %s/app.log*", copy_step);
    t_assert_numbers_once(r, 0, 110);
    cr_assert_eq(src_state()->copies, 1);
    free(a);
}

Test(file_identity, a_copy_of_what_was_read_is_skipped_inotify)
{
    copy_of_what_was_read(0);
}
Test(file_identity, a_copy_of_what_was_read_is_skipped_poll)
{
    copy_of_what_was_read(1);
}

/* Every generation of this log begins with the same 300-byte banner: the new app.log of
 * a create-style rotation has the first 256 bytes of the renamed one, yet it is no copy
 * of it (what follows the banner differs), and is read whole. */
static const char *banner(void)
{
    static char b[301];
    memset(b, '=', 299);
    b[299] = '\n';
    return b;
}

static void banner_step(struct sl_stage *s, struct t_lines *r)
{
    (void)s;
    char *a = in_dir("app.log"), *a1 = in_dir("app.log.1");
    if (step == 0 && r->n >= 101) {
        step++;
        cr_assert_eq(rename(a, a1), 0);
        t_writes(a, banner(), false);
        t_write_numbers(a, 100, 200, true);
    } else if (step == 1 && r->n >= 202) {
        sl_pipeline_stop(p);
    }
    free(a), free(a1);
}

static void same_banner(int mode)
{
    char *a = in_dir("app.log");
    t_writes(a, banner(), false);
    t_write_numbers(a, 0, 100, true);
    struct t_lines *r = follow(mode, "path: %s/app.log", banner_step);
    cr_assert_eq(r->n, 202, "%s", t_log_text);
    int numbers[200] = {0};
    for (size_t i = 0; i < r->n; i++)
        if (r->lines[i][0] != '=') numbers[atoi(r->lines[i])]++;
    for (int i = 0; i < 200; i++) cr_assert_eq(numbers[i], 1, "line %d", i);
    cr_assert_eq(src_state()->copies, 0);
    free(a);
}

Test(file_identity, a_new_generation_with_the_same_banner_is_no_copy_inotify)
{
    same_banner(0);
}
Test(file_identity, a_new_generation_with_the_same_banner_is_no_copy_poll)
{
    same_banner(1);
}

/* The copy is found while it is being written, shorter than a fingerprint: its bytes
 * begin like a known file, so the source waits for it to grow before it decides. */
static void growing_copy_step(struct sl_stage *s, struct t_lines *r)
{
    (void)s;
    char *a = in_dir("app.log"), *a1 = in_dir("app.log.1");
    if (step == 0 && r->n >= 100) {
        step++;
        size_t len;
        char *data = t_read(a, &len);
        t_write(a1, data, 100, false); /* the first 100 of 290 bytes */
        free(data);
    } else if (step == 1 && src_state()->opened >= 2) { /* the source has found it */
        step++;
        size_t len;
        char *data = t_read(a, &len);
        t_write(a1, data + 100, len - 100, true);
        free(data);
        t_write_numbers(a, 100, 110, true);
    } else if (step == 2 && r->n >= 110) {
        sl_pipeline_stop(p);
    }
    free(a), free(a1);
}

static void copy_being_written(int mode)
{
    char *a = in_dir("app.log");
    t_write_numbers(a, 0, 100, false);
    struct t_lines *r = follow(mode, "path: %s/app.log*", growing_copy_step);
    t_assert_numbers_once(r, 0, 110);
    cr_assert_eq(src_state()->copies, 1);
    free(a);
}

Test(file_identity, a_copy_found_while_being_written_is_recognised_inotify)
{
    copy_being_written(0);
}
Test(file_identity, a_copy_found_while_being_written_is_recognised_poll)
{
    copy_being_written(1);
}

/* A file too short to fingerprint that begins like another is not taken for a copy of
 * it: once it has not grown for partial_line_timeout, it is read as the file it is. */
static void short_step(struct sl_stage *s, struct t_lines *r)
{
    (void)s;
    char *b = in_dir("b.log");
    if (step == 0 && r->n >= 100) {
        step++;
        t_writes(b, "0\n1\n2\n", false);
    } else if (step == 1 && r->n >= 103) {
        sl_pipeline_stop(p);
    }
    free(b);
}

static void short_file_not_confused(int mode)
{
    char *a = in_dir("a.log"), *b = in_dir("b.log");
    t_write_numbers(a, 0, 100, false);
    struct t_lines *r = follow(mode, "path: %s/*.log\npartial_line_timeout: 50ms", short_step);
    cr_assert_eq(r->n, 103);
    for (int i = 0; i < 3; i++) {
        char want[8];
        snprintf(want, sizeof want, "%d", i);
        cr_assert_str_eq(r->lines[100 + i], want);
        cr_assert_str_eq(r->origins[100 + i], b);
    }
    cr_assert_eq(src_state()->copies, 0);
    free(a), free(b);
}

Test(file_identity, a_short_file_that_begins_like_another_is_read_whole_inotify)
{
    short_file_not_confused(0);
}
Test(file_identity, a_short_file_that_begins_like_another_is_read_whole_poll)
{
    short_file_not_confused(1);
}

/* ---- inode reuse ----------------------------------------------------------------------------- */

/* Create-style rotation, generation after generation: app.log is renamed away (out of the
 * glob), released after rotate_wait and deleted, so that its inode is free when the next
 * app.log is created, as big as the last. The first generation was found empty, so its
 * fingerprint began with no bytes at all: neither that nor a short one may make the new
 * file on the same inode pass for the old one. */
#define GENS 4

static int reused;  /* generations created on the inode of the one before */
static ino_t inode; /* of the current app.log */

static bool all_released(void)
{
    for (struct sl__file *f = src_state()->files; f; f = f->next)
        if (f->fd >= 0) return false;
    return true;
}

static void next_generation(int g)
{
    char *a = in_dir("app.log"), *old = in_dir("old.log");
    cr_assert_eq(unlink(old), 0);
    t_write_numbers(a, g * 100, g * 100 + 100, false);
    struct stat st;
    cr_assert_eq(stat(a, &st), 0);
    reused += st.st_ino == inode;
    inode = st.st_ino;
    free(a), free(old);
}

static void churn_step(struct sl_stage *s, struct t_lines *r)
{
    (void)s;
    char *a = in_dir("app.log"), *old = in_dir("old.log");
    int g = step / 2; /* generation 0 is 100 lines written into an empty file */
    if (g == 0 && step == 0 && src_state()->opened >= 1) {
        step++;
        t_write_numbers(a, 0, 100, true);
    } else if (step % 2 == 1 && r->n >= (size_t)(g + 1) * 100) {
        step++;
        cr_assert_eq(rename(a, old), 0);
    } else if (step % 2 == 0 && step > 0 && src_state()->rotations == (uint64_t)g &&
               all_released()) {
        if (g == GENS)
            sl_pipeline_stop(p);
        else
            next_generation(g), step++;
    }
    free(a), free(old);
}

static void inode_reuse(int mode)
{
    char *a = in_dir("app.log");
    t_writes(a, "", false); /* created empty, as a logger creates its file */
    struct stat st;
    cr_assert_eq(stat(a, &st), 0);
    inode = st.st_ino;
    reused = 0;
    /* no database: nothing but the records of this run decides (saves refresh no print) */
    struct t_lines *r = follow(mode, "path: %s/app.log\ncheckpoint: \"\"", churn_step);
    t_assert_numbers_once(r, 0, GENS * 100);
    if (!reused) cr_skip_test("this filesystem reused no inode: nothing was tested");
    free(a);
}

Test(file_identity, a_reused_inode_holds_a_new_file_inotify)
{
    inode_reuse(0);
}
Test(file_identity, a_reused_inode_holds_a_new_file_poll)
{
    inode_reuse(1);
}

/* ---- generations never seen ------------------------------------------------------------------ */

/* Two create-style rotations to one name while the source cannot look: the second file
 * lives and is renamed away (onto the first one's name) unseen. The source cannot read
 * it, but says so: a warning and the `missed` counter. */
static void two_rotations_step(struct sl_stage *s, struct t_lines *r)
{
    (void)s;
    char *a = in_dir("app.log"), *a1 = in_dir("app.log.1");
    if (step == 0 && r->n >= 100) {
        step++;
        cr_assert_eq(rename(a, a1), 0);
        t_write_numbers(a, 1000, 1100, false); /* never seen */
        cr_assert_eq(rename(a, a1), 0);
        t_write_numbers(a, 100, 200, false);
    } else if (step == 1 && r->n >= 200) {
        sl_pipeline_stop(p);
    }
    free(a), free(a1);
}

static void missed_generation(int mode)
{
    char *a = in_dir("app.log");
    t_write_numbers(a, 0, 100, false);
    struct t_lines *r = follow(mode, "path: %s/app.log", two_rotations_step);
    t_assert_numbers_once(r, 0, 200);
    cr_assert_eq(src_state()->missed, 1);
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(sl_pipeline_find(p, "src"), &st);
    cr_assert_eq(st.errors, 1);
    char want[1024];
    snprintf(want, sizeof want,
             "warn src: %s: 1 file may have held this path between two looks, unseen (", a);
    cr_assert_not_null(strstr(t_log_text, want), "%s", t_log_text);
    free(a);
}

Test(file_identity, a_generation_rotated_away_unseen_is_reported_inotify)
{
    missed_generation(0);
}
Test(file_identity, a_generation_rotated_away_unseen_is_reported_poll)
{
    missed_generation(1);
}

/* The same rotations with the rotated names in the glob: nothing is missed, nothing said. */
static void two_rotations_in_glob_step(struct sl_stage *s, struct t_lines *r)
{
    (void)s;
    char *a = in_dir("app.log"), *a1 = in_dir("app.log.1");
    if (step == 0 && r->n >= 100) {
        step++;
        cr_assert_eq(rename(a, a1), 0);
        t_write_numbers(a, 100, 200, false);
        cr_assert_eq(rename(a, a1), 0);
        t_write_numbers(a, 200, 300, false);
    } else if (step == 1 && r->n >= 300) {
        sl_pipeline_stop(p);
    }
    free(a), free(a1);
}

static void nothing_missed_in_glob(int mode)
{
    char *a = in_dir("app.log");
    t_write_numbers(a, 0, 100, false);
    struct t_lines *r = follow(mode, "path: %s/app.log*", two_rotations_in_glob_step);
    t_assert_numbers_once(r, 0, 300);
    cr_assert_eq(src_state()->missed, 0, "%s", t_log_text);
    free(a);
}

Test(file_identity, rotations_the_glob_covers_miss_nothing_inotify)
{
    nothing_missed_in_glob(0);
}
Test(file_identity, rotations_the_glob_covers_miss_nothing_poll)
{
    nothing_missed_in_glob(1);
}
