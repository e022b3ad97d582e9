/* tests/test_gc_debug.c -- RTDEBUG options and pacing knobs:
 *   invalidptr=1   a precise slot pointing into a free slot stops the run
 *                  with a report (and only a precise one);
 *   clobberfree=1  freed slots are filled with 0xdeadbeef (and only then);
 *   gcstress=N     a collection every N allocations;
 *   gctrace=1      one line per cycle on stderr, "gc N @...";
 *   RTGC / rt_set_gc_percent: off means no automatic collections while
 *                  rt_gc still collects; the heap goal is
 *                  marked * (1 + RTGC/100), at least 4 MiB * RTGC/100.
 * Death tests run in Criterion's forked test process; one test forks again
 * itself to read the report the run stops with. */
#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rtgc.h"
#include "test_start.h"

#define HIDE_MASK ((uintptr_t)0x5555555555555555ull)
static inline uintptr_t hide(const void *p) { return (uintptr_t)p ^ HIDE_MASK; }
static inline void *reveal(uintptr_t h) { return (void *)(h ^ HIDE_MASK); }

static bool clobbered(uintptr_t h, size_t n) {
    const uint32_t *p = reveal(h);
    for (size_t i = 0; i < n / 4; i++)
        if (p[i] != 0xdeadbeefu) return false;
    return true;
}

#define MiB ((uint64_t)1 << 20)

/* No stack scanning: only registered roots keep objects. */
static void start_pct(int pct, const char *debug) {
    test_start((rt_options){ .gc_percent = pct, .scan_thread_stacks = RT_SCAN_STACKS_OFF, .debug = debug });
}
static void start(const char *debug) { start_pct(RT_GC_OFF, debug); }
static void stop(void) { rt_shutdown(); }

static rt_mem_stats stats(void) {
    rt_mem_stats s;
    rt_read_mem_stats(&s);
    return s;
}

TestSuite(debug, .fini = stop, .timeout = 60);

/* ---- invalidptr ---------------------------------------------------------------- */

/* A header object (600 B > 512) so the report can name its type. */
typedef struct { uint64_t magic; void *p; char pad[584]; } holder;

static void *g_holder, *g_keep, *g_slot;

/* Leave g_holder rooted and a pointer to a freed object in hidden form:
   the freed slot's span stays in use (g_keep lives in it). */
static uintptr_t make_dangling(void) {
    size_t offs[] = { offsetof(holder, p) };
    const rt_type *t = rt_type_layout("holder600", sizeof(holder), offs, 1);
    g_keep = rt_alloc(64, RT_NOSCAN);
    uintptr_t hv = hide(rt_alloc(64, RT_NOSCAN));   /* same class: same span */
    holder *h = rt_alloc(sizeof(holder), t);
    h->magic = 0x401de5;
    g_holder = h;
    rt_root_add(&g_keep);
    rt_root_add(&g_holder);
    rt_gc();
    return hv;
}

Test(debug, invalidptr_heap_slot_aborts, .signal = SIGABRT) {
    start("invalidptr=1,clobberfree=1");
    uintptr_t hv = make_dangling();
    cr_assert(clobbered(hv, 64), "setup: the victim was not freed");
    rt_store(&((holder *)g_holder)->p, reveal(hv));
    rt_gc();   /* must stop the run */
    cr_assert_fail("a precise heap slot pointing into a free slot was not reported");
}

Test(debug, invalidptr_root_slot_aborts, .signal = SIGABRT) {
    start("invalidptr=1,clobberfree=1");
    uintptr_t hv = make_dangling();
    cr_assert(clobbered(hv, 64), "setup: the victim was not freed");
    g_slot = (char *)reveal(hv) + 8;   /* interior, into the free slot */
    rt_root_add(&g_slot);
    rt_gc();
    cr_assert_fail("a precise root slot pointing into a free slot was not reported");
}

static void *g_traced_target;
static void trace_visit_global(void *obj, size_t size, rt_visitor *v) {
    (void)obj; (void)size;
    rt_visit(v, g_traced_target);
}

