/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rng.c: xoshiro256** (Blackman and Vigna, public domain algorithm) seeded by
 * splitmix64 (engine layer). See rng.h for threading.
 */
#include "rng.h"

#include <sys/random.h>
#include <time.h>

#include "assertion.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void aether_rng_seed(aether_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

uint64_t aether_rng_os_seed(void)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) {
        /* getrandom cannot fail for 8 bytes once the pool is ready; fall back
         * to the clock rather than abort a production start-up. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec;
    }
    return seed;
}

uint64_t aether_rng_next(aether_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t aether_rng_below(aether_rng *r, uint64_t bound)
{
    AETHER_ASSERT(bound > 0);
    /* Lemire's nearly divisionless method. */
    unsigned __int128 m = (unsigned __int128)aether_rng_next(r) * bound;
    uint64_t low = (uint64_t)m;
    if (low < bound) {
        uint64_t threshold = -bound % bound;
        while (low < threshold) {
            m = (unsigned __int128)aether_rng_next(r) * bound;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

uint64_t aether_rng_range(aether_rng *r, uint64_t lo, uint64_t hi)
{
    AETHER_ASSERT(lo <= hi);
    if (lo == 0 && hi == UINT64_MAX)
        return aether_rng_next(r);
    return lo + aether_rng_below(r, hi - lo + 1);
}

void aether_rng_split(aether_rng *r, aether_rng *child)
{
    aether_rng_seed(child, aether_rng_next(r));
}
