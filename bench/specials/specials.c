/* bench/specials/specials.c -- the `weak` and `cleanup` benchmarks (issue #6).
 *
 * Owns: the two workloads, written once and compiled twice with the same
 * flags (bench/specials/run.py builds them):
 *   -DSPECIALS_RTGC   rt_weak_make / rt_weak_get, rt_add_cleanup; run it with
 *                     RTDEBUG=gctrace=1: run.py reads each cycle's two
 *                     stop-the-world pauses from the trace on stderr;
 *   -DSPECIALS_BOEHM  Boehm 8.2: disappearing links over hidden pointers
 *                     (read under the allocation lock), and
 *                     GC_register_finalizer_no_order run by a finalizer
 *                     thread (finalize on demand), the way rtgc runs cleanups.
 *                     Each collection is timed here (GC_set_on_collection_event)
 *                     and printed as "pause START_S WHOLE_MS STW_MS" lines.
 *
 * usage: specials workload=weak|cleanup [specials=0|1] [n=1000000]
 *                 [ops=N] [live_mb=64] [threads=2] [obj=64] [garbage=256]
 *
 * Both workloads keep live_mb of linked 32-byte nodes as ballast, so every
 * cycle has a real heap to mark, and run `threads` mutators, each owning a
 * disjoint slice of the n entries (no sharing, so no locks of our own).
 * Each churn operation also allocates `garbage` bytes of short-lived objects
 * (the rest of a mutator's work, outside the timed sections), so that the
 * churn phase sees several cycles without needing tens of millions of
 * specials.
 * specials=0 runs the same allocations and stores without any weak handle or
 * cleanup: the difference in pauses between the two runs is what the
 * specials cost the pause.
 *
 * weak: a table of n weak entries (key -> value object).  A quarter of the
 *   keys are held strongly (a strong array).  Each churn step replaces
 *   random strong values with fresh ones under fresh keys, fills random
 *   unheld keys with short-lived values (a cache fill whose value is dropped
 *   at once), and looks up random keys through the table.  Checked: a key
 *   held strongly always reads back its value; any value read carries its
 *   key; after two full collections the unheld entries read NULL.
 * cleanup: n objects, each with a cleanup that counts its id, are kept live;
 *   the churn replaces random ones with fresh objects (with cleanups), so
 *   cycles run with n live records while cleanups run.  Then everything is
 *   dropped and collections run until every cleanup ran; each must have run
 *   exactly once.
 *
 * Results: key=value lines on stdout, check=ok or check=fail last. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if (defined(SPECIALS_RTGC) + defined(SPECIALS_BOEHM)) != 1
#error "define exactly one of SPECIALS_RTGC, SPECIALS_BOEHM"
#endif

#ifdef SPECIALS_RTGC
#include <rtgc.h>
#else
#define GC_THREADS
#include <gc/gc.h>
#endif

/* ---- parameters and shared state ------------------------------------------ */

static int   workload_weak;       /* 1 = weak, 0 = cleanup */
static int   with_specials = 1;
static long  n_entries = 1000000;
static long  n_ops = 4000000;      /* churn operations, all threads together */
static long  live_mb = 64;
static int   n_threads = 2;
static long  obj_size = 64;
static long  garbage = 256;       /* bytes of short-lived garbage per churn op */

typedef struct Node { struct Node *next, *other; uint64_t value, pad; } Node;
typedef struct Val { uint64_t key; } Val;   /* followed by obj_size - 8 bytes of payload */

#define NLISTS 4096
static Node **g_heads;            /* ballast lists (a heap array) */
static void **g_strong;           /* weak: strongly held values; cleanup: the live objects */
static int32_t *owner;            /* weak: key -> index in g_strong, or -1 (not GC memory) */
static long  n_strong;

