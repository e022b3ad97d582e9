/* gc/mark.c -- tri-color marking: scanning objects and the mark workers.
 *
 * The algorithm.  Objects are white (mark byte clear), grey (mark byte set
 * and queued in some work buffer), or black (mark byte set and scanned).
 * A cycle shades every root at mark start with the world stopped
 * (registered roots and each attached thread's stack and registers,
 * gc/roots.c), then workers repeatedly take a grey object, scan its pointer
 * slots and shade what they point to (rt__shade: the worker that finds the
 * mark byte clear and sets it queues the object; with a plain store, two
 * workers racing for one object may both queue it, which costs a second
 * scan and nothing else, as in Boehm's parallel marker).  Grey objects
 * are taken in batches of sixteen that give their prefetch time to land
 * (pf_queue, below); a batch holds grey work privately, so it is empty
 * whenever its owner could be counted as idle.  Pointer-free objects turn
 * black at once.  Each worker keeps a hint, the span it touched last
 * (rt_gcwork): sound because during a mark no span is freed or reused;
 * and a small table of pointers it found already marked, which it skips
 * (sound because no allocated object loses its mark during a mark; both
 * are forgotten when the worker's drain ends).
 * Objects larger than 128 KiB are queued as 128 KiB oblets so one huge
 * array spreads over all workers.
 *
 * The tri-color invariant, weak form (snapshot at the beginning): every
 * white object reachable at mark start stays reachable from a grey object
 * through white objects, or gets shaded.  It holds because
 *   - roots and stacks are scanned at the snapshot (mark start, world
 *     stopped), and never rescanned;
 *   - objects allocated during the mark are black (runtime/malloc.c; small
 *     ones through their span's premarked free slots, runtime/span.c);
 *   - every pointer store into the heap during the mark goes through
 *     rt_store, whose barrier shades the overwritten value: deleting an
 *     edge cannot hide a white object.  The value written needs no shading
 *     (Go's hybrid barrier shades it only from a goroutine whose stack is
 *     still grey, and no root or stack here is grey once the barrier is
 *     on): it came from a root or stack read at the snapshot, from a heap
 *     slot, or from an allocation.  In the first two cases it was reachable
 *     at mark start, or is new, and every edge of its mark-start path is
 *     either still there for a marker to follow or was deleted through the
 *     barrier, which shaded its target; in the last it is black.
 *     (rt_weak_get and the finalizer queue, the ways back to an object
 *     unreachable at mark start, shade what they hand out: gc/specials.c.)
 *   - the mark ends with the world stopped, after every P's barrier buffer
 *     and work buffers are flushed and drained (gc/gc.c), so no grey object
 *     remains.  Every object reachable at the end is then black; every white
 *     object is garbage.
 *
 * Workers run concurrently with mutators: slots are read with relaxed
 * atomic loads (a racing store either is seen, or its old value was shaded
 * by the barrier), and a candidate pointer is trusted only after the arena
 * index, the span's state and bounds, and the slot's allocation state agree
 * (any bit pattern is safe).  "Allocated" uses freeindex_for_scan, which the
 * allocator advances only once the new object is initialized and black.
 *
 * Where pointers are found in an object (runtime/malloc.c writes them):
 * heap bits (small layout objects), the type header (traced: the embedder's
 * trace function; layout: the mask tiled over the array; conservative:
 * every word), the span's large_type (large objects). */
#include "gc.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

rt_markstats rt__markstats;
static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;

void rt__markstats_add(const rt_gcwork *w) {
    add_relaxed(&rt__markstats.bytes_marked, w->bytes_marked);   /* atomics: allocate-black adds too */
    add_relaxed(&rt__markstats.objects, w->objects_marked);
    add_relaxed(&rt__markstats.scan_work, w->scan_work);
}

void rt__markers_reset_stats(void) {
    pthread_mutex_lock(&stats_lock);
    memset(&rt__markstats, 0, sizeof rt__markstats);
    pthread_mutex_unlock(&stats_lock);
}

static void report_invalid(uintptr_t p, rt_span *s, uintptr_t from_obj, uintptr_t from_slot) {
    const char *tname = "?";
    if (from_obj) {
        rt_span *fs = rt__span_of_heap(from_obj);
        uintptr_t base = fs ? rt__find_object(from_obj, NULL, NULL) : 0, data;
        const rt_type *t = base ? rt__object_type(fs, base, &data) : NULL;
        if (t) tname = t->name;
        else if (fs) tname = "layout (heap bits)";
    }
    if (from_obj)
        rt__fatal("invalid pointer found by the marker: object %#lx (type %s) slot +%lu holds %#lx, "
                  "which points into a free slot of span %#lx (class %u); a pointer was kept to freed memory "
                  "or stored without rt_store",
                  (unsigned long)from_obj, tname, (unsigned long)(from_slot - from_obj), (unsigned long)p,
                  (unsigned long)s->hot.base, rt__spanclass_size(s->hot.spanclass));
    rt__fatal("invalid pointer found by the marker: root slot %#lx holds %#lx, which points into a free slot "
              "of span %#lx; a root kept a pointer to freed memory",
              (unsigned long)from_slot, (unsigned long)p, (unsigned long)s->hot.base);
}

