/* The event model: arenas and the memory they count, events and their fields, batches
 * with their reference counts, parents and deferred acknowledgements, ack sets.
 *
 * Depends on base/ and json/ (a raw event's fields are looked up in its JSON payload).
 * It knows nothing of stages, queues or the scheduler: a batch reports the two moments
 * the runtime cares about (a source batch is delivered; a sink acknowledged a batch)
 * through the hooks of its struct sl__batch_home, which the runtime installs. */
#ifndef SLUICE_PIPELINE_EVENT_INTERNAL_H
#define SLUICE_PIPELINE_EVENT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/event.h>
#include <sluice/stage.h>

#include "base/internal.h"
#include "json/internal.h"

/* ---- memory accounting ------------------------------------------------------------------ */

/* Bytes of batch memory (arena chunks, event arrays) in use, and the most ever. */
struct sl__memstat {
    atomic_int_fast64_t cur;  /* now */
    atomic_int_fast64_t peak; /* maximum of cur */
};

/* Adds `delta` (may be negative) to `mem`, raising its peak. Any thread. */
void sl__mem_count(struct sl__memstat *mem, int64_t delta);

/* ---- arena: bump allocation in chunks, freed all at once --------------------------------- */

struct sl__chunk {
    struct sl__chunk *next; /* older chunk */
    size_t size;            /* usable bytes in data */
    size_t used;            /* bytes handed out */
    char data[];            /* the memory, 16-aligned by malloc */
};

/* A chunk of the arena's shared part, where any thread may allocate at once. */
struct sl__shared_chunk {
    struct sl__shared_chunk *next; /* older chunk */
    atomic_size_t used;            /* bytes handed out (may pass size: then it is full) */
    size_t size;                   /* usable bytes in data */
    _Alignas(16) char data[];      /* the memory */
};

struct sl__arena {
    struct sl__chunk *head;  /* chunk being filled; NULL before the first allocation */
    size_t total;            /* sum of chunk sizes, for pooling decisions */
    struct sl__memstat *mem; /* where chunk bytes are counted, or NULL */
    /* Memory that readers of a batch add to it (indexes built by lookups), allocated
     * by any number of threads at once; freed with the rest. */
    _Atomic(struct sl__shared_chunk *) shared;
};

/* Allocates from the thread that owns the arena's batch (8-aligned). */
void *sl__arena_alloc(struct sl__arena *a, size_t size);
/* Allocates 8-aligned memory from any thread, while the batch is alive (a lookup in a
 * batch two branches read at once): lock-free bump allocation in shared chunks. */
void *sl__arena_alloc_shared(struct sl__arena *a, size_t size);
/* Keeps at most `keep` bytes of chunks for reuse, emptied; frees the rest, and every
 * shared chunk. The batch's owner only, with no reader left. */
void sl__arena_reset(struct sl__arena *a, size_t keep);
void sl__arena_free(struct sl__arena *a);

/* ---- events and fields --------------------------------------------------------------- */

struct sl__field {
    const char *name;  /* not NUL-terminated */
    uint32_t name_len; /* bytes of name */
    struct sl_value v; /* the value; spans live in a batch arena or the payload */
};

/* The index of a nested object's members (see event/nested.c). */
struct sl__nested;

/* Every field array starts after this head, in the arena of `owner`. The array is shared
 * by the events copied from its event until one changes a field (copy on write), and may
 * be read by several threads at once: what lookups add to it (the indexes of nested
 * objects) is published with atomics and allocated in the owner's shared arena. */
struct sl__fields_head {
    struct sl_batch *owner;              /* whose arena holds the array */
    _Atomic(struct sl__nested *) nested; /* indexes built of objects its values hold */
};

static inline struct sl__fields_head *sl__fields_head(const struct sl__field *fields)
{
    return (struct sl__fields_head *)(uintptr_t)fields - 1;
}

/* The index of the object that `v` (a value of a field of `ev`, of type SL_JSON) holds:
 * one built by an earlier lookup of any event sharing the field array, or built now (at
 * the first lookup inside that object), or NULL when there is none (not an object, one
 * of more than SL__NESTED_MAX members, out of memory: the caller reads the text).
 * Any thread. */
#define SL__NESTED_MAX 64
const struct sl__nested *sl__nested_index(const struct sl_event *ev, const struct sl_value *v);
/* Member `name` (raw bytes, as a path segment) of the indexed object: of a repeated name,
 * the last one. The value is the one sl__json_member gives. 0 or SL_ENOTFOUND. */
