/* tests/test_weak.c -- weak handles (rt_weak_make / rt_weak_get), Go's
 * semantics (reference notes section 12):
 *   - one canonical handle per object, also for interior pointers;
 *   - get returns the object while it is reachable (from a root, a stack,
 *     another object, a finalizer's object) and NULL forever once the sweep
 *     that frees it has run, never earlier, never later; a get never
 *     returns an object whose span is still unswept and dead (it sweeps);
 *   - handles are heap objects, collected once neither the caller nor a
 *     live target refers to them;
 *   - misuse (non-heap pointer, no P) is one clear line and an abort;
 *   - tiny objects: each has its own handle, cleared with its block;
 *   - 2-4 mutators racing makes, gets and stores against concurrent marks.
 * The semantic tests run under the configuration matrix of
 * specials_common.h (plain, gcstress, concurrent+checkmark, stop-the-world). */
#include "specials_common.h"

/* ---- canonical handles ----------------------------------------------------------- */

MATRIX(weak, canonical_handle_per_object) {
    uint32_t *p = probe_at(0, 1);
    rt_weak *w = rt_weak_make(p);
    R[1] = w;
    cr_assert_not_null(w);
    cr_assert_eq(rt_weak_make(p), w);
    cr_assert_eq(rt_weak_make((char *)p + 13), w, "interior pointer gets the object's handle");
    cr_assert_eq(rt_weak_make((char *)p + PROBE - 1), w);
    cr_assert_eq(rt_weak_get(w), p);
    cr_assert_eq(rt_weak_get(rt_weak_make((char *)p + 5)), p, "get returns the object's start");
    /* A header object (traced / conservative): the start is past the header. */
    void **c = rt_alloc(48, RT_CONSERVATIVE);
    R[2] = c;
    rt_weak *wc = rt_weak_make((char *)c + 40);
    R[3] = wc;
    cr_assert_eq(rt_weak_make(c), wc);
    cr_assert_eq(rt_weak_get(wc), c);
    /* Different objects, different handles. */
    uint32_t *q = probe_at(4, 2);
    rt_weak *wq = rt_weak_make(q);
    cr_assert_neq(wq, w);
    cr_assert_null(rt_weak_make(NULL));
    cr_assert_null(rt_weak_get(NULL));
}

MATRIX(weak, large_object) {
    char *big = rt_alloc(200000, RT_NOSCAN);
    R[0] = big;
    big[199999] = 7;
    rt_weak *w = rt_weak_make(big + 150000);
    R[1] = w;
    cr_assert_eq(rt_weak_make(big), w);
    gc_and_drain();
    cr_assert_eq(rt_weak_get(w), big);
    R[0] = NULL;
    gc_and_drain();
    cr_assert_null(rt_weak_get(w));
}

/* ---- cleared exactly when unreachable ------------------------------------------------- */

MATRIX(weak, kept_by_root_cleared_after) {
    uint32_t *p = probe_at(0, 3);
    rt_weak *w = rt_weak_make(p);
    R[1] = w;
    uintptr_t hp = hide(p);
    p = NULL;
    for (int i = 0; i < 3; i++) {
        gc_and_drain();
        cr_assert_eq(rt_weak_get(w), reveal(hp), "reachable from a root: never cleared");
        cr_assert(probe_intact(reveal(hp), 3));
    }
    R[0] = NULL;
    gc_and_drain();
    cr_assert(freed_bytes(hp, PROBE), "unreachable: collected");
    cr_assert_null(rt_weak_get(w), "cleared by the sweep that freed it");
    for (int i = 0; i < 3; i++) {
        (void)probe_at(5, 99);   /* reuse memory: the handle never comes back */
        gc_and_drain();
        cr_assert_null(rt_weak_get(w));
    }
}

MATRIX(weak, kept_by_another_object) {
    Node *a = node_at(0, 10);
    Node *b = rt_alloc(sizeof(Node), node_t);
    b->magic = 11;
    rt_store(&a->b, b);
    rt_weak *w = rt_weak_make(b);
    R[1] = w;
    uintptr_t hb = hide(b);
    b = NULL;
    gc_and_drain();
    cr_assert_eq(rt_weak_get(w), reveal(hb));
    rt_store(&((Node *)R[0])->b, NULL);
    gc_and_drain();
    cr_assert_null(rt_weak_get(w));
    cr_assert(freed_bytes(hb, sizeof(Node)));
}

