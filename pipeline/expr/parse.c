/* The expression parser: precedence climbing over the lexer's tokens into a tree of
 * typed nodes. Every node is type-checked as it is made (what can be known before any
 * event is seen) and folded when its operands are constants. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr/internal.h"

/* ---- the pool ---------------------------------------------------------------------------- */

struct sl__pool_chunk {
    struct sl__pool_chunk *next; /* older chunk */
    size_t size, used;           /* bytes in data / handed out */
    _Alignas(8) char data[];     /* the memory */
};

void *sl__pool_alloc(struct sl__pool *p, size_t size)
{
    size = (size + 7) & ~(size_t)7;
    struct sl__pool_chunk *c = p->head;
    if (!c || c->size - c->used < size) {
        size_t want = c && c->size < 16384 ? c->size * 2 : 512;
        if (want < size) want = size;
        c = malloc(sizeof *c + want);
        if (!c) return NULL;
        c->size = want;
        c->used = 0;
        c->next = p->head;
        p->head = c;
    }
    void *m = c->data + c->used;
    c->used += size;
    memset(m, 0, size);
    return m;
}

void sl__pool_free(struct sl__pool *p)
{
    while (p->head) {
        struct sl__pool_chunk *c = p->head;
        p->head = c->next;
        free(c);
    }
}

/* ---- parser state and errors --------------------------------------------------------------- */

struct parser {
    struct sl__lexer lx; /* tokens */
    struct sl__tok cur;  /* the token being looked at */
    struct sl__tok prev; /* the token consumed last */
    struct sl_expr *x;   /* what is being built */
    int depth;           /* parse nesting */
};

typedef struct sl__node node_t;

static node_t *fail(struct parser *p, size_t pos, const char *msg)
{
    sl__lex_fail(&p->lx, SL_EPARSE, pos, "%s", msg);
    return NULL;
}

static node_t *nomem(struct parser *p)
{
    sl__lex_fail(&p->lx, SL_ENOMEM, p->cur.pos, "out of memory");
    return NULL;
}

/* "expected <what>, found <the current token>". */
static node_t *expected(struct parser *p, const char *what)
{
    char d[64], msg[256];
    snprintf(msg, sizeof msg, "expected %s, found %s", what,
             sl__lex_describe(&p->lx, &p->cur, d, sizeof d));
    return fail(p, p->cur.pos, msg);
}

static bool advance(struct parser *p)
{
    p->prev = p->cur;
    return sl__lex_next(&p->lx, &p->cur) != SL__TK_ERROR;
}

/* The text of token `t` as written, for messages ("'=='"). */
static const char *tok_text(const struct parser *p, const struct sl__tok *t, char *buf, size_t cap)
{
    snprintf(buf, cap, "'%.*s'", (int)(t->end - t->pos > 30 ? 30 : t->end - t->pos),
             p->lx.src + t->pos);
    return buf;
}

static bool enter(struct parser *p)
{
    if (++p->depth <= SL__EXPR_MAX_DEPTH) return true;
    char msg[96];
    snprintf(msg, sizeof msg, "expression nested too deeply (more than %d levels)",
             SL__EXPR_MAX_DEPTH);
    fail(p, p->cur.pos, msg);
    return false;
}

/* ---- static types ------------------------------------------------------------------------ */

static const char *ty_word(unsigned ty)
{
    if (ty == SL__TY_ANY) return "a field value";
    if (ty & SL__TY_STR) return "a string";
    if ((ty & SL__TY_NUM) == SL__TY_NUM) return "a number";
    if (ty & SL__TY_INT) return "an integer";
    if (ty & SL__TY_FLOAT) return "a float";
    if (ty & SL__TY_BOOL) return "a boolean";
    if (ty & SL__TY_JSON) return "an object or array";
    return "null";
}

static uint8_t ty_of(const struct sl_value *v)
{
    switch (v->type) {
    case SL_BOOL: return SL__TY_BOOL;
    case SL_INT: return SL__TY_INT;
    case SL_FLOAT: return SL__TY_FLOAT;
    case SL_STRING: return SL__TY_STR;
    case SL_JSON: return SL__TY_JSON;
    default: return SL__TY_NULL;
    }
}

