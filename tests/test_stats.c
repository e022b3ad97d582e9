/* tests/test_stats.c -- rt_read_mem_stats agrees with what was allocated
 * and swept: exact counts and bytes, including allocations still counted
 * in mcaches and tiny sub-allocations. */
#include <criterion/criterion.h>

#include "internal.h"

static void setup(void) {
    rt_options o = { .gc_percent = RT_GC_OFF, .scan_thread_stacks = RT_SCAN_STACKS_OFF };
    cr_assert_eq(rt_init(&o), RT_OK);
    cr_assert_eq(rt_thread_attach(), RT_OK);
}
static void teardown(void) { rt_shutdown(); }
TestSuite(stats, .init = setup, .fini = teardown);

static void *keep[20000];

Test(stats, allocation_and_free_arithmetic) {
    rt_root *r = rt_root_add_range(keep, sizeof keep, RT_ROOT_PRECISE);
    rt_mem_stats a, b, c;
    rt_read_mem_stats(&a);
    for (int i = 0; i < 10000; i++) keep[i] = rt_alloc(48, RT_NOSCAN);      /* class 48 B */
    for (int i = 10000; i < 10100; i++) keep[i] = (rt_alloc)(100000, RT_NOSCAN);  /* large: 13 pages */
    rt_read_mem_stats(&b);
    cr_assert_eq(b.mallocs - a.mallocs, 10100);
    cr_assert_eq(b.total_alloc - a.total_alloc, 10000 * 48 + 100 * 13 * 8192ULL);
    cr_assert_eq(b.heap_alloc - a.heap_alloc, b.total_alloc - a.total_alloc);
    cr_assert_eq(b.heap_objects, b.mallocs - b.frees);
    cr_assert_eq(b.heap_idle, b.heap_sys - b.heap_inuse);
    cr_assert_eq(b.heap_inuse, (uint64_t)rt__pages_inuse(rt__heap.pages) * RT_PAGE_SIZE);
    cr_assert_geq(b.heap_inuse, b.heap_alloc);
    cr_assert_leq(b.heap_released, b.heap_idle);
    /* Drop half of the small objects and all large ones; collect. */
    for (int i = 0; i < 10000; i += 2) keep[i] = NULL;
    for (int i = 10000; i < 10100; i++) keep[i] = NULL;
    rt_gc();
    rt_read_mem_stats(&c);
    cr_assert_eq(c.frees - b.frees, 5000 + 100);
    cr_assert_eq(b.heap_alloc - c.heap_alloc, 5000 * 48 + 100 * 13 * 8192ULL);
    cr_assert_eq(c.heap_objects, c.mallocs - c.frees);
    cr_assert_eq(c.num_gc, b.num_gc + 1);
    cr_assert_eq(c.num_forced_gc, 1);
    cr_assert_gt(c.pause_ns[(c.num_gc + 255) % 256], 0);
    cr_assert_eq(c.pause_total_ns, c.pause_ns[(c.num_gc + 255) % 256] + (b.num_gc ? b.pause_total_ns : 0));
    cr_assert_lt(c.heap_inuse, b.heap_inuse, "large objects' pages went back");
    rt_root_remove(r);
}

Test(stats, tiny_allocations_count_as_mallocs_and_their_block_as_the_object) {
    rt_mem_stats a, b;
    rt_read_mem_stats(&a);
    volatile char *x = rt_alloc(4, RT_NOSCAN);
    volatile char *y = rt_alloc(4, RT_NOSCAN);
    volatile char *z = rt_alloc(4, RT_NOSCAN);
    (void)x; (void)y; (void)z;
    rt_read_mem_stats(&b);
    cr_assert_eq(b.mallocs - a.mallocs, 3);
    cr_assert_eq(b.frees - a.frees, 2, "sub-allocations inside an existing block count as freed too (Go)");
    cr_assert_eq(b.heap_objects - a.heap_objects, 1, "one 16-byte block");
    cr_assert_eq(b.total_alloc - a.total_alloc, 16);
}

Test(stats, next_gc_follows_the_goal) {
    rt_root *r = rt_root_add_range(keep, sizeof keep, RT_ROOT_PRECISE);
    rt_set_gc_percent(100);
    for (int i = 0; i < 20000; i++) keep[i] = rt_alloc(512, RT_NOSCAN);   /* ~10 MiB live */
    rt_gc();
    rt_mem_stats s;
    rt_read_mem_stats(&s);
    cr_assert_eq(s.heap_alloc, 20000 * 512ULL, "heap_alloc %llu", (unsigned long long)s.heap_alloc);
    /* goal = marked + (marked - black + stacks + globals) * RTGC/100 (Go's,
       but for black, which is 0 here: nothing is allocated during this
       mark); the root range is the only global and stacks are not scanned. */
    cr_assert_eq(s.next_gc, 2 * s.heap_alloc + sizeof keep, "goal = marked * 2 + roots");
    rt_set_gc_percent(50);
    rt_read_mem_stats(&s);
    cr_assert_eq(s.next_gc, s.heap_alloc + (s.heap_alloc + sizeof keep) / 2);
    rt_root_remove(r);
}
