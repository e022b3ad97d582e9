/* rtgc_boehm.c -- the rtgc public API (include/rtgc.h) implemented on Boehm GC.
 *
 * Purpose: a VM written against rtgc (examples/lox) can be linked against
 * Debian's libgc instead, so the two collectors are compared on the same
 * program (bench/run lox).  Build the VM with -DRTGC_NO_INLINE and link this
 * file plus /usr/lib/x86_64-linux-gnu/libgc.a -lpthread -ldl.  A VM built
 * without RTGC_NO_INLINE links too: the inline fast paths' symbols are
 * defined below so that they always fall through to the functions here.
 *
 * How each part maps (and where it differs from rtgc):
 *   rt_init        GC_INIT, GC_allow_register_threads, GC_start_mark_threads
 *                  (parallel marking).  Options and RTGC / RTMEMLIMIT /
 *                  RTMAXPROCS / RTDEBUG are honoured as below.  rt_shutdown
 *                  drops roots and handlers; the Boehm heap itself lives on
 *                  (libgc cannot be torn down), and rt_init may be called again.
 *   gc_percent     GC_set_free_space_divisor(300 / percent), so the default
 *                  100 keeps Boehm's own default divisor 3; RT_GC_OFF (or
 *                  RTGC=off) is GC_disable.  A heuristic, not Go's pacer.
 *   memory_limit   GC_set_max_heap_size: a hard limit, where Go's is soft.
 *   maxprocs       GC_set_markers_count before GC_INIT (marker threads).
 *   RTDEBUG        gctrace=1 sets GC_PRINT_STATS=1 before GC_INIT (Boehm's own
 *                  log format); other keys are accepted and ignored.
 *   threads        rt_thread_attach = GC_register_my_thread; blocking regions
 *                  and safepoints are no-ops (Boehm stops threads by signal).
 *                  Thread stacks are always scanned (scan_thread_stacks = RT_SCAN_STACKS_OFF is
 *                  ignored).
 *   rt_alloc       RT_NOSCAN -> GC_MALLOC_ATOMIC + memset (rtgc zeroes);
 *                  layout and RT_CONSERVATIVE types -> GC_MALLOC, scanned
 *                  conservatively (the layout's offsets are not used);
 *                  traced types -> a custom Boehm object kind whose mark
 *                  procedure calls the embedder's trace function, so tagged
 *                  (NaN-boxed) pointers stay precise.  Such an object carries
 *                  one hidden header word (tag, type index, size) before the
 *                  pointer returned.
 *   rt_store       a plain store (Boehm needs no barrier here).
 *   roots          all three kinds live in a list walked from a
 *                  GC_set_push_other_roots hook (chained to libgc's own hook,
 *                  which pushes thread stacks): slots and ranges with
 *                  GC_push_all_eager (precise ranges are scanned
 *                  conservatively, which is safe), scanners with a visitor
 *                  whose rt_visit pushes each value eagerly.  The list is
 *                  changed under the GC allocation lock, which the hook holds.
 *   weak handles   malloc'd cells holding a disguised pointer registered with
 *                  GC_general_register_disappearing_link; one per object
 *                  (a hash map keyed by the object address, stale entries
 *                  replaced).  Handles are never freed.
 *   cleanups and   one GC_MALLOC'd record per object, registered as its Boehm
 *   finalizers     finalizer (no-order while only cleanups are attached,
 *                  ordered while it has a finalizer); the record holds the
 *                  cleanup list, so cleanup arguments stay reachable.  They
 *                  run on a dedicated thread (GC_set_finalize_on_demand and a
 *                  notifier), like rtgc's cleanup thread.
 *   rt_gc          GC_gcollect; rt_free_os_memory GC_gcollect_and_unmap.
 *   stats          GC_get_prof_stats; pauses timed from the world-stop events
 *                  (GC_set_on_collection_event).  mallocs, frees,
 *                  heap_objects and next_gc are not tracked (0), and
 *                  gc_cpu_fraction is pause time over elapsed time.
 *
 * Invariants: the root list, weak map and record registration are only
 * changed under a lock (the GC allocation lock for roots, fin_mu otherwise);
 * a traced object's header word is written before the object is returned, and
 * the mark procedure ignores any object whose header does not carry the tag
 * (a fresh or free-listed object). */
