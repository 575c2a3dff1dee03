/*
 * goro.h - Go-style concurrency for C, with goroutine-leak diagnosis built in.
 *
 * This is the only public header of goro. Everything here carries the goro_
 * prefix; anything named goro__ elsewhere is internal and may change. It
 * compiles as C (C11 and later) and as C++ (C++11 and later), where the
 * declarations have C linkage and goro_go/goro_go_named use an inline
 * helper instead of a compound literal.
 *
 * Conventions (they hold for every call unless its comment says otherwise):
 *  - Fallible calls return 0 (or a non-negative result) on success and a
 *    negative errno value on failure. They never abort on bad input: where
 *    Go would panic (send on a closed channel, close of a closed channel,
 *    unlock of an unlocked mutex, negative WaitGroup counter), goro returns
 *    an error code.
 *  - Times are int64_t nanoseconds. Deadlines are absolute times on the
 *    goro_now() clock (CLOCK_MONOTONIC); GORO_NO_DEADLINE means "wait
 *    forever". A deadline already in the past makes a blocking call behave
 *    like its non-blocking variant (it returns -ETIMEDOUT instead of
 *    -EAGAIN when it would have blocked).
 *  - Calls that may block ("blocking calls") must be made from a goroutine;
 *    from any other thread they return -EPERM. Non-blocking calls (the try
 *    variants, close, unlock, cancel, WaitGroup add/done, Cond
 *    signal/broadcast, len/cap) may be made from any thread.
 *  - Goroutines are multiplexed over several OS threads and may move from
 *    one thread to another at any blocking call, yield or sleep. Thread-local
 *    variables (including errno) are therefore per thread, not per goroutine:
 *    read errno right after the call that set it.
 *  - The floating-point environment (rounding mode, exception masks) is
 *    thread state too: goroutines start with the default one, and a goroutine
 *    that changes it must restore it before any blocking call, yield or
 *    sleep (goro does not switch it, as Go does not).
 *  - Goroutine stacks have a fixed size (goro_options.stack_size, default
 *    64 KiB; GORO_STACK_SIZE overrides). An overflow is reported
 *    ("goroutine N (created at FILE:LINE) overflowed its stack") and the
 *    process exits with status 2. That is guaranteed for stacks with a guard
 *    page, not for canary-only ones: see "Stack overflow" below.
 *
 * Build your own code with -fno-omit-frame-pointer so that creation stacks,
 * goroutine dumps and profiles can see through your frames, and with
 * -fstack-clash-protection so that no large frame can jump a stack's guard
 * page.
 */
#ifndef GORO_H
#define GORO_H

#include <errno.h> /* the error codes goro returns (negated) */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h> /* ssize_t */

/* Alignment of the opaque sync objects, in C and in C++. */
#ifdef __cplusplus
#define GORO__ALIGNAS(n) alignas(n)
#else
#define GORO__ALIGNAS(n) _Alignas(n)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------- */
/* Time                                                                       */
/* ------------------------------------------------------------------------- */

#define GORO_NANOSECOND  ((int64_t)1)
#define GORO_MICROSECOND ((int64_t)1000)
#define GORO_MILLISECOND ((int64_t)1000000)
#define GORO_SECOND      ((int64_t)1000000000)

/* A deadline that never expires. */
#define GORO_NO_DEADLINE INT64_MAX

/* Current time of goro's clock (CLOCK_MONOTONIC) in nanoseconds. Usable from
 * any thread, with or without a running runtime. */
int64_t goro_now(void);

/* goro_now() + timeout, saturating at GORO_NO_DEADLINE (a negative timeout
 * gives a deadline in the past). */
int64_t goro_deadline_after(int64_t timeout);

/* ------------------------------------------------------------------------- */
/* Runtime and goroutines                                                     */
/* ------------------------------------------------------------------------- */

/* The function a goroutine runs. */
typedef void (*goro_fn)(void *arg);

/* Flags for goro_options.flags. */
#define GORO_NO_DEADLOCK_CHECK 0x1u /* never report "all goroutines are asleep" */

/* Options for goro_run. A zeroed struct (or NULL) means "defaults". */
typedef struct goro_options {
    /* Number of processors (Ps): how many goroutines run in parallel.
     * 0 = the GORO_PROCS environment variable if set, else the number of
     * CPUs available to the process. At most 256. */
    int procs;
    /* Stack size of every goroutine in bytes, rounded up to a power of two
     * between 16 KiB and 8 MiB. 0 = GORO_STACK_SIZE if set, else 64 KiB.
     * Only touched pages cost memory. */
    size_t stack_size;
    /* GORO_* flags above. */
    unsigned flags;
    /* Report a goroutine that runs this long without reaching a scheduling
     * point (a blocking call, yield or sleep), once per occurrence, on
     * stderr. 0 = GORO_LONGRUN_MS if set, else 1 second; negative = never. */
    int64_t longrun_report_ns;
} goro_options;

/* Start the runtime, run main_fn(arg) as goroutine 1 and return when it
 * returns. The calling thread becomes one of the runtime's OS threads.
 *
 * When main_fn returns, goroutines that are still blocked or runnable are
 * discarded without running further (as when a Go program's main returns);
 * goro_run waits for goroutines that are running on other threads to reach
 * a scheduling point, then frees every runtime resource and returns 0. The
 * runtime may be started again afterwards.
 *
 * If every goroutine becomes blocked on goro primitives with no timer
 * pending (a global deadlock), the process prints "fatal error: all
 * goroutines are asleep - deadlock!" and a dump of all goroutines to stderr
 * and exits with status 2 (disable with GORO_NO_DEADLOCK_CHECK). This is
 * reported only while no thread other than the runtime's own exists in the
 * process: see "Threads that are not goroutines" below.
 *
 * Object lifetimes around goro_run:
 *  - channels, mutexes, rwmutexes, waitgroups, once and cond objects are
 *    plain memory: they may be created before goro_run and used after it
 *    returns. Outside the runtime only the calls that do not block work
 *    (try-variants, close, unlock, signal, waitgroup add/done, ...);
 *    blocking calls return -EPERM.
 *  - contexts may be created before goro_run and released after it
 *    returns; a deadline set before goro_run starts counting at once and
 *    fires in the next goro_run (goro_ctx_err reports -ETIMEDOUT once the
 *    deadline has passed even with no runtime running).
 *  - goroutines still blocked or runnable when main_fn returns are
 *    discarded: they leave the wait queues of the objects above (a channel
 *    whose last reference only such a goroutine kept alive is freed then),
 *    and their stacks are freed. Nothing they point to is freed by goro.
 *  - connections, listeners, HTTP servers and debug endpoints belong to one
 *    run: close them before main_fn returns.
 *
 * Threads that are not goroutines: a thread goro did not create may call
 * every non-blocking function (goro_chan_trysend/tryrecv/close,
 * goro_waitgroup_add/done, goro_mutex_unlock, goro_cond_signal,
 * goro_ctx_cancel, ...) at any time while the runtime runs, to wake
 * goroutines; blocking calls return -EPERM there (use a goroutine, or
 * goro_blocking from a goroutine for foreign blocking work). Because such a
 * thread may wake a goroutine at any moment, the deadlock report above is
 * suppressed while one exists (the runtime compares the process's thread
 * count with its own threads); the goroutines then simply stay blocked.
 *
 * SIGQUIT prints a dump of all goroutines to stderr and exits with status 2,
 * like Go; set GORO_SIGQUIT=dump to print the dump and keep running.
 *
 * Errors: -EINVAL main_fn is NULL or an option is out of range; -EBUSY the
 * runtime is already running in this process; -ENOMEM or another errno if
 * threads or memory could not be set up. */
int goro_run(goro_fn main_fn, void *arg, const goro_options *opts);

/*
 * Fork. While the runtime runs, the process is multithreaded, and as POSIX
 * says for any such process, the child of a fork() may only call
 * async-signal-safe functions until it calls exec or _exit: goro supports
 * fork only followed by exec, like Go. posix_spawn, and fork followed at
 * once by execve (or _exit) in the child, work from goroutines, goro_blocking
 * functions and other threads; wait for the child in a goroutine with
 * waitpid(WNOHANG) and goro_sleep, or inside goro_blocking.
 * In such a child the runtime is not running and the thread that forked is
 * no runtime thread, whatever it was in the parent: goro_run returns
 * -ECHILD (also in the child's own children); goroutine-context calls
 * (goro_spawn, goro_yield, goro_sleep, blocking channel, select and sync
 * calls) return -EPERM; goro_dump returns -ESRCH; goro_id,
 * goro_num_goroutines and goro_procs return 0; no goroutine runs. This turns
 * the common mistakes into errors, but the rule stands: a non-blocking call
 * on an object whose lock another thread held at the fork can still
 * deadlock the child, network calls there act on the epoll instance it
 * shares with the parent, and returning from the function that called fork
 * (a goroutine's or goro_blocking's) is undefined. A child forked while the
 * runtime is not running (before goro_run, or after it returned) may run
 * goro_run as usual. Details: docs/fork.md.
 */

