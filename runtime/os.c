/* runtime/os.c -- Linux implementation of runtime/os.h (mmap, madvise,
 * clock_gettime).  Reservations are PROT_NONE + MAP_NORESERVE; commit is
 * mprotect, so untouched committed pages still cost no RSS. */

#include "os.h"

#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static uint64_t failmmap_at;          /* 0 = off */
static uint64_t mmap_calls;
static int      use_dontneed = 1;

void rt__os_set_failmmap(uint64_t n) { failmmap_at = n; mmap_calls = 0; }
void rt__os_set_madvdontneed(int on) { use_dontneed = on; }

static int injected_failure(void) {
    uint64_t n = __atomic_add_fetch(&mmap_calls, 1, __ATOMIC_RELAXED);
    return failmmap_at != 0 && n >= failmmap_at;
}

void *rt__os_reserve(size_t bytes, size_t align) {
    if (injected_failure()) return NULL;
    size_t span = bytes + align;
    char *p = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return NULL;
    uintptr_t a = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
    if (a > (uintptr_t)p) munmap(p, a - (uintptr_t)p);
    uintptr_t end = (uintptr_t)p + span, aend = a + bytes;
    if (end > aend) munmap((void *)aend, end - aend);
    return (void *)a;
}

int rt__os_commit(void *p, size_t bytes) {
    if (injected_failure()) return -1;
    return mprotect(p, bytes, PROT_READ | PROT_WRITE) == 0 ? 0 : -1;
}

void rt__os_release(void *p, size_t bytes) {
    madvise(p, bytes, use_dontneed ? MADV_DONTNEED : MADV_FREE);
}

void rt__os_unreserve(void *p, size_t bytes) { munmap(p, bytes); }

void *rt__os_alloc(size_t bytes) {
    if (injected_failure()) return NULL;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static uint64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
uint64_t rt__nanotime(void) { return clock_ns(CLOCK_MONOTONIC); }
uint64_t rt__cputime_thread(void) { return clock_ns(CLOCK_THREAD_CPUTIME_ID); }
uint64_t rt__cputime_process(void) { return clock_ns(CLOCK_PROCESS_CPUTIME_ID); }
int rt__ncpu(void) { long n = sysconf(_SC_NPROCESSORS_ONLN); return n > 0 ? (int)n : 1; }
size_t rt__os_pagesize(void) { return (size_t)sysconf(_SC_PAGESIZE); }
