/* runtime/mcentral.c -- the central span lists, one per span class.
 *
 * Owns: rt_mcentral's four span sets and the order in which a span is found
 * for an mcache (Go's cacheSpan): a swept span with free slots; else sweep
 * unswept spans of this class on the way (at most 100); else a new span
 * from the page heap.
 *
 * Sets are indexed by sweep parity: with h = rt__heap.sweepgen, set
 * [(h/2)%2] holds swept spans and the other set unswept ones, so adding 2
 * to h at mark termination turns every swept span into an unswept one with
 * no copying.  A span is in at most one set, or cached in one mcache, or
 * owned by one sweeper (sweepgen h-1, acquired by CAS).  Sets are small
 * arrays under the mcentral's lock (Go uses lock-free span sets; a lock per
 * class is simpler to verify).  The lock is contended: the allocating
 * thread takes it per span, the background sweeper once per batch
 * (rt__mcentral_pop_unswept_n).  When both took it per span under a plain
 * mutex, locking, unlocking and the futex calls of the waits were ~15% of
 * gcbench's allocating thread (perf).  It spins before it sleeps
 * (rt__os_mutex_init_spinning): gcbench 229 -> 209 ms, medians of 9
 * beside Boehm's 263. */
#include "internal.h"

#include <string.h>

#define SPAN_BUDGET 100

/* Room for `want` entries: the inline array first, then 512 entries (a
   page) from the OS, doubling.  A class of a small heap never leaves the
   inline array: a page per set was 80 KB of RSS for a 256 KiB heap, and
   the first touch of each, a page fault, took 0.5 ms of the first
   collection's pause.  False if the OS refused. */
static void set_free_array(rt_spanset *ss) {
    if (ss->v && ss->v != ss->inline_v) rt__os_free(ss->v, ss->cap * sizeof(rt_span *));
}

static bool set_reserve(rt_spanset *ss, size_t want) {
    if (!ss->v) {
        ss->v = ss->inline_v;
        ss->cap = RT_SPANSET_INLINE;
    }
    if (ss->cap >= want) return true;
    size_t cap = ss->cap > RT_SPANSET_INLINE ? ss->cap : 512;
    while (cap < want) cap *= 2;
    rt_span **v = rt__os_alloc(cap * sizeof(rt_span *));
    if (!v) return false;
    memcpy(v, ss->v, ss->n * sizeof(rt_span *));
    set_free_array(ss);
    ss->v = v;
    ss->cap = cap;
    return true;
}

void rt__spanset_free(rt_spanset *ss) {
    set_free_array(ss);
    memset(ss, 0, sizeof *ss);
}

static void set_push(rt_spanset *ss, rt_span *s) {
    if (ss->n == ss->cap && !set_reserve(ss, ss->n + 1))
        rt__fatal("out of memory growing a span set past %zu entries", ss->n);
    ss->v[ss->n++] = s;
    if (ss->n > ss->hi) ss->hi = ss->n;
}

static rt_span *set_pop(rt_spanset *ss) {
    return ss->n ? ss->v[--ss->n] : NULL;
}

static inline unsigned swept_index(uint32_t h) { return (h / 2) % 2; }

/* The background sweeper's share: up to max unswept spans under one lock,
   but no more than an eighth of those left (at least one), so that an
   allocating thread of this class still finds unswept spans to sweep
   itself rather than taking new pages while the sweeper holds them. */
size_t rt__mcentral_pop_unswept_n(rt_mcentral *c, rt_span **out, size_t max) {
    uint32_t h = ld_relaxed(&rt__heap.sweepgen);
    unsigned u = 1 - swept_index(h);
    pthread_mutex_lock(&c->lock);
    size_t left = c->partial[u].n + c->full[u].n, n = left / 8;
    if (n < 1) n = 1;
    if (n > max) n = max;
    size_t got = 0;
    while (got < n) {
        rt_span *s = set_pop(&c->partial[u]);
        if (!s) s = set_pop(&c->full[u]);
        if (!s) break;
        out[got++] = s;
    }
    pthread_mutex_unlock(&c->lock);
    return got;
}

rt_span *rt__mcentral_pop_unswept(rt_mcentral *c) {
    rt_span *s = NULL;
    rt__mcentral_pop_unswept_n(c, &s, 1);
    return s;
}

/* Swept spans go to the swept full or partial set by their allocation count. */
void rt__mcentral_push_swept_n(rt_mcentral *c, rt_span *const *spans, size_t n) {
    uint32_t h = ld_relaxed(&rt__heap.sweepgen);
    pthread_mutex_lock(&c->lock);
    for (size_t k = 0; k < n; k++) {
        rt_span *s = spans[k];
        set_push(s->hot.alloc_count == s->hot.nelems ? &c->full[swept_index(h)] : &c->partial[swept_index(h)], s);
    }
    pthread_mutex_unlock(&c->lock);
}

void rt__mcentral_push_swept(rt_mcentral *c, rt_span *s) { rt__mcentral_push_swept_n(c, &s, 1); }

static rt_span *pop_locked(rt_mcentral *c, rt_spanset *ss) {
    pthread_mutex_lock(&c->lock);
    rt_span *s = set_pop(ss);
    pthread_mutex_unlock(&c->lock);
    return s;
}