/*
 * Stack overflow. Stacks do not grow. The usable part is stack_size minus
 * one page and the goroutine record (61,120 bytes of 64 KiB). What an
 * overflow does depends on the stack:
 *  - With a guard page, the overflow faults before it writes anything
 *    outside its own stack. goro prints "goroutine N (created at FILE:LINE
 *    in F) overflowed its stack of B bytes" and "fatal error: stack
 *    overflow" to stderr and exits with status 2. This holds for every
 *    frame, alloca and VLA, provided the code is built with
 *    -fstack-clash-protection (goro is) and goro's SIGSEGV handler is in
 *    place (see "Signals").
 *  - Which stacks have one: all of them on Linux 6.13+ (MADV_GUARD_INSTALL).
 *    On older kernels each guard costs two memory mappings, so only
 *    (3/4 * vm.max_map_count - mappings in use) / 2 stacks get one: about
 *    24,500 with the default max_map_count (65530), i.e. that many
 *    goroutines alive at once. Further stacks have only a canary word at
 *    their low end, and goro says so once on stderr.
 *  - On a canary-only stack, an overflow that overwrites the canary is
 *    reported in the same way (with a note) at the goroutine's next switch
 *    (blocking call, yield, sleep or return), or earlier if it faults. An
 *    overflow that skips the canary (a large array written only at its low
 *    end), or whose goroutine never switches again, is NOT detected. One
 *    that goes more than 4 KiB past the stack overwrites another
 *    goroutine's record and frames before it is reported, and that
 *    goroutine may misbehave or crash first. Silent corruption is possible.
 *  - GORO_STACK_GUARD=strict gives every stack a guard page. When no guard
 *    can be installed for a new stack, the process stops with a fatal error
 *    ("cannot allocate a stack"; abort) instead of using a canary-only
 *    stack. goro_spawn does not fail early: a goroutine gets its stack when
 *    it first runs. There is no goro_options field for this.
 * GORO_STACK_GUARD also takes mprotect, canary and max=N (for testing); a
 * malformed value makes goro_run return -EINVAL. Details and measurements
 * are in docs/stacks.md.
 */

/*
 * Signals. goro handles, blocks or sends only these (docs/signals.md):
 *  - SIGSEGV, SIGBUS: handler installed by goro_run, and the previous
 *    disposition restored when it returns. A stack overflow is reported as
 *    above and exits 2 (the previous handler is not called). Any other fault
 *    prints "goro: fatal signal in goroutine N ..." and is chained to the
 *    handler installed before goro_run. That handler is called from goro's,
 *    on goro's signal stack, without its own sa_mask/flags. If there was
 *    none (SIG_DFL or SIG_IGN), the default action applies. A handler
 *    installed while goro_run runs replaces goro's (no overflow reports) and
 *    is overwritten when goro_run returns. No option disables this. Each
 *    runtime thread has its own 64 KiB sigaltstack. The thread calling
 *    goro_run loses any it had: it is disabled, not restored, on return.
 *  - SIGQUIT: handler installed by goro_run and restored on return. It
 *    dumps all goroutines and exits 2 (GORO_SIGQUIT=dump: dump and keep
 *    running). Runtime threads block it except sysmon (goro_run blocks it in
 *    its caller for the duration). No option leaves SIGQUIT alone. A handler
 *    the program installs after goro_run started takes over until return.
 *  - SIGPROF: handler installed at the first CPU profile
 *    (goro_write_cpu_profile, /debug/pprof/profile) and never removed.
 *    Per-thread CPU-time timers send it only while a profile runs. While
 *    installed, SIGPROF from other sources never reaches another handler.
 *    No option.
 *  - SIGRTMIN+5: handler installed at the first reachability scan
 *    (goro_leak_scan, the goroutineleak profile, or the watchdog's
 *    confirmation of a suspect) and never removed; not installed (the scan
 *    fails with -EBUSY) when the program has a handler of its own for it.
 *    It is sent to goro's threads and to the program's threads that are
 *    running and do not block it, to stop the world; threads blocked in a
 *    system call or blocking it are left alone (no EINTR). The number is
 *    fixed. GORO_WATCHDOG_CONFIRM=0 (or goro_watchdog_opts.no_confirm)
 *    keeps the watchdog from ever scanning.
 *  - SIGPIPE: no handler. A goro_conn write to a non-socket fd blocks it on
 *    its thread for that write and discards the SIGPIPE the write raised
 *    (-EPIPE instead). Sockets use MSG_NOSIGNAL.
 * Runtime threads start with the signal mask of goro_run's caller (plus
 * SIGQUIT blocked): block signals before goro_run, and never change the
 * mask from a goroutine (it belongs to whichever thread runs it).
 */

/* Options for goro_spawn. Every field may be zero. */
typedef struct goro_spawn_opts {
    /* Optional name shown in dumps and profiles (copied; at most
     * GORO_NAME_MAX - 1 bytes). */
    const char *name;
    /* Creation site; goro_go() fills these from __FILE__, __LINE__ and
     * __func__. Strings must be static (they are kept, not copied). When
     * absent, the site is found from the caller's return address when a
     * dump is written. */
    const char *file;
    int line;
    const char *func;
} goro_spawn_opts;

#define GORO_NAME_MAX 32

/* Start a new goroutine running fn(arg). The goroutine records its parent,
 * the creation site and a short creation stack (for dumps, profiles and leak
 * reports). It starts running at some later point, on any thread; spawn
 * never waits for it. Goroutines spawned by one goroutine are queued in
 * spawn order (Go runs the newest one next; neither order is a guarantee
 * across processors). If id is not NULL the new goroutine's id is stored
 * there. Ownership of arg passes to the goroutine as far as goro is
 * concerned (goro never touches it).
 *
 * Errors: -EINVAL fn is NULL; -ENAMETOOLONG name has GORO_NAME_MAX bytes or
 * more; -EPERM not called from a goroutine; -ENOMEM out of memory. */
int goro_spawn(goro_fn fn, void *arg, const goro_spawn_opts *opts, uint64_t *id);

/* goro_spawn with the creation site filled in: the usual way to start a
 * goroutine. Evaluates to goro_spawn's result. */
#ifndef __cplusplus
#define goro_go(fn, arg)                                                       \
    goro_spawn((fn), (arg),                                                    \
               &(const goro_spawn_opts){                                       \
                   .file = __FILE__, .line = __LINE__, .func = __func__},      \
               NULL)

/* goro_go with a name. */
#define goro_go_named(fn, arg, nm)                                             \
    goro_spawn((fn), (arg),                                                    \
               &(const goro_spawn_opts){.name = (nm),                          \
                                        .file = __FILE__,                      \
                                        .line = __LINE__,                      \
                                        .func = __func__},                     \
               NULL)
#else
/* C++ has no compound literals: the same through an inline helper (its
 * frame, if not inlined, is goro's and skipped in creation chains). */
static inline int goro__go_cxx(goro_fn fn, void *arg, const char *name, const char *file,
                               int line, const char *func)
{
    goro_spawn_opts o = goro_spawn_opts();
    o.name = name;
    o.file = file;
    o.line = line;
    o.func = func;
    return goro_spawn(fn, arg, &o, NULL);
}
#define goro_go(fn, arg) goro__go_cxx((fn), (arg), NULL, __FILE__, __LINE__, __func__)
#define goro_go_named(fn, arg, nm) goro__go_cxx((fn), (arg), (nm), __FILE__, __LINE__, __func__)
#endif

/* Id of the calling goroutine (main is 1), or 0 when not called from a
 * goroutine. Ids are never reused within one goro_run. */
uint64_t goro_id(void);

/* Let other runnable goroutines run; the caller stays runnable.
 * Errors: -EPERM not called from a goroutine. */
int goro_yield(void);

/* Block the calling goroutine for at least ns nanoseconds (wait reason
 * "sleep"); ns <= 0 just yields. Errors: -EPERM not in a goroutine. */
int goro_sleep(int64_t ns);

/* Block until goro_now() >= deadline. Errors: -EPERM not in a goroutine. */
int goro_sleep_until(int64_t deadline);

/* End the calling goroutine now, as if its function had returned (like Go's
 * runtime.Goexit). Ending goroutine 1 ends goro_run. Does nothing and
 * returns when called outside a goroutine. goro's own calls in progress on
 * the goroutine finish first: a goro_once_do whose function calls
 * goro_exit counts as done, and its other callers return. Nothing else on
 * the stack is unwound (no cleanup of the caller's own resources). */
void goro_exit(void);

/* Number of goroutines that exist now (running, runnable or blocked), 0 when
 * the runtime is not running. */
size_t goro_num_goroutines(void);

/* Number of processors the running runtime uses, 0 when not running. */
int goro_procs(void);

/* Write every goroutine to fd in the shape of Go's crash dump (the
 * goroutine?debug=2 profile): a header line with id, state or wait reason
 * and wait time, the stack (function, file:line), and "created by" with the
 * parent and creation stack. The calling goroutine comes first. Nothing is
 * stopped while writing and the output is never truncated; a goroutine that
 * is running on another thread is shown without its stack.
 * Errors: -ESRCH runtime not running; -errno from write(2). */
