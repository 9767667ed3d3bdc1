/* Config documents: YAML (libyaml's event parser) into a tree of positioned nodes, with
 * ${VAR} and ${VAR:-default} taken from the environment in the raw text before the parse
 * (outside comments; $${ is a literal ${). Every position reported, the nodes' and
 * libyaml's errors', is in the original text. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "config/internal.h"

#define MAX_DEPTH 64 /* deeper documents are refused rather than recursed into */

struct doc {
    atomic_int refs;          /* references to the document */
    char *file;               /* origin, for positions */
    struct sl_config **nodes; /* every node, for freeing */
    size_t n, cap;            /* used / allocated */
    struct sl_config *root;   /* top node */
};

struct sl_config {
    struct doc *doc;          /* owner */
    enum sl_config_kind kind; /* scalar, map or list */
    char *str;                /* scalar text (NUL-terminated), NULL otherwise */
    bool quoted;              /* scalar was quoted */
    int line, col;            /* 1-based position */
    struct sl_config **items; /* map values or list items */
    struct sl_config **keys;  /* map keys (scalars) */
    size_t n, cap;            /* entries used / allocated */
    struct sl__index *index;  /* maps of more than INDEX_FROM keys: key -> entry, built as
                                 they grow (never on a lookup: documents are shared) */
};

#define INDEX_FROM 16

struct anchor {
    char *name;             /* anchor name */
    struct sl_config *node; /* what it names */
};

struct buf {
    char *p;       /* bytes */
    size_t n, cap; /* used / allocated */
};

/* One edit of the raw text by interpolation: expanded [exp, exp_end) stands for original
 * [orig, orig_end). Between edits the two texts are equal, shifted. */
struct seg {
    size_t exp, exp_end, orig, orig_end;
};

/* Where the lines of a text start (breaks as libyaml counts them: \n, \r\n, \r). */
struct lines {
    size_t *at; /* at[i]: offset of line i + 1 */
    size_t n;   /* lines */
};

struct parse {
    yaml_parser_t yp;       /* libyaml state */
    struct doc *doc;        /* being built */
    struct sl_error *err;   /* where errors go */
    struct anchor *anchors; /* &name -> node */
    size_t nanchors;        /* entries in anchors */
    int failed;             /* an error was reported */
    const char *orig;       /* the text as given, and its lines */
    struct lines orig_lines;
    struct buf exp;         /* the text after ${...}: what libyaml reads */
    struct lines exp_lines; /* its lines, made only when there are edits */
    struct seg *segs;       /* the edits, in order */
    size_t nsegs, segcap;   /* used / allocated */
};

/* ---- nodes ----------------------------------------------------------------------------- */

static struct sl_config *node_new(struct doc *d, enum sl_config_kind kind, int line, int col)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 32;
        struct sl_config **nn = realloc(d->nodes, cap * sizeof *nn);
        if (!nn) return NULL;
        d->nodes = nn;
        d->cap = cap;
    }
    struct sl_config *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->doc = d;
    c->kind = kind;
    c->line = line;
    c->col = col;
    d->nodes[d->n++] = c;
    return c;
}

static const char *key_name(void *arg, uint32_t i, size_t *len)
{
    const struct sl_config *m = arg;
    *len = strlen(m->keys[i]->str);
    return m->keys[i]->str;
}

/* Keeps the key index of a large map up to date with its last entry. */
static int index_last(struct sl_config *m)
{
    if (m->n <= INDEX_FROM) return 0;
    if (!m->index) {
        if (!(m->index = malloc(sizeof *m->index))) return SL_ENOMEM;
        sl__index_init(m->index, key_name, m);
        for (size_t i = 0; i + 1 < m->n; i++)
            if (sl__index_add(m->index, (uint32_t)i)) return SL_ENOMEM;
    }
    return sl__index_add(m->index, (uint32_t)(m->n - 1));
}

