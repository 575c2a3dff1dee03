/*
 * test_overflow.c - goroutine stack overflow detection (goro.h "Stack
 * overflow", docs/stacks.md), with and without guard pages.
 *
 * Every overflow runs in a child: the test re-executes /proc/self/exe with
 * GORO_TEST_SCENARIO=<name> and the GORO_STACK_GUARD setting under test
 * (util.h gt_child_start), then checks the child's exit status and stderr
 * here, in the test function. Nothing is asserted inside a goroutine.
 *
 * Covered:
 *  - guarded stacks (MADV_GUARD_INSTALL where the kernel has it, else
 *    mprotect; and GORO_STACK_GUARD=mprotect): deep recursion and one frame
 *    larger than the guard page (probed page by page: -fstack-clash-protection)
 *    are reported, naming the goroutine and its creation site;
 *  - canary-only stacks (GORO_STACK_GUARD=canary, and max=0: the guard
 *    budget used up): an overflow that overwrites the canary and returns is
 *    reported at the goroutine's next switch; a runaway recursion is
 *    reported when it reaches the guard page below its region; the report
 *    says the stack had no guard page; running out of guards warns once;
 *  - GORO_STACK_GUARD=strict: stacks are guarded, and once no guard is left
 *    the runtime stops with a fatal error instead of handing out an
 *    unguarded stack;
 *  - a malformed GORO_STACK_GUARD makes goro_run fail with -EINVAL.
 *
 * Not covered, by design (docs/stacks.md, "what is not detected"): on a
 * canary-only stack, a frame that skips the canary word, and an overflow by
 * a goroutine that never switches again, go unreported.
 */
#define _GNU_SOURCE
#include "util.h"

#include <alloca.h>
#include <limits.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define MS GORO_MILLISECOND
#define STACK_SIZE (64 * 1024)

/* ========================================================================= */
/* Child scenarios                                                            */
/* ========================================================================= */

/* ---- unbounded recursion with ordinary (sub-page) frames ----------------- */

static volatile int recurse_limit = INT_MAX; /* hides the recursion's end */

static int __attribute__((noinline)) recurse(int depth, volatile char *prev)
{
    volatile char buf[200];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)(depth + (int)i);
    __asm__ volatile("" ::: "memory");
    int r = depth < recurse_limit ? recurse(depth + 1, buf) : 0;
    return r + buf[depth % sizeof buf] + (prev ? prev[1] : 0); /* no tail call */
}

static void recurse_fn(void *arg)
{
    (void)arg;
    gt_say("OVERFLOW_ID %llu\n", (unsigned long long)goro_id());
    recurse(0, NULL);
}

/* ---- one large frame, then a switch -------------------------------------- */

/* Allocate and fill one block reaching from just below this frame down to
 * about `target`: on a guarded stack the allocation's page probes fault in
 * the guard page; on a canary-only stack the block overwrites the canary
 * and the dead page below it, and the function returns normally. */
static void __attribute__((noinline)) fill_down_to(uintptr_t target)
{
    uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
    size_t n = fp - target - 512;
    char *block = alloca(n);
    memset(block, 0x5a, n);
    __asm__ volatile("" : : "r"(block) : "memory");
}

static void bigframe_fn(void *arg)
{
    (void)arg;
    gt_say("OVERFLOW_ID %llu\n", (unsigned long long)goro_id());
    /* This frame is within the top page of the stack slot (only the
     * goroutine record and the start trampoline lie above it), so the slot
     * ends at the next page boundary; its lowest page (guard page or, on a
     * canary-only stack, dead zone) starts STACK_SIZE below that. Aim at
     * the middle of that page. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
    uintptr_t slot_end = (fp + page) & ~(uintptr_t)(page - 1);
    uintptr_t target = slot_end - STACK_SIZE + page / 2;
    fill_down_to(target);
    gt_say("RETURNED\n"); /* a canary-only stack gets here */
    goro_sleep(MS);    /* a switch: the canary is checked */
    gt_say("NOT DETECTED\n");
}

