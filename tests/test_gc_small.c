/* tests/test_gc_small.c -- small cycles (gc/gc.c run_small_cycle): when
 * the last mark scanned at most RTDEBUG smallgc bytes, the allocating
 * thread runs the next cycle itself with the world stopped; a mark that
 * outgrows twice that budget restarts the world and the driver finishes
 * it concurrently.
 *   - a program with a tiny live set collects in small cycles only, and
 *     what it keeps is intact (clobberfree=1 would show a freed node);
 *   - the collecting thread's own stack and registers are roots;
 *   - a mark over budget goes concurrent, and checkmark finds it complete;
 *   - smallgc=0 never runs one; RTHEAPMIN sets the goal they run at;
 *   - a program whose cycles are all small starts no collector thread but
 *     the scavenger (the driver, mark workers and sweeper start on demand);
 *   - several threads: each may run the cycle, the others stop for it.
 * Randomized tests print their seed; RT_SEED=N replays it. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "gc.h"
#include "test_start.h"

typedef struct Node {
    struct Node *next;
    uint64_t id, check;
} Node;

static const rt_type *node_t;
static Node *list_root;

static uint64_t checkword(uint64_t id) { return id * 0x9E3779B97F4A7C15ull ^ 0xC0FFEEu; }

static void start(int64_t heap_min, const char *debug) {
    test_start((rt_options){ .heap_minimum = heap_min, .debug = debug, .scan_thread_stacks = RT_SCAN_STACKS_OFF });
    size_t offs[] = { offsetof(Node, next) };
    node_t = rt_type_layout("node", sizeof(Node), offs, 1);
    list_root = NULL;
    rt_root_add((void **)&list_root);
}

static void stop(void) { rt_shutdown(); }

static Node *new_node(uint64_t id) {
    Node *n = rt_alloc(sizeof(Node), node_t);
    n->id = id;
    n->check = checkword(id);
    return n;
}

/* Prepend n nodes numbered from `first` to the list at *root. */
static void grow_list(Node **root, uint64_t first, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) {
        Node *x = new_node(first + i);
        rt_store(&x->next, *root);
        *root = x;
    }
}

/* The list at root holds ids last, last-1, ..., down to first, intact. */
static void check_list(const Node *root, uint64_t first, uint64_t last) {
    uint64_t want = last;
    for (const Node *x = root; x; x = x->next, want--) {
        cr_assert_eq(x->id, want, "node %p has id %llu, expected %llu", (const void *)x,
                     (unsigned long long)x->id, (unsigned long long)want);
        cr_assert_eq(x->check, checkword(want), "node %llu is damaged (freed?)", (unsigned long long)want);
    }
    cr_assert_eq(want + 1, first, "the list ends at %llu, expected %llu", (unsigned long long)(want + 1),
                 (unsigned long long)first);
}

static void churn(uint64_t bytes) {
    for (uint64_t done = 0; done < bytes; done += 48) (void)new_node(0);
}

typedef struct counts { uint64_t cycles, small, went_concurrent; } counts;

static counts cycle_counts(void) {
    counts c;
    rt_mem_stats st;
    rt_read_mem_stats(&st);
    c.cycles = st.num_gc;
    rt__gc_small_stats(&c.small, &c.went_concurrent);
    return c;
}

TestSuite(small, .fini = stop, .timeout = 120);

Test(small, a_tiny_live_set_is_collected_in_small_cycles_only) {
    start(256 << 10, "clobberfree=1");
    grow_list(&list_root, 1, 1000);
    churn(64u << 20);
    counts c = cycle_counts();
    cr_assert_geq(c.cycles, 100, "64 MiB through a 256 KiB goal: %llu cycles", (unsigned long long)c.cycles);
    cr_assert_eq(c.small, c.cycles, "every cycle small: %llu of %llu", (unsigned long long)c.small,
                 (unsigned long long)c.cycles);
    cr_assert_eq(c.went_concurrent, 0);
    rt_mem_stats st;
    rt_read_mem_stats(&st);
    cr_assert_leq(st.heap_alloc, 512 << 10, "the heap stays near its 256 KiB goal: %llu B",
                  (unsigned long long)st.heap_alloc);
    check_list(list_root, 1, 1000);
}

/* Each pause-only mark hands its buffers back (they used to leak one
   or two per cycle: 5 MB of buffers after 2,500 cycles). */
Test(small, small_cycles_give_their_work_buffers_back) {
    start(128 << 10, NULL);
    grow_list(&list_root, 1, 1200);   /* more grey objects than one buffer holds */
    churn(1u << 20);
    size_t chunks = rt__work_chunks();
    churn(96u << 20);
    rt_mem_stats st;
    rt_read_mem_stats(&st);
    cr_assert_geq(st.num_gc, 300, "%llu cycles", (unsigned long long)st.num_gc);
    cr_assert_eq(rt__work_chunks(), chunks, "%zu chunks of work buffers after %llu cycles, %zu before",
                 rt__work_chunks(), (unsigned long long)st.num_gc, chunks);
    check_list(list_root, 1, 1200);
}

/* Not inlined, so the node's only reference is in this frame or a
   callee-saved register while the churn below collects. */
static __attribute__((noinline)) void keep_on_own_stack(void) {
    Node *volatile mine = new_node(42);
    churn(8u << 20);
    cr_assert_eq(mine->id, 42);
    cr_assert_eq(mine->check, checkword(42), "a node held only by the collecting thread's stack was freed");
}

