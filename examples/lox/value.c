/* value.c -- printing values and growing constant pools.
 *
 * Owns: print_value (the exact clox output: %g numbers, "nil", "true") and
 * value_array_write, the only place a ValueArray is (re)allocated.  Growth
 * follows the rtgc rule for containers: allocate a new object, copy the old
 * contents with rt_memmove_ptrs, then publish it with one rt_store. */
#include <stdio.h>

#include "memory.h"
#include "object.h"
#include "value.h"

int value_array_write(ValueArray **owner, Value v) {
    ValueArray *a = *owner;
    if (a == NULL || a->count == a->capacity) {
        uint32_t old_cap = a ? a->capacity : 0;
        uint32_t cap = old_cap < 8 ? 8 : old_cap * 2;
        ValueArray *grown = lox_alloc(sizeof(ValueArray) + cap * sizeof(Value), gc_types.value_array);
        grown->capacity = cap;
        if (a != NULL) {
            /* Pointer-holding memory copied into a heap object: through the
               bulk barrier, never a bare memcpy. */
            rt_memmove_ptrs(grown->values, a->values, a->count * sizeof(Value));
            grown->count = a->count;
        }
        rt_store(owner, grown);
        a = grown;
    }
    value_store(&a->values[a->count], v);
    a->count++;
    return (int)a->count - 1;
}

void print_value(Value v) {
    if (IS_NUMBER(v)) printf("%g", AS_NUMBER(v));
    else if (IS_NIL(v)) printf("nil");
    else if (IS_BOOL(v)) printf(AS_BOOL(v) ? "true" : "false");
    else print_object(v);
}
