/*
 * test_profile.c - the profile model and its encoders (src/prof/profile.h),
 * checked against the real consumers:
 *  - profile.proto: decoded here (gunzip + a small protobuf reader) for the
 *    structural rules (string table, ids, mapping[0] = this executable with
 *    its GNU build ID read from the ELF file, Lines inlined-first), then
 *    loaded by `go tool pprof -raw`, `-top` and `-traces`: function names,
 *    file:line, values, labels, sample types and default type must show and
 *    pprof must report no error.
 *  - debug=1 text: parsed line by line here (header, "N @ 0x..", labels,
 *    "#\t0x..\tfunc+0x..\tfile:line" with the expected pc, offset, file and
 *    line), compared byte for byte with Go's own text/tabwriter and
 *    strconv.Quote (a helper built with `go build`), and loaded by
 *    `go tool pprof -raw` (its legacy parser).
 *  - heap text: shape and totals, loaded by `go tool pprof -raw`.
 *  - empty profiles, 100k samples over ~10k locations (timed), special
 *    characters, and NULL / invalid arguments.
 * Program counters are real: return addresses taken inside noinline test
 * functions at known lines, an inlined call, function entries, an internal
 * goro function, and an address outside every object. Without `go` on PATH
 * the Go checks are skipped with a note.
 */
#define _GNU_SOURCE
#include "util.h"

#include <ctype.h>
#include <elf.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "../src/prof/profile.h"

/* ------------------------------------------------------------------------- */
/* Real program counters at known lines                                       */
/* ------------------------------------------------------------------------- */

#if defined(__clang__)
#define NOINL __attribute__((noinline))
#else
#define NOINL __attribute__((noinline, noclone))
#endif

volatile int gtp_sink;
int gtp_alpha_line, gtp_beta_line, gtp_gamma_line, gtp_inl_line, gtp_outer_line;

/* The return address into the caller: a pc inside the caller, right after
 * its call instruction, at the line of the call. */
NOINL uintptr_t gtp_ret(void) { return (uintptr_t)__builtin_return_address(0); }

NOINL uintptr_t gtp_alpha(void)
{
    gtp_alpha_line = __LINE__; uintptr_t r = gtp_ret(); /* keep on one line */
    gtp_sink++;
    return r;
}

NOINL uintptr_t gtp_beta(void)
{
    gtp_beta_line = __LINE__; uintptr_t r = gtp_ret();
    gtp_sink += 2;
    return r;
}

NOINL uintptr_t gtp_gamma(void)
{
    gtp_gamma_line = __LINE__; uintptr_t r = gtp_ret();
    gtp_sink += 3;
    return r;
}

static inline __attribute__((always_inline)) uintptr_t gtp_inl(void)
{
    gtp_inl_line = __LINE__; uintptr_t r = gtp_ret();
    gtp_sink += 4;
    return r;
}

NOINL uintptr_t gtp_outer(void)
{
    gtp_outer_line = __LINE__; uintptr_t r = gtp_inl();
    gtp_sink += 5;
    return r;
}

enum { GTP_DELTA_LINE = __LINE__ + 1 };
NOINL void gtp_delta(void) { gtp_sink += 6; }

/* A goro-internal function (hidden as a leading frame in text output), and
 * the goroutine entry (hidden everywhere, like runtime.goexit). */
void goro__prof_free(goro__prof *p);
void goro__g_start(void *g);

typedef struct pcs_t {
    uintptr_t alpha, beta, gamma, outer, delta, internal;
} pcs_t;

static pcs_t P;

static void init_pcs(void)
{
    P.alpha = gtp_alpha();
    P.beta = gtp_beta();
    P.gamma = gtp_gamma();
    P.outer = gtp_outer();
    P.delta = (uintptr_t)&gtp_delta;
    /* A "return address" two bytes into goro__prof_free. */
    P.internal = (uintptr_t)&goro__prof_free + 2;
}

/* What the text encoder must print for a pc (non-leaf unless exact). */
typedef struct exp_frame {
    const char *func;
    uintptr_t entry;
    int line;
} exp_frame;

