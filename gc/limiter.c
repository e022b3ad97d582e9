/* gc/limiter.c -- the GC CPU limiter (Go 1.19's gcCPULimiterState;
 * reference notes section 11).
 *
 * Near a memory limit the pacer's goal sits at the live heap, cycles run
 * back to back and every allocation owes assist work: without a brake the
 * collector would take all the CPU (the "death spiral").  The limiter is a
 * leaky bucket of CPU time, capacity 1 s x procs:
 *
 *   each window (between updates):  fill += gc - mutator
 *     gc      = assist time + STW pauses x procs
 *               + during a concurrent mark, window x procs x 25%
 *               (the background workers' budget, counted whether or not
 *               they ran, as Go does)
 *     mutator = window x procs - gc
 *   clamped to [0, capacity].  Assist time arrives when an assist ends;
 *   GC time beyond a window's CPU is carried into the next windows.  The
 *   bucket fills only while the collector takes more than half of the
 *   CPU.
 *
 * Once the bucket is full (rt__gc_limiting), assists are skipped: an
 * allocating thread keeps its debt and goes on, so the heap overshoots its
 * goal instead of the program stalling; the background workers still run.
 * Limiting lasts until the bucket has drained by 5% of its capacity.  (Go
 * stops at the first drain, which works with its regular 10 ms updates;
 * ours come at irregular points of the cycle, and without the hysteresis a
 * short limited window followed by a long unlimited one averaged well over
 * half the CPU.)  Idle-priority mark work runs on CPUs nobody wanted and is
 * not counted.
 *
 * Updates come from whoever runs the cycle: at both stops of the world,
 * every 10 ms or so while the driver waits on a concurrent mark, and at
 * the start of a cycle for the time since the last one.  The driver and a
 * mark worker that ends the mark may update at once, so updates take a
 * lock; readers see the flag with a relaxed load. */
#include "gc.h"

#define LIMITER_BACKGROUND_PERCENT 25
#define LIMITER_HYSTERESIS_PERCENT 5   /* of capacity, drained before limiting stops */

int rt__gc_limiting;
bool rt__limiter_enabled = true;       /* tests compare against the collector without it */
uint64_t rt__assist_total_ns;          /* every assist ever, atomic */

static struct {
    uint64_t last_ns;                  /* end of the last window */
    uint64_t last_assist_ns;           /* rt__assist_total_ns at last_ns */
    uint64_t fill, capacity;           /* CPU-ns */
    uint64_t overflow_ns;              /* GC time that found the bucket full */
    uint64_t carry_ns;                 /* GC time beyond its window's CPU, owed to the next */
    uint64_t limited_ns;               /* wall time spent limiting */
    uint64_t enabled_count;            /* times limiting began */
} L;

void rt__limiter_reset(uint64_t now) {
    L = (typeof(L)){ 0 };
    L.last_ns = now;
    L.last_assist_ns = ld_relaxed(&rt__assist_total_ns);
    L.capacity = 1000000000ull * (uint64_t)rt__procs();
    st_relaxed(&rt__gc_limiting, 0);
}

/* Pure bucket arithmetic (exported for tests): returns whether the
   collector should be limited after accounting gc and mutator CPU-ns. */
bool rt__limiter_accumulate(uint64_t gc_ns, uint64_t mutator_ns) {
    bool was = ld_relaxed(&rt__gc_limiting);
    bool now;
    if (gc_ns > mutator_ns) {
        uint64_t change = gc_ns - mutator_ns, headroom = L.capacity - L.fill;
        if (change >= headroom) {
            L.overflow_ns += change - headroom;
            L.fill = L.capacity;
            now = true;
        } else {
            L.fill += change;
            now = was;   /* filling again before it drained enough */
        }
    } else {
        uint64_t change = mutator_ns - gc_ns;
        L.fill = change >= L.fill ? 0 : L.fill - change;
        now = was && L.fill > L.capacity - L.capacity / 100 * LIMITER_HYSTERESIS_PERCENT;
    }
    if (!rt__limiter_enabled) now = false;
    if (now && !was) L.enabled_count++;
    st_relaxed(&rt__gc_limiting, now);
    return now;
}

static pthread_mutex_t update_lock = PTHREAD_MUTEX_INITIALIZER;

static void update_locked(uint64_t now, uint64_t stw_ns, bool marking) {
    uint64_t window = now - L.last_ns;
    if (stw_ns > window) stw_ns = window;
    uint64_t procs = (uint64_t)rt__procs();
    uint64_t total = window * procs;
    uint64_t assist = ld_relaxed(&rt__assist_total_ns);
    uint64_t gc = L.carry_ns + (assist - L.last_assist_ns) + stw_ns * procs;
    if (marking) gc += (window - stw_ns) * procs * LIMITER_BACKGROUND_PERCENT / 100;
    /* An assist is counted when it ends, whole, though it ran through
       earlier windows: what does not fit in this window is owed to the
       next ones, not dropped (dropping it let assists take 60-66% of
       the CPU under the limiter in the ASan build). */
    L.carry_ns = 0;
    if (gc > total) {
        L.carry_ns = gc - total;
        gc = total;
    }
    if (ld_relaxed(&rt__gc_limiting)) L.limited_ns += window;
    rt__limiter_accumulate(gc, total - gc);
    L.last_ns = now;
    L.last_assist_ns = assist;
}

void rt__limiter_update(uint64_t now, uint64_t stw_ns, bool marking) {
    pthread_mutex_lock(&update_lock);
    if (now > L.last_ns) update_locked(now, stw_ns, marking);
    pthread_mutex_unlock(&update_lock);
}

void rt__limiter_stats(rt_limiter_stats *out) {
    out->fill_ns = L.fill;
    out->capacity_ns = L.capacity;
    out->overflow_ns = L.overflow_ns;
    out->limited_ns = L.limited_ns;
    out->enabled_count = L.enabled_count;
    out->limiting = ld_relaxed(&rt__gc_limiting) != 0;
}
