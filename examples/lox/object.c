/* object.c -- constructing and printing Lox objects.
 *
 * Owns: the constructors (one rtgc allocation each, with the type memory.c
 * registered for that kind), string interning, and print_object.
 *
 * Invariant kept by every constructor: its arguments are reachable from a
 * root before it is called (the allocation may collect), and the fields it
 * fills right after rt_alloc need no barrier because the object is not yet
 * reachable from anything the collector has seen.  new_closure allocates
 * twice, so it roots its first object on the VM stack in between. */
#include <stdio.h>
#include <string.h>

#include "memory.h"
#include "object.h"
#include "table.h"
#include "vm.h"

#define ALLOCATE_OBJ(T, rttype, kind) ((T *)allocate_object(sizeof(T), (rttype), (kind)))

/* Always inlined: sizeof(T) then reaches rt_alloc as a constant, which
   selects rtgc's size-specialized fast path for layout and pointer-free
   objects (a call here would hide the constant). */
static inline __attribute__((always_inline)) Obj *allocate_object(size_t size, const rt_type *type, ObjType kind) {
    Obj *object = lox_alloc(size, type);
    object->type = kind;
    return object;
}

ObjBoundMethod *new_bound_method(Value receiver, ObjClosure *method) {
    ObjBoundMethod *bound = ALLOCATE_OBJ(ObjBoundMethod, gc_types.bound_method, OBJ_BOUND_METHOD);
    bound->receiver = receiver;
    bound->method = method;
    return bound;
}

ObjClass *new_class(ObjString *name) {
    ObjClass *klass = ALLOCATE_OBJ(ObjClass, gc_types.klass, OBJ_CLASS);
    klass->name = name;
    table_init(&klass->methods);
    return klass;
}

ObjClosure *new_closure(ObjFunction *function) {
    ObjClosure *closure = ALLOCATE_OBJ(ObjClosure, gc_types.closure, OBJ_CLOSURE);
    closure->function = function;
    if (function->upvalue_count > 0) {
        /* Second allocation: root the closure first.  The array starts
           all-NULL; OP_CLOSURE fills it (with rt_store, as the closure is
           published by then). */
        vm_push(OBJ_VAL(closure));
        ObjUpvalue **upvalues = rt_alloc_array(gc_types.upvalue_slot, (size_t)function->upvalue_count);
        lox_checked(upvalues, sizeof(void *) * (size_t)function->upvalue_count);
        rt_store(&closure->upvalues, upvalues);
        closure->upvalue_count = function->upvalue_count;
        vm_pop();
    }
    return closure;
}

ObjFunction *new_function(void) {
    /* All-zero is a valid empty function: arity 0, no name, empty chunk. */
    return ALLOCATE_OBJ(ObjFunction, gc_types.function, OBJ_FUNCTION);
}

ObjInstance *new_instance(ObjClass *klass) {
    ObjInstance *instance = ALLOCATE_OBJ(ObjInstance, gc_types.instance, OBJ_INSTANCE);
    instance->klass = klass;
    table_init(&instance->fields);
    return instance;
}

ObjNative *new_native(NativeFn function) {
    ObjNative *native = ALLOCATE_OBJ(ObjNative, RT_NOSCAN, OBJ_NATIVE);
    native->function = function;
    return native;
}

ObjUpvalue *new_upvalue(Value *slot) {
    ObjUpvalue *upvalue = ALLOCATE_OBJ(ObjUpvalue, gc_types.upvalue, OBJ_UPVALUE);
    upvalue->location = slot;
    upvalue->closed = NIL_VAL;
    upvalue->next = NULL;
    return upvalue;
}

/* ---- strings ------------------------------------------------------------- */

#define FNV_OFFSET 2166136261u
#define FNV_PRIME  16777619u

static inline uint32_t hash_more(uint32_t hash, const char *chars, int length) {
    for (int i = 0; i < length; i++) {
        hash ^= (uint8_t)chars[i];
        hash *= FNV_PRIME;
    }
    return hash;
}

/* Allocate an uninterned string of the given length (chars left zero).
   Strings are RT_NOSCAN: the collector never looks inside them.  The size
   is rounded up to 8 so the header stays aligned even when rtgc's tiny
   allocator packs small pointer-free objects together. */
static ObjString *allocate_string(int length, uint32_t hash) {
    size_t size = (sizeof(ObjString) + (size_t)length + 1 + 7) & ~(size_t)7;
    ObjString *string = (ObjString *)allocate_object(size, RT_NOSCAN, OBJ_STRING);
    string->length = length;
    string->hash = hash;
    return string;
}

/* Enter a fresh string in the intern table.  The table holds a weak handle
   to it (table.c), so interning never keeps a string alive; intern_add
   allocates (the handle, maybe a bigger array), so the string sits on the
   VM stack meanwhile. */
static ObjString *intern(ObjString *string) {
    vm_push(OBJ_VAL(string));
    intern_add(&vm.strings, string);
    vm_pop();
    return string;
}

ObjString *copy_string(const char *chars, int length) {
    uint32_t hash = hash_more(FNV_OFFSET, chars, length);
    ObjString *interned = intern_find(&vm.strings, chars, length, hash);
    if (interned != NULL) return interned;
    ObjString *string = allocate_string(length, hash);
    memcpy(string->chars, chars, (size_t)length);
    return intern(string);
}

ObjString *concat_strings(ObjString *a, ObjString *b) {
    /* Hash and look up the result without building it, so a hit costs no
       allocation; a and b stay on the VM stack for the miss path. */
    uint32_t hash = hash_more(hash_more(FNV_OFFSET, a->chars, a->length), b->chars, b->length);
    ObjString *interned = intern_find_concat(&vm.strings, a, b, hash);
    if (interned != NULL) return interned;
    ObjString *string = allocate_string(a->length + b->length, hash);
    memcpy(string->chars, a->chars, (size_t)a->length);
    memcpy(string->chars + a->length, b->chars, (size_t)b->length);
    return intern(string);
}

/* ---- trace functions ---------------------------------------------------- */

void trace_upvalue(void *obj, size_t size, rt_visitor *v) {
    (void)size;
    ObjUpvalue *upvalue = obj;
    /* location is not an edge: it points into the VM stack (a root) or at
       this object's own closed field. */
    visit_value(v, upvalue->closed);
    rt_visit(v, upvalue->next);
}

void trace_bound_method(void *obj, size_t size, rt_visitor *v) {
    (void)size;
    ObjBoundMethod *bound = obj;
    visit_value(v, bound->receiver);
    rt_visit(v, bound->method);
}

/* ---- printing ------------------------------------------------------------ */

static void print_function(ObjFunction *function) {
    if (function->name == NULL) printf("<script>");
    else printf("<fn %s>", function->name->chars);
}

void print_object(Value v) {
    switch (OBJ_TYPE(v)) {
    case OBJ_BOUND_METHOD: print_function(AS_BOUND_METHOD(v)->method->function); break;
    case OBJ_CLASS:        printf("%s", AS_CLASS(v)->name->chars); break;
    case OBJ_CLOSURE:      print_function(AS_CLOSURE(v)->function); break;
    case OBJ_FUNCTION:     print_function(AS_FUNCTION(v)); break;
    case OBJ_INSTANCE:     printf("%s instance", AS_INSTANCE(v)->klass->name->chars); break;
    case OBJ_NATIVE:       printf("<native fn>"); break;
    case OBJ_STRING:       printf("%s", AS_CSTRING(v)); break;
    case OBJ_UPVALUE:      printf("upvalue"); break;
    }
}
