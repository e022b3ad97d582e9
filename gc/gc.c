/* gc/gc.c -- the collection cycle.
 *
 * A cycle, as Go's (reference notes section 7), run by the collector's own
 * driver thread:
 *   1. sweep termination: finish sweeping the previous cycle's spans
 *      (concurrently with mutators);
 *   2. mark start, world stopped (pause 1): drop every P's tiny block
 *      (sub-allocations in an old block would not be black), turn the
 *      write barrier on and allocation black, shade the registered roots
 *      and every attached thread's stack and saved registers; restart;
 *   3. concurrent mark: background workers (25% of RTMAXPROCS: dedicated
 *      plus fractional, and idle-priority workers) and mark assists
 *      charged to allocating threads; when the workers run dry, a ragged
 *      flush asks each running P to publish its barrier and work buffers at
 *      its next allocation or barrier call (idle Ps are flushed directly).
 *      That check, and if it finds the mark over, steps 4-5, run on the
 *      worker that ran out of work last (Go's gcMarkDone), not on the
 *      driver, which a wake-up could leave behind the mutator on its CPU;
 *   4. mark termination, world stopped (pause 2): flush every P's buffers,
 *      drain what is left, optionally checkmark, barrier off, hand every
 *      P's cached spans back, sweepgen += 2, heap_live := marked, the
 *      pacer commits the next goal and trigger, the verifier runs (debug);
 *   5. sweep: lazily by allocating threads, proportionally to allocation,
 *      and by the background sweeper; rt_gc() sweeps everything before it
 *      returns.
 * RTDEBUG=gcstoptheworld=1 marks with the world stopped instead of 2-4
 * (one pause); =2 also sweeps with it stopped.
 *
 * Small cycles (run_small_cycle): when the last mark was small (pacer.c),
 * the allocating thread that reaches the trigger runs 1-4 itself in one
 * pause, marking alone, and nothing is woken; a mark that outgrows its
 * budget restarts the world with the barrier on and the driver takes the
 * cycle over at step 3 (docs/design.md, "Small cycles").
 *
 * Threads that wait for the collector (rt_gc, gcstress) wait counted as
 * stopped, with their registers and stack pointer recorded, so they never
 * delay a stop and their stacks are scanned. */
#include "gc.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

volatile int rt__gc_pending;
volatile int rt__gc_phase;
uint64_t rt__gc_num;
uint64_t rt__flush_epoch;

enum { GC_HEAP, GC_FORCED, GC_STRESS };

static struct {
    /* under world_lock */
    bool      active;             /* a cycle was requested and has not finished */
    bool      on_mutator;         /* ... run by an allocating thread (a small cycle) */
    bool      handoff;            /* a small cycle went concurrent: the driver takes it over */
    int       kind;
    uint64_t  started, completed; /* cycles that passed mark start / finished */
    pthread_t driver;
    pthread_cond_t driver_cond;
    bool      quit, driver_running;
    /* statistics */
    uint64_t  num_forced;
    uint64_t  num_small, num_small_concurrent;   /* small cycles; of those, finished by the driver (atomic) */
    uint64_t  pause_total_ns, last_gc_unix_ns;
    uint64_t  pause_ns[256];
    uint64_t  gc_cpu_ns;
    uint64_t  assist_ns;          /* this cycle, atomic */
    uint64_t  requested_ns, requested_heap;   /* when and at what heap_live this cycle was asked for */
    int       cycle_waiters;      /* threads asleep until a cycle completes (rt_gc, gcstress); read unlocked */
} C;

/* world_lock held: wait on world_cond as a stopped thread until pred. */
#define WAIT_AS_STOPPED(pred) do {                                            \
        rt_thread *t_ = rt__tls_thread;                                       \
        while (!(pred) || rt__g.stop_depth > 0) {                            \
            if (t_ && t_->state == RT_T_RUNNING) rt__thread_sleep_begin_locked(t_); \
            pthread_cond_wait(&rt__g.world_cond, &rt__g.world_lock);          \
        }                                                                     \
        if (t_ && t_->state == RT_T_STOPPED) rt__thread_sleep_end_locked(t_); \
    } while (0)

/* world_lock held, no cycle active: this one is. */
static void claim_locked(int kind) {
    C.active = true;
    C.kind = kind;
    C.requested_ns = rt__nanotime();
    C.requested_heap = ld_relaxed(&rt__heap.heap_live);
}

static void *driver_main(void *arg);

/* world_lock held.  The driver thread is started by the first cycle that
   needs it: a program whose cycles are all small never has one. */
static void wake_driver_locked(void) {
    if (!C.driver_running) {
        if (pthread_create(&C.driver, NULL, driver_main, NULL) != 0) rt__fatal("cannot create the collector thread");
        C.driver_running = true;
    }
    pthread_cond_signal(&C.driver_cond);
}

/* world_lock held: ask the driver for a cycle. */
static void request_locked(int kind) {
    if (C.active) return;
    claim_locked(kind);
    wake_driver_locked();
}

/* ---- gctrace ------------------------------------------------------------------------ */

