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

typedef enum {
    OP_CONSTANT,
    OP_NIL,
    OP_TRUE,
    OP_FALSE,
    OP_POP,
    OP_GET_LOCAL,
    OP_SET_LOCAL,
    OP_GET_GLOBAL,
    OP_DEFINE_GLOBAL,
    OP_SET_GLOBAL,
    OP_GET_UPVALUE,
    OP_SET_UPVALUE,
    OP_GET_PROPERTY,
    OP_SET_PROPERTY,
    OP_GET_SUPER,
    OP_EQUAL,
    OP_GREATER,
    OP_LESS,
    OP_ADD,
    OP_SUBTRACT,
    OP_MULTIPLY,
    OP_DIVIDE,
    OP_NOT,
    OP_NEGATE,
    OP_PRINT,
    OP_JUMP,
    OP_JUMP_IF_FALSE,
    OP_LOOP,
    OP_CALL,
    OP_INVOKE,
    OP_SUPER_INVOKE,
    OP_CLOSURE,
    OP_CLOSE_UPVALUE,
    OP_RETURN,
    OP_CLASS,
    OP_INHERIT,
    OP_METHOD,
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
