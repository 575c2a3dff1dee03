/*
 * test_cxx.cc - goro.h from C++: the header compiles as C++ (this file, at
 * the project's C++ standard, with the project's warnings as errors), and a
 * C++ program can run goroutines, channels, a mutex and a waitgroup, and
 * start them with goro_go / goro_go_named (compound literals in C; an
 * inline helper in C++). tests/cxx_header.sh checks the header alone with
 * g++ and clang++ at -std=c++11, c++17 and c++20.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include <cmocka.h>
}
#include <goro.h>

#include <atomic>
#include <cstring>

namespace {

goro_mutex mu = GORO_MUTEX_INIT;
goro_waitgroup wg = GORO_WAITGROUP_INIT;
int counter;

struct state {
    goro_chan *ch, *gate;
    int got;
    int rc;
    bool named_seen; /* a goroutine named "from-c++" was listed, blocked */
};

void adder(void *arg)
{
    (void)arg;
    goro_mutex_lock(&mu);
    counter++;
    goro_mutex_unlock(&mu);
    goro_waitgroup_done(&wg);
}

void sender(void *arg)
{
    goro_chan *ch = static_cast<goro_chan *>(arg);
    int v = 42;
    goro_chan_send(ch, &v);
    goro_chan_release(ch);
}

void namer(void *arg)
{
    state *s = static_cast<state *>(arg);
    int v;
    bool ok;
    goro_chan_recv(s->gate, &v, &ok); /* until main closes it */
    goro_waitgroup_done(&wg);
}

/* Is a goroutine named "from-c++" blocked now? (A leak-check snapshot.) */
bool named_blocked()
{
    goro_leak_opts o{};
    o.retries = -1;
    goro_leak_report *r = nullptr;
    bool seen = false;
    if (goro_leak_find(&o, &r) == 0 && r) {
        for (size_t i = 0; i < r->count; i++)
            seen |= r->goroutines[i].name && !std::strcmp(r->goroutines[i].name, "from-c++") &&
                    r->goroutines[i].blocked;
        goro_leak_report_free(r);
    }
    return seen;
}

void cxx_main(void *arg)
{
    state *s = static_cast<state *>(arg);
    s->rc = goro_chan_make(&s->ch, sizeof(int), 0);
    if (s->rc)
        return;
    s->rc = goro_go(sender, goro_chan_retain(s->ch));
    if (s->rc)
        return;
    bool ok = false;
    s->rc = goro_chan_recv(s->ch, &s->got, &ok);
    goro_chan_release(s->ch);
    goro_waitgroup_add(&wg, 101);
    for (int i = 0; i < 100 && s->rc == 0; i++)
        s->rc = goro_go(adder, nullptr);
    if (s->rc == 0)
        s->rc = goro_chan_make(&s->gate, sizeof(int), 0);
    if (s->rc == 0)
        s->rc = goro_go_named(namer, s, "from-c++");
    int64_t end = goro_deadline_after(10 * GORO_SECOND);
    while (s->rc == 0 && !(s->named_seen = named_blocked()) && goro_now() < end)
        goro_sleep(GORO_MILLISECOND);
    if (s->gate) {
        goro_chan_close(s->gate);
        goro_chan_release(s->gate);
    }
    goro_waitgroup_wait(&wg);
}

void test_cxx_program(void **st)
{
    (void)st;
    state s{};
    int rc = goro_run(cxx_main, &s, nullptr);
    assert_int_equal(rc, 0);
    assert_int_equal(s.rc, 0);
    assert_int_equal(s.got, 42);
    assert_int_equal(counter, 100);
    assert_true(s.named_seen);
}

} // namespace

int main()
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cxx_program),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