/* Free for the marker's purposes: not yet handed out, or handed out but not
   yet initialized (freeindex_for_scan lags until the object is black). */
static inline bool free_for_scan(const rt_span *s, uintptr_t idx) {
    if (idx < ld_acquire(&s->freeindex_for_scan)) return false;
    return !(ld_relaxed(&s->alloc_bits[idx / 8]) & (1u << (idx % 8)));
}

/* The marker reads each object once a cycle, and its prefetches say so:
   the non-temporal hint (locality 0) asks the CPU not to keep the lines
   in its outer caches.  Kept there, they cost the mutator dearly when it
   next writes them, as it does when it allocates in the slot of an object
   that has died since: the write must first take the line from the other
   CPU.  On the 2-vCPU VM a line takes about 450 ns to move between the
   CPUs (a two-thread ping-pong), and queue.lox, its collector threads
   pinned to the other CPU, spent 60% more time in the interpreter's
   table_set, which allocates and fills entry arrays.  With the hint,
   queue.lox ran 18-22% faster in four interleaved rounds of 7 against the
   build before it; binary_trees.lox and strings.lox did not move. */
#define MARK_PREFETCH(addr) __builtin_prefetch((const void *)(addr), 0, 0)

/* Work items are object (or oblet) addresses, 8-byte aligned.  Bit 0 set
   (ITEM_GENERIC): the object's type is in its header, or it is an oblet.
   Clear: the start of a small object typed by its span's heap bits, which
   shade has just checked, so scan_item needs neither the slot index nor
   the header bit. */
#define ITEM_GENERIC ((uintptr_t)1)

static inline bool heapbits_typed(const rt_span *s, uintptr_t idx) {
    return s->hot.header_bits != NULL && !(ld_relaxed(&s->hot.header_bits[idx / 8]) >> (idx % 8) & 1);
}

#ifdef RT_DEBUG
/* A pointer in the worker's seen_marked: its object must still be marked,
   or an entry outlived the mark it was made in. */
static bool still_marked(uintptr_t p) {
    rt_span *s = rt__span_of_heap(p);
    return s && rt__span_is_marked(s, rt__span_obj_index(s, p));
}
#endif

static inline void set_hint(rt_gcwork *w, rt_span *s) {
    w->hint = s;
    w->hint_base = s->hot.base;
    w->hint_bytes = s->limit - s->hot.base;
}

static inline uintptr_t *seen_slot(rt_gcwork *w, uintptr_t p) {
    return &w->seen_marked[(p >> 4 ^ p >> 12) & (RT_SEEN_MARKED - 1)];
}

/* p is in its seen_marked entry (debug builds check it is still marked). */
static inline bool seen_hit(const uintptr_t *seen, uintptr_t p) {
    if (*seen != p) return false;
    RT_ASSERT(p == 0 || still_marked(p));   /* an empty entry matches a null pointer */
    return true;
}

