/* libFuzzer target for the JSON reader and writer.
 *
 * Runs every reader over the input and checks that they agree (and the vector scan of
 * plain string bytes agrees with the scalar one from every start), that error offsets mark
 * the longest valid prefix, that every span a reader returns is valid JSON of its type,
 * that path lookups by each member's decoded name find that member, and that the writer
 * round-trips the input as a string and every member value.
 *
 * Build: CC=clang meson setup build-fuzz -Dfuzz=true && ninja -C build-fuzz
 * Run:   build-fuzz/tests/fuzz/fuzz_json -max_total_time=180 fuzz-corpus tests/fuzz/corpus/json */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/json.h>

#include "json/internal.h"
#include "json/scan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define MAX_MEMBERS 16

struct member {
    const char *name;  /* span in the input */
    size_t name_len;   /* bytes */
    bool escaped;      /* name has escapes */
    struct sl_value v; /* the value */
};

struct walk {
    const char *base, *end;       /* the input */
    struct member m[MAX_MEMBERS]; /* first members */
    size_t n;                     /* members seen */
};

static int collect(void *arg, const char *name, size_t name_len, bool escaped,
                   const struct sl_value *v)
{
    struct walk *w = arg;
    CHECK(name >= w->base && name + name_len <= w->end);
    if (v->type != SL_NULL && v->type != SL_BOOL) CHECK(v->s >= w->base && v->s + v->len <= w->end);
    if (w->n < MAX_MEMBERS) w->m[w->n] = (struct member){name, name_len, escaped, *v};
    w->n++;
    return 0;
}

static bool top_is_object(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i < len && s[i] == '{';
}

/* An independent UTF-8 check (by code point ranges, not by the reader's byte table). */
static bool utf8_valid(const unsigned char *s, size_t len)
{
    static const uint32_t min[] = {0, 0x80, 0x800, 0x10000}; /* shortest form's floor */
    for (size_t i = 0; i < len;) {
        unsigned c = s[i], n;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC0 && c < 0xE0)
            n = 1;
        else if (c >= 0xE0 && c < 0xF0)
            n = 2;
        else if (c >= 0xF0 && c < 0xF8)
            n = 3;
        else
            return false;
        if (len - i <= n) return false;
        uint32_t cp = c & (0x3Fu >> n);
        for (unsigned k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += n + 1;
    }
    return true;
}

/* Decodes a string value into an owned buffer. */
static char *decode(const struct sl_value *v, size_t *len)
{
    char *buf = malloc(v->len + 1);
    int n = sl_value_unescape(v, buf, v->len);
    CHECK(n >= 0);
    *len = (size_t)n;
    return buf;
}

/* Writes v, checks the sizing contract and that the text is valid JSON; returns it. */
static char *write_checked(const struct sl_value *v, size_t *len)
{
    size_t n = sl_json_write_value(v, NULL, 0);
    char *out = malloc(n + 1);
    CHECK(n > 0);
    memset(out, '#', n + 1);
    CHECK(sl_json_write_value(v, out, n - 1) == n);
    for (size_t i = 0; i <= n; i++) CHECK(out[i] == '#');
    CHECK(sl_json_write_value(v, out, n + 1) == n && out[n] == '#');
    CHECK(sl_json_validate(out, n, NULL) == 0);
    *len = n;
    return out;
}

/* The written value reads back as the same value. */
static void check_value_round_trip(const struct sl_value *v)
{
    size_t n, a, b;
    char *out = write_checked(v, &n);
    struct sl_value r;
    CHECK(sl_json_get(out, n, "", 0, &r) == 0);
    CHECK(r.type == v->type);
    if (v->type == SL_STRING) {
        char *x = decode(v, &a), *y = decode(&r, &b);
        CHECK(a == b && memcmp(x, y, a) == 0);
        free(x);
        free(y);
    } else if (v->type != SL_NULL && v->type != SL_BOOL) {
        CHECK(r.len == v->len && memcmp(r.s, v->s, r.len) == 0);
    } else if (v->type == SL_BOOL) {
        CHECK(r.b == v->b);
    }
    free(out);
}

