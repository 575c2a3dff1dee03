/*
 * thread.h - the runtime's own OS threads (Ms, sysmon) on stacks goro maps.
 *
 * glibc keeps the stacks of exited threads in a cache and hands them to
 * later threads without clearing them; a stack it allocated is also
 * indistinguishable, in /proc/self/maps, from any other anonymous mapping.
 * The leak scan must neither read a runtime thread's stale frames as roots
 * (an earlier runtime's pointers alias this one's blocks: malloc reuses
 * addresses) nor miss user memory. So runtime threads get their stacks from
 * goro: mapped here (guard page at the bottom), known by address while the
 * thread lives, unmapped after it is joined, never in glibc's cache.
 */
#ifndef GORO_THREAD_H
#define GORO_THREAD_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct goro__thread {
    pthread_t id;
    uintptr_t lo, hi; /* the mapping, guard page included; 0 when none */
} goro__thread;

/* Start fn(arg) on a new thread with a stack of `size` bytes mapped here.
 * 0 or a negative errno (nothing left mapped then). */
int goro__thread_start(goro__thread *t, size_t size, void *(*fn)(void *), void *arg);

/* Join the thread and unmap its stack. */
void goro__thread_join(goro__thread *t);

#endif
