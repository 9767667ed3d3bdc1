/* Newline framing (connectors/file/lines.c) on its own: every input ends at a guard
 * page, so any read past the end crashes; streams are cut at every possible point and
 * fed in two parts, as a reader resuming at the unconsumed offset would. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../connectors/file/internal.h"
#include "helpers.h"

static struct sl_pipeline *p;
static struct sl_stage *stage;
static char *page; /* two pages; the second is PROT_NONE */
static long pagesz;

static void setup(void)
{
    struct sl_pipeline_options o;
    sl_pipeline_options_init(&o);
    o.batch_max_events = 3;
    p = sl_pipeline_new(NULL, &o, NULL);
    stage = t_add(p, "src", &t_counter, NULL);
    pagesz = sysconf(_SC_PAGESIZE);
    page =
        mmap(NULL, (size_t)pagesz * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(page, MAP_FAILED);
    cr_assert_eq(mprotect(page + pagesz, (size_t)pagesz, PROT_NONE), 0);
}

static void teardown(void)
{
    munmap(page, (size_t)pagesz * 2);
    sl_pipeline_free(p);
}

TestSuite(file_lines, .init = setup, .fini = teardown, .timeout = 30);

/* Copies `n` bytes so that they end where the guard page begins. */
static const char *guarded(const char *s, size_t n)
{
    char *at = page + pagesz - n;
    memcpy(at, s, n);
    return at;
}

static struct sl__file_lines cfg(uint64_t max_line)
{
    return (struct sl__file_lines){.stage = stage, .max_line = max_line};
}

/* Collected lines, '|'-joined ("a|b|" for two). */
struct collected {
    char text[4096];
    size_t used;
};

static void collect(struct collected *c, struct sl_batch *b)
{
    for (size_t i = 0; i < sl_batch_count(b); i++) {
        size_t len;
        const char *pl = sl_event_payload(sl_batch_event_const(b, i), &len);
        memcpy(c->text + c->used, pl, len);
        c->used += len;
        c->text[c->used++] = '|';
    }
    c->text[c->used] = '\0';
}

/* Frames all of `s`, in batches of 3 events, resuming at the unconsumed offset like a
 * reader; the last call has `eof`. Returns the bytes consumed. */
static size_t frame(struct sl__file_lines *l, struct sl__file_frame *fr, const char *s, size_t n,
                    bool eof, struct collected *c)
{
    size_t done = 0;
    for (;;) {
        struct sl_batch *b = sl_batch_new(stage);
        struct sl__file_origin org = {.path = "t", .base = done};
        size_t used =
            sl__file_lines_split(l, fr, b, guarded(s + done, n - done), n - done, eof, &org);
        collect(c, b);
        bool full = sl_batch_full(b);
        sl_batch_unref(b);
        done += used;
        if (!full || done == n) return done;
    }
}

Test(file_lines, whole_lines_partial_lines_and_eof)
{
    struct sl__file_lines l = cfg(100);
    struct sl__file_frame fr = {0};
    struct collected c = {0};
    cr_assert_eq(frame(&l, &fr, "a\nbb\r\n\nccc", 10, false, &c), 7);
    cr_assert_str_eq(c.text, "a|bb||");
    c = (struct collected){0};
    cr_assert_eq(frame(&l, &fr, "ccc", 3, true, &c), 3);
    cr_assert_str_eq(c.text, "ccc|");
    c = (struct collected){0};
    cr_assert_eq(frame(&l, &fr, "no newline", 10, false, &c), 0);
    cr_assert_str_eq(c.text, "");
    cr_assert_eq(frame(&l, &fr, "cr at eof\r", 10, true, &c), 10);
    cr_assert_str_eq(c.text, "cr at eof|");
}

Test(file_lines, offsets_are_line_starts_in_the_stream)
{
    struct sl__file_lines l = cfg(100);
    struct sl__file_frame fr = {0};
    struct sl_batch *b = sl_batch_new(stage);
    struct sl__file_origin org = {.path = "t", .base = 1000};
    cr_assert_eq(sl__file_lines_split(&l, &fr, b, guarded("x\nyy\nz", 6), 6, false, &org), 5);
    cr_assert_eq(sl_batch_count(b), 2);
    cr_assert_eq(sl_event_offset(sl_batch_event_const(b, 0)), 1000);
    cr_assert_eq(sl_event_offset(sl_batch_event_const(b, 1)), 1002);
    cr_assert_str_eq(sl_event_origin(sl_batch_event_const(b, 1)), "t");
    sl_batch_unref(b);
}

static const char stream[] = "first\nsecond line\r\n\nthe fourth one is long\n5\nlast";
static const char expected[] = "first|second line||the fourth one is long|5|last|";

Test(file_lines, a_stream_cut_anywhere_gives_the_same_lines)
{
    size_t n = sizeof stream - 1;
    for (size_t cut = 0; cut <= n; cut++) {
        struct sl__file_lines l = cfg(100);
        struct sl__file_frame fr = {0};
        struct collected c = {0};
        size_t used = frame(&l, &fr, stream, cut, false, &c);
        used += frame(&l, &fr, stream + used, n - used, true, &c);
        cr_assert_eq(used, n, "cut at %zu", cut);
        cr_assert_str_eq(c.text, expected, "cut at %zu", cut);
    }
}

Test(file_lines, oversize_lines_are_cut_then_skipped_to_their_newline)
{
    size_t n = sizeof stream - 1;
    for (size_t cut = 0; cut <= n; cut++) {
        struct sl__file_lines l = cfg(8);
        struct sl__file_frame fr = {0};
        struct collected c = {0};
        size_t used = frame(&l, &fr, stream, cut, false, &c);
        used += frame(&l, &fr, stream + used, n - used, true, &c);
        cr_assert_eq(used, n);
        /* Every cut sees the same events, except that a partial line longer than
         * max_line is cut as soon as it is seen, which is the same text. */
        cr_assert_str_eq(c.text, "first|second l||the four|5|last|", "cut at %zu", cut);
        cr_assert_eq(l.oversize, 2, "cut at %zu", cut);
    }
}

Test(file_lines, oversize_lines_can_be_dropped)
{
    struct sl__file_lines l = cfg(8);
    l.on_oversize = SL__FILE_OVERSIZE_DROP;
    struct sl__file_frame fr = {0};
    struct collected c = {0};
    frame(&l, &fr, stream, sizeof stream - 1, true, &c);
    cr_assert_str_eq(c.text, "first||5|last|");
    struct sl_stage_stats st = {.size = sizeof st};
    sl_stage_stats(stage, &st);
    cr_assert_eq(st.dropped, 2);
}

static const char *const invalid_utf8[] = {
    "\x80",             /* lone continuation */
    "\xc0\xaf",         /* overlong '/' */
    "\xe0\x80\xaf",     /* overlong, 3 bytes */
    "\xed\xa0\x80",     /* UTF-16 surrogate */
    "\xf4\x90\x80\x80", /* above U+10FFFF */
    "\xf5\x80\x80\x80", /* invalid lead byte */
    "\xe2\x82",         /* cut short */
    "\xff",             /* never valid */
};

Test(file_lines, utf8_check_finds_every_kind_of_invalid_sequence)
{
    for (size_t i = 0; i < sizeof invalid_utf8 / sizeof *invalid_utf8; i++) {
        struct sl__file_lines l = cfg(100);
        l.encoding = SL__FILE_ENC_UTF8;
        struct sl__file_frame fr = {0};
        char line[32];
        int n = snprintf(line, sizeof line, "a%sb", invalid_utf8[i]);
        struct collected c = {0};
        frame(&l, &fr, line, (size_t)n, true, &c);
        cr_assert_eq(l.invalid, 1, "sequence %zu", i);
        cr_assert(strncmp(c.text, "a\xef\xbf\xbd", 4) == 0, "sequence %zu: %s", i, c.text);
    }
    const char *valid = "\x00 ascii \xc2\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf";
    struct sl__file_lines l = cfg(100);
    l.encoding = SL__FILE_ENC_UTF8;
    struct sl__file_frame fr = {0};
    struct collected c = {0};
    frame(&l, &fr, valid, 1 + strlen(valid + 1), true, &c);
    cr_assert_eq(l.invalid, 0);
}
