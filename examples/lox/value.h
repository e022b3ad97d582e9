/* value.h -- the Lox value representation: one 64-bit word per value.
 *
 * Owns: the encoding, equality, printing, and ValueArray, the growable
 * constant pool of a chunk.
 *
 * Encoding ("pointer-native NaN boxing"):
 *
 *   0 .............. nil          (so zeroed rtgc memory reads as nil)
 *   2, 3 ........... false, true
 *   4 .. 2^49-1 .... an object: the word IS the Obj pointer, untouched
 *   2^49 .. ........ a number: its IEEE-754 bits plus 2^49
 *
 * Why not clox's usual NaN boxing (sign|quiet-NaN|pointer)?  Because the
 * collector must recognise object words as heap pointers, in three places:
 * the write barrier (rt_store shades the old and new word it is handed), the
 * conservative scan of the C stack, and our trace functions.  With the
 * pointer kept verbatim, `rt_store(slot, (void *)value)` hands the barrier a
 * real address for objects and, for everything else, a word that can never
 * be a heap address (nil/false/true are below any mapping; numbers are at
 * or above 2^49, beyond user-space addresses on x86-64 and aarch64), which
 * the barrier ignores.  NaNs are canonicalised so no double, once offset,
 * wraps below 2^49. */
#ifndef LOX_VALUE_H
#define LOX_VALUE_H

#include <math.h>
#include <string.h>

#include "common.h"

typedef struct Obj Obj;
typedef struct ObjString ObjString;

typedef uint64_t Value;

#define NUMBER_OFFSET ((uint64_t)1 << 49)

#define NIL_VAL   ((Value)0)
#define FALSE_VAL ((Value)2)
#define TRUE_VAL  ((Value)3)

#define IS_NIL(v)    ((v) == NIL_VAL)
#define IS_BOOL(v)   (((v) | 1) == TRUE_VAL)
#define IS_NUMBER(v) ((v) >= NUMBER_OFFSET)
#define IS_OBJ(v)    ((v) > TRUE_VAL && (v) < NUMBER_OFFSET)

#define AS_BOOL(v)   ((v) == TRUE_VAL)
#define AS_OBJ(v)    ((Obj *)(uintptr_t)(v))
#define AS_NUMBER(v) value_to_num(v)

#define BOOL_VAL(b)   ((b) ? TRUE_VAL : FALSE_VAL)
#define OBJ_VAL(o)    ((Value)(uintptr_t)(o))
#define NUMBER_VAL(n) num_to_value(n)

static inline Value num_to_value(double d) {
    uint64_t bits;
    if (LOX_UNLIKELY(d != d)) /* keep the sign (clox prints "-nan"), drop the payload */
        bits = signbit(d) ? 0xfff8000000000000ull : 0x7ff8000000000000ull;
    else
        memcpy(&bits, &d, sizeof bits);
    return bits + NUMBER_OFFSET;
}

static inline double value_to_num(Value v) {
    uint64_t bits = v - NUMBER_OFFSET;
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static inline bool values_equal(Value a, Value b) {
    if (IS_NUMBER(a) && IS_NUMBER(b)) return AS_NUMBER(a) == AS_NUMBER(b);
    return a == b;
}

/* Report v to the collector if it holds an object (used by every trace
   function and by the root scanners). */
static inline void visit_value(rt_visitor *visitor, Value v) {
    if (IS_OBJ(v)) rt_visit(visitor, AS_OBJ(v));
}

/* Store a value into a slot inside a heap object: through the barrier. */
static inline void value_store(Value *slot, Value v) {
    rt_store(slot, (void *)(uintptr_t)v);
}

/* A chunk's constant pool: an rtgc object of the traced type "ValueArray"
   whose trace function visits values[0 .. count).  It never grows in place:
   value_array_write allocates a bigger one and re-points *owner at it. */
typedef struct ValueArray {
    uint32_t count;
    uint32_t capacity;
    Value    values[];
} ValueArray;

/* Append v to the array *owner points at (owner is a slot in a heap object;
   NULL *owner means empty).  May allocate: the caller keeps v reachable.
   Returns v's index. */
int value_array_write(ValueArray **owner, Value v);

void print_value(Value v);

#endif
