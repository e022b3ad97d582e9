/* tests/test_sweep_span.c -- sweeping one span: given mark bits, exactly the
 * unmarked slots become free and come back zeroed; an empty span returns its
 * pages to the page heap. */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>

#include "internal.h"

static void setup(void) {
    rt_options o = { .gc_percent = RT_GC_OFF, .scan_thread_stacks = 1 };
    cr_assert_eq(rt_init(&o), RT_OK);
    cr_assert_eq(rt_thread_attach(), RT_OK);
}
static void teardown(void) { rt_shutdown(); }
TestSuite(sweep, .init = setup, .fini = teardown);

/* A full span of class cls, every slot filled with 0xee. */
static rt_span *full_span(unsigned cls) {
    unsigned spc = rt__spanclass(cls, true);
    rt_span *s = rt__heap_alloc_span(rt__class_to_npages[cls], spc, NULL);
    cr_assert_not_null(s);
    uintptr_t p;
    while ((p = rt__span_next_free(s)) != 0) memset((void *)p, 0xee, s->hot.elemsize);
    cr_assert_eq(s->hot.alloc_count, s->hot.nelems);
    return s;
}

static void own_for_sweep(rt_span *s) { s->sweepgen = rt__heap.sweepgen - 1; }

Test(sweep, exactly_the_unmarked_slots_come_back_zeroed) {
    unsigned cls = 9;   /* 112 B: never touched by anything else in this process */
    rt_span *s = full_span(cls);
    unsigned n = s->hot.nelems;
    bool keep[1024];
    unsigned kept = 0;
    for (unsigned i = 0; i < n; i++) {
        keep[i] = (i * 7 + 3) % 5 < 2 || i == 0 || i == n - 1 || i == 63 || i == 64;
        if (keep[i]) { rt__span_set_mark(s, i); kept++; }
    }
    own_for_sweep(s);
    rt__sweep_span(s, false);
    cr_assert_eq(s->sweepgen, rt__heap.sweepgen);
    cr_assert_eq(s->hot.alloc_count, kept);
    cr_assert(s->hot.needzero);
    cr_assert_eq(rt__span_count_marks(s), 0, "fresh mark bits after the swap");
    for (unsigned i = 0; i < n; i++) cr_assert_eq(!rt__span_is_free(s, i), keep[i], "slot %u", i);
    /* The span is now the only partial span of its class: rt_alloc takes
       from it, returning exactly the freed slots in address order, zeroed. */
    unsigned got = 0;
    for (unsigned i = 0; i < n; i++) {
        if (keep[i]) continue;
        unsigned char *p = (rt_alloc)(112, RT_NOSCAN);
        cr_assert_eq((uintptr_t)p, s->hot.base + (uintptr_t)i * 112, "freed slot %u expected", i);
        for (int k = 0; k < 112; k++) cr_assert_eq(p[k], 0, "slot %u byte %d not zeroed", i, k);
        got++;
    }
    cr_assert_eq(got, n - kept);
    unsigned char *next = (rt_alloc)(112, RT_NOSCAN);
    cr_assert_neq(rt__span_of_heap((uintptr_t)next), s, "the span is full again");
}

/* Every slot of the largest span (1024 slots of 8 bytes, 16 bitmap words)
   keeps exactly its own mark through the sweep, whatever its neighbours
   hold; a second mark of a slot does not report it as new. */
Test(sweep, marks_become_exactly_the_allocation_bits) {
    rt_span *s = full_span(1);
    unsigned n = s->hot.nelems, kept = 0;
    cr_assert_eq(n, 1024);
    bool keep[1024];
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (unsigned i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        keep[i] = (x & 3) == 0 || i % 64 == 0 || i % 64 == 63 || i % 8 == 7;
        if (!keep[i]) continue;
        cr_assert(rt__span_set_mark(s, i));
        cr_assert_not(rt__span_set_mark(s, i), "slot %u: a second mark reports it new", i);
        kept++;
    }
    for (unsigned i = 0; i < n; i++) cr_assert_eq(rt__span_is_marked(s, i), keep[i], "slot %u", i);
    cr_assert_eq(rt__span_count_marks(s), kept);
    own_for_sweep(s);
    rt__sweep_span(s, false);
    cr_assert_eq(s->hot.alloc_count, kept);
    cr_assert_eq(rt__span_count_marks(s), 0);
    for (unsigned i = 0; i < n; i++) cr_assert_eq(!rt__span_is_free(s, i), keep[i], "slot %u", i);
}

