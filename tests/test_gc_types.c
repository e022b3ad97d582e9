/* tests/test_gc_types.c -- the marker finds exactly the pointers each kind
 * of type says an object holds:
 *   RT_NOSCAN        never scanned;
 *   rt_type_layout   exactly its pointer slots, for single objects and for
 *                    arrays (heap bits <= 512 B, header objects, large
 *                    objects, and objects over 128 KiB split into oblets);
 *   rt_type_traced   what the trace function visits, precise or ambiguous;
 *   RT_CONSERVATIVE  every word;
 * plus interior pointers, cycles, and large objects returning their pages.
 *
 * Reclamation is observed as in test_gc_roots.c: clobberfree=1 fills freed
 * slots with 0xdeadbeef, rt_gc() returns after sweeping, the tests keep
 * xor-obfuscated addresses, and stack scanning is off so that only the
 * roots a test registers keep anything alive. */
#include <criterion/criterion.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rtgc.h"
#include "test_start.h"

/* ---- helpers ---------------------------------------------------------------- */

#define HIDE_MASK ((uintptr_t)0x5555555555555555ull)
static inline uintptr_t hide(const void *p) { return (uintptr_t)p ^ HIDE_MASK; }
static inline void *reveal(uintptr_t h) { return (void *)(h ^ HIDE_MASK); }

/* Probes: pointer-free objects of `size` bytes (16 or more, so not tiny)
   filled with a pattern derived from magic. */
static void *probe_sized(size_t size, uint32_t magic) {
    uint32_t *p = rt_alloc(size, RT_NOSCAN);
    cr_assert_not_null(p);
    for (size_t i = 0; i < size / 4; i++) p[i] = magic * 2654435761u + (uint32_t)i;
    return p;
}
static bool intact_sized(uintptr_t h, size_t size, uint32_t magic) {
    const uint32_t *p = reveal(h);
    for (size_t i = 0; i < size / 4; i++)
        if (p[i] != magic * 2654435761u + (uint32_t)i) return false;
    return true;
}
/* The first n bytes at h were reclaimed: clobbered by the sweeper
   (clobberfree=1), or all zero because the free page went back to the OS.
   Used only where the live object's first n bytes are not all zero. */
static bool gone(uintptr_t h, size_t n) {
    const uint32_t *p = reveal(h);
    bool clob = true, zero = true;
    for (size_t i = 0; i < n / 4; i++) {
        clob &= p[i] == 0xdeadbeefu;
        zero &= p[i] == 0;
    }
    return clob || zero;
}

#define PROBE 16
static void *probe(uint32_t magic) { return probe_sized(PROBE, magic); }
static bool alive(uintptr_t h, uint32_t magic) { return intact_sized(h, PROBE, magic); }
static bool freed(uintptr_t h) { return gone(h, PROBE); }

static void start(const char *debug) {
    test_start((rt_options){ .gc_percent = RT_GC_OFF, .scan_thread_stacks = RT_SCAN_STACKS_OFF, .debug = debug });
}
static void stop(void) { rt_shutdown(); }

TestSuite(types, .fini = stop, .timeout = 60);

/* One precise root slot per test: the object under test. */
static void *g_root;
static void *g_roots[16];

static void read_stats(rt_mem_stats *s) { rt_read_mem_stats(s); }

/* ---- RT_NOSCAN ---------------------------------------------------------------- */

Test(types, noscan_objects_are_never_scanned) {
    start("clobberfree=1");
    static const size_t sizes[] = { 16, 64, 1000, 40000, 300000 };
    rt_root *r = rt_root_add_range(g_roots, sizeof g_roots, RT_ROOT_PRECISE);
    uintptr_t target[5], holder[5];
    for (int i = 0; i < 5; i++) {
        void **o = rt_alloc(sizes[i], RT_NOSCAN);
        void *t = probe(10 + (uint32_t)i);
        target[i] = hide(t);
        holder[i] = hide(o);
        /* Pointers everywhere in the pointer-free object. */
        for (size_t k = 0; k < sizes[i] / sizeof(void *); k++) o[k] = t;
        g_roots[i] = o;
    }
    rt_gc();
    for (int i = 0; i < 5; i++) {
        cr_assert(freed(target[i]), "a pointer stored in a %zu-byte RT_NOSCAN object kept its target", sizes[i]);
        cr_assert_eq(((void **)reveal(holder[i]))[0], (void *)((char *)reveal(target[i])),
                     "the rooted RT_NOSCAN object of %zu bytes was damaged", sizes[i]);
    }
    rt_root_remove(r);
    memset(g_roots, 0, sizeof g_roots);
}

