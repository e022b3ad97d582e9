/* bench/pause/small.c -- the pause of small cycles (docs/design.md, "Small
 * cycles"): a live linked list of NODES 32-byte nodes (a list is the
 * slowest shape to mark: one cache miss per node), then 20 million
 * pointer-free allocations that the collector keeps collecting.  Prints
 * the pauses of the last 256 cycles (p50, p99, max) and how many cycles
 * were small.  rtgc only.
 *
 *   cc -O2 -I include bench/pause/small.c build-release/librtgc.a -lpthread -o small
 *   ./small 2000          # 62 KiB live: small cycles at the default smallgc
 *   RTDEBUG=smallgc=131072 ./small 4000
 */
#include <rtgc.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct Node { struct Node *next; long pad[2]; } Node;
static Node *root;

static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    long nodes = argc > 1 ? atol(argv[1]) : 2000;
    if (rt_init(NULL) != RT_OK || rt_thread_attach() != RT_OK) return 1;
    size_t offs[] = { offsetof(Node, next) };
    const rt_type *node_t = rt_type_layout("node", sizeof(Node), offs, 1);
    rt_root_add((void **)&root);
    for (long i = 0; i < nodes; i++) {
        Node *n = rt_new(Node, node_t);
        rt_store(&n->next, root);
        root = n;
    }
    for (long i = 0; i < 20000000; i++) (void)rt_alloc(32, RT_NOSCAN);
    rt_mem_stats st;
    rt_read_mem_stats(&st);
    size_t k = st.num_gc < 256 ? (size_t)st.num_gc : 256;
    uint64_t p[256];
    for (size_t i = 0; i < k; i++) p[i] = st.pause_ns[i];
    qsort(p, k, sizeof p[0], cmp);
    long n = 0;
    for (Node *x = root; x; x = x->next) n++;
    if (n != nodes || k == 0) { fprintf(stderr, "small: the list has %ld nodes of %ld\n", n, nodes); return 1; }
    printf("live %ld nodes (%ld KiB): %llu cycles; last %zu pauses: p50 %.1f us, p99 %.1f us, max %.1f us\n",
           nodes, nodes * (long)sizeof(Node) / 1024, (unsigned long long)st.num_gc, k,
           p[k / 2] / 1e3, p[(k * 99) / 100] / 1e3, p[k - 1] / 1e3);
    return 0;
}
