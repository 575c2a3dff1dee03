/*
 * leakconfirm.h - the watchdog's second tier (leakconfirm.c): goro's
 * confirmation thread, which runs rate-limited reachability scans for the
 * watchdog and hands each result to goro__watchdog_settle.
 */
#ifndef GORO_DEBUG_LEAKCONFIRM_H
#define GORO_DEBUG_LEAKCONFIRM_H

#include <stdbool.h>
#include <stdint.h>

/* Ask for a scan (from the watchdog's pass, on sysmon; wd.lock not held).
 * The scan starts at once when the last one ended at least
 * max(interval, 100 x its duration) ago, else when that time comes.
 * Starts the thread on first use; never waits for a scan. Ignored between
 * goro__confirm_stop and the next goro__confirm_allow. */
void goro__confirm_kick(int64_t interval);

/* goro_run, before the first goroutine: kicks are accepted again. */
void goro__confirm_allow(void);

/* goro_run's teardown, before anything a scan reads is freed: refuse
 * kicks, wake the thread, wait for a scan in progress and join it. */
void goro__confirm_stop(void);

/* The confirmation thread's tid and stack while it runs (false when it
 * does not): the scan stops it like sysmon and does not scan its frames. */
bool goro__confirm_thread(int *tid, uintptr_t *lo, uintptr_t *hi);

/* Scans run by the thread since the process started. */
uint64_t goro__confirm_scans(void);

#endif /* GORO_DEBUG_LEAKCONFIRM_H */
