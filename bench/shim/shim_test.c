/* shim_test.c -- smoke test of the Boehm shim (rtgc_boehm.c) through the
 * public rtgc API: the program a VM would be, in miniature.
 *
 * Build and run (bench/run builds it as build/shim_test and runs it first):
 *   cc -O2 -Iinclude -DRTGC_NO_INLINE bench/shim/shim_test.c bench/shim/rtgc_boehm.c \
 *      /usr/lib/x86_64-linux-gnu/libgc.a -lpthread -ldl && ./a.out
 * Checks: layout and traced objects survive collections while reachable
 * (traced ones through NaN-boxed edges the collector can only see via the
 * trace function, roots through a slot, a range and a scanner); weak handles
 * are canonical and clear once their object is unreachable; cleanups run,
 * stopped ones do not; a second thread can attach and allocate.  Prints
 * "N passed, N failed" and exits non-zero on any failure.  Conservative stack
 * scanning may keep a few dead objects alive, so "becomes unreachable"
 * checks accept up to 10% survivors. */
#include <rtgc.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int passed, failed;
#define CHECK(cond, ...) do { if (cond) passed++; else { failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__); \
    printf(__VA_ARGS__); putchar('\n'); } } while (0)

/* NaN-boxing as a VM would do it: a pointer with the top 16 bits set. */
#define BOX(p) ((uint64_t)(uintptr_t)(p) | 0xFFFC000000000000ull)
#define UNBOX(v) ((void *)(uintptr_t)((v) & 0x0000FFFFFFFFFFFFull))

typedef struct Pair { struct Pair *car, *cdr; uint64_t tag; } Pair;
typedef struct Boxed { uint64_t n; uint64_t vals[]; } Boxed;

static const rt_type *pair_t, *boxed_t;

static void trace_boxed(void *obj, size_t size, rt_visitor *v) {
    Boxed *b = obj;
    (void)size;
    for (uint64_t i = 0; i < b->n; i++) rt_visit(v, UNBOX(b->vals[i]));
}

static uint64_t vm_stack[64];           /* NaN-boxed values, visited by a scanner */
static int vm_sp;
static void scan_vm(rt_visitor *v, void *ctx) {
    (void)ctx;
    for (int i = 0; i < vm_sp; i++) rt_visit(v, UNBOX(vm_stack[i]));
}

static void churn(int rounds) {
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < 20000; i++) {
            Pair *p = rt_alloc(sizeof(Pair), pair_t);
            p->tag = 0xdead;
        }
        rt_gc();
    }
}

/* Objects made in a separate frame so no stale stack copy stays behind. */
static __attribute__((noinline)) void make_weaks(rt_weak **w, int n) {
    for (int i = 0; i < n; i++) w[i] = rt_weak_make(rt_alloc(64, RT_NOSCAN));
}
static __attribute__((noinline)) void clear_stack(void) {
    volatile char buf[16384];
    memset((char *)buf, 0, sizeof buf);
}

static volatile int cleanups_run, stopped_run;
static void on_cleanup(void *arg) { (void)arg; __atomic_add_fetch(&cleanups_run, 1, __ATOMIC_SEQ_CST); }
static void on_stopped(void *arg) { (void)arg; __atomic_add_fetch(&stopped_run, 1, __ATOMIC_SEQ_CST); }
static __attribute__((noinline)) void make_cleanups(int n, rt_cleanup *stop_me) {
    for (int i = 0; i < n; i++) {
        void *o = rt_alloc(32, RT_NOSCAN);
        rt_add_cleanup(o, on_cleanup, NULL);
        if (i == 0) *stop_me = rt_add_cleanup(o, on_stopped, NULL);
    }
}

static void *thread_main(void *arg) {
    (void)arg;
    if (rt_thread_attach() != RT_OK) return (void *)1;
    Pair *keep = NULL;
    for (int i = 0; i < 200000; i++) {
        Pair *p = rt_alloc(sizeof(Pair), pair_t);
        p->tag = (uint64_t)i;
        rt_store(&p->cdr, keep);
        if (i % 1000 == 0) keep = p;
    }
    long n = 0;
    for (Pair *p = keep; p; p = p->cdr) n++;
    rt_thread_detach();
    return n == 200 ? NULL : (void *)1;
}