/* Go's fmtNSAsMS: whole ms from 10 ms up, else two significant digits. */
static void fmt_ms(char *buf, size_t n, uint64_t ns) {
    if (ns >= 10000000) { snprintf(buf, n, "%llu", (unsigned long long)(ns / 1000000)); return; }
    uint64_t x = ns / 1000;
    if (x == 0) { snprintf(buf, n, "0"); return; }
    int dec = 3;
    while (x >= 100) { x /= 10; dec--; }
    uint64_t p = 1;
    for (int i = 0; i < dec; i++) p *= 10;
    if (dec == 0) snprintf(buf, n, "%llu", (unsigned long long)x);
    else snprintf(buf, n, "%llu.%0*llu", (unsigned long long)(x / p), dec, (unsigned long long)(x % p));
}

static uint64_t unix_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double cpu_fraction(void) {
    uint64_t elapsed = rt__nanotime() - rt__g.init_ns;
    if (!elapsed) return 0;
    return (double)C.gc_cpu_ns / ((double)elapsed * rt__procs());
}

typedef struct cycle_times {
    uint64_t tsweep;              /* sweep termination done */
    uint64_t stopped0, stopped2;  /* every thread stopped, in pause 1 and 2 */
    uint64_t t0, t1, t2, t3;      /* stop 1, restart 1, stop 2, restart 2 */
    uint64_t flushed2, drained2;  /* in pause 2: every P flushed; the last grey object scanned */
    uint64_t drain2_work;         /* scan work done inside pause 2 */
    uint64_t heap0, heap1, marked, goal;
} cycle_times;

static void trace_line(const cycle_times *ct, int kind) {
    char a[32], b[32], c[32], d[32], e[32], f[32], g[32], h[32];
    int procs = rt__procs();
    fmt_ms(a, sizeof a, ct->t1 - ct->t0);
    fmt_ms(b, sizeof b, ct->t2 - ct->t1);
    fmt_ms(c, sizeof c, ct->t3 - ct->t2);
    fmt_ms(d, sizeof d, (ct->t1 - ct->t0) * (uint64_t)procs);
    fmt_ms(e, sizeof e, C.assist_ns);
    fmt_ms(f, sizeof f, rt__markstats.dedicated_ns + rt__markstats.fractional_ns);
    fmt_ms(g, sizeof g, rt__markstats.idle_ns);
    fmt_ms(h, sizeof h, (ct->t3 - ct->t2) * (uint64_t)procs);
    fprintf(stderr, "gc %llu @%.3fs %d%%: %s+%s+%s ms clock, %s+%s/%s/%s+%s ms cpu, "
            "%llu->%llu->%llu MB, %llu MB goal, %llu MB stacks, %llu MB globals, %d P%s\n",
            (unsigned long long)rt__gc_num, (double)(ct->t0 - rt__g.init_ns) / 1e9, (int)(cpu_fraction() * 100),
            a, b, c, d, e, f, g, h,
            (unsigned long long)(ct->heap0 >> 20), (unsigned long long)(ct->heap1 >> 20),
            (unsigned long long)(ct->marked >> 20),
            (unsigned long long)((ct->goal == UINT64_MAX ? 0 : ct->goal) >> 20),
            (unsigned long long)(rt__last_stack_scan >> 20), (unsigned long long)(rt__last_globals_scan >> 20),
            rt__cfg.maxprocs, kind == GC_FORCED ? " (forced)" : "");
}

/* ---- allocation during a mark --------------------------------------------------------- */

void rt__gc_alloc_black(rt_span *s, uintptr_t slot) {
    /* A span cached during the mark had its free slots marked ahead
       (rt__span_premark) and counts its new objects when it leaves the
       cache (rt__gc_count_black); only large objects are marked one by one,
       counted in the allocating P (flushed with its buffers). */
    if (!s->premarked && rt__span_set_mark(s, rt__span_obj_index(s, slot))) {
        ((rt_p *)rt__tls_mcache)->gcw.bytes_marked += s->hot.elemsize;
        add_relaxed(&rt__markstats.bytes_black, (uint64_t)s->hot.elemsize);
    }
}

/* Once per span: a global atomic is cheap at this rate. */
void rt__gc_count_black(uint64_t bytes) {
    add_relaxed(&rt__markstats.bytes_marked, bytes);
    add_relaxed(&rt__markstats.bytes_black, bytes);
}

/* Allocation debt is charged by span (its free bytes, when a P caches it)
   and by large object, not object by object as Go's mallocgc does: that
   lets small allocations stay on the inline fast path during a mark.  The
   debt is paid at the thread's next slow-path allocation, at most one
   span of each class later. */
void rt__gc_charge_alloc(uint64_t bytes) {
    if (ld_relaxed(&rt__gc_phase) == RT_PHASE_MARK) rt__tls_thread->assist_credit -= (int64_t)bytes;
}

/* Publish a P's barrier buffer and grey objects (the P's owner, or anyone
   while the P is idle or the world is stopped). */
static uint64_t p_flushes_with_work;   /* Ps that published grey objects */

static void flush_p(rt_p *p) {
    /* Work is a grey object, not a buffered pointer: a barrier buffer whose
       pointers are all marked already adds nothing.  (Counting non-empty
       buffers made every round of a pointer-storing mutator "find work",
       and the mark ran hundreds of ragged-flush rounds, 30-200 ms, with
       the workers idle: Go's gcMarkDone also counts only flushed work.) */
    rt__wbuf_flush(p);
    if (!rt__gcwork_empty(&p->gcw)) add_relaxed(&p_flushes_with_work, 1);
    rt__gcwork_dispose(&p->gcw);
    rt__markstats_add(&p->gcw);
    p->gcw.bytes_marked = p->gcw.objects_marked = p->gcw.scan_work = 0;
}

#define GC_OVER_ASSIST_WORK (64 << 10)