static inline __attribute__((always_inline)) void shade(rt_gcwork *w, uintptr_t p, bool precise,
                                                      uintptr_t from_obj, uintptr_t from_slot) {
    rt_span *s;
    uintptr_t *seen = NULL;
    if (p - w->hint_base < w->hint_bytes) {
        s = w->hint;
        RT_ASSERT(s == rt__span_of_heap(p));
    } else {
        /* A VM's objects point again and again to a few that are marked
           early: their class, the interned names of their fields.  The
           hint follows the new objects, so each such visit cost the span
           look-up and the mark-byte test.  A pointer found already marked
           is remembered (below) and skipped from then on: 13% of queue.lox's
           mark CPU, 7% of binary_trees.lox's (medians of 7 and 5), and 11%
           off a world-stopped collection of a Lox tree or queue. */
        seen = seen_slot(w, p);
        if (seen_hit(seen, p)) return;
        /* rt__span_of_heap, with its upper bound left to the tighter limit. */
        s = rt__span_of(p);
        if (!s || ld_acquire(&s->state) != RT_SPAN_INUSE || p < s->hot.base || p >= s->limit) return;
        set_hint(w, s);
    }
    uintptr_t idx = rt__span_obj_index(s, p);
    if (RT_UNLIKELY(free_for_scan(s, idx))) {
        /* A marked "free" slot is in a span some P allocates black from
           (premarked): its fast path does not publish new objects. */
        if (precise && rt__cfg.invalidptr && !rt__span_is_marked(s, idx)) report_invalid(p, s, from_obj, from_slot);
        return;
    }
    if (!rt__span_set_mark(s, idx)) {
        if (seen) *seen = p;
        return;
    }
    w->objects_marked++;
    w->bytes_marked += s->hot.elemsize;
    if (rt__spanclass_noscan(s->hot.spanclass)) return;   /* black at once */
    uintptr_t obj = s->hot.base + idx * s->hot.elemsize;
    /* Scanned later: hide the misses, as Go does, for the lines of the
       object's first 192 bytes.  A Lox table's entry array (144 bytes,
       always three lines) missed on each line not prefetched: the second line
       made binary_trees.lox 5% faster (medians of 8), the third 3.5%
       (medians of 11); a world-stopped collection of a 262,000-node Lox
       tree took 18.7 ms instead of 20.6 (medians of 5).  Non-temporal:
       MARK_PREFETCH says why. */
    MARK_PREFETCH(obj);
    if (s->hot.elemsize > 64) MARK_PREFETCH(obj + 64);
    if (s->hot.elemsize > 128) MARK_PREFETCH(obj + 128);
    rt__gcwork_put(w, obj | !heapbits_typed(s, idx));
}

void rt__shade(rt_gcwork *w, uintptr_t p, bool precise, uintptr_t from_obj, uintptr_t from_slot) {
    shade(w, p, precise, from_obj, from_slot);
}

void rt__shade_all(rt_gcwork *w, const uintptr_t *vals, unsigned n) {   /* a barrier buffer */
    for (unsigned i = 0; i < n; i++) shade(w, vals[i], false, 0, 0);
}

/* One candidate found in a slot: shade it, or hand it to checkmark. */
static inline void found(rt_visitor *v, uintptr_t val, bool precise, uintptr_t slot) {
    if (val < 4096) return;
    if (RT_UNLIKELY(v->edge != NULL)) { v->edge(v, val, precise); return; }
    shade(v->w, val, precise, v->obj, slot);   /* inline: the marker's inner loop */
}

/* Stacks are read word by word, redzones included: the sanitizer would
   report the reads of its own poisoned bytes, which are harmless here. */
__attribute__((no_sanitize("address", "thread")))   /* also: blocking threads' stacks change as we read */
static void scan_words(rt_visitor *v, uintptr_t lo, uintptr_t hi, bool precise) {
    lo = (lo + 7) & ~(uintptr_t)7;
    /* A plain volatile load, not an atomic: the sanitizer exemption above
       only covers plain accesses.  Aligned 8-byte loads are never torn. */
    for (uintptr_t a = lo; a + 8 <= hi; a += 8) found(v, *(const volatile uintptr_t *)a, precise, a);
    if (v->w) v->w->scan_work += hi > lo ? hi - lo : 0;
}

void rt__visit_range(rt_visitor *v, uintptr_t lo, uintptr_t hi, bool precise) { scan_words(v, lo, hi, precise); }

void rt__scan_range(rt_gcwork *w, uintptr_t lo, uintptr_t hi, bool precise, uintptr_t from_obj) {
    rt_visitor v = { .w = w, .obj = from_obj };
    scan_words(&v, lo, hi, precise);
}

static __attribute__((noinline)) void visit_slow(rt_visitor *v, uintptr_t p) { found(v, p, true, v->obj); }

void rt_visit(rt_visitor *v, void *ptr) {
    uintptr_t p = (uintptr_t)ptr;
    rt_gcwork *w = v->w;
    /* Most visits from a VM's trace function find an object shade has
       already seen marked (a class, the interned names its tables are
       keyed by): answered here as shade would, with no stack frame to
       build and tear down (visit_slow is a tail call).  3% fewer marker
       instructions per byte scanned on queue.lox, 2% on binary_trees.lox
       (measured as below, at scan_item). */
    if (RT_LIKELY(v->edge == NULL) && p - w->hint_base >= w->hint_bytes && seen_hit(seen_slot(w, p), p)) return;
    visit_slow(v, p);
}
void rt_visit_ambiguous(rt_visitor *v, uintptr_t word) { found(v, word, false, v->obj); }

/* The words of [lo, hi) whose bit is set in the type's mask tiled every
   t->size bytes from data (arrays of layout elements). */
