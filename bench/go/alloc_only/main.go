// alloc_only/main.go -- Go version of suite "alloc-only" (see ../../suites/alloc_only.c).
//
// Allocates n objects of size bytes (16, 32, 64, 128), pointer-free
// (kind=noscan) or with a pointer in the first word (kind=ptr), keeps every
// one in a big slice, and runs with collection off (bench/run sets GOGC=off;
// debug.SetGCPercent(-1) here as well).  Reports ns per allocation of the
// loop and the minor page faults it took, as key=value lines.
package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
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

// fill allocates n objects of type T and keeps them all; word 1 holds the index.
//
//go:noinline
func fill[T any](arr []unsafe.Pointer) {
	for i := range arr {
		p := new(T)
		*(*uintptr)(unsafe.Add(unsafe.Pointer(p), 8)) = uintptr(i)
		arr[i] = unsafe.Pointer(p)
	}
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
	n := argInt("n", 10000000)
	size := argInt("size", 16)
	kind := arg("kind", "noscan")
	debug.SetGCPercent(-1)
	fmt.Println("suite=alloc-only")
	fmt.Println("backend=go")
	fmt.Printf("n=%d\nsize=%d\nkind=%s\n", n, size, kind)
	arr := make([]unsafe.Pointer, n)
	for i := range arr { // fault the slice in before timing, as the C version does
		arr[i] = nil
	}
	f0 := minflt()
	t0 := time.Now()
	switch kind + strconv.Itoa(size) {
	case "noscan16":
		fill[S16](arr)
	case "noscan32":
		fill[S32](arr)
	case "noscan64":
		fill[S64](arr)
	case "noscan128":
		fill[S128](arr)
	case "ptr16":
		fill[P16](arr)
	case "ptr32":
		fill[P32](arr)
	case "ptr64":
		fill[P64](arr)
	case "ptr128":
		fill[P128](arr)
	default:
		fail("size must be 16, 32, 64 or 128 and kind noscan or ptr")
	}
	ns := time.Since(t0).Nanoseconds()
	faults := minflt() - f0
	for i, p := range arr {
		if p == nil || *(*uintptr)(unsafe.Add(p, 8)) != uintptr(i) {
			fail("object %d lost or overwritten", i)
		}
	}
	fmt.Printf("loop_ms=%.3f\n", float64(ns)/1e6)
	fmt.Printf("ns_per_alloc=%.3f\n", float64(ns)/float64(n))
	fmt.Printf("loop_minflt=%d\n", faults)
	fmt.Println("gc_count=0")
	fmt.Println("check=ok")
}
