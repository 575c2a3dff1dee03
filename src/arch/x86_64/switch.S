/*
 * switch.S (x86-64 System V) - goroutine context switch and start trampoline.
 *
 * A suspended context is just a stack pointer. goro__ctx_switch pushes the
 * callee-saved registers (rbp, rbx, r12-r15) and the two floating-point
 * control words (MXCSR, x87 control word) that the ABI also makes
 * callee-saved, stores rsp into *save, loads the new rsp and pops the same
 * layout. No signal mask is touched (that is why this is ~20x cheaper than
 * swapcontext).
 *
 * Saved frame, from the saved stack pointer upwards (the unwinder and the
 * gdb helper rely on this exact layout, see unwind.c / GORO__CTX_*):
 *     +0  MXCSR (4 bytes), x87 control word (2 bytes), padding
 *     +8  r15   +16 r14   +24 r13   +32 r12   +40 rbx   +48 rbp
 *     +56 return address
 *
 * A new goroutine's stack is prepared (sched.c) so that the first switch to
 * it "returns" into goro__ctx_trampoline with r12 = the goroutine record.
 * The trampoline clears rbp and pushes a zero return address before jumping
 * to goro__g_start, so frame-pointer and DWARF unwinders both stop there.
 */
    .text

    .globl  goro__ctx_switch
    .hidden goro__ctx_switch
    .type   goro__ctx_switch, @function
    .p2align 4
/* void goro__ctx_switch(void **save, void *to) */
goro__ctx_switch:
    .cfi_startproc
    pushq   %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbp, 0
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbx, 0
    pushq   %r12
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r12, 0
    pushq   %r13
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r13, 0
    pushq   %r14
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r14, 0
    pushq   %r15
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r15, 0
    subq    $8, %rsp
    .cfi_adjust_cfa_offset 8
    stmxcsr (%rsp)
    fnstcw  4(%rsp)
    movq    %rsp, (%rdi)
    movq    %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw   4(%rsp)
    addq    $8, %rsp
    .cfi_adjust_cfa_offset -8
    popq    %r15
    .cfi_adjust_cfa_offset -8
    popq    %r14
    .cfi_adjust_cfa_offset -8
    popq    %r13
    .cfi_adjust_cfa_offset -8
    popq    %r12
    .cfi_adjust_cfa_offset -8
    popq    %rbx
    .cfi_adjust_cfa_offset -8
    popq    %rbp
    .cfi_adjust_cfa_offset -8
    ret
    .cfi_endproc
    .size   goro__ctx_switch, .-goro__ctx_switch

    .globl  goro__ctx_trampoline
    .hidden goro__ctx_trampoline
    .type   goro__ctx_trampoline, @function
    .p2align 4
goro__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    xorl    %ebp, %ebp
    movq    %r12, %rdi
    pushq   $0
    jmp     goro__g_start
    .cfi_endproc
    .size   goro__ctx_trampoline, .-goro__ctx_trampoline

    .section .note.GNU-stack, "", @progbits