Test(small, the_collecting_threads_own_stack_is_a_root) {
    unsetenv("RTDEBUG");
    rt_options o = { .heap_minimum = 128 << 10, .debug = "clobberfree=1" };   /* stacks scanned */
    cr_assert_eq(rt_init(&o), RT_OK);
    cr_assert_eq(rt_thread_attach(), RT_OK);
    size_t offs[] = { offsetof(Node, next) };
    node_t = rt_type_layout("node", sizeof(Node), offs, 1);
    keep_on_own_stack();
    counts c = cycle_counts();
    cr_assert_geq(c.small, 10, "%llu small cycles", (unsigned long long)c.small);
}

Test(small, a_mark_over_its_budget_finishes_concurrently) {
    /* Budget 2 x 4 KiB; the first cycle expects nothing (no mark yet) and
       finds a 2 MiB list. */
    start(1 << 20, "smallgc=4096,gccheckmark=1,clobberfree=1");
    grow_list(&list_root, 1, 48000);
    churn(16u << 20);
    counts c = cycle_counts();
    cr_assert_geq(c.small, 1);
    cr_assert_geq(c.went_concurrent, 1, "the 2 MiB mark went on concurrently");
    cr_assert_gt(c.cycles, c.small, "later cycles, expecting a 2 MiB mark, are concurrent from the start");
    check_list(list_root, 1, 48000);
    /* Dropped, then collected while small cycles resume. */
    list_root = NULL;
    rt_gc();
    grow_list(&list_root, 1, 10);
    churn(8u << 20);
    cr_assert_gt(cycle_counts().small, c.small, "small cycles again once the live set is small");
    check_list(list_root, 1, 10);
}

static int threads_now(void) {
    DIR *d = opendir("/proc/self/task");
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

Test(small, only_the_scavenger_thread_starts_while_every_cycle_is_small) {
    int before = threads_now();
    start(256 << 10, NULL);
    grow_list(&list_root, 1, 100);
    churn(16u << 20);
    counts c = cycle_counts();
    cr_assert_geq(c.small, 20);
    cr_assert_eq(c.small, c.cycles);
    cr_assert_eq(threads_now(), before + 1, "%d threads, %d before rt_init", threads_now(), before);
    rt_gc();   /* a forced cycle runs on the driver; its sweep wakes the sweeper */
    cr_assert_geq(threads_now(), before + 3, "%d threads after rt_gc, %d before rt_init", threads_now(), before);
    check_list(list_root, 1, 100);
}

Test(small, smallgc_0_turns_them_off) {
    start(256 << 10, "smallgc=0");
    grow_list(&list_root, 1, 100);
    /* Churn until two cycles have run.  These are concurrent cycles, and
       how many fit in a given amount of churn depends on when the driver
       thread gets a CPU: on a loaded machine (the ASan build beside
       another test process) 8 MiB once saw fewer than two. */
    counts c;
    uint64_t churned = 0;
    do {
        churn(1u << 20);
        churned += 1u << 20;
        c = cycle_counts();
    } while (c.cycles < 2 && churned < (256u << 20));
    cr_assert_geq(c.cycles, 2, "%llu MiB of churn ran %llu cycles", (unsigned long long)(churned >> 20),
                  (unsigned long long)c.cycles);
    cr_assert_eq(c.small, 0);
    check_list(list_root, 1, 100);
}

/* ---- several threads -------------------------------------------------------------- */

#define THREADS 3
#define LIVE 200

static uint64_t seed;
static Node *thread_roots[THREADS];

static uint64_t next(uint64_t *s) {   /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Each thread keeps a list of LIVE nodes, replacing a random one in
   place now and then, and churns garbage of random sizes. */
static void *mutator(void *arg) {
    int me = (int)(intptr_t)arg;
    uint64_t s = seed + (uint64_t)me, id = (uint64_t)me << 40;
    rt_thread_attach();
    Node **root = &thread_roots[me];
    grow_list(root, id + 1, LIVE);
    id += LIVE;
    for (int round = 0; round < 100000; round++) {
        uint64_t r = next(&s);
        (void)rt_alloc(16 + r % 200, RT_NOSCAN);
        if (r % 7 == 0) {   /* replace the k-th node with a fresh one carrying its id */
            Node *prev = NULL, *x = *root;
            for (uint64_t k = r % LIVE; k > 0; k--) prev = x, x = x->next;
            Node *y = new_node(x->id);
            rt_store(&y->next, x->next);
            if (prev) rt_store(&prev->next, y);
            else *root = y;
        }
    }
    rt_thread_detach();
    return NULL;
}

Test(small, several_threads_stop_for_each_others_small_cycles) {
    const char *env = getenv("RT_SEED");
    seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    fprintf(stderr, "small: seed %llu (RT_SEED=%llu replays it)\n", (unsigned long long)seed,
            (unsigned long long)seed);
    start(256 << 10, "clobberfree=1,invalidptr=1");
    for (int i = 0; i < THREADS; i++) rt_root_add((void **)&thread_roots[i]);
    rt_enter_blocking();   /* this thread only watches */
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, mutator, (void *)(intptr_t)i);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    rt_exit_blocking();
    counts c = cycle_counts();
    /* How many depends on how the threads overlap: 9 to 248 were seen. */
    cr_assert_geq(c.small, 3, "%llu small cycles of %llu, %llu went concurrent (seed %llu)", (unsigned long long)c.small,
                  (unsigned long long)c.cycles, (unsigned long long)c.went_concurrent, (unsigned long long)seed);
    for (int i = 0; i < THREADS; i++) {
        uint64_t base = (uint64_t)i << 40;
        check_list(thread_roots[i], base + 1, base + LIVE);
    }
}
