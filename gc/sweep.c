/* gc/sweep.c -- sweeping: turning the mark bytes into the new allocation
 * bits, span by span, after each mark.
 *
 * The algorithm.  Mark termination adds 2 to rt__heap.sweepgen (h), which
 * makes every span in the mcentral sets "unswept" (sweepgen h-2) at once.
 * Three kinds of sweeper then race for spans, each taking ownership with a
 * CAS of sweepgen from h-2 to h-1: an mcentral looking for a span of its
 * class (lazy sweep, runtime/mcentral.c), the background sweeper thread,
 * and a thread about to start the next cycle or returning from rt_gc
 * (rt__sweep_finish).  Sweeping one span:
 *   - a slot that was allocated and is unmarked is freed (with
 *     clobberfree=1 its memory is filled with 0xdeadbeef);
 *   - a marked slot that was free is a "zombie": a pointer to a freed
 *     object survived somewhere, and the run stops with a report;
 *   - allocBits := the mark bytes packed into bits (Go swaps its
 *     gcmarkBits in; ours are a byte per slot, runtime/internal.h
 *     rt__span_set_mark), and the mark bytes are cleared for the next
 *     cycle;
 *   - freeindex := the first free slot, the allocation cache is reloaded,
 *     needzero is set if anything was freed, and the span is published
 *     swept (sweepgen h);
 *   - unless the caller keeps it (preserve), an empty span returns its
 *     pages to the heap (or stays in its class, keep_empty_span), a full
 *     one goes to the swept-full set, others to swept-partial.  Dead large
 *     objects return their pages.
 * Sweeping never runs during a mark, so freeing a span cannot race with a
 * marker that validates pointers into it. */
#include "gc.h"

#include <sched.h>
#include <string.h>

static struct {
    unsigned        cursor;        /* next span class to look at, per cycle */
    uint64_t        pages_swept;   /* this cycle */
    uint64_t        pages_target_base;  /* heap_live when pacing was set */
    double          pages_per_byte;     /* proportional sweep rate, 0 = none */
    int             active;        /* sweepers inside rt__sweep_one */
    pthread_t       thread;
    pthread_mutex_t lock;
    pthread_cond_t  cond;
    bool            running, quit, wake;
} S = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void clobber(uintptr_t p, size_t n) {
    for (size_t i = 0; i + 4 <= n; i += 4) *(uint32_t *)(p + i) = 0xdeadbeefu;
}

/* An empty span stays in its class's swept-partial set, instead of going
   back to the page heap, while the class has budget: as many spans as it
   handed to mcaches last cycle, which it will want about as many of again
   before the next mark.  Keeping one skips freeing its pages and bitmaps
   under the heap lock now and allocating and initializing them again soon
   (binary-trees 21: 2.5% of the wall time; docs/design.md).  Pages kept
   are ones the heap would grow back into within the cycle; a class whose
   demand stops returns them at the next sweep.  rt_gc() cycles keep none
   (rt__sweep_begin_cycle). */
static bool keep_empty_span(rt_mcentral *c) {
    return ld_relaxed(&c->keep_empty) > 0 && __atomic_sub_fetch(&c->keep_empty, 1, __ATOMIC_RELAXED) >= 0;
}

/* After sweeping: an empty span goes back to the page heap unless its
   class keeps it; true if it stays, to be pushed to a swept set. */
static bool stays_in_class(rt_mcentral *c, rt_span *s) {
    if (s->hot.alloc_count != 0 || keep_empty_span(c)) return true;
    rt__heap_free_span(s);
    return false;
}

/* Take a span popped from an unswept set for sweeping (sweepgen h-2 ->
   h-1).  A stale entry left by rt__span_ensure_swept fails the test. */
static bool take_for_sweep(rt_span *s, uint32_t h) {
    uint32_t want = h - 2;
    return ld_acquire(&s->sweepgen) == want && cas_acq_rel(&s->sweepgen, &want, h - 1);
}