int goro_dump(int fd);

/* ------------------------------------------------------------------------- */
/* Channels                                                                   */
/* ------------------------------------------------------------------------- */

/*
 * A channel carries fixed-size elements (copied in and out with memcpy).
 * Capacity 0 makes it unbuffered: a send completes only when a receiver
 * takes the element (rendezvous). Elements are delivered in FIFO order.
 *
 * Lifetime: channels are reference counted. goro_chan_make returns a channel
 * holding one reference, owned by the caller. Whoever passes a channel to
 * another goroutine should take a reference for it (goro_chan_retain) that
 * the receiver drops with goro_chan_release when done. A goroutine blocked on
 * a channel (in send, receive or select, with or without a deadline) keeps
 * it alive until its call has returned, so dropping every other reference -
 * also by the goroutine that wakes it - can never free a channel under a
 * blocked goroutine. The channel is freed when the last reference is dropped;
 * elements still buffered then are discarded (they are bytes; goro does not
 * know whether they point to anything). Using a channel through a reference
 * you have already released is undefined behaviour, as with any freed
 * object.
 *
 * Closing is separate from releasing: close means "no more values". After
 * close, receives drain the buffer and then return at once with *ok = false
 * and a zeroed element; sends fail with -EPIPE.
 */
typedef struct goro_chan goro_chan;

/* Largest element size and capacity goro_chan_make accepts. */
#define GORO_CHAN_MAX_ELEM 65535u
#define GORO_CHAN_MAX_CAP (1u << 30)

/* Create a channel of elements of elem_size bytes (0 is allowed: a channel
 * of signals) with room for cap buffered elements (0 = unbuffered), and
 * store it in *out with one reference owned by the caller.
 * Errors: -EINVAL out is NULL, elem_size > GORO_CHAN_MAX_ELEM or
 * cap > GORO_CHAN_MAX_CAP (a negative size converted to size_t is caught
 * here); -ENOMEM. */
int goro_chan_make(goro_chan **out, size_t elem_size, size_t cap);

/* Take another reference to ch; returns ch. NULL is ignored. */
goro_chan *goro_chan_retain(goro_chan *ch);

/* Drop a reference; the last one frees the channel. NULL is ignored. */
void goro_chan_release(goro_chan *ch);

/* Send the element at elem (elem_size bytes are copied; elem may be NULL
 * only if elem_size is 0). Blocks until a receiver takes it or buffer space
 * is free (wait reason "chan send").
 * Errors: -EINVAL ch is NULL (or elem NULL with elem_size > 0); -EPIPE the
 * channel is closed (also when it is closed while the sender waits; the
 * element was not sent); -EPERM would block outside a goroutine. */
int goro_chan_send(goro_chan *ch, const void *elem);

/* goro_chan_send that gives up at deadline with -ETIMEDOUT. */
int goro_chan_send_until(goro_chan *ch, const void *elem, int64_t deadline);

/* goro_chan_send that never blocks: -EAGAIN if it would have blocked. */
int goro_chan_trysend(goro_chan *ch, const void *elem);

/* Receive an element into elem (may be NULL to discard it). Blocks until a
 * value is available or the channel is closed (wait reason "chan receive").
 * On success returns 0 and sets *ok (if ok is not NULL) to true when a value
 * was received, false when the channel is closed and drained (elem is then
 * zeroed).
 * Errors: -EINVAL ch is NULL; -EPERM would block outside a goroutine. */
int goro_chan_recv(goro_chan *ch, void *elem, bool *ok);

/* goro_chan_recv that gives up at deadline with -ETIMEDOUT. */
int goro_chan_recv_until(goro_chan *ch, void *elem, bool *ok, int64_t deadline);

/* goro_chan_recv that never blocks: -EAGAIN if nothing is available and the
 * channel is open. */
int goro_chan_tryrecv(goro_chan *ch, void *elem, bool *ok);

/* Close the channel: wakes every blocked receiver (with *ok = false) and
 * every blocked sender (with -EPIPE). Errors: -EINVAL ch is NULL;
 * -EALREADY already closed. */
int goro_chan_close(goro_chan *ch);

/* Number of buffered elements, capacity, element size (0 for NULL). */
size_t goro_chan_len(const goro_chan *ch);
size_t goro_chan_cap(const goro_chan *ch);
size_t goro_chan_elem_size(const goro_chan *ch);

/* ------------------------------------------------------------------------- */
/* Select                                                                     */
/* ------------------------------------------------------------------------- */

enum goro_select_op {
    GORO_SELECT_RECV = 1, /* receive from ch into elem (elem may be NULL) */
    GORO_SELECT_SEND = 2, /* send the element at elem on ch */
};

/* One case of a select. ok is an output written only for the chosen case:
 * true when a value was transferred; false when the case found its channel
 * closed (for a receive: closed and drained, elem zeroed; for a send:
 * nothing was sent - where Go would panic, goro reports it). */
typedef struct goro_select_case {
    goro_chan *ch;
    int op; /* enum goro_select_op */
    void *elem;
    bool ok;
} goro_select_case;

/* Flags for goro_select. */
#define GORO_SELECT_NONBLOCK 0x1u /* a "default" case: never block */

/* Wait until one of the n cases can proceed, perform it and return its
 * index. When several are ready, one is chosen uniformly at random. A send
 * case on a closed channel counts as ready (it completes with ok = false).
 * With GORO_SELECT_NONBLOCK, returns -EAGAIN at once if no case is ready.
 * Otherwise blocks (wait reason "select"; "select (no cases)" when n is 0)
 * until a case proceeds or the deadline passes (-ETIMEDOUT).
 * n == 0 without flags and without deadline blocks forever, like Go's
 * select {}.
 * A case whose channel is NULL is never ready (Go's nil-channel idiom for
 * switching a case off); a select whose cases all have NULL channels
 * behaves like n == 0: -EAGAIN with GORO_SELECT_NONBLOCK, -ETIMEDOUT at the
 * deadline, else it blocks forever (it counts as blocked for the deadlock
 * report and the leak checks). Several cases on one channel are served in
 * random order, as in Go. (Plain send/receive on a NULL channel return
 * -EINVAL rather than blocking forever.)
 * Errors: -EINVAL cases NULL with n > 0, an unknown op, or a send case
 * with NULL elem and a nonzero element size (on a non-NULL channel);
 * -E2BIG n > 65536; -ENOMEM; -EPERM would block outside a goroutine. */
int goro_select(goro_select_case *cases, size_t n, unsigned flags, int64_t deadline);

/* ------------------------------------------------------------------------- */
/* Cancellation contexts (Go's context.Context)                               */
/* ------------------------------------------------------------------------- */

/*
 * A context carries a cancellation signal and an optional deadline down a
 * tree: cancelling a context cancels all of its descendants. Contexts are
 * reference counted: the with_* constructors return one reference owned by
 * the caller; goro_ctx_release drops it and the last release cancels the
 * context (if still live), detaches it from its parent and frees it. Give a
 * goroutine its own reference (goro_ctx_retain) if it may outlive yours.
 * A child holds a reference to its parent.
 */
typedef struct goro_ctx goro_ctx;

/* The root context: never cancelled, no deadline. Static; retain and
 * release are no-ops on it. */
goro_ctx *goro_ctx_background(void);

/* New cancellable child of parent (NULL means background).
 * Errors: -EINVAL out is NULL; -ENOMEM. If parent is already cancelled the
 * child starts cancelled with the parent's error. */
int goro_ctx_with_cancel(goro_ctx *parent, goro_ctx **out);

/* New child that is cancelled with -ETIMEDOUT at deadline (or earlier if the
 * parent's deadline is earlier or the parent is cancelled). */
int goro_ctx_with_deadline(goro_ctx *parent, int64_t deadline, goro_ctx **out);

/* goro_ctx_with_deadline(parent, goro_deadline_after(timeout), out). */
int goro_ctx_with_timeout(goro_ctx *parent, int64_t timeout, goro_ctx **out);

/* Cancel ctx and all its descendants with -ECANCELED; no-op if it is
 * already cancelled or is the background context. */
void goro_ctx_cancel(goro_ctx *ctx);

/* A channel that is closed when ctx is cancelled: receive on it (usually as
 * a select case) to wait for cancellation. Borrowed: valid while you hold
 * your reference to ctx (retain it to keep it longer). Never closed for the
 * background context. */
goro_chan *goro_ctx_done(goro_ctx *ctx);

/* 0 while ctx is live; -ECANCELED after goro_ctx_cancel (of it or an
 * ancestor); -ETIMEDOUT after its deadline passed. */
int goro_ctx_err(const goro_ctx *ctx);

/* The context's deadline, or GORO_NO_DEADLINE. */
int64_t goro_ctx_deadline(const goro_ctx *ctx);

/* Take / drop a reference (see above). NULL is ignored. */
goro_ctx *goro_ctx_retain(goro_ctx *ctx);
void goro_ctx_release(goro_ctx *ctx);