/* Requires that operand `n` of `op` may be of a kind in `need`. */
static bool need_ty(struct parser *p, const node_t *n, unsigned need, const char *op,
                    const char *what)
{
    if (n->ty & need) return true;
    char msg[160];
    snprintf(msg, sizeof msg, "operator %s needs %s, found %s", op, what, ty_word(n->ty));
    fail(p, n->pos, msg);
    return false;
}

/* ---- nodes ---------------------------------------------------------------------------------- */

static node_t *mk(struct parser *p, int op, size_t pos, unsigned ty)
{
    node_t *n = sl__pool_alloc(&p->x->pool, sizeof *n);
    if (!n) return nomem(p);
    if (op >= SL__OP_MATCH) p->x->scratch = true; /* regexes, string operators, calls */
    n->op = (uint8_t)op;
    n->pos = (uint32_t)pos;
    n->ty = (uint8_t)ty;
    n->depth = 1;
    return n;
}

static node_t *mk_lit(struct parser *p, size_t pos, struct sl_value v)
{
    node_t *n = mk(p, SL__OP_LIT, pos, ty_of(&v));
    if (n) n->lit = v;
    return n;
}

/* Sets the height of `n` from its operands; fails past the nesting limit. */
static bool height(struct parser *p, node_t *n)
{
    unsigned h = 0;
    if (n->a && n->a->depth > h) h = n->a->depth;
    if (n->b && n->b->depth > h) h = n->b->depth;
    for (uint32_t i = 0; i < n->n; i++)
        if (n->kids[i]->depth > h) h = n->kids[i]->depth;
    if (h + 1 > SL__EXPR_MAX_DEPTH) {
        char msg[96];
        snprintf(msg, sizeof msg, "expression nested too deeply (more than %d levels)",
                 SL__EXPR_MAX_DEPTH);
        fail(p, n->pos, msg);
        return false;
    }
    n->depth = (uint16_t)(h + 1);
    return true;
}

static bool is_lit(const node_t *n)
{
    return n && n->op == SL__OP_LIT;
}

/* Replaces `n` by its value when all its operands are constants and it is pure, unless a
 * limit decided the value (then each evaluation meets it, and sl_expr_check says so). */
static node_t *fold(struct parser *p, node_t *n)
{
    if (!n) return NULL;
    if (n->op == SL__OP_FIELD || n->op == SL__OP_EXISTS || n->op == SL__OP_LIT) return n;
    if (n->op == SL__OP_CALL && !n->fn->pure) return n;
    if ((n->a && !is_lit(n->a)) || (n->b && !is_lit(n->b))) return n;
    for (uint32_t i = 0; i < n->n; i++)
        if (!is_lit(n->kids[i])) return n;
    struct sl__ctx c = {.pool = &p->x->pool, .x = p->x};
    struct sl_value v;
    sl__eval(n, &c, &v);
    if (c.nomem) return nomem(p);
    if (c.limit) return n;
    n->op = SL__OP_LIT;
    n->ty = ty_of(&v);
    n->lit = v;
    n->a = n->b = NULL;
    n->kids = NULL;
    n->n = 0;
    n->depth = 1;
    return n;
}

static node_t *finish(struct parser *p, node_t *n)
{
    if (!n || !height(p, n)) return NULL;
    return fold(p, n);
}

/* ---- the grammar, from the tightest binding up ---------------------------------------------- */

static node_t *parse_expr(struct parser *p);
static node_t *parse_call(struct parser *p, const struct sl__tok *name);

static node_t *parse_word(struct parser *p, const struct sl__tok *t)
{
    struct sl_value v;
    if (t->slen == 4 && !memcmp(t->s, "true", 4))
        v = sl_value_bool(true);
    else if (t->slen == 5 && !memcmp(t->s, "false", 5))
        v = sl_value_bool(false);
    else if (t->slen == 4 && !memcmp(t->s, "null", 4))
        v = sl_value_null();
    else
        return NULL;
    return mk_lit(p, t->pos, v);
}

