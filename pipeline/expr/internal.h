/* Expressions and templates, private to pipeline/expr/ (and unit tests): the node tree,
 * the memory pool that holds it, and the evaluation context. Depends on base/ and the
 * public event API only: an expression reads events as any stage does. */
#ifndef SLUICE_PIPELINE_EXPR_INTERNAL_H
#define SLUICE_PIPELINE_EXPR_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/event.h>
#include <sluice/expr.h>

#include "base/internal.h"

#define SL__EXPR_MAX_DEPTH 128  /* nesting limit, parse and tree alike */
#define SL__EXPR_SCRATCH   8192 /* on-stack bytes per evaluation */
#define SL__EXPR_MAX_ARGS  16   /* arguments of one function call */

/* Static types: the set of kinds a node may evaluate to. */
enum {
    SL__TY_NULL = 1u << 0,
    SL__TY_BOOL = 1u << 1,
    SL__TY_INT = 1u << 2,
    SL__TY_FLOAT = 1u << 3,
    SL__TY_STR = 1u << 4,
    SL__TY_JSON = 1u << 5,
    SL__TY_NUM = SL__TY_INT | SL__TY_FLOAT,
    SL__TY_TEXT = SL__TY_BOOL | SL__TY_NUM | SL__TY_STR | SL__TY_JSON, /* has a text */
    SL__TY_ANY = 0x3f,
};

enum sl__op {
    SL__OP_LIT,      /* lit */
    SL__OP_FIELD,    /* path */
    SL__OP_EXISTS,   /* path */
    SL__OP_FIELD_EQ, /* a (a field) == lit (a plain string): the hot path */
    SL__OP_FIELD_NE, /* a (a field) != lit (a plain string) */
    SL__OP_NOT,      /* !a */
    SL__OP_NEG,      /* -a */
    SL__OP_AND,      /* kids[0] && ... && kids[n-1] */
    SL__OP_OR,       /* kids[0] || ... */
    SL__OP_EQ,       /* a == b */
    SL__OP_NE,       /* a != b */
    SL__OP_LT,       /* a < b */
    SL__OP_LE,       /* a <= b */
    SL__OP_GT,       /* a > b */
    SL__OP_GE,       /* a >= b */
    SL__OP_ADD,      /* a + b */
    SL__OP_SUB,      /* a - b */
    SL__OP_MUL,      /* a * b */
    SL__OP_DIV,      /* a / b */
    SL__OP_MOD,      /* a % b */
    SL__OP_IN,       /* a in [kids: literals] */
    SL__OP_MATCH,    /* a =~ re */
    SL__OP_NMATCH,   /* a !~ re */
    SL__OP_CONTAINS, /* a contains b */
    SL__OP_STARTS,   /* a starts_with b */
    SL__OP_ENDS,     /* a ends_with b */
    SL__OP_CALL,     /* fn(kids) */
};

struct sl__ctx;

/* A built-in function. */
struct sl__func {
    const char *name; /* as written */
    uint8_t min, max; /* arity */
    uint8_t ret;      /* static result type (SL__TY_*) */
    bool pure;        /* same arguments, same result: may be folded */
    uint8_t need[3];  /* static types the first three arguments accept (0: any) */
    /* Computes the result from the evaluated arguments `args` (n of them). */
    void (*fn)(struct sl__ctx *c, struct sl_value *args, unsigned n, struct sl_value *out);
};

struct sl__node {
    uint8_t op;                /* enum sl__op */
    uint8_t ty;                /* SL__TY_* the node may produce */
    uint16_t depth;            /* height of the subtree */
    uint32_t pos;              /* byte offset in the source, for errors */
    struct sl__node *a, *b;    /* operands */
    struct sl__node **kids;    /* AND/OR operands, CALL arguments, IN items */
    uint32_t n;                /* entries in kids */
    bool exact;                /* FIELD/EXISTS: a top-level name looked up as is */
    const struct sl__func *fn; /* CALL */
    pcre2_code *re;            /* MATCH/NMATCH */
    const char *path;          /* FIELD/EXISTS: canonical path for sl_event_get */
    uint32_t path_len;         /* bytes of path */
    uint32_t hint;             /* FIELD/EXISTS: the field index it was found at last
                                  (sl__event_get_hinted; relaxed atomics) */
    struct sl_value lit;       /* LIT, and the string of FIELD_EQ/FIELD_NE */
};

