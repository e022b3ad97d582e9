/* tests/test_gc_graph.c -- randomized object graphs against a shadow model.
 *
 * Each graph is a table of precise root slots (rt_root_add_range) and nodes
 * of one layout type: four pointer slots, an id, a checksum, and a "decoy"
 * word that holds the raw address of some other node but is not a pointer
 * slot.  Random operations allocate nodes (stored in a root or in a field of
 * a reachable node with rt_store), rewire fields, drop and move roots.  A
 * model in plain malloc'd arrays, indexed by node id, knows every edge.
 *
 * After a collection (rt_gc() returns with everything swept):
 *   - every node reachable in the model is intact: id, checksum and all
 *     four edges equal the model's, and its slot was never handed out again;
 *   - every node unreachable in the model was reclaimed: with
 *     clobberfree=1 and scan_thread_stacks = RT_SCAN_STACKS_OFF its memory holds 0xdeadbeef
 *     (or zeros, once the scavenger returned its free page to the OS),
 *     unless its slot was handed out again to a newer node (a global
 *     registry of node addresses records that, across threads).
 * With stack scanning on (last variant) an unreachable node may also be
 * retained, but then it must be intact.
 *
 * Variants: one thread with rt_gc every K operations; one thread with
 * gcstress; 3 threads with their own graphs, gcstress, and rt_gc from one
 * thread while the others allocate; 4 threads with stack scanning on.
 * Threads meet at barriers (inside blocking regions) for the full checks,
 * so no one allocates while a thread reads its dead nodes' memory.
 *
 * The seed comes from RT_SEED or the clock and is printed first. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rtgc.h"
#include "test_start.h"

/* ---- failure reporting: Criterion in the main thread, abort elsewhere ----------- */

static uint64_t g_seed;
static __thread bool t_is_main;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (t_is_main) cr_assert_fail("%s (seed=%llu)", buf, (unsigned long long)g_seed);
    fprintf(stderr, "test_gc_graph: %s (seed=%llu, replay with RT_SEED=%llu)\n", buf,
            (unsigned long long)g_seed, (unsigned long long)g_seed);
    fflush(stderr);
    abort();
}
#define CHECK(cond, ...) do { if (!(cond)) fail(__VA_ARGS__); } while (0)

/* ---- seeded PRNG (splitmix64) --------------------------------------------------- */

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static uint64_t next_rand(uint64_t *s) { return mix(*s += 0x9e3779b97f4a7c15ull); }