int main(void) {
    CHECK(rt_init(NULL) == RT_OK, "rt_init");
    CHECK(rt_init(NULL) == RT_EALREADY, "second rt_init must say RT_EALREADY");
    CHECK(rt_thread_attach() == RT_OK, "rt_thread_attach");
    size_t offs[] = { offsetof(Pair, car), offsetof(Pair, cdr) };
    pair_t = rt_type_layout("pair", sizeof(Pair), offs, 2);
    boxed_t = rt_type_traced("boxed", trace_boxed);

    /* A list of 1000 pairs held by a root slot. */
    static Pair *list;
    rt_root *r1 = rt_root_add(&list);
    for (int i = 0; i < 1000; i++) {
        Pair *p = rt_alloc(sizeof(Pair), pair_t);
        CHECK(p && p->car == NULL && p->cdr == NULL && p->tag == 0, "rt_alloc memory is zeroed");
        p->tag = (uint64_t)i;
        rt_store(&p->cdr, list);
        list = p;
    }
    CHECK(rt_usable_size(list) >= sizeof(Pair), "rt_usable_size");

    /* A traced object whose only edges are NaN-boxed, held by a range root. */
    static Boxed *held[1];
    rt_root *r2 = rt_root_add_range(held, sizeof held, RT_ROOT_PRECISE);
    Boxed *b = rt_alloc(sizeof(Boxed) + 8 * sizeof(uint64_t), boxed_t);
    b->n = 8;
    rt_weak *child_w[8];
    for (int i = 0; i < 8; i++) {
        uint64_t *payload = rt_alloc(4096, RT_NOSCAN);
        payload[0] = 0x1234u + (uint64_t)i;
        b->vals[i] = BOX(payload);
        child_w[i] = rt_weak_make(payload);
    }
    CHECK(rt_weak_make(UNBOX(b->vals[3])) == child_w[3], "weak handles are canonical");
    held[0] = b;
    b = NULL;

    /* Values only on the "VM stack", found through a scanner root. */
    rt_root *r3 = rt_root_add_scanner(scan_vm, NULL);
    rt_weak *vm_w[4];
    for (int i = 0; i < 4; i++) {
        uint64_t *o = rt_alloc(256, RT_NOSCAN);
        o[0] = 0x5678u + (uint64_t)i;
        vm_stack[vm_sp++] = BOX(o);
        vm_w[i] = rt_weak_make(o);
    }

    clear_stack();
    churn(5);
    long n = 0;
    int ok = 1;
    for (Pair *p = list; p; p = p->cdr, n++) ok &= p->tag == (uint64_t)(999 - n);
    CHECK(n == 1000 && ok, "list held by a slot root survives (%ld nodes)", n);
    for (int i = 0; i < 8; i++) {
        uint64_t *c = rt_weak_get(child_w[i]);
        CHECK(c && c[0] == 0x1234u + (uint64_t)i, "NaN-boxed child %d of a traced object survives", i);
    }
    for (int i = 0; i < 4; i++) {
        uint64_t *o = rt_weak_get(vm_w[i]);
        CHECK(o && o[0] == 0x5678u + (uint64_t)i, "object seen only by the scanner survives (%d)", i);
    }

    /* Drop the roots: the objects must go. */
    rt_root_remove(r2);
    held[0] = NULL;
    vm_sp = 0;
    clear_stack();
    churn(5);
    int gone = 0;
    for (int i = 0; i < 8; i++) gone += rt_weak_get(child_w[i]) == NULL;
    for (int i = 0; i < 4; i++) gone += rt_weak_get(vm_w[i]) == NULL;
    CHECK(gone >= 10, "objects unreachable after their roots go are collected (%d of 12)", gone);

    enum { NW = 200 };
    static rt_weak *w[NW];
    make_weaks(w, NW);
    clear_stack();
    churn(3);
    gone = 0;
    for (int i = 0; i < NW; i++) gone += rt_weak_get(w[i]) == NULL;
    CHECK(gone >= NW * 9 / 10, "weak handles clear (%d of %d)", gone, NW);

    rt_cleanup stop_me = 0;
    make_cleanups(100, &stop_me);
    rt_cleanup_stop(stop_me);
    clear_stack();
    for (int i = 0; i < 50 && cleanups_run < 90; i++) { churn(1); usleep(10000); }
    CHECK(cleanups_run >= 90, "cleanups run (%d of 100)", cleanups_run);
    CHECK(stopped_run == 0, "a stopped cleanup never runs");

    pthread_t t;
    void *res = (void *)1;
    if (pthread_create(&t, NULL, thread_main, NULL) == 0) {
        rt_enter_blocking();
        pthread_join(t, &res);
        rt_exit_blocking();
    }
    CHECK(res == NULL, "a second attached thread allocates and keeps its list");

    rt_mem_stats st;
    rt_read_mem_stats(&st);
    CHECK(st.num_gc > 0 && st.heap_sys > 0 && st.num_forced_gc > 0, "rt_read_mem_stats (num_gc %llu)",
          (unsigned long long)st.num_gc);
    CHECK(rt_set_gc_percent(200) == 100, "rt_set_gc_percent returns the previous value");
    rt_root_remove(r1);
    rt_root_remove(r3);
    rt_shutdown();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
