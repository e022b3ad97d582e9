/* runtime/metapool.c -- fixed-size off-heap records that go back to the OS.
 *
 * Owns: the pools that hold span structs and span bitmaps (runtime/span.c).
 * A heap that spikes to a gigabyte of small objects needs about 20 MiB of
 * them; when the spike dies, the records are free but their pages were
 * kept, so the program stayed 20 MiB above its heap goal for good.  Here
 * every OS page of a pool (a "slab") is accounted on its own, and a slab
 * whose records are all free can be released with madvise, as the
 * scavenger does with heap pages.
 *
 * Layout.  A pool reserves one region of address space and commits it in
 * 256 KiB steps; slab i is the i-th OS page of the region.  Slab headers
 * live in a separate array (a released slab's page reads as zero, its
 * header must survive), in groups of 64 with two bitmap words each:
 * has_free (a record can be taken from the slab) and empty (every record
 * is free and the page is still resident).  Grouped, a small pool's side
 * array is one page.
 *
 * Invariants, per slab: records [bump, per_slab) were never handed out
 * since the slab was last released (or committed) and are not on the free
 * list; nfree = (per_slab - bump) + the length of the free list;
 * has_free = nfree > 0 and the slab is not being released; empty =
 * nfree == per_slab and the page is resident and not being released.
 *
 * Policy.  Records come from the lowest-addressed slab with a free one, so
 * long-lived records gather at the bottom and the top slabs empty out
 * first.  Release goes from the top down (rt__metapool_take_empty /
 * _return_empty): the caller takes a run of empty slabs out of use with
 * its lock held, madvises it without the lock, and gives it back.
 *
 * Locking: the caller's (mheap's heap lock) for every call. */
#include "internal.h"

#include <string.h>

#define REGION_STEP   (256u << 10)       /* commit granularity */

enum { SLAB_RESIDENT = 0, SLAB_RELEASING = 1, SLAB_RELEASED = 2 };

static uint64_t resident_total;           /* bytes of committed, unreleased slabs, all pools; atomic */

/* Slab i's header and bits (which is has_free or empty). */
static inline rt__metaslab *slab_at(const rt__metapool *p, size_t i) { return &p->groups[i / 64].slab[i % 64]; }
#define HAS_FREE(p, w) ((p)->groups[w].has_free)
#define EMPTY(p, w)    ((p)->groups[w].empty)
#define BIT(i)         ((uint64_t)1 << ((i) % 64))
#define bit_get(p, which, i)   ((which((p), (i) / 64) & BIT(i)) != 0)
#define bit_set(p, which, i)   (which((p), (i) / 64) |= BIT(i))
#define bit_clear(p, which, i) (which((p), (i) / 64) &= ~BIT(i))

static void resident_add(rt__metapool *p, int64_t slabs) {
    int64_t bytes = slabs * (int64_t)p->slab_bytes;
    p->resident_bytes += (uint64_t)bytes;
    add_relaxed(&resident_total, (uint64_t)bytes);
}

uint64_t rt__metapool_resident_total(void) { return ld_relaxed(&resident_total); }

static int pool_init(rt__metapool *p) {
    size_t ospage = rt__os_pagesize();
    p->slab_bytes = ospage < 4096 ? 4096 : ospage;
    p->per_slab = (unsigned)(p->slab_bytes / p->rec_bytes);
    RT_ASSERT(p->per_slab >= 2 && p->per_slab < 65535 && p->link_off + 2 <= p->rec_bytes);
    p->max_slabs = p->region_bytes / p->slab_bytes;
    size_t side = (p->max_slabs + 63) / 64 * sizeof(rt__metagroup);
    side = (side + ospage - 1) & ~(ospage - 1);
    /* The side arrays are committed whole: untouched pages cost nothing. */
    char *s = rt__os_reserve(side, ospage);
    if (!s) return -1;
    if (rt__os_commit(s, side) != 0) { rt__os_unreserve(s, side); return -1; }
    char *r = rt__os_reserve(p->region_bytes, p->slab_bytes);
    if (!r) { rt__os_unreserve(s, side); return -1; }
    p->groups = (rt__metagroup *)(void *)s;
    p->base = r;
    return 0;
}

/* Commit the next step of the region.  Its slabs are free and count as
   released until first touched: committed pages take no memory. */