static void scan_layout(rt_visitor *v, uintptr_t data, uintptr_t lo, uintptr_t hi, const rt_type *t) {
    size_t esize = t->size;
    uintptr_t e = data + (lo - data) / esize * esize;   /* first element touching lo */
    for (; e < hi; e += esize) {
        for (size_t wd = 0; wd < t->ptr_words; wd++) {
            if (!(t->mask[wd / 64] >> (wd % 64) & 1)) continue;
            uintptr_t a = e + wd * 8;
            if (a < lo || a + 8 > hi) continue;
            found(v, ld_relaxed((const uintptr_t *)a), true, a);
        }
    }
    if (v->w) v->w->scan_work += hi - lo;
}

/* The pointer slots of a small object, one bit per word from the span's
   heap bits (runtime/malloc.c writes them); nw = elemsize / 8 <= 64. */
static inline uint64_t heapbits_of(const rt_span *s, uintptr_t obj) {
    const uint64_t *hb = rt__span_heapbits(s);
    uintptr_t wi = (obj - s->hot.base) / 8;
    unsigned i = (unsigned)(wi / 64), o = (unsigned)(wi % 64);
    /* The object's bits, in at most two bitmap words. */
    uint64_t bits = ld_relaxed(&hb[i]) >> o;
    if (o + s->hot.elemsize / 8 > 64) bits |= ld_relaxed(&hb[i + 1]) << (64 - o);
    return bits & s->heapbits_mask;
}

/* A slot holding a pointer into its own object needs no shading. */
static void scan_heapbits(rt_visitor *v, rt_span *s, uintptr_t obj) {
    for (uint64_t bits = heapbits_of(s, obj); bits; bits &= bits - 1) {
        uintptr_t a = obj + (uintptr_t)__builtin_ctzll(bits) * 8;
        uintptr_t val = ld_relaxed((const uintptr_t *)a);
        if (val - obj >= s->hot.elemsize) found(v, val, true, a);
    }
    if (v->w) v->w->scan_work += s->hot.elemsize;
}

/* scan_heapbits for the marker itself: no visitor in between, so the
   commonest objects (small, typed by heap bits) cost the loop and the
   shades alone. */
static inline __attribute__((always_inline)) void mark_heapbits(rt_gcwork *w, rt_span *s, uintptr_t obj) {
    for (uint64_t bits = heapbits_of(s, obj); bits; bits &= bits - 1) {
        uintptr_t a = obj + (uintptr_t)__builtin_ctzll(bits) * 8;
        uintptr_t val = ld_relaxed((const uintptr_t *)a);
        if (val >= 4096) shade(w, val, true, obj, a);
    }
    w->scan_work += s->hot.elemsize;
}

static inline void scan_traced(rt_visitor *v, const rt_type *t, uintptr_t data, uintptr_t end) {
    t->trace((void *)data, end - data, v);
    if (v->w) v->w->scan_work += end - data;
}

/* Scan [lo, hi) of the object at base (the whole object, or one oblet). */
static void scan_part(rt_visitor *v, rt_span *s, uintptr_t idx, uintptr_t base, uintptr_t item, bool split) {
    uintptr_t end = base + s->hot.elemsize, data;
    if (heapbits_typed(s, idx)) {
        scan_heapbits(v, s, base);
        return;
    }
    const rt_type *t = rt__object_type(s, base, &data);
    if (!t) return;   /* large object not typed yet, or pointer-free */
    uintptr_t lo = item == base ? data : item, hi = end;
    v->obj = data;
    v->type = t;
    if (split && t->kind != RT__KIND_TRACED && end - data > RT_OBLET_BYTES) {
        if (item == base)   /* queue the other oblets; the object is already black */
            for (uintptr_t o = data + RT_OBLET_BYTES; o < end; o += RT_OBLET_BYTES)
                rt__gcwork_put(v->w, o | ITEM_GENERIC);
        if (hi - lo > RT_OBLET_BYTES) hi = lo + RT_OBLET_BYTES;
    }
    switch (t->kind) {
    case RT__KIND_LAYOUT:       scan_layout(v, data, lo, hi, t); break;
    case RT__KIND_CONSERVATIVE: scan_words(v, lo, hi, false); break;
    case RT__KIND_TRACED: scan_traced(v, t, data, end); break;
    }
}

/* The span of a queued item.  Only shade queues items, after validating
   them, and no span is freed during a mark: the page's span needs no
   second validation. */
static inline rt_span *item_span(rt_gcwork *w, uintptr_t item) {
    if (item - w->hint_base < w->hint_bytes) return w->hint;
    rt_span *s = rt__span_of(item);
    set_hint(w, s);
    return s;
}

