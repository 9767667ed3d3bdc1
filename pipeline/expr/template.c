/* Templates: text with `{{ expression }}` holes, for sinks' paths, topics and keys. Each
 * hole is an expression compiled once; rendering writes the text of its value. */
#include <stdlib.h>
#include <string.h>

#include "expr/internal.h"

struct part {
    const char *text;  /* literal text (in the template's copy of the source) */
    size_t len;        /* bytes of text */
    struct sl_expr *x; /* or an expression */
};

struct sl_template {
    struct part *parts; /* in order */
    size_t n;           /* number of parts */
    char *src;          /* a copy of the source: text parts point into it */
    bool constant;      /* no part depends on the event */
};

void sl_template_free(struct sl_template *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) sl_expr_free(t->parts[i].x);
    free(t->parts);
    free(t->src);
    free(t);
}

static const char *find_open(const char *s, size_t from, size_t len)
{
    for (size_t i = from; i + 1 < len; i++)
        if (s[i] == '{' && s[i + 1] == '{') return s + i;
    return NULL;
}

/* Each "{{ }}" takes at least five bytes, so parts never outnumber len / 2 + 2. */
static void add_part(struct sl_template *t, const char *text, size_t len, struct sl_expr *x)
{
    if (!x && len == 0) return;
    t->parts[t->n++] = (struct part){.text = text, .len = len, .x = x};
    if (x && !sl__expr_constant(x, NULL)) t->constant = false;
}

struct sl_template *sl_template_compile(const char *src, size_t len, struct sl_error *err)
{
    struct sl_template *t = calloc(1, sizeof *t);
    if (!t) goto nomem;
    t->constant = true;
    t->src = malloc(len + 1);
    t->parts = calloc(len / 2 + 2, sizeof *t->parts);
    if (!t->src || !t->parts) goto nomem;
    if (len) memcpy(t->src, src, len);
    t->src[len] = '\0';
    size_t at = 0;
    for (const char *open; (open = find_open(t->src, at, len));) {
        size_t o = (size_t)(open - t->src), end;
        add_part(t, t->src + at, o - at, NULL);
        struct sl_expr *x = sl__expr_compile_at(t->src, len, o + 2, true, &end, err);
        if (!x) goto fail;
        add_part(t, NULL, 0, x);
        at = end + 2;
    }
    add_part(t, t->src + at, len - at, NULL);
    return t;
nomem:
    sl_error_set(err, SL_ENOMEM, "out of memory");
fail:
    sl_template_free(t);
    return NULL;
}

bool sl_template_is_constant(const struct sl_template *t)
{
    return t->constant;
}

/* Appends s/len at *need, writing what fits before the last byte of buf. */
static void put(char *buf, size_t cap, size_t *need, const char *s, size_t len)
{
    if (cap && *need < cap - 1) {
        size_t room = cap - 1 - *need;
        memcpy(buf + *need, s, len < room ? len : room);
    }
    *need += len;
}

size_t sl_template_render(const struct sl_template *t, struct sl_event *ev, char *buf, size_t cap)
{
    char scratch[SL__EXPR_SCRATCH];
    size_t need = 0;
    for (size_t i = 0; i < t->n; i++) {
        const struct part *p = &t->parts[i];
        if (!p->x) {
            put(buf, cap, &need, p->text, p->len);
            continue;
        }
        struct sl__ctx c = {.ev = ev, .wev = ev, .x = p->x, .buf = scratch, .cap = sizeof scratch};
        struct sl_value v;
        const char *s;
        size_t len;
        sl__eval(p->x->root, &c, &v);
        if (sl__text_of(&c, &v, &s, &len)) put(buf, cap, &need, s, len);
    }
    if (cap) buf[need < cap ? need : cap - 1] = '\0';
    return need;
}

/* One `{{ }}` for sl_template_each: evaluated read-only, its text handed to `fn`. */
static int each_value(const struct sl_expr *x, const struct sl_event *ev, char *scratch,
                      sl_template_piece_fn *fn, void *arg)
{
    struct sl__ctx c = {.ev = ev, .x = x, .buf = scratch, .cap = SL__EXPR_SCRATCH};
    struct sl_value v;
    const char *s;
    size_t len;
    sl__eval(x->root, &c, &v);
    if (sl__text_of(&c, &v, &s, &len)) return fn(arg, SL_TEMPLATE_VALUE, s, len);
    if (v.type != SL_STRING) return fn(arg, SL_TEMPLATE_NULL, NULL, 0);
    if (v.len == 0) return fn(arg, SL_TEMPLATE_VALUE, "", 0);
    /* An escaped field longer than what is left of the scratch: decoded on the heap, as
     * the value exists and must not vanish (rare: strings of kilobytes with escapes). */
    char *big = malloc(v.len);
    if (!big) return SL_ENOMEM;
    int rc = fn(arg, SL_TEMPLATE_VALUE, big, sl__text_decode(&v, big));
    free(big);
    return rc;
}

int sl_template_each(const struct sl_template *t, const struct sl_event *ev,
                     sl_template_piece_fn *fn, void *arg)
{
    char scratch[SL__EXPR_SCRATCH]; /* reused by each hole: its text is consumed at once */
    for (size_t i = 0; i < t->n; i++) {
        const struct part *p = &t->parts[i];
        int rc = p->x ? each_value(p->x, ev, scratch, fn, arg)
                      : fn(arg, SL_TEMPLATE_TEXT, p->text, p->len);
        if (rc) return rc;
    }
    return 0;
}

int sl_template_fields(const struct sl_template *t,
                       int (*fn)(void *arg, const char *path, size_t len), void *arg)
{
    int rc = 0;
    for (size_t i = 0; t && i < t->n && !rc; i++)
        if (t->parts[i].x) rc = sl_expr_fields(t->parts[i].x, fn, arg);
    return rc;
}
