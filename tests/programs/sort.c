/* qsort through function pointers: integers both ways, strings, and
 * records with a multi-key comparator; a dispatch table of function
 * pointers; bsearch. Every order is total, so the result does not depend on
 * the libc's sorting algorithm. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t seed = 2024;
static uint32_t rnd(void) {
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    return seed;
}

static int cmp_int_asc(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}
static int cmp_int_desc(const void *a, const void *b) { return cmp_int_asc(b, a); }
static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

struct person {
    char name[12];
    int age;
    double score;
    int id;
};

static int cmp_person(const void *a, const void *b) {
    const struct person *p = a, *q = b;
    if (p->age != q->age) return p->age - q->age;
    if (p->score != q->score) return p->score < q->score ? 1 : -1; /* higher first */
    int c = strcmp(p->name, q->name);
    if (c) return c;
    return (p->id > q->id) - (p->id < q->id);
}

static long op_add(long a, long b) { return a + b; }
static long op_sub(long a, long b) { return a - b; }
static long op_mul(long a, long b) { return a * b; }
static long op_max(long a, long b) { return a > b ? a : b; }

int main(void) {
    enum { N = 50000 };
    int *v = malloc(N * sizeof *v);
    if (!v) return 2;
    for (int i = 0; i < N; i++) v[i] = (int)(rnd() % 1000000) - 500000;

    int (*orders[])(const void *, const void *) = {cmp_int_asc, cmp_int_desc};
    for (int o = 0; o < 2; o++) {
        qsort(v, N, sizeof *v, orders[o]);
        long long weighted = 0;
        for (int i = 0; i < N; i++) weighted += (long long)v[i] * (i % 97);
        printf("order %d: first=%d last=%d weighted=%lld\n", o, v[0], v[N - 1], weighted);
    }
    qsort(v, N, sizeof *v, cmp_int_asc);
    int key = v[12345];
    int *found = bsearch(&key, v, N, sizeof *v, cmp_int_asc);
    printf("bsearch: %s value=%d\n", found ? "found" : "missing", found ? *found : 0);

    static const char *words[] = {"pear", "apple", "fig", "banana", "cherry", "date",
                                  "elderberry", "grape", "kiwi", "lemon", "mango", "apricot"};
    enum { W = sizeof words / sizeof *words };
    const char *sorted[W];
    memcpy(sorted, words, sizeof words);
    qsort(sorted, W, sizeof *sorted, cmp_str);
    for (int i = 0; i < W; i++) printf("%s%s", sorted[i], i + 1 < W ? " " : "\n");

    enum { P = 2000 };
    struct person *people = malloc(P * sizeof *people);
    if (!people) return 3;
    for (int i = 0; i < P; i++) {
        /* One call per statement: argument evaluation order is unspecified. */
        char c1 = (char)('a' + rnd() % 26);
        char c2 = (char)('a' + rnd() % 26);
        unsigned digit = rnd() % 10;
        snprintf(people[i].name, sizeof people[i].name, "p%c%c%u", c1, c2, digit);
        people[i].age = 18 + rnd() % 60;
        people[i].score = (rnd() % 1000) / 10.0;
        people[i].id = i;
    }
    qsort(people, P, sizeof *people, cmp_person);
    for (int i = 0; i < 5; i++)
        printf("%s age=%d score=%.1f id=%d\n", people[i].name, people[i].age, people[i].score,
               people[i].id);
    uint64_t check = 0;
    for (int i = 0; i < P; i++) check = (check * 131 + (uint64_t)people[i].id) % 1000000007u;
    printf("people check: %llu\n", (unsigned long long)check);

    long (*ops[])(long, long) = {op_add, op_sub, op_mul, op_max};
    long acc = 1;
    for (int i = 0; i < 1000; i++) {
        long (*op)(long, long) = ops[rnd() % 4];
        long operand = (long)(rnd() % 100);
        acc = op(acc % 100000, operand);
    }
    printf("dispatch: %ld\n", acc);
    free(v);
    free(people);
    return 0;
}
