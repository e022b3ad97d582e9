/* gc/checkmark.c -- RTDEBUG=gccheckmark=1: prove a concurrent mark.
 *
 * At mark termination, with the world stopped and the mark complete, walk
 * the heap again from every root and stack (a plain depth-first search
 * with its own visited set, not the mark bits) and require that every
 * object it reaches is marked.  An unmarked reachable object means the
 * concurrent mark lost it (a missing barrier, a store that bypassed
 * rt_store, a bug in the collector): the run stops with the object, its
 * type and the object or root that points to it.
 *
 * Only precise reachability is held against the mark: a conservatively
 * scanned stack at mark termination can show dead words (from frames
 * deeper than the stack was at mark start) pointing at objects that were
 * already garbage at the snapshot, and the mark rightly left those white.
 * So the walk follows ambiguous edges too but reports an unmarked object
 * only if a chain of precise edges leads to it from a precise root. */
#include "gc.h"

#include <stdlib.h>
#include <string.h>

typedef struct { uintptr_t obj, parent; const char *root; bool strict; } item;

static struct {
    uintptr_t *set;       /* open addressing, 0 = empty */
    size_t     cap, n;
    item      *stack;
    size_t     sp, scap;
    uintptr_t  cur;       /* object whose edges are being walked */
    bool       cur_strict;   /* reached from a precise root by precise edges */
    const char *root;
} K;

/* Returns 0 if x was absent (now added with `strict`), 1 if present with at
   least that strictness, 2 if present non-strict and now upgraded. */
static int set_add(uintptr_t x, bool strict) {
    if ((K.n + 1) * 2 > K.cap) {
        uintptr_t *old = K.set;
        size_t oc = K.cap;
        K.cap = K.cap ? K.cap * 2 : 1 << 16;
        K.set = calloc(K.cap, sizeof *K.set);
        if (!K.set) rt__fatal("checkmark: out of memory");
        K.n = 0;
        for (size_t i = 0; i < oc; i++) if (old[i]) set_add(old[i] & ~(uintptr_t)1, old[i] & 1);
        free(old);
    }
    size_t h = (x >> 4) * 0x9E3779B97F4A7C15ull & (K.cap - 1);
    while (K.set[h]) {
        if ((K.set[h] & ~(uintptr_t)1) == x) {
            if (strict && !(K.set[h] & 1)) { K.set[h] |= 1; return 2; }
            return 1;
        }
        h = (h + 1) & (K.cap - 1);
    }
    K.set[h] = x | (strict ? 1 : 0);
    K.n++;
    return 0;
}

static void push(uintptr_t obj, bool strict) {
    if (K.sp == K.scap) {
        K.scap = K.scap ? K.scap * 2 : 4096;
        K.stack = realloc(K.stack, K.scap * sizeof *K.stack);
        if (!K.stack) rt__fatal("checkmark: out of memory");
    }
    K.stack[K.sp++] = (item){ obj, K.cur, K.root, strict };
}

static const char *type_name(rt_span *s, uintptr_t base) {
    uintptr_t data;
    if (rt__spanclass_noscan(s->hot.spanclass)) return "noscan";
    const rt_type *t = rt__object_type(s, base, &data);
    return t ? t->name : "layout (heap bits)";
}

static void edge(rt_visitor *v, uintptr_t p, bool precise) {
    rt_span *s;
    uintptr_t idx;
    uintptr_t base = rt__find_object(p, &s, &idx);
    if (!base || rt__span_is_free(s, idx)) return;
    bool strict = precise && (K.cur ? K.cur_strict : true);
    if (!K.cur && v->root_name) K.root = v->root_name;
    if (set_add(base, strict) == 1) return;
    if (strict && !rt__span_is_marked(s, idx)) {
        if (K.cur) {
            rt_span *ps = rt__span_of_heap(K.cur);
            rt__fatal("checkmark: object %#lx (type %s, %lu bytes) is reachable but was not marked; "
                      "it is referenced by object %#lx (type %s)", (unsigned long)base, type_name(s, base),
                      (unsigned long)s->hot.elemsize, (unsigned long)K.cur, ps ? type_name(ps, K.cur) : "?");
        }
        rt__fatal("checkmark: object %#lx (type %s, %lu bytes) is reachable from a %s but was not marked",
                  (unsigned long)base, type_name(s, base), (unsigned long)s->hot.elemsize, K.root ? K.root : "root");
    }
    push(base, strict);
}

void rt__checkmark(void) {
    rt_visitor v = { .edge = edge };
    K.cur = 0;
    K.root = "root";
    /* Roots name themselves through v.root_name as they are visited. */
    rt__roots_visit(&v);
    rt__specials_visit_roots(&v);   /* weak/cleanup/finalizer records and queued entries */
    while (K.sp) {
        item it = K.stack[--K.sp];
        K.cur = it.obj;
        K.cur_strict = it.strict;
        rt_visitor ov = { .edge = edge };
        rt__object_edges(it.obj, &ov);
    }
    free(K.set);
    free(K.stack);
    memset(&K, 0, sizeof K);
}
