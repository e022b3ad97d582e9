/* bench/memory/memory.c -- the `rss` and `limit` workloads (issue 7).
 *
 * Owns the C side of both memory suites; bench/memory/run.py samples the
 * process's RSS from outside and reads what this prints.  Built twice with
 * the same flags:
 *   -DMEM_RTGC    rtgc's public API; RTMEMLIMIT / RTDEBUG come from the
 *                 environment (rt_init(NULL) reads them);
 *   -DMEM_BOEHM   Debian's libgc.a, parallel marking, default settings.
 * bench/memory/go/main.go is the same program in Go.
 *
 * The live heap is an array of root slots, each holding a chain of about
 * 256 KiB: 32-byte nodes linked through `next`/`other`, most carrying a
 * pointer-free buffer of 1-64 KiB, the rest (SMALL_PCT of the bytes) bare
 * small nodes.  Every buffer is written, live or garbage, so its pages are
 * really resident, as in a program that uses its memory.
 *
 * usage: memory rss   [peak_mb= calm_mb= hold_s= calm_s= idle_s= rate_mb= free=0|N]
 *        memory limit [target_mb= steps= step_s= hold_s= rate_mb=]
 * free=N: after each drop, call the give-back function (rt_free_os_memory,
 * GC_gcollect_and_unmap) N times instead of one plain collection.
 *
 * Output (stdout, one per line): "start T", "phase NAME T", "tick T ALLOC_MB
 * LIVE_MB RETAINED_MB" every 250 ms (RETAINED: heap memory the runtime holds
 * and has not returned to the OS, by its own count), "heap NAME k=v...",
 * key=value results, "check=ok".  T is CLOCK_MONOTONIC in seconds, the
 * runner's clock too, so no line has to arrive on time. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(MEM_RTGC) == defined(MEM_BOEHM)
#error "define exactly one of MEM_RTGC, MEM_BOEHM"
#endif

#ifdef MEM_RTGC
#include <rtgc.h>
#else
#define GC_THREADS
#include <gc/gc.h>
/* Not in libgc 8.2's public header (it has no getter); read only to report
   what the unmapping threshold is, env GC_UNMAP_THRESHOLD included. */
extern int GC_unmap_threshold;
#endif

#define MiB (1024.0 * 1024.0)
#define CHAIN_BYTES (256u << 10)
#define BATCH_BYTES (256u << 10)
#define SMALL_PCT 25
#define TICK_S 0.25
#define BASELINE_S 0.3   /* idle after init: the runner samples the RSS of an empty heap */

typedef struct Node {
    struct Node *next, *other;
    unsigned char *data;   /* pointer-free buffer, or NULL for a small node */
    uint64_t len;
} Node;

static Node **slots;
static size_t nslots;
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t allocated, live;   /* nominal bytes: what the program asked for */
static double next_tick;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* ---- the backend -------------------------------------------------------- */

#ifdef MEM_RTGC
static const rt_type *node_t;

static void backend_init(size_t n) {
    rt_init(NULL);
    rt_thread_attach();
    size_t offs[] = { offsetof(Node, next), offsetof(Node, other), offsetof(Node, data) };
    node_t = rt_type_layout("Node", sizeof(Node), offs, 3);
    slots = calloc(n, sizeof *slots);
    if (!slots) abort();
    rt_root_add_range(slots, n * sizeof *slots, RT_ROOT_PRECISE);
    printf("memlimit_mb=%.0f\n", rt_set_memory_limit(-1) / MiB);
}
static Node *new_node(void) { return rt_new(Node, node_t); }
static unsigned char *new_buf(size_t n) { return rt_alloc(n, RT_NOSCAN); }
static void store(void *slot, void *v) { rt_store(slot, v); }
static void collect(int give_back) {
    if (give_back) rt_free_os_memory();
    else rt_gc();
}
static void sleep_until(double t) {
    rt_enter_blocking();   /* a collection must not wait for a sleeping thread */
    for (double d; (d = t - now()) > 0;) {
        struct timespec ts = { (time_t)d, (long)((d - (double)(time_t)d) * 1e9) };
        nanosleep(&ts, NULL);
    }
    rt_exit_blocking();
}
/* Heap memory held and not returned to the OS: what the scavenger works on. */
static double retained_mb(void) {
    rt_mem_stats st;
    rt_read_mem_stats(&st);
    return (double)(st.heap_sys - st.heap_released) / MiB;
}
static void heap_line(const char *name) {
    rt_mem_stats st;
    rt_read_mem_stats(&st);
    printf("heap %s alloc_mb=%.1f sys_mb=%.1f released_mb=%.1f idle_mb=%.1f next_gc_mb=%.1f num_gc=%llu\n",
           name, st.heap_alloc / MiB, st.heap_sys / MiB, st.heap_released / MiB, st.heap_idle / MiB,
           st.next_gc / MiB, (unsigned long long)st.num_gc);
}
#else
static void backend_init(size_t n) {
    GC_INIT();
    GC_allow_register_threads();
    GC_start_mark_threads();
    slots = GC_MALLOC_UNCOLLECTABLE(n * sizeof *slots);
    if (!slots) abort();
    printf("boehm_unmap_threshold=%d\nboehm_force_unmap_on_gcollect=%d\n",
           GC_unmap_threshold, GC_get_force_unmap_on_gcollect());
}
static Node *new_node(void) { return GC_MALLOC(sizeof(Node)); }
static unsigned char *new_buf(size_t n) { return GC_MALLOC_ATOMIC(n); }
static void store(void *slot, void *v) { *(void **)slot = v; }
static void collect(int give_back) {
    if (give_back) GC_gcollect_and_unmap();
    else GC_gcollect();
}
static void sleep_until(double t) {
    for (double d; (d = t - now()) > 0;) {   /* Boehm's stop signals cut sleeps short */
        struct timespec ts = { (time_t)d, (long)((d - (double)(time_t)d) * 1e9) };
        nanosleep(&ts, NULL);
    }
}
static double retained_mb(void) { return GC_get_heap_size() / MiB; }   /* excludes unmapped blocks */
static void heap_line(const char *name) {
    printf("heap %s heap_mb=%.1f unmapped_mb=%.1f free_mb=%.1f num_gc=%lu\n", name,
           GC_get_heap_size() / MiB, GC_get_unmapped_bytes() / MiB, GC_get_free_bytes() / MiB,
           (unsigned long)GC_get_gc_no());
}
#endif

