/* gc/gc.c -- the collection cycle.
 *
 * One cycle, as Go's, with the mark done while the world is stopped (the
 * phases are kept apart so the concurrent mark can slot in):
 *   1. sweep termination: finish sweeping the previous cycle's spans
 *      (concurrently with mutators), then stop the world and hand every
 *      P's cached spans back to their mcentrals (mcaches are empty while
 *      the mark runs; tiny blocks are dropped);
 *   2. mark: roots, thread stacks, then the heap, on RTMAXPROCS markers;
 *   3. mark termination: sweepgen += 2 (every span becomes unswept),
 *      heap_live := bytes marked, the pacer sets the next goal, the heap
 *      verifier runs (debug builds, or RTDEBUG=verify=1); restart the world;
 *   4. sweep: lazily by allocating threads and by the background sweeper;
 *      rt_gc() sweeps everything itself before returning.
 * Only one cycle runs at a time.  A thread that wants to collect while
 * another collects waits counted as stopped (its stack is scanned), so it
 * never delays the stop it is waiting behind. */
#include "gc.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

volatile int rt__gc_pending;
uint64_t rt__gc_num;
extern uint64_t rt__mark_cpu_ns;

static struct {
    bool     running;            /* a cycle holds the collector (world_lock) */
    uint64_t num_forced;
    uint64_t pause_total_ns, last_gc_unix_ns;
    uint64_t pause_ns[256];
    uint64_t gc_cpu_ns;
} C;

static int stw_procs(void) {
    int n = rt__cfg.maxprocs < rt__ncpu() ? rt__cfg.maxprocs : rt__ncpu();
    return n > 0 ? n : 1;
}

/* Take the collector; counted as stopped while waiting. */
static void gc_acquire(void) {
    rt_thread *t = rt__tls_thread;
    pthread_mutex_lock(&rt__g.world_lock);
    while (C.running || rt__g.stop_depth > 0) {
        if (t && t->state == RT_T_RUNNING) {
            rt__capture_context(t);
            t->state = RT_T_STOPPED;
            pthread_cond_broadcast(&rt__g.world_cond);
        }
        pthread_cond_wait(&rt__g.world_cond, &rt__g.world_lock);
    }
    if (t) t->state = RT_T_RUNNING;
    C.running = true;
    pthread_mutex_unlock(&rt__g.world_lock);
}

static void gc_release(void) {
    pthread_mutex_lock(&rt__g.world_lock);
    C.running = false;
    pthread_cond_broadcast(&rt__g.world_cond);
    pthread_mutex_unlock(&rt__g.world_lock);
}

/* Go's fmtNSAsMS: whole ms from 10 ms up, else two significant digits. */
static void fmt_ms(char *buf, size_t n, uint64_t ns) {
    if (ns >= 10000000) { snprintf(buf, n, "%llu", (unsigned long long)(ns / 1000000)); return; }
    uint64_t x = ns / 1000;
    if (x == 0) { snprintf(buf, n, "0"); return; }
    int dec = 3;
    while (x >= 100) { x /= 10; dec--; }
    uint64_t p = 1;
    for (int i = 0; i < dec; i++) p *= 10;
    if (dec == 0) snprintf(buf, n, "%llu", (unsigned long long)x);
    else snprintf(buf, n, "%llu.%0*llu", (unsigned long long)(x / p), dec, (unsigned long long)(x % p));
}

static uint64_t unix_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double cpu_fraction(void) {
    uint64_t elapsed = rt__nanotime() - rt__g.init_ns;
    if (!elapsed) return 0;
    return (double)C.gc_cpu_ns / ((double)elapsed * stw_procs());
}

enum { GC_HEAP, GC_FORCED, GC_STRESS };

