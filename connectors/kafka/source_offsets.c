/* The `kafka` source's offsets: what may be committed.
 *
 * Each batch the source emits is an entry of a ring of batches in flight, holding, per
 * partition it has messages of, the highest offset and the partition's assignment epoch.
 * The runtime calls ack() in production order, and within a partition the batches hold
 * increasing offsets, so when a batch is acknowledged every earlier message of its
 * partitions is too: the partition's commit position becomes its highest offset + 1,
 * never past a message still in flight. A range of an older assignment (the partition
 * was revoked and assigned again meanwhile, or is no longer ours) is not committed.
 *
 * Commits are asynchronous (rd_kafka_commit_queue, results on the loop through the offset
 * commit callback), every commit_interval, of the partitions that moved; a revocation
 * commits its partitions before releasing them (source_group.c); the last one, at a
 * clean stop, is source_end.c's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source.h"

/* ---- partitions ------------------------------------------------------------------------ */

struct sl__kpart *sl__ksrc_part(struct sl__ksrc *s, const char *topic, int32_t partition, bool add)
{
    struct sl__kpart *c = s->last_part;
    if (c && c->partition == partition && strcmp(c->topic, topic) == 0) return c;
    for (size_t i = 0; i < s->nparts; i++) {
        c = s->parts[i];
        if (c->partition == partition && strcmp(c->topic, topic) == 0) return s->last_part = c;
    }
    if (!add) return NULL;
    if (s->nparts == s->parts_cap) {
        size_t cap = s->parts_cap ? 2 * s->parts_cap : 16;
        struct sl__kpart **np = realloc(s->parts, cap * sizeof *np);
        if (!np) return NULL;
        s->parts = np;
        s->parts_cap = cap;
    }
    if (!(c = calloc(1, sizeof *c)) || !(c->topic = strdup(topic))) {
        free(c);
        return NULL;
    }
    c->partition = partition;
    c->acked = c->committed = -1;
    s->parts[s->nparts++] = c;
    return s->last_part = c;
}

/* ---- batches in flight ------------------------------------------------------------------- */

int sl__ksrc_note(struct sl__ksrc *s, struct sl__kpart *p, int64_t offset)
{
    if (p->mark == s->next_seq + 1) {
        s->cur_ranges[p->range].last = offset;
        return 0;
    }
    if (s->cur_n == s->cur_cap) {
        size_t cap = s->cur_cap ? 2 * s->cur_cap : 8;
        struct sl__krange *nr = realloc(s->cur_ranges, cap * sizeof *nr);
        if (!nr) return SL_ENOMEM;
        s->cur_ranges = nr;
        s->cur_cap = cap;
    }
    p->mark = s->next_seq + 1;
    p->range = s->cur_n;
    s->cur_ranges[s->cur_n++] = (struct sl__krange){.part = p, .epoch = p->epoch, .last = offset};
    return 0;
}

int sl__ksrc_track(struct sl__ksrc *s, struct sl_batch *b)
{
    if (s->fl_count == s->fl_cap) {
        size_t cap = s->fl_cap ? s->fl_cap * 2 : 16;
        struct sl__kflight *nf = malloc(cap * sizeof *nf);
        if (!nf) return SL_ENOMEM;
        for (size_t i = 0; i < s->fl_count; i++) nf[i] = s->flights[(s->fl_head + i) % s->fl_cap];
        free(s->flights);
        s->flights = nf;
        s->fl_cap = cap;
        s->fl_head = 0;
    }
    struct sl__krange *ranges = malloc((s->cur_n ? s->cur_n : 1) * sizeof *ranges);
    if (!ranges) return SL_ENOMEM;
    memcpy(ranges, s->cur_ranges, s->cur_n * sizeof *ranges);
    for (size_t i = 0; i < s->cur_n; i++) ranges[i].part->inflight++;
    uint64_t seq = s->next_seq++;
    s->flights[(s->fl_head + s->fl_count++) % s->fl_cap] =
        (struct sl__kflight){.seq = seq, .ranges = ranges, .n = s->cur_n};
    s->cur_n = 0;
    sl_batch_set_cookie(b, seq);
    return 0;
}

