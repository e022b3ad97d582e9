/* tests/test_scavenge.c -- giving memory back (issue 7):
 *   - after a 1 GiB spike dies, RSS (/proc/self/statm) falls to 1.1x the
 *     heap goal within 10 s with no call but the collection itself, the
 *     background scavenger using about 1% of the program's CPUs (Go's
 *     budget: 1% x min(RTMAXPROCS, CPUs) of one CPU), or within the time
 *     that budget needs for the kernel's CPU when the kernel is slower;
 *     at once after rt_free_os_memory;
 *   - heap_released is exact, released pages come back zeroed without
 *     clearing under MADV_DONTNEED and are cleared under MADV_FREE;
 *   - the scavtrace line; the page allocator's take/return primitives;
 *   - the memory limit: its heap goal (Go's memoryLimitHeapGoal) and a
 *     live heap approaching RTMEMLIMIT keeping retained memory within 5%.
 * The collector may not start the scavenger or call rt__scavenger_wake yet:
 * the tests start it themselves (start is idempotent) and call wake after a
 * collection only if the collector did not. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "test_start.h"

#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)

/* The process's resident memory.  Under AddressSanitizer the shadow of
   every page the heap ever touched stays resident (the sanitizer writes it
   when it intercepts mmap and never gives it back): it is the sanitizer's
   memory, not the runtime's, so the shadow regions (x86-64: from
   0x7fff8000 up to 0x10007fff8000) are left out of the sum. */
static uint64_t rss(void) {
#if RT_ASAN_BUILD
    FILE *f = fopen("/proc/self/smaps", "r");
    cr_assert_not_null(f);
    char line[512];
    unsigned long long lo = 0, kb, total = 0;
    bool shadow = false;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%llx-", &lo) == 1 && strchr(line, '-') && strchr(line, ' ') > strchr(line, '-'))
            shadow = lo >= 0x7fff8000ull && lo < 0x10007fff8000ull;
        else if (sscanf(line, "Rss: %llu kB", &kb) == 1 && !shadow)
            total += kb;
    }
    fclose(f);
    return total * KiB;
#else
    FILE *f = fopen("/proc/self/statm", "r");
    cr_assert_not_null(f);
    unsigned long size = 0, res = 0;
    cr_assert_eq(fscanf(f, "%lu %lu", &size, &res), 2);
    fclose(f);
    return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
#endif
}

static double secs(void) { return (double)rt__nanotime() / 1e9; }

/* The background scavenger's CPU budget, in percent of one CPU: 1% of
   each of the program's CPUs, at most 50. */
static double budget_percent(void) { return rt__procs() < 50 ? rt__procs() : 50; }

static rt_mem_stats stats(void) {
    rt_mem_stats s;
    rt_read_mem_stats(&s);
    return s;
}

static void start(int pct, int64_t limit, const char *debug, bool scavenger) {
    test_start((rt_options){ .gc_percent = pct, .memory_limit = limit, .scan_thread_stacks = RT_SCAN_STACKS_OFF,
                             .debug = debug });
    if (scavenger) rt__scavenger_start();
}

static void stop(void) {
    rt__scavenger_stop();
    rt_shutdown();
}

/* A full collection; then hand the scavenger the new goal, as the
   collector does after each cycle (unless it already did).  Returns the
   heap goal. */
static uint64_t collect(void) {
    rt_scav_stats a, b;
    rt__scavenger_read_stats(&a);
    rt_gc();
    rt__scavenger_read_stats(&b);
    rt_mem_stats s = stats();
    if (b.wakes == a.wakes) rt__scavenger_wake(s.next_gc ? s.next_gc : UINT64_MAX);
    return s.next_gc;
}

/* 50 ms with the P handed back, so a collection need not wait for us. */
static void nap_blocking(void) {
    rt_enter_blocking();
    usleep(50000);
    rt_exit_blocking();
}

/* Write one byte per OS page so the memory is really resident. */
static void touch(void *p, size_t n) {
    for (size_t i = 0; i < n; i += 4096) ((volatile char *)p)[i] = 1;
}

/* ---- The spike -------------------------------------------------------------------- */

#define LIVE_LARGE 48                 /* x 1 MiB */
#define LIVE_SMALL 65536              /* x 256 B = 16 MiB */
#define SPIKE_LARGE 512               /* x 1 MiB */
#define SPIKE_SMALL 131072            /* x 4 KiB = 512 MiB */
static void *live_large[LIVE_LARGE], *live_small[LIVE_SMALL];
static void *spike_large[SPIKE_LARGE], *spike_small[SPIKE_SMALL];
static rt_root *roots[4];

static void build_live(void) {
    roots[0] = rt_root_add_range(live_large, sizeof live_large, RT_ROOT_PRECISE);
    roots[1] = rt_root_add_range(live_small, sizeof live_small, RT_ROOT_PRECISE);
    for (int i = 0; i < LIVE_LARGE; i++) touch(live_large[i] = rt_alloc(MiB, RT_NOSCAN), MiB);
    for (int i = 0; i < LIVE_SMALL; i++) memset(live_small[i] = rt_alloc(256, RT_NOSCAN), 7, 256);
}

static void spike(void) {
    roots[2] = rt_root_add_range(spike_large, sizeof spike_large, RT_ROOT_PRECISE);
    roots[3] = rt_root_add_range(spike_small, sizeof spike_small, RT_ROOT_PRECISE);
    for (int i = 0; i < SPIKE_LARGE; i++) touch(spike_large[i] = rt_alloc(MiB, RT_NOSCAN), MiB);
    for (int i = 0; i < SPIKE_SMALL; i++) touch(spike_small[i] = rt_alloc(4096, RT_NOSCAN), 4096);
}