void rt__sweep_span(rt_span *s, bool preserve) {
    uint32_t h = ld_relaxed(&rt__heap.sweepgen);
    add_relaxed(&S.pages_swept, (uint64_t)s->npages);
    RT_ASSERT(ld_relaxed(&s->sweepgen) == h - 1);   /* atomic: a stale set entry may be CASed (ensure_swept) */
    RT_ASSERT(s->state == RT_SPAN_INUSE);
    unsigned cls = rt__spanclass_size(s->hot.spanclass);
    rt_mcentral *c = &rt__heap.central[s->hot.spanclass];
    /* Weak handles, cleanups, finalizers of unmarked objects (gc/specials.c);
       first, since a finalizer marks its object again. */
    if (ld_relaxed(&s->specials)) rt__specials_sweep(s);

    if (cls == 0) {
        if (rt__span_is_marked(s, 0)) {
            s->mark_bytes[0] = 0;
            st_release(&s->sweepgen, h);
            if (!preserve) rt__mcentral_push_swept(c, s);
            return;
        }
        add_relaxed(&rt__heap.total_free_objs, 1);
        add_relaxed(&rt__heap.total_free_bytes, (uint64_t)s->hot.elemsize);
        if (rt__cfg.clobberfree) clobber(s->hot.base, s->hot.elemsize);
        rt__heap_free_span(s);
        return;
    }

    uint64_t *alloc = (uint64_t *)s->alloc_bits;
    unsigned fi = s->hot.freeindex, n = s->hot.nelems;
    size_t nalloc = 0;
    unsigned first_free = n;
    for (unsigned wd = 0; wd < s->bitmap_words; wd++) {
        /* Allocated: below freeindex, or allocBit set. */
        uint64_t below = 0;
        unsigned lo = wd * 64;
        if (fi >= lo + 64) below = ~(uint64_t)0;
        else if (fi > lo) below = ((uint64_t)1 << (fi - lo)) - 1;
        uint64_t valid = n >= lo + 64 ? ~(uint64_t)0 : (((uint64_t)1 << (n - lo)) - 1);
        uint64_t allocated = (alloc[wd] | below) & valid;
        uint64_t mark = rt__span_mark_word(s, wd);
        uint64_t zombies = mark & ~allocated;
        if (RT_UNLIKELY(zombies)) {
            unsigned k = lo + (unsigned)__builtin_ctzll(zombies);
            rt__fatal("sweep: marked free object %#lx in span %#lx (class %u): a pointer to a freed object "
                      "was found by the marker", (unsigned long)(s->hot.base + (uintptr_t)k * s->hot.elemsize),
                      (unsigned long)s->hot.base, cls);
        }
        uint64_t freed = allocated & ~mark;
        if (freed && rt__cfg.clobberfree) {
            for (uint64_t f = freed; f; f &= f - 1) {
                unsigned k = lo + (unsigned)__builtin_ctzll(f);
                clobber(s->hot.base + (uintptr_t)k * s->hot.elemsize, s->hot.elemsize);
            }
        }
        nalloc += (size_t)__builtin_popcountll(mark);
        uint64_t unmarked = ~mark & valid;
        if (first_free == n && unmarked) first_free = lo + (unsigned)__builtin_ctzll(unmarked);
        if (s->hot.header_bits) ((uint64_t *)s->hot.header_bits)[wd] &= mark;
        alloc[wd] = mark;   /* the survivors are the allocated slots from here on */
    }
    memset(s->mark_bytes, 0, (size_t)n);
    size_t nfreed = s->hot.alloc_count - nalloc;
    s->hot.alloc_count = (uint16_t)nalloc;
    /* Starting at the first free slot lets the marker trust every slot
       of a full span from freeindex_for_scan alone, without reading the
       allocation bits. */
    s->hot.freeindex = (uint16_t)first_free;
    s->freeindex_for_scan = (uint16_t)first_free;
    rt__span_prime_cache(s);
    if (nfreed) {
        s->hot.needzero = 1;
        add_relaxed(&rt__heap.total_free_objs, (uint64_t)nfreed);
        add_relaxed(&rt__heap.total_free_bytes, (uint64_t)nfreed * s->hot.elemsize);
    }
    st_release(&s->sweepgen, h);
    if (!preserve && stays_in_class(c, s)) rt__mcentral_push_swept(c, s);
}

