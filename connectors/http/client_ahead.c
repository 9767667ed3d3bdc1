/* Page numbers read ahead: with `pagination: {param: page}` the next pages are known
 * before the current one comes back, so up to `max_in_flight` of them are asked for at
 * once, from the position on. Answers come back in any order and wait (their bodies in
 * their slots) until the pages before them are decoded: the events leave in page order,
 * and the position and the checkpoint move as with one page at a time.
 *
 * The first page without records (or one that fails for good) ends the read there:
 * nothing past it is asked for, and the answers of pages past it, already here or still
 * coming, are dropped (a generation number tells them apart from the next read's, after
 * `interval`). So a read may ask for up to max_in_flight - 1 pages past the end. Read
 * ahead is bounded: a slot holds its answer until its turn, and no page further than
 * max_in_flight from the position is asked for. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "client.h"
#include "uri.h"

/* The page number of the position. */
static int64_t position_page(const struct sl__hcli *c)
{
    return c->at.pos ? strtoll(c->at.pos, NULL, 10) : c->page_start;
}

/* No more pages in this read: the answers held are let go. */
static void end_read(struct sl__hcli *c)
{
    c->gen++;
    c->stop_page = INT64_MIN;
    for (size_t i = 0; i < c->nslots; i++)
        if (c->slots[i].held || c->slots[i].failed) sl__hcli_slot_release(&c->slots[i]);
}

void sl__hcli_pages_begin(struct sl__hcli *c)
{
    if (c->paging == HCLI_PAGE) {
        end_read(c);
        c->issue_page = position_page(c);
        c->stop_page = INT64_MAX;
    }
    c->phase = HCLI_IDLE;
    sl_stage_wake(c->stage);
}

enum sl_poll sl__hcli_ahead_poll(struct sl__hcli *c)
{
    int64_t until = position_page(c) + (int64_t)c->nslots;
    struct sl__hcli_slot *slot;
    while (c->issue_page < c->stop_page && c->issue_page < until &&
           (slot = sl__hcli_free_slot(c))) {
        char num[32];
        snprintf(num, sizeof num, "%lld", (long long)c->issue_page);
        slot->page = c->issue_page++;
        slot->gen = c->gen;
        if (sl__hcli_fetch(slot, sl__http_uri_with_param(c->uri, c->paging_param, num), 0)) {
            sl_stage_error(c->stage, SL_ENOMEM, "out of memory");
            return SL_ERROR;
        }
    }
    return SL_PENDING;
}

/* The slot holding the answer of the position's page, or NULL. */
static struct sl__hcli_slot *turn(struct sl__hcli *c)
{
    int64_t page = position_page(c);
    for (size_t i = 0; i < c->nslots; i++) {
        struct sl__hcli_slot *s = &c->slots[i];
        if ((s->held || s->failed) && s->gen == c->gen && s->page == page) return s;
    }
    return NULL;
}

/* Decodes the answers whose turn has come, in page order. */
static void drain(struct sl__hcli *c)
{
    struct sl__hcli_slot *s;
    while (c->phase == HCLI_IDLE && (s = turn(c))) {
        if (s->failed) {
            sl__hcli_page_fail(c, s->url, s->fail_status, s->fail_why);
            sl__hcli_slot_release(s);
            end_read(c);
            return;
        }
        size_t len = evbuffer_get_length(s->held);
        const char *body = len ? (const char *)evbuffer_pullup(s->held, -1) : "";
        bool has_next = false;
        int rc = sl__hcli_page_decode(c, s->url, NULL, body ? body : "", len, &has_next);
        sl__hcli_slot_release(s);
        sl__hcli_page_end(c, rc, has_next);
        if (rc || !has_next) {
            end_read(c);
            return;
        }
    }
}

void sl__hcli_ahead_done(struct sl__hcli_slot *slot, struct evhttp_request *req)
{
    struct sl__hcli *c = slot->c;
    if (slot->gen != c->gen) { /* a page past the end of an earlier read */
        sl__hcli_slot_release(slot);
        sl_stage_wake(c->stage);
        return;
    }
    if (!(slot->held = evbuffer_new()) ||
        evbuffer_add_buffer(slot->held, evhttp_request_get_input_buffer(req))) {
        sl__hcli_slot_release(slot);
        sl_stage_error(c->stage, SL_ENOMEM, "out of memory");
        sl_stage_wake(c->stage);
        return;
    }
    drain(c);
    sl_stage_wake(c->stage); /* a slot may be free for the next page */
}

void sl__hcli_ahead_failed(struct sl__hcli_slot *slot, int status, const char *why)
{
    struct sl__hcli *c = slot->c;
    if (slot->gen != c->gen) {
        sl__hcli_slot_release(slot);
        sl_stage_wake(c->stage);
        return;
    }
    slot->failed = true;
    slot->fail_status = status;
    snprintf(slot->fail_why, sizeof slot->fail_why, "%s", why);
    drain(c);
    sl_stage_wake(c->stage);
}
