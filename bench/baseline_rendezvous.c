/* SPDX-License-Identifier: Apache-2.0 */
/*
 * baseline_rendezvous.c: rendezvous (highest random weight) hashing, a
 * baseline of the rebalance bench (bench layer). See baselines_placement.h.
 */
#include <string.h>

#include "baselines_placement.h"
#include "keyhash.h"

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    return x ^ (x >> 33);
}

void bench_rendezvous_place(const aether_node_id *nodes, uint32_t n, uint32_t shards,
                            uint32_t r, uint32_t *owners)
{
    uint32_t want = r < n ? r : n;
    uint64_t best[AETHER_NODE_ID_LEN_MAX]; /* r <= AETHER_REPLICATION_MAX < this */
    for (uint32_t s = 0; s < shards; s++) {
        uint32_t *row = &owners[(size_t)s * r];
        for (uint32_t j = 0; j < r; j++)
            row[j] = UINT32_MAX;
        uint32_t got = 0;
        for (uint32_t i = 0; i < n; i++) {
            /* weight(shard, node) = mix(XXH64(id) ^ mix(shard)) */
            uint64_t w = mix64(aether_key_hash(nodes[i].str, nodes[i].len) ^
                               mix64((uint64_t)s + 1));
            /* insertion into the top-`want` list, highest first */
            uint32_t pos = got < want ? got++ : want;
            while (pos > 0 && best[pos - 1] < w) {
                if (pos < want) {
                    best[pos] = best[pos - 1];
                    row[pos] = row[pos - 1];
                }
                pos--;
            }
            if (pos < want) {
                best[pos] = w;
                row[pos] = i;
            }
        }
    }
}
