/*
 * Catch points for Shoal's trap handling (see src/trap_handling.rs).
 *
 * `shoal_call_with_catch` records a catch point with sigsetjmp and calls back
 * into Rust; `shoal_unwind` jumps back to it. Returning twice is something
 * only C (or assembly) may do: Rust code never sees the second return, it
 * sees `shoal_call_with_catch` return 0 instead of 1.
 *
 * `sigsetjmp(buf, 0)` does not save the signal mask, so neither entering nor
 * unwinding makes a system call. That is correct because the signal handler
 * is installed with SA_NODEFER and an empty sa_mask: running it changes no
 * mask, so nothing must be restored when we jump out of it.
 */
/* Never the fortified `__longjmp_chk`: it second-guesses jumps across
 * stacks, which is what a trap on a green-thread stack does (see build.rs). */
#undef _FORTIFY_SOURCE
#include <setjmp.h>

typedef void (*shoal_catch_callback)(void *payload, void *jmp_buf);

/* Calls `callback(payload, &buf)` with a catch point `buf` set up in this
 * frame. Returns 1 if the callback returned normally, 0 if something called
 * `shoal_unwind(&buf)` while it ran. */
int shoal_call_with_catch(shoal_catch_callback callback, void *payload) {
    sigjmp_buf buf;
    if (sigsetjmp(buf, 0) != 0) {
        return 0;
    }
    callback(payload, &buf);
    return 1;
}

/* Resumes the catch point `jmp_buf` (made by `shoal_call_with_catch`, whose
 * frame must still be live), making it return 0. */
__attribute__((noreturn)) void shoal_unwind(void *jmp_buf) {
    siglongjmp(*(sigjmp_buf *)jmp_buf, 1);
}
