/*
 * tailcall_o2.c - a goroutine function whose blocking call is a tail call,
 * for test_leak's watchdog test. Built at -O2 with sibling calls on
 * (tests/CMakeLists.txt), whatever flags goro's target hands its users: the
 * function's frame is gone while it waits, and the return address saved in
 * goro_chan_send's frame points into goro's goroutine entry.
 */
#include <goro.h>

void lk_tail_sender(void *arg);

static const int tail_value = 7;

void lk_tail_sender(void *arg)
{
    goro_chan_send((goro_chan *)arg, &tail_value);
}