static node_t *parse_field(struct parser *p, const struct sl__tok *t)
{
    node_t *n = mk(p, SL__OP_FIELD, t->pos, SL__TY_ANY);
    if (!n) return NULL;
    n->path = t->s;
    n->path_len = (uint32_t)t->slen;
    n->exact = t->exact;
    return n;
}

static node_t *parse_paren(struct parser *p)
{
    struct sl__tok open = p->cur;
    if (!advance(p)) return NULL;
    node_t *e = parse_expr(p);
    if (!e) return NULL;
    if (p->cur.k != SL__TK_RPAREN) {
        int line, col;
        char what[96];
        sl__lex_position(p->lx.src, open.pos, &line, &col);
        if (line == 1)
            snprintf(what, sizeof what, "')' to close the '(' at column %d", col);
        else
            snprintf(what, sizeof what, "')' to close the '(' at line %d, column %d", line, col);
        return expected(p, what);
    }
    return advance(p) ? e : NULL;
}

static node_t *parse_primary(struct parser *p)
{
    struct sl__tok t = p->cur;
    switch (t.k) {
    case SL__TK_INT: return advance(p) ? mk_lit(p, t.pos, sl_value_int(t.i)) : NULL;
    case SL__TK_FLOAT: return advance(p) ? mk_lit(p, t.pos, sl_value_float(t.f)) : NULL;
    case SL__TK_STR: return advance(p) ? mk_lit(p, t.pos, sl_value_string(t.s, t.slen)) : NULL;
    case SL__TK_LPAREN: return parse_paren(p);
    case SL__TK_PATH: {
        if (!advance(p)) return NULL;
        if (t.word && p->cur.k == SL__TK_LPAREN) return parse_call(p, &t);
        node_t *w = t.word ? parse_word(p, &t) : NULL;
        return w ? w : parse_field(p, &t);
    }
    case SL__TK_ERROR: return NULL;
    default: break;
    }
    if (p->prev.k == SL__TK_END) /* nothing consumed yet */
        return expected(p, "an expression");
    char what[96], d[48];
    snprintf(what, sizeof what, "an operand after %s", tok_text(p, &p->prev, d, sizeof d));
    return expected(p, what);
}

static node_t *parse_unary(struct parser *p)
{
    int k = p->cur.k;
    if (k != SL__TK_NOT && k != SL__TK_MINUS) return parse_primary(p);
    size_t pos = p->cur.pos;
    if (!enter(p) || !advance(p)) return NULL;
    node_t *a = parse_unary(p);
    p->depth--;
    if (!a) return NULL;
    bool neg = k == SL__TK_MINUS;
    if (neg ? !need_ty(p, a, SL__TY_NUM, "'-'", "a number")
            : !need_ty(p, a, SL__TY_BOOL, "'!'", "a boolean"))
        return NULL;
    node_t *n = mk(p, neg ? SL__OP_NEG : SL__OP_NOT, pos,
                   neg ? (a->ty & SL__TY_NUM) | SL__TY_NULL : SL__TY_BOOL);
    if (!n) return NULL;
    n->a = a;
    return finish(p, n);
}

static int arith_op(int k)
{
    switch (k) {
    case SL__TK_PLUS: return SL__OP_ADD;
    case SL__TK_MINUS: return SL__OP_SUB;
    case SL__TK_STAR: return SL__OP_MUL;
    case SL__TK_SLASH: return SL__OP_DIV;
    case SL__TK_PERCENT: return SL__OP_MOD;
    default: return -1;
    }
}

