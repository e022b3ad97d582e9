/* runtime/arena.c -- heap arenas and the address index.
 *
 * Owns: the map from any address to its 64 MiB arena (one flat array of
 * 2^22 pointers for a 48-bit address space, reserved once and touched only
 * where arenas exist) and, per arena, the map from each 8 KiB page to its
 * span.  Readers (the marker validating a candidate pointer, rt_weak_make,
 * the barrier) take no lock: arena entries and span entries are published
 * with release stores after the structure they point to is complete, and a
 * span is trusted only if its state is in-use and the address lies inside
 * [base, limit). */
#include "internal.h"

#include <string.h>

rt_arena **rt__arena_index;   /* RT_ARENA_L2_ENTRIES entries */
#define arena_index rt__arena_index

static int arena_index_init(void) {
    if (arena_index) return 0;
    size_t bytes = RT_ARENA_L2_ENTRIES * sizeof(rt_arena *);
    void *p = rt__os_reserve(bytes, rt__os_pagesize());
    if (!p) return -1;
    if (rt__os_commit(p, bytes) != 0) { rt__os_unreserve(p, bytes); return -1; }
    st_release(&arena_index, (rt_arena **)p);
    return 0;
}

/* Register [base, base+bytes) (whole arenas) in the index. */
int rt__arena_register(uintptr_t base, size_t bytes) {
    if (arena_index_init() != 0) return -1;
    for (uintptr_t a = base; a < base + bytes; a += RT_ARENA_BYTES) {
        rt_arena *ar = rt__os_alloc(sizeof(rt_arena));
        if (!ar) return -1;
        ar->base = a;
        ar->next = rt__heap.arenas;
        rt__heap.arenas = ar;
        st_release(&arena_index[a >> RT_ARENA_SHIFT], ar);
    }
    return 0;
}

/* Point every page of [base, base+npages) at s (NULL to clear). */
void rt__arena_set_spans(rt_span *s, uintptr_t base, size_t npages) {
    for (size_t i = 0; i < npages; i++) {
        uintptr_t p = base + i * RT_PAGE_SIZE;
        rt_arena *a = rt__arena_of(p);
        RT_ASSERT(a != NULL);
        st_release(&a->spans[(p >> RT_PAGE_SHIFT) % RT_PAGES_PER_ARENA], s);
    }
}

/* Heap lock held: the scavenger released [base, base + bytes), free
   pages with no span.  Each page of an arena's span map covers 512 heap
   pages, one chunk; a map page whose whole chunk was released holds only
   NULLs, and it goes back too (after a dead spike, 64 KiB per arena).  A
   later span there faults it in again as zeros; lock-free readers see
   NULL either way, and writers hold the heap lock. */
void rt__arena_release_map(uintptr_t base, size_t bytes) {
    size_t ospage = rt__os_pagesize();
    size_t per_page = ospage / sizeof(rt_span *);           /* map entries per OS page */
    uintptr_t cover = (uintptr_t)per_page * RT_PAGE_SIZE;   /* heap bytes one map page covers */
    if (ospage % sizeof(rt_span *) || RT_ARENA_BYTES % cover) return;
    for (uintptr_t c = (base + cover - 1) & ~(cover - 1); c + cover <= base + bytes; c += cover) {
        rt_arena *a = rt__arena_of(c);
        if (!a) continue;
        rt_span **first = &a->spans[(c >> RT_PAGE_SHIFT) % RT_PAGES_PER_ARENA];
        for (size_t i = 0; i < per_page; i++) RT_ASSERT(first[i] == NULL);
        (void)rt__os_release(first, ospage);
    }
}

uintptr_t rt__find_object(uintptr_t p, rt_span **sp, uintptr_t *idxp) {
    rt_span *s = rt__span_of_heap(p);
    if (!s || p >= s->limit) return 0;
    uintptr_t idx = rt__span_obj_index(s, p);
    if (sp) *sp = s;
    if (idxp) *idxp = idx;
    return s->hot.base + idx * s->hot.elemsize;
}

void rt__arenas_unmap_all(void) {
    rt_arena *a = rt__heap.arenas;
    while (a) {
        rt_arena *next = a->next;
        arena_index[a->base >> RT_ARENA_SHIFT] = NULL;
        rt__os_unreserve((void *)a->base, RT_ARENA_BYTES);
        rt__os_free(a, sizeof(rt_arena));
        a = next;
    }
    rt__heap.arenas = NULL;
}
