/* vm.c -- the Lox virtual machine: the bytecode interpreter loop.
 *
 * Owns: executing chunks, calls and frames, upvalue capture and closing,
 * classes and method binding, runtime errors with their stack traces, and
 * vm_scan_roots, the root scanner for everything the VM holds.
 *
 * GC invariants:
 *  - The VM struct is not in the heap.  Everything reachable from it is
 *    reported by vm_scan_roots; the C locals of run() are not roots.
 *  - Operands stay on the VM stack until an instruction's last allocation
 *    is done (concatenation, instantiation, closures, binding).
 *  - Stores into heap objects (fields, globals and methods through
 *    table_set, closed upvalues, a closure's upvalue array, list links)
 *    use rt_store / value_store; stores into the stack and frames do not.
 *  - The loop polls rt_safepoint() on backward jumps and calls, so a
 *    program that loops without allocating still lets a collection start. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "compiler.h"
#include "memory.h"
#include "object.h"
#include "vm.h"

VM vm;

void vm_scan_roots(rt_visitor *v, void *ctx) {
    VM *m = ctx;
    for (Value *slot = m->stack; slot < m->stack_top; slot++) visit_value(v, *slot);
    for (int i = 0; i < m->frame_count; i++) rt_visit(v, m->frames[i].closure);
    for (ObjUpvalue *up = m->open_upvalues; up != NULL; up = up->next) rt_visit(v, up);
    rt_visit(v, m->globals.entries);
    rt_visit(v, m->strings.entries);  /* the slots keep the handles, not the strings */
    rt_visit(v, m->init_string);
}

static void reset_stack(void) {
    vm.stack_top = vm.stack;
    vm.frame_count = 0;
    vm.open_upvalues = NULL;
}

static void runtime_error(const char *format, ...) {
    va_list args;
    va_start(args, format);
    vfprintf(stderr, format, args);
    va_end(args);
    fputs("\n", stderr);

    for (int i = vm.frame_count - 1; i >= 0; i--) {
        CallFrame *frame = &vm.frames[i];
        ObjFunction *function = frame->closure->function;
        size_t instruction = (size_t)(frame->ip - function->chunk.code - 1);
        fprintf(stderr, "[line %d] in ", function->chunk.lines[instruction]);
        if (function->name == NULL) fprintf(stderr, "script\n");
        else fprintf(stderr, "%s()\n", function->name->chars);
    }
    reset_stack();
}

static Value clock_native(int arg_count, Value *args) {
    (void)arg_count;
    (void)args;
    return NUMBER_VAL((double)clock() / CLOCKS_PER_SEC);
}

/* Debug natives (tests/lox/gc): a full collection, and the number of
   interned strings still alive. */
static Value gc_native(int arg_count, Value *args) {
    (void)arg_count;
    (void)args;
    rt_gc();
    return NIL_VAL;
}

static Value intern_count_native(int arg_count, Value *args) {
    (void)arg_count;
    (void)args;
    return NUMBER_VAL((double)intern_live_count(&vm.strings));
}

static void define_native(const char *name, NativeFn function) {
    /* Both objects ride on the stack while the globals table may grow. */
    vm_push(OBJ_VAL(copy_string(name, (int)strlen(name))));
    vm_push(OBJ_VAL(new_native(function)));
    table_set(&vm.globals, AS_STRING(vm.stack_top[-2]), vm.stack_top[-1]);
    vm_pop();
    vm_pop();
}

void vm_init(void) {
    reset_stack();
    table_init(&vm.globals);
    intern_init(&vm.strings);
    vm.init_string = NULL;
    /* Roots first: from the next line on, any allocation may collect. */
    gc_register_roots();
    vm.init_string = copy_string("init", 4);
    define_native("clock", clock_native);
    define_native("__gc", gc_native);
    define_native("__internCount", intern_count_native);
}

static inline Value peek(int distance) { return vm.stack_top[-1 - distance]; }

static inline bool is_falsey(Value v) { return (v | FALSE_VAL) == FALSE_VAL; /* nil or false */ }

static bool call(ObjClosure *closure, int arg_count) {
    if (arg_count != closure->function->arity) {
        runtime_error("Expected %d arguments but got %d.", closure->function->arity, arg_count);
        return false;
    }
    if (vm.frame_count == FRAMES_MAX) {
        runtime_error("Stack overflow.");
        return false;
    }
    CallFrame *frame = &vm.frames[vm.frame_count++];
    frame->closure = closure;
    frame->ip = closure->function->chunk.code;
    frame->slots = vm.stack_top - arg_count - 1;
    return true;
}