/* Expected frames (inline chain innermost first) of a known pc. */
static int expect_frames(uintptr_t pc, exp_frame *out)
{
    if (pc == P.alpha) {
        out[0] = (exp_frame){"gtp_alpha", (uintptr_t)&gtp_alpha, gtp_alpha_line};
        return 1;
    }
    if (pc == P.beta) {
        out[0] = (exp_frame){"gtp_beta", (uintptr_t)&gtp_beta, gtp_beta_line};
        return 1;
    }
    if (pc == P.gamma) {
        out[0] = (exp_frame){"gtp_gamma", (uintptr_t)&gtp_gamma, gtp_gamma_line};
        return 1;
    }
    if (pc == P.outer) {
        out[0] = (exp_frame){"gtp_inl", (uintptr_t)&gtp_outer, gtp_inl_line};
        out[1] = (exp_frame){"gtp_outer", (uintptr_t)&gtp_outer, gtp_outer_line};
        return 2;
    }
    if (pc == P.delta) {
        out[0] = (exp_frame){"gtp_delta", (uintptr_t)&gtp_delta, GTP_DELTA_LINE};
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Files, commands, go                                                        */
/* ------------------------------------------------------------------------- */

static char tmpdir[64];
static bool have_go;
static char gohelper[128]; /* built Go helper, "" if unavailable */

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static char *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *s = gt_read_all_fd(fd);
    close(fd);
    if (s && len) {
        struct stat st;
        *len = stat(path, &st) == 0 ? (size_t)st.st_size : strlen(s);
    }
    return s;
}

typedef struct cmd_result {
    int status; /* exit code, or -1 */
    char *out, *err;
} cmd_result;

static void cmd_free(cmd_result *r)
{
    free(r->out);
    free(r->err);
}

/* Run a shell command line, capturing stdout and stderr. */
static cmd_result run_cmd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static cmd_result run_cmd(const char *fmt, ...)
{
    static int seq;
    char cmd[2048], full[2400], outp[128], errp[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    seq++;
    snprintf(outp, sizeof outp, "%s/cmd%d.out", tmpdir, seq);
    snprintf(errp, sizeof errp, "%s/cmd%d.err", tmpdir, seq);
    snprintf(full, sizeof full, "(%s) >%s 2>%s </dev/null", cmd, outp, errp);
    fflush(stdout);
    fflush(stderr);
    int st = system(full);
    cmd_result r = {-1, NULL, NULL};
    if (st != -1 && WIFEXITED(st))
        r.status = WEXITSTATUS(st);
    r.out = read_file(outp, NULL);
    r.err = read_file(errp, NULL);
    if (!r.out)
        r.out = strdup("");
    if (!r.err)
        r.err = strdup("");
    return r;
}

/* `go tool pprof <flag> file` on a profile without samples: pprof parses it
 * and then refuses with exactly "profile has no samples" (as it does for
 * Go's own empty profiles); anything else is a failure. */
static void pprof_no_samples(const char *flag, const char *file)
{
    cmd_result r = run_cmd("go tool pprof %s %s", flag, file);
    if (r.status != 1 || strcmp(r.err, "profile has no samples\n") != 0) {
        print_error("go tool pprof %s %s: exit %d\nstderr:\n%s\n", flag, file, r.status, r.err);
        cmd_free(&r);
        fail_msg("go tool pprof %s: unexpected result for an empty profile", flag);
    }
    cmd_free(&r);
}

/* `go tool pprof <flag> file`; fails the test on a non-zero exit or an
 * error message. Returns stdout (malloc'd). */
static char *pprof(const char *flag, const char *file)
{
    cmd_result r = run_cmd("go tool pprof %s %s", flag, file);
    if (r.status != 0 || strcasestr(r.err, "error") || strcasestr(r.err, "fail") ||
        strcasestr(r.err, "unrecognized") || strcasestr(r.err, "malformed")) {
        print_error("go tool pprof %s %s: exit %d\nstderr:\n%s\nstdout:\n%s\n", flag, file,
                    r.status, r.err, r.out);
        cmd_free(&r);
        fail_msg("go tool pprof %s reported an error", flag);
    }
    if (r.err[0])
        fprintf(stderr, "note: go tool pprof %s printed on stderr: %s\n", flag, r.err);
    free(r.err);
    return r.out;
}

static const char gohelper_src[] =
    "package main\n"
    "\n"
    "import (\n"
    "\t\"bufio\"\n"
    "\t\"bytes\"\n"
    "\t\"encoding/hex\"\n"
    "\t\"fmt\"\n"
    "\t\"os\"\n"
    "\t\"strconv\"\n"
    "\t\"text/tabwriter\"\n"
    ")\n"
    "\n"
    "// tab FILE: FILE through runtime/pprof's tabwriter settings.\n"
    "// tabs FILE: lines of hex, each through its own tabwriter; hex out.\n"
    "// quote FILE: lines of hex; strconv.Quote of each.\n"
    "func main() {\n"
    "\tb, err := os.ReadFile(os.Args[2])\n"
    "\tif err != nil {\n"
    "\t\tpanic(err)\n"
    "\t}\n"
    "\tout := bufio.NewWriter(os.Stdout)\n"
    "\tdefer out.Flush()\n"
    "\tif os.Args[1] == \"tab\" {\n"
    "\t\ttw := tabwriter.NewWriter(out, 1, 8, 1, '\\t', 0)\n"
    "\t\ttw.Write(b)\n"
    "\t\ttw.Flush()\n"
    "\t\treturn\n"
    "\t}\n"
    "\ts := bufio.NewScanner(bytes.NewReader(b))\n"
    "\ts.Buffer(make([]byte, 1<<20), 1<<26)\n"
    "\tfor s.Scan() {\n"
    "\t\tv, err := hex.DecodeString(s.Text())\n"
    "\t\tif err != nil {\n"
    "\t\t\tpanic(err)\n"
    "\t\t}\n"
    "\t\tif os.Args[1] == \"quote\" {\n"
    "\t\t\tfmt.Fprintln(out, strconv.Quote(string(v)))\n"
    "\t\t\tcontinue\n"
    "\t\t}\n"
    "\t\tvar o bytes.Buffer\n"
    "\t\ttw := tabwriter.NewWriter(&o, 1, 8, 1, '\\t', 0)\n"
    "\t\ttw.Write(v)\n"
    "\t\ttw.Flush()\n"
    "\t\tfmt.Fprintln(out, hex.EncodeToString(o.Bytes()))\n"
    "\t}\n"
    "}\n";

static int group_setup(void **st)
{
    (void)st;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/goro-prof-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    init_pcs();
    have_go = system("command -v go >/dev/null 2>&1") == 0;
    if (!have_go) {
        fprintf(stderr, "note: `go` is not installed (Debian golang-go): the go tool pprof "
                        "and Go tabwriter/strconv comparisons are SKIPPED\n");
        return 0;
    }
    if (!getenv("HOME") && !getenv("GOCACHE")) {
        char gc[128];
        snprintf(gc, sizeof gc, "%s/gocache", tmpdir);
        setenv("GOCACHE", gc, 1);
    }
    char src[128];
    snprintf(src, sizeof src, "%s/helper.go", tmpdir);
    FILE *f = fopen(src, "w");
    if (!f)
        return -1;
    fputs(gohelper_src, f);
    fclose(f);
    snprintf(gohelper, sizeof gohelper, "%s/gohelper", tmpdir);
    cmd_result r = run_cmd("GO111MODULE=off go build -o %s %s", gohelper, src);
    if (r.status != 0) {
        fprintf(stderr, "go build of the helper failed:\n%s\n", r.err);
        cmd_free(&r);
        return -1;
    }
    cmd_free(&r);
    return 0;
}

static int group_teardown(void **st)
{
    (void)st;
    if (tmpdir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return 0;
}

/* ------------------------------------------------------------------------- */
/* gunzip and a small profile.proto reader                                    */
/* ------------------------------------------------------------------------- */

static unsigned char *gunzip(const unsigned char *in, size_t len, size_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK); /* gzip only */
    size_t cap = len * 4 + 1024, n = 0;
    unsigned char *out = malloc(cap);
    assert_non_null(out);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    int rc;
    do {
        if (cap - n < 4096) {
            cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
        z.next_out = out + n;
        z.avail_out = (uInt)(cap - n);
        rc = inflate(&z, Z_NO_FLUSH);
        n = cap - z.avail_out;
        assert_true_msg(rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR, "inflate: %d",
                        rc);
        if (rc == Z_BUF_ERROR && z.avail_out)
            fail_msg("truncated gzip stream");
    } while (rc != Z_STREAM_END);
    assert_int_equal(z.avail_in, 0);
    inflateEnd(&z);
    *outlen = n;
    return out;
}

typedef struct rd {
    const unsigned char *p, *end;
    bool bad;
} rd;

static uint64_t rd_varint(rd *r)
{
    uint64_t v = 0;
    for (int sh = 0; sh < 70 && r->p < r->end; sh += 7) {
        unsigned char c = *r->p++;
        if (sh < 64)
            v |= (uint64_t)(c & 0x7F) << sh;
        if (!(c & 0x80))
            return v;
    }
    r->bad = true;
    return 0;
}

/* Next field: varint value in *v, or the bytes in *sub. */
static bool rd_field(rd *r, unsigned *field, unsigned *wt, uint64_t *v, rd *sub)
{
    if (r->bad || r->p >= r->end)
        return false;
    uint64_t key = rd_varint(r);
    *field = (unsigned)(key >> 3);
    *wt = (unsigned)(key & 7);
    if (*wt == 0) {
        *v = rd_varint(r);
    } else if (*wt == 2) {
        uint64_t len = rd_varint(r);
        if (r->bad || len > (uint64_t)(r->end - r->p)) {
            r->bad = true;
            return false;
        }
        sub->p = r->p;
        sub->end = r->p + len;
        sub->bad = false;
        r->p += len;
    } else {
        r->bad = true;
        return false;
    }
    return !r->bad;
}

typedef struct u64v {
    uint64_t *v;
    size_t n, cap;
} u64v;

static void u64v_push(u64v *a, uint64_t x)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 8;
        a->v = realloc(a->v, a->cap * sizeof *a->v);
        assert_non_null(a->v);
    }
    a->v[a->n++] = x;
}

/* A repeated varint field, packed or not. */
static void rd_repeated(u64v *a, unsigned wt, uint64_t v, rd *sub)
{
    if (wt == 0) {
        u64v_push(a, v);
        return;
    }
    while (sub->p < sub->end && !sub->bad)
        u64v_push(a, rd_varint(sub));
    assert_false(sub->bad);
}

#define PUSH(arr, n, cap, item)                                                \
    do {                                                                       \
        if ((n) == (cap)) {                                                    \
            (cap) = (cap) ? (cap)*2 : 8;                                       \
            (arr) = realloc((arr), (cap) * sizeof *(arr));                     \
            assert_non_null(arr);                                              \
        }                                                                      \
        (arr)[(n)++] = (item);                                                 \
    } while (0)

typedef struct pstr {
    const char *s;
    size_t len;
} pstr;
typedef struct plabel {
    uint64_t key, str, unit;
    int64_t num;
} plabel;
typedef struct psample {
    u64v locs, vals;
    plabel labels[8];
    size_t nlabels;
} psample;
typedef struct pmapping {
    uint64_t id, start, limit, offset, file, bid;
    bool fn, fl, ln, in;
} pmapping;
typedef struct pline {
    uint64_t fid;
    int64_t line;
} pline;
typedef struct plocation {
    uint64_t id, mapping, addr;
    pline lines[8];
    size_t nlines;
} plocation;
typedef struct pfunction {
    uint64_t id, name, sys, file, start;
} pfunction;

typedef struct pprofile {
    unsigned char *raw;
    pstr *strs;
    size_t nstrs, strs_cap;
    uint64_t stype[8][2];
    size_t nstype;
    psample *samples;
    size_t nsamples, samples_cap;
    pmapping *maps;
    size_t nmaps, maps_cap;
    plocation *locs;
    size_t nlocs, locs_cap;
    pfunction *funcs;
    size_t nfuncs, funcs_cap;
    int64_t time, dur, period;
    uint64_t ptype[2];
    bool has_ptype;
    u64v comments;
    uint64_t dflt;
} pprofile;

static void pp_free(pprofile *pp)
{
    for (size_t i = 0; i < pp->nsamples; i++) {
        free(pp->samples[i].locs.v);
        free(pp->samples[i].vals.v);
    }
    free(pp->samples);
    free(pp->strs);
    free(pp->maps);
    free(pp->locs);
    free(pp->funcs);
    free(pp->comments.v);
    free(pp->raw);
    memset(pp, 0, sizeof *pp);
}

static void pp_value_type(rd *m, uint64_t *out)
{
    unsigned f, wt;
    uint64_t v;
    rd s;
    out[0] = out[1] = 0;
    while (rd_field(m, &f, &wt, &v, &s))
        if (wt == 0 && (f == 1 || f == 2))
            out[f - 1] = v;
    assert_false(m->bad);
}

static void pp_decode(pprofile *pp, const unsigned char *gz, size_t gzlen)
{
    memset(pp, 0, sizeof *pp);
    size_t n;
    pp->raw = gunzip(gz, gzlen, &n);
    rd r = {pp->raw, pp->raw + n, false};
    unsigned f, wt;
    uint64_t v;
    rd s;
    while (rd_field(&r, &f, &wt, &v, &s)) {
        switch (f) {
        case 1:
            assert_int_equal(wt, 2);
            assert_true(pp->nstype < 8);
            pp_value_type(&s, pp->stype[pp->nstype++]);
            break;
        case 2: {
            assert_int_equal(wt, 2);
            psample sm;
            memset(&sm, 0, sizeof sm);
            unsigned f2, wt2;
            uint64_t v2;
            rd s2;
            while (rd_field(&s, &f2, &wt2, &v2, &s2)) {
                if (f2 == 1)
                    rd_repeated(&sm.locs, wt2, v2, &s2);
                else if (f2 == 2)
                    rd_repeated(&sm.vals, wt2, v2, &s2);
                else if (f2 == 3) {
                    assert_true(sm.nlabels < 8);
                    plabel *l = &sm.labels[sm.nlabels++];
                    memset(l, 0, sizeof *l);
                    unsigned f3, wt3;
                    uint64_t v3;
                    rd s3;
                    while (rd_field(&s2, &f3, &wt3, &v3, &s3)) {
                        if (f3 == 1)
                            l->key = v3;
                        else if (f3 == 2)
                            l->str = v3;
                        else if (f3 == 3)
                            l->num = (int64_t)v3;
                        else if (f3 == 4)
                            l->unit = v3;
                    }
                    assert_false(s2.bad);
                }
            }
            assert_false(s.bad);
            PUSH(pp->samples, pp->nsamples, pp->samples_cap, sm);
            break;
        }
        case 3: {
            pmapping m;
            memset(&m, 0, sizeof m);
            unsigned f2, wt2;
            uint64_t v2;
            rd s2;
            while (rd_field(&s, &f2, &wt2, &v2, &s2)) {
                switch (f2) {
                case 1: m.id = v2; break;
                case 2: m.start = v2; break;
                case 3: m.limit = v2; break;
                case 4: m.offset = v2; break;
                case 5: m.file = v2; break;
                case 6: m.bid = v2; break;
                case 7: m.fn = v2; break;
                case 8: m.fl = v2; break;
                case 9: m.ln = v2; break;
                case 10: m.in = v2; break;
                }
            }
            assert_false(s.bad);
            PUSH(pp->maps, pp->nmaps, pp->maps_cap, m);
            break;
        }
        case 4: {
            plocation l;
            memset(&l, 0, sizeof l);
            unsigned f2, wt2;
            uint64_t v2;
            rd s2;
            while (rd_field(&s, &f2, &wt2, &v2, &s2)) {
                if (f2 == 1)
                    l.id = v2;
                else if (f2 == 2)
                    l.mapping = v2;
                else if (f2 == 3)
                    l.addr = v2;
                else if (f2 == 4) {
                    assert_true(l.nlines < 8);
                    pline *ln = &l.lines[l.nlines++];
                    memset(ln, 0, sizeof *ln);
                    unsigned f3, wt3;
                    uint64_t v3;
                    rd s3;
                    while (rd_field(&s2, &f3, &wt3, &v3, &s3)) {
                        if (f3 == 1)
                            ln->fid = v3;
                        else if (f3 == 2)
                            ln->line = (int64_t)v3;
                    }
                    assert_false(s2.bad);
                }
            }
            assert_false(s.bad);
            PUSH(pp->locs, pp->nlocs, pp->locs_cap, l);
            break;
        }
        case 5: {
            pfunction fn;
            memset(&fn, 0, sizeof fn);
            unsigned f2, wt2;
            uint64_t v2;
            rd s2;
            while (rd_field(&s, &f2, &wt2, &v2, &s2)) {
                switch (f2) {
                case 1: fn.id = v2; break;
                case 2: fn.name = v2; break;
                case 3: fn.sys = v2; break;
                case 4: fn.file = v2; break;
                case 5: fn.start = v2; break;
                }
            }
            assert_false(s.bad);
            PUSH(pp->funcs, pp->nfuncs, pp->funcs_cap, fn);
            break;
        }
        case 6:
            assert_int_equal(wt, 2);
            PUSH(pp->strs, pp->nstrs, pp->strs_cap,
                 ((pstr){(const char *)s.p, (size_t)(s.end - s.p)}));
            break;
        case 9: pp->time = (int64_t)v; break;
        case 10: pp->dur = (int64_t)v; break;
        case 11:
            pp_value_type(&s, pp->ptype);
            pp->has_ptype = true;
            break;
        case 12: pp->period = (int64_t)v; break;
        case 13: rd_repeated(&pp->comments, wt, v, &s); break;
        case 14: pp->dflt = v; break;
        default: fail_msg("unexpected Profile field %u", f);
        }
    }
    assert_false(r.bad);
}

static bool pp_streq(const pprofile *pp, uint64_t idx, const char *s)
{
    if (idx >= pp->nstrs)
        return false;
    return pp->strs[idx].len == strlen(s) && memcmp(pp->strs[idx].s, s, strlen(s)) == 0;
}

static char *pp_str(const pprofile *pp, uint64_t idx)
{
    assert_true(idx < pp->nstrs);
    return strndup(pp->strs[idx].s, pp->strs[idx].len);
}

static const plocation *pp_loc(const pprofile *pp, uint64_t id)
{
    for (size_t i = 0; i < pp->nlocs; i++)
        if (pp->locs[i].id == id)
            return &pp->locs[i];
    return NULL;
}

static const pfunction *pp_func(const pprofile *pp, uint64_t id)
{
    for (size_t i = 0; i < pp->nfuncs; i++)
        if (pp->funcs[i].id == id)
            return &pp->funcs[i];
    return NULL;
}

static int cmp_pstr(const void *a, const void *b)
{
    const pstr *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void check_unique_nonzero(uint64_t *ids, size_t n, const char *what)
{
    qsort(ids, n, sizeof *ids, cmp_u64);
    for (size_t i = 0; i < n; i++) {
        assert_true_msg(ids[i] != 0, "%s id 0", what);
        assert_true_msg(i == 0 || ids[i] != ids[i - 1], "duplicate %s id %" PRIu64, what, ids[i]);
    }
}

/* The GNU build ID of /proc/self/exe read from the file (not from memory). */
static void exe_build_id(char *hex, size_t cap)
{
    size_t len;
    char *f = read_file("/proc/self/exe", &len);
    hex[0] = '\0';
    if (!f)
        return;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)f;
    for (int i = 0; i < eh->e_phnum; i++) {
        Elf64_Phdr ph;
        memcpy(&ph, f + eh->e_phoff + (size_t)i * eh->e_phentsize, sizeof ph);
        if (ph.p_type != PT_NOTE)
            continue;
        size_t off = ph.p_offset, end = ph.p_offset + ph.p_filesz;
        size_t al = ph.p_align == 8 ? 8 : 4;
        while (off + sizeof(Elf64_Nhdr) <= end) {
            Elf64_Nhdr nh;
            memcpy(&nh, f + off, sizeof nh);
            off += sizeof nh;
            const char *name = f + off;
            off += (nh.n_namesz + al - 1) & ~(al - 1);
            const unsigned char *desc = (const unsigned char *)f + off;
            if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && !memcmp(name, "GNU", 4) &&
                2 * nh.n_descsz < cap) {
                for (size_t k = 0; k < nh.n_descsz; k++)
                    snprintf(hex + 2 * k, 3, "%02x", desc[k]);
                free(f);
                return;
            }
            off += (nh.n_descsz + al - 1) & ~(al - 1);
        }
    }
    free(f);
}