/* ---- the workload ------------------------------------------------------- */

static void tick(void) {
    double t = now();
    if (t < next_tick) return;
    printf("tick %.4f %.1f %.1f %.1f\n", t, allocated / MiB, live / MiB, retained_mb());
    next_tick = t + TICK_S;
}

static void phase(const char *name) {
    printf("phase %s %.4f\n", name, now());
    heap_line(name);
}

/* A chain of about `bytes`; the head stays on the stack while it grows. */
static Node *chain(uint64_t bytes) {
    Node *head = NULL;
    uint64_t got = 0, small = 0;
    while (got < bytes) {
        Node *n;
        uint64_t left = bytes - got;
        if (small * 100 < (uint64_t)SMALL_PCT * got || left < 1024 + sizeof(Node)) {
            n = new_node();
            small += sizeof(Node);
            got += sizeof(Node);
        } else {
            size_t len = 1024 + (size_t)(rnd() % (63 * 1024 + 1));
            if (len + sizeof(Node) > left) len = left - sizeof(Node);   /* chains are exact: live is what we say */
            unsigned char *b = new_buf(len);
            memset(b, (int)(len & 0x7f) | 1, len);
            n = new_node();
            store(&n->data, b);
            n->len = len;
            got += len + sizeof(Node);
        }
        store(&n->next, head);
        if (head) store(&n->other, head->next);
        head = n;
    }
    allocated += got;
    return head;
}

static void set_slot(size_t i, uint64_t bytes) {
    if (slots[i]) live -= CHAIN_BYTES;
    slots[i] = chain(bytes);   /* roots need no barrier */
    live += CHAIN_BYTES;
}

/* Fill slots [from, to) as fast as possible, with `garbage` bytes of
   dropped chains per live byte. */
static void grow(size_t from, size_t to, double garbage) {
    double owed = 0;
    for (size_t i = from; i < to; i++) {
        set_slot(i, CHAIN_BYTES);
        for (owed += garbage * CHAIN_BYTES; owed >= BATCH_BYTES; owed -= BATCH_BYTES)
            (void)chain(BATCH_BYTES);
        tick();
    }
}

/* Allocate garbage at rate_mb MiB/s until `until`; `churn` percent of the
   batches replace a live chain among slots [0, nchurn) instead.  A mutator
   that falls behind (the collector took its CPU) does not catch up for
   more than a second's worth: the point is a steady rate. */
static void steady(double until, double rate_mb, int churn, size_t nchurn) {
    double rate = rate_mb * MiB, t0 = now();
    uint64_t done = 0;
    for (double t; (t = now()) < until;) {
        double due = (t - t0) * rate;
        if (due > done + rate) {
            t0 = t - (double)(done + rate) / rate;
            due = done + rate;
        }
        if ((double)done >= due) {
            double wake = t0 + (double)(done + BATCH_BYTES) / rate;
            sleep_until(wake < until ? wake : until);
            tick();
            continue;
        }
        if (nchurn && (int)(rnd() % 100) < churn) set_slot((size_t)(rnd() % nchurn), CHAIN_BYTES);
        else (void)chain(BATCH_BYTES);
        done += BATCH_BYTES;
        tick();
    }
}

