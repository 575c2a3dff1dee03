// go-bench - the Go twins of goro's micro-benchmarks (bench/goro-bench.c).
//
//	go-bench NAME [--procs P] [--n N]
//
// NAME is one of spawn, pingpong, buffered, select, parked, parallel.
// stdout carries only result lines "BENCH <name> <value> <unit>";
// diagnostics go to stderr. Keep every algorithm in step with the C side:
// the comparison is only meaningful if both do the same work.
//
// Standard library only.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "go-bench: "+format+"\n", args...)
	os.Exit(1)
}

// emit prints one result line with prec decimals.
func emit(name string, value float64, prec int, unit string) {
	fmt.Printf("BENCH %s %s %s\n", name, strconv.FormatFloat(value, 'f', prec, 64), unit)
}

// ---------------------------------------------------------------------------
// spawn: N goroutines that only call Done, all queued before one Wait

func spawnDone(wg *sync.WaitGroup) {
	wg.Done()
}

func benchSpawn(n int64) {
	var wg sync.WaitGroup

	t0 := time.Now()
	wg.Add(int(n))
	for i := int64(0); i < n; i++ {
		go spawnDone(&wg)
	}
	wg.Wait()
	el := time.Since(t0)

	emit("spawn", float64(el.Nanoseconds())/float64(n), 2, "ns/goroutine")
}

// ---------------------------------------------------------------------------
// pingpong: round trips over two unbuffered channels of int

func pingpongPartner(in <-chan int, out chan<- int, wg *sync.WaitGroup) {
	for v := range in {
		out <- v
	}
	wg.Done()
}

func benchPingpong(n int64) {
	ch1 := make(chan int)
	ch2 := make(chan int)
	var wg sync.WaitGroup
	wg.Add(1)
	go pingpongPartner(ch1, ch2, &wg)

	t0 := time.Now()
	for i := int64(0); i < n; i++ {
		v := int(i)
		ch1 <- v
		back, ok := <-ch2
		if !ok || back != v {
			die("pingpong: sent %d, got %d (ok=%v)", v, back, ok)
		}
	}
	el := time.Since(t0)

	close(ch1)
	wg.Wait()

	emit("pingpong", float64(el.Nanoseconds())/float64(n), 2, "ns/roundtrip")
}

// ---------------------------------------------------------------------------
// buffered: one producer, one consumer, capacity 1024, uint64 elements

func bufferedProducer(ch chan<- uint64, n uint64, wg *sync.WaitGroup) {
	for i := uint64(0); i < n; i++ {
		ch <- i
	}
	close(ch)
	wg.Done()
}

func bufferedConsumer(ch <-chan uint64, sum, count *uint64, wg *sync.WaitGroup) {
	var s, c uint64
	for v := range ch {
		s += v
		c++
	}
	*sum = s
	*count = c
	wg.Done()
}

func benchBuffered(n int64) {
	un := uint64(n)
	ch := make(chan uint64, 1024)
	var wg sync.WaitGroup
	var sum, count uint64

	t0 := time.Now()
	wg.Add(2)
	go bufferedConsumer(ch, &sum, &count, &wg)
	go bufferedProducer(ch, un, &wg)
	wg.Wait()
	el := time.Since(t0)

	// 0 + 1 + ... + (n-1), modulo 2^64 like the running sum.
	var want uint64
	if un%2 == 0 {
		want = (un / 2) * (un - 1)
	} else {
		want = un * ((un - 1) / 2)
	}
	if count != un || sum != want {
		die("buffered: received %d items summing to %d, want %d items summing to %d",
			count, sum, un, want)
	}

	emit("buffered", float64(n)/el.Seconds(), 0, "items/s")
}

// ---------------------------------------------------------------------------
// select: two receive cases fed by two producers over unbuffered channels

func selectProducer(ch chan<- int, count int64, wg *sync.WaitGroup) {
	for i := int64(0); i < count; i++ {
		ch <- int(i)
	}
	wg.Done()
}

