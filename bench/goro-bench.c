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
