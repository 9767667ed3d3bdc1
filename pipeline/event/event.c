/* Events: payload, key, time, source metadata and the field index.
 *
 * Fields are an array in a batch arena. An event copied into another batch (every
 * transform output is a copy) shares its parent's array until it changes a field: the
 * first change copies the array into the event's own batch (copy on write), so a batch
 * fanned out to two branches is never changed under the other branch. */
#include <stdlib.h>
#include <string.h>

#include <sluice/json.h>

#include "event/internal.h"

void sl__event_init(struct sl_event *ev, struct sl_batch *b)
{
    memset(ev, 0, sizeof *ev);
    ev->batch = b;
    ev->partition = -1;
}

const char *sl_event_payload(const struct sl_event *ev, size_t *len)
{
    if (len) *len = ev->payload_len;
    return ev->payload;
}

void sl_event_set_payload(struct sl_event *ev, const char *data, size_t len)
{
    struct sl_batch *b = ev->batch;
    if (ev >= b->events && ev < b->events + b->n) { /* not a transform's scratch copy */
        b->bytes += len;
        b->bytes -= ev->payload_len;
    }
    ev->payload = data;
    ev->payload_len = (uint32_t)len;
    ev->flags &= ~(uint32_t)SL__EV_PAYLOAD_PARSED; /* new bytes: a raw record again */
}

const char *sl_event_key(const struct sl_event *ev, size_t *len)
{
    if (len) *len = ev->key_len;
    return ev->key;
}

void sl_event_set_key(struct sl_event *ev, const char *key, size_t len)
{
    ev->key = key;
    ev->key_len = key ? (uint32_t)len : 0;
}

int64_t sl_event_time(const struct sl_event *ev)
{
    return ev->time;
}

void sl_event_set_time(struct sl_event *ev, int64_t ns)
{
    ev->time = ns;
}

const char *sl_event_origin(const struct sl_event *ev)
{
    return ev->origin;
}

uint64_t sl_event_offset(const struct sl_event *ev)
{
    return ev->offset;
}

int32_t sl_event_partition(const struct sl_event *ev)
{
    return ev->partition;
}

void sl_event_set_origin(struct sl_event *ev, const char *origin, uint64_t offset,
                         int32_t partition)
{
    ev->origin = origin;
    ev->offset = offset;
    ev->partition = partition;
}

const char *sl_event_host(const struct sl_event *ev)
{
    return ev->host;
}

void sl_event_set_host(struct sl_event *ev, const char *host)
{
    ev->host = host;
}

char *sl_event_alloc(struct sl_event *ev, size_t size)
{
    return sl__arena_alloc(&ev->batch->arena, size ? size : 1);
}

