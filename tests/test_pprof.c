/*
 * test_pprof.c - goro's profiles as their users read them: written with
 * goro_write_profile / goro_write_cpu_profile inside goro_run, checked from
 * the test's own thread, mostly through `go tool pprof` (the reader the
 * formats must satisfy, docs/formats.md) and through small parsers of the text
 * formats written here.
 *
 *  1. every profile (heap, allocs, goroutine, threadcreate, block, mutex,
 *     goroutineleak, CPU) loads with `go tool pprof -raw`, `-top` and
 *     `-traces` (exit 0, no error), and names the known functions of this
 *     file with the right test_pprof.c:LINE (lines captured with __LINE__
 *     at the call sites). goroutineleak is taken in a fresh child process
 *     (its reachability scan treats freed heap memory as a root, so it needs
 *     a process without garbage from earlier runs).
 *  2. heap accuracy: three allocation sites with known live bytes (24 MiB of
 *     4 KiB blocks, 8 MiB of 64 KiB blocks, 8 MiB of 256 B blocks), each
 *     within 20% in the proto (pprof -raw and -top) and in the debug=1 text
 *     (parsed here, unbiased as docs/formats.md §6 says).
 *  3. the leak pattern: 20,000 goroutines parked sending on unbuffered
 *     channels nobody reads, spawned by spawn_leakers: the function is at
 *     the top of `-top -sample_index=inuse_space` with its goroutines'
 *     stack bytes (>= 80% of N * 4 KiB) and exactly N objects; the same
 *     profile's debug=1 text must say the same (pprof's legacy parser and
 *     the docs/formats.md unbiasing).
 *  4. CPU: one goroutine alternating burn_a (7 units) and burn_b (3 units)
 *     in cycles of random length (a fixed cycle near the 10 ms sampling
 *     period aliases with it) for 3 s: > 100 samples and a split within 10
 *     points of 70/30, both in -top and in -raw.
 *  5. goroutine debug=1 text: the docs/formats.md shape checked line by line, and
 *     `go tool pprof -top` loads it (Go 1.19's legacy parser accepts it);
 *     threadcreate and goroutineleak debug=1 must load too.
 *  6. goroutine debug=2: a parser for the docs/formats.md grammar (plus goro's
 *     documented extensions: `, name "x"` in the header, "\t<- f at
 *     file:line" creation frames) reads every record of a dump with
 *     running (self and on another thread), runnable, chan send/receive,
 *     select, select (no cases), sleep, sync.Mutex.Lock, RWMutex RLock/Lock,
 *     WaitGroup, Cond, Once, IO wait and syscall goroutines, each in the
 *     state and function it is known to be in; the same through goro_dump.
 *     Source paths (proto and dump) are the ones the compiler was given.
 *  7. debug=2 with 1,000,000 parked goroutines (100,000 under ASan, 20,000
 *     under TSan, whose per-fiber mappings exhaust vm.max_map_count):
 *     written to a file in /tmp, read back streaming: exactly one record per
 *     live goroutine, distinct ids, every record well formed, the last one
 *     complete. goro_write_profile streams the dump to the file as it is
 *     written: the peak RSS may not grow by more than 64 MiB (the dump is
 *     ~300 MB).
 *  8. heap profiler status: active in a plain build; under ASan/TSan
 *     inactive with a reason (goro_heap_profiler_active), and the heap
 *     profile is still written, loads,
 *     carries the "heap profile unavailable: <reason>" comment and the
 *     (exact) goroutine stack memory.
 *
 * Without `go` on PATH the pprof parts are skipped with a note; the text
 * parsers still run. GT_PPROF_KEEP=1 keeps the profiles (the directory is
 * printed). Heavy (4 GB of goroutine stacks in part 7): RUN_SERIAL.
 */
#define _GNU_SOURCE
#include "util.h"

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MS GORO_MILLISECOND

#if defined(__clang__)
#define NOINL __attribute__((noinline))
#else
#define NOINL __attribute__((noinline, noclone))
#endif

/* Internal (src/prof/heapprof.h): is the heap profiler active, and if not,
 * why. goro.h has no public equivalent. */

extern char **environ;

/* The line of a call, recorded on the line of the call (goroutines may run
 * the same code at once: atomic). */
#define SET_LINE(v) atomic_store_explicit(&(v), __LINE__, memory_order_relaxed)

/* Known functions end with KEEP_FRAME() after their last call: this file is
 * built without -fno-optimize-sibling-calls, and a tail call would take
 * their frame off the stack the profiles show. */
static atomic_long sink;
#define KEEP_FRAME() atomic_fetch_add_explicit(&sink, 1, memory_order_relaxed)

/* ------------------------------------------------------------------------- */
/* Files, go tool pprof                                                       */
/* ------------------------------------------------------------------------- */

static char tmpdir[96];
static bool have_go;
static bool have_timeout;
static char **go_envp;