/* The rules every encoded profile must follow (docs/formats.md §5). */
static void pp_check_structure(const pprofile *pp)
{
    assert_true(pp->nstrs >= 1);
    assert_int_equal(pp->strs[0].len, 0);
    pstr *sorted = malloc(pp->nstrs * sizeof *sorted);
    assert_non_null(sorted);
    memcpy(sorted, pp->strs, pp->nstrs * sizeof *sorted);
    qsort(sorted, pp->nstrs, sizeof *sorted, cmp_pstr);
    for (size_t i = 1; i < pp->nstrs; i++)
        assert_true_msg(cmp_pstr(&sorted[i - 1], &sorted[i]) != 0, "duplicate string '%.*s'",
                        (int)sorted[i].len, sorted[i].s);
    free(sorted);

    size_t nmax = pp->nlocs + pp->nfuncs + pp->nmaps + 1;
    uint64_t *ids = malloc(nmax * sizeof *ids);
    assert_non_null(ids);
    for (size_t i = 0; i < pp->nlocs; i++)
        ids[i] = pp->locs[i].id;
    check_unique_nonzero(ids, pp->nlocs, "location");
    for (size_t i = 0; i < pp->nfuncs; i++)
        ids[i] = pp->funcs[i].id;
    check_unique_nonzero(ids, pp->nfuncs, "function");
    for (size_t i = 0; i < pp->nmaps; i++)
        ids[i] = pp->maps[i].id;
    check_unique_nonzero(ids, pp->nmaps, "mapping");
    free(ids);

    for (size_t i = 0; i < pp->nstype; i++)
        assert_true(pp->stype[i][0] < pp->nstrs && pp->stype[i][1] < pp->nstrs);
    for (size_t i = 0; i < pp->nsamples; i++) {
        const psample *s = &pp->samples[i];
        assert_int_equal(s->vals.n, pp->nstype);
        /* Location ids are dense (1..n, in order of first use): check the
         * range directly instead of searching. */
        for (size_t k = 0; k < s->locs.n; k++)
            assert_true_msg(s->locs.v[k] >= 1 && s->locs.v[k] <= pp->nlocs &&
                                pp->locs[s->locs.v[k] - 1].id == s->locs.v[k],
                            "sample %zu: bad location id %" PRIu64, i, s->locs.v[k]);
        for (size_t k = 0; k < s->nlabels; k++)
            assert_true(s->labels[k].key < pp->nstrs &&
                        s->labels[k].str < pp->nstrs && s->labels[k].unit < pp->nstrs);
    }
    for (size_t i = 0; i < pp->nlocs; i++) {
        const plocation *l = &pp->locs[i];
        assert_true(l->mapping <= pp->nmaps);
        if (l->mapping) {
            const pmapping *m = &pp->maps[l->mapping - 1];
            assert_int_equal(m->id, l->mapping);
            assert_true_msg(l->addr >= m->start && l->addr < m->limit,
                            "location %#" PRIx64 " outside its mapping", l->addr);
        }
        for (size_t k = 0; k < l->nlines; k++)
            assert_true(l->lines[k].fid >= 1 && l->lines[k].fid <= pp->nfuncs &&
                        pp->funcs[l->lines[k].fid - 1].id == l->lines[k].fid);
    }
    for (size_t i = 0; i < pp->nfuncs; i++)
        assert_true(pp->funcs[i].name < pp->nstrs && pp->funcs[i].sys < pp->nstrs &&
                    pp->funcs[i].file < pp->nstrs);
    for (size_t i = 0; i < pp->nmaps; i++) {
        const pmapping *m = &pp->maps[i];
        assert_true(m->file < pp->nstrs && m->bid < pp->nstrs);
        assert_true(m->start < m->limit);
    }
    /* mapping[0] is this executable, with the build ID of its file. */
    assert_true(pp->nmaps >= 1);
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = '\0';
    char *f0 = pp_str(pp, pp->maps[0].file);
    assert_string_equal(f0, exe);
    free(f0);
    char bid[160];
    exe_build_id(bid, sizeof bid);
    assert_true_msg(bid[0], "the test binary has no GNU build ID note");
    char *b0 = pp_str(pp, pp->maps[0].bid);
    assert_string_equal(b0, bid);
    free(b0);
    /* The mapping holds gtp_alpha and maps back to file offsets. */
    assert_true((uintptr_t)&gtp_alpha >= pp->maps[0].start &&
                (uintptr_t)&gtp_alpha < pp->maps[0].limit);
    assert_int_equal(pp->maps[0].start % 4096, pp->maps[0].offset % 4096);
}

/* Function names of a location, innermost first, joined by '|'. */
static void pp_loc_names(const pprofile *pp, const plocation *l, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (size_t k = 0; k < l->nlines; k++) {
        const pfunction *fn = pp_func(pp, l->lines[k].fid);
        assert_non_null(fn);
        char *name = pp_str(pp, fn->name);
        if (k)
            strncat(buf, "|", cap - strlen(buf) - 1);
        strncat(buf, name, cap - strlen(buf) - 1);
        free(name);
    }
}

static unsigned char *encode(goro__prof *p, size_t *len)
{
    unsigned char *out = NULL;
    assert_rc(goro__prof_encode_proto(p, &out, len), 0);
    assert_non_null(out);
    assert_true(*len >= 18);
    assert_int_equal(out[0], 0x1f); /* gzip magic */
    assert_int_equal(out[1], 0x8b);
    return out;
}

static void save(const char *name, const void *data, size_t len, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", tmpdir, name);
    write_file(path, data, len);
}

/* ------------------------------------------------------------------------- */
/* Bad input                                                                  */
/* ------------------------------------------------------------------------- */

static void test_bad_input(void **st)
{
    (void)st;
    int64_t v[4] = {1, 2, 3, 4};
    uintptr_t pcs[2] = {P.alpha, P.beta};
    goro__prof_label lb[GORO__PROF_MAX_LABELS + 1] = {{"k", "v", 0, NULL}};
    unsigned char *out = (unsigned char *)"x";
    size_t len = 7;

    assert_null(goro__prof_new(NULL));
    goro__prof_free(NULL);
    goro__prof_set_period(NULL, "a", "b", 1);
    goro__prof_set_default_type(NULL, "a");
    goro__prof_set_time(NULL, 1, 2);
    assert_rc(goro__prof_add_type(NULL, "a", "b"), -EINVAL);
    assert_rc(goro__prof_add_comment(NULL, "c"), -EINVAL);
    assert_rc(goro__prof_add_sample(NULL, pcs, 2, false, v, NULL, 0), -EINVAL);
    assert_rc(goro__prof_encode_proto(NULL, &out, &len), -EINVAL);
    assert_null(goro__prof_encode_text_counts(NULL));
    assert_null(goro__prof_encode_text_heap(NULL, 1, NULL, NULL));

    goro__prof *p = goro__prof_new("goroutine");
    assert_non_null(p);
    /* No sample type yet: samples have nowhere to put values. */
    assert_rc(goro__prof_add_sample(p, pcs, 2, false, v, NULL, 0), -EINVAL);
    assert_rc(goro__prof_add_type(p, NULL, "count"), -EINVAL);
    assert_rc(goro__prof_add_type(p, "goroutine", NULL), -EINVAL);
    assert_rc(goro__prof_add_comment(p, NULL), -EINVAL);
    for (int i = 0; i < GORO__PROF_MAX_TYPES; i++)
        assert_rc(goro__prof_add_type(p, "t", "u"), 0);
    assert_rc(goro__prof_add_type(p, "t", "u"), -ENOSPC);
    assert_rc(goro__prof_add_sample(p, NULL, 2, false, v, NULL, 0), -EINVAL);
    assert_rc(goro__prof_add_sample(p, pcs, 2, false, NULL, NULL, 0), -EINVAL);
    assert_rc(goro__prof_add_sample(p, pcs, 2, false, v, NULL, 1), -EINVAL);
    assert_rc(goro__prof_add_sample(p, pcs, 2, false, v, lb, GORO__PROF_MAX_LABELS + 1),
              -EINVAL);
    goro__prof_label nokey = {NULL, "v", 0, NULL};
    assert_rc(goro__prof_add_sample(p, pcs, 2, false, v, &nokey, 1), -EINVAL);
    assert_rc(goro__prof_add_sample(p, NULL, 0, false, v, NULL, 0), 0); /* empty stack */
    assert_rc(goro__prof_add_sample(p, pcs, 2, false, v, lb, 1), 0);
    /* Types are fixed once samples exist. */
    assert_rc(goro__prof_add_type(p, "late", "u"), -EINVAL);
    assert_rc(goro__prof_encode_proto(p, NULL, &len), -EINVAL);
    assert_rc(goro__prof_encode_proto(p, &out, NULL), -EINVAL);
    /* Heap text needs the four heap types and a sane rate. */
    assert_null(goro__prof_encode_text_heap(p, 524288, NULL, NULL));
    goro__prof_free(p);

    p = goro__prof_new("heap");
    assert_rc(goro__prof_add_type(p, "alloc_objects", "count"), 0);
    assert_rc(goro__prof_add_type(p, "alloc_space", "bytes"), 0);
    assert_rc(goro__prof_add_type(p, "inuse_objects", "count"), 0);
    assert_rc(goro__prof_add_type(p, "inuse_space", "bytes"), 0);
    assert_null(goro__prof_encode_text_heap(p, -1, NULL, NULL));
    assert_null(goro__prof_encode_text_heap(p, INT64_MAX, NULL, NULL));
    char *t = goro__prof_encode_text_heap(p, 524288, NULL, NULL);
    assert_non_null(t);
    free(t);
    goro__prof_free(p);

    /* Only an empty stack (no pcs stored at all). */
    p = goro__prof_new("goroutine");
    assert_rc(goro__prof_add_type(p, "goroutine", "count"), 0);
    assert_rc(goro__prof_add_sample(p, NULL, 0, false, v, NULL, 0), 0);
    t = goro__prof_encode_text_counts(p);
    assert_non_null(t);
    assert_string_equal(t, "goroutine profile: total 1\n1 @\n\n");
    free(t);
    assert_rc(goro__prof_encode_proto(p, &out, &len), 0);
    free(out);
    goro__prof_free(p);

    p = goro__prof_new("heap");
    assert_rc(goro__prof_add_type(p, "alloc_objects", "count"), 0);
    assert_rc(goro__prof_add_type(p, "alloc_space", "bytes"), 0);
    assert_rc(goro__prof_add_type(p, "inuse_objects", "count"), 0);
    assert_rc(goro__prof_add_type(p, "inuse_space", "bytes"), 0);
    /* NULL strings in the void setters: cleared / empty, no crash. */
    goro__prof_set_period(p, NULL, NULL, 3);
    goro__prof_set_period(p, "space", NULL, 3);
    goro__prof_set_default_type(p, NULL);
    assert_rc(goro__prof_encode_proto(p, &out, &len), 0);
    free(out);
    goro__prof_free(p);
}

