/* bench/pause/pause.c -- stop-the-world pauses under a large live heap.
 *
 * Builds LIVE_MB of small linked objects (32-byte nodes in 4096 lists, kept
 * through a root array), then two mutator threads allocate new nodes and
 * rewire pointers for SECONDS.  Built twice:
 *   -DPAUSE_RTGC   run with RTDEBUG=gctrace=1; bench/pause/run.py reads the
 *                  two pauses of each cycle from the trace;
 *   -DPAUSE_BOEHM  Boehm (libgc.a, parallel marking): its pause is the whole
 *                  collection, timed here with GC_set_on_collection_event and
 *                  printed as "pause START_S DURATION_MS" lines.
 * Prints the mutator's throughput and GC CPU share as key=value lines.
 * usage: pause LIVE_MB SECONDS */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifdef PAUSE_RTGC
#include <rtgc.h>
#define ALLOC(T, t) rt_new(T, t)
#define STORE(slot, v) rt_store((slot), (v))
#else
#define GC_THREADS
#include <gc/gc.h>
#define ALLOC(T, t) ((T *)GC_MALLOC(sizeof(T)))
#define STORE(slot, v) (*(slot) = (v))
#endif

typedef struct Node { struct Node *next, *other; uint64_t value, pad; } Node;
#define NLISTS 4096
static Node **heads;
static volatile int stop;
static double t_start;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#ifdef PAUSE_RTGC
static const rt_type *node_t;
#else
static double gc_began;
static void on_event(GC_EventType e) {
    if (e == GC_EVENT_START) gc_began = now();
    else if (e == GC_EVENT_END) printf("pause %.6f %.4f\n", gc_began - t_start, (now() - gc_began) * 1e3);
}
#endif

static void *mutator(void *arg) {
    uint64_t s = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
#ifdef PAUSE_RTGC
    rt_thread_attach();
    const rt_type *node_ty = node_t;
#else
    void *node_ty = NULL;   /* GC_pthread_create registered this thread */
#endif
    long ops = 0;
    while (!stop) {
        for (int k = 0; k < 1000; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            Node *n = ALLOC(Node, node_ty);
            n->value = s;
            Node *h = heads[(s >> 33) % NLISTS];
            if (!h) continue;
            /* Splice the new node in after the head, dropping one old node. */
            Node *old = h->next;
            STORE(&n->next, old ? old->next : NULL);
            STORE(&h->next, n);
            STORE(&h->other, n->next);
            ops++;
        }
#ifdef PAUSE_RTGC
        rt_safepoint();
#endif
    }
    printf("mutator_ops=%ld\n", ops);
#ifdef PAUSE_RTGC
    rt_thread_detach();
#endif
    (void)node_ty;
    return NULL;
}

int main(int argc, char **argv) {
    long live_mb = argc > 1 ? atol(argv[1]) : 1024;
    double secs = argc > 2 ? atof(argv[2]) : 10;
    t_start = now();
#ifdef PAUSE_RTGC
    rt_init(NULL);
    rt_thread_attach();
    size_t offs[] = { offsetof(Node, next), offsetof(Node, other) };
    node_t = rt_type_layout("Node", sizeof(Node), offs, 2);
    heads = calloc(NLISTS, sizeof *heads);
    rt_root_add_range(heads, NLISTS * sizeof *heads, RT_ROOT_PRECISE);
    const rt_type *node_ty = node_t;
#else
    GC_INIT();
    GC_allow_register_threads();
    GC_start_mark_threads();
    GC_set_on_collection_event(on_event);
    heads = GC_MALLOC_UNCOLLECTABLE(NLISTS * sizeof *heads);
    void *node_ty = NULL;
    (void)node_ty;   /* GC_MALLOC takes no type */
#endif
    long nodes = live_mb * 1024 * 1024 / (long)sizeof(Node);
    for (long i = 0; i < nodes; i++) {
        Node *n = ALLOC(Node, node_ty);
        n->value = (uint64_t)i;
        n->next = heads[i % NLISTS];   /* fresh node: no barrier needed */
        heads[i % NLISTS] = n;         /* roots need no barrier */
    }
    double built = now();
    printf("build_s=%.2f\n", built - t_start);
    fflush(stdout);
    pthread_t t[2];
#ifdef PAUSE_RTGC
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, mutator, (void *)(uintptr_t)(i + 1));
    rt_enter_blocking();
#else
    for (int i = 0; i < 2; i++) GC_pthread_create(&t[i], NULL, mutator, (void *)(uintptr_t)(i + 1));
#endif
    double until = now() + secs;
    while (now() < until) {   /* Boehm's stop signals interrupt sleeps */
        struct timespec ts = { 0, 10000000 };
        nanosleep(&ts, NULL);
    }
    stop = 1;
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    double end = now();
#ifdef PAUSE_RTGC
    rt_exit_blocking();
    rt_mem_stats st;
    rt_read_mem_stats(&st);
    printf("gc_cpu_fraction=%.4f\nheap_mb=%.0f\ngc_count=%llu\n", st.gc_cpu_fraction, st.heap_alloc / 1048576.0,
           (unsigned long long)st.num_gc);
#else
    printf("gc_cpu_ms=%lu\nheap_mb=%.0f\ngc_count=%lu\n", (unsigned long)GC_get_full_gc_total_time(),
           GC_get_heap_size() / 1048576.0, (unsigned long)GC_get_gc_no());
#endif
    printf("phase_start_s=%.3f\nphase_end_s=%.3f\n", built - t_start, end - t_start);
    return 0;
}
