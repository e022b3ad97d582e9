/* gc/specials.c -- weak handles, cleanups and finalizers (issue 6), with
 * Go's semantics (reference notes sections 12 and 13).
 *
 * Special records.  Each weak handle, cleanup and finalizer is a small
 * record outside the heap (fixed-size pools of rt__os_alloc'd chunks),
 * attached to the span of its object.  A span's `specials` points to a
 * sorted array of its records (struct rt_special below), ordered by
 * (offset, kind) where offset is the record's key pointer minus the span
 * base and kind orders finalizer < weak < cleanup, as Go's list.  An array
 * rather than Go's linked list: finding a weak handle, inserting a record
 * and stopping a cleanup are binary searches instead of walks over up to
 * a thousand records per span.
 *
 * The key pointer.  Interior pointers to one object share its records: the
 * key is the object's start (the pointer rt_alloc returned).  Objects of
 * the 16-byte noscan class are the exception: tiny objects share 16-byte
 * blocks there and their boundaries are unknown, so the key is the exact
 * pointer (Go does the same): two tiny objects in one block get different
 * weak handles, and each one's records fire only when the whole block dies.
 *
 * Locking.  span->special_lock guards the array.  Anything that reads or
 * edits a span's records first makes sure the span was swept this cycle
 * (rt__span_ensure_swept, gc/sweep.c): the sweep is what clears weak
 * handles and queues cleanups and finalizers, so looking before it would
 * see dead objects as alive.  Every public entry point requires a P, so no
 * mark termination (hence no new sweep phase) can start while it runs: a
 * span swept at entry stays swept until the call returns, as long as the
 * call does not allocate in between (rt_weak_make allocates its handle
 * first and re-checks after).  The sweeper takes the lock too, and the mark
 * root job below, so every access is under the lock.  Lock order:
 * special_lock, then a pool lock or the queue lock.
 *
 * Marking.  Records are roots: a weak record keeps its handle (the cell the
 * caller holds) alive, a cleanup keeps its arg, a finalizer keeps its arg
 * and everything its object points to, but not the object itself (notes
 * 7.2, 13.2).  The queue of cleanups and finalizers waiting to run is a
 * root too (for finalizers, the object as well).  rt__specials_mark_roots
 * shades them all.  In the concurrent collector it runs on the collector's
 * thread right after mark start, with the world running again, so a
 * million records add nothing to the pause.  That is safe because
 *   - a record is removed during a mark only by rt_cleanup_stop or
 *     rt_set_finalizer(obj, NULL), and nothing can be reached through a
 *     removed record (there is no call that returns a cleanup's arg), so
 *     dropping it is like dropping a root;
 *   - a record added during a mark shades what it holds at once (the
 *     caller's stack was scanned at mark start, and a record is not a heap
 *     slot, so no write barrier sees the store);
 *   - rt_weak_make returning an existing handle and rt_weak_get returning
 *     an object shade what they return during a mark (Go's rule: a strong
 *     pointer made from a weak one must not hide a white object on a black
 *     stack);
 *   - the queue only shrinks during a mark (only sweeps add to it), and
 *     the cleanup thread shades each entry it takes during a mark; the
 *     entry it is running is a root of its own (`current`).
 * The finalizer object's contents are read concurrently like any object
 * the markers scan: an unreachable object has no mutator, a reachable one
 * is marked and scanned anyway, and the write barrier covers stores.
 *
 * Sweeping (rt__specials_sweep, from rt__sweep_span before the span's mark
 * bits become its allocation bits; notes 10.3).  For each object with
 * records that is unmarked:
 *   - if it has a finalizer: mark it again (it survives this cycle), queue
 *     the finalizer with the object, clear and drop its weak handles (so a
 *     weak handle reads NULL before the finalizer runs, Go's order), keep
 *     its cleanups;
 *   - else: clear and drop its weak handles, queue its cleanups.
 * A handle is therefore cleared by the very sweep that frees its object,
 * and a get that races with that sweep waits for it (ensure swept).
 *
 * Running cleanups and finalizers.  One cleanup thread, started by the
 * first rt_add_cleanup or rt_set_finalizer, attached as a mutator (a
 * cleanup may allocate, store, make weak handles, collect), runs queued
 * entries one at a time in queue order and waits in a blocking region
 * (rt_enter_blocking) when there is nothing to do, so it never delays a
 * stop.  It is left out of the attached-thread count that rt_shutdown
 * checks, and rt__gc_shutdown stops it (entries still queued then never
 * run, as at the exit of a Go program). */
#include "gc.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- records ------------------------------------------------------------------ */

enum { SP_FINALIZER = 1, SP_WEAK = 2, SP_CLEANUP = 3 };

/* The handle the caller holds: a 16-byte pointer-free heap object holding
   the target's address as an integer (never traced).  16 bytes, not 8, so
   it is never packed into a tiny block, where it could share a block with
   its own target and keep it alive. */
struct rt_weak {
    uintptr_t addr;
    uintptr_t unused;
};

typedef struct sp_rec {
    uint32_t offset;             /* key pointer - span base */
    uint8_t  kind;               /* SP_* */
} sp_rec;

typedef struct { sp_rec h; rt_weak *handle; } sp_weak;
typedef struct { sp_rec h; void (*fn)(void *, void *); void *arg; } sp_fin;
typedef struct {
    sp_rec    h;
    void    (*fn)(void *);
    void     *arg;
    uintptr_t obj;               /* key pointer, for rt_cleanup_stop; atomic */
    uint64_t  id;                /* generation << 32 | (pool index + 1); kept while free; atomic */
} sp_cln;

/* A span's records, sorted by (offset, kind); the keys are stored inline
   so a search touches only the array. */
typedef struct sp_ent { uint64_t key; sp_rec *r; } sp_ent;
struct rt_special {
    uint32_t n, cap;
    sp_ent   e[];
};
typedef struct rt_special sp_table;

static inline uint64_t key_of(const sp_rec *r) { return (uint64_t)r->offset << 8 | r->kind; }

/* ---- off-heap pools ----------------------------------------------------------- */

