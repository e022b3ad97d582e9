/* runtime/mheap.c -- the page heap: arenas in, spans out.
 *
 * Owns: rt__heap (its lock, the page allocator, the mcentrals' storage),
 * growing the heap by whole 64 MiB arenas reserved with mmap, turning page
 * runs into spans and back, and the accounting of released memory that the
 * scavenger (runtime/scavenger.c) and the memory limit read.  Adjacent free
 * pages coalesce in the page allocator's bitmap; there are no free-span
 * structures.
 *
 * A span is published in this order: every field, then the page->span
 * entries, then state = in-use with a release store, so a lock-free reader
 * that sees in-use sees a complete span.  A span is unpublished in the
 * reverse order.
 *
 * Zeroed memory.  A span needs no clearing when every one of its pages is
 * known to read zero:
 *   - all of them are scavenged (fresh from the OS, or released with
 *     MADV_DONTNEED) and no page of this heap was ever released with
 *     MADV_FREE (RTDEBUG=madvdontneed=0), which leaves old data behind; or
 *   - they all lie above the region's zeroed watermark: the highest address
 *     ever handed out in that reservation (Go's zeroedBase), so they were
 *     never written.  This is the rule that keeps fresh memory free of
 *     clearing when MADV_FREE is in use.
 *
 * Out of memory.  Every step that asks the OS for memory may fail, and
 * rt__heap_alloc_span then returns NULL with nothing changed that matters:
 *   - the span sets of the class are grown before the span exists
 *     (rt__mcentral_reserve), so filing the span later cannot fail;
 *   - a span struct or bitmap that cannot be had puts the pages back;
 *   - a reservation that was mapped but could not be registered in the
 *     arena index or the page allocator (their metadata failed) is kept
 *     as "pending" and finished by the next growth, instead of being
 *     unmapped while arena records may still point into it.
 *
 * Released accounting.  `released` mirrors the page allocator's scavenged
 * page count in bytes and is readable without the lock; pages the
 * scavenger has taken out to release (in_flight) count as free, not
 * released, until it gives them back.  Lock order: heap lock, then an
 * mcentral lock. */
#include "internal.h"

#include <sched.h>
#include <string.h>

rt_heap rt__heap;

void rt__arenas_unmap_all(void);

/* One reservation of whole arenas, with its zeroed watermark. */
#define MAX_REGIONS 4096
typedef struct { uintptr_t base, end, zeroed; } region;

static struct {
    size_t    nregions;                  /* in `regions` */
    bool      untracked;                 /* a region did not fit: no watermark for it */
    uintptr_t pending_base;              /* mapped and committed, not yet all added */
    size_t    pending_bytes;
    size_t    in_flight;                 /* pages the scavenger is releasing */
    uint64_t  released;                  /* bytes, = scavenged pages * page size */
    uint64_t  pa_meta;                   /* page-allocator summaries committed */
    bool      dirty_releases;            /* some page was released with MADV_FREE */
    size_t    class_spans[RT__NUM_SPAN_CLASSES];  /* spans that exist or are being made */
} H;

/* Sorted by base; only [0, H.nregions) is ever read.  Outside H, because
   clearing H at rt_init would make all 96 KiB of it resident. */
static region regions[MAX_REGIONS];

int rt__heap_init(void) {
    memset(&rt__heap, 0, sizeof rt__heap);
    memset(&H, 0, sizeof H);
    rt__os_reset_stats();
    rt__scavenger_reset();
    pthread_mutex_init(&rt__heap.lock, NULL);
    rt__heap.pages = rt__pages_new();
    if (!rt__heap.pages) return -1;
    H.pa_meta = rt__pages_meta_bytes(rt__heap.pages);
    rt__heap.sweepgen = 4;   /* start above 0 so h-2 never wraps */
    for (unsigned i = 0; i < RT__NUM_SPAN_CLASSES; i++) {
        rt__os_mutex_init_spinning(&rt__heap.central[i].lock);
        rt__heap.central[i].spanclass = i;
    }
    return 0;
}