func benchSelect(n int64) {
	if n < 2 {
		die("select: --n must be at least 2")
	}
	cha := make(chan int)
	chb := make(chan int)
	var wg sync.WaitGroup
	// The producers send n values in all, so main's n selects drain them
	// exactly and nobody is left blocked.
	wg.Add(2)
	go selectProducer(cha, n/2, &wg)
	go selectProducer(chb, n-n/2, &wg)

	var count [2]int64
	t0 := time.Now()
	for i := int64(0); i < n; i++ {
		select {
		case _, ok := <-cha:
			if !ok {
				die("select: case 0 found its channel closed")
			}
			count[0]++
		case _, ok := <-chb:
			if !ok {
				die("select: case 1 found its channel closed")
			}
			count[1]++
		}
	}
	el := time.Since(t0)

	wg.Wait()

	fmt.Fprintf(os.Stderr, "select: case0=%d case1=%d\n", count[0], count[1])
	if count[0] <= 0 || count[1] <= 0 || count[0]+count[1] != n {
		die("select: case counts %d and %d, want both > 0 and sum %d", count[0], count[1], n)
	}

	emit("select", float64(el.Nanoseconds())/float64(n), 2, "ns/select")
}

// ---------------------------------------------------------------------------
// parked: memory of N goroutines blocked forever on their own channel

// rssKiB returns VmRSS of this process in KiB.
func rssKiB() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		die("read /proc/self/status: %v", err)
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if !bytes.HasPrefix(line, []byte("VmRSS:")) {
			continue
		}
		f := strings.Fields(string(line[len("VmRSS:"):]))
		if len(f) >= 1 {
			kib, err := strconv.ParseInt(f[0], 10, 64)
			if err == nil {
				return kib
			}
		}
	}
	die("no VmRSS line in /proc/self/status")
	return 0
}

func warmup(wg *sync.WaitGroup) {
	// Touch the channel paths once on whatever thread runs this.
	ch := make(chan int, 1)
	ch <- 1
	<-ch
	wg.Done()
}

func parked(wg *sync.WaitGroup) {
	ch := make(chan int)
	wg.Done()
	// Nobody ever receives: this blocks until the process exits.
	ch <- 1
	die("parked: a send on an unreceived channel returned")
}

const parkedWarmup = 256

func benchParked(n int64) {
	var wg sync.WaitGroup

	wg.Add(parkedWarmup)
	for i := 0; i < parkedWarmup; i++ {
		go warmup(&wg)
	}
	wg.Wait()
	time.Sleep(20 * time.Millisecond)
	before := rssKiB()

	wg.Add(int(n))
	for i := int64(0); i < n; i++ {
		go parked(&wg)
	}
	wg.Wait()
	// Every goroutine has called Done just before its send; give the last
	// ones time to actually park.
	time.Sleep(200 * time.Millisecond)
	after := rssKiB()

	fmt.Fprintf(os.Stderr, "parked: VmRSS %d kB before, %d kB after, %d goroutines\n",
		before, after, runtime.NumGoroutine())
	emit("parked", float64(after-before)*1024.0/float64(n), 1, "bytes/goroutine")
	fmt.Printf("BENCH parked_n %d goroutines\n", n)
	// Tearing down N blocked goroutines is not what we measure.
	os.Exit(0)
}

// ---------------------------------------------------------------------------
// parallel: N identical CPU-bound tasks, wall time

// Must match kernel() in bench/goro-bench.c operation for operation.
const kernelIters = 200000

func kernel(seed uint64) uint64 {
	x := seed*0x9E3779B97F4A7C15 + 0x2545F4914F6CDD1D
	for k := uint64(0); k < kernelIters; k++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		x = x*0xD1342543DE82EF95 + k
	}
	return x
}

// Sum (mod 2^64) of kernel(i) for i in [0, 2000): computed once, offline,
// and identical in the C twin.
const (
	parallelDefaultN   = 2000
	parallelDefaultSum = 0x693c229a5c498357
)

func parallelTask(i int64, results []uint64, wg *sync.WaitGroup) {
	results[i] = kernel(uint64(i))
	wg.Done()
}

