/* tests/test_gc_roots.c -- every kind of root keeps what it points to, and
 * only while it is registered:
 *   rt_root_add (one slot), rt_root_add_range (precise and ambiguous),
 *   rt_root_add_scanner (callback), and the conservative scan of attached
 *   threads' stacks (a thread parked in a blocking region or at a
 *   safepoint).
 *
 * How a test tells an object was reclaimed: it runs with clobberfree=1, so
 * the sweeper fills a freed slot with 0xdeadbeef, and rt_gc() returns only
 * when sweeping is complete.  A test keeps only an xor-obfuscated copy of
 * an object's address (so the copy is not a conservative root) and reads
 * the memory right after rt_gc(), before allocating again (zeros count as
 * reclaimed too: the page went back to the OS).  Live objects are filled
 * with a per-object pattern that must survive intact.
 *
 * Every "must die" check runs with scan_thread_stacks = RT_SCAN_STACKS_OFF, so nothing on the
 * test's own stack can retain an object by accident; only the stack tests
 * turn stack scanning on, and there the main thread never holds the
 * pointer at all. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rtgc.h"
#include "test_start.h"

/* ---- helpers ---------------------------------------------------------------- */

#define HIDE_MASK ((uintptr_t)0x5555555555555555ull)
static inline uintptr_t hide(const void *p) { return (uintptr_t)p ^ HIDE_MASK; }
static inline void *reveal(uintptr_t h) { return (void *)(h ^ HIDE_MASK); }

#define PROBE 64   /* bytes of a probe object (a pointer-free size class) */

/* A pointer-free object filled with a pattern derived from magic. */
static void *probe_new(uint32_t magic) {
    uint32_t *p = rt_alloc(PROBE, RT_NOSCAN);
    cr_assert_not_null(p);
    for (size_t i = 0; i < PROBE / 4; i++) p[i] = magic * 2654435761u + (uint32_t)i;
    return p;
}

static bool probe_intact(uintptr_t h, uint32_t magic) {
    const uint32_t *p = reveal(h);
    for (size_t i = 0; i < PROBE / 4; i++)
        if (p[i] != magic * 2654435761u + (uint32_t)i) return false;
    return true;
}

/* Swept free: clobberfree=1 filled it with 0xdeadbeef, or its page has
   since been returned to the OS and reads as zero (a live probe is never
   all zero, so either way it was reclaimed). */
static bool probe_freed(uintptr_t h) {
    const uint32_t *p = reveal(h);
    bool clob = true, zero = true;
    for (size_t i = 0; i < PROBE / 4; i++) {
        clob &= p[i] == 0xdeadbeefu;
        zero &= p[i] == 0;
    }
    return clob || zero;
}

static void start(int scan_stacks, const char *debug) {
    test_start((rt_options){ .gc_percent = RT_GC_OFF, .scan_thread_stacks = scan_stacks ? 1 : RT_SCAN_STACKS_OFF,
                             .debug = debug });
}

static void stop(void) { rt_shutdown(); }

TestSuite(roots, .fini = stop, .timeout = 60);

/* ---- rt_root_add ---------------------------------------------------------- */

static void *g_slot;

Test(roots, slot_keeps_object_until_removed) {
    start(0, "clobberfree=1");
    g_slot = probe_new(1);
    uintptr_t h1 = hide(g_slot);
    uintptr_t hd = hide(probe_new(99));   /* referenced by nothing */
    rt_root *r = rt_root_add(&g_slot);
    cr_assert_not_null(r);
    rt_gc();
    cr_assert(probe_freed(hd), "an unreferenced object survived rt_gc");
    rt_gc();
    cr_assert(probe_intact(h1, 1), "the object in a registered slot was reclaimed or damaged");

    /* The slot is read at each collection: its current value is the root. */
    g_slot = probe_new(2);
    uintptr_t h2 = hide(g_slot);
    rt_gc();
    cr_assert(probe_freed(h1), "the slot's old value was still treated as a root");
    cr_assert(probe_intact(h2, 2), "the slot's new value was not treated as a root");

    /* Removed: the variable still holds the pointer, but is no root any more. */
    rt_root_remove(r);
    rt_gc();
    cr_assert(probe_freed(h2), "a removed root slot still kept its object alive");
    g_slot = NULL;
}

