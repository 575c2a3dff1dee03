/*
 * leakscan.c - the reachability leak scan (Go's goroutineleak profile,
 * golang/go#74609, done conservatively for C).
 *
 * A goroutine blocked (without a deadline) on goro primitives — channels,
 * select, Mutex, RWMutex, WaitGroup, Cond, Once — is leaked when none of
 * those primitives can be reached from live memory: nobody can ever wake it.
 *
 * Algorithm:
 *  1. Prepare, with the world running: size the memory map, read the
 *     writable segments of loaded objects and the thread list; plan the
 *     heap map from the mappings (bitmaps with room for growth); map
 *     every buffer the scan needs (a stopped thread may hold malloc's lock, so nothing is
 *     allocated while the world is stopped) — these buffers are excluded
 *     from the scan. The scan runs on a goroutine (goro_leak_scan, the
 *     goroutineleak profile: its callers' frames are roots) or on goro's
 *     confirmation thread (leakconfirm.c, for the watchdog: no goroutine,
 *     its stack holds runtime frames only and is not scanned).
 *  2. Stop the world: close the scheduler's thread-creation gate (no M
 *     starts until the world restarts; every M already starting has its
 *     tid published), then send a real-time signal to every other thread
 *     goro owns (its Ms, sysmon and the confirmation thread, whose frames
 *     are runtime code and are not scanned) and to foreign threads that are
 *     running; the
 *     handler records the thread's registers and stack pointer and waits.
 *     Threads that do not answer within 1 s make the scan incomplete (no
 *     goroutine is judged: the scan may miss leaks, never invent them).
 *     Foreign threads blocked in a system call or blocking the signal are
 *     left alone (a signal would end a nanosleep or epoll_wait with EINTR,
 *     or never be answered): their stacks are scanned whole as writable
 *     memory, their registers are not seen, and one that was in a system
 *     call and ran meanwhile (its context-switch count moved) makes the
 *     scan incomplete, as does a thread that is not in the list read
 *     before the stop (it ran through it unseen). Then read
 *     /proc/self/maps (raw reads into the scan's buffers): mappings made
 *     or removed while preparing are neither read after they are gone nor
 *     missed.
 *  3. Build the heap map (heapmap.c): the malloc heap's live blocks, from
 *     glibc's chunk headers and the heap profiler's sample region.
 *  4. Classify goroutines: blocked on primitives with no deadline ->
 *     candidates (with the objects they wait on; a select with no cases,
 *     or only NULL ones, waits on nothing); everything else (running,
 *     runnable, newborn, in I/O, sleeping, in a syscall, waiting with a
 *     deadline) -> roots. An object is the heap block that holds the
 *     primitive (a channel is a block of its own), or belongs to the
 *     goroutine whose stack holds it, or lies in a global (always
 *     reachable); when its container cannot be determined the candidate is
 *     treated as reachable.
 *  5. Mark from the roots: writable segments of loaded objects; each
 *     stopped thread's registers and stack above its stack pointer; root
 *     goroutines' stacks above their saved stack pointers (and the spawn
 *     argument of newborn and running ones); armed timers (a context's
 *     deadline timer lives in the context, which it can still cancel); and
 *     every writable mapping that is neither a known heap block nor goro's
 *     own (goroutine stacks, registry, newborn region, the scan's buffers):
 *     anonymous memory the heap map does not recognise, shared and
 *     file-backed mappings. The heap is not a root: a word pointing into a
 *     live block marks it and queues its contents to be scanned (a mark
 *     stack; when it overflows, every marked block is scanned again until
 *     nothing new is marked). goro's own records in the heap (P and M
 *     structures) are marked but never scanned: they hold stale copies.
 *     A word pointing into an object marks the object; its waiters become
 *     roots.
 *  6. Fixed point: a candidate with a marked object becomes a root; its
 *     stack is scanned, and the blocks it reaches; repeat. Candidates left
 *     are leaked.
 *  7. Retained memory (world still stopped, verdict kept): mark from each
 *     leaked goroutine's stack in turn; the heap bytes newly marked are
 *     what only the leaked goroutines hold (a block several of them reach
 *     counts for the first); with each leaked goroutine's channel (creation
 *     site, capacity, buffered count, references) for the reports.
 *  8. Restart the world; symbolize afterwards.
 *
 * Failure modes (documented in README): a stale copy of a pointer in dead
 * stack slots, registers or glibc fastbin chunks (free, but indistinguish-
 * able from live ones) hides a leak (false negative); memory that is not
 * recognised as heap is scanned as a root, which can only hide a leak too.
 * A timer callback running on a scheduler thread while the world stops
 * holds its context only in that thread's frames, which are not scanned.
 * The world stays stopped while the heap is walked and marked.
 * Sanitizer builds cannot be scanned (shadow memory, poisoned reads).
 */
#define GORO__MUTEX_RANK GORO__RANK_SCHED /* lock.h */
#include "debug/leakscan.h"

#include <dirent.h>
#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "chan/chan_internal.h"
#include "debug/heapmap.h"
#include "debug/leakconfirm.h"
#include "prof/heapprof.h"
#include "runtime/sched.h"
#include "runtime/vg.h"

#define MAX_OBJ_PER_G 64
#define MAX_THREADS 4096

bool goro__leakscan_supported(const char **why)
{
#if GORO__ASAN || GORO__TSAN
    if (why)
        *why = GORO__ASAN ? "not available under AddressSanitizer (poisoned memory cannot be scanned)"
                          : "not available under ThreadSanitizer (the scan reads memory racily by design)";
    return false;
#else
    if (RUNNING_ON_VALGRIND) {
        if (why)
            *why = "not available under valgrind (its allocator replaces glibc's heap, and "
                   "memcheck would flag every conservative read)";
        return false;
    }
    (void)why;
    return true;
#endif
}

/* ---- memory for the scan (mmapped, excluded from it) ------------------------- */

typedef struct range {
    uintptr_t lo, hi;
} range;

typedef struct arena {
    char *base;
    size_t len, used;
} arena;

static void *aalloc(arena *a, size_t n)
{
    n = GORO__ALIGN_UP(n, 16);
    if (a->used + n > a->len)
        return NULL;
    void *p = a->base + a->used;
    a->used += n;
    return p;
}

/* ---- stopping the world ---------------------------------------------------- */

typedef struct tstop {
    _Atomic int tid;
    _Atomic uint32_t done;
    uintptr_t sp;
    greg_t regs[NGREG];
    goro__m *m;
} tstop;

static struct {
    _Atomic uint32_t gen;      /* bumped per stop */
    _Atomic uint32_t release;  /* == gen: go on */
    _Atomic uint32_t checked;
    tstop *slots;
    uint32_t cap;
    int sig;
    bool installed;
    pthread_mutex_t lock;      /* one scan at a time */
} stw = {.lock = PTHREAD_MUTEX_INITIALIZER};

