/* A non-zero exit code: exit(EXIT_CODE) after flushing some output, or,
 * with an argument, returning that number from main. */
#include <stdio.h>
#include <stdlib.h>

static void goodbye(void) { printf("atexit handler ran\n"); }

int main(int argc, char **argv) {
    atexit(goodbye);
    printf("about to exit\n");
    if (argc > 1) return atoi(argv[1]);
    exit(42);
}