Test(roots, slots_are_independent) {
    start(0, "clobberfree=1");
    static void *slots[3];
    rt_root *r[3];
    uintptr_t h[3];
    for (int i = 0; i < 3; i++) {
        slots[i] = probe_new(10 + (uint32_t)i);
        h[i] = hide(slots[i]);
        r[i] = rt_root_add(&slots[i]);
    }
    rt_root_remove(r[1]);
    rt_gc();
    cr_assert(probe_intact(h[0], 10));
    cr_assert(probe_freed(h[1]), "removing one root did not release its object");
    cr_assert(probe_intact(h[2], 12), "removing one root released another root's object");
    rt_root_remove(r[0]);
    rt_root_remove(r[2]);
    rt_gc();
    cr_assert(probe_freed(h[0]));
    cr_assert(probe_freed(h[2]));
    memset(slots, 0, sizeof slots);
}

/* ---- rt_root_add_range, precise ------------------------------------------- */

static void *g_table[16];

Test(roots, precise_range_keeps_exactly_its_slots) {
    start(0, "clobberfree=1,invalidptr=1");
    uintptr_t h[16];
    for (int i = 0; i < 16; i++) {
        char *p = probe_new(100 + (uint32_t)i);
        h[i] = hide(p);
        /* Odd slots hold interior pointers: they keep the whole object too. */
        g_table[i] = (i % 2) ? p + 8 * (i % 8) + 1 : p;
    }
    /* Register only the first 12 slots: 12..15 lie outside the range. */
    rt_root *r = rt_root_add_range(g_table, 12 * sizeof(void *), RT_ROOT_PRECISE);
    rt_gc();
    for (int i = 0; i < 16; i++) {
        if (i < 12) cr_assert(probe_intact(h[i], 100 + (uint32_t)i), "slot %d of a precise range lost its object", i);
        else cr_assert(probe_freed(h[i]), "slot %d lies past the range's end but kept its object", i);
    }
    for (int i = 0; i < 12; i += 2) g_table[i] = NULL;
    rt_gc();
    for (int i = 0; i < 12; i++) {
        if (i % 2) cr_assert(probe_intact(h[i], 100 + (uint32_t)i), "slot %d lost its object", i);
        else cr_assert(probe_freed(h[i]), "cleared slot %d still kept its object", i);
    }
    rt_root_remove(r);
    rt_gc();
    for (int i = 1; i < 12; i += 2) cr_assert(probe_freed(h[i]), "slot %d of a removed range kept its object", i);
    memset(g_table, 0, sizeof g_table);
}

/* ---- rt_root_add_range, ambiguous ------------------------------------------ */

static uintptr_t g_words[16];

Test(roots, ambiguous_range_interior_and_tagged_words) {
    start(0, "clobberfree=1,invalidptr=1");
    char *a = probe_new(201), *b = probe_new(202), *c = probe_new(203), *d = probe_new(204);
    uintptr_t ha = hide(a), hb = hide(b), hc = hide(c), hd = hide(d);
    int local;
    g_words[0] = (uintptr_t)a + 13;           /* interior, unaligned */
    g_words[1] = (uintptr_t)b | 1;            /* tagged (low bit set) */
    g_words[2] = (uintptr_t)c + PROBE - 1;    /* last byte */
    g_words[3] = 42;                          /* small integer */
    g_words[4] = 0xdeadbeefdeadbeefull;
    g_words[5] = ~(uintptr_t)0;
    g_words[6] = (uintptr_t)&local;           /* a stack address */
    g_words[7] = (uintptr_t)g_words;          /* a static address */
    g_words[8] = (uintptr_t)d << 1;           /* a non-pointer made from d's address */
    g_words[9] = 4096;
    a = b = c = d = NULL;
    rt_root *r = rt_root_add_range(g_words, sizeof g_words, RT_ROOT_AMBIGUOUS);
    rt_gc();
    cr_assert(probe_intact(ha, 201), "an interior pointer in an ambiguous range did not keep its object");
    cr_assert(probe_intact(hb, 202), "a tagged pointer in an ambiguous range did not keep its object");
    cr_assert(probe_intact(hc, 203), "a pointer to the last byte did not keep its object");
    cr_assert(probe_freed(hd), "a non-pointer word kept an object");
    rt_root_remove(r);
    rt_gc();
    cr_assert(probe_freed(ha));
    cr_assert(probe_freed(hb));
    cr_assert(probe_freed(hc));
    memset(g_words, 0, sizeof g_words);
}

