/* tests/test_sweep_span.c -- sweeping one span: given mark bytes, exactly the
 * unmarked slots become free and come back zeroed; an empty span returns its
 * pages to the page heap, or stays in its class while the class's budget
 * (last cycle's demand) lasts; allocate-black premarking of a span's free
 * slots. */
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

/* Allocate black (runtime/span.c): premark marks exactly the free slots
   and leaves the marks of allocated ones as the marker set them; unpremark
   clears the slots still free, keeps what was allocated in between, and
   returns its bytes.  Markers write the marks of allocated slots while
   this happens, so touching one would lose or invent a mark. */
Test(sweep, premark_and_unpremark_touch_only_the_free_slots) {
    rt_span *s = full_span(1);   /* 1024 slots of 8 bytes */
    unsigned n = s->hot.nelems;
    for (unsigned i = 0; i < n; i++)
        if (i % 5 != 1) rt__span_set_mark(s, i);   /* the free ones: 1, 6, 11, ... */
    own_for_sweep(s);
    rt__sweep_span(s, true);
    unsigned allocated = s->hot.alloc_count;
    /* The marker has reached some allocated slots this cycle, not others. */
    for (unsigned i = 0; i < n; i++)
        if (i % 5 != 1 && i % 3 == 0) rt__span_set_mark(s, i);
    rt__span_premark(s);
    for (unsigned i = 0; i < n; i++)
        cr_assert_eq(rt__span_is_marked(s, i), i % 5 == 1 || i % 3 == 0, "after premark, slot %u", i);
    unsigned taken = 0;
    for (; taken < 77; taken++) cr_assert_neq(rt__span_next_free(s), 0);
    cr_assert_eq(rt__span_unpremark(s), (uint64_t)taken * 8);
    cr_assert_eq(s->hot.alloc_count, allocated + taken);
    for (unsigned i = 0; i < n; i++) {
        bool new_object = i % 5 == 1 && !rt__span_is_free(s, i);
        cr_assert_eq(rt__span_is_marked(s, i), new_object || (i % 5 != 1 && i % 3 == 0), "after unpremark, slot %u", i);
    }
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

Test(sweep, an_empty_span_stays_in_its_class_while_the_class_has_budget) {
    unsigned cls = 43;   /* 3456 B, 1 page: untouched by the other tests */
    rt_mcentral *c = &rt__heap.central[rt__spanclass(cls, true)];
    rt_span *kept = full_span(cls), *freed = full_span(cls);
    uintptr_t kept_base = kept->hot.base, freed_base = freed->hot.base;
    c->keep_empty = 1;   /* as if the class had handed out one span last cycle */
    own_for_sweep(kept);
    rt__sweep_span(kept, false);
    own_for_sweep(freed);
    rt__sweep_span(freed, false);
    cr_assert(rt__pages_is_allocated(rt__heap.pages, kept_base), "within budget: the pages stay with the class");
    cr_assert_eq(rt__span_of_heap(kept_base), kept);
    cr_assert_not(rt__pages_is_allocated(rt__heap.pages, freed_base), "over budget: the pages go back");
    RT_CHECK(rt__mcentral_check(c));
    /* The kept span is the class's only swept partial span: the next
       allocation of the size comes from its first slot, zeroed. */
    unsigned char *p = (rt_alloc)(rt__class_to_size[cls], RT_NOSCAN);
    cr_assert_eq((uintptr_t)p, kept_base);
    for (unsigned k = 0; k < rt__class_to_size[cls]; k++) cr_assert_eq(p[k], 0, "byte %u not zeroed", k);
    rt__heap_check();
}

/* A span the sweep emptied is zeroed whole when an mcache takes it
   (runtime/mcache.c): every slot it hands out reads zero, in address
   order, and the span no longer asks the fast path to zero. */
Test(sweep, a_span_emptied_by_the_sweep_is_zeroed_whole_when_taken) {
    unsigned cls = 19;   /* 288 B, 28 slots a page: untouched by the other tests */
    rt_mcentral *c = &rt__heap.central[rt__spanclass(cls, true)];
    rt_span *s = full_span(cls);
    uintptr_t base = s->hot.base;
    unsigned n = s->hot.nelems, size = rt__class_to_size[cls];
    c->keep_empty = 1;   /* the pages stay with the class, dirty */
    own_for_sweep(s);
    rt__sweep_span(s, false);
    cr_assert_eq(s->hot.alloc_count, 0);
    cr_assert(s->hot.needzero, "its slots still hold 0xee");
    for (unsigned i = 0; i < n; i++) {
        unsigned char *p = (rt_alloc)(size, RT_NOSCAN);
        cr_assert_eq((uintptr_t)p, base + (uintptr_t)i * size, "slot %u expected", i);
        cr_assert_not(s->hot.needzero, "zeroed when taken, not slot by slot");
        for (unsigned k = 0; k < size; k++) cr_assert_eq(p[k], 0, "slot %u byte %u not zeroed", i, k);
    }
    rt__heap_check();
}

/* No empty span is left in a class's sets (cached spans aside). */
static unsigned empty_spans_in_classes(void) {
    unsigned n = 0;
    for (unsigned i = 0; i < RT__NUM_SPAN_CLASSES; i++) {
        rt_mcentral *c = &rt__heap.central[i];
        pthread_mutex_lock(&c->lock);
        for (int k = 0; k < 2; k++)
            for (size_t j = 0; j < c->partial[k].n; j++) n += c->partial[k].v[j]->hot.alloc_count == 0;
        pthread_mutex_unlock(&c->lock);
    }
    return n;
}

Test(sweep, heap_triggered_cycles_keep_empty_spans_and_rt_gc_returns_them) {
    /* Garbage of one class with nothing live: every span it fills is empty
       at the next sweep.  Cycles the heap starts give the class a budget
       of the spans it used; rt_gc() gives none and sweeps everything. */
    unsigned cls = 44, size = rt__class_to_size[cls];
    rt_mcentral *c = &rt__heap.central[rt__spanclass(cls, true)];
    rt_set_gc_percent(100);
    rt_mem_stats st;
    rt_read_mem_stats(&st);
    uint64_t gcs = st.num_gc;
    int32_t most_kept = 0;
    for (int i = 0; i < 200000; i++) {
        (void)(rt_alloc)(size, RT_NOSCAN);
        if (c->keep_empty > most_kept) most_kept = c->keep_empty;
    }
    rt_read_mem_stats(&st);
    cr_assert_gt(st.num_gc, gcs + 2, "the garbage (%u MiB) must start cycles", 200000u * size >> 20);
    cr_assert_gt(most_kept, 0, "a heap-triggered cycle gives the class a budget");
    rt_gc();
    cr_assert_eq(c->keep_empty, 0);
    cr_assert_eq(empty_spans_in_classes(), 0, "after rt_gc() every empty span has returned its pages");
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
