/* tests/test_finalizer.c -- finalizers (rt_set_finalizer), Go's SetFinalizer
 * semantics (reference notes 13.2):
 *   - fn(obj, arg) runs once, on the cleanup thread, after obj became
 *     unreachable; obj and everything it references stay alive until the
 *     next cycle (the two-cycle delay); a finalizer may resurrect obj;
 *   - weak handles to obj read NULL before the finalizer runs (a handle
 *     made after resurrection is a new one); cleanups on obj run only once
 *     it is really dead, after the finalizer;
 *   - A -> B both with finalizers: only A's runs first (B is kept through
 *     A), B's in a later cycle; an object that reaches itself is never
 *     finalized, and RTDEBUG=checkfinalizers=1 reports it;
 *   - one finalizer per object: setting a second, or on a non-heap or
 *     interior pointer, is one clear line and an abort; fn NULL removes;
 *   - 2-4 threads setting finalizers and dropping objects against
 *     concurrent marks, some finalizers resurrecting.
 * Semantic tests run under the configuration matrix of specials_common.h. */
#include "specials_common.h"

typedef struct FinLog {
    atomic_int runs;
    uintptr_t  obj;              /* hidden */
    int        obj_ok, child_ok, weak_null;
    rt_weak   *w;                /* a handle to check inside the finalizer */
    bool       resurrect;
    int        resurrect_slot;
} FinLog;
static FinLog logs[8];

static void reset_logs(void) { memset(logs, 0, sizeof logs); }

static void fin(void *obj, void *arg) {
    FinLog *l = arg;
    Node *n = obj;
    l->obj = hide(obj);
    l->obj_ok = n->magic != 0xdeadbeefdeadbeefull && n->magic != 0;
    l->child_ok = !n->a || n->a->magic == n->magic + 1;
    l->weak_null = l->w ? rt_weak_get(l->w) == NULL : -1;
    if (l->resurrect) R[l->resurrect_slot] = obj;
    atomic_fetch_add(&l->runs, 1);
}

/* A node with a child (magic + 1) in R[slot]. */
static Node *pair_at(int slot, uint64_t magic) {
    Node *n = node_at(slot, magic);
    Node *c = rt_alloc(sizeof(Node), node_t);
    c->magic = magic + 1;
    rt_store(&n->a, c);
    return n;
}

MATRIX(finalizer, runs_once_and_the_two_cycle_delay) {
    reset_logs();
    Node *n = pair_at(0, 100);
    uintptr_t hn = hide(n), hc = hide(n->a);
    cr_assert_eq(rt_set_finalizer(n, fin, &logs[0]), RT_OK);
    n = NULL;
    gc_and_drain();
    cr_assert_eq(atomic_load(&logs[0].runs), 0, "not while reachable");
    R[0] = NULL;
    gc_and_drain();   /* cycle 1: finalizer queued and run; object kept */
    cr_assert_eq(atomic_load(&logs[0].runs), 1);
    cr_assert_eq(logs[0].obj, hn, "fn gets the object");
    cr_assert(logs[0].obj_ok && logs[0].child_ok, "the object and what it references are intact");
    if (cfg_now != CFG_STRESS) {
        cr_assert_eq(((Node *)reveal(hn))->magic, 100, "still alive after the first cycle");
        cr_assert_eq(((Node *)reveal(hc))->magic, 101);
    }
    gc_and_drain();   /* cycle 2: really dead */
    cr_assert(freed_bytes(hn, sizeof(Node)), "freed in the following cycle");
    cr_assert(freed_bytes(hc, sizeof(Node)));
    for (int i = 0; i < 2; i++) gc_and_drain();
    cr_assert_eq(atomic_load(&logs[0].runs), 1, "exactly once");
}

