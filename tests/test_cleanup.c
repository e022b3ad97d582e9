/* tests/test_cleanup.c -- cleanups (rt_add_cleanup / rt_cleanup_stop), Go
 * 1.24 AddCleanup semantics (reference notes 13.3):
 *   - once the object is unreachable each cleanup runs exactly once, on the
 *     cleanup thread (an attached mutator: it may allocate, make weak
 *     handles, even collect); never while the object is reachable (from a
 *     root, another object, a finalizer's object); never once stopped;
 *   - several per object; the object is never resurrected; cycles among
 *     objects with cleanups are collected;
 *   - the arg is a root while the cleanup is pending, and collectable after;
 *   - stop ensures the span is swept first: a cleanup already queued by a
 *     sweep is not stopped (Go);
 *   - misuse: arg == obj, non-heap obj, NULL fn; RTDEBUG=checkfinalizers=1
 *     reports an arg that reaches its object, naming both;
 *   - 2-4 threads adding, stopping and dropping against concurrent marks.
 * Semantic tests run under the configuration matrix of specials_common.h. */
#include "specials_common.h"

static atomic_int runs[64];
static void count(void *arg) { atomic_fetch_add((atomic_int *)arg, 1); }
static void reset_runs(void) { for (int i = 0; i < 64; i++) atomic_store(&runs[i], 0); }

MATRIX(cleanup, runs_once_when_unreachable) {
    reset_runs();
    probe_at(0, 1);
    rt_cleanup c = rt_add_cleanup(R[0], count, &runs[0]);
    cr_assert_neq(c, 0);
    uintptr_t hp = hide(R[0]);
    for (int i = 0; i < 3; i++) {
        gc_and_drain();
        cr_assert_eq(atomic_load(&runs[0]), 0, "never while reachable");
        cr_assert(probe_intact(reveal(hp), 1));
    }
    R[0] = NULL;
    gc_and_drain();
    cr_assert_eq(atomic_load(&runs[0]), 1);
    cr_assert(freed_bytes(hp, PROBE), "the object itself is not resurrected");
    for (int i = 0; i < 3; i++) gc_and_drain();
    cr_assert_eq(atomic_load(&runs[0]), 1, "exactly once");
    rt_cleanup_stop(c);   /* after it ran: no effect */
    rt_specials_stats st;
    rt__specials_stats(&st);
    cr_assert_eq(st.cleanups, 0);
}

MATRIX(cleanup, several_per_object_and_stop) {
    reset_runs();
    probe_at(0, 2);
    rt_cleanup c[4];
    for (int i = 0; i < 4; i++) c[i] = rt_add_cleanup((char *)R[0] + i * 8, count, &runs[i]);
    for (int i = 0; i < 4; i++) for (int j = i + 1; j < 4; j++) cr_assert_neq(c[i], c[j]);
    rt_cleanup_stop(c[1]);
    rt_cleanup_stop(c[1]);      /* twice: harmless */
    rt_cleanup_stop(0);         /* the zero handle: harmless */
    gc_and_drain();
    for (int i = 0; i < 4; i++) cr_assert_eq(atomic_load(&runs[i]), 0);
    rt_cleanup_stop(c[3]);
    R[0] = NULL;
    gc_and_drain();
    cr_assert_eq(atomic_load(&runs[0]), 1);
    cr_assert_eq(atomic_load(&runs[1]), 0, "stopped");
    cr_assert_eq(atomic_load(&runs[2]), 1);
    cr_assert_eq(atomic_load(&runs[3]), 0, "stopped");
}

MATRIX(cleanup, kept_by_another_object_then_cut) {
    reset_runs();
    Node *a = node_at(0, 1);
    Node *b = rt_alloc(sizeof(Node), node_t);
    rt_store(&a->a, b);
    rt_add_cleanup(b, count, &runs[0]);
    b = NULL;
    gc_and_drain();
    gc_and_drain();
    cr_assert_eq(atomic_load(&runs[0]), 0);
    rt_store(&((Node *)R[0])->a, NULL);
    gc_and_drain();
    cr_assert_eq(atomic_load(&runs[0]), 1);
}

