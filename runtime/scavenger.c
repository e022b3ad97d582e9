/* runtime/scavenger.c -- giving free heap memory back to the OS, and the
 * memory limit's heap goal (Go's mgcscavenge.go and memoryLimitHeapGoal;
 * reference notes sections 9.3 and 11; docs/memory.md).
 *
 * Owns: the background scavenger thread, synchronous ("eager") scavenging
 * on allocation, rt_free_os_memory, the scavtrace line, and
 * rt__memlimit_heap_goal.
 *
 * What is released.  Free pages that still hold physical memory, highest
 * addresses first, in runs of at most a chunk, through mheap's take/return
 * primitives: a run is taken out of the free pool under the heap lock (so
 * no allocation can get it while the kernel zeroes it), released with
 * madvise with no lock held, and returned marked scavenged.  A span made
 * only of scavenged pages is known to be zero (runtime/mheap.c).
 *
 * Goals (Go's gcPaceScavenger), evaluated against lock-free figures:
 *   - the GOGC goal, set at every rt__scavenger_wake from the second one on:
 *       retained <= in_use(last cycle) x goal / goal(last cycle) x 1.10
 *     where retained = heap_sys - heap_released and in_use is the bytes in
 *     in-use spans sampled at the wake.  A goal already met at the wake is
 *     switched off until the next wake (a heap growing back within its goal
 *     is not fought).  A goal is held for a second (RT__SCAV_HOLD_NS):
 *     until it has stood that long, the goal in force is the highest set
 *     since, so the pages a program used in one phase are not released
 *     only to be faulted back in the next (binary_trees.lox, whose heap
 *     swings between 13 and 21 MiB, released 11 MiB a run and took them
 *     back, 3-4% of its time).  Go has no such hold; jemalloc's decay and
 *     mimalloc's purge delay are the same idea;
 *   - the memory-limit goal: rt__mapped_ready() <= 95% of RTMEMLIMIT.
 * The thread runs while either is unmet and there is something to release.
 *
 * Pacing: 1% of the CPUs the program may use (min(RTMAXPROCS, CPUs)), as
 * Go's scavengePercent of GOMAXPROCS: 2% of one CPU on a 2-CPU machine.
 * The thread releases runs of up to a chunk (4 MiB) until it has used at
 * least 1 ms of CPU (its own thread clock, wake-up cost included) or the
 * goals are met, then sleeps so its share stays at that budget; a round
 * is paid for up to 10 ms of its CPU (rt__scavenger_sleep_for).  The
 * kernel needs 70-100 ms of CPU per GiB of 4 KiB pages here, so at 1% of
 * one CPU a 1 GiB spike took 7.4-9.8 s to come back (the bound is
 * 10 s); at Go's budget it takes half that.
 * The background walk skips chunks at least 96.875% in use (they will be
 * reused) and parks when it finds nothing to release, until the next wake
 * or the next span freed while a goal is unmet.
 *
 * Synchronous scavenging (Go's allocSpan): when a span takes pages that
 * had been released, before they are touched, the allocating thread
 * releases other free pages if mapped-ready memory now exceeds the limit
 * (all chunks, however dense), and if the heap had to grow while retained
 * memory is over the GOGC goal (up to the bytes just taken).  While the
 * GC CPU limiter is on (gc/limiter.c) the first is skipped, as in Go: the
 * program is already over its CPU budget for the limit.
 *
 * Locks: the scavenger's lock is never held while calling into mheap. */
#include "internal.h"

#include <stdio.h>
#include <time.h>

#define PERCENT        1                       /* of min(RTMAXPROCS, CPUs) CPUs */
#define MIN_WORK_NS    1000000ull              /* work at least this much per round */
#define MAX_PACED_NS   10000000ull             /* a round's CPU the sleep pays for: at most 10 ms */
#define BG_RUN_BYTES   ((uint64_t)RT_CHUNK_BYTES)  /* background madvise size: up to a chunk */
#define RETAIN_EXTRA   10                      /* percent over the GOGC-based goal */
#define LIMIT_PERCENT  95                      /* background goal under a memory limit */
#define NO_GOAL        UINT64_MAX

