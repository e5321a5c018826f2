/* argv, the environment and the clocks: prints its arguments and chosen
 * variables, and checks (printing only the verdicts) that the clocks are
 * sane: the wall clock is past 2020, the monotonic clock never goes back,
 * and a 20 ms sleep lasts at least 20 ms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern char **environ;

static long long ns(struct timespec t) { return (long long)t.tv_sec * 1000000000LL + t.tv_nsec; }

int main(int argc, char **argv) {
    printf("argc=%d\n", argc);
    for (int i = 1; i < argc; i++) printf("argv[%d]=%s (%zu bytes)\n", i, argv[i], strlen(argv[i]));
    const char *names[] = {"GREETING", "EMPTY", "WITH_EQUALS", "UNSET_VARIABLE"};
    for (int i = 0; i < 4; i++) {
        const char *v = getenv(names[i]);
        printf("%s=%s\n", names[i], v ? v : "(unset)");
    }
    int env_count = 0;
    for (char **e = environ; *e; e++) env_count++;
    printf("environment entries: %d\n", env_count);

    time_t now = time(NULL);
    printf("wall clock after 2020: %s\n", now > 1577836800 ? "yes" : "no");
    struct timespec a, b, c, res;
    clock_gettime(CLOCK_MONOTONIC, &a);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("monotonic never goes back: %s\n", ns(b) >= ns(a) ? "yes" : "no");
    printf("monotonic resolution under 1 ms: %s\n",
           clock_getres(CLOCK_MONOTONIC, &res) == 0 && ns(res) > 0 && ns(res) < 1000000 ? "yes"
                                                                                       : "no");
    struct timespec nap = {0, 20 * 1000 * 1000};
    nanosleep(&nap, NULL);
    clock_gettime(CLOCK_MONOTONIC, &c);
    long long slept = ns(c) - ns(b);
    printf("slept at least 20 ms: %s\n", slept >= 20000000LL ? "yes" : "no");
    printf("slept under 2 s: %s\n", slept < 2000000000LL ? "yes" : "no");
    return 0;
}