Test(debug, invalidptr_traced_visit_aborts, .signal = SIGABRT) {
    start("invalidptr=1,clobberfree=1");
    uintptr_t hv = make_dangling();
    cr_assert(clobbered(hv, 64), "setup: the victim was not freed");
    const rt_type *t = rt_type_traced("visitor", trace_visit_global);
    g_slot = rt_alloc(32, t);
    rt_root_add(&g_slot);
    g_traced_target = reveal(hv);
    rt_gc();
    cr_assert_fail("rt_visit of a pointer into a free slot was not reported");
}

/* The report itself: run the scenario in a child and read its stderr. */
Test(debug, invalidptr_report_names_object_type_and_slot) {
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 2);
        test_clean_env();
        rt_options o = { .gc_percent = RT_GC_OFF, .scan_thread_stacks = RT_SCAN_STACKS_OFF, .debug = "invalidptr=1" };
        if (rt_init(&o) != RT_OK || rt_thread_attach() != RT_OK) _exit(10);
        uintptr_t hv = make_dangling();
        rt_store(&((holder *)g_holder)->p, reveal(hv));
        rt_gc();
        _exit(11);   /* not reported */
    }
    close(fd[1]);
    char buf[8192];
    size_t n = 0;
    ssize_t k;
    while (n < sizeof buf - 1 && ((k = read(fd[0], buf + n, sizeof buf - 1 - n)) > 0 || (k < 0 && errno == EINTR)))
        if (k > 0) n += (size_t)k;
    buf[n] = 0;
    close(fd[0]);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
              "the run did not stop with SIGABRT (status %#x); stderr: %s", status, buf);
    cr_assert_not_null(strstr(buf, "invalid pointer"), "report lacks 'invalid pointer': %s", buf);
    cr_assert_not_null(strstr(buf, "holder600"), "report does not name the object's type: %s", buf);
    cr_assert_not_null(strstr(buf, "slot +8"), "report does not name the slot offset: %s", buf);
    cr_assert_not_null(strstr(buf, "free slot"), "report does not say the target is free: %s", buf);
}

Test(debug, without_invalidptr_a_dangling_slot_is_ignored) {
    start("clobberfree=1");
    uintptr_t hv = make_dangling();
    cr_assert(clobbered(hv, 64));
    rt_store(&((holder *)g_holder)->p, reveal(hv));
    rt_mem_stats s0 = stats();
    rt_gc();
    rt_gc();
    rt_mem_stats s1 = stats();
    cr_assert_eq(s1.num_gc, s0.num_gc + 2);
    cr_assert_eq(((holder *)g_holder)->magic, 0x401de5u, "the rooted holder was damaged");
    cr_assert(clobbered(hv, 64), "the free slot was resurrected by a dangling pointer");
    cr_assert_eq(s1.heap_objects, s0.heap_objects, "objects were freed or resurrected");
}

Test(debug, invalidptr_ignores_ambiguous_words) {
    start("invalidptr=1,clobberfree=1");
    uintptr_t hv = make_dangling();
    cr_assert(clobbered(hv, 64));
    static uintptr_t words[4];
    words[0] = (uintptr_t)reveal(hv);
    words[1] = (uintptr_t)reveal(hv) + 9;
    rt_root *r = rt_root_add_range(words, sizeof words, RT_ROOT_AMBIGUOUS);
    uintptr_t *c = rt_alloc(64, RT_CONSERVATIVE);   /* conservative objects are ambiguous too */
    c[0] = (uintptr_t)reveal(hv) + 16;
    g_slot = c;
    rt_root_add(&g_slot);
    rt_gc();
    rt_gc();
    cr_assert(clobbered(hv, 64), "an ambiguous word resurrected a free slot");
    rt_root_remove(r);
}

/* ---- clobberfree ----------------------------------------------------------------- */

typedef struct { void *p; uint64_t a[5]; } lay48;