const char *sl_event_strdup(struct sl_event *ev, const char *s, size_t len)
{
    char *d = sl_event_alloc(ev, len + 1);
    if (!d) return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

/* ---- fields -------------------------------------------------------------------------- */

/* find_field for an event that may repeat a name: the last match, searching backwards
 * (it costs what a search for the first would, on average over the fields). */
static __attribute__((noinline)) int find_last(const struct sl_event *ev, const char *name,
                                               size_t len)
{
    for (uint32_t i = ev->nfields; i-- > 0;) {
        const struct sl__field *f = &ev->fields[i];
        if (f->name_len == len && memcmp(f->name, name, len) == 0) return (int)i;
    }
    return -1;
}

/* The field of that name; of a repeated name, the last one (it hides the others). An
 * event whose names sl_event_set alone gave (no repeats) stops at the first match. */
static inline int find_field(const struct sl_event *ev, const char *name, size_t len)
{
    if (ev->flags & SL__EV_MAYBE_DUPS) return find_last(ev, name, len);
    const struct sl__field *f = ev->fields;
    for (uint32_t i = 0, n = ev->nfields; i < n; i++)
        if (f[i].name_len == len && memcmp(f[i].name, name, len) == 0) return (int)i;
    return -1;
}

static bool same_name(const struct sl__field *a, const struct sl__field *b)
{
    return a->name_len == b->name_len && memcmp(a->name, b->name, a->name_len) == 0;
}

static bool later_same_name(const struct sl_event *ev, uint32_t i)
{
    for (uint32_t j = i + 1; j < ev->nfields; j++)
        if (same_name(&ev->fields[i], &ev->fields[j])) return true;
    return false;
}

/* A bit of a 64-bit summary of names, by their length and end bytes (a multiplicative
 * hash, so that the names of a log line rarely share one). */
static inline uint64_t name_bit(const struct sl__field *f)
{
    uint32_t k = f->name_len;
    if (f->name_len)
        k |= (uint32_t)(unsigned char)f->name[0] << 12 |
             (uint32_t)(unsigned char)f->name[f->name_len - 1] << 20;
    return 1ull << ((k * 0x9E3779B1u) >> 26);
}

/* A few fields: from the last back, the summary of the names seen says which may repeat
 * a later one; only those are compared. */
static uint32_t mark_hidden_few(const struct sl_event *ev, uint8_t *hidden)
{
    uint64_t seen = 0;
    uint32_t count = 0;
    for (uint32_t i = ev->nfields; i-- > 0;) {
        uint64_t bit = name_bit(&ev->fields[i]);
        hidden[i] = (seen & bit) && later_same_name(ev, i);
        count += hidden[i];
        seen |= bit;
    }
    return count;
}

/* Whether some name of the event may repeat: false proves none does. The summary of
 * mark_hidden_few without the marks, stopping at the first possible repeat: the check a
 * parser's every event goes through (sl_event_fields_synced). */
static bool may_repeat_few(const struct sl_event *ev)
{
    uint64_t seen = 0;
    for (uint32_t i = 0; i < ev->nfields; i++) {
        uint64_t bit = name_bit(&ev->fields[i]);
        if (seen & bit) return true;
        seen |= bit;
    }
    return false;
}

static uint64_t name_hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

uint32_t sl__event_mark_hidden(const struct sl_event *ev, uint8_t *hidden)
{
    uint32_t n = ev->nfields, count = 0;
    size_t cap = 64;
    while (cap < 2 * (size_t)n) cap *= 2;
    uint32_t *slots = n > 64 ? calloc(cap, sizeof *slots) : NULL; /* field index + 1 */
    if (!slots) /* few fields, or no memory for the table: slower, the same marks */
        return mark_hidden_few(ev, hidden);
    for (uint32_t i = n; i-- > 0;) { /* from the last: a name seen already hides this one */
        const struct sl__field *f = &ev->fields[i];
        size_t k = name_hash(f->name, f->name_len) & (cap - 1);
        while (slots[k] && !same_name(&ev->fields[slots[k] - 1], f)) k = (k + 1) & (cap - 1);
        hidden[i] = slots[k] != 0;
        count += hidden[i];
        if (!slots[k]) slots[k] = i + 1;
    }
    free(slots);
    return count;
}

/* own_fields when the array is not the event's own or is full: a new array in the event's
 * batch, with room for `need` fields. */
static __attribute__((noinline)) int grow_fields(struct sl_event *ev, size_t need)
{
    size_t cap = ev->fields_cap ? ev->fields_cap : 8;
    while (cap < need) cap *= 2;
    if (cap > SL__EVENT_HARD_FIELDS) cap = SL__EVENT_HARD_FIELDS;
    struct sl__fields_head *head =
        sl__arena_alloc(&ev->batch->arena, sizeof *head + cap * sizeof(struct sl__field));
    if (!head) return SL_ENOMEM;
    head->owner = ev->batch;
    /* The indexes built on the old array stay good: each says which text it indexes,
     * and the old array's batch outlives this one's (it is its ancestor or itself). */
    atomic_init(&head->nested, ev->fields
                                   ? atomic_load_explicit(&sl__fields_head(ev->fields)->nested,
                                                          memory_order_acquire)
                                   : NULL);
    struct sl__field *nf = (struct sl__field *)(head + 1);
    if (ev->nfields) memcpy(nf, ev->fields, ev->nfields * sizeof *nf);
    ev->fields = nf;
    ev->fields_cap = (uint32_t)cap;
    ev->fields_home = ev->batch;
    return 0;
}

/* Makes the field array the event's own, with room for `extra` more fields, refusing to
 * go past `max` fields (SL_ELIMIT: a property of this event, not of the process). */
static inline int own_fields(struct sl_event *ev, unsigned extra, unsigned max)
{
    size_t need = (size_t)ev->nfields + extra;
    if (need > max) return SL_ELIMIT;
    /* A parser adds field after field to an array of its own with room: one test. */
    if (ev->fields_home == ev->batch && need <= ev->fields_cap) return 0;
    return grow_fields(ev, need);
}

/* Where the name bytes live: kept when they already live with the batch's data is not
 * knowable here, so names are copied once into the arena (a few bytes). */
static const char *arena_name(struct sl_event *ev, const char *name, size_t len)
{
    char *d = sl__arena_alloc(&ev->batch->arena, len + 1);
    if (!d) return NULL;
    memcpy(d, name, len);
    d[len] = '\0';
    return d;
}

int sl_event_add_field(struct sl_event *ev, const char *name, size_t len, const struct sl_value *v)
{
    int rc = own_fields(ev, 1, SL_EVENT_MAX_FIELDS);
    if (rc) return rc;
    if (ev->nfields) ev->flags |= SL__EV_MAYBE_DUPS; /* not looked for: a parser's fast path */
    struct sl__field *f = &ev->fields[ev->nfields++];
    f->name = name;
    f->name_len = (uint32_t)len;
    f->v = *v;
    ev->flags |= sl__ev_len_bit(len);
    return 0;
}

/* Drops the fields that a later field of the same name hides, once, before the first
 * change after sl_event_add_field: a change then meets each name once (a set, a remove or
 * a rename of a repeated name takes all of it). Returns 0 or SL_ENOMEM. */
static int drop_hidden(struct sl_event *ev)
{
    if (!(ev->flags & SL__EV_MAYBE_DUPS)) return 0;
    int rc = own_fields(ev, 0, SL__EVENT_HARD_FIELDS);
    if (rc) return rc;
    uint8_t small[64];
    uint8_t *hidden =
        ev->nfields <= sizeof small ? small : sl__arena_alloc(&ev->batch->arena, ev->nfields);
    if (!hidden) return SL_ENOMEM;
    uint32_t out = 0, n = ev->nfields;
    if (sl__event_mark_hidden(ev, hidden)) {
        for (uint32_t i = 0; i < n; i++)
            if (!hidden[i]) ev->fields[out++] = ev->fields[i];
        ev->nfields = out;
    }
    ev->flags &= ~(uint32_t)SL__EV_MAYBE_DUPS;
    return 0;
}

/* sl_event_set, with `max` fields allowed. */
static int set_field(struct sl_event *ev, const char *name, size_t len, const struct sl_value *v,
                     unsigned max)
{
    int rc = drop_hidden(ev);
    if (rc) return rc;
    int i = find_field(ev, name, len);
    rc = own_fields(ev, i < 0 ? 1 : 0, max);
    if (rc) return rc;
    if (i >= 0) {
        ev->fields[i].v = *v;
    } else {
        const char *n = arena_name(ev, name, len);
        if (!n) return SL_ENOMEM;
        struct sl__field *f = &ev->fields[ev->nfields++];
        f->name = n;
        f->name_len = (uint32_t)len;
        f->v = *v;
        ev->flags |= sl__ev_len_bit(len);
    }
    ev->flags |= SL__EV_FIELDS_CHANGED;
    return 0;
}

int sl_event_set(struct sl_event *ev, const char *name, size_t len, const struct sl_value *v)
{
    return set_field(ev, name, len, v, SL_EVENT_MAX_FIELDS);
}

/* The index of field `name` in an array that is the event's own and holds each name
 * once; SL_ENOTFOUND or SL_ENOMEM. */
static int find_owned(struct sl_event *ev, const char *name, size_t len)
{
    int i = find_field(ev, name, len);
    if (i < 0) return SL_ENOTFOUND;
    if (ev->flags & SL__EV_MAYBE_DUPS) { /* the places move when repeats go */
        int rc = drop_hidden(ev);
        if (rc) return rc;
        i = find_field(ev, name, len);
    }
    return own_fields(ev, 0, SL__EVENT_HARD_FIELDS) ? SL_ENOMEM : i;
}

static void remove_at(struct sl_event *ev, int i)
{
    memmove(&ev->fields[i], &ev->fields[i + 1],
            (size_t)(ev->nfields - (uint32_t)i - 1) * sizeof ev->fields[0]);
    ev->nfields--;
}

int sl_event_remove(struct sl_event *ev, const char *name, size_t len)
{
    int i = find_owned(ev, name, len);
    if (i < 0) return i;
    remove_at(ev, i);
    ev->flags |= SL__EV_FIELDS_CHANGED;
    return 0;
}

int sl_event_rename(struct sl_event *ev, const char *from, size_t from_len, const char *to,
                    size_t to_len)
{
    int i = find_owned(ev, from, from_len);
    if (i < 0) return i;
    int j = find_field(ev, to, to_len);
    const char *n = arena_name(ev, to, to_len);
    if (!n) return SL_ENOMEM;
    ev->fields[i].name = n;
    ev->fields[i].name_len = (uint32_t)to_len;
    ev->flags |= sl__ev_len_bit(to_len);
    if (j >= 0 && j != i) remove_at(ev, j); /* the old field of that name is replaced */
    ev->flags |= SL__EV_FIELDS_CHANGED;
    return 0;
}

/* The base64 (RFC 4648, padded) of `len` bytes at `s`, in the arena; NULL: out of memory. */
static const char *base64(struct sl_event *ev, const char *s, size_t len, size_t *out_len)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *u = (const unsigned char *)s;
    char *d = sl_event_alloc(ev, (len + 2) / 3 * 4);
    if (!d) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)u[i] << 16 | (i + 1 < len ? (unsigned)u[i + 1] << 8 : 0) |
                     (i + 2 < len ? u[i + 2] : 0);
        d[o++] = abc[v >> 18];
        d[o++] = abc[v >> 12 & 63];
        d[o++] = i + 1 < len ? abc[v >> 6 & 63] : '=';
        d[o++] = i + 2 < len ? abc[v & 63] : '=';
    }
    *out_len = o;
    return d;
}

