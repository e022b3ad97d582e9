/* gc/work.c -- grey-object work buffers and their global lists.
 *
 * Owns: buffer storage (off-heap, reused across cycles), the global full
 * and empty lists, and the bookkeeping that tells when a drain is over.
 *
 * With the world stopped (stw drain), a marker that finds no local and no
 * global work waits; when every marker waits and the full list is empty,
 * no grey object remains anywhere (only markers hold buffers) and the drain
 * is complete.  During a concurrent mark the same state only means
 * "quiescent": mutators may still hold grey objects in their P's buffers.
 * Whoever sees quiescence first claims the end-of-mark check (Go's
 * gcMarkDone): the worker that ran out of work last, on the CPU it already
 * holds, or the cycle driver when the last one went quiet in a nap.  The
 * check (a ragged flush of every P, gc/gc.c) either ends the drain or
 * finds grey objects and gives the claim back.  A worker used to wake the
 * driver for it; on 2 CPUs the driver then often sat runnable behind the
 * mutator for a scheduler slice (0.7-1.6 ms under EEVDF), with the
 * barrier on and every allocation black.  A mutex guards the global
 * lists; a worker touches it once per 253 objects. */
#include "gc.h"

#include <errno.h>
#include <string.h>
#include <time.h>

static struct {
    pthread_mutex_t lock;
    pthread_cond_t  cond;         /* workers wait here for work */
    pthread_cond_t  quiet;        /* the driver waits here for quiescence */
    pthread_cond_t  nap;          /* workers napping off their CPU share; the end of the drain wakes them */
    rt_workbuf     *full, *empty;
    size_t          nfull;
    int             nmarkers;
    bool            stw, done;
    bool            checking;     /* someone holds the end-of-mark check */
    int             ended_by;     /* id of the worker whose check ended the drain; 0: none */
} G = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .quiet = PTHREAD_COND_INITIALIZER,
        .nap = PTHREAD_COND_INITIALIZER };

int rt__work_nwaiting;   /* markers waiting for work: balance shares a buffer when nonzero */

#define WORKBUF_CHUNK (64 << 10)
static void **chunks;            /* chunk list for destroy */
static size_t nchunks;

/* Buffers are carved from the newest chunk as they are first needed, so a
   program that never uses more than a few touches only their pages (all
   of a chunk's 64 KiB were written at once, to link its buffers). */
static char *carve_next, *carve_end;

static rt_workbuf *buf_new_locked(void) {
    rt_workbuf *b = G.empty;
    if (b) {
        G.empty = b->next;
    } else {
        if (carve_end - carve_next < (ptrdiff_t)sizeof(rt_workbuf)) {
            char *c = rt__os_alloc(WORKBUF_CHUNK);
            if (!c) rt__fatal("out of memory for mark work buffers");
            *(void ***)c = chunks;
            chunks = (void **)c;
            nchunks++;
            carve_next = c + 64;
            carve_end = c + WORKBUF_CHUNK;
        }
        b = (rt_workbuf *)(void *)carve_next;
        carve_next += sizeof(rt_workbuf);
    }
    b->n = 0;
    b->next = NULL;
    return b;
}

void rt__work_destroy(void) {
    while (chunks) {
        void **next = *(void ***)chunks;
        rt__os_free(chunks, WORKBUF_CHUNK);
        chunks = next;
    }
    G.full = G.empty = NULL;
    G.nfull = 0;
    nchunks = 0;
    carve_next = carve_end = NULL;
}

size_t rt__work_chunks(void) {
    pthread_mutex_lock(&G.lock);
    size_t n = nchunks;
    pthread_mutex_unlock(&G.lock);
    return n;
}

void rt__work_begin(bool stw) {
    pthread_mutex_lock(&G.lock);
    G.nmarkers = 0;
    st_relaxed(&rt__work_nwaiting, 0);   /* assists may already read it: the world runs */
    G.stw = stw;
    G.done = false;
    G.checking = false;
    G.ended_by = 0;
    pthread_mutex_unlock(&G.lock);
}

/* Workers join a drain when they start on it; one that arrives after the
   drain ended (a starved idle-priority thread) stays out, and so does one
   that was handed the concurrent drain but arrives once the
   world-stopped drain of mark termination has begun: joined, it marked
   in slices and napped, and left grey objects on the list after that
   drain had ended.  Termination counts only the workers that joined. */
