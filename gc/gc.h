/* gc/gc.h -- internals shared by the collector's files: work buffers
 * (gc/work.c), scanning and mark workers (gc/mark.c), the write barrier
 * (gc/barrier.c), roots (gc/roots.c), sweeping (gc/sweep.c), pacing
 * (gc/pacer.c), the CPU limiter (gc/limiter.c), checkmark (gc/checkmark.c), verification (gc/verify.c)
 * and the cycle driver (gc/gc.c). */
#ifndef RT_GC_H
#define RT_GC_H

#include "internal.h"

/* ---- work buffers (gc/work.c) ---------------------------------------------
 * Items are object addresses, or for objects larger than RT_OBLET_BYTES
 * the start of a 128 KiB "oblet" inside one. */
#define RT_OBLET_BYTES   ((uintptr_t)128 << 10)

void        rt__work_destroy(void);
size_t      rt__work_chunks(void);              /* 64 KiB chunks of buffers made so far */
/* Start a drain by nmarkers workers.  With the world stopped (stw), the
   drain ends when every worker is waiting and the global list is empty.
   Concurrently, workers wait for more work until rt__work_finish. */
void        rt__work_begin(bool stw);
bool        rt__work_join(bool stw);            /* false: that drain is already over, or of the other kind */
void        rt__work_leave(void);               /* a joined non-worker has published all it had */
void        rt__work_finish(void);
/* The end of a concurrent drain (gc/work.c's banner), for the driver:
   wait up to timeout_ns for the drain to end, running the end-of-mark
   check itself if the drain goes quiescent with nobody checking; true if
   the drain is over (rt__work_ended_by: the worker whose check ended it,
   0 if the driver's did).  Returns early when a check finds grey
   objects. */
bool        rt__work_wait_end(uint64_t timeout_ns);
int         rt__work_ended_by(void);
void        rt__work_wake_driver(void);          /* a worker ended the mark and the cycle is over */
bool        rt__gc_mark_is_over(void);           /* gc/gc.c: the check itself, world running */
void        rt__gcwork_put_slow(rt_gcwork *w, uintptr_t item);
uintptr_t   rt__gcwork_get(rt_gcwork *w);       /* blocks; 0 when the drain is over */
uintptr_t   rt__gcwork_tryget_slow(rt_gcwork *w);
extern int  rt__work_nwaiting;
extern int  rt__assists_parked;   /* gc.c: assists parked in debt, with no credit or work to take */
/* Inline twins for the common case, which touches only w's primary buffer;
   the slow paths swap and publish buffers and share with waiting markers. */
static inline void rt__gcwork_put(rt_gcwork *w, uintptr_t item) {
    rt_workbuf *b = w->primary;
    if (RT_LIKELY(b && b->n < RT_WORKBUF_ITEMS)) b->item[b->n++] = item;
    else rt__gcwork_put_slow(w, item);
}
static inline uintptr_t rt__gcwork_tryget(rt_gcwork *w) {   /* never blocks; 0 if no work at hand */
    rt_workbuf *b = w->primary;
    if (RT_LIKELY(b && b->n)) return b->item[--b->n];
    return rt__gcwork_tryget_slow(w);
}
void        rt__gcwork_dispose(rt_gcwork *w);   /* give leftovers to the global list; forgets the hint */
static inline void rt__gcwork_forget_hint(rt_gcwork *w) {   /* the span may be freed from here on */
    w->hint = NULL;
    w->hint_base = w->hint_bytes = 0;
    memset(w->seen_marked, 0, sizeof w->seen_marked);
}
/* Go's gcw.balance: when the global list is empty and a marker waits,
   or an assist is parked, publish part of w (its secondary buffer, or the
   older half of a primary holding at least 8 items) so nobody is left
   waiting while w holds plenty.  Drains call it after every object, the
   barrier after every flush.  (An assist with nothing to scan used to
   park until the worker holding the frontier earned it credit: 40-75 ms
   per binary_trees.lox run, 2-38 ms once the worker shares.) */
#define RT_BALANCE_MIN_ITEMS 8          /* a primary buffer this full gives half away */
void        rt__gcwork_balance_slow(rt_gcwork *w);
static inline void rt__gcwork_balance(rt_gcwork *w) {
    if (RT_UNLIKELY((ld_relaxed(&rt__work_nwaiting) | ld_relaxed(&rt__assists_parked)) > 0) &&
        ((w->secondary && w->secondary->n) || (w->primary && w->primary->n >= RT_BALANCE_MIN_ITEMS)))
        rt__gcwork_balance_slow(w);
}
bool        rt__gcwork_empty(const rt_gcwork *w);
bool        rt__work_global_empty(void);
bool        rt__work_quiescent(void);           /* every marker waits, global list empty: now, no wait */
void        rt__work_nap(uint64_t ns);          /* a worker off its CPU share sleeps, counted as waiting */

