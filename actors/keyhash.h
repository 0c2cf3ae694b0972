/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keyhash.h: the key -> shard rule (actors layer). Header only.
 *
 * THE RULE (DESIGN 2, "Read models"), meant to be computed by any language:
 *
 *     shard = XXH64(key bytes, seed 0) mod shard_count
 *
 * with XXH64 the 64-bit xxHash (the value `xxhsum -H1` prints), the key taken
 * as raw bytes (no terminator, no normalisation: UTF-8 is hashed as its
 * bytes) and the modulo taken on the full unsigned 64-bit hash. Two vectors:
 *
 *     key "user:42" (7 bytes)  XXH64 = 0xdc1fea7da8d2d1c2  shard of 1024 = 450
 *     key ""        (0 bytes)  XXH64 = 0xef46db3751d8e999  shard of 1024 = 409
 *
 * tests/vectors/keyhash.tsv holds more, produced by tools/gen-vectors with
 * the independent xxhsum tool; tests/unit/test_keyhash.c checks every row.
 *
 * Speed: xxHash is inlined (XXH_INLINE_ALL), and a power-of-two shard count
 * (the default, 1024) takes a mask instead of a 64-bit division; the result
 * is the same number either way.
 *
 * Threading: pure functions, any thread.
 */
#ifndef AETHER_KEYHASH_H
#define AETHER_KEYHASH_H

#include <stddef.h>
#include <stdint.h>

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#endif
#include <xxhash.h>

#include "assertion.h"

/* The largest shard count any map or lookup accepts. */
#define AETHER_SHARD_COUNT_MAX UINT32_C(65536)
#define AETHER_SHARD_COUNT_DEFAULT UINT32_C(1024)

AETHER_STATIC_ASSERT(AETHER_SHARD_COUNT_DEFAULT <= AETHER_SHARD_COUNT_MAX, "default in range");
AETHER_STATIC_ASSERT((AETHER_SHARD_COUNT_MAX & (AETHER_SHARD_COUNT_MAX - 1)) == 0,
                     "max is a power of two");

/* XXH64(key, len, 0). key may be NULL when len is 0. */
static inline uint64_t aether_key_hash(const void *key, size_t len)
{
    return (uint64_t)XXH64(key, len, 0);
}

/* hash mod shard_count, shard_count in 1..AETHER_SHARD_COUNT_MAX (asserted:
 * callers validate counts that come from input). */
static inline uint32_t aether_key_shard_of_hash(uint64_t hash, uint32_t shard_count)
{
    AETHER_ASSERT(shard_count != 0 && shard_count <= AETHER_SHARD_COUNT_MAX);
    if ((shard_count & (shard_count - 1)) == 0)
        return (uint32_t)(hash & (shard_count - 1));
    return (uint32_t)(hash % shard_count);
}

/* The shard of a key: XXH64(key, len, 0) % shard_count. */
static inline uint32_t aether_key_shard(const void *key, size_t len, uint32_t shard_count)
{
    return aether_key_shard_of_hash(aether_key_hash(key, len), shard_count);
}

#endif