GORO__NO_SANITIZE static void on_stop(int sig, siginfo_t *si, void *ucv)
{
    (void)sig;
    (void)si;
    int saved = errno;
    uint32_t gen = atomic_load(&stw.gen);
    if (atomic_load(&stw.release) != gen) {
        uint32_t i = atomic_fetch_add(&stw.checked, 1);
        if (i < stw.cap) {
            tstop *t = &stw.slots[i];
            ucontext_t *uc = ucv;
            memcpy(t->regs, uc->uc_mcontext.gregs, sizeof t->regs);
            t->sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
            t->m = goro__getm();
            atomic_store(&t->tid, (int)syscall(SYS_gettid));
            atomic_store_explicit(&t->done, 1, memory_order_release);
        }
        while (atomic_load(&stw.release) != gen)
            goro__futex_wait(&stw.release, atomic_load(&stw.release), 10 * GORO_MILLISECOND);
    }
    errno = saved;
}

static int install_handler(void)
{
    if (stw.installed)
        return 0;
    /* A handler the program installed is its own use of the signal: do not
     * replace it (the scan then cannot stop the world). */
    struct sigaction old;
    if (sigaction(SIGRTMIN + 5, NULL, &old) == 0 &&
        ((old.sa_flags & SA_SIGINFO) ? old.sa_sigaction != on_stop
                                     : old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN))
        return -EBUSY;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_stop;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&sa.sa_mask);
    stw.sig = SIGRTMIN + 5;
    if (sigaction(stw.sig, &sa, NULL) != 0)
        return -errno;
    stw.installed = true;
    return 0;
}

/* ---- preparation (world running) ---------------------------------------------- */

/* A thread goro does not own, looked at without disturbing it: is it
 * blocked in a system call (a signal would make nanosleep, epoll_wait,
 * poll... return EINTR), does it block the stop signal (it would never
 * answer), and how often has it been switched out (did it run since)? */
typedef struct tprobe {
    bool in_syscall, blocks_sig;
    uint64_t switches;
} tprobe;

static ssize_t read_small(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n >= 0)
        buf[n] = 0;
    return n;
}

static bool thread_probe(int tid, int sig, tprobe *t)
{
    char path[64], buf[2048];
    memset(t, 0, sizeof *t);
    snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
    if (read_small(path, buf, sizeof buf) <= 0)
        return false;
    const char *q = strstr(buf, "SigBlk:");
    if (q) {
        unsigned long long mask = strtoull(q + 7, NULL, 16);
        t->blocks_sig = (mask >> (sig - 1)) & 1;
    }
    if ((q = strstr(buf, "voluntary_ctxt_switches:")))
        t->switches += strtoull(q + 24, NULL, 10);
    if ((q = strstr(buf, "nonvoluntary_ctxt_switches:")))
        t->switches += strtoull(q + 27, NULL, 10) << 32;
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
    if (read_small(path, buf, sizeof buf) > 0)
        t->in_syscall = buf[0] >= '0' && buf[0] <= '9';
    return true;
}

typedef struct tskip {
    bool skip;        /* not signalled */
    tprobe before;
} tskip;

typedef struct prep {
    goro__vma *maps;     /* read again once the world is stopped (scan arena) */
    size_t nmaps, capmaps;
    range *globals;
    size_t nglobals, capglobals;
    int *tids;
    size_t ntids;
    tskip *foreign;      /* per tids[i]: threads goro does not own */
    size_t nforeign_cap;
} prep;

/* Parse /proc/self/maps with raw reads and no allocation: it runs while the
 * world is stopped (another thread may hold malloc's or stdio's locks).
 * Fills out[0..cap) when out is not NULL; *n gets the number of mappings
 * (also those past cap). buf is scratch space of buflen bytes. */
GORO__NO_SANITIZE static int maps_parse(goro__vma *out, size_t cap, size_t *n, char *buf, size_t buflen)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = 0, count = 0;
    bool eof = false;
    while (!eof || len > 0) {
        if (!eof && len < buflen) {
            ssize_t r = read(fd, buf + len, buflen - len);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                int e = -errno;
                close(fd);
                return e;
            }
            if (r == 0)
                eof = true;
            len += (size_t)r;
        }
        char *nl = memchr(buf, '\n', len);
        if (!nl && !eof && len < buflen)
            continue;
        size_t linelen = nl ? (size_t)(nl - buf) : len;
        /* "lo-hi perms offset dev inode   path" */
        const char *q = buf, *end = buf + linelen;
        uintptr_t v[2] = {0, 0};
        for (int k = 0; k < 2; k++, q++)
            for (; q < end && *q != '-' && *q != ' '; q++)
                v[k] = v[k] * 16 + (uintptr_t)(*q <= '9' ? *q - '0' : (*q | 32) - 'a' + 10);
        char perms[4] = {0};
        for (int k = 0; k < 4 && q < end; k++)
            perms[k] = *q++;
        bool file = false;
        for (int field = 0; field < 3 && q < end; field++) { /* offset dev inode */
            while (q < end && *q == ' ')
                q++;
            if (field == 2) {
                unsigned long inode = 0;
                while (q < end && *q >= '0' && *q <= '9')
                    inode = inode * 10 + (unsigned long)(*q++ - '0');
                file = inode != 0;
            } else {
                while (q < end && *q != ' ')
                    q++;
            }
        }
        while (q < end && *q == ' ')
            q++;
        size_t plen = (size_t)(end - q);
        if (v[1] > v[0]) {
            if (out && count < cap) {
                uint32_t f = (perms[0] == 'r' ? GORO__VMA_R : 0) | (perms[1] == 'w' ? GORO__VMA_W : 0) |
                             (perms[3] == 's' ? GORO__VMA_SHARED : 0) | (file ? GORO__VMA_FILE : 0);
                if (plen == 6 && memcmp(q, "[heap]", 6) == 0)
                    f |= GORO__VMA_HEAP;
                else if (plen > 0 && q[0] == '[' && !(plen > 6 && memcmp(q, "[anon:", 6) == 0))
                    f |= GORO__VMA_SPECIAL; /* [stack], [vvar], [vdso], ... */
                else if (plen > 5 && memcmp(q, "/dev/", 5) == 0 &&
                         !(plen >= 9 && memcmp(q, "/dev/zero", 9) == 0) &&
                         !(plen > 9 && memcmp(q, "/dev/shm/", 9) == 0))
                    f |= GORO__VMA_SPECIAL; /* device memory: never read it */
                out[count] = (goro__vma){.lo = v[0], .hi = v[1], .flags = f};
            }
            count++;
        }
        size_t used = nl ? linelen + 1 : len;
        memmove(buf, buf + used, len - used);
        len -= used;
    }
    close(fd);
    *n = count;
    return 0;
}

static int phdr_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    prep *p = arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W))
            continue;
        if (p->nglobals == p->capglobals) {
            size_t ncap = p->capglobals ? p->capglobals * 2 : 64;
            range *ng = realloc(p->globals, ncap * sizeof *ng);
            if (!ng)
                return 1;
            p->globals = ng;
            p->capglobals = ncap;
        }
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        p->globals[p->nglobals++] = (range){lo & ~(uintptr_t)7, lo + ph->p_memsz};
    }
    return 0;
}

