/* gc/barrier.c -- the write barrier's out-of-line half.
 *
 * The inline rt_store (include/rtgc/inline.h) stores directly unless
 * RT__FLAG_WB is set.  Marks currently run with the world stopped, so no
 * mutator stores while a mark is in progress and the flag is never set:
 * these functions are the real exported symbols and the slow path kept
 * ready for the concurrent mark, where they will shade the old and the new
 * value (Go's hybrid barrier). */
#include "gc.h"

#include <string.h>

void rt__store_slow(void *slot, void *value) {
    *(void **)slot = value;
}

void (rt_store)(void *slot, void *value) {
    rt__store_inline(slot, value);
}

void rt_memmove_ptrs(void *dst, const void *src, size_t bytes) {
    if (((uintptr_t)dst | (uintptr_t)src | bytes) % sizeof(void *))
        rt__misuse("rt_memmove_ptrs", "dst %p, src %p and %zu bytes must all be pointer-aligned; "
                   "use memmove for memory without pointers", dst, src, bytes);
    memmove(dst, src, bytes);
}
