/* Retries: the backoff's delays, and a sink that answers SL_RETRY, driven by the runtime
 * (the same batch offered again, before any other, counted once; backpressure meanwhile;
 * a limit on the attempts). */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "helpers.h"
#include "runtime/internal.h"

/* ---- the backoff ----------------------------------------------------------------------- */

/* Draws `n` delays for attempt `k` (from a backoff rewound to it each time) and checks
 * each lies in [0, ceiling]; returns how many distinct values came out. */
static int draws_within(struct sl_backoff *b, uint32_t k, int64_t ceiling, int n)
{
    int64_t first = -1;
    int distinct = 0;
    for (int i = 0; i < n; i++) {
        b->attempt = k;
        int64_t d = sl_backoff_next(b);
        cr_assert(d >= 0 && d <= ceiling, "attempt %u: %lld ms outside [0, %lld]", k, (long long)d,
                  (long long)ceiling);
        cr_assert_eq(b->attempt, k + 1, "a draw counts one attempt");
        if (i == 0) first = d;
        if (d != first) distinct = 2;
    }
    return distinct ? distinct : 1;
}

Test(backoff, each_attempt_draws_up_to_a_doubling_ceiling_capped_at_max)
{
    struct sl_backoff b;
    sl_backoff_init(&b, 10, 1000);
    cr_assert_eq(b.attempt, 0);
    const int64_t ceilings[] = {10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000};
    for (uint32_t k = 0; k < 10; k++)
        cr_assert_eq(draws_within(&b, k, ceilings[k], 1000), 2,
                     "attempt %u: 1000 draws, all equal (no jitter)", k);
}

Test(backoff, the_ceiling_reaches_max_and_stays_there_without_overflow)
{
    struct sl_backoff b;
    sl_backoff_init(&b, 100, 30000);
    int64_t most = 0;
    for (int i = 0; i < 200; i++) { /* 2^200 * 100 would overflow any integer */
        int64_t d = sl_backoff_next(&b);
        cr_assert(d >= 0 && d <= 30000, "draw %d: %lld ms", i, (long long)d);
        if (d > most) most = d;
    }
    cr_assert_eq(b.attempt, 200);
    cr_assert_gt(most, 15000, "200 draws capped at 30 s never passed 15 s: %lld", (long long)most);
    draws_within(&b, UINT32_MAX - 1, 30000, 100); /* the largest attempt numbers too */
    sl_backoff_init(&b, INT64_MAX / 2, INT64_MAX);
    draws_within(&b, 40, INT64_MAX, 100);
}

Test(backoff, reset_goes_back_to_the_first_ceiling)
{
    struct sl_backoff b;
    sl_backoff_init(&b, 4, 4096);
    for (int i = 0; i < 12; i++) sl_backoff_next(&b);
    cr_assert_eq(b.attempt, 12);
    sl_backoff_reset(&b);
    cr_assert_eq(b.attempt, 0);
    for (int i = 0; i < 1000; i++) {
        cr_assert_leq(sl_backoff_next(&b), 4);
        sl_backoff_reset(&b);
    }
}

Test(backoff, bounds_out_of_order_are_made_sane)
{
    struct sl_backoff b;
    sl_backoff_init(&b, 0, 0); /* at least 1 ms, and max never under initial */
    cr_assert_eq(b.initial_ms, 1);
    cr_assert_eq(b.max_ms, 1);
    sl_backoff_init(&b, 50, 10);
    cr_assert_eq(b.max_ms, 50);
    cr_assert_eq(draws_within(&b, 3, 50, 1000), 2);
}

Test(backoff, two_backoffs_made_together_draw_differently)
{
    struct sl_backoff a, b;
    sl_backoff_init(&a, 1000, 1000);
    sl_backoff_init(&b, 1000, 1000);
    int same = 0;
    for (int i = 0; i < 100; i++) same += sl_backoff_next(&a) == sl_backoff_next(&b);
    cr_assert_lt(same, 10, "%d of 100 draws equal: the two share their jitter", same);
}
