/* gc/barrier.c -- the write barrier's out-of-line half.
 *
 * While a mark runs (RT__FLAG_WB set at mark start with the world stopped,
 * cleared at mark termination), every pointer store into the heap records
 * the value being overwritten in the storing P's buffer before the store,
 * so deleting an edge cannot hide a white object.  That is the deletion
 * half of Go's hybrid barrier.  Its other half shades the value being
 * written, and Go needs it only for a store from a goroutine whose stack
 * is still grey (not yet scanned); here every root and stack is read in
 * the mark-start pause, so none is grey while the barrier is on, and the
 * half is left out (gc/mark.c states the invariant and why this suffices).
 * A full buffer is flushed: each recorded value is validated like an
 * ambiguous pointer (tagged values, non-heap addresses and NULL are
 * dropped) and shaded into the P's own work buffers, which go to the
 * global list when full, at a ragged flush, or at mark termination.
 * The inline half (include/rtgc/inline.h) costs one load and a predictable
 * branch while no mark runs. */
#include "gc.h"

#include <string.h>

void rt__wbuf_flush(rt_p *p) {
    rt__shade_all(&p->gcw, p->wbuf, p->wbuf_n);   /* record dropped the small values */
    p->wbuf_n = 0;
    rt__gcwork_balance(&p->gcw);   /* idle markers need not wait for this P to fill a buffer */
}

static rt_p *barrier_p(const char *call) {
    rt_mcache *c = (rt_mcache *)rt__tls_mcache;
    if (RT_UNLIKELY(!c))
        rt__misuse(call, "a pointer store into the heap while a collection marks, from a thread without a P "
                   "(not attached, or inside rt_enter_blocking); attach the thread or leave the blocking region first");
    return (rt_p *)c;
}

/* Words that cannot be heap addresses are dropped here rather than at the
   flush, for the price of the one compare that NULL needed: most stores
   initialize fresh objects, whose old value is NULL, and an embedder's
   tagged values (small integers, or a VM's boxed numbers at 2^48 and
   above) would only fill the buffer and miss the arena index at the flush. */
static inline bool maybe_heap_word(uintptr_t w) {
    return w - 4096 < ((uintptr_t)1 << RT_HEAP_ADDR_BITS) - 4096;
}

static inline void record(rt_p *p, uintptr_t old) {
    if (!maybe_heap_word(old)) return;
    if (RT_UNLIKELY(p->wbuf_n + 1 > RT_WBUF_ENTRIES)) rt__wbuf_flush(p);
    p->wbuf[p->wbuf_n++] = old;
}

void rt__store_slow(void *slot, void *value) {
    if (ld_relaxed(&rt__flags.word) & RT__FLAG_WB) {
        rt_p *p = barrier_p("rt_store");
        record(p, ld_relaxed((uintptr_t *)slot));
        if (RT_UNLIKELY(ld_relaxed(&p->flush_epoch) != ld_acquire(&rt__flush_epoch))) rt__gc_answer_flush(p);
    }
    st_release((void **)slot, value);
}

void (rt_store)(void *slot, void *value) {
    rt__store_inline(slot, value);
}

void rt_memmove_ptrs(void *dst, const void *src, size_t bytes) {
    if (((uintptr_t)dst | (uintptr_t)src | bytes) % sizeof(void *))
        rt__misuse("rt_memmove_ptrs", "dst %p, src %p and %zu bytes must all be pointer-aligned; "
                   "use memmove for memory without pointers", dst, src, bytes);
    if (ld_relaxed(&rt__flags.word) & RT__FLAG_WB) {
        rt_p *p = barrier_p("rt_memmove_ptrs");
        const uintptr_t *d = dst, *s = src;
        for (size_t i = 0; i < bytes / sizeof(void *); i++) record(p, ld_relaxed(&d[i]));
        /* Word by word so a concurrent marker never sees a torn pointer. */
        uintptr_t *dw = dst;
        if (dw < s || dw >= s + bytes / sizeof(void *))
            for (size_t i = 0; i < bytes / sizeof(void *); i++) st_relaxed(&dw[i], ld_relaxed(&s[i]));
        else
            for (size_t i = bytes / sizeof(void *); i-- > 0;) st_relaxed(&dw[i], ld_relaxed(&s[i]));
        return;
    }
    memmove(dst, src, bytes);
}