static node_t *mk_arith(struct parser *p, const struct sl__tok *t, node_t *a, node_t *b)
{
    char op[48];
    tok_text(p, t, op, sizeof op);
    if (!need_ty(p, a, SL__TY_NUM, op, "numbers") || !need_ty(p, b, SL__TY_NUM, op, "numbers"))
        return NULL;
    int o = arith_op(t->k);
    if ((o == SL__OP_DIV || o == SL__OP_MOD) && is_lit(b) &&
        ((b->lit.type == SL_INT && b->lit.i == 0) || (b->lit.type == SL_FLOAT && b->lit.f == 0)))
        return fail(p, b->pos, "division by zero");
    unsigned ty = SL__TY_NULL;
    if (o == SL__OP_DIV || ((a->ty | b->ty) & SL__TY_FLOAT)) ty |= SL__TY_FLOAT;
    if (o != SL__OP_DIV && (a->ty & SL__TY_INT) && (b->ty & SL__TY_INT)) ty |= SL__TY_INT;
    node_t *n = mk(p, o, t->pos, ty);
    if (!n) return NULL;
    n->a = a;
    n->b = b;
    return finish(p, n);
}

/* Left-associative levels: `mul` binds * / %, `add` binds + -. */
static node_t *parse_binary(struct parser *p, bool add)
{
    node_t *a = add ? parse_binary(p, false) : parse_unary(p);
    while (a) {
        int k = p->cur.k;
        bool mine = add ? (k == SL__TK_PLUS || k == SL__TK_MINUS)
                        : (k == SL__TK_STAR || k == SL__TK_SLASH || k == SL__TK_PERCENT);
        if (!mine) break;
        struct sl__tok t = p->cur;
        if (!advance(p)) return NULL;
        node_t *b = add ? parse_binary(p, false) : parse_unary(p);
        if (!b) return NULL;
        a = mk_arith(p, &t, a, b);
    }
    return a;
}

/* ---- comparisons ------------------------------------------------------------------------ */

static bool word_is(const struct sl__tok *t, const char *w)
{
    return t->k == SL__TK_PATH && t->word && t->slen == strlen(w) && !memcmp(t->s, w, t->slen);
}

static int cmp_op(const struct sl__tok *t)
{
    switch (t->k) {
    case SL__TK_EQ: return SL__OP_EQ;
    case SL__TK_NE: return SL__OP_NE;
    case SL__TK_LT: return SL__OP_LT;
    case SL__TK_LE: return SL__OP_LE;
    case SL__TK_GT: return SL__OP_GT;
    case SL__TK_GE: return SL__OP_GE;
    case SL__TK_MATCH: return SL__OP_MATCH;
    case SL__TK_NMATCH: return SL__OP_NMATCH;
    default: break;
    }
    if (word_is(t, "in")) return SL__OP_IN;
    if (word_is(t, "contains")) return SL__OP_CONTAINS;
    if (word_is(t, "starts_with")) return SL__OP_STARTS;
    if (word_is(t, "ends_with")) return SL__OP_ENDS;
    return -1;
}

/* Numbers compare with numbers whatever their width. */
static unsigned kinds(unsigned ty)
{
    return (ty & SL__TY_NUM) ? (ty | SL__TY_NUM) : ty;
}

/* Builds `a op b` for the comparison and string operators (op from cmp_op). */
static node_t *mk_compare(struct parser *p, int op, size_t pos, const char *opname, node_t *a,
                          node_t *b)
{
    char msg[160];
    if (op == SL__OP_EQ || op == SL__OP_NE) {
        if (!(kinds(a->ty) & kinds(b->ty))) {
            snprintf(msg, sizeof msg, "%s between %s and %s is always %s", opname, ty_word(a->ty),
                     ty_word(b->ty), op == SL__OP_EQ ? "false" : "true");
            return fail(p, pos, msg);
        }
    } else if (op >= SL__OP_LT && op <= SL__OP_GE) {
        unsigned ord = SL__TY_NUM | SL__TY_STR;
        if (!need_ty(p, a, ord, opname, "a number or a string") ||
            !need_ty(p, b, ord, opname, "a number or a string"))
            return NULL;
        if (!(kinds(a->ty) & kinds(b->ty) & ord)) {
            snprintf(msg, sizeof msg, "%s between %s and %s is always false", opname,
                     ty_word(a->ty), ty_word(b->ty));
            return fail(p, pos, msg);
        }
    } else if (!need_ty(p, a, SL__TY_TEXT, opname, "a string") ||
               !need_ty(p, b, SL__TY_TEXT, opname, "a string")) {
        return NULL;
    }
    node_t *n = mk(p, op, pos, SL__TY_BOOL);
    if (!n) return NULL;
    n->a = a;
    n->b = b;
    /* The hot path: a field against a plain string constant, either way round. */
    if ((op == SL__OP_EQ || op == SL__OP_NE) && is_lit(a) && b->op == SL__OP_FIELD)
        n->a = b, n->b = a;
    if ((op == SL__OP_EQ || op == SL__OP_NE) && n->a->op == SL__OP_FIELD && is_lit(n->b) &&
        n->b->lit.type == SL_STRING) {
        n->op = op == SL__OP_EQ ? SL__OP_FIELD_EQ : SL__OP_FIELD_NE;
        n->lit = n->b->lit;
        n->b = NULL;
    }
    return finish(p, n);
}