bool rt__sweep_one(void) {
    __atomic_add_fetch(&S.active, 1, __ATOMIC_ACQ_REL);
    bool did = false;
    uint32_t h = ld_relaxed(&rt__heap.sweepgen);
    for (;;) {
        unsigned i = ld_relaxed(&S.cursor);
        if (i >= RT__NUM_SPAN_CLASSES) break;
        rt_span *s = rt__mcentral_pop_unswept(&rt__heap.central[i]);
        if (!s) {
            unsigned want = i;
            cas_acq_rel(&S.cursor, &want, i + 1);
            continue;
        }
        if (take_for_sweep(s, h)) {
            rt__sweep_span(s, false);
            did = true;
            break;
        }
    }
    __atomic_sub_fetch(&S.active, 1, __ATOMIC_ACQ_REL);
    return did;
}

/* Go's ensureSwept: sweep s now if this cycle has not (it then also sits,
   stale, in its unswept set, which the next popper drops: its CAS fails),
   or wait for the sweeper that owns it.  Counted as an active sweeper so
   rt__sweep_finish and the next sweepgen flip wait for it. */
void rt__span_ensure_swept(rt_span *s) {
    uint32_t h = ld_acquire(&rt__heap.sweepgen), sg = ld_acquire(&s->sweepgen);
    if (RT_LIKELY(sg == h || sg == h + 3)) return;
    __atomic_add_fetch(&S.active, 1, __ATOMIC_ACQ_REL);
    h = ld_acquire(&rt__heap.sweepgen);
    uint32_t want = h - 2;
    if (ld_acquire(&s->state) == RT_SPAN_INUSE && ld_acquire(&s->sweepgen) == want &&
        cas_acq_rel(&s->sweepgen, &want, h - 1))
        rt__sweep_span(s, false);
    __atomic_sub_fetch(&S.active, 1, __ATOMIC_ACQ_REL);
    /* Freed by its sweeper (dead), or reused (no longer h-1): done too. */
    while (ld_acquire(&s->sweepgen) == h - 1 && ld_acquire(&s->state) == RT_SPAN_INUSE) sched_yield();
}

void rt__sweep_begin_cycle(bool keep_empty_spans) {
    /* A sweeper that entered rt__sweep_one before the sweepgen flip holds
       the old h; if it saw the reset cursor it would pop a span of the new
       unswept set, fail the CAS on h-2 and drop the span from every set.
       Such a sweeper finds the old cursor exhausted and leaves at once:
       wait for it before resetting. */
    while (__atomic_load_n(&S.active, __ATOMIC_SEQ_CST) > 0) sched_yield();
    S.pages_swept = 0;
    S.pages_per_byte = 0;
    for (unsigned i = 0; i < RT__NUM_SPAN_CLASSES; i++) {
        rt_mcentral *c = &rt__heap.central[i];
        c->keep_empty = keep_empty_spans ? (int32_t)ld_relaxed(&c->spans_cached) : 0;
        st_relaxed(&c->spans_cached, 0);
    }
    __atomic_store_n(&S.cursor, 0, __ATOMIC_SEQ_CST);
}

/* Go's proportional sweep: sweep every in-use page before heap_live grows
   by heap_distance, so the next cycle never waits for sweeping. */
void rt__sweep_pace(uint64_t heap_distance) {
    uint64_t d = heap_distance > ((uint64_t)1 << 20) ? heap_distance - ((uint64_t)1 << 20) : 0;
    if (d < RT_PAGE_SIZE) d = RT_PAGE_SIZE;
    S.pages_per_byte = (double)ld_relaxed(&rt__heap.pages_inuse_spans) / (double)d;
    S.pages_target_base = ld_relaxed(&rt__heap.heap_live);
}

void rt__sweep_credit(uint64_t bytes) {
    (void)bytes;
    double ppb = S.pages_per_byte;
    if (ppb <= 0 || ld_relaxed(&S.cursor) >= RT__NUM_SPAN_CLASSES) return;
    uint64_t live = ld_relaxed(&rt__heap.heap_live), base = S.pages_target_base;
    uint64_t target = live > base ? (uint64_t)((double)(live - base) * ppb) : 0;
    while (ld_relaxed(&S.pages_swept) < target)
        if (!rt__sweep_one()) break;
}

