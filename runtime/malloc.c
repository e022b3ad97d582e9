/* runtime/malloc.c -- allocation: rt_alloc's slow path and everything the
 * inline fast path leaves to it.
 *
 * Owns: the dispatch by size and type (Go's mallocgc): tiny pointer-free
 * objects under 16 B packed into 16-byte blocks; small objects from the P's
 * cached span of their class; large objects (> 32760 B) in spans of their
 * own.  Where an object's type lives:
 *   - layout types, slot <= 512 B: heap bits (1 per word) at the span end;
 *   - traced, conservative, and larger layout objects: an 8-byte header
 *     holding the type, the object starting 8 bytes into its slot (small
 *     scan spans mark such slots in header_bits, cleared when swept);
 *   - large objects: the type in the span (large_type), published after
 *     the memory is zeroed.
 * Memory is always returned zeroed. */
#include "internal.h"

#include <string.h>

static void *out_of_memory(const char *call, size_t size) {
    if (rt__g.oom_fn) {
        rt__g.oom_fn(size, rt__g.oom_ctx);
        return NULL;
    }
    rt__fatal("%s: cannot allocate %zu bytes: the OS refused memory or the size exceeds the heap; "
              "set a handler with rt_set_oom_handler to recover", call, size);
}

/* The object at slot is initialized: during a mark make it black, then let
   the marker see it as allocated (freeindex_for_scan). */
static inline void publish(rt_span *s, uintptr_t slot) {
    if (RT_UNLIKELY(ld_relaxed(&rt__gc_phase) != RT_PHASE_OFF)) rt__gc_alloc_black(s, slot);
    st_release(&s->freeindex_for_scan, s->hot.freeindex);
}

static void *alloc_tiny(rt_mcache *c, size_t size) {
    uintptr_t off = c->hot.tinyoffset;
    if (size % 8 == 0) off = (off + 7) & ~(uintptr_t)7;
    else if (size % 4 == 0) off = (off + 3) & ~(uintptr_t)3;
    else if (size % 2 == 0) off = (off + 1) & ~(uintptr_t)1;
    if (c->hot.tiny && off + size <= RT_TINY_SIZE) {
        c->hot.tinyoffset = off + size;
        c->hot.tiny_allocs++;
        return (void *)(c->hot.tiny + off);
    }
    rt_span *s = (rt_span *)c->hot.alloc[RT_TINY_SPAN_CLASS];
    uintptr_t p = rt__span_next_free(s);
    if (!p) {
        rt__mcache_refill(c, RT_TINY_SPAN_CLASS);
        s = (rt_span *)c->hot.alloc[RT_TINY_SPAN_CLASS];
        p = rt__span_next_free(s);
        if (!p) return NULL;
    }
    memset((void *)p, 0, RT_TINY_SIZE);
    publish(s, p);
    /* Keep the block whose leftover is larger, as Go does. */
    if (!c->hot.tiny || size < c->hot.tinyoffset) {
        c->hot.tiny = p;
        c->hot.tinyoffset = size;
    }
    return (void *)p;
}

static void *alloc_large(size_t size, const rt_type *type) {
    size_t npages = (size + RT_PAGE_SIZE - 1) / RT_PAGE_SIZE;
    if (npages == 0 || size > ((size_t)1 << (RT_HEAP_ADDR_BITS - 1))) return NULL;
    rt__sweep_credit(npages * RT_PAGE_SIZE);
    bool zeroed;
    unsigned spc = rt__spanclass(0, type == RT_NOSCAN);
    rt_span *s = rt__heap_alloc_span(npages, spc, &zeroed);
    if (!s) return NULL;
    if (!zeroed) memset((void *)s->hot.base, 0, npages * RT_PAGE_SIZE);
    s->hot.freeindex = 1;
    s->hot.alloc_count = 1;
    st_release(&s->large_type, type);
    publish(s, s->hot.base);
    uint64_t bytes = (uint64_t)npages * RT_PAGE_SIZE;
    rt__gc_charge_alloc(bytes);
    add_relaxed(&rt__heap.total_alloc_objs, 1);
    add_relaxed(&rt__heap.total_alloc_bytes, bytes);
    uint64_t live = add_relaxed(&rt__heap.heap_live, bytes);
    if (live >= ld_relaxed(&rt__gc_trigger)) st_relaxed(&rt__gc_pending, 1);
    rt__mcentral_push_swept(&rt__heap.central[spc], s);
    return (void *)s->hot.base;
}

