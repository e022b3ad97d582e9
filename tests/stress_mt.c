/* tests/stress_mt.c -- multi-threaded stress of the concurrent collector.
 *
 * N mutator threads build and rewire random graphs through rt_store while
 * marks run concurrently (run it with RTGC small, RTDEBUG=gccheckmark=1,
 * gcstress=N, clobberfree=1).  Each thread owns a table of root slots and
 * a graph of nodes; threads also trade nodes through a shared exchange
 * table, so edges cross threads.  Every node carries its id and a check
 * word; walks from the roots verify every reachable node is intact (a
 * freed node would read 0xdeadbeef with clobberfree=1, or fail its check).
 *
 * Plain C (no Criterion) so it also runs under ThreadSanitizer.
 * usage: stress_mt THREADS OPS [SEED]     (SEED also from RT_SEED)
 * Prints its seed; the same seed replays the same operation sequence per
 * thread (thread interleaving is up to the OS). */
#include <rtgc.h>

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FANOUT 4
#define ROOTS 64
#define EXCHANGE 32

typedef struct Node {
    struct Node *kid[FANOUT];
    uint64_t id, check;
} Node;

static const rt_type *node_t;
static Node *exchange[EXCHANGE];
static pthread_mutex_t exchange_lock = PTHREAD_MUTEX_INITIALIZER;
static long ops_per_thread;
static uint64_t base_seed;
static int failures;

