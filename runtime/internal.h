/* runtime/internal.h -- shared internals of the allocator and collector:
 * error reporting, assertions, atomics, and the structures every layer
 * touches (span, mcache, P, heap, global state).  One declaration per
 * concept; the code that owns each structure is named in its comment.
 *
 * Naming: rt_ is public, rt__ is internal and exported only for the inline
 * fast paths and the tests; static is file-local. */
#ifndef RT_INTERNAL_H
#define RT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rtgc.h"
#include "os.h"
#include "pagealloc.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* ---- Errors and assertions ------------------------------------------------ */

/* An unrecoverable internal error: one line on stderr, then abort. */
void rt__fatal(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2), cold));
/* Misuse of the API: "rtgc: CALL: what went wrong; the fix", then abort. */
void rt__misuse(const char *call, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3), cold));
/* A warning that does not stop the program (bad environment value). */
void rt__warn(const char *fmt, ...) __attribute__((format(printf, 1, 2), cold));

#ifdef RT_DEBUG
#define RT_ASSERT(c) do { if (!(c)) rt__fatal("assertion failed at %s:%d: %s", __FILE__, __LINE__, #c); } while (0)
#define RT_CHECK(fn_call) ((void)(fn_call))
#else
#define RT_ASSERT(c) ((void)0)
#define RT_CHECK(fn_call) ((void)0)
#endif

#define RT_LIKELY(x)   RT__LIKELY(x)
#define RT_UNLIKELY(x) RT__UNLIKELY(x)

#define ld_relaxed(p)      __atomic_load_n((p), __ATOMIC_RELAXED)
#define ld_acquire(p)      __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define st_relaxed(p, v)   __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define st_release(p, v)   __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define add_relaxed(p, v)  __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
#define cas_acq_rel(p, e, d) __atomic_compare_exchange_n((p), (e), (d), false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)

/* ---- Geometry ------------------------------------------------------------- */

#define RT_ARENA_SHIFT      26                              /* 64 MiB heap arenas */
#define RT_ARENA_BYTES      ((uintptr_t)1 << RT_ARENA_SHIFT)
#define RT_PAGES_PER_ARENA  (RT_ARENA_BYTES / RT_PAGE_SIZE)  /* 8192 */
#define RT_ARENA_L2_ENTRIES ((uintptr_t)1 << (RT_HEAP_ADDR_BITS - RT_ARENA_SHIFT))
#define RT_HEADER_SIZE      RT__HEADER_SIZE                 /* type header of traced/large-layout objects */
#define RT_TINY_SPAN_CLASS  (RT_TINY_SIZE_CLASS << 1 | 1)
#define RT_MIN_HEAP         ((uint64_t)4 << 20)             /* Go's defaultHeapMinimum */
#define RT_MIN_HEAP_FLOOR   ((uint64_t)64 << 10)            /* the smallest RTHEAPMIN accepted */
#define RT_SMALL_CYCLE_WORK ((uint64_t)64 << 10)            /* RTDEBUG smallgc's default (gc/pacer.c) */

static inline unsigned rt__spanclass(unsigned sizeclass, bool noscan) { return sizeclass << 1 | (noscan ? 1u : 0u); }
static inline unsigned rt__spanclass_size(unsigned spc) { return spc >> 1; }
static inline bool     rt__spanclass_noscan(unsigned spc) { return spc & 1; }

/* ---- Span (runtime/span.c) -------------------------------------------------
 *
 * A run of pages holding objects of one span class (or one large object).
 * Metadata never lives inside object memory: the struct and both bitmaps are
 * off-heap.  sweepgen, with h = rt__heap.sweepgen (grows by 2 per cycle):
 *   h-2 needs sweeping   h-1 being swept   h swept and usable
 *   h+1 cached since before this sweep phase (stale)   h+3 swept, then cached */
enum { RT_SPAN_DEAD = 0, RT_SPAN_INUSE = 1 };

