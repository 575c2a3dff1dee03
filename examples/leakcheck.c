/*
 * leakcheck.c - layer 1 of goro's leak detection: the test-time check.
 *
 * A "unit test" of the story's handler logic: call it a few times, return,
 * and let goro_run_checked (goleak's VerifyTestMain) look for goroutines
 * left behind. With the bug, each call leaves one goroutine blocked on
 * `send` forever and the check names where it blocks and who created it;
 * with --fixed the caller receives the result and the check passes.
 *
 *   build/examples/leakcheck           exits 1 and prints the leak report
 *   build/examples/leakcheck --fixed   exits 0
 */
#include <goro.h>
#include <stdio.h>
#include <string.h>

static void worker(void *arg)
{
    goro_chan *ch = arg;
    int result = 42;
    goro_chan_send(ch, &result); /* blocks until someone receives */
    goro_chan_release(ch);
}

/* The story's RunAsync: returns the channel the result will arrive on. */
static goro_chan *run_async(void)
{
    goro_chan *ch;
    if (goro_chan_make(&ch, sizeof(int), 0) != 0)
        return NULL;
    goro_go(worker, goro_chan_retain(ch));
    return ch;
}

static bool fixed;

/* The code under test: the handler "sets up background processing". */
static void handle_request(void)
{
    goro_chan *ch = run_async();
    if (!ch)
        return;
    if (fixed) {
        int v;
        bool ok;
        goro_chan_recv(ch, &v, &ok);
    }
    goro_chan_release(ch); /* the bug: nobody will ever receive */
}

static void test_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        handle_request();
}

int main(int argc, char **argv)
{
    fixed = argc > 1 && strcmp(argv[1], "--fixed") == 0;
    goro_leak_report *report = NULL;
    int rc = goro_run_checked(test_main, NULL, NULL, NULL, &report);
    if (rc != 0) {
        fprintf(stderr, "goro_run_checked: %s\n", strerror(-rc));
        return 2;
    }
    if (report) {
        fputs(report->message, stdout);
        goro_leak_report_free(report);
        return 1;
    }
    printf("no goroutine leaked\n");
    return 0;
}
