/*
 * g.h - the goroutine record (G), built for diagnosis.
 *
 * A goroutine exists in two forms:
 *  - a *newborn* (goro__newborn, 128 bytes in a region of recycled 2 MiB
 *    chunks) from goro_spawn until it first runs. Spawning allocates no stack,
 *    so a burst of a million spawns costs no stack page faults.
 *  - a *G* (goro__g) from its first run until it exits. The G record lives at
 *    the top of the goroutine's own stack, in the same page as its first
 *    frames: a parked goroutine costs one resident page plus an 8-byte
 *    registry slot and whatever it waits on (the parked-goroutine memory
 *    budget is ~4 KiB).
 * Both start with goro__gbase so run queues and the registry handle either.
 * When a newborn first runs, the scheduler copies its spawn information into
 * the G on a stack from the P's cache and republishes the registry slot.
 *
 * Registry: every goroutine owns one slot of a global array of pointers
 * (goro__reg_*), from spawn to exit. Iterating the slots visits every
 * goroutine exactly once; nothing is locked.
 *
 * Status word (gbase.status): state in the low 4 bits, a sequence number
 * above. The sequence increases every time the goroutine stops running
 * (parks, yields, exits) and is never reset for a memory location, so
 * (seq, state) identifies one stretch of one goroutine's life:
 *  - only the owning thread moves a goroutine RUNNABLE->RUNNING and
 *    RUNNING->WAITING/RUNNABLE/DEAD (plain release stores);
 *  - any thread may *claim* a WAITING goroutine with a CAS
 *    (seq, WAITING) -> (seq, RUNNABLE). Exactly one waker wins; it then fills
 *    in the wake result and puts the goroutine on a run queue. Channels,
 *    select, timers and sync primitives all wake through this claim.
 *  - diagnostic readers (dumps, profiles, leak checks) copy what they need
 *    from a G without any lock and keep the copy only if the status word and
 *    the registry slot are unchanged afterwards (a seqlock). Records and
 *    stacks are never unmapped while the runtime runs, so a stale read is
 *    harmless.
 */
#ifndef GORO_G_H
#define GORO_G_H

#include "runtime/internal.h"
#include "runtime/lock.h"
#include "runtime/timer.h"

enum goro__gstate {
    GORO__G_FREE = 0,
    GORO__G_RUNNABLE = 1,
    GORO__G_RUNNING = 2,
    GORO__G_WAITING = 3,
    GORO__G_DEAD = 4,
    GORO__G_SYSCALL = 5,
};
#define GORO__GST_STATE(s) ((unsigned)((s)&0xf))
#define GORO__GST_SEQ(s) ((s) >> 4)
#define GORO__GST(seq, state) (((uint64_t)(seq) << 4) | (uint64_t)(state))

/* Wait reasons: Go's strings, in the order of goro__wait_reason_str. */
enum goro__wait_reason {
    GORO__WAIT_NONE = 0,
    GORO__WAIT_CHAN_SEND,
    GORO__WAIT_CHAN_RECV,
    GORO__WAIT_SELECT,
    GORO__WAIT_SELECT_NO_CASES,
    GORO__WAIT_SLEEP,
    GORO__WAIT_MUTEX,
    GORO__WAIT_RWMUTEX_RLOCK,
    GORO__WAIT_RWMUTEX_LOCK,
    GORO__WAIT_WAITGROUP,
    GORO__WAIT_COND,
    GORO__WAIT_ONCE,
    GORO__WAIT_IO,
    GORO__WAIT_CTX,
    GORO__WAIT_COUNT
};
const char *goro__wait_reason_str(unsigned reason);

/* The goro primitive a wait reason blocks on (for leak analysis): true for
 * channels, select and sync primitives; false for sleep, I/O, syscalls. */
/* The waits on goro primitives (channels, select, sync, contexts): what
 * leak checks judge and the census counts; never I/O, sleep or syscalls. */
#define GORO__WAIT_PRIMITIVE_MASK                                                              \
    ((1u << GORO__WAIT_CHAN_SEND) | (1u << GORO__WAIT_CHAN_RECV) | (1u << GORO__WAIT_SELECT) | \
     (1u << GORO__WAIT_SELECT_NO_CASES) | (1u << GORO__WAIT_MUTEX) |                          \
     (1u << GORO__WAIT_RWMUTEX_RLOCK) | (1u << GORO__WAIT_RWMUTEX_LOCK) |                     \
     (1u << GORO__WAIT_WAITGROUP) | (1u << GORO__WAIT_COND) | (1u << GORO__WAIT_ONCE) |       \
     (1u << GORO__WAIT_CTX))
bool goro__wait_reason_is_primitive(unsigned reason);

#define GORO__CREATE_DEPTH 6

/* Everything decided at spawn time; immutable afterwards. */
typedef struct goro__spawn_info {
    goro_fn fn;
    void *arg;
    uint64_t parent_id;
    const char *file; /* creation site from goro_go (may be NULL) */
    const char *func;
    int32_t line : 24;                 /* 0 when unknown or >= 2^23 */
    uint32_t npc : 8;                  /* creation stack depth */
    uint32_t scope;                    /* leak-check scope (debug/leak.c) */
    uintptr_t pc[GORO__CREATE_DEPTH];  /* return addresses, spawner first */
} goro__spawn_info;

enum { GORO__KIND_NEWBORN = 1, GORO__KIND_G = 2 };

