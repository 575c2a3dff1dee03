// httpd - the Go twin of goro's examples/hello.c (bench/run.sh, benchmark
// "http"): the same routes, answers and framing, with net/http.
//
//	go-httpd [--listen HOST:PORT] [--procs P]
//
// Routes: GET / -> "hello\n" (Content-Length set); POST /echo -> the body
// back (Content-Length when the request had one, chunked otherwise).
// Prints "listening on http://ADDR/" once listening (port 0 picks a free
// port). SIGINT/SIGTERM shut it down gracefully (5 s). Standard library only.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

func hello(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", "6")
	io.WriteString(w, "hello\n")
}

func echo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	if r.ContentLength >= 0 {
		h.Set("Content-Length", strconv.FormatInt(r.ContentLength, 10))
	}
	buf := make([]byte, 8192)
	io.CopyBuffer(w, r.Body, buf)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	procs := flag.Int("procs", 0, "runtime.GOMAXPROCS (0 = default)")
	flag.Parse()
	if *procs > 0 {
		runtime.GOMAXPROCS(*procs)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", hello)
	mux.HandleFunc("/echo", echo)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-httpd: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("listening on http://%s/\n", l.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if err := srv.Serve(l); err != nil && err != http.ErrServerClosed {
		fmt.Fprintf(os.Stderr, "go-httpd: %v\n", err)
		os.Exit(1)
	}
}
