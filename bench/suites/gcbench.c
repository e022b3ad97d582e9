/* gcbench.c -- suite "gcbench": the Ellis-Kovac-Boehm GCBench.
 *
 * Classic parameters: a stretch tree of depth 18 (kStretchTreeDepth), a
 * long-lived tree of depth 16 (kLongLivedTreeDepth) and a long-lived array
 * of 500000 doubles (kArraySize), then for depths 4..16 step 2 (kMinTreeDepth,
 * kMaxTreeDepth) NumIters(d) = 2*TreeSize(18)/TreeSize(d) trees built
 * top-down (Populate: allocate the parent, then store new children into it)
 * and as many built bottom-up (MakeTree: children first).
 * Nodes are {left, right, i, j} (24 bytes): an rt_type_layout with the two
 * pointer offsets for rtgc, every child stored with rt_store, the long-lived
 * tree and array held by roots.  The malloc backend frees each tree; the
 * GC backends do not walk a tree to drop it.
 *
 * Checks (exit 1 on failure): the long-lived tree still has TreeSize(16)
 * nodes and the array still holds 1/i at the end (the original's test), and
 * the last tree of each depth and direction has TreeSize(d) nodes. */
#include "../bench.h"
#include <stddef.h>

enum {
    kStretchTreeDepth = 18,
    kLongLivedTreeDepth = 16,
    kArraySize = 500000,
    kMinTreeDepth = 4,
    kMaxTreeDepth = 16,
};

typedef struct Node {
    struct Node *left, *right;
    int i, j;
} Node;

static bench_type node_t;
static Node *long_lived;              /* roots */
static double *array;

static long tree_size(int i) { return (1L << (i + 1)) - 1; }
static long num_iters(int i) { return 2 * tree_size(kStretchTreeDepth) / tree_size(i); }

static Node *new_node(Node *l, Node *r) {
    Node *n = bench_alloc(sizeof(Node), node_t);
    if (!BENCH_ZEROED) { n->left = n->right = NULL; n->i = n->j = 0; }
    if (l) bench_store(&n->left, l);
    if (r) bench_store(&n->right, r);
    return n;
}

/* Build the tree top-down: the children are stored into an existing parent. */
static void populate(int depth, Node *n) {
    if (depth <= 0) return;
    depth--;
    bench_store(&n->left, new_node(NULL, NULL));
    bench_store(&n->right, new_node(NULL, NULL));
    populate(depth, n->left);
    populate(depth, n->right);
}

/* Build the tree bottom-up. */
static Node *make_tree(int depth) {
    if (depth <= 0) return new_node(NULL, NULL);
    Node *l = make_tree(depth - 1);
    Node *r = make_tree(depth - 1);
    return new_node(l, r);
}

/* The walks allocate nothing, so they poll for a stop (bench_safepoint). */
static long count(const Node *n) {
    bench_safepoint();
    return n ? 1 + count(n->left) + count(n->right) : 0;
}

/* Only malloc frees: a collector drops the tree without visiting it, as
   the original GCBench does. */
static void free_tree(Node *n) {
    if (!BENCH_FREES || !n) return;
    free_tree(n->left);
    free_tree(n->right);
    bench_free(n);
}

static double ms_since(uint64_t t0) { return (bench_now_ns() - t0) / 1e6; }

int main(void) {
    bench_header("gcbench");
    bench_init(0);
    static const size_t offs[] = { offsetof(Node, left), offsetof(Node, right) };
    node_t = bench_type_ptrs("node", sizeof(Node), offs, 2);
    bench_root((void **)&long_lived);
    bench_root((void **)&array);

    printf("Garbage Collector Test\n");
    printf(" Stretching memory with a binary tree of depth %d\n", kStretchTreeDepth);
    uint64_t t_all = bench_now_ns();
    double top_ms = 0, bottom_ms = 0;

    uint64_t t0 = bench_now_ns();
    Node *tmp = make_tree(kStretchTreeDepth);
    free_tree(tmp);
    tmp = NULL;
    double stretch_ms = ms_since(t0);

    printf(" Creating a long-lived binary tree of depth %d\n", kLongLivedTreeDepth);
    long_lived = new_node(NULL, NULL);
    populate(kLongLivedTreeDepth, long_lived);

    printf(" Creating a long-lived array of %d doubles\n", kArraySize);
    array = bench_alloc_generic(kArraySize * sizeof(double), BENCH_NOSCAN);
    for (int i = 0; i < kArraySize / 2; i++) array[i] = 1.0 / i;

    for (int d = kMinTreeDepth; d <= kMaxTreeDepth; d += 2) {
        long iters = num_iters(d), got = 0;
        printf("Creating %ld trees of depth %d\n", iters, d);
        t0 = bench_now_ns();
        for (long i = 0; i < iters; i++) {
            tmp = new_node(NULL, NULL);
            populate(d, tmp);
            if (i == iters - 1) got = count(tmp);
            free_tree(tmp);
            tmp = NULL;
        }
        double ms = ms_since(t0);
        top_ms += ms;
        printf("\tTop down construction took %.0f msec\n", ms);
        if (got != tree_size(d)) bench_fail("top-down tree of depth %d has %ld nodes, want %ld", d, got, tree_size(d));

        t0 = bench_now_ns();
        for (long i = 0; i < iters; i++) {
            tmp = make_tree(d);
            if (i == iters - 1) got = count(tmp);
            free_tree(tmp);
            tmp = NULL;
        }
        ms = ms_since(t0);
        bottom_ms += ms;
        printf("\tBottom up construction took %.0f msec\n", ms);
        if (got != tree_size(d)) bench_fail("bottom-up tree of depth %d has %ld nodes, want %ld", d, got, tree_size(d));
    }

    long ll = count(long_lived);
    if (ll != tree_size(kLongLivedTreeDepth))
        bench_fail("long-lived tree has %ld nodes, want %ld", ll, tree_size(kLongLivedTreeDepth));
    for (int i = 1; i < kArraySize / 2; i++)
        if (array[i] != 1.0 / i) bench_fail("long-lived array[%d] = %g, want %g", i, array[i], 1.0 / i);
    double total_ms = ms_since(t_all);
    printf("Completed in %.0f msec\n", total_ms);
    free_tree(long_lived);
    long_lived = NULL;
    bench_free(array);
    array = NULL;

    bench_kv("stretch_ms", "%.1f", stretch_ms);
    bench_kv("topdown_ms", "%.1f", top_ms);
    bench_kv("bottomup_ms", "%.1f", bottom_ms);
    bench_kv("time_ms", "%.1f", total_ms);
    bench_report_stats();
    bench_kv("check", "ok");
    return 0;
}
