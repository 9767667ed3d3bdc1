/* Discovery: which files the source reads, and what happened to the ones it knows.
 *
 * A scan expands the globs and compares what it finds with the tracked files by
 * identity (device + inode, checked against the first bytes: identity.c): a known inode
 * under a new path was renamed (still in the glob: it simply goes on); a known path with
 * a new inode was rotated, so the old file is drained (ROTATED, closed after
 * rotate_wait) while the new one is opened; a tracked file no longer found was renamed
 * away or deleted (st_nlink == 0: released once drained); a file smaller than the
 * position reached was truncated, and one whose first bytes changed holds new content:
 * both start over. A new file starts where identity.c places it: its checkpoint, the
 * offset of the content it is a copy of, or read_from. */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* ---- the path table ------------------------------------------------------------------ */

static int hash_grow(struct sl__file_src *s)
{
    size_t cap = s->hcap ? s->hcap * 2 : 64;
    struct sl__file **nt = calloc(cap, sizeof *nt);
    if (!nt) return SL_ENOMEM;
    for (size_t i = 0; i < s->hcap; i++)
        for (struct sl__file *f = s->htab[i], *n; f; f = n) {
            n = f->hnext;
            f->hnext = nt[f->hpath & (cap - 1)];
            nt[f->hpath & (cap - 1)] = f;
        }
    free(s->htab);
    s->htab = nt;
    s->hcap = cap;
    return 0;
}

static void hash_insert(struct sl__file_src *s, struct sl__file *f)
{
    if ((s->hcount + 1) * 2 > s->hcap && hash_grow(s)) return; /* lookups fall back to scans */
    f->hpath = sl__file_hash(f->path, strlen(f->path));
    struct sl__file **b = &s->htab[f->hpath & (s->hcap - 1)];
    f->hnext = *b;
    *b = f;
    s->hcount++;
}

void sl__file_unhash(struct sl__file_src *s, struct sl__file *f)
{
    if (!s->hcap) return;
    for (struct sl__file **pp = &s->htab[f->hpath & (s->hcap - 1)]; *pp; pp = &(*pp)->hnext)
        if (*pp == f) {
            *pp = f->hnext;
            f->hnext = NULL;
            s->hcount--;
            return;
        }
}

struct sl__file *sl__file_by_path(struct sl__file_src *s, const char *path)
{
    if (!s->hcap) return NULL;
    uint64_t h = sl__file_hash(path, strlen(path));
    for (struct sl__file *f = s->htab[h & (s->hcap - 1)]; f; f = f->hnext)
        if (f->hpath == h && strcmp(f->path, path) == 0) return f;
    return NULL;
}

static bool has_magic(const char *p)
{
    return strpbrk(p, "*?[") != NULL;
}

/* ---- files that cannot be read --------------------------------------------------------- */

/* `path` matched but cannot be read, because `why`: logged and counted once per path (a
 * following source rescans), the first reason kept for the run's failure. */
static void unreadable(struct sl__file_src *s, const char *path, const char *why)
{
    for (size_t i = 0; i < s->nunreadable; i++)
        if (strcmp(s->unreadable[i], path) == 0) return;
    if (s->nunreadable == s->unreadable_cap) {
        size_t cap = s->unreadable_cap ? s->unreadable_cap * 2 : 4;
        char **n = realloc(s->unreadable, cap * sizeof *n);
        if (!n) return;
        s->unreadable = n;
        s->unreadable_cap = cap;
    }
    char *copy = strdup(path);
    if (!copy) return;
    s->unreadable[s->nunreadable++] = copy;
    sl_stage_count_errors(s->stage, 1);
    sl_stage_log(s->stage, SL_LOG_WARN, "cannot open %s: %s", path, why);
    if (!s->unreadable_why[0])
        snprintf(s->unreadable_why, sizeof s->unreadable_why, "cannot open %s: %s", path, why);
}

/* `path` could be opened: a later failure is reported again. */
static void readable(struct sl__file_src *s, const char *path)
{
    for (size_t i = 0; i < s->nunreadable; i++)
        if (strcmp(s->unreadable[i], path) == 0) {
            free(s->unreadable[i]);
            s->unreadable[i] = s->unreadable[--s->nunreadable];
            return;
        }
}

/* ---- identity ------------------------------------------------------------------------ */

static struct sl__file *by_identity(struct sl__file_src *s, uint64_t dev, uint64_t ino)
{
    for (struct sl__file *f = s->files; f; f = f->next)
        if (f->dev == dev && f->ino == ino && f->state != SL__FILE_DELETED && !f->forget &&
            !f->stale)
            return f;
    return NULL;
}

/* Records of earlier files on this inode (deleted, or closed and since replaced) must not
 * write or delete the row the new file now owns. */
static void supersede(struct sl__file_src *s, uint64_t dev, uint64_t ino)
{
    for (struct sl__file *f = s->files; f; f = f->next)
        if (f->dev == dev && f->ino == ino) {
            f->stale = true;
            f->forget = false;
            f->dirty = false;
        }
}