MATRIX(finalizer, resurrection) {
    reset_logs();
    Node *n = pair_at(0, 200);
    uintptr_t hn = hide(n);
    rt_weak *w = rt_weak_make(n);
    R[1] = w;
    logs[0].w = w;
    logs[0].resurrect = true;
    logs[0].resurrect_slot = 2;
    rt_set_finalizer(n, fin, &logs[0]);
    n = NULL;
    R[0] = NULL;
    gc_and_drain();
    cr_assert_eq(atomic_load(&logs[0].runs), 1);
    cr_assert_eq(logs[0].weak_null, 1, "weak handles read NULL before the finalizer runs");
    cr_assert_eq(R[2], reveal(hn), "resurrected");
    for (int i = 0; i < 3; i++) gc_and_drain();
    Node *r = R[2];
    cr_assert_eq(r->magic, 200, "a resurrected object stays intact");
    cr_assert_eq(r->a->magic, 201);
    cr_assert_eq(atomic_load(&logs[0].runs), 1, "the finalizer is gone after running");
    cr_assert_null(rt_weak_get(R[1]), "the old handle never comes back");
    rt_weak *w2 = rt_weak_make(r);
    cr_assert_neq(w2, R[1], "a handle made after resurrection is a new one");
    cr_assert_eq(rt_weak_get(w2), r);
    /* It can get a finalizer again. */
    logs[1].resurrect = false;
    rt_set_finalizer(r, fin, &logs[1]);
    r = NULL;
    R[2] = NULL;
    gc_and_drain();
    cr_assert_eq(atomic_load(&logs[1].runs), 1);
}

/* Weak clearing, finalizer, cleanup: Go's order. */
static atomic_int cleanup_runs;
static atomic_int cleanup_saw_fin;
static void cleanup_fn(void *arg) {
    atomic_store(&cleanup_saw_fin, atomic_load(&((FinLog *)arg)->runs));
    atomic_fetch_add(&cleanup_runs, 1);
}
MATRIX(finalizer, order_weak_then_finalizer_then_cleanup) {
    reset_logs();
    atomic_store(&cleanup_runs, 0);
    atomic_store(&cleanup_saw_fin, -1);
    Node *n = node_at(0, 300);
    rt_weak *w = rt_weak_make(n);
    R[1] = w;
    logs[0].w = w;
    rt_add_cleanup(n, cleanup_fn, &logs[0]);
    rt_set_finalizer(n, fin, &logs[0]);
    n = NULL;
    R[0] = NULL;
    gc_and_drain();
    cr_assert_null(rt_weak_get(R[1]));
    cr_assert_eq(atomic_load(&logs[0].runs), 1);
    cr_assert_eq(logs[0].weak_null, 1);
    cr_assert_eq(atomic_load(&cleanup_runs), 0, "the cleanup waits until the object is really dead");
    gc_and_drain();
    cr_assert_eq(atomic_load(&cleanup_runs), 1);
    cr_assert_eq(atomic_load(&cleanup_saw_fin), 1, "the finalizer ran before the cleanup");
}

/* A -> B, both with finalizers: B is kept through A, so A's runs first. */
MATRIX(finalizer, chain_runs_in_order) {
    reset_logs();
    Node *a = node_at(0, 10);
    Node *b = rt_alloc(sizeof(Node), node_t);
    b->magic = 11;
    rt_store(&a->b, b);
    rt_set_finalizer(a, fin, &logs[0]);
    rt_set_finalizer(b, fin, &logs[1]);
    a = b = NULL;
    R[0] = NULL;
    gc_and_drain();
    cr_assert_eq(atomic_load(&logs[0].runs), 1);
    cr_assert_eq(atomic_load(&logs[1].runs), 0, "B is reachable from A's finalizer");
    gc_and_drain();
    cr_assert_eq(atomic_load(&logs[1].runs), 1);
    gc_and_drain();
    cr_assert_eq(atomic_load(&logs[0].runs), 1);
    cr_assert_eq(atomic_load(&logs[1].runs), 1);
}

/* Weak handle to an object reachable only from a finalizer's object: kept
   through the finalizer's cycle, cleared in the next. */
