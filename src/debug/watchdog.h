/*
 * watchdog.h - the leak watchdog's hooks for the runtime (watchdog.c):
 * goro_run calls goro__watchdog_start before the first goroutine (the
 * environment is read, the census switched on or off), sysmon calls
 * goro__watchdog_tick on every wake-up, goro_run's teardown calls
 * goro__watchdog_reset.
 */
#ifndef GORO_DEBUG_WATCHDOG_H
#define GORO_DEBUG_WATCHDOG_H

#include <stdint.h>

void goro__watchdog_start(void); /* goro_run, before any goroutine */
void goro__watchdog_tick(int64_t now);
void goro__watchdog_reset(void);

#endif /* GORO_DEBUG_WATCHDOG_H */