typedef struct rt_span {
    rt__span   hot;              /* alloc_cache, base, elemsize, freeindex, nelems, alloc_count, needzero, spanclass, hb_type, header_bits */
    uintptr_t  limit;            /* end of the object-bearing bytes */
    size_t     npages;
    uint8_t   *alloc_bits;       /* 1 bit per slot; with freeindex, the allocation state */
    uint8_t   *mark_bytes;       /* 1 byte per slot (bitmap_words * 64); set by the marker, packed into alloc_bits at sweep */
    uint32_t   divmagic;         /* slot index = (offset * divmagic) >> 32 */
    uint32_t   sweepgen;
    uint8_t    state;            /* RT_SPAN_*, stored last when a span is published */
    uint8_t    in_set;           /* debug: which mcentral set holds it, 0 if none */
    uint16_t   alloc_count_before_cache;
    uint16_t   freeindex_for_scan;   /* like freeindex, advanced only once the object is initialized
                                        (and black during a mark): what the marker may trust */
    uint16_t   bitmap_words;     /* 64-bit words in each bitmap */
    uint64_t   heapbits_mask;    /* heap-bits spans: the low elemsize / 8 bits, one per word of an object */
    const rt_type *large_type;   /* type of a large object (0: noscan or not yet typed) */
    struct rt_special *specials; /* weak handles, cleanups, finalizers, sorted by offset */
    uint32_t   special_idx;      /* while specials is set: its index in gc/specials.c's span list */
    pthread_mutex_t special_lock;
    union {
        struct rt_span *next_free;   /* dead structs: the fixalloc free list */
        struct {                     /* live: */
            bool     premarked;      /* its free slots are marked ahead (rt__span_premark) */
            uint16_t premark_count;  /* hot.alloc_count when they were */
        };
    };
} rt_span;

/* Pools of fixed-size off-heap records whose empty pages can be released
   (runtime/metapool.c); the owner fills name, rec_bytes (a multiple of 8),
   link_off (where a free record keeps a 16-bit link) and region_bytes. */
typedef struct { uint16_t free_head, nfree, bump; uint8_t state; } rt__metaslab;
/* 64 slabs' headers with their two bits each, side by side: a pool of up
   to 448 slabs touches one page of side array (apart, the headers and
   the two bitmaps touched three per pool). */
typedef struct { uint64_t has_free, empty; rt__metaslab slab[64]; } rt__metagroup;
typedef struct rt__metapool {
    const char   *name;
    size_t        rec_bytes, link_off, region_bytes;
    char         *base;              /* the reserved region; slab i at base + i * slab_bytes */
    rt__metagroup *groups;           /* slab i: groups[i / 64], bit i % 64 */
    size_t        slab_bytes, max_slabs, nslabs, hint, inuse;
    unsigned      per_slab;
    uint64_t      resident_bytes;
} rt__metapool;
void    *rt__metapool_alloc(rt__metapool *p);           /* zeroed; NULL if the OS refuses */
void     rt__metapool_free(rt__metapool *p, void *r);
size_t   rt__metapool_take_empty(rt__metapool *p, size_t max, void **start, size_t *bytes);
void     rt__metapool_return_empty(rt__metapool *p, void *start, size_t n, int os_result);
void     rt__metapool_reset(rt__metapool *p);
void     rt__metapool_check(const rt__metapool *p);
uint64_t rt__metapool_resident_total(void);             /* all pools, atomic */

rt_span  *rt__span_struct_alloc(void);                 /* heap lock held */
void      rt__span_struct_free(rt_span *s);            /* heap lock held */
void      rt__span_init(rt_span *s, uintptr_t base, size_t npages, unsigned spc, bool needzero);
void      rt__span_release_bitmaps(rt_span *s);
uint64_t  rt__span_pools_release(void);   /* empty pages of the span and bitmap pools to the OS; takes the heap lock */
void      rt__span_pools_reset(void);     /* heap destroyed: every record is free */
void      rt__span_pools_check(void);     /* heap lock held */
uintptr_t rt__span_next_free(rt_span *s);              /* slow path: refill the cache; 0 when full */
void      rt__span_prime_cache(rt_span *s);   /* the cache from freeindex (any slot, or nelems) */
bool      rt__span_is_free(const rt_span *s, uintptr_t idx);
bool      rt__span_is_marked(const rt_span *s, uintptr_t idx);
/* True if it was unmarked.  One byte per slot, as Boehm's parallel marker
   keeps them: a plain byte store cannot lose another marker's mark, so no
   locked instruction is needed (docs/design.md, "The tri-color invariant",
   has the figures).  Two markers may both see the byte clear
   and both return true; the object is then scanned twice and its bytes
   counted twice (heap_marked may exceed the marks, never fall short). */