/* The reports must name the goro_go call on the line after each enum. */
enum { RECURSE_SPAWN_LINE = __LINE__ + 1 };
static int spawn_recurse(void) { return goro_go(recurse_fn, NULL); }
enum { BIGFRAME_SPAWN_LINE = __LINE__ + 1 };
static int spawn_bigframe(void) { return goro_go(bigframe_fn, NULL); }

static void recurse_main(void *arg)
{
    (void)arg;
    spawn_recurse();
    goro_sleep(30 * GORO_SECOND);
}

static void bigframe_main(void *arg)
{
    (void)arg;
    spawn_bigframe();
    goro_sleep(30 * GORO_SECOND);
}

/* ---- strict mode running out of guarded stacks ---------------------------- */

static goro_chan *never;

static void blocker(void *arg)
{
    (void)arg;
    goro_chan_recv(never, NULL, NULL);
    __asm__ volatile("" ::: "memory");
}

static void exhaust_main(void *arg)
{
    (void)arg;
    if (goro_chan_make(&never, 0, 0) != 0)
        return;
    for (int i = 0; i < 200; i++) {
        goro_go(blocker, NULL);
        goro_sleep(0);
        if (i % 10 == 0)
            gt_say("SPAWNED %d\n", i);
    }
    gt_say("ALL RUNNING\n"); /* must not be reached with strict,max=16 */
    goro_sleep(30 * GORO_SECOND);
}

static void nop_main(void *arg) { (void)arg; }

static int run_scenario(const char *sc)
{
    /* One P: goroutine 2 gets the slot just below goroutine 1's (stacks are
     * handed out from the top of a P's cache), so a runaway overflow on a
     * canary-only stack runs through free slots only and reaches the
     * region's guard page. With more Ps it can run through a goroutine that
     * is running elsewhere, which may then crash first (docs/stacks.md). */
    goro_options o = gt_opts(1);
    o.stack_size = STACK_SIZE;
    o.flags = GORO_NO_DEADLOCK_CHECK;
    int rc;
    if (strcmp(sc, "recurse") == 0) {
        rc = goro_run(recurse_main, NULL, &o);
    } else if (strcmp(sc, "bigframe") == 0) {
        rc = goro_run(bigframe_main, NULL, &o);
    } else if (strcmp(sc, "exhaust") == 0) {
        rc = goro_run(exhaust_main, NULL, &o);
    } else if (strcmp(sc, "run") == 0) {
        rc = goro_run(nop_main, NULL, &o);
        gt_say("RC %d\n", rc);
        return 0;
    } else {
        fprintf(stderr, "unknown scenario '%s'\n", sc);
        return 97;
    }
    fprintf(stderr, "UNEXPECTED: goro_run returned %d in scenario '%s'\n", rc, sc);
    return 99;
}

/* ========================================================================= */
/* Parent side                                                                */
/* ========================================================================= */

static const char NOTE[] = "this stack had no guard page";
static const char WARN[] = "no guard page left for another goroutine stack";

static void run_child(gt_child *c, const char *scenario, const char *guard)
{
    char env[128];
    snprintf(env, sizeof env, "GORO_STACK_GUARD=%s", guard ? guard : "");
    const char *const extra[] = {env, NULL};
    int rc = gt_child_start(c, scenario, guard ? extra : NULL);
    assert_rc(rc, 0);
    gt_child_finish(c, gt_slow(30 * GORO_SECOND));
    if (c->timed_out) {
        gt_child_print(c, scenario);
        fail_msg("%s: child did not exit within the time limit (killed)", scenario);
    }
}

static void expect(const gt_child *c, const char *label, const char *what, bool ok)
{
    if (!ok) {
        gt_child_print(c, label);
        fail_msg("%s: expected %s", label, what);
    }
}

