/* memory.h -- the glue between the Lox VM and rtgc.
 *
 * Owns: starting rtgc, the rtgc type descriptors of every Lox object, the
 * allocation entry point, and the registration of the VM's root scanners.
 *
 * The rules this VM lives by (docs/embedding.md explains each):
 *  1. Every Lox object comes from lox_alloc with its precise rtgc type.
 *  2. Any allocation may run a whole collection (RTDEBUG=gcstress=1 does so
 *     every time), so every object a C function still needs after an
 *     allocation must be reachable from a root first: the VM stack, a call
 *     frame, a constant pool, the compiler's functions.  A C local alone is
 *     not a root (and with the default --precise, nothing else is either).
 *  3. Every store of a pointer, or of a Value that may hold one, into a heap
 *     object goes through rt_store / value_store / rt_memmove_ptrs.  The only
 *     exception: initialising stores into an object straight after it was
 *     allocated, before the next allocation or safepoint. */
#ifndef LOX_MEMORY_H
#define LOX_MEMORY_H

#include "common.h"

typedef struct {
    const rt_type *function;      /* layout */
    const rt_type *closure;       /* layout */
    const rt_type *upvalue_slot;  /* layout: one pointer, element of a closure's array */
    const rt_type *klass;         /* layout */
    const rt_type *instance;      /* layout */
    const rt_type *upvalue;       /* traced */
    const rt_type *bound_method;  /* traced */
    const rt_type *value_array;   /* traced */
    const rt_type *entry_array;   /* traced */
    const rt_type *intern_entry;  /* layout elem: the weak intern table's slots */
} GcTypes;

extern GcTypes gc_types;

/* rt_init + rt_thread_attach + the types above.  precise = do not scan the
   C stack conservatively, so only the registered scanners keep objects
   alive.  Returns false (after printing why) if rtgc would not start. */
bool gc_start(bool precise);

/* Register the VM's root scanners (vm.c and compiler.c provide them). */
void gc_register_roots(void);

/* Allocate a zeroed rtgc object of the given type.  Never returns NULL (the
   out-of-memory handler exits).  The macro form keeps constant sizes
   constant, so rtgc's inline fast path specialises on them. */
#define lox_alloc(size, type) lox_checked(rt_alloc((size), (type)), (size))

static inline void *lox_checked(void *p, size_t size) {
    extern void gc_out_of_memory(size_t request, void *ctx);
    if (LOX_UNLIKELY(p == NULL)) gc_out_of_memory(size, NULL);
    return p;
}

#endif
