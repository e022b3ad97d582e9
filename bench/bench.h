/* bench.h -- the one API every benchmark in bench/suites/ is written against.
 *
 * A suite is a single C file compiled once per backend; exactly one of these
 * is defined on the command line (bench/run does it, with the same -O2 flags
 * for every backend):
 *
 *   BENCH_RTGC    the public rtgc API (include/rtgc.h): rt_init,
 *                 rt_thread_attach, rt_type_layout, rt_alloc (the inline,
 *                 size-specialized macro when the size is a constant) or
 *                 (rt_alloc)(n, t) for the generic out-of-line path, rt_store,
 *                 rt_root_add / rt_root_add_range.  Stack scanning stays on.
 *   BENCH_BOEHM   Debian's libgc, linked statically: GC_INIT,
 *                 GC_allow_register_threads, GC_start_mark_threads (parallel
 *                 marking), GC_MALLOC for objects with pointers and
 *                 GC_MALLOC_ATOMIC for pointer-free ones; GC_disable when a
 *                 suite asks for "no collection".
 *   BENCH_MALLOC  plain malloc/free.  mimalloc and jemalloc are measured by
 *                 LD_PRELOAD-ing them on this same binary.
 *
 * Invariants the suites rely on:
 *   - bench_alloc(size, type) with a constant size takes the backend's
 *     fastest path (for rtgc the size-specialized inline path);
 *     bench_alloc_generic always takes the general out-of-line one.
 *   - Memory from the GC backends is zeroed; malloc memory is not, so a
 *     suite that needs NULL fields writes them when BENCH_ZEROED is 0.
 *   - bench_free is a no-op for the GC backends (BENCH_FREES == 0), and
 *     a walk that exists only to free is skipped for them;
 *     bench_collect runs a full collection (a no-op for malloc).
 *   - Loops that allocate nothing for long (tree walks) call
 *     bench_safepoint, as a VM polls at back-edges: rtgc stops a thread
 *     only at a poll or an allocation.
 *   - Results go to stdout as key=value lines (bench_kv); anything else a
 *     suite prints is ignored by bench/run.  A failed check calls bench_fail,
 *     which exits with status 1.
 *   - Every thread that allocates calls bench_thread_attach first (the main
 *     thread is attached by bench_init) and wraps waits on other threads in
 *     bench_blocking_begin/end so a collection never waits for it. */
#ifndef BENCH_H
#define BENCH_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <sys/resource.h>

#if (defined(BENCH_RTGC) + defined(BENCH_BOEHM) + defined(BENCH_MALLOC)) != 1
#error "define exactly one of BENCH_RTGC, BENCH_BOEHM, BENCH_MALLOC"
#endif

#define BENCH_INLINE static inline __attribute__((always_inline))
#define BENCH_MAX_THREADS 64

/* ---- Common helpers (all backends) --------------------------------------- */

static inline uint64_t bench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Minor page faults of the whole process so far (all threads). */
static inline long bench_minflt(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

/* One result line: key=value. */
static inline __attribute__((format(printf, 2, 3))) void bench_kv(const char *key, const char *fmt, ...) {
    va_list ap;
    printf("%s=", key);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

static inline __attribute__((noreturn, format(printf, 1, 2))) void bench_fail(const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fputs("bench: CHECK FAILED: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    printf("check=FAILED\n");
    exit(1);
}

/* Arguments are key=value words; bench_arg returns the value for key or def. */
static inline const char *bench_arg_str(int argc, char **argv, const char *key, const char *def) {
    size_t kl = strlen(key);
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], key, kl) == 0 && argv[i][kl] == '=') return argv[i] + kl + 1;
    return def;
}
static inline long bench_arg(int argc, char **argv, const char *key, long def) {
    const char *s = bench_arg_str(argc, argv, key, NULL);
    if (!s) return def;
    char *end;
    double v = strtod(s, &end);            /* accepts 1e7 as well as 10000000 */
    if (end == s || *end) {
        fprintf(stderr, "bench: argument %s=%s is not a number\n", key, s);
        exit(2);
    }
    return (long)v;
}

/* ---- rtgc ---------------------------------------------------------------- */
#if defined(BENCH_RTGC)
#include <rtgc.h>

#define BENCH_SYSTEM "rtgc"
#define BENCH_ZEROED 1
#define BENCH_FREES 0
typedef const rt_type *bench_type;
#define BENCH_NOSCAN RT_NOSCAN

