/*
 * goro-bench - micro-benchmarks of goro, each with a twin in bench/go/main.go
 * that does the same work with Go's runtime. See bench/README.md.
 *
 *   goro-bench NAME [--procs P] [--n N]
 *
 * NAME is one of spawn, pingpong, buffered, select, parked, parallel.
 * stdout carries only result lines "BENCH <name> <value> <unit>";
 * diagnostics go to stderr. Any goro call that fails ends the process with
 * status 1 after naming the call on stderr.
 *
 * Keep every algorithm here in step with the Go twin: the comparison is only
 * meaningful if both sides do the same work.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "goro.h"

/* ------------------------------------------------------------------------- */
/* Errors                                                                     */
/* ------------------------------------------------------------------------- */

static _Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static _Noreturn void die(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("goro-bench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    /* Other threads of the runtime may still be running goroutines: leave
     * without running atexit handlers under their feet. */
    _exit(1);
}

static _Noreturn void call_failed(const char *expr, int rc, const char *file, int line)
{
    die("%s:%d: %s failed: %s (%d)", file, line, expr, strerror(-rc), rc);
}

/* Evaluate a goro call returning int; a negative result is fatal. */
#define CHECK(expr)                                                            \
    do {                                                                       \
        int check_rc_ = (expr);                                                \
        if (check_rc_ < 0)                                                     \
            call_failed(#expr, check_rc_, __FILE__, __LINE__);                 \
    } while (0)

/* One result line: "BENCH <name> <value> <unit>", value with prec decimals. */
static void emit(const char *name, double value, int prec, const char *unit)
{
    printf("BENCH %s %.*f %s\n", name, prec, value, unit);
}

/* ------------------------------------------------------------------------- */
/* Configuration                                                              */
/* ------------------------------------------------------------------------- */

typedef struct bench_cfg {
    const char *name;
    int procs; /* 0 = goro's default */
    long long n;
    bool n_set;
} bench_cfg;

/* ------------------------------------------------------------------------- */
/* spawn: N goroutines that only call Done, all queued before one Wait        */
/* ------------------------------------------------------------------------- */

static void spawn_done(void *arg)
{
    CHECK(goro_waitgroup_done(arg));
}

static void bench_spawn(long long n)
{
    goro_waitgroup wg = GORO_WAITGROUP_INIT;

    int64_t t0 = goro_now();
    CHECK(goro_waitgroup_add(&wg, (int)n));
    for (long long i = 0; i < n; i++)
        CHECK(goro_go(spawn_done, &wg));
    CHECK(goro_waitgroup_wait(&wg));
    int64_t t1 = goro_now();

    emit("spawn", (double)(t1 - t0) / (double)n, 2, "ns/goroutine");
}

/* ------------------------------------------------------------------------- */
/* pingpong: round trips over two unbuffered channels of int                  */
/* ------------------------------------------------------------------------- */

typedef struct pingpong_arg {
    goro_chan *in;  /* ch1: main -> partner */
    goro_chan *out; /* ch2: partner -> main */
    goro_waitgroup *wg;
} pingpong_arg;

static void pingpong_partner(void *p)
{
    pingpong_arg *a = p;
    for (;;) {
        int v;
        bool ok;
        CHECK(goro_chan_recv(a->in, &v, &ok));
        if (!ok)
            break;
        CHECK(goro_chan_send(a->out, &v));
    }
    goro_chan_release(a->in);
    goro_chan_release(a->out);
    CHECK(goro_waitgroup_done(a->wg));
}

static void bench_pingpong(long long n)
{
    goro_chan *ch1, *ch2;
    goro_waitgroup wg = GORO_WAITGROUP_INIT;

    CHECK(goro_chan_make(&ch1, sizeof(int), 0));
    CHECK(goro_chan_make(&ch2, sizeof(int), 0));
    pingpong_arg a = {goro_chan_retain(ch1), goro_chan_retain(ch2), &wg};
    CHECK(goro_waitgroup_add(&wg, 1));
    CHECK(goro_go(pingpong_partner, &a));

    int64_t t0 = goro_now();
    for (long long i = 0; i < n; i++) {
        int v = (int)i, back;
        bool ok;
        CHECK(goro_chan_send(ch1, &v));
        CHECK(goro_chan_recv(ch2, &back, &ok));
        if (!ok || back != v)
            die("pingpong: sent %d, got %d (ok=%d)", v, back, (int)ok);
    }
    int64_t t1 = goro_now();

    CHECK(goro_chan_close(ch1));
    CHECK(goro_waitgroup_wait(&wg));
    goro_chan_release(ch1);
    goro_chan_release(ch2);

    emit("pingpong", (double)(t1 - t0) / (double)n, 2, "ns/roundtrip");
}

/* ------------------------------------------------------------------------- */
/* buffered: one producer, one consumer, capacity 1024, uint64_t elements     */
/* ------------------------------------------------------------------------- */

typedef struct buffered_arg {
    goro_chan *ch;
    uint64_t n;
    uint64_t sum;   /* consumer: sum of received values */
    uint64_t count; /* consumer: number of received values */
    goro_waitgroup *wg;
} buffered_arg;

static void buffered_producer(void *p)
{
    buffered_arg *a = p;
    for (uint64_t i = 0; i < a->n; i++)
        CHECK(goro_chan_send(a->ch, &i));
    CHECK(goro_chan_close(a->ch));
    goro_chan_release(a->ch);
    CHECK(goro_waitgroup_done(a->wg));
}

static void buffered_consumer(void *p)
{
    buffered_arg *a = p;
    uint64_t sum = 0, count = 0;
    for (;;) {
        uint64_t v;
        bool ok;
        CHECK(goro_chan_recv(a->ch, &v, &ok));
        if (!ok)
            break;
        sum += v;
        count++;
    }
    a->sum = sum;
    a->count = count;
    goro_chan_release(a->ch);
    CHECK(goro_waitgroup_done(a->wg));
}

static void bench_buffered(long long n)
{
    goro_chan *ch;
    goro_waitgroup wg = GORO_WAITGROUP_INIT;
    uint64_t un = (uint64_t)n;

    CHECK(goro_chan_make(&ch, sizeof(uint64_t), 1024));
    buffered_arg prod = {.ch = goro_chan_retain(ch), .n = un, .wg = &wg};
    buffered_arg cons = {.ch = goro_chan_retain(ch), .wg = &wg};

    int64_t t0 = goro_now();
    CHECK(goro_waitgroup_add(&wg, 2));
    CHECK(goro_go(buffered_consumer, &cons));
    CHECK(goro_go(buffered_producer, &prod));
    CHECK(goro_waitgroup_wait(&wg));
    int64_t t1 = goro_now();
    goro_chan_release(ch);

    /* 0 + 1 + ... + (n-1), modulo 2^64 like the running sum. */
    uint64_t want = (un % 2 == 0) ? (un / 2) * (un - 1) : un * ((un - 1) / 2);
    if (cons.count != un || cons.sum != want)
        die("buffered: received %" PRIu64 " items summing to %" PRIu64
            ", want %" PRIu64 " items summing to %" PRIu64,
            cons.count, cons.sum, un, want);

    double secs = (double)(t1 - t0) / 1e9;
    emit("buffered", (double)n / secs, 0, "items/s");
}

/* ------------------------------------------------------------------------- */
/* select: two RECV cases fed by two producers over unbuffered channels       */
/* ------------------------------------------------------------------------- */

typedef struct select_prod {
    goro_chan *ch;
    long long count; /* exactly this many sends, then return */
    goro_waitgroup *wg;
} select_prod;

static void select_producer(void *p)
{
    select_prod *a = p;
    for (long long i = 0; i < a->count; i++) {
        int v = (int)i;
        CHECK(goro_chan_send(a->ch, &v));
    }
    goro_chan_release(a->ch);
    CHECK(goro_waitgroup_done(a->wg));
}

static void bench_select(long long n)
{
    goro_chan *cha, *chb;
    goro_waitgroup wg = GORO_WAITGROUP_INIT;

    if (n < 2)
        die("select: --n must be at least 2");
    CHECK(goro_chan_make(&cha, sizeof(int), 0));
    CHECK(goro_chan_make(&chb, sizeof(int), 0));
    /* The producers send n values in all, so main's n selects drain them
     * exactly and nobody is left blocked. While both have values left both
     * cases are ready and select picks at random. */
    select_prod pa = {goro_chan_retain(cha), n / 2, &wg};
    select_prod pb = {goro_chan_retain(chb), n - n / 2, &wg};
    CHECK(goro_waitgroup_add(&wg, 2));
    CHECK(goro_go(select_producer, &pa));
    CHECK(goro_go(select_producer, &pb));

    int va = 0, vb = 0;
    goro_select_case cases[2] = {
        {.ch = cha, .op = GORO_SELECT_RECV, .elem = &va},
        {.ch = chb, .op = GORO_SELECT_RECV, .elem = &vb},
    };
    long long count[2] = {0, 0};

    int64_t t0 = goro_now();
    for (long long i = 0; i < n; i++) {
        int idx = goro_select(cases, 2, 0, GORO_NO_DEADLINE);
        if (idx < 0)
            call_failed("goro_select(cases, 2, 0, GORO_NO_DEADLINE)", idx, __FILE__,
                        __LINE__);
        if (idx > 1 || !cases[idx].ok)
            die("select: case %d returned (ok=%d), want 0 or 1 with ok", idx,
                idx <= 1 ? (int)cases[idx].ok : -1);
        count[idx]++;
    }
    int64_t t1 = goro_now();

    CHECK(goro_waitgroup_wait(&wg));
    goro_chan_release(cha);
    goro_chan_release(chb);

    fprintf(stderr, "select: case0=%lld case1=%lld\n", count[0], count[1]);
    if (count[0] <= 0 || count[1] <= 0 || count[0] + count[1] != n)
        die("select: case counts %lld and %lld, want both > 0 and sum %lld", count[0],
            count[1], n);

    emit("select", (double)(t1 - t0) / (double)n, 2, "ns/select");
}

/* ------------------------------------------------------------------------- */
/* parked: memory of N goroutines blocked forever on their own channel        */
/* ------------------------------------------------------------------------- */

/* VmRSS of this process in KiB. */
static long long rss_kib(void)
{
    static char buf[16384];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("open /proc/self/status: %s", strerror(errno));
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, sizeof buf - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            die("read /proc/self/status: %s", strerror(errno));
        if (r == 0 || (len += (size_t)r) == sizeof buf - 1)
            break;
    }
    close(fd);
    buf[len] = '\0';
    const char *p = strstr(buf, "\nVmRSS:");
    long long kib;
    if (!p || sscanf(p + 7, " %lld kB", &kib) != 1)
        die("no VmRSS line in /proc/self/status");
    return kib;
}

static void warmup_fn(void *arg)
{
    /* Touch the channel paths once on whatever thread runs this. */
    goro_chan *ch;
    int v = 1;
    bool ok;
    CHECK(goro_chan_make(&ch, sizeof(int), 1));
    CHECK(goro_chan_send(ch, &v));
    CHECK(goro_chan_recv(ch, &v, &ok));
    goro_chan_release(ch);
    CHECK(goro_waitgroup_done(arg));
}

static void parked_fn(void *arg)
{
    goro_chan *ch;
    int v = 1;
    CHECK(goro_chan_make(&ch, sizeof(int), 0));
    CHECK(goro_waitgroup_done(arg));
    /* Nobody ever receives: this blocks until the process exits. */
    CHECK(goro_chan_send(ch, &v));
    die("parked: a send on an unreceived channel returned");
}

#define PARKED_WARMUP 256

static _Noreturn void bench_parked(long long n)
{
    goro_waitgroup wg = GORO_WAITGROUP_INIT;

    CHECK(goro_waitgroup_add(&wg, PARKED_WARMUP));
    for (int i = 0; i < PARKED_WARMUP; i++)
        CHECK(goro_go(warmup_fn, &wg));
    CHECK(goro_waitgroup_wait(&wg));
    CHECK(goro_sleep(20 * GORO_MILLISECOND));
    long long before = rss_kib();

    CHECK(goro_waitgroup_add(&wg, (int)n));
    for (long long i = 0; i < n; i++)
        CHECK(goro_go(parked_fn, &wg));
    CHECK(goro_waitgroup_wait(&wg));
    /* Every goroutine has called Done just before its send; give the last
     * ones time to actually park. */
    CHECK(goro_sleep(200 * GORO_MILLISECOND));
    long long after = rss_kib();

    fprintf(stderr, "parked: VmRSS %lld kB before, %lld kB after, %zu goroutines\n",
            before, after, goro_num_goroutines());
    emit("parked", (double)(after - before) * 1024.0 / (double)n, 1,
         "bytes/goroutine");
    printf("BENCH parked_n %lld goroutines\n", n);
    fflush(stdout);
    fflush(stderr);
    /* Tearing down N blocked goroutines is not what we measure. */
    _exit(0);
}

/* ------------------------------------------------------------------------- */
/* parallel: N identical CPU-bound tasks, wall time                           */
/* ------------------------------------------------------------------------- */

/* Must match kernel() in bench/go/main.go operation for operation. */
#define KERNEL_ITERS 200000u

static uint64_t kernel(uint64_t seed)
{
    uint64_t x = seed * UINT64_C(0x9E3779B97F4A7C15) + UINT64_C(0x2545F4914F6CDD1D);
    for (uint64_t k = 0; k < KERNEL_ITERS; k++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = x * UINT64_C(0xD1342543DE82EF95) + k;
    }
    return x;
}

/* Sum (mod 2^64) of kernel(i) for i in [0, 2000): computed once, offline,
 * and identical in the Go twin. */
#define PARALLEL_DEFAULT_N 2000
#define PARALLEL_DEFAULT_SUM UINT64_C(0x693c229a5c498357)

typedef struct parallel_task {
    uint64_t seed;
    uint64_t result;
    goro_waitgroup *wg;
} parallel_task;

static void parallel_fn(void *p)
{
    parallel_task *t = p;
    t->result = kernel(t->seed);
    CHECK(goro_waitgroup_done(t->wg));
}

static void bench_parallel(long long n)
{
    goro_waitgroup wg = GORO_WAITGROUP_INIT;
    parallel_task *tasks = calloc((size_t)n, sizeof *tasks);
    if (!tasks)
        die("parallel: out of memory");

    /* A few tasks computed sequentially, to check the parallel results. */
    const long long sample[3] = {0, n / 2, n - 1};
    uint64_t sample_want[3];
    for (int i = 0; i < 3; i++)
        sample_want[i] = kernel((uint64_t)sample[i]);

    for (long long i = 0; i < n; i++)
        tasks[i] = (parallel_task){.seed = (uint64_t)i, .wg = &wg};

    int64_t t0 = goro_now();
    CHECK(goro_waitgroup_add(&wg, (int)n));
    for (long long i = 0; i < n; i++)
        CHECK(goro_go(parallel_fn, &tasks[i]));
    CHECK(goro_waitgroup_wait(&wg));
    int64_t t1 = goro_now();

    uint64_t sum = 0;
    for (long long i = 0; i < n; i++)
        sum += tasks[i].result;
    for (int i = 0; i < 3; i++)
        if (tasks[sample[i]].result != sample_want[i])
            die("parallel: task %lld computed %#" PRIx64 ", want %#" PRIx64, sample[i],
                tasks[sample[i]].result, sample_want[i]);
    fprintf(stderr, "parallel: checksum %#" PRIx64 " (n=%lld, iters=%u)\n", sum, n,
            KERNEL_ITERS);
    if (n == PARALLEL_DEFAULT_N && sum != PARALLEL_DEFAULT_SUM)
        die("parallel: checksum %#" PRIx64 ", want %#" PRIx64, sum,
            PARALLEL_DEFAULT_SUM);
    free(tasks);

    emit("parallel", (double)(t1 - t0) / 1e6, 2, "ms");
}

/* ------------------------------------------------------------------------- */
/* Shared by the benchmarks below                                             */
/* ------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts v). */
static double median_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int open_devnull(void)
{
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        die("open /dev/null: %s", strerror(errno));
    return fd;
}

/* ------------------------------------------------------------------------- */
/* goroutine_profile, goroutine_dump: the goroutine profile of N goroutines   */
/* parked on channel receives                                                 */
/* ------------------------------------------------------------------------- */

typedef struct recv_park {
    goro_chan *ch; /* shared by all; nobody ever sends on it or closes it */
    goro_waitgroup wg;
} recv_park;

static void recv_parked_fn(void *arg)
{
    recv_park *rp = arg;
    int v;
    bool ok;
    CHECK(goro_waitgroup_done(&rp->wg));
    /* Nobody ever sends: this blocks until the process exits. */
    CHECK(goro_chan_recv(rp->ch, &v, &ok));
    die("goroutine_profile: a receive on a silent channel returned");
}

/* Park n goroutines on receives from one channel; returns once all have
 * called Done and had 200 ms to park. */
static void park_receivers(recv_park *rp, long long n)
{
    CHECK(goro_chan_make(&rp->ch, sizeof(int), 0));
    rp->wg = (goro_waitgroup)GORO_WAITGROUP_INIT;
    CHECK(goro_waitgroup_add(&rp->wg, (int)n));
    for (long long i = 0; i < n; i++)
        CHECK(goro_go(recv_parked_fn, rp));
    CHECK(goro_waitgroup_wait(&rp->wg));
    CHECK(goro_sleep(200 * GORO_MILLISECOND));
}

/* Write the goroutine profile at `debug` once into a memfd and check what
 * came out: debug=0 gzip'd protobuf, debug=1 "goroutine profile: total T"
 * with T >= n, debug=2 at least n goroutine headers. Not timed (it is also
 * the warm-up: symbol tables loaded, caches filled). */
static void check_goroutine_profile(int debug, long long n)
{
    int fd = memfd_create("goro-bench-profile", MFD_CLOEXEC);
    if (fd < 0)
        die("memfd_create: %s", strerror(errno));
    CHECK(goro_write_profile("goroutine", debug, fd));
    off_t len = lseek(fd, 0, SEEK_END);
    if (len <= 0)
        die("goroutine profile debug=%d: empty", debug);
    char *p = mmap(NULL, (size_t)len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
        die("mmap of the profile: %s", strerror(errno));
    if (debug == 0) {
        if (len < 2 || (unsigned char)p[0] != 0x1f || (unsigned char)p[1] != 0x8b)
            die("goroutine profile debug=0: not gzip'd protobuf");
    } else if (debug == 1) {
        long long total;
        if (sscanf(p, "goroutine profile: total %lld", &total) != 1 || total < n)
            die("goroutine profile debug=1: header is not \"goroutine profile: total >= %lld\"",
                n);
    } else {
        long long headers = 0;
        for (const char *q = p, *end = p + len; q < end;) {
            if ((size_t)(end - q) > 10 && memcmp(q, "goroutine ", 10) == 0)
                headers++;
            const char *nl = memchr(q, '\n', (size_t)(end - q));
            if (!nl)
                break;
            q = nl + 1;
        }
        fprintf(stderr, "goroutine profile debug=2: %lld goroutines, %lld bytes\n", headers,
                (long long)len);
        if (headers < n)
            die("goroutine profile debug=2: %lld goroutines listed, want >= %lld", headers, n);
    }
    fprintf(stderr, "goroutine profile debug=%d: %lld bytes\n", debug, (long long)len);
    munmap(p, (size_t)len);
    close(fd);
}

#define PROFILE_REPS 5 /* debug=0 and debug=1 */
#define DUMP_REPS 3    /* debug=2 */

/* Median over reps of the time to write the goroutine profile to fd. */
static double time_goroutine_profile(int debug, int fd, int reps)
{
    double ms[PROFILE_REPS > DUMP_REPS ? PROFILE_REPS : DUMP_REPS];
    for (int r = 0; r < reps; r++) {
        int64_t t0 = goro_now();
        CHECK(goro_write_profile("goroutine", debug, fd));
        ms[r] = (double)(goro_now() - t0) / 1e6;
    }
    return median_of(ms, reps);
}

static _Noreturn void bench_goroutine_profile(long long n)
{
    static recv_park rp;
    park_receivers(&rp, n);
    int fd = open_devnull();
    check_goroutine_profile(0, n);
    check_goroutine_profile(1, n);
    double d0 = time_goroutine_profile(0, fd, PROFILE_REPS);
    double d1 = time_goroutine_profile(1, fd, PROFILE_REPS);
    fprintf(stderr, "goroutine_profile: %zu goroutines\n", goro_num_goroutines());
    emit("goroutine_profile_debug0", d0, 3, "ms");
    emit("goroutine_profile_debug1", d1, 3, "ms");
    printf("BENCH goroutine_profile_n %lld goroutines\n", n);
    fflush(stdout);
    fflush(stderr);
    _exit(0); /* tearing down N blocked goroutines is not what we measure */
}

static _Noreturn void bench_goroutine_dump(long long n)
{
    static recv_park rp;
    park_receivers(&rp, n);
    int fd = open_devnull();
    check_goroutine_profile(2, n);
    double d2 = time_goroutine_profile(2, fd, DUMP_REPS);
    fprintf(stderr, "goroutine_dump: %zu goroutines\n", goro_num_goroutines());
    emit("goroutine_dump", d2, 3, "ms");
    printf("BENCH goroutine_dump_n %lld goroutines\n", n);
    fflush(stdout);
    fflush(stderr);
    _exit(0);
}

/* ------------------------------------------------------------------------- */
/* malloc: a malloc/free mix, for the heap profiler's overhead (goro only)    */
/* ------------------------------------------------------------------------- */

/* run.sh runs this with the heap profiler at its default rate and with
 * GORO_MEMPROFILE_RATE=0, alternately, and compares the times. */
#define MALLOC_WORKERS 8
#define MALLOC_LIVE 1024 /* live blocks per worker */
#define MALLOC_YIELD 1024 /* iterations between yields */

typedef struct malloc_arg {
    long long iters;
    uint64_t seed;
    uint64_t check; /* sum of first bytes read back before each free */
    goro_waitgroup *wg;
} malloc_arg;

static void malloc_worker(void *p)
{
    malloc_arg *a = p;
    unsigned char **live = calloc(MALLOC_LIVE, sizeof *live);
    if (!live)
        die("malloc: out of memory");
    uint64_t x = a->seed | 1, check = 0;
    for (long long i = 0; i < a->iters; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        unsigned slot = (unsigned)(x % MALLOC_LIVE);
        unsigned k = (unsigned)((x >> 10) % 8);
        /* [16 << k, 32 << k): 16 .. 4095 bytes, each power-of-two class
         * equally likely (mean ~765 bytes). */
        size_t size = ((size_t)16 << k) + (size_t)((x >> 16) % ((uint64_t)16 << k));
        unsigned char *old = live[slot];
        if (old) {
            check += old[0];
            free(old);
        }
        unsigned char *b = malloc(size);
        if (!b)
            die("malloc(%zu) failed", size);
        b[0] = (unsigned char)x;
        b[size - 1] = (unsigned char)(x >> 8);
        live[slot] = b;
        if ((i + 1) % MALLOC_YIELD == 0)
            CHECK(goro_yield());
    }
    for (unsigned s = 0; s < MALLOC_LIVE; s++) {
        if (live[s])
            check += live[s][0];
        free(live[s]);
    }
    free(live);
    a->check = check;
    CHECK(goro_waitgroup_done(a->wg));
}

/* n iterations in all, split over MALLOC_WORKERS goroutines. */
static uint64_t malloc_round(long long n)
{
    goro_waitgroup wg = GORO_WAITGROUP_INIT;
    malloc_arg args[MALLOC_WORKERS];
    CHECK(goro_waitgroup_add(&wg, MALLOC_WORKERS));
    for (int w = 0; w < MALLOC_WORKERS; w++) {
        args[w] = (malloc_arg){.iters = n / MALLOC_WORKERS + (w < n % MALLOC_WORKERS),
                               .seed = UINT64_C(0x9E3779B97F4A7C15) * (uint64_t)(w + 1),
                               .wg = &wg};
        CHECK(goro_go(malloc_worker, &args[w]));
    }
    CHECK(goro_waitgroup_wait(&wg));
    uint64_t check = 0;
    for (int w = 0; w < MALLOC_WORKERS; w++)
        check += args[w].check;
    return check;
}

static void bench_malloc(long long n)
{
    const char *why = NULL;
    if (!goro_heap_profiler_active(&why))
        die("malloc: the heap profiler is not active (%s): nothing to compare", why ? why : "?");
    long rate = goro_memprofile_rate();
    const char *env = getenv("GORO_MEMPROFILE_RATE");
    fprintf(stderr, "malloc: memprofile rate %ld (GORO_MEMPROFILE_RATE=%s), %d workers, %d procs\n",
            rate, env ? env : "(unset)", MALLOC_WORKERS, goro_procs());

    malloc_round(n / 10 > 0 ? n / 10 : 1); /* warm-up: arenas, thread caches */
    int64_t t0 = goro_now();
    uint64_t check = malloc_round(n);
    int64_t t1 = goro_now();
    fprintf(stderr, "malloc: checksum %#" PRIx64 ", %.1f ns per malloc+free\n", check,
            (double)(t1 - t0) / (double)n);

    emit("malloc", (double)(t1 - t0) / 1e6, 2, "ms");
    printf("BENCH malloc_rate %ld bytes\n", rate);
}

/* ------------------------------------------------------------------------- */
/* watchdog: spawn and pingpong while N goroutines stay parked (goro only)    */
/* ------------------------------------------------------------------------- */

/* run.sh runs this with the leak watchdog on (default: the park census
 * and a pass every 500 ms) and off (GORO_WATCHDOG=0: no census either),
 * alternately. Spawn and pingpong batches alternate within the window so
 * that both see the passes alike. */
#define WATCHDOG_WINDOW (6 * GORO_SECOND)
#define WATCHDOG_BATCH 10000

static _Noreturn void bench_watchdog(long long n)
{
    const char *env = getenv("GORO_WATCHDOG");
    const char *period = getenv("GORO_WATCHDOG_PERIOD_MS");
    fprintf(stderr, "watchdog: GORO_WATCHDOG=%s GORO_WATCHDOG_PERIOD_MS=%s, %d procs\n",
            env ? env : "(unset)", period ? period : "(unset)", goro_procs());

    goro_waitgroup wg = GORO_WAITGROUP_INIT;
    CHECK(goro_waitgroup_add(&wg, (int)n));
    for (long long i = 0; i < n; i++)
        CHECK(goro_go(parked_fn, &wg));
    CHECK(goro_waitgroup_wait(&wg));
    CHECK(goro_sleep(200 * GORO_MILLISECOND));

    goro_chan *ch1, *ch2;
    goro_waitgroup pwg = GORO_WAITGROUP_INIT;
    CHECK(goro_chan_make(&ch1, sizeof(int), 0));
    CHECK(goro_chan_make(&ch2, sizeof(int), 0));
    pingpong_arg pa = {goro_chan_retain(ch1), goro_chan_retain(ch2), &pwg};
    CHECK(goro_waitgroup_add(&pwg, 1));
    CHECK(goro_go(pingpong_partner, &pa));

    int64_t spawn_ns = 0, pp_ns = 0;
    long long spawned = 0, trips = 0;
    int64_t start = goro_now();
    while (goro_now() - start < WATCHDOG_WINDOW) {
        goro_waitgroup swg = GORO_WAITGROUP_INIT;
        int64_t t0 = goro_now();
        CHECK(goro_waitgroup_add(&swg, WATCHDOG_BATCH));
        for (int i = 0; i < WATCHDOG_BATCH; i++)
            CHECK(goro_go(spawn_done, &swg));
        CHECK(goro_waitgroup_wait(&swg));
        int64_t t1 = goro_now();
        for (int i = 0; i < WATCHDOG_BATCH; i++) {
            int v = i, back;
            bool ok;
            CHECK(goro_chan_send(ch1, &v));
            CHECK(goro_chan_recv(ch2, &back, &ok));
            if (!ok || back != v)
                die("watchdog: pingpong sent %d, got %d (ok=%d)", v, back, (int)ok);
        }
        int64_t t2 = goro_now();
        spawn_ns += t1 - t0;
        pp_ns += t2 - t1;
        spawned += WATCHDOG_BATCH;
        trips += WATCHDOG_BATCH;
    }
    fprintf(stderr, "watchdog: %lld spawns, %lld round trips in %.2f s; %" PRIu64
                    " suspects reported\n",
            spawned, trips, (double)(goro_now() - start) / 1e9, goro_watchdog_reports_total());

    emit("watchdog_spawn", (double)spawn_ns / (double)spawned, 2, "ns/goroutine");
    emit("watchdog_pingpong", (double)pp_ns / (double)trips, 2, "ns/roundtrip");
    printf("BENCH watchdog_n %lld goroutines\n", n);
    fflush(stdout);
    fflush(stderr);
    _exit(0);
}

/* ------------------------------------------------------------------------- */
/* leakscan: the reachability scan over N parked goroutines, half leaked,     */
/* and 1 GiB of live heap (goro only)                                         */
/* ------------------------------------------------------------------------- */

#define LEAKSCAN_HEAP ((size_t)1 << 30)
#define LEAKSCAN_CHUNK ((size_t)1 << 20)
/* Scans per process (the median is reported; run.sh then takes the
 * median over processes). */
#define LEAKSCAN_REPS 3

/* Globals: what is reachable. The heap chunks hold only 0x5a bytes (no
 * pointers); the live half's channels are reachable from live_chans. */
static unsigned char **volatile leakscan_heap; /* volatile: the store must stay (the heap is live) */
static goro_chan **live_chans;
static goro_waitgroup leakscan_wg = GORO_WAITGROUP_INIT;

static void leaked_fn(void *arg)
{
    (void)arg;
    goro_chan *ch;
    int v = 1;
    CHECK(goro_chan_make(&ch, sizeof(int), 0));
    CHECK(goro_waitgroup_done(&leakscan_wg));
    /* Only this goroutine knows ch: leaked. */
    CHECK(goro_chan_send(ch, &v));
    die("leakscan: a send on a leaked channel returned");
}

static void live_fn(void *arg)
{
    goro_chan *ch = arg; /* also in live_chans[]: reachable */
    int v;
    bool ok;
    CHECK(goro_waitgroup_done(&leakscan_wg));
    CHECK(goro_chan_recv(ch, &v, &ok));
    die("leakscan: a receive on a silent channel returned");
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static _Noreturn void bench_leakscan(long long n)
{
    long long nlive = n / 2, nleak = n - n / 2;

    /* 1 GiB of live heap, resident, without a single pointer in it. */
    size_t nchunks = LEAKSCAN_HEAP / LEAKSCAN_CHUNK;
    leakscan_heap = calloc(nchunks, sizeof *leakscan_heap);
    if (!leakscan_heap)
        die("leakscan: out of memory");
    for (size_t i = 0; i < nchunks; i++) {
        leakscan_heap[i] = malloc(LEAKSCAN_CHUNK);
        if (!leakscan_heap[i])
            die("leakscan: out of memory for the heap");
        memset(leakscan_heap[i], 0x5a, LEAKSCAN_CHUNK);
    }

    live_chans = calloc((size_t)nlive, sizeof *live_chans);
    uint64_t *leak_ids = calloc((size_t)nleak, sizeof *leak_ids);
    if (!live_chans || !leak_ids)
        die("leakscan: out of memory");
    CHECK(goro_waitgroup_add(&leakscan_wg, (int)n));
    for (long long i = 0; i < nlive; i++) {
        CHECK(goro_chan_make(&live_chans[i], sizeof(int), 0));
        CHECK(goro_go(live_fn, live_chans[i]));
    }
    for (long long i = 0; i < nleak; i++)
        CHECK(goro_spawn(leaked_fn, NULL,
                         &(const goro_spawn_opts){
                             .file = __FILE__, .line = __LINE__, .func = __func__},
                         &leak_ids[i]));
    CHECK(goro_waitgroup_wait(&leakscan_wg));
    CHECK(goro_sleep(200 * GORO_MILLISECOND));
    qsort(leak_ids, (size_t)nleak, sizeof *leak_ids, cmp_u64);
    fprintf(stderr, "leakscan: %lld goroutines parked (%lld leaked, %lld reachable), "
                    "VmRSS %lld MiB\n",
            n, nleak, nlive, rss_kib() / 1024);

    double total[LEAKSCAN_REPS], pause[LEAKSCAN_REPS], call[LEAKSCAN_REPS];
    goro_leak_scan_stats st;
    for (int r = 0; r < LEAKSCAN_REPS; r++) {
        goro_leak_report *rep = NULL;
        int64_t t0 = goro_now();
        int rc = goro_leak_scan(&rep, &st);
        int64_t t1 = goro_now();
        if (rc < 0)
            die("leakscan: goro_leak_scan failed: %s (%d)%s%s", strerror(-rc), rc,
                st.incomplete ? ": " : "", st.incomplete ? st.incomplete : "");
        fprintf(stderr,
                "leakscan %d: goroutines %zu blocked %zu leaked %zu threads %zu heap %.1f MiB "
                "scanned %.1f MiB pause %.1f ms total %.1f ms call %.1f ms\n",
                r + 1, st.goroutines, st.blocked, st.leaked, st.threads,
                (double)st.heap_bytes / 1048576.0, (double)st.scanned_bytes / 1048576.0,
                (double)st.pause_ns / 1e6, (double)st.total_ns / 1e6, (double)(t1 - t0) / 1e6);
        size_t reported = rep ? rep->count : 0;
        if (st.leaked != (size_t)nleak || reported != (size_t)nleak)
            die("leakscan: %zu leaked (%zu in the report), want exactly %lld", st.leaked,
                reported, nleak);
        for (size_t i = 0; i < reported; i++)
            if (!bsearch(&rep->goroutines[i].id, leak_ids, (size_t)nleak, sizeof *leak_ids,
                         cmp_u64))
                die("leakscan: goroutine %" PRIu64 " reported leaked but it is reachable",
                    rep->goroutines[i].id);
        goro_leak_report_free(rep);
        total[r] = (double)st.total_ns / 1e6;
        pause[r] = (double)st.pause_ns / 1e6;
        call[r] = (double)(t1 - t0) / 1e6;
    }

    emit("leakscan_total", median_of(total, LEAKSCAN_REPS), 3, "ms");
    emit("leakscan_pause", median_of(pause, LEAKSCAN_REPS), 3, "ms");
    emit("leakscan_call", median_of(call, LEAKSCAN_REPS), 3, "ms");
    emit("leakscan_heap", (double)st.heap_bytes / 1048576.0, 1, "MiB");
    printf("BENCH leakscan_n %lld goroutines\n", n);
    fflush(stdout);
    fflush(stderr);
    _exit(0);
}

/* ------------------------------------------------------------------------- */
/* Driver                                                                     */
/* ------------------------------------------------------------------------- */

static const struct {
    const char *name;
    long long default_n;
    long long max_n;
} benches[] = {
    {"spawn", 1000000, INT32_MAX},
    {"pingpong", 1000000, LLONG_MAX},
    {"buffered", 10000000, LLONG_MAX},
    {"select", 1000000, LLONG_MAX},
    {"parked", 100000, INT32_MAX},
    {"parallel", 2000, INT32_MAX},
    {"goroutine_profile", 100000, INT32_MAX},
    {"goroutine_dump", 100000, INT32_MAX},
    {"malloc", 20000000, LLONG_MAX},
    {"watchdog", 100000, INT32_MAX},
    {"leakscan", 100000, INT32_MAX},
};
#define NBENCHES (sizeof benches / sizeof benches[0])

static void bench_main(void *arg)
{
    const bench_cfg *cfg = arg;
    const char *b = cfg->name;

    if (strcmp(b, "spawn") == 0)
        bench_spawn(cfg->n);
    else if (strcmp(b, "pingpong") == 0)
        bench_pingpong(cfg->n);
    else if (strcmp(b, "buffered") == 0)
        bench_buffered(cfg->n);
    else if (strcmp(b, "select") == 0)
        bench_select(cfg->n);
    else if (strcmp(b, "parked") == 0)
        bench_parked(cfg->n);
    else if (strcmp(b, "parallel") == 0)
        bench_parallel(cfg->n);
    else if (strcmp(b, "goroutine_profile") == 0)
        bench_goroutine_profile(cfg->n);
    else if (strcmp(b, "goroutine_dump") == 0)
        bench_goroutine_dump(cfg->n);
    else if (strcmp(b, "malloc") == 0)
        bench_malloc(cfg->n);
    else if (strcmp(b, "watchdog") == 0)
        bench_watchdog(cfg->n);
    else if (strcmp(b, "leakscan") == 0)
        bench_leakscan(cfg->n);
    else
        die("unknown benchmark '%s'", b);
    fflush(stdout);
}

static _Noreturn void usage(int status)
{
    FILE *f = stderr; /* stdout is for BENCH lines only */
    fprintf(f, "usage: goro-bench NAME [--procs P] [--n N]\n"
               "  NAME: ");
    for (size_t i = 0; i < NBENCHES; i++)
        fprintf(f, "%s%s (n=%lld)", i ? ", " : "", benches[i].name,
                benches[i].default_n);
    fprintf(f, "\n  --procs P  goro_options.procs (0 = default)\n"
               "  --n N      problem size (default per benchmark)\n");
    exit(status);
}

static long long parse_ll(const char *flag, const char *s, long long lo, long long hi)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "goro-bench: %s: '%s' is not an integer in [%lld, %lld]\n",
                flag, s, lo, hi);
        usage(2);
    }
    return v;
}