static int node_append(struct sl_config *c, struct sl_config *key, struct sl_config *item)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        struct sl_config **ni = realloc(c->items, cap * sizeof *ni);
        if (!ni) return SL_ENOMEM;
        c->items = ni;
        if (c->kind == SL_CFG_MAP) {
            struct sl_config **nk = realloc(c->keys, cap * sizeof *nk);
            if (!nk) return SL_ENOMEM;
            c->keys = nk;
        }
        c->cap = cap;
    }
    if (c->kind == SL_CFG_MAP) c->keys[c->n] = key;
    c->items[c->n++] = item;
    return c->kind == SL_CFG_MAP ? index_last(c) : 0;
}

static void doc_free(struct doc *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->nodes[i]->str);
        free(d->nodes[i]->items);
        free(d->nodes[i]->keys);
        if (d->nodes[i]->index) sl__index_free(d->nodes[i]->index);
        free(d->nodes[i]->index);
        free(d->nodes[i]);
    }
    free(d->nodes);
    free(d->file);
    free(d);
}

static struct doc *doc_new(const char *file)
{
    struct doc *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    atomic_init(&d->refs, 1);
    d->file = sl__strdup(file ? file : "<config>");
    if (!d->file) {
        free(d);
        return NULL;
    }
    return d;
}

/* ---- positions: expanded text -> original text ------------------------------------------ */

static size_t line_end_at(const char *s, size_t n, size_t i)
{
    if (s[i] == '\n') return i + 1;
    if (s[i] == '\r') return i + 1 < n && s[i + 1] == '\n' ? 0 : i + 1; /* \r\n: at the \n */
    return 0;
}

/* Fills `l` with the line starts of s[0, n). */
static int lines_build(const char *s, size_t n, struct lines *l)
{
    size_t count = 1;
    for (size_t i = 0; i < n; i++) count += line_end_at(s, n, i) != 0;
    if (!(l->at = malloc(count * sizeof *l->at))) return SL_ENOMEM;
    l->n = 0;
    l->at[l->n++] = 0;
    for (size_t i = 0; i < n; i++)
        if (line_end_at(s, n, i)) l->at[l->n++] = i + 1;
    return 0;
}

static bool utf8_cont(char c)
{
    return ((unsigned char)c & 0xC0) == 0x80;
}

/* The 1-based line and column (in characters, as libyaml counts) of offset `off` of `s`. */
static void pos_of_offset(const struct lines *l, const char *s, size_t off, int *line, int *col)
{
    size_t lo = 0, hi = l->n; /* the last line starting at or before off */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->at[mid] <= off)
            lo = mid;
        else
            hi = mid;
    }
    int c = 1;
    for (size_t i = l->at[lo]; i < off; i++) c += !utf8_cont(s[i]);
    *line = (int)lo + 1;
    *col = c;
}

/* The offset in s[0, n) of 0-based `line`, `column` (characters). */
static size_t offset_of_pos(const struct lines *l, const char *s, size_t n, size_t line,
                            size_t column)
{
    if (line >= l->n) return n;
    size_t i = l->at[line];
    for (; column > 0 && i < n; column--) {
        i++;
        while (i < n && utf8_cont(s[i])) i++; /* the rest of a multi-byte character */
    }
    return i;
}

/* The original offset of expanded offset `off`: inside an expansion, where its ${ was. */
static size_t offset_back(const struct parse *ps, size_t off)
{
    size_t lo = 0, hi = ps->nsegs; /* segments [0, lo) start at or before off */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ps->segs[mid].exp <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0) return off;
    const struct seg *g = &ps->segs[lo - 1];
    return off < g->exp_end ? g->orig : g->orig_end + (off - g->exp_end);
}

/* The 1-based position in the ORIGINAL text of a libyaml mark in the expanded text. */
static void mark_pos(const struct parse *ps, yaml_mark_t m, int *line, int *col)
{
    if (!ps->nsegs) { /* nothing was expanded: libyaml's own count is the original's */
        *line = (int)m.line + 1;
        *col = (int)m.column + 1;
        return;
    }
    size_t off = offset_of_pos(&ps->exp_lines, ps->exp.p, ps->exp.n, m.line, m.column);
    pos_of_offset(&ps->orig_lines, ps->orig, offset_back(ps, off), line, col);
}