/* ---- layout types ------------------------------------------------------------ */

typedef struct {
    void     *p;           /* pointer */
    uintptr_t notptr;      /* holds an address, but is not a pointer slot */
    void     *q;           /* pointer (interior value) */
    uint64_t  x;           /* another address in a non-pointer field */
} small_obj;

Test(types, layout_small_keeps_exactly_pointer_slots) {
    start("clobberfree=1,invalidptr=1");
    size_t offs[] = { offsetof(small_obj, p), offsetof(small_obj, q) };
    const rt_type *t = rt_type_layout("small_obj", sizeof(small_obj), offs, 2);
    small_obj *o = rt_new(small_obj, t);
    void *a = probe(1), *b = probe(2), *c = probe(3), *d = probe(4);
    uintptr_t ha = hide(a), hb = hide(b), hc = hide(c), hd = hide(d);
    rt_store(&o->p, a);
    o->notptr = (uintptr_t)b;
    rt_store(&o->q, (char *)c + 8);
    o->x = (uintptr_t)d + 4;
    a = b = c = d = NULL;
    g_root = o;
    rt_root *r = rt_root_add(&g_root);
    rt_gc();
    cr_assert(alive(ha, 1), "pointer slot 0 did not keep its target");
    cr_assert(freed(hb), "a non-pointer field holding an address kept its target");
    cr_assert(alive(hc, 3), "pointer slot 2 (interior pointer) did not keep its target");
    cr_assert(freed(hd), "a non-pointer field holding an address kept its target");
    rt_root_remove(r);
    g_root = NULL;
}

/* A span filled for one type (runtime: rt__heapbits_fill) keeps that
   type's bits in its free slots; an object of another type reusing a slot
   freed by the sweeper must be traced by its own layout, not the fill. */
typedef struct { uintptr_t n; void *p; } ptr_second;
typedef struct { void *p; uintptr_t n; } ptr_first;

Test(types, a_reused_slot_of_a_filled_span_is_traced_by_its_new_type) {
    start("clobberfree=1,invalidptr=1");
    size_t o2[] = { offsetof(ptr_second, p) }, o1[] = { offsetof(ptr_first, p) };
    const rt_type *second = rt_type_layout("ptr_second", sizeof(ptr_second), o2, 1);
    const rt_type *first = rt_type_layout("ptr_first", sizeof(ptr_first), o1, 1);
    enum { N = 4000, KEEP_EVERY = 50, M = 2000 };
    static void *keep[N / KEEP_EVERY], *holders[M];
    rt_root *r1 = rt_root_add_range(keep, sizeof keep, RT_ROOT_PRECISE);
    rt_root *r2 = rt_root_add_range(holders, sizeof holders, RT_ROOT_PRECISE);
    /* Spans filled for ptr_second; one object in 50 survives, so the spans
       stay in use with most slots freed. */
    for (int i = 0; i < N; i++) {
        ptr_second *o = rt_alloc(sizeof(ptr_second), second);
        o->n = 0x1234;
        if (i % KEEP_EVERY == 0) keep[i / KEEP_EVERY] = o;
    }
    rt_gc();
    /* ptr_first objects reuse those slots; word 0 is their only pointer,
       a non-pointer word in the fill. */
    static uintptr_t target[M], decoy[M];
    for (int i = 0; i < M; i++) {
        ptr_first *o = rt_alloc(sizeof(ptr_first), first);
        void *t = probe((uint32_t)i + 100), *d = probe((uint32_t)i + 100000);
        target[i] = hide(t);
        decoy[i] = hide(d);
        rt_store(&o->p, t);
        o->n = (uintptr_t)d;   /* not a pointer here, but ptr_second's pointer word */
        holders[i] = o;
    }
    int reused = 0;   /* holders in an 8 KiB one-page span that a kept object is in */
    for (int i = 0; i < M; i++)
        for (int k = 0; k < N / KEEP_EVERY; k++)
            if (((uintptr_t)keep[k] ^ (uintptr_t)holders[i]) < 8192) { reused++; break; }
    cr_assert_gt(reused, M / 2, "only %d of %d new objects landed in the filled spans", reused, M);
    rt_gc();
    rt_gc();
    for (int i = 0; i < M; i++) {
        cr_assert(alive(target[i], (uint32_t)i + 100), "object %d reusing a filled slot lost the target of its pointer word", i);
        cr_assert(freed(decoy[i]), "object %d reusing a filled slot kept the target of its non-pointer word", i);
    }
    for (int k = 0; k < N / KEEP_EVERY; k++) cr_assert_eq(((ptr_second *)keep[k])->n, 0x1234);
    rt_root_remove(r1);
    rt_root_remove(r2);
    memset(keep, 0, sizeof keep);
    memset(holders, 0, sizeof holders);
}

