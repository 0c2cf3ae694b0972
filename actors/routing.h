/* SPDX-License-Identifier: Apache-2.0 */
/*
 * routing.h: the hot-path read models over the current ShardMap (actors
 * layer): GetShardOwner(key | shard), the owners of a shard, GetNodeShards.
 *
 * DESIGN
 *  1. One aether_shardmap_slot per node holds the current map, published
 *     through RCU (engine/snapshot.h). Its single writer (the
 *     ShardAssignment actor, or whoever owns the slot) builds a whole map and
 *     hands it over with aether_shardmap_slot_publish; the previous map is
 *     freed after a grace period.
 *  2. Every lookup opens its own read-side section, loads the map once,
 *     copies what it answers into the caller's result (ids are fixed-size
 *     values, so no pointer into the map escapes the section) and closes it.
 *     One lookup therefore always answers from one map: the version in the
 *     result is the version of the map every other field came from.
 *  3. aether_route_key is the hot path: one XXH64 of the key (computed before
 *     the section), one dereference of the slot, one 8-byte entry read, one
 *     fixed-size copy of the primary's id from the node table. No locks, no
 *     atomics, no shared-cache-line writes, no allocation.
 *  4. Versions published to a slot strictly increase (publish refuses an
 *     older or equal one), so a thread's successive lookups never see the
 *     version go backwards.
 *
 * Threading: lookups may be called from ANY thread, concurrently with each
 * other and with publish. The calling thread must be registered with RCU;
 * aether_rcu_read_lock (called inside each lookup) registers it on first use
 * and unregisters it at thread exit, so nothing is required of the caller,
 * but a latency-sensitive thread may call aether_rcu_register_thread up front
 * to keep registration off its first lookup. Lookups may be made inside an
 * enclosing read-side section (sections nest). publish and fini are for the
 * slot's single writer: calls on one slot must be serialised by the caller.
 */
#ifndef AETHER_ROUTING_H
#define AETHER_ROUTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "node_id.h"
#include "shardmap.h"
#include "snapshot.h"
#include "status.h"

typedef struct aether_shardmap_slot {
    aether_snapshot_slot snap; /* RCU-published aether_shardmap (or NULL) */
    /* Owned by the single writer: the version of the map it published last,
     * so publish never dereferences a map it has handed to the readers. */
    uint64_t published_version_writer;
    bool published_writer;
} aether_shardmap_slot;

void aether_shardmap_slot_init(aether_shardmap_slot *slot);

/* Unpublishes and retires the current map (freed after a grace period; call
 * aether_rcu_barrier to wait for that). No lookups may start afterwards. */
void aether_shardmap_slot_fini(aether_shardmap_slot *slot);

/* Publishes *map (a valid, built map, never published before).
 * AETHER_OK: the slot owns the map, *map is set to NULL, and the previous map
 * is freed after a grace period.
 * AETHER_ESTALE: the map's version is not above the current map's; nothing
 * changes and the caller still owns *map. Writer only. */
aether_status aether_shardmap_slot_publish(aether_shardmap_slot *slot, aether_shardmap **map);

/* A new cluster generation began (actors/lease.h, GENERATION): its maps are
 * numbered on their own, so the next publish may have any version; the
 * ones after it must rise again. Readers tell the epochs apart by the
 * member's generation (aether_member_view). Writer only. */
void aether_shardmap_slot_new_generation(aether_shardmap_slot *slot);

/* The current map, for code that needs more than the lookups below. Only
 * inside an aether_rcu_read_lock/unlock section, and the map may only be used
 * until the section ends. NULL when nothing is published. */
static inline const aether_shardmap *aether_shardmap_slot_current(const aether_shardmap_slot *slot)
{
    return (const aether_shardmap *)aether_snapshot_current(&slot->snap);
}

/* The answer to "who owns this key / shard". Fields are copies: valid after
 * the lookup returns, whatever is published meanwhile. */
