// leaky - the Go twin of goro's examples/leaky-service (the story's service),
// for bench/run.sh's "story" benchmark: the same routes, modes and answers.
//
//	go-leaky [--listen HOST:PORT] [--mode leak|fixed|wait] [--procs P]
//
// /work "sets up background processing" with RunAsync, which returns the
// channel its goroutine will send the result on:
//
//	leak   ignore the channel: the goroutine blocks forever on ch <- result
//	fixed  one goroutine does the work and handles the result itself
//	wait   a goroutine receives from RunAsync's channel
//
// /stats answers "requests N"; /metrics the two gauges the demo's monitor
// reads (go_goroutines, process_resident_memory_bytes); /debug/pprof/ is
// net/http/pprof, as the story's team added it. Go has no leak watchdog:
// nothing reports the leak. Prints "leaky-service: mode M listening on
// http://ADDR" once listening (port 0 picks a free port). Standard library
// only.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

type result struct{ value int }

var requests atomic.Int64

// doSomething is the pretend work: a little computation.
func doSomething() result {
	x := uint32(12345)
	for i := 0; i < 200; i++ {
		x = x*1103515245 + 12345
	}
	return result{value: int(x % 1000)}
}

// RunAsync is the story's helper: start the work, return the channel its
// result will arrive on.
func RunAsync() <-chan result {
	ch := make(chan result)
	go func() {
		ch <- doSomething() // blocks until someone receives
	}()
	return ch
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	mode := flag.String("mode", "leak", "leak, fixed or wait")
	procs := flag.Int("procs", 0, "runtime.GOMAXPROCS (0 = default)")
	flag.Parse()
	if *procs > 0 {
		runtime.GOMAXPROCS(*procs)
	}
	switch *mode {
	case "leak", "fixed", "wait":
	default:
		fmt.Fprintf(os.Stderr, "unknown mode %s\n", *mode)
		os.Exit(2)
	}

	http.HandleFunc("/work", func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		switch *mode {
		case "leak":
			RunAsync() // "set up background processing" ... and forget the channel: the bug
		case "fixed":
			go func() {
				if r := doSomething(); r.value < 0 {
					log.Print("background work failed")
				}
			}()
		case "wait":
			ch := RunAsync()
			go func() { <-ch }()
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	http.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "requests %d\n", requests.Load())
	})
	http.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		fmt.Fprintf(w, "go_goroutines %d\n", runtime.NumGoroutine())
		fmt.Fprintf(w, "process_resident_memory_bytes %d\n", rss())
	})

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "leaky-service: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("leaky-service: mode %s listening on http://%s\n", *mode, ln.Addr())
	srv := &http.Server{}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		fmt.Fprintf(os.Stderr, "leaky-service: %v\n", err)
		os.Exit(1)
	}
}

// rss reads the resident set size from /proc/self/statm (pages).
func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return -1
	}
	n, _ := strconv.ParseInt(f[1], 10, 64)
	return n * int64(os.Getpagesize())
}
