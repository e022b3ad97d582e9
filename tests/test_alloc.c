/* tests/test_alloc.c -- allocation: size classes in use, zeroing, where type
 * metadata is written (heap bits, headers, large spans), the tiny allocator,
 * the size-specialized inline path, and rt_usable_size; and the inline
 * path's twin for stores, the write barrier's filter. */
#include <criterion/criterion.h>
#include <stddef.h>
#include <string.h>

#include "internal.h"

static void setup(void) {
    rt_options o = { .gc_percent = RT_GC_OFF, .scan_thread_stacks = 1 };
    cr_assert_eq(rt_init(&o), RT_OK);
    cr_assert_eq(rt_thread_attach(), RT_OK);
}
static void teardown(void) { rt_shutdown(); }

TestSuite(alloc, .init = setup, .fini = teardown);

static bool all_zero(const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) if (c[i]) return false;
    return true;
}

Test(alloc, every_class_gets_its_slot_size) {
    for (unsigned cls = 2; cls < RT_NUM_SIZE_CLASSES; cls++) {
        size_t sz = rt__class_to_size[cls];
        if (sz > RT_MAX_SMALL_ALLOC) continue;
        void *p = (rt_alloc)(sz, RT_NOSCAN);
        rt_span *s = rt__span_of_heap((uintptr_t)p);
        cr_assert_not_null(s, "class %u: object %p not in a heap span", cls, p);
        cr_assert_eq(rt__spanclass_size(s->hot.spanclass), cls, "size %zu landed in class %u", sz, rt__spanclass_size(s->hot.spanclass));
        cr_assert(rt__spanclass_noscan(s->hot.spanclass));
        cr_assert_eq(s->npages, rt__class_to_npages[cls]);
        cr_assert_eq(rt_usable_size(p), sz);
        /* metadata is off-heap: the span struct is not inside the span */
        cr_assert((uintptr_t)s < s->hot.base || (uintptr_t)s >= s->hot.base + s->npages * RT_PAGE_SIZE);
    }
}

Test(alloc, memory_is_zeroed_even_after_reuse) {
    /* Dirty many objects, drop them, collect, and allocate again. */
    for (int round = 0; round < 3; round++) {
        for (size_t sz = 1; sz < 3000; sz += 37) {
            unsigned char *p = (rt_alloc)(sz, RT_NOSCAN);
            cr_assert(all_zero(p, sz), "round %d size %zu not zeroed", round, sz);
            memset(p, 0xab, rt_usable_size(p));
        }
        rt_gc();
    }
    unsigned char *big = (rt_alloc)(100000, RT_NOSCAN);
    cr_assert(all_zero(big, 100000));
    memset(big, 0xcd, 100000);
    big = NULL;
    rt_gc();
    unsigned char *big2 = (rt_alloc)(100000, RT_NOSCAN);
    cr_assert(all_zero(big2, 100000));
}

typedef struct Three { void *a; long n; void *b; } Three;

Test(alloc, small_layout_objects_write_heap_bits) {
    size_t offs[] = { offsetof(Three, a), offsetof(Three, b) };
    const rt_type *t = rt_type_layout("three", sizeof(Three), offs, 2);
    for (int i = 0; i < 100; i++) {
        Three *o = (i % 2) ? rt_new(Three, t) : (rt_alloc)(sizeof(Three), t);
        rt_span *s = rt__span_of_heap((uintptr_t)o);
        cr_assert(rt__span_has_heapbits(s));
        uintptr_t w = ((uintptr_t)o - s->hot.base) / 8;
        const uint64_t *hb = rt__span_heapbits(s);
        for (uintptr_t k = 0; k < s->hot.elemsize / 8; k++) {
            int bit = hb[(w + k) / 64] >> ((w + k) % 64) & 1;
            cr_assert_eq(bit, k == 0 || k == 2, "object %d word %lu heap bit %d", i, (unsigned long)k, bit);
        }
        uintptr_t idx = rt__span_obj_index(s, (uintptr_t)o);
        cr_assert_eq(s->hot.header_bits[idx / 8] >> (idx % 8) & 1, 0, "layout object marked as having a header");
    }
}

