/*
 * clock.c - goro's clocks: the public monotonic clock and the coarse clock
 * that parking goroutines use for their wait-start stamp (internal.h), and
 * goro__errno_location, which must live out of line in a file of its own
 * concern (here) so that no caller can fold it.
 */
#include "runtime/internal.h"

#include <time.h>

_Atomic int64_t goro__coarse_now;

int64_t goro__nanotime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t goro_now(void) { return goro__nanotime(); }

int64_t goro_deadline_after(int64_t timeout)
{
    int64_t now = goro__nanotime();
    if (timeout > 0 && now > INT64_MAX - timeout)
        return GORO_NO_DEADLINE;
    return now + timeout;
}

/* Out of line and in its own file on purpose: not const, so never cached
 * across a goroutine switch (internal.h). */
int *goro__errno_location(void) { return &errno; }