/* Unlike finalizers, cycles among objects with cleanups are collected. */
MATRIX(cleanup, cycle_of_objects_with_cleanups) {
    reset_runs();
    Node *a = node_at(0, 1);
    Node *b = node_at(1, 2);
    rt_store(&a->a, b);
    rt_store(&b->a, a);
    rt_add_cleanup(a, count, &runs[0]);
    rt_add_cleanup(b, count, &runs[1]);
    a = b = NULL;
    R[0] = R[1] = NULL;
    gc_and_drain();
    cr_assert_eq(atomic_load(&runs[0]), 1);
    cr_assert_eq(atomic_load(&runs[1]), 1);
}

/* The arg is kept alive while the cleanup is pending, and is an ordinary
   object afterwards. */
static uintptr_t arg_seen;
static atomic_int arg_ok;
static void check_arg(void *arg) {
    arg_seen = hide(arg);
    atomic_store(&arg_ok, probe_intact(arg, 77) ? 1 : -1);
}
MATRIX(cleanup, arg_is_a_root_while_pending) {
    atomic_store(&arg_ok, 0);
    probe_at(0, 1);
    uint32_t *arg = probe_at(1, 77);
    uintptr_t ha = hide(arg);
    rt_add_cleanup(R[0], check_arg, arg);
    arg = NULL;
    R[1] = NULL;   /* only the cleanup refers to it now */
    for (int i = 0; i < 3; i++) {
        gc_and_drain();
        cr_assert(probe_intact(reveal(ha), 77), "a pending cleanup's arg stays alive");
    }
    R[0] = NULL;
    gc_and_drain();
    cr_assert_eq(atomic_load(&arg_ok), 1);
    cr_assert_eq(arg_seen, ha);
    arg_seen = 0;
    gc_and_drain();
    if (cfg_now != CFG_STRESS)   /* the cleanup thread's own frames are not scanned (stacks off) */
        cr_assert(freed_bytes(ha, PROBE), "after the cleanup ran, the arg is garbage");
}

/* The cleanup runs on the cleanup thread, attached: it may allocate, make
   weak handles, add cleanups and collect. */
static pthread_t main_thread;
static atomic_int busy_ok;
static void busy_cleanup(void *arg) {
    (void)arg;
    int ok = !pthread_equal(pthread_self(), main_thread) && rt__current_thread() != NULL;
    /* Stacks are not scanned in these tests: the cleanup roots its local
       array itself while it allocates (gcstress collects at every step). */
    static void **v;
    rt_root *r = rt_root_add((void *)&v);
    v = rt_alloc_array(RT_CONSERVATIVE, 16);
    for (int i = 0; i < 16; i++) rt_store(&v[i], rt_alloc(32, RT_NOSCAN));
    rt_weak *w = rt_weak_make(v[3]);
    ok &= rt_weak_get(w) == v[3];
    rt_add_cleanup(v, count, &runs[9]);   /* a cleanup added by a cleanup */
    v = NULL;
    rt_root_remove(r);
    rt_gc();
    atomic_store(&busy_ok, ok ? 1 : -1);
}
MATRIX(cleanup, runs_on_an_attached_thread_that_may_allocate) {
    reset_runs();
    atomic_store(&busy_ok, 0);
    main_thread = pthread_self();
    probe_at(0, 1);
    rt_add_cleanup(R[0], busy_cleanup, NULL);
    R[0] = NULL;
    gc_and_drain();
    cr_assert_eq(atomic_load(&busy_ok), 1);
    for (int i = 0; i < 3 && atomic_load(&runs[9]) == 0; i++) gc_and_drain();
    cr_assert_eq(atomic_load(&runs[9]), 1, "the nested cleanup ran once its array died");
}

/* Stop first sweeps the object's span: a cleanup the sweep queues is not
   stopped (Go: Stop has no effect once the cleanup is queued). */