static int read_tids(prep *p)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -errno;
    size_t cap = 64;
    p->tids = malloc(cap * sizeof *p->tids);
    struct dirent *e;
    while (p->tids && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (p->ntids == cap) {
            cap *= 2;
            int *nt = realloc(p->tids, cap * sizeof *nt);
            if (!nt) {
                free(p->tids);
                p->tids = NULL;
                break;
            }
            p->tids = nt;
        }
        p->tids[p->ntids++] = atoi(e->d_name);
    }
    closedir(d);
    return p->tids ? 0 : -ENOMEM;
}

/* Whether /proc/self/task lists a thread that p->tids does not (with the
 * world stopped: raw system calls into buf, no allocation). A list that
 * cannot be read counts as changed. */
static bool tids_new(const prep *p, char *buf, size_t len)
{
    int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return true;
    bool found = false;
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buf, len);
        if (n <= 0) {
            found = found || n < 0;
            break;
        }
        for (long off = 0; off < n && !found;) {
            struct {
                uint64_t ino;
                int64_t off;
                unsigned short reclen;
                unsigned char type;
                char name[];
            } *d = (void *)(buf + off);
            off += d->reclen;
            if (d->name[0] < '0' || d->name[0] > '9')
                continue;
            int tid = 0;
            for (const char *c = d->name; *c >= '0' && *c <= '9'; c++)
                tid = tid * 10 + (*c - '0');
            bool known = false;
            for (size_t i = 0; i < p->ntids && !known; i++)
                known = p->tids[i] == tid;
            found = !known;
        }
        if (found)
            break;
    }
    syscall(SYS_close, fd);
    return found;
}

/* ---- objects and marking -------------------------------------------------------- */

typedef struct object {
    uintptr_t lo, hi;
    goro__g *owner;        /* primitive on this goroutine's stack, or NULL */
    uint32_t first_waiter; /* index into waiters of the first candidate */
    uint8_t marked;
    uintptr_t marked_by;   /* address of the word that marked it (0: owner) */
} object;

typedef struct cand {
    goro__g *g;
    uint64_t id;
    uint8_t root;        /* became a root */
    uint8_t leaked;      /* the verdict, kept before the retained pass */
    goro__scan_leak info; /* leaked only: retained bytes, its channel */
    uint32_t nobj;
    uint32_t objs[MAX_OBJ_PER_G]; /* object indices */
} cand;

typedef struct scan {
    arena a;
    object *objs;
    size_t nobjs, capobjs;
    uint32_t *order; /* objects sorted by lo */
    cand *cands;
    size_t ncands, capcands;
    /* object -> candidates waiting on it (linked through wnext) */
    uint32_t *wcand, *wnext;
    size_t nw, capw;
    uint32_t *work;      /* candidate indices that became roots */
    size_t nwork;
    uint64_t *bloom;     /* bit per page hash */
    size_t bloom_bits;
    uintptr_t omin, omax;
    range *excl;         /* sorted ranges not to scan in the heap pass */
    size_t nexcl, capexcl;
    uint64_t scanned;
    uint32_t *owned;     /* objects with an owner, sorted by owner */
    size_t nowned;
    goro__heapmap hm;    /* heap blocks (heapmap.c) */
    range *noscan;       /* goro's own records: marked, never scanned */
    size_t nnoscan;
    range *mstack;       /* marked blocks not scanned yet */
    size_t nmstack, capmstack;
    bool overflow;       /* a marked block did not fit on mstack */
    uint64_t heap_scanned;
} scan;

static inline size_t page_hash(uintptr_t a, size_t bits)
{
    return (size_t)(((a >> 12) * 0x9E3779B97F4A7C15ull) >> 40) & (bits - 1);
}

/* The object a word points into, or -1. */
GORO__NO_SANITIZE static inline long find_obj(const scan *s, uintptr_t w)
{
    if (w < s->omin || w >= s->omax)
        return -1;
    size_t h = page_hash(w, s->bloom_bits);
    if (!(s->bloom[h >> 6] & (1ull << (h & 63))))
        return -1;
    size_t lo = 0, hi = s->nobjs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->objs[s->order[mid]].lo <= w)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return -1;
    uint32_t k = s->order[lo - 1];
    return (w < s->objs[k].hi) ? (long)k : -1;
}

static void mark_from(scan *s, uint32_t k, uintptr_t by)
{
    object *o = &s->objs[k];
    if (o->marked)
        return;
    o->marked = 1;
    o->marked_by = by;
    for (uint32_t w = o->first_waiter; w != UINT32_MAX; w = s->wnext[w]) {
        cand *c = &s->cands[s->wcand[w]];
        if (!c->root) {
            c->root = 1;
            s->work[s->nwork++] = s->wcand[w];
        }
    }
}

static bool in_sorted(const range *r, size_t n, uintptr_t lo, uintptr_t hi)
{
    size_t a = 0, b = n;
    while (a < b) {
        size_t mid = (a + b) / 2;
        if (r[mid].hi <= lo)
            a = mid + 1;
        else
            b = mid;
    }
    return a < n && r[a].lo < hi;
}

/* Objects (primitives waited on) that lie in the heap block [lo, hi). */
static void mark_objs_in(scan *s, uintptr_t lo, uintptr_t hi, uintptr_t by)
{
    if (hi <= s->omin || lo >= s->omax)
        return;
    size_t a = 0, b = s->nobjs;
    while (a < b) {
        size_t mid = (a + b) / 2;
        if (s->objs[s->order[mid]].lo < lo)
            a = mid + 1;
        else
            b = mid;
    }
    for (; a < s->nobjs && s->objs[s->order[a]].lo < hi; a++)
        mark_from(s, s->order[a], by);
}

/* A word that may point into a heap block: mark the block (once) and
 * queue its contents, unless it is one of goro's own records. */
GORO__NO_SANITIZE static inline void heap_mark(scan *s, uintptr_t w, uintptr_t by)
{
    goro__hblk b;
    if (!goro__heapmap_find(&s->hm, w, &b) || !goro__heapmap_mark(&s->hm, &b))
        return;
    mark_objs_in(s, b.lo, b.hi, by);
    if (in_sorted(s->noscan, s->nnoscan, b.lo, b.hi))
        return;
    if (s->nmstack < s->capmstack)
        s->mstack[s->nmstack++] = (range){b.lo, b.hi};
    else
        s->overflow = true;
}

GORO__NO_SANITIZE static void scan_range(scan *s, uintptr_t lo, uintptr_t hi)
{
    lo = GORO__ALIGN_UP(lo, 8);
    if (hi <= lo)
        return;
    s->scanned += hi - lo;
    for (const uintptr_t *p = (const uintptr_t *)lo; (uintptr_t)p + 8 <= hi; p++) {
        uintptr_t w = *p;
        long k = find_obj(s, w);
        if (k >= 0)
            mark_from(s, (uint32_t)k, (uintptr_t)p);
        if (w - s->hm.lo < s->hm.hi - s->hm.lo)
            heap_mark(s, w, (uintptr_t)p);
    }
}

/* Scan the contents of every marked block not scanned yet. */
static void drain(scan *s)
{
    while (s->nmstack) {
        range r = s->mstack[--s->nmstack];
        uint64_t before = s->scanned;
        scan_range(s, r.lo, r.hi);
        s->heap_scanned += s->scanned - before;
    }
}

