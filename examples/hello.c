/*
 * hello.c - a small HTTP server on goro's HTTP/1.1 API.
 *
 *   build/examples/hello [--listen HOST:PORT] [--procs N]
 *
 * Listens on 127.0.0.1:8080 by default (port 0 picks a free port) and prints
 * "listening on http://ADDR/" once it accepts connections. Routes:
 *   GET /        "hello\n" (Content-Length set)
 *   POST /echo   the request body, back (Content-Length when the request
 *                had one, chunked otherwise)
 * SIGINT or SIGTERM shuts it down gracefully (requests in flight finish,
 * within 5 seconds).
 *
 * bench/run.sh drives it (and its Go twin, bench/go/httpd) with wrk.
 */
#include <goro.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    (void)sig;
    char b = 1;
    ssize_t n = write(sig_pipe[1], &b, 1);
    (void)n;
}

static void hello(goro_http_response *w, goro_http_request *r, void *arg)
{
    (void)arg;
    if (strcmp(goro_http_request_path(r), "/") != 0) {
        goro_http_error(w, 404, "404 page not found");
        return;
    }
    const char *m = goro_http_request_method(r);
    if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
        goro_http_response_set_header(w, "Allow", "GET, HEAD");
        goro_http_error(w, 405, NULL);
        return;
    }
    goro_http_response_send(w, 200, "text/plain; charset=utf-8", "hello\n", 6);
}

static void echo(goro_http_response *w, goro_http_request *r, void *arg)
{
    (void)arg;
    if (strcmp(goro_http_request_method(r), "POST") != 0) {
        goro_http_response_set_header(w, "Allow", "POST");
        goro_http_error(w, 405, NULL);
        return;
    }
    int64_t cl = goro_http_request_content_length(r);
    goro_http_response_set_header(w, "Content-Type", "application/octet-stream");
    if (cl >= 0) {
        char num[24];
        snprintf(num, sizeof num, "%lld", (long long)cl);
        goro_http_response_set_header(w, "Content-Length", num);
    }
    char buf[8192];
    for (;;) {
        ssize_t n = goro_http_request_read(r, buf, sizeof buf);
        if (n <= 0)
            break; /* on an error the server answers or closes */
        if (goro_http_response_write(w, buf, (size_t)n) < 0)
            break;
    }
}

typedef struct app {
    const char *listen;
    goro_http_server *srv;
    goro_listener *l;
    goro_chan *stopped; /* closed by the stopper when it is done */
    int rc;
} app;

/* Waits for a signal (a byte on sig_pipe), then shuts the server down. */
static void stopper(void *arg)
{
    app *a = arg;
    goro_chan *stopped = a->stopped; /* our own reference */
    goro_conn *c;
    if (goro_conn_from_fd(sig_pipe[0], &c) == 0) {
        char b;
        goro_conn_read(c, &b, 1, GORO_NO_DEADLINE, NULL);
        fprintf(stderr, "hello: shutting down\n");
        int rc = goro_http_server_shutdown(a->srv, goro_deadline_after(5 * GORO_SECOND));
        if (rc)
            fprintf(stderr, "hello: shutdown: %s\n", strerror(-rc));
        goro_conn_close(c);
    }
    goro_chan_close(stopped);
    goro_chan_release(stopped);
}

static void main_goroutine(void *arg)
{
    app *a = arg;
    goro_http_mux *mux;
    if (goro_http_mux_create(&mux) != 0 || goro_http_mux_handle(mux, "/", hello, NULL) != 0 ||
        goro_http_mux_handle(mux, "/echo", echo, NULL) != 0) {
        a->rc = 1;
        return;
    }
    goro_http_server_opts o = {.handler = goro_http_mux_serve, .handler_arg = mux};
    int rc = goro_http_server_create(&o, &a->srv);
    if (rc == 0)
        rc = goro_listen_tcp(a->listen, 0, &a->l);
    if (rc) {
        fprintf(stderr, "hello: listen on %s: %s\n", a->listen, strerror(-rc));
        a->rc = 1;
        goro_http_server_free(a->srv);
        goro_http_mux_free(mux);
        return;
    }
    char addr[128];
    goro_listener_addr(a->l, addr, sizeof addr);
    printf("listening on http://%s/\n", addr);
    fflush(stdout);
    if (goro_chan_make(&a->stopped, 0, 0) != 0) {
        a->rc = 1;
        goro_listener_close(a->l);
        goro_http_server_free(a->srv);
        goro_http_mux_free(mux);
        return;
    }
    goro_chan_retain(a->stopped); /* the stopper's reference */
    goro_go(stopper, a);
    rc = goro_http_serve(a->srv, a->l); /* until shutdown */
    if (rc) {
        fprintf(stderr, "hello: serve: %s\n", strerror(-rc));
        a->rc = 1;
        on_signal(0); /* let the stopper finish too */
    }
    goro_chan_recv(a->stopped, NULL, NULL); /* the stopper no longer uses the server */
    goro_chan_release(a->stopped);
    goro_http_server_free(a->srv);
    goro_http_mux_free(mux);
}

int main(int argc, char **argv)
{
    app a = {.listen = "127.0.0.1:8080"};
    goro_options opts = {0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            a.listen = argv[++i];
        } else if (strcmp(argv[i], "--procs") == 0 && i + 1 < argc) {
            opts.procs = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [--listen HOST:PORT] [--procs N]\n", argv[0]);
            return 2;
        }
    }
    if (pipe(sig_pipe) != 0) {
        perror("pipe");
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int rc = goro_run(main_goroutine, &a, &opts);
    if (rc) {
        fprintf(stderr, "hello: goro_run: %s\n", strerror(-rc));
        return 1;
    }
    return a.rc;
}
