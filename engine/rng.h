/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rng.h: the injected random source (engine layer).
 *
 * xoshiro256** seeded through splitmix64: the same seed gives the same stream
 * on every machine. Domain code takes randomness only from an aether_rng it
 * was handed, so a simulation replays from its seed. An aether_rng is owned by
 * one thread (no synchronisation); give each thread or actor its own, derived
 * with aether_rng_split.
 */
#ifndef AETHER_RNG_H
#define AETHER_RNG_H

#include <stdint.h>

typedef struct aether_rng {
    uint64_t s[4]; /* owned by one thread */
} aether_rng;

void aether_rng_seed(aether_rng *r, uint64_t seed);
/* A seed from the operating system (getrandom), for production runs that
 * should differ; print it if the run may need replaying. */
uint64_t aether_rng_os_seed(void);
uint64_t aether_rng_next(aether_rng *r);
/* Uniform in [0, bound), without modulo bias; bound 0 is a programmer error. */
uint64_t aether_rng_below(aether_rng *r, uint64_t bound);
/* Uniform in [lo, hi] inclusive. */
uint64_t aether_rng_range(aether_rng *r, uint64_t lo, uint64_t hi);
/* A new independent generator derived from r (advances r). */
void aether_rng_split(aether_rng *r, aether_rng *child);

#endif