/* Parked assists, Go's assist queue as a futex word: an assist in debt
   with nothing to scan sleeps on assist_wake until the workers publish
   credit, a ragged flush asks, or the world restarts (park_assist has
   the bound).  It sleeps counted as a stopped thread, so a stop for mark
   termination, which comes when the mark runs dry and assists are most
   likely parked, does not wait for it to wake.  (It used to nap 20 us,
   70-80 us with the kernel's timer slack, and then to be woken by the
   stop: 30-80 us, then 10-40 us, of pauses of 60-140 us in the pause
   benchmark.) */
/* The longest sleep of a parked assist.  Since the mark's end is in the
   park test, a 1 ms bound no longer slows the 128-byte alloc benchmark,
   but binary-trees 21 ran 7-9% slower with it and peaked at 338-546 MB
   instead of 338-393 MB (2 runs each); why is not known. */
#define ASSIST_PARK_NS 20000
static uint32_t assist_wake;          /* bumped to wake the parked assists */
int rt__assists_parked;               /* assists asleep on it, or about to be (read by balance) */

void rt__gc_wake_assists(void) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);   /* the credit, the flush request or the restart before the look at the sleepers */
    if (!ld_relaxed(&rt__assists_parked)) return;
    add_relaxed(&assist_wake, 1);
    rt__os_futex_wake_all(&assist_wake);
}

/* seq: assist_wake, read before the assist last found nothing to do.
   Every reason to wake is tested after assist_parked is raised, and every
   waker changes its condition before it reads assist_parked (fenced in
   rt__gc_wake_assists), so a wake-up sent while the assist is on its way
   to sleep is seen by one side or the other.  The mark being over is in
   the test: an assist stopped for mark termination at the top of its loop
   came back with the mark ended and slept the whole bound, since the stop
   had woken nobody (on a tiny heap, a cycle every 3 ms, the 128-byte
   alloc benchmark ran 77 ns per object instead of 47 with a 1 ms bound;
   the 20 us bound had hidden it).
   So is a ragged flush's request, which a flush that found no sleeper
   sends to nobody either. */
static void park_assist(rt_p *p, uint32_t seq) {
    __atomic_add_fetch(&rt__assists_parked, 1, __ATOMIC_SEQ_CST);
    /* A marker that publishes a buffer for it (balance) wakes it, and a
       buffer already published keeps it awake.  The bound covers what no
       wake-up is sent for: the limiter engaging, and buffers published
       other than by balance (a worker that publishes them scans too, and
       its credit wakes the assist). */
    if (ld_relaxed(&rt__gc_phase) == RT_PHASE_MARK && !(rt__flags_load() & RT__FLAG_STOP) &&
        ld_relaxed(&rt__pacer.bg_credit) <= 0 && ld_acquire(&p->flush_epoch) == ld_acquire(&rt__flush_epoch) &&
        !ld_relaxed(&rt__gc_limiting) && rt__work_global_empty())
        rt__sleep_as_stopped(&assist_wake, seq, ASSIST_PARK_NS);
    __atomic_sub_fetch(&rt__assists_parked, 1, __ATOMIC_RELAXED);
}

void rt__gc_answer_flush(rt_p *p) {
    uint64_t epoch = ld_acquire(&rt__flush_epoch);
    if (ld_relaxed(&p->flush_epoch) != epoch) {
        flush_p(p);
        st_release(&p->flush_epoch, epoch);
    }
}

/* Scan about `work` bytes for an assist, then publish everything this P
   holds: the flush answers any ragged-flush request made before it began.
   While it scans, the P counts as holding grey objects (ragged_flush).
   Its time is the assist time of gctrace, the pacer and the CPU limiter;
   time parked waiting for credit is not (as Go's gcAssistAlloc: a parked
   assist uses no CPU, and counting it made the limiter turn assists off
   on a busy machine while collection used 30% of the CPU).  Timed by the
   monotonic clock, as Go's: the thread's CPU clock is a system call
   (1.3-1.6 us on the 2-vCPU VM, where queue.lox's VM thread read it 2800
   times a run), and an assist is short enough that preemption inside it
   is rare. */
static int64_t assist_drain(rt_p *p, int64_t work) {
    uint64_t t0 = rt__nanotime();
    uint64_t epoch = ld_acquire(&rt__flush_epoch);
    st_relaxed(&p->assisting, 1);
    int64_t done = rt__drain_n(&p->gcw, work);
    add_relaxed(&rt__pacer.scan_work, (uint64_t)done);
    flush_p(p);
    if (ld_relaxed(&p->flush_epoch) < epoch) st_release(&p->flush_epoch, epoch);
    st_relaxed(&p->assisting, 0);
    uint64_t spent = rt__nanotime() - t0;
    add_relaxed(&C.assist_ns, spent);
    add_relaxed(&rt__assist_total_ns, spent);
    return done;
}

