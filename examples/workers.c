/*
 * workers.c - a worker pool with a deadline, and what goro shows you about
 * goroutines that are stuck.
 *
 * A feeder goroutine sends jobs to a buffered channel; a pool of workers
 * handles them and sends results back; a context with a timeout bounds the
 * whole batch, and every goroutine selects on the context's done channel so
 * the batch stops cleanly when time is up. Then one goroutine is deliberately left blocked forever
 * on a channel nobody will ever receive from - the classic leak - and the
 * program prints goro's dump of all goroutines, which names it, the line it
 * is blocked on and the line that created it.
 *
 *   build/examples/workers [JOBS] [WORKERS]
 */
#include <goro.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct pool {
    goro_chan *jobs;    /* int job numbers */
    goro_chan *results; /* long results */
    goro_ctx *ctx;
    goro_waitgroup wg;
} pool;

static long work(int job)
{
    long acc = 0;
    for (int i = 0; i <= job % 1000; i++)
        acc += (long)i * job;
    return acc;
}

static void worker(void *arg)
{
    pool *p = arg;
    for (;;) {
        int job;
        goro_select_case cs[2] = {
            {.ch = p->jobs, .op = GORO_SELECT_RECV, .elem = &job},
            {.ch = goro_ctx_done(p->ctx), .op = GORO_SELECT_RECV},
        };
        int i = goro_select(cs, 2, 0, GORO_NO_DEADLINE);
        if (i != 0 || !cs[0].ok)
            break; /* cancelled, or no more jobs */
        long r = work(job);
        goro_select_case out[2] = {
            {.ch = p->results, .op = GORO_SELECT_SEND, .elem = &r},
            {.ch = goro_ctx_done(p->ctx), .op = GORO_SELECT_RECV},
        };
        if (goro_select(out, 2, 0, GORO_NO_DEADLINE) != 0)
            break;
    }
    goro_waitgroup_done(&p->wg);
}

static void forgotten(void *arg)
{
    goro_chan *reply = arg;
    int answer = 42;
    goro_chan_send(reply, &answer); /* nobody receives: blocked forever */
}

typedef struct opts {
    int jobs, workers;
} opts;

typedef struct feeder_arg {
    pool *p;
    int jobs;
} feeder_arg;

/* Send the jobs, stop early if the context ends, then close the queue. */
static void feeder(void *arg)
{
    feeder_arg *f = arg;
    for (int job = 0; job < f->jobs; job++) {
        goro_select_case cs[2] = {
            {.ch = f->p->jobs, .op = GORO_SELECT_SEND, .elem = &job},
            {.ch = goro_ctx_done(f->p->ctx), .op = GORO_SELECT_RECV},
        };
        if (goro_select(cs, 2, 0, GORO_NO_DEADLINE) != 0)
            break;
    }
    goro_chan_close(f->p->jobs);
}

static void run(void *arg)
{
    opts *o = arg;
    pool p = {.wg = GORO_WAITGROUP_INIT};
    goro_chan_make(&p.jobs, sizeof(int), 64);
    goro_chan_make(&p.results, sizeof(long), 64);
    goro_ctx_with_timeout(NULL, 2 * GORO_SECOND, &p.ctx);

    goro_waitgroup_add(&p.wg, o->workers);
    for (int i = 0; i < o->workers; i++)
        goro_go_named(worker, &p, "worker");
    feeder_arg f = {.p = &p, .jobs = o->jobs};
    goro_go(feeder, &f);

    long total = 0;
    int got = 0;
    while (got < o->jobs) {
        long r;
        goro_select_case cs[2] = {
            {.ch = p.results, .op = GORO_SELECT_RECV, .elem = &r},
            {.ch = goro_ctx_done(p.ctx), .op = GORO_SELECT_RECV},
        };
        if (goro_select(cs, 2, 0, GORO_NO_DEADLINE) != 0)
            break; /* deadline */
        total += r;
        got++;
    }
    int err = goro_ctx_err(p.ctx);
    goro_ctx_cancel(p.ctx); /* stops the workers and the feeder */
    goro_waitgroup_wait(&p.wg);
    printf("%d of %d jobs done by %d workers (checksum %ld)%s\n", got, o->jobs, o->workers,
           total, err == -ETIMEDOUT ? ", stopped by the 2 s deadline" : "");

    /* The leak: a reply channel nobody reads. */
    goro_chan *reply;
    goro_chan_make(&reply, sizeof(int), 0);
    goro_go(forgotten, goro_chan_retain(reply));
    goro_chan_release(reply);
    goro_sleep(10 * GORO_MILLISECOND);
    printf("\n%zu goroutines alive; goro's dump of them (one is leaked):\n\n",
           goro_num_goroutines());
    fflush(stdout);
    goro_dump(1);

    goro_ctx_release(p.ctx);
    goro_chan_release(p.jobs);
    goro_chan_release(p.results);
}

int main(int argc, char **argv)
{
    opts o = {.jobs = argc > 1 ? atoi(argv[1]) : 10000, .workers = argc > 2 ? atoi(argv[2]) : 8};
    if (o.jobs <= 0 || o.workers <= 0) {
        fprintf(stderr, "usage: %s [JOBS>0] [WORKERS>0]\n", argv[0]);
        return 2;
    }
    return goro_run(run, &o, NULL) != 0;
}