/* Allocate with a P held and no collection pending. NULL: out of memory. */
void *rt__malloc(rt_mcache *c, size_t size, const rt_type *type) {
    if (size == 0) size = 1;   /* distinct objects, never a shared zero address */
    bool noscan = type == RT_NOSCAN;
    if (noscan && size < RT_TINY_SIZE) return alloc_tiny(c, size);
    bool header = !noscan && (type->kind != RT__KIND_LAYOUT || size > RT__MAX_NOHEADER_SIZE
                              || type->size > RT__MAX_NOHEADER_SIZE);
    size_t total = size + (header ? RT_HEADER_SIZE : 0);
    if (total < size || total > RT_MAX_SMALL_ALLOC) return alloc_large(size, type);

    unsigned cls = rt__size_to_class_inline(total);
    unsigned spc = rt__spanclass(cls, noscan);
    rt_span *s = (rt_span *)c->hot.alloc[spc];
    uintptr_t p = rt__span_next_free_fast(&s->hot, s->hot.elemsize);   /* the inline path's twin */
    if (RT_UNLIKELY(!p)) p = rt__span_next_free(s);
    if (!p) {
        rt__mcache_refill(c, spc);
        s = (rt_span *)c->hot.alloc[spc];
        p = rt__span_next_free(s);
        if (!p) return NULL;
    }
    uintptr_t elemsize = s->hot.elemsize;
    if (s->hot.needzero) memset((void *)p, 0, elemsize);
    uintptr_t obj = p;
    if (header) {
        *(const rt_type **)p = type;
        /* publish() below orders this before markers see the slot. */
        if (s->hot.header_bits) rt__header_bit_set(&s->hot, rt__span_obj_index(s, p));
        obj = p + RT_HEADER_SIZE;
    } else if (!noscan) {
        if (size == type->size) {
            rt__heapbits_set(&s->hot, p, type);
        } else {   /* an array, or a slot cut short: not one element's bits */
            s->hot.hb_type = RT__HB_MIXED;
            rt__heapbits_write_small(s->hot.base, p, elemsize, rt__type_object_mask_tiled(type, size, elemsize));
        }
    }
    publish(s, p);
    return (void *)obj;
}

static void no_p(const char *call) {
    rt_thread *t = rt__tls_thread;
    if (!rt__g.initialized)
        rt__misuse(call, "rtgc is not initialized; call rt_init() first");
    if (!t)
        rt__misuse(call, "called from a thread that is not attached; call rt_thread_attach() in this thread first");
    rt__misuse(call, "called between rt_enter_blocking() and rt_exit_blocking(); "
               "call rt_exit_blocking() before touching the heap");
}

static void *alloc_checked(const char *call, size_t size, const rt_type *type) {
    rt_mcache *c = (rt_mcache *)rt__tls_mcache;
    if (RT_UNLIKELY(!c)) no_p(call);
    if (RT_UNLIKELY(!rt__type_valid(type)))
        rt__misuse(call, "the type %p is not an rt_type; pass RT_NOSCAN, RT_CONSERVATIVE or a type "
                   "from rt_type_layout/rt_type_traced", (const void *)type);
    if (RT_UNLIKELY(rt__flags_load())) {
        if (rt__flags_load() & RT__FLAG_STOP) rt__park_if_stopping();
        if (rt__cfg.gcstress) {
            rt_thread *t = rt__tls_thread;
            if (++t->stress_count % rt__cfg.gcstress == 0) st_relaxed(&rt__gc_pending, 1);
        }
    }
    if (RT_UNLIKELY(ld_relaxed(&rt__gc_pending))) rt__gc_maybe_start();
    if (RT_UNLIKELY(ld_relaxed(&rt__gc_phase) == RT_PHASE_MARK))
        rt__gc_mark_alloc_hook((rt_p *)rt__tls_mcache);
    void *p = rt__malloc((rt_mcache *)rt__tls_mcache, size, type);
    if (RT_UNLIKELY(!p)) {
        /* Collect and retry once before reporting. */
        rt_gc();
        p = rt__malloc((rt_mcache *)rt__tls_mcache, size, type);
        if (!p) return out_of_memory(call, size);
    }
    return p;
}

void *rt__alloc_slow(size_t size, const rt_type *type) {
    return alloc_checked("rt_alloc", size, type);
}

void *(rt_alloc)(size_t size, const rt_type *type) {
    return rt__alloc_slow(size, type);
}

void *rt_alloc_array(const rt_type *elem, size_t count) {
    size_t esize;
    if (elem == RT_NOSCAN) esize = 1;
    else if (!rt__type_valid(elem))
        rt__misuse("rt_alloc_array", "the element type %p is not an rt_type", (const void *)elem);
    else if (elem->kind == RT__KIND_LAYOUT) esize = elem->size;
    else if (elem->kind == RT__KIND_CONSERVATIVE) esize = sizeof(void *);
    else
        rt__misuse("rt_alloc_array", "traced type '%s' has no element size; use rt_alloc(bytes, type)", elem->name);
    size_t bytes;
    if (__builtin_mul_overflow(count, esize, &bytes) || bytes > ((size_t)1 << 46))
        rt__misuse("rt_alloc_array", "count %zu times element size %zu overflows; check the count before allocating",
                   count, esize);
    return alloc_checked("rt_alloc_array", bytes, elem);
}

size_t rt_usable_size(const void *obj) {
    rt_span *s;
    uintptr_t idx;
    uintptr_t base = rt__find_object((uintptr_t)obj, &s, &idx);
    if (!base || rt__span_is_free(s, idx))
        rt__misuse("rt_usable_size", "%p is not an object allocated by rt_alloc; pass a pointer rt_alloc returned", obj);
    return base + s->hot.elemsize - (uintptr_t)obj;
}

/* The type of the object at slot base objbase, and where its data begins. */
const rt_type *rt__object_type(rt_span *s, uintptr_t objbase, uintptr_t *datap) {
    *datap = objbase;
    if (rt__spanclass_noscan(s->hot.spanclass)) return RT_NOSCAN;
    if (rt__spanclass_size(s->hot.spanclass) == 0) return ld_acquire(&s->large_type);
    if (s->hot.header_bits) {
        uintptr_t idx = rt__span_obj_index(s, objbase);
        if (!(ld_relaxed(&s->hot.header_bits[idx / 8]) & (1u << (idx % 8)))) return NULL;   /* heap bits */
    }
    *datap = objbase + RT_HEADER_SIZE;
    return *(const rt_type **)objbase;
}
