/*
 * metrics.h - Prometheus text exposition of goro's and the process's
 * state (metrics.c).
 */
#ifndef GORO_DEBUG_METRICS_H
#define GORO_DEBUG_METRICS_H

#include "runtime/sched.h"

/* Append the exposition (format 0.0.4) to out. Returns 0 or -ENOMEM. */
int goro__metrics_render(goro__membuf *out);

#endif /* GORO_DEBUG_METRICS_H */
