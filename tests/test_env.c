/* tests/test_env.c -- one options table for rt_options and the environment:
 * forms accepted, precedence, and the one-line warning for bad values. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdlib.h>

#include "internal.h"

static void clear_env(void) {
    unsetenv("RTGC"); unsetenv("RTMEMLIMIT"); unsetenv("RTMAXPROCS"); unsetenv("RTHEAPMIN"); unsetenv("RTDEBUG");
}

Test(env, defaults) {
    clear_env();
    cr_assert_eq(rt_init(NULL), RT_OK);
    cr_assert_eq(rt__cfg.gc_percent, 100);
    cr_assert_eq(rt__cfg.memory_limit, INT64_MAX);
    cr_assert_eq(rt__cfg.maxprocs, rt__ncpu());
    cr_assert_eq(rt__cfg.scan_thread_stacks, 1);
    cr_assert_eq(rt__cfg.heap_minimum, 4 << 20, "Go's heapMinimum");
    cr_assert_eq(rt__cfg.smallgc, 64 << 10);
    cr_assert_eq(rt_init(NULL), RT_EALREADY);
    rt_shutdown();
}

Test(env, rtgc_forms) {
    clear_env();
    setenv("RTGC", "250", 1);
    rt_init(NULL);
    cr_assert_eq(rt__cfg.gc_percent, 250);
    rt_shutdown();
    setenv("RTGC", "off", 1);
    rt_init(NULL);
    cr_assert_eq(rt__cfg.gc_percent, -1);
    rt_shutdown();
}

static int64_t limit_for(const char *s) {
    setenv("RTMEMLIMIT", s, 1);
    rt_init(NULL);
    int64_t v = rt__cfg.memory_limit;
    rt_shutdown();
    return v;
}

Test(env, rtmemlimit_takes_gos_forms) {
    clear_env();
    cr_assert_eq(limit_for("512MiB"), 512LL << 20);
    cr_assert_eq(limit_for("2GiB"), 2LL << 30);
    cr_assert_eq(limit_for("1e9"), 1000000000LL);
    cr_assert_eq(limit_for("4096"), 4096);
    cr_assert_eq(limit_for("100B"), 100);
    cr_assert_eq(limit_for("3KiB"), 3072);
    cr_assert_eq(limit_for("1TiB"), 1LL << 40);
    cr_assert_eq(limit_for("off"), INT64_MAX);
}

Test(env, rtheapmin_sets_the_goal_floor_scaled_by_rtgc) {
    clear_env();
    setenv("RTHEAPMIN", "512KiB", 1);
    rt_init(NULL);
    cr_assert_eq(rt__cfg.heap_minimum, 512 << 10);
    rt_mem_stats st;
    rt_thread_attach();
    rt_read_mem_stats(&st);
    cr_assert_eq(st.next_gc, 512 << 10, "an empty heap's goal is the minimum");
    rt_set_gc_percent(50);
    rt_read_mem_stats(&st);
    cr_assert_eq(st.next_gc, 256 << 10, "scaled by RTGC/100, as Go's");
    rt_shutdown();
    unsetenv("RTHEAPMIN");
    rt_options o = { .heap_minimum = 1 << 20 };
    rt_init(&o);
    rt_thread_attach();
    rt_read_mem_stats(&st);
    cr_assert_eq(st.next_gc, 1 << 20, "rt_options.heap_minimum");
    rt_shutdown();
}

Test(env, rtdebug_keys) {
    clear_env();
    setenv("RTDEBUG", "gctrace=1,gcstress=7,clobberfree=1,invalidptr=1,gcstoptheworld=2", 1);
    rt_init(NULL);
    cr_assert_eq(rt__cfg.gctrace, 1);
    cr_assert_eq(rt__cfg.gcstress, 7);
    cr_assert_eq(rt__cfg.clobberfree, 1);
    cr_assert_eq(rt__cfg.invalidptr, 1);
    cr_assert_eq(rt__cfg.gcstoptheworld, 2);
    cr_assert(rt__flags.word & RT__FLAG_SLOWALLOC, "gcstress routes every allocation to the slow path");
    rt_shutdown();
}

Test(env, precedence_defaults_then_options_then_environment) {
    clear_env();
    rt_options o = { .gc_percent = 300, .maxprocs = 5, .scan_thread_stacks = RT_SCAN_STACKS_OFF, .debug = "gctrace=1" };
    rt_init(&o);
    cr_assert_eq(rt__cfg.gc_percent, 300);
    cr_assert_eq(rt__cfg.maxprocs, 5);
    cr_assert_eq(rt__cfg.scan_thread_stacks, 0);
    cr_assert_eq(rt__cfg.gctrace, 1);
    rt_shutdown();
    setenv("RTGC", "50", 1);
    setenv("RTDEBUG", "gctrace=0", 1);
    rt_init(&o);
    cr_assert_eq(rt__cfg.gc_percent, 50, "environment beats rt_options");
    cr_assert_eq(rt__cfg.gctrace, 0);
    cr_assert_eq(rt__cfg.maxprocs, 5);
    rt_thread_attach();
    cr_assert_eq(rt_set_gc_percent(75), 50);
    cr_assert_eq(rt__cfg.gc_percent, 75, "setters beat the environment");
    rt_shutdown();
}

static void redirect(void) { cr_redirect_stderr(); }

Test(env, malformed_values_warn_once_and_keep_the_default, .init = redirect) {
    clear_env();
    setenv("RTGC", "lots", 1);
    setenv("RTMEMLIMIT", "12XB", 1);
    setenv("RTMAXPROCS", "0", 1);
    setenv("RTHEAPMIN", "4KiB", 1);
    setenv("RTDEBUG", "gctrace=yes,nosuchkey=1", 1);
    rt_init(NULL);
    cr_assert_eq(rt__cfg.gc_percent, 100);
    cr_assert_eq(rt__cfg.memory_limit, INT64_MAX);
    cr_assert_eq(rt__cfg.maxprocs, rt__ncpu());
    cr_assert_eq(rt__cfg.gctrace, 0);
    cr_assert_eq(rt__cfg.heap_minimum, 4 << 20);
    rt_shutdown();
    fflush(stderr);
    cr_assert_stderr_eq_str(
        "rtgc: warning: RTGC=lots is malformed; it takes a percentage such as 100, or off; keeping the default\n"
        "rtgc: warning: RTMEMLIMIT=12XB is malformed; it takes a byte count such as 512MiB, 2GiB, 1e9 (units B, KiB, MiB, GiB, TiB), or off; keeping the default\n"
        "rtgc: warning: RTMAXPROCS=0 is malformed; it takes a positive integer; keeping the default\n"
        "rtgc: warning: RTHEAPMIN=4KiB is malformed; it takes a byte count of at least 64KiB, such as 512KiB or 4MiB; keeping the default\n"
        "rtgc: warning: RTDEBUG: gctrace=yes is malformed; gctrace takes 0, 1 or 2; keeping the default\n"
        "rtgc: warning: RTDEBUG: unknown setting 'nosuchkey'; accepted keys: gctrace, gccheckmark, gcstoptheworld, gcstress, smallgc, clobberfree, invalidptr, scavtrace, madvdontneed, hugepages, failmmap, verify, checkfinalizers (k=v,k=v)\n");
}

Test(env, out_of_range_options_are_refused, .init = redirect) {
    clear_env();
    rt_options o = { .gc_percent = -5, .scan_thread_stacks = 1 };
    cr_assert_eq(rt_init(&o), RT_EINVAL);
    rt_options o2 = { .maxprocs = -1, .scan_thread_stacks = 1 };
    cr_assert_eq(rt_init(&o2), RT_EINVAL);
    rt_options o3 = { .heap_minimum = 4096 };
    cr_assert_eq(rt_init(&o3), RT_EINVAL, "a minimum heap under 64 KiB");
    cr_assert_eq(rt_init(NULL), RT_OK, "nothing was half-initialized");
    rt_shutdown();
}

static void oom(size_t n, void *ctx) { (void)n; (void)ctx; }

Test(env, an_oom_handler_set_before_init_survives_it) {
    clear_env();
    rt_set_oom_handler(oom, NULL);
    rt_init(NULL);
    cr_assert_eq(rt__g.oom_fn, oom);
    rt_shutdown();
}

Test(env, a_zeroed_options_struct_keeps_stack_scanning_on) {
    clear_env();
    rt_options o = { .gc_percent = 200 };
    rt_init(&o);
    cr_assert_eq(rt__cfg.scan_thread_stacks, 1, "only RT_SCAN_STACKS_OFF turns the scan off");
    rt_shutdown();
}
