/* object.h -- the Lox heap objects.
 *
 * Owns: the object structs, their constructors and printing.
 *
 * Every object starts with an Obj header holding its kind; the rtgc type
 * each kind is allocated with is noted beside it (memory.c registers them):
 *
 *   ObjString       RT_NOSCAN      header + inline chars, no pointers
 *   ObjNative       RT_NOSCAN      a C function pointer is not a heap pointer
 *   ObjFunction     layout         name, code, lines, constants
 *   ObjClosure      layout         function, upvalues (a separate array)
 *   upvalue array   layout elem    one ObjUpvalue* per element
 *   ObjClass        layout         name, methods.entries
 *   ObjInstance     layout         klass, fields.entries
 *   ObjUpvalue      traced         holds a Value (closed) and next
 *   ObjBoundMethod  traced         holds a Value (receiver) and method
 *
 * Rule of thumb used throughout: a struct whose pointer fields are plain
 * C pointers gets a precise layout; anything holding a Value gets a trace
 * function that decodes it. */
#ifndef LOX_OBJECT_H
#define LOX_OBJECT_H

#include "chunk.h"
#include "common.h"
#include "table.h"
#include "value.h"

typedef enum {
    OBJ_BOUND_METHOD,
    OBJ_CLASS,
    OBJ_CLOSURE,
    OBJ_FUNCTION,
    OBJ_INSTANCE,
    OBJ_NATIVE,
    OBJ_STRING,
    OBJ_UPVALUE,
} ObjType;

struct Obj {
    ObjType type;
};

struct ObjString {
    Obj      obj;
    int      length;
    uint32_t hash;
    char     chars[];           /* length bytes plus a NUL */
};

typedef struct ObjFunction {
    Obj        obj;
    int        arity;
    int        upvalue_count;
    Chunk      chunk;
    ObjString *name;            /* NULL for the top-level script */
} ObjFunction;

typedef Value (*NativeFn)(int arg_count, Value *args);

typedef struct ObjNative {
    Obj      obj;
    NativeFn function;
} ObjNative;

typedef struct ObjUpvalue {
    Obj                obj;
    Value             *location;  /* into the VM stack while open, else &closed */
    Value              closed;
    struct ObjUpvalue *next;      /* the VM's open-upvalue list, sorted by slot */
} ObjUpvalue;

typedef struct ObjClosure {
    Obj          obj;
    int          upvalue_count;
    ObjFunction *function;
    ObjUpvalue **upvalues;        /* rtgc array of upvalue_count pointers */
} ObjClosure;

typedef struct ObjClass {
    Obj        obj;
    ObjString *name;
    Table      methods;
} ObjClass;

typedef struct ObjInstance {
    Obj       obj;
    ObjClass *klass;
    Table     fields;
} ObjInstance;

typedef struct ObjBoundMethod {
    Obj         obj;
    Value       receiver;
    ObjClosure *method;
} ObjBoundMethod;

#define OBJ_TYPE(v)        (AS_OBJ(v)->type)
#define IS_BOUND_METHOD(v) is_obj_type(v, OBJ_BOUND_METHOD)
#define IS_CLASS(v)        is_obj_type(v, OBJ_CLASS)
#define IS_CLOSURE(v)      is_obj_type(v, OBJ_CLOSURE)
#define IS_FUNCTION(v)     is_obj_type(v, OBJ_FUNCTION)
#define IS_INSTANCE(v)     is_obj_type(v, OBJ_INSTANCE)
#define IS_NATIVE(v)       is_obj_type(v, OBJ_NATIVE)
#define IS_STRING(v)       is_obj_type(v, OBJ_STRING)

#define AS_BOUND_METHOD(v) ((ObjBoundMethod *)AS_OBJ(v))
#define AS_CLASS(v)        ((ObjClass *)AS_OBJ(v))
#define AS_CLOSURE(v)      ((ObjClosure *)AS_OBJ(v))
#define AS_FUNCTION(v)     ((ObjFunction *)AS_OBJ(v))
#define AS_INSTANCE(v)     ((ObjInstance *)AS_OBJ(v))
#define AS_NATIVE(v)       (((ObjNative *)AS_OBJ(v))->function)
#define AS_STRING(v)       ((ObjString *)AS_OBJ(v))
#define AS_CSTRING(v)      (((ObjString *)AS_OBJ(v))->chars)

static inline bool is_obj_type(Value v, ObjType type) {
    return IS_OBJ(v) && AS_OBJ(v)->type == type;
}

/* Constructors.  Each allocates exactly once unless noted, and each expects
   the objects it is handed to be reachable from a root already (on the VM
   stack, in a constant pool, ...): the allocation may collect. */
ObjBoundMethod *new_bound_method(Value receiver, ObjClosure *method);
ObjClass       *new_class(ObjString *name);
ObjClosure     *new_closure(ObjFunction *function);   /* allocates twice; roots itself */
ObjFunction    *new_function(void);
ObjInstance    *new_instance(ObjClass *klass);
ObjNative      *new_native(NativeFn function);
ObjUpvalue     *new_upvalue(Value *slot);

/* Interned strings.  copy_string may allocate the string and grow the
   intern table; concat_strings expects a and b to be rooted. */
ObjString *copy_string(const char *chars, int length);
ObjString *concat_strings(ObjString *a, ObjString *b);

void print_object(Value v);

/* Trace functions of the traced kinds (registered in memory.c). */
void trace_upvalue(void *obj, size_t size, rt_visitor *v);
void trace_bound_method(void *obj, size_t size, rt_visitor *v);

#endif
