/* parse_csv: one CSV record (RFC 4180: quoted values may hold the delimiter, line breaks
 * and doubled quotes) into fields named by `columns`. Values are spans of the text;
 * quoted values holding doubled quotes are decoded into the batch arena. A CR before the
 * end of the text (CRLF files) is ignored. */
#include <stddef.h>
#include <string.h>

#include "internal.h"

struct parse_csv {
    struct sl_list columns;         /* option: field names, in column order */
    const char *delimiter;          /* option: one byte */
    const char *quote;              /* option: one byte */
    const char *field;              /* option: field to parse; NULL: the payload */
    bool infer;                     /* option infer_types */
    bool strict;                    /* option: the number of values must match */
    struct sl__stage_errors errors; /* option on_error, dead-letter port */
    char d, q;                      /* delimiter and quote bytes */
};

struct cell {
    struct sl_value v; /* the value (a span, or decoded later) */
    bool doubled;      /* quoted with "" inside: decode */
};

/* Reads the cell at s[*i]; false with `*why` when it is malformed. */
static bool read_cell(const struct parse_csv *pc, const char *s, size_t len, size_t *i,
                      struct cell *c, const char **why)
{
    size_t a = *i;
    c->doubled = false;
    if (a < len && s[a] == pc->q) {
        size_t j = a + 1;
        for (;; j++) {
            if (j >= len) {
                *why = "unterminated quoted value";
                return false;
            }
            if (s[j] != pc->q) continue;
            if (j + 1 < len && s[j + 1] == pc->q) {
                c->doubled = true;
                j++;
                continue;
            }
            break;
        }
        c->v = sl_value_string(s + a + 1, j - a - 1);
        *i = j + 1;
        if (*i < len && s[*i] != pc->d) {
            *why = "expected a delimiter after a quoted value";
            return false;
        }
        return true;
    }
    const char *end = memchr(s + a, pc->d, len - a);
    size_t b = end ? (size_t)(end - s) : len;
    *i = b;
    c->v = pc->infer ? sl__stage_infer(s + a, b - a) : sl_value_string(s + a, b - a);
    return true;
}

static int put_cell(struct sl_event *ev, const struct parse_csv *pc, size_t col, struct cell *c,
                    bool merge)
{
    if (c->doubled) { /* "" -> " */
        char *buf = sl_event_alloc(ev, c->v.len);
        if (!buf) return SL_ENOMEM;
        size_t o = 0;
        for (size_t k = 0; k < c->v.len; k++) {
            buf[o++] = c->v.s[k];
            if (c->v.s[k] == pc->q) k++;
        }
        c->v = sl_value_string(buf, o);
    }
    const char *name = pc->columns.items[col];
    return sl__stage_put(ev, name, strlen(name), &c->v, merge);
}

/* Splits the record; adds the fields unless `dry_run`. Returns the number of fields it
 * adds (or would add), SL_EPARSE with `*why` and `*at`, SL_ELIMIT or SL_ENOMEM. */
static int split(const struct parse_csv *pc, struct sl_event *ev, const char *s, size_t len,
                 bool merge, bool dry_run, const char **why, size_t *at)
{
    if (len && s[len - 1] == '\r') len--;
    size_t i = 0, col = 0;
    for (;;) {
        struct cell c;
        *at = i;
        if (!read_cell(pc, s, len, &i, &c, why)) return SL_EPARSE;
        if (col >= pc->columns.n && pc->strict) {
            *why = "more values than columns";
            return SL_EPARSE;
        }
        if (col < pc->columns.n && !dry_run) {
            int rc = put_cell(ev, pc, col, &c, merge);
            if (rc) return rc;
        }
        col++;
        if (i >= len) break;
        i++; /* the delimiter */
    }
    if (col < pc->columns.n && pc->strict) {
        *at = len;
        *why = "fewer values than columns";
        return SL_EPARSE;
    }
    return (int)(col < pc->columns.n ? col : pc->columns.n);
}