void rt__heap_destroy(void) {
    rt__scavenger_stop();
    for (unsigned i = 0; i < RT__NUM_SPAN_CLASSES; i++) {
        rt_mcentral *c = &rt__heap.central[i];
        for (int j = 0; j < 2; j++) { rt__spanset_free(&c->partial[j]); rt__spanset_free(&c->full[j]); }
    }
    /* Arenas of a pending reservation that never got a record are ours to
       unmap; the others go with their records. */
    for (uintptr_t a = H.pending_base; a < H.pending_base + H.pending_bytes; a += RT_ARENA_BYTES)
        if (!rt__arena_of(a)) rt__os_unreserve((void *)a, RT_ARENA_BYTES);
    H.pending_bytes = 0;
    rt__arenas_unmap_all();
    if (rt__heap.pages) rt__pages_destroy(rt__heap.pages);
    rt__heap.pages = NULL;
    rt__span_pools_reset();
}

/* ---- Growth ---------------------------------------------------------------- */

static void region_add(uintptr_t base, size_t bytes) {
    if (H.nregions == MAX_REGIONS) { H.untracked = true; return; }
    size_t i = H.nregions;
    while (i > 0 && regions[i - 1].base > base) { regions[i] = regions[i - 1]; i--; }
    regions[i] = (region){ base, base + bytes, base };
    H.nregions++;
}

/* Raise the zeroed watermark over [base, base+bytes); true if every byte
   of it lay above the watermark (never handed out before). */
static bool region_note_alloc(uintptr_t base, size_t bytes) {
    size_t lo = 0, hi = H.nregions;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (regions[mid].end <= base) lo = mid + 1;
        else hi = mid;
    }
    if (lo == H.nregions || regions[lo].base > base) return false;   /* untracked region */
    region *r = &regions[lo];
    bool fresh = base >= r->zeroed;
    if (base + bytes > r->zeroed) r->zeroed = base + bytes;
    return fresh;
}

/* Register every arena of [base, base+bytes) and hand the range to the
   page allocator; -1 if their metadata could not be had (arenas already
   registered stay registered, which a retry skips). */
static int region_finish(uintptr_t base, size_t bytes) {
    for (uintptr_t a = base; a < base + bytes; a += RT_ARENA_BYTES) {
        if (rt__arena_of(a)) continue;
        if (rt__arena_register(a, RT_ARENA_BYTES) != 0) return -1;
    }
    int rc = rt__pages_grow(rt__heap.pages, base, bytes);
    st_relaxed(&H.pa_meta, (uint64_t)rt__pages_meta_bytes(rt__heap.pages));
    if (rc != 0) return -1;
    region_add(base, bytes);
    add_relaxed(&rt__heap.sys_bytes, bytes);
    add_relaxed(&H.released, bytes);      /* fresh memory counts as released until used */
    return 0;
}

/* Add at least npages of address space; heap lock held.  0 or -1. */
static int heap_grow(size_t npages) {
    if (H.pending_bytes) {
        /* Finish an earlier reservation first; it may be big enough. */
        uintptr_t pb = H.pending_base;
        size_t pn = H.pending_bytes;
        if (region_finish(pb, pn) != 0) return -1;
        H.pending_bytes = 0;
        if (pn >= npages * RT_PAGE_SIZE) return 0;
    }
    size_t bytes = (npages * RT_PAGE_SIZE + RT_ARENA_BYTES - 1) & ~(RT_ARENA_BYTES - 1);
    void *p = rt__os_reserve_heap(bytes, RT_ARENA_BYTES);
    if (!p) return -1;
    if (rt__os_commit(p, bytes) != 0) { rt__os_unreserve(p, bytes); return -1; }
    if (region_finish((uintptr_t)p, bytes) != 0) {
        H.pending_base = (uintptr_t)p;
        H.pending_bytes = bytes;
        return -1;
    }
    return 0;
}

/* ---- Spans ------------------------------------------------------------------- */

static bool span_bitmaps_ok(const rt_span *s) {
    return s->alloc_bits && s->mark_bytes && (!rt__span_has_heapbits(s) || s->hot.header_bits);
}

/* The pages of a new small-object span that are not resident yet (never
   touched, or released by the scavenger) are faulted in at once, before
   any object is handed out: one madvise instead of a fault per OS page,
   and no read of an untouched page (rt_store's barrier reads the slot)
   that maps the zero page and costs a second, copy-on-write fault.
   docs/memory.md, "First touch", has the measurements.  The span is
   filled soon, so no page is made resident early.  Large objects are left
   alone: a VM may never touch the end of a big array. */
static void populate_small_span(const rt_span *s, size_t nonresident_pages) {
    if (nonresident_pages && rt__spanclass_size(s->hot.spanclass) != 0)
        rt__os_populate((void *)s->hot.base, s->npages * RT_PAGE_SIZE);
}

