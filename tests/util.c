/* util.c - shared helpers for goro's tests (see util.h). */
#define _GNU_SOURCE
#include "util.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* valgrind's client-request header (Debian package valgrind, which the
 * valgrind stage needs anyway); without it gt_under_valgrind() says no. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define GT_HAVE_VALGRIND_H 1
#endif
#endif

extern char **environ;

/* ------------------------------------------------------------------------- */
/* Sanitizers and scaling                                                     */
/* ------------------------------------------------------------------------- */

const char *gt_sanitizer_name(void)
{
    if (GT_TSAN)
        return "ThreadSanitizer";
    if (GT_ASAN)
        return "AddressSanitizer";
    return NULL;
}

size_t gt_scale(const char *what, size_t plain, size_t asan, size_t tsan)
{
    size_t n = GT_TSAN ? tsan : GT_ASAN ? asan : plain;
    if (n != plain)
        fprintf(stderr,
                "note: %s scaled down from %zu to %zu because the build uses "
                "%s (slower, more memory per goroutine)\n",
                what, plain, n, gt_sanitizer_name());
    return n;
}

int64_t gt_late_tolerance(void)
{
    return GT_SANITIZED ? 60 * GORO_MILLISECOND : 30 * GORO_MILLISECOND;
}

bool gt_under_valgrind(void)
{
#ifdef GT_HAVE_VALGRIND_H
    return RUNNING_ON_VALGRIND != 0;
#else
    return false;
#endif
}

int64_t gt_slow(int64_t ns)
{
    /* memcheck runs one thread at a time and slows computation ~20-50x:
     * waits that end when other threads have computed something (an HTTP
     * request's latency, a first leak-find pass that loads debug info)
     * stretch like TSan's. */
    return GT_TSAN || gt_under_valgrind() ? ns * 5 : GT_ASAN ? ns * 3 : ns;
}

/* ------------------------------------------------------------------------- */
/* Errno names                                                                */
/* ------------------------------------------------------------------------- */

const char *gt_errname(long long rc)
{
    if (rc == 0)
        return "0";
    if (rc > 0)
        return "positive";
    switch (-rc) {
    case EINVAL: return "-EINVAL";
    case EPERM: return "-EPERM";
    case EPIPE: return "-EPIPE";
    case EAGAIN: return "-EAGAIN";
    case ETIMEDOUT: return "-ETIMEDOUT";
    case EALREADY: return "-EALREADY";
    case EBUSY: return "-EBUSY";
    case E2BIG: return "-E2BIG";
    case ENOMEM: return "-ENOMEM";
    case ENAMETOOLONG: return "-ENAMETOOLONG";
    case ESRCH: return "-ESRCH";
    case ECANCELED: return "-ECANCELED";
    case EDEADLK: return "-EDEADLK";
    case EBADF: return "-EBADF";
    default: return "-E(other)";
    }
}

/* ------------------------------------------------------------------------- */
/* Running the runtime under a watchdog                                       */
/* ------------------------------------------------------------------------- */

goro_options gt_opts(int procs)
{
    goro_options o;
    memset(&o, 0, sizeof o);
    o.procs = procs;
    return o;
}

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started;
    bool armed;
    int64_t deadline;
    const char *what;
    int timeout_s;
} wd = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *watchdog_thread(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&wd.mu);
    for (;;) {
        if (!wd.armed) {
            pthread_cond_wait(&wd.cv, &wd.mu);
            continue;
        }
        int64_t d = wd.deadline;
        struct timespec ts = {.tv_sec = d / 1000000000, .tv_nsec = d % 1000000000};
        int rc = pthread_cond_timedwait(&wd.cv, &wd.mu, &ts);
        if (rc == ETIMEDOUT && wd.armed && gt_mono_ns() >= wd.deadline) {
            fprintf(stderr,
                    "\nWATCHDOG: goro_run for '%s' did not return within %d s "
                    "(hang or deadlock in the runtime); goroutine dump follows\n",
                    wd.what, wd.timeout_s);
            fflush(stderr);
            pthread_mutex_unlock(&wd.mu);
            goro_dump(2);
            abort();
        }
    }
    return NULL;
}