/* No allocation at all, but keep ticking: the runner follows the heap. */
static void idle(double until) {
    for (double t; (t = now()) < until;) {
        sleep_until(t + TICK_S < until ? t + TICK_S : until);
        tick();
    }
}

static void drop(size_t from, size_t to) {
    for (size_t i = from; i < to; i++) {
        if (slots[i]) live -= CHAIN_BYTES;
        slots[i] = NULL;
    }
}

/* Every live chain is intact: node links and the bytes of every buffer's
   ends.  A collector that freed a live object shows here. */
static void check(size_t n) {
    uint64_t nodes = 0;
    for (size_t i = 0; i < n; i++) {
        for (Node *p = slots[i]; p; p = p->next, nodes++) {
            if (p->other && p->other != (p->next ? p->next->next : NULL)) {
                printf("check=FAIL slot %zu: a node's other link is wrong\n", i);
                exit(1);
            }
            if (!p->data) continue;
            unsigned char want = (unsigned char)((p->len & 0x7f) | 1);
            if (p->data[0] != want || p->data[p->len - 1] != want) {
                printf("check=FAIL slot %zu: buffer of %llu bytes overwritten\n", i, (unsigned long long)p->len);
                exit(1);
            }
        }
    }
    printf("checked_nodes=%llu\ncheck=ok\n", (unsigned long long)nodes);
}

static double arg(int argc, char **argv, const char *key, double dflt) {
    size_t k = strlen(key);
    for (int i = 2; i < argc; i++)
        if (!strncmp(argv[i], key, k) && argv[i][k] == '=') return atof(argv[i] + k + 1);
    return dflt;
}

static void run_rss(int argc, char **argv) {
    double peak = arg(argc, argv, "peak_mb", 1024), calm = arg(argc, argv, "calm_mb", 10);
    double hold_s = arg(argc, argv, "hold_s", 3), calm_s = arg(argc, argv, "calm_s", 15);
    double idle_s = arg(argc, argv, "idle_s", 15), rate = arg(argc, argv, "rate_mb", 32);
    int give_back = (int)arg(argc, argv, "free", 0);
    nslots = (size_t)(peak * MiB / CHAIN_BYTES);
    size_t ncore = (size_t)(calm * MiB / CHAIN_BYTES);
    backend_init(nslots);
    printf("start %.4f\n", now());
    sleep_until(now() + BASELINE_S);
    for (int round = 1; round <= 2; round++) {
        char name[16];
        snprintf(name, sizeof name, "grow%d", round);
        phase(name);
        grow(round == 1 ? 0 : ncore, nslots, 1.0);
        snprintf(name, sizeof name, "hold%d", round);
        phase(name);
        steady(now() + hold_s, rate, 0, 0);
        snprintf(name, sizeof name, "drop%d", round);
        phase(name);
        drop(ncore, nslots);
        for (int i = 0; i < (give_back > 1 ? give_back : 1); i++) collect(give_back);
        snprintf(name, sizeof name, "collected%d", round);
        phase(name);
        if (round == 1) steady(now() + calm_s, rate, 25, ncore);
        else idle(now() + idle_s);
    }
    phase("end");
    check(nslots);
}

static void run_limit(int argc, char **argv) {
    double target = arg(argc, argv, "target_mb", 480), step_s = arg(argc, argv, "step_s", 1);
    double hold_s = arg(argc, argv, "hold_s", 15), rate = arg(argc, argv, "rate_mb", 64);
    int steps = (int)arg(argc, argv, "steps", 15);
    nslots = (size_t)(target * MiB / CHAIN_BYTES);
    backend_init(nslots);
    printf("start %.4f\n", now());
    sleep_until(now() + BASELINE_S);
    for (int s = 0; s < steps; s++) {
        char name[16];
        snprintf(name, sizeof name, "step%d", s + 1);
        double until = now() + step_s;
        phase(name);
        grow(nslots * (size_t)s / (size_t)steps, nslots * (size_t)(s + 1) / (size_t)steps, 0.0);
        steady(until, rate, 0, 0);
    }
    phase("hold");
    steady(now() + hold_s, rate, 0, 0);
    phase("end");
    check(nslots);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && !strcmp(argv[1], "rss")) run_rss(argc, argv);
    else if (argc > 1 && !strcmp(argv[1], "limit")) run_limit(argc, argv);
    else {
        fprintf(stderr, "usage: memory rss|limit [key=value...]\n");
        return 2;
    }
    printf("allocated_mb=%.0f\n", allocated / MiB);
    return 0;
}