/* ---- environment interpolation, on the raw text before the YAML parse ------------------- */

static int buf_put(struct buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) return SL_ENOMEM;
        b->p = np;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

struct interp {
    struct parse *ps;
    const char *s; /* the original text */
    size_t len;    /* its length */
    size_t done;   /* s[0, done) is in ps->exp */
    char quote;    /* '\'' or '"' inside a quoted scalar (as far as a scan can tell), or 0 */
    bool comment;  /* inside a comment: up to the end of the line */
};

/* Replaces s[from, to) with with[0, n) in the expanded text and records the edit. */
static int interp_edit(struct interp *in, size_t from, size_t to, const char *with, size_t n)
{
    struct parse *ps = in->ps;
    if (ps->nsegs == ps->segcap) {
        size_t cap = ps->segcap ? ps->segcap * 2 : 16;
        struct seg *ns = realloc(ps->segs, cap * sizeof *ns);
        if (!ns) return SL_ENOMEM;
        ps->segs = ns;
        ps->segcap = cap;
    }
    if (buf_put(&ps->exp, in->s + in->done, from - in->done)) return SL_ENOMEM;
    size_t exp = ps->exp.n;
    if (buf_put(&ps->exp, with, n)) return SL_ENOMEM;
    ps->segs[ps->nsegs++] = (struct seg){exp, ps->exp.n, from, to};
    in->done = to;
    return 0;
}

/* Reports `msg` at original offset `at`. */
static int interp_fail(struct interp *in, size_t at, const char *msg)
{
    int line, col;
    pos_of_offset(&in->ps->orig_lines, in->s, at, &line, &col);
    in->ps->failed = 1;
    return sl_error_at(in->ps->err, SL_ECONFIG, in->ps->doc->file, line, col, "%s", msg);
}

/* Expands the ${...} at s[at] (s[at + 1] is '{'); *next: the offset after its '}'. The
 * '}' must be on the same line. */
static int expand_var(struct interp *in, size_t at, size_t *next)
{
    const char *s = in->s;
    char msg[600];
    size_t close = at + 2;
    while (close < in->len && s[close] != '}' && s[close] != '\n' && s[close] != '\r') close++;
    if (close == in->len || s[close] != '}') {
        snprintf(msg, sizeof msg, "unclosed ${ in '%.*s': expected '}'", (int)(close - at), s + at);
        return interp_fail(in, at, msg);
    }
    const char *colon = memchr(s + at + 2, ':', close - at - 2);
    size_t nlen = (size_t)((colon ? colon : s + close) - (s + at + 2));
    char name[256];
    if (nlen == 0 || nlen >= sizeof name)
        return interp_fail(in, at, "invalid ${...}: expected a variable name");
    memcpy(name, s + at + 2, nlen);
    name[nlen] = '\0';
    const char *val = getenv(name);
    bool has_default = colon && colon + 1 < s + close && colon[1] == '-';
    *next = close + 1;
    if (val && (*val || !has_default)) return interp_edit(in, at, close + 1, val, strlen(val));
    if (has_default)
        return interp_edit(in, at, close + 1, colon + 2, (size_t)(s + close - colon - 2));
    snprintf(msg, sizeof msg, "environment variable '%s' is not set (give a default: ${%s:-value})",
             name, name);
    return interp_fail(in, at, msg);
}

/* Moves the comment and quote state over s[i]; returns how many bytes it took. A '#' at
 * the start of a line or after a blank, outside quotes, starts a comment; a quote opens
 * a scalar where one can start (after a blank, a line start or one of [{,:-?). */
static size_t scan_step(struct interp *in, size_t i)
{
    const char *s = in->s;
    char c = s[i];
    bool more = i + 1 < in->len;
    if (in->comment) {
        in->comment = c != '\n' && c != '\r';
        return 1;
    }
    if (in->quote) {
        if (in->quote == '"' && c == '\\' && more) return 2;
        if (in->quote == '\'' && c == '\'' && more && s[i + 1] == '\'') return 2; /* '' */
        if (c == in->quote) in->quote = 0;
        return 1;
    }
    char prev = i ? s[i - 1] : ' ';
    if (c == '#' && (prev == ' ' || prev == '\t' || prev == '\n' || prev == '\r'))
        in->comment = true;
    else if ((c == '\'' || c == '"') && prev && strchr(" \t\r\n[{,:-?", prev))
        in->quote = c;
    return 1;
}