static inline void bench_init(int gc_off) {
    rt_options o;
    memset(&o, 0, sizeof o);
    o.gc_percent = gc_off ? RT_GC_OFF : 0;     /* the RTGC environment variable still wins */
    o.scan_thread_stacks = 1;
    int rc = rt_init(&o);
    if (rc != RT_OK) { fprintf(stderr, "bench: rt_init failed (%d)\n", rc); exit(2); }
    rc = rt_thread_attach();
    if (rc != RT_OK) { fprintf(stderr, "bench: rt_thread_attach failed (%d)\n", rc); exit(2); }
}
static inline bench_type bench_type_ptrs(const char *name, size_t size, const size_t *offs, size_t n) {
    return rt_type_layout(name, size, offs, n);
}
static inline void bench_thread_attach(void) {
    if (rt_thread_attach() != RT_OK) { fprintf(stderr, "bench: rt_thread_attach failed\n"); exit(2); }
}
static inline void bench_thread_detach(void) { rt_thread_detach(); }
static inline void bench_blocking_begin(void) { rt_enter_blocking(); }
static inline void bench_blocking_end(void) { rt_exit_blocking(); }
/* rt_alloc is the inline macro: size-specialized when size is a constant. */
#define bench_alloc(size, type) rt_alloc((size), (type))
#define bench_alloc_generic(size, type) (rt_alloc)((size), (type))
#define bench_store(slot, val) rt_store((slot), (val))
/* A VM polls at loop back-edges; rtgc stops threads only at such polls
   (and at allocations), where Boehm and Go interrupt them with signals. */
#define bench_safepoint() rt_safepoint()
static inline void bench_free(void *p) { (void)p; }
static inline void bench_collect(void) { rt_gc(); }     /* a full cycle, swept */
static inline void bench_root(void **slot) { rt_root_add(slot); }
/* An array of n pointer slots outside the heap, registered as a precise root. */
static inline void **bench_root_array(size_t n) {
    void **a = calloc(n, sizeof(void *));
    if (!a) { fprintf(stderr, "bench: out of memory\n"); exit(2); }
    rt_root_add_range(a, n * sizeof(void *), RT_ROOT_PRECISE);
    return a;
}
static inline void bench_report_stats(void) {
    rt_mem_stats *s = calloc(1, sizeof *s);
    rt_read_mem_stats(s);
    bench_kv("gc_count", "%llu", (unsigned long long)s->num_gc);
    bench_kv("gc_pause_total_ms", "%.3f", (double)s->pause_total_ns / 1e6);
    bench_kv("heap_sys_mb", "%.1f", (double)s->heap_sys / 1048576.0);
    bench_kv("gc_cpu_fraction", "%.4f", s->gc_cpu_fraction);
    free(s);
}

/* ---- Boehm --------------------------------------------------------------- */
#elif defined(BENCH_BOEHM)
#define GC_THREADS
#define GC_NO_THREAD_REDIRECTS        /* threads register explicitly, as an embedder would */
#include <gc/gc.h>

#define BENCH_SYSTEM "boehm"
#define BENCH_ZEROED 1                /* GC_MALLOC clears; GC_MALLOC_ATOMIC does not (no pointers to clear) */
#define BENCH_FREES 0
typedef const void *bench_type;       /* NULL: pointer-free (atomic); anything else: scanned */
#define BENCH_NOSCAN ((bench_type)0)

