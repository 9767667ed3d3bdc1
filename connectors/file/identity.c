/* What a file is, for the `file` source: its device and inode *and* its first bytes.
 *
 * The fingerprint of a file is its first SL__FILE_FP_MAX (256) bytes (kept, and hashed
 * for the checkpoints), or all of them while it is shorter (fp_len says how many; it
 * grows with the file). Neither half is safe alone: an inode is given to the next file
 * created once the old one is deleted, and two files may begin alike (a copy). So:
 *
 *  - The same file (resumed from a checkpoint, reopened when it is back in the glob): the
 *    same device and inode, and a full fingerprint that matches. A short one matches only
 *    while the file still holds exactly those bytes: one that has more now may be a new
 *    file on the reused inode that begins alike, and is read from its start (at most 255
 *    bytes twice), never resumed past bytes that may be another file's.
 *  - New content on the same inode (truncated and written again before the source looked,
 *    as copytruncate does under a busy writer): the file's first bytes no longer match
 *    its fingerprint. Checked before every read and whenever a scan sees it changed; the
 *    file is then read from 0, and what the old content got beyond the offset reached
 *    may have been missed: logged and counted (`missed`, and the stage's errors).
 *  - A copy: another inode with the same full fingerprint as a file read (or being read)
 *    in this run or known to the checkpoints. It holds that file's bytes up to some
 *    offset, so it is read from the offset acknowledged for that content: an exact copy
 *    of what was read is skipped, a copy made by copytruncate gives the lines the original
 *    got after the source's last read. When the original was truncated, its earlier
 *    content is kept aside (retired) for rotate_wait: its copy takes over its position and
 *    its batches in flight, as a renamed file would.
 *  - Too short to tell: a file shorter than a fingerprint is never taken for a copy. One
 *    whose bytes are the beginning of a known file's first 256 bytes may be a copy being
 *    written: it is not read until it has 256 bytes or has not been decided for
 *    partial_line_timeout, then it is read as a file of its own.
 *
 * Files that begin alike (a banner longer than 256 bytes at the top of every generation)
 * are told apart from copies when the original is open: the 256 bytes before the offset
 * must agree too. Against a checkpoint row (a copy found at start) or the retired content
 * of a truncated file, the first bytes are all there is: give such logs distinct first
 * lines, or the new one may be taken for a copy. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* ---- fingerprints ------------------------------------------------------------------- */

static ssize_t read_head(int fd, unsigned char *buf)
{
    ssize_t n;
    do n = pread(fd, buf, SL__FILE_FP_MAX, 0);
    while (n < 0 && errno == EINTR);
    return n;
}

static void set_head(struct sl__file *f, const unsigned char *buf, size_t n)
{
    memcpy(f->head, buf, n);
    f->fp_len = (uint32_t)n;
    f->fp = sl__file_hash(buf, n);
}

void sl__file_fingerprint(struct sl__file *f)
{
    unsigned char buf[SL__FILE_FP_MAX];
    ssize_t n = read_head(f->fd, buf);
    set_head(f, buf, n > 0 ? (size_t)n : 0);
}

bool sl__file_same(uint64_t fp, uint32_t fp_len, int fd, uint64_t size)
{
    unsigned char buf[SL__FILE_FP_MAX];
    if (fp_len < SL__FILE_FP_MAX && size != fp_len) return false; /* short: exactly those */
    ssize_t n = read_head(fd, buf);
    return n == (ssize_t)fp_len && sl__file_hash(buf, fp_len) == fp;
}

bool sl__file_begins_with(uint64_t fp, uint32_t fp_len, int fd)
{
    unsigned char buf[SL__FILE_FP_MAX];
    ssize_t n = read_head(fd, buf);
    return n >= (ssize_t)fp_len && sl__file_hash(buf, fp_len) == fp;
}

bool sl__file_fits(const struct sl__file *f, uint64_t fp, uint32_t fp_len)
{
    return fp_len <= f->fp_len && sl__file_hash(f->head, fp_len) == fp;
}

bool sl__file_head_changed(struct sl__file *f)
{
    unsigned char buf[SL__FILE_FP_MAX];
    ssize_t n = read_head(f->fd, buf);
    if (n < 0) return false; /* a failing read is reported when the source reads */
    if ((size_t)n < f->fp_len || memcmp(buf, f->head, f->fp_len) != 0) return true;
    if ((size_t)n > f->fp_len) set_head(f, buf, (size_t)n); /* it grew: a longer print */
    return false;
}

/* ---- a new content on the same file --------------------------------------------------- */