Test(roots, ambiguous_range_may_be_unaligned) {
    start(0, "clobberfree=1");
    static uintptr_t buf[6];
    char *a = probe_new(301);
    uintptr_t ha = hide(a);
    buf[2] = (uintptr_t)a;      /* a whole word inside [buf+3, buf+3+32) */
    a = NULL;
    rt_root *r = rt_root_add_range((char *)buf + 3, 4 * sizeof(uintptr_t), RT_ROOT_AMBIGUOUS);
    rt_gc();
    cr_assert(probe_intact(ha, 301), "a pointer word inside an unaligned ambiguous range was not scanned");
    rt_root_remove(r);
    rt_gc();
    cr_assert(probe_freed(ha));
    buf[2] = 0;
}

static uint64_t rng_state;
static uint64_t rng(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

Test(roots, ambiguous_garbage_words_are_safe) {
    /* invalidptr=1: an ambiguous word pointing into a free slot is no error. */
    start(0, "clobberfree=1,invalidptr=1");
    enum { N = 8192 };
    uintptr_t *words = calloc(N, sizeof *words);
    cr_assert_not_null(words);
    /* Objects that die once the words into them are cleared: then many
       words point into free slots. */
    uintptr_t dead[64];
    for (int i = 0; i < 64; i++) dead[i] = hide(probe_new(500));
    uintptr_t keep = hide(probe_new(600));
    rng_state = 12345;
    for (size_t i = 0; i < N; i++) {
        uintptr_t base = (uintptr_t)reveal(dead[i % 64]);
        switch (i % 4) {
        case 0: words[i] = (uintptr_t)rng(); break;                                  /* anything */
        case 1: words[i] = base + (uintptr_t)(rng() % (4u << 20)) - (2u << 20); break; /* near the heap */
        case 2: words[i] = base + rng() % PROBE; break;                              /* into a dead object */
        case 3: words[i] = (uintptr_t)(rng() & 0xfff); break;                        /* small numbers */
        }
    }
    words[N - 1] = (uintptr_t)reveal(keep) + 5;
    rt_root *r = rt_root_add_range(words, N * sizeof *words, RT_ROOT_AMBIGUOUS);
    rt_gc();   /* the dead objects were referenced: they may survive this one */
    for (size_t i = 0; i < N; i += 4) words[i + 2] = 0;   /* drop the words into dead objects */
    rt_gc();
    rt_gc();
    cr_assert(probe_intact(keep, 600), "the one real pointer among garbage words lost its object");
    rt_root_remove(r);
    rt_gc();
    cr_assert(probe_freed(keep));
    free(words);
}

/* ---- rt_root_add_scanner ---------------------------------------------------- */

static int g_static_target;

typedef struct {
    void *objs[4];
    uintptr_t amb[2];
    atomic_int calls;
} scan_ctx;

static void scan_cb(rt_visitor *v, void *arg) {
    scan_ctx *c = arg;
    atomic_fetch_add(&c->calls, 1);
    for (int i = 0; i < 4; i++) rt_visit(v, c->objs[i]);
    for (int i = 0; i < 2; i++) rt_visit_ambiguous(v, c->amb[i]);
}

Test(roots, scanner_visits_keep_objects) {
    start(0, "clobberfree=1,invalidptr=1");
    /* The context lives in malloc'd memory, which the collector never scans. */
    scan_ctx *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    char *a = probe_new(701), *b = probe_new(702), *cc = probe_new(703);
    uintptr_t ha = hide(a), hb = hide(b), hc = hide(cc), hd = hide(probe_new(704));
    c->objs[0] = a;
    c->objs[1] = NULL;                    /* NULL is allowed */
    c->objs[2] = &g_static_target;        /* so is a non-heap pointer */
    c->objs[3] = b + 7;                   /* and an interior pointer */
    c->amb[0] = (uintptr_t)cc | 3;        /* tagged */
    c->amb[1] = 12345;                    /* an integer */
    a = b = cc = NULL;
    rt_root *r = rt_root_add_scanner(scan_cb, c);
    rt_gc();
    cr_assert_eq(atomic_load(&c->calls), 1, "the scanner ran %d times in one cycle", atomic_load(&c->calls));
    cr_assert(probe_intact(ha, 701), "rt_visit from a scanner did not keep its object");
    cr_assert(probe_intact(hb, 702), "an interior pointer visited by a scanner did not keep its object");
    cr_assert(probe_intact(hc, 703), "rt_visit_ambiguous of a tagged word did not keep its object");
    cr_assert(probe_freed(hd), "an object no scanner visits survived");

    /* The callback sees the context's current state at each cycle. */
    c->objs[0] = NULL;
    rt_gc();
    cr_assert_eq(atomic_load(&c->calls), 2);
    cr_assert(probe_freed(ha), "an object the scanner stopped visiting survived");
    cr_assert(probe_intact(hb, 702));

    rt_root_remove(r);
    rt_gc();
    cr_assert_eq(atomic_load(&c->calls), 2, "a removed scanner was still called");
    cr_assert(probe_freed(hb), "a removed scanner still kept its objects");
    cr_assert(probe_freed(hc), "a removed scanner still kept its objects");
    free(c);
}

/* ---- thread stacks ---------------------------------------------------------
 * The object is allocated by a second attached thread and referenced only
 * from that thread's local variable; the main thread never sees the pointer,
 * only its obfuscated copy. */

#ifdef __SANITIZE_ADDRESS__
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif
#ifdef HAVE_ASAN
/* ASan's fake stacks (detect_stack_use_after_return) move locals to the
   malloc heap, out of reach of any conservative stack scan. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "detect_stack_use_after_return=0"; }
#endif

typedef struct {
    sem_t      ready, go;
    uintptr_t  hidden;
    bool       check_after;   /* the object must still be intact when the thread resumes */
    bool       ok;
    atomic_int parked_spinning, stop;
} worker;

