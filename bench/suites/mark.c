/* mark.c -- suite "mark": how fast a full collection traces a live heap.
 *
 * Builds one live structure, held by a root, then times `reps` full
 * collections (bench_collect) in a row and reports the median and the
 * best, and the median per live object.  Nothing is allocated between
 * collections, so the time is marking (and, for rtgc and Go, sweeping the
 * all-live spans; Boehm sweeps lazily, after its collection returns).
 *   shape=tree  a binary tree of depth `depth`, built children first as
 *               binary-trees builds it: a frontier wide enough for every
 *               marker
 *   shape=list  a linked list of the same node count: one object at a
 *               time, so parallel markers cannot help anyone
 * Nodes are two pointers; the structure is checked after the last
 * collection (the program exits 1 if a node was lost). */
#include "../bench.h"
#include <stddef.h>

typedef struct Node {
    struct Node *left, *right;
} Node;

static bench_type node_t;
static Node *live;                    /* root */

static Node *tree(int depth) {
    Node *n;
    if (depth > 0) {
        Node *l = tree(depth - 1);
        Node *r = tree(depth - 1);
        n = bench_alloc(sizeof(Node), node_t);
        bench_store(&n->left, l);
        bench_store(&n->right, r);
    } else {
        n = bench_alloc(sizeof(Node), node_t);
    }
    return n;
}

static long tree_count(const Node *n) { return n->left ? 1 + tree_count(n->left) + tree_count(n->right) : 1; }

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int depth = (int)bench_arg(argc, argv, "depth", 21);
    int reps = (int)bench_arg(argc, argv, "reps", 9);
    const char *shape = bench_arg_str(argc, argv, "shape", "tree");
    if (depth < 1 || depth > 26 || reps < 1 || reps > 1000) bench_fail("want 1 <= depth <= 26, 1 <= reps <= 1000");
    bench_header("mark");
    bench_kv("shape", "%s", shape);
    bench_kv("depth", "%d", depth);

    bench_init(0);
    static const size_t offs[] = { offsetof(Node, left), offsetof(Node, right) };
    node_t = bench_type_ptrs("node", sizeof(Node), offs, 2);
    bench_root((void **)&live);

    long nodes = (2L << depth) - 1;
    if (!strcmp(shape, "tree")) {
        live = tree(depth);
    } else if (!strcmp(shape, "list")) {
        for (long i = 0; i < nodes; i++) {
            Node *n = bench_alloc(sizeof(Node), node_t);
            bench_store(&n->left, live);
            live = n;
        }
    } else {
        bench_fail("unknown shape=%s (tree or list)", shape);
    }
    bench_collect();                  /* the collection that finds the structure new */

    uint64_t *ns = calloc((size_t)reps, sizeof *ns);
    if (!ns) bench_fail("out of memory");
    for (int i = 0; i < reps; i++) {
        uint64_t t = bench_now_ns();
        bench_collect();
        ns[i] = bench_now_ns() - t;
    }
    long got = 0;
    if (!strcmp(shape, "tree")) got = tree_count(live);
    else for (const Node *n = live; n; n = n->left) got++;
    if (got != nodes) bench_fail("%s has %ld nodes after the collections, want %ld", shape, got, nodes);

    qsort(ns, (size_t)reps, sizeof *ns, cmp_u64);
    double med = reps % 2 ? (double)ns[reps / 2] : 0.5 * (double)(ns[reps / 2 - 1] + ns[reps / 2]);
    bench_kv("objects", "%ld", nodes);
    bench_kv("gc_ms", "%.2f", med / 1e6);
    bench_kv("gc_best_ms", "%.2f", (double)ns[0] / 1e6);
    bench_kv("ns_per_object", "%.2f", med / (double)nodes);
    bench_report_stats();
    bench_kv("check", "ok");
    free(ns);
    return 0;
}