/* Block until ctx is done or deadline passes; returns goro_ctx_err(ctx) or
 * -ETIMEDOUT. Errors: -EINVAL ctx NULL; -EPERM outside a goroutine. */
int goro_ctx_wait(goro_ctx *ctx, int64_t deadline);

/* ------------------------------------------------------------------------- */
/* Synchronization: Mutex, RWMutex, WaitGroup, Once, Cond                     */
/* ------------------------------------------------------------------------- */

/*
 * These block goroutines, not threads. They are plain structs you embed
 * anywhere; a zeroed struct (or the *_INIT initializer) is ready to use, and
 * none needs destroying. Their contents are private. Do not copy one that is
 * in use. Like Go's, a Mutex is not tied to the goroutine that locked it.
 */

typedef struct goro_mutex {
    GORO__ALIGNAS(8) unsigned char opaque_[24];
} goro_mutex;
#define GORO_MUTEX_INIT {{0}}

/* Lock, blocking while another goroutine holds it (wait reason
 * "sync.Mutex.Lock"). Waiters are served fairly: one that waited more than
 * 1 ms gets the lock handed to it directly.
 * Errors: -EINVAL m NULL; -EPERM would block outside a goroutine. */
int goro_mutex_lock(goro_mutex *m);
/* goro_mutex_lock giving up at deadline with -ETIMEDOUT. */
int goro_mutex_lock_until(goro_mutex *m, int64_t deadline);
/* Lock if free now; -EBUSY otherwise. */
int goro_mutex_trylock(goro_mutex *m);
/* Unlock. Errors: -EINVAL m NULL; -EPERM the mutex is not locked. */
int goro_mutex_unlock(goro_mutex *m);

typedef struct goro_rwmutex {
    GORO__ALIGNAS(8) unsigned char opaque_[48];
} goro_rwmutex;
#define GORO_RWMUTEX_INIT {{0}}

/* Reader/writer lock with writer preference (a waiting writer blocks new
 * readers), like Go's RWMutex. Wait reasons "sync.RWMutex.RLock" and
 * "sync.RWMutex.Lock". Errors as for the Mutex calls; runlock/unlock return
 * -EPERM when not read-locked/write-locked. */
int goro_rwmutex_rlock(goro_rwmutex *rw);
int goro_rwmutex_rlock_until(goro_rwmutex *rw, int64_t deadline);
int goro_rwmutex_tryrlock(goro_rwmutex *rw);
int goro_rwmutex_runlock(goro_rwmutex *rw);
int goro_rwmutex_lock(goro_rwmutex *rw);
int goro_rwmutex_lock_until(goro_rwmutex *rw, int64_t deadline);
int goro_rwmutex_trylock(goro_rwmutex *rw);
int goro_rwmutex_unlock(goro_rwmutex *rw);

typedef struct goro_waitgroup {
    GORO__ALIGNAS(8) unsigned char opaque_[24];
} goro_waitgroup;
#define GORO_WAITGROUP_INIT {{0}}

/* Add delta (may be negative) to the counter; when it reaches zero all
 * waiters are released. Errors: -EINVAL wg NULL or the counter would become
 * negative or exceed INT32_MAX (the counter is left unchanged). */
int goro_waitgroup_add(goro_waitgroup *wg, int delta);
/* goro_waitgroup_add(wg, -1). */
int goro_waitgroup_done(goro_waitgroup *wg);
/* Block until the counter is zero (wait reason "sync.WaitGroup.Wait").
 * Errors: -EINVAL; -EPERM would block outside a goroutine. */
int goro_waitgroup_wait(goro_waitgroup *wg);
/* goro_waitgroup_wait giving up at deadline with -ETIMEDOUT. */
int goro_waitgroup_wait_until(goro_waitgroup *wg, int64_t deadline);

typedef struct goro_once {
    GORO__ALIGNAS(8) unsigned char opaque_[32];
} goro_once;
#define GORO_ONCE_INIT {{0}}

/* Run fn(arg) if no call on this once has run it yet. Concurrent callers
 * block (wait reason "sync.Once.Do") until the first call's fn returns, so
 * after goro_once_do returns, fn has completed. Returns 1 if this call ran
 * fn, 0 if it had already run.
 * Errors: -EINVAL once or fn NULL; -EPERM would block outside a goroutine;
 * -EDEADLK fn called goro_once_do on the same once. */
int goro_once_do(goro_once *once, goro_fn fn, void *arg);

typedef struct goro_cond {
    GORO__ALIGNAS(8) unsigned char opaque_[24];
} goro_cond;
#define GORO_COND_INIT {{0}}

/* Atomically unlock m and block until signalled (wait reason
 * "sync.Cond.Wait"), then lock m again before returning (also on error).
 * As with any condition variable, re-check your predicate in a loop.
 * Errors: -EINVAL NULL argument; -EPERM m not locked or outside a
 * goroutine. */
int goro_cond_wait(goro_cond *c, goro_mutex *m);
/* goro_cond_wait giving up at deadline with -ETIMEDOUT (m is relocked). */
int goro_cond_wait_until(goro_cond *c, goro_mutex *m, int64_t deadline);
/* Wake one / all waiting goroutines. Errors: -EINVAL c NULL. */
int goro_cond_signal(goro_cond *c);
int goro_cond_broadcast(goro_cond *c);

/* ------------------------------------------------------------------------- */
/* Profiling                                                                  */
/* ------------------------------------------------------------------------- */

/* Heap profiling samples one allocation every `rate` bytes on average
 * (Poisson process, like Go's runtime.MemProfileRate): default 512 KiB, or
 * GORO_MEMPROFILE_RATE at start-up; 0 disables sampling, 1 records every
 * allocation. goro_set_memprofile_rate: Errors: -EINVAL rate < 0. */
long goro_memprofile_rate(void);
int goro_set_memprofile_rate(long rate);

/* Whether the heap profiler sees this process's allocations. It needs its
 * malloc interposer to be the malloc that runs: not under ASan or TSan
 * (their allocator replaces it), valgrind, or another malloc library
 * loaded first, nor when goro was built with -DGORO_HEAP_PROFILER=OFF.
 * When false, *why (if why is not NULL) gets a static string naming the
 * reason; heap profiles then hold only the exact goroutine memory and say
 * so in a comment. */
bool goro_heap_profiler_active(const char **why);

/* Block profiling (Go's SetBlockProfileRate): record goroutines blocked on
 * channels, select and sync primitives; events of at least rate_ns are all
 * recorded, shorter ones sampled in proportion (values stay unbiased).
 * 0 (the default) turns it off. Errors: -EINVAL rate_ns < 0. */
int64_t goro_block_profile_rate(void);
int goro_set_block_profile_rate(int64_t rate_ns);

/* Mutex contention profiling (Go's SetMutexProfileFraction): record one in
 * `fraction` contended goro_mutex hand-overs under the unlocker's stack with
 * the delay its waiter saw. 0 (the default) turns it off.
 * Errors: -EINVAL fraction < 0. */
int goro_mutex_profile_fraction(void);
int goro_set_mutex_profile_fraction(int fraction);

/* ------------------------------------------------------------------------- */
/* Goroutine leaks                                                            */
/* ------------------------------------------------------------------------- */

/* A symbolized stack frame. Strings are owned by whatever returned it. */
typedef struct goro_frame {
    uintptr_t pc;
    const char *func; /* "?" when unknown */
    const char *file; /* "?" when unknown */
    int line;
} goro_frame;

/* One goroutine, as leak reports describe it. */
typedef struct goro_goroutine_info {
    uint64_t id, parent_id;
    const char *name;    /* NULL if unnamed */
    const char *state;   /* Go's wait reason ("chan send", "sync.Mutex.Lock",
                            ...) or "running", "runnable", "syscall" */
    bool blocked;        /* parked (any wait reason) */
    int64_t wait_ns;     /* time in the current wait, 0 when not waiting */
    size_t nstack;       /* current stack, innermost first (empty for a */
    goro_frame *stack;   /*   goroutine running on another thread) */
    size_t ncreated;     /* creation chain: the spawning function first */
    goro_frame *created;
    uint64_t stack_bytes; /* stack memory it holds (pages in use) */
    /* Filled by goro_leak_scan only (zero otherwise): */
    uint64_t retained_bytes; /* heap bytes that nothing live reaches and its
                                stack does (a block several leaked goroutines
                                reach counts for one of them) */
    bool on_chan;        /* the first object it waits on is a channel: */
    goro_frame chan_made;   /* where that channel was made (goro_chan_make's caller) */
    size_t chan_cap, chan_len; /* its capacity and buffered elements */
    uint32_t chan_refs;  /* its reference count (goro_chan_retain/release; none
                            of them held by live memory) */
    const char *hint;    /* the usual cause and fix for this shape (static), or NULL */
} goro_goroutine_info;