static const char *tpath(const char *name)
{
    static char bufs[8][256];
    static int k;
    char *b = bufs[k++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", tmpdir, name);
    return b;
}

/* Inside a goroutine: write profile `name` with `debug` to tmpdir/file. */
static int save_profile(const char *name, int debug, const char *file)
{
    int fd = open(tpath(file), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = goro_write_profile(name, debug, fd);
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    return rc;
}

static int save_cpu_profile(int64_t seconds, const char *file)
{
    int fd = open(tpath(file), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = goro_write_cpu_profile(seconds, fd);
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    return rc;
}

/* Copy with truncation (no snprintf: gcc's truncation warnings). */
static void copy_str(char *dst, size_t len, const char *src)
{
    size_t n = strlen(src);
    if (n >= len)
        n = len - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

static char *slurp(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *s = gt_read_all_fd(fd);
    close(fd);
    return s;
}

static bool on_path(const char *prog)
{
    const char *path = getenv("PATH");
    if (!path)
        return false;
    char *dup = strdup(path), *save = NULL;
    bool found = false;
    for (char *d = strtok_r(dup, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
        char full[1024];
        snprintf(full, sizeof full, "%s/%s", *d ? d : ".", prog);
        found = access(full, X_OK) == 0;
    }
    free(dup);
    return found;
}

/* The environment for go: HOME and GOCACHE in our temporary directory,
 * modules off the network, no toolchain switching. */
static void build_go_env(void)
{
    static const char *const drop[] = {"HOME=", "GOCACHE=", "GOFLAGS=", "GOPROXY=",
                                       "GOTOOLCHAIN=", "GOPATH=", "GOTELEMETRY=", NULL};
    size_t n = 0;
    while (environ[n])
        n++;
    go_envp = calloc(n + 8, sizeof *go_envp);
    assert_non_null(go_envp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool skip = false;
        for (const char *const *d = drop; *d && !skip; d++)
            skip = strncmp(environ[i], *d, strlen(*d)) == 0;
        if (!skip)
            go_envp[k++] = strdup(environ[i]);
    }
    char buf[300];
    snprintf(buf, sizeof buf, "HOME=%s/home", tmpdir);
    go_envp[k++] = strdup(buf);
    snprintf(buf, sizeof buf, "GOCACHE=%s/gocache", tmpdir);
    go_envp[k++] = strdup(buf);
    snprintf(buf, sizeof buf, "GOPATH=%s/gopath", tmpdir);
    go_envp[k++] = strdup(buf);
    go_envp[k++] = strdup("GOFLAGS=-mod=mod");
    go_envp[k++] = strdup("GOPROXY=off");
    go_envp[k++] = strdup("GOTELEMETRY=off");
    go_envp[k] = NULL;
}

typedef struct cmdres {
    int status; /* exit code; -1 if it did not exit normally */
    char *out, *err;
} cmdres;

static void cmd_free(cmdres *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

/* `timeout 60 go tool pprof ARGS... FILE` (posix_spawn; output in files).
 * args is NULL-terminated. */
static cmdres run_pprof(const char *const *args, const char *file)
{
    static int seq;
    const char *argv[32];
    int a = 0;
    if (have_timeout) {
        argv[a++] = "timeout";
        argv[a++] = "-k";
        argv[a++] = "5";
        argv[a++] = GT_SANITIZED ? "120" : "60";
    }
    argv[a++] = "go";
    argv[a++] = "tool";
    argv[a++] = "pprof";
    for (const char *const *p = args; *p && a < 30; p++)
        argv[a++] = *p;
    argv[a++] = file;
    argv[a] = NULL;
    char outp[256], errp[256];
    seq++;
    snprintf(outp, sizeof outp, "%s/pprof%d.out", tmpdir, seq);
    snprintf(errp, sizeof errp, "%s/pprof%d.err", tmpdir, seq);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    cmdres r = {-1, NULL, NULL};
    fflush(stdout);
    fflush(stderr);
    int e = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, go_envp);
    posix_spawn_file_actions_destroy(&fa);
    if (e == 0) {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        if (WIFEXITED(st))
            r.status = WEXITSTATUS(st);
    }
    r.out = slurp(outp);
    r.err = slurp(errp);
    if (!r.out)
        r.out = strdup("");
    if (!r.err)
        r.err = strdup("");
    unlink(outp);
    unlink(errp);
    return r;
}

static bool pprof_err_text(const char *s)
{
    return strcasestr(s, "error") || strcasestr(s, "malformed") ||
           strcasestr(s, "unrecognized") || strcasestr(s, "failed") ||
           strcasestr(s, "no samples");
}

/* Run pprof with one flag list and fail the test unless it succeeded.
 * Returns stdout (malloc'd). */
#define PPROF(file, ...) pprof_ok_(file, (const char *const[]){__VA_ARGS__, NULL})
static char *pprof_ok_(const char *file, const char *const *args)
{
    cmdres r = run_pprof(args, file);
    if (r.status != 0 || pprof_err_text(r.err)) {
        char flags[256] = "";
        for (const char *const *p = args; *p; p++) {
            strncat(flags, *p, sizeof flags - strlen(flags) - 2);
            strcat(flags, " ");
        }
        print_error("go tool pprof %s%s: exit %d\nstderr:\n%s\nstdout:\n%.4000s\n", flags, file,
                    r.status, r.err, r.out);
        cmd_free(&r);
        fail_msg("go tool pprof could not read %s", file);
    }
    /* (legacy text profiles have no mappings: pprof says so) */
    if (r.err[0] && strcmp(r.err, "Main binary filename not available.\n"))
        fprintf(stderr, "note: go tool pprof printed on stderr: %s\n", r.err);
    free(r.err);
    return r.out;
}

/* ------------------------------------------------------------------------- */
/* pprof -raw                                                                 */
/* ------------------------------------------------------------------------- */

typedef struct rframe {
    char *func, *file;
    int line;
} rframe;

typedef struct rloc {
    int nfr;       /* inlined first, caller last */
    rframe fr[16];
} rloc;

typedef struct rsample {
    int64_t v[4];
    size_t nloc;
    uint32_t *loc; /* leaf first */
    char *labels;  /* label lines joined, or NULL */
} rsample;

typedef struct rawprof {
    int ntypes;
    char types[4][40];
    int64_t period;
    size_t ns, ncap;
    rsample *s;
    size_t nl; /* locations by id (index = id) */
    rloc *l;
} rawprof;

static void raw_free(rawprof *p)
{
    for (size_t i = 0; i < p->ns; i++) {
        free(p->s[i].loc);
        free(p->s[i].labels);
    }
    free(p->s);
    for (size_t i = 0; i < p->nl; i++)
        for (int k = 0; k < p->l[i].nfr; k++) {
            free(p->l[i].fr[k].func);
            free(p->l[i].fr[k].file);
        }
    free(p->l);
    memset(p, 0, sizeof *p);
}

/* "func file:line s=N" into fr. */
static bool raw_frame(const char *s, rframe *fr)
{
    while (*s == ' ')
        s++;
    const char *sp = strchr(s, ' ');
    if (!sp)
        return false;
    const char *end = strstr(sp, " s=");
    if (!end)
        end = sp + strlen(sp);
    const char *colon = NULL;
    for (const char *q = sp + 1; q < end; q++)
        if (*q == ':')
            colon = q;
    if (!colon)
        return false;
    fr->func = strndup(s, (size_t)(sp - s));
    fr->file = strndup(sp + 1, (size_t)(colon - sp - 1));
    fr->line = atoi(colon + 1);
    return true;
}

static bool raw_parse(const char *text, rawprof *p)
{
    memset(p, 0, sizeof *p);
    char *dup = strdup(text), *save = NULL;
    enum { HEAD, TYPES, SAMPLES, LOCS, MAPS } sec = HEAD;
    rloc *cur = NULL;
    bool ok = true;
    for (char *ln = strtok_r(dup, "\n", &save); ln && ok; ln = strtok_r(NULL, "\n", &save)) {
        if (sec == HEAD) {
            if (!strncmp(ln, "Period:", 7))
                p->period = strtoll(ln + 7, NULL, 10);
            if (!strcmp(ln, "Samples:"))
                sec = TYPES;
            continue;
        }
        if (sec == TYPES) {
            char *s2 = NULL;
            for (char *t = strtok_r(ln, " ", &s2); t && p->ntypes < 4; t = strtok_r(NULL, " ", &s2)) {
                char *b = strstr(t, "[dflt]");
                if (b)
                    *b = 0;
                snprintf(p->types[p->ntypes++], sizeof p->types[0], "%s", t);
            }
            sec = SAMPLES;
            continue;
        }
        if (!strcmp(ln, "Locations")) {
            sec = LOCS;
            continue;
        }
        if (!strcmp(ln, "Mappings")) {
            sec = MAPS;
            continue;
        }
        if (sec == SAMPLES) {
            char *colon = strchr(ln, ':');
            bool is_label = strstr(ln, ":[") != NULL;
            if (is_label) {
                if (p->ns == 0) {
                    ok = false;
                    break;
                }
                rsample *s = &p->s[p->ns - 1];
                char *t = ln;
                while (*t == ' ')
                    t++;
                size_t ol = s->labels ? strlen(s->labels) : 0;
                s->labels = realloc(s->labels, ol + strlen(t) + 2);
                if (ol) {
                    strcat(s->labels, " ");
                    strcat(s->labels, t);
                } else {
                    strcpy(s->labels, t);
                }
                continue;
            }
            if (!colon) {
                ok = false;
                break;
            }
            if (p->ns == p->ncap) {
                p->ncap = p->ncap ? p->ncap * 2 : 64;
                p->s = realloc(p->s, p->ncap * sizeof *p->s);
            }
            rsample *s = &p->s[p->ns++];
            memset(s, 0, sizeof *s);
            char *q = ln;
            for (int i = 0; i < p->ntypes; i++)
                s->v[i] = strtoll(q, &q, 10);
            q = colon + 1;
            size_t cap = 8;
            s->loc = malloc(cap * sizeof *s->loc);
            for (;;) {
                while (*q == ' ')
                    q++;
                if (!*q)
                    break;
                if (s->nloc == cap)
                    s->loc = realloc(s->loc, (cap *= 2) * sizeof *s->loc);
                s->loc[s->nloc++] = (uint32_t)strtoul(q, &q, 10);
            }
            continue;
        }
        if (sec == LOCS) {
            /* "     1: 0x55.. M=1 func file:line s=0" or a continuation line
             * "             func file:line s=0" (an inlined caller). */
            char *t = ln;
            while (*t == ' ')
                t++;
            char *end;
            unsigned long id = strtoul(t, &end, 10);
            if (end != t && *end == ':') {
                if (id >= p->nl) {
                    size_t nn = id + 64;
                    p->l = realloc(p->l, nn * sizeof *p->l);
                    memset(p->l + p->nl, 0, (nn - p->nl) * sizeof *p->l);
                    p->nl = nn;
                }
                cur = &p->l[id];
                t = end + 1;
                while (*t == ' ')
                    t++;
                if (!strncmp(t, "0x", 2)) /* address */
                    t = strchr(t, ' ') ? strchr(t, ' ') + 1 : t + strlen(t);
                if (!strncmp(t, "M=", 2))
                    t = strchr(t, ' ') ? strchr(t, ' ') + 1 : t + strlen(t);
                if (*t && cur->nfr < 16 && raw_frame(t, &cur->fr[cur->nfr]))
                    cur->nfr++;
            } else if (cur && cur->nfr < 16 && raw_frame(t, &cur->fr[cur->nfr])) {
                cur->nfr++;
            }
        }
    }
    free(dup);
    return ok && p->ntypes > 0;
}

static int raw_type(const rawprof *p, const char *type)
{
    for (int i = 0; i < p->ntypes; i++)
        if (!strncmp(p->types[i], type, strlen(type)) && p->types[i][strlen(type)] == '/')
            return i;
    return -1;
}

static const rloc *raw_loc(const rawprof *p, uint32_t id)
{
    return id < p->nl ? &p->l[id] : NULL;
}

/* Does sample s have func anywhere in its stack (cum), or as its innermost
 * frame (flat)? line > 0 also requires that frame to be at file_sfx:line. */
static bool sample_has(const rawprof *p, const rsample *s, const char *func, bool flat,
                       const char *file_sfx, int line)
{
    for (size_t i = 0; i < s->nloc; i++) {
        const rloc *l = raw_loc(p, s->loc[i]);
        if (!l)
            continue;
        for (int k = 0; k < l->nfr; k++) {
            const rframe *f = &l->fr[k];
            bool match = !strcmp(f->func, func);
            if (match && line > 0) {
                size_t fl = strlen(f->file), sl = strlen(file_sfx);
                match = f->line == line && fl >= sl && !strcmp(f->file + fl - sl, file_sfx);
            }
            if (match)
                return true;
            if (flat)
                return false;
        }
    }
    return false;
}

/* Sum of sample type `type` over samples with func (cum or flat). */
static int64_t raw_sum(const rawprof *p, const char *type, const char *func, bool flat)
{
    int t = raw_type(p, type);
    if (t < 0)
        return -1;
    int64_t sum = 0;
    for (size_t i = 0; i < p->ns; i++)
        if (!func || sample_has(p, &p->s[i], func, flat, "", 0))
            sum += p->s[i].v[t];
    return sum;
}

/* Is there a location frame "func .../file_sfx:line"? (line 0: any line;
 * line < 0: any line in [-line, line_hi]) */
static bool raw_has_frame(const rawprof *p, const char *func, const char *file_sfx, int lo,
                          int hi)
{
    for (size_t i = 0; i < p->nl; i++)
        for (int k = 0; k < p->l[i].nfr; k++) {
            const rframe *f = &p->l[i].fr[k];
            size_t fl = strlen(f->file), sl = strlen(file_sfx);
            if (!strcmp(f->func, func) && fl >= sl && !strcmp(f->file + fl - sl, file_sfx) &&
                (lo == 0 || (f->line >= lo && f->line <= hi)))
                return true;
        }
    return false;
}

/* The file name of the first location frame of func, or NULL. */
static const char *raw_file_of(const rawprof *p, const char *func)
{
    for (size_t i = 0; i < p->nl; i++)
        for (int k = 0; k < p->l[i].nfr; k++)
            if (!strcmp(p->l[i].fr[k].func, func))
                return p->l[i].fr[k].file;
    return NULL;
}

static void raw_print_frames(const rawprof *p, const char *func)
{
    for (size_t i = 0; i < p->nl; i++)
        for (int k = 0; k < p->l[i].nfr; k++)
            if (!func || !strcmp(p->l[i].fr[k].func, func))
                print_error("  location %zu: %s %s:%d\n", i, p->l[i].fr[k].func,
                            p->l[i].fr[k].file, p->l[i].fr[k].line);
}

/* ------------------------------------------------------------------------- */
/* pprof -top                                                                 */
/* ------------------------------------------------------------------------- */

/* "19.58MB", "630ms", "1.20s", "96", "0" in base units (bytes: pprof's
 * 1024-based units; time: nanoseconds). */
static double top_value(const char *tok)
{
    char *end;
    double v = strtod(tok, &end);
    static const struct {
        const char *u;
        double f;
    } units[] = {{"B", 1},      {"kB", 1024.0},   {"MB", 1048576.0}, {"GB", 1073741824.0},
                 {"TB", 1099511627776.0}, {"ns", 1}, {"us", 1e3}, {"ms", 1e6},
                 {"s", 1e9},    {"mins", 60e9},   {"hrs", 3600e9}};
    if (!*end)
        return v;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcmp(end, units[i].u))
            return v * units[i].f;
    return NAN;
}

typedef struct toprow {
    double flat, cum;
    bool found;
} toprow;

/* The row for func (name with or without " (inline)"); *first gets the
 * name in the first row if not NULL. */
static toprow top_row(const char *top, const char *func, char *first, size_t firstlen)
{
    toprow r = {0, 0, false};
    const char *h = strstr(top, "      flat  flat%");
    if (first && firstlen)
        first[0] = 0;
    if (!h)
        return r;
    const char *ln = strchr(h, '\n');
    bool firstrow = true;
    while (ln && *++ln) {
        const char *eol = strchr(ln, '\n');
        size_t n = eol ? (size_t)(eol - ln) : strlen(ln);
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)n, ln);
        char f[64], fp[64], sp[64], c[64], cp[64], name[300];
        if (sscanf(line, "%63s %63s %63s %63s %63s %299[^\n]", f, fp, sp, c, cp, name) == 6) {
            char *inl = strstr(name, " (inline)");
            if (inl)
                *inl = 0;
            if (firstrow && first)
                copy_str(first, firstlen, name);
            firstrow = false;
            if (!strcmp(name, func)) {
                r.flat = top_value(f);
                r.cum = top_value(c);
                r.found = true;
                return r;
            }
        }
        ln = eol;
    }
    return r;
}

/* "Showing nodes accounting for X, P% of T total" -> T. */
static double top_total(const char *top)
{
    const char *s = strstr(top, "% of ");
    if (!s)
        return NAN;
    char tok[64];
    if (sscanf(s + 5, "%63s", tok) != 1)
        return NAN;
    return top_value(tok);
}

/* ------------------------------------------------------------------------- */
/* Text profiles (debug=1): counts and heap                                   */
/* ------------------------------------------------------------------------- */

/* One "#\t0x..\tfunc+0x..\tfile:line" line, tabs possibly repeated. */
typedef struct tframe {
    uint64_t pc;
    char func[128];
    uint64_t off;
    char file[256];
    int line;
    bool symbolized;
} tframe;

static bool text_frame(const char *ln, tframe *f)
{
    memset(f, 0, sizeof *f);
    if (strncmp(ln, "#\t", 2))
        return false;
    const char *p = ln + 1;
    while (*p == '\t')
        p++;
    char *end;
    if (strncmp(p, "0x", 2))
        return false;
    f->pc = strtoull(p, &end, 16);
    if (end == p + 2)
        return false;
    p = end;
    if (!*p)
        return true; /* "#\t0x..": unknown */
    if (*p != '\t')
        return false;
    while (*p == '\t')
        p++;
    const char *plus = strstr(p, "+0x");
    const char *tab = strchr(p, '\t');
    if (!plus || !tab || plus > tab)
        return false;
    snprintf(f->func, sizeof f->func, "%.*s", (int)(plus - p), p);
    f->off = strtoull(plus + 3, &end, 16);
    if (end != tab)
        return false;
    p = tab;
    while (*p == '\t')
        p++;
    const char *colon = strrchr(p, ':');
    if (!colon || colon == p)
        return false;
    snprintf(f->file, sizeof f->file, "%.*s", (int)(colon - p), p);
    f->line = (int)strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1)
        return false;
    f->symbolized = true;
    return true;
}

static bool ends_with(const char *s, const char *sfx)
{
    size_t a = strlen(s), b = strlen(sfx);
    return a >= b && !strcmp(s + a - b, sfx);
}

/* A count profile's debug=1 text (docs/formats.md §2). */
typedef struct ctext {
    char kind[32];
    long total, sum;
    size_t groups;
    bool sorted;
    char err[512];
    /* the group whose frames include want_func at want_file:want_line */
    const char *want_func;
    int want_line;
    long want_count;
    bool want_pc_ok;
} ctext;

static bool ctext_parse(const char *text, ctext *c)
{
    char *dup = strdup(text), *save = NULL;
    char *ln = strtok_r(dup, "\n", &save);
    bool ok = false;
    c->sorted = true;
    int hdr_n = 0;
    if (!ln || sscanf(ln, "%31s profile: total %ld%n", c->kind, &c->total, &hdr_n) != 2 ||
        ln[hdr_n]) {
        snprintf(c->err, sizeof c->err, "bad header: %s", ln ? ln : "(none)");
        goto out;
    }
    /* strtok_r skips empty lines: parse by hand from here to see them. */
    free(dup);
    dup = strdup(text);
    char *p = strchr(dup, '\n');
    if (!p) {
        ok = c->total == 0;
        goto out;
    }
    p++;
    /* goro's extension: the profile's comments as "# " lines right after
     * the header (the leak profile's per-group summary); pprof skips them. */
    while (!strncmp(p, "# ", 2) && strchr(p, '\n'))
        p = strchr(p, '\n') + 1;
    long prev = LONG_MAX;
    while (*p) {
        char *eol = strchr(p, '\n');
        if (!eol) {
            snprintf(c->err, sizeof c->err, "last line not terminated: %.100s", p);
            goto out;
        }
        *eol = 0;
        /* goro's extension: after the groups, a blank line and "# " comment
         * lines (e.g. why a profile is unavailable); pprof skips them. */
        if (!*p || !strncmp(p, "# ", 2)) {
            bool tail_ok = true;
            for (char *t = eol + 1; *t && tail_ok;) {
                char *te = strchr(t, '\n');
                if (!te)
                    break;
                tail_ok = te == t || !strncmp(t, "# ", 2);
                t = te + 1;
            }
            if (tail_ok)
                break;
        }
        /* "N @ 0x.. 0x.." */
        char *q;
        long n = strtol(p, &q, 10);
        if (q == p || strncmp(q, " @", 2)) {
            snprintf(c->err, sizeof c->err, "expected a group line, got: %.100s", p);
            goto out;
        }
        q += 2;
        uint64_t pcs[128];
        size_t npc = 0;
        while (*q == ' ' && npc < 128) {
            if (strncmp(q, " 0x", 3)) {
                snprintf(c->err, sizeof c->err, "bad pc in: %.100s", p);
                goto out;
            }
            pcs[npc++] = strtoull(q + 3, &q, 16);
        }
        if (*q || npc == 0) {
            snprintf(c->err, sizeof c->err,
                     "group line without program counters (pprof's legacy parser wants "
                     "`N @ 0x..`): \"%.100s\"",
                     p);
            goto out;
        }
        if (n > prev)
            c->sorted = false;
        prev = n;
        c->sum += n;
        c->groups++;
        p = eol + 1;
        /* optional labels, frames, blank line */
        bool want = false, pc_ok = true;
        while (*p && *p != '\n') {
            eol = strchr(p, '\n');
            if (!eol) {
                snprintf(c->err, sizeof c->err, "unterminated line: %.100s", p);
                goto out;
            }
            *eol = 0;
            if (!strncmp(p, "# labels: {", 11)) {
                p = eol + 1;
                continue;
            }
            tframe f;
            if (!text_frame(p, &f)) {
                snprintf(c->err, sizeof c->err, "bad frame line: %.100s", p);
                goto out;
            }
            bool pc_listed = false;
            for (size_t i = 0; i < npc; i++)
                pc_listed |= pcs[i] - 1 == f.pc || pcs[i] == f.pc;
            pc_ok &= pc_listed;
            if (c->want_func && f.symbolized && !strcmp(f.func, c->want_func) &&
                ends_with(f.file, "test_pprof.c") && f.line == c->want_line)
                want = true;
            p = eol + 1;
        }
        if (!*p) {
            snprintf(c->err, sizeof c->err, "group not followed by a blank line");
            goto out;
        }
        p++; /* the blank line */
        if (want) {
            c->want_count += n;
            c->want_pc_ok = pc_ok;
        }
    }
    ok = c->sum == c->total;
    if (!ok)
        snprintf(c->err, sizeof c->err, "groups add up to %ld, header says %ld", c->sum,
                 c->total);
out:
    free(dup);
    return ok;
}

/* heap debug=1 text (docs/formats.md §4): per leaf function, the raw
 * in-use counts, unbiased here with rate = header / 2. */
typedef struct htext {
    long long hdr[4];
    long long rate2;
    long long sum[4];
    size_t nrec;
    char err[256];
    /* in-use objects / bytes, unbiased, for up to 4 leaf functions */
    const char *funcs[4];
    double inuse_bytes[4], inuse_objs[4];
    /* goro's comment section after the stats block: exact goroutine memory
     * ("# N: B @ pcs" plus frame lines), not unbiased */
    double exact_bytes[4], exact_objs[4];
    size_t nexact;
    bool stats_block;
} htext;

static void unbias(double count, double bytes, double rate, double *oc, double *ob)
{
    if (count <= 0 || bytes <= 0 || rate <= 1) {
        *oc = count;
        *ob = bytes;
        return;
    }
    double scale = 1.0 / (1.0 - exp(-(bytes / count) / rate));
    *oc = count * scale;
    *ob = bytes * scale;
}

static bool htext_parse(const char *text, htext *h)
{
    char *dup = strdup(text);
    char *p = dup;
    bool ok = false;
    char *eol = strchr(p, '\n');
    if (!eol)
        goto out;
    *eol = 0;
    int n = 0;
    if (sscanf(p, "heap profile: %lld: %lld [%lld: %lld] @ heap/%lld%n", &h->hdr[0], &h->hdr[1],
               &h->hdr[2], &h->hdr[3], &h->rate2, &n) != 5 ||
        p[n]) {
        snprintf(h->err, sizeof h->err, "bad header: %.100s", p);
        goto out;
    }
    p = eol + 1;
    while (*p) {
        eol = strchr(p, '\n');
        if (!eol) {
            snprintf(h->err, sizeof h->err, "unterminated line");
            goto out;
        }
        *eol = 0;
        if (!*p) { /* blank lines around the stats block */
            p = eol + 1;
            continue;
        }
        long long v[4];
        bool exact = false;
        if (!strncmp(p, "# ", 2)) {
            if (sscanf(p, "# %lld: %lld @%n", &v[0], &v[1], &n) == 2) {
                exact = true; /* an exact record: its frame lines follow */
                h->nexact++;
            } else { /* the stats block and section titles */
                h->stats_block = true;
                p = eol + 1;
                continue;
            }
        } else if (sscanf(p, "%lld: %lld [%lld: %lld] @%n", &v[0], &v[1], &v[2], &v[3], &n) !=
                   4) {
            snprintf(h->err, sizeof h->err, "expected a record, got: %.100s", p);
            goto out;
        }
        if (!exact) {
            for (int i = 0; i < 4; i++)
                h->sum[i] += v[i];
            h->nrec++;
        }
        p = eol + 1;
        char leaf[128] = "";
        while (*p && *p != '\n') {
            eol = strchr(p, '\n');
            if (!eol)
                goto out;
            *eol = 0;
            tframe f;
            if (!text_frame(p, &f)) {
                snprintf(h->err, sizeof h->err, "bad frame line: %.100s", p);
                goto out;
            }
            if (!leaf[0])
                snprintf(leaf, sizeof leaf, "%s", f.symbolized ? f.func : "?");
            p = eol + 1;
        }
        for (int i = 0; i < 4; i++)
            if (exact && h->funcs[i] && !strcmp(h->funcs[i], leaf)) {
                h->exact_objs[i] += (double)v[0];
                h->exact_bytes[i] += (double)v[1];
            } else if (h->funcs[i] && !strcmp(h->funcs[i], leaf)) {
                double oc, ob;
                unbias((double)v[0], (double)v[1], (double)h->rate2 / 2, &oc, &ob);
                h->inuse_objs[i] += oc;
                h->inuse_bytes[i] += ob;
            }
    }
    ok = true;
    for (int i = 0; i < 4; i++)
        if (h->sum[i] != h->hdr[i]) {
            snprintf(h->err, sizeof h->err, "records add up to %lld, header says %lld (col %d)",
                     h->sum[i], h->hdr[i], i);
            ok = false;
        }
out:
    free(dup);
    return ok;
}

/* ------------------------------------------------------------------------- */
/* goroutine debug=2: a streaming parser for the docs/formats.md grammar           */
/* ------------------------------------------------------------------------- */

#define D2_MAXF 24

typedef struct d2rec {
    uint64_t id;
    char state[48];
    bool leaked;   /* " (leaked)" */
    long minutes;  /* -1: none */
    bool locked;   /* ", locked to thread" */
    char name[48]; /* goro: `, name "x"` */
    size_t nframes;
    size_t nfuncs;
    char funcs[D2_MAXF][64];
    size_t file_lines, file_lines_no_off;
    size_t odd_paths; /* file paths with "//" or "/./" */
    char odd_path[128];
    bool unavailable; /* "goroutine running on other thread; ..." */
    bool created;
    char created_by[64];
    uint64_t parent;
    size_t chain; /* goro: "\t<- f at file:line" lines */
} d2rec;

typedef struct d2parser {
    /* 0: between records; 1: in a record, expecting a function, "created
     * by", the unavailable line or the blank line; 2: expecting the file
     * line of a function; 3: expecting the file line of "created by";
     * 4: after it (creation chain lines or the blank line) */
    int st;
    d2rec r;
    size_t nrec, lineno;
    bool bad;
    char err[512];
    void (*on_rec)(const d2rec *r, void *arg);
    void *arg;
} d2parser;

static const char *const d2_states[] = {
    "running", "runnable", "syscall", "chan send", "chan receive", "select",
    "select (no cases)", "chan send (nil chan)", "chan receive (nil chan)", "sync.Mutex.Lock",
    "sync.RWMutex.RLock", "sync.RWMutex.Lock", "sync.WaitGroup.Wait", "sync.Cond.Wait",
    "sleep", "IO wait", "semacquire",
    "sync.Once.Do", /* goro's own wait reason (goro.h); not in docs/formats.md's list (§3) */
    NULL};

static void d2_fail(d2parser *p, const char *what, const char *line)
{
    if (!p->bad)
        snprintf(p->err, sizeof p->err, "line %zu: %s: \"%.200s\"", p->lineno, what, line);
    p->bad = true;
}

static bool d2_header(d2parser *p, const char *ln)
{
    d2rec *r = &p->r;
    memset(r, 0, sizeof *r);
    r->minutes = -1;
    if (strncmp(ln, "goroutine ", 10))
        return false;
    char *end;
    const char *q = ln + 10;
    if (*q < '1' || *q > '9')
        return false;
    r->id = strtoull(q, &end, 10);
    if (strncmp(end, " [", 2))
        return false;
    q = end + 2;
    size_t L = strlen(q);
    if (L < 3 || strcmp(q + L - 2, "]:"))
        return false;
    char inner[256];
    snprintf(inner, sizeof inner, "%.*s", (int)(L - 2), q);
    /* status[, N minutes][, locked to thread][, name "x"] */
    char *tok = inner;
    char *comma = strstr(tok, ", ");
    if (comma)
        *comma = 0;
    char *lk = strstr(tok, " (leaked)");
    if (lk && !lk[9]) {
        r->leaked = true;
        *lk = 0;
    }
    bool known = false;
    for (const char *const *s = d2_states; *s; s++)
        known |= !strcmp(*s, tok);
    if (!known)
        return false;
    copy_str(r->state, sizeof r->state, tok);
    int order = 0;
    while (comma) {
        tok = comma + 2;
        if (!strncmp(tok, "name \"", 6)) { /* the name may hold ", " */
            char *close = strrchr(tok + 6, '"');
            if (!close || close[1] || order > 2)
                return false;
            snprintf(r->name, sizeof r->name, "%.*s", (int)(close - tok - 6), tok + 6);
            return true;
        }
        comma = strstr(tok, ", ");
        if (comma)
            *comma = 0;
        long m;
        int n = 0;
        if (order < 1 && sscanf(tok, "%ld minutes%n", &m, &n) == 1 && !tok[n] && m >= 1) {
            r->minutes = m;
            order = 1;
        } else if (order < 2 && !strcmp(tok, "locked to thread")) {
            r->locked = true;
            order = 2;
        } else {
            return false;
        }
    }
    return true;
}

/* "\t<path>:<line>[ +0x<hex>]" */
static bool d2_file_line(const char *ln, bool *has_off)
{
    if (ln[0] != '\t' || ln[1] == '\t' || ln[1] == ' ' || !ln[1])
        return false;
    const char *sp = strstr(ln, " +0x");
    const char *end = sp ? sp : ln + strlen(ln);
    const char *colon = NULL;
    for (const char *q = ln + 1; q < end; q++)
        if (*q == ':')
            colon = q;
    if (!colon || colon == ln + 1 || colon + 1 == end)
        return false;
    for (const char *q = colon + 1; q < end; q++)
        if (*q < '0' || *q > '9')
            return false;
    *has_off = sp != NULL;
    if (sp) {
        const char *h = sp + 4;
        if (!*h)
            return false;
        for (; *h; h++)
            if (!((*h >= '0' && *h <= '9') || (*h >= 'a' && *h <= 'f')))
                return false;
    }
    return true;
}

static void d2_end_record(d2parser *p, const char *ln)
{
    if (p->r.nframes == 0 && !p->r.unavailable) {
        d2_fail(p, "record without frames", ln);
        return;
    }
    p->nrec++;
    if (p->on_rec)
        p->on_rec(&p->r, p->arg);
    p->st = 0;
}

static void d2_line(d2parser *p, const char *ln)
{
    p->lineno++;
    if (p->bad)
        return;
    d2rec *r = &p->r;
    bool off;
    switch (p->st) {
    case 0:
        if (!d2_header(p, ln))
            d2_fail(p, "expected a goroutine header `goroutine N [state...]:`", ln);
        else
            p->st = 1;
        return;
    case 1:
        if (!*ln) {
            d2_end_record(p, ln);
            return;
        }
        if (!strcmp(ln, "\tgoroutine running on other thread; stack unavailable")) {
            if (r->nframes || r->unavailable || strcmp(r->state, "running"))
                d2_fail(p, "stack-unavailable line out of place", ln);
            r->unavailable = true;
            return;
        }
        if (!strncmp(ln, "created by ", 11)) {
            const char *in = strstr(ln, " in goroutine ");
            char *end;
            if (!in || in == ln + 11) {
                d2_fail(p, "bad created-by line", ln);
                return;
            }
            r->parent = strtoull(in + 14, &end, 10);
            if (*end || r->parent == 0) {
                d2_fail(p, "bad created-by goroutine", ln);
                return;
            }
            snprintf(r->created_by, sizeof r->created_by, "%.*s", (int)(in - ln - 11), ln + 11);
            r->created = true;
            p->st = 3;
            return;
        }
        if (ln[0] == '\t' || ln[0] == ' ' || ln[strlen(ln) - 1] != ')' || !strchr(ln, '(') ||
            r->unavailable || ln[0] == '(') {
            d2_fail(p, "expected a function line `func(...)`", ln);
            return;
        }
        if (r->nfuncs < D2_MAXF)
            snprintf(r->funcs[r->nfuncs++], sizeof r->funcs[0], "%.*s",
                     (int)(strrchr(ln, '(') - ln), ln);
        r->nframes++;
        p->st = 2;
        return;
    case 2:
    case 3:
        if (!d2_file_line(ln, &off)) {
            d2_fail(p, "expected a file line `\\tfile:line [+0xoff]`", ln);
            return;
        }
        r->file_lines++;
        r->file_lines_no_off += !off;
        if (strstr(ln, "//") || strstr(ln, "/./")) {
            if (!r->odd_paths++)
                copy_str(r->odd_path, sizeof r->odd_path, ln + 1);
        }
        p->st = p->st == 2 ? 1 : 4;
        return;
    case 4:
        if (!*ln) {
            d2_end_record(p, ln);
            return;
        }
        if (!strncmp(ln, "\t<- ", 4) && strstr(ln, " at ")) { /* goro's creation chain */
            char buf[512];
            snprintf(buf, sizeof buf, "\t%s", strstr(ln, " at ") + 4);
            if (!d2_file_line(buf, &off)) {
                d2_fail(p, "bad creation-chain line", ln);
                return;
            }
            r->chain++;
            return;
        }
        d2_fail(p, "expected the blank line ending the record", ln);
        return;
    }
}

/* Feed a whole file line by line (streaming). */
static bool d2_parse_file(const char *path, d2parser *p, size_t *bytes, bool *ends_blank)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    size_t total = 0;
    char last2[2] = {0, 0};
    while ((n = getline(&line, &cap, f)) > 0) {
        total += (size_t)n;
        if (n >= 2) {
            last2[0] = line[n - 2];
            last2[1] = line[n - 1];
        } else {
            last2[0] = last2[1];
            last2[1] = line[0];
        }
        if (line[n - 1] == '\n')
            line[--n] = 0;
        else
            d2_fail(p, "last line not terminated", line);
        d2_line(p, line);
    }
    free(line);
    fclose(f);
    if (bytes)
        *bytes = total;
    if (ends_blank)
        *ends_blank = last2[0] == '\n' && last2[1] == '\n';
    if (p->st != 0)
        d2_fail(p, "file ends inside a record", "(EOF)");
    return true;
}

