/* runtime/os.h -- the thin OS layer: address-space reservation, commit,
 * release, time and CPU count.  Everything else in rtgc reaches the kernel
 * only through these calls (so fault injection has one place to act). */
#ifndef RT_OS_H
#define RT_OS_H

#include <stddef.h>
#include <stdint.h>

/* Reserve `bytes` of address space aligned to `align` (a power of two, at
   least the OS page size), inaccessible.  NULL if the OS refuses. */
void *rt__os_reserve(size_t bytes, size_t align);
/* Make [p, p+bytes) readable and writable (memory reads as zero the first
   time).  0 on success, -1 if the OS refuses. */
int   rt__os_commit(void *p, size_t bytes);
/* Give the physical pages of [p, p+bytes) back; the range stays mapped and
   reads as zero afterwards (MADV_DONTNEED) unless madv_free was chosen. */
void  rt__os_release(void *p, size_t bytes);
/* Unmap a reservation entirely (rt_shutdown). */
void  rt__os_unreserve(void *p, size_t bytes);
/* Reserve and commit in one step, for off-heap metadata; NULL on refusal. */
void *rt__os_alloc(size_t bytes);

uint64_t rt__nanotime(void);        /* monotonic clock, ns */
uint64_t rt__cputime_thread(void);  /* CPU time of the calling thread, ns */
uint64_t rt__cputime_process(void); /* CPU time of the whole process, ns */
int      rt__ncpu(void);
size_t   rt__os_pagesize(void);

/* Fault injection (RTDEBUG=failmmap=N): the Nth and later reservations or
   commits fail.  0 disables. */
void rt__os_set_failmmap(uint64_t n);
/* madvise flavour for rt__os_release: 1 = MADV_DONTNEED (default), 0 = MADV_FREE. */
void rt__os_set_madvdontneed(int on);

#endif