/* Accept "--flag V", "--flag=V", "-flag V" and "-flag=V" like Go's flag
 * package. Returns the value or NULL if argv[*i] is not this flag. */
static const char *flag_value(int argc, char **argv, int *i, const char *flag)
{
    const char *a = argv[*i];
    if (a[0] != '-')
        return NULL;
    a += (a[1] == '-') ? 2 : 1;
    size_t fl = strlen(flag);
    if (strncmp(a, flag, fl) != 0)
        return NULL;
    if (a[fl] == '=')
        return a + fl + 1;
    if (a[fl] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "goro-bench: flag needs an argument: %s\n", argv[*i]);
        usage(2);
    }
    return argv[++*i];
}

int main(int argc, char **argv)
{
    bench_cfg cfg = {0};
    const char *v;

    for (int i = 1; i < argc; i++) {
        if ((v = flag_value(argc, argv, &i, "procs"))) {
            cfg.procs = (int)parse_ll("--procs", v, 0, 256);
        } else if ((v = flag_value(argc, argv, &i, "n"))) {
            cfg.n = parse_ll("--n", v, 1, LLONG_MAX);
            cfg.n_set = true;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(0);
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "goro-bench: unknown flag %s\n", argv[i]);
            usage(2);
        } else if (cfg.name) {
            fprintf(stderr, "goro-bench: more than one benchmark name\n");
            usage(2);
        } else {
            cfg.name = argv[i];
        }
    }
    if (!cfg.name)
        usage(2);

    size_t b;
    for (b = 0; b < NBENCHES; b++)
        if (strcmp(cfg.name, benches[b].name) == 0)
            break;
    if (b == NBENCHES) {
        fprintf(stderr, "goro-bench: unknown benchmark '%s'\n", cfg.name);
        usage(2);
    }
    if (!cfg.n_set)
        cfg.n = benches[b].default_n;
    if (cfg.n > benches[b].max_n) {
        fprintf(stderr, "goro-bench: %s: --n must be at most %lld\n", cfg.name,
                benches[b].max_n);
        return 2;
    }

    goro_options opts = {.procs = cfg.procs};
    int rc = goro_run(bench_main, &cfg, &opts);
    if (rc < 0) {
        fprintf(stderr, "goro-bench: goro_run failed: %s (%d)\n", strerror(-rc), rc);
        return 1;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "goro-bench: writing stdout: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}