/* ------------------------------------------------------------------------- */
/* Known functions (their lines are checked in the profiles)                  */
/* ------------------------------------------------------------------------- */

/* --- goroutines parked in park_worker, spawned by spawn_workers --- */
static atomic_int park_line, spawn_workers_line;
static goro_chan *park_ch;
static atomic_long parked;

static void park_worker(void *arg)
{
    (void)arg;
    atomic_fetch_add(&parked, 1);
    SET_LINE(park_line); goro_chan_recv(park_ch, NULL, NULL); /* keep on one line */
    KEEP_FRAME(); /* not a tail call: this frame stays on the stack */
}

NOINL static int spawn_workers(int n)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        SET_LINE(spawn_workers_line); bad += goro_go(park_worker, NULL) != 0;
    }
    return bad;
}

/* --- allocation sites --- */
typedef struct heapsites {
    void **a, **b, **c, **every;
    size_t na, nb, nc, nevery;
} heapsites;
static heapsites *hs;
static atomic_int site_a_line, site_b_line, site_c_line, site_every_line;
#define SITE_A_SIZE 4096
#define SITE_B_SIZE 65536
#define SITE_C_SIZE 256

NOINL static void site_a(void)
{
    for (size_t i = 0; i < hs->na; i++) {
        SET_LINE(site_a_line); hs->a[i] = malloc(SITE_A_SIZE);
    }
}

