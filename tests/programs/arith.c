/* Integer and floating-point arithmetic: results must match a native build
 * bit for bit (printed with formats that both libcs round correctly). */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>

static uint64_t fib(unsigned n) {
    uint64_t a = 0, b = 1;
    while (n--) {
        uint64_t t = a + b;
        a = b;
        b = t;
    }
    return a;
}

static uint32_t gcd(uint32_t a, uint32_t b) {
    while (b) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static int is_prime(uint32_t n) {
    if (n < 2) return 0;
    for (uint32_t d = 2; d * d <= n; d++)
        if (n % d == 0) return 0;
    return 1;
}

int main(void) {
    /* Integers: wrap-around, division, shifts, 64-bit products. */
    uint32_t u = 0xFFFFFFF0u;
    u += 0x20;
    printf("u32 wrap: %" PRIu32 "\n", u);
    int32_t q = -7 / 2, r = -7 % 2;
    printf("div: %" PRId32 " rem: %" PRId32 "\n", q, r);
    int64_t big = (int64_t)123456789 * 987654321;
    printf("i64 mul: %" PRId64 "\n", big);
    printf("shifts: %" PRIu32 " %" PRId32 " %" PRIu64 "\n", 1u << 31, (int32_t)-256 >> 4,
           (uint64_t)1 << 63);
    printf("fib(90) = %" PRIu64 "\n", fib(90));
    printf("gcd(1071, 462) = %" PRIu32 "\n", gcd(1071, 462));
    unsigned primes = 0;
    for (uint32_t n = 0; n < 100000; n++) primes += is_prime(n);
    printf("primes below 100000: %u\n", primes);
    uint64_t h = 1469598103934665603ull; /* FNV-1a over 0..9999 */
    for (uint32_t i = 0; i < 10000; i++) {
        h ^= i & 0xff;
        h *= 1099511628211ull;
    }
    printf("fnv: %016" PRIx64 "\n", h);

    /* Floating point: IEEE arithmetic is exact to the bit; libm functions
     * are printed with fewer digits than their last ulp. */
    double x = 0.1 + 0.2;
    printf("0.1 + 0.2 = %.17g (== 0.3: %d)\n", x, x == 0.3);
    printf("sqrt(2) = %.15f\n", sqrt(2.0));
    printf("1/3 = %.20f\n", 1.0 / 3.0);
    printf("float: %.9g\n", (double)(1.0f / 3.0f));
    printf("pi ~ %.12f\n", 4.0 * atan(1.0));
    printf("exp(1) = %.12f log(10) = %.12f\n", exp(1.0), log(10.0));
    printf("sin(1) = %.12f cos(1) = %.12f\n", sin(1.0), cos(1.0));
    printf("pow(2, 0.5) = %.12f fmod(10, 3) = %g\n", pow(2.0, 0.5), fmod(10.0, 3.0));
    printf("floor/ceil/round: %g %g %g %g\n", floor(-2.5), ceil(-2.5), round(-2.5), trunc(2.7));
    printf("inf: %g nan: %d\n", 1.0 / 0.0 > 0 ? INFINITY : 0.0, isnan(sqrt(-1.0)) != 0);
    printf("scientific: %e %E\n", 6.02214076e23, 1.602176634e-19);
    printf("conversions: %d %u %" PRId64 "\n", (int)-3.99, (unsigned)3.99, (int64_t)1e18);
    double sum = 0;
    for (int k = 1; k <= 1000000; k++) sum += 1.0 / ((double)k * k);
    printf("basel partial sum = %.12f\n", sum);
    return 0;
}