#define CHUNK_BYTES ((size_t)256 << 10)
#define CHUNK_HDR   64              /* chunk header: the next chunk */
#define MIN_TABLE_SHIFT 5           /* tables of 32 B (3 records) ... */
#define MAX_TABLE_SHIFT 16          /* ... to 64 KiB (8191) from pools; larger ones mapped alone */
#define NTABLE_POOLS (MAX_TABLE_SHIFT - MIN_TABLE_SHIFT + 1)
#define CLN_MAX_CHUNKS (1u << 15)   /* 6552 cleanups per chunk: 214 million at once */

typedef struct fixpool {
    pthread_mutex_t lock;
    size_t   size;
    void    *free;
    char    *bump, *end;
    void    *chunks;
    uint64_t inuse;
} fixpool;

typedef struct big_table { struct big_table *next, *prev; size_t bytes; } big_table;

static struct {
    fixpool   weak, fin, cln, qblk;
    fixpool   table[NTABLE_POOLS];
    pthread_mutex_t big_lock;
    big_table *big;
    uint32_t  cln_nchunks;
    uint32_t  cln_per_chunk;
} P;

/* Index -> chunk, for rt_cleanup_stop; only [0, cln_nchunks) is ever read.
   Outside P, because clearing P at rt_init would make all 256 KiB of it
   resident in every program. */
static char *cln_chunks[CLN_MAX_CHUNKS];

static void pool_init(fixpool *p, size_t size) {
    pthread_mutex_init(&p->lock, NULL);
    p->size = (size + 7) & ~(size_t)7;
    p->free = NULL;
    p->bump = p->end = NULL;
    p->chunks = NULL;
    p->inuse = 0;
}

static char *chunk_new(fixpool *p) {
    char *c = rt__os_alloc(CHUNK_BYTES);
    if (!c) rt__fatal("out of memory for weak handle, cleanup and finalizer records");
    *(void **)c = p->chunks;
    p->chunks = c;
    return c;
}

/* Cleanup records are carved a chunk at a time so each gets its index. */
static void cln_chunk_locked(fixpool *p) {
    if (P.cln_nchunks == CLN_MAX_CHUNKS) rt__fatal("too many cleanups at once (over %u)", CLN_MAX_CHUNKS * P.cln_per_chunk);
    char *c = chunk_new(p);
    uint32_t ci = P.cln_nchunks;
    for (uint32_t i = P.cln_per_chunk; i-- > 0;) {
        sp_cln *r = (sp_cln *)(c + CHUNK_HDR + (size_t)i * p->size);
        st_relaxed(&r->id, (uint64_t)(ci * P.cln_per_chunk + i + 1));
        *(void **)r = p->free;
        p->free = r;
    }
    st_release(&cln_chunks[ci], c);
    st_release(&P.cln_nchunks, ci + 1);
}

static void *pool_alloc(fixpool *p) {
    pthread_mutex_lock(&p->lock);
    void *r = p->free;
    if (r) {
        p->free = *(void **)r;
    } else if (p == &P.cln) {
        cln_chunk_locked(p);
        r = p->free;
        p->free = *(void **)r;
    } else {
        if (!p->bump || p->bump + p->size > p->end) {
            char *c = chunk_new(p);
            p->bump = c + CHUNK_HDR;
            p->end = c + CHUNK_BYTES;
        }
        r = p->bump;
        p->bump += p->size;
    }
    p->inuse++;
    pthread_mutex_unlock(&p->lock);
    return r;
}

static void pool_free(fixpool *p, void *r) {
    pthread_mutex_lock(&p->lock);
    *(void **)r = p->free;
    p->free = r;
    p->inuse--;
    pthread_mutex_unlock(&p->lock);
}

static void pool_destroy(fixpool *p) {
    void *c = p->chunks;
    while (c) {
        void *next = *(void **)c;
        rt__os_free(c, CHUNK_BYTES);
        c = next;
    }
    pthread_mutex_destroy(&p->lock);
    memset(p, 0, sizeof *p);
}

static fixpool *rec_pool(int kind) {
    return kind == SP_WEAK ? &P.weak : kind == SP_FINALIZER ? &P.fin : &P.cln;
}

static sp_rec *rec_alloc(int kind, uint32_t offset) {
    sp_rec *r = pool_alloc(rec_pool(kind));
    r->offset = offset;
    r->kind = (uint8_t)kind;
    return r;
}

static void rec_free(sp_rec *r) { pool_free(rec_pool(r->kind), r); }

static sp_table *table_alloc(uint32_t want) {
    size_t bytes = sizeof(sp_table) + (size_t)want * sizeof(sp_ent);
    unsigned shift = MIN_TABLE_SHIFT;
    while (((size_t)1 << shift) < bytes) shift++;
    sp_table *t;
    if (shift <= MAX_TABLE_SHIFT) {
        t = pool_alloc(&P.table[shift - MIN_TABLE_SHIFT]);
        bytes = (size_t)1 << shift;
    } else {
        bytes = (bytes + sizeof(big_table) + 4095) & ~(size_t)4095;
        big_table *b = rt__os_alloc(bytes);
        if (!b) rt__fatal("out of memory for a span's special records table (%zu bytes)", bytes);
        b->bytes = bytes;
        pthread_mutex_lock(&P.big_lock);
        b->prev = NULL;
        b->next = P.big;
        if (P.big) P.big->prev = b;
        P.big = b;
        pthread_mutex_unlock(&P.big_lock);
        t = (sp_table *)(b + 1);
        bytes -= sizeof(big_table);
    }
    t->n = 0;
    t->cap = (uint32_t)((bytes - sizeof(sp_table)) / sizeof(sp_ent));
    return t;
}

static void table_free(sp_table *t) {
    size_t bytes = sizeof(sp_table) + (size_t)t->cap * sizeof(sp_ent);
    if (bytes <= ((size_t)1 << MAX_TABLE_SHIFT)) {
        unsigned shift = MIN_TABLE_SHIFT;
        while (((size_t)1 << shift) < bytes) shift++;
        pool_free(&P.table[shift - MIN_TABLE_SHIFT], t);
        return;
    }
    big_table *b = (big_table *)t - 1;
    pthread_mutex_lock(&P.big_lock);
    if (b->prev) b->prev->next = b->next; else P.big = b->next;
    if (b->next) b->next->prev = b->prev;
    pthread_mutex_unlock(&P.big_lock);
    rt__os_free(b, b->bytes);
}

