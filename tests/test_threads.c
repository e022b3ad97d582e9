/* tests/test_threads.c -- Ps and threads: attach/detach, blocking regions
 * hand the P back, the P pool grows instead of making anyone wait and
 * shrinks at collections, and stopping the world reaches every thread at
 * its safepoints, including threads attaching and detaching meanwhile. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <unistd.h>

#include "internal.h"

static void setup(void) {
    rt_options o = { .gc_percent = 100, .maxprocs = 2, .scan_thread_stacks = 1 };
    cr_assert_eq(rt_init(&o), RT_OK);
}
static void teardown(void) { rt_shutdown(); }
TestSuite(threads, .init = setup, .fini = teardown);

Test(threads, attach_gives_a_p_and_detach_returns_it) {
    cr_assert_null(rt__tls_mcache);
    cr_assert_eq(rt_thread_attach(), RT_OK);
    cr_assert_not_null(rt__tls_mcache);
    cr_assert_eq(rt__g.nthreads, 1);
    rt_p *p = rt__tls_thread->p;
    cr_assert(p->in_use);
    rt_thread_detach();
    cr_assert_null(rt__tls_mcache);
    cr_assert_not(p->in_use);
    cr_assert_eq(rt__g.idle_ps, p);
}

Test(threads, blocking_hands_the_p_to_another_thread) {
    cr_assert_eq(rt_thread_attach(), RT_OK);
    int nps = rt__g.nps;
    rt_p *mine = rt__tls_thread->p;
    rt_enter_blocking();
    cr_assert_null(rt__tls_mcache);
    cr_assert_not(mine->in_use);
    rt_exit_blocking();
    cr_assert_not_null(rt__tls_mcache);
    cr_assert_eq(rt__g.nps, nps, "reused the idle P, no new one");
    rt_thread_detach();
}

#define N 6
static atomic_int ready, go_on;
static void *hold_p(void *arg) {
    (void)arg;
    rt_thread_attach();
    void *x = rt_alloc(64, RT_NOSCAN);
    cr_assert_not_null(x);
    atomic_fetch_add(&ready, 1);
    while (!atomic_load(&go_on)) rt_safepoint();   /* running: holds its P */
    rt_thread_detach();
    return NULL;
}

Test(threads, the_pool_grows_when_every_p_is_held_and_shrinks_at_gc) {
    cr_assert_eq(rt_thread_attach(), RT_OK);
    pthread_t t[N];
    for (int i = 0; i < N; i++) pthread_create(&t[i], NULL, hold_p, NULL);
    while (atomic_load(&ready) < N) usleep(1000);
    cr_assert_eq(rt__g.nps, N + 1, "every running thread got its own P without waiting (%d Ps)", rt__g.nps);
    atomic_store(&go_on, 1);
    rt_enter_blocking();
    for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
    rt_exit_blocking();
    int before = rt__g.nps;
    cr_assert_geq(before, 2);
    rt_gc();
    cr_assert_leq(rt__g.nps, 2, "idle Ps beyond RTMAXPROCS retired (%d -> %d)", before, rt__g.nps);
    rt_thread_detach();
}

static atomic_int stop_all;
static atomic_long allocs;
static void *allocator(void *arg) {
    int churn = (int)(intptr_t)arg;
    while (!atomic_load(&stop_all)) {
        rt_thread_attach();
        for (int i = 0; i < 2000; i++) {
            void **p = rt_alloc(32, RT_CONSERVATIVE);
            cr_assert_not_null(p);
            atomic_fetch_add(&allocs, 1);
        }
        if (churn) rt_thread_detach();
        else { rt_safepoint(); rt_thread_detach(); }
    }
    return NULL;
}

Test(threads, stop_the_world_with_mutators_attaching_and_detaching) {
    cr_assert_eq(rt_thread_attach(), RT_OK);
    pthread_t t[3];
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, allocator, (void *)(intptr_t)(i % 2));
    rt_mem_stats st;
    for (int i = 0; i < 30; i++) { rt_gc(); rt_safepoint(); }
    atomic_store(&stop_all, 1);
    rt_enter_blocking();
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    rt_exit_blocking();
    rt_read_mem_stats(&st);
    cr_assert_geq(st.num_gc, 30);
    cr_assert_gt(atomic_load(&allocs), 0);
    cr_assert_eq(rt__g.nthreads, 1);
    rt_thread_detach();
}

