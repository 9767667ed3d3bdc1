/* Rotation seen from outside: files that held a followed path between two looks of the
 * source, and were rotated away before it could see them.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