/* Expands ${VAR} and ${VAR:-default} in s[0, len) into ps->exp, recording every edit in
 * ps->segs; $${ is a literal ${; comments are copied as they are. Errors point at the
 * original text. */
static int interpolate_text(struct parse *ps, const char *s, size_t len)
{
    struct interp in = {.ps = ps, .s = s, .len = len};
    if (buf_put(&ps->exp, "", 0)) return SL_ENOMEM;
    for (size_t i = 0; i < len;) {
        int rc = 0;
        size_t next = i;
        if (!in.comment && s[i] == '$' && i + 2 < len && s[i + 1] == '$' && s[i + 2] == '{')
            rc = interp_edit(&in, i, i + 3, "${", 2), next = i + 3;
        else if (!in.comment && s[i] == '$' && i + 1 < len && s[i + 1] == '{')
            rc = expand_var(&in, i, &next);
        if (rc) return rc;
        i = next != i ? next : i + scan_step(&in, i);
    }
    return buf_put(&ps->exp, s + in.done, len - in.done);
}

/* ---- building the tree from libyaml events -------------------------------------------- */

static int yaml_fail(struct parse *ps)
{
    if (ps->failed) return SL_ECONFIG;
    ps->failed = 1;
    yaml_parser_t *yp = &ps->yp;
    if (yp->error == YAML_MEMORY_ERROR) return sl_error_set(ps->err, SL_ENOMEM, "out of memory");
    char where[64] = "";
    int line, col;
    if (yp->context) {
        mark_pos(ps, yp->context_mark, &line, &col);
        snprintf(where, sizeof where, " that starts at %d:%d", line, col);
    }
    mark_pos(ps, yp->problem_mark, &line, &col);
    return sl_error_at(ps->err, SL_ECONFIG, ps->doc->file, line, col, "invalid YAML: %s%s%s%s",
                       yp->problem ? yp->problem : "syntax error", yp->context ? " " : "",
                       yp->context ? yp->context : "", where);
}

static int next_event(struct parse *ps, yaml_event_t *ev)
{
    if (ps->failed) return SL_ECONFIG;
    if (!yaml_parser_parse(&ps->yp, ev)) return yaml_fail(ps);
    return 0;
}

static int fail_at(struct parse *ps, int line, int col, const char *msg, const char *arg)
{
    if (ps->failed) return SL_ECONFIG;
    ps->failed = 1;
    return sl_error_at(ps->err, SL_ECONFIG, ps->doc->file, line, col, msg, arg);
}

static void remember_anchor(struct parse *ps, const yaml_char_t *name, struct sl_config *node)
{
    if (!name || !node) return;
    struct anchor *na = realloc(ps->anchors, (ps->nanchors + 1) * sizeof *na);
    if (!na) return;
    ps->anchors = na;
    na[ps->nanchors].name = sl__strdup((const char *)name);
    na[ps->nanchors].node = node;
    if (na[ps->nanchors].name) ps->nanchors++;
}

static struct sl_config *find_anchor(struct parse *ps, const yaml_char_t *name)
{
    for (size_t i = ps->nanchors; i-- > 0;)
        if (strcmp(ps->anchors[i].name, (const char *)name) == 0) return ps->anchors[i].node;
    return NULL;
}

static struct sl_config *parse_node(struct parse *ps, yaml_event_t *ev, int depth);

static ssize_t map_find(const struct sl_config *m, const char *key)
{
    if (m->index) return (ssize_t)sl__index_find(m->index, key, strlen(key));
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->keys[i]->str, key) == 0) return (ssize_t)i;
    return -1;
}