/* Moves the batches in flight of `from` to `to`. */
static void move_flights(struct sl__file_src *s, struct sl__file *from, struct sl__file *to)
{
    for (size_t i = 0; i < s->fl_count; i++) {
        struct sl__file_flight *e = &s->flights[(s->fl_head + i) % s->fl_cap];
        if (e->f == from) e->f = to;
    }
    to->refs += from->refs;
    from->refs = 0;
}

/* Keeps `f`'s reading state aside as a closed record (never saved: the inode holds other
 * bytes now), with its batches in flight, for a copy of that content to take over. */
static void retire(struct sl__file_src *s, struct sl__file *f)
{
    struct sl__file *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(f->path))) { /* no copy will take over: no harm */
        free(r);
        return;
    }
    r->fd = -1;
    r->dev = f->dev, r->ino = f->ino;
    memcpy(r->head, f->head, f->fp_len);
    r->fp = f->fp, r->fp_len = f->fp_len;
    r->pos = r->size = f->pos, r->acked = f->acked, r->gen = f->gen, r->fr = f->fr;
    r->state = SL__FILE_CLOSED;
    r->stale = r->retired = true;
    r->rotated_at = sl_stage_now_ms(s->stage);
    move_flights(s, f, r);
    r->next = s->files;
    s->files = r;
}

void sl__file_new_content(struct sl__file_src *s, struct sl__file *f, bool shrunk)
{
    if (shrunk) {
        sl_stage_log(s->stage, SL_LOG_INFO, "%s: truncated at %llu, reading from the start",
                     f->path, (unsigned long long)f->pos);
    } else {
        s->missed++;
        sl_stage_count_errors(s->stage, 1);
        sl_stage_log(s->stage, SL_LOG_WARN,
                     "%s: truncated and written again since it was read (its first bytes "
                     "changed): reading it from the start; what it held after offset %llu may "
                     "be missed",
                     f->path, (unsigned long long)f->pos);
    }
    if (f->pos && f->fp_len == SL__FILE_FP_MAX) retire(s, f);
    f->pos = f->acked = 0;
    f->gen++; /* acks of batches read before no longer move acked */
    f->fr.skipping = false;
    f->partial_since = 0;
    f->partial_due = f->big_read = false;
    sl__file_fingerprint(f);
    f->dirty = true;
    s->truncations++;
    sl__file_check_known(s, f); /* its row may name the old content only */
    sl__file_mark_readable(s, f);
}

/* ---- copies --------------------------------------------------------------------------- */

static bool same_head(const struct sl__file *a, const struct sl__file *b)
{
    return a->fp_len == SL__FILE_FP_MAX && b->fp_len == SL__FILE_FP_MAX &&
           memcmp(a->head, b->head, SL__FILE_FP_MAX) == 0;
}

/* `f` (just found) takes over `old`, the retired content it is a copy of. */
static void take_over(struct sl__file_src *s, struct sl__file *f, struct sl__file *old)
{
    move_flights(s, old, f);
    f->pos = old->pos;
    f->acked = old->acked;
    f->gen = old->gen;
    f->fr = old->fr;
    old->retired = false; /* done with: freed once saved state allows */
    s->copies++;
    sl_stage_log(s->stage, SL_LOG_INFO,
                 "%s: a copy of what %s held before it was truncated: reading it on from "
                 "offset %llu",
                 f->path, old->path, (unsigned long long)f->pos);
}

/* Whether `f` and open file `g` (same first bytes) also hold the same bytes just before
 * offset `off` in `f`: a copy, not a file that only begins alike (a banner). */
static bool same_before(const struct sl__file *f, const struct sl__file *g, uint64_t off)
{
    if (off > f->size) off = f->size;
    if (off <= SL__FILE_FP_MAX) return true; /* the first bytes are all there is */
    unsigned char a[SL__FILE_FP_MAX], b[SL__FILE_FP_MAX];
    off_t at = (off_t)(off - SL__FILE_FP_MAX);
    return pread(f->fd, a, sizeof a, at) == (ssize_t)sizeof a &&
           pread(g->fd, b, sizeof b, at) == (ssize_t)sizeof b && memcmp(a, b, sizeof a) == 0;
}

/* Row `r` (a full fingerprint) is of a file this run follows with that same content: its
 * record, checked above, knows better. (A record on the inode with other first bytes
 * holds new content: the row is all that is left of the old one.) */
