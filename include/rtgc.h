/* rtgc.h -- the public API of rtgc, a garbage-collected runtime core.
 *
 * A VM links librtgc, attaches its threads, registers its roots, allocates
 * with rt_alloc and stores heap pointers with rt_store.  Every name here is
 * documented with an example in docs/api.md; tuning is in docs/tuning.md.
 *
 * rt_alloc, rt_store and rt_safepoint are real exported functions, and also
 * macros that expand to inline fast paths (see rtgc/inline.h); write
 * (rt_alloc)(n, t) to call the out-of-line function.  rt_memmove_ptrs is a
 * plain function. */
#ifndef RTGC_H
#define RTGC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Lifecycle and configuration ---------------------------------------- */

typedef struct rt_options {
    int     gc_percent;          /* like GOGC; 0 = use default (100); RT_GC_OFF disables */
    int64_t memory_limit;        /* bytes, like GOMEMLIMIT; 0 = no limit */
    int     maxprocs;            /* like GOMAXPROCS; 0 = number of CPUs */
    int     scan_thread_stacks;  /* 0 or 1 (default) = scan attached threads' stacks conservatively;
                                    RT_SCAN_STACKS_OFF = do not (precise roots only) */
    const char *debug;           /* like GODEBUG, e.g. "gctrace=1,gccheckmark=1" */
    int64_t heap_minimum;        /* bytes: the smallest heap goal at RTGC=100 (scaled by RTGC/100,
                                    as Go's heapMinimum); 0 = Go's 4 MiB */
} rt_options;
#define RT_GC_OFF (-1)
#define RT_SCAN_STACKS_OFF (-1)   /* a zeroed rt_options keeps stack scanning on: the safe default */

/* Error codes returned by rt_init and rt_thread_attach. */
#define RT_OK          0
#define RT_EALREADY    1   /* rt_init: already initialized */
#define RT_ENOMEM      2   /* the OS refused the initial reservation */
#define RT_EINVAL      3   /* an option is out of range */

int  rt_init(const rt_options *opts);   /* NULL = defaults; returns 0 or an error code */
void rt_shutdown(void);                 /* frees everything; rt_init may be called again */

/* ---- Threads -------------------------------------------------------------- */

int  rt_thread_attach(void);      /* the calling thread becomes a mutator; takes a P */
void rt_thread_detach(void);
void rt_safepoint(void);          /* inline poll; call in long loops that do not allocate */
void rt_enter_blocking(void);     /* hand the P back around syscalls, sleeps, locks */
void rt_exit_blocking(void);

/* ---- Types ---------------------------------------------------------------- */

typedef struct rt_type rt_type;
typedef struct rt_visitor rt_visitor;

#define RT_NOSCAN ((const rt_type *)0)        /* no pointers: never scanned */
extern const rt_type *const RT_CONSERVATIVE;  /* every word is a candidate pointer */

/* Precise layout: an object of `size` bytes whose pointer slots sit at the
   given byte offsets (each a multiple of sizeof(void*)). */
const rt_type *rt_type_layout(const char *name, size_t size,
                              const size_t *ptr_offsets, size_t n_ptrs);

/* Embedder-traced: the collector calls trace(obj, size, v) and the embedder
   calls rt_visit / rt_visit_ambiguous for each edge (tagged values). */
typedef void (*rt_trace_fn)(void *obj, size_t size, rt_visitor *v);
const rt_type *rt_type_traced(const char *name, rt_trace_fn trace);

void rt_visit(rt_visitor *v, void *ptr);             /* NULL, heap, or non-heap */
void rt_visit_ambiguous(rt_visitor *v, uintptr_t w); /* maybe a pointer */

/* ---- Allocation ----------------------------------------------------------- */

void  *rt_alloc(size_t size, const rt_type *type);          /* zeroed */
void  *rt_alloc_array(const rt_type *elem, size_t count);   /* zeroed */
size_t rt_usable_size(const void *obj);  /* at least the size asked for; from 16 B up,
                                            the slot size less any header */

/* ---- Write barrier -------------------------------------------------------- */

void rt_store(void *slot, void *value);               /* *(void **)slot = value, barriered */
void rt_memmove_ptrs(void *dst, const void *src, size_t bytes);

/* ---- Roots ---------------------------------------------------------------- */

typedef struct rt_root rt_root;
#define RT_ROOT_PRECISE   0
#define RT_ROOT_AMBIGUOUS 1

rt_root *rt_root_add(void *slot);                              /* one pointer slot */
rt_root *rt_root_add_range(void *base, size_t bytes, int kind);
rt_root *rt_root_add_scanner(void (*scan)(rt_visitor *v, void *ctx), void *ctx);
void     rt_root_remove(rt_root *root);

/* ---- Weak pointers, cleanups, finalizers ----------------------------------- */

typedef struct rt_weak rt_weak;
rt_weak *rt_weak_make(void *obj);       /* same handle for the same object */
void    *rt_weak_get(const rt_weak *w); /* the object, or NULL once unreachable */

typedef uint64_t rt_cleanup;
rt_cleanup rt_add_cleanup(void *obj, void (*fn)(void *arg), void *arg);
void       rt_cleanup_stop(rt_cleanup c);

int rt_set_finalizer(void *obj, void (*fn)(void *obj, void *arg), void *arg);

/* ---- Collection control and statistics ------------------------------------ */

void    rt_gc(void);                          /* full cycle; returns when swept */
int     rt_set_gc_percent(int percent);       /* returns the previous value */
int64_t rt_set_memory_limit(int64_t bytes);   /* returns the previous value */
void    rt_free_os_memory(void);              /* rt_gc, then return all free pages */
void    rt_set_oom_handler(void (*fn)(size_t request, void *ctx), void *ctx);

typedef struct rt_mem_stats {
    uint64_t heap_alloc, heap_sys, heap_idle, heap_inuse, heap_released,
             heap_objects, total_alloc, mallocs, frees, next_gc, num_gc,
             num_forced_gc, pause_total_ns, last_gc_ns;
    uint64_t pause_ns[256];                   /* circular, like MemStats.PauseNs */
    double   gc_cpu_fraction;
} rt_mem_stats;
void rt_read_mem_stats(rt_mem_stats *out);

#ifdef __cplusplus
}
#endif

/* Inline fast paths; defines the rt_alloc/rt_store/rt_safepoint macros and
   rt_new(T, type).  Define RTGC_NO_INLINE to call the functions only. */
#ifndef RTGC_NO_INLINE
#include <rtgc/inline.h>
#endif

#endif /* RTGC_H */
