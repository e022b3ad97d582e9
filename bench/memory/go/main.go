// bench/memory/go: the `rss` and `limit` workloads of bench/memory/memory.c
// in Go 1.19, line for line: the same chains (32-byte nodes, 1-64 KiB
// pointer-free buffers, 25% of the bytes small nodes), the same random
// sequence, phases, rate control and output lines.  bench/memory/run.py
// runs it with GODEBUG=gctrace=1,scavtrace=1 (and GOMEMLIMIT for `limit`).
//
// Usage:
//
//	memory.go rss   [peak_mb= calm_mb= hold_s= calm_s= idle_s= rate_mb= free=0|N]
//	memory.go limit [target_mb= steps= step_s= hold_s= rate_mb=]
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

const (
	miB        = 1024.0 * 1024.0
	chainBytes = 256 << 10
	batchBytes = 256 << 10
	smallPct   = 25
	tickS      = 0.25
	baselineS  = 0.3 // idle after start: the runner samples the RSS of an empty heap
)

// Node matches the C struct: 32 bytes, data points at the start of a
// []byte's array (an unsafe.Pointer keeps the array alive).
type Node struct {
	next, other *Node
	data        unsafe.Pointer
	len         uint64
}

var (
	slots     []*Node
	rng       uint64 = 0x9E3779B97F4A7C15
	allocated uint64
	live      uint64
	nextTick  float64
)

// now is CLOCK_MONOTONIC, the clock the runner and the C version use;
// time.Now's monotonic reading has another origin.
func now() float64 {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 1, uintptr(unsafe.Pointer(&ts)), 0)
	return float64(ts.Sec) + float64(ts.Nsec)*1e-9
}

func rnd() uint64 {
	rng ^= rng << 13
	rng ^= rng >> 7
	rng ^= rng << 17
	return rng
}

func tick() {
	t := now()
	if t < nextTick {
		return
	}
	fmt.Printf("tick %.4f %.1f %.1f %.1f\n", t, float64(allocated)/miB, float64(live)/miB, retainedMB())
	nextTick = t + tickS
}

// retainedMB is HeapInuse + HeapIdle - HeapReleased without ReadMemStats'
// stop-the-world.
var retained = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"},
	{Name: "/memory/classes/heap/unused:bytes"}, {Name: "/memory/classes/heap/free:bytes"}}

func retainedMB() float64 {
	metrics.Read(retained)
	var b uint64
	for _, x := range retained {
		b += x.Value.Uint64()
	}
	return float64(b) / miB
}

func phase(name string) {
	fmt.Printf("phase %s %.4f\n", name, now())
	var st runtime.MemStats
	runtime.ReadMemStats(&st)
	fmt.Printf("heap %s alloc_mb=%.1f sys_mb=%.1f released_mb=%.1f idle_mb=%.1f next_gc_mb=%.1f num_gc=%d\n",
		name, float64(st.HeapAlloc)/miB, float64(st.HeapSys)/miB, float64(st.HeapReleased)/miB,
		float64(st.HeapIdle)/miB, float64(st.NextGC)/miB, st.NumGC)
}

func fill(b []byte, v byte) {
	// memmove doubling: a byte loop would make Go pay more than C's memset.
	b[0] = v
	for k := 1; k < len(b); k *= 2 {
		copy(b[k:], b[:k])
	}
}

func chain(bytes uint64) *Node {
	var head *Node
	var got, small uint64
	for got < bytes {
		n := &Node{}
		left := bytes - got
		if small*100 < smallPct*got || left < 1024+32 {
			small += 32
			got += 32
		} else {
			l := 1024 + rnd()%(63*1024+1)
			if l+32 > left {
				l = left - 32 // chains are exact: live is what we say
			}
			b := make([]byte, l)
			fill(b, byte(l&0x7f)|1)
			n.data = unsafe.Pointer(&b[0])
			n.len = l
			got += l + 32
		}
		n.next = head
		if head != nil {
			n.other = head.next
		}
		head = n
	}
	allocated += got
	return head
}

func setSlot(i int, bytes uint64) {
	if slots[i] != nil {
		live -= chainBytes
	}
	slots[i] = chain(bytes)
	live += chainBytes
}

func grow(from, to int, garbage float64) {
	owed := 0.0
	for i := from; i < to; i++ {
		setSlot(i, chainBytes)
		for owed += garbage * chainBytes; owed >= batchBytes; owed -= batchBytes {
			chain(batchBytes)
		}
		tick()
	}
}

func sleepUntil(t float64) {
	for d := t - now(); d > 0; d = t - now() {
		time.Sleep(time.Duration(d * 1e9))
	}
}

