/* runtime/init.c -- lifecycle and error reporting.
 *
 * Owns: rt_init (configuration, heap, collector threads), rt_shutdown
 * (everything is unmapped and freed; rt_init may run again), the OOM
 * handler, and the one-line error helpers every other file uses. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void vline(const char *prefix, const char *call, const char *fmt, va_list ap) {
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "rtgc: %s%s%s", prefix, call ? call : "", call ? ": " : "");
    if (n < 0) n = 0;
    if ((size_t)n < sizeof buf) vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    fprintf(stderr, "%s\n", buf);
    fflush(stderr);
}

void rt__fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vline("fatal error: ", NULL, fmt, ap);
    va_end(ap);
    abort();
}

void rt__misuse(const char *call, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vline("", call, fmt, ap);
    va_end(ap);
    abort();
}

void rt__warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vline("warning: ", NULL, fmt, ap);
    va_end(ap);
}

int rt_init(const rt_options *opts) {
    if (rt__g.initialized) return RT_EALREADY;
    if (opts && ((opts->gc_percent < 0 && opts->gc_percent != RT_GC_OFF) || opts->memory_limit < 0 ||
                 opts->maxprocs < 0 || opts->maxprocs > 4096 ||
                 (opts->heap_minimum != 0 && opts->heap_minimum < (int64_t)RT_MIN_HEAP_FLOOR))) {
        rt__warn("rt_init: rt_options out of range (gc_percent %d, memory_limit %lld, maxprocs %d, "
                 "heap_minimum %lld); use gc_percent >= 0 or RT_GC_OFF, memory_limit >= 0, maxprocs 0..4096, "
                 "heap_minimum 0 or at least 65536",
                 opts->gc_percent, (long long)opts->memory_limit, opts->maxprocs, (long long)opts->heap_minimum);
        return RT_EINVAL;
    }
    rt__config_load(opts);
    rt__os_set_failmmap(rt__cfg.failmmap);
    rt__os_set_madvdontneed(rt__cfg.madvdontneed);
    rt__os_set_heap_thp(rt__cfg.hugepages == 1 ? RT_THP_HUGE : rt__cfg.hugepages == 2 ? RT_THP_NONE : RT_THP_SYSTEM);
    if (rt__heap_init() != 0) return RT_ENOMEM;
    void (*oom_fn)(size_t, void *) = rt__g.oom_fn;
    void *oom_ctx = rt__g.oom_ctx;
    memset(&rt__g, 0, sizeof rt__g);
    rt__g.oom_fn = oom_fn;   /* a handler may be set before rt_init */
    rt__g.oom_ctx = oom_ctx;
    pthread_mutex_init(&rt__g.world_lock, NULL);
    pthread_cond_init(&rt__g.world_cond, NULL);
    pthread_cond_init(&rt__g.stop_cond, NULL);
    rt__g.init_ns = rt__nanotime();
    rt__flags.word = 0;
    rt__g.initialized = true;
    rt__gc_init();
    return RT_OK;
}

void rt__procs_free_all(void);

void rt_shutdown(void) {
    if (!rt__g.initialized) return;
    rt_thread *self = rt__tls_thread;
    if (rt__g.nthreads > (self ? 1 : 0))
        rt__misuse("rt_shutdown", "%d other threads are still attached; detach them before shutting down",
                   rt__g.nthreads - (self ? 1 : 0));
    if (self) rt_thread_detach();
    rt__gc_shutdown();
    rt__procs_free_all();
    rt__heap_destroy();
    rt__types_free_all();
    rt__g.initialized = false;
    rt__flags.word = 0;
}

void rt_set_oom_handler(void (*fn)(size_t request, void *ctx), void *ctx) {
    rt__g.oom_fn = fn;
    rt__g.oom_ctx = ctx;
}