/* `<<: *base` merges the entries of base that the mapping does not set itself. */
static int merge_into(struct parse *ps, struct sl_config *m, struct sl_config *src)
{
    if (src->kind == SL_CFG_LIST) {
        for (size_t i = 0; i < src->n; i++)
            if (merge_into(ps, m, src->items[i])) return SL_ECONFIG;
        return 0;
    }
    if (src->kind != SL_CFG_MAP)
        return fail_at(ps, src->line, src->col, "'<<' merges a mapping%s", "");
    for (size_t i = 0; i < src->n; i++)
        if (map_find(m, src->keys[i]->str) < 0 && node_append(m, src->keys[i], src->items[i]))
            return SL_ENOMEM;
    return 0;
}

static int parse_entry(struct parse *ps, struct sl_config *m, yaml_event_t *kev, int depth,
                       struct sl_config **merges, size_t *nmerges)
{
    struct sl_config *key = parse_node(ps, kev, depth + 1);
    if (!key) return SL_ECONFIG;
    if (key->kind != SL_CFG_SCALAR)
        return fail_at(ps, key->line, key->col, "a mapping key must be a plain name%s", "");
    yaml_event_t vev;
    if (next_event(ps, &vev)) return SL_ECONFIG;
    struct sl_config *val = parse_node(ps, &vev, depth + 1);
    if (!val) return SL_ECONFIG;
    if (strcmp(key->str, "<<") == 0 && !key->quoted) {
        if (*nmerges < 8) merges[(*nmerges)++] = val;
        return 0;
    }
    ssize_t dup = map_find(m, key->str);
    if (dup >= 0) {
        if (ps->failed) return SL_ECONFIG;
        ps->failed = 1;
        return sl_error_at(ps->err, SL_ECONFIG, ps->doc->file, key->line, key->col,
                           "duplicate key '%s' (first set at line %d)", key->str,
                           m->keys[dup]->line);
    }
    return node_append(m, key, val);
}

static struct sl_config *parse_map(struct parse *ps, struct sl_config *m, int depth)
{
    struct sl_config *merges[8];
    size_t nmerges = 0;
    for (;;) {
        yaml_event_t kev;
        if (next_event(ps, &kev)) return NULL;
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            break;
        }
        if (parse_entry(ps, m, &kev, depth, merges, &nmerges)) return NULL;
    }
    for (size_t i = 0; i < nmerges; i++)
        if (merge_into(ps, m, merges[i])) return NULL;
    return m;
}

static struct sl_config *parse_list(struct parse *ps, struct sl_config *l, int depth)
{
    for (;;) {
        yaml_event_t iev;
        if (next_event(ps, &iev)) return NULL;
        if (iev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&iev);
            return l;
        }
        struct sl_config *item = parse_node(ps, &iev, depth + 1);
        if (!item || node_append(l, NULL, item)) return NULL;
    }
}

static struct sl_config *parse_scalar(struct parse *ps, yaml_event_t *ev, int line, int col)
{
    struct sl_config *c = node_new(ps->doc, SL_CFG_SCALAR, line, col);
    if (!c) return NULL;
    c->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    c->str = sl__strdup((const char *)ev->data.scalar.value); /* ${...} was expanded before */
    if (!c->str) return NULL;
    /* YAML's null spellings are an empty value. */
    if (!c->quoted && (!strcmp(c->str, "~") || !strcmp(c->str, "null"))) c->str[0] = '\0';
    remember_anchor(ps, ev->data.scalar.anchor, c);
    return c;
}