static bool tracked_live(const struct sl__file_src *s, const struct sl__file_ckpt_row *r)
{
    for (const struct sl__file *g = s->files; g; g = g->next)
        if (g->dev == r->dev && g->ino == r->ino && !g->stale && g->fp_len == SL__FILE_FP_MAX &&
            g->fp == r->fp)
            return true;
    return false;
}

/* The furthest offset acknowledged for f's content in another file of this run (checked
 * before that offset too when that file is open) or a checkpoint row of another file.
 * Returns false when none holds it. */
static bool copy_offset(struct sl__file_src *s, const struct sl__file *f, uint64_t *off,
                        const char **of)
{
    bool found = false;
    for (const struct sl__file *g = s->files; g; g = g->next)
        if (g != f && !g->undecided && same_head(g, f) && (!found || g->acked > *off) &&
            (g->fd < 0 || same_before(f, g, g->acked))) {
            *off = g->acked, *of = g->path;
            found = true;
        }
    const struct sl__file_ckpt_row *rows;
    size_t n = sl__file_ckpt_rows(s->ckpt, &rows);
    for (size_t i = 0; i < n; i++) {
        const struct sl__file_ckpt_row *r = &rows[i];
        if ((r->dev == f->dev && r->ino == f->ino) || r->fp_len != SL__FILE_FP_MAX ||
            r->fp != f->fp || (found && r->offset <= *off) || tracked_live(s, r))
            continue;
        *off = r->offset, *of = r->path ? r->path : "a checkpoint";
        found = true;
    }
    return found;
}

/* A file shorter than a fingerprint whose bytes begin a known file's first 256 bytes. */
static bool begins_like_known(const struct sl__file_src *s, const struct sl__file *f)
{
    for (const struct sl__file *g = s->files; g; g = g->next)
        if (g != f && g->fp_len == SL__FILE_FP_MAX && memcmp(g->head, f->head, f->fp_len) == 0)
            return true;
    return false;
}

enum sl__file_settled sl__file_settle(struct sl__file_src *s, struct sl__file *f, bool force)
{
    f->undecided = false;
    if (f->fp_len == SL__FILE_FP_MAX) {
        for (struct sl__file *g = s->files; g; g = g->next)
            if (g->retired && same_head(g, f)) {
                take_over(s, f, g);
                return SL__FILE_SETTLED_COPY;
            }
        uint64_t off = 0;
        const char *of = NULL;
        if (!copy_offset(s, f, &off, &of)) return SL__FILE_SETTLED_NEW;
        f->pos = f->acked = off < f->size ? off : f->size;
        s->copies++;
        sl_stage_log(s->stage, SL_LOG_INFO,
                     "%s: a copy of %s (the same first %d bytes): reading it from offset %llu",
                     f->path, of, SL__FILE_FP_MAX, (unsigned long long)f->pos);
        return SL__FILE_SETTLED_COPY;
    }
    if (force || !begins_like_known(s, f)) return SL__FILE_SETTLED_NEW;
    f->undecided = true;
    if (!f->undecided_since) {
        f->undecided_since = sl_stage_now_ms(s->stage);
        sl__file_arm(s, s->partial_timer, &s->partial_deadline, s->partial_line_timeout);
    }
    return SL__FILE_UNDECIDED;
}

/* ---- where a file found starts ------------------------------------------------------- */

void sl__file_place(struct sl__file_src *s, struct sl__file *f, bool initial)
{
    const struct sl__file_ckpt_row *r = sl__file_ckpt_find(s->ckpt, f->dev, f->ino);
    if (r && sl__file_same(r->fp, r->fp_len, f->fd, f->size)) {
        if (r->offset <= f->size) {
            f->pos = f->acked = r->offset;
            return;
        }
        sl_stage_log(s->stage, SL_LOG_WARN, "%s: shorter than its checkpoint, reading it again",
                     f->path);
        return;
    }
    if (r && r->fp_len && sl__file_fits(f, r->fp, r->fp_len))
        sl_stage_log(s->stage, SL_LOG_INFO,
                     "%s: longer than the %u bytes its checkpoint knew, reading it whole (it "
                     "may be a new file that begins alike)",
                     f->path, (unsigned)r->fp_len);
    else if (r)
        sl_stage_log(s->stage, SL_LOG_INFO, "%s: new file on a reused inode, reading it whole",
                     f->path);
    /* read_from applies to files present at start; files that appear later are new. */
    bool from_end = initial && s->read_from == SL__FILE_FROM_END;
    if (sl__file_settle(s, f, from_end) == SL__FILE_SETTLED_NEW && from_end)
        f->pos = f->acked = f->size;
}