void rt__gc_mark_alloc_hook(rt_p *p) {
    rt_thread *t = rt__tls_thread;
    rt__gc_answer_flush(p);
    /* Over its CPU budget the collector lets the debt stand (gc/limiter.c). */
    if (t->assist_credit >= 0 || ld_relaxed(&rt__gc_limiting)) return;
    rt__pacer_revise();   /* the ratio follows heap_live, which moved since */
    /* Pay the debt in scan work: first from the workers' unclaimed credit. */
    double wpb, bpw;
    __atomic_load(&rt__pacer.assist_work_per_byte, &wpb, __ATOMIC_RELAXED);
    __atomic_load(&rt__pacer.assist_bytes_per_work, &bpw, __ATOMIC_RELAXED);
    int64_t work = (int64_t)(-t->assist_credit * wpb);
    if (work < GC_OVER_ASSIST_WORK) work = GC_OVER_ASSIST_WORK;
    int64_t bg = ld_relaxed(&rt__pacer.bg_credit);
    if (bg > 0) {
        int64_t take = bg < work ? bg : work;
        __atomic_sub_fetch(&rt__pacer.bg_credit, take, __ATOMIC_RELAXED);
        t->assist_credit = rt__pacer_credit_after(t->assist_credit, take * bpw);
        work -= take;
        if (t->assist_credit >= 0) return;
    }
    int64_t done = assist_drain(p, work);
    t->assist_credit = rt__pacer_credit_after(t->assist_credit, done * bpw);
    /* Still in debt and no grey object at hand (the workers hold the
       frontier): park until they earn credit, as Go's gcParkAssist, so a
       fast allocator cannot outrun the mark.  Parked as a stopped
       thread: a stop of the world (mark termination) goes ahead without
       it, and the restart wakes it. */
    while (t->assist_credit < 0 && ld_relaxed(&rt__gc_phase) == RT_PHASE_MARK && !ld_relaxed(&rt__gc_limiting)) {
        rt__park_if_stopping();
        uint32_t seq = __atomic_load_n(&assist_wake, __ATOMIC_ACQUIRE);
        int64_t need = (int64_t)(-t->assist_credit * wpb) + 1;
        bg = ld_relaxed(&rt__pacer.bg_credit);
        if (bg > 0) {
            int64_t take = bg < need ? bg : need;
            __atomic_sub_fetch(&rt__pacer.bg_credit, take, __ATOMIC_RELAXED);
            t->assist_credit = rt__pacer_credit_after(t->assist_credit, take * bpw + 1);
            continue;
        }
        done = assist_drain(p, need);
        if (done) {
            t->assist_credit = rt__pacer_credit_after(t->assist_credit, done * bpw + 1);
            continue;
        }
        park_assist(p, seq);
    }
    rt__pacer_revise();
}

/* ---- the cycle ------------------------------------------------------------------------ */

/* The cycle in progress (one at a time: C.active). */
typedef struct cycle {
    cycle_times ct;
    int         kind;
    bool        small;        /* run by the allocating thread, world stopped from the start */
    bool        concurrent;   /* the mark runs (or ran) with the world going */
    bool        snapshot;     /* roots copied in pause 1, shaded after it */
    rt_gcwork   work;         /* grey objects found in pause 1 */
} cycle;
static cycle cur;

/* World stopped: flush or drop per-P state at mark start.  keep_caches:
   the mark is concurrent from the start, so each P keeps its spans, their
   free slots premarked; otherwise every cached span is handed back, so no
   P holds one when a mark that began with the world stopped goes on
   concurrently (small cycles over their budget), and the tiny blocks go
   with them. */
static void prepare_ps_for_mark(bool keep_caches) {
    for (rt_p *p = rt__g.all_ps; p; p = p->next_all) {
        rt_mcache *c = &p->mcache;
        rt__gcwork_forget_hint(&p->gcw);   /* belt and braces: the last mark's flush_p forgot it */
        p->wbuf_n = 0;
        p->flush_epoch = rt__flush_epoch;
        if (!keep_caches) { rt__mcache_release_all(c); continue; }
        c->hot.tiny = 0;
        c->hot.tinyoffset = 0;
        rt__mcache_publish(c);
        for (unsigned i = 0; i < RT__NUM_SPAN_CLASSES; i++) {
            rt_span *s = (rt_span *)c->hot.alloc[i];
            if (s != &rt__empty_span) rt__span_premark(s);   /* what this P allocates from it during the mark is black */
        }
    }
    for (rt_thread *t = rt__g.threads; t; t = t->next) t->assist_credit = 0;
}

/* Ask every P to publish its buffers; true if any had grey objects. */
static bool ragged_flush(void) {
    uint64_t before = ld_relaxed(&p_flushes_with_work);
    add_relaxed(&rt__flush_epoch, 1);
    uint64_t epoch = ld_relaxed(&rt__flush_epoch);
    /* A parked assist answers when it wakes; left asleep until its
       timeout, it would hold the flush up. */
    rt__gc_wake_assists();
    pthread_mutex_lock(&rt__g.world_lock);
    for (rt_p *p = rt__g.all_ps; p; p = p->next_all)
        if (!p->in_use) { flush_p(p); st_release(&p->flush_epoch, epoch); }
    pthread_mutex_unlock(&rt__g.world_lock);
    /* Running Ps answer at their next allocation or barrier flush.  One
       scanning in an assist when the wait ends holds grey objects, whether
       it answered before the assist began or not: the mark is not over
       (ending it then left up to 30 ms of marking to the pause).  Other
       silent Ps (a thread computing without allocating) are left to mark
       termination, which flushes every P anyway. */
    uint64_t deadline = rt__nanotime() + 1000000;
    bool busy_assist;
    for (unsigned polls = 0;; polls++) {
        bool all = true;
        busy_assist = false;
        pthread_mutex_lock(&rt__g.world_lock);
        for (rt_p *p = rt__g.all_ps; p; p = p->next_all) {
            if (!p->in_use) continue;
            if (ld_relaxed(&p->assisting)) busy_assist = true;
            if (ld_acquire(&p->flush_epoch) != epoch) all = false;
        }
        pthread_mutex_unlock(&rt__g.world_lock);
        if (all || rt__nanotime() > deadline) break;
        /* Most Ps answer within microseconds, at their next barrier
           store or cache refill; a 50 us nanosleep lasted 100 us or more
           with the kernel's timer slack, and all that time the barrier
           stayed on and the heap grew black.  The workers are idle now,
           so polling costs no marking; yielding leaves the CPU to one
           that wakes. */
        if (polls < 64) { sched_yield(); continue; }
        struct timespec ts = { 0, 50000 };
        nanosleep(&ts, NULL);
    }
    /* The markers must still be quiet: a worker woken during the wait by
       work an assist published before `before` was read takes it off the
       global list and scans it privately.  Ending the mark then left that
       worker's whole frontier (up to 85% of a gcbench cycle) to the
       mark-termination pause: 3-17 ms. */
    return busy_assist || ld_relaxed(&p_flushes_with_work) != before || !rt__work_quiescent();
}

