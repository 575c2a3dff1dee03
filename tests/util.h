/*
 * util.h - shared helpers for goro's cmocka test groups.
 *
 * Rules every test in this directory follows:
 *  - cmocka asserts are made only on the test's own thread (the thread that
 *    called goro_run, after it returned), never inside a goroutine or another
 *    thread: cmocka reports failures with longjmp. Goroutines record what
 *    they saw into a state struct; the test function checks it afterwards.
 *  - Heavy tests are scaled down under sanitizers (gt_scale) and say so on
 *    stderr.
 *  - Timing checks are strict only where the contract is strict ("never
 *    before the deadline") and use medians over several tries for "not much
 *    later than the deadline".
 */
#ifndef GORO_TEST_UTIL_H
#define GORO_TEST_UTIL_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <cmocka.h>

#include "goro.h"

/* ------------------------------------------------------------------------- */
/* Sanitizer detection (gcc: __SANITIZE_*__, clang: __has_feature)           */
/* ------------------------------------------------------------------------- */

#if defined(__SANITIZE_ADDRESS__)
#define GT_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define GT_TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(GT_ASAN)
#define GT_ASAN 1
#endif
#if __has_feature(thread_sanitizer) && !defined(GT_TSAN)
#define GT_TSAN 1
#endif
#endif
#ifndef GT_ASAN
#define GT_ASAN 0
#endif
#ifndef GT_TSAN
#define GT_TSAN 0
#endif
#define GT_SANITIZED (GT_ASAN || GT_TSAN)

/* "AddressSanitizer", "ThreadSanitizer" or NULL when not sanitized. */
const char *gt_sanitizer_name(void);

/* Pick the size of a heavy test: plain / under ASan / under TSan. When the
 * result differs from plain, prints a line to stderr naming the test (what),
 * the sizes and the sanitizer responsible. */
size_t gt_scale(const char *what, size_t plain, size_t asan, size_t tsan);

/* Tolerance for "how late may a timer fire" checks (applied to the median
 * of several tries): 30 ms plain, more under sanitizers. */
int64_t gt_late_tolerance(void);

/* True when the process runs under valgrind (any tool). */
bool gt_under_valgrind(void);

/* Multiply a generous timeout or latency bound for slow runs: x3 under
 * ASan, x5 under TSan and under valgrind. */
int64_t gt_slow(int64_t ns);

/* ------------------------------------------------------------------------- */
/* Assertions (test thread only)                                              */
/* ------------------------------------------------------------------------- */

/* Symbolic name of a negative errno return ("-ETIMEDOUT"), or "0"/"value". */
const char *gt_errname(long long rc);

/* assert_int_equal for return codes, printing errno names on failure. */
#define assert_rc(actual, expected)                                            \
    do {                                                                       \
        long long gt_a_ = (long long)(actual);                                 \
        long long gt_e_ = (long long)(expected);                               \
        if (gt_a_ != gt_e_)                                                    \
            fail_msg("%s = %lld (%s), expected %lld (%s)", #actual, gt_a_,     \
                     gt_errname(gt_a_), gt_e_, gt_errname(gt_e_));             \
    } while (0)