/* Bump memory for one expression: nodes, paths, constants; freed at once. */
struct sl__pool_chunk;
struct sl__pool {
    struct sl__pool_chunk *head; /* newest chunk */
};
void *sl__pool_alloc(struct sl__pool *p, size_t size); /* zeroed, 8-aligned; NULL: no memory */
void sl__pool_free(struct sl__pool *p);

struct sl__regex {
    pcre2_code *code;       /* compiled, JIT when possible */
    struct sl__regex *next; /* next regex of the expression */
};

struct sl_expr {
    struct sl__pool pool;      /* every node and constant */
    struct sl__node *root;     /* the tree */
    struct sl__regex *regexes; /* to free */
    pcre2_match_context *mctx; /* match limits, shared read-only by all threads */
    bool scratch;              /* some node may build a string (calls, string operators) */
};

/* Where an evaluation reads fields from and puts strings it builds. */
struct sl__ctx {
    const struct sl_event *ev; /* fields; NULL when folding constants */
    struct sl_event *wev;      /* may allocate in its batch arena when scratch is full */
    struct sl__pool *pool;     /* folding: strings go to the expression's pool */
    const struct sl_expr *x;   /* the expression (match context) */
    char *buf;                 /* scratch */
    size_t cap, used;          /* scratch size / bytes handed out */
    bool nomem;                /* an arena allocation failed */
    const char *limit;         /* why a value became null for want of room or time (the
                                  scratch is full, a regex hit its match limit), or NULL */
};

/* Memory for a string built during evaluation, or NULL (the value then becomes null). */
char *sl__ctx_alloc(struct sl__ctx *c, size_t size);

/* Decodes the escaped string `v` into `out` (room for v->len bytes: decoding never
 * grows) the way the text of a value is decoded. Returns the decoded length. */
size_t sl__text_decode(const struct sl_value *v, char *out);

/* The text of `v` (see expr.h), or false for null. `*s` may point into scratch. */
bool sl__text_of(struct sl__ctx *c, const struct sl_value *v, const char **s, size_t *len);

/* Evaluates `n` into `*out`. */
void sl__eval(const struct sl__node *n, struct sl__ctx *c, struct sl_value *out);

/* Compiles the expression starting at `start` in `src` (positions count from src). With
 * `until_close`, stops at "}}" and stores its offset in *end (templates). */
struct sl_expr *sl__expr_compile_at(const char *src, size_t len, size_t start, bool until_close,
                                    size_t *end, struct sl_error *err);

/* True when the expression is a constant (its root is a literal); *v receives it. */
bool sl__expr_constant(const struct sl_expr *e, struct sl_value *v);

/* The built-in function called `name` (len bytes), or NULL. */
const struct sl__func *sl__func_find(const char *name, size_t len);
/* Suggests a known function name close to `name` (NUL-terminated), or NULL. */
const char *sl__func_nearest(const char *name);
/* The regex match on text, with the thread's match block. */
bool sl__regex_match(struct sl__ctx *c, const pcre2_code *re, const char *s, size_t len);

/* ---- lexer (expr_lex.c) ------------------------------------------------------------ */