/* Go's gcMarkDone, the check: with every worker idle and nothing queued,
   is a grey object left in any P?  Called by whoever claimed the check
   (gc/work.c), one at a time. */
bool rt__gc_mark_is_over(void) { return !ragged_flush(); }

/* 1-2. Sweep termination, then mark start with the world stopped. */
static void mark_start(cycle *cy) {
    cycle_times *ct = &cy->ct;
    ct->goal = rt__gc_goal;
    rt__sweep_finish();
    ct->tsweep = rt__nanotime();
    /* Pauses count from the request to stop, as Go's: the time threads
       take to reach a safepoint is part of what the program feels. */
    ct->t0 = rt__nanotime();
    rt__limiter_update(ct->t0, 0, false);
    rt__stop_the_world("gc mark start");
    ct->stopped0 = rt__nanotime();
    ct->heap0 = ld_relaxed(&rt__heap.heap_live);
    rt__markers_reset_stats();
    st_relaxed(&C.assist_ns, 0);
    rt__pacer_start_cycle();
    prepare_ps_for_mark(cy->concurrent);
    cy->snapshot = cy->concurrent && !rt__cfg.invalidptr;
    if (cy->snapshot) {
        rt__roots_snapshot(&cy->work);
    } else {
        rt__roots_scan(&cy->work);
        rt__stacks_scan(&cy->work);
    }
    if (!cy->concurrent) rt__specials_mark_roots(&cy->work);   /* special records, queued finalizers/cleanups */
    /* No broadcast: a thread that asked for this cycle waits for mark
       start and a running world (WAIT_AS_STOPPED), so the restart's
       broadcast wakes it; woken here it could take this thread's CPU
       inside the pause. */
    pthread_mutex_lock(&rt__g.world_lock);
    C.started++;
    pthread_mutex_unlock(&rt__g.world_lock);
}

/* 3a. The end of pause 1 when the mark goes on concurrently: barrier on,
   allocation black, the grey objects found so far published. */
static void restart_marking(cycle *cy) {
    st_relaxed(&rt__gc_phase, RT_PHASE_MARK);
    __atomic_fetch_or(&rt__flags.word, RT__FLAG_WB, __ATOMIC_SEQ_CST);
    rt__gcwork_dispose(&cy->work);
    rt__markstats_add(&cy->work);
    cy->ct.t1 = rt__nanotime();
    rt__start_the_world();
}

/* The mark is over: wait for the workers to leave it, then stop the
   world for mark termination. */
static void stop_for_termination(cycle *cy) {
    cycle_times *ct = &cy->ct;
    rt__markers_concurrent_end();
    ct->t2 = rt__nanotime();
    rt__limiter_update(ct->t2, 0, true);
    rt__stop_the_world("gc mark termination");
    ct->stopped2 = rt__nanotime();
    st_relaxed(&rt__gc_phase, RT_PHASE_MARKTERM);
}

/* 3b. Concurrent mark, until the workers are idle with nothing queued
   and a ragged flush finds no grey object in any P; then the stop for
   mark termination.  Each round needs the workers to run dry first, and
   the barrier only adds objects that were live at mark start, so this
   ends.  The check runs on the last worker to run out of work (gc/work.c)
   or, when the workers went quiet napping, on the driver.  Returns false
   if a worker ended the mark: that worker runs mark termination and
   finishes the cycle (rt__gc_end_mark_on_worker), and the driver is done
   with it. */
static bool mark_concurrently(cycle *cy) {
    cycle_times *ct = &cy->ct;
    /* Wake the workers only now: woken inside the pause, one of them
       could preempt the stopper on its CPU and stretch the pause by a
       scheduler slice (1.5-2.3 ms measured in gcbench). */
    rt__markers_concurrent_begin();
    rt__limiter_update(ct->t1, ct->t1 - ct->t0, false);
    /* The root values copied in the pause, then special records and
       queued finalizers/cleanups (unless pause 1 marked them), shaded
       now with the world running (gc/roots.c and gc/specials.c: why it
       is safe). */
    rt_gcwork sp = { 0 };
    if (cy->snapshot) rt__roots_shade_snapshot(&sp);
    if (!cy->small) rt__specials_mark_roots(&sp);
    rt__gcwork_dispose(&sp);
    rt__markstats_add(&sp);
    rt__work_leave();
    while (!rt__work_wait_end(10000000)) rt__limiter_update(rt__nanotime(), 0, true);
    if (rt__work_ended_by() != 0) return false;
    stop_for_termination(cy);
    return true;
}

