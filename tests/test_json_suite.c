/* The JSON reader against JSONTestSuite (github.com/nst/JSONTestSuite): y_ documents
 * must be accepted, n_ rejected, i_ either way without a crash. Every input is read
 * where an overread or underread faults: at the very end of a mapping whose next page
 * is PROT_NONE, and at the start of one whose previous page is (picohttpparser style).
 * Every prefix of every document is read the same way. */
#define _GNU_SOURCE /* memfd_create */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <stdint.h>
#include <unistd.h>

#include <sluice/json.h>

#include "json/internal.h"

/* ---- the documents ----------------------------------------------------------------- */

struct doc {
    char name[128]; /* file name */
    char *data;     /* file bytes (owned) */
    size_t len;     /* bytes of data */
};

struct suite {
    struct doc *docs; /* sorted by name */
    size_t n;         /* documents */
};

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct doc *)a)->name, ((const struct doc *)b)->name);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc((size_t)n + 1);
    cr_assert_eq(fread(data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return data;
}

static struct suite load_suite(void)
{
    const char *root = getenv("SLUICE_TESTDATA");
    cr_assert(root, "SLUICE_TESTDATA is not set: run the tests with `meson test`");
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/JSONTestSuite/test_parsing", root);
    DIR *d = opendir(dir);
    cr_assert(d, "cannot open %s", dir);
    struct suite s = {.docs = calloc(512, sizeof(struct doc))};
    for (struct dirent *e; (e = readdir(d));) {
        size_t nl = strlen(e->d_name);
        if (nl < 6 || strcmp(e->d_name + nl - 5, ".json") != 0) continue;
        cr_assert_lt(s.n, 512);
        cr_assert_lt(nl, sizeof s.docs[0].name);
        struct doc *doc = &s.docs[s.n++];
        memcpy(doc->name, e->d_name, nl + 1);
        int pl = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        cr_assert_lt(pl, (int)sizeof path);
        doc->data = read_file(path, &doc->len);
    }
    closedir(d);
    qsort(s.docs, s.n, sizeof s.docs[0], by_name);
    cr_assert_eq(s.n, 318, "expected the 318 JSONTestSuite documents, found %zu", s.n);
    return s;
}

static void free_suite(struct suite *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->docs[i].data);
    free(s->docs);
}

/* ---- guard pages ------------------------------------------------------------------- */

/* A mapping with a PROT_NONE page at each end: [guard][usable ...][guard]. */
struct guard {
    char *map;     /* the whole mapping */
    size_t usable; /* bytes between the guard pages */
    size_t page;   /* page size */
};