/* Allocate a span of npages for span class spc.  *zeroed tells whether its
   memory is known to be zero.  NULL if the OS refuses memory (nothing is
   lost; the caller reports out of memory). */
rt_span *rt__heap_alloc_span(size_t npages, unsigned spc, bool *zeroed) {
    size_t nclass = __atomic_add_fetch(&H.class_spans[spc], 1, __ATOMIC_RELAXED);
    if (rt__mcentral_reserve(&rt__heap.central[spc], nclass) != 0) {
        __atomic_sub_fetch(&H.class_spans[spc], 1, __ATOMIC_RELAXED);
        return NULL;
    }
    pthread_mutex_lock(&rt__heap.lock);
    size_t scav = 0;
    bool grew = false;
    uintptr_t base = rt__pages_alloc(rt__heap.pages, npages, &scav);
    while (!base) {
        if (heap_grow(npages) == 0) {
            grew = true;
            base = rt__pages_alloc(rt__heap.pages, npages, &scav);
            if (!base) rt__fatal("page allocator found no room right after growing by %zu pages", npages);
            break;
        }
        if (!H.in_flight) goto fail;
        /* The OS gives no more, but the scavenger holds free pages while
           the kernel releases them: they are not gone.  (Failing here sent
           an allocation that fitted to the OOM handler.) */
        pthread_mutex_unlock(&rt__heap.lock);
        rt__heap_scav_wait_in_flight();
        pthread_mutex_lock(&rt__heap.lock);
        base = rt__pages_alloc(rt__heap.pages, npages, &scav);
    }
    __atomic_sub_fetch(&H.released, (uint64_t)scav * RT_PAGE_SIZE, __ATOMIC_RELAXED);
    bool fresh = region_note_alloc(base, npages * RT_PAGE_SIZE);
    rt_span *s = rt__span_struct_alloc();
    if (!s) goto fail_pages;
    bool z = scav == npages && (!H.dirty_releases || fresh);
    rt__span_init(s, base, npages, spc, !z);
    if (!span_bitmaps_ok(s)) {
        rt__span_release_bitmaps(s);
        rt__span_struct_free(s);
        goto fail_pages;
    }
    add_relaxed(&rt__heap.pages_inuse_spans, npages);
    rt__arena_set_spans(s, base, npages);
    st_release(&s->state, RT_SPAN_INUSE);
    pthread_mutex_unlock(&rt__heap.lock);
    if (zeroed) *zeroed = z;
    /* Before the new pages are touched: keep retained memory under the
       memory limit (and the scavenger's goal, if the heap grew). */
    if (scav) rt__scavenge_on_alloc((uint64_t)scav * RT_PAGE_SIZE, grew);
    populate_small_span(s, scav);
    return s;

fail_pages:
    /* The pages go back unscavenged (their bits were cleared by the
       allocation); the scavenger will release them again if they were. */
    rt__pages_free(rt__heap.pages, base, npages);
fail:
    pthread_mutex_unlock(&rt__heap.lock);
    __atomic_sub_fetch(&H.class_spans[spc], 1, __ATOMIC_RELAXED);
    return NULL;
}

/* Return a swept, empty span's pages.  Never during mark (the marker may be
   reading the span); the sweeper only runs with the mark off. */
void rt__heap_free_span(rt_span *s) {
    unsigned spc = s->hot.spanclass;
    pthread_mutex_lock(&rt__heap.lock);
    RT_ASSERT(s->state == RT_SPAN_INUSE);
    st_release(&s->state, RT_SPAN_DEAD);
    rt__arena_set_spans(NULL, s->hot.base, s->npages);
    rt__pages_free(rt__heap.pages, s->hot.base, s->npages);
    __atomic_sub_fetch(&rt__heap.pages_inuse_spans, s->npages, __ATOMIC_RELAXED);
    rt__span_release_bitmaps(s);
    rt__span_struct_free(s);
    pthread_mutex_unlock(&rt__heap.lock);
    __atomic_sub_fetch(&H.class_spans[spc], 1, __ATOMIC_RELAXED);
    rt__scavenger_on_free();
}

/* ---- Scavenger primitives ------------------------------------------------------ */