/* ---- the spans that have records -------------------------------------------------
 * The root walks (mark start, checkmark, checkfinalizers) visit these, not
 * every page of every arena: that walk was 8192 page-map entries per 64 MiB
 * arena at every collection, a fixed cost that small cycles, thousands a
 * second, could not carry.  A span joins when its table is made and leaves
 * when the table is freed, both under its special_lock (lock order:
 * special_lock, then SL.lock). */
static struct {
    pthread_mutex_t lock;
    rt_span       **v;
    size_t          n, cap;
} SL = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void span_list_add(rt_span *s) {
    pthread_mutex_lock(&SL.lock);
    if (SL.n == SL.cap) {
        size_t cap = SL.cap ? SL.cap * 2 : 64;
        rt_span **v = realloc(SL.v, cap * sizeof *v);
        if (!v) rt__fatal("out of memory listing %zu spans with weak handles, cleanups or finalizers", SL.n);
        SL.v = v;
        SL.cap = cap;
    }
    s->special_idx = (uint32_t)SL.n;
    SL.v[SL.n++] = s;
    pthread_mutex_unlock(&SL.lock);
}

static void span_list_remove(rt_span *s) {
    pthread_mutex_lock(&SL.lock);
    RT_ASSERT(s->special_idx < SL.n && SL.v[s->special_idx] == s);
    rt_span *last = SL.v[--SL.n];
    SL.v[s->special_idx] = last;
    last->special_idx = s->special_idx;
    pthread_mutex_unlock(&SL.lock);
}

/* The heap verifier, world stopped: the list holds exactly the spans it
   found with a table, each at its index. */
void rt__specials_check_list(uint64_t spans_with_records) {
    pthread_mutex_lock(&SL.lock);
    if (SL.n != spans_with_records)
        rt__fatal("specials: %zu spans listed with records, the heap has %llu", SL.n,
                  (unsigned long long)spans_with_records);
    for (size_t i = 0; i < SL.n; i++) {
        rt_span *s = SL.v[i];
        if (s->special_idx != i || !s->specials || s->state != RT_SPAN_INUSE)
            rt__fatal("specials: list entry %zu (span %#lx) is at %u, %s, state %u", i, (unsigned long)s->hot.base,
                      s->special_idx, s->specials ? "has records" : "has none", s->state);
    }
    pthread_mutex_unlock(&SL.lock);
}

/* ---- a span's table (special_lock held) -------------------------------------- */

static inline sp_table *span_table(rt_span *s) { return ld_relaxed(&s->specials); }

/* The table is gone: the span leaves the list. */
static void table_drop(rt_span *s, sp_table *t) {
    table_free(t);
    st_relaxed(&s->specials, NULL);
    span_list_remove(s);
}

/* First index whose key is >= k. */
static uint32_t lower_bound(const sp_table *t, uint64_t k) {
    uint32_t lo = 0, hi = t ? t->n : 0;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (t->e[mid].key < k) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static sp_rec *table_find(rt_span *s, uint32_t offset, int kind) {
    sp_table *t = span_table(s);
    uint64_t k = (uint64_t)offset << 8 | (unsigned)kind;
    uint32_t i = lower_bound(t, k);
    return t && i < t->n && t->e[i].key == k ? t->e[i].r : NULL;
}

/* Insert after any records with the same key (cleanups keep their order). */
static void table_insert(rt_span *s, sp_rec *r) {
    sp_table *t = span_table(s);
    if (!t || t->n == t->cap) {
        sp_table *nt = table_alloc(t ? t->cap * 2 + 1 : 1);
        if (t) {
            memcpy(nt->e, t->e, (size_t)t->n * sizeof(sp_ent));
            nt->n = t->n;
            table_free(t);
        } else {
            span_list_add(s);
        }
        t = nt;
        st_relaxed(&s->specials, t);
    }
    uint32_t i = lower_bound(t, key_of(r) + 1);
    memmove(&t->e[i + 1], &t->e[i], (size_t)(t->n - i) * sizeof(sp_ent));
    t->e[i] = (sp_ent){ key_of(r), r };
    t->n++;
}

static void table_remove_at(rt_span *s, uint32_t i) {
    sp_table *t = span_table(s);
    memmove(&t->e[i], &t->e[i + 1], (size_t)(t->n - i - 1) * sizeof(sp_ent));
    if (--t->n == 0) table_drop(s, t);
}

/* ---- the queue of cleanups and finalizers to run -------------------------------- */

typedef struct qent {
    int    kind;                 /* SP_FINALIZER or SP_CLEANUP */
    void  *fn;
    void  *obj;                  /* finalizers: the object (kept alive while queued) */
    void  *arg;
} qent;

#define QBLOCK_BYTES 4096
#define QBLOCK_N ((QBLOCK_BYTES - 2 * sizeof(void *)) / sizeof(qent))
typedef struct qblock {
    struct qblock *next;
    uint32_t head, tail;
    qent e[QBLOCK_N];
} qblock;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t  work, idle;
    qblock  *head, *tail;
    uint64_t queued, ran;
    qent     current;            /* the entry being run: a root */
    bool     has_current;
    bool     started, quit;
    pthread_t thread;
} Q;

/* Only the head block can be used up without being freed (q_pop_locked frees
   it lazily), and every block behind it holds entries: a used-up head that
   is not also the tail does not mean empty. */
static bool q_empty_locked(void) { return !Q.head || (Q.head == Q.tail && Q.head->head == Q.head->tail); }

/* Any thread, any phase (called from sweeps). */
static void q_push(int kind, void *fn, void *obj, void *arg) {
    pthread_mutex_lock(&Q.lock);
    /* The cleanup thread waits only on an empty queue, checked under this
       lock: wake it on the first entry, not on each of a million. */
    bool was_empty = q_empty_locked();
    qblock *b = Q.tail;
    if (!b || b->tail == QBLOCK_N) {
        qblock *nb = pool_alloc(&P.qblk);
        nb->next = NULL;
        nb->head = nb->tail = 0;
        if (b) b->next = nb; else Q.head = nb;
        Q.tail = b = nb;
    }
    b->e[b->tail++] = (qent){ kind, fn, obj, arg };
    Q.queued++;
    if (was_empty) pthread_cond_signal(&Q.work);
    pthread_mutex_unlock(&Q.lock);
}