static node_t *parse_in_list(struct parser *p, node_t *a, size_t pos)
{
    if (p->cur.k != SL__TK_LBRACK) return expected(p, "a list '[...]' after 'in'");
    node_t *items[16];
    node_t **kids = items;
    uint32_t n = 0, cap = 16;
    node_t *res = NULL;
    if (!advance(p)) return NULL;
    while (p->cur.k != SL__TK_RBRACK) {
        node_t *it = parse_binary(p, true);
        if (!it) goto out;
        if (!is_lit(it)) {
            fail(p, it->pos,
                 "expected a constant in the list after 'in', found an expression "
                 "that depends on the event");
            goto out;
        }
        if (n == cap) {
            node_t **nk = sl__pool_alloc(&p->x->pool, 2 * cap * sizeof *nk);
            if (!nk) goto out_nomem;
            memcpy(nk, kids, n * sizeof *nk);
            kids = nk, cap *= 2;
        }
        kids[n++] = it;
        if (p->cur.k == SL__TK_COMMA) {
            if (!advance(p)) goto out;
        } else if (p->cur.k != SL__TK_RBRACK) {
            expected(p, "',' or ']' in the list after 'in'");
            goto out;
        }
    }
    if (!advance(p)) goto out;
    res = mk(p, SL__OP_IN, pos, SL__TY_BOOL);
    if (!res) goto out;
    res->a = a;
    res->n = n;
    res->kids = sl__pool_alloc(&p->x->pool, (n ? n : 1) * sizeof *kids);
    if (!res->kids) goto out_nomem;
    memcpy(res->kids, kids, n * sizeof *kids);
    return finish(p, res);
out_nomem:
    nomem(p);
out:
    return NULL;
}

static node_t *mk_regex(struct parser *p, int op, size_t pos, node_t *a, const struct sl__tok *t);

static node_t *parse_compare(struct parser *p)
{
    node_t *a = parse_binary(p, true);
    if (!a) return NULL;
    int op = cmp_op(&p->cur);
    if (op < 0) return a;
    struct sl__tok t = p->cur;
    char name[48];
    tok_text(p, &t, name, sizeof name);
    node_t *n;
    if (op == SL__OP_MATCH || op == SL__OP_NMATCH) {
        p->prev = p->cur;
        if (sl__lex_regex(&p->lx, &p->cur) == SL__TK_ERROR) return NULL;
        struct sl__tok re = p->cur;
        if (re.k != SL__TK_REGEX && re.k != SL__TK_STR) {
            char what[80];
            snprintf(what, sizeof what, "a regex /.../ or a string after %s", name);
            return expected(p, what);
        }
        n = advance(p) ? mk_regex(p, op, t.pos, a, &re) : NULL;
    } else if (op == SL__OP_IN) {
        n = advance(p) ? parse_in_list(p, a, t.pos) : NULL;
    } else {
        node_t *b = advance(p) ? parse_binary(p, true) : NULL;
        n = b ? mk_compare(p, op, t.pos, name, a, b) : NULL;
    }
    if (n && cmp_op(&p->cur) >= 0)
        return expected(p, "'&&', '||' or ')' after a comparison (comparisons do not chain)");
    return n;
}

