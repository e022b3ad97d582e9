/* runtime/mcache.c -- the per-P allocation cache.
 *
 * Owns: refilling a span class's cached span from its mcentral, handing
 * spans back (release_all at collection start and when a P is retired),
 * the allocation counters that are flushed at those moments, and heap_live
 * accounting at span granularity (Go's): a span counts as wholly used while
 * cached, and its unused slots are subtracted when it is handed back.
 *
 * Only the thread holding the P touches its mcache, or the collector while
 * the world is stopped; no lock. */
#include "internal.h"

#include <string.h>

/* A span with no free slot: fresh mcaches point every class at it so the
   first allocation of a class falls into refill. */
rt_span rt__empty_span;

void rt__mcache_init(rt_mcache *c) {
    memset(c, 0, sizeof *c);
    for (unsigned i = 0; i < RT__NUM_SPAN_CLASSES; i++) c->hot.alloc[i] = &rt__empty_span.hot;
}

static void flush_span_counts(rt_span *s) {
    uint64_t n = (uint64_t)(s->hot.alloc_count - s->alloc_count_before_cache);
    add_relaxed(&rt__heap.total_alloc_objs, n);
    add_relaxed(&rt__heap.total_alloc_bytes, n * s->hot.elemsize);
}

static void uncache(rt_span *s) {
    uint32_t h = ld_relaxed(&rt__heap.sweepgen);
    uint64_t black = rt__span_unpremark(s);
    if (black) rt__gc_count_black(black);
    flush_span_counts(s);
    st_release(&s->freeindex_for_scan, s->hot.freeindex);
    /* A span cached before the last mark counted in heap_live of a cycle that
       has since been reset to the marked bytes: nothing to take back. */
    if (s->sweepgen == h + 3) {
        uint64_t unused = (uint64_t)(s->hot.nelems - s->hot.alloc_count) * s->hot.elemsize;
        __atomic_sub_fetch(&rt__heap.heap_live, unused, __ATOMIC_RELAXED);
    }
    rt__mcentral_uncache_span(&rt__heap.central[s->hot.spanclass], s);
}

void rt__mcache_refill(rt_mcache *c, unsigned spc) {
    rt_span *old = (rt_span *)c->hot.alloc[spc];
    if (old != &rt__empty_span) uncache(old);
    c->hot.alloc[spc] = &rt__empty_span.hot;
    rt_span *s = rt__mcentral_cache_span(&rt__heap.central[spc]);
    if (!s) return;   /* out of memory: the caller reports it */
    /* A span whose slots from freeindex on are all free (a sweep freed it
       whole) is zeroed whole, here, rather than slot by slot as the fast
       path hands the slots out (Go's way): one memset streams its lines
       into the cache, where the slots' first reads and writes find them.
       Taken slot by slot, each of those lines missed in the VM thread
       right after rt_alloc returned (the lines of objects dead since the
       last cycle are cold): queue.lox ran 0.74-0.80x the time (rounds of
       15-31 interleaved runs); binary_trees.lox, closures.lox,
       instantiation.lox and strings.lox stayed within their noise
       (0.97-1.06x).  A span still holding objects keeps per-slot zeroing:
       walking its bitmap for the free runs cost more than it saved
       (closures.lox 1.04-1.08x). */
    if (s->hot.needzero && s->hot.alloc_count == s->hot.freeindex) {
        uintptr_t from = s->hot.base + (uintptr_t)s->hot.freeindex * s->hot.elemsize;
        memset((void *)from, 0, s->limit - from);
        s->hot.needzero = 0;
    }
    st_release(&s->sweepgen, ld_relaxed(&rt__heap.sweepgen) + 3);
    s->alloc_count_before_cache = s->hot.alloc_count;
    uint64_t live = add_relaxed(&rt__heap.heap_live,
                                (uint64_t)(s->hot.nelems - s->hot.alloc_count) * s->hot.elemsize);
    if (live >= ld_relaxed(&rt__gc_trigger)) st_relaxed(&rt__gc_pending, 1);
    /* A running P sees the phase only change with the world stopped. */
    if (ld_relaxed(&rt__gc_phase) == RT_PHASE_MARK) {
        rt__span_premark(s);
        rt__gc_charge_alloc((uint64_t)(s->hot.nelems - s->hot.alloc_count) * s->hot.elemsize);
    }
    c->hot.alloc[spc] = &s->hot;
}

void rt__mcache_publish(rt_mcache *c) {
    for (unsigned i = 0; i < RT__NUM_SPAN_CLASSES; i++) {
        rt_span *s = (rt_span *)c->hot.alloc[i];
        if (s != &rt__empty_span) st_release(&s->freeindex_for_scan, s->hot.freeindex);
    }
}

void rt__mcache_release_all(rt_mcache *c) {
    for (unsigned i = 0; i < RT__NUM_SPAN_CLASSES; i++) {
        rt_span *s = (rt_span *)c->hot.alloc[i];
        if (s != &rt__empty_span) uncache(s);
        c->hot.alloc[i] = &rt__empty_span.hot;
    }
    c->hot.tiny = 0;
    c->hot.tinyoffset = 0;
    add_relaxed(&rt__heap.tiny_allocs, c->hot.tiny_allocs);
    c->hot.tiny_allocs = 0;
}

void rt__mcache_check(const rt_mcache *c) {
    uint32_t h = ld_relaxed(&rt__heap.sweepgen);
    for (unsigned i = 0; i < RT__NUM_SPAN_CLASSES; i++) {
        const rt_span *s = (const rt_span *)c->hot.alloc[i];
        if (s == &rt__empty_span) continue;
        if (s->hot.spanclass != i) rt__fatal("mcache check: slot %u caches a span of class %u", i, s->hot.spanclass);
        if (s->sweepgen != h + 3 && s->sweepgen != h + 1)
            rt__fatal("mcache check: cached span has sweepgen %u, heap %u", s->sweepgen, h);
        rt__span_check(s);
    }
    if (c->hot.tiny && (c->hot.tinyoffset > RT_TINY_SIZE || c->hot.tiny % RT_TINY_SIZE))
        rt__fatal("mcache check: tiny block %#lx offset %lu", (unsigned long)c->hot.tiny, (unsigned long)c->hot.tinyoffset);
}