#ifdef SPECIALS_RTGC
static rt_weak **g_table;         /* a heap array: marked concurrently, not in the pause */
static const rt_type *node_t, *slot_t;
#else
static GC_hidden_pointer *g_table;   /* malloc'd: the collector never reads it */
#endif

static unsigned char *ran;        /* cleanup: per id, how many times its cleanup ran */
static long  n_ids;               /* cleanup: ids handed out (fill + churn) */
static volatile long ran_total;

static double t_start;
static pthread_barrier_t phase_barrier;
static double phase_start, phase_end;
static int failed;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rnd(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static void fail(const char *what, long k) {
    if (!__atomic_exchange_n(&failed, 1, __ATOMIC_RELAXED)) {
        fprintf(stderr, "specials: CHECK FAILED: %s (entry %ld)\n", what, k);
    }
}

/* ---- the two backends ------------------------------------------------------ */

#ifdef SPECIALS_RTGC
#define ALLOC_NODE() rt_new(Node, node_t)
/* obj_size is a run-time value, so this is the out-of-line path.  It has
   to be: an object from the constant-size inline path is refused by
   rt_weak_make / rt_add_cleanup as "a free heap slot" (the inline path
   does not advance the span's freeindex_for_scan, which they check). */
#define ALLOC_VAL() ((Val *)rt_alloc((size_t)obj_size, RT_NOSCAN))
#define STORE(slot, v) rt_store((slot), (v))
#define BLOCKING_BEGIN() rt_enter_blocking()
#define BLOCKING_END() rt_exit_blocking()
#define POLL() rt_safepoint()

static void make_weak(long k, Val *v) { rt_store(&g_table[k], rt_weak_make(v)); }
static Val *get_weak(long k) {
    rt_weak *h = g_table[k];
    return h ? rt_weak_get(h) : NULL;
}
static void cleanup_fn(void *arg);
static void add_cleanup(Val *v, long id) { rt_add_cleanup(v, cleanup_fn, (void *)(uintptr_t)(id + 1)); }
static void cleanup_fn(void *arg) {
    long id = (long)(uintptr_t)arg - 1;
    __atomic_fetch_add(&ran[id], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&ran_total, 1, __ATOMIC_RELEASE);
}
static void full_gc(void) { rt_gc(); }
static unsigned long gc_count(void) {
    rt_mem_stats st;
    rt_read_mem_stats(&st);
    return (unsigned long)st.num_gc;
}
static int start_thread(pthread_t *t, void *(*fn)(void *), void *arg) { return pthread_create(t, NULL, fn, arg); }
static void thread_begin(void) { rt_thread_attach(); }
static void thread_end(void) { rt_thread_detach(); }

#else /* SPECIALS_BOEHM */
#define ALLOC_NODE() ((Node *)GC_MALLOC(sizeof(Node)))
#define ALLOC_VAL() ((Val *)GC_MALLOC_ATOMIC((size_t)obj_size))
#define STORE(slot, v) (*(slot) = (v))
#define BLOCKING_BEGIN() ((void)0)
#define BLOCKING_END() ((void)0)
#define POLL() ((void)0)

/* Register first, publish second: once the link names v (alive: it is on
   our stack), a collection can no longer clear the slot under us, whereas a
   store before the registration could be wiped by a collection clearing the
   slot's previous, dead target. */
static void make_weak(long k, Val *v) {
    GC_general_register_disappearing_link((void **)&g_table[k], v);
    __atomic_store_n(&g_table[k], GC_HIDE_POINTER(v), __ATOMIC_RELAXED);
}
/* A hidden pointer may be revealed only under the allocation lock, or the
   collector could have decided the target is dead and not cleared it yet. */
static void *reveal_locked(void *slot) {
    GC_hidden_pointer h = *(GC_hidden_pointer *)slot;
    return h ? GC_REVEAL_POINTER(h) : NULL;
}
static Val *get_weak(long k) { return GC_call_with_alloc_lock(reveal_locked, &g_table[k]); }
static void GC_CALLBACK finalizer_fn(void *obj, void *cd) {
    (void)obj;
    long id = (long)(uintptr_t)cd - 1;
    __atomic_fetch_add(&ran[id], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&ran_total, 1, __ATOMIC_RELEASE);
}
static void add_cleanup(Val *v, long id) {
    GC_register_finalizer_no_order(v, finalizer_fn, (void *)(uintptr_t)(id + 1), NULL, NULL);
}
static void full_gc(void) { GC_gcollect(); }
static unsigned long gc_count(void) { return (unsigned long)GC_get_gc_no(); }
static int start_thread(pthread_t *t, void *(*fn)(void *), void *arg) { return GC_pthread_create(t, NULL, fn, arg); }
static void thread_begin(void) {}   /* GC_pthread_create registered the thread */
static void thread_end(void) {}

/* rtgc runs cleanups on a thread of its own; so does Boehm here. */
static sem_t fin_sem;
static volatile int fin_quit;
static void GC_CALLBACK fin_notify(void) { sem_post(&fin_sem); }
static void *finalizer_thread(void *arg) {
    (void)arg;
    while (!fin_quit) {
        while (sem_wait(&fin_sem) != 0 && errno == EINTR) {}
        while (GC_should_invoke_finalizers()) GC_invoke_finalizers();
    }
    return NULL;
}

/* Collections recorded in place: printing from the callback could block on
   stdio's lock held by a thread the collector has stopped. */
#define MAX_EVENTS 100000
static struct { double start, whole, stw; } ev[MAX_EVENTS];
static int n_ev;
static double ev_begin, ev_stw_begin, ev_stw;
static void on_event(GC_EventType e) {
    double t = now();
    switch (e) {
    case GC_EVENT_START: ev_begin = t; ev_stw = 0; break;
    case GC_EVENT_PRE_STOP_WORLD: ev_stw_begin = t; break;
    case GC_EVENT_POST_START_WORLD: ev_stw += t - ev_stw_begin; break;
    case GC_EVENT_END:
        if (n_ev < MAX_EVENTS) {
            ev[n_ev].start = ev_begin - t_start;
            ev[n_ev].whole = t - ev_begin;
            ev[n_ev].stw = ev_stw;
            n_ev++;
        }
        break;
    default: break;
    }
}
#endif

/* ---- ballast ---------------------------------------------------------------- */

static void build_ballast(void) {
    long nodes = live_mb * 1024 * 1024 / (long)sizeof(Node);
    for (long i = 0; i < nodes; i++) {
        Node *nd = ALLOC_NODE();
        nd->value = (uint64_t)i;
        nd->next = g_heads[i % NLISTS];   /* fresh node: no barrier needed */
        STORE(&g_heads[i % NLISTS], nd);
    }
}

/* ---- the mutators ------------------------------------------------------------ */

typedef struct Worker {
    int id;
    long key0, nkeys;                /* weak: this thread's keys; cleanup: its objects */
    long strong0, nstrong;           /* weak: this thread's part of g_strong */
    long ops;
    long id0;                        /* cleanup: first churn id */
    double fill_alloc_s, fill_make_s, churn_s, get_s;
    long gets, hits, misses, makes;
} Worker;

/* A fresh key that no strong value holds, from this thread's slice. */
static long free_key(Worker *w, uint64_t *s) {
    for (;;) {
        long k = w->key0 + (long)(rnd(s) % (uint64_t)w->nkeys);
        if (owner[k] < 0) return k;
    }
}

static Val *new_val(long key) {
    Val *v = ALLOC_VAL();
    v->key = (uint64_t)key;
    return v;
}

/* Short-lived objects the size of a value, stored nowhere. */
static void make_garbage(long ops) {
    long n = ops * garbage / obj_size;
    for (long i = 0; i < n; i++) new_val(i);
}

/* ---- weak ------------------------------------------------------------------- */

static void *weak_worker(void *arg) {
    Worker *w = arg;
    uint64_t s = 0x9E3779B97F4A7C15ull * (uint64_t)(w->id + 1);
    thread_begin();
    /* Fill: every key gets a value and a weak entry; values are first kept
       in the strong array's slots, cycled, so that the make loop times the
       makes alone. */
    long batch = w->nstrong;
    double t0, t1;
    for (long k0 = 0; k0 < w->nkeys; k0 += batch) {
        long nb = w->nkeys - k0 < batch ? w->nkeys - k0 : batch;
        t0 = now();
        for (long i = 0; i < nb; i++) STORE(&g_strong[w->strong0 + i], new_val(w->key0 + k0 + i));
        t1 = now();
        w->fill_alloc_s += t1 - t0;
        if (with_specials) {
            for (long i = 0; i < nb; i++) make_weak(w->key0 + k0 + i, g_strong[w->strong0 + i]);
            w->fill_make_s += now() - t1;
        }
    }
    /* The strong set is the last batch: a quarter of the keys. */
    long last0 = (w->nkeys - 1) / batch * batch;
    for (long i = 0; i < w->nkeys - last0; i++) owner[w->key0 + last0 + i] = (int32_t)(w->strong0 + i);
    for (long i = w->nkeys - last0; i < w->nstrong; i++) STORE(&g_strong[w->strong0 + i], NULL);

    BLOCKING_BEGIN();
    pthread_barrier_wait(&phase_barrier);
    BLOCKING_END();

    /* Churn: per step, R replacements of strong values, F short-lived fills,
       G lookups. */
    enum { R = 256, F = 256, G = 2048 };
    for (long done = 0; done < w->ops; done += R + F) {
        t0 = now();
        for (long i = 0; i < R; i++) {
            long j = w->strong0 + (long)(rnd(&s) % (uint64_t)w->nstrong);
            Val *old = g_strong[j];
            if (old) owner[old->key] = -1;
            long k = free_key(w, &s);
            Val *v = new_val(k);
            if (with_specials) make_weak(k, v);
            STORE(&g_strong[j], v);
            owner[k] = (int32_t)j;
        }
        for (long i = 0; i < F; i++) {
            long k = free_key(w, &s);
            Val *v = new_val(k);
            if (with_specials) make_weak(k, v);
        }
        t1 = now();
        w->churn_s += t1 - t0;
        w->makes += R + F;
        /* Lookups are timed alone; checking them (more random loads) comes
           after.  The results sit on this stack, which both collectors scan.
           Neither loop allocates: poll every 256 so that a stop of the world
           does not wait for a whole batch (2048 gets take ~0.5 ms), which
           would show up as pause time the specials do not cause. */
        long keys[2048];
        Val *got[2048];
        for (long i = 0; i < G; i++) keys[i] = w->key0 + (long)(rnd(&s) % (uint64_t)w->nkeys);
        t1 = now();
        if (with_specials) {
            for (long i = 0; i < G; i++) {
                got[i] = get_weak(keys[i]);
                if ((i & 255) == 255) POLL();
            }
        } else {
            for (long i = 0; i < G; i++) got[i] = owner[keys[i]] >= 0 ? g_strong[owner[keys[i]]] : NULL;
        }
        w->get_s += now() - t1;
        long hits = 0;
        for (long i = 0; i < G; i++) {
            long k = keys[i];
            Val *v = got[i];
            if (owner[k] >= 0 && v != g_strong[owner[k]]) fail("a strongly held value read back wrong", k);
            if (v && v->key != (uint64_t)k) fail("a weak entry returned another key's value", k);
            hits += v != NULL;
            if ((i & 255) == 255) POLL();
        }
        w->gets += G;
        make_garbage(R + F);
        w->hits += hits;
        w->misses += G - hits;
        POLL();
    }
    thread_end();
    return NULL;
}

/* After the churn: two full collections, then every unheld entry should
   read NULL.  A few may stay set through a stale word on a conservatively
   scanned stack; more than 0.1% means entries are not being cleared. */
static void weak_final_check(long *stale_out, long *held_missing_out) {
    full_gc();
    full_gc();
    long stale = 0, held_missing = 0;
    for (long k = 0; k < n_entries; k++) {
        Val *v = get_weak(k);
        if (owner[k] >= 0) held_missing += v != g_strong[owner[k]];
        else stale += v != NULL;
    }
    *stale_out = stale;
    *held_missing_out = held_missing;
    if (held_missing) fail("a held entry read NULL after the final collections", -1);
    if (stale > n_entries / 1000) fail("unheld entries not cleared after two full collections", stale);
}

/* ---- cleanup ---------------------------------------------------------------- */

static void *cleanup_worker(void *arg) {
    Worker *w = arg;
    uint64_t s = 0x9E3779B97F4A7C15ull * (uint64_t)(w->id + 1);
    thread_begin();
    double t0 = now();
    for (long i = 0; i < w->nkeys; i++) STORE(&g_strong[w->key0 + i], new_val(w->key0 + i));
    double t1 = now();
    w->fill_alloc_s = t1 - t0;
    if (with_specials) {
        for (long i = 0; i < w->nkeys; i++) add_cleanup(g_strong[w->key0 + i], w->key0 + i);
        w->fill_make_s = now() - t1;
    }

    BLOCKING_BEGIN();
    pthread_barrier_wait(&phase_barrier);
    BLOCKING_END();

    enum { STEP = 512 };
    for (long c0 = 0; c0 < w->ops; c0 += STEP) {
        long nc = w->ops - c0 < STEP ? w->ops - c0 : STEP;
        t0 = now();
        for (long c = c0; c < c0 + nc; c++) {
            long i = w->key0 + (long)(rnd(&s) % (uint64_t)w->nkeys);
            long id = w->id0 + c;
            Val *v = new_val(id);
            if (with_specials) add_cleanup(v, id);
            STORE(&g_strong[i], v);
        }
        w->churn_s += now() - t0;
        make_garbage(nc);
    }
    w->makes = w->ops;
    thread_end();
    return NULL;
}

/* Drop every object, then collect until every cleanup has run: returns the
   seconds that took, and the cycles in *cycles. */
static double drain_gc_s;   /* the first collection alone */

static double cleanup_drain(unsigned long *cycles) {
    unsigned long gc0 = gc_count();
    double t0 = now();
    g_strong = NULL;   /* the one root: no barrier */
    for (int round = 0; round < 20 && __atomic_load_n(&ran_total, __ATOMIC_ACQUIRE) < n_ids; round++) {
        full_gc();
        if (round == 0) drain_gc_s = now() - t0;
        /* Wait for the cleanup (finalizer) thread while it makes progress. */
        long seen = -1;
        double quiet_since = now();
        for (;;) {
            long r = __atomic_load_n(&ran_total, __ATOMIC_ACQUIRE);
            if (r >= n_ids) break;
            if (r != seen) { seen = r; quiet_since = now(); }
            else if (now() - quiet_since > 0.5) break;
            BLOCKING_BEGIN();
            struct timespec ts = { 0, 200000 };
            nanosleep(&ts, NULL);
            BLOCKING_END();
        }
    }
    double t = now() - t0;
    *cycles = gc_count() - gc0;
    return t;
}

/* ---- main --------------------------------------------------------------------- */

static void usage(void) {
    fprintf(stderr, "usage: specials workload=weak|cleanup [specials=0|1] [n=N] [ops=N] [live_mb=MB] "
                    "[threads=1|2] [obj=BYTES] [garbage=BYTES]\n");
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) usage();
        *eq = 0;
        const char *k = argv[i], *v = eq + 1;
        if (!strcmp(k, "workload")) {
            if (!strcmp(v, "weak")) workload_weak = 1;
            else if (!strcmp(v, "cleanup")) workload_weak = 0;
            else usage();
        } else if (!strcmp(k, "specials")) with_specials = atoi(v);
        else if (!strcmp(k, "n")) n_entries = atol(v);
        else if (!strcmp(k, "ops")) n_ops = atol(v);
        else if (!strcmp(k, "live_mb")) live_mb = atol(v);
        else if (!strcmp(k, "threads")) n_threads = atoi(v);
        else if (!strcmp(k, "obj")) obj_size = atol(v);
        else if (!strcmp(k, "garbage")) garbage = atol(v);
        else usage();
    }
    if (n_threads < 1 || n_threads > 16 || n_entries < 4 * n_threads || obj_size < 16) usage();

    t_start = now();