MATRIX(weak, kept_through_a_chain_then_cut_in_the_middle) {
    Node *a = node_at(0, 1);
    for (int i = 0; i < 5; i++) {
        Node *n = rt_alloc(sizeof(Node), node_t);
        n->magic = (uint64_t)i + 100;
        rt_store(&n->a, a);
        a = n;
        R[0] = a;
    }
    rt_weak *w = rt_weak_make(((Node *)R[0])->a->a->a);   /* magic 101 */
    R[1] = w;
    gc_and_drain();
    cr_assert_eq(((Node *)rt_weak_get(w))->magic, 101);
    rt_store(&((Node *)R[0])->a->a, NULL);                  /* cut above 102 */
    gc_and_drain();
    cr_assert_null(rt_weak_get(w));
}

/* A handle is cleared by the sweep that frees the object, even if a get
   arrives before the sweeper reached the span: the get sweeps it first
   instead of returning the dead object (Go's ensureSwept). */
MATRIX(weak, get_sweeps_an_unswept_span_first) {
    if (cfg_now != CFG_PLAIN) return;   /* needs the sweeper parked */
    rt__sweeper_stop();
    uint32_t *dead = probe_at(0, 5), *live = probe_at(1, 6);
    rt_weak *wd = rt_weak_make(dead), *wl = rt_weak_make(live);
    R[2] = wd;
    R[3] = wl;
    rt_span *sd = rt__span_of_heap((uintptr_t)dead);
    uintptr_t hd = hide(dead);
    dead = NULL;
    R[0] = NULL;
    /* One cycle without the final sweep (what a heap-triggered cycle does). */
    rt__cfg.gcstress = 1;
    rt__gc_maybe_start();
    rt__cfg.gcstress = 0;
    uint32_t h = rt__heap.sweepgen;
    cr_assert_eq(sd->sweepgen, h - 2, "precondition: the dead object's span is unswept");
    cr_assert(probe_intact(reveal(hd), 5), "precondition: not freed yet");
    cr_assert_null(rt_weak_get(wd), "a dead object in an unswept span is never returned");
    cr_assert(sd->sweepgen == h || sd->state != RT_SPAN_INUSE, "the get swept the span");
    cr_assert(freed_bytes(hd, PROBE));
    cr_assert_eq(rt_weak_get(wl), live);
    rt__sweep_finish();
}

/* Handles are heap objects too: one nobody refers to is collected once its
   target is gone; while the target lives the record keeps it (so a later
   make returns the same handle). */
MATRIX(weak, handles_are_collected) {
    uint32_t *p = probe_at(0, 7);
    uintptr_t hw = hide(rt_weak_make(p));
    gc_and_drain();
    gc_and_drain();
    cr_assert_eq(rt_weak_make(R[0]), reveal(hw), "the record kept the unreferenced handle");
    rt_specials_stats st;
    rt__specials_stats(&st);
    cr_assert_eq(st.weak, 1);
    R[0] = NULL;
    gc_and_drain();   /* the target dies, the record goes */
    rt__specials_stats(&st);
    cr_assert_eq(st.weak, 0);
    gc_and_drain();   /* now the handle is unreferenced */
    cr_assert(freed_bytes(hw, sizeof(void *) * 2), "the handle was collected");
}

/* Many objects, half kept: exactly the dropped half reads NULL. */
MATRIX(weak, many_handles_half_dropped) {
    enum { N = 300 };
    void **keep = rt_alloc_array(RT_CONSERVATIVE, N);
    R[0] = keep;
    void **hs = rt_alloc_array(RT_CONSERVATIVE, N);
    R[1] = hs;
    for (int i = 0; i < N; i++) {
        void *o = rt_alloc(16 + (size_t)(i % 5) * 24, RT_NOSCAN);
        rt_store(&((void **)R[0])[i], o);
        rt_weak *w = rt_weak_make(o);
        rt_store(&((void **)R[1])[i], w);
    }
    for (int i = 0; i < N; i += 2) rt_store(&((void **)R[0])[i], NULL);
    gc_and_drain();
    for (int i = 0; i < N; i++) {
        void *got = rt_weak_get(((void **)R[1])[i]);
        if (i % 2) cr_assert_eq(got, ((void **)R[0])[i], "kept %d", i);
        else cr_assert_null(got, "dropped %d", i);
    }
}