/* ---- marking (gc/mark.c) ----------------------------------------------------- */
struct rt_visitor {
    rt_gcwork     *w;
    uintptr_t      obj;          /* object being scanned (0 for roots), for reports */
    const rt_type *type;
    const char    *root_name;    /* root being scanned, for reports */
    void         (*edge)(struct rt_visitor *, uintptr_t, bool); /* checkmark's visitor, else NULL */
    void          *ctx;
};

/* Grey the object that p points into, if any.  precise: p came from a
   pointer slot, so a pointer into a free slot is a bug (invalidptr). */
void rt__shade(rt_gcwork *w, uintptr_t p, bool precise, uintptr_t from_obj, uintptr_t from_slot);
void rt__shade_all(rt_gcwork *w, const uintptr_t *vals, unsigned n);   /* ambiguous values, as rt__shade */
void rt__scan_range(rt_gcwork *w, uintptr_t lo, uintptr_t hi, bool precise, uintptr_t from_obj);
/* Enumerate the pointer slots of the object at base (for checkmark). */
void rt__object_edges(uintptr_t base, rt_visitor *v);
void rt__visit_range(rt_visitor *v, uintptr_t lo, uintptr_t hi, bool precise);
void rt__drain(rt_gcwork *w);
int64_t rt__drain_n(rt_gcwork *w, int64_t work);  /* assists: scan about `work` bytes */

/* Mark workers: a pool of RTMAXPROCS threads.  During a concurrent mark
   each has a role (dedicated, fractional, idle); a drain with the world
   stopped uses them all. */
void rt__markers_start(int n);
void rt__markers_stop(void);
void rt__markers_concurrent_begin(void);         /* the caller is a marker until rt__work_leave */
void rt__markers_concurrent_end(void);           /* returns once every worker parked */
void rt__gc_end_mark_on_worker(void);            /* gc/gc.c: the worker that ended the mark runs termination */
uint64_t rt__markers_stw_drain(rt_gcwork *self_work);
bool     rt__drain_solo(rt_gcwork *w, uint64_t work);   /* world stopped, this thread: true if no grey object is left */
void rt__markers_reset_stats(void);
typedef struct rt_markstats {
    uint64_t bytes_marked, objects, scan_work;
    uint64_t bytes_black;         /* of bytes_marked, those allocated during the mark (gctrace=2) */
    uint64_t dedicated_ns, fractional_ns, idle_ns, stw_ns;
} rt_markstats;
extern rt_markstats rt__markstats;
void rt__markstats_add(const rt_gcwork *w);

/* ---- write barrier (gc/barrier.c) --------------------------------------------- */
void rt__wbuf_flush(rt_p *p);                  /* shade a P's buffered pointers */
void rt__gc_answer_flush(rt_p *p);             /* publish a P's buffers if a ragged flush asks */
extern uint64_t rt__flush_epoch;               /* bumped by each ragged flush; a P that answered holds it */

/* ---- roots (gc/roots.c) -------------------------------------------------------- */
void     rt__roots_scan(rt_gcwork *w);          /* registered roots */
void     rt__stacks_scan(rt_gcwork *w);         /* attached threads, world stopped */
/* Both of the above, copying the candidate values (world stopped) to shade
   them once the world runs again (gc/roots.c: why that is the same mark). */
void     rt__roots_snapshot(rt_gcwork *w);
void     rt__roots_shade_snapshot(rt_gcwork *w);
void     rt__roots_visit(rt_visitor *v);        /* checkmark: every root through v */
void     rt__roots_free_all(void);
extern uint64_t rt__last_stack_scan, rt__last_globals_scan;

/* ---- sweeping (gc/sweep.c) ------------------------------------------------------- */
void rt__sweep_begin_cycle(bool keep_empty_spans);   /* world stopped, after the sweepgen flip */
void rt__sweep_finish(void);                   /* sweep everything; wait for other sweepers */
void rt__sweeper_start(void);
void rt__sweeper_stop(void);
void rt__sweeper_wake(void);
void rt__sweep_pace(uint64_t heap_distance);   /* proportional sweep for this cycle */