static int64_t mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* The checkpoint database and its -wal, -shm and -journal files. */
static bool is_checkpoint_file(const struct sl__file_src *s, const char *path)
{
    char *real = s->ckpt_real ? realpath(path, NULL) : NULL;
    bool same = real && strncmp(real, s->ckpt_real, strlen(s->ckpt_real)) == 0;
    free(real);
    return same;
}

static struct sl__file *open_new(struct sl__file_src *s, const char *path, bool initial)
{
    if (is_checkpoint_file(s, path)) return NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    if (fd < 0) {
        if (errno != ENOENT) unreadable(s, path, strerror(errno)); /* ENOENT: gone since */
        return NULL;
    }
    readable(s, path);
    struct sl__file *f = calloc(1, sizeof *f);
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || !f || !(f->path = strdup(path))) {
        free(f);
        close(fd);
        return NULL;
    }
    supersede(s, (uint64_t)st.st_dev, (uint64_t)st.st_ino);
    f->fd = fd;
    f->dev = (uint64_t)st.st_dev;
    f->ino = (uint64_t)st.st_ino;
    f->size = (uint64_t)st.st_size;
    f->mtime_ns = mtime_ns(&st);
    f->seen = true;
    sl__file_fingerprint(f);
    f->next = s->files; /* before place(): a copy's content is looked for among the others */
    s->files = f;
    sl__file_place(s, f, initial);
    f->dirty = true;
    sl__file_check_known(s, f); /* read once a saved row leads to it */
    f->readable = !f->undecided;
    hash_insert(s, f);
    s->opened++;
    if (f->undecided)
        sl_stage_log(s->stage, SL_LOG_INFO,
                     "%s: its %u bytes begin like a known file: waiting for %d to tell whether "
                     "it is a copy",
                     path, (unsigned)f->fp_len, SL__FILE_FP_MAX);
    else
        sl_stage_log(s->stage, SL_LOG_INFO, "reading %s from offset %llu", path,
                     (unsigned long long)f->pos);
    return f;
}

struct sl__file *sl__file_open_outside(struct sl__file_src *s, const char *path)
{
    struct sl__file *f = open_new(s, path, false);
    if (f) sl__file_unhash(s, f);
    return f;
}

/* A closed file is back in the glob (renamed back): reopens it if it is still the same
 * file, i.e. its first bytes agree (identity.c); its inode may have been reused. */
static bool reopen(struct sl__file *f, const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd >= 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_dev == f->dev &&
        (uint64_t)st.st_ino == f->ino &&
        sl__file_same(f->fp, f->fp_len, fd, (uint64_t)st.st_size)) {
        f->fd = fd;
        return true;
    }
    if (fd >= 0) close(fd);
    return false;
}

/* A tracked file seen again at `path`: renamed, grown, truncated, or new content on the
 * same inode (its first bytes changed since the last look). */
static void seen_again(struct sl__file_src *s, struct sl__file *f, const char *path,
                       const struct stat *st)
{
    f->seen = true;
    if (strcmp(f->path, path) != 0 || f->state != SL__FILE_ACTIVE) {
        char *np = strdup(path);
        if (!np) return;
        sl__file_unhash(s, f);
        free(f->path);
        f->path = np;
        hash_insert(s, f);
    }
    if (f->renamed) sl__file_renamed_done(s, f); /* back in the glob */
    f->state = SL__FILE_ACTIVE;
    bool changed = (uint64_t)st->st_size != f->size || mtime_ns(st) != f->mtime_ns;
    f->size = (uint64_t)st->st_size;
    f->mtime_ns = mtime_ns(st);
    if (f->size < f->pos)
        sl__file_new_content(s, f, true);
    else if (changed && !f->undecided && sl__file_head_changed(f))
        sl__file_new_content(s, f, false);
    else if (f->size > f->pos || (changed && f->undecided))
        sl__file_mark_readable(s, f);
}

/* ---- the scan ------------------------------------------------------------------------ */

static bool excluded(const struct sl__file_src *s, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (size_t i = 0; i < s->exclude.n; i++) {
        const char *pat = s->exclude.items[i];
        const char *subject = strchr(pat, '/') ? path : base;
        if (fnmatch(pat, subject, FNM_PATHNAME) == 0) return true;
    }
    return false;
}

/* stat() of a matched path failed: a dangling symbolic link or an unresolvable path is
 * reported; a file that is simply gone since the glob saw it (rotation) is not. */
static void stat_failed(struct sl__file_src *s, const char *path)
{
    struct stat lst;
    if (errno != ENOENT)
        unreadable(s, path, strerror(errno));
    else if (lstat(path, &lst) == 0)
        unreadable(s, path, "No such file or directory (a dangling symbolic link)");
}

