/*
 * switch.S (x86-64 System V) - goroutine context switch and start trampoline.
 *
 * A suspended context is just a stack pointer. goro__ctx_switch pushes the
 * callee-saved integer registers (rbp, rbx, r12-r15), stores rsp into
 * *save, loads the new rsp and pops the same layout. No signal mask is
 * touched (that is why this is ~20x cheaper than swapcontext).
 *
 * The floating-point control words (MXCSR, x87 CW) are deliberately not
 * switched: stmxcsr alone costs ~4 ns on the machines we measured, a
 * quarter of a whole switch. Like Go, goro treats the FP environment as
 * thread state: every goroutine starts with the ABI default (set by the
 * trampoline) and one that changes rounding or exception masks must restore
 * them before it blocks (documented in goro.h).
 *
 * Saved frame, from the saved stack pointer upwards (the unwinder and the
 * gdb helper rely on this exact layout, see unwind.h GORO__CTX_*):
 *     +0  r15   +8  r14   +16 r13   +24 r12   +32 rbx   +40 rbp
 *     +48 return address
 *
 * A new goroutine's stack is prepared (sched.c) so that the first switch to
 * it "returns" into goro__ctx_trampoline with r12 = the goroutine record.
 * The trampoline loads the default FP control words, clears rbp and pushes
 * a zero return address before jumping to goro__g_start, so frame-pointer
 * and DWARF unwinders both stop there.
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
    movq    %rsp, (%rdi)
    movq    %rsi, %rsp
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
    ldmxcsr goro__default_mxcsr(%rip)
    fldcw   goro__default_fpucw(%rip)
    xorl    %ebp, %ebp
    movq    %r12, %rdi
    pushq   $0
    jmp     goro__g_start
    .cfi_endproc
    .size   goro__ctx_trampoline, .-goro__ctx_trampoline

    .globl  goro__call_on_stack
    .hidden goro__call_on_stack
    .type   goro__call_on_stack, @function
    .p2align 4
/* void goro__call_on_stack(void (*fn)(void *), void *arg, void *stack_top)
 * Call fn(arg) with the stack pointer moved to stack_top (rounded down to
 * 16 bytes); back on the original stack when fn returns. Used to run a
 * blocking call on the thread's own stack (goro_blocking). rbp keeps
 * pointing at our frame on the old stack, so unwinders walk back across. */
goro__call_on_stack:
    .cfi_startproc
    pushq   %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbp, 0
    movq    %rsp, %rbp
    .cfi_def_cfa_register rbp
    andq    $-16, %rdx
    movq    %rdx, %rsp
    movq    %rdi, %rax
    movq    %rsi, %rdi
    call    *%rax
    movq    %rbp, %rsp
    .cfi_def_cfa_register rsp
    popq    %rbp
    .cfi_adjust_cfa_offset -8
    ret
    .cfi_endproc
    .size   goro__call_on_stack, .-goro__call_on_stack

    .section .rodata
    .p2align 2
goro__default_mxcsr:
    .long   0x1F80
goro__default_fpucw:
    .short  0x037F

    .section .note.GNU-stack, "", @progbits