typedef struct goro_leak_report {
    size_t count;
    goro_goroutine_info *goroutines;
    /* Readable text, one block per goroutine, e.g.
     * "goroutine 42 [chan send, 3s]: blocked at service.c:19 in worker
     *      created by run_async (service.c:17) <- handle_work (service.c:31)"
     * (goro_leak_scan adds what each holds, its channel and a hint:
     *  "    holds: stack 4.0 KiB, heap 0 B that only leaked goroutines reach
     *       waits on: channel made at run_async (service.c:15), capacity 0,
     *       0 buffered, 2 references (none from live memory)
     *       hint: an unbuffered send nobody receives: ...") */
    char *message;
} goro_leak_report;

/* Goroutines created inside a scope (and all their descendants) belong to
 * it, so a test can check its own goroutines even when tests share a
 * process and run concurrently. */
typedef struct goro_leak_scope goro_leak_scope;

/* The goroutines alive at one moment (for ignore_current). */
typedef struct goro_leak_snapshot goro_leak_snapshot;

typedef struct goro_leak_opts {
    /* NULL-terminated lists of function names. A goroutine is ignored when
     * its top function (the innermost frame outside goro's own functions,
     * i.e. the code that made the blocking call) matches ignore_top, when
     * any frame of its stack matches ignore_any, or when any frame of its
     * creation chain matches ignore_created_by. */
    const char *const *ignore_top;
    const char *const *ignore_any;
    const char *const *ignore_created_by;
    /* Ignore the goroutines alive when this snapshot was taken. */
    const goro_leak_snapshot *ignore_current;
    /* Only goroutines of this scope (NULL: every goroutine). */
    const goro_leak_scope *scope;
    /* Retry budget for goroutines that are still finishing: up to `retries`
     * more looks (0 = 20; negative = none), sleeping 1 us, 2 us, ... up to
     * 100 ms between them, and at most max_wait in total (0 = 2 s). */
    int retries;
    int64_t max_wait;
} goro_leak_opts;

/* Look for goroutines other than the caller that are still alive (after
 * the retry budget), honouring opts (may be NULL). *report is NULL when
 * there are none, else a report to free with goro_leak_report_free.
 * Errors: -EPERM not called from a goroutine; -ENOMEM. */
int goro_leak_find(const goro_leak_opts *opts, goro_leak_report **report);
void goro_leak_report_free(goro_leak_report *report);

/* Take / free a snapshot for opts.ignore_current. Errors: -EPERM, -ENOMEM. */
int goro_leak_snapshot_take(goro_leak_snapshot **out);
void goro_leak_snapshot_free(goro_leak_snapshot *s);

/* Start a scope: goroutines the calling goroutine creates from now on (and
 * their descendants) belong to it. Scopes nest: the goroutines of a nested
 * scope also belong to the enclosing ones, before and after the nested
 * scope ends. Each scope ever begun costs 4 bytes for the life of the
 * process. Errors: -EINVAL out NULL; -EPERM not in a goroutine; -ENOMEM;
 * -EAGAIN 2^32 - 2 scopes were begun in this process. */
int goro_leak_scope_begin(goro_leak_scope **out);
/* End the scope (the calling goroutine's children no longer join it) and
 * free it. Check with goro_leak_find before ending it. */
void goro_leak_scope_end(goro_leak_scope *scope);

/* goro_run with a leak check at the end (goleak's VerifyTestMain): run
 * main_fn as goroutine 1; when it returns, check (with the retry budget)
 * that no other goroutine is left, then stop the runtime. *report (if not
 * NULL) receives the leaks (NULL if none). Returns goro_run's result. */
int goro_run_checked(goro_fn main_fn, void *arg, const goro_options *opts,
                     const goro_leak_opts *leak_opts, goro_leak_report **report);

/* With cmocka (include <cmocka.h> before goro.h): fail the current test
 * with the report's message if it lists leaks. Use it on the test's own
 * thread, after goro_run_checked returned, never inside a goroutine. */
#if defined(cmocka_unit_test)
#define goro_assert_no_leaks(report)                                           \
    do {                                                                       \
        goro_leak_report *goro_r_ = (report);                                  \
        if (goro_r_ && goro_r_->count) {                                       \
            print_error("%s", goro_r_->message);                               \
            goro_leak_report_free(goro_r_);                                    \
            fail();                                                            \
        }                                                                      \
    } while (0)
#endif

/* Statistics of one reachability scan (goro_leak_scan). */
typedef struct goro_leak_scan_stats {
    size_t goroutines;    /* goroutines that existed */
    size_t blocked;       /* blocked on primitives without a deadline: judged */
    size_t leaked;
    size_t threads;       /* threads stopped for the scan */
    /* Threads goro does not own that were not signalled, so that their
     * system calls see no EINTR: blocked in a system call (checked again
     * afterwards: if one ran meanwhile the scan is incomplete) or blocking
     * the scan's signal. Their stacks are scanned whole; pointers held only
     * in their registers are not seen. */
    size_t threads_not_stopped;
    uint64_t heap_bytes;  /* bytes of live heap blocks scanned (the reachable ones) */
    uint64_t scanned_bytes;
    int64_t pause_ns;     /* how long the world was stopped */
    int64_t total_ns;
    const char *incomplete; /* why nothing could be judged, or NULL */
} goro_leak_scan_stats;

/* The reachability check (Go's goroutineleak profile): find goroutines
 * blocked forever — on channels, select, Mutex, RWMutex, WaitGroup, Cond
 * or Once, without a deadline — on primitives that no live memory can reach
 * (roots: globals, thread stacks and registers, stacks of goroutines that
 * run, are runnable or wait on I/O, timers or system calls, armed timers,
 * and writable memory that is not malloc heap: shared and file-backed
 * mappings, other anonymous mappings). The malloc heap is not a root: a
 * heap block is live only when reachable from a root, transitively, and a
 * blocked goroutine whose primitive is reachable is live too. A goroutine
 * waiting on a context that nothing reaches and no deadline can cancel is
 * leaked, as is a select with no cases or only NULL ones. Matching is
 * conservative: any aligned word that points into a live block keeps it
 * alive, so the scan can miss a leak but does not report a goroutine that
 * can still be woken. The heap's blocks are read from glibc's chunk
 * headers; memory the scan does not recognise (another allocator) is
 * treated as a root. The world is stopped while memory is scanned: goro's
 * own threads and running foreign threads get a real-time signal and wait
 * in its handler; foreign threads blocked in a system call or blocking the
 * signal are not signalled (no EINTR), their stacks are scanned whole, and
 * stats->threads_not_stopped counts them. No scheduler thread starts while
 * a scan runs (one that is needed waits for the scan's end).
 * *report is NULL when nothing leaked; stats (may be NULL) describes the
 * scan. Errors: -EPERM not called from a goroutine; -ENOTSUP in a sanitizer
 * build or under valgrind (stats->incomplete says why); -EBUSY the program
 * installed a handler of its own for SIGRTMIN+5, the scan's stop signal
 * (goro does not replace it); -EAGAIN the world could not be
 * stopped consistently — a thread did not stop within 1 s, a thread
 * started meanwhile, or a foreign thread left alone in a system call ran
 * meanwhile — nothing was judged and stats->incomplete says why: try
 * again (goro_leak_find does); -ENOMEM. */
int goro_leak_scan(goro_leak_report **report, goro_leak_scan_stats *stats);

/* The production watchdog (on by default). The runtime counts the
 * goroutines parked on goro primitives (channels, select, sync, contexts;
 * never I/O, sleep, syscalls or waits with a deadline) for longer than
 * 67 ms, by creation site, wait site and wait reason (a compare per park,
 * a load per wake-up; goro's monitor thread does the counting), and every
 * `period` the watchdog reads those counts: its cost does not grow with
 * the number of goroutines. Groups started by one function
 * (from any of its goro_go lines) and blocked for one reason form a
 * family. A family becomes a leak suspect, reported once (a line on
 * stderr, or on_suspect), when at least one member has waited `min_age`,
 * the number of such members grew, and either
 *  - its size grew in each of the last `windows` periods and it has at
 *    least `min_count` members, or
 *  - over the last 20 s its size never dropped and rose at least 5 times
 *    (a small steady leak, whatever min_count).
 *   goro: possible goroutine leak: 52341 goroutines created at run_async
 *   (service.c:17) <- handle (service.c:40) blocked in chan send at
 *   service.c:19 (in async_worker), growing 1203/s, oldest 4m, stacks
 *   204.5 MiB; hint: a send nobody receives: receive it, or give the
 *   channel room for the value (capacity 1 for a single result) so the
 *   sender can finish
 * Ages are measured in steps of 67 ms; min_age is at most
 * GORO_WATCHDOG_MAX_MIN_AGE. A worker pool (stable), request goroutines
 * waiting briefly (young), sleepers and sockets never qualify.
 * Second tier: a new suspect (state GORO_LEAK_SUSPECTED) makes goro run one
 * reachability scan (goro_leak_scan's algorithm) on a thread of its own,
 * started on the first suspect and joined by goro_run's teardown; scans are
 * at least confirm_interval apart and 100 times their own duration (the
 * world stops for each, ~20-40 ms for a few thousand goroutines and a small
 * heap, up to ~0.6 s for 100k goroutines and 1 GiB). The scan settles
 * the suspect: CONFIRMED when members are unreachable (another line, or
 * on_verdict):
 *   goro: confirmed goroutine leak: 1400 of 1400 goroutines created at
 *   run_async (service.c:59) <- handle_work (service.c:91) blocked in chan
 *   send at service.c:48 (in async_worker) are unreachable: nothing can
 *   wake them; heap only they reach 65.8 KiB; on channels made at
 *   run_async (service.c:57), capacity 0; hint: an unbuffered send nobody
 *   receives: give the channel capacity 1 ... (reachability scan: 60ms,
 *   world stopped 60ms)
 * or REACHABLE (something live still reaches what they wait on; checked
 * again at most once a minute while the family grows). Sanitizer builds
 * and runs under valgrind cannot scan: GORO_LEAK_UNVERIFIED. */