static void *blocking_worker(void *arg) {
    worker *w = arg;
    if (rt_thread_attach() != RT_OK) return NULL;
    uint32_t *volatile obj = probe_new(801);
    w->hidden = hide(obj);
    rt_enter_blocking();
    sem_post(&w->ready);
    while (sem_wait(&w->go) != 0) {}
    rt_exit_blocking();
    w->ok = !w->check_after || probe_intact(hide(obj), 801);
    obj = NULL;
    rt_thread_detach();
    return NULL;
}

static void run_blocking_worker(bool scan) {
    start(scan, "clobberfree=1");
    worker w = { .check_after = scan };
    sem_init(&w.ready, 0, 0);
    sem_init(&w.go, 0, 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, blocking_worker, &w), 0);
    while (sem_wait(&w.ready) != 0) {}
    rt_gc();
    rt_gc();
    bool alive = probe_intact(w.hidden, 801), freed = probe_freed(w.hidden);
    sem_post(&w.go);   /* let the worker detach before any assertion can end the test */
    pthread_join(t, NULL);
    if (scan) cr_assert(alive, "an object referenced only from a blocked thread's stack was reclaimed");
    else cr_assert(freed, "with scan_thread_stacks = RT_SCAN_STACKS_OFF a thread's stack still kept an object alive");
    cr_assert(w.ok, "the worker found its object damaged after resuming");
    sem_destroy(&w.ready);
    sem_destroy(&w.go);
}

Test(roots, blocked_thread_stack_keeps_object) { run_blocking_worker(true); }
Test(roots, blocked_thread_stack_ignored_when_scanning_is_off) { run_blocking_worker(false); }

static void *spinning_worker(void *arg) {
    worker *w = arg;
    if (rt_thread_attach() != RT_OK) return NULL;
    uint32_t *volatile obj = probe_new(802);
    w->hidden = hide(obj);
    atomic_store(&w->parked_spinning, 1);
    /* Running, touching no heap memory: stops only at the safepoint. */
    while (!atomic_load(&w->stop)) rt_safepoint();
    w->ok = !w->check_after || probe_intact(hide(obj), 802);
    obj = NULL;
    rt_thread_detach();
    return NULL;
}

static void run_spinning_worker(bool scan) {
    start(scan, "clobberfree=1");
    worker w = { .check_after = scan };
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, spinning_worker, &w), 0);
    while (!atomic_load(&w.parked_spinning)) sched_yield();
    rt_gc();
    rt_gc();
    bool alive = probe_intact(w.hidden, 802), freed = probe_freed(w.hidden);
    atomic_store(&w.stop, 1);
    pthread_join(t, NULL);
    if (scan) cr_assert(alive, "an object referenced from a thread stopped at a safepoint was reclaimed");
    else cr_assert(freed, "with scan_thread_stacks = RT_SCAN_STACKS_OFF a stopped thread's stack kept an object alive");
    cr_assert(w.ok, "the worker found its object damaged after resuming");
}