/* A type of `words` words with pointers at the given word indices; fills an
   object of it and checks exactly those slots keep their targets. */
static void check_layout_object(size_t words, const size_t *ptr_words, size_t nptr) {
    size_t *offs = calloc(nptr, sizeof *offs);
    bool *isptr = calloc(words, sizeof *isptr);
    uintptr_t *h = calloc(words, sizeof *h);
    for (size_t i = 0; i < nptr; i++) { offs[i] = ptr_words[i] * 8; isptr[ptr_words[i]] = true; }
    const rt_type *t = rt_type_layout("wide", words * 8, offs, nptr);
    uintptr_t *o = rt_alloc(words * 8, t);
    cr_assert_not_null(o);
    /* Every pointer slot and a sample of the other words point at probes. */
    for (size_t w = 0; w < words; w++) {
        if (!isptr[w] && w % 97 != 1 && w != words - 2) continue;
        void *p = probe((uint32_t)w);
        h[w] = hide(p);
        if (isptr[w]) rt_store(&o[w], p);
        else o[w] = (uintptr_t)p + 3;
    }
    g_root = o;
    o = NULL;
    rt_root *r = rt_root_add(&g_root);
    rt_gc();
    for (size_t w = 0; w < words; w++) {
        if (!h[w]) continue;
        if (isptr[w]) cr_assert(alive(h[w], (uint32_t)w), "%zu-word layout: pointer word %zu lost its target", words, w);
        else cr_assert(freed(h[w]), "%zu-word layout: non-pointer word %zu kept its target", words, w);
    }
    rt_root_remove(r);
    rt_gc();
    for (size_t w = 0; w < words; w++)
        if (h[w] && isptr[w]) cr_assert(freed(h[w]), "%zu-word layout: target %zu survived its holder", words, w);
    g_root = NULL;
    free(offs);
    free(isptr);
    free(h);
}

Test(types, layout_header_object_keeps_exactly_pointer_slots) {
    start("clobberfree=1,invalidptr=1");
    /* 1000 bytes: over 512, so the type sits in a header, not in heap bits. */
    size_t p[] = { 0, 5, 64, 124 };
    check_layout_object(125, p, 4);
}

Test(types, layout_large_object_keeps_exactly_pointer_slots) {
    start("clobberfree=1,invalidptr=1");
    /* 48 KiB: a large object whose type lives in its span. */
    size_t p[] = { 0, 1, 3000, 6143 };
    check_layout_object(6144, p, 4);
}

Test(types, layout_huge_object_scans_every_oblet) {
    start("clobberfree=1,invalidptr=1");
    /* 320 KiB: three oblets; pointers at both ends of each. */
    size_t p[] = { 0, 16383, 16384, 32767, 32768, 40959 };
    check_layout_object(40960, p, 6);
}

/* ---- arrays of a layout type ---------------------------------------------------- */

typedef struct {
    uintptr_t word;   /* not a pointer */
    void     *ptr;    /* pointer */
    uintptr_t tag;    /* not a pointer */
} elem24;

static const rt_type *elem24_type(void) {
    size_t offs[] = { offsetof(elem24, ptr) };
    return rt_type_layout("elem24", sizeof(elem24), offs, 1);
}

/* Every element's pointer slot keeps its own target; the other two words of
   some elements hold addresses of targets that must die. */