#define GORO_WATCHDOG_MAX_MIN_AGE (8 * GORO_SECOND)

/* What a reachability scan (the second tier) made of a suspect. When the
 * watchdog reports a suspect it asks for one scan (goro_leak_scan's
 * algorithm, run on a thread of goro's own, at most one scan per
 * confirm_interval and never more than ~1% of the time, so the world is
 * stopped briefly now and then while suspects exist). */
typedef enum goro_leak_state {
    GORO_LEAK_SUSPECTED = 0,  /* the watchdog's judgement; no scan has settled it
                                 yet (or confirmation is switched off) */
    GORO_LEAK_CONFIRMED = 1,  /* a scan found members that nothing live can
                                 reach: they can never be woken */
    GORO_LEAK_REACHABLE = 2,  /* a scan found every member it judged still
                                 reachable (checked again while it grows) */
    GORO_LEAK_UNVERIFIED = 3, /* scans are impossible here (sanitizer
                                 build, or running under valgrind) */
} goro_leak_state;

typedef struct goro_leak_suspect {
    size_t count;           /* goroutines in the group now */
    double growth_per_sec;  /* over the last `windows` periods */
    int64_t oldest_wait_ns;
    const char *reason;     /* Go's wait reason */
    goro_frame wait_site;   /* where they are blocked (the caller of the
                               goro blocking call) */
    size_t ncreated;        /* creation chain, spawning function first */
    goro_frame created[8];
    int64_t first_reported; /* goro_now() when it became a suspect */
    const char *message;    /* the one-line report */
    uint64_t stack_bytes;   /* stack memory of the group when reported */
    const char *hint;       /* the usual cause for this wait reason and its
                               fix (a static string), or NULL */
    goro_leak_state state;
    size_t judged;          /* members the settling scan judged (parked
                               before it began, still parked after) */
    size_t unreachable;     /* of them, found leaked (CONFIRMED: > 0) */
    int64_t settled_at;     /* goro_now() of that scan's start, or 0 */
    const char *verdict;    /* the one-line verdict once settled, or NULL */
    uint64_t retained_bytes; /* CONFIRMED: heap only the unreachable members reach */
    bool on_chan;           /* CONFIRMED, waiting on channels: one of them */
    goro_frame chan_made;   /*   was made here (goro_chan_make's caller) */
    size_t chan_cap;        /*   with this capacity (the hint then tells an
                                 unbuffered send from a full buffer) */
} goro_leak_suspect;

typedef struct goro_watchdog_opts {
    bool disabled;        /* also GORO_WATCHDOG=0 (the runtime then stops counting) */
    int64_t period;       /* 0 = 500 ms (GORO_WATCHDOG_PERIOD_MS) */
    int windows;          /* 0 = 3 (at most 16) */
    int64_t min_age;      /* 0 = 2 s (GORO_WATCHDOG_MIN_AGE_MS) */
    size_t min_count;     /* 0 = 10 */
    /* Called from goro's monitor thread for each new suspect; must not
     * block. NULL: print the message line on stderr. */
    void (*on_suspect)(const goro_leak_suspect *suspect, void *arg);
    void *arg;
    /* Called from goro's confirmation thread when a scan settles a
     * suspect (state CONFIRMED or REACHABLE; again if a later scan
     * confirms one that was reachable); must not block. NULL: print the
     * verdict line on stderr when on_suspect is NULL too, else nothing
     * (the verdict is in goro_watchdog_suspects). */
    void (*on_verdict)(const goro_leak_suspect *suspect, void *arg);
    /* No reachability scans for suspects (also GORO_WATCHDOG_CONFIRM=0):
     * they stay SUSPECTED. */
    bool no_confirm;
    /* Least time between two of the watchdog's scans: 0 = 10 s. */
    int64_t confirm_interval;
} goro_watchdog_opts;

/* Configure the watchdog (NULL: defaults). Takes effect at once and for
 * later goro_run calls; the growth history restarts (suspects already
 * reported stay listed). Errors: -EINVAL negative values, windows above 16,
 * min_age above GORO_WATCHDOG_MAX_MIN_AGE, confirm_interval below 100 ms. */
int goro_watchdog_configure(const goro_watchdog_opts *opts);

/* The current suspects (their counts refreshed every period, state and
 * verdict as the last scan left them), newest first; free with
 * goro_watchdog_suspects_free. Errors: -EINVAL NULL argument; -ENOMEM. */
int goro_watchdog_suspects(goro_leak_suspect **out, size_t *n);
void goro_watchdog_suspects_free(goro_leak_suspect *s, size_t n);

/* Number of suspects reported since the process started. */
uint64_t goro_watchdog_reports_total(void);

/* ------------------------------------------------------------------------- */
/* Blocking C calls                                                           */
/* ------------------------------------------------------------------------- */

/* Run fn(arg), a call that may block the OS thread (file I/O, getaddrinfo, a
 * library that blocks), without stalling other goroutines: the calling
 * goroutine's processor is handed to another thread for the duration (Go
 * does this for system calls). fn runs on the thread's own stack (8 MiB),
 * so deep library code is fine; it must not call goro's blocking functions.
 * The goroutine shows as "syscall" in dumps meanwhile. Called outside a
 * goroutine, fn simply runs. Returns 0. */
int goro_blocking(goro_fn fn, void *arg);

/* ------------------------------------------------------------------------- */
/* Network                                                                    */
/* ------------------------------------------------------------------------- */

/*
 * Sockets on goro's poller (epoll): a goroutine blocked on a socket costs
 * only its parked record (wait reason "IO wait"). Every blocking call takes
 * a deadline (GORO_NO_DEADLINE for none) and an optional context (NULL for
 * none): the call returns -ETIMEDOUT at the deadline and -ECANCELED when the
 * context is cancelled (or the context's own error, -ETIMEDOUT, if it expired).
 *
 * Addresses are "host:port" strings: "127.0.0.1:8080", "[::1]:8080",
 * "localhost:80" (dial only: names are resolved with getaddrinfo through
 * goro_blocking). Listeners and connections are owned by whoever created or
 * accepted them and are freed by goro_listener_close / goro_conn_close,
 * which may be called while other goroutines are blocked on them: those
 * calls then fail with -EBADF (Go's "use of closed network connection") and
 * the object is freed once the last of them returned. All of them must be
 * closed before goro_run returns.
 *
 * A deadline or context is only consulted when the call would block: a read
 * with data already buffered, or a connect that completes at once, succeeds
 * even if the deadline has passed or the context is cancelled (Go instead
 * fails such calls at once).
 */
typedef struct goro_listener goro_listener;
typedef struct goro_conn goro_conn;

/* Listen on a numeric TCP address (IPv4 or bracketed IPv6; port 0 picks a
 * free port) with SO_REUSEADDR and the given backlog (<= 0: SOMAXCONN).
 * goro never guesses an address: an empty host is rejected with -EINVAL.
 * Errors: -EINVAL bad address; -EADDRINUSE, -EACCES, ... from the kernel. */
int goro_listen_tcp(const char *addr, int backlog, goro_listener **out);

/* Listen on a UNIX stream socket at path (an existing socket file there is
 * not removed: -EADDRINUSE). */
int goro_listen_unix(const char *path, int backlog, goro_listener **out);

/* The address the listener is bound to, e.g. "127.0.0.1:43127" (for
 * port 0) or the socket path. Errors: -ENOSPC buffer too small. */
int goro_listener_addr(const goro_listener *l, char *buf, size_t len);

/* Wait for and accept a connection (non-blocking sockets, close-on-exec).
 * Errors: -ETIMEDOUT, -ECANCELED, -EBADF (listener closed), -EMFILE and
 * other accept errors. */
int goro_accept(goro_listener *l, goro_conn **out, int64_t deadline, goro_ctx *ctx);

/* Close the listener: blocked accepts return -EBADF; the object is freed. A
 * UNIX socket's file is removed. */
int goro_listener_close(goro_listener *l);

/* Connect to a TCP address (numeric, or a host name resolved through
 * goro_blocking; every resolved address is tried in order) or a UNIX socket.
 * Errors: -ETIMEDOUT, -ECANCELED, -ECONNREFUSED, -EHOSTUNREACH,
 * -ENOENT (name not found), ... */
int goro_dial_tcp(const char *addr, goro_conn **out, int64_t deadline, goro_ctx *ctx);
int goro_dial_unix(const char *path, goro_conn **out, int64_t deadline, goro_ctx *ctx);

