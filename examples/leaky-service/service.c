/*
 * service.c - the story, as a goro service.
 *
 * A Go microservice kept restarting out of memory. Its /work handler "set
 * up background processing" by calling RunAsync(), which started a
 * goroutine that sent its result on an unbuffered channel - and the
 * handler ignored the channel. Every request left a goroutine blocked
 * forever on `ch <- result`, holding its stack.
 *
 * This is that service on goro's HTTP server, with the three variants:
 *   --mode leak   /work calls run_async() and ignores the channel (the bug)
 *   --mode fixed  /work starts one goroutine that does the work and handles
 *                 the result itself (the story's fix, option 2)
 *   --mode wait   /work hands run_async()'s channel to a goroutine that
 *                 receives from it (option 1)
 * goro's diagnostics are mounted on the same port, Go style:
 * /debug/pprof/..., /debug/goro/leaks, /metrics; /stats counts requests.
 *
 *   build/examples/leaky-service --listen 127.0.0.1:8080 --mode leak
 */
#include <goro.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct result {
    int value;
} result;

static _Atomic long requests;

/* Pretend work: a little computation. */
static result do_something(void)
{
    unsigned x = 12345;
    for (int i = 0; i < 200; i++)
        x = x * 1103515245u + 12345u;
    return (result){.value = (int)(x % 1000)};
}

static void async_worker(void *arg)
{
    goro_chan *ch = arg;
    result r = do_something();
    goro_chan_send(ch, &r); /* blocks until someone receives */
    goro_chan_release(ch);
}

/* The story's RunAsync: start the work, hand back the channel its result
 * will arrive on. */
static goro_chan *run_async(void)
{
    goro_chan *ch;
    if (goro_chan_make(&ch, sizeof(result), 0) != 0)
        return NULL;
    goro_go(async_worker, goro_chan_retain(ch));
    return ch;
}

/* Option 2: one goroutine does the work and deals with the result itself. */
static void background(void *arg)
{
    (void)arg;
    result r = do_something();
    if (r.value < 0)
        fprintf(stderr, "background work failed\n");
}

/* Option 1: someone receives the result. */
static void consume(void *arg)
{
    goro_chan *ch = arg;
    result r;
    goro_chan_recv(ch, &r, NULL);
    goro_chan_release(ch);
}

typedef enum { MODE_LEAK, MODE_FIXED, MODE_WAIT } mode;
static mode the_mode = MODE_LEAK;

static void handle_work(goro_http_response *w, goro_http_request *r, void *arg)
{
    (void)r;
    (void)arg;
    atomic_fetch_add(&requests, 1);
    switch (the_mode) {
    case MODE_LEAK: {
        goro_chan *ch = run_async(); /* "set up background processing" ... */
        goro_chan_release(ch);       /* ... and forget the channel: the bug */
        break;
    }
    case MODE_FIXED:
        goro_go(background, NULL);
        break;
    case MODE_WAIT:
        goro_go(consume, run_async());
        break;
    }
    goro_http_response_send(w, 200, "text/plain; charset=utf-8", "ok\n", 3);
}

static void handle_stats(goro_http_response *w, goro_http_request *r, void *arg)
{
    (void)r;
    (void)arg;
    char buf[64];
    int n = snprintf(buf, sizeof buf, "requests %ld\n", atomic_load(&requests));
    goro_http_response_send(w, 200, "text/plain; charset=utf-8", buf, (size_t)n);
}

static const char *listen_addr = "127.0.0.1:8080";
static int exit_code;
static goro_http_server *server;
static goro_chan *stop;

static void serve(void *arg)
{
    goro_listener *l = arg;
    int rc = goro_http_serve(server, l);
    if (rc)
        fprintf(stderr, "leaky-service: serve: %s\n", strerror(-rc));
    goro_chan_close(stop);
}

/* SIGINT/SIGTERM: the handler only writes to a pipe (async-signal-safe); a
 * goroutine reads it through goro's poller and starts the shutdown. */
static int signal_pipe[2];

static void on_signal(int sig)
{
    (void)sig;
    char c = 1;
    ssize_t r = write(signal_pipe[1], &c, 1);
    (void)r;
}

static void signal_waiter(void *arg)
{
    goro_conn *c = arg;
    char b;
    goro_conn_read(c, &b, 1, GORO_NO_DEADLINE, NULL);
    goro_chan_close(stop);
    goro_conn_close(c);
}

static void run(void *arg)
{
    (void)arg;
    goro_http_mux *mux;
    goro_http_mux_create(&mux);
    goro_http_mux_handle(mux, "/work", handle_work, NULL);
    goro_http_mux_handle(mux, "/stats", handle_stats, NULL);
    goro_debug_mount(mux);
    goro_http_server_opts o = {.handler = goro_http_mux_serve, .handler_arg = mux};
    if (goro_http_server_create(&o, &server) != 0)
        return;
    goro_chan_make(&stop, 0, 1);
    goro_conn *sigconn;
    if (pipe(signal_pipe) == 0 && goro_conn_from_fd(signal_pipe[0], &sigconn) == 0) {
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        goro_go(signal_waiter, sigconn);
    }
    goro_listener *l;
    int rc = goro_listen_tcp(listen_addr, 0, &l);
    if (rc) {
        fprintf(stderr, "leaky-service: cannot listen on %s: %s\n", listen_addr, strerror(-rc));
        exit_code = 1;
        return;
    }
    char addr[64] = "?";
    goro_listener_addr(l, addr, sizeof addr);
    goro_go(serve, l);
    /* One line on stdout with the real address (port 0 picks a free one). */
    printf("leaky-service: mode %s listening on http://%s\n",
           the_mode == MODE_LEAK ? "leak" : the_mode == MODE_FIXED ? "fixed" : "wait", addr);
    fflush(stdout);
    goro_chan_recv(stop, NULL, NULL);
    goro_http_server_shutdown(server, goro_deadline_after(2 * GORO_SECOND));
    /* Leaked goroutines are discarded when main returns, as in Go. */
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--listen") && i + 1 < argc) {
            listen_addr = argv[++i];
        } else if (!strcmp(argv[i], "--mode") && i + 1 < argc) {
            const char *m = argv[++i];
            the_mode = !strcmp(m, "leak")    ? MODE_LEAK
                       : !strcmp(m, "fixed") ? MODE_FIXED
                       : !strcmp(m, "wait")  ? MODE_WAIT
                                             : (fprintf(stderr, "unknown mode %s\n", m), exit(2), MODE_LEAK);
        } else {
            fprintf(stderr, "usage: %s [--listen HOST:PORT] [--mode leak|fixed|wait]\n", argv[0]);
            return 2;
        }
    }
    if (goro_run(run, NULL, NULL) != 0)
        return 1;
    return exit_code;
}