static inline __attribute__((always_inline)) void scan_item(rt_gcwork *w, uintptr_t item) {
    if (RT_LIKELY(!(item & ITEM_GENERIC))) {
        rt_span *s = item_span(w, item);
        RT_ASSERT(s == rt__span_of_heap(item) && heapbits_typed(s, rt__span_obj_index(s, item)));
        mark_heapbits(w, s, item);
        return;
    }
    item &= ~ITEM_GENERIC;
    rt_span *s = item_span(w, item);
    RT_ASSERT(s != NULL && s == rt__span_of_heap(item));
    uintptr_t idx = rt__span_obj_index(s, item);
    uintptr_t base = s->hot.base + idx * s->hot.elemsize;
    /* A whole small object queued generic starts with its type header:
       shade queues the heap-bits ones untagged, and noscan ones never.
       The commonest, a traced object (a VM's tables and arrays), goes
       straight to its trace function: scan_part would look the type up
       again, header bit and all.  11% fewer marker instructions per byte
       scanned on queue.lox, 8% on binary_trees.lox (callgrind, marks with
       the world stopped, a collection every 300,000 allocations). */
    if (item == base && rt__spanclass_size(s->hot.spanclass) != 0) {
        const rt_type *t = *(const rt_type *const *)base;
        RT_ASSERT(rt__object_type(s, base, &(uintptr_t){ 0 }) == t);
        if (t->kind == RT__KIND_TRACED) {
            rt_visitor v = { .w = w, .obj = base + RT_HEADER_SIZE, .type = t };
            scan_traced(&v, t, v.obj, base + s->hot.elemsize);
            return;
        }
    }
    rt_visitor v = { .w = w, .obj = base };
    scan_part(&v, s, idx, base, item, true);
}

void rt__object_edges(uintptr_t base, rt_visitor *v) {
    rt_span *s = rt__span_of_heap(base);
    if (!s || rt__spanclass_noscan(s->hot.spanclass)) return;
    uintptr_t idx = rt__span_obj_index(s, base);
    v->obj = base;
    scan_part(v, s, idx, base, base, false);
}

/* The prefetch batch.  Work buffers are stacks: the object a scan pushes
   is usually the next one popped, too soon for the prefetch issued when it
   was shaded to have landed.  So items leave the buffer sixteen at a
   time, oldest first: each was pushed during the previous batch's scans,
   so it is scanned about sixteen scans after its prefetch (Cher, Hosking
   and Vijaykumar's prefetch-on-grey FIFO, at a fraction of a FIFO's
   per-item cost; their distance of eight left a world-stopped collection
   of a 262,000-node Lox tree at 18.3 ms against 16.5, medians of 5).
   The batch is private grey work: it is empty whenever the worker blocks
   for work, and handed back to the work buffers (pf_return) before a
   worker naps or an assist returns. */
#define PF_DEPTH 16
typedef struct pf_queue {
    uintptr_t item[PF_DEPTH];
    unsigned  next, n;      /* item[next..n) wait to be scanned */
} pf_queue;

static inline uintptr_t pf_refill(rt_gcwork *w, pf_queue *q) {
    uintptr_t first = rt__gcwork_tryget(w);   /* may bring in the secondary or a global buffer */
    if (!first) return 0;
    rt_workbuf *b = w->primary;
    unsigned k = b->n < PF_DEPTH - 1 ? (unsigned)b->n : PF_DEPTH - 1;
    b->n -= k;
    for (unsigned i = 0; i < k; i++) {
        q->item[i] = b->item[b->n + i];
        MARK_PREFETCH(q->item[i]);
    }
    q->item[k] = first;     /* the newest: last */
    q->next = 1;
    q->n = k + 1;
    return q->item[0];
}

/* The next item to scan; 0 when the batch and the work buffers are empty. */
static inline uintptr_t pf_next(rt_gcwork *w, pf_queue *q) {
    if (RT_LIKELY(q->next < q->n)) return q->item[q->next++];
    return pf_refill(w, q);
}

/* Rare, so out of line (inlined, gcc -O3 warned the batch might be read
   uninitialized: it is not, item[next..n) is always written). */
static __attribute__((noinline)) void pf_return(rt_gcwork *w, pf_queue *q) {
    for (unsigned i = q->next; i < q->n; i++) rt__gcwork_put(w, q->item[i]);
    q->next = q->n = 0;
}

#define CREDIT_SLACK 2000   /* Go's gcCreditSlack: publish scan work in batches */

/* Publish a worker's scan work in batches: assists may claim it as credit. */
static inline void publish_credit(rt_gcwork *w) {
    if (RT_LIKELY(w->scan_work - w->credited < CREDIT_SLACK)) return;
    int64_t d = (int64_t)(w->scan_work - w->credited);
    w->credited = w->scan_work;
    if (ld_relaxed(&rt__gc_phase) != RT_PHASE_MARK) return;
    add_relaxed(&rt__pacer.bg_credit, d);
    add_relaxed(&rt__pacer.scan_work, (uint64_t)d);
    rt__gc_wake_assists();
}

