/*
 * goinfo.h - symbolized descriptions of goroutines, shared by the leak
 * check, the watchdog and the leak profile: frames, the "top" user frame,
 * file names as users want to read them, and the report text.
 */
#ifndef GORO_DEBUG_GOINFO_H
#define GORO_DEBUG_GOINFO_H

#include "runtime/g.h"
#include "runtime/symbolize.h"

/* One frame of pc (a return address unless exact). */
void goro__frame_of(goro__symcache *c, uintptr_t pc, bool exact, goro_frame *out);

/* Fill info from a snapshot (frames point into c's strings; arrays are
 * malloc'd and released by goro__goinfo_release). now: goro_now(). */
int goro__goinfo_from_snap(goro__symcache *c, const goro__gsnap *s, int64_t now,
                           goro_goroutine_info *info);
void goro__goinfo_release(goro_goroutine_info *info);

/* The innermost frame outside goro's own functions (NULL if none). */
const goro_frame *goro__goinfo_top(const goro_goroutine_info *info);

/* A file name for humans: relative to the working directory when below
 * it, else as compiled. */
const char *goro__short_file(const char *file);

/* The usual cause of a goroutine blocked for good for this wait reason,
 * and the fix (a static string, or NULL). When the wait is on a channel
 * whose capacity is known (on_chan), the send hint tells the story's
 * unbuffered send from a send on a full buffer. A hint, not a diagnosis. */
const char *goro__leak_hint(unsigned reason, bool on_chan, size_t cap);

/* "512 B", "4.0 KiB", "5.3 MiB", "1.2 GiB" into buf. */
void goro__fmt_bytes(char *buf, size_t len, uint64_t bytes);

/* "3s", "250ms", "4m", "1h2m" into buf. */
void goro__fmt_duration(char *buf, size_t len, int64_t ns);

#endif /* GORO_DEBUG_GOINFO_H */
