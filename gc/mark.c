/* gc/mark.c -- tri-color marking.
 *
 * The algorithm.  Objects are white (mark bit clear), grey (mark bit set
 * and queued in some marker's work buffer), or black (mark bit set and
 * scanned).  Marking starts by shading every root: registered roots and,
 * unless disabled, every attached thread's stack and saved registers
 * (gc/roots.c).  Each marker then repeatedly takes a grey object, scans
 * its pointer slots, and shades what they point to (rt__shade: set the
 * mark bit with an atomic OR; the marker that set it queues the object, so
 * an object is queued at most once per cycle).  Pointer-free objects turn
 * black at once.  Objects larger than 128 KiB are queued as 128 KiB oblets
 * so one huge array spreads over all markers.
 *
 * The tri-color invariant: no black object points to a white object.  It
 * holds here because the world is stopped for the whole mark (mutators
 * cannot store), and at the end no grey object remains (gc/work.c's
 * termination: every marker idle and the global list empty), so every
 * object reachable from a root is black and every white object is garbage.
 *
 * Where pointers are found in an object (runtime/malloc.c writes them):
 *   heap bits (small layout objects), the type header (traced: the
 *   embedder's trace function; layout: the mask tiled over the array;
 *   conservative: every word), the span's large_type (large objects).
 * A candidate pointer is trusted only after the arena index, the span's
 * state and bounds, and the slot's allocation bit agree (any bit pattern
 * is safe).  A precise slot pointing into a free slot is a bug in the
 * embedder; with RTDEBUG=invalidptr=1 it stops the run with a report. */
#include "gc.h"

#include <stdio.h>
#include <stdlib.h>

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

void rt__shade(rt_gcwork *w, uintptr_t p, bool precise, uintptr_t from_obj, uintptr_t from_slot) {
    rt_span *s = rt__span_of_heap(p);
    if (!s || p >= s->limit) return;
    uintptr_t idx = rt__span_obj_index(s, p);
    if (RT_UNLIKELY(rt__span_is_free(s, idx))) {
        if (precise && rt__cfg.invalidptr) report_invalid(p, s, from_obj, from_slot);
        return;
    }
    if (!rt__span_set_mark(s, idx)) return;
    uintptr_t base = s->hot.base + idx * s->hot.elemsize;
    w->objects_marked++;
    w->bytes_marked += s->hot.elemsize;
    if (rt__spanclass_noscan(s->hot.spanclass)) return;   /* black at once */
    rt__gcwork_put(w, base);
}

/* Stacks are read word by word, redzones included: the sanitizer would
   report the reads of its own poisoned bytes, which are harmless here. */
__attribute__((no_sanitize("address")))
void rt__scan_range(rt_gcwork *w, uintptr_t lo, uintptr_t hi, bool precise, uintptr_t from_obj) {
    lo = (lo + 7) & ~(uintptr_t)7;
    for (uintptr_t a = lo; a + 8 <= hi; a += 8) {
        uintptr_t v = *(const uintptr_t *)a;
        if (v >= 4096) rt__shade(w, v, precise, from_obj, a);
    }
    w->scan_work += hi > lo ? hi - lo : 0;
}

void rt_visit(rt_visitor *v, void *ptr) {
    if ((uintptr_t)ptr >= 4096) rt__shade(v->w, (uintptr_t)ptr, true, v->obj, v->obj);
}

void rt_visit_ambiguous(rt_visitor *v, uintptr_t word) {
    if (word >= 4096) rt__shade(v->w, word, false, v->obj, v->obj);
}

/* Scan the words of [data, data+bytes) whose bit is set in the type's mask
   tiled every t->size bytes (arrays of layout elements). */
static void scan_layout(rt_gcwork *w, uintptr_t obj, uintptr_t data, uintptr_t lo, uintptr_t hi, const rt_type *t) {
    size_t esize = t->size;
    uintptr_t e = data + (lo - data) / esize * esize;   /* first element touching lo */
    for (; e < hi; e += esize) {
        for (size_t wd = 0; wd < t->ptr_words; wd++) {
            if (!(t->mask[wd / 64] >> (wd % 64) & 1)) continue;
            uintptr_t a = e + wd * 8;
            if (a < lo || a + 8 > hi) continue;
            uintptr_t v = *(const uintptr_t *)a;
            if (v >= 4096) rt__shade(w, v, true, obj, a);
        }
    }
    w->scan_work += hi - lo;
}

static void scan_heapbits(rt_gcwork *w, rt_span *s, uintptr_t obj) {
    const uint64_t *hb = rt__span_heapbits(s);
    uintptr_t wi = (obj - s->hot.base) / 8, nw = s->hot.elemsize / 8;
    for (uintptr_t k = 0; k < nw; k++) {
        uintptr_t b = wi + k;
        if (!(hb[b / 64] >> (b % 64) & 1)) continue;
        uintptr_t a = obj + k * 8;
        uintptr_t v = *(const uintptr_t *)a;
        if (v >= 4096 && v - obj >= s->hot.elemsize) rt__shade(w, v, true, obj, a);
    }
    w->scan_work += s->hot.elemsize;
}