static void alloc_and_drop(uintptr_t h[4], size_t sz[4]) {
    size_t offs[] = { 0 };
    const rt_type *lt = rt_type_layout("lay48", sizeof(lay48), offs, 1);
    const rt_type *bt = rt_type_layout("lay2000", 2000, offs, 1);
    void *p[4] = { rt_alloc(128, RT_NOSCAN), rt_new(lay48, lt), rt_alloc(2000, bt), rt_alloc(100000, RT_NOSCAN) };
    size_t s[4] = { 128, sizeof(lay48), 2000, 100000 };
    for (int i = 0; i < 4; i++) {
        memset((char *)p[i] + 8, 0x11, s[i] - 8);   /* leave the pointer word of the layouts alone */
        h[i] = hide(p[i]);
        sz[i] = s[i];
        p[i] = NULL;
    }
}

Test(debug, clobberfree_fills_freed_slots) {
    start("clobberfree=1");
    uintptr_t h[4];
    size_t sz[4];
    alloc_and_drop(h, sz);
    uint64_t before = stats().heap_objects;
    rt_gc();
    cr_assert_eq(stats().heap_objects + 4, before);
    for (int i = 0; i < 4; i++)
        cr_assert(clobbered(h[i], sz[i]), "freed object %d (%zu bytes) was not filled with 0xdeadbeef", i, sz[i]);
}

Test(debug, without_clobberfree_freed_slots_are_left_alone) {
    start(NULL);
    uintptr_t h[4];
    size_t sz[4];
    alloc_and_drop(h, sz);
    uint64_t before = stats().heap_objects;
    rt_gc();
    cr_assert_eq(stats().heap_objects + 4, before, "the objects were not freed");
    for (int i = 0; i < 4; i++) {
        const unsigned char *c = reveal(h[i]);
        cr_assert_eq(c[8], 0x11, "freed object %d was overwritten without clobberfree", i);
        cr_assert(!clobbered(h[i], 16));
    }
}

/* ---- gcstress --------------------------------------------------------------------- */

Test(debug, gcstress_collects_every_n_allocations) {
    start("gcstress=10");
    cr_assert_eq(stats().num_gc, 0);
    for (int i = 0; i < 1000; i++) {
        void *p = rt_alloc(32, RT_NOSCAN);
        cr_assert_not_null(p);
    }
    rt_mem_stats s = stats();
    cr_assert_eq(s.num_gc, 100, "1000 allocations with gcstress=10 ran %llu collections", (unsigned long long)s.num_gc);
    cr_assert_eq(s.num_forced_gc, 0);
    /* Both the inline and the out-of-line allocation paths count. */
    for (int i = 0; i < 500; i++) (rt_alloc)(48, RT_NOSCAN);
    for (int i = 0; i < 500; i++) rt_alloc_array(RT_NOSCAN, 100);
    s = stats();
    cr_assert_eq(s.num_gc, 200, "2000 allocations with gcstress=10 ran %llu collections", (unsigned long long)s.num_gc);
}

Test(debug, gcstress_from_the_environment) {
    test_clean_env();
    setenv("RTDEBUG", "gcstress=7", 1);
    rt_options o = { .gc_percent = RT_GC_OFF, .scan_thread_stacks = RT_SCAN_STACKS_OFF, .debug = "gcstress=1000" };
    cr_assert_eq(rt_init(&o), RT_OK);   /* the environment beats rt_options */
    cr_assert_eq(rt_thread_attach(), RT_OK);
    for (int i = 0; i < 700; i++) rt_alloc(24, RT_NOSCAN);
    cr_assert_eq(stats().num_gc, 100, "RTDEBUG=gcstress=7: %llu collections in 700 allocations",
                 (unsigned long long)stats().num_gc);
}

/* ---- RTGC=off, rt_set_gc_percent --------------------------------------------------- */

/* Allocate `bytes` of garbage in 64 KiB pieces. */
static void garbage(uint64_t bytes) {
    for (uint64_t n = 0; n < bytes; n += 64 << 10) {
        void *p = rt_alloc(64 << 10, RT_NOSCAN);
        cr_assert_not_null(p);
    }
}