NOINL static void site_b(void)
{
    for (size_t i = 0; i < hs->nb; i++) {
        SET_LINE(site_b_line); hs->b[i] = malloc(SITE_B_SIZE);
    }
}

NOINL static void site_c(void)
{
    for (size_t i = 0; i < hs->nc; i++) {
        SET_LINE(site_c_line); hs->c[i] = malloc(SITE_C_SIZE);
    }
}

NOINL static void site_every(void)
{
    for (size_t i = 0; i < hs->nevery; i++) {
        SET_LINE(site_every_line); hs->every[i] = malloc(SITE_B_SIZE);
    }
}

static void free_sites(void)
{
    if (!hs)
        return;
    for (size_t i = 0; i < hs->na; i++)
        free(hs->a ? hs->a[i] : NULL);
    for (size_t i = 0; i < hs->nb; i++)
        free(hs->b ? hs->b[i] : NULL);
    for (size_t i = 0; i < hs->nc; i++)
        free(hs->c ? hs->c[i] : NULL);
    for (size_t i = 0; i < hs->nevery; i++)
        free(hs->every ? hs->every[i] : NULL);
    free(hs->a);
    free(hs->b);
    free(hs->c);
    free(hs->every);
    free(hs);
    hs = NULL;
}

/* --- block and mutex events --- */
static atomic_int block_line, unlock_line;
static goro_chan *block_ch;
static goro_mutex prof_mu;
static atomic_long mu_held;
static goro_waitgroup ev_wg;

static void block_waiter(void *arg)
{
    (void)arg;
    int v;
    SET_LINE(block_line); goro_chan_recv(block_ch, &v, NULL);
    goro_waitgroup_done(&ev_wg);
}

static void mutex_holder(void *arg)
{
    (void)arg;
    goro_mutex_lock(&prof_mu);
    atomic_store(&mu_held, 1);
    goro_sleep(50 * MS);
    SET_LINE(unlock_line); goro_mutex_unlock(&prof_mu);
    goro_waitgroup_done(&ev_wg);
}

/* --- CPU burners: the same work, different constants (no folding) --- */
static int burn_a_first = __LINE__;
NOINL static double burn_a(long units)
{
    double x = 1.0;
    for (long i = 0; i < units * 1000; i++)
        x = x * 1.0000001 + 0.25;
    return x;
}
static int burn_a_last = __LINE__;

NOINL static double burn_b(long units)
{
    double x = 2.0;
    for (long i = 0; i < units * 1000; i++)
        x = x * 1.0000002 + 0.5;
    return x;
}
static int burn_b_last = __LINE__;

/* --- the leak pattern --- */
static atomic_int leak_spawn_line;
typedef struct leakstate {
    size_t n, spawned;
    goro_chan **ch;
    atomic_long started, finished;
} leakstate;
static leakstate *ls;

static void leaker(void *arg)
{
    goro_chan *c = arg;
    int v = 1;
    atomic_fetch_add(&ls->started, 1);
    goro_chan_send(c, &v); /* nobody receives: -EPIPE when closed at the end */
    goro_chan_release(c);
    atomic_fetch_add(&ls->finished, 1);
}

NOINL static size_t spawn_leakers(size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (goro_chan_make(&ls->ch[i], sizeof(int), 0) != 0)
            break;
        goro_chan_retain(ls->ch[i]);
        SET_LINE(leak_spawn_line); int rc = goro_go(leaker, ls->ch[i]);
        if (rc != 0) {
            goro_chan_release(ls->ch[i]);
            goro_chan_release(ls->ch[i]);
            ls->ch[i] = NULL;
            break;
        }
    }
    return i;
}

static void release_leakers(void)
{
    for (size_t i = 0; i < ls->spawned; i++) {
        goro_chan_close(ls->ch[i]);
        goro_chan_release(ls->ch[i]);
    }
}

static bool wait_atomic(atomic_long *a, long want, int64_t timeout)
{
    int64_t end = goro_now() + timeout;
    while (atomic_load(a) < want) {
        if (goro_now() > end)
            return false;
        goro_sleep(2 * MS);
    }
    return true;
}

/* ------------------------------------------------------------------------- */
/* 1. every profile loads in go tool pprof                                    */
/* ------------------------------------------------------------------------- */

#define N_WORKERS 50

static const char *const every_names[] = {"heap",  "allocs", "goroutine",     "threadcreate",
                                          "block", "mutex",  "goroutineleak", NULL};

typedef struct every_state {
    int spawn_bad;
    bool all_parked, events_done, exited;
    int rc[8];
    int rc_text[3]; /* goroutine, threadcreate, goroutineleak debug=1 */
    int rc_dump;
    long goroutines;
} every_state;

static void every_main(void *arg)
{
    every_state *s = arg;
    goro_set_block_profile_rate(1);
    goro_set_mutex_profile_fraction(1);
    goro_chan_make(&park_ch, 0, 0);
    goro_chan_make(&block_ch, sizeof(int), 0);
    atomic_store(&parked, 0);
    atomic_store(&mu_held, 0);
    s->spawn_bad = spawn_workers(N_WORKERS);

    hs = calloc(1, sizeof *hs);
    hs->nevery = 256; /* 16 MiB of 64 KiB blocks */
    hs->every = calloc(hs->nevery, sizeof *hs->every);
    site_every();

    /* a contended mutex (this goroutine waits ~50 ms for mutex_holder's
     * unlock), then a block event (block_waiter waits ~30 ms) */
    goro_waitgroup_add(&ev_wg, 2);
    goro_go(mutex_holder, NULL);
    wait_atomic(&mu_held, 1, gt_slow(5 * GORO_SECOND));
    goro_mutex_lock(&prof_mu);
    goro_mutex_unlock(&prof_mu);
    goro_go(block_waiter, NULL);
    goro_sleep(30 * MS);
    int v = 7;
    goro_chan_send(block_ch, &v);
    s->events_done = gt_wg_wait(&ev_wg, 10) == 0;
    s->all_parked = wait_atomic(&parked, N_WORKERS, gt_slow(10 * GORO_SECOND));
    goro_sleep(20 * MS); /* the last ones reach their receive */

    s->goroutines = (long)goro_num_goroutines();
    char file[64];
    for (int i = 0; every_names[i]; i++) {
        snprintf(file, sizeof file, "%s.pb.gz", every_names[i]);
        s->rc[i] = save_profile(every_names[i], 0, file);
    }
    s->rc_text[0] = save_profile("goroutine", 1, "goroutine.txt");
    s->rc_text[1] = save_profile("threadcreate", 1, "threadcreate.txt");
    s->rc_text[2] = save_profile("goroutineleak", 1, "goroutineleak.txt");
    s->rc_dump = save_profile("goroutine", 2, "goroutine.dump");

    goro_chan_close(park_ch);
    s->exited = gt_wait_num_goroutines(1, gt_slow(10 * GORO_SECOND));
    goro_chan_release(park_ch);
    goro_chan_release(block_ch);
    park_ch = block_ch = NULL;
    free_sites();
    goro_set_block_profile_rate(0);
    goro_set_mutex_profile_fraction(0);
}

static every_state every_st;
static bool every_ran;

/* Run pprof -raw, -top, -traces on file; parse -raw. */
static void pprof_three(const char *file, rawprof *raw, char **top, char **traces)
{
    char *r = PPROF(tpath(file), "-raw");
    if (!raw_parse(r, raw)) {
        print_error("%s\n", r);
        free(r);
        fail_msg("could not parse go tool pprof -raw output for %s", file);
    }
    free(r);
    char *t = PPROF(tpath(file), "-top");
    char *tr = PPROF(tpath(file), "-traces");
    if (top)
        *top = t;
    else
        free(t);
    if (traces)
        *traces = tr;
    else
        free(tr);
}

#define EXPECT_FRAME(raw, func, lo, hi, what)                                             \
    do {                                                                                   \
        if (!raw_has_frame(raw, func, "test_pprof.c", lo, hi)) {                           \
            raw_print_frames(raw, NULL);                                                   \
            fail_msg("%s: no location %s at test_pprof.c:%d%s", what, func, (int)(lo),     \
                     (hi) != (lo) ? " (or within the function)" : "");                     \
        }                                                                                  \
    } while (0)

static void test_every_profile_loads(void **st)
{
    (void)st;
    every_state *s = &every_st;
    goro_options o = gt_opts(2);
    assert_rc(gt_run("every profile", every_main, s, &o, 120), 0);
    every_ran = true;
    assert_int_equal(s->spawn_bad, 0);
    assert_true(s->all_parked);
    assert_true(s->events_done);
    assert_true(s->exited);
    for (int i = 0; every_names[i]; i++)
        assert_true_msg(s->rc[i] == 0, "goro_write_profile(\"%s\", 0) = %s", every_names[i],
                        gt_errname(s->rc[i]));
    if (!have_go) {
        skip();
        return;
    }
    rawprof raw;
    char *top, *traces;

    /* heap: the workers' stacks by creation site, the 64 KiB site */
    pprof_three("heap.pb.gz", &raw, &top, &traces);
    EXPECT_FRAME(&raw, "spawn_workers", spawn_workers_line, spawn_workers_line, "heap");
    assert_true(strstr(top, "Type: inuse_space") != NULL);
    assert_true(strstr(traces, "spawn_workers") != NULL);
    {
        const char *why = NULL;
        if (goro_heap_profiler_active(&why))
            EXPECT_FRAME(&raw, "site_every", site_every_line, site_every_line, "heap");
        else
            fprintf(stderr, "note: heap profiler inactive (%s): malloc sites not checked\n",
                    why);
    }
    assert_int_equal(raw_sum(&raw, "inuse_objects", "spawn_workers", true), N_WORKERS);
    raw_free(&raw);
    free(top);
    free(traces);

    /* allocs: same data, alloc_space by default */
    pprof_three("allocs.pb.gz", &raw, &top, &traces);
    EXPECT_FRAME(&raw, "spawn_workers", spawn_workers_line, spawn_workers_line, "allocs");
    assert_true_msg(strstr(top, "Type: alloc_space") != NULL, "allocs default type:\n%s", top);
    raw_free(&raw);
    free(top);
    free(traces);

    /* goroutine: N_WORKERS in park_worker, at the receive */
    pprof_three("goroutine.pb.gz", &raw, &top, &traces);
    EXPECT_FRAME(&raw, "park_worker", park_line, park_line, "goroutine");
    assert_int_equal(raw_sum(&raw, "goroutine", "park_worker", false), N_WORKERS);
    assert_int_equal(raw_sum(&raw, "goroutine", NULL, false), s->goroutines);
    assert_true(strstr(traces, "park_worker") != NULL);
    /* the caller's own stack: every_main, through goro_write_profile */
    assert_true(raw_has_frame(&raw, "every_main", "test_pprof.c", 0, 0));
    raw_free(&raw);
    free(top);
    free(traces);

    /* threadcreate: at least the runtime's threads */
    pprof_three("threadcreate.pb.gz", &raw, &top, &traces);
    assert_true(raw_sum(&raw, "threadcreate", NULL, false) >= 1);
    raw_free(&raw);
    free(top);
    free(traces);

    /* block: block_waiter at its receive, with a delay of ~30 ms */
    pprof_three("block.pb.gz", &raw, &top, &traces);
    EXPECT_FRAME(&raw, "block_waiter", block_line, block_line, "block");
    int64_t d = raw_sum(&raw, "delay", "block_waiter", false);
    assert_true_msg(d >= 10 * MS, "block_waiter delay %" PRId64 " ns", d);
    assert_true(raw_sum(&raw, "contentions", "block_waiter", false) >= 1);
    assert_true(strstr(traces, "block_waiter") != NULL);
    raw_free(&raw);
    free(top);
    free(traces);

    /* mutex: the unlocker's stack (mutex_holder at its unlock) */
    pprof_three("mutex.pb.gz", &raw, &top, &traces);
    EXPECT_FRAME(&raw, "mutex_holder", unlock_line, unlock_line, "mutex");
    d = raw_sum(&raw, "delay", "mutex_holder", false);
    assert_true_msg(d >= 10 * MS, "mutex_holder delay %" PRId64 " ns", d);
    assert_true(strstr(traces, "mutex_holder") != NULL);
    raw_free(&raw);
    free(top);
    free(traces);

    /* goroutineleak here: the workers' channel is a global (reachable), so
     * nothing leaked; the (possibly empty) profile must still load. The
     * profile with leaks is test_goroutineleak_profile's. */
    cmdres r = run_pprof((const char *const[]){"-raw", NULL}, tpath("goroutineleak.pb.gz"));
    assert_true_msg(r.status == 0 && !strcasestr(r.err, "malformed") &&
                        !strcasestr(r.err, "unrecognized"),
                    "goroutineleak: exit %d: %s", r.status, r.err);
    cmd_free(&r);
}

/* ------------------------------------------------------------------------- */
/* goroutineleak, in a fresh process                                          */
/* ------------------------------------------------------------------------- */

#define N_PRIVATE 6
static atomic_int private_line, private_spawn_line;
static atomic_long private_parked;

/* Blocks on a channel only its own (blocked) stack knows: leaked. */
static void private_waiter(void *arg)
{
    (void)arg;
    goro_chan *ch;
    if (goro_chan_make(&ch, 0, 0) != 0)
        return;
    atomic_fetch_add(&private_parked, 1);
    SET_LINE(private_line); goro_chan_recv(ch, NULL, NULL);
    KEEP_FRAME();
}

NOINL static void spawn_private_waiters(void)
{
    for (int i = 0; i < N_PRIVATE; i++) {
        SET_LINE(private_spawn_line); goro_go(private_waiter, NULL);
    }
}