/* ------------------------------------------------------------------------- */
/* profile.proto through go tool pprof                                        */
/* ------------------------------------------------------------------------- */

/* A goroutine-style profile with real stacks:
 *  s0: alpha <- beta <- gamma, 7, label worker=w1
 *  s1: outer (inlined gtp_inl) <- gamma, 3, numeric label bytes=4096 bytes
 *  s2: delta entry (exact leaf) <- beta, 2, labels kind=x, n=-5
 *  s3: 0x10 (exact; no object), 1 */
static goro__prof *build_goroutine_profile(const char *kind)
{
    goro__prof *p = goro__prof_new(kind);
    assert_non_null(p);
    assert_rc(goro__prof_add_type(p, "goroutine", "count"), 0);
    goro__prof_set_period(p, "goroutine", "count", 1);
    uintptr_t s0[] = {P.alpha, P.beta, P.gamma};
    uintptr_t s1[] = {P.outer, P.gamma};
    uintptr_t s2[] = {P.delta, P.beta};
    uintptr_t s3[] = {0x10};
    int64_t v;
    goro__prof_label l0 = {"worker", "w1", 0, NULL};
    goro__prof_label l1 = {"bytes", NULL, 4096, "bytes"};
    goro__prof_label l2[] = {{"kind", "x", 0, NULL}, {"n", NULL, -5, NULL}};
    v = 7;
    assert_rc(goro__prof_add_sample(p, s0, 3, false, &v, &l0, 1), 0);
    v = 3;
    assert_rc(goro__prof_add_sample(p, s1, 2, false, &v, &l1, 1), 0);
    v = 2;
    assert_rc(goro__prof_add_sample(p, s2, 2, true, &v, l2, 2), 0);
    v = 1;
    assert_rc(goro__prof_add_sample(p, s3, 1, true, &v, NULL, 0), 0);
    return p;
}

static void check_decoded_goroutine(const pprofile *pp)
{
    pp_check_structure(pp);
    assert_int_equal(pp->nstype, 1);
    assert_true(pp_streq(pp, pp->stype[0][0], "goroutine"));
    assert_true(pp_streq(pp, pp->stype[0][1], "count"));
    assert_true(pp->has_ptype);
    assert_true(pp_streq(pp, pp->ptype[0], "goroutine"));
    assert_int_equal(pp->period, 1);
    assert_int_equal(pp->nsamples, 4);
    static const int64_t vals[] = {7, 3, 2, 1};
    static const char *names[4][3] = {
        {"gtp_alpha", "gtp_beta", "gtp_gamma"},
        {"gtp_inl|gtp_outer", "gtp_gamma", NULL},
        {"gtp_delta", "gtp_beta", NULL},
        {"", NULL, NULL},
    };
    uintptr_t addrs[4][3] = {{P.alpha - 1, P.beta - 1, P.gamma - 1},
                             {P.outer - 1, P.gamma - 1, 0},
                             {P.delta, P.beta - 1, 0},
                             {0x10, 0, 0}};
    for (size_t i = 0; i < 4; i++) {
        const psample *s = &pp->samples[i];
        assert_int_equal(s->vals.v[0], vals[i]);
        for (size_t k = 0; k < 3 && names[i][k]; k++) {
            assert_true(k < s->locs.n);
            const plocation *l = pp_loc(pp, s->locs.v[k]);
            char buf[256];
            pp_loc_names(pp, l, buf, sizeof buf);
            assert_string_equal(buf, names[i][k]);
            assert_int_equal(l->addr, addrs[i][k]);
        }
    }
    /* Same address, same location: beta is shared by s0 and s2. */
    assert_int_equal(pp->samples[0].locs.v[1], pp->samples[2].locs.v[1]);
    /* Lines carry the call lines; the inline chain is innermost first. */
    const plocation *lo = pp_loc(pp, pp->samples[1].locs.v[0]);
    assert_int_equal(lo->nlines, 2);
    assert_int_equal(lo->lines[0].line, gtp_inl_line);
    assert_int_equal(lo->lines[1].line, gtp_outer_line);
    const plocation *la = pp_loc(pp, pp->samples[0].locs.v[0]);
    assert_int_equal(la->lines[0].line, gtp_alpha_line);
    const pfunction *fa = pp_func(pp, la->lines[0].fid);
    assert_true(pp_streq(pp, fa->file, __FILE__));
    assert_int_equal(fa->name, fa->sys);
    assert_int_equal(fa->start, 0);
    const plocation *ld = pp_loc(pp, pp->samples[2].locs.v[0]);
    assert_int_equal(ld->lines[0].line, GTP_DELTA_LINE);
    /* The unmapped address: a location with no mapping and no lines. */
    const plocation *lu = pp_loc(pp, pp->samples[3].locs.v[0]);
    assert_int_equal(lu->mapping, 0);
    assert_int_equal(lu->nlines, 0);
    /* The main executable's mapping: everything in it was symbolized. */
    assert_int_equal(la->mapping, 1);
    assert_true(pp->maps[0].fn && pp->maps[0].fl && pp->maps[0].ln && pp->maps[0].in);
    /* Labels. */
    assert_int_equal(pp->samples[0].nlabels, 1);
    assert_true(pp_streq(pp, pp->samples[0].labels[0].key, "worker"));
    assert_true(pp_streq(pp, pp->samples[0].labels[0].str, "w1"));
    const plabel *nl = &pp->samples[1].labels[0];
    assert_true(pp_streq(pp, nl->key, "bytes"));
    assert_int_equal(nl->str, 0);
    assert_int_equal(nl->num, 4096);
    assert_true(pp_streq(pp, nl->unit, "bytes"));
    assert_int_equal(pp->samples[2].labels[1].num, -5);
    assert_int_equal(pp->samples[2].labels[1].unit, 0);
}

/* The text of -traces blocks, one per sample; find the block with `needle`. */
static char *traces_block(const char *traces, const char *needle)
{
    static const char sep[] = "-----------+-------------------------------------------------------";
    const char *p = traces;
    while ((p = strstr(p, sep))) {
        p += sizeof sep - 1;
        const char *end = strstr(p, sep);
        if (!end)
            end = p + strlen(p);
        char *blk = strndup(p, (size_t)(end - p));
        if (strstr(blk, needle))
            return blk;
        free(blk);
    }
    return NULL;
}

/* Lines of a block in order (each needle must appear after the previous). */
static void assert_in_order(const char *text, const char *const *needles, size_t n)
{
    const char *p = text;
    for (size_t i = 0; i < n; i++) {
        const char *q = strstr(p, needles[i]);
        assert_true_msg(q, "'%s' not found (in order) in:\n%s", needles[i], text);
        p = q + strlen(needles[i]);
    }
}

static void test_proto_goroutine(void **st)
{
    (void)st;
    goro__prof *p = build_goroutine_profile("goroutine");
    size_t len;
    unsigned char *gz = encode(p, &len);
    pprofile pp;
    pp_decode(&pp, gz, len);
    check_decoded_goroutine(&pp);
    pp_free(&pp);
    if (!have_go) {
        fprintf(stderr, "note: go tool pprof checks skipped (no go)\n");
        free(gz);
        goro__prof_free(p);
        return;
    }
    char path[256];
    save("goroutine.pb.gz", gz, len, path, sizeof path);
    free(gz);

    char *raw = pprof("-raw", path);
    char want[8192];
    assert_non_null(strstr(raw, "PeriodType: goroutine count\n"));
    assert_non_null(strstr(raw, "Period: 1\n"));
    assert_non_null(strstr(raw, "Samples:\ngoroutine/count\n"));
    assert_non_null(strstr(raw, "          7: "));
    assert_non_null(strstr(raw, "          3: "));
    assert_non_null(strstr(raw, "                worker:[w1]\n"));
    assert_non_null(strstr(raw, "                bytes:[4096 bytes]\n"));
    assert_non_null(strstr(raw, "                kind:[x]\n"));
    assert_non_null(strstr(raw, "                n:[-5]\n"));
    snprintf(want, sizeof want, " gtp_alpha %s:%d s=0\n", __FILE__, gtp_alpha_line);
    assert_non_null(strstr(raw, want));
    snprintf(want, sizeof want, " gtp_beta %s:%d s=0\n", __FILE__, gtp_beta_line);
    assert_non_null(strstr(raw, want));
    snprintf(want, sizeof want, " gtp_gamma %s:%d s=0\n", __FILE__, gtp_gamma_line);
    assert_non_null(strstr(raw, want));
    snprintf(want, sizeof want, " gtp_delta %s:%d s=0\n", __FILE__, GTP_DELTA_LINE);
    assert_non_null(strstr(raw, want));
    /* Inline chain: gtp_inl, then gtp_outer on the continuation line. */
    snprintf(want, sizeof want, " gtp_inl %s:%d s=0\n             gtp_outer %s:%d s=0\n",
             __FILE__, gtp_inl_line, __FILE__, gtp_outer_line);
    assert_true_msg(strstr(raw, want), "no inline chain '%s' in\n%s", want, raw);
    snprintf(want, sizeof want, ": %#" PRIxPTR " M=1 gtp_alpha", P.alpha - 1);
    assert_non_null(strstr(raw, want));
    assert_non_null(strstr(raw, ": 0x10 \n")); /* unmapped, unsymbolized */
    /* Mapping 1 = this executable, symbolized. */
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    char bid[160];
    exe_build_id(bid, sizeof bid);
    snprintf(want, sizeof want, "Mappings\n1: 0x");
    assert_non_null(strstr(raw, want));
    snprintf(want, sizeof want, " %s %s [FN][FL][LN][IN]\n", exe, bid);
    assert_true_msg(strstr(raw, want), "no '%s' in\n%s", want, raw);
    free(raw);

    char *top = pprof("-top", path);
    assert_non_null(strstr(top, "Type: goroutine\n"));
    assert_non_null(strstr(top, "Showing nodes accounting for 13, 100% of 13 total"));
    const char *l = strstr(top, " gtp_alpha\n");
    assert_non_null(l);
    const char *bol = l;
    while (bol > top && bol[-1] != '\n')
        bol--;
    long flat = 0;
    char pct[16] = "";
    assert_true_msg(sscanf(bol, "%ld %15s", &flat, pct) == 2 && flat == 7 &&
                        strcmp(pct, "53.85%") == 0,
                    "top row: %.*s", (int)(l - bol + 10), bol);
    assert_non_null(strstr(top, " gtp_inl (inline)\n"));
    free(top);

    char *tr = pprof("-traces", path);
    assert_non_null(strstr(tr, "Type: goroutine\n"));
    char *b = traces_block(tr, "worker:");
    assert_non_null(b);
    const char *o0[] = {"    worker:  w1\n", "         7   gtp_alpha\n", "             gtp_beta\n",
                        "             gtp_gamma\n"};
    assert_in_order(b, o0, 4);
    free(b);
    b = traces_block(tr, "gtp_inl");
    assert_non_null(b);
    const char *o1[] = {"     bytes:  4kB\n", "         3   gtp_inl (inline)\n",
                        "             gtp_outer\n", "             gtp_gamma\n"};
    assert_in_order(b, o1, 4);
    free(b);
    b = traces_block(tr, "gtp_delta");
    assert_non_null(b);
    const char *o2[] = {"      kind:  x\n", "         2   gtp_delta\n", "             gtp_beta\n"};
    assert_in_order(b, o2, 3);
    free(b);
    free(tr);
    goro__prof_free(p);
}