typedef struct goro__gbase {
    _Atomic uint64_t status;
    uint64_t id;
    uint32_t slot;                 /* registry index */
    uint8_t kind;                  /* GORO__KIND_* */
} goro__gbase;

typedef struct goro__newborn {
    goro__gbase base;
    goro__spawn_info info;
    char *name; /* malloc'd copy of the optional name, moved into the G */
} goro__newborn;

struct goro__waiter;

/* Work a goroutine must finish if it ends through goro_exit in the middle
 * of a runtime call (goro_once_do's function calling goro_exit). A stack of
 * records on the goroutine's own stack, innermost first; goro_exit runs
 * them in order before the goroutine dies. */
typedef struct goro__exit_hook {
    struct goro__exit_hook *next;
    void (*fn)(struct goro__exit_hook *h);
} goro__exit_hook;

typedef struct goro__g {
    goro__gbase base;
    void *sp;                      /* saved context while not running */
    /* Stack slot identity: set once per slot by stack.c, kept across reuse. */
    uintptr_t stack_lo;            /* lowest usable byte (above the guard) */
    uintptr_t stack_hi;            /* == (uintptr_t)this record */
    uint32_t stack_region, stack_index;
    uint8_t stack_canary;          /* no guard page: canary at stack_lo */
    struct goro__m *m;             /* thread running it (only while RUNNING) */
    /* Wait information, written by the goroutine itself before it parks. */
    uint8_t wait_reason;
    uint8_t longrun_reported;
    uint32_t cur_scope;            /* scope this goroutine's children join */
    int64_t wait_since;            /* coarse clock */
    const void *wait_obj;          /* primitive waited on (first one) */
    void *wait_fp;                 /* frame of the public blocking call */
    struct goro__waiter *waiting;  /* waiter records on this stack */
    uint32_t nwaiting;
    /* Wake result, written by the claimer before it readies the goroutine. */
    int32_t wake;
    /* Census (census.h): the last park epoch logged, and the mark sysmon
     * publishes when it counts a park (never reset: stale marks carry an
     * older status sequence). */
    uint32_t census_epoch;
    _Atomic uint64_t census_mark;
    goro__timer timer;             /* deadline of the current wait */
    goro__spawn_info info;
    goro__exit_hook *exit_hooks;   /* see goro__exit_hook */
    char name[GORO_NAME_MAX];
    /* Tool support (sanitizer fibers). */
    void *asan_fake_stack;
    void *tsan_fiber;
} goro__g;

/* Wake values (goro__g.wake) other than a select case index. */
#define GORO__WAKE_NONE (-1)
#define GORO__WAKE_TIMEOUT (-2)
#define GORO__WAKE_CLOSED (-3)

/* ---- registry ----------------------------------------------------------- */

/* Upper bound (exclusive) of slot indices handed out so far. */
uint32_t goro__reg_limit(void);
/* The goroutine in slot i, or NULL (acquire load). */
goro__gbase *goro__reg_get(uint32_t i);
void goro__reg_set(uint32_t i, goro__gbase *g);

/* A consistent copy of one goroutine, for dumps, profiles and leak checks.
 * Deliberately without the spawn argument or the objects waited on: these
 * copies end up in freed heap memory, and a stale pointer there would keep
 * a leaked channel "reachable" for the leak scan. (info.arg is NULL.) */
typedef struct goro__gsnap {
    uint64_t id;
    unsigned state;
    unsigned wait_reason;
    bool newborn;
    int64_t wait_since;
    goro__spawn_info info;
    char name[GORO_NAME_MAX];
    uint32_t npc;          /* current stack, innermost first */
    uintptr_t pc[64];
    uint64_t stack_bytes;  /* memory the goroutine holds: its stack's pages
                              in use (at least one) or its newborn record */
} goro__gsnap;

/* A cheap consistent look at a parked goroutine (no unwinding): what the
 * watchdog groups by. */
typedef struct goro__gpeek {
    uint64_t id;
    unsigned state, wait_reason;
    bool newborn;
    bool timed;           /* its wait has a deadline */
    int64_t wait_since;
    uintptr_t wait_pc;    /* return address of the public blocking call */
    uint64_t stack_bytes; /* as goro__gsnap.stack_bytes */
    goro__spawn_info info; /* info.arg is NULL (see goro__gsnap) */
} goro__gpeek;
bool goro__gpeek_take(uint32_t i, goro__gpeek *out);
uint64_t goro__g_stack_bytes(const goro__g *g, unsigned state);

/* Snapshot the goroutine in registry slot i. Returns false if the slot is
 * empty. A goroutine that is running on another thread is copied without
 * its stack (npc = 0). Never blocks the goroutine. */
bool goro__gsnap_take(uint32_t i, goro__gsnap *out);
/* Hint that goro__gsnap_take(i) comes soon: call with stage 0 about 16
 * slots ahead and stage 1 about 8 ahead. */
void goro__gsnap_prefetch(uint32_t i, int stage);
#define GORO__SNAP_AHEAD(i, lim)                                                                  \
    do {                                                                                          \
        if ((i) + 16 < (lim))                                                                     \
            goro__gsnap_prefetch((i) + 16, 0);                                                    \
        if ((i) + 8 < (lim))                                                                      \
            goro__gsnap_prefetch((i) + 8, 1);                                                    \
    } while (0)

#endif /* GORO_G_H */