static void drop_spike(void) {
    memset(spike_large, 0, sizeof spike_large);
    memset(spike_small, 0, sizeof spike_small);
}

static void drop_all(void) {
    for (int i = 0; i < 4; i++) if (roots[i]) rt_root_remove(roots[i]);
    memset(roots, 0, sizeof roots);
    memset(live_large, 0, sizeof live_large);
    memset(live_small, 0, sizeof live_small);
    drop_spike();
}

/* Issue 7's 10 s, at a CPU budget that is fixed (Go's 1% per proc).  The
   CPU the release costs is not fixed: the kernel took from 60 ms per GiB
   on an idle host to 230 ms under load (CI: 968 MiB for 0.224 s, which
   the budget pays for in 11 s), and under AddressSanitizer the
   scavenger's own code runs two to three times slower.  So the bound is
   10 s or, when the release cost more CPU than the budget pays for in
   10 s, the hold on the spike's goal (RT__SCAV_HOLD_NS) and the time the
   budget needs for that CPU, plus a quarter; and the scavenger must have
   spent its budget all along once the hold lapsed, so one that parks,
   oversleeps or stops early fails either way. */
#define DEADLINE_S 10.0
#define GIVE_UP_S 40.0

Test(scavenge, rss_falls_to_the_goal_by_itself_after_a_spike, .timeout = 60) {
    start(100, 0, NULL, true);
    build_live();
    collect();
    uint64_t rss_live = rss();
    spike();
    collect();
    uint64_t rss_peak = rss(), meta_peak = rt__metapool_resident_total();
    cr_assert_geq(rss_peak, rss_live + GiB * 9 / 10, "the spike is not resident: %llu -> %llu",
                  (unsigned long long)rss_live, (unsigned long long)rss_peak);
    drop_spike();
    rt_scav_stats s0, s1;
    rt__scavenger_read_stats(&s0);
    double t0 = secs();
    uint64_t goal = collect();
    uint64_t target = goal + goal / 10;
    double t_end = t0 + GIVE_UP_S, t_hit = -1;
    uint64_t last = 0;
    while (secs() < t_end) {
        last = rss();
        if (last <= target) { t_hit = secs() - t0; break; }
        nap_blocking();
    }
    /* The spike's span structs and bitmaps go back too, in the same
       rounds (they are released before the heap pages of each round). */
    uint64_t meta = rt__metapool_resident_total();
    while (meta > meta_peak / 4 && secs() < t_end) {
        nap_blocking();
        meta = rt__metapool_resident_total();
    }
    double t1 = secs();
    rt__scavenger_read_stats(&s1);
    double cpu = (double)(s1.bg_cpu_ns - s0.bg_cpu_ns) / 1e9, wall = t1 - t0;
    rt_mem_stats ms = stats();
    fprintf(stderr, "scavenge: spike: rss live %.1f MiB, peak %.1f MiB, goal %.1f MiB (target %.1f MiB); "
            "rss %.1f MiB after %.2f s; scavenger released %.1f MiB bg + %.1f MiB eager, "
            "cpu %.3f s over %.2f s = %.2f%% of one CPU (work %.3f s in %llu rounds, the longest %.1f ms, "
            "%.3f s beyond the rounds' bound); heap_released %.1f MiB\n",
            (double)rss_live / MiB, (double)rss_peak / MiB, (double)goal / MiB, (double)target / MiB,
            (double)last / MiB, t_hit, (double)(s1.released_bg - s0.released_bg) / MiB,
            (double)(s1.released_eager - s0.released_eager) / MiB, cpu, wall, 100 * cpu / wall,
            (double)(s1.bg_work_ns - s0.bg_work_ns) / 1e9, (unsigned long long)(s1.bg_rounds - s0.bg_rounds),
            (double)s1.bg_longest_round_ns / 1e6, (double)(s1.bg_unpaced_ns - s0.bg_unpaced_ns) / 1e9,
            (double)ms.heap_released / MiB);
    fprintf(stderr, "scavenge: spike: span and bitmap pools %.2f MiB at the peak, %.2f MiB after; %.2f MiB of "
            "metadata released in the background\n", (double)meta_peak / MiB, (double)meta / MiB,
            (double)(s1.released_meta - s0.released_meta) / MiB);
    /* The pacing is judged on the CPU its sleeps pay for: a round longer
       than the rounds' bound (a hiccup outside the runtime) is not slept
       off. */
    double procs = rt__procs(), paced = cpu - (double)(s1.bg_unpaced_ns - s0.bg_unpaced_ns) / 1e9;
    double budget = budget_percent() / 100;     /* of one CPU */
    double paced_work = (double)(s1.bg_work_ns - s0.bg_work_ns - (s1.bg_unpaced_ns - s0.bg_unpaced_ns)) / 1e9;
    double hold = (double)RT__SCAV_HOLD_NS / 1e9, needed = (hold + paced_work / budget) * 1.25;
    double deadline = needed > DEADLINE_S ? needed : DEADLINE_S;
    if (deadline > DEADLINE_S)
        fprintf(stderr, "scavenge: spike: the kernel took %.0f ms of CPU per GiB released: the budget pays for "
                "that in %.1f s after the %.1f s hold, so the bound is %.1f s instead of %g s\n",
                paced_work * 1e3 * (double)GiB / (double)(s1.released_bg - s0.released_bg + 1),
                paced_work / budget, hold, deadline, DEADLINE_S);
    cr_assert(t_hit >= 0 && t_hit <= deadline, "RSS fell to 1.1 x goal (%llu MiB) %s %.1f s; the bound is %.1f s",
              (unsigned long long)(target / MiB), t_hit < 0 ? "not even in" : "only after",
              t_hit < 0 ? GIVE_UP_S : t_hit, deadline);
    cr_assert_gt(s1.released_bg - s0.released_bg, GiB / 2, "the background thread did not do the work");
    cr_assert_leq(meta, meta_peak / 4, "span and bitmap pools still hold %llu of %llu bytes",
                  (unsigned long long)meta, (unsigned long long)meta_peak);
    /* Within its budget, and spending it while there was work to do. */
    cr_assert_leq(paced / wall, 1.5 * budget, "scavenger used %.2f%% of one CPU, %.2f%% of %g",
                  100 * paced / wall, 100 * paced / wall / procs, procs);
    cr_assert_geq(paced / (wall - hold), 0.5 * budget,
                  "scavenger used only %.2f%% of one CPU after the hold, its budget is %.0f%%",
                  100 * paced / (wall - hold), 100 * budget);
    /* Live objects survived. */
    for (int i = 0; i < LIVE_SMALL; i += 97) cr_assert_eq(((char *)live_small[i])[255], 7);
    drop_all();
    stop();
}

