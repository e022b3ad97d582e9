/* compiler.h -- the single-pass Lox compiler (Pratt parser to bytecode).
 *
 * Owns: compile() and the compiler's GC roots.  While compiling, the
 * functions under construction (one per nesting level) are reachable only
 * from the compiler's C structures; compiler_scan_roots reports them. */
#ifndef LOX_COMPILER_H
#define LOX_COMPILER_H

#include "object.h"

/* Compile source to the top-level function, or NULL after reporting
   errors on stderr.  The result is not rooted: push it before the next
   allocation. */
ObjFunction *compile(const char *source);

/* rtgc root scanner (registered in memory.c). */
void compiler_scan_roots(rt_visitor *v, void *ctx);

#endif
