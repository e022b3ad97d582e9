// bench/go/pause: the same workload as bench/pause/pause.c in Go 1.19.
// Run with GODEBUG=gctrace=1; bench/pause/run.py reads the pauses.
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

type Node struct {
	next, other *Node
	value, pad  uint64
}

const nlists = 4096

var heads [nlists]*Node

func main() {
	liveMB, _ := strconv.Atoi(os.Args[1])
	secs, _ := strconv.ParseFloat(os.Args[2], 64)
	start := time.Now()
	nodes := liveMB * 1024 * 1024 / 32
	for i := 0; i < nodes; i++ {
		n := &Node{value: uint64(i)}
		n.next = heads[i%nlists]
		heads[i%nlists] = n
	}
	built := time.Since(start).Seconds()
	fmt.Printf("build_s=%.2f\n", built)
	var stop int32
	var wg sync.WaitGroup
	var mu sync.Mutex
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			s := seed*0x9E3779B97F4A7C15 + 1
			ops := 0
			for atomic.LoadInt32(&stop) == 0 {
				for k := 0; k < 1000; k++ {
					s = s*6364136223846793005 + 1442695040888963407
					n := &Node{value: s}
					h := heads[(s>>33)%nlists]
					if h == nil {
						continue
					}
					old := h.next
					if old != nil {
						n.next = old.next
					}
					h.next = n
					h.other = n.next
					ops++
				}
			}
			mu.Lock()
			fmt.Printf("mutator_ops=%d\n", ops)
			mu.Unlock()
		}(uint64(w + 1))
	}
	time.Sleep(time.Duration(secs * float64(time.Second)))
	atomic.StoreInt32(&stop, 1)
	wg.Wait()
	fmt.Printf("phase_start_s=%.3f\nphase_end_s=%.3f\n", built, time.Since(start).Seconds())
}
