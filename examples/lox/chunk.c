/* chunk.c -- growing a chunk's code, line and constant arrays.
 *
 * Owns: chunk_write and chunk_add_constant.  Code and line arrays hold no
 * pointers (RT_NOSCAN), so copying them is a plain memcpy; only the store
 * of the new array pointer into the function needs the barrier. */
#include <string.h>

#include "chunk.h"
#include "memory.h"

static void *grow_noscan(const void *old, size_t old_bytes, size_t new_bytes) {
    void *fresh = lox_alloc(new_bytes, RT_NOSCAN);
    if (old_bytes) memcpy(fresh, old, old_bytes);
    return fresh;
}

void chunk_write(Chunk *chunk, uint8_t byte, int line) {
    if (chunk->count == chunk->capacity) {
        int cap = chunk->capacity < 8 ? 8 : chunk->capacity * 2;
        /* Two allocations; the first result is published before the second
           so it is never held only by a C local across an allocation. */
        rt_store(&chunk->code, grow_noscan(chunk->code, (size_t)chunk->count, (size_t)cap));
        rt_store(&chunk->lines, grow_noscan(chunk->lines, (size_t)chunk->count * sizeof(int),
                                            (size_t)cap * sizeof(int)));
        chunk->capacity = cap;
    }
    chunk->code[chunk->count] = byte;   /* bytes, not pointers: no barrier */
    chunk->lines[chunk->count] = line;
    chunk->count++;
}

int chunk_add_constant(Chunk *chunk, Value value) {
    return value_array_write(&chunk->constants, value);
}