Test(alloc, arrays_repeat_the_layout_in_heap_bits) {
    size_t offs[] = { 0 };
    const rt_type *t = rt_type_layout("ptr+long", 16, offs, 1);
    void **a = rt_alloc_array(t, 5);   /* 80 bytes: heap bits, pattern 1010101010 */
    rt_span *s = rt__span_of_heap((uintptr_t)a);
    uintptr_t w = ((uintptr_t)a - s->hot.base) / 8;
    const uint64_t *hb = rt__span_heapbits(s);
    for (uintptr_t k = 0; k < 10; k++)
        cr_assert_eq(hb[(w + k) / 64] >> ((w + k) % 64) & 1, k % 2 == 0, "word %lu", (unsigned long)k);
}

/* The array mask against a word-by-word model, for element sizes of 1 to 64
   words (pointers at the first, every third and the last word), at every
   object length up to a 512-byte slot: whole arrays, partial last elements
   and objects cut short of one element. */
Test(alloc, tiled_array_masks_repeat_the_element_at_every_size) {
    for (size_t ew = 1; ew <= 64; ew++) {
        size_t offs[64], n = 0;
        for (size_t k = 0; k < ew; k++)
            if (k % 3 == 0 || k == ew - 1) offs[n++] = k * 8;   /* first, every third, last word */
        const rt_type *t = rt_type_layout("tile", ew * 8, offs, n);
        for (size_t words = 1; words <= 64; words++) {
            size_t elemsize = rt__class_to_size[rt__size_to_class_inline(words * 8)];
            uint64_t want = 0;
            for (size_t w = 0; w < words && w < elemsize / 8; w++)
                if (t->small_mask >> (w % ew) & 1) want |= (uint64_t)1 << w;
            cr_assert_eq(rt__type_object_mask_tiled(t, words * 8, elemsize), want,
                         "element of %zu words, array of %zu words", ew, words);
        }
    }
}

static void no_trace(void *obj, size_t size, rt_visitor *v) { (void)obj; (void)size; (void)v; }

Test(alloc, traced_conservative_and_big_layout_objects_carry_a_header) {
    const rt_type *tr = rt_type_traced("tr", no_trace);
    size_t offs[] = { 0 };
    const rt_type *big = rt_type_layout("big", 1024, offs, 1);
    const rt_type *types[] = { tr, RT_CONSERVATIVE, big };
    size_t sizes[] = { 40, 100, 1024 };
    for (int i = 0; i < 3; i++) {
        char *o = (rt_alloc)(sizes[i], types[i]);
        rt_span *s = rt__span_of_heap((uintptr_t)o);
        uintptr_t base = rt__find_object((uintptr_t)o, NULL, NULL);
        cr_assert_eq((uintptr_t)o, base + RT_HEADER_SIZE, "type %d: object not 8 bytes into its slot", i);
        cr_assert_eq(*(const rt_type **)base, types[i]);
        uintptr_t data;
        cr_assert_eq(rt__object_type(s, base, &data), types[i]);
        cr_assert_eq(data, (uintptr_t)o);
        cr_assert_eq(rt_usable_size(o), s->hot.elemsize - RT_HEADER_SIZE);
        cr_assert_geq(rt_usable_size(o), sizes[i]);
    }
}

/* The inline path with a constant size writes a header object the way the
   generic path does: the type in the header, the slot's header bit, the
   object 8 bytes in, and the same span as the generic path's objects. */
static void check_header_object(char *o, const rt_type *t, size_t size, char *generic) {
    rt_span *s = rt__span_of_heap((uintptr_t)o);
    uintptr_t base = rt__find_object((uintptr_t)o, NULL, NULL), data;
    cr_assert_eq((uintptr_t)o, base + RT_HEADER_SIZE, "%zu-byte %s: not 8 bytes into its slot", size, t->name);
    cr_assert_eq(rt__object_type(s, base, &data), t, "%zu-byte %s: header or header bit missing", size, t->name);
    cr_assert_eq(data, (uintptr_t)o);
    cr_assert_geq(rt_usable_size(o), size);
    cr_assert(all_zero(o, size));
    cr_assert_eq(rt__span_of_heap((uintptr_t)generic)->hot.spanclass, s->hot.spanclass,
                 "%zu-byte %s: the inline and generic paths chose different span classes", size, t->name);
}