int gt_run(const char *what, goro_fn main_fn, void *arg,
           const goro_options *opts, int timeout_s)
{
    int64_t t = gt_slow((int64_t)timeout_s * GORO_SECOND);
    if (t > 240 * GORO_SECOND) /* stay below the CTest TIMEOUT (300 s) */
        t = 240 * GORO_SECOND;
    pthread_mutex_lock(&wd.mu);
    if (!wd.started) {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&wd.cv, &ca);
        pthread_condattr_destroy(&ca);
        pthread_t th;
        if (pthread_create(&th, NULL, watchdog_thread, NULL) == 0) {
            pthread_detach(th);
            wd.started = true;
        }
    }
    wd.what = what;
    wd.timeout_s = (int)(t / GORO_SECOND);
    wd.deadline = gt_mono_ns() + t;
    wd.armed = true;
    pthread_cond_signal(&wd.cv);
    pthread_mutex_unlock(&wd.mu);

    int rc = goro_run(main_fn, arg, opts);

    pthread_mutex_lock(&wd.mu);
    wd.armed = false;
    pthread_cond_signal(&wd.cv);
    pthread_mutex_unlock(&wd.mu);
    return rc;
}

bool gt_wait_atomic_ge(atomic_long *flag, long want, int64_t timeout_ns)
{
    int64_t end = goro_now() + timeout_ns;
    while (atomic_load(flag) < want) {
        if (goro_now() >= end)
            return false;
        goro_sleep(GORO_MILLISECOND);
    }
    return true;
}

int gt_wg_wait(goro_waitgroup *wg, int timeout_s)
{
    return goro_waitgroup_wait_until(
        wg, goro_deadline_after(gt_slow((int64_t)timeout_s * GORO_SECOND)));
}

bool gt_wait_num_goroutines(size_t want, int64_t timeout_ns)
{
    int64_t end = goro_now() + timeout_ns;
    while (goro_num_goroutines() != want) {
        if (goro_now() >= end)
            return false;
        goro_sleep(GORO_MILLISECOND);
    }
    return true;
}

/* ------------------------------------------------------------------------- */
/* Time, statistics, randomness                                               */
/* ------------------------------------------------------------------------- */

int64_t gt_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t gt_process_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0)
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int64_t gt_median_i64(const int64_t *v, size_t n)
{
    int64_t *c = malloc(n * sizeof *c);
    if (!c)
        abort();
    memcpy(c, v, n * sizeof *c);
    qsort(c, n, sizeof *c, cmp_i64);
    int64_t m = c[n / 2];
    free(c);
    return m;
}

double gt_median_double(const double *v, size_t n)
{
    double *c = malloc(n * sizeof *c);
    if (!c)
        abort();
    memcpy(c, v, n * sizeof *c);
    qsort(c, n, sizeof *c, cmp_double);
    double m = c[n / 2];
    free(c);
    return m;
}

void gt_rng_seed(gt_rng *r, uint64_t seed)
{
    r->s = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
}