/* Batch `f` is acknowledged: its partitions' positions move. */
static void acked(struct sl__ksrc *s, const struct sl__kflight *f)
{
    for (size_t i = 0; i < f->n; i++) {
        const struct sl__krange *r = &f->ranges[i];
        struct sl__kpart *p = r->part;
        p->inflight--;
        if (!p->owned || r->epoch != p->epoch)
            s->stale_acks++;
        else if (r->last + 1 > p->acked)
            p->acked = r->last + 1;
    }
}

void sl__ksrc_ack(struct sl_stage *stage, struct sl_batch *b)
{
    struct sl__ksrc *s = sl_stage_state(stage);
    uint64_t seq = sl_batch_cookie(b);
    while (s->fl_count) {
        struct sl__kflight *f = &s->flights[s->fl_head];
        if (f->seq > seq) break;
        acked(s, f);
        free(f->ranges);
        s->fl_head = (s->fl_head + 1) % s->fl_cap;
        s->fl_count--;
    }
    if (s->revoked) sl__ksrc_check_revoke(s);
    if (s->ended && !s->fl_count && !s->revoked) sl__ksrc_finish(s);
}

/* ---- commits ------------------------------------------------------------------------------ */

/* Whether `p` is in `list` (NULL: every partition is). */
static bool listed(const rd_kafka_topic_partition_list_t *list, const struct sl__kpart *p)
{
    return !list || rd_kafka_topic_partition_list_find(list, p->topic, p->partition);
}

/* The owned partitions of `only` whose position moved since their last commit (owned,
 * NULL when none or out of memory); marks them as committed. */
static rd_kafka_topic_partition_list_t *moved(struct sl__ksrc *s,
                                              const rd_kafka_topic_partition_list_t *only)
{
    rd_kafka_topic_partition_list_t *list = NULL;
    for (size_t i = 0; i < s->nparts; i++) {
        struct sl__kpart *p = s->parts[i];
        if (!p->owned || p->acked < 0 || p->acked == p->committed || !listed(only, p)) continue;
        if (!list && !(list = rd_kafka_topic_partition_list_new(8))) return NULL;
        rd_kafka_topic_partition_list_add(list, p->topic, p->partition)->offset = p->acked;
        p->committed = p->acked;
    }
    return list;
}

int sl__ksrc_commit(struct sl__ksrc *s, const rd_kafka_topic_partition_list_t *only, void *opaque)
{
    rd_kafka_topic_partition_list_t *list = moved(s, only);
    if (!list) return 0;
    int n = list->cnt;
    rd_kafka_resp_err_t err = rd_kafka_commit_queue(s->rk, list, s->q, sl__ksrc_commit_cb, opaque);
    if (err) { /* not sent: the next one sends these again */
        sl_stage_log(s->stage, SL_LOG_WARN, "cannot commit offsets: %s", rd_kafka_err2str(err));
        for (int i = 0; i < list->cnt; i++) {
            struct sl__kpart *p =
                sl__ksrc_part(s, list->elems[i].topic, list->elems[i].partition, false);
            if (p) p->committed = -1;
        }
        n = 0;
    }
    s->commits += n > 0;
    sl_counter_add(s->m_commits, n > 0);
    rd_kafka_topic_partition_list_destroy(list);
    return n;
}

void sl__ksrc_on_commit_timer(struct sl_stage *stage, void *arg)
{
    (void)stage;
    struct sl__ksrc *s = arg;
    if (!s->finishing) sl__ksrc_commit(s, NULL, NULL);
}

void sl__ksrc_offsets_free(struct sl__ksrc *s)
{
    for (size_t i = 0; i < s->fl_count; i++) free(s->flights[(s->fl_head + i) % s->fl_cap].ranges);
    free(s->flights);
    for (size_t i = 0; i < s->nparts; i++) {
        free(s->parts[i]->topic);
        free(s->parts[i]);
    }
    free(s->parts);
    free(s->cur_ranges);
    if (s->revoked) rd_kafka_topic_partition_list_destroy(s->revoked);
}