static bool call_value(Value callee, int arg_count) {
    if (IS_OBJ(callee)) {
        switch (OBJ_TYPE(callee)) {
        case OBJ_BOUND_METHOD: {
            ObjBoundMethod *bound = AS_BOUND_METHOD(callee);
            vm.stack_top[-arg_count - 1] = bound->receiver;
            return call(bound->method, arg_count);
        }
        case OBJ_CLASS: {
            ObjClass *klass = AS_CLASS(callee);
            /* The class stays in the callee slot while the instance is
               allocated, then the instance replaces it (and holds it). */
            vm.stack_top[-arg_count - 1] = OBJ_VAL(new_instance(klass));
            Value initializer;
            if (table_get(&klass->methods, vm.init_string, &initializer))
                return call(AS_CLOSURE(initializer), arg_count);
            if (arg_count != 0) {
                runtime_error("Expected 0 arguments but got %d.", arg_count);
                return false;
            }
            return true;
        }
        case OBJ_CLOSURE:
            return call(AS_CLOSURE(callee), arg_count);
        case OBJ_NATIVE: {
            NativeFn native = AS_NATIVE(callee);
            Value result = native(arg_count, vm.stack_top - arg_count);
            vm.stack_top -= arg_count + 1;
            vm_push(result);
            return true;
        }
        default:
            break;
        }
    }
    runtime_error("Can only call functions and classes.");
    return false;
}

static bool invoke_from_class(ObjClass *klass, ObjString *name, int arg_count) {
    Value method;
    if (!table_get(&klass->methods, name, &method)) {
        runtime_error("Undefined property '%s'.", name->chars);
        return false;
    }
    return call(AS_CLOSURE(method), arg_count);
}

static bool invoke(ObjString *name, int arg_count) {
    Value receiver = peek(arg_count);
    if (!IS_INSTANCE(receiver)) {
        runtime_error("Only instances have methods.");
        return false;
    }
    ObjInstance *instance = AS_INSTANCE(receiver);
    Value value;
    if (table_get(&instance->fields, name, &value)) {
        vm.stack_top[-arg_count - 1] = value;
        return call_value(value, arg_count);
    }
    return invoke_from_class(instance->klass, name, arg_count);
}

/* Look name up in klass and bind it to receiver.  The caller keeps klass
   and receiver on the stack across the allocation and replaces them with
   the result.  NULL after reporting an error. */
static ObjBoundMethod *bind_method(ObjClass *klass, ObjString *name, Value receiver) {
    Value method;
    if (!table_get(&klass->methods, name, &method)) {
        runtime_error("Undefined property '%s'.", name->chars);
        return NULL;
    }
    return new_bound_method(receiver, AS_CLOSURE(method));
}

static ObjUpvalue *capture_upvalue(Value *local) {
    ObjUpvalue *prev = NULL;
    ObjUpvalue *upvalue = vm.open_upvalues;
    while (upvalue != NULL && upvalue->location > local) {
        prev = upvalue;
        upvalue = upvalue->next;
    }
    if (upvalue != NULL && upvalue->location == local) return upvalue;

    /* prev and upvalue stay reachable through the open list meanwhile. */
    ObjUpvalue *created = new_upvalue(local);
    created->next = upvalue;            /* still unpublished: plain store */
    if (prev == NULL) vm.open_upvalues = created;   /* a root: no barrier */
    else rt_store(&prev->next, created);
    return created;
}

static void close_upvalues(Value *last) {
    while (vm.open_upvalues != NULL && vm.open_upvalues->location >= last) {
        ObjUpvalue *upvalue = vm.open_upvalues;
        value_store(&upvalue->closed, *upvalue->location);
        /* location is not a traced edge (trace_upvalue skips it): no barrier. */
        upvalue->location = &upvalue->closed;
        vm.open_upvalues = upvalue->next;
        rt_store(&upvalue->next, NULL);     /* a closed upvalue keeps no list */
    }
}