static struct {
    pthread_mutex_t lock;
    pthread_cond_t  cond;
    pthread_t       thread;
    bool            running, quit;
    bool            holding;         /* asleep until a held goal lapses */
    uint64_t        kick;            /* wakes so far */
    uint64_t        idle_kick;       /* kick value when the thread found nothing to do */
    int             want_nudge;      /* found nothing with a goal unmet: a freed span should wake it */
    uint64_t        frees;           /* spans freed so far, atomic */
    uint64_t        gc_goal;         /* retained-memory goal, NO_GOAL if none */
    uint64_t        held_goal, held_until;   /* the highest recent goal, and when it lapses */
    uint64_t        last_inuse, last_heap_goal;
    bool            have_last;
    uint64_t        start_ns, cpu_at_stop;
    /* statistics, atomics */
    uint64_t        rel_bg, rel_eager, rel_forced;
    uint64_t        rel_meta;        /* metadata pages (rt__heap_release_metadata), bg and forced */
    uint64_t        trace_bg, trace_eager;   /* since the last scavtrace line */
    uint64_t        work_ns, unpaced_ns, rounds, wakes, longest_round_ns;
} SC = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .gc_goal = NO_GOAL };

static uint64_t limit_bytes(void) {
    int64_t l = ld_relaxed(&rt__cfg.memory_limit);
    return l < 0 || l == INT64_MAX ? NO_GOAL : (uint64_t)l;
}

static uint64_t limit_goal(void) {
    uint64_t l = limit_bytes();
    return l == NO_GOAL ? NO_GOAL : l / 100 * LIMIT_PERCENT;
}

/* The GOGC goal in force: the last wake's, unless a higher one still
   stands. */
static uint64_t gc_goal_held(void) {
    uint64_t g = ld_relaxed(&SC.gc_goal), h = ld_relaxed(&SC.held_goal);
    if (g == NO_GOAL || h <= g) return g;
    return rt__nanotime() < ld_relaxed(&SC.held_until) ? h : g;
}

/* Bytes the background thread should still release. */
static uint64_t bg_need(void) {
    uint64_t need = 0, g = gc_goal_held(), lg = limit_goal();
    if (g != NO_GOAL) {
        uint64_t r = rt__heap_retained_bytes();
        if (r > g) need = r - g;
    }
    if (lg != NO_GOAL) {
        uint64_t m = rt__mapped_ready();
        if (m > lg && m - lg > need) need = m - lg;
    }
    return need;
}

/* Release up to `bytes` now on this thread; returns bytes released. */
static uint64_t scavenge_run(uint64_t bytes, bool force, uint64_t max_run) {
    uint64_t done = 0;
    while (done < bytes) {
        uint64_t want = bytes - done < max_run ? bytes - done : max_run;
        size_t pages = (size_t)((want + RT_PAGE_SIZE - 1) / RT_PAGE_SIZE);
        uintptr_t base;
        size_t n = rt__heap_scav_take(pages, force, &base);
        if (n == 0) break;
        int rc = rt__os_release((void *)base, n * RT_PAGE_SIZE);
        rt__heap_scav_return(base, n, rc);
        if (rc < 0) break;                      /* the kernel refuses: try again later */
        done += (uint64_t)n * RT_PAGE_SIZE;
    }
    return done;
}

uint64_t rt__scavenge(uint64_t bytes, bool force) {
    uint64_t n = scavenge_run(bytes, force, RT_CHUNK_BYTES);
    add_relaxed(&SC.rel_eager, n);
    add_relaxed(&SC.trace_eager, n);
    return n;
}