static bool q_pop_locked(qent *out) {
    while (Q.head && Q.head->head == Q.head->tail) {
        qblock *b = Q.head;
        if (b == Q.tail) { b->head = b->tail = 0; return false; }
        Q.head = b->next;
        pool_free(&P.qblk, b);
    }
    if (!Q.head) return false;
    *out = Q.head->e[Q.head->head++];
    return true;
}

/* ---- helpers -------------------------------------------------------------------- */

static rt_p *need_p(const char *call) {
    rt_p *p = (rt_p *)rt__tls_mcache;
    if (RT_LIKELY(p != NULL)) return p;
    if (!rt__g.initialized) rt__misuse(call, "rtgc is not initialized; call rt_init() first");
    if (!rt__tls_thread)
        rt__misuse(call, "called from a thread that is not attached; call rt_thread_attach() in this thread first");
    rt__misuse(call, "called between rt_enter_blocking() and rt_exit_blocking(); call rt_exit_blocking() first");
}

static inline bool marking(void) { return ld_relaxed(&rt__gc_phase) != RT_PHASE_OFF; }

/* Allocated, as the marker sees it (the span is swept). */
/* Every slot below freeindex is allocated.  The inline allocation path
   advances freeindex alone; freeindex_for_scan follows only on the slow
   path and during a mark, so an object from the fast path is found by the
   first test (the caller got the pointer after its allocation). */
static inline bool slot_allocated(const rt_span *s, uintptr_t idx) {
    if (idx < ld_relaxed(&s->hot.freeindex) || idx < ld_acquire(&s->freeindex_for_scan)) return true;
    return ld_relaxed(&s->alloc_bits[idx / 8]) & (1u << (idx % 8));
}

static inline bool tiny_span(const rt_span *s) { return s->hot.spanclass == RT_TINY_SPAN_CLASS; }

/* Where the object in slot idx starts (rt__object_type's rule, reading
   header_bits atomically: neighbours' bits in the byte change as they are
   allocated). */
static uintptr_t data_start(const rt_span *s, uintptr_t slot, uintptr_t idx) {
    if (rt__spanclass_noscan(s->hot.spanclass) || rt__spanclass_size(s->hot.spanclass) == 0) return slot;
    if (s->hot.header_bits) return ld_relaxed(&s->hot.header_bits[idx / 8]) >> (idx % 8) & 1 ? slot + RT_HEADER_SIZE : slot;
    return slot + RT_HEADER_SIZE;
}

typedef struct target {
    rt_span  *s;
    uintptr_t idx, slot;         /* object index and slot address */
    uintptr_t key;               /* key pointer: the object's start, or the exact pointer in a tiny block */
    uint32_t  offset;            /* key - span base */
} target;

/* Validate obj (a pointer into a live heap object), sweep its span if this
   cycle has not, and find its key. */
static target resolve(const char *call, const void *obj) {
    uintptr_t p = (uintptr_t)obj;
    rt_span *s = rt__span_of_heap(p);
    if (!s || p >= s->limit)
        rt__misuse(call, "%p is not a pointer into an object allocated by rt_alloc (a global, a stack or malloc "
                   "address?); weak handles, cleanups and finalizers attach only to heap objects", obj);
    rt__span_ensure_swept(s);
    target t = { .s = s, .idx = rt__span_obj_index(s, p) };
    if (!slot_allocated(s, t.idx))
        rt__misuse(call, "%p points into a free heap slot (the object was already collected, or the pointer "
                   "is stale); pass a pointer to a live object", obj);
    t.slot = s->hot.base + t.idx * s->hot.elemsize;
    if (tiny_span(s)) t.key = p;
    else t.key = data_start(s, t.slot, t.idx);
    t.offset = (uint32_t)(t.key - s->hot.base);
    return t;
}

static void lock_swept(rt_span *s) {
    rt__span_ensure_swept(s);
    pthread_mutex_lock(&s->special_lock);
}

static void cleaner_start(void);

/* ---- weak handles ----------------------------------------------------------------- */

rt_weak *rt_weak_make(void *obj) {
    rt_p *p = need_p("rt_weak_make");
    if (!obj) return NULL;
    target t = resolve("rt_weak_make", obj);
    pthread_mutex_lock(&t.s->special_lock);
    sp_weak *r = (sp_weak *)table_find(t.s, t.offset, SP_WEAK);
    rt_weak *w = r ? r->handle : NULL;
    pthread_mutex_unlock(&t.s->special_lock);
    if (w) {
        if (marking()) rt__shade(&p->gcw, (uintptr_t)w, false, 0, 0);
        return w;
    }
    /* Allocate the handle, then insert unless another thread won the race.
       The allocation may run a whole cycle: sweep again before looking. */
    rt_weak *cell = (rt_alloc)(sizeof(rt_weak), RT_NOSCAN);
    if (!cell) return NULL;   /* out of memory with a handler set */
    p = (rt_p *)rt__tls_mcache;
    st_release(&cell->addr, t.key);
    sp_weak *nr = (sp_weak *)rec_alloc(SP_WEAK, t.offset);
    nr->handle = cell;
    lock_swept(t.s);
    r = (sp_weak *)table_find(t.s, t.offset, SP_WEAK);
    if (r) {
        w = r->handle;
    } else {
        table_insert(t.s, &nr->h);
        w = cell;
    }
    pthread_mutex_unlock(&t.s->special_lock);
    if (r) {
        rec_free(&nr->h);
        if (marking()) rt__shade(&p->gcw, (uintptr_t)w, false, 0, 0);
    }
    /* Keep obj (hence its span) alive up to here, like Go's KeepAlive. */
    __asm__ volatile("" : : "r"(obj) : "memory");
    return w;
}