#ifndef RTGC_NO_INLINE
#define RTGC_NO_INLINE
#endif
#define GC_THREADS
#define GC_NO_THREAD_REDIRECTS
#include <gc/gc.h>
#include <gc/gc_mark.h>
#include <gc/gc_inline.h>
#include <rtgc.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* ---- Misuse ---------------------------------------------------------------- */

static void __attribute__((noreturn, format(printf, 2, 3))) misuse(const char *call, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "rtgc (boehm shim): %s: ", call);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

/* ---- Types ------------------------------------------------------------------ */

enum { KIND_LAYOUT = 1, KIND_TRACED = 2, KIND_CONSERVATIVE = 3 };
#define TYPE_MAGIC 0x72747970u

struct rt_type {
    uint32_t magic;
    uint32_t kind;
    size_t size;                 /* layout: bytes of one element */
    size_t index;                /* traced: index in traced_types */
    rt_trace_fn trace;
    const char *name;
};

static const rt_type conservative_type = { TYPE_MAGIC, KIND_CONSERVATIVE, sizeof(void *), 0, NULL, "conservative" };
const rt_type *const RT_CONSERVATIVE = &conservative_type;

#define MAX_TRACED 4096
static const rt_type *traced_types[MAX_TRACED];
static volatile size_t n_traced;
static pthread_mutex_t type_mu = PTHREAD_MUTEX_INITIALIZER;

/* Header of a traced object: bits 0-7 tag, 8-23 type index, 24-63 size. */
#define TRACED_TAG 0xA5u
#define TRACED_HDR sizeof(GC_word)

static void check_type(const char *call, const rt_type *t) {
    if (t != RT_NOSCAN && t->magic != TYPE_MAGIC)
        misuse(call, "%p is not an rt_type; pass RT_NOSCAN, RT_CONSERVATIVE or a type made by rt_type_*", (const void *)t);
}

const rt_type *rt_type_layout(const char *name, size_t size, const size_t *ptr_offsets, size_t n_ptrs) {
    for (size_t i = 0; i < n_ptrs; i++)
        if (ptr_offsets[i] % sizeof(void *) || ptr_offsets[i] + sizeof(void *) > size)
            misuse("rt_type_layout", "type '%s': offset %zu is not a pointer slot inside %zu bytes; "
                   "offsets must be multiples of %zu", name ? name : "?", ptr_offsets[i], size, sizeof(void *));
    rt_type *t = calloc(1, sizeof *t);
    if (!t) misuse("rt_type_layout", "out of memory");
    t->magic = TYPE_MAGIC;
    t->kind = KIND_LAYOUT;
    t->size = size;
    t->name = name;
    return t;
}

const rt_type *rt_type_traced(const char *name, rt_trace_fn trace) {
    if (!trace) misuse("rt_type_traced", "type '%s' has no trace function", name ? name : "?");
    rt_type *t = calloc(1, sizeof *t);
    if (!t) misuse("rt_type_traced", "out of memory");
    t->magic = TYPE_MAGIC;
    t->kind = KIND_TRACED;
    t->trace = trace;
    t->name = name;
    pthread_mutex_lock(&type_mu);
    if (n_traced == MAX_TRACED) misuse("rt_type_traced", "more than %d traced types", MAX_TRACED);
    t->index = n_traced;
    traced_types[n_traced] = t;
    __atomic_store_n(&n_traced, n_traced + 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&type_mu);
    return t;
}

/* ---- Visitors ---------------------------------------------------------------- */

enum { VISIT_ROOT = 1, VISIT_MARK = 2 };
struct rt_visitor {
    int mode;
    struct GC_ms_entry *msp, *lim;   /* VISIT_MARK: the mark stack */
    void **src;
};

void rt_visit(rt_visitor *v, void *ptr) {
    if (!ptr) return;
    if (v->mode == VISIT_MARK) {
        v->msp = GC_MARK_AND_PUSH(ptr, v->msp, v->lim, v->src);
    } else {
        void *cell[1] = { ptr };
        GC_push_all_eager(cell, cell + 1);
    }
}

void rt_visit_ambiguous(rt_visitor *v, uintptr_t w) { rt_visit(v, (void *)w); }

static int traced_kind;

