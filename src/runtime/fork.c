/*
 * fork.c - fork() in a process running goro.
 *
 * The rule (include/goro.h "Fork"; the reasoning is in docs/fork.md): as
 * POSIX says for any multithreaded process, the child of a fork() made while
 * the runtime runs may only call async-signal-safe functions, in practice
 * exec or _exit. Go has the same rule (fork only as part of exec). The child
 * has one thread, the one that called fork, and a copy of every other
 * thread's half-done work: Ms, Ps and their queues, "a thread is polling"
 * (sched.poll_until), spinlocks and futex mutexes held by threads that do
 * not exist in it. Scheduling anything there can only hang.
 *
 * What goro does so that breaking the rule gives an error instead of a hang
 * in the common cases: a pthread_atfork child handler, registered by a
 * constructor (so before nearly any handler of the program's own), which,
 * when the runtime was active at the fork,
 *  - marks the process as a forked child: goro_run fails with -ECHILD there
 *    (checked by goro__stack_init, goro_run's first fallible step, so that
 *    goro_run keeps its one early -EBUSY check), in its children too;
 *  - makes the runtime look stopped and the calling thread no runtime thread
 *    (goro__sched_fork_child): goroutine-context calls (spawn, yield, sleep,
 *    blocking channel, select and sync calls) return -EPERM as on any other
 *    thread, goro_dump returns -ESRCH, counts read 0, and no scheduler
 *    thread is ever started in the child.
 * A fork while the runtime is not active changes nothing: the child may run
 * goro_run as usual.
 *
 * The prepare/parent/child handlers also hold the heap profiler's two locks
 * across the fork, so that malloc in the child (which glibc makes safe after
 * fork, beyond POSIX, and which goro's malloc interposition must not break,
 * whether or not the runtime runs) cannot find them held by a thread that
 * does not exist there.
 *
 * Not covered (the rule, documented): a non-blocking call in the child on an
 * object whose spinlock another thread held at the fork, or one that wakes a
 * goroutine while another thread held the scheduler lock, still deadlocks;
 * goro_net calls in the child act on the epoll instance the child shares
 * with the parent.
 */
#include "runtime/fork.h"

#include <pthread.h>

#include "prof/heapprof.h"
#include "runtime/sched.h"

static _Atomic bool forked_child;

bool goro__fork_in_child(void) { return atomic_load_explicit(&forked_child, memory_order_relaxed); }

static void fork_prepare(void) { goro__heapprof_fork_prepare(); }

static void fork_parent(void) { goro__heapprof_fork_parent(); }

static void fork_child(void)
{
    goro__heapprof_fork_child();
    /* Only this thread exists now; nothing can run concurrently. */
    if (goro__sched_fork_child())
        atomic_store_explicit(&forked_child, true, memory_order_relaxed);
}

/* A constructor rather than goro_run: handlers run in registration order in
 * the child (prepare handlers in reverse), so registering first puts ours
 * before the child handlers of nearly any other code, which then find the
 * runtime already inert. The object is linked in through goro__stack_init's
 * call to goro__fork_in_child. */
__attribute__((constructor)) static void fork_register(void)
{
    /* Fails only with ENOMEM, at start-up; forks then behave as without
     * these handlers rather than the program failing to start. */
    (void)pthread_atfork(fork_prepare, fork_parent, fork_child);
}