/* A payload that is not valid UTF-8 reaches JSON with U+FFFD in place of its bad bytes:
 * its base64 beside it lets a dead letter be replayed byte for byte. */
static int set_payload_base64(struct sl_event *ev)
{
    size_t plen, blen;
    const char *payload = sl_event_payload(ev, &plen);
    if (!payload || sl__utf8_valid(payload, plen)) return 0;
    const char *b64 = base64(ev, payload, plen, &blen);
    if (!b64) return SL_ENOMEM;
    struct sl_value v = sl_value_string(b64, blen);
    return set_field(ev, "message_base64", 14, &v, SL__EVENT_HARD_FIELDS) ? SL_ENOMEM : 0;
}

int sl_event_set_error(struct sl_event *ev, const char *msg, size_t len)
{
    /* Dead letters may go past SL_EVENT_MAX_FIELDS: an event refused for having too many
     * fields must still carry its reason. */
    if (sl_event_field_count(ev) == 0) {
        size_t plen;
        const char *payload = sl_event_payload(ev, &plen);
        struct sl_value m = sl_value_string(payload ? payload : "", payload ? plen : 0);
        if (set_field(ev, "message", 7, &m, SL__EVENT_HARD_FIELDS)) return SL_ENOMEM;
    }
    if (set_payload_base64(ev)) return SL_ENOMEM;
    const char *copy = sl_event_strdup(ev, msg, len);
    if (!copy) return SL_ENOMEM;
    struct sl_value v = sl_value_string(copy, len);
    return set_field(ev, "error", 5, &v, SL__EVENT_HARD_FIELDS);
}

