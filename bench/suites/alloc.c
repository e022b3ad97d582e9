/* alloc.c -- suite "alloc": allocation throughput with a collector at work.
 *
 * n allocations in total (default 100 million), split evenly over threads=1
 * or 2 threads, each attached to the runtime (rt_thread_attach /
 * GC_register_my_thread).  Objects are size bytes (16, 32, 64, 128),
 * pointer-free (kind=noscan) or with a pointer in the first word (kind=ptr).
 * Each thread keeps only its last object alive, in a root slot: for the GC
 * backends everything else is garbage for the collector, for malloc the
 * previous object is freed right after the next one is allocated.
 * The size is a compile-time constant at each call site (rtgc's
 * size-specialized path).  The figure is ns per allocation of wall time over
 * all threads: ideal scaling halves it from 1 to 2 threads.
 * The check: every object read back holds the value written into it. */
#include "../bench.h"

#define MAX_T 16

typedef struct {
    size_t per_thread;
    size_t size;
    int ptr;
    bench_type t;
} job;

/* One root slot per thread, a cache line apart. */
static struct { void *last; char pad[56]; } slots[MAX_T];
static size_t errors[MAX_T];

BENCH_INLINE void churn(int tid, size_t n, size_t size, bench_type t) {
    void **slot = &slots[tid].last;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uintptr_t *p = bench_alloc(size, t);
        p[1] = i;
        uintptr_t *prev = *slot;
        if (prev && prev[1] != i - 1) bad++;
        bench_free(prev);
        *slot = p;                    /* a root: no barrier needed */
    }
    errors[tid] = bad;
}

#define CHURN(sz)                                                                       \
    static __attribute__((noinline)) void churn_noscan_##sz(int tid, size_t n) {        \
        churn(tid, n, sz, BENCH_NOSCAN);                                                \
    }                                                                                   \
    static __attribute__((noinline)) void churn_ptr_##sz(int tid, size_t n, bench_type t) { \
        churn(tid, n, sz, t);                                                           \
    }
CHURN(16)
CHURN(32)
CHURN(64)
CHURN(128)

static void worker(int tid, void *arg) {
    job *j = arg;
    size_t n = j->per_thread;
    if (j->ptr) {
        switch (j->size) {
        case 16: churn_ptr_16(tid, n, j->t); break;
        case 32: churn_ptr_32(tid, n, j->t); break;
        case 64: churn_ptr_64(tid, n, j->t); break;
        default: churn_ptr_128(tid, n, j->t); break;
        }
    } else {
        switch (j->size) {
        case 16: churn_noscan_16(tid, n); break;
        case 32: churn_noscan_32(tid, n); break;
        case 64: churn_noscan_64(tid, n); break;
        default: churn_noscan_128(tid, n); break;
        }
    }
}

int main(int argc, char **argv) {
    size_t n = (size_t)bench_arg(argc, argv, "n", 100000000);
    size_t size = (size_t)bench_arg(argc, argv, "size", 16);
    int threads = (int)bench_arg(argc, argv, "threads", 1);
    const char *kind = bench_arg_str(argc, argv, "kind", "noscan");
    int ptr = strcmp(kind, "ptr") == 0;
    if (size != 16 && size != 32 && size != 64 && size != 128) bench_fail("size must be 16, 32, 64 or 128");
    if (!ptr && strcmp(kind, "noscan") != 0) bench_fail("kind must be noscan or ptr");
    if (threads < 1 || threads > MAX_T) bench_fail("threads must be 1..%d", MAX_T);

    bench_header("alloc");
    bench_kv("n", "%zu", n);
    bench_kv("size", "%zu", size);
    bench_kv("kind", "%s", kind);
    bench_kv("threads", "%d", threads);

    bench_init(0);
    for (int i = 0; i < MAX_T; i++) bench_root(&slots[i].last);
    static const size_t ptr_off[] = { 0 };
    job j = { n / (size_t)threads, size, ptr, BENCH_NOSCAN };
    if (ptr) j.t = bench_type_ptrs("obj", size, ptr_off, 1);

    long f0 = bench_minflt();
    uint64_t t0 = bench_now_ns();
    bench_run_threads(threads, worker, &j);
    uint64_t ns = bench_now_ns() - t0;
    long faults = bench_minflt() - f0;

    for (int i = 0; i < threads; i++) {
        uintptr_t *last = slots[i].last;
        if (errors[i] || !last || last[1] != j.per_thread - 1)
            bench_fail("thread %d: %zu objects read back wrong", i, errors[i]);
    }
    bench_kv("loop_ms", "%.3f", ns / 1e6);
    bench_kv("ns_per_alloc", "%.3f", (double)ns / (double)(j.per_thread * (size_t)threads));
    bench_kv("loop_minflt", "%ld", faults);
    bench_report_stats();
    bench_kv("check", "ok");
    return 0;
}
