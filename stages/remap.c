/* remap: reshapes events with operations applied in the order the config lists them:
 *   set:       {field: expression, ...}  each evaluated on the event as it is by then
 *   rename:    {from: to, ...}           keeps the field's place; absent fields are skipped
 *   remove:    [field, ...]
 *   copy:      {from: to, ...}           `from` may be a path (http.status)
 *   keep_only: [field, ...]              removes every other field
 * Targets are top-level field names. Values stay where they are (spans of the payload,
 * constants of the expressions, strings built in the batch arena): a set or a rename
 * costs a small copy of the event's field index, never of the values. With `serialize:
 * true` the payload is rewritten as the event's JSON (the changed fields serialised,
 * untouched values copied as they came), so that sinks writing raw payloads see the new
 * shape. Thread-safe: `workers: N` is allowed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/expr.h>
#include <sluice/json.h>

#include "internal.h"

enum op_kind { OP_SET, OP_RENAME, OP_REMOVE, OP_COPY, OP_KEEP_ONLY };

struct op {
    enum op_kind kind;          /* what to do */
    const char *a;              /* the field (set, remove) or `from` (rename, copy) */
    const char *b;              /* `to` (rename, copy) */
    size_t alen, blen;          /* bytes of a and b */
    struct sl_expr *e;          /* set: the value (owned) */
    const struct sl_list *keep; /* keep_only: the names */
};

struct remap {
    const struct sl_config *set;    /* option set */
    const struct sl_config *rename; /* option rename */
    struct sl_list remove;          /* option remove */
    const struct sl_config *copy;   /* option copy */
    struct sl_list keep_only;       /* option keep_only */
    bool serialize;                 /* option */
    struct sl__stage_errors errors; /* option on_error, dead-letter port */
    struct op *ops;                 /* in config order */
    size_t nops;                    /* used */
};

/* ---- applying ---------------------------------------------------------------------------- */

static bool kept(const struct sl_list *keep, const char *name, size_t len)
{
    for (size_t i = 0; i < keep->n; i++)
        if (strlen(keep->items[i]) == len && memcmp(keep->items[i], name, len) == 0) return true;
    return false;
}

static int keep_only(struct sl_event *ev, const struct sl_list *keep)
{
    for (size_t i = sl_event_field_count(ev); i-- > 0;) {
        const char *name;
        size_t len;
        if (sl_event_field_at(ev, i, &name, &len, NULL)) continue; /* removed as a duplicate */
        if (!kept(keep, name, len) && sl_event_remove(ev, name, len) == SL_ENOMEM) return SL_ENOMEM;
    }
    return 0;
}

/* Applies one operation. Returns 0, SL_ELIMIT (a new field past the event's limit) or
 * SL_ENOMEM. */
static int apply(const struct op *op, struct sl_event *ev)
{
    struct sl_value v;
    switch (op->kind) {
    case OP_SET:
        if (sl_expr_eval(op->e, ev, &v)) return SL_ENOMEM;
        return sl_event_set(ev, op->a, op->alen, &v);
    case OP_RENAME: {
        int rc = sl_event_rename(ev, op->a, op->alen, op->b, op->blen);
        return rc == SL_ENOTFOUND ? 0 : rc;
    }
    case OP_REMOVE: {
        int rc = sl_event_remove(ev, op->a, op->alen);
        return rc == SL_ENOTFOUND ? 0 : rc;
    }
    case OP_COPY:
        if (sl_event_get(ev, op->a, op->alen, &v)) return 0;
        return sl_event_set(ev, op->b, op->blen, &v);
    default: return keep_only(ev, op->keep);
    }
}

static int serialize(struct sl_event *ev)
{
    size_t need = sl_event_write_json(ev, NULL, 0);
    if (need > UINT32_MAX) return SL_ELIMIT; /* more than a payload can hold */
    char *buf = sl_event_alloc(ev, need);
    if (!buf) return SL_ENOMEM;
    sl_event_write_json(ev, buf, need);
    sl_event_set_payload(ev, buf, need);
    sl_event_fields_synced(ev); /* the payload now says what the fields say */
    return 0;
}

static const char *const op_names[] = {"set", "rename", "remove", "copy", "keep_only"};

static int remap_map(struct sl_stage *s, struct sl_event *ev, struct sl_emit *out)
{
    const struct remap *r = sl_stage_state(s);
    for (size_t i = 0; i < r->nops; i++) {
        const struct op *op = &r->ops[i];
        int rc = apply(op, ev);
        /* The event keeps what the operations before this one did. */
        if (rc)
            return sl__stage_fault(s, &r->errors, ev, out, rc, "%s '%s': more than %d fields",
                                   op_names[op->kind], op->kind == OP_COPY ? op->b : op->a,
                                   SL_EVENT_MAX_FIELDS);
    }
    int rc = r->serialize && sl_event_fields_changed(ev) ? serialize(ev) : 0;
    if (rc)
        return sl__stage_fault(s, &r->errors, ev, out, rc,
                               "serialize: the JSON of the event is longer than 4 GiB");
    return sl_emit(out, ev) ? sl_stage_error(s, SL_ENOMEM, "out of memory") : 0;
}

/* ---- building the operations ----------------------------------------------------------------- */

static struct op *push(struct remap *r, enum op_kind kind)
{
    struct op *n = realloc(r->ops, (r->nops + 1) * sizeof *n);
    if (!n) return NULL;
    r->ops = n;
    memset(&n[r->nops], 0, sizeof *n);
    n[r->nops].kind = kind;
    return &n[r->nops++];
}