MATRIX(finalizer, weak_kept_by_a_finalizers_object) {
    reset_logs();
    Node *f = pair_at(0, 400);
    rt_weak *w = rt_weak_make(f->a);
    R[1] = w;
    rt_set_finalizer(f, fin, &logs[0]);
    f = NULL;
    R[0] = NULL;
    gc_and_drain();
    cr_assert_eq(atomic_load(&logs[0].runs), 1);
    cr_assert_not_null(rt_weak_get(R[1]), "the child stays alive with its finalized parent");
    gc_and_drain();
    cr_assert_null(rt_weak_get(R[1]));
}

/* An object that reaches itself through another object is never
   finalized (Go: its contents are roots).  A pointer to itself in its own
   fields does not count: the scan of an object skips pointers into the
   object, in Go's scanobject as here, so that one is finalized. */
MATRIX(finalizer, cycle_is_never_finalized) {
    reset_logs();
    Node *n = node_at(0, 500);
    Node *m = rt_alloc(sizeof(Node), node_t);
    m->magic = 501;
    rt_store(&n->a, m);
    rt_store(&m->b, n);
    uintptr_t hn = hide(n);
    rt_set_finalizer(n, fin, &logs[0]);
    n = m = NULL;
    R[0] = NULL;
    for (int i = 0; i < 3; i++) gc_and_drain();
    cr_assert_eq(atomic_load(&logs[0].runs), 0);
    cr_assert_eq(((Node *)reveal(hn))->magic, 500, "leaked, as in Go");
}

MATRIX(finalizer, direct_self_pointer_is_finalized) {
    reset_logs();
    Node *n = node_at(0, 550);
    rt_store(&n->b, n);
    rt_set_finalizer(n, fin, &logs[0]);
    n = NULL;
    R[0] = NULL;
    gc_and_drain();
    cr_assert_eq(atomic_load(&logs[0].runs), 1);
}

MATRIX(finalizer, remove_with_null) {
    reset_logs();
    node_at(0, 600);
    rt_set_finalizer(R[0], fin, &logs[0]);
    cr_assert_eq(rt_set_finalizer(R[0], NULL, NULL), RT_OK);
    cr_assert_eq(rt_set_finalizer(R[0], NULL, NULL), RT_OK, "removing none is fine");
    rt_set_finalizer(R[0], fin, &logs[1]);   /* and a new one may be set */
    R[0] = NULL;
    gc_and_drain();
    cr_assert_eq(atomic_load(&logs[0].runs), 0);
    cr_assert_eq(atomic_load(&logs[1].runs), 1);
}

/* The arg is a root while the finalizer is pending. */
static void fin_check_arg(void *obj, void *arg) {
    (void)obj;
    logs[2].obj_ok = probe_intact(arg, 33);
    atomic_fetch_add(&logs[2].runs, 1);
}
MATRIX(finalizer, arg_is_a_root) {
    reset_logs();
    node_at(0, 1);
    uint32_t *arg = probe_at(1, 33);
    rt_set_finalizer(R[0], fin_check_arg, arg);
    arg = NULL;
    R[1] = NULL;
    gc_and_drain();
    gc_and_drain();
    R[0] = NULL;
    gc_and_drain();
    cr_assert_eq(atomic_load(&logs[2].runs), 1);
    cr_assert_eq(logs[2].obj_ok, 1);
}

/* Tiny objects: any pointer into the block is accepted (Go); the finalizer
   runs when the whole block is unreachable. */
static void fin_tiny(void *obj, void *arg) {
    (void)obj;
    atomic_fetch_add((atomic_int *)arg, 1);
}
MATRIX(finalizer, tiny_object) {
    static atomic_int n;
    atomic_store(&n, 0);
    char *x = rt_alloc(5, RT_NOSCAN);
    R[0] = x;
    rt_set_finalizer(x, fin_tiny, &n);
    R[0] = NULL;
    for (int i = 0; i < 3 && atomic_load(&n) == 0; i++) gc_and_drain();
    cr_assert_eq(atomic_load(&n), 1);
}

/* ---- misuse and checkfinalizers --------------------------------------------------------------- */

static void noop_fin(void *obj, void *arg) { (void)obj; (void)arg; }