func benchParallel(n int64) {
	var wg sync.WaitGroup
	results := make([]uint64, n)

	// A few tasks computed sequentially, to check the parallel results.
	sample := [3]int64{0, n / 2, n - 1}
	var sampleWant [3]uint64
	for i := range sample {
		sampleWant[i] = kernel(uint64(sample[i]))
	}

	t0 := time.Now()
	wg.Add(int(n))
	for i := int64(0); i < n; i++ {
		go parallelTask(i, results, &wg)
	}
	wg.Wait()
	el := time.Since(t0)

	var sum uint64
	for _, r := range results {
		sum += r
	}
	for i := range sample {
		if results[sample[i]] != sampleWant[i] {
			die("parallel: task %d computed %#x, want %#x", sample[i], results[sample[i]], sampleWant[i])
		}
	}
	fmt.Fprintf(os.Stderr, "parallel: checksum %#x (n=%d, iters=%d)\n", sum, n, kernelIters)
	if n == parallelDefaultN && sum != parallelDefaultSum {
		die("parallel: checksum %#x, want %#x", sum, uint64(parallelDefaultSum))
	}

	emit("parallel", float64(el.Nanoseconds())/1e6, 2, "ms")
}

// ---------------------------------------------------------------------------
// goroutine_profile, goroutine_dump: the goroutine profile of N goroutines
// parked on channel receives

func recvParked(ch chan int, wg *sync.WaitGroup) {
	wg.Done()
	// Nobody ever sends: this blocks until the process exits.
	<-ch
	die("goroutine_profile: a receive on a silent channel returned")
}

// parkReceivers parks n goroutines on receives from one channel; returns
// once all have called Done and had 200 ms to park.
func parkReceivers(n int64) chan int {
	ch := make(chan int)
	var wg sync.WaitGroup
	wg.Add(int(n))
	for i := int64(0); i < n; i++ {
		go recvParked(ch, &wg)
	}
	wg.Wait()
	time.Sleep(200 * time.Millisecond)
	return ch
}

// checkGoroutineProfile writes the profile at debug once into memory and
// checks what came out, like the C side. Not timed (it is also the
// warm-up). Go 1.19's debug=2 output stops at 64 MiB (writeGoroutineStacks),
// so it is only reported, not required to list all n goroutines.
func checkGoroutineProfile(debug int, n int64) {
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, debug); err != nil {
		die("goroutine profile debug=%d: %v", debug, err)
	}
	b := buf.Bytes()
	if len(b) == 0 {
		die("goroutine profile debug=%d: empty", debug)
	}
	switch debug {
	case 0:
		if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			die("goroutine profile debug=0: not gzip'd protobuf")
		}
	case 1:
		var total int64
		if _, err := fmt.Sscanf(string(b), "goroutine profile: total %d", &total); err != nil || total < n {
			die("goroutine profile debug=1: header is not \"goroutine profile: total >= %d\"", n)
		}
	default:
		headers := 0
		for _, line := range bytes.Split(b, []byte("\n")) {
			if bytes.HasPrefix(line, []byte("goroutine ")) {
				headers++
			}
		}
		fmt.Fprintf(os.Stderr, "goroutine profile debug=2: %d goroutines, %d bytes (Go stops at 64 MiB)\n",
			headers, len(b))
	}
	fmt.Fprintf(os.Stderr, "goroutine profile debug=%d: %d bytes\n", debug, len(b))
}

const (
	profileReps = 5 // debug=0 and debug=1
	dumpReps    = 3 // debug=2
)

// timeGoroutineProfile: median over reps of the time to write the
// goroutine profile to io.Discard.
func timeGoroutineProfile(debug int, reps int) float64 {
	ms := make([]float64, reps)
	p := pprof.Lookup("goroutine")
	for r := 0; r < reps; r++ {
		t0 := time.Now()
		if err := p.WriteTo(io.Discard, debug); err != nil {
			die("goroutine profile debug=%d: %v", debug, err)
		}
		ms[r] = float64(time.Since(t0).Nanoseconds()) / 1e6
	}
	sort.Float64s(ms)
	if reps%2 == 1 {
		return ms[reps/2]
	}
	return (ms[reps/2-1] + ms[reps/2]) / 2
}