func steady(until, rateMB float64, churn int, nchurn int) {
	rate, t0 := rateMB*miB, now()
	var done float64
	for t := now(); t < until; t = now() {
		due := (t - t0) * rate
		if due > done+rate {
			t0 = t - (done+rate)/rate
			due = done + rate
		}
		if done >= due {
			wake := t0 + (done+batchBytes)/rate
			if wake > until {
				wake = until
			}
			sleepUntil(wake)
			tick()
			continue
		}
		if nchurn > 0 && int(rnd()%100) < churn {
			setSlot(int(rnd()%uint64(nchurn)), chainBytes)
		} else {
			chain(batchBytes)
		}
		done += batchBytes
		tick()
	}
}

func idle(until float64) {
	for t := now(); t < until; t = now() {
		if t+tickS < until {
			sleepUntil(t + tickS)
		} else {
			sleepUntil(until)
		}
		tick()
	}
}

func drop(from, to int) {
	for i := from; i < to; i++ {
		if slots[i] != nil {
			live -= chainBytes
		}
		slots[i] = nil
	}
}

func check(n int) {
	nodes := 0
	for i := 0; i < n; i++ {
		for p := slots[i]; p != nil; p = p.next {
			nodes++
			if p.other != nil && (p.next == nil || p.other != p.next.next) {
				fmt.Printf("check=FAIL slot %d: a node's other link is wrong\n", i)
				os.Exit(1)
			}
			if p.data == nil {
				continue
			}
			b := unsafe.Slice((*byte)(p.data), p.len)
			want := byte(p.len&0x7f) | 1
			if b[0] != want || b[p.len-1] != want {
				fmt.Printf("check=FAIL slot %d: buffer of %d bytes overwritten\n", i, p.len)
				os.Exit(1)
			}
		}
	}
	fmt.Printf("checked_nodes=%d\ncheck=ok\n", nodes)
}

func arg(key string, dflt float64) float64 {
	for _, a := range os.Args[2:] {
		if strings.HasPrefix(a, key+"=") {
			v, err := strconv.ParseFloat(a[len(key)+1:], 64)
			if err == nil {
				return v
			}
		}
	}
	return dflt
}

func collect(giveBack bool) {
	if giveBack {
		debug.FreeOSMemory()
	} else {
		runtime.GC()
	}
}

func runRSS() {
	peak, calm := arg("peak_mb", 1024), arg("calm_mb", 10)
	holdS, calmS, idleS, rate := arg("hold_s", 3), arg("calm_s", 15), arg("idle_s", 15), arg("rate_mb", 32)
	giveBack, times := arg("free", 0) != 0, int(arg("free", 1))
	if times < 1 {
		times = 1
	}
	n := int(peak * miB / chainBytes)
	ncore := int(calm * miB / chainBytes)
	slots = make([]*Node, n)
	fmt.Printf("start %.4f\n", now())
	sleepUntil(now() + baselineS)
	for round := 1; round <= 2; round++ {
		phase(fmt.Sprintf("grow%d", round))
		from := ncore
		if round == 1 {
			from = 0
		}
		grow(from, n, 1.0)
		phase(fmt.Sprintf("hold%d", round))
		steady(now()+holdS, rate, 0, 0)
		phase(fmt.Sprintf("drop%d", round))
		drop(ncore, n)
		for i := 0; i < times; i++ {
			collect(giveBack)
		}
		phase(fmt.Sprintf("collected%d", round))
		if round == 1 {
			steady(now()+calmS, rate, 25, ncore)
		} else {
			idle(now() + idleS)
		}
	}
	phase("end")
	check(n)
}

func runLimit() {
	target, stepS, holdS, rate := arg("target_mb", 480), arg("step_s", 1), arg("hold_s", 15), arg("rate_mb", 64)
	steps := int(arg("steps", 15))
	n := int(target * miB / chainBytes)
	slots = make([]*Node, n)
	fmt.Printf("memlimit_mb=%.0f\n", float64(debug.SetMemoryLimit(-1))/miB)
	fmt.Printf("start %.4f\n", now())
	sleepUntil(now() + baselineS)
	for s := 0; s < steps; s++ {
		until := now() + stepS
		phase(fmt.Sprintf("step%d", s+1))
		grow(n*s/steps, n*(s+1)/steps, 0)
		steady(until, rate, 0, 0)
	}
	phase("hold")
	steady(now()+holdS, rate, 0, 0)
	phase("end")
	check(n)
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "rss" {
		runRSS()
	} else if len(os.Args) > 1 && os.Args[1] == "limit" {
		runLimit()
	} else {
		fmt.Fprintln(os.Stderr, "usage: memory.go rss|limit [key=value...]")
		os.Exit(2)
	}
	fmt.Printf("allocated_mb=%.0f\n", float64(allocated)/miB)
}