/* A round's sleep keeps the thread at its budget, and a round that took
   far longer than planned (a hiccup in the kernel or the hypervisor) does
   not put it to sleep for 49 times as long: on CI one such round once
   slept through the spike test's 10 s. */
Test(scavenge, a_long_round_does_not_stop_the_thread_for_long) {
    start(100, 0, NULL, false);
    double b = budget_percent();
    uint64_t ms = 1000000;
    cr_assert_eq(rt__scavenger_sleep_for(1 * ms), (uint64_t)((double)ms * (100 - b) / b));
    cr_assert_eq(rt__scavenger_sleep_for(4 * ms), 4 * rt__scavenger_sleep_for(1 * ms));
    cr_assert_eq(rt__scavenger_sleep_for(500 * ms), rt__scavenger_sleep_for(10 * ms),
                 "a 500 ms round sleeps %llu ns", (unsigned long long)rt__scavenger_sleep_for(500 * ms));
    cr_assert_leq(rt__scavenger_sleep_for(10000 * ms), 100 * 10 * ms);
    stop();
}

/* n spans of 4 MiB straight from the heap, every page written. */
static void alloc_resident_spans(rt_span **sp, int n) {
    for (int i = 0; i < n; i++) {
        sp[i] = rt__heap_alloc_span(512, rt__spanclass(0, true), NULL);
        cr_assert_not_null(sp[i]);
        touch((void *)sp[i]->hot.base, 4 * MiB);
    }
}

/* The collector wakes the scavenger at mark termination, before the sweep
   frees anything.  A thread that found nothing to release while its goal
   was unmet must be woken by the spans freed afterwards. */
Test(scavenge, spans_freed_after_the_wake_are_released_without_another_wake) {
    start(RT_GC_OFF, 0, NULL, true);
    static rt_span *sp[64];
    alloc_resident_spans(sp, 64);
    rt__scavenger_wake(512 * MiB);                 /* samples 256 MiB in use */
    rt__scavenger_wake(64 * MiB);                  /* goal 256 x 64/512 x 1.1 = 35.2 MiB: unmet */
    rt_scav_stats a, b;
    rt__scavenger_read_stats(&a);
    cr_assert_lt(a.gc_goal, 36 * MiB, "goal %llu", (unsigned long long)a.gc_goal);
    usleep(300000);
    rt__scavenger_read_stats(&a);
    cr_assert_eq(a.released_bg, 0, "nothing was free");
    uint64_t rss0 = rss();
    for (int i = 0; i < 48; i++) rt__heap_free_span(sp[i]);
    double t0 = secs();
    do {
        usleep(20000);
        rt__scavenger_read_stats(&b);
    } while (b.released_bg < 192 * MiB && secs() - t0 < 10);
    fprintf(stderr, "scavenge: 192 MiB freed after the wake: %.1f MiB released in %.2f s, rss %.1f -> %.1f MiB\n",
            (double)b.released_bg / MiB, secs() - t0, (double)rss0 / MiB, (double)rss() / MiB);
    cr_assert_geq(b.released_bg, 192 * MiB);
    cr_assert_eq(b.wakes, a.wakes, "no wake in between");
    cr_assert_leq(rss(), rss0 - 180 * MiB);
    for (int i = 48; i < 64; i++) rt__heap_free_span(sp[i]);
    rt__heap_check();
    stop();
}

/* A goal stands for RT__SCAV_HOLD_NS after it was set, so a heap that
   shrinks for a moment keeps its pages; when the hold lapses the lower
   goal applies with no other wake. */