Test(alloc, inline_path_writes_headers_for_traced_and_conservative_objects) {
    const rt_type *tr = rt_type_traced("traced", no_trace);
    for (int round = 0; round < 600; round++) {   /* past a span's end: refills */
        check_header_object(rt_alloc(24, tr), tr, 24, (rt_alloc)(24, tr));
        check_header_object(rt_alloc(56, RT_CONSERVATIVE), RT_CONSERVATIVE, 56, (rt_alloc)(56, RT_CONSERVATIVE));
        check_header_object(rt_alloc(504, tr), tr, 504, (rt_alloc)(504, tr));
    }
}

/* The inline path's zeroing (16-byte stores up to 256 bytes, with an
   8-byte tail for odd multiples of 8; memset above): slots a collection
   freed dirty come back zeroed, three spans' worth per size and kind. */
#define ALLOC_DIRTY_ZEROED(SIZE, TYPE)                                                      \
    for (int i = 0; i < 3 * RT_PAGE_SIZE / (SIZE); i++) {                                   \
        unsigned char *o = rt_alloc(SIZE, TYPE);                                            \
        cr_assert(all_zero(o, SIZE), "round %d: %d-byte object %d not zeroed", round, SIZE, i); \
        memset(o, 0xab, rt_usable_size(o));                                                 \
    }

Test(alloc, inline_path_zeroes_reused_slots) {
    const rt_type *tr = rt_type_traced("traced", no_trace);
    size_t offs[] = { 0 };
    const rt_type *entries = rt_type_layout("entries", 136, offs, 1);
    for (int round = 0; round < 3; round++) {
        ALLOC_DIRTY_ZEROED(16, RT_NOSCAN);
        ALLOC_DIRTY_ZEROED(24, RT_NOSCAN);
        ALLOC_DIRTY_ZEROED(144, RT_NOSCAN);
        ALLOC_DIRTY_ZEROED(256, RT_NOSCAN);
        ALLOC_DIRTY_ZEROED(288, RT_NOSCAN);
        ALLOC_DIRTY_ZEROED(40, tr);
        ALLOC_DIRTY_ZEROED(136, entries);
        rt_gc();
    }
}

/* With the barrier on, rt_store records the word it overwrites (never the
   new one: gc/barrier.c), and only if it can be a heap address, in
   [4096, 2^48): NULL, small integers and a NaN-boxing VM's numbers (2^48
   and up) never take a buffer entry.  The flag is set by hand here, with
   no mark running, and the entries are dropped before it is cleared. */
Test(alloc, the_barrier_records_only_overwritten_words_that_can_be_heap_addresses) {
    void **cell = rt_alloc(2 * sizeof(void *), RT_CONSERVATIVE);
    void *obj = rt_alloc(32, RT_NOSCAN);
    void *number = (void *)((uintptr_t)1 << 49), *highest = (void *)(((uintptr_t)1 << 48) - 8);
    rt_p *p = (rt_p *)rt__tls_mcache;
    unsigned n0 = p->wbuf_n;
    __atomic_fetch_or(&rt__flags.word, RT__FLAG_WB, __ATOMIC_SEQ_CST);
    rt_store(&cell[0], number);             /* NULL out: nothing */
    rt_store(&cell[0], obj);                /* the number out: nothing */
    unsigned after_number = p->wbuf_n;
    rt_store(&cell[0], highest);            /* obj out */
    rt_store(&cell[0], (void *)4095);       /* 2^48 - 8 out */
    rt_store(&cell[0], NULL);               /* 4095 out: nothing */
    unsigned n = p->wbuf_n;
    uintptr_t got[2] = { p->wbuf[n0], p->wbuf[n0 + 1] };
    p->wbuf_n = n0;
    __atomic_fetch_and(&rt__flags.word, ~RT__FLAG_WB, __ATOMIC_SEQ_CST);
    cr_assert_eq(after_number, n0, "NULL, a word at 2^49 or a new value was recorded");
    cr_assert_eq(n, n0 + 2, "%u entries recorded, expected obj and 2^48 - 8", n - n0);
    cr_assert_eq(got[0], (uintptr_t)obj);
    cr_assert_eq(got[1], (uintptr_t)highest);
    cr_assert_eq(cell[0], NULL, "the store itself still happens");
}