void rt__drain(rt_gcwork *w) {
    pf_queue q = { .n = 0 };
    for (;;) {
        uintptr_t item = pf_next(w, &q);
        if (!item && !(item = rt__gcwork_get(w))) return;
        scan_item(w, item);
        publish_credit(w);
        rt__gcwork_balance(w);
    }
}

/* An assist: a mutator scans about `work` bytes.  It stops early when the
   world is to stop (Go's gcDrainN checks preemption the same way): an
   assist owing much work drained for 20-57 ms and held up the stop for
   mark termination by as much.  It balances like the workers (as
   gcDrainN does): a narrow frontier, such as one tree's, sits in a single
   buffer, and an assist holding it left the workers waiting. */
int64_t rt__drain_n(rt_gcwork *w, int64_t work) {
    uint64_t start = w->scan_work;
    pf_queue q = { .n = 0 };
    uintptr_t item;
    while ((int64_t)(w->scan_work - start) < work && !(rt__flags_load() & RT__FLAG_STOP) &&
           (item = pf_next(w, &q)) != 0) {
        scan_item(w, item);
        rt__gcwork_balance(w);
    }
    pf_return(w, &q);
    return (int64_t)(w->scan_work - start);
}

/* ---- mark workers ------------------------------------------------------------------ */

enum { ROLE_DEDICATED, ROLE_FRACTIONAL, ROLE_IDLE };
enum { JOB_NONE, JOB_CONCURRENT, JOB_STW };

static struct {
    pthread_mutex_t lock;
    pthread_cond_t  cond, done_cond;
    pthread_t      *threads;
    int            *roles;
    int             n;
    uint64_t        epoch;        /* bumped to hand out a job */
    int             job;
    int             in_job;       /* workers that joined the current job and are not done */
    double          fractional_cpu;   /* share of one CPU for the fractional worker */
    int             dedicated;
    uint64_t        job_start_ns;
    int             idle_wanted;      /* idle workers the current concurrent job has a CPU for */
    bool            quit, spawned;
} M = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .done_cond = PTHREAD_COND_INITIALIZER };

/* The dedicated and fractional workers, which mark whether or not a CPU
   is idle; they are workers 0..n-1 (rt__markers_start), so n is also the
   index of the first idle worker. */
static int paced_workers(void) { return M.dedicated + (M.fractional_cpu > 0); }

/* Idle marking: "a P with nothing to do" is read as "fewer threads are
   running than there are CPUs": Ps on a CPU plus the paced workers. */
static bool cpus_busy(void) {
    return rt__ps_on_cpu() + paced_workers() >= rt__ncpu();
}

/* Go's drainCheckThreshold: scan work between looks at the clock. */
#define DRAIN_CHECK_WORK 100000

/* Fractional and idle workers mark in slices and, when they must yield
   (over their CPU share, or no idle CPU), publish their buffers first and
   sleep counted as waiting, so they never hide work or hold up the end of
   the mark.  A fractional worker over its share keeps going while its CPU
   would otherwise be idle (Go runs an idle worker on that P); the time of
   those slices is returned in *idle_ns.  The share is timed by the
   monotonic clock, as Go's pollFractionalWorkerExit does, less naps and
   waits for work: the thread's CPU clock is a system call (1.3-1.6 us on
   the 2-vCPU VM), and it was read after every 100 KB of scanning, 5% of
   a queue.lox mark.  Time the worker is preempted counts as used, so a
   busy machine gets less marking from it, not more. */
