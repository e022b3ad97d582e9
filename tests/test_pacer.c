/* tests/test_pacer.c -- the goal's and the assist ratio's arithmetic
 * (gc/pacer.c), and what a real cycle hands the goal.
 *
 * The pacer's state is set by hand with collection off (RTGC=off: no
 * trigger, so no cycle runs and overwrites it), then restored. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stddef.h>

#include "gc.h"
#include "test_start.h"

#define MiB ((uint64_t)1 << 20)

static rt_pacer saved_pacer;
static uint64_t saved_live;

static void start_off(void) {
    test_start((rt_options){ .gc_percent = RT_GC_OFF, .scan_thread_stacks = RT_SCAN_STACKS_OFF });
    saved_pacer = rt__pacer;
    saved_live = ld_relaxed(&rt__heap.heap_live);
}

static void restore(void) {
    rt__pacer = saved_pacer;
    st_relaxed(&rt__heap.heap_live, saved_live);
}

/* A mark whose scan work is 500 bytes short of what the last one did:
   the remaining work sits at its 1000-byte floor, 1 MiB of heap is left
   before the goal, so one byte of scan work pays for about 1000 bytes of
   allocation, and a 64 KiB steal of the workers' credit would pay for
   64 MiB.  The grant stops at the 1 MiB left. */
static void near_the_end_of_a_mark(uint64_t live) {
    rt__pacer.goal = 16 * MiB;
    rt__pacer.triggered_at = 12 * MiB;
    rt__pacer.last_heap_scan = 4 * MiB;
    rt__pacer.heap_scan = 12 * MiB;
    st_relaxed(&rt__pacer.scan_work, 4 * MiB - 500);
    st_relaxed(&rt__heap.heap_live, live);
    rt__pacer_revise();
}

Test(pacer, an_assist_grant_stops_at_the_heap_left_before_the_goal) {
    start_off();
    near_the_end_of_a_mark(15 * MiB);
    double bpw = rt__pacer.assist_bytes_per_work;
    cr_assert_gt(bpw * (64 << 10), 16.0 * MiB, "bytes per work %g: the case the cap is for did not arise", bpw);
    int64_t credit = rt__pacer_credit_after(-4096, (64 << 10) * bpw);
    int64_t small = rt__pacer_credit_after(-4096, 10000);
    restore();
    cr_assert_eq(credit, (int64_t)MiB, "credit %lld after a 64 KiB steal, expected the 1 MiB left", (long long)credit);
    cr_assert_eq(small, -4096 + 10000, "a grant within the room is kept whole");
}

/* Past the goal the ratio aims at (raised 10% once the heap passed the
   goal), a grant brings the debt to zero and no further: each span the
   thread takes next is paid for again. */
Test(pacer, past_the_goal_a_grant_only_clears_the_debt) {
    start_off();
    near_the_end_of_a_mark(18 * MiB);   /* past 16 MiB and past 16 x 1.1 */
    double goal = rt__pacer.assist_goal;
    int64_t credit = rt__pacer_credit_after(-4096, 1e9);
    int64_t short_of_it = rt__pacer_credit_after(-4096, 1000);
    restore();
    cr_assert_float_eq(goal, 16.0 * MiB * 1.1, 1.0, "assist goal %g", goal);
    cr_assert_eq(credit, 0);
    cr_assert_eq(short_of_it, -3096, "a grant that leaves a debt is kept whole");
}

/* The bytes a mark counted as marked because they were allocated during it
   (black) count once in the next goal; the marked bytes found by tracing
   grow by RTGC%. */