/* Scan one work item: a small object, or a large object / one of its oblets. */
static void scan_item(rt_gcwork *w, uintptr_t item) {
    rt_span *s = rt__span_of_heap(item);
    RT_ASSERT(s != NULL);
    uintptr_t idx = rt__span_obj_index(s, item);
    uintptr_t base = s->hot.base + idx * s->hot.elemsize;
    uintptr_t end = base + s->hot.elemsize;
    uintptr_t data;
    if (rt__span_has_heapbits(s) && !(s->header_bits[idx / 8] >> (idx % 8) & 1)) {
        scan_heapbits(w, s, base);
        return;
    }
    const rt_type *t = rt__object_type(s, base, &data);
    if (!t) return;   /* large object not typed yet, or pointer-free */
    uintptr_t lo = item == base ? data : item, hi = end;
    if (t->kind != RT__KIND_TRACED && end - data > RT_OBLET_BYTES) {
        if (item == base)   /* queue the other oblets; they are already black */
            for (uintptr_t o = data + RT_OBLET_BYTES; o < end; o += RT_OBLET_BYTES) rt__gcwork_put(w, o);
        if (hi - lo > RT_OBLET_BYTES) hi = lo + RT_OBLET_BYTES;
    }
    switch (t->kind) {
    case RT__KIND_LAYOUT:
        scan_layout(w, data, data, lo, hi, t);
        break;
    case RT__KIND_CONSERVATIVE:
        rt__scan_range(w, lo, hi, false, data);
        break;
    case RT__KIND_TRACED: {
        rt_visitor v = { .w = w, .obj = data, .type = t };
        t->trace((void *)data, end - data, &v);
        w->scan_work += end - data;
        break;
    }
    }
}

void rt__drain(rt_gcwork *w) {
    uintptr_t item;
    while ((item = rt__gcwork_get(w)) != 0) scan_item(w, item);
}

/* ---- parallel mark with the world stopped ------------------------------------ */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t  cond, done_cond;
    pthread_t      *threads;
    int             nthreads;
    uint64_t        epoch;        /* bumped to start a mark */
    int             active;       /* helpers that joined this epoch's mark */
    int             wanted;       /* helpers wanted this epoch */
    int             finished;
    uint64_t        bytes, objs, work, cpu_ns;
    bool            quit;
} M = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .done_cond = PTHREAD_COND_INITIALIZER };

static void add_results(rt_gcwork *w, uint64_t cpu) {
    pthread_mutex_lock(&M.lock);
    M.bytes += w->bytes_marked;
    M.objs += w->objects_marked;
    M.work += w->scan_work;
    M.cpu_ns += cpu;
    pthread_mutex_unlock(&M.lock);
}

static void *marker_main(void *arg) {
    int id = (int)(intptr_t)arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&M.lock);
    for (;;) {
        while (!M.quit && (M.epoch == seen || id > M.wanted)) {
            if (M.epoch != seen) seen = M.epoch;   /* not wanted this time */
            else pthread_cond_wait(&M.cond, &M.lock);
        }
        if (M.quit) break;
        seen = M.epoch;
        pthread_mutex_unlock(&M.lock);
        uint64_t c0 = rt__cputime_thread();
        rt_gcwork w = { .id = id };
        rt__drain(&w);
        rt__gcwork_dispose(&w);
        add_results(&w, rt__cputime_thread() - c0);
        pthread_mutex_lock(&M.lock);
        M.finished++;
        pthread_cond_broadcast(&M.done_cond);
    }
    pthread_mutex_unlock(&M.lock);
    return NULL;
}

void rt__markers_start(int n) {
    M.quit = false;
    M.nthreads = n > 0 ? n : 0;
    M.threads = M.nthreads ? calloc((size_t)M.nthreads, sizeof(pthread_t)) : NULL;
    for (int i = 0; i < M.nthreads; i++)
        if (pthread_create(&M.threads[i], NULL, marker_main, (void *)(intptr_t)(i + 1)) != 0)
            rt__fatal("cannot create mark worker thread %d", i + 1);
}

void rt__markers_stop(void) {
    pthread_mutex_lock(&M.lock);
    M.quit = true;
    pthread_cond_broadcast(&M.cond);
    pthread_mutex_unlock(&M.lock);
    for (int i = 0; i < M.nthreads; i++) pthread_join(M.threads[i], NULL);
    free(M.threads);
    M.threads = NULL;
    M.nthreads = 0;
}

uint64_t rt__mark_cpu_ns, rt__mark_objects, rt__mark_scan_work;

uint64_t rt__mark_stw(int nmarkers) {
    if (nmarkers > M.nthreads + 1) nmarkers = M.nthreads + 1;
    if (nmarkers < 1) nmarkers = 1;
    rt__work_begin(nmarkers);
    uint64_t c0 = rt__cputime_thread();
    rt_gcwork w = { .id = 0 };
    /* Roots first, so helpers find work as soon as they wake. */
    rt__roots_scan(&w);
    rt__stacks_scan(&w);
    pthread_mutex_lock(&M.lock);
    M.bytes = M.objs = M.work = M.cpu_ns = 0;
    M.finished = 0;
    M.wanted = nmarkers - 1;
    M.epoch++;
    pthread_cond_broadcast(&M.cond);
    pthread_mutex_unlock(&M.lock);
    /* Share the roots' work before draining. */
    if (nmarkers > 1 && w.secondary && w.secondary->n) { rt_workbuf *b = w.secondary; w.secondary = NULL;
        rt_gcwork tmp = { .primary = b }; rt__gcwork_dispose(&tmp); }
    rt__drain(&w);
    rt__gcwork_dispose(&w);
    add_results(&w, rt__cputime_thread() - c0);
    pthread_mutex_lock(&M.lock);
    while (M.finished < nmarkers - 1) pthread_cond_wait(&M.done_cond, &M.lock);
    uint64_t bytes = M.bytes;
    rt__mark_cpu_ns = M.cpu_ns;
    rt__mark_objects = M.objs;
    rt__mark_scan_work = M.work;
    pthread_mutex_unlock(&M.lock);
    if (!rt__work_global_empty()) rt__fatal("mark ended with grey objects on the global list");
    return bytes;
}