MATRIX(cleanup, stop_after_death_sweeps_first) {
    if (cfg_now != CFG_PLAIN) return;   /* needs the sweeper parked */
    reset_runs();
    rt__sweeper_stop();
    probe_at(0, 1);
    rt_cleanup c = rt_add_cleanup(R[0], count, &runs[0]);
    rt_span *s = rt__span_of_heap((uintptr_t)R[0]);
    R[0] = NULL;
    rt__cfg.gcstress = 1;
    rt__gc_maybe_start();   /* a cycle, not swept */
    rt__cfg.gcstress = 0;
    cr_assert_eq(s->sweepgen, rt__heap.sweepgen - 2, "precondition: unswept");
    rt_cleanup_stop(c);
    drain();
    cr_assert_eq(atomic_load(&runs[0]), 1);
    rt__sweep_finish();
}

/* Tiny objects: a cleanup runs when the whole 16-byte block is garbage. */
MATRIX(cleanup, tiny_object) {
    reset_runs();
    char *x = rt_alloc(3, RT_NOSCAN);
    R[0] = x;
    rt_add_cleanup(x, count, &runs[0]);
    gc_and_drain();
    cr_assert_eq(atomic_load(&runs[0]), 0);
    R[0] = NULL;
    /* Anything else in x's block may still be reachable only through the
       P's current tiny block, dropped at the next cycle: two cycles. */
    gc_and_drain();
    gc_and_drain();
    cr_assert_eq(atomic_load(&runs[0]), 1);
}

/* Many objects, many cleanups, every other one dropped. */
MATRIX(cleanup, many) {
    reset_runs();
    enum { N = 400 };
    static atomic_int cnt[N];
    for (int i = 0; i < N; i++) atomic_store(&cnt[i], 0);
    void **keep = rt_alloc_array(RT_CONSERVATIVE, N);
    R[0] = keep;
    for (int i = 0; i < N; i++) {
        void *o = rt_alloc(24 + (size_t)(i % 7) * 40, i % 3 ? RT_NOSCAN : RT_CONSERVATIVE);
        rt_store(&((void **)R[0])[i], o);
        rt_add_cleanup(o, count, &cnt[i]);
    }
    for (int i = 0; i < N; i += 2) rt_store(&((void **)R[0])[i], NULL);
    gc_and_drain();
    for (int i = 0; i < N; i++) cr_assert_eq(atomic_load(&cnt[i]), i % 2 ? 0 : 1, "object %d", i);
    R[0] = NULL;
    gc_and_drain();
    for (int i = 0; i < N; i++) cr_assert_eq(atomic_load(&cnt[i]), 1, "object %d", i);
}

/* The queue is a list of blocks: waiting for it to drain must see entries
   in the blocks behind a used-up first one (it once returned after the
   first block's worth had run).  Slow cleanups make the waiter look at
   the queue between entries. */
static void slow_count(void *arg) {
    atomic_fetch_add((atomic_int *)arg, 1);
    sched_yield();
}
MATRIX(cleanup, drain_waits_for_every_queue_block) {
    reset_runs();
    enum { N = 1500 };
    void **keep = rt_alloc_array(RT_CONSERVATIVE, N);
    R[0] = keep;
    for (int i = 0; i < N; i++) {
        rt_store(&((void **)R[0])[i], rt_alloc(16, RT_NOSCAN));
        rt_add_cleanup(((void **)R[0])[i], slow_count, &runs[0]);
    }
    rt_specials_stats before;
    rt__specials_stats(&before);
    R[0] = NULL;
    gc_and_drain();
    rt_specials_stats after;
    rt__specials_stats(&after);
    cr_assert_eq(after.queued - before.queued, N, "every cleanup was queued by the sweep");
    cr_assert_eq(atomic_load(&runs[0]), N, "the wait returned with %d of %d run", atomic_load(&runs[0]), N);
    cr_assert_eq(after.ran, after.queued);
}

/* ---- misuse and checkfinalizers ------------------------------------------------------- */

static void arg_is_obj(void) {
    start_cfg(CFG_PLAIN, false);
    probe_at(0, 1);
    rt_add_cleanup(R[0], count, (char *)R[0] + 8);
}
Test(cleanup_misuse, arg_points_into_the_object) {
    const char *n[] = { "rtgc: rt_add_cleanup: ", "points into the object", "never run" };
    expect_abort_with(arg_is_obj, n, 3);
}

