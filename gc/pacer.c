/* gc/pacer.c -- when the next cycle starts and how fast the mark must go.
 *
 * Go 1.18+'s pacer (reference notes section 9), with the same constants:
 *
 *   goal    = marked + (marked - black + stack scan + globals scan) * RTGC/100,
 *             at least 4 MiB * RTGC/100, at most the memory-limit goal;
 *             black: the part of marked allocated during the mark, which
 *             Go grows by RTGC% too and rtgc counts once (rt__pacer_goal);
 *   runway  = cons/mark * (1 - 0.25)/0.25 * (last heap scan + stacks + globals)
 *             -- how far the heap grows while a mark at 25% CPU finishes;
 *   trigger = goal - runway, clamped to [marked + 0.7 (goal - marked),
 *             marked + 0.95 (goal - marked)] (or goal - 4 MiB if larger);
 *   cons/mark (measured at the end of each cycle)
 *           = (heap_live - trigger) * (u + u_idle) / (scan work * (1 - u)),
 *             u = 0.25 + assist time / (mark time * procs), the maximum of
 *             the last four measurements (biased to trigger early);
 *   assist ratio (revised while marking)
 *           = remaining scan work / remaining heap before the goal, with
 *             the goal extrapolated when the heap turned out larger than
 *             expected (never past the "hard goal" of (1 + RTGC/100) x goal);
 *             the credit an assist earns never reaches past that goal
 *             (rt__pacer_credit_after; Go has no such cap).
 *
 * The minimum is RTHEAPMIN (rt_options.heap_minimum), Go's 4 MiB by default.
 *
 * Small cycles (gc/gc.c run_small_cycle): when the last mark scanned at
 * most RTDEBUG smallgc bytes (64 KiB by default), heap, stacks and
 * globals together, the next cycle runs on the allocating thread with the
 * world stopped, and may scan up to twice that in its one pause before it
 * goes on concurrently.  Go's minimum heap is there because a cycle has a
 * fixed cost; a small cycle has little (about 10 us here against 0.3-0.5
 * ms of threads woken and barrier-on time), which is what makes a smaller
 * RTHEAPMIN affordable.
 *
 * RTGC=off: no trigger (rt_gc still collects).  With the world-stopped mark
 * (gcstoptheworld >= 1, or a small cycle next) the trigger is the goal
 * itself: no mark runs while the heap grows. */
#include "gc.h"


rt_pacer rt__pacer;
uint64_t rt__gc_trigger = UINT64_MAX;
uint64_t rt__gc_goal;
static pthread_mutex_t pacer_lock = PTHREAD_MUTEX_INITIALIZER;

#define GOAL_UTILIZATION 0.25
#define MIN_TRIGGER 45.0 / 64.0
#define MAX_TRIGGER 61.0 / 64.0

uint64_t rt__memlimit_heap_goal(uint64_t marked) __attribute__((weak));

/* The objects allocated during a mark are black: counted as marked, though
   nothing traced them, and many are garbage by the next cycle.  Grown by
   RTGC% as well (Go's rule), a mark that runs long (a busy machine, a
   marker slowed by its CPU) raised the next goal by twice what it let the
   program allocate.  Counted once, queue.lox's peak RSS went from
   10.9-12.7 MB (its median on either side of the Boehm build's 11.5 from
   one run to the next) to 10.1-10.5, at the same binary_trees.lox time;
   binary-trees 21 and gcbench pay 3-10% more time for 20% and 9% less
   memory (2026-12-06; docs/tuning.md). */
uint64_t rt__pacer_goal(uint64_t marked, uint64_t black) {
    int pct = ld_relaxed(&rt__cfg.gc_percent);
    uint64_t goal = UINT64_MAX;
    if (pct >= 0) {
        uint64_t roots = rt__last_stack_scan + rt__last_globals_scan;
        uint64_t grows = marked - (black < marked ? black : marked) + roots;
        goal = marked + (uint64_t)((double)grows * pct / 100.0);
        uint64_t min = (uint64_t)rt__cfg.heap_minimum * (uint64_t)pct / 100;
        if (goal < min) goal = min;
    }
    if (rt__memlimit_heap_goal) {
        uint64_t lg = rt__memlimit_heap_goal(marked);
        if (lg < goal) goal = lg;
    }
    return goal;
}