static void consider(struct sl__file_src *s, const char *path, bool initial)
{
    struct stat st;
    if (excluded(s, path)) return;
    if (stat(path, &st)) {
        stat_failed(s, path);
        return;
    }
    if (!S_ISREG(st.st_mode)) return;
    struct sl__file *f = by_identity(s, (uint64_t)st.st_dev, (uint64_t)st.st_ino);
    if (f && f->seen) return; /* matched by two patterns */
    if (f && f->state == SL__FILE_CLOSED && !reopen(f, path)) f = NULL; /* a new file */
    struct sl__file *old = sl__file_by_path(s, path);
    if (old && old != f) sl__file_unhash(s, old); /* the path moved to another inode */
    if (f) {
        seen_again(s, f, path, &st);
        return;
    }
    f = open_new(s, path, initial);
    if (f && !initial) sl__file_note_new(s, path, old);
    if (f && old && old->fd >= 0) f->after = old; /* rotated: the old file's rest first */
}

/* A followed file is no longer where the glob finds it: renamed away or deleted. */
static void left_glob(struct sl__file_src *s, struct sl__file *f)
{
    struct stat st;
    sl__file_unhash(s, f);
    if (fstat(f->fd, &st) == 0 && st.st_nlink == 0) {
        f->state = SL__FILE_DELETED;
        f->forget = true;
        s->deletions++;
        sl_stage_log(s->stage, SL_LOG_INFO, "%s: deleted, releasing it once read", f->path);
    } else {
        s->rotations++;
        sl_stage_log(s->stage, SL_LOG_INFO, "%s: rotated, reading it to its end", f->path);
        sl__file_renamed_away(s, f);
    }
    sl__file_mark_readable(s, f);
}

/* Files renamed out of the glob get no directory event once they are elsewhere: a scan
 * looks at them too (the poll backend, which watches no file alone). */
static void look_at_renamed(struct sl__file_src *s)
{
    struct stat st;
    for (struct sl__file *f = s->files; f; f = f->next)
        if (f->state == SL__FILE_ROTATED && f->fd >= 0 && fstat(f->fd, &st) == 0 &&
            (uint64_t)st.st_size > f->pos) {
            f->size = (uint64_t)st.st_size;
            sl__file_mark_readable(s, f);
        }
}

/* Watches the directories a pattern can match files in, and its fixed prefix, where new
 * matching directories appear. */
static void watch_dirs(struct sl__file_src *s, const char *pattern)
{
    char *copy = strdup(pattern);
    if (!copy) return;
    char *dir = dirname(copy);
    if (!has_magic(dir)) {
        s->wops->add_dir(s, dir);
        free(copy);
        return;
    }
    glob_t g;
    if (glob(dir, GLOB_ONLYDIR | GLOB_NOSORT, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) s->wops->add_dir(s, g.gl_pathv[i]);
        globfree(&g);
    }
    char *magic = dir + strcspn(dir, "*?[");
    while (magic > dir && *magic != '/') magic--;
    *magic = '\0';
    s->wops->add_dir(s, *dir ? dir : "/");
    free(copy);
}

/* glob()'s error callback has no argument: the source being scanned (loop thread). */
static _Thread_local struct sl__file_src *scanning;

/* A directory the pattern goes through cannot be read (EACCES for anyone but root). */
static int glob_error(const char *epath, int eerrno)
{
    if (scanning && eerrno != ENOENT) unreadable(scanning, epath, strerror(eerrno));
    return 0; /* go on with the rest */
}

/* A pattern matched nothing: a literal path says why when it is not simply absent (a
 * component that is a regular file: ENOTDIR; a loop of links: ELOOP; EACCES). */
static void no_match(struct sl__file_src *s, const char *pattern)
{
    struct stat st;
    if (!has_magic(pattern) && stat(pattern, &st) && errno != ENOENT)
        unreadable(s, pattern, strerror(errno));
}

void sl__file_scan(struct sl__file_src *s, bool initial)
{
    s->scans++;
    for (struct sl__file *f = s->files; f; f = f->next) f->seen = false;
    for (size_t i = 0; i < s->nglobs; i++) {
        glob_t g;
        scanning = s;
        int rc = glob(s->globs[i], 0, glob_error, &g);
        scanning = NULL;
        for (size_t k = 0; rc == 0 && k < g.gl_pathc; k++) consider(s, g.gl_pathv[k], initial);
        if (rc == 0) globfree(&g);
        if (rc == GLOB_NOMATCH) no_match(s, s->globs[i]);
        if (s->wops) watch_dirs(s, s->globs[i]);
    }
    for (struct sl__file *f = s->files; f; f = f->next)
        if (f->state == SL__FILE_ACTIVE && !f->seen) left_glob(s, f);
    for (struct sl__file *f = s->files; f; f = f->next)
        if (f->after && !f->after->readable) f->after = NULL; /* nothing left to wait for */
    look_at_renamed(s);
    sl__file_report_missed(s);
}