func benchGoroutineProfile(n int64) {
	ch := parkReceivers(n)
	checkGoroutineProfile(0, n)
	checkGoroutineProfile(1, n)
	d0 := timeGoroutineProfile(0, profileReps)
	d1 := timeGoroutineProfile(1, profileReps)
	fmt.Fprintf(os.Stderr, "goroutine_profile: %d goroutines\n", runtime.NumGoroutine())
	runtime.KeepAlive(ch)
	emit("goroutine_profile_debug0", d0, 3, "ms")
	emit("goroutine_profile_debug1", d1, 3, "ms")
	fmt.Printf("BENCH goroutine_profile_n %d goroutines\n", n)
	// Tearing down N blocked goroutines is not what we measure.
	os.Exit(0)
}

func benchGoroutineDump(n int64) {
	ch := parkReceivers(n)
	checkGoroutineProfile(2, n)
	d2 := timeGoroutineProfile(2, dumpReps)
	fmt.Fprintf(os.Stderr, "goroutine_dump: %d goroutines\n", runtime.NumGoroutine())
	runtime.KeepAlive(ch)
	emit("goroutine_dump", d2, 3, "ms")
	fmt.Printf("BENCH goroutine_dump_n %d goroutines\n", n)
	os.Exit(0)
}

// ---------------------------------------------------------------------------
// Driver

type benchDef struct {
	name     string
	defaultN int64
	maxN     int64
	run      func(int64)
}

var benches = []benchDef{
	{"spawn", 1000000, math.MaxInt32, benchSpawn},
	{"pingpong", 1000000, math.MaxInt64, benchPingpong},
	{"buffered", 10000000, math.MaxInt64, benchBuffered},
	{"select", 1000000, math.MaxInt64, benchSelect},
	{"parked", 100000, math.MaxInt32, benchParked},
	{"parallel", 2000, math.MaxInt32, benchParallel},
	{"goroutine_profile", 100000, math.MaxInt32, benchGoroutineProfile},
	{"goroutine_dump", 100000, math.MaxInt32, benchGoroutineDump},
}

func usage(fs *flag.FlagSet) {
	out := fs.Output()
	fmt.Fprintf(out, "usage: go-bench NAME [--procs P] [--n N]\n  NAME: ")
	for i, b := range benches {
		if i > 0 {
			fmt.Fprint(out, ", ")
		}
		fmt.Fprintf(out, "%s (n=%d)", b.name, b.defaultN)
	}
	fmt.Fprintln(out)
	fs.PrintDefaults()
}

func main() {
	fs := flag.NewFlagSet("go-bench", flag.ContinueOnError)
	procs := fs.Int("procs", 0, "runtime.GOMAXPROCS (0 = default)")
	n := fs.Int64("n", 0, "problem size (default per benchmark)")
	fs.Usage = func() { usage(fs) }

	// Like goro-bench, accept the name before, between or after the flags.
	name := ""
	args := os.Args[1:]
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				os.Exit(0)
			}
			os.Exit(2)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if name != "" {
			fmt.Fprintln(os.Stderr, "go-bench: more than one benchmark name")
			usage(fs)
			os.Exit(2)
		}
		name = rest[0]
		args = rest[1:]
	}
	if name == "" {
		usage(fs)
		os.Exit(2)
	}
	nSet := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "n" {
			nSet = true
		}
	})

	var def *benchDef
	for i := range benches {
		if benches[i].name == name {
			def = &benches[i]
		}
	}
	if def == nil {
		fmt.Fprintf(os.Stderr, "go-bench: unknown benchmark '%s'\n", name)
		usage(fs)
		os.Exit(2)
	}
	if *procs < 0 || *procs > 256 {
		fmt.Fprintf(os.Stderr, "go-bench: --procs: %d is not in [0, 256]\n", *procs)
		os.Exit(2)
	}
	size := def.defaultN
	if nSet {
		size = *n
	}
	if size < 1 || size > def.maxN {
		fmt.Fprintf(os.Stderr, "go-bench: %s: --n must be in [1, %d]\n", name, def.maxN)
		os.Exit(2)
	}
	if *procs > 0 {
		runtime.GOMAXPROCS(*procs)
	}
	def.run(size)
}