/* `&&` and `||` chains become one node with n operands: no depth for long chains. */
static node_t *parse_logic(struct parser *p, bool or)
{
    node_t *a = or ? parse_logic(p, false) : parse_compare(p);
    int tk = or ? SL__TK_OR : SL__TK_AND;
    if (!a || p->cur.k != tk) return a;
    struct sl__tok t = p->cur;
    const char *op = or ? "'||'" : "'&&'";
    node_t *first[16], **kids = first;
    uint32_t n = 0, cap = 16;
    kids[n++] = a;
    while (p->cur.k == tk) {
        if (!advance(p)) return NULL;
        node_t *b = or ? parse_logic(p, false) : parse_compare(p);
        if (!b) return NULL;
        if (n == cap) {
            node_t **nk = sl__pool_alloc(&p->x->pool, 2 * cap * sizeof *nk);
            if (!nk) return nomem(p);
            memcpy(nk, kids, n * sizeof *nk);
            kids = nk, cap *= 2;
        }
        kids[n++] = b;
    }
    for (uint32_t i = 0; i < n; i++)
        if (!need_ty(p, kids[i], SL__TY_BOOL, op, "booleans")) return NULL;
    node_t *res = mk(p, or ? SL__OP_OR : SL__OP_AND, t.pos, SL__TY_BOOL);
    if (!res) return NULL;
    res->kids = sl__pool_alloc(&p->x->pool, n * sizeof *kids);
    if (!res->kids) return nomem(p);
    memcpy(res->kids, kids, n * sizeof *kids);
    res->n = n;
    return finish(p, res);
}

static node_t *parse_expr(struct parser *p)
{
    if (!enter(p)) return NULL;
    node_t *n = parse_logic(p, true);
    p->depth--;
    return n;
}

/* ---- regexes and calls -------------------------------------------------------------------- */

static node_t *mk_regex(struct parser *p, int op, size_t pos, node_t *a, const struct sl__tok *t)
{
    char name[8];
    snprintf(name, sizeof name, "'%s'", op == SL__OP_MATCH ? "=~" : "!~");
    if (!need_ty(p, a, SL__TY_TEXT, name, "a string")) return NULL;
    struct sl_expr *x = p->x;
    struct sl__regex *r = sl__pool_alloc(&x->pool, sizeof *r);
    if (!r) return nomem(p);
    int ecode;
    PCRE2_SIZE eoff;
    r->code = pcre2_compile((PCRE2_SPTR)t->s, t->slen, t->flags, &ecode, &eoff, NULL);
    if (!r->code) {
        PCRE2_UCHAR text[160];
        char msg[256];
        pcre2_get_error_message(ecode, text, sizeof text);
        snprintf(msg, sizeof msg, "invalid regex: %s", (const char *)text);
        size_t at = t->pos + (t->k == SL__TK_REGEX || t->k == SL__TK_STR ? 1 : 0);
        return fail(p, at + (eoff < t->end - t->pos ? eoff : 0), msg);
    }
    r->next = x->regexes;
    x->regexes = r;
    pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE); /* without JIT, the interpreter runs */
    if (!x->mctx) {
        x->mctx = pcre2_match_context_create(NULL);
        if (!x->mctx) return nomem(p);
        pcre2_set_match_limit(x->mctx, 1000000); /* a runaway pattern fails, never hangs */
    }
    node_t *n = mk(p, op, pos, SL__TY_BOOL);
    if (!n) return NULL;
    n->a = a;
    n->re = r->code;
    return finish(p, n);
}

/* exists(path): the argument is a field path, not a value. */
static node_t *parse_exists(struct parser *p, const struct sl__tok *name)
{
    struct sl__tok t = p->cur;
    if (t.k != SL__TK_PATH || (t.word && parse_word(p, &t)))
        return expected(p, "a field path in exists()");
    if (!advance(p)) return NULL;
    if (p->cur.k != SL__TK_RPAREN) return expected(p, "')' after the field path in exists()");
    if (!advance(p)) return NULL;
    node_t *n = mk(p, SL__OP_EXISTS, name->pos, SL__TY_BOOL);
    if (!n) return NULL;
    n->path = t.s;
    n->path_len = (uint32_t)t.slen;
    n->exact = t.exact;
    return n;
}