static void drain_sliced(rt_gcwork *w, int role, uint64_t *idle_ns) {
    uint64_t last = rt__nanotime();   /* start of the current slice */
    uint64_t used = 0, waited = 0;    /* fractional time so far; time in this slice spent waiting for work */
    bool on_idle_cpu = false;         /* the current slice is idle-priority work */
    pf_queue q = { .n = 0 };
    for (;;) {
        uintptr_t item = pf_next(w, &q);
        if (!item) {
            uint64_t t = rt__nanotime();
            item = rt__gcwork_get(w);
            waited += rt__nanotime() - t;
            if (!item) return;
        }
        uint64_t start = w->scan_work;
        scan_item(w, item);
        while (w->scan_work - start < DRAIN_CHECK_WORK && (item = pf_next(w, &q)) != 0) {
            scan_item(w, item);
            rt__gcwork_balance(w);
        }
        publish_credit(w);
        uint64_t nap = 0;
        if (role == ROLE_FRACTIONAL) {
            uint64_t now = rt__nanotime(), slice = now - last > waited ? now - last - waited : 0;
            if (on_idle_cpu) *idle_ns += slice;
            else used += slice;
            last = now;
            waited = 0;
            on_idle_cpu = false;
            uint64_t wall = now - M.job_start_ns;
            if ((double)used > 1.2 * M.fractional_cpu * (double)wall) {
                if (rt__ps_on_cpu() + M.dedicated < rt__ncpu()) {
                    on_idle_cpu = true;
                } else {
                    nap = (uint64_t)((double)used / M.fractional_cpu) - wall;
                    if (nap > 2000000) nap = 2000000;
                }
            }
        } else if (cpus_busy()) {
            nap = 500000;
        }
        if (nap) {
            pf_return(w, &q);
            rt__gcwork_dispose(w);
            rt__work_nap(nap);
            last = rt__nanotime();
            waited = 0;
        }
    }
}

static void *worker_main(void *arg) {
    int id = (int)(intptr_t)arg;
    uint64_t seen = 0;
    char name[16];
    snprintf(name, sizeof name, "rtgc-mark-%u", (unsigned)(id + 1) % 10000u);   /* at most 15 characters */
    pthread_setname_np(pthread_self(), name);
    pthread_mutex_lock(&M.lock);
    for (;;) {
        while (!M.quit && M.epoch == seen) pthread_cond_wait(&M.cond, &M.lock);
        if (M.quit) break;
        seen = M.epoch;
        int job = M.job;
        /* An idle worker joins a concurrent mark only if a CPU was free for
           it at mark start, as Go runs one only on an idle P
           (docs/design.md, "Mark workers", has what it cost otherwise).  A
           CPU that frees up later is left to the fractional worker, if
           there is one.  The others were woken too, and go back to sleep. */
        if (job == JOB_CONCURRENT && M.roles[id] == ROLE_IDLE && id - paced_workers() >= M.idle_wanted)
            continue;
        if (!rt__work_join(job == JOB_STW)) continue;   /* that drain ended before this worker ran */
        M.in_job++;
        pthread_mutex_unlock(&M.lock);
        uint64_t c0 = rt__cputime_thread(), idle = 0;
        rt_gcwork w = { .id = id + 1 };
        if (job == JOB_CONCURRENT && M.roles[id] != ROLE_DEDICATED) drain_sliced(&w, M.roles[id], &idle);
        else rt__drain(&w);
        rt__gcwork_dispose(&w);
        rt__markstats_add(&w);
        uint64_t cpu = rt__cputime_thread() - c0;
        if (idle > cpu) idle = cpu;   /* idle slices are wall time */
        pthread_mutex_lock(&stats_lock);
        if (job == JOB_STW) rt__markstats.stw_ns += cpu;
        else if (M.roles[id] == ROLE_DEDICATED) rt__markstats.dedicated_ns += cpu;
        else if (M.roles[id] == ROLE_FRACTIONAL) rt__markstats.fractional_ns += cpu - idle, rt__markstats.idle_ns += idle;
        else rt__markstats.idle_ns += cpu;
        pthread_mutex_unlock(&stats_lock);
        /* The worker that found the mark over stops the world and
           terminates the mark itself, on the CPU it holds (gc/work.c). */
        bool ends_mark = job == JOB_CONCURRENT && rt__work_ended_by() == w.id;
        pthread_mutex_lock(&M.lock);
        M.in_job--;
        pthread_cond_broadcast(&M.done_cond);
        if (ends_mark) {
            pthread_mutex_unlock(&M.lock);
            rt__gc_end_mark_on_worker();
            pthread_mutex_lock(&M.lock);
        }
    }
    pthread_mutex_unlock(&M.lock);
    return NULL;
}

/* Go's worker sizing: 25% of RTMAXPROCS, dedicated workers for the whole
   part, a fractional worker for the rest when rounding misses by > 30%.
   The threads themselves start with the first job (spawn_locked): a
   program whose cycles are all small never needs them. */
void rt__markers_start(int maxprocs) {
    if (maxprocs < 1) maxprocs = 1;
    double goal = 0.25 * maxprocs;
    int dedicated = (int)(goal + 0.5);
    double frac = 0;
    if (dedicated == 0 || goal / dedicated - 1 < -0.3 || goal / dedicated - 1 > 0.3) {
        if ((double)dedicated > goal) dedicated--;
        frac = goal - dedicated;
    }
    M.quit = false;
    M.n = maxprocs;
    M.fractional_cpu = frac;
    M.dedicated = dedicated;
    M.threads = calloc((size_t)M.n, sizeof(pthread_t));
    M.roles = calloc((size_t)M.n, sizeof(int));
    if (!M.threads || !M.roles) rt__fatal("out of memory creating mark workers");
    for (int i = 0; i < M.n; i++)
        M.roles[i] = i < dedicated ? ROLE_DEDICATED : (i == dedicated && frac > 0) ? ROLE_FRACTIONAL : ROLE_IDLE;
    M.spawned = false;
}