/* Fail with a message unless cond holds. */
#define assert_true_msg(cond, ...)                                             \
    do {                                                                       \
        if (!(cond)) {                                                         \
            print_error("check failed: %s\n  ", #cond);                        \
            fail_msg(__VA_ARGS__);                                             \
        }                                                                      \
    } while (0)

/* ------------------------------------------------------------------------- */
/* Running the runtime                                                        */
/* ------------------------------------------------------------------------- */

/* Options with procs set (0 = default) and everything else default. */
goro_options gt_opts(int procs);

/* goro_run under a watchdog: if it has not returned after timeout_s seconds
 * (scaled by gt_slow, capped at 240 s), the watchdog prints what hung, dumps
 * the goroutines and aborts the process, so a hang is reported as such
 * instead of as a CTest timeout. */
int gt_run(const char *what, goro_fn main_fn, void *arg,
           const goro_options *opts, int timeout_s);

/* Inside a goroutine: sleep in 1 ms steps until *flag >= want or deadline;
 * returns true if reached. */
bool gt_wait_atomic_ge(atomic_long *flag, long want, int64_t timeout_ns);

/* Inside a goroutine: goro_waitgroup_wait_until with a generous deadline
 * (timeout_s seconds, scaled by gt_slow), so that goroutines the runtime
 * fails to wake show up as a failed check (-ETIMEDOUT) instead of as a
 * global-deadlock exit. */
int gt_wg_wait(goro_waitgroup *wg, int timeout_s);

/* Inside a goroutine: wait until goro_num_goroutines() == want. */
bool gt_wait_num_goroutines(size_t want, int64_t timeout_ns);

/* ------------------------------------------------------------------------- */
/* Time, statistics, randomness                                               */
/* ------------------------------------------------------------------------- */

/* CLOCK_MONOTONIC in ns (independent of goro). */
int64_t gt_mono_ns(void);
/* CPU time consumed by the whole process (all threads) in ns. */
int64_t gt_process_cpu_ns(void);
/* Median of n values (n > 0); v is not modified. */
int64_t gt_median_i64(const int64_t *v, size_t n);
double gt_median_double(const double *v, size_t n);

/* splitmix64 PRNG: tiny, seedable, per-goroutine state. */
typedef struct gt_rng {
    uint64_t s;
} gt_rng;
void gt_rng_seed(gt_rng *r, uint64_t seed);
uint64_t gt_rng_next(gt_rng *r);
/* Uniform in [0, n). */
uint32_t gt_rng_below(gt_rng *r, uint32_t n);

/* ------------------------------------------------------------------------- */
/* Memory                                                                     */
/* ------------------------------------------------------------------------- */

/* VmRSS of this process in KiB (from /proc/self/status), -1 on error. */
long gt_rss_kib(void);
/* Resident memory of the program itself in KiB: VmRSS without the
 * sanitizer's shadow memory (summed from /proc/self/smaps, leaving out the
 * x86-64 shadow ranges of ASan and of clang's TSan). Without sanitizers it
 * is gt_rss_kib(). If shadow_kib is not NULL the excluded amount is stored
 * there. -1 on error. */
long gt_rss_app_kib(long *shadow_kib);
/* /proc/sys/vm/max_map_count, -1 if unreadable. */
long gt_max_map_count(void);

/* ------------------------------------------------------------------------- */
/* Text                                                                       */
/* ------------------------------------------------------------------------- */

/* Read fd from offset 0 (if seekable) to EOF into a NUL-terminated malloc'd
 * buffer. NULL on error. */
char *gt_read_all_fd(int fd);
/* Number of non-overlapping occurrences of needle in hay. */
size_t gt_count_substr(const char *hay, const char *needle);

/* Find the header line of goroutine id in a Go-style dump:
 * "goroutine <id> [<reason>...]:" where the text inside the brackets starts
 * with reason followed by ']' or ',' (a wait time may follow the reason).
 * reason NULL matches any state. Returns a pointer to the start of the
 * header line or NULL. */
const char *gt_find_goroutine_header(const char *dump, uint64_t id,
                                     const char *reason);
/* Same, for any goroutine id. */
const char *gt_find_any_header(const char *dump, const char *reason);

/* Copy of the dump block (header up to the next blank line) starting at
 * header; malloc'd, NUL-terminated. */
char *gt_dump_block(const char *header);

/* ------------------------------------------------------------------------- */
/* Child processes (for behaviour that ends the process)                      */
/* ------------------------------------------------------------------------- */

/* Environment variable that selects a scenario in a re-executed test. */
#define GT_SCENARIO_ENV "GORO_TEST_SCENARIO"

/* At the top of main: if GT_SCENARIO_ENV is set, returns its value (the
 * process is a child and must run that scenario instead of cmocka). */
const char *gt_child_scenario(void);

/* In a child scenario: write one formatted line (at most 255 bytes) to fd 1
 * at once, unbuffered, for the parent to wait on. */
void gt_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

typedef struct gt_child {
    pid_t pid;
    int out_fd; /* child's stdout, -1 once at EOF */
    int err_fd; /* child's stderr, -1 once at EOF */
    char *out;
    size_t out_len, out_cap;
    char *err;
    size_t err_len, err_cap;
    bool reaped;
    bool timed_out; /* gt_child_finish had to kill it */
    int status;     /* waitpid status once reaped */
} gt_child;

/* Re-execute /proc/self/exe with GT_SCENARIO_ENV=scenario and the extra
 * "NAME=value" strings of extra_env (NULL-terminated, may be NULL). GORO_*
 * variables inherited from the test's environment are dropped so that the
 * child sees only what the scenario asks for; under ASan leak detection is
 * turned off in the child (it is meant to die). Returns 0 or -errno. */
int gt_child_start(gt_child *c, const char *scenario,
                   const char *const *extra_env);

/* Collect output until text appears on stream 1 (stdout) or 2 (stderr),
 * the child's output ends, or timeout_ns passes. Returns true if found. */
bool gt_child_wait_output(gt_child *c, int stream, const char *text,
                          int64_t timeout_ns);

/* Still running (not exited and not reaped)? Reaps it if it has exited. */
bool gt_child_alive(gt_child *c);

/* Collect all output and reap the child; if it is still running after
 * timeout_ns, kill it with SIGKILL (timed_out = true). */
void gt_child_finish(gt_child *c, int64_t timeout_ns);

/* Free buffers and close descriptors (kills the child if still running). */
void gt_child_free(gt_child *c);

/* Human-readable description of a waitpid status ("exit 2", "signal 9"). */
const char *gt_status_str(int status, char *buf, size_t len);

/* Print the captured output of a child to stderr (for failure diagnosis). */
void gt_child_print(const gt_child *c, const char *label);

#endif /* GORO_TEST_UTIL_H */