/* The last mark's scan work, heap and roots: what the next one expects. */
static uint64_t last_scan_work(void) {
    return rt__pacer.last_heap_scan + rt__last_stack_scan + rt__last_globals_scan;
}

static uint64_t trigger_for(uint64_t goal, uint64_t marked) {
    if (goal == UINT64_MAX) return UINT64_MAX;
    if (rt__cfg.gcstoptheworld >= 1 || rt__pacer.small || marked >= goal) return goal;
    double cm = rt__pacer.cons_mark > 0 ? rt__pacer.cons_mark : 1.0;
    double runway = cm * (1 - GOAL_UTILIZATION) / GOAL_UTILIZATION * (double)last_scan_work();
    uint64_t span = goal - marked;
    uint64_t min = marked + (uint64_t)(span * MIN_TRIGGER);
    uint64_t max = marked + (uint64_t)(span * MAX_TRIGGER);
    if (goal > RT_MIN_HEAP && goal - RT_MIN_HEAP > max) max = goal - RT_MIN_HEAP;
    if (max < min) max = min;
    uint64_t t = runway >= (double)goal ? min : goal - (uint64_t)runway;
    return t < min ? min : t > max ? max : t;
}

uint64_t rt__small_cycle_budget(void) { return 2 * rt__cfg.smallgc; }

void rt__pacer_commit(uint64_t marked, uint64_t black) {
    pthread_mutex_lock(&pacer_lock);
    rt__pacer.heap_marked = marked;
    st_relaxed(&rt__pacer.heap_black, black);   /* read by the setters below without the lock */
    st_relaxed(&rt__pacer.small, rt__cfg.smallgc > 0 && rt__cfg.gcstoptheworld == 0 &&
                                 last_scan_work() <= rt__cfg.smallgc);
    st_relaxed(&rt__gc_goal, rt__pacer_goal(marked, black));   /* read by the scavenger without the lock */
    rt__pacer.goal = rt__gc_goal;
    rt__pacer.trigger = trigger_for(rt__gc_goal, marked);
    st_relaxed(&rt__gc_trigger, rt__pacer.trigger);
    pthread_mutex_unlock(&pacer_lock);
}

void rt__pacer_start_cycle(void) {
    rt__pacer.triggered_at = ld_relaxed(&rt__heap.heap_live);
    rt__pacer.mark_start_ns = rt__nanotime();
    rt__pacer.scan_work = 0;
    st_relaxed(&rt__pacer.bg_credit, 0);
    /* The most heap scan work this cycle can need: every byte live at its
       start (objects allocated during the mark are black, never scanned).
       Go tracks the pointerful part exactly; this bound is looser but
       never too small, which is what keeps assists from going slack. */
    rt__pacer.heap_scan = rt__pacer.triggered_at;
    st_relaxed(&rt__gc_trigger, UINT64_MAX);   /* no new trigger while this cycle runs */
    rt__pacer_revise();
}

void rt__pacer_revise(void) {
    int pct = ld_relaxed(&rt__cfg.gc_percent);
    if (pct < 0) pct = 100000;   /* GOGC off during a forced cycle, as Go */
    uint64_t roots = rt__last_stack_scan + rt__last_globals_scan;
    double work = (double)ld_relaxed(&rt__pacer.scan_work);
    double expected = (double)(rt__pacer.last_heap_scan + roots);
    double max_work = (double)(rt__pacer.heap_scan + roots);
    double goal = rt__pacer.goal == UINT64_MAX ? (double)rt__pacer.triggered_at * 2 : (double)rt__pacer.goal;
    double trig = (double)rt__pacer.triggered_at;
    if (expected <= 0) expected = max_work > 0 ? max_work : 1;
    if (work > expected) {
        double hard = goal * (1 + pct / 100.0);
        goal = trig + (goal - trig) / expected * max_work;
        if (goal > hard) goal = hard;
        expected = max_work;
    }
    double live = (double)ld_relaxed(&rt__heap.heap_live);
    if (live > goal) { goal *= 1.1; expected = max_work; }
    double rem_work = expected - work > 1000 ? expected - work : 1000;
    double rem_heap = goal - live > 1 ? goal - live : 1;
    double wpb = rem_work / rem_heap, bpw = rem_heap / rem_work;
    __atomic_store(&rt__pacer.assist_work_per_byte, &wpb, __ATOMIC_RELAXED);   /* read by assists */
    __atomic_store(&rt__pacer.assist_bytes_per_work, &bpw, __ATOMIC_RELAXED);
    __atomic_store(&rt__pacer.assist_goal, &goal, __ATOMIC_RELAXED);
}