static inline bool rt__span_set_mark(rt_span *s, uintptr_t idx) {
    uint8_t *b = &s->mark_bytes[idx];
    if (ld_relaxed(b)) return false;
    st_relaxed(b, (uint8_t)1);
    return true;
}
/* The marks of slots [64 wd, 64 wd + 64) as a bitmap word (bit k: slot
   64 wd + k).  The bytes past nelems are never set. */
static inline uint64_t rt__span_mark_word(const rt_span *s, unsigned wd) {
    const uint8_t *b = s->mark_bytes + (size_t)wd * 64;
#if defined(__SSE2__) && !RT_TSAN_BUILD   /* TSan sees only the atomic loads below */
    const __m128i zero = _mm_setzero_si128();
    uint64_t clear = 0;
    for (unsigned k = 0; k < 4; k++) {
        __m128i v = _mm_load_si128((const __m128i *)(const void *)(b + 16 * k));
        clear |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, zero)) << (16 * k);
    }
    return ~clear;
#else
    uint64_t m = 0;
    for (unsigned k = 0; k < 64; k++) m |= (uint64_t)(ld_relaxed(&b[k]) != 0) << k;
    return m;
#endif
}
size_t    rt__span_count_marks(const rt_span *s);
/* Allocate black by span during a concurrent mark: premark sets the mark
   bit of every slot free now, when a P starts allocating from s; unpremark
   clears the bits of the slots still free when s leaves the P's cache. */
void      rt__span_premark(rt_span *s);
uint64_t  rt__span_unpremark(rt_span *s);   /* returns the bytes allocated since premark */
void      rt__span_check(const rt_span *s);
static inline uintptr_t rt__span_obj_index(const rt_span *s, uintptr_t p) {
    return (uintptr_t)(((uint64_t)(p - s->hot.base) * s->divmagic) >> 32);
}
static inline bool rt__span_has_heapbits(const rt_span *s) {
    return !rt__spanclass_noscan(s->hot.spanclass) && s->hot.elemsize <= RT__MAX_NOHEADER_SIZE
        && rt__spanclass_size(s->hot.spanclass) != 0;
}
static inline uint64_t *rt__span_heapbits(const rt_span *s) {
    return (uint64_t *)(s->hot.base + RT_PAGE_SIZE - RT__HEAPBITS_BYTES);
}

/* ---- Arenas and the address index (runtime/arena.c) -------------------------
 * Any address maps to its arena through one lock-free load; the arena maps
 * each page to its span.  Entries are published with release stores. */
typedef struct rt_arena {
    rt_span  *spans[RT_PAGES_PER_ARENA];
    uintptr_t base;
    struct rt_arena *next;       /* all arenas, for the verifier and shutdown */
} rt_arena;

extern rt_arena **rt__arena_index;   /* RT_ARENA_L2_ENTRIES entries, NULL before the first arena */

/* Inline: every candidate pointer the marker and the barrier see goes
   through these three loads. */