static void check_array(size_t count) {
    const rt_type *t = elem24_type();
    elem24 *a = rt_alloc_array(t, count);
    cr_assert_not_null(a);
    cr_assert_geq(rt_usable_size(a), count * sizeof(elem24));
    uintptr_t *keep = calloc(count, sizeof *keep), *die = calloc(count, sizeof *die);
    for (size_t i = 0; i < count; i++) {
        void *p = probe((uint32_t)i);
        keep[i] = hide(p);
        rt_store(&a[i].ptr, p);
        if (i % 7 == 0 || i == count - 1) {
            void *d = probe(0xd00d);
            die[i] = hide(d);
            if (i % 2) a[i].word = (uintptr_t)d;
            else a[i].tag = (uintptr_t)d + 1;
        }
    }
    g_root = a;
    a = NULL;
    rt_root *r = rt_root_add(&g_root);
    rt_gc();
    for (size_t i = 0; i < count; i++) {
        cr_assert(alive(keep[i], (uint32_t)i), "array of %zu: element %zu's pointer lost its target", count, i);
        if (die[i]) cr_assert(freed(die[i]), "array of %zu: a non-pointer word of element %zu kept its target", count, i);
    }
    /* The array itself still holds what it held. */
    elem24 *b = g_root;
    for (size_t i = 0; i < count; i++)
        cr_assert_eq(b[i].ptr, reveal(keep[i]), "array of %zu: element %zu changed", count, i);
    b = NULL;
    rt_root_remove(r);
    g_root = NULL;
    rt_gc();
    for (size_t i = 0; i < count; i++) cr_assert(freed(keep[i]), "array of %zu: target %zu outlived the array", count, i);
    free(keep);
    free(die);
}

Test(types, array_in_heap_bits) { start("clobberfree=1,invalidptr=1"); check_array(20); }        /* 480 B */
Test(types, array_with_header) { start("clobberfree=1,invalidptr=1"); check_array(100); }        /* 2400 B */
Test(types, array_large) { start("clobberfree=1,invalidptr=1"); check_array(1500); }             /* 36000 B */
Test(types, array_split_in_oblets) { start("clobberfree=1,invalidptr=1"); check_array(12000); }  /* 288000 B */

Test(types, huge_array_pointer_in_last_element_and_at_oblet_edges) {
    start("clobberfree=1,invalidptr=1");
    const rt_type *t = elem24_type();
    const size_t count = 60000;   /* 1.4 MB: 11 oblets */
    elem24 *a = rt_alloc_array(t, count);
    cr_assert_not_null(a);
    size_t idx[64];
    size_t n = 0;
    idx[n++] = 0;
    for (size_t b = 128 << 10; b < count * sizeof(elem24); b += 128 << 10) {
        size_t i = b / sizeof(elem24);   /* the element straddling the oblet boundary */
        idx[n++] = i - 1;
        idx[n++] = i;
        idx[n++] = i + 1;
    }
    idx[n++] = count - 1;
    uintptr_t h[64];
    for (size_t k = 0; k < n; k++) {
        void *p = probe((uint32_t)k);
        h[k] = hide(p);
        rt_store(&a[idx[k]].ptr, p);
    }
    uintptr_t hd = hide(probe(0xdead));
    a[count - 1].tag = (uintptr_t)reveal(hd);
    g_root = a;
    a = NULL;
    rt_root *r = rt_root_add(&g_root);
    rt_gc();
    for (size_t k = 0; k < n; k++)
        cr_assert(alive(h[k], (uint32_t)k), "element %zu of a %zu-element array lost its target", idx[k], count);
    cr_assert(freed(hd), "the last element's non-pointer word kept its target");
    rt_root_remove(r);
    g_root = NULL;
}

/* ---- traced types ----------------------------------------------------------------- */

typedef struct {
    void     *a;          /* visited with rt_visit */
    uintptr_t tagged;     /* visited with rt_visit_ambiguous */
    uintptr_t junk;       /* an address the trace function does not visit */
    void     *interior;   /* visited with rt_visit, points into an object */
    void     *tagged_p;   /* visited with rt_visit, low bits set */
} traced_obj;

static atomic_int trace_calls;
static atomic_size_t trace_min_size;
static int g_static_word;

static void trace_obj(void *obj, size_t size, rt_visitor *v) {
    traced_obj *o = obj;
    atomic_fetch_add(&trace_calls, 1);
    size_t cur = atomic_load(&trace_min_size);
    while (size < cur && !atomic_compare_exchange_weak(&trace_min_size, &cur, size)) {}
    rt_visit(v, o->a);
    rt_visit_ambiguous(v, o->tagged);
    rt_visit(v, o->interior);
    rt_visit(v, o->tagged_p);
    /* Edges that are not heap pointers at all. */
    rt_visit(v, NULL);
    rt_visit(v, &g_static_word);
    rt_visit_ambiguous(v, 0);
    rt_visit_ambiguous(v, 7);
    rt_visit_ambiguous(v, 0xfff1);
    rt_visit_ambiguous(v, ~(uintptr_t)0);
    rt_visit_ambiguous(v, (uintptr_t)1 << 63 | 8);
}

