/* runtime/stats.c -- rt_read_mem_stats.
 *
 * Owns: assembling MemStats-like figures.  Like Go's ReadMemStats it stops
 * the world briefly, so counters still sitting in mcaches (allocations
 * from cached spans, tiny allocations) are included exactly:
 *   mallocs = slots handed out + tiny sub-allocations
 *   frees   = slots swept free + tiny sub-allocations (their blocks are
 *             the objects that count), so heap_objects = mallocs - frees
 *             counts live slots. */
#include "internal.h"

#include <string.h>

void rt__gc_fill_stats(rt_mem_stats *out);

void rt_read_mem_stats(rt_mem_stats *out) {
    if (!rt__g.initialized) rt__misuse("rt_read_mem_stats", "rtgc is not initialized; call rt_init() first");
    memset(out, 0, sizeof *out);
    rt__stop_the_world("read_mem_stats");
    uint64_t objs = rt__heap.total_alloc_objs, bytes = rt__heap.total_alloc_bytes, tiny = rt__heap.tiny_allocs;
    for (rt_p *p = rt__g.all_ps; p; p = p->next_all) {
        rt_mcache *c = &p->mcache;
        tiny += c->hot.tiny_allocs;
        for (unsigned i = 0; i < RT__NUM_SPAN_CLASSES; i++) {
            rt_span *s = (rt_span *)c->hot.alloc[i];
            if (s == &rt__empty_span) continue;
            uint64_t n = (uint64_t)(s->hot.alloc_count - s->alloc_count_before_cache);
            objs += n;
            bytes += n * s->hot.elemsize;
        }
    }
    out->mallocs = objs + tiny;
    out->frees = rt__heap.total_free_objs + tiny;
    out->total_alloc = bytes;
    out->heap_alloc = bytes - rt__heap.total_free_bytes;
    out->heap_objects = out->mallocs - out->frees;
    pthread_mutex_lock(&rt__heap.lock);
    out->heap_sys = rt__heap.sys_bytes;
    out->heap_inuse = (uint64_t)rt__heap.pages_inuse_spans * RT_PAGE_SIZE;
    /* Exact: free pages whose release to the OS completed (their scavenged
       bit is set), fresh address space included, as in Go.  Pages the
       scavenger is releasing right now count as idle, not yet released. */
    out->heap_released = rt__heap_released_bytes();
    pthread_mutex_unlock(&rt__heap.lock);
    out->heap_idle = out->heap_sys - out->heap_inuse;
    rt__gc_fill_stats(out);
    rt__start_the_world();
}