Test(scavenge, a_lower_goal_waits_for_the_higher_one_to_lapse) {
    start(RT_GC_OFF, 0, NULL, true);
    static rt_span *sp[32];
    alloc_resident_spans(sp, 32);
    rt__scavenger_wake(256 * MiB);                 /* samples 128 MiB in use */
    double t0 = secs();
    rt__scavenger_wake(256 * MiB);                 /* goal 140.8 MiB: met, and held */
    for (int i = 0; i < 24; i++) rt__heap_free_span(sp[i]);
    rt__scavenger_wake(64 * MiB);                  /* goal 128 x 64/256 x 1.1 = 35.2 MiB: unmet */
    rt_scav_stats a, b;
    rt__scavenger_read_stats(&a);
    cr_assert_lt(a.gc_goal, 36 * MiB, "goal %llu", (unsigned long long)a.gc_goal);
    double hold = (double)RT__SCAV_HOLD_NS / 1e9, t_read;
    do {
        usleep(20000);
        rt__scavenger_read_stats(&b);
        t_read = secs() - t0;
    } while (t_read < hold * 0.8);
    /* A test thread descheduled past the hold (a loaded machine) read too
       late to tell. */
    if (t_read < hold)
        cr_assert_eq(b.released_bg, a.released_bg, "%llu bytes released while a higher goal stood",
                     (unsigned long long)(b.released_bg - a.released_bg));
    else
        fprintf(stderr, "scavenge: hold: read %.2f s after the higher goal, too late to check it\n", t_read);
    while (rt__heap_retained_bytes() > a.gc_goal + MiB && secs() - t0 < hold + 10) usleep(20000);
    rt__scavenger_read_stats(&b);
    fprintf(stderr, "scavenge: hold: %.1f MiB released %.2f s after the higher goal was set (hold %.1f s)\n",
            (double)b.released_bg / MiB, secs() - t0, hold);
    cr_assert_leq(rt__heap_retained_bytes(), a.gc_goal + MiB, "the lower goal was not reached after the hold");
    cr_assert_eq(b.wakes, a.wakes, "no wake in between");
    for (int i = 24; i < 32; i++) rt__heap_free_span(sp[i]);
    rt__heap_check();
    stop();
}

/* A chunk released whole takes the page of its arena's span map with it
   (mincore tells whether that page is resident); the map reads NULL there
   and works again when a span comes back. */
static bool resident(const void *p) {
    uintptr_t page = (uintptr_t)p & ~((uintptr_t)sysconf(_SC_PAGESIZE) - 1);
    unsigned char v = 0;
    cr_assert_eq(mincore((void *)page, 1, &v), 0);
    return v & 1;
}

Test(scavenge, a_released_chunk_releases_its_span_map_page) {
    start(RT_GC_OFF, 0, NULL, false);
    rt_span *s = rt__heap_alloc_span(1024, rt__spanclass(0, true), NULL);    /* 8 MiB: holds a whole chunk */
    cr_assert_not_null(s);
    uintptr_t c = (s->hot.base + RT_CHUNK_BYTES - 1) & ~(RT_CHUNK_BYTES - 1);
    cr_assert_leq(c + RT_CHUNK_BYTES, s->hot.base + 1024 * RT_PAGE_SIZE);
    rt_arena *a = rt__arena_of(c);
    rt_span **entry = &a->spans[(c >> RT_PAGE_SHIFT) % RT_PAGES_PER_ARENA];
    cr_assert_eq(*entry, s);
    cr_assert(resident(entry), "the map page of a live span is not resident");
    rt__heap_free_span(s);
    rt_free_os_memory();
    cr_assert_not(resident(entry), "the span map page of a released chunk is still resident");
    cr_assert_null(rt__span_of(c + 100));
    s = rt__heap_alloc_span(1024, rt__spanclass(0, true), NULL);
    cr_assert_not_null(s);
    cr_assert_eq(rt__span_of(s->hot.base + 5 * RT_CHUNK_BYTES / 4), s, "the map lost an entry after its page came back");
    rt__heap_free_span(s);
    rt__heap_check();
    stop();
}

/* A new small-object span is faulted in whole as it is made (one madvise
   instead of a fault per OS page, runtime/mheap.c); a large object's
   pages are left to fault when the program uses them. */
Test(scavenge, a_new_small_span_is_resident_at_once_and_a_large_object_is_not) {
    start(RT_GC_OFF, 0, NULL, false);
    unsigned cls = 0;
    for (unsigned k = 1; k < RT_NUM_SIZE_CLASSES && !cls; k++)
        if (rt__class_to_npages[k] >= 2) cls = k;
    cr_assert_neq(cls, 0u);
    void *p = (rt_alloc)(rt__class_to_size[cls], RT_NOSCAN);
    rt_span *s = rt__span_of_heap((uintptr_t)p);
    cr_assert_not_null(s);
    size_t os_page = (size_t)sysconf(_SC_PAGESIZE);
    for (uintptr_t a = s->hot.base; a < s->hot.base + s->npages * RT_PAGE_SIZE; a += os_page)
        cr_assert(resident((void *)a), "page %#lx of a fresh %zu-page span (class %u) is not resident",
                  (unsigned long)a, s->npages, cls);
    uintptr_t big = (uintptr_t)(rt_alloc)(4 * MiB, RT_NOSCAN);
    size_t pages = 4 * MiB / os_page, res = 0;
    for (size_t i = 0; i < pages; i++) res += resident((void *)(big + i * os_page));
    cr_assert_lt(res, pages / 4, "%zu of the %zu pages of an untouched large object are resident", res, pages);
    stop();
}

