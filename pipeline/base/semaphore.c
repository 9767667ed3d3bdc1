/* A counting semaphore with a FIFO of waiters (sl_semaphore, declared in
 * <sluice/stage.h>): asyncio.Semaphore for the loop thread. A waiter is a callback, run
 * when a permit is handed to it; a release hands its permit straight to the oldest
 * waiter, so that a newcomer cannot overtake the queue. The waiters are a ring that
 * doubles when full. */
#include <stdlib.h>

#include <sluice/stage.h>

#include "base/internal.h"

struct waiter {
    void (*fn)(void *arg); /* runs with the permit */
    void *arg;             /* passed to fn */
};

struct sl_semaphore {
    unsigned free;       /* permits not held */
    struct waiter *ring; /* waiters, oldest at head */
    size_t head, n, cap; /* ring position, waiters, slots */
};

struct sl_semaphore *sl_semaphore_new(unsigned permits)
{
    if (permits == 0) return NULL;
    struct sl_semaphore *sem = calloc(1, sizeof *sem);
    if (sem) sem->free = permits;
    return sem;
}

void sl_semaphore_free(struct sl_semaphore *sem)
{
    if (!sem) return;
    free(sem->ring);
    free(sem);
}

/* Makes room for one more waiter, keeping the order. Returns 0 or -1. */
static int grow(struct sl_semaphore *sem)
{
    size_t cap = sem->cap ? sem->cap * 2 : 8;
    struct waiter *ring = malloc(cap * sizeof *ring);
    if (!ring) return -1;
    for (size_t i = 0; i < sem->n; i++) ring[i] = sem->ring[(sem->head + i) % sem->cap];
    free(sem->ring);
    sem->ring = ring;
    sem->head = 0;
    sem->cap = cap;
    return 0;
}

int sl_semaphore_acquire(struct sl_semaphore *sem, void (*fn)(void *arg), void *arg)
{
    if (sem->free > 0 && sem->n == 0) {
        sem->free--;
        fn(arg);
        return 0;
    }
    if (sem->n == sem->cap && grow(sem)) return SL_ENOMEM;
    sem->ring[(sem->head + sem->n) % sem->cap] = (struct waiter){fn, arg};
    sem->n++;
    return 0;
}

void sl_semaphore_release(struct sl_semaphore *sem)
{
    if (sem->n == 0) {
        sem->free++;
        return;
    }
    struct waiter w = sem->ring[sem->head]; /* the permit goes to it directly */
    sem->head = (sem->head + 1) % sem->cap;
    sem->n--;
    w.fn(w.arg);
}

unsigned sl_semaphore_available(const struct sl_semaphore *sem)
{
    return sem->free;
}

size_t sl_semaphore_waiting(const struct sl_semaphore *sem)
{
    return sem->n;
}