static void check_traced(size_t size) {
    atomic_store(&trace_calls, 0);
    atomic_store(&trace_min_size, SIZE_MAX);
    const rt_type *t = rt_type_traced("traced_obj", trace_obj);
    traced_obj *o = rt_alloc(size, t);
    cr_assert_not_null(o);
    void *a = probe(1), *b = probe(2), *c = probe(3), *d = probe(4), *e = probe(5);
    uintptr_t ha = hide(a), hb = hide(b), hc = hide(c), hd = hide(d), he = hide(e);
    rt_store(&o->a, a);
    o->tagged = (uintptr_t)b | 1;
    o->junk = (uintptr_t)c;
    rt_store(&o->interior, (char *)d + 9);
    rt_store(&o->tagged_p, (void *)((uintptr_t)e | 3));
    a = b = c = d = e = NULL;
    g_root = o;
    o = NULL;
    rt_root *r = rt_root_add(&g_root);
    rt_gc();
    cr_assert_eq(atomic_load(&trace_calls), 1, "%zu-byte traced object: trace ran %d times in one cycle",
                 size, atomic_load(&trace_calls));
    cr_assert_geq(atomic_load(&trace_min_size), size, "trace was told the object has %zu bytes, fewer than the %zu allocated",
                  atomic_load(&trace_min_size), size);
    cr_assert(alive(ha, 1), "%zu-byte traced object: rt_visit did not keep its target", size);
    cr_assert(alive(hb, 2), "%zu-byte traced object: rt_visit_ambiguous of a tagged word did not keep its target", size);
    cr_assert(freed(hc), "%zu-byte traced object: a word the trace function skips kept its target", size);
    cr_assert(alive(hd, 4), "%zu-byte traced object: an interior pointer did not keep its target", size);
    cr_assert(alive(he, 5), "%zu-byte traced object: a pointer with low tag bits did not keep its target", size);
    rt_root_remove(r);
    g_root = NULL;
    rt_gc();
    cr_assert_eq(atomic_load(&trace_calls), 1, "an unreachable traced object was traced");
    cr_assert(freed(ha));
    cr_assert(freed(hb));
}

Test(types, traced_small) { start("clobberfree=1,invalidptr=1"); check_traced(sizeof(traced_obj)); }
Test(types, traced_header_sized) { start("clobberfree=1,invalidptr=1"); check_traced(2000); }
Test(types, traced_large) { start("clobberfree=1,invalidptr=1"); check_traced(300000); }

/* A chain of traced objects: each visits the next. */
typedef struct tchain { struct tchain *next; uint64_t magic; } tchain;
static void trace_chain(void *obj, size_t size, rt_visitor *v) {
    (void)size;
    rt_visit(v, ((tchain *)obj)->next);
}

Test(types, traced_chain_is_transitive) {
    start("clobberfree=1,invalidptr=1");
    const rt_type *t = rt_type_traced("tchain", trace_chain);
    enum { N = 1000 };
    uintptr_t h[N];
    tchain *head = NULL;
    for (int i = 0; i < N; i++) {
        tchain *c = rt_alloc(sizeof(tchain), t);
        c->magic = 0xc4a1u + (uint64_t)i;
        rt_store(&c->next, head);
        head = c;
        h[i] = hide(c);
    }
    g_root = head;
    head = NULL;
    rt_root *r = rt_root_add(&g_root);
    rt_gc();
    for (int i = 0; i < N; i++) {
        tchain *c = reveal(h[i]);
        cr_assert_eq(c->magic, 0xc4a1u + (uint64_t)i, "link %d of a traced chain was reclaimed", i);
        cr_assert_eq((void *)c->next, i ? reveal(h[i - 1]) : NULL);
    }
    rt_root_remove(r);
    g_root = NULL;
    rt_gc();
    for (int i = 0; i < N; i++) cr_assert(gone(h[i], sizeof(tchain)), "link %d survived", i);
}