/* ---- tiny objects ------------------------------------------------------------------------ */

/* Tiny objects (pointer-free, < 16 B) share 16-byte blocks: each gets its
   own handle (keyed by its exact address, as in Go), and a handle stays
   set while anything in its block is reachable. */
MATRIX(weak, tiny_objects) {
    if (cfg_now == CFG_STRESS) return;   /* a cycle between the allocs would split the block */
    char *x = rt_alloc(4, RT_NOSCAN);
    char *y = rt_alloc(4, RT_NOSCAN);
    R[0] = x;
    R[1] = y;
    bool same_block = ((uintptr_t)x & ~(uintptr_t)15) == ((uintptr_t)y & ~(uintptr_t)15);
    rt_weak *wx = rt_weak_make(x), *wy = rt_weak_make(y);
    R[2] = wx;
    R[3] = wy;
    cr_assert_neq(wx, wy, "tiny objects get their own handles");
    cr_assert_eq(rt_weak_get(wx), x);
    cr_assert_eq(rt_weak_get(wy), y);
    R[1] = NULL;   /* y unreachable, x kept */
    gc_and_drain();
    cr_assert_eq(rt_weak_get(wx), x);
    if (same_block) cr_assert_eq(rt_weak_get(wy), y, "kept alive by its block mate (the documented caveat)");
    else cr_assert_null(rt_weak_get(wy));
    R[0] = NULL;
    gc_and_drain();
    cr_assert_null(rt_weak_get(wx));
    cr_assert_null(rt_weak_get(wy));
}

/* ---- reachable from a thread's stack ------------------------------------------------------ */

static void *stack_holder(void *arg) {
    rt_weak **wp = arg;
    rt_thread_attach();
    volatile uintptr_t keep = (uintptr_t)rt_alloc(PROBE, RT_NOSCAN);   /* only on this stack */
    *wp = rt_weak_make((void *)keep);   /* published to the main thread through a root slot */
    rt_enter_blocking();                /* stack scanned from here, conservatively */
    sleep(0);
    while (!__atomic_load_n(&R[63], __ATOMIC_ACQUIRE)) sched_yield();
    rt_exit_blocking();
    (void)keep;
    rt_thread_detach();
    return NULL;
}

Test(weak, kept_by_a_thread_stack) {
    start_cfg(CFG_PLAIN, true);
    pthread_t t;
    rt_weak *volatile w = NULL;
    rt_enter_blocking();
    pthread_create(&t, NULL, stack_holder, (void *)&w);
    while (!__atomic_load_n(&w, __ATOMIC_ACQUIRE)) sched_yield();
    rt_exit_blocking();
    R[0] = w;
    for (int i = 0; i < 3; i++) {
        rt_gc();
        cr_assert_not_null(rt_weak_get(R[0]), "the other thread's stack keeps it");
    }
    __atomic_store_n(&R[63], (void *)1, __ATOMIC_RELEASE);
    rt_enter_blocking();
    pthread_join(t, NULL);
    rt_exit_blocking();
    R[63] = NULL;
    stop_all();
}

/* ---- misuse -------------------------------------------------------------------------------- */

/* Objects from the inline size-specialized path (the second of a class:
   the first refills the span on the slow path) take weak handles and
   cleanups like any other.  The fast path advances only freeindex, which
   the validity check once ignored ("points into a free heap slot"). */
static void nop_cleanup(void *arg) { (void)arg; }
Test(weak, objects_from_the_inline_path) {
    start_cfg(CFG_PLAIN, false);
    for (int i = 0; i < 8; i++) R[i] = rt_alloc(64, RT_NOSCAN);   /* constant size: rt__alloc_inline */
    for (int i = 0; i < 8; i++) {
        rt_weak *w = rt_weak_make(R[i]);
        cr_assert_eq(rt_weak_get(w), R[i]);
        rt_add_cleanup(R[i], nop_cleanup, NULL);
    }
    stop_all();
}

static void weak_of_global(void) {
    static char buf[32];
    start_cfg(CFG_PLAIN, false);
    rt_weak_make(buf);
}
Test(weak_misuse, non_heap_pointer) {
    const char *n[] = { "rtgc: rt_weak_make: ", "is not a pointer into an object allocated by rt_alloc" };
    expect_abort_with(weak_of_global, n, 2);
}

