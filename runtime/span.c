/* runtime/span.c -- span structures and their bitmaps.
 *
 * Owns: the pools for span structs, allocBits and mark bytes (records
 * in runtime/metapool.c's releasable pools),
 * span initialization, the allocation-cache slow path (Go's nextFreeIndex)
 * and mark-byte access.  The fast path twin is rt__span_next_free_fast in
 * include/rtgc/inline.h.
 *
 * Invariants: slot i is allocated iff i < freeindex or allocBits[i] is set;
 * alloc_cache is the complement of allocBits starting at slot freeindex,
 * refilled at 64-slot boundaries, and holds wherever the span is (cached
 * or in an mcentral set), so rt__span_check tests it; mark bytes are only
 * set by the collector and become the allocation bits when the span is
 * swept (rt__sweep_span).
 * The pools are used with the heap lock held. */
#include "internal.h"

#include <stddef.h>
#include <string.h>

/* ---- pools (runtime/metapool.c) ---------------------------------------------- */

#define MAX_BITMAP_WORDS (1024 / 64)

static rt__metapool span_pool = {
    .name = "span struct", .rec_bytes = sizeof(rt_span),
    .link_off = offsetof(rt_span, next_free), .region_bytes = (size_t)4 << 30,
};
/* By size in 64-bit bitmap words (64 slots each); [0] unused.  A span's
   mark bytes are 64 per bitmap word. */
static rt__metapool bitmap_pool[MAX_BITMAP_WORDS + 1], markbyte_pool[MAX_BITMAP_WORDS + 1];

/* Pool k: 0 is the span struct pool, then the bitmap pools, then the
   mark-byte pools. */
#define NPOOLS (2 * MAX_BITMAP_WORDS + 1)
static rt__metapool *pool_at(unsigned k) {
    if (k == 0) return &span_pool;
    return k <= MAX_BITMAP_WORDS ? &bitmap_pool[k] : &markbyte_pool[k - MAX_BITMAP_WORDS];
}

rt_span *rt__span_struct_alloc(void) {
    rt_span *s = rt__metapool_alloc(&span_pool);
    if (s) pthread_mutex_init(&s->special_lock, NULL);
    return s;
}

void rt__span_struct_free(rt_span *s) {
    RT_ASSERT(s->state == RT_SPAN_DEAD);
    rt__metapool_free(&span_pool, s);
}

static uint8_t *bitmap_alloc(unsigned words) {
    RT_ASSERT(words >= 1 && words <= MAX_BITMAP_WORDS);
    rt__metapool *p = &bitmap_pool[words];
    if (!p->name) *p = (rt__metapool){ .name = "span bitmap", .rec_bytes = (size_t)words * 8,
                                       .region_bytes = (size_t)1 << 30 };
    return rt__metapool_alloc(p);
}

/* Eight times the bitmap's bytes, so eight times its reservation: the two
   run out at the same heap size. */
static uint8_t *markbytes_alloc(unsigned words) {
    RT_ASSERT(words >= 1 && words <= MAX_BITMAP_WORDS);
    rt__metapool *p = &markbyte_pool[words];
    if (!p->name) *p = (rt__metapool){ .name = "span mark bytes", .rec_bytes = (size_t)words * 64,
                                       .region_bytes = (size_t)8 << 30 };
    uint8_t *b = rt__metapool_alloc(p);
    RT_ASSERT((uintptr_t)b % 16 == 0);   /* rt__span_mark_word's aligned loads */
    return b;
}

void rt__span_release_bitmaps(rt_span *s) {
    unsigned w = s->bitmap_words;
    if (s->alloc_bits) rt__metapool_free(&bitmap_pool[w], s->alloc_bits);
    if (s->mark_bytes) rt__metapool_free(&markbyte_pool[w], s->mark_bytes);
    if (s->hot.header_bits) rt__metapool_free(&bitmap_pool[w], s->hot.header_bits);
    s->alloc_bits = s->mark_bytes = s->hot.header_bits = NULL;
}

#define RELEASE_RUN_SLABS 64   /* per madvise call: 256 KiB with 4 KiB pages */

/* Called by the scavenger and rt_free_os_memory.  Slabs are taken out of
   use under the heap lock and released without it, like heap pages. */
