/* runtime/os.h -- the thin OS layer: address-space reservation, commit,
 * release, time, CPU count and futex waits.  Everything else in rtgc
 * reaches the kernel only through these calls (so fault injection has one
 * place to act). */
#ifndef RT_OS_H
#define RT_OS_H

#include <stddef.h>
#include <pthread.h>
#include <stdint.h>

/* RT_ASAN_BUILD / RT_TSAN_BUILD: 1 when built with that sanitizer (gcc
   defines __SANITIZE_*__, clang answers __has_feature). */
#if defined(__SANITIZE_ADDRESS__)
#define RT_ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RT_ASAN_BUILD 1
#endif
#endif
#ifndef RT_ASAN_BUILD
#define RT_ASAN_BUILD 0
#endif
#if defined(__SANITIZE_THREAD__)
#define RT_TSAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RT_TSAN_BUILD 1
#endif
#endif
#ifndef RT_TSAN_BUILD
#define RT_TSAN_BUILD 0
#endif

/* Reserve `bytes` of address space aligned to `align` (a power of two, at
   least the OS page size), inaccessible.  NULL if the OS refuses.  For
   metadata: the range is marked MADV_NOHUGEPAGE (see docs/memory.md). */
void *rt__os_reserve(size_t bytes, size_t align);
/* The same for heap arenas: each lies above the last when the address
   space allows (the page allocator is first-fit by address), and the range
   gets the heap's huge-page policy (rt__os_set_heap_thp) instead.  Called
   with the heap lock held. */
void *rt__os_reserve_heap(size_t bytes, size_t align);
/* Make [p, p+bytes) readable and writable (memory reads as zero the first
   time).  0 on success, -1 if the OS refuses. */
int   rt__os_commit(void *p, size_t bytes);
/* Give the physical pages of [p, p+bytes) back; the range stays mapped.
   Returns RT_OS_RELEASED_ZERO if the range now reads as zero (MADV_DONTNEED,
   or the MAP_FIXED remap fallback), RT_OS_RELEASED_DIRTY if it may still
   hold old data (MADV_FREE: the kernel reclaims it only under pressure),
   or -1 if nothing was released. */
enum { RT_OS_RELEASED_ZERO = 0, RT_OS_RELEASED_DIRTY = 1 };
int   rt__os_release(void *p, size_t bytes);
/* Fault [p, p+bytes) in for writing now, contents kept: one madvise
   (MADV_POPULATE_WRITE) instead of a fault per OS page (docs/memory.md,
   "First touch").  Kernels before 5.14 get each page touched; a refusal
   (no memory) leaves the pages to fault when used. */
void  rt__os_populate(void *p, size_t bytes);
/* Unmap a reservation entirely (rt_shutdown). */
void  rt__os_unreserve(void *p, size_t bytes);
/* Unmap memory from rt__os_alloc. */
void  rt__os_free(void *p, size_t bytes);
/* Reserve and commit in one step, for off-heap metadata; NULL on refusal. */
void *rt__os_alloc(size_t bytes);

/* A mutex for critical sections of a few dozen instructions that two
   threads take at a high rate (an mcentral's span sets: the allocating
   thread and the background sweeper).  glibc's adaptive kind spins a
   while before it sleeps, so a holder running on another CPU lets go
   before the waiter pays a futex wait and the holder a futex wake. */
void rt__os_mutex_init_spinning(pthread_mutex_t *m);

uint64_t rt__nanotime(void);        /* monotonic clock, ns */
uint64_t rt__cputime_thread(void);  /* CPU time of the calling thread, ns */
uint64_t rt__cputime_process(void); /* CPU time of the whole process, ns */
int      rt__ncpu(void);                  /* online CPUs, read once */
/* Sleep while *addr == val, at most timeout_ns (spurious returns allowed);
   wake every sleeper on addr. */
void     rt__os_futex_wait(uint32_t *addr, uint32_t val, uint64_t timeout_ns);
void     rt__os_futex_wake_all(uint32_t *addr);
size_t   rt__os_pagesize(void);

/* Fault injection (RTDEBUG=failmmap=N): the Nth and later reservations,
   commits and metadata mappings (rt__os_reserve, rt__os_reserve_heap,
   rt__os_commit, rt__os_alloc) fail, counted from this call.  0 disables.
   rt__os_release is never failed on purpose. */
void rt__os_set_failmmap(uint64_t n);
/* Calls refused by failmmap so far, and the kind ("reserve", "reserve_heap",
   "commit", "alloc") and size of the first one (tests). */
uint64_t    rt__os_failmmap_refusals(void);
const char *rt__os_failmmap_first(size_t *bytes);
/* madvise flavour for rt__os_release: 1 = MADV_DONTNEED (default), 0 = MADV_FREE. */
void rt__os_set_madvdontneed(int on);

/* Transparent huge pages for heap arenas: RT_THP_SYSTEM (default) leaves
   them to /sys/kernel/mm/transparent_hugepage/enabled, RT_THP_HUGE asks
   for huge pages (MADV_HUGEPAGE), RT_THP_NONE refuses them
   (MADV_NOHUGEPAGE).  Applies to arenas reserved afterwards. */
enum { RT_THP_NONE = -1, RT_THP_SYSTEM = 0, RT_THP_HUGE = 1 };
void rt__os_set_heap_thp(int mode);
int  rt__os_heap_thp(void);

/* Bytes held from rt__os_alloc (off-heap metadata: span and bitmap pools,
   span sets, arena records, page-allocator blocks, mark work buffers,
   special records), less what rt__os_free gave back.  Reset at rt_init. */
uint64_t rt__os_alloc_bytes(void);
void     rt__os_reset_stats(void);

#endif