static void weak_of_free_slot(void) {
    start_cfg(CFG_PLAIN, false);
    char *p = rt_alloc(64, RT_NOSCAN);
    (void)rt_alloc(64, RT_NOSCAN);
    p += 4 * 64;   /* a slot of the same span no one allocated yet */
    rt_weak_make(p);
}
Test(weak_misuse, free_slot) {
    const char *n[] = { "rtgc: rt_weak_make: ", "free heap slot" };
    expect_abort_with(weak_of_free_slot, n, 2);
}

static void weak_get_unattached(void) {
    start_cfg(CFG_PLAIN, false);
    rt_weak *w = rt_weak_make(probe_at(0, 1));
    rt_thread_detach();
    rt_weak_get(w);
}
Test(weak_misuse, get_from_unattached_thread) {
    const char *n[] = { "rtgc: rt_weak_get: ", "rt_thread_attach" };
    expect_abort_with(weak_get_unattached, n, 2);
}

/* ---- racing mutators against concurrent marks ---------------------------------------------------
 * Each of T threads owns a rooted table of SLOTS objects and their handles
 * (objects carry their id and a check word) and, in random order: allocates
 * an object with a handle, drops an object (rt_store NULL), makes the
 * handle again (must be the canonical one while the object is held),
 * gets through a handle and either checks it or stores the result back
 * (resurrecting through a get, during a mark), and holds a got pointer only
 * on its stack across allocations (so only the get's shading keeps it alive
 * in the mark it happened in).  Invariants:
 *   - a handle whose object the table holds always returns that object;
 *   - anything a get returns is intact (never a freed, clobbered slot);
 *   - once a get returned NULL it returns NULL forever.
 * Runs with RTGC=1 (marks nearly always running), gccheckmark=1,
 * clobberfree=1, invalidptr=1, and stack scanning on. */

typedef struct Obj {
    uint64_t id, check;
    struct Obj *link;
    uint64_t pad;
} Obj;
static const rt_type *obj_t;
static inline uint64_t checkword(uint64_t id) { return id * 0x9E3779B97F4A7C15ull ^ 0xa5a5a5a5u; }

#define SLOTS 64
typedef struct Table {
    Obj    *obj[SLOTS];
    rt_weak *w[SLOTS];
    rt_weak *old[SLOTS];          /* a handle whose object was dropped */
    uint8_t  old_null[SLOTS];     /* it read NULL once */
} Table;
static const rt_type *table_t;
static long race_ops;
static atomic_int race_failed;

static void race_fail(const char *what, uint64_t v) {
    fprintf(stderr, "weak race: %s (%llu), seed=%llu (replay with RT_SEED=%llu)\n", what,
            (unsigned long long)v, (unsigned long long)g_seed, (unsigned long long)g_seed);
    atomic_store(&race_failed, 1);
    abort();
}

static void check_obj(const Obj *o) {
    if (__atomic_load_n(&o->check, __ATOMIC_RELAXED) != checkword(__atomic_load_n(&o->id, __ATOMIC_RELAXED)))
        race_fail("a get returned a freed or corrupt object", o->id);
}

