/* `validate`'s check of field names: a template or expression that names a field no stage
 * before it sets (`{{ status_clas }}` after a parser that gives `status`) is a warning,
 * where the stages before say what they set (sl_stage_declare_fields). The walk follows
 * the default outputs back to the sources: a stage that declares nothing (parse_json,
 * remap) may set anything, and then nothing after it is checked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/expr.h>

#include "config/internal.h"

/* The fields the events of an edge may have: `known` false when anything may be set. */
struct fset {
    bool known;
    const char **names; /* borrowed from the stages' declarations */
    size_t n;
};

struct walk {
    struct sl_pipeline *p;
    struct fset *out; /* per stage (by index): its default output's fields */
    bool *done;       /* out[i] computed */
    struct sl__report *r;
};

static size_t head_of(const char *path, size_t len)
{
    size_t h = 0;
    while (h < len && path[h] != '.' && path[h] != '[') h++;
    return h;
}

/* Whether `f` has a field `name`, or one whose first path segment is `name` (a declared
 * "http.status" sets "http"). */
static bool has(const struct fset *f, const char *name, size_t len)
{
    for (size_t i = 0; i < f->n; i++) {
        size_t n = strlen(f->names[i]);
        if ((n == len || head_of(f->names[i], n) == len) && memcmp(f->names[i], name, len) == 0)
            return true;
    }
    return false;
}

static void add(struct fset *f, const char *const *names, size_t n)
{
    if (!f->known) return;
    const char **grown = realloc(f->names, (f->n + n) * sizeof *grown + 1);
    if (!grown) {
        f->known = false; /* unknown: nothing is checked, nothing is wrong */
        return;
    }
    f->names = grown;
    for (size_t i = 0; i < n; i++)
        if (!has(f, names[i], strlen(names[i]))) f->names[f->n++] = names[i];
}

static const struct fset *out_of(struct walk *w, struct sl_stage *s);

/* The fields of the events reaching `s`: the union of its inputs'. */
static struct fset in_of(struct walk *w, struct sl_stage *s)
{
    struct fset f = {.known = s->ninputs > 0};
    for (uint32_t i = 0; i < s->ninputs && f.known; i++) {
        const struct sl_queue *q = s->inputs[i];
        const struct fset *o = q->port == 0 ? out_of(w, q->from) : NULL; /* dead letters... */
        if (!o || !o->known)
            f.known = false;
        else
            add(&f, o->names, o->n);
    }
    return f;
}

static const struct fset *out_of(struct walk *w, struct sl_stage *s)
{
    struct fset *o = &w->out[s->index];
    if (w->done[s->index]) return o;
    w->done[s->index] = true; /* a cycle was refused before: no loop here */
    if (s->fields_mode == SL_FIELDS_ONLY) {
        *o = (struct fset){.known = true};
    } else if (s->fields_mode == SL_FIELDS_ADD || s->type->kind == SL_FILTER) {
        *o = in_of(w, s);
    } else {
        *o = (struct fset){.known = false};
        return o;
    }
    add(o, (const char *const *)s->fields, s->nfields);
    return o;
}

struct check {
    struct walk *w;
    struct sl_stage *s;
    const struct sl_option *opt;
    const struct fset *in;
};

/* One field an option of `s` reads: warned about when no stage before sets its name. */
static int check_field(void *arg, const char *path, size_t len)
{
    struct check *c = arg;
    size_t head = head_of(path, len);
    if (head == 0 || path[0] == '"' || has(c->in, path, len) || has(c->in, path, head)) return 0;
    char given[256];
    size_t g = 0;
    given[0] = '\0';
    for (size_t i = 0; i < c->in->n && g + 4 < sizeof given; i++) {
        int k = snprintf(given + g, sizeof given - g, "%s%s", i ? ", " : "", c->in->names[i]);
        g = k < 0 || (size_t)k >= sizeof given - g ? sizeof given : g + (size_t)k;
    }
    sl__report_at(c->w->r, SL_LOG_WARN, 0, c->s->name, sl_config_get(c->s->cfg, c->opt->name),
                  "option '%s': no stage before '%s' sets field '%.*s' (they set: %s)",
                  c->opt->name, c->s->name, (int)head, path, c->in->n ? given : "no fields");
    return 0;
}

static void check_stage(struct walk *w, struct sl_stage *s)
{
    if (!s->type->options || !s->cfg || s->type->kind == SL_SOURCE) return;
    struct fset in = in_of(w, s);
    struct check c = {.w = w, .s = s, .in = &in};
    for (const struct sl_option *o = s->type->options; in.known && o->name; o++) {
        if (o->type != SL_OPT_EXPR && o->type != SL_OPT_TEMPLATE) continue;
        if (!sl_config_get(s->cfg, o->name)) continue; /* a default: not the user's words */
        const void *x;
        memcpy(&x, (const char *)s->state + o->offset, sizeof x);
        c.opt = o;
        if (o->type == SL_OPT_EXPR)
            sl_expr_fields(x, check_field, &c);
        else
            sl_template_fields(x, check_field, &c);
    }
    free(in.names);
}

void sl__check_fields(struct sl_pipeline *p, struct sl__report *r)
{
    struct walk w = {.p = p, .r = r};
    w.out = calloc(p->nstages ? p->nstages : 1, sizeof *w.out);
    w.done = calloc(p->nstages ? p->nstages : 1, sizeof *w.done);
    for (uint32_t i = 0; w.out && w.done && i < p->nstages; i++) check_stage(&w, p->stages[i]);
    for (uint32_t i = 0; w.out && i < p->nstages; i++) free(w.out[i].names);
    free(w.out);
    free(w.done);
}