uint64_t rt__span_pools_release(void) {
    uint64_t done = 0;
    for (unsigned k = 0; k < NPOOLS; k++) {
        rt__metapool *p = pool_at(k);
        for (;;) {
            void *start;
            size_t bytes;
            pthread_mutex_lock(&rt__heap.lock);
            size_t n = rt__metapool_take_empty(p, RELEASE_RUN_SLABS, &start, &bytes);
            pthread_mutex_unlock(&rt__heap.lock);
            if (n == 0) break;
            int rc = rt__os_release(start, bytes);
            pthread_mutex_lock(&rt__heap.lock);
            rt__metapool_return_empty(p, start, n, rc);
            pthread_mutex_unlock(&rt__heap.lock);
            if (rc < 0) break;
            done += bytes;
        }
    }
    return done;
}

void rt__span_pools_reset(void) {
    for (unsigned k = 0; k < NPOOLS; k++) rt__metapool_reset(pool_at(k));
}

void rt__span_pools_check(void) {
    for (unsigned k = 0; k < NPOOLS; k++) rt__metapool_check(pool_at(k));
}

/* ---- initialization ------------------------------------------------------------ */

/* Every slot's heap bits to one element of `type` (rt__heapbits_set):
   the bit of word b of the span is bit b % nw of the mask, nw words per
   slot, so each heap-bits word is the mask repeated, starting at bit
   (64 i) % nw of the repetition. */
void rt__heapbits_fill(rt__span *s, const rt_type *type) {
    __extension__ typedef unsigned __int128 u128;
    uint64_t *hb = rt__span_heapbits((const rt_span *)s);   /* s is the hot prefix of an rt_span */
    unsigned nw = (unsigned)(s->elemsize / 8);
    RT_ASSERT(type->kind == RT__KIND_LAYOUT && nw >= 1 && nw <= 64 && type->size <= s->elemsize);
    u128 rep = type->small_mask;
    for (unsigned n = nw; n < 128; n *= 2) rep |= rep << n;
    unsigned step = 64 % nw;   /* one division, not one per word */
    for (unsigned i = 0, phase = 0; i < RT__HEAPBITS_BYTES / 8; i++) {
        __atomic_store_n(&hb[i], (uint64_t)(rep >> phase), __ATOMIC_RELAXED);
        phase += step;
        if (phase >= nw) phase -= nw;
    }
    s->hb_type = type;
}

void rt__span_init(rt_span *s, uintptr_t base, size_t npages, unsigned spc, bool needzero) {
    unsigned cls = rt__spanclass_size(spc);
    s->hot.base = base;
    s->npages = npages;
    s->hot.spanclass = (uint8_t)spc;
    s->hot.needzero = needzero;
    s->hot.freeindex = 0;
    s->hot.alloc_count = 0;
    s->large_type = NULL;
    s->specials = NULL;
    if (cls == 0) {
        s->hot.elemsize = npages * RT_PAGE_SIZE;
        s->hot.nelems = 1;
        s->divmagic = 0;
    } else {
        uintptr_t span_bytes = npages * RT_PAGE_SIZE;
        s->hot.elemsize = rt__class_to_size[cls];
        /* Small scan spans keep their heap bits in the last 128 bytes. */
        if (!rt__spanclass_noscan(spc) && s->hot.elemsize <= RT__MAX_NOHEADER_SIZE)
            span_bytes -= RT__HEAPBITS_BYTES;
        s->hot.nelems = (uint16_t)(span_bytes / s->hot.elemsize);
        s->divmagic = rt__class_to_divmagic[cls];
    }
    s->heapbits_mask = s->hot.elemsize / 8 >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << (s->hot.elemsize / 8)) - 1;
    s->limit = base + s->hot.elemsize * s->hot.nelems;
    s->bitmap_words = (uint16_t)((s->hot.nelems + 63) / 64);
    s->alloc_bits = bitmap_alloc(s->bitmap_words);
    s->mark_bytes = markbytes_alloc(s->bitmap_words);
    s->hot.header_bits = rt__span_has_heapbits(s) ? bitmap_alloc(s->bitmap_words) : NULL;
    /* Out of memory for a bitmap: the caller (mheap) sees a NULL bitmap,
       releases the others and reports the allocation as failed. */
    if (!s->alloc_bits || !s->mark_bytes || (rt__span_has_heapbits(s) && !s->hot.header_bits)) return;
    /* Zero pages (fresh or released) have zero heap bits already, and
       mheap faults them in after this in one call. */
    if (needzero && rt__span_has_heapbits(s)) memset(rt__span_heapbits(s), 0, RT__HEAPBITS_BYTES);
    s->hot.hb_type = NULL;
    s->hot.alloc_cache = ~(uint64_t)0;
    s->sweepgen = rt__heap.sweepgen;
    s->in_set = 0;
}