static void expect_exit(const gt_child *c, const char *label, int code)
{
    char buf[96], what[160];
    snprintf(what, sizeof what, "exit status %d, got %s", code,
             gt_status_str(c->status, buf, sizeof buf));
    expect(c, label, what, WIFEXITED(c->status) && WEXITSTATUS(c->status) == code);
}

/* The overflow report: exit status 2, "goroutine N (created at
 * test_overflow.c:LINE ...) overflowed its stack of B bytes" for the
 * goroutine that printed OVERFLOW_ID N, and "fatal error: stack overflow";
 * canary: whether the stack is expected to have had no guard page. */
static void expect_report(const gt_child *c, const char *label, int spawn_line, bool canary)
{
    expect_exit(c, label, 2);
    unsigned long long id = 0;
    const char *p = strstr(c->out, "OVERFLOW_ID ");
    expect(c, label, "OVERFLOW_ID on stdout", p && sscanf(p, "OVERFLOW_ID %llu", &id) == 1);
    char who[96];
    snprintf(who, sizeof who, "goroutine %llu (created at ", id);
    const char *line = strstr(c->err, who);
    expect(c, label, who, line != NULL);
    char site[64];
    snprintf(site, sizeof site, "test_overflow.c:%d", spawn_line);
    const char *eol = strchr(line, '\n');
    const char *at = strstr(line, site);
    expect(c, label, "the creation site in the report line", at && (!eol || at < eol));
    const char *ov = strstr(line, ") overflowed its stack of ");
    expect(c, label, "\"overflowed its stack of\" in the report line", ov && (!eol || ov < eol));
    expect(c, label, "fatal error: stack overflow",
           strstr(c->err, "fatal error: stack overflow\n") != NULL);
    expect(c, label, canary ? "the no-guard-page note" : "no no-guard-page note",
           (strstr(c->err, NOTE) != NULL) == canary);
    expect(c, label, "no UNEXPECTED line", strstr(c->err, "UNEXPECTED") == NULL);
}

/* Default layers: MADV_GUARD_INSTALL (Linux 6.13+) or mprotect guards. */
static void test_recursion_guarded(void **st)
{
    (void)st;
    gt_child c;
    run_child(&c, "recurse", NULL);
    expect_report(&c, "recurse (default)", RECURSE_SPAWN_LINE, false);
    expect(&c, "recurse (default)", "no warning", strstr(c.err, WARN) == NULL);
    gt_child_free(&c);
}

static void test_recursion_mprotect(void **st)
{
    (void)st;
    gt_child c;
    run_child(&c, "recurse", "mprotect");
    expect_report(&c, "recurse (mprotect)", RECURSE_SPAWN_LINE, false);
    gt_child_free(&c);
}

/* A frame much larger than the guard page does not jump it: the
 * allocation is probed page by page (-fstack-clash-protection). */
static void test_bigframe_guarded(void **st)
{
    (void)st;
    gt_child c;
    run_child(&c, "bigframe", NULL);
    expect_report(&c, "bigframe (default)", BIGFRAME_SPAWN_LINE, false);
    expect(&c, "bigframe (default)", "the fault before the frame returned",
           strstr(c.out, "RETURNED") == NULL);
    gt_child_free(&c);
}

/* Canary-only: the overflow completes unnoticed and is caught at the next
 * switch. */
static void test_bigframe_canary_at_switch(void **st)
{
    (void)st;
    gt_child c;
    run_child(&c, "bigframe", "canary");
    expect_report(&c, "bigframe (canary)", BIGFRAME_SPAWN_LINE, true);
    expect(&c, "bigframe (canary)", "RETURNED (no fault: there is no guard page)",
           strstr(c.out, "RETURNED") != NULL);
    expect(&c, "bigframe (canary)", "detection at the switch",
           strstr(c.out, "NOT DETECTED") == NULL);
    expect(&c, "bigframe (canary)", "no warning when canary was asked for",
           strstr(c.err, WARN) == NULL);
    gt_child_free(&c);
}