/* Each member's decoded name, as a path, finds the last member of that name (as jq,
 * Python and JavaScript read it). Only when every member was kept: a later one of the
 * same name could be past MAX_MEMBERS. */
static void check_get_by_name(const char *s, size_t size, const struct walk *w)
{
    size_t shown = w->n <= MAX_MEMBERS ? w->n : 0;
    for (size_t i = 0; i < shown; i++) {
        struct sl_value nv = {.type = SL_STRING,
                              .s = w->m[i].name,
                              .len = (uint32_t)w->m[i].name_len,
                              .flags = w->m[i].escaped ? SL_VALUE_ESCAPED : 0};
        size_t nl;
        char *name = decode(&nv, &nl);
        if (nl == 0 || memchr(name, '.', nl) || memchr(name, '[', nl)) {
            free(name);
            continue;
        }
        size_t last = i;
        for (size_t j = shown - 1; j > i; j--) {
            struct sl_value o = {.type = SL_STRING,
                                 .s = w->m[j].name,
                                 .len = (uint32_t)w->m[j].name_len,
                                 .flags = w->m[j].escaped ? SL_VALUE_ESCAPED : 0};
            size_t ol;
            char *other = decode(&o, &ol);
            bool same = ol == nl && memcmp(other, name, nl) == 0;
            free(other);
            if (same) {
                last = j;
                break;
            }
        }
        struct sl_value got;
        CHECK(sl_json_get(s, size, name, nl, &got) == 0);
        const struct sl_value *want = &w->m[last].v;
        CHECK(got.type == want->type && got.flags == want->flags);
        if (got.type == SL_BOOL)
            CHECK(got.b == want->b);
        else if (got.type != SL_NULL)
            CHECK(got.s == want->s && got.len == want->len);
        free(name);
    }
}

/* The input as a string: escaped, it is valid JSON and decodes to the input (or, for
 * invalid UTF-8, to valid UTF-8 no shorter: each ill-formed run of 1-3 bytes became
 * U+FFFD, 3 bytes). */
static void check_escape(const char *s, size_t size)
{
    size_t n = sl_json_escaped_len(s, size);
    char *out = malloc(n + 2);
    CHECK(n <= SL_JSON_ESCAPE_MAX(size));
    CHECK(sl_json_escape(s, size, out + 1) == n);
    out[0] = out[n + 1] = '"';
    struct sl_value v;
    CHECK(sl_json_get(out, n + 2, "", 0, &v) == 0 && v.type == SL_STRING);
    size_t dl;
    char *dec = decode(&v, &dl);
    if (utf8_valid((const unsigned char *)s, size))
        CHECK(dl == size && memcmp(dec, s, size) == 0);
    else
        CHECK(utf8_valid((const unsigned char *)dec, dl) && dl >= size);
    free(dec);
    free(out);
}

/* Numbers the reader never makes: the input bytes as a double and an int64, and as the
 * text of an SL_VALUE_TEXT number. Written, they are valid JSON and read back exactly. */
static void check_numbers(const char *s, size_t size)
{
    size_t n;
    struct sl_value r, v;
    if (size >= 8) {
        double d;
        int64_t i;
        memcpy(&d, s, 8);
        memcpy(&i, s, 8);
        v = sl_value_float(d);
        char *out = write_checked(&v, &n);
        CHECK(sl_json_get(out, n, "", 0, &r) == 0 && sl_value_number(&r) == 0);
        if (d == d && d - d == 0)
            CHECK(r.type == SL_FLOAT && memcmp(&r.f, &d, 8) == 0);
        else
            CHECK(r.type == SL_NULL);
        free(out);
        v = sl_value_int(i);
        out = write_checked(&v, &n);
        CHECK(sl_json_get(out, n, "", 0, &r) == 0 && sl_value_number(&r) == 0);
        CHECK(r.type == SL_INT && r.i == i);
        free(out);
    }
    v = (struct sl_value){.type = SL_FLOAT,
                          .flags = SL_VALUE_TEXT,
                          .s = s,
                          .len = (uint32_t)(size < 200 ? size : 200)};
    free(write_checked(&v, &n));
    v.type = SL_INT;
    free(write_checked(&v, &n));
}