/* ---- RT_CONSERVATIVE --------------------------------------------------------------- */

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rng(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void check_conservative(size_t bytes, bool as_array) {
    size_t words = bytes / 8;
    uintptr_t *o = as_array ? rt_alloc_array(RT_CONSERVATIVE, words) : rt_alloc(bytes, RT_CONSERVATIVE);
    cr_assert_not_null(o);
    size_t at[3] = { 0, words / 2, words - 1 };
    uintptr_t h[3];
    for (int k = 0; k < 3; k++) h[k] = hide(probe(100 + (uint32_t)k));
    void *dead = probe(0xdead);   /* pointed to by nothing */
    uintptr_t hd = hide(dead), dlo = (uintptr_t)dead, dhi = dlo + PROBE;
    /* Garbage: random words, words near the heap (avoiding the one object
       that must die), small integers... */
    for (size_t i = 0; i < words; i++) {
        uintptr_t v;
        do {
            v = (i % 3 == 0) ? (uintptr_t)rng() : (i % 3 == 1) ? dlo + (rng() % (1u << 20)) - (1u << 19) : i;
        } while (v >= dlo && v < dhi);
        o[i] = v;
    }
    dead = NULL;
    /* ...then real pointers at the first, middle and last words. */
    for (int k = 0; k < 3; k++) {
        uintptr_t p = (uintptr_t)reveal(h[k]);
        o[at[k]] = k == 0 ? p : k == 1 ? p + 11 : (p | 1);
    }
    g_root = o;
    o = NULL;
    rt_root *r = rt_root_add(&g_root);
    rt_gc();
    for (int k = 0; k < 3; k++)
        cr_assert(alive(h[k], 100 + (uint32_t)k), "%zu-byte conservative object: word %zu did not keep its target",
                  bytes, at[k]);
    cr_assert(freed(hd), "an object nothing points to survived");
    rt_root_remove(r);
    g_root = NULL;
    rt_gc();
    for (int k = 0; k < 3; k++) cr_assert(freed(h[k]), "a conservative object's target outlived it");
}

Test(types, conservative_small) { start("clobberfree=1,invalidptr=1"); check_conservative(64, false); }
Test(types, conservative_header_sized) { start("clobberfree=1,invalidptr=1"); check_conservative(1000, false); }
Test(types, conservative_large) { start("clobberfree=1,invalidptr=1"); check_conservative(100000, false); }
Test(types, conservative_array_in_oblets) { start("clobberfree=1,invalidptr=1"); check_conservative(600000, true); }

/* ---- interior pointers ----------------------------------------------------------- */

typedef struct { void *p[3]; uint64_t magic[3]; } lay48;

Test(types, interior_pointers_keep_whole_objects) {
    start("clobberfree=1,invalidptr=1");
    size_t loffs[] = { 0, 8, 16 };
    const rt_type *lt = rt_type_layout("lay48", sizeof(lay48), loffs, 3);
    const rt_type *tt = rt_type_traced("traced_obj", trace_obj);
    const rt_type *et = elem24_type();
    rt_root *r = rt_root_add_range(g_roots, sizeof g_roots, RT_ROOT_PRECISE);
    uintptr_t h[16];
    int n = 0;

    /* small pointer-free: second byte, middle, last byte */
    for (int k = 0; k < 3; k++) {
        char *p = probe_sized(64, 10 + (uint32_t)k);
        h[n] = hide(p);
        g_roots[n++] = p + (k == 0 ? 1 : k == 1 ? 32 : 63);
    }
    /* small layout (heap bits): last byte */
    lay48 *l = rt_new(lay48, lt);
    for (int k = 0; k < 3; k++) l->magic[k] = 0x1a70u + (uint64_t)k;
    h[n] = hide(l);
    g_roots[n++] = (char *)l + sizeof(lay48) - 1;
    /* header object: the first byte after the header, and the last byte */
    traced_obj *t1 = rt_alloc(1000, tt), *t2 = rt_alloc(1000, tt);
    memset(t1, 0, sizeof *t1); memset(t2, 0, sizeof *t2);
    t1->junk = 0x7111; t2->junk = 0x7222;
    h[n] = hide(t1);
    g_roots[n++] = t1;
    h[n] = hide(t2);
    g_roots[n++] = (char *)t2 + rt_usable_size(t2) - 1;
    /* large pointer-free: middle and last byte */
    char *big = probe_sized(100000, 77);
    h[n] = hide(big);
    g_roots[n++] = big + rt_usable_size(big) - 1;
    char *big2 = probe_sized(100000, 78);
    h[n] = hide(big2);
    g_roots[n++] = big2 + 50000;
    /* huge array (3 oblets) referenced only by a pointer into its last
       oblet: the whole object is scanned, so element 0's target lives */
    elem24 *arr = rt_alloc_array(et, 14000);
    void *first = probe(4242);
    uintptr_t hfirst = hide(first);
    rt_store(&arr[0].ptr, first);
    arr[13999].word = 0xa11;
    h[n] = hide(arr);
    g_roots[n++] = &arr[13900].tag;
    l = NULL; t1 = t2 = NULL; big = big2 = NULL; arr = NULL; first = NULL;

    rt_gc();
    for (int k = 0; k < 3; k++) cr_assert(intact_sized(h[k], 64, 10 + (uint32_t)k), "interior pointer %d lost its object", k);
    lay48 *lc = reveal(h[3]);
    for (int k = 0; k < 3; k++) cr_assert_eq(lc->magic[k], 0x1a70u + (uint64_t)k, "a pointer to a layout object's last byte lost it");
    cr_assert_eq(((traced_obj *)reveal(h[4]))->junk, 0x7111u, "a pointer just past the type header lost its object");
    cr_assert_eq(((traced_obj *)reveal(h[5]))->junk, 0x7222u, "a pointer to a header object's last byte lost it");
    cr_assert(intact_sized(h[6], 100000, 77), "a pointer to a large object's last byte lost it");
    cr_assert(intact_sized(h[7], 100000, 78), "a pointer into a large object's middle lost it");
    cr_assert_eq(((elem24 *)reveal(h[8]))[13999].word, 0xa11u, "a pointer into a huge array's last oblet lost it");
    cr_assert(alive(hfirst, 4242), "a huge array reached through its last oblet was not scanned from its start");

    memset(g_roots, 0, sizeof g_roots);
    rt_gc();
    for (int k = 0; k < n; k++) {
        cr_assert(gone(h[k], 48), "object %d outlived the interior pointer to it", k);
    }
    cr_assert(freed(hfirst));
    rt_root_remove(r);
}

/* ---- cycles ---------------------------------------------------------------------- */

typedef struct ring { struct ring *next, *other; uint64_t magic; } ring;

Test(types, cycles_reachable_kept_unreachable_reclaimed) {
    start("clobberfree=1,invalidptr=1");
    size_t offs[] = { offsetof(ring, next), offsetof(ring, other) };
    const rt_type *t = rt_type_layout("ring", sizeof(ring), offs, 2);
    enum { N = 200 };
    uintptr_t h1[N], h2[N];
    ring *first1 = NULL, *prev1 = NULL, *first2 = NULL, *prev2 = NULL;
    for (int i = 0; i < N; i++) {
        ring *a = rt_new(ring, t), *b = rt_new(ring, t);
        a->magic = 0xa000u + (uint64_t)i;
        b->magic = 0xb000u + (uint64_t)i;
        if (prev1) rt_store(&prev1->next, a); else first1 = a;
        if (prev2) rt_store(&prev2->next, b); else first2 = b;
        prev1 = a;
        prev2 = b;
        h1[i] = hide(a);
        h2[i] = hide(b);
    }
    rt_store(&prev1->next, first1);      /* close both rings */
    rt_store(&prev2->next, first2);
    rt_store(&first2->other, first2);    /* a self-loop too */
    g_root = reveal(h1[N / 2]);          /* ring 1 is reachable through any member */
    first1 = prev1 = first2 = prev2 = NULL;
    rt_root *r = rt_root_add(&g_root);
    rt_gc();
    for (int i = 0; i < N; i++) {
        ring *a = reveal(h1[i]);
        cr_assert_eq(a->magic, 0xa000u + (uint64_t)i, "member %d of a reachable cycle was reclaimed", i);
        cr_assert_eq((void *)a->next, reveal(h1[(i + 1) % N]));
        cr_assert(gone(h2[i], sizeof(ring)), "member %d of an unreachable cycle survived", i);
    }
    g_root = NULL;
    rt_gc();
    for (int i = 0; i < N; i++) cr_assert(gone(h1[i], sizeof(ring)), "member %d of a dropped cycle survived", i);
    rt_root_remove(r);
}

/* A cycle through every kind: layout -> traced -> conservative -> large layout -> layout. */
Test(types, mixed_kind_cycle) {
    start("clobberfree=1,invalidptr=1");
    size_t offs[] = { offsetof(ring, next), offsetof(ring, other) };
    const rt_type *rt = rt_type_layout("ring", sizeof(ring), offs, 2);
    const rt_type *tt = rt_type_traced("tchain", trace_chain);
    size_t boffs[] = { 0 };
    const rt_type *bt = rt_type_layout("big", 50000, boffs, 1);
    ring *a = rt_new(ring, rt);
    tchain *b = rt_alloc(sizeof(tchain), tt);
    uintptr_t *c = rt_alloc(64, RT_CONSERVATIVE);
    void **d = rt_alloc(50000, bt);
    a->magic = 0xaaaa;
    b->magic = 0xbbbb;
    c[7] = 0xcccc;
    ((uintptr_t *)d)[6249] = 0xdddd;
    rt_store(&a->next, b);
    rt_store(&b->next, c);
    c[3] = (uintptr_t)d + 100;   /* interior, found conservatively */
    rt_store(&d[0], a);
    uintptr_t ha = hide(a), hb = hide(b), hc = hide(c), hd = hide(d);
    a = NULL; b = NULL; c = NULL; d = NULL;
    g_root = reveal(hc);
    rt_root *r = rt_root_add(&g_root);
    rt_gc();
    cr_assert_eq(((ring *)reveal(ha))->magic, 0xaaaau, "the layout member of a mixed cycle was reclaimed");
    cr_assert_eq(((tchain *)reveal(hb))->magic, 0xbbbbu, "the traced member of a mixed cycle was reclaimed");
    cr_assert_eq(((uintptr_t *)reveal(hc))[7], 0xccccu, "the conservative member of a mixed cycle was reclaimed");
    cr_assert_eq(((uintptr_t *)reveal(hd))[6249], 0xddddu, "the large member of a mixed cycle was reclaimed");
    g_root = NULL;
    rt_gc();
    cr_assert(gone(ha, 24));
    cr_assert(gone(hb, 16));
    cr_assert(gone(hc, 64));
    cr_assert(gone(hd, 64));
    rt_root_remove(r);
}

/* ---- large objects: alive, dead, pages returned --------------------------------------- */

Test(types, large_objects_live_die_and_return_pages) {
    start("clobberfree=1,invalidptr=1");
    static const size_t sizes[4] = { 32761, 40000, 1 << 20, 2 << 20 };
    rt_root *r = rt_root_add_range(g_roots, 4 * sizeof(void *), RT_ROOT_PRECISE);
    uintptr_t h[4];
    for (int i = 0; i < 4; i++) {
        g_roots[i] = probe_sized(sizes[i], 50 + (uint32_t)i);
        h[i] = hide(g_roots[i]);
    }
    rt_gc();
    rt_mem_stats s0, s1;
    read_stats(&s0);
    for (int i = 0; i < 4; i++) cr_assert(intact_sized(h[i], sizes[i], 50 + (uint32_t)i), "rooted large object %d damaged", i);

    g_roots[1] = NULL;   /* drop 40000 B and 2 MiB */
    g_roots[3] = NULL;
    rt_gc();
    read_stats(&s1);
    cr_assert(gone(h[1], 4096), "a dead 40000-byte object was not swept");
    cr_assert(gone(h[3], 4096), "a dead 2 MiB object was not swept");
    cr_assert(intact_sized(h[0], sizes[0], 50), "a live large object was damaged by the collection");
    cr_assert(intact_sized(h[2], sizes[2], 52), "a live large object was damaged by the collection");
    uint64_t dropped = (40960 + (2u << 20));
    cr_assert_leq(s1.heap_inuse + dropped, s0.heap_inuse,
                  "heap_inuse went from %llu to %llu: the dead large objects' %llu bytes of pages were not returned",
                  (unsigned long long)s0.heap_inuse, (unsigned long long)s1.heap_inuse, (unsigned long long)dropped);
    cr_assert_eq(s1.heap_objects + 2, s0.heap_objects, "heap_objects %llu -> %llu after freeing 2 large objects",
                 (unsigned long long)s0.heap_objects, (unsigned long long)s1.heap_objects);
    cr_assert_geq(s0.heap_alloc - s1.heap_alloc, dropped);

    g_roots[0] = g_roots[2] = NULL;
    rt_gc();
    rt_mem_stats s2;
    read_stats(&s2);
    cr_assert(gone(h[2], 4096));
    cr_assert_leq(s2.heap_inuse + 32768 + (1u << 20), s1.heap_inuse);
    rt_root_remove(r);
}