/* An address in the executable that nothing names (alignment padding after
 * a function): the mapping must then not claim has_functions, so that pprof
 * symbolizes the mapping itself from the binary (found by its path and
 * build ID) instead of trusting our partial answer. */
static void test_proto_unsymbolized(void **st)
{
    (void)st;
    /* Find padding: probe the bytes after gtp_ret through our encoder. */
    goro__prof *p = goro__prof_new("probe");
    assert_rc(goro__prof_add_type(p, "n", "count"), 0);
    for (uintptr_t a = (uintptr_t)&gtp_ret; a < (uintptr_t)&gtp_ret + 64; a++) {
        int64_t v = 1;
        assert_rc(goro__prof_add_sample(p, &a, 1, true, &v, NULL, 0), 0);
    }
    size_t len;
    unsigned char *gz = encode(p, &len);
    goro__prof_free(p);
    pprofile pp;
    pp_decode(&pp, gz, len);
    free(gz);
    uintptr_t gap = 0;
    for (size_t i = 0; i < pp.nlocs && !gap; i++)
        if (pp.locs[i].mapping == 1 && pp.locs[i].nlines == 0)
            gap = pp.locs[i].addr;
    /* Every location here is in mapping 1; one unnamed spoils the flag. */
    assert_true(pp.maps[0].fn == (gap == 0));
    pp_free(&pp);
    if (!gap) {
        fprintf(stderr, "note: no unnamed padding after gtp_ret; unsymbolized-mapping check "
                        "skipped\n");
        return;
    }
    p = goro__prof_new("goroutine");
    assert_rc(goro__prof_add_type(p, "goroutine", "count"), 0);
    uintptr_t s0[] = {P.alpha, P.beta};
    int64_t v = 5;
    assert_rc(goro__prof_add_sample(p, s0, 2, false, &v, NULL, 0), 0);
    v = 1;
    assert_rc(goro__prof_add_sample(p, &gap, 1, true, &v, NULL, 0), 0);
    gz = encode(p, &len);
    pp_decode(&pp, gz, len);
    pp_check_structure(&pp);
    assert_false(pp.maps[0].fn || pp.maps[0].fl || pp.maps[0].ln || pp.maps[0].in);
    const plocation *lg = pp_loc(&pp, pp.samples[1].locs.v[0]);
    assert_int_equal(lg->addr, gap);
    assert_int_equal(lg->mapping, 1); /* pprof needs the mapping to find the binary */
    assert_int_equal(lg->nlines, 0);
    assert_int_equal(pp_loc(&pp, pp.samples[0].locs.v[0])->nlines, 1); /* ours kept */
    pp_free(&pp);
    if (have_go) {
        char path[256], want[8192];
        save("unsym.pb.gz", gz, len, path, sizeof path);
        /* pprof opens the binary (addr2line/nm) and names what it can. */
        char *raw = pprof("-raw", path);
        snprintf(want, sizeof want, " gtp_alpha %s:%d s=0\n", __FILE__, gtp_alpha_line);
        assert_true_msg(strstr(raw, want), "no '%s' in\n%s", want, raw);
        snprintf(want, sizeof want, ": %#" PRIxPTR " M=1", gap);
        assert_true_msg(strstr(raw, want), "no '%s' in\n%s", want, raw);
        free(raw);
    }
    free(gz);
    goro__prof_free(p);
}

/* A heap-shaped profile: four types, period, default type, time, duration,
 * comments, numeric labels. */
static void test_proto_heap(void **st)
{
    (void)st;
    goro__prof *p = goro__prof_new("heap");
    assert_rc(goro__prof_add_type(p, "alloc_objects", "count"), 0);
    assert_rc(goro__prof_add_type(p, "alloc_space", "bytes"), 0);
    assert_rc(goro__prof_add_type(p, "inuse_objects", "count"), 0);
    assert_rc(goro__prof_add_type(p, "inuse_space", "bytes"), 0);
    goro__prof_set_period(p, "space", "bytes", 524288);
    goro__prof_set_default_type(p, "alloc_space");
    int64_t now = (int64_t)time(NULL) * 1000000000;
    goro__prof_set_time(p, now, 2500000000);
    assert_rc(goro__prof_add_comment(p, "goro heap profile"), 0);
    assert_rc(goro__prof_add_comment(p, "second comment"), 0);
    uintptr_t s0[] = {P.alpha, P.gamma};
    uintptr_t s1[] = {P.beta, P.gamma};
    int64_t v0[] = {10, 40960, 4, 16384};
    int64_t v1[] = {3, 3 * 1024 * 1024, 1, 1024 * 1024};
    goro__prof_label b0 = {"bytes", NULL, 4096, "bytes"};
    goro__prof_label b1 = {"bytes", NULL, 1024 * 1024, "bytes"};
    assert_rc(goro__prof_add_sample(p, s0, 2, false, v0, &b0, 1), 0);
    assert_rc(goro__prof_add_sample(p, s1, 2, false, v1, &b1, 1), 0);
    size_t len;
    unsigned char *gz = encode(p, &len);
    pprofile pp;
    pp_decode(&pp, gz, len);
    pp_check_structure(&pp);
    assert_int_equal(pp.nstype, 4);
    assert_true(pp_streq(&pp, pp.stype[3][0], "inuse_space"));
    assert_true(pp_streq(&pp, pp.stype[3][1], "bytes"));
    assert_true(pp_streq(&pp, pp.dflt, "alloc_space"));
    assert_true(pp_streq(&pp, pp.ptype[0], "space"));
    assert_int_equal(pp.period, 524288);
    assert_int_equal(pp.time, now);
    assert_int_equal(pp.dur, 2500000000);
    assert_int_equal(pp.comments.n, 2);
    assert_true(pp_streq(&pp, pp.comments.v[0], "goro heap profile"));
    assert_int_equal(pp.samples[1].vals.v[1], 3 * 1024 * 1024);
    pp_free(&pp);
    if (have_go) {
        char path[256];
        save("heap.pb.gz", gz, len, path, sizeof path);
        char *raw = pprof("-raw", path);
        assert_non_null(strstr(raw, "Comment: goro heap profile\nComment: second comment\n"));
        assert_non_null(strstr(raw, "PeriodType: space bytes\nPeriod: 524288\nTime: "));
        assert_non_null(strstr(raw, "Duration: 2.5s\n"));
        assert_non_null(strstr(
            raw, "alloc_objects/count alloc_space/bytes[dflt] inuse_objects/count "
                 "inuse_space/bytes\n"));
        assert_non_null(strstr(raw, "         10      40960          4      16384: "));
        assert_non_null(strstr(raw, "                bytes:[1048576 bytes]\n"));
        free(raw);
        char *top = pprof("-top", path);
        assert_non_null(strstr(top, "Type: alloc_space\n"));
        assert_non_null(strstr(top, "Duration: 2.50s"));
        assert_non_null(strstr(top, "Showing nodes accounting for 3112kB, 100% of 3112kB total"));
        free(top);
        char *top2 = pprof("-sample_index=inuse_objects -top", path);
        assert_non_null(strstr(top2, "Type: inuse_objects\n"));
        assert_non_null(strstr(top2, "Showing nodes accounting for 5, 100% of 5 total"));
        free(top2);
    }
    free(gz);
    goro__prof_free(p);
}

static void test_proto_empty(void **st)
{
    (void)st;
    /* No types, no samples at all. */
    goro__prof *p = goro__prof_new("empty");
    size_t len;
    unsigned char *gz = encode(p, &len);
    pprofile pp;
    pp_decode(&pp, gz, len);
    pp_check_structure(&pp);
    assert_int_equal(pp.nsamples, 0);
    assert_int_equal(pp.nlocs, 0);
    assert_int_equal(pp.nfuncs, 0);
    assert_int_equal(pp.nstype, 0);
    assert_false(pp.maps[0].fn); /* no locations: nothing claimed */
    pp_free(&pp);
    if (have_go) {
        char path[256];
        save("empty.pb.gz", gz, len, path, sizeof path);
        pprof_no_samples("-raw", path);
    }
    free(gz);
    goro__prof_free(p);
    /* Types, no samples. */
    p = goro__prof_new("goroutine");
    assert_rc(goro__prof_add_type(p, "goroutine", "count"), 0);
    goro__prof_set_period(p, "goroutine", "count", 1);
    gz = encode(p, &len);
    if (have_go) {
        char path[256];
        save("empty2.pb.gz", gz, len, path, sizeof path);
        char *top = pprof("-top", path);
        assert_non_null(strstr(top, "Type: goroutine\n"));
        free(top);
        char *raw = pprof("-raw", path);
        assert_non_null(strstr(raw, "PeriodType: goroutine count\nPeriod: 1\nSamples:\n"
                                    "goroutine/count\nLocations\nMappings\n1: "));
        free(raw);
    }
    free(gz);
    char *t = goro__prof_encode_text_counts(p);
    assert_non_null(t);
    assert_string_equal(t, "goroutine profile: total 0\n");
    free(t);
    goro__prof_free(p);
    /* An empty heap profile: header and the stats block only. */
    p = goro__prof_new("heap");
    assert_rc(goro__prof_add_type(p, "alloc_objects", "count"), 0);
    assert_rc(goro__prof_add_type(p, "alloc_space", "bytes"), 0);
    assert_rc(goro__prof_add_type(p, "inuse_objects", "count"), 0);
    assert_rc(goro__prof_add_type(p, "inuse_space", "bytes"), 0);
    t = goro__prof_encode_text_heap(p, 524288, NULL, "# goro stats\n# Alloc = 5\n");
    assert_non_null(t);
    assert_string_equal(t, "heap profile: 0: 0 [0: 0] @ heap/1048576\n"
                           "\n# goro stats\n# Alloc = 5\n");
    free(t);
    goro__prof_free(p);
}

/* ------------------------------------------------------------------------- */
/* debug=1 text                                                               */
/* ------------------------------------------------------------------------- */

/* Collapse every run of tabs to one tab: the text Go's Fprintf calls write
 * before its tabwriter pads (no field here contains a tab). */
static char *collapse_tabs(const char *s)
{
    char *o = malloc(strlen(s) + 1);
    assert_non_null(o);
    size_t n = 0;
    for (size_t i = 0; s[i]; i++)
        if (!(s[i] == '\t' && i > 0 && s[i - 1] == '\t'))
            o[n++] = s[i];
    o[n] = '\0';
    return o;
}

