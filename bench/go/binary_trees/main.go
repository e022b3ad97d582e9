// binary_trees/main.go -- Go version of suite "binary-trees"
// (see ../../suites/binary_trees.c): the Benchmarks Game algorithm,
// single-threaded, node count as the check, validated against 2^(d+1)-1.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

type Node struct{ left, right *Node }

var longLived *Node

func bottomUp(depth int) *Node {
	if depth > 0 {
		l := bottomUp(depth - 1)
		r := bottomUp(depth - 1)
		return &Node{l, r}
	}
	return &Node{}
}

func (n *Node) check() int {
	if n.left != nil {
		return 1 + n.left.check() + n.right.check()
	}
	return 1
}

func expect(d int) int { return (2 << d) - 1 }

func fail(format string, a ...any) {
	fmt.Println("check=FAILED")
	fmt.Fprintf(os.Stderr, "bench: CHECK FAILED: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	n := 21
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "depth=") {
			v, err := strconv.Atoi(a[6:])
			if err != nil {
				fail("depth is not a number")
			}
			n = v
		}
	}
	minDepth := 4
	if n < minDepth+2 {
		n = minDepth + 2
	}
	fmt.Println("suite=binary-trees")
	fmt.Println("backend=go")
	fmt.Printf("depth=%d\n", n)
	t0 := time.Now()
	stretch := n + 1
	c := bottomUp(stretch).check()
	fmt.Printf("stretch tree of depth %d\t check: %d\n", stretch, c)
	if c != expect(stretch) {
		fail("stretch tree check %d, want %d", c, expect(stretch))
	}
	longLived = bottomUp(n)
	for d := minDepth; d <= n; d += 2 {
		iters := 1 << (n - d + minDepth)
		sum := 0
		for i := 0; i < iters; i++ {
			sum += bottomUp(d).check()
		}
		fmt.Printf("%d\t trees of depth %d\t check: %d\n", iters, d, sum)
		if sum != iters*expect(d) {
			fail("depth %d check %d, want %d", d, sum, iters*expect(d))
		}
	}
	c = longLived.check()
	fmt.Printf("long lived tree of depth %d\t check: %d\n", n, c)
	if c != expect(n) {
		fail("long lived tree check %d, want %d", c, expect(n))
	}
	ns := time.Since(t0).Nanoseconds()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("time_ms=%.1f\n", float64(ns)/1e6)
	fmt.Printf("gc_count=%d\n", ms.NumGC)
	fmt.Printf("gc_pause_total_ms=%.3f\n", float64(ms.PauseTotalNs)/1e6)
	fmt.Printf("heap_sys_mb=%.1f\n", float64(ms.HeapSys)/1048576)
	fmt.Printf("gc_cpu_fraction=%.4f\n", ms.GCCPUFraction)
	fmt.Println("check=ok")
}