static inline void bench_init(int gc_off) {
    GC_INIT();
    GC_allow_register_threads();
    GC_start_mark_threads();          /* parallel marking (no-op if already running) */
    GC_start_performance_measurement();
    if (gc_off) GC_disable();
}
static inline bench_type bench_type_ptrs(const char *name, size_t size, const size_t *offs, size_t n) {
    (void)size; (void)offs; (void)n;
    return name;                      /* Boehm scans every word of a GC_MALLOC object */
}
static inline void bench_thread_attach(void) {
    struct GC_stack_base sb;
    if (GC_get_stack_base(&sb) != GC_SUCCESS) { fprintf(stderr, "bench: GC_get_stack_base failed\n"); exit(2); }
    GC_register_my_thread(&sb);
}
static inline void bench_thread_detach(void) { GC_unregister_my_thread(); }
static inline void bench_blocking_begin(void) {}
static inline void bench_blocking_end(void) {}
#define bench_alloc(size, type) ((type) ? GC_MALLOC(size) : GC_MALLOC_ATOMIC(size))
#define bench_alloc_generic(size, type) bench_alloc((size), (type))
#define bench_store(slot, val) (*(void **)(slot) = (void *)(val))
#define bench_safepoint() ((void)0)
static inline void bench_free(void *p) { (void)p; }
static inline void bench_collect(void) { GC_gcollect(); }   /* sweeping stays lazy */
/* Static data of a statically linked program is scanned by Boehm already. */
static inline void bench_root(void **slot) { (void)slot; }
static inline void **bench_root_array(size_t n) {
    void **a = calloc(n, sizeof(void *));
    if (!a) { fprintf(stderr, "bench: out of memory\n"); exit(2); }
    GC_add_roots(a, a + n);
    return a;
}
static inline void bench_report_stats(void) {
    struct GC_prof_stats_s s;
    GC_get_prof_stats(&s, sizeof s);
    bench_kv("gc_count", "%lu", (unsigned long)s.gc_no);
    bench_kv("gc_pause_total_ms", "%lu", GC_get_full_gc_total_time());
    bench_kv("heap_sys_mb", "%.1f", (double)s.heapsize_full / 1048576.0);
}

/* ---- malloc -------------------------------------------------------------- */
#elif defined(BENCH_MALLOC)

#define BENCH_SYSTEM "malloc"
#define BENCH_ZEROED 0
#define BENCH_FREES 1
typedef const void *bench_type;
#define BENCH_NOSCAN ((bench_type)0)

static inline void bench_init(int gc_off) { (void)gc_off; }
static inline bench_type bench_type_ptrs(const char *name, size_t size, const size_t *offs, size_t n) {
    (void)size; (void)offs; (void)n;
    return name;
}
static inline void bench_thread_attach(void) {}
static inline void bench_thread_detach(void) {}
static inline void bench_blocking_begin(void) {}
static inline void bench_blocking_end(void) {}
BENCH_INLINE void *bench__malloc(size_t size) {
    void *p = malloc(size);
    if (__builtin_expect(p == NULL, 0)) { fprintf(stderr, "bench: out of memory\n"); exit(2); }
    return p;
}
#define bench_alloc(size, type) ((void)(type), bench__malloc(size))
#define bench_alloc_generic(size, type) bench_alloc((size), (type))
#define bench_store(slot, val) (*(void **)(slot) = (void *)(val))
#define bench_safepoint() ((void)0)
static inline void bench_free(void *p) { free(p); }
static inline void bench_collect(void) {}
static inline void bench_root(void **slot) { (void)slot; }
static inline void **bench_root_array(size_t n) {
    void **a = calloc(n, sizeof(void *));
    if (!a) { fprintf(stderr, "bench: out of memory\n"); exit(2); }
    return a;
}
static inline void bench_report_stats(void) { bench_kv("gc_count", "0"); }
#endif

/* ---- Threads (all backends) ---------------------------------------------- */

typedef struct {
    void (*fn)(int tid, void *arg);
    void *arg;
    int tid;
} bench__thread_arg;

static inline void *bench__thread_main(void *p) {
    bench__thread_arg *a = p;
    bench_thread_attach();
    a->fn(a->tid, a->arg);
    bench_thread_detach();
    return NULL;
}

/* Run fn(tid, arg) on n threads; tid 0 runs on the calling (attached) thread,
   the others on new threads that attach themselves. */
static inline void bench_run_threads(int n, void (*fn)(int tid, void *arg), void *arg) {
    pthread_t th[BENCH_MAX_THREADS];
    bench__thread_arg ta[BENCH_MAX_THREADS];
    if (n < 1 || n > BENCH_MAX_THREADS) { fprintf(stderr, "bench: bad thread count %d\n", n); exit(2); }
    for (int i = 1; i < n; i++) {
        ta[i].fn = fn; ta[i].arg = arg; ta[i].tid = i;
        if (pthread_create(&th[i], NULL, bench__thread_main, &ta[i]) != 0) {
            fprintf(stderr, "bench: pthread_create failed\n");
            exit(2);
        }
    }
    fn(0, arg);
    bench_blocking_begin();
    for (int i = 1; i < n; i++) pthread_join(th[i], NULL);
    bench_blocking_end();
}

/* Print the figures every suite reports first. */
static inline void bench_header(const char *suite) {
    bench_kv("suite", "%s", suite);
    bench_kv("backend", "%s", BENCH_SYSTEM);
}

#endif /* BENCH_H */
