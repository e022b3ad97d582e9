/* runtime/proc.c -- threads, Ps, blocking regions and stopping the world.
 *
 * Owns: the list of attached threads, the pool of Ps (a P is an mcache:
 * the right to allocate without locks), and the safepoint protocol.
 *
 * Rules:
 *  - A thread holds a P exactly while it is RUNNING.  rt_enter_blocking
 *    hands the P back; rt_exit_blocking takes any idle P or makes a new one,
 *    so no thread ever waits for a P.  Ps beyond RTMAXPROCS that sit idle
 *    are retired at the next collection.
 *  - Every state change of a thread happens under world_lock.  The stopper
 *    sets RT__FLAG_STOP, then waits until no other thread is RUNNING.  A
 *    RUNNING thread notices the flag at its next safepoint (allocation slow
 *    path, rt_safepoint, rt_enter_blocking) and parks there as STOPPED.
 *    BLOCKING threads count as stopped; leaving the blocking region waits
 *    for the world to restart.
 *  - Before a thread stops or blocks it records its callee-saved registers
 *    and stack pointer (runtime/context.S), so its stack can be scanned
 *    conservatively from there to the stack's top while it is not running.
 *    Hence rt_enter_blocking and rt_exit_blocking must be called in the
 *    same function, and no heap object may be touched between them. */
#include "internal.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

rt_global rt__g;
rt__flags_t rt__flags;
__thread rt__mcache *rt__tls_mcache __attribute__((tls_model("initial-exec")));
__thread rt_thread *rt__tls_thread;

rt_thread *rt__current_thread(void) { return rt__tls_thread; }

static rt_p *p_acquire_locked(void) {
    rt_p *p = rt__g.idle_ps;
    if (p) {
        rt__g.idle_ps = p->next_idle;
    } else {
        p = calloc(1, sizeof *p);
        if (!p) rt__fatal("out of memory creating a P");
        rt__mcache_init(&p->mcache);
        p->id = rt__g.nps++;
        p->next_all = rt__g.all_ps;
        rt__g.all_ps = p;
    }
    p->in_use = true;
    p->next_idle = NULL;
    add_relaxed(&rt__g.p_running, 1);
    return p;
}

static void p_release_locked(rt_p *p) {
    p->in_use = false;
    add_relaxed(&rt__g.p_running, -1);
    p->next_idle = rt__g.idle_ps;
    rt__g.idle_ps = p;
}

/* World stopped: hand back every P's cached spans; retire idle Ps beyond
   maxprocs (or beyond the attached threads, whichever is larger). */
void rt__procs_flush_and_retire(void) {
    int keep = rt__cfg.maxprocs > rt__g.nthreads ? rt__cfg.maxprocs : rt__g.nthreads;
    for (rt_p *p = rt__g.all_ps; p; p = p->next_all) rt__mcache_release_all(&p->mcache);
    rt_p **pp = &rt__g.idle_ps;
    int idle = 0;
    while (*pp) {
        rt_p *p = *pp;
        if (rt__g.nps - idle > keep || idle >= keep) {
            *pp = p->next_idle;
            rt_p **ap = &rt__g.all_ps;
            while (*ap != p) ap = &(*ap)->next_all;
            *ap = p->next_all;
            rt__g.nps--;
            free(p);
        } else {
            idle++;
            pp = &p->next_idle;
        }
    }
}

/* Free all Ps (rt_shutdown; every cached span is abandoned with the heap). */
void rt__procs_free_all(void) {
    while (rt__g.all_ps) {
        rt_p *p = rt__g.all_ps;
        rt__g.all_ps = p->next_all;
        free(p);
    }
    rt__g.idle_ps = NULL;
    rt__g.nps = 0;
}

static void stack_bounds(rt_thread *t) {
    pthread_attr_t attr;
    void *addr = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &addr, &size);
        pthread_attr_destroy(&attr);
    }
    t->stack_lo = (uintptr_t)addr;
    t->stack_hi = (uintptr_t)addr + size;
}

#define STOP_SPIN_NS 50000

static bool any_running_locked(void) {
    for (rt_thread *t = rt__g.threads; t; t = t->next)
        if (t->state == RT_T_RUNNING) return true;
    return false;
}