/* Overwrite the dead part of this goroutine's stack. */
NOINL static void clear_stack(void)
{
    volatile char buf[16384];
    memset((char *)buf, 0, sizeof buf);
}

typedef struct leakprof_child {
    const char *dir;
    int rc0, rc1, rc2;
    bool parked;
} leakprof_child;

static void leakprof_main(void *arg)
{
    leakprof_child *c = arg;
    spawn_private_waiters();
    c->parked = wait_atomic(&private_parked, N_PRIVATE, gt_slow(10 * GORO_SECOND));
    goro_sleep(50 * MS);
    clear_stack();
    snprintf(tmpdir, sizeof tmpdir, "%s", c->dir);
    c->rc0 = save_profile("goroutineleak", 0, "leak.pb.gz");
    c->rc1 = save_profile("goroutineleak", 1, "leak.txt");
    c->rc2 = save_profile("goroutineleak", 2, "leak.dump");
}

static int child_leakprof(void)
{
    leakprof_child c = {.dir = getenv("GT_PPROF_DIR")};
    if (!c.dir)
        return 3;
    goro_options o = gt_opts(2);
    o.flags = GORO_NO_DEADLOCK_CHECK;
    if (goro_run(leakprof_main, &c, &o) != 0)
        return 4;
    printf("rc %d %d %d parked %d lines %d %d\n", c.rc0, c.rc1, c.rc2, c.parked,
           atomic_load(&private_line), atomic_load(&private_spawn_line));
    fflush(stdout);
    return c.rc0 || c.rc1 || c.rc2 || !c.parked ? 5 : 0;
}

static void on_leak_rec(const d2rec *r, void *arg)
{
    long *n = arg;
    if (r->leaked && !strcmp(r->state, "chan receive"))
        for (size_t i = 0; i < r->nfuncs; i++)
            if (!strcmp(r->funcs[i], "private_waiter"))
                n[0]++;
    if (!r->leaked)
        n[1]++;
}

static void test_goroutineleak_profile(void **st)
{
    (void)st;
    char dir[160];
    snprintf(dir, sizeof dir, "GT_PPROF_DIR=%s", tmpdir);
    const char *env[] = {dir, NULL};
    gt_child c;
    assert_rc(gt_child_start(&c, "leakprof", env), 0);
    gt_child_finish(&c, gt_slow(60 * GORO_SECOND));
    char sb[64];
    if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0) {
        gt_child_print(&c, "goroutineleak child");
        fail_msg("child: %s", gt_status_str(c.status, sb, sizeof sb));
    }
    int lines[2] = {0, 0};
    const char *p = strstr(c.out, "lines ");
    assert_non_null(p);
    assert_int_equal(sscanf(p, "lines %d %d", &lines[0], &lines[1]), 2);
    gt_child_free(&c);

    char *txt = slurp(tpath("leak.txt"));
    assert_non_null(txt);
    if (GT_SANITIZED) {
        /* the scan cannot be trusted under sanitizers: it says so */
        assert_true_msg(strstr(txt, "unavailable") || strstr(txt, "total 0"), "%s", txt);
        fprintf(stderr, "note: goroutineleak under %s: %.200s\n", gt_sanitizer_name(), txt);
    } else {
        ctext ct = {.want_func = "private_waiter", .want_line = lines[0]};
        if (!ctext_parse(txt, &ct))
            fail_msg("goroutineleak debug=1: %s\n%s", ct.err, txt);
        assert_string_equal(ct.kind, "goroutineleak");
        assert_true_msg(ct.want_count == N_PRIVATE,
                        "goroutineleak debug=1: %ld private_waiter goroutines at "
                        "test_pprof.c:%d, want %d\n%s",
                        ct.want_count, lines[0], N_PRIVATE, txt);
        /* Each group names where its goroutines were created (the fix
         * location): a created_by label, spawner first. */
        char want[96];
        snprintf(want, sizeof want, "test_pprof.c:%d)", lines[1]);
        const char *cb = strstr(txt, "\"created_by\":\"spawn_private_waiters (");
        assert_true_msg(cb && strstr(cb, want), "goroutineleak debug=1: no created_by label "
                        "naming spawn_private_waiters at test_pprof.c:%d\n%s", lines[1], txt);
        /* And a summary line per group: count, creator, reason, what it holds. */
        char sum[128];
        snprintf(sum, sizeof sum, "# leaked: %d goroutines created by spawn_private_waiters (",
                 N_PRIVATE);
        const char *sl = strstr(txt, sum);
        assert_true_msg(sl && strstr(sl, "[chan receive]: stacks ") &&
                            strstr(sl, "heap only they reach") && strstr(sl, "hint: "),
                        "goroutineleak debug=1: no summary line \"%s...\"\n%s", sum, txt);
        /* debug=2: "[chan receive (leaked)]" records */
        long n[2] = {0, 0};
        d2parser dp = {.on_rec = on_leak_rec, .arg = n};
        assert_true(d2_parse_file(tpath("leak.dump"), &dp, NULL, NULL));
        assert_true_msg(!dp.bad, "goroutineleak debug=2: %s", dp.err);
        assert_int_equal(n[0], N_PRIVATE);
        assert_int_equal(n[1], 0);
    }
    free(txt);
    if (!have_go) {
        skip();
        return;
    }
    rawprof raw;
    char *top, *traces;
    if (GT_SANITIZED) {
        cmdres r = run_pprof((const char *const[]){"-raw", NULL}, tpath("leak.pb.gz"));
        assert_true_msg(r.status == 0 || strstr(r.err, "no samples"), "exit %d: %s", r.status,
                        r.err);
        cmd_free(&r);
        char *cm = PPROF(tpath("leak.pb.gz"), "-comments");
        assert_true_msg(strstr(cm, "goroutine leak profile unavailable"), "comments: %s", cm);
        free(cm);
        return;
    }
    /* The proto carries the summary lines as its comments. */
    char *cm = PPROF(tpath("leak.pb.gz"), "-comments");
    assert_true_msg(strstr(cm, "leaked: ") && strstr(cm, "spawn_private_waiters"), "comments: %s",
                    cm);
    free(cm);
    pprof_three("leak.pb.gz", &raw, &top, &traces);
    if (!raw_has_frame(&raw, "private_waiter", "test_pprof.c", lines[0], lines[0])) {
        raw_print_frames(&raw, NULL);
        fail_msg("goroutineleak: no private_waiter at test_pprof.c:%d", lines[0]);
    }
    assert_int_equal(raw_sum(&raw, "goroutineleak", "private_waiter", false), N_PRIVATE);
    assert_int_equal(raw_sum(&raw, "goroutineleak", NULL, false), N_PRIVATE);
    assert_true(strstr(traces, "private_waiter") != NULL);
    /* The creation stack follows the blocked one: -top reaches the spawner. */
    if (!raw_has_frame(&raw, "spawn_private_waiters", "test_pprof.c", lines[1], lines[1])) {
        raw_print_frames(&raw, NULL);
        fail_msg("goroutineleak: no spawn_private_waiters at test_pprof.c:%d", lines[1]);
    }
    assert_true_msg(strstr(top, "spawn_private_waiters") != NULL, "-top:\n%s", top);
    raw_free(&raw);
    free(top);
    free(traces);
    /* the text loads too */
    char *t = PPROF(tpath("leak.txt"), "-top");
    double tot = top_total(t);
    assert_true_msg(tot == N_PRIVATE, "go tool pprof -top leak.txt: total %g\n%s", tot, t);
    free(t);
}

/* ------------------------------------------------------------------------- */
/* 2. heap accuracy                                                           */
/* ------------------------------------------------------------------------- */

/* 16 KiB: ~1,500 samples at site A, ~500 at site C (relative standard
 * deviation ~2.5% and ~4.4%), so the 20% bound is > 4 sigma. At the default
 * 512 KiB rate site A would get ~47 samples (sigma ~15%): a 20% check would
 * fail about one run in six from the sampling alone. */
#define ACC_RATE (16 * 1024)

typedef struct acc_state {
    long old_rate;
    int rc0, rc1;
} acc_state;

static void acc_main(void *arg)
{
    acc_state *s = arg;
    s->old_rate = goro_memprofile_rate();
    goro_set_memprofile_rate(ACC_RATE);
    /* Let this thread draw its next sample distance at the new rate. */
    for (int i = 0; i < 256; i++)
        free(malloc(SITE_B_SIZE));
    hs = calloc(1, sizeof *hs);
    hs->na = (24u << 20) / SITE_A_SIZE;
    hs->nb = (8u << 20) / SITE_B_SIZE;
    hs->nc = (8u << 20) / SITE_C_SIZE;
    hs->a = calloc(hs->na, sizeof(void *));
    hs->b = calloc(hs->nb, sizeof(void *));
    hs->c = calloc(hs->nc, sizeof(void *));
    site_a();
    site_b();
    site_c();
    s->rc0 = save_profile("heap", 0, "acc.pb.gz");
    s->rc1 = save_profile("heap", 1, "acc.txt");
    free_sites();
    goro_set_memprofile_rate(s->old_rate);
}

static void check_site(const char *what, const char *func, double got, double truth)
{
    double err = (got - truth) / truth * 100;
    fprintf(stderr, "heap accuracy: %-6s %-8s %10.0f bytes, true %10.0f: %+6.1f%%\n", what,
            func, got, truth, err);
    assert_true_msg(fabs(err) <= 20, "%s: %s in-use %.0f bytes, true %.0f (%+.1f%%, limit 20%%)",
                    what, func, got, truth, err);
}

static void test_heap_accuracy(void **st)
{
    (void)st;
    const char *why = NULL;
    if (!goro_heap_profiler_active(&why)) {
        fprintf(stderr, "note: heap accuracy SKIPPED: the heap profiler is inactive (%s); "
                        "test_heap_profiler_status checks that path\n", why);
        skip();
        return;
    }
    acc_state s = {0};
    goro_options o = gt_opts(0);
    assert_rc(gt_run("heap accuracy", acc_main, &s, &o, 60), 0);
    assert_rc(s.rc0, 0);
    assert_rc(s.rc1, 0);
    const char *funcs[3] = {"site_a", "site_b", "site_c"};
    const int lines[3] = {site_a_line, site_b_line, site_c_line};
    const double truth[3] = {24 << 20, 8 << 20, 8 << 20};

    /* debug=1, parsed here */
    char *txt = slurp(tpath("acc.txt"));
    assert_non_null(txt);
    htext h = {.funcs = {funcs[0], funcs[1], funcs[2]}};
    if (!htext_parse(txt, &h))
        fail_msg("heap debug=1: %s\n%.3000s", h.err, txt);
    assert_true_msg(h.rate2 == 2 * ACC_RATE, "header rate heap/%lld, want 2 x %d", h.rate2,
                    ACC_RATE);
    for (int i = 0; i < 3; i++)
        check_site("text", funcs[i], h.inuse_bytes[i], truth[i]);
    free(txt);

    if (!have_go) {
        skip();
        return;
    }
    rawprof raw;
    char *top, *traces;
    pprof_three("acc.pb.gz", &raw, &top, &traces);
    assert_int_equal(raw.period, ACC_RATE);
    for (int i = 0; i < 3; i++) {
        EXPECT_FRAME(&raw, funcs[i], lines[i], lines[i], "heap");
        check_site("-raw", funcs[i], (double)raw_sum(&raw, "inuse_space", funcs[i], true),
                   truth[i]);
    }
    raw_free(&raw);
    free(top);
    free(traces);
    top = PPROF(tpath("acc.pb.gz"), "-top", "-unit=B", "-sample_index=inuse_space");
    for (int i = 0; i < 3; i++) {
        toprow r = top_row(top, funcs[i], NULL, 0);
        assert_true_msg(r.found, "%s not in -top:\n%s", funcs[i], top);
        check_site("-top", funcs[i], r.flat, truth[i]);
    }
    free(top);
}

/* ------------------------------------------------------------------------- */
/* 3. the leak pattern                                                        */
/* ------------------------------------------------------------------------- */

#define N_LEAK 20000

typedef struct leak_run {
    int rc0, rc1, rcg;
    bool started, exited;
    long goroutines;
} leak_run;

static void leak_main(void *arg)
{
    leak_run *r = arg;
    ls->spawned = spawn_leakers(ls->n);
    r->started = wait_atomic(&ls->started, (long)ls->spawned, gt_slow(60 * GORO_SECOND));
    goro_sleep(50 * MS);
    r->goroutines = (long)goro_num_goroutines();
    r->rc0 = save_profile("heap", 0, "leak_heap.pb.gz");
    r->rc1 = save_profile("heap", 1, "leak_heap.txt");
    r->rcg = save_profile("goroutine", 1, "leak_goroutine.txt");
    release_leakers();
    r->exited = gt_wait_num_goroutines(1, gt_slow(60 * GORO_SECOND));
}

static bool leak_ran;
static double leak_pb_bytes; /* spawn_leakers' inuse_space in the proto */