static atomic_int spinning;
static void *safepoint_loop(void *arg) {
    (void)arg;
    rt_thread_attach();
    atomic_store(&spinning, 1);
    while (!atomic_load(&stop_all)) rt_safepoint();   /* no allocation: only the poll */
    rt_thread_detach();
    return NULL;
}

Test(threads, a_polling_loop_without_allocation_reaches_the_safepoint) {
    cr_assert_eq(rt_thread_attach(), RT_OK);
    pthread_t t;
    pthread_create(&t, NULL, safepoint_loop, NULL);
    while (!atomic_load(&spinning)) usleep(100);
    for (int i = 0; i < 10; i++) rt_gc();
    atomic_store(&stop_all, 1);
    rt_enter_blocking();
    pthread_join(t, NULL);
    rt_exit_blocking();
    rt_mem_stats st;
    rt_read_mem_stats(&st);
    cr_assert_eq(st.num_gc, 10);
    rt_thread_detach();
}

Test(threads, rtmaxprocs_is_parsed) {
    rt_shutdown();
    setenv("RTMAXPROCS", "3", 1);
    cr_assert_eq(rt_init(NULL), RT_OK);
    unsetenv("RTMAXPROCS");
    cr_assert_eq(rt__cfg.maxprocs, 3);
}

static void *stats_reader(void *arg) {
    (void)arg;
    rt_thread_attach();
    rt_mem_stats st;
    for (int i = 0; i < 200; i++) rt_read_mem_stats(&st);
    rt_thread_detach();
    return NULL;
}

Test(threads, stats_readers_and_collections_take_turns) {
    cr_assert_eq(rt_thread_attach(), RT_OK);
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, stats_reader, NULL);
    for (int i = 0; i < 50; i++) { rt_gc(); (void)rt_alloc(64, RT_NOSCAN); }
    rt_enter_blocking();
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    rt_exit_blocking();
    rt_mem_stats st;
    rt_read_mem_stats(&st);
    cr_assert_eq(st.num_gc, 50);
    rt_thread_detach();
}

Test(threads, stats_and_safepoints_inside_a_blocking_region_keep_it_blocking) {
    cr_assert_eq(rt_thread_attach(), RT_OK);
    rt_enter_blocking();
    rt_mem_stats st;
    rt_read_mem_stats(&st);
    rt_safepoint();
    cr_assert_eq(rt__tls_thread->state, RT_T_BLOCKING);
    cr_assert_null(rt__tls_mcache);
    rt_exit_blocking();
    cr_assert_not_null(rt_alloc(32, RT_NOSCAN));
    rt_thread_detach();
}

/* ---- collector threads are named (top, perf, gdb) ------------------------ */

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool thread_named(const char *name) {
    DIR *d = opendir("/proc/self/task");
    bool found = false;
    for (struct dirent *e; d && (e = readdir(d));) {
        char path[300], comm[32] = "";
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fgets(comm, sizeof comm, f)) comm[strcspn(comm, "\n")] = 0;
        fclose(f);
        found |= !strcmp(comm, name);
    }
    if (d) closedir(d);
    return found;
}

Test(threads, collector_threads_carry_their_names) {
    cr_assert_eq(rt_thread_attach(), RT_OK);
    rt__cfg.smallgc = 0;   /* a concurrent cycle on the driver, with the workers */
    void **keep = rt_alloc_array(RT_CONSERVATIVE, 4096);
    rt_root *r = rt_root_add((void *)&keep);
    for (int i = 0; i < 4096; i++) rt_store(&keep[i], rt_alloc(64, RT_CONSERVATIVE));
    rt_gc();
    rt_gc();
    cr_assert(thread_named("rtgc-scavenger"));
    cr_assert(thread_named("rtgc-driver"));
    cr_assert(thread_named("rtgc-mark-1"));
    cr_assert(thread_named("rtgc-mark-2"));   /* maxprocs 2: two workers */
    cr_assert_not(thread_named("rtgc-mark-3"));
    rt_root_remove(r);
    rt_thread_detach();
}