static struct GC_ms_entry *traced_mark(GC_word *addr, struct GC_ms_entry *msp,
                                       struct GC_ms_entry *lim, GC_word env) {
    (void)env;
    GC_word h = addr[0];
    if ((h & 0xff) != TRACED_TAG)   /* fresh (0) or on a free list: word 0 is the link */
        return h ? GC_MARK_AND_PUSH((void *)h, msp, lim, (void **)addr) : msp;
    size_t idx = (size_t)(h >> 8) & 0xffff;
    if (idx >= __atomic_load_n(&n_traced, __ATOMIC_ACQUIRE)) return msp;
    rt_visitor v = { VISIT_MARK, msp, lim, (void **)addr };
    traced_types[idx]->trace(addr + 1, (size_t)(h >> 24), &v);
    return v.msp;
}

/* ---- Roots --------------------------------------------------------------------- */

enum { ROOT_SLOT, ROOT_RANGE, ROOT_SCANNER };
struct rt_root {
    int kind;
    void *base;
    size_t bytes;
    void (*scan)(rt_visitor *v, void *ctx);
    void *ctx;
    struct rt_root *next, *prev;
};
static struct rt_root *roots;                /* changed under the GC allocation lock */
static GC_push_other_roots_proc prev_push_other_roots;

static void GC_CALLBACK push_roots(void) {
    if (prev_push_other_roots) prev_push_other_roots();
    for (struct rt_root *r = roots; r; r = r->next) {
        switch (r->kind) {
        case ROOT_SLOT: GC_push_all_eager(r->base, (char *)r->base + sizeof(void *)); break;
        case ROOT_RANGE: GC_push_all_eager(r->base, (char *)r->base + r->bytes); break;
        default: {
            rt_visitor v = { VISIT_ROOT, NULL, NULL, NULL };
            r->scan(&v, r->ctx);
        }
        }
    }
}

static void *GC_CALLBACK link_root(void *p) {
    struct rt_root *r = p;
    r->prev = NULL;
    r->next = roots;
    if (roots) roots->prev = r;
    roots = r;
    return NULL;
}

static void *GC_CALLBACK unlink_root(void *p) {
    struct rt_root *r = p;
    if (r->prev) r->prev->next = r->next; else roots = r->next;
    if (r->next) r->next->prev = r->prev;
    return NULL;
}

static rt_root *add_root(const char *call, int kind, void *base, size_t bytes,
                         void (*scan)(rt_visitor *, void *), void *ctx) {
    struct rt_root *r = calloc(1, sizeof *r);
    if (!r) misuse(call, "out of memory");
    r->kind = kind;
    r->base = base;
    r->bytes = bytes;
    r->scan = scan;
    r->ctx = ctx;
    GC_call_with_alloc_lock(link_root, r);
    return r;
}

rt_root *rt_root_add(void *slot) {
    if (!slot || (uintptr_t)slot % sizeof(void *)) misuse("rt_root_add", "slot %p is not an aligned pointer slot", slot);
    return add_root("rt_root_add", ROOT_SLOT, slot, sizeof(void *), NULL, NULL);
}

rt_root *rt_root_add_range(void *base, size_t bytes, int kind) {
    if (kind != RT_ROOT_PRECISE && kind != RT_ROOT_AMBIGUOUS)
        misuse("rt_root_add_range", "kind %d is neither RT_ROOT_PRECISE nor RT_ROOT_AMBIGUOUS", kind);
    if (!base && bytes) misuse("rt_root_add_range", "NULL base with %zu bytes", bytes);
    return add_root("rt_root_add_range", ROOT_RANGE, base, bytes, NULL, NULL);
}

rt_root *rt_root_add_scanner(void (*scan)(rt_visitor *v, void *ctx), void *ctx) {
    if (!scan) misuse("rt_root_add_scanner", "NULL scan function");
    return add_root("rt_root_add_scanner", ROOT_SCANNER, NULL, 0, scan, ctx);
}

void rt_root_remove(rt_root *root) {
    if (!root) return;
    GC_call_with_alloc_lock(unlink_root, root);
    free(root);
}

/* ---- Statistics state -------------------------------------------------------------- */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t init_ns, stop_start_ns, pause_total_ns, last_gc_ns, num_forced_gc;
static uint64_t pause_ring[256];
static unsigned pause_count;

static void GC_CALLBACK on_gc_event(GC_EventType e) {
    if (e == GC_EVENT_PRE_STOP_WORLD) {
        stop_start_ns = now_ns();
    } else if (e == GC_EVENT_POST_START_WORLD && stop_start_ns) {
        uint64_t t = now_ns(), d = t - stop_start_ns;
        pause_total_ns += d;
        pause_ring[pause_count++ % 256] = d;
        stop_start_ns = 0;
    } else if (e == GC_EVENT_END) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        last_gc_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    }
}