static void collect(int why) {
    gc_acquire();
    if (why == GC_HEAP && ld_relaxed(&rt__heap.heap_live) < ld_relaxed(&rt__gc_trigger)) {
        st_relaxed(&rt__gc_pending, 0);   /* another thread's cycle already ran */
        gc_release();
        return;
    }
    st_relaxed(&rt__gc_pending, 0);
    uint64_t goal_before = rt__gc_goal;

    /* 1. Sweep termination. */
    rt__sweep_finish();
    uint64_t t0 = rt__nanotime();
    rt_thread *self = rt__tls_thread;
    if (self) rt__capture_context(self);
    rt__stop_the_world("gc");
    void rt__procs_flush_and_retire(void);
    rt__procs_flush_and_retire();
    rt__sweep_finish();   /* spans handed back stale, if any */
    uint64_t heap0 = ld_relaxed(&rt__heap.heap_live);
    uint64_t t1 = rt__nanotime();

    /* 2. Mark. */
    uint64_t marked = rt__mark_stw(rt__cfg.maxprocs);

    /* 3. Mark termination. */
    uint64_t t2 = rt__nanotime();
    st_release(&rt__heap.sweepgen, rt__heap.sweepgen + 2);
    st_relaxed(&rt__heap.heap_marked, marked);
    st_relaxed(&rt__heap.heap_live, marked);
    rt__pacer_commit(marked);
    if (rt__cfg.verify) rt__verify_heap("after mark");
    /* Only now let sweepers find the new unswept spans: the background
       sweeper is no mutator and keeps running while the world is stopped,
       so with the cursor reset before the verifier it swept spans the
       verifier was counting ("spans hold N allocated bytes, accounting
       says M"). */
    rt__sweep_begin_cycle();
    if (rt__cfg.gcstoptheworld >= 2) rt__sweep_finish();
    uint64_t t3 = rt__nanotime();
    uint64_t pause = t3 - t0;
    rt__gc_num++;
    if (why == GC_FORCED) C.num_forced++;
    C.pause_ns[(rt__gc_num + 255) % 256] = pause;
    C.pause_total_ns += pause;
    C.last_gc_unix_ns = unix_ns();
    C.gc_cpu_ns += (t1 - t0 + t3 - t2) * (uint64_t)stw_procs() + rt__mark_cpu_ns;
    rt__start_the_world();
    rt__sweeper_wake();

    if (rt__cfg.gctrace) {
        char a[32], b[32], c[32], d[32], f[32], h[32];
        fmt_ms(a, sizeof a, t1 - t0);
        fmt_ms(b, sizeof b, 0);
        fmt_ms(c, sizeof c, t3 - t1);
        fmt_ms(d, sizeof d, (t1 - t0) * (uint64_t)stw_procs());
        fmt_ms(f, sizeof f, rt__mark_cpu_ns);
        fmt_ms(h, sizeof h, (t3 - t1) * (uint64_t)stw_procs());
        fprintf(stderr, "gc %llu @%.3fs %d%%: %s+%s+%s ms clock, %s+0/%s/0+%s ms cpu, "
                "%llu->%llu->%llu MB, %llu MB goal, %llu MB stacks, %llu MB globals, %d P%s\n",
                (unsigned long long)rt__gc_num, (double)(t0 - rt__g.init_ns) / 1e9, (int)(cpu_fraction() * 100),
                a, b, c, d, f, h,
                (unsigned long long)(heap0 >> 20), (unsigned long long)(heap0 >> 20),
                (unsigned long long)(marked >> 20),
                (unsigned long long)((goal_before == UINT64_MAX ? 0 : goal_before) >> 20),
                (unsigned long long)(rt__last_stack_scan >> 20), (unsigned long long)(rt__last_globals_scan >> 20),
                rt__cfg.maxprocs, why == GC_FORCED ? " (forced)" : "");
    }
    gc_release();
}

void rt__gc_maybe_start(void) {
    if (rt__cfg.gcstress) { collect(GC_STRESS); return; }
    collect(GC_HEAP);
}

void rt_gc(void) {
    if (!rt__g.initialized) rt__misuse("rt_gc", "rtgc is not initialized; call rt_init() first");
    if (rt__tls_thread && !rt__tls_mcache)
        rt__misuse("rt_gc", "called between rt_enter_blocking() and rt_exit_blocking(); call rt_exit_blocking() first");
    collect(GC_FORCED);
    rt__sweep_finish();
}

void rt__gc_fill_stats(rt_mem_stats *out) {
    out->num_gc = rt__gc_num;
    out->num_forced_gc = C.num_forced;
    out->pause_total_ns = C.pause_total_ns;
    out->last_gc_ns = C.last_gc_unix_ns;
    memcpy(out->pause_ns, C.pause_ns, sizeof out->pause_ns);
    out->next_gc = rt__gc_goal == UINT64_MAX ? 0 : rt__gc_goal;
    out->gc_cpu_fraction = cpu_fraction();
}

void rt__gc_init(void) {
    memset(&C, 0, sizeof C);
    rt__gc_num = 0;
    rt__gc_pending = 0;
    rt__pacer_commit(0);
    if (rt__cfg.gcstress) __atomic_fetch_or(&rt__flags.word, RT__FLAG_SLOWALLOC, __ATOMIC_RELAXED);
    rt__work_init();
    rt__markers_start(rt__cfg.maxprocs - 1);
    rt__sweeper_start();
}

void rt__gc_shutdown(void) {
    rt__sweeper_stop();
    rt__markers_stop();
    rt__work_destroy();
    rt__roots_free_all();
}
