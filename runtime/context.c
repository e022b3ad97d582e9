/* runtime/context.c -- a thread's registers, saved for the stack scan.
 *
 * Owns: rt__save_context and the entry of rt_enter_blocking, the only
 * assembly in rtgc (x86-64 and AArch64).
 *
 * A thread that stops or blocks is scanned conservatively from a saved
 * stack pointer up to its stack's top, plus the registers saved with it
 * (gc/roots.c).  Only the callee-saved registers need saving: a call has
 * already spilled the caller-saved ones into some frame.  Where each one
 * is saved decides whether the scan sees it:
 *
 *   - A function that stays in its frame while the thread is stopped (a
 *     safepoint park, a stop of the world) calls rt__save_context itself:
 *     the registers as they are at the call, and the stack pointer just
 *     above the return address, so the callee-saved values its own
 *     prologue pushed are inside the scanned range.  It cannot be a C
 *     function: its prologue would push a caller's register below the
 *     range it records, and hand the scan its own value instead (as
 *     libunwind's unw_getcontext did when it was called from a C helper).
 *   - rt_enter_blocking returns to the embedder, who then blocks below the
 *     scanned range.  Its frame dies, so it must take the embedder's
 *     registers before anything can change them: it is written here, saves
 *     them on entry, and passes them and the caller's stack pointer to
 *     rt__enter_blocking (runtime/proc.c).
 *
 * The AArch64 version also saves d8-d15 (callee-saved, and a compiler may
 * park an integer there).  It has only been assembled (clang
 * --target=aarch64-linux-gnu), never run: the tests run on x86-64. */
#include "internal.h"

#if defined(__x86_64__)

_Static_assert(RT__SAVED_REGS == 6, "rbx, rbp, r12-r15");
#if defined(__CET__) && (__CET__ & 1)
#define ENTRY_LANDING "    endbr64\n"   /* -fcf-protection marks this object as IBT-ready */
#else
#define ENTRY_LANDING ""
#endif
__asm__(
    ".text\n"
    ".globl rt__save_context\n"
    ".type rt__save_context, @function\n"
    "rt__save_context:\n"            /* rdi: uintptr_t regs[6], rsi: uintptr_t *sp */
    ENTRY_LANDING
    "    movq %rbx, 0(%rdi)\n"
    "    movq %rbp, 8(%rdi)\n"
    "    movq %r12, 16(%rdi)\n"
    "    movq %r13, 24(%rdi)\n"
    "    movq %r14, 32(%rdi)\n"
    "    movq %r15, 40(%rdi)\n"
    "    leaq 8(%rsp), %rax\n"       /* the caller's stack pointer: above our return address */
    "    movq %rax, (%rsi)\n"
    "    ret\n"
    ".size rt__save_context, .-rt__save_context\n"
    "\n"
    ".globl rt_enter_blocking\n"
    ".type rt_enter_blocking, @function\n"
    "rt_enter_blocking:\n"
    ENTRY_LANDING
    "    subq $56, %rsp\n"           /* 6 registers + 8 to align the call */
    "    movq %rbx, 0(%rsp)\n"
    "    movq %rbp, 8(%rsp)\n"
    "    movq %r12, 16(%rsp)\n"
    "    movq %r13, 24(%rsp)\n"
    "    movq %r14, 32(%rsp)\n"
    "    movq %r15, 40(%rsp)\n"
    "    movq %rsp, %rdi\n"
    "    leaq 64(%rsp), %rsi\n"      /* the caller's stack pointer once we return */
    "    call rt__enter_blocking@PLT\n"
    "    addq $56, %rsp\n"
    "    ret\n"
    ".size rt_enter_blocking, .-rt_enter_blocking\n");

#elif defined(__aarch64__)

_Static_assert(RT__SAVED_REGS == 20, "x19-x30, d8-d15");
__asm__(
    ".text\n"
    ".globl rt__save_context\n"
    ".type rt__save_context, %function\n"
    "rt__save_context:\n"            /* x0: uintptr_t regs[20], x1: uintptr_t *sp */
    "    stp x19, x20, [x0, #0]\n"
    "    stp x21, x22, [x0, #16]\n"
    "    stp x23, x24, [x0, #32]\n"
    "    stp x25, x26, [x0, #48]\n"
    "    stp x27, x28, [x0, #64]\n"
    "    stp x29, x30, [x0, #80]\n"
    "    stp d8, d9, [x0, #96]\n"
    "    stp d10, d11, [x0, #112]\n"
    "    stp d12, d13, [x0, #128]\n"
    "    stp d14, d15, [x0, #144]\n"
    "    mov x2, sp\n"               /* a call leaves sp unchanged */
    "    str x2, [x1]\n"
    "    ret\n"
    ".size rt__save_context, .-rt__save_context\n"
    "\n"
    ".globl rt_enter_blocking\n"
    ".type rt_enter_blocking, %function\n"
    "rt_enter_blocking:\n"
    "    sub sp, sp, #176\n"         /* 20 registers, then a frame record */
    "    stp x19, x20, [sp, #0]\n"
    "    stp x21, x22, [sp, #16]\n"
    "    stp x23, x24, [sp, #32]\n"
    "    stp x25, x26, [sp, #48]\n"
    "    stp x27, x28, [sp, #64]\n"
    "    stp x29, x30, [sp, #80]\n"
    "    stp d8, d9, [sp, #96]\n"
    "    stp d10, d11, [sp, #112]\n"
    "    stp d12, d13, [sp, #128]\n"
    "    stp d14, d15, [sp, #144]\n"
    "    stp x29, x30, [sp, #160]\n"
    "    add x29, sp, #160\n"
    "    mov x0, sp\n"
    "    add x1, sp, #176\n"         /* the caller's stack pointer */
    "    bl rt__enter_blocking\n"
    "    ldp x29, x30, [sp, #160]\n"
    "    add sp, sp, #176\n"
    "    ret\n"
    ".size rt_enter_blocking, .-rt_enter_blocking\n");

#else
#error "rtgc saves registers for the stack scan on x86-64 and AArch64 only: port runtime/context.c"
#endif