/* Our text must equal Go's tabwriter applied to `raw`. */
static void check_against_go_tabwriter(const char *ours, const char *raw, size_t rawlen,
                                       const char *tag)
{
    if (!gohelper[0])
        return;
    char in[256];
    snprintf(in, sizeof in, "%s/%s.tw-in", tmpdir, tag);
    write_file(in, raw, rawlen);
    cmd_result r = run_cmd("%s tab %s", gohelper, in);
    assert_int_equal(r.status, 0);
    if (strcmp(r.out, ours) != 0) {
        size_t i = 0;
        while (r.out[i] && r.out[i] == ours[i])
            i++;
        print_error("%s: differs from Go's tabwriter at byte %zu:\nours: %.80s\ngo:   %.80s\n",
                    tag, i, ours + i, r.out + i);
        cmd_free(&r);
        fail_msg("text differs from Go's tabwriter");
    }
    cmd_free(&r);
}

static char **go_batch(const char *mode, char **in, size_t n);

/* Split a '#' line into its fields (tab runs are separators). */
static int split_tabs(char *line, char **f, int maxf)
{
    int n = 0;
    char *p = line;
    while (n < maxf) {
        f[n++] = p;
        char *t = strchr(p, '\t');
        if (!t)
            break;
        *t = '\0';
        p = t + 1;
        while (*p == '\t')
            p++;
    }
    return n;
}

typedef struct text_group {
    long count;
    uintptr_t at[16];
    int nat;
    char labels[512]; /* "" if none */
    char *frames[32]; /* '#' lines */
    int nframes;
} text_group;

/* Parse "kind profile: total N" and its groups; returns the number of
 * groups. Fails on any line that does not fit. */
static int parse_count_text(char *text, const char *kind, long *total, text_group *g, int maxg)
{
    char *save = NULL;
    char *line = strtok_r(text, "\n", &save);
    /* strtok_r drops empty lines; check the blank lines separately. */
    assert_non_null(line);
    char hdr[256];
    snprintf(hdr, sizeof hdr, "%s profile: total ", kind);
    assert_true_msg(strncmp(line, hdr, strlen(hdr)) == 0, "header: %s", line);
    char *end;
    *total = strtol(line + strlen(hdr), &end, 10);
    assert_true(*end == '\0');
    int ng = 0;
    while ((line = strtok_r(NULL, "\n", &save))) {
        if (line[0] != '#') {
            assert_true(ng < maxg);
            text_group *t = &g[ng++];
            memset(t, 0, sizeof *t);
            t->count = strtol(line, &end, 10);
            assert_true_msg(end != line && strncmp(end, " @", 2) == 0, "group line: %s", line);
            char *q = end + 2;
            while (*q) {
                assert_true_msg(strncmp(q, " 0x", 3) == 0, "group line: %s", line);
                assert_true(t->nat < 16);
                t->at[t->nat++] = (uintptr_t)strtoull(q + 3, &end, 16);
                assert_true(end > q + 3);
                for (char *c = q + 3; c < end; c++)
                    assert_true(isxdigit((unsigned char)*c) && !isupper((unsigned char)*c));
                q = end;
            }
        } else if (strncmp(line, "# labels: ", 10) == 0) {
            assert_true(ng > 0 && g[ng - 1].nframes == 0 && !g[ng - 1].labels[0]);
            snprintf(g[ng - 1].labels, sizeof g[ng - 1].labels, "%s", line + 10);
        } else {
            assert_true_msg(strncmp(line, "#\t", 2) == 0, "frame line: %s", line);
            assert_true(ng > 0 && g[ng - 1].nframes < 32);
            g[ng - 1].frames[g[ng - 1].nframes++] = line;
        }
    }
    return ng;
}

/* A frame line must be "#\t<pc-1>\t<func>+<off>\t<file>:<line>". */
static void check_frame_line(char *line, uintptr_t pc, const exp_frame *e)
{
    char *f[8];
    int n = split_tabs(line, f, 8);
    assert_int_equal(n, 4);
    char want[512];
    snprintf(want, sizeof want, "%#" PRIxPTR, pc);
    assert_string_equal(f[1], want);
    snprintf(want, sizeof want, "%s+%#" PRIxPTR, e->func, pc - e->entry);
    if (pc == e->entry)
        snprintf(want, sizeof want, "%s+0x0", e->func);
    assert_string_equal(f[2], want);
    snprintf(want, sizeof want, "%s:%d", __FILE__, e->line);
    assert_string_equal(f[3], want);
}

/* Check the frame lines of a group against the stack it came from. */
static void check_group_frames(text_group *g, const uintptr_t *pcs, int npc, bool leaf_exact,
                               int skip_first)
{
    int fl = 0;
    for (int i = skip_first; i < npc; i++) {
        uintptr_t pc = (i == 0 && leaf_exact) ? pcs[i] : pcs[i] - 1;
        exp_frame ef[4];
        int nf = expect_frames(pcs[i], ef);
        if (nf == 0) { /* not ours: an unknown address prints "#\t0x.." */
            char want[64];
            snprintf(want, sizeof want, "#\t%#" PRIxPTR, pc);
            assert_true(fl < g->nframes);
            assert_string_equal(g->frames[fl++], want);
            continue;
        }
        for (int k = 0; k < nf; k++) {
            assert_true_msg(fl < g->nframes, "missing frame line for %s", ef[k].func);
            check_frame_line(g->frames[fl++], pc, &ef[k]);
        }
    }
    assert_int_equal(fl, g->nframes);
}

static void test_text_counts(void **st)
{
    (void)st;
    goro__prof *p = build_goroutine_profile("goroutine");
    /* More groups: a duplicate of s0 (merges: 7 + 4 = 11), a tie with s1's
     * count (3) to exercise the key order, a leading internal frame
     * (hidden), and a stack of internal frames only (printed in full). */
    uintptr_t s0[] = {P.alpha, P.beta, P.gamma};
    uintptr_t s4[] = {P.internal, P.alpha, P.gamma};
    uintptr_t s5[] = {P.internal};
    uintptr_t s6[] = {P.gamma, P.beta};
    goro__prof_label l0 = {"worker", "w1", 0, NULL};
    int64_t v = 4;
    assert_rc(goro__prof_add_sample(p, s0, 3, false, &v, &l0, 1), 0);
    v = 5;
    assert_rc(goro__prof_add_sample(p, s4, 3, false, &v, NULL, 0), 0);
    v = 3;
    assert_rc(goro__prof_add_sample(p, s5, 1, false, &v, NULL, 0), 0);
    v = 3;
    assert_rc(goro__prof_add_sample(p, s6, 2, false, &v, NULL, 0), 0);
    char *text = goro__prof_encode_text_counts(p);
    assert_non_null(text);
    fprintf(stderr, "---- debug=1 text ----\n%s----\n", text);

    /* Blank line after every group, no other blank lines. */
    assert_int_equal(gt_count_substr(text, "\n\n"), 7);
    assert_true(text[strlen(text) - 1] == '\n' && text[strlen(text) - 2] == '\n');

    char *copy = strdup(text);
    text_group g[16];
    long total;
    int ng = parse_count_text(copy, "goroutine", &total, g, 16);
    assert_int_equal(total, 7 + 3 + 2 + 1 + 4 + 5 + 3 + 3);
    assert_int_equal(ng, 7);
    /* Sorted by count descending. */
    for (int i = 1; i < ng; i++)
        assert_true(g[i - 1].count >= g[i].count);
    assert_int_equal(g[0].count, 11);
    assert_int_equal(g[0].nat, 3);
    assert_int_equal(g[0].at[0], P.alpha);
    assert_string_equal(g[0].labels, "{\"worker\":\"w1\"}");
    check_group_frames(&g[0], s0, 3, false, 0);
    assert_int_equal(g[1].count, 5);
    assert_int_equal(g[1].at[0], P.internal); /* kept in the @ list ... */
    check_group_frames(&g[1], s4, 3, false, 1); /* ... hidden from # lines */
    /* The three groups of count 3: ordered by their key text. */
    char k[3][256];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(g[2 + i].count, 3);
        snprintf(k[i], sizeof k[i], "%#" PRIxPTR, g[2 + i].at[0]);
    }
    assert_true(strcmp(k[0], k[1]) <= 0 && strcmp(k[1], k[2]) <= 0);
    for (int i = 2; i < 5; i++) {
        if (g[i].at[0] == P.internal) {
            /* Only internal frames: printed in full. */
            assert_int_equal(g[i].nframes, 1);
            assert_non_null(strstr(g[i].frames[0], "\tgoro__prof_free+0x1\t"));
            assert_non_null(strstr(g[i].frames[0], "profile.c:"));
        } else if (g[i].at[0] == P.outer) {
            assert_string_equal(g[i].labels, "{\"bytes\":\"4096\"}");
            check_group_frames(&g[i], (uintptr_t[]){P.outer, P.gamma}, 2, false, 0);
        } else {
            assert_int_equal(g[i].at[0], P.gamma);
            check_group_frames(&g[i], s6, 2, false, 0);
        }
    }
    /* The exact leaf: pc + 1 in the @ list, pc itself in the # line. */
    assert_int_equal(g[5].count, 2);
    assert_int_equal(g[5].at[0], P.delta + 1);
    assert_string_equal(g[5].labels, "{\"kind\":\"x\", \"n\":\"-5\"}");
    check_group_frames(&g[5], (uintptr_t[]){P.delta, P.beta}, 2, true, 0);
    /* The unknown address: "#\t0x10". */
    assert_int_equal(g[6].count, 1);
    assert_int_equal(g[6].at[0], 0x11);
    check_group_frames(&g[6], (uintptr_t[]){0x10}, 1, true, 0);
    free(copy);

    /* Go's tabwriter on the unpadded text gives exactly our text. */
    char *raw = collapse_tabs(text);
    check_against_go_tabwriter(text, raw, strlen(raw), "counts");
    free(raw);

    if (have_go) {
        char path[256];
        save("goroutine.txt", text, strlen(text), path, sizeof path);
        char *r = pprof("-raw", path);
        assert_non_null(strstr(r, "PeriodType: goroutine count\n"));
        assert_non_null(strstr(r, "Samples:\ngoroutine/count\n"));
        assert_non_null(strstr(r, "         11: 1 2 3 \n"));
        char want[128];
        snprintf(want, sizeof want, ": %#" PRIxPTR " ", P.alpha - 1);
        assert_non_null(strstr(r, want));
        snprintf(want, sizeof want, ": %#" PRIxPTR " ", P.delta); /* exact leaf lands on pc */
        assert_non_null(strstr(r, want));
        free(r);
    }
    free(text);
    goro__prof_free(p);

    /* goro__g_start is never shown, even when it is all there is; an
     * empty stack prints an empty "@" list. */
    p = goro__prof_new("goroutine");
    assert_rc(goro__prof_add_type(p, "goroutine", "count"), 0);
    uintptr_t gs = (uintptr_t)&goro__g_start + 2;
    uintptr_t s7[] = {P.alpha, gs};
    v = 2;
    assert_rc(goro__prof_add_sample(p, s7, 2, false, &v, NULL, 0), 0);
    v = 1;
    assert_rc(goro__prof_add_sample(p, &gs, 1, false, &v, NULL, 0), 0);
    assert_rc(goro__prof_add_sample(p, NULL, 0, false, &v, NULL, 0), 0);
    text = goro__prof_encode_text_counts(p);
    assert_non_null(text);
    char want[512];
    snprintf(want, sizeof want,
             "goroutine profile: total 4\n"
             "2 @ %#" PRIxPTR " %#" PRIxPTR "\n"
             "#\t%#" PRIxPTR "\tgtp_alpha+%#" PRIxPTR "\t%s:%d\n"
             "\n"
             "1 @\n"
             "\n"
             "1 @ %#" PRIxPTR "\n"
             "\n",
             P.alpha, gs, P.alpha - 1, P.alpha - 1 - (uintptr_t)&gtp_alpha, __FILE__,
             gtp_alpha_line, gs);
    assert_string_equal(text, want);
    free(text);
    goro__prof_free(p);
}