Test(alloc, large_objects_get_their_own_span_and_keep_the_type_there) {
    size_t offs[] = { 0 };
    const rt_type *t = rt_type_layout("cell", 8, offs, 1);
    void **a = rt_alloc_array(t, 10000);   /* 80000 bytes */
    rt_span *s = rt__span_of_heap((uintptr_t)a);
    cr_assert_eq((uintptr_t)a, s->hot.base);
    cr_assert_eq(rt__spanclass_size(s->hot.spanclass), 0);
    cr_assert_eq(s->npages, (80000 + RT_PAGE_SIZE - 1) / RT_PAGE_SIZE);
    cr_assert_eq(s->large_type, t);
    cr_assert_eq(rt__span_of_heap((uintptr_t)a + 79999), s, "interior pages map to the span");
    cr_assert_geq(rt_usable_size(a), 80000);
    /* 32760 is still small, 32761 is large (Go 1.22+ rule) */
    void *p = (rt_alloc)(32760, RT_NOSCAN), *q = (rt_alloc)(32761, RT_NOSCAN);
    cr_assert_neq(rt__spanclass_size(rt__span_of_heap((uintptr_t)p)->hot.spanclass), 0);
    cr_assert_eq(rt__spanclass_size(rt__span_of_heap((uintptr_t)q)->hot.spanclass), 0);
}

Test(alloc, tiny_objects_share_blocks_with_go_alignment) {
    char *a = rt_alloc(1, RT_NOSCAN);     /* new block, offset 0 */
    char *b = rt_alloc(4, RT_NOSCAN);     /* aligned to 4 */
    char *c = rt_alloc(2, RT_NOSCAN);     /* aligned to 2 */
    char *d = rt_alloc(8, RT_NOSCAN);     /* 8-aligned: does not fit, new block */
    cr_assert_eq((uintptr_t)a % 16, 0);
    cr_assert_eq((uintptr_t)b, (uintptr_t)a + 4);
    cr_assert_eq((uintptr_t)c, (uintptr_t)a + 8);
    cr_assert_eq((uintptr_t)d % 8, 0);
    cr_assert_neq((uintptr_t)d & ~(uintptr_t)15, (uintptr_t)a & ~(uintptr_t)15);
    char *e = (rt_alloc)(3, RT_NOSCAN);   /* generic path agrees with the inline one */
    cr_assert(((uintptr_t)e & ~(uintptr_t)15) == ((uintptr_t)a & ~(uintptr_t)15) ||
              ((uintptr_t)e & ~(uintptr_t)15) == ((uintptr_t)d & ~(uintptr_t)15));
    /* 16 bytes and pointerful small objects never use the tiny allocator */
    char *f = rt_alloc(16, RT_NOSCAN);
    cr_assert_eq((uintptr_t)f % 16, 0);
    cr_assert_eq(rt_usable_size(f), 16);
    rt_span *s = rt__span_of_heap((uintptr_t)a);
    cr_assert_eq(s->hot.spanclass, RT_TINY_SPAN_CLASS);
}

Test(alloc, inline_path_and_generic_path_fill_the_same_spans) {
    void *p = rt_alloc(48, RT_NOSCAN);           /* constant size: inline */
    size_t n = 48;
    __asm__ volatile("" : "+r"(n));              /* hide the constant */
    void *q = rt_alloc(n, RT_NOSCAN);            /* generic */
    cr_assert_eq(rt__span_of_heap((uintptr_t)p), rt__span_of_heap((uintptr_t)q));
    cr_assert_eq((uintptr_t)q, (uintptr_t)p + 48, "next slot of the same span");
}