void rt__sweep_finish(void) {
    while (rt__sweep_one()) {}
    while (ld_acquire(&S.active) > 0) sched_yield();
}

/* The background sweeper's unit: a batch of unswept spans of one class,
   taken and put back under one acquisition of the class lock each, where
   rt__sweep_one takes it twice per span.  The allocating thread takes the
   same lock per span it caches; per span from both sides, the lock's line
   went back and forth between the CPUs.  Large-object classes keep the
   span-at-a-time path: a dead one is freed by rt__sweep_span itself.
   Returns the spans swept (0: nothing left). */
#define SWEEP_BATCH 16

static unsigned sweep_batch(void) {
    __atomic_add_fetch(&S.active, 1, __ATOMIC_ACQ_REL);
    unsigned swept = 0;
    uint32_t h = ld_relaxed(&rt__heap.sweepgen);
    for (;;) {
        unsigned i = ld_relaxed(&S.cursor);
        if (i >= RT__NUM_SPAN_CLASSES) break;
        if (rt__spanclass_size(i) == 0) {
            __atomic_sub_fetch(&S.active, 1, __ATOMIC_ACQ_REL);
            return rt__sweep_one() ? 1 : 0;
        }
        rt_mcentral *c = &rt__heap.central[i];
        rt_span *batch[SWEEP_BATCH];
        size_t n = rt__mcentral_pop_unswept_n(c, batch, SWEEP_BATCH), kept = 0;
        if (n == 0) {
            unsigned want = i;
            cas_acq_rel(&S.cursor, &want, i + 1);
            continue;
        }
        for (size_t k = 0; k < n; k++) {
            rt_span *s = batch[k];
            if (!take_for_sweep(s, h)) continue;
            rt__sweep_span(s, true);
            swept++;
            if (stays_in_class(c, s)) batch[kept++] = s;
        }
        rt__mcentral_push_swept_n(c, batch, kept);
        if (swept) break;
    }
    __atomic_sub_fetch(&S.active, 1, __ATOMIC_ACQ_REL);
    return swept;
}

static void *sweeper_main(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "rtgc-sweeper");
    pthread_mutex_lock(&S.lock);
    for (;;) {
        while (!S.wake && !S.quit) pthread_cond_wait(&S.cond, &S.lock);
        if (S.quit) break;
        S.wake = false;
        pthread_mutex_unlock(&S.lock);
        unsigned n = 0, k;
        while ((k = sweep_batch()) != 0) {
            n += k;
            /* Leave the CPU to mutators now and then, but only if they
               could use it (Go's goschedIfBusy): with a CPU to spare the
               yield is a system call that gives nothing back (2500 of
               them in a queue.lox run, 1.2 us each on the 2-vCPU VM). */
            if (n >= 16) {
                n = 0;
                if (rt__ps_on_cpu() >= rt__ncpu()) sched_yield();
            }
        }
        pthread_mutex_lock(&S.lock);
    }
    pthread_mutex_unlock(&S.lock);
    return NULL;
}

/* The thread itself starts at the first wake: small cycles never wake
   it. */
void rt__sweeper_start(void) {
    S.quit = false;
    S.wake = false;
    S.cursor = RT__NUM_SPAN_CLASSES;
}

void rt__sweeper_stop(void) {
    pthread_mutex_lock(&S.lock);
    bool running = S.running;
    S.quit = true;
    pthread_cond_broadcast(&S.cond);
    pthread_mutex_unlock(&S.lock);
    if (running) pthread_join(S.thread, NULL);
    S.running = false;
}

void rt__sweeper_wake(void) {
    pthread_mutex_lock(&S.lock);
    if (!S.running) {
        if (pthread_create(&S.thread, NULL, sweeper_main, NULL) != 0) rt__fatal("cannot create the sweeper thread");
        S.running = true;
    }
    S.wake = true;
    pthread_cond_signal(&S.cond);
    pthread_mutex_unlock(&S.lock);
}