/* world_lock held, a thread just stopped running: wake the stopper if it
   was the last.  Only the stopper is woken, and only once: on 2 CPUs, every
   parked thread and the stopper woken at each park (one condition variable
   for everything) cost context switches inside the pause. */
void rt__thread_stopped_locked(void) {
    if (rt__g.stop_depth > 0 && !any_running_locked()) pthread_cond_signal(&rt__g.stop_cond);
}

static void wait_world_running_locked(void) {
    while (rt__g.stop_depth > 0) pthread_cond_wait(&rt__g.world_cond, &rt__g.world_lock);
}

int rt_thread_attach(void) {
    if (!rt__g.initialized) rt__misuse("rt_thread_attach", "rtgc is not initialized; call rt_init() first");
    if (rt__tls_thread)
        rt__misuse("rt_thread_attach", "this thread is already attached; attach once and call rt_thread_detach() before attaching again");
    rt_thread *t = calloc(1, sizeof *t);
    if (!t) rt__fatal("out of memory attaching a thread");
    t->tid = pthread_self();
    stack_bounds(t);
    pthread_mutex_lock(&rt__g.world_lock);
    wait_world_running_locked();
    t->p = p_acquire_locked();
    t->state = RT_T_RUNNING;
    t->next = rt__g.threads;
    rt__g.threads = t;
    rt__g.nthreads++;
    pthread_mutex_unlock(&rt__g.world_lock);
    rt__tls_thread = t;
    rt__tls_mcache = &t->p->mcache.hot;
    return RT_OK;
}

void rt_thread_detach(void) {
    rt_thread *t = rt__tls_thread;
    if (!t) rt__misuse("rt_thread_detach", "this thread is not attached; call it only after rt_thread_attach()");
    if (t->state == RT_T_BLOCKING)
        rt__misuse("rt_thread_detach", "called inside a blocking region; call rt_exit_blocking() first");
    pthread_mutex_lock(&rt__g.world_lock);
    /* A stop may be waiting for this thread: stop first, then leave. */
    if (rt__g.stop_depth > 0) {
        t->state = RT_T_STOPPED;
        rt__capture_context(t);
        rt__thread_stopped_locked();
        wait_world_running_locked();
    }
    p_release_locked(t->p);
    rt_thread **tp = &rt__g.threads;
    while (*tp != t) tp = &(*tp)->next;
    *tp = t->next;
    rt__g.nthreads--;
    rt__thread_stopped_locked();
    pthread_cond_broadcast(&rt__g.world_cond);
    pthread_mutex_unlock(&rt__g.world_lock);
    rt__tls_thread = NULL;
    rt__tls_mcache = NULL;
    free(t);
}

void rt__park_if_stopping(void) {
    rt_thread *t = rt__tls_thread;
    if (!t || t->state != RT_T_RUNNING) return;   /* blocking threads already count as stopped */
    pthread_mutex_lock(&rt__g.world_lock);
    if (rt__g.stop_depth > 0) {
        rt__capture_context(t);
        t->state = RT_T_STOPPED;
        rt__thread_stopped_locked();
        wait_world_running_locked();
        t->state = RT_T_RUNNING;
    }
    pthread_mutex_unlock(&rt__g.world_lock);
}

/* Sleep on a futex word (rt__os_futex_wait) counted as stopped, so a stop
   of the world need not wake the sleeper: a parked assist (waking a
   sleeping thread took 10-40 us of the mark-termination pause, which
   comes when assists are most likely parked).  Its registers are captured
   in this frame (rt__thread_sleep_begin_locked is inlined), which stays
   live while it sleeps, as a safepoint park's are.  It goes on only once a
   stopped world runs again; the world's restart wakes such sleepers
   (rt__start_the_world). */
void rt__sleep_as_stopped(uint32_t *word, uint32_t val, uint64_t timeout_ns) {
    rt_thread *t = rt__tls_thread;
    pthread_mutex_lock(&rt__g.world_lock);
    rt__thread_sleep_begin_locked(t);
    pthread_mutex_unlock(&rt__g.world_lock);
    rt__os_futex_wait(word, val, timeout_ns);
    pthread_mutex_lock(&rt__g.world_lock);
    wait_world_running_locked();
    rt__thread_sleep_end_locked(t);
    pthread_mutex_unlock(&rt__g.world_lock);
}

void rt__safepoint_slow(void) {
    if (!rt__tls_thread) return;
    rt__park_if_stopping();
}

