/*
 * fork.h - fork() in a process running goro (fork.c; include/goro.h "Fork",
 * docs/fork.md).
 */
#ifndef GORO_FORK_H
#define GORO_FORK_H

#include <stdbool.h>

/* True in a process forked (directly or through its ancestors) while the
 * runtime was active: goro_run fails there with -ECHILD. Async-signal-safe. */
bool goro__fork_in_child(void);

#endif /* GORO_FORK_H */