/* ---- Configuration ---------------------------------------------------------------- */

static int initialized, gc_inited, gc_percent = 100, gc_disabled;
static int64_t memory_limit;
static void (*oom_fn)(size_t, void *);
static void *oom_ctx;

static void apply_gc_percent(int p) {
    if (p < 0) {
        if (!gc_disabled) { GC_disable(); gc_disabled = 1; }
        return;
    }
    if (gc_disabled) { GC_enable(); gc_disabled = 0; }
    long d = p > 0 ? (300 + p / 2) / p : 1000;
    if (d < 1) d = 1;
    if (d > 1000) d = 1000;
    GC_set_free_space_divisor((GC_word)d);
}

int rt_set_gc_percent(int percent) {
    int old = gc_percent;
    gc_percent = percent < 0 ? RT_GC_OFF : percent;
    if (gc_inited) apply_gc_percent(gc_percent);
    return old;
}

int64_t rt_set_memory_limit(int64_t bytes) {
    int64_t old = memory_limit;
    memory_limit = bytes < 0 ? 0 : bytes;
    if (gc_inited) GC_set_max_heap_size(memory_limit == INT64_MAX ? 0 : (GC_word)memory_limit);
    return old;
}

/* Go's GOMEMLIMIT forms: 512MiB, 2GiB, 1e9, off. Returns -1 if malformed. */
static int64_t parse_bytes(const char *s) {
    if (strcmp(s, "off") == 0) return 0;
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0) return -1;
    static const struct { const char *suf; double mul; } sufs[] = {
        { "", 1 }, { "B", 1 }, { "KiB", 1024.0 }, { "MiB", 1048576.0 }, { "GiB", 1073741824.0 },
        { "TiB", 1099511627776.0 },
    };
    for (size_t i = 0; i < sizeof sufs / sizeof sufs[0]; i++)
        if (strcmp(end, sufs[i].suf) == 0) return (int64_t)(v * sufs[i].mul);
    return -1;
}

static void *GC_CALLBACK oom_wrapper(size_t bytes) {
    if (oom_fn) {
        oom_fn(bytes, oom_ctx);
        return NULL;
    }
    fprintf(stderr, "rtgc (boehm shim): rt_alloc: out of memory allocating %zu bytes; "
            "raise RTMEMLIMIT or install a handler with rt_set_oom_handler\n", bytes);
    abort();
}

void rt_set_oom_handler(void (*fn)(size_t request, void *ctx), void *ctx) {
    oom_fn = fn;
    oom_ctx = ctx;
}

int rt_init(const rt_options *opts) {
    if (initialized) return RT_EALREADY;
    int percent = 100, maxprocs = 0;
    int64_t limit = 0;
    const char *debug = NULL;
    if (opts) {
        if (opts->gc_percent == RT_GC_OFF) percent = RT_GC_OFF;
        else if (opts->gc_percent > 0) percent = opts->gc_percent;
        else if (opts->gc_percent < 0) return RT_EINVAL;
        if (opts->memory_limit < 0 || opts->maxprocs < 0) return RT_EINVAL;
        limit = opts->memory_limit;
        maxprocs = opts->maxprocs;
        debug = opts->debug;
    }
    const char *e;
    if ((e = getenv("RTGC")) && *e) {
        char *end;
        long v = strtol(e, &end, 10);
        if (strcmp(e, "off") == 0) percent = RT_GC_OFF;
        else if (*end == 0 && v >= 0) percent = (int)v;
        else fprintf(stderr, "rtgc (boehm shim): RTGC=%s is neither a percentage nor off; keeping %d\n", e, percent);
    }
    if ((e = getenv("RTMEMLIMIT")) && *e) {
        int64_t v = parse_bytes(e);
        if (v >= 0) limit = v;
        else fprintf(stderr, "rtgc (boehm shim): RTMEMLIMIT=%s is malformed (use 512MiB, 2GiB, 1e9 or off); ignored\n", e);
    }
    if ((e = getenv("RTMAXPROCS")) && *e) {
        char *end;
        long v = strtol(e, &end, 10);
        if (*end == 0 && v > 0) maxprocs = (int)v;
        else fprintf(stderr, "rtgc (boehm shim): RTMAXPROCS=%s is not a positive number; ignored\n", e);
    }
    if ((e = getenv("RTDEBUG")) && *e) debug = e;

    if (!gc_inited) {
        if (debug && strstr(debug, "gctrace=1")) setenv("GC_PRINT_STATS", "1", 0);
        if (maxprocs > 0) GC_set_markers_count((unsigned)maxprocs);
        GC_INIT();
        GC_allow_register_threads();
        GC_start_mark_threads();
        GC_start_performance_measurement();
        traced_kind = (int)GC_new_kind(GC_new_free_list(), GC_MAKE_PROC(GC_new_proc(traced_mark), 0), 0, 1);
        prev_push_other_roots = GC_get_push_other_roots();
        GC_set_push_other_roots(push_roots);
        GC_set_on_collection_event(on_gc_event);
        GC_set_oom_fn(oom_wrapper);
        init_ns = now_ns();
        gc_inited = 1;
    }
    gc_percent = percent;
    apply_gc_percent(percent);
    rt_set_memory_limit(limit);
    initialized = 1;
    return RT_OK;
}

