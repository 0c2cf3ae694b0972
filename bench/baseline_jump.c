/* SPDX-License-Identifier: Apache-2.0 */
/*
 * baseline_jump.c: jump consistent hash (Lamping & Veach 2014), a baseline of
 * the rebalance bench (bench layer). See baselines_placement.h.
 */
#include "baselines_placement.h"

int32_t bench_jump_hash(uint64_t key, int32_t buckets)
{
    int64_t b = -1, j = 0;
    while (j < buckets) {
        b = j;
        key = key * UINT64_C(2862933555777941757) + 1;
        j = (int64_t)((double)(b + 1) * ((double)(INT64_C(1) << 31) / (double)((key >> 33) + 1)));
    }
    return (int32_t)b;
}

void bench_jump_place(const aether_node_id *nodes, uint32_t n, uint32_t shards, uint32_t r,
                      uint32_t *owners)
{
    (void)nodes; /* jump only sees the number of buckets */
    uint32_t want = r < n ? r : n;
    for (uint32_t s = 0; s < shards; s++) {
        uint32_t *row = &owners[(size_t)s * r];
        for (uint32_t j = 0; j < r; j++)
            row[j] = UINT32_MAX;
        uint64_t key = (uint64_t)s * UINT64_C(0x9e3779b97f4a7c15) + 1;
        uint32_t got = 0;
        for (uint32_t attempt = 0; got < want; attempt++) {
            key = key * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
            uint32_t b = (uint32_t)bench_jump_hash(key ^ (key >> 29), (int32_t)n);
            bool dup = false;
            for (uint32_t j = 0; j < got && !dup; j++)
                dup = row[j] == b;
            if (!dup)
                row[got++] = b;
        }
    }
}