static struct sl_config *parse_node(struct parse *ps, yaml_event_t *ev, int depth)
{
    int line, col;
    mark_pos(ps, ev->start_mark, &line, &col);
    struct sl_config *c = NULL;
    if (depth > MAX_DEPTH) {
        fail_at(ps, line, col, "nesting deeper than %s levels", "64");
        yaml_event_delete(ev);
        return NULL;
    }
    switch (ev->type) {
    case YAML_SCALAR_EVENT: c = parse_scalar(ps, ev, line, col); break;
    case YAML_ALIAS_EVENT:
        c = find_anchor(ps, ev->data.alias.anchor);
        if (!c) fail_at(ps, line, col, "unknown alias '*%s'", (const char *)ev->data.alias.anchor);
        break;
    case YAML_SEQUENCE_START_EVENT:
        /* Anchors are known only once the node is complete: no node can contain itself. */
        c = node_new(ps->doc, SL_CFG_LIST, line, col);
        if (c) c = parse_list(ps, c, depth);
        remember_anchor(ps, ev->data.sequence_start.anchor, c);
        break;
    case YAML_MAPPING_START_EVENT:
        c = node_new(ps->doc, SL_CFG_MAP, line, col);
        if (c) c = parse_map(ps, c, depth);
        remember_anchor(ps, ev->data.mapping_start.anchor, c);
        break;
    default: fail_at(ps, line, col, "unexpected YAML structure%s", ""); break;
    }
    yaml_event_delete(ev);
    if (!c && !ps->failed) {
        ps->failed = 1;
        sl_error_set(ps->err, SL_ENOMEM, "out of memory");
    }
    return c;
}

/* Reads the stream: zero documents (an empty mapping) or exactly one. */
static struct sl_config *parse_stream(struct parse *ps)
{
    yaml_event_t ev;
    if (next_event(ps, &ev)) return NULL; /* stream start */
    yaml_event_delete(&ev);
    if (next_event(ps, &ev)) return NULL;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        return node_new(ps->doc, SL_CFG_MAP, 1, 1);
    }
    yaml_event_delete(&ev); /* document start */
    if (next_event(ps, &ev)) return NULL;
    struct sl_config *root = parse_node(ps, &ev, 0);
    if (!root) return NULL;
    if (next_event(ps, &ev)) return NULL; /* document end */
    yaml_event_delete(&ev);
    if (next_event(ps, &ev)) return NULL;
    bool more = ev.type != YAML_STREAM_END_EVENT;
    int line, col;
    mark_pos(ps, ev.start_mark, &line, &col);
    yaml_event_delete(&ev);
    if (more) {
        fail_at(ps, line, col, "expected one YAML document, found a second%s", "");
        return NULL;
    }
    return root;
}

/* Expands the environment into ps->exp and indexes both texts' lines for mark_pos. */
static int parse_prepare(struct parse *ps, const char *text, size_t len)
{
    ps->orig = text;
    if (lines_build(text, len, &ps->orig_lines)) return SL_ENOMEM;
    int rc = interpolate_text(ps, text, len);
    if (rc) return rc;
    return ps->nsegs ? lines_build(ps->exp.p, ps->exp.n, &ps->exp_lines) : 0;
}

static void parse_cleanup(struct parse *ps)
{
    for (size_t i = 0; i < ps->nanchors; i++) free(ps->anchors[i].name);
    free(ps->anchors);
    free(ps->orig_lines.at);
    free(ps->exp_lines.at);
    free(ps->exp.p);
    free(ps->segs);
}

struct sl_config *sl_config_parse(const char *text, size_t len, const char *file,
                                  struct sl_error *err)
{
    struct parse ps = {.err = err};
    ps.doc = doc_new(file);
    if (!ps.doc) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    if (parse_prepare(&ps, text, len) || !yaml_parser_initialize(&ps.yp)) {
        if (!ps.failed) sl_error_set(err, SL_ENOMEM, "out of memory");
        parse_cleanup(&ps);
        doc_free(ps.doc);
        return NULL;
    }
    yaml_parser_set_input_string(&ps.yp, (const unsigned char *)ps.exp.p, ps.exp.n);
    struct sl_config *root = parse_stream(&ps);
    yaml_parser_delete(&ps.yp);
    parse_cleanup(&ps);
    if (!root) {
        doc_free(ps.doc);
        return NULL;
    }
    ps.doc->root = root;
    return root;
}

