/* tests/test_misuse.c -- bad input gets one clear line naming the call and
 * the fix, then abort (death tests); a bad environment value only warns. */
#include <criterion/criterion.h>
#include <signal.h>

#include "internal.h"

static void init_only(void) { rt_init(NULL); }
static void init_attached(void) { rt_init(NULL); rt_thread_attach(); }

Test(misuse, alloc_from_an_unattached_thread, .init = init_only, .signal = SIGABRT) {
    (rt_alloc)(16, RT_NOSCAN);
}

Test(misuse, inline_alloc_from_an_unattached_thread, .init = init_only, .signal = SIGABRT) {
    rt_alloc(24, RT_NOSCAN);
}

Test(misuse, alloc_before_init, .signal = SIGABRT) {
    rt_alloc(24, RT_NOSCAN);
}

Test(misuse, alloc_inside_a_blocking_region, .init = init_attached, .signal = SIGABRT) {
    rt_enter_blocking();
    rt_alloc(24, RT_NOSCAN);
}

Test(misuse, array_size_overflow, .init = init_attached, .signal = SIGABRT) {
    size_t offs[] = { 0 };
    const rt_type *t = rt_type_layout("p", 16, offs, 1);
    rt_alloc_array(t, SIZE_MAX / 8);
}

Test(misuse, attach_twice, .init = init_attached, .signal = SIGABRT) {
    rt_thread_attach();
}

Test(misuse, detach_unattached, .init = init_only, .signal = SIGABRT) {
    rt_thread_detach();
}

Test(misuse, bad_type_pointer, .init = init_attached, .signal = SIGABRT) {
    static long not_a_type[8];
    (rt_alloc)(32, (const rt_type *)not_a_type);
}

Test(misuse, misaligned_layout_offset, .init = init_attached, .signal = SIGABRT) {
    size_t offs[] = { 4 };
    rt_type_layout("bad", 16, offs, 1);
}

Test(misuse, removing_a_root_twice, .init = init_attached, .signal = SIGABRT) {
    static void *slot;
    rt_root *r = rt_root_add(&slot);
    rt_root_remove(r);
    rt_root_remove(r);
}

Test(misuse, usable_size_of_a_non_heap_pointer, .init = init_attached, .signal = SIGABRT) {
    static char buf[16];
    rt_usable_size(buf);
}

/* Nothing is corrupted by a refused call: the heap still verifies after a
   run of misuse that does not abort (a bad environment value). */
Test(misuse, bad_environment_value_is_harmless) {
    setenv("RTGC", "nonsense", 1);
    cr_assert_eq(rt_init(NULL), RT_OK);
    unsetenv("RTGC");
    rt_thread_attach();
    void *p = rt_alloc(100, RT_CONSERVATIVE);
    cr_assert_not_null(p);
    rt_gc();
    rt__heap_check();
    rt_shutdown();
}