size_t rt__heap_scav_take(size_t max_pages, bool force, uintptr_t *base) {
    pthread_mutex_lock(&rt__heap.lock);
    size_t n = rt__heap.pages ? rt__pages_scav_take(rt__heap.pages, max_pages, force, base) : 0;
    H.in_flight += n;
    pthread_mutex_unlock(&rt__heap.lock);
    return n;
}

void rt__heap_scav_return(uintptr_t base, size_t npages, int os_result) {
    pthread_mutex_lock(&rt__heap.lock);
    bool released = os_result >= 0;
    rt__pages_scav_return(rt__heap.pages, base, npages, released);
    H.in_flight -= npages;
    if (released) {
        add_relaxed(&H.released, (uint64_t)npages * RT_PAGE_SIZE);
        rt__arena_release_map(base, npages * RT_PAGE_SIZE);
    }
    if (os_result == RT_OS_RELEASED_DIRTY) H.dirty_releases = true;
    pthread_mutex_unlock(&rt__heap.lock);
}

void rt__heap_scav_wait_in_flight(void) {
    for (;;) {
        pthread_mutex_lock(&rt__heap.lock);
        size_t n = H.in_flight;
        pthread_mutex_unlock(&rt__heap.lock);
        if (n == 0) return;
        sched_yield();   /* at most one chunk's madvise */
    }
}

void rt__heap_scav_newgen(void) {
    pthread_mutex_lock(&rt__heap.lock);
    if (rt__heap.pages) rt__pages_scav_newgen(rt__heap.pages);
    pthread_mutex_unlock(&rt__heap.lock);
}

/* ---- Figures ---------------------------------------------------------------------- */

uint64_t rt__heap_released_bytes(void) { return ld_relaxed(&H.released); }

uint64_t rt__heap_retained_bytes(void) {
    uint64_t sys = ld_relaxed(&rt__heap.sys_bytes), rel = ld_relaxed(&H.released);
    return sys > rel ? sys - rel : 0;
}

uint64_t rt__heap_free_bytes(void) {
    uint64_t retained = rt__heap_retained_bytes();
    uint64_t inuse = (uint64_t)ld_relaxed(&rt__heap.pages_inuse_spans) * RT_PAGE_SIZE;
    return retained > inuse ? retained - inuse : 0;
}

/* Off-heap memory that grows with the heap: everything mapped with
   rt__os_alloc (span sets, arena records, the page
   allocator's bitmap blocks, mark work buffers), the summary arrays the
   page allocator committed, and the resident pages of the span and bitmap
   pools.  Not counted, as in Go: the arena index (32 MiB
   committed, touched one word per arena) and libc allocations (threads,
   Ps, types, roots). */
uint64_t rt__heap_metadata_bytes(void) {
    return rt__os_alloc_bytes() + ld_relaxed(&H.pa_meta) + rt__metapool_resident_total();
}

uint64_t rt__heap_release_metadata(void) {
    uint64_t done = rt__span_pools_release();
    for (unsigned i = 0; i < RT__NUM_SPAN_CLASSES; i++) done += rt__mcentral_trim(&rt__heap.central[i]);
    return done;
}

uint64_t rt__mapped_ready(void) { return rt__heap_retained_bytes() + rt__heap_metadata_bytes(); }

/* Heap-wide invariants: page accounting agrees with the page allocator. */
void rt__heap_check(void) {
    pthread_mutex_lock(&rt__heap.lock);
    rt__pages_check(rt__heap.pages);
    rt__span_pools_check();
    size_t inuse = rt__pages_inuse(rt__heap.pages);
    if (inuse != rt__heap.pages_inuse_spans + H.in_flight)
        rt__fatal("heap check: page allocator has %zu pages in use, spans hold %zu and the scavenger %zu",
                  inuse, rt__heap.pages_inuse_spans, H.in_flight);
    if (rt__pages_total(rt__heap.pages) * RT_PAGE_SIZE != rt__heap.sys_bytes)
        rt__fatal("heap check: %zu pages managed but %llu bytes mapped", rt__pages_total(rt__heap.pages),
                  (unsigned long long)rt__heap.sys_bytes);
    if ((uint64_t)rt__pages_scavenged(rt__heap.pages) * RT_PAGE_SIZE != H.released)
        rt__fatal("heap check: %zu pages scavenged but %llu bytes counted released",
                  rt__pages_scavenged(rt__heap.pages), (unsigned long long)H.released);
    pthread_mutex_unlock(&rt__heap.lock);
}
