/* SPDX-License-Identifier: Apache-2.0 */
/*
 * baseline_ring.c: ring consistent hashing with virtual nodes, a baseline of
 * the rebalance bench (bench layer). See baselines_placement.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines_placement.h"
#include "keyhash.h"

typedef struct ring_point {
    uint64_t hash;
    uint32_t node;
} ring_point;

static int point_compare(const void *a, const void *b)
{
    const ring_point *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return x->node < y->node ? -1 : x->node > y->node; /* total order: deterministic */
}

aether_status bench_ring_place(const aether_node_id *nodes, uint32_t n, uint32_t shards,
                               uint32_t r, uint32_t *owners)
{
    size_t np = (size_t)n * BENCH_RING_VNODES;
    ring_point *pts = malloc((np + 1) * sizeof(*pts));
    if (pts == NULL)
        return AETHER_ENOMEM;
    char buf[AETHER_NODE_ID_LEN_MAX + 16];
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t v = 0; v < BENCH_RING_VNODES; v++) {
            int len = snprintf(buf, sizeof(buf), "%s#%u", nodes[i].str, v);
            pts[(size_t)i * BENCH_RING_VNODES + v] =
                (ring_point){aether_key_hash(buf, (size_t)len), i};
        }
    qsort(pts, np, sizeof(*pts), point_compare);
    uint32_t want = r < n ? r : n;
    for (uint32_t s = 0; s < shards; s++) {
        uint32_t *row = &owners[(size_t)s * r];
        for (uint32_t j = 0; j < r; j++)
            row[j] = UINT32_MAX;
        if (n == 0)
            continue;
        uint8_t le[4] = {(uint8_t)s, (uint8_t)(s >> 8), (uint8_t)(s >> 16), (uint8_t)(s >> 24)};
        uint64_t h = aether_key_hash(le, sizeof(le));
        size_t lo = 0, hi = np; /* first point with hash >= h */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (pts[mid].hash < h)
                lo = mid + 1;
            else
                hi = mid;
        }
        uint32_t got = 0;
        for (size_t k = 0; k < np && got < want; k++) {
            uint32_t node = pts[(lo + k) % np].node;
            bool dup = false;
            for (uint32_t j = 0; j < got && !dup; j++)
                dup = row[j] == node;
            if (!dup)
                row[got++] = node;
        }
    }
    free(pts);
    return AETHER_OK;
}