static InterpretResult run(void) {
    CallFrame *frame = &vm.frames[vm.frame_count - 1];
    uint8_t *ip = frame->ip;

#define READ_BYTE()     (*ip++)
#define READ_SHORT()    (ip += 2, (uint16_t)((ip[-2] << 8) | ip[-1]))
#define READ_CONSTANT() (frame->closure->function->chunk.constants->values[READ_BYTE()])
#define READ_STRING()   AS_STRING(READ_CONSTANT())
#define SAVE_IP()       (frame->ip = ip)
#define LOAD_FRAME()    (frame = &vm.frames[vm.frame_count - 1], ip = frame->ip)
#define RUNTIME_ERROR(...)                                                    \
    do {                                                                      \
        SAVE_IP();                                                            \
        runtime_error(__VA_ARGS__);                                           \
        return INTERPRET_RUNTIME_ERROR;                                       \
    } while (0)
#define BINARY_OP(make, op)                                                   \
    do {                                                                      \
        if (!IS_NUMBER(peek(0)) || !IS_NUMBER(peek(1)))                       \
            RUNTIME_ERROR("Operands must be numbers.");                       \
        double b = AS_NUMBER(vm_pop());                                       \
        double a = AS_NUMBER(vm_pop());                                       \
        vm_push(make(a op b));                                                \
    } while (0)

    for (;;) {
        uint8_t instruction = READ_BYTE();
        switch (instruction) {
        case OP_CONSTANT: vm_push(READ_CONSTANT()); break;
        case OP_NIL:      vm_push(NIL_VAL); break;
        case OP_TRUE:     vm_push(TRUE_VAL); break;
        case OP_FALSE:    vm_push(FALSE_VAL); break;
        case OP_POP:      vm_pop(); break;
        case OP_GET_LOCAL: {
            uint8_t slot = READ_BYTE();
            vm_push(frame->slots[slot]);
            break;
        }
        case OP_SET_LOCAL: {
            uint8_t slot = READ_BYTE();
            frame->slots[slot] = peek(0);       /* the stack is a root */
            break;
        }
        case OP_GET_GLOBAL: {
            ObjString *name = READ_STRING();
            Value value;
            if (!table_get(&vm.globals, name, &value))
                RUNTIME_ERROR("Undefined variable '%s'.", name->chars);
            vm_push(value);
            break;
        }
        case OP_DEFINE_GLOBAL: {
            ObjString *name = READ_STRING();
            table_set(&vm.globals, name, peek(0));
            vm_pop();
            break;
        }
        case OP_SET_GLOBAL: {
            ObjString *name = READ_STRING();
            if (table_set(&vm.globals, name, peek(0))) {
                table_delete(&vm.globals, name);
                RUNTIME_ERROR("Undefined variable '%s'.", name->chars);
            }
            break;
        }
        case OP_GET_UPVALUE: {
            uint8_t slot = READ_BYTE();
            vm_push(*frame->closure->upvalues[slot]->location);
            break;
        }
        case OP_SET_UPVALUE: {
            uint8_t slot = READ_BYTE();
            /* location is a stack slot (open) or the upvalue's own closed
               field (heap): the barrier is required for the latter and
               harmless for the former. */
            value_store(frame->closure->upvalues[slot]->location, peek(0));
            break;
        }
        case OP_GET_PROPERTY: {
            if (!IS_INSTANCE(peek(0))) RUNTIME_ERROR("Only instances have properties.");
            ObjInstance *instance = AS_INSTANCE(peek(0));
            ObjString *name = READ_STRING();
            Value value;
            if (table_get(&instance->fields, name, &value)) {
                vm.stack_top[-1] = value;
                break;
            }
            SAVE_IP();
            ObjBoundMethod *bound = bind_method(instance->klass, name, peek(0));
            if (bound == NULL) return INTERPRET_RUNTIME_ERROR;
            vm.stack_top[-1] = OBJ_VAL(bound);
            break;
        }
        case OP_SET_PROPERTY: {
            if (!IS_INSTANCE(peek(1))) RUNTIME_ERROR("Only instances have fields.");
            ObjInstance *instance = AS_INSTANCE(peek(1));
            table_set(&instance->fields, READ_STRING(), peek(0));
            Value value = vm_pop();
            vm.stack_top[-1] = value;
            break;
        }
        case OP_GET_SUPER: {
            ObjString *name = READ_STRING();
            SAVE_IP();
            ObjBoundMethod *bound = bind_method(AS_CLASS(peek(0)), name, peek(1));
            if (bound == NULL) return INTERPRET_RUNTIME_ERROR;
            vm.stack_top -= 1;
            vm.stack_top[-1] = OBJ_VAL(bound);
            break;
        }
        case OP_EQUAL: {
            Value b = vm_pop();
            Value a = vm_pop();
            vm_push(BOOL_VAL(values_equal(a, b)));
            break;
        }
        case OP_GREATER:  BINARY_OP(BOOL_VAL, >); break;
        case OP_LESS:     BINARY_OP(BOOL_VAL, <); break;
        case OP_ADD: {
            if (IS_STRING(peek(0)) && IS_STRING(peek(1))) {
                /* Both operands stay on the stack until the result exists. */
                ObjString *result = concat_strings(AS_STRING(peek(1)), AS_STRING(peek(0)));
                vm.stack_top -= 1;
                vm.stack_top[-1] = OBJ_VAL(result);
            } else if (IS_NUMBER(peek(0)) && IS_NUMBER(peek(1))) {
                double b = AS_NUMBER(vm_pop());
                double a = AS_NUMBER(vm_pop());
                vm_push(NUMBER_VAL(a + b));
            } else {
                RUNTIME_ERROR("Operands must be two numbers or two strings.");
            }
            break;
        }
        case OP_SUBTRACT: BINARY_OP(NUMBER_VAL, -); break;
        case OP_MULTIPLY: BINARY_OP(NUMBER_VAL, *); break;
        case OP_DIVIDE:   BINARY_OP(NUMBER_VAL, /); break;
        case OP_NOT:
            vm.stack_top[-1] = BOOL_VAL(is_falsey(peek(0)));
            break;
        case OP_NEGATE:
            if (!IS_NUMBER(peek(0))) RUNTIME_ERROR("Operand must be a number.");
            vm.stack_top[-1] = NUMBER_VAL(-AS_NUMBER(peek(0)));
            break;
        case OP_PRINT:
            print_value(vm_pop());
            printf("\n");
            break;
        case OP_JUMP: {
            uint16_t offset = READ_SHORT();
            ip += offset;
            break;
        }
        case OP_JUMP_IF_FALSE: {
            uint16_t offset = READ_SHORT();
            if (is_falsey(peek(0))) ip += offset;
            break;
        }
        case OP_LOOP: {
            uint16_t offset = READ_SHORT();
            ip -= offset;
            rt_safepoint();
            break;
        }
        case OP_CALL: {
            int arg_count = READ_BYTE();
            SAVE_IP();
            if (!call_value(peek(arg_count), arg_count)) return INTERPRET_RUNTIME_ERROR;
            LOAD_FRAME();
            rt_safepoint();
            break;
        }
        case OP_INVOKE: {
            ObjString *method = READ_STRING();
            int arg_count = READ_BYTE();
            SAVE_IP();
            if (!invoke(method, arg_count)) return INTERPRET_RUNTIME_ERROR;
            LOAD_FRAME();
            rt_safepoint();
            break;
        }
        case OP_SUPER_INVOKE: {
            ObjString *method = READ_STRING();
            int arg_count = READ_BYTE();
            ObjClass *superclass = AS_CLASS(vm_pop());
            SAVE_IP();
            if (!invoke_from_class(superclass, method, arg_count)) return INTERPRET_RUNTIME_ERROR;
            LOAD_FRAME();
            rt_safepoint();
            break;
        }
        case OP_CLOSURE: {
            ObjFunction *function = AS_FUNCTION(READ_CONSTANT());
            ObjClosure *closure = new_closure(function);
            vm_push(OBJ_VAL(closure));          /* rooted before capturing */
            for (int i = 0; i < closure->upvalue_count; i++) {
                uint8_t is_local = READ_BYTE();
                uint8_t index = READ_BYTE();
                ObjUpvalue *upvalue = is_local ? capture_upvalue(frame->slots + index)
                                               : frame->closure->upvalues[index];
                rt_store(&closure->upvalues[i], upvalue);
            }
            break;
        }
        case OP_CLOSE_UPVALUE:
            close_upvalues(vm.stack_top - 1);
            vm_pop();
            break;
        case OP_RETURN: {
            Value result = vm_pop();
            close_upvalues(frame->slots);
            vm.frame_count--;
            if (vm.frame_count == 0) {
                vm_pop();
                return INTERPRET_OK;
            }
            vm.stack_top = frame->slots;
            vm_push(result);
            LOAD_FRAME();
            break;
        }
        case OP_CLASS:
            vm_push(OBJ_VAL(new_class(READ_STRING())));
            break;
        case OP_INHERIT: {
            Value superclass = peek(1);
            if (!IS_CLASS(superclass)) RUNTIME_ERROR("Superclass must be a class.");
            ObjClass *subclass = AS_CLASS(peek(0));
            table_add_all(&AS_CLASS(superclass)->methods, &subclass->methods);
            vm_pop();
            break;
        }
        case OP_METHOD: {
            ObjString *name = READ_STRING();
            /* closure on top, class beneath: both rooted while the table grows */
            table_set(&AS_CLASS(peek(1))->methods, name, peek(0));
            vm_pop();
            break;
        }
        }
    }

#undef READ_BYTE
#undef READ_SHORT
#undef READ_CONSTANT
#undef READ_STRING
#undef SAVE_IP
#undef LOAD_FRAME
#undef RUNTIME_ERROR
#undef BINARY_OP
}

InterpretResult interpret(const char *source) {
    ObjFunction *function = compile(source);
    if (function == NULL) return INTERPRET_COMPILE_ERROR;
    vm_push(OBJ_VAL(function));         /* root it before new_closure allocates */
    ObjClosure *closure = new_closure(function);
    vm.stack_top[-1] = OBJ_VAL(closure);
    call(closure, 0);
    return run();
}