static void cleanup_non_heap(void) {
    static long global;
    start_cfg(CFG_PLAIN, false);
    rt_add_cleanup(&global, count, NULL);
}
Test(cleanup_misuse, non_heap_object) {
    const char *n[] = { "rtgc: rt_add_cleanup: ", "not a pointer into an object allocated by rt_alloc" };
    expect_abort_with(cleanup_non_heap, n, 2);
}

static void cleanup_null_fn(void) {
    start_cfg(CFG_PLAIN, false);
    rt_add_cleanup(probe_at(0, 1), NULL, NULL);
}
Test(cleanup_misuse, null_fn) {
    const char *n[] = { "rtgc: rt_add_cleanup: fn is NULL" };
    expect_abort_with(cleanup_null_fn, n, 1);
}

static char leak_obj[32], leak_arg[32];
static void arg_reaches_obj(void) {
    test_start((rt_options){ .gc_percent = RT_GC_OFF, .scan_thread_stacks = RT_SCAN_STACKS_OFF,
                             .debug = "checkfinalizers=1" });
    memset(R, 0, sizeof R);
    rt_root_add_range(R, sizeof R, RT_ROOT_PRECISE);
    size_t offs[] = { offsetof(Node, a), offsetof(Node, b) };
    node_t = rt_type_layout("Node", sizeof(Node), offs, 2);
    Node *obj = node_at(0, 1);
    Node *arg = rt_alloc(sizeof(Node), node_t);
    rt_store(&arg->b, obj);          /* arg -> obj: the leak */
    rt_add_cleanup(obj, count, arg);
    snprintf(leak_obj, sizeof leak_obj, "%p", (void *)obj);
    snprintf(leak_arg, sizeof leak_arg, "%p", (void *)arg);
    fprintf(stderr, "obj=%s arg=%s\n", leak_obj, leak_arg);
    rt_gc();
}
Test(cleanup_checkfinalizers, arg_reaching_its_object_is_reported) {
    const char *n[] = { "rtgc: checkfinalizers: the cleanup", "its arg reaches the object", "type layout",
                        "pass an arg that does not reference the object" };
    expect_abort_with(arg_reaches_obj, n, 4);
}

static void clean_program(void) {
    test_start((rt_options){ .gc_percent = RT_GC_OFF, .debug = "checkfinalizers=1" });
    void *a = rt_alloc(64, RT_CONSERVATIVE), *b = rt_alloc(64, RT_CONSERVATIVE);
    rt_add_cleanup(a, count, b);     /* b does not reach a: fine */
    rt_gc();
    rt_gc();
    fprintf(stderr, "clean end\n");
    _exit(0);
}
Test(cleanup_checkfinalizers, no_report_without_a_leak) {
    static char buf[16384];
    int status = run_child(clean_program, buf, sizeof buf);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "stderr:\n%s", buf);
    cr_assert(strstr(buf, "clean end"));
    cr_assert_null(strstr(buf, "checkfinalizers"), "%s", buf);
}

/* ---- racing threads ---------------------------------------------------------------------
 * Each thread owns a rooted table; in random order it allocates objects and
 * adds 1-3 cleanups (each with its own counter), stops some (while the
 * object is still rooted: guaranteed removal), drops objects, and checks
 * that the counters of objects it still holds are 0.  At the end every
 * cleanup of a dropped object ran exactly once and no stopped one ran.
 * RTGC=1 keeps marks running; gccheckmark=1 proves each mark. */

#define RSLOTS 64
#define RMAX 160000
typedef struct RTab { void *obj[RSLOTS]; } RTab;
typedef struct Rec { atomic_int ran; int stopped; int dropped; rt_cleanup c; int slot; } Rec;
static Rec *recs[4];
static int nrecs[4];
static long rops;

