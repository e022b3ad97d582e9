/* memory.c -- the glue between the Lox VM and rtgc.
 *
 * Owns: rt_init/rt_thread_attach, the rtgc type of every Lox object (which
 * slots are pointers, or which function traces a Value-holding object),
 * the out-of-memory handler, and the registration of the root scanners.
 *
 * Nothing here frees memory: rtgc finds garbage by tracing from the roots
 * (vm_scan_roots, compiler_scan_roots) through the types below. */
#include <stdio.h>
#include <stdlib.h>

#include "compiler.h"
#include "memory.h"
#include "object.h"
#include "table.h"
#include "vm.h"

GcTypes gc_types;

void gc_out_of_memory(size_t request, void *ctx) {
    (void)ctx;
    fprintf(stderr, "lox: out of memory (allocating %zu bytes)\n", request);
    exit(1);
}

static void trace_value_array(void *obj, size_t size, rt_visitor *v) {
    (void)size;                 /* we trust our own count, not the slot size */
    ValueArray *array = obj;
    for (uint32_t i = 0; i < array->count; i++) visit_value(v, array->values[i]);
}

#define LAYOUT(name, T, ...)                                                  \
    do {                                                                      \
        static const size_t offs_[] = { __VA_ARGS__ };                        \
        gc_types.name = rt_type_layout(#T, sizeof(T), offs_,                  \
                                       sizeof offs_ / sizeof offs_[0]);       \
    } while (0)

static void make_types(void) {
    /* Precise layouts: every slot listed may hold NULL or an object. */
    LAYOUT(function, ObjFunction,
           offsetof(ObjFunction, chunk.code), offsetof(ObjFunction, chunk.lines),
           offsetof(ObjFunction, chunk.constants), offsetof(ObjFunction, name));
    LAYOUT(closure, ObjClosure,
           offsetof(ObjClosure, function), offsetof(ObjClosure, upvalues));
    LAYOUT(upvalue_slot, ObjUpvalue *, 0);
    LAYOUT(klass, ObjClass,
           offsetof(ObjClass, name), offsetof(ObjClass, methods.entries));
    LAYOUT(instance, ObjInstance,
           offsetof(ObjInstance, klass), offsetof(ObjInstance, fields.entries));
    LAYOUT(intern_entry, InternEntry, offsetof(InternEntry, ref));   /* the handle, not the string */

    /* Traced: these hold Values, whose encoding only we can decode. */
    gc_types.upvalue = rt_type_traced("ObjUpvalue", trace_upvalue);
    gc_types.bound_method = rt_type_traced("ObjBoundMethod", trace_bound_method);
    gc_types.value_array = rt_type_traced("ValueArray", trace_value_array);
    gc_types.entry_array = rt_type_traced("EntryArray", table_trace_entries);
}

/* The smallest heap goal.  A script keeps little alive, and rtgc
   collects a heap that small in one short pause on this thread (a "small
   cycle", about 10 us), so the VM can afford to stay this small, as
   clox's 1 MiB first collection and Boehm's default growth keep theirs,
   instead of Go's 4 MiB floor (docs/embedding.md has the figures).
   RTHEAPMIN in the environment overrides it. */
#define LOX_HEAP_MINIMUM (256 << 10)

bool gc_start(bool precise) {
    /* Zero means "default" for every other knob; RTGC, RTDEBUG and the
       rest still come from the environment. */
    rt_options opts = { 0 };
    opts.heap_minimum = LOX_HEAP_MINIMUM;
    /* Precise (the default): no stack scan, so only the VM's root
       scanners keep objects alive.  The conservative scan is a safety net
       with a cost: a stale pointer left in a register or a dead stack slot
       keeps whatever it reaches (a whole queue, in bench/lox/queue.lox). */
    if (precise) opts.scan_thread_stacks = RT_SCAN_STACKS_OFF;
    int rc = rt_init(&opts);
    if (rc != RT_OK) {
        fprintf(stderr, "lox: rt_init failed (%d)\n", rc);
        return false;
    }
    if ((rc = rt_thread_attach()) != RT_OK) {
        fprintf(stderr, "lox: rt_thread_attach failed (%d)\n", rc);
        return false;
    }
    rt_set_oom_handler(gc_out_of_memory, NULL);
    make_types();
    return true;
}

void gc_register_roots(void) {
    /* Two independent scanners: the VM's (stack, frames, globals, the weak
       intern table's slots, open upvalues, "init") and the compiler's
       (functions being built).
       rtgc calls them at the start of every cycle with the world stopped. */
    rt_root_add_scanner(vm_scan_roots, &vm);
    rt_root_add_scanner(compiler_scan_roots, NULL);
}