void rt_shutdown(void) {
    if (!initialized) return;
    while (roots) {
        struct rt_root *r = roots;
        GC_call_with_alloc_lock(unlink_root, r);
        free(r);
    }
    GC_gcollect();
    oom_fn = NULL;
    initialized = 0;
}

/* ---- Threads -------------------------------------------------------------------- */

static __thread int registered_here;
/* This thread's free lists of traced objects, indexed by granules (an
   uncollectable, hence scanned, array: the lists stay alive). */
static __thread void **traced_fl;

int rt_thread_attach(void) {
    if (!gc_inited) misuse("rt_thread_attach", "called before rt_init; call rt_init first");
    struct GC_stack_base sb;
    if (GC_get_stack_base(&sb) != GC_SUCCESS) return RT_EINVAL;
    int rc = GC_register_my_thread(&sb);
    if (rc == GC_SUCCESS) registered_here = 1;
    else if (rc != GC_DUPLICATE) return RT_EINVAL;
    return RT_OK;
}

void rt_thread_detach(void) {
    if (traced_fl) {
        GC_FREE(traced_fl);                 /* its free objects become garbage */
        traced_fl = NULL;
    }
    if (registered_here) {
        registered_here = 0;
        GC_unregister_my_thread();
    }
}

void rt_safepoint(void) {}
void rt_enter_blocking(void) {}
void rt_exit_blocking(void) {}

/* ---- Allocation ---------------------------------------------------------------- */


void *rt_alloc(size_t size, const rt_type *type) {
    void *p;
    if (size == 0) size = 1;
    if (type == RT_NOSCAN) {
        p = GC_MALLOC_ATOMIC(size);
        if (p) memset(p, 0, size);
        return p;
    }
    check_type("rt_alloc", type);
    if (type->kind != KIND_TRACED) return GC_MALLOC(size);
    if (size > ((size_t)1 << 39)) misuse("rt_alloc", "size %zu is too large", size);
    size_t granules = (size + TRACED_HDR + GC_GRANULE_BYTES - 1) / GC_GRANULE_BYTES;
    GC_word *base;
    if (granules < GC_TINY_FREELISTS && !traced_fl) {
        traced_fl = GC_MALLOC_UNCOLLECTABLE(GC_TINY_FREELISTS * sizeof(void *));
        if (!traced_fl) return NULL;
    }
    /* Small objects come from this thread's free lists of the traced kind
       (refilled by GC_generic_malloc_many), large ones from the global path. */
    GC_FAST_MALLOC_GRANS(base, granules, traced_fl, 0, traced_kind,
                         GC_generic_malloc(granules * GC_GRANULE_BYTES, traced_kind), (void)0);
    if (!base) return NULL;
    size_t usable = granules * GC_GRANULE_BYTES - TRACED_HDR;
    __atomic_store_n(&base[0], ((GC_word)usable << 24) | ((GC_word)type->index << 8) | TRACED_TAG, __ATOMIC_RELEASE);
    return base + 1;
}

void *rt_alloc_array(const rt_type *elem, size_t count) {
    size_t esize, bytes;
    check_type("rt_alloc_array", elem);
    if (elem == RT_NOSCAN) esize = 1;
    else if (elem->kind == KIND_LAYOUT) esize = elem->size;
    else if (elem->kind == KIND_CONSERVATIVE) esize = sizeof(void *);
    else misuse("rt_alloc_array", "traced type '%s' has no element size; use rt_alloc(bytes, type)", elem->name);
    if (__builtin_mul_overflow(count, esize, &bytes) || bytes > ((size_t)1 << 46))
        misuse("rt_alloc_array", "count %zu times element size %zu overflows; check the count before allocating",
               count, esize);
    return rt_alloc(bytes, elem);
}

