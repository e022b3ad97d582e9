/* gc/gc.h -- internals shared by the collector's files: work buffers and
 * per-marker state (gc/work.c), scanning (gc/mark.c), roots (gc/roots.c),
 * sweeping (gc/sweep.c), pacing (gc/pacer.c), verification (gc/verify.c)
 * and the cycle driver (gc/gc.c). */
#ifndef RT_GC_H
#define RT_GC_H

#include "internal.h"

/* ---- work buffers (gc/work.c) ---------------------------------------------
 * Grey objects wait in 2 KiB buffers.  Each marker owns two (primary and
 * secondary, one buffer of hysteresis); full buffers go to a global list
 * that idle markers take from.  Items are object addresses, or for objects
 * larger than RT_OBLET_BYTES the start of a 128 KiB "oblet" inside one. */
#define RT_WORKBUF_ITEMS 253
#define RT_OBLET_BYTES   ((uintptr_t)128 << 10)

typedef struct rt_workbuf {
    struct rt_workbuf *next;
    size_t             n;
    uintptr_t          item[RT_WORKBUF_ITEMS];
} rt_workbuf;

typedef struct rt_gcwork {
    rt_workbuf *primary, *secondary;
    uint64_t    bytes_marked;     /* slot bytes of objects this marker blackened */
    uint64_t    scan_work;        /* bytes scanned */
    uint64_t    objects_marked;
    int         id;
} rt_gcwork;

void        rt__work_init(void);
void        rt__work_destroy(void);
void        rt__work_begin(int nmarkers);
void        rt__gcwork_put(rt_gcwork *w, uintptr_t item);
uintptr_t   rt__gcwork_get(rt_gcwork *w);       /* 0 when the whole mark is done */
void        rt__gcwork_dispose(rt_gcwork *w);   /* give leftovers to the global list */
bool        rt__work_global_empty(void);

/* ---- marking (gc/mark.c) ----------------------------------------------------- */
enum { RT_VISIT_PRECISE = 0, RT_VISIT_AMBIGUOUS = 1 };

struct rt_visitor {
    rt_gcwork     *w;
    uintptr_t      obj;          /* object being scanned (0 for roots), for reports */
    const rt_type *type;
    const char    *root_name;    /* root being scanned, for reports */
};

/* Grey the object that p points into, if any.  precise: p came from a
   pointer slot, so a pointer into a free slot is a bug (invalidptr). */
void rt__shade(rt_gcwork *w, uintptr_t p, bool precise, uintptr_t from_obj, uintptr_t from_slot);
void rt__scan_range(rt_gcwork *w, uintptr_t lo, uintptr_t hi, bool precise, uintptr_t from_obj);
void rt__drain(rt_gcwork *w);
/* Mark everything reachable with the world stopped, using nmarkers threads
   (this one plus helpers).  Returns bytes marked. */
uint64_t rt__mark_stw(int nmarkers);
void rt__markers_start(int n);
void rt__markers_stop(void);

/* ---- roots (gc/roots.c) -------------------------------------------------------- */
void     rt__roots_scan(rt_gcwork *w);          /* registered roots */
void     rt__stacks_scan(rt_gcwork *w);         /* attached threads, world stopped */
void     rt__roots_free_all(void);
extern uint64_t rt__last_stack_scan, rt__last_globals_scan;

/* ---- sweeping (gc/sweep.c) ------------------------------------------------------- */
void rt__sweep_begin_cycle(void);              /* world stopped, after the sweepgen flip */
void rt__sweep_finish(void);                   /* sweep everything; wait for other sweepers */
void rt__sweeper_start(void);
void rt__sweeper_stop(void);
void rt__sweeper_wake(void);

/* ---- pacing (gc/pacer.c) ---------------------------------------------------------- */
uint64_t rt__pacer_goal(uint64_t marked);
void     rt__pacer_commit(uint64_t marked);
extern uint64_t rt__gc_goal;

/* ---- verification (gc/verify.c) --------------------------------------------------- */
void rt__verify_heap(const char *when);

/* ---- cycle statistics (gc/gc.c) ---------------------------------------------------- */
extern uint64_t rt__gc_num;

#endif
