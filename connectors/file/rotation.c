/* Rotation: files renamed out of the glob, and files that held a followed path between
 * two looks of the source and were rotated away before it could see them.
 *
 * A file renamed out of the glob (create-style rotation: app.log -> app.log.1, a new
 * app.log) is still written to for a while by a writer not told yet. It is followed
 * alone (inotify on the file itself; with polling, every scan looks at it) and read as
 * its late lines come, until rotate_wait has passed since the rename; then it is drained
 * once more and released. Until it is released and all of it acknowledged, its
 * checkpoint row says `rotated` with the path it has now, so that a run that stops or
 * dies meanwhile is followed by one that finishes it. A crash before that row was saved
 * leaves a row with the old path (a file is never read before it has a row: acks.c): the
 * next run looks for the row's inode in that directory under another name, and checks
 * that the file begins with the row's first bytes (a row saved while the file was shorter
 * than a fingerprint: it is read from its start then).
 *
 * The source reads every file it finds, and a renamed file to its end; a file created and
 * renamed away (or deleted) between two scans is never found, unless the glob covers the
 * name it went to. It cannot be read then, but it can be noticed: when a scan finds a new
 * file at a path, the path was created more than once since the last scan (inotify; a
 * file renamed to it may be one the glob follows, so renames do not count), or the file
 * it replaced is already deleted (rotated onto by the next rotation, whatever the
 * backend). Each such file is a suspect; new files the same scan finds at other paths may
 * be them (a glob over the rotated names). What is left is logged and counted (`missed`,
 * and the stage's errors): a file that may have been missed, not one that surely was. */
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

struct sl__file_suspect {
    char *path; /* the followed path (owned) */
    unsigned n; /* files that may have held it unseen */
};

static void add_suspect(struct sl__file_src *s, const char *path, unsigned n)
{
    if (s->nsuspects == s->suspects_cap) {
        size_t cap = s->suspects_cap ? s->suspects_cap * 2 : 4;
        struct sl__file_suspect *ns = realloc(s->suspects, cap * sizeof *ns);
        if (!ns) return;
        s->suspects = ns;
        s->suspects_cap = cap;
    }
    char *copy = strdup(path);
    if (!copy) return;
    s->suspects[s->nsuspects++] = (struct sl__file_suspect){.path = copy, .n = n};
}

void sl__file_note_new(struct sl__file_src *s, const char *path, struct sl__file *old)
{
    unsigned created = s->wops && s->wops->created ? s->wops->created(s, path) : 0;
    unsigned n = created > 1 ? created - 1 : 0;
    struct stat st;
    if (!n && old && old->fd >= 0 && fstat(old->fd, &st) == 0 && st.st_nlink == 0) n = 1;
    if (n)
        add_suspect(s, path, n);
    else if (!old)
        s->found_new++; /* a new path: it may be a suspect's file, under a rotated name */
}

void sl__file_report_missed(struct sl__file_src *s)
{
    unsigned found = s->found_new;
    for (size_t i = 0; i < s->nsuspects; i++) {
        struct sl__file_suspect *x = &s->suspects[i];
        unsigned explained = found < x->n ? found : x->n;
        found -= explained;
        if (x->n > explained) {
            s->missed += x->n - explained;
            sl_stage_count_errors(s->stage, x->n - explained);
            sl_stage_log(s->stage, SL_LOG_WARN,
                         "%s: %u file may have held this path between two looks, unseen (the "
                         "rotated names in the glob would let it be read)",
                         x->path, x->n - explained);
        }
        free(x->path);
    }
    s->nsuspects = 0;
    s->found_new = 0;
    if (s->wops && s->wops->scanned) s->wops->scanned(s);
}

void sl__file_suspects_free(struct sl__file_src *s)
{
    for (size_t i = 0; i < s->nsuspects; i++) free(s->suspects[i].path);
    free(s->suspects);
}

/* ---- files renamed out of the glob ---------------------------------------------------- */

void sl__file_renamed_away(struct sl__file_src *s, struct sl__file *f)
{
    f->state = SL__FILE_ROTATED;
    f->renamed = true;
    f->rotated_at = sl_stage_now_ms(s->stage);
    sl__file_arm(s, s->rotate_timer, &s->rotate_deadline, s->rotate_wait);
    if (s->wops && s->wops->watch_file) s->wops->watch_file(s, f);
    f->dirty = true;
    sl__file_save_soon(s); /* where it went, before a crash can forget it */
}

/* Rotated files that have had rotate_wait to receive their last writes are drained once
 * more and released. */
