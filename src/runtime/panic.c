/*
 * panic.c - the internal assert/panic: "goro: fatal: MSG (goroutine N,
 * FILE:LINE)" on stderr, then abort(). For broken runtime invariants only;
 * bad input from users gets an error code instead.
 */
#include "runtime/chaos.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "runtime/sched.h"

int goro__write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

size_t goro__fmt_u64(char *buf, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

void goro__panic_at(const char *file, int line, const char *fmt, ...)
{
    char msg[512], out[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    goro__m *m = goro__getm();
    unsigned long long gid = (m && m->curg) ? (unsigned long long)m->curg->base.id : 0;
    int n = snprintf(out, sizeof out, "goro: fatal: %s (goroutine %llu, %s:%d)\n", msg, gid, file,
                     line);
    if (n > 0)
        goro__write_all(2, out, (size_t)n < sizeof out ? (size_t)n : sizeof out - 1);
#ifdef GORO_CHAOS
    goro__chaos_print_seed();
#endif
    abort();
}