static inline rt_arena *rt__arena_of(uintptr_t p) {
    rt_arena **ix = ld_relaxed(&rt__arena_index);
    if (RT_UNLIKELY(!ix || (p >> RT_HEAP_ADDR_BITS) != 0)) return NULL;
    return ld_acquire(&ix[p >> RT_ARENA_SHIFT]);
}
static inline rt_span *rt__span_of(uintptr_t p) {              /* NULL if not a heap page */
    rt_arena *a = rt__arena_of(p);
    if (!a) return NULL;
    return ld_acquire(&a->spans[(p >> RT_PAGE_SHIFT) % RT_PAGES_PER_ARENA]);
}
static inline rt_span *rt__span_of_heap(uintptr_t p) {         /* in-use span containing p, else NULL */
    rt_span *s = rt__span_of(p);
    if (!s || ld_acquire(&s->state) != RT_SPAN_INUSE) return NULL;
    if (p < s->hot.base || p >= s->hot.base + s->npages * RT_PAGE_SIZE) return NULL;
    return s;
}
int       rt__arena_register(uintptr_t base, size_t bytes);
void      rt__arena_set_spans(rt_span *s, uintptr_t base, size_t npages);
void      rt__arena_release_map(uintptr_t base, size_t bytes);   /* heap lock held; released free pages */
/* Find the object containing p: its base, span and slot index. 0 if p is not
   inside an allocated object. */
uintptr_t rt__find_object(uintptr_t p, rt_span **sp, uintptr_t *idxp);

/* ---- mcentral (runtime/mcentral.c) ------------------------------------------
 * Per span class: spans with free slots (partial) and without (full), each
 * split by sweep parity: set [h/2 % 2] is swept, the other unswept. */
#define RT_SPANSET_INLINE 8   /* entries a set holds before it takes pages from the OS */
typedef struct rt_spanset {
    rt_span **v;                 /* inline, or pages from the OS once it outgrows that */
    size_t    n, cap;
    size_t    hi;                /* the most entries since the array's tail was last released */
    rt_span  *inline_v[RT_SPANSET_INLINE];
} rt_spanset;

typedef struct rt_mcentral {
    pthread_mutex_t lock;
    unsigned        spanclass;
    rt_spanset      partial[2], full[2];
    /* Spans handed to mcaches since the last mark termination, and how many
       swept-empty spans the class keeps this cycle instead of returning
       their pages (gc/sweep.c, keep_empty_span). */
    uint32_t        spans_cached;
    int32_t         keep_empty;
} __attribute__((aligned(64))) rt_mcentral;

rt_span *rt__mcentral_cache_span(rt_mcentral *c);
void     rt__mcentral_uncache_span(rt_mcentral *c, rt_span *s);
void     rt__mcentral_push_swept(rt_mcentral *c, rt_span *s);   /* to the swept full or partial set */
rt_span *rt__mcentral_pop_unswept(rt_mcentral *c);     /* for the sweeper */
size_t   rt__mcentral_pop_unswept_n(rt_mcentral *c, rt_span **out, size_t max);   /* the background sweeper */
void     rt__mcentral_push_swept_n(rt_mcentral *c, rt_span *const *spans, size_t n);
void     rt__mcentral_check(rt_mcentral *c);

/* ---- Grey-object work buffers (gc/work.c) -----------------------------------
 * Each marker, and each P (for its write-barrier flushes and assists),
 * owns two buffers; full buffers go to a global list. */
#define RT_WORKBUF_ITEMS 253
typedef struct rt_workbuf {
    struct rt_workbuf *next;
    size_t             n;
    uintptr_t          item[RT_WORKBUF_ITEMS];
} rt_workbuf;

#define RT_SEEN_MARKED 32           /* entries of rt_gcwork.seen_marked, a power of two */
typedef struct rt_gcwork {
    rt_workbuf *primary, *secondary;
    uint64_t    bytes_marked;     /* slot bytes of objects this worker blackened */
    uint64_t    scan_work;        /* bytes scanned */
    uint64_t    objects_marked;
    uint64_t    credited;         /* scan_work already published to the pacer */
    /* The span of the last object this worker scanned or shaded, and its
       object-bearing bytes [hint_base, hint_base + hint_bytes): neighbours
       usually share a span, and during a mark no span is freed or reused,
       so a pointer inside needs neither the look-up nor its validation.
       Set only while marking; rt__gcwork_dispose, which ends every drain
       and every P's mark, clears it. */
    rt_span    *hint;
    uintptr_t   hint_base, hint_bytes;
    int         id;
    /* Pointers this worker found already marked, direct-mapped by address
       (gc/mark.c, shade).  Same lifetime as the hint: during a mark no
       allocated object loses its mark (unpremark clears free slots only,
       which shade never adds to the table); the sweep clears all. */
    uintptr_t   seen_marked[RT_SEEN_MARKED];
} rt_gcwork;

