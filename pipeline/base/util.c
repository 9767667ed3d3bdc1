/* Small helpers shared by every layer: string copies, "did you mean" suggestions, the
 * monotonic clock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/internal.h"

char *sl__strdup(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

unsigned sl__edit_distance(const char *a, const char *b, unsigned max)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return max + 1;
    unsigned row[64];
    for (size_t j = 0; j <= lb; j++) row[j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        unsigned diag = row[0], best = row[0] = (unsigned)i;
        for (size_t j = 1; j <= lb; j++) {
            unsigned up = row[j];
            unsigned cost = a[i - 1] == b[j - 1] ? 0 : 1;
            unsigned v = diag + cost;
            if (up + 1 < v) v = up + 1;
            if (row[j - 1] + 1 < v) v = row[j - 1] + 1;
            row[j] = v;
            diag = up;
            if (v < best) best = v;
        }
        if (best > max) return max + 1; /* no cell can come back under the cap */
    }
    return row[lb] > max ? max + 1 : row[lb];
}

const char *sl__nearest(const char *name, const char *const *candidates, size_t n)
{
    size_t len = strlen(name);
    unsigned limit = len < 3 ? 1 : (unsigned)(len / 3 + 1);
    const char *best = NULL;
    unsigned best_d = limit + 1;
    for (size_t i = 0; i < n; i++) {
        if (!candidates[i]) continue;
        unsigned d = sl__edit_distance(name, candidates[i], limit);
        if (d < best_d) best_d = d, best = candidates[i];
    }
    return best;
}

int64_t sl__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