static void test_leak_pattern(void **st)
{
    (void)st;
    ls = calloc(1, sizeof *ls);
    ls->n = N_LEAK;
    ls->ch = calloc(ls->n, sizeof *ls->ch);
    leak_run r = {0};
    goro_options o = gt_opts(0);
    assert_rc(gt_run("leak pattern", leak_main, &r, &o, 120), 0);
    size_t spawned = ls->spawned;
    bool started = r.started;
    free(ls->ch);
    free(ls);
    ls = NULL;
    assert_int_equal(spawned, N_LEAK);
    assert_true(started);
    assert_true(r.exited);
    assert_rc(r.rc0, 0);
    assert_rc(r.rc1, 0);
    assert_rc(r.rcg, 0);
    leak_ran = true;

    /* goroutine debug=1: the leakers are the biggest group */
    char *gt = slurp(tpath("leak_goroutine.txt"));
    assert_non_null(gt);
    ctext ct = {0};
    if (!ctext_parse(gt, &ct))
        fail_msg("goroutine debug=1: %s", ct.err);
    long first = strtol(strchr(gt, '\n') + 1, NULL, 10);
    assert_int_equal(first, N_LEAK);
    assert_int_equal(ct.total, r.goroutines);
    free(gt);

    if (!have_go) {
        skip();
        return;
    }
    char *top = PPROF(tpath("leak_heap.pb.gz"), "-top", "-unit=B", "-sample_index=inuse_space");
    char firstname[128];
    toprow row = top_row(top, "spawn_leakers", firstname, sizeof firstname);
    fprintf(stderr, "leak pattern: %d goroutines, spawn_leakers flat %.0f bytes (%.0f per "
                    "goroutine), first row %s\n",
            N_LEAK, row.flat, row.flat / N_LEAK, firstname);
    assert_true_msg(row.found, "spawn_leakers not in -top:\n%s", top);
    assert_true_msg(!strcmp(firstname, "spawn_leakers"), "top row is %s, not spawn_leakers:\n%s",
                    firstname, top);
    assert_true_msg(row.flat >= N_LEAK * 4096.0 * 0.8,
                    "spawn_leakers: %.0f bytes, want >= %.0f", row.flat,
                    N_LEAK * 4096.0 * 0.8);
    free(top);

    rawprof raw;
    char *t2, *traces;
    pprof_three("leak_heap.pb.gz", &raw, &t2, &traces);
    EXPECT_FRAME(&raw, "spawn_leakers", leak_spawn_line, leak_spawn_line, "heap");
    assert_int_equal(raw_sum(&raw, "inuse_objects", "spawn_leakers", true), N_LEAK);
    leak_pb_bytes = (double)raw_sum(&raw, "inuse_space", "spawn_leakers", true);
    /* labelled as goroutine stacks */
    bool labelled = false;
    for (size_t i = 0; i < raw.ns; i++)
        if (sample_has(&raw, &raw.s[i], "spawn_leakers", true, "", 0) && raw.s[i].labels &&
            strstr(raw.s[i].labels, "goro:[goroutine stack]"))
            labelled = true;
    assert_true(labelled);
    assert_true(strstr(traces, "goroutine stack") != NULL);
    raw_free(&raw);
    free(t2);
    free(traces);
}

/* The heap debug=1 text of the same moment must report the same goroutine
 * stack memory: its records carry raw sample counts that readers unbias
 * (docs/formats.md §4 and §6), so exact records must be written so that
 * unbiasing gives them back. */
static void test_heap_text_matches_proto(void **st)
{
    (void)st;
    if (!leak_ran) {
        skip();
        return;
    }
    char *txt = slurp(tpath("leak_heap.txt"));
    assert_non_null(txt);
    htext h = {.funcs = {"spawn_leakers"}};
    if (!htext_parse(txt, &h))
        fail_msg("heap debug=1: %s\n%.2000s", h.err, txt);
    free(txt);
    fprintf(stderr, "heap text: spawn_leakers in debug=1: %.0f objects, %.0f bytes sampled "
                    "(unbiased) + %.0f objects, %.0f bytes exact goroutine memory "
                    "(live: %d goroutines; the proto says %.0f bytes)\n",
            h.inuse_objs[0], h.inuse_bytes[0], h.exact_objs[0], h.exact_bytes[0], N_LEAK,
            leak_pb_bytes);
    /* The goroutine stacks are exact records: in the comment section, as
     * written, never unbiased again by a reader. */
    h.inuse_objs[0] += h.exact_objs[0];
    h.inuse_bytes[0] += h.exact_bytes[0];
    assert_true_msg(h.nexact > 0, "heap debug=1 has no exact goroutine-memory records");
    if (have_go) {
        char *top = PPROF(tpath("leak_heap.txt"), "-top", "-unit=B", "-sample_index=inuse_space");
        double tot = top_total(top);
        fprintf(stderr, "heap text: go tool pprof -top on debug=1: total %.0f bytes\n", tot);
        free(top);
        if (leak_pb_bytes > 0)
            assert_true_msg(tot <= leak_pb_bytes * 1.2 + (8 << 20),
                            "go tool pprof reads %.0f bytes from heap debug=1 where the proto "
                            "has %.0f for spawn_leakers (+ a few MB of malloc): the exact "
                            "goroutine-stack records get unbiased again by the reader",
                            tot, leak_pb_bytes);
    }
    assert_true_msg(fabs(h.inuse_objs[0] - N_LEAK) <= N_LEAK * 0.2,
                    "spawn_leakers in heap debug=1, unbiased as docs/formats.md says: %.0f objects, "
                    "%.0f bytes; %d goroutines are alive",
                    h.inuse_objs[0], h.inuse_bytes[0], N_LEAK);
    if (leak_pb_bytes > 0)
        assert_true_msg(fabs(h.inuse_bytes[0] - leak_pb_bytes) <= leak_pb_bytes * 0.2,
                        "spawn_leakers: %.0f bytes from debug=1, %.0f in the proto",
                        h.inuse_bytes[0], leak_pb_bytes);
}

/* ------------------------------------------------------------------------- */
/* 4. CPU                                                                     */
/* ------------------------------------------------------------------------- */

typedef struct cpu_state {
    atomic_int phase; /* 1 calibrated, 2 stop */
    long units_per_ms;
    long cycles;
    int rc;
    bool done;
    goro_waitgroup wg;
} cpu_state;

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * GORO_SECOND + ts.tv_nsec;
}

static void cpu_burner(void *arg)
{
    cpu_state *s = arg;
    /* calibrate: units per ms of this thread's CPU time */
    long units = 1;
    for (;;) {
        int64_t t0 = thread_cpu_ns();
        atomic_fetch_add(&sink, (long)burn_a(units));
        int64_t dt = thread_cpu_ns() - t0;
        if (dt >= 20 * MS || units > (1L << 30)) {
            s->units_per_ms = units * MS / (dt > 0 ? dt : 1);
            break;
        }
        units *= 2;
    }
    if (s->units_per_ms < 1)
        s->units_per_ms = 1;
    atomic_store(&s->phase, 1);
    /* Cycles of random length (0.35 to 1.65 ms of burn_a + burn_b, 7:3):
     * cycles of a fixed length close to the 10 ms sampling period would
     * alias with it (samples landing at the same phase every time). */
    gt_rng rng;
    gt_rng_seed(&rng, (uint64_t)goro_now());
    while (atomic_load(&s->phase) < 2) {
        long u = (long)((double)s->units_per_ms * (0.05 + gt_rng_below(&rng, 1000) / 770.0) / 10);
        if (u < 1)
            u = 1;
        atomic_fetch_add(&sink, (long)burn_a(7 * u));
        atomic_fetch_add(&sink, (long)burn_b(3 * u));
        s->cycles++;
        goro_yield();
    }
    goro_waitgroup_done(&s->wg);
}

static void cpu_main(void *arg)
{
    cpu_state *s = arg;
    goro_waitgroup_add(&s->wg, 1);
    goro_go(cpu_burner, s);
    while (atomic_load(&s->phase) < 1)
        goro_sleep(MS);
    s->rc = save_cpu_profile(3, "cpu.pb.gz");
    atomic_store(&s->phase, 2);
    s->done = gt_wg_wait(&s->wg, 30) == 0;
}

static void test_cpu_profile(void **st)
{
    (void)st;
    cpu_state s = {0};
    goro_options o = gt_opts(2);
    assert_rc(gt_run("cpu profile", cpu_main, &s, &o, 120), 0);
    assert_rc(s.rc, 0);
    assert_true(s.done);
    fprintf(stderr, "cpu: %ld units per ms, %ld cycles of ~1 ms\n", s.units_per_ms, s.cycles);
    if (!have_go) {
        skip();
        return;
    }
    rawprof raw;
    char *top0, *traces;
    pprof_three("cpu.pb.gz", &raw, &top0, &traces);
    free(top0);
    EXPECT_FRAME(&raw, "burn_a", burn_a_first, burn_a_last, "cpu");
    EXPECT_FRAME(&raw, "burn_b", burn_a_last, burn_b_last, "cpu");
    assert_true(strstr(traces, "burn_a") && strstr(traces, "burn_b"));
    free(traces);
    int64_t ra = raw_sum(&raw, "samples", "burn_a", false);
    int64_t rb = raw_sum(&raw, "samples", "burn_b", false);
    int64_t rall = raw_sum(&raw, "samples", NULL, false);
    raw_free(&raw);

    char *top = PPROF(tpath("cpu.pb.gz"), "-top", "-sample_index=samples");
    toprow a = top_row(top, "burn_a", NULL, 0), b = top_row(top, "burn_b", NULL, 0);
    const char *ts = strstr(top, "Total samples = ");
    double total = ts ? strtod(ts + 16, NULL) : 0;
    double split = a.cum + b.cum > 0 ? a.cum / (a.cum + b.cum) * 100 : 0;
    double rsplit = ra + rb > 0 ? (double)ra / (double)(ra + rb) * 100 : 0;
    fprintf(stderr, "cpu: -top: %.0f samples, burn_a %.0f, burn_b %.0f: split %.1f%% / %.1f%% "
                    "(want 70/30 +- 10); -raw: %" PRId64 " samples, %" PRId64 " / %" PRId64
                    " = %.1f%%\n",
            total, a.cum, b.cum, split, 100 - split, rall, ra, rb, rsplit);
    bool ok = a.found && b.found && total > 100 && fabs(split - 70) <= 10 &&
              fabs(rsplit - 70) <= 10;
    if (!ok && GT_TSAN) {
        fprintf(stderr, "note: CPU split check SKIPPED under ThreadSanitizer (it delays "
                        "signals to its own safe points): %s\n", top);
        free(top);
        skip();
        return;
    }
    assert_true_msg(a.found && b.found, "burn_a/burn_b missing in -top:\n%s", top);
    assert_true_msg(total > 100, "only %.0f samples in 3 s:\n%s", total, top);
    assert_true_msg(fabs(split - 70) <= 10, "burn_a share %.1f%% (-top), want 70 +- 10:\n%s",
                    split, top);
    assert_true_msg(fabs(rsplit - 70) <= 10, "burn_a share %.1f%% (-raw), want 70 +- 10", rsplit);
    free(top);
}

/* ------------------------------------------------------------------------- */
/* 5. goroutine debug=1 text                                                  */
/* ------------------------------------------------------------------------- */

static void test_goroutine_text(void **st)
{
    (void)st;
    if (!every_ran) {
        skip();
        return;
    }
    assert_rc(every_st.rc_text[0], 0);
    char *txt = slurp(tpath("goroutine.txt"));
    assert_non_null(txt);
    ctext ct = {.want_func = "park_worker", .want_line = park_line};
    if (!ctext_parse(txt, &ct))
        fail_msg("goroutine debug=1 (docs/formats.md §2): %s\n%.3000s", ct.err, txt);
    assert_string_equal(ct.kind, "goroutine");
    assert_int_equal(ct.total, every_st.goroutines);
    assert_true_msg(ct.sorted, "groups not sorted by count:\n%s", txt);
    assert_true_msg(ct.want_count == N_WORKERS, "park_worker at test_pprof.c:%d: %ld, want %d\n%s",
                    (int)park_line, ct.want_count, N_WORKERS, txt);
    assert_true_msg(ct.want_pc_ok, "frame pcs are not the listed pcs - 1:\n%s", txt);
    /* the frames are aligned with tabs (Go's tabwriter): no spaces */
    for (const char *p = strstr(txt, "\n#"); p; p = strstr(p + 1, "\n#")) {
        const char *eol = strchr(p + 1, '\n');
        for (const char *q = p + 1; eol && q < eol; q++)
            assert_true_msg(*q != ' ' || !strncmp(p + 1, "# labels", 8),
                            "space in a frame line: %.*s", (int)(eol - p - 1), p + 1);
    }
    free(txt);
    if (!have_go) {
        skip();
        return;
    }
    /* Go 1.19's pprof reads this legacy text (without symbols: it has no
     * mappings, so functions show as <unknown>); the count must be right. */
    char *top = PPROF(tpath("goroutine.txt"), "-top");
    double tot = top_total(top);
    assert_true_msg(tot == (double)every_st.goroutines, "go tool pprof total %g, want %ld\n%s",
                    tot, every_st.goroutines, top);
    free(top);
    char *raw = PPROF(tpath("goroutine.txt"), "-raw");
    free(raw);
}

/* threadcreate and goroutineleak debug=1 load too (docs/formats.md §2 is
 * theirs as well). */
static void test_count_texts_load(void **st)
{
    (void)st;
    if (!every_ran) {
        skip();
        return;
    }
    assert_rc(every_st.rc_text[1], 0);
    assert_rc(every_st.rc_text[2], 0);
    const char *files[] = {"threadcreate.txt", "goroutineleak.txt"};
    for (int i = 0; i < 2; i++) {
        char *txt = slurp(tpath(files[i]));
        assert_non_null(txt);
        ctext ct = {0};
        bool ok = ctext_parse(txt, &ct);
        if (!ok)
            print_error("%s:\n%s\n", files[i], txt);
        free(txt);
        assert_true_msg(ok, "%s (docs/formats.md §2): %s", files[i], ct.err);
        if (have_go && ct.total > 0) {
            char *top = PPROF(tpath(files[i]), "-top");
            double tot = top_total(top);
            assert_true_msg(tot == (double)ct.total, "%s: pprof total %g, header %ld", files[i],
                            tot, ct.total);
            free(top);
        }
    }
}

/* ------------------------------------------------------------------------- */
/* 6. debug=2 grammar with many states                                        */
/* ------------------------------------------------------------------------- */

enum {
    K_SPIN, K_RUNNABLE1, K_RUNNABLE2, K_SEND, K_RECV, K_SELECT, K_SELECT0, K_SLEEP, K_MUTEX,
    K_RLOCK, K_WLOCK, K_WG, K_COND, K_ONCE_A, K_ONCE_B, K_IO, K_SYSCALL, K_NAMED, K_COUNT
};