enum sl__tk {
    SL__TK_END,     /* end of the text */
    SL__TK_CLOSE,   /* "}}" (templates only) */
    SL__TK_INT,     /* i */
    SL__TK_FLOAT,   /* f */
    SL__TK_STR,     /* s/slen: the decoded string */
    SL__TK_PATH,    /* s/slen: canonical field path */
    SL__TK_REGEX,   /* s/slen: the pattern; flags: PCRE2 options */
    SL__TK_LPAREN,  /* ( */
    SL__TK_RPAREN,  /* ) */
    SL__TK_LBRACK,  /* [ */
    SL__TK_RBRACK,  /* ] */
    SL__TK_COMMA,   /* , */
    SL__TK_EQ,      /* == */
    SL__TK_NE,      /* != */
    SL__TK_LT,      /* < */
    SL__TK_LE,      /* <= */
    SL__TK_GT,      /* > */
    SL__TK_GE,      /* >= */
    SL__TK_AND,     /* && */
    SL__TK_OR,      /* || */
    SL__TK_NOT,     /* ! */
    SL__TK_MATCH,   /* =~ */
    SL__TK_NMATCH,  /* !~ */
    SL__TK_PLUS,    /* + */
    SL__TK_MINUS,   /* - */
    SL__TK_STAR,    /* * */
    SL__TK_SLASH,   /* / */
    SL__TK_PERCENT, /* % */
    SL__TK_ERROR,   /* the lexer failed; the error is recorded */
};

struct sl__tok {
    int k;           /* enum sl__tk */
    size_t pos, end; /* the token's bytes in the source */
    int64_t i;       /* INT */
    double f;        /* FLOAT */
    const char *s;   /* STR, PATH, REGEX text (in the expression's pool) */
    size_t slen;     /* bytes of s */
    uint32_t flags;  /* REGEX: PCRE2 compile options */
    bool word;       /* PATH: one bare name, no dot (a function name or keyword) */
    bool exact;      /* PATH: one quoted name containing '.' or '[' */
};

struct sl__lexer {
    const char *src;       /* the whole text */
    size_t len, pos;       /* its length; where the next token starts */
    bool until_close;      /* "}}" is a token (templates) */
    struct sl__pool *pool; /* where strings and paths go */
    struct sl_error *err;  /* the first error (may be NULL) */
    bool failed;           /* an error was recorded */
};

/* Reads the next token into *t; returns its kind (SL__TK_ERROR after an error). */
int sl__lex_next(struct sl__lexer *lx, struct sl__tok *t);
/* Reads a regex literal (/.../flags) or a string at the current position. */
int sl__lex_regex(struct sl__lexer *lx, struct sl__tok *t);
/* Records an error at byte `pos` (line:col computed; only the first error is kept).
 * Returns SL__TK_ERROR. */
int sl__lex_fail(struct sl__lexer *lx, int code, size_t pos, const char *fmt, ...) SL_PRINTF(4, 5);
/* Describes `t` for "found ..." in messages: "end of expression", "'=='". */
const char *sl__lex_describe(const struct sl__lexer *lx, const struct sl__tok *t, char *buf,
                             size_t cap);
/* 1-based line and column (UTF-8 characters) of byte `pos`. */
void sl__lex_position(const char *src, size_t pos, int *line, int *col);

/* ---- the byte search of prefilters (prefilter.c) ---------------------------------------- */

/* Which search sl__find_needle runs: the best the CPU has, glibc's memmem, or one vector
 * width (x86-64 only: elsewhere every choice is memmem; the caller of SSE2/AVX2 makes
 * sure the CPU has them). All give the same answer; the tests compare them. */
enum sl__find { SL__FIND_BEST = 0, SL__FIND_SCALAR, SL__FIND_SSE2, SL__FIND_AVX2 };

/* The first occurrence of the `k` bytes at `n` in the `len` bytes at `h`, or NULL, as
 * memmem. Reads no byte outside either. Any thread. */
const char *sl__find_needle(const char *h, size_t len, const char *n, size_t k, enum sl__find impl);

/* sl_expr_prefilter_may_match by the general search: each alternative in turn, then the
 * backslashes. The answer the one-pass search must give (tests compare them). */
bool sl__prefilter_searched(const struct sl_expr_prefilter *pf, const char *json, size_t len);

/* Makes `pf` search with `impl` (SL__FIND_BEST: what the CPU allows, as made) — for tests
 * of the narrower loops on a CPU that has wider ones. */
void sl__prefilter_use(struct sl_expr_prefilter *pf, enum sl__find impl);

#endif