uint64_t gt_rng_next(gt_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint32_t gt_rng_below(gt_rng *r, uint32_t n)
{
    return (uint32_t)(((gt_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* ------------------------------------------------------------------------- */
/* Memory                                                                     */
/* ------------------------------------------------------------------------- */

long gt_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

/* Is [lo, hi) inside the sanitizer's shadow memory (x86-64 Linux)? */
static bool in_shadow(unsigned long long lo, unsigned long long hi)
{
    if (GT_ASAN) /* low shadow, shadow gap, high shadow (offset 0x7fff8000) */
        return lo >= 0x00007fff8000ull && hi <= 0x10007fff8000ull;
    if (GT_TSAN) /* shadow and meta shadow of the 48-bit mapping */
        return (lo >= 0x010000000000ull && hi <= 0x200000000000ull) ||
               (lo >= 0x300000000000ull && hi <= 0x400000000000ull);
    return false;
}

long gt_rss_app_kib(long *shadow_kib)
{
    if (shadow_kib)
        *shadow_kib = 0;
    if (!GT_SANITIZED)
        return gt_rss_kib();
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return -1;
    char line[512];
    long app = 0, shadow = 0;
    bool cur_shadow = false;
    while (fgets(line, sizeof line, f)) {
        unsigned long long lo, hi;
        if (strncmp(line, "Rss:", 4) == 0) {
            long kib = strtol(line + 4, NULL, 10);
            if (cur_shadow)
                shadow += kib;
            else
                app += kib;
        } else if (sscanf(line, "%llx-%llx ", &lo, &hi) == 2 && strchr(line, '-') &&
                   line[0] != ' ') {
            cur_shadow = in_shadow(lo, hi);
        }
    }
    fclose(f);
    if (shadow_kib)
        *shadow_kib = shadow;
    return app;
}

long gt_max_map_count(void)
{
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (!f)
        return -1;
    long v = -1;
    if (fscanf(f, "%ld", &v) != 1)
        v = -1;
    fclose(f);
    return v;
}

/* ------------------------------------------------------------------------- */
/* Text                                                                       */
/* ------------------------------------------------------------------------- */

char *gt_read_all_fd(int fd)
{
    lseek(fd, 0, SEEK_SET); /* fails harmlessly on pipes */
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    for (;;) {
        if (cap - len < 2048) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            return NULL;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    return buf;
}

size_t gt_count_substr(const char *hay, const char *needle)
{
    size_t n = 0, nl = strlen(needle);
    if (nl == 0)
        return 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + nl, needle))
        n++;
    return n;
}

/* Does the line starting at p look like "goroutine <id> [<reason>...]:"? */
static bool header_matches(const char *p, uint64_t id, bool any_id,
                           const char *reason)
{
    if (strncmp(p, "goroutine ", 10) != 0)
        return false;
    p += 10;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (end == p || errno != 0)
        return false;
    if (!any_id && v != id)
        return false;
    p = end;
    if (strncmp(p, " [", 2) != 0)
        return false;
    p += 2;
    if (reason) {
        size_t rl = strlen(reason);
        if (strncmp(p, reason, rl) != 0)
            return false;
        if (p[rl] != ']' && p[rl] != ',')
            return false;
    }
    /* the line must end with "]:" */
    const char *eol = strchr(p, '\n');
    if (!eol)
        eol = p + strlen(p);
    return eol - p >= 2 && eol[-2] == ']' && eol[-1] == ':';
}

static const char *find_header(const char *dump, uint64_t id, bool any_id,
                               const char *reason)
{
    const char *p = dump;
    while (p && *p) {
        if (header_matches(p, id, any_id, reason))
            return p;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return NULL;
}

const char *gt_find_goroutine_header(const char *dump, uint64_t id,
                                     const char *reason)
{
    return find_header(dump, id, false, reason);
}

const char *gt_find_any_header(const char *dump, const char *reason)
{
    return find_header(dump, 0, true, reason);
}

char *gt_dump_block(const char *header)
{
    const char *end = strstr(header, "\n\n");
    size_t n = end ? (size_t)(end - header) : strlen(header);
    char *b = malloc(n + 1);
    if (!b)
        abort();
    memcpy(b, header, n);
    b[n] = '\0';
    return b;
}

/* ------------------------------------------------------------------------- */
/* Child processes                                                            */
/* ------------------------------------------------------------------------- */

void gt_say(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0) {
        ssize_t w = write(1, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
        (void)w;
    }
}

const char *gt_child_scenario(void)
{
    const char *s = getenv(GT_SCENARIO_ENV);
    return (s && *s) ? s : NULL;
}

static bool env_name_in(const char *entry, const char *const *list)
{
    if (!list)
        return false;
    const char *eq = strchr(entry, '=');
    size_t n = eq ? (size_t)(eq - entry) : strlen(entry);
    for (; *list; list++)
        if (strncmp(*list, entry, n) == 0 && (*list)[n] == '=')
            return true;
    return false;
}

int gt_child_start(gt_child *c, const char *scenario,
                   const char *const *extra_env)
{
    memset(c, 0, sizeof *c);
    c->out_fd = c->err_fd = -1;
    c->pid = -1;

    /* Build the child's environment before forking. */
    size_t nenv = 0, nextra = 0;
    while (environ[nenv])
        nenv++;
    while (extra_env && extra_env[nextra])
        nextra++;
    char **envp = calloc(nenv + nextra + 4, sizeof *envp);
    if (!envp)
        return -ENOMEM;
    size_t k = 0;
    char *owned[2] = {NULL, NULL};
    for (size_t i = 0; i < nenv; i++) {
        const char *e = environ[i];
        if (strncmp(e, "GORO_", 5) == 0)
            continue; /* GORO_TEST_SCENARIO and runtime knobs */
        if (env_name_in(e, extra_env))
            continue;
        if (GT_ASAN && strncmp(e, "ASAN_OPTIONS=", 13) == 0)
            continue;
        envp[k++] = (char *)e;
    }
    for (size_t i = 0; i < nextra; i++)
        envp[k++] = (char *)extra_env[i];
    if (asprintf(&owned[0], "%s=%s", GT_SCENARIO_ENV, scenario) < 0) {
        free(envp);
        return -ENOMEM;
    }
    envp[k++] = owned[0];
    if (GT_ASAN) {
        /* The child is meant to die with exit status 2 from inside the
         * runtime; a leak report at exit would change its status. */
        const char *old = getenv("ASAN_OPTIONS");
        if (asprintf(&owned[1], "ASAN_OPTIONS=%s%sdetect_leaks=0",
                     old ? old : "", (old && *old) ? ":" : "") < 0) {
            free(owned[0]);
            free(envp);
            return -ENOMEM;
        }
        envp[k++] = owned[1];
    }
    envp[k] = NULL;

    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) != 0) {
        int e = errno;
        free(owned[0]);
        free(owned[1]);
        free(envp);
        return -e;
    }
    if (pipe2(pe, O_CLOEXEC) != 0) {
        int e = errno;
        close(po[0]);
        close(po[1]);
        free(owned[0]);
        free(owned[1]);
        free(envp);
        return -e;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(po[0]);
        close(po[1]);
        close(pe[0]);
        close(pe[1]);
        free(owned[0]);
        free(owned[1]);
        free(envp);
        return -e;
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGQUIT, SIG_DFL);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        char *argv[] = {(char *)"goro-test-child", NULL};
        execve("/proc/self/exe", argv, envp);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    free(owned[0]);
    free(owned[1]);
    free(envp);
    c->pid = pid;
    c->out_fd = po[0];
    c->err_fd = pe[0];
    return 0;
}

static void buf_append(char **buf, size_t *len, size_t *cap, const char *src,
                       size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 4096;
        while (nc < *len + n + 1)
            nc *= 2;
        char *nb = realloc(*buf, nc);
        if (!nb)
            abort();
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, src, n);
    *len += n;
    (*buf)[*len] = '\0';
}

/* Poll the child's pipes for at most timeout_ms; read what is there. */
static void pump(gt_child *c, int timeout_ms)
{
    struct pollfd pf[2];
    int n = 0;
    if (c->out_fd >= 0)
        pf[n++] = (struct pollfd){.fd = c->out_fd, .events = POLLIN};
    if (c->err_fd >= 0)
        pf[n++] = (struct pollfd){.fd = c->err_fd, .events = POLLIN};
    if (n == 0) {
        if (timeout_ms > 0)
            usleep((useconds_t)timeout_ms * 1000);
        return;
    }
    int r = poll(pf, (nfds_t)n, timeout_ms);
    if (r <= 0)
        return;
    for (int i = 0; i < n; i++) {
        if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        char tmp[65536];
        ssize_t got = read(pf[i].fd, tmp, sizeof tmp);
        if (got < 0 && errno == EINTR)
            continue;
        bool is_out = pf[i].fd == c->out_fd;
        if (got <= 0) {
            close(pf[i].fd);
            if (is_out)
                c->out_fd = -1;
            else
                c->err_fd = -1;
            continue;
        }
        if (is_out)
            buf_append(&c->out, &c->out_len, &c->out_cap, tmp, (size_t)got);
        else
            buf_append(&c->err, &c->err_len, &c->err_cap, tmp, (size_t)got);
    }
}

bool gt_child_wait_output(gt_child *c, int stream, const char *text,
                          int64_t timeout_ns)
{
    int64_t end = gt_mono_ns() + timeout_ns;
    for (;;) {
        const char *b = stream == 1 ? c->out : c->err;
        if (b && strstr(b, text))
            return true;
        int fd = stream == 1 ? c->out_fd : c->err_fd;
        int64_t left = end - gt_mono_ns();
        if (fd < 0 || left <= 0)
            return false;
        pump(c, (int)(left / 1000000 > 50 ? 50 : left / 1000000 + 1));
    }
}

bool gt_child_alive(gt_child *c)
{
    if (c->reaped || c->pid <= 0)
        return false;
    int st;
    pid_t r = waitpid(c->pid, &st, WNOHANG);
    if (r == c->pid) {
        c->reaped = true;
        c->status = st;
        return false;
    }
    return r == 0;
}

void gt_child_finish(gt_child *c, int64_t timeout_ns)
{
    int64_t end = gt_mono_ns() + timeout_ns;
    while (!c->reaped) {
        if (!gt_child_alive(c))
            break;
        if (gt_mono_ns() >= end) {
            kill(c->pid, SIGKILL);
            c->timed_out = true;
            int st;
            if (waitpid(c->pid, &st, 0) == c->pid) {
                c->reaped = true;
                c->status = st;
            }
            break;
        }
        pump(c, 20);
    }
    /* The child is gone: read what is left in the pipes (bounded, in case a
     * grandchild kept them open). */
    int64_t drain_end = gt_mono_ns() + 2 * GORO_SECOND;
    while ((c->out_fd >= 0 || c->err_fd >= 0) && gt_mono_ns() < drain_end)
        pump(c, 50);
    if (!c->out)
        buf_append(&c->out, &c->out_len, &c->out_cap, "", 0);
    if (!c->err)
        buf_append(&c->err, &c->err_len, &c->err_cap, "", 0);
}

void gt_child_free(gt_child *c)
{
    if (c->pid > 0 && !c->reaped) {
        kill(c->pid, SIGKILL);
        int st;
        waitpid(c->pid, &st, 0);
        c->reaped = true;
    }
    if (c->out_fd >= 0)
        close(c->out_fd);
    if (c->err_fd >= 0)
        close(c->err_fd);
    c->out_fd = c->err_fd = -1;
    free(c->out);
    free(c->err);
    c->out = c->err = NULL;
}

const char *gt_status_str(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "wait status 0x%x", status);
    return buf;
}

void gt_child_print(const gt_child *c, const char *label)
{
    fprintf(stderr, "----- %s: child stdout (%zu bytes) -----\n%s\n", label,
            c->out_len, c->out ? c->out : "");
    fprintf(stderr, "----- %s: child stderr (%zu bytes) -----\n%s\n", label,
            c->err_len, c->err ? c->err : "");
    fprintf(stderr, "----- end of %s -----\n", label);
}
