/* gc/roots.c -- root registration and root scanning.
 *
 * Owns: the registry of embedder roots (single slots, precise or ambiguous
 * ranges, scanner callbacks) and scanning attached threads' stacks and
 * saved registers conservatively.  Roots are written without barriers, so
 * they are read while the world is stopped (at mark start).  A thread's
 * stack is scanned from the stack pointer it recorded when it stopped or
 * entered a blocking region (runtime/proc.c) up to the top of its stack.
 *
 * Reading is not shading.  Shading a root costs cache misses on the span,
 * the mark bits and the object (4096 list heads took 57-85 us, more than
 * the rest of the mark-start pause); copying its value costs none.  So a
 * concurrent cycle only copies the candidate values in the pause
 * (rt__roots_snapshot) and the collector shades the copy right after the
 * world restarts (rt__roots_shade_snapshot).  This is the same mark: an
 * object cannot be freed before the sweep that follows this mark, and the
 * barrier, on before the restart, shades whatever the heap loses
 * meanwhile, so everything reachable from the copied values at mark start
 * is still reached (the snapshot-at-the-beginning invariant of gc/mark.c).
 * Go gets the same effect for globals by scanning them concurrently behind
 * its write barrier. */
#include "gc.h"

#include <stdlib.h>

enum { ROOT_SLOT, ROOT_RANGE, ROOT_SCANNER };

struct rt_root {
    int        what;
    int        kind;             /* RT_ROOT_PRECISE or RT_ROOT_AMBIGUOUS */
    uintptr_t  base;
    size_t     bytes;
    void     (*scan)(rt_visitor *, void *);
    void      *ctx;
    struct rt_root *next, *prev;
};

static pthread_mutex_t roots_lock = PTHREAD_MUTEX_INITIALIZER;
static rt_root *roots;
/* Values copied at mark start, shaded after the restart.  The buffer keeps
   its size from cycle to cycle, so it rarely grows inside a pause. */
static struct {
    uintptr_t *v;
    size_t     n, cap;
} snap;
uint64_t rt__last_stack_scan, rt__last_globals_scan;

static rt_root *root_new(int what, const char *call) {
    if (!rt__g.initialized) rt__misuse(call, "rtgc is not initialized; call rt_init() first");
    rt_root *r = calloc(1, sizeof *r);
    if (!r) rt__fatal("out of memory registering a root");
    r->what = what;
    pthread_mutex_lock(&roots_lock);
    r->next = roots;
    if (roots) roots->prev = r;
    roots = r;
    pthread_mutex_unlock(&roots_lock);
    return r;
}

rt_root *rt_root_add(void *slot) {
    if (!slot || (uintptr_t)slot % sizeof(void *))
        rt__misuse("rt_root_add", "slot %p is not an aligned pointer slot; pass the address of a void* variable", slot);
    rt_root *r = root_new(ROOT_SLOT, "rt_root_add");
    r->base = (uintptr_t)slot;
    r->bytes = sizeof(void *);
    r->kind = RT_ROOT_PRECISE;
    return r;
}

rt_root *rt_root_add_range(void *base, size_t bytes, int kind) {
    if (kind != RT_ROOT_PRECISE && kind != RT_ROOT_AMBIGUOUS)
        rt__misuse("rt_root_add_range", "kind %d is neither RT_ROOT_PRECISE nor RT_ROOT_AMBIGUOUS", kind);
    if (!base && bytes) rt__misuse("rt_root_add_range", "base is NULL with %zu bytes; pass the range's address", bytes);
    if (kind == RT_ROOT_PRECISE && ((uintptr_t)base % sizeof(void *) || bytes % sizeof(void *)))
        rt__misuse("rt_root_add_range", "a precise range must be pointer-aligned and a whole number of pointers "
                   "(base %p, %zu bytes)", base, bytes);
    rt_root *r = root_new(ROOT_RANGE, "rt_root_add_range");
    r->base = (uintptr_t)base;
    r->bytes = bytes;
    r->kind = kind;
    return r;
}

rt_root *rt_root_add_scanner(void (*scan)(rt_visitor *v, void *ctx), void *ctx) {
    if (!scan) rt__misuse("rt_root_add_scanner", "scan function is NULL; pass a function that calls rt_visit per root");
    rt_root *r = root_new(ROOT_SCANNER, "rt_root_add_scanner");
    r->scan = scan;
    r->ctx = ctx;
    return r;
}

void rt_root_remove(rt_root *root) {
    if (!root) rt__misuse("rt_root_remove", "root is NULL; pass what rt_root_add* returned");
    pthread_mutex_lock(&roots_lock);
    rt_root *r = roots;
    while (r && r != root) r = r->next;
    if (!r) {
        pthread_mutex_unlock(&roots_lock);
        rt__misuse("rt_root_remove", "%p is not a registered root (removed twice?); remove each root once", (void *)root);
    }
    if (r->prev) r->prev->next = r->next; else roots = r->next;
    if (r->next) r->next->prev = r->prev;
    pthread_mutex_unlock(&roots_lock);
    free(r);
}