static void guard_reserve(struct guard *g, size_t len)
{
    if (!g->page) g->page = (size_t)sysconf(_SC_PAGESIZE);
    if (g->map && g->usable >= len) return;
    if (g->map) munmap(g->map, g->usable + 2 * g->page);
    g->usable = (len + g->page) / g->page * g->page;
    g->map = mmap(NULL, g->usable + 2 * g->page, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert(g->map != MAP_FAILED);
    cr_assert_eq(mprotect(g->map, g->page, PROT_NONE), 0);
    cr_assert_eq(mprotect(g->map + g->page + g->usable, g->page, PROT_NONE), 0);
}

/* Copies `len` bytes so that they end where the trailing guard page begins. */
static const char *at_end(struct guard *g, const char *data, size_t len)
{
    guard_reserve(g, len);
    char *p = g->map + g->page + g->usable - len;
    if (len) memcpy(p, data, len);
    return p;
}

/* Copies `len` bytes so that they start where the leading guard page ends. */
static const char *at_start(struct guard *g, const char *data, size_t len)
{
    guard_reserve(g, len);
    char *p = g->map + g->page;
    if (len) memcpy(p, data, len);
    return p;
}

static void guard_free(struct guard *g)
{
    if (g->map) munmap(g->map, g->usable + 2 * g->page);
}

/* ---- checks ------------------------------------------------------------------------ */

static int ignore(void *arg, const char *name, size_t name_len, bool escaped,
                  const struct sl_value *v)
{
    (void)name, (void)name_len, (void)escaped, (void)v;
    ++*(size_t *)arg;
    return 0;
}

static bool top_is_object(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i < len && s[i] == '{';
}

/* Runs every reader over `s` and checks that they agree with sl_json_validate. Returns
 * the validate result; a failure message names `what`. */
static int read_all(const char *s, size_t len, const char *what)
{
    size_t off = 0, off2 = 0, count = 0;
    int rc = sl_json_validate(s, len, &off);
    cr_assert(rc == 0 || rc == SL_EPARSE, "%s: validate returned %d", what, rc);
    if (rc) cr_assert_leq(off, len, "%s: offset %zu past %zu", what, off, len);
    int mrc = sl_json_each_member(s, len, ignore, &count, &off2);
    if (top_is_object(s, len)) {
        cr_assert_eq(mrc, rc, "%s: each_member %d, validate %d", what, mrc, rc);
        if (rc) cr_assert_eq(off2, off, "%s: each_member at %zu, validate %zu", what, off2, off);
    } else {
        cr_assert_eq(mrc, SL_EPARSE, "%s: each_member accepted a non-object", what);
    }
    struct sl_value v;
    static const char *paths[] = {"", "a", "[0]", "[1].a", "a.b[0]", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        int grc = sl_json_get(s, len, paths[i], strlen(paths[i]), &v);
        if (rc)
            cr_assert_eq(grc, SL_EPARSE, "%s: get '%s' gave %d", what, paths[i], grc);
        else
            cr_assert(grc == 0 || grc == SL_ENOTFOUND, "%s: get '%s' gave %d", what, paths[i], grc);
        /* The unvalidated lookup (for parsed field values) agrees on valid text and stays
         * inside any text: a found value lies within it. */
        struct sl_value t;
        int trc = sl__json_get(s, len, paths[i], strlen(paths[i]), &t, false);
        if (!rc) cr_assert_eq(trc, grc, "%s: trusted get '%s' gave %d", what, paths[i], trc);
        if (!rc && !trc)
            cr_assert(t.type == v.type && t.s == v.s && t.len == v.len,
                      "%s: trusted get '%s' found another value", what, paths[i]);
        if (!trc && t.s)
            cr_assert(t.s >= s && t.s + t.len <= s + len, "%s: value outside the text", what);
    }
    return rc;
}

/* Appends a name to a report, within its bounds. */
static void note(char *report, size_t cap, const char *name)
{
    size_t n = strlen(report);
    if (n + strlen(name) + 3 < cap) snprintf(report + n, cap - n, " %s", name);
}

TestSuite(json_suite, .timeout = 120);

Test(json_suite, verdicts_at_guard_pages)
{
    struct suite s = load_suite();
    struct guard g = {0};
    size_t y_ok = 0, y_n = 0, n_ok = 0, n_n = 0, i_acc = 0, i_n = 0;
    char bad[4096] = "", accepted_i[4096] = "";
    for (size_t i = 0; i < s.n; i++) {
        const struct doc *d = &s.docs[i];
        int rc = read_all(at_end(&g, d->data, d->len), d->len, d->name);
        cr_assert_eq(read_all(at_start(&g, d->data, d->len), d->len, d->name), rc);
        if (d->name[0] == 'y') {
            y_n++;
            if (rc == 0)
                y_ok++;
            else
                note(bad, sizeof bad, d->name);
        } else if (d->name[0] == 'n') {
            n_n++;
            if (rc != 0)
                n_ok++;
            else
                note(bad, sizeof bad, d->name);
        } else {
            i_n++;
            if (rc == 0) i_acc++, note(accepted_i, sizeof accepted_i, d->name);
        }
    }
    cr_log_info("JSONTestSuite: y_ %zu/%zu accepted, n_ %zu/%zu rejected, i_ %zu/%zu accepted:%s",
                y_ok, y_n, n_ok, n_n, i_acc, i_n, accepted_i);
    cr_assert(y_ok == y_n && n_ok == n_n,
              "JSONTestSuite: y_ %zu/%zu accepted, n_ %zu/%zu rejected; wrong verdicts:%s", y_ok,
              y_n, n_ok, n_n, bad);
    guard_free(&g);
    free_suite(&s);
}

Test(json_suite, each_member_accepts_every_y_object)
{
    struct suite s = load_suite();
    struct guard g = {0};
    size_t objects = 0, ok = 0;
    char bad[4096] = "";
    for (size_t i = 0; i < s.n; i++) {
        const struct doc *d = &s.docs[i];
        if (d->name[0] != 'y' || !top_is_object(d->data, d->len)) continue;
        objects++;
        size_t count = 0, off = 0;
        int rc = sl_json_each_member(at_end(&g, d->data, d->len), d->len, ignore, &count, &off);
        if (rc == 0)
            ok++;
        else
            note(bad, sizeof bad, d->name);
    }
    cr_assert_eq(objects, 12, "expected the 12 y_ documents that are objects, found %zu", objects);
    cr_assert_eq(ok, objects, "each_member accepted %zu of %zu y_ objects; rejected:%s", ok,
                 objects, bad);
    guard_free(&g);
    free_suite(&s);
}

/* Checks every prefix of `s` at a guard page: a prefix no longer than the document's
 * longest valid prefix (its error offset, or its length) is valid or merely incomplete
 * (error at its end); a longer one fails at the same offset as the whole. */
static void check_prefixes(struct guard *g, const char *s, size_t len, const char *what)
{
    size_t err = len, off;
    bool valid = sl_json_validate(s, len, &err) == 0;
    size_t step_from = len > 4096 ? 2048 : len, tail = len > 4096 ? len - 64 : len;
    for (size_t k = 0; k <= len; k = (k >= step_from && k < tail) ? tail : k + 1) {
        char name[160];
        snprintf(name, sizeof name, "%s[0,%zu)", what, k);
        const char *p = at_end(g, s, k);
        int rc = read_all(p, k, name);
        off = 0;
        sl_json_validate(p, k, &off);
        if (valid || k <= err)
            cr_assert(rc == 0 || off == k, "%s: failed at %zu", name, off);
        else
            cr_assert(rc != 0 && off == err, "%s: failed at %zu, not %zu", name, off, err);
    }
}

Test(json_suite, every_prefix_at_guard_pages)
{
    struct suite s = load_suite();
    struct guard g = {0};
    for (size_t i = 0; i < s.n; i++)
        check_prefixes(&g, s.docs[i].data, s.docs[i].len, s.docs[i].name);
    static const char *own[] = {
        ("{\"ts\":\"2024-01-01T00:00:00Z\",\"level\":\"info\",\"msg\":\"user login ok\","
         "\"user_id\":12345,\"latency_ms\":87,\"http\":{\"status\":200,\"path\":\"/api/v1/login\"},"
         "\"tags\":[\"a\",\"b\"]}"),
        ("{\"caf\\u00e9\":\"\\ud83d\\ude00 "
         "\xf0\x9f\x98\x80\",\"n\":-1.25e+10,\"z\":[true,false,null]}"),
        " [ 0 , -0.5 , 1E-2 , \"\\\"\\\\\\/\\b\\f\\n\\r\\t\" , { \"\" : { } } ] ",
    };
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        check_prefixes(&g, own[i], strlen(own[i]), own[i]);
    guard_free(&g);
    free_suite(&s);
}

Test(json_suite, writer_at_guard_pages)
{
    /* The writer reads its input at a guard page too: strings that end inside a UTF-8
     * sequence, or with a byte that needs an escape. */
    struct guard g = {0};
    static const char *inputs[] = {"\xf0\x9f\x98",
                                   "\xe2\x82",
                                   "\xc3",
                                   "abc\"",
                                   "\x01",
                                   "\xff",
                                   "0123456789abcde\xf0",
                                   "plain ascii text of some length"};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        size_t len = strlen(inputs[i]);
        char out[SL_JSON_ESCAPE_MAX(64) + 2];
        for (size_t k = 0; k <= len; k++) {
            const char *p = at_end(&g, inputs[i], k);
            size_t n = sl_json_escape(p, k, out + 1);
            cr_assert_eq(sl_json_escaped_len(p, k), n);
            out[0] = out[n + 1] = '"';
            cr_assert_eq(sl_json_validate(out, n + 2, NULL), 0, "%.*s", (int)n + 2, out);
            p = at_start(&g, inputs[i], k);
            cr_assert_eq(sl_json_escape(p, k, out), n);
        }
    }
    guard_free(&g);
}

