/* chunk.h -- bytecode: the instruction set and the Chunk of a function.
 *
 * Owns: OpCode, Chunk and its growth.
 *
 * A Chunk is embedded in its ObjFunction and points at three rtgc objects:
 * code (RT_NOSCAN bytes), lines (RT_NOSCAN ints, one per byte) and the
 * constant pool (a traced ValueArray).  They grow by allocate-copy-publish;
 * the old arrays become garbage, nothing is freed by hand. */
#ifndef LOX_CHUNK_H
#define LOX_CHUNK_H

#include "common.h"
#include "value.h"

/* The instruction set, as a list so the enum and the interpreter's
   dispatch table are written from one place. */
#define LOX_OPCODES(X) \
    X(OP_CONSTANT) \
    X(OP_NIL) \
    X(OP_TRUE) \
    X(OP_FALSE) \
    X(OP_POP) \
    X(OP_GET_LOCAL) \
    X(OP_SET_LOCAL) \
    X(OP_GET_GLOBAL) \
    X(OP_DEFINE_GLOBAL) \
    X(OP_SET_GLOBAL) \
    X(OP_GET_UPVALUE) \
    X(OP_SET_UPVALUE) \
    X(OP_GET_PROPERTY) \
    X(OP_SET_PROPERTY) \
    X(OP_GET_SUPER) \
    X(OP_EQUAL) \
    X(OP_GREATER) \
    X(OP_LESS) \
    X(OP_ADD) \
    X(OP_SUBTRACT) \
    X(OP_MULTIPLY) \
    X(OP_DIVIDE) \
    X(OP_NOT) \
    X(OP_NEGATE) \
    X(OP_PRINT) \
    X(OP_JUMP) \
    X(OP_JUMP_IF_FALSE) \
    X(OP_LOOP) \
    X(OP_CALL) \
    X(OP_INVOKE) \
    X(OP_SUPER_INVOKE) \
    X(OP_CLOSURE) \
    X(OP_CLOSE_UPVALUE) \
    X(OP_RETURN) \
    X(OP_CLASS) \
    X(OP_INHERIT) \
    X(OP_METHOD)

typedef enum {
#define LOX_OPCODE_ENUM(op) op,
    LOX_OPCODES(LOX_OPCODE_ENUM)
#undef LOX_OPCODE_ENUM
} OpCode;

typedef struct {
    int         count;
    int         capacity;
    uint8_t    *code;           /* rtgc RT_NOSCAN array of capacity bytes */
    int        *lines;          /* rtgc RT_NOSCAN array of capacity ints */
    ValueArray *constants;      /* rtgc traced array, NULL until the first constant */
} Chunk;

/* chunk lives inside a heap object (an ObjFunction).  May allocate. */
void chunk_write(Chunk *chunk, uint8_t byte, int line);
/* Append a constant; may allocate, so value must be rooted by the caller.
   Returns its index. */
int chunk_add_constant(Chunk *chunk, Value value);

#endif