Test(roots, safepoint_stopped_thread_stack_keeps_object) { run_spinning_worker(true); }
Test(roots, safepoint_stopped_thread_ignored_when_scanning_is_off) { run_spinning_worker(false); }

/* The collecting thread's own stack is scanned too (scan_thread_stacks = 1):
   an object held only in a local of the caller of rt_gc survives. */
static __attribute__((noinline)) void collect_twice(void) { rt_gc(); rt_gc(); }

Test(roots, own_stack_keeps_object) {
    start(1, "clobberfree=1");
    uint32_t *volatile obj = probe_new(803);
    uintptr_t h = hide(obj);
    collect_twice();
    cr_assert(probe_intact(h, 803), "an object held in a local of the collecting thread was reclaimed");
    cr_assert_eq((uintptr_t)obj, (uintptr_t)reveal(h));
    obj = NULL;
}

/* ---- thread registers -------------------------------------------------------
 * A pointer held only in one callee-saved register of a thread that blocks
 * or parks at a safepoint.  The assembly below loads it there (from the
 * obfuscated copy), so no C code of the test ever has it; what the thread
 * calls meanwhile may push the register into frames below the range that
 * is scanned, so the register set saved when the thread stopped is all
 * that keeps the object.  The tests fail if the saved set is left out
 * (checked by zeroing it in rt__enter_blocking). */

#if defined(__x86_64__)

static worker R;   /* the stack tests' worker state; the calls below cannot take an argument */

/* Stale copies of the pointer in dead frames (probe_new's, or
   rt_enter_blocking's once it has returned) could lie in the range
   scanned and keep the object. */
void scrub_stack(void);
__attribute__((noinline, used)) void scrub_stack(void) {
    volatile char junk[16384];
    memset((char *)junk, 0, sizeof junk);
    __asm__ volatile("" : : "r"(junk) : "memory");
}

static void wait_for_collections(void) {
    sem_post(&R.ready);
    while (sem_wait(&R.go) != 0) {}
}

static void spin_at_safepoints(void) {
    atomic_store(&R.parked_spinning, 1);
    while (!atomic_load(&R.stop)) rt_safepoint();
}

/* Hold reveal(h) in register `reg` only, around: rt_enter_blocking, fn(),
   rt_exit_blocking (blocking), or fn() alone (parked).  `save` keeps the
   stack pointer, realigned below the red zone for the calls.  Returns the
   register's value at the end, obfuscated again. */
#define HOLD_IN(reg, save, calls)                                                                   \
    __asm__ volatile("movq %%rsp, %%" save "\n\t"                                                   \
                     "subq $128, %%rsp\n\t"                                                         \
                     "andq $-16, %%rsp\n\t"                                                         \
                     "movabsq $0x5555555555555555, %%rax\n\t"                                       \
                     "movq %[h], %%" reg "\n\t"                                                     \
                     "xorq %%rax, %%" reg "\n\t"                                                    \
                     calls                                                                          \
                     "movabsq $0x5555555555555555, %%rax\n\t"                                       \
                     "xorq %%rax, %%" reg "\n\t"                                                    \
                     "movq %%" save ", %%rsp\n\t"                                                   \
                     "movq %%" reg ", %[out]\n\t"                                                   \
                     : [out] "=m"(out)                                                              \
                     : [h] "r"(h), [fn] "r"(fn)                                                     \
                     : reg, save, "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11",       \
                       "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",       \
                       "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc")
#define BLOCKING "call rt_enter_blocking\n\tcall scrub_stack\n\tcall *%[fn]\n\tcall rt_exit_blocking\n\t"
#define PARKED   "call *%[fn]\n\t"

static const char *const reg_names[] = { "rbx", "r12", "r13", "r14", "r15" };

static __attribute__((noinline)) uintptr_t hold_in_register(int which, bool blocking, uintptr_t h) {
    uintptr_t out = 0;
    void (*fn)(void) = blocking ? wait_for_collections : spin_at_safepoints;
    switch (which * 2 + blocking) {
    case 0: HOLD_IN("rbx", "r12", PARKED); break;
    case 1: HOLD_IN("rbx", "r12", BLOCKING); break;
    case 2: HOLD_IN("r12", "r13", PARKED); break;
    case 3: HOLD_IN("r12", "r13", BLOCKING); break;
    case 4: HOLD_IN("r13", "r14", PARKED); break;
    case 5: HOLD_IN("r13", "r14", BLOCKING); break;
    case 6: HOLD_IN("r14", "r15", PARKED); break;
    case 7: HOLD_IN("r14", "r15", BLOCKING); break;
    case 8: HOLD_IN("r15", "rbx", PARKED); break;
    case 9: HOLD_IN("r15", "rbx", BLOCKING); break;
    }
    return out;
}

