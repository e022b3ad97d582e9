// alloc/main.go -- Go version of suite "alloc" (see ../../suites/alloc.c).
//
// n allocations in total split over threads goroutines (GOMAXPROCS is the
// number of CPUs, as for the other runtimes); objects of size bytes (16, 32,
// 64, 128), pointer-free (kind=noscan) or with a pointer in the first word
// (kind=ptr); each goroutine keeps only its last object alive in a global
// slot.  Reports ns per allocation of wall time over all goroutines.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

type P16 struct {
	p *P16
	x uintptr
}
type P32 struct {
	p *P32
	x uintptr
	_ [2]uintptr
}
type P64 struct {
	p *P64
	x uintptr
	_ [6]uintptr
}
type P128 struct {
	p *P128
	x uintptr
	_ [14]uintptr
}
type S16 struct{ a, x uintptr }
type S32 struct {
	a, x uintptr
	_    [2]uintptr
}
type S64 struct {
	a, x uintptr
	_    [6]uintptr
}
type S128 struct {
	a, x uintptr
	_    [14]uintptr
}

// One slot per goroutine, a cache line apart.
var slots [16]struct {
	last unsafe.Pointer
	_    [7]uintptr
}
var errors [16]int

//go:noinline
func churn[T any](tid, n int) {
	slot := &slots[tid].last
	bad := 0
	for i := 0; i < n; i++ {
		p := new(T)
		*(*uintptr)(unsafe.Add(unsafe.Pointer(p), 8)) = uintptr(i)
		if prev := *slot; prev != nil && *(*uintptr)(unsafe.Add(prev, 8)) != uintptr(i-1) {
			bad++
		}
		*slot = unsafe.Pointer(p)
	}
	errors[tid] = bad
}

func arg(key, def string) string {
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, key+"=") {
			return a[len(key)+1:]
		}
	}
	return def
}

func argInt(key string, def int) int {
	f, err := strconv.ParseFloat(arg(key, strconv.Itoa(def)), 64)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: argument %s is not a number\n", key)
		os.Exit(2)
	}
	return int(f)
}

func minflt() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Minflt
}

func fail(format string, a ...any) {
	fmt.Println("check=FAILED")
	fmt.Fprintf(os.Stderr, "bench: CHECK FAILED: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	n := argInt("n", 100000000)
	size := argInt("size", 16)
	threads := argInt("threads", 1)
	kind := arg("kind", "noscan")
	if threads < 1 || threads > len(slots) {
		fail("threads must be 1..%d", len(slots))
	}
	var loop func(tid, n int)
	switch kind + strconv.Itoa(size) {
	case "noscan16":
		loop = churn[S16]
	case "noscan32":
		loop = churn[S32]
	case "noscan64":
		loop = churn[S64]
	case "noscan128":
		loop = churn[S128]
	case "ptr16":
		loop = churn[P16]
	case "ptr32":
		loop = churn[P32]
	case "ptr64":
		loop = churn[P64]
	case "ptr128":
		loop = churn[P128]
	default:
		fail("size must be 16, 32, 64 or 128 and kind noscan or ptr")
	}
	fmt.Println("suite=alloc")
	fmt.Println("backend=go")
	fmt.Printf("n=%d\nsize=%d\nkind=%s\nthreads=%d\n", n, size, kind, threads)
	per := n / threads
	f0 := minflt()
	t0 := time.Now()
	var wg sync.WaitGroup
	for t := 1; t < threads; t++ {
		wg.Add(1)
		go func(tid int) { defer wg.Done(); loop(tid, per) }(t)
	}
	loop(0, per)
	wg.Wait()
	ns := time.Since(t0).Nanoseconds()
	faults := minflt() - f0
	for t := 0; t < threads; t++ {
		last := slots[t].last
		if errors[t] != 0 || last == nil || *(*uintptr)(unsafe.Add(last, 8)) != uintptr(per-1) {
			fail("goroutine %d: %d objects read back wrong", t, errors[t])
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("loop_ms=%.3f\n", float64(ns)/1e6)
	fmt.Printf("ns_per_alloc=%.3f\n", float64(ns)/float64(per*threads))
	fmt.Printf("loop_minflt=%d\n", faults)
	fmt.Printf("gc_count=%d\n", ms.NumGC)
	fmt.Printf("gc_pause_total_ms=%.3f\n", float64(ms.PauseTotalNs)/1e6)
	fmt.Printf("heap_sys_mb=%.1f\n", float64(ms.HeapSys)/1048576)
	fmt.Printf("gc_cpu_fraction=%.4f\n", ms.GCCPUFraction)
	fmt.Println("check=ok")
}