/* set/rename/copy: one operation per `key: value` of the map, in order. */
static int add_pairs(struct remap *r, enum op_kind kind, const struct sl_config *map,
                     const char *opt, struct sl_error *err)
{
    for (size_t i = 0; i < sl_config_len(map); i++) {
        const char *key;
        const struct sl_config *val = sl_config_at(map, i, &key);
        if (!*key)
            return sl_config_error(sl_config_key_at(map, i), err, SL_ECONFIG,
                                   "%s: a field name cannot be empty", opt);
        struct op *op = push(r, kind);
        if (!op) return sl_error_set(err, SL_ENOMEM, "out of memory");
        op->a = key;
        op->alen = strlen(key);
        if (kind == OP_SET) {
            char what[128];
            snprintf(what, sizeof what, "set '%.100s'", key);
            op->e = sl_expr_compile_config(val, what, err);
            if (!op->e) return err ? err->code : SL_ECONFIG;
            continue;
        }
        const char *to = sl_config_kind(val) == SL_CFG_SCALAR ? sl_config_str(val) : NULL;
        if (!to || !*to)
            return sl_config_error(val, err, SL_ECONFIG, "%s '%s': expected a field name", opt,
                                   key);
        op->b = to;
        op->blen = strlen(to);
    }
    return 0;
}

static int add_list(struct remap *r, enum op_kind kind, const struct sl_list *names,
                    struct sl_error *err)
{
    if (kind == OP_KEEP_ONLY) {
        struct op *op = push(r, kind);
        if (!op) return sl_error_set(err, SL_ENOMEM, "out of memory");
        op->keep = names;
        return 0;
    }
    for (size_t i = 0; i < names->n; i++) {
        struct op *op = push(r, kind);
        if (!op) return sl_error_set(err, SL_ENOMEM, "out of memory");
        op->a = names->items[i];
        op->alen = strlen(op->a);
    }
    return 0;
}

static int remap_init(struct sl_stage *s, const struct sl_config *cfg, struct sl_error *err)
{
    struct remap *r = sl_stage_state(s);
    int rc = 0;
    /* The operations run in the order the config lists them. */
    for (size_t i = 0; !rc && cfg && i < sl_config_len(cfg); i++) {
        const char *key;
        sl_config_at(cfg, i, &key);
        if (!strcmp(key, "set")) rc = add_pairs(r, OP_SET, r->set, key, err);
        if (!strcmp(key, "rename")) rc = add_pairs(r, OP_RENAME, r->rename, key, err);
        if (!strcmp(key, "copy")) rc = add_pairs(r, OP_COPY, r->copy, key, err);
        if (!strcmp(key, "remove")) rc = add_list(r, OP_REMOVE, &r->remove, err);
        if (!strcmp(key, "keep_only")) rc = add_list(r, OP_KEEP_ONLY, &r->keep_only, err);
    }
    if (!rc && r->nops == 0 && !r->serialize)
        return sl_config_error(cfg, err, SL_ECONFIG,
                               "remap needs at least one of set, rename, remove, copy, keep_only "
                               "or serialize");
    return rc ? rc : sl__stage_errors_init(s, &r->errors, err);
}

static void remap_close(struct sl_stage *s)
{
    struct remap *r = sl_stage_state(s);
    for (size_t i = 0; i < r->nops; i++) sl_expr_free(r->ops[i].e);
    free(r->ops);
}

static const struct sl_option remap_options[] = {
    {"set", SL_OPT_MAP, NULL, 0, offsetof(struct remap, set),
     "fields to set, each to an expression, e.g. {env: '\"prod\"', ms: 'latency_s * 1000'}"},
    {"rename", SL_OPT_MAP, NULL, 0, offsetof(struct remap, rename),
     "fields to rename, from: to, e.g. {msg: message}"},
    {"remove", SL_OPT_LIST, NULL, 0, offsetof(struct remap, remove), "fields to remove"},
    {"copy", SL_OPT_MAP, NULL, 0, offsetof(struct remap, copy),
     "fields to copy, from (a path): to, e.g. {http.status: status}"},
    {"keep_only", SL_OPT_LIST, NULL, 0, offsetof(struct remap, keep_only),
     "the fields to keep; every other field is removed"},
    {"serialize", SL_OPT_BOOL, "false", 0, offsetof(struct remap, serialize),
     "rewrite the payload as the event's JSON when a field changed (for sinks that write raw "
     "payloads)"},
    {"on_error", SL_OPT_ENUM, "drop", 0, offsetof(struct remap, errors.mode),
     "when an operation would give the event more fields than it can hold (65535): drop the "
     "event (counted), dead_letter (send it, as the operations before left it, to output "
     "'dead_letter' with the reason in field 'error') or fail (stop the pipeline)",
     SL__STAGE_ON_ERROR_CHOICES},
    {0},
};

const struct sl_stage_type sl_stage_remap = {
    .abi = SL_STAGE_ABI,
    .name = "remap",
    .kind = SL_TRANSFORM,
    .doc =
        "set, rename, remove, copy or keep fields, in the order written; optionally re-serialize",
    .flags = SL_STAGE_PARALLEL,
    .state_size = sizeof(struct remap),
    .options = remap_options,
    .init = remap_init,
    .map = remap_map,
    .close = remap_close,
};
