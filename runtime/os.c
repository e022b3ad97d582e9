/* runtime/os.c -- Linux implementation of runtime/os.h (mmap, madvise,
 * clock_gettime).  Reservations are PROT_NONE + MAP_NORESERVE; commit is
 * mprotect, so untouched committed pages still cost no RSS.
 *
 * Releasing follows Go's chain (mem_linux.go sysUnusedOS): MADV_FREE if
 * chosen, else or on failure MADV_DONTNEED, and as a last resort a fresh
 * MAP_FIXED mapping over the range; the caller learns whether the range
 * now reads as zero.
 *
 * Heap arenas are reserved upward from a hint address (docs/memory.md,
 * "Where the heap lives"); everything else where the kernel puts it.
 *
 * Huge pages (docs/memory.md has the policy and the measurements): metadata
 * reservations and mappings get MADV_NOHUGEPAGE, because they are sparse
 * (the 32 MiB arena index, the summary arrays) and a huge page would turn a
 * touched word into 2 MiB of RSS; heap arenas follow the system setting
 * unless rt__os_set_heap_thp says otherwise.  A refused madvise for THP is
 * ignored (kernels without THP return EINVAL). */

#include "os.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static uint64_t failmmap_at;          /* 0 = off */
static uint64_t mmap_calls, refusals;
static int      use_dontneed = 1;
static int      heap_thp = RT_THP_SYSTEM;
static uint64_t alloc_bytes;
static const char *first_refused;     /* kind of the first refused call, for tests */
static size_t   first_refused_bytes;

void rt__os_set_failmmap(uint64_t n) {
    __atomic_store_n(&mmap_calls, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&refusals, 0, __ATOMIC_RELAXED);
    first_refused = NULL;
    first_refused_bytes = 0;
    __atomic_store_n(&failmmap_at, n, __ATOMIC_RELEASE);
}
uint64_t rt__os_failmmap_refusals(void) { return __atomic_load_n(&refusals, __ATOMIC_RELAXED); }
void rt__os_set_madvdontneed(int on) { use_dontneed = on; }
void rt__os_set_heap_thp(int mode) { heap_thp = mode < 0 ? RT_THP_NONE : mode > 0 ? RT_THP_HUGE : RT_THP_SYSTEM; }
int  rt__os_heap_thp(void) { return heap_thp; }
uint64_t rt__os_alloc_bytes(void) { return __atomic_load_n(&alloc_bytes, __ATOMIC_RELAXED); }
void rt__os_reset_stats(void) { __atomic_store_n(&alloc_bytes, 0, __ATOMIC_RELAXED); }

const char *rt__os_failmmap_first(size_t *bytes) {
    if (bytes) *bytes = first_refused_bytes;
    return first_refused;
}

static int injected_failure(const char *kind, size_t bytes) {
    uint64_t at = __atomic_load_n(&failmmap_at, __ATOMIC_ACQUIRE);
    if (at == 0) return 0;
    uint64_t n = __atomic_add_fetch(&mmap_calls, 1, __ATOMIC_RELAXED);
    if (n < at) return 0;
    if (__atomic_add_fetch(&refusals, 1, __ATOMIC_RELAXED) == 1) {
        first_refused = kind;
        first_refused_bytes = bytes;
    }
    return 1;
}

static void *reserve(size_t bytes, size_t align) {
    size_t span = bytes + align;
    char *p = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return NULL;
    uintptr_t a = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
    if (a > (uintptr_t)p) munmap(p, a - (uintptr_t)p);
    uintptr_t end = (uintptr_t)p + span, aend = a + bytes;
    if (end > aend) munmap((void *)aend, end - aend);
    return (void *)a;
}

void *rt__os_reserve(size_t bytes, size_t align) {
    if (injected_failure("reserve", bytes)) return NULL;
    void *p = reserve(bytes, align);
    if (p) (void)madvise(p, bytes, MADV_NOHUGEPAGE);
    return p;
}

/* Where the next heap reservation is tried first (0: not chosen yet).  The
   page allocator is first-fit by address, so the heap must grow upward;
   the kernel's placement is top-down, and a new arena below the old ones
   took every allocation while freed, resident pages above it sat idle.
   ThreadSanitizer has shadow memory only for its fixed application
   ranges, so its builds keep the kernel's placement. */
#define HEAP_HINTS (!RT_TSAN_BUILD && UINTPTR_MAX > 0xffffffffu)
static uintptr_t heap_hint;

/* 64 TiB plus a random multiple of 4 GiB below 4 TiB: far from the image,
   brk and the mmap area, and from Go's 0xc000000000 (a VM may link Go). */
static uintptr_t first_heap_hint(void) {
    const unsigned char *r = (const unsigned char *)getauxval(AT_RANDOM);
    uintptr_t step = r ? ((uintptr_t)r[0] | (uintptr_t)(r[1] & 3) << 8) : 0;
    return ((uintptr_t)0x4000 << 32) + (step << 32);
}