static void set_twice(void) {
    start_cfg(CFG_PLAIN, false);
    node_at(0, 1);
    rt_set_finalizer(R[0], noop_fin, NULL);
    rt_set_finalizer(R[0], noop_fin, NULL);
}
Test(finalizer_misuse, set_twice) {
    const char *n[] = { "rtgc: rt_set_finalizer: ", "already has a finalizer" };
    expect_abort_with(set_twice, n, 2);
}

static void set_non_heap(void) {
    static Node global;
    start_cfg(CFG_PLAIN, false);
    rt_set_finalizer(&global, noop_fin, NULL);
}
Test(finalizer_misuse, non_heap) {
    const char *n[] = { "rtgc: rt_set_finalizer: ", "not a pointer into an object allocated by rt_alloc" };
    expect_abort_with(set_non_heap, n, 2);
}

static void set_interior(void) {
    start_cfg(CFG_PLAIN, false);
    node_at(0, 1);
    rt_set_finalizer((char *)R[0] + 8, noop_fin, NULL);
}
Test(finalizer_misuse, interior_pointer) {
    const char *n[] = { "rtgc: rt_set_finalizer: ", "points inside the object" };
    expect_abort_with(set_interior, n, 2);
}

static void fin_cycle(void) {
    test_start((rt_options){ .gc_percent = RT_GC_OFF, .scan_thread_stacks = RT_SCAN_STACKS_OFF,
                             .debug = "checkfinalizers=1" });
    memset(R, 0, sizeof R);
    rt_root_add_range(R, sizeof R, RT_ROOT_PRECISE);
    size_t offs[] = { offsetof(Node, a), offsetof(Node, b) };
    node_t = rt_type_layout("Node", sizeof(Node), offs, 2);
    Node *a = node_at(0, 1), *b = node_at(1, 2);
    rt_store(&a->a, b);
    rt_store(&b->b, a);   /* a -> b -> a */
    rt_set_finalizer(a, noop_fin, NULL);
    R[0] = R[1] = NULL;
    fprintf(stderr, "obj=%p\n", (void *)a);
    rt_gc();
}
Test(finalizer_checkfinalizers, cycle_is_reported) {
    const char *n[] = { "rtgc: checkfinalizers: the finalizer", "reaches itself through its own fields",
                        "never runs", "fatal error: checkfinalizers: 1 " };
    expect_abort_with(fin_cycle, n, 4);
}

/* ---- racing threads ----------------------------------------------------------------------------
 * Each thread allocates nodes (with a child), gives each a finalizer whose
 * arg is the node's log entry, keeps some (rooted) and drops others; some
 * finalizers resurrect their object into a global array for a while.
 * Invariants: a finalizer never runs while its object is held; inside the
 * finalizer the object and its child are intact and its weak handle reads
 * NULL; at the end every dropped object's finalizer ran exactly once. */

#define FSLOTS 32
#define FMAX 60000
typedef struct FRec { atomic_int runs; int held; int bad; rt_weak *w; } FRec;
static FRec *frecs[4];
static int nfrecs[4];
static void *resurrected[256];

static void race_fin(void *obj, void *arg) {
    FRec *r = arg;
    Node *n = obj;
    if (atomic_load(&r->runs) || r->held) r->bad = 1;
    if (n->magic != (uint64_t)(uintptr_t)r || !n->a || n->a->magic != n->magic + 1) r->bad = 2;
    if (r->w && rt_weak_get(r->w)) r->bad = 3;
    atomic_fetch_add(&r->runs, 1);
    int k = (int)((uintptr_t)r / sizeof(FRec) % 512);
    if (k < 256) resurrected[k] = obj;   /* resurrect until overwritten */
}

typedef struct FTab { Node *obj[FSLOTS]; } FTab;
static long fops;