void *rt_weak_get(const rt_weak *w) {
    rt_p *p = (rt_p *)rt__tls_mcache;
    if (RT_UNLIKELY(!p)) need_p("rt_weak_get");
    if (!w) return NULL;
    uintptr_t a = ld_acquire(&w->addr);
    if (!a) return NULL;
    rt_span *s = rt__span_of_heap(a);
    if (RT_UNLIKELY(!s)) return NULL;
    uint32_t h = ld_acquire(&rt__heap.sweepgen), sg = ld_acquire(&s->sweepgen);
    /* Not swept yet this cycle: the object may be dead.  Sweep first
       (which clears the handle if it is). */
    if (RT_UNLIKELY(sg != h && sg != h + 3)) rt__span_ensure_swept(s);
    /* Look again in any case: a sweeper may have cleared the handle, freed
       the span and the page been reused between the first load and the
       check above.  The clear happens before the free, which happens
       before the reuse we observed, so this load sees it. */
    a = ld_acquire(&w->addr);
    if (!a) return NULL;
    if (RT_UNLIKELY(marking())) rt__shade(&p->gcw, a, false, 0, 0);
    return (void *)a;
}

/* ---- cleanups ------------------------------------------------------------------------- */

static sp_cln *cln_record(uint64_t id) {
    uint32_t lo = (uint32_t)id;
    if (lo == 0 || P.cln_per_chunk == 0) return NULL;
    uint32_t index = lo - 1, ci = index / P.cln_per_chunk;
    if (ci >= ld_acquire(&P.cln_nchunks)) return NULL;
    char *c = ld_acquire(&cln_chunks[ci]);
    return (sp_cln *)(c + CHUNK_HDR + (size_t)(index % P.cln_per_chunk) * P.cln.size);
}

rt_cleanup rt_add_cleanup(void *obj, void (*fn)(void *arg), void *arg) {
    rt_p *p = need_p("rt_add_cleanup");
    if (!obj) rt__misuse("rt_add_cleanup", "obj is NULL; pass the heap object whose death should run the cleanup");
    if (!fn) rt__misuse("rt_add_cleanup", "fn is NULL; pass the function to run once obj is unreachable");
    target t = resolve("rt_add_cleanup", obj);
    uintptr_t a = (uintptr_t)arg;
    if (tiny_span(t.s) ? a == t.key : (a >= t.slot && a < t.slot + t.s->hot.elemsize))
        rt__misuse("rt_add_cleanup", "arg %p points into the object %p itself, so the object would stay reachable "
                   "and the cleanup would never run; pass something that does not reference the object", arg, obj);
    cleaner_start();
    sp_cln *r = (sp_cln *)rec_alloc(SP_CLEANUP, t.offset);
    r->fn = fn;
    r->arg = arg;
    st_relaxed(&r->obj, t.key);
    uint64_t old = ld_relaxed(&r->id), gen = (old >> 32) + 1;
    if ((uint32_t)gen == 0) gen = 1;
    uint64_t id = (gen << 32) | (uint32_t)old;
    st_relaxed(&r->id, id);
    lock_swept(t.s);
    table_insert(t.s, &r->h);
    if (marking()) rt__shade(&p->gcw, a, false, 0, 0);
    pthread_mutex_unlock(&t.s->special_lock);
    __asm__ volatile("" : : "r"(obj) : "memory");
    return id;
}