/* ---- allocation cache --------------------------------------------------------- */

/* The free slots of the 64 from byte `whichbyte` of the allocation bits. */
static inline uint64_t free_word(const rt_span *s, unsigned whichbyte) {
    uint64_t v;
    memcpy(&v, s->alloc_bits + whichbyte, 8);   /* little-endian: slot k at bit k */
    return ~v;
}

/* What alloc_cache holds by its invariant, from the allocation bits. */
static uint64_t cache_at_freeindex(const rt_span *s) {
    unsigned fi = s->hot.freeindex;
    if (fi >= s->hot.nelems) return 0;   /* full: a read would go past the bitmap */
    return free_word(s, (fi & ~63u) / 8) >> (fi % 64);
}

void rt__span_prime_cache(rt_span *s) { s->hot.alloc_cache = cache_at_freeindex(s); }

uintptr_t rt__span_next_free(rt_span *s) {
    unsigned n = s->hot.nelems;
    unsigned sfi = s->hot.freeindex;
    if (sfi == n) return 0;
    uint64_t cache = s->hot.alloc_cache;
    unsigned bit = cache ? (unsigned)__builtin_ctzll(cache) : 64;
    while (bit == 64) {
        sfi = (sfi + 64) & ~63u;
        if (sfi >= n) { s->hot.freeindex = (uint16_t)n; return 0; }
        cache = s->hot.alloc_cache = free_word(s, sfi / 8);
        bit = cache ? (unsigned)__builtin_ctzll(cache) : 64;
    }
    unsigned result = sfi + bit;
    if (result >= n) { s->hot.freeindex = (uint16_t)n; return 0; }
    s->hot.alloc_cache = cache >> bit >> 1;   /* as the fast path: bit may be 63 */
    sfi = result + 1;
    if ((sfi & 63) == 0 && sfi != n) s->hot.alloc_cache = free_word(s, sfi / 8);
    s->hot.freeindex = (uint16_t)sfi;
    s->hot.alloc_count++;
    return s->hot.base + (uintptr_t)result * s->hot.elemsize;
}

/* ---- bit access --------------------------------------------------------------- */

bool rt__span_is_free(const rt_span *s, uintptr_t idx) {
    if (idx < s->hot.freeindex) return false;
    return !(s->alloc_bits[idx / 8] & (1u << (idx % 8)));
}

bool rt__span_is_marked(const rt_span *s, uintptr_t idx) {
    return ld_relaxed(&s->mark_bytes[idx]) != 0;
}

/* The bits of slots [from, to) within the 32-slot word that starts at lo. */
static inline uint32_t slot_range_mask(unsigned lo, unsigned from, unsigned to) {
    if (from < lo) from = lo;
    if (to > lo + 32) to = lo + 32;
    if (from >= to) return 0;
    uint32_t upto = to - lo == 32 ? ~0u : (1u << (to - lo)) - 1;
    return upto & ~((1u << (from - lo)) - 1);
}

/* The slots of 32-bit bitmap word w that are free: at or past freeindex,
   within nelems, and not set in the allocation bits (owned by the caching
   P, so read plainly). */
static inline uint32_t free_slots_word(const rt_span *s, unsigned w) {
    uint32_t alloc = ((const uint32_t *)(const void *)s->alloc_bits)[w];
    return slot_range_mask(w * 32, s->hot.freeindex, s->hot.nelems) & ~alloc;
}

/* Objects allocated during a mark must be black (gc/mark.c).  Marking each
   one as it is allocated would cost a store and a test of the collector's
   phase on the inline fast path; marking the span's free slots once, when
   its P starts allocating from it, costs one byte store per free slot off
   that path.  Markers never write the byte of a free slot (they test
   free_for_scan first), so premark and unpremark need no locked
   instruction; relaxed stores because the invalid-pointer check may read
   one.  The extra marks mean nothing until unpremark removes them, which
   the heap verifier and the sweeper (a marked free slot is fatal) would
   catch if missed. */
