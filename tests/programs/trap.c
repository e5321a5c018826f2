/* A deliberate trap, after flushing some output: `unreachable` by default
 * (__builtin_trap; SIGILL natively), or with the argument "nullfn" a call
 * through a null function pointer (an uninitialized table element in wasm;
 * SIGSEGV natively). */
#include <stdio.h>
#include <string.h>

typedef int (*fn_t)(int);

int main(int argc, char **argv) {
    printf("before the trap\n");
    fflush(stdout);
    if (argc > 1 && strcmp(argv[1], "nullfn") == 0) {
        volatile fn_t f = 0;
        printf("never printed: %d\n", f(1));
    } else {
        __builtin_trap();
    }
    printf("after the trap\n");
    return 0;
}