Test(scavenge, free_os_memory_returns_everything_at_once, .timeout = 60) {
    start(100, 0, NULL, false);
    build_live();
    collect();
    spike();
    collect();
    drop_spike();
    uint64_t goal = collect();
    uint64_t before = rss();
    double t0 = secs();
    rt_free_os_memory();
    double dt = secs() - t0;
    uint64_t after = rss();
    rt_mem_stats s = stats();
    fprintf(stderr, "scavenge: rt_free_os_memory: rss %.1f -> %.1f MiB in %.3f s (goal %.1f MiB), "
            "heap_sys %.1f MiB, inuse %.1f MiB, released %.1f MiB\n", (double)before / MiB, (double)after / MiB, dt,
            (double)goal / MiB, (double)s.heap_sys / MiB, (double)s.heap_inuse / MiB, (double)s.heap_released / MiB);
    cr_assert_leq(after, goal + goal / 10, "RSS %llu MiB above 1.1 x goal %llu MiB right after rt_free_os_memory",
                  (unsigned long long)(after / MiB), (unsigned long long)(goal / MiB));
    cr_assert_eq(s.heap_released, s.heap_idle, "every free page is released: idle %llu, released %llu",
                 (unsigned long long)s.heap_idle, (unsigned long long)s.heap_released);
    rt__heap_check();
    drop_all();
    stop();
}

Test(scavenge, heap_released_is_exact) {
    start(RT_GC_OFF, 0, NULL, false);
    rt_mem_stats s = stats();
    cr_assert_eq(s.heap_released, s.heap_idle, "a fresh heap is all released");
    static void *keep[256];
    rt_root *r = rt_root_add_range(keep, sizeof keep, RT_ROOT_PRECISE);
    for (int i = 0; i < 256; i++) touch(keep[i] = rt_alloc(256 * KiB, RT_NOSCAN), 256 * KiB);
    s = stats();
    cr_assert_eq(s.heap_released, s.heap_sys - s.heap_inuse, "only never-used pages are released");
    cr_assert_eq(s.heap_released, (uint64_t)rt__pages_scavenged(rt__heap.pages) * RT_PAGE_SIZE);
    for (int i = 0; i < 256; i += 2) keep[i] = NULL;
    rt_gc();
    s = stats();
    uint64_t freed = 128 * 256 * KiB;
    cr_assert_eq(s.heap_sys - s.heap_inuse - s.heap_released, freed, "64 MiB free and not released");
    cr_assert_eq(rt__heap_free_bytes(), freed);
    /* Release 5 MiB by hand: exactly that much more is released. */
    uint64_t n = rt__scavenge(5 * MiB, true);
    cr_assert_geq(n, 5 * MiB);
    rt_mem_stats t = stats();
    cr_assert_eq(t.heap_released - s.heap_released, n);
    cr_assert_eq(t.heap_sys, s.heap_sys);
    rt_free_os_memory();
    t = stats();
    cr_assert_eq(t.heap_released, t.heap_idle);
    cr_assert_eq(rt__heap_retained_bytes(), t.heap_inuse);
    cr_assert_eq(rt__mapped_ready(), t.heap_inuse + rt__heap_metadata_bytes());
    rt__heap_check();
    rt_root_remove(r);
    stop();
}

/* Released pages read zero: known without clearing after MADV_DONTNEED;
   after MADV_FREE the old data may still be there and must be cleared. */
static void reuse_is_zero(const char *debug, bool dontneed) {
    start(RT_GC_OFF, 0, debug, false);
    static void *keep[1];
    rt_root *r = rt_root_add_range(keep, sizeof keep, RT_ROOT_PRECISE);
    /* A large object and a span of small ones, dirtied, then freed. */
    char *big = rt_alloc(MiB, RT_NOSCAN);
    memset(big, 0xab, MiB);
    static char *small[1024];
    for (int i = 0; i < 1024; i++) memset(small[i] = rt_alloc(512, RT_NOSCAN), 0xcd, 512);
    uintptr_t big_at = (uintptr_t)big, small_at = (uintptr_t)small[0];
    big = NULL;
    memset(small, 0, sizeof small);
    rt_gc();
    rt_free_os_memory();
    cr_assert_eq(rt__heap_free_bytes(), 0);
    char *big2 = rt_alloc(MiB, RT_NOSCAN);
    keep[0] = big2;
    for (size_t i = 0; i < MiB; i++) cr_assert_eq(big2[i], 0, "byte %zu of a reused large object is %#x", i, big2[i] & 0xff);
    /* The small span's pages, straight from the page heap (lowest first),
       all released: known zero only when released with MADV_DONTNEED.
       (Through rt_alloc the flag cannot be seen: an mcache zeroes a span
       it takes with every slot free, and clears it.) */
    bool zeroed;
    rt_span *probe = rt__heap_alloc_span(1, rt__spanclass(rt__size_to_class_inline(512), true), &zeroed);
    cr_assert_not_null(probe);
    bool same_pages = probe->hot.base == (small_at & ~(uintptr_t)(RT_PAGE_SIZE - 1));
    fprintf(stderr, "scavenge: %s: large reused at the same address %d, small span's pages %d; known zero %d\n",
            debug, (uintptr_t)big2 == big_at, same_pages, zeroed);
    if (same_pages) cr_assert_eq(zeroed, dontneed);
    rt__heap_free_span(probe);
    char *s2 = rt_alloc(512, RT_NOSCAN);
    for (int i = 0; i < 512; i++) cr_assert_eq(s2[i], 0, "byte %d of a reused small object is %#x", i, s2[i] & 0xff);
    rt_root_remove(r);
    stop();
}

Test(scavenge, released_pages_are_zero_with_madv_dontneed) { reuse_is_zero("madvdontneed=1", true); }
Test(scavenge, released_pages_are_cleared_with_madv_free) { reuse_is_zero("madvdontneed=0", false); }

/* ---- RTDEBUG=hugepages ------------------------------------------------------------- */