static void seed_rng(void) {
    const char *e = getenv("RT_SEED");
    g_seed = e && *e ? strtoull(e, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    fprintf(stderr, "seed=%llu (replay with RT_SEED=%llu)\n", (unsigned long long)g_seed, (unsigned long long)g_seed);
}

/* ---- nodes -------------------------------------------------------------------------- */

#define NE 4
typedef struct node {
    struct node *e[NE];
    uint64_t     id;       /* tag(graph, index) */
    uint64_t     check;    /* ck(id) */
    uintptr_t    decoy;    /* a node's raw address in a non-pointer slot */
    uint64_t     pad;
} node;                    /* 64 bytes */

static const rt_type *node_type;

static uint64_t tag(int gi, int32_t id) { return 0x6e6f000000000000ull | (uint64_t)gi << 32 | (uint32_t)id; }
static uint64_t ck(uint64_t t) { return mix(t ^ 0x5eed5eed5eed5eedull); }

#define HIDE_MASK ((uintptr_t)0x5555555555555555ull)
static inline uintptr_t hide(const void *p) { return (uintptr_t)p ^ HIDE_MASK; }
static inline node *reveal(uintptr_t h) { return (node *)(h ^ HIDE_MASK); }

/* Swept free (clobberfree=1), or all zero: the free page went back to the
   OS.  A live node is never all zero (its id is not). */
static bool reclaimed(const node *n) {
    const uint32_t *w = (const uint32_t *)n;
    bool clob = true, zero = true;
    for (size_t i = 0; i < sizeof(node) / 4; i++) {
        clob &= w[i] == 0xdeadbeefu;
        zero &= w[i] == 0;
    }
    return clob || zero;
}

/* ---- the model of one graph ------------------------------------------------------- */

enum { LIVE = 0, DEAD = 1 };

typedef struct graph {
    int        gi;
    uint64_t   rng;
    size_t     nroots;
    node     **roots;          /* registered precise range */
    int32_t   *root_id;        /* model: node in each root, or -1 */
    rt_root   *root_handle;
    int32_t    n, cap;         /* nodes allocated so far, capacity */
    uintptr_t *addr;           /* hidden address of each node */
    int32_t  (*edge)[NE];
    uint8_t   *state;          /* LIVE: not yet seen reclaimed */
    uint8_t   *reused;         /* atomic: the slot was handed out again */
    uint32_t  *seen;
    uint32_t   gen;
    int32_t   *queue;
    /* tallies */
    uint64_t   ops, freed_seen, reused_seen, retained_seen, max_reachable, full_checks;
} graph;

static graph *graph_new(int gi, size_t nroots, int32_t cap) {
    graph *g = calloc(1, sizeof *g);
    CHECK(g != NULL, "out of memory");
    g->gi = gi;
    g->rng = mix(g_seed ^ mix((uint64_t)gi + 1));   /* independent streams per graph */
    g->nroots = nroots;
    g->roots = calloc(nroots, sizeof *g->roots);
    g->root_id = malloc(nroots * sizeof *g->root_id);
    for (size_t r = 0; r < nroots; r++) g->root_id[r] = -1;
    g->cap = cap;
    g->addr = calloc((size_t)cap, sizeof *g->addr);
    g->edge = malloc((size_t)cap * sizeof *g->edge);
    g->state = calloc((size_t)cap, 1);
    g->reused = calloc((size_t)cap, 1);
    g->seen = calloc((size_t)cap, sizeof *g->seen);
    g->queue = malloc((size_t)cap * sizeof *g->queue);
    CHECK(g->roots && g->root_id && g->addr && g->edge && g->state && g->reused && g->seen && g->queue, "out of memory");
    g->root_handle = rt_root_add_range(g->roots, nroots * sizeof *g->roots, RT_ROOT_PRECISE);
    return g;
}

static void graph_free(graph *g) {
    rt_root_remove(g->root_handle);
    free(g->roots); free(g->root_id); free(g->addr); free(g->edge);
    free(g->state); free(g->reused); free(g->seen); free(g->queue);
    free(g);
}

static uint64_t rnd(graph *g, uint64_t n) { return next_rand(&g->rng) % n; }

/* ---- the registry: which node last got each address ---------------------------------- */

#define REG_BITS 18
#define REG_SIZE ((size_t)1 << REG_BITS)
typedef struct { uintptr_t addr; graph *g; int32_t id; } reg_entry;
static reg_entry *reg;
static size_t reg_used;
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;

static void registry_note(uintptr_t a, graph *g, int32_t id) {
    pthread_mutex_lock(&reg_lock);
    size_t i = (size_t)(mix(a) & (REG_SIZE - 1));
    while (reg[i].addr && reg[i].addr != a) i = (i + 1) & (REG_SIZE - 1);
    if (reg[i].addr == a) {
        /* The previous owner's slot was handed out again. */
        __atomic_store_n(&reg[i].g->reused[reg[i].id], 1, __ATOMIC_RELAXED);
    } else {
        CHECK(++reg_used < REG_SIZE / 2, "registry full");
        reg[i].addr = a;
    }
    reg[i].g = g;
    reg[i].id = id;
    pthread_mutex_unlock(&reg_lock);
}

/* ---- checks ---------------------------------------------------------------------------- */

static node *ptr_of(graph *g, int32_t id) { return id < 0 ? NULL : reveal(g->addr[id]); }

/* A node's memory equals the model. */
static bool node_matches(graph *g, int32_t id) {
    const node *p = ptr_of(g, id);
    if (p->id != tag(g->gi, id) || p->check != ck(p->id)) return false;
    for (int k = 0; k < NE; k++)
        if (p->e[k] != ptr_of(g, g->edge[id][k])) return false;
    return true;
}

static void check_node(graph *g, int32_t id, const char *when) {
    CHECK(!__atomic_load_n(&g->reused[id], __ATOMIC_RELAXED),
          "graph %d %s: reachable node %d's slot %p was handed out to a newer node", g->gi, when, id, (void *)ptr_of(g, id));
    const node *p = ptr_of(g, id);
    CHECK(!reclaimed(p), "graph %d %s: reachable node %d at %p was freed", g->gi, when, id, (const void *)p);
    CHECK(p->id == tag(g->gi, id) && p->check == ck(p->id),
          "graph %d %s: reachable node %d at %p has id %#llx check %#llx, want %#llx", g->gi, when, id, (const void *)p,
          (unsigned long long)p->id, (unsigned long long)p->check, (unsigned long long)tag(g->gi, id));
    for (int k = 0; k < NE; k++)
        CHECK(p->e[k] == ptr_of(g, g->edge[id][k]), "graph %d %s: node %d edge %d is %p, model says node %d (%p)",
              g->gi, when, id, k, (void *)p->e[k], g->edge[id][k], (void *)ptr_of(g, g->edge[id][k]));
}

/* Mark the model's reachable set (seen == gen); check reachable nodes. */
static size_t check_reachable(graph *g, const char *when) {
    uint32_t gen = ++g->gen;
    size_t head = 0, tail = 0;
    for (size_t r = 0; r < g->nroots; r++) {
        int32_t id = g->root_id[r];
        CHECK(g->roots[r] == ptr_of(g, id), "graph %d %s: root %zu holds %p, model says node %d", g->gi, when, r,
              (void *)g->roots[r], id);
        if (id >= 0 && g->seen[id] != gen) { g->seen[id] = gen; g->queue[tail++] = id; }
    }
    while (head < tail) {
        int32_t id = g->queue[head++];
        CHECK(g->state[id] == LIVE, "graph %d %s: node %d is reachable but was seen reclaimed", g->gi, when, id);
        check_node(g, id, when);
        for (int k = 0; k < NE; k++) {
            int32_t c = g->edge[id][k];
            if (c >= 0 && g->seen[c] != gen) { g->seen[c] = gen; g->queue[tail++] = c; }
        }
    }
    if (tail > g->max_reachable) g->max_reachable = tail;
    return tail;
}

/* Right after a collection, with no allocation since in any thread. */
static void check_full(graph *g, bool precise, const char *when) {
    check_reachable(g, when);
    uint32_t gen = g->gen;
    for (int32_t id = 0; id < g->n; id++) {
        if (g->state[id] != LIVE || g->seen[id] == gen) continue;
        if (__atomic_load_n(&g->reused[id], __ATOMIC_RELAXED)) {
            g->state[id] = DEAD;
            g->reused_seen++;
        } else if (reclaimed(ptr_of(g, id))) {
            g->state[id] = DEAD;
            g->freed_seen++;
        } else {
            CHECK(!precise, "graph %d %s: unreachable node %d at %p survived the collection", g->gi, when, id,
                  (void *)ptr_of(g, id));
            /* Retained by a conservative stack word: then it is intact. */
            CHECK(node_matches(g, id), "graph %d %s: unreachable node %d at %p was neither reclaimed nor intact",
                  g->gi, when, id, (void *)ptr_of(g, id));
            g->retained_seen++;
        }
    }
    g->full_checks++;
}

/* ---- operations ------------------------------------------------------------------------- */

/* A node reachable right now: walk a few random edges from a random root. */
static int32_t pick_reachable(graph *g) {
    size_t r0 = (size_t)rnd(g, g->nroots);
    int32_t cur = -1;
    for (size_t i = 0; i < g->nroots && cur < 0; i++) cur = g->root_id[(r0 + i) % g->nroots];
    if (cur < 0) return -1;
    for (int steps = (int)rnd(g, 6); steps > 0; steps--) {
        int k = (int)rnd(g, NE);
        int32_t nx = g->edge[cur][k];
        CHECK(ptr_of(g, cur)->e[k] == ptr_of(g, nx), "graph %d: node %d edge %d differs from the model", g->gi, cur, k);
        if (nx >= 0) cur = nx;
    }
    return cur;
}

static void op_alloc(graph *g) {
    CHECK(g->n < g->cap, "graph %d: node table full", g->gi);
    node *p = rt_new(node, node_type);
    CHECK(p != NULL, "rt_alloc returned NULL");
    int32_t id = g->n++;
    /* Fresh memory is zeroed. */
    for (size_t i = 0; i < sizeof(node) / 8; i++)
        CHECK(((uint64_t *)p)[i] == 0, "graph %d: new node %d at %p not zeroed (word %zu = %#llx)", g->gi, id, (void *)p,
              i, (unsigned long long)((uint64_t *)p)[i]);
    g->addr[id] = hide(p);
    g->state[id] = LIVE;
    for (int k = 0; k < NE; k++) {
        int32_t c = rnd(g, 2) ? pick_reachable(g) : -1;
        g->edge[id][k] = c;
        rt_store(&p->e[k], ptr_of(g, c));
    }
    p->id = tag(g->gi, id);
    p->check = ck(p->id);
    int32_t d = pick_reachable(g);
    p->decoy = d >= 0 ? (uintptr_t)ptr_of(g, d) : 0;
    registry_note((uintptr_t)p, g, id);
    int32_t x = rnd(g, 2) ? pick_reachable(g) : -1;
    if (x < 0) {
        size_t r = (size_t)rnd(g, g->nroots);
        g->roots[r] = p;
        g->root_id[r] = id;
    } else {
        int k = (int)rnd(g, NE);
        rt_store(&ptr_of(g, x)->e[k], p);
        g->edge[x][k] = id;
    }
}

static void op_rewire(graph *g) {
    int32_t x = pick_reachable(g);
    if (x < 0) return;
    int32_t y = rnd(g, 4) ? pick_reachable(g) : -1;
    int k = (int)rnd(g, NE);
    rt_store(&ptr_of(g, x)->e[k], ptr_of(g, y));
    g->edge[x][k] = y;
}

static void op_root(graph *g) {
    size_t r = (size_t)rnd(g, g->nroots);
    int32_t id;
    switch (rnd(g, 3)) {
    case 0: id = -1; break;                                     /* drop */
    case 1: id = pick_reachable(g); break;                      /* move */
    default:                                                    /* descend */
        id = g->root_id[r];
        if (id >= 0) id = g->edge[id][rnd(g, NE)];
        break;
    }
    g->roots[r] = ptr_of(g, id);
    g->root_id[r] = id;
}

static void do_op(graph *g) {
    uint64_t r = rnd(g, 100);
    if (r < 45) op_alloc(g);
    else if (r < 80) op_rewire(g);
    else op_root(g);
    g->ops++;
}

/* ---- setup -------------------------------------------------------------------------------- */

static void start(int scan_stacks, const char *debug) {
    t_is_main = true;
    seed_rng();
    reg = calloc(REG_SIZE, sizeof *reg);
    cr_assert_not_null(reg);
    reg_used = 0;
    test_start((rt_options){ .gc_percent = 100, .scan_thread_stacks = scan_stacks ? 1 : RT_SCAN_STACKS_OFF, .debug = debug });
    size_t offs[NE];
    for (int k = 0; k < NE; k++) offs[k] = offsetof(node, e) + (size_t)k * sizeof(void *);
    node_type = rt_type_layout("node", sizeof(node), offs, NE);
}

static void stop(void) {
    rt_shutdown();
    free(reg);
    reg = NULL;
}

TestSuite(graph, .fini = stop, .timeout = 120);

static void report(graph *g) {
    fprintf(stderr, "graph %d: %llu ops, %d nodes, max %llu reachable, %llu seen freed, %llu reused, "
            "%llu retained, %llu full checks\n", g->gi, (unsigned long long)g->ops, g->n,
            (unsigned long long)g->max_reachable, (unsigned long long)g->freed_seen, (unsigned long long)g->reused_seen,
            (unsigned long long)g->retained_seen, (unsigned long long)g->full_checks);
}

/* ---- single thread -------------------------------------------------------------------------- */

static void run_single(int ops, int every, const char *debug) {
    start(0, debug);
    graph *g = graph_new(0, 64, ops + 1);
    for (int i = 1; i <= ops; i++) {
        do_op(g);
        if (i % every == 0) {
            rt_gc();
            check_full(g, true, "after rt_gc");
        }
    }
    rt_gc();
    check_full(g, true, "at the end");
    rt_mem_stats s;
    rt_read_mem_stats(&s);
    report(g);
    fprintf(stderr, "  %llu collections\n", (unsigned long long)s.num_gc);
    cr_assert_gt(g->freed_seen + g->reused_seen, 100, "the run reclaimed almost nothing: not a useful graph");
    cr_assert_gt(g->max_reachable, 100, "the graph never grew: not a useful run");
    /* Everything goes once the roots are cleared. */
    for (size_t r = 0; r < g->nroots; r++) { g->roots[r] = NULL; g->root_id[r] = -1; }
    rt_gc();
    check_full(g, true, "after clearing the roots");
    for (int32_t id = 0; id < g->n; id++) cr_assert_eq(g->state[id], DEAD, "node %d outlived every root", id);
    rt_read_mem_stats(&s);
    cr_assert_eq(s.heap_objects, 0, "%llu objects left after clearing every root", (unsigned long long)s.heap_objects);
    graph_free(g);
}

Test(graph, single_thread) { run_single(40000, 400, "clobberfree=1,invalidptr=1"); }

Test(graph, single_thread_gcstress) { run_single(20000, 1000, "clobberfree=1,invalidptr=1,gcstress=11"); }

/* ---- several threads --------------------------------------------------------------------------- */

typedef struct {
    int               nthreads, rounds, ops_per_round, gc_every;
    bool              precise;
    pthread_barrier_t barrier;
    graph           **graphs;
} mt_run;

typedef struct { mt_run *run; int gi; } mt_arg;

/* All threads meet inside a blocking region; then thread 0 collects while
   the others stay blocked; then everyone checks its own graph; then they
   meet again before anyone allocates. */
static void mt_phase(mt_run *m, graph *g) {
    rt_enter_blocking();
    pthread_barrier_wait(&m->barrier);
    if (g->gi == 0) {
        rt_exit_blocking();
        rt_gc();
        rt_enter_blocking();
    }
    pthread_barrier_wait(&m->barrier);
    rt_exit_blocking();
    check_full(g, m->precise, "after a round");
    rt_enter_blocking();
    pthread_barrier_wait(&m->barrier);
    rt_exit_blocking();
}

static void *mt_main(void *arg) {
    mt_arg *a = arg;
    mt_run *m = a->run;
    if (a->gi != 0) CHECK(rt_thread_attach() == RT_OK, "rt_thread_attach failed");
    graph *g = m->graphs[a->gi];
    for (int round = 0; round < m->rounds; round++) {
        for (int i = 1; i <= m->ops_per_round; i++) {
            do_op(g);
            rt_safepoint();
            /* Thread 0 collects while the others keep allocating; its
               reachable nodes are its own, so it can check them at once. */
            if (g->gi == 0 && i % m->gc_every == 0) {
                rt_gc();
                check_reachable(g, "after rt_gc among running threads");
            }
            if (i % 1000 == 0) check_reachable(g, "mid-round");
        }
        mt_phase(m, g);
    }
    if (a->gi != 0) rt_thread_detach();
    return NULL;
}

static void run_threads(int nthreads, int scan, const char *debug, int rounds, int ops_per_round, bool precise) {
    start(scan, debug);
    mt_run m = { .nthreads = nthreads, .rounds = rounds, .ops_per_round = ops_per_round, .gc_every = 700,
                 .precise = precise };
    pthread_barrier_init(&m.barrier, NULL, (unsigned)nthreads);
    m.graphs = calloc((size_t)nthreads, sizeof *m.graphs);
    for (int t = 0; t < nthreads; t++) m.graphs[t] = graph_new(t, 32, rounds * ops_per_round + 1);
    pthread_t tid[8];
    mt_arg args[8];
    for (int t = 0; t < nthreads; t++) args[t] = (mt_arg){ &m, t };
    for (int t = 1; t < nthreads; t++) cr_assert_eq(pthread_create(&tid[t], NULL, mt_main, &args[t]), 0);
    /* The main thread is mutator 0; while other threads run, a failure
       anywhere aborts (a Criterion assertion would unwind past them). */
    t_is_main = false;
    mt_main(&args[0]);
    t_is_main = true;
    for (int t = 1; t < nthreads; t++) pthread_join(tid[t], NULL);
    pthread_barrier_destroy(&m.barrier);
    rt_mem_stats s;
    rt_read_mem_stats(&s);
    uint64_t freed = 0;
    for (int t = 0; t < nthreads; t++) {
        report(m.graphs[t]);
        freed += m.graphs[t]->freed_seen + m.graphs[t]->reused_seen;
        cr_assert_gt(m.graphs[t]->max_reachable, 30, "graph %d never grew", t);
    }
    fprintf(stderr, "  %llu collections\n", (unsigned long long)s.num_gc);
    cr_assert_gt(freed, 100, "the run reclaimed almost nothing");
    cr_assert_gt(s.num_gc, (uint64_t)rounds * 2, "few collections ran: %llu", (unsigned long long)s.num_gc);
    for (int t = 0; t < nthreads; t++) graph_free(m.graphs[t]);
    free(m.graphs);
}

Test(graph, three_threads_gcstress) {
    run_threads(3, 0, "clobberfree=1,invalidptr=1,gcstress=29", 8, 3000, true);
}

Test(graph, four_threads_stack_scanning) {
    /* Stack words may retain unreachable nodes; retained ones must be intact. */
    run_threads(4, 1, "clobberfree=1,invalidptr=1,gcstress=37", 6, 2500, false);
}
