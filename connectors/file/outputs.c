/* The sink's open files: a table of rendered paths to descriptors, bounded by an LRU.
 *
 * A file leaves the table when it is evicted (max_open_files) or rotated; it is
 * "detached" and closed once no fsync job holds its descriptor and nothing written to
 * it awaits an fsync. Files are opened with O_APPEND, created with their directories.
 * A file that exists and does not end with '\n' was torn by a crash mid-write: a newline
 * is written before anything else, so the torn line cannot swallow the next one. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* ---- table and LRU ---------------------------------------------------------------------- */

static struct sl__file_out **bucket(struct sl__file_outs *o, uint64_t h)
{
    return &o->htab[h & (o->hcap - 1)];
}

static int grow(struct sl__file_outs *o)
{
    size_t cap = o->hcap ? o->hcap * 2 : 64;
    struct sl__file_out **nt = calloc(cap, sizeof *nt);
    if (!nt) return SL_ENOMEM;
    for (size_t i = 0; i < o->hcap; i++)
        for (struct sl__file_out *h = o->htab[i], *n; h; h = n) {
            n = h->hnext;
            h->hnext = nt[h->hpath & (cap - 1)];
            nt[h->hpath & (cap - 1)] = h;
        }
    free(o->htab);
    o->htab = nt;
    o->hcap = cap;
    return 0;
}

static void lru_unlink(struct sl__file_outs *o, struct sl__file_out *h)
{
    if (h->lru_prev)
        h->lru_prev->lru_next = h->lru_next;
    else
        o->lru_head = h->lru_next;
    if (h->lru_next)
        h->lru_next->lru_prev = h->lru_prev;
    else
        o->lru_tail = h->lru_prev;
    h->lru_prev = h->lru_next = NULL;
}

static void lru_push(struct sl__file_outs *o, struct sl__file_out *h)
{
    h->lru_prev = NULL;
    h->lru_next = o->lru_head;
    if (o->lru_head) o->lru_head->lru_prev = h;
    o->lru_head = h;
    if (!o->lru_tail) o->lru_tail = h;
}

static void destroy(struct sl__file_out *h)
{
    if (h->fd >= 0) close(h->fd);
    free(h->path);
    free(h);
}

/* Closes `h` now when nothing needs its descriptor, else keeps it on the detached list. */
static void detach(struct sl__file_outs *o, struct sl__file_out *h)
{
    for (struct sl__file_out **pp = bucket(o, h->hpath); *pp; pp = &(*pp)->hnext)
        if (*pp == h) {
            *pp = h->hnext;
            break;
        }
    lru_unlink(o, h);
    o->open--;
    h->detached = true;
    if (!h->refs && !h->dirty) {
        destroy(h);
        return;
    }
    h->hnext = o->detached;
    o->detached = h;
}

static void drop_detached(struct sl__file_outs *o, struct sl__file_out *h)
{
    for (struct sl__file_out **pp = &o->detached; *pp; pp = &(*pp)->hnext)
        if (*pp == h) {
            *pp = h->hnext;
            destroy(h);
            return;
        }
}

/* ---- opening ------------------------------------------------------------------------------- */

/* Creates the missing directories of `path`. Returns 0, or the errno of the first mkdir
 * that failed for another reason than EEXIST (the reason the open will then fail). */
static int make_parent_dirs(const char *path)
{
    char buf[4096];
    int first = 0;
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) && errno != EEXIST && !first) first = errno;
        *p = '/';
    }
    return first;
}

static int open_file(struct sl__file_outs *o, const char *path)
{
    int flags = O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY;
    int fd = open(path, flags, 0644);
    if (fd < 0 && errno == ENOENT && o->mkdirs) {
        int why = make_parent_dirs(path);
        fd = open(path, flags, 0644);
        if (fd < 0 && errno == ENOENT && why) return -why; /* "permission denied", say */
    }
    if (fd < 0 && errno == EACCES) /* write-only file: no torn-line check possible */
        fd = open(path, (flags & ~O_RDWR) | O_WRONLY, 0644);
    return fd < 0 ? -errno : fd;
}

int sl__file_outs_get(struct sl__file_outs *o, const char *path, struct sl__file_out **out)
{
    uint64_t hp = sl__file_hash(path, strlen(path));
    for (struct sl__file_out *h = o->hcap ? *bucket(o, hp) : NULL; h; h = h->hnext)
        if (h->hpath == hp && strcmp(h->path, path) == 0) {
            if (o->lru_head != h) {
                lru_unlink(o, h);
                lru_push(o, h);
            }
            *out = h;
            return 0;
        }
    if ((o->open + 1) * 2 > o->hcap && grow(o)) return -ENOMEM;
    int fd = open_file(o, path);
    if (fd < 0) return fd;
    struct sl__file_out *h = calloc(1, sizeof *h);
    struct stat st;
    if (!h || !(h->path = strdup(path)) || fstat(fd, &st)) {
        int e = h ? errno : ENOMEM;
        free(h);
        close(fd);
        return -e;
    }
    char last = '\n';
    h->fd = fd;
    h->hpath = hp;
    h->size = (uint64_t)st.st_size;
    h->needs_newline = st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n';
    h->needs_header = st.st_size == 0 && o->csv_header;
    h->hnext = *bucket(o, hp);
    *bucket(o, hp) = h;
    lru_push(o, h);
    o->open++;
    o->opened++;
    while (o->open > o->max_open && o->lru_tail != h) {
        o->evicted++;
        detach(o, o->lru_tail);
    }
    *out = h;
    return 0;
}

/* ---- rotation ------------------------------------------------------------------------------- */

int sl__file_outs_rotate(struct sl__file_outs *o, struct sl__file_out *h)
{
    char dst[4200];
    struct stat st;
    unsigned n = h->next_rot ? h->next_rot : 1;
    for (;; n++) { /* the first free number: earlier rotations keep theirs */
        snprintf(dst, sizeof dst, "%s.%u", h->path, n);
        if (stat(dst, &st) != 0) break;
    }
    if (rename(h->path, dst) != 0) return -errno;
    o->rotations++;
    detach(o, h);
    return 0;
}

/* ---- fsync bookkeeping ------------------------------------------------------------------------
 */

void sl__file_outs_dirty(struct sl__file_outs *o, struct sl__file_out *h)
{
    if (h->dirty) return;
    h->dirty = true;
    h->dnext = o->dirty;
    o->dirty = h;
}

void sl__file_outs_unref(struct sl__file_outs *o, struct sl__file_out *h)
{
    if (h->refs) h->refs--;
    if (h->detached && !h->refs && !h->dirty) drop_detached(o, h);
}

void sl__file_outs_close(struct sl__file_outs *o)
{
    while (o->lru_head) {
        struct sl__file_out *h = o->lru_head;
        lru_unlink(o, h);
        destroy(h);
    }
    while (o->detached) {
        struct sl__file_out *h = o->detached;
        o->detached = h->hnext;
        destroy(h);
    }
    free(o->htab);
    o->htab = NULL;
    o->hcap = o->open = 0;
    o->dirty = NULL;
}