/* A value longer than UINT32_MAX bytes cannot be an sl_value: each_member and get say
 * SL_EINVAL at its first byte, while values that are only skipped may be of any size.
 * The 4 GiB string is one 1 MiB memfd mapped 4098 times, privately, so that writing the
 * document's first and last bytes copies only those pages: it costs about 1 MiB. */
Test(json_suite, value_over_4gib_is_einval)
{
    const size_t chunk = 1u << 20, nchunks = 4098, len = chunk * nchunks;
    int fd = memfd_create("sluice-json-4gib", 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (off_t)chunk), 0);
    char *one = mmap(NULL, chunk, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    cr_assert(one != MAP_FAILED);
    memset(one, 'a', chunk);
    munmap(one, chunk);
    char *doc = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    cr_assert(doc != MAP_FAILED);
    for (size_t i = 0; i < nchunks; i++) {
        void *at =
            mmap(doc + i * chunk, chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0);
        cr_assert(at == doc + i * chunk);
    }
    close(fd);
    memcpy(doc, "{\"b\":1,\"a\":\"", 12);
    memcpy(doc + len - 2, "\"}", 2);
    cr_assert_gt(len - 14, (size_t)UINT32_MAX);

    size_t count = 0, off = 0;
    cr_assert_eq(sl_json_each_member(doc, len, ignore, &count, &off), SL_EINVAL);
    cr_assert_eq(count, 1);
    cr_assert_eq(off, 11);
    struct sl_value v;
    cr_assert_eq(sl_json_get(doc, len, "a", 1, &v), SL_EINVAL);
    cr_assert_eq(sl_json_get(doc, len, "b", 1, &v), 0);
    cr_assert_eq(v.len, 1);
    munmap(doc, len);
}