#ifdef SPECIALS_RTGC
    if (rt_init(NULL) != RT_OK) return 1;
    rt_thread_attach();
    size_t node_offs[] = { offsetof(Node, next), offsetof(Node, other) };
    node_t = rt_type_layout("Node", sizeof(Node), node_offs, 2);
    size_t slot_off[] = { 0 };
    slot_t = rt_type_layout("slot", sizeof(void *), slot_off, 1);
    /* Roots: three slots.  The arrays are heap objects, so their contents
       are marked concurrently instead of in the mark-start pause. */
    rt_root_add(&g_heads);
    rt_root_add(&g_strong);
    rt_root_add(&g_table);
    g_heads = rt_alloc_array(slot_t, NLISTS);
#else
    GC_INIT();
    GC_allow_register_threads();
    GC_start_mark_threads();
    GC_set_on_collection_event(on_event);
    GC_set_finalize_on_demand(1);
    GC_set_finalizer_notifier(fin_notify);
    sem_init(&fin_sem, 0, 0);
    pthread_t fin_t;
    GC_pthread_create(&fin_t, NULL, finalizer_thread, NULL);
    g_heads = GC_MALLOC(NLISTS * sizeof *g_heads);
#endif
    build_ballast();

    Worker *ws = calloc((size_t)n_threads, sizeof *ws);
    long per = n_entries / n_threads;
    if (workload_weak) {
        n_strong = n_entries / 4;
        owner = malloc((size_t)n_entries * sizeof *owner);
        for (long k = 0; k < n_entries; k++) owner[k] = -1;
#ifdef SPECIALS_RTGC
        g_table = rt_alloc_array(slot_t, (size_t)n_entries);
        g_strong = rt_alloc_array(slot_t, (size_t)n_strong);
#else
        g_table = calloc((size_t)n_entries, sizeof *g_table);
        g_strong = GC_MALLOC((size_t)n_strong * sizeof *g_strong);
#endif
    } else {
        n_ids = n_entries + n_ops;
        ran = calloc((size_t)n_ids, 1);
#ifdef SPECIALS_RTGC
        g_strong = rt_alloc_array(slot_t, (size_t)n_entries);
#else
        g_strong = GC_MALLOC((size_t)n_entries * sizeof *g_strong);
#endif
    }
    for (int t = 0; t < n_threads; t++) {
        Worker *w = &ws[t];
        w->id = t;
        w->key0 = t * per;
        w->nkeys = t == n_threads - 1 ? n_entries - w->key0 : per;
        w->strong0 = t * (n_strong / n_threads);
        w->nstrong = t == n_threads - 1 ? n_strong - w->strong0 : n_strong / n_threads;
        w->ops = n_ops / n_threads;
        w->id0 = n_entries + t * (n_ops / n_threads);
    }
    if (!workload_weak) n_ids = n_entries + (n_ops / n_threads) * n_threads;
    printf("setup_s=%.3f\n", now() - t_start);
    fflush(stdout);

    pthread_barrier_init(&phase_barrier, NULL, (unsigned)n_threads + 1);
    pthread_t *th = calloc((size_t)n_threads, sizeof *th);
    for (int t = 0; t < n_threads; t++)
        start_thread(&th[t], workload_weak ? weak_worker : cleanup_worker, &ws[t]);
    BLOCKING_BEGIN();
    pthread_barrier_wait(&phase_barrier);
    phase_start = now();
    for (int t = 0; t < n_threads; t++) pthread_join(th[t], NULL);
    phase_end = now();
    BLOCKING_END();
    unsigned long gcs_phase_end = gc_count();

    /* Per-thread times averaged over threads: the cost of one operation as
       a mutator sees it (not throughput). */
    double fill_alloc = 0, fill_make = 0, churn = 0, get = 0;
    long gets = 0, hits = 0, makes = 0, fill_n = 0;
    for (int t = 0; t < n_threads; t++) {
        fill_alloc += ws[t].fill_alloc_s;
        fill_make += ws[t].fill_make_s;
        churn += ws[t].churn_s;
        get += ws[t].get_s;
        gets += ws[t].gets;
        hits += ws[t].hits;
        makes += ws[t].makes;
        fill_n += ws[t].nkeys;
    }
    printf("workload=%s\nspecials=%d\nn=%ld\nthreads=%d\nops=%ld\nlive_mb=%ld\nobj=%ld\ngarbage=%ld\n",
           workload_weak ? "weak" : "cleanup", with_specials, n_entries, n_threads, makes, live_mb, obj_size, garbage);
    printf("fill_alloc_ns=%.1f\n", fill_alloc * 1e9 / (double)fill_n);
    if (with_specials) printf("%s=%.1f\n", workload_weak ? "make_ns" : "register_ns", fill_make * 1e9 / (double)fill_n);
    printf("churn_ns=%.1f\n", churn * 1e9 / (double)makes);
    if (workload_weak) {
        printf("get_ns=%.1f\nhit_rate=%.4f\ngets=%ld\n", get * 1e9 / (double)gets, (double)hits / (double)gets, gets);
        if (with_specials) {
            long stale, held_missing;
            weak_final_check(&stale, &held_missing);
            printf("stale_after_gc=%ld\nheld_missing=%ld\n", stale, held_missing);
        }
    } else if (with_specials) {
        unsigned long cycles;
        double drain = cleanup_drain(&cycles);
        long once = 0, twice = 0, never = 0;
        for (long i = 0; i < n_ids; i++) {
            if (ran[i] == 1) once++;
            else if (ran[i] == 0) never++;
            else twice++;
        }
        printf("registered=%ld\nran_once=%ld\nran_never=%ld\nran_more=%ld\ndrain_ms=%.1f\ndrain_gc_ms=%.1f\ndrain_cycles=%lu\n",
               n_ids, once, never, twice, drain * 1e3, drain_gc_s * 1e3, cycles);
        if (never) fail("cleanups that never ran", never);
        if (twice) fail("cleanups that ran more than once", twice);
    }
    printf("gc_count=%lu\ngc_count_phase_end=%lu\n", gc_count(), gcs_phase_end);
#ifdef SPECIALS_BOEHM
    fin_quit = 1;
    sem_post(&fin_sem);
    for (int i = 0; i < n_ev; i++) printf("pause %.6f %.4f %.4f\n", ev[i].start, ev[i].whole * 1e3, ev[i].stw * 1e3);
#else
    rt_mem_stats st;
    rt_read_mem_stats(&st);
    printf("gc_cpu_fraction=%.4f\nheap_mb=%.0f\n", st.gc_cpu_fraction, st.heap_alloc / 1048576.0);
#endif
    printf("phase_start_s=%.3f\nphase_end_s=%.3f\n", phase_start - t_start, phase_end - t_start);
    printf("check=%s\n", failed ? "fail" : "ok");
    return failed ? 1 : 0;
}