int sl__nested_get(const struct sl__nested *x, const char *name, size_t len, struct sl_value *out);
/* How many indexes (the "not indexable" marks included) the field array of `ev` has. */
size_t sl__nested_count(const struct sl_event *ev);

/* The sync state of an event's fields with its payload (see sl_event_fields_changed()):
 * in sync when PARSED is set and CHANGED is not. */
enum {
    SL__EV_FIELDS_CHANGED = 1u << 0, /* a field was set, removed or renamed since the parse */
    SL__EV_PAYLOAD_PARSED = 1u << 1, /* the fields hold the payload's content (a parser or a
                                        serializer said so); unset: a raw record */
    SL__EV_MAYBE_DUPS = 1u << 2,     /* sl_event_add_field appended without looking: a name
                                        may be repeated, lookups take the last match */
    SL__EV_PRUNED = 1u << 3,         /* sl_event_prune: the next filter drops it unasked */
};

/* Bits SL__EV_LENS_SHIFT and up say which lengths (modulo 16) the names of the event's
 * fields have had: set when a name is added or renamed (a mask and an or, on the parser's
 * path), never cleared while the event has fields, so a clear bit proves that no field has
 * a name of that length. A lookup of `http.status` skips its search for a field literally
 * named so when none can be. */
#define SL__EV_LENS_SHIFT 8
#define SL__EV_LENS_MASK  (0xffffu << SL__EV_LENS_SHIFT)
static inline uint32_t sl__ev_len_bit(size_t len)
{
    return 1u << (SL__EV_LENS_SHIFT + (uint32_t)(len & 15));
}

struct sl_event {
    const char *payload;          /* record bytes */
    const char *key;              /* optional key, NULL when none */
    const char *origin;           /* file path / topic, NULL when none */
    const char *host;             /* host the event was read on, NULL when unknown */
    struct sl__field *fields;     /* field index, nfields used of fields_cap */
    struct sl_batch *batch;       /* batch whose arena this event allocates from */
    struct sl_batch *fields_home; /* batch whose arena holds `fields`; copy on write if
                                     it is not `batch` */
    int64_t time;                 /* ns since the epoch, 0 = unknown */
    uint64_t offset;              /* source offset */
    uint32_t payload_len;         /* bytes of payload */
    uint32_t key_len;             /* bytes of key */
    int32_t partition;            /* Kafka partition, -1 = none */
    uint32_t nfields;             /* fields in use (at most SL__EVENT_HARD_FIELDS) */
    uint32_t fields_cap;          /* fields allocated */
    uint32_t flags;               /* SL__EV_* */
};

/* 32-bit counts cost nothing: they take what was the padding after `flags`. An event is
 * copied for every transform, so its size is watched. */
_Static_assert(sizeof(void *) != 8 || sizeof(struct sl_event) == 96,
               "struct sl_event grew: it is copied per event per stage");

/* The most fields an event can hold: SL_EVENT_MAX_FIELDS set by stages, plus the fields
 * sl_event_set_error adds to make a dead letter ("message", "message_base64", "error"),
 * so that an event at the limit can still be dead-lettered. */
#define SL__EVENT_HARD_FIELDS (SL_EVENT_MAX_FIELDS + 3)

void sl__event_init(struct sl_event *ev, struct sl_batch *b);

/* A field is hidden when a later field has the same name: of a repeated name, the last
 * field is the one that counts (as jq, Python and JavaScript read a JSON object). Sets
 * hidden[i] (ev->nfields bytes) to 1 for each hidden field, 0 for the others, and returns
 * how many are hidden. Allocates a temporary table for many fields; compares the names
 * that may repeat pair by pair when that fails. */
uint32_t sl__event_mark_hidden(const struct sl_event *ev, uint8_t *hidden);

/* sl_event_get, trying first the field at *hint (borrowed; where the name was found last:
 * the members of log lines come in the same order), which it updates when it finds the
 * name elsewhere. *hint is read and written with relaxed atomics: one hint may serve
 * lookups on several threads (an expression evaluated by the workers), and any value of
 * it gives the same answer. UINT32_MAX: no hint. A dotted path that is not a field's name
 * keeps in the hint the field of its first segment, marked SL__HINT_NESTED. */
#define SL__HINT_NESTED 0x80000000u
int sl__event_get_hinted(const struct sl_event *ev, const char *path, size_t len,
                         struct sl_value *out, uint32_t *hint);

/* ---- where batches live ------------------------------------------------------------------ */

/* The home of a pipeline's batches: their pool, their counters, their limits, and the
 * hooks through which they tell the runtime what happened to them. The runtime embeds
 * one in its pipeline and fills the hooks; nothing here calls the runtime otherwise. */