Test(debug, rtgc_off_in_environment_disables_automatic_collections) {
    test_clean_env();
    setenv("RTGC", "off", 1);
    rt_options o = { .gc_percent = 100, .scan_thread_stacks = RT_SCAN_STACKS_OFF };
    cr_assert_eq(rt_init(&o), RT_OK);
    cr_assert_eq(rt_thread_attach(), RT_OK);
    garbage(64 * MiB);
    rt_mem_stats s = stats();
    cr_assert_eq(s.num_gc, 0, "RTGC=off, yet %llu collections ran", (unsigned long long)s.num_gc);
    cr_assert_eq(s.next_gc, 0, "RTGC=off, yet next_gc is %llu", (unsigned long long)s.next_gc);
    cr_assert_geq(s.heap_alloc, 64 * MiB);
    rt_gc();
    s = stats();
    cr_assert_eq(s.num_gc, 1, "rt_gc did not collect with RTGC=off");
    cr_assert_eq(s.num_forced_gc, 1);
    cr_assert_lt(s.heap_alloc, 1 * MiB, "rt_gc with RTGC=off left %llu bytes allocated", (unsigned long long)s.heap_alloc);
}

/* Allocate garbage until more than `n` collections have completed; a
   triggered cycle may finish after the allocation that started it.
   False if 1 GiB of garbage was not enough. */
static bool garbage_until_gc(uint64_t n) {
    for (int i = 0; i < 1024; i++) {
        garbage(1 * MiB);
        if (stats().num_gc > n) return true;
    }
    return false;
}

Test(debug, set_gc_percent_off_at_run_time) {
    start_pct(100, NULL);
    cr_assert(garbage_until_gc(0), "1 GiB of garbage with RTGC=100 ran no collection");
    cr_assert_eq(rt_set_gc_percent(RT_GC_OFF), 100);
    uint64_t n0 = stats().num_gc;
    cr_assert_eq(stats().next_gc, 0);
    garbage(64 * MiB);
    cr_assert_eq(stats().num_gc, n0, "collections ran after rt_set_gc_percent(RT_GC_OFF)");
    rt_gc();
    cr_assert_eq(stats().num_gc, n0 + 1, "rt_gc did not collect with the collector off");
    cr_assert_eq(rt_set_gc_percent(100), RT_GC_OFF);
    cr_assert(garbage_until_gc(n0 + 1), "no automatic collection after turning the collector back on");
}

static void *g_live[64];

/* Heap goal = marked * (1 + pct/100), at least 4 MiB * pct / 100. */
static void assert_goal(uint64_t live, int pct, const char *when) {
    rt_mem_stats s = stats();
    uint64_t min = 4 * MiB * (uint64_t)pct / 100;
    double want = (double)live * (1.0 + pct / 100.0);
    if (want < (double)min) want = (double)min;
    cr_assert_geq(s.next_gc, min, "%s: RTGC=%d next_gc %llu below the 4 MiB * RTGC/100 minimum", when, pct,
                  (unsigned long long)s.next_gc);
    cr_assert(s.next_gc >= want * 0.99 && s.next_gc <= want * 1.01,
              "%s: RTGC=%d, %llu bytes live: next_gc %llu, want about %.0f", when, pct, (unsigned long long)live,
              (unsigned long long)s.next_gc, want);
}

Test(debug, heap_goal_minimum_on_a_small_heap) {
    start_pct(100, NULL);
    g_live[0] = rt_alloc(100000, RT_NOSCAN);
    rt_root_add(&g_live[0]);
    rt_gc();
    uint64_t live = stats().heap_alloc;
    cr_assert_lt(live, 1 * MiB);
    assert_goal(live, 100, "after rt_gc");
    static const int pcts[] = { 50, 300, 1000, 25 };
    int prev = 100;
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(rt_set_gc_percent(pcts[i]), prev);
        prev = pcts[i];
        assert_goal(live, pcts[i], "after rt_set_gc_percent");
        rt_gc();
        assert_goal(stats().heap_alloc, pcts[i], "after rt_gc");
    }
}

