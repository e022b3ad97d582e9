/* alloc_only.c -- suite "alloc-only": the cost of allocation alone.
 *
 * Allocates n objects (default 10 million) of size bytes (16, 32, 64, 128),
 * pointer-free (kind=noscan) or with a pointer in the first word (kind=ptr),
 * and stores every one into a big root array so that ALL stay reachable.
 * Nothing is ever collected or freed: rtgc runs with collection off (RTGC=off
 * and rt_options.gc_percent = RT_GC_OFF), Boehm with GC_disable(), malloc
 * never frees.  The figure is ns per allocation for the loop alone.
 *
 *   path=inline   the size is a compile-time constant at the call site, so
 *                 rtgc takes its size-specialized inline path (rt_alloc macro)
 *   path=generic  the size is only known at run time and the out-of-line
 *                 (rt_alloc)(n, t) is called (other backends: the same call)
 *   mode=touch    no allocation at all: memset n*size bytes of fresh mmap'd
 *                 memory, to time the page faults of that much memory alone
 *
 * Every run also reports loop_minflt, the minor page faults taken during the
 * loop, so bench/run can estimate how much of each system's time is faults.
 * The check: every slot holds a distinct object whose second word is its index. */
#include "../bench.h"
#include <sys/mman.h>

/* Word 1 of each object holds its index; word 0 is the pointer slot of kind=ptr. */
BENCH_INLINE void fill_loop(void **arr, size_t n, size_t size, bench_type t) {
    for (size_t i = 0; i < n; i++) {
        uintptr_t *p = bench_alloc(size, t);
        p[1] = i;
        arr[i] = p;
    }
}

/* One specialized loop per (size, kind): the size and, for noscan, the type
   are constants inside each, as a compiler-generated allocation would be. */
#define FILL(sz)                                                                        \
    static __attribute__((noinline)) void fill_noscan_##sz(void **arr, size_t n) {      \
        fill_loop(arr, n, sz, BENCH_NOSCAN);                                            \
    }                                                                                   \
    static __attribute__((noinline)) void fill_ptr_##sz(void **arr, size_t n, bench_type t) { \
        fill_loop(arr, n, sz, t);                                                       \
    }
FILL(16)
FILL(32)
FILL(64)
FILL(128)

static __attribute__((noinline)) void fill_generic(void **arr, size_t n, size_t size, bench_type t) {
    for (size_t i = 0; i < n; i++) {
        uintptr_t *p = bench_alloc_generic(size, t);
        p[1] = i;
        arr[i] = p;
    }
}

static void touch(size_t n, size_t size) {
    size_t bytes = n * size;
    long f0 = bench_minflt();
    uint64_t t0 = bench_now_ns();
    char *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) bench_fail("mmap of %zu bytes failed", bytes);
    memset(m, 1, bytes);
    uint64_t ns = bench_now_ns() - t0;
    long faults = bench_minflt() - f0;
    /* Read a byte per page back so the memset cannot be dropped. */
    unsigned long sum = 0;
    for (size_t off = 0; off < bytes; off += 4096) sum += (unsigned char)m[off];
    if (sum != (bytes + 4095) / 4096) bench_fail("touched memory reads back wrong");
    bench_kv("loop_ms", "%.3f", ns / 1e6);
    bench_kv("ns_per_alloc", "%.3f", (double)ns / (double)n);
    bench_kv("loop_minflt", "%ld", faults);
    bench_kv("ns_per_fault", "%.1f", faults > 0 ? (double)ns / (double)faults : 0.0);
    bench_kv("touched_mb", "%.1f", bytes / 1048576.0);
    bench_kv("check", "ok");
}

int main(int argc, char **argv) {
    size_t n = (size_t)bench_arg(argc, argv, "n", 10000000);
    size_t size = (size_t)bench_arg(argc, argv, "size", 16);
    const char *kind = bench_arg_str(argc, argv, "kind", "noscan");
    const char *path = bench_arg_str(argc, argv, "path", "inline");
    const char *mode = bench_arg_str(argc, argv, "mode", "alloc");
    int ptr = strcmp(kind, "ptr") == 0;
    int generic = strcmp(path, "generic") == 0;
    if (size != 16 && size != 32 && size != 64 && size != 128) bench_fail("size must be 16, 32, 64 or 128");
    if (!ptr && strcmp(kind, "noscan") != 0) bench_fail("kind must be noscan or ptr");
    if (!generic && strcmp(path, "inline") != 0) bench_fail("path must be inline or generic");

    bench_header("alloc-only");
    bench_kv("n", "%zu", n);
    bench_kv("size", "%zu", size);
    bench_kv("kind", "%s", kind);
    if (strcmp(mode, "touch") == 0) {
        bench_kv("mode", "touch");
        touch(n, size);
        return 0;
    }
    bench_kv("path", "%s", path);

    bench_init(1);                               /* collection off */
    static const size_t ptr_off[] = { 0 };
    bench_type t = ptr ? bench_type_ptrs("obj", size, ptr_off, 1) : BENCH_NOSCAN;
    void **arr = bench_root_array(n);
    /* Fault the root array in before timing: it is the same for every system. */
    memset(arr, 0, n * sizeof(void *));

    long f0 = bench_minflt();
    uint64_t t0 = bench_now_ns();
    if (generic) fill_generic(arr, n, size, t);
    else if (ptr) {
        switch (size) {
        case 16: fill_ptr_16(arr, n, t); break;
        case 32: fill_ptr_32(arr, n, t); break;
        case 64: fill_ptr_64(arr, n, t); break;
        default: fill_ptr_128(arr, n, t); break;
        }
    } else {
        switch (size) {
        case 16: fill_noscan_16(arr, n); break;
        case 32: fill_noscan_32(arr, n); break;
        case 64: fill_noscan_64(arr, n); break;
        default: fill_noscan_128(arr, n); break;
        }
    }
    uint64_t ns = bench_now_ns() - t0;
    long faults = bench_minflt() - f0;

    /* Check: every object is there, holds its index, and none overlaps the next. */
    for (size_t i = 0; i < n; i++) {
        uintptr_t *p = arr[i];
        if (!p || p[1] != i) bench_fail("object %zu lost or overwritten", i);
    }
    bench_kv("loop_ms", "%.3f", ns / 1e6);
    bench_kv("ns_per_alloc", "%.3f", (double)ns / (double)n);
    bench_kv("loop_minflt", "%ld", faults);
    bench_report_stats();
    bench_kv("check", "ok");
    return 0;
}
