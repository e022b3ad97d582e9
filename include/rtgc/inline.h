/* rtgc/inline.h -- inline fast paths of the public API (included by rtgc.h).
 *
 * Owns: the hot prefix of the span and mcache structures, the global flag
 * word the fast paths test, and the size-specialized allocation path.
 *
 * Every fast path here has an out-of-line twin in the library (rt__*_slow or
 * the plain function) and falls back to it whenever anything is unusual:
 * no P (unattached or blocking thread), a collection wants the world,
 * the write barrier is on, a debug mode counts allocations, the span is
 * full.  The fast paths are therefore only ever taken in the common state,
 * and the one load of rt__flags.word decides that. */
#ifndef RTGC_INLINE_H
#define RTGC_INLINE_H

#include <string.h>
#include <rtgc/sizeclasses.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RT__LIKELY(x)   __builtin_expect(!!(x), 1)
#define RT__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define RT__NUM_SPAN_CLASSES (RT_NUM_SIZE_CLASSES * 2)
#define RT__MAX_NOHEADER_SIZE 512      /* layout objects up to this size keep heap bits in the span */
#define RT__HEAPBITS_BYTES    128      /* heap bits at the end of a one-page scan span */
#define RT__HEADER_SIZE       8        /* the rt_type * before a traced, conservative or big layout object */

/* Type kinds (rt_type.kind). */
enum { RT__KIND_LAYOUT = 1, RT__KIND_TRACED = 2, RT__KIND_CONSERVATIVE = 3 };

/* The type descriptor.  Immutable once made; never freed before rt_shutdown. */
struct rt_type {
    uint32_t    kind;
    uint32_t    magic;          /* RT__TYPE_MAGIC: catches a stray pointer passed as a type */
    size_t      size;           /* bytes of one element (layout); 0 for traced/conservative */
    size_t      ptr_words;      /* words up to and including the last pointer slot */
    uint64_t    small_mask;     /* pointer bits of one element if size <= 512 */
    const uint64_t *mask;       /* pointer bits, one per word, ptr_words bits */
    rt_trace_fn trace;
    const char *name;
};
#define RT__TYPE_MAGIC 0x72747970u

/* Hot prefix of a span (runtime/span.h extends it).  Slot i lives at
   base + i*elemsize; slot i is free iff i >= freeindex and its allocBit is 0;
   alloc_cache holds the complement of allocBits from slot freeindex on. */
typedef struct rt__span {
    uint64_t  alloc_cache;
    uintptr_t base;
    uintptr_t elemsize;
    uint16_t  freeindex;
    uint16_t  nelems;
    uint16_t  alloc_count;
    uint8_t   needzero;      /* free slots may hold garbage */
    uint8_t   spanclass;     /* sizeclass << 1 | noscan */
    const struct rt_type *hb_type;   /* heap-bits spans: see rt__heapbits_set */
    uint8_t  *header_bits;   /* exactly the spans with heap bits: 1 = the slot starts with a type header */
} rt__span;

/* Hot prefix of a P's allocation cache (runtime/mcache.h extends it). */
typedef struct rt__mcache {
    rt__span *alloc[RT__NUM_SPAN_CLASSES];
    uintptr_t tiny;          /* current 16-byte tiny block, 0 if none */
    uintptr_t tinyoffset;
    uint64_t  tiny_allocs;
} rt__mcache;

/* rt__flags.word is nonzero whenever a fast path must take the slow path:
   bit 0 the world must stop, bit 1 the write barrier is on (stores take
   the slow path; allocation does not: spans cached during a mark are
   black ahead), bit 2 every allocation must go through the slow path
   (gcstress). */
#define RT__FLAG_STOP      1u
#define RT__FLAG_WB        2u
#define RT__FLAG_SLOWALLOC 4u
/* Alone on its cache line: every allocation and store reads it, and a line
   shared with data other threads write (it sat beside world_lock) misses
   in the mutator's cache each time they do.  No change measured on
   queue.lox, where that lock is taken a few dozen times a cycle. */
typedef struct { volatile uint32_t word; } __attribute__((aligned(64))) rt__flags_t;   /* aligned: sizeof is 64 too */
extern rt__flags_t rt__flags;
/* One relaxed load (a plain move on x86-64); the flag changes only while
   the world is stopped, and the stop itself orders everything else. */
static inline uint32_t rt__flags_load(void) { return __atomic_load_n(&rt__flags.word, __ATOMIC_RELAXED); }

/* The calling thread's mcache while it holds a P, else NULL. */
extern __thread rt__mcache *rt__tls_mcache __attribute__((tls_model("initial-exec")));

void *rt__alloc_slow(size_t size, const rt_type *type);
void  rt__store_slow(void *slot, void *value);
void  rt__safepoint_slow(void);