/* 4-5. Mark termination, world stopped: nothing grey may remain anywhere;
   then the sweep is set up and the world restarts. */
static void mark_termination(cycle *cy) {
    cycle_times *ct = &cy->ct;
    if (!cy->concurrent) ct->t1 = ct->t2 = ct->stopped2 = rt__nanotime();   /* one pause: 1 to 4 */
    ct->heap1 = ld_relaxed(&rt__heap.heap_live);
    rt_gcwork last = { 0 };
    for (rt_p *p = rt__g.all_ps; p; p = p->next_all) {
        flush_p(p);
        rt__mcache_publish(&p->mcache);   /* for checkmark and the verifier */
    }
    if (!cy->concurrent) last = cy->work;
    ct->flushed2 = rt__nanotime();
    uint64_t work_before_drain = rt__markstats.scan_work;
    rt__markers_stw_drain(&last);
    ct->drained2 = rt__nanotime();
    ct->drain2_work = rt__markstats.scan_work - work_before_drain;
    if (rt__cfg.gccheckmark) rt__checkmark();
    if (rt__cfg.checkfinalizers) rt__specials_check_finalizers();
    st_relaxed(&rt__gc_phase, RT_PHASE_OFF);
    __atomic_fetch_and(&rt__flags.word, ~(RT__FLAG_WB | RT__FLAG_SLOWALLOC), __ATOMIC_SEQ_CST);
    if (rt__cfg.gcstress) __atomic_fetch_or(&rt__flags.word, RT__FLAG_SLOWALLOC, __ATOMIC_SEQ_CST);
    rt__procs_flush_and_retire();   /* hands every P's cached spans back, retires idle extras */
    ct->marked = rt__markstats.bytes_marked;
    rt__pacer.scan_work = rt__markstats.scan_work;   /* the exact total, for cons/mark */
    rt__pacer.last_heap_scan = rt__markstats.scan_work;
    /* cons/mark reads heap_live as the mark left it: before the reset. */
    if (cy->concurrent) rt__pacer_end_cycle(ct->t2 - ct->t1, C.assist_ns, rt__markstats.idle_ns);
    st_release(&rt__heap.sweepgen, rt__heap.sweepgen + 2);
    st_relaxed(&rt__heap.heap_marked, ct->marked);
    st_relaxed(&rt__heap.heap_live, ct->marked);
    rt__pacer_commit(ct->marked, rt__markstats.bytes_black);
    if (rt__cfg.verify) rt__verify_heap("after mark");
    uint64_t inuse = (uint64_t)ld_relaxed(&rt__heap.pages_inuse_spans) * RT_PAGE_SIZE;   /* before any sweep */
    rt__sweep_begin_cycle(cy->kind != GC_FORCED);   /* rt_gc() returns every empty span's pages */
    if (rt__cfg.gcstoptheworld >= 2) rt__sweep_finish();
    else rt__sweep_pace(rt__gc_trigger > ct->marked ? rt__gc_trigger - ct->marked : 0);
    ct->t3 = rt__nanotime();

    uint64_t pause = (ct->t1 - ct->t0) + (ct->t3 - ct->t2);
    rt__gc_num++;
    if (cy->kind == GC_FORCED) C.num_forced++;
    C.pause_ns[(rt__gc_num + 255) % 256] = pause;
    C.pause_total_ns += pause;
    C.last_gc_unix_ns = unix_ns();
    /* Go's accounting: pauses count for every P; the drain inside a pause
       is part of that, so only work done while the world ran is added. */
    C.gc_cpu_ns += pause * (uint64_t)rt__procs() + C.assist_ns + rt__markstats.dedicated_ns +
                   rt__markstats.fractional_ns;
    rt__start_the_world();
    rt__limiter_update(rt__nanotime(), cy->concurrent ? ct->t3 - ct->t2 : ct->t3 - ct->t0, false);
    rt__scavenger_wake_sampled(rt__gc_goal, inuse);   /* wakes a thread if it has work: not inside the pause */
    /* A small heap is swept by the allocating threads as they take spans
       and at the next sweep termination: waking the sweeper, a kernel
       round trip per cycle, cost more than the sweeping it would take
       over. */
    if (!cy->small) rt__sweeper_wake();
    if (rt__cfg.gctrace) trace_line(ct, cy->kind);
    if (rt__cfg.gctrace > 1)   /* like GODEBUG=gcpacertrace=1 */
        fprintf(stderr, "pacer: %s; stopping took %.3g+%.3g ms; mark termination: flush %.3g ms, "
                "drain %.3g ms (%llu B of scan work), the rest %.3g ms; "
                "requested at %llu B, mark start %.3g ms later (sweep termination %.3g ms) at %llu B; "
                "marked %llu B of which allocated black %llu B; scan work %llu B, assist ratio %.3g work/B, "
                "cons/mark %.3g, next goal %llu B, trigger %llu B\n",
                !cy->small ? "concurrent cycle" : cy->concurrent ? "small cycle, went concurrent" : "small cycle",
                (double)(ct->stopped0 - ct->t0) / 1e6, (double)(ct->stopped2 - ct->t2) / 1e6,
                (double)(ct->flushed2 - ct->stopped2) / 1e6, (double)(ct->drained2 - ct->flushed2) / 1e6,
                (unsigned long long)ct->drain2_work, (double)(ct->t3 - ct->drained2) / 1e6,
                (unsigned long long)C.requested_heap, (double)(ct->t0 - C.requested_ns) / 1e6,
                (double)(ct->tsweep - C.requested_ns) / 1e6, (unsigned long long)ct->heap0,
                (unsigned long long)ct->marked, (unsigned long long)rt__markstats.bytes_black,
                (unsigned long long)rt__pacer.scan_work, rt__pacer.assist_work_per_byte, rt__pacer.cons_mark,
                (unsigned long long)rt__pacer.goal, (unsigned long long)rt__pacer.trigger);
    if (rt__cfg.gctrace > 1) {
        rt_limiter_stats ls;
        rt__limiter_stats(&ls);
        fprintf(stderr, "limiter: bucket %.0f%% full%s, limited %.1f ms in all, %llu times\n",
                100.0 * (double)ls.fill_ns / (double)ls.capacity_ns, ls.limiting ? " (limiting)" : "",
                (double)ls.limited_ns / 1e6, (unsigned long long)ls.enabled_count);
    }
}