void (rt_safepoint)(void) {
    if (rt__flags_load() & RT__FLAG_STOP) rt__safepoint_slow();
}

/* rt_enter_blocking (runtime/context.S) saved the embedder's registers on
   entry, before any could change, and passes the stack pointer it will
   return to.  `used`: its only caller is assembly, which LTO cannot see. */
__attribute__((used)) void rt__enter_blocking(const uintptr_t *regs, uintptr_t sp) {
    rt_thread *t = rt__tls_thread;
    if (!t) rt__misuse("rt_enter_blocking", "this thread is not attached; call rt_thread_attach() first");
    if (t->state == RT_T_BLOCKING)
        rt__misuse("rt_enter_blocking", "already in a blocking region; pair each call with rt_exit_blocking()");
    memcpy(t->saved_regs, regs, sizeof t->saved_regs);
    t->saved_sp = sp;
    pthread_mutex_lock(&rt__g.world_lock);
    p_release_locked(t->p);
    t->p = NULL;
    t->state = RT_T_BLOCKING;
    rt__tls_mcache = NULL;
    rt__thread_stopped_locked();
    pthread_cond_broadcast(&rt__g.world_cond);
    pthread_mutex_unlock(&rt__g.world_lock);
}

void rt_exit_blocking(void) {
    rt_thread *t = rt__tls_thread;
    if (!t || t->state != RT_T_BLOCKING)
        rt__misuse("rt_exit_blocking", "no blocking region is open on this thread; call rt_enter_blocking() first");
    pthread_mutex_lock(&rt__g.world_lock);
    wait_world_running_locked();
    t->p = p_acquire_locked();
    t->state = RT_T_RUNNING;
    pthread_mutex_unlock(&rt__g.world_lock);
    rt__tls_mcache = &t->p->mcache.hot;
}

void rt__stop_the_world(const char *why) {
    (void)why;
    rt_thread *self = rt__tls_thread;
    pthread_mutex_lock(&rt__g.world_lock);
    int prev = self ? self->state : 0;
    /* Another stop is in progress (a collection, or stats on another
       thread): wait for it as a stopped thread, then stop in turn. */
    while (rt__g.stop_depth > 0) {
        if (self && self->state == RT_T_RUNNING) {
            rt__capture_context(self);
            self->state = RT_T_STOPPED;
            rt__thread_stopped_locked();
        }
        pthread_cond_wait(&rt__g.world_cond, &rt__g.world_lock);
    }
    rt__g.stop_depth++;
    __atomic_fetch_or(&rt__flags.word, RT__FLAG_STOP, __ATOMIC_SEQ_CST);
    /* The caller captured its own context if its stack is to be scanned;
       a blocking caller stays blocking. */
    if (self) {
        self->stw_prev_state = prev;
        if (prev == RT_T_RUNNING) self->state = RT_T_STOPPED;
    }
    /* Look again with sched_yield for up to 50 us before sleeping.  The
       stopper usually took the CPU of a running thread, which must run
       again to reach its safepoint; yielding hands that CPU back, and the
       stopper, still runnable, is not woken through the kernel afterwards
       (35-45 us on this 2-CPU VM, most of a mark-termination pause). */
    uint64_t spin_until = rt__nanotime() + STOP_SPIN_NS;
    while (any_running_locked()) {
        if (rt__nanotime() < spin_until) {
            pthread_mutex_unlock(&rt__g.world_lock);
            sched_yield();
            pthread_mutex_lock(&rt__g.world_lock);
        } else {
            pthread_cond_wait(&rt__g.stop_cond, &rt__g.world_lock);
        }
    }
    pthread_mutex_unlock(&rt__g.world_lock);
}

void rt__start_the_world(void) {
    rt_thread *self = rt__tls_thread;
    pthread_mutex_lock(&rt__g.world_lock);
    rt__g.stop_depth--;
    rt__g.stop_epoch++;
    __atomic_fetch_and(&rt__flags.word, ~RT__FLAG_STOP, __ATOMIC_SEQ_CST);
    if (self) self->state = self->stw_prev_state;
    pthread_cond_broadcast(&rt__g.world_cond);
    pthread_mutex_unlock(&rt__g.world_lock);
    rt__gc_wake_assists();   /* parked assists slept through the stop as stopped threads */
}