static const struct {
    const char *state, *func;
} kinds[K_COUNT] = {
    [K_SPIN] = {"running", NULL},
    [K_RUNNABLE1] = {"runnable", "st_runnable"},
    [K_RUNNABLE2] = {"runnable", "st_runnable"},
    [K_SEND] = {"chan send", "st_send"},
    [K_RECV] = {"chan receive", "st_recv"},
    [K_SELECT] = {"select", "st_select"},
    [K_SELECT0] = {"select (no cases)", "st_select_none"},
    [K_SLEEP] = {"sleep", "st_sleep"},
    [K_MUTEX] = {"sync.Mutex.Lock", "st_mutex"},
    [K_RLOCK] = {"sync.RWMutex.RLock", "st_rlock"},
    [K_WLOCK] = {"sync.RWMutex.Lock", "st_wlock"},
    [K_WG] = {"sync.WaitGroup.Wait", "st_wg"},
    [K_COND] = {"sync.Cond.Wait", "st_cond"},
    [K_ONCE_A] = {"chan receive", "st_once_fn"},
    [K_ONCE_B] = {"sync.Once.Do", "st_once_b"},
    [K_IO] = {"IO wait", "st_io"},
    [K_SYSCALL] = {"syscall", "st_syscall"},
    [K_NAMED] = {"chan receive", "st_named"},
};

typedef struct zoo {
    uint64_t id[K_COUNT];
    uint64_t self_id;
    atomic_int spin_on, spin_stop;
    goro_chan *send_ch, *recv_ch, *sel_ch1, *sel_ch2, *once_ch, *named_ch;
    goro_mutex mu, cmu;
    goro_rwmutex rw1, rw2;
    goro_waitgroup wg, done;
    goro_cond cond;
    bool cond_go;
    goro_once once;
    int io_pipe[2], sys_pipe[2];
    goro_conn *io_conn;
    int rc_dump, rc_dump2;
    bool ready;
    char not_ready[256];
    long bad;
} zoo;

static zoo *Z;

static void st_runnable(void *a) { (void)a; }
static void st_spin(void *a)
{
    (void)a;
    atomic_store(&Z->spin_on, 1);
    while (!atomic_load(&Z->spin_stop))
        KEEP_FRAME();
    goro_waitgroup_done(&Z->done);
}
static void st_send(void *a)
{
    (void)a;
    int v = 1;
    goro_chan_send(Z->send_ch, &v);
    goro_waitgroup_done(&Z->done);
}
static void st_recv(void *a)
{
    (void)a;
    goro_chan_recv(Z->recv_ch, NULL, NULL);
    goro_waitgroup_done(&Z->done);
}
static void st_select(void *a)
{
    (void)a;
    goro_select_case c[2] = {{.ch = Z->sel_ch1, .op = GORO_SELECT_RECV},
                             {.ch = Z->sel_ch2, .op = GORO_SELECT_RECV}};
    goro_select(c, 2, 0, GORO_NO_DEADLINE);
    goro_waitgroup_done(&Z->done);
}
static void st_select_none(void *a)
{
    (void)a;
    goro_select(NULL, 0, 0, GORO_NO_DEADLINE); /* forever: discarded at the end */
    KEEP_FRAME();
}
static void st_sleep(void *a)
{
    (void)a;
    goro_sleep(3600 * GORO_SECOND); /* discarded at the end */
    KEEP_FRAME();
}
static void st_mutex(void *a)
{
    (void)a;
    goro_mutex_lock(&Z->mu);
    goro_mutex_unlock(&Z->mu);
    goro_waitgroup_done(&Z->done);
}
static void st_rlock(void *a)
{
    (void)a;
    goro_rwmutex_rlock(&Z->rw1);
    goro_rwmutex_runlock(&Z->rw1);
    goro_waitgroup_done(&Z->done);
}
static void st_wlock(void *a)
{
    (void)a;
    goro_rwmutex_lock(&Z->rw2);
    goro_rwmutex_unlock(&Z->rw2);
    goro_waitgroup_done(&Z->done);
}
static void st_wg(void *a)
{
    (void)a;
    goro_waitgroup_wait(&Z->wg);
    goro_waitgroup_done(&Z->done);
}
static void st_cond(void *a)
{
    (void)a;
    goro_mutex_lock(&Z->cmu);
    while (!Z->cond_go)
        goro_cond_wait(&Z->cond, &Z->cmu);
    goro_mutex_unlock(&Z->cmu);
    goro_waitgroup_done(&Z->done);
}
static void st_once_fn(void *a)
{
    (void)a;
    goro_chan_recv(Z->once_ch, NULL, NULL);
    KEEP_FRAME();
}
static void st_once_a(void *a)
{
    (void)a;
    goro_once_do(&Z->once, st_once_fn, NULL);
    goro_waitgroup_done(&Z->done);
}
static void st_once_b(void *a)
{
    (void)a;
    goro_once_do(&Z->once, st_once_fn, NULL);
    goro_waitgroup_done(&Z->done);
}
static void st_io(void *a)
{
    (void)a;
    char c;
    if (goro_conn_read(Z->io_conn, &c, 1, GORO_NO_DEADLINE, NULL) != 1)
        Z->bad++;
    goro_waitgroup_done(&Z->done);
}
static void sys_read(void *a)
{
    (void)a;
    char c;
    if (read(Z->sys_pipe[0], &c, 1) != 1)
        Z->bad++;
}
static void st_syscall(void *a)
{
    (void)a;
    goro_blocking(sys_read, NULL);
    goro_waitgroup_done(&Z->done);
}
static void st_named(void *a)
{
    (void)a;
    goro_chan_recv(Z->named_ch, NULL, NULL);
    goro_waitgroup_done(&Z->done);
}

NOINL static int zoo_spawn(int k, goro_fn fn, const char *name)
{
    goro_spawn_opts so = {.name = name, .file = __FILE__, .line = __LINE__, .func = __func__};
    return goro_spawn(fn, NULL, &so, &Z->id[k]);
}

/* Are the parked ones in their states? (goro_leak_find lists states.) */
static bool zoo_parked(char *why, size_t len)
{
    goro_leak_opts lo = {.retries = -1};
    goro_leak_report *rep = NULL;
    if (goro_leak_find(&lo, &rep) != 0)
        return false;
    bool all = true;
    for (int k = 0; k < K_COUNT && all; k++) {
        if (k == K_SPIN || k == K_RUNNABLE1 || k == K_RUNNABLE2)
            continue;
        bool found = false;
        for (size_t i = 0; rep && i < rep->count; i++)
            if (rep->goroutines[i].id == Z->id[k]) {
                found = !strcmp(rep->goroutines[i].state, kinds[k].state);
                if (!found)
                    snprintf(why, len, "goroutine %" PRIu64 " (%s) is %s", Z->id[k],
                             kinds[k].func, rep->goroutines[i].state);
            }
        if (!found && !why[0])
            snprintf(why, len, "goroutine %" PRIu64 " (%s) missing", Z->id[k], kinds[k].func);
        all = found;
    }
    goro_leak_report_free(rep);
    return all;
}

static void zoo_main(void *arg)
{
    (void)arg;
    Z->self_id = goro_id();
    goro_chan_make(&Z->send_ch, sizeof(int), 0);
    goro_chan_make(&Z->recv_ch, sizeof(int), 0);
    goro_chan_make(&Z->sel_ch1, 0, 0);
    goro_chan_make(&Z->sel_ch2, 0, 0);
    goro_chan_make(&Z->once_ch, 0, 0);
    goro_chan_make(&Z->named_ch, 0, 0);
    goro_mutex_lock(&Z->mu);
    goro_rwmutex_lock(&Z->rw1);
    goro_rwmutex_rlock(&Z->rw2);
    goro_waitgroup_add(&Z->wg, 1);
    if (pipe2(Z->io_pipe, O_CLOEXEC) || pipe2(Z->sys_pipe, O_CLOEXEC) ||
        goro_conn_from_fd(Z->io_pipe[0], &Z->io_conn)) {
        Z->bad++;
        return;
    }
    /* everything that parks; they run while this goroutine sleeps */
    int nparked = 0;
    Z->bad += zoo_spawn(K_SEND, st_send, NULL) != 0;
    Z->bad += zoo_spawn(K_RECV, st_recv, NULL) != 0;
    Z->bad += zoo_spawn(K_SELECT, st_select, NULL) != 0;
    Z->bad += zoo_spawn(K_SELECT0, st_select_none, NULL) != 0;
    Z->bad += zoo_spawn(K_SLEEP, st_sleep, NULL) != 0;
    Z->bad += zoo_spawn(K_MUTEX, st_mutex, NULL) != 0;
    Z->bad += zoo_spawn(K_RLOCK, st_rlock, NULL) != 0;
    Z->bad += zoo_spawn(K_WLOCK, st_wlock, NULL) != 0;
    Z->bad += zoo_spawn(K_WG, st_wg, NULL) != 0;
    Z->bad += zoo_spawn(K_COND, st_cond, NULL) != 0;
    Z->bad += zoo_spawn(K_ONCE_A, st_once_a, NULL) != 0;
    goro_sleep(20 * MS); /* st_once_a first: it runs the once function */
    Z->bad += zoo_spawn(K_ONCE_B, st_once_b, NULL) != 0;
    Z->bad += zoo_spawn(K_IO, st_io, NULL) != 0;
    Z->bad += zoo_spawn(K_SYSCALL, st_syscall, NULL) != 0;
    Z->bad += zoo_spawn(K_NAMED, st_named, "pprof-named") != 0;
    nparked = 13; /* those that finish after release (all but select0, sleep) */
    int64_t end = goro_now() + gt_slow(10 * GORO_SECOND);
    while (!(Z->ready = zoo_parked(Z->not_ready, sizeof Z->not_ready)) && goro_now() < end) {
        Z->not_ready[0] = 0;
        goro_sleep(5 * MS);
    }
    /* a goroutine running on the other thread, then two that cannot run
     * (both processors busy) */
    goro_waitgroup_add(&Z->done, nparked + 1);
    Z->bad += zoo_spawn(K_SPIN, st_spin, NULL) != 0;
    end = goro_now() + gt_slow(10 * GORO_SECOND);
    while (!atomic_load(&Z->spin_on) && goro_now() < end)
        goro_sleep(MS);
    Z->bad += zoo_spawn(K_RUNNABLE1, st_runnable, NULL) != 0;
    Z->bad += zoo_spawn(K_RUNNABLE2, st_runnable, NULL) != 0;
    Z->rc_dump = save_profile("goroutine", 2, "zoo.dump");
    atomic_store(&Z->spin_stop, 1);

    /* release */
    int v = 0;
    goro_chan_recv(Z->send_ch, &v, NULL);
    goro_chan_send(Z->recv_ch, &v);
    goro_chan_close(Z->sel_ch1);
    goro_mutex_unlock(&Z->mu);
    goro_rwmutex_unlock(&Z->rw1);
    goro_rwmutex_runlock(&Z->rw2);
    goro_waitgroup_done(&Z->wg);
    goro_mutex_lock(&Z->cmu);
    Z->cond_go = true;
    goro_cond_broadcast(&Z->cond);
    goro_mutex_unlock(&Z->cmu);
    goro_chan_close(Z->once_ch);
    if (write(Z->io_pipe[1], "x", 1) != 1 || write(Z->sys_pipe[1], "y", 1) != 1)
        Z->bad++;
    goro_chan_close(Z->named_ch);
    if (gt_wg_wait(&Z->done, 30) != 0)
        Z->bad++;
    /* the dump again, through goro_dump (streamed to the fd directly) */
    int fd = open(tpath("zoo2.dump"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    Z->rc_dump2 = fd >= 0 ? goro_dump(fd) : -errno;
    if (fd >= 0)
        close(fd);
    goro_conn_close(Z->io_conn);
    close(Z->io_pipe[1]);
    close(Z->sys_pipe[0]);
    close(Z->sys_pipe[1]);
    goro_chan_release(Z->send_ch);
    goro_chan_release(Z->recv_ch);
    goro_chan_release(Z->sel_ch1);
    goro_chan_release(Z->sel_ch2);
    goro_chan_release(Z->once_ch);
    goro_chan_release(Z->named_ch);
}

typedef struct zoo_seen {
    d2rec rec[K_COUNT];
    bool seen[K_COUNT];
    size_t nrec;
    bool first_is_self;
    bool self_ok;
    size_t with_offsets, named_ok;
    size_t odd_paths;
    char odd_path[128];
    char states[1024];
} zoo_seen;

static void zoo_on_rec(const d2rec *r, void *arg)
{
    zoo_seen *z = arg;
    if (r->odd_paths && !z->odd_paths++)
        copy_str(z->odd_path, sizeof z->odd_path, r->odd_path);
    if (z->nrec++ == 0)
        z->first_is_self = r->id == Z->self_id && !strcmp(r->state, "running") && !r->created;
    if (r->id == Z->self_id)
        for (size_t i = 0; i < r->nfuncs; i++)
            z->self_ok |= !strcmp(r->funcs[i], "zoo_main");
    for (int k = 0; k < K_COUNT; k++)
        if (Z->id[k] == r->id) {
            z->rec[k] = *r;
            z->seen[k] = true;
        }
    if (!strstr(z->states, r->state) && strlen(z->states) + strlen(r->state) + 4 < sizeof z->states) {
        strcat(z->states, "[");
        strcat(z->states, r->state);
        strcat(z->states, "] ");
    }
}

static bool zoo_ran;

static void test_debug2_grammar(void **st)
{
    (void)st;
    Z = calloc(1, sizeof *Z);
    goro_options o = gt_opts(2);
    o.longrun_report_ns = -1; /* st_spin spins on purpose */
    assert_rc(gt_run("debug=2 states", zoo_main, NULL, &o, 120), 0);
    zoo_ran = true;
    assert_true_msg(Z->ready, "not every goroutine reached its state: %s", Z->not_ready);
    assert_int_equal(Z->bad, 0);
    assert_rc(Z->rc_dump, 0);
    assert_rc(Z->rc_dump2, 0);
    const char *files[] = {"zoo.dump", "zoo2.dump"};
    for (int f = 0; f < 2; f++) {
        zoo_seen zs;
        memset(&zs, 0, sizeof zs);
        d2parser p = {.on_rec = zoo_on_rec, .arg = &zs};
        bool ends_blank = false;
        assert_true(d2_parse_file(tpath(files[f]), &p, NULL, &ends_blank));
        if (p.bad) {
            char *txt = slurp(tpath(files[f]));
            print_error("%s\n", txt);
            free(txt);
        }
        assert_true_msg(!p.bad, "%s: %s", files[f], p.err);
        assert_true_msg(ends_blank, "%s does not end with a blank line", files[f]);
        assert_true_msg(zs.first_is_self, "%s: first record is not the caller [running]",
                        files[f]);
        assert_true_msg(zs.self_ok, "%s: the caller's record lacks zoo_main", files[f]);
        fprintf(stderr, "debug=2 (%s): %zu records, states %s\n", files[f], zs.nrec, zs.states);
        if (f == 1) { /* after the release: only the forever ones are left */
            assert_true(zs.seen[K_SELECT0] && zs.seen[K_SLEEP]);
            assert_string_equal(zs.rec[K_SELECT0].state, "select (no cases)");
            assert_string_equal(zs.rec[K_SLEEP].state, "sleep");
            continue;
        }
        for (int k = 0; k < K_COUNT; k++) {
            assert_true_msg(zs.seen[k], "goroutine %" PRIu64 " (%s) not in the dump", Z->id[k],
                            kinds[k].func ? kinds[k].func : "st_spin");
            const d2rec *r = &zs.rec[k];
            assert_true_msg(!strcmp(r->state, kinds[k].state), "%s: state [%s], want [%s]",
                            kinds[k].func ? kinds[k].func : "st_spin", r->state, kinds[k].state);
            assert_true_msg(r->created && r->parent == Z->self_id &&
                                !strcmp(r->created_by, "zoo_spawn"),
                            "%s: created by %s in goroutine %" PRIu64,
                            kinds[k].func ? kinds[k].func : "st_spin", r->created_by, r->parent);
            if (kinds[k].func) {
                bool has = false;
                for (size_t i = 0; i < r->nfuncs; i++)
                    has |= !strcmp(r->funcs[i], kinds[k].func);
                assert_true_msg(has, "[%s] record of %s lacks its function", r->state,
                                kinds[k].func);
            }
        }
        assert_true_msg(zs.rec[K_SPIN].unavailable,
                        "the goroutine running on the other thread has a stack?");
        assert_string_equal(zs.rec[K_NAMED].name, "pprof-named");
    }
}

/* Source paths are the ones the compiler was given (CMake passes absolute
 * ones): the same in the proto and in the dump, without "//" or "/./". */
static void test_source_paths(void **st)
{
    (void)st;
    if (!zoo_ran || !every_ran) {
        skip();
        return;
    }
    zoo_seen zs;
    memset(&zs, 0, sizeof zs);
    d2parser p = {.on_rec = zoo_on_rec, .arg = &zs};
    assert_true(d2_parse_file(tpath("zoo.dump"), &p, NULL, NULL));
    assert_true_msg(zs.odd_paths == 0, "zoo.dump: %zu records with a path like \"%s\"",
                    zs.odd_paths, zs.odd_path);
    if (!have_go || __FILE__[0] != '/') {
        skip();
        return;
    }
    char *r = PPROF(tpath("goroutine.pb.gz"), "-raw");
    rawprof raw;
    assert_true(raw_parse(r, &raw));
    free(r);
    const char *f = raw_file_of(&raw, "park_worker");
    bool same = f && !strcmp(f, __FILE__);
    char got[300];
    copy_str(got, sizeof got, f ? f : "(none)");
    raw_free(&raw);
    assert_true_msg(same, "park_worker's file in the profile is \"%s\", not \"%s\"", got,
                    __FILE__);
}

/* ------------------------------------------------------------------------- */
/* 7. debug=2 with a million parked goroutines                                */
/* ------------------------------------------------------------------------- */

typedef struct million {
    size_t n, spawned;
    goro_chan *ch;
    atomic_long started;
    bool all_started, exited;
    long before, after;
    int rc;
    int64_t t_spawn, t_write;
    long rss_before, hwm_before, hwm_after;
} million;

static million *M;

static long status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    size_t fl = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, fl) && line[fl] == ':')
            v = strtol(line + fl + 1, NULL, 10);
    fclose(f);
    return v;
}