rt_span *rt__mcentral_cache_span(rt_mcentral *c) {
    rt__sweep_credit(rt__class_to_npages[rt__spanclass_size(c->spanclass)] * RT_PAGE_SIZE);
    uint32_t h = ld_relaxed(&rt__heap.sweepgen);
    unsigned sw = swept_index(h), un = 1 - sw;
    rt_span *s = pop_locked(c, &c->partial[sw]);
    int budget = SPAN_BUDGET;
    while (!s && budget-- > 0) {
        rt_span *t = pop_locked(c, &c->partial[un]);
        if (!t) break;
        uint32_t want = h - 2;
        if (cas_acq_rel(&t->sweepgen, &want, h - 1)) {
            rt__sweep_span(t, true);
            s = t;
        }
    }
    while (!s && budget-- > 0) {
        rt_span *t = pop_locked(c, &c->full[un]);
        if (!t) break;
        uint32_t want = h - 2;
        if (!cas_acq_rel(&t->sweepgen, &want, h - 1)) continue;
        rt__sweep_span(t, true);
        if (t->hot.alloc_count < t->hot.nelems) s = t;
        else rt__mcentral_push_swept(c, t);
    }
    if (!s) {
        unsigned cls = rt__spanclass_size(c->spanclass);
        s = rt__heap_alloc_span(rt__class_to_npages[cls], c->spanclass, NULL);
        if (!s) return NULL;
    }
    /* No priming: its sweep primed the cache, or the P that handed it
       back left it primed (rt__span_check).  Reading the allocation bits
       here, which the background sweeper had just written from the other
       CPU, was 1.4% of binary_trees.lox's VM thread. */
    add_relaxed(&c->spans_cached, 1);
    RT_CHECK(rt__span_check(s));
    return s;
}

void rt__mcentral_uncache_span(rt_mcentral *c, rt_span *s) {
    uint32_t h = ld_relaxed(&rt__heap.sweepgen);
    RT_ASSERT(s->sweepgen == h + 1 || s->sweepgen == h + 3);
    if (s->sweepgen == h + 1) {
        /* Cached before this sweep phase began: sweep it now. */
        st_release(&s->sweepgen, h - 1);
        rt__sweep_span(s, false);
        return;
    }
    st_release(&s->sweepgen, h);
    rt__mcentral_push_swept(c, s);
}

void rt__mcentral_check(rt_mcentral *c) {
    uint32_t h = ld_relaxed(&rt__heap.sweepgen);
    unsigned sw = swept_index(h);
    pthread_mutex_lock(&c->lock);
    for (unsigned k = 0; k < 2; k++) {
        rt_spanset *sets[2] = { &c->partial[k], &c->full[k] };
        for (int j = 0; j < 2; j++) {
            for (size_t i = 0; i < sets[j]->n; i++) {
                rt_span *s = sets[j]->v[i];
                if (s->hot.spanclass != c->spanclass)
                    rt__fatal("mcentral check: span of class %u in the list of class %u", s->hot.spanclass, c->spanclass);
                if (k == sw && s->sweepgen != h)
                    rt__fatal("mcentral check: span in the swept set has sweepgen %u, heap %u", s->sweepgen, h);
                if (k == sw && j == 0 && s->hot.alloc_count == s->hot.nelems)
                    rt__fatal("mcentral check: full span in the partial set");
                rt__span_check(s);
            }
        }
    }
    pthread_mutex_unlock(&c->lock);
}

/* Make room for n spans in each of the four sets, so that pushing a span
   never needs memory: mheap calls this before it creates a span of this
   class, with n = the spans of the class that exist or are being made (a
   span sits in at most one set).  0, or -1 if the OS refused memory, which
   then becomes an ordinary out-of-memory failure of the allocation. */
int rt__mcentral_reserve(rt_mcentral *c, size_t n) {
    rt_spanset *sets[4] = { &c->partial[0], &c->partial[1], &c->full[0], &c->full[1] };
    int rc = 0;
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < 4 && rc == 0; i++)
        if (!set_reserve(sets[i], n)) rc = -1;
    pthread_mutex_unlock(&c->lock);
    return rc;
}

/* A class that shrank (a dead spike) keeps arrays sized for its peak; the
   pages past the entries go back to the OS and fault in again as zero if
   it grows.  They stay counted in the metadata figure, an upper bound. */
uint64_t rt__mcentral_trim(rt_mcentral *c) {
    rt_spanset *sets[4] = { &c->partial[0], &c->partial[1], &c->full[0], &c->full[1] };
    uintptr_t page = rt__os_pagesize();
    uint64_t done = 0;
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < 4; i++) {
        rt_spanset *ss = sets[i];
        if (ss->v == ss->inline_v) continue;
        uintptr_t from = ((uintptr_t)(ss->v + ss->n) + page - 1) & ~(page - 1);
        uintptr_t to = ((uintptr_t)(ss->v + ss->hi) + page - 1) & ~(page - 1);
        if (to > from && rt__os_release((void *)from, to - from) >= 0) done += to - from;
        ss->hi = ss->n;
    }
    pthread_mutex_unlock(&c->lock);
    return done;
}