typedef struct aether_shard_route {
    uint64_t map_version;   /* version of the map that answered */
    aether_term term;       /* term that produced that map */
    uint32_t shard;         /* the shard */
    uint32_t owner_count;   /* owners of the shard (primary + replicas) */
    bool moving;            /* a handoff is in progress: primary still serves */
    aether_node_id primary; /* the primary owner (len 0 when owner_count is 0) */
    aether_node_id to;      /* the handoff target when moving; len 0 otherwise */
} aether_shard_route;

/* GetShardOwner(key): shard = XXH64(key, len, 0) % shard_count (keyhash.h)
 * and its primary. key may be NULL when len is 0.
 * AETHER_OK; AETHER_ENOTFOUND when no map is published, or when the map has
 * no nodes (then shard, map_version and term are filled and owner_count is 0). */
aether_status aether_route_key(const aether_shardmap_slot *slot, const void *key, size_t len,
                               aether_shard_route *out);

/* GetShardOwner(shard). AETHER_EINVAL when shard >= the current map's
 * shard_count; otherwise as aether_route_key. */
aether_status aether_route_shard(const aether_shardmap_slot *slot, uint32_t shard,
                                 aether_shard_route *out);

/* The owners of a shard, primary first: copies min(count, max) ids into ids
 * and sets *n_out to the shard's owner count (ids may be NULL when max is 0).
 * AETHER_OK; AETHER_EFULL when max < count (the first max were copied);
 * AETHER_ENOTFOUND when nothing is published; AETHER_EINVAL for a shard out
 * of range. */
aether_status aether_route_owners(const aether_shardmap_slot *slot, uint32_t shard,
                                  aether_node_id *ids, size_t max, size_t *n_out);

/* GetNodeShards(node): the shards where node is any owner (primary or
 * replica), ascending. Copies min(count, max) into out, sets *n_out to the
 * count and *version_out (may be NULL) to the map's version.
 * AETHER_OK; AETHER_EFULL when max < count; AETHER_ENOTFOUND when nothing is
 * published or the node is not in the map (*n_out 0). */
aether_status aether_route_node_shards(const aether_shardmap_slot *slot,
                                       const aether_node_id *node, uint32_t *out, size_t max,
                                       size_t *n_out, uint64_t *version_out);

/* The same for the shards where node is the primary. */
aether_status aether_route_node_primary_shards(const aether_shardmap_slot *slot,
                                               const aether_node_id *node, uint32_t *out,
                                               size_t max, size_t *n_out,
                                               uint64_t *version_out);

/* The current map's version. AETHER_ENOTFOUND when nothing is published. */
aether_status aether_route_map_version(const aether_shardmap_slot *slot, uint64_t *version_out);

/* Fills out from shard `shard` of map m (the hot path's copy-out, shared by
 * the lookups and the bench baselines so both do the same work). Only while
 * m cannot be freed: inside a read-side section, or by the map's owner.
 * AETHER_ENOTFOUND (primary cleared) when the shard has no owner. */
static inline aether_status aether_route_fill(const aether_shardmap *m, uint32_t shard,
                                              aether_shard_route *out)
{
    const aether_shard_entry e = m->shards[shard];
    out->map_version = m->version;
    out->term = m->term;
    out->shard = shard;
    out->owner_count = e.owner_count;
    out->moving = e.state == AETHER_SHARD_MOVING;
    if (AETHER_UNLIKELY(e.owner_count == 0)) {
        memset(&out->primary, 0, sizeof(out->primary));
        return AETHER_ENOTFOUND;
    }
    /* A fixed-size copy: the id is a value, no pointer into m escapes. */
    memcpy(&out->primary, &m->nodes[e.primary], sizeof(out->primary));
    if (AETHER_UNLIKELY(out->moving)) {
        memcpy(&out->to, &m->nodes[e.to], sizeof(out->to));
    } else {
        out->to.len = 0; /* reads as empty, by length or as a string */
        out->to.str[0] = '\0';
    }
    return AETHER_OK;
}

#endif