/* The fast path's last slot of a 128-slot span (64-byte noscan) when the
   first 63 slots of its second word are taken: the free slot is bit 63 of
   the cache, and consuming it shifts the cache by 64, undefined in C (x86
   leaves the bit set; UBSan stops).  The span's hot prefix is enough. */
Test(alloc, inline_path_takes_the_last_slot_of_a_cache_word) {
    rt__span h = { .alloc_cache = (uint64_t)1 << 63, .base = 0x100000, .elemsize = 64,
                   .freeindex = 64, .nelems = 128, .alloc_count = 127 };
    __asm__ volatile("" : : "r"(&h) : "memory");   /* no constant folding: the shift happens at run time */
    uintptr_t p = rt__span_next_free_fast(&h, 64);
    cr_assert_eq(p, (uintptr_t)0x100000 + 127 * 64, "took %#lx", (unsigned long)p);
    cr_assert_eq(h.alloc_cache, 0, "cache %#llx left after the last slot", (unsigned long long)h.alloc_cache);
    cr_assert_eq(h.freeindex, 128);
    cr_assert_eq(h.alloc_count, 128);
    cr_assert_eq(rt__span_next_free_fast(&h, 64), 0, "a full span gives nothing");
}

Test(alloc, span_fills_exactly_and_moves_on) {
    rt_span *first = NULL;
    size_t seen = 0;
    for (;;) {
        void *p = rt_alloc(256, RT_NOSCAN);
        rt_span *s = rt__span_of_heap((uintptr_t)p);
        if (!first) first = s;
        if (s != first) break;
        seen++;
    }
    cr_assert_eq(seen, first->hot.nelems, "span of %u slots gave %zu", first->hot.nelems, seen);
    cr_assert_eq(first->hot.alloc_count, first->hot.nelems);
    rt__span_check(first);
}

Test(alloc, scan_spans_reserve_their_heap_bits) {
    size_t offs[] = { 0 };
    const rt_type *t = rt_type_layout("p64", 64, offs, 1);
    typedef struct { void *p[8]; } P64;
    void *o = rt_new(P64, t);
    rt_span *s = rt__span_of_heap((uintptr_t)o);
    cr_assert_eq(s->hot.nelems, (RT_PAGE_SIZE - RT__HEAPBITS_BYTES) / 64);   /* 126, as Go */
    cr_assert_leq(s->limit, (uintptr_t)rt__span_heapbits(s));
}

Test(alloc, a_big_layout_type_allocated_small_still_gets_a_header) {
    size_t offs[] = { 0 };
    const rt_type *big = rt_type_layout("big", 1024, offs, 1);
    void *o = (rt_alloc)(64, big);
    uintptr_t base = rt__find_object((uintptr_t)o, NULL, NULL);
    cr_assert_eq((uintptr_t)o, base + RT_HEADER_SIZE, "the pointer map comes from the header");
    cr_assert_eq(*(const rt_type **)base, big);
}

Test(alloc, inline_path_with_a_smaller_size_than_the_type_stays_in_its_slot) {
    size_t offs[] = { 0, 24 };
    const rt_type *t = rt_type_layout("32B", 32, offs, 2);
    void *o = rt_alloc(16, t);   /* constant 16 < type size 32: generic path, mask cut to the slot */
    rt_span *s = rt__span_of_heap((uintptr_t)o);
    cr_assert_eq(s->hot.elemsize, 16);
    uintptr_t w = ((uintptr_t)o - s->hot.base) / 8;
    const uint64_t *hb = rt__span_heapbits(s);
    cr_assert_eq(hb[w / 64] >> (w % 64) & 3, 1, "only word 0 is a pointer in a 16-byte slot");
    cr_assert_eq(hb[(w + 2) / 64] >> ((w + 2) % 64) & 3, 0, "the next slot's bits are untouched");
}

static int heap_bit(const rt_span *s, uintptr_t word) {
    const uint64_t *hb = rt__span_heapbits(s);
    return (int)(hb[word / 64] >> (word % 64) & 1);
}