void rt__scavenge_on_alloc(uint64_t new_bytes, bool grew) {
    uint64_t todo = 0, l = limit_bytes();
    bool force = false;
    /* Over its CPU budget the runtime stops paying for the limit, as Go. */
    if (l != NO_GOAL && !ld_relaxed(&rt__gc_limiting)) {
        uint64_t m = rt__mapped_ready();        /* already counts the new pages */
        if (m > l) { todo = m - l; force = true; }
    }
    uint64_t g = gc_goal_held();
    if (grew && g != NO_GOAL) {
        uint64_t r = rt__heap_retained_bytes();
        if (r > g) {
            uint64_t t = r - g < new_bytes ? r - g : new_bytes;
            if (t > todo) todo = t;
        }
    }
    if (todo == 0 || rt__heap_free_bytes() == 0) return;
    rt__scavenge(todo, force);
}

/* ---- The background thread ---------------------------------------------------- */

/* Percent of one CPU the background thread may use. */
static uint64_t budget_percent(void) {
    uint64_t b = (uint64_t)rt__procs() * PERCENT;
    return b > 50 ? 50 : b;
}

/* The sleep that keeps a round of `worked` ns of CPU within the budget.
   A round that took longer than MAX_PACED_NS (Go's maxCrit) is paid for
   as if it took that long: a hypervisor or kernel hiccup inside one
   madvise would otherwise stop the thread for 49 times the hiccup (CI
   once released 52 MiB of a dead 1 GiB spike in 10 s, in 13 rounds and
   0.218 s of CPU: a fit for one ~200 ms round and its 9.8 s sleep). */
uint64_t rt__scavenger_sleep_for(uint64_t worked) {
    uint64_t b = budget_percent(), paced = worked < MAX_PACED_NS ? worked : MAX_PACED_NS;
    return paced * (100 - b) / b;
}

/* Sleeps ns with SC.lock held, until stop, or also until the next wake
   (a new kick) if `until_kick`.  Returns whether a kick came. */
static bool sleep_ns(uint64_t ns, bool until_kick) {
    uint64_t kick = SC.kick;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t t = (uint64_t)ts.tv_nsec + ns % 1000000000u;
    ts.tv_sec += (time_t)(ns / 1000000000u + t / 1000000000u);
    ts.tv_nsec = (long)(t % 1000000000u);
    while (!SC.quit && !(until_kick && SC.kick != kick))
        if (pthread_cond_timedwait(&SC.cond, &SC.lock, &ts) != 0) break;
    return SC.kick != kick;
}

/* How long until a held goal lapses, if it is all that keeps the thread
   from an unmet goal; 0 otherwise. */
static uint64_t hold_left_ns(void) {
    uint64_t g = ld_relaxed(&SC.gc_goal);
    if (gc_goal_held() == g || rt__heap_retained_bytes() <= g) return 0;
    uint64_t now = rt__nanotime(), until = ld_relaxed(&SC.held_until);
    return until > now ? until - now : 0;
}

/* One release of span metadata at a time, counted before the next starts:
   rt_free_os_memory then returns only after a release the background
   thread had under way is done and counted (slabs it had taken were
   still resident, and uncounted, when a test read the statistics). */
static pthread_mutex_t metadata_lock = PTHREAD_MUTEX_INITIALIZER;

static void release_metadata(void) {
    pthread_mutex_lock(&metadata_lock);
    add_relaxed(&SC.rel_meta, rt__heap_release_metadata());
    pthread_mutex_unlock(&metadata_lock);
}

