/*
 * metrics.c - /metrics: Prometheus text exposition format 0.0.4
 * (docs/formats.md §7), with the names Go's client library uses where one
 * exists (go_goroutines, go_threads, go_memstats_*, process_*), so existing
 * dashboards work, and goro_* for what Go has no name for.
 *
 * One pass over the goroutine registry per scrape (goro__gpeek: no
 * unwinding) gives goroutines by state and stack memory; heap figures come
 * from the heap profiler's unbiased sample counts (absent when it is
 * unavailable); process figures from /proc.
 */
#include "debug/metrics.h"

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "debug/watchdog.h"
#include "prof/heapprof.h"

typedef struct mb {
    goro__membuf *b;
    int err;
} mb;

__attribute__((format(printf, 2, 3))) static void out(mb *m, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line || goro__sink_mem(line, (size_t)n, m->b))
        m->err = -ENOMEM;
}

static void metric(mb *m, const char *name, const char *type, const char *help, double v)
{
    out(m, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

typedef struct heapsum {
    double inuse, alloc;
    int64_t rate;
} heapsum;

static void heap_bucket(const goro__heap_bucket *b, void *arg)
{
    heapsum *h = arg;
    int64_t ao = atomic_load(&b->alloc_objects), ab = atomic_load(&b->alloc_bytes);
    int64_t io = ao - atomic_load(&b->free_objects), ib = ab - atomic_load(&b->free_bytes);
    double r = (double)h->rate;
    if (ao > 0 && ab > 0)
        h->alloc += r > 1 ? (double)ab / (1 - exp(-((double)ab / (double)ao) / r)) : (double)ab;
    if (io > 0 && ib > 0)
        h->inuse += r > 1 ? (double)ib / (1 - exp(-((double)ib / (double)io) / r)) : (double)ib;
}

static long count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static long status_field(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static double start_time(void)
{
    FILE *f = fopen("/proc/self/stat", "r");
    char buf[1024];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    /* Field 22 (starttime) counting from the state field (3). */
    unsigned long long ticks = 0;
    int field = 2;
    for (char *t = strtok(p + 1, " "); t; t = strtok(NULL, " "))
        if (++field == 22) {
            ticks = strtoull(t, NULL, 10);
            break;
        }
    f = fopen("/proc/stat", "r");
    unsigned long long btime = 0;
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "btime %llu", &btime) == 1)
            break;
    if (f)
        fclose(f);
    return (double)btime + (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

int goro__metrics_render(goro__membuf *buf)
{
    mb m = {.b = buf};
    /* Goroutines by state, and their stack memory. */
    enum { NSTATES = 4 };
    static const char *const state_names[NSTATES] = {"running", "runnable", "waiting", "syscall"};
    uint64_t by_state[NSTATES] = {0}, by_reason[GORO__WAIT_COUNT] = {0}, stack_bytes = 0,
             total = 0;
    if (goro__running()) {
        uint32_t lim = goro__reg_limit();
        goro__gpeek p;
        for (uint32_t i = 0; i < lim; i++) {
            if (!goro__gpeek_take(i, &p))
                continue;
            total++;
            stack_bytes += p.stack_bytes;
            int k = p.newborn || p.state == GORO__G_RUNNABLE ? 1
                    : p.state == GORO__G_RUNNING            ? 0
                    : p.state == GORO__G_SYSCALL            ? 3
                                                            : 2;
            by_state[k]++;
            if (k == 2 && p.wait_reason < GORO__WAIT_COUNT)
                by_reason[p.wait_reason]++;
        }
    }
    metric(&m, "go_goroutines", "gauge", "Number of goroutines that currently exist.",
           (double)total);
    out(&m, "# HELP goro_goroutines Goroutines by state (waiting ones also by wait reason).\n"
            "# TYPE goro_goroutines gauge\n");
    for (int k = 0; k < NSTATES; k++)
        if (k != 2)
            out(&m, "goro_goroutines{state=\"%s\",reason=\"\"} %" PRIu64 "\n", state_names[k],
                by_state[k]);
    for (int r = 1; r < GORO__WAIT_COUNT; r++)
        if (by_reason[r] || r == GORO__WAIT_CHAN_SEND || r == GORO__WAIT_CHAN_RECV)
            out(&m, "goro_goroutines{state=\"waiting\",reason=\"%s\"} %" PRIu64 "\n",
                goro__wait_reason_str((unsigned)r), by_reason[r]);
    uint64_t created = 0;
    for (uint32_t i = 0; i < goro__sched_.nprocs; i++)
        if (goro__sched_.allp[i])
            created += goro__load_relaxed(&goro__sched_.allp[i]->nspawned);
    metric(&m, "goro_goroutines_created_total", "counter",
           "Goroutines created since the runtime started.", (double)created);
    metric(&m, "goro_io_waiting_goroutines", "gauge", "Goroutines blocked on network I/O.",
           (double)goro_num_io_waiting());
    metric(&m, "goro_procs", "gauge", "Processors (GORO_PROCS): goroutines that can run at once.",
           (double)goro_procs());
    metric(&m, "go_memstats_stack_inuse_bytes", "gauge",
           "Bytes of goroutine stack memory in use (pages from each stack's saved stack "
           "pointer to its top, at least one page per goroutine).",
           (double)stack_bytes);
    if (goro__heapprof_available(NULL)) {
        heapsum h = {.rate = goro_memprofile_rate()};
        goro__heapprof_snapshot(heap_bucket, &h);
        metric(&m, "go_memstats_heap_inuse_bytes", "gauge",
               "Bytes of heap objects in use (estimated from the heap profile's samples).",
               h.inuse);
        metric(&m, "go_memstats_alloc_bytes_total", "counter",
               "Bytes allocated on the heap since the start (estimated from the heap "
               "profile's samples).",
               h.alloc);
    }
    goro_leak_suspect *sus;
    size_t nsus = 0, by_lstate[4] = {0};
    if (goro_watchdog_suspects(&sus, &nsus) == 0) {
        for (size_t i = 0; i < nsus; i++)
            if ((unsigned)sus[i].state < 4)
                by_lstate[sus[i].state]++;
        goro_watchdog_suspects_free(sus, nsus);
    }
    out(&m, "# HELP goro_leak_suspects Groups of goroutines the leak watchdog currently "
            "suspects, by what a reachability scan made of them (suspected: not settled yet; "
            "confirmed: unreachable, leaked; reachable: still reachable; unverified: this "
            "build cannot scan).\n# TYPE goro_leak_suspects gauge\n");
    for (unsigned k = 0; k < 4; k++)
        out(&m, "goro_leak_suspects{state=\"%s\"} %zu\n", goro__leak_state_str(k), by_lstate[k]);
    metric(&m, "goro_leak_reports_total", "counter",
           "Leak suspects the watchdog reported since the process started.",
           (double)goro_watchdog_reports_total());
    metric(&m, "go_threads", "gauge", "Number of OS threads created.",
           (double)status_field("Threads"));
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    metric(&m, "process_cpu_seconds_total", "counter",
           "Total user and system CPU time spent in seconds.",
           (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    long rss = status_field("VmRSS"), vsz = status_field("VmSize");
    metric(&m, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
           rss >= 0 ? (double)rss * 1024 : NAN);
    metric(&m, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
           vsz >= 0 ? (double)vsz * 1024 : NAN);
    metric(&m, "process_open_fds", "gauge", "Number of open file descriptors.",
           (double)count_fds());
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        metric(&m, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
               (double)rl.rlim_cur);
    metric(&m, "process_start_time_seconds", "gauge",
           "Start time of the process since unix epoch in seconds.", start_time());
    return m.err;
}