/* Wrap a connected stream socket, or a pipe end (made non-blocking; writes
 * to a pipe with no reader fail with -EPIPE, never SIGPIPE). goro owns fd
 * from now on and closes it in goro_conn_close. */
int goro_conn_from_fd(int fd, goro_conn **out);

/* Read up to len bytes, waiting until at least one is available. Returns
 * the count, 0 at end of stream, or -errno (-ETIMEDOUT, -ECANCELED, -EBADF
 * after close, -ECONNRESET, ...). */
ssize_t goro_conn_read(goro_conn *c, void *buf, size_t len, int64_t deadline, goro_ctx *ctx);

/* Write all len bytes, waiting as needed. Returns len, or -errno; after an
 * error an unknown prefix may have been sent (close the connection). Never
 * raises SIGPIPE (-EPIPE instead). */
ssize_t goro_conn_write(goro_conn *c, const void *buf, size_t len, int64_t deadline,
                        goro_ctx *ctx);

/* shutdown(2) of one or both directions: how is GORO_SHUT_RD (no more
 * reads), GORO_SHUT_WR (send FIN: the peer reads end of stream) or
 * GORO_SHUT_RDWR (the values of <sys/socket.h>'s SHUT_*, which may be used
 * as well). Errors: -EINVAL c NULL or how invalid; -EBADF closed; -ENOTCONN. */
#define GORO_SHUT_RD 0
#define GORO_SHUT_WR 1
#define GORO_SHUT_RDWR 2
int goro_conn_shutdown(goro_conn *c, int how);

/* Close: blocked reads and writes return -EBADF; the object is freed once
 * they have returned. Errors: -EINVAL c NULL. */
int goro_conn_close(goro_conn *c);

/* The underlying descriptor (still owned by the connection). */
int goro_conn_fd(const goro_conn *c);

/* Local and peer addresses as "host:port" (or the socket path). */
int goro_conn_local_addr(const goro_conn *c, char *buf, size_t len);
int goro_conn_peer_addr(const goro_conn *c, char *buf, size_t len);

/* Number of goroutines blocked on network I/O now. */
size_t goro_num_io_waiting(void);

/* ------------------------------------------------------------------------- */
/* HTTP/1.1 server                                                            */
/* ------------------------------------------------------------------------- */

/*
 * A small, strict HTTP/1.1 server in the shape of Go's net/http: one
 * goroutine per connection, keep-alive, pipelining (answers in order),
 * Content-Length and chunked request bodies, chunked or fixed-length
 * responses, timeouts against slow clients, limits, graceful shutdown.
 * No TLS, no HTTP/2, no upgrades, no proxying (CONNECT is 501).
 *
 * Requests are parsed strictly (RFC 9112); anything ambiguous is refused,
 * the error response is sent and the connection is closed:
 *  - 400: lines not ending in CRLF (a bare LF or bare CR anywhere in the
 *    head; empty lines before the request line are skipped), a malformed
 *    request line, a method or field name that is not a token, whitespace
 *    before a field's colon, obs-fold (a line starting with SP or HTAB),
 *    NUL or another control character (except HTAB) in a field value, a
 *    request-target with a space, '#', a control or non-ASCII byte or a bad
 *    %XX escape, a target that is neither "/..." nor "http(s)://host..." nor
 *    "*" (OPTIONS only), an invalid Content-Length or two that differ,
 *    Content-Length together with Transfer-Encoding, Transfer-Encoding in an
 *    HTTP/1.0 request, a missing (HTTP/1.1) or repeated Host or one with
 *    characters no host may have, a malformed chunked body;
 *  - 431: a head (request line + fields + line ends) longer than
 *    max_header_bytes, more than 128 field lines, or a chunked body's
 *    trailer section longer than max_header_bytes;
 *  - 413: a body longer than max_body_bytes;
 *  - 417: an Expect other than "100-continue";
 *  - 501: a Transfer-Encoding other than a single "chunked", or CONNECT;
 *  - 505: an HTTP version other than 1.0 and 1.1.
 * A request whose head does not arrive within read_header_timeout, or a
 * connection idle for idle_timeout, is closed without a response.
 *
 * Handlers run on the connection's goroutine, one request at a time; a
 * handler may block (channels, sleeps, I/O) and may spawn goroutines, but
 * the request and response objects it gets are valid only until it returns
 * and must not be used by two goroutines at once. Strings returned by the
 * request accessors are NUL-terminated and live as long as the request.
 */
typedef struct goro_http_server goro_http_server;
typedef struct goro_http_request goro_http_request;
typedef struct goro_http_response goro_http_response;

/* Serves one request: read r, answer through w. A handler that returns
 * without writing anything sends "200 OK" with an empty body (as in Go). */
typedef void (*goro_http_handler)(goro_http_response *w, goro_http_request *r, void *arg);

/* Server options. A zeroed field means its default; for timeouts and
 * max_body_bytes a negative value means "no limit". */
typedef struct goro_http_server_opts {
    goro_http_handler handler; /* required */
    void *handler_arg;         /* passed to handler as arg */
    /* Time allowed to receive a request's head, counted from the accept for
     * a connection's first request and from the request's first byte for
     * the following ones (slowloris protection). Default 10 s. */
    int64_t read_header_timeout;
    /* Time allowed to receive a whole request, head and body, counted like
     * read_header_timeout. Body reads past it fail with -ETIMEDOUT.
     * Default 60 s. */
    int64_t read_timeout;
    /* Time allowed to send a response, counted from the end of its request
     * head (so it includes the handler's own time, as in Go). Writes past it
     * fail with -ETIMEDOUT and the connection is closed. Default 60 s. */
    int64_t write_timeout;
    /* How long a keep-alive connection may wait for its next request.
     * Default 120 s. */
    int64_t idle_timeout;
    /* Largest request head in bytes (431 beyond). Default 1 MiB (Go's
     * DefaultMaxHeaderBytes); at least 256. The read buffer of a connection
     * starts at 4 KiB and grows only as far as a head needs. */
    size_t max_header_bytes;
    /* Largest request body in bytes (413 beyond: before the handler runs
     * when Content-Length says so, else when a chunked body grows past it).
     * Default 8 MiB. */
    int64_t max_body_bytes;
} goro_http_server_opts;

/* Create a server (not yet serving). opts is copied.
 * Errors: -EINVAL out or opts NULL, handler NULL, max_header_bytes below
 * 256; -ENOMEM. */
int goro_http_server_create(const goro_http_server_opts *opts, goro_http_server **out);

/* Free a server that is not serving: every goro_http_serve call on it has
 * returned (or none was made). Errors: -EINVAL NULL; -EBUSY still serving
 * or connections still open. */
int goro_http_server_free(goro_http_server *s);

/* Accept connections on l and serve each on its own goroutine, until
 * goro_http_server_shutdown. The server takes ownership of l and closes it.
 * Several listeners may be served at once (one call each). Temporary accept
 * failures (-EMFILE, -ENFILE, -ENOBUFS, -ENOMEM) are retried after a short
 * backoff, like Go.
 *
 * Returns 0 after a shutdown has begun and every connection this server
 * accepted is closed and its goroutine gone (a handler that never returns
 * keeps it waiting: handlers should watch goro_http_request_ctx). Errors:
 * -EINVAL NULL argument; -ESHUTDOWN the server was already shut down (l is
 * closed); -EPERM not in a goroutine; another accept error (l is closed;
 * open connections keep being served until shutdown). */
int goro_http_serve(goro_http_server *s, goro_listener *l);

/* goro_listen_tcp(addr, 0, ...) then goro_http_serve. */
int goro_http_listen_and_serve(goro_http_server *s, const char *addr);

/* Graceful shutdown: close every listener (new connections are refused from
 * now on), close connections that are idle (between requests, or opened but
 * silent), and let requests in flight finish, each closing its connection
 * when done. Returns 0 once no connection is left. If deadline passes
 * first, every remaining connection is shut down (blocked reads and writes
 * on it fail), every request context is cancelled and -ETIMEDOUT is
 * returned at once; goro_http_serve returns when those handlers have
 * returned. May be called more than once and from several goroutines.
 * Errors: -EINVAL s NULL; -EPERM not in a goroutine; -ETIMEDOUT. */
int goro_http_server_shutdown(goro_http_server *s, int64_t deadline);

/* ---- requests ---------------------------------------------------------- */

/* Method ("GET"), raw request-target ("/a/b?x=1" as sent), path (the target
 * up to '?'; for an absolute-form target "http://h/p?q" the path "/p", "/"
 * when empty; "*" for OPTIONS *; not percent-decoded, not cleaned), query
 * (after '?', "" when none; not decoded). NULL when r is NULL. */
const char *goro_http_request_method(const goro_http_request *r);
const char *goro_http_request_target(const goro_http_request *r);
const char *goro_http_request_path(const goro_http_request *r);
const char *goro_http_request_query(const goro_http_request *r);

/* 10 for HTTP/1.0, 11 for HTTP/1.1 (0 when r is NULL). */
int goro_http_request_version(const goro_http_request *r);