static void *scavenger_main(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "rtgc-scavenger");
    uint64_t round_start = rt__cputime_thread();
    pthread_mutex_lock(&SC.lock);
    while (!SC.quit) {
        if (SC.idle_kick == SC.kick || bg_need() == 0) {
            /* Nothing to do: park until a wake, or a freed span if a goal
               is still unmet. */
            SC.idle_kick = SC.kick;
            uint64_t hold = hold_left_ns();
            if (hold) {
                /* Look again when the hold lapses, as if woken. */
                SC.holding = true;
                if (!sleep_ns(hold, true)) SC.kick++;
                SC.holding = false;
                continue;
            }
            st_relaxed(&SC.want_nudge, bg_need() != 0);
            pthread_cond_wait(&SC.cond, &SC.lock);
            st_relaxed(&SC.want_nudge, 0);
            round_start = rt__cputime_thread();
            continue;
        }
        pthread_mutex_unlock(&SC.lock);
        uint64_t released = 0, need, frees0 = ld_relaxed(&SC.frees);
        bool found_nothing = false;
        /* Span structs, bitmaps and span-set tails of the spans freed
           since (a dying spike's: 20-30 MiB per GiB of small objects) go
           back first; they are not heap and do not count toward the goal. */
        release_metadata();
        do {
            need = bg_need();
            if (need == 0) break;
            uint64_t n = scavenge_run(need < BG_RUN_BYTES ? need : BG_RUN_BYTES, false, BG_RUN_BYTES);
            if (n == 0) { found_nothing = true; break; }
            released += n;
        } while (rt__cputime_thread() - round_start < MIN_WORK_NS);
        /* Counted from the end of the last count, so the CPU spent going
           to sleep and waking up is paid for too. */
        uint64_t now = rt__cputime_thread(), worked = now - round_start;
        round_start = now;
        add_relaxed(&SC.rel_bg, released);
        add_relaxed(&SC.trace_bg, released);
        add_relaxed(&SC.work_ns, worked);
        if (worked > MAX_PACED_NS) add_relaxed(&SC.unpaced_ns, worked - MAX_PACED_NS);
        add_relaxed(&SC.rounds, 1);
        if (worked > ld_relaxed(&SC.longest_round_ns)) st_relaxed(&SC.longest_round_ns, worked);
        pthread_mutex_lock(&SC.lock);
        /* Found nothing: park after the sleep, unless a span was freed
           since the search began (the sweep of the cycle that woke this
           thread may still be freeing them).  From here on a freed span
           kicks it.  (It used to ask for that only once parked: spans freed
           during the search and the sleep were missed, and it slept with
           1 GiB unreleased until the next collection.) */
        if (found_nothing && ld_relaxed(&SC.frees) == frees0) {
            SC.idle_kick = SC.kick;
            st_relaxed(&SC.want_nudge, 1);
        }
        sleep_ns(rt__scavenger_sleep_for(worked), false);
    }
    pthread_mutex_unlock(&SC.lock);
    return NULL;
}

void rt__scavenger_start(void) {
    pthread_mutex_lock(&SC.lock);
    if (SC.running) { pthread_mutex_unlock(&SC.lock); return; }
    SC.quit = false;
    SC.idle_kick = SC.kick;      /* nothing to do until a goal exists */
    if (pthread_create(&SC.thread, NULL, scavenger_main, NULL) != 0) {
        pthread_mutex_unlock(&SC.lock);
        rt__warn("cannot create the scavenger thread; free memory goes back to the OS only through "
                 "rt_free_os_memory and the memory limit");
        return;
    }
    SC.running = true;
    SC.start_ns = rt__nanotime();
    pthread_mutex_unlock(&SC.lock);
}