/* A whole cycle on the driver thread; false if a mark worker took over
   its end (mark_concurrently). */
static bool run_cycle(int kind) {
    cycle *cy = &cur;
    memset(cy, 0, sizeof *cy);
    cy->kind = kind;
    cy->concurrent = rt__cfg.gcstoptheworld == 0;
    mark_start(cy);
    if (cy->concurrent) {
        restart_marking(cy);
        if (!mark_concurrently(cy)) return false;
    }
    mark_termination(cy);
    return true;
}

/* A small cycle, run by the allocating thread itself (Go has none; see
   docs/design.md).  When the last mark had little to scan, a whole cycle
   fits in one short pause: the mark runs with the world stopped on this
   thread alone, with no barrier and no thread to wake.  If it has not
   finished after `budget` bytes of scan work (the heap grew live), the
   world restarts with the barrier on and the driver finishes the mark
   concurrently, as if the pause had been an ordinary mark start that
   scanned the roots and some of the heap.  Returns false in that case
   (the caller hands the cycle over).
   Why that is still the same mark: at restart no P holds a cached span
   or a tiny block (prepare_ps_for_mark), so everything allocated from
   then on is black, as at any mark start, and the grey objects found so
   far go to the global list. */
static bool run_small_cycle(int kind, uint64_t budget) {
    cycle *cy = &cur;
    memset(cy, 0, sizeof *cy);
    cy->kind = kind;
    cy->small = true;
    add_relaxed(&C.num_small, 1);
    /* This thread is scanned like a stopped one: from here up. */
    rt__capture_context(rt__tls_thread);
    mark_start(cy);
    if (rt__drain_solo(&cy->work, budget)) {
        mark_termination(cy);
        return true;
    }
    cy->concurrent = true;
    add_relaxed(&C.num_small_concurrent, 1);
    restart_marking(cy);
    return false;
}

/* world_lock held: the cycle is over; wake whoever waits for it. */
static void finish_locked(void) {
    C.completed++;
    C.active = C.on_mutator = false;
    pthread_cond_broadcast(&rt__g.world_cond);
}

/* On the mark worker whose check ended a concurrent mark (gc/mark.c),
   once it has left the drain: the rest of the cycle, as the driver would
   run it.  The driver waits meanwhile for the next request. */
void rt__gc_end_mark_on_worker(void) {
    stop_for_termination(&cur);
    mark_termination(&cur);
    pthread_mutex_lock(&rt__g.world_lock);
    finish_locked();
    pthread_mutex_unlock(&rt__g.world_lock);
    rt__work_wake_driver();
}

/* world_lock held (and again on return): run a small cycle on this
   thread; the driver takes it over if it went concurrent. */
static void small_cycle_locked(int kind, uint64_t budget) {
    claim_locked(kind);
    C.on_mutator = true;
    pthread_mutex_unlock(&rt__g.world_lock);
    st_relaxed(&rt__gc_pending, 0);
    bool done = run_small_cycle(kind, budget);
    pthread_mutex_lock(&rt__g.world_lock);
    if (done) {
        finish_locked();
    } else {
        C.handoff = true;
        wake_driver_locked();
    }
}

static void *driver_main(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "rtgc-driver");   /* for top, perf and gdb */
    pthread_mutex_lock(&rt__g.world_lock);
    for (;;) {
        while (!C.quit && !C.handoff && !(C.active && !C.on_mutator && C.started == C.completed))
            pthread_cond_wait(&C.driver_cond, &rt__g.world_lock);
        if (C.quit) break;
        bool handoff = C.handoff;
        int kind = C.kind;
        C.handoff = false;
        pthread_mutex_unlock(&rt__g.world_lock);
        st_relaxed(&rt__gc_pending, 0);
        bool finished_here;
        if (handoff) {
            finished_here = mark_concurrently(&cur);
            if (finished_here) mark_termination(&cur);
        } else {
            finished_here = run_cycle(kind);
        }
        pthread_mutex_lock(&rt__g.world_lock);
        if (finished_here) finish_locked();
    }
    pthread_mutex_unlock(&rt__g.world_lock);
    return NULL;
}

/* Under gcstress, cycles take turns among the three ways a mark can run:
   concurrent from the start, small (over in one pause), and small with
   no budget (the world restarts right after the roots are scanned, so
   the rest of the mark runs concurrently).  So one stress run covers each
   path. */