Test(pacer, the_goal_counts_bytes_allocated_during_the_mark_once) {
    start_off();
    uint64_t stacks = rt__last_stack_scan, globals = rt__last_globals_scan;
    rt__last_stack_scan = 0;
    rt__last_globals_scan = MiB;
    st_relaxed(&rt__cfg.gc_percent, 100);
    uint64_t none = rt__pacer_goal(10 * MiB, 0);
    uint64_t some = rt__pacer_goal(10 * MiB, 4 * MiB);
    uint64_t all = rt__pacer_goal(10 * MiB, 10 * MiB);
    uint64_t over = rt__pacer_goal(10 * MiB, 12 * MiB);
    st_relaxed(&rt__cfg.gc_percent, RT_GC_OFF);
    rt__last_stack_scan = stacks;
    rt__last_globals_scan = globals;
    restore();
    cr_assert_eq(none, 21 * MiB, "goal %llu", (unsigned long long)none);
    cr_assert_eq(some, 17 * MiB, "goal %llu: 4 MiB black should grow by nothing", (unsigned long long)some);
    cr_assert_eq(all, 11 * MiB, "goal %llu", (unsigned long long)all);
    cr_assert_eq(over, 11 * MiB, "goal %llu: more black than marked is all of it", (unsigned long long)over);
}

typedef struct Node {
    struct Node *next;
    uint64_t payload[3];
} Node;

static Node *live_list;

static void *collect(void *done) {
    rt_gc();
    __atomic_store_n((int *)done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* A forced cycle marks a 40,000-node list while this thread allocates
   garbage: the mark counts that garbage as marked (black), and the goal
   it leaves grows the traced bytes only.  Retried if this thread never
   caught the mark running. */
Test(pacer, a_cycle_hands_the_goal_what_it_allocated_black) {
    /* A small minimum, so that the goal is the formula's, not the floor. */
    test_start((rt_options){ .scan_thread_stacks = RT_SCAN_STACKS_OFF, .heap_minimum = 256 << 10 });
    size_t off = offsetof(Node, next);
    const rt_type *node_t = rt_type_layout("Node", sizeof(Node), &off, 1);
    rt_root_add(&live_list);
    for (int i = 0; i < 40000; i++) {
        Node *n = rt_new(Node, node_t);
        rt_store(&n->next, live_list);
        live_list = n;
    }
    uint64_t allocated_in_mark = 0;
    for (int attempt = 0; attempt < 20 && allocated_in_mark == 0; attempt++) {
        int done = 0;
        pthread_t t;
        uint64_t cycles = ld_acquire(&rt__gc_num);
        cr_assert_eq(pthread_create(&t, NULL, collect, &done), 0);
        /* Safepoints let the collector stop this thread for mark start. */
        while (ld_acquire(&rt__gc_phase) != RT_PHASE_MARK && !__atomic_load_n(&done, __ATOMIC_ACQUIRE))
            rt_safepoint();
        while (ld_acquire(&rt__gc_phase) == RT_PHASE_MARK) {
            (void)rt_new(Node, node_t);
            /* Still marking after it: no stop in between, so it was black. */
            if (ld_acquire(&rt__gc_phase) == RT_PHASE_MARK) allocated_in_mark += sizeof(Node);
        }
        while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) rt_safepoint();
        pthread_join(t, NULL);
        /* The garbage may have started a cycle of its own after the forced
           one, whose figures would be the last: try again. */
        if (ld_acquire(&rt__gc_num) != cycles + 1) allocated_in_mark = 0;
    }
    cr_assert_gt(allocated_in_mark, 0, "this thread never allocated while a mark ran");
    uint64_t marked = ld_relaxed(&rt__heap.heap_marked), black = ld_relaxed(&rt__pacer.heap_black);
    uint64_t roots = rt__last_stack_scan + rt__last_globals_scan;
    cr_assert_geq(black, allocated_in_mark, "black %llu B, allocated during the mark %llu B",
                  (unsigned long long)black, (unsigned long long)allocated_in_mark);
    cr_assert_lt(black, marked, "black %llu B, marked %llu B", (unsigned long long)black, (unsigned long long)marked);
    cr_assert_geq(marked - black, 40000 * sizeof(Node), "the list is traced, not black");
    cr_assert_eq(ld_relaxed(&rt__gc_goal), marked + (marked - black + roots),
                 "goal %llu, marked %llu, black %llu, roots %llu", (unsigned long long)ld_relaxed(&rt__gc_goal),
                 (unsigned long long)marked, (unsigned long long)black, (unsigned long long)roots);
}
