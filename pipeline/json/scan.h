/* Byte scanning shared by the JSON reader (read.c) and writer (write.c). Private to those
 * two files (and the tests that check it). Everything here is static inline: it sits on
 * the hottest path of the project, the inner loop over string bytes. */
#ifndef SLUICE_PIPELINE_JSON_SCAN_H
#define SLUICE_PIPELINE_JSON_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* A byte that ends a run of plain string bytes: '"', '\\', a control character (< 0x20)
 * or the first byte of a multi-byte UTF-8 sequence (>= 0x80). Plain bytes are copied by
 * the writer and skipped by the reader without a look. */
static inline bool sl__json_special(unsigned char c)
{
    return c < 0x20 || c >= 0x80 || c == '"' || c == '\\';
}

#define SL__JSON_ONES 0x0101010101010101ull
#define SL__JSON_HIGH 0x8080808080808080ull

/* A mask with the high bit set in each byte of `w` that is special (see above). Only the
 * lowest set byte is exact: the borrows of the subtractions can flag bytes above a true
 * hit, never below one, which is all that finding the first hit needs. */
static inline uint64_t sl__json_special_mask(uint64_t w)
{
    uint64_t q = w ^ (SL__JSON_ONES * '"');
    uint64_t b = w ^ (SL__JSON_ONES * '\\');
    uint64_t quote = (q - SL__JSON_ONES) & ~q;
    uint64_t bslash = (b - SL__JSON_ONES) & ~b;
    uint64_t ctrl = (w - SL__JSON_ONES * 0x20) & ~w;
    return (quote | bslash | ctrl | w) & SL__JSON_HIGH;
}

/* The scalar scan of sl__json_scan_plain (8-byte words, then bytes), also its tail. */
static inline const unsigned char *sl__json_scan_plain_words(const unsigned char *p,
                                                             const unsigned char *end)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t m = sl__json_special_mask(w);
        if (m) return p + (__builtin_ctzll(m) >> 3);
        p += 8;
    }
#endif
    while (p < end && !sl__json_special(*p)) p++;
    return p;
}

#if defined(__SSE2__)
/* The bytes of x that end a plain run but are not a quote: backslashes, controls and bytes
 * >= 0x80 (a signed compare with 0x20 flags the last two at once), as 0xff. */
static inline __m128i sl__json_vec_escapes(__m128i x)
{
    return _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('\\')),
                        _mm_cmplt_epi8(x, _mm_set1_epi8(0x20)));
}

/* The special bytes of x (see sl__json_special) as a 16-bit mask, bit i for byte i. */
static inline unsigned sl__json_vec_special_mask(__m128i x)
{
    return (unsigned)_mm_movemask_epi8(
        _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')), sl__json_vec_escapes(x)));
}
#endif

/* Returns the first special byte in [p, end), or `end`. Where SSE2 is (every x86-64),
 * 16 bytes a step: a string of a log line (a name, a level, a path) usually ends inside
 * the first one. Reads whole 16- or 8-byte blocks only while that many remain, so it
 * never touches a byte at or past `end`. */
static inline const unsigned char *sl__json_scan_plain(const unsigned char *p,
                                                       const unsigned char *end)
{
#if defined(__SSE2__)
    /* sl__json_vec_special_mask's compares with their constants out of the loop: it also
     * runs over strings of gigabytes in builds that inline nothing (-O0 under ASan). */
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                  space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, bslash)),
                                 _mm_cmplt_epi8(x, space));
        unsigned mask = (unsigned)_mm_movemask_epi8(m);
        if (mask) return p + __builtin_ctz(mask);
        p += 16;
    }
#endif
    return sl__json_scan_plain_words(p, end);
}

/* Checks the UTF-8 sequence that starts at p (p < end, *p >= 0x80) by the table of
 * well-formed sequences (Unicode 3.9, table 3-7): no overlong forms, no surrogates
 * U+D800..U+DFFF, nothing above U+10FFFF. On success sets *ok and returns the end of the
 * sequence. Otherwise clears *ok and returns the first byte that cannot belong to it:
 * `p` itself when *p cannot start a sequence, `end` when the text stops inside one. The
 * bytes [p, result) are then the maximal ill-formed subpart (at least one byte when the
 * caller skips max(result, p + 1)). */
static inline const unsigned char *sl__json_utf8(const unsigned char *p, const unsigned char *end,
                                                 bool *ok)
{
    unsigned char c = *p;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    int more;                           /* continuation bytes after the first */
    *ok = false;
    if (c < 0xC2) return p;
    if (c < 0xE0) {
        more = 1;
    } else if (c < 0xF0) {
        more = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c < 0xF5) {
        more = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return p;
    }
    p++;
    for (int i = 0; i < more; i++, p++) {
        if (p == end) return p;
        if (*p < lo || *p > hi) return p;
        lo = 0x80, hi = 0xBF;
    }
    *ok = true;
    return p;
}

#endif
