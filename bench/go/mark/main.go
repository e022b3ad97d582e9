// mark/main.go -- Go version of suite "mark" (see ../../suites/mark.c):
// build a live tree or list of two-pointer nodes, then time `reps`
// runtime.GC() calls (each a full cycle, swept) and report the median.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

type Node struct{ left, right *Node }

var live *Node

func tree(depth int) *Node {
	if depth > 0 {
		l := tree(depth - 1)
		r := tree(depth - 1)
		return &Node{l, r}
	}
	return &Node{}
}

func treeCount(n *Node) int {
	if n.left != nil {
		return 1 + treeCount(n.left) + treeCount(n.right)
	}
	return 1
}

func fail(format string, a ...any) {
	fmt.Println("check=FAILED")
	fmt.Fprintf(os.Stderr, "bench: CHECK FAILED: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	depth, reps, shape := 21, 9, "tree"
	for _, a := range os.Args[1:] {
		k, v, _ := strings.Cut(a, "=")
		switch k {
		case "depth", "reps":
			n, err := strconv.Atoi(v)
			if err != nil {
				fail("%s is not a number", k)
			}
			if k == "depth" {
				depth = n
			} else {
				reps = n
			}
		case "shape":
			shape = v
		}
	}
	if depth < 1 || depth > 26 || reps < 1 || reps > 1000 {
		fail("want 1 <= depth <= 26, 1 <= reps <= 1000")
	}
	fmt.Println("suite=mark")
	fmt.Println("backend=go")
	fmt.Printf("shape=%s\ndepth=%d\n", shape, depth)

	nodes := (2 << depth) - 1
	switch shape {
	case "tree":
		live = tree(depth)
	case "list":
		for i := 0; i < nodes; i++ {
			live = &Node{left: live}
		}
	default:
		fail("unknown shape=%s (tree or list)", shape)
	}
	runtime.GC()

	ns := make([]int64, reps)
	for i := range ns {
		t := time.Now()
		runtime.GC()
		ns[i] = time.Since(t).Nanoseconds()
	}
	got := 0
	if shape == "tree" {
		got = treeCount(live)
	} else {
		for n := live; n != nil; n = n.left {
			got++
		}
	}
	if got != nodes {
		fail("%s has %d nodes after the collections, want %d", shape, got, nodes)
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i] < ns[j] })
	med := float64(ns[reps/2])
	if reps%2 == 0 {
		med = 0.5 * float64(ns[reps/2-1]+ns[reps/2])
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("objects=%d\n", nodes)
	fmt.Printf("gc_ms=%.2f\n", med/1e6)
	fmt.Printf("gc_best_ms=%.2f\n", float64(ns[0])/1e6)
	fmt.Printf("ns_per_object=%.2f\n", med/float64(nodes))
	fmt.Printf("gc_count=%d\n", ms.NumGC)
	fmt.Printf("gc_pause_total_ms=%.3f\n", float64(ms.PauseTotalNs)/1e6)
	fmt.Println("check=ok")
}
