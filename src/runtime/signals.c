/*
 * signals.c - the runtime's signal handling.
 *
 * Owns: SIGSEGV/SIGBUS (a stack overflow - the running goroutine's stack
 * pointer is below its stack, or the fault is in its guard or lowest page,
 * see goro__stack_fault_culprit; or a goroutine on another thread running
 * with its canary overwritten - is reported as "goroutine N (created at
 * FILE:LINE) overflowed its stack" and exits 2; any other fault is passed
 * on to the handler that was installed before goro_run, after one line
 * naming the goroutine that faulted), SIGQUIT (ask sysmon to print the
 * goroutine dump, like Go), and one alternate signal stack per runtime
 * thread so the fault handler can run when a goroutine's stack is
 * exhausted. docs/signals.md lists every signal goro touches.
 * Handlers are installed by goro_run and restored when it returns.
 * Everything reachable from a handler is async-signal-safe.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#include "runtime/sched.h"

#define ALTSTACK_SIZE (64 * 1024)

static struct sigaction old_segv, old_bus, old_quit;
static bool installed;

static void chain(int sig, siginfo_t *si, void *uc)
{
    struct sigaction *old = sig == SIGSEGV ? &old_segv : &old_bus;
    if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction) {
        old->sa_sigaction(sig, si, uc);
        return;
    }
    if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
        old->sa_handler(sig);
        return;
    }
    /* Default action: reinstall it and return; the fault happens again. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
}

/* The interrupted stack pointer; the fault address where unknown. */
static uintptr_t fault_sp(void *ucv, uintptr_t addr)
{
    (void)addr;
#if defined(__x86_64__)
    return (uintptr_t)((ucontext_t *)ucv)->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    return (uintptr_t)((ucontext_t *)ucv)->uc_mcontext.sp;
#else
    (void)ucv;
    return addr;
#endif
}


static void fault_handler(int sig, siginfo_t *si, void *uc)
{
    uintptr_t addr = (uintptr_t)si->si_addr;
    goro__m *m = goro__getm();
    goro__g *cur = m ? m->curg : NULL;
    uintptr_t sp = fault_sp(uc, addr);
    /* C code that goro_blocking runs on the thread's own stack, or a signal
     * handler on the signal stack, cannot have overflowed cur's stack. */
    bool off_stack = m && ((sp >= m->g0_lo && sp < m->g0_hi) ||
                           (m->altstack && sp >= (uintptr_t)m->altstack &&
                            sp < (uintptr_t)m->altstack + ALTSTACK_SIZE));
    goro__g *g = off_stack ? NULL : goro__stack_fault_culprit(cur, sp, addr);
    if (g)
        goro__stack_overflow_report(g); /* exits */
    /* Damage from a canary-only stack that is overflowing on another
     * thread? Name that goroutine, not only the one that faulted. */
    g = goro__stack_overrun_running();
    if (g) {
        if (g != cur) {
            static const char pre[] = "goro: fatal signal in goroutine ";
            static const char post[] = " while another running goroutine had overwritten the "
                                       "canary of its stack:\n";
            char num[24];
            size_t n = cur ? goro__fmt_u64(num, cur->base.id) : 0;
            goro__write_all(2, pre, sizeof pre - 1);
            goro__write_all(2, cur ? num : "(none)", cur ? n : 6);
            goro__write_all(2, post, sizeof post - 1);
        }
        goro__stack_overflow_report(g); /* exits */
    }
    if (m && m->curg) {
        static const char msg[] = "goro: fatal signal in goroutine ";
        char num[24];
        size_t n = goro__fmt_u64(num, m->curg->base.id);
        goro__write_all(2, msg, sizeof msg - 1);
        goro__write_all(2, num, n);
        if (m->curg->info.file) {
            goro__write_all(2, " created at ", 12);
            goro__write_all(2, m->curg->info.file, strlen(m->curg->info.file));
        }
        goro__write_all(2, "\n", 1);
    }
    chain(sig, si, uc);
}

static void quit_handler(int sig)
{
    (void)sig;
    goro__sysmon_request_dump();
}

int goro__sigaction_save(int sig, const struct sigaction *sa, struct sigaction *old)
{
    if (sigaction(sig, sa, old) != 0)
        return -errno;
    sigset_t clean;
    memset(&clean, 0, sizeof clean); /* glibc's sigemptyset clears only the first word */
    sigemptyset(&clean);
    for (int s = 1; s < SIGRTMAX + 1; s++)
        if (sigismember(&old->sa_mask, s) == 1)
            sigaddset(&clean, s);
    old->sa_mask = clean;
    return 0;
}

int goro__signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fault_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    int rc = goro__sigaction_save(SIGSEGV, &sa, &old_segv);
    if (rc == 0)
        rc = goro__sigaction_save(SIGBUS, &sa, &old_bus);
    if (rc != 0)
        return rc;
    struct sigaction q;
    memset(&q, 0, sizeof q);
    q.sa_handler = quit_handler;
    q.sa_flags = SA_RESTART;
    sigemptyset(&q.sa_mask);
    if ((rc = goro__sigaction_save(SIGQUIT, &q, &old_quit)) != 0)
        return rc;
    installed = true;
    return 0;
}

void goro__signals_restore(void)
{
    if (!installed)
        return;
    sigaction(SIGSEGV, &old_segv, NULL);
    sigaction(SIGBUS, &old_bus, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    installed = false;
}

int goro__m_altstack_init(goro__m *m)
{
    m->altstack = malloc(ALTSTACK_SIZE);
    if (!m->altstack)
        return -ENOMEM;
    stack_t ss = {.ss_sp = m->altstack, .ss_size = ALTSTACK_SIZE, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        free(m->altstack);
        m->altstack = NULL;
        return -errno;
    }
    return 0;
}

void goro__m_altstack_fini(goro__m *m)
{
    if (!m->altstack)
        return;
    stack_t ss = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    free(m->altstack);
    m->altstack = NULL;
}
