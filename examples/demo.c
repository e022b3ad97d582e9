/* examples/demo.c -- a small workload that shows rtgc at work: it keeps a
 * long-lived binary tree alive through a root, churns through short-lived
 * trees, and prints the memory statistics at the end.  Run it with
 * RTDEBUG=gctrace=1 to see one line per collection. */
#include <rtgc.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct Node { struct Node *left, *right; long value; } Node;
static const rt_type *node_type;

static Node *tree(int depth) {
    Node *n = rt_new(Node, node_type);
    n->value = depth;
    if (depth > 0) {
        rt_store(&n->left, tree(depth - 1));
        rt_store(&n->right, tree(depth - 1));
    }
    return n;
}

static long count(const Node *n) { return n ? 1 + count(n->left) + count(n->right) : 0; }

int main(void) {
    if (rt_init(NULL) != RT_OK || rt_thread_attach() != RT_OK) return 1;
    size_t ptrs[] = { offsetof(Node, left), offsetof(Node, right) };
    node_type = rt_type_layout("Node", sizeof(Node), ptrs, 2);

    static Node *long_lived;
    rt_root *root = rt_root_add(&long_lived);
    long_lived = tree(18);
    long total = 0;
    for (int i = 0; i < 64; i++) total += count(tree(14));
    if (count(long_lived) != (1L << 19) - 1 || total != 64 * ((1L << 15) - 1)) {
        fprintf(stderr, "demo: tree check failed\n");
        return 1;
    }
    rt_gc();
    rt_mem_stats st;
    rt_read_mem_stats(&st);
    printf("collections      %llu (%llu forced)\n", (unsigned long long)st.num_gc, (unsigned long long)st.num_forced_gc);
    printf("heap in use      %.1f MiB in %llu objects\n", st.heap_alloc / 1048576.0, (unsigned long long)st.heap_objects);
    printf("allocated total  %.1f MiB in %llu allocations\n", st.total_alloc / 1048576.0, (unsigned long long)st.mallocs);
    printf("heap mapped      %.1f MiB (%.1f MiB idle, %.1f MiB released)\n", st.heap_sys / 1048576.0,
           st.heap_idle / 1048576.0, st.heap_released / 1048576.0);
    printf("next collection  at %.1f MiB\n", st.next_gc / 1048576.0);
    printf("pauses           %.3f ms total, GC CPU %.1f%%\n", st.pause_total_ns / 1e6, st.gc_cpu_fraction * 100);
    rt_root_remove(root);
    rt_shutdown();
    return 0;
}