typedef struct { int which; bool blocking; uintptr_t hidden, back; } reg_job;

static __attribute__((noinline)) uintptr_t new_hidden_probe(uint32_t magic) { return hide(probe_new(magic)); }

static void *register_worker(void *arg) {
    reg_job *j = arg;
    if (rt_thread_attach() != RT_OK) return NULL;
    j->hidden = new_hidden_probe(810 + (uint32_t)j->which);
    scrub_stack();
    j->back = hold_in_register(j->which, j->blocking, j->hidden);
    rt_thread_detach();
    return NULL;
}

static void run_register_worker(int which, bool blocking) {
    start(1, "clobberfree=1");
    memset(&R, 0, sizeof R);
    sem_init(&R.ready, 0, 0);
    sem_init(&R.go, 0, 0);
    reg_job j = { .which = which, .blocking = blocking };
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, register_worker, &j), 0);
    if (blocking) {
        while (sem_wait(&R.ready) != 0) {}
    } else {
        while (!atomic_load(&R.parked_spinning)) sched_yield();
    }
    rt_gc();
    rt_gc();
    bool alive = probe_intact(j.hidden, 810 + (uint32_t)which);
    if (blocking) sem_post(&R.go);
    else atomic_store(&R.stop, 1);
    pthread_join(t, NULL);
    cr_assert_eq(j.back, j.hidden, "the register did not hold the pointer throughout");
    cr_assert(alive, "an object held only in %s of a thread %s was reclaimed", reg_names[which],
              blocking ? "in a blocking region" : "stopped at a safepoint");
    sem_destroy(&R.ready);
    sem_destroy(&R.go);
}

Test(roots, blocked_thread_registers_keep_objects) {
    for (int which = 0; which < 5; which++) {
        run_register_worker(which, true);
        rt_shutdown();
    }
}

Test(roots, safepoint_stopped_thread_registers_keep_objects) {
    for (int which = 0; which < 5; which++) {
        run_register_worker(which, false);
        rt_shutdown();
    }
}

/* rt__save_context records each callee-saved register as it is at the call,
   and the caller's stack pointer. */
void rt__save_context(uintptr_t *regs, uintptr_t *sp);

Test(roots, save_context_records_the_callee_saved_registers) {
    uintptr_t regs[6] = { 0 }, sp = 0, sp_at_call = 0;
    __asm__ volatile("movq %%rsp, %%r15\n\t"
                     "subq $128, %%rsp\n\t"      /* below the red zone */
                     "andq $-16, %%rsp\n\t"
                     "pushq %%rbp\n\t"
                     "subq $8, %%rsp\n\t"        /* aligned again for the call */
                     "movq %%rsp, (%[at])\n\t"
                     "movq $0x1111, %%rbx\n\t"
                     "movq $0x2222, %%rbp\n\t"
                     "movq $0x3333, %%r12\n\t"
                     "movq $0x4444, %%r13\n\t"
                     "movq $0x5555, %%r14\n\t"
                     "call rt__save_context\n\t"
                     "addq $8, %%rsp\n\t"
                     "popq %%rbp\n\t"
                     "movq %%r15, %%rsp\n\t"
                     :
                     : "D"(regs), "S"(&sp), [at] "d"(&sp_at_call)   /* it writes rax only */
                     : "rbx", "r12", "r13", "r14", "r15", "rax", "memory", "cc");
    uintptr_t want[5] = { 0x1111, 0x2222, 0x3333, 0x4444, 0x5555 };
    for (int i = 0; i < 5; i++) cr_assert_eq(regs[i], want[i], "register %d: %#lx, want %#lx", i, regs[i], want[i]);
    cr_assert_neq(regs[5], 0, "r15 (the saved stack pointer here) was not recorded");
    cr_assert_eq(sp, sp_at_call, "the stack pointer saved is not the caller's");
}

#endif /* __x86_64__ */