#define RT_WBUF_ENTRIES 512         /* pointers per P's write-barrier buffer */

/* ---- mcache and P (runtime/mcache.c, runtime/proc.c) ------------------------ */
typedef struct rt_mcache {
    rt__mcache hot;              /* alloc[], tiny, tinyoffset, tiny_allocs */
    uint64_t   scan_alloc;
} rt_mcache;

void rt__mcache_init(rt_mcache *c);
void rt__mcache_refill(rt_mcache *c, unsigned spc);
void rt__mcache_release_all(rt_mcache *c);             /* return every cached span; drop tiny */
/* World stopped: let the marker see what the inline fast path allocated
   from the cached spans (it does not publish freeindex_for_scan). */
void rt__mcache_publish(rt_mcache *c);
void rt__mcache_check(const rt_mcache *c);

typedef struct rt_p {
    rt_mcache  mcache;           /* first: rt__tls_mcache points here */
    unsigned   wbuf_n;           /* entries in wbuf */
    uint64_t   flush_epoch;      /* last ragged-flush request this P answered */
    int        assisting;        /* its thread is scanning in a mark assist (atomic) */
    rt_gcwork  gcw;              /* grey objects from barrier flushes and assists */
    uintptr_t  wbuf[RT_WBUF_ENTRIES];
    int        id;
    bool       in_use;
    struct rt_p *next_idle;
    struct rt_p *next_all;
} rt_p;

/* A registered mutator thread (runtime/proc.c). */
enum { RT_T_RUNNING = 1, RT_T_BLOCKING = 2, RT_T_STOPPED = 3 };
#if defined(__aarch64__)
#define RT__SAVED_REGS 20        /* x19-x30, d8-d15 */
#else
#define RT__SAVED_REGS 6         /* x86-64: rbx, rbp, r12-r15 */
#endif
typedef struct rt_thread {
    int        state;            /* RT_T_*, atomic */
    rt_p      *p;
    pthread_t  tid;
    uintptr_t  stack_lo, stack_hi;
    uintptr_t  saved_sp;         /* stack pointer when it last stopped or blocked */
    uintptr_t  saved_regs[RT__SAVED_REGS];   /* its callee-saved registers then (runtime/context.S) */
    uint64_t   stress_count;
    int        stw_prev_state;   /* state to restore when this thread restarts the world */
    int64_t    assist_credit;    /* bytes it may allocate during a mark before assisting */
    uint64_t   assist_ns;        /* time spent assisting, this cycle */
    struct rt_thread *next;
} rt_thread;

extern __thread rt_thread *rt__tls_thread;
rt_thread *rt__current_thread(void);

/* ---- Global heap state (runtime/mheap.c) ------------------------------------ */
typedef struct rt_heap {
    pthread_mutex_t lock;
    rt__pagealloc  *pages;
    uint32_t        sweepgen;     /* h; +2 at every mark termination */
    rt_mcentral     central[RT__NUM_SPAN_CLASSES];
    rt_arena       *arenas;
    size_t          pages_inuse_spans;   /* pages in in-use spans */
    uint64_t        sys_bytes;           /* committed heap arena bytes */
    /* Accounting; atomics.  heap_live follows Go: a cached span counts whole. */
    uint64_t        heap_live;
    uint64_t        heap_marked;
    uint64_t        total_alloc_bytes, total_alloc_objs;
    uint64_t        total_free_bytes, total_free_objs;
    uint64_t        tiny_allocs;
    uint64_t        large_objs_live;
    uint64_t        heap_scan;
} rt_heap;
extern rt_heap rt__heap;

rt_span *rt__heap_alloc_span(size_t npages, unsigned spc, bool *zeroed);
void     rt__heap_free_span(rt_span *s);
void     rt__heap_check(void);
int      rt__heap_init(void);
void     rt__heap_destroy(void);

