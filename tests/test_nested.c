/* The index of nested objects: built at the first lookup inside an object, it answers as
 * the walk of the object's text does, is built once per object, follows the field's
 * value when that changes, and is safe when two threads look up in one batch. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "event/internal.h"
#include "helpers.h"
#include "runtime/internal.h"

static struct sl_batch *b; /* where the events go */

static void setup(void)
{
    t_fx_setup();
    b = t_fx.b;
}

TestSuite(nested, .init = setup, .fini = t_fx_teardown, .timeout = 30);

/* Indexes built on the field array of `ev`. */
static int indexes(const struct sl_event *ev)
{
    return (int)sl__nested_count(ev);
}

/* An event whose second field "h" holds `json` (as parse_json leaves an object). */
static struct sl_event *event_with(const char *json)
{
    struct sl_event *ev = sl_batch_append(b);
    struct sl_value one = sl_value_int(1), v = sl_value_json(json, strlen(json));
    cr_assert_eq(sl_event_add_field(ev, "ts", 2, &one), 0);
    cr_assert_eq(sl_event_add_field(ev, "h", 1, &v), 0);
    sl_event_fields_synced(ev);
    return ev;
}

/* sl_event_get(ev, "h.<name>") gives what sl__json_member gives on the text, to the byte. */
static void assert_as_the_walk(const struct sl_event *ev, const char *json, const char *name)
{
    char path[80];
    int n = snprintf(path, sizeof path, "h.%s", name);
    struct sl_value got = {0}, want = {0};
    int rc = sl_event_get(ev, path, (size_t)n, &got);
    int want_rc = sl__json_member(json, strlen(json), name, strlen(name), &want);
    cr_assert_eq(rc, want_rc, "%s in %s", path, json);
    if (rc) return;
    cr_assert_eq(got.type, want.type, "%s in %s", path, json);
    cr_assert_eq(got.flags, want.flags, "%s in %s", path, json);
    cr_assert_eq(got.len, want.len, "%s in %s", path, json);
    cr_assert_eq(got.s, want.s, "%s in %s: the same bytes of the text", path, json);
    if (got.type == SL_BOOL) cr_assert_eq(got.b, want.b, "%s in %s", path, json);
}

Test(nested, a_lookup_in_the_index_answers_as_the_walk_of_the_text)
{
    static const char *objects[] = {
        "{\"status\":503,\"path\":\"/api/v1/login\"}",
        "{}",
        "{ \"status\" : 200 , \"path\" : \"/\" }",
        "{\"status\":1,\"status\":2,\"path\":\"a\",\"status\":3}",
        "{\"st\\u0061tus\":404,\"p\\\"q\":\"x\",\"path\":\"caf\\u00e9\"}",
        "{\"a\":true,\"b\":false,\"c\":null,\"d\":-1.5e3,\"e\":[1,{\"x\":2}],\"f\":{\"g\":{}}}",
        "{\"msg\":\"a \\\"quoted\\\" word\",\"long_name_of_a_member_past_the_window\":"
        "\"and a long value that does not fit in a 32-byte window\"}",
        "{\"status\":\"\",\"\":0,\"path\":\"\\u0000\"}",
        "[{\"status\":1}]",
    };
    static const char *names[] = {"status",
                                  "path",
                                  "a",
                                  "b",
                                  "c",
                                  "d",
                                  "e",
                                  "f",
                                  "msg",
                                  "p\"q",
                                  "x",
                                  "stat",
                                  "long_name_of_a_member_past_the_window"};
    for (size_t i = 0; i < sizeof objects / sizeof objects[0]; i++) {
        struct sl_event *ev = event_with(objects[i]);
        for (int round = 0; round < 2; round++) /* building the index, then using it */
            for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
                assert_as_the_walk(ev, objects[i], names[k]);
        cr_assert_eq(indexes(ev), 1, "one index for %s, however many lookups", objects[i]);
    }
}

Test(nested, an_escaped_name_is_found_by_its_decoded_bytes)
{
    struct sl_event *ev = event_with("{\"st\\u0061tus\":404,\"\\u00e9t\\u00e9\":1}");
    struct sl_value v;
    cr_assert_eq(sl_event_get(ev, "h.status", 8, &v), 0);
    cr_assert_eq(v.len, 3);
    cr_assert(memcmp(v.s, "404", 3) == 0);
    cr_assert_eq(sl_event_get(ev, "h.\xc3\xa9t\xc3\xa9", 7, &v), 0);
    cr_assert(memcmp(v.s, "1", 1) == 0);
    cr_assert_eq(sl_event_get(ev, "h.st\\u0061tus", 13, &v), SL_ENOTFOUND,
                 "a path names decoded bytes, not escapes");
}

Test(nested, each_object_of_an_event_gets_its_own_index)
{
    struct sl_event *ev = event_with("{\"status\":503}");
    const char *k8s = "{\"pod\":\"web-1\",\"ns\":\"prod\"}";
    struct sl_value v = sl_value_json(k8s, strlen(k8s));
    cr_assert_eq(sl_event_set(ev, "k8s", 3, &v), 0);
    struct sl_value got;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(sl_event_get(ev, "h.status", 8, &got), 0);
        cr_assert_eq(sl_event_get(ev, "k8s.ns", 6, &got), 0);
        cr_assert_eq(got.len, 4);
        cr_assert(memcmp(got.s, "prod", 4) == 0);
    }
    cr_assert_eq(indexes(ev), 2);
}

