/*
 * symbolize.h - program counters to function, file and line (inline-aware),
 * at dump/profile-writing time only: never in a signal handler or on a
 * malloc path. Backed by libbacktrace (BSD, shipped with gcc), which reads
 * the DWARF of the executable and of loaded shared objects.
 */
#ifndef GORO_SYMBOLIZE_H
#define GORO_SYMBOLIZE_H

#include "runtime/g.h"
#include "runtime/internal.h"

#define GORO__SYM_INLINE_MAX 4

typedef struct goro__sym_frame {
    const char *func; /* NULL if unknown */
    const char *file; /* NULL if unknown */
    int line;
} goro__sym_frame;

/* One address: its inline chain, innermost first; the last frame is the
 * function the address physically belongs to. Strings are owned by the
 * symbolizer and live for the whole process. */
typedef struct goro__sym {
    uintptr_t pc;
    uintptr_t entry; /* start of the containing function, 0 if unknown */
    uint32_t nframes;
    goro__sym_frame frames[GORO__SYM_INLINE_MAX];
} goro__sym;

/* Look up an address (for a return address, pass pc - 1). Always fills
 * out; nframes >= 1 (func NULL when nothing is known). */
void goro__symbolize(uintptr_t pc, goro__sym *out);

/* A cache for writing many stacks (dumps and profiles repeat addresses). */
typedef struct goro__symcache goro__symcache;
goro__symcache *goro__symcache_new(void);
const goro__sym *goro__symcache_get(goro__symcache *c, uintptr_t pc);
void goro__symcache_free(goro__symcache *c);

/* "FILE:LINE in FUNC" for a goroutine's creation site (from goro_go's
 * __FILE__/__LINE__ when present, else from the creation stack). */
void goro__format_site(char *buf, size_t len, const goro__spawn_info *info);

#endif /* GORO_SYMBOLIZE_H */