/* Start of the object containing p as rt_alloc returned it, or NULL. */
static char *object_start(const void *p, size_t *usable) {
    char *base = GC_base((void *)p);
    if (!base) return NULL;
    size_t sz;
    int kind = GC_get_kind_and_size(base, &sz);
    if (kind == traced_kind) {
        base += TRACED_HDR;
        sz -= TRACED_HDR;
        if ((const char *)p < base) return NULL;
    }
    if (usable) *usable = sz;
    return base;
}

size_t rt_usable_size(const void *obj) {
    size_t sz;
    char *start = object_start(obj, &sz);
    if (!start) misuse("rt_usable_size", "%p is not an object allocated by rt_alloc; pass a pointer rt_alloc returned", obj);
    return (size_t)(start + sz - (const char *)obj);
}

void rt_store(void *slot, void *value) { *(void **)slot = value; }
void rt_memmove_ptrs(void *dst, const void *src, size_t bytes) { memmove(dst, src, bytes); }

/* ---- Collection control and statistics ------------------------------------------- */

void rt_gc(void) {
    __atomic_add_fetch(&num_forced_gc, 1, __ATOMIC_RELAXED);
    GC_gcollect();
    GC_invoke_finalizers();
}

void rt_free_os_memory(void) {
    __atomic_add_fetch(&num_forced_gc, 1, __ATOMIC_RELAXED);
    GC_gcollect_and_unmap();
}

void rt_read_mem_stats(rt_mem_stats *out) {
    struct GC_prof_stats_s s;
    memset(out, 0, sizeof *out);
    GC_get_prof_stats(&s, sizeof s);
    out->heap_sys = s.heapsize_full;
    out->heap_idle = s.free_bytes_full;
    out->heap_released = s.unmapped_bytes;
    out->heap_inuse = s.heapsize_full - s.free_bytes_full;
    out->heap_alloc = out->heap_inuse;
    out->total_alloc = s.allocd_bytes_before_gc + s.bytes_allocd_since_gc;
    out->num_gc = s.gc_no;
    out->num_forced_gc = num_forced_gc;
    out->pause_total_ns = pause_total_ns;
    out->last_gc_ns = last_gc_ns;
    unsigned n = pause_count < 256 ? pause_count : 256;
    for (unsigned i = 0; i < n; i++) out->pause_ns[i] = pause_ring[i];
    uint64_t elapsed = now_ns() - init_ns;
    out->gc_cpu_fraction = elapsed ? (double)pause_total_ns / (double)elapsed : 0.0;
}

/* ---- Weak handles ------------------------------------------------------------------ */

struct rt_weak { GC_hidden_pointer link; };

typedef struct weak_entry { uintptr_t key; rt_weak *h; struct weak_entry *next; } weak_entry;
#define WEAK_BUCKETS 65536
static weak_entry *weak_map[WEAK_BUCKETS];
static pthread_mutex_t weak_mu = PTHREAD_MUTEX_INITIALIZER;

static void *GC_CALLBACK reveal(void *p) {
    rt_weak *w = p;
    return w->link ? GC_REVEAL_POINTER(w->link) : NULL;
}

rt_weak *rt_weak_make(void *obj) {
    char *start = object_start(obj, NULL);
    if (!start) misuse("rt_weak_make", "%p is not a heap object; weak handles are only for objects from rt_alloc", obj);
    char *base = GC_base(start);
    uintptr_t key = (uintptr_t)start;
    size_t b = (size_t)((key >> 4) * 0x9E3779B97F4A7C15ull >> 48) % WEAK_BUCKETS;
    pthread_mutex_lock(&weak_mu);
    weak_entry **pp = &weak_map[b];
    while (*pp) {
        weak_entry *e = *pp;
        /* The collector only ever clears a link (nonzero -> 0), so a 0 read
           without the lock is final: the object is gone, drop the entry. */
        if (__atomic_load_n(&e->h->link, __ATOMIC_RELAXED) == 0) {
            *pp = e->next;
            free(e);
            continue;
        }
        if (e->key == key && GC_call_with_alloc_lock(reveal, e->h) != NULL) {
            pthread_mutex_unlock(&weak_mu);
            return e->h;
        }
        pp = &e->next;
    }
    rt_weak *h = malloc(sizeof *h);
    weak_entry *e = malloc(sizeof *e);
    if (!h || !e) misuse("rt_weak_make", "out of memory");
    h->link = GC_HIDE_POINTER(start);
    if (GC_general_register_disappearing_link((void **)&h->link, base) == GC_NO_MEMORY)
        misuse("rt_weak_make", "out of memory");
    e->key = key;
    e->h = h;
    e->next = weak_map[b];
    weak_map[b] = e;
    pthread_mutex_unlock(&weak_mu);
    return h;
}