Test(nested, a_field_set_to_another_object_is_read_from_its_new_text)
{
    struct sl_event *ev = event_with("{\"status\":503,\"path\":\"/a\"}");
    struct sl_value got;
    cr_assert_eq(sl_event_get(ev, "h.status", 8, &got), 0);
    cr_assert(memcmp(got.s, "503", 3) == 0);
    const char *other = "{\"path\":\"/b\",\"status\":200}";
    struct sl_value v = sl_value_json(other, strlen(other));
    cr_assert_eq(sl_event_set(ev, "h", 1, &v), 0);
    cr_assert_eq(sl_event_get(ev, "h.status", 8, &got), 0);
    cr_assert_eq(got.s, other + 22, "read in the new object, not from the old index");
    cr_assert_eq(sl_event_remove(ev, "ts", 2), 0); /* "h" moves to field 0 */
    cr_assert_eq(sl_event_get(ev, "h.path", 6, &got), 0);
    cr_assert_eq(got.s, other + 9);
    struct sl_value n = sl_value_int(5);
    cr_assert_eq(sl_event_set(ev, "h", 1, &n), 0);
    cr_assert_eq(sl_event_get(ev, "h.status", 8, &got), SL_ENOTFOUND, "h is no object now");
}

Test(nested, an_object_of_more_members_than_an_index_holds_is_read_from_its_text)
{
    static char json[8192];
    size_t o = 0;
    json[o++] = '{';
    for (int i = 0; i < SL__NESTED_MAX + 36; i++)
        o += (size_t)snprintf(json + o, sizeof json - o, "%s\"m%d\":%d", i ? "," : "", i % 90, i);
    json[o++] = '}';
    json[o] = '\0';
    struct sl_event *ev = event_with(json);
    for (int round = 0; round < 3; round++) {
        assert_as_the_walk(ev, json, "m5");  /* repeated: the last one, 95 */
        assert_as_the_walk(ev, json, "m89"); /* once */
        assert_as_the_walk(ev, json, "m90"); /* missing */
    }
    struct sl_value got;
    cr_assert_eq(sl_event_get(ev, "h.m5", 4, &got), 0);
    cr_assert_eq(got.len, 2);
    cr_assert(memcmp(got.s, "95", 2) == 0);
    cr_assert_eq(indexes(ev), 1, "one entry saying: read the text, not a walk per lookup");
}

struct reader {
    struct sl_batch *b;
    int errors;
};

/* Looks up two members of every event's object, checking each against the text's walk
 * (no criterion asserts off the main thread: counted instead). */
static void *read_all(void *arg)
{
    struct reader *r = arg;
    for (uint32_t i = 0; i < r->b->n; i++) {
        const struct sl_event *ev = &r->b->events[i];
        struct sl_value h, got, want;
        if (sl_event_get(ev, "h", 1, &h)) {
            r->errors++;
            continue;
        }
        static const char *names[] = {"status", "path"};
        for (int k = 0; k < 2; k++) {
            char path[16];
            int n = snprintf(path, sizeof path, "h.%s", names[k]);
            if (sl_event_get(ev, path, (size_t)n, &got) ||
                sl__json_member(h.s, h.len, names[k], strlen(names[k]), &want) || got.s != want.s ||
                got.len != want.len || got.type != want.type)
                r->errors++;
        }
    }
    return NULL;
}

Test(nested, two_threads_looking_up_in_one_batch_build_indexes_safely)
{
    enum { EVENTS = 3000 };
    for (int i = 0; i < EVENTS; i++) {
        char text[80];
        int n = snprintf(text, sizeof text, "{\"status\":%d,\"path\":\"/p/%d\"}", 200 + i % 400, i);
        char *json = sl_event_alloc(sl_batch_append(b), (size_t)n); /* lives with the batch */
        memcpy(json, text, (size_t)n);
        struct sl_event *ev = &b->events[b->n - 1];
        struct sl_value v = sl_value_json(json, (size_t)n);
        cr_assert_eq(sl_event_add_field(ev, "h", 1, &v), 0);
        sl_event_fields_synced(ev);
    }
    for (int round = 0; round < 4; round++) {
        struct reader r[2] = {{.b = b}, {.b = b}};
        pthread_t t[2];
        for (int k = 0; k < 2; k++) cr_assert_eq(pthread_create(&t[k], NULL, read_all, &r[k]), 0);
        for (int k = 0; k < 2; k++) pthread_join(t[k], NULL);
        cr_assert_eq(r[0].errors + r[1].errors, 0, "round %d", round);
    }
    for (uint32_t i = 0; i < b->n; i++) {
        int n = indexes(&b->events[i]);
        cr_assert(n == 1 || n == 2, "event %u: %d indexes (two only when both threads raced)", i,
                  n);
    }
}
