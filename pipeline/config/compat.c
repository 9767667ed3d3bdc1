/* Stage tables of older SL_STAGE_ABI versions, read by the layout they were built with
 * (SQLite's iVersion way): the registry converts each into a current table it owns.
 *
 * The history of include/sluice/stage.h:
 *   1  the first layout.
 *   2  struct sl_option gained `range` (after `choices`); struct sl_stage_type gained
 *      map_async (after map); keep() answers int (1, 0, or an SL_E* code with a reason
 *      in `why`) instead of bool; a source's flush(end = true) is called when it ends.
 * Every version starts with `int abi; const char *name;`, so that a table of a version
 * this library does not know can still be named when it is refused.
 *
 * The v1 layouts below are frozen: never edit them. A new version adds its frozen copy
 * of the version it replaces, and a conversion from it. */
#include <stdlib.h>
#include <string.h>

#include <sluice/version.h>

#include "config/internal.h"

/* ---- SL_STAGE_ABI 1, frozen ------------------------------------------------------------ */

struct option_v1 {
    const char *name;
    enum sl_opt_type type;
    const char *def;
    unsigned flags;
    size_t offset;
    const char *doc;
    const char *choices;
};

struct type_v1 {
    int abi;
    const char *name;
    enum sl_kind kind;
    const char *doc;
    unsigned flags;
    size_t state_size;
    const struct option_v1 *options;
    int (*init)(struct sl_stage *stage, const struct sl_config *cfg, struct sl_error *err);
    int (*start)(struct sl_stage *stage, struct sl_error *err);
    enum sl_poll (*poll)(struct sl_stage *stage, struct sl_batch **out);
    int (*map)(struct sl_stage *stage, struct sl_event *ev, struct sl_emit *out);
    bool (*keep)(struct sl_stage *stage, const struct sl_event *ev);
    enum sl_poll (*write)(struct sl_stage *stage, struct sl_batch *b);
    void (*ack)(struct sl_stage *stage, struct sl_batch *b);
    int (*flush)(struct sl_stage *stage, struct sl_emit *out, bool end);
    void (*close)(struct sl_stage *stage);
};

/* ---- the converted copy ------------------------------------------------------------------ */

/* A current table made from a v1 one; `t` first, so that the stage's type is the copy. */
struct converted {
    struct sl_stage_type t;                                             /* what the runtime reads */
    bool (*keep_v1)(struct sl_stage *stage, const struct sl_event *ev); /* the v1 filter */
    struct sl_option opts[]; /* the options, with ranges */
};

static int keep_v1(struct sl_stage *stage, const struct sl_event *ev, struct sl_error *why)
{
    (void)why;
    const struct converted *c = (const struct converted *)sl_stage_get_type(stage);
    return c->keep_v1(stage, ev) ? 1 : 0;
}

static struct converted *from_v1(const struct type_v1 *v)
{
    size_t nopts = 0;
    while (v->options && v->options[nopts].name) nopts++;
    struct converted *c = calloc(1, sizeof *c + (nopts + 1) * sizeof(struct sl_option));
    if (!c) return NULL;
    for (size_t i = 0; i < nopts; i++) {
        const struct option_v1 *o = &v->options[i];
        c->opts[i] = (struct sl_option){.name = o->name,
                                        .type = o->type,
                                        .def = o->def,
                                        .flags = o->flags,
                                        .offset = o->offset,
                                        .doc = o->doc,
                                        .choices = o->choices};
    }
    c->t = (struct sl_stage_type){
        .abi = SL_STAGE_ABI,
        .name = v->name,
        .kind = v->kind,
        .doc = v->doc,
        .flags = v->flags,
        .state_size = v->state_size,
        .options = v->options ? c->opts : NULL,
        .init = v->init,
        .start = v->start,
        .poll = v->poll,
        .map = v->map,
        .write = v->write,
        .ack = v->ack,
        .flush = v->kind == SL_SOURCE ? NULL : v->flush, /* v1 never flushed a source */
        .close = v->close};
    if (v->keep) {
        c->keep_v1 = v->keep;
        c->t.keep = keep_v1;
    }
    return c;
}

static int keep_owned(struct sl_registry *reg, void *copy)
{
    void **n = realloc(reg->owned, (reg->nowned + 1) * sizeof *n);
    if (!n) return -1;
    reg->owned = n;
    reg->owned[reg->nowned++] = copy;
    return 0;
}

int sl__type_current(struct sl_registry *reg, const struct sl_stage_type *t,
                     const struct sl_stage_type **out, struct sl_error *err)
{
    *out = t;
    if (t->abi == SL_STAGE_ABI) return 0;
    const char *name = t->name ? t->name : "?";
    if (t->abi > SL_STAGE_ABI || t->abi < 1)
        return sl_error_set(err, SL_EINVAL,
                            "stage type '%s' was built for stage ABI %d; libsluice %s reads "
                            "ABI 1 to %d%s",
                            name, t->abi, sl_version(), SL_STAGE_ABI,
                            t->abi > SL_STAGE_ABI ? ": use a newer libsluice" : "");
    struct converted *c = from_v1((const struct type_v1 *)(const void *)t);
    if (!c || keep_owned(reg, c)) {
        free(c);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    *out = &c->t;
    return 0;
}