/* The VmFlags line of the mapping holding p, from /proc/self/smaps. */
static void vmflags_of(const void *p, char *out, size_t n) {
    FILE *f = fopen("/proc/self/smaps", "r");
    cr_assert_not_null(f);
    char line[512];
    bool inside = false;
    out[0] = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        else if (inside && strncmp(line, "VmFlags:", 8) == 0) { snprintf(out, n, "%s", line + 8); break; }
    }
    fclose(f);
    cr_assert(out[0], "no mapping holds %p", p);
}

static void heap_vmflags(const char *debug, char *out, size_t n) {
    start(100, 0, debug, false);
    void *p = rt_alloc(64, RT_NOSCAN);
    vmflags_of(p, out, n);
    fprintf(stderr, "scavenge: %s: heap VmFlags:%s", debug, out);
    stop();
}

Test(scavenge, hugepages_setting_advises_the_heap) {
    char f[512];
    heap_vmflags("hugepages=1", f, sizeof f);
    cr_assert(strstr(f, " hg"), "hugepages=1: no MADV_HUGEPAGE on the heap:%s", f);
    heap_vmflags("hugepages=2", f, sizeof f);
    cr_assert(strstr(f, " nh"), "hugepages=2: no MADV_NOHUGEPAGE on the heap:%s", f);
    heap_vmflags("hugepages=0", f, sizeof f);
    cr_assert(!strstr(f, " hg") && !strstr(f, " nh"), "hugepages=0 leaves the system setting:%s", f);
}

/* ---- Growth direction ------------------------------------------------------------ */

/* The page allocator hands out the lowest free pages first, so the heap
   must grow upward, or every new arena (the kernel maps top-down) would
   take the allocations while pages a collection just freed, still
   resident, sit idle above it.  Arena 1 is filled with A, B spills into
   arena 2, A dies: the next allocations must reuse A's pages, not arena
   2's never-touched tail.  ThreadSanitizer builds keep the kernel's
   placement (runtime/os.c), so there the check is skipped. */
Test(scavenge, freed_pages_are_reused_before_a_new_arena_s_fresh_ones) {
#if RT_TSAN_BUILD
    cr_skip("ThreadSanitizer: the kernel places the arenas");
#endif
    enum { NA = 60, NB = 10, NC = 20 };    /* x 1 MiB; an arena is 64 MiB */
    static void *a[NA], *b[NB];
    start(100, 0, NULL, false);
    rt_root *ra = rt_root_add_range(a, sizeof a, RT_ROOT_PRECISE);
    rt_root *rb = rt_root_add_range(b, sizeof b, RT_ROOT_PRECISE);
    for (int i = 0; i < NA; i++) touch(a[i] = rt_alloc(MiB, RT_NOSCAN), MiB);
    for (int i = 0; i < NB; i++) touch(b[i] = rt_alloc(MiB, RT_NOSCAN), MiB);
    uintptr_t arena1 = (uintptr_t)a[0] & ~(RT_ARENA_BYTES - 1);
    uintptr_t arena2 = (uintptr_t)b[NB - 1] & ~(RT_ARENA_BYTES - 1);
    cr_assert_neq(arena1, arena2, "B did not spill into a second arena");
    cr_assert_gt(arena2, arena1, "the heap grew downward: arena 2 at %#lx below arena 1 at %#lx",
                 (unsigned long)arena2, (unsigned long)arena1);
    memset(a, 0, sizeof a);
    collect();
    for (int i = 0; i < NC; i++) {
        uintptr_t p = (uintptr_t)rt_alloc(MiB, RT_NOSCAN);
        cr_assert(p >= arena1 && p < arena1 + RT_ARENA_BYTES,
                  "allocation %d after A died went to %#lx, not to A's freed arena at %#lx", i,
                  (unsigned long)p, (unsigned long)arena1);
    }
    rt_root_remove(ra);
    rt_root_remove(rb);
    stop();
}

/* ---- scavtrace ---------------------------------------------------------------------- */

static char trace_buf[8192];

static void trace_scenario(void) {
    static void *keep[64];
    rt_root *r = rt_root_add_range(keep, sizeof keep, RT_ROOT_PRECISE);
    for (int i = 0; i < 64; i++) touch(keep[i] = rt_alloc(MiB, RT_NOSCAN), MiB);
    collect();
    memset(keep, 0, 32 * sizeof keep[0]);
    collect();
    rt_free_os_memory();
    rt_root_remove(r);
}

Test(scavenge, scavtrace_prints_gos_line) {
    start(100, 0, "scavtrace=1", false);
    fflush(stderr);
    FILE *tmp = tmpfile();
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    trace_scenario();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(trace_buf, 1, sizeof trace_buf - 1, tmp);
    trace_buf[n] = 0;
    fclose(tmp);
    fprintf(stderr, "%s", trace_buf);
    int lines = 0, forced = 0;
    for (char *line = trace_buf, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = 0;
        unsigned long long bg, eager, now;
        unsigned util;
        char tail[32] = "";
        int k = sscanf(line, "scav %llu KiB work (bg), %llu KiB work (eager), %llu KiB now, %u%% util%31[^\n]",
                       &bg, &eager, &now, &util, tail);
        if (strncmp(line, "scav ", 5) != 0) continue;
        cr_assert_geq(k, 4, "malformed scavtrace line: %s", line);
        cr_assert_leq(util, 100, "util over 100%%: %s", line);
        lines++;
        if (strcmp(tail, " (forced)") == 0) {
            forced++;
            /* The background thread may have released part of the 32 MiB
               first; what is released in all must cover them. */
            cr_assert_geq(now, 32 * 1024, "%llu KiB released after rt_free_os_memory, want the 32 MiB freed", now);
        } else {
            cr_assert_str_empty(tail, "unexpected tail: %s", line);
        }
    }
    /* One line per collection (the collector wakes the scavenger after each
       mark), plus one for rt_free_os_memory's forced release. */
    uint64_t cycles = stats().num_gc;
    cr_assert_geq(cycles, 3, "two collections and rt_free_os_memory's ran %llu", (unsigned long long)cycles);
    cr_assert_eq((uint64_t)lines, cycles + 1, "%llu cycles and one forced release; got %d lines",
                 (unsigned long long)cycles, lines);
    cr_assert_eq(forced, 1);
    rt_mem_stats s = stats();
    cr_assert_eq(s.heap_released, s.heap_idle, "rt_free_os_memory left free pages unreleased");
    stop();
}