static void rescan_block(uintptr_t lo, uintptr_t hi, void *arg)
{
    scan *s = arg;
    if (in_sorted(s->noscan, s->nnoscan, lo, hi))
        return;
    scan_range(s, lo, hi);
    drain(s);
}

static void mark(scan *s, uint32_t k) { mark_from(s, k, 0); }

/* Primitives on g's stack become reachable when g is live. */
static void mark_owned(scan *s, const goro__g *g)
{
    size_t lo = 0, hi = s->nowned;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((uintptr_t)s->objs[s->owned[mid]].owner < (uintptr_t)g)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < s->nowned && s->objs[s->owned[lo]].owner == g; lo++)
        mark(s, s->owned[lo]);
}

static void scan_word(scan *s, uintptr_t w)
{
    long k = find_obj(s, w);
    if (k >= 0)
        mark(s, (uint32_t)k);
    heap_mark(s, w, 0);
}

/* An armed timer keeps what it will act on: the block holding it (a
 * context's deadline timer lives in the context) and its argument. */
static void timer_root(goro__timer *t, void *arg)
{
    scan *s = arg;
    scan_word(s, (uintptr_t)t);
    scan_word(s, (uintptr_t)t->arg);
}

/* Scan [lo, hi) minus the exclusion ranges. */
static void scan_minus_excl(scan *s, uintptr_t lo, uintptr_t hi);

/* Scan only the resident pages of [lo, hi) (minus exclusions): a page that
 * was never touched reads as zeroes and holds no pointer. Only valid
 * without swap (a swapped-out page is not resident either); `vec` has one
 * byte per page of a 1 GiB chunk. */
static void scan_resident(scan *s, uintptr_t lo, uintptr_t hi, unsigned char *vec, bool use_mincore)
{
    if (!use_mincore || !vec) {
        scan_minus_excl(s, lo, hi);
        return;
    }
    const uintptr_t chunk = 1ull << 30;
    for (uintptr_t c = lo; c < hi; c += chunk) {
        uintptr_t e = hi - c < chunk ? hi : c + chunk;
        if (mincore((void *)c, e - c, vec) != 0) {
            /* Part of it is not mapped (cannot happen with the map read
             * while the world is stopped; stay safe): page by page. */
            for (uintptr_t pg = c; pg < e; pg += 4096)
                if (mincore((void *)pg, 4096, vec) == 0 && (vec[0] & 1))
                    scan_minus_excl(s, pg, pg + 4096 < e ? pg + 4096 : e);
            continue;
        }
        size_t npg = (e - c + 4095) / 4096;
        for (size_t i = 0; i < npg;) {
            if (!(vec[i] & 1)) {
                i++;
                continue;
            }
            size_t j = i;
            while (j < npg && (vec[j] & 1))
                j++;
            uintptr_t rlo = c + i * 4096, rhi = c + j * 4096;
            scan_minus_excl(s, rlo, rhi < e ? rhi : e);
            i = j;
        }
    }
}

static bool swap_enabled(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return true;
    char line[128];
    long kb = 1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "SwapTotal: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb != 0;
}

static void scan_minus_excl(scan *s, uintptr_t lo, uintptr_t hi)
{
    for (size_t i = 0; i < s->nexcl && lo < hi; i++) {
        range e = s->excl[i];
        if (e.hi <= lo)
            continue;
        if (e.lo >= hi)
            break;
        if (e.lo > lo)
            scan_range(s, lo, e.lo);
        lo = e.hi > lo ? e.hi : lo;
    }
    if (lo < hi)
        scan_range(s, lo, hi);
}

static void excl_add(scan *s, uintptr_t lo, uintptr_t hi)
{
    if (s->nexcl < s->capexcl)
        s->excl[s->nexcl++] = (range){lo, hi};
}

static void excl_cb(uintptr_t lo, uintptr_t hi, void *arg) { excl_add(arg, lo, hi); }

static int cmp_range(const void *a, const void *b)
{
    const range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static int cmp_owner(const void *a, const void *b);
static const object *sort_objs_base;
static int cmp_owner(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)sort_objs_base[*(const uint32_t *)a].owner;
    uintptr_t y = (uintptr_t)sort_objs_base[*(const uint32_t *)b].owner;
    return x < y ? -1 : x > y;
}

