/* vm.h -- the Lox virtual machine.
 *
 * Owns: the VM state (value stack, call frames, globals, the intern table,
 * open upvalues), which is the main GC root; interpret(); push/pop.
 *
 * The VM struct is a C global, not a heap object, so stores into it need no
 * barrier; vm_scan_roots reports every object reference it holds. */
#ifndef LOX_VM_H
#define LOX_VM_H

#include "object.h"
#include "table.h"
#include "value.h"

typedef struct {
    ObjClosure *closure;
    uint8_t    *ip;             /* into closure->function->chunk.code */
    Value      *slots;          /* this frame's window on the VM stack */
} CallFrame;

typedef struct {
    CallFrame   frames[FRAMES_MAX];
    int         frame_count;
    Value       stack[STACK_MAX];
    Value      *stack_top;
    Table       globals;
    InternTable strings;        /* the intern table: weak handles (table.c) */
    ObjString  *init_string;
    ObjUpvalue *open_upvalues;  /* sorted by stack slot, highest first */
} VM;

typedef enum {
    INTERPRET_OK,
    INTERPRET_COMPILE_ERROR,
    INTERPRET_RUNTIME_ERROR
} InterpretResult;

extern VM vm;

void vm_init(void);
InterpretResult interpret(const char *source);

/* rtgc root scanner (registered in memory.c). */
void vm_scan_roots(rt_visitor *v, void *ctx);

static inline void vm_push(Value value) { *vm.stack_top++ = value; }
static inline Value vm_pop(void) { return *--vm.stack_top; }

#endif