bool rt__work_join(bool stw) {
    pthread_mutex_lock(&G.lock);
    bool ok = !G.done && G.stw == stw;
    if (ok) G.nmarkers++;
    pthread_mutex_unlock(&G.lock);
    return ok;
}

static void finish_locked(void) {
    G.done = true;
    pthread_cond_broadcast(&G.cond);
    pthread_cond_broadcast(&G.nap);
}

void rt__work_leave(void) {
    pthread_mutex_lock(&G.lock);
    G.nmarkers--;
    pthread_mutex_unlock(&G.lock);
}

void rt__work_finish(void) {
    pthread_mutex_lock(&G.lock);
    finish_locked();
    pthread_mutex_unlock(&G.lock);
}

/* Lock held: every joined marker waits and no full buffer is queued. */
static bool quiescent_locked(void) { return rt__work_nwaiting == G.nmarkers && !G.full; }

static struct timespec deadline_in(uint64_t ns) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t t = (uint64_t)ts.tv_nsec + ns;
    ts.tv_sec += (time_t)(t / 1000000000u);
    ts.tv_nsec = (long)(t % 1000000000u);
    return ts;
}

static bool check_end_locked(int id);

bool rt__work_wait_end(uint64_t timeout_ns) {
    struct timespec ts = deadline_in(timeout_ns);
    pthread_mutex_lock(&G.lock);
    int rc = 0;
    while (!G.done && rc != ETIMEDOUT) {
        if (quiescent_locked() && !G.checking) { check_end_locked(0); break; }
        rc = pthread_cond_timedwait(&G.quiet, &G.lock, &ts);
    }
    bool done = G.done;
    pthread_mutex_unlock(&G.lock);
    return done;
}

int rt__work_ended_by(void) {
    pthread_mutex_lock(&G.lock);
    int id = G.ended_by;
    pthread_mutex_unlock(&G.lock);
    return id;
}

void rt__work_wake_driver(void) {
    pthread_mutex_lock(&G.lock);
    pthread_cond_broadcast(&G.quiet);
    pthread_mutex_unlock(&G.lock);
}

/* Counted as waiting, so a nap never holds up the end of the mark, and
   cut short when the drain ends: a fractional worker's nap lasts up to
   2 ms, which the driver used to wait out before stopping the world. */
void rt__work_nap(uint64_t ns) {
    struct timespec ts = deadline_in(ns);
    pthread_mutex_lock(&G.lock);
    if (add_relaxed(&rt__work_nwaiting, 1) == G.nmarkers) pthread_cond_broadcast(&G.quiet);
    int rc = 0;
    while (!G.done && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&G.nap, &G.lock, &ts);
    add_relaxed(&rt__work_nwaiting, -1);
    pthread_mutex_unlock(&G.lock);
}

bool rt__work_global_empty(void) { return ld_relaxed(&G.full) == NULL; }

bool rt__work_quiescent(void) {
    pthread_mutex_lock(&G.lock);
    bool q = quiescent_locked();
    pthread_mutex_unlock(&G.lock);
    return q;
}

static void push_full(rt_workbuf *b) {
    pthread_mutex_lock(&G.lock);
    b->next = G.full;
    st_relaxed(&G.full, b);   /* read without the lock by tryget */
    G.nfull++;
    if (rt__work_nwaiting) pthread_cond_signal(&G.cond);
    pthread_mutex_unlock(&G.lock);
}

static rt_workbuf *take_empty(void) {
    pthread_mutex_lock(&G.lock);
    rt_workbuf *b = buf_new_locked();
    pthread_mutex_unlock(&G.lock);
    return b;
}

void rt__gcwork_put_slow(rt_gcwork *w, uintptr_t item) {
    rt_workbuf *b = w->primary;
    if (RT_UNLIKELY(!b)) b = w->primary = take_empty();
    if (RT_UNLIKELY(b->n == RT_WORKBUF_ITEMS)) {
        /* Swap with the secondary; if that is full too, publish it. */
        rt_workbuf *s = w->secondary;
        if (s && s->n < RT_WORKBUF_ITEMS) {
            w->secondary = b;
            b = w->primary = s;
        } else {
            if (s) push_full(s);
            w->secondary = b;
            b = w->primary = take_empty();
        }
    }
    b->item[b->n++] = item;
}

