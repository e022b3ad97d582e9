/* common.h -- shared configuration of the Lox VM (the rtgc example).
 *
 * Owns: the language limits (which match the book's clox exactly), the
 * branch hints, and the one include of <rtgc.h> every other file gets.
 * Every Lox object in this VM lives in the rtgc heap; see memory.h. */
#ifndef LOX_COMMON_H
#define LOX_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rtgc.h>

#define UINT8_COUNT (UINT8_MAX + 1)
#define FRAMES_MAX  64                          /* "Stack overflow." beyond this */
#define STACK_MAX   (FRAMES_MAX * UINT8_COUNT)  /* value stack slots */

#define LOX_LIKELY(x)   __builtin_expect(!!(x), 1)
#define LOX_UNLIKELY(x) __builtin_expect(!!(x), 0)

#endif