size_t sl_event_field_count(const struct sl_event *ev)
{
    return ev->nfields;
}

int sl_event_field_at(const struct sl_event *ev, size_t i, const char **name, size_t *name_len,
                      struct sl_value *value)
{
    if (i >= ev->nfields) return SL_ENOTFOUND;
    const struct sl__field *f = &ev->fields[i];
    if (name) *name = f->name;
    if (name_len) *name_len = f->name_len;
    if (value) *value = f->v;
    return 0;
}

void sl_event_clear_fields(struct sl_event *ev)
{
    if (ev->nfields) ev->flags |= SL__EV_FIELDS_CHANGED;
    ev->nfields = 0;
    ev->flags &= ~(uint32_t)(SL__EV_MAYBE_DUPS | SL__EV_LENS_MASK); /* no names */
    if (ev->fields_home != ev->batch) { /* never write into another batch's array */
        ev->fields = NULL;
        ev->fields_cap = 0;
    }
}

bool sl_event_fields_changed(const struct sl_event *ev)
{
    return (ev->flags & (SL__EV_PAYLOAD_PARSED | SL__EV_FIELDS_CHANGED)) != SL__EV_PAYLOAD_PARSED;
}

void sl_event_fields_changed_mark(struct sl_event *ev)
{
    ev->flags |= SL__EV_FIELDS_CHANGED | SL__EV_PAYLOAD_PARSED;
    /* Written from its fields from now on: each name once. Should memory fail here, the
     * flag stays and the JSON writer skips the hidden fields itself. */
    (void)drop_hidden(ev);
}

void sl_event_fields_synced(struct sl_event *ev)
{
    ev->flags &= ~(uint32_t)SL__EV_FIELDS_CHANGED;
    ev->flags |= SL__EV_PAYLOAD_PARSED;
    /* A parser appended the names without looking: when none repeats (as in almost every
     * log line), say so once here, and every lookup may stop at the first match. */
    uint8_t hidden[64];
    if ((ev->flags & SL__EV_MAYBE_DUPS) && ev->nfields <= sizeof hidden &&
        (!may_repeat_few(ev) || mark_hidden_few(ev, hidden) == 0))
        ev->flags &= ~(uint32_t)SL__EV_MAYBE_DUPS;
}

