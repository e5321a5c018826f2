/*
 * bigprog.c -- a large, ordinary C program used as a compile-throughput
 * workload for Shoal (benches/compile.rs). It is a grab bag of the kind of
 * code real modules contain: an arena allocator, checksums and hashes
 * (CRC-32, Adler-32, FNV-1a, MurmurHash3, xxHash32, SipHash-2-4, SHA-256),
 * base64, hash tables, a dozen sorting algorithms, balanced trees and other
 * containers, string algorithms (KMP, Boyer-Moore-Horspool, Z, suffix
 * arrays, edit distance), a Thompson-NFA regex matcher, a JSON parser and
 * printer, a small scripting language (lexer, parser, bytecode compiler and
 * stack VM), dense linear algebra, Q16.16 fixed-point math with CORDIC,
 * big integers, an FFT, Huffman and LZ77 compression, graph algorithms,
 * computational geometry, and calendar and number formatting helpers.
 *
 * `main` runs a self-test of every part on fixed inputs and prints one line
 * per part plus a combined checksum, so the program is also checkable
 * natively:  cc -O2 -o /tmp/bigprog bigprog.c -lm && /tmp/bigprog
 *
 * Build for wasm with ./build.sh (clang --target=wasm32-wasi -O2).
 */

#include <limits.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ------------------------------------------------------------------------ */
/* Test bookkeeping                                                          */
/* ------------------------------------------------------------------------ */

static int g_failures;
static uint32_t g_digest = 2166136261u;

static void digest_u32(uint32_t v) {
    for (int i = 0; i < 4; i++) {
        g_digest ^= (v >> (8 * i)) & 0xffu;
        g_digest *= 16777619u;
    }
}

static void check(int ok, const char *what) {
    if (!ok) {
        g_failures++;
        printf("  FAILED: %s\n", what);
    }
}

static void report(const char *part, uint32_t value) {
    digest_u32(value);
    printf("%-14s %08x\n", part, (unsigned)value);
}

/* ------------------------------------------------------------------------ */
/* Arena allocator                                                           */
/* ------------------------------------------------------------------------ */

typedef struct ArenaBlock {
    struct ArenaBlock *next;
    size_t used, cap;
    unsigned char data[];
} ArenaBlock;

typedef struct {
    ArenaBlock *head;
    size_t total;
} Arena;

static void *arena_alloc(Arena *a, size_t n) {
    n = (n + 15u) & ~(size_t)15u;
    if (!a->head || a->head->used + n > a->head->cap) {
        size_t cap = n > 65536 ? n : 65536;
        ArenaBlock *b = malloc(sizeof(ArenaBlock) + cap);
        if (!b) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += n;
    a->total += n;
    return p;
}

static void *arena_zalloc(Arena *a, size_t n) {
    void *p = arena_alloc(a, n);
    memset(p, 0, n);
    return p;
}

static char *arena_strndup(Arena *a, const char *s, size_t n) {
    char *d = arena_alloc(a, n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static void arena_free(Arena *a) {
    ArenaBlock *b = a->head;
    while (b) {
        ArenaBlock *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->total = 0;
}

/* ------------------------------------------------------------------------ */
/* Pseudo-random numbers (xoshiro128**, seeded by splitmix32)               */
/* ------------------------------------------------------------------------ */

typedef struct {
    uint32_t s[4];
} Rng;

static uint32_t splitmix32(uint32_t *x) {
    uint32_t z = (*x += 0x9e3779b9u);
    z = (z ^ (z >> 16)) * 0x85ebca6bu;
    z = (z ^ (z >> 13)) * 0xc2b2ae35u;
    return z ^ (z >> 16);
}

static void rng_seed(Rng *r, uint32_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix32(&seed);
}

static uint32_t rotl32(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

static uint32_t rng_next(Rng *r) {
    uint32_t result = rotl32(r->s[1] * 5, 7) * 9;
    uint32_t t = r->s[1] << 9;
    r->s[2] ^= r->s[0];
    r->s[3] ^= r->s[1];
    r->s[1] ^= r->s[2];
    r->s[0] ^= r->s[3];
    r->s[2] ^= t;
    r->s[3] = rotl32(r->s[3], 11);
    return result;
}

static uint32_t rng_below(Rng *r, uint32_t bound) {
    /* Lemire's nearly divisionless method. */
    uint64_t m = (uint64_t)rng_next(r) * bound;
    uint32_t low = (uint32_t)m;
    if (low < bound) {
        uint32_t threshold = (0u - bound) % bound;
        while (low < threshold) {
            m = (uint64_t)rng_next(r) * bound;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

static double rng_unit(Rng *r) { return (rng_next(r) >> 8) * (1.0 / 16777216.0); }

/* ------------------------------------------------------------------------ */
/* Growable string builder                                                   */
/* ------------------------------------------------------------------------ */

typedef struct {
    char *buf;
    size_t len, cap;
} StrBuf;

static void sb_reserve(StrBuf *sb, size_t extra) {
    if (sb->len + extra + 1 <= sb->cap) return;
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < sb->len + extra + 1) cap *= 2;
    char *nb = realloc(sb->buf, cap);
    if (!nb) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    sb->buf = nb;
    sb->cap = cap;
}

static void sb_putc(StrBuf *sb, char c) {
    sb_reserve(sb, 1);
    sb->buf[sb->len++] = c;
    sb->buf[sb->len] = 0;
}

static void sb_puts(StrBuf *sb, const char *s) {
    size_t n = strlen(s);
    sb_reserve(sb, n);
    memcpy(sb->buf + sb->len, s, n + 1);
    sb->len += n;
}

static void sb_putn(StrBuf *sb, const char *s, size_t n) {
    sb_reserve(sb, n);
    memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = 0;
}

static void sb_put_int(StrBuf *sb, long long v) {
    char tmp[24];
    int i = 0;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[i++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) tmp[i++] = '-';
    sb_reserve(sb, (size_t)i);
    while (i > 0) sb->buf[sb->len++] = tmp[--i];
    sb->buf[sb->len] = 0;
}

static void sb_clear(StrBuf *sb) {
    sb->len = 0;
    if (sb->buf) sb->buf[0] = 0;
}

static void sb_free(StrBuf *sb) {
    free(sb->buf);
    sb->buf = NULL;
    sb->len = sb->cap = 0;
}

/* ------------------------------------------------------------------------ */
/* Checksums and hash functions                                              */
/* ------------------------------------------------------------------------ */

static uint32_t crc32_table[256];

static void crc32_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc32_table[i] = c;
    }
}

static uint32_t crc32_update(uint32_t crc, const void *data, size_t n) {
    const unsigned char *p = data;
    crc = ~crc;
    while (n--) crc = crc32_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static uint32_t adler32(const void *data, size_t n) {
    const unsigned char *p = data;
    uint32_t a = 1, b = 0;
    while (n > 0) {
        size_t chunk = n < 5552 ? n : 5552;
        n -= chunk;
        while (chunk--) {
            a += *p++;
            b += a;
        }
        a %= 65521u;
        b %= 65521u;
    }
    return (b << 16) | a;
}

static uint32_t fnv1a32(const void *data, size_t n) {
    const unsigned char *p = data;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 1469598103934665603ull;
    while (*s) {
        h ^= (unsigned char)*s++;
        h *= 1099511628211ull;
    }
    return h;
}

static uint32_t load_le32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t load_le64(const unsigned char *p) {
    return (uint64_t)load_le32(p) | ((uint64_t)load_le32(p + 4) << 32);
}

static uint32_t murmur3_32(const void *key, size_t len, uint32_t seed) {
    const unsigned char *data = key;
    const size_t nblocks = len / 4;
    const uint32_t c1 = 0xcc9e2d51u, c2 = 0x1b873593u;
    uint32_t h1 = seed;
    for (size_t i = 0; i < nblocks; i++) {
        uint32_t k1 = load_le32(data + 4 * i);
        k1 *= c1;
        k1 = rotl32(k1, 15);
        k1 *= c2;
        h1 ^= k1;
        h1 = rotl32(h1, 13);
        h1 = h1 * 5 + 0xe6546b64u;
    }
    const unsigned char *tail = data + nblocks * 4;
    uint32_t k1 = 0;
    switch (len & 3) {
    case 3:
        k1 ^= (uint32_t)tail[2] << 16;
        /* fall through */
    case 2:
        k1 ^= (uint32_t)tail[1] << 8;
        /* fall through */
    case 1:
        k1 ^= tail[0];
        k1 *= c1;
        k1 = rotl32(k1, 15);
        k1 *= c2;
        h1 ^= k1;
    }
    h1 ^= (uint32_t)len;
    h1 ^= h1 >> 16;
    h1 *= 0x85ebca6bu;
    h1 ^= h1 >> 13;
    h1 *= 0xc2b2ae35u;
    h1 ^= h1 >> 16;
    return h1;
}

#define XXH_P1 2654435761u
#define XXH_P2 2246822519u
#define XXH_P3 3266489917u
#define XXH_P4 668265263u
#define XXH_P5 374761393u

static uint32_t xxh32_round(uint32_t acc, uint32_t input) {
    acc += input * XXH_P2;
    acc = rotl32(acc, 13);
    return acc * XXH_P1;
}

static uint32_t xxh32(const void *input, size_t len, uint32_t seed) {
    const unsigned char *p = input;
    const unsigned char *end = p + len;
    uint32_t h;
    if (len >= 16) {
        const unsigned char *limit = end - 16;
        uint32_t v1 = seed + XXH_P1 + XXH_P2;
        uint32_t v2 = seed + XXH_P2;
        uint32_t v3 = seed;
        uint32_t v4 = seed - XXH_P1;
        do {
            v1 = xxh32_round(v1, load_le32(p));
            v2 = xxh32_round(v2, load_le32(p + 4));
            v3 = xxh32_round(v3, load_le32(p + 8));
            v4 = xxh32_round(v4, load_le32(p + 12));
            p += 16;
        } while (p <= limit);
        h = rotl32(v1, 1) + rotl32(v2, 7) + rotl32(v3, 12) + rotl32(v4, 18);
    } else {
        h = seed + XXH_P5;
    }
    h += (uint32_t)len;
    while (p + 4 <= end) {
        h += load_le32(p) * XXH_P3;
        h = rotl32(h, 17) * XXH_P4;
        p += 4;
    }
    while (p < end) {
        h += (*p++) * XXH_P5;
        h = rotl32(h, 11) * XXH_P1;
    }
    h ^= h >> 15;
    h *= XXH_P2;
    h ^= h >> 13;
    h *= XXH_P3;
    h ^= h >> 16;
    return h;
}

static uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = rotl64(v1, 13);                                                                       \
        v1 ^= v0;                                                                                  \
        v0 = rotl64(v0, 32);                                                                       \
        v2 += v3;                                                                                  \
        v3 = rotl64(v3, 16);                                                                       \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = rotl64(v3, 21);                                                                       \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = rotl64(v1, 17);                                                                       \
        v1 ^= v2;                                                                                  \
        v2 = rotl64(v2, 32);                                                                       \
    } while (0)

static uint64_t siphash24(const void *src, size_t len, const unsigned char key[16]) {
    const unsigned char *in = src;
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ull ^ k0;
    uint64_t v1 = 0x646f72616e646f6dull ^ k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ k0;
    uint64_t v3 = 0x7465646279746573ull ^ k1;
    const unsigned char *end = in + len - (len % 8);
    for (; in != end; in += 8) {
        uint64_t m = load_le64(in);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (int i = (int)(len & 7) - 1; i >= 0; i--) b |= (uint64_t)in[i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* SHA-256 (FIPS 180-4). */

typedef struct {
    uint32_t state[8];
    uint64_t bitlen;
    unsigned char block[64];
    size_t fill;
} Sha256;

static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t rotr32(uint32_t x, int k) { return (x >> k) | (x << (32 - k)); }

static void sha256_compress(Sha256 *s, const unsigned char *blk) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = ((uint32_t)blk[4 * i] << 24) | ((uint32_t)blk[4 * i + 1] << 16) |
               ((uint32_t)blk[4 * i + 2] << 8) | blk[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr32(w[i - 15], 7) ^ rotr32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr32(w[i - 2], 17) ^ rotr32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = s->state[0], b = s->state[1], c = s->state[2], d = s->state[3];
    uint32_t e = s->state[4], f = s->state[5], g = s->state[6], h = s->state[7];
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = rotr32(e, 6) ^ rotr32(e, 11) ^ rotr32(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + S1 + ch + sha256_k[i] + w[i];
        uint32_t S0 = rotr32(a, 2) ^ rotr32(a, 13) ^ rotr32(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = S0 + maj;
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    s->state[0] += a;
    s->state[1] += b;
    s->state[2] += c;
    s->state[3] += d;
    s->state[4] += e;
    s->state[5] += f;
    s->state[6] += g;
    s->state[7] += h;
}

static void sha256_init(Sha256 *s) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->state, iv, sizeof iv);
    s->bitlen = 0;
    s->fill = 0;
}

static void sha256_update(Sha256 *s, const void *data, size_t n) {
    const unsigned char *p = data;
    s->bitlen += (uint64_t)n * 8;
    while (n > 0) {
        size_t take = 64 - s->fill;
        if (take > n) take = n;
        memcpy(s->block + s->fill, p, take);
        s->fill += take;
        p += take;
        n -= take;
        if (s->fill == 64) {
            sha256_compress(s, s->block);
            s->fill = 0;
        }
    }
}

static void sha256_final(Sha256 *s, unsigned char out[32]) {
    uint64_t bits = s->bitlen;
    unsigned char pad = 0x80;
    sha256_update(s, &pad, 1);
    pad = 0;
    while (s->fill != 56) sha256_update(s, &pad, 1);
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)(bits >> (56 - 8 * i));
    sha256_update(s, len, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(s->state[i] >> 24);
        out[4 * i + 1] = (unsigned char)(s->state[i] >> 16);
        out[4 * i + 2] = (unsigned char)(s->state[i] >> 8);
        out[4 * i + 3] = (unsigned char)s->state[i];
    }
}

static void to_hex(const unsigned char *in, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = 0;
}

/* Base64 (RFC 4648), with decoding that rejects malformed input. */

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t base64_encode(const unsigned char *in, size_t n, char *out) {
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = 0;
    return o;
}

static int b64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Returns the decoded length, or -1 if `in` is not canonical base64. */
static long base64_decode(const char *in, size_t n, unsigned char *out) {
    if (n % 4 != 0) return -1;
    long o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int pads = (in[i + 3] == '=') + (in[i + 2] == '=');
        if (pads && i + 4 != n) return -1;
        if (pads == 1 && in[i + 3] != '=') return -1;
        int a = b64_value(in[i]), b = b64_value(in[i + 1]);
        int c = pads >= 2 ? 0 : b64_value(in[i + 2]);
        int d = pads >= 1 ? 0 : b64_value(in[i + 3]);
        if (a < 0 || b < 0 || c < 0 || d < 0) return -1;
        uint32_t v = ((uint32_t)a << 18) | ((uint32_t)b << 12) | ((uint32_t)c << 6) | (uint32_t)d;
        out[o++] = (unsigned char)(v >> 16);
        if (pads < 2) out[o++] = (unsigned char)(v >> 8);
        if (pads < 1) out[o++] = (unsigned char)v;
    }
    return o;
}

static uint32_t test_hashes(void) {
    static const char quick[] = "The quick brown fox jumps over the lazy dog";
    size_t qn = strlen(quick);
    crc32_init();
    check(crc32_update(0, quick, qn) == 0x414fa339u, "crc32");
    check(adler32("Wikipedia", 9) == 0x11e60398u, "adler32");
    check(fnv1a32("", 0) == 0x811c9dc5u, "fnv1a32 empty");
    check(murmur3_32("", 0, 0) == 0, "murmur3 empty");
    check(murmur3_32("", 0, 1) == 0x514e28b7u, "murmur3 seed 1");
    check(xxh32("", 0, 0) == 0x02cc5d05u, "xxh32 empty");

    Sha256 s;
    unsigned char digest[32];
    char hex[65];
    sha256_init(&s);
    sha256_update(&s, "abc", 3);
    sha256_final(&s, digest);
    to_hex(digest, 32, hex);
    check(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0,
          "sha256 abc");

    unsigned char key[16];
    for (int i = 0; i < 16; i++) key[i] = (unsigned char)i;
    unsigned char msg[15];
    for (int i = 0; i < 15; i++) msg[i] = (unsigned char)i;
    check(siphash24(msg, 15, key) == 0xa129ca6149be45e5ull, "siphash 15");

    char enc[64];
    unsigned char dec[64];
    base64_encode((const unsigned char *)"foobar", 6, enc);
    check(strcmp(enc, "Zm9vYmFy") == 0, "base64 encode");
    base64_encode((const unsigned char *)"fooba", 5, enc);
    check(strcmp(enc, "Zm9vYmE=") == 0, "base64 pad");
    long dn = base64_decode("Zm9vYg==", 8, dec);
    check(dn == 4 && memcmp(dec, "foob", 4) == 0, "base64 decode");
    check(base64_decode("Zm9v*g==", 8, dec) < 0, "base64 reject");

    uint32_t acc = crc32_update(0, digest, 32);
    acc ^= murmur3_32(quick, qn, 42) ^ xxh32(quick, qn, 7) ^ adler32(quick, qn);
    acc ^= (uint32_t)fnv1a64(quick) ^ (uint32_t)siphash24(quick, qn, key);
    return acc;
}

/* ------------------------------------------------------------------------ */
/* Hash tables                                                               */
/* ------------------------------------------------------------------------ */

/* Robin Hood open addressing: string keys, long values. */
typedef struct {
    char *key;
    uint32_t hash;
    uint32_t dist; /* probe distance + 1; 0 = empty */
    long value;
} RhSlot;

typedef struct {
    RhSlot *slots;
    uint32_t cap, count;
} RhMap;

static void rh_init(RhMap *m, uint32_t cap) {
    uint32_t c = 8;
    while (c < cap) c <<= 1;
    m->slots = calloc(c, sizeof(RhSlot));
    m->cap = c;
    m->count = 0;
}

static void rh_insert_slot(RhMap *m, RhSlot ins) {
    uint32_t mask = m->cap - 1;
    uint32_t i = ins.hash & mask;
    ins.dist = 1;
    for (;;) {
        RhSlot *s = &m->slots[i];
        if (s->dist == 0) {
            *s = ins;
            m->count++;
            return;
        }
        if (s->hash == ins.hash && strcmp(s->key, ins.key) == 0) {
            s->value = ins.value;
            free(ins.key);
            return;
        }
        if (s->dist < ins.dist) {
            RhSlot tmp = *s;
            *s = ins;
            ins = tmp;
        }
        ins.dist++;
        i = (i + 1) & mask;
    }
}

static void rh_grow(RhMap *m) {
    RhSlot *old = m->slots;
    uint32_t oldcap = m->cap;
    m->cap *= 2;
    m->slots = calloc(m->cap, sizeof(RhSlot));
    m->count = 0;
    for (uint32_t i = 0; i < oldcap; i++)
        if (old[i].dist) rh_insert_slot(m, old[i]);
    free(old);
}

static void rh_put(RhMap *m, const char *key, long value) {
    if ((m->count + 1) * 10 > m->cap * 9) rh_grow(m);
    RhSlot s;
    size_t n = strlen(key);
    s.key = malloc(n + 1);
    memcpy(s.key, key, n + 1);
    s.hash = murmur3_32(key, n, 0x5eed);
    s.value = value;
    s.dist = 0;
    rh_insert_slot(m, s);
}

static RhSlot *rh_find(RhMap *m, const char *key) {
    uint32_t h = murmur3_32(key, strlen(key), 0x5eed);
    uint32_t mask = m->cap - 1;
    uint32_t i = h & mask;
    for (uint32_t d = 1;; d++) {
        RhSlot *s = &m->slots[i];
        if (s->dist == 0 || s->dist < d) return NULL;
        if (s->hash == h && strcmp(s->key, key) == 0) return s;
        i = (i + 1) & mask;
    }
}

/* Backward-shift deletion keeps probe sequences short without tombstones. */
static int rh_remove(RhMap *m, const char *key) {
    RhSlot *s = rh_find(m, key);
    if (!s) return 0;
    uint32_t mask = m->cap - 1;
    uint32_t i = (uint32_t)(s - m->slots);
    free(s->key);
    for (;;) {
        uint32_t next = (i + 1) & mask;
        if (m->slots[next].dist <= 1) {
            memset(&m->slots[i], 0, sizeof(RhSlot));
            break;
        }
        m->slots[i] = m->slots[next];
        m->slots[i].dist--;
        i = next;
    }
    m->count--;
    return 1;
}

static void rh_free(RhMap *m) {
    for (uint32_t i = 0; i < m->cap; i++)
        if (m->slots[i].dist) free(m->slots[i].key);
    free(m->slots);
}

/* Separate chaining: integer keys, with a node free list. */
typedef struct ChainNode {
    int64_t key;
    int64_t value;
    struct ChainNode *next;
} ChainNode;

typedef struct {
    ChainNode **buckets;
    size_t nbuckets, size;
    ChainNode *free_nodes;
} ChainMap;

static size_t chain_index(const ChainMap *m, int64_t key) {
    uint64_t x = (uint64_t)key;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return (size_t)(x % m->nbuckets);
}

static void chain_init(ChainMap *m, size_t nbuckets) {
    m->buckets = calloc(nbuckets, sizeof(ChainNode *));
    m->nbuckets = nbuckets;
    m->size = 0;
    m->free_nodes = NULL;
}

static void chain_rehash(ChainMap *m) {
    ChainMap bigger;
    chain_init(&bigger, m->nbuckets * 2 + 1);
    for (size_t b = 0; b < m->nbuckets; b++) {
        ChainNode *n = m->buckets[b];
        while (n) {
            ChainNode *next = n->next;
            size_t i = chain_index(&bigger, n->key);
            n->next = bigger.buckets[i];
            bigger.buckets[i] = n;
            n = next;
        }
    }
    free(m->buckets);
    m->buckets = bigger.buckets;
    m->nbuckets = bigger.nbuckets;
}

static int64_t *chain_get_or_insert(ChainMap *m, int64_t key, int64_t init) {
    size_t i = chain_index(m, key);
    for (ChainNode *n = m->buckets[i]; n; n = n->next)
        if (n->key == key) return &n->value;
    if (m->size >= m->nbuckets * 2) {
        chain_rehash(m);
        i = chain_index(m, key);
    }
    ChainNode *n = m->free_nodes;
    if (n)
        m->free_nodes = n->next;
    else
        n = malloc(sizeof *n);
    n->key = key;
    n->value = init;
    n->next = m->buckets[i];
    m->buckets[i] = n;
    m->size++;
    return &n->value;
}

static int chain_erase(ChainMap *m, int64_t key) {
    ChainNode **pp = &m->buckets[chain_index(m, key)];
    while (*pp) {
        ChainNode *n = *pp;
        if (n->key == key) {
            *pp = n->next;
            n->next = m->free_nodes;
            m->free_nodes = n;
            m->size--;
            return 1;
        }
        pp = &n->next;
    }
    return 0;
}

static void chain_free(ChainMap *m) {
    for (size_t b = 0; b < m->nbuckets; b++) {
        ChainNode *n = m->buckets[b];
        while (n) {
            ChainNode *next = n->next;
            free(n);
            n = next;
        }
    }
    while (m->free_nodes) {
        ChainNode *next = m->free_nodes->next;
        free(m->free_nodes);
        m->free_nodes = next;
    }
    free(m->buckets);
}

static uint32_t test_tables(void) {
    RhMap rh;
    rh_init(&rh, 4);
    char key[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "key-%d", i * 7919 % 10007);
        rh_put(&rh, key, i);
    }
    check(rh.count == 2000, "rh count");
    long sum = 0;
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "key-%d", i * 7919 % 10007);
        RhSlot *s = rh_find(&rh, key);
        check(s && s->value == i, "rh find");
        if (s) sum += s->value;
    }
    for (int i = 0; i < 2000; i += 3) {
        snprintf(key, sizeof key, "key-%d", i * 7919 % 10007);
        check(rh_remove(&rh, key), "rh remove");
    }
    int present = 0;
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "key-%d", i * 7919 % 10007);
        present += rh_find(&rh, key) != NULL;
    }
    check(present == 2000 - 667, "rh after remove");
    check(rh_find(&rh, "absent") == NULL, "rh absent");
    uint32_t count_after = rh.count;
    rh_free(&rh);

    ChainMap cm;
    chain_init(&cm, 7);
    Rng r;
    rng_seed(&r, 99);
    for (int i = 0; i < 5000; i++) {
        int64_t k = rng_below(&r, 1000);
        (*chain_get_or_insert(&cm, k, 0))++;
    }
    int64_t total = 0;
    for (int64_t k = 0; k < 1000; k++) {
        int64_t *v = chain_get_or_insert(&cm, k, 0);
        total += *v;
    }
    check(total == 5000, "chain total");
    int erased = 0;
    for (int64_t k = 0; k < 1000; k += 2) erased += chain_erase(&cm, k);
    check(erased == 500 && cm.size == 500, "chain erase");
    uint32_t h = (uint32_t)sum ^ (count_after << 16) ^ (uint32_t)cm.nbuckets;
    chain_free(&cm);
    return h;
}

/* ------------------------------------------------------------------------ */
/* Sorting and searching                                                     */
/* ------------------------------------------------------------------------ */

typedef int (*CmpFn)(const void *, const void *);

static void insertion_sort_int(int *a, size_t n) {
    for (size_t i = 1; i < n; i++) {
        int v = a[i];
        size_t j = i;
        while (j > 0 && a[j - 1] > v) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = v;
    }
}

static void binary_insertion_sort(int *a, size_t n) {
    for (size_t i = 1; i < n; i++) {
        int v = a[i];
        size_t lo = 0, hi = i;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (a[mid] <= v)
                lo = mid + 1;
            else
                hi = mid;
        }
        memmove(a + lo + 1, a + lo, (i - lo) * sizeof(int));
        a[lo] = v;
    }
}

static void shell_sort(int *a, size_t n) {
    static const size_t gaps[] = {701, 301, 132, 57, 23, 10, 4, 1};
    for (size_t g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
        size_t gap = gaps[g];
        for (size_t i = gap; i < n; i++) {
            int v = a[i];
            size_t j = i;
            for (; j >= gap && a[j - gap] > v; j -= gap) a[j] = a[j - gap];
            a[j] = v;
        }
    }
}

static void sift_down(int *a, size_t start, size_t end) {
    size_t root = start;
    while (2 * root + 1 < end) {
        size_t child = 2 * root + 1;
        if (child + 1 < end && a[child] < a[child + 1]) child++;
        if (a[root] >= a[child]) return;
        int t = a[root];
        a[root] = a[child];
        a[child] = t;
        root = child;
    }
}

static void heap_sort(int *a, size_t n) {
    if (n < 2) return;
    for (size_t s = n / 2; s-- > 0;) sift_down(a, s, n);
    for (size_t end = n - 1; end > 0; end--) {
        int t = a[0];
        a[0] = a[end];
        a[end] = t;
        sift_down(a, 0, end);
    }
}

static void merge_runs(int *a, int *tmp, size_t lo, size_t mid, size_t hi) {
    size_t i = lo, j = mid, k = lo;
    while (i < mid && j < hi) tmp[k++] = a[j] < a[i] ? a[j++] : a[i++];
    while (i < mid) tmp[k++] = a[i++];
    while (j < hi) tmp[k++] = a[j++];
    memcpy(a + lo, tmp + lo, (hi - lo) * sizeof(int));
}

static void merge_sort_rec(int *a, int *tmp, size_t lo, size_t hi) {
    if (hi - lo <= 16) {
        insertion_sort_int(a + lo, hi - lo);
        return;
    }
    size_t mid = lo + (hi - lo) / 2;
    merge_sort_rec(a, tmp, lo, mid);
    merge_sort_rec(a, tmp, mid, hi);
    if (a[mid - 1] <= a[mid]) return;
    merge_runs(a, tmp, lo, mid, hi);
}

static void merge_sort(int *a, size_t n) {
    int *tmp = malloc(n * sizeof(int) + 1);
    merge_sort_rec(a, tmp, 0, n);
    free(tmp);
}

/* Bottom-up merge sort: no recursion, doubling run widths. */
static void merge_sort_bottom_up(int *a, size_t n) {
    int *tmp = malloc(n * sizeof(int) + 1);
    for (size_t width = 1; width < n; width *= 2)
        for (size_t lo = 0; lo < n - width; lo += 2 * width) {
            size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            merge_runs(a, tmp, lo, lo + width, hi);
        }
    free(tmp);
}

static int median3(int a, int b, int c) {
    if (a < b) {
        if (b < c) return b;
        return a < c ? c : a;
    }
    if (a < c) return a;
    return b < c ? c : b;
}

/* Quicksort with a three-way (Dutch flag) partition; recurse on the smaller side. */
static void quick_sort3(int *a, long lo, long hi) {
    while (hi - lo > 12) {
        int pivot = median3(a[lo], a[lo + (hi - lo) / 2], a[hi]);
        long lt = lo, gt = hi, i = lo;
        while (i <= gt) {
            if (a[i] < pivot) {
                int t = a[lt];
                a[lt++] = a[i];
                a[i++] = t;
            } else if (a[i] > pivot) {
                int t = a[gt];
                a[gt--] = a[i];
                a[i] = t;
            } else {
                i++;
            }
        }
        if (lt - lo < hi - gt) {
            quick_sort3(a, lo, lt - 1);
            lo = gt + 1;
        } else {
            quick_sort3(a, gt + 1, hi);
            hi = lt - 1;
        }
    }
    if (hi > lo) insertion_sort_int(a + lo, (size_t)(hi - lo + 1));
}

/* Introsort: quicksort that falls back to heapsort when it degenerates. */
static void intro_sort_rec(int *a, size_t n, int depth) {
    while (n > 16) {
        if (depth-- == 0) {
            heap_sort(a, n);
            return;
        }
        int pivot = median3(a[0], a[n / 2], a[n - 1]);
        size_t i = 0, j = n - 1;
        for (;;) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i >= j) break;
            int t = a[i];
            a[i] = a[j];
            a[j] = t;
            i++;
            j--;
        }
        intro_sort_rec(a + j + 1, n - j - 1, depth);
        n = j + 1;
    }
    insertion_sort_int(a, n);
}

static void intro_sort(int *a, size_t n) {
    int depth = 0;
    for (size_t m = n; m > 1; m >>= 1) depth += 2;
    intro_sort_rec(a, n, depth);
}

/* LSD radix sort on the sign-flipped bits, 8 bits per pass. */
static void radix_sort(int *a, size_t n) {
    uint32_t *src = malloc(n * sizeof(uint32_t) + 4), *dst = malloc(n * sizeof(uint32_t) + 4);
    for (size_t i = 0; i < n; i++) src[i] = (uint32_t)a[i] ^ 0x80000000u;
    for (int shift = 0; shift < 32; shift += 8) {
        size_t count[257] = {0};
        for (size_t i = 0; i < n; i++) count[((src[i] >> shift) & 255) + 1]++;
        for (int b = 0; b < 256; b++) count[b + 1] += count[b];
        for (size_t i = 0; i < n; i++) dst[count[(src[i] >> shift) & 255]++] = src[i];
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
    for (size_t i = 0; i < n; i++) a[i] = (int)(src[i] ^ 0x80000000u);
    free(src);
    free(dst);
}

static void counting_sort_small(int *a, size_t n, int lo, int hi) {
    size_t range = (size_t)(hi - lo + 1);
    size_t *count = calloc(range, sizeof(size_t));
    for (size_t i = 0; i < n; i++) count[a[i] - lo]++;
    size_t k = 0;
    for (size_t v = 0; v < range; v++)
        for (size_t c = 0; c < count[v]; c++) a[k++] = (int)v + lo;
    free(count);
}

static void comb_sort(int *a, size_t n) {
    size_t gap = n;
    int sorted = 0;
    while (!sorted) {
        gap = gap * 10 / 13;
        if (gap <= 1) {
            gap = 1;
            sorted = 1;
        }
        for (size_t i = 0; i + gap < n; i++)
            if (a[i] > a[i + gap]) {
                int t = a[i];
                a[i] = a[i + gap];
                a[i + gap] = t;
                sorted = 0;
            }
    }
}

static void cocktail_sort(int *a, size_t n) {
    if (n < 2) return;
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t last = lo;
        for (size_t i = lo; i < hi; i++)
            if (a[i] > a[i + 1]) {
                int t = a[i];
                a[i] = a[i + 1];
                a[i + 1] = t;
                last = i;
            }
        hi = last;
        for (size_t i = hi; i > lo; i--)
            if (a[i - 1] > a[i]) {
                int t = a[i];
                a[i] = a[i - 1];
                a[i - 1] = t;
                last = i;
            }
        lo = last;
    }
}

/* Generic merge sort on arbitrary elements with a comparator. */
static void gsort(void *base, size_t n, size_t size, CmpFn cmp) {
    if (n < 2) return;
    unsigned char *a = base;
    size_t half = n / 2;
    gsort(a, half, size, cmp);
    gsort(a + half * size, n - half, size, cmp);
    unsigned char *tmp = malloc(n * size);
    size_t i = 0, j = half, k = 0;
    while (i < half && j < n) {
        if (cmp(a + j * size, a + i * size) < 0)
            memcpy(tmp + size * k++, a + size * j++, size);
        else
            memcpy(tmp + size * k++, a + size * i++, size);
    }
    memcpy(tmp + size * k, a + size * i, (half - i) * size);
    k += half - i;
    memcpy(tmp + size * k, a + size * j, (n - j) * size);
    memcpy(a, tmp, n * size);
    free(tmp);
}

/* Quickselect: the k-th smallest (0-based), Hoare partition. */
static int quick_select(int *a, size_t n, size_t k) {
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int pivot = a[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i <= j) {
                int t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return a[k];
    }
    return a[k];
}

static size_t lower_bound_int(const int *a, size_t n, int v) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static long exponential_search(const int *a, size_t n, int v) {
    if (n == 0) return -1;
    size_t bound = 1;
    while (bound < n && a[bound] < v) bound *= 2;
    size_t lo = bound / 2, hi = bound < n ? bound + 1 : n;
    size_t i = lo + lower_bound_int(a + lo, hi - lo, v);
    return i < n && a[i] == v ? (long)i : -1;
}

static int is_sorted_int(const int *a, size_t n) {
    for (size_t i = 1; i < n; i++)
        if (a[i - 1] > a[i]) return 0;
    return 1;
}

typedef struct {
    char name[12];
    int age;
    double score;
} Person;

static int person_by_age_then_name(const void *x, const void *y) {
    const Person *a = x, *b = y;
    if (a->age != b->age) return a->age < b->age ? -1 : 1;
    return strcmp(a->name, b->name);
}

static int cmp_int_asc(const void *x, const void *y) {
    int a = *(const int *)x, b = *(const int *)y;
    return (a > b) - (a < b);
}

typedef void (*SortFn)(int *, size_t);

static uint32_t test_sorting(void) {
    static const struct {
        const char *name;
        SortFn fn;
    } sorts[] = {{"insertion", insertion_sort_int}, {"binary-insertion", binary_insertion_sort},
                 {"shell", shell_sort},             {"heap", heap_sort},
                 {"merge", merge_sort},             {"merge-bu", merge_sort_bottom_up},
                 {"intro", intro_sort},             {"radix", radix_sort},
                 {"comb", comb_sort},               {"cocktail", cocktail_sort}};
    const size_t n = 3000;
    int *orig = malloc(n * sizeof(int)), *a = malloc(n * sizeof(int)), *ref = malloc(n * sizeof(int));
    Rng r;
    rng_seed(&r, 2024);
    for (size_t i = 0; i < n; i++) orig[i] = (int)(rng_next(&r) % 20001) - 10000;
    memcpy(ref, orig, n * sizeof(int));
    qsort(ref, n, sizeof(int), cmp_int_asc);
    uint32_t h = 0;
    for (size_t s = 0; s < sizeof sorts / sizeof sorts[0]; s++) {
        memcpy(a, orig, n * sizeof(int));
        sorts[s].fn(a, n);
        check(memcmp(a, ref, n * sizeof(int)) == 0, sorts[s].name);
        h = h * 31 + (uint32_t)a[n / 3];
    }
    memcpy(a, orig, n * sizeof(int));
    quick_sort3(a, 0, (long)n - 1);
    check(is_sorted_int(a, n), "quick3");
    memcpy(a, orig, n * sizeof(int));
    for (size_t i = 0; i < n; i++) a[i] = (a[i] % 50 + 50) % 50;
    counting_sort_small(a, n, 0, 49);
    check(is_sorted_int(a, n), "counting");
    memcpy(a, orig, n * sizeof(int));
    int kth = quick_select(a, n, n / 2);
    check(kth == ref[n / 2], "quickselect");
    check(exponential_search(ref, n, ref[1234]) >= 0, "exp search hit");
    check(exponential_search(ref, n, 10001) < 0, "exp search miss");

    Person people[6] = {{"mallory", 30, 1.5}, {"alice", 30, 2.5}, {"bob", 25, 3.0},
                        {"carol", 41, 0.5},  {"dave", 25, 9.0},  {"erin", 30, 4.0}};
    gsort(people, 6, sizeof(Person), person_by_age_then_name);
    check(strcmp(people[0].name, "bob") == 0 && strcmp(people[2].name, "alice") == 0 &&
              strcmp(people[5].name, "carol") == 0,
          "gsort people");
    free(orig);
    free(a);
    free(ref);
    return h ^ (uint32_t)kth;
}

/* ------------------------------------------------------------------------ */
/* Containers: AVL tree, skip list, binary heap, union-find, bitset, deque,  */
/* trie                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct AvlNode {
    int key;
    int height;
    long payload;
    struct AvlNode *child[2]; /* 0 = left (smaller keys), 1 = right */
} AvlNode;

static int avl_height(const AvlNode *n) { return n ? n->height : 0; }

static void avl_fix(AvlNode *n) {
    int hl = avl_height(n->child[0]), hr = avl_height(n->child[1]);
    n->height = (hl > hr ? hl : hr) + 1;
}

/* Rotates `n` towards side `d` (d = 1: right rotation, the left child rises). */
static AvlNode *avl_rotate(AvlNode *n, int d) {
    AvlNode *pivot = n->child[!d];
    n->child[!d] = pivot->child[d];
    pivot->child[d] = n;
    avl_fix(n);
    avl_fix(pivot);
    return pivot;
}

static AvlNode *avl_balance(AvlNode *n) {
    avl_fix(n);
    int bf = avl_height(n->child[0]) - avl_height(n->child[1]);
    if (bf > 1 || bf < -1) {
        int heavy = bf < 0; /* the taller side */
        AvlNode *c = n->child[heavy];
        if (avl_height(c->child[heavy]) < avl_height(c->child[!heavy])) n->child[heavy] = avl_rotate(c, heavy);
        return avl_rotate(n, !heavy);
    }
    return n;
}

static AvlNode *avl_insert(AvlNode *n, int key, long payload) {
    if (!n) {
        AvlNode *fresh = malloc(sizeof *fresh);
        fresh->key = key;
        fresh->payload = payload;
        fresh->height = 1;
        fresh->child[0] = fresh->child[1] = NULL;
        return fresh;
    }
    if (key == n->key)
        n->payload = payload;
    else
        n->child[key > n->key] = avl_insert(n->child[key > n->key], key, payload);
    return avl_balance(n);
}

static AvlNode *avl_detach_min(AvlNode *n, AvlNode **min) {
    if (!n->child[0]) {
        *min = n;
        return n->child[1];
    }
    n->child[0] = avl_detach_min(n->child[0], min);
    return avl_balance(n);
}

static AvlNode *avl_delete(AvlNode *n, int key) {
    if (!n) return NULL;
    if (key != n->key) {
        n->child[key > n->key] = avl_delete(n->child[key > n->key], key);
        return avl_balance(n);
    }
    AvlNode *l = n->child[0], *r = n->child[1];
    free(n);
    if (!r) return l;
    AvlNode *min;
    r = avl_detach_min(r, &min);
    min->child[0] = l;
    min->child[1] = r;
    return avl_balance(min);
}

static const AvlNode *avl_find(const AvlNode *n, int key) {
    while (n && n->key != key) n = n->child[key > n->key];
    return n;
}

static int avl_check(const AvlNode *n, long lo, long hi) {
    if (!n) return 1;
    if (n->key <= lo || n->key >= hi) return 0;
    int d = avl_height(n->child[0]) - avl_height(n->child[1]);
    if (d < -1 || d > 1) return 0;
    return avl_check(n->child[0], lo, n->key) && avl_check(n->child[1], n->key, hi);
}

static void avl_inorder(const AvlNode *n, void (*visit)(const AvlNode *, void *), void *ctx) {
    while (n) {
        avl_inorder(n->child[0], visit, ctx);
        visit(n, ctx);
        n = n->child[1];
    }
}

static void avl_free(AvlNode *n) {
    while (n) {
        avl_free(n->child[0]);
        AvlNode *r = n->child[1];
        free(n);
        n = r;
    }
}

typedef struct {
    int last;
    int ordered;
    uint32_t hash;
} InorderState;

static void avl_visit_check(const AvlNode *n, void *ctx) {
    InorderState *s = ctx;
    if (n->key <= s->last) s->ordered = 0;
    s->last = n->key;
    s->hash = s->hash * 1000003u ^ (uint32_t)n->payload;
}

/* Skip list with up to 16 levels. */
#define SKIP_MAX 16

typedef struct SkipNode {
    int key;
    int value;
    int level;
    struct SkipNode *next[];
} SkipNode;

typedef struct {
    SkipNode *head;
    int level;
    int size;
    Rng rng;
} SkipList;

static SkipNode *skip_node(int level, int key, int value) {
    SkipNode *n = calloc(1, sizeof(SkipNode) + (size_t)level * sizeof(SkipNode *));
    n->key = key;
    n->value = value;
    n->level = level;
    return n;
}

static void skip_init(SkipList *s, uint32_t seed) {
    s->head = skip_node(SKIP_MAX, 0, 0);
    s->level = 1;
    s->size = 0;
    rng_seed(&s->rng, seed);
}

static int skip_random_level(SkipList *s) {
    int lvl = 1;
    uint32_t bits = rng_next(&s->rng);
    while ((bits & 3) == 0 && lvl < SKIP_MAX) {
        lvl++;
        bits >>= 2;
    }
    return lvl;
}

/* Walks down to the first node with a key >= `key`; if `update` is given,
 * records the last node before it on every level. */
static SkipNode *skip_descend(const SkipList *s, int key, SkipNode **update) {
    SkipNode *x = s->head;
    for (int i = s->level - 1; i >= 0; i--) {
        while (x->next[i] && x->next[i]->key < key) x = x->next[i];
        if (update) update[i] = x;
    }
    return x->next[0];
}

static void skip_insert(SkipList *s, int key, int value) {
    SkipNode *update[SKIP_MAX];
    SkipNode *x = skip_descend(s, key, update);
    if (x && x->key == key) {
        x->value = value;
        return;
    }
    int lvl = skip_random_level(s);
    if (lvl > s->level) {
        for (int i = s->level; i < lvl; i++) update[i] = s->head;
        s->level = lvl;
    }
    SkipNode *n = skip_node(lvl, key, value);
    for (int i = 0; i < lvl; i++) {
        n->next[i] = update[i]->next[i];
        update[i]->next[i] = n;
    }
    s->size++;
}

static int skip_erase(SkipList *s, int key) {
    SkipNode *update[SKIP_MAX];
    SkipNode *x = skip_descend(s, key, update);
    if (!x || x->key != key) return 0;
    for (int i = 0; i < x->level; i++) update[i]->next[i] = x->next[i];
    free(x);
    while (s->level > 1 && !s->head->next[s->level - 1]) s->level--;
    s->size--;
    return 1;
}

static const SkipNode *skip_find_ge(const SkipList *s, int key) { return skip_descend(s, key, NULL); }

static void skip_free(SkipList *s) {
    SkipNode *x = s->head;
    while (x) {
        SkipNode *n = x->next[0];
        free(x);
        x = n;
    }
}

/* Binary min-heap of (priority, id) pairs with decrease-key via positions. */
typedef struct {
    double *prio;
    int *heap;  /* heap position -> id */
    int *where; /* id -> heap position or -1 */
    int size, cap;
} IndexedHeap;

static void iheap_init(IndexedHeap *h, int cap) {
    h->prio = malloc((size_t)cap * sizeof(double));
    h->heap = malloc((size_t)cap * sizeof(int));
    h->where = malloc((size_t)cap * sizeof(int));
    for (int i = 0; i < cap; i++) h->where[i] = -1;
    h->size = 0;
    h->cap = cap;
}

static void iheap_swap(IndexedHeap *h, int i, int j) {
    int a = h->heap[i], b = h->heap[j];
    h->heap[i] = b;
    h->heap[j] = a;
    h->where[b] = i;
    h->where[a] = j;
}

static void iheap_up(IndexedHeap *h, int i) {
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (h->prio[h->heap[parent]] <= h->prio[h->heap[i]]) break;
        iheap_swap(h, i, parent);
        i = parent;
    }
}

static void iheap_down(IndexedHeap *h, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->size && h->prio[h->heap[l]] < h->prio[h->heap[m]]) m = l;
        if (r < h->size && h->prio[h->heap[r]] < h->prio[h->heap[m]]) m = r;
        if (m == i) return;
        iheap_swap(h, i, m);
        i = m;
    }
}

static void iheap_push_or_decrease(IndexedHeap *h, int id, double prio) {
    if (h->where[id] < 0) {
        h->prio[id] = prio;
        h->heap[h->size] = id;
        h->where[id] = h->size;
        iheap_up(h, h->size++);
    } else if (prio < h->prio[id]) {
        h->prio[id] = prio;
        iheap_up(h, h->where[id]);
    }
}

static int iheap_pop(IndexedHeap *h) {
    int top = h->heap[0];
    iheap_swap(h, 0, --h->size);
    h->where[top] = -1;
    if (h->size) iheap_down(h, 0);
    return top;
}

static void iheap_free(IndexedHeap *h) {
    free(h->prio);
    free(h->heap);
    free(h->where);
}

/* Union-find with path halving and union by size. */
typedef struct {
    int *parent, *size;
    int sets;
} DisjointSets;

static void ds_init(DisjointSets *d, int n) {
    d->parent = malloc((size_t)n * sizeof(int));
    d->size = malloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) {
        d->parent[i] = i;
        d->size[i] = 1;
    }
    d->sets = n;
}

static int ds_find(DisjointSets *d, int x) {
    while (d->parent[x] != x) {
        d->parent[x] = d->parent[d->parent[x]];
        x = d->parent[x];
    }
    return x;
}

static int ds_union(DisjointSets *d, int a, int b) {
    a = ds_find(d, a);
    b = ds_find(d, b);
    if (a == b) return 0;
    if (d->size[a] < d->size[b]) {
        int t = a;
        a = b;
        b = t;
    }
    d->parent[b] = a;
    d->size[a] += d->size[b];
    d->sets--;
    return 1;
}

static void ds_free(DisjointSets *d) {
    free(d->parent);
    free(d->size);
}

/* Fixed-size bitset. */
typedef struct {
    uint64_t *words;
    size_t nbits;
} Bitset;

static void bs_init(Bitset *b, size_t nbits) {
    b->nbits = nbits;
    b->words = calloc((nbits + 63) / 64, sizeof(uint64_t));
}

static void bs_set(Bitset *b, size_t i) { b->words[i >> 6] |= 1ull << (i & 63); }
static void bs_clear_bit(Bitset *b, size_t i) { b->words[i >> 6] &= ~(1ull << (i & 63)); }
static int bs_test(const Bitset *b, size_t i) { return (int)((b->words[i >> 6] >> (i & 63)) & 1); }

static int popcount64(uint64_t x) {
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (int)((x * 0x0101010101010101ull) >> 56);
}

static size_t bs_count(const Bitset *b) {
    size_t c = 0;
    for (size_t w = 0; w < (b->nbits + 63) / 64; w++) c += (size_t)popcount64(b->words[w]);
    return c;
}

static long bs_next_set(const Bitset *b, size_t from) {
    size_t nwords = (b->nbits + 63) / 64;
    size_t w = from >> 6;
    if (w >= nwords) return -1;
    uint64_t word = b->words[w] & (~0ull << (from & 63));
    for (;;) {
        if (word) {
            int tz = 0;
            while (!((word >> tz) & 1)) tz++;
            size_t i = w * 64 + (size_t)tz;
            return i < b->nbits ? (long)i : -1;
        }
        if (++w >= nwords) return -1;
        word = b->words[w];
    }
}

/* Ring-buffer deque of ints. */
typedef struct {
    int *data;
    size_t head, len, cap;
} Deque;

static void dq_grow(Deque *d) {
    size_t ncap = d->cap ? d->cap * 2 : 8;
    int *nd = malloc(ncap * sizeof(int));
    for (size_t i = 0; i < d->len; i++) nd[i] = d->data[(d->head + i) % d->cap];
    free(d->data);
    d->data = nd;
    d->head = 0;
    d->cap = ncap;
}

static void dq_push_back(Deque *d, int v) {
    if (d->len == d->cap) dq_grow(d);
    d->data[(d->head + d->len++) % d->cap] = v;
}

static void dq_push_front(Deque *d, int v) {
    if (d->len == d->cap) dq_grow(d);
    d->head = (d->head + d->cap - 1) % d->cap;
    d->data[d->head] = v;
    d->len++;
}

static int dq_pop_front(Deque *d) {
    int v = d->data[d->head];
    d->head = (d->head + 1) % d->cap;
    d->len--;
    return v;
}

static int dq_pop_back(Deque *d) {
    d->len--;
    return d->data[(d->head + d->len) % d->cap];
}

/* Trie over lowercase words, counting occurrences and prefixes. */
typedef struct TrieNode {
    struct TrieNode *child[26];
    int count;  /* words ending here */
    int prefix; /* words passing through */
} TrieNode;

static TrieNode *trie_new(Arena *a) { return arena_zalloc(a, sizeof(TrieNode)); }

static void trie_add(Arena *a, TrieNode *t, const char *w) {
    for (; *w; w++) {
        int c = *w - 'a';
        if (c < 0 || c >= 26) continue;
        if (!t->child[c]) t->child[c] = trie_new(a);
        t = t->child[c];
        t->prefix++;
    }
    t->count++;
}

static const TrieNode *trie_walk(const TrieNode *t, const char *w) {
    for (; t && *w; w++) {
        int c = *w - 'a';
        t = (c >= 0 && c < 26) ? t->child[c] : NULL;
    }
    return t;
}

static int trie_longest_word(const TrieNode *t, char *buf, int depth, char *best, int best_len) {
    if (t->count && depth > best_len) {
        memcpy(best, buf, (size_t)depth);
        best[depth] = 0;
        best_len = depth;
    }
    for (int c = 0; c < 26; c++)
        if (t->child[c]) {
            buf[depth] = (char)('a' + c);
            best_len = trie_longest_word(t->child[c], buf, depth + 1, best, best_len);
        }
    return best_len;
}

static uint32_t test_containers(void) {
    AvlNode *root = NULL;
    Rng r;
    rng_seed(&r, 7);
    int keys[1500];
    for (int i = 0; i < 1500; i++) {
        keys[i] = (int)rng_below(&r, 100000);
        root = avl_insert(root, keys[i], (long)i);
    }
    check(avl_check(root, -1, 1000000), "avl balanced");
    for (int i = 0; i < 1500; i += 2) root = avl_delete(root, keys[i]);
    check(avl_check(root, -1, 1000000), "avl balanced after delete");
    InorderState st = {-1, 1, 0};
    avl_inorder(root, avl_visit_check, &st);
    check(st.ordered, "avl inorder");
    int found = 0;
    for (int i = 1; i < 1500; i += 2) found += avl_find(root, keys[i]) != NULL;
    check(found == 750 || found > 700, "avl find");
    int root_height = avl_height(root);
    avl_free(root);

    SkipList sl;
    skip_init(&sl, 11);
    for (int i = 0; i < 1000; i++) skip_insert(&sl, (i * 37) % 1000, i);
    for (int i = 0; i < 1000; i += 4) skip_erase(&sl, i);
    const SkipNode *ge = skip_find_ge(&sl, 500);
    check(sl.size == 750 && ge && ge->key == 501, "skip list");
    int skip_sum = 0;
    for (const SkipNode *x = sl.head->next[0]; x; x = x->next[0]) skip_sum += x->value;
    skip_free(&sl);

    IndexedHeap h;
    iheap_init(&h, 100);
    for (int i = 0; i < 100; i++) iheap_push_or_decrease(&h, i, (double)((i * 61) % 100));
    iheap_push_or_decrease(&h, 99, -1.0);
    int first = iheap_pop(&h);
    double last = -2.0;
    int heap_ordered = 1;
    while (h.size) {
        int id = iheap_pop(&h);
        if (h.prio[id] < last) heap_ordered = 0;
        last = h.prio[id];
    }
    check(first == 99 && heap_ordered, "indexed heap");
    iheap_free(&h);

    DisjointSets ds;
    ds_init(&ds, 1000);
    for (int i = 0; i < 1000; i++) ds_union(&ds, i, (i * 7) % 1000);
    int sets = ds.sets;
    ds_free(&ds);

    Bitset bs;
    bs_init(&bs, 1000);
    for (size_t i = 0; i < 1000; i += 3) bs_set(&bs, i);
    bs_clear_bit(&bs, 999);
    check(bs_count(&bs) == 333 && bs_test(&bs, 3) && !bs_test(&bs, 4), "bitset");
    check(bs_next_set(&bs, 4) == 6 && bs_next_set(&bs, 997) == -1, "bitset next");
    free(bs.words);

    Deque dq = {0};
    for (int i = 0; i < 100; i++) {
        if (i % 2)
            dq_push_back(&dq, i);
        else
            dq_push_front(&dq, i);
    }
    int front = dq_pop_front(&dq), back = dq_pop_back(&dq);
    check(front == 98 && back == 99 && dq.len == 98, "deque");
    free(dq.data);

    Arena arena = {0};
    TrieNode *trie = trie_new(&arena);
    static const char *words[] = {"tree", "trie", "algorithm", "assoc", "all", "also", "tree", "trip"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) trie_add(&arena, trie, words[i]);
    const TrieNode *tr = trie_walk(trie, "tr");
    check(tr && tr->prefix == 4, "trie prefix");
    check(trie_walk(trie, "tree")->count == 2, "trie count");
    char buf[64], best[64];
    int best_len = trie_longest_word(trie, buf, 0, best, 0);
    check(best_len == 9 && strcmp(best, "algorithm") == 0, "trie longest");
    arena_free(&arena);

    return (uint32_t)root_height ^ ((uint32_t)skip_sum << 4) ^ ((uint32_t)sets << 20) ^ st.hash;
}

/* ------------------------------------------------------------------------ */
/* String algorithms                                                         */
/* ------------------------------------------------------------------------ */

/* Knuth-Morris-Pratt: number of (possibly overlapping) occurrences. */
static int kmp_count(const char *text, const char *pat) {
    size_t m = strlen(pat), n = strlen(text);
    if (m == 0 || m > n) return 0;
    int *fail = malloc(m * sizeof(int));
    fail[0] = 0;
    for (size_t i = 1, k = 0; i < m; i++) {
        while (k > 0 && pat[i] != pat[k]) k = (size_t)fail[k - 1];
        if (pat[i] == pat[k]) k++;
        fail[i] = (int)k;
    }
    int count = 0;
    for (size_t i = 0, k = 0; i < n; i++) {
        while (k > 0 && text[i] != pat[k]) k = (size_t)fail[k - 1];
        if (text[i] == pat[k]) k++;
        if (k == m) {
            count++;
            k = (size_t)fail[k - 1];
        }
    }
    free(fail);
    return count;
}

/* Boyer-Moore-Horspool: first occurrence or -1. */
static long bmh_find(const char *text, size_t n, const char *pat, size_t m) {
    if (m == 0) return 0;
    if (m > n) return -1;
    size_t shift[256];
    for (int i = 0; i < 256; i++) shift[i] = m;
    for (size_t i = 0; i + 1 < m; i++) shift[(unsigned char)pat[i]] = m - 1 - i;
    size_t pos = 0;
    while (pos + m <= n) {
        size_t j = m;
        while (j > 0 && text[pos + j - 1] == pat[j - 1]) j--;
        if (j == 0) return (long)pos;
        pos += shift[(unsigned char)text[pos + m - 1]];
    }
    return -1;
}

/* Z-array: z[i] = length of the longest common prefix of s and s+i. */
static void z_array(const char *s, size_t n, int *z) {
    if (n == 0) return;
    z[0] = (int)n;
    size_t l = 0, r = 0;
    for (size_t i = 1; i < n; i++) {
        size_t zi = 0;
        if (i < r) zi = (size_t)z[i - l] < r - i ? (size_t)z[i - l] : r - i;
        while (i + zi < n && s[zi] == s[i + zi]) zi++;
        z[i] = (int)zi;
        if (i + zi > r) {
            l = i;
            r = i + zi;
        }
    }
}

/* Shortest period of a string via the Z-array. */
static size_t shortest_period(const char *s) {
    size_t n = strlen(s);
    if (n == 0) return 0;
    int *z = malloc(n * sizeof(int));
    z_array(s, n, z);
    size_t p = n;
    for (size_t i = 1; i < n; i++)
        if (n % i == 0 && (size_t)z[i] == n - i) {
            p = i;
            break;
        }
    free(z);
    return p;
}

/* Suffix array by prefix doubling with radix-free sort on rank pairs. */
typedef struct {
    const int *rank;
    size_t k, n;
} SaCtx;

static SaCtx g_sa_ctx;

static int sa_cmp(const void *x, const void *y) {
    int a = *(const int *)x, b = *(const int *)y;
    const SaCtx *c = &g_sa_ctx;
    if (c->rank[a] != c->rank[b]) return c->rank[a] - c->rank[b];
    int ra = (size_t)a + c->k < c->n ? c->rank[(size_t)a + c->k] : -1;
    int rb = (size_t)b + c->k < c->n ? c->rank[(size_t)b + c->k] : -1;
    return ra - rb;
}

static void suffix_array(const char *s, size_t n, int *sa) {
    int *rank = malloc(n * sizeof(int)), *tmp = malloc(n * sizeof(int));
    for (size_t i = 0; i < n; i++) {
        sa[i] = (int)i;
        rank[i] = (unsigned char)s[i];
    }
    for (size_t k = 1;; k *= 2) {
        g_sa_ctx.rank = rank;
        g_sa_ctx.k = k;
        g_sa_ctx.n = n;
        qsort(sa, n, sizeof(int), sa_cmp);
        tmp[sa[0]] = 0;
        for (size_t i = 1; i < n; i++) tmp[sa[i]] = tmp[sa[i - 1]] + (sa_cmp(&sa[i - 1], &sa[i]) < 0);
        memcpy(rank, tmp, n * sizeof(int));
        if ((size_t)rank[sa[n - 1]] == n - 1) break;
    }
    free(rank);
    free(tmp);
}

/* Kasai's LCP array: lcp[i] = lcp(suffix sa[i-1], suffix sa[i]). */
static void lcp_array(const char *s, size_t n, const int *sa, int *lcp) {
    int *rank = malloc(n * sizeof(int));
    for (size_t i = 0; i < n; i++) rank[sa[i]] = (int)i;
    size_t h = 0;
    lcp[0] = 0;
    for (size_t i = 0; i < n; i++) {
        if (rank[i] > 0) {
            size_t j = (size_t)sa[rank[i] - 1];
            while (i + h < n && j + h < n && s[i + h] == s[j + h]) h++;
            lcp[rank[i]] = (int)h;
            if (h > 0) h--;
        } else {
            h = 0;
        }
    }
    free(rank);
}

static size_t count_distinct_substrings(const char *s) {
    size_t n = strlen(s);
    if (n == 0) return 0;
    int *sa = malloc(n * sizeof(int)), *lcp = malloc(n * sizeof(int));
    suffix_array(s, n, sa);
    lcp_array(s, n, sa, lcp);
    size_t total = n * (n + 1) / 2;
    for (size_t i = 1; i < n; i++) total -= (size_t)lcp[i];
    free(sa);
    free(lcp);
    return total;
}

static int min3(int a, int b, int c) {
    int m = a < b ? a : b;
    return m < c ? m : c;
}

/* Levenshtein distance with two rows. */
static int edit_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    int *prev = malloc((m + 1) * sizeof(int)), *cur = malloc((m + 1) * sizeof(int));
    for (size_t j = 0; j <= m; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= m; j++) {
            int cost = a[i - 1] != b[j - 1];
            cur[j] = min3(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
        }
        int *t = prev;
        prev = cur;
        cur = t;
    }
    int d = prev[m];
    free(prev);
    free(cur);
    return d;
}

/* Longest common subsequence, reconstructed into `out`. */
static size_t lcs(const char *a, const char *b, char *out) {
    size_t n = strlen(a), m = strlen(b);
    unsigned short *t = calloc((n + 1) * (m + 1), sizeof(unsigned short));
#define LCS_AT(i, j) t[(i) * (m + 1) + (j)]
    for (size_t i = n; i-- > 0;)
        for (size_t j = m; j-- > 0;)
            LCS_AT(i, j) = a[i] == b[j] ? (unsigned short)(LCS_AT(i + 1, j + 1) + 1)
                           : LCS_AT(i + 1, j) > LCS_AT(i, j + 1) ? LCS_AT(i + 1, j)
                                                                 : LCS_AT(i, j + 1);
    size_t i = 0, j = 0, k = 0;
    while (i < n && j < m) {
        if (a[i] == b[j]) {
            out[k++] = a[i];
            i++;
            j++;
        } else if (LCS_AT(i + 1, j) >= LCS_AT(i, j + 1)) {
            i++;
        } else {
            j++;
        }
    }
#undef LCS_AT
    out[k] = 0;
    free(t);
    return k;
}

/* UTF-8: decode one code point; returns bytes consumed, 0 on malformed. */
static int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    uint32_t min;
    if ((c & 0xe0) == 0xc0) {
        len = 2;
        min = 0x80;
        *cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3;
        min = 0x800;
        *cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4;
        min = 0x10000;
        *cp = c & 0x07;
    } else {
        return 0;
    }
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        *cp = (*cp << 6) | (s[i] & 0x3f);
    }
    if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff)) return 0;
    return len;
}

static int utf8_encode(uint32_t cp, unsigned char *out) {
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xc0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        if (cp >= 0xd800 && cp <= 0xdfff) return 0;
        out[0] = (unsigned char)(0xe0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    if (cp > 0x10ffff) return 0;
    out[0] = (unsigned char)(0xf0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Number of code points, or -1 if the input is not valid UTF-8. */
static long utf8_length(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    long count = 0;
    while (n) {
        uint32_t cp;
        int k = utf8_decode(p, n, &cp);
        if (!k) return -1;
        p += k;
        n -= (size_t)k;
        count++;
    }
    return count;
}

/* Glob matching with '*', '?' and character classes "[a-z]", "[!0-9]". */
static int glob_class(const char **pp, char c) {
    const char *p = *pp + 1;
    int negate = 0, matched = 0;
    if (*p == '!' || *p == '^') {
        negate = 1;
        p++;
    }
    do {
        char lo = *p, hi = lo;
        if (p[1] == '-' && p[2] && p[2] != ']') {
            hi = p[2];
            p += 2;
        }
        if (c >= lo && c <= hi) matched = 1;
        p++;
    } while (*p && *p != ']');
    *pp = *p ? p + 1 : p;
    return matched != negate;
}

static int glob_match(const char *pat, const char *str) {
    const char *star_p = NULL, *star_s = NULL;
    while (*str) {
        if (*pat == '*') {
            star_p = ++pat;
            star_s = str;
            continue;
        }
        if (*pat == '?') {
            pat++;
            str++;
            continue;
        }
        if (*pat == '[') {
            const char *p = pat;
            if (glob_class(&p, *str)) {
                pat = p;
                str++;
                continue;
            }
        } else if (*pat && *pat == *str) {
            pat++;
            str++;
            continue;
        }
        if (!star_p) return 0;
        pat = star_p;
        str = ++star_s;
    }
    while (*pat == '*') pat++;
    return *pat == 0;
}

/* Word frequencies of a text, most frequent first (ties alphabetical). */
typedef struct {
    char word[24];
    int count;
} WordCount;

static int word_count_cmp(const void *x, const void *y) {
    const WordCount *a = x, *b = y;
    if (a->count != b->count) return b->count - a->count;
    return strcmp(a->word, b->word);
}

static int word_frequencies(const char *text, WordCount *out, int max_out) {
    RhMap m;
    rh_init(&m, 64);
    char w[24];
    size_t wl = 0;
    for (const char *p = text;; p++) {
        char c = *p;
        int letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '\'';
        if (letter && wl + 1 < sizeof w) {
            w[wl++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        } else if (!letter && wl) {
            w[wl] = 0;
            RhSlot *s = rh_find(&m, w);
            if (s)
                s->value++;
            else
                rh_put(&m, w, 1);
            wl = 0;
        }
        if (!c) break;
    }
    int n = 0;
    for (uint32_t i = 0; i < m.cap && n < max_out; i++)
        if (m.slots[i].dist) {
            strncpy(out[n].word, m.slots[i].key, sizeof out[n].word - 1);
            out[n].word[sizeof out[n].word - 1] = 0;
            out[n].count = (int)m.slots[i].value;
            n++;
        }
    rh_free(&m);
    qsort(out, (size_t)n, sizeof(WordCount), word_count_cmp);
    return n;
}

/* In-place helpers. */
static char *str_trim(char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r')) n--;
    s[n] = 0;
    return s;
}

static void str_reverse(char *s, size_t n) {
    for (size_t i = 0; i < n / 2; i++) {
        char t = s[i];
        s[i] = s[n - 1 - i];
        s[n - 1 - i] = t;
    }
}

static void reverse_words(char *s) {
    size_t n = strlen(s);
    str_reverse(s, n);
    size_t start = 0;
    for (size_t i = 0; i <= n; i++)
        if (i == n || s[i] == ' ') {
            str_reverse(s + start, i - start);
            start = i + 1;
        }
}

static int is_palindrome_alnum(const char *s) {
    size_t i = 0, j = strlen(s);
    while (i < j) {
        char a = s[i], b = s[j - 1];
        int an = (a >= '0' && a <= '9') || ((a | 32) >= 'a' && (a | 32) <= 'z');
        int bn = (b >= '0' && b <= '9') || ((b | 32) >= 'a' && (b | 32) <= 'z');
        if (!an) {
            i++;
            continue;
        }
        if (!bn) {
            j--;
            continue;
        }
        if ((a | 32) != (b | 32)) return 0;
        i++;
        j--;
    }
    return 1;
}

/* Longest palindromic substring by Manacher's algorithm. */
static size_t longest_palindrome(const char *s, size_t *start) {
    size_t n = strlen(s);
    size_t m = 2 * n + 1;
    int *p = calloc(m, sizeof(int));
    size_t center = 0, right = 0, best = 0, best_c = 0;
    for (size_t i = 0; i < m; i++) {
        if (i < right) {
            size_t mirror = 2 * center - i;
            p[i] = (int)(right - i < (size_t)p[mirror] ? right - i : (size_t)p[mirror]);
        }
        for (;;) {
            long a = (long)i - p[i] - 1, b = (long)i + p[i] + 1;
            if (a < 0 || b >= (long)m) break;
            if ((a & 1) && s[a / 2] != s[b / 2]) break;
            p[i]++;
        }
        if (i + (size_t)p[i] > right) {
            center = i;
            right = i + (size_t)p[i];
        }
        if ((size_t)p[i] > best) {
            best = (size_t)p[i];
            best_c = i;
        }
    }
    free(p);
    *start = (best_c - best) / 2;
    return best;
}

/* Split on a delimiter into at most `max` fields (fields point into s). */
static int str_split(char *s, char delim, char **fields, int max) {
    int n = 0;
    char *start = s;
    for (char *p = s;; p++) {
        if (*p == delim || *p == 0) {
            int end = *p == 0;
            if (n < max) fields[n++] = start;
            *p = 0;
            start = p + 1;
            if (end) break;
        }
    }
    return n;
}

static uint32_t test_strings(void) {
    uint32_t h = 0;
    check(kmp_count("abababab", "aba") == 3, "kmp");
    static const char text[] = "here is a simple example of boyer moore horspool searching";
    check(bmh_find(text, strlen(text), "example", 7) == 17, "bmh");
    check(bmh_find(text, strlen(text), "absent", 6) == -1, "bmh miss");
    check(shortest_period("abcabcabc") == 3 && shortest_period("abcd") == 4, "period");
    check(count_distinct_substrings("banana") == 15, "distinct substrings");
    check(count_distinct_substrings("mississippi") == 53, "distinct substrings 2");
    check(edit_distance("kitten", "sitting") == 3, "edit distance");
    check(edit_distance("", "abc") == 3, "edit distance empty");
    char out[64];
    check(lcs("AGGTAB", "GXTXAYB", out) == 4 && strcmp(out, "GTAB") == 0, "lcs");
    check(utf8_length("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80") == 9, "utf8 length");
    check(utf8_length("\xc0\xaf") == -1, "utf8 overlong");
    check(utf8_length("\xed\xa0\x80") == -1, "utf8 surrogate");
    unsigned char enc[4];
    uint32_t cp;
    int k = utf8_encode(0x1f600, enc);
    check(k == 4 && utf8_decode(enc, 4, &cp) == 4 && cp == 0x1f600, "utf8 roundtrip");
    check(glob_match("*.c", "bigprog.c") && !glob_match("*.c", "bigprog.h"), "glob suffix");
    check(glob_match("b?g*[0-9].[!x]*", "bigprog2.wasm"), "glob class");
    check(!glob_match("a*b*c", "aXbXd"), "glob backtrack");
    static const char para[] =
        "It was the best of times, it was the worst of times, it was the age of wisdom, "
        "it was the age of foolishness, it was the epoch of belief, it was the epoch of "
        "incredulity, it was the season of Light, it was the season of Darkness";
    WordCount wc[64];
    int nw = word_frequencies(para, wc, 64);
    check(nw > 10 && strcmp(wc[0].word, "it") == 0 && wc[0].count == 8, "word frequencies");
    for (int i = 0; i < nw; i++) h = h * 131 + (uint32_t)wc[i].count + fnv1a32(wc[i].word, strlen(wc[i].word));
    char line[] = "  the quick brown fox  ";
    char *t = str_trim(line);
    reverse_words(t);
    check(strcmp(t, "fox brown quick the") == 0, "reverse words");
    check(is_palindrome_alnum("A man, a plan, a canal: Panama"), "palindrome");
    size_t ps;
    size_t pl = longest_palindrome("forgeeksskeegfor", &ps);
    check(pl == 10 && ps == 3, "manacher");
    char csv[] = "alpha,beta,,delta";
    char *fields[8];
    check(str_split(csv, ',', fields, 8) == 4 && fields[2][0] == 0 && strcmp(fields[3], "delta") == 0,
          "split");
    return h ^ (uint32_t)pl;
}

/* ------------------------------------------------------------------------ */
/* Regular expressions: recursive-descent parser -> Pike VM program          */
/* Supports . [] [^] * + ? {m,n} | () ^ $ \d \w \s \D \W \S and escapes.     */
/* ------------------------------------------------------------------------ */

typedef enum { RX_CHAR, RX_ANY, RX_CLASS, RX_SPLIT, RX_JMP, RX_SAVE, RX_BOL, RX_EOL, RX_MATCH } RxOp;

typedef struct {
    RxOp op;
    int x, y;   /* RX_SPLIT/RX_JMP targets; RX_CHAR: x = char; RX_SAVE: x = slot */
    int cls;    /* RX_CLASS: index into class table */
} RxInst;

typedef struct {
    uint32_t bits[8]; /* 256-bit membership */
} RxClass;

typedef enum { RN_CHAR, RN_ANY, RN_CLASS, RN_CAT, RN_ALT, RN_STAR, RN_PLUS, RN_QUEST, RN_GROUP, RN_EMPTY,
               RN_BOL, RN_EOL } RnKind;

typedef struct RxNode {
    RnKind kind;
    int value; /* char, class index, or group number */
    int greedy;
    struct RxNode *a, *b;
} RxNode;

typedef struct {
    const char *src;
    size_t pos;
    Arena *arena;
    RxClass *classes;
    int nclasses, maxclasses;
    int ngroups;
    const char *error;
} RxParser;

typedef struct {
    RxInst *code;
    int len, cap;
    RxClass *classes;
    int nclasses;
    int nslots;
} RxProgram;

static RxNode *rx_node(RxParser *p, RnKind kind, RxNode *a, RxNode *b) {
    RxNode *n = arena_zalloc(p->arena, sizeof(RxNode));
    n->kind = kind;
    n->a = a;
    n->b = b;
    n->greedy = 1;
    return n;
}

static int rx_new_class(RxParser *p) {
    if (p->nclasses == p->maxclasses) {
        p->maxclasses = p->maxclasses ? p->maxclasses * 2 : 8;
        p->classes = realloc(p->classes, (size_t)p->maxclasses * sizeof(RxClass));
    }
    memset(&p->classes[p->nclasses], 0, sizeof(RxClass));
    return p->nclasses++;
}

static void rx_class_add(RxClass *c, int lo, int hi) {
    for (int ch = lo; ch <= hi; ch++) c->bits[ch >> 5] |= 1u << (ch & 31);
}

static void rx_class_add_named(RxClass *c, char name) {
    switch (name | 32) {
    case 'd':
        rx_class_add(c, '0', '9');
        break;
    case 'w':
        rx_class_add(c, 'a', 'z');
        rx_class_add(c, 'A', 'Z');
        rx_class_add(c, '0', '9');
        rx_class_add(c, '_', '_');
        break;
    case 's':
        rx_class_add(c, ' ', ' ');
        rx_class_add(c, '\t', '\r');
        break;
    }
}

static void rx_class_negate(RxClass *c) {
    for (int i = 0; i < 8; i++) c->bits[i] = ~c->bits[i];
}

static int rx_class_has(const RxClass *c, unsigned char ch) { return (c->bits[ch >> 5] >> (ch & 31)) & 1; }

static int rx_peek(RxParser *p) { return (unsigned char)p->src[p->pos]; }

static int rx_escape_char(char c) {
    switch (c) {
    case 'n':
        return '\n';
    case 't':
        return '\t';
    case 'r':
        return '\r';
    case '0':
        return 0;
    default:
        return (unsigned char)c;
    }
}

static RxNode *rx_parse_alt(RxParser *p);

static RxNode *rx_parse_bracket(RxParser *p) {
    int idx = rx_new_class(p);
    int negate = 0;
    p->pos++; /* '[' */
    if (rx_peek(p) == '^') {
        negate = 1;
        p->pos++;
    }
    int first = 1;
    while (rx_peek(p) && (rx_peek(p) != ']' || first)) {
        first = 0;
        int lo = rx_peek(p);
        p->pos++;
        if (lo == '\\' && rx_peek(p)) {
            char e = (char)rx_peek(p);
            p->pos++;
            if (strchr("dwsDWS", e)) {
                RxClass named;
                memset(&named, 0, sizeof named);
                rx_class_add_named(&named, e);
                if (e >= 'A' && e <= 'Z') rx_class_negate(&named);
                for (int i = 0; i < 8; i++) p->classes[idx].bits[i] |= named.bits[i];
                continue;
            }
            lo = rx_escape_char(e);
        }
        int hi = lo;
        if (rx_peek(p) == '-' && p->src[p->pos + 1] && p->src[p->pos + 1] != ']') {
            p->pos++;
            hi = rx_peek(p);
            p->pos++;
            if (hi == '\\' && rx_peek(p)) {
                hi = rx_escape_char((char)rx_peek(p));
                p->pos++;
            }
            if (hi < lo) {
                p->error = "bad range in class";
                return NULL;
            }
        }
        rx_class_add(&p->classes[idx], lo, hi);
    }
    if (rx_peek(p) != ']') {
        p->error = "unterminated class";
        return NULL;
    }
    p->pos++;
    if (negate) rx_class_negate(&p->classes[idx]);
    RxNode *n = rx_node(p, RN_CLASS, NULL, NULL);
    n->value = idx;
    return n;
}

static RxNode *rx_parse_atom(RxParser *p) {
    int c = rx_peek(p);
    RxNode *n;
    switch (c) {
    case '(': {
        p->pos++;
        int group = ++p->ngroups;
        if (p->src[p->pos] == '?' && p->src[p->pos + 1] == ':') {
            p->pos += 2;
            group = 0;
            p->ngroups--;
        }
        RxNode *inner = rx_parse_alt(p);
        if (!inner) return NULL;
        if (rx_peek(p) != ')') {
            p->error = "missing )";
            return NULL;
        }
        p->pos++;
        if (!group) return inner;
        n = rx_node(p, RN_GROUP, inner, NULL);
        n->value = group;
        return n;
    }
    case '[':
        return rx_parse_bracket(p);
    case '.':
        p->pos++;
        return rx_node(p, RN_ANY, NULL, NULL);
    case '^':
        p->pos++;
        return rx_node(p, RN_BOL, NULL, NULL);
    case '$':
        p->pos++;
        return rx_node(p, RN_EOL, NULL, NULL);
    case '\\': {
        p->pos++;
        char e = (char)rx_peek(p);
        if (!e) {
            p->error = "trailing backslash";
            return NULL;
        }
        p->pos++;
        if (strchr("dwsDWS", e)) {
            int idx = rx_new_class(p);
            rx_class_add_named(&p->classes[idx], e);
            if (e >= 'A' && e <= 'Z') rx_class_negate(&p->classes[idx]);
            n = rx_node(p, RN_CLASS, NULL, NULL);
            n->value = idx;
            return n;
        }
        n = rx_node(p, RN_CHAR, NULL, NULL);
        n->value = rx_escape_char(e);
        return n;
    }
    case '*':
    case '+':
    case '?':
        p->error = "nothing to repeat";
        return NULL;
    default:
        p->pos++;
        n = rx_node(p, RN_CHAR, NULL, NULL);
        n->value = c;
        return n;
    }
}

/* Deep copy, needed to expand {m,n} into concatenations. */
static RxNode *rx_clone(RxParser *p, const RxNode *n) {
    if (!n) return NULL;
    RxNode *c = rx_node(p, n->kind, rx_clone(p, n->a), rx_clone(p, n->b));
    c->value = n->value;
    c->greedy = n->greedy;
    return c;
}

static int rx_parse_int(RxParser *p, int *out) {
    int v = 0, digits = 0;
    while (rx_peek(p) >= '0' && rx_peek(p) <= '9') {
        v = v * 10 + (rx_peek(p) - '0');
        if (v > 1000) return 0;
        p->pos++;
        digits++;
    }
    *out = v;
    return digits > 0;
}

static RxNode *rx_repeat_range(RxParser *p, RxNode *atom, int min, int max) {
    RxNode *result = NULL;
    for (int i = 0; i < min; i++) {
        RxNode *copy = i == 0 ? atom : rx_clone(p, atom);
        result = result ? rx_node(p, RN_CAT, result, copy) : copy;
    }
    if (max < 0) {
        RxNode *star = rx_node(p, RN_STAR, min ? rx_clone(p, atom) : atom, NULL);
        return result ? rx_node(p, RN_CAT, result, star) : star;
    }
    RxNode *optional = NULL;
    for (int i = max - min; i > 0; i--) {
        RxNode *copy = (i == max - min && min == 0) ? atom : rx_clone(p, atom);
        RxNode *body = optional ? rx_node(p, RN_CAT, copy, optional) : copy;
        optional = rx_node(p, RN_QUEST, body, NULL);
    }
    if (!optional) return result ? result : rx_node(p, RN_EMPTY, NULL, NULL);
    return result ? rx_node(p, RN_CAT, result, optional) : optional;
}

static RxNode *rx_parse_repeat(RxParser *p) {
    RxNode *atom = rx_parse_atom(p);
    while (atom) {
        int c = rx_peek(p);
        RnKind kind;
        if (c == '*')
            kind = RN_STAR;
        else if (c == '+')
            kind = RN_PLUS;
        else if (c == '?')
            kind = RN_QUEST;
        else if (c == '{') {
            size_t save = p->pos;
            int min, max;
            p->pos++;
            if (!rx_parse_int(p, &min)) {
                p->pos = save;
                return atom;
            }
            max = min;
            if (rx_peek(p) == ',') {
                p->pos++;
                if (!rx_parse_int(p, &max)) max = -1;
            }
            if (rx_peek(p) != '}' || (max >= 0 && max < min)) {
                p->error = "bad {m,n}";
                return NULL;
            }
            p->pos++;
            atom = rx_repeat_range(p, atom, min, max);
            continue;
        } else
            return atom;
        p->pos++;
        atom = rx_node(p, kind, atom, NULL);
        if (rx_peek(p) == '?') {
            atom->greedy = 0;
            p->pos++;
        }
    }
    return NULL;
}

static RxNode *rx_parse_concat(RxParser *p) {
    RxNode *left = NULL;
    while (rx_peek(p) && rx_peek(p) != '|' && rx_peek(p) != ')') {
        RxNode *right = rx_parse_repeat(p);
        if (!right) return NULL;
        left = left ? rx_node(p, RN_CAT, left, right) : right;
    }
    return left ? left : rx_node(p, RN_EMPTY, NULL, NULL);
}

static RxNode *rx_parse_alt(RxParser *p) {
    RxNode *left = rx_parse_concat(p);
    while (left && rx_peek(p) == '|') {
        p->pos++;
        RxNode *right = rx_parse_concat(p);
        if (!right) return NULL;
        left = rx_node(p, RN_ALT, left, right);
    }
    return left;
}

static int rx_emit(RxProgram *prog, RxOp op, int x, int y) {
    if (prog->len == prog->cap) {
        prog->cap = prog->cap ? prog->cap * 2 : 32;
        prog->code = realloc(prog->code, (size_t)prog->cap * sizeof(RxInst));
    }
    RxInst *i = &prog->code[prog->len];
    i->op = op;
    i->x = x;
    i->y = y;
    i->cls = 0;
    return prog->len++;
}

/* Points a SPLIT at `body` (preferred when greedy) and `skip`. */
static void rx_set_split(RxProgram *prog, int split, int body, int skip, int greedy) {
    prog->code[split].x = greedy ? body : skip;
    prog->code[split].y = greedy ? skip : body;
}

static void rx_compile_node(RxProgram *prog, const RxNode *n) {
    int split, jmp;
    switch (n->kind) {
    case RN_CHAR:
        rx_emit(prog, RX_CHAR, n->value, 0);
        break;
    case RN_ANY:
        rx_emit(prog, RX_ANY, 0, 0);
        break;
    case RN_CLASS:
        prog->code[rx_emit(prog, RX_CLASS, 0, 0)].cls = n->value;
        break;
    case RN_BOL:
        rx_emit(prog, RX_BOL, 0, 0);
        break;
    case RN_EOL:
        rx_emit(prog, RX_EOL, 0, 0);
        break;
    case RN_EMPTY:
        break;
    case RN_CAT:
        rx_compile_node(prog, n->a);
        rx_compile_node(prog, n->b);
        break;
    case RN_ALT:
        split = rx_emit(prog, RX_SPLIT, 0, 0);
        prog->code[split].x = prog->len;
        rx_compile_node(prog, n->a);
        jmp = rx_emit(prog, RX_JMP, 0, 0);
        prog->code[split].y = prog->len;
        rx_compile_node(prog, n->b);
        prog->code[jmp].x = prog->len;
        break;
    case RN_QUEST:
    case RN_STAR:
        /* split body, after; body; [jmp split (star)]; after: */
        split = rx_emit(prog, RX_SPLIT, 0, 0);
        rx_compile_node(prog, n->a);
        if (n->kind == RN_STAR) rx_emit(prog, RX_JMP, split, 0);
        rx_set_split(prog, split, split + 1, prog->len, n->greedy);
        break;
    case RN_PLUS: {
        /* body; split body, after; after: */
        int start = prog->len;
        rx_compile_node(prog, n->a);
        split = rx_emit(prog, RX_SPLIT, 0, 0);
        rx_set_split(prog, split, start, prog->len, n->greedy);
        break;
    }
    case RN_GROUP:
        rx_emit(prog, RX_SAVE, 2 * n->value, 0);
        rx_compile_node(prog, n->a);
        rx_emit(prog, RX_SAVE, 2 * n->value + 1, 0);
        break;
    }
}

static const char *rx_compile(const char *pattern, RxProgram *prog) {
    Arena arena = {0};
    RxParser p = {pattern, 0, &arena, NULL, 0, 0, 0, NULL};
    memset(prog, 0, sizeof *prog);
    RxNode *root = rx_parse_alt(&p);
    if (root && rx_peek(&p) == ')') p.error = "unmatched )";
    if (!root || p.error) {
        arena_free(&arena);
        free(p.classes);
        return p.error ? p.error : "parse error";
    }
    rx_emit(prog, RX_SAVE, 0, 0);
    rx_compile_node(prog, root);
    rx_emit(prog, RX_SAVE, 1, 0);
    rx_emit(prog, RX_MATCH, 0, 0);
    prog->classes = p.classes;
    prog->nclasses = p.nclasses;
    prog->nslots = 2 * (p.ngroups + 1);
    arena_free(&arena);
    return NULL;
}

/* Pike VM: threads carry capture slots; priority order gives leftmost-first. */
typedef struct {
    int pc;
    int *slots;
} RxThread;

typedef struct {
    RxThread *threads;
    int n;
    int *mark; /* generation mark per pc */
} RxList;

static void rx_add_thread(const RxProgram *prog, RxList *list, int gen, int pc, int *slots, const char *str,
                          size_t pos, int *scratch) {
    if (list->mark[pc] == gen) return;
    list->mark[pc] = gen;
    const RxInst *in = &prog->code[pc];
    switch (in->op) {
    case RX_JMP:
        rx_add_thread(prog, list, gen, in->x, slots, str, pos, scratch);
        return;
    case RX_SPLIT:
        rx_add_thread(prog, list, gen, in->x, slots, str, pos, scratch);
        rx_add_thread(prog, list, gen, in->y, slots, str, pos, scratch);
        return;
    case RX_SAVE: {
        int old = slots[in->x];
        slots[in->x] = (int)pos;
        rx_add_thread(prog, list, gen, pc + 1, slots, str, pos, scratch);
        slots[in->x] = old;
        return;
    }
    case RX_BOL:
        if (pos == 0) rx_add_thread(prog, list, gen, pc + 1, slots, str, pos, scratch);
        return;
    case RX_EOL:
        if (str[pos] == 0) rx_add_thread(prog, list, gen, pc + 1, slots, str, pos, scratch);
        return;
    default: {
        RxThread *t = &list->threads[list->n++];
        t->pc = pc;
        memcpy(t->slots, slots, (size_t)prog->nslots * sizeof(int));
        (void)scratch;
        return;
    }
    }
}

/* Searches `str`; on success fills caps[0..nslots) and returns 1. */
static int rx_search(const RxProgram *prog, const char *str, int *caps) {
    int n = prog->len, ns = prog->nslots;
    RxList lists[2];
    int *slot_store = malloc(sizeof(int) * (size_t)(2 * n * ns + ns));
    for (int l = 0; l < 2; l++) {
        lists[l].threads = malloc(sizeof(RxThread) * (size_t)n);
        lists[l].mark = malloc(sizeof(int) * (size_t)n);
        for (int i = 0; i < n; i++) {
            lists[l].threads[i].slots = slot_store + (l * n + i) * ns;
            lists[l].mark[i] = -1;
        }
        lists[l].n = 0;
    }
    int *init = slot_store + 2 * n * ns;
    for (int i = 0; i < ns; i++) init[i] = -1;
    int matched = 0;
    RxList *cur = &lists[0], *next = &lists[1];
    size_t pos = 0;
    rx_add_thread(prog, cur, 0, 0, init, str, 0, NULL);
    for (;; pos++) {
        next->n = 0;
        unsigned char c = (unsigned char)str[pos];
        for (int i = 0; i < cur->n; i++) {
            RxThread *t = &cur->threads[i];
            const RxInst *in = &prog->code[t->pc];
            int advance = 0;
            switch (in->op) {
            case RX_CHAR:
                advance = c && c == (unsigned char)in->x;
                break;
            case RX_ANY:
                advance = c && c != '\n';
                break;
            case RX_CLASS:
                advance = c && rx_class_has(&prog->classes[in->cls], c);
                break;
            case RX_MATCH:
                matched = 1;
                memcpy(caps, t->slots, (size_t)ns * sizeof(int));
                i = cur->n; /* lower-priority threads are cut off */
                continue;
            default:
                break;
            }
            if (advance) rx_add_thread(prog, next, (int)pos + 1, t->pc + 1, t->slots, str, pos + 1, NULL);
        }
        if (!matched) /* unanchored search: start a new thread at every position */
            rx_add_thread(prog, next, (int)pos + 1, 0, init, str, pos + 1, NULL);
        RxList *tmp = cur;
        cur = next;
        next = tmp;
        if (cur->n == 0 || c == 0) break;
    }
    /* Threads still alive at the end of input may reach MATCH. */
    for (int i = 0; i < cur->n && !matched; i++)
        if (prog->code[cur->threads[i].pc].op == RX_MATCH) {
            matched = 1;
            memcpy(caps, cur->threads[i].slots, (size_t)ns * sizeof(int));
        }
    for (int l = 0; l < 2; l++) {
        free(lists[l].threads);
        free(lists[l].mark);
    }
    free(slot_store);
    return matched;
}

static void rx_free(RxProgram *prog) {
    free(prog->code);
    free(prog->classes);
}

/* Convenience: does `pattern` match somewhere in `str`, and where. */
static int rx_find(const char *pattern, const char *str, int *start, int *end) {
    RxProgram prog;
    if (rx_compile(pattern, &prog)) return -1;
    int caps[64];
    int ok = prog.nslots <= 64 && rx_search(&prog, str, caps);
    if (ok) {
        *start = caps[0];
        *end = caps[1];
    }
    rx_free(&prog);
    return ok;
}

static uint32_t test_regex(void) {
    static const struct {
        const char *re, *str;
        int ok, start, end;
    } cases[] = {
        {"abc", "xxabcxx", 1, 2, 5},
        {"a.c", "abc", 1, 0, 3},
        {"a*", "aaa", 1, 0, 3},
        {"a+b", "caaab", 1, 1, 5},
        {"colou?r", "the color red", 1, 4, 9},
        {"^abc$", "abc", 1, 0, 3},
        {"^abc$", "abcd", 0, 0, 0},
        {"(cat|dog)s?", "hotdogs!", 1, 3, 7},
        {"[0-9]+", "abc 12345 def", 1, 4, 9},
        {"[^a-z ]+", "abc XYZ def", 1, 4, 7},
        {"\\d{3}-\\d{4}", "call 555-1234 now", 1, 5, 13},
        {"a{2,3}", "caaaa", 1, 1, 4},
        {"a{2,}", "caaaa", 1, 1, 5},
        {"a.*?b", "axxbyyb", 1, 0, 4},
        {"\\w+@\\w+\\.com", "mail bob@example.com", 1, 5, 20},
        {"(a|ab)(c|bcd)(d*)", "abcd", 1, 0, 4},
        {"x*", "", 1, 0, 0},
        {"\\s+$", "trailing   ", 1, 8, 11},
    };
    uint32_t h = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int s = -1, e = -1;
        int ok = rx_find(cases[i].re, cases[i].str, &s, &e);
        int good = ok == cases[i].ok && (!ok || (s == cases[i].start && e == cases[i].end));
        if (!good) printf("  regex %s on \"%s\": ok=%d [%d,%d)\n", cases[i].re, cases[i].str, ok, s, e);
        check(good, "regex case");
        h = h * 33 + (uint32_t)(ok * 1000 + s * 10 + e);
    }
    RxProgram prog;
    check(rx_compile("a(b", &prog) != NULL, "regex error )");
    check(rx_compile("*a", &prog) != NULL, "regex error repeat");
    check(rx_compile("[z-a]", &prog) != NULL, "regex error range");
    check(rx_compile("(\\d+)-(\\d+)", &prog) == NULL, "regex groups compile");
    int caps[6];
    check(rx_search(&prog, "range 10-250", caps) && caps[2] == 6 && caps[3] == 8 && caps[4] == 9 &&
              caps[5] == 12,
          "regex captures");
    rx_free(&prog);
    return h;
}

/* ------------------------------------------------------------------------ */
/* JSON: parser to a tree, printer, path queries                             */
/* ------------------------------------------------------------------------ */

typedef enum { J_NULL, J_FALSE, J_TRUE, J_NUMBER, J_STRING, J_ARRAY, J_OBJECT } JsonType;

typedef struct JsonValue {
    JsonType type;
    double number;
    char *string; /* J_STRING: value; members of J_OBJECT: key */
    size_t len;
    struct JsonValue *child; /* first element / member */
    struct JsonValue *next;  /* next sibling */
    char *key;               /* set on object members */
} JsonValue;

typedef struct {
    const char *s;
    size_t pos, n;
    Arena *arena;
    const char *error;
    size_t error_pos;
    int depth;
} JsonParser;

static void json_fail(JsonParser *p, const char *msg) {
    if (!p->error) {
        p->error = msg;
        p->error_pos = p->pos;
    }
}

static void json_skip_ws(JsonParser *p) {
    while (p->pos < p->n) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int json_hex4(JsonParser *p, uint32_t *out) {
    if (p->pos + 4 > p->n) return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos + (size_t)i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if ((c | 32) >= 'a' && (c | 32) <= 'f')
            v |= (uint32_t)((c | 32) - 'a' + 10);
        else
            return 0;
    }
    p->pos += 4;
    *out = v;
    return 1;
}

static char *json_parse_string_raw(JsonParser *p, size_t *len_out) {
    p->pos++; /* opening quote */
    StrBuf sb = {0};
    sb_reserve(&sb, 16);
    while (p->pos < p->n) {
        unsigned char c = (unsigned char)p->s[p->pos++];
        if (c == '"') {
            char *s = arena_strndup(p->arena, sb.buf, sb.len);
            *len_out = sb.len;
            sb_free(&sb);
            return s;
        }
        if (c < 0x20) {
            json_fail(p, "control character in string");
            break;
        }
        if (c != '\\') {
            sb_putc(&sb, (char)c);
            continue;
        }
        if (p->pos >= p->n) break;
        char e = p->s[p->pos++];
        static const char escapes[] = "\"\\/bfnrt";
        static const char decoded[] = "\"\\/\b\f\n\r\t";
        const char *simple = e ? strchr(escapes, e) : NULL;
        if (simple) {
            sb_putc(&sb, decoded[simple - escapes]);
            continue;
        }
        switch (e) {
        case 'u': {
            uint32_t cp;
            if (!json_hex4(p, &cp)) {
                json_fail(p, "bad \\u escape");
                goto fail;
            }
            if (cp >= 0xd800 && cp <= 0xdbff) {
                uint32_t lo;
                if (p->pos + 2 > p->n || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u') {
                    json_fail(p, "lone high surrogate");
                    goto fail;
                }
                p->pos += 2;
                if (!json_hex4(p, &lo) || lo < 0xdc00 || lo > 0xdfff) {
                    json_fail(p, "bad low surrogate");
                    goto fail;
                }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                json_fail(p, "lone low surrogate");
                goto fail;
            }
            unsigned char u[4];
            int k = utf8_encode(cp, u);
            sb_putn(&sb, (const char *)u, (size_t)k);
            break;
        }
        default:
            json_fail(p, "bad escape");
            goto fail;
        }
    }
    json_fail(p, "unterminated string");
fail:
    sb_free(&sb);
    return NULL;
}

static int json_parse_number(JsonParser *p, double *out) {
    size_t start = p->pos;
    if (p->s[p->pos] == '-') p->pos++;
    if (p->pos >= p->n) return 0;
    if (p->s[p->pos] == '0') {
        p->pos++;
    } else if (p->s[p->pos] >= '1' && p->s[p->pos] <= '9') {
        while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
    } else {
        return 0;
    }
    if (p->pos < p->n && p->s[p->pos] == '.') {
        p->pos++;
        size_t digits = p->pos;
        while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
        if (p->pos == digits) return 0;
    }
    if (p->pos < p->n && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->n && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
        size_t digits = p->pos;
        while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
        if (p->pos == digits) return 0;
    }
    char buf[64];
    size_t len = p->pos - start;
    if (len >= sizeof buf) len = sizeof buf - 1;
    memcpy(buf, p->s + start, len);
    buf[len] = 0;
    *out = strtod(buf, NULL);
    return 1;
}

static JsonValue *json_parse_value(JsonParser *p);

static JsonValue *json_new(JsonParser *p, JsonType t) {
    JsonValue *v = arena_zalloc(p->arena, sizeof(JsonValue));
    v->type = t;
    return v;
}

static int json_literal(JsonParser *p, const char *word) {
    size_t n = strlen(word);
    if (p->pos + n > p->n || memcmp(p->s + p->pos, word, n) != 0) return 0;
    p->pos += n;
    return 1;
}

static JsonValue *json_parse_container(JsonParser *p, int is_object) {
    char close = is_object ? '}' : ']';
    JsonValue *v = json_new(p, is_object ? J_OBJECT : J_ARRAY);
    JsonValue **tail = &v->child;
    if (++p->depth > 200) {
        json_fail(p, "nesting too deep");
        return NULL;
    }
    p->pos++;
    json_skip_ws(p);
    if (p->pos < p->n && p->s[p->pos] == close) {
        p->pos++;
        p->depth--;
        return v;
    }
    for (;;) {
        char *key = NULL;
        size_t klen;
        if (is_object) {
            json_skip_ws(p);
            if (p->pos >= p->n || p->s[p->pos] != '"') {
                json_fail(p, "expected key");
                return NULL;
            }
            key = json_parse_string_raw(p, &klen);
            if (!key) return NULL;
            json_skip_ws(p);
            if (p->pos >= p->n || p->s[p->pos] != ':') {
                json_fail(p, "expected ':'");
                return NULL;
            }
            p->pos++;
        }
        JsonValue *item = json_parse_value(p);
        if (!item) return NULL;
        item->key = key;
        v->len++;
        *tail = item;
        tail = &item->next;
        json_skip_ws(p);
        if (p->pos < p->n && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->n && p->s[p->pos] == close) {
            p->pos++;
            p->depth--;
            return v;
        }
        json_fail(p, is_object ? "expected ',' or '}'" : "expected ',' or ']'");
        return NULL;
    }
}

static JsonValue *json_parse_value(JsonParser *p) {
    json_skip_ws(p);
    if (p->pos >= p->n) {
        json_fail(p, "unexpected end");
        return NULL;
    }
    char c = p->s[p->pos];
    JsonValue *v;
    switch (c) {
    case '{':
        return json_parse_container(p, 1);
    case '[':
        return json_parse_container(p, 0);
    case '"':
        v = json_new(p, J_STRING);
        v->string = json_parse_string_raw(p, &v->len);
        return v->string ? v : NULL;
    case 't':
        if (json_literal(p, "true")) return json_new(p, J_TRUE);
        break;
    case 'f':
        if (json_literal(p, "false")) return json_new(p, J_FALSE);
        break;
    case 'n':
        if (json_literal(p, "null")) return json_new(p, J_NULL);
        break;
    default:
        v = json_new(p, J_NUMBER);
        if (json_parse_number(p, &v->number)) return v;
        break;
    }
    json_fail(p, "unexpected character");
    return NULL;
}

static JsonValue *json_parse(Arena *arena, const char *text, const char **error, size_t *error_pos) {
    JsonParser p = {text, 0, strlen(text), arena, NULL, 0, 0};
    JsonValue *v = json_parse_value(&p);
    if (v) {
        json_skip_ws(&p);
        if (p.pos != p.n) {
            json_fail(&p, "trailing characters");
            v = NULL;
        }
    }
    if (error) *error = p.error;
    if (error_pos) *error_pos = p.error_pos;
    return v;
}

static void json_print_string(StrBuf *sb, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    static const char raw[] = "\"\\\n\t\r";
    static const char named[] = "\"\\ntr";
    sb_putc(sb, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *special = c ? strchr(raw, c) : NULL;
        if (special) {
            sb_putc(sb, '\\');
            sb_putc(sb, named[special - raw]);
        } else if (c < 0x20) {
            char esc[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
            sb_puts(sb, esc);
        } else {
            sb_putc(sb, (char)c);
        }
    }
    sb_putc(sb, '"');
}

static void json_print_number(StrBuf *sb, double d) {
    char buf[40];
    if (d == (double)(long long)d && d > -1e15 && d < 1e15)
        snprintf(buf, sizeof buf, "%lld", (long long)d);
    else
        snprintf(buf, sizeof buf, "%.17g", d);
    sb_puts(sb, buf);
}

static void json_indent(StrBuf *sb, int indent, int level) {
    if (indent < 0) return;
    sb_putc(sb, '\n');
    for (int i = 0; i < indent * level; i++) sb_putc(sb, ' ');
}

/* indent < 0: compact; otherwise pretty-printed with `indent` spaces. */
static void json_print(StrBuf *sb, const JsonValue *v, int indent, int level) {
    switch (v->type) {
    case J_NULL:
        sb_puts(sb, "null");
        break;
    case J_TRUE:
        sb_puts(sb, "true");
        break;
    case J_FALSE:
        sb_puts(sb, "false");
        break;
    case J_NUMBER:
        json_print_number(sb, v->number);
        break;
    case J_STRING:
        json_print_string(sb, v->string, v->len);
        break;
    case J_ARRAY:
    case J_OBJECT: {
        int obj = v->type == J_OBJECT;
        sb_putc(sb, obj ? '{' : '[');
        for (const JsonValue *c = v->child; c; c = c->next) {
            json_indent(sb, indent, level + 1);
            if (obj) {
                json_print_string(sb, c->key, strlen(c->key));
                sb_puts(sb, indent < 0 ? ":" : ": ");
            }
            json_print(sb, c, indent, level + 1);
            if (c->next) sb_putc(sb, ',');
        }
        if (v->child) json_indent(sb, indent, level);
        sb_putc(sb, obj ? '}' : ']');
        break;
    }
    }
}

static const JsonValue *json_member(const JsonValue *obj, const char *key) {
    if (!obj || obj->type != J_OBJECT) return NULL;
    for (const JsonValue *c = obj->child; c; c = c->next)
        if (strcmp(c->key, key) == 0) return c;
    return NULL;
}

static const JsonValue *json_index(const JsonValue *arr, size_t i) {
    if (!arr || arr->type != J_ARRAY) return NULL;
    const JsonValue *c = arr->child;
    while (c && i--) c = c->next;
    return c;
}

/* Path like "store.books[1].title". */
static const JsonValue *json_path(const JsonValue *v, const char *path) {
    char name[64];
    while (v && *path) {
        if (*path == '.') {
            path++;
            continue;
        }
        if (*path == '[') {
            char *end;
            unsigned long i = strtoul(path + 1, &end, 10);
            if (*end != ']') return NULL;
            v = json_index(v, i);
            path = end + 1;
            continue;
        }
        size_t n = 0;
        while (*path && *path != '.' && *path != '[' && n + 1 < sizeof name) name[n++] = *path++;
        name[n] = 0;
        v = json_member(v, name);
    }
    return v;
}

static int json_equal(const JsonValue *a, const JsonValue *b) {
    if (a->type != b->type) return 0;
    switch (a->type) {
    case J_NUMBER:
        return a->number == b->number;
    case J_STRING:
        return a->len == b->len && memcmp(a->string, b->string, a->len) == 0;
    case J_ARRAY: {
        const JsonValue *x = a->child, *y = b->child;
        for (; x && y; x = x->next, y = y->next)
            if (!json_equal(x, y)) return 0;
        return !x && !y;
    }
    case J_OBJECT: {
        if (a->len != b->len) return 0;
        for (const JsonValue *x = a->child; x; x = x->next) {
            const JsonValue *y = json_member(b, x->key);
            if (!y || !json_equal(x, y)) return 0;
        }
        return 1;
    }
    default:
        return 1;
    }
}

static double json_sum_numbers(const JsonValue *v) {
    if (v->type == J_NUMBER) return v->number;
    double s = 0;
    for (const JsonValue *c = v->child; c; c = c->next) s += json_sum_numbers(c);
    return s;
}

static uint32_t test_json(void) {
    static const char doc[] =
        "{\"store\": {\"books\": [\n"
        "  {\"title\": \"Sayings of the Century\", \"price\": 8.95, \"tags\": [\"quotes\"]},\n"
        "  {\"title\": \"Sword of Honour\", \"price\": 12.99, \"isbn\": null},\n"
        "  {\"title\": \"Moby Dick\", \"price\": 8.99, \"available\": true}\n"
        " ], \"bicycle\": {\"color\": \"red\", \"price\": 19.95}},\n"
        " \"escaped\": \"tab\\there \\u00e9 \\ud83d\\ude00 \\\"q\\\"\", \"n\": -1.5e3, \"zero\": 0}";
    Arena arena = {0};
    const char *err;
    size_t epos;
    JsonValue *root = json_parse(&arena, doc, &err, &epos);
    check(root != NULL, "json parse");
    uint32_t h = 0;
    if (root) {
        const JsonValue *title = json_path(root, "store.books[1].title");
        check(title && title->type == J_STRING && strcmp(title->string, "Sword of Honour") == 0, "json path");
        const JsonValue *esc = json_member(root, "escaped");
        check(esc && esc->len == 20 && esc->string[3] == '\t', "json escapes");
        const JsonValue *n = json_member(root, "n");
        check(n && n->number == -1500.0, "json number");
        double sum = json_sum_numbers(root);
        check(sum > -1449.13 && sum < -1449.11, "json sum");
        StrBuf compact = {0}, pretty = {0};
        json_print(&compact, root, -1, 0);
        json_print(&pretty, root, 2, 0);
        JsonValue *again = json_parse(&arena, pretty.buf, NULL, NULL);
        check(again && json_equal(root, again), "json roundtrip");
        h = fnv1a32(compact.buf, compact.len) ^ (uint32_t)pretty.len;
        sb_free(&compact);
        sb_free(&pretty);
    }
    static const char *bad[] = {"{\"a\":1,}", "[1 2]", "\"unterminated", "{\"a\" 1}", "01",
                                "[\"\\ud800\"]", "tru", "[1.]", "{} x", "[-]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        JsonValue *v = json_parse(&arena, bad[i], &err, &epos);
        check(v == NULL && err != NULL, bad[i]);
        h = h * 7 + (uint32_t)epos;
    }
    arena_free(&arena);
    return h;
}

/* ------------------------------------------------------------------------ */
/* Minnow: a small scripting language                                        */
/*   lexer -> parser (AST) -> constant folding -> bytecode -> stack VM       */
/* Values are integers, strings and arrays. Functions are global.            */
/* ------------------------------------------------------------------------ */

typedef enum {
    T_EOF, T_NUM, T_STR, T_IDENT,
    T_FN, T_LET, T_IF, T_ELSE, T_WHILE, T_FOR, T_RETURN, T_BREAK, T_CONTINUE, T_TRUE, T_FALSE,
    T_LPAREN, T_RPAREN, T_LBRACE, T_RBRACE, T_LBRACKET, T_RBRACKET, T_COMMA, T_SEMI,
    T_PLUS, T_MINUS, T_STAR, T_SLASH, T_PERCENT, T_BANG, T_ASSIGN,
    T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE, T_AND, T_OR, T_ERROR
} TokKind;

typedef struct {
    TokKind kind;
    const char *start;
    int len;
    int line;
    long long num;
} Token;

typedef struct {
    const char *src, *cur;
    int line;
} Lexer;

static const struct {
    const char *word;
    TokKind kind;
} mn_keywords[] = {{"fn", T_FN},         {"let", T_LET},     {"if", T_IF},         {"else", T_ELSE},
                   {"while", T_WHILE},   {"for", T_FOR},     {"return", T_RETURN}, {"break", T_BREAK},
                   {"continue", T_CONTINUE}, {"true", T_TRUE}, {"false", T_FALSE}};

static int is_ident_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static Token lex_make(Lexer *lx, TokKind kind, const char *start) {
    Token t;
    t.kind = kind;
    t.start = start;
    t.len = (int)(lx->cur - start);
    t.line = lx->line;
    t.num = 0;
    return t;
}

static void lex_skip_space(Lexer *lx) {
    for (;;) {
        char c = *lx->cur;
        if (c == '\n') {
            lx->line++;
            lx->cur++;
        } else if (c == ' ' || c == '\t' || c == '\r') {
            lx->cur++;
        } else if (c == '/' && lx->cur[1] == '/') {
            while (*lx->cur && *lx->cur != '\n') lx->cur++;
        } else if (c == '/' && lx->cur[1] == '*') {
            lx->cur += 2;
            while (*lx->cur && !(lx->cur[0] == '*' && lx->cur[1] == '/')) {
                if (*lx->cur == '\n') lx->line++;
                lx->cur++;
            }
            if (*lx->cur) lx->cur += 2;
        } else {
            return;
        }
    }
}

static Token lex_next(Lexer *lx) {
    lex_skip_space(lx);
    const char *start = lx->cur;
    char c = *lx->cur;
    if (!c) return lex_make(lx, T_EOF, start);
    lx->cur++;
    if (c >= '0' && c <= '9') {
        long long v = c - '0';
        while (*lx->cur >= '0' && *lx->cur <= '9') v = v * 10 + (*lx->cur++ - '0');
        Token t = lex_make(lx, T_NUM, start);
        t.num = v;
        return t;
    }
    if (is_ident_char(c)) {
        while (is_ident_char(*lx->cur)) lx->cur++;
        size_t n = (size_t)(lx->cur - start);
        for (size_t k = 0; k < sizeof mn_keywords / sizeof mn_keywords[0]; k++)
            if (strlen(mn_keywords[k].word) == n && memcmp(mn_keywords[k].word, start, n) == 0)
                return lex_make(lx, mn_keywords[k].kind, start);
        return lex_make(lx, T_IDENT, start);
    }
    if (c == '"') {
        while (*lx->cur && *lx->cur != '"') {
            if (*lx->cur == '\\' && lx->cur[1]) lx->cur++;
            if (*lx->cur == '\n') lx->line++;
            lx->cur++;
        }
        if (!*lx->cur) return lex_make(lx, T_ERROR, start);
        lx->cur++;
        return lex_make(lx, T_STR, start);
    }
    static const char singles[] = "(){}[],;+-*/%";
    static const TokKind single_kinds[] = {T_LPAREN,   T_RPAREN, T_LBRACE, T_RBRACE, T_LBRACKET,
                                           T_RBRACKET, T_COMMA,  T_SEMI,   T_PLUS,   T_MINUS,
                                           T_STAR,     T_SLASH,  T_PERCENT};
    const char *single = strchr(singles, c);
    if (single) return lex_make(lx, single_kinds[single - singles], start);
    /* Operators of one or two characters: c, then optionally `second`. */
    static const struct {
        char first, second;
        TokKind two, one;
    } pairs[] = {{'!', '=', T_NE, T_BANG}, {'=', '=', T_EQ, T_ASSIGN}, {'<', '=', T_LE, T_LT},
                 {'>', '=', T_GE, T_GT},   {'&', '&', T_AND, T_ERROR}, {'|', '|', T_OR, T_ERROR}};
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
        if (pairs[k].first != c) continue;
        if (*lx->cur == pairs[k].second) {
            lx->cur++;
            return lex_make(lx, pairs[k].two, start);
        }
        return lex_make(lx, pairs[k].one, start);
    }
    return lex_make(lx, T_ERROR, start);
}

/* AST */
typedef enum {
    A_NUM, A_STR, A_VAR, A_ASSIGN, A_BINARY, A_UNARY, A_AND, A_OR, A_CALL, A_INDEX, A_INDEX_SET, A_ARRAY,
    A_LET, A_EXPR_STMT, A_BLOCK, A_IF, A_WHILE, A_FOR, A_RETURN, A_BREAK, A_CONTINUE, A_FN
} AstKind;

typedef struct Ast {
    AstKind kind;
    int line;
    TokKind op;
    long long num;
    const char *name; /* identifiers, strings (unescaped) */
    int name_len;
    struct Ast *a, *b, *c, *d; /* children (meaning depends on kind) */
    struct Ast **list;         /* call args, block statements, array elements, fn params */
    int nlist;
} Ast;

typedef struct {
    Lexer lx;
    Token cur, prev;
    Arena *arena;
    char error[96];
} Parser;

static Ast *ast_new(Parser *p, AstKind kind) {
    Ast *a = arena_zalloc(p->arena, sizeof(Ast));
    a->kind = kind;
    a->line = p->prev.line;
    return a;
}

static void parse_error(Parser *p, const char *msg) {
    if (!p->error[0]) snprintf(p->error, sizeof p->error, "line %d: %s", p->cur.line, msg);
}

static void advance(Parser *p) {
    p->prev = p->cur;
    p->cur = lex_next(&p->lx);
    if (p->cur.kind == T_ERROR) parse_error(p, "bad token");
}

static int accept(Parser *p, TokKind k) {
    if (p->cur.kind != k) return 0;
    advance(p);
    return 1;
}

static void expect(Parser *p, TokKind k, const char *what) {
    if (!accept(p, k)) {
        char msg[64];
        snprintf(msg, sizeof msg, "expected %s", what);
        parse_error(p, msg);
    }
}

typedef struct {
    Ast **items;
    int n, cap;
} AstVec;

static void astvec_push(AstVec *v, Ast *a) {
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 4;
        v->items = realloc(v->items, (size_t)v->cap * sizeof(Ast *));
    }
    v->items[v->n++] = a;
}

static Ast **astvec_finish(Parser *p, AstVec *v, int *n) {
    Ast **out = arena_alloc(p->arena, (size_t)(v->n ? v->n : 1) * sizeof(Ast *));
    if (v->n) memcpy(out, v->items, (size_t)v->n * sizeof(Ast *));
    *n = v->n;
    free(v->items);
    return out;
}

static Ast *parse_expr(Parser *p);

static char *unescape_string(Parser *p, const char *s, int n, int *out_len) {
    char *out = arena_alloc(p->arena, (size_t)n + 1);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n) {
            i++;
            out[k++] = s[i] == 'n' ? '\n' : s[i] == 't' ? '\t' : s[i];
        } else {
            out[k++] = s[i];
        }
    }
    out[k] = 0;
    *out_len = k;
    return out;
}

static Ast *parse_primary(Parser *p) {
    Ast *a;
    if (accept(p, T_NUM)) {
        a = ast_new(p, A_NUM);
        a->num = p->prev.num;
        return a;
    }
    if (accept(p, T_TRUE) || accept(p, T_FALSE)) {
        a = ast_new(p, A_NUM);
        a->num = p->prev.kind == T_TRUE;
        return a;
    }
    if (accept(p, T_STR)) {
        a = ast_new(p, A_STR);
        a->name = unescape_string(p, p->prev.start + 1, p->prev.len - 2, &a->name_len);
        return a;
    }
    if (accept(p, T_IDENT)) {
        a = ast_new(p, A_VAR);
        a->name = p->prev.start;
        a->name_len = p->prev.len;
        return a;
    }
    if (accept(p, T_LPAREN)) {
        a = parse_expr(p);
        expect(p, T_RPAREN, "')'");
        return a;
    }
    if (accept(p, T_LBRACKET)) {
        AstVec v = {0};
        a = ast_new(p, A_ARRAY);
        if (!accept(p, T_RBRACKET)) {
            do astvec_push(&v, parse_expr(p));
            while (accept(p, T_COMMA) && !p->error[0]);
            expect(p, T_RBRACKET, "']'");
        }
        a->list = astvec_finish(p, &v, &a->nlist);
        return a;
    }
    parse_error(p, "expected expression");
    advance(p);
    return ast_new(p, A_NUM);
}

static Ast *parse_postfix(Parser *p) {
    Ast *a = parse_primary(p);
    for (;;) {
        if (accept(p, T_LPAREN)) {
            Ast *call = ast_new(p, A_CALL);
            call->a = a;
            AstVec v = {0};
            if (!accept(p, T_RPAREN)) {
                do astvec_push(&v, parse_expr(p));
                while (accept(p, T_COMMA) && !p->error[0]);
                expect(p, T_RPAREN, "')'");
            }
            call->list = astvec_finish(p, &v, &call->nlist);
            a = call;
        } else if (accept(p, T_LBRACKET)) {
            Ast *idx = ast_new(p, A_INDEX);
            idx->a = a;
            idx->b = parse_expr(p);
            expect(p, T_RBRACKET, "']'");
            a = idx;
        } else {
            return a;
        }
    }
}

static Ast *parse_unary(Parser *p) {
    if (accept(p, T_MINUS) || accept(p, T_BANG)) {
        Ast *a = ast_new(p, A_UNARY);
        a->op = p->prev.kind;
        a->a = parse_unary(p);
        return a;
    }
    return parse_postfix(p);
}

static int binary_precedence(TokKind k) {
    switch (k) {
    case T_OR:
        return 1;
    case T_AND:
        return 2;
    case T_EQ:
    case T_NE:
        return 3;
    case T_LT:
    case T_LE:
    case T_GT:
    case T_GE:
        return 4;
    case T_PLUS:
    case T_MINUS:
        return 5;
    case T_STAR:
    case T_SLASH:
    case T_PERCENT:
        return 6;
    default:
        return 0;
    }
}

/* Precedence climbing; all binary operators are left-associative. */
static Ast *parse_binary(Parser *p, int min_prec) {
    Ast *left = parse_unary(p);
    for (;;) {
        int prec = binary_precedence(p->cur.kind);
        if (prec == 0 || prec < min_prec) return left;
        TokKind op = p->cur.kind;
        advance(p);
        Ast *right = parse_binary(p, prec + 1);
        Ast *bin = ast_new(p, op == T_AND ? A_AND : op == T_OR ? A_OR : A_BINARY);
        bin->op = op;
        bin->a = left;
        bin->b = right;
        left = bin;
    }
}

static Ast *parse_expr(Parser *p) {
    Ast *target = parse_binary(p, 1);
    if (accept(p, T_ASSIGN)) {
        Ast *value = parse_expr(p);
        if (target->kind == A_VAR) {
            Ast *a = ast_new(p, A_ASSIGN);
            a->name = target->name;
            a->name_len = target->name_len;
            a->a = value;
            return a;
        }
        if (target->kind == A_INDEX) {
            Ast *a = ast_new(p, A_INDEX_SET);
            a->a = target->a;
            a->b = target->b;
            a->c = value;
            return a;
        }
        parse_error(p, "invalid assignment target");
    }
    return target;
}

static Ast *parse_statement(Parser *p);

static Ast *parse_block(Parser *p) {
    Ast *block = ast_new(p, A_BLOCK);
    AstVec v = {0};
    expect(p, T_LBRACE, "'{'");
    while (p->cur.kind != T_RBRACE && p->cur.kind != T_EOF && !p->error[0]) astvec_push(&v, parse_statement(p));
    expect(p, T_RBRACE, "'}'");
    block->list = astvec_finish(p, &v, &block->nlist);
    return block;
}

/* Expects an identifier and makes it the node's name. */
static void expect_name(Parser *p, Ast *a, const char *what) {
    expect(p, T_IDENT, what);
    a->name = p->prev.start;
    a->name_len = p->prev.len;
}

static Ast *parse_let(Parser *p) {
    Ast *a = ast_new(p, A_LET);
    expect_name(p, a, "variable name");
    if (accept(p, T_ASSIGN)) a->a = parse_expr(p);
    return a;
}

/* "(" expression ")", as after `if` and `while`. */
static Ast *parse_condition(Parser *p) {
    expect(p, T_LPAREN, "'('");
    Ast *cond = parse_expr(p);
    expect(p, T_RPAREN, "')'");
    return cond;
}

static Ast *parse_statement(Parser *p) {
    Ast *a;
    if (accept(p, T_LET)) {
        a = parse_let(p);
        expect(p, T_SEMI, "';'");
        return a;
    }
    if (accept(p, T_IF)) {
        a = ast_new(p, A_IF);
        a->a = parse_condition(p);
        a->b = parse_block(p);
        if (accept(p, T_ELSE)) a->c = p->cur.kind == T_IF ? parse_statement(p) : parse_block(p);
        return a;
    }
    if (accept(p, T_WHILE)) {
        a = ast_new(p, A_WHILE);
        a->a = parse_condition(p);
        a->b = parse_block(p);
        return a;
    }
    if (accept(p, T_FOR)) {
        /* for (init; cond; step) body */
        a = ast_new(p, A_FOR);
        expect(p, T_LPAREN, "'('");
        if (accept(p, T_LET))
            a->a = parse_let(p);
        else if (p->cur.kind != T_SEMI)
            a->a = parse_expr(p);
        expect(p, T_SEMI, "';'");
        if (p->cur.kind != T_SEMI) a->b = parse_expr(p);
        expect(p, T_SEMI, "';'");
        if (p->cur.kind != T_RPAREN) a->c = parse_expr(p);
        expect(p, T_RPAREN, "')'");
        a->d = parse_block(p);
        return a;
    }
    if (accept(p, T_RETURN)) {
        a = ast_new(p, A_RETURN);
        if (p->cur.kind != T_SEMI) a->a = parse_expr(p);
        expect(p, T_SEMI, "';'");
        return a;
    }
    if (accept(p, T_BREAK) || accept(p, T_CONTINUE)) {
        a = ast_new(p, p->prev.kind == T_BREAK ? A_BREAK : A_CONTINUE);
        expect(p, T_SEMI, "';'");
        return a;
    }
    if (p->cur.kind == T_LBRACE) return parse_block(p);
    a = ast_new(p, A_EXPR_STMT);
    a->a = parse_expr(p);
    expect(p, T_SEMI, "';'");
    return a;
}

static Ast *parse_function(Parser *p) {
    Ast *fn = ast_new(p, A_FN);
    expect_name(p, fn, "function name");
    expect(p, T_LPAREN, "'('");
    AstVec params = {0};
    if (!accept(p, T_RPAREN)) {
        do {
            Ast *param = ast_new(p, A_VAR);
            expect_name(p, param, "parameter name");
            astvec_push(&params, param);
        } while (accept(p, T_COMMA) && !p->error[0]);
        expect(p, T_RPAREN, "')'");
    }
    fn->list = astvec_finish(p, &params, &fn->nlist);
    fn->a = parse_block(p);
    return fn;
}

/* A program: functions and top-level statements (wrapped into `main`). */
static Ast *parse_program(Parser *p, AstVec *functions) {
    Ast *main_body = ast_new(p, A_BLOCK);
    AstVec stmts = {0};
    advance(p);
    while (p->cur.kind != T_EOF && !p->error[0]) {
        if (accept(p, T_FN))
            astvec_push(functions, parse_function(p));
        else
            astvec_push(&stmts, parse_statement(p));
    }
    main_body->list = astvec_finish(p, &stmts, &main_body->nlist);
    return main_body;
}

/* Constant folding on integer arithmetic and comparisons. */
static long long fold_binary(TokKind op, long long x, long long y, int *ok) {
    *ok = 1;
    switch (op) {
    case T_PLUS:
        return (long long)((unsigned long long)x + (unsigned long long)y);
    case T_MINUS:
        return (long long)((unsigned long long)x - (unsigned long long)y);
    case T_STAR:
        return (long long)((unsigned long long)x * (unsigned long long)y);
    case T_SLASH:
        if (y == 0 || (x == LLONG_MIN && y == -1)) break;
        return x / y;
    case T_PERCENT:
        if (y == 0 || (x == LLONG_MIN && y == -1)) break;
        return x % y;
    case T_EQ:
        return x == y;
    case T_NE:
        return x != y;
    case T_LT:
        return x < y;
    case T_LE:
        return x <= y;
    case T_GT:
        return x > y;
    case T_GE:
        return x >= y;
    default:
        break;
    }
    *ok = 0;
    return 0;
}

static int fold_constants(Ast *a) {
    if (!a) return 0;
    int folded = fold_constants(a->a) + fold_constants(a->b) + fold_constants(a->c) + fold_constants(a->d);
    for (int i = 0; i < a->nlist; i++) folded += fold_constants(a->list[i]);
    if (a->kind == A_BINARY && a->a->kind == A_NUM && a->b->kind == A_NUM) {
        int ok;
        long long v = fold_binary(a->op, a->a->num, a->b->num, &ok);
        if (ok) {
            a->kind = A_NUM;
            a->num = v;
            a->a = a->b = NULL;
            folded++;
        }
    } else if (a->kind == A_UNARY && a->a->kind == A_NUM) {
        a->num = a->op == T_MINUS ? (long long)(0ull - (unsigned long long)a->a->num) : !a->a->num;
        a->kind = A_NUM;
        a->a = NULL;
        folded++;
    } else if (a->kind == A_IF && a->a->kind == A_NUM) {
        /* if (constant): keep only the branch taken. */
        Ast *taken = a->a->num ? a->b : a->c;
        if (taken) {
            *a = *taken;
        } else {
            a->kind = A_BLOCK;
            a->nlist = 0;
            a->a = a->b = a->c = NULL;
        }
        folded++;
    }
    return folded;
}

/* Bytecode */
typedef enum {
    OP_CONST, OP_STR, OP_NIL, OP_POP, OP_DUP,
    OP_LOAD, OP_STORE, OP_GLOAD, OP_GSTORE,
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MOD, OP_NEG, OP_NOT,
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE,
    OP_JMP, OP_JZ, OP_JZ_KEEP, OP_JNZ_KEEP,
    OP_CALL, OP_BUILTIN, OP_RET,
    OP_ARRAY, OP_INDEX, OP_INDEX_SET,
    OP_COUNT
} Opcode;

static const char *const op_names[OP_COUNT] = {
    "const", "str", "nil", "pop", "dup", "load", "store", "gload", "gstore",
    "add", "sub", "mul", "div", "mod", "neg", "not", "eq", "ne", "lt", "le", "gt", "ge",
    "jmp", "jz", "jz_keep", "jnz_keep", "call", "builtin", "ret", "array", "index", "index_set"};

typedef struct {
    int op;
    long long arg;
    int arg2;
    int line;
} Instr;

typedef struct {
    char name[32];
    int nparams;
    int nlocals;
    Instr *code;
    int len, cap;
} Function;

typedef enum { V_INT, V_STR, V_ARR, V_NIL } ValKind;

struct MnArray;

typedef struct {
    ValKind kind;
    union {
        long long i;
        const char *s;
        struct MnArray *arr;
    } as;
} MnValue;

typedef struct MnArray {
    MnValue *items;
    int len, cap;
    struct MnArray *next_alloc; /* every array of a run, to free their items */
} MnArray;

typedef struct {
    char name[32];
    int slot;
    int depth;
} Local;

enum { MAX_FUNCS = 64, MAX_GLOBALS = 128, MAX_LOCALS = 64, MAX_LOOPS = 16, MAX_PATCHES = 64 };

typedef struct {
    int continue_target;
    int breaks[MAX_PATCHES];
    int nbreaks;
    int continues[MAX_PATCHES];
    int ncontinues;
} LoopCtx;

typedef struct {
    Function funcs[MAX_FUNCS];
    int nfuncs;
    char globals[MAX_GLOBALS][32];
    int nglobals;
    const char *strings[256];
    int nstrings;
    /* per-function compile state */
    Function *fn;
    Local locals[MAX_LOCALS];
    int nlocals, depth, max_locals;
    LoopCtx loops[MAX_LOOPS];
    int nloops;
    char error[96];
} Compiler;

static const char *const builtin_names[] = {"print", "len", "push", "pop", "str", "chr", "ord", "abs"};
enum { BI_PRINT, BI_LEN, BI_PUSH, BI_POP, BI_STR, BI_CHR, BI_ORD, BI_ABS, BI_COUNT };

static void compile_error(Compiler *c, int line, const char *msg, const char *name, int name_len) {
    if (!c->error[0]) snprintf(c->error, sizeof c->error, "line %d: %s %.*s", line, msg, name_len, name);
}

static int emit(Compiler *c, int op, long long arg, int line) {
    Function *f = c->fn;
    if (f->len == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 32;
        f->code = realloc(f->code, (size_t)f->cap * sizeof(Instr));
    }
    Instr *in = &f->code[f->len];
    in->op = op;
    in->arg = arg;
    in->arg2 = 0;
    in->line = line;
    return f->len++;
}

static void patch_to_here(Compiler *c, int at) { c->fn->code[at].arg = c->fn->len; }

static int name_eq(const char *a, const char *b, int blen) {
    return (int)strlen(a) == blen && memcmp(a, b, (size_t)blen) == 0;
}

static int find_local(Compiler *c, const char *name, int len) {
    for (int i = c->nlocals - 1; i >= 0; i--)
        if (name_eq(c->locals[i].name, name, len)) return c->locals[i].slot;
    return -1;
}

static int find_global(Compiler *c, const char *name, int len, int create) {
    for (int i = 0; i < c->nglobals; i++)
        if (name_eq(c->globals[i], name, len)) return i;
    if (!create || c->nglobals == MAX_GLOBALS || len >= 32) return -1;
    memcpy(c->globals[c->nglobals], name, (size_t)len);
    c->globals[c->nglobals][len] = 0;
    return c->nglobals++;
}

static int find_function(Compiler *c, const char *name, int len) {
    for (int i = 0; i < c->nfuncs; i++)
        if (name_eq(c->funcs[i].name, name, len)) return i;
    return -1;
}

static int find_builtin(const char *name, int len) {
    for (int i = 0; i < BI_COUNT; i++)
        if (name_eq(builtin_names[i], name, len)) return i;
    return -1;
}

static int declare_local(Compiler *c, const char *name, int len, int line) {
    if (c->nlocals == MAX_LOCALS || len >= 32) {
        compile_error(c, line, "too many locals or name too long:", name, len);
        return 0;
    }
    Local *l = &c->locals[c->nlocals];
    memcpy(l->name, name, (size_t)len);
    l->name[len] = 0;
    l->depth = c->depth;
    l->slot = c->nlocals++;
    if (c->nlocals > c->max_locals) c->max_locals = c->nlocals;
    return l->slot;
}

static void compile_expr(Compiler *c, const Ast *a);
static void compile_stmt(Compiler *c, const Ast *a);

static void compile_var_load(Compiler *c, const Ast *a) {
    int slot = c->fn ? find_local(c, a->name, a->name_len) : -1;
    if (slot >= 0) {
        emit(c, OP_LOAD, slot, a->line);
        return;
    }
    int g = find_global(c, a->name, a->name_len, 0);
    if (g < 0) compile_error(c, a->line, "undefined variable", a->name, a->name_len);
    emit(c, OP_GLOAD, g, a->line);
}

static Opcode binary_opcode(TokKind k) {
    switch (k) {
    case T_PLUS:
        return OP_ADD;
    case T_MINUS:
        return OP_SUB;
    case T_STAR:
        return OP_MUL;
    case T_SLASH:
        return OP_DIV;
    case T_PERCENT:
        return OP_MOD;
    case T_EQ:
        return OP_EQ;
    case T_NE:
        return OP_NE;
    case T_LT:
        return OP_LT;
    case T_LE:
        return OP_LE;
    case T_GT:
        return OP_GT;
    default:
        return OP_GE;
    }
}

static void compile_call(Compiler *c, const Ast *a) {
    if (a->a->kind != A_VAR) {
        compile_error(c, a->line, "can only call named functions", "", 0);
        return;
    }
    for (int i = 0; i < a->nlist; i++) compile_expr(c, a->list[i]);
    int f = find_function(c, a->a->name, a->a->name_len);
    if (f >= 0) {
        if (c->funcs[f].nparams != a->nlist)
            compile_error(c, a->line, "wrong number of arguments to", a->a->name, a->a->name_len);
        emit(c, OP_CALL, f, a->line);
        return;
    }
    int b = find_builtin(a->a->name, a->a->name_len);
    if (b < 0) {
        compile_error(c, a->line, "unknown function", a->a->name, a->a->name_len);
        return;
    }
    int at = emit(c, OP_BUILTIN, b, a->line);
    c->fn->code[at].arg2 = a->nlist;
}

static void compile_expr(Compiler *c, const Ast *a) {
    int j;
    switch (a->kind) {
    case A_NUM:
        emit(c, OP_CONST, a->num, a->line);
        break;
    case A_STR:
        if (c->nstrings == 256) {
            compile_error(c, a->line, "too many strings", "", 0);
            break;
        }
        c->strings[c->nstrings] = a->name;
        emit(c, OP_STR, c->nstrings++, a->line);
        break;
    case A_VAR:
        compile_var_load(c, a);
        break;
    case A_ASSIGN: {
        compile_expr(c, a->a);
        emit(c, OP_DUP, 0, a->line);
        int slot = find_local(c, a->name, a->name_len);
        if (slot >= 0) {
            emit(c, OP_STORE, slot, a->line);
        } else {
            int g = find_global(c, a->name, a->name_len, 0);
            if (g < 0) compile_error(c, a->line, "assignment to undeclared", a->name, a->name_len);
            emit(c, OP_GSTORE, g, a->line);
        }
        break;
    }
    case A_BINARY:
        compile_expr(c, a->a);
        compile_expr(c, a->b);
        emit(c, binary_opcode(a->op), 0, a->line);
        break;
    case A_UNARY:
        compile_expr(c, a->a);
        emit(c, a->op == T_MINUS ? OP_NEG : OP_NOT, 0, a->line);
        break;
    case A_AND:
    case A_OR:
        /* Short-circuit: leave the deciding operand as the value. */
        compile_expr(c, a->a);
        j = emit(c, a->kind == A_AND ? OP_JZ_KEEP : OP_JNZ_KEEP, 0, a->line);
        emit(c, OP_POP, 0, a->line);
        compile_expr(c, a->b);
        patch_to_here(c, j);
        break;
    case A_CALL:
        compile_call(c, a);
        break;
    case A_INDEX:
        compile_expr(c, a->a);
        compile_expr(c, a->b);
        emit(c, OP_INDEX, 0, a->line);
        break;
    case A_INDEX_SET:
        compile_expr(c, a->a);
        compile_expr(c, a->b);
        compile_expr(c, a->c);
        emit(c, OP_INDEX_SET, 0, a->line);
        break;
    case A_ARRAY:
        for (int i = 0; i < a->nlist; i++) compile_expr(c, a->list[i]);
        emit(c, OP_ARRAY, a->nlist, a->line);
        break;
    default:
        compile_error(c, a->line, "not an expression", "", 0);
    }
}

static void begin_scope(Compiler *c) { c->depth++; }

static void end_scope(Compiler *c) {
    c->depth--;
    while (c->nlocals > 0 && c->locals[c->nlocals - 1].depth > c->depth) c->nlocals--;
}

static void compile_let(Compiler *c, const Ast *a) {
    if (a->a)
        compile_expr(c, a->a);
    else
        emit(c, OP_NIL, 0, a->line);
    if (c->depth == 0 && c->fn == &c->funcs[0]) {
        int g = find_global(c, a->name, a->name_len, 1);
        emit(c, OP_GSTORE, g, a->line);
    } else {
        int slot = declare_local(c, a->name, a->name_len, a->line);
        emit(c, OP_STORE, slot, a->line);
    }
}

static void compile_loop_body(Compiler *c, const Ast *body, int line) {
    if (c->nloops == MAX_LOOPS) {
        compile_error(c, line, "loops nested too deeply", "", 0);
        return;
    }
    LoopCtx *loop = &c->loops[c->nloops++];
    loop->nbreaks = loop->ncontinues = 0;
    compile_stmt(c, body);
}

static void finish_loop(Compiler *c, int continue_target) {
    LoopCtx *loop = &c->loops[--c->nloops];
    for (int i = 0; i < loop->ncontinues; i++) c->fn->code[loop->continues[i]].arg = continue_target;
    for (int i = 0; i < loop->nbreaks; i++) patch_to_here(c, loop->breaks[i]);
}

static void compile_stmt(Compiler *c, const Ast *a) {
    int cond_at, exit_jump, else_jump, start;
    switch (a->kind) {
    case A_LET:
        compile_let(c, a);
        break;
    case A_EXPR_STMT:
        compile_expr(c, a->a);
        emit(c, OP_POP, 0, a->line);
        break;
    case A_BLOCK:
        begin_scope(c);
        for (int i = 0; i < a->nlist; i++) compile_stmt(c, a->list[i]);
        end_scope(c);
        break;
    case A_IF:
        compile_expr(c, a->a);
        cond_at = emit(c, OP_JZ, 0, a->line);
        compile_stmt(c, a->b);
        if (a->c) {
            else_jump = emit(c, OP_JMP, 0, a->line);
            patch_to_here(c, cond_at);
            compile_stmt(c, a->c);
            patch_to_here(c, else_jump);
        } else {
            patch_to_here(c, cond_at);
        }
        break;
    case A_WHILE:
        start = c->fn->len;
        compile_expr(c, a->a);
        exit_jump = emit(c, OP_JZ, 0, a->line);
        compile_loop_body(c, a->b, a->line);
        emit(c, OP_JMP, start, a->line);
        patch_to_here(c, exit_jump);
        finish_loop(c, start);
        break;
    case A_FOR: {
        begin_scope(c);
        if (a->a) {
            if (a->a->kind == A_LET) {
                compile_let(c, a->a);
            } else {
                compile_expr(c, a->a);
                emit(c, OP_POP, 0, a->line);
            }
        }
        start = c->fn->len;
        exit_jump = -1;
        if (a->b) {
            compile_expr(c, a->b);
            exit_jump = emit(c, OP_JZ, 0, a->line);
        }
        compile_loop_body(c, a->d, a->line);
        int step = c->fn->len;
        if (a->c) {
            compile_expr(c, a->c);
            emit(c, OP_POP, 0, a->line);
        }
        emit(c, OP_JMP, start, a->line);
        if (exit_jump >= 0) patch_to_here(c, exit_jump);
        finish_loop(c, step);
        end_scope(c);
        break;
    }
    case A_RETURN:
        if (a->a)
            compile_expr(c, a->a);
        else
            emit(c, OP_NIL, 0, a->line);
        emit(c, OP_RET, 0, a->line);
        break;
    case A_BREAK:
    case A_CONTINUE: {
        if (c->nloops == 0) {
            compile_error(c, a->line, "break/continue outside a loop", "", 0);
            break;
        }
        LoopCtx *loop = &c->loops[c->nloops - 1];
        int j = emit(c, OP_JMP, 0, a->line);
        if (a->kind == A_BREAK && loop->nbreaks < MAX_PATCHES)
            loop->breaks[loop->nbreaks++] = j;
        else if (a->kind == A_CONTINUE && loop->ncontinues < MAX_PATCHES)
            loop->continues[loop->ncontinues++] = j;
        else
            compile_error(c, a->line, "too many jumps in one loop", "", 0);
        break;
    }
    default:
        compile_expr(c, a);
        emit(c, OP_POP, 0, a->line);
    }
}

static void compile_function_body(Compiler *c, Function *f, const Ast *fn_ast, const Ast *body) {
    c->fn = f;
    c->nlocals = 0;
    c->depth = 0;
    c->max_locals = 0;
    c->nloops = 0;
    if (fn_ast) {
        c->depth = 1;
        for (int i = 0; i < fn_ast->nlist; i++)
            declare_local(c, fn_ast->list[i]->name, fn_ast->list[i]->name_len, fn_ast->line);
        compile_stmt(c, body);
    } else {
        for (int i = 0; i < body->nlist; i++) compile_stmt(c, body->list[i]);
    }
    emit(c, OP_NIL, 0, 0);
    emit(c, OP_RET, 0, 0);
    f->nlocals = c->max_locals;
}

/* Function 0 is the top level; the others are declared before any body is
 * compiled so that calls may come before definitions (and recursion works). */
static int compile_program(Compiler *c, const Ast *main_body, AstVec *functions) {
    memset(c, 0, sizeof *c);
    strcpy(c->funcs[0].name, "<main>");
    c->nfuncs = 1;
    for (int i = 0; i < functions->n; i++) {
        const Ast *fn = functions->items[i];
        if (c->nfuncs == MAX_FUNCS || fn->name_len >= 32) {
            compile_error(c, fn->line, "too many functions", "", 0);
            return 0;
        }
        if (find_function(c, fn->name, fn->name_len) >= 0) {
            compile_error(c, fn->line, "duplicate function", fn->name, fn->name_len);
            return 0;
        }
        Function *f = &c->funcs[c->nfuncs++];
        memcpy(f->name, fn->name, (size_t)fn->name_len);
        f->name[fn->name_len] = 0;
        f->nparams = fn->nlist;
    }
    /* Globals are declared by top-level lets, which must precede use in functions. */
    for (int i = 0; i < main_body->nlist; i++)
        if (main_body->list[i]->kind == A_LET)
            find_global(c, main_body->list[i]->name, main_body->list[i]->name_len, 1);
    for (int i = 0; i < functions->n; i++)
        compile_function_body(c, &c->funcs[i + 1], functions->items[i], functions->items[i]->a);
    compile_function_body(c, &c->funcs[0], NULL, main_body);
    return c->error[0] == 0;
}

static void disassemble(const Function *f, StrBuf *out) {
    char line[96];
    snprintf(line, sizeof line, "fn %s (params %d, locals %d)\n", f->name, f->nparams, f->nlocals);
    sb_puts(out, line);
    for (int i = 0; i < f->len; i++) {
        const Instr *in = &f->code[i];
        switch (in->op) {
        case OP_CONST:
        case OP_STR:
        case OP_LOAD:
        case OP_STORE:
        case OP_GLOAD:
        case OP_GSTORE:
        case OP_JMP:
        case OP_JZ:
        case OP_JZ_KEEP:
        case OP_JNZ_KEEP:
        case OP_CALL:
        case OP_ARRAY:
            snprintf(line, sizeof line, "%4d  %-10s %lld\n", i, op_names[in->op], in->arg);
            break;
        case OP_BUILTIN:
            snprintf(line, sizeof line, "%4d  %-10s %s/%d\n", i, op_names[in->op], builtin_names[in->arg],
                     in->arg2);
            break;
        default:
            snprintf(line, sizeof line, "%4d  %s\n", i, op_names[in->op]);
        }
        sb_puts(out, line);
    }
}

/* The VM */
typedef struct {
    const Function *fn;
    int pc;
    int base; /* index of local 0 in the value stack */
} Frame;

typedef struct {
    Compiler *prog;
    MnValue stack[4096];
    int sp;
    Frame frames[256];
    int nframes;
    MnValue globals[MAX_GLOBALS];
    Arena heap;
    MnArray *arrays;
    StrBuf output;
    char error[96];
    long long steps, step_limit;
} Vm;

static int vm_fail(Vm *vm, const char *msg) {
    if (!vm->error[0]) {
        const Frame *f = &vm->frames[vm->nframes - 1];
        int line = f->pc > 0 ? f->fn->code[f->pc - 1].line : 0;
        snprintf(vm->error, sizeof vm->error, "line %d in %s: %s", line, f->fn->name, msg);
    }
    return 0;
}

static MnValue mn_int(long long i) {
    MnValue v;
    v.kind = V_INT;
    v.as.i = i;
    return v;
}

static MnValue mn_str(const char *s) {
    MnValue v;
    v.kind = V_STR;
    v.as.s = s;
    return v;
}

static int mn_truthy(MnValue v) {
    switch (v.kind) {
    case V_INT:
        return v.as.i != 0;
    case V_STR:
        return v.as.s[0] != 0;
    case V_ARR:
        return v.as.arr->len != 0;
    default:
        return 0;
    }
}

static int mn_equal(MnValue a, MnValue b) {
    if (a.kind != b.kind) return 0;
    switch (a.kind) {
    case V_INT:
        return a.as.i == b.as.i;
    case V_STR:
        return strcmp(a.as.s, b.as.s) == 0;
    case V_ARR:
        return a.as.arr == b.as.arr;
    default:
        return 1;
    }
}

static void mn_format(Vm *vm, MnValue v, StrBuf *out, int depth) {
    switch (v.kind) {
    case V_INT:
        sb_put_int(out, v.as.i);
        break;
    case V_STR:
        sb_puts(out, v.as.s);
        break;
    case V_NIL:
        sb_puts(out, "nil");
        break;
    case V_ARR:
        if (depth > 8) {
            sb_puts(out, "[...]");
            break;
        }
        sb_putc(out, '[');
        for (int i = 0; i < v.as.arr->len; i++) {
            if (i) sb_puts(out, ", ");
            mn_format(vm, v.as.arr->items[i], out, depth + 1);
        }
        sb_putc(out, ']');
        break;
    }
}

static const char *mn_concat(Vm *vm, MnValue a, MnValue b) {
    StrBuf sb = {0};
    mn_format(vm, a, &sb, 0);
    mn_format(vm, b, &sb, 0);
    const char *s = arena_strndup(&vm->heap, sb.buf ? sb.buf : "", sb.len);
    sb_free(&sb);
    return s;
}

static MnArray *mn_array_new(Vm *vm, int cap) {
    MnArray *arr = arena_alloc(&vm->heap, sizeof(MnArray));
    arr->cap = cap > 4 ? cap : 4;
    arr->len = 0;
    arr->items = malloc((size_t)arr->cap * sizeof(MnValue));
    arr->next_alloc = vm->arrays;
    vm->arrays = arr;
    return arr;
}

static void mn_array_push(MnArray *arr, MnValue v) {
    if (arr->len == arr->cap) {
        arr->cap *= 2;
        arr->items = realloc(arr->items, (size_t)arr->cap * sizeof(MnValue));
    }
    arr->items[arr->len++] = v;
}

static int vm_builtin(Vm *vm, int which, int argc) {
    MnValue *args = &vm->stack[vm->sp - argc];
    MnValue result = mn_int(0);
    result.kind = V_NIL;
    switch (which) {
    case BI_PRINT:
        for (int i = 0; i < argc; i++) {
            if (i) sb_putc(&vm->output, ' ');
            mn_format(vm, args[i], &vm->output, 0);
        }
        sb_putc(&vm->output, '\n');
        break;
    case BI_LEN:
        if (argc != 1) return vm_fail(vm, "len takes 1 argument");
        if (args[0].kind == V_STR)
            result = mn_int((long long)strlen(args[0].as.s));
        else if (args[0].kind == V_ARR)
            result = mn_int(args[0].as.arr->len);
        else
            return vm_fail(vm, "len of a non-sequence");
        break;
    case BI_PUSH:
        if (argc != 2 || args[0].kind != V_ARR) return vm_fail(vm, "push(array, value)");
        mn_array_push(args[0].as.arr, args[1]);
        result = args[0];
        break;
    case BI_POP:
        if (argc != 1 || args[0].kind != V_ARR || args[0].as.arr->len == 0) return vm_fail(vm, "pop of empty");
        result = args[0].as.arr->items[--args[0].as.arr->len];
        break;
    case BI_STR: {
        if (argc != 1) return vm_fail(vm, "str takes 1 argument");
        StrBuf sb = {0};
        mn_format(vm, args[0], &sb, 0);
        result = mn_str(arena_strndup(&vm->heap, sb.buf ? sb.buf : "", sb.len));
        sb_free(&sb);
        break;
    }
    case BI_CHR: {
        if (argc != 1 || args[0].kind != V_INT) return vm_fail(vm, "chr(int)");
        char ch = (char)args[0].as.i;
        result = mn_str(arena_strndup(&vm->heap, &ch, 1));
        break;
    }
    case BI_ORD:
        if (argc != 1 || args[0].kind != V_STR || !args[0].as.s[0]) return vm_fail(vm, "ord(string)");
        result = mn_int((unsigned char)args[0].as.s[0]);
        break;
    case BI_ABS:
        if (argc != 1 || args[0].kind != V_INT) return vm_fail(vm, "abs(int)");
        result = mn_int(args[0].as.i < 0 ? -args[0].as.i : args[0].as.i);
        break;
    default:
        return vm_fail(vm, "bad builtin");
    }
    vm->sp -= argc;
    vm->stack[vm->sp++] = result;
    return 1;
}

static int vm_arith(Vm *vm, int op) {
    MnValue b = vm->stack[--vm->sp];
    MnValue a = vm->stack[vm->sp - 1];
    MnValue *dst = &vm->stack[vm->sp - 1];
    if (op == OP_EQ || op == OP_NE) {
        int eq = mn_equal(a, b);
        *dst = mn_int(op == OP_EQ ? eq : !eq);
        return 1;
    }
    if (op == OP_ADD && (a.kind == V_STR || b.kind == V_STR)) {
        *dst = mn_str(mn_concat(vm, a, b));
        return 1;
    }
    if (op == OP_LT && a.kind == V_STR && b.kind == V_STR) {
        *dst = mn_int(strcmp(a.as.s, b.as.s) < 0);
        return 1;
    }
    if (a.kind != V_INT || b.kind != V_INT) return vm_fail(vm, "arithmetic on non-integers");
    long long x = a.as.i, y = b.as.i, r;
    switch (op) {
    case OP_ADD:
        r = (long long)((unsigned long long)x + (unsigned long long)y);
        break;
    case OP_SUB:
        r = (long long)((unsigned long long)x - (unsigned long long)y);
        break;
    case OP_MUL:
        r = (long long)((unsigned long long)x * (unsigned long long)y);
        break;
    case OP_DIV:
    case OP_MOD:
        if (y == 0) return vm_fail(vm, "division by zero");
        if (x == LLONG_MIN && y == -1)
            r = op == OP_DIV ? x : 0;
        else
            r = op == OP_DIV ? x / y : x % y;
        break;
    case OP_LT:
        r = x < y;
        break;
    case OP_LE:
        r = x <= y;
        break;
    case OP_GT:
        r = x > y;
        break;
    default:
        r = x >= y;
        break;
    }
    *dst = mn_int(r);
    return 1;
}

static int vm_index(Vm *vm, MnValue container, MnValue index, MnValue *out) {
    if (index.kind != V_INT) return vm_fail(vm, "index is not an integer");
    long long i = index.as.i;
    if (container.kind == V_ARR) {
        if (i < 0 || i >= container.as.arr->len) return vm_fail(vm, "array index out of range");
        *out = container.as.arr->items[i];
        return 1;
    }
    if (container.kind == V_STR) {
        size_t n = strlen(container.as.s);
        if (i < 0 || (size_t)i >= n) return vm_fail(vm, "string index out of range");
        *out = mn_str(arena_strndup(&vm->heap, container.as.s + i, 1));
        return 1;
    }
    return vm_fail(vm, "indexing a non-sequence");
}

static int vm_run(Vm *vm) {
    Frame *f = &vm->frames[0];
    f->fn = &vm->prog->funcs[0];
    f->pc = 0;
    f->base = 0;
    vm->nframes = 1;
    vm->sp = f->fn->nlocals;
    for (int i = 0; i < vm->sp; i++) vm->stack[i].kind = V_NIL;
    for (;;) {
        if (++vm->steps > vm->step_limit) return vm_fail(vm, "step limit exceeded");
        if (vm->sp > 4000) return vm_fail(vm, "value stack overflow");
        const Instr *in = &f->fn->code[f->pc++];
        switch (in->op) {
        case OP_CONST:
            vm->stack[vm->sp++] = mn_int(in->arg);
            break;
        case OP_STR:
            vm->stack[vm->sp++] = mn_str(vm->prog->strings[in->arg]);
            break;
        case OP_NIL:
            vm->stack[vm->sp++].kind = V_NIL;
            break;
        case OP_POP:
            vm->sp--;
            break;
        case OP_DUP:
            vm->stack[vm->sp] = vm->stack[vm->sp - 1];
            vm->sp++;
            break;
        case OP_LOAD:
            vm->stack[vm->sp++] = vm->stack[f->base + in->arg];
            break;
        case OP_STORE:
            vm->stack[f->base + in->arg] = vm->stack[--vm->sp];
            break;
        case OP_GLOAD:
            vm->stack[vm->sp++] = vm->globals[in->arg];
            break;
        case OP_GSTORE:
            vm->globals[in->arg] = vm->stack[--vm->sp];
            break;
        case OP_ADD:
        case OP_SUB:
        case OP_MUL:
        case OP_DIV:
        case OP_MOD:
        case OP_EQ:
        case OP_NE:
        case OP_LT:
        case OP_LE:
        case OP_GT:
        case OP_GE:
            if (!vm_arith(vm, in->op)) return 0;
            break;
        case OP_NEG:
            if (vm->stack[vm->sp - 1].kind != V_INT) return vm_fail(vm, "negating a non-integer");
            vm->stack[vm->sp - 1].as.i = (long long)(0ull - (unsigned long long)vm->stack[vm->sp - 1].as.i);
            break;
        case OP_NOT:
            vm->stack[vm->sp - 1] = mn_int(!mn_truthy(vm->stack[vm->sp - 1]));
            break;
        case OP_JMP:
            f->pc = (int)in->arg;
            break;
        case OP_JZ:
            if (!mn_truthy(vm->stack[--vm->sp])) f->pc = (int)in->arg;
            break;
        case OP_JZ_KEEP:
            if (!mn_truthy(vm->stack[vm->sp - 1])) f->pc = (int)in->arg;
            break;
        case OP_JNZ_KEEP:
            if (mn_truthy(vm->stack[vm->sp - 1])) f->pc = (int)in->arg;
            break;
        case OP_CALL: {
            const Function *callee = &vm->prog->funcs[in->arg];
            if (vm->nframes == 256) return vm_fail(vm, "call stack overflow");
            Frame *nf = &vm->frames[vm->nframes++];
            nf->fn = callee;
            nf->pc = 0;
            nf->base = vm->sp - callee->nparams;
            for (int i = callee->nparams; i < callee->nlocals; i++) vm->stack[vm->sp++].kind = V_NIL;
            f = nf;
            break;
        }
        case OP_BUILTIN:
            if (!vm_builtin(vm, (int)in->arg, in->arg2)) return 0;
            break;
        case OP_RET: {
            MnValue result = vm->stack[vm->sp - 1];
            vm->sp = f->base;
            if (--vm->nframes == 0) return 1;
            vm->stack[vm->sp++] = result;
            f = &vm->frames[vm->nframes - 1];
            break;
        }
        case OP_ARRAY: {
            int n = (int)in->arg;
            MnArray *arr = mn_array_new(vm, n);
            for (int i = 0; i < n; i++) mn_array_push(arr, vm->stack[vm->sp - n + i]);
            vm->sp -= n;
            vm->stack[vm->sp].kind = V_ARR;
            vm->stack[vm->sp++].as.arr = arr;
            break;
        }
        case OP_INDEX: {
            MnValue out;
            if (!vm_index(vm, vm->stack[vm->sp - 2], vm->stack[vm->sp - 1], &out)) return 0;
            vm->sp -= 2;
            vm->stack[vm->sp++] = out;
            break;
        }
        case OP_INDEX_SET: {
            MnValue arr = vm->stack[vm->sp - 3], idx = vm->stack[vm->sp - 2], val = vm->stack[vm->sp - 1];
            if (arr.kind != V_ARR || idx.kind != V_INT) return vm_fail(vm, "bad index assignment");
            if (idx.as.i < 0 || idx.as.i >= arr.as.arr->len) return vm_fail(vm, "array index out of range");
            arr.as.arr->items[idx.as.i] = val;
            vm->sp -= 3;
            vm->stack[vm->sp++] = val;
            break;
        }
        default:
            return vm_fail(vm, "bad opcode");
        }
    }
}

/* Runs a program; returns 1 on success. `out` receives what it printed. */
static int mn_run_source(const char *src, StrBuf *out, char *error, size_t error_size, int *nfolded) {
    Arena ast_arena = {0};
    Parser p;
    memset(&p, 0, sizeof p);
    p.lx.src = p.lx.cur = src;
    p.lx.line = 1;
    p.arena = &ast_arena;
    AstVec functions = {0};
    Ast *main_body = parse_program(&p, &functions);
    int ok = 0;
    Compiler *c = calloc(1, sizeof(Compiler));
    Vm *vm = calloc(1, sizeof(Vm));
    if (p.error[0]) {
        snprintf(error, error_size, "parse: %s", p.error);
        goto done;
    }
    *nfolded = fold_constants(main_body);
    for (int i = 0; i < functions.n; i++) *nfolded += fold_constants(functions.items[i]);
    if (!compile_program(c, main_body, &functions)) {
        snprintf(error, error_size, "compile: %s", c->error);
        goto done;
    }
    vm->prog = c;
    vm->step_limit = 50000000;
    ok = vm_run(vm);
    if (!ok) snprintf(error, error_size, "runtime: %s", vm->error);
    if (vm->output.len) sb_puts(out, vm->output.buf);
done:
    for (MnArray *arr = vm->arrays; arr; arr = arr->next_alloc) free(arr->items);
    sb_free(&vm->output);
    arena_free(&vm->heap);
    for (int i = 0; i < c->nfuncs; i++) free(c->funcs[i].code);
    free(c);
    free(vm);
    free(functions.items);
    arena_free(&ast_arena);
    return ok;
}

static uint32_t test_lang(void) {
    static const char program[] =
        "// recursion, loops, arrays and strings\n"
        "let limit = 60;\n"
        "fn fib(n) { if (n < 2) { return n; } return fib(n - 1) + fib(n - 2); }\n"
        "fn primes(n) {\n"
        "  let sieve = [];\n"
        "  for (let i = 0; i <= n; i = i + 1) { push(sieve, 1); }\n"
        "  let count = 0;\n"
        "  for (let i = 2; i <= n; i = i + 1) {\n"
        "    if (!sieve[i]) { continue; }\n"
        "    count = count + 1;\n"
        "    for (let j = i * i; j <= n; j = j + i) { sieve[j] = 0; }\n"
        "  }\n"
        "  return count;\n"
        "}\n"
        "fn sort(a) {\n"
        "  let n = len(a);\n"
        "  let swapped = 1;\n"
        "  while (swapped) {\n"
        "    swapped = 0;\n"
        "    for (let i = 1; i < n; i = i + 1) {\n"
        "      if (a[i - 1] > a[i]) { let t = a[i]; a[i] = a[i - 1]; a[i - 1] = t; swapped = 1; }\n"
        "    }\n"
        "    n = n - 1;\n"
        "  }\n"
        "  return a;\n"
        "}\n"
        "fn gcd(a, b) { while (b != 0) { let t = a % b; a = b; b = t; } return a; }\n"
        "fn collatz(n) { let steps = 0; while (n != 1) { if (n % 2 == 0) { n = n / 2; } else { n = 3 * n + 1; } "
        "steps = steps + 1; } return steps; }\n"
        "fn caesar(s, k) { let out = \"\"; for (let i = 0; i < len(s); i = i + 1) {\n"
        "  let c = ord(s[i]);\n"
        "  if (c >= 97 && c <= 122) { c = (c - 97 + k) % 26 + 97; }\n"
        "  out = out + chr(c); } return out; }\n"
        "print(\"fib\", fib(20));\n"
        "print(\"primes\", primes(1000));\n"
        "print(sort([5, 3, 9, 1, 7, 2, 8, 6, 4, 0]));\n"
        "print(\"gcd\", gcd(1071, 462), \"collatz\", collatz(27));\n"
        "print(caesar(\"hello, world\", 13));\n"
        "let total = 0;\n"
        "let i = 0;\n"
        "while (1) { i = i + 1; if (i > limit) { break; } if (i % 3 == 0 || i % 5 == 0) { total = total + i; } }\n"
        "print(\"euler1\", total, 2 * 3 + 4 * (5 - 1));\n";
    StrBuf out = {0};
    char error[128] = {0};
    int folded = 0;
    int ok = mn_run_source(program, &out, error, sizeof error, &folded);
    if (!ok) printf("  minnow: %s\n", error);
    check(ok, "minnow run");
    static const char expected[] = "fib 6765\nprimes 168\n[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n"
                                   "gcd 21 collatz 111\nuryyb, jbeyq\neuler1 870 22\n";
    check(ok && strcmp(out.buf, expected) == 0, "minnow output");
    check(folded >= 3, "minnow folding");
    uint32_t h = fnv1a32(out.buf ? out.buf : "", out.len) ^ (uint32_t)folded;
    sb_free(&out);

    static const struct {
        const char *src, *error_prefix;
    } bad[] = {
        {"let x = ;", "parse"},
        {"print(y);", "compile"},
        {"fn f(a) { return a; } f(1, 2);", "compile"},
        {"let a = [1]; print(a[3]);", "runtime"},
        {"print(1 / (2 - 2));", "runtime"},
        {"fn r(n) { return r(n + 1); } r(0);", "runtime"},
        {"break;", "compile"},
        {"let s = \"abc\" ;  print(s - 1);", "runtime"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        StrBuf o = {0};
        char err[128] = {0};
        int f2 = 0;
        int r = mn_run_source(bad[i].src, &o, err, sizeof err, &f2);
        check(!r && strncmp(err, bad[i].error_prefix, strlen(bad[i].error_prefix)) == 0, bad[i].src);
        h = h * 17 + fnv1a32(err, strlen(err));
        sb_free(&o);
    }

    /* Disassembly of a compiled function, as a smoke test of the listing. */
    Arena arena = {0};
    Parser p;
    memset(&p, 0, sizeof p);
    p.lx.src = p.lx.cur = "fn sq(x) { return x * x; } print(sq(7));";
    p.lx.line = 1;
    p.arena = &arena;
    AstVec fns = {0};
    Ast *body = parse_program(&p, &fns);
    Compiler *c = calloc(1, sizeof(Compiler));
    if (compile_program(c, body, &fns)) {
        StrBuf listing = {0};
        disassemble(&c->funcs[1], &listing);
        check(strstr(listing.buf, "mul") != NULL, "disassemble");
        h ^= fnv1a32(listing.buf, listing.len);
        sb_free(&listing);
    }
    for (int i = 0; i < c->nfuncs; i++) free(c->funcs[i].code);
    free(c);
    free(fns.items);
    arena_free(&arena);
    return h;
}

/* ------------------------------------------------------------------------ */
/* Numerics: dense matrices, Q16.16 fixed point with CORDIC, big integers,   */
/* complex FFT, number theory, rationals                                     */
/* ------------------------------------------------------------------------ */

typedef struct {
    int rows, cols;
    double *a;
} Matrix;

static Matrix mat_new(int rows, int cols) {
    Matrix m;
    m.rows = rows;
    m.cols = cols;
    m.a = calloc((size_t)rows * (size_t)cols, sizeof(double));
    return m;
}

static double *mat_at(Matrix *m, int r, int c) { return &m->a[(size_t)r * (size_t)m->cols + (size_t)c]; }
static double mat_get(const Matrix *m, int r, int c) { return m->a[(size_t)r * (size_t)m->cols + (size_t)c]; }

static Matrix mat_identity(int n) {
    Matrix m = mat_new(n, n);
    for (int i = 0; i < n; i++) *mat_at(&m, i, i) = 1.0;
    return m;
}

/* i-k-j loop order with a blocked outer loop for cache reuse. */
static Matrix mat_mul(const Matrix *x, const Matrix *y) {
    Matrix z = mat_new(x->rows, y->cols);
    const int bs = 32;
    for (int ii = 0; ii < x->rows; ii += bs)
        for (int kk = 0; kk < x->cols; kk += bs)
            for (int i = ii; i < ii + bs && i < x->rows; i++)
                for (int k = kk; k < kk + bs && k < x->cols; k++) {
                    double xv = mat_get(x, i, k);
                    if (xv == 0.0) continue;
                    double *zr = &z.a[(size_t)i * (size_t)z.cols];
                    const double *yr = &y->a[(size_t)k * (size_t)y->cols];
                    for (int j = 0; j < y->cols; j++) zr[j] += xv * yr[j];
                }
    return z;
}

static Matrix mat_transpose(const Matrix *m) {
    Matrix t = mat_new(m->cols, m->rows);
    for (int r = 0; r < m->rows; r++)
        for (int c = 0; c < m->cols; c++) *mat_at(&t, c, r) = mat_get(m, r, c);
    return t;
}

/* LU decomposition with partial pivoting, in place; perm receives the row
 * order. Returns the permutation sign, or 0 if singular. */
static int lu_decompose(Matrix *m, int *perm) {
    int n = m->rows, sign = 1;
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int k = 0; k < n; k++) {
        int p = k;
        double best = fabs(mat_get(m, k, k));
        for (int i = k + 1; i < n; i++)
            if (fabs(mat_get(m, i, k)) > best) {
                best = fabs(mat_get(m, i, k));
                p = i;
            }
        if (best < 1e-12) return 0;
        if (p != k) {
            for (int j = 0; j < n; j++) {
                double t = mat_get(m, k, j);
                *mat_at(m, k, j) = mat_get(m, p, j);
                *mat_at(m, p, j) = t;
            }
            int t = perm[k];
            perm[k] = perm[p];
            perm[p] = t;
            sign = -sign;
        }
        for (int i = k + 1; i < n; i++) {
            double f = mat_get(m, i, k) / mat_get(m, k, k);
            *mat_at(m, i, k) = f;
            for (int j = k + 1; j < n; j++) *mat_at(m, i, j) -= f * mat_get(m, k, j);
        }
    }
    return sign;
}

static void lu_solve(const Matrix *lu, const int *perm, const double *b, double *x) {
    int n = lu->rows;
    for (int i = 0; i < n; i++) {
        double s = b[perm[i]];
        for (int j = 0; j < i; j++) s -= mat_get(lu, i, j) * x[j];
        x[i] = s;
    }
    for (int i = n - 1; i >= 0; i--) {
        double s = x[i];
        for (int j = i + 1; j < n; j++) s -= mat_get(lu, i, j) * x[j];
        x[i] = s / mat_get(lu, i, i);
    }
}

static double mat_determinant(const Matrix *m) {
    Matrix lu = mat_new(m->rows, m->cols);
    memcpy(lu.a, m->a, (size_t)m->rows * (size_t)m->cols * sizeof(double));
    int *perm = malloc((size_t)m->rows * sizeof(int));
    int sign = lu_decompose(&lu, perm);
    double det = sign;
    for (int i = 0; sign && i < m->rows; i++) det *= mat_get(&lu, i, i);
    free(perm);
    free(lu.a);
    return sign ? det : 0.0;
}

static int mat_inverse(const Matrix *m, Matrix *inv) {
    int n = m->rows;
    Matrix lu = mat_new(n, n);
    memcpy(lu.a, m->a, (size_t)n * (size_t)n * sizeof(double));
    int *perm = malloc((size_t)n * sizeof(int));
    double *e = calloc((size_t)n, sizeof(double)), *x = malloc((size_t)n * sizeof(double));
    int ok = lu_decompose(&lu, perm) != 0;
    if (ok) {
        *inv = mat_new(n, n);
        for (int c = 0; c < n; c++) {
            for (int i = 0; i < n; i++) e[i] = i == c;
            lu_solve(&lu, perm, e, x);
            for (int r = 0; r < n; r++) *mat_at(inv, r, c) = x[r];
        }
    }
    free(perm);
    free(e);
    free(x);
    free(lu.a);
    return ok;
}

/* Power iteration for the dominant eigenvalue of a symmetric matrix. */
static double power_iteration(const Matrix *m, int iters) {
    int n = m->rows;
    double *v = malloc((size_t)n * sizeof(double)), *w = malloc((size_t)n * sizeof(double));
    for (int i = 0; i < n; i++) v[i] = 1.0 / (i + 1);
    double lambda = 0;
    for (int it = 0; it < iters; it++) {
        double norm = 0;
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (int j = 0; j < n; j++) s += mat_get(m, i, j) * v[j];
            w[i] = s;
            norm += s * s;
        }
        norm = sqrt(norm);
        double dot = 0;
        for (int i = 0; i < n; i++) {
            dot += v[i] * w[i];
            v[i] = w[i] / norm;
        }
        lambda = dot;
    }
    free(v);
    free(w);
    return lambda;
}

/* Q16.16 fixed point. */
typedef int32_t fix16;
#define FIX_ONE 65536
#define FIX_PI 205887

static fix16 fix_from_double(double d) { return (fix16)(d * FIX_ONE + (d >= 0 ? 0.5 : -0.5)); }
static double fix_to_double(fix16 f) { return (double)f / FIX_ONE; }

static fix16 fix_mul(fix16 a, fix16 b) {
    int64_t p = (int64_t)a * b;
    return (fix16)((p + (p >= 0 ? 0x8000 : -0x8000)) / FIX_ONE);
}

static fix16 fix_div(fix16 a, fix16 b) {
    if (b == 0) return a >= 0 ? INT32_MAX : INT32_MIN;
    int64_t q = ((int64_t)a * FIX_ONE) / b;
    if (q > INT32_MAX) return INT32_MAX;
    if (q < INT32_MIN) return INT32_MIN;
    return (fix16)q;
}

/* Integer square root of a 64-bit value, bit by bit. */
static uint32_t isqrt64(uint64_t x) {
    uint64_t res = 0, bit = 1ull << 62;
    while (bit > x) bit >>= 2;
    while (bit) {
        if (x >= res + bit) {
            x -= res + bit;
            res = (res >> 1) + bit;
        } else {
            res >>= 1;
        }
        bit >>= 2;
    }
    return (uint32_t)res;
}

static fix16 fix_sqrt(fix16 a) {
    if (a <= 0) return 0;
    return (fix16)isqrt64((uint64_t)a << 16);
}

/* CORDIC in rotation mode: sin and cos of an angle in [-pi, pi]. */
static const fix16 cordic_atan[16] = {51472, 30386, 16055, 8150, 4091, 2047, 1024, 512,
                                      256,   128,   64,    32,   16,   8,    4,    2};
#define CORDIC_K 39797 /* 0.607252935 in Q16.16 */

static void fix_sincos(fix16 angle, fix16 *s, fix16 *c) {
    int flip = 0;
    if (angle > FIX_PI / 2) {
        angle -= FIX_PI;
        flip = 1;
    } else if (angle < -FIX_PI / 2) {
        angle += FIX_PI;
        flip = 1;
    }
    fix16 x = CORDIC_K, y = 0, z = angle;
    for (int i = 0; i < 16; i++) {
        fix16 dx = x >> i, dy = y >> i;
        if (z >= 0) {
            x -= dy;
            y += dx;
            z -= cordic_atan[i];
        } else {
            x += dy;
            y -= dx;
            z += cordic_atan[i];
        }
    }
    *s = flip ? -y : y;
    *c = flip ? -x : x;
}

/* CORDIC in vectoring mode: atan2 and magnitude. */
static fix16 fix_atan2(fix16 y, fix16 x) {
    fix16 offset = 0;
    if (x < 0) {
        offset = y >= 0 ? FIX_PI : -FIX_PI;
        x = -x;
        y = -y;
    }
    fix16 z = 0;
    for (int i = 0; i < 16; i++) {
        fix16 dx = x >> i, dy = y >> i;
        if (y > 0) {
            x += dy;
            y -= dx;
            z += cordic_atan[i];
        } else {
            x -= dy;
            y += dx;
            z -= cordic_atan[i];
        }
    }
    return z + offset;
}

/* exp by range reduction (x = k ln2 + r) and a Taylor series on r. */
static fix16 fix_exp(fix16 x) {
    const fix16 ln2 = 45426;
    if (x > 681391) return INT32_MAX; /* e^10.4 overflows Q16.16 */
    if (x < -772243) return 0;
    int k = x >= 0 ? x / ln2 : -((-x + ln2 - 1) / ln2);
    fix16 r = x - k * ln2;
    fix16 term = FIX_ONE, sum = FIX_ONE;
    for (int i = 1; i < 12; i++) {
        term = fix_mul(term, r) / i;
        sum += term;
    }
    return k >= 0 ? sum << k : sum >> -k;
}

/* Natural log via log2 from the highest set bit plus a series for ln(1+t). */
static fix16 fix_log(fix16 x) {
    if (x <= 0) return INT32_MIN;
    int shift = 0;
    while (x >= 2 * FIX_ONE) {
        x >>= 1;
        shift++;
    }
    while (x < FIX_ONE) {
        x <<= 1;
        shift--;
    }
    /* ln(x) = 2 atanh((x-1)/(x+1)), x in [1, 2) */
    fix16 t = fix_div(x - FIX_ONE, x + FIX_ONE);
    fix16 t2 = fix_mul(t, t), term = t, sum = 0;
    for (int i = 1; i < 16; i += 2) {
        sum += term / i;
        term = fix_mul(term, t2);
    }
    return 2 * sum + shift * 45426;
}

/* Big unsigned integers: little-endian base 10^9 limbs. */
#define BIG_BASE 1000000000u

typedef struct {
    uint32_t *limb;
    int n, cap;
} BigNat;

static void big_reserve(BigNat *b, int cap) {
    if (cap <= b->cap) return;
    b->limb = realloc(b->limb, (size_t)cap * sizeof(uint32_t));
    b->cap = cap;
}

static void big_set_u64(BigNat *b, uint64_t v) {
    b->n = 0;
    big_reserve(b, 3);
    do {
        b->limb[b->n++] = (uint32_t)(v % BIG_BASE);
        v /= BIG_BASE;
    } while (v);
}

static void big_trim(BigNat *b) {
    while (b->n > 1 && b->limb[b->n - 1] == 0) b->n--;
}

static void big_add(BigNat *r, const BigNat *a, const BigNat *b) {
    int n = a->n > b->n ? a->n : b->n;
    BigNat t = {0};
    big_reserve(&t, n + 1);
    uint32_t carry = 0;
    for (int i = 0; i < n; i++) {
        uint32_t s = carry + (i < a->n ? a->limb[i] : 0) + (i < b->n ? b->limb[i] : 0);
        carry = s >= BIG_BASE;
        t.limb[i] = carry ? s - BIG_BASE : s;
    }
    t.n = n;
    if (carry) t.limb[t.n++] = carry;
    free(r->limb);
    *r = t;
}

static void big_mul(BigNat *r, const BigNat *a, const BigNat *b) {
    int n = a->n + b->n;
    uint64_t *acc = calloc((size_t)n + 1, sizeof(uint64_t));
    for (int i = 0; i < a->n; i++) {
        uint64_t carry = 0;
        for (int j = 0; j < b->n; j++) {
            uint64_t cur = acc[i + j] + (uint64_t)a->limb[i] * b->limb[j] + carry;
            acc[i + j] = cur % BIG_BASE;
            carry = cur / BIG_BASE;
        }
        int k = i + b->n;
        while (carry) {
            uint64_t cur = acc[k] + carry;
            acc[k++] = cur % BIG_BASE;
            carry = cur / BIG_BASE;
        }
    }
    BigNat t = {0};
    big_reserve(&t, n);
    for (int i = 0; i < n; i++) t.limb[i] = (uint32_t)acc[i];
    t.n = n;
    big_trim(&t);
    free(acc);
    free(r->limb);
    *r = t;
}

static void big_mul_small(BigNat *b, uint32_t m) {
    uint64_t carry = 0;
    for (int i = 0; i < b->n; i++) {
        uint64_t cur = (uint64_t)b->limb[i] * m + carry;
        b->limb[i] = (uint32_t)(cur % BIG_BASE);
        carry = cur / BIG_BASE;
    }
    while (carry) {
        big_reserve(b, b->n + 1);
        b->limb[b->n++] = (uint32_t)(carry % BIG_BASE);
        carry /= BIG_BASE;
    }
}

static uint32_t big_divmod_small(BigNat *b, uint32_t d) {
    uint64_t rem = 0;
    for (int i = b->n - 1; i >= 0; i--) {
        uint64_t cur = rem * BIG_BASE + b->limb[i];
        b->limb[i] = (uint32_t)(cur / d);
        rem = cur % d;
    }
    big_trim(b);
    return (uint32_t)rem;
}

static int big_cmp(const BigNat *a, const BigNat *b) {
    if (a->n != b->n) return a->n < b->n ? -1 : 1;
    for (int i = a->n - 1; i >= 0; i--)
        if (a->limb[i] != b->limb[i]) return a->limb[i] < b->limb[i] ? -1 : 1;
    return 0;
}

static char *big_to_string(const BigNat *b) {
    char *s = malloc((size_t)b->n * 9 + 2);
    int k = sprintf(s, "%u", b->limb[b->n - 1]);
    for (int i = b->n - 2; i >= 0; i--) k += sprintf(s + k, "%09u", b->limb[i]);
    return s;
}

static int big_from_string(BigNat *b, const char *s) {
    size_t n = strlen(s);
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    b->n = 0;
    big_reserve(b, (int)(n / 9 + 2));
    for (size_t end = n; end > 0;) {
        size_t start = end >= 9 ? end - 9 : 0;
        uint32_t v = 0;
        for (size_t i = start; i < end; i++) v = v * 10 + (uint32_t)(s[i] - '0');
        b->limb[b->n++] = v;
        end = start;
    }
    big_trim(b);
    return 1;
}

static void big_factorial(BigNat *r, uint32_t n) {
    big_set_u64(r, 1);
    for (uint32_t i = 2; i <= n; i++) big_mul_small(r, i);
}

static uint32_t big_digit_sum(const BigNat *b) {
    uint32_t s = 0;
    for (int i = 0; i < b->n; i++)
        for (uint32_t v = b->limb[i]; v; v /= 10) s += v % 10;
    return s;
}

/* Complex FFT (iterative radix-2, in place). */
typedef struct {
    double re, im;
} Complex;

static void fft(Complex *a, int n, int inverse) {
    for (int i = 1, j = 0; i < n; i++) {
        int bit = n >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j ^= bit;
        if (i < j) {
            Complex t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
    }
    for (int len = 2; len <= n; len <<= 1) {
        double ang = 2 * M_PI / len * (inverse ? -1 : 1);
        Complex wl = {cos(ang), sin(ang)};
        for (int i = 0; i < n; i += len) {
            Complex w = {1, 0};
            for (int j = 0; j < len / 2; j++) {
                Complex u = a[i + j], v = a[i + j + len / 2];
                Complex vw = {v.re * w.re - v.im * w.im, v.re * w.im + v.im * w.re};
                a[i + j].re = u.re + vw.re;
                a[i + j].im = u.im + vw.im;
                a[i + j + len / 2].re = u.re - vw.re;
                a[i + j + len / 2].im = u.im - vw.im;
                Complex nw = {w.re * wl.re - w.im * wl.im, w.re * wl.im + w.im * wl.re};
                w = nw;
            }
        }
    }
    if (inverse)
        for (int i = 0; i < n; i++) {
            a[i].re /= n;
            a[i].im /= n;
        }
}

/* Polynomial multiplication of small non-negative integer coefficients. */
static void poly_multiply(const int *x, int nx, const int *y, int ny, long long *out) {
    int n = 1;
    while (n < nx + ny) n <<= 1;
    Complex *fa = calloc((size_t)n, sizeof(Complex)), *fb = calloc((size_t)n, sizeof(Complex));
    for (int i = 0; i < nx; i++) fa[i].re = x[i];
    for (int i = 0; i < ny; i++) fb[i].re = y[i];
    fft(fa, n, 0);
    fft(fb, n, 0);
    for (int i = 0; i < n; i++) {
        Complex p = {fa[i].re * fb[i].re - fa[i].im * fb[i].im, fa[i].re * fb[i].im + fa[i].im * fb[i].re};
        fa[i] = p;
    }
    fft(fa, n, 1);
    for (int i = 0; i < nx + ny - 1; i++) out[i] = llround(fa[i].re);
    free(fa);
    free(fb);
}

/* Number theory. */
static uint64_t gcd_u64(uint64_t a, uint64_t b) {
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Binary GCD (Stein), for comparison. */
static uint64_t gcd_binary(uint64_t a, uint64_t b) {
    if (a == 0) return b;
    if (b == 0) return a;
    int shift = 0;
    while (((a | b) & 1) == 0) {
        a >>= 1;
        b >>= 1;
        shift++;
    }
    while ((a & 1) == 0) a >>= 1;
    do {
        while ((b & 1) == 0) b >>= 1;
        if (a > b) {
            uint64_t t = a;
            a = b;
            b = t;
        }
        b -= a;
    } while (b);
    return a << shift;
}

static long long ext_gcd(long long a, long long b, long long *x, long long *y) {
    if (b == 0) {
        *x = 1;
        *y = 0;
        return a;
    }
    long long x1, y1;
    long long g = ext_gcd(b, a % b, &x1, &y1);
    *x = y1;
    *y = x1 - (a / b) * y1;
    return g;
}

static uint64_t mulmod(uint64_t a, uint64_t b, uint64_t m) {
    uint64_t r = 0;
    a %= m;
    while (b) {
        if (b & 1) r = r >= m - a ? r - (m - a) : r + a;
        a = a >= m - a ? a - (m - a) : a + a;
        b >>= 1;
    }
    return r;
}

static uint64_t powmod(uint64_t base, uint64_t e, uint64_t m) {
    uint64_t r = 1 % m;
    base %= m;
    while (e) {
        if (e & 1) r = mulmod(r, base, m);
        base = mulmod(base, base, m);
        e >>= 1;
    }
    return r;
}

/* Deterministic Miller-Rabin for all 64-bit n. */
static int is_prime_u64(uint64_t n) {
    if (n < 2) return 0;
    static const uint64_t small[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};
    for (int i = 0; i < 12; i++) {
        if (n == small[i]) return 1;
        if (n % small[i] == 0) return 0;
    }
    uint64_t d = n - 1;
    int s = 0;
    while ((d & 1) == 0) {
        d >>= 1;
        s++;
    }
    for (int i = 0; i < 12; i++) {
        uint64_t x = powmod(small[i], d, n);
        if (x == 1 || x == n - 1) continue;
        int composite = 1;
        for (int r = 1; r < s; r++) {
            x = mulmod(x, x, n);
            if (x == n - 1) {
                composite = 0;
                break;
            }
        }
        if (composite) return 0;
    }
    return 1;
}

/* Pollard's rho (Floyd cycle) to find a non-trivial factor of composite n. */
static uint64_t pollard_rho(uint64_t n, uint64_t c) {
    if (n % 2 == 0) return 2;
    uint64_t x = 2, y = 2, d = 1;
    while (d == 1) {
        x = (mulmod(x, x, n) + c) % n;
        y = (mulmod(y, y, n) + c) % n;
        y = (mulmod(y, y, n) + c) % n;
        d = gcd_u64(x > y ? x - y : y - x, n);
    }
    return d;
}

static int factorize(uint64_t n, uint64_t *factors, int max) {
    int count = 0;
    uint64_t stack[64];
    int sp = 0;
    if (n > 1) stack[sp++] = n;
    while (sp && count < max) {
        uint64_t m = stack[--sp];
        if (is_prime_u64(m)) {
            factors[count++] = m;
            continue;
        }
        uint64_t d = m;
        for (uint64_t c = 1; d == m; c++) d = pollard_rho(m, c);
        if (sp + 2 > 64) break;
        stack[sp++] = d;
        stack[sp++] = m / d;
    }
    for (int i = 1; i < count; i++) { /* sort ascending */
        uint64_t v = factors[i];
        int j = i;
        while (j > 0 && factors[j - 1] > v) {
            factors[j] = factors[j - 1];
            j--;
        }
        factors[j] = v;
    }
    return count;
}

static uint64_t euler_phi(uint64_t n) {
    uint64_t f[64];
    int k = factorize(n, f, 64);
    uint64_t result = n;
    for (int i = 0; i < k; i++)
        if (i == 0 || f[i] != f[i - 1]) result = result / f[i] * (f[i] - 1);
    return result;
}

/* Rationals in lowest terms. */
typedef struct {
    long long num, den;
} Rational;

static Rational rat_make(long long num, long long den) {
    if (den < 0) {
        num = -num;
        den = -den;
    }
    long long g = (long long)gcd_u64((uint64_t)(num < 0 ? -num : num), (uint64_t)den);
    if (g == 0) g = 1;
    Rational r = {num / g, den / g};
    return r;
}

static Rational rat_add(Rational a, Rational b) { return rat_make(a.num * b.den + b.num * a.den, a.den * b.den); }
static Rational rat_mul(Rational a, Rational b) { return rat_make(a.num * b.num, a.den * b.den); }

/* Continued fraction convergents approximating x. */
static Rational best_rational(double x, long long max_den) {
    long long h0 = 0, h1 = 1, k0 = 1, k1 = 0;
    double frac = x;
    for (int i = 0; i < 64; i++) {
        long long a = (long long)floor(frac);
        long long h2 = a * h1 + h0, k2 = a * k1 + k0;
        if (k2 > max_den) break;
        h0 = h1;
        h1 = h2;
        k0 = k1;
        k1 = k2;
        double rest = frac - (double)a;
        if (rest < 1e-12) break;
        frac = 1.0 / rest;
    }
    return rat_make(h1, k1);
}

static uint32_t test_math(void) {
    uint32_t h = 0;
    Matrix a = mat_new(3, 3);
    static const double av[9] = {2, -1, 0, -1, 2, -1, 0, -1, 2};
    memcpy(a.a, av, sizeof av);
    check(fabs(mat_determinant(&a) - 4.0) < 1e-9, "determinant");
    Matrix inv;
    check(mat_inverse(&a, &inv), "inverse exists");
    Matrix prod = mat_mul(&a, &inv);
    Matrix id = mat_identity(3);
    double err = 0;
    for (int i = 0; i < 9; i++) err += fabs(prod.a[i] - id.a[i]);
    check(err < 1e-9, "A * inv(A) = I");
    double lambda = power_iteration(&a, 200);
    check(fabs(lambda - (2 + sqrt(2.0))) < 1e-6, "power iteration");
    Matrix t = mat_transpose(&inv);
    check(fabs(mat_get(&t, 0, 1) - mat_get(&inv, 1, 0)) < 1e-12, "transpose");
    Matrix big = mat_new(40, 40);
    for (int i = 0; i < 40; i++)
        for (int j = 0; j < 40; j++) *mat_at(&big, i, j) = (double)((i * 7 + j * 3) % 11) - 5.0;
    Matrix big2 = mat_mul(&big, &big);
    double trace = 0;
    for (int i = 0; i < 40; i++) trace += mat_get(&big2, i, i);
    h ^= (uint32_t)(long long)trace;
    free(a.a);
    free(inv.a);
    free(prod.a);
    free(id.a);
    free(t.a);
    free(big.a);
    free(big2.a);

    fix16 s, c;
    fix_sincos(fix_from_double(0.5), &s, &c);
    check(fabs(fix_to_double(s) - sin(0.5)) < 1e-3 && fabs(fix_to_double(c) - cos(0.5)) < 1e-3, "cordic");
    fix_sincos(fix_from_double(2.5), &s, &c);
    check(fabs(fix_to_double(s) - sin(2.5)) < 1e-3 && fabs(fix_to_double(c) - cos(2.5)) < 1e-3, "cordic q2");
    check(fabs(fix_to_double(fix_atan2(fix_from_double(1), fix_from_double(-1))) - atan2(1, -1)) < 1e-3,
          "atan2");
    check(fabs(fix_to_double(fix_sqrt(fix_from_double(2.0))) - sqrt(2.0)) < 1e-4, "fix sqrt");
    check(fabs(fix_to_double(fix_exp(fix_from_double(1.5))) - exp(1.5)) < 1e-3, "fix exp");
    check(fabs(fix_to_double(fix_log(fix_from_double(10.0))) - log(10.0)) < 1e-3, "fix log");
    check(fix_mul(fix_from_double(-1.5), fix_from_double(2.25)) == fix_from_double(-3.375), "fix mul");
    h = h * 31 + (uint32_t)s + (uint32_t)c;

    BigNat f = {0}, g = {0}, sum = {0}, prodb = {0};
    big_factorial(&f, 50);
    char *fs = big_to_string(&f);
    check(strcmp(fs, "30414093201713378043612608166064768844377641568960512000000000000") == 0, "50!");
    check(big_digit_sum(&f) == 216, "digit sum of 50!");
    big_from_string(&g, "123456789012345678901234567890");
    big_mul(&prodb, &g, &g);
    char *ps = big_to_string(&prodb);
    check(strcmp(ps, "15241578753238836750495351562536198787501905199875019052100") == 0, "big square");
    big_add(&sum, &prodb, &g);
    check(big_cmp(&sum, &prodb) > 0, "big cmp");
    uint32_t rem = big_divmod_small(&f, 1000007);
    h = h * 31 + rem + fnv1a32(ps, strlen(ps));
    free(fs);
    free(ps);
    free(f.limb);
    free(g.limb);
    free(sum.limb);
    free(prodb.limb);

    int px[4] = {1, 2, 3, 4}, py[3] = {5, 6, 7};
    long long pz[6];
    poly_multiply(px, 4, py, 3, pz);
    check(pz[0] == 5 && pz[1] == 16 && pz[2] == 34 && pz[3] == 52 && pz[4] == 45 && pz[5] == 28, "fft poly");

    check(gcd_u64(1071, 462) == 21 && gcd_binary(1071, 462) == 21, "gcd");
    long long x, y;
    check(ext_gcd(240, 46, &x, &y) == 2 && 240 * x + 46 * y == 2, "ext gcd");
    check(powmod(2, 10, 1000) == 24, "powmod");
    check(is_prime_u64(1000000007ull) && !is_prime_u64(1000000007ull * 3), "miller rabin");
    check(is_prime_u64(18446744073709551557ull), "largest 64-bit prime");
    uint64_t fac[64];
    int nf = factorize(600851475143ull, fac, 64);
    check(nf == 4 && fac[3] == 6857, "factorize");
    check(euler_phi(36) == 12, "phi");
    Rational r = rat_add(rat_make(1, 3), rat_make(1, 6));
    check(r.num == 1 && r.den == 2, "rational add");
    r = rat_mul(rat_make(-4, 6), rat_make(3, -8));
    check(r.num == 1 && r.den == 4, "rational mul");
    Rational pi = best_rational(M_PI, 1000);
    check(pi.num == 355 && pi.den == 113, "best rational");
    h = h * 31 + (uint32_t)fac[2] + (uint32_t)pi.num;
    return h;
}

/* ------------------------------------------------------------------------ */
/* Compression: bit I/O, canonical Huffman, LZ77 with hash chains, RLE,      */
/* move-to-front and the Burrows-Wheeler transform                           */
/* ------------------------------------------------------------------------ */

typedef struct {
    unsigned char *buf;
    size_t cap, pos; /* pos in bits */
} BitWriter;

typedef struct {
    const unsigned char *buf;
    size_t nbits, pos;
} BitReader;

static void bw_init(BitWriter *w, size_t cap_bytes) {
    w->buf = calloc(cap_bytes ? cap_bytes : 1, 1);
    w->cap = cap_bytes;
    w->pos = 0;
}

static void bw_put(BitWriter *w, uint32_t bits, int n) {
    for (int i = n - 1; i >= 0; i--) {
        size_t byte = w->pos >> 3;
        if (byte >= w->cap) {
            size_t ncap = w->cap * 2 + 16;
            w->buf = realloc(w->buf, ncap);
            memset(w->buf + w->cap, 0, ncap - w->cap);
            w->cap = ncap;
        }
        if ((bits >> i) & 1) w->buf[byte] |= (unsigned char)(0x80 >> (w->pos & 7));
        w->pos++;
    }
}

static int br_get(BitReader *r, int n, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < n; i++) {
        if (r->pos >= r->nbits) return 0;
        v = (v << 1) | ((r->buf[r->pos >> 3] >> (7 - (r->pos & 7))) & 1);
        r->pos++;
    }
    *out = v;
    return 1;
}

/* Huffman code lengths by package-free method: build the tree with a heap of
 * node indices, then read depths; lengths are limited by rebalancing. */
typedef struct {
    uint32_t freq;
    int left, right;
} HuffNode;

static void huff_sift(int *heap, int n, int i, const HuffNode *nodes) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && nodes[heap[l]].freq < nodes[heap[m]].freq) m = l;
        if (r < n && nodes[heap[r]].freq < nodes[heap[m]].freq) m = r;
        if (m == i) return;
        int t = heap[i];
        heap[i] = heap[m];
        heap[m] = t;
        i = m;
    }
}

static void huff_depths(const HuffNode *nodes, int node, int depth, int nsym, uint8_t *lengths) {
    if (node < nsym) {
        lengths[node] = (uint8_t)(depth ? depth : 1);
        return;
    }
    huff_depths(nodes, nodes[node].left, depth + 1, nsym, lengths);
    huff_depths(nodes, nodes[node].right, depth + 1, nsym, lengths);
}

static void huff_lengths(const uint32_t *freq, int nsym, uint8_t *lengths) {
    HuffNode *nodes = malloc(sizeof(HuffNode) * (size_t)(2 * nsym));
    int *heap = malloc(sizeof(int) * (size_t)nsym);
    int n = 0;
    memset(lengths, 0, (size_t)nsym);
    for (int s = 0; s < nsym; s++) {
        nodes[s].freq = freq[s];
        nodes[s].left = nodes[s].right = -1;
        if (freq[s]) heap[n++] = s;
    }
    if (n == 0) goto done;
    for (int i = n / 2 - 1; i >= 0; i--) huff_sift(heap, n, i, nodes);
    int next = nsym;
    while (n > 1) {
        int a = heap[0];
        heap[0] = heap[--n];
        huff_sift(heap, n, 0, nodes);
        int b = heap[0];
        nodes[next].freq = nodes[a].freq + nodes[b].freq;
        nodes[next].left = a;
        nodes[next].right = b;
        heap[0] = next++;
        huff_sift(heap, n, 0, nodes);
    }
    huff_depths(nodes, heap[0], 0, nsym, lengths);
done:
    free(nodes);
    free(heap);
}

/* Canonical codes from lengths (as in DEFLATE). */
static void huff_canonical(const uint8_t *lengths, int nsym, uint32_t *codes) {
    int bl_count[33] = {0};
    uint32_t next_code[33];
    for (int s = 0; s < nsym; s++) bl_count[lengths[s]]++;
    bl_count[0] = 0;
    uint32_t code = 0;
    for (int bits = 1; bits <= 32; bits++) {
        code = (code + (uint32_t)bl_count[bits - 1]) << 1;
        next_code[bits] = code;
    }
    for (int s = 0; s < nsym; s++)
        if (lengths[s]) codes[s] = next_code[lengths[s]]++;
}

/* Compressed format: 256 code lengths (1 byte each), 32-bit symbol count,
 * then the bit stream. */
static unsigned char *huff_compress(const unsigned char *in, size_t n, size_t *out_len) {
    uint32_t freq[256] = {0};
    for (size_t i = 0; i < n; i++) freq[in[i]]++;
    uint8_t lengths[256];
    uint32_t codes[256] = {0};
    huff_lengths(freq, 256, lengths);
    huff_canonical(lengths, 256, codes);
    BitWriter w;
    bw_init(&w, n / 2 + 300);
    for (int s = 0; s < 256; s++) bw_put(&w, lengths[s], 8);
    bw_put(&w, (uint32_t)n, 32);
    for (size_t i = 0; i < n; i++) bw_put(&w, codes[in[i]], lengths[in[i]]);
    *out_len = (w.pos + 7) / 8;
    return w.buf;
}

static unsigned char *huff_decompress(const unsigned char *in, size_t n, size_t *out_len) {
    BitReader r = {in, n * 8, 0};
    uint8_t lengths[256];
    uint32_t v, codes[256] = {0};
    for (int s = 0; s < 256; s++) {
        if (!br_get(&r, 8, &v) || v > 32) return NULL;
        lengths[s] = (uint8_t)v;
    }
    uint32_t count;
    if (!br_get(&r, 32, &count)) return NULL;
    huff_canonical(lengths, 256, codes);
    /* Decode table: for each length, the first code and the symbols in order. */
    int first_index[34] = {0};
    uint32_t first_code[34] = {0};
    int nsyms_len[34] = {0};
    int sorted[256], k = 0;
    for (int len = 1; len <= 32; len++) {
        first_index[len] = k;
        int first = 1;
        for (int s = 0; s < 256; s++)
            if (lengths[s] == len) {
                if (first) {
                    first_code[len] = codes[s];
                    first = 0;
                }
                sorted[k++] = s;
                nsyms_len[len]++;
            }
    }
    unsigned char *out = malloc(count ? count : 1);
    for (uint32_t i = 0; i < count; i++) {
        uint32_t code = 0;
        int len = 0, sym = -1;
        while (sym < 0) {
            uint32_t bit;
            if (++len > 32 || !br_get(&r, 1, &bit)) {
                free(out);
                return NULL;
            }
            code = (code << 1) | bit;
            if (nsyms_len[len] && code >= first_code[len] && code - first_code[len] < (uint32_t)nsyms_len[len])
                sym = sorted[first_index[len] + (int)(code - first_code[len])];
        }
        out[i] = (unsigned char)sym;
    }
    *out_len = count;
    return out;
}

/* LZ77 with a 4 KiB window and hash chains. Token stream:
 *   0x00..0x7f  literal run of (b+1) bytes follows
 *   0x80..0xff  match: length = (b & 0x7f) + 3, then 2 bytes of distance-1 */
#define LZ_WINDOW 4096
#define LZ_HASH_BITS 12

static uint32_t lz_hash3(const unsigned char *p) {
    return ((uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]) * 2654435761u >> (32 - LZ_HASH_BITS);
}

/* Emits in[from..to) as literal runs of at most 128 bytes. */
static size_t lz_put_literals(const unsigned char *in, size_t from, size_t to, unsigned char *out, size_t o) {
    while (from < to) {
        size_t run = to - from > 128 ? 128 : to - from;
        out[o++] = (unsigned char)(run - 1);
        memcpy(out + o, in + from, run);
        o += run;
        from += run;
    }
    return o;
}

static size_t lz_compress(const unsigned char *in, size_t n, unsigned char *out) {
    int *head = malloc(sizeof(int) << LZ_HASH_BITS);
    int *prev = malloc(sizeof(int) * (n ? n : 1));
    for (int i = 0; i < (1 << LZ_HASH_BITS); i++) head[i] = -1;
    size_t o = 0, lit_start = 0, i = 0;
    while (i < n) {
        size_t best_len = 0, best_dist = 0;
        if (i + 3 <= n) {
            uint32_t hsh = lz_hash3(in + i);
            int cand = head[hsh];
            int chain = 32;
            while (cand >= 0 && i - (size_t)cand <= LZ_WINDOW && chain--) {
                size_t len = 0;
                while (i + len < n && len < 130 && in[(size_t)cand + len] == in[i + len]) len++;
                if (len > best_len) {
                    best_len = len;
                    best_dist = i - (size_t)cand;
                }
                cand = prev[cand];
            }
            prev[i] = head[hsh];
            head[hsh] = (int)i;
        }
        if (best_len >= 3) {
            o = lz_put_literals(in, lit_start, i, out, o);
            out[o++] = (unsigned char)(0x80 | (best_len - 3));
            out[o++] = (unsigned char)((best_dist - 1) >> 8);
            out[o++] = (unsigned char)(best_dist - 1);
            for (size_t k = 1; k < best_len && i + k + 3 <= n; k++) {
                uint32_t hk = lz_hash3(in + i + k);
                prev[i + k] = head[hk];
                head[hk] = (int)(i + k);
            }
            i += best_len;
            lit_start = i;
        } else {
            i++;
        }
    }
    o = lz_put_literals(in, lit_start, n, out, o);
    free(head);
    free(prev);
    return o;
}

/* Returns the decompressed length, or -1 on a malformed stream. */
static long lz_decompress(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
    size_t i = 0, o = 0;
    while (i < n) {
        unsigned char b = in[i++];
        if (b < 0x80) {
            size_t run = (size_t)b + 1;
            if (i + run > n || o + run > cap) return -1;
            memcpy(out + o, in + i, run);
            i += run;
            o += run;
        } else {
            if (i + 2 > n) return -1;
            size_t len = (size_t)(b & 0x7f) + 3;
            size_t dist = ((size_t)in[i] << 8 | in[i + 1]) + 1;
            i += 2;
            if (dist > o || o + len > cap) return -1;
            for (size_t k = 0; k < len; k++, o++) out[o] = out[o - dist];
        }
    }
    return (long)o;
}

/* Run-length encoding: (count, byte) pairs, count 1..255. */
static size_t rle_encode(const unsigned char *in, size_t n, unsigned char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t run = 1;
        while (i + run < n && in[i + run] == in[i] && run < 255) run++;
        out[o++] = (unsigned char)run;
        out[o++] = in[i];
        i += run;
    }
    return o;
}

static size_t rle_decode(const unsigned char *in, size_t n, unsigned char *out) {
    size_t o = 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        memset(out + o, in[i + 1], in[i]);
        o += in[i];
    }
    return o;
}

static void mtf_encode(unsigned char *buf, size_t n) {
    unsigned char order[256];
    for (int i = 0; i < 256; i++) order[i] = (unsigned char)i;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = buf[i];
        int k = 0;
        while (order[k] != c) k++;
        memmove(order + 1, order, (size_t)k);
        order[0] = c;
        buf[i] = (unsigned char)k;
    }
}

static void mtf_decode(unsigned char *buf, size_t n) {
    unsigned char order[256];
    for (int i = 0; i < 256; i++) order[i] = (unsigned char)i;
    for (size_t i = 0; i < n; i++) {
        int k = buf[i];
        unsigned char c = order[k];
        memmove(order + 1, order, (size_t)k);
        order[0] = c;
        buf[i] = c;
    }
}

/* BWT by sorting rotations (fine for short inputs); returns primary index. */
static const unsigned char *g_bwt_text;
static size_t g_bwt_n;

static int bwt_rot_cmp(const void *x, const void *y) {
    size_t a = *(const size_t *)x, b = *(const size_t *)y;
    for (size_t k = 0; k < g_bwt_n; k++) {
        unsigned char ca = g_bwt_text[(a + k) % g_bwt_n], cb = g_bwt_text[(b + k) % g_bwt_n];
        if (ca != cb) return ca < cb ? -1 : 1;
    }
    return 0;
}

static size_t bwt_forward(const unsigned char *in, size_t n, unsigned char *out) {
    size_t *rot = malloc(n * sizeof(size_t));
    for (size_t i = 0; i < n; i++) rot[i] = i;
    g_bwt_text = in;
    g_bwt_n = n;
    qsort(rot, n, sizeof(size_t), bwt_rot_cmp);
    size_t primary = 0;
    for (size_t i = 0; i < n; i++) {
        out[i] = in[(rot[i] + n - 1) % n];
        if (rot[i] == 0) primary = i;
    }
    free(rot);
    return primary;
}

static void bwt_inverse(const unsigned char *in, size_t n, size_t primary, unsigned char *out) {
    size_t count[256] = {0}, start[256];
    size_t *next = malloc(n * sizeof(size_t));
    for (size_t i = 0; i < n; i++) count[in[i]]++;
    size_t sum = 0;
    for (int c = 0; c < 256; c++) {
        start[c] = sum;
        sum += count[c];
    }
    for (size_t i = 0; i < n; i++) next[start[in[i]]++] = i;
    size_t p = next[primary];
    for (size_t i = 0; i < n; i++) {
        out[i] = in[p];
        p = next[p];
    }
    free(next);
}

static uint32_t test_compress(void) {
    /* A text with repetition, plus some pseudo-random bytes. */
    StrBuf text = {0};
    static const char *phrases[] = {"the rain in spain ", "falls mainly ", "on the plain. ", "In Hartford, ",
                                    "Hereford and Hampshire ", "hurricanes hardly ever happen. "};
    Rng r;
    rng_seed(&r, 3);
    for (int i = 0; i < 300; i++) sb_puts(&text, phrases[rng_below(&r, 6)]);
    for (int i = 0; i < 200; i++) sb_putc(&text, (char)('a' + rng_below(&r, 26)));
    const unsigned char *in = (const unsigned char *)text.buf;
    size_t n = text.len;
    uint32_t h = 0;

    size_t hn, dn;
    unsigned char *hc = huff_compress(in, n, &hn);
    unsigned char *hd = huff_decompress(hc, hn, &dn);
    check(hd && dn == n && memcmp(hd, in, n) == 0, "huffman roundtrip");
    check(hn < n * 3 / 4, "huffman compresses");
    h ^= (uint32_t)hn;
    free(hc);
    free(hd);

    unsigned char *lz = malloc(n + n / 64 + 16), *back = malloc(n);
    size_t ln = lz_compress(in, n, lz);
    long bn = lz_decompress(lz, ln, back, n);
    check(bn == (long)n && memcmp(back, in, n) == 0, "lz77 roundtrip");
    check(ln < n / 3, "lz77 compresses");
    lz[0] = 0x85; /* a match before any output: must be rejected */
    check(lz_decompress(lz, ln, back, n) == -1, "lz77 rejects bad stream");
    h = h * 31 + (uint32_t)ln;
    free(lz);
    free(back);

    static const unsigned char runs[] = "aaaaaaaaaabbbbbbbbbbbbbbbbbbbbcdddddddddddddddddddddddddddddddd";
    unsigned char rle[256], rback[256];
    size_t rn = rle_encode(runs, sizeof runs - 1, rle);
    check(rn == 8 && rle_decode(rle, rn, rback) == sizeof runs - 1 && memcmp(rback, runs, sizeof runs - 1) == 0,
          "rle");

    static const char banana[] = "banana_bandana_cabana";
    size_t bnn = strlen(banana);
    unsigned char bw[64], mtf[64], inv[64];
    size_t primary = bwt_forward((const unsigned char *)banana, bnn, bw);
    memcpy(mtf, bw, bnn);
    mtf_encode(mtf, bnn);
    int zeros = 0;
    for (size_t i = 0; i < bnn; i++) zeros += mtf[i] == 0;
    mtf_decode(mtf, bnn);
    check(memcmp(mtf, bw, bnn) == 0, "mtf roundtrip");
    bwt_inverse(bw, bnn, primary, inv);
    check(memcmp(inv, banana, bnn) == 0, "bwt roundtrip");
    h = h * 31 + (uint32_t)primary * 100 + (uint32_t)zeros + crc32_update(0, bw, bnn);
    sb_free(&text);
    return h;
}

/* ------------------------------------------------------------------------ */
/* Graphs: adjacency lists, BFS, Dijkstra, Bellman-Ford, Floyd-Warshall,     */
/* topological order, Tarjan SCC, Kruskal and Prim MST, max flow, bipartite  */
/* matching, articulation points                                             */
/* ------------------------------------------------------------------------ */

typedef struct {
    int to;
    int weight;
    int next; /* next edge out of the same vertex, -1 at the end */
} Edge;

typedef struct {
    int n, m, cap;
    int *first; /* first edge per vertex */
    Edge *edges;
} Graph;

static void graph_init(Graph *g, int n) {
    g->n = n;
    g->m = 0;
    g->cap = 16;
    g->first = malloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) g->first[i] = -1;
    g->edges = malloc((size_t)g->cap * sizeof(Edge));
}

static void graph_add(Graph *g, int from, int to, int weight) {
    if (g->m == g->cap) {
        g->cap *= 2;
        g->edges = realloc(g->edges, (size_t)g->cap * sizeof(Edge));
    }
    Edge *e = &g->edges[g->m];
    e->to = to;
    e->weight = weight;
    e->next = g->first[from];
    g->first[from] = g->m++;
}

static void graph_add_undirected(Graph *g, int a, int b, int weight) {
    graph_add(g, a, b, weight);
    graph_add(g, b, a, weight);
}

static void graph_free(Graph *g) {
    free(g->first);
    free(g->edges);
}

static int bfs_distances(const Graph *g, int src, int *dist) {
    int *queue = malloc((size_t)g->n * sizeof(int));
    int head = 0, tail = 0, reached = 0;
    for (int i = 0; i < g->n; i++) dist[i] = -1;
    dist[src] = 0;
    queue[tail++] = src;
    while (head < tail) {
        int u = queue[head++];
        reached++;
        for (int e = g->first[u]; e >= 0; e = g->edges[e].next) {
            int v = g->edges[e].to;
            if (dist[v] < 0) {
                dist[v] = dist[u] + 1;
                queue[tail++] = v;
            }
        }
    }
    free(queue);
    return reached;
}

static void dijkstra(const Graph *g, int src, double *dist, int *parent) {
    IndexedHeap h;
    iheap_init(&h, g->n);
    for (int i = 0; i < g->n; i++) {
        dist[i] = INFINITY;
        parent[i] = -1;
    }
    dist[src] = 0;
    iheap_push_or_decrease(&h, src, 0);
    while (h.size) {
        int u = iheap_pop(&h);
        for (int e = g->first[u]; e >= 0; e = g->edges[e].next) {
            int v = g->edges[e].to;
            double nd = dist[u] + g->edges[e].weight;
            if (nd < dist[v]) {
                dist[v] = nd;
                parent[v] = u;
                iheap_push_or_decrease(&h, v, nd);
            }
        }
    }
    iheap_free(&h);
}

/* Returns 0 if a negative cycle is reachable from src. */
static int bellman_ford(const Graph *g, int src, long long *dist) {
    const long long inf = LLONG_MAX / 4;
    for (int i = 0; i < g->n; i++) dist[i] = inf;
    dist[src] = 0;
    for (int round = 0; round < g->n; round++) {
        int changed = 0;
        for (int u = 0; u < g->n; u++) {
            if (dist[u] == inf) continue;
            for (int e = g->first[u]; e >= 0; e = g->edges[e].next) {
                const Edge *ed = &g->edges[e];
                if (dist[u] + ed->weight < dist[ed->to]) {
                    dist[ed->to] = dist[u] + ed->weight;
                    changed = 1;
                }
            }
        }
        if (!changed) return 1;
    }
    return 0;
}

static void floyd_warshall(int n, long long *d) {
    const long long inf = LLONG_MAX / 4;
    for (int k = 0; k < n; k++)
        for (int i = 0; i < n; i++) {
            long long dik = d[i * n + k];
            if (dik >= inf) continue;
            for (int j = 0; j < n; j++) {
                long long via = dik + d[k * n + j];
                if (via < d[i * n + j]) d[i * n + j] = via;
            }
        }
}

/* Kahn's algorithm; returns the number of vertices ordered (< n on a cycle). */
static int topo_sort(const Graph *g, int *order) {
    int *indeg = calloc((size_t)g->n, sizeof(int));
    for (int u = 0; u < g->n; u++)
        for (int e = g->first[u]; e >= 0; e = g->edges[e].next) indeg[g->edges[e].to]++;
    int head = 0, tail = 0;
    for (int u = 0; u < g->n; u++)
        if (!indeg[u]) order[tail++] = u;
    while (head < tail) {
        int u = order[head++];
        for (int e = g->first[u]; e >= 0; e = g->edges[e].next)
            if (--indeg[g->edges[e].to] == 0) order[tail++] = g->edges[e].to;
    }
    free(indeg);
    return tail;
}

/* Tarjan's strongly connected components, iterative to survive deep graphs. */
typedef struct {
    int *index, *low, *comp, *stack, *on_stack;
    int next_index, sp, ncomp;
} TarjanState;

static int tarjan_scc(const Graph *g, int *comp) {
    TarjanState t;
    int n = g->n;
    t.index = malloc((size_t)n * sizeof(int));
    t.low = malloc((size_t)n * sizeof(int));
    t.stack = malloc((size_t)n * sizeof(int));
    t.on_stack = calloc((size_t)n, sizeof(int));
    t.comp = comp;
    t.next_index = t.sp = t.ncomp = 0;
    for (int i = 0; i < n; i++) t.index[i] = -1;
    int *call_v = malloc((size_t)n * sizeof(int)), *call_e = malloc((size_t)n * sizeof(int));
    for (int root = 0; root < n; root++) {
        if (t.index[root] >= 0) continue;
        int depth = 0;
        call_v[0] = root;
        call_e[0] = g->first[root];
        t.index[root] = t.low[root] = t.next_index++;
        t.stack[t.sp++] = root;
        t.on_stack[root] = 1;
        while (depth >= 0) {
            int v = call_v[depth];
            int e = call_e[depth];
            if (e >= 0) {
                call_e[depth] = g->edges[e].next;
                int w = g->edges[e].to;
                if (t.index[w] < 0) {
                    t.index[w] = t.low[w] = t.next_index++;
                    t.stack[t.sp++] = w;
                    t.on_stack[w] = 1;
                    depth++;
                    call_v[depth] = w;
                    call_e[depth] = g->first[w];
                } else if (t.on_stack[w] && t.index[w] < t.low[v]) {
                    t.low[v] = t.index[w];
                }
                continue;
            }
            if (t.low[v] == t.index[v]) {
                int w;
                do {
                    w = t.stack[--t.sp];
                    t.on_stack[w] = 0;
                    comp[w] = t.ncomp;
                } while (w != v);
                t.ncomp++;
            }
            depth--;
            if (depth >= 0 && t.low[v] < t.low[call_v[depth]]) t.low[call_v[depth]] = t.low[v];
        }
    }
    free(call_v);
    free(call_e);
    free(t.index);
    free(t.low);
    free(t.stack);
    free(t.on_stack);
    return t.ncomp;
}

typedef struct {
    int a, b, w;
} WEdge;

static int wedge_cmp(const void *x, const void *y) {
    const WEdge *p = x, *q = y;
    if (p->w != q->w) return p->w < q->w ? -1 : 1;
    if (p->a != q->a) return p->a - q->a;
    return p->b - q->b;
}

static long long kruskal(int n, WEdge *edges, int m, int *used) {
    qsort(edges, (size_t)m, sizeof(WEdge), wedge_cmp);
    DisjointSets ds;
    ds_init(&ds, n);
    long long total = 0;
    *used = 0;
    for (int i = 0; i < m; i++)
        if (ds_union(&ds, edges[i].a, edges[i].b)) {
            total += edges[i].w;
            (*used)++;
        }
    ds_free(&ds);
    return total;
}

static long long prim(const Graph *g) {
    IndexedHeap h;
    iheap_init(&h, g->n);
    char *in_tree = calloc((size_t)g->n, 1);
    long long total = 0;
    iheap_push_or_decrease(&h, 0, 0);
    while (h.size) {
        int u = iheap_pop(&h);
        in_tree[u] = 1;
        total += (long long)h.prio[u];
        for (int e = g->first[u]; e >= 0; e = g->edges[e].next) {
            int v = g->edges[e].to;
            if (!in_tree[v]) iheap_push_or_decrease(&h, v, g->edges[e].weight);
        }
    }
    free(in_tree);
    iheap_free(&h);
    return total;
}

/* Edmonds-Karp max flow on a capacity matrix. */
static long long max_flow(int n, long long *cap, int s, int t) {
    long long flow = 0;
    int *parent = malloc((size_t)n * sizeof(int)), *queue = malloc((size_t)n * sizeof(int));
    for (;;) {
        for (int i = 0; i < n; i++) parent[i] = -1;
        parent[s] = s;
        int head = 0, tail = 0;
        queue[tail++] = s;
        while (head < tail && parent[t] < 0) {
            int u = queue[head++];
            for (int v = 0; v < n; v++)
                if (parent[v] < 0 && cap[u * n + v] > 0) {
                    parent[v] = u;
                    queue[tail++] = v;
                }
        }
        if (parent[t] < 0) break;
        long long push = LLONG_MAX;
        for (int v = t; v != s; v = parent[v])
            if (cap[parent[v] * n + v] < push) push = cap[parent[v] * n + v];
        for (int v = t; v != s; v = parent[v]) {
            cap[parent[v] * n + v] -= push;
            cap[v * n + parent[v]] += push;
        }
        flow += push;
    }
    free(parent);
    free(queue);
    return flow;
}

/* Kuhn's augmenting paths for bipartite matching (left side adjacency). */
static int kuhn_try(const Graph *g, int u, int *match_right, char *seen) {
    for (int e = g->first[u]; e >= 0; e = g->edges[e].next) {
        int v = g->edges[e].to;
        if (seen[v]) continue;
        seen[v] = 1;
        if (match_right[v] < 0 || kuhn_try(g, match_right[v], match_right, seen)) {
            match_right[v] = u;
            return 1;
        }
    }
    return 0;
}

static int bipartite_matching(const Graph *left, int nright) {
    int *match_right = malloc((size_t)nright * sizeof(int));
    char *seen = malloc((size_t)nright);
    for (int i = 0; i < nright; i++) match_right[i] = -1;
    int matched = 0;
    for (int u = 0; u < left->n; u++) {
        memset(seen, 0, (size_t)nright);
        matched += kuhn_try(left, u, match_right, seen);
    }
    free(match_right);
    free(seen);
    return matched;
}

static void articulation_dfs(const Graph *g, int u, int parent_edge, int *disc, int *low, int *timer,
                             char *is_cut) {
    disc[u] = low[u] = ++*timer;
    int children = 0;
    for (int e = g->first[u]; e >= 0; e = g->edges[e].next) {
        if ((e ^ 1) == parent_edge) continue; /* undirected edges are added in pairs */
        int v = g->edges[e].to;
        if (disc[v]) {
            if (disc[v] < low[u]) low[u] = disc[v];
            continue;
        }
        children++;
        articulation_dfs(g, v, e, disc, low, timer, is_cut);
        if (low[v] < low[u]) low[u] = low[v];
        if (parent_edge >= 0 && low[v] >= disc[u]) is_cut[u] = 1;
    }
    if (parent_edge < 0 && children > 1) is_cut[u] = 1;
}

static int articulation_points(const Graph *g, char *is_cut) {
    int *disc = calloc((size_t)g->n, sizeof(int)), *low = calloc((size_t)g->n, sizeof(int));
    int timer = 0, count = 0;
    memset(is_cut, 0, (size_t)g->n);
    for (int u = 0; u < g->n; u++)
        if (!disc[u]) articulation_dfs(g, u, -1, disc, low, &timer, is_cut);
    for (int u = 0; u < g->n; u++) count += is_cut[u];
    free(disc);
    free(low);
    return count;
}

/* A grid maze solved by BFS over cells; returns the shortest path length. */
static int maze_shortest_path(const char *const *rows, int h, int w) {
    Graph g;
    graph_init(&g, h * w);
    int start = -1, goal = -1;
    for (int r = 0; r < h; r++)
        for (int c = 0; c < w; c++) {
            char ch = rows[r][c];
            if (ch == '#') continue;
            if (ch == 'S') start = r * w + c;
            if (ch == 'G') goal = r * w + c;
            if (c + 1 < w && rows[r][c + 1] != '#') graph_add_undirected(&g, r * w + c, r * w + c + 1, 1);
            if (r + 1 < h && rows[r + 1][c] != '#') graph_add_undirected(&g, r * w + c, (r + 1) * w + c, 1);
        }
    int result = -1;
    if (start >= 0 && goal >= 0) {
        int *dist = malloc((size_t)(h * w) * sizeof(int));
        bfs_distances(&g, start, dist);
        result = dist[goal];
        free(dist);
    }
    graph_free(&g);
    return result;
}

static uint32_t test_graphs(void) {
    uint32_t h = 0;
    Graph g;
    graph_init(&g, 6);
    static const int und[][3] = {{0, 1, 7}, {0, 2, 9}, {0, 5, 14}, {1, 2, 10}, {1, 3, 15},
                                 {2, 3, 11}, {2, 5, 2}, {3, 4, 6},  {4, 5, 9}};
    for (int i = 0; i < 9; i++) graph_add_undirected(&g, und[i][0], und[i][1], und[i][2]);
    double dist[6];
    int parent[6];
    dijkstra(&g, 0, dist, parent);
    check(dist[4] == 20 && dist[3] == 20 && dist[5] == 11, "dijkstra");
    int path_len = 0;
    for (int v = 4; v != -1; v = parent[v]) path_len++;
    check(path_len == 4, "dijkstra path");
    int bd[6];
    check(bfs_distances(&g, 0, bd) == 6 && bd[4] == 2, "bfs");
    check(prim(&g) == 33, "prim");
    WEdge wedges[9];
    for (int i = 0; i < 9; i++) {
        wedges[i].a = und[i][0];
        wedges[i].b = und[i][1];
        wedges[i].w = und[i][2];
    }
    int used;
    check(kruskal(6, wedges, 9, &used) == 33 && used == 5, "kruskal");
    graph_free(&g);

    Graph dg;
    graph_init(&dg, 5);
    graph_add(&dg, 0, 1, 6);
    graph_add(&dg, 0, 3, 7);
    graph_add(&dg, 1, 2, 5);
    graph_add(&dg, 1, 3, 8);
    graph_add(&dg, 1, 4, -4);
    graph_add(&dg, 2, 1, -2);
    graph_add(&dg, 3, 2, -3);
    graph_add(&dg, 3, 4, 9);
    graph_add(&dg, 4, 0, 2);
    graph_add(&dg, 4, 2, 7);
    long long bf[5];
    check(bellman_ford(&dg, 0, bf) && bf[1] == 2 && bf[2] == 4 && bf[3] == 7 && bf[4] == -2, "bellman-ford");
    int comp[5];
    check(tarjan_scc(&dg, comp) == 1, "scc strongly connected");
    graph_add(&dg, 2, 2, -1); /* a negative self loop */
    check(!bellman_ford(&dg, 0, bf), "negative cycle");
    graph_free(&dg);

    long long fw[16];
    const long long inf = LLONG_MAX / 4;
    for (int i = 0; i < 16; i++) fw[i] = i % 5 == 0 ? 0 : inf;
    fw[0 * 4 + 2] = -2;
    fw[1 * 4 + 0] = 4;
    fw[1 * 4 + 2] = 3;
    fw[2 * 4 + 3] = 2;
    fw[3 * 4 + 1] = -1;
    floyd_warshall(4, fw);
    check(fw[0 * 4 + 1] == -1 && fw[1 * 4 + 3] == 4 && fw[3 * 4 + 0] == 3, "floyd-warshall");
    for (int i = 0; i < 16; i++) h = h * 7 + (uint32_t)fw[i];

    Graph dag;
    graph_init(&dag, 8);
    static const int deps[][2] = {{0, 3}, {1, 3}, {1, 4}, {2, 4}, {3, 5}, {4, 5}, {5, 6}, {3, 7}};
    for (int i = 0; i < 8; i++) graph_add(&dag, deps[i][0], deps[i][1], 1);
    int order[8], pos[8];
    check(topo_sort(&dag, order) == 8, "topo complete");
    for (int i = 0; i < 8; i++) pos[order[i]] = i;
    int respects = 1;
    for (int i = 0; i < 8; i++) respects &= pos[deps[i][0]] < pos[deps[i][1]];
    check(respects, "topo order");
    graph_add(&dag, 6, 1, 1);
    check(topo_sort(&dag, order) < 8, "topo cycle");
    int comps[8];
    int nscc = tarjan_scc(&dag, comps);
    check(nscc == 4 && comps[1] == comps[6] && comps[3] == comps[5], "scc with cycle");
    graph_free(&dag);

    /* CLRS flow network: max flow 23. */
    long long cap[36] = {0};
    cap[0 * 6 + 1] = 16;
    cap[0 * 6 + 2] = 13;
    cap[1 * 6 + 3] = 12;
    cap[2 * 6 + 1] = 4;
    cap[2 * 6 + 4] = 14;
    cap[3 * 6 + 2] = 9;
    cap[3 * 6 + 5] = 20;
    cap[4 * 6 + 3] = 7;
    cap[4 * 6 + 5] = 4;
    check(max_flow(6, cap, 0, 5) == 23, "max flow");

    Graph bip;
    graph_init(&bip, 4);
    static const int pairs[][2] = {{0, 0}, {0, 1}, {1, 0}, {2, 1}, {2, 2}, {3, 2}};
    for (int i = 0; i < 6; i++) graph_add(&bip, pairs[i][0], pairs[i][1], 1);
    check(bipartite_matching(&bip, 3) == 3, "bipartite matching");
    graph_free(&bip);

    Graph cut;
    graph_init(&cut, 7);
    static const int ce[][2] = {{0, 1}, {1, 2}, {2, 0}, {1, 3}, {3, 4}, {4, 5}, {5, 3}, {4, 6}};
    for (int i = 0; i < 8; i++) graph_add_undirected(&cut, ce[i][0], ce[i][1], 1);
    char is_cut[7];
    check(articulation_points(&cut, is_cut) == 3 && is_cut[1] && is_cut[3] && is_cut[4], "articulation");
    graph_free(&cut);

    static const char *const maze[] = {"S.#.......", ".##.####.#", "....#..#..", "##.##.##.#",
                                       "...#...#..", ".#...#...G"};
    int steps = maze_shortest_path(maze, 6, 10);
    check(steps == 16, "maze");
    h = h * 31 + (uint32_t)steps;
    return h;
}

/* ------------------------------------------------------------------------ */
/* Geometry, calendar arithmetic, number formatting, CSV and INI parsing     */
/* ------------------------------------------------------------------------ */

typedef struct {
    double x, y;
} Pt;

static double cross3(Pt o, Pt a, Pt b) { return (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x); }

static int pt_lex_cmp(const void *p, const void *q) {
    const Pt *a = p, *b = q;
    if (a->x != b->x) return a->x < b->x ? -1 : 1;
    if (a->y != b->y) return a->y < b->y ? -1 : 1;
    return 0;
}

/* Andrew's monotone chain; hull is counter-clockwise without collinear points. */
static int convex_hull(Pt *pts, int n, Pt *hull) {
    if (n < 3) {
        memcpy(hull, pts, (size_t)n * sizeof(Pt));
        return n;
    }
    qsort(pts, (size_t)n, sizeof(Pt), pt_lex_cmp);
    int k = 0;
    for (int i = 0; i < n; i++) {
        while (k >= 2 && cross3(hull[k - 2], hull[k - 1], pts[i]) <= 0) k--;
        hull[k++] = pts[i];
    }
    for (int i = n - 2, lower = k + 1; i >= 0; i--) {
        while (k >= lower && cross3(hull[k - 2], hull[k - 1], pts[i]) <= 0) k--;
        hull[k++] = pts[i];
    }
    return k - 1;
}

static double polygon_area(const Pt *p, int n) {
    double a = 0;
    for (int i = 0, j = n - 1; i < n; j = i++) a += p[j].x * p[i].y - p[i].x * p[j].y;
    return a / 2;
}

static double polygon_perimeter(const Pt *p, int n) {
    double s = 0;
    for (int i = 0, j = n - 1; i < n; j = i++) s += hypot(p[i].x - p[j].x, p[i].y - p[j].y);
    return s;
}

/* Ray casting; points on the boundary count as inside. */
static int point_in_polygon(const Pt *poly, int n, Pt q) {
    int inside = 0;
    for (int i = 0, j = n - 1; i < n; j = i++) {
        Pt a = poly[j], b = poly[i];
        if (fabs(cross3(a, b, q)) < 1e-12 && q.x >= fmin(a.x, b.x) - 1e-12 && q.x <= fmax(a.x, b.x) + 1e-12 &&
            q.y >= fmin(a.y, b.y) - 1e-12 && q.y <= fmax(a.y, b.y) + 1e-12)
            return 1;
        if ((b.y > q.y) != (a.y > q.y) && q.x < (a.x - b.x) * (q.y - b.y) / (a.y - b.y) + b.x) inside = !inside;
    }
    return inside;
}

static int sign_of(double v) { return (v > 1e-12) - (v < -1e-12); }

static int on_segment(Pt a, Pt b, Pt q) {
    return q.x <= fmax(a.x, b.x) && q.x >= fmin(a.x, b.x) && q.y <= fmax(a.y, b.y) && q.y >= fmin(a.y, b.y);
}

static int segments_intersect(Pt p1, Pt p2, Pt q1, Pt q2) {
    int d1 = sign_of(cross3(q1, q2, p1)), d2 = sign_of(cross3(q1, q2, p2));
    int d3 = sign_of(cross3(p1, p2, q1)), d4 = sign_of(cross3(p1, p2, q2));
    if (d1 * d2 < 0 && d3 * d4 < 0) return 1;
    if (d1 == 0 && on_segment(q1, q2, p1)) return 1;
    if (d2 == 0 && on_segment(q1, q2, p2)) return 1;
    if (d3 == 0 && on_segment(p1, p2, q1)) return 1;
    if (d4 == 0 && on_segment(p1, p2, q2)) return 1;
    return 0;
}

static int pt_y_cmp(const void *p, const void *q) {
    const Pt *a = p, *b = q;
    return (a->y > b->y) - (a->y < b->y);
}

/* Closest pair by divide and conquer; pts must be sorted by x. */
static double closest_pair_rec(Pt *pts, int n, Pt *strip) {
    if (n <= 3) {
        double best = INFINITY;
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++) best = fmin(best, hypot(pts[i].x - pts[j].x, pts[i].y - pts[j].y));
        return best;
    }
    int mid = n / 2;
    double midx = pts[mid].x;
    double d = fmin(closest_pair_rec(pts, mid, strip), closest_pair_rec(pts + mid, n - mid, strip));
    int k = 0;
    for (int i = 0; i < n; i++)
        if (fabs(pts[i].x - midx) < d) strip[k++] = pts[i];
    qsort(strip, (size_t)k, sizeof(Pt), pt_y_cmp);
    for (int i = 0; i < k; i++)
        for (int j = i + 1; j < k && strip[j].y - strip[i].y < d; j++)
            d = fmin(d, hypot(strip[i].x - strip[j].x, strip[i].y - strip[j].y));
    return d;
}

static double closest_pair(Pt *pts, int n) {
    qsort(pts, (size_t)n, sizeof(Pt), pt_lex_cmp);
    Pt *strip = malloc((size_t)n * sizeof(Pt));
    double d = closest_pair_rec(pts, n, strip);
    free(strip);
    return d;
}

/* Calendar: proleptic Gregorian, days since 1970-01-01 (Hinnant's algorithm). */
static long days_from_civil(long y, int m, int d) {
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(long z, long *y, int *m, int *d) {
    z += 719468;
    long era = (z >= 0 ? z : z - 146096) / 146097;
    long doe = z - era * 146097;
    long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int is_leap(long y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* 0 = Sunday. */
static int weekday_from_days(long z) { return (int)(z >= -4 ? (z + 4) % 7 : (z + 5) % 7 + 6); }

static int days_in_month(long y, int m) {
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}

/* ISO 8601 week number. */
static int iso_week(long y, int m, int d, long *iso_year) {
    long days = days_from_civil(y, m, d);
    int wd = (weekday_from_days(days) + 6) % 7; /* Monday = 0 */
    long thursday = days - wd + 3;
    long ty;
    int tm, td;
    civil_from_days(thursday, &ty, &tm, &td);
    *iso_year = ty;
    return (int)((thursday - days_from_civil(ty, 1, 1)) / 7 + 1);
}

/* Parses "YYYY-MM-DD"; returns 1 on a valid date. */
static int parse_date(const char *s, long *y, int *m, int *d) {
    int yy, mm, dd;
    char tail;
    if (sscanf(s, "%4d-%2d-%2d%c", &yy, &mm, &dd, &tail) != 3) return 0;
    if (mm < 1 || mm > 12 || dd < 1 || dd > days_in_month(yy, mm)) return 0;
    *y = yy;
    *m = mm;
    *d = dd;
    return 1;
}

/* Roman numerals. */
static void to_roman(int n, char *out) {
    static const int values[] = {1000, 900, 500, 400, 100, 90, 50, 40, 10, 9, 5, 4, 1};
    static const char *const syms[] = {"M", "CM", "D", "CD", "C", "XC", "L", "XL", "X", "IX", "V", "IV", "I"};
    out[0] = 0;
    for (int i = 0; i < 13; i++)
        while (n >= values[i]) {
            strcat(out, syms[i]);
            n -= values[i];
        }
}

static int roman_value(char c) {
    switch (c) {
    case 'I':
        return 1;
    case 'V':
        return 5;
    case 'X':
        return 10;
    case 'L':
        return 50;
    case 'C':
        return 100;
    case 'D':
        return 500;
    case 'M':
        return 1000;
    default:
        return 0;
    }
}

/* Returns -1 unless s is the canonical numeral of its value. */
static int from_roman(const char *s) {
    int total = 0;
    for (size_t i = 0; s[i]; i++) {
        int v = roman_value(s[i]), next = roman_value(s[i + 1]);
        if (!v) return -1;
        total += v < next ? -v : v;
    }
    char canon[32];
    if (total <= 0 || total >= 4000) return -1;
    to_roman(total, canon);
    return strcmp(canon, s) == 0 ? total : -1;
}

static void with_thousands(long long v, char *out) {
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%lld", v < 0 ? -v : v);
    int k = 0;
    if (v < 0) out[k++] = '-';
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0) out[k++] = ',';
        out[k++] = digits[i];
    }
    out[k] = 0;
}

static void human_size(uint64_t bytes, char *out, size_t cap) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, cap, "%llu B", (unsigned long long)bytes);
    else
        snprintf(out, cap, "%.1f %s", v, units[u]);
}

static void words_below_1000(int n, StrBuf *sb) {
    static const char *const ones[] = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                                       "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen",
                                       "sixteen", "seventeen", "eighteen", "nineteen"};
    static const char *const tens[] = {"", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy",
                                       "eighty", "ninety"};
    if (n >= 100) {
        sb_puts(sb, ones[n / 100]);
        sb_puts(sb, " hundred");
        n %= 100;
        if (!n) return;
        sb_puts(sb, " and ");
    }
    if (n < 20) {
        sb_puts(sb, ones[n]);
    } else {
        sb_puts(sb, tens[n / 10]);
        if (n % 10) {
            sb_putc(sb, '-');
            sb_puts(sb, ones[n % 10]);
        }
    }
}

static void number_to_words(long long n, StrBuf *sb) {
    static const char *const scales[] = {"", " thousand", " million", " billion", " trillion"};
    if (n == 0) {
        sb_puts(sb, "zero");
        return;
    }
    if (n < 0) {
        sb_puts(sb, "minus ");
        n = -n;
    }
    int groups[5], ng = 0;
    while (n && ng < 5) {
        groups[ng++] = (int)(n % 1000);
        n /= 1000;
    }
    int first = 1;
    for (int i = ng - 1; i >= 0; i--) {
        if (!groups[i]) continue;
        if (!first) sb_puts(sb, i == 0 && groups[i] < 100 ? " and " : ", ");
        words_below_1000(groups[i], sb);
        sb_puts(sb, scales[i]);
        first = 0;
    }
}

/* CSV (RFC 4180): quoted fields, doubled quotes, CRLF or LF rows. Calls
 * `field` for each field; returns the number of rows, or -1 on a bad quote. */
typedef void (*CsvField)(void *ctx, int row, int col, const char *text, size_t len);

static long csv_parse(const char *s, CsvField field, void *ctx) {
    StrBuf cur = {0};
    int row = 0, col = 0;
    size_t i = 0, n = strlen(s);
    if (n == 0) return 0;
    for (;;) {
        sb_clear(&cur);
        if (i < n && s[i] == '"') {
            i++;
            for (;;) {
                if (i >= n) {
                    sb_free(&cur);
                    return -1;
                }
                if (s[i] == '"') {
                    if (i + 1 < n && s[i + 1] == '"') {
                        sb_putc(&cur, '"');
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                sb_putc(&cur, s[i++]);
            }
            if (i < n && s[i] != ',' && s[i] != '\n' && s[i] != '\r') {
                sb_free(&cur);
                return -1;
            }
        } else {
            while (i < n && s[i] != ',' && s[i] != '\n' && s[i] != '\r') sb_putc(&cur, s[i++]);
        }
        field(ctx, row, col, cur.buf ? cur.buf : "", cur.len);
        if (i < n && s[i] == ',') {
            i++;
            col++;
            continue;
        }
        if (i < n && s[i] == '\r') i++;
        if (i < n && s[i] == '\n') i++;
        row++;
        col = 0;
        if (i >= n) break;
    }
    sb_free(&cur);
    return row;
}

typedef struct {
    double column_sum[8];
    int max_col;
    uint32_t hash;
} CsvStats;

static void csv_collect(void *ctx, int row, int col, const char *text, size_t len) {
    CsvStats *st = ctx;
    if (col > st->max_col) st->max_col = col;
    if (row > 0 && col < 8) st->column_sum[col] += atof(text);
    st->hash = st->hash * 31 + fnv1a32(text, len);
}

/* INI: [section] headers, key = value lines, ';' or '#' comments. */
typedef struct {
    char section[32], key[32], value[64];
} IniEntry;

static int ini_parse(const char *text, IniEntry *out, int max, int *error_line) {
    char line[128], section[32] = "";
    int n = 0, lineno = 0;
    const char *p = text;
    while (*p) {
        size_t len = strcspn(p, "\n");
        lineno++;
        if (len >= sizeof line) {
            *error_line = lineno;
            return -1;
        }
        memcpy(line, p, len);
        line[len] = 0;
        p += len + (p[len] == '\n');
        char *s = str_trim(line);
        if (!*s || *s == ';' || *s == '#') continue;
        if (*s == '[') {
            char *end = strchr(s, ']');
            if (!end || end[1] || end - s - 1 >= (long)sizeof section) {
                *error_line = lineno;
                return -1;
            }
            *end = 0;
            strcpy(section, s + 1);
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq || n == max) {
            *error_line = lineno;
            return -1;
        }
        *eq = 0;
        char *key = str_trim(s), *value = str_trim(eq + 1);
        if (strlen(key) >= sizeof out[n].key || strlen(value) >= sizeof out[n].value) {
            *error_line = lineno;
            return -1;
        }
        strcpy(out[n].section, section);
        strcpy(out[n].key, key);
        strcpy(out[n].value, value);
        n++;
    }
    return n;
}

static const char *ini_get(const IniEntry *e, int n, const char *section, const char *key) {
    for (int i = 0; i < n; i++)
        if (strcmp(e[i].section, section) == 0 && strcmp(e[i].key, key) == 0) return e[i].value;
    return NULL;
}

static uint32_t test_misc(void) {
    uint32_t h = 0;
    Pt pts[40];
    Rng r;
    rng_seed(&r, 17);
    for (int i = 0; i < 36; i++) {
        pts[i].x = 1.0 + 10.0 * rng_unit(&r);
        pts[i].y = 1.0 + 10.0 * rng_unit(&r);
    }
    pts[36] = (Pt){0, 0};
    pts[37] = (Pt){12, 0};
    pts[38] = (Pt){12, 12};
    pts[39] = (Pt){0, 12};
    Pt hull[41];
    int hn = convex_hull(pts, 40, hull);
    check(hn == 4 && fabs(polygon_area(hull, hn) - 144.0) < 1e-9, "convex hull");
    check(fabs(polygon_perimeter(hull, hn) - 48.0) < 1e-9, "perimeter");
    Pt tri[3] = {{0, 0}, {4, 0}, {0, 4}};
    check(point_in_polygon(tri, 3, (Pt){1, 1}) && !point_in_polygon(tri, 3, (Pt){3, 3}), "point in polygon");
    check(point_in_polygon(tri, 3, (Pt){2, 2}), "point on edge");
    check(segments_intersect((Pt){0, 0}, (Pt){4, 4}, (Pt){0, 4}, (Pt){4, 0}), "segments cross");
    check(!segments_intersect((Pt){0, 0}, (Pt){1, 1}, (Pt){2, 2}, (Pt){3, 0}), "segments apart");
    check(segments_intersect((Pt){0, 0}, (Pt){2, 0}, (Pt){1, 0}, (Pt){3, 0}), "segments overlap");
    Pt cp[6] = {{2, 3}, {12, 30}, {40, 50}, {5, 1}, {12, 10}, {3, 4}};
    double d = closest_pair(cp, 6);
    check(fabs(d - sqrt(2.0)) < 1e-12, "closest pair");
    h ^= (uint32_t)(polygon_area(hull, hn) * 1000);

    check(days_from_civil(1970, 1, 1) == 0 && days_from_civil(2000, 3, 1) == 11017, "days from civil");
    long y;
    int m, dd;
    civil_from_days(19723, &y, &m, &dd);
    check(y == 2024 && m == 1 && dd == 1, "civil from days");
    check(weekday_from_days(days_from_civil(2024, 2, 29)) == 4, "weekday");
    check(weekday_from_days(days_from_civil(1969, 12, 31)) == 3, "weekday before epoch");
    long iy;
    check(iso_week(2021, 1, 3, &iy) == 53 && iy == 2020, "iso week");
    check(iso_week(2024, 12, 30, &iy) == 1 && iy == 2025, "iso week 2");
    check(parse_date("2023-02-28", &y, &m, &dd) && !parse_date("2023-02-29", &y, &m, &dd), "parse date");
    check(!parse_date("2023-13-01", &y, &m, &dd) && !parse_date("2023-01-01x", &y, &m, &dd), "bad date");
    for (long z = -1000; z < 1000; z += 37) {
        civil_from_days(z, &y, &m, &dd);
        check(days_from_civil(y, m, dd) == z, "calendar roundtrip");
        h = h * 3 + (uint32_t)(y * 400 + m * 31 + dd);
    }

    char buf[64];
    to_roman(1994, buf);
    check(strcmp(buf, "MCMXCIV") == 0, "to roman");
    check(from_roman("MMXXIV") == 2024 && from_roman("IIII") == -1 && from_roman("IC") == -1, "from roman");
    for (int v = 1; v < 4000; v += 7) {
        to_roman(v, buf);
        if (from_roman(buf) != v) check(0, "roman roundtrip");
    }
    with_thousands(-1234567890123LL, buf);
    check(strcmp(buf, "-1,234,567,890,123") == 0, "thousands");
    human_size(1536, buf, sizeof buf);
    check(strcmp(buf, "1.5 KiB") == 0, "human size");
    StrBuf words = {0};
    number_to_words(1234567, &words);
    check(strcmp(words.buf, "one million, two hundred and thirty-four thousand, five hundred and sixty-seven") == 0,
          "number words");
    sb_clear(&words);
    number_to_words(-1000005, &words);
    check(strcmp(words.buf, "minus one million and five") == 0, "number words 2");
    h ^= fnv1a32(words.buf, words.len);
    sb_free(&words);

    static const char csv[] = "name,qty,price\r\n"
                              "\"Widget, large\",3,4.50\r\n"
                              "\"Gadget \"\"Pro\"\"\",1,19.99\n"
                              "plain,10,0.25";
    CsvStats st;
    memset(&st, 0, sizeof st);
    long rows = csv_parse(csv, csv_collect, &st);
    check(rows == 4 && st.max_col == 2 && fabs(st.column_sum[1] - 14) < 1e-9 &&
              fabs(st.column_sum[2] - 24.74) < 1e-9,
          "csv");
    check(csv_parse("\"open,1", csv_collect, &st) == -1, "csv bad quote");
    h ^= st.hash;

    static const char ini[] = "; config\n"
                              "name = shoal\n"
                              "[server]\n"
                              "port = 8080\n"
                              "  host=  localhost  \n"
                              "# comment\n"
                              "[limits]\n"
                              "memory = 64MiB\n";
    IniEntry entries[16];
    int err_line = 0;
    int ne = ini_parse(ini, entries, 16, &err_line);
    check(ne == 4, "ini count");
    const char *host = ini_get(entries, ne, "server", "host");
    check(host && strcmp(host, "localhost") == 0, "ini value");
    check(ini_get(entries, ne, "", "name") != NULL && ini_get(entries, ne, "server", "name") == NULL, "ini section");
    check(ini_parse("[broken\nx=1\n", entries, 16, &err_line) < 0 && err_line == 1, "ini error");
    h = h * 31 + (uint32_t)ne;
    return h;
}

/* ------------------------------------------------------------------------ */
/* Toy RISC machine: two-pass assembler, disassembler and emulator           */
/*                                                                           */
/* 16 registers r0..r15 (r0 reads as zero), 64 KiB byte-addressed memory,    */
/* 32-bit little-endian instructions:                                        */
/*   R-type  op:6 rd:4 rs:4 rt:4 unused:14                                   */
/*   I-type  op:6 rd:4 rs:4 imm:18 (signed)                                  */
/* ------------------------------------------------------------------------ */

typedef enum {
    K_ADD, K_SUB, K_MUL, K_DIV, K_REM, K_AND, K_OR, K_XOR, K_SHL, K_SHR, K_SRA, K_SLT,
    K_ADDI, K_ANDI, K_ORI, K_LUI, K_LW, K_SW, K_LB, K_SB,
    K_BEQ, K_BNE, K_BLT, K_BGE, K_JAL, K_JR, K_OUT, K_HALT, K_NOPS
} EmuOp;

typedef enum { FMT_R, FMT_I, FMT_MEM, FMT_BRANCH, FMT_JAL, FMT_JR, FMT_OUT, FMT_NONE } EmuFmt;

static const struct {
    const char *name;
    EmuFmt fmt;
} emu_ops[K_NOPS] = {
    {"add", FMT_R},      {"sub", FMT_R},      {"mul", FMT_R},      {"div", FMT_R},   {"rem", FMT_R},
    {"and", FMT_R},      {"or", FMT_R},       {"xor", FMT_R},      {"shl", FMT_R},   {"shr", FMT_R},
    {"sra", FMT_R},      {"slt", FMT_R},      {"addi", FMT_I},     {"andi", FMT_I},  {"ori", FMT_I},
    {"lui", FMT_I},      {"lw", FMT_MEM},     {"sw", FMT_MEM},     {"lb", FMT_MEM},  {"sb", FMT_MEM},
    {"beq", FMT_BRANCH}, {"bne", FMT_BRANCH}, {"blt", FMT_BRANCH}, {"bge", FMT_BRANCH},
    {"jal", FMT_JAL},    {"jr", FMT_JR},      {"out", FMT_OUT},    {"halt", FMT_NONE}};

static uint32_t enc_r(EmuOp op, int rd, int rs, int rt) {
    return (uint32_t)op << 26 | (uint32_t)rd << 22 | (uint32_t)rs << 18 | (uint32_t)rt << 14;
}

static uint32_t enc_i(EmuOp op, int rd, int rs, int32_t imm) {
    return (uint32_t)op << 26 | (uint32_t)rd << 22 | (uint32_t)rs << 18 | ((uint32_t)imm & 0x3ffff);
}

static int32_t dec_imm(uint32_t w) {
    int32_t imm = (int32_t)(w & 0x3ffff);
    return imm & 0x20000 ? imm - 0x40000 : imm;
}

typedef struct {
    char name[24];
    int addr;
} AsmLabel;

typedef struct {
    AsmLabel labels[64];
    int nlabels;
    uint32_t *code;
    int ncode, cap;
    char error[80];
    int line;
} Assembler;

static void asm_fail(Assembler *a, const char *msg, const char *detail) {
    if (!a->error[0]) snprintf(a->error, sizeof a->error, "line %d: %s%s", a->line, msg, detail);
}

static const char *asm_skip(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == ',') p++;
    return p;
}

static const char *asm_word(const char *p, char *out, size_t cap) {
    size_t n = 0;
    p = asm_skip(p);
    while (*p && *p != ' ' && *p != '\t' && *p != ',' && *p != '(' && *p != ')' && *p != '\n' && *p != ';') {
        if (n + 1 < cap) out[n++] = *p;
        p++;
    }
    out[n] = 0;
    return p;
}

static int asm_reg(Assembler *a, const char *w) {
    if (w[0] != 'r' || !w[1]) {
        asm_fail(a, "expected register, got ", w);
        return 0;
    }
    char *end;
    long r = strtol(w + 1, &end, 10);
    if (*end || r < 0 || r > 15) {
        asm_fail(a, "bad register ", w);
        return 0;
    }
    return (int)r;
}

static int asm_label_addr(Assembler *a, const char *w, int pass) {
    for (int i = 0; i < a->nlabels; i++)
        if (strcmp(a->labels[i].name, w) == 0) return a->labels[i].addr;
    if (pass == 2) asm_fail(a, "undefined label ", w);
    return 0;
}

static int32_t asm_imm(Assembler *a, const char *w, int pass) {
    if ((w[0] >= '0' && w[0] <= '9') || w[0] == '-') {
        char *end;
        long v = strtol(w, &end, 0);
        if (*end) asm_fail(a, "bad number ", w);
        if (v < -131072 || v > 131071) asm_fail(a, "immediate out of range ", w);
        return (int32_t)v;
    }
    return asm_label_addr(a, w, pass);
}

static void asm_emit(Assembler *a, uint32_t w) {
    if (a->ncode == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->code = realloc(a->code, (size_t)a->cap * sizeof(uint32_t));
    }
    a->code[a->ncode++] = w;
}

static int asm_find_op(const char *w) {
    for (int i = 0; i < K_NOPS; i++)
        if (strcmp(emu_ops[i].name, w) == 0) return i;
    return -1;
}

/* One line: optional "label:", optional instruction, optional "; comment". */
static void asm_line(Assembler *a, const char *p, int pass) {
    char w[32], x[32], y[32], z[32];
    const char *after = asm_word(p, w, sizeof w);
    size_t wl = strlen(w);
    if (wl && w[wl - 1] == ':') {
        w[wl - 1] = 0;
        if (pass == 1) {
            if (a->nlabels == 64 || wl > sizeof a->labels[0].name) {
                asm_fail(a, "too many labels or label too long: ", w);
                return;
            }
            strcpy(a->labels[a->nlabels].name, w);
            a->labels[a->nlabels++].addr = a->ncode * 4;
        }
        p = after;
        after = asm_word(p, w, sizeof w);
    }
    if (!w[0]) return;
    if (strcmp(w, ".word") == 0) {
        asm_word(after, x, sizeof x);
        asm_emit(a, (uint32_t)strtoul(x, NULL, 0));
        return;
    }
    if (strcmp(w, "li") == 0) { /* pseudo: lui + ori, always two words */
        after = asm_word(after, x, sizeof x);
        asm_word(after, y, sizeof y);
        int rd = asm_reg(a, x);
        long v = strtol(y, NULL, 0);
        asm_emit(a, enc_i(K_LUI, rd, 0, (int32_t)((v >> 14) & 0x3ffff)));
        asm_emit(a, enc_i(K_ORI, rd, rd, (int32_t)(v & 0x3fff)));
        return;
    }
    int op = asm_find_op(w);
    if (op < 0) {
        asm_fail(a, "unknown instruction ", w);
        return;
    }
    int pc = a->ncode * 4;
    switch (emu_ops[op].fmt) {
    case FMT_R:
        after = asm_word(after, x, sizeof x);
        after = asm_word(after, y, sizeof y);
        asm_word(after, z, sizeof z);
        asm_emit(a, enc_r((EmuOp)op, asm_reg(a, x), asm_reg(a, y), asm_reg(a, z)));
        break;
    case FMT_I:
        after = asm_word(after, x, sizeof x);
        if (op == K_LUI) {
            asm_word(after, z, sizeof z);
            asm_emit(a, enc_i((EmuOp)op, asm_reg(a, x), 0, asm_imm(a, z, pass)));
            break;
        }
        after = asm_word(after, y, sizeof y);
        asm_word(after, z, sizeof z);
        asm_emit(a, enc_i((EmuOp)op, asm_reg(a, x), asm_reg(a, y), asm_imm(a, z, pass)));
        break;
    case FMT_MEM: /* lw rd, imm(rs) */
        after = asm_word(after, x, sizeof x);
        after = asm_word(after, z, sizeof z);
        after = asm_skip(after);
        if (*after != '(') {
            asm_fail(a, "expected (", "");
            break;
        }
        asm_word(after + 1, y, sizeof y);
        asm_emit(a, enc_i((EmuOp)op, asm_reg(a, x), asm_reg(a, y), z[0] ? asm_imm(a, z, pass) : 0));
        break;
    case FMT_BRANCH: /* beq rs, rt, label: rd field holds rt; imm is relative */
        after = asm_word(after, x, sizeof x);
        after = asm_word(after, y, sizeof y);
        asm_word(after, z, sizeof z);
        asm_emit(a, enc_i((EmuOp)op, asm_reg(a, y), asm_reg(a, x), (asm_label_addr(a, z, pass) - pc) / 4));
        break;
    case FMT_JAL: /* jal rd, label */
        after = asm_word(after, x, sizeof x);
        asm_word(after, z, sizeof z);
        asm_emit(a, enc_i((EmuOp)op, asm_reg(a, x), 0, asm_label_addr(a, z, pass) / 4));
        break;
    case FMT_JR:
    case FMT_OUT:
        asm_word(after, x, sizeof x);
        asm_emit(a, enc_i((EmuOp)op, 0, asm_reg(a, x), 0));
        break;
    case FMT_NONE:
        asm_emit(a, enc_i((EmuOp)op, 0, 0, 0));
        break;
    }
}

static int assemble(Assembler *a, const char *src) {
    memset(a, 0, sizeof *a);
    for (int pass = 1; pass <= 2 && !a->error[0]; pass++) {
        a->ncode = 0;
        a->line = 0;
        const char *p = src;
        while (*p && !a->error[0]) {
            char line[128];
            size_t n = strcspn(p, "\n");
            size_t c = n < sizeof line - 1 ? n : sizeof line - 1;
            memcpy(line, p, c);
            line[c] = 0;
            char *semi = strchr(line, ';');
            if (semi) *semi = 0;
            a->line++;
            asm_line(a, line, pass);
            p += n + (p[n] == '\n');
        }
    }
    return a->error[0] == 0;
}

static void disassemble_word(uint32_t w, int pc, char *out, size_t cap) {
    int op = (int)(w >> 26), rd = (int)(w >> 22) & 15, rs = (int)(w >> 18) & 15, rt = (int)(w >> 14) & 15;
    int32_t imm = dec_imm(w);
    if (op >= K_NOPS) {
        snprintf(out, cap, ".word 0x%08x", w);
        return;
    }
    const char *name = emu_ops[op].name;
    switch (emu_ops[op].fmt) {
    case FMT_R:
        snprintf(out, cap, "%s r%d, r%d, r%d", name, rd, rs, rt);
        break;
    case FMT_I:
        if (op == K_LUI)
            snprintf(out, cap, "%s r%d, %d", name, rd, imm);
        else
            snprintf(out, cap, "%s r%d, r%d, %d", name, rd, rs, imm);
        break;
    case FMT_MEM:
        snprintf(out, cap, "%s r%d, %d(r%d)", name, rd, imm, rs);
        break;
    case FMT_BRANCH:
        snprintf(out, cap, "%s r%d, r%d, 0x%x", name, rs, rd, (unsigned)(pc + imm * 4));
        break;
    case FMT_JAL:
        snprintf(out, cap, "%s r%d, 0x%x", name, rd, (unsigned)(imm * 4));
        break;
    case FMT_JR:
    case FMT_OUT:
        snprintf(out, cap, "%s r%d", name, rs);
        break;
    case FMT_NONE:
        snprintf(out, cap, "%s", name);
        break;
    }
}

typedef enum { EMU_HALTED, EMU_FAULT_MEM, EMU_FAULT_DIV, EMU_FAULT_OP, EMU_STEP_LIMIT } EmuStatus;

typedef struct {
    uint32_t reg[16];
    uint32_t pc;
    unsigned char *mem;
    uint32_t mem_size;
    uint64_t steps;
    uint32_t out[64];
    int nout;
} Cpu;

static int cpu_check(const Cpu *c, uint32_t addr, uint32_t size) {
    return addr <= c->mem_size && size <= c->mem_size - addr;
}

static EmuStatus cpu_run(Cpu *c, uint64_t max_steps) {
    while (c->steps < max_steps) {
        if (!cpu_check(c, c->pc, 4) || (c->pc & 3)) return EMU_FAULT_MEM;
        uint32_t w = load_le32(c->mem + c->pc);
        uint32_t op = w >> 26, rd = (w >> 22) & 15, rs = (w >> 18) & 15, rt = (w >> 14) & 15;
        int32_t imm = dec_imm(w);
        uint32_t a = c->reg[rs], b = c->reg[rt], result = 0, next = c->pc + 4;
        int writes = 1;
        c->steps++;
        switch (op) {
        case K_ADD:
            result = a + b;
            break;
        case K_SUB:
            result = a - b;
            break;
        case K_MUL:
            result = a * b;
            break;
        case K_DIV:
        case K_REM:
            if (b == 0) return EMU_FAULT_DIV;
            if ((int32_t)a == INT32_MIN && (int32_t)b == -1)
                result = op == K_DIV ? a : 0;
            else
                result = (uint32_t)(op == K_DIV ? (int32_t)a / (int32_t)b : (int32_t)a % (int32_t)b);
            break;
        case K_AND:
            result = a & b;
            break;
        case K_OR:
            result = a | b;
            break;
        case K_XOR:
            result = a ^ b;
            break;
        case K_SHL:
            result = a << (b & 31);
            break;
        case K_SHR:
            result = a >> (b & 31);
            break;
        case K_SRA:
            result = (uint32_t)((int32_t)a >> (b & 31));
            break;
        case K_SLT:
            result = (int32_t)a < (int32_t)b;
            break;
        case K_ADDI:
            result = a + (uint32_t)imm;
            break;
        case K_ANDI:
            result = a & (uint32_t)(imm & 0x3ffff);
            break;
        case K_ORI:
            result = a | (uint32_t)(imm & 0x3ffff);
            break;
        case K_LUI:
            result = (uint32_t)imm << 14;
            break;
        case K_LW:
        case K_LB: {
            uint32_t addr = a + (uint32_t)imm, size = op == K_LW ? 4 : 1;
            if (!cpu_check(c, addr, size)) return EMU_FAULT_MEM;
            result = op == K_LW ? load_le32(c->mem + addr) : (uint32_t)(int32_t)(signed char)c->mem[addr];
            break;
        }
        case K_SW:
        case K_SB: {
            uint32_t addr = a + (uint32_t)imm, size = op == K_SW ? 4 : 1, v = c->reg[rd];
            if (!cpu_check(c, addr, size)) return EMU_FAULT_MEM;
            for (uint32_t i = 0; i < size; i++) c->mem[addr + i] = (unsigned char)(v >> (8 * i));
            writes = 0;
            break;
        }
        case K_BEQ:
        case K_BNE:
        case K_BLT:
        case K_BGE: {
            uint32_t other = c->reg[rd];
            int taken = op == K_BEQ   ? a == other
                        : op == K_BNE ? a != other
                        : op == K_BLT ? (int32_t)a < (int32_t)other
                                      : (int32_t)a >= (int32_t)other;
            if (taken) next = c->pc + (uint32_t)(imm * 4);
            writes = 0;
            break;
        }
        case K_JAL:
            result = c->pc + 4;
            next = (uint32_t)imm * 4;
            break;
        case K_JR:
            next = a;
            writes = 0;
            break;
        case K_OUT:
            if (c->nout < 64) c->out[c->nout++] = a;
            writes = 0;
            break;
        case K_HALT:
            return EMU_HALTED;
        default:
            return EMU_FAULT_OP;
        }
        if (writes && rd != 0) c->reg[rd] = result;
        c->pc = next;
    }
    return EMU_STEP_LIMIT;
}

static EmuStatus emu_run_program(const char *src, Cpu *cpu, char *error, size_t error_size) {
    Assembler as;
    if (!assemble(&as, src)) {
        snprintf(error, error_size, "%s", as.error);
        free(as.code);
        return EMU_FAULT_OP;
    }
    memset(cpu, 0, sizeof *cpu);
    cpu->mem_size = 65536;
    cpu->mem = calloc(cpu->mem_size, 1);
    for (int i = 0; i < as.ncode; i++)
        for (int k = 0; k < 4; k++) cpu->mem[i * 4 + k] = (unsigned char)(as.code[i] >> (8 * k));
    cpu->reg[15] = cpu->mem_size; /* stack pointer */
    free(as.code);
    error[0] = 0;
    return cpu_run(cpu, 10000000);
}

static uint32_t test_emu(void) {
    static const char program[] =
        "; iterative fibonacci, a recursive gcd through the stack, and a byte sort\n"
        "start:  addi r1, r0, 0        ; a\n"
        "        addi r2, r0, 1        ; b\n"
        "        addi r3, r0, 25       ; n\n"
        "fib:    beq  r3, r0, fib_done\n"
        "        add  r4, r1, r2\n"
        "        add  r1, r0, r2\n"
        "        add  r2, r0, r4\n"
        "        addi r3, r3, -1\n"
        "        jal  r0, fib\n"
        "fib_done: out r1\n"
        "        li   r5, 1071\n"
        "        li   r6, 462\n"
        "        jal  r14, gcd\n"
        "        out  r5\n"
        "        jal  r14, sort\n"
        "        halt\n"
        "gcd:    beq  r6, r0, gcd_ret   ; gcd(r5, r6) -> r5, recursive\n"
        "        addi r15, r15, -4\n"
        "        sw   r14, 0(r15)\n"
        "        rem  r7, r5, r6\n"
        "        add  r5, r0, r6\n"
        "        add  r6, r0, r7\n"
        "        jal  r14, gcd\n"
        "        lw   r14, 0(r15)\n"
        "        addi r15, r15, 4\n"
        "gcd_ret: jr r14\n"
        "sort:   li   r8, 4096           ; write 8 bytes, insertion sort, print them\n"
        "        li   r9, 0x05030807\n"
        "        sw   r9, 0(r8)\n"
        "        li   r9, 0x06010402\n"
        "        sw   r9, 4(r8)\n"
        "        addi r10, r0, 1\n"
        "        addi r13, r0, 8\n"
        "outer:  bge  r10, r13, print\n"
        "        add  r11, r8, r10\n"
        "        lb   r12, 0(r11)\n"
        "inner:  beq  r11, r8, place\n"
        "        lb   r9, -1(r11)\n"
        "        bge  r12, r9, place\n"
        "        sb   r9, 0(r11)\n"
        "        addi r11, r11, -1\n"
        "        jal  r0, inner\n"
        "place:  sb   r12, 0(r11)\n"
        "        addi r10, r10, 1\n"
        "        jal  r0, outer\n"
        "print:  lw   r9, 0(r8)\n"
        "        out  r9\n"
        "        lw   r9, 4(r8)\n"
        "        out  r9\n"
        "        jr   r14\n";
    Cpu cpu;
    char error[96];
    EmuStatus st = emu_run_program(program, &cpu, error, sizeof error);
    if (error[0]) printf("  asm: %s\n", error);
    check(st == EMU_HALTED, "emu halts");
    check(cpu.nout == 4 && cpu.out[0] == 75025 && cpu.out[1] == 21, "emu fib and gcd");
    check(cpu.nout == 4 && cpu.out[2] == 0x04030201 && cpu.out[3] == 0x08070605, "emu sort");
    uint32_t h = (uint32_t)cpu.steps;
    for (int i = 0; i < cpu.nout; i++) h = h * 31 + cpu.out[i];

    /* Disassemble what was loaded and reassemble it: the words must agree. */
    StrBuf listing = {0};
    char line[64];
    uint32_t n_words = 0;
    while (n_words < 64 && load_le32(cpu.mem + n_words * 4)) n_words++;
    for (uint32_t i = 0; i < n_words; i++) {
        disassemble_word(load_le32(cpu.mem + i * 4), (int)(i * 4), line, sizeof line);
        for (char *p = line; *p; p++)
            if (*p == '0' && p[1] == 'x') { /* branch/jal targets -> labels */
                unsigned long target = strtoul(p, NULL, 16);
                char lab[24];
                snprintf(lab, sizeof lab, "L%lu", target);
                *p = 0;
                sb_puts(&listing, line);
                sb_puts(&listing, lab);
                line[0] = 0;
                break;
            }
        char lab[32];
        snprintf(lab, sizeof lab, "\nL%u: ", (unsigned)((i + 1) * 4));
        sb_puts(&listing, line);
        sb_puts(&listing, lab);
    }
    StrBuf full = {0};
    sb_puts(&full, "L0: ");
    sb_puts(&full, listing.buf);
    Assembler again;
    int ok = assemble(&again, full.buf);
    if (!ok) printf("  reassemble: %s\n", again.error);
    check(ok && (uint32_t)again.ncode == n_words, "reassemble size");
    int same = ok;
    for (uint32_t i = 0; ok && i < n_words; i++) same &= again.code[i] == load_le32(cpu.mem + i * 4);
    check(same, "reassemble words");
    free(again.code);
    sb_free(&listing);
    sb_free(&full);
    free(cpu.mem);

    static const struct {
        const char *src;
        EmuStatus want;
    } faults[] = {
        {"addi r1, r0, 1\ndiv r2, r1, r0\nhalt\n", EMU_FAULT_DIV},
        {"li r1, 70000\nlw r2, 0(r1)\nhalt\n", EMU_FAULT_MEM},
        {"loop: jal r0, loop\n", EMU_STEP_LIMIT},
        {".word 0xfc000000\n", EMU_FAULT_OP},
        {"bogus r1\n", EMU_FAULT_OP},
        {"beq r1, r2, nowhere\n", EMU_FAULT_OP},
    };
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        Cpu c2;
        memset(&c2, 0, sizeof c2);
        EmuStatus got = emu_run_program(faults[i].src, &c2, error, sizeof error);
        check(got == faults[i].want, faults[i].src);
        h = h * 7 + (uint32_t)got;
        free(c2.mem);
    }
    return h;
}

/* ------------------------------------------------------------------------ */
/* Cryptography (for testing code generation, not for protecting anything): */
/* AES-128 with CBC and CTR, ChaCha20, Poly1305, MD5, SHA-1, HMAC-SHA256,    */
/* PBKDF2                                                                    */
/* ------------------------------------------------------------------------ */

static uint8_t aes_sbox[256], aes_inv_sbox[256];

static uint8_t gf_mul(uint8_t a, uint8_t b) {
    uint8_t p = 0;
    while (b) {
        if (b & 1) p ^= a;
        a = (uint8_t)((a << 1) ^ (a & 0x80 ? 0x1b : 0));
        b >>= 1;
    }
    return p;
}

/* S-box from the multiplicative inverse in GF(2^8) and the affine map. */
static void aes_init_tables(void) {
    uint8_t p = 1, q = 1;
    do {
        p = (uint8_t)(p ^ (p << 1) ^ (p & 0x80 ? 0x1b : 0)); /* p *= 3 */
        q ^= (uint8_t)(q << 1);                               /* q /= 3 */
        q ^= (uint8_t)(q << 2);
        q ^= (uint8_t)(q << 4);
        if (q & 0x80) q ^= 0x09;
        uint8_t x = (uint8_t)(q ^ (q << 1 | q >> 7) ^ (q << 2 | q >> 6) ^ (q << 3 | q >> 5) ^ (q << 4 | q >> 4));
        aes_sbox[p] = x ^ 0x63;
    } while (p != 1);
    aes_sbox[0] = 0x63;
    for (int i = 0; i < 256; i++) aes_inv_sbox[aes_sbox[i]] = (uint8_t)i;
}

typedef struct {
    uint8_t round_key[176];
} Aes128;

static void aes_expand_key(Aes128 *ctx, const uint8_t key[16]) {
    memcpy(ctx->round_key, key, 16);
    uint8_t rcon = 1;
    for (int i = 16; i < 176; i += 4) {
        uint8_t t[4];
        memcpy(t, ctx->round_key + i - 4, 4);
        if (i % 16 == 0) {
            uint8_t first = t[0];
            t[0] = (uint8_t)(aes_sbox[t[1]] ^ rcon);
            t[1] = aes_sbox[t[2]];
            t[2] = aes_sbox[t[3]];
            t[3] = aes_sbox[first];
            rcon = gf_mul(rcon, 2);
        }
        for (int k = 0; k < 4; k++) ctx->round_key[i + k] = ctx->round_key[i - 16 + k] ^ t[k];
    }
}

static void aes_add_round_key(uint8_t *s, const uint8_t *rk) {
    for (int i = 0; i < 16; i++) s[i] ^= rk[i];
}

/* State is column-major: byte (row r, column c) at s[4c + r]. */
static void aes_shift_rows(uint8_t *s, int inverse) {
    uint8_t t[16];
    for (int c = 0; c < 4; c++)
        for (int r = 0; r < 4; r++) {
            int from = inverse ? (c - r + 4) % 4 : (c + r) % 4;
            t[4 * c + r] = s[4 * from + r];
        }
    memcpy(s, t, 16);
}

static void aes_mix_columns(uint8_t *s, int inverse) {
    static const uint8_t fwd[4] = {2, 3, 1, 1}, inv[4] = {14, 11, 13, 9};
    const uint8_t *m = inverse ? inv : fwd;
    for (int c = 0; c < 4; c++) {
        uint8_t col[4], out[4];
        memcpy(col, s + 4 * c, 4);
        for (int r = 0; r < 4; r++)
            out[r] = (uint8_t)(gf_mul(col[0], m[(4 - r) % 4]) ^ gf_mul(col[1], m[(5 - r) % 4]) ^
                               gf_mul(col[2], m[(6 - r) % 4]) ^ gf_mul(col[3], m[(7 - r) % 4]));
        memcpy(s + 4 * c, out, 4);
    }
}

static void aes_encrypt_block(const Aes128 *ctx, const uint8_t in[16], uint8_t out[16]) {
    uint8_t s[16];
    memcpy(s, in, 16);
    aes_add_round_key(s, ctx->round_key);
    for (int round = 1; round <= 10; round++) {
        for (int i = 0; i < 16; i++) s[i] = aes_sbox[s[i]];
        aes_shift_rows(s, 0);
        if (round != 10) aes_mix_columns(s, 0);
        aes_add_round_key(s, ctx->round_key + 16 * round);
    }
    memcpy(out, s, 16);
}

static void aes_decrypt_block(const Aes128 *ctx, const uint8_t in[16], uint8_t out[16]) {
    uint8_t s[16];
    memcpy(s, in, 16);
    aes_add_round_key(s, ctx->round_key + 160);
    for (int round = 9; round >= 0; round--) {
        aes_shift_rows(s, 1);
        for (int i = 0; i < 16; i++) s[i] = aes_inv_sbox[s[i]];
        aes_add_round_key(s, ctx->round_key + 16 * round);
        if (round != 0) aes_mix_columns(s, 1);
    }
    memcpy(out, s, 16);
}

/* CBC with PKCS#7 padding; returns the ciphertext length. */
static size_t aes_cbc_encrypt(const Aes128 *ctx, const uint8_t iv[16], const uint8_t *in, size_t n, uint8_t *out) {
    uint8_t chain[16], block[16];
    memcpy(chain, iv, 16);
    size_t padded = (n / 16 + 1) * 16;
    for (size_t off = 0; off < padded; off += 16) {
        for (size_t i = 0; i < 16; i++) {
            uint8_t b = off + i < n ? in[off + i] : (uint8_t)(padded - n);
            block[i] = b ^ chain[i];
        }
        aes_encrypt_block(ctx, block, out + off);
        memcpy(chain, out + off, 16);
    }
    return padded;
}

/* Returns the plaintext length, or -1 on bad padding. */
static long aes_cbc_decrypt(const Aes128 *ctx, const uint8_t iv[16], const uint8_t *in, size_t n, uint8_t *out) {
    if (n == 0 || n % 16) return -1;
    uint8_t chain[16];
    memcpy(chain, iv, 16);
    for (size_t off = 0; off < n; off += 16) {
        aes_decrypt_block(ctx, in + off, out + off);
        for (int i = 0; i < 16; i++) out[off + (size_t)i] ^= chain[i];
        memcpy(chain, in + off, 16);
    }
    uint8_t pad = out[n - 1];
    if (pad == 0 || pad > 16) return -1;
    for (size_t i = n - pad; i < n; i++)
        if (out[i] != pad) return -1;
    return (long)(n - pad);
}

static void aes_ctr_xor(const Aes128 *ctx, const uint8_t nonce[16], uint8_t *buf, size_t n) {
    uint8_t counter[16], ks[16];
    memcpy(counter, nonce, 16);
    for (size_t off = 0; off < n; off += 16) {
        aes_encrypt_block(ctx, counter, ks);
        for (size_t i = 0; i < 16 && off + i < n; i++) buf[off + i] ^= ks[i];
        for (int i = 15; i >= 0 && ++counter[i] == 0; i--) {
        }
    }
}

/* ChaCha20 (RFC 8439). */
#define QR(a, b, c, d)                                                                             \
    do {                                                                                           \
        a += b;                                                                                    \
        d = rotl32(d ^ a, 16);                                                                     \
        c += d;                                                                                    \
        b = rotl32(b ^ c, 12);                                                                     \
        a += b;                                                                                    \
        d = rotl32(d ^ a, 8);                                                                      \
        c += d;                                                                                    \
        b = rotl32(b ^ c, 7);                                                                      \
    } while (0)

static void chacha20_block(const uint8_t key[32], uint32_t counter, const uint8_t nonce[12], uint8_t out[64]) {
    uint32_t st[16], x[16];
    st[0] = 0x61707865;
    st[1] = 0x3320646e;
    st[2] = 0x79622d32;
    st[3] = 0x6b206574;
    for (int i = 0; i < 8; i++) st[4 + i] = load_le32(key + 4 * i);
    st[12] = counter;
    for (int i = 0; i < 3; i++) st[13 + i] = load_le32(nonce + 4 * i);
    memcpy(x, st, sizeof st);
    for (int i = 0; i < 10; i++) {
        QR(x[0], x[4], x[8], x[12]);
        QR(x[1], x[5], x[9], x[13]);
        QR(x[2], x[6], x[10], x[14]);
        QR(x[3], x[7], x[11], x[15]);
        QR(x[0], x[5], x[10], x[15]);
        QR(x[1], x[6], x[11], x[12]);
        QR(x[2], x[7], x[8], x[13]);
        QR(x[3], x[4], x[9], x[14]);
    }
    for (int i = 0; i < 16; i++) {
        uint32_t v = x[i] + st[i];
        out[4 * i] = (uint8_t)v;
        out[4 * i + 1] = (uint8_t)(v >> 8);
        out[4 * i + 2] = (uint8_t)(v >> 16);
        out[4 * i + 3] = (uint8_t)(v >> 24);
    }
}

static void chacha20_xor(const uint8_t key[32], uint32_t counter, const uint8_t nonce[12], uint8_t *buf, size_t n) {
    uint8_t ks[64];
    for (size_t off = 0; off < n; off += 64, counter++) {
        chacha20_block(key, counter, nonce, ks);
        for (size_t i = 0; i < 64 && off + i < n; i++) buf[off + i] ^= ks[i];
    }
}

/* Poly1305 with 26-bit limbs. */
static void poly1305_mac(const uint8_t *msg, size_t n, const uint8_t key[32], uint8_t tag[16]) {
    uint32_t r0 = load_le32(key) & 0x3ffffff, r1 = (load_le32(key + 3) >> 2) & 0x3ffff03;
    uint32_t r2 = (load_le32(key + 6) >> 4) & 0x3ffc0ff, r3 = (load_le32(key + 9) >> 6) & 0x3f03fff;
    uint32_t r4 = (load_le32(key + 12) >> 8) & 0x00fffff;
    uint32_t s1 = r1 * 5, s2 = r2 * 5, s3 = r3 * 5, s4 = r4 * 5;
    uint32_t h0 = 0, h1 = 0, h2 = 0, h3 = 0, h4 = 0;
    while (n > 0) {
        uint8_t block[17] = {0};
        size_t take = n < 16 ? n : 16;
        memcpy(block, msg, take);
        block[take] = 1;
        msg += take;
        n -= take;
        h0 += load_le32(block) & 0x3ffffff;
        h1 += (load_le32(block + 3) >> 2) & 0x3ffffff;
        h2 += (load_le32(block + 6) >> 4) & 0x3ffffff;
        h3 += (load_le32(block + 9) >> 6) & 0x3ffffff;
        h4 += (load_le32(block + 12) >> 8) | ((uint32_t)block[16] << 24);
        uint64_t d0 = (uint64_t)h0 * r0 + (uint64_t)h1 * s4 + (uint64_t)h2 * s3 + (uint64_t)h3 * s2 + (uint64_t)h4 * s1;
        uint64_t d1 = (uint64_t)h0 * r1 + (uint64_t)h1 * r0 + (uint64_t)h2 * s4 + (uint64_t)h3 * s3 + (uint64_t)h4 * s2;
        uint64_t d2 = (uint64_t)h0 * r2 + (uint64_t)h1 * r1 + (uint64_t)h2 * r0 + (uint64_t)h3 * s4 + (uint64_t)h4 * s3;
        uint64_t d3 = (uint64_t)h0 * r3 + (uint64_t)h1 * r2 + (uint64_t)h2 * r1 + (uint64_t)h3 * r0 + (uint64_t)h4 * s4;
        uint64_t d4 = (uint64_t)h0 * r4 + (uint64_t)h1 * r3 + (uint64_t)h2 * r2 + (uint64_t)h3 * r1 + (uint64_t)h4 * r0;
        uint32_t c = (uint32_t)(d0 >> 26);
        h0 = (uint32_t)d0 & 0x3ffffff;
        d1 += c;
        c = (uint32_t)(d1 >> 26);
        h1 = (uint32_t)d1 & 0x3ffffff;
        d2 += c;
        c = (uint32_t)(d2 >> 26);
        h2 = (uint32_t)d2 & 0x3ffffff;
        d3 += c;
        c = (uint32_t)(d3 >> 26);
        h3 = (uint32_t)d3 & 0x3ffffff;
        d4 += c;
        c = (uint32_t)(d4 >> 26);
        h4 = (uint32_t)d4 & 0x3ffffff;
        h0 += c * 5;
        h1 += h0 >> 26;
        h0 &= 0x3ffffff;
    }
    /* Full carry, then compute h - p and select. */
    uint32_t c = h1 >> 26;
    h1 &= 0x3ffffff;
    h2 += c;
    c = h2 >> 26;
    h2 &= 0x3ffffff;
    h3 += c;
    c = h3 >> 26;
    h3 &= 0x3ffffff;
    h4 += c;
    c = h4 >> 26;
    h4 &= 0x3ffffff;
    h0 += c * 5;
    c = h0 >> 26;
    h0 &= 0x3ffffff;
    h1 += c;
    uint32_t g0 = h0 + 5;
    c = g0 >> 26;
    g0 &= 0x3ffffff;
    uint32_t g1 = h1 + c;
    c = g1 >> 26;
    g1 &= 0x3ffffff;
    uint32_t g2 = h2 + c;
    c = g2 >> 26;
    g2 &= 0x3ffffff;
    uint32_t g3 = h3 + c;
    c = g3 >> 26;
    g3 &= 0x3ffffff;
    uint32_t g4 = h4 + c - (1u << 26);
    uint32_t mask = (g4 >> 31) - 1; /* all ones if h >= p */
    h0 = (h0 & ~mask) | (g0 & mask);
    h1 = (h1 & ~mask) | (g1 & mask);
    h2 = (h2 & ~mask) | (g2 & mask);
    h3 = (h3 & ~mask) | (g3 & mask);
    h4 = (h4 & ~mask) | (g4 & mask);
    uint64_t f0 = ((h0) | (h1 << 26)) + (uint64_t)load_le32(key + 16);
    uint64_t f1 = ((h1 >> 6) | (h2 << 20)) + (uint64_t)load_le32(key + 20) + (f0 >> 32);
    uint64_t f2 = ((h2 >> 12) | (h3 << 14)) + (uint64_t)load_le32(key + 24) + (f1 >> 32);
    uint64_t f3 = ((h3 >> 18) | (h4 << 8)) + (uint64_t)load_le32(key + 28) + (f2 >> 32);
    uint32_t words[4] = {(uint32_t)f0, (uint32_t)f1, (uint32_t)f2, (uint32_t)f3};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) tag[4 * i + k] = (uint8_t)(words[i] >> (8 * k));
}

/* Merkle-Damgard padding shared by MD5 and SHA-1: the message, 0x80, zeros,
 * and the bit length in the last 8 bytes of a 64-byte block. */
static uint8_t *md_pad(const void *data, size_t n, int big_endian_length, size_t *total) {
    *total = ((n + 8) / 64 + 1) * 64;
    uint8_t *msg = calloc(*total, 1);
    memcpy(msg, data, n);
    msg[n] = 0x80;
    uint64_t bits = (uint64_t)n * 8;
    for (size_t i = 0; i < 8; i++) msg[*total - (big_endian_length ? 1 + i : 8 - i)] = (uint8_t)(bits >> (8 * i));
    return msg;
}

/* MD5 (RFC 1321). */
static void md5(const void *data, size_t n, uint8_t out[16]) {
    static const uint32_t K[64] = {
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
        0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
        0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
        0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
        0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
        0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
        0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391};
    static const int S[16] = {7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21};
    uint32_t h[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
    size_t total;
    uint8_t *msg = md_pad(data, n, 0, &total);
    for (size_t off = 0; off < total; off += 64) {
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
        for (int i = 0; i < 64; i++) {
            uint32_t f;
            int g;
            switch (i / 16) {
            case 0:
                f = (b & c) | (~b & d);
                g = i;
                break;
            case 1:
                f = (d & b) | (~d & c);
                g = (5 * i + 1) % 16;
                break;
            case 2:
                f = b ^ c ^ d;
                g = (3 * i + 5) % 16;
                break;
            default:
                f = c ^ (b | ~d);
                g = (7 * i) % 16;
                break;
            }
            uint32_t rotated = rotl32(a + f + K[i] + load_le32(msg + off + 4 * (size_t)g), S[(i / 16) * 4 + i % 4]);
            a = d;
            d = c;
            c = b;
            b += rotated;
        }
        h[0] += a;
        h[1] += b;
        h[2] += c;
        h[3] += d;
    }
    free(msg);
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) out[4 * i + k] = (uint8_t)(h[i] >> (8 * k));
}

/* SHA-1 (FIPS 180-4), one-shot. */
static void sha1(const void *data, size_t n, uint8_t out[20]) {
    uint32_t h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    size_t total;
    uint8_t *msg = md_pad(data, n, 1, &total);
    for (size_t off = 0; off < total; off += 64) {
        uint32_t w[80];
        for (int i = 0; i < 16; i++) {
            const uint8_t *p = msg + off + 4 * (size_t)i;
            w[i] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        }
        for (int i = 16; i < 80; i++) w[i] = rotl32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; i++) {
            uint32_t f, k;
            if (i < 20) {
                f = (b & c) | (~b & d);
                k = 0x5a827999;
            } else if (i < 40) {
                f = b ^ c ^ d;
                k = 0x6ed9eba1;
            } else if (i < 60) {
                f = (b & c) | (b & d) | (c & d);
                k = 0x8f1bbcdc;
            } else {
                f = b ^ c ^ d;
                k = 0xca62c1d6;
            }
            uint32_t t = rotl32(a, 5) + f + e + k + w[i];
            e = d;
            d = c;
            c = rotl32(b, 30);
            b = a;
            a = t;
        }
        h[0] += a;
        h[1] += b;
        h[2] += c;
        h[3] += d;
        h[4] += e;
    }
    free(msg);
    for (int i = 0; i < 5; i++)
        for (int k = 0; k < 4; k++) out[4 * i + k] = (uint8_t)(h[i] >> (24 - 8 * k));
}

static void hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *msg, size_t n, uint8_t out[32]) {
    uint8_t k[64] = {0}, pad[64], inner[32];
    if (key_len > 64) {
        Sha256 s;
        sha256_init(&s);
        sha256_update(&s, key, key_len);
        sha256_final(&s, k);
    } else {
        memcpy(k, key, key_len);
    }
    Sha256 s;
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
    sha256_init(&s);
    sha256_update(&s, pad, 64);
    sha256_update(&s, msg, n);
    sha256_final(&s, inner);
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5c;
    sha256_init(&s);
    sha256_update(&s, pad, 64);
    sha256_update(&s, inner, 32);
    sha256_final(&s, out);
}

static void pbkdf2_sha256(const char *password, const uint8_t *salt, size_t salt_len, uint32_t iterations,
                          uint8_t *out, size_t out_len) {
    size_t plen = strlen(password);
    uint8_t *block = malloc(salt_len + 4);
    memcpy(block, salt, salt_len);
    for (uint32_t index = 1; out_len > 0; index++) {
        block[salt_len] = (uint8_t)(index >> 24);
        block[salt_len + 1] = (uint8_t)(index >> 16);
        block[salt_len + 2] = (uint8_t)(index >> 8);
        block[salt_len + 3] = (uint8_t)index;
        uint8_t u[32], t[32];
        hmac_sha256((const uint8_t *)password, plen, block, salt_len + 4, u);
        memcpy(t, u, 32);
        for (uint32_t it = 1; it < iterations; it++) {
            hmac_sha256((const uint8_t *)password, plen, u, 32, u);
            for (int i = 0; i < 32; i++) t[i] ^= u[i];
        }
        size_t take = out_len < 32 ? out_len : 32;
        memcpy(out, t, take);
        out += take;
        out_len -= take;
    }
    free(block);
}

static int hex_is(const uint8_t *bytes, size_t n, const char *want) {
    char hex[129];
    to_hex(bytes, n, hex);
    return strcmp(hex, want) == 0;
}

static uint32_t test_crypto(void) {
    uint32_t h = 0;
    aes_init_tables();
    check(aes_sbox[0x53] == 0xed && aes_inv_sbox[0xed] == 0x53, "aes sbox");
    uint8_t key[16], pt[16], ct[16], back[16];
    for (int i = 0; i < 16; i++) {
        key[i] = (uint8_t)i;
        pt[i] = (uint8_t)(i * 0x11);
    }
    Aes128 aes;
    aes_expand_key(&aes, key);
    aes_encrypt_block(&aes, pt, ct);
    check(hex_is(ct, 16, "69c4e0d86a7b0430d8cdb78070b4c55a"), "aes-128 fips-197");
    aes_decrypt_block(&aes, ct, back);
    check(memcmp(back, pt, 16) == 0, "aes decrypt");

    static const char secret[] = "Attack at dawn! Bring snacks and a spare keyboard.";
    size_t sn = strlen(secret);
    uint8_t iv[16] = {0}, cbc[80], plain[80];
    size_t cn = aes_cbc_encrypt(&aes, iv, (const uint8_t *)secret, sn, cbc);
    long pn = aes_cbc_decrypt(&aes, iv, cbc, cn, plain);
    check(cn == 64 && pn == (long)sn && memcmp(plain, secret, sn) == 0, "aes cbc roundtrip");
    cbc[cn - 1] ^= 1;
    check(aes_cbc_decrypt(&aes, iv, cbc, cn, plain) == -1 || memcmp(plain, secret, sn) != 0, "aes cbc tamper");
    uint8_t ctr[64];
    memcpy(ctr, secret, sn);
    aes_ctr_xor(&aes, iv, ctr, sn);
    h ^= crc32_update(0, ctr, sn);
    aes_ctr_xor(&aes, iv, ctr, sn);
    check(memcmp(ctr, secret, sn) == 0, "aes ctr roundtrip");

    uint8_t ckey[32], nonce[12] = {0, 0, 0, 9, 0, 0, 0, 0x4a, 0, 0, 0, 0}, block[64];
    for (int i = 0; i < 32; i++) ckey[i] = (uint8_t)i;
    chacha20_block(ckey, 1, nonce, block);
    check(hex_is(block, 16, "10f1e7e4d13b5915500fdd1fa32071c4"), "chacha20 block");
    uint8_t stream[100] = {0};
    chacha20_xor(ckey, 7, nonce, stream, sizeof stream);
    h = h * 31 + crc32_update(0, stream, sizeof stream);

    static const uint8_t pkey[32] = {0x85, 0xd6, 0xbe, 0x78, 0x57, 0x55, 0x6d, 0x33, 0x7f, 0x44, 0x52,
                                     0xfe, 0x42, 0xd5, 0x06, 0xa8, 0x01, 0x03, 0x80, 0x8a, 0xfb, 0x0d,
                                     0xb2, 0xfd, 0x4a, 0xbf, 0xf6, 0xaf, 0x41, 0x49, 0xf5, 0x1b};
    static const char pmsg[] = "Cryptographic Forum Research Group";
    uint8_t tag[16];
    poly1305_mac((const uint8_t *)pmsg, strlen(pmsg), pkey, tag);
    check(hex_is(tag, 16, "a8061dc1305136c6c22b8baf0c0127a9"), "poly1305");

    uint8_t digest[32];
    md5("", 0, digest);
    check(hex_is(digest, 16, "d41d8cd98f00b204e9800998ecf8427e"), "md5 empty");
    md5("abc", 3, digest);
    check(hex_is(digest, 16, "900150983cd24fb0d6963f7d28e17f72"), "md5 abc");
    sha1("abc", 3, digest);
    check(hex_is(digest, 20, "a9993e364706816aba3e25717850c26c9cd0d89d"), "sha1 abc");
    static const char longer[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha1(longer, strlen(longer), digest);
    check(hex_is(digest, 20, "84983e441c3bd26ebaae4aa1f95129e5e54670f1"), "sha1 two blocks");
    static const char jefe_msg[] = "what do ya want for nothing?";
    hmac_sha256((const uint8_t *)"Jefe", 4, (const uint8_t *)jefe_msg, strlen(jefe_msg), digest);
    check(hex_is(digest, 32, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"), "hmac-sha256");
    pbkdf2_sha256("password", (const uint8_t *)"salt", 4, 2, digest, 32);
    check(hex_is(digest, 32, "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43"), "pbkdf2");
    h = h * 31 + load_le32(digest) + load_le32(tag);
    return h;
}

/* ------------------------------------------------------------------------ */
/* DEFLATE (RFC 1951): a complete inflater (stored, fixed and dynamic        */
/* blocks) and a small deflater (fixed Huffman codes, hash-chain matching),  */
/* with the zlib wrapper (RFC 1950)                                          */
/* ------------------------------------------------------------------------ */

typedef struct {
    const uint8_t *in;
    size_t n, pos;
    uint32_t bitbuf;
    int bitcount;
    uint8_t *out;
    size_t out_len, out_cap;
    const char *error;
} Inflater;

/* Canonical Huffman decoding table: counts per length and symbols by code. */
typedef struct {
    uint16_t count[16];
    uint16_t symbol[320];
} HuffTable;

static int inf_bits(Inflater *s, int need, uint32_t *out) {
    while (s->bitcount < need) {
        if (s->pos >= s->n) {
            s->error = "input ends inside a block";
            return 0;
        }
        s->bitbuf |= (uint32_t)s->in[s->pos++] << s->bitcount;
        s->bitcount += 8;
    }
    *out = s->bitbuf & ((1u << need) - 1);
    s->bitbuf >>= need;
    s->bitcount -= need;
    return 1;
}

static int inf_emit(Inflater *s, uint8_t byte) {
    if (s->out_len == s->out_cap) {
        size_t ncap = s->out_cap ? s->out_cap * 2 : 1024;
        if (ncap > (64u << 20)) {
            s->error = "output too large";
            return 0;
        }
        s->out = realloc(s->out, ncap);
        s->out_cap = ncap;
    }
    s->out[s->out_len++] = byte;
    return 1;
}

/* Builds a table from code lengths; returns 0 if the code is over-subscribed.
 * An incomplete code is allowed (as zlib does for single-code distance trees). */
static int huff_build(HuffTable *t, const uint8_t *lengths, int n) {
    uint16_t offs[16];
    memset(t->count, 0, sizeof t->count);
    for (int i = 0; i < n; i++) t->count[lengths[i]]++;
    if (t->count[0] == n) return 1;
    int left = 1;
    for (int len = 1; len < 16; len++) {
        left <<= 1;
        left -= t->count[len];
        if (left < 0) return 0;
    }
    offs[1] = 0;
    for (int len = 1; len < 15; len++) offs[len + 1] = (uint16_t)(offs[len] + t->count[len]);
    for (int i = 0; i < n; i++)
        if (lengths[i]) t->symbol[offs[lengths[i]]++] = (uint16_t)i;
    return 1;
}

/* Decodes one symbol bit by bit (codes are stored MSB-first in the stream). */
static int huff_decode(Inflater *s, const HuffTable *t) {
    int code = 0, first = 0, index = 0;
    for (int len = 1; len < 16; len++) {
        uint32_t bit;
        if (!inf_bits(s, 1, &bit)) return -1;
        code |= (int)bit;
        int count = t->count[len];
        if (code - count < first) return t->symbol[index + (code - first)];
        index += count;
        first += count;
        first <<= 1;
        code <<= 1;
    }
    s->error = "invalid Huffman code";
    return -1;
}

static const uint16_t len_base[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                      31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t dist_base[30] = {1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,   65,    97,    129,
                                       193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                       6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

static int inflate_codes(Inflater *s, const HuffTable *lit, const HuffTable *dist) {
    for (;;) {
        int sym = huff_decode(s, lit);
        if (sym < 0) return 0;
        if (sym < 256) {
            if (!inf_emit(s, (uint8_t)sym)) return 0;
            continue;
        }
        if (sym == 256) return 1;
        sym -= 257;
        if (sym >= 29) {
            s->error = "bad length symbol";
            return 0;
        }
        uint32_t extra;
        if (!inf_bits(s, len_extra[sym], &extra)) return 0;
        size_t len = len_base[sym] + extra;
        int dsym = huff_decode(s, dist);
        if (dsym < 0) return 0;
        if (dsym >= 30) {
            s->error = "bad distance symbol";
            return 0;
        }
        if (!inf_bits(s, dist_extra[dsym], &extra)) return 0;
        size_t d = dist_base[dsym] + extra;
        if (d > s->out_len) {
            s->error = "distance too far back";
            return 0;
        }
        for (size_t i = 0; i < len; i++)
            if (!inf_emit(s, s->out[s->out_len - d])) return 0;
    }
}

static int inflate_stored(Inflater *s) {
    s->bitbuf = 0;
    s->bitcount = 0; /* skip to a byte boundary */
    if (s->pos + 4 > s->n) {
        s->error = "truncated stored block";
        return 0;
    }
    unsigned len = s->in[s->pos] | (unsigned)s->in[s->pos + 1] << 8;
    unsigned nlen = s->in[s->pos + 2] | (unsigned)s->in[s->pos + 3] << 8;
    s->pos += 4;
    if ((len ^ 0xffff) != nlen) {
        s->error = "stored block length check failed";
        return 0;
    }
    if (s->pos + len > s->n) {
        s->error = "truncated stored block";
        return 0;
    }
    for (unsigned i = 0; i < len; i++)
        if (!inf_emit(s, s->in[s->pos + i])) return 0;
    s->pos += len;
    return 1;
}

static void fixed_tables(HuffTable *lit, HuffTable *dist) {
    uint8_t lengths[288];
    for (int i = 0; i < 288; i++) lengths[i] = i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8;
    huff_build(lit, lengths, 288);
    for (int i = 0; i < 30; i++) lengths[i] = 5;
    huff_build(dist, lengths, 30);
}

static int inflate_dynamic(Inflater *s) {
    static const uint8_t order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    uint32_t hlit, hdist, hclen;
    if (!inf_bits(s, 5, &hlit) || !inf_bits(s, 5, &hdist) || !inf_bits(s, 4, &hclen)) return 0;
    hlit += 257;
    hdist += 1;
    hclen += 4;
    if (hlit > 286 || hdist > 30) {
        s->error = "too many length or distance codes";
        return 0;
    }
    uint8_t lengths[320] = {0};
    for (uint32_t i = 0; i < hclen; i++) {
        uint32_t v;
        if (!inf_bits(s, 3, &v)) return 0;
        lengths[order[i]] = (uint8_t)v;
    }
    HuffTable lencode, lit, dist;
    if (!huff_build(&lencode, lengths, 19)) {
        s->error = "bad code-length code";
        return 0;
    }
    memset(lengths, 0, sizeof lengths);
    for (uint32_t i = 0; i < hlit + hdist;) {
        int sym = huff_decode(s, &lencode);
        if (sym < 0) return 0;
        if (sym < 16) {
            lengths[i++] = (uint8_t)sym;
            continue;
        }
        uint32_t repeat, extra;
        uint8_t value = 0;
        if (sym == 16) {
            if (i == 0) {
                s->error = "repeat with no previous length";
                return 0;
            }
            value = lengths[i - 1];
            if (!inf_bits(s, 2, &extra)) return 0;
            repeat = 3 + extra;
        } else if (sym == 17) {
            if (!inf_bits(s, 3, &extra)) return 0;
            repeat = 3 + extra;
        } else {
            if (!inf_bits(s, 7, &extra)) return 0;
            repeat = 11 + extra;
        }
        if (i + repeat > hlit + hdist) {
            s->error = "too many code lengths";
            return 0;
        }
        while (repeat--) lengths[i++] = value;
    }
    if (lengths[256] == 0) {
        s->error = "no end-of-block code";
        return 0;
    }
    if (!huff_build(&lit, lengths, (int)hlit) || !huff_build(&dist, lengths + hlit, (int)hdist)) {
        s->error = "bad literal or distance code";
        return 0;
    }
    return inflate_codes(s, &lit, &dist);
}

/* Inflates a raw DEFLATE stream; returns the output (malloc'd) or NULL. */
static uint8_t *inflate_raw(const uint8_t *in, size_t n, size_t *out_len, size_t *consumed, const char **error) {
    Inflater s;
    memset(&s, 0, sizeof s);
    s.in = in;
    s.n = n;
    uint32_t last = 0;
    while (!last && !s.error) {
        uint32_t type;
        if (!inf_bits(&s, 1, &last) || !inf_bits(&s, 2, &type)) break;
        if (type == 0) {
            inflate_stored(&s);
        } else if (type == 1) {
            HuffTable lit, dist;
            fixed_tables(&lit, &dist);
            inflate_codes(&s, &lit, &dist);
        } else if (type == 2) {
            inflate_dynamic(&s);
        } else {
            s.error = "invalid block type";
        }
    }
    if (error) *error = s.error;
    if (s.error) {
        free(s.out);
        return NULL;
    }
    *out_len = s.out_len;
    if (consumed) *consumed = s.pos;
    return s.out ? s.out : calloc(1, 1);
}

/* zlib: CMF/FLG header, raw deflate, big-endian Adler-32 trailer. */
static uint8_t *zlib_decompress(const uint8_t *in, size_t n, size_t *out_len, const char **error) {
    if (n < 6 || (in[0] & 15) != 8 || (in[0] >> 4) > 7 || ((unsigned)in[0] << 8 | in[1]) % 31 != 0 ||
        (in[1] & 0x20)) {
        *error = "bad zlib header";
        return NULL;
    }
    size_t used;
    uint8_t *out = inflate_raw(in + 2, n - 2, out_len, &used, error);
    if (!out) return NULL;
    if (2 + used + 4 > n) {
        *error = "missing adler-32";
        free(out);
        return NULL;
    }
    const uint8_t *t = in + 2 + used;
    uint32_t want = (uint32_t)t[0] << 24 | (uint32_t)t[1] << 16 | (uint32_t)t[2] << 8 | t[3];
    if (adler32(out, *out_len) != want) {
        *error = "adler-32 mismatch";
        free(out);
        return NULL;
    }
    return out;
}

/* Deflater: fixed Huffman codes, written LSB-first with codes bit-reversed. */
typedef struct {
    uint8_t *buf;
    size_t len, cap;
    uint32_t bitbuf;
    int bitcount;
} DeflateOut;

static void dfl_bits(DeflateOut *o, uint32_t value, int n) {
    o->bitbuf |= value << o->bitcount;
    o->bitcount += n;
    while (o->bitcount >= 8) {
        if (o->len == o->cap) {
            o->cap = o->cap ? o->cap * 2 : 256;
            o->buf = realloc(o->buf, o->cap);
        }
        o->buf[o->len++] = (uint8_t)o->bitbuf;
        o->bitbuf >>= 8;
        o->bitcount -= 8;
    }
}

static uint32_t reverse_bits(uint32_t v, int n) {
    uint32_t r = 0;
    for (int i = 0; i < n; i++) r |= ((v >> i) & 1) << (n - 1 - i);
    return r;
}

static void dfl_fixed_symbol(DeflateOut *o, int sym) {
    if (sym < 144)
        dfl_bits(o, reverse_bits(0x30 + (uint32_t)sym, 8), 8);
    else if (sym < 256)
        dfl_bits(o, reverse_bits(0x190 + (uint32_t)(sym - 144), 9), 9);
    else if (sym < 280)
        dfl_bits(o, reverse_bits((uint32_t)(sym - 256), 7), 7);
    else
        dfl_bits(o, reverse_bits(0xc0 + (uint32_t)(sym - 280), 8), 8);
}

static int table_index(const uint16_t *base, int n, unsigned value) {
    int i = n - 1;
    while (i > 0 && base[i] > value) i--;
    return i;
}

static void dfl_match(DeflateOut *o, unsigned len, unsigned dist) {
    int li = len == 258 ? 28 : table_index(len_base, 28, len);
    dfl_fixed_symbol(o, 257 + li);
    dfl_bits(o, len - len_base[li], len_extra[li]);
    int di = table_index(dist_base, 30, dist);
    dfl_bits(o, reverse_bits((uint32_t)di, 5), 5);
    dfl_bits(o, dist - dist_base[di], dist_extra[di]);
}

static uint8_t *zlib_compress_fixed(const uint8_t *in, size_t n, size_t *out_len) {
    DeflateOut o = {0};
    dfl_bits(&o, 0x78, 8);
    dfl_bits(&o, 0x01, 8); /* 0x7801 % 31 == 0: fastest-level zlib header */
    dfl_bits(&o, 1, 1);    /* final block */
    dfl_bits(&o, 1, 2);    /* fixed codes */
    enum { HBITS = 13, WINDOW = 32768 };
    int *head = malloc(sizeof(int) << HBITS), *prev = malloc(sizeof(int) * (n ? n : 1));
    for (int i = 0; i < 1 << HBITS; i++) head[i] = -1;
    size_t i = 0;
    while (i < n) {
        unsigned best = 0, best_dist = 0;
        if (i + 3 <= n) {
            uint32_t hsh = ((uint32_t)in[i] << 10 ^ (uint32_t)in[i + 1] << 5 ^ in[i + 2]) & ((1u << HBITS) - 1);
            for (int cand = head[hsh], chain = 64; cand >= 0 && i - (size_t)cand <= WINDOW && chain; chain--) {
                unsigned len = 0;
                while (i + len < n && len < 258 && in[(size_t)cand + len] == in[i + len]) len++;
                if (len > best) {
                    best = len;
                    best_dist = (unsigned)(i - (size_t)cand);
                }
                cand = prev[cand];
            }
            prev[i] = head[hsh];
            head[hsh] = (int)i;
        }
        if (best >= 3) {
            dfl_match(&o, best, best_dist);
            for (size_t k = i + 1; k < i + best && k + 3 <= n; k++) {
                uint32_t hk = ((uint32_t)in[k] << 10 ^ (uint32_t)in[k + 1] << 5 ^ in[k + 2]) & ((1u << HBITS) - 1);
                prev[k] = head[hk];
                head[hk] = (int)k;
            }
            i += best;
        } else {
            dfl_fixed_symbol(&o, in[i++]);
        }
    }
    dfl_fixed_symbol(&o, 256);
    if (o.bitcount) dfl_bits(&o, 0, 8 - o.bitcount);
    uint32_t a = adler32(in, n);
    for (int k = 3; k >= 0; k--) dfl_bits(&o, (a >> (8 * k)) & 0xff, 8);
    free(head);
    free(prev);
    *out_len = o.len;
    return o.buf;
}

static int unhex(const char *hex, uint8_t *out, size_t cap) {
    size_t n = strlen(hex) / 2;
    if (n > cap) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) return -1;
        out[i] = (uint8_t)v;
    }
    return (int)n;
}

static uint32_t test_inflate(void) {
    /* A dynamic-Huffman stream from zlib level 9. */
    static const char stream_hex[] =
        "78dab58db10dc330100357e102f102a952640217a96589881e965f865eb2e1edf3c80eae481c4970ce3514b4a1860f97"
        "9719b7a55cd86a1a858660f83652d17363483661be7df03ed82e885a0f1a892287d7aa42bacba9701ed7879dd2636642"
        "acad8e2ecaa7db6d97f26789f034ae7ea0e05e637638b4b34d3fae6e5997";
    uint8_t stream[200];
    int sn = unhex(stream_hex, stream, sizeof stream);
    size_t n;
    const char *err = NULL;
    uint8_t *text = zlib_decompress(stream, (size_t)sn, &n, &err);
    check(text && n == 243 && adler32(text, n) == 2926467479u && crc32_update(0, text, n) == 839603170u,
          "inflate dynamic");
    uint32_t h = text ? crc32_update(0, text, n) : 0;

    size_t cn = 0, dn = 0;
    uint8_t *packed = text ? zlib_compress_fixed(text, n, &cn) : NULL;
    uint8_t *again = packed ? zlib_decompress(packed, cn, &dn, &err) : NULL;
    check(again && dn == n && memcmp(again, text, n) == 0, "deflate fixed roundtrip");
    check(packed && cn < n, "deflate compresses");
    h = h * 31 + (uint32_t)cn;
    free(again);

    /* A longer input with long matches and far distances. */
    size_t big_n = 60000;
    uint8_t *big = malloc(big_n);
    Rng r;
    rng_seed(&r, 1234);
    for (size_t i = 0; i < big_n; i++) {
        if (i >= 1002 && rng_below(&r, 4))
            big[i] = big[i - 1000 - rng_below(&r, 3)]; /* mostly copies from 1000 back */
        else
            big[i] = (uint8_t)('a' + rng_below(&r, 20));
    }
    size_t big_cn;
    uint8_t *bp = zlib_compress_fixed(big, big_n, &big_cn);
    uint8_t *bb = zlib_decompress(bp, big_cn, &dn, &err);
    check(bb && dn == big_n && memcmp(bb, big, big_n) == 0, "deflate large roundtrip");
    h = h * 31 + (uint32_t)big_cn;
    free(big);
    free(bp);
    free(bb);

    /* A stored block, and malformed inputs. */
    static const uint8_t stored[] = {0x01, 0x05, 0x00, 0xfa, 0xff, 'h', 'e', 'l', 'l', 'o'};
    uint8_t *out = inflate_raw(stored, sizeof stored, &dn, NULL, &err);
    check(out && dn == 5 && memcmp(out, "hello", 5) == 0, "inflate stored");
    free(out);
    static const uint8_t bad_len[] = {0x01, 0x05, 0x00, 0xfb, 0xff, 'h', 'e', 'l', 'l', 'o'};
    check(!inflate_raw(bad_len, sizeof bad_len, &dn, NULL, &err) && err, "inflate bad nlen");
    static const uint8_t bad_type[] = {0x07, 0x00};
    check(!inflate_raw(bad_type, sizeof bad_type, &dn, NULL, &err) && err, "inflate bad type");
    if (packed) {
        packed[cn - 1] ^= 0xff;
        check(!zlib_decompress(packed, cn, &dn, &err) && strcmp(err, "adler-32 mismatch") == 0, "zlib checksum");
        packed[cn - 1] ^= 0xff;
        check(!zlib_decompress(packed, cn / 2, &dn, &err), "zlib truncated");
    }
    free(packed);
    free(text);
    return h;
}

/* ------------------------------------------------------------------------ */
/* A small Lisp: reader, printer, environments, special forms (quote if      */
/* define set! lambda let begin cond and or), tail calls, primitives, and a  */
/* mark-and-sweep garbage collector over a fixed cell pool                   */
/* ------------------------------------------------------------------------ */

typedef enum { L_NIL, L_INT, L_SYM, L_CONS, L_PRIM, L_LAMBDA, L_TRUE, L_STR } LispTag;

typedef struct LispCell LispCell;
typedef struct LispVm LispVm;
typedef LispCell *(*LispPrim)(LispVm *, LispCell *args);

struct LispCell {
    LispTag tag;
    unsigned char marked;
    union {
        long long num;
        const char *sym; /* interned */
        struct {
            LispCell *car, *cdr;
        } pair;
        struct {
            LispPrim fn;
            const char *name;
        } prim;
        struct {
            LispCell *params, *body, *env;
        } lambda;
        char *str; /* owned */
    } u;
    LispCell *next_free;
};

struct LispVm {
    LispCell *pool;
    int pool_size;
    LispCell *free_list;
    int live;
    LispCell nil_cell, true_cell;
    LispCell *global_env;
    LispCell **roots[64];
    int nroots;
    LispCell *protect[8192]; /* temporaries held during evaluation */
    int nprotect;
    char *symbols[512];
    int nsymbols;
    char error[96];
    int collections;
    long long steps;
};

#define LNIL (&vm->nil_cell)
#define LTRUE (&vm->true_cell)

static void lisp_fail(LispVm *vm, const char *msg, const char *detail) {
    if (!vm->error[0]) snprintf(vm->error, sizeof vm->error, "%s%s", msg, detail ? detail : "");
}

static void lisp_mark(LispCell *c) {
    while (c && !c->marked && c->tag != L_NIL && c->tag != L_TRUE) {
        c->marked = 1;
        switch (c->tag) {
        case L_CONS:
            lisp_mark(c->u.pair.car);
            c = c->u.pair.cdr;
            break;
        case L_LAMBDA:
            lisp_mark(c->u.lambda.params);
            lisp_mark(c->u.lambda.body);
            c = c->u.lambda.env;
            break;
        default:
            return;
        }
    }
}

static void lisp_gc(LispVm *vm) {
    lisp_mark(vm->global_env);
    for (int i = 0; i < vm->nroots; i++) lisp_mark(*vm->roots[i]);
    for (int i = 0; i < vm->nprotect; i++) lisp_mark(vm->protect[i]);
    vm->free_list = NULL;
    vm->live = 0;
    for (int i = vm->pool_size - 1; i >= 0; i--) {
        LispCell *c = &vm->pool[i];
        if (c->marked) {
            c->marked = 0;
            vm->live++;
        } else {
            if (c->tag == L_STR) free(c->u.str);
            c->tag = L_NIL;
            c->next_free = vm->free_list;
            vm->free_list = c;
        }
    }
    vm->collections++;
}

static LispCell *lisp_alloc(LispVm *vm, LispTag tag) {
    if (!vm->free_list) lisp_gc(vm);
    if (!vm->free_list) {
        lisp_fail(vm, "out of cells", NULL);
        return LNIL;
    }
    LispCell *c = vm->free_list;
    vm->free_list = c->next_free;
    c->tag = tag;
    c->marked = 0;
    return c;
}

static LispCell *lisp_push(LispVm *vm, LispCell *c) {
    if (vm->nprotect < 8192)
        vm->protect[vm->nprotect++] = c;
    else
        lisp_fail(vm, "protect stack overflow", NULL);
    return c;
}

static void lisp_pop(LispVm *vm, int n) { vm->nprotect -= n; }

static LispCell *lisp_int(LispVm *vm, long long v) {
    LispCell *c = lisp_alloc(vm, L_INT);
    c->u.num = v;
    return c;
}

static LispCell *lisp_cons(LispVm *vm, LispCell *car, LispCell *cdr) {
    lisp_push(vm, car);
    lisp_push(vm, cdr);
    LispCell *c = lisp_alloc(vm, L_CONS);
    lisp_pop(vm, 2);
    c->u.pair.car = car;
    c->u.pair.cdr = cdr;
    return c;
}

static const char *lisp_intern(LispVm *vm, const char *name, size_t n) {
    for (int i = 0; i < vm->nsymbols; i++)
        if (strlen(vm->symbols[i]) == n && memcmp(vm->symbols[i], name, n) == 0) return vm->symbols[i];
    if (vm->nsymbols == 512) {
        lisp_fail(vm, "too many symbols", NULL);
        return "";
    }
    char *s = malloc(n + 1);
    memcpy(s, name, n);
    s[n] = 0;
    vm->symbols[vm->nsymbols++] = s;
    return s;
}

static LispCell *lisp_sym(LispVm *vm, const char *name) {
    LispCell *c = lisp_alloc(vm, L_SYM);
    c->u.sym = lisp_intern(vm, name, strlen(name));
    return c;
}

static LispCell *car(LispCell *c) { return c->tag == L_CONS ? c->u.pair.car : c; }
static LispCell *cdr(LispCell *c) { return c->tag == L_CONS ? c->u.pair.cdr : c; }

/* Reader */
typedef struct {
    const char *p;
} LispReader;

static void lisp_skip(LispReader *r) {
    for (;;) {
        while (*r->p == ' ' || *r->p == '\n' || *r->p == '\t' || *r->p == '\r') r->p++;
        if (*r->p != ';') return;
        while (*r->p && *r->p != '\n') r->p++;
    }
}

static LispCell *lisp_read(LispVm *vm, LispReader *r);

static LispCell *lisp_read_list(LispVm *vm, LispReader *r) {
    lisp_skip(r);
    if (*r->p == ')') {
        r->p++;
        return LNIL;
    }
    if (!*r->p) {
        lisp_fail(vm, "unterminated list", NULL);
        return LNIL;
    }
    if (r->p[0] == '.' && (r->p[1] == ' ' || r->p[1] == '\n')) {
        r->p++;
        LispCell *tail = lisp_read(vm, r);
        lisp_skip(r);
        if (*r->p != ')') lisp_fail(vm, "expected ) after dotted tail", NULL);
        else r->p++;
        return tail;
    }
    LispCell *head = lisp_push(vm, lisp_read(vm, r));
    LispCell *rest = lisp_push(vm, lisp_read_list(vm, r));
    LispCell *c = lisp_cons(vm, head, rest);
    lisp_pop(vm, 2);
    return c;
}

static LispCell *lisp_read(LispVm *vm, LispReader *r) {
    lisp_skip(r);
    char c = *r->p;
    if (!c) {
        lisp_fail(vm, "unexpected end of input", NULL);
        return LNIL;
    }
    if (c == '(') {
        r->p++;
        return lisp_read_list(vm, r);
    }
    if (c == ')') {
        r->p++;
        lisp_fail(vm, "unexpected )", NULL);
        return LNIL;
    }
    if (c == '\'') {
        r->p++;
        LispCell *quoted = lisp_push(vm, lisp_read(vm, r));
        LispCell *q = lisp_push(vm, lisp_sym(vm, "quote"));
        LispCell *inner = lisp_push(vm, lisp_cons(vm, quoted, LNIL));
        LispCell *form = lisp_cons(vm, q, inner);
        lisp_pop(vm, 3);
        return form;
    }
    if (c == '"') {
        const char *start = ++r->p;
        while (*r->p && *r->p != '"') r->p++;
        if (!*r->p) {
            lisp_fail(vm, "unterminated string", NULL);
            return LNIL;
        }
        LispCell *s = lisp_alloc(vm, L_STR);
        s->u.str = malloc((size_t)(r->p - start) + 1);
        memcpy(s->u.str, start, (size_t)(r->p - start));
        s->u.str[r->p - start] = 0;
        r->p++;
        return s;
    }
    const char *start = r->p;
    while (*r->p && !strchr(" \t\r\n()';\"", *r->p)) r->p++;
    size_t n = (size_t)(r->p - start);
    char *end;
    long long v = strtoll(start, &end, 10);
    if (end == r->p && n > 0 && !(n == 1 && (start[0] == '-' || start[0] == '+'))) return lisp_int(vm, v);
    if (n == 2 && start[0] == '#' && start[1] == 't') return LTRUE;
    if (n == 2 && start[0] == '#' && start[1] == 'f') return LNIL;
    LispCell *s = lisp_alloc(vm, L_SYM);
    s->u.sym = lisp_intern(vm, start, n);
    return s;
}

/* Printer */
static void lisp_print(LispCell *c, StrBuf *out) {
    switch (c->tag) {
    case L_NIL:
        sb_puts(out, "()");
        break;
    case L_TRUE:
        sb_puts(out, "#t");
        break;
    case L_INT:
        sb_put_int(out, c->u.num);
        break;
    case L_SYM:
        sb_puts(out, c->u.sym);
        break;
    case L_STR:
        sb_putc(out, '"');
        sb_puts(out, c->u.str);
        sb_putc(out, '"');
        break;
    case L_PRIM:
        sb_puts(out, "#<primitive ");
        sb_puts(out, c->u.prim.name);
        sb_putc(out, '>');
        break;
    case L_LAMBDA:
        sb_puts(out, "#<lambda>");
        break;
    case L_CONS:
        sb_putc(out, '(');
        for (;;) {
            lisp_print(c->u.pair.car, out);
            c = c->u.pair.cdr;
            if (c->tag != L_CONS) break;
            sb_putc(out, ' ');
        }
        if (c->tag != L_NIL) {
            sb_puts(out, " . ");
            lisp_print(c, out);
        }
        sb_putc(out, ')');
        break;
    }
}

/* Environments are lists of frames; a frame is a list of (symbol . value). */
static LispCell *lisp_lookup_binding(LispCell *env, const char *sym) {
    for (; env->tag == L_CONS; env = env->u.pair.cdr)
        for (LispCell *f = env->u.pair.car; f->tag == L_CONS; f = f->u.pair.cdr)
            if (f->u.pair.car->u.pair.car->u.sym == sym) return f->u.pair.car;
    return NULL;
}

static void lisp_define(LispVm *vm, LispCell *env, LispCell *sym, LispCell *value) {
    for (LispCell *f = env->u.pair.car; f->tag == L_CONS; f = f->u.pair.cdr)
        if (f->u.pair.car->u.pair.car->u.sym == sym->u.sym) {
            f->u.pair.car->u.pair.cdr = value;
            return;
        }
    lisp_push(vm, env);
    LispCell *binding = lisp_push(vm, lisp_cons(vm, sym, value));
    env->u.pair.car = lisp_cons(vm, binding, env->u.pair.car);
    lisp_pop(vm, 2);
}

static LispCell *lisp_eval(LispVm *vm, LispCell *expr, LispCell *env);

static LispCell *lisp_eval_list(LispVm *vm, LispCell *list, LispCell *env) {
    if (list->tag != L_CONS) return LNIL;
    LispCell *head = lisp_push(vm, lisp_eval(vm, list->u.pair.car, env));
    LispCell *rest = lisp_push(vm, lisp_eval_list(vm, list->u.pair.cdr, env));
    LispCell *c = lisp_cons(vm, head, rest);
    lisp_pop(vm, 2);
    return c;
}

/* Binds params to args in a new frame on top of `env`. */
static LispCell *lisp_bind(LispVm *vm, LispCell *params, LispCell *args, LispCell *env) {
    LispCell *frame = lisp_push(vm, LNIL);
    int pushed = 1;
    while (params->tag == L_CONS) {
        if (args->tag != L_CONS) {
            lisp_fail(vm, "too few arguments", NULL);
            break;
        }
        LispCell *b = lisp_push(vm, lisp_cons(vm, params->u.pair.car, args->u.pair.car));
        frame = lisp_push(vm, lisp_cons(vm, b, frame));
        pushed += 2;
        params = params->u.pair.cdr;
        args = args->u.pair.cdr;
    }
    if (params->tag == L_SYM) { /* rest parameter: (lambda (a . rest) ...) */
        LispCell *b = lisp_push(vm, lisp_cons(vm, params, args));
        frame = lisp_push(vm, lisp_cons(vm, b, frame));
        pushed += 2;
    } else if (args->tag == L_CONS) {
        lisp_fail(vm, "too many arguments", NULL);
    }
    LispCell *e = lisp_cons(vm, frame, env);
    lisp_pop(vm, pushed);
    return e;
}

static int lisp_is_sym(LispCell *c, const char *interned) { return c->tag == L_SYM && c->u.sym == interned; }

static LispCell *lisp_eval(LispVm *vm, LispCell *expr, LispCell *env) {
    int base = vm->nprotect;
    lisp_push(vm, expr);
    lisp_push(vm, env);
    LispCell *result = LNIL;
    for (;;) { /* loop instead of recursing on tail positions */
        if (vm->error[0]) break;
        if (++vm->steps > 5000000) {
            lisp_fail(vm, "step limit", NULL);
            break;
        }
        vm->protect[base] = expr;
        vm->protect[base + 1] = env;
        if (expr->tag == L_SYM) {
            LispCell *b = lisp_lookup_binding(env, expr->u.sym);
            if (!b) lisp_fail(vm, "unbound symbol: ", expr->u.sym);
            result = b ? b->u.pair.cdr : LNIL;
            break;
        }
        if (expr->tag != L_CONS) {
            result = expr;
            break;
        }
        LispCell *op = expr->u.pair.car, *args = expr->u.pair.cdr;
        if (op->tag == L_SYM) {
            const char *s = op->u.sym;
            if (s == lisp_intern(vm, "quote", 5)) {
                result = car(args);
                break;
            }
            if (s == lisp_intern(vm, "if", 2)) {
                LispCell *test = lisp_eval(vm, car(args), env);
                expr = test->tag != L_NIL ? car(cdr(args)) : car(cdr(cdr(args)));
                continue;
            }
            if (s == lisp_intern(vm, "define", 6)) {
                LispCell *target = car(args);
                if (target->tag == L_CONS) { /* (define (f . params) body...) */
                    LispCell *lam = lisp_alloc(vm, L_LAMBDA);
                    lam->u.lambda.params = target->u.pair.cdr;
                    lam->u.lambda.body = cdr(args);
                    lam->u.lambda.env = env;
                    lisp_define(vm, env, target->u.pair.car, lam);
                } else {
                    LispCell *v = lisp_push(vm, lisp_eval(vm, car(cdr(args)), env));
                    lisp_define(vm, env, target, v);
                    lisp_pop(vm, 1);
                }
                result = target->tag == L_CONS ? target->u.pair.car : target;
                break;
            }
            if (s == lisp_intern(vm, "set!", 4)) {
                LispCell *b = lisp_lookup_binding(env, car(args)->u.sym);
                if (!b) {
                    lisp_fail(vm, "set! of unbound symbol", NULL);
                    break;
                }
                result = lisp_eval(vm, car(cdr(args)), env);
                b->u.pair.cdr = result;
                break;
            }
            if (s == lisp_intern(vm, "lambda", 6)) {
                result = lisp_alloc(vm, L_LAMBDA);
                result->u.lambda.params = car(args);
                result->u.lambda.body = cdr(args);
                result->u.lambda.env = env;
                break;
            }
            if (s == lisp_intern(vm, "begin", 5)) {
                if (args->tag != L_CONS) break;
                while (cdr(args)->tag == L_CONS) {
                    lisp_eval(vm, car(args), env);
                    args = cdr(args);
                }
                expr = car(args);
                continue;
            }
            if (s == lisp_intern(vm, "let", 3)) { /* (let ((x 1) (y 2)) body...) */
                LispCell *names = lisp_push(vm, LNIL), *values = lisp_push(vm, LNIL);
                for (LispCell *b = car(args); b->tag == L_CONS; b = b->u.pair.cdr) {
                    names = vm->protect[vm->nprotect - 2] = lisp_cons(vm, car(car(b)), names);
                    LispCell *v = lisp_push(vm, lisp_eval(vm, car(cdr(car(b))), env));
                    values = lisp_cons(vm, v, values);
                    lisp_pop(vm, 1);
                    vm->protect[vm->nprotect - 1] = values;
                }
                env = lisp_bind(vm, names, values, env);
                lisp_pop(vm, 2);
                LispCell *body = cdr(args);
                while (cdr(body)->tag == L_CONS) {
                    lisp_eval(vm, car(body), env);
                    body = cdr(body);
                }
                expr = car(body);
                continue;
            }
            if (s == lisp_intern(vm, "cond", 4)) {
                LispCell *chosen = NULL;
                for (LispCell *cl = args; cl->tag == L_CONS; cl = cl->u.pair.cdr) {
                    LispCell *clause = cl->u.pair.car;
                    if (lisp_is_sym(car(clause), lisp_intern(vm, "else", 4)) ||
                        lisp_eval(vm, car(clause), env)->tag != L_NIL) {
                        chosen = cdr(clause);
                        break;
                    }
                }
                if (!chosen || chosen->tag != L_CONS) break;
                while (cdr(chosen)->tag == L_CONS) {
                    lisp_eval(vm, car(chosen), env);
                    chosen = cdr(chosen);
                }
                expr = car(chosen);
                continue;
            }
            if (s == lisp_intern(vm, "and", 3) || s == lisp_intern(vm, "or", 2)) {
                int is_and = s[0] == 'a';
                result = is_and ? LTRUE : LNIL;
                for (; args->tag == L_CONS; args = args->u.pair.cdr) {
                    result = lisp_eval(vm, args->u.pair.car, env);
                    if ((result->tag == L_NIL) == is_and) break;
                }
                break;
            }
        }
        LispCell *fn = lisp_push(vm, lisp_eval(vm, op, env));
        LispCell *argv = lisp_push(vm, lisp_eval_list(vm, args, env));
        if (vm->error[0]) break;
        if (fn->tag == L_PRIM) {
            result = fn->u.prim.fn(vm, argv);
            break;
        }
        if (fn->tag != L_LAMBDA) {
            lisp_fail(vm, "not a function", NULL);
            break;
        }
        env = lisp_bind(vm, fn->u.lambda.params, argv, fn->u.lambda.env);
        vm->nprotect = base + 2;
        LispCell *body = fn->u.lambda.body;
        vm->protect[base + 1] = env;
        lisp_push(vm, body);
        while (cdr(body)->tag == L_CONS) {
            lisp_eval(vm, car(body), env);
            body = cdr(body);
        }
        expr = car(body);
        vm->nprotect = base + 2;
    }
    vm->nprotect = base;
    return result;
}

/* Primitives */
static long long lisp_num(LispVm *vm, LispCell *c) {
    if (c->tag != L_INT) {
        lisp_fail(vm, "expected a number", NULL);
        return 0;
    }
    return c->u.num;
}

static LispCell *prim_add(LispVm *vm, LispCell *a) {
    long long s = 0;
    for (; a->tag == L_CONS; a = a->u.pair.cdr) s += lisp_num(vm, a->u.pair.car);
    return lisp_int(vm, s);
}

static LispCell *prim_mul(LispVm *vm, LispCell *a) {
    long long p = 1;
    for (; a->tag == L_CONS; a = a->u.pair.cdr) p *= lisp_num(vm, a->u.pair.car);
    return lisp_int(vm, p);
}

static LispCell *prim_sub(LispVm *vm, LispCell *a) {
    long long first = lisp_num(vm, car(a));
    if (cdr(a)->tag != L_CONS) return lisp_int(vm, -first);
    for (a = cdr(a); a->tag == L_CONS; a = a->u.pair.cdr) first -= lisp_num(vm, a->u.pair.car);
    return lisp_int(vm, first);
}

static LispCell *prim_quotient(LispVm *vm, LispCell *a) {
    long long x = lisp_num(vm, car(a)), y = lisp_num(vm, car(cdr(a)));
    if (y == 0) {
        lisp_fail(vm, "division by zero", NULL);
        return LNIL;
    }
    return lisp_int(vm, x / y);
}

static LispCell *prim_remainder(LispVm *vm, LispCell *a) {
    long long x = lisp_num(vm, car(a)), y = lisp_num(vm, car(cdr(a)));
    if (y == 0) {
        lisp_fail(vm, "division by zero", NULL);
        return LNIL;
    }
    return lisp_int(vm, x % y);
}

/* Chained numeric comparison: (< a b c) means a < b < c. */
static LispCell *lisp_compare(LispVm *vm, LispCell *a, int (*ok)(long long, long long)) {
    for (; cdr(a)->tag == L_CONS; a = cdr(a))
        if (!ok(lisp_num(vm, car(a)), lisp_num(vm, car(cdr(a))))) return LNIL;
    return LTRUE;
}

static int cmp_lt(long long x, long long y) { return x < y; }
static int cmp_gt(long long x, long long y) { return x > y; }
static int cmp_eq(long long x, long long y) { return x == y; }
static int cmp_le(long long x, long long y) { return x <= y; }

static LispCell *prim_lt(LispVm *vm, LispCell *a) { return lisp_compare(vm, a, cmp_lt); }
static LispCell *prim_gt(LispVm *vm, LispCell *a) { return lisp_compare(vm, a, cmp_gt); }
static LispCell *prim_numeq(LispVm *vm, LispCell *a) { return lisp_compare(vm, a, cmp_eq); }
static LispCell *prim_le(LispVm *vm, LispCell *a) { return lisp_compare(vm, a, cmp_le); }

static LispCell *prim_cons(LispVm *vm, LispCell *a) { return lisp_cons(vm, car(a), car(cdr(a))); }

static LispCell *prim_car(LispVm *vm, LispCell *a) {
    if (car(a)->tag != L_CONS) {
        lisp_fail(vm, "car of non-pair", NULL);
        return LNIL;
    }
    return car(a)->u.pair.car;
}

static LispCell *prim_cdr(LispVm *vm, LispCell *a) {
    if (car(a)->tag != L_CONS) {
        lisp_fail(vm, "cdr of non-pair", NULL);
        return LNIL;
    }
    return car(a)->u.pair.cdr;
}

static LispCell *prim_list(LispVm *vm, LispCell *a) {
    (void)vm;
    return a;
}

static LispCell *prim_nullp(LispVm *vm, LispCell *a) { return car(a)->tag == L_NIL ? LTRUE : LNIL; }
static LispCell *prim_pairp(LispVm *vm, LispCell *a) { return car(a)->tag == L_CONS ? LTRUE : LNIL; }

static int lisp_equal(LispCell *x, LispCell *y) {
    while (x->tag == L_CONS && y->tag == L_CONS) {
        if (!lisp_equal(x->u.pair.car, y->u.pair.car)) return 0;
        x = x->u.pair.cdr;
        y = y->u.pair.cdr;
    }
    if (x->tag != y->tag) return 0;
    switch (x->tag) {
    case L_INT:
        return x->u.num == y->u.num;
    case L_SYM:
        return x->u.sym == y->u.sym;
    case L_STR:
        return strcmp(x->u.str, y->u.str) == 0;
    case L_NIL:
    case L_TRUE:
        return 1;
    default:
        return x == y;
    }
}

static LispCell *prim_equalp(LispVm *vm, LispCell *a) { return lisp_equal(car(a), car(cdr(a))) ? LTRUE : LNIL; }

static LispCell *prim_length(LispVm *vm, LispCell *a) {
    long long n = 0;
    for (LispCell *l = car(a); l->tag == L_CONS; l = l->u.pair.cdr) n++;
    return lisp_int(vm, n);
}

static LispCell *prim_gc(LispVm *vm, LispCell *a) {
    (void)a;
    lisp_gc(vm);
    return lisp_int(vm, vm->live);
}

static LispVm *lisp_new(int cells) {
    LispVm *vm = calloc(1, sizeof(LispVm));
    vm->pool = calloc((size_t)cells, sizeof(LispCell));
    vm->pool_size = cells;
    for (int i = cells - 1; i >= 0; i--) {
        vm->pool[i].next_free = vm->free_list;
        vm->free_list = &vm->pool[i];
    }
    vm->nil_cell.tag = L_NIL;
    vm->true_cell.tag = L_TRUE;
    vm->global_env = LNIL;
    vm->global_env = lisp_cons(vm, LNIL, LNIL);
    static const struct {
        const char *name;
        LispPrim fn;
    } prims[] = {{"+", prim_add},         {"-", prim_sub},         {"*", prim_mul},        {"quotient", prim_quotient},
                 {"remainder", prim_remainder}, {"<", prim_lt},    {">", prim_gt},         {"=", prim_numeq},
                 {"<=", prim_le},         {"cons", prim_cons},     {"car", prim_car},      {"cdr", prim_cdr},
                 {"list", prim_list},     {"null?", prim_nullp},   {"pair?", prim_pairp},  {"equal?", prim_equalp},
                 {"length", prim_length}, {"gc", prim_gc}};
    for (size_t i = 0; i < sizeof prims / sizeof prims[0]; i++) {
        LispCell *p = lisp_push(vm, lisp_alloc(vm, L_PRIM));
        p->u.prim.fn = prims[i].fn;
        p->u.prim.name = prims[i].name;
        LispCell *sym = lisp_push(vm, lisp_sym(vm, prims[i].name));
        lisp_define(vm, vm->global_env, sym, p);
        lisp_pop(vm, 2);
    }
    return vm;
}

static void lisp_free(LispVm *vm) {
    for (int i = 0; i < vm->pool_size; i++)
        if (vm->pool[i].tag == L_STR) free(vm->pool[i].u.str);
    for (int i = 0; i < vm->nsymbols; i++) free(vm->symbols[i]);
    free(vm->pool);
    free(vm);
}

/* Evaluates every form of `src`; prints the last value into `out`. */
static int lisp_run(LispVm *vm, const char *src, StrBuf *out) {
    LispReader r = {src};
    LispCell *last = LNIL;
    vm->roots[vm->nroots++] = &last;
    for (;;) {
        lisp_skip(&r);
        if (!*r.p || vm->error[0]) break;
        LispCell *form = lisp_push(vm, lisp_read(vm, &r));
        if (vm->error[0]) break;
        last = lisp_eval(vm, form, vm->global_env);
        lisp_pop(vm, 1);
    }
    vm->nprotect = 0;
    if (!vm->error[0]) lisp_print(last, out);
    vm->nroots--;
    return vm->error[0] == 0;
}

static uint32_t test_lisp(void) {
    static const struct {
        const char *src, *want;
    } cases[] = {
        {"(+ 1 2 (* 3 4))", "15"},
        {"(define (fact n) (if (< n 2) 1 (* n (fact (- n 1))))) (fact 20)", "2432902008176640000"},
        {"(define (fib n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2))))) (fib 18)", "2584"},
        {"(define (map f l) (if (null? l) '() (cons (f (car l)) (map f (cdr l)))))"
         "(map (lambda (x) (* x x)) '(1 2 3 4 5))",
         "(1 4 9 16 25)"},
        {"(define (loop i acc) (if (= i 0) acc (loop (- i 1) (+ acc i)))) (loop 100000 0)", "5000050000"},
        {"(let ((x 2) (y 3)) (let ((x 7) (z (+ x y))) (* z x)))", "35"},
        {"(define counter 0) (define (bump!) (set! counter (+ counter 1)) counter) (bump!) (bump!) (bump!)", "3"},
        {"(define (make-adder n) (lambda (x) (+ x n))) ((make-adder 10) 32)", "42"},
        {"(cond ((> 1 2) 'no) ((= 1 1) 'yes) (else 'never))", "yes"},
        {"(and 1 2 '()) ", "()"},
        {"(or '() 7)", "7"},
        {"(define (rev l acc) (if (null? l) acc (rev (cdr l) (cons (car l) acc)))) (rev '(1 (2 3) \"s\" x) '())",
         "(x \"s\" (2 3) 1)"},
        {"(define (range a b) (if (< a b) (cons a (range (+ a 1) b)) '())) (length (range 0 500))", "500"},
        {"(define (f . args) args) (f 1 2 3)", "(1 2 3)"},
        {"(cons 1 2)", "(1 . 2)"},
        {"(equal? '(1 (2 #t)) (list 1 (list 2 #t)))", "#t"},
        {"(begin (define x 5) (set! x (* x x)) x)", "25"},
        {"(define (qs l) (if (null? l) l (let ((p (car l)) (rest (cdr l)))"
         " (append3 (qs (filter (lambda (x) (< x p)) rest)) (list p) (qs (filter (lambda (x) (not (< x p))) rest))))))"
         "(define (filter f l) (cond ((null? l) l) ((f (car l)) (cons (car l) (filter f (cdr l)))) (else (filter f (cdr l)))))"
         "(define (not x) (if x '() #t))"
         "(define (append2 a b) (if (null? a) b (cons (car a) (append2 (cdr a) b))))"
         "(define (append3 a b c) (append2 a (append2 b c)))"
         "(qs '(3 1 4 1 5 9 2 6 5 3 5))",
         "(1 1 2 3 3 4 5 5 5 6 9)"},
    };
    uint32_t h = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        LispVm *vm = lisp_new(4000);
        StrBuf out = {0};
        int ok = lisp_run(vm, cases[i].src, &out);
        int good = ok && out.buf && strcmp(out.buf, cases[i].want) == 0;
        if (!good) printf("  lisp case %zu: %s -> %s\n", i, vm->error, out.buf ? out.buf : "");
        check(good, "lisp case");
        h = h * 31 + fnv1a32(out.buf ? out.buf : "", out.len) + (uint32_t)vm->collections;
        sb_free(&out);
        lisp_free(vm);
    }
    static const char *const errors[] = {"(car 5)", "(undefined-thing 1)", "(1 2 3)", "(quotient 1 0)",
                                         "((lambda (x) x))", "(+ 1", ")", "(define (inf n) (inf n)) (inf 1)"};
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++) {
        LispVm *vm = lisp_new(2000);
        StrBuf out = {0};
        check(!lisp_run(vm, errors[i], &out), errors[i]);
        h = h * 31 + fnv1a32(vm->error, strlen(vm->error));
        sb_free(&out);
        lisp_free(vm);
    }
    return h;
}

/* ------------------------------------------------------------------------ */
/* Search and dynamic programming: sudoku (bitmask backtracking), N-queens,  */
/* 0/1 knapsack, longest increasing subsequence, matrix-chain order, coin    */
/* change, word break, Held-Karp TSP, Game of Life, edit script alignment    */
/* ------------------------------------------------------------------------ */

typedef struct {
    uint8_t cell[81];
    uint16_t row[9], col[9], box[9]; /* bit d set: digit d+1 used */
    long nodes;
} Sudoku;

static int sudoku_box(int r, int c) { return (r / 3) * 3 + c / 3; }

static int sudoku_load(Sudoku *s, const char *grid) {
    memset(s, 0, sizeof *s);
    for (int i = 0; i < 81; i++) {
        char ch = grid[i];
        if (!ch) return 0;
        if (ch == '.' || ch == '0') continue;
        if (ch < '1' || ch > '9') return 0;
        int d = ch - '1', r = i / 9, c = i % 9, b = sudoku_box(r, c);
        uint16_t bit = (uint16_t)(1u << d);
        if ((s->row[r] | s->col[c] | s->box[b]) & bit) return 0;
        s->cell[i] = (uint8_t)(d + 1);
        s->row[r] |= bit;
        s->col[c] |= bit;
        s->box[b] |= bit;
    }
    return 1;
}

static int popcount16(unsigned v) {
    int n = 0;
    for (; v; v &= v - 1) n++;
    return n;
}

/* Picks the empty cell with the fewest candidates (most constrained first). */
static int sudoku_solve(Sudoku *s) {
    int best = -1, best_count = 10;
    uint16_t best_mask = 0;
    for (int i = 0; i < 81; i++) {
        if (s->cell[i]) continue;
        int r = i / 9, c = i % 9;
        uint16_t free_mask = (uint16_t)(~(s->row[r] | s->col[c] | s->box[sudoku_box(r, c)]) & 0x1ff);
        int count = popcount16(free_mask);
        if (count < best_count) {
            best = i;
            best_count = count;
            best_mask = free_mask;
            if (count <= 1) break;
        }
    }
    if (best < 0) return 1;
    int r = best / 9, c = best % 9, b = sudoku_box(r, c);
    for (int d = 0; d < 9; d++) {
        uint16_t bit = (uint16_t)(1u << d);
        if (!(best_mask & bit)) continue;
        s->nodes++;
        s->cell[best] = (uint8_t)(d + 1);
        s->row[r] |= bit;
        s->col[c] |= bit;
        s->box[b] |= bit;
        if (sudoku_solve(s)) return 1;
        s->row[r] &= (uint16_t)~bit;
        s->col[c] &= (uint16_t)~bit;
        s->box[b] &= (uint16_t)~bit;
    }
    s->cell[best] = 0;
    return 0;
}

static int sudoku_valid(const Sudoku *s) {
    for (int unit = 0; unit < 9; unit++) {
        uint16_t rm = 0, cm = 0, bm = 0;
        for (int k = 0; k < 9; k++) {
            int bi = (unit / 3) * 27 + (unit % 3) * 3 + (k / 3) * 9 + k % 3;
            rm |= (uint16_t)(1u << (s->cell[unit * 9 + k] - 1));
            cm |= (uint16_t)(1u << (s->cell[k * 9 + unit] - 1));
            bm |= (uint16_t)(1u << (s->cell[bi] - 1));
        }
        if (rm != 0x1ff || cm != 0x1ff || bm != 0x1ff) return 0;
    }
    return 1;
}

/* N-queens: counts solutions with bitmasks of attacked columns/diagonals. */
static long queens_count(int n, unsigned cols, unsigned diag1, unsigned diag2, int row) {
    if (row == n) return 1;
    long total = 0;
    unsigned avail = ~(cols | diag1 | diag2) & ((1u << n) - 1);
    while (avail) {
        unsigned bit = avail & (0u - avail);
        avail ^= bit;
        total += queens_count(n, cols | bit, (diag1 | bit) << 1, (diag2 | bit) >> 1, row + 1);
    }
    return total;
}

/* 0/1 knapsack with item reconstruction. */
static int knapsack(const int *weight, const int *value, int n, int capacity, int *chosen) {
    int *best = calloc((size_t)(n + 1) * (size_t)(capacity + 1), sizeof(int));
#define KS(i, w) best[(size_t)(i) * (size_t)(capacity + 1) + (size_t)(w)]
    for (int i = 1; i <= n; i++)
        for (int w = 0; w <= capacity; w++) {
            KS(i, w) = KS(i - 1, w);
            if (weight[i - 1] <= w && KS(i - 1, w - weight[i - 1]) + value[i - 1] > KS(i, w))
                KS(i, w) = KS(i - 1, w - weight[i - 1]) + value[i - 1];
        }
    int result = KS(n, capacity);
    for (int i = n, w = capacity; i > 0; i--) {
        chosen[i - 1] = KS(i, w) != KS(i - 1, w);
        if (chosen[i - 1]) w -= weight[i - 1];
    }
#undef KS
    free(best);
    return result;
}

/* Longest strictly increasing subsequence in O(n log n), with the sequence. */
static int lis(const int *a, int n, int *out) {
    int *tail_idx = malloc((size_t)n * sizeof(int)), *prev = malloc((size_t)n * sizeof(int));
    int len = 0;
    for (int i = 0; i < n; i++) {
        int lo = 0, hi = len;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (a[tail_idx[mid]] < a[i])
                lo = mid + 1;
            else
                hi = mid;
        }
        prev[i] = lo > 0 ? tail_idx[lo - 1] : -1;
        tail_idx[lo] = i;
        if (lo == len) len++;
    }
    for (int k = len - 1, i = len ? tail_idx[len - 1] : -1; k >= 0; k--, i = prev[i]) out[k] = a[i];
    free(tail_idx);
    free(prev);
    return len;
}

/* Matrix-chain multiplication order; writes the parenthesisation. */
static void chain_paren(const int *split, int n, int i, int j, StrBuf *out) {
    if (i == j) {
        sb_putc(out, (char)('A' + i));
        return;
    }
    sb_putc(out, '(');
    chain_paren(split, n, i, split[i * n + j], out);
    chain_paren(split, n, split[i * n + j] + 1, j, out);
    sb_putc(out, ')');
}

static long long matrix_chain(const int *dims, int n, StrBuf *order) {
    long long *cost = calloc((size_t)(n * n), sizeof(long long));
    int *split = calloc((size_t)(n * n), sizeof(int));
    for (int len = 2; len <= n; len++)
        for (int i = 0; i + len - 1 < n; i++) {
            int j = i + len - 1;
            cost[i * n + j] = LLONG_MAX;
            for (int k = i; k < j; k++) {
                long long c = cost[i * n + k] + cost[(k + 1) * n + j] + (long long)dims[i] * dims[k + 1] * dims[j + 1];
                if (c < cost[i * n + j]) {
                    cost[i * n + j] = c;
                    split[i * n + j] = k;
                }
            }
        }
    chain_paren(split, n, 0, n - 1, order);
    long long best = cost[n - 1];
    free(cost);
    free(split);
    return best;
}

/* Number of ways, and the fewest coins, to make `amount`. */
static void coin_change(const int *coins, int ncoins, int amount, long long *ways, int *fewest) {
    long long *w = calloc((size_t)amount + 1, sizeof(long long));
    int *f = malloc(((size_t)amount + 1) * sizeof(int));
    w[0] = 1;
    f[0] = 0;
    for (int a = 1; a <= amount; a++) f[a] = INT_MAX;
    for (int c = 0; c < ncoins; c++)
        for (int a = coins[c]; a <= amount; a++) {
            w[a] += w[a - coins[c]];
            if (f[a - coins[c]] != INT_MAX && f[a - coins[c]] + 1 < f[a]) f[a] = f[a - coins[c]] + 1;
        }
    *ways = w[amount];
    *fewest = f[amount] == INT_MAX ? -1 : f[amount];
    free(w);
    free(f);
}

/* Word break: can `s` be split into dictionary words; returns one split. */
static int word_break(const char *s, const char *const *dict, int ndict, StrBuf *out) {
    size_t n = strlen(s);
    int *from = malloc((n + 1) * sizeof(int)); /* from[i]: start of the last word ending at i, or -1 */
    for (size_t i = 0; i <= n; i++) from[i] = -1;
    from[0] = 0;
    for (size_t i = 0; i < n; i++) {
        if (from[i] < 0) continue;
        for (int d = 0; d < ndict; d++) {
            size_t len = strlen(dict[d]);
            if (i + len <= n && from[i + len] < 0 && strncmp(s + i, dict[d], len) == 0) from[i + len] = (int)i;
        }
    }
    int ok = from[n] >= 0;
    if (ok) {
        size_t cuts[256];
        int ncuts = 0;
        for (size_t end = n; end > 0 && ncuts < 256; end = (size_t)from[end]) cuts[ncuts++] = end;
        size_t start = 0;
        for (int k = ncuts - 1; k >= 0; k--) {
            if (start) sb_putc(out, ' ');
            sb_putn(out, s + start, cuts[k] - start);
            start = cuts[k];
        }
    }
    free(from);
    return ok;
}

/* Held-Karp dynamic programming for the travelling salesman (n <= 16). */
static int tsp_held_karp(const int *dist, int n, int *tour) {
    size_t states = (size_t)1 << n;
    int *dp = malloc(states * (size_t)n * sizeof(int));
    signed char *parent = malloc(states * (size_t)n);
    for (size_t i = 0; i < states * (size_t)n; i++) dp[i] = INT_MAX / 2;
    dp[1 * (size_t)n + 0] = 0;
    for (size_t mask = 1; mask < states; mask += 2) /* tours start at city 0 */
        for (int last = 0; last < n; last++) {
            int cur = dp[mask * (size_t)n + (size_t)last];
            if (!(mask >> last & 1) || cur >= INT_MAX / 2) continue;
            for (int next = 1; next < n; next++) {
                if (mask >> next & 1) continue;
                size_t nm = mask | (size_t)1 << next;
                int cand = cur + dist[last * n + next];
                if (cand < dp[nm * (size_t)n + (size_t)next]) {
                    dp[nm * (size_t)n + (size_t)next] = cand;
                    parent[nm * (size_t)n + (size_t)next] = (signed char)last;
                }
            }
        }
    size_t full = states - 1;
    int best = INT_MAX, last = 0;
    for (int k = 1; k < n; k++) {
        int c = dp[full * (size_t)n + (size_t)k] + dist[k * n];
        if (c < best) {
            best = c;
            last = k;
        }
    }
    for (int pos = n - 1; pos > 0; pos--) {
        tour[pos] = last;
        int p = parent[full * (size_t)n + (size_t)last];
        full &= ~((size_t)1 << last);
        last = p;
    }
    tour[0] = 0;
    free(dp);
    free(parent);
    return best;
}

/* Conway's Game of Life on a torus. */
typedef struct {
    int w, h;
    uint8_t *cells, *scratch;
} Life;

static void life_init(Life *l, int w, int h) {
    l->w = w;
    l->h = h;
    l->cells = calloc((size_t)(w * h), 1);
    l->scratch = calloc((size_t)(w * h), 1);
}

static void life_place(Life *l, int x, int y, const char *const *pattern, int rows) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; pattern[r][c]; c++)
            if (pattern[r][c] == 'O') l->cells[((y + r) % l->h) * l->w + (x + c) % l->w] = 1;
}

static void life_step(Life *l) {
    for (int y = 0; y < l->h; y++)
        for (int x = 0; x < l->w; x++) {
            int n = 0;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++)
                    if (dx || dy) n += l->cells[((y + dy + l->h) % l->h) * l->w + (x + dx + l->w) % l->w];
            uint8_t alive = l->cells[y * l->w + x];
            l->scratch[y * l->w + x] = (uint8_t)(n == 3 || (alive && n == 2));
        }
    uint8_t *t = l->cells;
    l->cells = l->scratch;
    l->scratch = t;
}

static int life_population(const Life *l) {
    int p = 0;
    for (int i = 0; i < l->w * l->h; i++) p += l->cells[i];
    return p;
}

/* Needleman-Wunsch global alignment; writes the two aligned strings. */
static int align_global(const char *a, const char *b, char *out_a, char *out_b) {
    const int match = 2, mismatch = -1, gap = -2;
    int n = (int)strlen(a), m = (int)strlen(b);
    int *score = malloc((size_t)(n + 1) * (size_t)(m + 1) * sizeof(int));
#define SC(i, j) score[(i) * (m + 1) + (j)]
    for (int i = 0; i <= n; i++) SC(i, 0) = i * gap;
    for (int j = 0; j <= m; j++) SC(0, j) = j * gap;
    for (int i = 1; i <= n; i++)
        for (int j = 1; j <= m; j++) {
            int diag = SC(i - 1, j - 1) + (a[i - 1] == b[j - 1] ? match : mismatch);
            int up = SC(i - 1, j) + gap, left = SC(i, j - 1) + gap;
            SC(i, j) = diag > up ? (diag > left ? diag : left) : (up > left ? up : left);
        }
    int result = SC(n, m);
    int k = 0, i = n, j = m;
    char *ra = malloc((size_t)(n + m + 1)), *rb = malloc((size_t)(n + m + 1));
    while (i > 0 || j > 0) {
        if (i > 0 && j > 0 && SC(i, j) == SC(i - 1, j - 1) + (a[i - 1] == b[j - 1] ? match : mismatch)) {
            ra[k] = a[--i];
            rb[k++] = b[--j];
        } else if (i > 0 && SC(i, j) == SC(i - 1, j) + gap) {
            ra[k] = a[--i];
            rb[k++] = '-';
        } else {
            ra[k] = '-';
            rb[k++] = b[--j];
        }
    }
#undef SC
    for (int t = 0; t < k; t++) {
        out_a[t] = ra[k - 1 - t];
        out_b[t] = rb[k - 1 - t];
    }
    out_a[k] = out_b[k] = 0;
    free(ra);
    free(rb);
    free(score);
    return result;
}

static uint32_t test_puzzles(void) {
    uint32_t h = 0;
    static const char puzzle[] =
        "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79";
    Sudoku s;
    check(sudoku_load(&s, puzzle), "sudoku load");
    check(sudoku_solve(&s) && sudoku_valid(&s), "sudoku solve");
    check(s.cell[2] == 4 && s.cell[80] == 9, "sudoku cells");
    for (int i = 0; i < 81; i++) h = h * 10 + s.cell[i];
    static const char hard[] = "8..........36......7..9.2...5...7.......457.....1...3...1....68..85...1..9....4..";
    check(sudoku_load(&s, hard) && sudoku_solve(&s) && sudoku_valid(&s), "sudoku hard");
    h = h * 31 + (uint32_t)s.nodes;
    check(!sudoku_load(&s, "55......."), "sudoku rejects");

    static const long queens[] = {1, 0, 0, 2, 10, 4, 40, 92, 352};
    for (int n = 1; n <= 9; n++) check(queens_count(n, 0, 0, 0, 0) == queens[n - 1], "n-queens");

    static const int kw[] = {12, 2, 1, 1, 4}, kv[] = {4, 2, 1, 2, 10};
    int chosen[5];
    check(knapsack(kw, kv, 5, 15, chosen) == 15 && !chosen[0] && chosen[4], "knapsack");

    static const int seq[] = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};
    int sub[16];
    int ln = lis(seq, 16, sub);
    check(ln == 6, "lis length");
    int increasing = 1;
    for (int i = 1; i < ln; i++) increasing &= sub[i - 1] < sub[i];
    check(increasing, "lis sequence");

    static const int dims[] = {40, 20, 30, 10, 30};
    StrBuf order = {0};
    check(matrix_chain(dims, 4, &order) == 26000 && strcmp(order.buf, "((A(BC))D)") == 0, "matrix chain");
    sb_free(&order);

    static const int coins[] = {1, 2, 5, 10, 20, 50, 100, 200};
    long long ways;
    int fewest;
    coin_change(coins, 8, 200, &ways, &fewest);
    check(ways == 73682 && fewest == 1, "coin change");
    static const int odd_coins[] = {7, 3};
    coin_change(odd_coins, 2, 11, &ways, &fewest);
    check(fewest == -1 && ways == 0, "coin change impossible");

    static const char *const dict[] = {"apple", "pen", "applepen", "pine", "pineapple", "cats", "dog", "sand", "and", "cat"};
    StrBuf split = {0};
    check(word_break("pineapplepenapple", dict, 10, &split), "word break");
    check(strcmp(split.buf, "pine applepen apple") == 0, "word break split");
    sb_clear(&split);
    check(!word_break("catsandog", dict, 10, &split), "word break impossible");
    sb_free(&split);

    int dist[64];
    Rng r;
    rng_seed(&r, 77);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j <= i; j++) dist[i * 8 + j] = dist[j * 8 + i] = i == j ? 0 : 1 + (int)rng_below(&r, 50);
    int tour[8];
    int best = tsp_held_karp(dist, 8, tour);
    int len = 0, seen = 0;
    for (int i = 0; i < 8; i++) {
        len += dist[tour[i] * 8 + tour[(i + 1) % 8]];
        seen |= 1 << tour[i];
    }
    check(len == best && seen == 0xff, "tsp tour");
    h = h * 31 + (uint32_t)best;

    Life life;
    life_init(&life, 32, 32);
    static const char *const glider[] = {".O.", "..O", "OOO"};
    static const char *const blinker[] = {"OOO"};
    life_place(&life, 1, 1, glider, 3);
    life_place(&life, 20, 20, blinker, 1);
    for (int gen = 0; gen < 64; gen++) life_step(&life);
    check(life_population(&life) == 8, "life population");
    h = h * 31 + crc32_update(0, life.cells, 32 * 32);
    free(life.cells);
    free(life.scratch);

    char al_a[64], al_b[64];
    int score = align_global("GATTACA", "GCATGCU", al_a, al_b);
    check(score == 2 && strlen(al_a) == strlen(al_b), "alignment");
    h = h * 31 + fnv1a32(al_a, strlen(al_a)) + (uint32_t)score;
    return h;
}

/* ------------------------------------------------------------------------ */
/* Driver                                                                    */
/* ------------------------------------------------------------------------ */

typedef uint32_t (*PartTest)(void);

int main(int argc, char **argv) {
    static const struct {
        const char *name;
        PartTest run;
    } parts[] = {
        {"hashes", test_hashes},   {"tables", test_tables},   {"sorting", test_sorting},
        {"containers", test_containers}, {"strings", test_strings}, {"regex", test_regex},
        {"json", test_json},       {"minnow", test_lang},     {"math", test_math},
        {"compress", test_compress}, {"graphs", test_graphs}, {"misc", test_misc},
        {"emulator", test_emu},   {"crypto", test_crypto},   {"inflate", test_inflate},
        {"lisp", test_lisp},       {"puzzles", test_puzzles},
    };
    const char *only = argc > 1 ? argv[1] : NULL;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if (only && strcmp(only, parts[i].name) != 0) continue;
        report(parts[i].name, parts[i].run());
    }
    printf("digest         %08x\n", (unsigned)g_digest);
    printf("%s (%d failure%s)\n", g_failures ? "FAILED" : "ok", g_failures, g_failures == 1 ? "" : "s");
    return g_failures ? 1 : 0;
}