static int pool_grow(rt__metapool *p) {
    if (!p->base && pool_init(p) != 0) return -1;
    size_t step = REGION_STEP / p->slab_bytes;
    if (step == 0) step = 1;
    if (p->nslabs + step > p->max_slabs)
        rt__fatal("the %s pool is full (%zu MiB of records); raise its region in runtime/span.c", p->name,
                  p->region_bytes >> 20);
    if (rt__os_commit(p->base + p->nslabs * p->slab_bytes, step * p->slab_bytes) != 0) return -1;
    for (size_t i = p->nslabs; i < p->nslabs + step; i++) {
        *slab_at(p, i) = (rt__metaslab){ .nfree = (uint16_t)p->per_slab, .state = SLAB_RELEASED };
        bit_set(p, HAS_FREE, i);
    }
    p->nslabs += step;
    return 0;
}

static inline uint16_t *link_of(rt__metapool *p, char *rec) { return (uint16_t *)(void *)(rec + p->link_off); }

void *rt__metapool_alloc(rt__metapool *p) {
    size_t i = p->hint, words = (p->nslabs + 63) / 64;
    for (size_t w = i / 64; ; w++) {
        if (w >= words) {
            size_t first = p->nslabs;
            if (pool_grow(p) != 0) return NULL;
            i = first;
            break;
        }
        uint64_t bits = HAS_FREE(p, w) & (~(uint64_t)0 << (w == i / 64 ? i % 64 : 0));
        if (bits) { i = w * 64 + (size_t)__builtin_ctzll(bits); break; }
    }
    p->hint = i;
    rt__metaslab *sl = slab_at(p, i);
    char *slab = p->base + i * p->slab_bytes;
    RT_ASSERT(sl->nfree > 0 && sl->state != SLAB_RELEASING);
    char *rec;
    if (sl->free_head) {
        rec = slab + (size_t)(sl->free_head - 1) * p->rec_bytes;
        sl->free_head = *link_of(p, rec);
    } else {
        RT_ASSERT(sl->bump < p->per_slab);
        rec = slab + (size_t)sl->bump++ * p->rec_bytes;
    }
    if (sl->nfree-- == p->per_slab) bit_clear(p, EMPTY, i);
    if (sl->state == SLAB_RELEASED) { sl->state = SLAB_RESIDENT; resident_add(p, 1); }
    if (sl->nfree == 0) bit_clear(p, HAS_FREE, i);
    p->inuse++;
    memset(rec, 0, p->rec_bytes);
    return rec;
}

void rt__metapool_free(rt__metapool *p, void *r) {
    char *rec = r;
    RT_ASSERT(p->base && rec >= p->base && rec < p->base + p->nslabs * p->slab_bytes);
    size_t i = (size_t)(rec - p->base) / p->slab_bytes;
    rt__metaslab *sl = slab_at(p, i);
    size_t idx = (size_t)(rec - (p->base + i * p->slab_bytes)) / p->rec_bytes;
    RT_ASSERT(sl->state == SLAB_RESIDENT && sl->nfree < p->per_slab && idx < sl->bump);
    *link_of(p, rec) = sl->free_head;
    sl->free_head = (uint16_t)(idx + 1);
    if (sl->nfree++ == 0) bit_set(p, HAS_FREE, i);
    if (sl->nfree == p->per_slab) bit_set(p, EMPTY, i);
    if (i < p->hint) p->hint = i;
    p->inuse--;
}

/* A run of up to max empty slabs, the highest first, taken out of use
   until rt__metapool_return_empty; returns the run's length (0: none). */
size_t rt__metapool_take_empty(rt__metapool *p, size_t max, void **start, size_t *bytes) {
    if (!p->base || max == 0) return 0;
    for (size_t w = (p->nslabs + 63) / 64; w-- > 0;) {
        if (!EMPTY(p, w)) continue;
        size_t top = w * 64 + 63 - (size_t)__builtin_clzll(EMPTY(p, w)), lo = top;
        while (lo > 0 && top - lo + 1 < max && bit_get(p, EMPTY, lo - 1)) lo--;
        for (size_t i = lo; i <= top; i++) {
            slab_at(p, i)->state = SLAB_RELEASING;
            bit_clear(p, EMPTY, i);
            bit_clear(p, HAS_FREE, i);
        }
        *start = p->base + lo * p->slab_bytes;
        *bytes = (top - lo + 1) * p->slab_bytes;
        return top - lo + 1;
    }
    return 0;
}