static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) free(buf);
            buf = nb;
            cap *= 2;
        }
    }
    if (buf && ferror(f)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

struct sl_config *sl_config_load(const char *path, struct sl_error *err)
{
    bool use_stdin = strcmp(path, "-") == 0;
    FILE *f = use_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        sl_error_at(err, SL_ECONFIG, path, 0, 0, "cannot open: %s", strerror(errno));
        return NULL;
    }
    size_t len = 0;
    char *text = read_all(f, &len);
    int saved = errno;
    if (!use_stdin) fclose(f);
    if (!text) {
        sl_error_at(err, SL_ECONFIG, path, 0, 0, "cannot read: %s", strerror(saved));
        return NULL;
    }
    struct sl_config *c = sl_config_parse(text, len, use_stdin ? "<stdin>" : path, err);
    free(text);
    return c;
}

/* ---- reading ---------------------------------------------------------------------------- */

const struct sl_config *sl_config_ref(const struct sl_config *node)
{
    if (node) atomic_fetch_add(&node->doc->refs, 1);
    return node;
}

void sl_config_free(const struct sl_config *node)
{
    if (node && atomic_fetch_sub(&node->doc->refs, 1) == 1) doc_free(node->doc);
}

enum sl_config_kind sl_config_kind(const struct sl_config *node)
{
    return node->kind;
}

const char *sl_config_str(const struct sl_config *node)
{
    return node && node->kind == SL_CFG_SCALAR ? node->str : NULL;
}

int sl_config_quoted(const struct sl_config *node)
{
    return node && node->quoted;
}

size_t sl_config_len(const struct sl_config *node)
{
    return node && node->kind != SL_CFG_SCALAR ? node->n : 0;
}

const struct sl_config *sl_config_at(const struct sl_config *node, size_t i, const char **key)
{
    if (!node || node->kind == SL_CFG_SCALAR || i >= node->n) return NULL;
    if (key) *key = node->kind == SL_CFG_MAP ? node->keys[i]->str : NULL;
    return node->items[i];
}

const struct sl_config *sl_config_key_at(const struct sl_config *node, size_t i)
{
    if (!node || node->kind != SL_CFG_MAP || i >= node->n) return NULL;
    return node->keys[i];
}

const struct sl_config *sl_config_get(const struct sl_config *node, const char *key)
{
    if (!node || node->kind != SL_CFG_MAP) return NULL;
    ssize_t i = map_find(node, key);
    if (i >= 0) return node->items[i];
    const char *dot = strchr(key, '.');
    if (!dot) return NULL;
    char head[256];
    size_t hl = (size_t)(dot - key);
    if (hl >= sizeof head) return NULL;
    memcpy(head, key, hl);
    head[hl] = '\0';
    return sl_config_get(sl_config_get(node, head), dot + 1);
}

const char *sl_config_file(const struct sl_config *node)
{
    return node->doc->file;
}

int sl_config_line(const struct sl_config *node)
{
    return node->line;
}

int sl_config_col(const struct sl_config *node)
{
    return node->col;
}

int sl_config_error(const struct sl_config *node, struct sl_error *err, int code, const char *fmt,
                    ...)
{
    if (!sl__error_writable(err)) return code;
    if (node) {
        snprintf(err->file, sizeof err->file, "%s", node->doc->file);
        err->line = node->line;
        err->col = node->col;
    }
    va_list ap;
    va_start(ap, fmt);
    sl_error_setv(err, code, fmt, ap);
    va_end(ap);
    return code;
}

/* ---- overrides ----------------------------------------------------------------------------- */

/* The value of an override: YAML flow syntax when it parses ("[a, b]", "{k: v}", "5"),
 * else the text as it is. */
static struct sl_config *override_value(struct doc *d, const char *value)
{
    struct sl_error ignored = {0};
    struct sl_config *parsed = sl_config_parse(value, strlen(value), "--set", &ignored);
    struct sl_config *c;
    if (parsed && parsed->kind != SL_CFG_SCALAR && *value) {
        /* Move the parsed nodes into `d`: they become part of the document. */
        struct doc *pd = parsed->doc;
        for (size_t i = 0; i < pd->n; i++) {
            struct sl_config *n = pd->nodes[i];
            if (d->n == d->cap) {
                size_t cap = d->cap ? d->cap * 2 : 32;
                struct sl_config **nn = realloc(d->nodes, cap * sizeof *nn);
                if (!nn) return NULL;
                d->nodes = nn;
                d->cap = cap;
            }
            n->doc = d;
            n->line = n->col = 0; /* an override has no place in the file */
            d->nodes[d->n++] = n;
        }
        pd->n = 0;
        doc_free(pd);
        return parsed;
    }
    sl_config_free(parsed);
    c = node_new(d, SL_CFG_SCALAR, 0, 0);
    if (c && !(c->str = sl__strdup(value))) return NULL;
    return c;
}

