/* tests/specials_common.h -- helpers shared by test_weak.c, test_cleanup.c
 * and test_finalizer.c (each is its own executable).
 *
 * Every semantic test body runs under several collector configurations
 * (the MATRIX macro):
 *   plain      collections only at rt_gc(), world-stopped phases as usual;
 *   gcstress   RTDEBUG=gcstress=5: a whole cycle every 5 allocations, so
 *              every allocation inside the API (handles, records) meets a
 *              collection;
 *   concurrent RTGC=1 (a mark runs almost all the time, concurrently with
 *              the test: gets shade, records are added during marks) and
 *              gccheckmark=1 (each mark is re-proved with the world stopped,
 *              special records included as roots);
 *   stw        RTDEBUG=gcstoptheworld=1 (roots job inside the stopped mark).
 * All with clobberfree=1 and invalidptr=1, and with the conservative stack
 * scan off (only the test's registered root slots keep objects alive), so
 * "must be collected" checks are exact.
 *
 * How a test tells an object was reclaimed: clobberfree=1 fills a freed
 * slot with 0xdeadbeef, and rt_gc() returns once sweeping is complete.  A
 * test keeps only an xor-hidden copy of an address and checks the memory
 * right after rt_gc(), before allocating again. */
#ifndef SPECIALS_COMMON_H
#define SPECIALS_COMMON_H

#include <criterion/criterion.h>

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gc.h"
#include "test_start.h"

#define HIDE_MASK ((uintptr_t)0x5555555555555555ull)
static inline uintptr_t hide(const void *p) { return (uintptr_t)p ^ HIDE_MASK; }
static inline void *reveal(uintptr_t h) { return (void *)(h ^ HIDE_MASK); }

enum { CFG_PLAIN, CFG_STRESS, CFG_CONCURRENT, CFG_STW };
static int cfg_now;

/* Root slots: a precise range registered at start. */
#define NROOTS 64
static void *R[NROOTS];

/* A node: 4 words, the first two pointer slots. */
typedef struct Node {
    struct Node *a, *b;
    uint64_t magic, pad;
} Node;
static const rt_type *node_t;

static void start_cfg(int cfg, bool scan_stacks) {
    const char *debug = "clobberfree=1,invalidptr=1";
    int pct = RT_GC_OFF;
    switch (cfg) {
    case CFG_STRESS:     debug = "gcstress=5,clobberfree=1,invalidptr=1"; break;
    case CFG_CONCURRENT: debug = "gccheckmark=1,clobberfree=1,invalidptr=1"; pct = 1; break;
    case CFG_STW:        debug = "gcstoptheworld=1,clobberfree=1,invalidptr=1"; break;
    }
    cfg_now = cfg;
    test_start((rt_options){ .gc_percent = pct, .scan_thread_stacks = scan_stacks ? 1 : RT_SCAN_STACKS_OFF,
                             .maxprocs = 2, .debug = debug });
    memset(R, 0, sizeof R);
    rt_root_add_range(R, sizeof R, RT_ROOT_PRECISE);
    size_t offs[] = { offsetof(Node, a), offsetof(Node, b) };
    node_t = rt_type_layout("Node", sizeof(Node), offs, 2);
}

static void stop_all(void) { rt_shutdown(); }

/* A rooted node in R[slot], filled with magic. */
static Node *node_at(int slot, uint64_t magic) {
    Node *n = rt_alloc(sizeof(Node), node_t);
    cr_assert_not_null(n);
    n->magic = magic;
    R[slot] = n;
    return n;
}

/* 64-byte pointer-free probe in R[slot]. */
#define PROBE 64
static uint32_t *probe_at(int slot, uint32_t magic) {
    uint32_t *p = rt_alloc(PROBE, RT_NOSCAN);
    cr_assert_not_null(p);
    for (size_t i = 0; i < PROBE / 4; i++) p[i] = magic * 2654435761u + (uint32_t)i;
    R[slot] = p;
    return p;
}

static bool probe_intact(const void *q, uint32_t magic) {
    const uint32_t *p = q;
    for (size_t i = 0; i < PROBE / 4; i++)
        if (p[i] != magic * 2654435761u + (uint32_t)i) return false;
    return true;
}

/* Reclaimed: clobbered (or its page went back to the OS and reads zero). */
static bool freed_bytes(uintptr_t h, size_t n) {
    const uint32_t *p = reveal(h);
    bool clob = true, zero = true;
    for (size_t i = 0; i < n / 4; i++) {
        clob &= p[i] == 0xdeadbeefu;
        zero &= p[i] == 0;
    }
    return clob || zero;
}

/* Run the cleanup thread's queue dry. */
static void drain(void) { rt__cleanups_wait(); }

/* A full collection, and everything it queued has run. */
static void gc_and_drain(void) {
    rt_gc();
    drain();
}

/* ---- seeded randomness -------------------------------------------------------- */
static uint64_t g_seed;
static void seed_init(const char *who) {
    const char *e = getenv("RT_SEED");
    g_seed = e && *e ? strtoull(e, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    fprintf(stderr, "%s: seed=%llu (replay with RT_SEED=%llu)\n", who, (unsigned long long)g_seed,
            (unsigned long long)g_seed);
}
static inline uint64_t rnd(uint64_t *s) {   /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---- death tests with a message check ---------------------------------------------
 * Run body in a child with stderr captured; the child must abort and its
 * stderr must contain every needle. */
/* Run body in a child (before the parent starts rtgc: the child must
   start it itself) with its stderr captured into buf; returns the wait
   status. */
static int run_child(void (*body)(void), char *buf, size_t cap) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        body();
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t k;
    while (len < cap - 1 && (k = read(fds[0], buf + len, cap - 1 - len)) > 0) len += (size_t)k;
    buf[len] = 0;
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    return status;
}

static void expect_abort_with(void (*body)(void), const char *const *needles, int n) {
    static char buf[16384];
    int status = run_child(body, buf, sizeof buf);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "child did not abort; stderr:\n%s", buf);
    for (int i = 0; i < n; i++) cr_assert(strstr(buf, needles[i]), "stderr lacks \"%s\":\n%s", needles[i], buf);
}

#define MATRIX(suite, name)                                                              \
    static void name(void);                                                              \
    Test(suite, name) { start_cfg(CFG_PLAIN, false); name(); stop_all(); }               \
    Test(suite##_gcstress, name) { start_cfg(CFG_STRESS, false); name(); stop_all(); }   \
    Test(suite##_concurrent, name) { start_cfg(CFG_CONCURRENT, false); name(); stop_all(); } \
    Test(suite##_stw, name) { start_cfg(CFG_STW, false); name(); stop_all(); }           \
    static void name(void)

#endif
