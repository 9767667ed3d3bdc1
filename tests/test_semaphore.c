/* sl_semaphore: permits are taken at once while free, waiters run in the order they
 * asked when a release hands its permit over, and a newcomer does not overtake them. */
#include <criterion/criterion.h>

#include <sluice/stage.h>

struct log {
    int order[16]; /* which callbacks ran, in order */
    int n;         /* entries */
};

static struct log ran;

static void note(void *arg)
{
    ran.order[ran.n++] = (int)(intptr_t)arg;
}

Test(semaphore, fifo_handover)
{
    ran.n = 0;
    struct sl_semaphore *sem = sl_semaphore_new(2);
    cr_assert(sem);
    cr_assert_eq(sl_semaphore_acquire(sem, note, (void *)1), 0);
    cr_assert_eq(sl_semaphore_acquire(sem, note, (void *)2), 0);
    cr_assert_eq(ran.n, 2); /* both ran inside acquire */
    cr_assert_eq(sl_semaphore_available(sem), 0);
    cr_assert_eq(sl_semaphore_acquire(sem, note, (void *)3), 0);
    cr_assert_eq(sl_semaphore_acquire(sem, note, (void *)4), 0);
    cr_assert_eq(ran.n, 2);
    cr_assert_eq(sl_semaphore_waiting(sem), 2);
    sl_semaphore_release(sem); /* 3 gets the permit */
    cr_assert_eq(ran.n, 3);
    cr_assert_eq(ran.order[2], 3);
    cr_assert_eq(sl_semaphore_available(sem), 0);
    sl_semaphore_release(sem); /* 4 gets it */
    cr_assert_eq(ran.n, 4);
    cr_assert_eq(ran.order[3], 4);
    sl_semaphore_release(sem); /* nobody waits: the permits come back */
    sl_semaphore_release(sem);
    cr_assert_eq(sl_semaphore_available(sem), 2);
    cr_assert_eq(sl_semaphore_waiting(sem), 0);
    sl_semaphore_free(sem);
}

Test(semaphore, many_waiters_keep_their_order)
{
    ran.n = 0;
    struct sl_semaphore *sem = sl_semaphore_new(1);
    cr_assert_eq(sl_semaphore_acquire(sem, note, (void *)0), 0);
    for (intptr_t i = 1; i <= 5; i++) cr_assert_eq(sl_semaphore_acquire(sem, note, (void *)i), 0);
    for (int i = 0; i < 3; i++) sl_semaphore_release(sem); /* 1, 2, 3 ran: the ring's head moved */
    /* 2 waiting + 7 more: the ring (8 slots) grows while it wraps around its end */
    for (intptr_t i = 6; i <= 12; i++) cr_assert_eq(sl_semaphore_acquire(sem, note, (void *)i), 0);
    cr_assert_eq(sl_semaphore_waiting(sem), 9);
    for (int i = 0; i < 9; i++) sl_semaphore_release(sem);
    cr_assert_eq(ran.n, 13);
    for (int i = 0; i < 13; i++) cr_assert_eq(ran.order[i], i);
    cr_assert_eq(sl_semaphore_available(sem), 0); /* 12 still holds the one permit */
    sl_semaphore_release(sem);
    cr_assert_eq(sl_semaphore_available(sem), 1);
    cr_assert_null(sl_semaphore_new(0));
    sl_semaphore_free(sem);
    sl_semaphore_free(NULL);
}