void rt__gcwork_balance_slow(rt_gcwork *w) {
    if (RT_LIKELY(ld_relaxed(&G.full) != NULL)) return;
    if (w->secondary && w->secondary->n > 0) {
        push_full(w->secondary);
        w->secondary = NULL;
        rt__gc_wake_assists();
        return;
    }
    rt_workbuf *b = w->primary;
    if (!b || b->n < RT_BALANCE_MIN_ITEMS) return;
    /* Give away the older half: the bottom of the stack, furthest from
       what this worker scans next. */
    rt_workbuf *half = take_empty();
    unsigned k = b->n / 2;
    memcpy(half->item, b->item, k * sizeof b->item[0]);
    memmove(b->item, b->item + k, (b->n - k) * sizeof b->item[0]);
    half->n = k;
    b->n -= k;
    push_full(half);
    rt__gc_wake_assists();
}

bool rt__gcwork_empty(const rt_gcwork *w) {
    return !(w->primary && w->primary->n) && !(w->secondary && w->secondary->n);
}

static uintptr_t local_get(rt_gcwork *w) {
    rt_workbuf *b = w->primary;
    if (b && b->n) return b->item[--b->n];
    if (w->secondary && w->secondary->n) {
        w->primary = w->secondary;
        w->secondary = b;
        return w->primary->item[--w->primary->n];
    }
    return 0;
}

/* Lock held: move a full buffer to w. */
static void take_full_locked(rt_gcwork *w) {
    rt_workbuf *f = G.full;
    st_relaxed(&G.full, f->next);
    G.nfull--;
    if (w->primary) { w->primary->next = G.empty; G.empty = w->primary; }
    w->primary = f;
}

uintptr_t rt__gcwork_tryget_slow(rt_gcwork *w) {
    uintptr_t item = local_get(w);
    if (item || !ld_relaxed(&G.full)) return item;
    pthread_mutex_lock(&G.lock);
    if (G.full) take_full_locked(w);
    pthread_mutex_unlock(&G.lock);
    return local_get(w);
}

/* Lock held, world running, the drain quiescent and nobody checking:
   claim the check and run it with the lock dropped (it flushes every P,
   whose buffers come back here).  The caller is the worker `id` that
   went quiet last, counted as waiting, or the driver (id 0).  True: the
   drain is over, ended by `id`. */
static bool check_end_locked(int id) {
    G.checking = true;
    pthread_mutex_unlock(&G.lock);
    bool over = rt__gc_mark_is_over();
    pthread_mutex_lock(&G.lock);
    if (over) {
        G.ended_by = id;
        finish_locked();
    }
    G.checking = false;
    return over;
}

uintptr_t rt__gcwork_get(rt_gcwork *w) {
    for (;;) {
        uintptr_t item = local_get(w);
        if (item) return item;
        pthread_mutex_lock(&G.lock);
        for (;;) {
            if (G.full) { take_full_locked(w); break; }
            if (G.done) { pthread_mutex_unlock(&G.lock); return 0; }
            add_relaxed(&rt__work_nwaiting, 1);   /* read without the lock by balance */
            if (rt__work_nwaiting == G.nmarkers) {
                if (G.stw) {
                    G.done = true;
                    pthread_cond_broadcast(&G.cond);
                    pthread_mutex_unlock(&G.lock);
                    return 0;
                }
                if (!G.checking) {
                    bool over = check_end_locked(w->id);
                    add_relaxed(&rt__work_nwaiting, -1);
                    if (over) { pthread_mutex_unlock(&G.lock); return 0; }
                    /* Grey objects were found: on the list now, or still
                       held by an assist or a P that has yet to answer,
                       so look again (as the driver did). */
                    continue;
                }
            }
            pthread_cond_wait(&G.cond, &G.lock);
            add_relaxed(&rt__work_nwaiting, -1);
        }
        pthread_mutex_unlock(&G.lock);
    }
}

void rt__gcwork_dispose(rt_gcwork *w) {
    rt_workbuf *bs[2] = { w->primary, w->secondary };
    w->primary = w->secondary = NULL;
    rt__gcwork_forget_hint(w);
    for (int i = 0; i < 2; i++) {
        if (!bs[i]) continue;
        if (bs[i]->n) { push_full(bs[i]); continue; }
        pthread_mutex_lock(&G.lock);
        bs[i]->next = G.empty;
        G.empty = bs[i];
        pthread_mutex_unlock(&G.lock);
    }
}