/* A type filling its slot exactly, pointers at words 0, nw/2 and nw-1. */
static const rt_type *edge_type(size_t elemsize) {
    size_t nw = elemsize / 8, offs[3] = { 0, nw / 2 * 8, (nw - 1) * 8 };
    size_t n = nw == 1 ? 1 : nw == 2 ? 2 : 3;
    if (nw == 2) offs[1] = 8;
    return rt_type_layout("edges", elemsize, offs, n);
}

Test(alloc, a_fresh_span_is_filled_for_its_first_type_at_every_slot) {
    for (unsigned cls = 1; cls < RT_NUM_SIZE_CLASSES; cls++) {
        size_t sz = rt__class_to_size[cls];
        if (sz > RT__MAX_NOHEADER_SIZE) break;
        const rt_type *t = edge_type(sz);
        void *o = (cls % 2) ? (rt_alloc)(sz, t) : rt_alloc(sz, t);
        rt_span *s = rt__span_of_heap((uintptr_t)o);
        cr_assert_eq(s->hot.elemsize, sz);
        cr_assert_eq(s->hot.hb_type, t, "class %u (%zu B): the span is not filled for its first type", cls, sz);
        size_t nw = sz / 8;
        for (uintptr_t i = 0; i < s->hot.nelems; i++)
            for (uintptr_t k = 0; k < nw; k++) {
                int want = k == 0 || k == nw / 2 || k == nw - 1;
                cr_assert_eq(heap_bit(s, i * nw + k), want, "%zu-byte class: slot %lu word %lu", sz,
                             (unsigned long)i, (unsigned long)k);
            }
        void *o2 = (rt_alloc)(sz, t);
        cr_assert_eq(rt__span_of_heap((uintptr_t)o2), s);
        cr_assert_eq(s->hot.hb_type, t, "a second object of the same type changed the span's state");
    }
}

typedef struct PtrFirst { void *p; long n; } PtrFirst;
typedef struct PtrSecond { long n; void *p; } PtrSecond;

Test(alloc, a_second_type_turns_the_span_mixed_and_every_object_keeps_its_bits) {
    size_t o1[] = { offsetof(PtrFirst, p) }, o2[] = { offsetof(PtrSecond, p) };
    const rt_type *a = rt_type_layout("ptr-first", sizeof(PtrFirst), o1, 1);
    const rt_type *b = rt_type_layout("ptr-second", sizeof(PtrSecond), o2, 1);
    void *objs[12];
    const rt_type *types[12];
    for (int i = 0; i < 12; i++) {
        types[i] = (i == 3 || i == 7 || i == 8) ? b : a;   /* a, a, a, b, a, ... */
        objs[i] = (i % 2) ? rt_alloc(16, types[i]) : (rt_alloc)(16, types[i]);
    }
    rt_span *s = rt__span_of_heap((uintptr_t)objs[0]);
    cr_assert_eq(s->hot.hb_type, RT__HB_MIXED);
    for (int i = 0; i < 12; i++) {
        cr_assert_eq(rt__span_of_heap((uintptr_t)objs[i]), s);
        uintptr_t w = ((uintptr_t)objs[i] - s->hot.base) / 8;
        int first = types[i] == a;
        cr_assert_eq(heap_bit(s, w), first, "object %d word 0", i);
        cr_assert_eq(heap_bit(s, w + 1), !first, "object %d word 1", i);
    }
}

Test(alloc, an_array_turns_a_fresh_span_mixed) {
    size_t offs[] = { 0 };
    const rt_type *t = rt_type_layout("ptr+long", 16, offs, 1);
    void *arr = rt_alloc_array(t, 3);   /* 48 bytes: a slot of three elements, not one */
    rt_span *s = rt__span_of_heap((uintptr_t)arr);
    cr_assert_eq(s->hot.hb_type, RT__HB_MIXED);
    void *one = (rt_alloc)(48, rt_type_layout("48", 48, offs, 1));
    cr_assert_eq(rt__span_of_heap((uintptr_t)one), s);
    uintptr_t w = ((uintptr_t)one - s->hot.base) / 8;
    for (uintptr_t k = 0; k < 6; k++) cr_assert_eq(heap_bit(s, w + k), k == 0, "word %lu", (unsigned long)k);
}