/* Value of the first field named name (ASCII case-insensitive), with
 * surrounding whitespace removed; NULL when absent. */
const char *goro_http_request_header(const goro_http_request *r, const char *name);

/* Number of header field lines, and the i-th one in arrival order (name as
 * sent). Returns 0, or -ENOENT when i is out of range, -EINVAL on NULL. */
size_t goro_http_request_num_headers(const goro_http_request *r);
int goro_http_request_header_at(const goro_http_request *r, size_t i, const char **name,
                                const char **value);

/* Declared body length: Content-Length, 0 when the request has no body,
 * -1 for a chunked body (length unknown). */
int64_t goro_http_request_content_length(const goro_http_request *r);

/* Read up to len bytes of the body (chunked framing removed). Returns the
 * count, 0 at the end of the body, or -errno: -EFBIG the body exceeds
 * max_body_bytes (the server answers 413 if nothing was written yet),
 * -EPROTO malformed chunked framing (400), -EMSGSIZE chunked trailers too
 * large (431), -ETIMEDOUT read_timeout passed, -ECONNRESET the client
 * closed the connection mid-body, -EINVAL NULL argument; an error repeats
 * on later calls. For "Expect: 100-continue" the first read sends
 * "100 Continue" first. Unread body is discarded after the handler returns
 * (at most 256 KiB; a longer rest closes the connection). */
ssize_t goro_http_request_read(goro_http_request *r, void *buf, size_t len);

/* A context for this request, cancelled when the handler returns, when the
 * client closes the connection (noticed once the body has been read to its
 * end) or when a shutdown gives up waiting (deadline passed). Borrowed:
 * valid until the handler returns (retain it to keep it longer). Created on
 * first use; never NULL for a non-NULL r. */
goro_ctx *goro_http_request_ctx(goro_http_request *r);

/* Address of the client, "host:port" ("" if unknown). */
const char *goro_http_request_peer(goro_http_request *r);

/* Find key in a query string ("a=1&b=x%20y"), decode its value (%XX and
 * '+' as space) into buf (NUL-terminated) and return its length. A key
 * without '=' has the value "". Errors: -ENOENT absent; -ENOSPC buf too
 * small; -EINVAL NULL argument or a bad %XX escape. */
ssize_t goro_http_query_value(const char *query, const char *key, char *buf, size_t len);

/* ---- responses --------------------------------------------------------- */

/* Set the status code (100-999 syntax; 200 by default). Errors: -EINVAL
 * out of range or below 200 (informational responses are not supported;
 * "100 Continue" is sent automatically); -EALREADY the head is committed
 * (after the first write or flush). */
int goro_http_response_set_status(goro_http_response *w, int status);

/* Add a header field (another line with the same name is kept), or set it
 * (replacing every line with that name; value NULL just removes them).
 * name must be a token and value must not contain CR, LF, NUL or other
 * controls (except HTAB): response splitting is impossible. Framing is the
 * server's: Transfer-Encoding is refused, Content-Length must be digits and
 * declares the body length (the writes must then add up to it; with fewer
 * bytes the connection is closed after the response); "Connection: close"
 * closes the connection after the response; a Date field replaces the
 * automatic one. Errors: -EINVAL; -EALREADY committed; -ENOMEM, or -E2BIG
 * beyond 64 KiB of response fields. */
int goro_http_response_add_header(goro_http_response *w, const char *name, const char *value);
int goro_http_response_set_header(goro_http_response *w, const char *name, const char *value);

/* Write body bytes; the first call commits the status and header fields.
 * With a Content-Length set the body is sent as is; without one, output is
 * buffered up to 4 KiB: a handler that returns before that gets a
 * Content-Length computed for it, otherwise the body is sent with chunked
 * encoding (HTTP/1.1) or delimited by closing the connection (HTTP/1.0).
 * Responses to HEAD discard body bytes (counting them). Returns len, or
 * -errno: -EFBIG more than the declared Content-Length (nothing written);
 * -EINVAL NULL, or a body for status 204 or 304 (or 1xx); -ETIMEDOUT
 * write_timeout passed; -EPIPE, -ECONNRESET the client went away; an error
 * repeats on later calls and closes the connection. */
ssize_t goro_http_response_write(goro_http_response *w, const void *buf, size_t len);

/* Commit the head if needed and send everything buffered now (streaming).
 * Errors as for write. */
int goro_http_response_flush(goro_http_response *w);

/* Send a whole response in one call: status, Content-Type (if not NULL),
 * Content-Length len and the body. Errors as for set_status and write. */
int goro_http_response_send(goro_http_response *w, int status, const char *content_type,
                            const void *body, size_t len);

/* Like Go's http.Error: status, "Content-Type: text/plain; charset=utf-8",
 * "X-Content-Type-Options: nosniff", body msg plus "\n" (msg NULL: the
 * status text). Header fields set before are kept. Errors as send. */
int goro_http_error(goro_http_response *w, int status, const char *msg);

/* Status code set so far, and whether the head has been committed. */
int goro_http_response_status(const goro_http_response *w);
bool goro_http_response_committed(const goro_http_response *w);

/* Reason phrase of a status code ("Not Found"), "" when unknown. */
const char *goro_http_status_text(int status);

/* ---- routing ----------------------------------------------------------- */

/*
 * A mux routes by path like Go's ServeMux (without host patterns or
 * redirects): a pattern ending in '/' matches every path starting with it
 * (a subtree; "/" alone therefore matches everything and serves as the
 * fallback), any other pattern matches its path exactly. The longest
 * matching pattern wins. Unmatched requests get 404 "404 page not found".
 */
typedef struct goro_http_mux goro_http_mux;

/* Errors: -EINVAL out NULL; -ENOMEM. */
int goro_http_mux_create(goro_http_mux **out);

/* Free the mux (no server may still be using it). NULL is ignored. */
void goro_http_mux_free(goro_http_mux *m);

/* Route pattern (must start with '/', copied) to handler(w, r, arg). May be
 * called while the mux is serving (from a goroutine then). Errors: -EINVAL
 * bad argument; -EEXIST pattern already registered; -ENOMEM. */
int goro_http_mux_handle(goro_http_mux *m, const char *pattern, goro_http_handler handler,
                         void *arg);

/* The mux as a handler: pass goro_http_mux_serve as the server's handler
 * and the mux as handler_arg. */
void goro_http_mux_serve(goro_http_response *w, goro_http_request *r, void *mux);

/* ------------------------------------------------------------------------- */
/* Diagnostics over HTTP: /debug/pprof, /debug/goro, /metrics                 */
/* ------------------------------------------------------------------------- */

/*
 * goro serves Go's net/http/pprof endpoints with Go's paths, parameters and
 * formats (go tool pprof, Parca, Grafana Alloy and Pyroscope read them
 * unchanged), its own leak reports and Prometheus metrics:
 *   /debug/pprof/                 index page
 *   /debug/pprof/profile          CPU profile (?seconds=N, default 30)
 *   /debug/pprof/{goroutine,heap,allocs,threadcreate,block,mutex,
 *                 goroutineleak}  ?debug=0|1|2, ?seconds=N (a delta)
 *   /debug/pprof/cmdline, /debug/pprof/symbol
 *   /debug/goro/leaks             the watchdog's suspects (?format=json)
 *   /metrics                      Prometheus text format 0.0.4
 */

/* A handler for all of the above (dispatching on the path); mount it on
 * your own server, Go style (same port as the service). */
void goro_debug_handler(goro_http_response *w, goro_http_request *r, void *arg);

/* Route "/debug/pprof/", "/debug/goro/" and "/metrics" of mux to
 * goro_debug_handler. Errors as goro_http_mux_handle. */
int goro_debug_mount(goro_http_mux *mux);

/* Serve the endpoints on their own listener, from a goroutine of their own:
 * addr NULL means GORO_DEBUG_ADDR, else "127.0.0.1:6060". A non-loopback
 * address is refused (-EACCES) unless allow_remote is true: profiles
 * expose the program's memory layout and internals. Call from a goroutine.
 * Errors: -EPERM, -EACCES, listen errors, -ENOMEM. */
typedef struct goro_debug_server goro_debug_server;
int goro_debug_serve(const char *addr, bool allow_remote, goro_debug_server **out);
/* The address it listens on (e.g. after port 0). */
const char *goro_debug_server_addr(const goro_debug_server *s);
/* Stop it (graceful until deadline) and free it. Call from a goroutine. */
int goro_debug_server_stop(goro_debug_server *s, int64_t deadline);

/* Write a named profile (the names above, without "profile") to fd, as the
 * endpoint would for ?debug=debug. Call from a goroutine.
 * Errors: -ENOENT unknown name; -EPERM; write errors. */
int goro_write_profile(const char *name, int debug, int fd);
/* Take a CPU profile for `seconds` and write it (proto) to fd.
 * Errors: -EBUSY another CPU profile is running; -EPERM; write errors. */
int goro_write_cpu_profile(int64_t seconds, int fd);

#ifdef __cplusplus
}
#endif

#endif /* GORO_H */