static void *racer(void *arg) {
    int me = (int)(intptr_t)arg;
    uint64_t s = g_seed + (uint64_t)me * 7919, next_id = (uint64_t)me << 40;
    rt_thread_attach();
    Table *t = rt_alloc(sizeof(Table), table_t);
    R[10 + me] = t;
    for (long op = 0; op < race_ops; op++) {
        int i = (int)(rnd(&s) % SLOTS);
        if (op % 4 == 0) (void)rt_alloc(512, RT_NOSCAN);   /* garbage: keeps cycles coming */
        switch (rnd(&s) % 8) {
        case 0: case 1: {   /* new object and handle */
            Obj *o = rt_alloc(sizeof(Obj), obj_t);
            o->id = ++next_id;
            o->check = checkword(o->id);
            if (t->obj[i]) rt_store(&t->old[i], t->w[i]), t->old_null[i] = 0;
            rt_store(&t->obj[i], o);
            rt_weak *w = rt_weak_make(o);
            rt_store(&t->w[i], w);
            break;
        }
        case 2:   /* drop */
            if (t->obj[i]) {
                rt_store(&t->old[i], t->w[i]);
                t->old_null[i] = 0;
                rt_store(&t->obj[i], NULL);
                rt_store(&t->w[i], NULL);
            }
            break;
        case 3:   /* canonical while held */
            if (t->obj[i] && rt_weak_make(t->obj[i]) != t->w[i]) race_fail("make returned another handle", t->obj[i]->id);
            break;
        case 4:   /* get through a held handle */
            if (t->w[i]) {
                Obj *o = rt_weak_get(t->w[i]);
                if (o != t->obj[i]) race_fail("a held object's handle read something else", t->obj[i]->id);
                check_obj(o);
            }
            break;
        case 5: {   /* get through a dropped object's handle: NULL forever once NULL */
            if (!t->old[i]) break;
            Obj *o = rt_weak_get(t->old[i]);
            if (!o) { t->old_null[i] = 1; break; }
            if (t->old_null[i]) race_fail("a cleared handle came back", 0);
            check_obj(o);
            if (rnd(&s) % 4 == 0 && !t->obj[i]) {   /* resurrect it through the get */
                rt_store(&t->obj[i], o);
                rt_store(&t->w[i], t->old[i]);
                rt_store(&t->old[i], NULL);
            }
            break;
        }
        case 6: {   /* hold a got pointer only on the stack across allocations */
            if (!t->old[i]) break;
            Obj *volatile o = rt_weak_get(t->old[i]);
            if (!o) { t->old_null[i] = 1; break; }
            if (t->old_null[i]) race_fail("a cleared handle came back", 1);
            /* Sometimes across whole cycles: the mark this get happened in
               ends (only the get's shading kept o then), the next mark
               finds o on this stack. */
            uint64_t g0 = __atomic_load_n(&rt__gc_num, __ATOMIC_RELAXED);
            bool long_hold = rnd(&s) % 16 == 0;
            for (int k = 0; k < 20 || (long_hold && __atomic_load_n(&rt__gc_num, __ATOMIC_RELAXED) < g0 + 2); k++) {
                Obj *junk = rt_alloc(sizeof(Obj), obj_t);
                rt_store(&junk->link, (Obj *)o);
                if (k % 64 == 63) (void)rt_alloc(4096, RT_NOSCAN);
            }
            check_obj(o);
            break;
        }
        case 7:   /* link objects to each other (cross edges) */
            if (t->obj[i]) {
                int j = (int)(rnd(&s) % SLOTS);
                rt_store(&t->obj[i]->link, t->obj[j]);
            }
            break;
        }
    }
    R[10 + me] = NULL;
    rt_thread_detach();
    return NULL;
}

static void race(int nthreads, long ops) {
    seed_init("test_weak race");
    test_start((rt_options){ .gc_percent = 1, .maxprocs = 4, .debug = "gccheckmark=1,clobberfree=1,invalidptr=1" });
    memset(R, 0, sizeof R);
    rt_root_add_range(R, sizeof R, RT_ROOT_PRECISE);
    size_t oo[] = { offsetof(Obj, link) };
    obj_t = rt_type_layout("Obj", sizeof(Obj), oo, 1);
    size_t to[SLOTS * 3];
    for (int i = 0; i < SLOTS; i++) {
        to[i] = offsetof(Table, obj) + (size_t)i * 8;
        to[SLOTS + i] = offsetof(Table, w) + (size_t)i * 8;
        to[2 * SLOTS + i] = offsetof(Table, old) + (size_t)i * 8;
    }
    table_t = rt_type_layout("Table", sizeof(Table), to, SLOTS * 3);
    race_ops = ops;
    pthread_t th[8];
    rt_enter_blocking();
    for (int i = 0; i < nthreads; i++) pthread_create(&th[i], NULL, racer, (void *)(intptr_t)i);
    for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
    rt_exit_blocking();
    cr_assert_eq(atomic_load(&race_failed), 0);
    rt_mem_stats st;
    rt_read_mem_stats(&st);
    cr_assert_gt(st.num_gc, 2, "marks ran during the race");
    fprintf(stderr, "test_weak race: %d threads, %ld ops each, %llu cycles\n", nthreads, ops, (unsigned long long)st.num_gc);
    rt_shutdown();
}

Test(weak_race, two_threads, .timeout = 300) { race(2, 100000); }
Test(weak_race, three_threads, .timeout = 300) { race(3, 75000); }
Test(weak_race, four_threads, .timeout = 300) { race(4, 60000); }