static uint64_t next(uint64_t *s) {   /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static uint64_t checkword(uint64_t id) { return id * 0x9E3779B97F4A7C15ull ^ 0x5bd1e995u; }

static void fail(const char *what, const Node *n) {
    fprintf(stderr, "stress_mt: %s: node %p id %llu check %llx (seed %llu)\n", what, (const void *)n,
            (unsigned long long)__atomic_load_n(&n->id, __ATOMIC_RELAXED),
            (unsigned long long)__atomic_load_n(&n->check, __ATOMIC_RELAXED), (unsigned long long)base_seed);
    __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
    abort();
}

/* Walk up to `budget` nodes from n, checking each. */
static void walk(Node *n, int depth, long *budget) {
    if (!n || *budget <= 0 || depth > 12) return;
    (*budget)--;
    Node *kids[FANOUT];
    /* Nodes are shared across threads without locks: relaxed atomics keep
       the test itself free of data races (the collector is what is tested). */
    uint64_t id = __atomic_load_n(&n->id, __ATOMIC_RELAXED), check = __atomic_load_n(&n->check, __ATOMIC_RELAXED);
    for (int i = 0; i < FANOUT; i++) kids[i] = __atomic_load_n(&n->kid[i], __ATOMIC_ACQUIRE);
    if (check != checkword(id)) fail("corrupt or freed node reachable", n);
    for (int i = 0; i < FANOUT; i++) walk(kids[i], depth + 1, budget);
}

/* A node reachable from roots, reached by a short random walk. */
static Node *pick(Node **roots, uint64_t *s) {
    Node *n = roots[next(s) % ROOTS];
    for (int d = next(s) % 4; n && d > 0; d--) {
        Node *k = __atomic_load_n(&n->kid[next(s) % FANOUT], __ATOMIC_ACQUIRE);
        if (!k) break;
        n = k;
    }
    return n;
}

static void *mutator(void *arg) {
    int me = (int)(intptr_t)arg;
    uint64_t s = base_seed + (uint64_t)me * 7919;
    rt_thread_attach();
    Node **roots = calloc(ROOTS, sizeof *roots);
    rt_root *r = rt_root_add_range(roots, ROOTS * sizeof *roots, RT_ROOT_PRECISE);
    uint64_t ids = (uint64_t)me << 40;
    for (long op = 0; op < ops_per_thread; op++) {
        uint64_t x = next(&s) % 100;
        if (x < 40) {                               /* allocate, link from a root or a node */
            Node *n = rt_new(Node, node_t);
            __atomic_store_n(&n->id, ++ids, __ATOMIC_RELAXED);
            __atomic_store_n(&n->check, checkword(ids), __ATOMIC_RELAXED);
            Node *to = pick(roots, &s);
            if (to && next(&s) % 2) rt_store(&to->kid[next(&s) % FANOUT], n);
            else roots[next(&s) % ROOTS] = n;        /* roots need no barrier */
        } else if (x < 70) {                        /* rewire: copy an edge */
            Node *a = pick(roots, &s), *b = pick(roots, &s);
            if (a && b) rt_store(&a->kid[next(&s) % FANOUT], __atomic_load_n(&b->kid[next(&s) % FANOUT], __ATOMIC_ACQUIRE));
        } else if (x < 80) {                        /* cut an edge or a root */
            Node *a = pick(roots, &s);
            if (a && next(&s) % 2) rt_store(&a->kid[next(&s) % FANOUT], NULL);
            else roots[next(&s) % ROOTS] = NULL;
        } else if (x < 90) {                        /* trade through the exchange */
            unsigned k = (unsigned)(next(&s) % EXCHANGE);
            Node *mine = pick(roots, &s);
            pthread_mutex_lock(&exchange_lock);
            Node *theirs = exchange[k];
            rt_store(&exchange[k], mine);
            pthread_mutex_unlock(&exchange_lock);
            Node *a = pick(roots, &s);
            if (a) rt_store(&a->kid[next(&s) % FANOUT], theirs);
        } else if (x < 99) {
            long budget = 200;
            walk(roots[next(&s) % ROOTS], 0, &budget);
        } else {
            rt_safepoint();
            if (next(&s) % 50 == 0) {                /* a blocking region now and then */
                rt_enter_blocking();
                struct timespec ts = { 0, 100000 };
                nanosleep(&ts, NULL);
                rt_exit_blocking();
            }
        }
    }
    for (int i = 0; i < ROOTS; i++) { long budget = 100000; walk(roots[i], 0, &budget); }
    rt_root_remove(r);
    free(roots);
    rt_thread_detach();
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: stress_mt THREADS OPS [SEED]\n"); return 64; }
    int nthreads = atoi(argv[1]);
    ops_per_thread = atol(argv[2]);
    const char *seed_env = getenv("RT_SEED");
    base_seed = argc > 3 ? strtoull(argv[3], NULL, 10) : seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t)time(NULL);
    printf("seed=%llu (replay with RT_SEED=%llu)\n", (unsigned long long)base_seed, (unsigned long long)base_seed);
    fflush(stdout);
    if (rt_init(NULL) != RT_OK) return 1;
    rt_thread_attach();
    size_t offs[FANOUT];
    for (int i = 0; i < FANOUT; i++) offs[i] = offsetof(Node, kid) + (size_t)i * sizeof(Node *);
    node_t = rt_type_layout("Node", sizeof(Node), offs, FANOUT);
    rt_root *ex = rt_root_add_range(exchange, sizeof exchange, RT_ROOT_PRECISE);
    pthread_t *t = calloc((size_t)nthreads, sizeof *t);
    for (int i = 0; i < nthreads; i++) pthread_create(&t[i], NULL, mutator, (void *)(intptr_t)i);
    rt_enter_blocking();
    for (int i = 0; i < nthreads; i++) pthread_join(t[i], NULL);
    rt_exit_blocking();
    rt_gc();
    rt_mem_stats st;
    rt_read_mem_stats(&st);
    printf("threads=%d ops=%ld collections=%llu heap=%llu KiB\n", nthreads, ops_per_thread,
           (unsigned long long)st.num_gc, (unsigned long long)(st.heap_alloc >> 10));
    int ok = failures == 0 && st.num_gc > 0;
    printf("%d passed, %d failed\n", ok, !ok);
    rt_root_remove(ex);
    rt_shutdown();
    free(t);
    return ok ? 0 : 1;
}