/* ---- Options (runtime/env.c) ---------------------------------------------- */
typedef struct rt_config {
    int      gc_percent;         /* -1 = off */
    int64_t  memory_limit;       /* INT64_MAX = none */
    int      maxprocs;
    int      scan_thread_stacks;
    /* RTDEBUG */
    int      gctrace, gccheckmark, gcstoptheworld, clobberfree, invalidptr, scavtrace;
    uint64_t gcstress, failmmap;
    uint64_t smallgc;            /* scan work of a small cycle's mark (gc/pacer.c); 0 = none */
    int64_t  heap_minimum;       /* the goal's floor at RTGC=100 (Go's heapMinimum) */
    int      madvdontneed, verify, checkfinalizers, hugepages;
} rt_config;
extern rt_config rt__cfg;
int rt__procs(void);   /* min(RTMAXPROCS, CPUs): the CPUs the collector accounts for */
void rt__config_load(const rt_options *opts);
int  rt__parse_debug(const char *s, const char *origin);

/* ---- Global state ------------------------------------------------------------ */
typedef struct rt_global {
    bool            initialized;
    uint64_t        init_ns;
    pthread_mutex_t world_lock;   /* threads list, P pool, stop-the-world */
    pthread_cond_t  world_cond;
    pthread_cond_t  stop_cond;    /* the stopper waits here for the last running thread */
    rt_thread      *threads;
    int             nthreads;
    rt_p           *all_ps, *idle_ps;
    int             nps;
    int             p_running;    /* Ps held by running threads (idle marking reads it) */
    int             p_parked;     /* of those, threads asleep holding their P (rt_gc, parked assists) */
    int             stop_depth;   /* >0 while the world is stopped */
    uint64_t        stop_epoch;
    void          (*oom_fn)(size_t, void *);
    void           *oom_ctx;
} rt_global;
extern rt_global rt__g;

/* Stop every other attached thread at a safepoint (runtime/proc.c). The
   caller must hold a P or be unattached (rt_shutdown). */
void rt__procs_flush_and_retire(void);   /* world stopped: release every mcache, retire idle Ps */
void rt__stop_the_world(const char *why);
void rt__start_the_world(void);
/* Park the calling thread if a stop is pending (safepoint slow path). */
void rt__park_if_stopping(void);
void rt__sleep_as_stopped(uint32_t *word, uint32_t val, uint64_t timeout_ns);   /* a futex sleep that need not delay a stop */
void rt__thread_stopped_locked(void);   /* world_lock held: a thread left RUNNING */
/* Save the calling thread's callee-saved registers and stack pointer
   (runtime/context.S).  Called directly by a function that stays in its
   frame until the thread runs again: no C helper may stand in between. */
void rt__save_context(uintptr_t *regs, uintptr_t *sp);
#define rt__capture_context(t) rt__save_context((t)->saved_regs, &(t)->saved_sp)
void rt__enter_blocking(const uintptr_t *regs, uintptr_t sp);   /* rt_enter_blocking's C part */
/* world_lock held: the calling thread goes to sleep holding its P, counted
   as stopped (a stop need not wait for it) and as off its CPU (idle marking
   may use it); sleep_end undoes both.  Inlined, so the registers are saved
   from the frame that sleeps. */
static inline __attribute__((always_inline)) void rt__thread_sleep_begin_locked(rt_thread *t) {
    rt__capture_context(t);
    t->state = RT_T_STOPPED;
    add_relaxed(&rt__g.p_parked, 1);
    rt__thread_stopped_locked();
}
static inline void rt__thread_sleep_end_locked(rt_thread *t) {
    t->state = RT_T_RUNNING;
    add_relaxed(&rt__g.p_parked, -1);
}
/* Ps whose threads are on a CPU: held, and not asleep in rt_gc or a parked
   assist.  rtgc has no scheduler, so this is how the collector's threads
   tell whether a CPU they take is one a mutator wants (idle marking, the
   background sweeper's yields). */
