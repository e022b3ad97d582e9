/* gc/verify.c -- the heap verifier (debug builds, or RTDEBUG=verify=1).
 *
 * Runs with the world stopped right after a mark, when every span sits in
 * an mcentral set (mcaches were handed back at mark termination).  Checks:
 *   - each mcentral: spans of its class, swept/unswept sets consistent;
 *   - each span: geometry, bitmaps, alloc_count equal to the allocated
 *     slots (rt__span_check), no marked slot that is free;
 *   - accounting: bytes in allocated slots equal total allocated minus
 *     total freed; bytes in marked slots are no more than the marked
 *     bytes the cycle counted (objects shaded one by one, and allocated
 *     black by span; racing markers may count an object twice);
 *     pages in spans equal the page allocator's in-use pages;
 *   - the list of spans with special records holds exactly those spans;
 *   - the page allocator's radix summaries against its bitmaps. */
#include "gc.h"

static uint64_t span_bytes_allocated, span_bytes_marked, spans_with_records;

static void verify_span(rt_span *s) {
    rt__span_check(s);
    for (uintptr_t i = 0; i < s->hot.nelems; i++)
        if (rt__span_is_marked(s, i) && rt__span_is_free(s, i))
            rt__fatal("heap verify: span %#lx slot %lu is marked but free", (unsigned long)s->hot.base, (unsigned long)i);
    span_bytes_allocated += (uint64_t)s->hot.alloc_count * s->hot.elemsize;
    span_bytes_marked += (uint64_t)rt__span_count_marks(s) * s->hot.elemsize;
    spans_with_records += s->specials != NULL;
}

void rt__verify_heap(const char *when) {
    span_bytes_allocated = span_bytes_marked = spans_with_records = 0;
    for (unsigned i = 0; i < RT__NUM_SPAN_CLASSES; i++) {
        rt_mcentral *c = &rt__heap.central[i];
        pthread_mutex_lock(&c->lock);
        for (int k = 0; k < 2; k++) {
            for (size_t j = 0; j < c->partial[k].n; j++) verify_span(c->partial[k].v[j]);
            for (size_t j = 0; j < c->full[k].n; j++) verify_span(c->full[k].v[j]);
        }
        pthread_mutex_unlock(&c->lock);
        rt__mcentral_check(c);
    }
    uint64_t expect = rt__heap.total_alloc_bytes - rt__heap.total_free_bytes;
    if (span_bytes_allocated != expect)
        rt__fatal("heap verify (%s): spans hold %llu allocated bytes, accounting says %llu", when,
                  (unsigned long long)span_bytes_allocated, (unsigned long long)expect);
    /* More counted than marked is two markers racing for one object
       (rt__span_set_mark); fewer is a mark the count missed. */
    if (span_bytes_marked > rt__heap.heap_marked)
        rt__fatal("heap verify (%s): spans hold %llu marked bytes, the mark counted only %llu", when,
                  (unsigned long long)span_bytes_marked, (unsigned long long)rt__heap.heap_marked);
    rt__specials_check_list(spans_with_records);
    rt__heap_check();
}
