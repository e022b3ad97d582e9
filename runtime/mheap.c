/* runtime/mheap.c -- the page heap: arenas in, spans out.
 *
 * Owns: rt__heap (its lock, the page allocator, the mcentrals' storage),
 * growing the heap by whole 64 MiB arenas reserved with mmap, and turning
 * page runs into spans and back.  Adjacent free pages coalesce in the page
 * allocator's bitmap; there are no free-span structures.
 *
 * A span is published in this order: every field, then the page->span
 * entries, then state = in-use with a release store, so a lock-free reader
 * that sees in-use sees a complete span.  A span is unpublished in the
 * reverse order.  Pages come back zeroed when every one of them was
 * scavenged (fresh or returned with MADV_DONTNEED). */
#include "internal.h"

#include <string.h>

rt_heap rt__heap;

void rt__arenas_unmap_all(void);

int rt__heap_init(void) {
    memset(&rt__heap, 0, sizeof rt__heap);
    pthread_mutex_init(&rt__heap.lock, NULL);
    rt__heap.pages = rt__pages_new();
    if (!rt__heap.pages) return -1;
    rt__heap.sweepgen = 4;   /* start above 0 so h-2 never wraps */
    for (unsigned i = 0; i < RT__NUM_SPAN_CLASSES; i++) {
        pthread_mutex_init(&rt__heap.central[i].lock, NULL);
        rt__heap.central[i].spanclass = i;
    }
    return 0;
}

static void spanset_free(rt_spanset *ss) {
    if (ss->v) rt__os_unreserve(ss->v, ss->cap * sizeof(rt_span *));
    memset(ss, 0, sizeof *ss);
}

void rt__heap_destroy(void) {
    for (unsigned i = 0; i < RT__NUM_SPAN_CLASSES; i++) {
        rt_mcentral *c = &rt__heap.central[i];
        for (int j = 0; j < 2; j++) { spanset_free(&c->partial[j]); spanset_free(&c->full[j]); }
    }
    rt__arenas_unmap_all();
    if (rt__heap.pages) rt__pages_destroy(rt__heap.pages);
    rt__heap.pages = NULL;
}

/* Add at least npages of address space; heap lock held.  0 or -1. */
static int heap_grow(size_t npages) {
    size_t bytes = (npages * RT_PAGE_SIZE + RT_ARENA_BYTES - 1) & ~(RT_ARENA_BYTES - 1);
    void *p = rt__os_reserve(bytes, RT_ARENA_BYTES);
    if (!p) return -1;
    if (rt__os_commit(p, bytes) != 0) { rt__os_unreserve(p, bytes); return -1; }
    if (rt__arena_register((uintptr_t)p, bytes) != 0 ||
        rt__pages_grow(rt__heap.pages, (uintptr_t)p, bytes) != 0) {
        rt__os_unreserve(p, bytes);   /* arena entries stay, pointing at no spans */
        return -1;
    }
    rt__heap.sys_bytes += bytes;
    return 0;
}

/* Allocate a span of npages for span class spc.  *zeroed tells whether its
   memory is known to be zero.  NULL if the OS refuses memory. */
rt_span *rt__heap_alloc_span(size_t npages, unsigned spc, bool *zeroed) {
    pthread_mutex_lock(&rt__heap.lock);
    size_t scav = 0;
    uintptr_t base = rt__pages_alloc(rt__heap.pages, npages, &scav);
    if (!base) {
        if (heap_grow(npages) != 0) { pthread_mutex_unlock(&rt__heap.lock); return NULL; }
        base = rt__pages_alloc(rt__heap.pages, npages, &scav);
        if (!base) rt__fatal("page allocator found no room right after growing by %zu pages", npages);
    }
    rt_span *s = rt__span_struct_alloc();
    if (!s) {
        rt__pages_free(rt__heap.pages, base, npages);
        pthread_mutex_unlock(&rt__heap.lock);
        return NULL;
    }
    bool z = scav == npages;
    rt__span_init(s, base, npages, spc, !z);
    rt__heap.pages_inuse_spans += npages;
    rt__arena_set_spans(s, base, npages);
    st_release(&s->state, RT_SPAN_INUSE);
    pthread_mutex_unlock(&rt__heap.lock);
    if (zeroed) *zeroed = z;
    return s;
}

/* Return a swept, empty span's pages.  Never during mark (the marker may be
   reading the span); the sweeper only runs with the mark off. */
void rt__heap_free_span(rt_span *s) {
    pthread_mutex_lock(&rt__heap.lock);
    RT_ASSERT(s->state == RT_SPAN_INUSE);
    st_release(&s->state, RT_SPAN_DEAD);
    rt__arena_set_spans(NULL, s->hot.base, s->npages);
    rt__pages_free(rt__heap.pages, s->hot.base, s->npages);
    rt__heap.pages_inuse_spans -= s->npages;
    rt__span_release_bitmaps(s);
    rt__span_struct_free(s);
    pthread_mutex_unlock(&rt__heap.lock);
}

/* Heap-wide invariants: page accounting agrees with the page allocator. */
void rt__heap_check(void) {
    pthread_mutex_lock(&rt__heap.lock);
    rt__pages_check(rt__heap.pages);
    size_t inuse = rt__pages_inuse(rt__heap.pages);
    if (inuse != rt__heap.pages_inuse_spans)
        rt__fatal("heap check: page allocator has %zu pages in use, spans hold %zu", inuse, rt__heap.pages_inuse_spans);
    if (rt__pages_total(rt__heap.pages) * RT_PAGE_SIZE != rt__heap.sys_bytes)
        rt__fatal("heap check: %zu pages managed but %llu bytes mapped", rt__pages_total(rt__heap.pages),
                  (unsigned long long)rt__heap.sys_bytes);
    pthread_mutex_unlock(&rt__heap.lock);
}