static void test_text_heap(void **st)
{
    (void)st;
    goro__prof *p = goro__prof_new("heap");
    assert_rc(goro__prof_add_type(p, "alloc_objects", "count"), 0);
    assert_rc(goro__prof_add_type(p, "alloc_space", "bytes"), 0);
    assert_rc(goro__prof_add_type(p, "inuse_objects", "count"), 0);
    assert_rc(goro__prof_add_type(p, "inuse_space", "bytes"), 0);
    uintptr_t s0[] = {P.alpha, P.gamma};
    uintptr_t s1[] = {P.outer, P.beta, P.gamma};
    uintptr_t s2[] = {P.beta};
    /* Scaled values (what the proto carries) and raw counts (the text). */
    int64_t v[3][4] = {{100, 409600, 50, 204800}, {10, 10240, 10, 10240}, {1, 64, 0, 0}};
    int64_t raw[3][4] = {{2, 8192, 1, 4096}, {1, 1024, 1, 1024}, {1, 64, 0, 0}};
    assert_rc(goro__prof_add_sample(p, s0, 2, false, v[0], NULL, 0), 0);
    assert_rc(goro__prof_add_sample(p, s1, 3, false, v[1], NULL, 0), 0);
    assert_rc(goro__prof_add_sample(p, s2, 1, false, v[2], NULL, 0), 0);
    const char *stats = "# runtime.MemStats\n# Alloc = 12345\n# Stack = 2048 / 4096";
    char *text = goro__prof_encode_text_heap(p, 1, (const int64_t(*)[4])raw, stats);
    assert_non_null(text);
    fprintf(stderr, "---- heap text ----\n%s----\n", text);
    const char *hdr = "heap profile: 2: 5120 [4: 9280] @ heap/2\n";
    assert_true_msg(strncmp(text, hdr, strlen(hdr)) == 0, "header: %.60s", text);
    /* Records sorted by in-use bytes: s0 (4096), s1 (1024), s2 (0). */
    char want[512];
    snprintf(want, sizeof want,
             "\n1: 4096 [2: 8192] @ %#" PRIxPTR " %#" PRIxPTR "\n#\t%#" PRIxPTR "\tgtp_alpha+",
             P.alpha, P.gamma, P.alpha - 1);
    const char *r0 = strstr(text, want);
    assert_true_msg(r0, "no '%s'", want);
    snprintf(want, sizeof want, "\n1: 1024 [1: 1024] @ %#" PRIxPTR " %#" PRIxPTR " %#" PRIxPTR "\n",
             P.outer, P.beta, P.gamma);
    const char *r1 = strstr(text, want);
    assert_true(r1 && r1 > r0);
    snprintf(want, sizeof want, "\n0: 0 [1: 64] @ %#" PRIxPTR "\n", P.beta);
    const char *r2 = strstr(text, want);
    assert_true(r2 && r2 > r1);
    assert_non_null(
        strstr(text, "\n\n\n# runtime.MemStats\n# Alloc = 12345\n# Stack = 2048 / 4096\n"));
    assert_true(text[strlen(text) - 1] == '\n' && text[strlen(text) - 2] != '\n');
    /* Frame lines in the records, including the inline chain. */
    char *copy = strdup(text);
    int nframe = 0;
    for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        if (strncmp(l, "#\t", 2) == 0) {
            nframe++;
            char *f[8];
            assert_int_equal(split_tabs(l, f, 8), 4);
        }
    assert_int_equal(nframe, 2 + 4 + 1);
    free(copy);
    char *rawtext = collapse_tabs(text);
    check_against_go_tabwriter(text, rawtext, strlen(rawtext), "heap");
    free(rawtext);
    if (have_go) {
        char path[256];
        save("heap.txt", text, strlen(text), path, sizeof path);
        char *r = pprof("-raw", path);
        assert_non_null(strstr(r, "PeriodType: space bytes\nPeriod: 1\n"));
        assert_non_null(strstr(
            r, "alloc_objects/count alloc_space/bytes inuse_objects/count inuse_space/bytes\n"));
        assert_non_null(strstr(r, "          2       8192          1       4096: "));
        assert_non_null(strstr(r, "          1         64          0          0: "));
        free(r);
    }
    free(text);
    /* Without raw counts the sample values are printed. */
    text = goro__prof_encode_text_heap(p, 524288, NULL, NULL);
    assert_non_null(text);
    assert_true(strncmp(text, "heap profile: 60: 215040 [111: 419904] @ heap/1048576\n", 54) == 0);
    free(text);
    goro__prof_free(p);
}

/* Special characters in every string the encoders carry. */
static void test_special_strings(void **st)
{
    (void)st;
    static const char *vals[] = {
        "quote\" back\\slash",
        "nl\nline\ttab\rcr\vvt\ffeed\a\b",
        "ctl\x01\x1f\x7f",
        "bad utf8 \xff\xfe \xc3\x28 \xe2\x82 \xed\xa0\x80 \xf4\x90\x80\x80",
        "unicode h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80",
        "nonprint \xc2\xa0nbsp \xc2\x85nel \xe2\x80\x8bzwsp \xef\xbb\xbf bom \xc2\xad shy",
        "",
    };
    const size_t nv = sizeof vals / sizeof vals[0];
    size_t biglen = 100000;
    char *big = malloc(biglen + 1);
    for (size_t i = 0; i < biglen; i++)
        big[i] = (char)('a' + i % 26);
    big[biglen] = '\0';

    goro__prof *p = goro__prof_new("special");
    assert_rc(goro__prof_add_type(p, "ty\"pe\n", "un\xffit"), 0);
    assert_rc(goro__prof_add_comment(p, vals[1]), 0);
    assert_rc(goro__prof_add_comment(p, big), 0);
    char nkey[16][8];
    for (size_t i = 0; i < nv; i++) {
        uintptr_t s[] = {P.alpha, P.beta};
        s[1] += i; /* distinct stacks */
        snprintf(nkey[i], sizeof nkey[i], "n%zu", i); /* one unit per key */
        goro__prof_label l[2] = {{vals[i], vals[(i + 1) % nv], 0, NULL},
                                 {nkey[i], NULL, (int64_t)i - 3, vals[i]}};
        int64_t v = (int64_t)i + 1;
        assert_rc(goro__prof_add_sample(p, s, 2, false, &v, l, 2), 0);
    }
    {
        goro__prof_label l = {"big", big, 0, NULL};
        uintptr_t s[] = {P.gamma};
        int64_t v = 100;
        assert_rc(goro__prof_add_sample(p, s, 1, false, &v, &l, 1), 0);
    }
    size_t len;
    unsigned char *gz = encode(p, &len);
    pprofile pp;
    pp_decode(&pp, gz, len);
    pp_check_structure(&pp);
    assert_true(pp_streq(&pp, pp.stype[0][0], "ty\"pe\n"));
    assert_true(pp_streq(&pp, pp.stype[0][1], "un\xffit"));
    assert_true(pp_streq(&pp, pp.comments.v[0], vals[1]));
    assert_true(pp_streq(&pp, pp.comments.v[1], big));
    for (size_t i = 0; i < nv; i++) {
        const psample *s = &pp.samples[i];
        assert_int_equal(s->nlabels, 2);
        assert_true(pp_streq(&pp, s->labels[0].key, vals[i]));
        assert_true(pp_streq(&pp, s->labels[0].str, vals[(i + 1) % nv]));
        assert_int_equal(s->labels[1].num, (int64_t)i - 3);
        assert_true(pp_streq(&pp, s->labels[1].unit, vals[i]));
    }
    assert_true(pp_streq(&pp, pp.samples[nv].labels[0].str, big));
    pp_free(&pp);
    if (have_go) {
        char path[256];
        save("special.pb.gz", gz, len, path, sizeof path);
        char *r = pprof("-raw", path);
        assert_non_null(strstr(r, "Comment: nl\nline\ttab"));
        assert_non_null(strstr(r, "quote\" back\\slash:[nl\nline"));
        free(r);
    }
    free(gz);

    /* Text: labels quoted exactly like Go's strconv.Quote. */
    char *text = goro__prof_encode_text_counts(p);
    assert_non_null(text);
    if (gohelper[0]) {
        /* Go's quoting of every key, value and numeric value. */
        char *in[3 * 16];
        char nums[16][24];
        for (size_t i = 0; i < nv; i++) {
            snprintf(nums[i], sizeof nums[i], "%d", (int)i - 3);
            in[3 * i] = (char *)vals[i];
            in[3 * i + 1] = (char *)vals[(i + 1) % nv];
            in[3 * i + 2] = nums[i];
        }
        char **q = go_batch("quote", in, 3 * nv);
        for (size_t i = 0; i < nv; i++) {
            const char *qk = q[3 * i], *qv = q[3 * i + 1], *qn = q[3 * i + 2];
            size_t need = strlen(qk) + strlen(qv) + strlen(qn) + 64;
            char *a = malloc(need), *b = malloc(need), *want = malloc(2 * need);
            snprintf(a, need, "%s:%s", qk, qv);
            snprintf(b, need, "\"n%zu\":%s", i, qn);
            /* Sorted like Go's sort.Strings. */
            if (strcmp(a, b) <= 0)
                snprintf(want, 2 * need, "# labels: {%s, %s}\n", a, b);
            else
                snprintf(want, 2 * need, "# labels: {%s, %s}\n", b, a);
            assert_true_msg(strstr(text, want), "labels line '%s' not in text", want);
            free(a);
            free(b);
            free(want);
        }
        for (size_t i = 0; i < 3 * nv; i++)
            free(q[i]);
        free(q);
        char *raw = collapse_tabs(text);
        check_against_go_tabwriter(text, raw, strlen(raw), "special");
        free(raw);
    }
    free(text);
    goro__prof_free(p);
    free(big);

    /* Kinds that exercise the tabwriter: a tab, a vertical tab, an escaped
     * segment (0xff ... 0xff, a tab inside it), an escape never closed. */
    static const char *kinds[] = {"we\tird", "v\vtab", "esc\377a\tb\377z", "open\377esc",
                                  "x\xc3\xa9\t\xe4\xb8\x96"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        goro__prof *q = build_goroutine_profile(kinds[i]);
        char *t = goro__prof_encode_text_counts(q);
        assert_non_null(t);
        if (gohelper[0]) {
            /* Go's input: the header as Fprintf writes it, then the rest
             * of our output unpadded. */
            const char *rest = strstr(t, " profile: total 13");
            assert_non_null(rest);
            rest = strchr(rest, '\n');
            assert_non_null(rest);
            char *tail = collapse_tabs(rest + 1);
            size_t need = strlen(kinds[i]) + strlen(tail) + 64;
            char *in = malloc(need);
            int n = snprintf(in, need, "%s profile: total 13\n%s", kinds[i], tail);
            char tag[16];
            snprintf(tag, sizeof tag, "kind%zu", i);
            check_against_go_tabwriter(t, in, (size_t)n, tag);
            free(in);
            free(tail);
        }
        free(t);
        goro__prof_free(q);
    }
}