static void *cracer(void *arg) {
    int me = (int)(intptr_t)arg;
    uint64_t s = g_seed + (uint64_t)me * 104729;
    rt_thread_attach();
    RTab *t = rt_alloc(sizeof(RTab), RT_CONSERVATIVE);
    R[20 + me] = t;
    int *first = calloc(RSLOTS, sizeof(int)), *last = calloc(RSLOTS, sizeof(int));   /* recs of each slot's object */
    for (long op = 0; op < rops && nrecs[me] < RMAX - 3; op++) {
        int i = (int)(rnd(&s) % RSLOTS);
        if (op % 2 == 0) (void)rt_alloc(4096, RT_NOSCAN);   /* garbage: keeps cycles coming */
        switch (rnd(&s) % 4) {
        case 0: {
            if (t->obj[i]) break;
            void *o = rt_alloc(16 + rnd(&s) % 100, rnd(&s) % 2 ? RT_NOSCAN : RT_CONSERVATIVE);
            rt_store(&t->obj[i], o);
            first[i] = nrecs[me];
            int k = 1 + (int)(rnd(&s) % 3);
            for (int j = 0; j < k; j++) {
                Rec *r = &recs[me][nrecs[me]++];
                r->slot = i;
                r->c = rt_add_cleanup(o, count, &r->ran);
            }
            last[i] = nrecs[me];
            break;
        }
        case 1:   /* stop one, while held */
            if (t->obj[i]) {
                Rec *r = &recs[me][first[i] + (int)(rnd(&s) % (uint64_t)(last[i] - first[i]))];
                rt_cleanup_stop(r->c);
                r->stopped = 1;
            }
            break;
        case 2:   /* drop */
            if (t->obj[i]) {
                for (int j = first[i]; j < last[i]; j++) recs[me][j].dropped = 1;
                rt_store(&t->obj[i], NULL);
            }
            break;
        case 3:   /* held objects' cleanups have not run */
            if (t->obj[i])
                for (int j = first[i]; j < last[i]; j++)
                    if (atomic_load(&recs[me][j].ran)) {
                        fprintf(stderr, "a cleanup ran while its object was reachable (seed=%llu)\n",
                                (unsigned long long)g_seed);
                        abort();
                    }
            break;
        }
    }
    for (int i = 0; i < RSLOTS; i++)
        if (t->obj[i]) {
            for (int j = first[i]; j < last[i]; j++) recs[me][j].dropped = 1;
            rt_store(&t->obj[i], NULL);
        }
    free(first);
    free(last);
    R[20 + me] = NULL;
    rt_thread_detach();
    return NULL;
}

static void crace(int n, long ops) {
    seed_init("test_cleanup race");
    test_start((rt_options){ .gc_percent = 1, .maxprocs = 4, .scan_thread_stacks = RT_SCAN_STACKS_OFF,
                             .debug = "gccheckmark=1,clobberfree=1,invalidptr=1" });
    memset(R, 0, sizeof R);
    rt_root_add_range(R, sizeof R, RT_ROOT_PRECISE);
    rops = ops;
    for (int i = 0; i < n; i++) {
        recs[i] = calloc(RMAX, sizeof(Rec));
        nrecs[i] = 0;
    }
    pthread_t th[4];
    rt_enter_blocking();
    for (int i = 0; i < n; i++) pthread_create(&th[i], NULL, cracer, (void *)(intptr_t)i);
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    rt_exit_blocking();
    gc_and_drain();
    gc_and_drain();
    long total = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < nrecs[i]; j++) {
            Rec *r = &recs[i][j];
            int want = r->stopped ? 0 : 1;
            cr_assert_eq(atomic_load(&r->ran), want, "thread %d cleanup %d (stopped %d) ran %d times, seed=%llu", i, j,
                         r->stopped, atomic_load(&r->ran), (unsigned long long)g_seed);
            total++;
        }
    rt_mem_stats st;
    rt_read_mem_stats(&st);
    fprintf(stderr, "test_cleanup race: %d threads, %ld cleanups, %llu cycles\n", n, total, (unsigned long long)st.num_gc);
    rt_shutdown();
    for (int i = 0; i < n; i++) free(recs[i]);
}

Test(cleanup_race, two_threads, .timeout = 300) { crace(2, 200000); }
Test(cleanup_race, three_threads, .timeout = 300) { crace(3, 150000); }
Test(cleanup_race, four_threads, .timeout = 300) { crace(4, 120000); }