/* Reads "(arg, ...)" after a function name into args; returns the count or -1. */
static int parse_args(struct parser *p, const struct sl__tok *name, node_t **args)
{
    int n = 0;
    char what[96];
    snprintf(what, sizeof what, "',' or ')' in the call of '%.*s'",
             (int)(name->slen < 40 ? name->slen : 40), name->s);
    while (p->cur.k != SL__TK_RPAREN) {
        if (n == SL__EXPR_MAX_ARGS) {
            snprintf(what, sizeof what, "function '%.*s' takes at most %d arguments",
                     (int)(name->slen < 40 ? name->slen : 40), name->s, SL__EXPR_MAX_ARGS);
            fail(p, p->cur.pos, what);
            return -1;
        }
        args[n] = parse_expr(p);
        if (!args[n++]) return -1;
        if (p->cur.k == SL__TK_COMMA) {
            if (!advance(p)) return -1;
        } else if (p->cur.k != SL__TK_RPAREN) {
            expected(p, what);
            return -1;
        }
    }
    return advance(p) ? n : -1;
}

static node_t *arity_error(struct parser *p, const struct sl__tok *name, unsigned min, unsigned max,
                           int n)
{
    char msg[160], range[48];
    if (min == max)
        snprintf(range, sizeof range, "%u argument%s", min, min == 1 ? "" : "s");
    else if (max == SL__EXPR_MAX_ARGS)
        snprintf(range, sizeof range, "at least %u argument%s", min, min == 1 ? "" : "s");
    else
        snprintf(range, sizeof range, "%u to %u arguments", min, max);
    snprintf(msg, sizeof msg, "function '%.*s' takes %s, found %d", (int)name->slen, name->s, range,
             n);
    return fail(p, name->pos, msg);
}

static const char *const operator_functions[] = {"contains", "starts_with", "ends_with"};

static node_t *unknown_function(struct parser *p, const struct sl__tok *name)
{
    char msg[160], nm[64];
    snprintf(nm, sizeof nm, "%.*s", (int)(name->slen < 40 ? name->slen : 40), name->s);
    const char *near = sl__func_nearest(nm);
    if (near)
        snprintf(msg, sizeof msg, "unknown function '%s' (did you mean '%s'?)", nm, near);
    else
        snprintf(msg, sizeof msg, "unknown function '%s'", nm);
    return fail(p, name->pos, msg);
}

static node_t *parse_call(struct parser *p, const struct sl__tok *name)
{
    if (!enter(p) || !advance(p)) return NULL; /* the '(' */
    node_t *res = NULL;
    if (word_is(name, "exists")) {
        res = parse_exists(p, name);
        goto out;
    }
    const struct sl__func *fn = sl__func_find(name->s, name->slen);
    int opf = -1;
    for (int i = 0; i < 3; i++)
        if (word_is(name, operator_functions[i])) opf = i;
    if (!fn && opf < 0) {
        res = unknown_function(p, name);
        goto out;
    }
    node_t *args[SL__EXPR_MAX_ARGS];
    int n = parse_args(p, name, args);
    if (n < 0) goto out;
    if (opf >= 0) {
        char op[32];
        snprintf(op, sizeof op, "'%s'", operator_functions[opf]);
        res = n == 2 ? mk_compare(p, SL__OP_CONTAINS + opf, name->pos, op, args[0], args[1])
                     : arity_error(p, name, 2, 2, n);
        goto out;
    }
    if (n < fn->min || n > fn->max) {
        res = arity_error(p, name, fn->min, fn->max, n);
        goto out;
    }
    for (int i = 0; i < n && i < 3; i++) {
        if (!fn->need[i] || (args[i]->ty & fn->need[i])) continue;
        char msg[160];
        snprintf(msg, sizeof msg, "argument %d of '%s' must be %s, found %s", i + 1, fn->name,
                 fn->need[i] == SL__TY_NUM ? "a number" : "a value with a text",
                 ty_word(args[i]->ty));
        res = fail(p, args[i]->pos, msg);
        goto out;
    }
    res = mk(p, SL__OP_CALL, name->pos, fn->ret);
    if (!res) goto out;
    res->fn = fn;
    res->n = (uint32_t)n;
    res->kids = sl__pool_alloc(&p->x->pool, (n ? (size_t)n : 1) * sizeof *args);
    if (!res->kids) {
        res = nomem(p);
        goto out;
    }
    memcpy(res->kids, args, (size_t)n * sizeof *args);
    res = finish(p, res);
out:
    p->depth--;
    return res;
}