static void set_free_slot_marks(rt_span *s, uint8_t value) {
    for (unsigned w = 0; w * 32 < s->hot.nelems; w++)
        for (uint32_t f = free_slots_word(s, w); f; f &= f - 1)
            st_relaxed(&s->mark_bytes[w * 32 + (unsigned)__builtin_ctz(f)], value);
}

void rt__span_premark(rt_span *s) {
    RT_ASSERT(!s->premarked && rt__spanclass_size(s->hot.spanclass) != 0);
    set_free_slot_marks(s, 1);
    s->premarked = true;
    s->premark_count = s->hot.alloc_count;
}

/* Leaving the P's cache (full, or handed back at mark termination): the
   slots allocated since premark keep their marks, the free ones lose them. */
uint64_t rt__span_unpremark(rt_span *s) {
    if (!s->premarked) return 0;
    set_free_slot_marks(s, 0);
    s->premarked = false;
    return (uint64_t)(uint16_t)(s->hot.alloc_count - s->premark_count) * s->hot.elemsize;
}

size_t rt__span_count_marks(const rt_span *s) {
    size_t n = 0;
    for (unsigned i = 0; i < s->bitmap_words; i++) n += (size_t)__builtin_popcountll(rt__span_mark_word(s, i));
    return n;
}

/* Structural invariants of one in-use span. */
void rt__span_check(const rt_span *s) {
    if (s->state != RT_SPAN_INUSE) rt__fatal("span check: span %p is not in use", (void *)s);
    unsigned cls = rt__spanclass_size(s->hot.spanclass);
    if (s->hot.base % RT_PAGE_SIZE) rt__fatal("span check: base %#lx not page aligned", (unsigned long)s->hot.base);
    if (cls != 0 && s->npages != rt__class_to_npages[cls])
        rt__fatal("span check: class %u span has %zu pages, want %u", cls, s->npages, rt__class_to_npages[cls]);
    if (s->hot.freeindex > s->hot.nelems || s->hot.alloc_count > s->hot.nelems)
        rt__fatal("span check: freeindex %u / alloc_count %u beyond nelems %u",
                  s->hot.freeindex, s->hot.alloc_count, s->hot.nelems);
    if (s->hot.freeindex < s->hot.nelems && s->hot.alloc_cache != cache_at_freeindex(s))
        rt__fatal("span check: span %#lx caches %#llx at freeindex %u, its allocation bits say %#llx",
                  (unsigned long)s->hot.base, (unsigned long long)s->hot.alloc_cache, s->hot.freeindex,
                  (unsigned long long)cache_at_freeindex(s));
    if (s->limit > s->hot.base + s->npages * RT_PAGE_SIZE) rt__fatal("span check: limit past the span end");
    /* alloc_count equals the allocated slots: below freeindex, or bit set. */
    size_t allocated = 0;
    for (uintptr_t i = 0; i < s->hot.nelems; i++) allocated += !rt__span_is_free(s, i);
    if (allocated != s->hot.alloc_count)
        rt__fatal("span check: span %#lx class %u counts %u allocated slots, bitmap says %zu",
                  (unsigned long)s->hot.base, cls, s->hot.alloc_count, allocated);
    /* A span filled for one type keeps that type's bits in every slot. */
    const rt_type *t = s->hot.hb_type;
    if (t != NULL && t != RT__HB_MIXED) {
        if (!rt__span_has_heapbits(s) || t->size > s->hot.elemsize)
            rt__fatal("span check: span %#lx filled for type '%s' cannot hold it", (unsigned long)s->hot.base, t->name);
        const uint64_t *hb = rt__span_heapbits(s);
        uintptr_t nw = s->hot.elemsize / 8;
        for (uintptr_t i = 0; i < s->hot.nelems; i++)
            for (uintptr_t k = 0; k < nw; k++) {
                uintptr_t w = i * nw + k;
                if ((ld_relaxed(&hb[w / 64]) >> (w % 64) & 1) != (t->small_mask >> k & 1))
                    rt__fatal("span check: span %#lx filled for type '%s', slot %lu word %lu has the wrong heap bit",
                              (unsigned long)s->hot.base, t->name, (unsigned long)i, (unsigned long)k);
            }
    }
}