static inline int rt__ps_on_cpu(void) { return ld_relaxed(&rt__g.p_running) - ld_relaxed(&rt__g.p_parked); }

/* ---- Entry points the allocator calls in gc/ ----------------------------- */
void rt__gc_maybe_start(void);                 /* heap trigger or gcstress */
void rt__sweep_span(rt_span *s, bool preserve);  /* caller owns it (sweepgen h-1) */
bool rt__sweep_one(void);                      /* sweep any one span; false when done */
void rt__gc_init(void);
void rt__gc_shutdown(void);
extern volatile int rt__gc_pending;            /* trigger reached; collect before next alloc */
/* Collector phase (gc/gc.c).  The write barrier is on and new objects are
   allocated black while it is RT_PHASE_MARK or RT_PHASE_MARKTERM. */
enum { RT_PHASE_OFF = 0, RT_PHASE_MARK = 1, RT_PHASE_MARKTERM = 2 };
extern volatile int rt__gc_phase;
/* Allocation during a mark (gc/gc.c).  Small objects come from premarked
   spans, so the inline fast path stays on: a span is charged to the
   allocating thread's assist debt when it is cached (charge_alloc) and its
   new objects are counted as marked when it leaves the cache (count_black).
   The slow path blackens large objects, pays the debt and answers a ragged
   flush (mark_alloc_hook). */
void rt__gc_alloc_black(rt_span *s, uintptr_t slot);
void rt__gc_charge_alloc(uint64_t bytes);
void rt__gc_count_black(uint64_t bytes);
void rt__gc_mark_alloc_hook(rt_p *p);
void rt__gc_wake_assists(void);   /* credit was published, a flush asked, or the world restarted */
void rt__sweep_credit(uint64_t bytes);         /* proportional sweep (gc/sweep.c) */
/* The GC CPU limiter is on: the collector is over its CPU budget (gc/limiter.c). */
extern int rt__gc_limiting;

/* Type helpers (runtime/types.c). */
void rt__types_free_all(void);
static inline bool rt__type_valid(const rt_type *t) {   /* checked on every generic allocation */
    return t == RT_NOSCAN || t->magic == RT__TYPE_MAGIC;
}

void rt__arenas_unmap_all(void);
extern rt_span rt__empty_span;                 /* full dummy span in fresh mcaches */
extern uint64_t rt__gc_trigger;                /* heap_live that starts a cycle */
void *rt__malloc(rt_mcache *c, size_t size, const rt_type *type);
/* The heap bits of a small layout object that is not one element (an
   array, or a slot shorter than the type): the mask tiled. */
uint64_t rt__type_object_mask_tiled(const rt_type *t, size_t size, size_t elemsize);
const rt_type *rt__object_type(rt_span *s, uintptr_t objbase, uintptr_t *datap);

/* ==== Giving memory back: scavenger, memory limit, out of memory ===========
 * (issue 7; runtime/scavenger.c, runtime/mheap.c, runtime/mcentral.c;
 * docs/memory.md describes the whole).  Lock order: heap lock, then an
 * mcentral lock; the scavenger's own lock is never held with either. */

/* The background scavenger thread.  start and stop are idempotent; the
   collector starts it in rt__gc_init and stops it in rt__gc_shutdown
   (rt__heap_destroy stops it too, so a forgotten stop cannot outlive the
   heap).  wake is called once per cycle, right after mark termination,
   with the new heap goal (UINT64_MAX when RTGC=off) and the bytes in
   in-use spans the collector sampled before the sweep could free any
   (rt__scavenger_wake samples them itself): it sets the retained-memory
   goal, prints the scavtrace line, and lets the thread run.  Called with
   the world running: waking a thread inside the pause could hand it this
   thread's CPU for a scheduler slice (1.5-3.6 ms measured). */
void     rt__scavenger_start(void);
void     rt__scavenger_stop(void);
void     rt__scavenger_wake(uint64_t heap_goal);
void     rt__scavenger_wake_sampled(uint64_t heap_goal, uint64_t inuse_bytes);
/* Go's memoryLimitHeapGoal (notes 9.3): the heap goal that keeps
   rt__mapped_ready() under RTMEMLIMIT; UINT64_MAX when no limit is set.
   Lock-free; safe with the world stopped. */