int sl_config_set(struct sl_config *root, const char *path, const char *value, struct sl_error *err)
{
    struct doc *d = root->doc;
    struct sl_config *m = root;
    const char *seg = path;
    for (;;) {
        if (m->kind != SL_CFG_MAP)
            return sl_error_set(err, SL_ECONFIG, "--set %s: '%.*s' is not a mapping", path,
                                (int)(seg - path - 1), path);
        const char *dot = strchr(seg, '.');
        size_t len = dot ? (size_t)(dot - seg) : strlen(seg);
        if (len == 0) return sl_error_set(err, SL_ECONFIG, "--set %s: empty key", path);
        char *key = strndup(seg, len);
        if (!key) return sl_error_set(err, SL_ENOMEM, "out of memory");
        ssize_t i = map_find(m, key);
        struct sl_config *next = i >= 0 ? m->items[i] : NULL;
        if (!next) {
            struct sl_config *k = node_new(d, SL_CFG_SCALAR, 0, 0);
            next = dot ? node_new(d, SL_CFG_MAP, 0, 0) : override_value(d, value);
            if (!k || !next || node_append(m, k, next)) {
                free(key);
                return sl_error_set(err, SL_ENOMEM, "out of memory");
            }
            k->str = key;
        } else {
            free(key);
            if (!dot) {
                struct sl_config *v = override_value(d, value);
                if (!v) return sl_error_set(err, SL_ENOMEM, "out of memory");
                m->items[i] = v;
            }
        }
        if (!dot) return 0;
        m = next;
        seg = dot + 1;
    }
}

/* ---- typed scalars --------------------------------------------------------------------------- */

struct unit {
    const char *name; /* suffix */
    double factor;    /* multiplier */
};

static int parse_with_units(const char *text, const struct unit *units, double *out)
{
    if (!text || !*text) return SL_ECONFIG;
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || errno || v < 0) return SL_ECONFIG;
    while (*end == ' ') end++;
    if (!*end) {
        *out = v * units[0].factor; /* the first unit is the default */
        return 0;
    }
    for (const struct unit *u = units + 1; u->name; u++)
        if (strcmp(end, u->name) == 0) {
            *out = v * u->factor;
            return 0;
        }
    return SL_ECONFIG;
}

int sl_parse_duration(const char *text, long long *ms)
{
    static const struct unit units[] = {
        {"", 1000},     {"ms", 1},       {"s", 1000},   {"m", 60000},  {"min", 60000},
        {"h", 3600000}, {"d", 86400000}, {"us", 0.001}, {"sec", 1000}, {NULL, 0},
    };
    double v;
    if (parse_with_units(text, units, &v) || v > 9.2e15) return SL_ECONFIG;
    *ms = (long long)(v + 0.5);
    return 0;
}

int sl_parse_size(const char *text, unsigned long long *bytes)
{
    static const struct unit units[] = {
        {"", 1},
        {"B", 1},
        {"KiB", 1024.0},
        {"MiB", 1048576.0},
        {"GiB", 1073741824.0},
        {"TiB", 1099511627776.0},
        {"K", 1024.0},
        {"M", 1048576.0},
        {"G", 1073741824.0},
        {"KB", 1e3},
        {"MB", 1e6},
        {"GB", 1e9},
        {"TB", 1e12},
        {"k", 1024.0},
        {"kB", 1e3},
        {NULL, 0},
    };
    double v;
    if (parse_with_units(text, units, &v) || v > 1.8e19) return SL_ECONFIG;
    *bytes = (unsigned long long)(v + 0.5);
    return 0;
}
