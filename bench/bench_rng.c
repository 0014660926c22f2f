/*
 * Deterministic random data: xoshiro256** with a fixed seed, so two runs
 * benchmark the same matrices, and Box-Muller for Gaussians (weights of
 * trained layers are roughly Gaussian; zeros or constants would let a
 * kernel or cache look better than it is).
 */
#include "bench_common.h"

#include <math.h>

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static uint64_t next_u64(bench_rng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

void bench_rng_seed(bench_rng *r, uint64_t seed) {
    /* splitmix64 spreads any seed, even 0, over the whole state. */
    for (int i = 0; i < 4; i++) {
        uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        r->s[i] = z ^ (z >> 31);
    }
}

/* Uniform in (0, 1]: never 0, so log() below stays finite. */
static double uniform01(bench_rng *r) {
    return ((double)(next_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

void bench_fill_gaussian(bench_rng *r, float *v, size_t n) {
    const double two_pi = 6.283185307179586;
    size_t i = 0;
    for (; i + 1 < n; i += 2) {
        double rad = sqrt(-2.0 * log(uniform01(r)));
        double th = two_pi * uniform01(r);
        v[i] = (float)(rad * cos(th));
        v[i + 1] = (float)(rad * sin(th));
    }
    if (i < n)
        v[i] = (float)(sqrt(-2.0 * log(uniform01(r))) * cos(two_pi * uniform01(r)));
}