void sl__file_on_rotate_timer(struct sl_stage *stage, void *arg)
{
    struct sl__file_src *s = arg;
    int64_t now = sl_stage_now_ms(stage), next = -1;
    s->rotate_deadline = 0;
    for (struct sl__file *f = s->files; f; f = f->next) {
        if (f->state != SL__FILE_ROTATED || f->final) continue;
        int64_t left = f->rotated_at + s->rotate_wait - now;
        if (left <= 0) {
            f->final = true;
            sl__file_mark_readable(s, f);
        } else if (next < 0 || left < next) {
            next = left;
        }
    }
    if (next >= 0) sl__file_arm(s, s->rotate_timer, &s->rotate_deadline, next);
}

void sl__file_unwatch(struct sl__file_src *s, struct sl__file *f)
{
    if (f->wd && s->wops && s->wops->unwatch_file) s->wops->unwatch_file(s, f);
}

void sl__file_renamed_done(struct sl__file_src *s, struct sl__file *f)
{
    sl__file_unwatch(s, f);
    f->renamed = false;
    free(f->now_at);
    f->now_at = NULL;
}

const char *sl__file_current_path(const struct sl__file *f, char *buf, size_t cap)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", f->fd);
    ssize_t n = f->fd >= 0 ? readlink(link, buf, cap - 1) : -1;
    static const char gone[] = " (deleted)";
    size_t g = sizeof gone - 1;
    if (n <= 0 || buf[0] != '/' || ((size_t)n >= g && memcmp(buf + n - g, gone, g) == 0))
        snprintf(buf, cap, "%s", f->now_at ? f->now_at : f->path);
    else
        buf[n] = '\0';
    return buf;
}

static bool tracked(const struct sl__file_src *s, uint64_t dev, uint64_t ino)
{
    for (const struct sl__file *f = s->files; f; f = f->next)
        if (f->dev == dev && f->ino == ino && !f->stale) return true;
    return false;
}

/* Row `r`'s file under another name in the directory of r->path, into `buf`. */
static bool find_in_dir(const struct sl__file_ckpt_row *r, char *buf, size_t cap)
{
    char *copy = strdup(r->path), *copy2 = strdup(r->path);
    const char *d = copy ? dirname(copy) : NULL, *base = copy2 ? basename(copy2) : "";
    DIR *dh = d ? opendir(d) : NULL;
    bool found = false;
    struct dirent *e;
    struct stat st;
    while (dh && !found && (e = readdir(dh))) {
        if ((uint64_t)e->d_ino != r->ino || strcmp(e->d_name, base) == 0) continue;
        snprintf(buf, cap, "%s/%s", d, e->d_name);
        found = stat(buf, &st) == 0 && (uint64_t)st.st_dev == r->dev && S_ISREG(st.st_mode);
    }
    if (dh) closedir(dh);
    free(copy), free(copy2);
    return found;
}

/* Where the file of row `r` is now, if it was renamed away: its path if the row says
 * rotated, else (a crash before that was saved) another name in its directory. */
static bool find_renamed(const struct sl__file_ckpt_row *r, char *buf, size_t cap)
{
    struct stat st;
    if (r->rotated && stat(r->path, &st) == 0 && (uint64_t)st.st_dev == r->dev &&
        (uint64_t)st.st_ino == r->ino) {
        snprintf(buf, cap, "%s", r->path);
        return true;
    }
    return find_in_dir(r, buf, cap);
}

/* Whether `path` still holds row `r`'s file with bytes to read (a rotated one is followed
 * for rotate_wait even when it has none yet). A row saved while its file was shorter than
 * a fingerprint leads to a file that begins with those bytes (one at least) and has more
 * now: read from its start, as in the glob (identity.c), rather than left unread. */
static bool worth_resuming(const struct sl__file_ckpt_row *r, const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    bool ok = fd >= 0 && fstat(fd, &st) == 0;
    uint64_t size = ok ? (uint64_t)st.st_size : 0, from = r->offset;
    if (ok && !sl__file_same(r->fp, r->fp_len, fd, size)) {
        ok = r->fp_len > 0 && r->fp_len < SL__FILE_FP_MAX &&
             sl__file_begins_with(r->fp, r->fp_len, fd);
        from = 0;
    }
    if (fd >= 0) close(fd);
    return ok && (size > from || r->rotated);
}

void sl__file_resume_renamed(struct sl__file_src *s)
{
    const struct sl__file_ckpt_row *rows;
    size_t n = sl__file_ckpt_rows(s->ckpt, &rows);
    char path[4096];
    for (size_t i = 0; i < n; i++) {
        const struct sl__file_ckpt_row *r = &rows[i];
        if (!r->path || tracked(s, r->dev, r->ino) || !find_renamed(r, path, sizeof path) ||
            !worth_resuming(r, path))
            continue;
        struct sl__file *f = sl__file_open_outside(s, path);
        if (!f) continue;
        sl_stage_log(s->stage, SL_LOG_INFO,
                     "%s: renamed from %s before the last run was done with it: reading it on",
                     path, r->path);
        sl__file_renamed_away(s, f);
    }
}
