/*
 * sieve.c - the concurrent prime sieve from the Go tour, in goro.
 *
 * A generator goroutine sends 2, 3, 4, ... on a channel; each prime found
 * adds a filter goroutine that drops the multiples of that prime. Every
 * number flows through a chain of goroutines connected by unbuffered
 * channels: thousands of rendezvous per prime, all on a few threads.
 *
 *   build/examples/sieve [N]     print the first N primes (default 20)
 */
#include <goro.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct filter_arg {
    goro_chan *in, *out;
    int prime;
} filter_arg;

static void generate(void *arg)
{
    goro_chan *out = arg;
    for (int i = 2;; i++)
        if (goro_chan_send(out, &i) != 0)
            break; /* closed: the consumer is done */
    goro_chan_release(out);
}

static void filter(void *arg)
{
    filter_arg *f = arg;
    int v;
    bool ok;
    while (goro_chan_recv(f->in, &v, &ok) == 0 && ok)
        if (v % f->prime != 0 && goro_chan_send(f->out, &v) != 0)
            break;
    /* Tell the stage before us to stop, and the one after us. */
    goro_chan_close(f->in);
    goro_chan_close(f->out);
    goro_chan_release(f->in);
    goro_chan_release(f->out);
    free(f);
}

static void run(void *arg)
{
    int n = *(int *)arg;
    goro_chan *ch;
    if (goro_chan_make(&ch, sizeof(int), 0) != 0)
        return;
    goro_go(generate, goro_chan_retain(ch));
    for (int i = 0; i < n; i++) {
        int prime;
        bool ok;
        if (goro_chan_recv(ch, &prime, &ok) != 0 || !ok)
            break;
        printf("%d\n", prime);
        goro_chan *next;
        filter_arg *f = malloc(sizeof *f);
        if (!f || goro_chan_make(&next, sizeof(int), 0) != 0) {
            free(f);
            break;
        }
        f->in = ch; /* our reference moves to the filter */
        f->out = goro_chan_retain(next);
        f->prime = prime;
        goro_go(filter, f);
        ch = next;
    }
    goro_chan_close(ch); /* unwinds the chain: every stage exits */
    goro_chan_release(ch);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20;
    if (n <= 0) {
        fprintf(stderr, "usage: %s [N>0]\n", argv[0]);
        return 2;
    }
    int rc = goro_run(run, &n, NULL);
    if (rc != 0)
        fprintf(stderr, "goro_run: %d\n", rc);
    return rc != 0;
}