Test(debug, heap_goal_follows_a_40_mib_live_heap) {
    start_pct(100, NULL);
    /* 40 MiB of large objects and ~1.3 MiB of small ones, all rooted. */
    rt_root *r = rt_root_add_range(g_live, sizeof g_live, RT_ROOT_PRECISE);
    for (int i = 0; i < 40; i++) g_live[i] = rt_alloc(1 << 20, RT_NOSCAN);
    size_t offs[] = { 0 };
    const rt_type *pt = rt_type_layout("ptr", sizeof(void *), offs, 1);
    void **arr = rt_alloc_array(pt, 20000);
    g_live[40] = arr;   /* rooted before the next allocation can collect */
    for (int i = 0; i < 20000; i++) rt_store(&arr[i], rt_alloc(64, RT_NOSCAN));
    arr = NULL;
    garbage(16 * MiB);
    rt_gc();
    rt_mem_stats s = stats();
    uint64_t live = s.heap_alloc;
    cr_assert(live >= 41 * MiB && live < 43 * MiB, "live heap %llu bytes, want about 41.4 MiB", (unsigned long long)live);
    assert_goal(live, 100, "after rt_gc");
    cr_assert_eq(rt_set_gc_percent(50), 100);
    assert_goal(live, 50, "after rt_set_gc_percent(50)");
    cr_assert_eq(rt_set_gc_percent(300), 50);
    assert_goal(live, 300, "after rt_set_gc_percent(300)");
    rt_gc();
    assert_goal(stats().heap_alloc, 300, "after rt_gc at 300");

    /* Halve the live heap: the next goal follows it down. */
    for (int i = 0; i < 20; i++) g_live[i] = NULL;
    rt_gc();
    uint64_t live2 = stats().heap_alloc;
    cr_assert_leq(live2 + 20 * MiB, live);
    assert_goal(live2, 300, "after dropping 20 MiB");
    rt_root_remove(r);
}

/* ---- gctrace --------------------------------------------------------------------- */

/* Run fn with stderr redirected into a buffer. */
static void capture_stderr(void (*fn)(void), char *buf, size_t cap) {
    fflush(stderr);
    FILE *tmp = tmpfile();
    cr_assert_not_null(tmp);
    int saved = dup(2);
    cr_assert_geq(saved, 0);
    dup2(fileno(tmp), 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(buf, 1, cap - 1, tmp);
    buf[n] = 0;
    fclose(tmp);
}

static void three_cycles(void) {
    for (int i = 0; i < 100; i++) rt_alloc(32, RT_NOSCAN);   /* two gcstress cycles */
    rt_gc();                                               /* one forced */
}

Test(debug, gctrace_prints_one_line_per_cycle) {
    start("gctrace=1,gcstress=50");
    static char buf[16384];
    capture_stderr(three_cycles, buf, sizeof buf);
    cr_assert_eq(stats().num_gc, 3);
    int lines = 0;
    for (char *line = buf, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        cr_assert_not_null(nl, "unterminated trace line: %s", line);
        *nl = 0;
        lines++;
        char want[32];
        snprintf(want, sizeof want, "gc %d @", lines);
        cr_assert_eq(strncmp(line, want, strlen(want)), 0, "trace line %d does not start with '%s': %s", lines, want, line);
        cr_assert_not_null(strstr(line, " MB goal"), "trace line %d lacks the goal: %s", lines, line);
        bool forced = strstr(line, "(forced)") != NULL;
        cr_assert_eq(forced, lines == 3, "trace line %d: '(forced)' %s: %s", lines, forced ? "present" : "missing", line);
    }
    cr_assert_eq(lines, 3, "3 cycles printed %d trace lines: %s", lines, buf);
}

Test(debug, no_trace_without_gctrace) {
    start("gcstress=50");
    static char buf[4096];
    capture_stderr(three_cycles, buf, sizeof buf);
    cr_assert_eq(stats().num_gc, 3);
    cr_assert_eq(buf[0], 0, "collections printed without gctrace: %s", buf);
}
