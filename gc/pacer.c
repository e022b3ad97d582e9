/* gc/pacer.c -- when the next cycle starts.
 *
 * With the mark done with the world stopped, the pacer has one job: set
 * the heap goal after each cycle,
 *     goal = marked * (1 + RTGC/100),  at least 4 MiB * RTGC/100,
 * (Go's GOGC rule and heap minimum) and start the next cycle when
 * heap_live reaches it.  heap_live counts a span cached by an mcache as
 * wholly used (runtime/mcache.c), so the trigger fires a little early, as
 * in Go.  RTGC=off: no trigger at all (rt_gc still collects). */
#include "gc.h"

uint64_t rt__gc_trigger = UINT64_MAX;
uint64_t rt__gc_goal;
static pthread_mutex_t pacer_lock = PTHREAD_MUTEX_INITIALIZER;

uint64_t rt__pacer_goal(uint64_t marked) {
    int pct = ld_relaxed(&rt__cfg.gc_percent);
    if (pct < 0) return UINT64_MAX;
    uint64_t goal = marked + marked / 100 * (uint64_t)pct + marked % 100 * (uint64_t)pct / 100;
    uint64_t min = RT_MIN_HEAP * (uint64_t)pct / 100;
    return goal > min ? goal : min;
}

void rt__pacer_commit(uint64_t marked) {
    pthread_mutex_lock(&pacer_lock);
    rt__gc_goal = rt__pacer_goal(marked);
    st_relaxed(&rt__gc_trigger, rt__gc_goal);
    pthread_mutex_unlock(&pacer_lock);
}

int rt_set_gc_percent(int percent) {
    if (!rt__g.initialized) rt__misuse("rt_set_gc_percent", "rtgc is not initialized; call rt_init() first");
    if (percent < 0 && percent != RT_GC_OFF)
        rt__misuse("rt_set_gc_percent", "%d is not a percentage; pass 0 or more, or RT_GC_OFF", percent);
    int old = rt__cfg.gc_percent;
    st_relaxed(&rt__cfg.gc_percent, percent);
    rt__pacer_commit(ld_relaxed(&rt__heap.heap_marked));
    if (ld_relaxed(&rt__heap.heap_live) >= ld_relaxed(&rt__gc_trigger)) st_relaxed(&rt__gc_pending, 1);
    return old;
}

int64_t rt_set_memory_limit(int64_t bytes) {
    if (!rt__g.initialized) rt__misuse("rt_set_memory_limit", "rtgc is not initialized; call rt_init() first");
    int64_t old = rt__cfg.memory_limit;
    if (bytes >= 0) st_relaxed(&rt__cfg.memory_limit, bytes == 0 ? INT64_MAX : bytes);
    return old;
}