static void *fracer(void *arg) {
    int me = (int)(intptr_t)arg;
    uint64_t s = g_seed + (uint64_t)me * 65537;
    rt_thread_attach();
    FTab *t = rt_alloc(sizeof(FTab), RT_CONSERVATIVE);
    R[30 + me] = t;
    int *rec_of = calloc(FSLOTS, sizeof(int));
    for (long op = 0; op < fops && nfrecs[me] < FMAX; op++) {
        int i = (int)(rnd(&s) % FSLOTS);
        (void)rt_alloc(8192, RT_NOSCAN);   /* garbage: keeps cycles coming */
        if (rnd(&s) % 2 == 0) {
            if (t->obj[i]) continue;
            FRec *r = &frecs[me][nfrecs[me]++];
            Node *n = rt_alloc(sizeof(Node), node_t);
            n->magic = (uint64_t)(uintptr_t)r;
            rt_store(&t->obj[i], n);
            Node *c = rt_alloc(sizeof(Node), node_t);
            c->magic = n->magic + 1;
            rt_store(&n->a, c);
            r->held = 1;
            if (rnd(&s) % 2) r->w = rt_weak_make(n);   /* the records are an ambiguous root range */
            rt_set_finalizer(n, race_fin, r);
            rec_of[i] = nfrecs[me] - 1;
        } else if (t->obj[i]) {
            FRec *r = &frecs[me][rec_of[i]];
            if (atomic_load(&r->runs)) r->bad = 4;
            r->held = 0;
            rt_store(&t->obj[i], NULL);
        }
    }
    for (int i = 0; i < FSLOTS; i++)
        if (t->obj[i]) {
            frecs[me][rec_of[i]].held = 0;
            rt_store(&t->obj[i], NULL);
        }
    free(rec_of);
    R[30 + me] = NULL;
    rt_thread_detach();
    return NULL;
}

static void frace(int n, long ops) {
    seed_init("test_finalizer race");
    test_start((rt_options){ .gc_percent = 1, .maxprocs = 4, .scan_thread_stacks = RT_SCAN_STACKS_OFF,
                             .debug = "gccheckmark=1,clobberfree=1,invalidptr=1" });
    memset(R, 0, sizeof R);
    memset(resurrected, 0, sizeof resurrected);
    rt_root_add_range(R, sizeof R, RT_ROOT_PRECISE);
    rt_root_add_range(resurrected, sizeof resurrected, RT_ROOT_PRECISE);
    size_t offs[] = { offsetof(Node, a), offsetof(Node, b) };
    node_t = rt_type_layout("Node", sizeof(Node), offs, 2);
    fops = ops;
    for (int i = 0; i < n; i++) {
        frecs[i] = calloc(FMAX, sizeof(FRec));
        nfrecs[i] = 0;
        rt_root_add_range(frecs[i], FMAX * sizeof(FRec), RT_ROOT_AMBIGUOUS);   /* the weak handles */
    }
    pthread_t th[4];
    rt_enter_blocking();
    for (int i = 0; i < n; i++) pthread_create(&th[i], NULL, fracer, (void *)(intptr_t)i);
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    rt_exit_blocking();
    memset(resurrected, 0, sizeof resurrected);
    for (int k = 0; k < 3; k++) gc_and_drain();
    long total = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < nfrecs[i]; j++) {
            FRec *r = &frecs[i][j];
            cr_assert_eq(r->bad, 0, "thread %d record %d: check %d failed in the finalizer, seed=%llu", i, j, r->bad,
                         (unsigned long long)g_seed);
            cr_assert_eq(atomic_load(&r->runs), 1, "thread %d record %d ran %d times, seed=%llu", i, j,
                         atomic_load(&r->runs), (unsigned long long)g_seed);
            total++;
        }
    rt_mem_stats st;
    rt_read_mem_stats(&st);
    fprintf(stderr, "test_finalizer race: %d threads, %ld finalizers, %llu cycles\n", n, total,
            (unsigned long long)st.num_gc);
    rt_shutdown();
    for (int i = 0; i < n; i++) free(frecs[i]);
}

Test(finalizer_race, two_threads, .timeout = 300) { frace(2, 60000); }
Test(finalizer_race, three_threads, .timeout = 300) { frace(3, 50000); }
Test(finalizer_race, four_threads, .timeout = 300) { frace(4, 40000); }