/* ---- pacing (gc/pacer.c) ---------------------------------------------------------- */
typedef struct rt_pacer {
    uint64_t goal, trigger, triggered_at, heap_marked, last_heap_scan;
    uint64_t heap_black;          /* of heap_marked, the bytes allocated during that mark */
    uint64_t heap_scan;           /* scannable heap estimate for this cycle */
    double   cons_mark, cons_mark_hist[4];
    double   assist_work_per_byte, assist_bytes_per_work;
    double   assist_goal;          /* the heap goal those aim at (extrapolated, raised when passed) */
    int64_t  bg_credit;           /* scan work done by workers not yet claimed by assists */
    uint64_t scan_work;           /* scan work done this cycle */
    uint64_t mark_start_ns;
    bool     small;               /* the next cycle is a small one (atomic) */
} rt_pacer;
extern rt_pacer rt__pacer;
uint64_t rt__pacer_goal(uint64_t marked, uint64_t black);
uint64_t rt__small_cycle_budget(void);         /* scan work a small cycle may do in its pause */
void     rt__pacer_commit(uint64_t marked, uint64_t black);
void     rt__pacer_start_cycle(void);
void     rt__pacer_revise(void);
int64_t  rt__pacer_credit_after(int64_t credit, double granted);   /* an assist's credit after a grant */
void     rt__pacer_end_cycle(uint64_t mark_ns, uint64_t assist_ns, uint64_t idle_ns);
extern uint64_t rt__gc_goal;

/* ---- the GC CPU limiter (gc/limiter.c) ----------------------------------------------
 * Driven by the cycle driver only; assists and the scavenger read
 * rt__gc_limiting (runtime/internal.h). */
extern uint64_t rt__assist_total_ns;             /* every assist ever, atomic */
extern bool     rt__limiter_enabled;             /* tests: false never limits */
void rt__limiter_reset(uint64_t now);
/* Account the time since the last update: stw_ns of it with the world
   stopped, the rest concurrent marking (marking) or not. */
void rt__limiter_update(uint64_t now, uint64_t stw_ns, bool marking);
bool rt__limiter_accumulate(uint64_t gc_ns, uint64_t mutator_ns);
typedef struct rt_limiter_stats {
    uint64_t fill_ns, capacity_ns, overflow_ns, limited_ns, enabled_count;
    bool     limiting;
} rt_limiter_stats;
void rt__limiter_stats(rt_limiter_stats *out);

/* ---- checkmark and verification ---------------------------------------------------- */
void rt__checkmark(void);                      /* world stopped, after a concurrent mark */
void rt__verify_heap(const char *when);

/* ---- weak handles, cleanups, finalizers (gc/specials.c) ------------------------------ */
void rt__specials_init(void);                  /* rt__gc_init */
void rt__specials_stop(void);                  /* start of rt__gc_shutdown: stop the cleanup thread */
void rt__specials_free_all(void);              /* end of rt__gc_shutdown */
void rt__specials_sweep(rt_span *s);           /* rt__sweep_span, before the mark bits are used */
void rt__specials_mark_roots(rt_gcwork *w);    /* records and queued entries are roots */
void rt__specials_visit_roots(rt_visitor *v);  /* the same, for checkmark */
void rt__specials_check_finalizers(void);      /* RTDEBUG=checkfinalizers, world stopped after the mark */
void rt__specials_check_list(uint64_t spans_with_records);   /* the verifier counted them */
/* Sweep s now if this cycle has not (Go's ensureSwept), or wait for the
   sweeper that owns it (gc/sweep.c).  Returns at once if s is swept. */
void rt__span_ensure_swept(rt_span *s);
/* Tests: wait until every queued cleanup and finalizer has run (the caller
   holds a P; it waits in a blocking region). */
void rt__cleanups_wait(void);
typedef struct rt_specials_stats {
    uint64_t weak, finalizers, cleanups;       /* records attached to objects */
    uint64_t queued, ran;                      /* cleanups + finalizers ever queued / run */
} rt_specials_stats;
void rt__specials_stats(rt_specials_stats *out);

/* ---- cycle statistics (gc/gc.c) ---------------------------------------------------- */
extern uint64_t rt__gc_num;
/* Small cycles run so far, and those of them that went on concurrently. */
void rt__gc_small_stats(uint64_t *small, uint64_t *went_concurrent);
int  rt__gc_cycle_waiters(void);   /* threads asleep until the cycle completes: their CPUs are free for marking */

#endif