struct sl__batch_home {
    pthread_mutex_t pool_lock;      /* guards the pool (workers take batches) */
    struct sl_batch *pool;          /* free batches */
    uint32_t pool_count;            /* batches in pool */
    atomic_uint_fast64_t live;      /* batches alive (not in the pool) */
    atomic_uint_fast64_t peak_live; /* maximum of live */
    struct sl__memstat mem;         /* bytes of batch memory (arenas, event arrays) */
    uint32_t max_events;            /* a batch is full at this many events ... */
    uint64_t max_bytes;             /* ... or payload bytes (sl_batch_full) */
    bool aborted;                   /* the run was aborted: nothing is acknowledged any more
                                       (source batches stay with their source, unreleased) */
    /* A source batch is delivered: every batch derived from it was released and no
     * deferred acknowledgement holds it. b->completed is set. Loop thread. */
    void (*completed)(struct sl_batch *b);
    /* Sink `sink` acknowledged `b` (its batch or a view of it) with sl_ack(), before the
     * batch is released. Loop thread. */
    void (*acked)(struct sl_stage *sink, struct sl_batch *b);
};

/* Prepares `h` (zeroed by the caller) with these limits; hooks are the caller's to set. */
void sl__batch_home_init(struct sl__batch_home *h, uint32_t max_events, uint64_t max_bytes);
/* Frees the pooled batches and the lock. */
void sl__batch_home_free(struct sl__batch_home *h);

/* ---- batches ------------------------------------------------------------------------- */

#define SL__INLINE_PARENTS 2

struct sl_batch {
    struct sl__batch_home *home;                  /* pool, counters, hooks */
    struct sl_event *events;                      /* n used of cap (malloc'd; aliased by views) */
    uint32_t n, cap;                              /* events in use / allocated */
    uint64_t bytes;                               /* sum of payload_len */
    struct sl__arena arena;                       /* memory for payloads and fields */
    int refs;                                     /* references; loop thread only */
    uint32_t nparents;                            /* batches this one depends on */
    uint32_t parents_cap;                         /* allocated slots in more_parents */
    struct sl_batch *parents[SL__INLINE_PARENTS]; /* first parents */
    struct sl_batch **more_parents;               /* the rest */
    struct sl_stage *source;  /* the source that produced it; NULL for derived batches */
    struct sl_stage *sink;    /* the sink holding it, for sl_ack() */
    struct sl_batch *view_of; /* a view aliases this batch's events (sinks) */
    struct sl_batch *next;    /* source in-flight list, or the pool */
    uint64_t seq;             /* source batches: production order */
    uint64_t cookie;          /* source-private */
    bool completed;           /* source batch: delivered, awaiting in-order ack */
    bool released;            /* source batch: no references left, memory freed, but
                                 `holds` keep its acknowledgement back */
    uint32_t holds;           /* source batch: deferred acks (ack sets, batches' acks) */
    uint32_t nacks, acks_cap; /* entries in acks / allocated */
    struct sl_batch **acks;   /* source batches whose acks this batch holds back */
};

struct sl_batch *sl__batch_get(struct sl__batch_home *h); /* from the pool; any thread */
/* Makes room for `n` events. Returns 0 or SL_ENOMEM. Any thread owning `b`. */
int sl__batch_reserve(struct sl_batch *b, uint32_t n);
int sl__batch_add_parent(struct sl_batch *b, struct sl_batch *parent); /* refs parent */
void sl__batch_release(struct sl_batch *b); /* drop one ref (loop thread) */
/* A view of `b` for `sink`: the same events, acknowledged on its own. */
struct sl_batch *sl__batch_view(struct sl_batch *b, struct sl_stage *sink);
/* Returns a source batch that will never be acknowledged (a run torn down after an
 * abort) to the pool. */
void sl__batch_recycle(struct sl_batch *b);

/* ---- deferred acknowledgements ------------------------------------------------------------ */

void sl__ack_drop(struct sl_batch *src);                          /* one deferred ack goes */
int sl__batch_hold_ack(struct sl_batch *b, struct sl_batch *src); /* b holds src's ack */
int sl__ack_set_copy_to(const struct sl_ack_set *set, struct sl_batch *out);
int sl__ack_set_move(struct sl_ack_set *to, struct sl_ack_set *from); /* from ends empty */
void sl__ack_set_clear(struct sl_ack_set *set); /* drops every hold of the set */
size_t sl__ack_set_count(const struct sl_ack_set *set);

#endif