/* At heap_hint or a little above it, or NULL; never replaces a mapping.
   Something else mapped at the hint (an embedder's own fixed mapping)
   moves the try 4 GiB up, a few times, before the kernel gets to choose. */
static void *reserve_at_hint(size_t bytes, size_t align) {
    if (!HEAP_HINTS) return NULL;
    if (!heap_hint) heap_hint = first_heap_hint();
    for (int attempt = 0; attempt < 8; attempt++) {
        uintptr_t want = (heap_hint + align - 1) & ~(uintptr_t)(align - 1);
        void *p = mmap((void *)want, bytes, PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
        if (p == (void *)want) {
            heap_hint = want + bytes;
            return p;
        }
        if (p != MAP_FAILED) munmap(p, bytes);   /* a kernel before 4.17 took the flag as a hint */
        heap_hint = want + ((uintptr_t)4 << 30);
    }
    return NULL;
}

void *rt__os_reserve_heap(size_t bytes, size_t align) {
    if (injected_failure("reserve_heap", bytes)) return NULL;
    void *p = reserve_at_hint(bytes, align);
    if (!p) p = reserve(bytes, align);
    if (p && heap_thp != RT_THP_SYSTEM)
        (void)madvise(p, bytes, heap_thp == RT_THP_HUGE ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    return p;
}

int rt__os_commit(void *p, size_t bytes) {
    if (injected_failure("commit", bytes)) return -1;
    return mprotect(p, bytes, PROT_READ | PROT_WRITE) == 0 ? 0 : -1;
}

int rt__os_release(void *p, size_t bytes) {
    if (!use_dontneed && madvise(p, bytes, MADV_FREE) == 0) return RT_OS_RELEASED_DIRTY;
    if (madvise(p, bytes, MADV_DONTNEED) == 0) return RT_OS_RELEASED_ZERO;
    /* A fresh mapping in place: the old pages go, the new ones read zero.
       The range keeps the heap's huge-page advice only if we reapply it. */
    void *q = mmap(p, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    if (q == MAP_FAILED) return -1;
    if (heap_thp != RT_THP_SYSTEM)
        (void)madvise(p, bytes, heap_thp == RT_THP_HUGE ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    return RT_OS_RELEASED_ZERO;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23   /* Linux 5.14; Debian 12's headers may predate it */
#endif

void rt__os_populate(void *p, size_t bytes) {
    static int unsupported;
    if (!__atomic_load_n(&unsupported, __ATOMIC_RELAXED)) {
        if (madvise(p, bytes, MADV_POPULATE_WRITE) == 0 || errno != EINVAL) return;
        __atomic_store_n(&unsupported, 1, __ATOMIC_RELAXED);
    }
    /* An atomic add of 0 is a write that keeps what the page holds. */
    size_t page = rt__os_pagesize();
    for (uintptr_t a = (uintptr_t)p; a < (uintptr_t)p + bytes; a += page)
        __atomic_fetch_add((uintptr_t *)a, 0, __ATOMIC_RELAXED);
}

void rt__os_mutex_init_spinning(pthread_mutex_t *m) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
}

void rt__os_unreserve(void *p, size_t bytes) { munmap(p, bytes); }

void rt__os_free(void *p, size_t bytes) {
    munmap(p, bytes);
    __atomic_sub_fetch(&alloc_bytes, bytes, __ATOMIC_RELAXED);
}

void *rt__os_alloc(size_t bytes) {
    if (injected_failure("alloc", bytes)) return NULL;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    (void)madvise(p, bytes, MADV_NOHUGEPAGE);
    __atomic_add_fetch(&alloc_bytes, bytes, __ATOMIC_RELAXED);
    return p;
}

static uint64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
uint64_t rt__nanotime(void) { return clock_ns(CLOCK_MONOTONIC); }
uint64_t rt__cputime_thread(void) { return clock_ns(CLOCK_THREAD_CPUTIME_ID); }
uint64_t rt__cputime_process(void) { return clock_ns(CLOCK_PROCESS_CPUTIME_ID); }
/* Read once, as Go's osinit does: sysconf reads a file in /sys, tens of
   microseconds, and the limiter asked at every mark start, inside the
   pause (it was most of the 130-190 us of time-to-stop in the pause
   benchmark). */
int rt__ncpu(void) {
    static int ncpu;
    int n = __atomic_load_n(&ncpu, __ATOMIC_RELAXED);
    if (!n) {
        long s = sysconf(_SC_NPROCESSORS_ONLN);
        n = s > 0 ? (int)s : 1;
        __atomic_store_n(&ncpu, n, __ATOMIC_RELAXED);
    }
    return n;
}

void rt__os_futex_wait(uint32_t *addr, uint32_t val, uint64_t timeout_ns) {
    struct timespec ts = { .tv_sec = (time_t)(timeout_ns / 1000000000u), .tv_nsec = (long)(timeout_ns % 1000000000u) };
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, &ts, NULL, 0);
}

void rt__os_futex_wake_all(uint32_t *addr) {
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

size_t rt__os_pagesize(void) { return (size_t)sysconf(_SC_PAGESIZE); }