void *rt_weak_get(const rt_weak *w) {
    if (!w) return NULL;
    return GC_call_with_alloc_lock(reveal, (void *)w);
}

/* ---- Cleanups and finalizers ----------------------------------------------------------- */

typedef struct cleanup_node {
    struct cleanup_node *next;
    void (*fn)(void *arg);
    void *arg;
    uint64_t id;
} cleanup_node;

typedef struct obj_record {            /* GC_MALLOC'd: reachable from Boehm's finalizer table */
    cleanup_node *cleanups;
    void (*fin)(void *obj, void *arg);
    void *fin_arg;
    size_t offset;                     /* user pointer = base + offset */
} obj_record;

static pthread_mutex_t fin_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t next_cleanup_id = 1;

/* Cleanup id -> node, for rt_cleanup_stop.  Entries live while the cleanup is pending. */
typedef struct id_entry { uint64_t id; cleanup_node *node; obj_record *rec; struct id_entry *next; } id_entry;
#define ID_BUCKETS 4096
static id_entry *id_map[ID_BUCKETS];

static void GC_CALLBACK run_record(void *base, void *cd);

static void register_record(void *base, obj_record *r) {
    if (r->fin)
        GC_register_finalizer(base, run_record, r, NULL, NULL);
    else if (r->cleanups)
        GC_register_finalizer_no_order(base, run_record, r, NULL, NULL);
    else
        GC_register_finalizer_no_order(base, NULL, NULL, NULL, NULL);
}

/* The object's record, unregistered from Boehm for the caller to change and
   re-register (fin_mu held). */
static obj_record *take_record(void *base, size_t offset) {
    GC_finalization_proc ofn = NULL;
    void *ocd = NULL;
    GC_register_finalizer_no_order(base, NULL, NULL, &ofn, &ocd);
    if (ofn == run_record && ocd) return ocd;
    obj_record *r = GC_MALLOC(sizeof *r);
    if (!r) misuse("rt_add_cleanup", "out of memory");
    r->offset = offset;
    return r;
}

static void id_remove(uint64_t id) {
    id_entry **pp = &id_map[id % ID_BUCKETS];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->id == id) {
            id_entry *e = *pp;
            *pp = e->next;
            free(e);
            return;
        }
}

static void GC_CALLBACK run_record(void *base, void *cd) {
    obj_record *r = cd;
    void *obj = (char *)base + r->offset;
    pthread_mutex_lock(&fin_mu);
    if (r->fin) {
        void (*fn)(void *, void *) = r->fin;
        void *arg = r->fin_arg;
        r->fin = NULL;
        r->fin_arg = NULL;
        register_record(base, r);          /* cleanups wait for the next death */
        pthread_mutex_unlock(&fin_mu);
        fn(obj, arg);
        return;
    }
    cleanup_node *list = r->cleanups;
    r->cleanups = NULL;
    for (cleanup_node *c = list; c; c = c->next) id_remove(c->id);
    pthread_mutex_unlock(&fin_mu);
    for (cleanup_node *c = list; c; c = c->next) c->fn(c->arg);
}

/* Finalizers run on this thread, never inside an allocating mutator. */
static pthread_mutex_t fin_thread_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fin_cond = PTHREAD_COND_INITIALIZER;
static int fin_pending, fin_thread_started;

static void GC_CALLBACK fin_notify(void) {
    pthread_mutex_lock(&fin_thread_mu);
    fin_pending = 1;
    pthread_cond_signal(&fin_cond);
    pthread_mutex_unlock(&fin_thread_mu);
}