/* ---- The page allocator's take/return --------------------------------------------- */

#define PG     ((uintptr_t)8192)
#define CHUNK  ((uintptr_t)RT_CHUNK_BYTES)
#define CP     RT_CHUNK_PAGES

Test(scavenge, take_is_highest_first_and_keeps_huge_pages_whole) {
    rt__pagealloc *pa = rt__pages_new();
    cr_assert_not_null(pa);
    uintptr_t base = (uintptr_t)0x500000000000;
    cr_assert_eq(rt__pages_grow(pa, base, 4 * CHUNK), 0);
    size_t sc;
    cr_assert_eq(rt__pages_alloc(pa, 4 * CP, &sc), base);
    cr_assert_eq(sc, 4 * CP, "fresh pages are scavenged");
    uintptr_t b;
    cr_assert_eq(rt__pages_scav_take(pa, 8, true, &b), 0, "nothing free");
    /* Free a small run in chunk 1 and a whole huge page in chunk 2. */
    rt__pages_free(pa, base + CHUNK + 10 * PG, 20);
    rt__pages_free(pa, base + 2 * CHUNK + 256 * PG, 256);
    size_t n = rt__pages_scav_take(pa, 16, true, &b);
    cr_assert_eq(b, base + 2 * CHUNK + 256 * PG, "the highest free huge page, whole");
    cr_assert_eq(n, 256);
    cr_assert(rt__pages_is_allocated(pa, b), "taken pages read as in use");
    cr_assert_eq(rt__pages_check(pa), 0);
    rt__pages_scav_return(pa, b, n, true);
    cr_assert(rt__pages_is_scavenged(pa, b + 255 * PG));
    n = rt__pages_scav_take(pa, 16, true, &b);
    cr_assert_eq(b, base + CHUNK + 14 * PG, "then the top 16 pages of the run in chunk 1");
    cr_assert_eq(n, 16);
    rt__pages_scav_return(pa, b, n, false);       /* the OS refused: candidates again */
    cr_assert(!rt__pages_is_scavenged(pa, b));
    n = rt__pages_scav_take(pa, 100, true, &b);
    cr_assert_eq(b, base + CHUNK + 10 * PG);
    cr_assert_eq(n, 20);
    rt__pages_scav_return(pa, b, n, true);
    cr_assert_eq(rt__pages_scav_take(pa, 100, true, &b), 0);
    cr_assert_eq(rt__pages_scavenged(pa), 276);
    cr_assert_eq(rt__pages_check(pa), 0);
    /* Scavenged pages are reported when allocated again. */
    cr_assert_eq(rt__pages_alloc(pa, 20, &sc), base + CHUNK + 10 * PG);
    cr_assert_eq(sc, 20);
    cr_assert_eq(rt__pages_check(pa), 0);
    rt__pages_destroy(pa);
}

Test(scavenge, background_take_skips_dense_chunks) {
    rt__pagealloc *pa = rt__pages_new();
    uintptr_t base = (uintptr_t)0x500000000000, b;
    cr_assert_eq(rt__pages_grow(pa, base, 2 * CHUNK), 0);
    size_t sc;
    cr_assert_eq(rt__pages_alloc(pa, 2 * CP, &sc), base);
    rt__pages_free(pa, base + CHUNK + 100 * PG, 10);       /* chunk 1: 502 in use: dense */
    rt__pages_free(pa, base + 50 * PG, 40);                /* chunk 0: 472 in use */
    size_t n = rt__pages_scav_take(pa, 64, false, &b);
    cr_assert_eq(b, base + 50 * PG, "the background skips the dense chunk");
    cr_assert_eq(n, 40);
    rt__pages_scav_return(pa, b, n, true);
    cr_assert_eq(rt__pages_scav_take(pa, 64, false, &b), 0, "only dense chunks left");
    rt__pages_scav_newgen(pa);
    cr_assert_eq(rt__pages_scav_take(pa, 64, false, &b), 0, "still dense after a new generation");
    n = rt__pages_scav_take(pa, 64, true, &b);
    cr_assert_eq(b, base + CHUNK + 100 * PG, "forced scavenging ignores density");
    cr_assert_eq(n, 10);
    rt__pages_scav_return(pa, b, n, true);
    cr_assert_eq(rt__pages_check(pa), 0);
    /* A free below the background cursor is found again. */
    rt__pages_free(pa, base + 300 * PG, 5);
    n = rt__pages_scav_take(pa, 64, false, &b);
    cr_assert_eq(b, base + 300 * PG);
    cr_assert_eq(n, 5);
    rt__pages_scav_return(pa, b, n, true);
    cr_assert_eq(rt__pages_check(pa), 0);
    rt__pages_destroy(pa);
}