static inline unsigned rt__size_to_class_inline(size_t size) {
    if (size <= RT_SMALL_SIZE_MAX - 8)
        return rt__size_to_class8[(size + RT_SMALL_SIZE_DIV - 1) / RT_SMALL_SIZE_DIV];
    return rt__size_to_class128[(size - RT_SMALL_SIZE_MAX + RT_LARGE_SIZE_DIV - 1) / RT_LARGE_SIZE_DIV];
}

/* Take the next free slot of span s, or return 0 (empty cache, or the next
   index would need a cache refill: the slow path does that). */
static inline __attribute__((always_inline)) uintptr_t rt__span_next_free_fast(rt__span *s, uintptr_t elemsize) {
    uint64_t cache = s->alloc_cache;
    if (RT__UNLIKELY(cache == 0)) return 0;
    unsigned t = (unsigned)__builtin_ctzll(cache);
    unsigned idx = s->freeindex + t;
    unsigned next = idx + 1;
    if (RT__UNLIKELY(idx >= s->nelems || ((next & 63) == 0 && next != s->nelems))) return 0;
    s->alloc_cache = cache >> t >> 1;   /* t may be 63 (a span's last slot), and a shift by 64 is undefined */
    s->freeindex = (uint16_t)next;
    s->alloc_count++;
    return s->base + (uintptr_t)idx * elemsize;
}

/* Write the heap bits of a small layout object: 1 bit per word of the slot,
   at the end of its one-page span. */
static inline __attribute__((always_inline)) void rt__heapbits_write_small(uintptr_t base, uintptr_t obj,
                                                                          uintptr_t elemsize, uint64_t mask) {
    uint64_t *hb = (uint64_t *)(base + RT_PAGE_SIZE - RT__HEAPBITS_BYTES);
    uintptr_t w = (obj - base) / 8, nw = elemsize / 8;
    unsigned i = (unsigned)(w / 64), o = (unsigned)(w % 64);
    /* Relaxed atomics (plain moves on x86-64): a concurrent marker may read
       other objects' bits in the same words; only this P writes them. */
    uint64_t w0 = __atomic_load_n(&hb[i], __ATOMIC_RELAXED);
    if (o + nw <= 64) {
        uint64_t clr = (nw == 64 ? ~(uint64_t)0 : (((uint64_t)1 << nw) - 1)) << o;
        __atomic_store_n(&hb[i], (w0 & ~clr) | (mask << o), __ATOMIC_RELAXED);
    } else {
        unsigned rem = (unsigned)(o + nw - 64);
        uint64_t w1 = __atomic_load_n(&hb[i + 1], __ATOMIC_RELAXED);
        __atomic_store_n(&hb[i], (w0 & (((uint64_t)1 << o) - 1)) | (mask << o), __ATOMIC_RELAXED);
        __atomic_store_n(&hb[i + 1], (w1 & ~(((uint64_t)1 << rem) - 1)) | (mask >> (64 - o)), __ATOMIC_RELAXED);
    }
}

/* Mark slot idx of a heap-bits span as starting with a type header.  A
   span's header bits have one writer at a time: the P that caches the
   span, or its sweeper, never both.  Markers and specials only read them,
   so a relaxed load and store suffice (they keep the byte whole for those
   readers); a locked OR was half of rt__malloc's time in the Lox VM. */
static inline __attribute__((always_inline)) void rt__header_bit_set(rt__span *s, uintptr_t idx) {
    uint8_t *b = &s->header_bits[idx / 8];
    __atomic_store_n(b, (uint8_t)(__atomic_load_n(b, __ATOMIC_RELAXED) | (1u << (idx % 8))), __ATOMIC_RELAXED);
}

/* Most heap-bits spans hold one type, so a span remembers the type whose
   element bits every slot, free or not, already holds (hb_type): NULL in
   a fresh span, whose first layout object fills the bits of every slot
   at once (rt__heapbits_fill, a few dozen stores), after which objects of
   that type skip the write; RT__HB_MIXED once another kind was written,
   after which every object writes its own bits, as Go does.  Only the P
   caching the span calls this; a marker reads the bits of allocated
   layout objects only, and there are none in a fresh span.  For an object
   of exactly type->size bytes (its mask is type->small_mask). */
#define RT__HB_MIXED ((const struct rt_type *)1)
void rt__heapbits_fill(rt__span *s, const struct rt_type *type);

static inline __attribute__((always_inline)) void rt__heapbits_set(rt__span *s, uintptr_t obj,
                                                                  const struct rt_type *type) {
    const struct rt_type *f = s->hb_type;
    if (RT__LIKELY(f == type)) return;
    if (f == NULL) { rt__heapbits_fill(s, type); return; }
    if (f != RT__HB_MIXED) s->hb_type = RT__HB_MIXED;
    rt__heapbits_write_small(s->base, obj, s->elemsize, type->small_mask);
}