void sl_event_prune(struct sl_event *ev)
{
    ev->flags |= SL__EV_PRUNED;
}

bool sl_event_pruned(const struct sl_event *ev)
{
    return (ev->flags & SL__EV_PRUNED) != 0;
}

/* Splits "a.b[0]" after its first segment: the top-level name, then the rest. */
static size_t first_segment(const char *path, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (path[i] == '.' || path[i] == '[') return i;
    return len;
}

/* The rest of dotted path `path` (its first segment is `head` bytes) inside field i. */
static int nested_get(const struct sl_event *ev, uint32_t i, const char *path, size_t len,
                      size_t head, struct sl_value *out)
{
    const struct sl_value *v = &ev->fields[i].v;
    if (v->type != SL_JSON) return SL_ENOTFOUND;
    /* Field values of type SL_JSON come from a parser that checked them: no need to
     * validate the whole object again on every lookup. The common `a.b` goes straight to
     * the member. */
    const char *rest = path + head + 1;
    size_t n = len - head - 1;
    if (path[head] == '.' && n && first_segment(rest, n) == n) {
        const struct sl__nested *x = sl__nested_index(ev, v);
        return x ? sl__nested_get(x, rest, n, out) : sl__json_member(v->s, v->len, rest, n, out);
    }
    return sl__json_get(v->s, v->len, path + head, len - head, out, false);
}

/* The hint names the field of a dotted path's first segment: that field's name is the
 * segment, no field can be named the whole path, and no name repeats. */
static inline bool nested_hint_holds(const struct sl_event *ev, const char *path, size_t len,
                                     uint32_t h, size_t *head)
{
    uint32_t i = h & ~SL__HINT_NESTED;
    if (!(h & SL__HINT_NESTED) || i >= ev->nfields ||
        (ev->flags & (SL__EV_MAYBE_DUPS | sl__ev_len_bit(len))))
        return false;
    const struct sl__field *f = &ev->fields[i];
    *head = first_segment(path, len);
    return *head < len && f->name_len == *head && memcmp(f->name, path, *head) == 0;
}

/* sl__event_get_hinted when the hint missed (or names a first segment): the search, and
 * the hint moved. Out of line: the hinted path stays a few instructions. */
static __attribute__((noinline)) int get_searched(const struct sl_event *ev, const char *path,
                                                  size_t len, struct sl_value *out, uint32_t *hint,
                                                  uint32_t h)
{
    size_t head;
    if (nested_hint_holds(ev, path, len, h, &head))
        return nested_get(ev, h & ~SL__HINT_NESTED, path, len, head, out);
    /* A literal name wins, even one with dots: looked for unless no name has its length. */
    int i = ev->flags & sl__ev_len_bit(len) ? find_field(ev, path, len) : -1;
    if (i >= 0) {
        if ((uint32_t)i != h) __atomic_store_n(hint, (uint32_t)i, __ATOMIC_RELAXED);
        *out = ev->fields[i].v;
        return 0;
    }
    head = first_segment(path, len);
    if (head == len || head == 0) return SL_ENOTFOUND;
    i = find_field(ev, path, head);
    if (i < 0) return SL_ENOTFOUND;
    if (((uint32_t)i | SL__HINT_NESTED) != h)
        __atomic_store_n(hint, (uint32_t)i | SL__HINT_NESTED, __ATOMIC_RELAXED);
    return nested_get(ev, (uint32_t)i, path, len, head, out);
}

int sl__event_get_hinted(const struct sl_event *ev, const char *path, size_t len,
                         struct sl_value *out, uint32_t *hint)
{
    uint32_t h = __atomic_load_n(hint, __ATOMIC_RELAXED);
    if (h < ev->nfields && !(ev->flags & SL__EV_MAYBE_DUPS)) { /* where the last one had it */
        const struct sl__field *f = &ev->fields[h];
        if (f->name_len == len && memcmp(f->name, path, len) == 0) {
            *out = f->v;
            return 0;
        }
    }
    return get_searched(ev, path, len, out, hint, h);
}

int sl_event_get(const struct sl_event *ev, const char *path, size_t len, struct sl_value *out)
{
    uint32_t hint = UINT32_MAX;
    return get_searched(ev, path, len, out, &hint, hint);
}
