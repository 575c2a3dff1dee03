/*
 * cpuprof.h - the CPU profiler's internal interface (cpuprof.c).
 */
#ifndef GORO_PROF_CPUPROF_H
#define GORO_PROF_CPUPROF_H

#include "runtime/internal.h"

struct goro__m;

#define GORO__CPU_MAX_DEPTH 64

/* Start sampling every runtime thread at `hz` (1..1000; Go uses 100).
 * Errors: -EBUSY a profile is already being taken; -ESRCH runtime not
 * running; timer errors. */
int goro__cpuprof_start(int hz);
/* Stop sampling (idempotent). Samples still buffered remain readable. */
void goro__cpuprof_stop(void);
bool goro__cpuprof_active(void);

/* Move buffered samples out: fn(pcs, npc, arg) per sample (pcs[0] is the
 * interrupted pc itself, the rest return addresses). Returns the number of
 * samples lost to full buffers since the start. Only the thread that
 * started the profile may drain it. */
typedef void (*goro__cpu_sample_fn)(const uintptr_t *pcs, uint32_t npc, void *arg);
uint64_t goro__cpuprof_drain(goro__cpu_sample_fn fn, void *arg);

/* Runtime threads call these when they start and exit. */
void goro__cpuprof_thread_start(struct goro__m *m);
void goro__cpuprof_thread_stop(struct goro__m *m);

#endif /* GORO_PROF_CPUPROF_H */