/* The run is back: released (os_result >= 0, its pages read as zero or
   will be rewritten) or still resident (the kernel refused). */
void rt__metapool_return_empty(rt__metapool *p, void *start, size_t n, int os_result) {
    size_t first = (size_t)((char *)start - p->base) / p->slab_bytes;
    for (size_t i = first; i < first + n; i++) {
        rt__metaslab *sl = slab_at(p, i);
        RT_ASSERT(sl->state == SLAB_RELEASING && sl->nfree == p->per_slab);
        bit_set(p, HAS_FREE, i);
        if (os_result >= 0) {
            /* Every record is handed out again by bump and zeroed then,
               so a page freed lazily (MADV_FREE) is as good as zero. */
            *sl = (rt__metaslab){ .nfree = (uint16_t)p->per_slab, .state = SLAB_RELEASED };
        } else {
            sl->state = SLAB_RESIDENT;
            bit_set(p, EMPTY, i);
        }
        if (i < p->hint) p->hint = i;
    }
    if (os_result >= 0) resident_add(p, -(int64_t)n);
}

/* Every record is free (the heap is gone): release the region and start
   over, keeping the reservation for the next rt_init. */
void rt__metapool_reset(rt__metapool *p) {
    if (!p->base) return;
    if (p->nslabs) (void)rt__os_release(p->base, p->nslabs * p->slab_bytes);
    for (size_t w = 0; w < (p->nslabs + 63) / 64; w++) HAS_FREE(p, w) = EMPTY(p, w) = 0;   /* none set past nslabs */
    for (size_t i = 0; i < p->nslabs; i++) {
        *slab_at(p, i) = (rt__metaslab){ .nfree = (uint16_t)p->per_slab, .state = SLAB_RELEASED };
        bit_set(p, HAS_FREE, i);
    }
    resident_add(p, -(int64_t)(p->resident_bytes / p->slab_bytes));
    p->hint = 0;
    p->inuse = 0;
}

void rt__metapool_check(const rt__metapool *p) {
    if (!p->base) return;
    size_t inuse = 0, resident = 0;
    for (size_t i = 0; i < p->nslabs; i++) {
        const rt__metaslab *sl = slab_at(p, i);
        size_t listed = 0;
        if (sl->state == SLAB_RELEASING) {   /* its page is being zeroed: nothing in it to read */
            if (sl->nfree != p->per_slab || bit_get(p, HAS_FREE, i) || bit_get(p, EMPTY, i))
                rt__fatal("%s pool: slab %zu is being released while in use", p->name, i);
            resident++;
            continue;
        }
        for (uint16_t h = sl->free_head; h; h = *(const uint16_t *)(const void *)
                 (p->base + i * p->slab_bytes + (size_t)(h - 1) * p->rec_bytes + p->link_off)) {
            if (h - 1u >= sl->bump || ++listed > p->per_slab)
                rt__fatal("%s pool: slab %zu's free list is corrupt", p->name, i);
        }
        if (sl->nfree != p->per_slab - sl->bump + listed)
            rt__fatal("%s pool: slab %zu counts %u free, holds %zu", p->name, i, sl->nfree,
                      p->per_slab - sl->bump + listed);
        bool want_free = sl->nfree > 0;
        bool want_empty = sl->nfree == p->per_slab && sl->state == SLAB_RESIDENT;
        if (bit_get(p, HAS_FREE, i) != want_free || bit_get(p, EMPTY, i) != want_empty)
            rt__fatal("%s pool: slab %zu's bitmaps disagree with its count", p->name, i);
        if (want_free && i < p->hint) rt__fatal("%s pool: slab %zu has room below the hint %zu", p->name, i, p->hint);
        if (sl->state == SLAB_RELEASED && sl->nfree != p->per_slab)
            rt__fatal("%s pool: released slab %zu holds records", p->name, i);
        inuse += p->per_slab - sl->nfree;
        resident += sl->state != SLAB_RELEASED;
    }
    if (inuse != p->inuse || resident * p->slab_bytes != p->resident_bytes)
        rt__fatal("%s pool: %zu records and %zu resident slabs counted, %zu and %llu held", p->name, p->inuse,
                  (size_t)(p->resident_bytes / p->slab_bytes), inuse, (unsigned long long)resident);
}
