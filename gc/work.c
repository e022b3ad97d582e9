/* gc/work.c -- grey-object work buffers and their global lists.
 *
 * Owns: buffer storage (off-heap, reused across cycles), the global full
 * and empty lists, and termination detection for a parallel mark: a marker
 * that finds no local and no global work waits; when every marker is
 * waiting and the full list is empty, the mark is complete (no grey object
 * remains anywhere, since only markers hold buffers).  A mutex guards the
 * global lists; markers touch it once per 253 objects. */
#include "gc.h"

#include <string.h>

static struct {
    pthread_mutex_t lock;
    pthread_cond_t  cond;
    rt_workbuf     *full, *empty;
    size_t          nfull;
    int             nmarkers, nwaiting;
    bool            done;
} G = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

#define WORKBUF_CHUNK (64 << 10)
static void **chunks;            /* chunk list for destroy */

static rt_workbuf *buf_new_locked(void) {
    rt_workbuf *b = G.empty;
    if (b) {
        G.empty = b->next;
    } else {
        char *c = rt__os_alloc(WORKBUF_CHUNK);
        if (!c) rt__fatal("out of memory for mark work buffers");
        *(void ***)c = chunks;
        chunks = (void **)c;
        for (size_t off = 64; off + sizeof(rt_workbuf) <= WORKBUF_CHUNK; off += sizeof(rt_workbuf)) {
            rt_workbuf *nb = (rt_workbuf *)(c + off);
            nb->next = G.empty;
            G.empty = nb;
        }
        b = G.empty;
        G.empty = b->next;
    }
    b->n = 0;
    b->next = NULL;
    return b;
}

void rt__work_init(void) {}

void rt__work_destroy(void) {
    while (chunks) {
        void **next = *(void ***)chunks;
        rt__os_unreserve(chunks, WORKBUF_CHUNK);
        chunks = next;
    }
    G.full = G.empty = NULL;
    G.nfull = 0;
}

void rt__work_begin(int nmarkers) {
    pthread_mutex_lock(&G.lock);
    G.nmarkers = nmarkers;
    G.nwaiting = 0;
    G.done = false;
    pthread_mutex_unlock(&G.lock);
}

bool rt__work_global_empty(void) { return G.full == NULL; }

static void push_full(rt_workbuf *b) {
    pthread_mutex_lock(&G.lock);
    b->next = G.full;
    G.full = b;
    G.nfull++;
    if (G.nwaiting) pthread_cond_signal(&G.cond);
    pthread_mutex_unlock(&G.lock);
}

static rt_workbuf *take_empty(void) {
    pthread_mutex_lock(&G.lock);
    rt_workbuf *b = buf_new_locked();
    pthread_mutex_unlock(&G.lock);
    return b;
}

void rt__gcwork_put(rt_gcwork *w, uintptr_t item) {
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
    /* Someone is idle and we hold plenty: share a buffer. */
    if (RT_UNLIKELY(ld_relaxed(&G.nwaiting) > 0) && w->secondary && w->secondary->n > 0) {
        push_full(w->secondary);
        w->secondary = NULL;
    }
}

uintptr_t rt__gcwork_get(rt_gcwork *w) {
    for (;;) {
        rt_workbuf *b = w->primary;
        if (b && b->n) return b->item[--b->n];
        if (w->secondary && w->secondary->n) {
            w->primary = w->secondary;
            w->secondary = b;
            continue;
        }
        pthread_mutex_lock(&G.lock);
        for (;;) {
            if (G.full) {
                rt_workbuf *f = G.full;
                G.full = f->next;
                G.nfull--;
                if (w->primary) { w->primary->next = G.empty; G.empty = w->primary; }
                w->primary = f;
                break;
            }
            if (G.done) { pthread_mutex_unlock(&G.lock); return 0; }
            G.nwaiting++;
            if (G.nwaiting == G.nmarkers) {
                G.done = true;
                pthread_cond_broadcast(&G.cond);
                pthread_mutex_unlock(&G.lock);
                return 0;
            }
            pthread_cond_wait(&G.cond, &G.lock);
            G.nwaiting--;
        }
        pthread_mutex_unlock(&G.lock);
    }
}

void rt__gcwork_dispose(rt_gcwork *w) {
    rt_workbuf *bs[2] = { w->primary, w->secondary };
    w->primary = w->secondary = NULL;
    for (int i = 0; i < 2; i++) {
        if (!bs[i]) continue;
        if (bs[i]->n) { push_full(bs[i]); continue; }
        pthread_mutex_lock(&G.lock);
        bs[i]->next = G.empty;
        G.empty = bs[i];
        pthread_mutex_unlock(&G.lock);
    }
}
