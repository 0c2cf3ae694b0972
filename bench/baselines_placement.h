/* SPDX-License-Identifier: Apache-2.0 */
/*
 * baselines_placement.h: the placement baselines of the rebalance bench,
 * and its entry point (bench layer).
 *
 * Each baseline maps shard s of S to R distinct nodes of a node list, as the
 * well-known schemes do, with no memory of a previous map: a topology change
 * moves whatever the scheme moves. Nodes are named by their position in the
 * list given; owners[s * R + j] receives positions, primary first. When the
 * list holds fewer than R nodes, the row is filled with all of them and then
 * UINT32_MAX.
 *
 *   ring        consistent hashing with BENCH_RING_VNODES virtual nodes per
 *               node: point = XXH64("<id>#<v>"), a shard (XXH64 of its 4
 *               little-endian bytes) goes to the first point clockwise;
 *               replicas are the next distinct nodes clockwise.
 *   rendezvous  highest random weight: XXH64 of (shard, node id) ranks the
 *               nodes for each shard; the top R own it. O(S * N).
 *   jump        Lamping & Veach jump consistent hash over the list's
 *               positions (the list is in join order: jump can only grow or
 *               shrink at the end, so removing a node from the middle shifts
 *               every later one, which is its known weakness); replica j
 *               uses the key rehashed j times, skipping nodes already chosen.
 *
 * Threading: pure functions; any thread.
 */
#ifndef BENCH_BASELINES_PLACEMENT_H
#define BENCH_BASELINES_PLACEMENT_H

#include <stdint.h>

#include "bench.h"
#include "node_id.h"
#include "status.h"

#define BENCH_RING_VNODES 128u

/* AETHER_OK or AETHER_ENOMEM (ring only). */
aether_status bench_ring_place(const aether_node_id *nodes, uint32_t n, uint32_t shards,
                               uint32_t r, uint32_t *owners);
void bench_rendezvous_place(const aether_node_id *nodes, uint32_t n, uint32_t shards,
                            uint32_t r, uint32_t *owners);
void bench_jump_place(const aether_node_id *nodes, uint32_t n, uint32_t shards, uint32_t r,
                      uint32_t *owners);

/* Lamping & Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm". */
int32_t bench_jump_hash(uint64_t key, int32_t buckets);

/* `aether-bench rebalance`. */
int bench_rebalance_main(const bench_opts *o);

#endif