/* Zeroing a fresh object of a constant size: with 16-byte stores, because
   compilers expand a memset of 100-256 bytes into rep stos, whose start-up
   costs more than the stores (binary_trees.lox, whose tables' first entry
   arrays are 144 bytes, ran 5% faster; medians of 11).  Class sizes are
   multiples of 8.  may_alias: the stores must not give the memory a type. */
typedef unsigned long long rt__zero16 __attribute__((vector_size(16), aligned(8), may_alias));
typedef unsigned long long rt__zero8 __attribute__((may_alias));

static inline __attribute__((always_inline)) void rt__zero_object(uintptr_t p, uintptr_t size) {
    if (__builtin_constant_p(size) && size <= 256) {
        const rt__zero16 zero = { 0, 0 };
        _Pragma("GCC unroll 16")
        for (uintptr_t i = 0; i + 16 <= size; i += 16) *(rt__zero16 *)(p + i) = zero;
        if (size % 16) *(rt__zero8 *)(p + size - 8) = 0;
    } else {
        memset((void *)p, 0, size);
    }
}

/* Size-specialized allocation: with a constant size every class lookup
   below folds at compile time, leaving a TLS load, the flag test, the ctz
   and the zeroing in the caller. */
static inline __attribute__((always_inline)) void *rt__alloc_inline(size_t size, const rt_type *type) {
    if (__builtin_constant_p(size) && size > 0 && size <= RT__MAX_NOHEADER_SIZE) {
        rt__mcache *c = rt__tls_mcache;
        if (RT__LIKELY(c != NULL && (rt__flags_load() & ~RT__FLAG_WB) == 0)) {
            unsigned cls = rt__size_to_class_inline(size);
            uintptr_t elemsize = rt__class_to_size[cls];
            if (type == RT_NOSCAN) {
                if (size < RT_TINY_SIZE) {
                    uintptr_t off = c->tinyoffset;
                    if (size % 8 == 0) off = (off + 7) & ~(uintptr_t)7;
                    else if (size % 4 == 0) off = (off + 3) & ~(uintptr_t)3;
                    else if (size % 2 == 0) off = (off + 1) & ~(uintptr_t)1;
                    if (off + size <= RT_TINY_SIZE && c->tiny != 0) {
                        c->tinyoffset = off + size;
                        c->tiny_allocs++;
                        return (void *)(c->tiny + off);
                    }
                } else {
                    rt__span *s = c->alloc[cls << 1 | 1];
                    uintptr_t p = rt__span_next_free_fast(s, elemsize);
                    if (RT__LIKELY(p != 0)) {
                        if (s->needzero) rt__zero_object(p, elemsize);
                        return (void *)p;
                    }
                }
            } else if (type->kind == RT__KIND_LAYOUT) {
                if (type->size == size) {
                    rt__span *s = c->alloc[cls << 1];
                    uintptr_t p = rt__span_next_free_fast(s, elemsize);
                    if (RT__LIKELY(p != 0)) {
                        if (s->needzero) rt__zero_object(p, elemsize);
                        rt__heapbits_set(s, p, type);
                        return (void *)p;
                    }
                }
            } else if (size + RT__HEADER_SIZE <= RT__MAX_NOHEADER_SIZE) {
                /* Traced or conservative: the type in an 8-byte header, in a
                   heap-bits span (which has header bits) of the bigger class. */
                unsigned hcls = rt__size_to_class_inline(size + RT__HEADER_SIZE);
                uintptr_t hsize = rt__class_to_size[hcls];
                rt__span *s = c->alloc[hcls << 1];
                uintptr_t p = rt__span_next_free_fast(s, hsize);
                if (RT__LIKELY(p != 0)) {
                    if (s->needzero) rt__zero_object(p, hsize);
                    *(const struct rt_type **)p = type;
                    rt__header_bit_set(s, s->freeindex - 1u);
                    return (void *)(p + RT__HEADER_SIZE);
                }
            }
        }
    }
    return rt__alloc_slow(size, type);
}

static inline __attribute__((always_inline)) void rt__store_inline(void *slot, void *value) {
    if (RT__UNLIKELY(rt__flags_load() & RT__FLAG_WB)) { rt__store_slow(slot, value); return; }
    __atomic_store_n((void **)slot, value, __ATOMIC_RELEASE);   /* a plain move on x86-64: publishes the object */
}

static inline __attribute__((always_inline)) void rt__safepoint_inline(void) {
    if (RT__UNLIKELY(rt__flags_load() & RT__FLAG_STOP)) rt__safepoint_slow();
}

#define rt_alloc(size, type) rt__alloc_inline((size), (type))
#define rt_store(slot, value) rt__store_inline((void *)(slot), (void *)(value))
#define rt_safepoint() rt__safepoint_inline()
/* Allocate one T: the size is a constant, so the fast path is fully specialized. */
#define rt_new(T, type) ((T *)rt__alloc_inline(sizeof(T), (type)))

#ifdef __cplusplus
}
#endif

#endif /* RTGC_INLINE_H */