void rt__roots_free_all(void) {
    pthread_mutex_lock(&roots_lock);
    while (roots) { rt_root *n = roots->next; free(roots); roots = n; }
    pthread_mutex_unlock(&roots_lock);
    free(snap.v);
    snap.v = NULL;
    snap.n = snap.cap = 0;
}

typedef void range_fn(rt_visitor *v, uintptr_t lo, uintptr_t hi, bool precise);

/* Every registered root through v (ranges through range); returns the
   bytes of root ranges. */
static uint64_t visit_roots(rt_visitor *v, range_fn *range) {
    uint64_t bytes = 0;
    pthread_mutex_lock(&roots_lock);
    for (rt_root *r = roots; r; r = r->next) {
        v->obj = 0;
        switch (r->what) {
        case ROOT_SLOT:
        case ROOT_RANGE:
            v->root_name = r->what == ROOT_SLOT ? "root slot" : "root range";
            range(v, r->base, r->base + r->bytes, r->kind == RT_ROOT_PRECISE);
            bytes += r->bytes;
            break;
        case ROOT_SCANNER:
            v->root_name = "root scanner";
            r->scan(v, r->ctx);
            break;
        }
    }
    pthread_mutex_unlock(&roots_lock);
    return bytes;
}

static uint64_t visit_stacks(rt_visitor *v, range_fn *range) {
    uint64_t bytes = 0;
    if (!rt__cfg.scan_thread_stacks) return 0;
    for (rt_thread *t = rt__g.threads; t; t = t->next) {
        uintptr_t lo = t->saved_sp, hi = t->stack_hi;
        if (!lo || lo < t->stack_lo || lo >= hi) {
            if (t->stack_hi == 0) continue;   /* bounds unknown */
            rt__fatal("thread %lu saved a stack pointer %#lx outside its stack [%#lx, %#lx)",
                      (unsigned long)t->tid, (unsigned long)lo, (unsigned long)t->stack_lo, (unsigned long)hi);
        }
        v->obj = 0;
        v->root_name = "thread stack";
        range(v, lo, hi, false);
        v->root_name = "thread registers";
        range(v, (uintptr_t)t->saved_regs, (uintptr_t)(t->saved_regs + RT__SAVED_REGS), false);
        bytes += hi - lo;
    }
    return bytes;
}

/* Room for n more values; false if the buffer cannot grow. */
static bool snap_reserve(size_t n) {
    if (snap.cap - snap.n >= n) return true;
    size_t cap = snap.cap ? snap.cap : 4096;
    while (cap - snap.n < n) cap *= 2;
    uintptr_t *nv = realloc(snap.v, cap * sizeof *nv);
    if (!nv) return false;
    snap.v = nv;
    snap.cap = cap;
    return true;
}

/* A root scanner's rt_visit calls. */
static void snapshot_value(rt_visitor *v, uintptr_t val, bool precise) {
    if (snap_reserve(1)) snap.v[snap.n++] = val;
    else rt__shade(v->w, val, precise, 0, 0);   /* no room: shade it in the pause */
}

/* A range, copied word by word: stacks hold sanitizer redzones and
   blocking threads change theirs as we read (as scan_words in gc/mark.c). */
__attribute__((no_sanitize("address", "thread")))
static void snapshot_range(rt_visitor *v, uintptr_t lo, uintptr_t hi, bool precise) {
    lo = (lo + 7) & ~(uintptr_t)7;
    if (hi < lo + 8) return;
    size_t n = (hi - lo) / 8;
    if (!snap_reserve(n)) { rt__scan_range(v->w, lo, hi, precise, 0); return; }   /* no room: scan it in the pause */
    for (size_t i = 0; i < n; i++) snap.v[snap.n + i] = ((const volatile uintptr_t *)lo)[i];
    snap.n += n;
    v->w->scan_work += hi - lo;
}

void rt__roots_snapshot(rt_gcwork *w) {
    rt_visitor v = { .w = w, .edge = snapshot_value };
    rt__last_globals_scan = visit_roots(&v, snapshot_range);
    rt__last_stack_scan = visit_stacks(&v, snapshot_range);
}

/* Ambiguous, since the value's slot is gone: RTDEBUG=invalidptr=1 cycles
   scan in the pause instead (gc/gc.c), so its reports still name the slot. */
void rt__roots_shade_snapshot(rt_gcwork *w) {
    for (size_t i = 0; i < snap.n; i++)
        if (snap.v[i] >= 4096) rt__shade(w, snap.v[i], false, 0, 0);
    snap.n = 0;
}

void rt__roots_scan(rt_gcwork *w) {
    rt_visitor v = { .w = w };
    rt__last_globals_scan = visit_roots(&v, rt__visit_range);
}

void rt__roots_visit(rt_visitor *v) {
    visit_roots(v, rt__visit_range);
    visit_stacks(v, rt__visit_range);
}

/* Every attached thread is stopped or blocking: scan what it had. */
void rt__stacks_scan(rt_gcwork *w) {
    rt_visitor v = { .w = w };
    rt__last_stack_scan = visit_stacks(&v, rt__visit_range);
}