/* Reset VmHWM to the current RSS (Linux >= 4.0: "5" to clear_refs). */
static void reset_hwm(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (write(fd, "5", 1) != 1) { /* not fatal: the peak is only printed */
        }
        close(fd);
    }
}

static void million_sender(void *arg)
{
    (void)arg;
    int v = 1;
    atomic_fetch_add(&M->started, 1);
    goro_chan_send(M->ch, &v); /* -EPIPE when closed at the end */
    KEEP_FRAME();
}

NOINL static size_t spawn_million(size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (goro_go(million_sender, NULL) != 0)
            break;
    return i;
}

static void million_main(void *arg)
{
    (void)arg;
    goro_chan_make(&M->ch, sizeof(int), 0);
    int64_t t0 = goro_now();
    M->spawned = spawn_million(M->n);
    M->all_started = wait_atomic(&M->started, (long)M->spawned, gt_slow(120 * GORO_SECOND));
    M->t_spawn = goro_now() - t0;
    goro_sleep(100 * MS); /* the last ones reach their send */
    M->before = (long)goro_num_goroutines();
    M->rss_before = gt_rss_kib();
    reset_hwm();
    M->hwm_before = status_kib("VmHWM");
    t0 = goro_now();
    M->rc = save_profile("goroutine", 2, "million.dump");
    M->t_write = goro_now() - t0;
    M->hwm_after = status_kib("VmHWM");
    M->after = (long)goro_num_goroutines();
    goro_chan_close(M->ch);
    M->exited = gt_wait_num_goroutines(1, gt_slow(120 * GORO_SECOND));
    goro_chan_release(M->ch);
}

typedef struct mcount {
    uint8_t *bits;
    size_t nbits;
    size_t dup, send, other, max_id;
    d2rec last;
} mcount;

static void million_on_rec(const d2rec *r, void *arg)
{
    mcount *c = arg;
    if (r->id >= c->nbits) {
        size_t nb = (r->id + 1) * 2;
        c->bits = realloc(c->bits, nb / 8 + 1);
        memset(c->bits + c->nbits / 8, 0, nb / 8 + 1 - c->nbits / 8);
        c->nbits = nb;
    }
    if (c->bits[r->id / 8] & (1u << (r->id % 8)))
        c->dup++;
    c->bits[r->id / 8] |= (uint8_t)(1u << (r->id % 8));
    if (r->id > c->max_id)
        c->max_id = r->id;
    if (!strcmp(r->state, "chan send"))
        c->send++;
    else
        c->other++;
    c->last = *r;
}

static void test_debug2_million(void **st)
{
    (void)st;
    M = calloc(1, sizeof *M);
    /* TSan: 20,000 (each goroutine is a TSan fiber with mappings of its
     * own; 100,000 of them exhaust vm.max_map_count) */
    M->n = gt_scale("debug=2 parked goroutines", 1000000, 100000, 20000);
    goro_options o = gt_opts(0);
    o.longrun_report_ns = -1; /* writing the dump is one long stretch */
    /* the leak watchdog would report (and keep scanning) the parked ones */
    goro_watchdog_opts wo = {.disabled = true};
    assert_rc(goro_watchdog_configure(&wo), 0);
    int rc = gt_run("debug=2 million", million_main, NULL, &o, 240);
    goro_watchdog_configure(NULL);
    assert_rc(rc, 0);
    assert_int_equal(M->spawned, M->n);
    assert_true(M->all_started);
    assert_true(M->exited);
    assert_rc(M->rc, 0);
    assert_int_equal(M->before, M->after);

    int64_t t0 = gt_mono_ns();
    mcount c = {0};
    d2parser p = {.on_rec = million_on_rec, .arg = &c};
    size_t bytes = 0;
    bool ends_blank = false;
    const char *path = tpath("million.dump");
    assert_true(d2_parse_file(path, &p, &bytes, &ends_blank));
    int64_t t_read = gt_mono_ns() - t0;
    unlink(path);
    fprintf(stderr,
            "debug=2: %zu goroutines spawned and parked in %.0f ms\n"
            "debug=2: %zu goroutines alive, %zu records, %.1f MB written in %.0f ms (%.0f "
            "MB/s); read back in %.0f ms; RSS before %ld KiB, peak during the write %ld KiB "
            "(+%ld KiB, %.1f x the output)\n",
            M->spawned, M->t_spawn / 1e6, (size_t)M->before, p.nrec, bytes / 1e6, M->t_write / 1e6,
            bytes / 1e6 / (M->t_write / 1e9 + 1e-9), t_read / 1e6, M->rss_before,
            M->hwm_after, M->hwm_after - M->hwm_before,
            (double)(M->hwm_after - M->hwm_before) * 1024 / (double)(bytes ? bytes : 1));
    assert_true_msg(!p.bad, "million.dump: %s", p.err);
    assert_true_msg(ends_blank, "the dump does not end with a complete record");
    assert_true_msg(M->hwm_after - M->hwm_before < 64 * 1024,
                    "peak RSS grew by %ld KiB while writing the dump: it is not streamed",
                    M->hwm_after - M->hwm_before);
    assert_true_msg(p.nrec == (size_t)M->before,
                    "%zu records for %ld live goroutines (truncated?)", p.nrec, M->before);
    assert_int_equal(c.dup, 0);
    assert_int_equal(c.send, M->n);
    assert_int_equal(c.other, (size_t)M->before - M->n);
    /* the last record is a whole one */
    assert_true(c.last.nframes > 0 && c.last.file_lines > 0 && c.last.created);
    assert_true_msg(M->t_write <= gt_slow(30 * GORO_SECOND), "the write took %.1f s",
                    M->t_write / 1e9);
    free(c.bits);
    free(M);
    M = NULL;
}

/* ------------------------------------------------------------------------- */
/* 8. heap profiler status                                                    */
/* ------------------------------------------------------------------------- */

typedef struct status_run {
    int rc0, rc1;
} status_run;

static void status_main(void *arg)
{
    status_run *r = arg;
    atomic_store(&parked, 0);
    goro_chan_make(&park_ch, 0, 0);
    spawn_workers(N_WORKERS);
    wait_atomic(&parked, N_WORKERS, gt_slow(10 * GORO_SECOND));
    goro_sleep(20 * MS);
    r->rc0 = save_profile("heap", 0, "status.pb.gz");
    r->rc1 = save_profile("heap", 1, "status.txt");
    goro_chan_close(park_ch);
    gt_wait_num_goroutines(1, gt_slow(10 * GORO_SECOND));
    goro_chan_release(park_ch);
    park_ch = NULL;
}

static void test_heap_profiler_status(void **st)
{
    (void)st;
    const char *why = NULL;
    bool active = goro_heap_profiler_active(&why);
    fprintf(stderr, "heap profiler: %s%s%s\n", active ? "active" : "inactive",
            active ? "" : ": ", active ? "" : (why ? why : "(no reason)"));
    if (!GT_SANITIZED) {
        assert_true_msg(active, "heap profiler inactive in a plain build: %s", why ? why : "?");
    } else {
        assert_false(active);
        assert_non_null(why);
        assert_true_msg(strstr(why, gt_sanitizer_name()) != NULL, "reason \"%s\" does not name %s",
                        why, gt_sanitizer_name());
    }
    status_run r = {0};
    goro_options o = gt_opts(0);
    assert_rc(gt_run("heap status", status_main, &r, &o, 60), 0);
    assert_rc(r.rc0, 0);
    assert_rc(r.rc1, 0);
    char *txt = slurp(tpath("status.txt"));
    assert_non_null(txt);
    htext h = {.funcs = {"spawn_workers"}};
    if (!htext_parse(txt, &h))
        fail_msg("heap debug=1: %s\n%s", h.err, txt);
    if (!active)
        fprintf(stderr, "note: heap debug=1 when inactive:\n%.600s\n", txt);
    free(txt);
    if (!have_go) {
        skip();
        return;
    }
    rawprof raw;
    char *top, *traces;
    pprof_three("status.pb.gz", &raw, &top, &traces);
    /* goroutine stacks are exact, profiler or not */
    assert_int_equal(raw_sum(&raw, "inuse_objects", "spawn_workers", true), N_WORKERS);
    raw_free(&raw);
    free(top);
    free(traces);
    char *cm = PPROF(tpath("status.pb.gz"), "-comments");
    if (active) {
        assert_true_msg(!strstr(cm, "unavailable"), "comments of an active profile: %s", cm);
    } else {
        char want[256];
        snprintf(want, sizeof want, "heap profile unavailable: %s", why);
        assert_true_msg(strstr(cm, want) != NULL, "comments \"%s\" lack \"%s\"", cm, want);
    }
    free(cm);
}

/* ------------------------------------------------------------------------- */

static int rm_tree(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

static int group_setup(void **st)
{
    (void)st;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/goro-pprof-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    have_go = on_path("go");
    have_timeout = on_path("timeout");
    if (!have_go)
        fprintf(stderr, "note: `go` is not on PATH (Debian golang-go; make check installs "
                        "it): every go tool pprof check is SKIPPED\n");
    build_go_env();
    return 0;
}

static int group_teardown(void **st)
{
    (void)st;
    if (!getenv("GT_PPROF_KEEP"))
        rm_tree(tmpdir);
    else
        fprintf(stderr, "note: profiles kept in %s\n", tmpdir);
    for (char **e = go_envp; e && *e; e++)
        free(*e);
    free(go_envp);
    return 0;
}

int main(void)
{
    const char *sc = gt_child_scenario();
    if (sc) {
        if (!strcmp(sc, "leakprof"))
            return child_leakprof();
        return 99;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_profile_loads),
        cmocka_unit_test(test_goroutineleak_profile),
        cmocka_unit_test(test_heap_accuracy),
        cmocka_unit_test(test_leak_pattern),
        cmocka_unit_test(test_heap_text_matches_proto),
        cmocka_unit_test(test_cpu_profile),
        cmocka_unit_test(test_goroutine_text),
        cmocka_unit_test(test_count_texts_load),
        cmocka_unit_test(test_debug2_grammar),
        cmocka_unit_test(test_source_paths),
        cmocka_unit_test(test_debug2_million),
        cmocka_unit_test(test_heap_profiler_status),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