static int cmp_obj(const void *a, const void *b)
{
    const object *x = &sort_objs_base[*(const uint32_t *)a], *y = &sort_objs_base[*(const uint32_t *)b];
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* ---- the scan ---------------------------------------------------------------- */

static int add_obj(scan *s, uintptr_t lo, uintptr_t hi, goro__g *owner, uint32_t *idx)
{
    /* Same object twice (several waiters close together): reuse it. */
    for (size_t i = s->nobjs; i-- > 0 && i + 64 >= s->nobjs;)
        if (s->objs[i].lo == lo && s->objs[i].hi == hi) {
            *idx = (uint32_t)i;
            return 0;
        }
    if (s->nobjs == s->capobjs)
        return -ENOMEM;
    s->objs[s->nobjs] = (object){.lo = lo, .hi = hi, .owner = owner, .first_waiter = UINT32_MAX};
    *idx = (uint32_t)s->nobjs++;
    return 0;
}

static void link_waiter(scan *s, uint32_t obj, uint32_t cand)
{
    if (s->nw == s->capw)
        return;
    s->wcand[s->nw] = cand;
    s->wnext[s->nw] = s->objs[obj].first_waiter;
    s->objs[obj].first_waiter = (uint32_t)s->nw++;
}

static bool in_ranges(const range *r, size_t n, uintptr_t a)
{
    for (size_t i = 0; i < n; i++)
        if (a >= r[i].lo && a < r[i].hi)
            return true;
    return false;
}

typedef struct groot {
    goro__g *g;
    uintptr_t lo, hi;   /* stack range to scan */
    uintptr_t arg;
} groot;

static int cmp_id(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

struct own_ranges {
    goro__vma *v;
    size_t n, cap;
};

/* Mark the part of each mapping that overlaps one of goro's own regions as
 * not heap. The kernel merges neighbouring anonymous mappings, so one
 * mapping can hold goro's region and an arena heap of malloc's: the mapping
 * is split at the region's bounds (an arena heap inside a wholly flagged
 * mapping was never planned, and every channel in it was taken for a
 * primitive of unknown container, i.e. reachable). Without room to split,
 * the whole mapping is flagged (the heap there is then a root). */
static void own_cb(uintptr_t lo, uintptr_t hi, void *arg)
{
    struct own_ranges *o = arg;
    size_t n = o->n;
    for (size_t i = 0; i < n; i++) {
        goro__vma *v = &o->v[i];
        if (!(v->lo < hi && v->hi > lo) || (v->flags & GORO__VMA_SPECIAL))
            continue;
        size_t need = (v->lo < lo) + (v->hi > hi);
        if (o->n + need > o->cap) {
            v->flags |= GORO__VMA_SPECIAL;
            continue;
        }
        if (v->lo < lo) {
            o->v[o->n] = *v;
            o->v[o->n++].hi = lo;
            v->lo = lo;
        }
        if (v->hi > hi) {
            o->v[o->n] = *v;
            o->v[o->n++].lo = hi;
            v->hi = hi;
        }
        v->flags |= GORO__VMA_SPECIAL;
    }
}

/* One scan. Called from a goroutine (self_g: its callers' frames above fp
 * are roots) or from goro's confirmation thread (self_g NULL: its stack
 * [own_lo, own_hi) holds runtime frames only and is not scanned). */
static int scan_run(goro__g *self_g, uintptr_t fp, uintptr_t own_lo, uintptr_t own_hi,
                    goro__scan_result *res)
{
    memset(res, 0, sizeof *res);
    int64_t t_start = goro__nanotime();
    if (!goro__leakscan_supported(&res->incomplete))
        return 0;
    pthread_mutex_lock(&stw.lock);
    /* No M thread starts until the world has restarted, and each one
     * started before has its tid published: every thread goro owns is
     * known and signalled (sched.c, the thread-creation gate). */
    bool gate_ok = goro__newm_gate_close(GORO_SECOND) == 0;
    int rc = install_handler();
    if (rc == -EBUSY)
        res->incomplete = "SIGRTMIN+5, the scan's stop signal, has a handler of the program's";
    prep p = {0};
    char mapbuf[4096];
    if (rc == 0) /* only counted now: read again once the world is stopped */
        rc = maps_parse(NULL, 0, &p.nmaps, mapbuf, sizeof mapbuf);
    if (rc == 0)
        dl_iterate_phdr(phdr_cb, &p);
    if (rc == 0)
        rc = read_tids(&p);
    /* Threads goro does not own that are blocked in a system call or
     * block the stop signal are not signalled: a signal would end their
     * nanosleep or epoll_wait with EINTR, or never be answered. Their
     * stacks stay writable memory and are scanned whole as roots; their
     * registers cannot be read. Those in a system call are checked again
     * afterwards: one that ran meanwhile makes the scan incomplete. */
    if (rc == 0 && (p.foreign = calloc(p.ntids, sizeof *p.foreign))) {
        p.nforeign_cap = p.ntids;
        int mtids[GORO__MAX_PROCS * 4 + 64];
        size_t nm = 0;
        goro__mutex_lock(&goro__sched_.lock);
        for (goro__m *m = goro__sched_.allm; m; m = m->alllink)
            if (nm < sizeof mtids / sizeof mtids[0])
                mtids[nm++] = m->tid;
        bool all_known = nm + 2 < sizeof mtids / sizeof mtids[0];
        goro__mutex_unlock(&goro__sched_.lock);
        int smtid = goro__sysmon_tid(); /* goro's too: stopped like the Ms */
        if (smtid && all_known)
            mtids[nm++] = smtid;
        all_known = all_known && smtid;
        int cftid = 0; /* the confirmation thread (leakconfirm.c): goro's too */
        uintptr_t cflo, cfhi;
        if (goro__confirm_thread(&cftid, &cflo, &cfhi) && all_known)
            mtids[nm++] = cftid;
        int self = (int)syscall(SYS_gettid);
        for (size_t i = 0; all_known && i < p.ntids; i++) {
            bool is_m = p.tids[i] == self;
            for (size_t k = 0; k < nm && !is_m; k++)
                is_m = mtids[k] == p.tids[i];
            tskip *t = &p.foreign[i];
            if (!is_m && thread_probe(p.tids[i], stw.sig, &t->before))
                t->skip = t->before.in_syscall || t->before.blocks_sig;
        }
    }
    /* Plan the heap map from the mappings as they are now (the heap can
     * still grow before the world stops: planned with room to spare). */
    goro__heapmap hm = {0};
    goro__vma *pmaps = NULL;
    size_t hm_bytes = 0;
    if (rc == 0) {
        size_t cap = p.nmaps * 2 + 64, n = 0;
        pmaps = malloc(cap * sizeof *pmaps);
        hm.capsegs = cap + 64;
        hm.segs = malloc(hm.capsegs * sizeof *hm.segs);
        char *buf = malloc(1u << 16);
        if (!pmaps || !hm.segs || !buf)
            rc = -ENOMEM;
        else if ((rc = maps_parse(pmaps, cap, &n, buf, 1u << 16)) == 0) {
            /* goro's own regions are not heap (and goroutine stacks may
             * hold guard pages that fault when read). */
            size_t nv = n < cap ? n : cap;
            struct own_ranges own = {.v = pmaps, .n = nv, .cap = cap};
            goro__stack_regions(own_cb, &own);
            goro__g_regions(own_cb, &own);
            nv = own.n;
            goro__heapmap_probe(&hm);
            hm_bytes = goro__heapmap_plan(&hm, pmaps, nv);
            if (hm.nsegs > hm.capsegs) { /* many large blocks: more room */
                hm.capsegs = hm.nsegs + 64;
                goro__hseg *ns = realloc(hm.segs, hm.capsegs * sizeof *ns);
                if (ns) {
                    hm.segs = ns;
                    hm_bytes = goro__heapmap_plan(&hm, pmaps, nv);
                }
                if (!ns || hm.nsegs > hm.capsegs)
                    hm.nsegs = 0; /* no heap map: the heap is a root */
            }
        }
        free(buf);
        free(pmaps);
    }
    bool use_mincore = !swap_enabled();
    unsigned char *vec = mmap(NULL, (1u << 30) / 4096, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (vec == MAP_FAILED)
        vec = NULL;
    if (rc) {
        if (vec)
            munmap(vec, (1u << 30) / 4096);
        free(hm.segs);
        free(p.globals);
        free(p.tids);
        free(p.foreign);
        goro__newm_gate_open();
        pthread_mutex_unlock(&stw.lock);
        return rc;
    }

    /* Size everything for the goroutines there may be by the time the
     * world stops. */
    size_t gcap = (size_t)goro__reg_limit() + 65536;
    size_t ocap = gcap * 2 + 1024;
    scan s = {0};
    s.capcands = gcap;
    s.capobjs = ocap;
    s.capw = ocap;
    p.capmaps = p.nmaps * 2 + 1024; /* room for mappings made meanwhile */
    s.capexcl = 1024 + p.capmaps + hm.nsegs + GORO__MAX_PROCS * 2 + 64;
    s.capmstack = 1u << 20;
    s.bloom_bits = 1u << 23; /* 1 MiB */
    size_t stop_cap = p.ntids + 64;
    size_t bytes = gcap * sizeof(cand) + ocap * (sizeof(object) + sizeof(uint32_t) * 3) +
                   gcap * sizeof(uint32_t) + s.bloom_bits / 8 + s.capexcl * sizeof(range) +
                   gcap * sizeof(groot) + stop_cap * sizeof(tstop) + ocap * sizeof(uint32_t) +
                   p.capmaps * sizeof(goro__vma) + (1u << 16) + (1u << 16) +
                   2 * s.capexcl * sizeof(range) + s.capmstack * sizeof(range) +
                   hm.nsegs * sizeof(goro__hseg) + hm_bytes + 4096;
    s.a.len = GORO__ALIGN_UP(bytes, 4096);
    s.a.base = mmap(NULL, s.a.len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s.a.base == MAP_FAILED) {
        if (vec)
            munmap(vec, (1u << 30) / 4096);
        free(hm.segs);
        free(p.globals);
        free(p.tids);
        free(p.foreign);
        goro__newm_gate_open();
        pthread_mutex_unlock(&stw.lock);
        return -ENOMEM;
    }
    s.cands = aalloc(&s.a, gcap * sizeof *s.cands);
    s.objs = aalloc(&s.a, ocap * sizeof *s.objs);
    s.order = aalloc(&s.a, ocap * sizeof *s.order);
    s.wcand = aalloc(&s.a, ocap * sizeof *s.wcand);
    s.wnext = aalloc(&s.a, ocap * sizeof *s.wnext);
    s.work = aalloc(&s.a, gcap * sizeof *s.work);
    s.bloom = aalloc(&s.a, s.bloom_bits / 8);
    s.excl = aalloc(&s.a, s.capexcl * sizeof *s.excl);
    groot *roots = aalloc(&s.a, gcap * sizeof *roots);
    tstop *stops = aalloc(&s.a, stop_cap * sizeof *stops);
    p.maps = aalloc(&s.a, p.capmaps * sizeof *p.maps);
    char *scratch = aalloc(&s.a, 1u << 16);
    s.noscan = aalloc(&s.a, s.capexcl * sizeof *s.noscan);
    s.mstack = aalloc(&s.a, s.capmstack * sizeof *s.mstack);
    s.hm = hm;
    s.hm.capsegs = hm.nsegs;
    s.hm.segs = aalloc(&s.a, hm.nsegs * sizeof *s.hm.segs + 16);
    memcpy(s.hm.segs, hm.segs, hm.nsegs * sizeof *hm.segs);
    free(hm.segs);
    goro__heapmap_attach(&s.hm, aalloc(&s.a, hm_bytes + 16));
    size_t nroots = 0;

    /* Exclusions from the heap pass (known now; thread stacks added below). */
    excl_add(&s, (uintptr_t)s.a.base, (uintptr_t)s.a.base + s.a.len);
    if (vec)
        excl_add(&s, (uintptr_t)vec, (uintptr_t)vec + (1u << 30) / 4096);
    goro__stack_regions(excl_cb, &s);
    goro__g_regions(excl_cb, &s);
    for (uint32_t i = 0; i < goro__sched_.nprocs; i++)
        excl_add(&s, (uintptr_t)goro__sched_.allp[i],
                 (uintptr_t)goro__sched_.allp[i] + sizeof(goro__p));
    goro__mutex_lock(&goro__sched_.lock);
    for (goro__m *m = goro__sched_.allm; m; m = m->alllink) {
        excl_add(&s, (uintptr_t)m, (uintptr_t)m + sizeof *m);
        if (m->altstack) /* stale signal frames */
            excl_add(&s, (uintptr_t)m->altstack, (uintptr_t)m->altstack + 64 * 1024);
        if (m->g0_lo)
            excl_add(&s, m->g0_lo, m->g0_hi);
        if (m->th.lo) /* the whole mapping, guard page included (thread.h) */
            excl_add(&s, m->th.lo, m->th.hi);
    }
    goro__mutex_unlock(&goro__sched_.lock);
    /* sysmon and the confirmation thread run only runtime code: their
     * frames hold no user pointers (only stale copies). */
    uintptr_t smlo, smhi;
    if (goro__sysmon_stack(&smlo, &smhi))
        excl_add(&s, smlo, smhi);
    int cftid = 0;
    if (goro__confirm_thread(&cftid, &smlo, &smhi))
        excl_add(&s, smlo, smhi);
    if (own_hi)
        excl_add(&s, own_lo, own_hi);

    /* ---- stop the world ---- */
    int64_t t_stop = goro__nanotime();
    int self_tid = (int)syscall(SYS_gettid);
    stw.slots = stops;
    stw.cap = (uint32_t)stop_cap;
    atomic_store(&stw.checked, 0);
    uint32_t gen = atomic_fetch_add(&stw.gen, 1) + 1;
    size_t sent = 0;
    pid_t pid = getpid();
    for (size_t i = 0; i < p.ntids; i++) {
        if (p.tids[i] == self_tid)
            continue;
        if (i < p.nforeign_cap && p.foreign[i].skip)
            continue; /* left alone: see below */
        if (syscall(SYS_tgkill, pid, p.tids[i], stw.sig) == 0)
            sent++;
    }
    int64_t deadline = goro__nanotime() + GORO_SECOND;
    size_t stopped = 0;
    while (goro__nanotime() < deadline) {
        stopped = 0;
        uint32_t n = atomic_load(&stw.checked);
        for (uint32_t i = 0; i < n && i < stop_cap; i++)
            stopped += atomic_load_explicit(&stops[i].done, memory_order_acquire);
        if (stopped >= sent)
            break;
        goro__cpu_relax();
    }
    res->nthreads = stopped;
    if (stopped < sent)
        res->incomplete = "a thread did not stop within 1 s (is the signal blocked?)";
    if (!gate_ok && !res->incomplete)
        res->incomplete = "a new scheduler thread did not start within 1 s";
    /* A thread started since the list was read (not by goro: its gate is
     * closed) runs through the scan unseen. */
    if (!res->incomplete && tids_new(&p, scratch, 1u << 16))
        res->incomplete = "a thread started while the world was stopping";

    /* The memory map as it is now that nothing else runs: mappings made or
     * removed while preparing (a stack returned to the OS, a large block
     * freed) must neither be read nor missed. */
    if (!res->incomplete) {
        size_t n = 0;
        if (maps_parse(p.maps, p.capmaps, &n, scratch, 1u << 16) != 0)
            res->incomplete = "could not read /proc/self/maps";
        else if (n > p.capmaps)
            res->incomplete = "too many new mappings appeared while preparing";
        else
            p.nmaps = n;
    }

    if (!res->incomplete) {
        /* goro's own records (P and M structures live in the malloc heap):
         * marked like any block, never scanned. */
        memcpy(s.noscan, s.excl, s.nexcl * sizeof *s.excl);
        s.nnoscan = s.nexcl;
        qsort(s.noscan, s.nnoscan, sizeof *s.noscan, cmp_range);
        /* Thread stacks are scanned from their stack pointers up (below):
         * not again as writable memory. Only from sp to the mapping's end:
         * the kernel merges a stack's mapping with neighbouring anonymous
         * ones (large malloc blocks), which must stay visible. The dead
         * part below sp of a thread goro does not own is scanned with
         * the rest of its mapping (stale frames can only hide a leak). */
        for (size_t i = 0; i < stopped; i++) {
            uintptr_t sp = stops[i].sp;
            for (size_t k = 0; k < p.nmaps; k++)
                if (sp >= p.maps[k].lo && sp < p.maps[k].hi)
                    excl_add(&s, sp - 128 > p.maps[k].lo ? (sp - 128) & ~(uintptr_t)7 : p.maps[k].lo,
                             p.maps[k].hi);
        }
        /* The heap's blocks; what they do not cover stays a root. */
        goro__heapmap_build(&s.hm, p.maps, p.nmaps);
        for (size_t i = 0; i < s.hm.nsegs; i++)
            if (s.hm.segs[i].valid)
                excl_add(&s, s.hm.segs[i].lo, s.hm.segs[i].hi);
        qsort(s.excl, s.nexcl, sizeof *s.excl, cmp_range);

        /* ---- classify goroutines ---- */
        uint32_t lim = goro__reg_limit();
        for (uint32_t i = 0; i < lim && !res->incomplete; i++) {
            goro__gbase *gb = goro__reg_get(i);
            if (!gb)
                continue;
            res->ngoroutines++;
            if (gb->kind == GORO__KIND_NEWBORN) {
                goro__newborn *nb = (goro__newborn *)gb;
                roots[nroots++] = (groot){.arg = (uintptr_t)nb->info.arg};
                continue;
            }
            goro__g *g = (goro__g *)gb;
            if (g == self_g)
                continue; /* its callers' frames are scanned below */
            unsigned st = GORO__GST_STATE(goro__load_relaxed(&g->base.status));
            bool timed = atomic_load(&g->timer.state) != GORO__TIMER_IDLE;
            /* A select with no cases (or only NULL channels) waits on
             * nothing: with no deadline it is blocked for good. */
            bool judged = st == GORO__G_WAITING && !timed &&
                          goro__wait_reason_is_primitive(g->wait_reason) &&
                          g->nwaiting <= MAX_OBJ_PER_G &&
                          (g->nwaiting > 0 || g->wait_reason == GORO__WAIT_SELECT ||
                           g->wait_reason == GORO__WAIT_SELECT_NO_CASES);
            if (!judged) {
                /* The spawn argument is a root only until the function has
                 * it (a goroutine that ran holds what it still needs on its
                 * stack): a freed argument's stale address must not keep a
                 * channel later allocated in its place alive. */
                groot r = {.g = g,
                           .arg = st == GORO__G_RUNNING ? (uintptr_t)g->info.arg : 0,
                           .hi = g->stack_hi};
                if (st == GORO__G_RUNNING) {
                    /* Its thread's stack pointer covers it while it runs;
                     * but one caught switching out (the thread already on
                     * the next stack, the status not yet updated: sched.c
                     * after_switch) is covered by no thread, so also scan
                     * from the stack pointer it saved. A superset at worst. */
                    uintptr_t sp = (uintptr_t)g->sp;
                    r.lo = sp >= g->stack_lo && sp < g->stack_hi ? sp : 0;
                }
                else if (st == GORO__G_SYSCALL && g->wait_fp)
                    r.lo = (uintptr_t)g->wait_fp > g->stack_lo + 4096 ? (uintptr_t)g->wait_fp - 4096
                                                                     : g->stack_lo;
                else
                    r.lo = (uintptr_t)g->sp;
                roots[nroots++] = r;
                continue;
            }
            if (s.ncands == s.capcands) {
                res->incomplete = "too many goroutines appeared while preparing";
                break;
            }
            cand *c = &s.cands[s.ncands];
            *c = (cand){.g = g, .id = g->base.id};
            for (uint32_t k = 0; k < g->nwaiting; k++) {
                goro__waiter *w = &g->waiting[k];
                uintptr_t a = (uintptr_t)w->obj, lo, hi;
                goro__g *owner = NULL;
                uint32_t idx;
                goro__hblk b;
                if (in_ranges(p.globals, p.nglobals, a)) {
                    c->root = 1; /* a global primitive is always reachable */
                    break;
                } else if (w->drop != goro__chan_waiter_drop && (owner = goro__stack_owner(a))) {
                    lo = a; /* lives and dies with the goroutine whose stack holds it */
                    hi = a + 8;
                } else if (goro__heapmap_find(&s.hm, a, &b)) {
                    lo = b.lo; /* a channel, or the heap block holding a primitive */
                    hi = b.hi;
                } else {
                    c->root = 1; /* container unknown: stay conservative */
                    break;
                }
                if (add_obj(&s, lo, hi, owner, &idx)) {
                    res->incomplete = "too many objects";
                    break;
                }
                c->objs[c->nobj++] = idx;
            }
            s.ncands++;
        }

        /* Candidates that are roots from the start. */
        for (size_t i = 0; i < s.ncands; i++)
            if (s.cands[i].root)
                s.work[s.nwork++] = (uint32_t)i;
        for (size_t i = 0; i < s.ncands; i++)
            for (uint32_t k = 0; k < s.cands[i].nobj; k++)
                link_waiter(&s, s.cands[i].objs[k], (uint32_t)i);

        /* Index objects: by address for matching words, by owner for
         * stack-resident primitives. */
        for (size_t i = 0; i < s.nobjs; i++)
            s.order[i] = (uint32_t)i;
        sort_objs_base = s.objs;
        qsort(s.order, s.nobjs, sizeof *s.order, cmp_obj);
        s.owned = aalloc(&s.a, s.nobjs * sizeof *s.owned + 16);
        if (!s.owned)
            res->incomplete = "out of scan memory";
        for (size_t i = 0; s.owned && i < s.nobjs; i++)
            if (s.objs[i].owner)
                s.owned[s.nowned++] = (uint32_t)i;
        if (s.owned)
            qsort(s.owned, s.nowned, sizeof *s.owned, cmp_owner);
        s.omin = UINTPTR_MAX;
        for (size_t i = 0; i < s.nobjs; i++) {
            object *o = &s.objs[i];
            if (o->lo < s.omin)
                s.omin = o->lo;
            if (o->hi > s.omax)
                s.omax = o->hi;
            for (uintptr_t pg = o->lo & ~(uintptr_t)4095; pg < o->hi; pg += 4096) {
                size_t h = page_hash(pg, s.bloom_bits);
                s.bloom[h >> 6] |= 1ull << (h & 63);
            }
        }

        if (!res->incomplete && s.ncands) {
            /* ---- mark from the roots ---- */
            for (size_t i = 0; i < p.nglobals; i++)
                scan_range(&s, p.globals[i].lo, p.globals[i].hi);
            for (size_t i = 0; i < stopped; i++) {
                uintptr_t sp = stops[i].sp, hi = 0;
                goro__m *m = stops[i].m;
                uintptr_t bhi = m ? goro__load_relaxed(&m->blocking_hi) : 0;
                if (m && m->curg && sp >= m->curg->stack_lo && sp < m->curg->stack_hi) {
                    hi = m->curg->stack_hi; /* running a goroutine */
                } else if ((m && !m->curg) || atomic_load(&stops[i].tid) == goro__sysmon_tid() ||
                           (cftid && atomic_load(&stops[i].tid) == cftid) ||
                           (m && m->g0_hi && sp >= m->g0_lo && sp < m->g0_hi &&
                            (!bhi || sp >= bhi))) {
                    /* A runtime thread in its scheduler (idle, looking for
                     * work, running a timer, committing a goroutine's park
                     * while curg is still set): scheduler frames and
                     * registers hold only stale copies of user pointers
                     * (a channel the last park unlocked). Skip. */
                    continue;
                } else if (m && m->g0_hi && sp >= m->g0_lo && sp < m->g0_hi) {
                    /* A goroutine's goro_blocking call running on its M's
                     * own stack: fn's frames only, not the scheduler's
                     * suspended frames above them (stale copies). */
                    hi = bhi;
                } else {
                    /* Another thread. */
                    for (size_t k = 0; k < p.nmaps; k++)
                        if (sp >= p.maps[k].lo && sp < p.maps[k].hi)
                            hi = p.maps[k].hi;
                }
                for (int r = 0; r < NGREG; r++)
                    scan_word(&s, (uintptr_t)stops[i].regs[r]);
                if (hi)
                    scan_range(&s, sp > 128 ? sp - 128 : sp, hi);
            }
            /* Our callers' frames (not the scanner's own). */
            if (self_g)
                scan_range(&s, fp, self_g->stack_hi);
            for (size_t i = 0; i < nroots; i++) {
                scan_word(&s, roots[i].arg);
                if (roots[i].g && roots[i].lo)
                    scan_range(&s, roots[i].lo, roots[i].hi);
                if (roots[i].g)
                    mark_owned(&s, roots[i].g);
            }
            if (self_g)
                mark_owned(&s, self_g);
            /* Armed timers (a context's deadline can still cancel it). */
            for (uint32_t i = 0; i < goro__sched_.nprocs; i++)
                goro__timers_each_stopped(goro__sched_.allp[i], timer_root, &s);
            /* Writable memory that is not a known heap block nor goro's
             * own: anonymous mappings the heap map does not cover, shared
             * and file-backed ones (a pointer may live only there). */
            for (size_t i = 0; i < p.nmaps; i++) {
                const goro__vma *v = &p.maps[i];
                if ((v->flags & (GORO__VMA_R | GORO__VMA_W)) == (GORO__VMA_R | GORO__VMA_W) &&
                    !(v->flags & GORO__VMA_SPECIAL))
                    scan_resident(&s, v->lo, v->hi, vec, use_mincore);
            }
            /* ---- fixed point: heap blocks, then goroutines woken by them ---- */
            for (;;) {
                drain(&s);
                if (s.nwork) {
                    cand *c = &s.cands[s.work[--s.nwork]];
                    goro__g *g = c->g;
                    scan_range(&s, (uintptr_t)g->sp, g->stack_hi);
                    mark_owned(&s, g);
                    continue;
                }
                if (!s.overflow)
                    break;
                s.overflow = false; /* rescan every marked block */
                goro__heapmap_each_marked(&s.hm, rescan_block, &s);
            }
            res->heap_bytes = s.heap_scanned;
            /* ---- retained memory: what only the leaked goroutines reach ----
             * The verdict is final here (kept in `leaked`); then each leaked
             * goroutine's stack is marked from in turn, and the heap bytes
             * that become newly marked are what it alone holds (a block two
             * leaked goroutines reach counts for the first of them). This
             * marking also flags candidates and objects; nothing after it
             * reads them. A mark-stack overflow undercounts (never more). */
            for (size_t i = 0; i < s.ncands; i++)
                s.cands[i].leaked = !s.cands[i].root;
            for (size_t i = 0; i < s.ncands; i++) {
                cand *c = &s.cands[i];
                if (!c->leaked)
                    continue;
                uint64_t before = s.heap_scanned;
                scan_range(&s, (uintptr_t)c->g->sp, c->g->stack_hi);
                mark_owned(&s, c->g);
                drain(&s);
                s.nwork = 0;
                s.overflow = false;
                c->info.retained = s.heap_scanned - before;
                /* Its first object, when that is a channel (stable: the
                 * goroutine can never be woken, its waiter keeps the
                 * channel alive). */
                goro__waiter *w = &c->g->waiting[0];
                if (c->g->nwaiting > 0 && w->drop == goro__chan_waiter_drop && w->obj) {
                    const goro_chan *ch = w->obj;
                    c->info.chan_made_at = ch->made_at;
                    c->info.chan_cap = ch->cap;
                    c->info.chan_count = atomic_load_explicit(&ch->count, memory_order_relaxed);
                    c->info.chan_refs = atomic_load_explicit(&ch->refs, memory_order_relaxed);
                }
            }
        }
        res->root_bytes = s.scanned;
        res->nblocked = s.ncands;
    }

    /* ---- restart the world ---- */
    atomic_store(&stw.release, gen);
    goro__futex_wake(&stw.release, INT32_MAX);
    res->pause_ns = goro__nanotime() - t_stop;
    for (size_t i = 0; i < p.nforeign_cap; i++) {
        const tskip *t = &p.foreign[i];
        if (!t->skip)
            continue;
        res->nunstopped++;
        tprobe after;
        if (!res->incomplete && t->before.in_syscall && thread_probe(p.tids[i], stw.sig, &after) &&
            (after.switches != t->before.switches || !after.in_syscall))
            res->incomplete = "a thread left in a system call (not signalled) ran during the scan";
    }

    if (!res->incomplete) {
        size_t n = 0;
        for (size_t i = 0; i < s.ncands; i++)
            n += s.cands[i].leaked;
        res->leaked = n ? malloc(n * sizeof *res->leaked) : NULL;
        res->info = n ? malloc(n * sizeof *res->info) : NULL;
        if (n && (!res->leaked || !res->info)) {
            free(res->leaked);
            free(res->info);
            res->leaked = NULL;
            res->info = NULL;
            res->incomplete = "out of memory for the result";
        }
        for (size_t i = 0; i < s.ncands && res->info; i++)
            if (s.cands[i].leaked) {
                res->info[res->nleaked] = s.cands[i].info;
                res->info[res->nleaked++].id = s.cands[i].id;
            }
        if (res->nleaked)
            qsort(res->info, res->nleaked, sizeof *res->info, cmp_id); /* id first */
        for (size_t i = 0; i < res->nleaked; i++)
            res->leaked[i] = res->info[i].id;
    }
    /* A thread that entered the handler late may still be writing its
     * slot: wait for every claimed slot to be complete before unmapping. */
    uint32_t claimed = atomic_load(&stw.checked);
    for (uint32_t i = 0; i < claimed && i < stop_cap; i++)
        while (!atomic_load_explicit(&stops[i].done, memory_order_acquire))
            goro__cpu_relax();
    stw.slots = NULL;
    stw.cap = 0;
    munmap(s.a.base, s.a.len);
    if (vec)
        munmap(vec, (1u << 30) / 4096);
    free(p.globals);
    free(p.tids);
    free(p.foreign);
    goro__newm_gate_open();
    pthread_mutex_unlock(&stw.lock);
    res->total_ns = goro__nanotime() - t_start;
    return 0;
}

int goro__leakscan(uintptr_t fp, goro__scan_result *res)
{
    goro__m *self_m = goro__getm();
    goro__g *self_g = self_m ? self_m->curg : NULL;
    if (!self_g) {
        memset(res, 0, sizeof *res);
        return -EPERM;
    }
    return scan_run(self_g, fp, 0, 0, res);
}

int goro__leakscan_thread(uintptr_t stack_lo, uintptr_t stack_hi, goro__scan_result *res)
{
    if (goro__getm()) {
        memset(res, 0, sizeof *res);
        return -EPERM;
    }
    return scan_run(NULL, 0, stack_lo, stack_hi, res);
}

void goro__scan_result_free(goro__scan_result *r)
{
    free(r->leaked);
    free(r->info);
    r->leaked = NULL;
    r->info = NULL;
    r->nleaked = 0;
}