static bool stress_turn_is_small(uint64_t *budget) {   /* world_lock held */
    static uint64_t turn;
    uint64_t t = turn++ % 3;
    *budget = t == 1 ? rt__small_cycle_budget() : 0;
    return t != 0 && rt__cfg.smallgc > 0 && rt__cfg.gcstoptheworld == 0;
}

/* world_lock held: sleep until cycle `want` completes, counted among the
   threads whose CPU the mark may use for as long as it runs
   (rt__gc_cycle_waiters). */
static void wait_for_cycle_locked(uint64_t want) {
    add_relaxed(&C.cycle_waiters, 1);
    WAIT_AS_STOPPED(C.completed >= want);
    add_relaxed(&C.cycle_waiters, -1);
}

int rt__gc_cycle_waiters(void) { return ld_relaxed(&C.cycle_waiters); }

void rt__gc_maybe_start(void) {
    pthread_mutex_lock(&rt__g.world_lock);
    if (rt__cfg.gcstress) {
        /* A whole cycle at this allocation, so every Nth allocation is a
           collection point; other threads keep running during its mark. */
        WAIT_AS_STOPPED(!C.active);
        uint64_t want = C.completed + 1;
        uint64_t budget;
        if (stress_turn_is_small(&budget)) small_cycle_locked(GC_STRESS, budget);
        else request_locked(GC_STRESS);
        wait_for_cycle_locked(want);
    } else if (!C.active && ld_relaxed(&rt__heap.heap_live) >= ld_relaxed(&rt__gc_trigger)) {
        if (ld_relaxed(&rt__pacer.small)) {
            small_cycle_locked(GC_HEAP, rt__small_cycle_budget());
        } else {
            request_locked(GC_HEAP);
            /* Go's gcStart runs sweep termination and the first stop on the
               allocating goroutine.  Here the driver thread does, so wait for
               it to pass mark start: otherwise the heap keeps growing while the
               driver is woken and finishes the sweep (measured: 11 MB past a
               20 MB trigger in binary-trees), the mark starts over its goal and
               the assists stall this thread for the whole mark instead. */
            uint64_t started = C.started;
            WAIT_AS_STOPPED(C.started > started || !C.active);
        }
    }
    st_relaxed(&rt__gc_pending, 0);
    pthread_mutex_unlock(&rt__g.world_lock);
}

/* Wait for a cycle in progress (rt_set_gc_percent(RT_GC_OFF), as Go). */
void rt__gc_wait_idle(void) {
    pthread_mutex_lock(&rt__g.world_lock);
    WAIT_AS_STOPPED(!C.active);
    pthread_mutex_unlock(&rt__g.world_lock);
}

void rt_gc(void) {
    if (!rt__g.initialized) rt__misuse("rt_gc", "rtgc is not initialized; call rt_init() first");
    if (rt__tls_thread && !rt__tls_mcache)
        rt__misuse("rt_gc", "called between rt_enter_blocking() and rt_exit_blocking(); call rt_exit_blocking() first");
    pthread_mutex_lock(&rt__g.world_lock);
    WAIT_AS_STOPPED(!C.active);
    request_locked(GC_FORCED);
    wait_for_cycle_locked(C.completed + 1);
    pthread_mutex_unlock(&rt__g.world_lock);
    rt__sweep_finish();
}

void rt__gc_small_stats(uint64_t *small, uint64_t *went_concurrent) {
    *small = ld_relaxed(&C.num_small);
    *went_concurrent = ld_relaxed(&C.num_small_concurrent);
}

void rt__gc_fill_stats(rt_mem_stats *out) {
    out->num_gc = rt__gc_num;
    out->num_forced_gc = C.num_forced;
    out->pause_total_ns = C.pause_total_ns;
    out->last_gc_ns = C.last_gc_unix_ns;
    memcpy(out->pause_ns, C.pause_ns, sizeof out->pause_ns);
    out->next_gc = rt__gc_goal == UINT64_MAX ? 0 : rt__gc_goal;
    out->gc_cpu_fraction = cpu_fraction();
}

void rt__gc_init(void) {
    memset(&C, 0, sizeof C);
    pthread_cond_init(&C.driver_cond, NULL);
    rt__gc_num = 0;
    rt__gc_pending = 0;
    rt__gc_phase = RT_PHASE_OFF;
    memset(&rt__pacer, 0, sizeof rt__pacer);
    rt__pacer_commit(0, 0);
    rt__limiter_reset(rt__nanotime());
    if (rt__cfg.gcstress) __atomic_fetch_or(&rt__flags.word, RT__FLAG_SLOWALLOC, __ATOMIC_RELAXED);
    rt__specials_init();
    rt__markers_start(rt__cfg.maxprocs);
    rt__sweeper_start();
    rt__scavenger_start();
}

void rt__gc_shutdown(void) {
    rt__specials_stop();   /* the cleanup thread, while the collector can still serve it */
    pthread_mutex_lock(&rt__g.world_lock);
    WAIT_AS_STOPPED(!C.active);
    C.quit = true;
    pthread_cond_signal(&C.driver_cond);
    pthread_mutex_unlock(&rt__g.world_lock);
    if (C.driver_running) pthread_join(C.driver, NULL);
    C.driver_running = false;
    rt__scavenger_stop();
    rt__sweeper_stop();
    rt__markers_stop();
    rt__work_destroy();
    rt__roots_free_all();
    rt__specials_free_all();
}
