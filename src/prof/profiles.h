/*
 * profiles.h - goro's named profiles, rendered in Go's formats
 * (profiles.c). Used by the debug HTTP server and by goro_write_profile.
 */
#ifndef GORO_PROF_PROFILES_H
#define GORO_PROF_PROFILES_H

#include "runtime/sched.h" /* goro__sink */

typedef struct goro__profile_desc {
    const char *name;
    const char *doc; /* one-line description (the index page) */
} goro__profile_desc;

/* goroutine, heap, allocs, threadcreate, block, mutex, goroutineleak;
 * terminated by a NULL name. */
extern const goro__profile_desc goro__profiles[];

/* Render profile `name`. debug 0: gzipped profile.proto; 1: Go's legacy
 * text; 2: the goroutine dump shape (goroutine, goroutineleak; other
 * profiles treat it as 1). seconds > 0 (debug 0 only): the difference over
 * that many seconds (sleeps; call from a goroutine). On success *out is a
 * malloc'd buffer of *len bytes and *ctype its content type.
 * stream (may be NULL): a debug >= 2 dump is instead written through
 * stream(buf, len, stream_arg) as it is produced (*out NULL, *len 0): a
 * million goroutines make a dump of ~300 MB that is then never held whole.
 * Everything that can fail before the first byte (unknown profile, the
 * leak scan) fails before stream is first called.
 * Errors: -ENOENT unknown profile; -EINVAL debug/seconds combination;
 * -EPERM not in a goroutine; -ENOMEM; the stream's error; others from the
 * collectors. */
int goro__profile_render(const char *name, int debug, int64_t seconds, goro__sink stream,
                         void *stream_arg, unsigned char **out, size_t *len, const char **ctype);

/* Number of entries the index page shows for a profile (-1: n/a). */
long goro__profile_count(const char *name);

/* A CPU profile over `seconds` (proto). -EBUSY: another one is running. */
int goro__cpu_profile_render(int64_t seconds, unsigned char **out, size_t *len);

#endif /* GORO_PROF_PROFILES_H */