/* The vector scan for plain string bytes finds what the scalar one finds, from every start
 * (the input is an exact-size buffer: a read past its end is ASan's). */
static void check_scan(const unsigned char *p, size_t size)
{
    for (size_t i = 0; i <= size; i++)
        CHECK(sl__json_scan_plain(p + i, p + size) == sl__json_scan_plain_words(p + i, p + size));
}

/* The index of a nested object (pipeline/event/nested.c) is sl__json_members, then
 * sl__json_value at the member a lookup names: on a valid object, the same names and the
 * same values, to the byte, as the member walk. On any other text the walk is only
 * memory-safe (its text is a parser's): it is run, and every value it points at read. */
static void check_members(const char *s, size_t size, const struct walk *w, bool valid)
{
    struct sl__json_span m[MAX_MEMBERS];
    int n = sl__json_members(s, size, m, MAX_MEMBERS);
    if (!valid) {
        struct sl_value v;
        for (int i = 0; i < n; i++) (void)sl__json_value(s, size, m[i].value_off, &v);
        return;
    }
    if (w->n > MAX_MEMBERS) {
        CHECK(n == SL_ELIMIT);
        return;
    }
    CHECK(n == (int)w->n);
    for (int i = 0; i < n; i++) {
        const struct member *e = &w->m[i];
        CHECK(s + m[i].name_off == e->name && m[i].name_len == e->name_len);
        CHECK(m[i].escaped == e->escaped);
        struct sl_value v;
        CHECK(sl__json_value(s, size, m[i].value_off, &v) == 0);
        CHECK(v.type == e->v.type && v.flags == e->v.flags && v.len == e->v.len && v.s == e->v.s);
        if (v.type == SL_BOOL) CHECK(v.b == e->v.b);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    size_t off = 0, off2 = 0;
    check_scan(data, size);
    int rc = sl_json_validate(s, size, &off);
    CHECK(rc == 0 || rc == SL_EPARSE);
    if (rc) {
        /* The offset ends the longest valid prefix: that prefix is valid or incomplete. */
        CHECK(off <= size);
        int prc = sl_json_validate(s, off, &off2);
        CHECK(prc == 0 || off2 == off);
    }

    struct walk w = {.base = s, .end = s + size};
    int mrc = sl_json_each_member(s, size, collect, &w, &off2);
    if (top_is_object(s, size)) {
        CHECK(mrc == rc);
        if (rc) CHECK(off2 == off);
    } else {
        CHECK(mrc == SL_EPARSE);
    }

    static const char *paths[] = {"", "a", "[0]", "a.b", "[1][0]", "a[2].b", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        struct sl_value v;
        int grc = sl_json_get(s, size, paths[i], strlen(paths[i]), &v);
        if (rc)
            CHECK(grc == SL_EPARSE);
        else
            CHECK(grc == 0 || grc == SL_ENOTFOUND);
        if (grc == 0 && v.type == SL_JSON) CHECK(sl_json_validate(v.s, v.len, NULL) == 0);
        struct sl_value t;
        int trc = sl__json_get(s, size, paths[i], strlen(paths[i]), &t, false);
        if (!rc) CHECK(trc == grc);
        if (!rc && !trc) CHECK(t.type == v.type && t.s == v.s && t.len == v.len);
        if (!trc && t.s) CHECK(t.s >= s && t.s + t.len <= s + size);
    }

    check_members(s, size, &w, mrc == 0);
    if (mrc == 0) {
        size_t shown = w.n < MAX_MEMBERS ? w.n : MAX_MEMBERS;
        for (size_t i = 0; i < shown; i++) check_value_round_trip(&w.m[i].v);
        check_get_by_name(s, size, &w);
    }
    if (size <= 4096) check_escape(s, size);
    check_numbers(s, size);
    return 0;
}