static void *fin_thread(void *arg) {
    (void)arg;
    struct GC_stack_base sb;
    GC_get_stack_base(&sb);
    GC_register_my_thread(&sb);
    for (;;) {
        pthread_mutex_lock(&fin_thread_mu);
        while (!fin_pending) pthread_cond_wait(&fin_cond, &fin_thread_mu);
        fin_pending = 0;
        pthread_mutex_unlock(&fin_thread_mu);
        while (GC_should_invoke_finalizers()) GC_invoke_finalizers();
    }
    return NULL;
}

static void ensure_fin_thread(void) {
    if (__atomic_load_n(&fin_thread_started, __ATOMIC_ACQUIRE)) return;
    pthread_mutex_lock(&fin_thread_mu);
    if (!fin_thread_started) {
        GC_set_finalize_on_demand(1);
        GC_set_finalizer_notifier(fin_notify);
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, fin_thread, NULL) != 0) misuse("rt_add_cleanup", "cannot start the cleanup thread");
        pthread_attr_destroy(&a);
        __atomic_store_n(&fin_thread_started, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&fin_thread_mu);
}

rt_cleanup rt_add_cleanup(void *obj, void (*fn)(void *arg), void *arg) {
    char *start = object_start(obj, NULL);
    if (!start) misuse("rt_add_cleanup", "%p is not a heap object; cleanups attach to objects from rt_alloc", obj);
    if (!fn) misuse("rt_add_cleanup", "NULL cleanup function");
    ensure_fin_thread();
    char *base = GC_base(start);
    cleanup_node *c = GC_MALLOC(sizeof *c);
    id_entry *e = malloc(sizeof *e);
    if (!c || !e) misuse("rt_add_cleanup", "out of memory");
    c->fn = fn;
    c->arg = arg;
    pthread_mutex_lock(&fin_mu);
    obj_record *r = take_record(base, (size_t)((char *)obj - base));
    c->id = next_cleanup_id++;
    c->next = r->cleanups;
    r->cleanups = c;
    register_record(base, r);
    e->id = c->id;
    e->node = c;
    e->rec = r;
    e->next = id_map[c->id % ID_BUCKETS];
    id_map[c->id % ID_BUCKETS] = e;
    pthread_mutex_unlock(&fin_mu);
    return c->id;
}

void rt_cleanup_stop(rt_cleanup id) {
    pthread_mutex_lock(&fin_mu);
    for (id_entry *e = id_map[id % ID_BUCKETS]; e; e = e->next) {
        if (e->id != id) continue;
        obj_record *r = e->rec;
        for (cleanup_node **pp = &r->cleanups; *pp; pp = &(*pp)->next)
            if (*pp == e->node) { *pp = e->node->next; break; }
        id_remove(id);
        break;
    }
    pthread_mutex_unlock(&fin_mu);
}

int rt_set_finalizer(void *obj, void (*fn)(void *obj, void *arg), void *arg) {
    char *start = object_start(obj, NULL);
    if (!start) misuse("rt_set_finalizer", "%p is not a heap object; finalizers attach to objects from rt_alloc", obj);
    ensure_fin_thread();
    char *base = GC_base(start);
    pthread_mutex_lock(&fin_mu);
    obj_record *r = take_record(base, (size_t)((char *)obj - base));
    int rc = RT_OK;
    if (fn && r->fin) rc = RT_EALREADY;
    else {
        r->fin = fn;
        r->fin_arg = fn ? arg : NULL;
    }
    register_record(base, r);
    pthread_mutex_unlock(&fin_mu);
    return rc;
}

/* ---- Symbols of the inline fast paths (include/rtgc/inline.h) -------------------------
 * A VM compiled without RTGC_NO_INLINE references these.  With no mcache
 * (rt__tls_mcache is always NULL) and the write-barrier flag always set, every
 * inline path falls through to the functions above; rt_safepoint's stop bit
 * stays clear so it costs one load. */
struct rt__flags_compat { volatile uint32_t word; };
struct rt__flags_compat rt__flags = { 2u /* RT__FLAG_WB */ };
__thread void *rt__tls_mcache __attribute__((tls_model("initial-exec")));

void *rt__alloc_slow(size_t size, const rt_type *type);
void rt__store_slow(void *slot, void *value);
void rt__safepoint_slow(void);
void *rt__alloc_slow(size_t size, const rt_type *type) { return rt_alloc(size, type); }
void rt__store_slow(void *slot, void *value) { *(void **)slot = value; }
void rt__safepoint_slow(void) {}