/* Run the Go helper in `mode` ("tabs" or "quote") over n strings at once;
 * returns the n results (tabs: decoded bytes; quote: the quoted text). */
static char **go_batch(const char *mode, char **in, size_t n)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s-batch", tmpdir, mode);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *c = (const unsigned char *)in[i]; *c; c++)
            fprintf(f, "%02x", *c);
        fputc('\n', f);
    }
    assert_int_equal(fclose(f), 0);
    cmd_result r = run_cmd("%s %s %s", gohelper, mode, path);
    assert_int_equal(r.status, 0);
    char **out = calloc(n, sizeof *out);
    char *line = r.out;
    for (size_t i = 0; i < n; i++) {
        /* strtok_r would skip the empty lines of empty results. */
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        if (strcmp(mode, "tabs") == 0) {
            size_t l = strlen(line) / 2;
            out[i] = malloc(l + 1);
            for (size_t k = 0; k < l; k++) {
                unsigned v;
                sscanf(line + 2 * k, "%2x", &v);
                out[i][k] = (char)v;
            }
            out[i][l] = '\0';
        } else {
            out[i] = strdup(line);
        }
        line = nl + 1;
    }
    cmd_free(&r);
    return out;
}

static char *random_text(gt_rng *r, const char *const *atoms, size_t natoms, uint32_t max)
{
    uint32_t n = gt_rng_below(r, max + 1);
    char *s = calloc(1, (size_t)n * 16 + 1);
    for (uint32_t i = 0; i < n; i++)
        strcat(s, atoms[gt_rng_below(r, (uint32_t)natoms)]);
    return s;
}

/* Differential tests against Go itself: random text through our tabwriter
 * (a profile's kind is the first thing written through it) and random
 * label values through our %q, compared with Go's text/tabwriter and
 * strconv.Quote. */
static void test_go_differential(void **st)
{
    (void)st;
    if (!gohelper[0]) {
        fprintf(stderr, "note: no Go helper: differential checks skipped\n");
        return;
    }
    enum { N = 1000 };
    gt_rng r;
    gt_rng_seed(&r, 7);
    static const char *const tw_atoms[] = {
        "a", "bb", "ccc", "dddddddddd", "0x55d5c1234567", "\xc3\xa9", "\xe4\xb8\x96\xe7\x95\x8c",
        "\xf0\x9f\x98\x80", "\t", "\t", "\t", "\t", "\v", "\f", "\n", "\n", "\n", "\377", " ",
        "\xe2\x82", "\xc3", "#",
    };
    char *kinds[N], *go_in[N], *ours[N];
    for (int i = 0; i < N; i++) {
        kinds[i] = random_text(&r, tw_atoms, sizeof tw_atoms / sizeof tw_atoms[0], 40);
        go_in[i] = malloc(strlen(kinds[i]) + 32);
        sprintf(go_in[i], "%s profile: total 0\n", kinds[i]);
        goro__prof *p = goro__prof_new(kinds[i]);
        assert_non_null(p);
        ours[i] = goro__prof_encode_text_counts(p);
        assert_non_null(ours[i]);
        goro__prof_free(p);
    }
    char **want = go_batch("tabs", go_in, N);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        if (strcmp(ours[i], want[i]) != 0 && bad++ < 5) {
            print_error("tabwriter differs for input:");
            for (const char *c = go_in[i]; *c; c++)
                print_error(" %02x", (unsigned char)*c);
            print_error("\n");
        }
        free(kinds[i]);
        free(go_in[i]);
        free(ours[i]);
        free(want[i]);
    }
    free(want);
    assert_true_msg(bad == 0, "%d of %d tabwriter outputs differ from Go's", bad, N);

    static const char *const q_atoms[] = {
        "a", "Z", " ", "\"", "\\", "\n", "\t", "\r", "\a", "\b", "\f", "\v", "\x01", "\x1f",
        "\x7f", "\x80", "\xff", "\xc3\xa9", "\xc2\xa0", "\xc2\x85", "\xc2\xad", "\xe2\x80\x8b",
        "\xe2\x80\xa8", "\xef\xbb\xbf", "\xee\x80\x80", "\xf0\x9f\x98\x80", "\xf3\xa0\x80\x81",
        "\xf4\x8f\xbf\xbf", "\xed\xa0\x80", "\xe0\x80\x80", "\xef\xbf\xbd", "\xef\xbf\xbe",
        "\xe4\xb8\x96", "\xc0\xaf", "\xf5", "\xe1\x9a\x80", "\xe3\x80\x80", "\xd8\x80",
    };
    char *vals[N];
    for (int i = 0; i < N; i++) {
        vals[i] = random_text(&r, q_atoms, sizeof q_atoms / sizeof q_atoms[0], 12);
        if (!vals[i][0]) { /* an empty value is legal; tested elsewhere */
            free(vals[i]);
            vals[i] = strdup("x");
        }
    }
    char **q = go_batch("quote", vals, N);
    bad = 0;
    for (int i = 0; i < N; i++) {
        goro__prof *p = goro__prof_new("goroutine");
        assert_rc(goro__prof_add_type(p, "goroutine", "count"), 0);
        goro__prof_label l = {"k", vals[i], 0, NULL};
        int64_t v = 1;
        assert_rc(goro__prof_add_sample(p, &P.alpha, 1, false, &v, &l, 1), 0);
        char *t = goro__prof_encode_text_counts(p);
        assert_non_null(t);
        size_t need = strlen(q[i]) + 32;
        char *w = malloc(need);
        snprintf(w, need, "\n# labels: {\"k\":%s}\n", q[i]);
        if (!strstr(t, w) && bad++ < 5)
            print_error("quote differs: go %s, ours in:\n%s\n", q[i], t);
        free(w);
        free(t);
        goro__prof_free(p);
        free(vals[i]);
        free(q[i]);
    }
    free(q);
    assert_true_msg(bad == 0, "%d of %d quoted labels differ from Go's strconv.Quote", bad, N);
}

/* ------------------------------------------------------------------------- */
/* Size and speed                                                             */
/* ------------------------------------------------------------------------- */

/* The executable's code: from _init (crti.o, first in .init) to etext. */
extern void _init(void);
extern char etext[];

static void test_big(void **st)
{
    (void)st;
    const size_t nsamples = 100000, nlocs = 10000;
    uintptr_t lo = (uintptr_t)&_init, hi = (uintptr_t)etext;
    assert_true(lo < (uintptr_t)&gtp_ret && (uintptr_t)&gtp_ret < hi);
    uintptr_t span = hi - lo;
    assert_true(span > nlocs);
    uintptr_t *addrs = malloc(nlocs * sizeof *addrs);
    for (size_t i = 0; i < nlocs; i++)
        addrs[i] = lo + 1 + (span - 2) * i / nlocs;

    goro__prof *p = goro__prof_new("goroutine");
    assert_rc(goro__prof_add_type(p, "samples", "count"), 0);
    assert_rc(goro__prof_add_type(p, "cpu", "nanoseconds"), 0);
    goro__prof_set_period(p, "cpu", "nanoseconds", 10000000);
    goro__prof_set_time(p, (int64_t)time(NULL) * 1000000000, 1000000000);
    gt_rng r;
    gt_rng_seed(&r, 42);
    char lv[100][16];
    for (int i = 0; i < 100; i++)
        snprintf(lv[i], sizeof lv[i], "worker-%d", i);
    int64_t total = 0;
    int64_t t0 = gt_mono_ns();
    for (size_t i = 0; i < nsamples; i++) {
        uintptr_t s[16];
        uint32_t depth = 4 + gt_rng_below(&r, 13);
        for (uint32_t k = 0; k < depth; k++)
            s[k] = addrs[gt_rng_below(&r, (uint32_t)nlocs)];
        int64_t v[2] = {1 + (int64_t)gt_rng_below(&r, 5), 0};
        v[1] = v[0] * 10000000;
        total += v[0];
        goro__prof_label l[2] = {{"worker", lv[i % 100], 0, NULL},
                                 {"size", NULL, (int64_t)(i % 7) * 512, "bytes"}};
        assert_rc(goro__prof_add_sample(p, s, depth, i % 3 == 0, v, l, i % 10 == 0 ? 0 : 2), 0);
    }
    int64_t t1 = gt_mono_ns();
    unsigned char *gz = NULL;
    size_t len = 0;
    /* Cold: the first symbolization of most of these addresses. */
    assert_rc(goro__prof_encode_proto(p, &gz, &len), 0);
    int64_t t2 = gt_mono_ns();
    free(gz);
    assert_rc(goro__prof_encode_proto(p, &gz, &len), 0);
    int64_t t3 = gt_mono_ns();
    char *text = goro__prof_encode_text_counts(p);
    int64_t t4 = gt_mono_ns();
    assert_non_null(text);
    size_t textlen = strlen(text);
    free(text);
    fprintf(stderr,
            "timing: 100k samples, %zu locations: add %.1f ms, proto %.1f ms (first), %.1f ms "
            "(again), %zu bytes gzipped; text %.1f ms, %zu bytes\n",
            nlocs, (t1 - t0) / 1e6, (t2 - t1) / 1e6, (t3 - t2) / 1e6, len, (t4 - t3) / 1e6,
            textlen);
    assert_true_msg(t3 - t2 < gt_slow(1000000000), "proto encoding took %.1f ms",
                    (t3 - t2) / 1e6);
    assert_true_msg(t2 - t1 < gt_slow(2000000000), "first proto encoding took %.1f ms",
                    (t2 - t1) / 1e6);

    pprofile pp;
    pp_decode(&pp, gz, len);
    pp_check_structure(&pp);
    assert_int_equal(pp.nsamples, nsamples);
    /* ~10k addresses, some as exact leaves too (pc and pc - 1). */
    assert_true(pp.nlocs >= nlocs && pp.nlocs <= 2 * nlocs);
    int64_t sum = 0;
    for (size_t i = 0; i < pp.nsamples; i++)
        sum += (int64_t)pp.samples[i].vals.v[0];
    assert_int_equal(sum, total);
    pp_free(&pp);
    if (have_go) {
        char path[256];
        save("big.pb.gz", gz, len, path, sizeof path);
        char want[128];
        int64_t tp0 = gt_mono_ns();
        /* Some of these addresses are in PLT stubs and padding, which
         * nothing can name: the main mapping is then not marked
         * has_functions and pprof would re-symbolize all 10k addresses
         * with addr2line (~14 s); that path is tested on a small profile
         * (test_proto_unsymbolized). */
        char *top = pprof("-symbolize=none -sample_index=samples -top", path);
        fprintf(stderr, "timing: go tool pprof -top on it: %.1f ms\n", (gt_mono_ns() - tp0) / 1e6);
        snprintf(want, sizeof want, "Total samples = %" PRId64 " \n", total);
        assert_true_msg(strstr(top, want), "no '%s' in\n%.400s", want, top);
        snprintf(want, sizeof want, "%% of %" PRId64 " total\n", total);
        assert_true_msg(strstr(top, want), "no '%s' in\n%.400s", want, top);
        free(top);
    }
    free(gz);
    free(addrs);
    goro__prof_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_proto_goroutine),
        cmocka_unit_test(test_proto_unsymbolized),
        cmocka_unit_test(test_proto_heap),
        cmocka_unit_test(test_proto_empty),
        cmocka_unit_test(test_text_counts),
        cmocka_unit_test(test_text_heap),
        cmocka_unit_test(test_special_strings),
        cmocka_unit_test(test_go_differential),
        cmocka_unit_test(test_big),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
