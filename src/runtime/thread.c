/*
 * thread.c - runtime threads on goro-mapped stacks (see thread.h for why).
 * The stack holds glibc's thread descriptor and static TLS at its top, as
 * any pthread stack does; it is unmapped only after pthread_join returns,
 * when glibc no longer touches it.
 */
#include "runtime/thread.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#define GUARD 4096u

int goro__thread_start(goro__thread *t, size_t size, void *(*fn)(void *), void *arg)
{
    t->lo = t->hi = 0;
    size = (size + 4095) & ~(size_t)4095;
    char *m = mmap(NULL, size + GUARD, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED)
        return -errno;
    if (mprotect(m, GUARD, PROT_NONE) != 0) {
        int e = errno;
        munmap(m, size + GUARD);
        return -e;
    }
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc == 0) {
        rc = pthread_attr_setstack(&attr, m + GUARD, size);
        if (rc == 0)
            rc = pthread_create(&t->id, &attr, fn, arg);
        pthread_attr_destroy(&attr);
    }
    if (rc != 0) {
        munmap(m, size + GUARD);
        return -rc;
    }
    t->lo = (uintptr_t)m;
    t->hi = (uintptr_t)m + size + GUARD;
    return 0;
}

void goro__thread_join(goro__thread *t)
{
    pthread_join(t->id, NULL);
    if (t->lo)
        munmap((void *)t->lo, t->hi - t->lo);
    t->lo = t->hi = 0;
}
