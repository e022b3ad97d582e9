/* binary_trees.c -- suite "binary-trees": the Benchmarks Game program.
 *
 * With depth N (default 21; bench/run --quick uses 18): build and check a
 * stretch tree of depth N+1, build a long-lived tree of depth N, then for
 * d = 4, 6, ..., N build and check 2^(N-d+4) short-lived trees of depth d,
 * and finally check the long-lived tree.  "check" is the node count, so a
 * tree of depth d checks 2^(d+1)-1; every figure is validated against that
 * and the program exits 1 on a mismatch.  Single-threaded (the Benchmarks
 * Game versions use threads for the iterations; this one measures the
 * allocator and collector on one mutator).
 *
 * Nodes are two pointers: an rt_type_layout with both offsets for rtgc,
 * children stored with rt_store after the parent is allocated (children
 * first, parent last, as the original does), the long-lived tree held by a
 * root.  The malloc backend frees every tree explicitly; the GC backends
 * do not walk a tree to drop it. */
#include "../bench.h"
#include <stddef.h>

typedef struct Node {
    struct Node *left, *right;
} Node;

static bench_type node_t;
static Node *long_lived;              /* root */

static Node *bottom_up(int depth) {
    if (depth > 0) {
        Node *l = bottom_up(depth - 1);
        Node *r = bottom_up(depth - 1);
        Node *n = bench_alloc(sizeof(Node), node_t);
        bench_store(&n->left, l);
        bench_store(&n->right, r);
        return n;
    }
    Node *n = bench_alloc(sizeof(Node), node_t);
    if (!BENCH_ZEROED) n->left = n->right = NULL;
    return n;
}

/* The walks allocate nothing, so they poll for a stop (bench_safepoint). */
static long check(const Node *n) {
    bench_safepoint();
    return n->left ? 1 + check(n->left) + check(n->right) : 1;
}

/* Only malloc frees: a collector drops the tree without visiting it, as
   the Benchmarks Game's GC programs do. */
static void free_tree(Node *n) {
    if (!BENCH_FREES) return;
    if (n->left) { free_tree(n->left); free_tree(n->right); }
    bench_free(n);
}

static long expect(int depth) { return (2L << depth) - 1; }

int main(int argc, char **argv) {
    int n = (int)bench_arg(argc, argv, "depth", 21);
    int min_depth = 4;
    if (n < min_depth + 2) n = min_depth + 2;
    bench_header("binary-trees");
    bench_kv("depth", "%d", n);

    bench_init(0);
    static const size_t offs[] = { offsetof(Node, left), offsetof(Node, right) };
    node_t = bench_type_ptrs("node", sizeof(Node), offs, 2);
    bench_root((void **)&long_lived);

    uint64_t t0 = bench_now_ns();
    int stretch = n + 1;
    Node *s = bottom_up(stretch);
    long c = check(s);
    printf("stretch tree of depth %d\t check: %ld\n", stretch, c);
    if (c != expect(stretch)) bench_fail("stretch tree check %ld, want %ld", c, expect(stretch));
    free_tree(s);
    s = NULL;

    long_lived = bottom_up(n);
    for (int d = min_depth; d <= n; d += 2) {
        long iters = 1L << (n - d + min_depth), sum = 0;
        for (long i = 0; i < iters; i++) {
            Node *t = bottom_up(d);
            sum += check(t);
            free_tree(t);
        }
        printf("%ld\t trees of depth %d\t check: %ld\n", iters, d, sum);
        if (sum != iters * expect(d)) bench_fail("depth %d check %ld, want %ld", d, sum, iters * expect(d));
    }
    c = check(long_lived);
    printf("long lived tree of depth %d\t check: %ld\n", n, c);
    if (c != expect(n)) bench_fail("long lived tree check %ld, want %ld", c, expect(n));
    uint64_t ns = bench_now_ns() - t0;
    free_tree(long_lived);
    long_lived = NULL;

    bench_kv("time_ms", "%.1f", ns / 1e6);
    bench_report_stats();
    bench_kv("check", "ok");
    return 0;
}
