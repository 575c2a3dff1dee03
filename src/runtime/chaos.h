/*
 * chaos.h - schedule perturbation for testing (cmake -DGORO_CHAOS=ON).
 *
 * A race window is the stretch between two steps of a wait/wake protocol
 * (check then park, unlock then wake, publish then wakep, ...). On a quiet
 * machine such windows last nanoseconds and a lost wake-up hides for
 * months. In a chaos build every window is marked with GORO__CHAOS(site);
 * each mark, with a probability drawn from a seeded per-thread generator,
 * stretches the window: a few pause instructions, a sched_yield, or a
 * 1-50 us sleep of the OS thread. GORO__CHAOS_G() marks points where the
 * calling goroutine holds no runtime lock and may also be rescheduled
 * (goro_yield, which may move it to another thread).
 *
 * The seed comes from GORO_CHAOS_SEED (decimal) or the clock; it is printed
 * on stderr at runtime start ("goro: chaos seed N") and again by the fatal
 * error paths, so a failing run can be replayed with the same seed (the
 * interleaving also depends on the OS, so a replay raises the odds rather
 * than guaranteeing the same schedule). GORO_CHAOS_RATE (1..1000, default
 * 50) is the per-mille probability that a mark perturbs.
 *
 * In ordinary builds the marks compile to nothing.
 */
#ifndef GORO_CHAOS_H
#define GORO_CHAOS_H

#ifdef GORO_CHAOS
void goro__chaos(unsigned site);
void goro__chaos_g(unsigned site);
unsigned long long goro__chaos_seed(void);
void goro__chaos_print_seed(void);
#define GORO__CHAOS(site) goro__chaos(site)
#define GORO__CHAOS_G(site) goro__chaos_g(site)
#else
#define GORO__CHAOS(site) ((void)0)
#define GORO__CHAOS_G(site) ((void)0)
#endif

/* Sites: they name the window at each mark; the engine treats all alike. */
enum {
    GORO__CH_LOCK = 1,      /* before taking a runtime spinlock */
    GORO__CH_UNLOCK,        /* after releasing one */
    GORO__CH_PARK,          /* between queuing a waiter and parking */
    GORO__CH_COMMIT,        /* after the switch, before the commit unlock */
    GORO__CH_CLAIM,         /* between claiming a waiter and readying it */
    GORO__CH_READY,         /* before publishing a readied goroutine */
    GORO__CH_WAKEP,         /* before deciding whether to wake a thread */
    GORO__CH_TIMER,         /* before a timer callback */
    GORO__CH_NETPOLL,       /* between poller wake-up and hand-off */
    GORO__CH_SELECT,        /* in select's lock / relock */
    GORO__CH_REF,           /* around a reference drop */
    GORO__CH_WAKE,          /* in a goroutine just woken */
    GORO__CH_CHECK,         /* between announcing oneself and checking a flag (Dekker) */
};

#endif /* GORO_CHAOS_H */