static int parse_csv_map(struct sl_stage *s, struct sl_event *ev, struct sl_emit *out)
{
    struct parse_csv *pc = sl_stage_state(s);
    const char *text, *why = NULL;
    size_t len, at = 0, before = sl_event_field_count(ev);
    int rc = sl__stage_input(ev, pc->field, &text, &len);
    if (rc == SL_ENOMEM) return sl_stage_error(s, rc, "out of memory");
    if (rc) return sl__stage_reject(s, &pc->errors, ev, out, "%s", sl__stage_input_error(rc));
    bool merge = pc->field != NULL || before > 0;
    /* A merge cannot be undone: check the record, and count its fields, first. */
    rc = merge ? split(pc, ev, text, len, merge, true, &why, &at) : 0;
    if (rc > 0 && before + (size_t)rc > SL_EVENT_MAX_FIELDS) rc = SL_ELIMIT;
    if (rc >= 0) rc = split(pc, ev, text, len, merge, false, &why, &at);
    if (rc == SL_ENOMEM) return sl_stage_error(s, rc, "out of memory");
    if (rc < 0) {
        if (!merge) sl_event_clear_fields(ev);
        if (rc == SL_ELIMIT) return sl__stage_too_many_fields(s, &pc->errors, ev, out);
        return sl__stage_reject(s, &pc->errors, ev, out, "%s at byte %zu", why, at);
    }
    sl_event_fields_changed_mark(ev);
    return sl_emit(out, ev) ? sl_stage_error(s, SL_ENOMEM, "out of memory") : 0;
}

static int parse_csv_init(struct sl_stage *s, const struct sl_config *cfg, struct sl_error *err)
{
    struct parse_csv *pc = sl_stage_state(s);
    if (strlen(pc->delimiter) != 1)
        return sl_config_error(sl_config_get(cfg, "delimiter"), err, SL_ECONFIG,
                               "delimiter must be one character (a byte)");
    if (strlen(pc->quote) != 1 || pc->quote[0] == pc->delimiter[0])
        return sl_config_error(sl_config_get(cfg, "quote"), err, SL_ECONFIG,
                               "quote must be one character (a byte) other than the delimiter");
    for (size_t i = 0; i < pc->columns.n; i++)
        if (!pc->columns.items[i][0])
            return sl_config_error(sl_config_get(cfg, "columns"), err, SL_ECONFIG,
                                   "column %zu has an empty name", i + 1);
    pc->d = pc->delimiter[0];
    pc->q = pc->quote[0];
    if (sl_stage_declare_fields(s, SL_FIELDS_ADD, pc->columns.items, pc->columns.n))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    return sl__stage_errors_init(s, &pc->errors, err);
}

static const struct sl_option parse_csv_options[] = {
    {"columns", SL_OPT_LIST, NULL, SL_REQUIRED, offsetof(struct parse_csv, columns),
     "field names of the columns, in order"},
    {"delimiter", SL_OPT_STRING, ",", 0, offsetof(struct parse_csv, delimiter),
     "the byte between values (\"\\t\" for TSV)"},
    {"quote", SL_OPT_STRING, "\"", 0, offsetof(struct parse_csv, quote),
     "the byte that quotes a value; doubled inside a quoted value it stands for itself"},
    {"field", SL_OPT_STRING, NULL, 0, offsetof(struct parse_csv, field),
     "string field to parse (the values are merged into the event); unset: the payload"},
    {"infer_types", SL_OPT_BOOL, "true", 0, offsetof(struct parse_csv, infer),
     "unquoted numbers become numbers and true/false booleans; quoted values stay strings"},
    {"strict", SL_OPT_BOOL, "true", 0, offsetof(struct parse_csv, strict),
     "a record must have exactly one value per column (false: missing columns are left out, "
     "extra values ignored)"},
    {"on_error", SL_OPT_ENUM, "drop", 0, offsetof(struct parse_csv, errors.mode),
     SL__STAGE_ON_ERROR_DOC("on bad quoting or a wrong number of values"),
     SL__STAGE_ON_ERROR_CHOICES},
    {0},
};

const struct sl_stage_type sl_stage_parse_csv = {
    .abi = SL_STAGE_ABI,
    .name = "parse_csv",
    .kind = SL_TRANSFORM,
    .doc = "parse one CSV record into fields named by its columns",
    .flags = SL_STAGE_PARALLEL,
    .state_size = sizeof(struct parse_csv),
    .options = parse_csv_options,
    .init = parse_csv_init,
    .map = parse_csv_map,
};
