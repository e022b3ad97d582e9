// gcbench/main.go -- Go version of suite "gcbench" (see ../../suites/gcbench.c):
// the Ellis-Kovac-Boehm GCBench with its classic parameters, top-down and
// bottom-up construction, with the same checks as the C version.
package main

import (
	"fmt"
	"os"
	"runtime"
	"time"
)

const (
	kStretchTreeDepth   = 18
	kLongLivedTreeDepth = 16
	kArraySize          = 500000
	kMinTreeDepth       = 4
	kMaxTreeDepth       = 16
)

type Node struct {
	left, right *Node
	i, j        int32
}

var longLived *Node
var array []float64

func treeSize(i int) int { return (1 << (i + 1)) - 1 }
func numIters(i int) int { return 2 * treeSize(kStretchTreeDepth) / treeSize(i) }

func populate(depth int, n *Node) {
	if depth <= 0 {
		return
	}
	depth--
	n.left = &Node{}
	n.right = &Node{}
	populate(depth, n.left)
	populate(depth, n.right)
}

func makeTree(depth int) *Node {
	if depth <= 0 {
		return &Node{}
	}
	return &Node{left: makeTree(depth - 1), right: makeTree(depth - 1)}
}

func count(n *Node) int {
	if n == nil {
		return 0
	}
	return 1 + count(n.left) + count(n.right)
}

func fail(format string, a ...any) {
	fmt.Println("check=FAILED")
	fmt.Fprintf(os.Stderr, "bench: CHECK FAILED: "+format+"\n", a...)
	os.Exit(1)
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Nanoseconds()) / 1e6 }

func main() {
	fmt.Println("suite=gcbench")
	fmt.Println("backend=go")
	fmt.Println("Garbage Collector Test")
	fmt.Printf(" Stretching memory with a binary tree of depth %d\n", kStretchTreeDepth)
	tAll := time.Now()
	t0 := time.Now()
	tmp := makeTree(kStretchTreeDepth)
	tmp = nil
	stretchMs := msSince(t0)

	fmt.Printf(" Creating a long-lived binary tree of depth %d\n", kLongLivedTreeDepth)
	longLived = &Node{}
	populate(kLongLivedTreeDepth, longLived)
	fmt.Printf(" Creating a long-lived array of %d doubles\n", kArraySize)
	array = make([]float64, kArraySize)
	for i := 0; i < kArraySize/2; i++ {
		array[i] = 1.0 / float64(i)
	}
	var topMs, bottomMs float64
	for d := kMinTreeDepth; d <= kMaxTreeDepth; d += 2 {
		iters := numIters(d)
		got := 0
		fmt.Printf("Creating %d trees of depth %d\n", iters, d)
		t0 = time.Now()
		for i := 0; i < iters; i++ {
			tmp = &Node{}
			populate(d, tmp)
			if i == iters-1 {
				got = count(tmp)
			}
			tmp = nil
		}
		ms := msSince(t0)
		topMs += ms
		fmt.Printf("\tTop down construction took %.0f msec\n", ms)
		if got != treeSize(d) {
			fail("top-down tree of depth %d has %d nodes, want %d", d, got, treeSize(d))
		}
		t0 = time.Now()
		for i := 0; i < iters; i++ {
			tmp = makeTree(d)
			if i == iters-1 {
				got = count(tmp)
			}
			tmp = nil
		}
		ms = msSince(t0)
		bottomMs += ms
		fmt.Printf("\tBottom up construction took %.0f msec\n", ms)
		if got != treeSize(d) {
			fail("bottom-up tree of depth %d has %d nodes, want %d", d, got, treeSize(d))
		}
	}
	if ll := count(longLived); ll != treeSize(kLongLivedTreeDepth) {
		fail("long-lived tree has %d nodes, want %d", ll, treeSize(kLongLivedTreeDepth))
	}
	for i := 1; i < kArraySize/2; i++ {
		if array[i] != 1.0/float64(i) {
			fail("long-lived array[%d] = %g", i, array[i])
		}
	}
	totalMs := msSince(tAll)
	fmt.Printf("Completed in %.0f msec\n", totalMs)
	_ = tmp
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("stretch_ms=%.1f\ntopdown_ms=%.1f\nbottomup_ms=%.1f\ntime_ms=%.1f\n", stretchMs, topMs, bottomMs, totalMs)
	fmt.Printf("gc_count=%d\n", ms.NumGC)
	fmt.Printf("gc_pause_total_ms=%.3f\n", float64(ms.PauseTotalNs)/1e6)
	fmt.Printf("heap_sys_mb=%.1f\n", float64(ms.HeapSys)/1048576)
	fmt.Printf("gc_cpu_fraction=%.4f\n", ms.GCCPUFraction)
	fmt.Println("check=ok")
}
