/* runtime/pagealloc.h -- the page allocator: which 8 KiB heap pages are in
 * use, found by address-ordered first fit over a radix tree of summaries
 * (Go's pageAlloc), plus one "scavenged" bit per page for the scavenger.
 *
 * Not thread-safe: the caller (mheap) holds the heap lock. */
#ifndef RT_PAGEALLOC_H
#define RT_PAGEALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RT_PAGE_SHIFT_PA     13
#define RT_CHUNK_PAGES       512                       /* pages per bitmap chunk (4 MiB) */
#define RT_CHUNK_BYTES       ((uintptr_t)RT_CHUNK_PAGES << RT_PAGE_SHIFT_PA)
#define RT_HEAP_ADDR_BITS    48

typedef struct rt__pagealloc rt__pagealloc;

/* Create/destroy an allocator covering no memory yet.  Its summaries and
   chunk bitmaps live in reserved address space committed on demand. */
rt__pagealloc *rt__pages_new(void);
void           rt__pages_destroy(rt__pagealloc *pa);

/* Add [base, base+bytes) to the allocator, all pages free and scavenged.
   base and bytes are multiples of RT_CHUNK_BYTES.  0, or -1 if metadata
   could not be committed (nothing changes then). */
int       rt__pages_grow(rt__pagealloc *pa, uintptr_t base, size_t bytes);

/* Allocate npages contiguous pages at the lowest address that fits; 0 if
   none.  *scavenged receives how many of them had their scavenged bit set
   (the bits are cleared: the caller is about to use the memory). */
uintptr_t rt__pages_alloc(rt__pagealloc *pa, size_t npages, size_t *scavenged);

/* Free pages previously allocated (they keep scavenged = 0). */
void      rt__pages_free(rt__pagealloc *pa, uintptr_t base, size_t npages);

/* Scavenger support: find up to max_pages free, unscavenged pages, highest
   addresses first, mark them scavenged, and report the runs through fn
   (which releases them to the OS).  Returns pages marked. */
size_t    rt__pages_scavenge(rt__pagealloc *pa, size_t max_pages,
                             void (*fn)(uintptr_t base, size_t npages, void *ctx), void *ctx);

/* Scavenging with the lock dropped: take the highest run of at most
   max_pages free, unscavenged pages out of the free pool (they read as in
   use, so nothing allocates them), then give it back with
   rt__pages_scav_return, scavenged if the OS took the pages (released) or
   unscavenged if it refused.  force = false skips chunks that are at least
   96.875% in use and resumes where the last such walk stopped, until
   rt__pages_scav_newgen (a new GC cycle) starts again from the top.
   Returns pages taken, *base the run's address; 0 if none. */
size_t    rt__pages_scav_take(rt__pagealloc *pa, size_t max_pages, bool force, uintptr_t *base);
void      rt__pages_scav_return(rt__pagealloc *pa, uintptr_t base, size_t npages, bool released);
void      rt__pages_scav_newgen(rt__pagealloc *pa);
/* Bytes of summary arrays committed so far (for the memory limit). */
size_t    rt__pages_meta_bytes(const rt__pagealloc *pa);

/* Counters, exact. */
size_t    rt__pages_total(const rt__pagealloc *pa);      /* pages added by grow */
size_t    rt__pages_inuse(const rt__pagealloc *pa);      /* allocated pages */
size_t    rt__pages_scavenged(const rt__pagealloc *pa);  /* free pages with the scavenged bit */

/* Page-level queries (tests, heap verifier). */
bool      rt__pages_is_allocated(const rt__pagealloc *pa, uintptr_t addr);
bool      rt__pages_is_scavenged(const rt__pagealloc *pa, uintptr_t addr);

/* Verify every summary against the bitmaps it summarizes; returns 0 or
   aborts with a message naming the first bad node (debug and tests). */
int       rt__pages_check(const rt__pagealloc *pa);

#endif