/* Credit is capped at the heap left before the goal the ratio aims at:
   near the end of a mark, with the remaining work at its 1000-byte floor,
   bytes per work is the whole remaining heap over 1000, and one 64 KiB
   steal of background credit paid for megabytes (docs/design.md,
   Assists, has what that did to queue.lox).  Past the goal the cap is 0:
   each span the thread takes next is paid for again. */
int64_t rt__pacer_credit_after(int64_t credit, double granted) {
    double goal;
    __atomic_load(&rt__pacer.assist_goal, &goal, __ATOMIC_RELAXED);
    double room = goal - (double)ld_relaxed(&rt__heap.heap_live);
    double c = (double)credit + granted;
    if (room < 0) room = 0;
    return c > room ? (int64_t)room : (int64_t)c;
}

void rt__pacer_end_cycle(uint64_t mark_ns, uint64_t assist_ns, uint64_t idle_ns) {
    int procs = rt__cfg.maxprocs > 0 ? rt__cfg.maxprocs : 1;
    double md = (double)(mark_ns ? mark_ns : 1) * procs;
    double u = GOAL_UTILIZATION + (double)assist_ns / md, u_idle = (double)idle_ns / md;
    if (u > 0.99) u = 0.99;
    double grown = (double)ld_relaxed(&rt__heap.heap_live) - (double)rt__pacer.triggered_at;
    double work = (double)(rt__pacer.scan_work ? rt__pacer.scan_work : 1);
    double cm = grown > 0 ? grown * (u + u_idle) / (work * (1 - u)) : 0;
    for (int i = 3; i > 0; i--) rt__pacer.cons_mark_hist[i] = rt__pacer.cons_mark_hist[i - 1];
    rt__pacer.cons_mark_hist[0] = cm;
    double m = 0;
    for (int i = 0; i < 4; i++) if (rt__pacer.cons_mark_hist[i] > m) m = rt__pacer.cons_mark_hist[i];
    rt__pacer.cons_mark = m;
}

int rt_set_gc_percent(int percent) {
    if (!rt__g.initialized) rt__misuse("rt_set_gc_percent", "rtgc is not initialized; call rt_init() first");
    if (percent < 0 && percent != RT_GC_OFF)
        rt__misuse("rt_set_gc_percent", "%d is not a percentage; pass 0 or more, or RT_GC_OFF", percent);
    int old = rt__cfg.gc_percent;
    void rt__gc_wait_idle(void);
    if (percent == RT_GC_OFF) rt__gc_wait_idle();   /* a mark in flight finishes first, as in Go */
    st_relaxed(&rt__cfg.gc_percent, percent);
    rt__pacer_commit(ld_relaxed(&rt__heap.heap_marked), ld_relaxed(&rt__pacer.heap_black));
    if (ld_relaxed(&rt__heap.heap_live) >= ld_relaxed(&rt__gc_trigger)) st_relaxed(&rt__gc_pending, 1);
    return old;
}

int64_t rt_set_memory_limit(int64_t bytes) {
    if (!rt__g.initialized) rt__misuse("rt_set_memory_limit", "rtgc is not initialized; call rt_init() first");
    int64_t old = rt__cfg.memory_limit;
    if (bytes >= 0) st_relaxed(&rt__cfg.memory_limit, bytes == 0 ? INT64_MAX : bytes);
    rt__pacer_commit(ld_relaxed(&rt__heap.heap_marked), ld_relaxed(&rt__pacer.heap_black));
    return old;
}