/* Sweep starts the span at its first free slot (so the marker can trust a
   full span from freeindex_for_scan alone), the allocation cache agrees
   with it wherever that slot falls in its 64-slot word, and a span with
   every slot marked starts full. */
Test(sweep, freeindex_starts_at_the_first_free_slot) {
    rt_span *s = full_span(1);   /* 1024 slots of 8 bytes */
    unsigned n = s->hot.nelems;
    const unsigned firsts[] = { 0, 1, 63, 64, 65, 500, 1023 };
    for (unsigned f = 0; f < sizeof firsts / sizeof firsts[0]; f++) {
        unsigned first = firsts[f];
        /* Every slot below first is marked, first is not, some after are. */
        for (unsigned i = 0; i < n; i++)
            if (i < first || (i > first && i % 3 == 0)) rt__span_set_mark(s, i);
        own_for_sweep(s);
        rt__sweep_span(s, true);
        cr_assert_eq(s->hot.freeindex, first, "first free slot %u", first);
        cr_assert_eq(s->freeindex_for_scan, first);
        RT_CHECK(rt__span_check(s));
        /* The next allocations are exactly the free slots from first on. */
        for (unsigned i = first, k = 0; i < n && k < 70; i++) {
            if (i != first && i % 3 == 0) continue;
            cr_assert_eq(rt__span_next_free(s), s->hot.base + (uintptr_t)i * 8, "after first=%u, slot %u", first, i);
            k++;
        }
        while (rt__span_next_free(s) != 0) {}
        cr_assert_eq(s->hot.alloc_count, n);
    }
    for (unsigned i = 0; i < n; i++) rt__span_set_mark(s, i);
    own_for_sweep(s);
    rt__sweep_span(s, true);
    cr_assert_eq(s->hot.freeindex, n, "every slot survived: the span starts full");
    cr_assert_eq(s->freeindex_for_scan, n);
    cr_assert_eq(rt__span_next_free(s), 0);
    RT_CHECK(rt__span_check(s));
}

Test(sweep, an_empty_span_returns_its_pages) {
    rt_span *s = full_span(40);   /* 2688 B, 1 page */
    uintptr_t base = s->hot.base;
    size_t inuse = rt__pages_inuse(rt__heap.pages);
    cr_assert(rt__pages_is_allocated(rt__heap.pages, base));
    own_for_sweep(s);
    rt__sweep_span(s, false);
    cr_assert_not(rt__pages_is_allocated(rt__heap.pages, base));
    cr_assert_eq(rt__pages_inuse(rt__heap.pages), inuse - 1);
    cr_assert_null(rt__span_of_heap(base), "the address no longer maps to a span");
    rt__heap_check();
}

Test(sweep, preserve_keeps_an_empty_span_for_the_caller) {
    rt_span *s = full_span(41);
    own_for_sweep(s);
    rt__sweep_span(s, true);
    cr_assert_eq(s->state, RT_SPAN_INUSE);
    cr_assert_eq(s->hot.alloc_count, 0);
    cr_assert(rt__span_next_free(s) == s->hot.base, "first slot free again");
}

Test(sweep, clobberfree_fills_freed_slots) {
    rt__cfg.clobberfree = 1;
    rt_span *s = full_span(12);   /* 160 B */
    rt__span_set_mark(s, 1);
    own_for_sweep(s);
    rt__sweep_span(s, false);
    uint32_t *freed = (uint32_t *)s->hot.base, *kept = (uint32_t *)(s->hot.base + 160);
    cr_assert_eq(freed[0], 0xdeadbeefu);
    cr_assert_eq(freed[39], 0xdeadbeefu);
    cr_assert_eq(kept[0], 0xeeeeeeeeu, "marked slot untouched");
}

Test(sweep, a_marked_free_slot_is_reported, .signal = SIGABRT) {
    unsigned spc = rt__spanclass(10, true);
    rt_span *s = rt__heap_alloc_span(1, spc, NULL);
    rt__span_next_free(s);            /* slot 0 allocated, slot 5 free */
    rt__span_set_mark(s, 5);
    own_for_sweep(s);
    rt__sweep_span(s, false);
}
