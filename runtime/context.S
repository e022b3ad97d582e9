/* runtime/context.S -- a thread's registers, saved for the stack scan.
 *
 * Owns: rt__save_context and the entry of rt_enter_blocking, the only
 * assembly in rtgc (x86-64 and AArch64).  An assembly file rather than
 * top-level asm in C: with -flto, GCC does not list symbols defined in
 * top-level asm, and the linker did not find rt_enter_blocking.
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
 * The layouts match RT__SAVED_REGS (runtime/internal.h).  The AArch64
 * version also saves d8-d15 (callee-saved, and a compiler may park an
 * integer there).  It has only been assembled (clang
 * --target=aarch64-linux-gnu), never run: the tests run on x86-64. */

#if defined(__x86_64__)

#if defined(__CET__) && (__CET__ & 1)
#define ENTRY_LANDING endbr64   /* -fcf-protection: an indirect call may land here */
#else
#define ENTRY_LANDING
#endif

/* The one layout of the saved registers, RT__SAVED_REGS words at \base. */
        .macro  save_callee_saved base
        movq    %rbx, 0(\base)
        movq    %rbp, 8(\base)
        movq    %r12, 16(\base)
        movq    %r13, 24(\base)
        movq    %r14, 32(\base)
        movq    %r15, 40(\base)
        .endm

        .text
        .globl  rt__save_context
        .type   rt__save_context, @function
rt__save_context:                       /* rdi: uintptr_t regs[6], rsi: uintptr_t *sp */
        ENTRY_LANDING
        save_callee_saved %rdi
        leaq    8(%rsp), %rax           /* the caller's stack pointer: above our return address */
        movq    %rax, (%rsi)
        ret
        .size   rt__save_context, .-rt__save_context

        .globl  rt_enter_blocking
        .type   rt_enter_blocking, @function
rt_enter_blocking:
        ENTRY_LANDING
        subq    $56, %rsp               /* 6 registers + 8 to align the call */
        save_callee_saved %rsp
        movq    %rsp, %rdi
        leaq    64(%rsp), %rsi          /* the caller's stack pointer once we return */
        call    rt__enter_blocking@PLT
        addq    $56, %rsp
        ret
        .size   rt_enter_blocking, .-rt_enter_blocking

#elif defined(__aarch64__)

/* The one layout of the saved registers, RT__SAVED_REGS words at \base. */
        .macro  save_callee_saved base
        stp     x19, x20, [\base, #0]
        stp     x21, x22, [\base, #16]
        stp     x23, x24, [\base, #32]
        stp     x25, x26, [\base, #48]
        stp     x27, x28, [\base, #64]
        stp     x29, x30, [\base, #80]
        stp     d8, d9, [\base, #96]
        stp     d10, d11, [\base, #112]
        stp     d12, d13, [\base, #128]
        stp     d14, d15, [\base, #144]
        .endm

        .text
        .globl  rt__save_context
        .type   rt__save_context, %function
rt__save_context:                       /* x0: uintptr_t regs[20], x1: uintptr_t *sp */
        save_callee_saved x0
        mov     x2, sp                  /* a call leaves sp unchanged */
        str     x2, [x1]
        ret
        .size   rt__save_context, .-rt__save_context

        .globl  rt_enter_blocking
        .type   rt_enter_blocking, %function
rt_enter_blocking:
        sub     sp, sp, #176            /* 20 registers, then a frame record */
        save_callee_saved sp
        stp     x29, x30, [sp, #160]
        add     x29, sp, #160
        mov     x0, sp
        add     x1, sp, #176            /* the caller's stack pointer */
        bl      rt__enter_blocking
        ldp     x29, x30, [sp, #160]
        add     sp, sp, #176
        ret
        .size   rt_enter_blocking, .-rt_enter_blocking

#else
#error "rtgc saves registers for the stack scan on x86-64 and AArch64 only: port runtime/context.S"
#endif

        .section .note.GNU-stack, "", %progbits   /* no executable stack */
