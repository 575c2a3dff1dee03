/*
 * watchdog.h - the leak watchdog's hooks for the runtime (watchdog.c):
 * goro_run calls goro__watchdog_start before the first goroutine (the
 * environment is read, the census switched on or off), sysmon calls
 * goro__watchdog_tick on every wake-up, goro_run's teardown calls
 * goro__watchdog_stop (the confirmation thread is joined: nothing reads
 * the runtime's records any more) and then goro__watchdog_reset. The
 * confirmation thread (leakconfirm.c) hands each scan's result to
 * goro__watchdog_settle.
 */
#ifndef GORO_DEBUG_WATCHDOG_H
#define GORO_DEBUG_WATCHDOG_H

#include <stdbool.h>
#include <stdint.h>

void goro__watchdog_start(void); /* goro_run, before any goroutine */
void goro__watchdog_tick(int64_t now);
void goro__watchdog_stop(void);  /* teardown, before sysmon stops */
void goro__watchdog_reset(void);

struct goro__scan_result;
/* A scan started at t_start (goro__nanotime) ended with rc and r: give
 * the suspects that waited for it their verdict. */
void goro__watchdog_settle(int rc, const struct goro__scan_result *r, int64_t t_start);

/* Whether the watchdog is on (GORO_WATCHDOG / goro_watchdog_configure). */
bool goro__watchdog_enabled(void);

/* For /metrics and /debug/goro/leaks: "suspected", "confirmed",
 * "reachable", "unverified" (goro_leak_state), "?" otherwise. */
const char *goro__leak_state_str(unsigned state);

#endif /* GORO_DEBUG_WATCHDOG_H */