/* Canary-only, runaway: caught at the guard page below the region, and
 * blamed on the goroutine whose stack pointer is there. */
static void test_recursion_canary_runaway(void **st)
{
    (void)st;
    gt_child c;
    run_child(&c, "recurse", "canary");
    expect_report(&c, "recurse (canary)", RECURSE_SPAWN_LINE, true);
    gt_child_free(&c);
}

/* The default layers with the guard budget used up (as past ~24k stacks on
 * a kernel before 6.13): one warning, then canary-only stacks. */
static void test_budget_exhausted_warns(void **st)
{
    (void)st;
    gt_child c;
    run_child(&c, "bigframe", "max=0");
    expect_report(&c, "bigframe (max=0)", BIGFRAME_SPAWN_LINE, true);
    expect(&c, "bigframe (max=0)", "exactly one warning", gt_count_substr(c.err, WARN) == 1);
    gt_child_free(&c);

    run_child(&c, "recurse", "mprotect,max=0");
    expect_report(&c, "recurse (mprotect,max=0)", RECURSE_SPAWN_LINE, true);
    expect(&c, "recurse (mprotect,max=0)", "exactly one warning",
           gt_count_substr(c.err, WARN) == 1);
    gt_child_free(&c);
}

static void test_strict(void **st)
{
    (void)st;
    gt_child c;
    /* Within the limit every stack is guarded. */
    run_child(&c, "recurse", "mprotect,strict,max=16");
    expect_report(&c, "recurse (strict)", RECURSE_SPAWN_LINE, false);
    gt_child_free(&c);

    /* Past it: a fatal error, never an unguarded stack. */
    run_child(&c, "exhaust", "mprotect,strict,max=16");
    expect(&c, "exhaust (strict)", "death by SIGABRT (goro's fatal error)",
           WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGABRT);
    expect(&c, "exhaust (strict)", "the strict-mode message",
           strstr(c.err, "GORO_STACK_GUARD=strict: no free goroutine stack has a guard page") != NULL);
    expect(&c, "exhaust (strict)", "that it stopped before all goroutines ran",
           strstr(c.out, "ALL RUNNING") == NULL);
    expect(&c, "exhaust (strict)", "no canary-only stack", strstr(c.err, WARN) == NULL);
    gt_child_free(&c);
}

static void test_bad_setting(void **st)
{
    (void)st;
    static const char *const bad[] = {"bogus", "canary,strict", "max=", "max=-1", "max=1x",
                                      "mprotect,,nope"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gt_child c;
        run_child(&c, "run", bad[i]);
        expect_exit(&c, bad[i], 0);
        expect(&c, bad[i], "RC -22", strstr(c.out, "RC -22\n") != NULL);
        expect(&c, bad[i], "the message naming GORO_STACK_GUARD",
               strstr(c.err, "GORO_STACK_GUARD must be") != NULL);
        gt_child_free(&c);
    }
    static const char *const good[] = {"auto", "mprotect", "canary", "strict", "max=5",
                                       "mprotect,strict,max=100"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        gt_child c;
        run_child(&c, "run", good[i]);
        expect_exit(&c, good[i], 0);
        expect(&c, good[i], "RC 0", strstr(c.out, "RC 0\n") != NULL);
        gt_child_free(&c);
    }
}

int main(void)
{
    const char *sc = gt_child_scenario();
    if (sc)
        return run_scenario(sc);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recursion_guarded),
        cmocka_unit_test(test_recursion_mprotect),
        cmocka_unit_test(test_bigframe_guarded),
        cmocka_unit_test(test_bigframe_canary_at_switch),
        cmocka_unit_test(test_recursion_canary_runaway),
        cmocka_unit_test(test_budget_exhausted_warns),
        cmocka_unit_test(test_strict),
        cmocka_unit_test(test_bad_setting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