/* M.lock held. */
static void spawn_locked(void) {
    if (M.spawned) return;
    for (int i = 0; i < M.n; i++)
        if (pthread_create(&M.threads[i], NULL, worker_main, (void *)(intptr_t)i) != 0)
            rt__fatal("cannot create mark worker thread %d", i + 1);
    M.spawned = true;
}

void rt__markers_stop(void) {
    pthread_mutex_lock(&M.lock);
    M.quit = true;
    pthread_cond_broadcast(&M.cond);
    bool spawned = M.spawned;
    pthread_mutex_unlock(&M.lock);
    for (int i = 0; spawned && i < M.n; i++) pthread_join(M.threads[i], NULL);
    free(M.threads);
    free(M.roles);
    M.threads = NULL;
    M.roles = NULL;
    M.n = 0;
}

/* How many idle workers a concurrent mark starting now has a CPU for: the
   CPUs left by the dedicated and fractional workers and by the threads
   that hold a P, unless those sleep until the cycle completes (rt_gc).
   The thread whose allocation started the cycle counts as running, though
   it still sleeps until mark start ends: it is about to run again. */
static int idle_cpus_at_mark_start(void) {
    int held = ld_relaxed(&rt__g.p_running) - rt__gc_cycle_waiters();
    int n = rt__ncpu() - held - paced_workers();
    return n > 0 ? n : 0;
}

static void hand_out(int job) {
    pthread_mutex_lock(&M.lock);
    spawn_locked();
    M.job = job;
    if (job == JOB_CONCURRENT) M.idle_wanted = idle_cpus_at_mark_start();
    M.job_start_ns = rt__nanotime();
    M.epoch++;
    pthread_cond_broadcast(&M.cond);
    pthread_mutex_unlock(&M.lock);
}

static void wait_finished(void) {
    pthread_mutex_lock(&M.lock);
    while (M.in_job > 0) pthread_cond_wait(&M.done_cond, &M.lock);
    pthread_mutex_unlock(&M.lock);
}

/* The caller joins the drain too, until rt__work_leave: the workers
   start on pause 1's grey objects while it shades the rest of the roots,
   and the mark cannot be found over before those are published. */
void rt__markers_concurrent_begin(void) {
    rt__work_begin(false);
    rt__work_join(false);
    hand_out(JOB_CONCURRENT);
}

void rt__markers_concurrent_end(void) {
    rt__work_finish();
    wait_finished();
}

/* Grey objects the calling thread drains alone before it wakes the other
   workers: at mark termination there is usually little or nothing left,
   and waking threads inside a pause costs scheduler latency. */
#define STW_SOLO_WORK (256 << 10)

/* With the world stopped, the calling thread alone: scan about `work`
   bytes; true if no grey object is left anywhere. */
bool rt__drain_solo(rt_gcwork *w, uint64_t work) {
    uint64_t start = w->scan_work;
    pf_queue q = { .n = 0 };
    uintptr_t item;
    while (w->scan_work - start < work && (item = pf_next(w, &q)) != 0) scan_item(w, item);
    pf_return(w, &q);
    return rt__gcwork_empty(w) && rt__work_global_empty();
}

/* Drain with the world stopped: the calling thread, then every worker if
   there is more than a little to do.  self_work is left empty and its
   buffers given back (a drain the caller finished alone used to keep
   them: one or two buffers leaked per world-stopped cycle). */
uint64_t rt__markers_stw_drain(rt_gcwork *self_work) {
    uint64_t c0 = rt__cputime_thread();
    bool helped = !rt__drain_solo(self_work, STW_SOLO_WORK);
    if (helped) {
        rt__work_begin(true);
        rt__work_join(true);
        hand_out(JOB_STW);
        rt__drain(self_work);
    }
    rt__gcwork_dispose(self_work);
    rt__markstats_add(self_work);
    self_work->bytes_marked = self_work->objects_marked = self_work->scan_work = 0;
    if (helped) wait_finished();
    pthread_mutex_lock(&stats_lock);
    rt__markstats.stw_ns += rt__cputime_thread() - c0;
    pthread_mutex_unlock(&stats_lock);
    if (!rt__work_global_empty()) rt__fatal("mark ended with grey objects on the global list");
    return rt__markstats.bytes_marked;
}
