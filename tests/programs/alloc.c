/* Allocation-heavy code: a linked list, a growing array, a hash table and
 * many blocks of varying sizes, enough to grow linear memory many times
 * (to about 80 MiB). Prints only checksums. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node {
    struct node *next;
    uint32_t value;
    char payload[20];
};

static uint32_t rng = 12345;
static uint32_t next_rand(void) {
    rng = rng * 1103515245u + 12345u;
    return rng >> 8;
}

struct entry {
    char *key;
    uint32_t count;
    struct entry *next;
};

int main(void) {
    /* 1. A linked list of 200,000 nodes. */
    struct node *head = NULL;
    for (uint32_t i = 0; i < 200000; i++) {
        struct node *n = malloc(sizeof *n);
        if (!n) return 2;
        n->value = i * 7u;
        snprintf(n->payload, sizeof n->payload, "node-%u", i);
        n->next = head;
        head = n;
    }
    uint64_t sum = 0;
    size_t chars = 0;
    for (struct node *n = head; n; n = n->next) {
        sum += n->value;
        chars += strlen(n->payload);
    }
    while (head) {
        struct node *next = head->next;
        free(head);
        head = next;
    }
    printf("list: sum=%llu chars=%zu\n", (unsigned long long)sum, chars);

    /* 2. An array grown with realloc to 4 million entries (16 MiB). */
    uint32_t *arr = NULL;
    size_t len = 0, cap = 0;
    for (uint32_t i = 0; i < 4000000; i++) {
        if (len == cap) {
            cap = cap ? cap * 2 : 16;
            uint32_t *grown = realloc(arr, cap * sizeof *arr);
            if (!grown) return 3;
            arr = grown;
        }
        arr[len++] = i ^ (i >> 3);
    }
    uint64_t x = 0;
    for (size_t i = 0; i < len; i++) x = x * 31 + arr[i];
    free(arr);
    printf("array: len=%zu hash=%llu\n", len, (unsigned long long)x);

    /* 3. A chained hash table counting 100,000 generated words. */
    enum { BUCKETS = 4096 };
    struct entry **table = calloc(BUCKETS, sizeof *table);
    if (!table) return 4;
    unsigned distinct = 0;
    for (int i = 0; i < 100000; i++) {
        char word[16];
        int wl = 1 + next_rand() % 4;
        for (int c = 0; c < wl; c++) word[c] = 'a' + next_rand() % 6;
        word[wl] = 0;
        uint32_t hsh = 2166136261u;
        for (char *p = word; *p; p++) hsh = (hsh ^ (uint8_t)*p) * 16777619u;
        struct entry **slot = &table[hsh % BUCKETS];
        struct entry *e = *slot;
        while (e && strcmp(e->key, word) != 0) e = e->next;
        if (!e) {
            e = malloc(sizeof *e);
            if (!e) return 5;
            e->key = strdup(word);
            e->count = 0;
            e->next = *slot;
            *slot = e;
            distinct++;
        }
        e->count++;
    }
    uint64_t weighted = 0;
    for (int b = 0; b < BUCKETS; b++) {
        for (struct entry *e = table[b]; e;) {
            struct entry *next = e->next;
            weighted += (uint64_t)e->count * strlen(e->key);
            free(e->key);
            free(e);
            e = next;
        }
    }
    free(table);
    printf("words: distinct=%u weighted=%llu\n", distinct, (unsigned long long)weighted);

    /* 4. Blocks of random sizes up to 1 MiB, half of them kept alive. */
    enum { BLOCKS = 2000 };
    unsigned char **blocks = calloc(BLOCKS, sizeof *blocks);
    size_t *sizes = calloc(BLOCKS, sizeof *sizes);
    if (!blocks || !sizes) return 6;
    uint64_t check = 0;
    size_t live = 0;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < BLOCKS; i++) {
            if (blocks[i] && next_rand() % 2) {
                free(blocks[i]);
                blocks[i] = NULL;
                live -= sizes[i];
            }
            if (!blocks[i]) {
                sizes[i] = 1 + next_rand() % (1 << 16) * (i % 16 == 0 ? 16 : 1);
                blocks[i] = malloc(sizes[i]);
                if (!blocks[i]) return 7;
                memset(blocks[i], (unsigned char)(i + round), sizes[i]);
                live += sizes[i];
            }
        }
        for (int i = 0; i < BLOCKS; i++) check += blocks[i][sizes[i] - 1] + blocks[i][0];
    }
    for (int i = 0; i < BLOCKS; i++) free(blocks[i]);
    free(blocks);
    free(sizes);
    printf("blocks: check=%llu last_live_over_1MiB=%d\n", (unsigned long long)check,
           live > (1 << 20));

    /* 5. One big block: 48 MiB, touched at every page. */
    size_t bigsz = 48u << 20;
    unsigned char *big = malloc(bigsz);
    if (!big) return 8;
    for (size_t i = 0; i < bigsz; i += 4096) big[i] = (unsigned char)(i >> 12);
    uint64_t bsum = 0;
    for (size_t i = 0; i < bigsz; i += 4096) bsum += big[i];
    free(big);
    printf("big: sum=%llu\n", (unsigned long long)bsum);
    return 0;
}