uint64_t rt__memlimit_heap_goal(uint64_t heap_marked);
/* Return up to `bytes` (rounded up to whole pages, possibly to a whole
   huge page) of free heap memory to the OS now, on the calling thread,
   highest addresses first.  force = false skips nearly full chunks.
   Returns the bytes released. */
uint64_t rt__scavenge(uint64_t bytes, bool force);
/* Synchronous scavenging (Go's allocSpan): a span just took new_bytes of
   released pages; grew: the heap had to grow for it.  Called by mheap
   with no lock held, before the span's memory is touched. */
void     rt__scavenge_on_alloc(uint64_t new_bytes, bool grew);

typedef struct rt_scav_stats {
    uint64_t released_bg;        /* bytes released by the background thread, since rt_init */
    uint64_t released_eager;     /* ... by allocating threads (memory limit, heap growth) */
    uint64_t released_forced;    /* ... by rt_free_os_memory */
    uint64_t released_meta;      /* span and bitmap pool pages (not heap), by both */
    uint64_t bg_work_ns;         /* CPU time the background thread spent working */
    uint64_t bg_unpaced_ns;      /* ... beyond the 10 ms a round's sleep pays for */
    uint64_t bg_cpu_ns;          /* the background thread's total CPU time (clock) */
    uint64_t bg_life_ns;         /* wall time since the thread started */
    uint64_t bg_rounds;          /* work-then-sleep rounds */
    uint64_t bg_longest_round_ns;  /* CPU time of the longest round (before the sleep's bound) */
    uint64_t gc_goal, limit_goal;  /* retained-memory goals now; UINT64_MAX = none */
    uint64_t wakes;              /* rt__scavenger_wake calls */
} rt_scav_stats;
void rt__scavenger_read_stats(rt_scav_stats *out);
uint64_t rt__scavenger_sleep_for(uint64_t worked_ns);  /* the sleep after a round of that much CPU */
#define RT__SCAV_HOLD_NS 1000000000ull  /* a higher GOGC retained goal stands this long after it was set */
void rt__scavenger_reset(void);      /* rt__heap_init: a new heap, no goals, zero stats */
void rt__scavenger_on_free(void);    /* mheap freed a span: wake a thread parked with a goal unmet */

/* Heap memory figures (runtime/mheap.c); lock-free, exact when quiescent. */
uint64_t rt__heap_released_bytes(void);   /* free pages returned to the OS (heap_released) */
uint64_t rt__heap_retained_bytes(void);   /* heap_sys - heap_released */
uint64_t rt__heap_free_bytes(void);       /* free and not returned: what can be scavenged */
uint64_t rt__heap_metadata_bytes(void);   /* off-heap metadata the limit counts */
uint64_t rt__heap_release_metadata(void); /* empty pool pages and unused span-set tails to the OS; bytes */
uint64_t rt__mapped_ready(void);          /* retained + metadata: what RTMEMLIMIT bounds */
/* The scavenger's primitives (take the heap lock): take a run of free,
   unreleased pages out of the free pool, then return it with the result
   of rt__os_release. */
size_t   rt__heap_scav_take(size_t max_pages, bool force, uintptr_t *base);
void     rt__heap_scav_return(uintptr_t base, size_t npages, int os_result);
void     rt__heap_scav_newgen(void);
void     rt__heap_scav_wait_in_flight(void);   /* until no taken run is still being released */
/* Pre-grow a class's span sets for n spans (runtime/mcentral.c). */
int      rt__mcentral_reserve(rt_mcentral *c, size_t n);
uint64_t rt__mcentral_trim(rt_mcentral *c);   /* release the sets' pages past their entries; bytes */
void     rt__spanset_free(rt_spanset *ss);     /* its pages back to the OS; the set empty (rt_shutdown) */
/* ==== end of issue 7 block ================================================= */

#endif