/* ---- compiling ------------------------------------------------------------------------------ */

void sl_expr_free(struct sl_expr *e)
{
    if (!e) return;
    for (struct sl__regex *r = e->regexes; r; r = r->next) pcre2_code_free(r->code);
    pcre2_match_context_free(e->mctx);
    sl__pool_free(&e->pool);
    free(e);
}

static node_t *parse_top(struct parser *p, bool until_close, size_t start)
{
    if (!advance(p)) return NULL;
    p->prev.k = SL__TK_END; /* nothing consumed: "expected an expression" */
    node_t *root = parse_expr(p);
    if (!root) return NULL;
    int want = until_close ? SL__TK_CLOSE : SL__TK_END;
    if (p->cur.k == want) return root;
    if (until_close && p->cur.k == SL__TK_END) {
        int line, col;
        char what[80];
        sl__lex_position(p->lx.src, start - 2, &line, &col);
        snprintf(what, sizeof what, "'}}' to close the '{{' at line %d, column %d", line, col);
        return expected(p, what);
    }
    if (word_is(&p->cur, "and") || word_is(&p->cur, "or") || word_is(&p->cur, "not")) {
        char msg[160], d[48];
        snprintf(msg, sizeof msg, "expected an operator, found %s (write &&, || or !)",
                 tok_text(p, &p->cur, d, sizeof d));
        return fail(p, p->cur.pos, msg);
    }
    return expected(p, until_close ? "an operator or '}}'" : "an operator or end of expression");
}

struct sl_expr *sl__expr_compile_at(const char *src, size_t len, size_t start, bool until_close,
                                    size_t *end, struct sl_error *err)
{
    struct sl_expr *x = calloc(1, sizeof *x);
    if (!x) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    if (len > UINT32_MAX) len = UINT32_MAX; /* node positions are 32-bit */
    struct parser p = {.x = x};
    p.lx = (struct sl__lexer){.src = src ? src : "",
                              .len = src ? len : 0,
                              .pos = start,
                              .until_close = until_close,
                              .pool = &x->pool,
                              .err = err};
    x->root = parse_top(&p, until_close, start);
    if (!x->root) {
        if (!p.lx.failed) sl__lex_fail(&p.lx, SL_EPARSE, p.cur.pos, "invalid expression");
        sl_expr_free(x);
        return NULL;
    }
    if (end) *end = p.cur.pos;
    return x;
}

struct sl_expr *sl_expr_compile(const char *src, size_t len, struct sl_error *err)
{
    return sl__expr_compile_at(src, len, 0, false, NULL, err);
}

bool sl__expr_constant(const struct sl_expr *e, struct sl_value *v)
{
    if (e->root->op != SL__OP_LIT) return false;
    if (v) *v = e->root->lit;
    return true;
}

/* ---- the fields an expression reads ------------------------------------------------------ */

static int node_fields(const struct sl__node *n, int (*fn)(void *, const char *, size_t), void *arg)
{
    if (!n) return 0;
    int rc = 0;
    if (n->op == SL__OP_FIELD && n->path && (rc = fn(arg, n->path, n->path_len)) != 0) return rc;
    if ((rc = node_fields(n->a, fn, arg)) != 0 || (rc = node_fields(n->b, fn, arg)) != 0) return rc;
    for (uint32_t i = 0; i < n->n && n->op != SL__OP_IN; i++)
        if ((rc = node_fields(n->kids[i], fn, arg)) != 0) return rc;
    return 0;
}

int sl_expr_fields(const struct sl_expr *e, int (*fn)(void *arg, const char *path, size_t len),
                   void *arg)
{
    return e ? node_fields(e->root, fn, arg) : 0;
}