/* ---- The memory limit ----------------------------------------------------------------- */

Test(scavenge, memory_limit_heap_goal) {
    start(100, 0, NULL, false);
    cr_assert_eq(rt__memlimit_heap_goal(0), UINT64_MAX, "no limit, no goal");
    rt_set_memory_limit((int64_t)(256 * MiB));
    uint64_t g = rt__memlimit_heap_goal(0);
    uint64_t nonheap = rt__mapped_ready() - rt__heap_free_bytes();   /* nothing allocated yet */
    fprintf(stderr, "scavenge: limit 256 MiB: goal %.2f MiB with %.2f MiB mapped (%.2f MiB metadata)\n",
            (double)g / MiB, (double)rt__mapped_ready() / MiB, (double)rt__heap_metadata_bytes() / MiB);
    cr_assert_lt(g, 256 * MiB - nonheap);
    cr_assert_geq(g, (256 * MiB - nonheap) * 96 / 100, "3%% headroom only");
    cr_assert_eq(rt__memlimit_heap_goal(300 * MiB), 300 * MiB, "never below the marked heap");
    rt_set_memory_limit((int64_t)(64 * KiB));
    cr_assert_eq(rt__memlimit_heap_goal(12345), 12345, "metadata alone exceeds the limit: collect continuously");
    rt_set_memory_limit(0);
    cr_assert_eq(rt__memlimit_heap_goal(0), UINT64_MAX);
    stop();
}

#define LIMIT (256 * MiB)
static void *lim_live[4096];

Test(scavenge, live_heap_near_the_limit_keeps_retained_memory_under_it, .timeout = 120) {
    start(100, (int64_t)LIMIT, NULL, true);
    rt_root *r = rt_root_add_range(lim_live, sizeof lim_live, RT_ROOT_PRECISE);
    const char *e = getenv("RT_SEED");
    unsigned seed = e ? (unsigned)strtoul(e, NULL, 10) : (unsigned)time(NULL);
    fprintf(stderr, "scavenge: memory limit test seed %u (replay with RT_SEED=%u)\n", seed, seed);
    srand(seed);
    uint64_t live = 0, worst = 0, worst_mapped = 0, worst_any = 0;
    int nlive = 0, steps = 0;
    /* Grow the live heap to 90% of the limit in 16 MiB steps of mixed
       sizes, with twice as much garbage (written) between the steps. */
    while (live + 16 * MiB <= LIMIT * 9 / 10) {
        uint64_t step = 0;
        while (step < 16 * MiB) {
            size_t sz = (size_t)(rand() % 4 == 0 ? 64 * KiB + rand() % (512 * KiB) : 4 * KiB + rand() % (28 * KiB));
            /* Rooted at once: stacks are not scanned, and the garbage
               allocations below may start a cycle. */
            int k = nlive < 4096 ? nlive++ : rand() % 4096;
            if (lim_live[k]) live -= rt_usable_size(lim_live[k]);
            void *hold = lim_live[k] = rt_alloc(sz, RT_NOSCAN);
            cr_assert_not_null(hold);
            touch(hold, sz);
            for (int g = 0; g < 2; g++) touch(rt_alloc(sz, RT_NOSCAN), sz);
            uint64_t rr = rt__heap_retained_bytes();
            if (rr > worst_any) worst_any = rr;
            uint64_t us = rt_usable_size(hold);
            step += us;
            live += us;
        }
        collect();
        rt_mem_stats s = stats();
        uint64_t retained = s.heap_sys - s.heap_released, mapped = rt__mapped_ready();
        if (retained > worst) worst = retained;
        if (mapped > worst_mapped) worst_mapped = mapped;
        steps++;
        cr_assert_leq(retained, LIMIT + LIMIT / 20, "step %d: live %llu MiB, heap_sys - heap_released %llu MiB > 1.05 x limit",
                      steps, (unsigned long long)(live / MiB), (unsigned long long)(retained / MiB));
    }
    cr_assert_leq(worst_any, LIMIT + LIMIT / 20, "between collections heap_sys - heap_released reached %llu MiB",
                  (unsigned long long)(worst_any / MiB));
    rt_scav_stats st;
    rt__scavenger_read_stats(&st);
    rt_mem_stats s = stats();
    fprintf(stderr, "scavenge: limit %llu MiB, live %.1f MiB after %d steps (%llu cycles): worst retained %.1f MiB "
            "(%.1f%% of the limit; %.1f%% between collections), worst mapped-ready %.1f MiB; released %.1f MiB eager, %.1f MiB bg; rss now %.1f MiB\n",
            (unsigned long long)(LIMIT / MiB), (double)live / MiB, steps, (unsigned long long)s.num_gc,
            (double)worst / MiB, 100.0 * (double)worst / LIMIT, 100.0 * (double)worst_any / LIMIT, (double)worst_mapped / MiB,
            (double)st.released_eager / MiB, (double)st.released_bg / MiB, (double)rss() / MiB);
    rt__heap_check();
    /* Past the limit the heap still grows: the limit is soft. */
    static void *over[96];
    rt_root *r2 = rt_root_add_range(over, sizeof over, RT_ROOT_PRECISE);
    for (int i = 0; i < 96; i++) cr_assert_not_null(over[i] = rt_alloc(MiB, RT_NOSCAN));
    rt_root_remove(r2);
    rt_root_remove(r);
    memset(lim_live, 0, sizeof lim_live);
    stop();
}