static uint64_t thread_cpu(pthread_t t) {
    clockid_t cid;
    struct timespec ts;
    if (pthread_getcpuclockid(t, &cid) != 0 || clock_gettime(cid, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void rt__scavenger_stop(void) {
    pthread_mutex_lock(&SC.lock);
    if (!SC.running) { pthread_mutex_unlock(&SC.lock); return; }
    SC.quit = true;
    pthread_cond_broadcast(&SC.cond);
    pthread_t t = SC.thread;
    SC.cpu_at_stop = thread_cpu(t);
    pthread_mutex_unlock(&SC.lock);
    pthread_join(t, NULL);
    pthread_mutex_lock(&SC.lock);
    SC.running = false;
    pthread_mutex_unlock(&SC.lock);
}

/* A span was freed (mheap): wake a thread parked with a goal unmet. */
void rt__scavenger_on_free(void) {
    add_relaxed(&SC.frees, 1);
    if (!ld_relaxed(&SC.want_nudge)) return;
    pthread_mutex_lock(&SC.lock);
    if (ld_relaxed(&SC.want_nudge)) {
        st_relaxed(&SC.want_nudge, 0);
        SC.kick++;
        pthread_cond_broadcast(&SC.cond);
    }
    pthread_mutex_unlock(&SC.lock);
}

/* Go's printScavTrace. */
static void trace_line(uint64_t bg, uint64_t eager, bool forced) {
    uint64_t released = rt__heap_released_bytes(), retained = rt__heap_retained_bytes();
    uint64_t inuse = (uint64_t)ld_relaxed(&rt__heap.pages_inuse_spans) * RT_PAGE_SIZE;
    fprintf(stderr, "scav %llu KiB work (bg), %llu KiB work (eager), %llu KiB now, %llu%% util%s\n",
            (unsigned long long)(bg >> 10), (unsigned long long)(eager >> 10),
            (unsigned long long)(released >> 10),
            (unsigned long long)(retained ? inuse * 100 / retained : 100), forced ? " (forced)" : "");
}

void rt__scavenger_wake(uint64_t heap_goal) {
    rt__scavenger_wake_sampled(heap_goal, (uint64_t)ld_relaxed(&rt__heap.pages_inuse_spans) * RT_PAGE_SIZE);
}

void rt__scavenger_wake_sampled(uint64_t heap_goal, uint64_t inuse) {
    uint64_t retained = rt__heap_retained_bytes();
    uint64_t ospage = rt__os_pagesize();
    pthread_mutex_lock(&SC.lock);
    uint64_t goal = NO_GOAL;
    if (SC.have_last && heap_goal != NO_GOAL && SC.last_heap_goal != NO_GOAL && SC.last_heap_goal != 0) {
        double g = (double)SC.last_inuse * ((double)heap_goal / (double)SC.last_heap_goal);
        g += g * RETAIN_EXTRA / 100;
        goal = g >= 1.8e19 ? NO_GOAL : ((uint64_t)g + ospage - 1) & ~(ospage - 1);
        uint64_t now = rt__nanotime();
        if (goal != NO_GOAL && (goal >= SC.held_goal || now >= SC.held_until)) {
            st_relaxed(&SC.held_goal, goal);
            st_relaxed(&SC.held_until, now + RT__SCAV_HOLD_NS);
        }
        if (goal != NO_GOAL && (retained <= goal || retained - goal < ospage)) goal = NO_GOAL;
    }
    st_relaxed(&SC.gc_goal, goal);
    SC.last_inuse = inuse;
    SC.last_heap_goal = heap_goal;
    SC.have_last = true;
    SC.wakes++;
    if (rt__cfg.scavtrace) {
        trace_line(__atomic_exchange_n(&SC.trace_bg, 0, __ATOMIC_RELAXED),
                   __atomic_exchange_n(&SC.trace_eager, 0, __ATOMIC_RELAXED), false);
    }
    /* With nothing to release the thread would only wake to park again:
       a kernel round trip per collection, which small cycles (thousands a
       second) cannot afford.  A thread between rounds looks at the goals
       itself, and one waiting for a hold to lapse will look then. */
    if (bg_need() > 0 || (!SC.holding && hold_left_ns() > 0)) {
        SC.kick++;
        pthread_cond_broadcast(&SC.cond);
    }
    pthread_mutex_unlock(&SC.lock);
    rt__heap_scav_newgen();
}

void rt__scavenger_reset(void) {
    pthread_mutex_lock(&SC.lock);
    st_relaxed(&SC.gc_goal, NO_GOAL);
    st_relaxed(&SC.held_goal, 0);
    st_relaxed(&SC.held_until, 0);
    SC.have_last = false;
    SC.last_inuse = SC.last_heap_goal = 0;
    SC.idle_kick = SC.kick;
    st_relaxed(&SC.want_nudge, 0);
    uint64_t *counters[] = { &SC.rel_bg, &SC.rel_eager, &SC.rel_forced, &SC.rel_meta, &SC.trace_bg, &SC.trace_eager,
                             &SC.work_ns, &SC.unpaced_ns, &SC.rounds, &SC.longest_round_ns };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) st_relaxed(counters[i], 0);
    SC.wakes = 0;
    SC.cpu_at_stop = 0;
    pthread_mutex_unlock(&SC.lock);
}

void rt__scavenger_read_stats(rt_scav_stats *out) {
    pthread_mutex_lock(&SC.lock);
    out->released_bg = ld_relaxed(&SC.rel_bg);
    out->released_eager = ld_relaxed(&SC.rel_eager);
    out->released_forced = ld_relaxed(&SC.rel_forced);
    out->released_meta = ld_relaxed(&SC.rel_meta);
    out->bg_work_ns = ld_relaxed(&SC.work_ns);
    out->bg_unpaced_ns = ld_relaxed(&SC.unpaced_ns);
    out->bg_rounds = ld_relaxed(&SC.rounds);
    out->bg_longest_round_ns = ld_relaxed(&SC.longest_round_ns);
    out->bg_cpu_ns = SC.running ? thread_cpu(SC.thread) : SC.cpu_at_stop;
    out->bg_life_ns = SC.running ? rt__nanotime() - SC.start_ns : 0;
    out->gc_goal = ld_relaxed(&SC.gc_goal);
    out->limit_goal = limit_goal();
    out->wakes = SC.wakes;
    pthread_mutex_unlock(&SC.lock);
}

/* ---- rt_free_os_memory -------------------------------------------------------- */

void rt_free_os_memory(void) {
    if (!rt__g.initialized) rt__misuse("rt_free_os_memory", "rtgc is not initialized; call rt_init() first");
    rt_gc();
    /* madvise of a large heap takes a while and touches no object: hand
       the P back meanwhile so a stop-the-world need not wait for it. */
    bool held = rt__tls_mcache != NULL;
    if (held) rt_enter_blocking();
    uint64_t n = scavenge_run(UINT64_MAX, true, RT_CHUNK_BYTES);
    release_metadata();
    /* A run the background thread took before this one counts as free
       nowhere else: "everything at once" includes it. */
    rt__heap_scav_wait_in_flight();
    if (held) rt_exit_blocking();
    add_relaxed(&SC.rel_forced, n);
    if (rt__cfg.scavtrace) trace_line(0, n, true);
}

/* ---- The memory limit's heap goal (Go's memoryLimitHeapGoal) ---------------------- */

uint64_t rt__memlimit_heap_goal(uint64_t heap_marked) {
    uint64_t limit = limit_bytes();
    if (limit == NO_GOAL) return UINT64_MAX;
    uint64_t mapped = rt__mapped_ready();
    uint64_t heap_free = rt__heap_free_bytes();
    uint64_t ta = ld_relaxed(&rt__heap.total_alloc_bytes), tf = ld_relaxed(&rt__heap.total_free_bytes);
    uint64_t heap_alloc = ta > tf ? ta - tf : 0;
    /* Everything mapped that is neither a free page nor an object. */
    uint64_t nonheap = heap_free + heap_alloc < mapped ? mapped - heap_free - heap_alloc : 0;
    uint64_t overage = mapped > limit ? mapped - limit : 0;
    if (nonheap + overage >= limit) return heap_marked;
    uint64_t goal = limit - (nonheap + overage);
    uint64_t headroom = goal / 100 * 3;
    if (headroom < ((uint64_t)1 << 20)) headroom = (uint64_t)1 << 20;
    goal = goal > 2 * headroom ? goal - headroom : headroom;
    return goal > heap_marked ? goal : heap_marked;
}