void rt_cleanup_stop(rt_cleanup c) {
    need_p("rt_cleanup_stop");
    sp_cln *r = cln_record(c);
    if (!r || ld_relaxed(&r->id) != c) return;   /* already ran or stopped (or not a cleanup) */
    uintptr_t obj = ld_relaxed(&r->obj);
    rt_span *s = rt__span_of_heap(obj);
    if (!s) return;
    rt__span_ensure_swept(s);
    if (rt__span_of_heap(obj) != s) return;      /* freed by that sweep: the cleanup is queued */
    pthread_mutex_lock(&s->special_lock);
    sp_table *t = span_table(s);
    bool found = false;
    uint64_t k = (uint64_t)(obj - s->hot.base) << 8 | SP_CLEANUP;
    for (uint32_t i = lower_bound(t, k); t && i < t->n && t->e[i].key == k; i++) {
        if (t->e[i].r == &r->h && ld_relaxed(&r->id) == c) {
            table_remove_at(s, i);
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&s->special_lock);
    if (found) rec_free(&r->h);
}

/* ---- finalizers ----------------------------------------------------------------------- */

int rt_set_finalizer(void *obj, void (*fn)(void *obj, void *arg), void *arg) {
    rt_p *p = need_p("rt_set_finalizer");
    if (!obj) rt__misuse("rt_set_finalizer", "obj is NULL; pass the start of a heap object");
    target t = resolve("rt_set_finalizer", obj);
    if ((uintptr_t)obj != t.key)
        rt__misuse("rt_set_finalizer", "%p points inside the object that starts at %p; pass the pointer rt_alloc "
                   "returned", obj, (void *)t.key);
    if (!fn) {   /* remove, like Go's SetFinalizer(p, nil) */
        lock_swept(t.s);
        sp_table *tb = span_table(t.s);
        uint64_t k = (uint64_t)t.offset << 8 | SP_FINALIZER;
        uint32_t i = lower_bound(tb, k);
        sp_rec *r = NULL;
        if (tb && i < tb->n && tb->e[i].key == k) {
            r = tb->e[i].r;
            table_remove_at(t.s, i);
        }
        pthread_mutex_unlock(&t.s->special_lock);
        if (r) rec_free(r);
        return RT_OK;
    }
    cleaner_start();
    sp_fin *r = (sp_fin *)rec_alloc(SP_FINALIZER, t.offset);
    r->fn = fn;
    r->arg = arg;
    lock_swept(t.s);
    if (table_find(t.s, t.offset, SP_FINALIZER)) {
        pthread_mutex_unlock(&t.s->special_lock);
        rec_free(&r->h);
        rt__misuse("rt_set_finalizer", "object %p already has a finalizer; an object has at most one (remove it "
                   "with rt_set_finalizer(obj, NULL, NULL) first, or use rt_add_cleanup, which allows several)", obj);
    }
    table_insert(t.s, &r->h);
    if (marking()) {
        /* Mirror the mark root job for a record it may have passed. */
        rt_visitor v = { .w = &p->gcw };
        rt__object_edges(t.slot, &v);
        rt__shade(&p->gcw, (uintptr_t)arg, false, 0, 0);
    }
    pthread_mutex_unlock(&t.s->special_lock);
    return RT_OK;
}

/* ---- sweeping ----------------------------------------------------------------------------- */

/* The sweeper owns s (sweepgen h-1); its mark bits are final. */
void rt__specials_sweep(rt_span *s) {
    pthread_mutex_lock(&s->special_lock);
    sp_table *t = span_table(s);
    if (!t) { pthread_mutex_unlock(&s->special_lock); return; }
    uint32_t n = t->n, out = 0;
    for (uint32_t i = 0; i < n;) {
        uintptr_t idx = rt__span_obj_index(s, s->hot.base + (uintptr_t)(t->e[i].key >> 8));
        uint32_t j = i;
        bool fin = false;
        while (j < n && rt__span_obj_index(s, s->hot.base + (uintptr_t)(t->e[j].key >> 8)) == idx) {
            fin |= (t->e[j].key & 0xff) == SP_FINALIZER;
            j++;
        }
        if (rt__span_is_marked(s, idx)) {
            while (i < j) t->e[out++] = t->e[i++];
            continue;
        }
        if (fin) rt__span_set_mark(s, idx);   /* resurrect it for its finalizer */
        /* Weak handles first: the cleanup thread may run what is queued
           at once, and must find them cleared (Go's order). */
        for (uint32_t k = i; k < j; k++) {
            sp_rec *r = t->e[k].r;
            if (r->kind != SP_WEAK) continue;
            st_release(&((sp_weak *)r)->handle->addr, 0);
            t->e[k].r = NULL;
            rec_free(r);
        }
        for (; i < j; i++) {
            sp_rec *r = t->e[i].r;
            if (!r) continue;
            if (r->kind == SP_FINALIZER) {
                sp_fin *f = (sp_fin *)r;
                q_push(SP_FINALIZER, (void *)f->fn, (void *)(s->hot.base + r->offset), f->arg);
                rec_free(r);
            } else if (r->kind == SP_CLEANUP) {
                if (fin) { t->e[out++] = t->e[i]; continue; }   /* runs once the object is really dead */
                sp_cln *c = (sp_cln *)r;
                q_push(SP_CLEANUP, (void *)c->fn, NULL, c->arg);
                rec_free(r);
            }
        }
    }
    t->n = out;
    if (out == 0) table_drop(s, t);
    pthread_mutex_unlock(&s->special_lock);
}

/* ---- roots ------------------------------------------------------------------------------------- */

static uint64_t pool_inuse(fixpool *p) {
    pthread_mutex_lock(&p->lock);
    uint64_t n = p->inuse;
    pthread_mutex_unlock(&p->lock);
    return n;
}

/* Every span with records, once.  The list is copied under its lock and
   walked without it (fn takes each span's special_lock, which comes
   first in the lock order).  The copy stays good: spans leave the list
   when the sweep or a removal frees their table, and a span is freed
   only by the sweep, which never runs during a mark; a span whose table
   went away meanwhile is skipped. */
static void for_each_special_span(void (*fn)(rt_span *, void *), void *ctx) {
    rt_span *local[64], **snap = local;
    pthread_mutex_lock(&SL.lock);
    size_t n = SL.n;
    if (n > sizeof local / sizeof local[0] && !(snap = malloc(n * sizeof *snap)))
        rt__fatal("specials: out of memory listing %zu spans with records", n);
    if (n) memcpy(snap, SL.v, n * sizeof *snap);
    pthread_mutex_unlock(&SL.lock);
    for (size_t k = 0; k < n; k++) {
        rt_span *s = snap[k];
        if (ld_acquire(&s->state) == RT_SPAN_INUSE && ld_relaxed(&s->specials)) fn(s, ctx);
    }
    if (snap != local) free(snap);
}

static void mark_span_roots(rt_span *s, void *ctx) {
    rt_gcwork *w = ctx;
    pthread_mutex_lock(&s->special_lock);
    sp_table *t = span_table(s);
    for (uint32_t i = 0; t && i < t->n; i++) {
        sp_rec *r = t->e[i].r;
        switch (r->kind) {
        case SP_WEAK:
            rt__shade(w, (uintptr_t)((sp_weak *)r)->handle, true, 0, 0);
            break;
        case SP_CLEANUP:
            rt__shade(w, (uintptr_t)((sp_cln *)r)->arg, false, 0, 0);
            break;
        case SP_FINALIZER: {
            rt_visitor v = { .w = w };
            rt__object_edges(s->hot.base + rt__span_obj_index(s, s->hot.base + r->offset) * s->hot.elemsize, &v);
            rt__shade(w, (uintptr_t)((sp_fin *)r)->arg, false, 0, 0);
            break;
        }
        }
    }
    pthread_mutex_unlock(&s->special_lock);
}

static void q_shade_locked(rt_gcwork *w, const qent *e) {
    if (e->kind == SP_FINALIZER) rt__shade(w, (uintptr_t)e->obj, false, 0, 0);
    rt__shade(w, (uintptr_t)e->arg, false, 0, 0);
}

void rt__specials_mark_roots(rt_gcwork *w) {
    for_each_special_span(mark_span_roots, w);
    pthread_mutex_lock(&Q.lock);
    for (qblock *b = Q.head; b; b = b->next)
        for (uint32_t i = b->head; i < b->tail; i++) q_shade_locked(w, &b->e[i]);
    if (Q.has_current) q_shade_locked(w, &Q.current);
    pthread_mutex_unlock(&Q.lock);
}

/* Checkmark: the same roots through its visitor (precise, so an unmarked
   object they reach is reported). */
static void visit_span_roots(rt_span *s, void *ctx) {
    rt_visitor *v = ctx;
    pthread_mutex_lock(&s->special_lock);
    sp_table *t = span_table(s);
    for (uint32_t i = 0; t && i < t->n; i++) {
        sp_rec *r = t->e[i].r;
        v->obj = 0;
        switch (r->kind) {
        case SP_WEAK:
            v->root_name = "weak handle record";
            rt_visit(v, ((sp_weak *)r)->handle);
            break;
        case SP_CLEANUP:
            v->root_name = "cleanup's arg";
            rt_visit(v, ((sp_cln *)r)->arg);
            break;
        case SP_FINALIZER:
            v->root_name = "finalizer's object's contents";
            rt__object_edges(s->hot.base + rt__span_obj_index(s, s->hot.base + r->offset) * s->hot.elemsize, v);
            v->obj = 0;
            v->root_name = "finalizer's arg";
            rt_visit(v, ((sp_fin *)r)->arg);
            break;
        }
    }
    pthread_mutex_unlock(&s->special_lock);
}

static void q_visit_locked(rt_visitor *v, const qent *e) {
    v->obj = 0;
    v->root_name = "queued finalizer or cleanup";
    if (e->kind == SP_FINALIZER) rt_visit(v, e->obj);
    rt_visit(v, e->arg);
}

void rt__specials_visit_roots(rt_visitor *v) {
    for_each_special_span(visit_span_roots, v);
    pthread_mutex_lock(&Q.lock);
    for (qblock *b = Q.head; b; b = b->next)
        for (uint32_t i = b->head; i < b->tail; i++) q_visit_locked(v, &b->e[i]);
    if (Q.has_current) q_visit_locked(v, &Q.current);
    pthread_mutex_unlock(&Q.lock);
}

/* ---- RTDEBUG=checkfinalizers ---------------------------------------------------------------------
 * At mark termination, for each cleanup and finalizer, a separate walk
 * whose only roots are what that record keeps alive (a cleanup: its arg; a
 * finalizer: its arg, then its object's contents).  If the walk reaches the
 * object, the object can never become unreachable: reported, and the run
 * stops after the reports (Go's checkFinalizersAndCleanups). */

static struct {
    uintptr_t *set;
    size_t     cap, n;
    uintptr_t *stack;
    size_t     sp, scap;
    uintptr_t  target;
    bool       hit;
    int        reports;
} CF;

static bool cf_add(uintptr_t x) {
    if ((CF.n + 1) * 2 > CF.cap) {
        uintptr_t *old = CF.set;
        size_t oc = CF.cap;
        CF.cap = CF.cap ? CF.cap * 2 : 1024;
        CF.set = calloc(CF.cap, sizeof *CF.set);
        if (!CF.set) rt__fatal("checkfinalizers: out of memory");
        CF.n = 0;
        for (size_t i = 0; i < oc; i++) if (old[i]) cf_add(old[i]);
        free(old);
    }
    size_t h = (x >> 4) * 0x9E3779B97F4A7C15ull & (CF.cap - 1);
    while (CF.set[h]) {
        if (CF.set[h] == x) return false;
        h = (h + 1) & (CF.cap - 1);
    }
    CF.set[h] = x;
    CF.n++;
    return true;
}

static void cf_edge(rt_visitor *v, uintptr_t p, bool precise) {
    (void)v;
    (void)precise;
    rt_span *s;
    uintptr_t idx;
    uintptr_t base = rt__find_object(p, &s, &idx);
    if (!base || !slot_allocated(s, idx)) return;
    if (base == CF.target) { CF.hit = true; return; }
    if (!cf_add(base)) return;
    if (CF.sp == CF.scap) {
        CF.scap = CF.scap ? CF.scap * 2 : 1024;
        CF.stack = realloc(CF.stack, CF.scap * sizeof *CF.stack);
        if (!CF.stack) rt__fatal("checkfinalizers: out of memory");
    }
    CF.stack[CF.sp++] = base;
}

static void cf_reset(uintptr_t target) {
    if (CF.set) memset(CF.set, 0, CF.cap * sizeof *CF.set);
    CF.n = 0;
    CF.sp = 0;
    CF.target = target;
    CF.hit = false;
}

static bool cf_walk(void) {
    while (CF.sp && !CF.hit) {
        rt_visitor v = { .edge = cf_edge };
        rt__object_edges(CF.stack[--CF.sp], &v);
    }
    return CF.hit;
}

static bool cf_from_pointer(uintptr_t target, uintptr_t p) {
    cf_reset(target);
    rt_visitor v = { .edge = cf_edge };
    if (p >= 4096) cf_edge(&v, p, true);
    return cf_walk();
}

static bool cf_from_contents(uintptr_t target) {
    cf_reset(target);
    rt_visitor v = { .edge = cf_edge };
    rt__object_edges(target, &v);
    return cf_walk();
}

static const char *cf_type_name(rt_span *s, uintptr_t slot) {
    if (rt__spanclass_noscan(s->hot.spanclass)) return "noscan";
    uintptr_t data;
    const rt_type *t = rt__object_type(s, slot, &data);
    return t ? t->name : "layout (heap bits)";
}

static void cf_span(rt_span *s, void *ctx) {
    (void)ctx;
    pthread_mutex_lock(&s->special_lock);
    sp_table *t = span_table(s);
    for (uint32_t i = 0; t && i < t->n; i++) {
        sp_rec *r = t->e[i].r;
        if (r->kind == SP_WEAK) continue;
        uintptr_t slot = s->hot.base + rt__span_obj_index(s, s->hot.base + r->offset) * s->hot.elemsize;
        void *key = (void *)(s->hot.base + r->offset);
        const char *what = NULL;
        void *arg, *fn;
        if (r->kind == SP_CLEANUP) {
            arg = ((sp_cln *)r)->arg;
            fn = (void *)((sp_cln *)r)->fn;
            if (cf_from_pointer(slot, (uintptr_t)arg)) what = "its arg reaches the object";
        } else {
            arg = ((sp_fin *)r)->arg;
            fn = (void *)((sp_fin *)r)->fn;
            if (cf_from_pointer(slot, (uintptr_t)arg)) what = "its arg reaches the object";
            else if (cf_from_contents(slot)) what = "the object reaches itself through its own fields (a cycle)";
        }
        if (!what) continue;
        if (++CF.reports <= 50)
            fprintf(stderr, "rtgc: checkfinalizers: the %s (fn %p, arg %p) on object %p (type %s, %lu bytes): %s, "
                    "so the object never becomes unreachable and the %s never runs; %s\n",
                    r->kind == SP_CLEANUP ? "cleanup" : "finalizer", fn, arg, key, cf_type_name(s, slot),
                    (unsigned long)s->hot.elemsize, what, r->kind == SP_CLEANUP ? "cleanup" : "finalizer",
                    r->kind == SP_CLEANUP ? "pass an arg that does not reference the object"
                                          : "break the cycle, or use a cleanup whose arg does not reference the object");
    }
    pthread_mutex_unlock(&s->special_lock);
}

void rt__specials_check_finalizers(void) {
    CF.reports = 0;
    for_each_special_span(cf_span, NULL);
    free(CF.set);
    free(CF.stack);
    int reports = CF.reports;
    memset(&CF, 0, sizeof CF);
    if (reports)
        rt__fatal("checkfinalizers: %d cleanup%s or finalizer%s keep their objects alive (reported above)",
                  reports, reports == 1 ? "" : "s", reports == 1 ? "" : "s");
}

/* ---- the cleanup thread ---------------------------------------------------------------------------- */

static void run_entry(const qent *e) {
    if (e->kind == SP_FINALIZER) ((void (*)(void *, void *))e->fn)(e->obj, e->arg);
    else ((void (*)(void *))e->fn)(e->arg);
}

static void *cleaner_main(void *unused) {
    (void)unused;
    pthread_setname_np(pthread_self(), "rtgc-cleanup");
    rt_thread_attach();
    /* Not one of the embedder's threads: rt_shutdown must not wait for it. */
    pthread_mutex_lock(&rt__g.world_lock);
    rt__g.nthreads--;
    pthread_mutex_unlock(&rt__g.world_lock);
    for (;;) {
        rt_enter_blocking();
        pthread_mutex_lock(&Q.lock);
        while (!Q.quit && q_empty_locked()) pthread_cond_wait(&Q.work, &Q.lock);
        bool quit = Q.quit;
        pthread_mutex_unlock(&Q.lock);
        rt_exit_blocking();
        if (quit) break;
        for (;;) {
            volatile qent e;
            pthread_mutex_lock(&Q.lock);
            qent got;
            if (Q.quit || !q_pop_locked(&got)) {
                pthread_mutex_unlock(&Q.lock);
                break;
            }
            Q.current = got;
            Q.has_current = true;
            if (marking()) q_shade_locked(&((rt_p *)rt__tls_mcache)->gcw, &got);
            pthread_mutex_unlock(&Q.lock);
            e = got;
            memset(&got, 0, sizeof got);
            run_entry((const qent *)&e);
            e.obj = e.arg = NULL;
            pthread_mutex_lock(&Q.lock);
            Q.has_current = false;
            memset(&Q.current, 0, sizeof Q.current);
            Q.ran++;
            pthread_cond_broadcast(&Q.idle);
            pthread_mutex_unlock(&Q.lock);
            rt_safepoint();
        }
    }
    pthread_mutex_lock(&rt__g.world_lock);
    rt__g.nthreads++;
    pthread_mutex_unlock(&rt__g.world_lock);
    rt_thread_detach();
    return NULL;
}

static void cleaner_start(void) {
    if (RT_LIKELY(ld_acquire(&Q.started))) return;
    pthread_mutex_lock(&Q.lock);
    if (!Q.started) {
        if (pthread_create(&Q.thread, NULL, cleaner_main, NULL) != 0) rt__fatal("cannot create the cleanup thread");
        st_release(&Q.started, true);
    }
    pthread_mutex_unlock(&Q.lock);
}

void rt__cleanups_wait(void) {
    need_p("rt__cleanups_wait");
    rt_enter_blocking();
    pthread_mutex_lock(&Q.lock);
    while (Q.started && !Q.quit && (!q_empty_locked() || Q.has_current)) pthread_cond_wait(&Q.idle, &Q.lock);
    RT_ASSERT(!Q.started || Q.quit || Q.ran == Q.queued);
    pthread_mutex_unlock(&Q.lock);
    rt_exit_blocking();
}

void rt__specials_stats(rt_specials_stats *out) {
    out->weak = pool_inuse(&P.weak);
    out->finalizers = pool_inuse(&P.fin);
    out->cleanups = pool_inuse(&P.cln);
    pthread_mutex_lock(&Q.lock);
    out->queued = Q.queued;
    out->ran = Q.ran;
    pthread_mutex_unlock(&Q.lock);
}

/* ---- lifecycle -------------------------------------------------------------------------------------- */

void rt__specials_init(void) {
    memset(&P, 0, sizeof P);
    pool_init(&P.weak, sizeof(sp_weak));
    pool_init(&P.fin, sizeof(sp_fin));
    pool_init(&P.cln, sizeof(sp_cln));
    pool_init(&P.qblk, sizeof(qblock));
    for (unsigned i = 0; i < NTABLE_POOLS; i++) pool_init(&P.table[i], (size_t)1 << (MIN_TABLE_SHIFT + i));
    pthread_mutex_init(&P.big_lock, NULL);
    P.cln_per_chunk = (uint32_t)((CHUNK_BYTES - CHUNK_HDR) / P.cln.size);
    memset(&Q, 0, sizeof Q);
    pthread_mutex_init(&Q.lock, NULL);
    pthread_cond_init(&Q.work, NULL);
    pthread_cond_init(&Q.idle, NULL);
}

/* First thing in rt__gc_shutdown, while the collector still runs (a
   cleanup may be allocating).  Entries still queued are dropped. */
void rt__specials_stop(void) {
    pthread_mutex_lock(&Q.lock);
    bool started = Q.started;
    Q.quit = true;
    pthread_cond_broadcast(&Q.work);
    pthread_cond_broadcast(&Q.idle);
    pthread_mutex_unlock(&Q.lock);
    if (started) pthread_join(Q.thread, NULL);
    Q.started = false;
}

/* Last thing in rt__gc_shutdown: every record and table goes with the heap. */
void rt__specials_free_all(void) {
    pool_destroy(&P.weak);
    pool_destroy(&P.fin);
    pool_destroy(&P.cln);
    pool_destroy(&P.qblk);
    for (unsigned i = 0; i < NTABLE_POOLS; i++) pool_destroy(&P.table[i]);
    while (P.big) {
        big_table *b = P.big;
        P.big = b->next;
        rt__os_free(b, b->bytes);
    }
    memset(cln_chunks, 0, P.cln_nchunks * sizeof cln_chunks[0]);
    P.cln_nchunks = 0;
    Q.head = Q.tail = NULL;
    free(SL.v);
    SL.v = NULL;
    SL.n = SL.cap = 0;
}
